//! Email notifications over SMTP (the only module that knows lettre): a [`Mailer`] built from
//! the `[smtp]` settings, and [`Email`]s with a text body and attachments (the backtest PNG).
//!
//! The password comes only from `MODEL_OPTIMIZER_SMTP_PASSWORD` and never appears in logs,
//! errors or `Debug` output. Callers treat a send failure as a note for history: mail never
//! changes a deployment or the exit code.

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{self, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::config::{SmtpSettings, SmtpTls, SMTP_PASSWORD_ENV};
use crate::domain::MailEvent;
use crate::exit;

/// A file attached to an email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// MIME type, e.g. `image/png`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One message: plain-text body plus attachments.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Email {
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

/// Whether mail is on and `event` is one of `smtp.events` (what warrants the run's digest).
pub fn event_enabled(settings: &SmtpSettings, event: MailEvent) -> bool {
    settings.enabled && settings.events.contains(&event)
}

/// A configured SMTP client.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    host: String,
    port: u16,
    tls: SmtpTls,
    user: String,
    has_password: bool,
}

impl fmt::Debug for Mailer {
    // Written by hand so that no credential can leak through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("to", &self.to.iter().map(ToString::to_string).collect::<Vec<_>>())
            .field("user", &self.user)
            .field("password", &if self.has_password { "<set>" } else { "<unset>" })
            .finish_non_exhaustive()
    }
}

fn parse_mailbox(key: &str, value: &str) -> anyhow::Result<Mailbox> {
    value.parse::<Mailbox>().map_err(|e| {
        exit::invalid(format!(
            "smtp.{key} = {value:?} is not an email address ({e}); fix it in configs/optimizer.toml"
        ))
    })
}

impl Mailer {
    /// Builds the client from settings, reading the password from
    /// `MODEL_OPTIMIZER_SMTP_PASSWORD`. Does not connect.
    pub fn from_settings(settings: &SmtpSettings) -> anyhow::Result<Mailer> {
        Self::with_password(settings, std::env::var(SMTP_PASSWORD_ENV).ok())
    }

    /// Like [`Mailer::from_settings`] with the password given (tests; `None` for no login).
    pub fn with_password(settings: &SmtpSettings, password: Option<String>) -> anyhow::Result<Mailer> {
        let s = settings;
        if s.host.trim().is_empty() || s.port == 0 {
            return Err(exit::invalid(
                "smtp.host and smtp.port must be set to send mail; fix them in configs/optimizer.toml",
            ));
        }
        if s.to.is_empty() {
            return Err(exit::invalid(
                "smtp.to lists no recipient; add at least one address in configs/optimizer.toml",
            ));
        }
        let from = parse_mailbox("from", &s.from)?;
        let to =
            s.to.iter()
                .map(|t| parse_mailbox("to", t))
                .collect::<anyhow::Result<Vec<_>>>()?;
        let tls = match s.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let params = TlsParameters::new(s.host.clone())
                    .map_err(|e| anyhow::anyhow!("smtp {}:{}: cannot set up TLS: {e}", s.host, s.port))?;
                // `starttls` must upgrade: falling back to plain text would send the password
                // in the clear.
                if s.tls == SmtpTls::Starttls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(s.timeout_seconds.max(1))));
        let password = password.filter(|p| !p.is_empty());
        let has_password = password.is_some();
        if !s.user.is_empty() {
            if s.tls == SmtpTls::None && !s.allow_plaintext_auth {
                return Err(exit::invalid(format!(
                    "smtp.user is {:?} with smtp.tls = \"none\": the password would cross the network unencrypted; set smtp.tls = \"starttls\" or \"tls\", or, only for a server on a trusted link, smtp.allow_plaintext_auth = true",
                    s.user
                )));
            }
            let Some(password) = password else {
                return Err(exit::invalid(format!(
                    "smtp.user is {:?} but {SMTP_PASSWORD_ENV} is not set; export the password in that variable",
                    s.user
                )));
            };
            builder = builder.credentials(Credentials::new(s.user.clone(), password));
        } else if has_password {
            tracing::warn!("{SMTP_PASSWORD_ENV} is set but smtp.user is empty; sending without login");
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            to,
            host: s.host.clone(),
            port: s.port,
            tls: s.tls,
            user: s.user.clone(),
            has_password,
        })
    }

    /// Builds the MIME message: text/plain alone, or multipart/mixed with the attachments.
    pub fn message(&self, email: &Email) -> anyhow::Result<Message> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.clone());
        for t in &self.to {
            b = b.to(t.clone());
        }
        let built = if email.attachments.is_empty() {
            b.singlepart(SinglePart::plain(email.body.clone()))
        } else {
            let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(email.body.clone()));
            for a in &email.attachments {
                let ct = ContentType::parse(&a.content_type).map_err(|e| {
                    anyhow::anyhow!(
                        "attachment {}: content type {:?} is not a MIME type: {e}",
                        a.filename,
                        a.content_type
                    )
                })?;
                parts =
                    parts.singlepart(message::Attachment::new(a.filename.clone()).body(a.bytes.clone(), ct));
            }
            b.multipart(parts)
        };
        built.map_err(|e| anyhow::anyhow!("cannot build the email {:?}: {e}", email.subject))
    }

    /// Sends `email` to every `smtp.to`; the error names host:port and what to check.
    pub fn send(&self, email: &Email) -> anyhow::Result<()> {
        let msg = self.message(email)?;
        self.transport.send(&msg).map(|_| ()).map_err(|e| {
            let detail = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            anyhow::anyhow!(
                "sending mail via {}:{} (tls {}) failed: {detail}; check smtp.host, smtp.port, smtp.tls and that the server is up",
                self.host,
                self.port,
                tls_name(self.tls)
            )
        })
    }
}

fn tls_name(t: SmtpTls) -> &'static str {
    match t {
        SmtpTls::None => "none",
        SmtpTls::Starttls => "starttls",
        SmtpTls::Tls => "tls",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            enabled: true,
            host: "127.0.0.1".into(),
            port,
            to: vec!["ops@example.com".into(), "Team <team@example.com>".into()],
            timeout_seconds: 5,
            ..SmtpSettings::default()
        }
    }

    #[test]
    fn events_follow_settings() {
        let mut s = settings(25);
        assert!(event_enabled(&s, MailEvent::Deployed));
        assert!(!event_enabled(&s, MailEvent::Triggered));
        s.enabled = false;
        assert!(!event_enabled(&s, MailEvent::Deployed));
    }

    #[test]
    fn password_never_shows_in_debug() {
        let mut s = settings(25);
        s.user = "mailer".into();
        s.allow_plaintext_auth = true;
        let m = Mailer::with_password(&s, Some("hunter2-secret".into())).unwrap();
        let d = format!("{m:?}");
        assert!(
            !d.contains("hunter2-secret") && d.contains("<set>") && d.contains("mailer"),
            "{d}"
        );
        let e = format!("{:#}", Mailer::with_password(&s, None).unwrap_err());
        assert!(e.contains(SMTP_PASSWORD_ENV), "{e}");
        for tls in [SmtpTls::Starttls, SmtpTls::Tls] {
            s.tls = tls;
            Mailer::with_password(&s, Some("x".into())).unwrap();
        }
    }

    #[test]
    fn a_login_over_a_clear_connection_is_refused_unless_allowed() {
        let mut s = settings(25);
        s.user = "mailer".into();
        let e = Mailer::with_password(&s, Some("hunter2-secret".into())).unwrap_err();
        assert_eq!(exit::code_of(&e), exit::ExitCode::Invalid);
        let text = format!("{e:#}");
        assert!(
            text.contains("smtp.allow_plaintext_auth")
                && text.contains("unencrypted")
                && !text.contains("hunter2"),
            "{text}"
        );
        s.allow_plaintext_auth = true;
        Mailer::with_password(&s, Some("hunter2-secret".into())).unwrap();
        // Without a login there is no password to protect.
        s.user.clear();
        s.allow_plaintext_auth = false;
        Mailer::with_password(&s, None).unwrap();
    }

    #[test]
    fn bad_addresses_are_invalid_settings() {
        let mut s = settings(25);
        s.to = vec!["not an address".into()];
        let e = Mailer::with_password(&s, None).unwrap_err();
        assert_eq!(exit::code_of(&e), exit::ExitCode::Invalid);
        assert!(format!("{e:#}").contains("smtp.to"));
        s.to.clear();
        assert!(format!("{:#}", Mailer::with_password(&s, None).unwrap_err()).contains("smtp.to"));
    }

    #[test]
    fn message_has_subject_body_and_attachment() {
        let m = Mailer::with_password(&settings(25), None).unwrap();
        let email = Email {
            subject: "[model-optimizer] 7d deployed".into(),
            body: "summary\n".into(),
            attachments: vec![Attachment {
                filename: "backtest_7d.png".into(),
                content_type: "image/png".into(),
                bytes: vec![0x89, b'P', b'N', b'G', 0, 1, 2, 255],
            }],
        };
        let raw = String::from_utf8(m.message(&email).unwrap().formatted()).unwrap();
        assert!(raw.contains("Subject: [model-optimizer] 7d deployed"), "{raw}");
        assert!(
            raw.contains("multipart/mixed")
                && raw.contains("filename=\"backtest_7d.png\"")
                && raw.contains("image/png"),
            "{raw}"
        );
        assert!(
            raw.contains("To: ops@example.com, Team <team@example.com>"),
            "{raw}"
        );
        let bad = Email {
            attachments: vec![Attachment {
                content_type: "not a type".into(),
                ..email.attachments[0].clone()
            }],
            ..email
        };
        assert!(format!("{:#}", m.message(&bad).unwrap_err()).contains("backtest_7d.png"));
    }

    #[test]
    fn server_down_is_a_clear_error_naming_host_and_port() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = Mailer::with_password(&settings(port), None).unwrap();
        let e = format!(
            "{:#}",
            m.send(&Email {
                subject: "s".into(),
                body: "b".into(),
                attachments: vec![]
            })
            .unwrap_err()
        );
        assert!(
            e.contains(&format!("127.0.0.1:{port}")) && e.contains("failed") && !e.contains('\n'),
            "{e}"
        );
    }
}

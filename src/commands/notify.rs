//! `notify --test`: sends a test message with the SMTP settings, so an operator can check
//! host, TLS, credentials and recipients before the weekly job needs them.

use serde::Serialize;

use crate::exit::{invalid, ExitCode};
use crate::hiargs::Context;
use crate::notify::{Email, Mailer};
use crate::output::{self, Render};

#[derive(Debug, Serialize)]
struct NotifyReport {
    host: String,
    port: u16,
    to: Vec<String>,
    subject: String,
    sent: bool,
}

impl Render for NotifyReport {
    fn render(&self) -> String {
        format!(
            "sent \"{}\" to {} through {}:{}\n",
            self.subject,
            self.to.join(", "),
            self.host,
            self.port
        )
    }
}

pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let s = &ctx.settings.smtp;
    if !s.enabled {
        return Err(invalid(format!(
            "{}: smtp.enabled is false; enable it and set smtp.host, smtp.port and smtp.to",
            ctx.settings_path.display()
        )));
    }
    let mailer = Mailer::from_settings(s)?;
    let subject = "[model-optimizer] test message".to_string();
    mailer.send(&Email {
        subject: subject.clone(),
        body: format!(
            "This is a test message from model-optimizer (root {}, sent {}).\nIf you read this, mail for the weekly job will arrive.\n",
            ctx.root.display(),
            ctx.now.to_rfc3339()
        ),
        attachments: Vec::new(),
    })?;
    output::emit(
        ctx.json,
        &NotifyReport {
            host: s.host.clone(),
            port: s.port,
            to: s.to.clone(),
            subject,
            sent: true,
        },
    )?;
    Ok(ExitCode::Success)
}

//! Deployment machinery and email against the real world: a real SMTP server (aiosmtpd) on
//! 127.0.0.1 through [`SmtpSink`], the run lock held by another process, and (with the
//! `failpoints` feature) crashes at every deploy step in a child process, checked with git.
//!
//! Child processes re-run this test binary on an `#[ignore]`d entry test selected with
//! `--exact`; an environment variable carries their instructions.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model_optimizer::config::{SmtpSettings, SmtpTls};
use model_optimizer::deploy::lock::RunLock;
use model_optimizer::exit::{self, ExitCode};
use model_optimizer::notify::{Attachment, Email, Mailer};

// ---------------------------------------------------------------------------------------------
// SMTP sink
// ---------------------------------------------------------------------------------------------

/// aiosmtpd handler: decodes each message with Python's `email` package (an independent MIME
/// parser) and stores it as `NNNN.json` plus its attachments' bytes, each file written under a
/// temp name and renamed so the test never reads half a message.
const SINK_HANDLER: &str = r#"
import email, email.policy, json, os

class Sink:
    def __init__(self, out_dir):
        self.out = out_dir
        self.n = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("Sink takes the output directory")
        return cls(args[0])

    def _write(self, name, data):
        tmp = os.path.join(self.out, "." + name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.out, name))

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body, atts = None, []
        for part in msg.walk():
            if part.is_multipart():
                continue
            if part.get_content_disposition() == "attachment":
                name = "%04d-att%d.bin" % (self.n, len(atts))
                self._write(name, part.get_payload(decode=True) or b"")
                atts.append({"filename": part.get_filename(), "content_type": part.get_content_type(), "file": name})
            elif body is None and part.get_content_type() == "text/plain":
                # SMTP carries text with CRLF line ends; hand the test the text as written.
                body = part.get_content().replace("\r\n", "\n")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "body": body,
            "attachments": atts,
        }
        self._write("%04d.eml" % self.n, raw)
        self._write("%04d.json" % self.n, json.dumps(record).encode())
        return "250 Message accepted for delivery"
"#;

/// A received message, decoded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    pub from: String,
    pub to: String,
    /// The text/plain body (decoded), if any.
    pub body: Option<String>,
    pub attachments: Vec<ReceivedAttachment>,
    /// The message as it came over the wire.
    pub raw: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReceivedAttachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A real SMTP server (Python's aiosmtpd, `pip install aiosmtpd`) on a free 127.0.0.1 port,
/// collecting messages in a temp directory; killed on drop.
pub(crate) struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server and waits until it accepts connections (panics with its stderr if it
    /// cannot start, e.g. aiosmtpd is not installed).
    pub(crate) fn start() -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        fs::create_dir_all(&mail).unwrap();
        fs::write(dir.path().join("mo_sink.py"), SINK_HANDLER).unwrap();
        // Bind to port 0 to get a free port, release it, hand it to the server.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stderr = fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "mo_sink.Sink",
            ])
            .arg(&mail)
            .env("PYTHONPATH", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("python3 runs (the SMTP sink needs python3 with aiosmtpd: pip install aiosmtpd)");
        let mut sink = SmtpSink { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = sink.child.try_wait().unwrap() {
                panic!(
                    "the SMTP sink exited with {status} before accepting connections (is aiosmtpd installed? pip install aiosmtpd): {}",
                    fs::read_to_string(sink.dir.path().join("stderr.log")).unwrap_or_default()
                );
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                // Wait for the greeting so the server is really serving, then leave politely.
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 512];
                if s.read(&mut buf).is_ok_and(|n| n >= 3 && &buf[..3] == b"220") {
                    let _ = s.write_all(b"QUIT\r\n");
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP sink did not accept connections on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Settings that send to this sink (tls none, no login).
    pub(crate) fn settings(&self, to: &[&str]) -> SmtpSettings {
        SmtpSettings {
            enabled: true,
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmtpTls::None,
            from: "model-optimizer@example.com".into(),
            to: to.iter().map(|s| (*s).to_string()).collect(),
            user: String::new(),
            timeout_seconds: 10,
            ..SmtpSettings::default()
        }
    }

    /// The messages received so far, in arrival order.
    pub(crate) fn messages(&self) -> Vec<ReceivedMail> {
        let mail = self.dir.path().join("mail");
        let mut names: Vec<String> = fs::read_dir(&mail)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| Path::new(n).extension().is_some_and(|e| e == "json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let v: serde_json::Value = serde_json::from_slice(&fs::read(mail.join(&n)).unwrap()).unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                ReceivedMail {
                    mail_from: s("mail_from"),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect(),
                    subject: s("subject"),
                    from: s("from"),
                    to: s("to"),
                    body: v["body"].as_str().map(String::from),
                    attachments: v["attachments"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| ReceivedAttachment {
                            filename: a["filename"].as_str().map(String::from),
                            content_type: a["content_type"].as_str().unwrap().to_string(),
                            bytes: fs::read(mail.join(a["file"].as_str().unwrap())).unwrap(),
                        })
                        .collect(),
                    raw: fs::read(mail.join(n.replace(".json", ".eml"))).unwrap(),
                }
            })
            .collect()
    }

    /// Waits (up to `timeout`) until at least `n` messages arrived and returns them all.
    pub(crate) fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mail_with_attachment_arrives_intact() {
    let sink = SmtpSink::start();
    let settings = sink.settings(&["ops@example.com", "Team Lead <lead@example.com>"]);
    let mailer = Mailer::with_password(&settings, None).unwrap();
    // Every byte value, as a PNG would have.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n".iter().copied().chain(0..=255u8).collect();
    let email = Email {
        subject: "[model-optimizer] 7d deployed: RMSE 9.8 -> 9.1 CLP (-7.2%)".into(),
        body: "Deployed context=90 samples=100 temperature=1.0\n\n| criterion | value |\n| rmse | -7.2% |\n"
            .into(),
        attachments: vec![Attachment {
            filename: "backtest_7d.png".into(),
            content_type: "image/png".into(),
            bytes: png.clone(),
        }],
    };
    mailer.send(&email).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "one message arrives");
    let m = &got[0];
    assert_eq!(m.subject, email.subject);
    assert_eq!(m.mail_from, "model-optimizer@example.com");
    assert_eq!(m.from, "model-optimizer@example.com");
    assert_eq!(m.rcpt_tos, ["ops@example.com", "lead@example.com"]);
    assert!(
        m.to.contains("ops@example.com") && m.to.contains("lead@example.com"),
        "{}",
        m.to
    );
    assert_eq!(m.body.as_deref().map(str::trim_end), Some(email.body.trim_end()));
    assert_eq!(m.attachments.len(), 1);
    let a = &m.attachments[0];
    assert_eq!(
        (a.filename.as_deref(), a.content_type.as_str()),
        (Some("backtest_7d.png"), "image/png")
    );
    assert_eq!(a.bytes, png, "attachment bytes survive the trip");
    assert!(String::from_utf8_lossy(&m.raw).contains("Date: "));

    // A plain message without attachments.
    mailer
        .send(&Email {
            subject: "[model-optimizer] test".into(),
            body: "hello".into(),
            attachments: vec![],
        })
        .unwrap();
    let got = sink.wait_for(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[1].subject.as_str(), got[1].body.as_deref().map(str::trim_end)),
        ("[model-optimizer] test", Some("hello"))
    );
    assert!(got[1].attachments.is_empty());
}

#[test]
fn smtp_server_down_is_a_clear_error() {
    let sink = SmtpSink::start();
    let port = sink.port();
    let settings = sink.settings(&["ops@example.com"]);
    drop(sink);
    let mailer = Mailer::with_password(&settings, None).unwrap();
    let e = mailer
        .send(&Email {
            subject: "s".into(),
            body: "b".into(),
            attachments: vec![],
        })
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}"))
            && text.contains("check smtp.host")
            && !text.contains('\n'),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Instructions for a child (JSON in this variable).
const CHILD_ENV: &str = "MODEL_OPTIMIZER_TEST_DEPLOY_CHILD";

/// Runs this test binary's `name` entry in a child process with `instructions`.
fn spawn_child(name: &str, instructions: &serde_json::Value, extra_env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, instructions.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn child_instructions() -> serde_json::Value {
    let raw = std::env::var(CHILD_ENV).expect("this entry only runs as a child of another test");
    serde_json::from_str(&raw).unwrap()
}

#[test]
#[ignore = "child process of run_lock_is_exclusive_across_processes"]
fn lock_holder_child() {
    let args = child_instructions();
    let root = PathBuf::from(args["root"].as_str().unwrap());
    let _lock = RunLock::acquire(&root).unwrap();
    fs::write(root.join("holder-ready"), std::process::id().to_string()).unwrap();
    // Hold the lock until killed (the parent kills us; give up after a minute regardless).
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn run_lock_is_exclusive_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut child = spawn_child(
        "deploy::lock_holder_child",
        &serde_json::json!({ "root": root }),
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !root.join("holder-ready").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("lock holder exited early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "lock holder did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder_pid = fs::read_to_string(root.join("holder-ready")).unwrap();
    let e = RunLock::acquire(root).unwrap_err();
    assert_eq!(exit::code_of(&e), ExitCode::Locked);
    assert_eq!(ExitCode::Locked.code(), 75);
    let text = format!("{e:#}");
    assert!(
        text.contains(&format!("pid {holder_pid} on host ")) && text.contains(".model-optimizer.lock"),
        "{text}"
    );
    // A dead holder's lock is released by the OS: no stale lock after a kill -9.
    child.kill().unwrap();
    child.wait().unwrap();
    let lock = RunLock::acquire(root).unwrap();
    assert_eq!(lock.holder().unwrap().pid, std::process::id());
}

// ---------------------------------------------------------------------------------------------
// Failpoint matrix (cargo test --features failpoints)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "failpoints")]
mod crash {
    use std::fs;
    use std::path::{Path, PathBuf};

    use chrono::{DateTime, Utc};
    use model_optimizer::config::{GitMode, GitSettings};
    use model_optimizer::deploy::recover::ConfigState;
    use model_optimizer::deploy::{self, journal::Operation, DeployRequest};
    use model_optimizer::domain::Horizon;
    use model_optimizer::failpoint;
    use model_optimizer::forecaster_config::ForecasterConfig;
    use model_optimizer::history::{Action, HistoryRecord, RecordMetrics, RecordParams};

    use super::{child_instructions, spawn_child};

    fn record(run_id: &str) -> HistoryRecord {
        HistoryRecord {
            run_id: run_id.into(),
            horizon: model_optimizer::domain::Horizon(7),
            optimization_date: at("2026-01-11T05:00:00Z"),
            action: Action::Deployed,
            triggered_by: model_optimizer::domain::TriggerKind::split("force").unwrap(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: true,
            old: RecordParams::default(),
            new: RecordParams::default(),
            candidate: RecordMetrics::default(),
            current: RecordMetrics::default(),
            duration_seconds: 1.0,
            message: "deployed".into(),
            attention: None,
        }
    }

    use crate::util::git_cli as git;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn config(context: usize, ts: &str) -> Vec<u8> {
        let mut c = ForecasterConfig::initial(Horizon(7), "amazon/chronos-bolt-small", at(ts));
        c.context_length = context;
        c.to_bytes()
    }

    fn old() -> Vec<u8> {
        config(180, "2026-01-04T05:00:00Z")
    }

    fn new() -> Vec<u8> {
        config(90, "2026-01-11T05:00:00Z")
    }

    fn git_settings() -> GitSettings {
        GitSettings {
            mode: GitMode::Auto,
            author_name: "model-optimizer".into(),
            author_email: "bot@example.com".into(),
        }
    }

    /// A root that is a repository with the old config committed and a person's staged change.
    fn root_with_repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("configs")).unwrap();
        git(&root, &["init", "-q"]);
        fs::write(root.join("configs/chronos_7d.json"), old()).unwrap();
        fs::write(root.join("README.md"), "readme\n").unwrap();
        git(&root, &["add", "."]);
        git(&root, &["commit", "-q", "-m", "initial"]);
        fs::write(root.join("README.md"), "staged by a person\n").unwrap();
        git(&root, &["add", "README.md"]);
        (dir, root)
    }

    #[test]
    #[ignore = "child process of failpoint_matrix"]
    fn crash_child() {
        let args = child_instructions();
        let configs = PathBuf::from(args["configs"].as_str().unwrap());
        let gs = git_settings();
        let new = new();
        match args["op"].as_str().unwrap() {
            "rollback" => {
                let mut r = record("crash-child");
                r.action = Action::RolledBack;
                deploy::rollback(&configs, Horizon(7), None, &gs, at("2026-01-12T05:00:00Z"), &r).unwrap();
            }
            op => {
                let fail = op == "deploy_failing_check";
                let r = record("crash-child");
                let req = DeployRequest {
                    configs_dir: &configs,
                    horizon: Horizon(7),
                    new_config: &new,
                    message: "model-optimizer: deploy 7d context=90 samples=100 temperature=1.0 (RMSE -7.2%)",
                    git: &gs,
                    backups_to_keep: 10,
                    now: at("2026-01-11T05:00:00Z"),
                    record: &r,
                };
                deploy::deploy(req, &|_: &Path| {
                    if fail {
                        anyhow::bail!("smoke check failed");
                    }
                    Ok(())
                })
                .unwrap();
            }
        }
        // Reaching here means the failpoint never fired: the parent sees a clean exit.
    }

    struct Case {
        failpoint: &'static str,
        op: &'static str,
        /// Which version the config must hold after the crash.
        expect_new: bool,
        /// Whether HEAD must hold the new version.
        expect_committed_new: bool,
        operation: Operation,
    }

    #[test]
    fn failpoint_matrix() {
        for case in cases() {
            check_case(&case);
        }
    }

    fn cases() -> [Case; 6] {
        [
            Case {
                failpoint: "after_backup",
                op: "deploy",
                expect_new: false,
                expect_committed_new: false,
                operation: Operation::Deploy,
            },
            Case {
                failpoint: "after_temp_write",
                op: "deploy",
                expect_new: false,
                expect_committed_new: false,
                operation: Operation::Deploy,
            },
            Case {
                failpoint: "after_rename",
                op: "deploy",
                expect_new: true,
                expect_committed_new: false,
                operation: Operation::Deploy,
            },
            Case {
                failpoint: "after_commit",
                op: "deploy",
                expect_new: true,
                expect_committed_new: true,
                operation: Operation::Deploy,
            },
            Case {
                failpoint: "during_rollback",
                op: "deploy_failing_check",
                expect_new: true,
                expect_committed_new: true,
                operation: Operation::Deploy,
            },
            Case {
                failpoint: "during_rollback",
                op: "rollback",
                expect_new: true,
                expect_committed_new: true,
                operation: Operation::Rollback,
            },
        ]
    }

    /// One case in a fresh repository: crash at the failpoint, check what is left, recover,
    /// check again, and deploy once more.
    fn check_case(case: &Case) {
        let label = format!("{} during {}", case.failpoint, case.op);
        let (_dir, root) = root_with_repo();
        let configs = root.join("configs");
        if case.op == "rollback" {
            deploy_first(&configs, &label);
        }
        crash_at_failpoint(case, &configs, &label);
        check_after_crash(case, &root, &label);
        check_recovery(case, &root, &label);
        check_next_deploy(&root, &label);
    }

    /// Something to roll back: the new config deployed for real first.
    fn deploy_first(configs: &Path, label: &str) {
        let gs = git_settings();
        let new = new();
        let r = record("first");
        let req = DeployRequest {
            configs_dir: configs,
            horizon: Horizon(7),
            new_config: &new,
            message: "deploy",
            git: &gs,
            backups_to_keep: 10,
            now: at("2026-01-11T05:00:00Z"),
            record: &r,
        };
        assert!(
            deploy::deploy(req, &|_: &Path| Ok(())).unwrap().deployed(),
            "{label}"
        );
        deploy::finish(configs).unwrap();
    }

    /// Runs the case's operation in a child that aborts at the failpoint.
    fn crash_at_failpoint(case: &Case, configs: &Path, label: &str) {
        let child = spawn_child(
            "deploy::crash::crash_child",
            &serde_json::json!({ "configs": configs, "op": case.op }),
            &[(failpoint::ENV, case.failpoint)],
        );
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(&format!("failpoint {}: aborting", case.failpoint)),
            "{label}: the child must abort at the failpoint; status {}, stderr: {stderr}",
            out.status
        );
    }

    /// Before recovery: the config is a complete old or new version, the old one backed up, the
    /// repository sound.
    fn check_after_crash(case: &Case, root: &Path, label: &str) {
        let configs = root.join("configs");
        let cfg = configs.join("chronos_7d.json");
        // The config is a complete old or new version, as expected.
        let bytes = fs::read(&cfg).unwrap();
        ForecasterConfig::parse(&bytes, &cfg)
            .unwrap_or_else(|e| panic!("{label}: config does not parse: {e:#}"));
        let expected = if case.expect_new { new() } else { old() };
        assert_eq!(bytes, expected, "{label}: config version");
        // If new, a backup of the old exists.
        let backups = deploy::backup::list(&configs, Horizon(7)).unwrap();
        if case.expect_new {
            assert!(
                backups.iter().any(|b| fs::read(&b.path).unwrap() == old()),
                "{label}: a backup of the old config exists"
            );
        }
        // The repository is consistent and HEAD valid; the person's change is still staged.
        git(root, &["fsck", "--strict", "--no-progress"]);
        let committed = git(root, &["show", "HEAD:configs/chronos_7d.json"]);
        let want = if case.expect_committed_new { new() } else { old() };
        assert_eq!(committed.as_bytes(), want.as_slice(), "{label}: HEAD's config");
        assert_eq!(
            git(root, &["diff", "--cached", "--name-only"]).trim(),
            "README.md",
            "{label}"
        );
    }

    /// Recovery says what it found and cleans up.
    fn check_recovery(case: &Case, root: &Path, label: &str) {
        let configs = root.join("configs");
        let cfg = configs.join("chronos_7d.json");
        let report = deploy::recover(&configs).unwrap();
        let found = report
            .interrupted
            .clone()
            .unwrap_or_else(|| panic!("{label}: half operation reported"));
        assert_eq!(found.operation, case.operation, "{label}");
        // The journal's "new" is what the operation puts in place: the deployed config for a
        // deploy, the restored backup for a rollback.
        let state = if (case.operation == Operation::Deploy) == case.expect_new {
            ConfigState::New
        } else {
            ConfigState::Old
        };
        assert_eq!(found.config_state, state, "{label}: {}", found.describe());
        assert_eq!(
            found.config_committed,
            Some(case.expect_new == case.expect_committed_new),
            "{label}"
        );
        if case.failpoint == "after_temp_write" {
            assert_eq!(
                report.removed_temp_files.len(),
                1,
                "{label}: the half-written temp file is swept"
            );
        }
        // The record is owed: the operation's own when its config stands, else `failed`.
        assert_eq!(report.owed.len(), 1, "{label}");
        let stands = if case.op == "rollback" {
            !case.expect_new
        } else {
            case.expect_new && case.failpoint != "during_rollback"
        };
        assert_eq!(
            report.owed[0].action == Action::Failed,
            !stands,
            "{label}: {:?}",
            report.owed[0]
        );
        assert!(
            report.owed[0].message.starts_with(deploy::recover::RECOVERED),
            "{label}"
        );
        // HEAD, the index and the config agree after recovery; the person's work stays.
        assert_eq!(
            git(root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
            fs::read(&cfg).unwrap().as_slice(),
            "{label}: HEAD after recovery"
        );
        assert_eq!(
            git(root, &["diff", "--cached", "--name-only"]).trim(),
            "README.md",
            "{label}"
        );
        deploy::finish(&configs).unwrap();
        let leftovers: Vec<_> = fs::read_dir(&configs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| Path::new(n).extension().is_some_and(|e| e == "tmp") || n == ".deploy-journal.json")
            .collect();
        assert!(leftovers.is_empty(), "{label}: left behind {leftovers:?}");
        assert!(deploy::recover(&configs).unwrap().is_clean(), "{label}");
    }

    /// And the next deploy works from there.
    fn check_next_deploy(root: &Path, label: &str) {
        let configs = root.join("configs");
        let gs = git_settings();
        let newer = config(270, "2026-01-18T05:00:00Z");
        let r = record("next");
        let req = DeployRequest {
            configs_dir: &configs,
            horizon: Horizon(7),
            new_config: &newer,
            message: "next deploy",
            git: &gs,
            backups_to_keep: 10,
            now: at("2026-01-18T05:00:00Z"),
            record: &r,
        };
        assert!(
            deploy::deploy(req, &|_: &Path| Ok(())).unwrap().deployed(),
            "{label}"
        );
        assert_eq!(
            git(root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
            newer.as_slice()
        );
        git(root, &["fsck", "--strict", "--no-progress"]);
    }
}

//! Bad states refused before anything changes, and causes named as they are: git states a
//! person would not commit into, symlinked configs, a config write that fails, a full disk, a
//! bad environment variable, a byte order mark, a login over a clear connection, stray or
//! malformed config files. Each checks the exit code, the one `error:` line and (where the
//! refusal comes first) that no file under the root changed.

use std::path::Path;

use chrono::{TimeZone, Utc};
use model_optimizer::domain::Horizon;
use model_optimizer::forecaster_config::ForecasterConfig;
use serde::Deserialize;

use crate::util::{business_day_series, Output, TestEnv};

/// The one `error:` line of a failed run, after checking the exit code and that stdout is empty.
#[track_caller]
fn one_error(out: &Output, code: i32) -> String {
    out.expect_code(code);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {}", out.stderr);
    lines[0].to_string()
}

/// Runs `args` and expects a refusal with `code`, every needle in the error line, nothing on
/// stdout and no file under the root changed.
#[track_caller]
fn refused(env: &TestEnv, args: &[&str], extra: &[(&str, &str)], code: i32, needles: &[&str]) -> String {
    let before = env.snapshot();
    let out = env.run_with(args, extra);
    let line = one_error(&out, code);
    for n in needles {
        assert!(line.contains(n), "`{n}` not in: {line}");
    }
    assert!(out.stdout.is_empty(), "stdout on error: {}", out.stdout);
    assert_eq!(env.snapshot(), before, "files under the root changed: {line}");
    line
}

/// A repository root with a backup of 7d that differs from its config, so `rollback 7d` has
/// something to do, and the lock's holder file an earlier run leaves behind (empty).
fn repo_with_backup() -> TestEnv {
    let env = TestEnv::new().with_demo_series();
    let mut older = ForecasterConfig::initial(
        Horizon(7),
        "amazon/chronos-bolt-small",
        Utc.with_ymd_and_hms(2026, 1, 4, 5, 0, 0).unwrap(),
    );
    older.context_length = 90;
    env.write(
        "configs/backups/chronos_7d_20260104_050000.json",
        older.to_bytes(),
    );
    env.write(".model-optimizer.lock", "");
    env.git_init();
    env
}

/// A named repository state, how to make it, and what the refusal must say.
type GitCase<'a> = (&'a str, &'a dyn Fn(&TestEnv), &'a [&'a str]);

#[test]
fn rollback_refuses_git_states_a_person_would_not_commit_into() {
    let cases: [GitCase<'_>; 5] = [
        (
            "detached HEAD",
            &|e| {
                e.git(&["checkout", "-q", "--detach"]);
            },
            &["HEAD is detached", "git -C", "switch"],
        ),
        (
            "merge in progress",
            &|e| {
                let head = e.git(&["rev-parse", "HEAD"]);
                e.write(".git/MERGE_HEAD", head);
            },
            &["a merge is in progress", "git merge --abort"],
        ),
        (
            "rebase in progress",
            &|e| std::fs::create_dir_all(e.path(".git/rebase-merge")).unwrap(),
            &["a rebase is in progress", "git rebase --continue"],
        ),
        (
            "cherry-pick in progress",
            &|e| {
                let head = e.git(&["rev-parse", "HEAD"]);
                e.write(".git/CHERRY_PICK_HEAD", head);
            },
            &["a cherry-pick is in progress", "git cherry-pick --abort"],
        ),
        (
            "conflicts",
            &|e| {
                e.git(&["checkout", "-q", "-b", "other"]);
                e.write("configs/optimizer.toml", "# theirs\n");
                e.git(&["commit", "-q", "-am", "theirs"]);
                e.git(&["checkout", "-q", "-"]);
                e.write("configs/optimizer.toml", "# ours\n");
                e.git(&["commit", "-q", "-am", "ours"]);
                let merge = std::process::Command::new("git")
                    .args([
                        "-c",
                        "user.name=P",
                        "-c",
                        "user.email=p@example.com",
                        "merge",
                        "-q",
                        "other",
                    ])
                    .current_dir(e.root())
                    .output()
                    .unwrap();
                assert!(!merge.status.success());
                std::fs::remove_file(e.path(".git/MERGE_HEAD")).unwrap();
                // The conflicted settings file is not valid TOML; settle it outside git.
                e.write("configs/optimizer.toml", "");
            },
            &["unresolved conflicts (configs/optimizer.toml)", "resolve them"],
        ),
    ];
    for (name, setup, needles) in cases {
        let env = repo_with_backup();
        setup(&env);
        let line = refused(&env, &["rollback", "7d"], &[], 78, needles);
        eprintln!("{name}: {line}");
    }
}

#[test]
fn run_refuses_a_detached_head_before_searching() {
    let env = repo_with_backup();
    env.git(&["checkout", "-q", "--detach"]);
    let m = crate::util::micro_model().display().to_string();
    refused(
        &env,
        &["run", "--all", "--force", "--model", &m],
        &[],
        78,
        &["HEAD is detached"],
    );
}

#[test]
fn a_symlinked_config_is_refused_and_stays_a_link() {
    let env = repo_with_backup();
    std::fs::rename(
        env.path("configs/chronos_7d.json"),
        env.path("chronos_7d.real.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../chronos_7d.real.json", env.path("configs/chronos_7d.json")).unwrap();
    refused(
        &env,
        &["rollback", "7d"],
        &[],
        78,
        &["chronos_7d.json", "symbolic link", "cp --remove-destination"],
    );
    assert!(std::fs::symlink_metadata(env.path("configs/chronos_7d.json"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Makes a file immutable (`chattr +i`, root only) or, failing that, its directory read-only,
/// and undoes it on drop so the temp root can be removed.
struct Unwritable {
    file: std::path::PathBuf,
    chattr: bool,
}

impl Unwritable {
    fn new(file: &Path) -> Unwritable {
        let chattr = std::process::Command::new("chattr")
            .arg("+i")
            .arg(file)
            .status()
            .is_ok_and(|s| s.success());
        if !chattr {
            use std::os::unix::fs::PermissionsExt;
            let dir = file.parent().unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        Unwritable {
            file: file.to_path_buf(),
            chattr,
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.chattr {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.file)
                .status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                self.file.parent().unwrap(),
                std::fs::Permissions::from_mode(0o755),
            );
        }
    }
}

#[test]
fn a_config_write_that_fails_changes_nothing_and_restores_nothing() {
    let env = repo_with_backup();
    let guard = Unwritable::new(&env.path("configs/chronos_7d.json"));
    let line = refused(
        &env,
        &["rollback", "7d"],
        &[],
        1,
        &["chronos_7d.json", "not replaced, nothing changed"],
    );
    assert!(!line.contains("restor"), "nothing was restored: {line}");
    if guard.chattr {
        assert!(line.contains("lsattr"), "names the cause: {line}");
    }
    drop(guard);
    // The next attempt, with the file writable again, works.
    env.run(&["rollback", "7d"]).success();
}

/// A small tmpfs (root only), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[derive(Debug, Deserialize)]
struct HistoryOut {
    records: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Row {
    action: String,
    message: String,
}

#[test]
fn a_full_disk_at_the_history_append_names_itself_and_the_record_is_kept() {
    let env = repo_with_backup();
    let disk = env.path("full");
    let Some(_mount) = Tmpfs::mount(&disk) else {
        eprintln!("skipping: cannot mount a tmpfs (not root), so a full disk cannot be staged");
        return;
    };
    // Fill it: the history append then meets ENOSPC for real.
    let mut filler = std::fs::File::create(disk.join("filler")).unwrap();
    let _ = std::io::Write::write_all(&mut filler, &vec![0u8; 128 * 1024]);
    drop(filler);
    let history = disk.join("history.parquet");
    let var = ("MODEL_OPTIMIZER_PATHS_HISTORY", history.to_str().unwrap());
    let out = env.run_with(&["rollback", "7d"], &[var]);
    let line = one_error(&out, 1);
    assert!(
        line.contains("history.parquet")
            && line.contains("No space left on device")
            && line.contains("disk is full"),
        "{line}"
    );
    assert!(!line.to_lowercase().contains("thrift"), "{line}");
    // The summary still printed, and the record waits in the journal.
    assert!(out.stdout.contains("restored"), "{}", out.stdout);
    assert!(env.path("configs/.deploy-journal.json").exists());
    assert!(!history.exists(), "no partial history file");
    // With space again, the next `status` appends it, once.
    std::fs::remove_file(disk.join("filler")).unwrap();
    env.run_with(&["status"], &[var]).success();
    env.run_with(&["status"], &[var]).success();
    let h: HistoryOut = env.run_with(&["history", "--json"], &[var]).success().json();
    assert_eq!(h.records.len(), 1, "{:?}", h.records);
    assert_eq!(h.records[0].action, "rolled_back");
    assert!(
        h.records[0]
            .message
            .starts_with("recovered after an interrupted run: "),
        "{}",
        h.records[0].message
    );
    assert!(!env.path("configs/.deploy-journal.json").exists());
    assert!(env
        .git(&["status", "--porcelain", "--", "configs/chronos_7d.json"])
        .trim()
        .is_empty());
}

#[test]
fn messages_name_the_real_cause() {
    let env = TestEnv::new().with_demo_series();
    // A bad value set by a variable names the variable, not the file.
    let line = refused(
        &env,
        &["status"],
        &[("MODEL_OPTIMIZER_TRIGGERS_DRIFT_ALPHA", "2.0")],
        78,
        &[
            "environment variable MODEL_OPTIMIZER_TRIGGERS_DRIFT_ALPHA",
            "triggers.drift_alpha",
        ],
    );
    assert!(!line.contains("optimizer.toml"), "{line}");
    // A byte order mark is named as such.
    let cfg = env.read("configs/chronos_15d.json");
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(&cfg);
    env.write("configs/chronos_15d.json", &bom);
    refused(
        &env,
        &["status"],
        &[],
        78,
        &["chronos_15d.json", "byte order mark"],
    );
    env.write("configs/chronos_15d.json", &cfg);
    // A horizon with a space is told its shape.
    refused(&env, &["history", "--horizon", "7 d"], &[], 2, &["no spaces"]);
    // A login over a clear connection is refused before anything is sent; the password shows
    // nowhere.
    env.write(
        "configs/optimizer.toml",
        "[smtp]\nenabled = true\nto = [\"ops@example.com\"]\nuser = \"mailer\"\ntls = \"none\"\n",
    );
    let out = env.run_with(
        &["notify", "--test"],
        &[("MODEL_OPTIMIZER_SMTP_PASSWORD", "hunter2-secret")],
    );
    let line = one_error(&out, 78);
    assert!(
        line.contains("smtp.allow_plaintext_auth") && line.contains("unencrypted"),
        "{line}"
    );
    assert!(!out.stderr.contains("hunter2") && !out.stdout.contains("hunter2"));
}

#[test]
fn malformed_or_stray_config_files_are_refused_by_name() {
    let env = TestEnv::new().with_demo_series();
    // A JSON array of the values in field order.
    let v: serde_json::Value = serde_json::from_slice(&env.read("configs/chronos_30d.json")).unwrap();
    let values: Vec<serde_json::Value> = v.as_object().unwrap().values().cloned().collect();
    let cfg = env.read("configs/chronos_30d.json");
    env.write("configs/chronos_30d.json", serde_json::to_vec(&values).unwrap());
    refused(
        &env,
        &["status"],
        &[],
        78,
        &["chronos_30d.json", "JSON object", "an array"],
    );
    env.write("configs/chronos_30d.json", &cfg);
    // A second file for 7d under a non-canonical name.
    env.write("configs/chronos_07d.json", env.read("configs/chronos_7d.json"));
    refused(
        &env,
        &["status"],
        &[],
        78,
        &["chronos_07d.json", "chronos_7d.json"],
    );
}

/// The check a forecast makes on its context (`data::require_observed_context`), on a series
/// read from a real file: how many values are missing, from which date, and the fix.
#[test]
fn a_series_ending_in_missing_values_is_refused_with_count_and_date() {
    let env = TestEnv::new();
    let mut s = business_day_series(100);
    for v in &mut s.values[95..] {
        *v = f64::NAN;
    }
    env.write_series("data/usdclp.parquet", &s);
    let path = env.path("data/usdclp.parquet");
    let loaded = model_optimizer::data::load_series(&path).unwrap();
    let e = model_optimizer::data::require_observed_context(&loaded, 5, &path).unwrap_err();
    assert_eq!(
        model_optimizer::exit::code_of(&e),
        model_optimizer::exit::ExitCode::Invalid
    );
    let text = format!("{e:#}");
    assert!(
        text.contains("usdclp.parquet")
            && text.contains(&format!("last 5 values (from {})", s.dates[95]))
            && text.contains(&format!("--as-of {}", s.dates[94]))
            && !text.contains('\n'),
        "{text}"
    );
    model_optimizer::data::require_observed_context(&loaded, 6, &path).unwrap();
}

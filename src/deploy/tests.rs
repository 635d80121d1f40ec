//! Tests of the deploy orchestration on real temp git repositories (checked with the git CLI).

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::git::tests::{git, person_repo};
use super::*;
use crate::config::{GitMode, GitSettings};
use crate::history::{Action, HistoryRecord};

/// The history row the callers hand to `deploy` and `rollback`.
static RECORD: std::sync::LazyLock<HistoryRecord> = std::sync::LazyLock::new(|| HistoryRecord {
    run_id: "20260111T050000Z-42".into(),
    horizon: crate::domain::Horizon(7),
    optimization_date: at("2026-01-11T05:00:00Z"),
    action: Action::Deployed,
    triggered_by: crate::domain::TriggerKind::split("force").unwrap(),
    performance_degradation_pct: None,
    drift_severity: None,
    days_since_last: None,
    success: true,
    old: crate::history::RecordParams::default(),
    new: crate::history::RecordParams::default(),
    candidate: crate::history::RecordMetrics::default(),
    current: crate::history::RecordMetrics::default(),
    duration_seconds: 1.0,
    message: "deployed context=90".into(),
    attention: None,
});

fn record() -> &'static HistoryRecord {
    &RECORD
}

/// The journal's step and record after an operation returned; then the caller's `finish`.
fn finish_after(configs: &Path, step: Step) {
    let j = Journal::load(configs)
        .unwrap()
        .expect("the journal stays until finish");
    assert_eq!(j.step, step);
    assert_eq!(j.record.as_ref(), Some(record()));
    finish(configs).unwrap();
    assert!(!Journal::path(configs).exists());
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cfg_bytes(h: Horizon, context: usize, now: &str) -> Vec<u8> {
    let mut c = ForecasterConfig::initial(h, "amazon/chronos-bolt-small", at(now));
    c.context_length = context;
    c.to_bytes()
}

fn settings(mode: GitMode) -> GitSettings {
    GitSettings {
        mode,
        author_name: "model-optimizer".into(),
        author_email: "bot@example.com".into(),
    }
}

/// A person's repository whose configs/chronos_7d.json is a real, committed config.
fn repo_with_config() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let (d, root) = person_repo();
    let old = cfg_bytes(Horizon(7), 180, "2026-01-04T05:00:00Z");
    fs::write(root.join("configs/chronos_7d.json"), &old).unwrap();
    git(
        &root,
        &[
            "commit",
            "-q",
            "-m",
            "real config",
            "--",
            "configs/chronos_7d.json",
        ],
    );
    (d, root, old)
}

fn request<'a>(configs: &'a Path, new: &'a [u8], git: &'a GitSettings, now: &str) -> DeployRequest<'a> {
    DeployRequest {
        configs_dir: configs,
        horizon: Horizon(7),
        new_config: new,
        message: "model-optimizer: deploy 7d context=90 samples=100 temperature=1.0 (RMSE -7.2%)\n\n| criterion | ok |\nrun 42",
        git,
        backups_to_keep: 10,
        now: at(now),
        record: record(),
    }
}

#[allow(clippy::unnecessary_wraps)] // the smoke-check callback's signature
fn ok(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn staged(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = git(root, &["diff", "--cached", "--name-only"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn deploy_backs_up_writes_commits_only_the_config_and_checks() {
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    let gs = settings(GitMode::Auto);
    let seen = std::cell::RefCell::new(None);
    let smoke = |p: &Path| {
        // The callback sees the deployed file, and the journal says the deploy is under way.
        *seen.borrow_mut() = Some((fs::read(p)?, Journal::load(&configs)?.map(|j| j.step)));
        Ok(())
    };
    let out = deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &smoke).unwrap();
    assert_eq!(out.status, DeployStatus::Deployed);
    assert_eq!(out.exit_code(), ExitCode::Success);
    assert_eq!(seen.into_inner().unwrap(), (new.clone(), Some(Step::Committed)));
    assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), new);
    let backup = out.backup.clone().unwrap();
    assert_eq!(backup, configs.join("backups/chronos_7d_20260111_050000.json"));
    assert_eq!(fs::read(&backup).unwrap(), old);
    let id = out.git.commit().unwrap();
    assert_eq!(git(&root, &["rev-parse", "HEAD"]).trim(), id.hex());
    assert_eq!(
        git(&root, &["show", "--name-only", "--format=", "HEAD"]).trim(),
        "configs/chronos_7d.json"
    );
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s"]).trim(),
        "model-optimizer: deploy 7d context=90 samples=100 temperature=1.0 (RMSE -7.2%)"
    );
    assert_eq!(staged(&root), ["README.md", "new_staged.txt"]);
    finish_after(&configs, Step::Done);
    // The backups directory is not committed by the deploy (only the config is).
    assert!(
        git(&root, &["status", "--porcelain", "--", "configs/chronos_7d.json"])
            .trim()
            .is_empty()
    );
    git(&root, &["fsck", "--strict", "--no-progress"]);
    assert!(recover(&configs).unwrap().is_clean());
}

#[test]
fn failing_smoke_check_restores_the_bytes_and_adds_a_revert_commit() {
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let head_before = git(&root, &["rev-parse", "HEAD"]).trim().to_string();
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    let gs = settings(GitMode::Require);
    let out = deploy(
        request(&configs, &new, &gs, "2026-01-11T05:00:00Z"),
        &|_: &Path| anyhow::bail!("forecast produced NaN"),
    )
    .unwrap();
    match &out.status {
        DeployStatus::RolledBack { reason } => assert!(
            reason.contains("smoke check") && reason.contains("NaN"),
            "{reason}"
        ),
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(out.exit_code(), ExitCode::DeployFailed);
    assert_eq!(
        fs::read(configs.join("chronos_7d.json")).unwrap(),
        old,
        "old bytes restored exactly"
    );
    let deploy_commit = out.git.commit().unwrap().clone();
    let revert = out.revert_commit.clone().unwrap();
    assert_eq!(git(&root, &["rev-parse", "HEAD"]).trim(), revert.hex());
    assert_eq!(git(&root, &["rev-parse", "HEAD~1"]).trim(), deploy_commit.hex());
    assert_eq!(git(&root, &["rev-parse", "HEAD~2"]).trim(), head_before);
    assert_eq!(
        git(&root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
        old.as_slice()
    );
    assert!(
        git(&root, &["log", "-1", "--format=%B"]).contains(&format!("This reverts commit {deploy_commit}"))
    );
    assert!(
        git(&root, &["status", "--porcelain", "--", "configs/chronos_7d.json"])
            .trim()
            .is_empty()
    );
    assert_eq!(staged(&root), ["README.md", "new_staged.txt"]);
    finish_after(&configs, Step::Undone);
    git(&root, &["fsck", "--strict", "--no-progress"]);
}

#[test]
fn deploy_without_repository_in_auto_mode_and_first_deploy_failure_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    fs::create_dir_all(&configs).unwrap();
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    let gs = settings(GitMode::Auto);
    // No config yet and a failing check: the config is absent again afterwards.
    let out = deploy(
        request(&configs, &new, &gs, "2026-01-11T05:00:00Z"),
        &|_: &Path| anyhow::bail!("bad"),
    )
    .unwrap();
    assert!(matches!(out.status, DeployStatus::RolledBack { .. }));
    assert_eq!((out.backup.as_ref(), &out.git), (None, &GitRecord::NoRepository));
    assert!(!configs.join("chronos_7d.json").exists());
    finish_after(&configs, Step::Undone);
    // Then it works.
    let out = deploy(request(&configs, &new, &gs, "2026-01-11T05:00:01Z"), &ok).unwrap();
    assert!(out.deployed());
    assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), new);
    finish_after(&configs, Step::Done);
    // Off mode never looks for a repository.
    let off = settings(GitMode::Off);
    let newer = cfg_bytes(Horizon(7), 270, "2026-01-18T05:00:00Z");
    let out = deploy(request(&configs, &newer, &off, "2026-01-18T05:00:00Z"), &ok).unwrap();
    assert_eq!(out.git, GitRecord::Off);
    assert_eq!(fs::read(out.backup.unwrap()).unwrap(), new);
}

#[test]
fn preflight_failures_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    fs::create_dir_all(&configs).unwrap();
    let old = cfg_bytes(Horizon(7), 180, "2026-01-04T05:00:00Z");
    fs::write(configs.join("chronos_7d.json"), &old).unwrap();
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    let req_mode = settings(GitMode::Require);
    let e = deploy(request(&configs, &new, &req_mode, "2026-01-11T05:00:00Z"), &ok).unwrap_err();
    assert_eq!(exit::code_of(&e), ExitCode::Invalid);
    assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), old);
    assert!(!backup::backups_dir(&configs).exists() && !Journal::path(&configs).exists());

    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    fs::write(root.join(".git/index.lock"), b"").unwrap();
    let gs = settings(GitMode::Auto);
    let e = format!(
        "{:#}",
        deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok).unwrap_err()
    );
    assert!(e.contains("index.lock"), "{e}");
    assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), old);
    assert!(!backup::backups_dir(&configs).exists() && !Journal::path(&configs).exists());
    fs::remove_file(root.join(".git/index.lock")).unwrap();
    // An unrecovered journal blocks the next operation until `recover` has reported it.
    Journal {
        operation: Operation::Deploy,
        horizon: Horizon(7),
        pid: 1,
        started: at("2026-01-10T05:00:00Z"),
        step: Step::Started,
        backup: None,
        had_config: true,
        new_fingerprint: fingerprint(b"x"),
        commit: None,
        message: String::new(),
        uses_git: true,
        author_name: "model-optimizer".into(),
        author_email: "bot@example.com".into(),
        failure: None,
        record: Some(record().clone()),
    }
    .save(&configs)
    .unwrap();
    let e = format!(
        "{:#}",
        deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok).unwrap_err()
    );
    assert!(e.contains(".deploy-journal.json") && e.contains("status"), "{e}");
    let e = format!(
        "{:#}",
        rollback(
            &configs,
            Horizon(7),
            None,
            &gs,
            at("2026-01-11T05:00:00Z"),
            record()
        )
        .unwrap_err()
    );
    assert!(e.contains("interrupted"), "{e}");
    let report = recover(&configs).unwrap();
    let found = report.interrupted.unwrap();
    assert_eq!(found.config_state, recover::ConfigState::Old);
    assert_eq!(found.config_committed, Some(true));
    assert_eq!(found.settled, recover::Settled::Undone);
    // Nothing was deployed: the record owed says the deploy failed.
    assert_eq!(report.owed.len(), 1);
    assert_eq!(report.owed[0].action, Action::Failed);
    assert!(report.owed[0].message.starts_with(recover::RECOVERED));
    assert!(
        Journal::path(&configs).exists(),
        "recover leaves the journal to finish"
    );
    finish(&configs).unwrap();
    assert!(deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok)
        .unwrap()
        .deployed());
}

#[test]
fn prune_keeps_the_newest_backups() {
    let (_d, root, _old) = repo_with_config();
    let configs = root.join("configs");
    let gs = settings(GitMode::Auto);
    for (i, ctx) in [90, 180, 270, 365, 90].into_iter().enumerate() {
        let now = format!("2026-02-0{}T05:00:00Z", i + 1);
        let new = cfg_bytes(Horizon(7), ctx, &now);
        let mut req = request(&configs, &new, &gs, &now);
        req.backups_to_keep = 3;
        let out = deploy(req, &ok).unwrap();
        assert!(out.deployed());
        assert_eq!(out.pruned.len(), usize::from(i >= 3));
        finish(&configs).unwrap();
    }
    let labels: Vec<String> = backup::list(&configs, Horizon(7))
        .unwrap()
        .iter()
        .map(backup::Backup::label)
        .collect();
    assert_eq!(labels, ["20260205_050000", "20260204_050000", "20260203_050000"]);
    assert_eq!(git(&root, &["rev-list", "--count", "HEAD"]).trim(), "7");
}

#[test]
fn rollback_restores_byte_identical_commits_and_toggles() {
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let gs = settings(GitMode::Auto);
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    assert!(deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok)
        .unwrap()
        .deployed());
    finish(&configs).unwrap();
    // A failed deploy later leaves a backup equal to the current config; rollback skips it.
    let bad = cfg_bytes(Horizon(7), 365, "2026-01-12T05:00:00Z");
    let failed = deploy(
        request(&configs, &bad, &gs, "2026-01-12T05:00:00Z"),
        &|_: &Path| anyhow::bail!("no"),
    )
    .unwrap();
    assert!(matches!(failed.status, DeployStatus::RolledBack { .. }));
    finish(&configs).unwrap();
    assert_eq!(
        rollback_target(&configs, Horizon(7), None).unwrap().1,
        "20260111_050000"
    );

    let r = rollback(
        &configs,
        Horizon(7),
        None,
        &gs,
        at("2026-01-13T05:00:00Z"),
        record(),
    )
    .unwrap();
    finish_after(&configs, Step::Done);
    assert_eq!(
        fs::read(configs.join("chronos_7d.json")).unwrap(),
        old,
        "byte-identical to the backup"
    );
    assert_eq!(r.label, "20260111_050000");
    assert_eq!(fs::read(r.safety_backup.as_ref().unwrap()).unwrap(), new);
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s"]).trim(),
        "model-optimizer: rollback 7d to 20260111_050000"
    );
    assert!(git(&root, &["log", "-1", "--format=%b"]).contains("run 20260111T050000Z-42"));
    assert_eq!(
        git(&root, &["rev-parse", "HEAD"]).trim(),
        r.git.commit().unwrap().hex()
    );
    assert_eq!(
        git(&root, &["show", "--name-only", "--format=", "HEAD"]).trim(),
        "configs/chronos_7d.json"
    );
    assert_eq!(staged(&root), ["README.md", "new_staged.txt"]);
    // A second rollback undoes the first (its safety backup is now the newest).
    let r2 = rollback(
        &configs,
        Horizon(7),
        None,
        &gs,
        at("2026-01-13T05:00:00Z"),
        record(),
    )
    .unwrap();
    finish(&configs).unwrap();
    assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), new);
    assert_eq!(r2.label, "20260113_050000");
    // An explicit timestamp; the third safety backup in that second gets suffix _3.
    let r3 = rollback(
        &configs,
        Horizon(7),
        Some("20260111_050000"),
        &gs,
        at("2026-01-13T05:00:00Z"),
        record(),
    )
    .unwrap();
    assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), old);
    assert!(r3
        .safety_backup
        .unwrap()
        .ends_with("chronos_7d_20260113_050000_3.json"));
    git(&root, &["fsck", "--strict", "--no-progress"]);
    finish_after(&configs, Step::Done);
}

#[test]
fn rollback_refuses_backups_that_are_not_configs_of_the_horizon() {
    let (_d, root, _old) = repo_with_config();
    let configs = root.join("configs");
    let gs = settings(GitMode::Auto);
    let stray = root.join("stray.json");
    fs::write(&stray, cfg_bytes(Horizon(15), 90, "2026-01-11T05:00:00Z")).unwrap();
    let e = rollback(
        &configs,
        Horizon(7),
        Some(stray.to_str().unwrap()),
        &gs,
        at("2026-01-13T05:00:00Z"),
        record(),
    )
    .unwrap_err();
    assert_eq!(exit::code_of(&e), ExitCode::Invalid);
    fs::write(&stray, b"{ not json").unwrap();
    let e = rollback(
        &configs,
        Horizon(7),
        Some(stray.to_str().unwrap()),
        &gs,
        at("2026-01-13T05:00:00Z"),
        record(),
    )
    .unwrap_err();
    assert_eq!(exit::code_of(&e), ExitCode::Invalid);
    let e = rollback(
        &configs,
        Horizon(7),
        None,
        &gs,
        at("2026-01-13T05:00:00Z"),
        record(),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("nothing to roll back to"), "{e:#}");
    assert_eq!(git(&root, &["log", "-1", "--format=%s"]).trim(), "real config");
}

/// Copies a directory tree (the state a crash would leave at that moment).
fn snapshot(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            snapshot(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn recover_completes_a_deploy_interrupted_before_its_smoke_check_and_owes_its_record() {
    let (d, root, _old) = repo_with_config();
    let configs = root.join("configs");
    let gs = settings(GitMode::Auto);
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    let crashed = d.path().join("crashed");
    // Freeze the repository as it is during the smoke check: a crash there leaves this.
    let smoke = |_: &Path| {
        snapshot(&root, &crashed);
        Ok(())
    };
    assert!(
        deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &smoke)
            .unwrap()
            .deployed()
    );
    let cconfigs = crashed.join("configs");
    fs::write(cconfigs.join(".chronos_7d.json.999.tmp"), b"{ half").unwrap();
    git(&crashed, &["fsck", "--strict", "--no-progress"]);
    let head = git(&crashed, &["rev-parse", "HEAD"]);
    let report = recover(&cconfigs).unwrap();
    assert_eq!(
        report.removed_temp_files,
        [cconfigs.join(".chronos_7d.json.999.tmp")]
    );
    let found = report.interrupted.clone().unwrap();
    assert_eq!(
        (found.operation, found.step, found.settled),
        (Operation::Deploy, Step::Committed, recover::Settled::Completed)
    );
    assert_eq!(
        (found.config_state, found.config_committed),
        (recover::ConfigState::New, Some(true))
    );
    assert_eq!(
        found.backup,
        Some(cconfigs.join("backups/chronos_7d_20260111_050000.json"))
    );
    let text = report.messages().join("\n");
    assert!(
        text.contains("the deploy stands")
            && text.contains("run 20260111T050000Z-42")
            && text.contains("stray temp file"),
        "{text}"
    );
    // The deploy's record is owed, marked as recovered; nothing needed committing.
    let mut expected = record().clone();
    expected.message = format!("{}{}", recover::RECOVERED, expected.message);
    assert_eq!(report.owed, [expected]);
    assert_eq!(git(&crashed, &["rev-parse", "HEAD"]), head);
    // Until the caller has recorded it, recovery finds the same and does the same.
    let again = recover(&cconfigs).unwrap();
    assert_eq!((again.interrupted, again.owed), (report.interrupted, report.owed));
    finish(&cconfigs).unwrap();
    assert!(recover(&cconfigs).unwrap().is_clean());
    // An unreadable journal is reported and left for a person.
    fs::write(Journal::path(&cconfigs), b"{").unwrap();
    let r = recover(&cconfigs).unwrap();
    assert!(r.journal_error.unwrap().contains(".deploy-journal.json"));
    assert!(Journal::path(&cconfigs).exists());
}

/// A journal as `deploy` leaves it at `step` (for states a crash leaves between two writes).
fn journal_at(
    op: Operation,
    step: Step,
    backup: Option<&Path>,
    new: &[u8],
    failure: Option<&str>,
) -> Journal {
    Journal {
        operation: op,
        horizon: Horizon(7),
        pid: 4242,
        started: at("2026-01-11T05:00:00Z"),
        step,
        backup: backup.map(|b| b.file_name().unwrap().to_string_lossy().into_owned()),
        had_config: true,
        new_fingerprint: fingerprint(new),
        commit: None,
        message: "model-optimizer: deploy 7d context=90\n\nrun 20260111T050000Z-42".into(),
        uses_git: true,
        author_name: "model-optimizer".into(),
        author_email: "bot@example.com".into(),
        failure: failure.map(String::from),
        record: Some(record().clone()),
    }
}

#[test]
fn recover_commits_a_config_left_staged_by_a_commit_killed_before_it_landed() {
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let cfg = configs.join("chronos_7d.json");
    let b = backup::create(&configs, Horizon(7), at("2026-01-11T05:00:00Z")).unwrap();
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    fs::write(&cfg, &new).unwrap();
    // libgit2 wrote the index, then the process died before the commit.
    git(&root, &["add", "configs/chronos_7d.json"]);
    journal_at(Operation::Deploy, Step::Written, Some(&b), &new, None)
        .save(&configs)
        .unwrap();
    let report = recover(&configs).unwrap();
    let found = report.interrupted.unwrap();
    assert_eq!(
        (found.config_state, found.config_committed, found.settled),
        (
            recover::ConfigState::New,
            Some(false),
            recover::Settled::Completed
        )
    );
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s"]).trim(),
        "model-optimizer: deploy 7d context=90 (recovered)"
    );
    let body = git(&root, &["log", "-1", "--format=%b"]);
    assert!(
        body.contains("interrupted run") && body.contains("run 20260111T050000Z-42"),
        "{body}"
    );
    assert_eq!(
        git(&root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
        new.as_slice()
    );
    assert_eq!(
        git(&root, &["show", "--name-only", "--format=", "HEAD"]).trim(),
        "configs/chronos_7d.json"
    );
    // Nothing of ours is staged or modified; the person's staged work still is.
    assert_eq!(staged(&root), ["README.md", "new_staged.txt"]);
    assert!(
        git(&root, &["status", "--porcelain", "--", "configs/chronos_7d.json"])
            .trim()
            .is_empty()
    );
    assert_eq!(report.owed[0].action, Action::Deployed);
    finish(&configs).unwrap();
    git(&root, &["fsck", "--strict", "--no-progress"]);

    // The same crash in front of an old config (the rename had not happened): the staged
    // entry is cleared and nothing is committed.
    let head = git(&root, &["rev-parse", "HEAD"]);
    let b2 = backup::create(&configs, Horizon(7), at("2026-01-12T05:00:00Z")).unwrap();
    let newer = cfg_bytes(Horizon(7), 270, "2026-01-12T05:00:00Z");
    fs::write(&cfg, &newer).unwrap();
    git(&root, &["add", "configs/chronos_7d.json"]);
    fs::write(&cfg, &new).unwrap();
    journal_at(Operation::Deploy, Step::BackedUp, Some(&b2), &newer, None)
        .save(&configs)
        .unwrap();
    let report = recover(&configs).unwrap();
    let found = report.interrupted.unwrap();
    assert_eq!(
        (found.config_state, found.settled),
        (recover::ConfigState::Old, recover::Settled::Undone)
    );
    assert_eq!(git(&root, &["rev-parse", "HEAD"]), head);
    assert_eq!(staged(&root), ["README.md", "new_staged.txt"]);
    assert!(
        found
            .describe()
            .contains("cleared the change an interrupted commit left staged"),
        "{}",
        found.describe()
    );
    assert_eq!(report.owed[0].action, Action::Failed);
    assert!(
        report.owed[0].message.contains("nothing is deployed"),
        "{}",
        report.owed[0].message
    );
    let _ = old;
}

#[test]
fn recover_finishes_an_interrupted_undo_and_commits_the_restoration() {
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let cfg = configs.join("chronos_7d.json");
    let b = backup::create(&configs, Horizon(7), at("2026-01-11T05:00:00Z")).unwrap();
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    fs::write(&cfg, &new).unwrap();
    let deploy_commit = git::commit_file(
        &root,
        &cfg,
        "model-optimizer: deploy 7d",
        "Bot",
        "bot@example.com",
    )
    .unwrap()
    .unwrap();
    let mut j = journal_at(
        Operation::Deploy,
        Step::RestoringAfterFailure,
        Some(&b),
        &new,
        Some("smoke check: NaN"),
    );
    j.commit = Some(deploy_commit.hex().to_string());
    j.save(&configs).unwrap();
    let report = recover(&configs).unwrap();
    let found = report.interrupted.unwrap();
    assert_eq!(
        (found.config_state, found.settled),
        (recover::ConfigState::New, recover::Settled::Undone)
    );
    assert_eq!(fs::read(&cfg).unwrap(), old, "the previous bytes are back");
    assert_eq!(
        git(&root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
        old.as_slice()
    );
    assert!(
        git(&root, &["log", "-1", "--format=%B"]).contains(&format!("This reverts commit {deploy_commit}"))
    );
    let owed = &report.owed[0];
    assert_eq!((owed.action, owed.success), (Action::Failed, false));
    assert!(owed.message.contains("smoke check: NaN"), "{}", owed.message);
    assert_eq!(staged(&root), ["README.md", "new_staged.txt"]);
    git(&root, &["fsck", "--strict", "--no-progress"]);
}

#[test]
fn recover_commits_a_restored_rollback() {
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let cfg = configs.join("chronos_7d.json");
    let gs = settings(GitMode::Auto);
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    assert!(deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok)
        .unwrap()
        .deployed());
    finish(&configs).unwrap();
    // A rollback killed after writing the backup's bytes, before its commit.
    let safety = backup::create(&configs, Horizon(7), at("2026-01-12T05:00:00Z")).unwrap();
    fs::write(&cfg, &old).unwrap();
    let mut j = journal_at(Operation::Rollback, Step::Written, Some(&safety), &old, None);
    j.message = "model-optimizer: rollback 7d to 20260111_050000\n\nrun 20260111T050000Z-42".into();
    j.save(&configs).unwrap();
    let report = recover(&configs).unwrap();
    let found = report.interrupted.unwrap();
    assert_eq!(found.settled, recover::Settled::Completed);
    assert!(
        found.describe().contains("the rollback stands"),
        "{}",
        found.describe()
    );
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s"]).trim(),
        "model-optimizer: rollback 7d to 20260111_050000 (recovered)"
    );
    assert!(
        git(&root, &["status", "--porcelain", "--", "configs/chronos_7d.json"])
            .trim()
            .is_empty()
    );
    assert_eq!(
        report.owed[0].action,
        Action::Deployed,
        "the journal's own record"
    );
}

/// A named repository state, how to make it, and the fix the refusal must name.
type GitCase<'a> = (&'a str, &'a dyn Fn(&Path), &'a str);

#[test]
fn unfinished_git_operations_and_detached_head_are_refused_and_change_nothing() {
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    let gs = settings(GitMode::Auto);
    let cases: [GitCase<'_>; 4] = [
        (
            "detached HEAD",
            &|r: &Path| {
                git(r, &["checkout", "-q", "--detach", "HEAD"]);
            },
            "git -C",
        ),
        (
            "merge in progress",
            &|r: &Path| {
                fs::write(r.join(".git/MERGE_HEAD"), git(r, &["rev-parse", "HEAD"])).unwrap();
            },
            "git merge --abort",
        ),
        (
            "rebase in progress",
            &|r: &Path| {
                fs::create_dir_all(r.join(".git/rebase-merge")).unwrap();
            },
            "git rebase --abort",
        ),
        (
            "cherry-pick in progress",
            &|r: &Path| {
                fs::write(r.join(".git/CHERRY_PICK_HEAD"), git(r, &["rev-parse", "HEAD"])).unwrap();
            },
            "git cherry-pick --abort",
        ),
    ];
    for (name, setup, fix) in cases {
        let (_d, root, old) = repo_with_config();
        let configs = root.join("configs");
        setup(&root);
        let head = git(&root, &["rev-parse", "HEAD"]);
        let index = fs::read(root.join(".git/index")).unwrap();
        let e = deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok).unwrap_err();
        assert_eq!(exit::code_of(&e), ExitCode::Invalid, "{name}");
        let text = format!("{e:#}");
        assert!(text.contains(fix) && !text.contains('\n'), "{name}: {text}");
        assert_eq!(
            exit::code_of(&preflight(&configs, &gs).unwrap_err()),
            ExitCode::Invalid
        );
        assert_eq!(fs::read(configs.join("chronos_7d.json")).unwrap(), old, "{name}");
        assert!(
            !backup::backups_dir(&configs).exists() && !Journal::path(&configs).exists(),
            "{name}"
        );
        assert_eq!(git(&root, &["rev-parse", "HEAD"]), head, "{name}");
        assert_eq!(fs::read(root.join(".git/index")).unwrap(), index, "{name}");
    }
}

#[test]
fn conflicts_in_the_index_are_refused() {
    let (_d, root, _old) = repo_with_config();
    git(&root, &["commit", "-q", "-m", "person's staged work"]);
    git(&root, &["checkout", "-q", "-b", "other"]);
    fs::write(root.join("notes.txt"), "theirs\n").unwrap();
    git(&root, &["commit", "-q", "-am", "theirs"]);
    git(&root, &["checkout", "-q", "-"]);
    fs::write(root.join("notes.txt"), "ours\n").unwrap();
    git(&root, &["commit", "-q", "-am", "ours"]);
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
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(!merge.status.success(), "the merge conflicts");
    let e = format!("{:#}", git::check_ready(&root).unwrap_err());
    assert!(e.contains("merge is in progress"), "{e}");
    // Conflicts left after the merge state is gone are refused by name.
    fs::remove_file(root.join(".git/MERGE_HEAD")).unwrap();
    let e = format!("{:#}", git::check_ready(&root).unwrap_err());
    assert!(e.contains("unresolved conflicts (notes.txt)"), "{e}");
}

#[test]
fn a_symlinked_config_is_refused_and_a_mode_is_kept() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, root, old) = repo_with_config();
    let configs = root.join("configs");
    let cfg = configs.join("chronos_7d.json");
    let gs = settings(GitMode::Auto);
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    fs::rename(&cfg, root.join("real_7d.json")).unwrap();
    std::os::unix::fs::symlink("../real_7d.json", &cfg).unwrap();
    let e = deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok).unwrap_err();
    assert_eq!(exit::code_of(&e), ExitCode::Invalid);
    assert!(
        format!("{e:#}").contains("symbolic link (to ../real_7d.json)"),
        "{e:#}"
    );
    assert!(fs::symlink_metadata(&cfg).unwrap().file_type().is_symlink());
    assert!(!backup::backups_dir(&configs).exists() && !Journal::path(&configs).exists());
    // A regular config with restricted permissions keeps them across the replacement.
    fs::remove_file(&cfg).unwrap();
    fs::write(&cfg, &old).unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(deploy(request(&configs, &new, &gs, "2026-01-11T05:00:00Z"), &ok)
        .unwrap()
        .deployed());
    assert_eq!(fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o640);
    assert_eq!(
        git(&root, &["ls-tree", "HEAD", "configs/chronos_7d.json"])
            .split_whitespace()
            .next(),
        Some("100644")
    );
}

#[test]
fn recover_removes_the_git_locks_a_killed_commit_left_and_commits() {
    let (_d, root, _old) = repo_with_config();
    let configs = root.join("configs");
    let cfg = configs.join("chronos_7d.json");
    let b = backup::create(&configs, Horizon(7), at("2026-01-11T05:00:00Z")).unwrap();
    let new = cfg_bytes(Horizon(7), 90, "2026-01-11T05:00:00Z");
    fs::write(&cfg, &new).unwrap();
    // Killed inside libgit2's index write: the lock is all that is left of it.
    fs::write(root.join(".git/index.lock"), b"partial").unwrap();
    let mut j = journal_at(Operation::Deploy, Step::Written, Some(&b), &new, None);
    // A lock from before the operation started is someone else's: it stays, and the commit
    // reports the `rm` to run.
    j.started = Utc::now() + chrono::Duration::hours(1);
    j.save(&configs).unwrap();
    let found = recover(&configs).unwrap().interrupted.unwrap();
    assert!(root.join(".git/index.lock").exists());
    assert!(
        found
            .actions
            .iter()
            .any(|a| a.contains("rm ") && a.contains("index.lock")),
        "{:?}",
        found.actions
    );
    // One created during the operation is removed, said so, and the deploy is committed.
    j.started = at("2026-01-11T05:00:00Z");
    j.save(&configs).unwrap();
    let found = recover(&configs).unwrap().interrupted.unwrap();
    assert!(!root.join(".git/index.lock").exists());
    assert!(
        found.actions[0].contains("index.lock") && found.actions[0].contains("pid 4242"),
        "{:?}",
        found.actions
    );
    assert_eq!(
        git(&root, &["show", "HEAD:configs/chronos_7d.json"]).as_bytes(),
        new.as_slice()
    );
    finish(&configs).unwrap();
    git(&root, &["fsck", "--strict", "--no-progress"]);
}

//! Safe deployment of forecaster configs: backup, atomic write, git commit, smoke check, and
//! automatic restore when any of them fails; `rollback` to a backup; `recover` after a crash.
//! Knows files and git, not models: the caller passes the new config's bytes and a smoke-check
//! callback that reads the deployed file back, parses it and forecasts once.
//!
//! # Layout
//! - `atomic`: temp file + fsync + rename + directory fsync; sweeping stray temp files.
//! - `backup`: `configs/backups/chronos_<h>_<UTC time>.json` naming, listing, pruning.
//! - `git`: the only git2 user; commits exactly one file.
//! - `lock`: the run lock (exit 75 when busy).
//! - `journal`: `configs/.deploy-journal.json`, present only while an operation is under way.
//! - `recover`: what an interrupted run left behind.
//!
//! Callers hold the [`lock::RunLock`] around `deploy`, `rollback` and `recover`.

pub mod atomic;
pub mod backup;
pub mod git;
pub mod journal;
pub mod lock;
pub mod recover;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::config::GitSettings;
use crate::domain::Horizon;
use crate::exit::{self, ExitCode};
use crate::failpoint;
use crate::forecaster_config::ForecasterConfig;
pub use git::CommitId;
use journal::{fingerprint, Journal, Operation, Step};
pub use recover::{needs_recovery, recover, RecoveryReport};

/// What to deploy.
#[derive(Clone, Copy, Debug)]
pub struct DeployRequest<'a> {
    pub configs_dir: &'a Path,
    pub horizon: Horizon,
    /// The exact bytes of the new `chronos_<h>.json`.
    pub new_config: &'a [u8],
    /// The commit message: first line, blank line, body.
    pub message: &'a str,
    pub git: &'a GitSettings,
    pub backups_to_keep: usize,
    pub now: DateTime<Utc>,
}

/// What happened in git.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "commit")]
pub enum GitRecord {
    /// `git.mode = off`.
    Off,
    /// `git.mode = auto` and no repository contains the configs.
    NoRepository,
    /// HEAD already had exactly these bytes.
    Unchanged,
    /// Not reached (the operation failed before the commit step).
    NotCommitted,
    Committed(CommitId),
}

impl GitRecord {
    pub fn commit(&self) -> Option<&CommitId> {
        match self {
            GitRecord::Committed(id) => Some(id),
            _ => None,
        }
    }
}

/// How a deploy ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeployStatus {
    /// The new config is in place, committed (per mode) and passed the smoke check.
    Deployed,
    /// A step failed; the old config was restored (and a revert commit added if needed).
    RolledBack { reason: String },
    /// A step failed and restoring failed too: the config needs a person (see `recover`).
    RollbackFailed { reason: String, rollback_error: String },
}

/// The result of [`deploy`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeployOutcome {
    pub status: DeployStatus,
    pub config: PathBuf,
    /// The backup of the replaced config (None on a first deploy).
    pub backup: Option<PathBuf>,
    /// The deploy commit.
    pub git: GitRecord,
    /// The commit undoing the deploy commit after a later step failed.
    pub revert_commit: Option<CommitId>,
    /// Backups removed by pruning.
    pub pruned: Vec<PathBuf>,
    /// Problems that did not change the outcome (pruning, cleanup).
    pub warnings: Vec<String>,
}

impl DeployOutcome {
    pub fn deployed(&self) -> bool {
        self.status == DeployStatus::Deployed
    }

    /// 0 deployed, 4 rolled back, 1 when even the restore failed.
    pub fn exit_code(&self) -> ExitCode {
        match self.status {
            DeployStatus::Deployed => ExitCode::Success,
            DeployStatus::RolledBack { .. } => ExitCode::DeployFailed,
            DeployStatus::RollbackFailed { .. } => ExitCode::Runtime,
        }
    }
}

/// Refuses to start over an unrecovered interrupted operation: its journal would be lost.
fn ensure_no_journal(configs_dir: &Path) -> anyhow::Result<()> {
    if let Some(j) = Journal::load(configs_dir)? {
        anyhow::bail!(
            "{}: an earlier {} of {} (pid {}, started {}) was interrupted; run `model-optimizer status` to recover it first",
            Journal::path(configs_dir).display(),
            j.operation.as_str(),
            j.horizon,
            j.pid,
            j.started.to_rfc3339()
        );
    }
    Ok(())
}

/// The repository to commit in, checked to be usable before anything changes.
fn prepare_git(configs_dir: &Path, git: &GitSettings) -> anyhow::Result<(Option<PathBuf>, GitRecord)> {
    if git.mode == crate::config::GitMode::Off {
        return Ok((None, GitRecord::Off));
    }
    match git::find_repository(configs_dir, git.mode)? {
        Some(root) => {
            git::check_ready(&root)?;
            Ok((Some(root), GitRecord::NotCommitted))
        }
        None => Ok((None, GitRecord::NoRepository)),
    }
}

/// Deploys `req.new_config` as the config of `req.horizon`:
/// (1) backup, (2) atomic write, (3) git commit per mode, (4) `smoke(config path)`;
/// a failure in 2-4 restores the backup atomically and, if the commit landed, adds a revert
/// commit; (6) prunes backups to `backups_to_keep`.
///
/// `Err` means nothing was changed (an interrupted earlier operation, git not usable, the
/// backup could not be taken); every later failure is reported in the outcome.
pub fn deploy(
    req: DeployRequest<'_>,
    smoke: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<DeployOutcome> {
    let dir = req.configs_dir;
    let h = req.horizon;
    let config = h.config_path(dir);
    ensure_no_journal(dir)?;
    let (repo, mut git_record) = prepare_git(dir, req.git)?;
    let had_config = config.is_file();
    let mut journal = Journal {
        operation: Operation::Deploy,
        horizon: h,
        pid: std::process::id(),
        started: req.now,
        step: Step::Started,
        backup: None,
        had_config,
        new_fingerprint: fingerprint(req.new_config),
        commit: None,
    };
    journal.save(dir)?;

    // (1) Backup.
    let backup = if had_config {
        match backup::create(dir, h, req.now) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = Journal::remove(dir);
                return Err(e.context(format!("deploy of {h} not started: the backup failed")));
            }
        }
    } else {
        None
    };
    journal.backup = backup
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let mut warnings = Vec::new();
    if let Err(e) = journal.advance(Step::BackedUp, dir) {
        warnings.push(format!("{e:#}"));
    }
    failpoint::hit("after_backup");

    let mut outcome = DeployOutcome {
        status: DeployStatus::Deployed,
        config: config.clone(),
        backup,
        git: git_record.clone(),
        revert_commit: None,
        pruned: Vec::new(),
        warnings,
    };

    // (2)-(4); the first failure's description.
    let failure: Option<String> = (|| {
        atomic::write_atomic(&config, req.new_config).map_err(|e| format!("writing the config: {e:#}"))?;
        let _ = journal.advance(Step::Written, dir);
        if let Some(root) = &repo {
            match git::commit_file(
                root,
                &config,
                req.message,
                &req.git.author_name,
                &req.git.author_email,
            ) {
                Ok(Some(id)) => {
                    journal.commit = Some(id.hex().to_string());
                    git_record = GitRecord::Committed(id);
                }
                Ok(None) => git_record = GitRecord::Unchanged,
                Err(e) => return Err(format!("committing the config: {e:#}")),
            }
            let _ = journal.advance(Step::Committed, dir);
            failpoint::hit("after_commit");
        }
        smoke(&config).map_err(|e| format!("smoke check of {}: {e:#}", config.display()))?;
        let _ = journal.advance(Step::Checked, dir);
        Ok::<(), String>(())
    })()
    .err();
    outcome.git = git_record.clone();

    match failure {
        None => {
            match backup::prune(dir, h, req.backups_to_keep) {
                Ok(p) => outcome.pruned = p,
                Err(e) => outcome.warnings.push(format!("pruning backups: {e:#}")),
            }
            if let Err(e) = Journal::remove(dir) {
                outcome.warnings.push(format!("{e:#}"));
            }
        }
        Some(reason) => {
            tracing::warn!(horizon = %h, %reason, "deploy failed; restoring the previous config");
            let _ = journal.advance(Step::RestoringAfterFailure, dir);
            failpoint::hit("during_rollback");
            match undo_deploy(
                &req,
                &config,
                outcome.backup.as_deref(),
                repo.as_deref(),
                &git_record,
                &reason,
            ) {
                Ok(revert) => {
                    outcome.revert_commit = revert;
                    outcome.status = DeployStatus::RolledBack { reason };
                    if let Err(e) = Journal::remove(dir) {
                        outcome.warnings.push(format!("{e:#}"));
                    }
                }
                // The journal stays so that `recover` reports the half-done deploy.
                Err(e) => {
                    outcome.status = DeployStatus::RollbackFailed {
                        reason,
                        rollback_error: format!("{e:#}"),
                    };
                }
            }
        }
    }
    Ok(outcome)
}

/// Puts the old config back (byte-identical) and, if the deploy commit landed, commits the
/// restoration.
fn undo_deploy(
    req: &DeployRequest<'_>,
    config: &Path,
    backup: Option<&Path>,
    repo: Option<&Path>,
    git_record: &GitRecord,
    reason: &str,
) -> anyhow::Result<Option<CommitId>> {
    let old = if let Some(b) = backup {
        let bytes =
            fs::read(b).with_context(|| format!("{}: cannot read the backup to restore it", b.display()))?;
        atomic::write_atomic(config, &bytes)?;
        Some(bytes)
    } else {
        // A first deploy: restoring means the config is absent again.
        match fs::remove_file(config) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}: cannot remove the failed config", config.display()))
            }
        }
        None
    };
    let (Some(root), GitRecord::Committed(id)) = (repo, git_record) else {
        return Ok(None);
    };
    let first_line: String = reason.chars().take(72).collect();
    let message = format!(
        "model-optimizer: revert deploy {} after a failed step\n\nThis reverts commit {id}.\nReason: {first_line}",
        req.horizon
    );
    git::revert_file_commit(
        root,
        config,
        old.as_deref(),
        &message,
        &req.git.author_name,
        &req.git.author_email,
    )
    .with_context(|| format!("the config is restored, but the revert commit of {id} failed"))
}

/// The result of [`rollback`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RollbackOutcome {
    pub config: PathBuf,
    /// The backup that was restored.
    pub restored_from: PathBuf,
    /// Its timestamp label (`YYYYmmdd_HHMMSS`), or its file name if it is not a named backup.
    pub label: String,
    /// The backup of the config that was replaced (None if there was no config).
    pub safety_backup: Option<PathBuf>,
    pub git: GitRecord,
}

/// The backup `rollback` would restore: the one `to` names, or else the newest backup whose
/// bytes differ from the current config (a failed deploy leaves a backup identical to the
/// restored config, and restoring that would change nothing). Returns its path and label.
/// So a rollback undoes the last change, and a second rollback undoes the first.
pub fn rollback_target(
    configs_dir: &Path,
    h: Horizon,
    to: Option<&str>,
) -> anyhow::Result<(PathBuf, String)> {
    let path = if let Some(spec) = to {
        backup::resolve(configs_dir, h, spec)?
    } else {
        let current = fs::read(h.config_path(configs_dir)).ok();
        let all = backup::list(configs_dir, h)?;
        let mut found = None;
        for b in &all {
            let bytes =
                fs::read(&b.path).with_context(|| format!("{}: cannot read backup", b.path.display()))?;
            if current.as_deref() != Some(bytes.as_slice()) {
                found = Some(b.path.clone());
                break;
            }
        }
        found.ok_or_else(|| {
            exit::failure(
                ExitCode::Runtime,
                format!(
                    "{}: no backup of {h} differs from the current config ({} backups); nothing to roll back to",
                    backup::backups_dir(configs_dir).display(),
                    all.len()
                ),
            )
        })?
    };
    let label = backup::list(configs_dir, h)?
        .into_iter()
        .find(|b| b.path == path)
        .map_or_else(
            || {
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            },
            |b| b.label(),
        );
    Ok((path, label))
}

/// Restores a backup of `h` (see [`rollback_target`]): backs up the config it replaces first,
/// writes the backup's bytes atomically (byte-identical), and commits
/// `model-optimizer: rollback 7d to <timestamp>` per `git.mode`. The backup must parse as a
/// config of `h` (exit 78 otherwise). A failed commit after the restore is an error that says
/// the config was restored.
pub fn rollback(
    configs_dir: &Path,
    h: Horizon,
    to: Option<&str>,
    git_settings: &GitSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<RollbackOutcome> {
    let dir = configs_dir;
    let config = h.config_path(dir);
    ensure_no_journal(dir)?;
    let (restored_from, label) = rollback_target(dir, h, to)?;
    let bytes = fs::read(&restored_from)
        .with_context(|| format!("{}: cannot read the backup", restored_from.display()))?;
    let parsed = ForecasterConfig::parse(&bytes, &restored_from)?;
    if parsed.horizon != h {
        return Err(exit::invalid(format!(
            "{}: is a config of {}, not {h}; pick a backup of {h}",
            restored_from.display(),
            parsed.horizon
        )));
    }
    let (repo, mut git_record) = prepare_git(dir, git_settings)?;
    let had_config = config.is_file();
    let mut journal = Journal {
        operation: Operation::Rollback,
        horizon: h,
        pid: std::process::id(),
        started: now,
        step: Step::Started,
        backup: None,
        had_config,
        new_fingerprint: fingerprint(&bytes),
        commit: None,
    };
    journal.save(dir)?;
    let safety_backup = if had_config {
        match backup::create(dir, h, now) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = Journal::remove(dir);
                return Err(e.context(format!(
                    "rollback of {h} not started: the backup of the current config failed"
                )));
            }
        }
    } else {
        None
    };
    journal.backup = safety_backup
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    journal.advance(Step::BackedUp, dir)?;
    failpoint::hit("during_rollback");
    atomic::write_atomic(&config, &bytes)?;
    let written = fs::read(&config)
        .with_context(|| format!("{}: cannot read back the restored config", config.display()))?;
    if written != bytes {
        anyhow::bail!(
            "{}: the restored config differs from {} after writing; check the disk, then run rollback again",
            config.display(),
            restored_from.display()
        );
    }
    journal.advance(Step::Written, dir)?;
    if let Some(root) = &repo {
        let message = format!("model-optimizer: rollback {h} to {label}");
        match git::commit_file(
            root,
            &config,
            &message,
            &git_settings.author_name,
            &git_settings.author_email,
        ) {
            Ok(Some(id)) => git_record = GitRecord::Committed(id),
            Ok(None) => git_record = GitRecord::Unchanged,
            Err(e) => {
                let _ = Journal::remove(dir);
                return Err(e.context(format!(
                    "{} was restored from {}, but the rollback commit failed; commit it by hand",
                    config.display(),
                    restored_from.display()
                )));
            }
        }
    }
    Journal::remove(dir)?;
    Ok(RollbackOutcome {
        config,
        restored_from,
        label,
        safety_backup,
        git: git_record,
    })
}

#[cfg(test)]
mod tests;

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
//! - `journal`: `configs/.deploy-journal.json`, present from the start of an operation until
//!   its caller has recorded it in history ([`finish`]).
//! - `recover`: what an interrupted run left behind, finished or undone.
//!
//! Callers hold the [`lock::RunLock`] around `deploy`, `rollback`, `recover` and `finish`, and
//! follow one sequence: `deploy`/`rollback` (journal holds the history record), append the
//! history row, `finish` (journal removed). After a crash, `recover` returns the records still
//! owed; the caller appends those it does not have yet, then calls `finish`.

pub use crate::atomic;
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
use crate::history::HistoryRecord;
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
    /// The history row of this deploy as the caller writes it on success; kept in the journal
    /// until [`finish`] so that a crash cannot lose it.
    pub record: &'a HistoryRecord,
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

/// Refuses a config that is a symbolic link (exit 78): configs are replaced by an atomic
/// rename, which would turn the link into a regular file and commit that in its place.
fn refuse_symlink(config: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(config) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(config).map_or_else(|_| "?".to_string(), |t| t.display().to_string());
            Err(exit::invalid(format!(
                "{}: is a symbolic link (to {target}); configs are replaced by atomic renames, which would turn the link into a regular file: replace the link by a copy of its target (`cp --remove-destination \"$(readlink -f {0})\" {0}`) or point paths.configs at the directory it links to",
                config.display()
            )))
        }
        _ => Ok(()),
    }
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

/// Checks, without changing anything, that a deploy or rollback in `configs_dir` could start:
/// no unrecovered journal, and a repository (per `git.mode`) in a state to commit in. Call it
/// before a long search so that a refusal costs nothing; `deploy` and `rollback` check again.
pub fn preflight(configs_dir: &Path, git: &GitSettings) -> anyhow::Result<()> {
    ensure_no_journal(configs_dir)?;
    prepare_git(configs_dir, git).map(|_| ())
}

/// Removes the journal of an operation that changed nothing and returns `err` (noting a
/// journal that could not be removed: recovery will find it and find nothing changed).
fn abandon(configs_dir: &Path, err: anyhow::Error) -> anyhow::Error {
    match Journal::remove(configs_dir) {
        Ok(()) => err,
        Err(e) => err.context(format!("{e:#}")),
    }
}

/// Moves the journal to `step`. Rule for every journal write after the first: it is best
/// effort, and a failure becomes a warning of the outcome, because recovery decides from the
/// files themselves (the config's fingerprint, the backup, HEAD), not from the step, and the
/// owed record was saved by the first write. The first write (before anything changes) must
/// succeed, else the operation does not start.
fn advance(journal: &mut Journal, step: Step, dir: &Path, warnings: &mut Vec<String>) {
    if let Err(e) = journal.advance(step, dir) {
        warnings.push(format!("journal not updated to step {}: {e:#}", step.as_str()));
    }
}

/// Takes back a backup taken by an operation that then changed nothing; also removes the
/// backups directory if the operation created it and it is empty again.
fn take_back_backup(configs_dir: &Path, backup: &Path, dir_existed: bool) -> anyhow::Result<()> {
    fs::remove_file(backup)
        .with_context(|| format!("{}: cannot remove the backup taken for nothing", backup.display()))?;
    let dir = backup::backups_dir(configs_dir);
    if dir_existed {
        atomic::fsync_dir(&dir)?;
    } else {
        let _ = fs::remove_dir(&dir);
        atomic::fsync_dir(configs_dir)?;
    }
    Ok(())
}

fn file_has(path: &Path, bytes: &[u8]) -> bool {
    fs::read(path).is_ok_and(|b| b == bytes)
}

/// What an operation about to change a config starts from.
struct Begin<'a> {
    operation: Operation,
    configs_dir: &'a Path,
    h: Horizon,
    now: DateTime<Utc>,
    /// The bytes the config will hold.
    new_bytes: &'a [u8],
    /// The commit message.
    message: &'a str,
    git: &'a GitSettings,
    /// The history row the operation owes.
    record: &'a HistoryRecord,
}

/// An operation that has journaled itself and backed up the config it replaces.
struct Started {
    config: PathBuf,
    repo: Option<PathBuf>,
    git_record: GitRecord,
    journal: Journal,
    /// The backup of the replaced config (None when there was no config).
    backup: Option<PathBuf>,
    backups_existed: bool,
    warnings: Vec<String>,
}

impl Begin<'_> {
    fn verb(&self) -> &'static str {
        match self.operation {
            Operation::Deploy => "deploy",
            Operation::Rollback => "rollback",
        }
    }

    /// Refuses a symlinked config, readies git, writes the journal and backs up the current
    /// config. `Err` means nothing changed.
    fn start(&self) -> anyhow::Result<Started> {
        let (dir, h, verb) = (self.configs_dir, self.h, self.verb());
        let config = h.config_path(dir);
        refuse_symlink(&config)?;
        let (repo, git_record) = prepare_git(dir, self.git)?;
        let had_config = config.is_file();
        let mut journal = self.journal(had_config, repo.is_some());
        journal
            .save(dir)
            .map_err(|e| e.context(format!("{verb} of {h} not started: cannot write the journal")))?;
        let backups_existed = backup::backups_dir(dir).is_dir();
        let backup = if had_config {
            match backup::create(dir, h, self.now) {
                Ok(p) => Some(p),
                Err(e) => {
                    return Err(abandon(
                        dir,
                        e.context(format!(
                            "{verb} of {h} not started: the backup of the current config failed"
                        )),
                    ));
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
        advance(&mut journal, Step::BackedUp, dir, &mut warnings);
        Ok(Started {
            config,
            repo,
            git_record,
            journal,
            backup,
            backups_existed,
            warnings,
        })
    }

    /// The journal of this operation, at its first step.
    fn journal(&self, had_config: bool, uses_git: bool) -> Journal {
        Journal {
            operation: self.operation,
            horizon: self.h,
            pid: std::process::id(),
            started: self.now,
            step: Step::Started,
            backup: None,
            had_config,
            new_fingerprint: fingerprint(self.new_bytes),
            commit: None,
            message: self.message.to_string(),
            uses_git,
            author_name: self.git.author_name.clone(),
            author_email: self.git.author_email.clone(),
            failure: None,
            record: Some(self.record.clone()),
        }
    }

    /// Replaces the config with the new bytes. `Err` when the file was not replaced: the
    /// backup taken for it is removed again and the journal abandoned, so nothing changed.
    /// `Ok(Some(error))` when it was replaced but the write reported an error.
    fn write(&self, started: &Started) -> anyhow::Result<Option<anyhow::Error>> {
        let (dir, h, verb) = (self.configs_dir, self.h, self.verb());
        let Err(e) = atomic::write_atomic(&started.config, self.new_bytes) else {
            return Ok(None);
        };
        if file_has(&started.config, self.new_bytes) {
            return Ok(Some(e));
        }
        let mut e = e.context(format!(
            "{verb} of {h} not done: the config was not replaced, nothing changed"
        ));
        if let Some(b) = &started.backup {
            if let Err(b_err) = take_back_backup(dir, b, started.backups_existed) {
                e = e.context(format!("{b_err:#}"));
            }
        }
        Err(abandon(dir, e))
    }
}

/// Deploys `req.new_config` as the config of `req.horizon`:
/// (1) backup, (2) atomic write, (3) git commit per mode, (4) `smoke(config path)`;
/// a failure in 3-4 (or in 2 after the file was replaced) restores the backup atomically and,
/// if the commit landed, adds a revert commit; (5) prunes backups to `backups_to_keep`.
///
/// `Err` means nothing was changed: an interrupted earlier operation, a symlinked config, git
/// not usable, the backup could not be taken, or the config could not be replaced (the backup
/// taken for it is removed again). Every later failure is reported in the outcome.
///
/// On `Ok` the journal stays, at its final step and holding `req.record`: the caller appends
/// its history row, then calls [`finish`]. Killed before that, the next [`recover`] owes the
/// record and the caller's row is not lost.
pub fn deploy(
    req: DeployRequest<'_>,
    smoke: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<DeployOutcome> {
    ensure_no_journal(req.configs_dir)?;
    let begin = Begin {
        operation: Operation::Deploy,
        configs_dir: req.configs_dir,
        h: req.horizon,
        now: req.now,
        new_bytes: req.new_config,
        message: req.message,
        git: req.git,
        record: req.record,
    };
    let mut started = begin.start()?;
    failpoint::hit("after_backup");
    // (2) Write. A write that did not replace the file changed nothing but the backup.
    let failure = match begin.write(&started)? {
        Some(e) => Some(format!("writing the config: {e:#}")),
        // (3) Commit, (4) smoke check.
        None => commit_and_check(&req, &mut started, smoke),
    };
    let mut outcome = DeployOutcome {
        status: DeployStatus::Deployed,
        config: started.config.clone(),
        backup: started.backup.clone(),
        git: started.git_record.clone(),
        revert_commit: None,
        pruned: Vec::new(),
        warnings: Vec::new(),
    };
    match failure {
        None => {
            match backup::prune(req.configs_dir, req.horizon, req.backups_to_keep) {
                Ok(p) => outcome.pruned = p,
                Err(e) => started.warnings.push(format!("pruning backups: {e:#}")),
            }
            advance(
                &mut started.journal,
                Step::Done,
                req.configs_dir,
                &mut started.warnings,
            );
        }
        Some(reason) => restore_after_failure(&req, &mut started, &mut outcome, reason),
    }
    outcome.warnings = started.warnings;
    Ok(outcome)
}

/// Steps 3 and 4 of a deploy whose config was written: the commit (per mode) and the smoke
/// check. Returns why the deploy failed, if it did.
fn commit_and_check(
    req: &DeployRequest<'_>,
    started: &mut Started,
    smoke: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> Option<String> {
    let dir = req.configs_dir;
    advance(&mut started.journal, Step::Written, dir, &mut started.warnings);
    if let Some(root) = &started.repo {
        match git::commit_file(
            root,
            &started.config,
            req.message,
            &req.git.author_name,
            &req.git.author_email,
        ) {
            Ok(Some(id)) => {
                started.journal.commit = Some(id.hex().to_string());
                started.git_record = GitRecord::Committed(id);
            }
            Ok(None) => started.git_record = GitRecord::Unchanged,
            Err(e) => return Some(format!("committing the config: {e:#}")),
        }
        advance(&mut started.journal, Step::Committed, dir, &mut started.warnings);
        failpoint::hit("after_commit");
    }
    match smoke(&started.config) {
        Ok(()) => {
            advance(&mut started.journal, Step::Checked, dir, &mut started.warnings);
            None
        }
        Err(e) => Some(format!("smoke check of {}: {e:#}", started.config.display())),
    }
}

/// Restores the old config after a deploy step failed (`reason`), and says how that went.
fn restore_after_failure(
    req: &DeployRequest<'_>,
    started: &mut Started,
    outcome: &mut DeployOutcome,
    reason: String,
) {
    let (dir, h) = (req.configs_dir, req.horizon);
    tracing::warn!(horizon = %h, %reason, "deploy failed; restoring the previous config");
    started.journal.failure = Some(reason.clone());
    advance(
        &mut started.journal,
        Step::RestoringAfterFailure,
        dir,
        &mut started.warnings,
    );
    failpoint::hit("during_rollback");
    match undo_deploy(
        req,
        &started.config,
        outcome.backup.as_deref(),
        started.repo.as_deref(),
        &started.git_record,
        &reason,
    ) {
        Ok(revert) => {
            outcome.revert_commit = revert;
            outcome.status = DeployStatus::RolledBack { reason };
            advance(&mut started.journal, Step::Undone, dir, &mut started.warnings);
        }
        Err(e) => {
            outcome.status = DeployStatus::RollbackFailed {
                reason,
                rollback_error: format!("{e:#}"),
            };
            advance(&mut started.journal, Step::UndoFailed, dir, &mut started.warnings);
        }
    }
}

/// Ends an operation whose history row the caller has appended: removes the journal (and
/// fsyncs the directory). Without a journal it does nothing.
pub fn finish(configs_dir: &Path) -> anyhow::Result<()> {
    if Journal::path(configs_dir).exists() {
        failpoint::hit("before_finish");
    }
    Journal::remove(configs_dir)
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
    let old = restore_previous(config, backup)?;
    let (Some(root), GitRecord::Committed(id)) = (repo, git_record) else {
        return Ok(None);
    };
    let first_line: String = reason.chars().take(72).collect();
    let message = format!(
        "model-optimizer: revert deploy {} after a failed step\n\nThis reverts commit {id}.\nReason: {first_line}\n{}",
        req.horizon,
        run_trailer(req.record)
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

/// The last line of every commit message of ours: the run the commit belongs to, so that a
/// commit and its history row can be matched.
pub(crate) fn run_trailer(record: &HistoryRecord) -> String {
    format!("run {}", record.run_id)
}

/// Writes the backup's bytes back over `config` (None: a first deploy, so the config is
/// removed) and returns them.
pub(crate) fn restore_previous(config: &Path, backup: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(b) = backup {
        let bytes =
            fs::read(b).with_context(|| format!("{}: cannot read the backup to restore it", b.display()))?;
        atomic::write_atomic(config, &bytes)?;
        Ok(Some(bytes))
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
        if let Some(parent) = config.parent() {
            atomic::fsync_dir(parent)?;
        }
        Ok(None)
    }
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
    /// Problems that did not undo the rollback (a failed commit, with the command to run).
    pub warnings: Vec<String>,
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
        let read = all.iter().map(|b| {
            let bytes =
                fs::read(&b.path).with_context(|| format!("{}: cannot read backup", b.path.display()))?;
            Ok((b.path.clone(), bytes))
        });
        let found = backup::first_differing(current.as_deref(), read)?;
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
/// config of `h` (exit 78 otherwise).
///
/// Same contract as [`deploy`]: `Err` before the restore means nothing changed; once the
/// config is restored the outcome is `Ok` (a failed commit is a warning naming the command to
/// run), and the journal stays holding `record` until the caller appends it and calls
/// [`finish`]. An `Err` after the restore (the bytes read back differ) leaves the journal for
/// [`recover`].
pub fn rollback(
    configs_dir: &Path,
    h: Horizon,
    to: Option<&str>,
    git_settings: &GitSettings,
    now: DateTime<Utc>,
    record: &HistoryRecord,
) -> anyhow::Result<RollbackOutcome> {
    let dir = configs_dir;
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
    let message = format!(
        "model-optimizer: rollback {h} to {label}\n\n{}",
        run_trailer(record)
    );
    let begin = Begin {
        operation: Operation::Rollback,
        configs_dir: dir,
        h,
        now,
        new_bytes: &bytes,
        message: &message,
        git: git_settings,
        record,
    };
    let mut started = begin.start()?;
    failpoint::hit("during_rollback");
    if let Some(e) = begin.write(&started)? {
        started.warnings.push(format!("{e:#}"));
    }
    if !file_has(&started.config, &bytes) {
        anyhow::bail!(
            "{}: the restored config differs from {} after writing; check the disk, then run `model-optimizer status`",
            started.config.display(),
            restored_from.display()
        );
    }
    advance(&mut started.journal, Step::Written, dir, &mut started.warnings);
    commit_rollback(&begin, &mut started, &restored_from, &label);
    advance(&mut started.journal, Step::Done, dir, &mut started.warnings);
    Ok(RollbackOutcome {
        config: started.config,
        restored_from,
        label,
        safety_backup: started.backup,
        git: started.git_record,
        warnings: started.warnings,
    })
}

/// Commits a restored config (per mode); a failed commit is a warning naming the command to
/// run, since the rollback itself stands.
fn commit_rollback(begin: &Begin<'_>, started: &mut Started, restored_from: &Path, label: &str) {
    let Some(root) = &started.repo else {
        return;
    };
    let (h, git_settings) = (begin.h, begin.git);
    match git::commit_file(
        root,
        &started.config,
        begin.message,
        &git_settings.author_name,
        &git_settings.author_email,
    ) {
        Ok(Some(id)) => {
            started.journal.commit = Some(id.hex().to_string());
            started.git_record = GitRecord::Committed(id);
            advance(
                &mut started.journal,
                Step::Committed,
                begin.configs_dir,
                &mut started.warnings,
            );
        }
        Ok(None) => started.git_record = GitRecord::Unchanged,
        Err(e) => {
            let warning = format!(
                "{} was restored from {}, but the rollback commit failed ({e:#}); commit it with `{}`",
                started.config.display(),
                restored_from.display(),
                git::commit_command(
                    root,
                    &started.config,
                    &format!("model-optimizer: rollback {h} to {label}")
                )
            );
            started.warnings.push(warning);
        }
    }
}

#[cfg(test)]
mod tests;

//! Recovery after a crash: removes stray temp files and finishes or undoes an interrupted
//! deploy or rollback from its journal, so that the config, HEAD and the index agree again, and
//! returns the history record the operation still owes. Run it under the run lock at the
//! start of `run`, `rollback` and `status`.
//!
//! What is kept and what is undone:
//! - the new config of a deploy that had not failed, or the restored backup of a rollback, is in
//!   place: it stays, is committed if HEAD lacks it (message marked as recovered), and the
//!   journal's record is owed, its message prefixed with [`RECOVERED`];
//! - a deploy that failed (its undo was interrupted) is undone: the backup is put back and the
//!   restoration committed if the deploy commit landed; a `failed` record is owed;
//! - an operation that had not replaced the config yet changed nothing: a change it left
//!   staged is cleared, and a `failed` record saying so is owed;
//! - a config that is neither version is left alone and reported; a `failed` record is owed.
//!
//! The journal is not removed here: the caller appends the owed record (unless history has it
//! already, so a crash during recovery only repeats it), then calls `deploy::finish`. Until
//! then a second recovery finds the same journal and does the same, idempotently; so the
//! report survives a kill of the process doing the recovery, and the history row is its
//! durable copy.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::journal::{fingerprint, Journal, Operation, Step};
use super::{atomic, backup, git};
use crate::domain::Horizon;
use crate::history::{Action, HistoryRecord};

/// The prefix of the message of a history record appended by recovery.
pub const RECOVERED: &str = "recovered after an interrupted run: ";

/// Which version the config file holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigState {
    /// The version the operation was replacing (equal to its backup).
    Old,
    /// The version the operation was putting in place.
    New,
    /// Neither (edited by hand since?).
    Other,
    /// No config file.
    Missing,
}

/// How recovery settled an interrupted operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// The operation's config stays in place (committed, or with the command to commit it).
    Completed,
    /// The previous config is in place (put back, or never replaced).
    Undone,
    /// Neither could be established; a person must look (the report says what to do).
    NeedsAttention,
}

/// An operation the journal shows was interrupted, and what recovery did about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    pub operation: Operation,
    pub horizon: Horizon,
    /// The run the operation belonged to (from its record), if known.
    pub run_id: Option<String>,
    pub pid: u32,
    pub started: DateTime<Utc>,
    /// The last step it recorded.
    pub step: Step,
    /// The backup of the config it was replacing, if it got that far and the file exists.
    pub backup: Option<PathBuf>,
    /// The config as found.
    pub config_state: ConfigState,
    /// Whether HEAD had the config's bytes as found (None: no repository or unreadable).
    pub config_committed: Option<bool>,
    pub settled: Settled,
    /// What recovery did, one clause each (restored, committed, cleared, or the command to run).
    pub actions: Vec<String>,
}

impl Interrupted {
    /// One line: what was found and what was done.
    pub fn describe(&self) -> String {
        let h = self.horizon;
        let run = self
            .run_id
            .as_ref()
            .map_or_else(String::new, |r| format!("run {r}, "));
        let what = format!(
            "{} of {h} ({run}pid {}, started {}) was interrupted after step {}",
            self.operation.as_str(),
            self.pid,
            self.started.to_rfc3339(),
            self.step.as_str()
        );
        let committed = match self.config_committed {
            Some(true) => ", committed",
            Some(false) => ", not committed",
            None => "",
        };
        let found = match (self.operation, self.config_state) {
            (Operation::Deploy, ConfigState::Old) => {
                format!("the config was still the previous version{committed}")
            }
            (Operation::Deploy, ConfigState::New) => format!("the new config was in place{committed}"),
            (Operation::Rollback, ConfigState::Old) => {
                format!("the config was still the version being rolled back{committed}")
            }
            (Operation::Rollback, ConfigState::New) => format!("the backup was restored{committed}"),
            (_, ConfigState::Other) => {
                format!("the config matches neither the previous nor the new version{committed}")
            }
            (_, ConfigState::Missing) => "the config file is missing".to_string(),
        };
        let result = match (self.settled, self.operation) {
            (Settled::Completed, Operation::Deploy) => "the deploy stands",
            (Settled::Completed, Operation::Rollback) => "the rollback stands",
            (Settled::Undone, Operation::Deploy) => "nothing is deployed: the previous config stays",
            (Settled::Undone, Operation::Rollback) => {
                "nothing was rolled back; run the rollback again if it is still wanted"
            }
            (Settled::NeedsAttention, _) => "check the config by hand",
        };
        let mut text = format!("{what}: {found}; {result}");
        for a in &self.actions {
            text.push_str("; ");
            text.push_str(a);
        }
        if let Some(b) = &self.backup {
            text.push_str(&format!("; the previous config is saved in {}", b.display()));
        }
        text
    }
}

/// What `recover` found and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecoveryReport {
    pub removed_temp_files: Vec<PathBuf>,
    pub interrupted: Option<Interrupted>,
    /// A journal that could not be parsed (left in place for a person to look at).
    pub journal_error: Option<String>,
    /// History records the interrupted operation still owes (at most one), for the caller to
    /// append unless history already has them.
    pub owed: Vec<HistoryRecord>,
}

impl RecoveryReport {
    /// Nothing was found.
    pub fn is_clean(&self) -> bool {
        self.removed_temp_files.is_empty() && self.interrupted.is_none() && self.journal_error.is_none()
    }

    /// One line per finding, for logs, `status` and mail.
    pub fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .removed_temp_files
            .iter()
            .map(|p| format!("removed stray temp file {}", p.display()))
            .collect();
        if let Some(i) = &self.interrupted {
            out.push(i.describe());
        }
        if let Some(e) = &self.journal_error {
            out.push(e.clone());
        }
        out
    }
}

/// Whether [`recover`] has anything to do: a journal or a stray temp file in `configs_dir` or
/// its backups directory. Read-only, so `status` can ask without taking the lock.
pub fn needs_recovery(configs_dir: &Path) -> bool {
    let has_temp = |dir: &Path| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| atomic::is_temp_name(&e.file_name().to_string_lossy()))
        })
    };
    Journal::path(configs_dir).exists()
        || has_temp(configs_dir)
        || has_temp(&backup::backups_dir(configs_dir))
}

/// Cleans up after an interrupted run in `configs_dir` (hold the run lock): removes stray temp
/// files in it and in its backups directory, and settles an operation its journal shows was
/// interrupted (see the module documentation). Leaves the journal for `deploy::finish`.
pub fn recover(configs_dir: &Path) -> anyhow::Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    report
        .removed_temp_files
        .extend(atomic::sweep_temp_files(configs_dir)?);
    report
        .removed_temp_files
        .extend(atomic::sweep_temp_files(&backup::backups_dir(configs_dir))?);
    for p in &report.removed_temp_files {
        tracing::warn!(path = %p.display(), "removed a stray temp file left by an interrupted write");
    }
    let journal = match Journal::load(configs_dir) {
        Ok(j) => j,
        Err(e) => {
            report.journal_error = Some(format!("{e:#}"));
            return Ok(report);
        }
    };
    let Some(j) = journal else {
        return Ok(report);
    };
    let (found, owed) = settle(configs_dir, &j);
    tracing::warn!("{}", found.describe());
    report.interrupted = Some(found);
    report.owed.extend(owed);
    Ok(report)
}

/// The version an operation replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Previous<'a> {
    /// There was no config (a first deploy).
    Absent,
    Bytes(&'a [u8]),
    /// Not known: the backup was not taken or cannot be read.
    Unknown,
}

/// What the config holds, given the journal.
fn config_state(j: &Journal, current: Option<&[u8]>, old: Previous<'_>) -> ConfigState {
    let is_old = match (old, current) {
        (Previous::Absent, None) => true,
        (Previous::Bytes(o), Some(c)) => o == c,
        _ => false,
    };
    match current {
        Some(c) if fingerprint(c) == j.new_fingerprint => ConfigState::New,
        _ if is_old => ConfigState::Old,
        // Interrupted before the backup was taken: nothing was replaced yet.
        Some(_) if j.step == Step::Started => ConfigState::Old,
        None if j.step == Step::Started && !j.had_config => ConfigState::Old,
        None => ConfigState::Missing,
        Some(_) => ConfigState::Other,
    }
}

fn settle(configs_dir: &Path, j: &Journal) -> (Interrupted, Option<HistoryRecord>) {
    let h = j.horizon;
    let config = h.config_path(configs_dir);
    let backup = j
        .backup
        .as_ref()
        .map(|name| backup::backups_dir(configs_dir).join(name))
        .filter(|p| p.is_file());
    let backup_bytes = backup.as_ref().and_then(|p| fs::read(p).ok());
    // The previous version: absent for a first deploy, else the backup's bytes (if taken).
    let old = match (j.had_config, backup_bytes.as_deref()) {
        (false, _) => Previous::Absent,
        (true, Some(b)) => Previous::Bytes(b),
        (true, None) => Previous::Unknown,
    };
    let current = fs::read(&config).ok();
    let state = config_state(j, current.as_deref(), old);
    let repo = if j.uses_git {
        git::discover_quiet(configs_dir)
    } else {
        None
    };
    let config_committed = repo
        .as_ref()
        .and_then(|root| git::committed_bytes(root, &config).ok())
        .map(|head| head == current);
    let failed = j.failure.is_some()
        || matches!(
            j.step,
            Step::RestoringAfterFailure | Step::Undone | Step::UndoFailed
        );
    let mut found = Interrupted {
        operation: j.operation,
        horizon: h,
        run_id: j.record.as_ref().map(|r| r.run_id.clone()),
        pid: j.pid,
        started: j.started,
        step: j.step,
        backup,
        config_state: state,
        config_committed,
        settled: Settled::NeedsAttention,
        actions: Vec::new(),
    };
    if let Some(root) = &repo {
        match git::clear_stale_locks(root, j.started) {
            Ok(removed) => found.actions.extend(removed.iter().map(|p| {
                format!(
                    "removed {}, which the interrupted git write (pid {}) left behind",
                    p.display(),
                    j.pid
                )
            })),
            Err(e) => found.actions.push(format!("{e:#}")),
        }
    }
    let keep = state == ConfigState::New && !(j.operation == Operation::Deploy && failed);
    if keep {
        found.settled = Settled::Completed;
        if let Some(root) = &repo {
            commit_as_found(root, &config, j, &recovered_message(j), &mut found);
        }
    } else if state == ConfigState::New || state == ConfigState::Old {
        // A failed deploy whose undo was interrupted: finish the undo first.
        let mut in_place = state == ConfigState::Old;
        if !in_place {
            match super::restore_previous(&config, found.backup.as_deref()) {
                Ok(_) => {
                    in_place = true;
                    found.actions.push(match &found.backup {
                        Some(b) => format!("restored the previous config from {}", b.display()),
                        None => "removed the failed first config".to_string(),
                    });
                }
                Err(e) => found.actions.push(format!(
                    "could not restore the previous config ({e:#}); run `model-optimizer rollback {h}`"
                )),
            }
        }
        if in_place {
            found.settled = Settled::Undone;
            if let Some(root) = &repo {
                commit_as_found(root, &config, j, &undo_message(j), &mut found);
            }
        }
    } else {
        found.actions.push(format!(
            "left {} as it is: compare it with the backups and HEAD",
            config.display()
        ));
    }
    let owed = j.record.as_ref().map(|r| owed_record(r, j, &found));
    (found, owed)
}

/// Makes HEAD and the index agree with the config as it is now (the only path touched), or
/// notes the command a person must run.
fn commit_as_found(root: &Path, config: &Path, j: &Journal, message: &str, found: &mut Interrupted) {
    match git::settle_file(root, config, message, &j.author_name, &j.author_email) {
        Ok(git::Settled::Committed(id)) => found
            .actions
            .push(format!("committed it as {} (marked as recovered)", id.short())),
        Ok(git::Settled::ClearedStaged) => found
            .actions
            .push("cleared the change an interrupted commit left staged".to_string()),
        Ok(git::Settled::InSync) => {}
        Err(e) => {
            let summary = message.lines().next().unwrap_or_default();
            found.actions.push(format!(
                "could not commit it ({e:#}); once fixed, run `{}`",
                git::commit_command(root, config, summary)
            ));
        }
    }
}

/// The operation's own commit message, marked as committed by recovery.
fn recovered_message(j: &Journal) -> String {
    let mut lines = j.message.lines();
    let first = lines.next().unwrap_or("model-optimizer: recovered config");
    let rest: Vec<&str> = lines.collect();
    format!(
        "{first} (recovered)\n\nCommitted by recovery after an interrupted run (pid {}, killed after step {}).\n{}\n",
        j.pid,
        j.step.as_str(),
        rest.join("\n")
    )
}

/// The commit restoring the previous config after an interrupted operation.
fn undo_message(j: &Journal) -> String {
    let run = j
        .record
        .as_ref()
        .map_or_else(String::new, |r| format!("\n{}", super::run_trailer(r)));
    let reverts = j
        .commit
        .as_ref()
        .map_or_else(String::new, |c| format!("This reverts commit {c}.\n"));
    format!(
        "model-optimizer: revert {} {} after an interrupted run (recovered)\n\n{reverts}Committed by recovery (pid {}, killed after step {}).{run}\n",
        j.operation.as_str(),
        j.horizon,
        j.pid,
        j.step.as_str()
    )
}

/// The history record the interrupted operation owes: its own when it stands, else `failed`.
fn owed_record(record: &HistoryRecord, j: &Journal, found: &Interrupted) -> HistoryRecord {
    let mut r = record.clone();
    if found.settled == Settled::Completed {
        r.message = format!("{RECOVERED}{}", record.message);
    } else {
        r.action = Action::Failed;
        r.success = false;
        let why = j.failure.as_ref().map_or_else(String::new, |f| format!("{f}; "));
        r.message = format!("{RECOVERED}{why}{}", found.describe());
    }
    r
}

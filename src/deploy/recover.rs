//! Recovery after a crash: removes stray temp files and reports an interrupted deploy or
//! rollback from its journal, with what state the config is in and what to do about it.
//! Run it under the run lock at the start of `run` and `status`; it changes no config (the
//! config on disk is always a complete old or new version), it only cleans up and explains.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::journal::{fingerprint, Journal, Operation, Step};
use super::{atomic, backup, git};
use crate::domain::Horizon;

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

/// An operation the journal shows was interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    pub operation: Operation,
    pub horizon: Horizon,
    pub pid: u32,
    pub started: DateTime<Utc>,
    /// The last step it completed.
    pub step: Step,
    /// The backup of the config it was replacing, if it got that far and the file exists.
    pub backup: Option<PathBuf>,
    pub config_state: ConfigState,
    /// Whether HEAD has the config's current bytes (None: no repository or unreadable).
    pub config_committed: Option<bool>,
}

impl Interrupted {
    /// One line: what was found and what to do.
    pub fn describe(&self) -> String {
        let h = self.horizon;
        let what = format!(
            "{} of {h} (pid {}, started {}) was interrupted after step {}",
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
        let backup = self.backup.as_ref().map_or_else(String::new, |b| {
            format!("; the previous config is saved in {}", b.display())
        });
        let state = match (self.operation, self.config_state) {
            (Operation::Deploy, ConfigState::Old) => {
                format!("the config is still the previous version{committed}; nothing was deployed")
            }
            (Operation::Deploy, ConfigState::New) => format!(
                "the new config is in place{committed} but was not smoke-checked{backup}; run `model-optimizer rollback {h}` to return to it"
            ),
            (Operation::Rollback, ConfigState::Old) => format!(
                "the config is still the version being rolled back{committed}; run `model-optimizer rollback {h}` again"
            ),
            (Operation::Rollback, ConfigState::New) => {
                format!("the backup was restored{committed}; nothing more to do{backup}")
            }
            (_, ConfigState::Other) => format!(
                "the config matches neither the previous nor the new version{committed}; check it{backup}"
            ),
            (_, ConfigState::Missing) => format!("the config file is missing{backup}; restore it with `model-optimizer rollback {h}`"),
        };
        format!("{what}: {state}")
    }
}

/// What `recover` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    pub removed_temp_files: Vec<PathBuf>,
    pub interrupted: Option<Interrupted>,
    /// A journal that could not be parsed (left in place for a person to look at).
    pub journal_error: Option<String>,
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
/// files in it and in its backups directory, and turns a leftover journal into a report (then
/// removes the journal, since the report is its only use).
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
    let config = j.horizon.config_path(configs_dir);
    let current = fs::read(&config).ok();
    let backup = j
        .backup
        .as_ref()
        .map(|name| backup::backups_dir(configs_dir).join(name))
        .filter(|p| p.is_file());
    let old = backup.as_ref().and_then(|p| fs::read(p).ok());
    let config_state = match &current {
        None => ConfigState::Missing,
        Some(c) if fingerprint(c) == j.new_fingerprint => ConfigState::New,
        Some(c) if old.as_ref() == Some(c) => ConfigState::Old,
        // Interrupted before the backup was taken: the config can only be the old one.
        Some(_) if j.step == Step::Started => ConfigState::Old,
        Some(_) => ConfigState::Other,
    };
    let config_committed = git::discover_quiet(configs_dir)
        .and_then(|root| git::committed_bytes(&root, &config).ok())
        .map(|head| head == current);
    let found = Interrupted {
        operation: j.operation,
        horizon: j.horizon,
        pid: j.pid,
        started: j.started,
        step: j.step,
        backup,
        config_state,
        config_committed,
    };
    tracing::warn!("{}", found.describe());
    report.interrupted = Some(found);
    Journal::remove(configs_dir)?;
    Ok(report)
}

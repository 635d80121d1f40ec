//! The deploy journal, `configs/.deploy-journal.json`: written (atomically) before a deploy or
//! rollback touches anything and updated after each step. It also holds the history record the
//! operation owes, so it is removed only by `deploy::finish`, once the caller has appended that
//! record. Finding one at the start of a run means an operation (or its record) was
//! interrupted; `recover` reads it to finish the job and say what happened.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::atomic;
use crate::domain::Horizon;
use crate::history::HistoryRecord;

/// The journal's file name inside the configs directory.
pub const JOURNAL_FILE: &str = ".deploy-journal.json";

/// What was being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Deploy,
    Rollback,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Rollback => "rollback",
        }
    }
}

/// The last step that completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing changed yet.
    Started,
    /// The old config is saved in `backup`.
    BackedUp,
    /// The new config is in place.
    Written,
    /// The commit landed.
    Committed,
    /// The smoke check passed (deploy) — only pruning and cleanup remain.
    Checked,
    /// A failure is being undone: the old config is being restored.
    RestoringAfterFailure,
    /// The operation returned to its caller; only its history record is owed.
    Done,
    /// A failed deploy was undone (old config back, revert committed); the record is owed.
    Undone,
    /// A failed deploy could not be undone; the caller reports it.
    UndoFailed,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::BackedUp => "backed_up",
            Step::Written => "written",
            Step::Committed => "committed",
            Step::Checked => "checked",
            Step::RestoringAfterFailure => "restoring_after_failure",
            Step::Done => "done",
            Step::Undone => "undone",
            Step::UndoFailed => "undo_failed",
        }
    }
}

/// The journal's contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub operation: Operation,
    pub horizon: Horizon,
    pub pid: u32,
    pub started: DateTime<Utc>,
    pub step: Step,
    /// The backup of the config being replaced (file name inside `configs/backups`), once taken.
    pub backup: Option<String>,
    /// Whether the config existed before (a first deploy has nothing to back up).
    pub had_config: bool,
    /// Fingerprint of the bytes being put in place (see [`fingerprint`]).
    pub new_fingerprint: String,
    /// The commit of this operation, once it landed.
    pub commit: Option<String>,
    /// The commit message of the operation, reused (marked) when recovery commits for it.
    #[serde(default)]
    pub message: String,
    /// Whether the operation commits in the repository containing the configs.
    #[serde(default)]
    pub uses_git: bool,
    /// The git identity of the operation's commits.
    #[serde(default)]
    pub author_name: String,
    #[serde(default)]
    pub author_email: String,
    /// Why a deploy failed (set when it starts undoing).
    #[serde(default)]
    pub failure: Option<String>,
    /// The history row the caller appends when the operation succeeds.
    #[serde(default)]
    pub record: Option<HistoryRecord>,
}

impl Journal {
    pub fn path(configs_dir: &Path) -> PathBuf {
        configs_dir.join(JOURNAL_FILE)
    }

    /// Writes (or rewrites) the journal atomically.
    pub fn save(&self, configs_dir: &Path) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("the journal serializes");
        bytes.push(b'\n');
        atomic::write_atomic_quiet(&Self::path(configs_dir), &bytes)
    }

    /// Moves to `step` and saves.
    pub fn advance(&mut self, step: Step, configs_dir: &Path) -> anyhow::Result<()> {
        self.step = step;
        self.save(configs_dir)
    }

    /// The journal if one exists.
    pub fn load(configs_dir: &Path) -> anyhow::Result<Option<Journal>> {
        let path = Self::path(configs_dir);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot read the deploy journal", path.display()))
            }
        };
        serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{}: unreadable deploy journal; check the configs by hand, then delete it",
                path.display()
            )
        })
    }

    /// Removes the journal: the operation is over.
    pub fn remove(configs_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(configs_dir);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}: cannot remove the deploy journal", path.display()))
            }
        }
        atomic::fsync_dir(configs_dir)
            .with_context(|| format!("{}: cannot fsync the directory", configs_dir.display()))
    }
}

/// A content fingerprint: FNV-1a 64 and the length. Enough to tell the few candidate versions
/// of one config apart (old, new, something else); not a security hash.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}:{}", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal {
            operation: Operation::Deploy,
            horizon: Horizon(7),
            pid: 42,
            started: DateTime::from_timestamp(1_767_500_000, 0).unwrap(),
            step: Step::Started,
            backup: None,
            had_config: true,
            new_fingerprint: fingerprint(b"new"),
            commit: None,
            message: "model-optimizer: deploy 7d".into(),
            uses_git: true,
            author_name: "model-optimizer".into(),
            author_email: "bot@example.com".into(),
            failure: None,
            record: None,
        };
        assert_eq!(Journal::load(dir.path()).unwrap(), None);
        j.save(dir.path()).unwrap();
        j.backup = Some("chronos_7d_20260104_050000.json".into());
        j.advance(Step::BackedUp, dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap().unwrap(), j);
        Journal::remove(dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), None);
        Journal::remove(dir.path()).unwrap();
        fs::write(Journal::path(dir.path()), b"{ half").unwrap();
        let e = format!("{:#}", Journal::load(dir.path()).unwrap_err());
        assert!(e.contains(JOURNAL_FILE), "{e}");
    }

    #[test]
    fn fingerprint_tells_contents_apart() {
        // FNV-1a 64 of the empty input is its offset basis; of "a" a published test vector.
        assert_eq!(fingerprint(b""), "fnv1a64:cbf29ce484222325:0");
        assert_eq!(fingerprint(b"a"), "fnv1a64:af63dc4c8601ec8c:1");
        assert_ne!(fingerprint(b"{\"v\": 1}"), fingerprint(b"{\"v\": 2}"));
    }
}

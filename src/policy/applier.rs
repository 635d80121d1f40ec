//! Carrying a decision out, once for every caller: [`apply`] turns a [`Decision`] into an
//! [`Outcome`] through an [`Applier`], the one interface for effects on configs. `run` and
//! `rollback` apply through the files-and-git implementation (in `commands`), `replay` through
//! [`MemoryApplier`]; both follow the same rules:
//! - a deploy backs up the config it replaces, then keeps the newest `backups_to_keep` backups;
//! - a rollback backs up the config it replaces, then restores the backup it names, or else
//!   the newest backup whose bytes differ from the current config
//!   ([`crate::deploy::backup::first_differing`]), so a rollback undoes the last change and a
//!   second one undoes the first;
//! - a trial starts, waits or ends by its history row alone: no config changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::deploy::{backup, DeployOutcome, DeployStatus, GitRecord, RollbackOutcome};
use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::history::HistoryRecord;
use crate::policy::decide::{Approved, Decision};
use crate::policy::outcome::{self, Effect, Outcome, RecordContext, RollbackDone};

/// Where configs are replaced and restored.
pub trait Applier {
    /// Replaces the config of `config.horizon` with `config`, committing with `message`.
    /// `owed` is the history row the caller appends once this returns.
    fn deploy(
        &mut self,
        config: &ForecasterConfig,
        message: &str,
        owed: &HistoryRecord,
    ) -> anyhow::Result<DeployOutcome>;

    /// Restores the backup of `h` that `to` names (a label or a path), or by default the
    /// newest one that differs from the current config.
    fn rollback(
        &mut self,
        h: Horizon,
        to: Option<&str>,
        owed: &HistoryRecord,
    ) -> anyhow::Result<RollbackOutcome>;

    /// The config of `h` in effect.
    fn current(&self, h: Horizon) -> anyhow::Result<ForecasterConfig>;
}

/// Carries `decision` out for horizon `h`: deploys an approved candidate, rolls back a broken
/// promise; every other decision changes no config. An error while carrying out keeps the
/// decision and says what failed.
pub fn apply(applier: &mut dyn Applier, h: Horizon, decision: Decision, rc: &RecordContext<'_>) -> Outcome {
    let effect = match &decision {
        Decision::Approved(a) => deploy(applier, h, a, &decision, rc),
        Decision::ProbationRollback { .. } => rollback(applier, h, &decision, rc),
        _ => Ok(Effect::Unchanged),
    };
    let effect = effect.unwrap_or_else(|e| Effect::Failed {
        message: format!("{e:#}"),
        code: crate::exit::code_of(&e),
    });
    Outcome {
        decision: Some(decision),
        effect,
        health: None,
    }
}

fn deploy(
    applier: &mut dyn Applier,
    h: Horizon,
    a: &Approved,
    decision: &Decision,
    rc: &RecordContext<'_>,
) -> anyhow::Result<Effect> {
    let owed = outcome::owed(decision, h, rc).expect("a deploy owes a row");
    let done = applier.deploy(&a.new_config, &commit_message(a, rc.run_id), &owed)?;
    Ok(match done.status {
        DeployStatus::Deployed => Effect::Deployed(done),
        _ => Effect::DeployFailed(done),
    })
}

fn rollback(
    applier: &mut dyn Applier,
    h: Horizon,
    decision: &Decision,
    rc: &RecordContext<'_>,
) -> anyhow::Result<Effect> {
    let owed = outcome::owed(decision, h, rc).expect("a rollback owes a row");
    let done = applier.rollback(h, None, &owed)?;
    let restored = applier.current(h)?;
    Ok(Effect::RolledBack(RollbackDone {
        label: done.label,
        restored: restored.params(),
        git: done.git,
    }))
}

/// The commit message of a deploy: the parameters and the RMSE change on the first line, the
/// validation report below.
pub fn commit_message(a: &Approved, run_id: &str) -> String {
    let v = &a.evidence.validation;
    let h = a.new_config.horizon;
    let cand = v.candidate.params;
    format!(
        "model-optimizer: deploy {h} context={} samples={} temperature={:.1} (RMSE {:+.1}%)\n\n{}\nrun {run_id}\n",
        cand.context_length,
        cand.num_samples,
        cand.temperature,
        crate::metrics::change_pct(v.candidate.metrics.rmse, v.current.metrics.rmse),
        crate::policy::render::render_validation(v),
    )
}

/// One horizon's configs in memory: the one in effect and its backups, newest first.
#[derive(Clone, Debug)]
struct Slot {
    config: ForecasterConfig,
    /// (taken, sequence in that second, config), newest first.
    backups: Vec<(NaiveDateTime, u32, ForecasterConfig)>,
}

/// Configs held in memory, as a replay keeps them: the same rules as the files, with the
/// files' names (`configs/chronos_<h>.json`, `configs/backups/chronos_<h>_<label>.json`) and
/// no git.
#[derive(Clone, Debug)]
pub struct MemoryApplier {
    slots: BTreeMap<Horizon, Slot>,
    backups_to_keep: usize,
    /// The clock backups are stamped with: the caller sets it before each run.
    pub now: DateTime<Utc>,
}

impl MemoryApplier {
    pub fn new(configs: &[ForecasterConfig], backups_to_keep: usize, now: DateTime<Utc>) -> MemoryApplier {
        let slots = configs
            .iter()
            .map(|c| {
                (
                    c.horizon,
                    Slot {
                        config: c.clone(),
                        backups: Vec::new(),
                    },
                )
            })
            .collect();
        MemoryApplier {
            slots,
            backups_to_keep,
            now,
        }
    }

    fn slot(&mut self, h: Horizon) -> anyhow::Result<&mut Slot> {
        self.slots
            .get_mut(&h)
            .ok_or_else(|| anyhow::anyhow!("no config of {h} in memory"))
    }

    /// Backs up the config of `h` at `now` and returns the backup's path.
    fn back_up(&mut self, h: Horizon) -> anyhow::Result<PathBuf> {
        let taken = backup::taken_at(self.now);
        let slot = self.slot(h)?;
        let seq = 1 + slot
            .backups
            .iter()
            .filter(|(t, _, _)| *t == taken)
            .map(|(_, s, _)| *s)
            .max()
            .unwrap_or(0);
        let copy = slot.config.clone();
        slot.backups.insert(0, (taken, seq, copy));
        slot.backups.sort_by_key(|(t, s, _)| std::cmp::Reverse((*t, *s)));
        Ok(backup::path(Path::new("configs"), h, taken, seq))
    }
}

impl Applier for MemoryApplier {
    fn deploy(
        &mut self,
        config: &ForecasterConfig,
        _message: &str,
        _owed: &HistoryRecord,
    ) -> anyhow::Result<DeployOutcome> {
        let h = config.horizon;
        let backup = self.back_up(h)?;
        let keep = self.backups_to_keep;
        let slot = self.slot(h)?;
        slot.config = config.clone();
        let pruned = slot
            .backups
            .split_off(keep.min(slot.backups.len()))
            .into_iter()
            .map(|(t, s, _)| backup::path(Path::new("configs"), h, t, s))
            .collect();
        Ok(DeployOutcome {
            status: DeployStatus::Deployed,
            config: h.config_path(Path::new("configs")),
            backup: Some(backup),
            git: GitRecord::Off,
            revert_commit: None,
            pruned,
            warnings: Vec::new(),
        })
    }

    fn rollback(
        &mut self,
        h: Horizon,
        to: Option<&str>,
        _owed: &HistoryRecord,
    ) -> anyhow::Result<RollbackOutcome> {
        let slot = self.slot(h)?;
        let current = slot.config.to_bytes();
        let candidates = slot
            .backups
            .iter()
            .map(|(t, s, c)| Ok(((*t, *s, c.clone()), c.to_bytes())));
        let target = match to {
            Some(label) => slot
                .backups
                .iter()
                .find(|(t, s, _)| backup::label_of(*t, *s) == label)
                .cloned(),
            None => backup::first_differing(Some(&current), candidates)?,
        };
        let Some((taken, seq, restored)) = target else {
            return Err(crate::exit::failure(
                ExitCode::Runtime,
                format!(
                    "no backup of {h} differs from the current config in memory; nothing to roll back to"
                ),
            ));
        };
        let safety_backup = self.back_up(h)?;
        self.slot(h)?.config = restored;
        let dir = Path::new("configs");
        Ok(RollbackOutcome {
            config: h.config_path(dir),
            restored_from: backup::path(dir, h, taken, seq),
            label: backup::label_of(taken, seq),
            safety_backup: Some(safety_backup),
            git: GitRecord::Off,
            warnings: Vec::new(),
        })
    }

    fn current(&self, h: Horizon) -> anyhow::Result<ForecasterConfig> {
        self.slots
            .get(&h)
            .map(|s| s.config.clone())
            .ok_or_else(|| anyhow::anyhow!("no config of {h} in memory"))
    }
}

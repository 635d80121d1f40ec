//! Optimization history records: one row per horizon per run. Pure types and queries;
//! `data::history` reads and writes the parquet file.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Horizon, InferenceParams, Severity, TriggerKind};

/// What a run did for one horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoTrigger,
    Suppressed,
    Rejected,
    Deployed,
    Failed,
    RolledBack,
    /// An approved candidate begins its live trial; the config is unchanged.
    TrialStarted,
    /// A run during a trial that has too few live origins to judge yet.
    OnTrial,
    /// A trial the candidate lost (or that ran out of time); the config is unchanged.
    TrialFailed,
    /// The search chose the current config: nothing was validated, nothing changed.
    Kept,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 10] = [
        Action::NoTrigger,
        Action::Suppressed,
        Action::Rejected,
        Action::Deployed,
        Action::Failed,
        Action::RolledBack,
        Action::TrialStarted,
        Action::OnTrial,
        Action::TrialFailed,
        Action::Kept,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoTrigger => "no_trigger",
            Action::Suppressed => "suppressed",
            Action::Rejected => "rejected",
            Action::Deployed => "deployed",
            Action::Failed => "failed",
            Action::RolledBack => "rolled_back",
            Action::TrialStarted => "trial_started",
            Action::OnTrial => "on_trial",
            Action::TrialFailed => "trial_failed",
            Action::Kept => "kept",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Runs that searched (deployed, rejected, kept, a trial started) or ended a trial count
    /// as optimizations for the time trigger and cooldown.
    pub fn is_optimization(self) -> bool {
        matches!(
            self,
            Action::Deployed | Action::Rejected | Action::Kept | Action::TrialStarted | Action::TrialFailed
        )
    }
}

/// Inference parameters as recorded in history (old or new).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordParams {
    pub context_length: Option<i64>,
    pub num_samples: Option<i64>,
    pub temperature: Option<f64>,
}

impl RecordParams {
    /// Parameters as history records them.
    pub fn of(p: &InferenceParams) -> RecordParams {
        RecordParams {
            context_length: Some(p.context_length as i64),
            num_samples: Some(p.num_samples as i64),
            temperature: Some(p.temperature),
        }
    }

    /// The parameters, if all three are recorded and in range.
    pub fn params(&self) -> Option<InferenceParams> {
        let p = InferenceParams {
            context_length: usize::try_from(self.context_length?).ok()?,
            num_samples: usize::try_from(self.num_samples?).ok()?,
            temperature: self.temperature?,
        };
        p.check().is_ok().then_some(p)
    }
}

/// Validation metrics as recorded in history (candidate or current).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordMetrics {
    pub rmse: Option<f64>,
    pub mape: Option<f64>,
    pub mae: Option<f64>,
    pub bias: Option<f64>,
    pub coverage_95: Option<f64>,
}

/// One history row. Typed in memory; `data::history` converts to and from the file's
/// strings, and JSON (output, the deploy journal) carries `triggered_by` in the file's
/// comma-joined form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub run_id: String,
    pub horizon: Horizon,
    pub optimization_date: DateTime<Utc>,
    pub action: Action,
    /// What started this run's optimization or rollback, in order; empty if nothing did.
    #[serde(with = "comma_joined")]
    pub triggered_by: Vec<TriggerKind>,
    pub performance_degradation_pct: Option<f64>,
    pub drift_severity: Option<Severity>,
    pub days_since_last: Option<i64>,
    pub success: bool,
    pub old: RecordParams,
    pub new: RecordParams,
    pub candidate: RecordMetrics,
    pub current: RecordMetrics,
    pub duration_seconds: f64,
    pub message: String,
    /// The health of the config in effect: None when not judged, empty when healthy, else
    /// why it needs attention (files written before health was judged have no such column).
    #[serde(default)]
    pub attention: Option<String>,
}

/// `triggered_by` as the file writes it: `performance,drift`, empty if none.
mod comma_joined {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::TriggerKind;

    pub fn serialize<S: Serializer>(kinds: &[TriggerKind], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&TriggerKind::join(kinds))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TriggerKind>, D::Error> {
        let text = String::deserialize(d)?;
        TriggerKind::split(&text).map_err(serde::de::Error::custom)
    }
}

impl HistoryRecord {
    /// Whether `kind` is among what started this row.
    pub fn triggered_by_kind(&self, kind: TriggerKind) -> bool {
        self.triggered_by.contains(&kind)
    }
}

/// The newest record of `horizon` whose action counts as an optimization.
pub fn last_optimization(records: &[HistoryRecord], horizon: Horizon) -> Option<&HistoryRecord> {
    records
        .iter()
        .filter(|r| r.horizon == horizon && r.action.is_optimization())
        .max_by_key(|r| r.optimization_date)
}

/// The newest record of `horizon` at or before `now` whose action is one of `actions`.
pub fn last_of<'a>(
    records: &'a [HistoryRecord],
    horizon: Horizon,
    now: DateTime<Utc>,
    actions: &[Action],
) -> Option<&'a HistoryRecord> {
    records
        .iter()
        .filter(|r| r.horizon == horizon && r.optimization_date <= now && actions.contains(&r.action))
        .max_by_key(|r| r.optimization_date)
}

/// The newest record of `horizon`, whatever its action.
pub fn last_record(records: &[HistoryRecord], horizon: Horizon) -> Option<&HistoryRecord> {
    records
        .iter()
        .filter(|r| r.horizon == horizon)
        .max_by_key(|r| r.optimization_date)
}

/// Whether each judged record of `horizon` needed attention, oldest first.
pub fn judged_attention(records: &[HistoryRecord], horizon: Horizon) -> Vec<bool> {
    let mut judged: Vec<&HistoryRecord> = records
        .iter()
        .filter(|r| r.horizon == horizon && r.attention.is_some())
        .collect();
    judged.sort_by_key(|r| r.optimization_date);
    judged
        .iter()
        .map(|r| r.attention.as_ref().is_some_and(|a| !a.is_empty()))
        .collect()
}

/// Whole calendar days (UTC dates) between the last optimization and `today`.
pub fn days_since(last: DateTime<Utc>, today: NaiveDate) -> i64 {
    (today - last.date_naive()).num_days()
}

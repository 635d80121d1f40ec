//! Optimization history records: one row per horizon per run. Pure types and queries;
//! `data::history` reads and writes the parquet file.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

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
    /// A dry run's approved candidate (never written to history).
    WouldDeploy,
    /// A dry run's probation rollback (never written to history).
    WouldRollBack,
}

impl Action {
    /// The actions history records.
    pub const ALL: [Action; 6] = [
        Action::NoTrigger,
        Action::Suppressed,
        Action::Rejected,
        Action::Deployed,
        Action::Failed,
        Action::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoTrigger => "no_trigger",
            Action::Suppressed => "suppressed",
            Action::Rejected => "rejected",
            Action::Deployed => "deployed",
            Action::Failed => "failed",
            Action::RolledBack => "rolled_back",
            Action::WouldDeploy => "would_deploy",
            Action::WouldRollBack => "would_roll_back",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Deployed and rejected runs count as optimizations for the time trigger and cooldown.
    pub fn is_optimization(self) -> bool {
        matches!(self, Action::Deployed | Action::Rejected)
    }
}

/// Inference parameters as recorded in history (old or new).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordParams {
    pub context_length: Option<i64>,
    pub num_samples: Option<i64>,
    pub temperature: Option<f64>,
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

/// One history row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub run_id: String,
    pub horizon: String,
    pub optimization_date: DateTime<Utc>,
    pub action: Action,
    /// Comma-separated trigger names (`performance,drift,time,force,probation`), empty if none.
    pub triggered_by: String,
    pub performance_degradation_pct: Option<f64>,
    pub drift_severity: Option<String>,
    pub days_since_last: Option<i64>,
    pub success: bool,
    pub old: RecordParams,
    pub new: RecordParams,
    pub candidate: RecordMetrics,
    pub current: RecordMetrics,
    pub duration_seconds: f64,
    pub message: String,
}

/// The newest record of `horizon` whose action counts as an optimization.
pub fn last_optimization<'a>(records: &'a [HistoryRecord], horizon: &str) -> Option<&'a HistoryRecord> {
    records
        .iter()
        .filter(|r| r.horizon == horizon && r.action.is_optimization())
        .max_by_key(|r| r.optimization_date)
}

/// The newest record of `horizon`, whatever its action.
pub fn last_record<'a>(records: &'a [HistoryRecord], horizon: &str) -> Option<&'a HistoryRecord> {
    records
        .iter()
        .filter(|r| r.horizon == horizon)
        .max_by_key(|r| r.optimization_date)
}

/// Whole calendar days (UTC dates) between the last optimization and `today`.
pub fn days_since(last: DateTime<Utc>, today: NaiveDate) -> i64 {
    (today - last.date_naive()).num_days()
}

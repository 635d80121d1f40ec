//! The dead-man check: how long ago the last completed weekly run was, against
//! `monitoring.max_run_age_days`. A scheduled job that stops running says nothing itself, so
//! `status --check` (and the metrics) say it for it. Pure: history and `now` are arguments.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::TriggerKind;
use crate::history::{Action, HistoryRecord};

/// The age of the last completed weekly run, judged against the limit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunAge {
    /// When the last completed run decided (its history rows' time); None: no run recorded.
    pub last_completed: Option<DateTime<Utc>>,
    pub run_id: Option<String>,
    /// Days from `last_completed` to now.
    pub age_days: Option<f64>,
    pub max_age_days: f64,
    /// The last completed run is older than the limit.
    pub stale: bool,
}

/// Whether a history row shows a weekly run that completed its decision for a horizon: any
/// row `run` writes except `failed` (an operator's rollback is not a run).
pub fn is_completed_run(r: &HistoryRecord) -> bool {
    r.action != Action::Failed && !r.triggered_by_kind(TriggerKind::Operator)
}

/// The newest row at or before `now` that shows a completed weekly run.
pub fn last_completed_run(records: &[HistoryRecord], now: DateTime<Utc>) -> Option<&HistoryRecord> {
    records
        .iter()
        .filter(|r| r.optimization_date <= now && is_completed_run(r))
        .max_by_key(|r| r.optimization_date)
}

/// The check itself. With no completed run recorded there is no age to judge (a new install
/// before its first run): not stale; the metrics then carry no last-completed-run sample.
pub fn check(records: &[HistoryRecord], now: DateTime<Utc>, max_age_days: f64) -> RunAge {
    let last = last_completed_run(records, now);
    let age_days = last.map(|r| (now - r.optimization_date).num_seconds() as f64 / 86_400.0);
    RunAge {
        last_completed: last.map(|r| r.optimization_date),
        run_id: last.map(|r| r.run_id.clone()),
        age_days,
        max_age_days,
        stale: age_days.is_some_and(|a| a > max_age_days),
    }
}

impl RunAge {
    /// One line for a person: the age, the run, and what to check when it is too old.
    pub fn summary(&self) -> String {
        match (self.last_completed, self.age_days) {
            (Some(t), Some(age)) => {
                let mut s = format!(
                    "last completed weekly run {age:.1} days ago ({}, run {})",
                    t.format("%Y-%m-%d %H:%M UTC"),
                    self.run_id.as_deref().unwrap_or("-")
                );
                if self.stale {
                    s.push_str(&format!(
                        "; older than monitoring.max_run_age_days = {}: the scheduled job has \
                         stopped running, or every run fails (check its timer and journal: `systemctl \
                         list-timers model-optimizer.timer`, `journalctl -u model-optimizer.service`)",
                        self.max_age_days
                    ));
                }
                s
            }
            _ => "no completed weekly run recorded yet".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(day: u32, action: Action, triggered_by: &str) -> HistoryRecord {
        HistoryRecord {
            run_id: format!("r{day}"),
            horizon: crate::domain::Horizon(7),
            optimization_date: Utc.with_ymd_and_hms(2026, 11, day, 5, 0, 0).unwrap(),
            action,
            triggered_by: TriggerKind::split(triggered_by).unwrap(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: true,
            old: crate::history::RecordParams::default(),
            new: crate::history::RecordParams::default(),
            candidate: crate::history::RecordMetrics::default(),
            current: crate::history::RecordMetrics::default(),
            duration_seconds: 0.0,
            message: String::new(),
            attention: None,
        }
    }

    #[test]
    fn failed_rows_and_operator_rollbacks_are_not_completed_runs() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 5, 0, 0).unwrap();
        let rows = [
            row(1, Action::NoTrigger, ""),
            row(10, Action::Failed, "time"),
            row(11, Action::RolledBack, "operator"),
            row(25, Action::Deployed, "time"), // after now: an --as-of view ignores it
        ];
        let age = check(&rows, now, 8.0);
        assert_eq!(age.run_id.as_deref(), Some("r1"));
        assert_eq!(age.age_days, Some(19.0));
        assert!(age.stale);
        assert!(age.summary().contains("19.0 days ago"), "{}", age.summary());
        let fresh = check(&rows, Utc.with_ymd_and_hms(2026, 11, 3, 5, 0, 0).unwrap(), 8.0);
        assert!(!fresh.stale && fresh.age_days == Some(2.0));
        let empty = check(&[], now, 8.0);
        assert!(!empty.stale && empty.last_completed.is_none());
    }
}

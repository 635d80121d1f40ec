//! The time trigger: whole calendar days (UTC dates) since the horizon's last optimization.
//!
//! Counting UTC calendar dates rather than elapsed hours keeps a weekly schedule exact across
//! daylight-saving changes: the Sunday 02:00 America/Santiago run is 05:00 or 06:00 UTC
//! depending on the season, so the elapsed time between runs two weeks apart is 13 days 23
//! hours or 14 days 1 hour, but the UTC dates are always exactly 14 days apart.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::TriggerSettings;
use crate::domain::Horizon;
use crate::history::{self, Action, HistoryRecord};

/// The time section of a trigger report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeReport {
    /// When the horizon was last optimized (a deployed or rejected run), if ever.
    pub last_optimization: Option<DateTime<Utc>>,
    pub last_action: Option<Action>,
    /// Calendar days (UTC dates) from the last optimization to the evaluation date.
    pub days_since: Option<i64>,
    pub threshold_days: i64,
    pub fired: bool,
    pub summary: String,
}

/// Evaluates the time trigger for `horizon` at `now`. Records dated after `now` are ignored,
/// so an `--as-of` evaluation sees the history as it was then.
pub fn evaluate_time(
    records: &[HistoryRecord],
    horizon: Horizon,
    settings: &TriggerSettings,
    now: DateTime<Utc>,
) -> TimeReport {
    let past: Vec<HistoryRecord> = records
        .iter()
        .filter(|r| r.optimization_date <= now)
        .cloned()
        .collect();
    let last = history::last_optimization(&past, horizon);
    let threshold = settings.time_days;
    match last {
        None => TimeReport {
            last_optimization: None,
            last_action: None,
            days_since: None,
            threshold_days: threshold,
            fired: true,
            summary: "never optimized".to_string(),
        },
        Some(rec) => {
            let days = history::days_since(rec.optimization_date, now.date_naive());
            let fired = days >= threshold;
            TimeReport {
                last_optimization: Some(rec.optimization_date),
                last_action: Some(rec.action),
                days_since: Some(days),
                threshold_days: threshold,
                fired,
                summary: format!(
                    "{days} days since the last optimization ({}, {}) {} {threshold}",
                    rec.action.as_str(),
                    rec.optimization_date.date_naive(),
                    if fired { ">=" } else { "<" }
                ),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::{RecordMetrics, RecordParams};
    use chrono::{Duration, NaiveDate, TimeZone};

    pub(crate) fn record(horizon: &str, at: DateTime<Utc>, action: Action) -> HistoryRecord {
        HistoryRecord {
            run_id: format!("run-{}", at.timestamp()),
            horizon: horizon.parse().unwrap(),
            optimization_date: at,
            action,
            triggered_by: crate::domain::TriggerKind::split("time").unwrap(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: true,
            old: RecordParams::default(),
            new: RecordParams::default(),
            candidate: RecordMetrics::default(),
            current: RecordMetrics::default(),
            duration_seconds: 1.0,
            message: String::new(),
            attention: None,
        }
    }

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// UTC offset of America/Santiago in hours on a Sunday at 02:00 local, for 2025-2026.
    /// Chile changes clocks at local midnight between Saturday and Sunday: summer time (-03)
    /// ends 2025-04-06 and 2026-04-05 (back to -04), and starts 2025-09-07 and 2026-09-06
    /// (00:00 -04 becomes 01:00 -03). By 02:00 on a change day the new offset applies.
    fn santiago_offset_hours(sunday: NaiveDate) -> i64 {
        let summer = sunday < ymd(2025, 4, 6)
            || (sunday >= ymd(2025, 9, 7) && sunday < ymd(2026, 4, 5))
            || sunday >= ymd(2026, 9, 6);
        if summer {
            -3
        } else {
            -4
        }
    }

    /// The UTC instant of the cron run at Sunday 02:00 Santiago time.
    fn sunday_run(sunday: NaiveDate) -> DateTime<Utc> {
        let local = sunday.and_hms_opt(2, 0, 0).unwrap();
        Utc.from_utc_datetime(&(local - Duration::hours(santiago_offset_hours(sunday))))
    }

    #[test]
    fn weekly_runs_across_chilean_dst_changes_fire_at_exactly_14_days() {
        let settings = TriggerSettings::default();
        assert_eq!(settings.time_days, 14);
        // Every Sunday from 2025-03-02 to 2026-10-25 covers the four changes.
        let sundays: Vec<NaiveDate> = (0..=86).map(|w| ymd(2025, 3, 2) + Duration::weeks(w)).collect();
        assert_eq!(sundays.last(), Some(&ymd(2026, 10, 25)));
        let runs: Vec<DateTime<Utc>> = sundays.iter().map(|d| sunday_run(*d)).collect();
        // The runs really are at different UTC hours around the changes.
        assert_eq!(
            sunday_run(ymd(2025, 3, 30)).to_rfc3339(),
            "2025-03-30T05:00:00+00:00"
        );
        assert_eq!(
            sunday_run(ymd(2025, 4, 6)).to_rfc3339(),
            "2025-04-06T06:00:00+00:00"
        );
        assert_eq!(
            sunday_run(ymd(2025, 8, 31)).to_rfc3339(),
            "2025-08-31T06:00:00+00:00"
        );
        assert_eq!(
            sunday_run(ymd(2025, 9, 7)).to_rfc3339(),
            "2025-09-07T05:00:00+00:00"
        );
        assert_eq!(
            sunday_run(ymd(2026, 4, 5)).to_rfc3339(),
            "2026-04-05T06:00:00+00:00"
        );
        assert_eq!(
            sunday_run(ymd(2026, 9, 6)).to_rfc3339(),
            "2026-09-06T05:00:00+00:00"
        );

        let mut dst_short = 0;
        for k in 0..runs.len() - 2 {
            // The optimization is recorded when the run finishes, 40 minutes after it starts.
            let optimized = runs[k] + Duration::minutes(40);
            let history = [record("7d", optimized, Action::Deployed)];
            let next = evaluate_time(&history, Horizon(7), &settings, runs[k + 1]);
            assert_eq!(next.days_since, Some(7), "week after {}", sundays[k]);
            assert!(!next.fired, "fired one week after {}", sundays[k]);
            let fortnight = evaluate_time(&history, Horizon(7), &settings, runs[k + 2]);
            assert_eq!(fortnight.days_since, Some(14), "two weeks after {}", sundays[k]);
            assert!(fortnight.fired, "did not fire two weeks after {}", sundays[k]);
            // Run to run, a fortnight spanning a spring-forward change lasts 13 days 23 hours:
            // counting elapsed days would skip the run there.
            if runs[k + 2] - runs[k] < Duration::days(14) {
                dst_short += 1;
            }
        }
        // Two fortnights end on or span each of the two September changes.
        assert_eq!(dst_short, 4);
    }

    #[test]
    fn never_optimized_fires_and_other_actions_do_not_count() {
        let settings = TriggerSettings::default();
        let now = Utc.with_ymd_and_hms(2026, 1, 4, 5, 0, 0).unwrap();
        let r = evaluate_time(&[], Horizon(7), &settings, now);
        assert!(r.fired);
        assert_eq!(r.summary, "never optimized");
        // Failed and no-trigger runs are not optimizations; another horizon's is not ours; a
        // record after `now` (seen from an --as-of date) does not exist yet.
        let history = [
            record("7d", now - Duration::days(2), Action::Failed),
            record("7d", now - Duration::days(1), Action::NoTrigger),
            record("15d", now - Duration::days(1), Action::Deployed),
            record("7d", now + Duration::days(1), Action::Deployed),
            record("7d", now - Duration::days(20), Action::Rejected),
        ];
        let r = evaluate_time(&history, Horizon(7), &settings, now);
        assert_eq!(r.days_since, Some(20));
        assert_eq!(r.last_action, Some(Action::Rejected));
        assert!(r.fired);
    }
}

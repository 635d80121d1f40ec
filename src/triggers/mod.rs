//! Decides, per horizon, whether to optimize: two alarms (performance degradation and drift),
//! the scheduled check (time since the last optimization), the cooldown that holds the alarms
//! back after an optimization, and `--force`.
//!
//! Alarms say the market or the model changed; they carry a severity, make the
//! `triggered` mail and are what `replay` counts as alarm episodes. The scheduled check also
//! starts an optimization but is reported as `scheduled`, not as an alarm (history keeps
//! `time` in `triggered_by`).
//!
//! Pure: [`evaluate`] takes the series, tracked (or replayed) forecast errors, the history and
//! `now`, and returns a [`TriggerReport`] that `status --check`, `run` and the history record
//! all read.
//!
//! # Layout
//! - `stats`: the two-sample tests (SciPy parity); `kolmogorov`: the KS distribution.
//! - `shock`: the CUSUM shock detector behind the drift alarm.
//! - `drift`, `performance`, `time`: one trigger each, each with its own report section.
//! - `episodes`: alarm episodes and their confirmation (the labeled-shock benchmark, `replay`).

pub mod drift;
pub mod episodes;
pub mod kolmogorov;
pub mod performance;
pub mod shock;
pub mod stats;
pub mod time;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::TriggerSettings;
use crate::domain::{Horizon, TriggerKind};
use crate::history::HistoryRecord;
use crate::series::Series;

pub use drift::{evaluate_drift, DriftReport, Severity};
pub use performance::{
    evaluate_performance, needs_replay, tracked_errors, ErrorPoint, ErrorSource, PerformanceReport,
};
pub use time::{evaluate_time, TimeReport};

/// Everything the triggers of one horizon look at.
#[derive(Clone, Copy, Debug)]
pub struct TriggerInput<'a> {
    pub horizon: Horizon,
    /// The observed series; cut at `now`'s UTC date before use (the `--as-of` view).
    pub series: &'a Series,
    /// Errors of tracked predictions with actuals (see [`tracked_errors`]).
    pub tracked_errors: &'a [ErrorPoint],
    /// Errors of a backtest replay of the deployed config, when the caller ran one because
    /// [`needs_replay`] said the tracked errors are too few.
    pub replay_errors: Option<&'a [ErrorPoint]>,
    /// The optimization history (all horizons; records after `now` are ignored).
    pub history: &'a [HistoryRecord],
}

/// The cooldown after an optimization.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CooldownInfo {
    pub cooldown_days: i64,
    pub days_since_last: Option<i64>,
    /// True for the first `cooldown_days` calendar days after an optimization (days
    /// 0..cooldown_days-1), so `cooldown_days = 0` disables it.
    pub active: bool,
    /// Triggers that fired but were held back by the cooldown.
    pub suppressed: Vec<TriggerKind>,
}

/// The decision for one horizon and the figures behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TriggerReport {
    pub horizon: Horizon,
    pub evaluated_at: DateTime<Utc>,
    pub should_optimize: bool,
    pub forced: bool,
    /// The alarms that count (performance, drift; suppressed ones excluded) ...
    pub alarms: Vec<TriggerKind>,
    /// ... and the highest severity among them (NONE without an alarm).
    pub severity: Severity,
    /// The scheduled check is due (time since the last optimization): it starts an
    /// optimization but is not an alarm.
    pub scheduled: bool,
    /// One line per trigger that fired or was suppressed, or why nothing fired.
    pub reasons: Vec<String>,
    pub performance: PerformanceReport,
    pub drift: DriftReport,
    pub time: TimeReport,
    pub cooldown: CooldownInfo,
}

impl TriggerReport {
    /// The alarms that count (performance, drift), suppressed ones excluded.
    pub fn alarms(&self) -> Vec<TriggerKind> {
        self.triggers()
            .into_iter()
            .filter(|k| matches!(k, TriggerKind::Performance | TriggerKind::Drift))
            .collect()
    }

    /// Names of the triggers that count for this decision, in the order performance, drift,
    /// time (the scheduled check), force (suppressed ones excluded).
    pub fn triggers(&self) -> Vec<TriggerKind> {
        let mut kinds = Vec::new();
        if self.performance.fired && !self.performance.suppressed_by_cooldown {
            kinds.push(TriggerKind::Performance);
        }
        if self.drift.fired && !self.drift.suppressed_by_cooldown {
            kinds.push(TriggerKind::Drift);
        }
        if self.time.fired {
            kinds.push(TriggerKind::Time);
        }
        if self.forced {
            kinds.push(TriggerKind::Force);
        }
        kinds
    }

    /// The history record's `triggered_by`: comma-joined trigger names, empty if none.
    pub fn triggered_by(&self) -> String {
        TriggerKind::join(&self.triggers())
    }

    /// The history record's `performance_degradation_pct` (None when not evaluated).
    pub fn performance_degradation_pct(&self) -> Option<f64> {
        self.performance.degradation_pct
    }

    /// The history record's `drift_severity` (None when the data were too short).
    pub fn drift_severity(&self) -> Option<Severity> {
        (self.drift.status == drift::DriftStatus::Evaluated).then_some(self.drift.severity)
    }

    /// The history record's `days_since_last` (None if never optimized).
    pub fn days_since_last(&self) -> Option<i64> {
        self.time.days_since
    }
}

/// Evaluates every trigger of one horizon at `now`. `force` makes `should_optimize` true
/// whatever the triggers say (and regardless of the cooldown).
pub fn evaluate(
    input: &TriggerInput<'_>,
    settings: &TriggerSettings,
    now: DateTime<Utc>,
    force: bool,
) -> TriggerReport {
    let today = now.date_naive();
    let series = input.series.truncated_at(today);
    let mut performance = evaluate_performance(
        input.tracked_errors,
        input.replay_errors,
        settings,
        today,
        input.horizon.steps(),
    );
    let mut drift = evaluate_drift(&series, settings);
    let time = evaluate_time(input.history, input.horizon, settings, now);

    let days_since_last = time.days_since;
    let active = days_since_last.is_some_and(|d| d < settings.cooldown_days);
    let mut suppressed = Vec::new();
    let mut reasons = Vec::new();
    if performance.fired {
        if active {
            performance.suppressed_by_cooldown = true;
            suppressed.push(TriggerKind::Performance);
        } else {
            reasons.push(format!("performance: {}", performance.summary));
        }
    }
    if drift.fired {
        if active {
            drift.suppressed_by_cooldown = true;
            suppressed.push(TriggerKind::Drift);
        } else {
            reasons.push(format!("drift: {}", drift.summary));
        }
    }
    if time.fired {
        reasons.push(format!("scheduled: {}", time.summary));
    }
    for name in &suppressed {
        reasons.push(format!(
            "{name} suppressed by cooldown ({} days since the last optimization < {})",
            days_since_last.unwrap_or_default(),
            settings.cooldown_days
        ));
    }
    if force {
        reasons.push("forced (--force)".to_string());
    }
    let mut report = TriggerReport {
        horizon: input.horizon,
        evaluated_at: now,
        should_optimize: false,
        forced: force,
        alarms: Vec::new(),
        severity: Severity::None,
        scheduled: false,
        reasons,
        performance,
        drift,
        time,
        cooldown: CooldownInfo {
            cooldown_days: settings.cooldown_days,
            days_since_last,
            active,
            suppressed,
        },
    };
    report.should_optimize = !report.triggers().is_empty();
    report.alarms = report.alarms();
    report.scheduled = report.time.fired;
    report.severity = report
        .alarms
        .iter()
        .map(|k| match k {
            TriggerKind::Drift => report.drift.severity,
            _ => report.performance.severity(),
        })
        .max()
        .unwrap_or(Severity::None);
    if report.reasons.is_empty() {
        report.reasons.push("no trigger fired".to_string());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Action;
    use crate::series::Prediction;
    use chrono::{Duration, NaiveDate, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 5, 0, 0).unwrap()
    }

    /// 401 daily log-returns ending at `now`: calm for 371, then the last 30 almost four times
    /// as volatile.
    fn drifting_series() -> Series {
        let mut s = 12_345u64;
        let mut noise = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let today = now().date_naive();
        let mut values = vec![900.0f64];
        for i in 0..401 {
            let scale = if i < 371 { 0.004 } else { 0.015 };
            values.push(values.last().unwrap() * (scale * noise()).exp());
        }
        let n = values.len() as i64;
        Series {
            dates: (0..n).map(|i| today - Duration::days(n - 1 - i)).collect(),
            values,
        }
    }

    /// Tracked errors of 60 days: 10 before the recent window, 13 inside it (+20.7%).
    fn degraded_errors() -> Vec<ErrorPoint> {
        let today = now().date_naive();
        let preds: Vec<Prediction> = (0..60)
            .map(|k| {
                let target: NaiveDate = today - Duration::days(k);
                let e = if k < 14 { 13.0 } else { 10.0 };
                Prediction {
                    horizon: "7d".into(),
                    forecast_date: target - Duration::days(9),
                    target_date: target,
                    prediction: 900.0 + if k % 2 == 0 { e } else { -e },
                    actual: Some(900.0),
                    confidence_low: 0.0,
                    confidence_high: 0.0,
                    model_version: "v".into(),
                }
            })
            .collect();
        // The random walk errs by 10 at every forecast date: relative equals absolute.
        let flat = Series {
            dates: (0..100).map(|i| today - Duration::days(99 - i)).collect(),
            values: vec![910.0; 100],
        };
        tracked_errors(&preds, Horizon(7), &flat)
    }

    fn input<'a>(
        series: &'a Series,
        errors: &'a [ErrorPoint],
        history: &'a [HistoryRecord],
    ) -> TriggerInput<'a> {
        TriggerInput {
            horizon: Horizon(7),
            series,
            tracked_errors: errors,
            replay_errors: None,
            history,
        }
    }

    #[test]
    fn performance_and_drift_fire_outside_the_cooldown() {
        let settings = TriggerSettings::default();
        let series = drifting_series();
        let errors = degraded_errors();
        let history = [time::tests::record(
            "7d",
            now() - Duration::days(7),
            Action::Deployed,
        )];
        let r = evaluate(&input(&series, &errors, &history), &settings, now(), false);
        assert!(r.should_optimize);
        assert_eq!(r.triggered_by(), "performance,drift");
        assert_eq!(r.alarms, [TriggerKind::Performance, TriggerKind::Drift]);
        assert!(!r.scheduled);
        assert!(r.severity >= Severity::Medium, "{:?}", r.severity);
        assert!(!r.cooldown.active);
        assert_eq!(r.days_since_last(), Some(7));
        assert!(r.performance_degradation_pct().unwrap() > 20.0);
        assert!(
            matches!(
                r.drift_severity(),
                Some(crate::domain::Severity::Medium | crate::domain::Severity::High)
            ),
            "{:?}",
            r.drift_severity()
        );
        assert!(
            r.reasons.iter().any(|s| s.starts_with("performance: RMSE")),
            "{:?}",
            r.reasons
        );
        assert!(
            r.reasons.iter().any(|s| s.starts_with("drift: drift")),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn cooldown_suppresses_performance_and_drift_but_not_time() {
        let settings = TriggerSettings::default();
        assert_eq!(settings.cooldown_days, 6);
        let series = drifting_series();
        let errors = degraded_errors();
        for days in [0, 3, 5] {
            let history = [time::tests::record(
                "7d",
                now() - Duration::days(days),
                Action::Rejected,
            )];
            let r = evaluate(&input(&series, &errors, &history), &settings, now(), false);
            assert!(r.cooldown.active, "{days} days");
            assert!(!r.should_optimize, "{days} days: {:?}", r.reasons);
            assert_eq!(r.triggered_by(), "");
            assert_eq!(
                r.cooldown.suppressed,
                [TriggerKind::Performance, TriggerKind::Drift]
            );
            assert!(r.performance.fired && r.performance.suppressed_by_cooldown);
            assert!(r.drift.fired && r.drift.suppressed_by_cooldown);
            assert!(
                r.reasons
                    .iter()
                    .any(|s| s.contains("drift suppressed by cooldown")),
                "{:?}",
                r.reasons
            );
        }
        // Day 6 is past a 6-day cooldown.
        let history = [time::tests::record(
            "7d",
            now() - Duration::days(6),
            Action::Deployed,
        )];
        let r = evaluate(&input(&series, &errors, &history), &settings, now(), false);
        assert!(!r.cooldown.active && r.should_optimize);

        // The time trigger is never held back: with time_days below the cooldown it fires.
        let short = TriggerSettings {
            time_days: 2,
            ..TriggerSettings::default()
        };
        let history = [time::tests::record(
            "7d",
            now() - Duration::days(3),
            Action::Deployed,
        )];
        let r = evaluate(&input(&series, &errors, &history), &short, now(), false);
        assert!(r.cooldown.active);
        assert!(r.should_optimize);
        assert_eq!(r.triggered_by(), "time");
        // The scheduled check is not an alarm.
        assert!(r.scheduled && r.alarms.is_empty());
        assert_eq!(r.severity, Severity::None);
    }

    #[test]
    fn force_overrides_quiet_triggers_and_the_cooldown() {
        let settings = TriggerSettings::default();
        // Too little data for drift or performance, optimized yesterday: nothing fires.
        let short = Series {
            dates: vec![now().date_naive()],
            values: vec![900.0],
        };
        let history = [time::tests::record(
            "7d",
            now() - Duration::days(1),
            Action::Deployed,
        )];
        let r = evaluate(&input(&short, &[], &history), &settings, now(), false);
        assert!(!r.should_optimize);
        assert_eq!(r.reasons, ["no trigger fired"]);
        assert_eq!(r.drift_severity(), None);
        assert!(r.performance.summary.contains("insufficient tracked data"));

        let r = evaluate(&input(&short, &[], &history), &settings, now(), true);
        assert!(r.should_optimize && r.forced);
        assert_eq!(r.triggered_by(), "force");
        assert!(r.reasons.iter().any(|s| s == "forced (--force)"));

        // Forced during a cooldown with drift firing: drift stays suppressed, force decides.
        let series = drifting_series();
        let r = evaluate(&input(&series, &[], &history), &settings, now(), true);
        assert!(r.should_optimize);
        assert_eq!(r.triggered_by(), "force");
        assert_eq!(r.cooldown.suppressed, [TriggerKind::Drift]);
    }

    #[test]
    fn never_optimized_fires_time_and_the_report_serializes() {
        let settings = TriggerSettings::default();
        let series = drifting_series();
        let r = evaluate(&input(&series, &[], &[]), &settings, now(), false);
        assert!(r.time.fired && r.should_optimize);
        assert!(!r.cooldown.active);
        assert_eq!(r.days_since_last(), None);
        assert!(
            r.reasons.iter().any(|s| s == "scheduled: never optimized"),
            "{:?}",
            r.reasons
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["horizon"], "7d");
        assert_eq!(json["should_optimize"], true);
        assert!(json["drift"]["severity"].is_string());
        assert!(json["drift"]["tests"]["ks"]["pvalue"].is_number());
        assert!(json["drift"]["statistic"].is_number() && json["drift"]["threshold"].is_number());
        assert_eq!(json["scheduled"], true);
        assert!(json["alarms"].is_array());
        assert_eq!(json["performance"]["status"], "insufficient_data");
        assert_eq!(json["time"]["summary"], "never optimized");
    }

    #[test]
    fn as_of_evaluation_ignores_later_data() {
        // The drifting part of the series lies after the evaluation date: nothing to see.
        let settings = TriggerSettings::default();
        let series = drifting_series();
        let earlier = now() - Duration::days(30);
        let history = [time::tests::record(
            "7d",
            earlier - Duration::days(7),
            Action::Deployed,
        )];
        let r = evaluate(&input(&series, &[], &history), &settings, earlier, false);
        assert_eq!(r.drift.last_date, Some(earlier.date_naive()));
        assert_eq!(r.drift.status, drift::DriftStatus::Evaluated);
        assert!(!r.drift.fired, "{}", r.drift.summary);
        let r = evaluate(&input(&series, &[], &history), &settings, now(), false);
        assert!(r.drift.fired, "{}", r.drift.summary);
    }
}

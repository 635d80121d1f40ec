//! The performance trigger: the recent window's errors against the baseline window's, in
//! absolute terms and relative to the random walk.
//!
//! Absolute degradation = RMSE(last `performance_recent_days` calendar days) / RMSE(last
//! `performance_baseline_days`) - 1, in percent, over forecast errors dated by their target
//! date. It also rises when the market gets more volatile, which raises every forecaster's
//! errors, so the relative degradation compares the model with the random walk (the value at
//! the forecast's origin) on the same forecasts: `ratio = RMSE(model) / RMSE(random walk)` per
//! window and relative degradation = ratio(recent) / ratio(baseline) - 1. The trigger fires
//! when the one `performance_mode` names (absolute, relative, or both) reaches
//! `performance_threshold_pct` *and* the rise is significant; the report shows both figures,
//! the test statistic and its p-value.
//!
//! Significance: 14 days of h-step errors overlap heavily (forecasts made on consecutive days
//! share h - 1 targets' worth of path), so a ratio above the threshold can be noise. Over the
//! recent window, with `b` the baseline's figure, the loss differences are
//! `d_t = e_t^2 - b^2 rw_t^2` (relative: the model's squared error beyond what the baseline
//! ratio predicts from the random walk's) or `d_t = e_t^2 - b^2` (absolute: beyond the baseline
//! mean squared error), in target-date order. H0: mean(d) <= 0, H1: > 0, by the
//! Diebold-Mariano statistic (`metrics::diebold_mariano`: rectangular HAC variance with h - 1
//! autocovariances for the overlap, Harvey-Leybourne-Newbold correction, Student t with
//! n - 1 degrees of freedom), treating the baseline figure as known. Mode `both` takes the
//! larger p-value. The alarm needs p < `performance_alpha`.
//!
//! Errors come from tracked production
//! predictions when there are at least `min_tracked_recent` / `min_tracked_baseline` of them in
//! the two windows; otherwise the caller replays the deployed config with the backtester (it is
//! zero-shot and deterministic, so the replay reproduces what production forecast) and passes
//! those errors. Without either, the report says "insufficient tracked data".

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::config::{PerformanceMode, TriggerSettings};
use crate::domain::{Horizon, Severity};
use crate::series::{Prediction, Series};

/// One forecast error: forecast - actual, dated by the target date, with the random walk's
/// error on the same target (its forecast being the last value known at the origin).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ErrorPoint {
    pub target_date: NaiveDate,
    pub error: f64,
    pub random_walk_error: f64,
}

/// Where the errors came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorSource {
    /// Tracked production predictions with known actuals.
    Tracked,
    /// A backtest replay of the deployed config on the windows' origins.
    Replay,
}

impl ErrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Tracked => "tracked",
            ErrorSource::Replay => "replay",
        }
    }
}

/// Errors of the tracked predictions of `horizon` whose actual is known, sorted by target date.
/// A prediction re-issued for the same (forecast date, target date) counts once: the last one
/// in `predictions` wins, so re-running the forecaster does not double-count a day. The random
/// walk's forecast is the last observed value of `series` at or before the forecast date; a
/// prediction made before the series starts has none and is left out.
pub fn tracked_errors(predictions: &[Prediction], horizon: Horizon, series: &Series) -> Vec<ErrorPoint> {
    let label = horizon.label();
    let mut latest: BTreeMap<(NaiveDate, NaiveDate), (f64, f64)> = BTreeMap::new();
    for p in predictions.iter().filter(|p| p.horizon == label) {
        if let Some(actual) = p.actual {
            let Some(rw) = last_value_at(series, p.forecast_date) else {
                continue;
            };
            if actual.is_finite() && p.prediction.is_finite() {
                latest.insert(
                    (p.target_date, p.forecast_date),
                    (p.prediction - actual, rw - actual),
                );
            }
        }
    }
    latest
        .into_iter()
        .map(|((target_date, _), (error, random_walk_error))| ErrorPoint {
            target_date,
            error,
            random_walk_error,
        })
        .collect()
}

/// The last observed value of `series` dated at or before `date`.
fn last_value_at(series: &Series, date: NaiveDate) -> Option<f64> {
    let end = series.dates.partition_point(|d| *d <= date);
    series.values[..end].iter().rev().copied().find(|v| !v.is_nan())
}

/// Points in the recent and baseline windows ending at `today` (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WindowCounts {
    pub recent: usize,
    pub baseline: usize,
}

/// Whether `date` is in the `days` calendar days ending at `today`: today - days < date <= today.
pub(crate) fn in_window(date: NaiveDate, today: NaiveDate, days: u32) -> bool {
    date <= today && (today - date).num_days() < i64::from(days)
}

pub fn window_counts(errors: &[ErrorPoint], settings: &TriggerSettings, today: NaiveDate) -> WindowCounts {
    WindowCounts {
        recent: errors
            .iter()
            .filter(|e| in_window(e.target_date, today, settings.performance_recent_days))
            .count(),
        baseline: errors
            .iter()
            .filter(|e| in_window(e.target_date, today, settings.performance_baseline_days))
            .count(),
    }
}

/// True when the tracked errors are too few in either window and a replay is needed.
pub fn needs_replay(tracked: &[ErrorPoint], settings: &TriggerSettings, today: NaiveDate) -> bool {
    let c = window_counts(tracked, settings, today);
    c.recent < settings.min_tracked_recent || c.baseline < settings.min_tracked_baseline
}

/// Whether the performance figures could be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceStatus {
    Evaluated,
    InsufficientData,
}

/// The one-sided test that the recent window's losses exceed what the baseline predicts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DegradationTest {
    /// HLN-corrected Diebold-Mariano statistic of the loss differences (positive: worse).
    pub statistic: f64,
    /// One-sided p-value, P(T_{n-1} >= statistic).
    pub pvalue: f64,
    /// Loss differences (recent-window errors) and HAC autocovariance lags used.
    pub n: usize,
    pub lags: usize,
    pub mean_difference: f64,
}

/// The performance section of a trigger report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerformanceReport {
    pub status: PerformanceStatus,
    /// The source the figures below come from; None when nothing could be evaluated.
    pub source: Option<ErrorSource>,
    /// Tracked points in each window (always reported, even when a replay was used).
    pub tracked: WindowCounts,
    pub min_tracked_recent: usize,
    pub min_tracked_baseline: usize,
    pub recent_days: u32,
    pub baseline_days: u32,
    /// Points of the used source in each window.
    pub points: WindowCounts,
    pub recent_rmse: Option<f64>,
    pub baseline_rmse: Option<f64>,
    /// (recent_rmse / baseline_rmse - 1) * 100.
    pub degradation_pct: Option<f64>,
    /// The random walk's RMSE on the same forecasts in each window.
    pub recent_rw_rmse: Option<f64>,
    pub baseline_rw_rmse: Option<f64>,
    /// RMSE(model) / RMSE(random walk) per window.
    pub recent_ratio: Option<f64>,
    pub baseline_ratio: Option<f64>,
    /// (recent_ratio / baseline_ratio - 1) * 100.
    pub relative_degradation_pct: Option<f64>,
    /// Which degradation fires the trigger.
    pub mode: PerformanceMode,
    pub threshold_pct: f64,
    /// The significance test of the mode's degradation (mode `both`: the one with the larger
    /// p-value), its p-value and level.
    pub test: Option<DegradationTest>,
    pub pvalue: Option<f64>,
    pub alpha: f64,
    pub fired: bool,
    /// Set by `triggers::evaluate` when the cooldown holds this trigger back.
    pub suppressed_by_cooldown: bool,
    pub summary: String,
}

impl PerformanceReport {
    fn new(tracked: WindowCounts, settings: &TriggerSettings) -> PerformanceReport {
        PerformanceReport {
            status: PerformanceStatus::InsufficientData,
            source: None,
            tracked,
            min_tracked_recent: settings.min_tracked_recent,
            min_tracked_baseline: settings.min_tracked_baseline,
            recent_days: settings.performance_recent_days,
            baseline_days: settings.performance_baseline_days,
            points: WindowCounts {
                recent: 0,
                baseline: 0,
            },
            recent_rmse: None,
            baseline_rmse: None,
            degradation_pct: None,
            recent_rw_rmse: None,
            baseline_rw_rmse: None,
            recent_ratio: None,
            baseline_ratio: None,
            relative_degradation_pct: None,
            mode: settings.performance_mode,
            threshold_pct: settings.performance_threshold_pct,
            test: None,
            pvalue: None,
            alpha: settings.performance_alpha,
            fired: false,
            suppressed_by_cooldown: false,
            summary: String::new(),
        }
    }

    /// The alarm's severity: NONE unless fired; then by how far the mode's degradation is
    /// past the threshold (1.5x MEDIUM, 2x HIGH; mode `both`: the smaller of the two).
    pub fn severity(&self) -> Severity {
        if !self.fired {
            return Severity::None;
        }
        let (abs, rel) = (
            self.degradation_pct.unwrap_or(f64::NAN),
            self.relative_degradation_pct.unwrap_or(f64::NAN),
        );
        let figure = match self.mode {
            PerformanceMode::Absolute => abs,
            PerformanceMode::Relative => rel,
            PerformanceMode::Both => abs.min(rel),
        };
        super::shock::severity(true, figure / self.threshold_pct, 0.0)
    }
}

/// RMSE of the model and of the random walk over the window's errors.
fn rmse_in_window(errors: &[ErrorPoint], today: NaiveDate, days: u32) -> Option<(f64, f64)> {
    let (n, ss, rw) = errors
        .iter()
        .filter(|e| in_window(e.target_date, today, days))
        .fold((0usize, 0.0f64, 0.0f64), |(n, ss, rw), e| {
            (
                n + 1,
                ss + e.error * e.error,
                rw + e.random_walk_error * e.random_walk_error,
            )
        });
    (n > 0).then(|| ((ss / n as f64).sqrt(), (rw / n as f64).sqrt()))
}

/// The one-sided test of mean(d) > 0 for the recent window's loss differences
/// `d = e^2 - scale^2 * reference^2` (`reference` = the random walk's error, or 1), with
/// `steps - 1` HAC lags. None with fewer than 2 differences.
pub fn degradation_test(
    recent: &[ErrorPoint],
    scale: f64,
    against_random_walk: bool,
    steps: usize,
) -> Option<DegradationTest> {
    let d: Vec<f64> = recent
        .iter()
        .map(|e| {
            let reference = if against_random_walk {
                e.random_walk_error
            } else {
                1.0
            };
            e.error * e.error - scale * scale * reference * reference
        })
        .collect();
    let dm = crate::metrics::diebold_mariano(&d, steps.max(1)).ok()?;
    Some(DegradationTest {
        statistic: dm.statistic,
        pvalue: (1.0 - dm.p_value_lower).clamp(0.0, 1.0),
        n: dm.n,
        lags: dm.lags,
        mean_difference: dm.mean_differential,
    })
}

/// Evaluates the performance trigger as of `today` from the tracked errors, falling back to
/// `replay` (errors of a backtest replay) when the tracked ones are too few; `steps` is the
/// horizon in business days (the errors' overlap).
pub fn evaluate_performance(
    tracked: &[ErrorPoint],
    replay: Option<&[ErrorPoint]>,
    settings: &TriggerSettings,
    today: NaiveDate,
    steps: usize,
) -> PerformanceReport {
    let tracked_counts = window_counts(tracked, settings, today);
    let mut report = PerformanceReport::new(tracked_counts, settings);
    let insufficient_tracked = format!(
        "insufficient tracked data ({} of {} in the last {} days, {} of {} in the last {} days)",
        tracked_counts.recent,
        settings.min_tracked_recent,
        settings.performance_recent_days,
        tracked_counts.baseline,
        settings.min_tracked_baseline,
        settings.performance_baseline_days
    );
    let (source, errors) = if !needs_replay(tracked, settings, today) {
        (ErrorSource::Tracked, tracked)
    } else if let Some(replay) = replay {
        (ErrorSource::Replay, replay)
    } else {
        report.summary = insufficient_tracked;
        return report;
    };
    report.source = Some(source);
    report.points = window_counts(errors, settings, today);
    let recent_pair = rmse_in_window(errors, today, settings.performance_recent_days);
    let baseline_pair = rmse_in_window(errors, today, settings.performance_baseline_days);
    report.recent_rmse = recent_pair.map(|p| p.0);
    report.baseline_rmse = baseline_pair.map(|p| p.0);
    report.recent_rw_rmse = recent_pair.map(|p| p.1);
    report.baseline_rw_rmse = baseline_pair.map(|p| p.1);
    let prefix = match source {
        ErrorSource::Tracked => String::new(),
        ErrorSource::Replay => format!("{insufficient_tracked}; replayed: "),
    };
    let (Some(recent), Some(baseline)) = (report.recent_rmse, report.baseline_rmse) else {
        report.summary = format!(
            "{prefix}no {} errors in the last {} days",
            source.as_str(),
            settings.performance_recent_days
        );
        return report;
    };
    if baseline <= 0.0 {
        report.summary = format!("{prefix}baseline RMSE is 0: degradation undefined");
        return report;
    }
    let pct = crate::metrics::change_pct(recent, baseline);
    report.status = PerformanceStatus::Evaluated;
    report.degradation_pct = Some(pct);
    let (rw_recent, rw_baseline) = (
        report.recent_rw_rmse.unwrap_or(f64::NAN),
        report.baseline_rw_rmse.unwrap_or(f64::NAN),
    );
    // A random walk without error in a window (a flat series) leaves the ratio undefined.
    if rw_recent > 0.0 && rw_baseline > 0.0 {
        let (r, b) = (recent / rw_recent, baseline / rw_baseline);
        report.recent_ratio = Some(r);
        report.baseline_ratio = Some(b);
        report.relative_degradation_pct = Some(crate::metrics::change_pct(r, b));
    }
    let recent_errors: Vec<ErrorPoint> = errors
        .iter()
        .filter(|e| in_window(e.target_date, today, settings.performance_recent_days))
        .copied()
        .collect();
    judge(&mut report, &recent_errors, steps, &prefix);
    report
}

/// Fires the trigger when the mode's degradation reaches the threshold and its test is
/// significant; writes the summary.
fn judge(report: &mut PerformanceReport, recent: &[ErrorPoint], steps: usize, prefix: &str) {
    let threshold = report.threshold_pct;
    let (Some(pct), Some(baseline)) = (report.degradation_pct, report.baseline_rmse) else {
        return;
    };
    let relative = report.relative_degradation_pct;
    let absolute_test = || degradation_test(recent, baseline, false, steps);
    let relative_test = || {
        report
            .baseline_ratio
            .and_then(|b| degradation_test(recent, b, true, steps))
    };
    let (reached, test) = match report.mode {
        PerformanceMode::Absolute => (pct >= threshold, absolute_test()),
        PerformanceMode::Relative => (relative.is_some_and(|r| r >= threshold), relative_test()),
        PerformanceMode::Both => {
            let tests = [absolute_test(), relative_test()];
            let worst = match tests {
                [Some(a), Some(r)] => Some(if a.pvalue >= r.pvalue { a } else { r }),
                _ => None,
            };
            (
                pct >= threshold && relative.is_some_and(|r| r >= threshold),
                worst,
            )
        }
    };
    report.test = test;
    report.pvalue = test.map(|t| t.pvalue);
    let significant = report.pvalue.is_some_and(|p| p < report.alpha);
    report.fired = reached && significant;
    let relative_text = match (relative, report.recent_ratio, report.baseline_ratio) {
        (Some(rel), Some(r), Some(b)) => format!("relative to the random walk {r:.3} vs {b:.3}: {rel:+.1}%"),
        _ => "relative to the random walk: undefined (the random walk has no error)".to_string(),
    };
    let test_text = test.map_or_else(
        || "test: too few points".to_string(),
        |t| {
            format!(
                "one-sided test p = {:.3} (HAC, {} lags, n {})",
                t.pvalue, t.lags, t.n
            )
        },
    );
    report.summary = format!(
        "{prefix}RMSE {:.3} over the last {} days vs {baseline:.3} over {} days: {pct:+.1}%; {relative_text}; {test_text}; fires on {} >= {threshold}% at p < {}: {} ({} points, {} recent / {} baseline)",
        report.recent_rmse.unwrap_or(f64::NAN),
        report.recent_days,
        report.baseline_days,
        report.mode.as_str(),
        report.alpha,
        if report.fired { "yes" } else { "no" },
        report.source.map_or("-", ErrorSource::as_str),
        report.points.recent,
        report.points.baseline,
    );
}

// Exact values (0, 1, sums of exact terms) are the point of several checks here.
#[allow(clippy::float_cmp)]
#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Daily 7d predictions for the 60 target dates ending at `today`: errors of +-`older`
    /// before the recent window and +-`recent` inside it (alternating signs, so the bias is 0).
    fn predictions(today: NaiveDate, older: f64, recent: f64) -> Vec<Prediction> {
        (0..60)
            .map(|k| {
                let target = today - chrono::Duration::days(k);
                let size = if k < 14 { recent } else { older };
                let err = if k % 2 == 0 { size } else { -size };
                Prediction {
                    horizon: "7d".into(),
                    forecast_date: target - chrono::Duration::days(9),
                    target_date: target,
                    prediction: 900.0 + err,
                    actual: Some(900.0),
                    confidence_low: 880.0,
                    confidence_high: 920.0,
                    model_version: "v1".into(),
                }
            })
            .collect()
    }

    /// Daily values over the 80 days ending at `today`, made so that the random walk's error
    /// (value at the forecast date, `target - 9`, minus the actual 900) on the target `k` days
    /// back is +-`older` before the recent window and +-`recent` inside it.
    fn rw_series(today: NaiveDate, older: f64, recent: f64) -> Series {
        let n: i64 = 80;
        let dates: Vec<NaiveDate> = (0..n)
            .map(|i| today - chrono::Duration::days(n - 1 - i))
            .collect();
        let values = (0..n)
            .map(|i| {
                let back = n - 1 - i;
                if back < 9 {
                    return 900.0;
                }
                let k = back - 9;
                let size = if k < 14 { recent } else { older };
                900.0 + if k % 2 == 0 { size } else { -size }
            })
            .collect();
        Series { dates, values }
    }

    /// A random walk that errs by 10 everywhere: the relative degradation equals the absolute.
    fn steady(today: NaiveDate) -> Series {
        rw_series(today, 10.0, 10.0)
    }

    /// The degradation computed by hand for the construction above.
    fn expected_pct(older: f64, recent: f64) -> f64 {
        let baseline = ((14.0 * recent * recent + 46.0 * older * older) / 60.0).sqrt();
        (recent / baseline - 1.0) * 100.0
    }

    /// Ten daily errors ending `today`; the last four are the recent window.
    fn hand_case(recent: [f64; 4], recent_rw: [f64; 4]) -> Vec<ErrorPoint> {
        let today = date("2026-03-01");
        let older = [3.0, -4.0, 2.0, -3.0, 4.0, -2.0];
        let older_rw = [4.0, -3.0, 3.0, -4.0, 3.0, -3.0];
        let e: Vec<f64> = older.iter().chain(&recent).copied().collect();
        let rw: Vec<f64> = older_rw.iter().chain(&recent_rw).copied().collect();
        (0..10)
            .map(|i| ErrorPoint {
                target_date: today - chrono::Duration::days(9 - i as i64),
                error: e[i],
                random_walk_error: rw[i],
            })
            .collect()
    }

    /// The significance test against figures computed independently (python3, plain floats:
    /// RMSEs, ratios, `d = e^2 - b^2 rw^2` over the recent 4 days, Diebold-Mariano with 1
    /// autocovariance lag and the HLN factor, Student t with 3 degrees of freedom by its closed
    /// form). Tolerance 1e-9 absolute.
    #[test]
    fn the_degradation_test_matches_a_hand_computation() {
        let today = date("2026-03-01");
        let settings = TriggerSettings {
            performance_recent_days: 4,
            performance_baseline_days: 10,
            min_tracked_recent: 4,
            min_tracked_baseline: 10,
            ..TriggerSettings::default()
        };
        let close = |ours: f64, hand: f64| assert!((ours - hand).abs() < 1e-9, "{ours} vs {hand}");
        // Significant: ratio 1.4099 vs 1.2138 (+16.15 %), d mean 10.5467, HAC variance 9.9972,
        // statistic 4.08528, p 0.01325.
        let errors = hand_case([5.0, -7.0, 5.0, -8.0], [4.0, -5.0, 5.0, -4.0]);
        let r = evaluate_performance(&errors, None, &settings, today, 2);
        close(r.recent_ratio.unwrap(), 1.409_895_342_941_730_5);
        close(r.baseline_ratio.unwrap(), 1.213_809_430_402_208_2);
        close(r.relative_degradation_pct.unwrap(), 16.154_587_996_119_552);
        close(r.degradation_pct.unwrap(), 35.789_962_910_184_634);
        let t = r.test.unwrap();
        assert_eq!((t.n, t.lags), (4, 1));
        close(t.mean_difference, 10.546_666_666_666_67);
        close(t.statistic, 4.085_278_414_819_506_5);
        close(t.pvalue, 0.013_250_061_448_013_328);
        assert_eq!(r.pvalue, Some(t.pvalue));
        assert!(r.fired, "{}", r.summary);
        assert!(r.summary.contains("p = 0.013"), "{}", r.summary);
        // Past the threshold (+17.6 %) but not significant: the HAC variance is not positive,
        // lag 0 alone gives 107.2966, statistic 1.19369, p 0.15919.
        let errors = hand_case([6.0, -6.0, 7.0, -5.0], [4.0, -5.0, 4.0, -4.0]);
        let r = evaluate_performance(&errors, None, &settings, today, 2);
        close(r.relative_degradation_pct.unwrap(), 17.573_506_419_451_1);
        let t = r.test.unwrap();
        close(t.statistic, 1.193_688_342_739_883_4);
        close(t.pvalue, 0.159_193_782_801_480_9);
        assert!(!r.fired, "{}", r.summary);
        assert_eq!(r.severity(), Severity::None);
    }

    #[test]
    fn known_degradation_fires_above_threshold_only() {
        let today = date("2026-03-01");
        let settings = TriggerSettings::default();
        let errors = tracked_errors(&predictions(today, 10.0, 13.0), Horizon(7), &steady(today));
        let r = evaluate_performance(&errors, None, &settings, today, 7);
        assert_eq!(r.status, PerformanceStatus::Evaluated);
        assert_eq!(r.source, Some(ErrorSource::Tracked));
        assert_eq!(
            r.points,
            WindowCounts {
                recent: 14,
                baseline: 60
            }
        );
        let pct = r.degradation_pct.unwrap();
        assert!((pct - expected_pct(10.0, 13.0)).abs() < 1e-9, "{pct}");
        assert!(pct > 20.0 && r.fired, "{}", r.summary);
        // The random walk errs by 10 in both windows: the relative figure is the same.
        assert_eq!((r.recent_rw_rmse, r.baseline_rw_rmse), (Some(10.0), Some(10.0)));
        assert!((r.relative_degradation_pct.unwrap() - pct).abs() < 1e-9);
        assert_eq!(r.mode, PerformanceMode::Relative);

        // 12 vs 10 is +14.3%: just below the 15% threshold.
        let errors = tracked_errors(&predictions(today, 10.0, 12.0), Horizon(7), &steady(today));
        let r = evaluate_performance(&errors, None, &settings, today, 7);
        let pct = r.degradation_pct.unwrap();
        assert!((pct - expected_pct(10.0, 12.0)).abs() < 1e-9, "{pct}");
        assert!(pct < 15.0 && !r.fired, "{}", r.summary);
    }

    #[test]
    fn a_volatility_rise_fires_the_absolute_figure_but_not_the_relative_one() {
        let today = date("2026-03-01");
        // Model and random walk both err 30 % more in the recent window: the market moved,
        // the model did not decay.
        let preds = predictions(today, 10.0, 13.0);
        let errors = tracked_errors(&preds, Horizon(7), &rw_series(today, 10.0, 13.0));
        assert!(errors
            .iter()
            .all(|e| (e.error - e.random_walk_error).abs() < 1e-12));
        let with = |errors: &[ErrorPoint], mode| {
            let s = TriggerSettings {
                performance_mode: mode,
                ..TriggerSettings::default()
            };
            evaluate_performance(errors, None, &s, today, 7)
        };
        let r = with(&errors, PerformanceMode::Relative);
        let abs = r.degradation_pct.unwrap();
        assert!((abs - expected_pct(10.0, 13.0)).abs() < 1e-9);
        assert!(r.relative_degradation_pct.unwrap().abs() < 1e-9);
        assert_eq!((r.recent_ratio, r.baseline_ratio), (Some(1.0), Some(1.0)));
        assert!(!r.fired, "{}", r.summary);
        assert!(r.summary.contains("relative to the random walk"), "{}", r.summary);
        assert!(with(&errors, PerformanceMode::Absolute).fired);
        assert!(!with(&errors, PerformanceMode::Both).fired);

        // The model decays (13 vs 10) while the random walk improves (8 vs 10): by hand,
        // ratio recent 13 / 8, baseline RMSE(model) / RMSE(rw) over all 60 days.
        let errors = tracked_errors(&preds, Horizon(7), &rw_series(today, 10.0, 8.0));
        let r = with(&errors, PerformanceMode::Both);
        let model_b = ((14.0 * 169.0 + 46.0 * 100.0) / 60.0_f64).sqrt();
        let rw_b = ((14.0 * 64.0 + 46.0 * 100.0) / 60.0_f64).sqrt();
        let want = (13.0 / 8.0) / (model_b / rw_b) - 1.0;
        assert!((r.relative_degradation_pct.unwrap() - 100.0 * want).abs() < 1e-9);
        assert!(r.fired);
        // A prediction made before the series starts has no random walk and is left out.
        let mut early = preds[0].clone();
        early.forecast_date = today - chrono::Duration::days(200);
        early.target_date = today - chrono::Duration::days(5);
        let n = tracked_errors(&preds, Horizon(7), &steady(today)).len();
        let mut more = preds.clone();
        more.push(early);
        assert_eq!(tracked_errors(&more, Horizon(7), &steady(today)).len(), n);
    }

    #[test]
    fn windows_are_calendar_days_ending_today_and_ignore_the_future() {
        let today = date("2026-03-01");
        let settings = TriggerSettings::default();
        let mut preds = predictions(today, 10.0, 13.0);
        // A prediction whose target is after `today` (an --as-of view of a later file) and one
        // 60 days back (just outside the baseline) are not counted.
        let mut future = preds[0].clone();
        future.target_date = today + chrono::Duration::days(1);
        future.prediction = 10_000.0;
        let mut old = preds[0].clone();
        old.target_date = today - chrono::Duration::days(60);
        old.prediction = 10_000.0;
        preds.extend([future, old]);
        let errors = tracked_errors(&preds, Horizon(7), &steady(today));
        assert_eq!(
            window_counts(&errors, &settings, today),
            WindowCounts {
                recent: 14,
                baseline: 60
            }
        );
        let r = evaluate_performance(&errors, None, &settings, today, 7);
        assert!((r.degradation_pct.unwrap() - expected_pct(10.0, 13.0)).abs() < 1e-9);
    }

    #[test]
    fn tracked_errors_filter_horizon_and_missing_actuals_and_dedupe() {
        let today = date("2026-03-01");
        let mut preds = predictions(today, 10.0, 13.0);
        preds[1].actual = None;
        preds[2].horizon = "15d".into();
        let mut rerun = preds[3].clone();
        rerun.prediction = preds[3].actual.unwrap() + 1.0;
        preds.push(rerun);
        let errors = tracked_errors(&preds, Horizon(7), &steady(today));
        assert_eq!(errors.len(), 58);
        assert!(errors.windows(2).all(|w| w[0].target_date <= w[1].target_date));
        let e3 = errors
            .iter()
            .find(|e| e.target_date == preds[3].target_date)
            .unwrap();
        assert_eq!(e3.error, 1.0);
    }

    #[test]
    fn too_few_tracked_points_say_so_or_use_the_replay() {
        let today = date("2026-03-01");
        let settings = TriggerSettings::default();
        let preds = predictions(today, 10.0, 13.0);
        // Only every 3rd day tracked: 5 recent, 20 baseline.
        let sparse: Vec<Prediction> = preds.iter().step_by(3).cloned().collect();
        let tracked = tracked_errors(&sparse, Horizon(7), &steady(today));
        assert!(needs_replay(&tracked, &settings, today));
        let r = evaluate_performance(&tracked, None, &settings, today, 7);
        assert_eq!(r.status, PerformanceStatus::InsufficientData);
        assert!(!r.fired && r.source.is_none());
        assert_eq!(
            r.tracked,
            WindowCounts {
                recent: 5,
                baseline: 20
            }
        );
        assert!(r.summary.contains("insufficient tracked data"), "{}", r.summary);

        let replay = tracked_errors(&preds, Horizon(7), &steady(today));
        let r = evaluate_performance(&tracked, Some(&replay), &settings, today, 7);
        assert_eq!(r.source, Some(ErrorSource::Replay));
        assert_eq!(
            r.tracked,
            WindowCounts {
                recent: 5,
                baseline: 20
            }
        );
        assert_eq!(
            r.points,
            WindowCounts {
                recent: 14,
                baseline: 60
            }
        );
        assert!(r.fired);
        assert!(
            r.summary.contains("insufficient tracked data") && r.summary.contains("replay"),
            "{}",
            r.summary
        );
    }
}

//! The health of the config in effect, judged every run for every horizon: on the latest
//! confirmation origins (the ones validation uses, through the shared forward cache) its
//! accuracy, its intervals, its bias and how it compares with the no-change forecast (the
//! random walk); on tracked production predictions too when there are any.
//!
//! Three checks decide whether a horizon needs attention: the two absolute validation
//! criteria every candidate must meet (CI95 coverage at least `min_coverage_95`, |bias| below
//! the horizon's `max_abs_bias`), and that the random walk is not significantly more accurate
//! (a one-sided Diebold-Mariano test of the random walk against the config, per-origin mean
//! squared-error differentials, at `dm_alpha`). Attention is a report, not a failure: it
//! changes no exit code and no config.

use serde::Serialize;

use crate::config::ValidationSettings;
use crate::domain::Horizon;
use crate::forecaster_config::ForecasterConfig;
use crate::metrics::{diebold_mariano, per_origin_means, ClarkWest, DieboldMariano};
use crate::policy::backtest::{self, Evaluation, Metrics, OriginSpan};
use crate::policy::decide::World;
use crate::policy::render::trim_num;
use crate::policy::search::{self, ForwardCache, Progress};
use crate::policy::validate::{clark_west_of, Comparison};
use crate::triggers::performance::{in_window, tracked_errors, ErrorPoint};

/// What a health check measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthItem {
    /// CI95 coverage on the confirmation origins (criterion 4).
    Coverage,
    /// |bias| on the confirmation origins, CLP (criterion 5).
    Bias,
    /// One-sided Diebold-Mariano p-value of "the random walk is more accurate".
    RandomWalk,
}

/// One check of the config in effect against its threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthCheck {
    pub item: HealthItem,
    pub value: f64,
    pub comparison: Comparison,
    pub threshold: f64,
    pub passed: bool,
}

impl HealthCheck {
    fn new(item: HealthItem, value: f64, comparison: Comparison, threshold: f64) -> HealthCheck {
        HealthCheck {
            item,
            value,
            comparison,
            threshold,
            passed: comparison.holds(value, threshold),
        }
    }

    /// The check's name as the tables and mails show it.
    pub fn name(&self) -> &'static str {
        match self.item {
            HealthItem::Coverage => "CI95 coverage",
            HealthItem::Bias => "|bias|",
            HealthItem::RandomWalk => "random walk DM p",
        }
    }

    /// `CI95 coverage 0.73 < 0.90`: the value, how it stands against the threshold, the
    /// threshold (the failing relation when it failed, the required one when it passed).
    pub fn text(&self) -> String {
        let (value, threshold) = match self.item {
            HealthItem::Coverage => (format!("{:.2}", self.value), format!("{:.2}", self.threshold)),
            HealthItem::Bias => (
                format!("{:.1}", self.value),
                format!("{} CLP", trim_num(self.threshold)),
            ),
            HealthItem::RandomWalk => (format!("{:.3}", self.value), trim_num(self.threshold)),
        };
        let symbol = if self.passed {
            self.comparison.symbol()
        } else {
            match self.comparison {
                Comparison::AtLeast => "<",
                Comparison::AtMost => ">",
                Comparison::Below => ">=",
            }
        };
        match (self.item, self.passed) {
            (HealthItem::RandomWalk, false) => {
                format!("loses to the random walk (DM p {value} < {threshold})")
            }
            (HealthItem::RandomWalk, true) => format!("random walk not better (DM p {value} >= {threshold})"),
            _ => format!("{} {value} {symbol} {threshold}", self.name()),
        }
    }
}

/// The tracked production predictions of the horizon in the performance baseline window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackedHealth {
    pub predictions: usize,
    pub rmse: f64,
    pub bias: f64,
    /// RMSE over the random walk's on the same targets (below 1 beats it).
    pub rw_rmse_ratio: f64,
}

/// The health of the config in effect at one horizon.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    pub horizon: Horizon,
    /// The origins scored: the latest confirmation origins.
    pub origins: OriginSpan,
    pub rmse: f64,
    pub mape: f64,
    pub coverage_95: f64,
    pub bias: f64,
    pub rw_rmse: f64,
    /// RMSE over the random walk's (below 1 beats it).
    pub rw_rmse_ratio: f64,
    /// The config against the random walk (a p-value below `dm_alpha` says it beats it).
    pub clark_west: ClarkWest,
    /// The random walk against the config (a lower p-value below `dm_alpha` says the random
    /// walk is more accurate).
    pub random_walk_dm: DieboldMariano,
    pub tracked: Option<TrackedHealth>,
    pub checks: Vec<HealthCheck>,
}

impl Health {
    /// The failing checks; empty when the config is healthy.
    pub fn failing(&self) -> Vec<&HealthCheck> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    pub fn needs_attention(&self) -> bool {
        self.checks.iter().any(|c| !c.passed)
    }

    /// The attention reason in one line (`CI95 coverage 0.73 < 0.90, |bias| 22.9 >= 5 CLP`),
    /// None when healthy.
    pub fn attention(&self) -> Option<String> {
        let failing = self.failing();
        (!failing.is_empty()).then(|| failing.iter().map(|c| c.text()).collect::<Vec<_>>().join(", "))
    }

    /// `ok` or `attention`, for table cells.
    pub fn label(&self) -> &'static str {
        if self.needs_attention() {
            "attention"
        } else {
            "ok"
        }
    }

    /// The figures in one line: RMSE, MAPE, the random-walk ratio with Clark-West.
    pub fn figures(&self) -> String {
        let mut s = format!(
            "RMSE {:.2} (random walk {:.2}, ratio {:.2}, Clark-West p {:.3}), MAPE {:.2} %, CI95 coverage {:.2}, bias {:+.1} CLP on {} origins",
            self.rmse,
            self.rw_rmse,
            self.rw_rmse_ratio,
            self.clark_west.p_value,
            self.mape,
            self.coverage_95,
            self.bias,
            self.origins.origins
        );
        if let Some(t) = &self.tracked {
            s.push_str(&format!(
                "; tracked: {} predictions, RMSE {:.2} (ratio to random walk {:.2}), bias {:+.1} CLP",
                t.predictions, t.rmse, t.rw_rmse_ratio, t.bias
            ));
        }
        s
    }
}

/// The health of `cfg` on the latest confirmation origins of `world`, from the forward cache
/// (one batched forward of the config's context length when the search did not run). None
/// without a model.
pub fn assess(
    world: &World<'_>,
    cfg: &ForecasterConfig,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Option<Health>> {
    let Some(model) = world.model else {
        return Ok(None);
    };
    let h = cfg.horizon;
    let split = backtest::split_origins(world.series, h.steps(), &world.settings.search)?;
    let eval = search::evaluate_params(
        model,
        world.series,
        h,
        &cfg.params(),
        &split.confirmation,
        cache,
        progress,
    )?;
    let today = world.now.date_naive();
    let baseline = world.settings.triggers.performance_baseline_days;
    let tracked: Vec<ErrorPoint> = tracked_errors(world.predictions, h, world.series)
        .into_iter()
        .filter(|e| in_window(e.target_date, today, baseline))
        .collect();
    let input = Assessed {
        horizon: h,
        evaluation: &eval,
        origins: split.confirmation_span(world.series, h.steps()),
        test_horizon: backtest::test_horizon(h.steps(), split.spacing),
        tracked: &tracked,
    };
    input.health(&world.settings.validation).map(Some)
}

/// What [`Assessed::health`] judges: a backtest of the config in effect and its tracked errors.
pub struct Assessed<'a> {
    pub horizon: Horizon,
    pub evaluation: &'a Evaluation,
    pub origins: OriginSpan,
    /// The significance tests' horizon in origins.
    pub test_horizon: usize,
    pub tracked: &'a [ErrorPoint],
}

impl Assessed<'_> {
    /// The figures and the three checks.
    pub fn health(&self, s: &ValidationSettings) -> anyhow::Result<Health> {
        let pts = &self.evaluation.points;
        let cw = clark_west_of(self.evaluation, self.test_horizon)?;
        // Random walk minus config: a negative mean says the random walk's errors are smaller.
        let d = per_origin_means(
            &pts.iter()
                .map(|p| (p.random_walk - p.actual).powi(2) - (p.forecast - p.actual).powi(2))
                .collect::<Vec<f64>>(),
            &pts.iter().map(|p| p.origin).collect::<Vec<usize>>(),
        );
        let dm = diebold_mariano(&d, self.test_horizon)?;
        let m: &Metrics = &self.evaluation.metrics;
        let checks = vec![
            HealthCheck::new(
                HealthItem::Coverage,
                m.coverage_95,
                Comparison::AtLeast,
                s.min_coverage_95,
            ),
            HealthCheck::new(
                HealthItem::Bias,
                m.bias.abs(),
                Comparison::Below,
                s.max_abs_bias_for(self.horizon),
            ),
            HealthCheck::new(
                HealthItem::RandomWalk,
                dm.p_value_lower,
                Comparison::AtLeast,
                s.dm_alpha,
            ),
        ];
        Ok(Health {
            horizon: self.horizon,
            origins: self.origins.clone(),
            rmse: m.rmse,
            mape: m.mape,
            coverage_95: m.coverage_95,
            bias: m.bias,
            rw_rmse: m.rw_rmse,
            rw_rmse_ratio: m.rmse / m.rw_rmse,
            clark_west: cw,
            random_walk_dm: dm,
            tracked: tracked_health(self.tracked),
            checks,
        })
    }
}

fn tracked_health(errors: &[ErrorPoint]) -> Option<TrackedHealth> {
    if errors.is_empty() {
        return None;
    }
    let e: Vec<f64> = errors.iter().map(|p| p.error).collect();
    let rw: Vec<f64> = errors.iter().map(|p| p.random_walk_error).collect();
    let rmse = crate::metrics::rmse(&e);
    Some(TrackedHealth {
        predictions: e.len(),
        rmse,
        bias: crate::metrics::bias(&e),
        rw_rmse_ratio: rmse / crate::metrics::rmse(&rw),
    })
}

/// A change of a horizon's attention state between two judged runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionChange {
    Entered,
    Left,
}

/// A horizon's attention state after its judged runs so far. The state flips only when two
/// consecutive judgments agree against it (a config at a threshold's edge does not flap),
/// except at the first judgment, which sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttentionState {
    /// Whether the horizon is in attention.
    pub state: bool,
    /// Whether the last judgment needed attention.
    pub last: bool,
}

impl AttentionState {
    /// The state after a judgment that does (`now`) or does not need attention.
    pub fn next(prev: Option<AttentionState>, now: bool) -> AttentionState {
        let state = match prev {
            None => now,
            Some(p) if now != p.state && p.last == now => now,
            Some(p) => p.state,
        };
        AttentionState { state, last: now }
    }

    /// The state after the judgments `judged` (oldest first; true: needed attention).
    pub fn of(judged: impl IntoIterator<Item = bool>) -> Option<AttentionState> {
        judged
            .into_iter()
            .fold(None, |s, now| Some(AttentionState::next(s, now)))
    }
}

/// Whether a run judged `now` enters or leaves attention from the state `before` (None:
/// never judged).
pub fn attention_change(before: Option<AttentionState>, now: Option<&Health>) -> Option<AttentionChange> {
    let after = AttentionState::next(before, now?.needs_attention());
    match (before.is_some_and(|b| b.state), after.state) {
        (false, true) => Some(AttentionChange::Entered),
        (true, false) => Some(AttentionChange::Left),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::backtest::ErrorPoint as Point;
    use chrono::NaiveDate;

    fn day(i: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(i)
    }

    /// `n` origins of two steps each; the config's error is `err(i)`, the random walk's
    /// `rw(i)`, the CI95 half-width `half`.
    fn evaluation(n: usize, err: impl Fn(usize) -> f64, rw: impl Fn(usize) -> f64, half: f64) -> Evaluation {
        let mut points = Vec::new();
        for o in 0..n {
            for step in 0..2 {
                let actual = 900.0 + o as f64;
                let forecast = actual + err(o);
                points.push(Point {
                    origin: o * 5,
                    target: o * 5 + step + 1,
                    step,
                    origin_date: day(o as i64 * 5),
                    target_date: day(o as i64 * 5 + step as i64 + 1),
                    forecast,
                    actual,
                    error: forecast - actual,
                    ci95: [forecast - half, forecast + half],
                    random_walk: actual + rw(o),
                });
            }
        }
        let errors: Vec<f64> = points.iter().map(|p| p.error).collect();
        let rw_errors: Vec<f64> = points.iter().map(|p| p.random_walk - p.actual).collect();
        let actuals: Vec<f64> = points.iter().map(|p| p.actual).collect();
        let ci: Vec<[f64; 2]> = points.iter().map(|p| p.ci95).collect();
        let metrics = Metrics {
            rmse: crate::metrics::rmse(&errors),
            mae: crate::metrics::mae(&errors),
            mape: 0.1,
            bias: crate::metrics::bias(&errors),
            error_std: crate::metrics::error_std(&errors),
            coverage_80: 0.8,
            coverage_95: crate::metrics::coverage(&actuals, &ci),
            mean_ci95_width: 2.0 * half,
            wql: 0.01,
            interval_score_95: 1.0,
            inference_ms: f64::NAN,
            rw_rmse: crate::metrics::rmse(&rw_errors),
            rw_mape: 0.1,
            origins: n,
            errors: points.len(),
        };
        Evaluation {
            params: crate::domain::InferenceParams {
                context_length: 90,
                num_samples: 100,
                temperature: 1.0,
            },
            metrics,
            points,
        }
    }

    fn health(e: &Evaluation, tracked: &[ErrorPoint]) -> Health {
        let n = e.metrics.origins;
        Assessed {
            horizon: Horizon(7),
            evaluation: e,
            origins: OriginSpan {
                origins: n,
                first_origin: day(0),
                last_origin: day(5 * (n as i64 - 1)),
                last_target: day(5 * (n as i64 - 1) + 2),
            },
            test_horizon: 2,
            tracked,
        }
        .health(&ValidationSettings::default())
        .unwrap()
    }

    #[test]
    fn a_config_that_beats_the_random_walk_with_good_intervals_is_healthy() {
        let wiggle = |o: usize| if o.is_multiple_of(2) { 1.0 } else { -1.0 };
        let e = evaluation(20, wiggle, |o| 4.0 * wiggle(o + 1), 10.0);
        let h = health(&e, &[]);
        assert!(!h.needs_attention(), "{:?}", h.attention());
        assert_eq!(h.label(), "ok");
        assert!((h.rw_rmse_ratio - 0.25).abs() < 1e-12);
        assert_eq!(h.checks.len(), 3);
        assert!(h.clark_west.p_value < 0.05, "{:?}", h.clark_west);
        // The random walk against the config: its errors are larger, so not significant.
        assert!(h.random_walk_dm.mean_differential > 0.0);
        assert!(h.random_walk_dm.p_value_lower > 0.5);
        assert!(h.tracked.is_none());
        let (ok, bad) = (false, true);
        let state = |judged: &[bool]| AttentionState::of(judged.iter().copied());
        assert_eq!(attention_change(state(&[ok]), Some(&h)), None);
        assert_eq!(attention_change(None, Some(&h)), None);
        // In attention, one healthy judgment is not enough to leave it; two in a row are.
        assert_eq!(attention_change(state(&[bad, bad]), Some(&h)), None);
        assert_eq!(
            attention_change(state(&[bad, ok]), Some(&h)),
            Some(AttentionChange::Left)
        );
    }

    #[test]
    fn narrow_biased_intervals_and_a_better_random_walk_each_need_attention() {
        // Errors of +20 CLP with +-1 CLP intervals; the random walk's are +-2.
        let e = evaluation(
            20,
            |_| 20.0,
            |o| if o.is_multiple_of(2) { 2.0 } else { -2.0 },
            1.0,
        );
        let tracked = [ErrorPoint {
            target_date: day(3),
            error: 3.0,
            random_walk_error: -1.5,
        }];
        let h = health(&e, &tracked);
        let failing: Vec<HealthItem> = h.failing().iter().map(|c| c.item).collect();
        assert_eq!(
            failing,
            [HealthItem::Coverage, HealthItem::Bias, HealthItem::RandomWalk]
        );
        assert_eq!(
            h.attention().unwrap(),
            "CI95 coverage 0.00 < 0.90, |bias| 20.0 >= 5 CLP, loses to the random walk (DM p 0.000 < 0.05)"
        );
        assert_eq!(h.label(), "attention");
        let t = h.tracked.as_ref().unwrap();
        assert_eq!(
            (t.predictions, t.rmse, t.bias, t.rw_rmse_ratio),
            (1, 3.0, 3.0, 2.0)
        );
        assert!(
            h.figures().contains("tracked: 1 predictions, RMSE 3.00"),
            "{}",
            h.figures()
        );
        let (ok, bad) = (false, true);
        let state = |judged: &[bool]| AttentionState::of(judged.iter().copied());
        assert_eq!(attention_change(None, Some(&h)), Some(AttentionChange::Entered));
        assert_eq!(
            attention_change(state(&[ok, ok]), Some(&h)),
            None,
            "one failing week is not news"
        );
        assert_eq!(
            attention_change(state(&[ok, bad]), Some(&h)),
            Some(AttentionChange::Entered)
        );
        assert_eq!(attention_change(state(&[bad]), Some(&h)), None);
        assert_eq!(attention_change(state(&[bad]), None), None);
        // A flapping judgment keeps the state it had.
        assert_eq!(state(&[ok, bad, ok, bad, ok]).map(|s| s.state), Some(false));
        assert_eq!(state(&[bad, ok, bad, ok]).map(|s| s.state), Some(true));
    }

    #[test]
    fn the_edges_follow_the_validation_criteria() {
        let s = ValidationSettings::default();
        let at = |item, value, cmp, threshold| HealthCheck::new(item, value, cmp, threshold).passed;
        assert!(at(
            HealthItem::Coverage,
            s.min_coverage_95,
            Comparison::AtLeast,
            s.min_coverage_95
        ));
        assert!(!at(HealthItem::Bias, 5.0, Comparison::Below, 5.0));
        assert!(at(HealthItem::RandomWalk, 0.05, Comparison::AtLeast, 0.05));
        assert!(!at(HealthItem::RandomWalk, 0.0499, Comparison::AtLeast, 0.05));
    }
}

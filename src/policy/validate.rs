//! The validation of a candidate config against the current one, on the confirmation
//! origins only (pure; no I/O).
//!
//! The candidate was chosen on the selection origins; the confirmation origins are later and
//! disjoint (see [`crate::policy::backtest::split_origins`]), so the figures here are not flattered by
//! the choice, and they are the ones a deployed config promises (probation holds it to
//! them).
//!
//! Criteria (thresholds from `ValidationSettings`; relative changes are in percent of the
//! current config's value):
//! 1. RMSE improves by at least `min_rmse_improvement_pct` OR MAPE improves by at least
//!    `min_mape_improvement_pct`: `100 (current - candidate) / current >= threshold`;
//! 2. error std grows by at most `max_std_increase_pct`:
//!    `100 (candidate - current) / current <= threshold`;
//! 3. inference cost grows by at most `max_inference_time_increase_pct` (same form), the cost
//!    being the deterministic model of [`crate::policy::cost::forecast_cost_mflop`] (identical
//!    parameters cost exactly the same; a wall-clock timing on a shared machine does not);
//! 4. CI95 coverage `>= min_coverage_95`;
//! 5. `|bias| < max_abs_bias_for(h)` (CLP);
//! 6. when `require_dm_significance` (the default): the one-sided Diebold-Mariano p-value of
//!    "the candidate's squared errors are lower" is `< dm_alpha`;
//! 7. the CI95 interval (Winkler) score grows by at most `max_interval_score_increase_pct`
//!    (0 by default): the score temperature is chosen by must not get worse on the
//!    confirmation origins, so a deploy won on point accuracy cannot widen or narrow the
//!    intervals for the worse.
//!
//! Edges are inclusive where the criteria say so: ">= 5%", "<= 10%", "<= 50%", ">= 90%" are inclusive (a
//! value exactly on the threshold passes) and "< 5 CLP" is exclusive (a bias of exactly 5
//! fails). Inclusive comparisons allow [`EDGE_TOLERANCE`] so that a value on the edge is not
//! failed by float rounding of the ratio (`100 * (2 - 1.94) / 2` is 2.9999999999999982);
//! exclusive ones are strict. The candidate is approved iff every criterion passes.
//!
//! The Diebold-Mariano test compares squared errors: per origin, `d = mean over steps of
//! (e_candidate^2 - e_current^2)` (negative: the candidate is better). Origins `k` rows apart
//! forecast overlapping targets up to `ceil(h / k) - 1` origins away, so the test's horizon
//! is `ceil(h / k)` origins (its variance uses that many minus one lags).
//!
//! Beside the criteria, the report shows the candidate against the random walk on the same
//! origins: the RMSE ratio and the Clark-West test, which is the right test against a nested
//! benchmark (see [`crate::metrics::clark_west`]).

use anyhow::ensure;
use serde::Serialize;

use crate::config::ValidationSettings;
use crate::domain::Horizon;
use crate::metrics::{clark_west, diebold_mariano, ClarkWest, DieboldMariano};
use crate::policy::backtest::{ErrorPoint, Evaluation, Metrics, OriginSpan};
use crate::policy::cost::InferenceCost;

/// Slack of inclusive threshold comparisons, in the unit of the compared value (percent or
/// fraction).
pub const EDGE_TOLERANCE: f64 = 1e-9;

/// How a measured value is compared with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Comparison {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "<")]
    Below,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::AtLeast => value >= threshold - EDGE_TOLERANCE,
            Comparison::AtMost => value <= threshold + EDGE_TOLERANCE,
            Comparison::Below => value < threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => ">=",
            Comparison::AtMost => "<=",
            Comparison::Below => "<",
        }
    }
}

/// One measured quantity of a criterion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measure {
    pub name: String,
    pub candidate: f64,
    /// None for absolute criteria (coverage, bias, DM).
    pub current: Option<f64>,
    /// The compared quantity: a relative change in percent, or the candidate's own value.
    pub value: f64,
    pub unit: &'static str,
    pub comparison: Comparison,
    pub threshold: f64,
    pub passed: bool,
}

/// One criterion; it passes when any of its measures does (criterion 1 has two, RMSE or
/// MAPE; the others one).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Criterion {
    pub id: u8,
    pub name: &'static str,
    pub measures: Vec<Measure>,
    pub passed: bool,
}

/// The random walk on the confirmation origins, for scale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RandomWalk {
    pub rmse: f64,
    pub mape: f64,
    /// RMSE of each config relative to the random walk's (below 1 beats it).
    pub candidate_rmse_ratio: f64,
    pub current_rmse_ratio: f64,
    /// The candidate against the random walk.
    pub clark_west: ClarkWest,
}

/// Which origins were used for what.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OriginsUsed {
    /// Rows between consecutive origins.
    pub spacing: usize,
    /// Where the search chose the candidate.
    pub selection: OriginSpan,
    /// False when the candidate was given rather than searched.
    pub selection_used: bool,
    /// Where every criterion, the tests and the deployed config's metrics come from.
    pub confirmation: OriginSpan,
    /// The significance tests' horizon in origins: `ceil(h / spacing)`.
    pub test_horizon: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidationReport {
    pub horizon: Horizon,
    pub origins: OriginsUsed,
    /// Metrics on the confirmation origins (`inference_ms` is not measured here: NaN, null
    /// in JSON; criterion 3 uses `cost`).
    pub candidate: Evaluation,
    pub current: Evaluation,
    /// Criterion 3's deterministic inference cost.
    pub cost: InferenceCost,
    pub criteria: Vec<Criterion>,
    pub diebold_mariano: DieboldMariano,
    pub random_walk: RandomWalk,
    pub approved: bool,
}

/// Criteria 4 and 5, which the search also uses to pick its best config.
pub fn meets_absolute_criteria(m: &Metrics, h: Horizon, s: &ValidationSettings) -> bool {
    Comparison::AtLeast.holds(m.coverage_95, s.min_coverage_95)
        && Comparison::Below.holds(m.bias.abs(), s.max_abs_bias_for(h))
}

fn relative(
    name: &str,
    candidate: f64,
    current: f64,
    improvement: bool,
    comparison: Comparison,
    threshold: f64,
) -> Measure {
    let change = crate::metrics::change_pct(candidate, current);
    let value = if improvement { -change } else { change };
    Measure {
        name: name.to_string(),
        candidate,
        current: Some(current),
        value,
        unit: "%",
        comparison,
        threshold,
        passed: comparison.holds(value, threshold),
    }
}

fn absolute(
    name: &str,
    candidate: f64,
    value: f64,
    unit: &'static str,
    comparison: Comparison,
    threshold: f64,
) -> Measure {
    Measure {
        name: name.to_string(),
        candidate,
        current: None,
        value,
        unit,
        comparison,
        threshold,
        passed: comparison.holds(value, threshold),
    }
}

/// Criterion 8: the candidate's parameters lost a live check (a probation rollback or a
/// failed trial) `lost` times since the first confirmation origin; it passes at 0. Live data
/// contradicted the evidence of those origins once, so they cannot approve the same
/// parameters again: another try must win on a confirmation span that begins after the loss.
pub fn probation_criterion(lost: usize) -> Criterion {
    let n = lost as f64;
    criterion(
        8,
        "not refuted live on these origins",
        vec![absolute(
            "probation rollbacks and failed trials of these parameters since the first confirmation origin",
            n,
            n,
            "",
            Comparison::AtMost,
            0.0,
        )],
    )
}

impl ValidationReport {
    /// Adds a criterion judged outside [`validate`]; approval needs it too.
    pub fn push_criterion(&mut self, c: Criterion) {
        self.approved &= c.passed;
        self.criteria.push(c);
    }
}

fn criterion(id: u8, name: &'static str, measures: Vec<Measure>) -> Criterion {
    let passed = measures.iter().any(|m| m.passed);
    Criterion {
        id,
        name,
        measures,
        passed,
    }
}

/// The per-origin squared-error loss differential, candidate minus current. Both
/// evaluations must cover the same (origin, step) pairs in the same order.
pub fn loss_differential(candidate: &Evaluation, current: &Evaluation) -> anyhow::Result<Vec<f64>> {
    per_origin_differential(candidate, current, |p| p.error * p.error)
}

/// Per origin, the mean over its steps of `loss(a) - loss(b)`. Both evaluations must cover
/// the same (origin, step) pairs in the same order.
pub fn per_origin_differential(
    candidate: &Evaluation,
    current: &Evaluation,
    loss: impl Fn(&ErrorPoint) -> f64,
) -> anyhow::Result<Vec<f64>> {
    ensure!(
        candidate.points.len() == current.points.len()
            && candidate
                .points
                .iter()
                .zip(&current.points)
                .all(|(a, b)| a.origin == b.origin && a.step == b.step),
        "the candidate and the current config were backtested on different origins"
    );
    ensure!(!candidate.points.is_empty(), "no backtest errors to compare");
    let mut out: Vec<f64> = Vec::new();
    let mut count = 0usize;
    let mut origin = candidate.points[0].origin;
    let mut sum = 0.0;
    for (a, b) in candidate.points.iter().zip(&current.points) {
        if a.origin != origin {
            out.push(sum / count as f64);
            (origin, sum, count) = (a.origin, 0.0, 0);
        }
        sum += loss(a) - loss(b);
        count += 1;
    }
    out.push(sum / count as f64);
    Ok(out)
}

/// Criteria 1-3: the candidate against the current config.
fn relative_criteria(
    c: &Metrics,
    k: &Metrics,
    cost: &InferenceCost,
    s: &ValidationSettings,
) -> Vec<Criterion> {
    vec![
        criterion(
            1,
            "accuracy improves",
            vec![
                relative(
                    "RMSE improvement",
                    c.rmse,
                    k.rmse,
                    true,
                    Comparison::AtLeast,
                    s.min_rmse_improvement_pct,
                ),
                relative(
                    "MAPE improvement",
                    c.mape,
                    k.mape,
                    true,
                    Comparison::AtLeast,
                    s.min_mape_improvement_pct,
                ),
            ],
        ),
        criterion(
            2,
            "error spread does not grow much",
            vec![relative(
                "error std increase",
                c.error_std,
                k.error_std,
                false,
                Comparison::AtMost,
                s.max_std_increase_pct,
            )],
        ),
        criterion(
            3,
            "inference stays fast",
            vec![relative(
                "inference cost increase (MFLOP)",
                cost.candidate_mflop,
                cost.current_mflop,
                false,
                Comparison::AtMost,
                s.max_inference_time_increase_pct,
            )],
        ),
    ]
}

/// Criteria 4 and 5: what every deployed config must meet on its own.
fn absolute_criteria(h: Horizon, c: &Metrics, s: &ValidationSettings) -> Vec<Criterion> {
    vec![
        criterion(
            4,
            "CI95 is calibrated",
            vec![absolute(
                "CI95 coverage",
                c.coverage_95,
                c.coverage_95,
                "",
                Comparison::AtLeast,
                s.min_coverage_95,
            )],
        ),
        criterion(
            5,
            "forecasts are unbiased",
            vec![absolute(
                "|bias|",
                c.bias,
                c.bias.abs(),
                "CLP",
                Comparison::Below,
                s.max_abs_bias_for(h),
            )],
        ),
    ]
}

/// The Clark-West test of a backtested config against the random walk on the same points,
/// with `test_horizon - 1` autocovariance lags (origins whose targets overlap).
pub fn clark_west_of(e: &Evaluation, test_horizon: usize) -> anyhow::Result<ClarkWest> {
    let pts = &e.points;
    clark_west(
        &pts.iter().map(|p| p.forecast).collect::<Vec<_>>(),
        &pts.iter().map(|p| p.random_walk).collect::<Vec<_>>(),
        &pts.iter().map(|p| p.actual).collect::<Vec<_>>(),
        &pts.iter().map(|p| p.origin).collect::<Vec<_>>(),
        test_horizon - 1,
    )
}

/// Validates `candidate` against `current`, both backtested on the confirmation origins of
/// `origins`, with criterion 3 from `cost` (see [`InferenceCost::of`]).
pub fn validate(
    h: Horizon,
    candidate: &Evaluation,
    current: &Evaluation,
    origins: OriginsUsed,
    cost: InferenceCost,
    s: &ValidationSettings,
) -> anyhow::Result<ValidationReport> {
    let d = loss_differential(candidate, current)?;
    ensure!(
        d.len() == origins.confirmation.origins,
        "the candidate was backtested on {} origins, the confirmation part has {}",
        d.len(),
        origins.confirmation.origins
    );
    let dm = diebold_mariano(&d, origins.test_horizon)?;
    let cw = clark_west_of(candidate, origins.test_horizon)?;
    let (c, k) = (&candidate.metrics, &current.metrics);
    let mut criteria = relative_criteria(c, k, &cost, s);
    criteria.extend(absolute_criteria(h, c, s));
    if s.require_dm_significance {
        let m = absolute(
            "Diebold-Mariano one-sided p-value",
            dm.statistic,
            dm.p_value_lower,
            "",
            Comparison::Below,
            s.dm_alpha,
        );
        criteria.push(criterion(6, "the improvement is significant", vec![m]));
    }
    criteria.push(criterion(
        7,
        "the intervals do not get worse",
        vec![relative(
            "CI95 interval score increase",
            c.interval_score_95,
            k.interval_score_95,
            false,
            Comparison::AtMost,
            s.max_interval_score_increase_pct,
        )],
    ));
    let approved = criteria.iter().all(|c| c.passed);
    Ok(ValidationReport {
        horizon: h,
        random_walk: RandomWalk {
            rmse: c.rw_rmse,
            mape: c.rw_mape,
            candidate_rmse_ratio: c.rmse / c.rw_rmse,
            current_rmse_ratio: k.rmse / k.rw_rmse,
            clark_west: cw,
        },
        origins,
        candidate: candidate.clone(),
        current: current.clone(),
        cost,
        criteria,
        diebold_mariano: dm,
        approved,
    })
}

// Exact float equality is what several of these tests assert (values that must pass through
// untouched), so the lint that flags it is off here.
#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::domain::InferenceParams;
    use crate::policy::backtest::ErrorPoint;
    use chrono::NaiveDate;

    fn metrics(
        rmse: f64,
        mape: f64,
        error_std: f64,
        inference_ms: f64,
        coverage_95: f64,
        bias: f64,
    ) -> Metrics {
        Metrics {
            rmse,
            mae: rmse * 0.8,
            mape,
            bias,
            error_std,
            coverage_80: 0.8,
            coverage_95,
            mean_ci95_width: 20.0,
            wql: 0.01,
            interval_score_95: 30.0,
            inference_ms,
            rw_rmse: 110.0,
            rw_mape: 2.2,
            origins: 4,
            errors: 8,
        }
    }

    /// Errors per (origin, step) for 4 origins x 2 steps, scaled by `scale`.
    fn evaluation(m: Metrics, scale: f64) -> Evaluation {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let base = [1.0, -2.0, 0.5, 1.5, -1.0, 2.5, 0.3, -0.7];
        let points = base
            .iter()
            .enumerate()
            .map(|(i, e)| ErrorPoint {
                origin: 10 + i / 2,
                target: 10 + i / 2 + i % 2 + 1,
                step: i % 2 + 1,
                origin_date: day,
                target_date: day,
                forecast: 900.0 + e * scale,
                actual: 900.0,
                error: e * scale,
                ci95: [880.0, 920.0],
                random_walk: 900.0 + e,
            })
            .collect();
        Evaluation {
            params: InferenceParams {
                context_length: 180,
                num_samples: 100,
                temperature: 1.0,
            },
            metrics: m,
            points,
        }
    }

    /// Current: RMSE 100, MAPE 2, std 10, 100 ms. Every candidate below changes one figure
    /// of an otherwise comfortably passing candidate.
    fn current() -> Evaluation {
        evaluation(metrics(100.0, 2.0, 10.0, 100.0, 0.95, 1.0), 1.0)
    }

    fn good() -> Metrics {
        metrics(90.0, 1.8, 9.0, 110.0, 0.95, 1.0)
    }

    /// Four origins one row apart, 2 steps each (see [`evaluation`]).
    fn used() -> OriginsUsed {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let span = OriginSpan {
            origins: 4,
            first_origin: day,
            last_origin: day,
            last_target: day,
        };
        OriginsUsed {
            spacing: 1,
            selection: span.clone(),
            selection_used: true,
            confirmation: span,
            test_horizon: 2,
        }
    }

    /// The five criteria alone (criterion 6 has its own tests).
    fn five() -> ValidationSettings {
        ValidationSettings {
            require_dm_significance: false,
            ..ValidationSettings::default()
        }
    }

    /// A cost against a current config costing 100.
    fn timing(candidate_mflop: f64) -> InferenceCost {
        InferenceCost {
            candidate_mflop,
            current_mflop: 100.0,
            change_pct: crate::metrics::change_pct(candidate_mflop, 100.0),
        }
    }

    fn run(m: Metrics) -> ValidationReport {
        let t = timing(m.inference_ms);
        validate(Horizon(2), &evaluation(m, 0.9), &current(), used(), t, &five()).unwrap()
    }

    fn passed(r: &ValidationReport, id: u8) -> bool {
        r.criteria.iter().find(|c| c.id == id).unwrap().passed
    }

    /// Runs `m`, checks that only criterion `id` may differ from passing and that approval
    /// equals its result; returns it.
    fn only(id: u8, m: Metrics) -> bool {
        let r = run(m);
        for c in &r.criteria {
            if c.id != id {
                assert!(c.passed, "criterion {} failed while testing {id}", c.id);
            }
        }
        assert_eq!(r.approved, passed(&r, id));
        r.approved
    }

    #[test]
    fn a_good_candidate_is_approved_with_both_values_reported() {
        let r = run(good());
        assert!(r.approved);
        assert_eq!(r.criteria.len(), 6);
        let m = &r.criteria[0].measures[0];
        assert_eq!((m.candidate, m.current, m.threshold), (90.0, Some(100.0), 5.0));
        assert!((m.value - 10.0).abs() < 1e-12);
        // Candidate errors are 0.9 x current: squared-loss differential < 0 at every origin.
        assert!(r.diebold_mariano.mean_differential < 0.0 && r.diebold_mariano.statistic < 0.0);
        assert!((r.random_walk.candidate_rmse_ratio - 90.0 / 110.0).abs() < 1e-12);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["criteria"][4]["measures"][0]["comparison"], "<");
        assert!(
            json["candidate"]["points"].is_null(),
            "points stay out of the JSON"
        );
    }

    #[test]
    fn criterion_1_rmse_or_mape_edges_are_inclusive() {
        let with = |rmse, mape| {
            let mut m = good();
            m.rmse = rmse;
            m.mape = mape;
            m
        };
        // MAPE unchanged; RMSE exactly 5% better passes, 4.99% fails.
        assert!(only(1, with(95.0, 2.0)));
        assert!(!only(1, with(95.01, 2.0)));
        // RMSE unchanged; MAPE exactly 3% better (2 -> 1.94) passes, 2.995% fails.
        assert!(only(1, with(100.0, 1.94)));
        assert!(!only(1, with(100.0, 1.9401)));
        // Worse on both.
        assert!(!only(1, with(101.0, 2.1)));
    }

    #[test]
    fn criterion_2_std_increase_edge_is_inclusive() {
        let with = |s| {
            let mut m = good();
            m.error_std = s;
            m
        };
        assert!(only(2, with(11.0)));
        assert!(!only(2, with(11.0001)));
    }

    #[test]
    fn criterion_3_inference_time_edge_is_inclusive() {
        let with = |t| {
            let mut m = good();
            m.inference_ms = t;
            m
        };
        assert!(only(3, with(150.0)));
        assert!(!only(3, with(150.001)));
    }

    #[test]
    fn criterion_4_coverage_edge_is_inclusive() {
        let with = |c| {
            let mut m = good();
            m.coverage_95 = c;
            m
        };
        // 27 of 30 covered is exactly 0.9.
        assert!(only(4, with(27.0 / 30.0)));
        assert!(!only(4, with(0.8999)));
    }

    #[test]
    fn criterion_5_bias_edge_is_exclusive_and_per_horizon() {
        let with = |b| {
            let mut m = good();
            m.bias = b;
            m
        };
        assert!(only(5, with(4.999)));
        assert!(only(5, with(-4.999)));
        assert!(!only(5, with(5.0)));
        assert!(!only(5, with(-5.0)));
        let mut s = five();
        s.max_abs_bias_per_horizon.insert(Horizon(2), 8.0);
        let r = validate(
            Horizon(2),
            &evaluation(with(7.0), 0.9),
            &current(),
            used(),
            timing(110.0),
            &s,
        )
        .unwrap();
        assert!(r.approved && r.criteria[4].measures[0].threshold == 8.0);
    }

    #[test]
    fn criterion_7_interval_score_may_not_grow() {
        let with = |is| {
            let mut m = good();
            m.interval_score_95 = is;
            m
        };
        // Current scores 30: equal passes, any increase fails, a decrease passes.
        assert!(only(7, with(30.0)));
        assert!(only(7, with(25.0)));
        assert!(!only(7, with(30.001)));
        let mut s = five();
        s.max_interval_score_increase_pct = 10.0;
        let r = validate(
            Horizon(2),
            &evaluation(with(33.0), 0.9),
            &current(),
            used(),
            timing(110.0),
            &s,
        )
        .unwrap();
        assert!(r.approved, "10 % more allowed: 33 vs 30 is on the edge");
    }

    #[test]
    fn dm_is_a_sixth_criterion_by_default_and_one_sided() {
        let mut s = ValidationSettings::default();
        assert!(s.require_dm_significance);
        let r = validate(
            Horizon(2),
            &evaluation(good(), 0.9),
            &current(),
            used(),
            timing(110.0),
            &s,
        )
        .unwrap();
        assert_eq!(r.criteria.len(), 7);
        assert_eq!(passed(&r, 6), r.diebold_mariano.p_value_lower < 0.05);
        assert_eq!(r.criteria[5].measures[0].value, r.diebold_mariano.p_value_lower);
        // Errors 0.9 x current at every point: the differential is -0.19 e^2 per point, by
        // hand per origin (e^2 mean over the two steps): 2.5, 1.25, 3.625, 0.29.
        let d = loss_differential(&evaluation(good(), 0.9), &current()).unwrap();
        for (got, want) in d.iter().zip([2.5, 1.25, 3.625, 0.29]) {
            assert!((got + 0.19 * want).abs() < 1e-12, "{got}");
        }
        let by_hand = diebold_mariano(&d, 2).unwrap();
        assert_eq!(r.diebold_mariano, by_hand);
        // Identical errors: one-sided p = 0.5, never significant.
        let r = validate(
            Horizon(2),
            &evaluation(good(), 1.0),
            &current(),
            used(),
            timing(110.0),
            &s,
        )
        .unwrap();
        assert_eq!(r.diebold_mariano.p_value_lower, 0.5);
        assert!(!passed(&r, 6) && !r.approved);
        // With alpha just below 1 any improvement in the right direction is significant...
        s.dm_alpha = 0.999;
        let r = validate(
            Horizon(2),
            &evaluation(good(), 0.9),
            &current(),
            used(),
            timing(110.0),
            &s,
        )
        .unwrap();
        assert!(passed(&r, 6));
        // ...but never one in the wrong direction (p > 0.5).
        s.dm_alpha = 0.5;
        let r = validate(
            Horizon(2),
            &evaluation(good(), 1.1),
            &current(),
            used(),
            timing(110.0),
            &s,
        )
        .unwrap();
        assert!(r.diebold_mariano.statistic > 0.0 && !passed(&r, 6));
        // Off: the other six criteria.
        assert_eq!(run(good()).criteria.len(), 6);
    }

    #[test]
    fn the_random_walk_comparison_uses_clark_west_on_the_candidate() {
        let r = run(good());
        let pts = &r.candidate.points;
        let want = clark_west(
            &pts.iter().map(|p| p.forecast).collect::<Vec<_>>(),
            &pts.iter().map(|p| p.random_walk).collect::<Vec<_>>(),
            &pts.iter().map(|p| p.actual).collect::<Vec<_>>(),
            &pts.iter().map(|p| p.origin).collect::<Vec<_>>(),
            1,
        )
        .unwrap();
        assert_eq!(r.random_walk.clark_west, want);
        // Candidate errors 0.9 e, random walk errors e: f = e^2 - (0.81 e^2 - 0.01 e^2) =
        // 0.2 e^2 per point; origin 10 has e = 1, -2: mean 0.2 * 2.5 = 0.5.
        assert!((want.mean_adjusted_differential - 0.2 * (2.5 + 1.25 + 3.625 + 0.29) / 4.0).abs() < 1e-12);
        assert!(want.statistic > 0.0);
        assert_eq!(r.origins.test_horizon, 2);
        assert_eq!(r.cost.candidate_mflop, 110.0);
    }

    #[test]
    fn different_origins_are_refused_and_the_differential_is_per_origin() {
        let mut other = current();
        other.points[3].origin = 99;
        assert!(validate(
            Horizon(2),
            &evaluation(good(), 0.9),
            &other,
            used(),
            timing(110.0),
            &five()
        )
        .is_err());
        // The evaluations must cover the confirmation origins.
        let mut fewer = used();
        fewer.confirmation.origins = 3;
        assert!(validate(
            Horizon(2),
            &evaluation(good(), 0.9),
            &current(),
            fewer,
            timing(110.0),
            &five()
        )
        .is_err());
        let d = loss_differential(&evaluation(good(), 2.0), &current()).unwrap();
        // Origin 10 errors (1, -2): (4 * 5 - 5) / 2 = 7.5 per step on average.
        assert_eq!(d.len(), 4);
        assert!((d[0] - 7.5).abs() < 1e-12);
        assert_eq!(crate::metrics::change_pct(0.0, 0.0), 0.0);
        assert_eq!(crate::metrics::change_pct(1.0, 0.0), f64::INFINITY);
    }
}

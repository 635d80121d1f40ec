//! From the model's 9 quantiles to the forecast the forecasters use (pure; no I/O).
//!
//! Chronos-Bolt does not sample: for every step it emits 9 quantiles at [`LEVELS`]. The two
//! inference parameters the forecasters carry act on those quantiles afterwards, so the model
//! output depends only on the context (this is what lets the grid search share one forward
//! per context length). Per step:
//!
//! 1. **Rearrangement.** A model (especially a random-weight one) may emit crossing quantiles.
//!    The 9 values are sorted (the monotone rearrangement of Chernozhukov, Fernández-Val and
//!    Galichon, which never moves a quantile curve further from the truth). This is also what
//!    the official `predict_quantiles` does implicitly: `torch.quantile` sorts its input.
//! 2. **Temperature** `T > 0` scales the spread around the median:
//!    `q'(a) = q(0.5) + T (q(a) - q(0.5))`. `T = 1` leaves the quantiles unchanged; `T = 1.2`
//!    widens every interval by exactly 20%. Because `x -> m + T (x - m)` is increasing, step 1
//!    and step 2 commute.
//! 3. **The full quantile function** `Q(p)`, `0 < p < 1`: linear interpolation between the 9
//!    points `(LEVELS[k], q'_k)`; below 0.1 and above 0.9 a normal tail fitted on each side:
//!    `Q(p) = q'(0.5) + sigma_lo z_p` for `p < 0.1` and `q'(0.5) + sigma_hi z_p` for
//!    `p > 0.9`, with `sigma_lo = (q'(0.5) - q'(0.1)) / z_0.9`,
//!    `sigma_hi = (q'(0.9) - q'(0.5)) / z_0.9` and `z_p` the standard normal quantile. We use
//!    the exact `z_0.9 = 1.2815515655446004` ([`Z_90`]), not the rounded 1.28155, so `Q` is
//!    continuous at 0.1 and 0.9 to rounding. After step 1 every piece is non-decreasing, so
//!    `Q` is; the draws below are additionally passed through a running maximum so that
//!    floating-point rounding at the joins can never produce a decreasing pair.
//! 4. **`num_samples` n**: deterministic stratified draws `x_i = Q((i - 0.5) / n)`,
//!    `i = 1..n` (no randomness: the same config always gives the same forecast).
//! 5. **Output per step**: `mean` = the mean of the draws (the point forecast), `median` =
//!    `Q(0.5)`, `ci80 = [Q(0.1), Q(0.9)]`, `ci95` = the 2.5% and 97.5% empirical quantiles of
//!    the draws with linear interpolation between order statistics (numpy's default
//!    `method="linear"`: position `p (n - 1)`). Every draw is linear in `q'`, `sigma_lo` and
//!    `sigma_hi`, so [`DrawPlan`] holds the mean as one linear form per `num_samples` and a
//!    summary reads only the draws the CI95 interpolates: its cost does not grow with `n`.
//!
//! So `ci95` is a real 95% interval (the official pipeline silently returns the 80% one when
//! asked for levels outside [0.1, 0.9]), which the grid search calibrates through `T`. With few
//! draws it is slightly narrower than `[Q(0.025), Q(0.975)]`: the outermost draws sit at
//! `0.5 / n` from the ends, which is how `num_samples` matters.

use anyhow::{bail, ensure};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The quantile levels Chronos-Bolt predicts.
pub const LEVELS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// The exact standard normal quantile at 0.9 (`scipy.stats.norm.ppf(0.9)`): the tails are
/// fitted so that they pass through `Q(0.1)` and `Q(0.9)`.
pub const Z_90: f64 = 1.281_551_565_544_600_4;

/// Index of the median in [`LEVELS`].
const MEDIAN: usize = 4;

/// Raw model output for one series: `values[q][step]`, q over [`LEVELS`] (quantile-major,
/// as the model emits it), steps 1..=prediction_length.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileForecast {
    pub values: Vec<Vec<f64>>,
}

impl QuantileForecast {
    pub fn steps(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }
}

/// Anything that turns contexts into quantile forecasts: the Chronos-Bolt engine in `model/`,
/// or a counting wrapper in tests.
pub trait QuantileModel {
    /// The model's own maximum context (2048 for Chronos-Bolt); longer contexts are cut.
    fn max_context(&self) -> usize;
    /// One batched forward (plus the official expansion loop past 64 steps). Contexts hold
    /// the observed values in time order, NaN for missing; they may differ in length.
    fn predict(&self, contexts: &[&[f64]], prediction_length: usize)
        -> anyhow::Result<Vec<QuantileForecast>>;
}

/// The standard normal quantile `z_p` (statrs' inverse CDF, Boost's `erfc_inv`).
pub fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// The empirical `p`-quantile of sorted values with linear interpolation between order
/// statistics (numpy's default): position `p (n - 1)`. NaN for an empty slice.
pub fn empirical_quantile(sorted: &[f64], p: f64) -> f64 {
    quantile_by(sorted.len(), p, |i| sorted[i])
}

/// [`empirical_quantile`] of `n` sorted values read through `at`, which is called only for
/// the two order statistics it interpolates.
fn quantile_by(n: usize, p: f64, at: impl Fn(usize) -> f64) -> f64 {
    match n {
        0 => f64::NAN,
        1 => at(0),
        n => {
            let pos = p.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = (pos.floor() as usize).min(n - 2);
            let w = pos - lo as f64;
            let (a, b) = (at(lo), at(lo + 1));
            a + w * (b - a)
        }
    }
}

/// The quantile function of one step after rearrangement and temperature (steps 1-3 of the
/// module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct StepQuantiles {
    /// `q'` at [`LEVELS`], non-decreasing.
    q: [f64; 9],
    sigma_lo: f64,
    sigma_hi: f64,
}

impl StepQuantiles {
    /// Rearranges `raw` (the model's 9 quantiles of one step) and applies temperature `t`.
    /// The caller checks that `raw` is finite and `t > 0`.
    pub fn new(raw: [f64; 9], t: f64) -> StepQuantiles {
        let mut q = raw;
        q.sort_by(f64::total_cmp);
        let m = q[MEDIAN];
        for v in &mut q {
            *v = m + t * (*v - m);
        }
        StepQuantiles {
            q,
            sigma_lo: (m - q[0]) / Z_90,
            sigma_hi: (q[8] - m) / Z_90,
        }
    }

    /// `q'` at the 9 [`LEVELS`].
    pub fn at_levels(&self) -> &[f64; 9] {
        &self.q
    }

    pub fn median(&self) -> f64 {
        self.q[MEDIAN]
    }

    /// `Q(p)` for `0 < p < 1`.
    pub fn eval(&self, p: f64) -> f64 {
        self.eval_point(&Point::of(p))
    }

    fn eval_point(&self, point: &Point) -> f64 {
        match *point {
            Point::Lower(z) => self.q[MEDIAN] + self.sigma_lo * z,
            Point::Upper(z) => self.q[MEDIAN] + self.sigma_hi * z,
            Point::Inner(k, w) => {
                if w == 0.0 {
                    self.q[k]
                } else {
                    self.q[k] + w * (self.q[k + 1] - self.q[k])
                }
            }
        }
    }
}

/// Where a probability falls on the quantile function, precomputed once per `num_samples`
/// (the normal quantile is the expensive part and is the same for every step).
#[derive(Clone, Copy, Debug)]
enum Point {
    /// `p < 0.1`: the standard normal quantile `z_p`.
    Lower(f64),
    /// `p > 0.9`.
    Upper(f64),
    /// Between `LEVELS[k]` and `LEVELS[k + 1]` with weight `w` in [0, 1).
    Inner(usize, f64),
}

impl Point {
    /// Which piece of `Q` the point is on: 0 the lower tail, `k + 1` the segment from
    /// `LEVELS[k]`, 10 the upper tail.
    fn piece(&self) -> usize {
        match *self {
            Point::Lower(_) => 0,
            Point::Inner(k, _) => k + 1,
            Point::Upper(_) => 10,
        }
    }

    fn of(p: f64) -> Point {
        if p < LEVELS[0] {
            return Point::Lower(normal_quantile(p));
        }
        if p > LEVELS[8] {
            return Point::Upper(normal_quantile(p));
        }
        let mut pos = p * 10.0 - 1.0;
        // Land exactly on a level when p is one up to rounding (0.3 * 10 - 1 = 2.0000000000000004).
        if (pos - pos.round()).abs() < 1e-9 {
            pos = pos.round();
        }
        let k = (pos.floor() as usize).min(8);
        if k == 8 {
            return Point::Inner(8, 0.0);
        }
        Point::Inner(k, pos - k as f64)
    }
}

/// The stratified draw positions `(i - 0.5) / n` of one `num_samples`, ready to evaluate,
/// with what [`summarize_with`] reads of the draws precomputed: their mean as a linear form in
/// the quantile function's parameters, and where each piece of `Q` ends.
#[derive(Clone, Debug)]
pub struct DrawPlan {
    points: Vec<Point>,
    /// Indices of the last draw of every piece of `Q` (lower tail, each segment between two
    /// levels, upper tail) but the last.
    piece_ends: Vec<usize>,
    mean: MeanForm,
}

/// The mean of the draws as `(tails q(0.5) + sigma_lo lower_z + sigma_hi upper_z +
/// sum_k levels[k] q_k) / n`: every draw is linear in `q'`, `sigma_lo` and `sigma_hi`.
#[derive(Clone, Debug)]
struct MeanForm {
    /// Draws on either tail.
    tails: f64,
    /// Sums of `z_p` over the lower and the upper tail's draws.
    lower_z: f64,
    upper_z: f64,
    /// Weight of each level's `q'` over the draws between levels.
    levels: [f64; 9],
}

impl DrawPlan {
    pub fn new(num_samples: usize) -> DrawPlan {
        let n = num_samples as f64;
        let points: Vec<Point> = (1..=num_samples)
            .map(|i| Point::of((i as f64 - 0.5) / n))
            .collect();
        let piece_ends = points
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0].piece() != w[1].piece())
            .map(|(i, _)| i)
            .collect();
        let mut mean = MeanForm {
            tails: 0.0,
            lower_z: 0.0,
            upper_z: 0.0,
            levels: [0.0; 9],
        };
        for p in &points {
            match *p {
                Point::Lower(z) => {
                    mean.tails += 1.0;
                    mean.lower_z += z;
                }
                Point::Upper(z) => {
                    mean.tails += 1.0;
                    mean.upper_z += z;
                }
                Point::Inner(k, w) => {
                    mean.levels[k] += 1.0 - w;
                    if w != 0.0 {
                        mean.levels[k + 1] += w;
                    }
                }
            }
        }
        DrawPlan {
            points,
            piece_ends,
            mean,
        }
    }

    pub fn num_samples(&self) -> usize {
        self.points.len()
    }

    /// The draws of one step, non-decreasing: `Q` at each point, through a running maximum.
    pub fn draws(&self, f: &StepQuantiles) -> Vec<f64> {
        let mut running = f64::NEG_INFINITY;
        self.points
            .iter()
            .map(|p| {
                running = running.max(f.eval_point(p));
                running
            })
            .collect()
    }

    /// Draw `j` of [`DrawPlan::draws`] without the others. Within one piece `Q` is computed
    /// as `a + w b` (or `m + sigma z`) with `w` (or `z`) increasing, which rounding keeps
    /// non-decreasing, so the running maximum up to `j` is the larger of draw `j` and the
    /// earlier pieces' last draws.
    fn draw(&self, f: &StepQuantiles, j: usize) -> f64 {
        self.piece_ends
            .iter()
            .take_while(|&&e| e < j)
            .fold(f.eval_point(&self.points[j]), |m, &e| {
                m.max(f.eval_point(&self.points[e]))
            })
    }

    /// The mean of the draws (rounding aside: the running maximum moves a draw by at most
    /// an ulp at a join between pieces).
    fn mean(&self, f: &StepQuantiles) -> f64 {
        let m = &self.mean;
        let levels: f64 = m.levels.iter().zip(&f.q).map(|(w, q)| w * q).sum();
        (m.tails * f.q[MEDIAN] + f.sigma_lo * m.lower_z + f.sigma_hi * m.upper_z + levels)
            / self.points.len() as f64
    }

    /// [`empirical_quantile`] of the draws, reading only the two draws it interpolates.
    fn draws_quantile(&self, f: &StepQuantiles, p: f64) -> f64 {
        quantile_by(self.points.len(), p, |j| self.draw(f, j))
    }
}

/// The forecast of one series: per-step vectors (index 0 = step 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForecastSummary {
    pub num_samples: usize,
    pub temperature: f64,
    /// Mean of the draws: the point forecast.
    pub mean: Vec<f64>,
    /// `Q(0.5)`.
    pub median: Vec<f64>,
    /// `[Q(0.1), Q(0.9)]`.
    pub ci80: Vec<[f64; 2]>,
    /// 2.5% and 97.5% empirical quantiles of the draws.
    pub ci95: Vec<[f64; 2]>,
    /// `q'` after rearrangement and temperature, `adjusted[q][step]` over [`LEVELS`] (what the
    /// weighted quantile loss scores).
    pub adjusted: Vec<Vec<f64>>,
}

impl ForecastSummary {
    pub fn steps(&self) -> usize {
        self.mean.len()
    }
}

/// Checks the shape and finiteness of a model forecast.
fn check_forecast(q: &QuantileForecast) -> anyhow::Result<()> {
    ensure!(
        q.values.len() == LEVELS.len(),
        "the model returned {} quantile rows, expected {} (one per level of {LEVELS:?})",
        q.values.len(),
        LEVELS.len()
    );
    let steps = q.steps();
    for (k, row) in q.values.iter().enumerate() {
        ensure!(
            row.len() == steps,
            "the model returned ragged quantiles: level {} has {} steps, level 0.1 has {steps}",
            LEVELS[k],
            row.len()
        );
        if let Some(s) = row.iter().position(|v| !v.is_finite()) {
            bail!(
                "the model returned a non-finite quantile (level {}, step {}); check the model files and the context",
                LEVELS[k],
                s + 1
            );
        }
    }
    Ok(())
}

fn check_params(num_samples: usize, temperature: f64) -> anyhow::Result<()> {
    ensure!(num_samples >= 1, "num_samples must be at least 1");
    ensure!(
        temperature.is_finite() && temperature > 0.0,
        "temperature {temperature} must be a finite number > 0"
    );
    Ok(())
}

/// The 9 raw quantiles of one step.
fn step_raw(q: &QuantileForecast, step: usize) -> [f64; 9] {
    std::array::from_fn(|k| q.values[k][step])
}

/// Turns one raw model forecast into the forecast (module docs, steps 1-5).
pub fn summarize(
    q: &QuantileForecast,
    num_samples: usize,
    temperature: f64,
) -> anyhow::Result<ForecastSummary> {
    check_params(num_samples, temperature)?;
    summarize_with(q, &DrawPlan::new(num_samples), temperature)
}

/// [`summarize`] with a precomputed [`DrawPlan`] (the search reuses one per `num_samples`).
pub fn summarize_with(
    q: &QuantileForecast,
    plan: &DrawPlan,
    temperature: f64,
) -> anyhow::Result<ForecastSummary> {
    check_params(plan.num_samples(), temperature)?;
    check_forecast(q)?;
    let steps = q.steps();
    let mut out = ForecastSummary {
        num_samples: plan.num_samples(),
        temperature,
        mean: Vec::with_capacity(steps),
        median: Vec::with_capacity(steps),
        ci80: Vec::with_capacity(steps),
        ci95: Vec::with_capacity(steps),
        adjusted: vec![Vec::with_capacity(steps); LEVELS.len()],
    };
    for s in 0..steps {
        let f = StepQuantiles::new(step_raw(q, s), temperature);
        out.mean.push(plan.mean(&f));
        out.median.push(f.median());
        out.ci80.push([f.q[0], f.q[8]]);
        out.ci95
            .push([plan.draws_quantile(&f, 0.025), plan.draws_quantile(&f, 0.975)]);
        for (row, v) in out.adjusted.iter_mut().zip(f.q) {
            row.push(v);
        }
    }
    Ok(out)
}

/// The official `ChronosBoltPipeline.predict_quantiles` on one forecast: `result[step][j]` is
/// the quantile at `levels[j]`.
///
/// The official code appends the 0.1 and 0.9 values once more at the ends (11 values standing
/// for levels 0, 0.1, ..., 0.9, 1) and takes `torch.quantile`, which sorts them and
/// interpolates linearly at position `10 a`. For non-crossing quantiles that is linear
/// interpolation between the 9 levels with levels outside [0.1, 0.9] clamped to the edge
/// values; for crossing ones (random weights) the sort matters and is reproduced here too.
pub fn interp_quantiles(q: &QuantileForecast, levels: &[f64]) -> anyhow::Result<Vec<Vec<f64>>> {
    check_forecast(q)?;
    if let Some(bad) = levels.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        bail!("quantile level {bad} must be within [0, 1]");
    }
    Ok((0..q.steps())
        .map(|s| {
            let raw = step_raw(q, s);
            let mut aug = [0.0; 11];
            aug[0] = raw[0];
            aug[1..10].copy_from_slice(&raw);
            aug[10] = raw[8];
            aug.sort_by(f64::total_cmp);
            levels.iter().map(|&a| empirical_quantile(&aug, a)).collect()
        })
        .collect())
}

// Exact float equality is what several of these tests assert (values that must pass through
// untouched), so the lint that flags it is off here.
#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    /// A forecast whose every step has the given 9 quantiles.
    fn constant_steps(raw: [f64; 9], steps: usize) -> QuantileForecast {
        QuantileForecast {
            values: raw.iter().map(|&v| vec![v; steps]).collect(),
        }
    }

    /// Normal quantiles with mean `m` and sd `s` at the 9 levels: a symmetric input.
    fn normal_levels(m: f64, s: f64) -> [f64; 9] {
        std::array::from_fn(|k| m + s * normal_quantile(LEVELS[k]))
    }

    #[test]
    fn z90_matches_the_inverse_cdf() {
        assert!((normal_quantile(0.9) - Z_90).abs() < 1e-14);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-13);
    }

    #[test]
    fn unit_temperature_and_many_draws_reproduce_the_model_quantiles() {
        let raw = [900.0, 905.0, 908.0, 910.0, 911.0, 912.5, 915.0, 919.0, 926.0];
        let f = StepQuantiles::new(raw, 1.0);
        for (k, &a) in LEVELS.iter().enumerate() {
            assert_eq!(f.eval(a), raw[k], "level {a}");
        }
        // The empirical quantile of many stratified draws converges to Q at the levels.
        let n = 200_000;
        let draws = DrawPlan::new(n).draws(&f);
        for (k, &a) in LEVELS.iter().enumerate() {
            let e = empirical_quantile(&draws, a);
            assert!((e - raw[k]).abs() < 1e-3, "level {a}: {e} vs {}", raw[k]);
        }
        let s = summarize(&constant_steps(raw, 3), n, 1.0).unwrap();
        assert_eq!(s.median, vec![911.0; 3]);
        assert_eq!(s.ci80, vec![[900.0, 926.0]; 3]);
        assert_eq!(s.adjusted[2], vec![908.0; 3]);
    }

    #[test]
    fn temperature_scales_widths_exactly() {
        let raw = [-3.0, -1.5, -0.7, -0.2, 0.4, 0.9, 1.1, 2.0, 5.0];
        let one = StepQuantiles::new(raw, 1.0);
        for t in [0.5, 0.8, 1.2, 2.0] {
            let f = StepQuantiles::new(raw, t);
            assert_eq!(f.median(), 0.4);
            for p in [
                0.001, 0.025, 0.05, 0.1, 0.15, 0.3, 0.5, 0.77, 0.9, 0.95, 0.975, 0.999,
            ] {
                let want = t * (one.eval(p) - 0.4);
                let got = f.eval(p) - 0.4;
                assert!((got - want).abs() < 1e-12, "t {t} p {p}: {got} vs {want}");
            }
            let s1 = summarize(&constant_steps(raw, 1), 100, 1.0).unwrap();
            let st = summarize(&constant_steps(raw, 1), 100, t).unwrap();
            let w1 = s1.ci95[0][1] - s1.ci95[0][0];
            let wt = st.ci95[0][1] - st.ci95[0][0];
            assert!((wt - t * w1).abs() < 1e-12, "ci95 width at t {t}");
        }
    }

    #[test]
    fn ci95_of_a_symmetric_input_matches_the_normal_tail_formula() {
        let (m, sd) = (950.0, 12.0);
        let raw = normal_levels(m, sd);
        // The fitted tails recover the normal: sigma_lo = sigma_hi = sd.
        let f = StepQuantiles::new(raw, 1.0);
        assert!((f.sigma_lo - sd).abs() < 1e-9 && (f.sigma_hi - sd).abs() < 1e-9);
        // n = 41: the 2.5% position is 0.025 * 40 = 1, i.e. exactly the second draw, which
        // sits at p = 1.5 / 41 on the lower normal tail.
        let s = summarize(&constant_steps(raw, 1), 41, 1.0).unwrap();
        let p = 1.5 / 41.0;
        let lo = m + (m - raw[0]) / Z_90 * normal_quantile(p);
        let hi = m + (raw[8] - m) / Z_90 * normal_quantile(1.0 - p);
        assert!((s.ci95[0][0] - lo).abs() < 1e-9, "{} vs {lo}", s.ci95[0][0]);
        assert!((s.ci95[0][1] - hi).abs() < 1e-9, "{} vs {hi}", s.ci95[0][1]);
        assert!((s.ci95[0][0] + s.ci95[0][1] - 2.0 * m).abs() < 1e-9, "symmetric");
        // Many draws: the interval tends to m -/+ 1.959964 sd.
        let s = summarize(&constant_steps(raw, 1), 100_000, 1.0).unwrap();
        let half = 1.959_963_984_540_054 * sd;
        assert!((s.ci95[0][0] - (m - half)).abs() < 1e-3);
        assert!((s.ci95[0][1] - (m + half)).abs() < 1e-3);
        // Symmetric quantile function: the mean of the draws is the median.
        assert!((s.mean[0] - m).abs() < 1e-9);
    }

    #[test]
    fn summaries_read_the_draws_without_drawing_them() {
        let inputs = [
            normal_levels(950.0, 12.0),
            [5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 6.0, 8.0, 7.0],
            [902.5, 903.0, 903.0, 903.0, 903.1, 911.0, 911.0, 940.0, 1_020.0],
            [1.0; 9],
        ];
        for raw in inputs {
            for n in [1, 2, 3, 7, 10, 41, 50, 100, 200, 1_000] {
                let plan = DrawPlan::new(n);
                for t in [0.8, 1.0, 1.2] {
                    let f = StepQuantiles::new(raw, t);
                    let draws = plan.draws(&f);
                    let s = summarize_with(&constant_steps(raw, 1), &plan, t).unwrap();
                    let mean = draws.iter().sum::<f64>() / n as f64;
                    let tol = 1e-12 * mean.abs().max(1.0);
                    assert!(
                        (s.mean[0] - mean).abs() <= tol,
                        "n {n} t {t}: {} vs {mean}",
                        s.mean[0]
                    );
                    // The interval is the draws' own, to the last bit.
                    assert_eq!(
                        s.ci95[0],
                        [
                            empirical_quantile(&draws, 0.025),
                            empirical_quantile(&draws, 0.975)
                        ],
                        "n {n} t {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn crossing_quantiles_are_made_monotone() {
        let raw = [5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 6.0, 8.0, 7.0];
        let f = StepQuantiles::new(raw, 1.3);
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        for (k, v) in f.at_levels().iter().enumerate() {
            assert!((v - (5.0 + 1.3 * (sorted[k] - 5.0))).abs() < 1e-12);
        }
        let draws = DrawPlan::new(500).draws(&f);
        assert!(draws.windows(2).all(|w| w[0] <= w[1]));
        let s = summarize(&constant_steps(raw, 2), 50, 1.3).unwrap();
        assert!(s.ci95[0][0] <= s.ci80[0][0] && s.ci80[0][1] <= s.ci95[0][1]);
        assert_eq!(s.median[1], 5.0);
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let raw = normal_levels(0.0, 1.0);
        assert!(summarize(&constant_steps(raw, 1), 0, 1.0).is_err());
        assert!(summarize(&constant_steps(raw, 1), 10, 0.0).is_err());
        let mut nan = constant_steps(raw, 2);
        nan.values[3][1] = f64::NAN;
        let e = summarize(&nan, 10, 1.0).unwrap_err().to_string();
        assert!(e.contains("non-finite") && e.contains("step 2"), "{e}");
        let short = QuantileForecast {
            values: vec![vec![0.0]; 8],
        };
        assert!(summarize(&short, 10, 1.0).is_err());
    }

    #[test]
    fn interp_quantiles_follows_the_official_rule() {
        let raw = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let out = interp_quantiles(
            &constant_steps(raw, 2),
            &[0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975],
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        let want = [1.0, 1.0, 2.5, 5.0, 7.5, 9.0, 9.0];
        for (g, w) in out[0].iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // Crossing values: torch.quantile sorts the 11 augmented values first. This case is
        // the first step of the `micro` fixture's first reference case.
        let raw = [
            325.072_692_871_093_75,
            -236.527_099_609_375,
            2_082.652_343_75,
            2_579.133_789_062_5,
            1_396.668_579_101_562_5,
            2_173.474_365_234_375,
            782.518_432_617_187_5,
            760.134_216_308_593_8,
            683.222_412_109_375,
        ];
        let out = interp_quantiles(
            &constant_steps(raw, 1),
            &[0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975],
        )
        .unwrap();
        let reference = [
            -96.127_151_489_257_81,
            325.072_692_871_093_75,
            504.147_552_490_234_4,
            760.134_216_308_593_8,
            1_739.660_400_390_625,
            2_173.474_365_234_375,
            2_477.718_994_140_625,
        ];
        for (g, r) in out[0].iter().zip(reference) {
            assert!((g - r).abs() <= 1e-4 * r.abs().max(1.0), "{g} vs {r}");
        }
        assert!(interp_quantiles(&constant_steps(raw, 1), &[1.5]).is_err());
    }
}

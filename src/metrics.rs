//! Forecast accuracy metrics, the interval score, and the Diebold-Mariano and Clark-West
//! tests (pure; no I/O).
//!
//! Conventions used everywhere: an error is `forecast - actual` (so a positive bias means the
//! forecasts run high), metrics are pooled over every (origin, step) pair of a backtest, and
//! an interval `[lo, hi]` covers an actual when `lo <= actual <= hi`: an actual exactly on a
//! bound counts as covered (the bounds are quantiles, and `Q(p)` itself has probability `p`
//! of not being exceeded).

use anyhow::{bail, ensure};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::forecast::LEVELS;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The percent change from `old` to `new`: `100 (new - old) / |old|`, positive when `new` is
/// larger. A zero `old` gives 0 when `new` is 0 too and an infinite change otherwise.
pub fn change_pct(new: f64, old: f64) -> f64 {
    if old == 0.0 {
        if new == 0.0 {
            0.0
        } else {
            new.signum() * f64::INFINITY
        }
    } else {
        100.0 * (new - old) / old.abs()
    }
}

/// The percent improvement of an error `new` over `old`: `-change_pct(new, old)`, positive
/// when `new` is smaller.
pub fn improvement_pct(new: f64, old: f64) -> f64 {
    -change_pct(new, old)
}

/// Root mean squared error. NaN for no errors.
pub fn rmse(errors: &[f64]) -> f64 {
    (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt()
}

/// Mean absolute error.
pub fn mae(errors: &[f64]) -> f64 {
    errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64
}

/// Mean of the errors (`forecast - actual`), in the series' unit (CLP).
pub fn bias(errors: &[f64]) -> f64 {
    mean(errors)
}

/// Standard deviation of the errors with ddof = 0 (numpy's default).
///
/// Why ddof 0: it keeps the identity `rmse^2 = bias^2 + std^2` exact, so the three figures of
/// a report are consistent; and the only decision that uses it (validation criterion 2)
/// compares the std of two configs on the same origins, i.e. over the same number of errors,
/// where the ddof factor cancels from the ratio.
pub fn error_std(errors: &[f64]) -> f64 {
    let m = mean(errors);
    (errors.iter().map(|e| (e - m) * (e - m)).sum::<f64>() / errors.len() as f64).sqrt()
}

/// Mean absolute percentage error in percent: `100 mean(|f - a| / |a|)`. An actual of zero
/// makes it undefined: that is an error naming the position, never an infinite MAPE.
pub fn mape(forecasts: &[f64], actuals: &[f64]) -> anyhow::Result<f64> {
    ensure!(
        forecasts.len() == actuals.len(),
        "MAPE needs as many forecasts ({}) as actuals ({})",
        forecasts.len(),
        actuals.len()
    );
    ensure!(!actuals.is_empty(), "MAPE of no values is undefined");
    let mut sum = 0.0;
    for (i, (f, a)) in forecasts.iter().zip(actuals).enumerate() {
        if *a == 0.0 {
            bail!("MAPE is undefined: actual value number {} is 0", i + 1);
        }
        sum += ((f - a) / a).abs();
    }
    Ok(100.0 * sum / actuals.len() as f64)
}

/// Fraction of actuals inside their interval, bounds inclusive.
pub fn coverage(actuals: &[f64], intervals: &[[f64; 2]]) -> f64 {
    let inside = actuals
        .iter()
        .zip(intervals)
        .filter(|(a, [lo, hi])| *lo <= **a && **a <= *hi)
        .count();
    inside as f64 / actuals.len() as f64
}

/// Mean of `hi - lo`.
pub fn mean_width(intervals: &[[f64; 2]]) -> f64 {
    intervals.iter().map(|[lo, hi]| hi - lo).sum::<f64>() / intervals.len() as f64
}

/// The interval (Winkler) score of central `(1 - alpha)` intervals, averaged:
/// `(hi - lo) + (2 / alpha) (lo - y) 1{y < lo} + (2 / alpha) (y - hi) 1{y > hi}` (Gneiting and
/// Raftery 2007). A proper score of the interval: lower is better, and its expectation is
/// lowest for the true `alpha / 2` and `1 - alpha / 2` quantiles, so it rewards a narrow
/// interval only as long as it still covers. In the series' unit (CLP).
pub fn interval_score(actuals: &[f64], intervals: &[[f64; 2]], alpha: f64) -> f64 {
    let penalty = 2.0 / alpha;
    actuals
        .iter()
        .zip(intervals)
        .map(|(y, [lo, hi])| (hi - lo) + penalty * (lo - y).max(0.0) + penalty * (y - hi).max(0.0))
        .sum::<f64>()
        / actuals.len() as f64
}

/// The pinball (quantile) loss of quantile `q` at level `a` for an actual `y`:
/// `a (y - q)` when `y >= q`, `(1 - a) (q - y)` otherwise.
pub fn pinball(a: f64, y: f64, q: f64) -> f64 {
    if y >= q {
        a * (y - q)
    } else {
        (1.0 - a) * (q - y)
    }
}

/// Weighted quantile loss over the 9 [`LEVELS`], as GluonTS and the Chronos papers define it:
/// for each level `a`, `WQL_a = 2 sum_t pinball_a(y_t, q_t(a)) / sum_t |y_t|`, then the mean
/// over the 9 levels. `quantiles[t][k]` is the forecast quantile at `LEVELS[k]` for actual
/// `actuals[t]`. Scale-free (0 = perfect); the factor 2 makes the 0.5 level equal to
/// `sum |error| / sum |y|`.
pub fn wql(actuals: &[f64], quantiles: &[[f64; 9]]) -> anyhow::Result<f64> {
    ensure!(
        actuals.len() == quantiles.len(),
        "WQL needs as many quantile rows ({}) as actuals ({})",
        quantiles.len(),
        actuals.len()
    );
    let scale: f64 = actuals.iter().map(|y| y.abs()).sum();
    ensure!(scale > 0.0, "WQL is undefined when every actual is 0");
    let total: f64 = actuals
        .iter()
        .zip(quantiles)
        .map(|(y, q)| {
            LEVELS
                .iter()
                .zip(q)
                .map(|(a, qa)| pinball(*a, *y, *qa))
                .sum::<f64>()
        })
        .sum();
    Ok(2.0 * total / scale / LEVELS.len() as f64)
}

/// Result of [`diebold_mariano`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DieboldMariano {
    /// HLN-corrected statistic; negative means the first model's loss is lower. Infinite when
    /// the differential is a nonzero constant (zero variance).
    pub statistic: f64,
    /// Two-sided p-value from Student t with `n - 1` degrees of freedom.
    pub p_value: f64,
    /// One-sided p-value of the alternative "the first model's loss is lower" (statistic
    /// below 0): `P(T_{n-1} <= statistic)`.
    pub p_value_lower: f64,
    /// Length of the loss-differential series.
    pub n: usize,
    /// Mean loss differential.
    pub mean_differential: f64,
    /// The horizon the variance and the correction used: `min(h, n - 1)`.
    pub horizon_used: usize,
    /// Autocovariance lags in the variance: `horizon_used - 1`.
    pub lags: usize,
    /// True when `h >= n` forced `horizon_used < h`: too few origins for this horizon, the
    /// test is indicative only.
    pub horizon_capped: bool,
    /// True when the truncated HAC variance came out non-positive and the lag-0 variance was
    /// used instead (a known weakness of the rectangular kernel in short samples).
    pub variance_fallback: bool,
}

/// Diebold-Mariano test of equal predictive accuracy on a loss differential
/// `d_t = L(model 1)_t - L(model 2)_t` for `h`-step forecasts.
///
/// Variance: `V = gamma_0 + 2 sum_{k=1}^{h-1} gamma_k`, `gamma_k = (1/n) sum_{t>=k}
/// (d_t - dbar)(d_{t-k} - dbar)` (the rectangular HAC of Diebold and Mariano 1995: optimal
/// `h`-step errors are MA(h-1)). Statistic `dbar / sqrt(V / n)` times the Harvey, Leybourne
/// and Newbold (1997) factor `sqrt((n + 1 - 2h + h (h - 1) / n) / n)`, compared with Student
/// t with `n - 1` degrees of freedom. That factor is `(n - h)(n - h + 1) / n^2` under the root,
/// which vanishes at `h = n`, hence the cap `h <= n - 1` (flagged).
pub fn diebold_mariano(d: &[f64], h: usize) -> anyhow::Result<DieboldMariano> {
    let n = d.len();
    ensure!(
        n >= 2,
        "the Diebold-Mariano test needs at least 2 loss differentials, got {n}"
    );
    ensure!(h >= 1, "the Diebold-Mariano horizon must be at least 1");
    ensure!(
        d.iter().all(|x| x.is_finite()),
        "the loss differential has a non-finite value"
    );
    let nf = n as f64;
    let horizon_used = h.min(n - 1);
    let lags = horizon_used - 1;
    let dbar = mean(d);
    let gamma = |k: usize| autocovariance(d, dbar, k);
    let gamma0 = gamma(0);
    let mut v = gamma0 + 2.0 * (1..=lags).map(gamma).sum::<f64>();
    let variance_fallback = v <= 0.0;
    if variance_fallback {
        v = gamma0;
    }
    let hf = horizon_used as f64;
    let hln = ((nf + 1.0 - 2.0 * hf + hf * (hf - 1.0) / nf) / nf).sqrt();
    let (statistic, p_value, p_value_lower) = if v <= 0.0 {
        // Constant differential: no sampling variation at all.
        if dbar == 0.0 {
            (0.0, 1.0, 0.5)
        } else {
            let lower = if dbar < 0.0 { 0.0 } else { 1.0 };
            (dbar.signum() * f64::INFINITY, 0.0, lower)
        }
    } else {
        let stat = dbar / (v / nf).sqrt() * hln;
        let t = StudentsT::new(0.0, 1.0, nf - 1.0)?;
        (stat, (2.0 * t.sf(stat.abs())).min(1.0), t.cdf(stat))
    };
    Ok(DieboldMariano {
        statistic,
        p_value,
        p_value_lower,
        n,
        mean_differential: dbar,
        horizon_used,
        lags,
        horizon_capped: horizon_used < h,
        variance_fallback,
    })
}

/// Result of [`clark_west`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClarkWest {
    /// `fbar / sqrt(V / n)`; positive means the model beats the random walk.
    pub statistic: f64,
    /// One-sided p-value of "the model is more accurate than the random walk": `1 - Phi(stat)`.
    pub p_value: f64,
    pub n: usize,
    /// Mean adjusted loss differential `fbar`.
    pub mean_adjusted_differential: f64,
    /// Autocovariance lags in the variance.
    pub lags: usize,
    /// True when the truncated HAC variance came out non-positive and the lag-0 variance was
    /// used instead.
    pub variance_fallback: bool,
}

/// The Clark-West (2007) test of a model against the nested random-walk benchmark, on one
/// adjusted loss differential per origin:
/// `f = e_rw^2 - (e_model^2 - (f_rw - f_model)^2)`, averaged over the origin's steps
/// (`e = forecast - actual`). Under the null the random walk is the true model and the extra
/// parameters of the larger model only add noise; the term `(f_rw - f_model)^2` removes that
/// noise's expected cost, which makes the plain MSE comparison (Diebold-Mariano) undersized
/// against a nested benchmark. Variance: the rectangular HAC of [`diebold_mariano`] with
/// `lags` autocovariances (`h - 1` for origins whose targets overlap `h - 1` neighbours), lag 0
/// only if that comes out non-positive; one-sided against the standard normal.
pub fn clark_west(
    model: &[f64],
    random_walk: &[f64],
    actuals: &[f64],
    origin_of: &[usize],
    lags: usize,
) -> anyhow::Result<ClarkWest> {
    ensure!(
        model.len() == random_walk.len() && model.len() == actuals.len() && model.len() == origin_of.len(),
        "Clark-West needs as many model forecasts ({}), random-walk forecasts ({}), actuals ({}) and origins ({})",
        model.len(),
        random_walk.len(),
        actuals.len(),
        origin_of.len()
    );
    let adjusted: Vec<f64> = model
        .iter()
        .zip(random_walk)
        .zip(actuals)
        .map(|((m, r), y)| (r - y).powi(2) - ((m - y).powi(2) - (r - m).powi(2)))
        .collect();
    let f = per_origin_means(&adjusted, origin_of);
    let n = f.len();
    ensure!(n >= 2, "the Clark-West test needs at least 2 origins, got {n}");
    ensure!(
        f.iter().all(|x| x.is_finite()),
        "the Clark-West differential has a non-finite value"
    );
    let nf = n as f64;
    let lags = lags.min(n - 1);
    let fbar = mean(&f);
    let gamma0 = autocovariance(&f, fbar, 0);
    let mut v = gamma0 + 2.0 * (1..=lags).map(|k| autocovariance(&f, fbar, k)).sum::<f64>();
    let variance_fallback = v <= 0.0;
    if variance_fallback {
        v = gamma0;
    }
    let (statistic, p_value) = if v <= 0.0 {
        match fbar {
            x if x > 0.0 => (f64::INFINITY, 0.0),
            x if x < 0.0 => (f64::NEG_INFINITY, 1.0),
            _ => (0.0, 0.5),
        }
    } else {
        let stat = fbar / (v / nf).sqrt();
        (stat, Normal::standard().sf(stat))
    };
    Ok(ClarkWest {
        statistic,
        p_value,
        n,
        mean_adjusted_differential: fbar,
        lags,
        variance_fallback,
    })
}

/// `gamma_k = (1/n) sum_{t>=k} (x_t - m)(x_{t-k} - m)`.
fn autocovariance(x: &[f64], m: f64, k: usize) -> f64 {
    (k..x.len()).map(|t| (x[t] - m) * (x[t - k] - m)).sum::<f64>() / x.len() as f64
}

/// Means of `values` over runs of equal `origin_of` (consecutive), in order.
pub fn per_origin_means(values: &[f64], origin_of: &[usize]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j < values.len() && origin_of[j] == origin_of[i] {
            j += 1;
        }
        out.push(values[i..j].iter().sum::<f64>() / (j - i) as f64);
        i = j;
    }
    out
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn point_metrics_by_hand() {
        // forecasts 10, 12, 9, 11 against actuals 11, 10, 10, 10.
        let f = [10.0, 12.0, 9.0, 11.0];
        let a = [11.0, 10.0, 10.0, 10.0];
        let e: Vec<f64> = f.iter().zip(&a).map(|(f, a)| f - a).collect();
        assert_eq!(e, vec![-1.0, 2.0, -1.0, 1.0]);
        // sqrt((1 + 4 + 1 + 1) / 4) = sqrt(1.75)
        assert!(close(rmse(&e), 1.75_f64.sqrt(), 1e-15));
        assert!(close(mae(&e), 1.25, 1e-15));
        assert!(close(bias(&e), 0.25, 1e-15));
        // deviations from 0.25: -1.25, 1.75, -1.25, 0.75 -> squares sum 6.75, / 4 = 1.6875
        assert!(close(error_std(&e), 1.6875_f64.sqrt(), 1e-15));
        assert!(close(
            rmse(&e).powi(2),
            bias(&e).powi(2) + error_std(&e).powi(2),
            1e-12
        ));
        // 100 * (1/11 + 2/10 + 1/10 + 1/10) / 4
        let want = 100.0 * (1.0 / 11.0 + 0.4) / 4.0;
        assert!(close(mape(&f, &a).unwrap(), want, 1e-12));
    }

    #[test]
    fn mape_rejects_a_zero_actual() {
        let err = mape(&[1.0, 2.0, 3.0], &[1.0, 0.0, 3.0]).unwrap_err().to_string();
        assert!(err.contains("actual value number 2 is 0"), "{err}");
        assert!(mape(&[], &[]).is_err());
        assert!(mape(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn coverage_counts_bounds_as_covered() {
        let iv = [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]];
        let a = [1.0, 2.0, 1.5, 0.999_999, 2.000_001];
        assert!(close(coverage(&a, &iv), 0.6, 1e-15));
        assert!(close(mean_width(&[[1.0, 2.0], [0.0, 4.0]]), 2.5, 1e-15));
    }

    #[test]
    fn wql_by_hand() {
        // One actual 100 with every quantile at 90: y >= q, pinball = a * 10 per level.
        // sum over levels of a = 4.5, so total 45; WQL = 2 * 45 / 100 / 9 = 0.1.
        assert!(close(wql(&[100.0], &[[90.0; 9]]).unwrap(), 0.1, 1e-15));
        // Quantiles all at 110: pinball = (1 - a) * 10, same sum 45 -> 0.1.
        assert!(close(wql(&[100.0], &[[110.0; 9]]).unwrap(), 0.1, 1e-15));
        // Two actuals; the second is hit exactly by every quantile (loss 0): 2 * 45 / 300 / 9.
        let got = wql(&[100.0, 200.0], &[[90.0; 9], [200.0; 9]]).unwrap();
        assert!(close(got, 90.0 / 300.0 / 9.0, 1e-15));
        assert!(close(pinball(0.9, 0.0, 1.0), 0.1, 1e-15));
        assert!(wql(&[0.0], &[[1.0; 9]]).is_err());
    }

    #[test]
    fn interval_score_by_hand() {
        // [10, 20] at alpha 0.05 (penalty 2 / 0.05 = 40): inside 10; 2 below: 10 + 80;
        // 1 above: 10 + 40. Mean (10 + 90 + 50) / 3 = 50.
        let iv = [[10.0, 20.0]; 3];
        assert!(close(interval_score(&[15.0, 8.0, 21.0], &iv, 0.05), 50.0, 1e-12));
        // On a bound is inside: width only.
        assert!(close(interval_score(&[10.0, 20.0], &iv[..2], 0.05), 10.0, 1e-12));
        // alpha 0.2 (penalty 10), 3 above: (10 + (10 + 30)) / 2.
        assert!(close(interval_score(&[15.0, 23.0], &iv[..2], 0.2), 25.0, 1e-12));
    }

    #[test]
    fn clark_west_by_hand() {
        // f = e_rw^2 - (e_m^2 - (f_rw - f_m)^2) per origin, one step each:
        // (m 11, rw 10, y 12): 4 - (1 - 1) = 4;  (10, 10, 9): 1 - (1 - 0) = 0;
        // (12, 10, 10): 0 - (4 - 4) = 0;         (9, 10, 8): 4 - (1 - 1) = 4.
        let (m, r, y) = ([11.0, 10.0, 12.0, 9.0], [10.0; 4], [12.0, 9.0, 10.0, 8.0]);
        let o = [0, 1, 2, 3];
        // fbar 2, gamma0 = 16 / 4 = 4: no lags, stat 2 / sqrt(4 / 4) = 2, p = 1 - Phi(2).
        let cw = clark_west(&m, &r, &y, &o, 0).unwrap();
        assert!(close(cw.mean_adjusted_differential, 2.0, 1e-12));
        assert!(close(cw.statistic, 2.0, 1e-12), "{}", cw.statistic);
        assert!(
            close(cw.p_value, 0.022_750_131_948_179_22, 1e-10),
            "{}",
            cw.p_value
        );
        // One lag: gamma1 = ((-2)(2) + (-2)(-2) + (2)(-2)) / 4 = -1, V = 4 - 2 = 2,
        // stat = 2 / sqrt(2 / 4) = 2 sqrt(2), p = 1 - Phi(2 sqrt 2). (Reference p-values from
        // erfc; statrs agrees to about 1e-12.)
        let cw = clark_west(&m, &r, &y, &o, 1).unwrap();
        assert!(
            close(cw.statistic, 2.0 * 2.0_f64.sqrt(), 1e-12),
            "{}",
            cw.statistic
        );
        assert!(
            close(cw.p_value, 0.002_338_867_490_523_633, 1e-10),
            "{}",
            cw.p_value
        );
        assert!(!cw.variance_fallback && cw.lags == 1);
        // Two steps per origin are averaged first: the same differential, each value twice.
        let twice = |x: &[f64]| x.iter().flat_map(|v| [*v, *v]).collect::<Vec<f64>>();
        let o2 = [0, 0, 1, 1, 2, 2, 3, 3];
        let cw2 = clark_west(&twice(&m), &twice(&r), &twice(&y), &o2, 0).unwrap();
        assert_eq!(cw2.n, 4);
        assert!(close(cw2.statistic, 2.0, 1e-12));
        // The model equal to the random walk: f = 0 everywhere, no evidence either way.
        let cw = clark_west(&r, &r, &y, &o, 1).unwrap();
        assert_eq!((cw.statistic, cw.p_value), (0.0, 0.5));
        assert!(clark_west(&m[..1], &r[..1], &y[..1], &o[..1], 0).is_err());
        assert!(clark_west(&m, &r, &y[..3], &o, 0).is_err());
    }

    #[test]
    fn diebold_mariano_one_sided_p_value() {
        // d = -1..-5 (the first model better), h = 2: statistic -sqrt(6) (see the test
        // below), one-sided p = P(T_4 <= -sqrt 6) = half the two-sided 0.070484.
        let r = diebold_mariano(&[-1.0, -2.0, -3.0, -4.0, -5.0], 2).unwrap();
        assert!(close(r.p_value_lower, t4_two_sided(6.0_f64.sqrt()) / 2.0, 1e-9));
        assert!(close(r.p_value_lower, 0.035_242, 1e-6));
        let r = diebold_mariano(&[1.0, 2.0, 3.0, 4.0, 5.0], 2).unwrap();
        assert!(close(r.p_value_lower, 1.0 - 0.035_242, 1e-6));
        assert_eq!(diebold_mariano(&[-2.0; 10], 3).unwrap().p_value_lower, 0.0);
        assert_eq!(diebold_mariano(&[2.0; 10], 3).unwrap().p_value_lower, 1.0);
        assert_eq!(diebold_mariano(&[0.0; 10], 3).unwrap().p_value_lower, 0.5);
    }

    /// Student t with 4 degrees of freedom has a closed-form CDF:
    /// F(t) = 1/2 + (3/4) x (1 - x^2 / 3) with x = t / sqrt(t^2 + 4).
    fn t4_two_sided(t: f64) -> f64 {
        let x = t.abs() / (t * t + 4.0).sqrt();
        2.0 * (1.0 - (0.5 + 0.75 * x * (1.0 - x * x / 3.0)))
    }

    #[test]
    fn diebold_mariano_on_a_constructed_differential() {
        // d = 1..5, h = 2: dbar 3, gamma0 = 10/5 = 2, gamma1 = (2 + 0 + 0 + 2)/5 = 0.8,
        // V = 2 + 2 * 0.8 = 3.6, DM = 3 / sqrt(3.6 / 5), HLN = sqrt((5 + 1 - 4 + 2/5) / 5)
        // = sqrt(0.48): DM* = 3 * sqrt(0.48 / 0.72) = sqrt(6).
        let r = diebold_mariano(&[1.0, 2.0, 3.0, 4.0, 5.0], 2).unwrap();
        assert!(close(r.statistic, 6.0_f64.sqrt(), 1e-12), "{}", r.statistic);
        assert!(
            close(r.p_value, t4_two_sided(6.0_f64.sqrt()), 1e-9),
            "{}",
            r.p_value
        );
        assert!(close(r.p_value, 0.070_484, 1e-6));
        assert_eq!((r.n, r.lags, r.horizon_used), (5, 1, 2));
        assert!(!r.variance_fallback && !r.horizon_capped);
        // The sign follows the mean differential.
        let r = diebold_mariano(&[-1.0, -2.0, -3.0, -4.0, -5.0], 2).unwrap();
        assert!(close(r.statistic, -(6.0_f64.sqrt()), 1e-12));
    }

    #[test]
    fn diebold_mariano_edges() {
        // Alternating d: gamma1 = -5/6 makes V = 1 - 5/3 < 0 -> lag-0 variance 1;
        // DM = 1 / sqrt(1/6), HLN = sqrt((6 + 1 - 4 + 2/6) / 6).
        let r = diebold_mariano(&[2.0, 0.0, 2.0, 0.0, 2.0, 0.0], 2).unwrap();
        assert!(r.variance_fallback);
        let want = 6.0_f64.sqrt() * ((10.0 / 3.0) / 6.0_f64).sqrt();
        assert!(close(r.statistic, want, 1e-12), "{} vs {want}", r.statistic);
        // Identical losses: no difference at all.
        let r = diebold_mariano(&[0.0; 10], 3).unwrap();
        assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
        // A constant nonzero differential is as significant as it gets.
        let r = diebold_mariano(&[-2.0; 10], 3).unwrap();
        assert!(r.statistic == f64::NEG_INFINITY && r.p_value == 0.0);
        // Horizon longer than the sample: capped and flagged.
        let r = diebold_mariano(&[1.0, 3.0, 2.0, 5.0], 90).unwrap();
        assert!(r.horizon_capped && r.horizon_used == 3 && r.lags == 2);
        assert!(diebold_mariano(&[1.0], 1).is_err());
    }
}

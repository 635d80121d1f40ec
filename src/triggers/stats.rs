//! Two-sample statistics for the drift trigger, matching SciPy 1.17 / statsmodels 0.15:
//! Kolmogorov-Smirnov (`ks_2samp`, exact and asymptotic p-values, `method="auto"` switch),
//! Welch's t-test, Levene's test (median = Brown-Forsythe, or mean), Ljung-Box Q and the
//! two-sided variance-ratio F test. Degenerate inputs (empty, NaN, zero variance) give NaN
//! statistics or p-values, as SciPy does, rather than errors: the caller treats NaN as "not
//! significant".

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, StudentsT};

use super::kolmogorov::kstwo_sf;

/// SciPy's `ks_2samp(method="auto")` computes the exact p-value when both samples have at most
/// this many observations, the asymptotic one otherwise.
pub const KS_MAX_EXACT_N: usize = 10_000;

/// Which distribution a KS p-value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    /// The exact null distribution of the two-sample statistic (lattice-path count).
    Exact,
    /// SciPy's "asymp": the one-sample KS distribution at n = round(m n / (m + n)).
    Asymptotic,
}

/// A two-sample KS test result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KsResult {
    /// sup |F_a - F_b| of the two empirical CDFs.
    pub statistic: f64,
    pub pvalue: f64,
    pub method: KsMethod,
}

/// A statistic and its p-value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TestResult {
    pub statistic: f64,
    pub pvalue: f64,
}

/// Welch's t-test result (with the Welch-Satterthwaite degrees of freedom).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WelchResult {
    pub statistic: f64,
    pub pvalue: f64,
    pub df: f64,
}

/// Ljung-Box Q at one lag.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LjungBoxResult {
    pub lags: usize,
    pub statistic: f64,
    pub pvalue: f64,
}

/// Variance-ratio F test of `current` against `reference`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct VarianceRatioResult {
    /// var(current) / var(reference), sample variances (ddof 1).
    pub ratio: f64,
    /// sd(current) / sd(reference) = sqrt(ratio).
    pub std_ratio: f64,
    /// 2 * min(F.cdf(ratio), F.sf(ratio)) with (n_current - 1, n_reference - 1) df, capped at 1.
    pub pvalue_two_sided: f64,
}

/// The centre Levene's test measures absolute deviations from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeveneCenter {
    /// Brown-Forsythe: robust to heavy tails, the one the drift trigger uses.
    Median,
    Mean,
}

// ---------------------------------------------------------------------------------------------
// Kolmogorov-Smirnov
// ---------------------------------------------------------------------------------------------

/// Two-sided two-sample KS test with SciPy's `method="auto"`: exact when
/// max(n_a, n_b) <= [`KS_MAX_EXACT_N`], asymptotic otherwise.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsResult {
    if a.len().max(b.len()) <= KS_MAX_EXACT_N {
        ks_2samp_exact(a, b)
    } else {
        ks_2samp_asymptotic(a, b)
    }
}

/// Two-sided two-sample KS test with the exact p-value P(D >= d) under the null.
pub fn ks_2samp_exact(a: &[f64], b: &[f64]) -> KsResult {
    let Some(st) = ks_statistic(a, b) else {
        return nan_ks(KsMethod::Exact);
    };
    let (m, n) = (a.len() as u64, b.len() as u64);
    let g = gcd(m, n);
    let lcm = m / g * n;
    // The statistic is a multiple of 1/lcm: h = d * lcm exactly (SciPy rounds the float).
    let h = st.scaled_numerator;
    KsResult {
        statistic: h as f64 / lcm as f64,
        pvalue: if h == 0 {
            1.0
        } else {
            exact_two_sided_sf(m, n, h * g)
        },
        method: KsMethod::Exact,
    }
}

/// Two-sided two-sample KS test with SciPy's `method="asymp"` p-value: the one-sample
/// two-sided KS distribution at the effective size round(m n / (m + n)) (ties to even, like
/// NumPy's `round`).
pub fn ks_2samp_asymptotic(a: &[f64], b: &[f64]) -> KsResult {
    let Some(st) = ks_statistic(a, b) else {
        return nan_ks(KsMethod::Asymptotic);
    };
    let (m, n) = (a.len() as f64, b.len() as f64);
    let en = (m * n / (m + n)).round_ties_even().max(1.0) as u64;
    KsResult {
        statistic: st.d,
        pvalue: kstwo_sf(en, st.d),
        method: KsMethod::Asymptotic,
    }
}

fn nan_ks(method: KsMethod) -> KsResult {
    KsResult {
        statistic: f64::NAN,
        pvalue: f64::NAN,
        method,
    }
}

struct KsStatistic {
    /// sup |F_a - F_b| as a float (as SciPy computes it).
    d: f64,
    /// sup |k_a n_b - k_b n_a| / gcd(n_a, n_b): the statistic times lcm(n_a, n_b), exact.
    scaled_numerator: u64,
}

/// Walks both sorted samples, evaluating the right-continuous ECDFs after each distinct value
/// (all tied observations of both samples are passed before comparing, like SciPy's
/// `searchsorted(side="right")`).
fn ks_statistic(a: &[f64], b: &[f64]) -> Option<KsStatistic> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    let mut xa = a.to_vec();
    let mut xb = b.to_vec();
    xa.sort_by(f64::total_cmp);
    xb.sort_by(f64::total_cmp);
    let (na, nb) = (xa.len(), xb.len());
    let g = i128::from(gcd(na as u64, nb as u64));
    let (mut i, mut j) = (0usize, 0usize);
    let mut best: i128 = 0;
    let mut best_d = 0.0f64;
    while i < na || j < nb {
        let v = match (xa.get(i), xb.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        // Sorted, so every remaining value is >= v: `<=` means equal (and -0.0 ties 0.0).
        while i < na && xa[i] <= v {
            i += 1;
        }
        while j < nb && xb[j] <= v {
            j += 1;
        }
        let diff = (i as i128 * nb as i128 - j as i128 * na as i128).abs() / g;
        if diff > best {
            best = diff;
            best_d = (i as f64 / na as f64 - j as f64 / nb as f64).abs();
        }
    }
    Some(KsStatistic {
        d: best_d,
        scaled_numerator: best as u64,
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// P(D >= d) for two samples of sizes m and n under the null, where d m n = `bound` (an
/// integer): the probability that a uniformly random arrangement of m a's and n b's has a
/// prefix with |i n - j m| >= bound (i a's and j b's seen).
///
/// Computed as a probability-mass walk over the lattice: mass that is still strictly inside the
/// band moves to (i+1, j) or (i, j+1) with the sampling-without-replacement probabilities, and
/// mass that reaches the boundary is added to the answer. Every term is non-negative, so small
/// p-values keep their relative precision (no 1 - P(inside) cancellation) and nothing overflows.
fn exact_two_sided_sf(m: u64, n: u64, bound: u64) -> f64 {
    // Orient so the inner loop (j) runs over the smaller sample.
    let (m, n) = if m >= n { (m, n) } else { (n, m) };
    let (mi, ni, b) = (m as i64, n as i64, bound as i64);
    let nu = n as usize;
    let inside = |i: i64, j: i64| (i * ni - j * mi).abs() < b;
    // Band of j strictly inside for row i: i n - b < j m < i n + b.
    let band = |i: i64| -> (i64, i64) {
        let lo = (i * ni - b).div_euclid(mi) + 1;
        let hi = (i * ni + b - 1).div_euclid(mi);
        (lo.max(0), hi.min(ni))
    };
    let total = (m + n) as f64;
    let mut prev = vec![0.0f64; nu + 1];
    let mut cur = vec![0.0f64; nu + 1];
    let (mut prev_lo, mut prev_hi) = (0i64, -1i64);
    let mut outside = 0.0f64;
    for i in 0..=mi {
        let (lo, hi) = band(i);
        // Cells of row i that can receive mass: from (i-1, j) for j in the previous band, and
        // from (i, j-1) for j-1 in this band.
        let from = if i == 0 { 0 } else { prev_lo.min(lo) };
        let to = (hi + 1).min(ni).max(prev_hi);
        let mut left = 0.0f64; // mass at (i, j-1) still inside
        for j in from..=to {
            let mut v = if i == 0 && j == 0 { 1.0 } else { 0.0 };
            if i > 0 && (prev_lo..=prev_hi).contains(&j) {
                let p = prev[j as usize];
                if p != 0.0 {
                    v += p * (mi - i + 1) as f64 / (total - (i - 1 + j) as f64);
                }
            }
            if j > 0 && left != 0.0 {
                v += left * (ni - j + 1) as f64 / (total - (i + j - 1) as f64);
            }
            if inside(i, j) {
                cur[j as usize] = v;
                left = v;
            } else {
                outside += v;
                cur[j as usize] = 0.0;
                left = 0.0;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
        prev_lo = lo;
        prev_hi = hi;
        // `cur` now holds row i-1; only [lo, hi] of row i is read next time, from `prev`.
    }
    outside.clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Moments
// ---------------------------------------------------------------------------------------------

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance with ddof 1 (two-pass).
fn var1(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

/// The median, averaging the two middle values for an even count (NumPy's `median`).
pub(crate) fn median(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Mean and sample standard deviation (ddof 1); NaN for fewer than two values.
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (mean(x), var1(x).sqrt())
}

fn has_nan(x: &[f64]) -> bool {
    x.iter().any(|v| v.is_nan())
}

// ---------------------------------------------------------------------------------------------
// Welch, Levene, Ljung-Box, F
// ---------------------------------------------------------------------------------------------

/// Welch's unequal-variance t-test of mean(a) - mean(b), two-sided (SciPy
/// `ttest_ind(a, b, equal_var=False)`).
pub fn welch_t(a: &[f64], b: &[f64]) -> WelchResult {
    let nan = WelchResult {
        statistic: f64::NAN,
        pvalue: f64::NAN,
        df: f64::NAN,
    };
    if a.len() < 2 || b.len() < 2 || has_nan(a) || has_nan(b) {
        return nan;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (var1(a) / na, var1(b) / nb);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return nan;
    }
    let t = (mean(a) - mean(b)) / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let pvalue = StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| (2.0 * d.sf(t.abs())).min(1.0));
    WelchResult {
        statistic: t,
        pvalue,
        df,
    }
}

/// Levene's test for equal variances of two samples (SciPy `levene(a, b, center=...)`): a
/// one-way ANOVA F on the absolute deviations from each sample's centre.
pub fn levene(a: &[f64], b: &[f64], center: LeveneCenter) -> TestResult {
    let nan = TestResult {
        statistic: f64::NAN,
        pvalue: f64::NAN,
    };
    if a.len() < 2 || b.len() < 2 || has_nan(a) || has_nan(b) {
        return nan;
    }
    let deviations = |x: &[f64]| -> Vec<f64> {
        let c = match center {
            LeveneCenter::Median => median(x),
            LeveneCenter::Mean => mean(x),
        };
        x.iter().map(|v| (v - c).abs()).collect()
    };
    let za = deviations(a);
    let zb = deviations(b);
    let (na, nb) = (za.len() as f64, zb.len() as f64);
    let total = na + nb;
    let (ma, mb) = (mean(&za), mean(&zb));
    let grand = (ma * na + mb * nb) / total;
    let between = na * (ma - grand).powi(2) + nb * (mb - grand).powi(2);
    let within: f64 =
        za.iter().map(|z| (z - ma).powi(2)).sum::<f64>() + zb.iter().map(|z| (z - mb).powi(2)).sum::<f64>();
    // k = 2 groups: (N - k) / (k - 1) = N - 2.
    let w = (total - 2.0) * between / within;
    if !w.is_finite() {
        return nan;
    }
    let pvalue = FisherSnedecor::new(1.0, total - 2.0).map_or(f64::NAN, |d| d.sf(w));
    TestResult { statistic: w, pvalue }
}

/// Ljung-Box Q at `lags` (statsmodels `acorr_ljungbox(x, lags=[lags])`):
/// Q = n (n + 2) sum_{k=1}^{lags} r_k^2 / (n - k), chi-squared with `lags` df.
pub fn ljung_box(x: &[f64], lags: usize) -> LjungBoxResult {
    let n = x.len();
    let nan = LjungBoxResult {
        lags,
        statistic: f64::NAN,
        pvalue: f64::NAN,
    };
    if lags == 0 || lags >= n || has_nan(x) {
        return nan;
    }
    let m = mean(x);
    let d: Vec<f64> = x.iter().map(|v| v - m).collect();
    let c0: f64 = d.iter().map(|v| v * v).sum();
    if c0 <= 0.0 {
        return nan;
    }
    let nf = n as f64;
    let mut q = 0.0;
    for k in 1..=lags {
        let ck: f64 = d[k..].iter().zip(&d[..n - k]).map(|(a, b)| a * b).sum();
        let r = ck / c0;
        q += r * r / (nf - k as f64);
    }
    q *= nf * (nf + 2.0);
    let pvalue = ChiSquared::new(lags as f64).map_or(f64::NAN, |d| d.sf(q));
    LjungBoxResult {
        lags,
        statistic: q,
        pvalue,
    }
}

/// Two-sided variance-ratio F test: var(current) / var(reference).
pub fn variance_ratio_f(current: &[f64], reference: &[f64]) -> VarianceRatioResult {
    let nan = VarianceRatioResult {
        ratio: f64::NAN,
        std_ratio: f64::NAN,
        pvalue_two_sided: f64::NAN,
    };
    if current.len() < 2 || reference.len() < 2 || has_nan(current) || has_nan(reference) {
        return nan;
    }
    let vr = var1(reference);
    if vr <= 0.0 {
        return nan;
    }
    let ratio = var1(current) / vr;
    let pvalue_two_sided = FisherSnedecor::new((current.len() - 1) as f64, (reference.len() - 1) as f64)
        .map_or(f64::NAN, |d| (2.0 * d.cdf(ratio).min(d.sf(ratio))).min(1.0));
    VarianceRatioResult {
        ratio,
        std_ratio: ratio.sqrt(),
        pvalue_two_sided,
    }
}

// Exact values (0, 1, sums of exact terms) are the point of several checks here.
#[allow(clippy::float_cmp)]
#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: enumerate every arrangement of m a's and n b's and count those whose
    /// statistic reaches d. Checks the lattice walk on sizes where this is feasible.
    fn brute_force_sf(m: usize, n: usize, bound: i64) -> f64 {
        let total = m + n;
        let mut hits = 0u64;
        let mut count = 0u64;
        for mask in 0u32..(1u32 << total) {
            if mask.count_ones() as usize != m {
                continue;
            }
            count += 1;
            let (mut i, mut j) = (0i64, 0i64);
            let mut hit = false;
            for bit in 0..total {
                if mask & (1 << bit) != 0 {
                    i += 1;
                } else {
                    j += 1;
                }
                if (i * n as i64 - j * m as i64).abs() >= bound {
                    hit = true;
                }
            }
            if hit {
                hits += 1;
            }
        }
        hits as f64 / count as f64
    }

    #[test]
    fn exact_sf_matches_enumeration() {
        for &(m, n) in &[(3usize, 5usize), (4, 4), (6, 3), (7, 5), (8, 6)] {
            for bound in 1..=(m * n) as i64 {
                let want = brute_force_sf(m, n, bound);
                let got = exact_two_sided_sf(m as u64, n as u64, bound as u64);
                assert!(
                    (want - got).abs() < 1e-13,
                    "m={m} n={n} bound={bound}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn ks_statistic_handles_ties_across_samples() {
        // Identical samples: every tie is passed in both before comparing, so D = 0, p = 1.
        let a = [1.0, 2.0, 2.0, 3.0];
        let r = ks_2samp(&a, &a);
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.pvalue, 1.0);
        // Fully separated samples: D = 1 and p = 2 / C(m+n, m).
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0]);
        assert_eq!(r.statistic, 1.0);
        assert!((r.pvalue - 2.0 / 10.0).abs() < 1e-15, "{}", r.pvalue);
    }

    #[test]
    fn degenerate_inputs_give_nan() {
        assert!(ks_2samp(&[], &[1.0]).pvalue.is_nan());
        assert!(welch_t(&[1.0, 1.0], &[2.0, 2.0]).pvalue.is_nan());
        assert!(ljung_box(&[1.0; 20], 5).pvalue.is_nan());
        assert!(variance_ratio_f(&[1.0, 2.0], &[3.0, 3.0])
            .pvalue_two_sided
            .is_nan());
        assert!(levene(&[1.0, f64::NAN], &[1.0, 2.0], LeveneCenter::Median)
            .pvalue
            .is_nan());
    }
}

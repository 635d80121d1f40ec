//! The shock detector behind the drift alarm: two CUSUMs on log-returns standardized by a long,
//! robust baseline, one for volatility and one for the level (a run of moves one way).
//!
//! With `r` the log-returns known at the evaluation date, the *watch* window is the last
//! `drift_watch_window` of them and the *baseline* the `drift_baseline_window` before it (a year
//! by default: a volatile month before a shock does not raise the yardstick the shock is
//! measured with, as the 120-day reference window of the two-sample tests does). From the
//! baseline: location `m` = median, scale `s` = 1.4826 x median absolute deviation (robust:
//! a few wild days in the baseline do not inflate it). Each return becomes
//! `z = clip((r - m) / s, +-drift_clip_sd)` (one bad tick cannot fire the alarm on its own),
//! and `q` = the mean of `z^2` over the baseline, so that `z^2 / q` averages 1 there, heavy
//! tails included.
//!
//! Over the watch window, starting from 0 at its first return:
//! - volatility: `V_t = max(0, V_{t-1} + z_t^2 / q - 1 - drift_volatility_k)`;
//! - level: `U_t = max(0, U_{t-1} + z_t / sqrt(q) - drift_level_k)` and
//!   `D_t = max(0, D_{t-1} - z_t / sqrt(q) - drift_level_k)`, statistic `max(U, D)`.
//!
//! The alarm fires when `V > drift_volatility_threshold` or `max(U, D) > drift_level_threshold`
//! on any of the last `drift_hold_days` returns (the statistics reported are those maxima).
//! The hold matters for the weekly job: a burst whose CUSUM crosses on Tuesday and drains by
//! Friday is still an alarm at Sunday's check. Restarting at the watch window's start keeps it
//! stateless (the same answer from `status --check --as-of D`, `run` on day D and `replay`) and
//! ends an alarm at most `drift_watch_window` business days after the market calms.
//!
//! Each day adds `z^2 / q - 1` minus the allowance `k`: the likelihood ratio of a normal
//! variance change from 1 to `rho^2` subtracts `2 ln(rho) rho^2 / (rho^2 - 1) - 1` per day,
//! 0.46 for `rho = 1.5` and 1.96 for `rho = 4`. The default 2 drains a calm day's noise fast,
//! so a slow rise in volatility does not fire it, only a burst of large moves (or a few very
//! large ones): that is what the labeled-shock benchmark (`cargo bench --bench shocks`)
//! traded off against the share of weekly checks that fire.
//!
//! Severity grows with how far past its threshold the statistic is (ratio `x` = statistic /
//! threshold of the component furthest past) and with the watch window's volatility against
//! the baseline's (`sqrt(mean(z^2) / q)`), the rule of thumb of 1.5x a warning and 2x high:
//! LOW when fired, MEDIUM when `x >= 1.5` or the volatility ratio `> 1.5`, HIGH when `x >= 2`
//! or the ratio `> 2`; NONE when not fired.

use chrono::NaiveDate;
use serde::Serialize;

use super::drift::LogReturn;
use super::stats::median;
use crate::config::TriggerSettings;
use crate::domain::Severity;

/// Which CUSUM decides the detector's headline statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShockComponent {
    Volatility,
    Level,
}

impl ShockComponent {
    pub fn as_str(self) -> &'static str {
        match self {
            ShockComponent::Volatility => "volatility",
            ShockComponent::Level => "level",
        }
    }
}

/// The detector's figures at the evaluation date.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShockDetector {
    /// The statistic of the component furthest past its threshold (relative to it) ...
    pub statistic: f64,
    /// ... and that component's threshold.
    pub threshold: f64,
    pub component: ShockComponent,
    pub severity: Severity,
    pub fired: bool,
    /// Volatility CUSUM `V` (its maximum over the hold days) and its threshold.
    pub volatility_statistic: f64,
    pub volatility_threshold: f64,
    /// Level CUSUM `max(U, D)` (its maximum over the hold days) and its threshold;
    /// `level_direction` is +1 when the upward (peso weakening) sum made that maximum, -1 when
    /// the downward one did.
    pub level_statistic: f64,
    pub level_threshold: f64,
    pub level_direction: i8,
    /// Volatility of the watch window relative to the baseline: `sqrt(mean(z^2) / q)`.
    pub volatility_ratio: f64,
    /// Baseline median and robust scale (1.4826 MAD) of the log-returns, and `q`.
    pub baseline_location: f64,
    pub baseline_scale: f64,
    pub baseline_mean_square: f64,
    pub baseline_start: NaiveDate,
    pub watch_start: NaiveDate,
    pub watch_end: NaiveDate,
}

/// Why the detector could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShockUnavailable {
    /// Fewer log-returns than baseline + watch window.
    TooShort { have: usize, need: usize },
    /// The baseline does not vary (no scale to standardize with).
    FlatBaseline,
}

impl std::fmt::Display for ShockUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShockUnavailable::TooShort { have, need } => {
                write!(f, "insufficient data: {have} log-returns, {need} needed")
            }
            ShockUnavailable::FlatBaseline => {
                f.write_str("the baseline log-returns do not vary: nothing to standardize by")
            }
        }
    }
}

/// Robust location and scale of the baseline: median and 1.4826 x MAD, falling back to the
/// standard deviation when more than half the returns are equal (MAD 0).
fn robust_scale(x: &[f64]) -> (f64, f64) {
    let m = median(x);
    let dev: Vec<f64> = x.iter().map(|v| (v - m).abs()).collect();
    let mad = 1.4826 * median(&dev);
    if mad > 0.0 {
        return (m, mad);
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Runs the detector on `returns` (all log-returns known at the evaluation date, oldest first).
pub fn detect(returns: &[LogReturn], settings: &TriggerSettings) -> Result<ShockDetector, ShockUnavailable> {
    let (nb, nw) = (settings.drift_baseline_window, settings.drift_watch_window);
    let need = nb + nw;
    if returns.len() < need || nw == 0 || nb == 0 {
        return Err(ShockUnavailable::TooShort {
            have: returns.len(),
            need,
        });
    }
    let end = returns.len();
    let base: Vec<f64> = returns[end - need..end - nw].iter().map(|r| r.value).collect();
    let (loc, scale) = robust_scale(&base);
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(ShockUnavailable::FlatBaseline);
    }
    let c = settings.drift_clip_sd;
    let z = |r: f64| ((r - loc) / scale).clamp(-c, c);
    let q = base.iter().map(|r| z(*r).powi(2)).sum::<f64>() / nb as f64;
    let root_q = q.sqrt();
    let (kv, kl) = (settings.drift_volatility_k, settings.drift_level_k);
    let hold_from = nw.saturating_sub(settings.drift_hold_days.max(1));
    let (mut v, mut up, mut down, mut sum_sq) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut held_v, mut level, mut level_direction) = (0.0f64, 0.0f64, 1i8);
    for (i, r) in returns[end - nw..].iter().enumerate() {
        let zt = z(r.value);
        v = (v + zt * zt / q - 1.0 - kv).max(0.0);
        up = (up + zt / root_q - kl).max(0.0);
        down = (down - zt / root_q - kl).max(0.0);
        sum_sq += zt * zt;
        if i >= hold_from {
            held_v = held_v.max(v);
            if up.max(down) > level {
                level = up.max(down);
                level_direction = if up >= down { 1 } else { -1 };
            }
        }
    }
    let v = held_v;
    let (hv, hl) = (
        settings.drift_volatility_threshold,
        settings.drift_level_threshold,
    );
    let volatility_ratio = (sum_sq / nw as f64 / q).sqrt();
    let (component, statistic, threshold) = if v / hv >= level / hl {
        (ShockComponent::Volatility, v, hv)
    } else {
        (ShockComponent::Level, level, hl)
    };
    let fired = statistic > threshold;
    Ok(ShockDetector {
        statistic,
        threshold,
        component,
        severity: severity(fired, statistic / threshold, volatility_ratio),
        fired,
        volatility_statistic: v,
        volatility_threshold: hv,
        level_statistic: level,
        level_threshold: hl,
        level_direction,
        volatility_ratio,
        baseline_location: loc,
        baseline_scale: scale,
        baseline_mean_square: q,
        baseline_start: returns[end - need].date,
        watch_start: returns[end - nw].date,
        watch_end: returns[end - 1].date,
    })
}

/// Severity of a detection: how far past the threshold (`excess` = statistic / threshold) and
/// the volatility rule of thumb (1.5x a warning, 2x high).
pub fn severity(fired: bool, excess: f64, volatility_ratio: f64) -> Severity {
    if !fired {
        Severity::None
    } else if excess >= 2.0 || volatility_ratio > 2.0 {
        Severity::High
    } else if excess >= 1.5 || volatility_ratio > 1.5 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn returns(values: &[f64]) -> Vec<LogReturn> {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| LogReturn {
                date: start + chrono::Duration::days(i as i64),
                value: *v,
            })
            .collect()
    }

    fn small_settings() -> TriggerSettings {
        TriggerSettings {
            drift_baseline_window: 10,
            drift_watch_window: 5,
            drift_hold_days: 2,
            drift_clip_sd: 4.0,
            drift_volatility_k: 1.5,
            drift_volatility_threshold: 7.0,
            drift_level_k: 0.5,
            drift_level_threshold: 6.0,
            ..TriggerSettings::default()
        }
    }

    /// A 16-return series whose figures were computed independently (python3, plain floats,
    /// the formulas of the module docs): the first return lies before the baseline; 10
    /// baseline returns, 5 watch returns with a volatility burst and one return past the clip.
    /// Tolerance 1e-9 absolute (the statistics are of order 1-20).
    #[test]
    fn statistics_match_a_hand_computation() {
        let r = [
            0.5, // not used: before the baseline
            0.001, -0.002, 0.0015, -0.0005, 0.003, -0.001, 0.0, 0.002, -0.0025, 0.0008, // baseline
            0.004, -0.003, 0.0035, 0.009, -0.002, // watch
        ];
        let d = detect(&returns(&r), &small_settings()).unwrap();
        // Baseline median 0.0004; absolute deviations sorted 0.0004 0.0004 0.0006 0.0009
        // 0.0011 | 0.0014 0.0016 0.0024 0.0026 0.0029: MAD 0.00125, scale 0.00185325.
        // z of the watch: 1.9425, -1.8346, 1.6727, 4 (clipped from 4.64), -1.2950;
        // q = 0.819616; V: 2.1039, 3.7105, 4.6243, 21.6457, 21.1919; max(U, D): 1.6457
        // (U), 1.5265 (D), 1.3477 (U), 5.2660 (U), 3.3355 (U). Held over the last 2 days:
        // V 21.6457, level 5.2660.
        assert!((d.baseline_location - 0.0004).abs() < 1e-15);
        assert!((d.baseline_scale - 0.001_853_25).abs() < 1e-15);
        let tol = 1e-9;
        let close = |ours: f64, hand: f64| assert!((ours - hand).abs() < tol, "{ours} vs {hand}");
        close(d.baseline_mean_square, 0.819_615_912_770_156_7);
        close(d.volatility_statistic, 21.645_672_824_156_296);
        close(d.level_statistic, 5.265_957_787_778_64);
        close(d.volatility_ratio, 2.595_837_205_852_771);
        assert_eq!(d.level_direction, 1);
        assert_eq!(d.component, ShockComponent::Volatility);
        assert!(d.fired);
        assert_eq!(d.severity, Severity::High);
        assert_eq!(d.statistic.to_bits(), d.volatility_statistic.to_bits());
        assert!((d.threshold - 7.0).abs() < 1e-15);
        assert_eq!(d.watch_start, returns(&r)[11].date);
        assert_eq!(d.baseline_start, returns(&r)[1].date);
    }

    #[test]
    fn too_short_and_flat_baselines_are_named() {
        let s = small_settings();
        assert_eq!(
            detect(&returns(&[0.001; 14]), &s),
            Err(ShockUnavailable::TooShort { have: 14, need: 15 })
        );
        assert_eq!(
            detect(&returns(&[0.0; 15]), &s),
            Err(ShockUnavailable::FlatBaseline)
        );
        // Over half the baseline equal: MAD 0, the standard deviation steps in.
        let mut r = vec![0.0; 15];
        r[0] = 0.01;
        r[1] = -0.01;
        let d = detect(&returns(&r), &s).unwrap();
        assert!((d.baseline_scale - (0.0002f64 / 10.0).sqrt()).abs() < 1e-15);
        assert!(!d.fired && d.severity == Severity::None);
    }

    #[test]
    fn severity_follows_the_excess_and_the_volatility_rule_of_thumb() {
        assert_eq!(severity(false, 3.0, 3.0), Severity::None);
        assert_eq!(severity(true, 1.1, 1.2), Severity::Low);
        assert_eq!(severity(true, 1.6, 1.2), Severity::Medium);
        assert_eq!(severity(true, 1.1, 1.6), Severity::Medium);
        assert_eq!(severity(true, 2.0, 1.0), Severity::High);
        assert_eq!(severity(true, 1.1, 2.1), Severity::High);
    }
}

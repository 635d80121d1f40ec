//! Hindcasts: what a config would have forecast on past origins, scored against what happened.
//! The origins whose targets fall after a date, and the step-h errors of one config on them.
//! Pure given the model: forwards go through the shared [`ForwardCache`].

use chrono::NaiveDate;

use crate::domain::{Horizon, InferenceParams};
use crate::forecast::QuantileModel;
use crate::policy::search::ForwardCache;
use crate::series::Series;
use crate::triggers::ErrorPoint;

impl From<&crate::policy::backtest::ErrorPoint> for ErrorPoint {
    /// A backtest's error as the performance alarm reads it: dated by target, with the random
    /// walk's error on the same target.
    fn from(p: &crate::policy::backtest::ErrorPoint) -> ErrorPoint {
        ErrorPoint {
            target_date: p.target_date,
            error: p.error,
            random_walk_error: p.random_walk - p.actual,
        }
    }
}

/// Origins whose step-`h` target lies after `since` (and at or before the series end), with
/// the origin and all `h` next values observed: the forecasts production would have made and
/// could score.
pub fn origins_with_targets_after(series: &Series, h: usize, since: NaiveDate) -> Vec<usize> {
    (0..series.len().saturating_sub(h))
        .filter(|&i| {
            series.dates[i + h] > since
                && !series.values[i].is_nan()
                && series.values[i + 1..=i + h].iter().all(|v| !v.is_nan())
        })
        .collect()
}

/// The step-`h` errors of `params` on `origins`, dated by target.
pub fn step_errors(
    model: &dyn QuantileModel,
    series: &Series,
    h: Horizon,
    params: &InferenceParams,
    origins: &[usize],
    cache: &mut ForwardCache,
) -> anyhow::Result<Vec<ErrorPoint>> {
    if origins.is_empty() {
        return Ok(Vec::new());
    }
    let eval = crate::policy::search::evaluate_params(model, series, h, params, origins, cache, &mut |_| {})?;
    Ok(eval
        .points
        .iter()
        .filter(|p| p.step == h.steps())
        .map(ErrorPoint::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: Vec<f64>) -> Series {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let dates = (0..values.len())
            .map(|i| start + chrono::Duration::days(i as i64))
            .collect();
        Series { dates, values }
    }

    #[test]
    fn origins_need_a_later_target_and_observed_values() {
        let s = series(vec![1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0, 7.0]);
        let day = |i: i64| NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(i);
        // h = 2: origin i needs i+1, i+2 observed; target date i+2 after day 2.
        // i=0: targets 1,2 (2 is NaN) no; i=1: value 2 NaN no; i=2 origin NaN no;
        // i=3: targets 4,5, date 5 > 2 yes; i=4: yes. i=5 has no i+2.
        assert_eq!(origins_with_targets_after(&s, 2, day(2)), vec![3, 4]);
        // Target must be strictly after `since`.
        assert_eq!(origins_with_targets_after(&s, 2, day(5)), vec![4]);
        assert!(origins_with_targets_after(&s, 2, day(6)).is_empty());
        assert!(origins_with_targets_after(&s, 10, day(0)).is_empty());
    }
}

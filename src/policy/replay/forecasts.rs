//! The forecasts a replay makes: each config's summarized forecast paths at business-day
//! origins, and the daily forecasts of the configs in effect (the tracked predictions later
//! runs read).

use chrono::NaiveDate;

use super::ReplayInput;
use crate::domain::InferenceParams;
use crate::forecast::{self, QuantileForecast};
use crate::forecaster_config::ForecasterConfig;
use crate::policy::search::ForwardCache;
use crate::series::{Prediction, Series};

/// Business-day origins of the full series with dates in `[from, to]` whose step-`h` target
/// is observed (and the origin too).
pub(super) fn scored_origins(series: &Series, h: usize, from: NaiveDate, to: NaiveDate) -> Vec<usize> {
    let start = series.dates.partition_point(|x| *x < from);
    let end = series.dates.partition_point(|x| *x <= to);
    (start..end)
        .filter(|&i| i + h < series.len() && !series.values[i].is_nan() && !series.values[i + h].is_nan())
        .collect()
}

/// One step's forecast: (mean, CI80, CI95, the 9 adjusted levels).
pub(super) type StepForecast = (f64, [f64; 2], [f64; 2], [f64; 9]);

/// The forecasts of `params` at each origin for the 0-based steps in `steps` (of a forward
/// for `h` steps); only those steps are summarized.
pub(super) fn forecasts_at(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    params: &InferenceParams,
    h: usize,
    origins: &[usize],
    steps: std::ops::Range<usize>,
) -> anyhow::Result<Vec<Vec<StepForecast>>> {
    if origins.is_empty() {
        return Ok(Vec::new());
    }
    let raw = cache.forward(
        input.model,
        input.series,
        origins,
        params.context_length,
        h,
        &mut |_| {},
    )?;
    raw.forecasts
        .iter()
        .map(|f| {
            let part = QuantileForecast {
                values: f.values.iter().map(|row| row[steps.clone()].to_vec()).collect(),
            };
            let s = forecast::summarize(&part, params.num_samples, params.temperature)?;
            Ok((0..steps.len())
                .map(|t| {
                    (
                        s.mean[t],
                        s.ci80[t],
                        s.ci95[t],
                        std::array::from_fn(|k| s.adjusted[k][t]),
                    )
                })
                .collect())
        })
        .collect()
}

/// The forecast path of `params` at each origin: steps 1..=h.
pub(super) fn path_forecasts(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    params: &InferenceParams,
    h: usize,
    origins: &[usize],
) -> anyhow::Result<Vec<Vec<StepForecast>>> {
    forecasts_at(input, cache, params, h, origins, 0..h)
}

/// The step-`h` forecast of `params` at each origin (what production tracks).
pub(super) fn step_forecasts(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    params: &InferenceParams,
    h: usize,
    origins: &[usize],
) -> anyhow::Result<Vec<StepForecast>> {
    Ok(forecasts_at(input, cache, params, h, origins, h - 1..h)?
        .into_iter()
        .map(|mut step| step.pop().expect("one step"))
        .collect())
}

/// The forecasts `cfg` makes on the business days after `after` up to `until`, as tracked
/// predictions (the actual filled in; callers hide it until the target date is past).
pub(super) fn daily_forecasts(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    cfg: &ForecasterConfig,
    after: NaiveDate,
    until: NaiveDate,
    out: &mut Vec<Prediction>,
) -> anyhow::Result<()> {
    let h = cfg.horizon.steps();
    let Some(from) = after.succ_opt() else {
        return Ok(());
    };
    let origins = scored_origins(input.series, h, from, until);
    let forecasts = step_forecasts(input, cache, &cfg.params(), h, &origins)?;
    for (&i, (mean, _, ci95, _)) in origins.iter().zip(forecasts) {
        out.push(Prediction {
            horizon: cfg.horizon.label(),
            forecast_date: input.series.dates[i],
            target_date: input.series.dates[i + h],
            prediction: mean,
            actual: Some(input.series.values[i + h]),
            confidence_low: ci95[0],
            confidence_high: ci95[1],
            model_version: input.model_id.to_string(),
        });
    }
    Ok(())
}

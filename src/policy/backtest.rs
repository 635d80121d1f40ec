//! Rolling-origin backtest: the origins and their split into selection and confirmation, one
//! batched forward per context length, and the metrics of one (num_samples, temperature)
//! config derived from it (pure; no I/O, but the timing helpers read a monotonic clock).
//!
//! # Origins
//! An origin is a row index `i` whose next `h` values are all observed and that has an
//! observed value at or before it (so the random walk has something to repeat). Origins lie
//! on a fixed lattice, every `k = search.origin_spacing` rows counted from the series' first
//! row (`i % k == 0`): when the series grows by a week the same origins recur, so their
//! forecasts are reused, and `k` apart the forecasts of neighbouring origins overlap in
//! `h / k` targets instead of `h`. [`split_origins`] takes, newest first,
//! - the *confirmation* origins: the last `search.validation_window` lattice origins; the
//!   deploy decision is made on these only;
//! - the *selection* origins: the `search.selection_origins` lattice origins before them
//!   whose targets all precede the first confirmation target (`i + h <= c_first`); the search
//!   scores its configs on these only, so nothing a search chose from has been seen by the
//!   confirmation.
//!
//! At each origin the context is the series up to and including the origin, cut to the
//! config's context length; the forecast covers steps `1..=h`. Errors (`forecast - actual`,
//! the forecast being the `mean` of [`crate::forecast`]) are pooled over all steps of all
//! origins.
//!
//! The model output depends only on the context, so [`forward`] runs once per context length
//! and [`evaluate`] derives any number of configs from its [`RawForecasts`].

use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use chrono::NaiveDate;
use serde::Serialize;

use crate::config::SearchSettings;
use crate::domain::InferenceParams;
use crate::exit::invalid;
use crate::forecast::{summarize_with, DrawPlan, QuantileForecast, QuantileModel};
use crate::metrics;
use crate::series::Series;

/// The backtest origins of one horizon, each part ascending (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginSplit {
    pub spacing: usize,
    pub selection: Vec<usize>,
    pub confirmation: Vec<usize>,
}

/// Where one part of the origins lies, for the reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OriginSpan {
    pub origins: usize,
    pub first_origin: NaiveDate,
    pub last_origin: NaiveDate,
    /// The last target date scored (last origin + h).
    pub last_target: NaiveDate,
}

impl OriginSplit {
    /// Selection then confirmation origins, ascending.
    pub fn all(&self) -> Vec<usize> {
        self.selection.iter().chain(&self.confirmation).copied().collect()
    }

    pub fn selection_span(&self, series: &Series, h: usize) -> OriginSpan {
        span(&self.selection, series, h)
    }

    pub fn confirmation_span(&self, series: &Series, h: usize) -> OriginSpan {
        span(&self.confirmation, series, h)
    }
}

fn span(origins: &[usize], series: &Series, h: usize) -> OriginSpan {
    let (first, last) = (origins[0], origins[origins.len() - 1]);
    OriginSpan {
        origins: origins.len(),
        first_origin: series.dates[first],
        last_origin: series.dates[last],
        last_target: series.dates[last + h],
    }
}

/// Rows of the series from the first selection origin to the last confirmation target, at
/// most (gaps in the series need more).
pub fn rows_spanned(settings: &SearchSettings, h: usize) -> usize {
    let k = settings.origin_spacing.max(1);
    let gap = h.div_ceil(k) * k;
    (settings.selection_origins + settings.validation_window - 2) * k + gap + h + (k - 1)
}

/// The significance tests' horizon in origins for `h`-step forecasts at origins `spacing`
/// rows apart: origins up to `ceil(h / spacing) - 1` apart forecast overlapping targets.
pub fn test_horizon(h: usize, spacing: usize) -> usize {
    h.div_ceil(spacing)
}

/// Splits the lattice origins of horizon `h` into selection and confirmation origins (see the
/// module docs), with `settings.selection_origins` and `settings.validation_window` of them.
pub fn split_origins(series: &Series, h: usize, settings: &SearchSettings) -> anyhow::Result<OriginSplit> {
    ensure!(h >= 1, "the horizon must be at least 1 step");
    let k = settings.origin_spacing;
    ensure!(k >= 1, "search.origin_spacing must be at least 1");
    let (n_sel, n_conf) = (settings.selection_origins, settings.validation_window);
    ensure!(
        n_sel >= 1 && n_conf >= 1,
        "search.selection_origins and search.validation_window must be at least 1"
    );
    let values = &series.values;
    let Some(first_observed) = values.iter().position(|v| !v.is_nan()) else {
        return Err(invalid("the series has no observed value; check the series file"));
    };
    let valid = |i: usize| i >= first_observed && values[i + 1..=i + h].iter().all(|v| !v.is_nan());
    // Lattice points from `top` downwards, valid ones only, at most `count`.
    let take = |top: usize, count: usize| -> Vec<usize> {
        let mut out: Vec<usize> = (0..=top / k)
            .rev()
            .map(|j| j * k)
            .filter(|&i| valid(i))
            .take(count)
            .collect();
        out.reverse();
        out
    };
    let short = |what: &str, found: usize, wanted: usize, key: &str| {
        invalid(format!(
            "only {found} {what} origins (every {k} rows, next {h} values observed) fit in the series, \
             {key} asks for {wanted}; lower it or search.origin_spacing, or use a longer series"
        ))
    };
    if values.len() <= h {
        return Err(short("confirmation", 0, n_conf, "search.validation_window"));
    }
    let confirmation = take(values.len() - 1 - h, n_conf);
    if confirmation.len() < n_conf {
        return Err(short(
            "confirmation",
            confirmation.len(),
            n_conf,
            "search.validation_window",
        ));
    }
    // Every selection target (i + 1 ..= i + h) precedes the first confirmation target.
    let selection = match confirmation[0].checked_sub(h) {
        Some(top) => take(top, n_sel),
        None => Vec::new(),
    };
    if selection.len() < n_sel {
        return Err(short(
            "selection",
            selection.len(),
            n_sel,
            "search.selection_origins",
        ));
    }
    Ok(OriginSplit {
        spacing: k,
        selection,
        confirmation,
    })
}

/// The context at `origin`: the series up to and including it, cut to the last
/// `context_length` values.
pub fn context(values: &[f64], origin: usize, context_length: usize) -> &[f64] {
    let end = origin + 1;
    &values[end.saturating_sub(context_length)..end]
}

/// The model's raw forecasts at every origin for one context length.
#[derive(Clone, Debug, PartialEq)]
pub struct RawForecasts {
    pub context_length: usize,
    pub origins: Vec<usize>,
    /// One per origin, with at least the horizon's steps (a cached longer forecast may carry
    /// more; [`evaluate`] uses the first `h`).
    pub forecasts: Vec<QuantileForecast>,
}

/// ONE batched `predict` over the contexts of all `origins` at `context_length`.
pub fn forward(
    model: &dyn QuantileModel,
    values: &[f64],
    origins: &[usize],
    context_length: usize,
    prediction_length: usize,
) -> anyhow::Result<RawForecasts> {
    let contexts: Vec<&[f64]> = origins
        .iter()
        .map(|&o| context(values, o, context_length))
        .collect();
    let forecasts = model.predict(&contexts, prediction_length).with_context(|| {
        format!(
            "forecasting {} origins at context length {context_length}",
            origins.len()
        )
    })?;
    check_batch(&forecasts, origins.len(), prediction_length)?;
    Ok(RawForecasts {
        context_length,
        origins: origins.to_vec(),
        forecasts,
    })
}

/// A model that returns the wrong number of forecasts or steps is a bug worth a clear error.
pub(crate) fn check_batch(forecasts: &[QuantileForecast], series: usize, steps: usize) -> anyhow::Result<()> {
    ensure!(
        forecasts.len() == series,
        "the model returned {} forecasts for {series} contexts",
        forecasts.len()
    );
    if let Some(f) = forecasts.iter().find(|f| f.steps() < steps) {
        bail!("the model returned {} steps, {steps} were asked for", f.steps());
    }
    Ok(())
}

/// The metrics of one config over the backtest (serialized in the reports).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    pub rmse: f64,
    pub mae: f64,
    /// Percent.
    pub mape: f64,
    /// Mean of `forecast - actual` (CLP).
    pub bias: f64,
    /// Standard deviation of the errors, ddof 0 (see [`metrics::error_std`]).
    pub error_std: f64,
    pub coverage_80: f64,
    pub coverage_95: f64,
    pub mean_ci95_width: f64,
    /// Weighted quantile loss over the 9 levels (see [`metrics::wql`]).
    pub wql: f64,
    /// Mean interval (Winkler) score of the CI95, alpha 0.05 (see [`metrics::interval_score`]).
    pub interval_score_95: f64,
    /// Milliseconds for one forecast at this config (model + post-processing), measured
    /// separately from the backtest (see `search`).
    pub inference_ms: f64,
    /// Random walk (last observed value at the origin) on the same origins and steps.
    pub rw_rmse: f64,
    pub rw_mape: f64,
    pub origins: usize,
    pub errors: usize,
}

/// One pooled error of the backtest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorPoint {
    /// Index in the series of the origin and of the target (`origin + step`).
    pub origin: usize,
    pub target: usize,
    pub step: usize,
    pub origin_date: NaiveDate,
    pub target_date: NaiveDate,
    /// The point forecast (`mean`).
    pub forecast: f64,
    pub actual: f64,
    /// `forecast - actual`.
    pub error: f64,
    pub ci95: [f64; 2],
    /// The random walk's forecast: the last observed value at or before the origin.
    pub random_walk: f64,
}

/// A config's backtest: its metrics and every pooled error (for the Diebold-Mariano test,
/// the performance-trigger replay and the backtest picture).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub params: InferenceParams,
    pub metrics: Metrics,
    #[serde(skip)]
    pub points: Vec<ErrorPoint>,
}

/// The last observed value at or before `origin`.
fn last_observed(values: &[f64], origin: usize) -> Option<f64> {
    values[..=origin].iter().rev().copied().find(|v| !v.is_nan())
}

/// Derives one config's metrics from the raw forecasts of its context length. `raw` must
/// hold at least `h` steps per origin; `inference_ms` is the separately measured time.
pub fn evaluate(
    series: &Series,
    raw: &RawForecasts,
    h: usize,
    num_samples: usize,
    temperature: f64,
    inference_ms: f64,
) -> anyhow::Result<Evaluation> {
    evaluate_with(
        series,
        raw,
        h,
        &DrawPlan::new(num_samples),
        temperature,
        inference_ms,
    )
}

/// [`evaluate`] with a precomputed [`DrawPlan`].
pub fn evaluate_with(
    series: &Series,
    raw: &RawForecasts,
    h: usize,
    plan: &DrawPlan,
    temperature: f64,
    inference_ms: f64,
) -> anyhow::Result<Evaluation> {
    ensure!(h >= 1, "the horizon must be at least 1 step");
    ensure!(!raw.origins.is_empty(), "a backtest needs at least one origin");
    check_batch(&raw.forecasts, raw.origins.len(), h)?;
    let values = &series.values;
    let total = raw.origins.len() * h;
    let mut points = Vec::with_capacity(total);
    let mut intervals80 = Vec::with_capacity(total);
    let mut quantiles = Vec::with_capacity(total);
    for (&origin, full) in raw.origins.iter().zip(&raw.forecasts) {
        ensure!(
            origin + h < values.len(),
            "origin {origin} has no {h} values after it"
        );
        let rw = last_observed(values, origin)
            .with_context(|| format!("origin {origin} has no observed value at or before it"))?;
        // Summarize only the steps we score (a cached forecast may be longer).
        let cut = QuantileForecast {
            values: full.values.iter().map(|row| row[..h].to_vec()).collect(),
        };
        let summary = summarize_with(&cut, plan, temperature)?;
        for s in 0..h {
            let target = origin + s + 1;
            let actual = values[target];
            if actual.is_nan() {
                bail!(
                    "the actual at {} (origin {origin}) is missing",
                    series.dates[target]
                );
            }
            if actual == 0.0 {
                return Err(invalid(format!(
                    "the series value at {} is 0, which makes MAPE undefined; fix the series",
                    series.dates[target]
                )));
            }
            let forecast = summary.mean[s];
            points.push(ErrorPoint {
                origin,
                target,
                step: s + 1,
                origin_date: series.dates[origin],
                target_date: series.dates[target],
                forecast,
                actual,
                error: forecast - actual,
                ci95: summary.ci95[s],
                random_walk: rw,
            });
            intervals80.push(summary.ci80[s]);
            quantiles.push(std::array::from_fn::<f64, 9, _>(|k| summary.adjusted[k][s]));
        }
    }
    let errors: Vec<f64> = points.iter().map(|p| p.error).collect();
    let forecasts: Vec<f64> = points.iter().map(|p| p.forecast).collect();
    let actuals: Vec<f64> = points.iter().map(|p| p.actual).collect();
    let intervals95: Vec<[f64; 2]> = points.iter().map(|p| p.ci95).collect();
    let rw_forecasts: Vec<f64> = points.iter().map(|p| p.random_walk).collect();
    let rw_errors: Vec<f64> = rw_forecasts.iter().zip(&actuals).map(|(f, a)| f - a).collect();
    let metrics = Metrics {
        rmse: metrics::rmse(&errors),
        mae: metrics::mae(&errors),
        mape: metrics::mape(&forecasts, &actuals)?,
        bias: metrics::bias(&errors),
        error_std: metrics::error_std(&errors),
        coverage_80: metrics::coverage(&actuals, &intervals80),
        coverage_95: metrics::coverage(&actuals, &intervals95),
        mean_ci95_width: metrics::mean_width(&intervals95),
        wql: metrics::wql(&actuals, &quantiles)?,
        interval_score_95: metrics::interval_score(&actuals, &intervals95, 0.05),
        inference_ms,
        rw_rmse: metrics::rmse(&rw_errors),
        rw_mape: metrics::mape(&rw_forecasts, &actuals)?,
        origins: raw.origins.len(),
        errors: points.len(),
    };
    Ok(Evaluation {
        params: InferenceParams {
            context_length: raw.context_length,
            num_samples: plan.num_samples(),
            temperature,
        },
        metrics,
        points,
    })
}

/// Median of `xs` (sorted in place). NaN when empty.
pub(crate) fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => 0.5 * (xs[n / 2 - 1] + xs[n / 2]),
    }
}

/// Median wall time (ms) over `runs` of one single-series forward of `context` for `h`
/// steps. The forward does not depend on `num_samples` or `temperature`.
pub fn time_forward_ms(
    model: &dyn QuantileModel,
    context: &[f64],
    h: usize,
    runs: usize,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let out = model.predict(&[context], h)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        check_batch(&out, 1, h)?;
    }
    Ok(median(&mut times))
}

/// Median wall time (ms) over `runs` of the post-processing of one forecast at a config.
pub fn time_postprocess_ms(
    raw: &QuantileForecast,
    num_samples: usize,
    temperature: f64,
    runs: usize,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        // The plan is built inside the timed region: a forecaster builds it per forecast.
        let summary = summarize_with(raw, &DrawPlan::new(num_samples), temperature)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(summary);
    }
    Ok(median(&mut times))
}

// Exact float equality is what several of these tests assert (values that must pass through
// untouched), so the lint that flags it is off here.
#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::forecast::LEVELS;

    fn series(values: Vec<f64>) -> Series {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        Series {
            dates: (0..values.len())
                .map(|i| start + chrono::Days::new(i as u64))
                .collect(),
            values,
        }
    }

    /// Forecasts the context's last value +- fixed offsets at every step: the point forecast
    /// is the last value exactly (symmetric quantiles), so errors equal the random walk's.
    struct LastValue;

    impl QuantileModel for LastValue {
        fn max_context(&self) -> usize {
            2048
        }
        fn predict(&self, contexts: &[&[f64]], h: usize) -> anyhow::Result<Vec<QuantileForecast>> {
            Ok(contexts
                .iter()
                .map(|c| {
                    let last = c.iter().rev().copied().find(|v| !v.is_nan()).unwrap_or(0.0);
                    QuantileForecast {
                        values: LEVELS.iter().map(|a| vec![last + (a - 0.5) * 10.0; h]).collect(),
                    }
                })
                .collect())
        }
    }

    fn split_settings(selection: usize, confirmation: usize, spacing: usize) -> SearchSettings {
        SearchSettings {
            selection_origins: selection,
            validation_window: confirmation,
            origin_spacing: spacing,
            ..SearchSettings::default()
        }
    }

    #[test]
    fn origins_lie_on_the_lattice_and_the_parts_do_not_overlap() {
        // 40 rows, h = 3, every 2 rows: the last origin with 3 values after it is 36.
        let s = series((0..40).map(|i| 100.0 + f64::from(i)).collect());
        let split = split_origins(&s, 3, &split_settings(4, 3, 2)).unwrap();
        assert_eq!(split.confirmation, vec![32, 34, 36]);
        // Selection targets (i + 1 ..= i + 3) come before the first confirmation target 33:
        // i <= 29.
        assert_eq!(split.selection, vec![22, 24, 26, 28]);
        assert_eq!(split.all(), vec![22, 24, 26, 28, 32, 34, 36]);
        let sel = split.selection_span(&s, 3);
        assert_eq!((sel.origins, sel.first_origin), (4, s.dates[22]));
        assert_eq!(sel.last_target, s.dates[31]);
        // The lattice is counted from the first row: one more row moves nothing until it
        // makes a new lattice point valid.
        let longer = series((0..41).map(|i| 100.0 + f64::from(i)).collect());
        assert_eq!(
            split_origins(&longer, 3, &split_settings(4, 3, 2)).unwrap(),
            split
        );
        let longer = series((0..42).map(|i| 100.0 + f64::from(i)).collect());
        let moved = split_origins(&longer, 3, &split_settings(4, 3, 2)).unwrap();
        assert_eq!(moved.confirmation, vec![34, 36, 38]);
        assert_eq!(moved.selection, vec![24, 26, 28, 30]);
        // h longer than the spacing: the gap is h rows (selection i <= 28 - 7).
        let split = split_origins(&s, 7, &split_settings(2, 2, 4)).unwrap();
        assert_eq!(split.confirmation, vec![28, 32]);
        assert_eq!(split.selection, vec![16, 20]);
        assert!(rows_spanned(&split_settings(2, 2, 4), 7) >= 32 + 7 - 16);
    }

    #[test]
    fn origins_skip_gaps_and_say_which_part_is_short() {
        let nan = f64::NAN;
        let mut v: Vec<f64> = (0..30).map(|i| 50.0 + f64::from(i)).collect();
        v[0] = nan; // origin 0 has no observed value at or before it
        v[22] = nan; // origins 20 and 21 lack a target; 22 is an origin (its context ends in a gap)
        let s = series(v);
        let split = split_origins(&s, 2, &split_settings(2, 2, 1)).unwrap();
        assert_eq!(split.confirmation, vec![26, 27]);
        assert_eq!(split.selection, vec![23, 24]);
        // Selection candidates: 1..=19 and 22..=24 (targets before 27): 22 of them.
        let split = split_origins(&s, 2, &split_settings(22, 2, 1)).unwrap();
        assert_eq!(split.selection[..3], [1, 2, 3]);
        assert_eq!(split.selection[18..], [19, 22, 23, 24]);
        let e = split_origins(&s, 2, &split_settings(25, 2, 1)).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::ExitCode::Invalid);
        let e = e.to_string();
        assert!(
            e.contains("only 22 selection origins") && e.contains("search.selection_origins"),
            "{e}"
        );
        let e = split_origins(&s, 2, &split_settings(2, 40, 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("confirmation origins") && e.contains("search.validation_window"),
            "{e}"
        );
        // NaN != NaN, so compare where the slice starts rather than its values.
        let c = context(&s.values, 6, 3);
        assert!(c.len() == 3 && std::ptr::eq(c.as_ptr(), s.values[4..].as_ptr()));
        let c = context(&s.values, 1, 30);
        assert!(c.len() == 2 && std::ptr::eq(c.as_ptr(), s.values.as_ptr()));
    }

    #[test]
    fn evaluate_pools_errors_and_matches_the_random_walk() {
        let s = series(
            (0..40)
                .map(|i| 100.0 + f64::from(i % 7) - f64::from(i % 3))
                .collect(),
        );
        let o = vec![32, 33, 34, 35, 36];
        let raw = forward(&LastValue, &s.values, &o, 10, 3).unwrap();
        let ev = evaluate(&s, &raw, 3, 100, 1.0, 1.5).unwrap();
        assert_eq!(ev.points.len(), 15);
        assert_eq!(ev.metrics.errors, 15);
        let p = &ev.points[4]; // origin 33, step 2
        assert_eq!((p.origin, p.step, p.target), (33, 2, 35));
        assert!((p.forecast - s.values[33]).abs() < 1e-9);
        assert!((p.error - (s.values[33] - s.values[35])).abs() < 1e-9);
        // Symmetric quantiles around the last value: the model is the random walk.
        assert!((ev.metrics.rmse - ev.metrics.rw_rmse).abs() < 1e-9);
        assert!((ev.metrics.mape - ev.metrics.rw_mape).abs() < 1e-9);
        assert!(ev.points.iter().all(|p| p.random_walk == s.values[p.origin]));
        // The interval score from the points by hand.
        let is: f64 = ev
            .points
            .iter()
            .map(|p| {
                let [lo, hi] = p.ci95;
                (hi - lo) + 40.0 * (lo - p.actual).max(0.0) + 40.0 * (p.actual - hi).max(0.0)
            })
            .sum::<f64>()
            / 15.0;
        assert!((ev.metrics.interval_score_95 - is).abs() < 1e-9);
        assert_eq!(ev.metrics.inference_ms, 1.5);
        assert_eq!(ev.params.context_length, 10);
        // Hand check of the RMSE from the points.
        let sq: f64 = ev.points.iter().map(|p| p.error * p.error).sum();
        assert!((ev.metrics.rmse - (sq / 15.0).sqrt()).abs() < 1e-12);
        // Wider temperature, wider CI95, same point forecast (symmetric).
        let wide = evaluate(&s, &raw, 3, 100, 2.0, 1.5).unwrap();
        assert!(wide.metrics.mean_ci95_width > ev.metrics.mean_ci95_width);
        assert!((wide.metrics.rmse - ev.metrics.rmse).abs() < 1e-9);
        assert!(wide.metrics.coverage_95 >= ev.metrics.coverage_95);
    }

    #[test]
    fn a_zero_actual_is_rejected_with_its_date() {
        let mut v: Vec<f64> = (0..20).map(|i| 50.0 + f64::from(i)).collect();
        v[18] = 0.0;
        let s = series(v);
        let raw = forward(&LastValue, &s.values, &[15, 16, 17], 5, 2).unwrap();
        let e = evaluate(&s, &raw, 2, 10, 1.0, 0.0).unwrap_err().to_string();
        assert!(e.contains("2024-01-19") && e.contains("MAPE"), "{e}");
    }

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

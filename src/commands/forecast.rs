//! `forecast`: one forecast from the end of a series, with the deployed config of a horizon
//! or with explicit parameters.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

use crate::domain::{InferenceParams, MAX_CONTEXT};
use crate::exit::{invalid, ExitCode};
use crate::forecast::{self, QuantileModel, LEVELS};
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::{Context, ForecastRequest};
use crate::model::ChronosBolt;
use crate::output::{self, Render};
use crate::series::Series;

#[derive(Debug, Serialize)]
pub struct ForecastReport {
    pub model: String,
    pub series: String,
    pub horizon: Option<String>,
    pub params: InferenceParams,
    pub prediction_length: usize,
    pub last_date: Option<NaiveDate>,
    pub last_value: Option<f64>,
    /// Target dates, one per step: the next business days (Mon-Fri) after the last date.
    pub dates: Vec<NaiveDate>,
    pub levels: Vec<f64>,
    /// Raw model quantiles, `quantiles[q][step]` over `levels`.
    pub quantiles: Vec<Vec<f64>>,
    pub mean: Vec<f64>,
    pub median: Vec<f64>,
    pub ci80: Vec<[f64; 2]>,
    pub ci95: Vec<[f64; 2]>,
}

impl Render for ForecastReport {
    fn render(&self) -> String {
        let rows = (0..self.mean.len()).map(|i| {
            vec![
                (i + 1).to_string(),
                self.dates[i].to_string(),
                format!("{:.2}", self.mean[i]),
                format!("{:.2}", self.median[i]),
                format!("{:.2} .. {:.2}", self.ci80[i][0], self.ci80[i][1]),
                format!("{:.2} .. {:.2}", self.ci95[i][0], self.ci95[i][1]),
            ]
        });
        format!(
            "model {}   series {} (last {} = {})\n{}{}\n",
            self.model,
            self.series,
            output::opt(self.last_date),
            output::num(self.last_value, 2),
            self.horizon
                .as_ref()
                .map_or_else(String::new, |h| format!("horizon {h}   ")),
            self.params,
        ) + &output::table(&["step", "date", "mean", "median", "CI80", "CI95"], rows)
            + "\n"
    }
}

/// The next `n` business days after `last`.
pub fn business_days_after(last: NaiveDate, n: usize) -> Vec<NaiveDate> {
    let mut out = Vec::with_capacity(n);
    let mut d = last;
    while out.len() < n {
        d = d.succ_opt().expect("date in range");
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            out.push(d);
        }
    }
    out
}

pub fn run(ctx: &Context, req: &ForecastRequest) -> anyhow::Result<ExitCode> {
    let deployed: Option<ForecasterConfig> = match req.horizon {
        Some(h) => Some(super::read_config(ctx, h)?),
        None => None,
    };
    let (series, series_name): (Series, String) = match &req.series {
        Some(p) => {
            let s = crate::data::load_series(p)?;
            if s.values.iter().all(|v| v.is_nan()) {
                return Err(invalid(format!(
                    "{}: no observed value to forecast from",
                    p.display()
                )));
            }
            (s, p.display().to_string())
        }
        None => (super::load_series(ctx)?, ctx.series_path().display().to_string()),
    };
    // Flags were range-checked when the request was built; a deployed config when it was read.
    let prediction_length = req
        .prediction_length
        .or(req.horizon.map(crate::domain::Horizon::steps))
        .ok_or_else(|| invalid("forecast needs --horizon H or --prediction-length N"))?;
    let context_length = req
        .context_length
        .or(deployed.as_ref().map(|c| c.context_length))
        .unwrap_or_else(|| series.len().clamp(1, MAX_CONTEXT));
    let params = InferenceParams {
        context_length,
        num_samples: req
            .num_samples
            .or(deployed.as_ref().map(|c| c.num_samples))
            .unwrap_or(100),
        temperature: req
            .temperature
            .or(deployed.as_ref().map(|c| c.temperature))
            .unwrap_or(1.0),
    };
    let (num_samples, temperature) = (params.num_samples, params.temperature);
    // A forecast needs observed values in its context, not only before it.
    crate::data::require_observed_context(&series, context_length, std::path::Path::new(&series_name))?;

    let model = ChronosBolt::open(&ctx.settings.model.id)?;
    let start = series.len().saturating_sub(context_length);
    let context = &series.values[start..];
    let raw = model.predict(&[context], prediction_length)?.remove(0);
    let summary = forecast::summarize(&raw, num_samples, temperature)?;
    let last_date = series.last_date();
    let report = ForecastReport {
        model: ctx.settings.model.id.clone(),
        series: series_name,
        horizon: req.horizon.map(crate::domain::Horizon::label),
        params,
        prediction_length,
        last_date,
        last_value: series.values.iter().rev().copied().find(|v| !v.is_nan()),
        dates: last_date.map_or_else(Vec::new, |d| business_days_after(d, prediction_length)),
        levels: LEVELS.to_vec(),
        quantiles: raw.values,
        mean: summary.mean,
        median: summary.median,
        ci80: summary.ci80,
        ci95: summary.ci95,
    };
    output::emit(ctx.json, &report)?;
    Ok(ExitCode::Success)
}

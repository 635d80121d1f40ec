//! Grid search of the inference parameters of one horizon, with shared forward passes
//! (pure; no I/O: progress goes to a callback, the caller draws it).
//!
//! # Cost
//! The model output depends only on the context (`num_samples` and `temperature` act on the
//! quantiles afterwards, see [`crate::forecast`]), so the search runs ONE batched forward per
//! distinct context length over all origins and derives the `num_samples x temperature`
//! configs of that length from it: 27 configs cost 3 forwards, not 27.
//!
//! # The forward cache
//! [`ForwardCache`] keeps each raw forecast under (effective context length, origin). The
//! effective length is `min(context_length, model max context, origin + 1)`: two keys are
//! equal exactly when the model sees the same slice of the series. An entry holding `P`
//! steps serves any request for `h <= P` steps through its first `h` steps. That is exact
//! for Chronos-Bolt: one pass emits 64 steps that are then cut to the requested length, and
//! past 64 the official expansion loop only appends later chunks computed from the earlier
//! ones, so a forecast's first `h` steps do not depend on how many steps were asked for.
//! (Any [`QuantileModel`] used with the cache must have this prefix property.)
//!
//! A request looks up every origin; the ones missing (or cached with fewer steps) go to the
//! model in one batch, at the requested length. So:
//! - within a horizon, re-evaluating a config whose context length was in the grid (the
//!   current config in `validate`) costs no forward at all;
//! - between horizons, origins only partly coincide (the last `W` origins of `7d` end 8
//!   steps before the series end, those of `15d` 16 steps before), and the shared context
//!   lengths (90 and 180 for 7d/15d, 180 and 365 for 15d/30d, 365 and 540 for 30d/90d) reuse
//!   the overlapping origins. Searching horizons from the longest to the shortest lets the
//!   longer forecasts serve the shorter ones; the other order still works, it just reuses
//!   nothing across horizons.
//!
//! The cache belongs to one series and one model: it fingerprints the series values and
//! refuses another series; the caller keeps one cache per model. A batch's composition may
//! change a forecast at float rounding level (gemm blocking), far below what any metric
//! reports.
//!
//! # Inference time
//! Each config's `inference_ms` is one complete forecast at that config: a single-series
//! forward at its context length (median of `timing_runs`, once per context length, since
//! the forward does not depend on the other two parameters) plus the post-processing at its
//! `num_samples` and `temperature` (median of `timing_runs`, per config). Timing the forward
//! once per context length instead of once per config measures the same quantity with 9x
//! fewer single-series forwards (for 90d each is a forward plus the 9-path expansion), and
//! it is never the shared batch divided up.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::ensure;
use chrono::NaiveDate;
use serde::Serialize;

use crate::backtest::{self, Evaluation, RawForecasts};
use crate::config::{SearchSettings, ValidationSettings};
use crate::domain::{Horizon, InferenceParams};
use crate::exit::invalid;
use crate::forecast::{DrawPlan, QuantileForecast, QuantileModel};
use crate::series::Series;
use crate::validate;

/// What the search reports while it runs (the caller turns it into a progress bar).
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A horizon's search begins: `forwards` distinct context lengths, `configs` configs.
    Started {
        horizon: Horizon,
        forwards: usize,
        configs: usize,
    },
    /// A batched forward begins: `to_run` contexts go to the model, `cached` come from the
    /// cache (`to_run == 0`: no model call at all).
    ForwardStarted {
        context_length: usize,
        to_run: usize,
        cached: usize,
    },
    ForwardFinished {
        context_length: usize,
        ran: usize,
        seconds: f64,
    },
    /// Single-series forwards that time one forecast at this context length.
    Timing { context_length: usize, runs: usize },
    ConfigEvaluated {
        done: usize,
        total: usize,
        params: InferenceParams,
        rmse: f64,
    },
}

/// Raw forecasts shared between requests; see the module docs.
#[derive(Debug, Default)]
pub struct ForwardCache {
    /// The longest series seen; every series given must be a prefix of it or extend it.
    reference: Option<Vec<f64>>,
    entries: HashMap<(usize, usize), QuantileForecast>,
    /// Model calls made for backtests (timing forwards excluded).
    pub batches_run: usize,
    /// Contexts sent to the model, and contexts served from the cache.
    pub series_run: usize,
    pub series_reused: usize,
}

impl ForwardCache {
    pub fn new() -> ForwardCache {
        ForwardCache::default()
    }

    /// A forecast at origin `o` reads only the values up to `o`, so one cache serves every
    /// series that agrees with the others on their common prefix: the same history cut at
    /// different dates (a replay), but never a different series.
    fn check_prefix(&mut self, values: &[f64]) -> anyhow::Result<()> {
        let reference = self.reference.get_or_insert_with(Vec::new);
        let common = reference.len().min(values.len());
        let same = reference[..common]
            .iter()
            .zip(&values[..common])
            .all(|(a, b)| a.to_bits() == b.to_bits());
        ensure!(
            same,
            "internal: a forward cache was reused for a different series (one cache per series and its prefixes)"
        );
        if values.len() > reference.len() {
            reference.extend_from_slice(&values[reference.len()..]);
        }
        Ok(())
    }

    /// The raw forecasts of `origins` at `context_length` for `h` steps: cached ones reused,
    /// the rest in one batched `predict`.
    pub fn forward(
        &mut self,
        model: &dyn QuantileModel,
        series: &Series,
        origins: &[usize],
        context_length: usize,
        h: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> anyhow::Result<RawForecasts> {
        self.check_prefix(&series.values)?;
        let key = |o: usize| (context_length.min(model.max_context()).min(o + 1), o);
        let missing: Vec<usize> = origins
            .iter()
            .copied()
            .filter(|&o| self.entries.get(&key(o)).is_none_or(|f| f.steps() < h))
            .collect();
        progress(Progress::ForwardStarted {
            context_length,
            to_run: missing.len(),
            cached: origins.len() - missing.len(),
        });
        let start = Instant::now();
        if !missing.is_empty() {
            let raw = backtest::forward(model, &series.values, &missing, context_length, h)?;
            self.batches_run += 1;
            self.series_run += missing.len();
            for (o, f) in missing.iter().zip(raw.forecasts) {
                self.entries.insert(key(*o), f);
            }
        }
        self.series_reused += origins.len() - missing.len();
        progress(Progress::ForwardFinished {
            context_length,
            ran: missing.len(),
            seconds: start.elapsed().as_secs_f64(),
        });
        let forecasts = origins
            .iter()
            .map(|&o| {
                let f = &self.entries[&key(o)];
                QuantileForecast {
                    values: f.values.iter().map(|row| row[..h].to_vec()).collect(),
                }
            })
            .collect();
        Ok(RawForecasts {
            context_length,
            origins: origins.to_vec(),
            forecasts,
        })
    }
}

/// Keeps the first occurrence of each value.
fn dedup<T: PartialEq + Copy>(xs: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(xs.len());
    for &x in xs {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// The search grid of `h`, context length outermost, then `num_samples`, then temperature
/// (duplicates in the settings dropped).
pub fn grid(settings: &SearchSettings, h: Horizon) -> anyhow::Result<Vec<InferenceParams>> {
    let lengths = dedup(settings.context_lengths_for(h));
    let samples = dedup(&settings.num_samples);
    let temps = dedup(&settings.temperature);
    if lengths.is_empty() || samples.is_empty() || temps.is_empty() {
        return Err(invalid(format!(
            "search grid for {h} is empty: search.context_lengths (or default_context_lengths), \
             search.num_samples and search.temperature each need at least one value"
        )));
    }
    if lengths.contains(&0) || samples.contains(&0) {
        return Err(invalid(
            "search.context_lengths and search.num_samples must be >= 1",
        ));
    }
    if let Some(t) = temps.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(invalid(format!(
            "search.temperature {t} must be a finite number > 0"
        )));
    }
    let mut out = Vec::with_capacity(lengths.len() * samples.len() * temps.len());
    for &context_length in &lengths {
        for &num_samples in &samples {
            for &temperature in &temps {
                out.push(InferenceParams {
                    context_length,
                    num_samples,
                    temperature,
                });
            }
        }
    }
    Ok(out)
}

/// One config of the search.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigResult {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// CI95 coverage and |bias| within the validation thresholds.
    pub meets_criteria: bool,
}

/// A horizon's search: every config with its metrics, and the choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchReport {
    pub horizon: Horizon,
    pub origins: usize,
    pub first_origin: NaiveDate,
    pub last_origin: NaiveDate,
    /// Grid order.
    pub configs: Vec<ConfigResult>,
    /// Index of the chosen config in `configs`.
    pub best: usize,
    /// False when no config met the absolute criteria and the lowest RMSE was taken anyway.
    pub best_meets_criteria: bool,
    /// Model calls this search made for backtests, against one per config if each config ran
    /// its own forward.
    pub forward_batches: usize,
    pub naive_forward_batches: usize,
    pub seconds: f64,
}

impl SearchReport {
    pub fn best(&self) -> &Evaluation {
        &self.configs[self.best].evaluation
    }
}

/// Lowest RMSE among the configs meeting the criteria, else lowest RMSE overall (flagged).
/// Ties keep the earlier config in grid order; NaN RMSEs never win.
fn select(configs: &[ConfigResult]) -> (usize, bool) {
    let lowest = |only_meeting: bool| {
        configs
            .iter()
            .enumerate()
            .filter(|(_, c)| (c.meets_criteria || !only_meeting) && !c.evaluation.metrics.rmse.is_nan())
            .min_by(|(ia, a), (ib, b)| {
                a.evaluation
                    .metrics
                    .rmse
                    .total_cmp(&b.evaluation.metrics.rmse)
                    .then(ia.cmp(ib))
            })
            .map(|(i, _)| i)
    };
    match lowest(true) {
        Some(i) => (i, true),
        None => (lowest(false).unwrap_or(0), false),
    }
}

/// The grid search of horizon `h` over the last `settings.validation_window` origins.
pub fn search(
    model: &dyn QuantileModel,
    series: &Series,
    h: Horizon,
    settings: &SearchSettings,
    validation: &ValidationSettings,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<SearchReport> {
    let start = Instant::now();
    let params = grid(settings, h)?;
    let origins = backtest::origins(series, h.steps(), settings.validation_window)?;
    let lengths = dedup(&params.iter().map(|p| p.context_length).collect::<Vec<_>>());
    progress(Progress::Started {
        horizon: h,
        forwards: lengths.len(),
        configs: params.len(),
    });
    let batches_before = cache.batches_run;
    let plans: HashMap<usize, DrawPlan> = dedup(&params.iter().map(|p| p.num_samples).collect::<Vec<_>>())
        .into_iter()
        .map(|n| (n, DrawPlan::new(n)))
        .collect();
    let timing_context = *origins.last().expect("origins are never empty");
    let mut configs = Vec::with_capacity(params.len());
    for &length in &lengths {
        let raw = cache.forward(model, series, &origins, length, h.steps(), progress)?;
        progress(Progress::Timing {
            context_length: length,
            runs: settings.timing_runs,
        });
        let context = backtest::context(&series.values, timing_context, length);
        let forward_ms = backtest::time_forward_ms(model, context, h.steps(), settings.timing_runs)?;
        for p in params.iter().filter(|p| p.context_length == length) {
            let post_ms = backtest::time_postprocess_ms(
                &raw.forecasts[0],
                p.num_samples,
                p.temperature,
                settings.timing_runs,
            )?;
            let evaluation = backtest::evaluate_with(
                series,
                &raw,
                h.steps(),
                &plans[&p.num_samples],
                p.temperature,
                forward_ms + post_ms,
            )?;
            let meets_criteria = validate::meets_absolute_criteria(&evaluation.metrics, h, validation);
            progress(Progress::ConfigEvaluated {
                done: configs.len() + 1,
                total: params.len(),
                params: *p,
                rmse: evaluation.metrics.rmse,
            });
            configs.push(ConfigResult {
                evaluation,
                meets_criteria,
            });
        }
    }
    // `lengths` follows the grid's outer loop, so `configs` is already in grid order.
    let (best, best_meets_criteria) = select(&configs);
    Ok(SearchReport {
        horizon: h,
        origins: origins.len(),
        first_origin: series.dates[origins[0]],
        last_origin: series.dates[*origins.last().expect("origins are never empty")],
        configs,
        best,
        best_meets_criteria,
        forward_batches: cache.batches_run - batches_before,
        naive_forward_batches: params.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Backtests one config on the search's origins, timed the way the search times its
/// configs (used for the current config in `validate`, and for `--candidate`). Through the
/// cache, a context length the search already ran costs no forward. For a fair inference-time
/// criterion, evaluate candidate and current with this function one after the other.
pub fn evaluate_params(
    model: &dyn QuantileModel,
    series: &Series,
    h: Horizon,
    settings: &SearchSettings,
    params: &InferenceParams,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Evaluation> {
    let origins = backtest::origins(series, h.steps(), settings.validation_window)?;
    let raw = cache.forward(
        model,
        series,
        &origins,
        params.context_length,
        h.steps(),
        progress,
    )?;
    progress(Progress::Timing {
        context_length: params.context_length,
        runs: settings.timing_runs,
    });
    let last = *origins.last().expect("origins are never empty");
    let context = backtest::context(&series.values, last, params.context_length);
    let forward_ms = backtest::time_forward_ms(model, context, h.steps(), settings.timing_runs)?;
    let post_ms = backtest::time_postprocess_ms(
        &raw.forecasts[0],
        params.num_samples,
        params.temperature,
        settings.timing_runs,
    )?;
    backtest::evaluate(
        series,
        &raw,
        h.steps(),
        params.num_samples,
        params.temperature,
        forward_ms + post_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::Metrics;

    fn result(rmse: f64, meets: bool) -> ConfigResult {
        ConfigResult {
            evaluation: Evaluation {
                params: InferenceParams {
                    context_length: 1,
                    num_samples: 1,
                    temperature: 1.0,
                },
                metrics: Metrics {
                    rmse,
                    mae: 0.0,
                    mape: 0.0,
                    bias: 0.0,
                    error_std: 0.0,
                    coverage_80: 0.0,
                    coverage_95: 0.0,
                    mean_ci95_width: 0.0,
                    wql: 0.0,
                    inference_ms: 0.0,
                    rw_rmse: 0.0,
                    rw_mape: 0.0,
                    origins: 1,
                    errors: 1,
                },
                points: vec![],
            },
            meets_criteria: meets,
        }
    }

    #[test]
    fn selection_prefers_configs_meeting_the_criteria() {
        let c = [
            result(3.0, false),
            result(5.0, true),
            result(4.0, true),
            result(4.0, true),
        ];
        assert_eq!(select(&c), (2, true));
        let c = [result(3.0, false), result(f64::NAN, false), result(2.0, false)];
        assert_eq!(select(&c), (2, false));
    }

    #[test]
    fn the_default_grid_has_27_configs_and_bad_settings_fail() {
        let s = SearchSettings::default();
        let g = grid(&s, Horizon(7)).unwrap();
        assert_eq!(g.len(), 27);
        assert_eq!(g[0].context_length, 90);
        assert_eq!((g[1].num_samples, g[1].temperature), (50, 1.0));
        assert_eq!(g[26].context_length, 270);
        assert_eq!(grid(&s, Horizon(90)).unwrap()[0].context_length, 365);
        let mut bad = s.clone();
        bad.temperature = vec![0.8, -1.0];
        assert!(grid(&bad, Horizon(7))
            .unwrap_err()
            .to_string()
            .contains("search.temperature"));
        let mut dup = s;
        dup.num_samples = vec![50, 50];
        assert_eq!(grid(&dup, Horizon(7)).unwrap().len(), 9);
    }
}

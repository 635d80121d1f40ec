//! Grid search of the inference parameters of one horizon, with shared forward passes
//! (pure; no I/O: progress goes to a callback, the caller draws it).
//!
//! # Cost
//! The model output depends only on the context (`num_samples` and `temperature` act on the
//! quantiles afterwards, see [`crate::forecast`]), so the search runs ONE batched forward per
//! distinct context length over all origins and derives the `num_samples x temperature`
//! configs of that length from it: 27 configs cost 3 forwards, not 27.
//!
//! The forwards come from [`ForwardCache`] (see [`crate::policy::forward_cache`]).
//!
//! # What each parameter is chosen by
//! The search sees only the selection origins it is given (see [`backtest::split_origins`]).
//! Each parameter is chosen by what it changes (see [`Rules`]): the context length by the RMSE
//! of the point forecast, the temperature by the interval score of the CI95 (a proper score
//! of the forecast distribution: RMSE hardly moves with it), num_samples by cost (the smallest
//! value whose forecasts agree with the largest value's within a stated tolerance).
//!
//! # Inference time
//! Each config's `inference_ms` in the search table is one complete forecast at that config:
//! a single-series forward at its context length (median of `timing_runs`, once per context
//! length, since the forward does not depend on the other two parameters) plus the
//! post-processing at its `num_samples` and `temperature` (median of `timing_runs`, per
//! config). It is shown, not used to choose or to validate: criterion 3 compares the
//! deterministic cost model of [`crate::policy::cost::forecast_cost_mflop`]. With `timing_runs` 0 nothing
//! is timed (NaN, shown as "-"): a replay's searches print no table, so it skips the timing.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::ensure;
use chrono::NaiveDate;
use serde::Serialize;

use crate::config::{SearchSettings, ValidationSettings};
use crate::domain::{Horizon, InferenceParams};
use crate::exit::invalid;
use crate::forecast::{DrawPlan, QuantileModel};
use crate::policy::backtest::{self, Evaluation};
pub use crate::policy::forward_cache::ForwardCache;
use crate::policy::validate;
use crate::series::Series;

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

/// The grid of `h` with the current config's context length, num_samples and temperature
/// joined to their value lists, so the current config is always one of the candidates.
pub fn grid_with(
    settings: &SearchSettings,
    h: Horizon,
    current: Option<InferenceParams>,
) -> anyhow::Result<Vec<InferenceParams>> {
    let Some(c) = current else {
        return grid(settings, h);
    };
    let mut s = settings.clone();
    let mut lengths = s.context_lengths_for(h).to_vec();
    lengths.push(c.context_length);
    s.context_lengths.insert(h, lengths);
    s.num_samples.push(c.num_samples);
    s.temperature.push(c.temperature);
    grid(&s, h)
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
    /// CI95 coverage and |bias| within the validation thresholds on the selection origins
    /// (shown, not used by the rules).
    pub meets_criteria: bool,
    /// How far this config's forecasts are from those of the largest num_samples at the same
    /// context length and temperature: the largest, over every (origin, step), of
    /// `max(|d mean|, |d CI95 low|, |d CI95 high|)` in percent of the largest num_samples'
    /// CI95 width there (0 for the largest num_samples itself).
    pub mc_deviation_pct: f64,
}

/// context_length: the lowest RMSE of the point forecast, each context length scored at
/// the reference draws (the largest num_samples, the grid temperature nearest 1), if it beats
/// the current config's context length significantly there (see [`IncumbentChoice`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextRule {
    pub chosen: usize,
    pub at_num_samples: usize,
    pub at_temperature: f64,
    /// (context length, RMSE) in grid order.
    pub rmse: Vec<(usize, f64)>,
    pub choice: IncumbentChoice<usize>,
}

/// temperature: the lowest mean interval score of the CI95 at the chosen context length and
/// the largest num_samples, if it beats the current config's temperature significantly
/// there (see [`IncumbentChoice`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemperatureRule {
    pub chosen: f64,
    pub at_context_length: usize,
    pub at_num_samples: usize,
    /// (temperature, interval score) in grid order.
    pub interval_score_95: Vec<(f64, f64)>,
    pub choice: IncumbentChoice<f64>,
}

/// How the rule of one parameter settled against the current config's value. A value that
/// only scores lower by chance would change the forecasts for nothing (on a year of origins
/// the grid's scores often differ by less than their noise), so the current value stays
/// unless the lowest-scoring one beats it by a one-sided Diebold-Mariano test (HAC, HLN) of
/// the per-origin scores on the selection origins: squared errors of the point forecast for
/// the context length (`search.context_change_alpha`), CI95 interval scores for the
/// temperature (`search.temperature_change_alpha`). The confirmation origins then judge the
/// deploy on their own, disjoint data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum IncumbentChoice<T> {
    /// No current value in the grid (or none given): the lowest score.
    Lowest,
    /// The current value scores lowest.
    CurrentIsLowest,
    /// The lowest-scoring value beats the current one significantly.
    Significant { current: T, p_value: f64, alpha: f64 },
    /// The lowest-scoring value is not significantly better: the current one stays.
    KeptCurrent { lowest: T, p_value: f64, alpha: f64 },
}

/// What the rules weigh their choices against: the current config's parameters, the test
/// levels and the tests' horizon in origins (`ceil(h / spacing)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Incumbent {
    pub params: Option<InferenceParams>,
    pub context_alpha: f64,
    pub temperature_alpha: f64,
    pub test_horizon: usize,
}

/// num_samples: the smallest value whose forecasts are within `tolerance_pct` of the
/// largest value's (see [`ConfigResult::mc_deviation_pct`]), at the chosen context length
/// and temperature. Draws only cost time, so fewer is better once they agree.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SamplesRule {
    pub chosen: usize,
    pub reference: usize,
    pub tolerance_pct: f64,
    /// (num_samples, deviation percent) ascending.
    pub deviation_pct: Vec<(usize, f64)>,
}

/// Which rule picked each parameter of the chosen config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rules {
    pub context_length: ContextRule,
    pub temperature: TemperatureRule,
    pub num_samples: SamplesRule,
}

/// A horizon's search: every config with its scores on the selection origins, and the choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchReport {
    pub horizon: Horizon,
    /// The selection origins every config was scored on (the confirmation origins come later).
    pub origins: usize,
    pub first_origin: NaiveDate,
    pub last_origin: NaiveDate,
    /// The last target the search scored: everything it saw is at or before this date.
    pub last_target: NaiveDate,
    /// Grid order.
    pub configs: Vec<ConfigResult>,
    /// Index of the chosen config in `configs`.
    pub best: usize,
    pub rules: Rules,
    /// Model calls made for backtests, against one per config if each config ran its own
    /// forward. In `validate` and `run` this counts the batched forwards over the selection
    /// and confirmation origins together, which serve the search and the validation.
    pub forward_batches: usize,
    pub naive_forward_batches: usize,
    pub seconds: f64,
}

impl SearchReport {
    pub fn best(&self) -> &Evaluation {
        &self.configs[self.best].evaluation
    }
}

/// The index of the lowest `score` among `candidates` (indices into `configs`); ties keep the
/// earlier one, NaN never wins unless everything is NaN (then the first).
fn lowest(candidates: &[usize], score: impl Fn(usize) -> f64) -> usize {
    candidates
        .iter()
        .copied()
        .filter(|&i| !score(i).is_nan())
        .min_by(|&a, &b| score(a).total_cmp(&score(b)).then(a.cmp(&b)))
        .unwrap_or(candidates[0])
}

/// See [`ConfigResult::mc_deviation_pct`].
fn mc_deviation_pct(e: &Evaluation, reference: &Evaluation) -> f64 {
    e.points
        .iter()
        .zip(&reference.points)
        .map(|(p, r)| {
            let width = r.ci95[1] - r.ci95[0];
            let d = (p.forecast - r.forecast)
                .abs()
                .max((p.ci95[0] - r.ci95[0]).abs())
                .max((p.ci95[1] - r.ci95[1]).abs());
            if d == 0.0 {
                0.0
            } else if width > 0.0 {
                100.0 * d / width
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// The one-sided Diebold-Mariano p-value of "`a`'s per-origin `loss` is lower than `b`'s"
/// (1 when it cannot be computed: too few origins).
fn dm_p_value(
    a: &Evaluation,
    b: &Evaluation,
    test_horizon: usize,
    loss: impl Fn(&backtest::ErrorPoint) -> f64,
) -> f64 {
    validate::per_origin_differential(a, b, loss)
        .and_then(|d| crate::metrics::diebold_mariano(&d, test_horizon))
        .map_or(1.0, |dm| dm.p_value_lower)
}

/// The CI95 interval (Winkler) score of one point.
fn winkler(p: &backtest::ErrorPoint) -> f64 {
    crate::metrics::interval_score(&[p.actual], &[p.ci95], 0.05)
}

/// The incumbent rule (see [`IncumbentChoice`]) over `candidates` (indices into the configs,
/// one per value of the parameter): the lowest `score` among them is weighed against the one
/// whose `value` is `current` (if any is), `p_value(lowest, current)` testing the lowest
/// against the current. Returns the chosen index.
fn keep_unless_beaten<T: Copy + PartialEq>(
    candidates: &[usize],
    score: impl Fn(usize) -> f64,
    value: impl Fn(usize) -> T,
    current: Option<T>,
    alpha: f64,
    p_value: impl Fn(usize, usize) -> f64,
) -> (usize, IncumbentChoice<T>) {
    let lowest = lowest(candidates, score);
    let current = current.and_then(|c| candidates.iter().copied().find(|&i| value(i) == c));
    match current {
        None => (lowest, IncumbentChoice::Lowest),
        Some(i) if i == lowest => (i, IncumbentChoice::CurrentIsLowest),
        Some(i) => {
            let p_value = p_value(lowest, i);
            if p_value < alpha {
                let current = value(i);
                (
                    lowest,
                    IncumbentChoice::Significant {
                        current,
                        p_value,
                        alpha,
                    },
                )
            } else {
                let low = value(lowest);
                (
                    i,
                    IncumbentChoice::KeptCurrent {
                        lowest: low,
                        p_value,
                        alpha,
                    },
                )
            }
        }
    }
}

/// Applies the three rules (see [`Rules`]) to evaluated configs in grid order; fills in
/// `mc_deviation_pct` and returns the chosen index with the rules.
fn choose(configs: &mut [ConfigResult], tolerance_pct: f64, incumbent: Incumbent) -> (usize, Rules) {
    let params: Vec<InferenceParams> = configs.iter().map(|c| c.evaluation.params).collect();
    let find = |c: usize, n: usize, t: f64| {
        params
            .iter()
            .position(|p| {
                p.context_length == c && p.num_samples == n && p.temperature.to_bits() == t.to_bits()
            })
            .expect("the grid is a full product")
    };
    let lengths = dedup(&params.iter().map(|p| p.context_length).collect::<Vec<_>>());
    let temps = dedup(&params.iter().map(|p| p.temperature).collect::<Vec<_>>());
    let mut samples = dedup(&params.iter().map(|p| p.num_samples).collect::<Vec<_>>());
    samples.sort_unstable();
    let n_max = *samples.last().expect("the grid is not empty");
    for i in 0..configs.len() {
        let p = params[i];
        let r = find(p.context_length, n_max, p.temperature);
        configs[i].mc_deviation_pct = mc_deviation_pct(&configs[i].evaluation, &configs[r].evaluation);
    }
    let t_ref = *temps
        .iter()
        .min_by(|a, b| (*a - 1.0).abs().total_cmp(&(*b - 1.0).abs()))
        .expect("the grid is not empty");
    let metrics = |i: usize| &configs[i].evaluation.metrics;
    let at_ref: Vec<usize> = lengths.iter().map(|&c| find(c, n_max, t_ref)).collect();
    let evaluation = |i: usize| &configs[i].evaluation;
    let current = incumbent.params;
    let (ctx_i, ctx_choice) = keep_unless_beaten(
        &at_ref,
        |i| metrics(i).rmse,
        |i| params[i].context_length,
        current.map(|c| c.context_length),
        incumbent.context_alpha,
        |a, b| {
            dm_p_value(evaluation(a), evaluation(b), incumbent.test_horizon, |p| {
                p.error * p.error
            })
        },
    );
    let ctx = params[ctx_i].context_length;
    let at_ctx: Vec<usize> = temps.iter().map(|&t| find(ctx, n_max, t)).collect();
    let (temp_i, temp_choice) = keep_unless_beaten(
        &at_ctx,
        |i| metrics(i).interval_score_95,
        |i| params[i].temperature,
        current.map(|c| c.temperature),
        incumbent.temperature_alpha,
        |a, b| dm_p_value(evaluation(a), evaluation(b), incumbent.test_horizon, winkler),
    );
    let temp = params[temp_i].temperature;
    let at_both: Vec<usize> = samples.iter().map(|&n| find(ctx, n, temp)).collect();
    let within = at_both
        .iter()
        .copied()
        .find(|&i| configs[i].mc_deviation_pct <= tolerance_pct + validate::EDGE_TOLERANCE)
        .unwrap_or(*at_both.last().expect("the grid is not empty"));
    let rules = Rules {
        context_length: ContextRule {
            chosen: ctx,
            at_num_samples: n_max,
            at_temperature: t_ref,
            rmse: at_ref
                .iter()
                .map(|&i| (params[i].context_length, metrics(i).rmse))
                .collect(),
            choice: ctx_choice,
        },
        temperature: TemperatureRule {
            chosen: temp,
            at_context_length: ctx,
            at_num_samples: n_max,
            interval_score_95: at_ctx
                .iter()
                .map(|&i| (params[i].temperature, metrics(i).interval_score_95))
                .collect(),
            choice: temp_choice,
        },
        num_samples: SamplesRule {
            chosen: params[within].num_samples,
            reference: n_max,
            tolerance_pct,
            deviation_pct: at_both
                .iter()
                .map(|&i| (params[i].num_samples, configs[i].mc_deviation_pct))
                .collect(),
        },
    };
    (within, rules)
}

/// What a grid search reads.
#[derive(Clone, Copy)]
pub struct SearchInput<'a> {
    pub model: &'a dyn QuantileModel,
    pub series: &'a Series,
    pub horizon: Horizon,
    pub settings: &'a SearchSettings,
    pub validation: &'a ValidationSettings,
    /// The selection origins, ascending.
    pub selection: &'a [usize],
    /// The deployed config's parameters.
    pub current: Option<InferenceParams>,
}

/// The grid search of horizon `h` on the selection origins `selection` (ascending; see
/// [`backtest::split_origins`]); `current` is the deployed config's parameters, whose context
/// length and temperature the rules keep unless beaten significantly (see
/// [`IncumbentChoice`]). Nothing
/// at a later origin is looked at: every forecast comes from a context ending at one of
/// `selection`, every actual is at most `h` rows after one.
pub fn search(
    input: &SearchInput<'_>,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<SearchReport> {
    let SearchInput {
        model,
        series,
        horizon: h,
        settings,
        validation,
        selection,
        current,
    } = *input;
    let start = Instant::now();
    ensure!(!selection.is_empty(), "the search needs at least one origin");
    let params = grid_with(settings, h, current)?;
    let origins = selection;
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
    let last = *origins.last().expect("origins are never empty");
    let mut configs = Vec::with_capacity(params.len());
    for &length in &lengths {
        let raw = cache.forward(model, series, origins, length, h.steps(), progress)?;
        let timed = settings.timing_runs > 0;
        let forward_ms = if timed {
            progress(Progress::Timing {
                context_length: length,
                runs: settings.timing_runs,
            });
            let context = backtest::context(&series.values, last, length);
            backtest::time_forward_ms(model, context, h.steps(), settings.timing_runs)?
        } else {
            f64::NAN
        };
        for p in params.iter().filter(|p| p.context_length == length) {
            let post_ms = if timed {
                backtest::time_postprocess_ms(
                    &raw.forecasts[0],
                    p.num_samples,
                    p.temperature,
                    settings.timing_runs,
                )?
            } else {
                f64::NAN
            };
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
                mc_deviation_pct: 0.0,
            });
        }
    }
    // `lengths` follows the grid's outer loop, so `configs` is already in grid order.
    let incumbent = Incumbent {
        params: current,
        context_alpha: settings.context_change_alpha,
        temperature_alpha: settings.temperature_change_alpha,
        test_horizon: backtest::test_horizon(h.steps(), settings.origin_spacing),
    };
    let (best, rules) = choose(&mut configs, settings.num_samples_tolerance_pct, incumbent);
    Ok(SearchReport {
        horizon: h,
        origins: origins.len(),
        first_origin: series.dates[origins[0]],
        last_origin: series.dates[last],
        last_target: series.dates[last + h.steps()],
        configs,
        best,
        rules,
        forward_batches: cache.batches_run - batches_before,
        naive_forward_batches: params.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Backtests one config on `origins` through the cache (a context length already forecast
/// there costs no forward). `inference_ms` is left at 0: criterion 3 uses the deterministic
/// cost model (see [`crate::policy::cost::forecast_cost_mflop`]).
pub fn evaluate_params(
    model: &dyn QuantileModel,
    series: &Series,
    h: Horizon,
    params: &InferenceParams,
    origins: &[usize],
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Evaluation> {
    let raw = cache.forward(model, series, origins, params.context_length, h.steps(), progress)?;
    backtest::evaluate(
        series,
        &raw,
        h.steps(),
        params.num_samples,
        params.temperature,
        0.0,
    )
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::policy::backtest::Metrics;

    /// A config at (context, samples, temperature) with the given RMSE and interval score,
    /// and one point per `(mean, ci95)` of `points`.
    fn config(p: (usize, usize, f64), rmse: f64, interval: f64, points: &[(f64, [f64; 2])]) -> ConfigResult {
        let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        ConfigResult {
            evaluation: Evaluation {
                params: InferenceParams {
                    context_length: p.0,
                    num_samples: p.1,
                    temperature: p.2,
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
                    interval_score_95: interval,
                    inference_ms: 0.0,
                    rw_rmse: 0.0,
                    rw_mape: 0.0,
                    origins: 1,
                    errors: points.len(),
                },
                points: points
                    .iter()
                    .enumerate()
                    .map(|(i, (mean, ci95))| backtest::ErrorPoint {
                        origin: i,
                        target: i + 1,
                        step: 1,
                        origin_date: day,
                        target_date: day,
                        forecast: *mean,
                        actual: 100.0,
                        error: mean - 100.0,
                        ci95: *ci95,
                        random_walk: 100.0,
                    })
                    .collect(),
            },
            meets_criteria: true,
            mc_deviation_pct: f64::NAN,
        }
    }

    const NO_INCUMBENT: Incumbent = Incumbent {
        params: None,
        context_alpha: 0.05,
        temperature_alpha: 0.05,
        test_horizon: 1,
    };

    /// The current config (context, samples, temperature) against alpha for both rules.
    fn incumbent(current: Option<(usize, usize, f64)>, alpha: f64) -> Incumbent {
        Incumbent {
            params: current.map(|(c, n, t)| InferenceParams {
                context_length: c,
                num_samples: n,
                temperature: t,
            }),
            context_alpha: alpha,
            temperature_alpha: alpha,
            test_horizon: 1,
        }
    }

    /// One context and one num_samples; the current temperature 1.0 forecasts [80, 120] at
    /// ten origins (interval score 40 each, actual 100); T 1.2 scores lowest on average with
    /// `widths`, T 0.8 worst.
    fn temperature_grid(widths: &[f64]) -> Vec<ConfigResult> {
        let at = |w: &[f64]| -> Vec<(f64, [f64; 2])> {
            w.iter()
                .map(|w| (100.0, [100.0 - w / 2.0, 100.0 + w / 2.0]))
                .collect()
        };
        let mean = widths.iter().sum::<f64>() / widths.len() as f64;
        vec![
            config((10, 50, 0.8), 1.0, 50.0, &at(&[50.0; 10])),
            config((10, 50, 1.0), 1.0, 40.0, &at(&[40.0; 10])),
            config((10, 50, 1.2), 1.0, mean, &at(widths)),
        ]
    }

    #[test]
    fn the_current_temperature_stays_unless_beaten_significantly() {
        let pick = |widths: &[f64], current: Option<f64>, alpha: f64| {
            let mut c = temperature_grid(widths);
            let (best, rules) = choose(&mut c, 2.5, incumbent(current.map(|t| (10, 50, t)), alpha));
            assert_eq!(c[best].evaluation.params.temperature, rules.temperature.chosen);
            (rules.temperature.chosen, rules.temperature.choice)
        };
        // Narrower by 10 at every origin: a constant differential, p 0. Lower on average
        // (39.1 vs 40) but back and forth: not significant.
        let steady = [30.0; 10];
        let noisy = [30.0, 48.0, 31.0, 49.0, 30.0, 48.0, 31.0, 49.0, 30.0, 45.0];
        incumbent_rule_cases(
            |noise, current, alpha| pick(if noise { &noisy } else { &steady }, current, alpha),
            (1.0, 1.2, 0.9),
            0.5,
        );
    }

    /// The cases every incumbent rule meets, for `pick(noisy, current, alpha)`: the grid's
    /// `lowest` value beats `current` steadily (p 0) or noisily (p in (0.05, max_p));
    /// `outside` is not in the grid.
    fn incumbent_rule_cases<T: Copy + PartialEq + std::fmt::Debug>(
        pick: impl Fn(bool, Option<T>, f64) -> (T, IncumbentChoice<T>),
        (current, lowest, outside): (T, T, T),
        max_p: f64,
    ) {
        let (v, choice) = pick(false, Some(current), 0.05);
        assert_eq!(v, lowest);
        assert!(
            matches!(choice, IncumbentChoice::Significant { current: c, p_value, .. } if c == current && p_value == 0.0),
            "{choice:?}"
        );
        let (v, choice) = pick(true, Some(current), 0.05);
        assert_eq!(v, current);
        match choice {
            IncumbentChoice::KeptCurrent {
                lowest: l,
                p_value,
                alpha,
            } => {
                assert_eq!(l, lowest);
                assert!((alpha - 0.05).abs() < 1e-12);
                assert!(p_value > 0.05 && p_value < max_p, "{p_value}");
            }
            other => panic!("{other:?}"),
        }
        // Alpha 1 lets the lowest score win outright; no current value, or one outside the
        // grid, gives the lowest score; the current one scoring lowest is kept as such.
        assert_eq!(pick(true, Some(current), 1.0).0, lowest);
        assert_eq!(pick(true, None, 0.05), (lowest, IncumbentChoice::Lowest));
        assert_eq!(pick(true, Some(outside), 0.05), (lowest, IncumbentChoice::Lowest));
        assert_eq!(
            pick(true, Some(lowest), 0.05),
            (lowest, IncumbentChoice::CurrentIsLowest)
        );
    }

    /// Contexts 10 and 20 at one (samples, temperature) over ten origins (actual 100): the
    /// current context 20 forecasts 104 everywhere; context 10 forecasts `means`, lower RMSE.
    fn context_grid(means: &[f64]) -> Vec<ConfigResult> {
        let at =
            |m: &[f64]| -> Vec<(f64, [f64; 2])> { m.iter().map(|m| (*m, [m - 10.0, m + 10.0])).collect() };
        let rmse = |m: &[f64]| (m.iter().map(|m| (m - 100.0).powi(2)).sum::<f64>() / m.len() as f64).sqrt();
        vec![
            config((10, 50, 1.0), rmse(means), 1.0, &at(means)),
            config((20, 50, 1.0), 4.0, 1.0, &at(&[104.0; 10])),
        ]
    }

    #[test]
    fn the_current_context_length_stays_unless_beaten_significantly() {
        let pick = |means: &[f64], current: Option<usize>, alpha: f64| {
            let mut c = context_grid(means);
            let (best, rules) = choose(&mut c, 2.5, incumbent(current.map(|l| (l, 50, 1.0)), alpha));
            assert_eq!(
                c[best].evaluation.params.context_length,
                rules.context_length.chosen
            );
            (rules.context_length.chosen, rules.context_length.choice)
        };
        // Squared error 4 against 16 at every origin: a constant differential, p 0. Mean
        // squared error 15.6 against 16, back and forth: not significant.
        let steady = [102.0; 10];
        let noisy = [
            101.0, 105.5, 101.0, 105.5, 101.0, 105.5, 101.0, 105.5, 101.0, 105.5,
        ];
        incumbent_rule_cases(
            |noise, current, alpha| pick(if noise { &noisy } else { &steady }, current, alpha),
            (20, 10, 30),
            0.7,
        );
    }

    /// The num_samples rule on one (context, temperature): n = 200 forecasts 100 in
    /// [90, 110] (width 20); n = 100 is off by (0.1, 0.4, 0.2) = 2 % of the width at the
    /// first point and `second` % at the second; n = 50 by 1 / 20 = 5 %.
    fn samples_grid(second: f64) -> Vec<ConfigResult> {
        let reference = [(100.0, [90.0, 110.0]); 2];
        let d = second / 100.0 * 20.0;
        vec![
            config((10, 50, 1.0), 1.0, 1.0, &[(100.0, [91.0, 109.0]); 2]),
            config(
                (10, 100, 1.0),
                1.0,
                1.0,
                &[(100.1, [90.4, 109.8]), (100.0, [90.0 + d, 110.0])],
            ),
            config((10, 200, 1.0), 1.0, 1.0, &reference),
        ]
    }

    #[test]
    fn num_samples_is_the_smallest_within_the_tolerance_of_the_largest() {
        let pick = |second: f64, tol: f64| {
            let mut c = samples_grid(second);
            let (best, rules) = choose(&mut c, tol, NO_INCUMBENT);
            assert_eq!(c[best].evaluation.params.num_samples, rules.num_samples.chosen);
            (
                rules.num_samples.chosen,
                c.iter().map(|c| c.mc_deviation_pct).collect::<Vec<_>>(),
            )
        };
        let (n, dev) = pick(1.0, 2.5);
        assert_eq!(n, 100);
        assert!(
            (dev[0] - 5.0).abs() < 1e-9 && (dev[1] - 2.0).abs() < 1e-9 && dev[2] == 0.0,
            "{dev:?}"
        );
        // The tolerance edge is inclusive; tighter takes the largest, looser the smallest.
        assert_eq!(pick(1.0, 2.0).0, 100);
        assert_eq!(pick(1.0, 1.99).0, 200);
        assert_eq!(pick(1.0, 5.0).0, 50);
        // The worst point counts: 3 % at the second point fails a 2.5 % tolerance.
        let (n, dev) = pick(3.0, 2.5);
        assert!((dev[1] - 3.0).abs() < 1e-9, "{dev:?}");
        assert_eq!(n, 200);
    }

    #[test]
    fn context_by_rmse_and_temperature_by_interval_score_at_the_reference_draws() {
        let pts = [(100.0, [90.0, 110.0])];
        let mut c = Vec::new();
        for ctx in [10, 20] {
            for n in [50, 200] {
                for t in [0.8, 1.0, 1.2] {
                    // Context 20 has the lower RMSE only at the reference (200, 1.0); its
                    // interval score is lowest at T 1.2, context 10's at T 0.8.
                    let rmse = match (ctx, n, t) {
                        (20, 200, 1.0) => 4.0,
                        (20, ..) => 9.0,
                        _ => 5.0,
                    };
                    let interval = match (ctx, t) {
                        (20, 1.2) => 30.0,
                        (10, 0.8) => 20.0,
                        _ => 40.0,
                    };
                    c.push(config((ctx, n, t), rmse, interval, &pts));
                }
            }
        }
        let (best, rules) = choose(&mut c, 2.5, NO_INCUMBENT);
        assert_eq!(rules.context_length.chosen, 20);
        assert_eq!(rules.context_length.rmse, vec![(10, 5.0), (20, 4.0)]);
        assert_eq!(
            (
                rules.context_length.at_num_samples,
                rules.context_length.at_temperature
            ),
            (200, 1.0)
        );
        assert_eq!(rules.temperature.chosen, 1.2);
        assert_eq!(rules.temperature.at_context_length, 20);
        // Identical forecasts at every n: the smallest n is within any tolerance.
        assert_eq!(rules.num_samples.chosen, 50);
        assert_eq!(
            c[best].evaluation.params,
            InferenceParams {
                context_length: 20,
                num_samples: 50,
                temperature: 1.2
            }
        );
        // NaN scores never win.
        for x in &mut c {
            if x.evaluation.params.context_length == 20 {
                x.evaluation.metrics.rmse = f64::NAN;
            }
        }
        assert_eq!(choose(&mut c, 2.5, NO_INCUMBENT).1.context_length.chosen, 10);
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

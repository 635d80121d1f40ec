//! The weekly job replayed on history, as production would have run it: on every run date the
//! series as it was known then, the same `decide` as `run`, and the decision applied to configs
//! and history held in memory. Between runs, every business day's forecast is made with the
//! config then in effect; those forecasts are the tracked predictions later runs' performance
//! trigger reads, and what the policy is scored on, beside the configs it started from (never
//! changed) and the random walk. Pure given the model: one [`ForwardCache`] for the whole
//! replay, so a (context length, origin) forward is computed once.

use std::collections::BTreeMap;

use anyhow::ensure;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::domain::{Horizon, InferenceParams};
use crate::forecast::{self, QuantileForecast, QuantileModel};
use crate::forecaster_config::ForecasterConfig;
use crate::history::{Action, HistoryRecord};
use crate::policy::applier::{self, Applier, MemoryApplier};
use crate::policy::decide::{self, Decision, World};
use crate::policy::metrics;
use crate::policy::outcome::{self, Effect, Outcome, RecordContext};
use crate::policy::search::ForwardCache;
use crate::series::{Prediction, Series};
use crate::triggers::drift::log_returns;
use crate::triggers::episodes::{self, AlarmCheck, AlarmSummary};
use crate::triggers::tracked_errors;

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplaySpec {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Days between runs.
    pub every_days: i64,
}

/// Everything a replay reads.
pub struct ReplayInput<'a> {
    pub settings: &'a Settings,
    /// The whole series; each run sees it cut at its date.
    pub series: &'a Series,
    pub series_name: &'a str,
    pub model: &'a dyn QuantileModel,
    pub model_id: &'a str,
    /// The model's dimensions, for the inference cost of criterion 3.
    pub dims: crate::policy::cost::ModelDims,
    /// The configs in effect at `from`, one per horizon replayed.
    pub initial: Vec<ForecasterConfig>,
}

/// Progress of a replay, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum ReplayProgress {
    Started {
        runs: usize,
    },
    /// Forward passes computed up front, before the first run (see [`prefetch`]).
    Forwards {
        done: usize,
        total: usize,
    },
    RunFinished {
        date: NaiveDate,
    },
}

/// One config taking effect for the origins after `after`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InEffect {
    /// The run date; None for the config the replay started from.
    pub after: Option<NaiveDate>,
    pub params: InferenceParams,
    pub action: Action,
}

/// One arm's scores over the business-day forecasts: every step 1..=h of each path, as the
/// validation scores the confirmation origins (so a deploy's promise and what it realized are
/// the same measure).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// (origin, step) pairs scored.
    pub forecasts: usize,
    pub rmse: f64,
    pub mae: f64,
    pub mape: f64,
    /// None for the random walk, which has no distribution.
    pub wql: Option<f64>,
    pub coverage_80: Option<f64>,
    pub coverage_95: Option<f64>,
    pub mean_ci95_width: Option<f64>,
}

/// A deploy, what it promised and what it delivered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeployCheck {
    pub date: NaiveDate,
    pub from: InferenceParams,
    pub to: InferenceParams,
    /// `100 (1 - candidate RMSE / current RMSE)` on the validation origins (positive = better).
    pub promised_improvement_pct: f64,
    /// The same on the business-day forecasts while the config was in effect (up to the next
    /// change of this horizon or the end), against the config it replaced on the same origins.
    pub realized_improvement_pct: Option<f64>,
    pub origins: usize,
}

/// One config of the search grid held fixed over the whole replay, scored on the same origins:
/// what a hindsight choice of one config would have achieved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixedConfig {
    pub params: InferenceParams,
    pub scores: Scores,
    /// `100 (1 - its RMSE / static RMSE)`.
    pub improvement_vs_static_pct: f64,
}

/// One horizon's replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HorizonReplay {
    pub horizon: Horizon,
    pub timeline: Vec<InEffect>,
    pub policy: Scores,
    /// The configs at `from`, never changed.
    pub static_configs: Scores,
    pub random_walk: Scores,
    /// `100 (1 - policy RMSE / static RMSE)`.
    pub improvement_vs_static_pct: f64,
    /// Every config of the search grid, fixed over the period, best RMSE first.
    pub fixed_configs: Vec<FixedConfig>,
    /// The share of the hindsight-best fixed config's gain over the static configs that the
    /// policy realized, `100 (static - policy) / (static - best)` in RMSE; None when no fixed
    /// config beats the static configs.
    pub capture_pct: Option<f64>,
    pub runs: usize,
    pub optimizations: usize,
    pub deploys: usize,
    pub rejections: usize,
    /// Approved candidates that began a live trial, and trials the candidate lost.
    pub trials_started: usize,
    pub trials_failed: usize,
    pub rollbacks: usize,
    pub failures: usize,
    /// Trigger name -> horizon-weeks it counted in.
    pub trigger_firings: BTreeMap<String, usize>,
    /// The alarms' episodes (fired, suppressed or not) and how many the following 4 weeks
    /// confirmed (`triggers::episodes`).
    pub alarms: AlarmSummary,
    pub deploy_checks: Vec<DeployCheck>,
    /// First and last origin scored.
    pub first_origin: Option<NaiveDate>,
    pub last_origin: Option<NaiveDate>,
    /// Per origin date: mean squared error over the path's steps of policy, static and random
    /// walk (for the picture).
    #[serde(skip)]
    pub squared_errors: Vec<(NaiveDate, f64, f64, f64)>,
}

/// The policy's key figures over all horizons.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kpis {
    /// Horizon-runs that completed their decision without an error.
    pub automation_rate: f64,
    /// Approved candidates among triggered optimizations.
    pub validation_success_rate: Option<f64>,
    /// Mean realized improvement of the deploys (positive = better than the config replaced).
    pub mean_realized_improvement_pct: Option<f64>,
    /// Triggered optimizations that deployed nothing, or deployed a config that did worse
    /// than the one it replaced, among all triggered optimizations.
    pub false_positive_trigger_rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub every_days: i64,
    pub run_dates: usize,
    pub horizons: Vec<HorizonReplay>,
    pub kpis: Kpis,
    /// Forward passes computed, and what a replay without the shared cache would compute.
    pub forwards_computed: usize,
    pub forwards_requested: usize,
}

/// One horizon's record of the replay, carried from run to run (its configs live in the
/// [`MemoryApplier`]).
struct State {
    horizon: Horizon,
    timeline: Vec<(Option<NaiveDate>, ForecasterConfig, Action)>,
    /// (run date, config replaced, config deployed, promised improvement %).
    deploys: Vec<(NaiveDate, ForecasterConfig, ForecasterConfig, f64)>,
    runs: usize,
    optimizations: usize,
    failures: usize,
    counts: BTreeMap<Action, usize>,
    triggers: BTreeMap<String, usize>,
    alarm_checks: Vec<AlarmCheck>,
}

impl State {
    fn new(initial: &ForecasterConfig) -> State {
        State {
            horizon: initial.horizon,
            timeline: vec![(None, initial.clone(), Action::NoTrigger)],
            deploys: Vec::new(),
            runs: 0,
            optimizations: 0,
            failures: 0,
            counts: BTreeMap::new(),
            triggers: BTreeMap::new(),
            alarm_checks: Vec::new(),
        }
    }

    /// Counts one run's outcome; `before` and `after` are the configs in effect around it.
    fn count(
        &mut self,
        outcome: &Outcome,
        d: NaiveDate,
        before: &ForecasterConfig,
        after: &ForecasterConfig,
    ) {
        self.runs += 1;
        let action = outcome.action();
        *self.counts.entry(action).or_default() += 1;
        if action == Action::Failed {
            self.failures += 1;
        }
        if outcome
            .decision
            .as_ref()
            .is_some_and(Decision::is_triggered_optimization)
        {
            self.optimizations += 1;
        }
        self.alarm_checks
            .extend(outcome.triggers().map(|t| AlarmCheck::of(d, t)));
        // A trial's end validates the candidate again: its triggers are not counted again.
        if let Some(t) = outcome.triggers().filter(|_| outcome.trial().is_none()) {
            for kind in t.triggers() {
                *self.triggers.entry(kind.as_str().to_string()).or_default() += 1;
            }
        }
        match &outcome.effect {
            Effect::Deployed(_) => {
                let promised = outcome.validation().map_or(f64::NAN, |v| {
                    metrics::improvement_pct(v.candidate.metrics.rmse, v.current.metrics.rmse)
                });
                self.deploys.push((d, before.clone(), after.clone(), promised));
                self.timeline.push((Some(d), after.clone(), action));
            }
            Effect::RolledBack(_) => self.timeline.push((Some(d), after.clone(), action)),
            _ => {}
        }
    }
}

/// The run dates: `from`, then every `every_days` days, up to `to`.
pub fn run_dates(spec: &ReplaySpec) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = spec.from;
    while d <= spec.to {
        out.push(d);
        d += Duration::days(spec.every_days);
    }
    out
}

/// A run's clock: the end of its day, as `--as-of` has it.
fn clock(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(23, 59, 59).expect("a valid time").and_utc()
}

/// The replay in progress: what production keeps between runs, in memory.
struct Sim<'a> {
    input: &'a ReplayInput<'a>,
    settings: Settings,
    cache: ForwardCache,
    applier: MemoryApplier,
    /// Longest horizon first: shorter ones reuse its forwards.
    states: Vec<State>,
    history: Vec<HistoryRecord>,
    predictions: Vec<Prediction>,
}

impl Sim<'_> {
    /// The weekly job on `d`: `decide` and [`applier::apply`] per horizon, as `run` does.
    fn run(&mut self, d: NaiveDate) -> anyhow::Result<()> {
        let known = self.input.series.truncated_at(d);
        let now = clock(d);
        self.applier.now = now;
        let tracked = tracked_on(&self.predictions, d);
        let run_id = format!("replay-{}", d.format("%Y%m%d"));
        let mut records = Vec::new();
        for st in &mut self.states {
            let world = World {
                settings: &self.settings,
                now,
                series: &known,
                series_name: self.input.series_name,
                predictions: &tracked,
                history: &self.history,
                model: Some(self.input.model),
                model_id: self.input.model_id,
                dims: Some(self.input.dims),
            };
            let before = self.applier.current(st.horizon)?;
            let rc = RecordContext {
                run_id: &run_id,
                time: decide::record_time(now),
                old: outcome::params(&before.params()),
                duration_seconds: 0.0,
                mail_error: None,
            };
            let outcome = match decide::decide(&world, &before, false, &mut self.cache, &mut |_| {}) {
                Ok(decision) => applier::apply(&mut self.applier, st.horizon, decision, &rc),
                Err(e) => Outcome::failed(&e),
            };
            st.count(&outcome, d, &before, &self.applier.current(st.horizon)?);
            records.extend(outcome.record(st.horizon, &rc));
        }
        self.history.extend(records);
        Ok(())
    }

    /// The business-day forecasts after `d` up to `until`, each with the config then in effect.
    fn forecast(&mut self, d: NaiveDate, until: NaiveDate) -> anyhow::Result<()> {
        for st in &self.states {
            let cfg = self.applier.current(st.horizon)?;
            daily_forecasts(self.input, &mut self.cache, &cfg, d, until, &mut self.predictions)?;
        }
        Ok(())
    }
}

/// The forecasts made up to `d` as a run on `d` sees them: targets after it are not known yet.
fn tracked_on(predictions: &[Prediction], d: NaiveDate) -> Vec<Prediction> {
    predictions
        .iter()
        .filter(|p| p.forecast_date <= d)
        .map(|p| Prediction {
            actual: p.actual.filter(|_| p.target_date <= d),
            ..p.clone()
        })
        .collect()
}

/// Replays the weekly job over `spec`.
pub fn replay(
    input: &ReplayInput<'_>,
    spec: &ReplaySpec,
    progress: &mut dyn FnMut(ReplayProgress),
) -> anyhow::Result<ReplayReport> {
    ensure!(spec.every_days >= 1, "replay needs --every >= 1 day");
    ensure!(spec.from <= spec.to, "replay needs --from on or before --to");
    ensure!(!input.initial.is_empty(), "replay needs at least one horizon");
    let dates = run_dates(spec);
    progress(ReplayProgress::Started { runs: dates.len() });
    // The search table's timing column is shown only, and a replay prints no search table:
    // its searches time nothing (decisions never read a timing).
    let mut settings = input.settings.clone();
    settings.search.timing_runs = 0;
    let mut initial = input.initial.clone();
    initial.sort_by_key(|c| std::cmp::Reverse(c.horizon));
    let mut sim = Sim {
        input,
        applier: MemoryApplier::new(&initial, settings.deploy.backups_to_keep, clock(spec.from)),
        states: initial.iter().map(State::new).collect(),
        settings,
        cache: ForwardCache::new(),
        history: Vec::new(),
        predictions: Vec::new(),
    };
    let prefetched = prefetch(input, &sim.settings, spec, &initial, &mut sim.cache, progress)?;
    for (k, &d) in dates.iter().enumerate() {
        sim.run(d)?;
        let until = dates.get(k + 1).map_or(spec.to, |n| *n - Duration::days(1));
        sim.forecast(d, until)?;
        progress(ReplayProgress::RunFinished { date: d });
    }
    let mut horizons = Vec::new();
    for st in &sim.states {
        let mut scored = score(input, &mut sim.cache, spec, st)?;
        scored.alarms = alarm_summary(input, &sim.predictions, st, &sim.settings);
        horizons.push(scored);
    }
    horizons.sort_by_key(|h| h.horizon);
    let kpis = kpis(&horizons);
    Ok(ReplayReport {
        from: spec.from,
        to: spec.to,
        every_days: spec.every_days,
        run_dates: dates.len(),
        horizons,
        kpis,
        forwards_computed: sim.cache.series_run,
        forwards_requested: sim.cache.series_run + sim.cache.series_reused - prefetched,
    })
}

/// The alarm episodes of one horizon's runs, confirmed from the whole series and the daily
/// forecasts of the configs in effect.
fn alarm_summary(
    input: &ReplayInput<'_>,
    predictions: &[Prediction],
    st: &State,
    settings: &Settings,
) -> AlarmSummary {
    let errors = tracked_errors(predictions, st.horizon, input.series);
    episodes::summarize(
        &st.alarm_checks,
        &log_returns(input.series),
        &errors,
        &settings.triggers,
    )
}

/// Contexts sent to the model at once by [`prefetch`].
const PREFETCH_BATCH: usize = 32;

/// Computes up front, in full batches, the forwards the replay will ask for: per horizon
/// (longest first, whose longer forecasts serve the shorter horizons) and per context length
/// of its grid and initial config, the lattice origins of the first run's search and every
/// business day from `from` to `to` (the daily forecasts, the fixed-config scores, probation
/// and the later searches' origins); the business days between the first run's trigger
/// hindcast and `from` only at the initial config's context, the one that hindcast scores.
/// A config deployed within the hindcast window of `from` asks for a few more, computed when
/// asked. A forecast at an origin reads only the values up to it, so computing it early
/// changes nothing but the batch sizes; a week's handful of new origins would otherwise each
/// cost a small, slow batch. Returns the contexts requested here (not requests a replay
/// without the cache would make).
fn prefetch(
    input: &ReplayInput<'_>,
    settings: &Settings,
    spec: &ReplaySpec,
    initial: &[ForecasterConfig],
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(ReplayProgress),
) -> anyhow::Result<usize> {
    let configs: Vec<&ForecasterConfig> = initial.iter().collect();
    let plan = prefetch_plan(input.series, settings, spec, &configs);
    let total: usize = plan.iter().map(|p| p.origins.len()).sum();
    let mut done = 0;
    progress(ReplayProgress::Forwards { done, total });
    for p in &plan {
        for chunk in p.origins.chunks(PREFETCH_BATCH) {
            cache.forward(
                input.model,
                input.series,
                chunk,
                p.context_length,
                p.steps,
                &mut |_| {},
            )?;
            done += chunk.len();
            progress(ReplayProgress::Forwards { done, total });
        }
    }
    Ok(total)
}

/// One context length's forwards computed up front: `steps` ahead at each origin.
#[derive(Debug)]
struct Prefetch {
    context_length: usize,
    steps: usize,
    origins: Vec<usize>,
}

/// What [`prefetch`] computes, per config in the order given.
fn prefetch_plan(
    series: &Series,
    settings: &Settings,
    spec: &ReplaySpec,
    configs: &[&ForecasterConfig],
) -> Vec<Prefetch> {
    let first = series.truncated_at(spec.from);
    let since = spec.from - Duration::days(i64::from(settings.triggers.performance_baseline_days));
    let start = series.dates.partition_point(|x| *x < spec.from);
    let end = series.dates.partition_point(|x| *x <= spec.to);
    let k = settings.search.origin_spacing;
    let mut plan = Vec::new();
    for cfg in configs {
        let h = cfg.horizon.steps();
        let hindcast_start = crate::policy::hindcast::origins_with_targets_after(&first, h, since)
            .first()
            .copied()
            .unwrap_or(first.len());
        let lattice_start = crate::policy::backtest::split_origins(&first, h, &settings.search)
            .ok()
            .and_then(|split| split.all().first().copied())
            .unwrap_or(hindcast_start);
        let mut lengths: Vec<usize> = settings.search.context_lengths_for(cfg.horizon).to_vec();
        lengths.push(cfg.context_length);
        lengths.sort_unstable();
        lengths.dedup();
        for context_length in lengths {
            let daily_start = if context_length == cfg.context_length {
                hindcast_start
            } else {
                start
            };
            let origins = (lattice_start.min(daily_start)..end.min(series.len().saturating_sub(h)))
                .filter(|&i| {
                    (i >= daily_start || (i >= lattice_start && i % k == 0)) && !series.values[i].is_nan()
                })
                .collect();
            plan.push(Prefetch {
                context_length,
                steps: h,
                origins,
            });
        }
    }
    plan
}

/// Business-day origins of the full series with dates in `[from, to]` whose step-`h` target
/// is observed (and the origin too).
fn scored_origins(series: &Series, h: usize, from: NaiveDate, to: NaiveDate) -> Vec<usize> {
    let start = series.dates.partition_point(|x| *x < from);
    let end = series.dates.partition_point(|x| *x <= to);
    (start..end)
        .filter(|&i| i + h < series.len() && !series.values[i].is_nan() && !series.values[i + h].is_nan())
        .collect()
}

/// One step's forecast: (mean, CI80, CI95, the 9 adjusted levels).
type StepForecast = (f64, [f64; 2], [f64; 2], [f64; 9]);

/// The forecasts of `params` at each origin for the 0-based steps in `steps` (of a forward
/// for `h` steps); only those steps are summarized.
fn forecasts_at(
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
fn path_forecasts(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    params: &InferenceParams,
    h: usize,
    origins: &[usize],
) -> anyhow::Result<Vec<Vec<StepForecast>>> {
    forecasts_at(input, cache, params, h, origins, 0..h)
}

/// The step-`h` forecast of `params` at each origin (what production tracks).
fn step_forecasts(
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

/// Every (forecast, actual) pair of the paths at `origins`, steps 1..=h, with the step's
/// forecast; pairs whose target is missing are left out.
fn path_pairs(
    series: &Series,
    origins: &[usize],
    paths: &[Vec<StepForecast>],
) -> (Vec<(f64, f64)>, Vec<StepForecast>) {
    let mut points = Vec::new();
    let mut dists = Vec::new();
    for (&i, path) in origins.iter().zip(paths) {
        for (k, f) in path.iter().enumerate() {
            let a = series.values[i + k + 1];
            if !a.is_nan() {
                points.push((f.0, a));
                dists.push(*f);
            }
        }
    }
    (points, dists)
}

/// Mean squared error over one path's observed steps.
fn path_mse(series: &Series, i: usize, forecast: impl Fn(usize) -> f64, h: usize) -> f64 {
    let errors: Vec<f64> = (1..=h)
        .filter(|k| !series.values[i + k].is_nan())
        .map(|k| (forecast(k) - series.values[i + k]).powi(2))
        .collect();
    errors.iter().sum::<f64>() / errors.len().max(1) as f64
}

/// The forecasts `cfg` makes on the business days after `after` up to `until`, as tracked
/// predictions (the actual filled in; callers hide it until the target date is past).
fn daily_forecasts(
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

/// The config in effect for an origin dated `date`.
fn in_effect(
    timeline: &[(Option<NaiveDate>, ForecasterConfig, Action)],
    date: NaiveDate,
) -> &ForecasterConfig {
    &timeline
        .iter()
        .rev()
        .find(|(after, _, _)| after.is_none_or(|a| date > a))
        .expect("the first entry applies to every date")
        .1
}

fn scores(points: &[(f64, f64)], dist: Option<&[StepForecast]>) -> anyhow::Result<Scores> {
    let errors: Vec<f64> = points.iter().map(|(f, a)| f - a).collect();
    let forecasts: Vec<f64> = points.iter().map(|p| p.0).collect();
    let actuals: Vec<f64> = points.iter().map(|p| p.1).collect();
    let c80: Option<Vec<[f64; 2]>> = dist.map(|f| f.iter().map(|x| x.1).collect());
    let c95: Option<Vec<[f64; 2]>> = dist.map(|f| f.iter().map(|x| x.2).collect());
    let q: Option<Vec<[f64; 9]>> = dist.map(|f| f.iter().map(|x| x.3).collect());
    Ok(Scores {
        forecasts: points.len(),
        rmse: metrics::rmse(&errors),
        mae: metrics::mae(&errors),
        mape: metrics::mape(&forecasts, &actuals)?,
        wql: q.map(|q| metrics::wql(&actuals, &q)).transpose()?,
        coverage_80: c80.map(|c| metrics::coverage(&actuals, &c)),
        coverage_95: c95.as_ref().map(|c| metrics::coverage(&actuals, c)),
        mean_ci95_width: c95.as_ref().map(|c| metrics::mean_width(c)),
    })
}

/// The scores of forecast paths at `origins` (steps 1..=h each).
fn arm(series: &Series, paths: &[Vec<StepForecast>], origins: &[usize]) -> anyhow::Result<Scores> {
    let (points, dists) = path_pairs(series, origins, paths);
    scores(&points, Some(&dists))
}

/// Each deploy's promise beside what it realized while in effect (up to the horizon's next
/// change or the end), against the config it replaced on the same origins.
fn deploy_checks(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    spec: &ReplaySpec,
    st: &State,
) -> anyhow::Result<Vec<DeployCheck>> {
    let (s, hs) = (input.series, st.horizon.steps());
    let mut out = Vec::new();
    for (date, old, new, promised) in &st.deploys {
        let end = st
            .timeline
            .iter()
            .filter_map(|(after, _, _)| *after)
            .find(|a| a > date)
            .unwrap_or(spec.to);
        let window = scored_origins(s, hs, *date + Duration::days(1), end);
        let realized = if window.is_empty() {
            None
        } else {
            let new_scores = arm(
                s,
                &path_forecasts(input, cache, &new.params(), hs, &window)?,
                &window,
            )?;
            let old_scores = arm(
                s,
                &path_forecasts(input, cache, &old.params(), hs, &window)?,
                &window,
            )?;
            Some(metrics::improvement_pct(new_scores.rmse, old_scores.rmse))
        };
        out.push(DeployCheck {
            date: *date,
            from: old.params(),
            to: new.params(),
            promised_improvement_pct: *promised,
            realized_improvement_pct: realized,
            origins: window.len(),
        });
    }
    Ok(out)
}

/// Every grid config of `h` held fixed over the replay's origins, best RMSE first.
fn fixed_configs(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    h: Horizon,
    origins: &[usize],
    static_scores: &Scores,
) -> anyhow::Result<Vec<FixedConfig>> {
    let mut out = Vec::new();
    for p in crate::policy::search::grid(&input.settings.search, h)? {
        let scores = arm(
            input.series,
            &path_forecasts(input, cache, &p, h.steps(), origins)?,
            origins,
        )?;
        out.push(FixedConfig {
            params: p,
            improvement_vs_static_pct: metrics::improvement_pct(scores.rmse, static_scores.rmse),
            scores,
        });
    }
    out.sort_by(|a, b| a.scores.rmse.total_cmp(&b.scores.rmse));
    Ok(out)
}

/// Scores one horizon's policy, its static configs and the random walk over the replay.
fn score(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    spec: &ReplaySpec,
    st: &State,
) -> anyhow::Result<HorizonReplay> {
    let h = st.horizon;
    let s = input.series;
    let origins = scored_origins(s, h.steps(), spec.from, spec.to);
    ensure!(
        !origins.is_empty(),
        "{}: no business day in {}..{} has its {h} target observed; replay an earlier period",
        input.series_name,
        spec.from,
        spec.to
    );
    // Policy: each origin with its config in effect, grouped by config for batched forwards.
    let hs = h.steps();
    let mut policy: Vec<Vec<StepForecast>> = vec![Vec::new(); origins.len()];
    let mut groups: BTreeMap<String, (InferenceParams, Vec<usize>)> = BTreeMap::new();
    for (k, &i) in origins.iter().enumerate() {
        let p = in_effect(&st.timeline, s.dates[i]).params();
        groups.entry(p.to_string()).or_insert((p, Vec::new())).1.push(k);
    }
    for (p, ks) in groups.values() {
        let os: Vec<usize> = ks.iter().map(|&k| origins[k]).collect();
        for (&k, f) in ks.iter().zip(path_forecasts(input, cache, p, hs, &os)?) {
            policy[k] = f;
        }
    }
    let initial = st.timeline[0].1.params();
    let fixed = path_forecasts(input, cache, &initial, hs, &origins)?;
    let rw_points: Vec<(f64, f64)> = origins
        .iter()
        .flat_map(|&i| (1..=hs).map(move |k| (s.values[i], s.values[i + k])))
        .filter(|p| !p.1.is_nan())
        .collect();
    let policy_scores = arm(s, &policy, &origins)?;
    let static_scores = arm(s, &fixed, &origins)?;
    let squared_errors = origins
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            (
                s.dates[i],
                path_mse(s, i, |t| policy[k][t - 1].0, hs),
                path_mse(s, i, |t| fixed[k][t - 1].0, hs),
                path_mse(s, i, |_| s.values[i], hs),
            )
        })
        .collect();
    let deploy_checks = deploy_checks(input, cache, spec, st)?;
    let fixed_configs = fixed_configs(input, cache, h, &origins, &static_scores)?;
    let capture_pct = fixed_configs
        .first()
        .filter(|best| best.scores.rmse < static_scores.rmse)
        .map(|best| {
            100.0 * (static_scores.rmse - policy_scores.rmse) / (static_scores.rmse - best.scores.rmse)
        });
    let count = |a: Action| st.counts.get(&a).copied().unwrap_or(0);
    Ok(HorizonReplay {
        horizon: h,
        timeline: st
            .timeline
            .iter()
            .map(|(after, c, action)| InEffect {
                after: *after,
                params: c.params(),
                action: *action,
            })
            .collect(),
        improvement_vs_static_pct: metrics::improvement_pct(policy_scores.rmse, static_scores.rmse),
        policy: policy_scores,
        static_configs: static_scores,
        fixed_configs,
        capture_pct,
        random_walk: scores(&rw_points, None)?,
        runs: st.runs,
        optimizations: st.optimizations,
        deploys: count(Action::Deployed),
        rejections: count(Action::Rejected),
        trials_started: count(Action::TrialStarted),
        trials_failed: count(Action::TrialFailed),
        rollbacks: count(Action::RolledBack),
        failures: st.failures,
        trigger_firings: st.triggers.clone(),
        alarms: AlarmSummary::default(),
        deploy_checks,
        first_origin: origins.first().map(|&i| s.dates[i]),
        last_origin: origins.last().map(|&i| s.dates[i]),
        squared_errors,
    })
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn kpis(horizons: &[HorizonReplay]) -> Kpis {
    let runs: usize = horizons.iter().map(|h| h.runs).sum();
    let failures: usize = horizons.iter().map(|h| h.failures).sum();
    let optimizations: usize = horizons.iter().map(|h| h.optimizations).sum();
    let deploys: usize = horizons.iter().map(|h| h.deploys).sum();
    let realized: Vec<f64> = horizons
        .iter()
        .flat_map(|h| h.deploy_checks.iter().filter_map(|d| d.realized_improvement_pct))
        .collect();
    let worse = realized.iter().filter(|r| **r < 0.0).count();
    Kpis {
        automation_rate: ratio(runs - failures, runs).unwrap_or(1.0),
        validation_success_rate: ratio(deploys, optimizations),
        mean_realized_improvement_pct: (!realized.is_empty())
            .then(|| realized.iter().sum::<f64>() / realized.len() as f64),
        false_positive_trigger_rate: ratio(optimizations - deploys + worse, optimizations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dates_step_and_stop_at_to() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let spec = ReplaySpec {
            from: d("2024-01-07"),
            to: d("2024-01-28"),
            every_days: 7,
        };
        assert_eq!(
            run_dates(&spec),
            [d("2024-01-07"), d("2024-01-14"), d("2024-01-21"), d("2024-01-28")]
        );
    }

    #[test]
    fn the_config_in_effect_changes_the_day_after_its_run() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let now = clock(d("2024-01-01"));
        let a = ForecasterConfig::initial(Horizon(7), "m", now);
        let mut b = a.clone();
        b.context_length = 90;
        let t = vec![
            (None, a.clone(), Action::NoTrigger),
            (Some(d("2024-01-07")), b.clone(), Action::Deployed),
        ];
        assert_eq!(in_effect(&t, d("2024-01-05")).context_length, 180);
        assert_eq!(in_effect(&t, d("2024-01-07")).context_length, 180);
        assert_eq!(in_effect(&t, d("2024-01-08")).context_length, 90);
    }

    #[test]
    fn one_cache_serves_a_series_and_its_prefixes_but_not_another_series() {
        struct Last;
        impl QuantileModel for Last {
            fn max_context(&self) -> usize {
                2048
            }
            fn predict(&self, c: &[&[f64]], h: usize) -> anyhow::Result<Vec<QuantileForecast>> {
                Ok(c.iter()
                    .map(|x| QuantileForecast {
                        values: vec![vec![*x.last().unwrap(); h]; 9],
                    })
                    .collect())
            }
        }
        let full = crate::data::demo::synthetic_usdclp(3, 300, crate::data::demo::DEFAULT_START);
        let cut = full.truncated_at(full.dates[199]);
        let mut cache = ForwardCache::new();
        cache
            .forward(&Last, &cut, &[150, 160], 50, 5, &mut |_| {})
            .unwrap();
        cache
            .forward(&Last, &full, &[150, 160, 250], 50, 5, &mut |_| {})
            .unwrap();
        assert_eq!((cache.series_run, cache.series_reused), (3, 2));
        cache.forward(&Last, &cut, &[160], 50, 5, &mut |_| {}).unwrap();
        assert_eq!(cache.series_reused, 3);
        let mut other = full.clone();
        other.values[10] += 1.0;
        assert!(cache.forward(&Last, &other, &[150], 50, 5, &mut |_| {}).is_err());
    }

    #[test]
    fn prefetch_covers_the_first_search_and_hindcast_and_every_later_day_but_no_more() {
        let series = crate::data::demo::synthetic_usdclp(5, 1500, crate::data::demo::DEFAULT_START);
        let settings = Settings::default();
        let spec = ReplaySpec {
            from: series.dates[1200],
            to: series.dates[1300],
            every_days: 7,
        };
        let cfg = ForecasterConfig::initial(Horizon(7), "m", clock(spec.from));
        let plan = prefetch_plan(&series, &settings, &spec, &[&cfg]);
        let lengths: Vec<usize> = plan.iter().map(|p| p.context_length).collect();
        assert_eq!(lengths, [90, 180, 270]);
        assert!(plan.iter().all(|p| p.steps == 7));
        let first = series.truncated_at(spec.from);
        let searched = crate::policy::backtest::split_origins(&first, 7, &settings.search)
            .unwrap()
            .all();
        let since = spec.from - Duration::days(i64::from(settings.triggers.performance_baseline_days));
        let hindcast = crate::policy::hindcast::origins_with_targets_after(&first, 7, since);
        let start = series.dates.partition_point(|x| *x < spec.from);
        let end = series.dates.partition_point(|x| *x <= spec.to);
        assert!(hindcast[0] < start && searched[0] < hindcast[0]);
        for p in &plan {
            let has = |i: &usize| p.origins.binary_search(i).is_ok();
            // The first run's search sees every length; every day from `from` on is forecast.
            assert!(searched.iter().all(has), "{}", p.context_length);
            assert!((start..end).all(|i| has(&i)), "{}", p.context_length);
            // Before `from`, beyond the lattice only the days the initial config's hindcasts
            // score: from the first run's first one on (later runs see later targets).
            let extra: Vec<usize> = p
                .origins
                .iter()
                .copied()
                .filter(|&i| i < start && i % settings.search.origin_spacing != 0)
                .collect();
            if p.context_length == cfg.context_length {
                assert!(hindcast.iter().all(has));
                let days: Vec<usize> = (hindcast[0]..start)
                    .filter(|i| i % settings.search.origin_spacing != 0)
                    .collect();
                assert_eq!(extra, days);
            } else {
                assert_eq!(extra, Vec::<usize>::new(), "{}", p.context_length);
            }
            assert!(p.origins.iter().all(|&i| i >= searched[0] && i < end));
        }
    }
}

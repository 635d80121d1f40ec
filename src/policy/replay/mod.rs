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
use crate::forecast::QuantileModel;
use crate::forecaster_config::ForecasterConfig;
use crate::history::{Action, HistoryRecord};
use crate::metrics;
use crate::policy::applier::{self, Applier, MemoryApplier};
use crate::policy::decide::{self, Decision, World};
use crate::policy::digest::{self, Section};
use crate::policy::health;
use crate::policy::outcome::{Delivered, HorizonResult};
use crate::policy::outcome::{Effect, Outcome, RecordContext};
use crate::policy::search::ForwardCache;
use crate::series::{Prediction, Series};
use crate::triggers::drift::log_returns;
use crate::triggers::episodes::{self, AlarmCheck, AlarmSummary};
use crate::triggers::tracked_errors;

mod forecasts;
mod prefetch;
mod score;

use forecasts::daily_forecasts;
use prefetch::prefetch;
use score::{kpis, score};

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
    /// Optimizations whose search chose the current config (nothing validated).
    pub kept: usize,
    /// Optimizations whose different candidate passed validation (a deploy, or a trial
    /// started).
    pub approvals: usize,
    /// Optimizations an alarm started, and those of them that approved a candidate.
    pub alarm_optimizations: usize,
    pub alarm_approvals: usize,
    pub deploys: usize,
    pub rejections: usize,
    /// Approved candidates that began a live trial, and trials the candidate lost.
    pub trials_started: usize,
    pub trials_failed: usize,
    pub rollbacks: usize,
    pub failures: usize,
    /// Runs whose config in effect needed attention (see `policy::health`).
    pub attention_weeks: usize,
    /// Runs that entered or left attention (each warrants a digest mail by default).
    pub attention_changes: usize,
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
    /// Approved candidates among the triggered optimizations whose candidate differed from
    /// the current config (kept searches are not validations).
    pub validation_success_rate: Option<f64>,
    /// Mean realized improvement of the deploys (positive = better than the config replaced).
    pub mean_realized_improvement_pct: Option<f64>,
    /// Optimizations an alarm (performance, drift) started that approved nothing (kept or
    /// rejected), among the optimizations an alarm started; the scheduled check and `--force`
    /// are not alarms.
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
    /// Runs whose one digest mail `smtp.events` selects (whether mail is on or not).
    pub digest_mails: usize,
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
    approvals: usize,
    alarm_optimizations: usize,
    alarm_approvals: usize,
    failures: usize,
    /// Runs whose config in effect needed attention.
    attention_weeks: usize,
    /// The attention state after the judged runs so far, and how often it changed.
    attention: Option<health::AttentionState>,
    attention_changes: usize,
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
            approvals: 0,
            alarm_optimizations: 0,
            alarm_approvals: 0,
            failures: 0,
            attention_weeks: 0,
            attention: None,
            attention_changes: 0,
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
        if let Some(h) = &outcome.health {
            if h.needs_attention() {
                self.attention_weeks += 1;
            }
            self.attention = Some(health::AttentionState::next(self.attention, h.needs_attention()));
        }
        if action == Action::Failed {
            self.failures += 1;
        }
        if outcome
            .decision
            .as_ref()
            .is_some_and(Decision::is_triggered_optimization)
        {
            self.optimizations += 1;
            let approved = matches!(
                outcome.decision,
                Some(Decision::Approved(_) | Decision::TrialStarted(_))
            );
            let alarmed = outcome.triggers().is_some_and(|t| !t.alarms.is_empty());
            self.approvals += usize::from(approved);
            self.alarm_optimizations += usize::from(alarmed);
            self.alarm_approvals += usize::from(alarmed && approved);
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
    /// Runs whose digest mail the settings' events select.
    digest_mails: usize,
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
        let (mut results, mut sections) = (Vec::new(), Vec::new());
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
            let rc = RecordContext::new(&run_id, now, Some(before.params()));
            let outcome = match decide::judge(&world, &before, false, &mut self.cache, &mut |_| {}) {
                Ok((decision, health)) => {
                    applier::apply(&mut self.applier, st.horizon, decision, &rc).with_health(health)
                }
                Err(e) => Outcome::failed(&e),
            };
            let delivered = Delivered {
                attention_before: st.attention,
                ..Delivered::default()
            };
            let result = HorizonResult::new(st.horizon, Some(before.params()), &outcome, false, delivered);
            st.attention_changes += usize::from(result.attention_change.is_some());
            results.push(result);
            sections.extend(
                outcome
                    .mails(st.horizon, &run_id, None)
                    .into_iter()
                    .map(|(event, email)| Section {
                        horizon: st.horizon,
                        event,
                        email,
                    }),
            );
            st.count(&outcome, d, &before, &self.applier.current(st.horizon)?);
            records.extend(outcome.record(st.horizon, &rc));
        }
        self.history.extend(records);
        results.sort_by_key(|r| r.horizon);
        let events = &self.settings.smtp.events;
        if digest::digest(&run_id, &results, &sections, |e| events.contains(&e)).is_some() {
            self.digest_mails += 1;
        }
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
        digest_mails: 0,
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
        digest_mails: sim.digest_mails,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::QuantileForecast;

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
}

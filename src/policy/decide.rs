//! `decide`: what should happen to one horizon, given the model and the data. Probation of a
//! recent deploy, then the triggers, then search and validation, stopping at the verdict. No
//! I/O: `run` applies the decision, a dry run prints it, `status --check` calls the trigger
//! part, and a replay of history can call it week after week with its state in memory.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::domain::{Horizon, InferenceParams, TriggerKind};
use crate::exit::invalid;
use crate::forecast::QuantileModel;
use crate::forecaster_config::{ForecasterConfig, SCHEMA_VERSION};
use crate::history::{Action, HistoryRecord};
use crate::policy::backtest;
use crate::policy::cost::ModelDims;
use crate::policy::hindcast;
use crate::policy::probation::{self, ProbationCheck};
use crate::policy::search::{self, ForwardCache, Progress, SearchReport};
use crate::policy::trial::{self, TrialCheck, TrialVerdict};
use crate::policy::validate::{self, ValidationReport};
use crate::series::{Prediction, Series};
use crate::triggers::{self, TriggerInput, TriggerReport};

/// Everything a decision reads.
#[derive(Clone, Copy)]
pub struct World<'a> {
    pub settings: &'a Settings,
    pub now: DateTime<Utc>,
    pub series: &'a Series,
    /// Where the series came from, for messages.
    pub series_name: &'a str,
    pub predictions: &'a [Prediction],
    pub history: &'a [HistoryRecord],
    /// None when the model could not be loaded: only the triggers can then be evaluated,
    /// without a hindcast.
    pub model: Option<&'a dyn QuantileModel>,
    /// What a deployed config records as its model.
    pub model_id: &'a str,
    /// The model's dimensions, for the inference cost of criterion 3.
    pub dims: Option<ModelDims>,
}

/// What the evidence of an optimization holds: why it ran and how the candidate did.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub triggers: TriggerReport,
    pub probation: Option<ProbationCheck>,
    /// None when a given candidate was validated without a search.
    pub search: Option<SearchReport>,
    pub validation: ValidationReport,
    /// The live trial that led to this validation, when it is the one at a trial's end.
    pub trial: Option<TrialCheck>,
}

/// A search that kept the current config: why it ran and what it saw.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub triggers: TriggerReport,
    pub probation: Option<ProbationCheck>,
    pub search: SearchReport,
}

/// An approved candidate and the config that would replace the current one.
#[derive(Clone, Debug, Serialize)]
pub struct Approved {
    pub evidence: Evidence,
    pub new_config: ForecasterConfig,
}

/// The verdict for one horizon.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// No trigger fired.
    NoTrigger {
        triggers: TriggerReport,
        probation: Option<ProbationCheck>,
    },
    /// Triggers fired but the cooldown holds them back.
    Suppressed {
        triggers: TriggerReport,
        probation: Option<ProbationCheck>,
    },
    /// A recent deploy broke its promise: roll it back.
    ProbationRollback { check: ProbationCheck },
    /// Optimized; the search chose the current config, so there was nothing to validate.
    Kept(Box<Kept>),
    /// Optimized; the candidate failed validation (or, at a trial's end, its second one).
    Rejected(Box<Evidence>),
    /// Optimized; the candidate passed validation and begins its live trial (see
    /// [`crate::policy::trial`]); the config stays.
    TrialStarted(Box<Evidence>),
    /// A trial too young to judge; the config stays.
    OnTrial { check: TrialCheck },
    /// The candidate lost its trial; the config stays.
    TrialFailed { check: TrialCheck },
    /// The candidate passed validation (and its trial, when trials are on): deploy it.
    Approved(Box<Approved>),
}

impl Decision {
    /// The history action this decision records once carried out.
    pub fn action(&self) -> Action {
        match self {
            Decision::NoTrigger { .. } => Action::NoTrigger,
            Decision::Suppressed { .. } => Action::Suppressed,
            Decision::ProbationRollback { .. } => Action::RolledBack,
            Decision::Kept(_) => Action::Kept,
            Decision::Rejected(_) => Action::Rejected,
            Decision::TrialStarted(_) => Action::TrialStarted,
            Decision::OnTrial { .. } => Action::OnTrial,
            Decision::TrialFailed { .. } => Action::TrialFailed,
            Decision::Approved(_) => Action::Deployed,
        }
    }

    /// The evidence of an optimization (a search and validation, or a trial's second one).
    pub fn evidence(&self) -> Option<&Evidence> {
        match self {
            Decision::Rejected(e) | Decision::TrialStarted(e) => Some(e),
            Decision::Approved(a) => Some(&a.evidence),
            _ => None,
        }
    }

    pub fn triggers(&self) -> Option<&TriggerReport> {
        match self {
            Decision::NoTrigger { triggers, .. } | Decision::Suppressed { triggers, .. } => Some(triggers),
            Decision::Kept(k) => Some(&k.triggers),
            _ => self.evidence().map(|e| &e.triggers),
        }
    }

    pub fn probation(&self) -> Option<&ProbationCheck> {
        match self {
            Decision::NoTrigger { probation, .. } | Decision::Suppressed { probation, .. } => {
                probation.as_ref()
            }
            Decision::ProbationRollback { check } => Some(check),
            Decision::Kept(k) => k.probation.as_ref(),
            _ => self.evidence().and_then(|e| e.probation.as_ref()),
        }
    }

    /// The trial this decision looked at, if any.
    pub fn trial(&self) -> Option<&TrialCheck> {
        match self {
            Decision::OnTrial { check } | Decision::TrialFailed { check } => Some(check),
            _ => self.evidence().and_then(|e| e.trial.as_ref()),
        }
    }

    /// A triggered optimization: a search and validation that the triggers started (not a
    /// trial's second validation). What the time trigger and cooldown count, and replay's
    /// optimizations.
    pub fn is_triggered_optimization(&self) -> bool {
        matches!(self, Decision::Kept(_)) || self.evidence().is_some_and(|e| e.trial.is_none())
    }

    /// The search behind this decision, if one ran.
    pub fn search(&self) -> Option<&SearchReport> {
        match self {
            Decision::Kept(k) => Some(&k.search),
            _ => self.evidence().and_then(|e| e.search.as_ref()),
        }
    }

    /// Stamps how long deciding took on the config an approval would deploy (the decision
    /// itself reads no clock).
    #[must_use]
    pub fn took(mut self, seconds: f64) -> Decision {
        if let Decision::Approved(a) = &mut self {
            a.new_config.optimization_time_seconds = Some(seconds);
        }
        self
    }
}

/// Rows `cfg`'s horizon needs: the largest context searched or deployed, plus the rows the
/// selection and confirmation origins span (the last origin needs its next h values).
pub fn rows_needed(settings: &Settings, cfg: &ForecasterConfig) -> usize {
    let s = &settings.search;
    let largest = s
        .context_lengths_for(cfg.horizon)
        .iter()
        .copied()
        .chain([cfg.context_length])
        .max()
        .unwrap_or(cfg.context_length);
    largest + backtest::rows_spanned(s, cfg.horizon.steps())
}

/// The series is long enough for this horizon's grid and validation window.
pub fn check_series(world: &World<'_>, cfg: &ForecasterConfig) -> anyhow::Result<()> {
    let needed = rows_needed(world.settings, cfg);
    let have = world.series.len();
    if have < needed {
        return Err(invalid(format!(
            "{}: series too short for {h}: {have} rows found, {needed} needed (its largest context plus the rows its selection and confirmation origins span); supply a longer series or lower search.context_lengths.{h}, search.selection_origins or search.validation_window",
            world.series_name,
            h = cfg.horizon
        )));
    }
    Ok(())
}

/// How far a decision gets without the search: the first half of [`decide`], and what
/// `status --check` previews.
#[derive(Clone, Debug)]
pub enum Preview {
    /// Decided without a search: a probation rollback, a trial waiting or lost, no trigger,
    /// or triggers the cooldown holds back.
    Decided(Decision),
    /// A trial passed: its candidate is validated again on today's confirmation origins.
    TrialPassed {
        check: TrialCheck,
        candidate: InferenceParams,
        triggers: TriggerReport,
        probation: Option<ProbationCheck>,
    },
    /// The triggers fired: the search and validation decide.
    Optimize {
        triggers: TriggerReport,
        probation: Option<ProbationCheck>,
    },
}

impl Preview {
    /// What a run would do next, in a word: the decision's action, `validate_trial` or
    /// `optimize`.
    pub fn next(&self) -> &'static str {
        match self {
            Preview::Decided(d) => d.action().as_str(),
            Preview::TrialPassed { .. } => "validate_trial",
            Preview::Optimize { .. } => "optimize",
        }
    }

    pub fn triggers(&self) -> Option<&TriggerReport> {
        match self {
            Preview::Decided(d) => d.triggers(),
            Preview::TrialPassed { triggers, .. } | Preview::Optimize { triggers, .. } => Some(triggers),
        }
    }

    /// One line: why.
    pub fn note(&self) -> String {
        match self {
            Preview::Decided(Decision::ProbationRollback { check }) => check.note.clone(),
            Preview::Decided(d) => d
                .trial()
                .map(|t| t.note.clone())
                .or_else(|| d.triggers().map(|t| t.reasons.join("; ")))
                .unwrap_or_default(),
            Preview::TrialPassed { check, .. } => format!("{}; its candidate is validated again", check.note),
            Preview::Optimize { triggers, .. } => triggers.reasons.join("; "),
        }
    }
}

/// The first half of [`decide`]: probation, a pending trial, the triggers.
pub fn preview(
    world: &World<'_>,
    model: &dyn QuantileModel,
    cfg: &ForecasterConfig,
    force: bool,
    cache: &mut ForwardCache,
) -> anyhow::Result<Preview> {
    check_series(world, cfg)?;
    let probation = probation_check(world, model, cfg, cache)?;
    if let Some(check) = probation.as_ref().filter(|c| c.rolled_back) {
        return Ok(Preview::Decided(Decision::ProbationRollback {
            check: check.clone(),
        }));
    }
    if let Some(pending) = trial::pending(world.history, cfg.horizon, cfg, world.now) {
        let check = trial_check(world, model, cfg, &pending, cache)?;
        return Ok(match check.verdict {
            TrialVerdict::Waiting => Preview::Decided(Decision::OnTrial { check }),
            TrialVerdict::Failed => Preview::Decided(Decision::TrialFailed { check }),
            TrialVerdict::Passed => Preview::TrialPassed {
                check,
                candidate: pending.candidate,
                triggers: trigger_report(world, cfg, cache, force)?,
                probation,
            },
        });
    }
    let triggers = trigger_report(world, cfg, cache, force)?;
    Ok(if triggers.should_optimize {
        Preview::Optimize { triggers, probation }
    } else if triggers.cooldown.suppressed.is_empty() {
        Preview::Decided(Decision::NoTrigger { triggers, probation })
    } else {
        Preview::Decided(Decision::Suppressed { triggers, probation })
    })
}

/// One horizon judged from one world, as `run` and `replay` both do: the [`decide`]d
/// decision and the health of the config in effect (None when it could not be judged; it
/// reuses the decision's forwards).
pub fn judge(
    world: &World<'_>,
    cfg: &ForecasterConfig,
    force: bool,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<(Decision, Option<crate::policy::health::Health>)> {
    let decision = decide(world, cfg, force, cache, progress)?;
    let health = crate::policy::health::assess(world, cfg, cache, progress)
        .ok()
        .flatten();
    Ok((decision, health))
}

/// The whole decision for `cfg`'s horizon: [`preview`], then the search and validation it
/// calls for.
pub fn decide(
    world: &World<'_>,
    cfg: &ForecasterConfig,
    force: bool,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Decision> {
    let model = world
        .model
        .ok_or_else(|| anyhow::anyhow!("no model loaded: a decision needs the model"))?;
    let (candidate, trial, triggers, probation) = match preview(world, model, cfg, force, cache)? {
        Preview::Decided(d) => return Ok(d),
        Preview::TrialPassed {
            check,
            candidate,
            triggers,
            probation,
        } => (Some(candidate), Some(check), triggers, probation),
        Preview::Optimize { triggers, probation } => (None, None, triggers, probation),
    };
    // After a passed trial the candidate is validated again on today's confirmation origins:
    // the deploy promises what they show, and probation holds it to that.
    let v = match search_and_validate(world, model, cfg, candidate.as_ref(), cache, progress)? {
        Judged::Kept(search) => {
            return Ok(Decision::Kept(Box::new(Kept {
                triggers,
                probation,
                search: *search,
            })));
        }
        Judged::Validated(v) => v,
    };
    let start_trial = trial.is_none() && world.settings.deploy.trial_min_origins > 0;
    let evidence = Evidence {
        triggers,
        probation,
        search: v.search,
        validation: v.validation,
        trial,
    };
    Ok(verdict(world, cfg.horizon, evidence, start_trial))
}

/// Rejected, a trial to start (`start_trial`), or approved for deploy.
fn verdict(world: &World<'_>, h: Horizon, evidence: Evidence, start_trial: bool) -> Decision {
    if !evidence.validation.approved {
        return Decision::Rejected(Box::new(evidence));
    }
    if start_trial {
        return Decision::TrialStarted(Box::new(evidence));
    }
    let new_config = new_config(world, h, &evidence);
    Decision::Approved(Box::new(Approved { evidence, new_config }))
}

/// The RMSE of `p` over steps 1..h of its forecasts at `origins` (how validation scores, and
/// so how probation and trials hold a config to it).
fn live_rmse(
    series: &Series,
    model: &dyn QuantileModel,
    h: Horizon,
    p: &InferenceParams,
    origins: &[usize],
    cache: &mut ForwardCache,
) -> anyhow::Result<f64> {
    Ok(
        search::evaluate_params(model, series, h, p, origins, cache, &mut |_| {})?
            .metrics
            .rmse,
    )
}

/// The live look at a pending trial: the candidate and the current config hindcast on the
/// origins since the trial began, scored as validation scores (RMSE over steps 1..h).
fn trial_check(
    world: &World<'_>,
    model: &dyn QuantileModel,
    cfg: &ForecasterConfig,
    pending: &trial::Pending,
    cache: &mut ForwardCache,
) -> anyhow::Result<TrialCheck> {
    let d = &world.settings.deploy;
    let origins = trial::origins(world.series, cfg.horizon, pending.started_at);
    let live = if origins.len() >= d.trial_min_origins.max(1) {
        let mut rmse = |p: &InferenceParams| live_rmse(world.series, model, cfg.horizon, p, &origins, cache);
        Some((rmse(&pending.candidate)?, rmse(&cfg.params())?))
    } else {
        None
    };
    Ok(trial::judge(
        pending,
        cfg.params(),
        origins.len(),
        live,
        world.now,
        d,
    ))
}

/// The config that replaces the current one: the candidate's parameters and the validation
/// metrics it promised (the time deciding took is stamped by [`Decision::took`]).
fn new_config(world: &World<'_>, h: Horizon, e: &Evidence) -> ForecasterConfig {
    let c = &e.validation.candidate;
    let p = c.params;
    ForecasterConfig {
        schema_version: SCHEMA_VERSION,
        horizon: h,
        model: world.model_id.to_string(),
        context_length: p.context_length,
        num_samples: p.num_samples,
        temperature: p.temperature,
        validation_rmse: Some(c.metrics.rmse),
        validation_mape: Some(c.metrics.mape),
        validation_mae: Some(c.metrics.mae),
        validation_bias: Some(c.metrics.bias),
        validation_coverage_95: Some(c.metrics.coverage_95),
        search_iterations: e.search.as_ref().map(|s| s.configs.len() as u32),
        optimization_time_seconds: None,
        timestamp: record_time(world.now),
    }
}

/// The time stamped on records and configs: `now` truncated to whole microseconds (what
/// parquet keeps).
pub fn record_time(now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    now.trunc_subsecs(6)
}

/// The probation check of `cfg`, if its last deploy is on probation.
fn probation_check(
    world: &World<'_>,
    model: &dyn QuantileModel,
    cfg: &ForecasterConfig,
    cache: &mut ForwardCache,
) -> anyhow::Result<Option<ProbationCheck>> {
    let d = &world.settings.deploy;
    let Some(due) = probation::due(world.history, cfg.horizon, cfg, world.now, d) else {
        return Ok(None);
    };
    let origins = probation::origins(world.series, cfg.horizon, due.deployed_at);
    if origins.len() < d.probation_min_origins {
        return Ok(Some(probation::judge(&due, origins.len(), None, None, d)));
    }
    let mut live = |p: &InferenceParams| live_rmse(world.series, model, cfg.horizon, p, &origins, cache);
    let deployed = live(&cfg.params())?;
    let replaced = due.replaced.as_ref().map(&mut live).transpose()?;
    Ok(Some(probation::judge(
        &due,
        origins.len(),
        Some(deployed),
        replaced,
        d,
    )))
}

/// The trigger report of one horizon, hindcasting the deployed config when tracked
/// predictions are too few (and a model is loaded).
pub fn trigger_report(
    world: &World<'_>,
    cfg: &ForecasterConfig,
    cache: &mut ForwardCache,
    force: bool,
) -> anyhow::Result<TriggerReport> {
    let h = cfg.horizon;
    let t = &world.settings.triggers;
    let tracked = triggers::tracked_errors(world.predictions, h, world.series);
    let today = world.now.date_naive();
    let replayed = match world.model {
        Some(m) if triggers::needs_replay(&tracked, t, today) => {
            let since = today - Duration::days(i64::from(t.performance_baseline_days));
            let origins = hindcast::origins_with_targets_after(world.series, h.steps(), since);
            Some(hindcast::step_errors(
                m,
                world.series,
                h,
                &cfg.params(),
                &origins,
                cache,
            )?)
        }
        _ => None,
    };
    let input = TriggerInput {
        horizon: h,
        series: world.series,
        tracked_errors: &tracked,
        replay_errors: replayed.as_deref(),
        history: world.history,
    };
    Ok(triggers::evaluate(&input, t, world.now, force))
}

/// A search (or a given candidate) and its validation against the current config.
pub struct Validated {
    pub search: Option<SearchReport>,
    pub validation: ValidationReport,
}

/// What [`search_and_validate`] found.
pub enum Judged {
    /// The search chose the current config: nothing to validate.
    Kept(Box<SearchReport>),
    /// A different candidate (the search's choice, or the one given), validated against the
    /// current config.
    Validated(Box<Validated>),
}

/// Splits the origins into selection and later confirmation parts, runs one batched forward
/// per context length over all of them, searches `current`'s horizon on the selection origins
/// (the current config is always one of the candidates) or takes `candidate`, and, unless
/// the search keeps the current config, validates the candidate against it on the
/// confirmation origins only, with criterion 3 from the deterministic cost model.
pub fn search_and_validate(
    world: &World<'_>,
    model: &dyn QuantileModel,
    current: &ForecasterConfig,
    candidate: Option<&InferenceParams>,
    cache: &mut ForwardCache,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Judged> {
    let h = current.horizon;
    let s = world.settings;
    let judge = Judge {
        world,
        model,
        current,
        split: backtest::split_origins(world.series, h.steps(), &s.search)?,
    };
    let batches_before = cache.batches_run;
    judge.forward_all(candidate, cache, progress)?;
    let (search, cand_params) = if let Some(c) = candidate {
        (None, *c)
    } else {
        let mut r = judge.search(cache, progress)?;
        // The search's forwards were batched with the confirmation origins above.
        r.forward_batches = cache.batches_run - batches_before;
        if r.best().params == current.params() {
            return Ok(Judged::Kept(Box::new(r)));
        }
        let p = r.best().params;
        (Some(r), p)
    };
    let validation = judge.validate(&cand_params, search.is_some(), cache, progress)?;
    Ok(Judged::Validated(Box::new(Validated { search, validation })))
}

/// One horizon's search and validation: the world, the current config and the origin split.
struct Judge<'a> {
    world: &'a World<'a>,
    model: &'a dyn QuantileModel,
    current: &'a ForecasterConfig,
    split: backtest::OriginSplit,
}

impl Judge<'_> {
    /// The grid search on the selection origins, the current config among the candidates.
    fn search(
        &self,
        cache: &mut ForwardCache,
        progress: &mut dyn FnMut(Progress),
    ) -> anyhow::Result<SearchReport> {
        let s = self.world.settings;
        search::search(
            &search::SearchInput {
                model: self.model,
                series: self.world.series,
                horizon: self.current.horizon,
                settings: &s.search,
                validation: &s.validation,
                selection: &self.split.selection,
                current: Some(self.current.params()),
            },
            cache,
            progress,
        )
    }

    /// One batched forward per context length (the grid's, the current config's and the
    /// candidate's) over the selection and confirmation origins together.
    fn forward_all(
        &self,
        candidate: Option<&InferenceParams>,
        cache: &mut ForwardCache,
        progress: &mut dyn FnMut(Progress),
    ) -> anyhow::Result<()> {
        let h = self.current.horizon;
        let grid = match candidate {
            Some(_) => Vec::new(),
            None => search::grid_with(&self.world.settings.search, h, Some(self.current.params()))?,
        };
        let mut lengths: Vec<usize> = Vec::new();
        for l in grid
            .iter()
            .map(|p| p.context_length)
            .chain([self.current.context_length])
            .chain(candidate.map(|c| c.context_length))
        {
            if !lengths.contains(&l) {
                lengths.push(l);
            }
        }
        let all = self.split.all();
        for &length in &lengths {
            cache.forward(self.model, self.world.series, &all, length, h.steps(), progress)?;
        }
        Ok(())
    }

    /// `candidate` against the current config on the confirmation origins: criteria 1-7,
    /// then criterion 8 from history's lost live checks.
    fn validate(
        &self,
        candidate: &InferenceParams,
        selection_used: bool,
        cache: &mut ForwardCache,
        progress: &mut dyn FnMut(Progress),
    ) -> anyhow::Result<ValidationReport> {
        let (world, split) = (self.world, &self.split);
        let h = self.current.horizon;
        let s = world.settings;
        let dims = world
            .dims
            .ok_or_else(|| anyhow::anyhow!("criterion 3 needs the model's dimensions"))?;
        let cur_params = self.current.params();
        let mut evaluate = |p: &InferenceParams| {
            search::evaluate_params(
                self.model,
                world.series,
                h,
                p,
                &split.confirmation,
                cache,
                progress,
            )
        };
        let mut cand = evaluate(candidate)?;
        let mut cur = evaluate(&cur_params)?;
        let cost = crate::policy::cost::InferenceCost::of(&dims, candidate, &cur_params, h.steps());
        // Not measured here: criterion 3 compares `cost`.
        cand.metrics.inference_ms = f64::NAN;
        cur.metrics.inference_ms = f64::NAN;
        let origins = validate::OriginsUsed {
            spacing: split.spacing,
            selection: split.selection_span(world.series, h.steps()),
            selection_used,
            confirmation: split.confirmation_span(world.series, h.steps()),
            test_horizon: backtest::test_horizon(h.steps(), split.spacing),
        };
        let since = origins.confirmation.first_origin;
        let mut validation = validate::validate(h, &cand, &cur, origins, cost, &s.validation)?;
        let rollbacks = lost_live_checks(world.history, h, candidate, since, world.now);
        validation.push_criterion(validate::probation_criterion(rollbacks));
        Ok(validation)
    }
}

/// Live checks `params` lost at `h`, recorded from `since` (a date) up to `now`: probation
/// rollbacks whose rolled-back (`old`) parameters are these, and failed trials whose
/// candidate (`new`) parameters are these.
pub fn lost_live_checks(
    history: &[HistoryRecord],
    h: Horizon,
    params: &InferenceParams,
    since: NaiveDate,
    now: DateTime<Utc>,
) -> usize {
    let recorded = crate::history::RecordParams::of(params);
    let same = |o: &crate::history::RecordParams| *o == recorded;
    history
        .iter()
        .filter(|r| {
            let lost = match r.action {
                Action::RolledBack => r.triggered_by_kind(TriggerKind::Probation) && same(&r.old),
                Action::TrialFailed => same(&r.new),
                _ => false,
            };
            r.horizon == h && lost && r.optimization_date.date_naive() >= since && r.optimization_date <= now
        })
        .count()
}

/// A decision on a toy model, for tests of what is derived from decisions.
#[cfg(test)]
pub(crate) mod fixture {
    use super::{decide, Decision, World};
    use crate::config::Settings;
    use crate::domain::Horizon;
    use crate::forecast::{QuantileForecast, QuantileModel, LEVELS};
    use crate::forecaster_config::ForecasterConfig;
    use crate::policy::search::ForwardCache;

    /// Forecasts the mean of the whole context, +- fixed offsets: on a trending series a
    /// shorter context is more accurate, so the search has something to find.
    struct ContextMean;

    impl QuantileModel for ContextMean {
        fn max_context(&self) -> usize {
            2048
        }
        fn predict(&self, contexts: &[&[f64]], h: usize) -> anyhow::Result<Vec<QuantileForecast>> {
            Ok(contexts
                .iter()
                .map(|c| {
                    let obs: Vec<f64> = c.iter().copied().filter(|v| !v.is_nan()).collect();
                    let m = obs.iter().sum::<f64>() / obs.len() as f64;
                    QuantileForecast {
                        values: LEVELS.iter().map(|a| vec![m + (a - 0.5) * 40.0; h]).collect(),
                    }
                })
                .collect())
        }
    }

    /// A probation check that calls for a rollback: live RMSE twice the promised.
    pub(crate) fn broken_promise() -> crate::policy::probation::ProbationCheck {
        crate::policy::probation::ProbationCheck {
            deployed_at: "2025-12-20T02:00:00Z".parse().unwrap(),
            origins: 8,
            live_rmse: Some(20.0),
            promised_rmse: 10.0,
            limit_pct: 30.0,
            degradation_pct: Some(100.0),
            replaced_rmse: None,
            relative_degradation_pct: None,
            relative_limit_pct: 0.0,
            rolled_back: true,
            note: "probation: live RMSE 20.000 vs promised 10.000 (+100.0 %, limit +30 %)".into(),
        }
    }

    /// Criteria every candidate passes.
    pub(crate) fn loose() -> Settings {
        let mut s = Settings::default();
        let v = &mut s.validation;
        v.min_rmse_improvement_pct = -100.0;
        v.min_mape_improvement_pct = -100.0;
        v.max_std_increase_pct = 10_000.0;
        v.max_inference_time_increase_pct = 10_000.0;
        v.min_coverage_95 = 0.0;
        v.max_abs_bias = 1e9;
        s
    }

    /// The decision on 7d for a current config at context 270, forced, on 2026-01-04.
    pub(crate) fn forced_decision(settings: &Settings) -> (Decision, ForecasterConfig) {
        let s = crate::data::demo::synthetic_usdclp(7, 700, crate::data::demo::DEFAULT_START);
        let now = "2026-01-04T05:00:00Z".parse().unwrap();
        let mut cfg = ForecasterConfig::initial(Horizon(7), "m", now);
        cfg.context_length = 270;
        let world = World {
            settings,
            now,
            series: &s,
            series_name: "series.parquet",
            predictions: &[],
            history: &[],
            model: Some(&ContextMean),
            model_id: "context-mean",
            // chronos-bolt-tiny's dimensions, for the cost model.
            dims: Some(crate::policy::cost::ModelDims {
                d_model: 256,
                d_ff: 1024,
                inner: 256,
                encoder_layers: 4,
                decoder_layers: 4,
                patch_size: 16,
                use_reg_token: true,
                max_context: 2048,
                steps_per_pass: 64,
                levels: 9,
            }),
        };
        let d = decide(&world, &cfg, true, &mut ForwardCache::new(), &mut |_| {}).unwrap();
        (d, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{RecordMetrics, RecordParams};

    fn row(h: &str, day: &str, action: Action, by: &str, old: (i64, i64, f64)) -> HistoryRecord {
        HistoryRecord {
            run_id: "r".into(),
            horizon: h.parse().unwrap(),
            optimization_date: format!("{day}T02:00:00Z").parse().unwrap(),
            action,
            triggered_by: crate::domain::TriggerKind::split(by).unwrap(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: true,
            old: RecordParams {
                context_length: Some(old.0),
                num_samples: Some(old.1),
                temperature: Some(old.2),
            },
            new: RecordParams::default(),
            candidate: RecordMetrics::default(),
            current: RecordMetrics::default(),
            duration_seconds: 0.0,
            message: String::new(),
            attention: None,
        }
    }

    #[test]
    fn only_lost_live_checks_of_the_same_parameters_since_the_confirmation_start_count() {
        let p = InferenceParams {
            context_length: 90,
            num_samples: 100,
            temperature: 1.0,
        };
        let since = NaiveDate::from_ymd_opt(2019, 1, 7).unwrap();
        let now: DateTime<Utc> = "2019-08-01T02:00:00Z".parse().unwrap();
        let count = |rows: &[HistoryRecord]| lost_live_checks(rows, Horizon(15), &p, since, now);
        let rolled = row(
            "15d",
            "2019-07-14",
            Action::RolledBack,
            "probation",
            (90, 100, 1.0),
        );
        assert_eq!(count(std::slice::from_ref(&rolled)), 1);
        // (horizon, day, action, triggered by, rolled-back parameters, counted)
        let rb = Action::RolledBack;
        let cases = [
            // The first confirmation origin's day counts; the day before does not.
            ("15d", "2019-01-07", rb, "probation", (90, 100, 1.0), 1),
            ("15d", "2019-01-06", rb, "probation", (90, 100, 1.0), 0),
            // Another horizon, other parameters, a person's rollback, a deploy, a later record.
            ("7d", "2019-07-14", rb, "probation", (90, 100, 1.0), 0),
            ("15d", "2019-07-14", rb, "probation", (90, 100, 1.2), 0),
            ("15d", "2019-07-14", rb, "", (90, 100, 1.0), 0),
            (
                "15d",
                "2019-07-14",
                Action::Deployed,
                "probation",
                (90, 100, 1.0),
                0,
            ),
            ("15d", "2019-09-01", rb, "probation", (90, 100, 1.0), 0),
        ];
        for (h, day, action, by, old, n) in cases {
            assert_eq!(
                count(&[row(h, day, action, by, old)]),
                n,
                "{h} {day} {action:?} {by:?} {old:?}"
            );
        }
        // A failed trial counts by its candidate (`new`), not by the config it was tried against.
        let mut failed = row("15d", "2019-07-14", Action::TrialFailed, "", (180, 100, 1.0));
        assert_eq!(count(std::slice::from_ref(&failed)), 0);
        failed.new = crate::history::RecordParams::of(&p);
        assert_eq!(count(&[failed.clone(), rolled.clone()]), 2);
        // Criterion 8 passes at none and fails at one, and a failed criterion withdraws approval.
        assert!(validate::probation_criterion(0).passed);
        let c = validate::probation_criterion(count(&[rolled]));
        assert!(!c.passed && c.id == 8);
    }
}

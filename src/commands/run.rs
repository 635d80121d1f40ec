//! `run`: the weekly job. Under the run lock: recover from a crashed run, check probation of
//! recent deploys, then per horizon triggers -> search -> validate -> deploy -> history ->
//! mail. Horizons are independent: a failure in one is reported and the others go on; the
//! exit code is the worst outcome. `--dry-run` computes everything and changes nothing.

use std::path::PathBuf;
use std::time::Instant;

use chrono::Duration;
use serde::Serialize;

use crate::backtest;
use crate::cli::RunArgs;
use crate::deploy::{self, lock::RunLock, DeployOutcome, DeployRequest, DeployStatus};
use crate::domain::MailEvent;
use crate::domain::{Horizon, InferenceParams};
use crate::exit::{self, ExitCode};
use crate::forecast::{self, QuantileModel};
use crate::forecaster_config::{ForecasterConfig, SCHEMA_VERSION};
use crate::hiargs::Context;
use crate::history::{self, Action, HistoryRecord, RecordMetrics, RecordParams};
use crate::model::ChronosBolt;
use crate::notify::{Attachment, Email};
use crate::output::{self, Render};
use crate::search::{ForwardCache, SearchReport};
use crate::series::{Prediction, Series};
use crate::triggers::{self, ErrorPoint, TriggerInput, TriggerReport};
use crate::validate::ValidationReport;

use super::rollback::params_of;
use super::validate::{failing, render_search, render_validation, search_and_validate};

/// What happened to one horizon.
#[derive(Debug, Serialize)]
pub struct HorizonResult {
    pub horizon: String,
    /// no_trigger, suppressed, rejected, deployed, failed, rolled_back, or `would_deploy` in a
    /// dry run.
    pub action: String,
    pub exit_code: ExitCode,
    pub message: String,
    pub triggers: Option<TriggerReport>,
    pub probation: Option<ProbationCheck>,
    pub current: Option<InferenceParams>,
    pub candidate: Option<InferenceParams>,
    pub approved: Option<bool>,
    pub failing_criteria: Vec<String>,
    pub search: Option<SearchReport>,
    pub validation: Option<ValidationReport>,
    pub deploy: Option<DeployOutcome>,
    pub plot: Option<String>,
    pub mail_error: Option<String>,
}

/// The probation check of a recent deploy.
#[derive(Debug, Clone, Serialize)]
pub struct ProbationCheck {
    pub deployed_at: chrono::DateTime<chrono::Utc>,
    pub origins: usize,
    pub live_rmse: Option<f64>,
    pub promised_rmse: f64,
    pub limit_pct: f64,
    pub degradation_pct: Option<f64>,
    pub rolled_back: bool,
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub dry_run: bool,
    pub model: String,
    pub recovery: Vec<String>,
    pub horizons: Vec<HorizonResult>,
    pub exit_code: ExitCode,
}

impl Render for RunSummary {
    fn render(&self) -> String {
        let mut s = format!(
            "run {}{}   model {}\n",
            self.run_id,
            if self.dry_run {
                " (dry run: nothing written, no mail)"
            } else {
                ""
            },
            self.model
        );
        for r in &self.recovery {
            s.push_str(&format!("recovered: {r}\n"));
        }
        let rows = self.horizons.iter().map(|h| {
            vec![
                h.horizon.clone(),
                h.triggers.as_ref().map_or_else(
                    || "-".to_string(),
                    |t| {
                        if t.reasons.is_empty() {
                            "-".to_string()
                        } else {
                            t.reasons.join("; ")
                        }
                    },
                ),
                output::opt(h.candidate),
                match h.approved {
                    Some(true) => "approved".to_string(),
                    Some(false) => format!("rejected: {}", h.failing_criteria.join(", ")),
                    None => "-".to_string(),
                },
                h.action.clone(),
                h.plot.clone().unwrap_or_else(|| "-".to_string()),
            ]
        });
        s.push_str(&output::table(
            &[
                "horizon",
                "triggers",
                "best candidate",
                "verdict",
                "action",
                "picture",
            ],
            rows,
        ));
        s.push('\n');
        for h in &self.horizons {
            if !h.message.is_empty() {
                s.push_str(&format!("{}: {}\n", h.horizon, h.message));
            }
            if let Some(e) = &h.mail_error {
                s.push_str(&format!("{}: mail not sent: {e}\n", h.horizon));
            }
        }
        s.push_str(&format!("exit code {}\n", self.exit_code.code()));
        s
    }
}

/// Everything loaded once per run.
struct Inputs<'a> {
    ctx: &'a Context,
    series: &'a Series,
    predictions: &'a [Prediction],
    history: &'a [HistoryRecord],
    model: &'a ChronosBolt,
    run_id: &'a str,
    dry_run: bool,
}

pub fn run(ctx: &Context, args: &RunArgs) -> anyhow::Result<ExitCode> {
    if !args.all && args.horizon.is_empty() {
        return Err(exit::failure(
            ExitCode::Usage,
            "run needs --all or at least one --horizon H",
        ));
    }
    let horizons = ctx.select_horizons(&args.horizon)?;
    // A dry run changes no file, so it neither takes the lock (creating the lock file) nor
    // cleans up; it only says what a real run would recover.
    let _lock = if args.dry_run {
        None
    } else {
        Some(RunLock::acquire(&ctx.root)?)
    };
    let recovery = if args.dry_run {
        if super::needs_recovery(ctx) {
            vec![
                "an interrupted run left files behind; a real run (or `status`) will clean them up"
                    .to_string(),
            ]
        } else {
            Vec::new()
        }
    } else {
        super::recover(ctx)?
    };
    // A horizon whose config cannot be read fails on its own; the others go on.
    let run_id = super::run_id(ctx);
    let mut results = Vec::new();
    let mut records = Vec::new();
    let mut configs = Vec::new();
    for h in &horizons {
        match super::read_configs(ctx, std::slice::from_ref(h)) {
            Ok(mut c) => configs.push(c.remove(0)),
            Err(err) => {
                let (result, record) =
                    failed_horizon(ctx, &run_id, args.dry_run, (*h, RecordParams::default()), &err);
                results.push(result);
                records.extend(record);
            }
        }
    }
    if configs.is_empty() {
        return finish(ctx, args, run_id, recovery, results, &records);
    }
    let series = super::load_series(ctx, &configs)?;
    let predictions = crate::data::load_predictions(&ctx.predictions_path())?;
    let past = crate::data::history::read(&ctx.history_path())?;
    let model = ChronosBolt::open(&ctx.settings.model.id)?;
    let inputs = Inputs {
        ctx,
        series: &series,
        predictions: &predictions,
        history: &past,
        model: &model,
        run_id: &run_id,
        dry_run: args.dry_run,
    };
    // One forward cache for the whole run: the longest horizon first, so shorter horizons
    // reuse its forecasts where context length and origins coincide.
    let mut cache = ForwardCache::new();
    let mut order = configs;
    order.sort_by_key(|c| std::cmp::Reverse(c.horizon));
    for cfg in &order {
        let started = Instant::now();
        let span = tracing::info_span!("horizon", h = %cfg.horizon);
        let _enter = span.enter();
        let (result, record) = match run_horizon(&inputs, cfg, args.force, &mut cache) {
            Ok(pair) => pair,
            Err(err) => failed_horizon(ctx, &run_id, args.dry_run, (cfg.horizon, params_of(cfg)), &err),
        };
        if let Some(mut r) = record {
            r.duration_seconds = started.elapsed().as_secs_f64();
            records.push(r);
        }
        results.push(result);
    }
    finish(ctx, args, run_id, recovery, results, &records)
}

/// Appends the history records, prints the summary and returns the worst exit code.
fn finish(
    ctx: &Context,
    args: &RunArgs,
    run_id: String,
    recovery: Vec<String>,
    mut results: Vec<HorizonResult>,
    records: &[HistoryRecord],
) -> anyhow::Result<ExitCode> {
    if !args.dry_run && !records.is_empty() {
        crate::data::history::append(&ctx.history_path(), records)?;
    }
    results.sort_by_key(|r| r.horizon.trim_end_matches('d').parse::<usize>().unwrap_or(0));
    let code = results
        .iter()
        .fold(ExitCode::Success, |acc, r| acc.worst(r.exit_code));
    output::emit(
        ctx.json,
        &RunSummary {
            run_id,
            dry_run: args.dry_run,
            model: ctx.settings.model.id.clone(),
            recovery,
            horizons: results,
            exit_code: code,
        },
    )?;
    Ok(code)
}

fn empty_result(h: Horizon, action: &str, code: ExitCode, message: String) -> HorizonResult {
    HorizonResult {
        horizon: h.label(),
        action: action.to_string(),
        exit_code: code,
        message,
        triggers: None,
        probation: None,
        current: None,
        candidate: None,
        approved: None,
        failing_criteria: Vec::new(),
        search: None,
        validation: None,
        deploy: None,
        plot: None,
        mail_error: None,
    }
}

fn base_record(
    ctx: &Context,
    run_id: &str,
    h: Horizon,
    old: RecordParams,
    action: Action,
    message: String,
) -> HistoryRecord {
    HistoryRecord {
        run_id: run_id.to_string(),
        horizon: h.label(),
        optimization_date: super::record_time(ctx),
        action,
        triggered_by: String::new(),
        performance_degradation_pct: None,
        drift_severity: None,
        days_since_last: None,
        success: !matches!(action, Action::Failed),
        old,
        new: RecordParams::default(),
        candidate: RecordMetrics::default(),
        current: RecordMetrics::default(),
        duration_seconds: 0.0,
        message,
    }
}

/// A horizon whose processing failed with an error: reported, recorded as `failed`, mailed.
fn failed_horizon(
    ctx: &Context,
    run_id: &str,
    dry_run: bool,
    (h, old): (Horizon, RecordParams),
    err: &anyhow::Error,
) -> (HorizonResult, Option<HistoryRecord>) {
    let message = format!("{err:#}");
    tracing::error!("{h}: {message}");
    let mut result = empty_result(h, Action::Failed.as_str(), exit::code_of(err), message.clone());
    if dry_run {
        return (result, None);
    }
    result.mail_error = super::send_mail(
        ctx,
        MailEvent::Failed,
        &Email {
            subject: format!("[model-optimizer] {h} failed"),
            body: format!(
                "The optimization of {h} failed (run {run_id}):\n{message}\nThe deployed config was not changed.\n"
            ),
            attachments: Vec::new(),
        },
    );
    let record = base_record(
        ctx,
        run_id,
        h,
        old,
        Action::Failed,
        super::with_mail_note(message, result.mail_error.as_deref()),
    );
    (result, Some(record))
}

fn metrics_of(m: &backtest::Metrics) -> RecordMetrics {
    RecordMetrics {
        rmse: Some(m.rmse),
        mape: Some(m.mape),
        mae: Some(m.mae),
        bias: Some(m.bias),
        coverage_95: Some(m.coverage_95),
    }
}

/// Origins whose step-`h` target lies after `since` (and at or before the series end), with
/// all `h` next values observed: the forecasts production would have made and scored.
fn origins_with_targets_after(series: &Series, h: usize, since: chrono::NaiveDate) -> Vec<usize> {
    (0..series.len().saturating_sub(h))
        .filter(|&i| {
            series.dates[i + h] > since
                && !series.values[i].is_nan()
                && series.values[i + 1..=i + h].iter().all(|v| !v.is_nan())
        })
        .collect()
}

/// Backtests `params` on `origins` and returns the step-`h` errors dated by target.
fn replay(
    model: &ChronosBolt,
    series: &Series,
    h: Horizon,
    params: &InferenceParams,
    origins: &[usize],
    cache: &mut ForwardCache,
) -> anyhow::Result<Vec<ErrorPoint>> {
    if origins.is_empty() {
        return Ok(Vec::new());
    }
    let raw = cache.forward(
        model,
        series,
        origins,
        params.context_length,
        h.steps(),
        &mut |_| {},
    )?;
    let eval = backtest::evaluate(
        series,
        &raw,
        h.steps(),
        params.num_samples,
        params.temperature,
        0.0,
    )?;
    Ok(eval
        .points
        .iter()
        .filter(|p| p.step == h.steps())
        .map(ErrorPoint::from)
        .collect())
}

/// The trigger report of one horizon, replaying the deployed config when tracked predictions
/// are too few. Shared with `status --check`.
pub(crate) fn trigger_report(
    ctx: &Context,
    cfg: &ForecasterConfig,
    series: &Series,
    predictions: &[Prediction],
    past: &[HistoryRecord],
    model: Option<&ChronosBolt>,
    cache: &mut ForwardCache,
    force: bool,
) -> anyhow::Result<TriggerReport> {
    let h = cfg.horizon;
    let tracked = triggers::tracked_errors(predictions, h, series);
    let today = ctx.today();
    let replayed = match model {
        Some(m) if triggers::needs_replay(&tracked, &ctx.settings.triggers, today) => {
            let since = today - Duration::days(i64::from(ctx.settings.triggers.performance_baseline_days));
            let origins = origins_with_targets_after(series, h.steps(), since);
            Some(replay(m, series, h, &cfg.params(), &origins, cache)?)
        }
        _ => None,
    };
    let input = TriggerInput {
        horizon: h,
        series,
        tracked_errors: &tracked,
        replay_errors: replayed.as_deref(),
        history: past,
    };
    Ok(triggers::evaluate(&input, &ctx.settings.triggers, ctx.now, force))
}

/// Probation: a deploy within `probation_days` is checked against the validation RMSE it
/// promised, on the origins whose targets came after it; worse by more than the limit means
/// an automatic rollback.
fn probation(
    inp: &Inputs<'_>,
    cfg: &ForecasterConfig,
    cache: &mut ForwardCache,
) -> anyhow::Result<Option<ProbationCheck>> {
    let d = &inp.ctx.settings.deploy;
    let label = cfg.horizon.label();
    let Some(last) = inp
        .history
        .iter()
        .filter(|r| r.horizon == label && r.optimization_date <= inp.ctx.now)
        .max_by_key(|r| r.optimization_date)
    else {
        return Ok(None);
    };
    if last.action != Action::Deployed
        || history::days_since(last.optimization_date, inp.ctx.today()) > d.probation_days
    {
        return Ok(None);
    }
    let Some(promised) = cfg.validation_rmse.filter(|r| *r > 0.0) else {
        return Ok(None);
    };
    let origins = origins_with_targets_after(
        inp.series,
        cfg.horizon.steps(),
        last.optimization_date.date_naive(),
    );
    let origins: Vec<usize> = origins
        .into_iter()
        .filter(|&i| inp.series.dates[i] >= last.optimization_date.date_naive())
        .collect();
    let mut check = ProbationCheck {
        deployed_at: last.optimization_date,
        origins: origins.len(),
        live_rmse: None,
        promised_rmse: promised,
        limit_pct: d.probation_max_degradation_pct,
        degradation_pct: None,
        rolled_back: false,
        note: String::new(),
    };
    if origins.len() < d.probation_min_origins {
        check.note = format!(
            "on probation: {} of {} origins since the deploy; not judged yet",
            origins.len(),
            d.probation_min_origins
        );
        return Ok(Some(check));
    }
    let errors = replay(inp.model, inp.series, cfg.horizon, &cfg.params(), &origins, cache)?;
    let e: Vec<f64> = errors.iter().map(|p| p.error).collect();
    let live = crate::metrics::rmse(&e);
    let degradation = (live / promised - 1.0) * 100.0;
    check.live_rmse = Some(live);
    check.degradation_pct = Some(degradation);
    check.rolled_back = degradation > d.probation_max_degradation_pct;
    check.note = format!(
        "probation: live RMSE {live:.3} vs promised {promised:.3} ({degradation:+.1} %, limit +{:.0} %)",
        d.probation_max_degradation_pct
    );
    Ok(Some(check))
}

fn run_horizon(
    inp: &Inputs<'_>,
    cfg: &ForecasterConfig,
    force: bool,
    cache: &mut ForwardCache,
) -> anyhow::Result<(HorizonResult, Option<HistoryRecord>)> {
    let ctx = inp.ctx;
    let h = cfg.horizon;

    if let Some(check) = probation(inp, cfg, cache)? {
        if check.rolled_back {
            return probation_rollback(inp, cfg, check);
        }
        tracing::info!("{h}: {}", check.note);
    }

    let report = trigger_report(
        ctx,
        cfg,
        inp.series,
        inp.predictions,
        inp.history,
        Some(inp.model),
        cache,
        force,
    )?;
    let mut record = base_record(
        inp.ctx,
        inp.run_id,
        cfg.horizon,
        params_of(cfg),
        Action::NoTrigger,
        String::new(),
    );
    record.triggered_by = report.triggered_by();
    record.performance_degradation_pct = report.performance_degradation_pct();
    record.drift_severity = report.drift_severity();
    record.days_since_last = report.days_since_last();
    let mut result = empty_result(h, "", ExitCode::Success, String::new());
    result.current = Some(cfg.params());

    if !report.should_optimize {
        let action = if report.cooldown.suppressed.is_empty() {
            Action::NoTrigger
        } else {
            Action::Suppressed
        };
        result.action = action.as_str().to_string();
        result.message = report.reasons.join("; ");
        record.action = action;
        record.message.clone_from(&result.message);
        result.triggers = Some(report);
        return Ok((result, (!inp.dry_run).then_some(record)));
    }
    let trigger_text = report.reasons.join("; ");
    if !inp.dry_run {
        result.mail_error = super::send_mail(
            ctx,
            MailEvent::Triggered,
            &Email {
                subject: format!(
                    "[model-optimizer] {h} optimization triggered: {}",
                    report.triggered_by()
                ),
                body: format!("{trigger_text}\nrun {}\n", inp.run_id),
                attachments: Vec::new(),
            },
        );
    }
    result.triggers = Some(report);

    let started = Instant::now();
    let outcome = search_and_validate(ctx, inp.model, inp.series, cfg, None, cache)?;
    let v = outcome.validation;
    let search = outcome.search.expect("run always searches");
    let cand = v.candidate.params;
    result.candidate = Some(cand);
    result.approved = Some(v.approved);
    result.failing_criteria = failing(&v);
    record.new = RecordParams {
        context_length: Some(cand.context_length as i64),
        num_samples: Some(cand.num_samples as i64),
        temperature: Some(cand.temperature),
    };
    record.candidate = metrics_of(&v.candidate.metrics);
    record.current = metrics_of(&v.current.metrics);

    let plot = if inp.dry_run {
        None
    } else {
        match super::write_plot(&ctx.reports_dir(), inp.run_id, h, inp.series, &v) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("{h}: backtest picture not written: {e:#}");
                None
            }
        }
    };
    result.plot = plot.as_ref().map(|p| p.display().to_string());
    let rmse_change = crate::validate::relative_change_pct(v.candidate.metrics.rmse, v.current.metrics.rmse);
    let figures = format!(
        "RMSE {:.3} -> {:.3} CLP ({rmse_change:+.1} %)",
        v.current.metrics.rmse, v.candidate.metrics.rmse
    );

    if !v.approved {
        result.action = Action::Rejected.as_str().to_string();
        result.exit_code = ExitCode::Rejected;
        result.message = format!(
            "{cand} rejected ({}): {figures}",
            result.failing_criteria.join(", ")
        );
        if !inp.dry_run {
            let mail = mail_report(
                format!(
                    "[model-optimizer] {h} rejected: {figures}; failing: {}",
                    result.failing_criteria.join(", ")
                ),
                &trigger_text,
                &search,
                &v,
                inp.run_id,
                plot.as_ref(),
            );
            result.mail_error =
                super::send_mail(ctx, MailEvent::Rejected, &mail).or(result.mail_error.take());
        }
        record.action = Action::Rejected;
        record.message = super::with_mail_note(result.message.clone(), result.mail_error.as_deref());
        result.search = Some(search);
        result.validation = Some(v);
        return Ok((result, (!inp.dry_run).then_some(record)));
    }

    let new_cfg = ForecasterConfig {
        schema_version: SCHEMA_VERSION,
        horizon: h,
        model: ctx.settings.model.id.clone(),
        context_length: cand.context_length,
        num_samples: cand.num_samples,
        temperature: cand.temperature,
        validation_rmse: Some(v.candidate.metrics.rmse),
        validation_mape: Some(v.candidate.metrics.mape),
        validation_mae: Some(v.candidate.metrics.mae),
        validation_bias: Some(v.candidate.metrics.bias),
        validation_coverage_95: Some(v.candidate.metrics.coverage_95),
        search_iterations: Some(search.configs.len() as u32),
        optimization_time_seconds: Some(started.elapsed().as_secs_f64()),
        timestamp: super::record_time(ctx),
    };
    if inp.dry_run {
        result.action = "would_deploy".to_string();
        result.message = format!("would deploy {cand}: {figures}");
        result.search = Some(search);
        result.validation = Some(v);
        return Ok((result, None));
    }

    let message = format!(
        "model-optimizer: deploy {h} context={} samples={} temperature={:.1} (RMSE {rmse_change:+.1}%)\n\n{}\nrun {}\n",
        cand.context_length,
        cand.num_samples,
        cand.temperature,
        render_validation(&v),
        inp.run_id
    );
    let bytes = new_cfg.to_bytes();
    let smoke = |path: &std::path::Path| smoke_check(inp, path, h);
    let outcome = deploy::deploy(
        DeployRequest {
            configs_dir: &ctx.configs_dir(),
            horizon: h,
            new_config: &bytes,
            message: &message,
            git: &ctx.settings.git,
            backups_to_keep: ctx.settings.deploy.backups_to_keep,
            now: ctx.now,
        },
        &smoke,
    )?;
    for w in &outcome.warnings {
        tracing::warn!("{h}: {w}");
    }
    result.exit_code = outcome.exit_code();
    let (event, subject) = match &outcome.status {
        DeployStatus::Deployed => {
            result.action = Action::Deployed.as_str().to_string();
            result.message = format!("deployed {cand}: {figures}; {}", super::git_summary(&outcome.git));
            record.action = Action::Deployed;
            (
                MailEvent::Deployed,
                format!("[model-optimizer] {h} deployed: {figures}"),
            )
        }
        DeployStatus::RolledBack { reason } => {
            result.action = Action::Failed.as_str().to_string();
            result.message = format!("deploy of {cand} failed and was rolled back: {reason}");
            record.action = Action::Failed;
            record.success = false;
            (
                MailEvent::Failed,
                format!("[model-optimizer] {h} deploy failed and rolled back"),
            )
        }
        DeployStatus::RollbackFailed {
            reason,
            rollback_error,
        } => {
            result.action = Action::Failed.as_str().to_string();
            result.message = format!(
                "deploy of {cand} failed ({reason}) and restoring the old config failed too ({rollback_error}); run `model-optimizer status`"
            );
            record.action = Action::Failed;
            record.success = false;
            (
                MailEvent::Failed,
                format!("[model-optimizer] {h} deploy failed, config needs attention"),
            )
        }
    };
    let mut mail = mail_report(subject, &trigger_text, &search, &v, inp.run_id, plot.as_ref());
    mail.body = format!("{}\n\n{}", result.message, mail.body);
    result.mail_error = super::send_mail(ctx, event, &mail).or(result.mail_error.take());
    record.message = super::with_mail_note(result.message.clone(), result.mail_error.as_deref());
    result.deploy = Some(outcome);
    result.search = Some(search);
    result.validation = Some(v);
    Ok((result, Some(record)))
}

/// The smoke check of a freshly written config: read it back, parse it, forecast once.
fn smoke_check(inp: &Inputs<'_>, path: &std::path::Path, h: Horizon) -> anyhow::Result<()> {
    if crate::failpoint::fail("smoke_check") {
        anyhow::bail!("smoke check failed (injected by the smoke_check failpoint)");
    }
    let cfg = ForecasterConfig::read(path)?;
    anyhow::ensure!(
        cfg.horizon == h,
        "{}: deployed config is for {}, not {h}",
        path.display(),
        cfg.horizon
    );
    let start = inp.series.len().saturating_sub(cfg.context_length);
    let raw = inp
        .model
        .predict(&[&inp.series.values[start..]], h.steps())?
        .remove(0);
    let summary = forecast::summarize(&raw, cfg.num_samples, cfg.temperature)?;
    anyhow::ensure!(
        summary
            .mean
            .iter()
            .chain(summary.ci95.iter().flatten())
            .all(|x| x.is_finite()),
        "{}: the smoke forecast is not finite",
        path.display()
    );
    Ok(())
}

fn probation_rollback(
    inp: &Inputs<'_>,
    cfg: &ForecasterConfig,
    check: ProbationCheck,
) -> anyhow::Result<(HorizonResult, Option<HistoryRecord>)> {
    let ctx = inp.ctx;
    let h = cfg.horizon;
    let mut result = empty_result(
        h,
        Action::RolledBack.as_str(),
        ExitCode::Success,
        check.note.clone(),
    );
    result.current = Some(cfg.params());
    if inp.dry_run {
        result.action = "would_roll_back".into();
        result.probation = Some(check);
        return Ok((result, None));
    }
    let outcome = deploy::rollback(&ctx.configs_dir(), h, None, &ctx.settings.git, ctx.now)?;
    let restored = ForecasterConfig::read(&outcome.config)?;
    result.message = format!(
        "{}; rolled back to {} ({})",
        check.note,
        outcome.label,
        restored.params()
    );
    result.mail_error = super::send_mail(
        ctx,
        MailEvent::RolledBack,
        &Email {
            subject: format!("[model-optimizer] {h} rolled back after probation"),
            body: format!(
                "{}\ngit: {}\nrun {}\n",
                result.message,
                super::git_summary(&outcome.git),
                inp.run_id
            ),
            attachments: Vec::new(),
        },
    );
    let mut record = base_record(
        inp.ctx,
        inp.run_id,
        cfg.horizon,
        params_of(cfg),
        Action::RolledBack,
        super::with_mail_note(result.message.clone(), result.mail_error.as_deref()),
    );
    record.triggered_by = "probation".into();
    record.new = params_of(&restored);
    record.candidate.rmse = check.live_rmse;
    record.current.rmse = Some(check.promised_rmse);
    result.probation = Some(check);
    Ok((result, Some(record)))
}

/// The mail for a validated candidate: summary, criteria table, trigger figures, the picture.
fn mail_report(
    subject: String,
    trigger_text: &str,
    search: &SearchReport,
    v: &ValidationReport,
    run_id: &str,
    plot: Option<&PathBuf>,
) -> Email {
    let body = format!(
        "run {run_id}\n\ntriggers: {trigger_text}\n\n{}\n{}",
        render_validation(v),
        render_search(search)
    );
    let attachments = plot
        .and_then(|p| {
            std::fs::read(p).ok().map(|bytes| Attachment {
                filename: p
                    .file_name()
                    .map_or_else(|| "backtest.png".into(), |n| n.to_string_lossy().into_owned()),
                content_type: "image/png".into(),
                bytes,
            })
        })
        .into_iter()
        .collect();
    Email {
        subject,
        body,
        attachments,
    }
}

//! `run`: the weekly job. Under the run lock: recover from a crashed run, then per horizon
//! `decide` (probation, triggers, search, validation) and apply the decision (deploy or roll
//! back), then picture, mail and the history row, which is durable before the next horizon
//! starts. Horizons are independent: a failure in one is recorded and the others go on.
//! `--dry-run` decides and changes nothing.

use std::time::Instant;

use serde::Serialize;

use super::{FileApplier, Loaded};
use crate::deploy::{self, lock::RunLock};
use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecast::{self, QuantileModel};
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::{Context, RunRequest};
use crate::history::HistoryRecord;
use crate::notify::Attachment;
use crate::output::{self, Render};
use crate::policy::applier;
use crate::policy::decide;
use crate::policy::digest::{self, Section};
use crate::policy::health::AttentionState;
use crate::policy::outcome::{Delivered, Effect, HorizonResult, Outcome, RecordContext};
use crate::policy::search::ForwardCache;
use crate::series::Series;

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub dry_run: bool,
    pub model: String,
    pub recovery: Vec<String>,
    pub horizons: Vec<HorizonResult>,
    /// Why history could not be written, if it could not.
    pub history_error: Option<String>,
    pub exit_code: ExitCode,
}

impl Render for RunSummary {
    fn render(&self) -> String {
        let width = output::width();
        let head = format!(
            "run {}{}   model {}",
            self.run_id,
            if self.dry_run {
                " (dry run: nothing written, no mail)"
            } else {
                ""
            },
            self.model
        );
        let mut s = format!("{}\n", output::wrap(&head, width, "    "));
        for r in &self.recovery {
            s.push_str(&output::wrap(&format!("recovered: {r}"), width, "    "));
            s.push('\n');
        }
        let rows = self.horizons.iter().map(|h| {
            vec![
                h.horizon.label(),
                h.triggers.as_ref().map_or_else(
                    || "-".to_string(),
                    |t| {
                        let kinds = t.triggers();
                        if kinds.is_empty() {
                            "none".to_string()
                        } else {
                            crate::domain::TriggerKind::join(&kinds)
                        }
                    },
                ),
                h.action_label().to_string(),
                h.health_label().to_string(),
                h.short_verdict(),
            ]
        });
        s.push_str(&output::table_fitted(
            &["horizon", "triggers", "action", "health", "verdict"],
            rows,
            width,
        ));
        s.push('\n');
        for h in &self.horizons {
            s.push_str(&details(h, width));
        }
        if let Some(e) = &self.history_error {
            s.push_str(&output::wrap(&format!("history not written: {e}"), width, "    "));
            s.push('\n');
        }
        s.push_str(&format!("exit code {}\n", self.exit_code.code()));
        s
    }
}

/// A horizon's full texts below the table, each wrapped to `width`: the message (the full
/// verdict and the attention reason), the triggers' reasons, the picture, a mail failure.
fn details(h: &HorizonResult, width: usize) -> String {
    let mut lines = Vec::new();
    if !h.message.is_empty() {
        lines.push(format!("{}: {}", h.horizon, h.message));
    }
    if let Some(t) = h.triggers.as_ref().filter(|t| !t.reasons.is_empty()) {
        lines.push(format!("{} triggers: {}", h.horizon, t.reasons.join("; ")));
    }
    if let Some(p) = &h.plot {
        lines.push(format!("{} picture: {p}", h.horizon));
    }
    if let Some(e) = &h.mail_error {
        lines.push(format!("{}: mail not sent: {e}", h.horizon));
    }
    output::wrap_lines(&lines, width, "    ")
}

/// Where finished horizons go: the summary rows, and history rows appended one horizon at a
/// time so a completed horizon is on disk before the next one starts.
struct Ledger<'a> {
    ctx: &'a Context,
    req: &'a RunRequest,
    /// Wall-clock start, for the metrics.
    started_at: chrono::DateTime<chrono::Utc>,
    run_id: String,
    results: Vec<HorizonResult>,
    /// Rows not yet appended because an append failed; retried with the next horizon.
    unwritten: Vec<HistoryRecord>,
    /// What each finished horizon offers the run's digest mail.
    sections: Vec<Section>,
    history_error: Option<String>,
}

impl Ledger<'_> {
    /// Records one finished horizon: picture, mails, history row, summary row.
    fn finish(
        &mut self,
        h: Horizon,
        cfg: Option<&ForecasterConfig>,
        outcome: &Outcome,
        loaded: Option<&Loaded>,
        started: Instant,
    ) {
        let dry = self.req.dry_run;
        let plot = match (outcome.validation(), loaded) {
            (Some(v), Some(s)) if !dry => {
                match super::write_plot(&self.ctx.reports_dir(), &self.run_id, h, &s.series, v) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!("{h}: backtest picture not written: {e:#}");
                        None
                    }
                }
            }
            _ => None,
        };
        let picture = plot.as_ref().and_then(|p| {
            std::fs::read(p).ok().map(|bytes| Attachment {
                filename: format!("{}.png", h.label()),
                content_type: "image/png".into(),
                bytes,
            })
        });
        if !dry {
            self.sections
                .extend(outcome.mails(h, &self.run_id, picture.as_ref()).into_iter().map(
                    |(event, email)| Section {
                        horizon: h,
                        event,
                        email,
                    },
                ));
        }
        if let Effect::Failed { message, .. } = &outcome.effect {
            tracing::error!("{h}: {message}");
        }
        if !dry {
            let rc = RecordContext {
                duration_seconds: started.elapsed().as_secs_f64(),
                ..RecordContext::new(&self.run_id, self.ctx.now, cfg.map(ForecasterConfig::params))
            };
            self.unwritten.extend(outcome.record(h, &rc));
            self.flush();
        }
        self.results.push(HorizonResult::new(
            h,
            cfg.map(ForecasterConfig::params),
            outcome,
            self.req.fail_on_reject,
            Delivered {
                plot: plot.map(|p| self.ctx.shown(&p)),
                attention_before: loaded
                    .and_then(|l| AttentionState::of(crate::history::judged_attention(&l.history, h))),
            },
        ));
    }

    /// Appends the rows not yet written; on failure keeps them and remembers why.
    fn flush(&mut self) {
        if self.unwritten.is_empty() {
            return;
        }
        match crate::data::history::append(&self.ctx.history_path(), &self.unwritten) {
            Ok(()) => {
                self.unwritten.clear();
                self.history_error = None;
                // The row is durable: the journal of this horizon's deploy or rollback is done.
                if let Err(e) = deploy::finish(&self.ctx.configs_dir()) {
                    let e = format!("{e:#}");
                    tracing::error!("deploy journal not removed: {e}");
                    self.history_error = Some(format!("the deploy journal could not be removed: {e}"));
                }
            }
            Err(e) => {
                let e = format!("{e:#}");
                tracing::error!("history append failed: {e}");
                self.history_error = Some(e);
            }
        }
    }

    /// Sends the run's one digest mail when a selected event happened; a failure is logged
    /// and shown on every horizon's row (the history rows are already written).
    fn mail_digest(&mut self) {
        let smtp = &self.ctx.settings.smtp;
        let Some(mail) = digest::digest(&self.run_id, &self.results, &self.sections, |e| {
            crate::notify::event_enabled(smtp, e)
        }) else {
            return;
        };
        if let Some(e) = super::send_email(self.ctx, &mail) {
            for r in &mut self.results {
                r.mail_error = Some(e.clone());
            }
        }
    }

    /// Prints the summary and returns the run's exit code: the worst horizon's, or a runtime
    /// error when history could not be written.
    fn close(mut self, recovery: Vec<String>) -> anyhow::Result<ExitCode> {
        self.results.sort_by_key(|r| r.horizon);
        let mut code = self
            .results
            .iter()
            .fold(ExitCode::Success, |acc, r| acc.worst(r.exit_code));
        if self.history_error.is_some() {
            code = code.worst(ExitCode::Runtime);
        }
        if !self.req.dry_run {
            self.mail_digest();
            crate::exposition::publish(
                self.ctx,
                &crate::exposition::Event::Run {
                    start: self.started_at,
                    end: chrono::Utc::now(),
                    exit_code: code,
                    results: &self.results,
                },
            );
        }
        output::emit(
            self.ctx.json,
            &RunSummary {
                run_id: self.run_id,
                dry_run: self.req.dry_run,
                model: self.ctx.settings.model.id.clone(),
                recovery,
                horizons: self.results,
                history_error: self.history_error,
                exit_code: code,
            },
        )?;
        Ok(code)
    }
}

pub fn run(ctx: &Context, req: &RunRequest) -> anyhow::Result<ExitCode> {
    // Refused before anything changes, a dry run too: it checks the set-up a real run needs.
    deploy::lock::require_owner(&ctx.root)?;
    let started_at = chrono::Utc::now();
    // A dry run changes no file, so it neither takes the lock (creating the lock file) nor
    // cleans up; it only says what a real run would recover.
    let _lock = if req.dry_run {
        None
    } else {
        Some(RunLock::acquire(&ctx.root)?)
    };
    let recovery = if req.dry_run {
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
    if !req.dry_run {
        // A git state no deploy may commit into is refused before any search.
        deploy::preflight(&ctx.configs_dir(), &ctx.settings.git)?;
    }
    let mut ledger = Ledger {
        ctx,
        req,
        started_at,
        run_id: super::run_id(ctx),
        results: Vec::new(),
        unwritten: Vec::new(),
        sections: Vec::new(),
        history_error: None,
    };
    let mut configs = Vec::new();
    for &h in &req.horizons {
        let started = Instant::now();
        match super::read_config(ctx, h) {
            Ok(c) => configs.push(c),
            Err(e) => ledger.finish(h, None, &Outcome::failed(&e), None, started),
        }
    }
    if configs.is_empty() {
        return ledger.close(recovery);
    }
    let started = Instant::now();
    let loaded = match Loaded::load(ctx) {
        Ok(s) => s,
        Err(e) => {
            // Every horizon needs the series, predictions, history and model.
            let failed = Outcome::failed(&e);
            for cfg in &configs {
                ledger.finish(cfg.horizon, Some(cfg), &failed, None, started);
            }
            return ledger.close(recovery);
        }
    };
    // One forward cache for the whole run: the longest horizon first, so shorter horizons
    // reuse its forecasts where context length and origins coincide.
    let mut cache = ForwardCache::new();
    configs.sort_by_key(|c| std::cmp::Reverse(c.horizon));
    for cfg in &configs {
        let started = Instant::now();
        let span = tracing::info_span!("horizon", h = %cfg.horizon);
        let _enter = span.enter();
        let outcome = match &ledger.history_error {
            // A row that could not be written keeps its journal; no further deploy may start.
            Some(e) => Outcome::failed(&crate::exit::failure(
                ExitCode::Runtime,
                format!("not decided: history could not be written ({e})"),
            )),
            None => horizon(ctx, req, &loaded, &ledger.run_id, cfg, &mut cache),
        };
        ledger.finish(cfg.horizon, Some(cfg), &outcome, Some(&loaded), started);
    }
    ledger.close(recovery)
}

/// Decides one horizon and, unless this is a dry run, applies the decision.
fn horizon(
    ctx: &Context,
    req: &RunRequest,
    loaded: &Loaded,
    run_id: &str,
    cfg: &ForecasterConfig,
    cache: &mut ForwardCache,
) -> Outcome {
    let world = loaded.world(ctx);
    let bar = output::Progress::new(0, &format!("search {}", cfg.horizon));
    let mut progress = |p: crate::policy::search::Progress| super::progress_event(&bar, &p);
    let started = Instant::now();
    let judged = decide::judge(&world, cfg, req.force, cache, &mut progress);
    bar.finish();
    let (decision, health) = match judged {
        Ok((d, health)) => (d.took(started.elapsed().as_secs_f64()), health),
        Err(e) => return Outcome::failed(&e),
    };
    if req.dry_run {
        return Outcome::dry_run(decision).with_health(health);
    }
    let rc = RecordContext::new(run_id, ctx.now, Some(cfg.params()));
    let model = loaded.model.as_ref().expect("run loads the model");
    let smoke = |path: &std::path::Path| smoke_check(model, &loaded.series, path, cfg.horizon);
    let mut files = FileApplier {
        ctx,
        smoke: Some(&smoke),
    };
    applier::apply(&mut files, cfg.horizon, decision, &rc).with_health(health)
}

/// The smoke check of a freshly written config: read it back, parse it, forecast once.
fn smoke_check(
    model: &dyn QuantileModel,
    series: &Series,
    path: &std::path::Path,
    h: Horizon,
) -> anyhow::Result<()> {
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
    let start = series.len().saturating_sub(cfg.context_length);
    let raw = model.predict(&[&series.values[start..]], h.steps())?.remove(0);
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

//! `rollback`: restores a horizon's config from a backup (the newest that differs, or the one
//! named by `--to`), under the run lock, with a commit, a history record and mail.

use std::time::Instant;

use serde::Serialize;

use crate::deploy::{self, lock::RunLock};
use crate::domain::MailEvent;
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::{Context, RollbackRequest};
use crate::history::{Action, HistoryRecord, RecordParams};
use crate::notify::Email;
use crate::output::{self, Render};
use crate::policy::applier::Applier;

#[derive(Debug, Serialize)]
struct RollbackReport {
    horizon: crate::domain::Horizon,
    dry_run: bool,
    restored_from: String,
    label: String,
    from_params: Option<RecordParams>,
    to_params: RecordParams,
    safety_backup: Option<String>,
    git: Option<deploy::GitRecord>,
    warnings: Vec<String>,
    mail_error: Option<String>,
    history_error: Option<String>,
}

impl Render for RollbackReport {
    fn render(&self) -> String {
        let verb = if self.dry_run { "would restore" } else { "restored" };
        let mut s = format!(
            "{}: {verb} {} ({})\n",
            self.horizon, self.restored_from, self.label
        );
        if let Some(b) = &self.safety_backup {
            s.push_str(&format!("the replaced config was backed up to {b}\n"));
        }
        if let Some(g) = &self.git {
            s.push_str(&format!("git: {}\n", super::git_summary(g)));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        if let Some(e) = &self.mail_error {
            s.push_str(&format!("mail not sent: {e}\n"));
        }
        if let Some(e) = &self.history_error {
            s.push_str(&format!("history not appended: {e}\n"));
        }
        s
    }
}

/// A config's parameters as history records them.
fn params_of(c: &ForecasterConfig) -> RecordParams {
    crate::policy::outcome::params(&c.params())
}

pub fn run(ctx: &Context, args: &RollbackRequest) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let h = args.horizon;
    let dir = ctx.configs_dir();
    deploy::lock::require_owner(&ctx.root)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(RunLock::acquire(&ctx.root)?)
    };
    if !args.dry_run {
        super::recover(ctx)?;
    }
    let current = ForecasterConfig::read(&h.config_path(&dir)).ok();
    if args.dry_run {
        return dry_run(ctx, args, current.as_ref());
    }
    // The record is built before the rollback: the journal keeps it until it is appended.
    let (target_path, label) = deploy::rollback_target(&dir, h, args.to.as_deref())?;
    let target = ForecasterConfig::read(&target_path)?;
    let mut record = operator_record(ctx, current.as_ref(), &target, &label);
    let target_spec = target_path.display().to_string();
    // The same applier, and so the same rules, as a probation rollback in `run`.
    let mut files = super::FileApplier { ctx, smoke: None };
    let outcome = files.rollback(h, Some(&target_spec), &record)?;
    let restored = files.current(h)?;
    let mail_error = super::send_mail(
        ctx,
        MailEvent::RolledBack,
        &mail(h, &outcome, &restored, current.as_ref()),
    );
    record.new = params_of(&restored);
    record.duration_seconds = started.elapsed().as_secs_f64();
    let mut message = format!("restored {}", outcome.label);
    for w in &outcome.warnings {
        message.push_str(&format!("; {w}"));
    }
    record.message = super::with_mail_note(message, mail_error.as_deref());
    // A failed append keeps the journal (the next run or `status` appends its copy of the
    // record); the report still prints, with the cause.
    let history_error = match crate::data::history::append(&ctx.history_path(), std::slice::from_ref(&record))
    {
        Ok(()) => {
            deploy::finish(&dir)?;
            None
        }
        Err(e) => Some(format!(
            "{e:#}; the rollback stands and the next run or `status` records it"
        )),
    };
    output::emit(
        ctx.json,
        &RollbackReport {
            horizon: h,
            dry_run: false,
            restored_from: ctx.shown(&outcome.restored_from),
            label: outcome.label.clone(),
            from_params: current.as_ref().map(params_of),
            to_params: params_of(&restored),
            safety_backup: outcome.safety_backup.as_ref().map(|p| ctx.shown(p)),
            git: Some(outcome.git.clone()),
            warnings: outcome.warnings.clone(),
            mail_error,
            history_error: history_error.clone(),
        },
    )?;
    crate::exposition::publish(ctx, &crate::exposition::Event::Rollback);
    if let Some(e) = history_error {
        return Err(crate::exit::failure(
            ExitCode::Runtime,
            format!("history not appended: {e}"),
        ));
    }
    Ok(ExitCode::Success)
}

/// What a dry run would restore; changes nothing.
fn dry_run(
    ctx: &Context,
    args: &RollbackRequest,
    current: Option<&ForecasterConfig>,
) -> anyhow::Result<ExitCode> {
    let (path, label) = deploy::rollback_target(&ctx.configs_dir(), args.horizon, args.to.as_deref())?;
    let target = ForecasterConfig::read(&path)?;
    output::emit(
        ctx.json,
        &RollbackReport {
            horizon: args.horizon,
            dry_run: true,
            restored_from: ctx.shown(&path),
            label,
            from_params: current.map(params_of),
            to_params: params_of(&target),
            safety_backup: None,
            git: None,
            warnings: Vec::new(),
            mail_error: None,
            history_error: None,
        },
    )?;
    Ok(ExitCode::Success)
}

/// The history row of an operator's rollback, built before it starts: the journal keeps it
/// until it is appended.
fn operator_record(
    ctx: &Context,
    current: Option<&ForecasterConfig>,
    target: &ForecasterConfig,
    label: &str,
) -> HistoryRecord {
    HistoryRecord {
        run_id: super::run_id(ctx),
        horizon: target.horizon,
        optimization_date: super::record_time(ctx),
        action: Action::RolledBack,
        triggered_by: vec![crate::domain::TriggerKind::Operator],
        performance_degradation_pct: None,
        drift_severity: None,
        days_since_last: None,
        success: true,
        old: current.map(params_of).unwrap_or_default(),
        new: params_of(target),
        candidate: crate::history::RecordMetrics::default(),
        current: crate::history::RecordMetrics::default(),
        duration_seconds: 0.0,
        message: format!("restored {label}"),
        attention: None,
    }
}

/// The mail of an operator's rollback.
fn mail(
    h: crate::domain::Horizon,
    outcome: &deploy::RollbackOutcome,
    restored: &ForecasterConfig,
    current: Option<&ForecasterConfig>,
) -> Email {
    Email {
        subject: format!("[model-optimizer] {h} rolled back to {}", outcome.label),
        body: format!(
            "{h} was rolled back by an operator.\nrestored: {} ({})\nnow: {}\nreplaced: {}\ngit: {}\n",
            outcome.restored_from.display(),
            outcome.label,
            restored.params(),
            current.map_or_else(|| "-".to_string(), |c| c.params().to_string()),
            super::git_summary(&outcome.git),
        ),
        attachments: Vec::new(),
    }
}

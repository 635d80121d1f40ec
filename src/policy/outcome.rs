//! What happened to one horizon in a run, as one typed value: the [`Decision`] and the
//! [`Effect`] of carrying it out. Everything else is derived from it here, in one place: the
//! history action and record, the exit code, the summary message, the mails and the result
//! row. Carrying a decision out goes through [`crate::policy::applier`], for `run` and `replay` alike.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::deploy::{DeployOutcome, DeployStatus, GitRecord};
use crate::domain::{Horizon, InferenceParams, MailEvent, TriggerKind};
use crate::exit::ExitCode;
use crate::history::{Action, HistoryRecord, RecordMetrics, RecordParams};
use crate::notify::{Attachment, Email};
use crate::policy::decide::{Decision, Evidence};
use crate::policy::health::{self, AttentionChange, Health};
use crate::policy::probation::ProbationCheck;
use crate::policy::render;
use crate::policy::search::SearchReport;
use crate::policy::trial::TrialCheck;
use crate::policy::validate::ValidationReport;
use crate::triggers::TriggerReport;

/// A rollback that was carried out.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackDone {
    /// The backup restored.
    pub label: String,
    pub restored: InferenceParams,
    pub git: GitRecord,
}

/// What carrying out a decision did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    /// Carried out without changing a config: the history row is the whole effect (no
    /// trigger, a rejection, a trial started, waiting or lost).
    Unchanged,
    /// A dry run: decided, not carried out, not recorded, not mailed.
    DryRun,
    Deployed(DeployOutcome),
    /// The deploy failed; the outcome says whether the old config was restored.
    DeployFailed(DeployOutcome),
    RolledBack(RollbackDone),
    /// Deciding or carrying out failed; the deployed config was not changed by it.
    Failed {
        message: String,
        code: ExitCode,
    },
}

/// The kind of an [`Effect`], for result rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    Unchanged,
    DryRun,
    Deployed,
    DeployFailed,
    RolledBack,
    Failed,
}

impl Effect {
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::Unchanged => EffectKind::Unchanged,
            Effect::DryRun => EffectKind::DryRun,
            Effect::Deployed(_) => EffectKind::Deployed,
            Effect::DeployFailed(_) => EffectKind::DeployFailed,
            Effect::RolledBack(_) => EffectKind::RolledBack,
            Effect::Failed { .. } => EffectKind::Failed,
        }
    }
}

/// What happened to one horizon: the decision (None when none could be made) and what
/// carrying it out did.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub decision: Option<Decision>,
    pub effect: Effect,
    /// The health of the config in effect before the decision (None when it could not be
    /// judged: no model, or deciding failed first).
    pub health: Option<Health>,
}

/// The run-level facts a history record carries besides the outcome.
#[derive(Clone, Debug)]
pub struct RecordContext<'a> {
    pub run_id: &'a str,
    pub time: DateTime<Utc>,
    /// The parameters in effect before this run (default when the config was unreadable).
    pub old: RecordParams,
    pub duration_seconds: f64,
}

impl<'a> RecordContext<'a> {
    /// The facts of run `run_id` at `now` for a horizon whose config had `current` (None when
    /// it was unreadable); the caller adds the duration when it knows it.
    pub fn new(run_id: &'a str, now: DateTime<Utc>, current: Option<InferenceParams>) -> RecordContext<'a> {
        RecordContext {
            run_id,
            time: crate::policy::decide::record_time(now),
            old: current.as_ref().map(params).unwrap_or_default(),
            duration_seconds: 0.0,
        }
    }
}

impl Outcome {
    /// No decision: `err` stopped this horizon.
    pub fn failed(err: &anyhow::Error) -> Outcome {
        Outcome {
            decision: None,
            effect: Effect::Failed {
                message: format!("{err:#}"),
                code: crate::exit::code_of(err),
            },
            health: None,
        }
    }

    /// This outcome with the health of the config that was in effect.
    #[must_use]
    pub fn with_health(mut self, health: Option<Health>) -> Outcome {
        self.health = health;
        self
    }

    /// The attention reason of the config in effect, None when healthy or not judged.
    pub fn attention(&self) -> Option<String> {
        self.health.as_ref().and_then(Health::attention)
    }

    /// A decision not carried out.
    pub fn dry_run(decision: Decision) -> Outcome {
        Outcome {
            decision: Some(decision),
            effect: Effect::DryRun,
            health: None,
        }
    }

    pub fn is_dry_run(&self) -> bool {
        matches!(self.effect, Effect::DryRun)
    }

    /// The history action: the decision's, or `failed` when deciding or deploying failed.
    pub fn action(&self) -> Action {
        match (&self.decision, &self.effect) {
            (Some(d), Effect::Unchanged | Effect::DryRun | Effect::Deployed(_) | Effect::RolledBack(_)) => {
                d.action()
            }
            _ => Action::Failed,
        }
    }

    /// The exit code this outcome contributes. A rejection (a lost trial too) is a completed
    /// decision (0) unless the caller asked rejections to fail the run.
    pub fn exit_code(&self, fail_on_reject: bool) -> ExitCode {
        match (&self.decision, &self.effect) {
            (_, Effect::DeployFailed(deploy)) => deploy.exit_code(),
            (_, Effect::Failed { code, .. }) => *code,
            (Some(Decision::Rejected(_) | Decision::TrialFailed { .. }), _) if fail_on_reject => {
                ExitCode::Rejected
            }
            _ => ExitCode::Success,
        }
    }

    fn evidence(&self) -> Option<&Evidence> {
        self.decision.as_ref().and_then(Decision::evidence)
    }

    pub fn triggers(&self) -> Option<&TriggerReport> {
        self.decision.as_ref().and_then(Decision::triggers)
    }

    pub fn probation(&self) -> Option<&ProbationCheck> {
        self.decision.as_ref().and_then(Decision::probation)
    }

    pub fn validation(&self) -> Option<&ValidationReport> {
        self.evidence().map(|e| &e.validation)
    }

    pub fn search(&self) -> Option<&SearchReport> {
        self.decision.as_ref().and_then(Decision::search)
    }

    /// `approved`, `rejected: ...` or `kept: ...`; None without a search or validation.
    pub fn verdict(&self) -> Option<String> {
        match &self.decision {
            Some(Decision::Kept(k)) => Some(render::kept(&k.search)),
            _ => self.validation().map(render::verdict),
        }
    }

    /// The trial this outcome looked at, if any.
    pub fn trial(&self) -> Option<&TrialCheck> {
        self.decision.as_ref().and_then(Decision::trial)
    }

    pub fn deploy(&self) -> Option<&DeployOutcome> {
        match &self.effect {
            Effect::Deployed(d) | Effect::DeployFailed(d) => Some(d),
            _ => None,
        }
    }

    /// The one-line summary: the table's message and history's `message`.
    pub fn message(&self) -> String {
        let said = match (&self.decision, &self.effect) {
            (_, Effect::Failed { message, .. }) => message.clone(),
            (Some(d), Effect::DryRun) => messages::dry_run(d),
            (Some(d), effect) => messages::carried_out(d, effect),
            (None, _) => String::new(),
        };
        match self.attention() {
            Some(a) if said.is_empty() => format!("attention: {a}"),
            Some(a) => format!("{said}; attention: {a}"),
            None => said,
        }
    }

    /// The history row of this outcome. A dry run has none.
    pub fn record(&self, h: Horizon, rc: &RecordContext<'_>) -> Option<HistoryRecord> {
        if self.is_dry_run() {
            return None;
        }
        Some(self.row_of(h, rc))
    }

    fn row_of(&self, h: Horizon, rc: &RecordContext<'_>) -> HistoryRecord {
        let mut r = blank_row(h, rc, self.action(), self.message());
        if let Some(d) = &self.decision {
            fill_from_decision(&mut r, d);
        }
        if let Effect::RolledBack(done) = &self.effect {
            r.new = params(&done.restored);
        }
        r.attention = self.health.as_ref().map(|h| h.attention().unwrap_or_default());
        r
    }

    /// The mails of this outcome, in sending order, with the event that selects each. The
    /// picture, when there is one, is attached to the validation mails. A dry run sends none.
    pub fn mails(&self, h: Horizon, run_id: &str, picture: Option<&Attachment>) -> Vec<(MailEvent, Email)> {
        if self.is_dry_run() {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Only an alarm that started a search mails as `triggered`; a scheduled check is not one.
        let searched = self
            .decision
            .as_ref()
            .filter(|d| d.search().is_some() || d.evidence().is_some());
        if let Some(t) = searched
            .and_then(Decision::triggers)
            .filter(|t| !t.alarms.is_empty())
        {
            out.push((MailEvent::Triggered, mails::triggered(h, run_id, t)));
        }
        out.extend(mails::main(self, h, run_id, picture));
        out
    }
}

/// The row a deploy or rollback about to be carried out will owe history: kept in the deploy
/// journal, so a crash after the commit still gets its row (marked recovered). None for a
/// decision that changes no config.
pub fn owed(decision: &Decision, h: Horizon, rc: &RecordContext<'_>) -> Option<HistoryRecord> {
    let message = match decision {
        Decision::Approved(a) => messages::deployed(&a.evidence),
        Decision::ProbationRollback { check } => format!("{}; rolled back", check.note),
        _ => return None,
    };
    let mut r = blank_row(h, rc, decision.action(), message);
    fill_from_decision(&mut r, decision);
    Some(r)
}

/// A row with the run's facts and no evidence yet.
fn blank_row(h: Horizon, rc: &RecordContext<'_>, action: Action, message: String) -> HistoryRecord {
    HistoryRecord {
        run_id: rc.run_id.to_string(),
        horizon: h,
        optimization_date: rc.time,
        action,
        triggered_by: Vec::new(),
        performance_degradation_pct: None,
        drift_severity: None,
        days_since_last: None,
        success: action != Action::Failed,
        old: rc.old,
        new: RecordParams::default(),
        candidate: RecordMetrics::default(),
        current: RecordMetrics::default(),
        duration_seconds: rc.duration_seconds,
        message,
        attention: None,
    }
}

/// The decision's evidence in a row: triggers, the candidate and both validation metrics, a
/// trial's or a probation rollback's figures.
fn fill_from_decision(r: &mut HistoryRecord, d: &Decision) {
    if let Some(t) = d.triggers() {
        r.triggered_by = t.triggers();
        r.performance_degradation_pct = t.performance_degradation_pct();
        r.drift_severity = t.drift_severity();
        r.days_since_last = t.days_since_last();
    }
    let validation = d.evidence().map(|e| &e.validation);
    if let Some(v) = validation {
        r.new = params(&v.candidate.params);
        r.candidate = metrics(&v.candidate.metrics);
        r.current = metrics(&v.current.metrics);
    }
    if let Some(t) = d.trial() {
        if !matches!(d, Decision::TrialStarted(_)) {
            r.triggered_by = vec![TriggerKind::Trial];
        }
        if validation.is_none() {
            r.new = params(&t.candidate);
            r.candidate.rmse = t.candidate_rmse;
            r.current.rmse = t.current_rmse;
        }
    }
    if let Decision::Kept(k) = d {
        // The search's choice is the current config: one config, on the selection origins.
        let best = k.search.best();
        r.new = params(&best.params);
        r.candidate = metrics(&best.metrics);
        r.current = r.candidate;
    }
    if let Decision::ProbationRollback { check } = d {
        r.triggered_by = vec![TriggerKind::Probation];
        r.candidate.rmse = check.live_rmse;
        r.current.rmse = Some(check.promised_rmse);
    }
}

/// The one-line messages.
mod messages {
    use super::{render, Decision, DeployStatus, Effect, Evidence, ValidationReport};

    /// `RMSE 12.345 -> 11.234 CLP (-9.0 %)`: current against candidate on the validation origins.
    pub(super) fn figures(v: &ValidationReport) -> String {
        let (cur, cand) = (v.current.metrics.rmse, v.candidate.metrics.rmse);
        format!(
            "RMSE {cur:.3} -> {cand:.3} CLP ({:+.1} %)",
            crate::metrics::change_pct(cand, cur)
        )
    }

    /// "trial ...: passed; " before a deploy that followed a trial.
    fn after_trial(e: &Evidence) -> String {
        e.trial
            .as_ref()
            .map(|t| format!("{}; ", t.note))
            .unwrap_or_default()
    }

    /// `deployed <params>: <figures>`, after the trial that led to it.
    pub(super) fn deployed(e: &Evidence) -> String {
        format!(
            "{}deployed {}: {}",
            after_trial(e),
            e.validation.candidate.params,
            figures(&e.validation)
        )
    }

    /// What a dry run says it would do.
    pub(super) fn dry_run(d: &Decision) -> String {
        match d {
            Decision::ProbationRollback { check } => format!("{}; would roll back", check.note),
            Decision::TrialStarted(e) => format!(
                "would start a live trial of {}: {}",
                e.validation.candidate.params,
                figures(&e.validation)
            ),
            Decision::Approved(a) => {
                let v = &a.evidence.validation;
                format!("would deploy {}: {}", v.candidate.params, figures(v))
            }
            other => decided(other),
        }
    }

    /// What was done.
    pub(super) fn carried_out(d: &Decision, effect: &Effect) -> String {
        match (d, effect) {
            (Decision::ProbationRollback { check }, Effect::RolledBack(done)) => {
                format!(
                    "{}; rolled back to {} ({})",
                    check.note, done.label, done.restored
                )
            }
            (Decision::Approved(a), Effect::Deployed(deploy)) => format!(
                "{}; git: {}",
                deployed(&a.evidence),
                render::git_summary(&deploy.git)
            ),
            (Decision::Approved(a), Effect::DeployFailed(deploy)) => {
                deploy_failed(a.evidence.validation.candidate.params, &deploy.status)
            }
            (other, _) => decided(other),
        }
    }

    fn deploy_failed(cand: crate::domain::InferenceParams, status: &DeployStatus) -> String {
        match status {
            DeployStatus::RollbackFailed {
                reason,
                rollback_error,
            } => format!(
                "deploy of {cand} failed ({reason}) and restoring the old config failed too ({rollback_error}); run `model-optimizer status`"
            ),
            DeployStatus::RolledBack { reason } => {
                format!("deploy of {cand} failed and was rolled back: {reason}")
            }
            DeployStatus::Deployed => format!("deploy of {cand} reported no failure"),
        }
    }

    /// Decisions whose message does not depend on the effect.
    fn decided(d: &Decision) -> String {
        match d {
            Decision::NoTrigger { triggers, .. } | Decision::Suppressed { triggers, .. } => {
                triggers.reasons.join("; ")
            }
            Decision::Rejected(e) => {
                let v = &e.validation;
                let after = e
                    .trial
                    .as_ref()
                    .map(|t| format!("{}; validated again: ", t.note))
                    .unwrap_or_default();
                format!(
                    "{after}{} {}; {}",
                    v.candidate.params,
                    render::verdict(v),
                    figures(v)
                )
            }
            Decision::TrialStarted(e) => format!(
                "approved {}: {}; on trial until it beats the current config live",
                e.validation.candidate.params,
                figures(&e.validation)
            ),
            Decision::OnTrial { check } | Decision::TrialFailed { check } => check.note.clone(),
            Decision::Kept(k) => render::kept(&k.search),
            Decision::ProbationRollback { check } => format!("{}; rolled back", check.note),
            Decision::Approved(a) => deployed(&a.evidence),
        }
    }
}

/// The mails.
mod mails {
    use super::{
        messages, render, Attachment, Decision, DeployStatus, Effect, Email, Evidence, Horizon, MailEvent,
        Outcome, TriggerReport,
    };

    /// The alarm that started an optimization, sent before the verdict's mail.
    pub(super) fn triggered(h: Horizon, run_id: &str, t: &TriggerReport) -> Email {
        Email {
            subject: format!(
                "[model-optimizer] {h} alarm ({}): {}",
                t.severity,
                crate::domain::TriggerKind::join(&t.alarms)
            ),
            body: format!("{}\nrun {run_id}\n", t.reasons.join("; ")),
            attachments: Vec::new(),
        }
    }

    /// The validation report a verdict mail carries.
    fn report(run_id: &str, e: &Evidence) -> String {
        format!(
            "run {run_id}\n\ntriggers: {}\n\n{}\n{}",
            e.triggers.reasons.join("; "),
            render::render_validation(&e.validation),
            e.search.as_ref().map(render::render_search).unwrap_or_default()
        )
    }

    fn mail(subject: String, body: String, attachments: Vec<Attachment>) -> Email {
        Email {
            subject,
            body,
            attachments,
        }
    }

    /// The verdict's or the effect's mail, if the outcome has one.
    pub(super) fn main(
        o: &Outcome,
        h: Horizon,
        run_id: &str,
        picture: Option<&Attachment>,
    ) -> Option<(MailEvent, Email)> {
        let attach = || picture.cloned().into_iter().collect::<Vec<_>>();
        let message = o.message();
        let Some(d) = &o.decision else {
            return failed(o, h, run_id);
        };
        Some(match (d, &o.effect) {
            (_, Effect::Failed { .. }) => return failed(o, h, run_id),
            (Decision::TrialStarted(e), _) => (
                MailEvent::Trial,
                mail(
                    format!(
                        "[model-optimizer] {h} trial started: {}",
                        e.validation.candidate.params
                    ),
                    format!("{message}\n\n{}", report(run_id, e)),
                    attach(),
                ),
            ),
            (Decision::TrialFailed { check }, _) => (
                MailEvent::Trial,
                mail(
                    format!("[model-optimizer] {h} trial failed: {}", check.candidate),
                    format!("{message}\nThe deployed config was not changed.\nrun {run_id}\n"),
                    Vec::new(),
                ),
            ),
            (_, Effect::RolledBack(done)) => (
                MailEvent::RolledBack,
                mail(
                    format!("[model-optimizer] {h} rolled back after probation"),
                    format!(
                        "{message}\ngit: {}\nrun {run_id}\n",
                        render::git_summary(&done.git)
                    ),
                    Vec::new(),
                ),
            ),
            (Decision::Kept(k), _) => (
                MailEvent::Kept,
                mail(
                    format!("[model-optimizer] {h} kept its config"),
                    format!("{message}\nrun {run_id}\n\n{}", render::render_search(&k.search)),
                    Vec::new(),
                ),
            ),
            (Decision::Rejected(e), _) => (
                MailEvent::Rejected,
                mail(
                    format!(
                        "[model-optimizer] {h} {}; {}",
                        render::verdict(&e.validation),
                        messages::figures(&e.validation)
                    ),
                    format!("{message}\n\n{}", report(run_id, e)),
                    attach(),
                ),
            ),
            (Decision::Approved(a), Effect::Deployed(_)) => (
                MailEvent::Deployed,
                mail(
                    format!(
                        "[model-optimizer] {h} deployed: {}",
                        messages::figures(&a.evidence.validation)
                    ),
                    format!("{message}\n\n{}", report(run_id, &a.evidence)),
                    attach(),
                ),
            ),
            (Decision::Approved(a), Effect::DeployFailed(deploy)) => (
                MailEvent::Failed,
                mail(
                    match deploy.status {
                        DeployStatus::RollbackFailed { .. } => {
                            format!("[model-optimizer] {h} deploy failed, config needs attention")
                        }
                        _ => format!("[model-optimizer] {h} deploy failed and rolled back"),
                    },
                    format!("{message}\n\n{}", report(run_id, &a.evidence)),
                    attach(),
                ),
            ),
            _ => return None,
        })
    }

    /// The mail of a horizon that failed.
    fn failed(o: &Outcome, h: Horizon, run_id: &str) -> Option<(MailEvent, Email)> {
        let Effect::Failed { message, .. } = &o.effect else {
            return None;
        };
        Some((
            MailEvent::Failed,
            mail(
                format!("[model-optimizer] {h} failed"),
                format!(
                    "The optimization of {h} failed (run {run_id}):\n{message}\nThe deployed config was not changed.\n"
                ),
                Vec::new(),
            ),
        ))
    }
}

/// Parameters as history records them.
pub fn params(p: &InferenceParams) -> RecordParams {
    RecordParams::of(p)
}

fn metrics(m: &crate::policy::backtest::Metrics) -> RecordMetrics {
    RecordMetrics {
        rmse: Some(m.rmse),
        mape: Some(m.mape),
        mae: Some(m.mae),
        bias: Some(m.bias),
        coverage_95: Some(m.coverage_95),
    }
}

/// One horizon's line in the run summary: the outcome's derived values and where its effects
/// went.
#[derive(Debug, Serialize)]
pub struct HorizonResult {
    pub horizon: Horizon,
    /// The history action (what a dry run would record).
    pub action: Action,
    /// What carrying the decision out did: `dry_run` for a dry run.
    pub effect: EffectKind,
    pub exit_code: ExitCode,
    pub message: String,
    /// `approved`, `rejected: ` with every failing criterion, or `kept: ` when the search
    /// chose the current config; None without a search.
    pub verdict: Option<String>,
    pub approved: Option<bool>,
    /// Each failing criterion with its value, threshold and direction.
    pub failing_criteria: Vec<String>,
    pub current: Option<InferenceParams>,
    pub candidate: Option<InferenceParams>,
    pub triggers: Option<TriggerReport>,
    pub probation: Option<ProbationCheck>,
    pub search: Option<SearchReport>,
    pub validation: Option<ValidationReport>,
    pub deploy: Option<DeployOutcome>,
    pub plot: Option<String>,
    pub mail_error: Option<String>,
    /// The health of the config in effect (None when it could not be judged).
    pub health: Option<Health>,
    /// Why the config in effect needs attention; None when healthy or not judged.
    pub attention: Option<String>,
    /// Whether this run entered or left attention (see [`crate::policy::health`]).
    pub attention_change: Option<AttentionChange>,
}

/// The action as a person reads it: a dry run's change says "would".
pub fn action_label(action: Action, effect: EffectKind) -> &'static str {
    match (action, effect) {
        (Action::Deployed, EffectKind::DryRun) => "would deploy",
        (Action::RolledBack, EffectKind::DryRun) => "would roll back",
        (Action::TrialStarted, EffectKind::DryRun) => "would start trial",
        (a, _) => a.as_str(),
    }
}

/// Where a horizon's result went besides the outcome (the picture), and the attention state
/// it is judged against. The run's one mail goes out after the last horizon: its failure is
/// set on the results then.
#[derive(Debug, Default)]
pub struct Delivered {
    pub plot: Option<String>,
    /// The horizon's attention state before this run (None: never judged).
    pub attention_before: Option<health::AttentionState>,
}

impl HorizonResult {
    pub fn action_label(&self) -> &'static str {
        action_label(self.action, self.effect)
    }

    /// The verdict in a few words, for a table cell: `approved`, `fails: <criteria>`, `best
    /// of N` for a kept config, `-` without a search (the full verdict is the message).
    pub fn short_verdict(&self) -> String {
        if let Some(v) = &self.validation {
            if v.approved {
                return "approved".into();
            }
            let names: Vec<&str> = v.criteria.iter().filter(|c| !c.passed).map(|c| c.name).collect();
            return format!("fails: {}", names.join(", "));
        }
        match (&self.search, self.action) {
            (Some(s), Action::Kept) => format!("best of {}", s.configs.len()),
            (_, Action::Failed) => "failed".into(),
            _ => "-".into(),
        }
    }

    /// `ok`, `attention` or `-` (not judged).
    pub fn health_label(&self) -> &'static str {
        self.health.as_ref().map_or("-", Health::label)
    }

    pub fn new(
        h: Horizon,
        current: Option<InferenceParams>,
        outcome: &Outcome,
        fail_on_reject: bool,
        delivered: Delivered,
    ) -> HorizonResult {
        let v = outcome.validation();
        HorizonResult {
            horizon: h,
            action: outcome.action(),
            effect: outcome.effect.kind(),
            exit_code: outcome.exit_code(fail_on_reject),
            message: outcome.message(),
            verdict: outcome.verdict(),
            approved: v.map(|v| v.approved),
            failing_criteria: v.map(render::failing).unwrap_or_default(),
            current,
            candidate: v.map(|v| v.candidate.params),
            triggers: outcome.triggers().cloned(),
            probation: outcome.probation().cloned(),
            search: outcome.search().cloned(),
            validation: v.cloned(),
            deploy: outcome.deploy().cloned(),
            plot: delivered.plot,
            mail_error: None,
            health: outcome.health.clone(),
            attention: outcome.attention(),
            attention_change: health::attention_change(delivered.attention_before, outcome.health.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::forecaster_config::ForecasterConfig;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn decision(settings: &Settings) -> (Decision, ForecasterConfig) {
        crate::policy::decide::fixture::forced_decision(settings)
    }

    fn loose() -> Settings {
        crate::policy::decide::fixture::loose()
    }

    fn strict() -> Settings {
        let mut s = loose();
        s.validation.min_rmse_improvement_pct = 1000.0;
        s.validation.min_mape_improvement_pct = 1000.0;
        s
    }

    fn rc() -> RecordContext<'static> {
        RecordContext {
            run_id: "run-1",
            time: at("2026-01-04T05:00:00Z"),
            old: RecordParams::default(),
            duration_seconds: 1.5,
        }
    }

    fn applied(d: Decision, effect: Effect) -> Outcome {
        Outcome {
            decision: Some(d),
            effect,
            health: None,
        }
    }

    fn deploy_outcome(status: DeployStatus) -> DeployOutcome {
        DeployOutcome {
            status,
            config: "configs/chronos_7d.json".into(),
            backup: None,
            git: GitRecord::Unchanged,
            revert_commit: None,
            pruned: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_rejection_is_a_completed_decision_with_its_verdict_everywhere() {
        let (d, _) = decision(&strict());
        let o = applied(d, Effect::Unchanged);
        assert_eq!(o.action(), Action::Rejected);
        assert_eq!(o.exit_code(false), ExitCode::Success);
        assert_eq!(o.exit_code(true), ExitCode::Rejected);
        let v = o.validation().unwrap();
        let verdict = render::verdict(v);
        assert!(verdict.starts_with("rejected: RMSE improvement "), "{verdict}");
        assert!(
            verdict.contains("(needs >= 1000 %) and MAPE improvement"),
            "{verdict}"
        );
        let r = o.record(Horizon(7), &rc()).unwrap();
        assert_eq!(
            (r.action, r.success, r.horizon.label().as_str()),
            (Action::Rejected, true, "7d")
        );
        assert_eq!(
            TriggerKind::join(&r.triggered_by),
            "time,force",
            "never optimized: the time trigger fires too"
        );
        assert_eq!(
            r.new.context_length,
            Some(v.candidate.params.context_length as i64)
        );
        assert_eq!(r.candidate.rmse, Some(v.candidate.metrics.rmse));
        assert_eq!(r.current.rmse, Some(v.current.metrics.rmse));
        assert!(r.message.contains(&verdict), "{}", r.message);
        assert_eq!(r.message, o.message(), "the row's message is the outcome's");
        let mails = o.mails(Horizon(7), "run-1", None);
        let events: Vec<MailEvent> = mails.iter().map(|(e, _)| *e).collect();
        // Scheduled (never optimized) and forced: no alarm, so no `triggered` mail.
        assert_eq!(events, [MailEvent::Rejected]);
        assert!(mails[0]
            .1
            .subject
            .starts_with("[model-optimizer] 7d rejected: RMSE "));
        assert!(mails[0].1.subject.contains(&verdict));
        // The same rejection after a drift alarm mails the alarm first.
        let Some(Decision::Rejected(mut e)) = o.decision.clone() else {
            panic!("a rejection")
        };
        e.triggers.alarms = vec![TriggerKind::Drift];
        e.triggers.severity = crate::domain::Severity::High;
        let mails = applied(Decision::Rejected(e), Effect::Unchanged).mails(Horizon(7), "run-1", None);
        let events: Vec<MailEvent> = mails.iter().map(|(e, _)| *e).collect();
        assert_eq!(events, [MailEvent::Triggered, MailEvent::Rejected]);
        assert_eq!(mails[0].1.subject, "[model-optimizer] 7d alarm (HIGH): drift");
        let row = HorizonResult::new(Horizon(7), None, &o, false, Delivered::default());
        assert_eq!((row.action, row.exit_code), (Action::Rejected, ExitCode::Success));
        assert_eq!(row.verdict.as_deref(), Some(verdict.as_str()));
        assert_eq!(row.failing_criteria.len(), 1, "{:?}", row.failing_criteria);
    }

    #[test]
    fn an_approval_starts_a_trial_that_changes_nothing_but_history() {
        let (d, cfg) = decision(&loose()); // trials on by default
        let Decision::TrialStarted(e) = d else {
            panic!("loose criteria approve, and an approval is tried first")
        };
        let o = applied(Decision::TrialStarted(e.clone()), Effect::Unchanged);
        assert_eq!(o.action(), Action::TrialStarted);
        assert_eq!(o.exit_code(true), ExitCode::Success);
        assert!(o.message().contains("on trial"), "{}", o.message());
        let mut rc = rc();
        rc.old = params(&cfg.params());
        let row = o.record(Horizon(7), &rc).unwrap();
        // The row names the candidate on trial (`new`) and the config it is tried against (`old`).
        assert_eq!(row.new.params(), Some(e.validation.candidate.params));
        assert_eq!(row.old.params(), Some(cfg.params()));
        assert_eq!(row.candidate.rmse, Some(e.validation.candidate.metrics.rmse));
        assert!(
            owed(o.decision.as_ref().unwrap(), Horizon(7), &rc).is_none(),
            "nothing to journal"
        );
        let mails = o.mails(Horizon(7), "r", None);
        let events: Vec<MailEvent> = mails.iter().map(|(e, _)| *e).collect();
        assert_eq!(events, [MailEvent::Trial], "no alarm: the trial's section alone");
        assert!(
            mails[0]
                .1
                .subject
                .starts_with("[model-optimizer] 7d trial started: "),
            "{}",
            mails[0].1.subject
        );
        // A dry run only says it would start one: no row, no mail.
        let would = Outcome::dry_run(Decision::TrialStarted(e));
        assert_eq!(would.action(), Action::TrialStarted);
        assert_eq!(
            action_label(would.action(), would.effect.kind()),
            "would start trial"
        );
        assert!(
            would.message().starts_with("would start a live trial of "),
            "{}",
            would.message()
        );
        assert!(would.record(Horizon(7), &rc).is_none());
        assert!(would.mails(Horizon(7), "r", None).is_empty());
    }

    #[test]
    fn an_approval_deploys_the_confirmed_figures_or_is_only_reported_in_a_dry_run() {
        let mut settings = loose();
        settings.deploy.trial_min_origins = 0;
        let (d, cfg) = decision(&settings);
        let Decision::Approved(a) = d else {
            panic!("loose criteria approve, and without trials an approval deploys")
        };
        let v = &a.evidence.validation;
        assert!(
            v.candidate.params.context_length < cfg.context_length,
            "a shorter context wins"
        );
        assert_eq!(a.new_config.model, "context-mean");
        assert_eq!(a.new_config.validation_rmse, Some(v.candidate.metrics.rmse));
        assert_eq!(a.new_config.params(), v.candidate.params);
        assert_eq!(a.new_config.search_iterations, Some(27));

        // A dry run: reported, never recorded or mailed.
        let dry = Outcome::dry_run(Decision::Approved(a.clone()));
        assert_eq!(
            (dry.action(), dry.exit_code(true)),
            (Action::Deployed, ExitCode::Success)
        );
        assert_eq!(action_label(dry.action(), dry.effect.kind()), "would deploy");
        assert!(dry.record(Horizon(7), &rc()).is_none());
        assert!(dry.mails(Horizon(7), "run-1", None).is_empty());
        assert!(
            dry.message().starts_with("would deploy context="),
            "{}",
            dry.message()
        );

        let done = applied(
            Decision::Approved(a.clone()),
            Effect::Deployed(deploy_outcome(DeployStatus::Deployed)),
        );
        assert_eq!(
            (done.action(), done.exit_code(true)),
            (Action::Deployed, ExitCode::Success)
        );
        let r = done.record(Horizon(7), &rc()).unwrap();
        assert_eq!((r.action, r.success), (Action::Deployed, true));
        assert!(
            r.message.contains("git: HEAD already had these bytes"),
            "{}",
            r.message
        );
        let pic = Attachment {
            filename: "7d.png".into(),
            content_type: "image/png".into(),
            bytes: vec![1, 2, 3],
        };
        let mails = done.mails(Horizon(7), "run-1", Some(&pic));
        // Scheduled and forced, no alarm: the deploy mail alone.
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].0, MailEvent::Deployed);
        assert!(mails[0]
            .1
            .subject
            .starts_with("[model-optimizer] 7d deployed: RMSE "));
        assert_eq!(mails[0].1.attachments, vec![pic]);

        let undone = applied(
            Decision::Approved(a.clone()),
            Effect::DeployFailed(deploy_outcome(DeployStatus::RolledBack {
                reason: "smoke check failed".into(),
            })),
        );
        assert_eq!(undone.exit_code(false), ExitCode::DeployFailed);
        let r = undone.record(Horizon(7), &rc()).unwrap();
        assert_eq!((r.action, r.success), (Action::Failed, false));
        assert!(r
            .message
            .contains("failed and was rolled back: smoke check failed"));
        let mails = undone.mails(Horizon(7), "run-1", None);
        assert_eq!(mails[0].0, MailEvent::Failed);
        assert!(mails[0].1.subject.ends_with("deploy failed and rolled back"));

        let stuck = applied(
            Decision::Approved(a),
            Effect::DeployFailed(deploy_outcome(DeployStatus::RollbackFailed {
                reason: "r".into(),
                rollback_error: "e".into(),
            })),
        );
        assert_eq!(stuck.exit_code(false), ExitCode::Runtime);
        assert!(stuck.mails(Horizon(7), "run-1", None)[0]
            .1
            .subject
            .ends_with("config needs attention"));
    }

    #[test]
    fn failures_and_probation_rollbacks_map_to_their_own_rows() {
        let err = crate::exit::invalid("data/predictions.parquet: not parquet");
        let f = Outcome::failed(&err);
        assert_eq!(
            (f.action(), f.exit_code(false)),
            (Action::Failed, ExitCode::Invalid)
        );
        let r = f.record(Horizon(15), &rc()).unwrap();
        assert_eq!(
            (r.action, r.success, r.horizon.label().as_str()),
            (Action::Failed, false, "15d")
        );
        assert_eq!(r.message, "data/predictions.parquet: not parquet");
        let mails = f.mails(Horizon(15), "run-1", None);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].0, MailEvent::Failed);
        assert_eq!(mails[0].1.subject, "[model-optimizer] 15d failed");

        let check = crate::policy::decide::fixture::broken_promise();
        let would = Outcome::dry_run(Decision::ProbationRollback { check: check.clone() });
        assert_eq!(would.action(), Action::RolledBack);
        assert_eq!(
            action_label(would.action(), would.effect.kind()),
            "would roll back"
        );
        assert!(would.record(Horizon(7), &rc()).is_none());
        let restored = InferenceParams {
            context_length: 180,
            num_samples: 100,
            temperature: 1.0,
        };
        let done = applied(
            Decision::ProbationRollback { check },
            Effect::RolledBack(RollbackDone {
                label: "20251220_020000".into(),
                restored,
                git: GitRecord::Off,
            }),
        );
        assert_eq!(
            (done.action(), done.exit_code(true)),
            (Action::RolledBack, ExitCode::Success)
        );
        let r = done.record(Horizon(7), &rc()).unwrap();
        assert_eq!(r.triggered_by, [TriggerKind::Probation]);
        assert_eq!((r.candidate.rmse, r.current.rmse), (Some(20.0), Some(10.0)));
        assert_eq!(r.new, params(&restored));
        let mails = done.mails(Horizon(7), "run-1", None);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].0, MailEvent::RolledBack);
    }
}

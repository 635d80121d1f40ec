//! What happened to one horizon in a run, as one typed value, and everything derived from it:
//! the history action and record, the exit code, the summary message, the mails and the result
//! row. Each is derived here, in one place; `run` only applies effects and collects outcomes.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::decide::{Approved, Decision, Evidence};
use crate::deploy::{DeployOutcome, DeployStatus, GitRecord};
use crate::domain::{Horizon, InferenceParams, MailEvent, TriggerKind};
use crate::exit::ExitCode;
use crate::history::{Action, HistoryRecord, RecordMetrics, RecordParams};
use crate::notify::{Attachment, Email};
use crate::probation::ProbationCheck;
use crate::render;
use crate::search::SearchReport;
use crate::triggers::TriggerReport;
use crate::validate::ValidationReport;

/// A probation rollback that was carried out.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackDone {
    /// The backup restored.
    pub label: String,
    pub restored: InferenceParams,
    pub git: GitRecord,
}

/// What happened to one horizon.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    NoTrigger {
        triggers: TriggerReport,
        probation: Option<ProbationCheck>,
    },
    Suppressed {
        triggers: TriggerReport,
        probation: Option<ProbationCheck>,
    },
    /// A deploy that broke its promise; `done` is None in a dry run.
    ProbationRollback {
        check: ProbationCheck,
        done: Option<RollbackDone>,
    },
    Rejected(Box<Evidence>),
    /// Approved but not deployed: a dry run.
    Approved(Box<Approved>),
    Deployed {
        approved: Box<Approved>,
        deploy: DeployOutcome,
    },
    /// The deploy failed; the outcome says whether the old config was restored.
    DeployFailed {
        approved: Box<Approved>,
        deploy: DeployOutcome,
    },
    /// An error stopped this horizon; the deployed config was not changed by it.
    Failed {
        message: String,
        code: ExitCode,
    },
}

impl From<Decision> for Outcome {
    /// The outcome of a decision that is not applied (a dry run, or nothing to apply).
    fn from(d: Decision) -> Outcome {
        match d {
            Decision::NoTrigger { triggers, probation } => Outcome::NoTrigger { triggers, probation },
            Decision::Suppressed { triggers, probation } => Outcome::Suppressed { triggers, probation },
            Decision::ProbationRollback { check } => Outcome::ProbationRollback { check, done: None },
            Decision::Rejected(e) => Outcome::Rejected(e),
            Decision::Approved(a) => Outcome::Approved(a),
        }
    }
}

/// The run-level facts a history record carries besides the outcome.
#[derive(Clone, Debug)]
pub struct RecordContext<'a> {
    pub run_id: &'a str,
    pub time: DateTime<Utc>,
    /// The parameters in effect before this run (default when the config was unreadable).
    pub old: RecordParams,
    pub duration_seconds: f64,
    /// Why a mail of this outcome was not sent, if it was not.
    pub mail_error: Option<&'a str>,
}

impl Outcome {
    pub fn failed(err: &anyhow::Error) -> Outcome {
        Outcome::Failed {
            message: format!("{err:#}"),
            code: crate::exit::code_of(err),
        }
    }

    /// The history action (dry-run outcomes have their own).
    pub fn action(&self) -> Action {
        match self {
            Outcome::NoTrigger { .. } => Action::NoTrigger,
            Outcome::Suppressed { .. } => Action::Suppressed,
            Outcome::ProbationRollback { done: None, .. } => Action::WouldRollBack,
            Outcome::ProbationRollback { done: Some(_), .. } => Action::RolledBack,
            Outcome::Rejected(_) => Action::Rejected,
            Outcome::Approved(_) => Action::WouldDeploy,
            Outcome::Deployed { .. } => Action::Deployed,
            Outcome::DeployFailed { .. } | Outcome::Failed { .. } => Action::Failed,
        }
    }

    /// The exit code this outcome contributes. A rejection is a completed decision (0) unless
    /// the caller asked rejections to fail the run.
    pub fn exit_code(&self, fail_on_reject: bool) -> ExitCode {
        match self {
            Outcome::Rejected(_) if fail_on_reject => ExitCode::Rejected,
            Outcome::DeployFailed { deploy, .. } => deploy.exit_code(),
            Outcome::Failed { code, .. } => *code,
            _ => ExitCode::Success,
        }
    }

    fn evidence(&self) -> Option<&Evidence> {
        match self {
            Outcome::Rejected(e) => Some(e),
            Outcome::Approved(a)
            | Outcome::Deployed { approved: a, .. }
            | Outcome::DeployFailed { approved: a, .. } => Some(&a.evidence),
            _ => None,
        }
    }

    pub fn triggers(&self) -> Option<&TriggerReport> {
        match self {
            Outcome::NoTrigger { triggers, .. } | Outcome::Suppressed { triggers, .. } => Some(triggers),
            _ => self.evidence().map(|e| &e.triggers),
        }
    }

    pub fn probation(&self) -> Option<&ProbationCheck> {
        match self {
            Outcome::NoTrigger { probation, .. } | Outcome::Suppressed { probation, .. } => {
                probation.as_ref()
            }
            Outcome::ProbationRollback { check, .. } => Some(check),
            _ => self.evidence().and_then(|e| e.probation.as_ref()),
        }
    }

    pub fn validation(&self) -> Option<&ValidationReport> {
        self.evidence().map(|e| &e.validation)
    }

    pub fn search(&self) -> Option<&SearchReport> {
        self.evidence().and_then(|e| e.search.as_ref())
    }

    pub fn deploy(&self) -> Option<&DeployOutcome> {
        match self {
            Outcome::Deployed { deploy, .. } | Outcome::DeployFailed { deploy, .. } => Some(deploy),
            _ => None,
        }
    }

    /// `RMSE 12.345 -> 11.234 CLP (-9.0 %)`: current against candidate on the validation origins.
    fn figures(v: &ValidationReport) -> String {
        let (cur, cand) = (v.current.metrics.rmse, v.candidate.metrics.rmse);
        format!(
            "RMSE {cur:.3} -> {cand:.3} CLP ({:+.1} %)",
            crate::validate::relative_change_pct(cand, cur)
        )
    }

    /// The one-line summary: the table's message, history's `message` (before a mail note).
    pub fn message(&self) -> String {
        match self {
            Outcome::NoTrigger { triggers, .. } | Outcome::Suppressed { triggers, .. } => {
                triggers.reasons.join("; ")
            }
            Outcome::ProbationRollback { check, done: None } => format!("{}; would roll back", check.note),
            Outcome::ProbationRollback { check, done: Some(d) } => {
                format!("{}; rolled back to {} ({})", check.note, d.label, d.restored)
            }
            Outcome::Rejected(e) => {
                let v = &e.validation;
                format!(
                    "{} {}; {}",
                    v.candidate.params,
                    render::verdict(v),
                    Self::figures(v)
                )
            }
            Outcome::Approved(a) => {
                let v = &a.evidence.validation;
                format!("would deploy {}: {}", v.candidate.params, Self::figures(v))
            }
            Outcome::Deployed { approved, deploy } => {
                let v = &approved.evidence.validation;
                format!(
                    "deployed {}: {}; git: {}",
                    v.candidate.params,
                    Self::figures(v),
                    render::git_summary(&deploy.git)
                )
            }
            Outcome::DeployFailed { approved, deploy } => {
                let cand = approved.evidence.validation.candidate.params;
                match &deploy.status {
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
            Outcome::Failed { message, .. } => message.clone(),
        }
    }

    /// The history row of this outcome. Dry-run outcomes have none.
    pub fn record(&self, h: Horizon, rc: &RecordContext<'_>) -> Option<HistoryRecord> {
        let action = self.action();
        if matches!(action, Action::WouldDeploy | Action::WouldRollBack) {
            return None;
        }
        let message = match rc.mail_error {
            Some(e) => format!("{}; mail failed: {e}", self.message()),
            None => self.message(),
        };
        let mut r = HistoryRecord {
            run_id: rc.run_id.to_string(),
            horizon: h.label(),
            optimization_date: rc.time,
            action,
            triggered_by: String::new(),
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
        };
        if let Some(t) = self.triggers() {
            r.triggered_by = t.triggered_by();
            r.performance_degradation_pct = t.performance_degradation_pct();
            r.drift_severity = t.drift_severity();
            r.days_since_last = t.days_since_last();
        }
        if let Some(v) = self.validation() {
            r.new = params(&v.candidate.params);
            r.candidate = metrics(&v.candidate.metrics);
            r.current = metrics(&v.current.metrics);
        }
        if let Outcome::ProbationRollback { check, done: Some(d) } = self {
            r.triggered_by = TriggerKind::Probation.as_str().into();
            r.new = params(&d.restored);
            r.candidate.rmse = check.live_rmse;
            r.current.rmse = Some(check.promised_rmse);
        }
        Some(r)
    }

    /// The mails of this outcome, in sending order, with the event that selects each. The
    /// picture, when there is one, is attached to the validation mails.
    pub fn mails(&self, h: Horizon, run_id: &str, picture: Option<&Attachment>) -> Vec<(MailEvent, Email)> {
        let mut out = Vec::new();
        if let Some(e) = self.evidence() {
            if !matches!(self, Outcome::Approved(_)) {
                out.push((
                    MailEvent::Triggered,
                    Email {
                        subject: format!(
                            "[model-optimizer] {h} optimization triggered: {}",
                            e.triggers.triggered_by()
                        ),
                        body: format!("{}\nrun {run_id}\n", e.triggers.reasons.join("; ")),
                        attachments: Vec::new(),
                    },
                ));
            }
        }
        let report = |e: &Evidence| {
            format!(
                "run {run_id}\n\ntriggers: {}\n\n{}\n{}",
                e.triggers.reasons.join("; "),
                render::render_validation(&e.validation),
                e.search.as_ref().map(render::render_search).unwrap_or_default()
            )
        };
        let attach = || picture.cloned().into_iter().collect::<Vec<_>>();
        let main = match self {
            Outcome::NoTrigger { .. }
            | Outcome::Suppressed { .. }
            | Outcome::Approved(_)
            | Outcome::ProbationRollback { done: None, .. } => None,
            Outcome::ProbationRollback { done: Some(d), .. } => Some((
                MailEvent::RolledBack,
                Email {
                    subject: format!("[model-optimizer] {h} rolled back after probation"),
                    body: format!(
                        "{}\ngit: {}\nrun {run_id}\n",
                        self.message(),
                        render::git_summary(&d.git)
                    ),
                    attachments: Vec::new(),
                },
            )),
            Outcome::Rejected(e) => Some((
                MailEvent::Rejected,
                Email {
                    subject: format!(
                        "[model-optimizer] {h} {}; {}",
                        render::verdict(&e.validation),
                        Self::figures(&e.validation)
                    ),
                    body: format!("{}\n\n{}", self.message(), report(e)),
                    attachments: attach(),
                },
            )),
            Outcome::Deployed { approved, .. } => Some((
                MailEvent::Deployed,
                Email {
                    subject: format!(
                        "[model-optimizer] {h} deployed: {}",
                        Self::figures(&approved.evidence.validation)
                    ),
                    body: format!("{}\n\n{}", self.message(), report(&approved.evidence)),
                    attachments: attach(),
                },
            )),
            Outcome::DeployFailed { approved, deploy } => Some((
                MailEvent::Failed,
                Email {
                    subject: match deploy.status {
                        DeployStatus::RollbackFailed { .. } => {
                            format!("[model-optimizer] {h} deploy failed, config needs attention")
                        }
                        _ => format!("[model-optimizer] {h} deploy failed and rolled back"),
                    },
                    body: format!("{}\n\n{}", self.message(), report(&approved.evidence)),
                    attachments: attach(),
                },
            )),
            Outcome::Failed { message, .. } => Some((
                MailEvent::Failed,
                Email {
                    subject: format!("[model-optimizer] {h} failed"),
                    body: format!(
                        "The optimization of {h} failed (run {run_id}):\n{message}\nThe deployed config was not changed.\n"
                    ),
                    attachments: Vec::new(),
                },
            )),
        };
        out.extend(main);
        out
    }
}

/// Parameters as history records them.
pub fn params(p: &InferenceParams) -> RecordParams {
    RecordParams {
        context_length: Some(p.context_length as i64),
        num_samples: Some(p.num_samples as i64),
        temperature: Some(p.temperature),
    }
}

fn metrics(m: &crate::backtest::Metrics) -> RecordMetrics {
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
    pub action: Action,
    pub exit_code: ExitCode,
    pub message: String,
    /// `approved`, or `rejected: ` with every failing criterion; None without a validation.
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
}

impl HorizonResult {
    pub fn new(
        h: Horizon,
        current: Option<InferenceParams>,
        outcome: &Outcome,
        fail_on_reject: bool,
        plot: Option<String>,
        mail_error: Option<String>,
    ) -> HorizonResult {
        let v = outcome.validation();
        HorizonResult {
            horizon: h,
            action: outcome.action(),
            exit_code: outcome.exit_code(fail_on_reject),
            message: outcome.message(),
            verdict: v.map(render::verdict),
            approved: v.map(|v| v.approved),
            failing_criteria: v.map(render::failing).unwrap_or_default(),
            current,
            candidate: v.map(|v| v.candidate.params),
            triggers: outcome.triggers().cloned(),
            probation: outcome.probation().cloned(),
            search: outcome.search().cloned(),
            validation: v.cloned(),
            deploy: outcome.deploy().cloned(),
            plot,
            mail_error,
        }
    }
}

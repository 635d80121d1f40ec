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
use crate::trial::TrialCheck;
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
    /// Approved; the live trial begins and the config stays.
    TrialStarted(Box<Evidence>),
    /// Approved; a trial would begin: a dry run.
    WouldStartTrial(Box<Evidence>),
    /// A trial too young to judge.
    OnTrial {
        check: TrialCheck,
    },
    /// The candidate lost its trial; the config stays.
    TrialFailed {
        check: TrialCheck,
    },
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
            Decision::TrialStarted(e) => Outcome::WouldStartTrial(e),
            Decision::OnTrial { check } => Outcome::OnTrial { check },
            Decision::TrialFailed { check } => Outcome::TrialFailed { check },
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
            Outcome::TrialStarted(_) => Action::TrialStarted,
            Outcome::WouldStartTrial(_) => Action::WouldStartTrial,
            Outcome::OnTrial { .. } => Action::OnTrial,
            Outcome::TrialFailed { .. } => Action::TrialFailed,
            Outcome::Approved(_) => Action::WouldDeploy,
            Outcome::Deployed { .. } => Action::Deployed,
            Outcome::DeployFailed { .. } | Outcome::Failed { .. } => Action::Failed,
        }
    }

    /// The exit code this outcome contributes. A rejection (a lost trial too) is a completed
    /// decision (0) unless the caller asked rejections to fail the run.
    pub fn exit_code(&self, fail_on_reject: bool) -> ExitCode {
        match self {
            Outcome::Rejected(_) | Outcome::TrialFailed { .. } if fail_on_reject => ExitCode::Rejected,
            Outcome::DeployFailed { deploy, .. } => deploy.exit_code(),
            Outcome::Failed { code, .. } => *code,
            _ => ExitCode::Success,
        }
    }

    fn evidence(&self) -> Option<&Evidence> {
        match self {
            Outcome::Rejected(e) | Outcome::TrialStarted(e) | Outcome::WouldStartTrial(e) => Some(e),
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

    /// The trial this outcome looked at, if any.
    pub fn trial(&self) -> Option<&TrialCheck> {
        match self {
            Outcome::OnTrial { check } | Outcome::TrialFailed { check } => Some(check),
            _ => self.evidence().and_then(|e| e.trial.as_ref()),
        }
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
                let after = e
                    .trial
                    .as_ref()
                    .map(|t| format!("{}; validated again: ", t.note))
                    .unwrap_or_default();
                format!(
                    "{after}{} {}; {}",
                    v.candidate.params,
                    render::verdict(v),
                    Self::figures(v)
                )
            }
            Outcome::TrialStarted(e) => {
                let v = &e.validation;
                format!(
                    "approved {}: {}; on trial until it beats the current config live",
                    v.candidate.params,
                    Self::figures(v)
                )
            }
            Outcome::WouldStartTrial(e) => {
                let v = &e.validation;
                format!(
                    "would start a live trial of {}: {}",
                    v.candidate.params,
                    Self::figures(v)
                )
            }
            Outcome::OnTrial { check } | Outcome::TrialFailed { check } => check.note.clone(),
            Outcome::Approved(a) => {
                let v = &a.evidence.validation;
                format!("would deploy {}: {}", v.candidate.params, Self::figures(v))
            }
            Outcome::Deployed { approved, deploy } => {
                let v = &approved.evidence.validation;
                format!(
                    "{}deployed {}: {}; git: {}",
                    Self::after_trial(&approved.evidence),
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

    /// "trial ...: passed; " before a deploy that followed a trial.
    fn after_trial(e: &Evidence) -> String {
        e.trial
            .as_ref()
            .map(|t| format!("{}; ", t.note))
            .unwrap_or_default()
    }

    /// The history row of this outcome. Dry-run outcomes have none.
    pub fn record(&self, h: Horizon, rc: &RecordContext<'_>) -> Option<HistoryRecord> {
        if matches!(
            self.action(),
            Action::WouldDeploy | Action::WouldRollBack | Action::WouldStartTrial
        ) {
            return None;
        }
        Some(self.row_of(h, rc))
    }

    /// The row a deploy or rollback about to be carried out will owe history: kept in the
    /// deploy journal, so a crash after the commit still gets its row (marked recovered).
    pub fn owed(&self, h: Horizon, rc: &RecordContext<'_>) -> Option<HistoryRecord> {
        let mut r = self.row_of(h, rc);
        match self {
            Outcome::Approved(a) => {
                r.action = Action::Deployed;
                r.message = format!(
                    "{}deployed {}: {}",
                    Self::after_trial(&a.evidence),
                    a.evidence.validation.candidate.params,
                    Self::figures(&a.evidence.validation)
                );
            }
            Outcome::ProbationRollback { check, .. } => {
                r.action = Action::RolledBack;
                r.triggered_by = TriggerKind::Probation.as_str().into();
                r.message = format!("{}; rolled back", check.note);
                r.candidate.rmse = check.live_rmse;
                r.current.rmse = Some(check.promised_rmse);
            }
            _ => return None,
        }
        r.success = true;
        Some(r)
    }

    fn row_of(&self, h: Horizon, rc: &RecordContext<'_>) -> HistoryRecord {
        let action = self.action();
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
        if let Some(t) = self.trial() {
            if !matches!(self, Outcome::TrialStarted(_)) {
                r.triggered_by = TriggerKind::Trial.as_str().into();
            }
            if self.validation().is_none() {
                r.new = params(&t.candidate);
                r.candidate.rmse = t.candidate_rmse;
                r.current.rmse = t.current_rmse;
            }
        }
        if let Outcome::ProbationRollback { check, done: Some(d) } = self {
            r.triggered_by = TriggerKind::Probation.as_str().into();
            r.new = params(&d.restored);
            r.candidate.rmse = check.live_rmse;
            r.current.rmse = Some(check.promised_rmse);
        }
        r
    }

    /// The mails of this outcome, in sending order, with the event that selects each. The
    /// picture, when there is one, is attached to the validation mails.
    pub fn mails(&self, h: Horizon, run_id: &str, picture: Option<&Attachment>) -> Vec<(MailEvent, Email)> {
        let mut out = Vec::new();
        if let Some(e) = self.evidence() {
            // Only an alarm mails as `triggered`; a scheduled check is not one.
            let alarm = !e.triggers.alarms.is_empty();
            if alarm && !matches!(self, Outcome::Approved(_) | Outcome::WouldStartTrial(_)) {
                out.push((
                    MailEvent::Triggered,
                    Email {
                        subject: format!(
                            "[model-optimizer] {h} alarm ({}): {}",
                            e.triggers.severity,
                            TriggerKind::join(&e.triggers.alarms)
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
            | Outcome::TrialStarted(_)
            | Outcome::WouldStartTrial(_)
            | Outcome::OnTrial { .. }
            | Outcome::ProbationRollback { done: None, .. } => None,
            Outcome::TrialFailed { check } => Some((
                MailEvent::Rejected,
                Email {
                    subject: format!("[model-optimizer] {h} trial failed: {}", check.candidate),
                    body: format!(
                        "{}\nThe deployed config was not changed.\nrun {run_id}\n",
                        self.message()
                    ),
                    attachments: Vec::new(),
                },
            )),
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
    RecordParams::of(p)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::decide::{self, World};
    use crate::forecast::{QuantileForecast, QuantileModel, LEVELS};
    use crate::forecaster_config::ForecasterConfig;
    use crate::search::ForwardCache;
    use crate::series::Series;

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

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn series() -> Series {
        crate::data::demo::synthetic_usdclp(7, 700, crate::data::demo::DEFAULT_START)
    }

    /// The decision on 7d for a current config at context 270, forced.
    fn decision(settings: &Settings) -> (Decision, ForecasterConfig) {
        let s = series();
        let now = at("2026-01-04T05:00:00Z");
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
            dims: Some(crate::backtest::ModelDims {
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
        let d = decide::decide(&world, &cfg, true, &mut ForwardCache::new(), &mut |_| {}).unwrap();
        (d, cfg)
    }

    fn loose() -> Settings {
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

    fn strict() -> Settings {
        let mut s = loose();
        s.validation.min_rmse_improvement_pct = 1000.0;
        s.validation.min_mape_improvement_pct = 1000.0;
        s
    }

    fn rc(mail_error: Option<&str>) -> RecordContext<'_> {
        RecordContext {
            run_id: "run-1",
            time: at("2026-01-04T05:00:00Z"),
            old: RecordParams::default(),
            duration_seconds: 1.5,
            mail_error,
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
        let o = Outcome::from(d);
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
        let r = o.record(Horizon(7), &rc(Some("smtp down"))).unwrap();
        assert_eq!(
            (r.action, r.success, r.horizon.as_str()),
            (Action::Rejected, true, "7d")
        );
        assert_eq!(
            r.triggered_by, "time,force",
            "never optimized: the time trigger fires too"
        );
        assert_eq!(
            r.new.context_length,
            Some(v.candidate.params.context_length as i64)
        );
        assert_eq!(r.candidate.rmse, Some(v.candidate.metrics.rmse));
        assert_eq!(r.current.rmse, Some(v.current.metrics.rmse));
        assert!(r.message.contains(&verdict) && r.message.ends_with("; mail failed: smtp down"));
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
        let Outcome::Rejected(mut e) = o.clone() else {
            panic!("a rejection")
        };
        e.triggers.alarms = vec![TriggerKind::Drift];
        e.triggers.severity = crate::domain::Severity::High;
        let mails = Outcome::Rejected(e).mails(Horizon(7), "run-1", None);
        let events: Vec<MailEvent> = mails.iter().map(|(e, _)| *e).collect();
        assert_eq!(events, [MailEvent::Triggered, MailEvent::Rejected]);
        assert_eq!(mails[0].1.subject, "[model-optimizer] 7d alarm (HIGH): drift");
        let row = HorizonResult::new(Horizon(7), None, &o, false, None, None);
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
        let o = Outcome::TrialStarted(e.clone());
        assert_eq!(o.action(), Action::TrialStarted);
        assert_eq!(o.exit_code(true), ExitCode::Success);
        assert!(o.message().contains("on trial"), "{}", o.message());
        let mut rc = rc(None);
        rc.old = params(&cfg.params());
        let row = o.record(Horizon(7), &rc).unwrap();
        // The row names the candidate on trial (`new`) and the config it is tried against (`old`).
        assert_eq!(row.new.params(), Some(e.validation.candidate.params));
        assert_eq!(row.old.params(), Some(cfg.params()));
        assert_eq!(row.candidate.rmse, Some(e.validation.candidate.metrics.rmse));
        assert!(o.owed(Horizon(7), &rc).is_none(), "nothing to journal");
        let events: Vec<MailEvent> = o.mails(Horizon(7), "r", None).iter().map(|(e, _)| *e).collect();
        assert!(events.is_empty(), "no alarm, nothing to mail: {events:?}");
        // A dry run only says it would start one: no row, no mail.
        let would = Outcome::from(Decision::TrialStarted(e));
        assert_eq!(would.action(), Action::WouldStartTrial);
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
        let dry = Outcome::Approved(a.clone());
        assert_eq!(
            (dry.action(), dry.exit_code(true)),
            (Action::WouldDeploy, ExitCode::Success)
        );
        assert!(dry.record(Horizon(7), &rc(None)).is_none());
        assert!(dry.mails(Horizon(7), "run-1", None).is_empty());
        assert!(
            dry.message().starts_with("would deploy context="),
            "{}",
            dry.message()
        );

        let done = Outcome::Deployed {
            approved: a.clone(),
            deploy: deploy_outcome(DeployStatus::Deployed),
        };
        assert_eq!(
            (done.action(), done.exit_code(true)),
            (Action::Deployed, ExitCode::Success)
        );
        let r = done.record(Horizon(7), &rc(None)).unwrap();
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

        let undone = Outcome::DeployFailed {
            approved: a.clone(),
            deploy: deploy_outcome(DeployStatus::RolledBack {
                reason: "smoke check failed".into(),
            }),
        };
        assert_eq!(undone.exit_code(false), ExitCode::DeployFailed);
        let r = undone.record(Horizon(7), &rc(None)).unwrap();
        assert_eq!((r.action, r.success), (Action::Failed, false));
        assert!(r
            .message
            .contains("failed and was rolled back: smoke check failed"));
        let mails = undone.mails(Horizon(7), "run-1", None);
        assert_eq!(mails[0].0, MailEvent::Failed);
        assert!(mails[0].1.subject.ends_with("deploy failed and rolled back"));

        let stuck = Outcome::DeployFailed {
            approved: a,
            deploy: deploy_outcome(DeployStatus::RollbackFailed {
                reason: "r".into(),
                rollback_error: "e".into(),
            }),
        };
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
        let r = f.record(Horizon(15), &rc(None)).unwrap();
        assert_eq!(
            (r.action, r.success, r.horizon.as_str()),
            (Action::Failed, false, "15d")
        );
        assert_eq!(r.message, "data/predictions.parquet: not parquet");
        let mails = f.mails(Horizon(15), "run-1", None);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].0, MailEvent::Failed);
        assert_eq!(mails[0].1.subject, "[model-optimizer] 15d failed");

        let check = ProbationCheck {
            deployed_at: at("2025-12-20T02:00:00Z"),
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
        };
        let would = Outcome::ProbationRollback {
            check: check.clone(),
            done: None,
        };
        assert_eq!(would.action(), Action::WouldRollBack);
        assert!(would.record(Horizon(7), &rc(None)).is_none());
        let restored = InferenceParams {
            context_length: 180,
            num_samples: 100,
            temperature: 1.0,
        };
        let done = Outcome::ProbationRollback {
            check,
            done: Some(RollbackDone {
                label: "20251220_020000".into(),
                restored,
                git: GitRecord::Off,
            }),
        };
        assert_eq!(
            (done.action(), done.exit_code(true)),
            (Action::RolledBack, ExitCode::Success)
        );
        let r = done.record(Horizon(7), &rc(None)).unwrap();
        assert_eq!(r.triggered_by, "probation");
        assert_eq!((r.candidate.rmse, r.current.rmse), (Some(20.0), Some(10.0)));
        assert_eq!(r.new, params(&restored));
        let mails = done.mails(Horizon(7), "run-1", None);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].0, MailEvent::RolledBack);
    }
}

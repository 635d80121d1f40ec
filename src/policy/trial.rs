//! The live trial of an approved candidate, before it is deployed. Validation judges a
//! candidate on the confirmation origins, which lie just before the run; the market of the
//! next weeks is the first data nobody chose or judged anything on. So an approved candidate
//! is not deployed at once: the run records `trial_started` and the config stays. Later runs
//! score the candidate and the current config on the origins made since the approval whose
//! step-h targets are observed (RMSE over steps 1..h, as validation scores), and once there
//! are `deploy.trial_min_origins` of them:
//! - the candidate's RMSE below the current config's by at least
//!   `deploy.trial_min_improvement_pct`: it passes, and is validated again and deployed;
//! - otherwise it fails (`trial_failed`) and the config stays.
//!
//! A trial not judged within `deploy.trial_days` fails. A deploy that broke its promise costs
//! the forecasts it made until probation caught it; a trial costs only the weeks it waits.
//! Pure: the caller supplies the live RMSEs (hindcasts of both configs).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::DeploySettings;
use crate::domain::{Horizon, InferenceParams};
use crate::forecaster_config::ForecasterConfig;
use crate::history::{self, Action, HistoryRecord};

/// A trial under way: when it began and the candidate on trial.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pending {
    pub started_at: DateTime<Utc>,
    pub candidate: InferenceParams,
}

/// How a trial stands after a run's look at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialVerdict {
    /// Too few live origins yet.
    Waiting,
    /// The candidate beat the current config on the live origins.
    Passed,
    /// It did not, or the trial ran out of time.
    Failed,
}

/// One look at a trial.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrialCheck {
    pub started_at: DateTime<Utc>,
    pub candidate: InferenceParams,
    pub current: InferenceParams,
    /// Origins since the approval with their step-h targets observed, and the number needed.
    pub origins: usize,
    pub min_origins: usize,
    pub candidate_rmse: Option<f64>,
    pub current_rmse: Option<f64>,
    /// `100 (1 - candidate / current)`: positive when the candidate did better.
    pub improvement_pct: Option<f64>,
    pub min_improvement_pct: f64,
    pub verdict: TrialVerdict,
    pub note: String,
}

/// The trial `cfg`'s horizon is in, if any: the newest row of `h` at or before `now` that
/// starts, ends or overrides a trial (a trial start or failure, a deploy, a rollback) starts
/// one, and the config is still the one the trial started from (a change by hand ends it).
pub fn pending(
    history: &[HistoryRecord],
    h: Horizon,
    cfg: &ForecasterConfig,
    now: DateTime<Utc>,
) -> Option<Pending> {
    let ends = [
        Action::TrialStarted,
        Action::TrialFailed,
        Action::Deployed,
        Action::RolledBack,
    ];
    let last = history::last_of(history, h, now, &ends)?;
    if last.action != Action::TrialStarted || last.old.params() != Some(cfg.params()) {
        return None;
    }
    Some(Pending {
        started_at: last.optimization_date,
        candidate: last.new.params()?,
    })
}

/// Judges a trial from the live RMSEs of the candidate and the current config on `origins`
/// origins since its start (None when too few to compute). Fewer than `trial_min_origins`:
/// waiting, unless `trial_days` have passed since the start (failed).
pub fn judge(
    p: &Pending,
    current: InferenceParams,
    origins: usize,
    live: Option<(f64, f64)>,
    now: DateTime<Utc>,
    settings: &DeploySettings,
) -> TrialCheck {
    let min_improvement = settings.trial_min_improvement_pct;
    let mut check = TrialCheck {
        started_at: p.started_at,
        candidate: p.candidate,
        current,
        origins,
        min_origins: settings.trial_min_origins,
        candidate_rmse: None,
        current_rmse: None,
        improvement_pct: None,
        min_improvement_pct: min_improvement,
        verdict: TrialVerdict::Waiting,
        note: String::new(),
    };
    let started = p.started_at.date_naive();
    let days = history::days_since(p.started_at, now.date_naive());
    let (cand, cur) = match live {
        Some(rmses) if origins >= settings.trial_min_origins => rmses,
        _ if days > settings.trial_days => {
            check.verdict = TrialVerdict::Failed;
            check.note = format!(
                "trial of {} since {started}: only {origins} of {} live origins in {days} days (limit {}); ended",
                p.candidate, settings.trial_min_origins, settings.trial_days
            );
            return check;
        }
        _ => {
            check.note = format!(
                "trial of {} since {started}: {origins} of {} live origins; not judged yet",
                p.candidate, settings.trial_min_origins
            );
            return check;
        }
    };
    let improvement = crate::metrics::improvement_pct(cand, cur);
    check.candidate_rmse = Some(cand);
    check.current_rmse = Some(cur);
    check.improvement_pct = Some(improvement);
    let passed =
        cur > 0.0 && improvement >= min_improvement - crate::policy::validate::EDGE_TOLERANCE && cand < cur;
    check.verdict = if passed {
        TrialVerdict::Passed
    } else {
        TrialVerdict::Failed
    };
    check.note = format!(
        "trial of {} since {started}: live RMSE {cand:.3} vs current {current}'s {cur:.3} on {origins} origins ({improvement:+.1} %, needs > {min_improvement:.1} %): {}",
        p.candidate,
        if passed { "passed" } else { "failed" }
    );
    check
}

/// Origins made after the trial's start day whose step-`h` targets are observed: forecasts
/// nobody had seen when the candidate was approved.
pub fn origins(series: &crate::series::Series, h: Horizon, started_at: DateTime<Utc>) -> Vec<usize> {
    let day: NaiveDate = started_at.date_naive();
    crate::policy::probation::origins(series, h, started_at)
        .into_iter()
        .filter(|&i| series.dates[i] > day)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RecordMetrics;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn params(c: usize) -> InferenceParams {
        InferenceParams {
            context_length: c,
            num_samples: 100,
            temperature: 1.0,
        }
    }

    fn row(h: &str, when: &str, action: Action, old: usize, new: usize) -> HistoryRecord {
        HistoryRecord {
            run_id: "r".into(),
            horizon: h.parse().unwrap(),
            optimization_date: at(when),
            action,
            triggered_by: Vec::new(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: true,
            old: crate::history::RecordParams::of(&params(old)),
            new: crate::history::RecordParams::of(&params(new)),
            candidate: RecordMetrics::default(),
            current: RecordMetrics::default(),
            duration_seconds: 0.0,
            message: String::new(),
            attention: None,
        }
    }

    fn cfg(c: usize) -> ForecasterConfig {
        let mut cfg = ForecasterConfig::initial(Horizon(15), "m", at("2026-01-01T00:00:00Z"));
        cfg.context_length = c;
        cfg.num_samples = 100;
        cfg.temperature = 1.0;
        cfg
    }

    #[test]
    fn a_trial_is_pending_from_its_start_until_a_row_ends_it() {
        let now = at("2026-02-01T12:00:00Z");
        let started = row("15d", "2026-01-18T02:00:00Z", Action::TrialStarted, 180, 90);
        let mut rows = vec![started.clone()];
        // Runs on trial and other horizons' rows do not end it.
        rows.push(row("15d", "2026-01-25T02:00:00Z", Action::OnTrial, 180, 180));
        rows.push(row("7d", "2026-01-25T02:00:00Z", Action::TrialFailed, 180, 90));
        let p = pending(&rows, Horizon(15), &cfg(180), now).unwrap();
        assert_eq!(
            (p.started_at, p.candidate),
            (started.optimization_date, params(90))
        );
        // Not for another horizon, nor when the config changed since (by hand), nor before it.
        assert!(pending(&rows, Horizon(7), &cfg(180), now).is_none());
        assert!(pending(&rows, Horizon(15), &cfg(365), now).is_none());
        assert!(pending(&rows, Horizon(15), &cfg(180), at("2026-01-17T00:00:00Z")).is_none());
        // A failure, a deploy or a rollback after it ends it.
        for action in [Action::TrialFailed, Action::Deployed, Action::RolledBack] {
            let mut ended = rows.clone();
            ended.push(row("15d", "2026-01-30T02:00:00Z", action, 180, 90));
            assert!(
                pending(&ended, Horizon(15), &cfg(180), now).is_none(),
                "{action:?}"
            );
        }
    }

    #[test]
    fn a_trial_waits_for_its_origins_then_passes_only_below_the_current_rmse() {
        let s = DeploySettings::default(); // 5 origins, 42 days, any improvement
        let p = Pending {
            started_at: at("2026-01-18T02:00:00Z"),
            candidate: params(90),
        };
        let now = at("2026-02-08T12:00:00Z");
        let waiting = judge(&p, params(180), 4, Some((1.0, 2.0)), now, &s);
        assert_eq!(waiting.verdict, TrialVerdict::Waiting);
        assert!(waiting.candidate_rmse.is_none());
        assert!(waiting.note.contains("4 of 5"), "{}", waiting.note);
        let passed = judge(&p, params(180), 5, Some((9.0, 10.0)), now, &s);
        assert_eq!(passed.verdict, TrialVerdict::Passed, "{}", passed.note);
        assert!((passed.improvement_pct.unwrap() - 10.0).abs() < 1e-9);
        // Equal is not better; worse fails.
        assert_eq!(
            judge(&p, params(180), 5, Some((10.0, 10.0)), now, &s).verdict,
            TrialVerdict::Failed
        );
        let failed = judge(&p, params(180), 6, Some((10.5, 10.0)), now, &s);
        assert_eq!(failed.verdict, TrialVerdict::Failed);
        assert!(failed.note.contains("-5.0 %"), "{}", failed.note);
        // A stricter margin fails a 1 % gain.
        let strict = DeploySettings {
            trial_min_improvement_pct: 2.0,
            ..DeploySettings::default()
        };
        assert_eq!(
            judge(&p, params(180), 5, Some((9.9, 10.0)), now, &strict).verdict,
            TrialVerdict::Failed
        );
        // Too few origins after trial_days: failed; on the last day still waiting.
        let late = judge(&p, params(180), 2, None, at("2026-03-02T12:00:00Z"), &s);
        assert_eq!(late.verdict, TrialVerdict::Failed, "{}", late.note);
        let last = judge(&p, params(180), 2, None, at("2026-03-01T12:00:00Z"), &s);
        assert_eq!(last.verdict, TrialVerdict::Waiting, "{}", last.note);
    }
}

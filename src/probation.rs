//! Probation of a recent deploy: within `deploy.probation_days` of its deploy, a config is held
//! to the validation RMSE it promised, on the origins whose targets came after the deploy.
//! Live RMSE worse than the promise by more than `deploy.probation_max_degradation_pct` means
//! roll back. Pure: the caller supplies the live errors (a hindcast of the deployed config).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::DeploySettings;
use crate::domain::Horizon;
use crate::forecaster_config::ForecasterConfig;
use crate::history::{self, Action, HistoryRecord};
use crate::series::Series;

/// A deploy still on probation, and what it promised.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    pub deployed_at: DateTime<Utc>,
    pub promised_rmse: f64,
}

/// The probation check of a recent deploy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbationCheck {
    pub deployed_at: DateTime<Utc>,
    pub origins: usize,
    pub live_rmse: Option<f64>,
    pub promised_rmse: f64,
    pub limit_pct: f64,
    pub degradation_pct: Option<f64>,
    pub rolled_back: bool,
    pub note: String,
}

/// The deploy `cfg` is on probation for, if any: the newest record of `h` at or before `now` is
/// a deploy at most `probation_days` old and the config promises a positive validation RMSE.
pub fn due(
    history: &[HistoryRecord],
    h: Horizon,
    cfg: &ForecasterConfig,
    now: DateTime<Utc>,
    settings: &DeploySettings,
) -> Option<Due> {
    let label = h.label();
    let last = history
        .iter()
        .filter(|r| r.horizon == label && r.optimization_date <= now)
        .max_by_key(|r| r.optimization_date)?;
    if last.action != Action::Deployed
        || history::days_since(last.optimization_date, now.date_naive()) > settings.probation_days
    {
        return None;
    }
    let promised = cfg.validation_rmse.filter(|r| *r > 0.0)?;
    Some(Due {
        deployed_at: last.optimization_date,
        promised_rmse: promised,
    })
}

/// Origins made at or after the deploy day whose step-`h` targets are observed.
pub fn origins(series: &Series, h: Horizon, deployed_at: DateTime<Utc>) -> Vec<usize> {
    let day: NaiveDate = deployed_at.date_naive();
    crate::hindcast::origins_with_targets_after(series, h.steps(), day)
        .into_iter()
        .filter(|&i| series.dates[i] >= day)
        .collect()
}

/// Judges a deploy on probation from the live step-`h` errors of its `origins`. Fewer than
/// `probation_min_origins` origins: not judged yet (the errors are not looked at).
pub fn judge(due: &Due, origins: usize, live_errors: &[f64], settings: &DeploySettings) -> ProbationCheck {
    let limit = settings.probation_max_degradation_pct;
    let mut check = ProbationCheck {
        deployed_at: due.deployed_at,
        origins,
        live_rmse: None,
        promised_rmse: due.promised_rmse,
        limit_pct: limit,
        degradation_pct: None,
        rolled_back: false,
        note: String::new(),
    };
    if origins < settings.probation_min_origins || live_errors.is_empty() {
        check.note = format!(
            "on probation: {origins} of {} origins since the deploy; not judged yet",
            settings.probation_min_origins
        );
        return check;
    }
    let live = crate::metrics::rmse(live_errors);
    let degradation = (live / due.promised_rmse - 1.0) * 100.0;
    check.live_rmse = Some(live);
    check.degradation_pct = Some(degradation);
    check.rolled_back = degradation > limit + crate::validate::EDGE_TOLERANCE;
    check.note = format!(
        "probation: live RMSE {live:.3} vs promised {:.3} ({degradation:+.1} %, limit +{limit:.0} %)",
        due.promised_rmse
    );
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{RecordMetrics, RecordParams};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn record(h: &str, when: &str, action: Action) -> HistoryRecord {
        HistoryRecord {
            run_id: "r".into(),
            horizon: h.into(),
            optimization_date: at(when),
            action,
            triggered_by: String::new(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: true,
            old: RecordParams::default(),
            new: RecordParams::default(),
            candidate: RecordMetrics::default(),
            current: RecordMetrics::default(),
            duration_seconds: 0.0,
            message: String::new(),
        }
    }

    fn cfg(promised: Option<f64>) -> ForecasterConfig {
        let mut c = ForecasterConfig::initial(Horizon(7), "m", at("2026-01-01T00:00:00Z"));
        c.validation_rmse = promised;
        c
    }

    #[test]
    fn only_a_recent_deploy_with_a_promise_is_due() {
        let s = DeploySettings::default(); // 28 days
        let now = at("2026-02-01T12:00:00Z");
        let deployed = vec![record("7d", "2026-01-10T02:00:00Z", Action::Deployed)];
        let d = due(&deployed, Horizon(7), &cfg(Some(5.0)), now, &s).unwrap();
        assert!((d.promised_rmse - 5.0).abs() < 1e-12);
        // Another horizon's deploy does not count; nor a deploy with no promise.
        assert!(due(&deployed, Horizon(15), &cfg(Some(5.0)), now, &s).is_none());
        assert!(due(&deployed, Horizon(7), &cfg(None), now, &s).is_none());
        assert!(due(&deployed, Horizon(7), &cfg(Some(0.0)), now, &s).is_none());
        // 29 days later it is over; a later rejection ends it too; a record after now is ignored.
        assert!(due(
            &deployed,
            Horizon(7),
            &cfg(Some(5.0)),
            at("2026-02-08T00:00:00Z"),
            &s
        )
        .is_none());
        let mut later = deployed.clone();
        later.push(record("7d", "2026-01-20T02:00:00Z", Action::Rejected));
        assert!(due(&later, Horizon(7), &cfg(Some(5.0)), now, &s).is_none());
        let mut future = deployed.clone();
        future.push(record("7d", "2026-03-01T02:00:00Z", Action::Rejected));
        assert!(due(&future, Horizon(7), &cfg(Some(5.0)), now, &s).is_some());
    }

    #[test]
    fn judgement_waits_for_origins_then_compares_with_the_limit() {
        let s = DeploySettings::default(); // 30 %, 5 origins
        let d = Due {
            deployed_at: at("2026-01-10T02:00:00Z"),
            promised_rmse: 10.0,
        };
        let early = judge(&d, 4, &[20.0; 4], &s);
        assert!(!early.rolled_back && early.live_rmse.is_none());
        assert!(early.note.contains("4 of 5"), "{}", early.note);
        // RMSE 13 = +30 %: on the limit, kept; 13.01 rolls back.
        let kept = judge(&d, 5, &[13.0, -13.0, 13.0, -13.0, 13.0], &s);
        assert!((kept.degradation_pct.unwrap() - 30.0).abs() < 1e-9);
        assert!(!kept.rolled_back);
        let gone = judge(&d, 5, &[13.01; 5], &s);
        assert!(gone.rolled_back, "{}", gone.note);
        assert!(gone.note.contains("+30.1 %"), "{}", gone.note);
    }

    #[test]
    fn probation_origins_start_on_the_deploy_day() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let series = Series {
            dates: (0..10).map(|i| start + chrono::Duration::days(i)).collect(),
            values: (0..10).map(f64::from).collect(),
        };
        // Deployed on day 4 (2026-01-09): origins 4.. with their 2-step target observed.
        let o = origins(&series, Horizon(2), at("2026-01-09T02:00:00Z"));
        assert_eq!(o, vec![4, 5, 6, 7]);
    }
}

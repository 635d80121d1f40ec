//! Probation of a recent deploy: within `deploy.probation_days` of its deploy, a config is held
//! to what it promised, on the origins made since the deploy whose targets are observed,
//! scored as validation scored it (RMSE over steps 1..h of the mean forecast):
//! - live RMSE worse than the promised validation RMSE by more than
//!   `deploy.probation_max_degradation_pct` means roll back;
//! - so does live RMSE worse than that of the config it replaced, on the same origins, by
//!   more than `deploy.probation_max_relative_degradation_pct` (0: any excess). A deploy
//!   promised to beat the config it replaced; live data that says otherwise ends it, and the
//!   configs are back where validation found them.
//!
//! Pure: the caller supplies the live RMSEs (hindcasts of both configs).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::DeploySettings;
use crate::domain::{Horizon, InferenceParams};
use crate::forecaster_config::ForecasterConfig;
use crate::history::{self, Action, HistoryRecord};
use crate::series::Series;

/// A deploy still on probation, and what it promised.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    pub deployed_at: DateTime<Utc>,
    pub promised_rmse: f64,
    /// The parameters of the config the deploy replaced (from its history row), if known.
    pub replaced: Option<InferenceParams>,
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
    /// The replaced config's live RMSE on the same origins, and the deployed one's relative
    /// to it (positive: worse), with its limit.
    pub replaced_rmse: Option<f64>,
    pub relative_degradation_pct: Option<f64>,
    pub relative_limit_pct: f64,
    pub rolled_back: bool,
    pub note: String,
}

/// The deploy `cfg` is on probation for, if any: the newest record of `h` at or before `now`
/// that changed the config (a deploy or a rollback; the weekly rows in between change
/// nothing) is a deploy at most `probation_days` old, and the config promises a positive
/// validation RMSE.
pub fn due(
    history: &[HistoryRecord],
    h: Horizon,
    cfg: &ForecasterConfig,
    now: DateTime<Utc>,
    settings: &DeploySettings,
) -> Option<Due> {
    let last = history::last_of(history, h, now, &[Action::Deployed, Action::RolledBack])?;
    if last.action != Action::Deployed
        || history::days_since(last.optimization_date, now.date_naive()) > settings.probation_days
    {
        return None;
    }
    let promised = cfg.validation_rmse.filter(|r| *r > 0.0)?;
    let replaced = last.old.params();
    Some(Due {
        deployed_at: last.optimization_date,
        promised_rmse: promised,
        replaced,
    })
}

/// Origins made at or after the deploy day whose step-`h` targets are observed.
pub fn origins(series: &Series, h: Horizon, deployed_at: DateTime<Utc>) -> Vec<usize> {
    let day: NaiveDate = deployed_at.date_naive();
    crate::policy::hindcast::origins_with_targets_after(series, h.steps(), day)
        .into_iter()
        .filter(|&i| series.dates[i] >= day)
        .collect()
}

/// Judges a deploy on probation from its `live_rmse` on `origins` origins since the deploy
/// and the replaced config's `replaced_rmse` on the same origins (None: unknown, only the
/// promise is checked). Fewer than `probation_min_origins` origins: not judged yet (the
/// figures are not looked at).
pub fn judge(
    due: &Due,
    origins: usize,
    live_rmse: Option<f64>,
    replaced_rmse: Option<f64>,
    settings: &DeploySettings,
) -> ProbationCheck {
    let limit = settings.probation_max_degradation_pct;
    let relative_limit = settings.probation_max_relative_degradation_pct;
    let mut check = ProbationCheck {
        deployed_at: due.deployed_at,
        origins,
        live_rmse: None,
        promised_rmse: due.promised_rmse,
        limit_pct: limit,
        degradation_pct: None,
        replaced_rmse: None,
        relative_degradation_pct: None,
        relative_limit_pct: relative_limit,
        rolled_back: false,
        note: String::new(),
    };
    let live = match live_rmse {
        Some(live) if origins >= settings.probation_min_origins => live,
        _ => {
            check.note = format!(
                "on probation: {origins} of {} origins since the deploy; not judged yet",
                settings.probation_min_origins
            );
            return check;
        }
    };
    let degradation = crate::metrics::change_pct(live, due.promised_rmse);
    check.live_rmse = Some(live);
    check.degradation_pct = Some(degradation);
    let over_promise = degradation > limit + crate::policy::validate::EDGE_TOLERANCE;
    check.note = format!(
        "probation: live RMSE {live:.3} vs promised {:.3} ({degradation:+.1} %, limit +{limit:.0} %)",
        due.promised_rmse
    );
    let mut over_replaced = false;
    if let Some(old) = replaced_rmse.filter(|r| *r > 0.0) {
        let relative = crate::metrics::change_pct(live, old);
        check.replaced_rmse = Some(old);
        check.relative_degradation_pct = Some(relative);
        over_replaced = relative > relative_limit + crate::policy::validate::EDGE_TOLERANCE;
        check.note.push_str(&format!(
            " and vs the replaced config's {old:.3} ({relative:+.1} %, limit +{relative_limit:.0} %)"
        ));
    }
    check.rolled_back = over_promise || over_replaced;
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
            horizon: h.parse().unwrap(),
            optimization_date: at(when),
            action,
            triggered_by: Vec::new(),
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
            attention: None,
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
        // 29 days later it is over; the weekly rows in between (no trigger, suppressed, rejected:
        // the config stays) do not end it, a rollback does; a record after now is ignored.
        assert!(due(
            &deployed,
            Horizon(7),
            &cfg(Some(5.0)),
            at("2026-02-08T00:00:00Z"),
            &s
        )
        .is_none());
        let mut later = deployed.clone();
        for (day, action) in [
            ("2026-01-17T02:00:00Z", Action::NoTrigger),
            ("2026-01-24T02:00:00Z", Action::Suppressed),
            ("2026-01-31T02:00:00Z", Action::Rejected),
        ] {
            later.push(record("7d", day, action));
        }
        assert!(due(&later, Horizon(7), &cfg(Some(5.0)), now, &s).is_some());
        later.push(record("7d", "2026-01-31T03:00:00Z", Action::RolledBack));
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
            replaced: None,
        };
        let early = judge(&d, 4, Some(20.0), None, &s);
        assert!(!early.rolled_back && early.live_rmse.is_none());
        assert!(early.note.contains("4 of 5"), "{}", early.note);
        // RMSE 13 = +30 %: on the limit, kept; 13.01 rolls back.
        let kept = judge(&d, 5, Some(13.0), None, &s);
        assert!((kept.degradation_pct.unwrap() - 30.0).abs() < 1e-9);
        assert!(!kept.rolled_back);
        let gone = judge(&d, 5, Some(13.01), None, &s);
        assert!(gone.rolled_back, "{}", gone.note);
        assert!(gone.note.contains("+30.1 %"), "{}", gone.note);
    }

    #[test]
    fn a_deploy_that_does_worse_than_the_config_it_replaced_is_rolled_back() {
        let mut s = DeploySettings::default(); // relative limit 0 %
        let d = Due {
            deployed_at: at("2026-01-10T02:00:00Z"),
            promised_rmse: 10.0,
            replaced: None,
        };
        // Within its promise (+5 %), but the replaced config did better on the same origins.
        let worse = judge(&d, 5, Some(10.5), Some(10.4), &s);
        assert!(worse.rolled_back, "{}", worse.note);
        assert!((worse.relative_degradation_pct.unwrap() - 100.0 * (10.5 / 10.4 - 1.0)).abs() < 1e-9);
        assert!(
            worse
                .note
                .contains("replaced config's 10.400 (+1.0 %, limit +0 %)"),
            "{}",
            worse.note
        );
        // Equal is kept; better is kept; a looser limit keeps the +1 %.
        assert!(!judge(&d, 5, Some(10.4), Some(10.4), &s).rolled_back);
        assert!(!judge(&d, 5, Some(10.5), Some(11.0), &s).rolled_back);
        s.probation_max_relative_degradation_pct = 2.0;
        assert!(!judge(&d, 5, Some(10.5), Some(10.4), &s).rolled_back);
        // Too few origins: neither figure is judged.
        let early = judge(&d, 4, Some(10.5), Some(1.0), &s);
        assert!(!early.rolled_back && early.relative_degradation_pct.is_none());
    }

    #[test]
    fn the_replaced_config_comes_from_the_deploy_row() {
        let s = DeploySettings::default();
        let now = at("2026-02-01T12:00:00Z");
        let mut row = record("7d", "2026-01-10T02:00:00Z", Action::Deployed);
        row.old = RecordParams {
            context_length: Some(180),
            num_samples: Some(100),
            temperature: Some(1.0),
        };
        let d = due(&[row.clone()], Horizon(7), &cfg(Some(5.0)), now, &s).unwrap();
        assert_eq!(
            d.replaced,
            Some(InferenceParams {
                context_length: 180,
                num_samples: 100,
                temperature: 1.0
            })
        );
        // Incomplete or out-of-range parameters: unknown, probation checks the promise only.
        row.old.temperature = None;
        assert_eq!(
            due(&[row.clone()], Horizon(7), &cfg(Some(5.0)), now, &s)
                .unwrap()
                .replaced,
            None
        );
        row.old.temperature = Some(1.0);
        row.old.context_length = Some(0);
        assert_eq!(
            due(&[row], Horizon(7), &cfg(Some(5.0)), now, &s)
                .unwrap()
                .replaced,
            None
        );
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

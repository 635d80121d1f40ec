//! Scoring a replay: the policy's forecasts (each origin with the config then in effect), the
//! static configs, every grid config held fixed, the random walk, each deploy's promise
//! against what it realized, and the key figures over all horizons.

use std::collections::BTreeMap;

use anyhow::ensure;
use chrono::{Duration, NaiveDate};

use super::forecasts::{path_forecasts, scored_origins, StepForecast};
use super::{
    DeployCheck, FixedConfig, HorizonReplay, InEffect, Kpis, ReplayInput, ReplaySpec, Scores, State,
};
use crate::domain::{Horizon, InferenceParams};
use crate::forecaster_config::ForecasterConfig;
use crate::history::Action;
use crate::metrics;
use crate::policy::search::ForwardCache;
use crate::series::Series;
use crate::triggers::episodes::AlarmSummary;

/// Every (forecast, actual) pair of the paths at `origins`, steps 1..=h, with the step's
/// forecast; pairs whose target is missing are left out.
fn path_pairs(
    series: &Series,
    origins: &[usize],
    paths: &[Vec<StepForecast>],
) -> (Vec<(f64, f64)>, Vec<StepForecast>) {
    let mut points = Vec::new();
    let mut dists = Vec::new();
    for (&i, path) in origins.iter().zip(paths) {
        for (k, f) in path.iter().enumerate() {
            let a = series.values[i + k + 1];
            if !a.is_nan() {
                points.push((f.0, a));
                dists.push(*f);
            }
        }
    }
    (points, dists)
}

/// Mean squared error over one path's observed steps.
fn path_mse(series: &Series, i: usize, forecast: impl Fn(usize) -> f64, h: usize) -> f64 {
    let errors: Vec<f64> = (1..=h)
        .filter(|k| !series.values[i + k].is_nan())
        .map(|k| (forecast(k) - series.values[i + k]).powi(2))
        .collect();
    errors.iter().sum::<f64>() / errors.len().max(1) as f64
}

/// The config in effect for an origin dated `date`.
pub(super) fn in_effect(
    timeline: &[(Option<NaiveDate>, ForecasterConfig, Action)],
    date: NaiveDate,
) -> &ForecasterConfig {
    &timeline
        .iter()
        .rev()
        .find(|(after, _, _)| after.is_none_or(|a| date > a))
        .expect("the first entry applies to every date")
        .1
}

fn scores(points: &[(f64, f64)], dist: Option<&[StepForecast]>) -> anyhow::Result<Scores> {
    let errors: Vec<f64> = points.iter().map(|(f, a)| f - a).collect();
    let forecasts: Vec<f64> = points.iter().map(|p| p.0).collect();
    let actuals: Vec<f64> = points.iter().map(|p| p.1).collect();
    let c80: Option<Vec<[f64; 2]>> = dist.map(|f| f.iter().map(|x| x.1).collect());
    let c95: Option<Vec<[f64; 2]>> = dist.map(|f| f.iter().map(|x| x.2).collect());
    let q: Option<Vec<[f64; 9]>> = dist.map(|f| f.iter().map(|x| x.3).collect());
    Ok(Scores {
        forecasts: points.len(),
        rmse: metrics::rmse(&errors),
        mae: metrics::mae(&errors),
        mape: metrics::mape(&forecasts, &actuals)?,
        wql: q.map(|q| metrics::wql(&actuals, &q)).transpose()?,
        coverage_80: c80.map(|c| metrics::coverage(&actuals, &c)),
        coverage_95: c95.as_ref().map(|c| metrics::coverage(&actuals, c)),
        mean_ci95_width: c95.as_ref().map(|c| metrics::mean_width(c)),
    })
}

/// The scores of forecast paths at `origins` (steps 1..=h each).
fn arm(series: &Series, paths: &[Vec<StepForecast>], origins: &[usize]) -> anyhow::Result<Scores> {
    let (points, dists) = path_pairs(series, origins, paths);
    scores(&points, Some(&dists))
}

/// Each deploy's promise beside what it realized while in effect (up to the horizon's next
/// change or the end), against the config it replaced on the same origins.
fn deploy_checks(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    spec: &ReplaySpec,
    st: &State,
) -> anyhow::Result<Vec<DeployCheck>> {
    let (s, hs) = (input.series, st.horizon.steps());
    let mut out = Vec::new();
    for (date, old, new, promised) in &st.deploys {
        let end = st
            .timeline
            .iter()
            .filter_map(|(after, _, _)| *after)
            .find(|a| a > date)
            .unwrap_or(spec.to);
        let window = scored_origins(s, hs, *date + Duration::days(1), end);
        let realized = if window.is_empty() {
            None
        } else {
            let new_scores = arm(
                s,
                &path_forecasts(input, cache, &new.params(), hs, &window)?,
                &window,
            )?;
            let old_scores = arm(
                s,
                &path_forecasts(input, cache, &old.params(), hs, &window)?,
                &window,
            )?;
            Some(metrics::improvement_pct(new_scores.rmse, old_scores.rmse))
        };
        out.push(DeployCheck {
            date: *date,
            from: old.params(),
            to: new.params(),
            promised_improvement_pct: *promised,
            realized_improvement_pct: realized,
            origins: window.len(),
        });
    }
    Ok(out)
}

/// Every grid config of `h` held fixed over the replay's origins, best RMSE first.
fn fixed_configs(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    h: Horizon,
    origins: &[usize],
    static_scores: &Scores,
) -> anyhow::Result<Vec<FixedConfig>> {
    let mut out = Vec::new();
    for p in crate::policy::search::grid(&input.settings.search, h)? {
        let scores = arm(
            input.series,
            &path_forecasts(input, cache, &p, h.steps(), origins)?,
            origins,
        )?;
        out.push(FixedConfig {
            params: p,
            improvement_vs_static_pct: metrics::improvement_pct(scores.rmse, static_scores.rmse),
            scores,
        });
    }
    out.sort_by(|a, b| a.scores.rmse.total_cmp(&b.scores.rmse));
    Ok(out)
}

/// Scores one horizon's policy, its static configs and the random walk over the replay.
pub(super) fn score(
    input: &ReplayInput<'_>,
    cache: &mut ForwardCache,
    spec: &ReplaySpec,
    st: &State,
) -> anyhow::Result<HorizonReplay> {
    let h = st.horizon;
    let s = input.series;
    let origins = scored_origins(s, h.steps(), spec.from, spec.to);
    ensure!(
        !origins.is_empty(),
        "{}: no business day in {}..{} has its {h} target observed; replay an earlier period",
        input.series_name,
        spec.from,
        spec.to
    );
    // Policy: each origin with its config in effect, grouped by config for batched forwards.
    let hs = h.steps();
    let mut policy: Vec<Vec<StepForecast>> = vec![Vec::new(); origins.len()];
    let mut groups: BTreeMap<String, (InferenceParams, Vec<usize>)> = BTreeMap::new();
    for (k, &i) in origins.iter().enumerate() {
        let p = in_effect(&st.timeline, s.dates[i]).params();
        groups.entry(p.to_string()).or_insert((p, Vec::new())).1.push(k);
    }
    for (p, ks) in groups.values() {
        let os: Vec<usize> = ks.iter().map(|&k| origins[k]).collect();
        for (&k, f) in ks.iter().zip(path_forecasts(input, cache, p, hs, &os)?) {
            policy[k] = f;
        }
    }
    let initial = st.timeline[0].1.params();
    let fixed = path_forecasts(input, cache, &initial, hs, &origins)?;
    let rw_points: Vec<(f64, f64)> = origins
        .iter()
        .flat_map(|&i| (1..=hs).map(move |k| (s.values[i], s.values[i + k])))
        .filter(|p| !p.1.is_nan())
        .collect();
    let policy_scores = arm(s, &policy, &origins)?;
    let static_scores = arm(s, &fixed, &origins)?;
    let squared_errors = origins
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            (
                s.dates[i],
                path_mse(s, i, |t| policy[k][t - 1].0, hs),
                path_mse(s, i, |t| fixed[k][t - 1].0, hs),
                path_mse(s, i, |_| s.values[i], hs),
            )
        })
        .collect();
    let deploy_checks = deploy_checks(input, cache, spec, st)?;
    let fixed_configs = fixed_configs(input, cache, h, &origins, &static_scores)?;
    let capture_pct = fixed_configs
        .first()
        .filter(|best| best.scores.rmse < static_scores.rmse)
        .map(|best| {
            100.0 * (static_scores.rmse - policy_scores.rmse) / (static_scores.rmse - best.scores.rmse)
        });
    let count = |a: Action| st.counts.get(&a).copied().unwrap_or(0);
    Ok(HorizonReplay {
        horizon: h,
        timeline: st
            .timeline
            .iter()
            .map(|(after, c, action)| InEffect {
                after: *after,
                params: c.params(),
                action: *action,
            })
            .collect(),
        improvement_vs_static_pct: metrics::improvement_pct(policy_scores.rmse, static_scores.rmse),
        policy: policy_scores,
        static_configs: static_scores,
        fixed_configs,
        capture_pct,
        random_walk: scores(&rw_points, None)?,
        runs: st.runs,
        optimizations: st.optimizations,
        kept: count(Action::Kept),
        approvals: st.approvals,
        alarm_optimizations: st.alarm_optimizations,
        alarm_approvals: st.alarm_approvals,
        deploys: count(Action::Deployed),
        rejections: count(Action::Rejected),
        trials_started: count(Action::TrialStarted),
        trials_failed: count(Action::TrialFailed),
        rollbacks: count(Action::RolledBack),
        failures: st.failures,
        attention_weeks: st.attention_weeks,
        attention_changes: st.attention_changes,
        trigger_firings: st.triggers.clone(),
        alarms: AlarmSummary::default(),
        deploy_checks,
        first_origin: origins.first().map(|&i| s.dates[i]),
        last_origin: origins.last().map(|&i| s.dates[i]),
        squared_errors,
    })
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

pub(super) fn kpis(horizons: &[HorizonReplay]) -> Kpis {
    let runs: usize = horizons.iter().map(|h| h.runs).sum();
    let failures: usize = horizons.iter().map(|h| h.failures).sum();
    let optimizations: usize = horizons.iter().map(|h| h.optimizations).sum();
    let kept: usize = horizons.iter().map(|h| h.kept).sum();
    let approvals: usize = horizons.iter().map(|h| h.approvals).sum();
    let alarmed: usize = horizons.iter().map(|h| h.alarm_optimizations).sum();
    let alarm_approvals: usize = horizons.iter().map(|h| h.alarm_approvals).sum();
    let realized: Vec<f64> = horizons
        .iter()
        .flat_map(|h| h.deploy_checks.iter().filter_map(|d| d.realized_improvement_pct))
        .collect();
    Kpis {
        automation_rate: ratio(runs - failures, runs).unwrap_or(1.0),
        validation_success_rate: ratio(approvals, optimizations - kept),
        mean_realized_improvement_pct: (!realized.is_empty())
            .then(|| realized.iter().sum::<f64>() / realized.len() as f64),
        false_positive_trigger_rate: ratio(alarmed - alarm_approvals, alarmed),
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock;
    use super::*;

    #[test]
    fn the_config_in_effect_changes_the_day_after_its_run() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let now = clock(d("2024-01-01"));
        let a = ForecasterConfig::initial(Horizon(7), "m", now);
        let mut b = a.clone();
        b.context_length = 90;
        let t = vec![
            (None, a.clone(), Action::NoTrigger),
            (Some(d("2024-01-07")), b.clone(), Action::Deployed),
        ];
        assert_eq!(in_effect(&t, d("2024-01-05")).context_length, 180);
        assert_eq!(in_effect(&t, d("2024-01-07")).context_length, 180);
        assert_eq!(in_effect(&t, d("2024-01-08")).context_length, 90);
    }
}

//! `replay` through the binary on a few months of the real series: nothing under the root
//! changes, and one horizon's policy RMSE is recomputed here from the configs in effect the
//! report lists, with the library's model and forecast post-processing.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::util::{demo_model, real_series_csv, TestEnv};
use model_optimizer::forecast::{self, QuantileForecast, QuantileModel};
use model_optimizer::model::ChronosBolt;
use model_optimizer::series::Series;

/// A small grid so the replay is quick in a debug build.
const SMALL: &str =
    "[search]\nvalidation_window = 10\nnum_samples = [20, 40]\ntemperature = [0.9, 1.1]\ntiming_runs = 1\n\
[search.context_lengths]\n7d = [30, 60]\n";

#[derive(Debug, Deserialize)]
struct Out {
    report: Report,
    files: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Report {
    run_dates: usize,
    horizons: Vec<HorizonReplay>,
    forwards_computed: usize,
    forwards_requested: usize,
}

#[derive(Debug, Deserialize)]
struct HorizonReplay {
    horizon: String,
    timeline: Vec<InEffect>,
    policy: Scores,
    static_configs: Scores,
    random_walk: Scores,
    fixed_configs: Vec<FixedConfig>,
    capture_pct: Option<f64>,
    runs: usize,
    optimizations: usize,
    kept: usize,
    rejections: usize,
    approvals: usize,
    deploys: usize,
    trials_started: usize,
    attention_weeks: usize,
    alarms: Alarms,
    first_origin: NaiveDate,
    last_origin: NaiveDate,
}

#[derive(Debug, Deserialize)]
struct InEffect {
    after: Option<NaiveDate>,
    params: Params,
}

#[derive(Debug, Deserialize)]
struct Params {
    context_length: usize,
    num_samples: usize,
    temperature: f64,
}

#[derive(Debug, Deserialize)]
struct FixedConfig {
    params: Params,
    scores: Scores,
}

#[derive(Debug, Deserialize)]
struct Alarms {
    drift: Tally,
    performance: Tally,
}

#[derive(Debug, Deserialize)]
struct Tally {
    checks: usize,
    firing_checks: usize,
    episodes: usize,
    confirmed: usize,
    unconfirmed: usize,
    undecided: usize,
}

#[derive(Debug, Deserialize)]
struct Scores {
    forecasts: usize,
    rmse: f64,
}

#[test]
fn a_short_replay_changes_nothing_and_its_policy_rmse_recomputes() {
    let env = TestEnv::new().with_real_series();
    env.write("configs/optimizer.toml", SMALL);
    let before = env.snapshot();
    let out_dir = tempfile::tempdir().unwrap();
    let model = demo_model().display().to_string();
    let out = env.run(&[
        "replay",
        "--from",
        "2023-01-01",
        "--to",
        "2023-03-05",
        "--horizon",
        "7d",
        "--json",
        "--out",
        &out_dir.path().display().to_string(),
        "--model",
        &model,
    ]);
    let parsed: Out = out.expect_code(0).json();
    assert_eq!(env.snapshot(), before, "replay changes nothing under the root");
    assert_eq!(parsed.files.len(), 3);
    for f in &parsed.files {
        assert!(std::fs::metadata(f).unwrap().len() > 0, "{f}");
    }
    let r = &parsed.report;
    assert_eq!(r.run_dates, 10);
    assert!(
        r.forwards_computed < r.forwards_requested,
        "the cache serves repeated forwards"
    );
    let h = &r.horizons[0];
    assert_eq!((h.horizon.as_str(), h.runs), ("7d", 10));
    assert!(h.random_walk.rmse > 0.0 && h.static_configs.forecasts == h.policy.forecasts);
    check_fixed_configs(h);
    // Each optimization ends kept, rejected or approved (a deploy or a trial started), counted
    // apart; the attention weeks are runs.
    assert!(h.kept + h.approvals <= h.optimizations, "{h:?}");
    assert!(h.optimizations <= h.kept + h.rejections + h.approvals, "{h:?}");
    assert!(h.deploys + h.trials_started >= h.approvals && h.attention_weeks <= h.runs);
    let series = model_optimizer::data::load_series(&real_series_csv()).unwrap();
    check_alarms(&env, &model, &series, h);
    check_policy_rmse(&model, &series, h);
}

/// The whole 2 x 2 x 2 grid, each held fixed over the same origins, best RMSE first; the
/// capture is the policy's share of the best one's gain over the static configs; every
/// deployed config comes from the grid.
fn check_fixed_configs(h: &HorizonReplay) {
    assert_eq!(h.fixed_configs.len(), 8);
    assert!(h
        .fixed_configs
        .windows(2)
        .all(|w| w[0].scores.rmse <= w[1].scores.rmse));
    assert!(h
        .fixed_configs
        .iter()
        .all(|f| f.scores.forecasts == h.policy.forecasts));
    let best = &h.fixed_configs[0].scores;
    match h.capture_pct {
        Some(c) => {
            let expected =
                100.0 * (h.static_configs.rmse - h.policy.rmse) / (h.static_configs.rmse - best.rmse);
            assert!((c - expected).abs() < 1e-9, "capture {c} vs {expected}");
        }
        None => assert!(best.rmse >= h.static_configs.rmse),
    }
    for e in &h.timeline {
        if e.after.is_some() {
            let p = &e.params;
            assert!(
                h.fixed_configs
                    .iter()
                    .any(|f| f.params.context_length == p.context_length
                        && f.params.num_samples == p.num_samples
                        && (f.params.temperature - p.temperature).abs() < 1e-12),
                "a deployed config comes from the grid"
            );
        }
    }
}

/// Alarm episodes: the drift alarm's checks are the runs' (the detector recomputed here
/// with the library on the series cut at each run date), each episode counted once; the
/// human output names the drift alarm.
fn check_alarms(env: &TestEnv, model: &str, series: &Series, h: &HorizonReplay) {
    let settings = model_optimizer::config::TriggerSettings::default();
    let firing = (0..10)
        .map(|k| NaiveDate::from_ymd_opt(2023, 1, 1).unwrap() + chrono::Duration::days(7 * k))
        .filter(|d| model_optimizer::triggers::evaluate_drift(&series.truncated_at(*d), &settings).fired)
        .count();
    for t in [&h.alarms.drift, &h.alarms.performance] {
        assert!(t.checks <= h.runs && t.firing_checks <= t.checks && t.episodes <= t.firing_checks);
        assert_eq!(t.episodes, t.confirmed + t.unconfirmed + t.undecided);
    }
    if h.alarms.drift.checks == h.runs {
        assert_eq!(h.alarms.drift.firing_checks, firing);
    }
    let text = env
        .run(
            &[
                &[
                    "replay",
                    "--from",
                    "2023-01-01",
                    "--to",
                    "2023-01-15",
                    "--horizon",
                    "7d",
                ][..],
                &["--model", model],
            ]
            .concat(),
        )
        .expect_code(0)
        .stdout
        .clone();
    assert!(text.contains("7d drift alarm: fired in "), "{text}");
    // Not a terminal and no COLUMNS: the text fits 100 columns.
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    assert!(text.contains("│ attention weeks / changes ┆"), "{text}");
}

/// Independent recomputation of the policy's errors: every step 1..7 of every origin's path.
fn check_policy_rmse(model: &str, series: &Series, h: &HorizonReplay) {
    let bolt = ChronosBolt::load(model).unwrap();
    let mut errors = Vec::new();
    for i in 0..series.len() - 7 {
        let d = series.dates[i];
        if d < h.first_origin || d > h.last_origin {
            continue;
        }
        let cfg = &h
            .timeline
            .iter()
            .rev()
            .find(|e| e.after.is_none_or(|a| d > a))
            .unwrap()
            .params;
        let ctx = cfg.context_length.min(i + 1);
        let raw = bolt
            .predict(&[&series.values[i + 1 - ctx..=i]], 7)
            .unwrap()
            .remove(0);
        let path = QuantileForecast {
            values: raw.values.iter().map(|row| row[..7].to_vec()).collect(),
        };
        let s = forecast::summarize(&path, cfg.num_samples, cfg.temperature).unwrap();
        for k in 0..7 {
            errors.push(s.mean[k] - series.values[i + 1 + k]);
        }
    }
    assert_eq!(errors.len(), h.policy.forecasts);
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    assert!(
        (rmse - h.policy.rmse).abs() <= 1e-6 * rmse,
        "recomputed {rmse} vs reported {}",
        h.policy.rmse
    );
}

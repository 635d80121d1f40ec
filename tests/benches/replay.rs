//! Benchmark of `replay`: the weekly job over 280 weeks (from 2019-01-06), four horizons,
//! default settings, on the real USD/CLP series, printing wall time, forward passes computed
//! against those a replay without the shared cache would compute, and peak RSS.
//!
//! Run with `cargo bench --bench replay` (release). The model has the dimensions of
//! chronos-bolt-small with random weights (goals: <= 10 minutes on 2 cores, peak RSS <= 500 MB);
//! `REPLAY_BENCH_MODEL=<dir>` times another checkpoint, `REPLAY_BENCH_WEEKS=N` a shorter span.
//! Figures are printed, never asserted.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use model_optimizer::config::Settings;
use model_optimizer::domain::Horizon;
use model_optimizer::forecaster_config::ForecasterConfig;
use model_optimizer::model::ChronosBolt;
use model_optimizer::policy::replay::{self, ReplayInput, ReplayProgress, ReplaySpec};

#[path = "common.rs"]
mod common;
use common::{peak_rss_mb, pin_threads, read_series, shared_dir};

#[path = "checkpoint.rs"]
#[allow(dead_code)]
mod checkpoint;
use checkpoint::{write_checkpoint, SMALL};

const GOAL_S: f64 = 600.0;
const GOAL_RSS_MB: f64 = 500.0;

fn main() {
    pin_threads();
    let series = read_series(&shared_dir().join("data/usdclp_daily.csv"));
    let scratch = tempfile::tempdir().expect("tempdir");
    let (model, name) = if let Some(dir) = std::env::var_os("REPLAY_BENCH_MODEL") {
        let dir = PathBuf::from(dir);
        (
            ChronosBolt::load_dir(&dir).unwrap_or_else(|e| panic!("{e}")),
            dir.display().to_string(),
        )
    } else {
        write_checkpoint(scratch.path(), &SMALL);
        let m = ChronosBolt::load_dir(scratch.path()).unwrap_or_else(|e| panic!("{e}"));
        let n = format!(
            "random weights, chronos-bolt-{} dimensions ({} parameters)",
            SMALL.name,
            m.num_params()
        );
        (m, n)
    };
    let weeks: i64 = std::env::var("REPLAY_BENCH_WEEKS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(280);
    let from = NaiveDate::from_ymd_opt(2019, 1, 6).unwrap();
    let spec = ReplaySpec {
        from,
        to: from + Duration::days(7 * (weeks - 1)),
        every_days: 7,
    };
    let settings = Settings::default();
    let now = from.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let initial = Horizon::STANDARD
        .iter()
        .map(|&h| ForecasterConfig::initial(h, "bench", now))
        .collect();
    let input = ReplayInput {
        settings: &settings,
        series: &series,
        series_name: "usdclp_daily.csv",
        model: &model,
        model_id: "bench",
        dims: model_optimizer::policy::cost::ModelDims::of(model.config()),
        initial,
    };
    println!("model: {name}");
    println!(
        "replay benchmark: {weeks} weekly runs {} to {}, four horizons, default settings",
        spec.from, spec.to
    );
    let start = Instant::now();
    let mut done = 0;
    let report = replay::replay(&input, &spec, &mut |p| match p {
        ReplayProgress::Forwards { done, total } if done == total => println!(
            "  {total} forward passes computed up front, {:.0} s",
            start.elapsed().as_secs_f64()
        ),
        ReplayProgress::RunFinished { date } => {
            done += 1;
            if done % 40 == 0 {
                println!(
                    "  {done} runs done ({date}), {:.0} s",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        _ => {}
    })
    .expect("replay");
    let s = start.elapsed().as_secs_f64();
    for h in &report.horizons {
        println!(
            "{:>4}: policy RMSE {:.3}  static {:.3}  random walk {:.3}  deploys {}  rejections {}",
            h.horizon, h.policy.rmse, h.static_configs.rmse, h.random_walk.rmse, h.deploys, h.rejections
        );
    }
    println!(
        "total: {s:.1} s (goal <= {GOAL_S} s: {})  forward passes computed {} of {} a replay without the shared cache would compute ({:.1} %)",
        if s <= GOAL_S { "met" } else { "missed" },
        report.forwards_computed,
        report.forwards_requested,
        100.0 * report.forwards_computed as f64 / report.forwards_requested.max(1) as f64
    );
    match peak_rss_mb() {
        Some(mb) => println!(
            "peak RSS: {mb:.1} MB (goal <= {GOAL_RSS_MB} MB: {})",
            if mb <= GOAL_RSS_MB { "met" } else { "missed" }
        ),
        None => println!("peak RSS: unavailable"),
    }
}

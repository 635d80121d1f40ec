//! Benchmark of the full grid search: all four horizons on the real USD/CLP series with one
//! shared forward cache, each horizon's forwards batched once per context length over its
//! selection and confirmation origins (as `validate` and `run` do) and the search on the
//! selection origins, printing wall time per horizon and in total, forward batches run
//! against the naive one-per-config count, contexts reused, and peak RSS.
//!
//! Run with `cargo bench --bench search` (release). The series is read at run time from
//! `$MODEL_OPTIMIZER_SHARED/data/usdclp_daily.csv` (default `<crate root>/../shared`).
//!
//! The model has the exact dimensions of chronos-bolt-small with random weights (the goal
//! figures, total <= 60 s and peak RSS <= 500 MB on 2 cores, are for that size); set
//! `SEARCH_BENCH_MODEL=<checkpoint dir>` to time another checkpoint. Figures are printed,
//! never asserted.

use std::path::PathBuf;
use std::time::Instant;

use model_optimizer::config::{SearchSettings, ValidationSettings};
use model_optimizer::domain::Horizon;
use model_optimizer::forecast::QuantileModel;
use model_optimizer::model::ChronosBolt;
use model_optimizer::policy::backtest;
use model_optimizer::policy::search::{self, ForwardCache};

#[path = "common.rs"]
mod common;
use common::{peak_rss_mb, pin_threads, read_series, shared_dir};

#[path = "checkpoint.rs"]
#[allow(dead_code)]
mod checkpoint;
use checkpoint::{write_checkpoint, SMALL};

const GOAL_TOTAL_S: f64 = 60.0;
const GOAL_RSS_MB: f64 = 500.0;

/// The model whose search is timed: random weights with the exact shapes of
/// chronos-bolt-small written as a real checkpoint and loaded through the real loader, or
/// the checkpoint directory in `$SEARCH_BENCH_MODEL`.
fn bench_model(scratch: &std::path::Path) -> (Box<dyn QuantileModel>, String) {
    if let Some(dir) = std::env::var_os("SEARCH_BENCH_MODEL") {
        let dir = PathBuf::from(dir);
        let model = ChronosBolt::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        return (Box::new(model), dir.display().to_string());
    }
    write_checkpoint(scratch, &SMALL);
    let model = ChronosBolt::load_dir(scratch).unwrap_or_else(|e| panic!("{e}"));
    let name = format!(
        "random weights, chronos-bolt-{} dimensions ({} parameters)",
        SMALL.name,
        model.num_params()
    );
    (Box::new(model), name)
}

fn main() {
    pin_threads();
    let path = shared_dir().join("data/usdclp_daily.csv");
    let series = read_series(&path);
    let scratch = tempfile::tempdir().expect("tempdir");
    let (model, model_name) = bench_model(scratch.path());
    println!("model: {model_name}");
    let settings = SearchSettings::default();
    let validation = ValidationSettings::default();
    println!(
        "search benchmark: {} values ({} to {}), origins every {} rows: {} selection + {} confirmation, timing_runs {}",
        series.len(),
        series.dates[0],
        series.dates[series.len() - 1],
        settings.origin_spacing,
        settings.selection_origins,
        settings.validation_window,
        settings.timing_runs
    );
    let mut cache = ForwardCache::new();
    let total = Instant::now();
    let (mut batches, mut naive) = (0, 0);
    // Longest horizon first, so its forecasts can serve the shorter ones (see `search`).
    for h in Horizon::STANDARD.iter().rev() {
        let start = Instant::now();
        let split = backtest::split_origins(&series, h.steps(), &settings).expect("origins");
        let before = cache.batches_run;
        for length in settings.context_lengths_for(*h) {
            cache
                .forward(
                    model.as_ref(),
                    &series,
                    &split.all(),
                    *length,
                    h.steps(),
                    &mut |_| {},
                )
                .expect("forward");
        }
        let mut report = search::search(
            &search::SearchInput {
                model: model.as_ref(),
                series: &series,
                horizon: *h,
                settings: &settings,
                validation: &validation,
                selection: &split.selection,
                current: None,
            },
            &mut cache,
            &mut |_| {},
        )
        .expect("search");
        report.forward_batches = cache.batches_run - before;
        batches += report.forward_batches;
        naive += report.naive_forward_batches;
        let best = report.best();
        println!(
            "{h:>4}: {:>8.3} s  forward batches {} (naive {})  best {} rmse {:.3} IS95 {:.3} cov95 {:.3}",
            start.elapsed().as_secs_f64(),
            report.forward_batches,
            report.naive_forward_batches,
            best.params,
            best.metrics.rmse,
            best.metrics.interval_score_95,
            best.metrics.coverage_95,
        );
    }
    let total_s = total.elapsed().as_secs_f64();
    println!(
        "total: {total_s:.3} s  forward batches {batches} of {naive} naive  contexts run {} reused {}",
        cache.series_run, cache.series_reused
    );
    println!(
        "goal total <= {GOAL_TOTAL_S} s: {}",
        if total_s <= GOAL_TOTAL_S { "met" } else { "missed" }
    );
    match peak_rss_mb() {
        Some(mb) => println!(
            "peak RSS: {mb:.1} MB (goal <= {GOAL_RSS_MB} MB: {})",
            if mb <= GOAL_RSS_MB { "met" } else { "missed" }
        ),
        None => println!("peak RSS: unavailable (no /proc/self/status)"),
    }
}

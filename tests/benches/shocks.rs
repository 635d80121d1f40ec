//! The drift alarm's labeled-shock benchmark: the detector run as `status --check --as-of D`
//! would, on the real USD/CLP series, against the events of
//! `tests/fixtures/usdclp_shock_events.json`. Prints per event the detection delay in business
//! days, then over 2000..2024-06 the share of weekly checks (every 5th business day) that
//! fire, the alarm episodes per year and how many were confirmed (see `triggers::episodes`),
//! the same for 2019..2024-06, and a sweep of the thresholds and allowances around the
//! defaults (what choosing them traded off).
//!
//! Run with `cargo bench --bench shocks`; the series is read at run time from
//! `$MODEL_OPTIMIZER_SHARED/data/usdclp_daily.csv` (default `<crate root>/../shared`).
//! Figures are printed, never asserted (the test `triggers::drift_alarm_catches_labeled_shocks`
//! holds the acceptance lines).

use chrono::NaiveDate;
use model_optimizer::config::TriggerSettings;
use model_optimizer::triggers::drift::{log_returns, LogReturn};
use model_optimizer::triggers::episodes::{parse_events, shock_benchmark, ShockEvent};

#[path = "common.rs"]
mod common;
use common::{peak_rss_mb, pin_threads, read_series, shared_dir};

/// Business days after an event's first day the delays look at.
const MAX_DELAY: usize = 20;

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

fn events() -> Vec<ShockEvent> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usdclp_shock_events.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_events(&text).expect("the events fixture")
}

/// Thresholds and allowances around the defaults: events within 5 business days, weekly
/// share, episodes a year.
fn sweep(returns: &[LogReturn], events: &[ShockEvent]) {
    println!("\nsweep (2000..2024-06): volatility k / threshold, level threshold, watch window");
    println!(
        "{:>5} {:>5} {:>5} {:>5}  {:>9} {:>8} {:>9}",
        "k", "h_vol", "h_lvl", "watch", "<=5 days", "weekly %", "episodes/y"
    );
    let base = TriggerSettings::default();
    let variants = [
        (
            base.drift_volatility_k,
            base.drift_volatility_threshold,
            base.drift_level_threshold,
            base.drift_watch_window,
        ),
        (1.0, 7.0, 6.0, 20),
        (1.5, 7.0, 6.0, 20),
        (2.0, 5.0, 6.0, 20),
        (2.0, 9.0, 6.0, 20),
        (2.0, 7.0, 4.0, 20),
        (2.0, 7.0, 8.0, 20),
        (2.0, 7.0, 6.0, 15),
        (1.0, 4.0, 4.0, 20),
    ];
    for (k, hv, hl, w) in variants {
        let s = TriggerSettings {
            drift_volatility_k: k,
            drift_volatility_threshold: hv,
            drift_level_threshold: hl,
            drift_watch_window: w,
            ..base.clone()
        };
        let b = shock_benchmark(returns, events, (ymd(2000, 1, 1), ymd(2024, 6, 30)), 5, &s);
        let caught = b.events.iter().filter(|e| e.delay.is_some()).count();
        println!(
            "{k:>5} {hv:>5} {hl:>5} {w:>5}  {:>5} / {:<2} {:>8.1} {:>9.2}",
            caught,
            b.events.len(),
            100.0 * b.weekly_share,
            b.episodes_per_year
        );
    }
}

fn main() {
    pin_threads();
    let path = shared_dir().join("data/usdclp_daily.csv");
    let series = read_series(&path);
    let returns = log_returns(&series);
    let events = events();
    let settings = TriggerSettings::default();
    println!(
        "drift alarm on {} ({} log-returns), defaults: baseline {} watch {} hold {} clip {} volatility k {} h {} level k {} h {}\n",
        path.display(),
        returns.len(),
        settings.drift_baseline_window,
        settings.drift_watch_window,
        settings.drift_hold_days,
        settings.drift_clip_sd,
        settings.drift_volatility_k,
        settings.drift_volatility_threshold,
        settings.drift_level_k,
        settings.drift_level_threshold
    );
    let all = shock_benchmark(
        &returns,
        &events,
        (ymd(2000, 1, 1), ymd(2024, 6, 30)),
        MAX_DELAY,
        &settings,
    );
    print!("{}", all.events_table(MAX_DELAY));
    let within = all
        .events
        .iter()
        .filter(|e| e.delay.is_some_and(|d| d <= 5))
        .count();
    println!(
        "\n{within} of {} events detected within 5 business days",
        all.events.len()
    );
    println!("{}", all.weekly_line("2000..2024-06"));
    let recent = shock_benchmark(
        &returns,
        &[],
        (ymd(2019, 1, 1), ymd(2024, 6, 30)),
        MAX_DELAY,
        &settings,
    );
    println!("{}", recent.weekly_line("2019..2024-06"));
    sweep(&returns, &events);
    if let Some(mb) = peak_rss_mb() {
        println!("\npeak RSS {mb:.0} MB");
    }
}

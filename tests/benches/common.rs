//! What the benchmarks share besides the checkpoint: the shared directory, the real series
//! read from its CSV, and the process's peak RSS.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use model_optimizer::series::Series;

/// `$MODEL_OPTIMIZER_SHARED`, default `<crate root>/../shared`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("MODEL_OPTIMIZER_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    )
}

/// `date,usdclp` rows; an empty value is missing.
pub fn read_series(path: &Path) -> Series {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; set MODEL_OPTIMIZER_SHARED to the shared directory",
            path.display()
        )
    });
    let mut series = Series::default();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (d, v) = line.split_once(',').expect("two columns");
        series
            .dates
            .push(NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").expect("an ISO date"));
        series.values.push(v.trim().parse().unwrap_or(f64::NAN));
    }
    series
}

/// Peak resident set size of this process (Linux), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// As main.rs does: the forward pass's threads, this (main) thread included.
pub fn pin_threads() {
    model_optimizer::model::init_threads();
}

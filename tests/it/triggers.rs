//! Trigger tests against references: statistics parity with SciPy/statsmodels
//! (`tests/fixtures/stats_reference.json`), and the drift alarm's labeled-shock benchmark on the
//! real USD/CLP series (`$MODEL_OPTIMIZER_SHARED/data/usdclp_daily.csv`, read at test time)
//! against the events of `tests/fixtures/usdclp_shock_events.json`.

use std::path::PathBuf;

use model_optimizer::triggers::stats::{
    ks_2samp, ks_2samp_asymptotic, levene, ljung_box, variance_ratio_f, welch_t, LeveneCenter,
};
use serde_json::Value;

/// 1e-6 relative, or 1e-9 absolute for p-values below 1e-3.
fn check(case: &str, what: &str, ours: f64, reference: f64, is_pvalue: bool, failures: &mut Vec<String>) {
    let ok = if is_pvalue && reference < 1e-3 {
        (ours - reference).abs() <= 1e-9
    } else {
        (ours - reference).abs() <= 1e-6 * reference.abs()
    };
    let rel = (ours - reference).abs() / reference.abs().max(f64::MIN_POSITIVE);
    println!("{case:32} {what:28} ours {ours:<24e} ref {reference:<24e} rel {rel:.2e}");
    if !ok {
        failures.push(format!("{case} {what}: ours {ours:e} vs reference {reference:e}"));
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("fixture field {} missing", path.join(".")))
}

#[test]
fn stats_match_scipy_and_statsmodels_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stats_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 7, "fixture has {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let reference = floats(&c["reference"]);
        let current = floats(&c["current"]);
        let f = &mut failures;

        check_ks_and_welch(name, c, &reference, &current, f);
        check_levene_ljung_box_variance_ratio(name, c, &reference, &current, f);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The two-sample tests of location and distribution: Kolmogorov-Smirnov (exact or automatic
/// and asymptotic p-values) and Welch's t.
fn check_ks_and_welch(name: &str, c: &Value, reference: &[f64], current: &[f64], f: &mut Vec<String>) {
    let ks = ks_2samp(reference, current);
    check(
        name,
        "ks.statistic",
        ks.statistic,
        num(c, &["ks_2samp", "statistic"]),
        false,
        f,
    );
    check(
        name,
        "ks.pvalue_auto",
        ks.pvalue,
        num(c, &["ks_2samp", "pvalue_auto"]),
        true,
        f,
    );
    let ks_asymp = ks_2samp_asymptotic(reference, current);
    check(
        name,
        "ks.pvalue_asymp",
        ks_asymp.pvalue,
        num(c, &["ks_2samp", "pvalue_asymp"]),
        true,
        f,
    );

    let w = welch_t(reference, current);
    check(
        name,
        "welch_t.statistic",
        w.statistic,
        num(c, &["welch_t", "statistic"]),
        false,
        f,
    );
    check(
        name,
        "welch_t.pvalue",
        w.pvalue,
        num(c, &["welch_t", "pvalue"]),
        true,
        f,
    );
}

/// The tests of spread and dependence: Levene (median and mean centred), Ljung-Box on the
/// current window, and the variance-ratio F test.
fn check_levene_ljung_box_variance_ratio(
    name: &str,
    c: &Value,
    reference: &[f64],
    current: &[f64],
    f: &mut Vec<String>,
) {
    for (key, center) in [
        ("levene_median", LeveneCenter::Median),
        ("levene_mean", LeveneCenter::Mean),
    ] {
        let l = levene(reference, current, center);
        check(
            name,
            &format!("{key}.statistic"),
            l.statistic,
            num(c, &[key, "statistic"]),
            false,
            f,
        );
        check(
            name,
            &format!("{key}.pvalue"),
            l.pvalue,
            num(c, &[key, "pvalue"]),
            true,
            f,
        );
    }

    let lags = c["ljung_box_current"]["lags"]
        .as_u64()
        .expect("ljung_box_current.lags") as usize;
    let lb = ljung_box(current, lags);
    check(
        name,
        "ljung_box.statistic",
        lb.statistic,
        num(c, &["ljung_box_current", "statistic"]),
        false,
        f,
    );
    check(
        name,
        "ljung_box.pvalue",
        lb.pvalue,
        num(c, &["ljung_box_current", "pvalue"]),
        true,
        f,
    );

    let vr = variance_ratio_f(current, reference);
    check(
        name,
        "variance_ratio_f.ratio",
        vr.ratio,
        num(c, &["variance_ratio_f", "ratio"]),
        false,
        f,
    );
    check(
        name,
        "variance_ratio_f.pvalue_2s",
        vr.pvalue_two_sided,
        num(c, &["variance_ratio_f", "pvalue_two_sided"]),
        true,
        f,
    );
}

// ---------------------------------------------------------------------------------------------
// The drift alarm on the real USD/CLP series
// ---------------------------------------------------------------------------------------------

use chrono::NaiveDate;
use model_optimizer::config::TriggerSettings;
use model_optimizer::series::Series;
use model_optimizer::triggers::drift::log_returns;
use model_optimizer::triggers::episodes::{shock_benchmark, ShockEvent};

/// Reads `date,usdclp` with std only (the polars loader belongs to `data/`); None when the
/// file is absent outside CI (in CI, `CI=true`, its absence fails the test).
fn read_usdclp(path: &std::path::Path) -> Option<Series> {
    if !path.exists() && std::env::var("CI").as_deref() != Ok("true") {
        eprintln!(
            "skipped: {} is absent; set MODEL_OPTIMIZER_SHARED to the shared directory",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; set MODEL_OPTIMIZER_SHARED to the shared directory",
            path.display()
        )
    });
    let mut lines = text.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some("date,usdclp"),
        "{}: unexpected header",
        path.display()
    );
    let mut s = Series::default();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let (d, v) = line
            .split_once(',')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        s.dates
            .push(NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").unwrap());
        s.values.push(v.trim().parse().unwrap_or(f64::NAN));
    }
    Some(s)
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The labeled events of the fixture.
pub fn shock_events() -> Vec<ShockEvent> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usdclp_shock_events.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    model_optimizer::triggers::episodes::parse_events(&text).unwrap()
}

/// Events the default detector does not catch within 5 business days, and why (the closing
/// note of the benchmark): in each, the peso's moves in the first week were within what the
/// year before had seen. Catching them needs thresholds that fire in more than 15 % of weeks.
const KNOWN_MISSES: [(&str, &str); 3] = [
    (
        "COVID-19 crash",
        "first week's moves 0.2-1.5 % a day, at most 1.8 baseline sd (0.83 %: the year before holds the 2019 unrest); fires 2020-03-31, 16 business days on",
    ),
    (
        "Constitutional plebiscite",
        "USD/CLP fell 2.1 % on the result, 1.9 baseline sd (1.08 % after the 2022 turbulence), then under 1.3 % a day; no alarm",
    ),
    (
        "Silicon Valley Bank failure",
        "moves of up to 3 %, 2.3 baseline sd (1.30 %: the year before is 2022's); no alarm",
    ),
];

/// The labeled-shock benchmark with default settings on the real series: each fixture event
/// is detected within 5 business days of its first day except the known misses, and at most
/// 15 % of the weekly checks 2000..2024-06 fire.
#[test]
fn drift_alarm_catches_labeled_shocks_and_stays_quiet_on_usdclp() {
    let Some(series) = read_usdclp(&crate::util::real_series_csv()) else {
        return;
    };
    let events = shock_events();
    assert!(events.len() >= 8, "{} events", events.len());
    let settings = TriggerSettings::default();
    let returns = log_returns(&series);
    let b = shock_benchmark(
        &returns,
        &events,
        (ymd(2000, 1, 1), ymd(2024, 6, 30)),
        20,
        &settings,
    );
    print!("{}", b.events_table(20));
    println!("{}", b.weekly_line("weekly checks 2000..2024-06"));
    let mut late = Vec::new();
    for e in &b.events {
        let known = KNOWN_MISSES.iter().find(|(n, _)| *n == e.event.name);
        match (e.delay, known) {
            (Some(d), None) if d > 5 => late.push(format!("{} after {d} business days", e.event.name)),
            (None, None) => late.push(format!("{} not within 20 business days", e.event.name)),
            (Some(d), Some((name, _))) if d <= 5 => {
                println!("{name}: now detected within {d} days; take it off KNOWN_MISSES");
            }
            _ => {}
        }
    }
    for (name, why) in KNOWN_MISSES {
        println!("known miss, {name}: {why}");
    }
    assert!(late.is_empty(), "late or missed: {}", late.join("; "));
    assert!(
        b.weekly_share <= 0.15,
        "{:.1} % of weekly checks fire (goal <= 15 %)",
        100.0 * b.weekly_share
    );
    assert!(b.weekly_checks > 1_200, "{} weekly checks", b.weekly_checks);
}

/// What `status --check --json` prints, as far as the test below reads it.
#[derive(serde::Deserialize)]
struct StatusCheck {
    triggers: Vec<TriggerReport>,
}

/// One horizon's trigger report.
#[derive(serde::Deserialize)]
struct TriggerReport {
    horizon: String,
    should_optimize: bool,
    alarms: Vec<String>,
    severity: String,
    scheduled: bool,
    reasons: Vec<String>,
    drift: DriftReport,
    performance: PerformanceReport,
}

#[derive(serde::Deserialize)]
struct DriftReport {
    severity: String,
    fired: bool,
    suppressed_by_cooldown: bool,
    statistic: f64,
    threshold: f64,
    last_date: NaiveDate,
    detector: DetectorReport,
    significant: Vec<String>,
    summary: String,
}

#[derive(serde::Deserialize)]
struct DetectorReport {
    volatility_statistic: f64,
    volatility_threshold: f64,
    volatility_ratio: f64,
    watch_end: NaiveDate,
}

#[derive(serde::Deserialize)]
struct PerformanceReport {
    source: Option<String>,
    pvalue: Option<f64>,
    alpha: f64,
    summary: String,
}

/// `status --check --json --as-of 2022-07-22` (the week of the central bank's intervention)
/// on a root holding the real series: the drift section keeps `fired` and
/// `suppressed_by_cooldown` and adds the detector's statistic, threshold and severity; the
/// scheduled check is reported as `scheduled`, not as an alarm.
#[test]
fn status_check_reports_the_drift_detector_and_the_scheduled_check() {
    if read_usdclp(&crate::util::real_series_csv()).is_none() {
        return;
    }
    let env = crate::util::TestEnv::new().with_real_series();
    let model = crate::util::demo_model().display().to_string();
    let as_of = ["--as-of", "2022-07-22", "--model", &model];
    let out = env.run(&[&["status", "--check", "--json"][..], &as_of].concat());
    let st: StatusCheck = out.success().json();
    assert_eq!(st.triggers.len(), 4);
    for t in &st.triggers {
        check_drift_report(t);
        check_scheduled_and_performance(t);
    }
    let table = env
        .run(&[&["status", "--check"][..], &as_of].concat())
        .success()
        .stdout
        .clone();
    assert!(table.contains("HIGH") && table.contains("due"), "{table}");
}

/// The drift section as of the intervention: fired at HIGH on the volatility CUSUM, with the
/// detector's figures and the two-sample tests as evidence, and an alarm on the horizon.
fn check_drift_report(t: &TriggerReport) {
    let d = &t.drift;
    assert_eq!(d.last_date, ymd(2022, 7, 22), "{}: the as-of view", t.horizon);
    assert_eq!(d.detector.watch_end, ymd(2022, 7, 22));
    // The intervention's 8 % day (clipped at 4 sd) is far past the volatility threshold.
    assert!(d.fired && !d.suppressed_by_cooldown, "{}", d.summary);
    assert_eq!(
        (d.statistic, d.threshold),
        (d.detector.volatility_statistic, d.detector.volatility_threshold)
    );
    assert!(d.statistic > 2.0 * d.threshold, "{}", d.summary);
    assert!(d.detector.volatility_ratio > 1.5);
    assert_eq!(d.severity, "HIGH");
    assert!(
        d.summary.starts_with("drift HIGH: volatility CUSUM"),
        "{}",
        d.summary
    );
    // The two-sample tests are still there as evidence.
    assert!(d.significant.iter().all(|n| !n.is_empty()));
    assert!(t.alarms.contains(&"drift".to_string()), "{:?}", t.alarms);
    assert_eq!(t.severity, "HIGH");
}

/// Never optimized: the scheduled check is due and is no alarm; the performance test replays
/// the deployed config.
fn check_scheduled_and_performance(t: &TriggerReport) {
    // Never optimized: the scheduled check is due, and it is not an alarm.
    assert!(t.scheduled && t.should_optimize);
    assert!(!t.alarms.contains(&"time".to_string()));
    assert!(
        t.reasons.iter().any(|r| r == "scheduled: never optimized"),
        "{:?}",
        t.reasons
    );
    assert!(
        t.reasons.iter().any(|r| r.starts_with("drift: drift HIGH")),
        "{:?}",
        t.reasons
    );
    // No tracked predictions: the deployed config was replayed, and its test reported.
    assert_eq!(
        t.performance.source.as_deref(),
        Some("replay"),
        "{}",
        t.performance.summary
    );
    assert!(
        t.performance.pvalue.is_some_and(|p| (0.0..=1.0).contains(&p)),
        "{}",
        t.performance.summary
    );
    assert!((t.performance.alpha - 0.05).abs() < 1e-15);
}

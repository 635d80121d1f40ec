//! Foundation: `status` and `history` through the real binary, settings precedence, the real
//! series, and the bad-input matrix (exit 78, message names the file and the problem, nothing
//! under the root changes).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;

use model_optimizer::data::raw::{write_raw_parquet, RawColumn};
use model_optimizer::history::{Action, HistoryRecord, RecordMetrics, RecordParams};

use crate::util::{business_day_series, TestEnv};

#[derive(Debug, Deserialize)]
struct Status {
    model: String,
    series: SeriesInfo,
    horizons: Vec<HorizonStatus>,
}

#[derive(Debug, Deserialize)]
struct SeriesInfo {
    rows: usize,
    first: NaiveDate,
    last: NaiveDate,
    missing: usize,
}

#[derive(Debug, Deserialize)]
struct HorizonStatus {
    horizon: String,
    config: Config,
    never_optimized: bool,
    days_since_last_optimization: Option<i64>,
    last_action: Option<LastRun>,
    backups: usize,
}

#[derive(Debug, Deserialize)]
struct Config {
    context_length: usize,
    num_samples: usize,
    temperature: f64,
    validation_rmse: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct LastRun {
    action: String,
    run_id: String,
}

#[derive(Debug, Deserialize)]
struct History {
    total: usize,
    records: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Row {
    run_id: String,
    horizon: String,
    action: String,
    optimization_date: DateTime<Utc>,
}

fn record(run: &str, h: &str, day: u32, action: Action) -> HistoryRecord {
    HistoryRecord {
        run_id: run.into(),
        horizon: h.parse().unwrap(),
        optimization_date: Utc.with_ymd_and_hms(2024, 6, day, 5, 0, 0).unwrap(),
        action,
        triggered_by: model_optimizer::domain::TriggerKind::split("time").unwrap(),
        performance_degradation_pct: Some(3.5),
        drift_severity: Some(model_optimizer::domain::Severity::Low),
        days_since_last: None,
        success: true,
        old: RecordParams {
            context_length: Some(180),
            num_samples: Some(100),
            temperature: Some(1.0),
        },
        new: RecordParams {
            context_length: Some(270),
            num_samples: Some(200),
            temperature: Some(1.2),
        },
        candidate: RecordMetrics {
            rmse: Some(9.1),
            mape: Some(0.8),
            mae: Some(7.0),
            bias: Some(0.5),
            coverage_95: Some(0.93),
        },
        current: RecordMetrics {
            rmse: Some(9.8),
            ..RecordMetrics::default()
        },
        duration_seconds: 12.5,
        message: "test".into(),
        attention: Some(String::new()),
    }
}

#[test]
fn status_and_history_on_empty_history() {
    let env = TestEnv::new().with_demo_series();
    let st: Status = env
        .run(&["status", "--json", "--as-of", "2024-06-28"])
        .success()
        .json();
    assert_eq!(st.horizons.len(), 4);
    let h7 = st.horizons.iter().find(|h| h.horizon == "7d").unwrap();
    assert_eq!((h7.config.context_length, h7.config.num_samples), (180, 100));
    assert!((h7.config.temperature - 1.0).abs() < 1e-12);
    assert!(h7.never_optimized && h7.last_action.is_none() && h7.config.validation_rmse.is_none());
    assert_eq!(h7.backups, 0);
    assert_eq!(st.series.missing, 0);
    assert!(st.series.rows >= 2900, "{}", st.series.rows);

    let table = env.run(&["status"]).success().stdout.clone();
    assert!(
        table.contains("never optimized") && table.contains("90d"),
        "{table}"
    );

    let hist: History = env.run(&["history", "--json"]).success().json();
    assert_eq!(hist.total, 0);
    assert!(hist.records.is_empty());
    let table = env.run(&["history"]).success().stdout.clone();
    assert!(table.contains("never optimized"), "{table}");
}

#[test]
fn status_and_history_on_filled_history() {
    let env = TestEnv::new().with_demo_series();
    let path = env.path("data/optimization_history/history.parquet");
    model_optimizer::data::history::append(
        &path,
        &[
            record("r1", "7d", 2, Action::Deployed),
            record("r1", "15d", 2, Action::NoTrigger),
        ],
    )
    .unwrap();
    model_optimizer::data::history::append(&path, &[record("r2", "7d", 20, Action::Rejected)]).unwrap();

    let st: Status = env
        .run(&["status", "--json", "--as-of", "2024-06-28"])
        .success()
        .json();
    let h7 = st.horizons.iter().find(|h| h.horizon == "7d").unwrap();
    assert!(!h7.never_optimized);
    assert_eq!(h7.days_since_last_optimization, Some(8));
    let last = h7.last_action.as_ref().unwrap();
    assert_eq!((last.action.as_str(), last.run_id.as_str()), ("rejected", "r2"));
    // no_trigger is not an optimization
    let h15 = st.horizons.iter().find(|h| h.horizon == "15d").unwrap();
    assert!(h15.never_optimized);
    assert_eq!(h15.last_action.as_ref().unwrap().action, "no_trigger");

    let hist: History = env.run(&["history", "--json"]).success().json();
    assert_eq!(hist.total, 3);
    assert_eq!(hist.records[0].run_id, "r2", "newest first");
    assert!(hist
        .records
        .windows(2)
        .all(|w| w[0].optimization_date >= w[1].optimization_date));
    let hist: History = env
        .run(&["history", "--json", "--horizon", "7d", "--limit", "1"])
        .success()
        .json();
    assert_eq!((hist.total, hist.records.len()), (2, 1));
    assert_eq!(
        (hist.records[0].horizon.as_str(), hist.records[0].action.as_str()),
        ("7d", "rejected")
    );
    let table = env.run(&["history"]).success().stdout.clone();
    assert!(
        table.contains("deployed") && table.contains("180/100/1.00") && table.contains("270/200/1.20"),
        "{table}"
    );
}

#[test]
fn real_series_loads_with_its_full_range() {
    let env = TestEnv::new().with_real_series();
    let st: Status = env.run(&["status", "--json"]).success().json();
    assert_eq!(st.series.rows, 7741);
    assert_eq!(st.series.first, NaiveDate::from_ymd_opt(1994, 10, 18).unwrap());
    assert_eq!(st.series.last, NaiveDate::from_ymd_opt(2024, 6, 28).unwrap());
    let st: Status = env
        .run(&["status", "--json", "--as-of", "2020-03-20"])
        .success()
        .json();
    assert_eq!(st.series.last, NaiveDate::from_ymd_opt(2020, 3, 20).unwrap());
}

#[test]
fn settings_precedence_defaults_file_env_cli() {
    let env = TestEnv::new().with_demo_series();
    let st: Status = env.run(&["status", "--json"]).success().json();
    assert_eq!(
        st.model, "amazon/chronos-bolt-small",
        "built-in default and file agree"
    );
    env.write(
        "configs/optimizer.toml",
        "[model]\nid = \"amazon/chronos-bolt-tiny\"\n",
    );
    let st: Status = env.run(&["status", "--json"]).success().json();
    assert_eq!(st.model, "amazon/chronos-bolt-tiny", "file beats default");
    let out = env.run_with(
        &["status", "--json"],
        &[("MODEL_OPTIMIZER_MODEL_ID", "amazon/chronos-bolt-mini")],
    );
    assert_eq!(
        out.success().json::<Status>().model,
        "amazon/chronos-bolt-mini",
        "env beats file"
    );
    let out = env.run_with(
        &["status", "--json", "--model", "amazon/chronos-bolt-base"],
        &[("MODEL_OPTIMIZER_MODEL_ID", "amazon/chronos-bolt-mini")],
    );
    assert_eq!(
        out.success().json::<Status>().model,
        "amazon/chronos-bolt-base",
        "command line beats env"
    );
}

/// One bad-input class: set up the root, run `status`, expect `code` with every `needles` in
/// the one-line error, and no file under the root changed.
fn bad_input(name: &str, setup: impl FnOnce(&TestEnv), args: &[&str], code: i32, needles: &[&str]) {
    let env = TestEnv::new().with_demo_series();
    setup(&env);
    let before = env.snapshot();
    let out = env.run(args);
    assert_eq!(out.code, code, "{name}: exit code; stderr: {}", out.stderr);
    let err_lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        err_lines.len(),
        1,
        "{name}: one error line expected: {}",
        out.stderr
    );
    for n in needles {
        assert!(err_lines[0].contains(n), "{name}: `{n}` not in: {}", err_lines[0]);
    }
    assert!(
        out.stdout.is_empty(),
        "{name}: stdout must be empty on error: {}",
        out.stdout
    );
    assert_eq!(env.snapshot(), before, "{name}: files under the root changed");
}

fn write_raw(env: &TestEnv, rel: &str, columns: &[(&str, RawColumn)]) {
    std::fs::create_dir_all(env.path(rel).parent().unwrap()).unwrap();
    write_raw_parquet(&env.path(rel), columns).unwrap();
}

fn strs(v: &[&str]) -> RawColumn {
    RawColumn::Str(v.iter().map(|s| Some((*s).to_string())).collect())
}

/// An unreadable or mis-shaped series file.
#[test]
fn bad_series_files_exit_78_and_change_nothing() {
    let series = "data/usdclp.parquet";
    let st = &["status"][..];

    bad_input(
        "missing series",
        |e| std::fs::remove_file(e.path(series)).unwrap(),
        st,
        78,
        &["usdclp.parquet"],
    );
    bad_input(
        "empty parquet",
        |e| {
            let empty = business_day_series(0);
            e.write_series(series, &empty);
        },
        st,
        78,
        &["usdclp.parquet", "no rows"],
    );
    bad_input(
        "corrupt parquet",
        |e| e.write(series, b"PAR1 this is not a parquet file"),
        st,
        78,
        &["usdclp.parquet"],
    );
    bad_input(
        "wrong column names",
        |e| {
            write_raw(
                e,
                series,
                &[
                    ("day", strs(&["2020-01-01"])),
                    ("price", RawColumn::F64(vec![Some(1.0)])),
                ],
            );
        },
        st,
        78,
        &["usdclp.parquet", "date"],
    );
    bad_input(
        "wrong dtype",
        |e| {
            write_raw(
                e,
                series,
                &[
                    ("date", strs(&["2020-01-01", "2020-01-02"])),
                    ("value", strs(&["1.0", "2.0"])),
                ],
            );
        },
        st,
        78,
        &["usdclp.parquet", "date"],
    );
}

/// A readable series with bad rows: duplicate or unsorted dates, impossible values, too few rows.
#[test]
fn bad_series_values_exit_78_and_change_nothing() {
    let series = "data/usdclp.parquet";
    let st = &["status"][..];

    bad_input(
        "duplicate dates",
        |e| {
            let mut s = business_day_series(3000);
            s.dates[1500] = s.dates[1499];
            e.write_series(series, &s);
        },
        st,
        78,
        &[
            "usdclp.parquet",
            "duplicate",
            &business_day_series(3000).dates[1499].to_string(),
        ],
    );
    bad_input(
        "unsorted dates",
        |e| {
            let mut s = business_day_series(3000);
            s.dates.swap(10, 11);
            e.write_series(series, &s);
        },
        st,
        78,
        &["usdclp.parquet", "increasing"],
    );
    bad_input(
        "negative value",
        |e| {
            let mut s = business_day_series(3000);
            s.values[42] = -5.0;
            e.write_series(series, &s);
        },
        st,
        78,
        &["usdclp.parquet", "-5"],
    );
    bad_input(
        "infinite value",
        |e| {
            let mut s = business_day_series(3000);
            s.values[7] = f64::INFINITY;
            e.write_series(series, &s);
        },
        st,
        78,
        &["usdclp.parquet", "inf"],
    );
    bad_input(
        "too short",
        |e| e.write_series(series, &business_day_series(500)),
        st,
        78,
        // 730 (90d's largest context) + the origins' span for 90d: (52 + 26 - 2) x 5 rows,
        // a 90-row gap, 90 target rows and up to 4 rows to the lattice = 1294.
        &["usdclp.parquet", "500", "1294"],
    );
}

/// A forecaster config that is not JSON, lacks a field or holds an out-of-range value.
#[test]
fn bad_forecaster_configs_exit_78_and_change_nothing() {
    let st = &["status"][..];

    bad_input(
        "malformed JSON config",
        |e| e.write("configs/chronos_15d.json", b"{ \"schema_version\": 1, "),
        st,
        78,
        &["chronos_15d.json"],
    );
    bad_input(
        "config missing field",
        |e| {
            let text = String::from_utf8(e.read("configs/chronos_7d.json")).unwrap();
            let cut: String = text
                .lines()
                .filter(|l| !l.contains("\"temperature\""))
                .collect::<Vec<_>>()
                .join("\n");
            e.write("configs/chronos_7d.json", cut);
        },
        st,
        78,
        &["chronos_7d.json", "temperature"],
    );
    for (field, bad) in [
        ("context_length", "0"),
        ("context_length", "4096"),
        ("temperature", "0.0"),
        ("temperature", "-1.0"),
    ] {
        bad_input(
            &format!("config {field} = {bad}"),
            |e| {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&e.read("configs/chronos_30d.json")).unwrap();
                v[field] = serde_json::from_str(bad).unwrap();
                e.write("configs/chronos_30d.json", serde_json::to_vec_pretty(&v).unwrap());
            },
            st,
            78,
            &["chronos_30d.json", field],
        );
    }
}

/// Settings the binary rejects, from optimizer.toml or the environment.
#[test]
fn bad_settings_exit_78_and_change_nothing() {
    let st = &["status"][..];

    bad_input(
        "unknown key in optimizer.toml",
        |e| e.write("configs/optimizer.toml", "[triggers]\ncooldown_dayz = 3\n"),
        st,
        78,
        &["optimizer.toml", "cooldown_dayz"],
    );
    bad_input(
        "out-of-range setting",
        |e| e.write("configs/optimizer.toml", "[validation]\nmin_coverage_95 = 1.5\n"),
        st,
        78,
        &["optimizer.toml", "validation.min_coverage_95"],
    );
    let env = TestEnv::new()
        .with_demo_series()
        .with_env("MODEL_OPTIMIZER_TRIGGERS_TIME_DAYS", "0");
    let out = env.run(&["status"]);
    out.expect_code(78);
    assert!(out.stderr.contains("triggers.time_days"), "{}", out.stderr);
}

/// A history file that cannot be read, and an argument naming no horizon.
#[test]
fn bad_history_exits_78_and_bad_arguments_exit_2_changing_nothing() {
    let st = &["status"][..];

    bad_input(
        "unreadable history",
        |e| {
            e.write(
                "data/optimization_history/history.parquet",
                b"garbage, not parquet",
            );
        },
        st,
        78,
        &["history.parquet"],
    );
    bad_input(
        "history with a wrong schema",
        |e| {
            write_raw(
                e,
                "data/optimization_history/history.parquet",
                &[("run_id", strs(&["x"]))],
            );
        },
        &["history"],
        78,
        &["history.parquet"],
    );
    bad_input(
        "no such horizon",
        |_| {},
        &["history", "--horizon", "x"],
        2,
        &["horizon"],
    );
}

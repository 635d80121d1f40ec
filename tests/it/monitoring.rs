//! Operable as a scheduled job: the metrics file (`paths.metrics`) read by a real Prometheus
//! exposition-format parser (Python's `prometheus_client.parser`, installed by `.ci/run`) after
//! a deploy, a run that keeps the config, a failed run and a rollback, checked against the
//! commands' JSON; and the dead-man check of `status --check`.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;

use crate::util::{business_day_series, micro_model, TestEnv};

fn env() -> TestEnv {
    let env = TestEnv::new();
    env.write(
        "configs/optimizer.toml",
        crate::util::small_approving_settings("trial_min_origins = 0"),
    );
    env.write_series("data/usdclp.parquet", &business_day_series(1500));
    env
}

/// Parses `path` with `prometheus_client.parser` and returns every sample as
/// (family, type, sample name, labels, value); the parser's errors fail the test.
fn parse_exposition(path: &std::path::Path) -> Vec<Sample> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
out = []
for fam in text_string_to_metric_families(text):
    assert fam.documentation, "no HELP for " + fam.name
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3 runs (with prometheus_client: see .ci/run)");
    assert!(
        out.status.success(),
        "prometheus_client could not parse {}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[derive(Debug, Deserialize)]
struct Sample {
    family: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Exact equality of two figures (a value written and read back as text is the same double).
#[track_caller]
fn assert_same(a: f64, b: f64, what: impl std::fmt::Display) {
    assert!(a.to_bits() == b.to_bits(), "{what}: {a} != {b}");
}

/// The samples by name and labels.
struct Metrics(Vec<Sample>);

impl Metrics {
    fn read(env: &TestEnv) -> Metrics {
        Metrics(parse_exposition(&env.path("reports/model-optimizer.prom")))
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    #[track_caller]
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.0))
    }

    /// The action label of the horizon's action sample (exactly one).
    #[track_caller]
    fn action(&self, h: &str) -> String {
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.name == "model_optimizer_horizon_action" && s.labels["horizon"] == h)
            .collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_same(found[0].value, 1.0, "found[0].value");
        found[0].labels["action"].clone()
    }
}

#[derive(Debug, Deserialize)]
struct RunOut {
    horizons: Vec<HorizonOut>,
    exit_code: String,
}

#[derive(Debug, Deserialize)]
struct HorizonOut {
    horizon: String,
    action: String,
    triggers: Option<TriggersOut>,
    validation: Option<ValidationOut>,
}

#[derive(Debug, Deserialize)]
struct TriggersOut {
    performance: Fired,
    drift: Fired,
    time: Fired,
}

#[derive(Debug, Deserialize)]
struct Fired {
    fired: bool,
}

#[derive(Clone, Debug, Deserialize)]
struct ValidationOut {
    candidate: EvalOut,
    random_walk: RandomWalkOut,
}

#[derive(Clone, Debug, Deserialize)]
struct EvalOut {
    metrics: MetricsOut,
}

#[derive(Clone, Debug, Deserialize)]
struct MetricsOut {
    rmse: f64,
    coverage_95: f64,
}

#[derive(Clone, Debug, Deserialize)]
struct RandomWalkOut {
    candidate_rmse_ratio: f64,
}

const EXIT: [(&str, f64); 4] = [
    ("success", 0.0),
    ("runtime", 1.0),
    ("deploy_failed", 4.0),
    ("invalid", 78.0),
];

fn exit_number(name: &str) -> f64 {
    EXIT.iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("exit code {name}"))
        .1
}

#[track_caller]
fn check_alarms(m: &Metrics, h: &HorizonOut) {
    let t = h.triggers.as_ref().expect("the run evaluated the triggers");
    let l = [("horizon", h.horizon.as_str())];
    for (name, fired) in [
        ("model_optimizer_performance_alarm", t.performance.fired),
        ("model_optimizer_drift_alarm", t.drift.fired),
        ("model_optimizer_time_alarm", t.time.fired),
    ] {
        assert_same(m.one(name, &l), f64::from(u8::from(fired)), "{name}");
    }
}

#[test]
fn the_metrics_file_follows_a_deploy_a_kept_run_a_failed_run_and_a_rollback() {
    let env = env();
    let model = micro_model().display().to_string();
    let (v, end) = after_a_deploy(&env, &model);
    let (m2, success) = after_a_kept_run(&env, &model, &v, end);
    let failed_code = after_a_failed_run(&env, &m2, success);
    after_a_rollback(&env, failed_code);
    dry_and_off_write_nothing(&env, &model);
}

/// The metrics after a forced deploy of 7d; returns its validation and the run's end time.
fn after_a_deploy(env: &TestEnv, model: &str) -> (ValidationOut, f64) {
    let l7 = [("horizon", "7d")];
    // A forced deploy.
    let out = env.run(&["run", "--horizon", "7d", "--force", "--json", "--model", model]);
    let run: RunOut = out.success().json();
    let h = &run.horizons[0];
    assert_eq!(h.action, "deployed");
    let m = Metrics::read(env);
    let types: BTreeMap<&str, &str> = m.0.iter().map(|s| (s.family.as_str(), s.kind.as_str())).collect();
    assert_eq!(types["model_optimizer_deploys"], "counter");
    assert_eq!(types["model_optimizer_last_run_exit_code"], "gauge");
    assert_same(
        m.one("model_optimizer_last_run_exit_code", &[]),
        0.0,
        "model_optimizer_last_run_exit_code",
    );
    let start = m.one("model_optimizer_last_run_start_timestamp_seconds", &[]);
    let end = m.one("model_optimizer_last_run_end_timestamp_seconds", &[]);
    let duration = m.one("model_optimizer_last_run_duration_seconds", &[]);
    assert!(
        start <= end && (end - start - duration).abs() < 1e-6,
        "{start} {end} {duration}"
    );
    assert_same(
        m.one("model_optimizer_last_success_timestamp_seconds", &[]),
        end,
        "model_optimizer_last_success_timestamp_seconds",
    );
    assert_eq!(m.action("7d"), "deployed");
    let v = h.validation.as_ref().expect("a deploy was validated");
    // The deployed candidate is now the current config: its confirmation-origin scores.
    assert_same(
        m.one("model_optimizer_config_rmse_clp", &l7),
        v.candidate.metrics.rmse,
        "model_optimizer_config_rmse_clp",
    );
    assert_same(
        m.one("model_optimizer_config_coverage_95_ratio", &l7),
        v.candidate.metrics.coverage_95,
        "model_optimizer_config_coverage_95_ratio",
    );
    assert_same(
        m.one("model_optimizer_config_rmse_random_walk_ratio", &l7),
        v.random_walk.candidate_rmse_ratio,
        "model_optimizer_config_rmse_random_walk_ratio",
    );
    assert_same(
        m.one("model_optimizer_horizon_attention", &l7),
        0.0,
        "criteria wide open",
    );
    assert_same(
        m.one("model_optimizer_deploys_total", &l7),
        1.0,
        "model_optimizer_deploys_total",
    );
    assert_same(
        m.one("model_optimizer_rollbacks_total", &l7),
        0.0,
        "model_optimizer_rollbacks_total",
    );
    let age = m.one("model_optimizer_config_age_seconds", &l7);
    assert!((0.0..600.0).contains(&age), "a fresh config: {age}");
    check_alarms(&m, h);
    // The other horizons are there from their configs (never evaluated: no RMSE, no action).
    assert!(m
        .get("model_optimizer_config_age_seconds", &[("horizon", "90d")])
        .is_some());
    assert!(m
        .get("model_optimizer_config_rmse_clp", &[("horizon", "90d")])
        .is_none());
    let completed = m.one("model_optimizer_last_completed_run_timestamp_seconds", &[]);
    assert!(completed <= end + 1.0);
    assert_same(
        m.one("model_optimizer_max_run_age_seconds", &[]),
        8.0 * 86_400.0,
        "model_optimizer_max_run_age_seconds",
    );

    (v.clone(), end)
}

/// The metrics after a run that keeps the config; returns them and the last success time.
fn after_a_kept_run(env: &TestEnv, model: &str, v: &ValidationOut, end: f64) -> (Metrics, f64) {
    let l7 = [("horizon", "7d")];
    // A run that keeps the config (no trigger, or one the cooldown suppressed).
    let out = env.run(&["run", "--horizon", "7d", "--json", "--model", model]);
    let kept: RunOut = out.success().json();
    let k = &kept.horizons[0];
    assert!(["no_trigger", "suppressed"].contains(&k.action.as_str()), "{k:?}");
    let m2 = Metrics::read(env);
    assert_eq!(m2.action("7d"), k.action);
    assert_same(
        m2.one("model_optimizer_last_run_exit_code", &[]),
        exit_number(&kept.exit_code),
        "model_optimizer_last_run_exit_code",
    );
    assert!(m2.one("model_optimizer_last_run_start_timestamp_seconds", &[]) >= end);
    // Still the deployed config's evaluation, and still one deploy.
    assert_same(
        m2.one("model_optimizer_config_rmse_clp", &l7),
        v.candidate.metrics.rmse,
        "model_optimizer_config_rmse_clp",
    );
    assert_same(
        m2.one("model_optimizer_config_rmse_random_walk_ratio", &l7),
        v.random_walk.candidate_rmse_ratio,
        "model_optimizer_config_rmse_random_walk_ratio",
    );
    assert_same(
        m2.one("model_optimizer_deploys_total", &l7),
        1.0,
        "model_optimizer_deploys_total",
    );
    check_alarms(&m2, k);
    let success = m2.one("model_optimizer_last_success_timestamp_seconds", &[]);

    (m2, success)
}

/// The metrics after a run whose model cannot be loaded; returns its exit code.
fn after_a_failed_run(env: &TestEnv, m2: &Metrics, success: f64) -> i32 {
    // A failed run: the model cannot be loaded.
    let missing = env.path("no-such-model").display().to_string();
    let out = env.run(&["run", "--horizon", "7d", "--json", "--model", &missing]);
    let failed: RunOut = out.json();
    assert_ne!(out.code, 0);
    assert_eq!(failed.horizons[0].action, "failed");
    let m3 = Metrics::read(env);
    assert_same(
        m3.one("model_optimizer_last_run_exit_code", &[]),
        f64::from(out.code),
        "model_optimizer_last_run_exit_code",
    );
    assert_same(
        m3.one("model_optimizer_last_run_exit_code", &[]),
        exit_number(&failed.exit_code),
        "model_optimizer_last_run_exit_code",
    );
    assert_eq!(m3.action("7d"), "failed");
    assert_same(
        m3.one("model_optimizer_last_success_timestamp_seconds", &[]),
        success,
        "model_optimizer_last_success_timestamp_seconds",
    );
    assert!(m3.one("model_optimizer_last_run_end_timestamp_seconds", &[]) > success);
    // A failed run is not a completed one.
    assert_same(
        m3.one("model_optimizer_last_completed_run_timestamp_seconds", &[]),
        m2.one("model_optimizer_last_completed_run_timestamp_seconds", &[]),
        "model_optimizer_last_completed_run_timestamp_seconds",
    );

    out.code
}

/// The metrics after an operator's rollback, the failed run still the last run.
fn after_a_rollback(env: &TestEnv, failed_code: i32) {
    let l7 = [("horizon", "7d")];
    // An operator's rollback: the restored config carries no evaluation of its own.
    env.run(&["rollback", "7d"]).success();
    let m4 = Metrics::read(env);
    assert_eq!(m4.action("7d"), "rolled_back");
    assert_same(
        m4.one("model_optimizer_rollbacks_total", &l7),
        1.0,
        "model_optimizer_rollbacks_total",
    );
    assert_same(
        m4.one("model_optimizer_deploys_total", &l7),
        1.0,
        "model_optimizer_deploys_total",
    );
    assert!(m4.get("model_optimizer_config_rmse_clp", &l7).is_none());
    assert!(m4
        .get("model_optimizer_config_rmse_random_walk_ratio", &l7)
        .is_none());
    assert_same(
        m4.one("model_optimizer_last_run_exit_code", &[]),
        f64::from(failed_code),
        "the last run is still the failed one",
    );
}

/// A dry run, and a run with `paths.metrics` empty, leave the file as it was.
fn dry_and_off_write_nothing(env: &TestEnv, model: &str) {
    // A dry run writes nothing, the metrics included.
    let before = env.read("reports/model-optimizer.prom");
    env.run(&["run", "--horizon", "7d", "--dry-run", "--model", model])
        .success();
    assert_eq!(env.read("reports/model-optimizer.prom"), before);

    // Off when empty.
    let off = env.run_with(
        &["run", "--horizon", "7d", "--model", model],
        &[("MODEL_OPTIMIZER_PATHS_METRICS", "\"\"")],
    );
    off.success();
    assert_eq!(env.read("reports/model-optimizer.prom"), before);
}

#[derive(Debug, Deserialize)]
struct StatusOut {
    last_completed_run: RunAgeOut,
    triggers: Vec<StatusTriggers>,
}

#[derive(Debug, Deserialize)]
struct StatusTriggers {
    horizon: String,
    performance: Fired,
    drift: Fired,
    time: Fired,
}

#[derive(Debug, Deserialize)]
struct RunAgeOut {
    age_days: Option<f64>,
    stale: bool,
}

#[test]
fn status_check_pages_when_the_last_completed_run_is_older_than_the_limit() {
    let env = env();
    let model = micro_model().display().to_string();
    // Never run: nothing to judge yet.
    let out = env.run(&["status", "--check", "--as-of", "2019-06-03", "--model", &model]);
    out.success();
    assert!(
        out.stdout.contains("no completed weekly run recorded yet"),
        "{}",
        out.stdout
    );
    // A weekly run on 2019-06-03 (its rows carry the end of that day).
    env.run(&[
        "run",
        "--horizon",
        "7d",
        "--as-of",
        "2019-06-03",
        "--model",
        &model,
    ])
    .success();
    // 9 days later: exit 5, the age named on stdout and stderr.
    let out = env.run(&["status", "--check", "--as-of", "2019-06-12", "--model", &model]);
    out.expect_code(5);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            text.contains("last completed weekly run 9.0 days ago")
                && text.contains("monitoring.max_run_age_days = 8"),
            "{text}"
        );
    }
    let st: StatusOut = env
        .run(&[
            "status",
            "--check",
            "--json",
            "--as-of",
            "2019-06-12",
            "--model",
            &model,
        ])
        .expect_code(5)
        .json();
    assert_eq!(st.last_completed_run.age_days, Some(9.0));
    assert!(st.last_completed_run.stale);
    // The metrics carry the same figure for an alert rule, and the alarms of this check.
    let m = Metrics::read(&env);
    assert_eq!(st.triggers.len(), 4);
    for t in &st.triggers {
        check_alarms(
            &m,
            &HorizonOut {
                horizon: t.horizon.clone(),
                action: String::new(),
                triggers: Some(TriggersOut {
                    performance: Fired {
                        fired: t.performance.fired,
                    },
                    drift: Fired { fired: t.drift.fired },
                    time: Fired { fired: t.time.fired },
                }),
                validation: None,
            },
        );
    }
    let completed = m.one("model_optimizer_last_completed_run_timestamp_seconds", &[]);
    assert_same(completed, 1_559_606_399.0, "2019-06-03T23:59:59Z");
    // 2 days later: fine.
    let out = env.run(&["status", "--check", "--as-of", "2019-06-05", "--model", &model]);
    out.success();
    assert!(
        out.stdout.contains("last completed weekly run 2.0 days ago"),
        "{}",
        out.stdout
    );
    // Plain `status` names the age but pages nobody; the limit is a setting.
    env.run(&["status", "--as-of", "2019-06-12"]).success();
    env.run_with(
        &["status", "--check", "--as-of", "2019-06-12", "--model", &model],
        &[("MODEL_OPTIMIZER_MONITORING_MAX_RUN_AGE_DAYS", "10")],
    )
    .success();
}

/// The effective uid of the test process.
fn my_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_run_by_a_user_who_does_not_own_the_root_is_refused_before_anything_changes() {
    let env = env();
    let model = micro_model().display().to_string();
    let me = my_uid();
    // As root (the container's UID=0 mistake): a root owned by someone else. As another user:
    // a root owned by root.
    let root = if me == 0 {
        std::os::unix::fs::chown(env.root(), Some(65534), Some(65534)).unwrap();
        env.root().to_path_buf()
    } else {
        std::path::PathBuf::from("/")
    };
    let owner = if me == 0 { 65534 } else { 0 };
    let before = env.snapshot();
    for args in [
        &["run", "--all", "--model", &model][..],
        &["run", "--all", "--dry-run", "--model", &model],
        &["rollback", "7d"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_model-optimizer"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("owned by uid {owner}, but this run is uid {me}"))
                && stderr.contains(&format!("UID={owner}"))
                && stderr.contains(".env")
                && stderr.contains("chown"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    assert!(env.snapshot() == before, "nothing changed under the root");
    if me == 0 {
        // `status --check` still reports, but neither recovers nor writes the metrics.
        env.write(&format!("configs/.chronos_7d.json.{}.tmp", 4242), "stray");
        let before = env.snapshot();
        let out = env.run(&["status", "--check", "--model", &model]);
        out.success();
        assert!(out.stdout.contains("not recovering now"), "{}", out.stdout);
        assert!(out.stderr.contains("metrics not written"), "{}", out.stderr);
        assert!(env.snapshot() == before, "status changed files as another user");
    }
}

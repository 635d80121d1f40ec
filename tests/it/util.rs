//! Test environment builder: a temp `--root` with configs, data and optionally a git
//! repository, and a runner for the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use model_optimizer::series::Series;

/// `../shared` beside the crate, or `$MODEL_OPTIMIZER_SHARED`.
pub fn shared() -> PathBuf {
    std::env::var_os("MODEL_OPTIMIZER_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    )
}

/// The real USD/CLP CSV in shared/ (read at test time, never copied into the project).
pub fn real_series_csv() -> PathBuf {
    shared().join("data/usdclp_daily.csv")
}

/// The demo Chronos-Bolt checkpoint in shared/.
pub fn demo_model() -> PathBuf {
    shared().join("models/demo-bolt-tiny")
}

/// The micro checkpoint copied into tests/fixtures/.
pub fn micro_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/micro")
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, printing both streams when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        self.expect_code(0)
    }

    /// Parses stdout as JSON into a type the test defines.
    #[track_caller]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the expected JSON: {e}\n{}", self.stdout))
    }
}

/// A temp root holding configs/ and data/.
pub struct TestEnv {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl TestEnv {
    /// A root with the repository's configs (optimizer.toml and the four chronos_<h>.json).
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let configs = dir.path().join("configs");
        std::fs::create_dir_all(&configs).unwrap();
        let repo_configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for entry in std::fs::read_dir(repo_configs).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, configs.join(p.file_name().unwrap())).unwrap();
            }
        }
        TestEnv { dir, env: Vec::new() }
    }

    /// Adds the seeded synthetic series through the real `demo-data` command.
    #[must_use]
    pub fn with_demo_series(self) -> TestEnv {
        self.run(&["demo-data", "--out", "data"]).success();
        self
    }

    /// Points paths.series at the real USD/CLP CSV in shared/ (via the environment).
    #[must_use]
    pub fn with_real_series(self) -> TestEnv {
        let p = real_series_csv();
        self.with_env("MODEL_OPTIMIZER_PATHS_SERIES", &format!("\"{}\"", p.display()))
    }

    /// An environment variable for every run of the binary.
    #[must_use]
    pub fn with_env(mut self, k: &str, v: &str) -> TestEnv {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// Writes a series parquet through the library (no checks on write).
    pub fn write_series(&self, rel: &str, series: &Series) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        model_optimizer::data::write_series_parquet(&p, series).unwrap();
    }

    /// Runs the binary with `--root <root>` and the given arguments.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// As `run`, with extra environment variables for this run only.
    pub fn run_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_model-optimizer"));
        cmd.arg("--root").arg(self.root()).args(args);
        // The text width is the test's to set, not the caller's terminal's.
        cmd.env_remove("MODEL_OPTIMIZER_ROOT")
            .env_remove("COLUMNS")
            .env("HF_HUB_OFFLINE", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("running model-optimizer");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file under the root with its bytes (for "nothing changed" checks).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.insert(
                        p.strip_prefix(base).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root(), self.root(), &mut out);
        out
    }

    /// Initialises a git repository at the root and commits everything in it.
    pub fn git_init(&self) {
        git_cli(self.root(), &["init", "-q"]);
        git_cli(self.root(), &["add", "-A"]);
        git_cli(self.root(), &["commit", "-q", "-m", "initial"]);
    }

    /// Runs the git CLI in the root and returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        git_cli(self.root(), args)
    }
}

/// Runs the git CLI in `dir` as a person with a fixed identity (CI has none) on branch `main`,
/// asserting success, and returns stdout.
pub fn git_cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Person",
            "-c",
            "user.email=person@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the git CLI is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A series of `n` business days from 2015-01-01 with a smooth positive level.
pub fn business_day_series(n: usize) -> Series {
    let mut dates = Vec::with_capacity(n);
    let mut d = NaiveDate::from_ymd_opt(2015, 1, 1).unwrap();
    while dates.len() < n {
        if chrono::Datelike::weekday(&d).number_from_monday() <= 5 {
            dates.push(d);
        }
        d = d.succ_opt().unwrap();
    }
    let values = (0..n)
        .map(|i| 700.0 + 30.0 * (i as f64 / 40.0).sin() + i as f64 * 0.01)
        .collect();
    Series { dates, values }
}

/// Settings for a small search (2 contexts x 2 sample counts, plus the current config's)
/// whose choice takes the fewest draws (so it differs from the shipped configs' 100) and whose
/// every candidate is approved, with `deploy` as the `[deploy]` section's lines.
pub fn small_approving_settings(deploy: &str) -> String {
    format!(
        "[search]
validation_window = 6
selection_origins = 8
origin_spacing = 3
num_samples = [20, 40]
temperature = [1.0]
timing_runs = 1
num_samples_tolerance_pct = 100000.0
default_context_lengths = [32, 64]
[search.context_lengths]
7d = [32, 64]
15d = [32, 64]
30d = [32, 64]
90d = [32, 64]
[validation]
min_rmse_improvement_pct = -100.0
min_mape_improvement_pct = -100.0
max_std_increase_pct = 10000.0
max_inference_time_increase_pct = 10000.0
min_coverage_95 = 0.0
max_abs_bias = 100000.0
require_dm_significance = false
max_interval_score_increase_pct = 10000.0
[deploy]
{deploy}
"
    )
}

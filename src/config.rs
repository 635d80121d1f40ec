//! Validated settings: `configs/optimizer.toml` + environment, in that precedence (the
//! command line is applied by `hiargs`). Unknown keys and out-of-range values are errors naming
//! the key (exit 78).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{self, Horizon, MailEvent};
use crate::exit::invalid;

/// Environment prefix for settings overrides.
pub const ENV_PREFIX: &str = "MODEL_OPTIMIZER_";
/// The SMTP password's variable: read by `notify` only, never a setting.
pub const SMTP_PASSWORD_ENV: &str = "MODEL_OPTIMIZER_SMTP_PASSWORD";

/// Every threshold and default, as read from `configs/optimizer.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub paths: PathSettings,
    pub model: ModelSettings,
    pub triggers: TriggerSettings,
    pub search: SearchSettings,
    pub validation: ValidationSettings,
    pub deploy: DeploySettings,
    pub git: GitSettings,
    pub smtp: SmtpSettings,
    pub monitoring: MonitoringSettings,
}

/// Where files live, relative to `--root`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathSettings {
    pub series: PathBuf,
    pub predictions: PathBuf,
    pub history: PathBuf,
    pub configs: PathBuf,
    pub reports: PathBuf,
    /// The Prometheus text-format metrics file written after `run`, `rollback` and `status
    /// --check` (empty: none).
    pub metrics: PathBuf,
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings {
            series: "data/usdclp.parquet".into(),
            predictions: "data/predictions/predictions.parquet".into(),
            history: "data/optimization_history/history.parquet".into(),
            configs: "configs".into(),
            reports: "reports".into(),
            metrics: "reports/model-optimizer.prom".into(),
        }
    }
}

/// What a monitoring system or a host check is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringSettings {
    /// `status --check` exits 5 when the last completed weekly run is older than this many days.
    pub max_run_age_days: f64,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        MonitoringSettings {
            max_run_age_days: 8.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// Hugging Face repo id or a local directory with config.json + model.safetensors.
    pub id: String,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            id: "amazon/chronos-bolt-small".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriggerSettings {
    /// Performance trigger fires when the degradation (see `performance_mode`) is >= this
    /// (percent).
    pub performance_threshold_pct: f64,
    /// Which degradation fires the performance trigger.
    pub performance_mode: PerformanceMode,
    pub performance_recent_days: u32,
    pub performance_baseline_days: u32,
    /// Tracked predictions with actuals needed in each window; fewer means replay.
    pub min_tracked_recent: usize,
    pub min_tracked_baseline: usize,
    /// The degradation must also be significant: one-sided test of the recent window's loss
    /// differences (HAC variance over the horizon's overlap) at this level.
    pub performance_alpha: f64,
    /// Drift alarm (the shock detector, `triggers::shock`): log-returns in the baseline ...
    pub drift_baseline_window: usize,
    /// ... and in the watch window after it, over which the CUSUMs run.
    pub drift_watch_window: usize,
    /// The alarm holds while a CUSUM crossed its threshold on one of the last this many
    /// returns (a week: the weekly check sees any crossing since the last one).
    pub drift_hold_days: usize,
    /// Standardized returns are clipped to +-this many baseline scales.
    pub drift_clip_sd: f64,
    /// Volatility CUSUM: allowance per day and threshold.
    pub drift_volatility_k: f64,
    pub drift_volatility_threshold: f64,
    /// Level CUSUM: allowance per day and threshold.
    pub drift_level_k: f64,
    pub drift_level_threshold: f64,
    /// The two-sample tests reported as evidence beside the detector (they do not gate it):
    /// significance level, and the current and reference windows.
    pub drift_alpha: f64,
    pub drift_current_window: usize,
    pub drift_reference_window: usize,
    /// Time trigger: days since the last optimization.
    pub time_days: i64,
    /// Performance and drift are suppressed within this many days of the last optimization.
    pub cooldown_days: i64,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        TriggerSettings {
            performance_threshold_pct: 15.0,
            performance_mode: PerformanceMode::Relative,
            performance_recent_days: 14,
            performance_baseline_days: 60,
            min_tracked_recent: 10,
            min_tracked_baseline: 30,
            performance_alpha: 0.05,
            drift_baseline_window: 250,
            drift_watch_window: 20,
            drift_hold_days: 5,
            drift_clip_sd: 4.0,
            drift_volatility_k: 2.0,
            drift_volatility_threshold: 7.0,
            drift_level_k: 0.5,
            drift_level_threshold: 6.0,
            drift_alpha: 0.05,
            drift_current_window: 30,
            drift_reference_window: 120,
            time_days: 14,
            cooldown_days: 6,
        }
    }
}

/// `triggers.performance_mode`: what the performance trigger measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceMode {
    /// RMSE(recent) / RMSE(baseline) - 1: also rises when the market gets more volatile.
    Absolute,
    /// The same ratio of RMSE(model) / RMSE(random walk) on the same windows: degradation
    /// against the naive forecast, which a volatility rise alone leaves unchanged.
    Relative,
    /// Both must reach the threshold.
    Both,
}

impl PerformanceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PerformanceMode::Absolute => "absolute",
            PerformanceMode::Relative => "relative",
            PerformanceMode::Both => "both",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// Confirmation origins: the later part of the backtest origins, on which the deploy
    /// decision is made (the search never sees them).
    pub validation_window: usize,
    /// Selection origins: the earlier part, on which the search scores its configs.
    pub selection_origins: usize,
    /// Rows of the series (business days) between consecutive origins.
    pub origin_spacing: usize,
    /// num_samples rule: the smallest value whose mean and CI95 bounds stay within this
    /// percentage of the CI95 width of the largest value's forecasts.
    pub num_samples_tolerance_pct: f64,
    /// temperature rule: the current temperature stays unless the lowest-scoring one beats
    /// it at this one-sided Diebold-Mariano level on the selection origins (1 lets the
    /// lowest score win outright).
    pub temperature_change_alpha: f64,
    /// context_length rule: the current context length stays unless the lowest-RMSE one beats
    /// it at this one-sided Diebold-Mariano level on the selection origins (1 lets the lowest
    /// RMSE win outright).
    pub context_change_alpha: f64,
    /// Context lengths per horizon label.
    pub context_lengths: BTreeMap<Horizon, Vec<usize>>,
    /// Context lengths for horizons not listed above.
    pub default_context_lengths: Vec<usize>,
    pub num_samples: Vec<usize>,
    pub temperature: Vec<f64>,
    /// Runs whose median gives a config's inference time in the search table (shown only;
    /// 0: not timed, as a replay runs its searches).
    pub timing_runs: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        let mut context_lengths = BTreeMap::new();
        context_lengths.insert(Horizon(7), vec![90, 180, 270]);
        context_lengths.insert(Horizon(15), vec![90, 180, 365]);
        context_lengths.insert(Horizon(30), vec![180, 365, 540]);
        context_lengths.insert(Horizon(90), vec![365, 540, 730]);
        SearchSettings {
            validation_window: 26,
            selection_origins: 52,
            origin_spacing: 5,
            num_samples_tolerance_pct: 2.5,
            temperature_change_alpha: 0.05,
            context_change_alpha: 0.05,
            context_lengths,
            default_context_lengths: vec![90, 180, 365],
            num_samples: vec![50, 100, 200],
            temperature: vec![0.8, 1.0, 1.2],
            timing_runs: 5,
        }
    }
}

impl SearchSettings {
    pub fn context_lengths_for(&self, h: Horizon) -> &[usize] {
        self.context_lengths
            .get(&h)
            .map_or(self.default_context_lengths.as_slice(), Vec::as_slice)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationSettings {
    /// Criterion 1: relative RMSE improvement (percent) ...
    pub min_rmse_improvement_pct: f64,
    /// ... or relative MAPE improvement (percent).
    pub min_mape_improvement_pct: f64,
    /// Criterion 2: error std may grow at most this much (percent).
    pub max_std_increase_pct: f64,
    /// Criterion 3: inference cost (the deterministic model) may grow at most this much
    /// (percent).
    pub max_inference_time_increase_pct: f64,
    /// Criterion 4: CI95 coverage at least this (fraction).
    pub min_coverage_95: f64,
    /// Criterion 5: |bias| below this (CLP) ...
    pub max_abs_bias: f64,
    /// ... or below a per-horizon value.
    pub max_abs_bias_per_horizon: BTreeMap<Horizon, f64>,
    /// Criterion 6: the one-sided Diebold-Mariano test must find the candidate better ...
    pub require_dm_significance: bool,
    /// ... at this level.
    pub dm_alpha: f64,
    /// Criterion 7: the CI95 interval score may grow at most this much (percent): a deploy
    /// must not make the forecast distribution worse.
    pub max_interval_score_increase_pct: f64,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            min_rmse_improvement_pct: 5.0,
            min_mape_improvement_pct: 3.0,
            max_std_increase_pct: 10.0,
            max_inference_time_increase_pct: 50.0,
            min_coverage_95: 0.90,
            max_abs_bias: 5.0,
            max_abs_bias_per_horizon: BTreeMap::new(),
            require_dm_significance: true,
            dm_alpha: 0.05,
            max_interval_score_increase_pct: 0.0,
        }
    }
}

impl ValidationSettings {
    pub fn max_abs_bias_for(&self, h: Horizon) -> f64 {
        self.max_abs_bias_per_horizon
            .get(&h)
            .copied()
            .unwrap_or(self.max_abs_bias)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeploySettings {
    /// Newest backups kept per horizon.
    pub backups_to_keep: usize,
    /// Days after a deploy during which it is checked against its promise.
    pub probation_days: i64,
    /// Roll back when live RMSE exceeds the promised validation RMSE by more than this (percent).
    pub probation_max_degradation_pct: f64,
    /// Roll back when live RMSE exceeds that of the config the deploy replaced, on the same
    /// origins, by more than this (percent; 0: any excess).
    pub probation_max_relative_degradation_pct: f64,
    /// Minimum origins since the deploy before probation judges.
    pub probation_min_origins: usize,
    /// Live trial of an approved candidate before it is deployed: the origins since the
    /// approval (step-h targets observed) on which it must beat the current config (0: no
    /// trial, an approved candidate is deployed at once).
    pub trial_min_origins: usize,
    /// A trial not judged within this many days of its start ends as failed.
    pub trial_days: i64,
    /// The candidate's live RMSE must be below the current config's by at least this much
    /// (percent; 0: any improvement).
    pub trial_min_improvement_pct: f64,
}

impl Default for DeploySettings {
    fn default() -> Self {
        DeploySettings {
            backups_to_keep: 10,
            probation_days: 28,
            probation_max_degradation_pct: 30.0,
            probation_max_relative_degradation_pct: 0.0,
            probation_min_origins: 5,
            trial_min_origins: 5,
            trial_days: 42,
            trial_min_improvement_pct: 0.0,
        }
    }
}

/// `git.mode`: commit config changes when the configs directory is in a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GitMode {
    /// Commit when a repository is found, warn otherwise.
    Auto,
    /// A repository is required.
    Require,
    /// Never commit.
    Off,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitSettings {
    pub mode: GitMode,
    pub author_name: String,
    pub author_email: String,
}

impl Default for GitSettings {
    fn default() -> Self {
        GitSettings {
            mode: GitMode::Auto,
            author_name: "model-optimizer".into(),
            author_email: "model-optimizer@localhost".into(),
        }
    }
}

/// `smtp.tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    /// Login user; the password comes only from MODEL_OPTIMIZER_SMTP_PASSWORD.
    pub user: String,
    /// Events that warrant the run's digest mail: triggered, deployed, rejected, kept, failed,
    /// rolled_back, trial, attention.
    pub events: Vec<MailEvent>,
    pub timeout_seconds: u64,
    /// Allow logging in (user + password) over a connection without TLS (`tls = "none"`),
    /// which sends the password readable by anyone on the path. Off: such settings are refused.
    pub allow_plaintext_auth: bool,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            from: "model-optimizer@localhost".into(),
            to: Vec::new(),
            user: String::new(),
            events: vec![
                MailEvent::Deployed,
                MailEvent::Failed,
                MailEvent::RolledBack,
                MailEvent::Trial,
                MailEvent::Attention,
            ],
            timeout_seconds: 10,
            allow_plaintext_auth: false,
        }
    }
}

impl Settings {
    /// Reads `path` (missing file = defaults), applies environment overrides from `env`
    /// (pairs of name and value, e.g. `std::env::vars()`), and validates.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Settings> {
        let mut table = if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("{}: cannot read settings: {e}", path.display())))?;
            text.parse::<toml::Table>().map_err(|e| {
                invalid(format!(
                    "{}: not valid TOML: {}; fix the syntax",
                    path.display(),
                    one_line(&e.to_string())
                ))
            })?
        } else {
            toml::Table::new()
        };
        let env: Vec<(String, String)> = env.into_iter().filter(|(n, _)| is_setting_var(n)).collect();
        let file_table = table.clone();
        apply_env(&mut table, env.iter().cloned())?;
        let combined = match from_table(table) {
            Ok(settings) => return Ok(settings),
            Err(e) => e,
        };
        let from_file = |e: String| invalid(format!("{}: {e}", path.display()));
        // Blame the source that set the bad value: the file alone, else the variable that
        // breaks it on its own, else every variable involved.
        match from_table(file_table.clone()) {
            Err(file_error) if file_error == combined => return Err(from_file(file_error)),
            Err(_) => {}
            Ok(_) => {
                for (name, raw) in &env {
                    let mut t = file_table.clone();
                    apply_env(&mut t, [(name.clone(), raw.clone())])?;
                    if let Err(e) = from_table(t) {
                        return Err(invalid(format!(
                            "environment variable {name}: {e}; fix or unset it"
                        )));
                    }
                }
            }
        }
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        Err(invalid(format!(
            "{} with environment variables {}: {combined}; fix the file or the variables",
            path.display(),
            names.join(", ")
        )))
    }

    /// Range checks; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        positive("monitoring.max_run_age_days", self.monitoring.max_run_age_days)?;
        check_triggers(&self.triggers)?;
        check_search(&self.search)?;
        check_validation(&self.validation)?;
        check_deploy(&self.deploy)?;
        if self.git.author_name.trim().is_empty() || !self.git.author_email.contains('@') {
            return Err("git.author_name must be set and git.author_email must be an address".into());
        }
        let m = &self.smtp;
        if m.enabled && (m.to.is_empty() || m.host.is_empty() || m.port == 0) {
            return Err("smtp.enabled needs smtp.host, smtp.port and at least one smtp.to".into());
        }
        if m.enabled && !m.user.is_empty() && m.tls == SmtpTls::None && !m.allow_plaintext_auth {
            return Err(format!(
                "smtp.user = {:?} with smtp.tls = \"none\" would send the password unencrypted; set smtp.tls = \"starttls\" or \"tls\", or smtp.allow_plaintext_auth = true for a server on a trusted link",
                m.user
            ));
        }
        if self.model.id.trim().is_empty() {
            return Err("model.id must not be empty".into());
        }
        Ok(())
    }
}

fn check_triggers(t: &TriggerSettings) -> Result<(), String> {
    positive("triggers.performance_threshold_pct", t.performance_threshold_pct)?;
    if t.performance_recent_days == 0 || t.performance_baseline_days <= t.performance_recent_days {
        return Err(
            "triggers.performance_baseline_days must exceed triggers.performance_recent_days > 0".into(),
        );
    }
    unit_open("triggers.performance_alpha", t.performance_alpha)?;
    unit_open("triggers.drift_alpha", t.drift_alpha)?;
    if t.drift_baseline_window < 20 || t.drift_watch_window < 1 {
        return Err(
            "triggers.drift_baseline_window must be >= 20 and triggers.drift_watch_window >= 1".into(),
        );
    }
    if t.drift_hold_days < 1 || t.drift_hold_days > t.drift_watch_window {
        return Err(format!(
            "triggers.drift_hold_days = {} must be in 1..=triggers.drift_watch_window ({})",
            t.drift_hold_days, t.drift_watch_window
        ));
    }
    positive("triggers.drift_clip_sd", t.drift_clip_sd)?;
    positive(
        "triggers.drift_volatility_threshold",
        t.drift_volatility_threshold,
    )?;
    positive("triggers.drift_level_threshold", t.drift_level_threshold)?;
    for (key, k) in [
        ("triggers.drift_volatility_k", t.drift_volatility_k),
        ("triggers.drift_level_k", t.drift_level_k),
    ] {
        if !(k.is_finite() && k >= 0.0) {
            return Err(format!("{key} = {k} must be a number >= 0"));
        }
    }
    if t.drift_current_window < 5 || t.drift_reference_window < 5 {
        return Err("triggers.drift_current_window and drift_reference_window must be >= 5".into());
    }
    if t.time_days < 1 {
        return Err("triggers.time_days must be >= 1".into());
    }
    if t.cooldown_days < 0 {
        return Err("triggers.cooldown_days must be >= 0".into());
    }
    Ok(())
}

fn check_search(s: &SearchSettings) -> Result<(), String> {
    if s.validation_window < 2 || s.selection_origins < 2 {
        return Err(
            "search.validation_window and search.selection_origins must be >= 2 (the significance tests need two origins)"
                .into(),
        );
    }
    if s.origin_spacing == 0 {
        return Err("search.origin_spacing must be >= 1".into());
    }
    positive("search.num_samples_tolerance_pct", s.num_samples_tolerance_pct)?;
    for (key, a, score) in [
        (
            "temperature_change_alpha",
            s.temperature_change_alpha,
            "interval score",
        ),
        ("context_change_alpha", s.context_change_alpha, "RMSE"),
    ] {
        if !(a > 0.0 && a <= 1.0) {
            return Err(format!(
                "search.{key} = {a} must be in (0, 1] (1 lets the lowest {score} win outright)"
            ));
        }
    }
    for (k, v) in &s.context_lengths {
        context_list(&format!("search.context_lengths.{k}"), v)?;
    }
    context_list("search.default_context_lengths", &s.default_context_lengths)?;
    list("search.num_samples", &s.num_samples, |n| {
        domain::check_num_samples(*n)
    })?;
    list("search.temperature", &s.temperature, |t| {
        domain::check_temperature(*t)
    })?;
    Ok(())
}

fn check_validation(v: &ValidationSettings) -> Result<(), String> {
    for (key, x) in [
        ("validation.min_rmse_improvement_pct", v.min_rmse_improvement_pct),
        ("validation.min_mape_improvement_pct", v.min_mape_improvement_pct),
        ("validation.max_std_increase_pct", v.max_std_increase_pct),
        (
            "validation.max_inference_time_increase_pct",
            v.max_inference_time_increase_pct,
        ),
        (
            "validation.max_interval_score_increase_pct",
            v.max_interval_score_increase_pct,
        ),
    ] {
        if !x.is_finite() || !(-100.0..=10_000.0).contains(&x) {
            return Err(format!("{key} = {x} must be a percentage in [-100, 10000]"));
        }
    }
    if !(0.0..=1.0).contains(&v.min_coverage_95) {
        return Err(format!(
            "validation.min_coverage_95 = {} must be in [0, 1]",
            v.min_coverage_95
        ));
    }
    positive("validation.max_abs_bias", v.max_abs_bias)?;
    for (k, x) in &v.max_abs_bias_per_horizon {
        positive(&format!("validation.max_abs_bias_per_horizon.{k}"), *x)?;
    }
    unit_open("validation.dm_alpha", v.dm_alpha)?;
    Ok(())
}

fn check_deploy(d: &DeploySettings) -> Result<(), String> {
    if d.backups_to_keep == 0 {
        return Err("deploy.backups_to_keep must be >= 1".into());
    }
    if d.probation_days < 0 {
        return Err("deploy.probation_days must be >= 0".into());
    }
    positive(
        "deploy.probation_max_degradation_pct",
        d.probation_max_degradation_pct,
    )?;
    let r = d.probation_max_relative_degradation_pct;
    if !(r.is_finite() && r >= 0.0) {
        return Err(format!(
            "deploy.probation_max_relative_degradation_pct = {r} must be a number >= 0"
        ));
    }
    if d.probation_min_origins == 0 {
        return Err("deploy.probation_min_origins must be >= 1".into());
    }
    if d.trial_days < 1 {
        return Err(format!("deploy.trial_days = {} must be >= 1", d.trial_days));
    }
    let t = d.trial_min_improvement_pct;
    if !(t.is_finite() && (0.0..100.0).contains(&t)) {
        return Err(format!(
            "deploy.trial_min_improvement_pct = {t} must be a number in [0, 100)"
        ));
    }
    Ok(())
}

/// Settings from a merged table: deserialized (unknown keys refused) and range-checked. The
/// error names the key, without saying where the value came from.
fn from_table(table: toml::Table) -> Result<Settings, String> {
    let settings = Settings::deserialize(toml::Value::Table(table)).map_err(|e| {
        format!(
            "{}; see the commented defaults in configs/optimizer.toml",
            one_line(&e.to_string())
        )
    })?;
    settings.validate()?;
    Ok(settings)
}

/// Whether the variable `name` is a settings override (`MODEL_OPTIMIZER_<SECTION>_<KEY>`).
fn is_setting_var(name: &str) -> bool {
    name.strip_prefix(ENV_PREFIX)
        .is_some_and(|rest| !ENV_NOT_SETTINGS.contains(&rest))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn positive(key: &str, x: f64) -> Result<(), String> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(format!("{key} = {x} must be a positive number"))
    }
}

fn unit_open(key: &str, x: f64) -> Result<(), String> {
    if x > 0.0 && x < 1.0 {
        Ok(())
    } else {
        Err(format!("{key} = {x} must be in (0, 1)"))
    }
}

fn context_list(key: &str, v: &[usize]) -> Result<(), String> {
    list(key, v, |c| domain::check_context_length(*c))
}

/// A non-empty list whose every value passes the parameter's one range check.
fn list<T>(key: &str, v: &[T], check: impl Fn(&T) -> Result<(), String>) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{key} must be a non-empty list"));
    }
    v.iter()
        .try_for_each(|x| check(x).map_err(|e| format!("{key}: {e}")))
}

/// `MODEL_OPTIMIZER_*` variables that are not settings overrides: the SMTP password, the log
/// filter, `--root`, the test fixtures directory, the crash-test failpoint and the model
/// kernels' instruction-set override.
const ENV_NOT_SETTINGS: [&str; 6] = ["SMTP_PASSWORD", "LOG", "ROOT", "SHARED", "FAILPOINT", "SIMD"];

/// Applies `MODEL_OPTIMIZER_<SECTION>_<KEY>=value` overrides. Values are parsed as TOML
/// values when they can be (`7`, `0.5`, `true`, `[90, 180]`), else taken as strings.
/// Nested tables use `__`: `MODEL_OPTIMIZER_SEARCH_CONTEXT_LENGTHS__7D=[90,180]`.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<()> {
    const SECTIONS: [&str; 9] = [
        "paths",
        "model",
        "triggers",
        "search",
        "validation",
        "deploy",
        "git",
        "smtp",
        "monitoring",
    ];
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_NOT_SETTINGS.contains(&rest) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| lower.starts_with(&format!("{s}_"))) else {
            return Err(invalid(format!(
                "environment variable {name}: unknown setting (expected {ENV_PREFIX}<SECTION>_<KEY> with a section of {})",
                SECTIONS.join(", ")
            )));
        };
        let key_path: Vec<String> = lower[section.len() + 1..]
            .split("__")
            .map(str::to_string)
            .collect();
        let value = parse_env_value(&raw);
        let sect = table
            .entry((*section).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let mut cursor = sect;
        for (i, k) in key_path.iter().enumerate() {
            let toml::Value::Table(t) = cursor else {
                return Err(invalid(format!(
                    "environment variable {name}: {section} is not a table"
                )));
            };
            if i + 1 == key_path.len() {
                t.insert(k.clone(), value.clone());
                break;
            }
            cursor = t
                .entry(k.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_file_states_the_built_in_defaults() {
        let text = include_str!("../configs/optimizer.toml");
        let table: toml::Table = text.parse().unwrap();
        let file = Settings::deserialize(toml::Value::Table(table)).unwrap();
        assert_eq!(file, Settings::default());
    }

    #[test]
    fn env_overrides_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("optimizer.toml");
        std::fs::write(&p, "[triggers]\ncooldown_days = 3\ntime_days = 10\n").unwrap();
        let s = Settings::load(
            &p,
            vec![("MODEL_OPTIMIZER_TRIGGERS_TIME_DAYS".into(), "21".into())],
        )
        .unwrap();
        assert_eq!(s.triggers.cooldown_days, 3);
        assert_eq!(s.triggers.time_days, 21);
        let s = Settings::load(
            &p,
            vec![(
                "MODEL_OPTIMIZER_SEARCH_CONTEXT_LENGTHS__7D".into(),
                "[60, 120]".into(),
            )],
        )
        .unwrap();
        assert_eq!(s.search.context_lengths[&Horizon(7)], vec![60, 120]);

        std::fs::write(&p, "[triggers]\ncooldown_dayz = 3\n").unwrap();
        let e = format!("{:#}", Settings::load(&p, vec![]).unwrap_err());
        assert!(e.contains("cooldown_dayz"), "{e}");
        std::fs::write(&p, "[triggers]\ndrift_alpha = 2.0\n").unwrap();
        let e = format!("{:#}", Settings::load(&p, vec![]).unwrap_err());
        assert!(e.contains("triggers.drift_alpha"), "{e}");
        let e = format!(
            "{:#}",
            Settings::load(&p, vec![("MODEL_OPTIMIZER_NOPE_X".into(), "1".into())]).unwrap_err()
        );
        assert!(e.contains("MODEL_OPTIMIZER_NOPE_X"), "{e}");
    }

    #[test]
    fn alarm_settings_are_range_checked() {
        let check = |f: &dyn Fn(&mut TriggerSettings)| {
            let mut s = Settings::default();
            f(&mut s.triggers);
            s.validate()
        };
        assert!(check(&|_| {}).is_ok());
        let e = check(&|t| t.drift_hold_days = 21).unwrap_err();
        assert!(e.contains("triggers.drift_hold_days = 21"), "{e}");
        let e = check(&|t| t.drift_volatility_k = -1.0).unwrap_err();
        assert!(e.contains("triggers.drift_volatility_k"), "{e}");
        let e = check(&|t| t.drift_level_threshold = 0.0).unwrap_err();
        assert!(e.contains("triggers.drift_level_threshold"), "{e}");
        let e = check(&|t| t.performance_alpha = 1.0).unwrap_err();
        assert!(e.contains("triggers.performance_alpha"), "{e}");
        let e = check(&|t| t.drift_baseline_window = 10).unwrap_err();
        assert!(e.contains("triggers.drift_baseline_window"), "{e}");
    }

    #[test]
    fn a_bad_value_is_blamed_on_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("optimizer.toml");
        std::fs::write(&p, "[triggers]\ncooldown_days = 3\n").unwrap();
        let var = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        // A value set by a variable names the variable, not the file.
        let e = format!(
            "{:#}",
            Settings::load(&p, var("MODEL_OPTIMIZER_TRIGGERS_DRIFT_ALPHA", "2.0")).unwrap_err()
        );
        assert!(
            e.starts_with("environment variable MODEL_OPTIMIZER_TRIGGERS_DRIFT_ALPHA: triggers.drift_alpha")
                && !e.contains(&p.display().to_string()),
            "{e}"
        );
        let e = format!(
            "{:#}",
            Settings::load(&p, var("MODEL_OPTIMIZER_TRIGGERS_TIME_DAYS", "\"soon\"")).unwrap_err()
        );
        assert!(
            e.starts_with("environment variable MODEL_OPTIMIZER_TRIGGERS_TIME_DAYS"),
            "{e}"
        );
        // A bad value in the file names the file even with unrelated variables set.
        std::fs::write(&p, "[triggers]\ndrift_alpha = 2.0\n").unwrap();
        let e = format!(
            "{:#}",
            Settings::load(&p, var("MODEL_OPTIMIZER_TRIGGERS_TIME_DAYS", "21")).unwrap_err()
        );
        assert!(
            e.starts_with(&format!("{}: triggers.drift_alpha", p.display())),
            "{e}"
        );
        // A variable that fixes the file's bad value is fine.
        Settings::load(&p, var("MODEL_OPTIMIZER_TRIGGERS_DRIFT_ALPHA", "0.01")).unwrap();
    }

    #[test]
    fn a_login_without_tls_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("optimizer.toml");
        let base = "[smtp]\nenabled = true\nto = [\"ops@example.com\"]\nuser = \"mailer\"\n";
        std::fs::write(&p, base).unwrap();
        let e = format!("{:#}", Settings::load(&p, vec![]).unwrap_err());
        assert!(
            e.contains("smtp.allow_plaintext_auth") && e.contains("unencrypted"),
            "{e}"
        );
        std::fs::write(&p, format!("{base}allow_plaintext_auth = true\n")).unwrap();
        Settings::load(&p, vec![]).unwrap();
        std::fs::write(&p, format!("{base}tls = \"starttls\"\n")).unwrap();
        Settings::load(&p, vec![]).unwrap();
    }
}

//! Metrics for monitoring: `paths.metrics` in the Prometheus text exposition format (the
//! convention of node_exporter's textfile collector for batch jobs), rewritten atomically after
//! every `run`, `rollback` and `status --check`. What one command learns and the next cannot
//! see again (the last run's times and exit code, a horizon's last evaluation and alarms) is
//! kept in `monitoring.json` beside the history file; the rest is read from the configs and
//! the history each time. A dry run writes neither.
//!
//! Names carry their unit (`_seconds`, `_ratio`, `_clp`, `_total`); labels are only `horizon`
//! and `action`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Horizon, InferenceParams};
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::Context;
use crate::history::{self, Action, HistoryRecord};
use crate::policy::health::Health;
use crate::policy::outcome::HorizonResult;
use crate::policy::validate::Comparison;
use crate::triggers::TriggerReport;

/// What a command tells the metrics.
pub enum Event<'a> {
    /// A real (not dry) run: its wall-clock start and end, exit code and per-horizon results.
    Run {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        exit_code: ExitCode,
        results: &'a [HorizonResult],
    },
    /// An operator's rollback (the restored config is read from disk).
    Rollback,
    /// `status --check`: fresh trigger reports, and the health of each config judged.
    Check {
        triggers: &'a [TriggerReport],
        health: &'a [(InferenceParams, Health)],
    },
}

/// Kept between commands in `monitoring.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub last_run: Option<RunFacts>,
    /// End of the last run that exited 0.
    pub last_success: Option<DateTime<Utc>>,
    /// By horizon label.
    pub horizons: BTreeMap<String, HorizonState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub exit_code: i32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HorizonState {
    pub evaluation: Option<Evaluation>,
    pub alarms: Option<Alarms>,
}

/// A config's scores on its last evaluation (validation's confirmation origins).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The config evaluated: it applies while these are the deployed parameters.
    pub params: InferenceParams,
    pub rmse: Option<f64>,
    pub coverage_95: Option<f64>,
    pub bias: Option<f64>,
    pub rmse_random_walk_ratio: Option<f64>,
    /// The health verdict (see `policy::health`) when it was judged: it includes the
    /// random-walk test the figures above cannot show.
    #[serde(default)]
    pub attention: Option<bool>,
}

/// Whether each alarm fired (a fired alarm that the cooldown suppressed still fired).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarms {
    pub performance: bool,
    pub drift: bool,
    pub time: bool,
}

impl Alarms {
    pub fn of(t: &TriggerReport) -> Alarms {
        Alarms {
            performance: t.performance.fired,
            drift: t.drift.fired,
            time: t.time.fired,
        }
    }
}

/// Everything the file says, as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposition {
    pub last_run: Option<RunFacts>,
    pub last_success: Option<DateTime<Utc>>,
    /// From history: the dead-man check's last completed weekly run.
    pub last_completed_run: Option<DateTime<Utc>>,
    pub max_run_age_days: f64,
    pub horizons: Vec<HorizonGauges>,
}

/// One horizon's values.
#[derive(Clone, Debug, PartialEq)]
pub struct HorizonGauges {
    pub horizon: String,
    /// The action of the horizon's newest history row.
    pub action: Option<Action>,
    /// The config's last evaluation fails an absolute criterion (CI95 coverage, bias).
    pub attention: Option<bool>,
    pub evaluation: Option<Evaluation>,
    pub config_timestamp: DateTime<Utc>,
    pub config_age_seconds: f64,
    pub alarms: Option<Alarms>,
    pub deploys: usize,
    pub rollbacks: usize,
}

/// Unix time in seconds, to the millisecond.
fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// A sample value as the text format spells it.
fn value(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{x}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family: HELP, TYPE and its samples (`labels` already rendered, may be empty).
/// A counter's samples, HELP and TYPE lines all carry the `_total` name (text format 0.0.4).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    if samples.is_empty() {
        return;
    }
    let name = if kind == "counter" {
        format!("{name}_total")
    } else {
        name.to_string()
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, x) in samples {
        let _ = writeln!(out, "{name}{labels} {}", value(*x));
    }
}

fn horizon_label(h: &HorizonGauges) -> String {
    format!("{{horizon=\"{}\"}}", escape(&h.horizon))
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The file's text.
pub fn render(e: &Exposition) -> String {
    let mut out = String::new();
    let one = |x: Option<f64>| x.map(|v| vec![(String::new(), v)]).unwrap_or_default();
    let run = e.last_run.as_ref();
    let m = "model_optimizer_";
    family(
        &mut out,
        &format!("{m}last_run_start_timestamp_seconds"),
        "gauge",
        "Start of the last run (Unix time).",
        &one(run.map(|r| unix(r.start))),
    );
    family(
        &mut out,
        &format!("{m}last_run_end_timestamp_seconds"),
        "gauge",
        "End of the last run (Unix time).",
        &one(run.map(|r| unix(r.end))),
    );
    family(
        &mut out,
        &format!("{m}last_run_duration_seconds"),
        "gauge",
        "Wall-clock duration of the last run.",
        &one(run.map(|r| (r.end - r.start).num_milliseconds() as f64 / 1000.0)),
    );
    family(
        &mut out,
        &format!("{m}last_run_exit_code"),
        "gauge",
        "Exit code of the last run (0 success; see README's exit codes).",
        &one(run.map(|r| f64::from(r.exit_code))),
    );
    family(
        &mut out,
        &format!("{m}last_success_timestamp_seconds"),
        "gauge",
        "End of the last run that exited 0 (Unix time).",
        &one(e.last_success.map(unix)),
    );
    family(
        &mut out,
        &format!("{m}last_completed_run_timestamp_seconds"),
        "gauge",
        "Time of the last weekly run that completed a decision, from history (Unix time).",
        &one(e.last_completed_run.map(unix)),
    );
    family(
        &mut out,
        &format!("{m}max_run_age_seconds"),
        "gauge",
        "monitoring.max_run_age_days in seconds: status --check exits 5 past it.",
        &one(Some(e.max_run_age_days * 86_400.0)),
    );
    horizon_families(&mut out, &e.horizons);
    out
}

/// A per-horizon value: None leaves the horizon's sample out.
type Gauge = fn(&HorizonGauges) -> Option<f64>;

/// The per-horizon families: name (after the prefix), type, help, value.
fn per_horizon() -> [(&'static str, &'static str, &'static str, Gauge); 11] {
    [
        (
            "horizon_attention",
            "gauge",
            "1 when the current config needs attention: its last evaluation fails CI95 coverage or |bias|, or the random walk is significantly better.",
            |h| h.attention.map(flag),
        ),
        (
            "config_rmse_clp",
            "gauge",
            "RMSE of the current config on its last evaluation (CLP).",
            |h| h.evaluation.and_then(|e| e.rmse),
        ),
        (
            "config_coverage_95_ratio",
            "gauge",
            "CI95 coverage of the current config on its last evaluation (0 to 1).",
            |h| h.evaluation.and_then(|e| e.coverage_95),
        ),
        (
            "config_rmse_random_walk_ratio",
            "gauge",
            "RMSE of the current config over the random walk's on its last validation (below 1 beats it).",
            |h| h.evaluation.and_then(|e| e.rmse_random_walk_ratio),
        ),
        (
            "config_timestamp_seconds",
            "gauge",
            "The current config's timestamp field (Unix time).",
            |h| Some(unix(h.config_timestamp)),
        ),
        (
            "config_age_seconds",
            "gauge",
            "Age of the current config when this file was written.",
            |h| Some(h.config_age_seconds),
        ),
        (
            "performance_alarm",
            "gauge",
            "1 when the performance trigger fired at the last evaluation of the triggers.",
            |h| h.alarms.map(|a| flag(a.performance)),
        ),
        (
            "drift_alarm",
            "gauge",
            "1 when the drift trigger fired at the last evaluation of the triggers.",
            |h| h.alarms.map(|a| flag(a.drift)),
        ),
        (
            "time_alarm",
            "gauge",
            "1 when the time trigger fired at the last evaluation of the triggers.",
            |h| h.alarms.map(|a| flag(a.time)),
        ),
        ("deploys", "counter", "Deploys recorded in history.", |h| {
            Some(h.deploys as f64)
        }),
        (
            "rollbacks",
            "counter",
            "Rollbacks (probation and operator) recorded in history.",
            |h| Some(h.rollbacks as f64),
        ),
    ]
}

/// The per-horizon families: the action (labelled) and the values of [`per_horizon`].
fn horizon_families(out: &mut String, hs: &[HorizonGauges]) {
    let actions: Vec<(String, f64)> = hs
        .iter()
        .filter_map(|h| {
            h.action.map(|a| {
                let labels = format!("{{horizon=\"{}\",action=\"{}\"}}", escape(&h.horizon), a.as_str());
                (labels, 1.0)
            })
        })
        .collect();
    family(
        out,
        "model_optimizer_horizon_action",
        "gauge",
        "1 for the action of the horizon's newest history row.",
        &actions,
    );
    for (name, kind, help, gauge) in per_horizon() {
        let samples: Vec<(String, f64)> = hs
            .iter()
            .filter_map(|h| gauge(h).map(|x| (horizon_label(h), x)))
            .collect();
        family(out, &format!("model_optimizer_{name}"), kind, help, &samples);
    }
}

/// The evaluation a config file itself carries (from the validation that deployed it).
fn file_evaluation(cfg: &ForecasterConfig) -> Evaluation {
    Evaluation {
        params: cfg.params(),
        rmse: cfg.validation_rmse,
        coverage_95: cfg.validation_coverage_95,
        bias: cfg.validation_bias,
        rmse_random_walk_ratio: None,
        attention: None,
    }
}

/// The evaluation of the deployed config in a run's result: the candidate if it is now in
/// place, else the current config.
fn run_evaluation(r: &HorizonResult, deployed: InferenceParams) -> Option<Evaluation> {
    let v = r.validation.as_ref()?;
    let (e, ratio) = if v.candidate.params == deployed {
        (&v.candidate, v.random_walk.candidate_rmse_ratio)
    } else if v.current.params == deployed {
        (&v.current, v.random_walk.current_rmse_ratio)
    } else {
        return None;
    };
    Some(Evaluation {
        params: deployed,
        rmse: Some(e.metrics.rmse),
        coverage_95: Some(e.metrics.coverage_95),
        bias: Some(e.metrics.bias),
        rmse_random_walk_ratio: Some(ratio),
        attention: None,
    })
}

/// The evaluation of config `params` from its health.
fn health_evaluation(params: InferenceParams, h: &Health) -> Evaluation {
    Evaluation {
        params,
        rmse: Some(h.rmse),
        coverage_95: Some(h.coverage_95),
        bias: Some(h.bias),
        rmse_random_walk_ratio: Some(h.rw_rmse_ratio),
        attention: Some(h.needs_attention()),
    }
}

/// Applies what a command learned to the kept state.
fn update(state: &mut State, event: &Event<'_>, configs: &BTreeMap<Horizon, ForecasterConfig>) {
    match event {
        Event::Run {
            start,
            end,
            exit_code,
            results,
        } => {
            // To the millisecond, as the file writes them, so the duration is their difference.
            state.last_run = Some(RunFacts {
                start: start.trunc_subsecs(3),
                end: end.trunc_subsecs(3),
                exit_code: exit_code.code(),
            });
            if *exit_code == ExitCode::Success {
                state.last_success = Some(end.trunc_subsecs(3));
            }
            for r in *results {
                let slot = state.horizons.entry(r.horizon.label()).or_default();
                if let Some(t) = &r.triggers {
                    slot.alarms = Some(Alarms::of(t));
                }
                let deployed = configs.get(&r.horizon).map(ForecasterConfig::params);
                if let Some(e) = deployed.and_then(|p| run_evaluation(r, p)) {
                    slot.evaluation = Some(e);
                }
                // The health judged the config in effect before the run: it still applies
                // when that config is still deployed.
                if let (Some(h), Some(cur)) = (&r.health, r.current) {
                    if deployed == Some(cur) {
                        slot.evaluation = Some(health_evaluation(cur, h));
                    }
                }
            }
        }
        Event::Rollback => {}
        Event::Check { triggers, health } => {
            for t in *triggers {
                state.horizons.entry(t.horizon.label()).or_default().alarms = Some(Alarms::of(t));
            }
            for (params, h) in *health {
                state.horizons.entry(h.horizon.label()).or_default().evaluation =
                    Some(health_evaluation(*params, h));
            }
        }
    }
}

/// Inputs of [`exposition`] besides the state.
pub struct Sources<'a> {
    pub configs: &'a BTreeMap<Horizon, ForecasterConfig>,
    pub records: &'a [HistoryRecord],
    pub validation: &'a crate::config::ValidationSettings,
    pub max_run_age_days: f64,
    pub now: DateTime<Utc>,
}

/// The file's values from the kept state, the configs on disk and history.
pub fn exposition(state: &State, src: &Sources<'_>) -> Exposition {
    let horizons = src
        .configs
        .iter()
        .map(|(h, cfg)| {
            let label = &h.label();
            let kept = state.horizons.get(label);
            let evaluation = kept
                .and_then(|k| k.evaluation)
                .filter(|e| e.params == cfg.params())
                .unwrap_or_else(|| file_evaluation(cfg));
            let attention = match (evaluation.coverage_95, evaluation.bias) {
                _ if evaluation.attention.is_some() => evaluation.attention,
                (Some(c), Some(b)) => Some(
                    !(Comparison::AtLeast.holds(c, src.validation.min_coverage_95)
                        && Comparison::Below.holds(b.abs(), src.validation.max_abs_bias_for(cfg.horizon))),
                ),
                _ => None,
            };
            let count = |a: Action| {
                src.records
                    .iter()
                    .filter(|r| r.horizon == cfg.horizon && r.action == a)
                    .count()
            };
            HorizonGauges {
                horizon: label.clone(),
                action: history::last_record(src.records, cfg.horizon).map(|r| r.action),
                attention,
                evaluation: Some(evaluation),
                config_timestamp: cfg.timestamp,
                config_age_seconds: (src.now - cfg.timestamp).num_milliseconds() as f64 / 1000.0,
                alarms: kept.and_then(|k| k.alarms),
                deploys: count(Action::Deployed),
                rollbacks: count(Action::RolledBack),
            }
        })
        .collect();
    Exposition {
        last_run: state.last_run,
        last_success: state.last_success,
        last_completed_run: crate::deadman::last_completed_run(src.records, src.now)
            .map(|r| r.optimization_date),
        max_run_age_days: src.max_run_age_days,
        horizons,
    }
}

/// Temp files a killed metrics write left beside `paths.metrics`: only that file's own
/// (`.<name>.<pid>.tmp`), since the directory may be shared with other jobs' metrics.
pub fn stray_temps(ctx: &Context) -> Vec<PathBuf> {
    if ctx.settings.paths.metrics.as_os_str().is_empty() {
        return Vec::new();
    }
    let path = ctx.path(&ctx.settings.paths.metrics);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(&prefix) && crate::atomic::is_temp_name(&n)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes [`stray_temps`]; returns what it removed.
pub fn sweep_stray_temps(ctx: &Context) -> anyhow::Result<Vec<PathBuf>> {
    let found = stray_temps(ctx);
    for p in &found {
        std::fs::remove_file(p).map_err(|e| anyhow::anyhow!("{}: cannot remove: {e}", p.display()))?;
    }
    Ok(found)
}

/// Where the kept state lives: beside the history file.
fn state_path(ctx: &Context) -> PathBuf {
    ctx.history_path().with_file_name("monitoring.json")
}

fn read_state(path: &Path) -> State {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: unreadable ({e}); starting the monitoring state afresh",
                path.display()
            );
            State::default()
        }),
        Err(_) => State::default(),
    }
}

/// Updates the state and rewrites the metrics file; off when `paths.metrics` is empty, and
/// skipped (with a warning) for a user who does not own the root. A failure is logged and
/// changes nothing else (monitoring sees the file's age).
pub fn publish(ctx: &Context, event: &Event<'_>) {
    if ctx.settings.paths.metrics.as_os_str().is_empty() {
        return;
    }
    // Files of another user would block the owner's next write.
    if let Err(e) = crate::deploy::lock::require_owner(&ctx.root) {
        tracing::warn!("metrics not written: {e:#}");
        return;
    }
    if let Err(e) = try_publish(ctx, event) {
        tracing::error!("metrics not written: {e:#}");
    }
}

fn try_publish(ctx: &Context, event: &Event<'_>) -> anyhow::Result<()> {
    let configs: BTreeMap<Horizon, ForecasterConfig> = ctx
        .configured_horizons()?
        .into_iter()
        .filter_map(|h: Horizon| {
            ForecasterConfig::read(&h.config_path(&ctx.configs_dir()))
                .ok()
                .map(|c| (h, c))
        })
        .collect();
    let records = crate::data::history::read(&ctx.history_path())?;
    let state_file = state_path(ctx);
    let mut state = read_state(&state_file);
    update(&mut state, event, &configs);
    let e = exposition(
        &state,
        &Sources {
            configs: &configs,
            records: &records,
            validation: &ctx.settings.validation,
            max_run_age_days: ctx.settings.monitoring.max_run_age_days,
            now: Utc::now(),
        },
    );
    crate::atomic::write_atomic_file(&state_file, &serde_json::to_vec_pretty(&state)?, None)?;
    let path = ctx.path(&ctx.settings.paths.metrics);
    crate::atomic::write_atomic_file(&path, render(&e).as_bytes(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_text_has_help_type_units_and_escaped_labels() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 5, 0, 0).unwrap();
        let e = Exposition {
            last_run: Some(RunFacts {
                start: t,
                end: t + chrono::Duration::milliseconds(61_500),
                exit_code: 4,
            }),
            last_success: None,
            last_completed_run: Some(t),
            max_run_age_days: 8.0,
            horizons: vec![HorizonGauges {
                horizon: "7\"d".into(),
                action: Some(Action::Deployed),
                attention: Some(true),
                evaluation: None,
                config_timestamp: t,
                config_age_seconds: 1.5,
                alarms: Some(Alarms {
                    performance: true,
                    drift: false,
                    time: false,
                }),
                deploys: 2,
                rollbacks: 0,
            }],
        };
        let text = render(&e);
        assert!(text.contains("# TYPE model_optimizer_last_run_duration_seconds gauge\nmodel_optimizer_last_run_duration_seconds 61.5\n"), "{text}");
        assert!(text.contains("model_optimizer_last_run_exit_code 4\n"), "{text}");
        assert!(!text.contains("last_success"), "no sample, no family: {text}");
        assert!(
            text.contains("model_optimizer_horizon_action{horizon=\"7\\\"d\",action=\"deployed\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE model_optimizer_deploys_total counter\nmodel_optimizer_deploys_total{horizon=\"7\\\"d\"} 2\n"), "{text}");
        assert!(
            text.contains("model_optimizer_max_run_age_seconds 691200\n"),
            "{text}"
        );
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
    }
}

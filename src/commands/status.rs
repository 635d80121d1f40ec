//! `status`: per horizon, the deployed parameters and their metrics, config age, the last
//! optimization and its action, backups and the last commit; `--check` adds the triggers.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::Context;
use crate::history::{self, Action, HistoryRecord};
use crate::output::{self, num, opt, Render};
use crate::policy::health::Health;
use crate::triggers::TriggerReport;

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub root: String,
    pub now: DateTime<Utc>,
    pub model: String,
    pub series: SeriesInfo,
    /// What was cleaned up after a crashed run (or why not).
    pub recovery: Vec<String>,
    pub horizons: Vec<HorizonStatus>,
    /// `--check`: the trigger report of every horizon.
    pub triggers: Option<Vec<TriggerReport>>,
    /// `--check`: what a run would do next, per horizon.
    pub next: Option<Vec<CheckRow>>,
    /// The dead-man check: the age of the last completed weekly run.
    pub last_completed_run: crate::deadman::RunAge,
    /// `--wide`: every column (text only).
    #[serde(skip)]
    pub wide: bool,
}

#[derive(Debug, Serialize)]
pub struct SeriesInfo {
    pub file: String,
    pub rows: usize,
    pub first: Option<chrono::NaiveDate>,
    pub last: Option<chrono::NaiveDate>,
    pub missing: usize,
    pub rows_needed: usize,
}

#[derive(Debug, Serialize)]
pub struct HorizonStatus {
    pub horizon: Horizon,
    pub config_file: String,
    pub config: ForecasterConfig,
    pub config_age_days: i64,
    pub last_optimization: Option<LastRun>,
    pub last_action: Option<LastRun>,
    pub days_since_last_optimization: Option<i64>,
    pub never_optimized: bool,
    pub backups: usize,
    pub last_commit: Option<crate::deploy::git::CommitInfo>,
    /// Whether the config needed attention at its last judged run (None: never judged).
    pub attention: Option<bool>,
}

impl HorizonStatus {
    /// `ok`, `attention` or `-`, as the last judged run recorded.
    fn attention_label(&self) -> &'static str {
        match self.attention {
            Some(true) => "attention",
            Some(false) => "ok",
            None => "-",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub date: DateTime<Utc>,
    pub action: Action,
    pub message: String,
}

impl From<&HistoryRecord> for LastRun {
    fn from(r: &HistoryRecord) -> Self {
        LastRun {
            run_id: r.run_id.clone(),
            date: r.optimization_date,
            action: r.action,
            message: r.message.clone(),
        }
    }
}

impl Render for StatusReport {
    fn render(&self) -> String {
        let width = output::width();
        let mut lines = vec![
            format!(
                "root {}   model {}   now {}",
                self.root,
                self.model,
                self.now.format("%Y-%m-%d %H:%M UTC")
            ),
            format!(
                "series {}: {} rows, {} to {}, {} missing (needs {})",
                self.series.file,
                self.series.rows,
                opt(self.series.first),
                opt(self.series.last),
                self.series.missing,
                self.series.rows_needed,
            ),
        ];
        lines.extend(self.recovery.iter().map(|r| format!("recovery: {r}")));
        lines.push(self.last_completed_run.summary());
        let mut s = if self.wide {
            lines
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<Vec<_>>()
                .concat()
        } else {
            output::wrap_lines(&lines, width, "    ")
        };

        if self.wide {
            s.push_str(&horizons_table(&self.horizons));
        } else {
            s.push_str(&compact_table(&self.horizons, self.next.as_deref(), width));
        }
        s.push('\n');
        match (&self.triggers, self.wide) {
            (Some(reports), true) => {
                s.push_str(&triggers_table(reports));
                s.push('\n');
                for r in self.next.iter().flatten() {
                    s.push_str(&format!("{}: next run: {} ({})\n", r.horizon, r.next, r.note));
                }
            }
            (Some(reports), false) => s.push_str(&dashboard(self, reports, width)),
            (None, _) => {}
        }
        s
    }
}

/// The default horizons table: what fits 100 columns (config age, backups and the last
/// commit are in `--wide`).
fn compact_table(horizons: &[HorizonStatus], next: Option<&[CheckRow]>, width: usize) -> String {
    let rows = horizons.iter().map(|h| {
        let c = &h.config;
        let health = next
            .and_then(|n| n.iter().find(|r| r.horizon == h.horizon))
            .and_then(|r| r.health.as_ref())
            .map_or_else(|| h.attention_label().to_string(), |x| x.label().to_string());
        vec![
            h.horizon.label(),
            format!("{}/{}/{:.2}", c.context_length, c.num_samples, c.temperature),
            num(c.validation_rmse, 2),
            num(c.validation_coverage_95, 2),
            h.last_action.as_ref().map_or_else(
                || "never optimized".to_string(),
                |l| format!("{} {}", l.date.format("%Y-%m-%d"), l.action.as_str()),
            ),
            opt(h.days_since_last_optimization),
            health,
        ]
    });
    output::table_fitted(
        &[
            "horizon",
            "params",
            "RMSE",
            "cov95",
            "last run",
            "since opt",
            "health",
        ],
        rows,
        width,
    )
}

/// `status --check`'s dashboard: per horizon what the next run would do, each health check
/// with its threshold and a pass/fail mark, the triggers, the last run and when the next
/// scheduled optimization is due.
fn dashboard(report: &StatusReport, triggers: &[TriggerReport], width: usize) -> String {
    let mut lines = Vec::new();
    for t in triggers {
        let h = t.horizon;
        let row = report.next.iter().flatten().find(|r| r.horizon == h);
        let status = report.horizons.iter().find(|s| s.horizon == h);
        lines.push(String::new());
        match row {
            Some(r) => lines.push(format!("{h}: next run: {} ({})", r.next, r.note)),
            None => lines.push(format!("{h}:")),
        }
        match row.and_then(|r| r.health.as_ref()) {
            Some(x) => {
                lines.push(format!("  health: {}", x.label()));
                for c in &x.checks {
                    let mark = if c.passed { "[pass]" } else { "[FAIL]" };
                    lines.push(format!(
                        "    {mark} {} {:.3} (needs {} {})",
                        c.name(),
                        c.value,
                        c.comparison.symbol(),
                        c.threshold
                    ));
                }
                lines.push(format!("    {}", x.figures()));
            }
            None => lines.push("  health: not judged (the model could not be loaded)".to_string()),
        }
        lines.push(format!("  triggers: {}", trigger_states(t)));
        let last = status.and_then(|s| s.last_action.as_ref()).map_or_else(
            || "never".to_string(),
            |l| format!("{} {}", l.date.format("%Y-%m-%d %H:%M"), l.action.as_str()),
        );
        let due = row
            .and_then(|r| r.next_due)
            .map_or_else(|| "now (never optimized)".to_string(), |d| d.to_string());
        lines.push(format!("  last run: {last}; next scheduled optimization: {due}"));
    }
    output::wrap_lines(&lines, width, "      ")
}

/// `performance no (...), drift no (CUSUM 2.1/7), scheduled no (5 of 14 days)`.
fn trigger_states(t: &TriggerReport) -> String {
    let yes = |b: bool| if b { "FIRED" } else { "no" };
    let perf = match (t.performance.degradation_pct, t.performance.pvalue) {
        (Some(d), Some(p)) => format!("degradation {d:.1} %, p {p:.3}"),
        (Some(d), None) => format!("degradation {d:.1} %"),
        _ => "not measured".to_string(),
    };
    let drift = match (t.drift.statistic, t.drift.threshold) {
        (Some(s), Some(h)) => format!("CUSUM {s:.1}/{h}"),
        _ => "not measured".to_string(),
    };
    let days = t.time.days_since.map_or_else(
        || "never optimized".to_string(),
        |d| format!("{d} of {} days", t.time.threshold_days),
    );
    let mut s = format!(
        "performance {} ({perf}), drift {} ({drift}), scheduled {} ({days})",
        yes(t.performance.fired),
        yes(t.drift.fired),
        if t.scheduled { "due" } else { "no" },
    );
    if t.cooldown.active {
        s.push_str(", cooldown active");
    }
    s
}

fn horizons_table(horizons: &[HorizonStatus]) -> String {
    let rows = horizons.iter().map(|h| {
        let c = &h.config;
        vec![
            h.horizon.label(),
            c.context_length.to_string(),
            c.num_samples.to_string(),
            format!("{:.2}", c.temperature),
            num(c.validation_rmse, 3),
            num(c.validation_mape, 3),
            num(c.validation_coverage_95, 3),
            format!("{}d", h.config_age_days),
            h.last_action.as_ref().map_or_else(
                || "never optimized".to_string(),
                |l| format!("{} {}", l.date.format("%Y-%m-%d"), l.action.as_str()),
            ),
            opt(h.days_since_last_optimization),
            h.backups.to_string(),
            h.last_commit.as_ref().map_or_else(
                || "-".to_string(),
                |c| format!("{} {}", c.id, short(&c.summary, 40)),
            ),
        ]
    });
    output::table(
        &[
            "horizon",
            "context",
            "samples",
            "temp",
            "val RMSE",
            "val MAPE %",
            "val cov95",
            "config age",
            "last run",
            "days since opt",
            "backups",
            "last commit",
        ],
        rows,
    )
}

fn triggers_table(reports: &[TriggerReport]) -> String {
    let rows = reports.iter().map(|t| {
        vec![
            t.horizon.label(),
            if t.should_optimize { "yes" } else { "no" }.to_string(),
            if t.alarms.is_empty() {
                "-".to_string()
            } else {
                format!("{} {}", crate::domain::TriggerKind::join(&t.alarms), t.severity)
            },
            num(t.performance.degradation_pct, 1),
            num(t.performance.pvalue, 3),
            t.performance
                .source
                .map_or_else(|| "-".to_string(), |x| x.as_str().to_string()),
            match (t.drift.statistic, t.drift.threshold) {
                (Some(s), Some(h)) => format!("{s:.1}/{h}"),
                _ => "-".to_string(),
            },
            if t.scheduled { "due" } else { "-" }.to_string(),
            opt(t.time.days_since),
            if t.reasons.is_empty() {
                "-".to_string()
            } else {
                t.reasons.join("; ")
            },
        ]
    });
    output::table(
        &[
            "horizon",
            "optimize",
            "alarm",
            "perf. degr. %",
            "perf. p",
            "source",
            "drift CUSUM",
            "scheduled",
            "days since",
            "reasons",
        ],
        rows,
    )
}

pub fn run(ctx: &Context, check_triggers: bool, wide: bool) -> anyhow::Result<ExitCode> {
    let horizons = ctx.configured_horizons()?;
    let configs = horizons
        .iter()
        .map(|&h| super::read_config(ctx, h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let configs_for_check = configs.clone();
    let series = super::load_series(ctx)?;
    let rows_needed = configs
        .iter()
        .map(|c| crate::policy::decide::rows_needed(&ctx.settings, c))
        .max()
        .unwrap_or(0);
    crate::data::require_len(
        &series,
        rows_needed,
        &ctx.series_path(),
        "the largest context plus the validation window and the horizon, over every horizon",
    )?;
    let series_info = SeriesInfo {
        file: ctx.shown(&ctx.series_path()),
        rows: series.len(),
        first: series.dates.first().copied(),
        last: series.last_date(),
        missing: series.missing(),
        rows_needed,
    };
    let records = crate::data::history::read(&ctx.history_path())?;
    let configs_dir = ctx.configs_dir();
    let recovery = recover_if_idle(ctx)?;
    let repo = crate::deploy::git::ConfigRepo::discover(&configs_dir, ctx.settings.git.mode)?;
    let out = configs
        .into_iter()
        .map(|cfg| horizon_status(ctx, cfg, &records, repo.as_ref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (triggers, next) = if check_triggers {
        let (t, n) = check(ctx, &configs_for_check)?;
        (Some(t), Some(n))
    } else {
        (None, None)
    };
    let run_age = crate::deadman::check(&records, ctx.now, ctx.settings.monitoring.max_run_age_days);
    if let (Some(t), Some(n)) = (&triggers, &next) {
        let health: Vec<_> = n
            .iter()
            .filter_map(|r| r.health.clone().map(|x| (r.params, x)))
            .collect();
        crate::exposition::publish(
            ctx,
            &crate::exposition::Event::Check {
                triggers: t,
                health: &health,
            },
        );
    }
    let stale = check_triggers && run_age.stale;
    if stale {
        tracing::error!("{}", run_age.summary());
    }
    output::emit(
        ctx.json,
        &StatusReport {
            root: ctx.root.display().to_string(),
            now: ctx.now,
            model: ctx.settings.model.id.clone(),
            series: series_info,
            recovery,
            horizons: out,
            triggers,
            next,
            last_completed_run: run_age,
            wide,
        },
    )?;
    Ok(if stale { ExitCode::Stale } else { ExitCode::Success })
}

/// One horizon's line: its config, history and git facts.
fn horizon_status(
    ctx: &Context,
    cfg: ForecasterConfig,
    records: &[HistoryRecord],
    repo: Option<&crate::deploy::git::ConfigRepo>,
) -> anyhow::Result<HorizonStatus> {
    let configs_dir = ctx.configs_dir();
    let h = cfg.horizon;
    let path = h.config_path(&configs_dir);
    let last_opt = history::last_optimization(records, h);
    Ok(HorizonStatus {
        horizon: h,
        config_file: ctx.shown(&path),
        config_age_days: (ctx.today() - cfg.timestamp.date_naive()).num_days(),
        last_optimization: last_opt.map(LastRun::from),
        last_action: history::last_record(records, h).map(LastRun::from),
        days_since_last_optimization: last_opt.map(|r| history::days_since(r.optimization_date, ctx.today())),
        never_optimized: last_opt.is_none(),
        attention: history::judged_attention(records, h).last().copied(),
        backups: crate::deploy::backup::list(&configs_dir, h)?.len(),
        last_commit: match repo {
            Some(r) => r.last_commit_touching(&path)?,
            None => None,
        },
        config: cfg,
    })
}

/// At most `n` characters, with an ellipsis when cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// Cleans up after a crashed run when there is something to clean and no run is active.
fn recover_if_idle(ctx: &Context) -> anyhow::Result<Vec<String>> {
    if !super::needs_recovery(ctx) {
        return Ok(Vec::new());
    }
    // Recovery writes; files of another user would block the owner's next run.
    if let Err(e) = crate::deploy::lock::require_owner(&ctx.root) {
        return Ok(vec![format!("not recovering now: {e:#}")]);
    }
    match crate::deploy::lock::RunLock::acquire(&ctx.root) {
        Ok(_lock) => super::recover(ctx),
        Err(e) if crate::exit::code_of(&e) == ExitCode::Locked => {
            Ok(vec![format!("a run is in progress, not recovering now: {e:#}")])
        }
        Err(e) => Err(e),
    }
}

/// One horizon's `--check`: what a run would do next, without its search.
#[derive(Debug, Serialize)]
pub struct CheckRow {
    pub horizon: Horizon,
    /// The decision's action when no search is needed (`no_trigger`, `suppressed`,
    /// `rolled_back`, `on_trial`, `trial_failed`), else `optimize` or `validate_trial`;
    /// `unknown` when the model could not be loaded (the triggers are then evaluated
    /// without a hindcast).
    pub next: String,
    pub note: String,
    /// The config judged.
    pub params: crate::domain::InferenceParams,
    /// The health of the config in effect (None without the model).
    pub health: Option<Health>,
    /// When the scheduled check fires next: the last optimization's date plus
    /// `triggers.time_days` (None when never optimized: due now).
    pub next_due: Option<chrono::NaiveDate>,
}

/// `--check`: per horizon, the first half of `decide` (probation, a pending trial, the
/// triggers) from the same inputs `run` reads. The probation and trial checks and the
/// performance hindcast need the model; when it cannot be loaded only the triggers are
/// evaluated, and the report says the tracked data were insufficient and why.
fn check(ctx: &Context, configs: &[ForecasterConfig]) -> anyhow::Result<(Vec<TriggerReport>, Vec<CheckRow>)> {
    let loaded = super::Loaded::load_model_if_possible(ctx)?;
    let world = loaded.world(ctx);
    let mut cache = crate::policy::search::ForwardCache::new();
    let mut reports = Vec::new();
    let mut rows = Vec::new();
    for c in configs {
        let (report, next, note) = if let Some(model) = world.model {
            let p = crate::policy::decide::preview(&world, model, c, false, &mut cache)?;
            let report = match p.triggers() {
                Some(t) => t.clone(),
                None => crate::policy::decide::trigger_report(&world, c, &mut cache, false)?,
            };
            (report, p.next().to_string(), p.note())
        } else {
            let report = crate::policy::decide::trigger_report(&world, c, &mut cache, false)?;
            let note = report.reasons.join("; ");
            (report, "unknown".to_string(), note)
        };
        let health = crate::policy::health::assess(&world, c, &mut cache, &mut |_| {})?;
        let next_due = report
            .time
            .last_optimization
            .map(|t| t.date_naive() + chrono::Duration::days(report.time.threshold_days));
        reports.push(report);
        rows.push(CheckRow {
            horizon: c.horizon,
            next,
            note,
            params: c.params(),
            health,
            next_due,
        });
    }
    Ok((reports, rows))
}

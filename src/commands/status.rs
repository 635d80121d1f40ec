//! `status`: per horizon, the deployed parameters and their metrics, config age, the last
//! optimization and its action, backups and the last commit; `--check` adds the triggers.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::Context;
use crate::history::{self, HistoryRecord};
use crate::output::{self, num, opt, Render};
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
    /// The dead-man check: the age of the last completed weekly run.
    pub last_completed_run: crate::deadman::RunAge,
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
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub date: DateTime<Utc>,
    pub action: String,
    pub message: String,
}

impl From<&HistoryRecord> for LastRun {
    fn from(r: &HistoryRecord) -> Self {
        LastRun {
            run_id: r.run_id.clone(),
            date: r.optimization_date,
            action: r.action.as_str().to_string(),
            message: r.message.clone(),
        }
    }
}

impl Render for StatusReport {
    fn render(&self) -> String {
        let mut s = format!(
            "root {}   model {}   now {}\nseries {}: {} rows, {} to {}, {} missing (needs {})\n",
            self.root,
            self.model,
            self.now.format("%Y-%m-%d %H:%M UTC"),
            self.series.file,
            self.series.rows,
            opt(self.series.first),
            opt(self.series.last),
            self.series.missing,
            self.series.rows_needed,
        );
        for r in &self.recovery {
            s.push_str(&format!("recovery: {r}\n"));
        }
        s.push_str(&format!("{}\n", self.last_completed_run.summary()));
        s.push_str(&horizons_table(&self.horizons));
        s.push('\n');
        if let Some(reports) = &self.triggers {
            s.push_str(&triggers_table(reports));
            s.push('\n');
        }
        s
    }
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
                |l| format!("{} {}", l.date.format("%Y-%m-%d"), l.action),
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
            num(t.performance.degradation_pct, 1),
            t.performance
                .source
                .map_or_else(|| "-".to_string(), |x| x.as_str().to_string()),
            t.drift.severity.as_str().to_string(),
            num(t.drift.tests.as_ref().map(|k| k.ks.pvalue), 4),
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
            "perf. degr. %",
            "source",
            "drift",
            "KS p",
            "days since",
            "reasons",
        ],
        rows,
    )
}

pub fn run(ctx: &Context, check_triggers: bool) -> anyhow::Result<ExitCode> {
    let horizons = ctx.configured_horizons()?;
    let configs = horizons
        .iter()
        .map(|&h| super::read_config(ctx, h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let configs_for_check = configs.clone();
    let series = super::load_series(ctx)?;
    let rows_needed = configs
        .iter()
        .map(|c| crate::decide::rows_needed(&ctx.settings, c))
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
    let triggers = if check_triggers {
        Some(check(ctx, &configs_for_check, &series, &records)?)
    } else {
        None
    };
    let run_age = crate::deadman::check(&records, ctx.now, ctx.settings.monitoring.max_run_age_days);
    if let Some(t) = &triggers {
        crate::exposition::publish(ctx, &crate::exposition::Event::Check { triggers: t });
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
            last_completed_run: run_age,
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
    let label = h.label();
    let path = h.config_path(&configs_dir);
    let last_opt = history::last_optimization(records, &label);
    Ok(HorizonStatus {
        horizon: h,
        config_file: ctx.shown(&path),
        config_age_days: (ctx.today() - cfg.timestamp.date_naive()).num_days(),
        last_optimization: last_opt.map(LastRun::from),
        last_action: history::last_record(records, &label).map(LastRun::from),
        days_since_last_optimization: last_opt.map(|r| history::days_since(r.optimization_date, ctx.today())),
        never_optimized: last_opt.is_none(),
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

/// `--check`: the trigger report of every horizon, from the trigger part of `decide`. The
/// performance hindcast needs the model; when it cannot be loaded the report says the tracked
/// data were insufficient and why.
fn check(
    ctx: &Context,
    configs: &[ForecasterConfig],
    series: &crate::series::Series,
    records: &[HistoryRecord],
) -> anyhow::Result<Vec<TriggerReport>> {
    let predictions = crate::data::load_predictions(&ctx.predictions_path())?;
    let model = match crate::model::ChronosBolt::open(&ctx.settings.model.id) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!("performance hindcast unavailable: {e:#}");
            None
        }
    };
    let series_name = ctx.series_path().display().to_string();
    let world = crate::decide::World {
        settings: &ctx.settings,
        now: ctx.now,
        series,
        series_name: &series_name,
        predictions: &predictions,
        history: records,
        model: model.as_ref().map(|m| m as &dyn crate::forecast::QuantileModel),
        model_id: &ctx.settings.model.id,
        dims: model.as_ref().map(|m| crate::backtest::ModelDims::of(m.config())),
    };
    let mut cache = crate::search::ForwardCache::new();
    configs
        .iter()
        .map(|c| crate::decide::trigger_report(&world, c, &mut cache, false))
        .collect()
}

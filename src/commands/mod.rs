//! One file per subcommand; `execute` dispatches. Commands orchestrate I/O steps in order and
//! call the pure modules for the logic.

mod demo_data;
mod forecast;
mod history;
mod notify;
mod rollback;
mod run;
mod status;
mod validate;

use anyhow::Context as _;

use crate::cli::{Cli, Command};
use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::Context;
use crate::series::Series;

/// Runs the parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::DemoData(args) = &cli.command {
        // Needs no settings: it creates the data a root starts from.
        return demo_data::run(&cli.global, args);
    }
    let ctx = Context::build(&cli.global)?;
    match cli.command {
        Command::Status(args) => status::run(&ctx, &args),
        Command::History(args) => history::run(&ctx, &args),
        Command::Forecast(args) => forecast::run(&ctx, &args),
        Command::Validate(args) => validate::run(&ctx, &args),
        Command::Rollback(args) => rollback::run(&ctx, &args),
        Command::Notify(args) => notify::run(&ctx, &args),
        Command::Run(args) => run::run(&ctx, &args),
        Command::DemoData(_) => unreachable!("handled above"),
    }
}

/// Reads every forecaster config of `horizons` (strict; errors name the file).
pub(crate) fn read_configs(ctx: &Context, horizons: &[Horizon]) -> anyhow::Result<Vec<ForecasterConfig>> {
    horizons
        .iter()
        .map(|h| {
            let path = h.config_path(&ctx.configs_dir());
            let cfg = ForecasterConfig::read(&path)?;
            if cfg.horizon != *h {
                return Err(crate::exit::invalid(format!(
                    "{}: field horizon is {} but the file name says {h}; fix the field",
                    path.display(),
                    cfg.horizon
                )));
            }
            Ok(cfg)
        })
        .collect()
}

/// Rows the optimizer needs: the largest context searched or deployed, plus the rows the
/// selection and confirmation origins span (the last origin needs its next h values).
pub(crate) fn rows_needed(ctx: &Context, configs: &[ForecasterConfig]) -> usize {
    let s = &ctx.settings.search;
    configs
        .iter()
        .map(|c| {
            let largest = s
                .context_lengths_for(c.horizon)
                .iter()
                .copied()
                .chain([c.context_length])
                .max()
                .unwrap_or(c.context_length);
            largest + crate::backtest::rows_spanned(s, c.horizon.steps())
        })
        .max()
        .unwrap_or(0)
}

/// Loads the root's series, cut at `--as-of`, and checks it is long enough for `configs`.
pub(crate) fn load_series(ctx: &Context, configs: &[ForecasterConfig]) -> anyhow::Result<Series> {
    let path = ctx.series_path();
    let mut series = crate::data::load_series(&path)?;
    if let Some(d) = ctx.as_of {
        series = series.truncated_at(d);
    }
    let needed = rows_needed(ctx, configs);
    crate::data::require_len(
        &series,
        needed,
        &path,
        "the largest context plus the rows the backtest origins span",
    )?;
    Ok(series)
}

/// A run id: the UTC start time (or the `--as-of` day) and the process id.
pub(crate) fn run_id(ctx: &Context) -> String {
    format!("{}-{}", ctx.now.format("%Y%m%dT%H%M%SZ"), std::process::id())
}

/// Feeds the search's progress events to a terminal progress bar.
pub(crate) fn progress_event(bar: &crate::output::Progress, p: &crate::search::Progress) {
    use crate::search::Progress as P;
    match p {
        P::Started {
            configs, forwards, ..
        } => bar.set_length((*configs + *forwards) as u64),
        P::ForwardStarted {
            context_length,
            to_run,
            ..
        } => {
            bar.set_message(format!("forward context {context_length} ({to_run} series)"));
        }
        P::ForwardFinished { .. } => bar.inc(),
        P::Timing { context_length, .. } => bar.set_message(format!("timing context {context_length}")),
        P::ConfigEvaluated { params, .. } => {
            bar.set_message(params.to_string());
            bar.inc();
        }
    }
}

/// Writes the backtest picture of the validation's candidate to `dir/<run_id>/<h>.png`:
/// actuals over the validation window and the last few origins' mean and CI95.
pub(crate) fn write_plot(
    dir: &std::path::Path,
    run_id: &str,
    h: Horizon,
    series: &Series,
    v: &crate::validate::ValidationReport,
) -> anyhow::Result<std::path::PathBuf> {
    const ORIGINS_SHOWN: usize = 4;
    let points = &v.candidate.points;
    let mut origins: Vec<usize> = points.iter().map(|p| p.origin).collect();
    origins.dedup();
    let shown: Vec<usize> = origins.iter().rev().take(ORIGINS_SHOWN).rev().copied().collect();
    let first = points.first().map_or(0, |p| p.origin);
    let last = points.iter().map(|p| p.target).max().unwrap_or(first);
    let actual: Vec<_> = (first..=last.min(series.len() - 1))
        .map(|i| (series.dates[i], series.values[i]))
        .collect();
    let paths: Vec<crate::plot::PathForecast> = shown
        .iter()
        .map(|&o| {
            let pts: Vec<_> = points.iter().filter(|p| p.origin == o).collect();
            crate::plot::PathForecast {
                origin_date: series.dates[o],
                dates: pts.iter().map(|p| p.target_date).collect(),
                mean: pts.iter().map(|p| p.forecast).collect(),
                ci95: pts.iter().map(|p| p.ci95).collect(),
            }
        })
        .collect();
    let path = dir.join(run_id).join(format!("{}.png", h.label()));
    let title = format!(
        "USD/CLP {h} backtest: {} (last {} origins)",
        v.candidate.params,
        shown.len()
    );
    crate::plot::backtest_png(&path, &title, &actual, &paths)?;
    Ok(path)
}

/// Sends mail for `event` when mail is on and the event is selected. A failure is logged and
/// returned as a note; it never changes an outcome or the exit code.
pub(crate) fn send_mail(
    ctx: &Context,
    event: crate::domain::MailEvent,
    email: &crate::notify::Email,
) -> Option<String> {
    if !crate::notify::event_enabled(&ctx.settings.smtp, event) {
        return None;
    }
    let sent = crate::notify::Mailer::from_settings(&ctx.settings.smtp).and_then(|m| m.send(email));
    match sent {
        Ok(()) => None,
        Err(e) => {
            let note = format!("{e:#}");
            tracing::warn!("mail for {event} not sent: {note}");
            Some(note)
        }
    }
}

/// A history message with the mail failure appended, if any.
pub(crate) fn with_mail_note(message: String, mail_error: Option<&str>) -> String {
    match mail_error {
        Some(e) => format!("{message}; mail failed: {e}"),
        None => message,
    }
}

/// The time stamped on history records: now, truncated to whole microseconds (what parquet keeps).
pub(crate) fn record_time(ctx: &Context) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    ctx.now.trunc_subsecs(6)
}

/// One line about what git did.
pub(crate) fn git_summary(g: &crate::deploy::GitRecord) -> String {
    use crate::deploy::GitRecord as G;
    match g {
        G::Off => "off (git.mode = off)".into(),
        G::NoRepository => "no repository holds the configs (git.mode = auto): not committed".into(),
        G::Unchanged => "HEAD already had these bytes: nothing to commit".into(),
        G::NotCommitted => "not committed".into(),
        G::Committed(id) => format!("committed {id}"),
    }
}

/// Whether a crashed run left something for [`recover`] (read-only).
pub(crate) fn needs_recovery(ctx: &Context) -> bool {
    crate::deploy::needs_recovery(&ctx.configs_dir())
        || crate::data::history::temp_path(&ctx.history_path()).exists()
}

/// Cleans up after a crashed run (stray temp files of configs, backups and the history, an
/// interrupted deploy) and reports it. Call with the run lock held.
pub(crate) fn recover(ctx: &Context) -> anyhow::Result<Vec<String>> {
    let report = crate::deploy::recover(&ctx.configs_dir())?;
    let mut messages = report.messages();
    let history_tmp = crate::data::history::temp_path(&ctx.history_path());
    if history_tmp.exists() {
        std::fs::remove_file(&history_tmp)
            .with_context(|| format!("{}: cannot remove the stray temp file", history_tmp.display()))?;
        messages.push(format!(
            "removed {} left by an interrupted history append (the history file itself is intact)",
            history_tmp.display()
        ));
    }
    for m in &messages {
        tracing::warn!("recovery: {m}");
    }
    Ok(messages)
}

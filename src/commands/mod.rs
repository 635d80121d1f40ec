//! One file per subcommand; `execute` dispatches. Commands orchestrate I/O steps in order and
//! call the pure modules for the logic.

mod demo_data;
mod forecast;
mod history;
mod notify;
mod replay;
mod rollback;
mod run;
mod status;
mod validate;

use crate::cli::{Cli, Command};
use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::{Context, DemoDataRequest, Request};
use crate::series::Series;

/// Runs the parsed command line.
pub fn execute(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Command::DemoData(args) = &cli.command {
        // Needs no settings: it creates the data a root starts from.
        return demo_data::run(&DemoDataRequest::new(&cli.global.root, cli.global.json, args));
    }
    let ctx = Context::build(&cli.global)?;
    match Request::build(&ctx, &cli.command)? {
        Request::Status { check } => status::run(&ctx, check),
        Request::History { horizon, limit } => history::run(&ctx, horizon, limit),
        Request::Forecast(r) => forecast::run(&ctx, &r),
        Request::Validate(r) => validate::run(&ctx, &r),
        Request::Rollback(r) => rollback::run(&ctx, &r),
        Request::NotifyTest => notify::run(&ctx),
        Request::Run(r) => run::run(&ctx, &r),
        Request::DemoData(r) => demo_data::run(&r),
        Request::Replay(r) => replay::run(&ctx, &r),
    }
}

/// Reads the forecaster config of `h` (strict; errors name the file).
pub(crate) fn read_config(ctx: &Context, h: Horizon) -> anyhow::Result<ForecasterConfig> {
    let path = h.config_path(&ctx.configs_dir());
    let cfg = ForecasterConfig::read(&path)?;
    if cfg.horizon != h {
        return Err(crate::exit::invalid(format!(
            "{}: field horizon is {} but the file name says {h}; fix the field",
            path.display(),
            cfg.horizon
        )));
    }
    Ok(cfg)
}

/// Loads the root's series, cut at `--as-of`. Each horizon checks the length it needs.
pub(crate) fn load_series(ctx: &Context) -> anyhow::Result<Series> {
    let series = crate::data::load_series(&ctx.series_path())?;
    Ok(match ctx.as_of {
        Some(d) => series.truncated_at(d),
        None => series,
    })
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
    crate::decide::record_time(ctx.now)
}

/// One line about what git did.
pub(crate) fn git_summary(g: &crate::deploy::GitRecord) -> String {
    crate::render::git_summary(g)
}

/// The directory of the history file (where its temp files go).
fn history_dir(ctx: &Context) -> std::path::PathBuf {
    let h = ctx.history_path();
    h.parent()
        .map_or_else(|| std::path::PathBuf::from("."), std::path::Path::to_path_buf)
}

/// Whether a crashed run left something for [`recover`] (read-only).
pub(crate) fn needs_recovery(ctx: &Context) -> bool {
    crate::deploy::needs_recovery(&ctx.configs_dir())
        || crate::atomic::has_temp_files(&history_dir(ctx))
        || !crate::exposition::stray_temps(ctx).is_empty()
}

/// Cleans up after a crashed run (stray temp files of configs, backups and the history) and
/// settles an interrupted deploy or rollback, then appends the history record it still owes
/// (unless history already has a row with its run id, horizon and action: a crash during
/// recovery only repeats it) and ends it with `deploy::finish`. Returns one line per finding.
/// A record that cannot be appended keeps the journal, so the next recovery tries again; that
/// is reported in the lines, not as an error, so that `status` still prints. Call with the run
/// lock held.
pub(crate) fn recover(ctx: &Context) -> anyhow::Result<Vec<String>> {
    let mut messages = Vec::new();
    let history = ctx.history_path();
    for tmp in crate::atomic::sweep_temp_files(&history_dir(ctx))? {
        messages.push(format!(
            "removed {} left by an interrupted history append (the history file itself is intact)",
            tmp.display()
        ));
    }
    for tmp in crate::exposition::sweep_stray_temps(ctx)? {
        messages.push(format!(
            "removed {} left by an interrupted metrics write",
            ctx.shown(&tmp)
        ));
    }
    let configs = ctx.configs_dir();
    let report = crate::deploy::recover(&configs)?;
    messages.extend(report.messages());
    if report.interrupted.is_some() {
        crate::failpoint::hit("recovery_before_record");
        match crate::data::history::append_missing(&history, &report.owed) {
            Ok(appended) => {
                for r in &appended {
                    messages.push(format!(
                        "recorded in history: {} {} of run {}",
                        r.horizon,
                        r.action.as_str(),
                        r.run_id
                    ));
                }
                crate::deploy::finish(&configs)?;
            }
            Err(e) => messages.push(format!(
                "the history record of the interrupted operation could not be appended ({e:#}); {} stays so that the next run or `status` appends it",
                crate::deploy::journal::Journal::path(&configs).display()
            )),
        }
    }
    for m in &messages {
        tracing::warn!("recovery: {m}");
    }
    Ok(messages)
}

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

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::deploy::{DeployOutcome, DeployRequest, RollbackOutcome};
use crate::domain::Horizon;
use crate::exit::ExitCode;
use crate::forecast::QuantileModel;
use crate::forecaster_config::ForecasterConfig;
use crate::hiargs::{Context, DemoDataRequest, Request};
use crate::history::HistoryRecord;
use crate::model::ChronosBolt;
use crate::policy::applier::Applier;
use crate::policy::decide::World;
use crate::series::{Prediction, Series};

/// Runs the parsed command line.
pub fn execute(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Command::DemoData(args) = &cli.command {
        // Needs no settings: it creates the data a root starts from.
        return demo_data::run(&DemoDataRequest::new(&cli.global.root, cli.global.json, args));
    }
    let ctx = Context::build(&cli.global)?;
    match Request::build(&ctx, &cli.command)? {
        Request::Status { check, wide } => status::run(&ctx, check, wide),
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

/// What a decision reads, loaded once per command: `run`, `validate` and `status --check`
/// judge a horizon from the same inputs (`replay` builds the same [`World`] week by week).
pub(crate) struct Loaded {
    pub series: Series,
    pub series_name: String,
    pub predictions: Vec<Prediction>,
    pub history: Vec<HistoryRecord>,
    /// None only for `status --check` when the model cannot be loaded.
    pub model: Option<ChronosBolt>,
    /// What a deployed config records as its model.
    pub model_id: String,
}

impl Loaded {
    /// Loads the series (cut at `--as-of`), tracked predictions, history and the model.
    pub fn load(ctx: &Context) -> anyhow::Result<Loaded> {
        let mut loaded = Loaded::inputs(ctx)?;
        loaded.model = Some(ChronosBolt::open(&ctx.settings.model.id)?);
        Ok(loaded)
    }

    /// As [`Loaded::load`], but a model that cannot be loaded is left out (with a warning):
    /// the triggers can then be evaluated without a hindcast.
    pub fn load_model_if_possible(ctx: &Context) -> anyhow::Result<Loaded> {
        let mut loaded = Loaded::inputs(ctx)?;
        match ChronosBolt::open(&ctx.settings.model.id) {
            Ok(m) => loaded.model = Some(m),
            Err(e) => tracing::warn!("performance hindcast unavailable: {e:#}"),
        }
        Ok(loaded)
    }

    fn inputs(ctx: &Context) -> anyhow::Result<Loaded> {
        Ok(Loaded {
            model_id: ChronosBolt::identity(&ctx.settings.model.id)?,
            series: load_series(ctx)?,
            series_name: ctx.series_path().display().to_string(),
            predictions: crate::data::load_predictions(&ctx.predictions_path())?,
            history: crate::data::history::read(&ctx.history_path())?,
            model: None,
        })
    }

    pub fn world<'a>(&'a self, ctx: &'a Context) -> World<'a> {
        World {
            settings: &ctx.settings,
            now: ctx.now,
            series: &self.series,
            series_name: &self.series_name,
            predictions: &self.predictions,
            history: &self.history,
            model: self.model.as_ref().map(|m| m as &dyn QuantileModel),
            model_id: &self.model_id,
            dims: self
                .model
                .as_ref()
                .map(|m| crate::policy::cost::ModelDims::of(m.config())),
        }
    }
}

/// Checks a freshly written config file (it parses and forecasts).
pub(crate) type SmokeCheck<'a> = &'a dyn Fn(&Path) -> anyhow::Result<()>;

/// The [`Applier`] of production: the root's config files, backups and git, through
/// `deploy`. A deploy stands only after its smoke check.
pub(crate) struct FileApplier<'a> {
    pub ctx: &'a Context,
    /// None deploys without a smoke check.
    pub smoke: Option<SmokeCheck<'a>>,
}

impl Applier for FileApplier<'_> {
    fn deploy(
        &mut self,
        config: &ForecasterConfig,
        message: &str,
        owed: &HistoryRecord,
    ) -> anyhow::Result<DeployOutcome> {
        let h = config.horizon;
        let bytes = config.to_bytes();
        let no_check = |_: &Path| Ok(());
        let done = crate::deploy::deploy(
            DeployRequest {
                configs_dir: &self.ctx.configs_dir(),
                horizon: h,
                new_config: &bytes,
                message,
                git: &self.ctx.settings.git,
                backups_to_keep: self.ctx.settings.deploy.backups_to_keep,
                now: self.ctx.now,
                record: owed,
            },
            self.smoke.unwrap_or(&no_check),
        )?;
        for w in &done.warnings {
            tracing::warn!("{h}: {w}");
        }
        Ok(done)
    }

    fn rollback(
        &mut self,
        h: Horizon,
        to: Option<&str>,
        owed: &HistoryRecord,
    ) -> anyhow::Result<RollbackOutcome> {
        let ctx = self.ctx;
        let done = crate::deploy::rollback(&ctx.configs_dir(), h, to, &ctx.settings.git, ctx.now, owed)?;
        for w in &done.warnings {
            tracing::warn!("{h}: {w}");
        }
        Ok(done)
    }

    fn current(&self, h: Horizon) -> anyhow::Result<ForecasterConfig> {
        read_config(self.ctx, h)
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
pub(crate) fn progress_event(bar: &crate::output::Progress, p: &crate::policy::search::Progress) {
    use crate::policy::search::Progress as P;
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
    v: &crate::policy::validate::ValidationReport,
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
    send_email(ctx, email)
}

/// Sends `email` (mail must be on). A failure is logged and returned as a note.
pub(crate) fn send_email(ctx: &Context, email: &crate::notify::Email) -> Option<String> {
    let sent = crate::notify::Mailer::from_settings(&ctx.settings.smtp).and_then(|m| m.send(email));
    match sent {
        Ok(()) => None,
        Err(e) => {
            let note = format!("{e:#}");
            tracing::warn!("mail {:?} not sent: {note}", email.subject);
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
    crate::policy::decide::record_time(ctx.now)
}

/// One line about what git did.
pub(crate) fn git_summary(g: &crate::deploy::GitRecord) -> String {
    crate::policy::render::git_summary(g)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GitMode;
    use crate::history::Action;
    use crate::policy::applier::{apply, MemoryApplier};
    use crate::policy::decide::{fixture, Decision};
    use crate::policy::outcome::{EffectKind, RecordContext};
    use chrono::{DateTime, Utc};

    /// One step of the sequence both appliers are given.
    enum Step {
        Decided(Box<Decision>),
        /// `rollback` by an operator, without `--to`.
        Operator,
    }

    fn probation_rollback() -> Decision {
        Decision::ProbationRollback {
            check: fixture::broken_promise(),
        }
    }

    /// Applies `step` and returns (the history action, what was restored or deployed).
    fn take(
        applier: &mut dyn Applier,
        step: &Step,
        h: Horizon,
        rc: &RecordContext<'_>,
    ) -> (Action, EffectKind) {
        match step {
            Step::Decided(d) => {
                let o = apply(applier, h, (**d).clone(), rc);
                (o.record(h, rc).unwrap().action, o.effect.kind())
            }
            Step::Operator => {
                let row = crate::policy::outcome::owed(&probation_rollback(), h, rc).unwrap();
                applier.rollback(h, None, &row).unwrap();
                (Action::RolledBack, EffectKind::RolledBack)
            }
        }
    }

    #[test]
    fn the_file_and_the_memory_applier_end_with_the_same_config_and_history_actions() {
        let mut settings = fixture::loose();
        settings.deploy.trial_min_origins = 0;
        settings.git.mode = GitMode::Off;
        let (d, cfg) = fixture::forced_decision(&settings);
        let Decision::Approved(first) = d else {
            panic!("loose criteria without trials approve")
        };
        let mut second = first.clone();
        second.new_config.num_samples = if first.new_config.num_samples == 50 {
            100
        } else {
            50
        };
        assert_ne!(second.new_config, first.new_config);
        let steps = [
            Step::Decided(Box::new(Decision::Approved(first.clone()))),
            Step::Decided(Box::new(Decision::Approved(second.clone()))),
            Step::Decided(Box::new(probation_rollback())),
            Step::Operator,
        ];
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let t0: DateTime<Utc> = "2026-01-04T02:00:00Z".parse().unwrap();
        let mut ctx = Context {
            settings_path: root.join("configs/optimizer.toml"),
            root,
            settings: settings.clone(),
            json: false,
            as_of: None,
            now: t0,
        };
        let h = cfg.horizon;
        std::fs::create_dir_all(ctx.configs_dir()).unwrap();
        std::fs::write(h.config_path(&ctx.configs_dir()), cfg.to_bytes()).unwrap();
        let mut memory = MemoryApplier::new(std::slice::from_ref(&cfg), settings.deploy.backups_to_keep, t0);
        let (mut file_log, mut memory_log) = (Vec::new(), Vec::new());
        for (k, step) in steps.iter().enumerate() {
            ctx.now = t0 + chrono::Duration::days(7 * k as i64);
            memory.now = ctx.now;
            let rc = RecordContext::new("r", ctx.now, None);
            file_log.push(take(
                &mut FileApplier {
                    ctx: &ctx,
                    smoke: None,
                },
                step,
                h,
                &rc,
            ));
            // `run` and `rollback` end the journal once the row is appended.
            crate::deploy::finish(&ctx.configs_dir()).unwrap();
            memory_log.push(take(&mut memory, step, h, &rc));
            let files = FileApplier {
                ctx: &ctx,
                smoke: None,
            };
            assert_eq!(
                files.current(h).unwrap(),
                memory.current(h).unwrap(),
                "after step {k}"
            );
        }
        assert_eq!(file_log, memory_log);
        let actions: Vec<Action> = file_log.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            actions,
            [
                Action::Deployed,
                Action::Deployed,
                Action::RolledBack,
                Action::RolledBack
            ]
        );
        // The probation rollback restored the first deploy; the operator's rollback then
        // undid it (the newest backup that differs is the second deploy's config).
        assert_eq!(memory.current(h).unwrap(), second.new_config);
    }
}

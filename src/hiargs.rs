//! The validated high-level arguments: global flags + settings + the clock, built once into a
//! [`Context`] that every command receives. The only module besides `cli` that sees clap's
//! structs.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::domain::Horizon;
use crate::exit::invalid;

/// The validated view of flags + settings that every command receives.
#[derive(Clone, Debug)]
pub struct Context {
    pub root: PathBuf,
    pub settings_path: PathBuf,
    pub settings: Settings,
    pub json: bool,
    /// `--as-of`: the series is cut at this date and it is "now".
    pub as_of: Option<NaiveDate>,
    /// The clock every pure module receives: the real UTC time, or the end of the `--as-of` day.
    pub now: DateTime<Utc>,
}

impl Context {
    /// Builds the context from global flags and the process environment.
    pub fn build(g: &GlobalArgs) -> anyhow::Result<Context> {
        Self::build_with(g, std::env::vars(), Utc::now())
    }

    /// As [`Context::build`], with the environment and clock given (tests).
    pub fn build_with(
        g: &GlobalArgs,
        env: impl IntoIterator<Item = (String, String)>,
        wall_clock: DateTime<Utc>,
    ) -> anyhow::Result<Context> {
        if !g.root.is_dir() {
            return Err(invalid(format!(
                "{}: --root is not a directory; pass the directory holding configs/ and data/",
                g.root.display()
            )));
        }
        let settings_path = g
            .settings
            .clone()
            .unwrap_or_else(|| g.root.join("configs").join("optimizer.toml"));
        let mut settings = Settings::load(&settings_path, env)?;
        if let Some(m) = &g.model {
            settings.model.id.clone_from(m);
        }
        let now = match g.as_of {
            Some(d) => d
                .and_hms_opt(23, 59, 59)
                .expect("23:59:59 is a valid time")
                .and_utc(),
            None => wall_clock,
        };
        Ok(Context {
            root: g.root.clone(),
            settings_path,
            settings,
            json: g.json,
            as_of: g.as_of,
            now,
        })
    }

    /// A settings path resolved against `--root`.
    pub fn path(&self, rel: &Path) -> PathBuf {
        if rel.is_absolute() {
            rel.to_path_buf()
        } else {
            self.root.join(rel)
        }
    }

    pub fn configs_dir(&self) -> PathBuf {
        self.path(&self.settings.paths.configs)
    }
    pub fn series_path(&self) -> PathBuf {
        self.path(&self.settings.paths.series)
    }
    pub fn predictions_path(&self) -> PathBuf {
        self.path(&self.settings.paths.predictions)
    }
    pub fn history_path(&self) -> PathBuf {
        self.path(&self.settings.paths.history)
    }
    pub fn reports_dir(&self) -> PathBuf {
        self.path(&self.settings.paths.reports)
    }

    /// A path as output shows it: relative to `--root` when under it (the same inside a
    /// container, where the root is `/app`, and on the host), else as it is.
    pub fn shown(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or(p)
            .display()
            .to_string()
    }

    /// "Today" on calendar dates in UTC.
    pub fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }

    /// Horizons that have a config file, in ascending order.
    pub fn configured_horizons(&self) -> anyhow::Result<Vec<Horizon>> {
        let dir = self.configs_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            invalid(format!(
                "{}: cannot list forecaster configs: {e}; create it with configs/chronos_<h>.json files",
                dir.display()
            ))
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let Some(label) = name
                .strip_prefix("chronos_")
                .and_then(|r| r.strip_suffix(".json"))
            else {
                continue;
            };
            // One file per horizon, under its one canonical name: `chronos_07d.json` beside
            // `chronos_7d.json` would be the same forecaster twice.
            let h = label.parse::<Horizon>().map_err(|e| {
                invalid(format!(
                    "{}: not a forecaster config name ({e}); rename it to chronos_<h>.json with a canonical horizon such as chronos_7d.json, or move it out of the directory",
                    dir.join(name.as_ref()).display()
                ))
            })?;
            out.push(h);
        }
        out.sort();
        if out.is_empty() {
            return Err(invalid(format!(
                "{}: no forecaster configs (chronos_<h>.json) found; copy them from the repository's configs/",
                dir.display()
            )));
        }
        Ok(out)
    }

    /// The horizons a command asked for: all configured ones, or the named ones (each must
    /// have a config file).
    pub fn select_horizons(&self, named: &[Horizon]) -> anyhow::Result<Vec<Horizon>> {
        if named.is_empty() {
            return self.configured_horizons();
        }
        for h in named {
            let p = h.config_path(&self.configs_dir());
            if !p.exists() {
                return Err(invalid(format!(
                    "{}: horizon {h} has no config file; create it or pick one of the configured horizons",
                    p.display()
                )));
            }
        }
        let mut v = named.to_vec();
        v.sort();
        v.dedup();
        Ok(v)
    }
}

/// A command line, validated: what `commands::execute` dispatches on. Commands take these,
/// never clap's structs.
#[derive(Debug)]
pub enum Request {
    Run(RunRequest),
    Validate(ValidateRequest),
    Rollback(RollbackRequest),
    Status { check: bool, wide: bool },
    History { horizon: Option<Horizon>, limit: usize },
    Forecast(ForecastRequest),
    NotifyTest,
    DemoData(DemoDataRequest),
    Replay(ReplayRequest),
}

/// `replay`: the period, the run spacing and the horizons.
#[derive(Debug)]
pub struct ReplayRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub every_days: i64,
    pub horizons: Vec<Horizon>,
    pub out: Option<PathBuf>,
}

/// `run`: which horizons, and how.
#[derive(Debug)]
pub struct RunRequest {
    /// Ascending, each with a config file.
    pub horizons: Vec<Horizon>,
    pub dry_run: bool,
    pub force: bool,
    /// Exit 3 when a candidate is rejected (by default a rejection is a completed decision).
    pub fail_on_reject: bool,
}

#[derive(Debug)]
pub struct ValidateRequest {
    pub horizon: Horizon,
    pub candidate: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

#[derive(Debug)]
pub struct RollbackRequest {
    pub horizon: Horizon,
    pub to: Option<String>,
    pub dry_run: bool,
}

/// `forecast`: every number already range-checked by the one check of its parameter.
#[derive(Debug)]
pub struct ForecastRequest {
    pub horizon: Option<Horizon>,
    pub series: Option<PathBuf>,
    pub context_length: Option<usize>,
    pub prediction_length: Option<usize>,
    pub num_samples: Option<usize>,
    pub temperature: Option<f64>,
}

#[derive(Debug)]
pub struct DemoDataRequest {
    /// Absolute, or resolved against `--root`.
    pub out: PathBuf,
    pub seed: u64,
    pub days: usize,
    pub json: bool,
}

/// A flag's value checked by its parameter's one range check; the error names the flag.
fn flag<T: Copy>(name: &str, v: Option<T>, check: fn(T) -> Result<(), String>) -> anyhow::Result<Option<T>> {
    if let Some(x) = v {
        check(x).map_err(|e| invalid(format!("--{name}: {e}")))?;
    }
    Ok(v)
}

impl DemoDataRequest {
    /// `demo-data` needs no settings (it creates the data a root starts from): its request is
    /// built from the raw flags alone.
    pub fn new(root: &Path, json: bool, a: &crate::cli::DemoDataArgs) -> DemoDataRequest {
        DemoDataRequest {
            out: if a.out.is_absolute() {
                a.out.clone()
            } else {
                root.join(&a.out)
            },
            seed: a.seed,
            days: a.days,
            json,
        }
    }
}

impl Request {
    /// Validates a subcommand's flags against the context.
    pub fn build(ctx: &Context, command: &crate::cli::Command) -> anyhow::Result<Request> {
        use crate::cli::Command as C;
        use crate::domain as d;
        Ok(match command {
            C::Run(a) => {
                if !a.horizons.all && a.horizons.horizon.is_empty() {
                    return Err(crate::exit::failure(
                        crate::exit::ExitCode::Usage,
                        "run needs --all or at least one --horizon H",
                    ));
                }
                Request::Run(RunRequest {
                    horizons: ctx.select_horizons(&a.horizons.horizon)?,
                    dry_run: a.dry_run,
                    force: a.force,
                    fail_on_reject: a.fail_on_reject,
                })
            }
            C::Validate(a) => Request::Validate(ValidateRequest {
                horizon: a.horizon,
                candidate: a.candidate.clone(),
                plot: a.plot.clone(),
            }),
            C::Rollback(a) => Request::Rollback(RollbackRequest {
                horizon: a.horizon,
                to: a.to.clone(),
                dry_run: a.dry_run,
            }),
            C::Status(a) => Request::Status {
                check: a.check,
                wide: a.wide,
            },
            C::History(a) => Request::History {
                horizon: a.horizon,
                limit: a.limit,
            },
            C::Forecast(a) => Request::Forecast(ForecastRequest {
                horizon: a.horizon,
                series: a.series.clone(),
                context_length: flag("context-length", a.context_length, d::check_context_length)?,
                prediction_length: flag(
                    "prediction-length",
                    a.prediction_length,
                    d::check_prediction_length,
                )?,
                num_samples: flag("num-samples", a.num_samples, d::check_num_samples)?,
                temperature: flag("temperature", a.temperature, d::check_temperature)?,
            }),
            C::Notify(_) => Request::NotifyTest,
            C::Replay(a) => {
                if a.from > a.to {
                    return Err(invalid(format!(
                        "--from {} is after --to {}; give the period in order",
                        a.from, a.to
                    )));
                }
                if !(1..=366).contains(&a.every) {
                    return Err(invalid(format!("--every {} must be 1..=366 days", a.every)));
                }
                Request::Replay(ReplayRequest {
                    from: a.from,
                    to: a.to,
                    every_days: a.every,
                    horizons: ctx.select_horizons(&a.horizon)?,
                    out: a.out.clone(),
                })
            }
            C::DemoData(a) => Request::DemoData(DemoDataRequest::new(&ctx.root, ctx.json, a)),
        })
    }
}

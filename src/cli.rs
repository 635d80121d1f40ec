//! Command-line flags as typed (clap). `hiargs::Context::build` turns them into validated
//! settings; nothing else reads clap types.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::Horizon;

#[derive(Debug, Parser)]
#[command(
    name = "model-optimizer",
    version,
    about = "Keeps the Chronos-Bolt USD/CLP forecasters tuned: triggers, grid search, validation, safe deployment",
    after_help = "Exit codes: 0 success: every horizon completed its decision (no trigger, suppressed, \
                  rejected, a trial started, on trial or failed, deployed, or a dry run's would-deploy); \
                  1 runtime error; 2 usage; 3 a candidate was rejected (validate always; run only with \
                  --fail-on-reject, a lost trial too); 4 deploy failed and rolled back; 75 another run holds \
                  the lock; 78 invalid settings/config/data/model."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Directory holding configs/ and data/.
    #[arg(long, global = true, default_value = ".", env = "MODEL_OPTIMIZER_ROOT")]
    pub root: PathBuf,
    /// Settings file (default: <root>/configs/optimizer.toml).
    #[arg(long, global = true)]
    pub settings: Option<PathBuf>,
    /// Hugging Face repo id (e.g. amazon/chronos-bolt-small) or a local directory with
    /// config.json + model.safetensors. Overrides model.id.
    #[arg(long, global = true)]
    pub model: Option<String>,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Evaluate as of this date: the series is cut there and it is "now".
    #[arg(long, global = true, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check triggers, search, validate and deploy (the weekly job).
    Run(RunArgs),
    /// Search and validate the best candidate against the current config; writes nothing.
    Validate(ValidateArgs),
    /// Restore a horizon's config from a backup.
    Rollback(RollbackArgs),
    /// Current parameters, metrics and last optimization per horizon.
    Status(StatusArgs),
    /// Optimization history, newest first.
    History(HistoryArgs),
    /// Forecast with the deployed config (or given parameters).
    Forecast(ForecastArgs),
    /// Send a test email with the SMTP settings.
    Notify(NotifyArgs),
    /// Write the seeded synthetic USD/CLP-like sample series (the embedded default data).
    DemoData(DemoDataArgs),
    /// Replay the weekly job on history (configs and history in memory; nothing under --root
    /// changes) and score the policy against the static configs and the random walk.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The first run date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: NaiveDate,
    /// The last run date (forecasts are scored up to it).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: NaiveDate,
    /// Days between runs.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub every: i64,
    /// Every horizon with a config file (the default).
    #[arg(long, conflicts_with = "horizon")]
    pub all: bool,
    /// A horizon such as 7d (repeatable).
    #[arg(long = "horizon", value_name = "H")]
    pub horizon: Vec<Horizon>,
    /// Write replay.json, replay.txt and replay.png here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Which horizons a run takes: `--all` or one or more `--horizon`.
#[derive(Debug, Args)]
pub struct HorizonChoice {
    /// Every horizon with a config file.
    #[arg(long, conflicts_with = "horizon")]
    pub all: bool,
    /// A horizon such as 7d (repeatable).
    #[arg(long = "horizon", value_name = "H")]
    pub horizon: Vec<Horizon>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub horizons: HorizonChoice,
    /// Compute everything, print what would happen, change nothing and send no mail.
    #[arg(long)]
    pub dry_run: bool,
    /// Optimize whatever the triggers say.
    #[arg(long)]
    pub force: bool,
    /// Exit 3 when any candidate is rejected. Without it a rejection is a completed decision
    /// (exit 0), as every other normal weekly outcome is.
    #[arg(long)]
    pub fail_on_reject: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[arg(long, value_name = "H")]
    pub horizon: Horizon,
    /// Validate this config file instead of the search's best candidate.
    #[arg(long, value_name = "FILE.json")]
    pub candidate: Option<PathBuf>,
    /// Save the backtest picture under DIR/<run_id>/<horizon>.png.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The horizon to roll back, e.g. 7d.
    pub horizon: Horizon,
    /// A backup file or its timestamp (YYYYmmdd_HHMMSS); default the newest backup.
    #[arg(long, value_name = "BACKUP_FILE_OR_TIMESTAMP")]
    pub to: Option<String>,
    /// Say what would be restored, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Evaluate the triggers and the health of every horizon: the dashboard.
    #[arg(long)]
    pub check: bool,
    /// Every column, however wide (the default fits 100 columns or the terminal).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long, value_name = "H")]
    pub horizon: Option<Horizon>,
    /// At most N rows.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Use the deployed config of this horizon (its steps are the prediction length).
    #[arg(long, value_name = "H")]
    pub horizon: Option<Horizon>,
    /// Forecast this series (parquet or CSV with date and value columns) instead of the root's.
    #[arg(long, value_name = "FILE")]
    pub series: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    pub context_length: Option<usize>,
    #[arg(long, value_name = "N")]
    pub prediction_length: Option<usize>,
    #[arg(long, value_name = "N")]
    pub num_samples: Option<usize>,
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// Send a test message to smtp.to.
    #[arg(long, required = true)]
    pub test: bool,
}

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Output directory (writes usdclp.parquet there).
    #[arg(long, default_value = "data")]
    pub out: PathBuf,
    #[arg(long, default_value_t = crate::data::demo::DEFAULT_SEED)]
    pub seed: u64,
    /// Business days to generate.
    #[arg(long, default_value_t = crate::data::demo::DEFAULT_ROWS)]
    pub days: usize,
}

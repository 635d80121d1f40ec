//! model-optimizer: keeps the Chronos-Bolt USD/CLP forecasters tuned.
//!
//! # Layout
//! - `cli` parses flags (clap); `hiargs` builds the validated [`hiargs::Context`] from them,
//!   the settings of `config` and the clock; `commands/` has one file per subcommand.
//! - `domain` holds the shared values (`Horizon`, `InferenceParams` and their range checks).
//! - `data/` is the only module that knows polars; `model/` the only one that knows candle;
//!   `deploy/` the only one that knows git2; `notify` the only one that knows lettre; `plot` the
//!   only one that knows plotters.
//! - The pure core does no I/O and takes `now` as an argument: `policy/` (decide, search,
//!   validate, outcome, the applier rule and replay) and the shared `forecast`, `triggers/`
//!   and `history`.
//! - `output` is the only writer to stdout; diagnostics go to stderr through tracing.

pub mod atomic;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod deadman;
pub mod deploy;
pub mod domain;
pub mod exit;
pub mod exposition;
pub mod failpoint;
pub mod forecast;
pub mod forecaster_config;
pub mod hiargs;
pub mod history;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod output;
pub mod plot;
pub mod policy;
pub mod series;
pub mod triggers;

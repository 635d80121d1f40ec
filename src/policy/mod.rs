//! The pure decision core: what should happen to a horizon, and everything derived from that
//! decision. No I/O and no clock: callers pass the data, the model and `now`.
//!
//! # Layout
//! - `decide`: one horizon's decision from a `World` (probation, a trial, the triggers, then
//!   search and validation); `probation`, `trial` and `hindcast` are its live checks.
//! - `search`: the grid search on the selection origins; `forward_cache`: the batched forwards
//!   every caller shares; `backtest`: origins and scores; `cost`: the inference cost model.
//! - `validate`: candidate against current config on the confirmation origins (the error
//!   measures and tests are the shared top-level `metrics`).
//! - `health`: the config in effect judged on the latest confirmation origins (attention);
//!   `digest`: a run's one mail from its results.
//! - `outcome`: a decision and its effect, with the rows, records and mails derived from it;
//!   `render`: their shared texts; `applier`: carrying a decision out, through files or memory.
//! - `replay`: the weekly job simulated on history with the in-memory applier.

pub mod applier;
pub mod backtest;
pub mod cost;
pub mod decide;
pub mod digest;
pub mod forward_cache;
pub mod health;
pub mod hindcast;
pub mod outcome;
pub mod probation;
pub mod render;
pub mod replay;
pub mod search;
pub mod trial;
pub mod validate;

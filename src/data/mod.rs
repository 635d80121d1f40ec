//! The data layer: the only module that knows polars. It reads and writes the series, the
//! tracked predictions and the optimization history as parquet (CSV too for the series), and
//! turns every problem with those files into a one-line exit-78 error naming the file, the
//! problem and the fix. Other modules see only our types (`Series`, `Prediction`,
//! `HistoryRecord`).

pub mod demo;
mod frame;
pub mod history;
mod predictions;
pub mod raw;
mod series;

pub use predictions::{load_predictions, write_predictions};
pub use series::{load_series, require_len, require_observed_context, write_series_parquet};

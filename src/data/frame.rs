//! Polars plumbing shared by the data files: reading a parquet file with one-line errors,
//! typed column access that reports schema problems as exit-78 errors, and atomic writes.

use std::fs::File;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use polars::prelude::*;

use crate::exit;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01: polars stores a Date as days since
/// the Unix epoch.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Our messages are one line: whitespace runs (newlines included) become one space and
/// control characters (from a binary file's bytes) are shown escaped.
pub(crate) fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A polars error as a short clause: one line, without the hints meant for Python users
/// (`infer_schema_length=10000`, ...), at most 200 characters.
pub(crate) fn polars_message(err: &PolarsError) -> String {
    let mut text = one_line(&err.to_string());
    for hint in ["You might want to try", "Consider setting", "Hint:"] {
        if let Some(at) = text.find(hint) {
            text.truncate(at);
        }
    }
    let text = text.trim_end().trim_end_matches([',', ';', ':', ' ']);
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

pub(crate) fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

pub(crate) fn days_from_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// Reads a whole parquet file. A missing, empty or unreadable file is an exit-78 error
/// naming the file and ending with `fix`.
pub(crate) fn read_parquet(path: &Path, fix: &str) -> anyhow::Result<DataFrame> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(exit::invalid(format!(
                "{}: file not found; {fix}",
                path.display()
            )));
        }
        Err(e) => {
            return Err(exit::invalid(format!(
                "{}: cannot open ({}); {fix}",
                path.display(),
                one_line(&e.to_string())
            )));
        }
    };
    let size = file.metadata().map_or(0, |m| m.len());
    if size == 0 {
        return Err(exit::invalid(format!(
            "{}: file is empty (0 bytes); {fix}",
            path.display()
        )));
    }
    ParquetReader::new(file).finish().map_err(|e| {
        exit::invalid(format!(
            "{}: cannot read as parquet ({}); the file is corrupt or not parquet; {fix}",
            path.display(),
            polars_message(&e)
        ))
    })
}

/// Writes `df` to `path` through the one atomic replacement (`crate::atomic`), so a crash
/// leaves either the old or the new file, never a torn one. `failpoint` names the crash point
/// between the fsync and the rename (for the crash-safety tests). The file is encoded in
/// memory first and written with plain I/O: a file error (a full disk, say) then reaches the
/// operator as itself, where the encoder would report only that its transport failed.
pub(crate) fn write_parquet_atomic(
    path: &Path,
    df: &mut DataFrame,
    failpoint: Option<&str>,
) -> anyhow::Result<()> {
    path.file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(df).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot encode as parquet: {}",
            path.display(),
            polars_message(&e)
        )
    })?;
    crate::atomic::write_atomic_file(path, &bytes, failpoint)
        .with_context(|| format!("{} was not modified", path.display()))
}

/// A data frame read from `path`, with typed column access whose errors name the file, the
/// column, the problem and `fix`.
pub(crate) struct Frame<'a> {
    pub df: DataFrame,
    pub path: &'a Path,
    pub fix: &'a str,
}

impl Frame<'_> {
    pub fn height(&self) -> usize {
        self.df.height()
    }

    pub fn names(&self) -> Vec<String> {
        self.df
            .get_column_names()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.df.column(name).is_ok()
    }

    /// Errors unless every one of `expected` is present (and, if `exact`, nothing else).
    pub fn require_columns(&self, expected: &[&str], exact: bool) -> anyhow::Result<()> {
        let found = self.names();
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|e| !found.iter().any(|f| f == e))
            .collect();
        let extra: Vec<&str> = if exact {
            found
                .iter()
                .map(String::as_str)
                .filter(|f| !expected.contains(f))
                .collect()
        } else {
            Vec::new()
        };
        if missing.is_empty() && extra.is_empty() {
            return Ok(());
        }
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing column(s) {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            problems.push(format!("unexpected column(s) {}", extra.join(", ")));
        }
        let problem = problems.join("; ");
        Err(exit::invalid(format!(
            "{}: {problem} (found: {}; expected: {}); {}",
            self.path.display(),
            found.join(", "),
            expected.join(", "),
            self.fix
        )))
    }

    fn column(&self, name: &str) -> anyhow::Result<&Column> {
        self.df.column(name).map_err(|_| {
            exit::invalid(format!(
                "{}: missing column {name} (found: {}); {}",
                self.path.display(),
                self.names().join(", "),
                self.fix
            ))
        })
    }

    fn wrong_type(&self, name: &str, found: &DataType, expected: &str) -> anyhow::Error {
        exit::invalid(format!(
            "{}: column {name} has type {found}, expected {expected}; {}",
            self.path.display(),
            self.fix
        ))
    }

    /// Errors on the first null of a column that must not have nulls.
    fn no_nulls<T>(&self, name: &str, values: Vec<Option<T>>) -> anyhow::Result<Vec<T>> {
        let count = values.iter().filter(|v| v.is_none()).count();
        if let Some(row) = values.iter().position(Option::is_none) {
            return Err(exit::invalid(format!(
                "{}: column {name} has {count} null value(s), the first at row {row}, but must \
                 not be null; {}",
                self.path.display(),
                self.fix
            )));
        }
        Ok(values.into_iter().flatten().collect())
    }

    pub fn opt_str(&self, name: &str) -> anyhow::Result<Vec<Option<String>>> {
        let col = self.column(name)?;
        match col.dtype() {
            DataType::String => Ok(col.str()?.iter().map(|s| s.map(str::to_owned)).collect()),
            other => Err(self.wrong_type(name, other, "str")),
        }
    }

    pub fn req_str(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let values = self.opt_str(name)?;
        self.no_nulls(name, values)
    }

    pub fn opt_f64(&self, name: &str) -> anyhow::Result<Vec<Option<f64>>> {
        let col = self.column(name)?;
        match col.dtype() {
            DataType::Float64 => Ok(col.f64()?.iter().collect()),
            other => Err(self.wrong_type(name, other, "f64")),
        }
    }

    pub fn req_f64(&self, name: &str) -> anyhow::Result<Vec<f64>> {
        let values = self.opt_f64(name)?;
        self.no_nulls(name, values)
    }

    /// Any integer or float column, cast to f64 (for the series values).
    pub fn numeric_as_f64(&self, name: &str) -> anyhow::Result<Vec<Option<f64>>> {
        let col = self.column(name)?;
        let dtype = col.dtype();
        if !(dtype.is_float() || dtype.is_integer()) {
            return Err(self.wrong_type(name, dtype, "a number (f64)"));
        }
        let cast = col.cast(&DataType::Float64)?;
        Ok(cast.f64()?.iter().collect())
    }

    pub fn opt_i64(&self, name: &str) -> anyhow::Result<Vec<Option<i64>>> {
        let col = self.column(name)?;
        match col.dtype() {
            DataType::Int64 => Ok(col.i64()?.iter().collect()),
            other => Err(self.wrong_type(name, other, "i64")),
        }
    }

    pub fn req_bool(&self, name: &str) -> anyhow::Result<Vec<bool>> {
        let col = self.column(name)?;
        let values: Vec<Option<bool>> = match col.dtype() {
            DataType::Boolean => col.bool()?.iter().collect(),
            other => return Err(self.wrong_type(name, other, "bool")),
        };
        self.no_nulls(name, values)
    }

    /// A calendar-date column. Besides `Date`, a `Datetime` whose values are all at midnight
    /// is accepted, because pandas writes dates as timestamps by default.
    pub fn opt_date(&self, name: &str) -> anyhow::Result<Vec<Option<NaiveDate>>> {
        let col = self.column(name)?;
        match col.dtype() {
            DataType::Date => Ok(col
                .date()?
                .physical()
                .iter()
                .map(|d| d.and_then(date_from_days))
                .collect()),
            DataType::Datetime(unit, _) => {
                let per_day: i64 = match unit {
                    TimeUnit::Nanoseconds => 86_400_000_000_000,
                    TimeUnit::Microseconds => 86_400_000_000,
                    TimeUnit::Milliseconds => 86_400_000,
                };
                let raw: Vec<Option<i64>> = col.datetime()?.physical().iter().collect();
                let mut out = Vec::with_capacity(raw.len());
                for (row, value) in raw.into_iter().enumerate() {
                    out.push(match value {
                        None => None,
                        Some(v) if v.rem_euclid(per_day) == 0 => {
                            let days = i32::try_from(v.div_euclid(per_day)).ok();
                            days.and_then(date_from_days)
                        }
                        Some(_) => {
                            return Err(exit::invalid(format!(
                                "{}: column {name} holds timestamps with a time of day (first at \
                                 row {row}), expected calendar dates; store it as a Date \
                                 column; {}",
                                self.path.display(),
                                self.fix
                            )));
                        }
                    });
                }
                Ok(out)
            }
            other => Err(self.wrong_type(name, other, "date")),
        }
    }

    pub fn req_date(&self, name: &str) -> anyhow::Result<Vec<NaiveDate>> {
        let values = self.opt_date(name)?;
        self.no_nulls(name, values)
    }

    /// A UTC timestamp column stored as `Datetime(microseconds)` without a time zone.
    pub fn req_utc_micros(&self, name: &str) -> anyhow::Result<Vec<DateTime<Utc>>> {
        let col = self.column(name)?;
        let raw: Vec<Option<i64>> = match col.dtype() {
            DataType::Datetime(TimeUnit::Microseconds, None) => col.datetime()?.physical().iter().collect(),
            other => return Err(self.wrong_type(name, other, "datetime[μs] (UTC, no time zone)")),
        };
        let raw = self.no_nulls(name, raw)?;
        raw.into_iter()
            .enumerate()
            .map(|(row, micros)| {
                DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
                    exit::invalid(format!(
                        "{}: column {name} at row {row} is out of range; {}",
                        self.path.display(),
                        self.fix
                    ))
                })
            })
            .collect()
    }
}

/// Column builders for writing our own files.
pub(crate) fn date_column(name: &str, dates: impl IntoIterator<Item = NaiveDate>) -> anyhow::Result<Column> {
    let days: Vec<i32> = dates.into_iter().map(days_from_date).collect();
    Ok(Column::new(name.into(), days).cast(&DataType::Date)?)
}

pub(crate) fn utc_micros_column(
    name: &str,
    times: impl IntoIterator<Item = DateTime<Utc>>,
) -> anyhow::Result<Column> {
    let micros: Vec<i64> = times.into_iter().map(|t| t.timestamp_micros()).collect();
    Ok(Column::new(name.into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))?)
}

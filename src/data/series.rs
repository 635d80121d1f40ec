//! The observed series file (`data/usdclp.parquet`, or a CSV such as the shared
//! `usdclp_daily.csv`): loading with every check the pure core relies on, and writing.

use std::path::Path;

use chrono::NaiveDate;
use polars::prelude::*;

use super::frame::{self, one_line, Frame};
use crate::exit;
use crate::series::Series;

/// The value column's names, in order of preference.
const VALUE_NAMES: [&str; 2] = ["value", "usdclp"];

/// How to point the operator at a good series file.
const FIX: &str = "fix the file, point paths.series at a valid file, or regenerate the synthetic \
                   sample with `model-optimizer demo-data`";

/// How to point the operator at a series file when there is none.
const NOT_FOUND_FIX: &str = "point paths.series (or --root) at an existing .parquet or .csv \
                             file, or generate the synthetic sample with `model-optimizer demo-data`";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv,
}

impl Format {
    /// Where row `i` (0-based, header excluded) is, in the terms of the file's own format.
    fn at(self, i: usize) -> String {
        match self {
            Format::Parquet => format!("row {i} (0-based)"),
            Format::Csv => format!("line {}", i + 2),
        }
    }
}

/// The columns as read, before the checks.
struct Raw {
    dates: Vec<Option<NaiveDate>>,
    values: Vec<Option<f64>>,
}

/// Loads and checks a series: `.parquet` with `date` (Date) and `value` (any number, cast to
/// f64), or `.csv` with an ISO `date` and `value`; `usdclp` is accepted for `value`. Dates must
/// be present and strictly increasing; values finite and > 0, or null for a missing value
/// (NaN in the result). Every problem is an exit-78 error naming the file, the first
/// offending row and the fix.
pub fn load_series(path: &Path) -> anyhow::Result<Series> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("parquet") => Format::Parquet,
        Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
        _ => {
            return Err(exit::invalid(format!(
                "{}: unsupported series file type (expected a .parquet or .csv file); {FIX}",
                path.display()
            )));
        }
    };
    check_file(path)?;
    let raw = match format {
        Format::Parquet => read_parquet_columns(path)?,
        Format::Csv => read_csv_columns(path)?,
    };
    let series = check(path, format, raw)?;
    let missing = series.missing();
    if missing > 0 {
        tracing::info!(
            file = %path.display(),
            missing,
            rows = series.len(),
            "series has missing values (nulls)"
        );
    }
    Ok(series)
}

/// Refuses (exit 78, naming `path`) a series whose forecast context of `context_length`
/// values has no observed value (see `Series::check_forecast_context`).
pub fn require_observed_context(series: &Series, context_length: usize, path: &Path) -> anyhow::Result<()> {
    series
        .check_forecast_context(context_length)
        .map_err(|e| exit::invalid(format!("{}: {e}", path.display())))
}

/// Errors unless `series` has at least `needed` rows; `why` says what they are needed for
/// (e.g. "the largest context plus the validation window").
pub fn require_len(series: &Series, needed: usize, path: &Path, why: &str) -> anyhow::Result<()> {
    if series.len() >= needed {
        return Ok(());
    }
    Err(exit::invalid(format!(
        "{}: series too short: {} rows found, {needed} needed ({why}); supply a longer series \
         or reduce the context lengths / validation window in the settings",
        path.display(),
        series.len()
    )))
}

/// Writes a series as parquet (`date` Date, `value` f64, NaN written as null), atomically.
pub fn write_series_parquet(path: &Path, series: &Series) -> anyhow::Result<()> {
    anyhow::ensure!(
        series.dates.len() == series.values.len(),
        "series has {} dates but {} values",
        series.dates.len(),
        series.values.len()
    );
    let values: Vec<Option<f64>> = series
        .values
        .iter()
        .map(|v| if v.is_nan() { None } else { Some(*v) })
        .collect();
    let mut df = DataFrame::new(
        series.len(),
        vec![
            frame::date_column("date", series.dates.iter().copied())?,
            Column::new("value".into(), values),
        ],
    )?;
    frame::write_parquet_atomic(path, &mut df, None)
}

fn value_name(frame: &Frame<'_>) -> anyhow::Result<&'static str> {
    let value = VALUE_NAMES.iter().copied().find(|n| frame.has(n));
    if let (true, Some(value)) = (frame.has("date"), value) {
        return Ok(value);
    }
    let mut missing = Vec::new();
    if !frame.has("date") {
        missing.push("date");
    }
    if value.is_none() {
        missing.push("value (or usdclp)");
    }
    Err(exit::invalid(format!(
        "{}: missing column(s) {} (found: {}; expected: date, value); {FIX}",
        frame.path.display(),
        missing.join(", "),
        frame.names().join(", ")
    )))
}

fn read_parquet_columns(path: &Path) -> anyhow::Result<Raw> {
    let frame = Frame {
        df: frame::read_parquet(path, FIX)?,
        path,
        fix: FIX,
    };
    let value = value_name(&frame)?;
    Ok(Raw {
        dates: frame.opt_date("date")?,
        values: frame.numeric_as_f64(value)?,
    })
}

/// The checks before any parsing: the file exists, is readable and is not empty.
fn check_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(exit::invalid(format!(
            "{}: series file not found; {NOT_FOUND_FIX}",
            path.display()
        ))),
        Err(e) => Err(exit::invalid(format!(
            "{}: cannot open ({}); {FIX}",
            path.display(),
            one_line(&e.to_string())
        ))),
        Ok(m) if m.is_dir() => Err(exit::invalid(format!(
            "{}: is a directory, not a series file; {NOT_FOUND_FIX}",
            path.display()
        ))),
        Ok(m) if m.len() == 0 => Err(exit::invalid(format!(
            "{}: file is empty (0 bytes); {FIX}",
            path.display()
        ))),
        Ok(_) => Ok(()),
    }
}

fn read_csv_columns(path: &Path) -> anyhow::Result<Raw> {
    // Every column as text: we parse dates and numbers ourselves so a bad cell is reported
    // with its line instead of as a polars inference error.
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(SerReader::finish)
        .map_err(|e| {
            exit::invalid(format!(
                "{}: cannot read as CSV ({}); {FIX}",
                path.display(),
                frame::polars_message(&e)
            ))
        })?;
    let frame = Frame { df, path, fix: FIX };
    let value = value_name(&frame)?;
    let date_text = frame.opt_str("date")?;
    let value_text = frame.opt_str(value)?;
    let mut dates = Vec::with_capacity(date_text.len());
    for (i, text) in date_text.iter().enumerate() {
        dates.push(match text.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| {
                exit::invalid(format!(
                    "{}: date {t:?} at {} is not an ISO date (YYYY-MM-DD); {FIX}",
                    path.display(),
                    Format::Csv.at(i)
                ))
            })?),
        });
    }
    let mut values = Vec::with_capacity(value_text.len());
    for (i, text) in value_text.iter().enumerate() {
        values.push(match text.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(t.parse::<f64>().map_err(|_| {
                exit::invalid(format!(
                    "{}: {value} {t:?} at {} is not a number; write a decimal number, or leave \
                     the field empty for a missing value; {FIX}",
                    path.display(),
                    Format::Csv.at(i)
                ))
            })?),
        });
    }
    Ok(Raw { dates, values })
}

fn check(path: &Path, format: Format, raw: Raw) -> anyhow::Result<Series> {
    let p = path.display();
    if raw.dates.is_empty() {
        return Err(exit::invalid(format!(
            "{p}: no rows (the series is empty); {FIX}"
        )));
    }
    let null_dates = raw.dates.iter().filter(|d| d.is_none()).count();
    if let Some(i) = raw.dates.iter().position(Option::is_none) {
        return Err(exit::invalid(format!(
            "{p}: {null_dates} row(s) have no date, the first at {}; every row needs a date: \
             fill in or remove those rows",
            format.at(i)
        )));
    }
    let dates: Vec<NaiveDate> = raw.dates.into_iter().flatten().collect();
    for (i, pair) in dates.windows(2).enumerate() {
        let (prev, cur) = (pair[0], pair[1]);
        if cur == prev {
            return Err(exit::invalid(format!(
                "{p}: duplicate date {cur} at {} (same as {}); dates must be strictly \
                 increasing: remove the duplicate row",
                format.at(i + 1),
                format.at(i)
            )));
        }
        if cur < prev {
            return Err(exit::invalid(format!(
                "{p}: dates out of order at {}: {cur} comes after {prev} ({}); dates must be \
                 strictly increasing: sort the file by date",
                format.at(i + 1),
                format.at(i)
            )));
        }
    }
    let mut values = Vec::with_capacity(raw.values.len());
    for (i, value) in raw.values.into_iter().enumerate() {
        match value {
            None => values.push(f64::NAN),
            Some(v) if v.is_finite() && v > 0.0 => values.push(v),
            Some(v) => {
                return Err(exit::invalid(format!(
                    "{p}: value {v} at {} ({}) is invalid: values must be finite and > 0 (leave \
                     it null for a missing value); fix or blank that value",
                    format.at(i),
                    dates[i]
                )));
            }
        }
    }
    if values.iter().all(|v| v.is_nan()) {
        return Err(exit::invalid(format!(
            "{p}: all {} values are missing (null); {FIX}",
            values.len()
        )));
    }
    Ok(Series { dates, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{code_of, ExitCode};
    use std::path::PathBuf;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn write_df(path: &Path, mut df: DataFrame) {
        let mut f = std::fs::File::create(path).unwrap();
        ParquetWriter::new(&mut f).finish(&mut df).unwrap();
    }

    fn dates_col(dates: &[&str]) -> Column {
        frame::date_column("date", dates.iter().map(|s| d(s))).unwrap()
    }

    fn parquet(dir: &Path, dates: &[&str], values: Vec<Option<f64>>) -> PathBuf {
        let path = dir.join("s.parquet");
        let df = DataFrame::new(
            dates.len(),
            vec![dates_col(dates), Column::new("value".into(), values)],
        )
        .unwrap();
        write_df(&path, df);
        path
    }

    /// Loads `path` expecting an exit-78 error; returns its message after checking it names
    /// the file.
    fn invalid(path: &Path) -> String {
        let err = load_series(path).expect_err("load should fail");
        assert_eq!(code_of(&err), ExitCode::Invalid, "{err:#}");
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        msg
    }

    const DAYS: [&str; 4] = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"];

    #[test]
    fn good_parquet_round_trips_with_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let series = Series {
            dates: DAYS.iter().map(|s| d(s)).collect(),
            values: vec![900.5, f64::NAN, 901.25, 899.0],
        };
        let path = dir.path().join("sub/out.parquet");
        write_series_parquet(&path, &series).unwrap();
        let back = load_series(&path).unwrap();
        assert_eq!(back.dates, series.dates);
        assert_eq!(back.missing(), 1);
        assert_eq!(back.values[0].to_bits(), 900.5_f64.to_bits());
        assert!(back.values[1].is_nan());
        assert_eq!(back.values[2..], [901.25, 899.0]);
        assert!(!dir.path().join("sub/out.parquet.tmp").exists());
    }

    #[test]
    fn integer_values_and_usdclp_name_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.parquet");
        let df = DataFrame::new(
            2,
            vec![
                dates_col(&DAYS[..2]),
                Column::new("usdclp".into(), vec![Some(900_i64), None]),
            ],
        )
        .unwrap();
        write_df(&path, df);
        let s = load_series(&path).unwrap();
        assert_eq!(s.values[0].to_bits(), 900.0_f64.to_bits());
        assert!(s.values[1].is_nan());
    }

    #[test]
    fn midnight_timestamps_are_dates_but_times_of_day_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let day_us = 86_400_000_000_i64;
        let base = i64::from(frame::days_from_date(d("2024-01-02"))) * day_us;
        let ts = |v: Vec<i64>| {
            Column::new("date".into(), v)
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .unwrap()
        };
        let value = || Column::new("value".into(), vec![1.0, 2.0]);
        write_df(
            &path,
            DataFrame::new(2, vec![ts(vec![base, base + day_us]), value()]).unwrap(),
        );
        assert_eq!(
            load_series(&path).unwrap().dates,
            [d("2024-01-02"), d("2024-01-03")]
        );
        write_df(
            &path,
            DataFrame::new(2, vec![ts(vec![base, base + day_us + 3_600_000_000]), value()]).unwrap(),
        );
        assert!(invalid(&path).contains("time of day (first at row 1"));
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["none.parquet", "none.csv"] {
            let msg = invalid(&dir.path().join(name));
            assert!(msg.contains("file not found"), "{msg}");
            assert!(msg.contains("demo-data"), "{msg}");
        }
    }

    #[test]
    fn unsupported_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.xlsx");
        std::fs::write(&path, "x").unwrap();
        assert!(invalid(&path).contains("expected a .parquet or .csv"));
    }

    #[test]
    fn empty_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["e.parquet", "e.csv"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "").unwrap();
            assert!(invalid(&path).contains("file is empty (0 bytes)"));
        }
        // A valid parquet file with the right schema and zero rows.
        let path = parquet(dir.path(), &[], vec![]);
        assert!(invalid(&path).contains("no rows"));
        // A CSV with only its header.
        let csv = dir.path().join("h.csv");
        std::fs::write(&csv, "date,value\n").unwrap();
        assert!(invalid(&csv).contains("no rows"));
    }

    #[test]
    fn corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        std::fs::write(&path, "date,value\n2024-01-02,900\n").unwrap();
        assert!(invalid(&path).contains("cannot read as parquet"));
        // A truncated parquet file.
        let good = parquet(dir.path(), &DAYS, vec![Some(1.0); 4]);
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(invalid(&path).contains("corrupt or not parquet"));
    }

    #[test]
    fn malformed_csv() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.csv");
        std::fs::write(&csv, "date,value\n2024-01-02,1,3\n").unwrap();
        let msg = invalid(&csv);
        assert!(msg.contains("cannot read as CSV (found more fields"), "{msg}");
        // Binary garbage: control characters are escaped, Python-only hints dropped.
        std::fs::write(&csv, "\u{0}\u{1}garbage\n\"x").unwrap();
        let msg = invalid(&csv);
        assert!(
            msg.contains("cannot read as CSV") && msg.contains("\\u{0}"),
            "{msg}"
        );
        assert!(
            !msg.contains('\u{0}') && !msg.contains("infer_schema_length"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_column_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.parquet");
        let df = DataFrame::new(
            1,
            vec![
                frame::date_column("day", [d("2024-01-02")]).unwrap(),
                Column::new("price".into(), vec![1.0]),
            ],
        )
        .unwrap();
        write_df(&path, df);
        let msg = invalid(&path);
        assert!(msg.contains("missing column(s) date, value (or usdclp)"), "{msg}");
        assert!(msg.contains("found: day, price"), "{msg}");
        let csv = dir.path().join("w.csv");
        std::fs::write(&csv, "date,close\n2024-01-02,900\n").unwrap();
        let msg = invalid(&csv);
        assert!(msg.contains("missing column(s) value (or usdclp)"), "{msg}");
        assert!(msg.contains("found: date, close"), "{msg}");
    }

    #[test]
    fn wrong_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.parquet");
        let df = DataFrame::new(
            1,
            vec![
                Column::new("date".into(), vec!["2024-01-02"]),
                Column::new("value".into(), vec![1.0]),
            ],
        )
        .unwrap();
        write_df(&path, df);
        let msg = invalid(&path);
        assert!(msg.contains("column date has type str, expected date"), "{msg}");
        let df = DataFrame::new(
            1,
            vec![dates_col(&DAYS[..1]), Column::new("value".into(), vec!["900"])],
        )
        .unwrap();
        write_df(&path, df);
        let msg = invalid(&path);
        assert!(
            msg.contains("column value has type str, expected a number"),
            "{msg}"
        );
        // In a CSV the same mistakes are unparsable cells, reported with their line.
        let csv = dir.path().join("w.csv");
        std::fs::write(&csv, "date,value\n2024-01-02,900\n02/01/2024,901\n").unwrap();
        assert!(invalid(&csv).contains("date \"02/01/2024\" at line 3 is not an ISO date"));
        std::fs::write(&csv, "date,usdclp\n2024-01-02,900\n2024-01-03,n/a\n").unwrap();
        assert!(invalid(&csv).contains("usdclp \"n/a\" at line 3 is not a number"));
    }

    #[test]
    fn null_dates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.parquet");
        let days: Vec<Option<i32>> = vec![Some(19_724), None, Some(19_726)];
        let df = DataFrame::new(
            3,
            vec![
                Column::new("date".into(), days).cast(&DataType::Date).unwrap(),
                Column::new("value".into(), vec![1.0, 2.0, 3.0]),
            ],
        )
        .unwrap();
        write_df(&path, df);
        let msg = invalid(&path);
        assert!(
            msg.contains("1 row(s) have no date, the first at row 1 (0-based)"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_dates() {
        let dir = tempfile::tempdir().unwrap();
        let path = parquet(
            dir.path(),
            &["2024-01-02", "2024-01-03", "2024-01-03", "2024-01-01"],
            vec![Some(1.0); 4],
        );
        let msg = invalid(&path);
        assert!(
            msg.contains("duplicate date 2024-01-03 at row 2 (0-based) (same as row 1 (0-based))"),
            "{msg}"
        );
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "date,value\n2024-01-02,1\n2024-01-02,2\n").unwrap();
        assert!(invalid(&csv).contains("duplicate date 2024-01-02 at line 3 (same as line 2)"));
    }

    #[test]
    fn unsorted_dates() {
        let dir = tempfile::tempdir().unwrap();
        let path = parquet(
            dir.path(),
            &["2024-01-02", "2024-01-04", "2024-01-03", "2024-01-03"],
            vec![Some(1.0); 4],
        );
        let msg = invalid(&path);
        assert!(
            msg.contains("dates out of order at row 2 (0-based): 2024-01-03 comes after 2024-01-04"),
            "{msg}"
        );
        assert!(msg.contains("sort the file by date"), "{msg}");
    }

    #[test]
    fn negative_zero_infinite_and_nan_values() {
        let dir = tempfile::tempdir().unwrap();
        for (bad, shown) in [
            (-3.5, "-3.5"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "NaN"),
        ] {
            let path = parquet(dir.path(), &DAYS, vec![Some(1.0), None, Some(bad), Some(2.0)]);
            let msg = invalid(&path);
            assert!(
                msg.contains(&format!(
                    "value {shown} at row 2 (0-based) (2024-01-04) is invalid"
                )),
                "{msg}"
            );
            assert!(msg.contains("finite and > 0"), "{msg}");
        }
        let csv = dir.path().join("v.csv");
        std::fs::write(&csv, "date,value\n2024-01-02,1\n2024-01-03,-2\n").unwrap();
        assert!(invalid(&csv).contains("value -2 at line 3 (2024-01-03) is invalid"));
    }

    #[test]
    fn nulls_are_missing_values_but_not_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.csv");
        std::fs::write(
            &csv,
            "date,value\n2024-01-02,900\n2024-01-03,\n2024-01-04,901.5\n",
        )
        .unwrap();
        let s = load_series(&csv).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.missing(), 1);
        assert!(s.values[1].is_nan());
        let path = parquet(dir.path(), &DAYS[..2], vec![None, None]);
        assert!(invalid(&path).contains("all 2 values are missing"));
    }

    #[test]
    fn require_len_says_needed_and_found() {
        let s = Series {
            dates: DAYS.iter().map(|s| d(s)).collect(),
            values: vec![1.0; 4],
        };
        let path = Path::new("data/usdclp.parquet");
        require_len(&s, 4, path, "context").unwrap();
        let err = require_len(&s, 455, path, "largest context 365 + validation 90").unwrap_err();
        assert_eq!(code_of(&err), ExitCode::Invalid);
        let msg = err.to_string();
        assert!(msg.starts_with("data/usdclp.parquet: series too short: 4 rows found, 455 needed"));
        assert!(msg.contains("(largest context 365 + validation 90)"), "{msg}");
    }

    /// The real USD/CLP series from `../shared` (never committed) loads as is.
    #[test]
    fn shared_usdclp_csv_loads() {
        let shared = std::env::var_os("MODEL_OPTIMIZER_SHARED").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
            PathBuf::from,
        );
        let path = shared.join("data/usdclp_daily.csv");
        let s = load_series(&path)
            .unwrap_or_else(|e| panic!("{e:#} (set MODEL_OPTIMIZER_SHARED to the shared directory)"));
        assert_eq!(s.len(), 7_741);
        assert_eq!(s.dates[0], d("1994-10-18"));
        assert_eq!(s.last_date(), Some(d("2024-06-28")));
        assert_eq!(s.values[0].to_bits(), 410.112_f64.to_bits());
        assert_eq!(s.missing(), 0);
    }
}

//! The optimization history file (`data/optimization_history/history.parquet`): reading it
//! with a strict schema and appending rows atomically. A damaged file is never overwritten.

use std::path::Path;

use polars::prelude::*;

use super::frame::{self, Frame};
use crate::domain::{Severity, TriggerKind};
use crate::exit;
use crate::history::{Action, HistoryRecord, RecordMetrics, RecordParams};

/// The columns, in file order.
pub const COLUMNS: [&str; 27] = [
    "run_id",
    "horizon",
    "optimization_date",
    "action",
    "triggered_by",
    "performance_degradation_pct",
    "drift_severity",
    "days_since_last",
    "success",
    "old_context_length",
    "old_num_samples",
    "old_temperature",
    "new_context_length",
    "new_num_samples",
    "new_temperature",
    "candidate_rmse",
    "candidate_mape",
    "candidate_mae",
    "candidate_bias",
    "candidate_coverage_95",
    "current_rmse",
    "current_mape",
    "current_mae",
    "current_bias",
    "current_coverage_95",
    "duration_seconds",
    "message",
];

/// The health column after [`COLUMNS`]: null when not judged, empty when healthy.
const ATTENTION: &str = "attention";

/// The old or new parameter columns: context length, number of samples, temperature.
type ParamColumns = (Vec<Option<i64>>, Vec<Option<i64>>, Vec<Option<f64>>);

const FIX: &str = "the history file was not modified: restore it from a backup or move it aside \
                   (a missing history file means an empty history)";

/// Reads the history. A missing file is an empty history; an unreadable file or one with a
/// different schema is an exit-78 error (the file is left as it is).
///
/// `optimization_date` is stored with microsecond precision, so a record read back equals
/// the one appended when its timestamp had no sub-microsecond part.
pub fn read(path: &Path) -> anyhow::Result<Vec<HistoryRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let frame = Frame {
        df: frame::read_parquet(path, FIX)?,
        path,
        fix: FIX,
    };
    // Exact: a column we do not know would be lost by the next append's rewrite. `attention`
    // is the one column a file written before health was judged may lack.
    let has_attention = frame.has(ATTENTION);
    if has_attention {
        frame.require_columns(&[&COLUMNS[..], &[ATTENTION]].concat(), true)?;
    } else {
        frame.require_columns(&COLUMNS, true)?;
    }
    let run_id = frame.req_str("run_id")?;
    let horizon = frame.req_str("horizon")?;
    let date = frame.req_utc_micros("optimization_date")?;
    let action_text = frame.req_str("action")?;
    let triggered_by = frame.req_str("triggered_by")?;
    let degradation = frame.opt_f64("performance_degradation_pct")?;
    let drift = frame.opt_str("drift_severity")?;
    let days = frame.opt_i64("days_since_last")?;
    let success = frame.req_bool("success")?;
    let params = |prefix: &str| -> anyhow::Result<ParamColumns> {
        Ok((
            frame.opt_i64(&format!("{prefix}_context_length"))?,
            frame.opt_i64(&format!("{prefix}_num_samples"))?,
            frame.opt_f64(&format!("{prefix}_temperature"))?,
        ))
    };
    let metrics = |prefix: &str| -> anyhow::Result<_> {
        Ok([
            frame.opt_f64(&format!("{prefix}_rmse"))?,
            frame.opt_f64(&format!("{prefix}_mape"))?,
            frame.opt_f64(&format!("{prefix}_mae"))?,
            frame.opt_f64(&format!("{prefix}_bias"))?,
            frame.opt_f64(&format!("{prefix}_coverage_95"))?,
        ])
    };
    let old = params("old")?;
    let new = params("new")?;
    let candidate = metrics("candidate")?;
    let current = metrics("current")?;
    let duration = frame.req_f64("duration_seconds")?;
    let message = frame.req_str("message")?;
    let attention = if has_attention {
        frame.opt_str(ATTENTION)?
    } else {
        vec![None; frame.height()]
    };

    let mut records = Vec::with_capacity(frame.height());
    for i in 0..frame.height() {
        let params_at = |p: &ParamColumns| RecordParams {
            context_length: p.0[i],
            num_samples: p.1[i],
            temperature: p.2[i],
        };
        let metrics_at = |m: &[Vec<Option<f64>>; 5]| RecordMetrics {
            rmse: m[0][i],
            mape: m[1][i],
            mae: m[2][i],
            bias: m[3][i],
            coverage_95: m[4][i],
        };
        let bad = |what: &str, e: String| {
            exit::invalid(format!("{}: {what} at row {i}: {e}; {FIX}", path.display()))
        };
        records.push(HistoryRecord {
            run_id: run_id[i].clone(),
            horizon: horizon[i].parse().map_err(|e| bad("horizon", e))?,
            optimization_date: date[i],
            action: parse_action(&action_text[i]).map_err(|e| bad("action", e))?,
            triggered_by: TriggerKind::split(&triggered_by[i]).map_err(|e| bad("triggered_by", e))?,
            performance_degradation_pct: degradation[i],
            drift_severity: drift[i]
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| bad("drift_severity", e))?,
            days_since_last: days[i],
            success: success[i],
            old: params_at(&old),
            new: params_at(&new),
            candidate: metrics_at(&candidate),
            current: metrics_at(&current),
            duration_seconds: duration[i],
            message: message[i].clone(),
            attention: attention[i].clone(),
        });
    }
    Ok(records)
}

fn parse_action(text: &str) -> Result<Action, String> {
    Action::parse(text).ok_or_else(|| {
        format!(
            "unknown action {text:?} (expected one of: {})",
            Action::ALL.map(Action::as_str).join(", ")
        )
    })
}

/// Appends `records` to the history: reads the existing file (refusing to touch one it cannot
/// read), then writes the whole new file atomically (temp file in the same directory, fsync,
/// rename, directory fsync). Parent directories are created as needed.
pub fn append(path: &Path, records: &[HistoryRecord]) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut all = read(path)?;
    all.extend_from_slice(records);
    let mut df = to_frame(&all)?;
    frame::write_parquet_atomic(path, &mut df, Some("history_append"))
}

/// Appends the records of `records` that the history does not have yet (a row with the same
/// run id, horizon and action) and returns them: appending the same owed record twice, as a
/// recovery repeated after a crash does, writes it once.
pub fn append_missing(path: &Path, records: &[HistoryRecord]) -> anyhow::Result<Vec<HistoryRecord>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let past = read(path)?;
    let missing: Vec<HistoryRecord> = records
        .iter()
        .filter(|o| {
            !past
                .iter()
                .any(|p| p.run_id == o.run_id && p.horizon == o.horizon && p.action == o.action)
        })
        .cloned()
        .collect();
    append(path, &missing)?;
    Ok(missing)
}

fn col<T>(name: &str, values: Vec<T>) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), values)
}

fn to_frame(records: &[HistoryRecord]) -> anyhow::Result<DataFrame> {
    let r = records;
    let strs = |get: fn(&HistoryRecord) -> &str| r.iter().map(get).collect::<Vec<&str>>();
    let f64s = |get: fn(&HistoryRecord) -> Option<f64>| r.iter().map(get).collect::<Vec<_>>();
    let i64s = |get: fn(&HistoryRecord) -> Option<i64>| r.iter().map(get).collect::<Vec<_>>();
    let columns = vec![
        col("run_id", strs(|x| &x.run_id)),
        col("horizon", r.iter().map(|x| x.horizon.label()).collect::<Vec<_>>()),
        frame::utc_micros_column("optimization_date", r.iter().map(|x| x.optimization_date))?,
        col("action", strs(|x| x.action.as_str())),
        col(
            "triggered_by",
            r.iter()
                .map(|x| TriggerKind::join(&x.triggered_by))
                .collect::<Vec<_>>(),
        ),
        col(
            "performance_degradation_pct",
            f64s(|x| x.performance_degradation_pct),
        ),
        col(
            "drift_severity",
            r.iter()
                .map(|x| x.drift_severity.map(Severity::as_str))
                .collect::<Vec<_>>(),
        ),
        col("days_since_last", i64s(|x| x.days_since_last)),
        col("success", r.iter().map(|x| x.success).collect::<Vec<_>>()),
        col("old_context_length", i64s(|x| x.old.context_length)),
        col("old_num_samples", i64s(|x| x.old.num_samples)),
        col("old_temperature", f64s(|x| x.old.temperature)),
        col("new_context_length", i64s(|x| x.new.context_length)),
        col("new_num_samples", i64s(|x| x.new.num_samples)),
        col("new_temperature", f64s(|x| x.new.temperature)),
        col("candidate_rmse", f64s(|x| x.candidate.rmse)),
        col("candidate_mape", f64s(|x| x.candidate.mape)),
        col("candidate_mae", f64s(|x| x.candidate.mae)),
        col("candidate_bias", f64s(|x| x.candidate.bias)),
        col("candidate_coverage_95", f64s(|x| x.candidate.coverage_95)),
        col("current_rmse", f64s(|x| x.current.rmse)),
        col("current_mape", f64s(|x| x.current.mape)),
        col("current_mae", f64s(|x| x.current.mae)),
        col("current_bias", f64s(|x| x.current.bias)),
        col("current_coverage_95", f64s(|x| x.current.coverage_95)),
        col(
            "duration_seconds",
            r.iter().map(|x| x.duration_seconds).collect::<Vec<_>>(),
        ),
        col("message", strs(|x| &x.message)),
        col(
            ATTENTION,
            r.iter().map(|x| x.attention.as_deref()).collect::<Vec<_>>(),
        ),
    ];
    debug_assert_eq!(columns.len(), COLUMNS.len() + 1);
    Ok(DataFrame::new(r.len(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{code_of, ExitCode};
    use chrono::{DateTime, TimeZone, Utc};

    fn at(secs: i64, micros: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, micros * 1_000).unwrap()
    }

    fn deployed() -> HistoryRecord {
        HistoryRecord {
            run_id: "20240303T020000Z-1a2b".into(),
            horizon: crate::domain::Horizon(7),
            optimization_date: at(1_709_431_200, 123_456),
            action: Action::Deployed,
            triggered_by: crate::domain::TriggerKind::split("performance,drift").unwrap(),
            performance_degradation_pct: Some(23.456_789_012_345),
            drift_severity: Some(crate::domain::Severity::Medium),
            days_since_last: Some(14),
            success: true,
            old: RecordParams {
                context_length: Some(180),
                num_samples: Some(100),
                temperature: Some(1.0),
            },
            new: RecordParams {
                context_length: Some(256),
                num_samples: Some(200),
                temperature: Some(0.9),
            },
            candidate: RecordMetrics {
                rmse: Some(7.123),
                mape: Some(0.654),
                mae: Some(5.5),
                bias: Some(-0.25),
                coverage_95: Some(0.94),
            },
            current: RecordMetrics {
                rmse: Some(8.9),
                mape: Some(0.81),
                mae: Some(6.75),
                bias: Some(1.5),
                coverage_95: Some(0.88),
            },
            duration_seconds: 312.5,
            message: "deployed: rmse 8.9 -> 7.123 (−20.0%)".into(),
            attention: Some("CI95 coverage 0.73 < 0.90".into()),
        }
    }

    fn no_trigger() -> HistoryRecord {
        HistoryRecord {
            run_id: "20240310T020000Z-ffee".into(),
            horizon: crate::domain::Horizon(90),
            optimization_date: at(1_710_036_000, 0),
            action: Action::NoTrigger,
            triggered_by: Vec::new(),
            performance_degradation_pct: None,
            drift_severity: None,
            days_since_last: None,
            success: false,
            old: RecordParams::default(),
            new: RecordParams::default(),
            candidate: RecordMetrics::default(),
            current: RecordMetrics::default(),
            duration_seconds: 0.0,
            message: String::new(),
            attention: Some(String::new()),
        }
    }

    fn check_invalid(path: &Path, needle: &str) {
        let err = read(path).unwrap_err();
        assert_eq!(code_of(&err), ExitCode::Invalid);
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert!(msg.contains("restore it from a backup or move it aside"), "{msg}");
    }

    #[test]
    fn missing_history_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("history.parquet")).unwrap().is_empty());
    }

    #[test]
    fn append_round_trips_exactly_and_accumulates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimization_history/history.parquet");
        append(&path, &[deployed()]).unwrap();
        assert_eq!(read(&path).unwrap(), [deployed()]);
        let mut rolled = deployed();
        rolled.action = Action::RolledBack;
        rolled.success = false;
        let mut all = vec![no_trigger(), rolled];
        append(&path, &all).unwrap();
        all.insert(0, deployed());
        assert_eq!(read(&path).unwrap(), all);
        // Every action survives the trip.
        let each: Vec<HistoryRecord> = Action::ALL
            .into_iter()
            .map(|action| HistoryRecord {
                action,
                ..no_trigger()
            })
            .collect();
        append(&path, &each).unwrap();
        all.extend(each);
        assert_eq!(read(&path).unwrap(), all);
        append(&path, &[]).unwrap();
        assert_eq!(read(&path).unwrap().len(), all.len());
        // Only the history file is left: the temporary file was renamed over it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["history.parquet"]);
    }

    #[test]
    fn unreadable_history_is_an_error_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.parquet");
        let garbage = b"PAR1 this is not really parquet".to_vec();
        std::fs::write(&path, &garbage).unwrap();
        check_invalid(&path, "cannot read as parquet");
        let err = append(&path, &[deployed()]).unwrap_err();
        assert_eq!(code_of(&err), ExitCode::Invalid);
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
        assert!(!dir.path().join("history.parquet.tmp").exists());
    }

    #[test]
    fn wrong_schema_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.parquet");
        let full = to_frame(&[deployed(), no_trigger()]).unwrap();
        let write = |mut df: DataFrame| {
            let mut f = std::fs::File::create(&path).unwrap();
            ParquetWriter::new(&mut f).finish(&mut df).unwrap();
        };
        // A file written before health was judged has no attention column: read as not judged.
        write(full.drop(ATTENTION).unwrap());
        let old = read(&path).unwrap();
        assert_eq!(old.len(), 2);
        assert!(old.iter().all(|r| r.attention.is_none()));
        assert_eq!(old[0].message, deployed().message);
        write(full.drop("message").unwrap());
        check_invalid(&path, "missing column(s) message");
        let mut df = full.clone();
        df.with_column(Column::new("note".into(), vec!["a", "b"]))
            .unwrap();
        write(df);
        check_invalid(&path, "unexpected column(s) note");
        let mut df = full.clone();
        df.with_column(Column::new("days_since_last".into(), vec![Some(14.0), None]))
            .unwrap();
        write(df);
        check_invalid(&path, "column days_since_last has type f64, expected i64");
        let mut df = full.clone();
        df.with_column(Column::new("action".into(), vec!["deployed", "exploded"]))
            .unwrap();
        write(df);
        check_invalid(&path, "action at row 1: unknown action \"exploded\"");
        // Typed in memory: an unknown trigger, severity or horizon is named the same way.
        for (column, values, needle) in [
            (
                "triggered_by",
                ["time", "time,meteor"],
                "triggered_by at row 1: unknown trigger \"meteor\"",
            ),
            (
                "horizon",
                ["7d", "seven"],
                "horizon at row 1: horizon `seven` must look like `7d`",
            ),
        ] {
            let mut df = full.clone();
            df.with_column(Column::new(column.into(), values.to_vec()))
                .unwrap();
            write(df);
            check_invalid(&path, needle);
        }
        let mut df = full.clone();
        df.with_column(Column::new(
            "drift_severity".into(),
            [Some("LOW"), Some("moderate")],
        ))
        .unwrap();
        write(df);
        check_invalid(&path, "drift_severity at row 1: unknown severity \"moderate\"");
        let mut df = full.clone();
        let ms = df
            .column("optimization_date")
            .unwrap()
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .unwrap();
        df.with_column(ms).unwrap();
        write(df);
        check_invalid(&path, "column optimization_date has type datetime[ms]");
    }
}

//! Plain data the pure core works on: the observed series and tracked predictions.

use chrono::NaiveDate;

/// A daily series (one row per business day for USD/CLP). Missing values are NaN.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub dates: Vec<NaiveDate>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Number of missing (NaN) values.
    pub fn missing(&self) -> usize {
        self.values.iter().filter(|v| v.is_nan()).count()
    }

    /// The series up to and including `date` (the `--as-of` view).
    #[must_use]
    pub fn truncated_at(&self, date: NaiveDate) -> Series {
        let end = self.dates.partition_point(|d| *d <= date);
        Series {
            dates: self.dates[..end].to_vec(),
            values: self.values[..end].to_vec(),
        }
    }

    pub fn last_date(&self) -> Option<NaiveDate> {
        self.dates.last().copied()
    }

    /// The missing values at the end of the series: how many, and the date of the first.
    pub fn trailing_missing(&self) -> Option<(usize, NaiveDate)> {
        let n = self.values.iter().rev().take_while(|v| v.is_nan()).count();
        (n > 0).then(|| (n, self.dates[self.len() - n]))
    }

    /// A forecast from the end of the series reads its last `context_length` values; it needs
    /// at least one observed value among them, else the model forecasts from nothing. The
    /// error says how many values are missing at the end, from which date, and the fix.
    pub fn check_forecast_context(&self, context_length: usize) -> Result<(), String> {
        let Some((missing, from)) = self.trailing_missing() else {
            return Ok(());
        };
        let context = context_length.min(self.len());
        if missing < context {
            return Ok(());
        }
        let fix = match self.len().checked_sub(missing + 1) {
            Some(i) => format!(
                "fill them, drop those rows, or forecast from the last observed day with --as-of {}",
                self.dates[i]
            ),
            None => "the series has no observed value".to_string(),
        };
        Err(format!(
            "the last {missing} values (from {from}) are missing, so the context of the last {context} values holds no observed value; {fix}"
        ))
    }
}

/// One tracked production prediction (from `data/predictions/predictions.parquet`).
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Horizon label, e.g. `7d`.
    pub horizon: String,
    pub forecast_date: NaiveDate,
    pub target_date: NaiveDate,
    pub prediction: f64,
    /// None until the target date's value is known.
    pub actual: Option<f64>,
    pub confidence_low: f64,
    pub confidence_high: f64,
    pub model_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Series {
        let start = NaiveDate::from_ymd_opt(2024, 6, 3).unwrap();
        Series {
            dates: (0..values.len())
                .map(|i| start + chrono::Duration::days(i as i64))
                .collect(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn trailing_missing_counts_from_the_end() {
        let nan = f64::NAN;
        assert_eq!(series(&[1.0, nan, 2.0]).trailing_missing(), None);
        assert_eq!(
            series(&[1.0, 2.0, nan, nan]).trailing_missing(),
            Some((2, NaiveDate::from_ymd_opt(2024, 6, 5).unwrap()))
        );
        assert_eq!(series(&[]).trailing_missing(), None);
    }

    #[test]
    fn a_context_without_observed_values_is_refused_with_count_date_and_fix() {
        let nan = f64::NAN;
        let s = series(&[900.0, 901.0, nan, nan, nan]);
        // Context 4 still holds 901.0; context 3 holds only missing values.
        s.check_forecast_context(4).unwrap();
        let e = s.check_forecast_context(3).unwrap_err();
        assert!(
            e.contains("last 3 values (from 2024-06-05)")
                && e.contains("context of the last 3 values")
                && e.contains("--as-of 2024-06-04"),
            "{e}"
        );
        // A context longer than the series reads the whole series.
        series(&[1.0, nan]).check_forecast_context(512).unwrap();
        assert!(series(&[nan, nan])
            .check_forecast_context(512)
            .unwrap_err()
            .contains("no observed value"));
        series(&[1.0, 2.0]).check_forecast_context(1).unwrap();
    }
}

//! The forecaster config file `configs/chronos_<h>.json`: what a forecaster reads. Parsing is
//! strict (a JSON object with exactly the known fields, each in range); errors name the file.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Horizon, InferenceParams};
use crate::exit::invalid;

/// The forecaster config schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// `configs/chronos_<h>.json`: what a forecaster reads. Parsing is strict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecasterConfig {
    pub schema_version: u32,
    pub horizon: Horizon,
    pub model: String,
    pub context_length: usize,
    pub num_samples: usize,
    pub temperature: f64,
    pub validation_rmse: Option<f64>,
    pub validation_mape: Option<f64>,
    pub validation_mae: Option<f64>,
    pub validation_bias: Option<f64>,
    pub validation_coverage_95: Option<f64>,
    pub search_iterations: Option<u32>,
    pub optimization_time_seconds: Option<f64>,
    pub timestamp: DateTime<Utc>,
}

impl ForecasterConfig {
    /// The initial config of a standard horizon: context 180 (7d, 15d), 90 (30d), 365 (90d).
    pub fn initial(h: Horizon, model: &str, now: DateTime<Utc>) -> ForecasterConfig {
        let context_length = match h.steps() {
            30 => 90,
            90 => 365,
            _ => 180,
        };
        ForecasterConfig {
            schema_version: SCHEMA_VERSION,
            horizon: h,
            model: model.to_string(),
            context_length,
            num_samples: 100,
            temperature: 1.0,
            validation_rmse: None,
            validation_mape: None,
            validation_mae: None,
            validation_bias: None,
            validation_coverage_95: None,
            search_iterations: None,
            optimization_time_seconds: None,
            timestamp: now,
        }
    }

    pub fn params(&self) -> InferenceParams {
        InferenceParams {
            context_length: self.context_length,
            num_samples: self.num_samples,
            temperature: self.temperature,
        }
    }

    /// Parses and checks a config's bytes; errors name `path` and the field.
    pub fn parse(bytes: &[u8], path: &Path) -> anyhow::Result<ForecasterConfig> {
        let fix = "restore it with `model-optimizer rollback` or fix the field";
        if bytes.starts_with(b"\xEF\xBB\xBF") {
            return Err(invalid(format!(
                "{}: starts with a UTF-8 byte order mark; save the file as UTF-8 without BOM",
                path.display()
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("{}: not valid JSON: {e}; {fix}", path.display())))?;
        if !value.is_object() {
            return Err(invalid(format!(
                "{}: a forecaster config must be a JSON object with named fields, not {}; {fix}",
                path.display(),
                json_kind(&value)
            )));
        }
        let cfg: ForecasterConfig = serde_json::from_value(value).map_err(|e| {
            invalid(format!(
                "{}: invalid forecaster config: {e}; {fix}",
                path.display()
            ))
        })?;
        cfg.check().map_err(|e| {
            invalid(format!(
                "{}: {e}; fix the field or restore it with `model-optimizer rollback`",
                path.display()
            ))
        })?;
        Ok(cfg)
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> anyhow::Result<ForecasterConfig> {
        let bytes = std::fs::read(path).map_err(|e| {
            invalid(format!(
                "{}: cannot read forecaster config: {e}; create it (see configs/ in the repository) or restore a backup",
                path.display()
            ))
        })?;
        Self::parse(&bytes, path)
    }

    /// Range checks on every field.
    pub fn check(&self) -> Result<(), String> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is not supported (expected {SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        self.params().check()?;
        if self.model.trim().is_empty() {
            return Err("model must not be empty".into());
        }
        for (name, v) in [
            ("validation_rmse", self.validation_rmse),
            ("validation_mape", self.validation_mape),
            ("validation_mae", self.validation_mae),
            ("optimization_time_seconds", self.optimization_time_seconds),
        ] {
            if let Some(x) = v {
                if !x.is_finite() || x < 0.0 {
                    return Err(format!("{name} {x} must be a finite number >= 0"));
                }
            }
        }
        if let Some(b) = self.validation_bias {
            if !b.is_finite() {
                return Err("validation_bias must be finite".into());
            }
        }
        if let Some(c) = self.validation_coverage_95 {
            if !(0.0..=1.0).contains(&c) {
                return Err(format!("validation_coverage_95 {c} out of range [0, 1]"));
            }
        }
        Ok(())
    }

    /// Pretty JSON with a trailing newline: the exact bytes written to disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = serde_json::to_vec_pretty(self).expect("a config always serializes");
        s.push(b'\n');
        s
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forecaster_config_round_trips_and_rejects_bad_fields() {
        let now = DateTime::parse_from_rfc3339("2026-01-04T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = ForecasterConfig::initial(Horizon(30), "m", now);
        assert_eq!(c.context_length, 90);
        let p = Path::new("chronos_30d.json");
        assert_eq!(ForecasterConfig::parse(&c.to_bytes(), p).unwrap(), c);
        let mut bad = c.clone();
        bad.temperature = 0.0;
        let e = format!("{:#}", ForecasterConfig::parse(&bad.to_bytes(), p).unwrap_err());
        assert!(e.contains("chronos_30d.json") && e.contains("temperature"), "{e}");
        let e = format!(
            "{:#}",
            ForecasterConfig::parse(b"{\"schema_version\": 1}", p).unwrap_err()
        );
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn arrays_and_byte_order_marks_are_refused_by_name() {
        let now = DateTime::parse_from_rfc3339("2026-01-04T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = ForecasterConfig::initial(Horizon(7), "m", now);
        let p = Path::new("chronos_7d.json");
        let v = serde_json::to_value(&c).unwrap();
        let fields: Vec<serde_json::Value> = v.as_object().unwrap().values().cloned().collect();
        let array = serde_json::to_vec(&fields).unwrap();
        let e = format!("{:#}", ForecasterConfig::parse(&array, p).unwrap_err());
        assert!(
            e.contains("must be a JSON object") && e.contains("an array"),
            "{e}"
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(c.to_bytes());
        let e = format!("{:#}", ForecasterConfig::parse(&bom, p).unwrap_err());
        assert!(e.contains("byte order mark"), "{e}");
        let mut big = c.clone();
        big.num_samples = 1_000_000_000;
        let e = format!("{:#}", ForecasterConfig::parse(&big.to_bytes(), p).unwrap_err());
        assert!(e.contains("num_samples") && e.contains("1..=10000"), "{e}");
    }
}

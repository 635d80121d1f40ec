//! Domain values every layer shares: [`Horizon`], [`InferenceParams`] and their one range
//! check, drift [`Severity`], trigger kinds and mail events. Pure: no I/O, no other module of
//! the crate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest context Chronos-Bolt accepts.
pub const MAX_CONTEXT: usize = 2048;
/// The most draws a forecast may take per step. With [`MAX_PREDICTION_LENGTH`] it bounds the
/// draws of one forecast to 10^7 values (80 MB).
pub const MAX_NUM_SAMPLES: usize = 10_000;
/// The longest forecast (steps); also the largest horizon.
pub const MAX_PREDICTION_LENGTH: usize = 1000;
/// Temperatures lie in (0, MAX_TEMPERATURE].
pub const MAX_TEMPERATURE: f64 = 10.0;

/// A forecast horizon such as `7d`: that many steps of the input series (business days).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Horizon(pub usize);

impl Horizon {
    /// The four horizons the forecasting system ships.
    pub const STANDARD: [Horizon; 4] = [Horizon(7), Horizon(15), Horizon(30), Horizon(90)];

    pub fn steps(self) -> usize {
        self.0
    }

    pub fn label(self) -> String {
        format!("{}d", self.0)
    }

    /// The one file name of this horizon's config: `chronos_7d.json`.
    pub fn config_file_name(self) -> String {
        format!("chronos_{}.json", self.label())
    }

    /// `configs/chronos_<h>.json` under a configs directory.
    pub fn config_path(self, configs_dir: &Path) -> PathBuf {
        configs_dir.join(self.config_file_name())
    }
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}d", self.0)
    }
}

impl FromStr for Horizon {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || format!("horizon `{s}` must look like `7d`: digits followed by d, no spaces");
        let digits = s.strip_suffix('d').ok_or_else(shape)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(shape());
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(format!(
                "horizon `{s}` has a leading zero; write it as `{}d`",
                digits.trim_start_matches('0')
            ));
        }
        match digits.parse::<usize>() {
            Ok(n) if (1..=MAX_PREDICTION_LENGTH).contains(&n) => Ok(Horizon(n)),
            _ => Err(format!("horizon `{s}` must be 1d..{MAX_PREDICTION_LENGTH}d")),
        }
    }
}

impl Serialize for Horizon {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for Horizon {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The inference parameters the search varies.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceParams {
    pub context_length: usize,
    pub num_samples: usize,
    pub temperature: f64,
}

impl InferenceParams {
    /// Every range check of the three parameters.
    pub fn check(&self) -> Result<(), String> {
        check_context_length(self.context_length)?;
        check_num_samples(self.num_samples)?;
        check_temperature(self.temperature)
    }
}

impl fmt::Display for InferenceParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "context={} samples={} temperature={:.1}",
            self.context_length, self.num_samples, self.temperature
        )
    }
}

/// The one range check of a context length: 1..=[`MAX_CONTEXT`].
pub fn check_context_length(n: usize) -> Result<(), String> {
    if (1..=MAX_CONTEXT).contains(&n) {
        Ok(())
    } else {
        Err(format!("context_length {n} out of range 1..={MAX_CONTEXT}"))
    }
}

/// The one range check of a draw count: 1..=[`MAX_NUM_SAMPLES`].
pub fn check_num_samples(n: usize) -> Result<(), String> {
    if (1..=MAX_NUM_SAMPLES).contains(&n) {
        Ok(())
    } else {
        Err(format!("num_samples {n} out of range 1..={MAX_NUM_SAMPLES}"))
    }
}

/// The one range check of a temperature: (0, [`MAX_TEMPERATURE`]].
pub fn check_temperature(t: f64) -> Result<(), String> {
    if t > 0.0 && t <= MAX_TEMPERATURE {
        Ok(())
    } else {
        Err(format!("temperature {t} out of range (0, {MAX_TEMPERATURE}]"))
    }
}

/// The one range check of a forecast length: 1..=[`MAX_PREDICTION_LENGTH`].
pub fn check_prediction_length(n: usize) -> Result<(), String> {
    if (1..=MAX_PREDICTION_LENGTH).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "prediction_length {n} out of range 1..={MAX_PREDICTION_LENGTH}"
        ))
    }
}

/// How serious an alarm is (see `triggers::shock`): NONE without an alarm, LOW just past its
/// threshold, MEDIUM 1.5x past it or volatility 1.5x the baseline's, HIGH 2x.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::None, Severity::Low, Severity::Medium, Severity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "NONE",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown severity {s:?} (one of NONE, LOW, MEDIUM, HIGH)"))
    }
}

/// What started an optimization (or a rollback), as recorded in history's `triggered_by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Performance,
    Drift,
    Time,
    Force,
    Probation,
    /// The end of a live trial (see `trial`).
    Trial,
    Operator,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Performance => "performance",
            TriggerKind::Drift => "drift",
            TriggerKind::Time => "time",
            TriggerKind::Force => "force",
            TriggerKind::Probation => "probation",
            TriggerKind::Trial => "trial",
            TriggerKind::Operator => "operator",
        }
    }

    pub const ALL: [TriggerKind; 7] = [
        TriggerKind::Performance,
        TriggerKind::Drift,
        TriggerKind::Time,
        TriggerKind::Force,
        TriggerKind::Probation,
        TriggerKind::Trial,
        TriggerKind::Operator,
    ];

    pub fn parse(s: &str) -> Option<TriggerKind> {
        TriggerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// History's comma-joined form.
    pub fn join(kinds: &[TriggerKind]) -> String {
        kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
    }

    /// The kinds of a comma-joined form (empty for ""); an unknown name is an error naming it.
    pub fn split(text: &str) -> Result<Vec<TriggerKind>, String> {
        text.split(',')
            .filter(|t| !t.is_empty())
            .map(|t| {
                TriggerKind::parse(t).ok_or_else(|| {
                    format!(
                        "unknown trigger {t:?} (expected one of: {})",
                        TriggerKind::ALL.map(TriggerKind::as_str).join(", ")
                    )
                })
            })
            .collect()
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The events that can send mail (`smtp.events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailEvent {
    Triggered,
    Deployed,
    Rejected,
    Failed,
    RolledBack,
    /// A search kept the current config (not among the default events).
    Kept,
    /// A live trial started or ended without a deploy.
    Trial,
    /// The config in effect entered or left attention (see `policy::health`).
    Attention,
}

impl MailEvent {
    pub const ALL: [MailEvent; 8] = [
        MailEvent::Triggered,
        MailEvent::Deployed,
        MailEvent::Rejected,
        MailEvent::Failed,
        MailEvent::RolledBack,
        MailEvent::Kept,
        MailEvent::Trial,
        MailEvent::Attention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailEvent::Triggered => "triggered",
            MailEvent::Deployed => "deployed",
            MailEvent::Rejected => "rejected",
            MailEvent::Failed => "failed",
            MailEvent::RolledBack => "rolled_back",
            MailEvent::Kept => "kept",
            MailEvent::Trial => "trial",
            MailEvent::Attention => "attention",
        }
    }
}

impl fmt::Display for MailEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_parse_with_messages_that_name_the_shape() {
        assert_eq!("7d".parse::<Horizon>().unwrap(), Horizon(7));
        assert_eq!("1000d".parse::<Horizon>().unwrap(), Horizon(1000));
        for bad in ["7", "7 d", " 7d", "d", "-7d", "7.5d"] {
            let e = bad.parse::<Horizon>().unwrap_err();
            assert!(e.contains("must look like `7d`"), "{bad}: {e}");
        }
        assert!("07d".parse::<Horizon>().unwrap_err().contains("`7d`"));
        assert!("0d".parse::<Horizon>().unwrap_err().contains("1d..1000d"));
        assert!("1001d".parse::<Horizon>().unwrap_err().contains("1d..1000d"));
        assert_eq!(Horizon(7).config_file_name(), "chronos_7d.json");
    }

    #[test]
    fn parameter_ranges_have_one_check_each() {
        let ok = InferenceParams {
            context_length: 2048,
            num_samples: MAX_NUM_SAMPLES,
            temperature: MAX_TEMPERATURE,
        };
        assert!(ok.check().is_ok());
        assert!(check_context_length(0).is_err() && check_context_length(2049).is_err());
        assert!(check_num_samples(0).is_err() && check_num_samples(MAX_NUM_SAMPLES + 1).is_err());
        assert!(check_temperature(0.0).is_err() && check_temperature(f64::NAN).is_err());
        assert!(check_prediction_length(100_000_000)
            .unwrap_err()
            .contains("1..=1000"));
        assert!(check_prediction_length(1).is_ok());
    }

    #[test]
    fn enums_round_trip_their_names() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>().unwrap(), s);
        }
        assert!("medium".parse::<Severity>().is_err());
        assert_eq!(
            TriggerKind::join(&[TriggerKind::Performance, TriggerKind::Drift]),
            "performance,drift"
        );
        assert_eq!(
            serde_json::to_string(&MailEvent::RolledBack).unwrap(),
            "\"rolled_back\""
        );
    }
}

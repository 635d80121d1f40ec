//! Exit codes: the one place that says which outcome maps to which process status.

use std::fmt;

/// Process exit codes, documented in README.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// Success, or nothing to do.
    Success = 0,
    /// A runtime error (I/O, model failure, anything unexpected).
    Runtime = 1,
    /// Bad command-line usage (clap's own code).
    Usage = 2,
    /// Validation rejected the candidate.
    Rejected = 3,
    /// A deployment failed and was rolled back.
    DeployFailed = 4,
    /// `status --check`: the last completed weekly run is older than
    /// `monitoring.max_run_age_days` (the job has stopped running).
    Stale = 5,
    /// Another run holds the lock (EX_TEMPFAIL).
    Locked = 75,
    /// Invalid settings, forecaster config, data or model files (EX_CONFIG).
    Invalid = 78,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// How bad an outcome is when several horizons are combined: the worst wins.
    /// Rejection is milder than a runtime error, which is milder than invalid input.
    pub fn severity(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Rejected => 1,
            ExitCode::DeployFailed => 2,
            ExitCode::Stale => 3,
            ExitCode::Runtime => 4,
            ExitCode::Locked => 5,
            ExitCode::Usage => 6,
            ExitCode::Invalid => 7,
        }
    }

    /// The worse of two outcomes.
    #[must_use]
    pub fn worst(self, other: ExitCode) -> ExitCode {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// An error that knows its exit code. Any other error in a chain maps to [`ExitCode::Runtime`].
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Invalid settings, config, data or model files: exit 78.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code: ExitCode::Invalid,
        message: message.into(),
    })
}

/// An error with an explicit exit code.
pub fn failure(code: ExitCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

/// The exit code for an error: the first [`Failure`] in the chain decides; anything else is a
/// runtime error.
pub fn code_of(err: &anyhow::Error) -> ExitCode {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>().map(|f| f.code))
        .unwrap_or(ExitCode::Runtime)
}

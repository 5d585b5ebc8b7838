//! `tamis-clean`: data contracts checks, cleaning plans, the transforms that
//! run them, per-cell provenance, the audit log, revert, and suggestions.
//!
//! A plan runs in passes over the dataset's batches. Pass 1 (and, rarely, more)
//! computes what steps need (types, medians, modes, fences, duplicate sets);
//! the last pass applies every step in row order and streams the output,
//! provenance and dropped rows to Parquet. When the plan allows it, the last
//! statistics pass is that pass, and only the columns that wait on its
//! statistics are computed after it (see `early`). Every step sees the data exactly as
//! the steps before it left it, so the same input, plan and seed give the same
//! bytes.

pub mod check;
mod early;
pub mod exec;
pub mod merge;
pub mod ops;
pub mod plan;
pub mod provenance;
mod rowtable;
pub mod suggest;
pub mod typing;
pub mod udf;

use std::path::PathBuf;

pub use exec::{CleanOutcome, CleanRequest, clean};
pub use merge::{Matched, Matcher};
pub use plan::{Plan, Step, StepKind};

/// Errors of cleaning, checking and reverting.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Reading the input failed.
    #[error(transparent)]
    Core(#[from] tamis_core::CoreError),
    /// Profiling failed.
    #[error(transparent)]
    Profile(#[from] tamis_profile::ProfileError),
    /// The plan file cannot be read or parsed.
    #[error("plan {file}: {message}")]
    Plan {
        /// The plan file.
        file: String,
        /// What is wrong, with the step and field.
        message: String,
    },
    /// A step does not fit the data.
    #[error("plan {step}: {message}")]
    PlanStep {
        /// `step N (id, type)`.
        step: String,
        /// What is wrong.
        message: String,
    },
    /// The contract cannot be read.
    #[error(transparent)]
    Contract(#[from] tamis_core::contract::ContractError),
    /// A step failed on the data.
    #[error("step {step}: {message}")]
    Step {
        /// `id (type)`.
        step: String,
        /// What went wrong.
        message: String,
    },
    /// An output cannot be written.
    #[error("cannot write `{path}`: {message}")]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A cleaned output or its provenance cannot be read.
    #[error("cannot read `{path}`: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Lineage error.
    #[error(transparent)]
    Lineage(#[from] tamis_lineage::LineageError),
    /// An Arrow or DataFusion error (a bug, or a value the kernels reject).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tamis_core::datafusion::arrow::error::ArrowError> for CleanError {
    fn from(e: tamis_core::datafusion::arrow::error::ArrowError) -> Self {
        CleanError::Internal(e.to_string())
    }
}

impl From<tamis_core::datafusion::error::DataFusionError> for CleanError {
    fn from(e: tamis_core::datafusion::error::DataFusionError) -> Self {
        CleanError::Internal(e.to_string())
    }
}

impl CleanError {
    /// Whether the user's input (data, plan, contract) is at fault: exit code 3.
    pub fn is_bad_input(&self) -> bool {
        match self {
            CleanError::Core(e) => e.is_bad_input(),
            CleanError::Profile(tamis_profile::ProfileError::Core(e)) => e.is_bad_input(),
            CleanError::Plan { .. }
            | CleanError::PlanStep { .. }
            | CleanError::Contract(_)
            | CleanError::Step { .. }
            | CleanError::Read { .. } => true,
            // A chain or data file named on the command line that is not there.
            CleanError::Lineage(tamis_lineage::LineageError::Io { source, .. }) => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            _ => false,
        }
    }
}

/// What a cleaned output's sidecar directory adds to the output's name.
pub const SIDECAR_SUFFIX: &str = ".tamis";

/// The name of the sidecar directory that holds a cleaned output's provenance.
pub fn sidecar_dir(output: &std::path::Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(SIDECAR_SUFFIX);
    PathBuf::from(s)
}

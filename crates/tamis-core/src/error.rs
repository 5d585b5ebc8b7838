//! The error type of `tamis-core`.
//!
//! Every variant that comes from a user's input names the input (file, line,
//! column where known) and says what to do; `Internal` means a bug in tamis.

use std::path::PathBuf;

/// A result with a [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Errors raised while resolving, decoding and reading datasets.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The computation was asked to stop (a job cancelled while it ran).
    #[error("cancelled while running")]
    Cancelled,
    /// An input path or URL does not exist or cannot be opened.
    #[error("cannot open `{path}`: {source}")]
    Open {
        /// The path or URL as given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A glob matched nothing, or a pattern is malformed.
    #[error(
        "`{pattern}` matches no file: check the path, or quote the glob so the shell does not expand it"
    )]
    NoMatch {
        /// The pattern as given.
        pattern: String,
    },
    /// A glob pattern cannot be parsed.
    #[error("`{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading bytes failed part-way (truncated or corrupt compressed data, I/O error).
    #[error("{file}: read failed near line {line}: {source}")]
    Read {
        /// The file being read.
        file: String,
        /// The line reached when the error happened (1-based).
        line: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed row in `--strict` mode, or malformed content that cannot be quarantined.
    #[error("{file}:{line}:{column}: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// 1-based column (character position in the line).
        column: u64,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The input format is not supported or not recognised.
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Files of one dataset disagree on their columns.
    #[error(
        "{file}: columns differ from `{first}`: {message}; profile the files separately or make their headers agree"
    )]
    SchemaMismatch {
        /// The file whose header differs.
        file: String,
        /// The first file of the dataset.
        first: String,
        /// The difference.
        message: String,
    },
    /// A `--schema` specification is invalid.
    #[error("invalid schema `{spec}`: {message}")]
    Schema {
        /// The specification as given.
        spec: String,
        /// What is wrong and the accepted forms.
        message: String,
    },
    /// Writing an output (quarantine file, ...) failed.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The output path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the DataFusion engine.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An error from arrow.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A bug in tamis: please report it.
    #[error("internal error (a bug in tamis, please report it): {0}")]
    Internal(String),
}

impl CoreError {
    /// Whether the error is the user's input (exit code 3) rather than a bug or the environment.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            CoreError::Internal(_) | CoreError::Write { .. } | CoreError::Cancelled
        )
    }
}

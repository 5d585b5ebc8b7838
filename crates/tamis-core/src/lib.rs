//! `tamis-core`: the dataset model every tamis stage stands on.
//!
//! - [`source`] resolves inputs (paths, globs, `-`, object-store URLs);
//! - [`decode`] undoes compression and text encodings;
//! - [`csv`], [`json`], [`excel`] and Parquet (through `parquet`) read files
//!   into Arrow batches with a stable row id per row ([`dataset::ROW_ID`]);
//! - [`nested`] makes Parquet's nested and binary columns flat, as JSON's are;
//! - [`quarantine`] keeps the rows that cannot be read, with line and reason;
//! - [`types`] infers column types from text;
//! - [`engine`] exposes datasets to DataFusion, the engine of every stage.

pub mod cancel;
pub mod contract;
pub mod csv;
pub mod dataset;
pub mod decode;
pub mod engine;
pub mod error;
pub mod excel;
pub mod json;
pub mod nested;
pub mod quarantine;
pub mod source;
pub mod swar;
pub mod types;
pub mod writer;

pub use cancel::Cancel;
pub use dataset::{
    Dataset, FileInfo, Format, ROW_HASH, ROW_ID, ReadOptions, SchemaSpec, row_ids, sample_text,
};
pub use error::{CoreError, Result};
pub use quarantine::{Quarantine, QuarantineSummary, QuarantinedRow};
pub use types::{ColumnType, NullTokens};
pub use writer::write_batches;

/// Re-exported so that the crates above use the same DataFusion and arrow.
pub use datafusion;

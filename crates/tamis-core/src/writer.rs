//! Writing small result tables (pairs, clusters, violations) atomically, as
//! Parquet or as CSV chosen by the file extension.

use std::path::Path;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{CoreError, Result};

/// Writes `batches` (one schema) to `path`: CSV when the extension is `.csv`,
/// Parquet otherwise. The file is written under a temporary name and renamed,
/// so a failure never leaves a half-written output.
pub fn write_batches(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        return Err(CoreError::Internal(format!(
            "nothing to write to {}",
            path.display()
        )));
    };
    write_stream(path, first.schema(), batches.iter().cloned().map(Ok)).map(|_| ())
}

/// Writes a stream of batches of `schema` to `path` as [`write_batches`]
/// does, one batch in memory at a time; returns the rows written. An error of
/// the stream removes the partial file.
pub fn write_stream(
    path: &Path,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<u64> {
    let tmp = crate::quarantine::tmp_name(path);
    let io = |source: std::io::Error| CoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let other = |e: String| io(std::io::Error::other(e));
    let run = || -> Result<u64> {
        let f = std::fs::File::create(&tmp).map_err(io)?;
        let mut rows = 0u64;
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
        {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::BufWriter::new(f));
            for b in batches {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| other(e.to_string()))?;
            }
            let mut inner = w.into_inner();
            std::io::Write::flush(&mut inner).map_err(io)?;
        } else {
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, schema, None)
                .map_err(|e| other(e.to_string()))?;
            for b in batches {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| other(e.to_string()))?;
            }
            w.close().map_err(|e| other(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(rows)
    };
    let r = run();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

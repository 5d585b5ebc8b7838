//! The DataFusion side: datasets as tables, and the session every stage uses.
//!
//! A dataset is exposed as a [`StreamingTable`] whose one partition runs the
//! blocking reader on a blocking thread and hands batches to DataFusion over
//! a bounded channel (sixteen batches in flight: a few MiB), so memory does
//! not grow with the file. With only two, the reader and the partitions
//! above it waited on each other often enough to leave a core idle about a
//! sixth of the time; sixteen absorb the jitter (profile wall about -10 %
//! at 10M rows). DataFusion repartitions the stream round-robin for the
//! work above it, so aggregates use every core.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::dataset::Dataset;
use crate::error::{CoreError, Result};
use crate::quarantine::Quarantine;

/// A dataset read as one DataFusion partition.
#[derive(Debug)]
pub struct DatasetPartition {
    dataset: Arc<Dataset>,
    schema: SchemaRef,
    quarantine: Arc<Quarantine>,
    progress: Arc<AtomicU64>,
}

impl PartitionStream for DatasetPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 16);
        let tx = builder.tx();
        let dataset = self.dataset.clone();
        let quarantine = self.quarantine.clone();
        let progress = self.progress.clone();
        builder.spawn_blocking(move || {
            let batches = dataset.batches(quarantine, progress).map_err(to_df)?;
            for b in batches {
                let b = b.map_err(to_df);
                let stop = b.is_err();
                if tx.blocking_send(b).is_err() || stop {
                    break; // the consumer is gone, or we just sent the error
                }
            }
            Ok(())
        });
        builder.build()
    }
}

fn to_df(e: CoreError) -> datafusion::error::DataFusionError {
    match e {
        CoreError::DataFusion(e) => e,
        other => datafusion::error::DataFusionError::External(Box::new(other)),
    }
}

/// Finds a [`CoreError`] inside a DataFusion error (readers' errors travel
/// through DataFusion as external errors).
pub fn from_df(e: datafusion::error::DataFusionError) -> CoreError {
    use datafusion::error::DataFusionError as D;
    match e {
        D::External(b) => match b.downcast::<CoreError>() {
            Ok(c) => *c,
            Err(b) => CoreError::DataFusion(D::External(b)),
        },
        D::Context(ctx, inner) => match from_df(*inner) {
            CoreError::DataFusion(inner) => CoreError::DataFusion(D::Context(ctx, Box::new(inner))),
            other => other,
        },
        D::Shared(s) => match std::sync::Arc::try_unwrap(s) {
            Ok(inner) => from_df(inner),
            // Another stream still holds the error (a repartitioned plan
            // hands one error to all its outputs): the reader's error inside
            // is copied out rather than shown in its wrappers.
            Err(s) => shared_reader_error(&s).unwrap_or(CoreError::DataFusion(D::Shared(s))),
        },
        other => CoreError::DataFusion(other),
    }
}

/// A copy of the reader's error inside an engine error that cannot be
/// taken apart (it is shared).
fn shared_reader_error(e: &datafusion::error::DataFusionError) -> Option<CoreError> {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError as D;
    match e {
        D::External(b) => external_reader_error(b.as_ref()),
        D::ArrowError(a, _) => match a.as_ref() {
            ArrowError::ExternalError(b) => external_reader_error(b.as_ref()),
            _ => None,
        },
        D::Context(_, inner) => shared_reader_error(inner),
        D::Shared(s) => shared_reader_error(s),
        _ => None,
    }
}

fn external_reader_error(b: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<CoreError> {
    use datafusion::arrow::error::ArrowError;
    if let Some(c) = b.downcast_ref::<CoreError>() {
        return copy_error(c);
    }
    if let Some(d) = b.downcast_ref::<datafusion::error::DataFusionError>() {
        return shared_reader_error(d);
    }
    match b.downcast_ref::<ArrowError>() {
        Some(ArrowError::ExternalError(b)) => external_reader_error(b.as_ref()),
        _ => None,
    }
}

/// A copy of a reader's error (an I/O error is copied as its kind and message).
fn copy_error(c: &CoreError) -> Option<CoreError> {
    use datafusion::arrow::error::ArrowError;
    let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
    Some(match c {
        CoreError::Cancelled => CoreError::Cancelled,
        CoreError::Open { path, source } => CoreError::Open {
            path: path.clone(),
            source: io(source),
        },
        CoreError::NoMatch { pattern } => CoreError::NoMatch {
            pattern: pattern.clone(),
        },
        CoreError::BadGlob { pattern, message } => CoreError::BadGlob {
            pattern: pattern.clone(),
            message: message.clone(),
        },
        CoreError::Read { file, line, source } => CoreError::Read {
            file: file.clone(),
            line: *line,
            source: io(source),
        },
        CoreError::Malformed {
            file,
            line,
            column,
            reason,
        } => CoreError::Malformed {
            file: file.clone(),
            line: *line,
            column: *column,
            reason: reason.clone(),
        },
        CoreError::Format { file, message } => CoreError::Format {
            file: file.clone(),
            message: message.clone(),
        },
        CoreError::SchemaMismatch {
            file,
            first,
            message,
        } => CoreError::SchemaMismatch {
            file: file.clone(),
            first: first.clone(),
            message: message.clone(),
        },
        CoreError::Schema { spec, message } => CoreError::Schema {
            spec: spec.clone(),
            message: message.clone(),
        },
        CoreError::Write { path, source } => CoreError::Write {
            path: path.clone(),
            source: io(source),
        },
        CoreError::DataFusion(d) => return shared_reader_error(d),
        CoreError::Arrow(ArrowError::ExternalError(b)) => return external_reader_error(b.as_ref()),
        CoreError::Arrow(_) => return None,
        CoreError::Internal(m) => CoreError::Internal(m.clone()),
    })
}

/// A table over a dataset, for registering in a session.
pub fn dataset_table(
    dataset: Arc<Dataset>,
    quarantine: Arc<Quarantine>,
    progress: Arc<AtomicU64>,
) -> Result<Arc<StreamingTable>> {
    let schema = dataset.schema();
    let part = Arc::new(DatasetPartition {
        dataset,
        schema: schema.clone(),
        quarantine,
        progress,
    });
    Ok(Arc::new(StreamingTable::try_new(schema, vec![part])?))
}

/// A DataFusion session for tamis work with `threads` partitions (0 = all cores).
pub fn session(threads: usize) -> SessionContext {
    let threads = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_batch_size(8192)
        .with_information_schema(true);
    SessionContext::new_with_config(config)
}

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
            Err(s) => CoreError::DataFusion(D::Shared(s)),
        },
        other => CoreError::DataFusion(other),
    }
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

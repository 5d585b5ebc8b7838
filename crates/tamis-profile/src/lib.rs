//! `tamis-profile`: one-pass, mergeable profiles of datasets.
//!
//! [`profile`] runs a single DataFusion aggregate query over a dataset: one
//! [`udaf::ColumnStateUdaf`] per column, [`udaf::RowsUdaf`] over whole-row
//! hashes, and [`udaf::SampleUdaf`] for the pairwise measures. DataFusion
//! runs the partial aggregates on every partition and merges their states;
//! [`assemble`] then turns the merged states into a [`Profile`]: statistics,
//! quality score and the list of issues that cleaning suggestions start from.

pub mod assemble;
pub mod column;
pub mod freq;
pub mod hll;
pub mod model;
pub mod numeric;
pub mod shape;
pub mod udaf;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::common::Column;
use datafusion::logical_expr::{AggregateUDF, Expr, ScalarUDF};
use tamis_core::engine::{dataset_table, from_df, session};
use tamis_core::{CoreError, Dataset, Quarantine, ROW_HASH, ROW_ID};

pub use model::*;

/// Errors of the profiler.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Reading the data failed (bad input, I/O).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A bug in tamis.
    #[error("internal error (a bug in tamis, please report it): {0}")]
    Internal(String),
}

impl From<datafusion::error::DataFusionError> for ProfileError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        ProfileError::Core(from_df(e))
    }
}

/// How to profile.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// Partitions (0 = one per core).
    pub threads: usize,
    /// The day "future" is judged against.
    pub today: NaiveDate,
    /// Seed of the row sample used for correlations and associations.
    pub seed: u64,
    /// Most cells the sample may hold (rows = this / columns, at most [`SAMPLE_ROWS`]).
    pub sample_cells: usize,
}

/// The oldest possible age: a column named like an age counts values
/// below 0 or above it as impossible.
pub const AGE_MAX: f64 = 130.0;

/// Most rows in the correlation sample.
pub const SAMPLE_ROWS: usize = 20_000;

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            threads: 0,
            today: chrono::Local::now().date_naive(),
            seed: 42,
            sample_cells: 2_000_000,
        }
    }
}

fn column_expr(name: &str) -> Expr {
    Expr::Column(Column::from_name(name))
}

/// The rows each of `partitions` partitions can expect
/// ([`Dataset::estimated_rows`]), with a quarter to spare, and at most 2^25
/// (the row hashes' first piece is reserved that large; see
/// [`udaf::Hashes::expect`]). 0 when unknown. Too few only costs the copy
/// every partition made before.
fn rows_per_partition(dataset: &Dataset, partitions: usize) -> usize {
    let rows = dataset.estimated_rows().unwrap_or(0) as f64;
    ((rows * 1.25 / partitions.max(1) as f64) as usize).min(1 << 25)
}

/// Profiles a dataset in one pass.
pub async fn profile(
    dataset: Arc<Dataset>,
    quarantine: Arc<Quarantine>,
    progress: Arc<AtomicU64>,
    opts: &ProfileOptions,
) -> Result<Profile, ProfileError> {
    let start = Instant::now();
    let types = dataset.sample_types()?;
    let columns = dataset.columns().to_vec();
    let specs: Vec<column::ColumnSpec> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| column::ColumnSpec {
            name: name.clone(),
            position: i,
            sample_type: types[i],
            forced: dataset.is_forced(name),
            null_tokens: dataset
                .options()
                .null_tokens
                .spellings()
                .map(str::to_string)
                .collect(),
            today: opts.today,
        })
        .collect();
    let ctx = session(opts.threads);
    let partitions = ctx.copied_config().target_partitions();
    // CSV input: the reader hashes each row from the bytes it holds.
    let hashed = dataset.with_row_hash().map(Arc::new);
    let scanned = hashed.clone().unwrap_or_else(|| dataset.clone());
    let table = dataset_table(scanned, quarantine.clone(), progress)?;
    ctx.register_table("data", table)
        .map_err(ProfileError::from)?;
    let df = ctx.table("data").await?;

    let row_id = column_expr(ROW_ID);
    let mut aggs: Vec<Expr> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            AggregateUDF::new_from_impl(udaf::ColumnStateUdaf::new(s.clone()))
                .call(vec![column_expr(&s.name), row_id.clone()])
                .alias(format!("c{i}"))
        })
        .collect();
    let all_cols: Vec<Expr> = columns.iter().map(|c| column_expr(c)).collect();
    let row_hash = if all_cols.is_empty() {
        Expr::Literal(datafusion::scalar::ScalarValue::UInt64(Some(0)), None)
    } else if hashed.is_some() {
        column_expr(ROW_HASH)
    } else {
        ScalarUDF::new_from_impl(udaf::RowHashUdf::default()).call(all_cols.clone())
    };
    aggs.push(
        AggregateUDF::new_from_impl(
            udaf::RowsUdaf::new(partitions).expecting(rows_per_partition(&dataset, partitions)),
        )
        .call(vec![row_hash, row_id.clone()])
        .alias("rows"),
    );
    let k = (opts.sample_cells / columns.len().max(1)).clamp(100, SAMPLE_ROWS);
    let mut sample_args = vec![row_id];
    sample_args.extend(all_cols);
    aggs.push(
        AggregateUDF::new_from_impl(udaf::SampleUdaf::new(k, opts.seed))
            .call(sample_args)
            .alias("sample"),
    );

    let df = df.aggregate(vec![], aggs)?;
    let task_ctx = df.task_ctx();
    let plan = df.create_physical_plan().await?;
    tracing::debug!(
        "profile plan:\n{}",
        datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
    );
    let batches = datafusion::physical_plan::collect(plan, Arc::new(task_ctx)).await?;
    let batch = batches
        .first()
        .ok_or_else(|| ProfileError::Internal("aggregate returned no row".into()))?;
    let get = |i: usize| -> Result<&[u8], ProfileError> {
        let a = batch.column(i).as_binary::<i32>();
        if a.is_null(0) {
            return Err(ProfileError::Internal(format!(
                "aggregate {i} returned null"
            )));
        }
        Ok(a.value(0))
    };
    let mut states = Vec::with_capacity(specs.len());
    for i in 0..specs.len() {
        states.push(udaf::decode::<column::ColumnState>(get(i)?)?);
    }
    let rows: udaf::DuplicateSummary = udaf::decode(get(specs.len())?)?;
    let sample: udaf::Sample = udaf::decode(get(specs.len() + 1)?)?;
    let qsummary = quarantine.finish()?;
    Ok(assemble::assemble(assemble::Parts {
        dataset: &dataset,
        specs,
        states,
        rows,
        sample,
        quarantine: qsummary,
        seconds: start.elapsed().as_secs_f64(),
    }))
}

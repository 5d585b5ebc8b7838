//! MinHash signatures and LSH banding: candidate pairs for records whose text
//! is similar as a whole (Jaccard over character n-grams), whatever field the
//! difference is in.
//!
//! The signature is a DataFusion scalar function,
//! `tamis_minhash_bands(text, bands, rows, ngram, seed)` → the `bands` band
//! keys of `text`, and the buckets are a plan: unnest the keys, group by key,
//! keep the groups of two or more rows. The same plan runs partitioned now and
//! on a cluster later. Two records share a band with probability
//! 1 − (1 − J^rows)^bands for Jaccard similarity J.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListBuilder, StringArray, UInt32Array, UInt64Builder,
};
use tamis_core::datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, UInt32Type, UInt64Type,
};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::datafusion::common::{DataFusionError, ScalarValue};
use tamis_core::datafusion::datasource::MemTable;
use tamis_core::datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use tamis_core::datafusion::prelude::SessionContext;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::DedupError;

/// A MinHash/LSH blocking rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinHashSpec {
    /// Columns whose normalised values, joined by spaces, are shingled.
    pub columns: Vec<String>,
    /// Characters per shingle (default 3).
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// Bands (default 20).
    #[serde(default = "default_bands")]
    pub bands: usize,
    /// Rows per band (default 4: pairs with Jaccard 0.5 share a band with
    /// probability 0.73, at 0.7 with 0.99+, at 0.3 with 0.15).
    #[serde(default = "default_rows")]
    pub rows: usize,
    /// Buckets larger than this are skipped (and counted): a band shared by
    /// thousands of rows is a common value, not a near duplicate (default 1000).
    #[serde(default = "default_max_bucket")]
    pub max_bucket: usize,
}

fn default_ngram() -> usize {
    3
}
fn default_bands() -> usize {
    20
}
fn default_rows() -> usize {
    4
}
fn default_max_bucket() -> usize {
    1000
}

impl MinHashSpec {
    /// With the defaults.
    pub fn new(columns: Vec<String>) -> MinHashSpec {
        MinHashSpec {
            columns,
            ngram: default_ngram(),
            bands: default_bands(),
            rows: default_rows(),
            max_bucket: default_max_bucket(),
        }
    }
}

/// The hashes of `text`'s character `n`-grams (the whole text when shorter).
pub fn shingles(text: &str, n: usize, out: &mut Vec<u64>) {
    out.clear();
    let n = n.max(1);
    let idx: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = idx.len() - 1;
    if chars == 0 {
        return;
    }
    if chars <= n {
        out.push(xxh3_64(text.as_bytes()));
        return;
    }
    for s in 0..=chars - n {
        out.push(xxh3_64(&text.as_bytes()[idx[s]..idx[s + n]]));
    }
    out.sort_unstable();
    out.dedup();
}

/// The `bands` band keys of `text` (none for empty text). Hash function i is
/// x ↦ xxh3(x, seed_i) with seed_i derived from `seed`; band j's key hashes its
/// `rows` minima together with j, so equal keys in different bands differ.
pub fn band_keys(
    text: &str,
    ngram: usize,
    bands: usize,
    rows: usize,
    seed: u64,
    out: &mut Vec<u64>,
) {
    out.clear();
    let mut sh = Vec::new();
    shingles(text, ngram, &mut sh);
    if sh.is_empty() {
        return;
    }
    let mut mins = vec![u64::MAX; rows];
    let mut buf = Vec::with_capacity(rows * 8 + 8);
    for j in 0..bands {
        for (r, m) in mins.iter_mut().enumerate() {
            let s = xxh3_64_with_seed(&((j * rows + r) as u64).to_le_bytes(), seed);
            *m = sh
                .iter()
                .map(|h| xxh3_64_with_seed(&h.to_le_bytes(), s))
                .min()
                .unwrap_or(u64::MAX);
        }
        buf.clear();
        buf.extend_from_slice(&(j as u64).to_le_bytes());
        for m in &mins {
            buf.extend_from_slice(&m.to_le_bytes());
        }
        out.push(xxh3_64(&buf) | 1);
    }
}

fn int_arg(args: &[ColumnarValue], i: usize) -> Result<u64, DataFusionError> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(v)))) if *v >= 0 => Ok(*v as u64),
        _ => Err(DataFusionError::Plan(format!(
            "tamis_minhash_bands: argument {} must be a non-negative integer literal",
            i + 1
        ))),
    }
}

/// An LSH bucket: a band key and the rows (ascending) that share it.
pub type Bucket = (u64, Vec<u32>);

/// `tamis_minhash_bands(text, bands, rows, ngram, seed)` → list of band keys.
pub fn udf() -> ScalarUDF {
    create_udf(
        "tamis_minhash_bands",
        vec![
            DataType::Utf8,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
        ],
        DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true))),
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let (bands, rows, ngram, seed) = (
                int_arg(args, 1)? as usize,
                int_arg(args, 2)? as usize,
                int_arg(args, 3)? as usize,
                int_arg(args, 4)?,
            );
            if bands == 0 || rows == 0 || bands * rows > 4096 {
                return Err(DataFusionError::Plan(
                    "tamis_minhash_bands: bands and rows must be positive, bands × rows ≤ 4096"
                        .into(),
                ));
            }
            let n = match &args[0] {
                ColumnarValue::Array(a) => a.len(),
                _ => 1,
            };
            let a = args[0].clone().into_array(n)?;
            let s = a.as_string::<i32>();
            let mut b = ListBuilder::new(UInt64Builder::new());
            let mut keys = Vec::new();
            for v in s.iter() {
                match v {
                    Some(v) => {
                        band_keys(v, ngram, bands, rows, seed, &mut keys);
                        b.values().append_slice(&keys);
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(b.finish()) as ArrayRef))
        }),
    )
}

/// A MinHash rule's signatures and buckets.
#[derive(Debug)]
pub struct Lsh {
    /// Bands per row.
    pub bands: usize,
    /// Band keys, row-major, `bands` per row; 0 where the row has no text.
    pub keys: Vec<u64>,
    /// The buckets with two or more rows, by band key.
    pub buckets: Vec<Bucket>,
    /// Buckets skipped for exceeding `max_bucket`.
    pub skipped: u64,
}

/// Signatures and LSH buckets of `texts` (one per row), by DataFusion plans:
/// the signature function once per row, then unnest and group by band key.
pub fn lsh(texts: Vec<Option<String>>, spec: &MinHashSpec, seed: u64) -> Result<Lsh, DedupError> {
    let internal = |e: DataFusionError| {
        DedupError::Core(tamis_core::CoreError::Internal(format!(
            "minhash plan: {e}"
        )))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("row", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, true),
    ]));
    let n = texts.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..n as u32)),
            Arc::new(StringArray::from(texts)),
        ],
    )?;
    let ctx = SessionContext::new();
    ctx.register_udf(udf());
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).map_err(internal)?),
    )
    .map_err(internal)?;
    let signatures = format!(
        "SELECT row, tamis_minhash_bands(text, {}, {}, {}, {seed}) AS bands FROM t ORDER BY row",
        spec.bands, spec.rows, spec.ngram
    );
    let grouped = "SELECT band, array_agg(row ORDER BY row) AS rows, count(*) AS n FROM ( \
           SELECT row, unnest(bands) AS band FROM s WHERE bands IS NOT NULL) \
         GROUP BY band HAVING count(*) > 1 ORDER BY band";
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| DedupError::Core(tamis_core::CoreError::Internal(e.to_string())))?;
    let (sigs, groups) = rt
        .block_on(async {
            let sigs = ctx.sql(&signatures).await?.collect().await?;
            let s = MemTable::try_new(
                sigs.first()
                    .map_or_else(|| Arc::new(Schema::empty()), |b| b.schema()),
                vec![sigs.clone()],
            )?;
            ctx.register_table("s", Arc::new(s))?;
            let groups = ctx.sql(grouped).await?.collect().await?;
            Ok::<_, DataFusionError>((sigs, groups))
        })
        .map_err(internal)?;
    let mut keys = vec![0u64; n * spec.bands];
    for b in &sigs {
        let rows = b.column(0).as_primitive::<UInt32Type>();
        let lists = b.column(1).as_list::<i32>();
        for i in 0..b.num_rows() {
            if lists.is_null(i) {
                continue;
            }
            let k = lists.value(i);
            let k = k.as_primitive::<UInt64Type>().values();
            let r = rows.value(i) as usize;
            keys[r * spec.bands..r * spec.bands + k.len()].copy_from_slice(k);
        }
    }
    let mut buckets = Vec::new();
    let mut skipped = 0;
    for b in groups {
        let band = b.column(0).as_primitive::<UInt64Type>();
        let lists = b.column(1).as_list::<i32>();
        let counts = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if counts.value(i) as usize > spec.max_bucket {
                skipped += 1;
                continue;
            }
            let rows = lists.value(i);
            buckets.push((
                band.value(i),
                rows.as_primitive::<UInt32Type>().values().to_vec(),
            ));
        }
    }
    Ok(Lsh {
        bands: spec.bands,
        keys,
        buckets,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn jaccard(a: &str, b: &str) -> f64 {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        shingles(a, 3, &mut x);
        shingles(b, 3, &mut y);
        let inter = x.iter().filter(|h| y.contains(h)).count() as f64;
        inter / (x.len() as f64 + y.len() as f64 - inter)
    }

    #[test]
    fn near_texts_share_bands_and_far_ones_do_not() {
        let a = "mitchell green 7 wallaby place delmar";
        let b = "mitchell green 7 wallaby plcae delmar";
        let c = "harley mccarthy 177 pridham street milton";
        assert!(jaccard(a, b) > 0.7, "{}", jaccard(a, b));
        let (mut ka, mut kb, mut kc) = (Vec::new(), Vec::new(), Vec::new());
        band_keys(a, 3, 20, 4, 42, &mut ka);
        band_keys(b, 3, 20, 4, 42, &mut kb);
        band_keys(c, 3, 20, 4, 42, &mut kc);
        assert_eq!(ka.len(), 20);
        assert!(ka.iter().zip(&kb).any(|(x, y)| x == y));
        assert!(!ka.iter().zip(&kc).any(|(x, y)| x == y));
        // Seeded: the same keys every time, other keys with another seed.
        let mut again = Vec::new();
        band_keys(a, 3, 20, 4, 42, &mut again);
        assert_eq!(again, ka);
        band_keys(a, 3, 20, 4, 7, &mut again);
        assert_ne!(again, ka);
    }

    #[test]
    fn the_plan_groups_rows_by_band() {
        let texts = vec![
            Some("mitchell green 7 wallaby place delmar".to_string()),
            Some("harley mccarthy 177 pridham street milton".to_string()),
            Some("mitchell green 7 wallaby plcae delmar".to_string()),
            None,
            Some("harley mccarthy 177 pridham street milton".to_string()),
        ];
        let l = lsh(texts, &MinHashSpec::new(vec![]), 42).unwrap();
        assert_eq!(l.skipped, 0);
        let b = &l.buckets;
        assert!(b.iter().any(|x| x.1 == vec![0, 2]));
        // Identical texts share every band.
        assert_eq!(b.iter().filter(|x| x.1 == vec![1, 4]).count(), 20);
        assert!(b.iter().all(|x| !x.1.contains(&3)));
        let mut k = Vec::new();
        band_keys(
            "harley mccarthy 177 pridham street milton",
            3,
            20,
            4,
            42,
            &mut k,
        );
        assert!(
            b.iter()
                .filter(|x| x.1 == vec![1, 4])
                .all(|x| k.contains(&x.0))
        );
    }
}

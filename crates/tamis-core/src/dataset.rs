//! A dataset: one or more files read as one table, with a stable row id per
//! row, quarantine of malformed rows, and inferred (or forced) column types.
//!
//! Text formats (CSV, JSON, Excel) are read as text columns (`Utf8`), and the
//! type of each column is inferred from a sample ([`Dataset::sample_types`]);
//! the profiler then checks every value against that type, so a column that
//! samples as integer and later holds text is reported as a string column
//! with a mismatch count instead of aborting the run. Parquet keeps its own
//! types.
//!
//! Row ids are 0-based positions in the source, counted across a glob's
//! files in file order, quarantined rows included (so a quarantined row's id
//! is the id it would have had).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::arrow::array::{ArrayRef, StringBuilder, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::csv::{self, CsvBatchReader, CsvDialect, CsvReaderConfig};
use crate::decode::{self, Compression, TextEncoding};
use crate::error::{CoreError, Result};
use crate::json::{self, JsonSplitter};
use crate::quarantine::{Quarantine, QuarantinedRow};
use crate::source::{self, SourceFile};
use crate::types::{ColumnType, NullTokens, infer_type};

/// The name of the row-id column every batch carries.
pub const ROW_ID: &str = "__row_id";

/// The name of the row-hash column that batches of [`Dataset::with_row_hash`]
/// carry after [`ROW_ID`].
pub const ROW_HASH: &str = "__row_hash";

/// The row-id column of a batch.
pub fn row_ids(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<&datafusion::arrow::array::UInt64Array> {
    use datafusion::arrow::array::AsArray;
    batch
        .column_by_name(ROW_ID)
        .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>())
        .ok_or_else(|| CoreError::Internal(format!("the batch has no `{ROW_ID}` column")))
}

/// Indices of a schema's fields other than the row id (and row hash): the
/// data's own columns.
pub fn data_columns(schema: &datafusion::arrow::datatypes::Schema) -> Vec<usize> {
    (0..schema.fields().len())
        .filter(|&i| !matches!(schema.field(i).name().as_str(), ROW_ID | ROW_HASH))
        .collect()
}

/// The batch without its row-id column.
pub fn drop_row_id(
    b: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<datafusion::arrow::record_batch::RecordBatch> {
    Ok(b.project(&data_columns(&b.schema()))?)
}

/// Up to `n` non-empty values (trimmed, as text) of each of `columns`, by
/// name, from the start of `batches`; it stops reading once every column has
/// `n`.
pub fn sample_text<E>(
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
    columns: &[String],
    n: usize,
) -> std::result::Result<Vec<Vec<String>>, E>
where
    E: From<datafusion::arrow::error::ArrowError>,
{
    use datafusion::arrow::array::AsArray;
    let mut out: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
    for b in batches {
        let b = b?;
        for (s, c) in out.iter_mut().zip(columns) {
            if s.len() >= n {
                continue;
            }
            let Some(a) = b.column_by_name(c) else {
                continue;
            };
            let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
            s.extend(
                a.as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .take(n - s.len())
                    .map(String::from),
            );
        }
        if out.iter().all(|s| s.len() >= n) {
            break;
        }
    }
    Ok(out)
}

/// Rows type inference reads, at most, to find values of a column that has
/// none in its first `sample_rows` rows.
pub const SPARSE_LOOKAHEAD: usize = 100_000;

/// A file format tamis reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text.
    Csv,
    /// JSON Lines or a JSON array of objects.
    Json,
    /// Apache Parquet.
    Parquet,
    /// Excel workbook (.xlsx, .xlsm, .xls, .ods).
    Excel,
}

impl Format {
    /// Parses a format name.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" | "psv" => Format::Csv,
            "json" | "jsonl" | "ndjson" => Format::Json,
            "parquet" | "pq" => Format::Parquet,
            "xlsx" | "xls" | "xlsm" | "xlsb" | "ods" | "excel" => Format::Excel,
            _ => return None,
        })
    }
}

/// How a column's type was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSpec {
    /// Forced types by column name.
    pub types: HashMap<String, ColumnType>,
    /// The specification as given, for messages.
    pub spec: String,
}

impl SchemaSpec {
    /// Parses `name:type,name:type`, or a JSON object file `{"name":"type"}`
    /// when `spec` is a path to an existing file.
    pub fn parse(spec: &str) -> Result<SchemaSpec> {
        let bad = |message: String| CoreError::Schema {
            spec: spec.to_string(),
            message,
        };
        let text;
        let pairs: Vec<(String, String)> = if std::path::Path::new(spec).is_file() {
            text = std::fs::read_to_string(spec).map_err(|e| bad(e.to_string()))?;
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| {
                    bad(format!(
                        "a schema file must be a JSON object of column name to type: {e}"
                    ))
                })?;
            v.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(t) => Ok((k, t)),
                    other => Err(bad(format!(
                        "the type of `{k}` must be a type name in quotes, such as \"integer\", not {other}"
                    ))),
                })
                .collect::<Result<_>>()?
        } else {
            spec.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.rsplit_once(':')
                        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                        .ok_or_else(|| bad(format!("`{p}` is not `name:type`")))
                })
                .collect::<Result<_>>()?
        };
        let mut types = HashMap::new();
        for (name, ty) in pairs {
            let t = ColumnType::parse(&ty).ok_or_else(|| {
                bad(format!(
                    "unknown type `{ty}` for `{name}`; use one of {}",
                    ColumnType::ALL
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            types.insert(name, t);
        }
        Ok(SchemaSpec {
            types,
            spec: spec.to_string(),
        })
    }
}

/// Options for reading a dataset.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The format; detected from the name or content when `None`.
    pub format: Option<Format>,
    /// CSV delimiter; sniffed when `None`.
    pub delimiter: Option<u8>,
    /// Whether CSV input has a header; sniffed when `None`.
    pub has_header: Option<bool>,
    /// Excel sheet, by name or 0-based index; the first sheet when `None`.
    pub sheet: Option<String>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Fail on the first malformed row instead of quarantining it.
    pub strict: bool,
    /// Read only the first N data rows.
    pub limit: Option<u64>,
    /// Values that mean missing.
    pub null_tokens: NullTokens,
    /// Forced column types.
    pub schema: Option<SchemaSpec>,
    /// How many rows type inference samples.
    pub sample_rows: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            delimiter: None,
            has_header: None,
            sheet: None,
            batch_size: 8192,
            strict: false,
            limit: None,
            null_tokens: NullTokens::default(),
            schema: None,
            sample_rows: 1000,
        }
    }
}

/// What was detected about one file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    /// The file's name as given.
    pub name: String,
    /// Its format.
    pub format: Format,
    /// Its compression.
    pub compression: Compression,
    /// Its text encoding (text formats).
    pub encoding: Option<TextEncoding>,
    /// Its CSV dialect (CSV only), delimiter as a string.
    pub delimiter: Option<String>,
    /// Whether a CSV header was read.
    pub header: Option<bool>,
    /// The Excel sheet read.
    pub sheet: Option<String>,
    /// Size on disk in bytes, if known.
    pub bytes: Option<u64>,
}

/// One or more files read as one table.
#[derive(Debug)]
pub struct Dataset {
    files: Vec<(SourceFile, FileInfo, Option<CsvDialect>)>,
    columns: Vec<String>,
    /// For Parquet, the native Arrow type of each column.
    native: Option<Vec<DataType>>,
    options: ReadOptions,
    schema: SchemaRef,
}

fn detect_format(name: &str, head: &[u8], forced: Option<Format>) -> Format {
    if let Some(f) = forced {
        return f;
    }
    if head.starts_with(b"PAR1") {
        return Format::Parquet;
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Format::Excel;
    }
    let base = decode::strip_compression_ext(name);
    if let Some(ext) = base.rsplit_once('.').map(|(_, e)| e)
        && let Some(f) = Format::parse(ext)
    {
        return f;
    }
    let first = head
        .iter()
        .find(|c| !c.is_ascii_whitespace() && **c != 0xEF && **c != 0xBB && **c != 0xBF);
    if matches!(first, Some(b'{') | Some(b'[')) {
        Format::Json
    } else {
        Format::Csv
    }
}

/// Opens a text stream: decompress + decode to UTF-8.
fn open_text(
    file: &SourceFile,
    progress: Arc<AtomicU64>,
) -> Result<(Box<dyn std::io::BufRead + Send>, Compression, TextEncoding)> {
    let mut raw = file.open(progress)?;
    let head = csv::read_head(&mut raw, 8).map_err(|source| CoreError::Read {
        file: file.name.clone(),
        line: 1,
        source,
    })?;
    let comp = decode::detect_compression(&head, &file.name);
    let joined: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(raw));
    let dec = decode::decompress(joined, comp).map_err(|source| CoreError::Read {
        file: file.name.clone(),
        line: 1,
        source,
    })?;
    let (text, enc) = decode::to_utf8(dec).map_err(|source| CoreError::Read {
        file: file.name.clone(),
        line: 1,
        source,
    })?;
    Ok((text, comp, enc))
}

impl Dataset {
    /// Resolves `specs` and reads what is needed to know the columns: the
    /// CSV header, JSON keys, the Parquet schema or the Excel header row.
    pub fn open(specs: &[String], options: ReadOptions) -> Result<Dataset> {
        let sources = source::resolve(specs)?;
        if sources.is_empty() {
            return Err(CoreError::NoMatch {
                pattern: specs.join(" "),
            });
        }
        let mut files = Vec::new();
        let mut columns: Option<Vec<String>> = None;
        let mut native = None;
        let mut json_keys: Vec<String> = Vec::new();
        let mut json_seen = std::collections::HashSet::new();
        let mut json_valued = std::collections::HashSet::new();
        let mut first_format = None;
        for src in sources {
            let mut raw = src.open(Arc::new(AtomicU64::new(0)))?;
            let head = csv::read_head(&mut raw, 8).map_err(|source| CoreError::Read {
                file: src.name.clone(),
                line: 1,
                source,
            })?;
            drop(raw);
            let comp = decode::detect_compression(&head, &src.name);
            let mut format = detect_format(&src.name, &head, options.format);
            if comp != Compression::None && matches!(format, Format::Parquet | Format::Excel) {
                format = Format::Csv;
            }
            if format == Format::Csv && comp != Compression::None && options.format.is_none() {
                // Look inside the compressed stream for JSON.
                let (mut t, _, _) = open_text(&src, Arc::new(AtomicU64::new(0)))?;
                let inner = csv::read_head(&mut t, 64).unwrap_or_default();
                format = detect_format(decode::strip_compression_ext(&src.name), &inner, None);
            }
            if *first_format.get_or_insert(format) != format {
                return Err(CoreError::SchemaMismatch {
                    file: src.name.clone(),
                    first: files
                        .first()
                        .map(|f: &(SourceFile, FileInfo, Option<CsvDialect>)| f.0.name.clone())
                        .unwrap_or_default(),
                    message: "files of one dataset must share one format".into(),
                });
            }
            let mut info = FileInfo {
                name: src.name.clone(),
                format,
                compression: comp,
                encoding: None,
                delimiter: None,
                header: None,
                sheet: None,
                bytes: src.size(),
            };
            let mut dialect = None;
            let names: Option<Vec<String>> = match format {
                Format::Csv => {
                    let (mut text, _, enc) = open_text(&src, Arc::new(AtomicU64::new(0)))?;
                    let head =
                        csv::read_head(&mut text, decode::SNIFF_BYTES).map_err(|source| {
                            CoreError::Read {
                                file: src.name.clone(),
                                line: 1,
                                source,
                            }
                        })?;
                    let at_eof = head.len() < decode::SNIFF_BYTES;
                    let mut d = csv::sniff(&head, at_eof);
                    if let Some(del) = options.delimiter {
                        d.delimiter = del;
                        d.has_header = csv::sniff_header_with(&head, d, at_eof);
                    }
                    if let Some(h) = options.has_header {
                        d.has_header = h;
                    }
                    info.encoding = Some(enc);
                    info.delimiter = Some((d.delimiter as char).to_string());
                    info.header = Some(d.has_header);
                    dialect = Some(d);
                    let first = csv::read_first_record(&head, d);
                    if head.iter().all(|c| c.is_ascii_whitespace()) {
                        Some(Vec::new())
                    } else if d.has_header {
                        Some(csv::unique_names(&first))
                    } else {
                        Some((1..=first.len()).map(|i| format!("column_{i}")).collect())
                    }
                }
                Format::Json => {
                    // Keys are discovered over the whole input so that a key first
                    // seen late still gets a column (nothing is dropped).
                    let (text, _, enc) = open_text(&src, Arc::new(AtomicU64::new(0)))?;
                    info.encoding = Some(enc);
                    let mut sp = JsonSplitter::new(text);
                    while let Some(rec) = sp.next_raw().map_err(|source| CoreError::Read {
                        file: src.name.clone(),
                        line: 0,
                        source,
                    })? {
                        if let Ok(flat) = json::parse_record(&rec) {
                            for (k, v) in flat {
                                if v.is_some() && !json_valued.contains(&k) {
                                    json_valued.insert(k.clone());
                                }
                                if json_seen.insert(k.clone()) {
                                    json_keys.push(k);
                                }
                            }
                        }
                    }
                    None
                }
                Format::Parquet => {
                    let path = src.local_path().ok_or_else(|| CoreError::Format {
                        file: src.name.clone(),
                        message: "Parquet from a remote store is not supported yet; copy it locally first".into(),
                    })?;
                    let f = File::open(&path).map_err(|source| CoreError::Open {
                        path: src.name.clone(),
                        source,
                    })?;
                    let b = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                        .map_err(|e| CoreError::Format { file: src.name.clone(), message: format!("not a readable Parquet file: {e}") })?;
                    let s = b.schema();
                    let flat = crate::nested::flat_fields(s.fields());
                    let types: Vec<DataType> = flat.iter().map(|f| f.data_type().clone()).collect();
                    if let Some(prev) = &native
                        && prev != &types
                    {
                        return Err(CoreError::SchemaMismatch {
                            file: src.name.clone(),
                            first: files[0].0.name.clone(),
                            message: "column types differ".into(),
                        });
                    }
                    native = Some(types);
                    let names: Vec<String> = flat.iter().map(|f| f.name().clone()).collect();
                    // A struct's `a.b` may meet a column of that name.
                    Some(if crate::nested::is_nested(s.fields()) {
                        csv::unique_names(&names)
                    } else {
                        names
                    })
                }
                Format::Excel => {
                    let (sheet, rows) = crate::excel::read_sheet(&src, options.sheet.as_deref())?;
                    info.sheet = Some(sheet);
                    Some(csv::unique_names(
                        &rows
                            .into_iter()
                            .next()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|c| c.unwrap_or_default())
                            .collect::<Vec<_>>(),
                    ))
                }
            };
            if let Some(names) = names {
                match &columns {
                    None => columns = Some(names),
                    Some(prev) if *prev != names && !(names.is_empty()) => {
                        return Err(CoreError::SchemaMismatch {
                            file: src.name.clone(),
                            first: files[0].0.name.clone(),
                            message: format!(
                                "header [{}] differs from [{}]",
                                names.join(", "),
                                prev.join(", ")
                            ),
                        });
                    }
                    _ => {}
                }
            }
            files.push((src, info, dialect));
        }
        let columns = if first_format == Some(Format::Json) {
            // A key that is null wherever it is not an object (`"u": null`
            // beside `"u": {"name": …}`) is that object's absence: its fields
            // are null there, and it gets no column that would only be empty.
            let objects: std::collections::HashSet<&str> = json_keys
                .iter()
                .flat_map(|k| k.match_indices('.').map(move |(i, _)| &k[..i]))
                .collect();
            json_keys
                .iter()
                .filter(|k| json_valued.contains(*k) || !objects.contains(k.as_str()))
                .cloned()
                .collect()
        } else {
            columns.unwrap_or_default()
        };
        if columns.iter().any(|c| c == ROW_ID) {
            return Err(CoreError::Format {
                file: files[0].0.name.clone(),
                message: format!(
                    "a column is named `{ROW_ID}`, which tamis reserves for row ids; rename it"
                ),
            });
        }
        let mut fields: Vec<Field> = match &native {
            Some(types) => columns
                .iter()
                .zip(types)
                .map(|(c, t)| Field::new(c, t.clone(), true))
                .collect(),
            None => columns
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true))
                .collect(),
        };
        fields.push(Field::new(ROW_ID, DataType::UInt64, false));
        if let Some(spec) = &options.schema {
            for name in spec.types.keys() {
                if !columns.contains(name) {
                    return Err(CoreError::Schema {
                        spec: spec.spec.clone(),
                        message: format!("no column `{name}`; columns are: {}", columns.join(", ")),
                    });
                }
            }
        }
        Ok(Dataset {
            files,
            columns,
            native,
            options,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Column names (without the row-id column).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The Arrow schema of the batches: the columns, then [`ROW_ID`] (and
    /// [`ROW_HASH`] for [`Dataset::with_row_hash`]).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// This dataset, its batches carrying a [`ROW_HASH`] column after the row
    /// ids: each row's [`crate::csv::text_row_hash`], which the CSV reader
    /// takes from the bytes it holds anyway (for a plain line, the line
    /// itself), where hashing the text columns afterwards reads every value
    /// again. `None` unless every file is read as CSV (other readers do not
    /// make the column) and neither a column nor this dataset's batches
    /// already have the name.
    pub fn with_row_hash(&self) -> Option<Dataset> {
        // The schema holds the columns too: one name check serves both.
        if self.files.iter().any(|f| f.1.format != Format::Csv)
            || self.schema.column_with_name(ROW_HASH).is_some()
        {
            return None;
        }
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(ROW_HASH, DataType::UInt64, false));
        Some(Dataset {
            files: self.files.clone(),
            columns: self.columns.clone(),
            native: self.native.clone(),
            options: self.options.clone(),
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// What was detected about each file.
    pub fn files(&self) -> Vec<FileInfo> {
        self.files.iter().map(|f| f.1.clone()).collect()
    }

    /// The read options.
    pub fn options(&self) -> &ReadOptions {
        &self.options
    }

    /// Total bytes on disk, if every size is known (for progress).
    pub fn total_bytes(&self) -> Option<u64> {
        self.files.iter().map(|f| f.1.bytes).sum()
    }

    /// The type of each column: forced by `--schema`, native for Parquet,
    /// otherwise inferred from the first `sample_rows` rows. A column with
    /// no value in them (a sparse one) is inferred from its first
    /// `sample_rows` values within [`SPARSE_LOOKAHEAD`] rows (and `--sample`),
    /// rather than taken for text on no evidence.
    pub fn sample_types(&self) -> Result<Vec<ColumnType>> {
        Ok(self.sample_columns()?.0)
    }

    /// [`Dataset::sample_types`], and for each column whether it had no
    /// value at all within the look-ahead (its type then rests on no
    /// evidence; never so for a native or `--schema` type).
    pub fn sample_columns(&self) -> Result<(Vec<ColumnType>, Vec<bool>)> {
        let mut empty = vec![false; self.columns.len()];
        let mut types = if let Some(native) = &self.native {
            native.iter().map(column_type_of).collect()
        } else {
            let nulls = &self.options.null_tokens;
            let sample = self.options.sample_rows;
            let mut values: Vec<Vec<String>> = vec![Vec::new(); self.columns.len()];
            for batch in self.head_batches(sample)? {
                let batch = batch?;
                for (i, v) in values.iter_mut().enumerate() {
                    let col = datafusion::arrow::array::AsArray::as_string::<i32>(batch.column(i));
                    v.extend(col.iter().flatten().map(|s| s.to_string()));
                }
            }
            let present = |v: &str| nulls.classify(v) == crate::types::Missing::No;
            let sparse: Vec<usize> = (0..values.len())
                .filter(|&i| !values[i].iter().any(|v| present(v)))
                .collect();
            let ahead = self
                .options
                .limit
                .map_or(SPARSE_LOOKAHEAD, |l| (l as usize).min(SPARSE_LOOKAHEAD));
            if !sparse.is_empty() && ahead > sample {
                let mut found: Vec<Vec<String>> = vec![Vec::new(); self.columns.len()];
                for batch in self.head_batches(ahead)? {
                    let batch = batch?;
                    for &i in &sparse {
                        let col =
                            datafusion::arrow::array::AsArray::as_string::<i32>(batch.column(i));
                        let room = sample.saturating_sub(found[i].len());
                        found[i].extend(
                            col.iter()
                                .flatten()
                                .filter(|v| present(v))
                                .take(room)
                                .map(String::from),
                        );
                    }
                    if sparse.iter().all(|&i| found[i].len() >= sample) {
                        break;
                    }
                }
                for &i in &sparse {
                    values[i] = std::mem::take(&mut found[i]);
                }
            }
            for i in sparse {
                empty[i] = !values[i].iter().any(|v| present(v));
            }
            values
                .iter()
                .map(|v| infer_type(v.iter().map(|s| s.as_str()), &self.options.null_tokens))
                .collect::<Vec<_>>()
        };
        if let Some(spec) = &self.options.schema {
            for (i, c) in self.columns.iter().enumerate() {
                if let Some(t) = spec.types.get(c) {
                    types[i] = *t;
                    empty[i] = false;
                }
            }
        }
        Ok((types, empty))
    }

    /// The first `rows` rows, as batches (malformed rows skipped, never an error).
    fn head_batches(&self, rows: usize) -> Result<Batches> {
        let mut opts = self.options.clone();
        opts.limit = Some(rows as u64);
        opts.strict = false;
        let head = Dataset {
            files: self.files.clone(),
            columns: self.columns.clone(),
            native: self.native.clone(),
            options: opts,
            schema: self.schema.clone(),
        };
        head.batches(
            Arc::new(Quarantine::in_memory()),
            Arc::new(AtomicU64::new(0)),
        )
    }

    /// Rows the dataset is likely to hold: its size on disk over the mean
    /// width (as text, a delimiter per value) of its first 1,000 rows.
    /// Compressed and binary input is underestimated. `None` when the size
    /// is unknown (standard input) or the head cannot be read.
    pub fn estimated_rows(&self) -> Option<u64> {
        let bytes = self.total_bytes()?;
        let (mut rows, mut width) = (0usize, 0usize);
        for batch in self.head_batches(1000).ok()? {
            let batch = batch.ok()?;
            rows += batch.num_rows();
            for i in data_columns(&batch.schema()) {
                let text =
                    datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8).ok()?;
                let text = datafusion::arrow::array::AsArray::as_string::<i32>(&text);
                width += text
                    .iter()
                    .map(|v| v.map_or(0, str::len) + 1)
                    .sum::<usize>();
            }
        }
        (rows > 0).then(|| (bytes as f64 * rows as f64 / width.max(1) as f64) as u64)
    }

    /// Whether a column's type was forced by `--schema` (or is native).
    pub fn is_forced(&self, column: &str) -> bool {
        self.native.is_some()
            || self
                .options
                .schema
                .as_ref()
                .is_some_and(|s| s.types.contains_key(column))
    }

    /// Up to `n` non-empty values per column (trimmed, as text), from the
    /// start of the data; rows the reader quarantines are skipped.
    pub fn sample_text(&self, n: usize) -> Result<Vec<Vec<String>>> {
        sample_text(
            self.batches(
                Arc::new(Quarantine::in_memory()),
                Arc::new(AtomicU64::new(0)),
            )?,
            &self.columns,
            n,
        )
    }

    /// Up to `n` non-empty values of each of `columns` (by name; trimmed, as
    /// text) from the first `rows` rows at most (and `--limit`); rows the
    /// reader quarantines are skipped.
    pub fn sample_head_text(
        &self,
        columns: &[String],
        n: usize,
        rows: usize,
    ) -> Result<Vec<Vec<String>>> {
        let rows = self.options.limit.map_or(rows, |l| (l as usize).min(rows));
        sample_text(self.head_batches(rows)?, columns, n)
    }

    /// Streams every row of every file, in order, as batches.
    pub fn batches(
        &self,
        quarantine: Arc<Quarantine>,
        progress: Arc<AtomicU64>,
    ) -> Result<Batches> {
        Ok(Batches {
            files: self.files.clone(),
            next_file: 0,
            current: None,
            row_id: 0,
            options: self.options.clone(),
            schema: self.schema.clone(),
            columns: self.columns.clone(),
            column_index: self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i))
                .collect(),
            quarantine,
            progress,
        })
    }
}

fn column_type_of(t: &DataType) -> ColumnType {
    match t {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ColumnType::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => ColumnType::Float,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Timestamp(_, _) => ColumnType::Datetime,
        _ => ColumnType::String,
    }
}

enum FileReader {
    Csv(Box<CsvBatchReader>),
    Json {
        splitter: JsonSplitter,
        file: String,
    },
    Rows {
        rows: std::vec::IntoIter<Vec<Option<String>>>,
        file: String,
        line: u64,
    },
    Parquet(datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader),
}

/// An iterator of batches over all files of a dataset.
pub struct Batches {
    files: Vec<(SourceFile, FileInfo, Option<CsvDialect>)>,
    next_file: usize,
    current: Option<FileReader>,
    row_id: u64,
    options: ReadOptions,
    schema: SchemaRef,
    columns: Vec<String>,
    /// Each column's position by name (a JSON record's keys are looked up here).
    column_index: HashMap<String, usize>,
    quarantine: Arc<Quarantine>,
    progress: Arc<AtomicU64>,
}

impl Batches {
    fn open_next(&mut self) -> Result<bool> {
        let Some((src, info, dialect)) = self.files.get(self.next_file).cloned() else {
            return Ok(false);
        };
        self.next_file += 1;
        self.current = Some(match info.format {
            Format::Csv => {
                let (text, _, enc) = open_text(&src, self.progress.clone())?;
                FileReader::Csv(Box::new(CsvBatchReader::new(
                    text,
                    CsvReaderConfig {
                        file: src.name.clone(),
                        dialect: dialect.unwrap_or_default(),
                        schema: self.schema.clone(),
                        check_utf8: matches!(enc, TextEncoding::Utf8 | TextEncoding::Utf8Bom),
                        first_row_id: self.row_id,
                        batch_size: self.options.batch_size,
                        limit: self.options.limit,
                        quarantine: self.quarantine.clone(),
                        strict: self.options.strict,
                        bytes_read: Arc::new(AtomicU64::new(0)),
                    },
                )?))
            }
            Format::Json => {
                let (text, _, _) = open_text(&src, self.progress.clone())?;
                FileReader::Json {
                    splitter: JsonSplitter::new(text),
                    file: src.name.clone(),
                }
            }
            Format::Excel => {
                let (_, rows) = crate::excel::read_sheet(&src, self.options.sheet.as_deref())?;
                let mut it = rows.into_iter();
                it.next(); // header
                FileReader::Rows {
                    rows: it,
                    file: src.name.clone(),
                    line: 1,
                }
            }
            Format::Parquet => {
                let path = src
                    .local_path()
                    .ok_or_else(|| CoreError::Internal("parquet path".into()))?;
                let f = File::open(&path).map_err(|source| CoreError::Open {
                    path: src.name.clone(),
                    source,
                })?;
                if let Some(n) = info.bytes {
                    self.progress
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                let r = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .and_then(|b| b.with_batch_size(self.options.batch_size).build())
                    .map_err(|e| CoreError::Format { file: src.name.clone(), message: e.to_string() })?;
                FileReader::Parquet(r)
            }
        });
        Ok(true)
    }

    fn at_limit(&self) -> bool {
        self.options.limit.is_some_and(|l| self.row_id >= l)
    }

    fn text_batch(&mut self, records: Vec<(u64, Vec<Option<String>>)>) -> Result<RecordBatch> {
        let n = records.len();
        let mut builders: Vec<StringBuilder> = (0..self.columns.len())
            .map(|_| StringBuilder::with_capacity(n, n * 8))
            .collect();
        let mut ids = Vec::with_capacity(n);
        for (id, rec) in records {
            for (b, v) in builders.iter_mut().zip(rec) {
                b.append_option(v);
            }
            ids.push(id);
        }
        let mut cols: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        cols.push(Arc::new(UInt64Array::from(ids)));
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    fn next_inner(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.at_limit() {
                return Ok(None);
            }
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let batch_size = self.options.batch_size;
            let out = match self.current.as_mut() {
                Some(FileReader::Csv(r)) => {
                    let b = r.next_batch()?;
                    self.row_id = r.next_row_id();
                    b
                }
                Some(FileReader::Parquet(r)) => match r.next() {
                    None => None,
                    Some(b) => {
                        let b = b?;
                        let mut n = b.num_rows() as u64;
                        if let Some(l) = self.options.limit {
                            n = n.min(l - self.row_id);
                        }
                        let b = b.slice(0, n as usize);
                        let ids = UInt64Array::from_iter_values(self.row_id..self.row_id + n);
                        self.row_id += n;
                        let mut cols =
                            crate::nested::flatten(b.schema_ref().fields(), b.columns())?;
                        cols.push(Arc::new(ids));
                        Some(RecordBatch::try_new(self.schema.clone(), cols)?)
                    }
                },
                Some(FileReader::Json { .. }) | Some(FileReader::Rows { .. }) => {
                    let mut records = Vec::new();
                    while records.len() < batch_size && !self.at_limit() {
                        let next = self.next_text_record()?;
                        match next {
                            None => break,
                            Some(Some(rec)) => {
                                records.push((self.row_id, rec));
                                self.row_id += 1;
                            }
                            Some(None) => self.row_id += 1, // quarantined
                        }
                    }
                    if records.is_empty() {
                        None
                    } else {
                        Some(self.text_batch(records)?)
                    }
                }
                None => None,
            };
            match out {
                Some(b) => return Ok(Some(b)),
                None => self.current = None,
            }
        }
    }

    /// `None` at the end of the file; `Some(None)` for a quarantined record.
    fn next_text_record(&mut self) -> Result<Option<Option<Vec<Option<String>>>>> {
        let ncols = self.columns.len();
        let row_id = self.row_id;
        match self.current.as_mut() {
            Some(FileReader::Json { splitter, file }) => {
                let file = file.clone();
                let Some(raw) = splitter.next_raw().map_err(|source| CoreError::Read {
                    file: file.clone(),
                    line: 0,
                    source,
                })?
                else {
                    return Ok(None);
                };
                match json::parse_record(&raw) {
                    Ok(flat) => {
                        let mut rec = vec![None; ncols];
                        for (k, v) in flat {
                            if let Some(&i) = self.column_index.get(&k) {
                                rec[i] = v;
                            }
                        }
                        Ok(Some(Some(rec)))
                    }
                    Err((reason, line, column)) => {
                        if self.options.strict {
                            return Err(CoreError::Malformed {
                                file,
                                line,
                                column,
                                reason,
                            });
                        }
                        self.quarantine.push(QuarantinedRow {
                            file,
                            line: raw.line,
                            row_id,
                            reason,
                            raw: String::from_utf8_lossy(&raw.bytes).into_owned(),
                        })?;
                        Ok(Some(None))
                    }
                }
            }
            Some(FileReader::Rows { rows, file, line }) => {
                let Some(mut rec) = rows.next() else {
                    return Ok(None);
                };
                *line += 1;
                if rec.len() > ncols && rec[ncols..].iter().any(|c| c.is_some()) {
                    let reason = format!(
                        "wrong field count: expected {ncols} cells, found {}",
                        rec.len()
                    );
                    if self.options.strict {
                        return Err(CoreError::Malformed {
                            file: file.clone(),
                            line: *line,
                            column: ncols as u64 + 1,
                            reason,
                        });
                    }
                    let raw = rec
                        .iter()
                        .map(|c| c.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("\t");
                    self.quarantine.push(QuarantinedRow {
                        file: file.clone(),
                        line: *line,
                        row_id,
                        reason,
                        raw,
                    })?;
                    return Ok(Some(None));
                }
                rec.resize(ncols, None);
                Ok(Some(Some(rec)))
            }
            _ => Ok(None),
        }
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_inner() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                // Stop after an error: the caller reports it.
                self.files.clear();
                self.current = None;
                Some(Err(e))
            }
        }
    }
}

//! Readers on messy inputs: every fixture gives rows (bad ones quarantined
//! and counted) or a clear error naming the file, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::arrow::util::display::array_value_to_string;
use tamis_core::datafusion;
use tamis_core::decode::{Compression, TextEncoding};
use tamis_core::{CoreError, Dataset, Format, Quarantine, QuarantineSummary, ROW_ID, ReadOptions};

/// Rows read: (row id, cells as text, None for null).
type Rows = Vec<(u64, Vec<Option<String>>)>;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read_with(
    specs: &[&Path],
    options: ReadOptions,
) -> Result<(Dataset, Rows, QuarantineSummary), CoreError> {
    let specs: Vec<String> = specs.iter().map(|p| p.display().to_string()).collect();
    let ds = Dataset::open(&specs, options)?;
    let q = Arc::new(Quarantine::in_memory());
    let mut rows = Vec::new();
    for batch in ds.batches(q.clone(), Arc::new(AtomicU64::new(0)))? {
        let batch = batch?;
        let ids = batch
            .column_by_name(ROW_ID)
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .clone();
        for r in 0..batch.num_rows() {
            let cells = ds
                .columns()
                .iter()
                .map(|c| {
                    let a = batch.column_by_name(c).unwrap();
                    (!a.is_null(r)).then(|| array_value_to_string(a, r).unwrap())
                })
                .collect();
            rows.push((ids.value(r), cells));
        }
    }
    let summary = q.finish()?;
    Ok((ds, rows, summary))
}

fn read(p: &Path) -> (Dataset, Rows, QuarantineSummary) {
    read_with(&[p], ReadOptions::default()).unwrap()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn ragged_rows_are_quarantined_with_line_and_row_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "ragged.csv",
        b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n",
    );
    let (ds, rows, q) = read(&p);
    assert_eq!(ds.columns(), ["a", "b", "c"]);
    let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, [0, 3], "row ids keep source positions");
    assert_eq!(rows[1].1, [s("10"), s("11"), s("12")]);
    assert_eq!(q.rows, 2);
    assert_eq!(q.by_reason["wrong field count"], 2);
    let lines: Vec<(u64, u64)> = q.examples.iter().map(|e| (e.line, e.row_id)).collect();
    assert_eq!(lines, [(3, 1), (4, 2)]);
    assert_eq!(q.examples[0].raw, "4,5");
}

#[test]
fn strict_mode_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.csv", b"a,b\n1,2\n3,4,5\n");
    let opts = ReadOptions {
        strict: true,
        ..ReadOptions::default()
    };
    let err = read_with(&[&p], opts).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.csv:3:"), "{msg}");
    assert!(msg.contains("wrong field count"), "{msg}");
    assert!(msg.contains("without --strict"), "{msg}");
    assert!(err.is_bad_input());
}

#[test]
fn quoted_newlines_and_escaped_quotes_stay_in_one_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "q.csv",
        b"id,note\n1,\"line one\nline two\"\n2,\"say \"\"hi\"\"\"\n3,plain\n",
    );
    let (_, rows, q) = read(&p);
    assert_eq!(q.rows, 0);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].1[1], s("line one\nline two"));
    assert_eq!(rows[1].1[1], s("say \"hi\""));
    assert_eq!(rows[2].0, 2);
}

#[test]
fn unterminated_quote_loses_only_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "u.csv", b"a,b\n1,\"oops\n2,x\n3,y\n");
    let (_, rows, q) = read(&p);
    assert_eq!(q.rows, 1, "{q:?}");
    assert!(q.examples[0].reason.starts_with("unterminated quote"));
    assert_eq!(q.examples[0].line, 2);
    let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn utf8_bom_is_stripped_from_the_first_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bom.csv", "\u{feff}id,name\n1,Zoë\n".as_bytes());
    let (ds, rows, _) = read(&p);
    assert_eq!(ds.columns(), ["id", "name"]);
    assert_eq!(ds.files()[0].encoding, Some(TextEncoding::Utf8Bom));
    assert_eq!(rows[0].1[1], s("Zoë"));
}

#[test]
fn utf16_with_bom_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let text = "id;city\n1;Zürich\n2;Köln\n";
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
    for (name, bytes, enc) in [
        ("le.csv", le, TextEncoding::Utf16Le),
        ("be.csv", be, TextEncoding::Utf16Be),
    ] {
        let p = write(dir.path(), name, &bytes);
        let (ds, rows, _) = read(&p);
        assert_eq!(ds.files()[0].encoding, Some(enc));
        assert_eq!(ds.files()[0].delimiter.as_deref(), Some(";"));
        assert_eq!(rows[0].1[1], s("Zürich"));
        assert_eq!(rows[1].1[1], s("Köln"));
    }
}

#[test]
fn latin1_falls_back_to_windows_1252() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "latin1.csv",
        b"name,city,price\nJos\xe9,M\xfcnchen,\x8010\n",
    );
    let (ds, rows, q) = read(&p);
    assert_eq!(q.rows, 0);
    assert_eq!(ds.files()[0].encoding, Some(TextEncoding::Windows1252));
    assert_eq!(
        rows[0].1,
        [s("José"), s("München"), s("€10")],
        "0x80 is the euro sign in Windows-1252"
    );
}

#[test]
fn invalid_utf8_after_the_sniffed_start_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"id,name\n".to_vec();
    for i in 0..20_000 {
        bytes.extend(format!("{i},Zoë {i}\n").as_bytes());
    }
    bytes.extend(b"20000,bad \xff\xfe byte\n20001,fine\n");
    let p = write(dir.path(), "mixed.csv", &bytes);
    let (ds, rows, q) = read(&p);
    assert_eq!(ds.files()[0].encoding, Some(TextEncoding::Utf8));
    assert_eq!(q.rows, 1);
    assert!(q.examples[0].reason.starts_with("invalid UTF-8"), "{q:?}");
    assert_eq!(q.examples[0].line, 20_002);
    assert_eq!(q.examples[0].row_id, 20_000);
    assert!(q.examples[0].raw.contains("bad"));
    assert_eq!(rows.len(), 20_001);
    assert_eq!(rows.last().unwrap().0, 20_001);
}

#[test]
fn empty_file_and_header_only_give_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.csv", b"");
    let (ds, rows, q) = read(&empty);
    assert!(rows.is_empty());
    assert!(ds.columns().is_empty());
    assert_eq!(q.rows, 0);

    let header = write(dir.path(), "header.csv", b"a,b,c\n");
    let (ds, rows, _) = read(&header);
    assert_eq!(ds.columns(), ["a", "b", "c"]);
    assert!(rows.is_empty());
}

#[test]
fn duplicate_and_empty_column_names_are_made_unique() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "names.csv", b"id,,id, ,id\n1,2,3,4,5\n");
    let (ds, rows, _) = read(&p);
    assert_eq!(ds.columns(), ["id", "column_2", "id_2", "column_4", "id_3"]);
    assert_eq!(rows[0].1[4], s("5"));
}

#[test]
fn delimiters_are_sniffed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, delim) in [("t.tsv", '\t'), ("p.txt", '|'), ("s.csv", ';')] {
        let text = format!("a{delim}b{delim}c\n1{delim}x, y{delim}3\n4{delim}z{delim}6\n");
        let p = write(dir.path(), name, text.as_bytes());
        let (ds, rows, _) = read(&p);
        assert_eq!(ds.columns(), ["a", "b", "c"], "{name}");
        assert_eq!(rows[0].1[1], s("x, y"), "{name}");
    }
}

#[test]
fn headerless_files_are_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "nohead.csv", b"1,2.5,x\n2,3.5,y\n3,4.5,z\n");
    let (ds, rows, _) = read(&p);
    assert_eq!(ds.columns(), ["column_1", "column_2", "column_3"]);
    assert_eq!(ds.files()[0].header, Some(false));
    assert_eq!(rows.len(), 3);
}

#[test]
fn a_10_mb_field_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(10 * 1024 * 1024);
    let p = write(
        dir.path(),
        "big.csv",
        format!("id,blob\n1,\"{big}\"\n2,small\n").as_bytes(),
    );
    let (_, rows, q) = read(&p);
    assert_eq!(q.rows, 0);
    assert_eq!(rows[0].1[1].as_ref().unwrap().len(), big.len());
    assert_eq!(rows[1].1[1], s("small"));
}

#[test]
fn five_thousand_columns() {
    let dir = tempfile::tempdir().unwrap();
    let header: Vec<String> = (0..5000).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    let text = format!(
        "{}\n{}\n{}\n",
        header.join(","),
        row.join(","),
        row.join(",")
    );
    let p = write(dir.path(), "wide.csv", text.as_bytes());
    let (ds, rows, _) = read(&p);
    assert_eq!(ds.columns().len(), 5000);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].1[4999], s("4999"));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sample_csv() -> Vec<u8> {
    let mut t = b"id,name\n".to_vec();
    for i in 0..1000 {
        t.extend(format!("{i},name {i}\n").as_bytes());
    }
    t
}

#[test]
fn compressed_inputs_by_magic_and_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let plain = sample_csv();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&plain).unwrap();
    let bz = bz.finish().unwrap();
    for (name, bytes, comp) in [
        ("a.csv.gz", gzip(&plain), Compression::Gzip),
        ("b.csv.zst", zst.clone(), Compression::Zstd),
        ("c.csv.bz2", bz.clone(), Compression::Bzip2),
        // Misleading names: the magic bytes win.
        ("d.csv", gzip(&plain), Compression::Gzip),
        ("e.dat", zst, Compression::Zstd),
        ("f.csv", bz, Compression::Bzip2),
    ] {
        let p = write(dir.path(), name, &bytes);
        let (ds, rows, q) = read(&p);
        assert_eq!(ds.files()[0].compression, comp, "{name}");
        assert_eq!(ds.files()[0].format, Format::Csv, "{name}");
        assert_eq!(ds.columns(), ["id", "name"], "{name}");
        assert_eq!(rows.len(), 1000, "{name}");
        assert_eq!(rows[999].1[1], s("name 999"), "{name}");
        assert_eq!(q.rows, 0);
    }
}

#[test]
fn concatenated_gzip_members_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(b"a,b\n1,2\n");
    bytes.extend(gzip(b"3,4\n"));
    let p = write(dir.path(), "multi.csv.gz", &bytes);
    let (_, rows, _) = read(&p);
    assert_eq!(rows.len(), 2);
}

#[test]
fn a_gzip_that_lies_about_its_size_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(&sample_csv());
    // The trailer's last 4 bytes are the uncompressed size (ISIZE): lie.
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let p = write(dir.path(), "liar.csv.gz", &bytes);
    match read_with(&[&p], ReadOptions::default()) {
        Ok((_, rows, _)) => assert_eq!(rows.len(), 1000),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("liar.csv.gz"), "{msg}");
            assert!(e.is_bad_input(), "{msg}");
        }
    }
    // A truncated gzip is an error naming the file, not silent loss.
    let bytes = gzip(&sample_csv());
    let p = write(dir.path(), "cut.csv.gz", &bytes[..bytes.len() / 2]);
    let err = read_with(&[&p], ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("cut.csv.gz"), "{err}");
}

#[test]
fn glob_reads_files_in_order_with_continuous_row_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part-1.csv", b"a,b\n1,x\n2,y\n");
    write(dir.path(), "part-2.csv", b"a,b\n3,z\n4,w,extra\n5,v\n");
    write(dir.path(), "part-10.csv", b"a,b\n6,u\n");
    let pattern = dir.path().join("part-*.csv");
    let (ds, rows, q) = read(&pattern);
    let names: Vec<String> = ds
        .files()
        .iter()
        .map(|f| {
            Path::new(&f.name)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into()
        })
        .collect();
    assert_eq!(names, ["part-1.csv", "part-10.csv", "part-2.csv"]);
    let got: Vec<(u64, Option<String>)> = rows.iter().map(|r| (r.0, r.1[0].clone())).collect();
    assert_eq!(
        got,
        [
            (0, s("1")),
            (1, s("2")),
            (2, s("6")),
            (3, s("3")),
            (5, s("5"))
        ]
    );
    assert_eq!(q.rows, 1);
    assert_eq!(q.examples[0].row_id, 4);
    assert_eq!(q.examples[0].line, 3);
    assert!(q.examples[0].file.ends_with("part-2.csv"));
}

#[test]
fn a_glob_matching_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_with(&[&dir.path().join("nothing-*.csv")], ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing-*.csv"), "{err}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = read_with(
        &[Path::new("/definitely/not/here.csv")],
        ReadOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("/definitely/not/here.csv"),
        "{err}"
    );
    assert!(err.is_bad_input());
}

#[test]
fn file_urls_go_through_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "u.csv", b"a,b\n1,2\n3,4\n");
    let url = format!("file://{}", p.display());
    let ds = Dataset::open(std::slice::from_ref(&url), ReadOptions::default()).unwrap();
    assert_eq!(ds.files()[0].name, url);
    let q = Arc::new(Quarantine::in_memory());
    let n: usize = ds
        .batches(q, Arc::new(AtomicU64::new(0)))
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(n, 2);
}

#[test]
fn json_lines_flatten_nested_objects_and_keep_arrays_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "x.jsonl",
        br#"{"id": 1, "user": {"name": "Ann", "geo": {"city": "Oslo"}}, "tags": ["a", "b"]}
{"id": 2, "user": {"name": "Bob"}, "extra": true}
not json at all
{"id": 3, "tags": []}
{"id": 4, "user": null, "extra": null, "none": null}
{"id": 5, "user": {"name": "Cy", "geo": null}}
"#,
    );
    let (ds, rows, q) = read(&p);
    assert_eq!(ds.files()[0].format, Format::Json);
    // A null where other records hold an object is no column of its own; a
    // key that is only ever null (`none`) still is one.
    assert_eq!(
        ds.columns(),
        ["id", "user.name", "user.geo.city", "tags", "extra", "none"]
    );
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[3].1, [s("4"), None, None, None, None, None]);
    assert_eq!(rows[4].1[1], s("Cy"));
    assert_eq!(
        rows[0].1,
        [s("1"), s("Ann"), s("Oslo"), s(r#"["a","b"]"#), None, None]
    );
    assert_eq!(rows[1].1[4], s("true"));
    assert_eq!(rows[2].0, 3, "the bad line keeps its row id");
    assert_eq!(q.rows, 1);
    assert_eq!(q.examples[0].line, 3);
    assert!(q.examples[0].reason.starts_with("invalid JSON"), "{q:?}");
}

#[test]
fn json_arrays_of_objects() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "arr.json",
        br#"[
  {"id": 1, "name": "a", "n": {"x": 1.5}},
  {"id": 2, "name": null, "n": {"x": 2.5}},
  {"id": 3, "name": "c", "n.x": 9, "n": {"x": 3.5}},
  {"id": 4, "name": "d", "n.x": 4.5}
]"#,
    );
    let (ds, rows, q) = read(&p);
    assert_eq!(ds.columns(), ["id", "name", "n.x"]);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].1, [s("2"), None, s("2.5")]);
    // Two values for `n.x` in one record: quarantined, neither silently lost.
    assert_eq!(q.rows, 1);
    assert_eq!(q.examples[0].line, 4);
    assert!(
        q.examples[0].reason.contains("\"n.x\" is given twice"),
        "{q:?}"
    );
    // A dotted key alone fills the column the nested object does.
    assert_eq!(rows[2], (3, vec![s("4"), s("d"), s("4.5")]));
}

#[test]
fn pretty_printed_json_records_and_cut_arrays() {
    let dir = tempfile::tempdir().unwrap();
    // `jq '.[]'` output: one object after another, each over several lines.
    let p = write(
        dir.path(),
        "jq.json",
        b"{\n  \"id\": 1,\n  \"user\": {\"name\": \"Ann\"}\n}\n{\n  \"id\": 2\n}\n",
    );
    let (ds, rows, q) = read(&p);
    assert_eq!(ds.files()[0].format, Format::Json);
    assert_eq!(ds.columns(), ["id", "user.name"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1, [s("1"), s("Ann")]);
    assert_eq!(q.rows, 0);

    // An array the file ends inside: its records are read, and the cut is
    // quarantined and counted rather than passed over.
    let p = write(dir.path(), "cut.json", b"[{\"id\": 1},\n {\"id\": 2}\n");
    let (_, rows, q) = read(&p);
    assert_eq!(rows.len(), 2);
    assert_eq!(q.rows, 1);
    assert_eq!(q.examples[0].line, 3);
    assert!(
        q.examples[0].reason.contains("before its closing `]`"),
        "{q:?}"
    );

    // --strict names the fault's own line and column, not the record's start.
    let p = write(
        dir.path(),
        "bad.json",
        b"[\n  {\"id\": 1,\n   \"x\": nope}\n]\n",
    );
    let opts = ReadOptions {
        strict: true,
        ..ReadOptions::default()
    };
    let msg = read_with(&[&p], opts).unwrap_err().to_string();
    // `nope`: the fault is its `o`, where `null` cannot go on.
    assert!(msg.contains("bad.json:3:10"), "{msg}");
    assert!(!msg.contains("at line"), "{msg}");
}

#[test]
fn parquet_is_read_with_native_types() {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.0)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
        ],
    )
    .unwrap();
    let p = dir.path().join("t.parquet");
    let f = std::fs::File::create(&p).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let (ds, rows, _) = read(&p);
    assert_eq!(ds.files()[0].format, Format::Parquet);
    assert!(ds.is_forced("score"));
    assert_eq!(
        ds.sample_types().unwrap(),
        [
            tamis_core::ColumnType::Integer,
            tamis_core::ColumnType::Float,
            tamis_core::ColumnType::String
        ]
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].1[1], None);
    assert_eq!(rows[2].0, 2);
}

#[test]
fn a_column_empty_through_the_sample_is_typed_by_its_first_values() {
    use tamis_core::ColumnType::{Float, Integer, String as Text};
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,late,never,words\n");
    for i in 0..3000 {
        let late = if i < 1500 {
            "NA".to_string()
        } else {
            format!("{}.5", i % 40)
        };
        let words = if i < 2000 { "" } else { "x" };
        csv.push_str(&format!("{i},{late},,{words}\n"));
    }
    let p = write(dir.path(), "sparse.csv", csv.as_bytes());
    let ds = Dataset::open(&[p.display().to_string()], ReadOptions::default()).unwrap();
    assert_eq!(ds.sample_types().unwrap(), [Integer, Float, Text, Text]);
    // Not past `--sample`: the rows read are all the evidence there is.
    let opts = ReadOptions {
        limit: Some(1200),
        ..ReadOptions::default()
    };
    let ds = Dataset::open(&[p.display().to_string()], opts).unwrap();
    assert_eq!(ds.sample_types().unwrap(), [Integer, Text, Text, Text]);
}

#[test]
fn nested_and_binary_parquet_columns_are_made_flat_like_json() {
    use datafusion::arrow::array::{
        ArrayRef, BinaryArray, DictionaryArray, Int64Array, ListArray, StringArray, StructArray,
    };
    use datafusion::arrow::buffer::NullBuffer;
    use datafusion::arrow::datatypes::{DataType, Field, Fields, Int32Type, Int64Type, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    let dir = tempfile::tempdir().unwrap();
    let inner = Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Utf8, true),
    ]);
    // The third struct is null though its slots hold 9 and "z".
    let st = StructArray::new(
        inner.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 9])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("q"), None, Some("z")])),
        ],
        Some(NullBuffer::from(vec![true, true, false])),
    );
    let tags = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), None]),
        Some(vec![]),
        None,
    ]);
    let bin = BinaryArray::from(vec![Some(&b"\x00\xff"[..]), Some(&b""[..]), None]);
    let dict: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Struct(inner), true),
        Field::new("tags", tags.data_type().clone(), true),
        Field::new("bin", DataType::Binary, true),
        Field::new("d", dict.data_type().clone(), true),
        Field::new("s.x", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(st),
            Arc::new(tags),
            Arc::new(bin),
            Arc::new(dict),
            Arc::new(StringArray::from(vec!["top", "level", "name"])),
        ],
    )
    .unwrap();
    let p = dir.path().join("nested.parquet");
    let f = std::fs::File::create(&p).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let (ds, rows, _) = read(&p);
    assert_eq!(ds.columns(), ["s.x", "s.y", "tags", "bin", "d", "s.x_2"]);
    use tamis_core::ColumnType::{Integer, String as Text};
    assert_eq!(
        ds.sample_types().unwrap(),
        [Integer, Text, Text, Text, Text, Text]
    );
    let cells: Vec<Vec<Option<String>>> = rows.into_iter().map(|r| r.1).collect();
    assert_eq!(
        cells,
        [
            vec![s("1"), s("q"), s("[1,null]"), s("00ff"), s("a"), s("top")],
            vec![s("2"), None, s("[]"), s(""), s("b"), s("level")],
            vec![None, None, None, None, s("a"), s("name")],
        ]
    );
}

#[test]
fn a_corrupt_parquet_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.parquet", b"PAR1 this is not parquet PAR1");
    let err = read_with(&[&p], ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bad.parquet"), "{err}");
    assert!(err.is_bad_input());
}

#[test]
fn excel_sheets_by_name_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("book.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let s1 = wb.add_worksheet().set_name("first").unwrap();
    s1.write_string(0, 0, "id").unwrap();
    s1.write_string(0, 1, "name").unwrap();
    s1.write_number(1, 0, 1).unwrap();
    s1.write_string(1, 1, "Ann").unwrap();
    let s2 = wb.add_worksheet().set_name("people").unwrap();
    s2.write_string(0, 0, "age").unwrap();
    s2.write_number(1, 0, 41).unwrap();
    s2.write_number(2, 0, 42.5).unwrap();
    wb.save(&p).unwrap();

    let (ds, rows, _) = read(&p);
    assert_eq!(ds.files()[0].format, Format::Excel);
    assert_eq!(ds.columns(), ["id", "name"]);
    assert_eq!(rows[0].1, [s("1"), s("Ann")]);
    for sheet in ["people", "1"] {
        let opts = ReadOptions {
            sheet: Some(sheet.into()),
            ..ReadOptions::default()
        };
        let (ds, rows, _) = read_with(&[&p], opts).unwrap();
        assert_eq!(ds.columns(), ["age"]);
        assert_eq!(ds.files()[0].sheet.as_deref(), Some("people"));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].1[0], s("42.5"));
    }
    let opts = ReadOptions {
        sheet: Some("nope".into()),
        ..ReadOptions::default()
    };
    let err = read_with(&[&p], opts).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("people"), "{err}");
}

#[test]
fn limit_reads_only_the_first_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "many.csv", &sample_csv());
    let opts = ReadOptions {
        limit: Some(10),
        batch_size: 3,
        ..ReadOptions::default()
    };
    let (_, rows, _) = read_with(&[&p], opts).unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9].0, 9);
}

#[tokio::test]
async fn datasets_are_sql_tables_in_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.csv",
        b"id,city\n1,Oslo\n2,Rome\n3,Oslo\n4,5,6\n5,Oslo\n",
    );
    let ds = Arc::new(Dataset::open(&[p.display().to_string()], ReadOptions::default()).unwrap());
    let q = Arc::new(Quarantine::in_memory());
    let table =
        tamis_core::engine::dataset_table(ds, q.clone(), Arc::new(AtomicU64::new(0))).unwrap();
    let ctx = tamis_core::engine::session(2);
    ctx.register_table("t", table).unwrap();
    let batches = ctx
        .sql("SELECT city, count(*) AS n, max(__row_id) AS last FROM t GROUP BY city ORDER BY city")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("| Oslo | 3 | 4    |"), "{text}");
    assert!(text.contains("| Rome | 1 | 1    |"), "{text}");
    assert_eq!(q.summary().rows, 1);
}

#[test]
fn row_count_is_estimated_from_the_size_and_the_head() {
    let dir = tempfile::tempdir().unwrap();
    // 50,000 rows of one width, a column always empty.
    let mut text = String::from("id,name,empty\n");
    for i in 0..50_000 {
        text.push_str(&format!("{i:05},name{:02},\n", i % 97));
    }
    let p = write(dir.path(), "rows.csv", text.as_bytes());
    let ds = Dataset::open(&[p.display().to_string()], ReadOptions::default()).unwrap();
    let est = ds.estimated_rows().unwrap() as f64;
    assert!((est - 50_000.0).abs() < 0.05 * 50_000.0, "estimate {est}");
    // A gzip's size says little about its rows: an underestimate, never a failure.
    let gz = dir.path().join("rows.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    let ds = Dataset::open(&[gz.display().to_string()], ReadOptions::default()).unwrap();
    assert!(ds.estimated_rows().unwrap() < 50_000);
}

/// Only an all-CSV dataset gets reader-made row hashes, once: its batches
/// end with them, and equal rows, however quoted, hash alike.
#[test]
fn row_hashes_come_only_with_csv() {
    let dir = tempfile::tempdir().unwrap();
    let open =
        |p: &Path| Dataset::open(&[p.display().to_string()], ReadOptions::default()).unwrap();
    let csv = write(dir.path(), "a.csv", b"k,v\n1,x\n\"1\",\"x\"\n2,\n");
    let hashed = open(&csv)
        .with_row_hash()
        .expect("a CSV dataset has row hashes");
    assert!(hashed.with_row_hash().is_none(), "only once");
    let schema = hashed.schema();
    assert_eq!(schema.fields().last().unwrap().name(), tamis_core::ROW_HASH);
    assert_eq!(tamis_core::dataset::data_columns(&schema), vec![0, 1]);
    let q = Arc::new(Quarantine::in_memory());
    let mut hashes = Vec::new();
    for b in hashed.batches(q, Arc::new(AtomicU64::new(0))).unwrap() {
        let b = b.unwrap();
        let h = b.column_by_name(tamis_core::ROW_HASH).unwrap();
        let h = h.as_any().downcast_ref::<UInt64Array>().unwrap();
        hashes.extend(h.values().iter().copied());
    }
    assert_eq!(hashes.len(), 3);
    assert_eq!(hashes[0], hashes[1]);
    assert_ne!(hashes[0], hashes[2]);
    // Not for other formats, nor over a column of that name.
    let json = write(dir.path(), "a.jsonl", b"{\"k\": 1}\n");
    assert!(open(&json).with_row_hash().is_none());
    let named = write(dir.path(), "b.csv", b"__row_hash,v\n1,x\n");
    assert!(open(&named).with_row_hash().is_none());
}

#[test]
fn a_schema_file_names_each_column_type_in_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.json",
        br#"{"zip": "string", "n": "integer"}"#,
    );
    let spec = tamis_core::SchemaSpec::parse(&good.display().to_string()).unwrap();
    assert_eq!(spec.types.len(), 2);
    // A type that is not a string was read as "" and reported as an unknown
    // type ``; now the message names the column and what was found.
    let bad = write(dir.path(), "bad.json", br#"{"zip": "string", "n": 5}"#);
    let err = tamis_core::SchemaSpec::parse(&bad.display().to_string()).unwrap_err();
    let CoreError::Schema { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("the type of `n` must be a type name in quotes")
            && message.contains("not 5"),
        "{message}"
    );
}

/// A head sample reads no further than its rows (nor `--limit`): a sparse
/// column's values past them are not taken, whatever the sample size.
#[test]
fn head_sample_stops_at_its_rows_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,note\n");
    for i in 0..50 {
        let note = if i % 10 == 0 {
            format!("n{i}")
        } else {
            String::new()
        };
        csv.push_str(&format!("{i},{note}\n"));
    }
    let p = write(dir.path(), "sparse.csv", csv.as_bytes());
    let spec = [p.display().to_string()];
    let cols = ["note".to_string()];
    let ds = Dataset::open(&spec, ReadOptions::default()).unwrap();
    assert_eq!(
        ds.sample_head_text(&cols, 100, 25).unwrap(),
        [["n0", "n10", "n20"]]
    );
    assert_eq!(ds.sample_head_text(&cols, 2, 50).unwrap(), [["n0", "n10"]]);
    let limited = ReadOptions {
        limit: Some(15),
        ..ReadOptions::default()
    };
    let ds = Dataset::open(&spec, limited).unwrap();
    assert_eq!(
        ds.sample_head_text(&cols, 100, 25).unwrap(),
        [["n0", "n10"]]
    );
}

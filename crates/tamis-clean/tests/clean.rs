#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of plans: golden outputs per step, provenance, revert,
//! determinism, lineage tampering, contract checks and bad plans.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tamis_clean::provenance::{Query, query, revert};
use tamis_clean::{CleanError, CleanOutcome, CleanRequest, Plan, clean, sidecar_dir};
use tamis_core::contract::Contract;
use tamis_core::datafusion::arrow::array::{Array, AsArray, RecordBatch};
use tamis_core::datafusion::arrow::compute::{cast, concat_batches};
use tamis_core::datafusion::arrow::datatypes::DataType;
use tamis_core::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tamis_core::{Dataset, Quarantine, ReadOptions};
use tamis_lineage::{Chain, Verdict};

struct Run {
    dir: tempfile::TempDir,
    out: PathBuf,
    outcome: CleanOutcome,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn try_run(csv: &str, plan: &str, contract: Option<&str>) -> Result<Run, CleanError> {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", csv);
    let out = dir.path().join("out.parquet");
    let outcome = run_at(&input, plan, contract, &out)?;
    Ok(Run { dir, out, outcome })
}

fn request(
    input: &Path,
    plan: &str,
    contract: Option<&str>,
    out: &Path,
) -> Result<CleanRequest, CleanError> {
    let plan = Plan::parse(plan, "plan.yaml")?;
    let contract = contract.map(|c| Contract::parse(c, "c.yaml", Path::new(".")).unwrap());
    let dataset = Arc::new(Dataset::open(
        &[input.display().to_string()],
        ReadOptions::default(),
    )?);
    Ok(CleanRequest {
        dataset,
        plan,
        contract,
        output: out.to_path_buf(),
        provenance: true,
        secret: b"test-key".to_vec(),
        actor: "tester".into(),
        quarantine: Arc::new(Quarantine::in_memory()),
        progress: Arc::new(AtomicU64::new(0)),
        passes: Arc::new(AtomicU64::new(0)),
        cancel: Default::default(),
        today: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        vault: None,
        matcher: None,
        early_output: true,
    })
}

fn run_at(
    input: &Path,
    plan: &str,
    contract: Option<&str>,
    out: &Path,
) -> Result<CleanOutcome, CleanError> {
    clean(request(input, plan, contract, out)?)
}

/// Cleans `input` read with `opts` (not the defaults), which must succeed.
fn clean_with(input: &Path, plan: &str, out: &Path, opts: ReadOptions) -> CleanOutcome {
    let mut req = request(input, plan, None, out).unwrap();
    req.dataset = Arc::new(Dataset::open(&[input.display().to_string()], opts).unwrap());
    clean(req).unwrap()
}

/// Every provenance value of `column` is a keyed hash, never the clear value.
fn assert_hashed(out: &Path, column: &str) {
    let q = query(
        out,
        &Query {
            column: Some(column.into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!q.cells.is_empty());
    for c in &q.cells {
        assert!(
            c.old_value
                .as_deref()
                .is_some_and(|v| v.starts_with("hmac-sha256:")),
            "{c:?}"
        );
    }
}

fn run(csv: &str, plan: &str) -> Run {
    try_run(csv, plan, None).unwrap()
}

fn read_parquet(p: &Path) -> RecordBatch {
    let f = std::fs::File::open(p).unwrap();
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let schema = tamis_core::datafusion::arrow::record_batch::RecordBatchReader::schema(&r);
    let b: Vec<RecordBatch> = r.collect::<Result<_, _>>().unwrap();
    concat_batches(&schema, &b).unwrap()
}

/// Rows as text (`None` for null), columns in order.
fn rows(b: &RecordBatch) -> Vec<Vec<Option<String>>> {
    let cols: Vec<_> = b
        .columns()
        .iter()
        .map(|c| cast(c, &DataType::Utf8).unwrap())
        .collect();
    (0..b.num_rows())
        .map(|i| {
            cols.iter()
                .map(|c| {
                    let s = c.as_string::<i32>();
                    (!s.is_null(i)).then(|| s.value(i).to_string())
                })
                .collect()
        })
        .collect()
}

fn col(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|v| v.map(String::from))
        .collect()
}

fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|x| x.map(String::from)).collect()
}

/// The input as tamis reads and types it (what `revert` must rebuild).
fn typed_input(input: &Path, out: &Path) -> RecordBatch {
    // Typed exactly as the clean run typed it: the manifest's input schema.
    let m = tamis_clean::exec::read_manifest(out).unwrap();
    let ds = Dataset::open(&[input.display().to_string()], ReadOptions::default()).unwrap();
    let q = Arc::new(Quarantine::in_memory());
    let batches: Vec<RecordBatch> = ds
        .batches(q, Arc::new(AtomicU64::new(0)))
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let b = concat_batches(&ds.schema(), &batches).unwrap();
    let mut cols = Vec::new();
    let mut fields = Vec::new();
    let sampled = ds.sample_types().unwrap();
    let mut typing =
        tamis_clean::typing::Typing::new(ds.columns(), &sampled, false, Default::default());
    let t = typing.convert(&b).unwrap();
    for (n, ty) in &m.input_schema {
        let c = t.column_by_name(n).unwrap();
        cols.push(cast(c, &ty.parse::<DataType>().unwrap()).unwrap());
        fields.push(tamis_core::datafusion::arrow::datatypes::Field::new(
            n,
            ty.parse::<DataType>().unwrap(),
            true,
        ));
    }
    RecordBatch::try_new(
        Arc::new(tamis_core::datafusion::arrow::datatypes::Schema::new(
            fields,
        )),
        cols,
    )
    .unwrap()
}

/// The distinct non-null values of `column` in the output, sorted.
fn distinct_values(out: &Path, column: &str) -> Vec<String> {
    let vals: std::collections::BTreeSet<_> = col(&read_parquet(out), column)
        .into_iter()
        .flatten()
        .collect();
    vals.into_iter().collect()
}

/// A `status` column of 100 values: case and whitespace variants of
/// `active`, `inactive` and its typo `inactve`; with `empty`, one in ten empty.
fn statuses(empty: bool) -> String {
    let mut csv = String::from("status\n");
    for i in 0..100 {
        csv.push_str(match i % 10 {
            0 => "ACTIVE\n",
            1 => " active\n",
            6 if empty => "\n",
            2..=6 => "active\n",
            7 | 8 => "inactive\n",
            _ => "inactve\n",
        });
    }
    csv
}

fn assert_reverts(r: &Run) {
    assert_reverts_input(&r.out, &r.dir.path().join("in.csv"));
}

fn assert_reverts_input(out: &Path, input: &Path) {
    let (back, _) = revert(out, None).unwrap();
    let back = tamis_clean::exec::drop_row_id(&back).unwrap();
    let input = typed_input(input, out);
    assert_eq!(rows(&back), rows(&input), "revert(clean(x)) != x");
    let names = |b: &RecordBatch| {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&back), names(&input));
}

const PEOPLE: &str = "id,name,age,income,state,status,joined\n\
1,Ann,30,100.5,ca,active,2020-01-05\n\
2,Bob,,200,NY ,Active,01/02/2021\n\
3, Cy ,40,,tx,inactive,\n\
1,Ann,30,100.5,ca,active,2020-01-05\n\
4,Dee,50,400,New York, ACTIVE,2021-03-04\n\
5,Eve,,300,CA,suspnded,\"March 4, 2021\"\n";

#[test]
fn dedupe_keeps_first_and_records_the_dropped_row() {
    let r = run(PEOPLE, "steps: [{type: dedupe_exact}]");
    let b = read_parquet(&r.out);
    assert_eq!(b.num_rows(), 5);
    assert_eq!(
        col(&b, "id"),
        s(&[Some("1"), Some("2"), Some("3"), Some("4"), Some("5")])
    );
    let q = query(&r.out, &Query::default()).unwrap();
    assert!(q.cells.is_empty());
    assert_eq!(q.dropped.len(), 1);
    assert_eq!(q.dropped[0]["row_id"], 3);
    assert_eq!(q.dropped[0]["reason"], "exact duplicate of row 0");
    assert_reverts(&r);
}

#[test]
fn dedupe_keep_last_and_subset() {
    let r = run(
        PEOPLE,
        "steps: [{type: dedupe_exact, keep: last, columns: [status]}]",
    );
    let b = read_parquet(&r.out);
    // status values: active, Active, inactive, active, " ACTIVE", suspnded: the first `active` goes.
    assert_eq!(
        col(&b, "id"),
        s(&[Some("2"), Some("3"), Some("1"), Some("4"), Some("5")])
    );
    let q = query(&r.out, &Query::default()).unwrap();
    assert_eq!(q.dropped[0]["reason"], "exact duplicate of row 3");
    assert_reverts(&r);
}

/// An impute that cannot learn a fill (a column with no values, or groups
/// with none) says so in its step summary and the audit log; one that fills
/// every missing value says nothing.
#[test]
fn impute_without_values_to_learn_from_warns() {
    let csv = "g,h,x,y\na,1,,p\na,1,,\nb,1,,q\nc,2,,\nd,2,,\nb,2,,\nd,1,,\nd,3,,\n";
    // x has no value: typed a number by --schema, it passes the plan's
    // check, and its mean or median cannot be taken.
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", csv);
    let x_float = || ReadOptions {
        schema: Some(tamis_core::SchemaSpec::parse("x:float").unwrap()),
        ..ReadOptions::default()
    };
    for method in ["median", "mean", "mode"] {
        let out = dir.path().join(format!("{method}.parquet"));
        let plan = format!("steps: [{{type: impute, columns: [x], method: {method}}}]");
        let outcome = clean_with(&input, &plan, &out, x_float());
        let w = &outcome.steps[0].warnings;
        assert_eq!(w.len(), 1, "{method}: {w:?}");
        assert!(w[0].starts_with("column 'x' has no values"), "{}", w[0]);
        assert!(col(&read_parquet(&out), "x").iter().all(Option::is_none));
        let audit = std::fs::read_to_string(sidecar_dir(&out).join("audit.jsonl")).unwrap();
        assert!(audit.contains("column 'x' has no values"), "{audit}");
    }
    // No rows, or no missing value: nothing to warn about.
    for (name, csv) in [("none.csv", "g,x\n"), ("full.csv", "g,x\na,1\n")] {
        let input = write(dir.path(), name, csv);
        let out = dir.path().join(format!("{name}.parquet"));
        let plan = "steps: [{type: impute, columns: [x], method: median}]";
        let outcome = clean_with(&input, plan, &out, x_float());
        assert!(outcome.steps[0].warnings.is_empty(), "{name}");
    }
    // Groups c and d have no y; a has one, so its missing y is filled.
    let r = run(
        csv,
        "steps: [{type: impute, columns: [y], method: mode, by: [g]}]",
    );
    let w = &r.outcome.steps[0].warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("2 groups of (g) have no values of column 'y'"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("(c), (d)"), "{}", w[0]);
    // Four of (g, h) groups, past the three named.
    let r = run(
        csv,
        "steps: [{type: impute, columns: [y], method: mode, by: [g, h]}]",
    );
    let w = &r.outcome.steps[0].warnings[0];
    assert!(w.starts_with("5 groups of (g, h)"), "{w}");
    assert!(w.contains("(b, 2), (c, 2), (d, 1) and 2 more"), "{w}");
    // Every missing value has a fill: no warning.
    let r = run(
        "g,y\na,p\na,\nb,q\nb,\n",
        "steps: [{type: impute, columns: [y], method: mode, by: [g]}]",
    );
    assert!(r.outcome.steps[0].warnings.is_empty());
}

/// A constant fill that would itself read as missing (a null token, in
/// any of its cases, or blank) is refused before the run; with other null
/// tokens given, the same value is a value.
#[test]
fn impute_constant_may_not_be_a_null_token() {
    let csv = "g,y\na,p\na,\n";
    for value in ["NA", "n/a", "'  '", "'NULL'"] {
        let plan =
            format!("steps: [{{type: impute, columns: [y], method: constant, value: {value}}}]");
        let Err(e) = try_run(csv, &plan, None) else {
            panic!("{value}: accepted");
        };
        let m = e.to_string();
        assert!(
            m.contains("is itself read as a missing value"),
            "{value}: {m}"
        );
        assert!(m.contains("--null-token"), "{m}");
    }
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", csv);
    let out = dir.path().join("out.parquet");
    let plan = "steps: [{type: impute, columns: [y], method: constant, value: NA}]";
    let opts = ReadOptions {
        null_tokens: tamis_core::NullTokens::new(["-".to_string()]),
        ..ReadOptions::default()
    };
    clean_with(&input, plan, &out, opts);
    assert_eq!(col(&read_parquet(&out), "y"), s(&[Some("p"), Some("NA")]));
}

/// An output that is the input (by its path, or through a link) is refused
/// before anything is written: the input is left as it was.
#[test]
fn output_may_not_be_the_input() {
    let csv = "id,y\n1, a\n2,b\n";
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", csv);
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let plan = "steps: [{type: normalize_text, columns: [y], trim: true}]";
    for out in [input.clone(), link, dir.path().join(".").join("in.csv")] {
        let Err(e) = run_at(&input, plan, None, &out) else {
            panic!("{}: accepted", out.display());
        };
        let m = e.to_string();
        assert!(m.contains("it is the input"), "{m}");
        assert!(m.contains("another path"), "{m}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), csv);
    }
    assert!(!sidecar_dir(&input).exists());
}

#[test]
fn impute_median_mean_mode_constant_ffill_and_groupwise() {
    let csv = "g,x,y\na,1,p\na,,\nb,10,q\nb,,q\na,3,\nb,20,\n";
    let r = run(csv, "steps: [{type: impute, columns: [x], method: median}]");
    // x: 1, 10, 3, 20 -> median 6.5, rounded in an integer column -> 7 (half away from zero)
    assert_eq!(
        col(&read_parquet(&r.out), "x"),
        s(&[
            Some("1"),
            Some("7"),
            Some("10"),
            Some("7"),
            Some("3"),
            Some("20")
        ])
    );
    let q = query(&r.out, &Query::default()).unwrap();
    assert_eq!(q.cells.len(), 2);
    assert_eq!(q.cells[0].old_value, None);
    assert_eq!(q.cells[0].new_value.as_deref(), Some("7"));
    assert_eq!(q.cells[0].source, "heuristic");
    assert_reverts(&r);

    let r = run(
        csv,
        "steps: [{type: impute, columns: [x], method: median, by: [g]}]",
    );
    assert_eq!(
        col(&read_parquet(&r.out), "x"),
        s(&[
            Some("1"),
            Some("2"),
            Some("10"),
            Some("15"),
            Some("3"),
            Some("20")
        ])
    );
    let r = run(csv, "steps: [{type: impute, columns: [x], method: mean}]");
    assert_eq!(col(&read_parquet(&r.out), "x")[1].as_deref(), Some("9")); // 34/4 = 8.5 -> 9
    let r = run(csv, "steps: [{type: impute, columns: [y], method: mode}]");
    assert_eq!(
        col(&read_parquet(&r.out), "y"),
        s(&[
            Some("p"),
            Some("q"),
            Some("q"),
            Some("q"),
            Some("q"),
            Some("q")
        ])
    );
    let r = run(
        csv,
        "steps: [{type: impute, columns: [y], method: constant, value: zz}]",
    );
    assert_eq!(col(&read_parquet(&r.out), "y")[1].as_deref(), Some("zz"));
    let r = run(csv, "steps: [{type: impute, columns: [y], method: ffill}]");
    assert_eq!(
        col(&read_parquet(&r.out), "y"),
        s(&[
            Some("p"),
            Some("p"),
            Some("q"),
            Some("q"),
            Some("q"),
            Some("q")
        ])
    );
    assert_reverts(&r);
}

#[test]
fn normalize_canonicalize_standardize_parse() {
    let r = run(
        PEOPLE,
        "steps:\n  - {type: normalize_text, columns: [name], trim: true, case: upper}\n  - {type: canonicalize, columns: [status], values: [active, inactive, suspended]}\n  - {type: standardize, columns: [state], kind: state}\n  - {type: parse, columns: [joined], to: date}\n",
    );
    let b = read_parquet(&r.out);
    assert_eq!(
        col(&b, "name"),
        s(&[
            Some("ANN"),
            Some("BOB"),
            Some("CY"),
            Some("ANN"),
            Some("DEE"),
            Some("EVE")
        ])
    );
    assert_eq!(
        col(&b, "status"),
        s(&[
            Some("active"),
            Some("active"),
            Some("inactive"),
            Some("active"),
            Some("active"),
            Some("suspended")
        ])
    );
    assert_eq!(
        col(&b, "state"),
        s(&[
            Some("CA"),
            Some("NY"),
            Some("TX"),
            Some("CA"),
            Some("NY"),
            Some("CA")
        ])
    );
    assert_eq!(
        b.column_by_name("joined").unwrap().data_type(),
        &DataType::Date32
    );
    assert_eq!(
        col(&b, "joined"),
        s(&[
            Some("2020-01-05"),
            Some("2021-01-02"),
            None,
            Some("2020-01-05"),
            Some("2021-03-04"),
            Some("2021-03-04")
        ])
    );
    // The fuzzy match carries its similarity as confidence; folds are certain.
    let q = query(
        &r.out,
        &Query {
            column: Some("status".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let fuzzy = q
        .cells
        .iter()
        .find(|c| c.old_value.as_deref() == Some("suspnded"))
        .unwrap();
    assert!(
        fuzzy.confidence > 0.85 && fuzzy.confidence < 1.0,
        "{}",
        fuzzy.confidence
    );
    let folded = q
        .cells
        .iter()
        .find(|c| c.old_value.as_deref() == Some("Active"))
        .unwrap();
    assert_eq!(folded.confidence, 1.0);
    // An ambiguous MM/DD date is a guess.
    let q = query(
        &r.out,
        &Query {
            column: Some("joined".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        q.cells
            .iter()
            .any(|c| c.old_value.as_deref() == Some("01/02/2021") && c.confidence < 1.0)
    );
    assert_reverts(&r);
}

#[test]
fn canonical_values_are_learned_or_taken_from_the_contract() {
    let csv = statuses(false);
    let r = run(&csv, "steps: [{type: canonicalize, columns: [status]}]");
    let b = read_parquet(&r.out);
    let vals: std::collections::BTreeSet<_> = col(&b, "status").into_iter().flatten().collect();
    assert_eq!(
        vals.into_iter().collect::<Vec<_>>(),
        vec!["active", "inactive"]
    );
    let contract =
        "schema:\n  columns:\n    - name: status\n      canonical_values: [Active, Inactive]\n";
    let r = try_run(
        &csv,
        "steps: [{type: canonicalize, columns: [status]}]",
        Some(contract),
    )
    .unwrap();
    assert_eq!(
        distinct_values(&r.out, "status"),
        vec!["Active", "Inactive"]
    );
    assert_reverts(&r);
}

#[test]
fn a_learned_canonical_spelling_has_no_stray_spaces() {
    // The padded spelling is the most frequent; the canonical one is bare.
    let csv = "id,city\n1,Paris \n2,Paris \n3,Paris \n4,paris\n5,Paris\n6,Lyon\n7,Lyon\n8,Nice\n";
    let r = run(csv, "steps: [{type: canonicalize, columns: [city]}]");
    assert_eq!(
        distinct_values(&r.out, "city"),
        vec!["Lyon", "Nice", "Paris"]
    );
    assert_reverts(&r);
}

#[test]
fn outliers_flag_clip_and_null_after_an_imputation() {
    let mut csv = String::from("v\n");
    for i in 0..20 {
        csv.push_str(&format!("{}\n", 10 + i % 5));
    }
    csv.push_str("1000\nNA\n-500\n");
    let r = run(
        &csv,
        "steps: [{type: outliers, columns: [v], action: flag}]",
    );
    let b = read_parquet(&r.out);
    let flags = col(&b, "v_outlier");
    assert_eq!(
        flags
            .iter()
            .filter(|f| f.as_deref() == Some("true"))
            .count(),
        2
    );
    assert_eq!(flags[21], None);
    // Flagged, not changed: the summary counts them apart.
    assert_eq!(r.outcome.steps[0].rows_flagged, 2);
    assert_eq!(r.outcome.steps[0].rows_modified, 0);
    assert_reverts(&r);
    // A row flagged in two columns is one flagged row.
    let mut two = String::from("v,w\n");
    for i in 0..20 {
        two.push_str(&format!("{},{}\n", 10 + i % 5, 20 + i % 3));
    }
    two.push_str("1000,900\n11,-700\n");
    let r = run(
        &two,
        "steps: [{type: outliers, columns: [v, w], action: flag}]",
    );
    assert_eq!(r.outcome.steps[0].rows_flagged, 2);
    let b = read_parquet(&r.out);
    assert_eq!(col(&b, "v_outlier")[21].as_deref(), Some("false"));
    assert_eq!(col(&b, "w_outlier")[21].as_deref(), Some("true"));
    let r = run(
        &csv,
        "steps: [{type: outliers, columns: [v], action: clip}]",
    );
    let v = col(&read_parquet(&r.out), "v");
    // Q1 = 11, Q3 = 13 over 22 values -> fences 8 and 16.
    assert_eq!(v[20].as_deref(), Some("16"));
    assert_eq!(v[22].as_deref(), Some("8"));
    assert_reverts(&r);
    // Impute first: the fences are computed on the imputed column (a second
    // statistics pass, which also writes the output; only `v` waits for it).
    let r = run(
        &csv,
        "steps: [{type: impute, columns: [v], method: median}, {type: outliers, columns: [v], action: null}]",
    );
    assert_eq!(r.outcome.passes, 2);
    let v = col(&read_parquet(&r.out), "v");
    assert_eq!(v[21].as_deref(), Some("12"));
    assert_eq!(v[20], None);
    assert_reverts(&r);
}

#[test]
fn robust_z_outliers_of_a_column_mostly_at_its_median_spare_the_rest() {
    // 12 zeros and 8 incomes: the MAD is 0. Fences of median ± k·0 would null
    // every income; the mean absolute deviation gives the scale instead, and
    // only the far value goes.
    let mut csv = String::from("income\n");
    for i in 0..20 {
        csv.push_str(&format!("{}\n", if i < 12 { 0 } else { 1000 + i * 10 }));
    }
    csv.push_str("1000000\n");
    let r = run(
        &csv,
        "steps: [{type: outliers, columns: [income], method: robust_z, action: null}]",
    );
    let v = col(&read_parquet(&r.out), "income");
    assert_eq!(v.iter().filter(|x| x.is_none()).count(), 1, "{v:?}");
    assert_eq!(v[20], None);
    assert_eq!(v[19].as_deref(), Some("1190"));
    assert_eq!(r.outcome.steps[0].rows_modified, 1);
    // Every value the same: nothing is outside.
    let r = run(
        "n\n4\n4\n4\n",
        "steps: [{type: outliers, columns: [n], method: robust_z, action: null}]",
    );
    assert_eq!(r.outcome.steps[0].rows_modified, 0);
}

#[test]
fn numbers_parse_with_a_decimal_point_or_comma_never_misread() {
    let csv = "amount\n\"1.234,50\"\n\"99,00\"\n\"1,234.50\"\n\"-7,5 %\"\n";
    // European numbers: the comma holds the decimals.
    let r = run(
        csv,
        "steps: [{type: parse, columns: [amount], to: number, decimal: comma}]",
    );
    let v = col(&read_parquet(&r.out), "amount");
    assert_eq!(v, s(&[Some("1234.5"), Some("99.0"), None, Some("-0.075")]));
    // Read with a decimal point, the comma numbers are not numbers (null,
    // confidence 0, kept in provenance), not 1.2345 and 9900.
    let r = run(csv, "steps: [{type: parse, columns: [amount], to: number}]");
    let v = col(&read_parquet(&r.out), "amount");
    assert_eq!(v, s(&[None, None, Some("1234.5"), None]));
    assert_reverts(&r);
    let bad = try_run(
        csv,
        "steps: [{type: parse, columns: [amount], to: number, decimal: dot}]",
        None,
    );
    let msg = bad.err().unwrap().to_string();
    assert!(
        msg.contains("`decimal: dot` is not one of point, comma"),
        "{msg}"
    );
}

#[test]
fn filter_rename_drop_cast_pii() {
    let r = run(
        PEOPLE,
        "steps:\n  - {type: filter, drop_where: \"age > 45 OR id = 3\", reason: too old}\n  - {type: rename, mapping: {name: full_name}}\n  - {type: drop, columns: [joined]}\n  - {type: cast, types: {income: string, id: float}}\n  - {type: pii, columns: [full_name], strategy: hash}\n",
    );
    let b = read_parquet(&r.out);
    assert_eq!(b.num_rows(), 4);
    let names: Vec<_> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        vec!["id", "full_name", "age", "income", "state", "status"]
    );
    assert_eq!(
        b.column_by_name("id").unwrap().data_type(),
        &DataType::Float64
    );
    let n = col(&b, "full_name");
    assert_eq!(n[0].as_ref().unwrap().len(), 64);
    assert_eq!(n[0], n[2], "the same value hashes the same (joins survive)");
    let q = query(
        &r.out,
        &Query {
            step: Some("filter".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(q.dropped.len(), 2);
    assert!(q.dropped.iter().all(|d| d["reason"] == "too old"));
    // PII never appears in clear in provenance.
    assert_hashed(&r.out, "full_name");
    // Revert gives every column back, and the hashed column as hashes (no vault).
    let (back, pii) = revert(&r.out, None).unwrap();
    assert_eq!(pii, vec!["full_name".to_string()]);
    assert_eq!(back.num_rows(), 6);
    assert_eq!(col(&back, "joined")[4].as_deref(), Some("2021-03-04"));
    assert!(
        col(&back, "name")[0]
            .as_ref()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
}

#[test]
fn runs_are_byte_identical_and_the_audit_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", PEOPLE);
    let plan = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/clean_plan.yaml"
    ))
    .unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    run_at(&input, &plan, None, &a).unwrap();
    run_at(&input, &plan, None, &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    for f in ["cells.parquet", "row_ids.parquet", "dropped-001.parquet"] {
        assert_eq!(
            std::fs::read(sidecar_dir(&a).join(f)).unwrap(),
            std::fs::read(sidecar_dir(&b).join(f)).unwrap(),
            "{f}"
        );
    }
    let audit = std::fs::read_to_string(sidecar_dir(&a).join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2 + 5);
    assert_eq!(lines[1]["action"], "clean.step");
    assert_eq!(lines[1]["rows_removed"], 1);
    assert_eq!(lines[0]["actor"], "tester");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sidecar_dir(&a).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let t = &m["transformations"];
    assert_eq!(t[0]["type"], "dedupe_exact");
    assert_eq!(t[0]["rows_removed"], 1);
    assert_eq!(t[1]["rows_modified"], 2); // two missing ages
    // No temporary files are left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 5, "{left:?}");
}

#[test]
fn lineage_finds_edits_removals_and_changed_output() {
    let r = run(
        PEOPLE,
        "steps: [{type: dedupe_exact}, {type: normalize_text, columns: [status], case: lower}]",
    );
    let chain_path = sidecar_dir(&r.out).join("lineage.json");
    let chain = Chain::read(&chain_path).unwrap();
    assert_eq!(
        chain.verify_with_data(&r.out).unwrap(),
        Verdict::Intact { blocks: 6 }
    );
    // Edit a block.
    let mut edited = chain.clone();
    edited.blocks[2].payload["rows_removed"] = serde_json::json!(0);
    assert_eq!(
        edited.verify(),
        Verdict::EditedBlock {
            index: 2,
            kind: tamis_lineage::BlockKind::Transform
        }
    );
    // Drop a block.
    let mut dropped = chain.clone();
    dropped.blocks.remove(3);
    assert!(matches!(
        dropped.verify(),
        Verdict::MissingBlock {
            index: 4,
            expected_index: 3
        }
    ));
    // Change one byte of the output.
    let mut bytes = std::fs::read(&r.out).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&r.out, bytes).unwrap();
    assert!(matches!(
        chain.verify_with_data(&r.out).unwrap(),
        Verdict::DataChanged { .. }
    ));
}

#[test]
fn contract_checks_find_every_violating_row() {
    let mut csv = String::from("id,age,status,email,joined\n");
    let mut expected: Vec<(u64, &str, &str)> = Vec::new();
    for i in 0..500u64 {
        let id = if i == 300 { 7 } else { i };
        let age = if i % 97 == 5 {
            -3
        } else if i % 89 == 7 {
            150
        } else {
            30
        };
        let status = if i % 50 == 9 { "gone" } else { "active" };
        let email = if i % 61 == 3 { "nope" } else { "a@b.co" };
        let joined = if i == 42 { "2030-01-01" } else { "2020-01-01" };
        let age_s = if i == 11 {
            String::new()
        } else {
            age.to_string()
        };
        csv.push_str(&format!("{id},{age_s},{status},{email},{joined}\n"));
        if i == 300 {
            expected.push((i, "id", "unique"));
        }
        if i == 11 {
            expected.push((i, "age", "not_null"));
        } else if age < 0 {
            expected.push((i, "age", "range"));
            expected.push((i, "age", "non_negative"));
        } else if age > 120 {
            expected.push((i, "age", "range"));
        }
        if status == "gone" {
            expected.push((i, "status", "one_of"));
        }
        if email == "nope" {
            expected.push((i, "email", "regex"));
        }
        if i == 42 {
            expected.push((i, "joined", "not_future"));
        }
    }
    let contract = r#"
dataset_id: t
schema:
  columns:
    - {name: id, type: integer, nullable: false, business_rules: [unique]}
    - {name: age, type: integer, nullable: false, business_rules: [non_negative, {range: {min: 0, max: 120}}]}
    - {name: status, business_rules: [{one_of: [active, inactive]}]}
    - {name: email, business_rules: [{regex: "[^@]+@[^@]+\\.[a-z]+"}]}
    - {name: joined, type: date, business_rules: [not_future]}
"#;
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", &csv);
    let c = Contract::parse(contract, "c", Path::new(".")).unwrap();
    let ds = Dataset::open(&[input.display().to_string()], ReadOptions::default()).unwrap();
    let out = dir.path().join("violations.csv");
    let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let r = tamis_clean::check::check(
        &ds,
        &c,
        today,
        Some(&out),
        Arc::new(Quarantine::in_memory()),
    )
    .unwrap();
    assert!(!r.passed);
    assert_eq!(r.violations as usize, expected.len());
    let rows: std::collections::BTreeSet<u64> = expected.iter().map(|e| e.0).collect();
    assert_eq!(r.failing_rows as usize, rows.len());
    let text = std::fs::read_to_string(&out).unwrap();
    let mut got: Vec<(u64, String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    got.sort();
    let mut want: Vec<(u64, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (*a, b.to_string(), c.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// A column with no value at all is text on no evidence: a mean or median of
/// it is refused for having no values, not for being text (and `mode` or
/// `constant`, which the text message suggests, is not the way for `mode`).
#[test]
fn a_mean_or_median_of_a_column_with_no_values_says_so() {
    let csv = "id,x,y,name\n1,,NA,Ann\n2,,,Bo\n";
    for c in ["x", "y"] {
        for method in ["median", "mean"] {
            let plan = format!("steps: [{{type: impute, columns: [{c}], method: {method}}}]");
            let m = try_run(csv, &plan, None)
                .err()
                .expect("must fail")
                .to_string();
            assert!(
                m.contains(&format!("`{c}` has no value"))
                    && m.contains("`method: constant`")
                    && m.contains("--schema"),
                "{m}"
            );
        }
    }
    // A text column with values keeps the type's message.
    let m = try_run(
        csv,
        "steps: [{type: impute, columns: [name], method: median}]",
        None,
    )
    .err()
    .expect("must fail")
    .to_string();
    assert!(m.contains("is a string column"), "{m}");
    // A constant fills it.
    let r = try_run(
        csv,
        "steps: [{type: impute, columns: [x], method: constant, value: unknown}]",
        None,
    )
    .unwrap();
    assert_eq!(r.outcome.steps[0].cells_modified, 2);
}

#[test]
fn bad_plans_fail_before_reading_with_the_step_field_and_a_suggestion() {
    // The data is broken (strict would fail on it): the plan error must come first.
    let csv = "name,age\nAnn,3\n\"unterminated\n";
    let e = |plan: &str| {
        try_run(csv, plan, None)
            .err()
            .expect("must fail")
            .to_string()
    };
    let m = e("steps: [{type: dedupe_exat}]");
    assert!(
        m.contains("steps[0]") && m.contains("did you mean `dedupe_exact`"),
        "{m}"
    );
    let m = e("steps: [{type: impute, columns: [agee], method: median}]");
    assert!(
        m.contains("step 1") && m.contains("`columns`") && m.contains("did you mean `age`"),
        "{m}"
    );
    let m = e("steps: [{type: impute, columns: [name], method: median}]");
    assert!(m.contains("string column") && m.contains("mode"), "{m}");
    let m = e("steps: [{type: normalize_text, columns: [age], case: lower}]");
    assert!(
        m.contains("is an integer column") && m.contains("`cast`"),
        "{m}"
    );
    let m = e("steps: [{type: normalize_text, columns: [name], cse: lower}]");
    assert!(
        m.contains("unknown field `cse`") && m.contains("did you mean `case`"),
        "{m}"
    );
    let m = e("steps: [{type: rename, mapping: {name: n}}, {type: drop, columns: [name]}]");
    assert!(
        m.contains("step 2") && m.contains("no column `name`"),
        "{m}"
    );
    let m = e("steps: [{type: outliers, columns: [age], action: clamp}]");
    assert!(m.contains("`action: clamp`"), "{m}");
    let m = e("steps: [{type: pii, columns: [name], strategy: tokenize}]");
    assert!(m.contains("vault"), "{m}");
    // Before reading too: the condition's columns, as the steps before leave
    // them, named with a close one and never the internal row id.
    let m = e("steps: [{type: filter, drop_where: \"agge > 3\"}]");
    assert!(
        m.contains("step 1 (`s1`, filter)")
            && m.contains("no column `agge` (did you mean `age`?); columns are: name, age")
            && !m.contains("row_id"),
        "{m}"
    );
    let m = e(
        "steps: [{type: rename, mapping: {age: years}}, {type: filter, drop_where: \"age > 3\"}]",
    );
    assert!(
        m.contains("step 2") && m.contains("columns are: name, years"),
        "{m}"
    );
    let m = e("steps: [{type: filter, drop_where: \"age >\"}]");
    assert!(m.contains("step 1") && m.contains("SQL error"), "{m}");
    // An input with no columns at all says so, rather than listing none.
    let m = try_run("", "steps: [{type: dedupe_exact, columns: [a]}]", None)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        m.contains("no column `a`") && m.contains("no columns"),
        "{m}"
    );
}

#[test]
fn a_condition_the_data_cannot_meet_is_a_step_error_naming_the_step() {
    // `state` is text; comparing it with a number fails on its first value.
    let csv = "id,state\n1,ca\n2,7\n";
    let e = try_run(
        csv,
        "steps: [{id: big, type: filter, drop_where: \"state > 5\"}]",
        None,
    )
    .err()
    .expect("must fail");
    let m = e.to_string();
    assert!(e.is_bad_input(), "{m}");
    assert!(
        m.contains("step `big` (filter)")
            && m.contains("cannot be evaluated")
            && m.contains("parse it first"),
        "{m}"
    );
}

#[test]
fn a_column_that_turns_out_to_be_text_widens_and_the_run_goes_on() {
    let mut csv = String::from("n,m\n");
    for i in 0..1500 {
        csv.push_str(&format!("{i},{}\n", i % 7));
    }
    csv.push_str("n/a-later,3\n");
    let r = run(
        &csv,
        "steps: [{type: impute, columns: [m], method: median}]",
    );
    let b = read_parquet(&r.out);
    assert_eq!(b.column_by_name("n").unwrap().data_type(), &DataType::Utf8);
    assert_eq!(b.column_by_name("m").unwrap().data_type(), &DataType::Int64);
    assert_eq!(b.num_rows(), 1501);
    assert_reverts(&r);
}

#[test]
fn zip_codes_and_yes_no_flags_come_out_as_written() {
    // Typed, `02134` would lose its zero and `y` become `true`: both stay text.
    let mut csv = String::from("zip,flag,n,ok\n");
    for i in 0..50 {
        let zip = if i == 20 {
            "02134".to_string()
        } else {
            (10_000 + i).to_string()
        };
        let flag = ["y", "n", "yes"][i % 3];
        let ok = ["true", "FALSE"][i % 2];
        csv.push_str(&format!("{zip},{flag},{i},{ok}\n"));
    }
    let r = run(&csv, "steps: [{type: dedupe_exact}]");
    let b = read_parquet(&r.out);
    let ty = |c: &str| b.column_by_name(c).unwrap().data_type().clone();
    assert_eq!(ty("zip"), DataType::Utf8);
    assert_eq!(ty("flag"), DataType::Utf8);
    assert_eq!(ty("n"), DataType::Int64);
    assert_eq!(ty("ok"), DataType::Boolean);
    assert_eq!(col(&b, "zip")[20].as_deref(), Some("02134"));
    assert_eq!(
        col(&b, "flag")[..3],
        s(&[Some("y"), Some("n"), Some("yes")])
    );
    assert_reverts(&r);
}

#[test]
fn empty_input_gives_an_empty_output_with_the_columns() {
    let r = run("a,b\n", "steps: [{type: dedupe_exact}]");
    let b = read_parquet(&r.out);
    assert_eq!(b.num_rows(), 0);
    assert_eq!(b.num_columns(), 2);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("NA".to_string()),
            (0i64..100).prop_map(|n| n.to_string()),
            "[ a-cA-C]{1,5}",
            Just("Active".to_string()),
            Just(" active ".to_string()),
        ]
    }

    fn table() -> impl Strategy<Value = String> {
        (1usize..30).prop_flat_map(|n| {
            (
                proptest::collection::vec(
                    (
                        0i64..5,
                        cell(),
                        prop_oneof![Just(String::new()), (0i64..50).prop_map(|x| x.to_string())],
                        cell(),
                    ),
                    n,
                ),
                proptest::collection::vec(0usize..1000, 0..5),
            )
                .prop_map(|(rows, dups)| {
                    let mut rows: Vec<String> = rows
                        .into_iter()
                        .map(|(a, b, c, d)| {
                            let q = |s: String| {
                                if s.contains(' ') {
                                    format!("\"{s}\"")
                                } else {
                                    s
                                }
                            };
                            format!("{a},{},{c},{}", q(b), q(d))
                        })
                        .collect();
                    for d in dups {
                        let r = rows[d % rows.len()].clone();
                        rows.push(r);
                    }
                    // A first row with text keeps `s` and `t` text columns.
                    format!("k,s,n,t\n0,abc,1,def\n{}\n", rows.join("\n"))
                })
        })
    }

    const PLANS: [&str; 6] = [
        "steps: [{type: dedupe_exact}, {type: impute, columns: [n], method: median}, {type: normalize_text, columns: [s], case: lower}]",
        "steps: [{type: normalize_text, columns: [s, t], collapse_whitespace: true, null_tokens: true}, {type: dedupe_exact, keep: last, columns: [k]}]",
        "steps: [{type: canonicalize, columns: [t]}, {type: impute, columns: [s], method: mode, by: [k]}]",
        "steps: [{type: outliers, columns: [n], action: clip, k: 0.5}, {type: filter, drop_where: \"n > 40\"}, {type: impute, columns: [t], method: ffill}]",
        "steps: [{type: rename, mapping: {s: s2}}, {type: cast, types: {n: float}}, {type: drop, columns: [t]}, {type: impute, columns: [n], method: mean}]",
        "steps: [{type: impute, columns: [n], method: constant, value: \"7\"}, {type: outliers, columns: [n], action: null, method: robust_z}, {type: dedupe_exact, columns: [n, k]}]",
    ];

    /// Plans whose last statistics pass also writes the output (see `early`):
    /// with late columns (median, mode by group, mean after schema changes, a
    /// late step reading a late column) and none (dedupe only).
    const EARLY_PLANS: [&str; 7] = [
        PLANS[0],
        // Every row dropped before the late step: the late column is still counted (0).
        "steps: [{type: filter, drop_where: \"k >= 0\"}, {type: impute, columns: [n], method: median}]",
        PLANS[2],
        PLANS[4],
        "steps: [{type: impute, columns: [s], method: mode}, {type: normalize_text, columns: [s], case: upper}, {type: normalize_text, columns: [t], trim: true}]",
        "steps: [{type: normalize_text, columns: [t], case: lower}, {type: dedupe_exact, columns: [t]}]",
        "steps: [{type: canonicalize, columns: [s]}]",
    ];

    /// The same run through a separate final pass over a spill of the input.
    fn final_pass_run(r: &Run, plan: &str) -> (PathBuf, CleanOutcome) {
        let out = r.dir.path().join("final-pass.parquet");
        let o = clean(CleanRequest {
            early_output: false,
            ..request(&r.dir.path().join("in.csv"), plan, None, &out).unwrap()
        })
        .unwrap();
        (out, o)
    }

    /// Every Parquet file of a sidecar, as sorted rows (cell records of the
    /// late columns come after the others in an early run).
    fn sidecar_rows(out: &Path) -> Vec<(String, Vec<Vec<Option<String>>>)> {
        let mut files: Vec<_> = std::fs::read_dir(sidecar_dir(out))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let mut r = rows(&read_parquet(p));
                r.sort();
                (p.file_name().unwrap().to_string_lossy().into_owned(), r)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn revert_undoes_clean_and_runs_repeat(csv in table(), p in 0usize..PLANS.len()) {
            let r = run(&csv, PLANS[p]);
            assert_reverts(&r);
            let again = r.dir.path().join("again.parquet");
            run_at(&r.dir.path().join("in.csv"), PLANS[p], None, &again).unwrap();
            prop_assert_eq!(std::fs::read(&r.out).unwrap(), std::fs::read(&again).unwrap());
        }

        #[test]
        fn early_output_equals_a_separate_final_pass(csv in table(), p in 0usize..EARLY_PLANS.len()) {
            let r = run(&csv, EARLY_PLANS[p]);
            let (out, o) = final_pass_run(&r, EARLY_PLANS[p]);
            // The early run reads the input once less.
            prop_assert_eq!(r.outcome.passes + 1, o.passes);
            // Byte for byte: the spliced column chunks are the ones one writer makes.
            prop_assert_eq!(std::fs::read(&r.out).unwrap(), std::fs::read(&out).unwrap());
            prop_assert_eq!(sidecar_rows(&r.out), sidecar_rows(&out));
            let json = |x: &CleanOutcome| {
                serde_json::json!([
                    x.steps, x.sample, x.rows_in, x.rows_out, x.output_non_null,
                    x.output_schema, x.output_sha256
                ])
            };
            prop_assert_eq!(json(&r.outcome), json(&o));
            assert_reverts(&r);
        }
    }
}

#[test]
fn malformed_rows_are_quarantined_once_across_passes_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("n,m\n");
    for i in 0..1200 {
        csv.push_str(&format!("{i},{}\n", i % 7));
        if i == 10 {
            csv.push_str("1,2,3\n"); // wrong field count
        }
    }
    csv.push_str("text-later,3\n"); // widens `n` after the sample: the pass restarts
    let input = write(dir.path(), "in.csv", &csv);
    let cases = [
        // A restarted pass, two statistics passes (outliers wait for the
        // imputation), the final pass.
        (
            "steps: [{type: impute, columns: [m], method: median}, {type: outliers, columns: [m], action: flag}]",
            4,
        ),
        // A restarted pass that was also writing the output, then that pass again.
        ("steps: [{type: impute, columns: [m], method: median}]", 2),
    ];
    for (plan, passes) in cases {
        let qfile = dir.path().join("q.jsonl");
        let out = dir.path().join("out.parquet");
        let o = clean(CleanRequest {
            quarantine: Arc::new(Quarantine::to_file(&qfile).unwrap()),
            ..request(&input, plan, None, &out).unwrap()
        })
        .unwrap();
        assert_eq!(o.passes, passes, "{plan}");
        assert_eq!(o.quarantined, 1);
        assert_eq!(std::fs::read_to_string(&qfile).unwrap().lines().count(), 1);
        assert_eq!(o.rows_in, 1201);
        let b = read_parquet(&out);
        assert_eq!(b.num_rows(), 1201);
        assert_eq!(b.column_by_name("n").unwrap().data_type(), &DataType::Utf8);
        assert_eq!(col(&b, "n")[1200].as_deref(), Some("text-later"));
        // No spill or temporary file is left beside the output or in its sidecar.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["in.csv", "out.parquet", "out.parquet.tamis", "q.jsonl"]
        );
        let mut side: Vec<String> = std::fs::read_dir(sidecar_dir(&out))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        side.sort();
        assert_eq!(
            side,
            vec![
                "audit.jsonl",
                "cells.parquet",
                "lineage.json",
                "manifest.json",
                "row_ids.parquet"
            ]
        );
        assert_reverts_input(&out, &input);
    }
}

#[test]
fn contract_drives_pii_steps_and_checks_the_output() {
    let contract = r#"
dataset_id: people
schema:
  columns:
    - {name: id, type: integer, nullable: false}
    - {name: name, pii: person_name, pii_strategy: redact}
    - {name: status, business_rules: [{one_of: [active, inactive, suspended]}]}
    - {name: state, pii: true, pii_strategy: exclude}
"#;
    let r = try_run(
        PEOPLE,
        "steps: [{type: pii}, {type: canonicalize, columns: [status], values: [active, inactive, suspended]}]",
        Some(contract),
    )
    .unwrap();
    let b = read_parquet(&r.out);
    assert!(b.column_by_name("state").is_none(), "excluded");
    assert!(
        col(&b, "name")
            .iter()
            .all(|v| v.as_deref() == Some("<PERSON_NAME>"))
    );
    let check = r.outcome.contract_check.as_ref().unwrap();
    assert_eq!(check["passed"], true, "{check}");
    let chain = Chain::read(&sidecar_dir(&r.out).join("lineage.json")).unwrap();
    let quality = chain.blocks.last().unwrap();
    assert_eq!(quality.payload["contract"]["passed"], true);
    // Contract PII columns are hashed in provenance even where a non-pii step changed them.
    assert_hashed(&r.out, "state");
}

/// `redact_entities` keeps free text and replaces only the personal data
/// inside it; from the plan's `strategy` or the contract's `pii_strategy`.
#[test]
fn redact_entities_keeps_the_words_of_free_text() {
    let csv = "id,notes\n\
1,call +1 415 555 2671 or write to ann@example.com\n\
2,order 4111 1111 1111 1112 shipped\n\
3,\n\
4,card 4111 1111 1111 1111 on file; see https://example.com/a\n";
    let want = [
        Some("call <PHONE_NUMBER> or write to <EMAIL_ADDRESS>"),
        // Fails Luhn: an order number, not a card.
        Some("order 4111 1111 1111 1112 shipped"),
        None,
        Some("card <CREDIT_CARD> on file; see <URL>"),
    ];
    let by_plan = try_run(
        csv,
        "steps: [{type: pii, columns: [notes], strategy: redact_entities}]",
        None,
    )
    .unwrap();
    let contract = "dataset_id: notes\nschema:\n  columns:\n    - {name: notes, pii: true, pii_strategy: redact_entities}\n";
    let by_contract = try_run(csv, "steps: [{type: pii}]", Some(contract)).unwrap();
    for r in [&by_plan, &by_contract] {
        let got = col(&read_parquet(&r.out), "notes");
        assert_eq!(got, want.map(|w| w.map(String::from)));
        assert_hashed(&r.out, "notes");
    }
    let Err(e) = try_run(
        csv,
        "steps: [{type: pii, columns: [notes], strategy: redact_entity}]",
        None,
    ) else {
        panic!("an unknown strategy is refused")
    };
    assert!(e.to_string().contains("redact_entities"), "{e}");
}

#[test]
fn tokenized_pii_reverts_in_clear_only_with_the_vault_key() {
    use tamis_privacy::anonymize::{Keys, Vault};
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", PEOPLE);
    let out = dir.path().join("out.parquet");
    let vault_path = dir.path().join("vault.json");
    let keys = Keys {
        hmac: b"test-key".to_vec(),
        aes: Keys::parse_aes(&format!("v1:{}", "ab".repeat(32))).unwrap(),
        current: Some("v1".into()),
    };
    let plan = "steps: [{type: pii, columns: [name], strategy: tokenize}, {type: normalize_text, columns: [status], case: lower}]";
    // Without the key the plan is refused before reading.
    let e = clean(request(&input, plan, None, &out).unwrap()).unwrap_err();
    assert!(e.to_string().contains("TAMIS_ENCRYPTION_KEYS"), "{e}");
    clean(CleanRequest {
        vault: Some((vault_path.clone(), keys.clone())),
        matcher: None,
        ..request(&input, plan, None, &out).unwrap()
    })
    .unwrap();
    let names = col(&read_parquet(&out), "name");
    assert!(names.iter().flatten().all(|n| n.starts_with("tok_")));
    assert!(
        !std::fs::read_to_string(&vault_path)
            .unwrap()
            .contains("Ann")
    );
    assert_hashed(&out, "name");
    // With the vault and its key, revert gives the input back exactly.
    let vault = Vault::read(&vault_path).unwrap();
    let (back, _) = revert(&out, Some((&vault, &keys))).unwrap();
    let back = tamis_clean::exec::drop_row_id(&back).unwrap();
    assert_eq!(rows(&back), rows(&typed_input(&input, &out)));
    // Without it, the tokenized column comes back as hashes.
    let (hashed, _) = revert(&out, None).unwrap();
    assert!(
        col(&hashed, "name")[0]
            .as_ref()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
}

/// A raised cancellation flag stops a run at its next batch: an error that
/// says so, and no output, sidecar or temporary file left behind.
#[test]
fn a_cancelled_run_stops_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,m\n");
    for i in 0..5000 {
        csv.push_str(&format!("{i},{}\n", i % 7));
    }
    let input = write(dir.path(), "in.csv", &csv);
    let out = dir.path().join("out.parquet");
    let plan = "steps: [{type: impute, columns: [m], method: median}]";
    let req = request(&input, plan, None, &out).unwrap();
    req.cancel.cancel();
    let e = clean(req).unwrap_err();
    assert!(
        matches!(e, CleanError::Core(tamis_core::CoreError::Cancelled)),
        "{e}"
    );
    assert!(!e.is_bad_input());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["in.csv"]);
}

#[test]
fn user_columns_named_row_id_are_written_whatever_their_type() {
    // Row ids written by tamis are delta-encoded; a user's text column with
    // the same name must still be written (delta suits integers only), and
    // an integer one too.
    let r = run(
        "row_id,n,row\nA-1,1,x\nB-2,2,y\nA-1,1,x\n",
        "steps: [{type: dedupe_exact}]",
    );
    let b = read_parquet(&r.out);
    assert_eq!(col(&b, "row_id"), s(&[Some("A-1"), Some("B-2")]));
    assert_reverts(&r);
    let r = run(
        "row_id,name\n7,x\n9,y\n7,x\n",
        "steps: [{type: dedupe_exact}]",
    );
    assert_eq!(
        col(&read_parquet(&r.out), "row_id"),
        s(&[Some("7"), Some("9")])
    );
    assert_reverts(&r);
}

#[test]
fn csv_output_is_the_same_with_or_without_the_early_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", PEOPLE);
    // (plan, whether the output pass can be the statistics pass: a CSV output
    // cannot be spliced, so a plan with late columns takes a final pass).
    let cases = [
        (
            "steps: [{type: dedupe_exact}, {type: normalize_text, columns: [status], case: lower}]",
            true,
        ),
        (
            "steps: [{type: dedupe_exact}, {type: impute, columns: [age], method: median}]",
            false,
        ),
    ];
    for (plan, early) in cases {
        let a = dir.path().join("early.csv");
        let b = dir.path().join("final.csv");
        let oa = run_at(&input, plan, None, &a).unwrap();
        let ob = clean(CleanRequest {
            early_output: false,
            ..request(&input, plan, None, &b).unwrap()
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{plan}"
        );
        assert_eq!(oa.passes + u64::from(early), ob.passes, "{plan}");
        assert_eq!(oa.rows_out, 5);
    }
}

#[test]
fn a_step_whose_input_waits_on_statistics_still_learns_and_applies() {
    // canonicalize runs after an unresolved impute in the first pass; what it
    // mapped then (nothing: no canonical values yet) must not stick.
    let r = run(
        &statuses(true),
        "steps: [{type: impute, columns: [status], method: mode}, {type: canonicalize, columns: [status]}]",
    );
    assert_eq!(
        distinct_values(&r.out, "status"),
        vec!["active", "inactive"]
    );
    assert_reverts(&r);
}

#[test]
fn an_outlier_flag_over_a_column_of_its_name_is_written_as_flags() {
    // The flag replaces the input's `x_outlier` text column: its type is only
    // known once the fences are, so this plan takes a separate final pass.
    let mut csv = String::from("x,x_outlier\n");
    for i in 0..20 {
        csv.push_str(&format!(
            "{},{}\n",
            10 + i % 5,
            if i % 2 == 0 { "a" } else { "b" }
        ));
    }
    csv.push_str("1000,a\n");
    let r = run(
        &csv,
        "steps: [{type: outliers, columns: [x], action: flag}]",
    );
    let b = read_parquet(&r.out);
    assert_eq!(
        b.column_by_name("x_outlier").unwrap().data_type(),
        &DataType::Boolean
    );
    assert_eq!(col(&b, "x_outlier")[20].as_deref(), Some("true"));
    assert_eq!(r.outcome.passes, 2);
}

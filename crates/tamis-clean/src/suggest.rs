//! Suggestions: a profile's issues turned into a plan, each step with a
//! confidence and a one-sentence rationale.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tamis_core::ColumnType;
use tamis_profile::Profile;
use tamis_profile::assemble::{grouped, plural};

use crate::plan::{Plan, Step};

/// A text column whose values nearly all (19 in 20) read as numbers once
/// currency signs, grouping, percent or accounting parentheses are dropped,
/// some of them written with such marks (a column of plain digits is text
/// for a reason: codes, leading zeros): the decimal separator they read with
/// (`point`, or `comma` when more read so) and how many read. Judged by shape
/// pattern (`$9,999.99`): one parse stands for every value of a pattern.
/// Identifiers, codes with letters and plain digits are left alone.
fn numbers_as_text(c: &tamis_profile::ColumnProfile) -> Option<(&'static str, u64)> {
    const NOT_NUMBERS: &[&str] = &[
        "postcode",
        "phone",
        "email",
        "url",
        "ip_address",
        "uuid",
        "payment_card",
        "date_text",
    ];
    if NOT_NUMBERS.contains(&c.semantic_type.as_str()) {
        return None;
    }
    let listed: u64 = c.patterns.iter().map(|p| p.count).sum();
    let present = (c.count - c.missing).max(listed);
    // Letters are left out: `INV-1001`, `Q1` or `SKU0012` are codes, though
    // the parser reads a leading currency code.
    let reads = |comma: bool| {
        c.patterns
            .iter()
            .filter(|p| !p.value.contains(char::is_alphabetic))
            .filter(|p| crate::ops::parse_number_with(&p.value, comma).is_some())
            .fold((0, 0), |(n, marked), p| {
                let m = p.value.contains(['$', '€', '£', '¥', '%', '(', ',']);
                (n + p.count, marked + m as u64 * p.count)
            })
    };
    let (point, comma) = (reads(false), reads(true));
    // Every value reads both ways (`1,250`: 1250 or 1.25): no telling which.
    if point.0 == comma.0 {
        return None;
    }
    let (decimal, (n, marked)) = if comma.0 > point.0 {
        ("comma", comma)
    } else {
        ("point", point)
    };
    // A column of distinct values is taken for an identifier; it is one
    // unless most of its values have decimals (`107,85`), which codes do not.
    if c.semantic_type == "identifier" {
        let sep = if decimal == "comma" { ",9" } else { ".9" };
        let decimals: u64 = c
            .patterns
            .iter()
            .filter(|p| p.value.contains(sep))
            .map(|p| p.count)
            .sum();
        if decimals * 2 < n {
            return None;
        }
    }
    (present > 0 && n * 20 >= present * 19 && marked > 0).then_some((decimal, n))
}

fn step(id: String, ty: &str, params: Value, confidence: f64, rationale: String) -> Option<Step> {
    let mut m = params.as_object().cloned().unwrap_or_default();
    m.insert("type".into(), json!(ty));
    m.insert("id".into(), json!(id));
    m.insert("confidence".into(), json!(confidence));
    m.insert("rationale".into(), json!(rationale));
    // Suggestions go through the plan parser, so they are always valid plans.
    match Plan::parse(
        &Value::Array(vec![Value::Object(m)]).to_string(),
        "suggestion",
    ) {
        Ok(p) => p.steps.into_iter().next(),
        Err(e) => {
            tracing::warn!("a suggestion was not a valid step and was left out: {e}");
            None
        }
    }
}

/// The first three values that did not parse as the sampled type, quoted.
fn mismatches_shown(c: &tamis_profile::ColumnProfile) -> String {
    c.mismatch_examples
        .iter()
        .take(3)
        .map(|e| format!("`{}`", e.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds a step if there is one; whether it was added.
fn added(steps: &mut Vec<Step>, s: Option<Step>) -> bool {
    let some = s.is_some();
    steps.extend(s);
    some
}

/// Turns a profile into a suggested plan.
pub fn suggest(p: &Profile) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    let mut k = 0;
    let mut id = |t: &str| {
        k += 1;
        format!("{t}_{k}")
    };
    if p.duplicates.rows > 0 {
        steps.extend(step(
            id("dedupe"),
            "dedupe_exact",
            json!({"keep": "first"}),
            0.95,
            format!(
                "{} rows are exact copies of an earlier row ({} groups); keep the first of each",
                grouped(p.duplicates.rows),
                grouped(p.duplicates.groups)
            ),
        ));
    }
    let by_col: BTreeMap<&str, &tamis_profile::ColumnProfile> =
        p.columns.iter().map(|c| (c.name.as_str(), c)).collect();
    for c in &p.columns {
        let name = c.name.as_str();
        let text = c.inferred_type == ColumnType::String;
        if text && c.null_tokens > 0 {
            steps.extend(step(
                id("nulls"),
                "normalize_text",
                json!({"columns": [name], "trim": false, "null_tokens": true}),
                0.9,
                format!(
                    "`{name}` has {} null tokens such as NA or N/A; make them real nulls",
                    grouped(c.null_tokens)
                ),
            ));
        }
        let variant_rows: u64 = c.variants.iter().map(|v| v.variant_rows).sum();
        match c.semantic_type.as_str() {
            "email" if text => {
                steps.extend(step(
                    id("email"),
                    "standardize",
                    json!({"columns": [name], "kind": "email"}),
                    0.95,
                    format!("`{name}` holds e-mail addresses; trim and lower-case them so equal addresses compare equal"),
                ));
                continue;
            }
            "phone" if text => {
                steps.extend(step(
                    id("phone"),
                    "standardize",
                    json!({"columns": [name], "kind": "phone", "default_country_code": "1"}),
                    0.85,
                    format!(
                        "`{name}` holds phone numbers in {} formats; write them as E.164",
                        c.patterns.len().max(1)
                    ),
                ));
                continue;
            }
            "state"
                if text
                    && (variant_rows > 0
                        || c.text.leading_whitespace + c.text.trailing_whitespace > 0) =>
            {
                steps.extend(step(
                    id("state"),
                    "normalize_text",
                    json!({"columns": [name], "trim": true, "case": "upper"}),
                    0.9,
                    format!(
                        "`{name}` holds state codes with {} values in another case or with extra spaces; trim and upper-case",
                        grouped(variant_rows.max(c.text.leading_whitespace + c.text.trailing_whitespace))
                    ),
                ));
                continue;
            }
            _ => {}
        }
        if text && !c.variants.is_empty() && c.distinct <= 1000 {
            let canon: Vec<&str> = c.variants.iter().map(|v| v.canonical.as_str()).collect();
            // Similarity matching suits a few categories (`actve` → `active`); among many
            // values (names, cities) it would merge different values, so only variants fold.
            let few = c.distinct_exact && c.distinct <= 50 && c.semantic_type == "categorical";
            let params = if few {
                json!({"columns": [name]})
            } else {
                json!({"columns": [name], "threshold": 1.0})
            };
            steps.extend(step(
                id("canon"),
                "canonicalize",
                params,
                0.85,
                format!(
                    "`{name}` has {} values that differ only in case or whitespace from {} canonical values ({})",
                    grouped(variant_rows),
                    canon.len(),
                    canon.iter().take(5).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        } else if text && c.text.leading_whitespace + c.text.trailing_whitespace > 0 {
            steps.extend(step(
                id("trim"),
                "normalize_text",
                json!({"columns": [name], "trim": true}),
                0.9,
                format!(
                    "`{name}` has {} values with leading or trailing spaces",
                    grouped(c.text.leading_whitespace.max(c.text.trailing_whitespace))
                ),
            ));
        }
        // Dates written several ways: a text column of dates, or a date
        // column whose sample parsed but whose other values come in other
        // formats (the reader keeps those as text). Not a column of mostly
        // datetimes (at most one in 20): a date drops their times.
        let date_formats = c.dates.as_ref().map_or(0, |d| d.formats.len());
        let format_count = |f: &str| {
            c.formats
                .iter()
                .find(|v| v.value == f)
                .map_or(0, |v| v.count)
        };
        let mostly_dates = format_count("datetime") * 20 <= format_count("date");
        if (text && c.semantic_type == "date_text") || (date_formats > 1 && mostly_dates) {
            let written = match date_formats {
                0 => "dates as text".to_string(),
                1 => "dates".to_string(),
                k => format!("dates written in {k} formats"),
            };
            // Values of a column sampled as dates that are no date (2024-02-30);
            // without datetimes, whose dates the parse keeps, among them.
            let invalid = if text
                && c.dates.is_some()
                && c.type_mismatches > 0
                && format_count("datetime") == 0
            {
                let shown = mismatches_shown(c);
                format!(
                    "; {} that {} no valid date ({}) become{} empty, the text kept in provenance",
                    plural(c.type_mismatches, "value"),
                    if c.type_mismatches == 1 { "is" } else { "are" },
                    shown,
                    if c.type_mismatches == 1 { "s" } else { "" }
                )
            } else {
                String::new()
            };
            steps.extend(step(
                id("dates"),
                "parse",
                json!({"columns": [name], "to": "date"}),
                0.85,
                format!(
                    "`{name}` holds {written}; parse them to ISO dates{}{invalid}",
                    match format_count("datetime") {
                        0 => String::new(),
                        k => format!(" (the time of its {} datetimes is dropped)", grouped(k)),
                    }
                ),
            ));
        }
        // A column sampled as numbers that holds a few values that are not
        // (at most one in 20): its statistics are over the numbers, so the
        // steps below that use them need it parsed first.
        let present = c.count - c.missing;
        let numbers_and_text = text
            && matches!(c.sample_type, ColumnType::Integer | ColumnType::Float)
            && c.type_mismatches > 0
            && c.type_mismatches * 20 <= present;
        let mut parsed = false;
        if text && let Some((decimal, reads)) = numbers_as_text(c) {
            parsed = added(
                &mut steps,
                step(
                    id("numbers"),
                    "parse",
                    json!({"columns": [name], "to": "number", "decimal": decimal}),
                    0.85,
                    format!(
                        "`{name}` holds numbers written as text ({} of {} values read as numbers with a decimal {decimal}, once currency signs, grouping and percent are dropped); parse them to numbers",
                        grouped(reads),
                        grouped(present)
                    ),
                ),
            );
        } else if numbers_and_text {
            let shown = mismatches_shown(c);
            parsed = added(
                &mut steps,
                step(
                    id("numbers"),
                    "parse",
                    json!({"columns": [name], "to": "number"}),
                    0.7,
                    format!(
                        "`{name}` samples as {} but {} {} not ({}); parse it to numbers: a value that is no number becomes empty, its text kept in provenance",
                        c.sample_type,
                        plural(c.type_mismatches, "value"),
                        if c.type_mismatches == 1 { "is" } else { "are" },
                        shown,
                    ),
                ),
            );
        }
        if let Some(num) = &c.numeric {
            // A number is impossible only by the age rule (dates break the
            // birth-date one): the filter drops exactly what it counted. Its
            // SQL compares numbers, so the column must be (or become) numbers.
            if let Some(imp) = c
                .impossible
                .as_ref()
                .filter(|i| i.count > 0 && (!text || parsed))
            {
                let cond = format!("\"{name}\" < 0 OR \"{name}\" > {}", tamis_profile::AGE_MAX);
                steps.extend(step(
                    id("impossible"),
                    "filter",
                    json!({"drop_where": cond, "reason": format!("impossible {name}")}),
                    0.6,
                    format!(
                        "`{name}` has {}; drop those rows (or fix them at the source)",
                        plural(imp.count, "impossible value")
                    ),
                ));
            }
            let out = &num.outliers.iqr;
            if out.count > 0 && c.semantic_type != "identifier" {
                steps.extend(step(
                    id("outliers"),
                    "outliers",
                    json!({"columns": [name], "method": "iqr", "action": "flag"}),
                    0.6,
                    format!(
                        "`{name}` has {} outside the IQR fences [{:.4}, {:.4}]; flag {} for review",
                        plural(out.count, "value"),
                        out.lower,
                        out.upper,
                        if out.count == 1 { "it" } else { "them" }
                    ),
                ));
            }
        }
        // Not a column of one value and gaps (`x` or empty: a flag): filled
        // in, it would be one value throughout, and say nothing.
        if c.missing > 0
            && c.missing_ratio < 0.5
            && c.distinct > 1
            && c.semantic_type != "identifier"
            && c.semantic_type != "free_text"
        {
            let numeric =
                matches!(c.inferred_type, ColumnType::Integer | ColumnType::Float) || parsed;
            let categorical = c.semantic_type == "categorical";
            if numeric || categorical {
                let method = if numeric { "median" } else { "mode" };
                steps.extend(step(
                    id("impute"),
                    "impute",
                    json!({"columns": [name], "method": method}),
                    if numeric { 0.6 } else { 0.5 },
                    format!(
                        "`{name}` is missing in {} ({:.1}%); fill with the {method}",
                        plural(c.missing, "row"),
                        c.missing_ratio * 100.0
                    ),
                ));
            }
        }
    }
    let _ = by_col;
    for c in &p.columns {
        if !p.dataset.constant_columns.contains(&c.name) || p.dataset.rows < 2 {
            continue;
        }
        // A column of one value and gaps is kept: which rows are empty may
        // be what it says.
        let why = if c.distinct == 0 {
            "is empty in every row".to_string()
        } else if c.missing == 0 {
            match c.top_values.first() {
                Some(v) if v.value.chars().count() > 40 => format!(
                    "holds `{}…` in every row",
                    v.value.chars().take(39).collect::<String>()
                ),
                Some(v) => format!("holds `{}` in every row", v.value),
                None => "holds one value in every row".to_string(),
            }
        } else {
            continue;
        };
        steps.extend(step(
            id("drop"),
            "drop",
            json!({"columns": [c.name]}),
            0.7,
            format!("`{}` {why}; it carries no information", c.name),
        ));
    }
    Plan { steps }
}

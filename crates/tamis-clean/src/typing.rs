//! Typing text columns for cleaning.
//!
//! Text input arrives as strings. A column becomes typed only when every
//! value converts without losing information a reader would miss: integers
//! and floats by value but never with a leading zero (`007`, a zip code
//! `02134`: the number would drop it) or with more digits than a float keeps
//! (`12345678901234567890`), booleans only when spelled `true` or
//! `false` (`y`/`n`, `yes`/`no`, `t`/`f` stay text: recoding them is a
//! `parse` step's job, with provenance), dates only when every value is ISO
//! `YYYY-MM-DD` (a mixed-format date column stays text until a `parse` step
//! converts it, with provenance). Candidates come from the sample; a value
//! that does not convert widens the column (integer → float → string), and the
//! pass that saw it starts again.

use std::sync::Arc;

use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
};
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::types::{
    DateFormat, Missing, NullTokens, parse_bool, parse_date, parse_float, parse_int,
};
use tamis_core::{ColumnType, ROW_ID};

use crate::CleanError;

/// The Arrow type tamis uses for a logical type.
pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Date => DataType::Date32,
        ColumnType::Datetime | ColumnType::String => DataType::Utf8,
    }
}

/// Days from 0001-01-01 (CE) to 1970-01-01.
pub const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Converts text batches to typed batches.
#[derive(Debug, Clone)]
pub struct Typing {
    /// Current type of each data column (`None`: keep as read, e.g. Parquet).
    pub types: Vec<Option<ColumnType>>,
    names: Vec<String>,
    nulls: NullTokens,
    widened: bool,
}

impl Typing {
    /// Candidates from sampled types; `native` input (Parquet) is not converted.
    pub fn new(
        names: &[String],
        sampled: &[ColumnType],
        native: bool,
        nulls: NullTokens,
    ) -> Typing {
        let types = sampled
            .iter()
            .map(|t| {
                if native {
                    None
                } else {
                    Some(match t {
                        ColumnType::Datetime => ColumnType::String,
                        t => *t,
                    })
                }
            })
            .collect();
        Typing {
            types,
            names: names.to_vec(),
            nulls,
            widened: false,
        }
    }

    /// Whether a column was widened since the last call (the pass must restart).
    pub fn take_widened(&mut self) -> bool {
        std::mem::take(&mut self.widened)
    }

    /// The schema of typed batches for an input schema.
    pub fn schema(&self, input: &Schema) -> SchemaRef {
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match self.types.get(i).copied().flatten() {
                Some(t) => Field::new(f.name(), arrow_type(t), true),
                None => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Converts one batch. A value that does not fit widens its column and
    /// sets the restart flag; the batch is then converted with the wider type.
    pub fn convert(&mut self, batch: &RecordBatch) -> Result<RecordBatch, CleanError> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (i, col) in batch.columns().iter().enumerate() {
            let Some(mut t) = self.types.get(i).copied().flatten() else {
                cols.push(col.clone());
                continue;
            };
            if batch.schema().field(i).name() == ROW_ID || col.data_type() != &DataType::Utf8 {
                cols.push(col.clone());
                continue;
            }
            loop {
                match convert_column(col.as_string::<i32>(), t, &self.nulls) {
                    Ok(a) => {
                        cols.push(a);
                        break;
                    }
                    Err(()) => {
                        t = match t {
                            ColumnType::Integer => ColumnType::Float,
                            _ => ColumnType::String,
                        };
                        tracing::debug!(column = %self.names.get(i).map(String::as_str).unwrap_or("?"), to = t.name(), "column widened");
                        self.types[i] = Some(t);
                        self.widened = true;
                    }
                }
            }
        }
        let schema = self.schema(&batch.schema());
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

fn convert_column(
    s: &tamis_core::datafusion::arrow::array::StringArray,
    t: ColumnType,
    nulls: &NullTokens,
) -> Result<ArrayRef, ()> {
    let missing = |v: &str| nulls.classify(v) != Missing::No;
    Ok(match t {
        ColumnType::String | ColumnType::Datetime => Arc::new(s.clone()),
        ColumnType::Integer => {
            let mut b = Int64Builder::with_capacity(s.len());
            for v in s.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) if missing(v) => b.append_null(),
                    Some(v) => b.append_value(parse_int(whole_number(v)?).ok_or(())?),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Float => {
            let mut b = Float64Builder::with_capacity(s.len());
            for v in s.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) if missing(v) => b.append_null(),
                    Some(v) => {
                        let v = whole_number(v)?;
                        let x = parse_float(v).ok_or(())?;
                        if !exact_in_f64(v, x) {
                            return Err(());
                        }
                        b.append_value(x)
                    }
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(s.len());
            for v in s.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) if missing(v) => b.append_null(),
                    Some(v) => {
                        let v = v.trim();
                        if !(v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")) {
                            return Err(());
                        }
                        b.append_value(parse_bool(v).ok_or(())?)
                    }
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Date => {
            let mut b = Date32Builder::with_capacity(s.len());
            for v in s.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) if missing(v) => b.append_null(),
                    Some(v) => match parse_date(v) {
                        Some((d, DateFormat::Iso)) => b.append_value(days(d)),
                        _ => return Err(()),
                    },
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// A number's text, trimmed, unless its digits start with a zero that a
/// number would drop (`007`, `-012.5`; `0` and `0.5` are fine).
fn whole_number(v: &str) -> Result<&str, ()> {
    let v = v.trim();
    let d = v.trim_start_matches(['+', '-']).as_bytes();
    if d.len() > 1 && d[0] == b'0' && d[1].is_ascii_digit() {
        return Err(());
    }
    Ok(v)
}

/// Whether the float `x` read from `v` keeps all of `v`'s digits: a 64-bit
/// float holds 15 significant digits for sure, and more only when they are
/// the ones it prints back (`12345678901234567890` would come back as
/// `1.2345678901234567e19`, an id with its last digits gone).
fn exact_in_f64(v: &str, x: f64) -> bool {
    fn significant(v: &str) -> String {
        let mantissa = v.trim_start_matches(['+', '-']);
        let mantissa = mantissa.split(['e', 'E']).next().unwrap_or("");
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        digits
            .trim_start_matches('0')
            .trim_end_matches('0')
            .to_string()
    }
    // Most values have few digits in all: no need to look closer.
    if v.bytes().filter(u8::is_ascii_digit).count() <= 15 || !x.is_finite() {
        return true;
    }
    let sig = significant(v);
    sig.len() <= 15 || sig == significant(&format!("{x:e}"))
}

/// Days since 1970-01-01.
pub fn days(d: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tamis_core::datafusion::arrow::array::{StringArray, UInt64Array};

    fn batch(vals: Vec<Option<&str>>) -> RecordBatch {
        let n = vals.len() as u64;
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Utf8, true),
                Field::new(ROW_ID, DataType::UInt64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vals)),
                Arc::new(UInt64Array::from((0..n).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn integers_widen_to_float_then_string() {
        let mut t = Typing::new(
            &["a".into()],
            &[ColumnType::Integer],
            false,
            NullTokens::default(),
        );
        let b = t
            .convert(&batch(vec![Some("1"), Some("NA"), None]))
            .unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Int64);
        assert_eq!(b.column(0).null_count(), 2);
        assert!(!t.take_widened());
        let b = t.convert(&batch(vec![Some("1.5")])).unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Float64);
        assert!(t.take_widened());
        let b = t.convert(&batch(vec![Some("x")])).unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Utf8);
    }

    #[test]
    fn leading_zeros_and_other_boolean_spellings_stay_text() {
        let one = |t: ColumnType, vals: Vec<Option<&str>>| {
            let mut ty = Typing::new(&["a".into()], &[t], false, NullTokens::default());
            ty.convert(&batch(vals))
                .unwrap()
                .column(0)
                .data_type()
                .clone()
        };
        use ColumnType::{Boolean, Float, Integer};
        assert_eq!(
            one(Integer, vec![Some("0"), Some("-5"), Some("+7")]),
            DataType::Int64
        );
        assert_eq!(
            one(Integer, vec![Some("12"), Some("02134")]),
            DataType::Utf8
        );
        assert_eq!(one(Integer, vec![Some("-007")]), DataType::Utf8);
        assert_eq!(
            one(Float, vec![Some("0.5"), Some("-0.25")]),
            DataType::Float64
        );
        assert_eq!(one(Float, vec![Some("01.5")]), DataType::Utf8);
        // Digits a float cannot keep: the column stays text.
        assert_eq!(
            one(Integer, vec![Some("5"), Some("12345678901234567890")]),
            DataType::Utf8
        );
        assert_eq!(one(Float, vec![Some("9007199254740993")]), DataType::Utf8);
        assert_eq!(
            one(
                Float,
                vec![Some("9007199254740992"), Some("0.1"), Some("1e300")]
            ),
            DataType::Float64
        );
        assert_eq!(
            one(Float, vec![Some("3.14159265358979323846")]),
            DataType::Utf8
        );
        assert_eq!(
            one(Boolean, vec![Some("TRUE"), Some(" false ")]),
            DataType::Boolean
        );
        assert_eq!(one(Boolean, vec![Some("true"), Some("y")]), DataType::Utf8);
        assert_eq!(one(Boolean, vec![Some("yes"), Some("no")]), DataType::Utf8);
    }

    #[test]
    fn only_iso_dates_are_typed() {
        let mut t = Typing::new(
            &["a".into()],
            &[ColumnType::Date],
            false,
            NullTokens::default(),
        );
        let b = t.convert(&batch(vec![Some("2024-01-31")])).unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Date32);
        let b = t.convert(&batch(vec![Some("01/31/2024")])).unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Utf8);
    }
}

//! Parquet columns of nested or binary types, made flat the way JSON input
//! is: a struct becomes one column per field (`parent.child`, recursively),
//! a list or map its JSON text (`[1,2]`, `{"k":1}`), binary its lowercase
//! hex, a dictionary its values. Every later stage (profile, clean, SQL
//! over the dataset) then sees scalar columns only.
//!
//! Arrow's cast does none of this (it has no struct or binary to text), and
//! the JSON text comes from arrow's own JSON encoder.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder, make_array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};

/// How a column's type is made flat.
enum Flat {
    /// Kept as it is.
    Keep,
    /// A struct: each field in turn.
    Struct,
    /// Lists, maps, unions: JSON text.
    Json,
    /// Bytes: lowercase hex.
    Hex,
    /// A dictionary: its values, then made flat themselves.
    Dictionary,
}

fn flat(t: &DataType) -> Flat {
    match t {
        DataType::Struct(_) => Flat::Struct,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Map(_, _)
        | DataType::Union(_, _) => Flat::Json,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Flat::Hex,
        DataType::Dictionary(_, _) => Flat::Dictionary,
        _ => Flat::Keep,
    }
}

/// Whether any of these fields needs making flat.
pub fn is_nested(fields: &Fields) -> bool {
    fields
        .iter()
        .any(|f| !matches!(flat(f.data_type()), Flat::Keep))
}

/// The flat fields for `fields`: names joined with `.`, every one nullable.
pub fn flat_fields(fields: &Fields) -> Vec<Field> {
    let mut out = Vec::new();
    for f in fields {
        flat_field(f.name(), f.data_type(), &mut out);
    }
    out
}

fn flat_field(name: &str, t: &DataType, out: &mut Vec<Field>) {
    match (flat(t), t) {
        (Flat::Struct, DataType::Struct(children)) => {
            for c in children {
                flat_field(&format!("{name}.{}", c.name()), c.data_type(), out);
            }
        }
        (Flat::Dictionary, DataType::Dictionary(_, values)) => flat_field(name, values, out),
        (Flat::Json | Flat::Hex, _) => out.push(Field::new(name, DataType::Utf8, true)),
        _ => out.push(Field::new(name, t.clone(), true)),
    }
}

/// The flat columns for `columns` of `fields`, in [`flat_fields`]' order.
pub fn flatten(fields: &Fields, columns: &[ArrayRef]) -> Result<Vec<ArrayRef>, ArrowError> {
    let mut out = Vec::new();
    for (f, a) in fields.iter().zip(columns) {
        flat_array(f, a.clone(), &mut out)?;
    }
    Ok(out)
}

fn flat_array(field: &FieldRef, a: ArrayRef, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
    match flat(a.data_type()) {
        Flat::Keep => out.push(a),
        Flat::Struct => {
            let s = a.as_struct();
            let DataType::Struct(children) = a.data_type() else {
                return Err(ArrowError::SchemaError("a struct without fields".into()));
            };
            for (c, child) in children.iter().zip(s.columns()) {
                // A field of a null struct is null, whatever its slot holds.
                let nulls = NullBuffer::union(s.nulls(), child.nulls());
                let child = make_array(child.to_data().into_builder().nulls(nulls).build()?);
                flat_array(c, child, out)?;
            }
        }
        Flat::Dictionary => {
            let DataType::Dictionary(_, values) = a.data_type() else {
                return Err(ArrowError::SchemaError(
                    "a dictionary without values".into(),
                ));
            };
            let unpacked = cast(&a, values)?;
            let f = Arc::new(Field::new(field.name(), values.as_ref().clone(), true));
            flat_array(&f, unpacked, out)?;
        }
        Flat::Json => out.push(json_text(field, a.as_ref())?),
        Flat::Hex => out.push(hex_text(a.as_ref())?),
    }
    Ok(())
}

fn json_text(field: &FieldRef, a: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut enc = make_encoder(field, a, &options)?;
    let mut b = StringBuilder::with_capacity(a.len(), a.len() * 16);
    let mut buf = Vec::new();
    for i in 0..a.len() {
        if a.is_null(i) {
            b.append_null();
            continue;
        }
        buf.clear();
        enc.encode(i, &mut buf);
        b.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(Arc::new(b.finish()))
}

fn hex_text(a: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let bytes = cast(a, &DataType::LargeBinary)?;
    let bytes = bytes.as_binary::<i64>();
    let mut b = StringBuilder::with_capacity(a.len(), a.len() * 8);
    let mut s = String::new();
    for v in bytes.iter() {
        match v {
            None => b.append_null(),
            Some(v) => {
                s.clear();
                for x in v {
                    s.push_str(&format!("{x:02x}"));
                }
                b.append_value(&s);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

//! Excel workbooks (.xlsx, .xlsm, .xlsb, .xls, .ods) through `calamine`.
//!
//! Cells are rendered as text the way a person reads them: whole floats
//! without `.0`, dates as ISO dates (datetimes when they carry a time), and
//! error cells as their error text (`#DIV/0!`), so type inference and the
//! profile treat them like any other text input.

use calamine::{Data, Reader};

use crate::error::{CoreError, Result};
use crate::source::SourceFile;

/// Reads a sheet (by name or 0-based index; the first when `None`) as rows of text cells.
pub fn read_sheet(
    src: &SourceFile,
    sheet: Option<&str>,
) -> Result<(String, Vec<Vec<Option<String>>>)> {
    let path = src.local_path().ok_or_else(|| CoreError::Format {
        file: src.name.clone(),
        message: "Excel from a remote store is not supported yet; copy it locally first".into(),
    })?;
    let mut wb = calamine::open_workbook_auto(&path).map_err(|e| CoreError::Format {
        file: src.name.clone(),
        message: format!("not a readable workbook: {e}"),
    })?;
    let names = wb.sheet_names();
    let name = match sheet {
        None => names.first().cloned(),
        Some(s) => names
            .iter()
            .find(|n| n.as_str() == s)
            .cloned()
            .or_else(|| s.parse::<usize>().ok().and_then(|i| names.get(i).cloned())),
    }
    .ok_or_else(|| CoreError::Format {
        file: src.name.clone(),
        message: format!(
            "no sheet `{}`; sheets are: {}",
            sheet.unwrap_or("0"),
            names.join(", ")
        ),
    })?;
    let range = wb.worksheet_range(&name).map_err(|e| CoreError::Format {
        file: src.name.clone(),
        message: format!("cannot read sheet `{name}`: {e}"),
    })?;
    let rows = range
        .rows()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    Ok((name, rows))
}

fn cell_text(c: &Data) -> Option<String> {
    match c {
        Data::Empty => None,
        Data::String(s) if s.is_empty() => None,
        Data::String(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(format!("{}", *f as i64)),
        Data::Float(f) => Some(f.to_string()),
        Data::Bool(b) => Some(b.to_string()),
        Data::DateTime(d) => d.as_datetime().map(|dt| {
            if dt.time() == chrono::NaiveTime::MIN {
                dt.date().format("%Y-%m-%d").to_string()
            } else {
                dt.format("%Y-%m-%dT%H:%M:%S").to_string()
            }
        }),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
        Data::Error(e) => Some(format!("{e}")),
    }
}

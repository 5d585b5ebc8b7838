//! The cell transforms as DataFusion scalar functions, so SQL (and `filter`
//! conditions, and later a cluster) can use them:
//!
//! - `tamis_normalize(text, 'trim,collapse,lower|upper|title,nfc|nfkc,strip_accents,null_tokens')`
//! - `tamis_standardize(text, 'phone'|'email'|'state'|'country')` (null when it cannot)
//! - `tamis_parse_number(text)` → double, `tamis_parse_date(text)` → date

use std::sync::Arc;

use tamis_core::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, StringArray,
};
use tamis_core::datafusion::arrow::datatypes::DataType;
use tamis_core::datafusion::common::{DataFusionError, ScalarValue};
use tamis_core::datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use tamis_core::datafusion::prelude::SessionContext;

use crate::ops::{TextNorm, parse_number, standardize_value};
use crate::plan::{Case, NormalForm, StandardKind};

fn text_arg(args: &[ColumnarValue], i: usize) -> Result<ArrayRef, DataFusionError> {
    let a = args
        .get(i)
        .ok_or_else(|| DataFusionError::Plan("missing argument".into()))?;
    let n = args
        .iter()
        .find_map(|a| match a {
            ColumnarValue::Array(x) => Some(x.len()),
            _ => None,
        })
        .unwrap_or(1);
    a.clone().into_array(n)
}

fn literal(args: &[ColumnarValue], i: usize, f: &str) -> Result<String, DataFusionError> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(s)))) => Ok(s.clone()),
        _ => Err(DataFusionError::Plan(format!(
            "{f}: argument {} must be a text literal",
            i + 1
        ))),
    }
}

fn norm_options(spec: &str) -> Result<TextNorm, DataFusionError> {
    let mut n = TextNorm {
        trim: false,
        collapse: false,
        case: None,
        unicode: None,
        strip_accents: false,
        nullify: None,
    };
    for o in spec.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "trim" => n.trim = true,
            "collapse" => n.collapse = true,
            "lower" => n.case = Some(Case::Lower),
            "upper" => n.case = Some(Case::Upper),
            "title" => n.case = Some(Case::Title),
            "nfc" => n.unicode = Some(NormalForm::Nfc),
            "nfkc" => n.unicode = Some(NormalForm::Nfkc),
            "strip_accents" => n.strip_accents = true,
            "null_tokens" => n.nullify = Some(tamis_core::NullTokens::default()),
            other => {
                return Err(DataFusionError::Plan(format!(
                    "tamis_normalize: unknown option `{other}`; use trim, collapse, lower, upper, title, nfc, nfkc, strip_accents, null_tokens"
                )));
            }
        }
    }
    Ok(n)
}

fn strings(a: &ArrayRef, f: impl Fn(&str) -> Option<String>) -> ArrayRef {
    let s = a.as_string::<i32>();
    Arc::new(s.iter().map(|v| v.and_then(&f)).collect::<StringArray>())
}

/// The tamis scalar functions.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        create_udf(
            "tamis_normalize",
            vec![DataType::Utf8, DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let n = norm_options(&literal(args, 1, "tamis_normalize")?)?;
                Ok(ColumnarValue::Array(strings(&text_arg(args, 0)?, |v| {
                    n.apply(v)
                })))
            }),
        ),
        create_udf(
            "tamis_standardize",
            vec![DataType::Utf8, DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let kind = match literal(args, 1, "tamis_standardize")?.as_str() {
                    "phone" => StandardKind::Phone,
                    "email" => StandardKind::Email,
                    "state" => StandardKind::State,
                    "country" => StandardKind::Country,
                    k => {
                        return Err(DataFusionError::Plan(format!(
                            "tamis_standardize: unknown kind `{k}`; use phone, email, state or country"
                        )));
                    }
                };
                Ok(ColumnarValue::Array(strings(&text_arg(args, 0)?, |v| {
                    standardize_value(kind, v, "1")
                })))
            }),
        ),
        create_udf(
            "tamis_parse_number",
            vec![DataType::Utf8],
            DataType::Float64,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let a = text_arg(args, 0)?;
                let s = a.as_string::<i32>();
                let out: Float64Array = s.iter().map(|v| v.and_then(parse_number)).collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }),
        ),
        create_udf(
            "tamis_parse_date",
            vec![DataType::Utf8],
            DataType::Date32,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let a = text_arg(args, 0)?;
                let s = a.as_string::<i32>();
                let out: Date32Array = s
                    .iter()
                    .map(|v| {
                        v.and_then(|v| tamis_core::types::parse_date(v.trim()))
                            .map(|(d, _)| crate::typing::days(d))
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }),
        ),
    ]
}

/// Registers the tamis scalar functions on a session.
pub fn register(ctx: &SessionContext) {
    for f in functions() {
        ctx.register_udf(f);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tamis_core::datafusion::arrow::compute::cast;

    #[tokio::test]
    async fn the_transforms_run_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let df = ctx
            .sql(
                "SELECT tamis_normalize(x, 'trim,collapse,upper') AS n, tamis_standardize(p, 'phone') AS p, \
                 tamis_parse_number(m) AS m, tamis_parse_date(d) AS d \
                 FROM (VALUES ('  new   york ', '(555) 123-4567', '$1,234.50', '03/15/2021')) AS t(x, p, m, d)",
            )
            .await
            .unwrap();
        let b = df.collect().await.unwrap();
        let row: Vec<String> = b[0]
            .columns()
            .iter()
            .map(|c| {
                cast(c, &DataType::Utf8)
                    .unwrap()
                    .as_string::<i32>()
                    .value(0)
                    .to_string()
            })
            .collect();
        assert_eq!(
            row,
            vec!["NEW YORK", "+15551234567", "1234.5", "2021-03-15"]
        );
        let bad = match ctx.sql("SELECT tamis_normalize('a', 'shout')").await {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        };
        assert!(bad.contains("unknown option `shout`"), "{bad}");
    }
}

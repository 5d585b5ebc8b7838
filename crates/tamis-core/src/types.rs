//! Logical column types and the value parsers behind type inference.
//!
//! Text input (CSV, JSON rendered as text, Excel cells) arrives as strings;
//! these parsers decide what a value is. They are written by hand, not with
//! `chrono`'s format strings, because they run once per cell on every profile
//! and must cost a few nanoseconds: each one rejects on the first byte that
//! cannot belong to its type.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// The logical type of a column, from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// true/false, yes/no, t/f, y/n (any case).
    Boolean,
    /// 64-bit signed integers.
    Integer,
    /// 64-bit floats (also integers beyond 64 bits).
    Float,
    /// Calendar dates in a common format.
    Date,
    /// Date and time of day.
    Datetime,
    /// Anything else.
    String,
}

impl ColumnType {
    /// Every type, for messages and `--schema` help.
    pub const ALL: [ColumnType; 6] = [
        ColumnType::Boolean,
        ColumnType::Integer,
        ColumnType::Float,
        ColumnType::Date,
        ColumnType::Datetime,
        ColumnType::String,
    ];

    /// The name used in schemas and output.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
            ColumnType::String => "string",
        }
    }

    /// The name with its article, for messages: "an integer", "a string".
    pub fn with_article(self) -> &'static str {
        match self {
            ColumnType::Boolean => "a boolean",
            ColumnType::Integer => "an integer",
            ColumnType::Float => "a float",
            ColumnType::Date => "a date",
            ColumnType::Datetime => "a datetime",
            ColumnType::String => "a string",
        }
    }

    /// Parses a type name (`int`, `integer`, `bigint`, `double`, `str`, ...).
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "bool" | "boolean" => ColumnType::Boolean,
            "int" | "integer" | "bigint" | "int64" | "long" => ColumnType::Integer,
            "float" | "double" | "float64" | "real" | "number" | "numeric" | "decimal" => {
                ColumnType::Float
            }
            "date" => ColumnType::Date,
            "datetime" | "timestamp" => ColumnType::Datetime,
            "string" | "str" | "text" | "varchar" | "utf8" => ColumnType::String,
            _ => return None,
        })
    }

    /// Whether `value` (already known not to be null) is a valid value of this type.
    pub fn accepts(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            ColumnType::Boolean => parse_bool(v).is_some(),
            ColumnType::Integer => parse_int(v).is_some(),
            ColumnType::Float => parse_float(v).is_some(),
            ColumnType::Date => parse_date(v).is_some(),
            ColumnType::Datetime => parse_datetime(v).is_some() || parse_date(v).is_some(),
            ColumnType::String => true,
        }
    }

    /// The narrowest type that holds both `self` and `other`.
    pub fn widen(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Integer, Float) | (Float, Integer) => Float,
            (Date, Datetime) | (Datetime, Date) => Datetime,
            _ => String,
        }
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The default null tokens: values that mean "missing" in the wild.
pub const DEFAULT_NULL_TOKENS: &[&str] =
    &["NA", "N/A", "null", "NULL", "None", "nan", "NaN", "-", "?"];

/// Decides whether a text value is missing. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct NullTokens(std::sync::Arc<TokenSet>);

#[derive(Debug)]
struct TokenSet {
    /// Lower-cased tokens, each with the spellings it was given in.
    tokens: Vec<(String, Vec<String>)>,
    max_len: usize,
    /// Bytes a token can start with, in either case: most values are
    /// turned away by their first byte, before any token is compared.
    first: [bool; 256],
}

impl Default for NullTokens {
    fn default() -> Self {
        Self::new(DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()))
    }
}

/// What kind of missing a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Not missing.
    No,
    /// Empty or whitespace-only string.
    Empty,
    /// A null token such as `NA`.
    Token,
}

impl NullTokens {
    /// Builds a token set. A value (trimmed) is a token when it spells one
    /// in lower case, upper case, title case or exactly as given: `na`,
    /// `Na`, `NA` and ` NA ` all match `NA`. A value in mixed case such as
    /// `nAn` does not: that is a typo of a name (Nan, Ann), not a marker.
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in tokens {
            let t = t.trim();
            let low = t.to_ascii_lowercase();
            match out.iter_mut().find(|(l, _)| *l == low) {
                Some((_, spellings)) => spellings.push(t.to_string()),
                None => out.push((low, vec![t.to_string()])),
            }
        }
        let max_len = out.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        let mut first = [false; 256];
        for b in out.iter().filter_map(|(t, _)| t.as_bytes().first()) {
            first[b.to_ascii_lowercase() as usize] = true;
            first[b.to_ascii_uppercase() as usize] = true;
        }
        NullTokens(std::sync::Arc::new(TokenSet {
            tokens: out,
            max_len,
            first,
        }))
    }

    /// The tokens as given (`NullTokens::new` of them builds this set again).
    pub fn spellings(&self) -> impl Iterator<Item = &str> {
        self.0
            .tokens
            .iter()
            .flat_map(|(_, s)| s.iter().map(String::as_str))
    }

    /// Classifies a value.
    #[inline]
    pub fn classify(&self, v: &str) -> Missing {
        let b = v.as_bytes();
        // Trimming cannot change a value that starts and ends with a visible
        // ASCII byte (the common case): skip the Unicode-aware trim.
        let solid = |c: &u8| *c > b' ' && *c < 0x80;
        let t = if b.first().is_some_and(solid) && b.last().is_some_and(solid) {
            v
        } else {
            v.trim()
        };
        if t.is_empty() {
            return Missing::Empty;
        }
        let set = &*self.0;
        if t.len() > set.max_len || !set.first[t.as_bytes()[0] as usize] {
            return Missing::No;
        }
        match set
            .tokens
            .iter()
            .find(|(tok, _)| t.eq_ignore_ascii_case(tok))
        {
            Some((_, spellings)) if one_case(t) || spellings.iter().any(|s| s == t) => {
                Missing::Token
            }
            _ => Missing::No,
        }
    }
}

/// Whether a word is in upper case, or in lower or title case (no capital
/// past the first letter), in ASCII letters.
fn one_case(t: &str) -> bool {
    let b = t.as_bytes();
    !b.iter().any(u8::is_ascii_lowercase) || !b.iter().skip(1).any(u8::is_ascii_uppercase)
}

/// The order in which spellings of one value (`(spelling, count)`) compete
/// to be its canonical spelling: one without stray whitespace (around it,
/// or doubled inside) before any with it, then the most frequent, then by
/// bytes (so the choice is the same every run).
pub fn canonical_order(a: (&str, u64), b: (&str, u64)) -> std::cmp::Ordering {
    let padded = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ") != s;
    padded(a.0)
        .cmp(&padded(b.0))
        .then(b.1.cmp(&a.1))
        .then(a.0.cmp(b.0))
}

/// Parses a boolean word.
#[inline]
pub fn parse_bool(v: &str) -> Option<bool> {
    if v.len() > 5 {
        return None;
    }
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" => Some(true),
        "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Parses a base-10 integer with an optional sign. No separators, no spaces.
#[inline]
pub fn parse_int(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut acc: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc = acc.checked_mul(10)?;
        acc = if neg {
            acc.checked_sub(d as i64)?
        } else {
            acc.checked_add(d as i64)?
        };
    }
    Some(acc)
}

/// Whether `v` is an integer literal too large for 64 bits.
pub fn is_big_int(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()) && parse_int(v).is_none()
}

/// Parses a float: decimal or scientific notation, `inf`/`infinity` with a
/// sign. `NaN` is a null token by default and so is not accepted here.
#[inline]
pub fn parse_float(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    let first = *b.first()?;
    // Reject early what `str::parse` would spend time on: words, dates, phones.
    if !(first.is_ascii_digit()
        || first == b'-'
        || first == b'+'
        || first == b'.'
        || first == b'i'
        || first == b'I')
    {
        return None;
    }
    if b.contains(&b'_') {
        return None;
    }
    let f: f64 = v.parse().ok()?;
    if f.is_nan() { None } else { Some(f) }
}

/// The textual format a date was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DateFormat {
    /// `2024-01-31`
    #[serde(rename = "YYYY-MM-DD")]
    Iso,
    /// `2024/01/31`
    #[serde(rename = "YYYY/MM/DD")]
    YmdSlash,
    /// `01/31/2024`
    #[serde(rename = "MM/DD/YYYY")]
    MdySlash,
    /// `31/01/2024` (only when the day is > 12, else it reads as MM/DD)
    #[serde(rename = "DD/MM/YYYY")]
    DmySlash,
    /// `31.01.2024`
    #[serde(rename = "DD.MM.YYYY")]
    DmyDot,
    /// `31-01-2024`
    #[serde(rename = "DD-MM-YYYY")]
    DmyDash,
    /// `January 31, 2024` or `Jan 31, 2024`
    #[serde(rename = "Month DD, YYYY")]
    MonthDayYear,
    /// `31 January 2024` or `31 Jan 2024`
    #[serde(rename = "DD Month YYYY")]
    DayMonthYear,
    /// `2024-01-31T08:30:00` with optional fraction and zone, or with a space.
    #[serde(rename = "ISO datetime")]
    IsoDatetime,
}

impl DateFormat {
    /// The label used in reports.
    pub fn label(self) -> &'static str {
        match self {
            DateFormat::Iso => "YYYY-MM-DD",
            DateFormat::YmdSlash => "YYYY/MM/DD",
            DateFormat::MdySlash => "MM/DD/YYYY",
            DateFormat::DmySlash => "DD/MM/YYYY",
            DateFormat::DmyDot => "DD.MM.YYYY",
            DateFormat::DmyDash => "DD-MM-YYYY",
            DateFormat::MonthDayYear => "Month DD, YYYY",
            DateFormat::DayMonthYear => "DD Month YYYY",
            DateFormat::IsoDatetime => "ISO datetime",
        }
    }
}

#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    let mut acc = 0u32;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc = acc * 10 + d as u32;
    }
    Some(acc)
}

fn month_from_name(w: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let w = w.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    NAMES
        .iter()
        .position(|n| {
            *n == w || (w.len() == 3 && n.starts_with(&w)) || (w == "sept" && *n == "september")
        })
        .map(|i| i as u32 + 1)
}

/// Parses a date in one of the common formats, returning the format too.
#[inline]
pub fn parse_date(v: &str) -> Option<(NaiveDate, DateFormat)> {
    let b = v.as_bytes();
    if b.len() == 10 && b[0].is_ascii_digit() && b[1].is_ascii_digit() {
        let (s1, s2) = (b[4], b[7]);
        if (s1 == b'-' || s1 == b'/') && s2 == s1 {
            let y = digits(&b[0..4])?;
            let m = digits(&b[5..7])?;
            let d = digits(&b[8..10])?;
            let f = if s1 == b'-' {
                DateFormat::Iso
            } else {
                DateFormat::YmdSlash
            };
            return NaiveDate::from_ymd_opt(y as i32, m, d).map(|x| (x, f));
        }
        let (s1, s2) = (b[2], b[5]);
        if (s1 == b'/' || s1 == b'.' || s1 == b'-') && s2 == s1 {
            let a = digits(&b[0..2])?;
            let c = digits(&b[3..5])?;
            let y = digits(&b[6..10])? as i32;
            return match s1 {
                b'.' => NaiveDate::from_ymd_opt(y, c, a).map(|x| (x, DateFormat::DmyDot)),
                b'-' => NaiveDate::from_ymd_opt(y, c, a).map(|x| (x, DateFormat::DmyDash)),
                _ if a > 12 => NaiveDate::from_ymd_opt(y, c, a).map(|x| (x, DateFormat::DmySlash)),
                _ => NaiveDate::from_ymd_opt(y, a, c).map(|x| (x, DateFormat::MdySlash)),
            };
        }
        if b[2].is_ascii_digit() {
            return None;
        }
    }
    if b.len() < 8 || b.len() > 20 || !b[0].is_ascii_alphanumeric() {
        return None;
    }
    // "January 31, 2024", "Jan 31 2024", "31 January 2024"
    let mut parts = v.split([' ', ',']).filter(|p| !p.is_empty());
    let (p1, p2, p3) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || p3.len() != 4 {
        return None;
    }
    let y = digits(p3.as_bytes())? as i32;
    if let Some(m) = month_from_name(p1) {
        let d = digits(p2.as_bytes())?;
        return NaiveDate::from_ymd_opt(y, m, d).map(|x| (x, DateFormat::MonthDayYear));
    }
    let m = month_from_name(p2)?;
    let d = digits(p1.as_bytes())?;
    NaiveDate::from_ymd_opt(y, m, d).map(|x| (x, DateFormat::DayMonthYear))
}

/// Parses an ISO-8601-like datetime: `YYYY-MM-DD[T ]HH:MM[:SS[.frac]][Z|±HH:MM]`.
/// The zone, if any, is dropped: the value is read as written.
pub fn parse_datetime(v: &str) -> Option<NaiveDateTime> {
    let b = v.as_bytes();
    if b.len() < 16 || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let (date, fmt) = parse_date(&v[..10])?;
    if fmt != DateFormat::Iso {
        return None;
    }
    let t = &b[11..];
    if t.len() < 5 || t[2] != b':' {
        return None;
    }
    let h = digits(&t[0..2])?;
    let mi = digits(&t[3..5])?;
    let mut rest = &t[5..];
    let mut s = 0;
    let mut nanos = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        s = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let frac = &rest[1..1 + n.min(9)];
            nanos = digits(frac)? * 10u32.pow(9 - frac.len() as u32);
            rest = &rest[1 + n..];
        }
    }
    match rest {
        [] | [b'Z'] => {}
        [b'+' | b'-', h1, h2, b':', m1, m2] | [b'+' | b'-', h1, h2, m1, m2] => {
            digits(&[*h1, *h2, *m1, *m2])?;
        }
        [b'+' | b'-', h1, h2] => {
            digits(&[*h1, *h2])?;
        }
        _ => return None,
    }
    let time = NaiveTime::from_hms_nano_opt(h, mi, s, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

/// Share of a sample's present values that may fail a type and still have
/// it inferred: one in a hundred. Those values are the type mismatches the
/// profile counts and names, as it does for values after the sample, so a
/// date column with one impossible date reads the same whether that date
/// falls in the sample or not.
pub const INFER_TOLERANCE: f64 = 0.01;

/// Infers the type of a column from a sample of its values: the narrowest
/// type holding every non-missing value, or failing that, the narrowest
/// holding all but [`INFER_TOLERANCE`] of them. An empty sample is a string
/// column.
pub fn infer_type<'a>(values: impl IntoIterator<Item = &'a str>, nulls: &NullTokens) -> ColumnType {
    // Values each candidate fails, narrowest first: boolean, integer, float,
    // date, datetime.
    let mut fails = [0u64; 5];
    let mut present = 0u64;
    for raw in values {
        if nulls.classify(raw) != Missing::No {
            continue;
        }
        present += 1;
        let v = raw.trim();
        let int_ok = parse_int(v).is_some();
        let date_ok = parse_date(v).is_some();
        let oks = [
            parse_bool(v).is_some(),
            int_ok,
            int_ok || parse_float(v).is_some(),
            date_ok,
            date_ok || parse_datetime(v).is_some(),
        ];
        for (f, ok) in fails.iter_mut().zip(oks) {
            *f += u64::from(!ok);
        }
    }
    const TYPES: [ColumnType; 5] = [
        ColumnType::Boolean,
        ColumnType::Integer,
        ColumnType::Float,
        ColumnType::Date,
        ColumnType::Datetime,
    ];
    let allowed = (present as f64 * INFER_TOLERANCE) as u64;
    let pick = |limit: u64| {
        TYPES
            .iter()
            .zip(fails)
            .find(|(_, f)| *f <= limit)
            .map(|(t, _)| *t)
    };
    if present == 0 {
        return ColumnType::String;
    }
    pick(0)
        .or_else(|| pick(allowed))
        .unwrap_or(ColumnType::String)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_spelling_is_unpadded_then_most_frequent() {
        let mut v = vec![(" Paris", 9), ("paris", 2), ("Paris ", 9), ("PARIS", 2)];
        v.sort_by(|a, b| canonical_order(*a, *b));
        assert_eq!(
            v,
            [("PARIS", 2), ("paris", 2), (" Paris", 9), ("Paris ", 9)]
        );
        let mut v = [("New  York", 5), ("new york", 1), ("New York", 1)];
        v.sort_by(|a, b| canonical_order(*a, *b));
        assert_eq!(v[0], ("New York", 1));
        let mut v = [("Lyon", 1), ("lyon", 3)];
        v.sort_by(|a, b| canonical_order(*a, *b));
        assert_eq!(v[0], ("lyon", 3));
    }

    #[test]
    fn ints_and_overflow() {
        assert_eq!(parse_int("-42"), Some(-42));
        assert_eq!(parse_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), None);
        assert!(is_big_int("99999999999999999999999"));
        assert_eq!(parse_int("1.0"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("-"), None);
    }

    #[test]
    fn dates_in_common_formats() {
        let d = NaiveDate::from_ymd_opt(2021, 3, 4).expect("date");
        for (s, f) in [
            ("2021-03-04", DateFormat::Iso),
            ("2021/03/04", DateFormat::YmdSlash),
            ("03/04/2021", DateFormat::MdySlash),
            ("04.03.2021", DateFormat::DmyDot),
            ("March 4, 2021", DateFormat::MonthDayYear),
            ("Mar 4 2021", DateFormat::MonthDayYear),
            ("4 March 2021", DateFormat::DayMonthYear),
        ] {
            assert_eq!(parse_date(s), Some((d, f)), "{s}");
        }
        assert_eq!(
            parse_date("25/12/2021").map(|x| x.1),
            Some(DateFormat::DmySlash)
        );
        assert_eq!(parse_date("2021-02-30"), None);
        assert_eq!(parse_date("ORD-2023-1"), None);
        assert!(parse_datetime("2021-03-04T10:11:12.5+02:00").is_some());
        assert!(parse_datetime("2021-03-04 10:11").is_some());
        assert!(parse_datetime("2021-03-04X10:11").is_none());
    }

    #[test]
    fn inference_picks_the_narrowest_type() {
        let n = NullTokens::default();
        assert_eq!(infer_type(["1", "2", "NA", ""], &n), ColumnType::Integer);
        assert_eq!(infer_type(["1", "2.5"], &n), ColumnType::Float);
        assert_eq!(infer_type(["yes", "No"], &n), ColumnType::Boolean);
        assert_eq!(
            infer_type(["2020-01-01", "01/02/2020"], &n),
            ColumnType::Date
        );
        assert_eq!(
            infer_type(["2020-01-01", "2020-01-01T00:00:00"], &n),
            ColumnType::Datetime
        );
        assert_eq!(infer_type(["1", "x"], &n), ColumnType::String);
        assert_eq!(infer_type(["NA"], &n), ColumnType::String);
        assert_eq!(infer_type(["inf", "1"], &n), ColumnType::Float);
        // A few values in a hundred that fail a type leave it inferred (they
        // are mismatches); an exact fit wins over a near one.
        let mut dates: Vec<String> = (1..=28).map(|d| format!("2024-01-{d:02}")).collect();
        dates.extend((1..=28).map(|d| format!("2024-03-{d:02}")));
        dates.extend((1..=28).map(|d| format!("2024-05-{d:02}")));
        dates.extend((1..=28).map(|d| format!("2024-07-{d:02}")));
        dates.push("2024-02-30".into());
        assert_eq!(
            infer_type(dates.iter().map(String::as_str), &n),
            ColumnType::Date
        );
        let mut ints: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        ints.extend(["unknown".into(), "unknown".into(), "2.5".into()]);
        assert_eq!(
            infer_type(ints.iter().map(String::as_str), &n),
            ColumnType::Integer
        );
        let flags: Vec<&str> = (0..300).map(|i| ["0", "1", "2"][i % 3]).collect();
        assert_eq!(infer_type(flags, &n), ColumnType::Integer);
        let mixed: Vec<String> = (0..100)
            .map(|i| {
                if i % 10 == 0 {
                    "x".into()
                } else {
                    i.to_string()
                }
            })
            .collect();
        assert_eq!(
            infer_type(mixed.iter().map(String::as_str), &n),
            ColumnType::String
        );
        assert_eq!(n.classify(" n/a "), Missing::Token);
        assert_eq!(n.classify("  "), Missing::Empty);
        assert_eq!(n.classify("nano"), Missing::No);
    }

    #[test]
    fn null_tokens_match_in_one_case_or_as_given() {
        let n = NullTokens::default();
        for t in [
            "NA", "na", "Na", "N/A", "n/a", "NULL", "Null", "none", "NONE", "NaN", "NAN", "Nan",
            "?",
        ] {
            assert_eq!(n.classify(t), Missing::Token, "{t}");
        }
        // Mixed case is a typo of a word (a name such as Nan), not a marker.
        for t in ["nAn", "nA", "nuLL", "NoNe"] {
            assert_eq!(n.classify(t), Missing::No, "{t}");
        }
        // A token given in mixed case matches as given, and the set round-trips.
        let custom = NullTokens::new(["MiSsInG".to_string(), "x".to_string()]);
        assert_eq!(custom.classify("MiSsInG"), Missing::Token);
        assert_eq!(custom.classify("missing"), Missing::Token);
        assert_eq!(custom.classify("mIsSiNg"), Missing::No);
        let again = NullTokens::new(custom.spellings().map(str::to_string));
        assert_eq!(again.classify("MiSsInG"), Missing::Token);
        assert_eq!(again.classify("X"), Missing::Token);
    }

    proptest! {
        #[test]
        fn parse_int_matches_std(x in any::<i64>()) {
            prop_assert_eq!(parse_int(&x.to_string()), Some(x));
        }

        #[test]
        fn parse_int_never_panics(s in ".{0,24}") {
            let _ = parse_int(&s);
            let _ = parse_float(&s);
            let _ = parse_date(&s);
            let _ = parse_datetime(&s);
        }

        #[test]
        fn iso_dates_roundtrip(days in 0i64..80_000) {
            let d = NaiveDate::from_ymd_opt(1900, 1, 1).expect("date") + chrono::Duration::days(days);
            prop_assert_eq!(parse_date(&d.format("%Y-%m-%d").to_string()), Some((d, DateFormat::Iso)));
            prop_assert_eq!(parse_date(&d.format("%m/%d/%Y").to_string()).map(|x| x.0), Some(d));
        }
    }
}

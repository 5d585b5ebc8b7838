//! JSON Lines and JSON array reading, with nested objects flattened to dotted
//! column names and arrays kept as JSON text.
//!
//! A JSON array, or a stream of values, is split into its records by a small
//! scanner (strings and nesting tracked byte by byte) rather than parsed
//! whole, so a large input streams in bounded memory and one malformed record
//! is quarantined with its line instead of failing the file. `serde_json`
//! parses each record. (serde_json's `StreamDeserializer` stops at the first
//! error, and cannot step into an array's elements, hence the scanner.)

use std::collections::HashSet;
use std::fmt;
use std::io::BufRead;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One JSON record as flattened (name, text) pairs; `None` for JSON null.
pub type FlatRecord = Vec<(String, Option<String>)>;

/// A parsed record: an object's members in order, a repeated name
/// included, each value as its own JSON text (serde_json's `Map` keeps one
/// value per name, which would drop the other without a word, and `Value`
/// turns every number into an `i64`, `u64` or `f64`, which would write
/// `1e3` as `1000.0` and a 24-digit id as a different number).
enum Record<'a> {
    /// An object's members.
    Object(Vec<(String, &'a RawValue)>),
    /// Not an object: what it is instead.
    Other(&'static str),
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(m) = map.next_entry::<String, &'de RawValue>()? {
            members.push(m);
        }
        Ok(Record::Object(members))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Record::Other("an array"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Record<'de>, E> {
        Ok(Record::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Record<'de>, E> {
        Ok(Record::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Record<'de>, E> {
        Ok(Record::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Record<'de>, E> {
        Ok(Record::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Record<'de>, E> {
        Ok(Record::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<Record<'de>, E> {
        Ok(Record::Other("null"))
    }
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RecordVisitor)
    }
}

/// Where a scan of JSON text stands against strings: it knows only `"` and
/// `\` (the record scanner and [`compact`] both walk text this way).
#[derive(Default)]
struct Strings {
    in_str: bool,
    esc: bool,
}

impl Strings {
    /// Takes the next byte; whether it lies inside a string (its closing
    /// quote included, its opening quote not).
    #[inline]
    fn step(&mut self, c: u8) -> bool {
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if c == b'\\' {
                self.esc = true;
            } else if c == b'"' {
                self.in_str = false;
            }
            return true;
        }
        self.in_str = c == b'"';
        false
    }
}

/// JSON text without the whitespace between tokens (an array kept as a
/// column's text); strings, numbers and repeated keys are kept as written.
fn compact(text: &str) -> String {
    let mut strings = Strings::default();
    // A character beyond ASCII is neither `"` nor `\`: any such byte stands in.
    text.chars()
        .filter(|&c| {
            let byte = if c.is_ascii() { c as u8 } else { 0x80 };
            strings.step(byte) || !c.is_ascii_whitespace()
        })
        .collect()
}

/// Flattens an object's members: `{"a":{"b":1},"c":[1, 2]}` -> `a.b = "1"`,
/// `c = "[1,2]"`; an empty object is the text `{}`; numbers keep their text.
///
/// Fails, naming it, when two members come to the same column name: a
/// repeated key, or a dotted key beside the nested object that spells it
/// (`{"a.b":1,"a":{"b":2}}`). A row holds one value per column.
fn flatten(members: &[(String, &RawValue)]) -> Result<FlatRecord, String> {
    let mut out = Vec::with_capacity(members.len());
    flatten_into("", members, &mut out)?;
    if out.len() > 1 {
        let mut seen = HashSet::with_capacity(out.len());
        for (k, _) in &out {
            if !seen.insert(k.as_str()) {
                return Err(format!(
                    "the column name {k:?} is given twice in this record (a repeated key, \
                     or a dotted key beside the nested object of that name); \
                     a row holds one value per column"
                ));
            }
        }
    }
    Ok(out)
}

fn flatten_into(
    prefix: &str,
    members: &[(String, &RawValue)],
    out: &mut FlatRecord,
) -> Result<(), String> {
    for (k, v) in members {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let text = v.get();
        let value = match text.as_bytes().first() {
            Some(b'{') => match serde_json::from_str::<Record>(text) {
                Ok(Record::Object(m)) if !m.is_empty() => {
                    flatten_into(&name, &m, out)?;
                    continue;
                }
                _ => Some("{}".to_string()),
            },
            Some(b'[') => Some(compact(text)),
            Some(b'"') => Some(
                serde_json::from_str::<String>(text)
                    .map_err(|e| format!("invalid JSON string for {name:?}: {e}"))?,
            ),
            Some(b'n') => None,
            // true, false and numbers, as written.
            _ => Some(text.to_string()),
        };
        out.push((name, value));
    }
    Ok(())
}

/// A raw JSON record with where it starts.
pub struct RawRecord {
    /// 1-based line where the record starts.
    pub line: u64,
    /// 1-based column (in characters) where the record starts.
    pub column: u64,
    /// The record's bytes.
    pub bytes: Vec<u8>,
    /// A fault in the structure around the record, found while splitting
    /// (the record is malformed whatever its bytes parse to).
    pub problem: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the first value, or after an array's closing `]`.
    Start,
    /// Inside a JSON array: elements separated by commas.
    Array,
    /// JSON Lines, or JSON values one after another (`jq` output), each of
    /// which may span lines.
    Stream,
}

/// Splits a JSON Lines, concatenated JSON or JSON array stream into raw
/// records.
///
/// A record is one top-level value (one array element). Objects and arrays
/// end at their closing bracket, so a pretty-printed record spans lines and
/// two records on one line are two; other values end at a comma or `]` in an
/// array and at the end of the line outside one. Damage stays local: a string
/// cannot span lines in JSON, so one left open ends its record at the line's
/// end, and a line opening an object or array where the record so far cannot
/// take one (after a value, or where an object wants a key: a value may open
/// only after `:`, or after `[` or `,` inside an array) starts a new record,
/// the one before it being cut short. An array the file ends inside
/// is reported once, as a record with a problem.
pub struct JsonSplitter {
    input: Box<dyn BufRead + Send>,
    mode: Mode,
    /// Line and column of the next byte.
    line: u64,
    col: u64,
    finished: bool,
    /// In an array, a whole element has ended and no `,` has come since.
    after_element: bool,
}

impl JsonSplitter {
    /// Wraps a UTF-8 stream.
    pub fn new(input: Box<dyn BufRead + Send>) -> Self {
        JsonSplitter {
            input,
            mode: Mode::Start,
            line: 1,
            col: 1,
            finished: false,
            after_element: false,
        }
    }

    fn consume_one(&mut self, c: u8) {
        self.input.consume(1);
        advance(&mut self.line, &mut self.col, c);
    }

    /// The next byte that is not whitespace, not consumed; `None` at the end.
    fn peek_byte(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            let buf = self.input.fill_buf()?;
            let Some(&c) = buf.first() else {
                return Ok(None);
            };
            if c.is_ascii_whitespace() {
                self.consume_one(c);
                continue;
            }
            return Ok(Some(c));
        }
    }

    /// The next raw record, `None` at the end.
    pub fn next_raw(&mut self) -> std::io::Result<Option<RawRecord>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let Some(c) = self.peek_byte()? else {
                self.finished = true;
                if self.mode == Mode::Array {
                    return Ok(Some(RawRecord {
                        line: self.line,
                        column: self.col,
                        bytes: Vec::new(),
                        problem: Some(
                            "the file ends inside a JSON array, before its closing `]` (is it cut short?)"
                                .into(),
                        ),
                    }));
                }
                return Ok(None);
            };
            match (self.mode, c) {
                (Mode::Start, b'[') => {
                    self.consume_one(c);
                    self.mode = Mode::Array;
                    self.after_element = false;
                    continue;
                }
                (Mode::Start, _) => self.mode = Mode::Stream,
                (Mode::Array, b',') => {
                    self.consume_one(c);
                    self.after_element = false;
                    continue;
                }
                // What follows an array (another array, or values) is read too.
                (Mode::Array, b']') => {
                    self.consume_one(c);
                    self.mode = Mode::Start;
                    continue;
                }
                // Commas between top-level values hold no data.
                (Mode::Stream, b',') => {
                    self.consume_one(c);
                    continue;
                }
                _ => {}
            }
            let in_array = self.mode == Mode::Array;
            let missing_comma = in_array && self.after_element;
            let mut rec = self.scan(in_array)?;
            // An element cut short is why the next one lacks its comma.
            self.after_element = in_array && rec.problem.is_none();
            if missing_comma && rec.problem.is_none() {
                rec.problem = Some("missing `,` before this element of the JSON array".into());
            }
            return Ok(Some(rec));
        }
    }

    /// Scans one value from the next (non-whitespace) byte.
    fn scan(&mut self, in_array: bool) -> std::io::Result<RawRecord> {
        let (line, column) = (self.line, self.col);
        let mut bytes = Vec::new();
        // The open brackets, innermost last.
        let mut open: Vec<u8> = Vec::new();
        let mut strings = Strings::default();
        let mut container = false;
        // The last byte outside strings that is not whitespace.
        let mut prev = 0u8;
        // Only whitespace since the last newline.
        let mut line_start = false;
        let mut problem = None;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                // A record the end of the file cuts is itself the report
                // (it does not parse): nothing more is read.
                if !open.is_empty() || strings.in_str {
                    self.finished = true;
                }
                break;
            }
            let mut used = 0;
            let mut done = false;
            for &c in buf {
                if bytes.is_empty() {
                    container = c == b'{' || c == b'[';
                }
                if strings.in_str && c == b'\n' {
                    problem = Some("a string is not closed on its line".to_string());
                    done = true;
                    break;
                }
                if !strings.in_str {
                    let scalar_end = if in_array {
                        c == b',' || c == b']'
                    } else {
                        c == b'\n'
                    };
                    if !container && open.is_empty() && scalar_end && !bytes.is_empty() {
                        done = true;
                        break;
                    }
                    // A value may open after `:`, or after `[` or `,` in an
                    // array; not after a value, nor where an object wants a key.
                    let value_may_open =
                        prev == b':' || (matches!(prev, b'[' | b',') && open.last() == Some(&b'['));
                    if line_start && !open.is_empty() && (c == b'{' || c == b'[') && !value_may_open
                    {
                        problem = Some(format!(
                            "cut short: line {} starts a new record before this one is closed",
                            self.line
                        ));
                        done = true;
                        break;
                    }
                }
                used += 1;
                bytes.push(c);
                if c == b'\n' {
                    line_start = true;
                } else if !c.is_ascii_whitespace() {
                    line_start = false;
                }
                advance(&mut self.line, &mut self.col, c);
                if strings.step(c) {
                    continue;
                }
                match c {
                    b'{' | b'[' => open.push(c),
                    b'}' | b']' => match open.last() {
                        // A stray closing bracket ends the (bad) record.
                        None => done = true,
                        Some(&o) if (o == b'{') == (c == b'}') => {
                            open.pop();
                            done = container && open.is_empty();
                        }
                        // The wrong kind: the record is malformed (the parse
                        // says so), and its own closing bracket still ends it.
                        Some(_) => {}
                    },
                    _ => {}
                }
                if !c.is_ascii_whitespace() {
                    prev = c;
                }
                if done {
                    break;
                }
            }
            self.input.consume(used);
            if done {
                break;
            }
        }
        while bytes.last().is_some_and(|c| c.is_ascii_whitespace()) {
            bytes.pop();
        }
        Ok(RawRecord {
            line,
            column,
            bytes,
            problem,
        })
    }
}

/// Moves a line and column past the byte `c`.
fn advance(line: &mut u64, col: &mut u64, c: u8) {
    if c == b'\n' {
        *line += 1;
        *col = 1;
    } else if c & 0xC0 != 0x80 {
        // Columns count characters: a UTF-8 continuation byte adds none.
        *col += 1;
    }
}

/// A malformed record: why, and the line and column (1-based, in the file) where.
pub type RecordFault = (String, u64, u64);

/// Parses a raw record into a flat record, or why it is malformed and where.
pub fn parse_record(raw: &RawRecord) -> Result<FlatRecord, RecordFault> {
    if let Some(p) = &raw.problem {
        return Err((p.clone(), raw.line, raw.column));
    }
    match serde_json::from_slice::<Record>(&raw.bytes) {
        Ok(Record::Object(m)) => flatten(&m).map_err(|why| (why, raw.line, raw.column)),
        Ok(Record::Other(kind)) => Err((
            format!("not a JSON object: found {kind}"),
            raw.line,
            raw.column,
        )),
        Err(e) => {
            // serde_json places the fault within the record, by line and byte
            // column; the file's line and (character) column follow from the
            // record's start.
            let l = e.line().max(1);
            let in_line = raw
                .bytes
                .split(|b| *b == b'\n')
                .nth(l - 1)
                .unwrap_or_default();
            let col = crate::csv::char_column(in_line, e.column().max(1) - 1);
            let at = if l == 1 {
                (raw.line, raw.column + col - 1)
            } else {
                (raw.line + l as u64 - 1, col)
            };
            let text = e.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text);
            Err((format!("invalid JSON: {message}"), at.0, at.1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<RawRecord> {
        let mut s = JsonSplitter::new(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())));
        let mut out = vec![];
        while let Some(r) = s.next_raw().expect("io") {
            out.push(r);
        }
        out
    }

    fn split(text: &str) -> Vec<(u64, String)> {
        records(text)
            .into_iter()
            .map(|r| (r.line, String::from_utf8(r.bytes).expect("utf8")))
            .collect()
    }

    /// Each record's outcome: its flat record as `k=v` pairs, or the fault
    /// with its position.
    fn outcomes(text: &str) -> Vec<String> {
        records(text)
            .iter()
            .map(|r| match parse_record(r) {
                Ok(flat) => flat
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
                    .collect::<Vec<_>>()
                    .join(" "),
                Err((why, line, col)) => format!("{line}:{col} {why}"),
            })
            .collect()
    }

    #[test]
    fn pretty_printed_values_one_after_another_are_records() {
        // `jq '.[]'` writes this: objects spanning lines, no commas.
        let text =
            "{\n  \"a\": 1,\n  \"b\": {\"c\": \"x\"}\n}\n{\n  \"a\": 2\n}\n{\"a\": 3} {\"a\": 4}\n";
        assert_eq!(outcomes(text), ["a=1 b.c=x", "a=2", "a=3", "a=4"]);
        assert_eq!(
            split(text).iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 5, 8, 8]
        );
    }

    #[test]
    fn a_cut_record_loses_only_itself() {
        // A JSON Lines record cut short, then whole ones.
        assert_eq!(
            outcomes("{\"a\": 1\n{\"a\": 2}\n{\"a\": \"open\n{\"a\": 4}\n"),
            [
                "1:1 cut short: line 2 starts a new record before this one is closed",
                "a=2",
                "3:1 a string is not closed on its line",
                "a=4"
            ]
        );
        // Inside an array, the next element is not blamed for the missing comma.
        assert_eq!(
            outcomes("[\n {\"a\": 1},\n {\"a\": 2\n {\"a\": 3}\n]"),
            [
                "a=1",
                "3:2 cut short: line 4 starts a new record before this one is closed",
                "a=3"
            ]
        );
        // A stray closing bracket is one bad record, not the rest of the file.
        assert_eq!(
            outcomes("}\n{\"a\": 1}\n"),
            ["1:1 invalid JSON: expected value", "a=1"]
        );
        // Cut after a comma, where an object wants a key: the next line is
        // the next record; a mismatched bracket is one bad record, not two.
        assert_eq!(
            outcomes("{\"a\": 1,\n{\"a\": 2}\n{\"a\":1]}\n{\"a\": 3}\n"),
            [
                "1:1 cut short: line 2 starts a new record before this one is closed",
                "a=2",
                "3:7 invalid JSON: expected `,` or `}`",
                "a=3"
            ]
        );
        assert_eq!(
            outcomes("[\n{\"a\": 1,\n{\"a\": 2},\n{\"a\": 3}\n]"),
            [
                "2:1 cut short: line 3 starts a new record before this one is closed",
                "a=2",
                "a=3"
            ]
        );
        // An array of objects inside a record, one per line, is not a cut.
        assert_eq!(
            outcomes("{\"xs\": [\n{\"b\": 1},\n{\"b\": 2}\n]}\n"),
            ["xs=[{\"b\":1},{\"b\":2}]"]
        );
    }

    #[test]
    fn array_faults_are_reported_where_they_are() {
        // Not closed: the records read are kept, and the cut is reported.
        assert_eq!(
            outcomes("[{\"a\": 1},\n {\"a\": 2}\n"),
            [
                "a=1",
                "a=2",
                "3:1 the file ends inside a JSON array, before its closing `]` (is it cut short?)"
            ]
        );
        // An element cut by the end of the file is itself the report.
        assert_eq!(
            outcomes("[{\"a\": 1}, {\"a\": 2"),
            ["a=1", "1:18 invalid JSON: EOF while parsing an object"]
        );
        // A missing comma blames the element after it, which is kept whole.
        let out = outcomes("[{\"a\": 1} {\"a\": 2}, {\"a\": 3}]");
        assert_eq!(
            out,
            [
                "a=1",
                "1:11 missing `,` before this element of the JSON array",
                "a=3"
            ]
        );
        // Content after the closing bracket is read, not dropped.
        assert_eq!(
            outcomes("[{\"a\": 1}]\n[{\"a\": 2}] x\n{\"a\": 3}"),
            ["a=1", "a=2", "2:12 invalid JSON: expected value", "a=3"]
        );
    }

    #[test]
    fn faults_are_placed_by_file_line_and_character_column() {
        // The second line of a record, after a two-byte character.
        assert_eq!(
            outcomes("[\n {\"é\": 1,\n  \"b\": tru}\n]"),
            ["3:11 invalid JSON: expected ident"]
        );
        assert_eq!(
            outcomes("  {\"é\": 1 x}"),
            ["1:11 invalid JSON: expected `,` or `}`"]
        );
        assert_eq!(
            outcomes("[1, {\"a\": 1}]")[0],
            "1:2 not a JSON object: found a number"
        );
    }

    #[test]
    fn splits_lines_and_arrays() {
        assert_eq!(
            split("{\"a\":1}\n\n{\"a\":2}\n"),
            vec![(1, "{\"a\":1}".into()), (3, "{\"a\":2}".into())]
        );
        assert_eq!(
            split("[\n {\"a\":\"x,]\"},\n {\"b\":[1,2]}\n]"),
            vec![(2, "{\"a\":\"x,]\"}".into()), (3, "{\"b\":[1,2]}".into())]
        );
    }

    #[test]
    fn flattens_nested_objects() {
        assert_eq!(
            outcomes(
                r#"{"a":{"b":1,"c":{"d":null}},"e":[1, {"f":2,"f":" x "}],"g":"s\"","h":{},"i":1.5e3,"j":123456789012345678901234,"k":true}"#
            ),
            [
                // Arrays are compact JSON text, a repeated key within kept;
                // numbers keep their text: no digit is lost, none is added.
                r#"a.b=1 a.c.d=null e=[1,{"f":2,"f":" x "}] g=s" h={} i=1.5e3 j=123456789012345678901234 k=true"#
            ]
        );
    }

    #[test]
    fn a_column_named_twice_in_a_record_is_a_fault_not_a_lost_value() {
        let out = outcomes(
            "{\"a\": 1, \"a\": 2}\n{\"a.b\": 1, \"a\": {\"b\": 2}}\n{\"a.b\": 3}\n{\"a\": {\"b\": 4}}\n",
        );
        assert!(
            out[0].starts_with("1:1 the column name \"a\" is given twice"),
            "{out:?}"
        );
        assert!(
            out[1].starts_with("2:1 the column name \"a.b\" is given twice"),
            "{out:?}"
        );
        // A dotted key and a nested object in different records are one column.
        assert_eq!(out[2..], ["a.b=3", "a.b=4"]);
    }
}

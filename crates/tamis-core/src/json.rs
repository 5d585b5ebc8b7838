//! JSON Lines and JSON array reading, with nested objects flattened to dotted
//! column names and arrays kept as JSON text.
//!
//! A JSON array is split into its elements by a small scanner (strings and
//! nesting tracked byte by byte) rather than parsed whole, so a large array
//! streams in bounded memory and one malformed element is quarantined with
//! its line instead of failing the file. `serde_json` parses each element.

use std::io::BufRead;

use serde_json::{Map, Value};

/// One JSON record as flattened (name, text) pairs; `None` for JSON null.
pub type FlatRecord = Vec<(String, Option<String>)>;

/// Flattens an object: `{"a":{"b":1},"c":[1,2]}` -> `a.b = "1"`, `c = "[1,2]"`.
pub fn flatten(obj: &Map<String, Value>) -> FlatRecord {
    let mut out = Vec::with_capacity(obj.len());
    flatten_into("", obj, &mut out);
    out
}

fn flatten_into(prefix: &str, obj: &Map<String, Value>, out: &mut FlatRecord) {
    for (k, v) in obj {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(m) if !m.is_empty() => flatten_into(&name, m, out),
            Value::Null => out.push((name, None)),
            Value::String(s) => out.push((name, Some(s.clone()))),
            Value::Bool(b) => out.push((name, Some(b.to_string()))),
            Value::Number(n) => out.push((name, Some(n.to_string()))),
            other => out.push((name, Some(other.to_string()))),
        }
    }
}

/// A raw JSON record with its starting line.
pub struct RawRecord {
    /// 1-based line where the record starts.
    pub line: u64,
    /// The record's bytes.
    pub bytes: Vec<u8>,
}

/// Splits a JSON Lines or JSON array stream into raw records.
pub struct JsonSplitter {
    input: Box<dyn BufRead + Send>,
    array: Option<bool>,
    line: u64,
    finished: bool,
}

impl JsonSplitter {
    /// Wraps a UTF-8 stream.
    pub fn new(input: Box<dyn BufRead + Send>) -> Self {
        JsonSplitter {
            input,
            array: None,
            line: 1,
            finished: false,
        }
    }

    fn peek_byte(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            let buf = self.input.fill_buf()?;
            let Some(&c) = buf.first() else {
                return Ok(None);
            };
            if c.is_ascii_whitespace() {
                if c == b'\n' {
                    self.line += 1;
                }
                self.input.consume(1);
                continue;
            }
            return Ok(Some(c));
        }
    }

    /// The next raw record, `None` at the end.
    pub fn next_raw(&mut self) -> std::io::Result<Option<RawRecord>> {
        if self.finished {
            return Ok(None);
        }
        if self.array.is_none() {
            let first = self.peek_byte()?;
            self.array = Some(first == Some(b'['));
            if first == Some(b'[') {
                self.input.consume(1);
            }
        }
        if self.array == Some(false) {
            // JSON Lines: one record per non-blank line.
            loop {
                let mut bytes = Vec::new();
                let n = self.input.read_until(b'\n', &mut bytes)?;
                if n == 0 {
                    self.finished = true;
                    return Ok(None);
                }
                let line = self.line;
                self.line += 1;
                if bytes.iter().all(|c| c.is_ascii_whitespace()) {
                    continue;
                }
                while bytes.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    bytes.pop();
                }
                return Ok(Some(RawRecord { line, bytes }));
            }
        }
        // JSON array: skip separators, then scan one element.
        loop {
            match self.peek_byte()? {
                None => {
                    self.finished = true;
                    return Ok(None);
                }
                Some(b',') => self.input.consume(1),
                Some(b']') => {
                    self.input.consume(1);
                    self.finished = true;
                    return Ok(None);
                }
                Some(_) => break,
            }
        }
        let line = self.line;
        let mut bytes = Vec::new();
        let (mut depth, mut in_str, mut esc) = (0i64, false, false);
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                self.finished = true;
                break;
            }
            let mut used = 0;
            let mut done = false;
            for &c in buf {
                if depth == 0 && !in_str && (c == b',' || c == b']') && !bytes.is_empty() {
                    done = true;
                    break;
                }
                used += 1;
                bytes.push(c);
                if c == b'\n' {
                    self.line += 1;
                }
                if in_str {
                    if esc {
                        esc = false;
                    } else if c == b'\\' {
                        esc = true;
                    } else if c == b'"' {
                        in_str = false;
                    }
                } else if c == b'"' {
                    in_str = true;
                } else if c == b'{' || c == b'[' {
                    depth += 1;
                } else if c == b'}' || c == b']' {
                    depth -= 1;
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
        Ok(Some(RawRecord { line, bytes }))
    }
}

/// Parses a raw record into a flat record, or a reason it is malformed.
pub fn parse_record(raw: &RawRecord) -> Result<FlatRecord, (String, u64)> {
    match serde_json::from_slice::<Value>(&raw.bytes) {
        Ok(Value::Object(m)) => Ok(flatten(&m)),
        Ok(other) => Err((format!("not a JSON object: found {}", kind(&other)), 1)),
        Err(e) => Err((format!("invalid JSON: {e}"), e.column() as u64)),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(u64, String)> {
        let mut s = JsonSplitter::new(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())));
        let mut out = vec![];
        while let Some(r) = s.next_raw().expect("io") {
            out.push((r.line, String::from_utf8(r.bytes).expect("utf8")));
        }
        out
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
        let v: Value =
            serde_json::from_str(r#"{"a":{"b":1,"c":{"d":null}},"e":[1,{"f":2}],"g":"s"}"#)
                .expect("json");
        let Value::Object(m) = v else { panic!() };
        let f = flatten(&m);
        assert_eq!(
            f,
            vec![
                ("a.b".into(), Some("1".into())),
                ("a.c.d".into(), None),
                ("e".into(), Some("[1,{\"f\":2}]".into())),
                ("g".into(), Some("s".into())),
            ]
        );
    }
}

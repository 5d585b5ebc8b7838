//! CSV/TSV/any-delimiter reading: dialect sniffing and a streaming reader
//! that turns records into Arrow batches of text columns.
//!
//! `csv-core` runs the field state machine. Around it this module keeps each
//! record's raw bytes and starting line, which `csv-core` does not, because a
//! malformed row must be quarantined with its exact text and position, and
//! because an unterminated quote must not swallow the rest of the file: when
//! a record that spans several lines is malformed (wrong field count or an
//! odd number of quotes), only its first line is quarantined and parsing
//! restarts on the next line.
//!
//! Empty fields read as null (quoted empty fields too: `csv-core` does not
//! tell them apart).

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use csv_core::{ReadRecordResult, ReaderBuilder};
use datafusion::arrow::array::{ArrayRef, UInt64Array, UInt64Builder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::error::{CoreError, Result};
use crate::quarantine::{Quarantine, QuarantinedRow};
use crate::swar;
use crate::types::{ColumnType, NullTokens, infer_type};

/// A record may not grow past this many bytes; beyond it an open quote is
/// taken to be unterminated. Large enough for a legitimate multi-megabyte field.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
const READ_CHUNK: usize = 1 << 20;

/// How a delimited text file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvDialect {
    /// Field delimiter byte.
    pub delimiter: u8,
    /// Quote byte.
    pub quote: u8,
    /// Whether the first record is a header.
    pub has_header: bool,
}

impl Default for CsvDialect {
    fn default() -> Self {
        CsvDialect {
            delimiter: b',',
            quote: b'"',
            has_header: true,
        }
    }
}

fn parse_records(
    sample: &[u8],
    delimiter: u8,
    quote: u8,
    max: usize,
    complete_only: bool,
) -> Vec<Vec<String>> {
    let mut rdr = ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .build();
    let mut out = vec![0u8; sample.len() + 1024];
    let mut ends = vec![0usize; 4096];
    // A record may need several calls (more room for fields or ends); csv_core
    // reports end positions from the start of the record across them.
    let (mut outpos, mut endpos) = (0usize, 0usize);
    let mut recs = Vec::new();
    let mut input = sample;
    let mut eof_sent = false;
    loop {
        let (res, nin, nout, nend) =
            rdr.read_record(input, &mut out[outpos..], &mut ends[endpos..]);
        input = &input[nin..];
        outpos += nout;
        endpos += nend;
        match res {
            ReadRecordResult::Record => {
                let mut fields = Vec::with_capacity(endpos);
                let mut start = 0;
                for &e in &ends[..endpos] {
                    fields.push(String::from_utf8_lossy(&out[start..e]).into_owned());
                    start = e;
                }
                (outpos, endpos) = (0, 0);
                recs.push(fields);
                if recs.len() >= max {
                    break;
                }
            }
            ReadRecordResult::InputEmpty => {
                if eof_sent {
                    break;
                }
                if complete_only {
                    // The sample may end mid-record: drop that partial record.
                    break;
                }
                eof_sent = true;
                input = &[];
            }
            ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
            ReadRecordResult::End => break,
        }
    }
    recs
}

/// Guesses the dialect from the first bytes of a file (already UTF-8).
///
/// The delimiter is the candidate (`,` `\t` `;` `|` `:`) whose records most
/// consistently have the same number (> 1) of fields. The first record is a
/// header unless one of its fields is a number, date or boolean in a column
/// whose other values are of that kind too.
pub fn sniff(sample: &[u8], at_eof: bool) -> CsvDialect {
    let quote = b'"';
    let mut best: Option<(u8, usize, usize)> = None; // (delim, consistent records, fields)
    for d in [b',', b'\t', b';', b'|', b':'] {
        let recs = parse_records(sample, d, quote, 200, !at_eof);
        if recs.is_empty() {
            continue;
        }
        let mut counts = std::collections::HashMap::new();
        for r in &recs {
            *counts.entry(r.len()).or_insert(0usize) += 1;
        }
        let (&fields, &n) = counts
            .iter()
            .max_by_key(|(f, n)| (**n, **f))
            .unwrap_or((&1, &0));
        if fields <= 1 {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, bn, bf)) => n > bn || (n == bn && fields > bf),
        };
        if better {
            best = Some((d, n, fields));
        }
    }
    let delimiter = best.map(|b| b.0).unwrap_or(b',');
    let recs = parse_records(sample, delimiter, quote, 200, !at_eof);
    CsvDialect {
        delimiter,
        quote,
        has_header: looks_like_header(&recs),
    }
}

/// Decides whether the first record is a header, for a known dialect.
pub fn sniff_header_with(sample: &[u8], d: CsvDialect, at_eof: bool) -> bool {
    looks_like_header(&parse_records(sample, d.delimiter, d.quote, 200, !at_eof))
}

fn looks_like_header(recs: &[Vec<String>]) -> bool {
    let Some(first) = recs.first() else {
        return true;
    };
    if recs.len() < 2 {
        return true;
    }
    let nulls = NullTokens::default();
    // A header cell is text; a first row with a typed value in a typed column is data.
    !first.iter().enumerate().any(|(i, h)| {
        let head_type = infer_type([h.as_str()], &nulls);
        if head_type == ColumnType::String || h.trim().is_empty() {
            return false;
        }
        let body = recs[1..]
            .iter()
            .filter_map(|r| r.get(i).map(|s| s.as_str()));
        let body_type = infer_type(body, &nulls);
        body_type != ColumnType::String && body_type.widen(head_type) != ColumnType::String
    })
}

/// Makes column names unique and non-empty: an empty name becomes
/// `column_N` (1-based position), a repeated one gets `_2`, `_3`, ...
pub fn unique_names(raw: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, n) in raw.iter().enumerate() {
        let base = if n.trim().is_empty() {
            format!("column_{}", i + 1)
        } else {
            n.trim().to_string()
        };
        let mut name = base.clone();
        let mut k = 2;
        while !seen.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        out.push(name);
    }
    out
}

/// Streams one CSV file as batches of text columns plus a row-id column.
pub struct CsvBatchReader {
    input: Box<dyn BufRead + Send>,
    file: String,
    dialect: CsvDialect,
    core: csv_core::Reader,
    schema: SchemaRef,
    ncols: usize,
    utf8_checked: bool,
    /// `buf[..valid_to]` is known to be UTF-8 (checked a read at a time): a
    /// record within it needs no check of its own.
    valid_to: usize,
    buf: Vec<u8>,
    pos: usize,
    rec_start: usize,
    eof: bool,
    eof_sent: bool,
    out: Vec<u8>,
    outlen: usize,
    ends: Vec<usize>,
    nends: usize,
    /// 1-based line number at `rec_start`.
    line: u64,
    next_row_id: u64,
    batch_size: usize,
    limit: Option<u64>,
    quarantine: Arc<Quarantine>,
    strict: bool,
    done: bool,
    bytes_read: Arc<AtomicU64>,
    /// Newlines inside the last record read (quoted ones; 0 for most records).
    inner_newlines: u64,
    /// When the last record took the one-line fast path: where its line is in
    /// `buf` (without the line end); its fields are then `spans` within it.
    fast_line: Option<std::ops::Range<usize>>,
    spans: Vec<(usize, usize)>,
    /// Bytes each column held in the last batch: the next batch's buffers
    /// are sized from them rather than grown (and copied) as fields arrive.
    col_bytes: Vec<usize>,
    /// What the fast path looks for: see [`split_simple`].
    splitter: Splitter,
    fast: bool,
    /// Whether batches carry [`crate::ROW_HASH`] (the schema ends with it).
    hashes: bool,
    /// Room to join a record's fields for [`text_row_hash`].
    scratch: Vec<u8>,
}

/// What the reader needs to know besides the bytes.
pub struct CsvReaderConfig {
    /// Display name of the file, for errors and quarantine.
    pub file: String,
    /// The dialect.
    pub dialect: CsvDialect,
    /// Output schema: the text columns, the row-id column, then optionally
    /// the row-hash column ([`crate::ROW_HASH`], see [`text_row_hash`]).
    pub schema: SchemaRef,
    /// Whether the bytes are raw UTF-8 that still needs checking (false for transcoded input).
    pub check_utf8: bool,
    /// Row id of the first data row.
    pub first_row_id: u64,
    /// Rows per batch.
    pub batch_size: usize,
    /// Stop after this many data rows (counting quarantined ones).
    pub limit: Option<u64>,
    /// Where malformed rows go.
    pub quarantine: Arc<Quarantine>,
    /// Fail on the first malformed row instead.
    pub strict: bool,
    /// Counter of decoded bytes consumed, for progress.
    pub bytes_read: Arc<AtomicU64>,
}

impl CsvBatchReader {
    /// Creates a reader. When the dialect has a header, the header record is
    /// read and skipped here (its names are already in the schema).
    pub fn new(input: Box<dyn BufRead + Send>, cfg: CsvReaderConfig) -> Result<Self> {
        Self::build(input, cfg, true)
    }

    /// [`CsvBatchReader::new`], with the one-line fast path on or off (off
    /// only in tests, to check it gives what csv-core alone gives).
    fn build(input: Box<dyn BufRead + Send>, cfg: CsvReaderConfig, fast: bool) -> Result<Self> {
        let hashes = cfg
            .schema
            .fields()
            .last()
            .is_some_and(|f| f.name() == crate::ROW_HASH);
        let ncols = cfg.schema.fields().len() - 1 - hashes as usize;
        let mut r = CsvBatchReader {
            input,
            file: cfg.file,
            dialect: cfg.dialect,
            core: ReaderBuilder::new()
                .delimiter(cfg.dialect.delimiter)
                .quote(cfg.dialect.quote)
                .build(),
            schema: cfg.schema,
            ncols,
            utf8_checked: cfg.check_utf8,
            valid_to: 0,
            buf: Vec::with_capacity(READ_CHUNK * 2),
            pos: 0,
            rec_start: 0,
            eof: false,
            eof_sent: false,
            out: vec![0; 64 * 1024],
            outlen: 0,
            ends: vec![0; ncols.max(16) * 2],
            nends: 0,
            line: 1,
            next_row_id: cfg.first_row_id,
            batch_size: cfg.batch_size.max(1),
            limit: cfg.limit,
            quarantine: cfg.quarantine,
            strict: cfg.strict,
            done: false,
            bytes_read: cfg.bytes_read,
            inner_newlines: 0,
            fast_line: None,
            spans: Vec::with_capacity(ncols.max(16)),
            col_bytes: vec![0; ncols],
            splitter: Splitter::new(cfg.dialect),
            // The fast path splits a line at delimiters and reads quotes one
            // way; a delimiter that is itself a quote or a line end is left
            // to csv-core, whose state machine settles what it means.
            fast: fast
                && !matches!(cfg.dialect.delimiter, b'\n' | b'\r')
                && cfg.dialect.delimiter != cfg.dialect.quote,
            hashes,
            scratch: Vec::new(),
        };
        if r.dialect.has_header {
            // The header is not a data row: it gets no row id.
            let _ = r.next_record()?;
        }
        Ok(r)
    }

    fn refill(&mut self) -> Result<()> {
        if self.rec_start > 0 {
            self.buf.drain(..self.rec_start);
            self.pos -= self.rec_start;
            self.valid_to = self.valid_to.saturating_sub(self.rec_start);
            self.rec_start = 0;
        }
        if self.buf.len() - self.rec_start > MAX_RECORD_BYTES {
            return Ok(()); // caller handles the oversized record
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let n = loop {
            match self.input.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    self.buf.truncate(old);
                    return Err(CoreError::Read {
                        file: self.file.clone(),
                        line: self.line,
                        source,
                    });
                }
            }
        };
        self.buf.truncate(old + n);
        if self.utf8_checked {
            // From where the last check stopped (a character boundary: the
            // end of a read's last whole character, or the buffer's start,
            // a record's start) to the end. A character cut by the end of a
            // read, or a bad byte, ends the checked part; records past it are
            // checked one by one, until the next read checks on from there.
            let from = self.valid_to.min(old);
            let rest = &self.buf[from..];
            self.valid_to = from
                + match simdutf8::compat::from_utf8(rest) {
                    Ok(_) => rest.len(),
                    Err(e) => e.valid_up_to(),
                };
        }
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }

    /// Reads the next raw record: `Some((start_line, raw_range, field count))`
    /// with fields in `self.out[..self.outlen]` / `self.ends[..nends]`.
    fn next_record(&mut self) -> Result<Option<(u64, std::ops::Range<usize>)>> {
        self.fast_line = None;
        if self.fast
            && self.pos == self.rec_start
            && let Some(r) = self.fast_record()
        {
            return Ok(Some(r));
        }
        loop {
            if self.pos == self.buf.len() && !self.eof {
                self.refill()?;
                if self.buf.len() - self.rec_start > MAX_RECORD_BYTES && self.pos == self.buf.len()
                {
                    // An open quote ran past any sane field size: unterminated.
                    return Ok(Some(self.oversized()));
                }
            }
            let input: &[u8] = if self.eof && self.pos == self.buf.len() {
                if self.eof_sent {
                    return Ok(None);
                }
                &[]
            } else {
                &self.buf[self.pos..]
            };
            let at_eof = input.is_empty();
            let (res, nin, nout, nend) = self.core.read_record(
                input,
                &mut self.out[self.outlen..],
                &mut self.ends[self.nends..],
            );
            self.pos += nin;
            self.outlen += nout;
            self.nends += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if at_eof {
                        self.eof_sent = true;
                    }
                }
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    if at_eof {
                        self.eof_sent = true;
                    }
                    let raw = self.rec_start..self.pos;
                    let bytes = &self.buf[raw.clone()];
                    let is_nl = |c: &&u8| **c == b'\n' || **c == b'\r';
                    let lead = bytes.iter().take_while(is_nl).count();
                    let count = |b: &[u8]| memchr::memchr_iter(b'\n', b).count() as u64;
                    let newlines = count(bytes);
                    let lead_lines = if lead == 0 { 0 } else { count(&bytes[..lead]) };
                    let trailing = bytes[lead..]
                        .iter()
                        .rev()
                        .take_while(is_nl)
                        .filter(|c| **c == b'\n')
                        .count() as u64;
                    // Newlines inside the record: only quoted fields hold them.
                    self.inner_newlines = newlines - lead_lines - trailing;
                    let start_line = self.line + lead_lines;
                    self.line += newlines;
                    self.rec_start = self.pos;
                    return Ok(Some((start_line, raw.start + lead..raw.end)));
                }
                ReadRecordResult::End => {
                    self.eof_sent = true;
                    return Ok(None);
                }
            }
        }
    }

    /// The next record when it is one whole line in the buffer with only
    /// plain fields (see [`split_simple`]): `csv-core` would give the same
    /// fields, so it is skipped (it steps through every byte; this scans a
    /// line at a time). `None` leaves the record to `csv-core`, which must be
    /// at a record start: nothing of the record has been fed to it.
    fn fast_record(&mut self) -> Option<(u64, std::ops::Range<usize>)> {
        let s = &self.buf[self.pos..];
        // Blank lines before a record are skipped, as csv-core does.
        let lead = s.iter().take_while(|&&c| c == b'\n' || c == b'\r').count();
        let body = &s[lead..];
        let (nl, len) = match split_line(body, &self.splitter, &mut self.spans) {
            Some(ends) => ends,
            None => {
                let nl = memchr::memchr(b'\n', body)?;
                let len = if nl > 0 && body[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                if !split_simple(&body[..len], &self.splitter, &mut self.spans) {
                    return None;
                }
                (nl, len)
            }
        };
        let lead_lines = memchr::memchr_iter(b'\n', &s[..lead]).count() as u64;
        let start_line = self.line + lead_lines;
        let start = self.pos + lead;
        let end = start + nl + 1;
        self.line = start_line + 1;
        self.pos = end;
        self.rec_start = end;
        self.inner_newlines = 0;
        self.fast_line = Some(start..start + len);
        Some((start_line, start..end))
    }

    /// The current record exceeded [`MAX_RECORD_BYTES`]: returns its first line
    /// as the record and restarts parsing after it.
    fn oversized(&mut self) -> (u64, std::ops::Range<usize>) {
        let start = self.rec_start;
        let lead = self.buf[start..]
            .iter()
            .take_while(|&&c| c == b'\n' || c == b'\r')
            .count();
        let first_line_end = memchr::memchr(b'\n', &self.buf[start + lead..])
            .map(|i| start + lead + i + 1)
            .unwrap_or(self.buf.len());
        let line =
            self.line + memchr::memchr_iter(b'\n', &self.buf[start..start + lead]).count() as u64;
        self.restart_at(first_line_end, line + 1);
        // Poison the field count so the caller quarantines it.
        self.nends = usize::MAX;
        (line, start + lead..first_line_end)
    }

    fn restart_at(&mut self, pos: usize, line: u64) {
        self.core.reset();
        self.pos = pos;
        self.rec_start = pos;
        self.line = line;
        self.outlen = 0;
        self.nends = 0;
        self.eof_sent = false;
    }

    fn quarantine_row(&mut self, line: u64, raw: &[u8], reason: String, column: u64) -> Result<()> {
        let text = String::from_utf8_lossy(trim_newline(raw)).into_owned();
        if self.strict {
            return Err(CoreError::Malformed {
                file: self.file.clone(),
                line,
                column,
                reason: format!(
                    "{reason} (run without --strict to quarantine such rows and go on)"
                ),
            });
        }
        self.quarantine.push(QuarantinedRow {
            file: self.file.clone(),
            line,
            row_id: self.next_row_id,
            reason,
            raw: text,
        })
    }

    /// Reads up to one batch. `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        let rows_cap = self.batch_size;
        let mut cols: Vec<TextColumn> = self
            .col_bytes
            .iter()
            .map(|&last| {
                let bytes = if last == 0 {
                    rows_cap * 8
                } else {
                    last + last / 8 + 64
                };
                TextColumn::with_capacity(rows_cap, bytes.min(TextColumn::FULL))
            })
            .collect();
        let mut ids = UInt64Builder::with_capacity(self.batch_size);
        let mut hashes = Vec::with_capacity(if self.hashes { self.batch_size } else { 0 });
        let mut rows = 0;
        // Bytes of the records taken: no column holds more (a field is a
        // part of its record, or shorter once its quotes are undone).
        let mut batch_bytes = 0usize;
        while rows < self.batch_size {
            // A batch ends early before any column could pass i32 offsets.
            if batch_bytes > TextColumn::FULL {
                break;
            }
            if let Some(limit) = self.limit
                && self.next_row_id >= limit
            {
                self.done = true;
                break;
            }
            self.outlen = 0;
            self.nends = 0;
            let Some((line, raw)) = self.next_record()? else {
                self.done = true;
                break;
            };
            let nfields = match self.fast_line {
                Some(_) => self.spans.len(),
                None => self.nends,
            };
            // Copy out what we need from self.buf before any restart moves it.
            let raw_bytes = &self.buf[raw.clone()];
            let multi_line = self.inner_newlines > 0;
            if nfields == usize::MAX {
                let raw_owned = raw_bytes.to_vec();
                let col = quote_column(&raw_owned, self.dialect);
                self.quarantine_row(line, &raw_owned, format!("unterminated quote: a quoted field opens at column {col} and does not close within {} MiB", MAX_RECORD_BYTES >> 20), col)?;
                self.next_row_id += 1;
                continue;
            }
            if multi_line
                && (nfields != self.ncols || quote_count_odd(raw_bytes, self.dialect.quote))
            {
                // Most likely an unterminated quote: quarantine the first line only
                // and read the following lines again as records of their own.
                let first_end = raw.start
                    + memchr::memchr(b'\n', raw_bytes)
                        .map(|i| i + 1)
                        .unwrap_or(raw_bytes.len());
                let first = self.buf[raw.start..first_end].to_vec();
                let col = quote_column(&first, self.dialect);
                self.restart_at(first_end, line + 1);
                self.quarantine_row(line, &first, format!("unterminated quote: the quoted field at column {col} runs into the next line(s) and the record is malformed"), col)?;
                self.next_row_id += 1;
                continue;
            }
            if nfields != self.ncols {
                let raw_owned = raw_bytes.to_vec();
                let col = field_column(&raw_owned, self.dialect, self.ncols);
                self.quarantine_row(
                    line,
                    &raw_owned,
                    format!(
                        "wrong field count: expected {} fields, found {nfields}",
                        self.ncols
                    ),
                    col,
                )?;
                self.next_row_id += 1;
                continue;
            }
            let fields = match &self.fast_line {
                Some(l) => &self.buf[l.clone()],
                None => &self.out[..self.outlen],
            };
            // The record's bytes, delimiters and quotes included: fields are cut
            // at ASCII bytes, so they are valid exactly when the whole is (the
            // fields joined end to end could pair a lead byte ending one field
            // with a continuation byte starting the next).
            let (whole, whole_end) = match &self.fast_line {
                Some(l) => (fields, l.end),
                None => (raw_bytes, raw.end),
            };
            if self.utf8_checked
                && whole_end > self.valid_to
                && simdutf8::basic::from_utf8(whole).is_err()
            {
                let raw_owned = raw_bytes.to_vec();
                let col = match std::str::from_utf8(trim_newline(&raw_owned)) {
                    Err(e) => {
                        String::from_utf8_lossy(&raw_owned[..e.valid_up_to()])
                            .chars()
                            .count() as u64
                            + 1
                    }
                    Ok(_) => 1,
                };
                self.quarantine_row(
                    line,
                    &raw_owned,
                    format!("invalid UTF-8: undecodable bytes at column {col}; if the file is in another encoding, convert it to UTF-8"),
                    col,
                )?;
                self.next_row_id += 1;
                continue;
            }
            if let Some(l) = &self.fast_line {
                // Fields are cut from the whole buffer (not the line), so
                // a short one may be copied with the bytes after it.
                let at = |&(a, b): &(usize, usize)| l.start + a..l.start + b;
                let mut width = 0;
                for (c, span) in cols.iter_mut().zip(&self.spans) {
                    c.push(&self.buf, at(span));
                    width += span.1 - span.0;
                }
                if self.hashes {
                    // No field was quoted when the fields and the delimiters
                    // between them fill the line: a comma-separated line is
                    // then its fields joined by commas, as hashed.
                    let plain = width + nfields.saturating_sub(1) == fields.len();
                    hashes.push(if plain && self.dialect.delimiter == b',' {
                        xxh3_64(fields)
                    } else {
                        text_row_hash(&self.buf, self.spans.iter().map(at), &mut self.scratch)
                    });
                }
            } else {
                let starts = std::iter::once(0).chain(self.ends[..nfields].iter().copied());
                let spans = starts.zip(self.ends[..nfields].iter().copied());
                for (c, (a, b)) in cols.iter_mut().zip(spans.clone()) {
                    c.push(&self.out, a..b);
                }
                if self.hashes {
                    let f = spans.map(|(a, b)| a..b);
                    hashes.push(text_row_hash(&self.out, f, &mut self.scratch));
                }
            }
            ids.append_value(self.next_row_id);
            self.next_row_id += 1;
            rows += 1;
            batch_bytes += raw.len();
        }
        if rows == 0 {
            return Ok(None);
        }
        for (last, c) in self.col_bytes.iter_mut().zip(&cols) {
            *last = c.values.len();
        }
        let mut arrays = Vec::with_capacity(cols.len() + 1);
        for c in cols {
            arrays.push(c.finish().map_err(|e| CoreError::Malformed {
                file: self.file.clone(),
                line: self.line,
                column: 0,
                reason: format!("a field is not valid UTF-8 ({e}); convert the file to UTF-8"),
            })?);
        }
        arrays.push(Arc::new(ids.finish()) as ArrayRef);
        if self.hashes {
            arrays.push(Arc::new(UInt64Array::from(hashes)) as ArrayRef);
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), arrays)?))
    }

    /// Row id the next data row will get.
    pub fn next_row_id(&self) -> u64 {
        self.next_row_id
    }
}

/// One text column of a batch being read: the fields' bytes end to end,
/// their offsets and which are null (empty fields).
///
/// Built by hand rather than with arrow's `StringBuilder`, whose
/// `append_value` takes `&str` and so needs a UTF-8 check per field; records
/// are checked whole as they arrive (to quarantine the bad ones), and the
/// column once more, in one pass, when the array is made.
struct TextColumn {
    values: Vec<u8>,
    offsets: Vec<i32>,
}

impl TextColumn {
    /// Bytes past which a batch stops taking rows: one more record (at most
    /// [`MAX_RECORD_BYTES`]) still fits in i32 offsets.
    const FULL: usize = i32::MAX as usize - MAX_RECORD_BYTES - 1;

    fn with_capacity(rows: usize, bytes: usize) -> TextColumn {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextColumn {
            values: Vec::with_capacity(bytes),
            offsets,
        }
    }

    /// Appends the field `src[field]`.
    #[inline]
    fn push(&mut self, src: &[u8], field: std::ops::Range<usize>) {
        append(&mut self.values, src, field);
        // Cannot overflow: a batch stops below `FULL` bytes.
        self.offsets.push(self.values.len() as i32);
    }

    fn finish(self) -> std::result::Result<ArrayRef, datafusion::arrow::error::ArrowError> {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::buffer::{
            BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer,
        };
        // An empty field is null: validity follows from the offsets, in one
        // pass here rather than a bit per field as they come.
        let o = &self.offsets;
        let valid = BooleanBuffer::collect_bool(o.len() - 1, |i| o[i + 1] != o[i]);
        let nulls = Some(NullBuffer::new(valid)).filter(|n| n.null_count() > 0);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        Ok(Arc::new(StringArray::try_new(
            offsets,
            Buffer::from_vec(self.values),
            nulls,
        )?))
    }
}

/// The bytes the one-line fast path looks for, each repeated in every byte
/// of a word: [`split_simple`] scans eight bytes at a time.
#[derive(Debug, Clone, Copy)]
struct Splitter {
    delimiter: u8,
    quote: u8,
    d: u64,
    q: u64,
}

impl Splitter {
    fn new(d: CsvDialect) -> Self {
        Splitter {
            delimiter: d.delimiter,
            quote: d.quote,
            d: swar::splat(d.delimiter),
            q: swar::splat(d.quote),
        }
    }

    /// The high bit of each byte of the word at `i` that is a delimiter,
    /// quote or `\r`.
    ///
    /// Hand-written (SWAR, safe code) because the crates that split CSV with
    /// SIMD do not keep each record's raw text and line, which quarantine
    /// needs, and memchr3 per field costs more than it saves on short fields.
    #[inline]
    fn specials(&self, word: &[u8]) -> u64 {
        let w = Self::load(word);
        swar::eq_mask(w, self.d) | self.quotes_or_crs(w)
    }

    /// The high bit of each byte of `w` that is a quote or `\r`: the bytes
    /// besides the delimiter that end the fast paths.
    #[inline]
    fn quotes_or_crs(&self, w: u64) -> u64 {
        swar::eq_mask(w, self.q) | swar::eq_mask(w, swar::splat(b'\r'))
    }

    /// Eight bytes as a little-endian word (the first byte lowest).
    #[inline]
    fn load(word: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(word);
        u64::from_le_bytes(a)
    }

    fn is_special(&self, c: u8) -> bool {
        c == self.delimiter || self.is_quote_or_cr(c)
    }

    /// [`Splitter::quotes_or_crs`] for one byte.
    #[inline]
    fn is_quote_or_cr(&self, c: u8) -> bool {
        c == self.quote || c == b'\r'
    }
}

/// Splits the line at the start of `s` into field spans when all its fields
/// are plain (no quote byte; a `\r` only right before the `\n`), finding
/// its end in the same pass: `Some((newline, length))`, the offset of its
/// `\n` and the length of the line without its line end. `None` (with
/// `spans` partly filled) for a line with a quote or a stray `\r`, which
/// is left to [`split_simple`] (after `memchr` finds its end), and when `s`
/// holds no `\n`.
///
/// A block's delimiters, newlines and quotes or `\r`s are gathered into
/// three bit masks sixteen bytes at a time (`wide`: SSE2 compares and
/// byte masks, in safe code), then the delimiter bits before the first
/// newline are taken in turn: one pass over the line finds its end and its
/// fields. The last, short block of `s` is copied into a full one and its
/// bits past the end of `s` dropped.
fn split_line(s: &[u8], sp: &Splitter, spans: &mut Vec<(usize, usize)>) -> Option<(usize, usize)> {
    use wide::u8x16;
    let (d, q, cr, lf) = (
        u8x16::splat(sp.delimiter),
        u8x16::splat(sp.quote),
        u8x16::splat(b'\r'),
        u8x16::splat(b'\n'),
    );
    spans.clear();
    let mut start = 0;
    let mut base = 0;
    while base < s.len() {
        let mut short = [0u8; 64];
        let (block, within) = match s.get(base..base + 64) {
            Some(block) => (block, u64::MAX),
            None => {
                let rest = &s[base..];
                short[..rest.len()].copy_from_slice(rest);
                (&short[..], (1u64 << rest.len()) - 1)
            }
        };
        let (mut delims, mut newlines, mut others) = (0u64, 0u64, 0u64);
        for (k, bytes) in block.chunks_exact(16).enumerate() {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            let v = u8x16::new(a);
            delims |= (v.simd_eq(d).to_bitmask() as u64) << (16 * k);
            newlines |= (v.simd_eq(lf).to_bitmask() as u64) << (16 * k);
            others |= ((v.simd_eq(q) | v.simd_eq(cr)).to_bitmask() as u64) << (16 * k);
        }
        delims &= within;
        newlines &= within;
        others &= within;
        let mut end = None;
        if newlines != 0 {
            let nl = newlines.trailing_zeros();
            let before = (1u64 << nl) - 1;
            delims &= before;
            others &= before;
            let mut len = base + nl as usize;
            // A `\r` right before the `\n` ends the line with it (CRLF).
            if nl > 0 && others == 1 << (nl - 1) && block[nl as usize - 1] == b'\r' {
                others = 0;
                len -= 1;
            }
            end = Some((base + nl as usize, len));
        } else if others == 1 << 63 && block[63] == b'\r' && s.get(base + 64) == Some(&b'\n') {
            // The same, the `\r` ending this block and the `\n` starting the next.
            others = 0;
            end = Some((base + 64, base + 63));
        }
        if others != 0 {
            return None;
        }
        while delims != 0 {
            let j = base + delims.trailing_zeros() as usize;
            delims &= delims - 1;
            spans.push((start, j));
            start = j + 1;
        }
        if let Some((nl, len)) = end {
            spans.push((start, len));
            return Some((nl, len));
        }
        base += 64;
    }
    None
}

/// Splits one line (without its line end) into field spans, the same fields
/// csv-core gives, when every field is plain (no quote byte, no `\r`) or
/// quoted with no quote inside and a delimiter or the line end right after
/// its closing quote. Anything else (an escaped `""`, a quote inside a plain
/// field, text after a closing quote, a quote left open to the next line)
/// returns false and the record goes to csv-core.
fn split_simple(line: &[u8], sp: &Splitter, spans: &mut Vec<(usize, usize)>) -> bool {
    spans.clear();
    let n = line.len();
    // The open field starts at `start`; bytes before `i` are scanned.
    let mut start = 0;
    let mut i = 0;
    'field: loop {
        if start < n && line[start] == sp.quote {
            let Some(close) = memchr::memchr(sp.quote, &line[start + 1..]).map(|c| start + 1 + c)
            else {
                return false;
            };
            spans.push((start + 1, close));
            let after = close + 1;
            if after == n {
                return true;
            }
            if line[after] != sp.delimiter {
                return false;
            }
            start = after + 1;
            i = start;
            continue;
        }
        // A word at a time, every special byte in it in turn: each word is
        // read once, however many fields end in it.
        while let Some(word) = line.get(i..i + 8) {
            let mut m = sp.specials(word);
            while m != 0 {
                let j = i + (m.trailing_zeros() / 8) as usize;
                m &= m - 1;
                if line[j] != sp.delimiter {
                    return false;
                }
                spans.push((start, j));
                start = j + 1;
                if start < n && line[start] == sp.quote {
                    continue 'field;
                }
            }
            i += 8;
        }
        for j in i.max(start)..n {
            if sp.is_special(line[j]) {
                if line[j] != sp.delimiter {
                    return false;
                }
                spans.push((start, j));
                start = j + 1;
                if start < n && line[start] == sp.quote {
                    i = start;
                    continue 'field;
                }
            }
        }
        spans.push((start, n));
        return true;
    }
}

/// The seed of [`text_row_hash`] for a row with a comma inside a field.
const FIELD_COMMA_SEED: u64 = 0x5851_F42D_4C95_7F2D;

/// A 64-bit hash of a row of text fields, the same however the row was
/// quoted or delimited (an empty field, quoted or not, is null, as the
/// reader reads it): xxh3 of the fields joined by commas, which for a plain
/// comma-separated line is the line itself. Joined fields tell rows apart
/// only while no field holds a comma (`a,b` + `c` would join as `a` + `b,c`
/// does), so such a row is hashed as each field's length then its bytes,
/// with another seed. The fields are the ranges `fields` of `src`.
pub fn text_row_hash(
    src: &[u8],
    fields: impl Iterator<Item = std::ops::Range<usize>> + Clone,
    scratch: &mut Vec<u8>,
) -> u64 {
    scratch.clear();
    let mut n = 0;
    for f in fields.clone() {
        if n > 0 {
            scratch.push(b',');
        }
        append(scratch, src, f);
        n += 1;
    }
    if memchr::memchr_iter(b',', scratch).count() + 1 == n.max(1) {
        return xxh3_64(scratch);
    }
    scratch.clear();
    for f in fields {
        scratch.extend_from_slice(&(f.len() as u64).to_le_bytes());
        append(scratch, src, f);
    }
    xxh3_64_with_seed(scratch, FIELD_COMMA_SEED)
}

/// Appends `src[range]` to `dst`.
///
/// Written by hand because `extend_from_slice` calls `memcpy` for a length
/// known only at run time, and on the short fields most columns hold
/// (names, codes, numbers) the call costs more than the copy: a field of up
/// to 16 (or 32) bytes with that many bytes of `src` from its start is
/// copied as one fixed-size block, which compiles to a few vector moves, and
/// the bytes past the field are cut off again.
#[inline(always)]
fn append(dst: &mut Vec<u8>, src: &[u8], range: std::ops::Range<usize>) {
    let (a, len) = (range.start, range.len());
    let keep = dst.len() + len;
    // Only into room already there: the bytes past the field must not
    // make `dst` grow.
    let room = dst.capacity() - dst.len();
    if len <= 16
        && room >= 16
        && let Some(block) = src.get(a..a + 16)
    {
        let mut w = [0u8; 16];
        w.copy_from_slice(block);
        dst.extend_from_slice(&w);
    } else if len <= 32
        && room >= 32
        && let Some(block) = src.get(a..a + 32)
    {
        let mut w = [0u8; 32];
        w.copy_from_slice(block);
        dst.extend_from_slice(&w);
    } else {
        dst.extend_from_slice(&src[range]);
        return;
    }
    dst.truncate(keep);
}

fn trim_newline(raw: &[u8]) -> &[u8] {
    let mut end = raw.len();
    while end > 0 && (raw[end - 1] == b'\n' || raw[end - 1] == b'\r') {
        end -= 1;
    }
    &raw[..end]
}

fn quote_count_odd(raw: &[u8], quote: u8) -> bool {
    memchr::memchr_iter(quote, raw).count() % 2 == 1
}

/// 1-based character column where the first quoted field that never closes on this line opens.
fn quote_column(line: &[u8], d: CsvDialect) -> u64 {
    let mut in_quote = false;
    let mut open_at = 0;
    let mut field_start = true;
    for (i, &c) in line.iter().enumerate() {
        if in_quote {
            if c == d.quote {
                in_quote = false;
            }
        } else if c == d.quote && field_start {
            in_quote = true;
            open_at = i;
        }
        field_start = c == d.delimiter;
    }
    char_column(line, if in_quote { open_at } else { 0 })
}

/// 1-based character column where field `n` (0-based) starts, or the end of the line if it has fewer.
fn field_column(raw: &[u8], d: CsvDialect, n: usize) -> u64 {
    let line = trim_newline(raw);
    let mut in_quote = false;
    let mut field = 0;
    for (i, &c) in line.iter().enumerate() {
        if c == d.quote {
            in_quote = !in_quote;
        } else if c == d.delimiter && !in_quote {
            field += 1;
            if field == n {
                return char_column(line, i);
            }
        }
    }
    char_column(line, line.len())
}

/// The 1-based character column of byte offset `byte` in `line`.
pub(crate) fn char_column(line: &[u8], byte: usize) -> u64 {
    String::from_utf8_lossy(&line[..byte.min(line.len())])
        .chars()
        .count() as u64
        + 1
}

/// Reads the first record of a decoded stream as raw field strings (the header).
pub fn read_first_record(sample: &[u8], d: CsvDialect) -> Vec<String> {
    parse_records(sample, d.delimiter, d.quote, 1, false)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Reads whole records from the head of a decoded stream, for sniffing and sampling.
pub fn sample_records(sample: &[u8], d: CsvDialect, max: usize, at_eof: bool) -> Vec<Vec<String>> {
    parse_records(sample, d.delimiter, d.quote, max, !at_eof)
}

/// Reads up to `n` bytes from `r` (fewer at EOF).
pub fn read_head(r: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn read(
        text: &[u8],
        ncols: usize,
        strict: bool,
    ) -> (Vec<RecordBatch>, Arc<Quarantine>, Result<()>) {
        read_with(text, ncols, strict, true, 2)
    }

    fn read_with(
        text: &[u8],
        ncols: usize,
        strict: bool,
        fast: bool,
        batch_size: usize,
    ) -> (Vec<RecordBatch>, Arc<Quarantine>, Result<()>) {
        read_delimited(text, b',', ncols, strict, fast, batch_size, 0)
    }

    /// Input that gives at most `.1` bytes a read: records, and characters,
    /// are cut across reads.
    struct Trickle(std::io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    /// Reads `text` with `delimiter`, the input coming `trickle` bytes a read (0: at once).
    fn read_delimited(
        text: &[u8],
        delimiter: u8,
        ncols: usize,
        strict: bool,
        fast: bool,
        batch_size: usize,
        trickle: usize,
    ) -> (Vec<RecordBatch>, Arc<Quarantine>, Result<()>) {
        let mut fields: Vec<Field> = (0..ncols)
            .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
            .collect();
        fields.push(Field::new("__row_id", DataType::UInt64, false));
        // Every read makes row hashes too: the fast path must hash as csv-core's does.
        fields.push(Field::new(crate::ROW_HASH, DataType::UInt64, false));
        let q = Arc::new(Quarantine::in_memory());
        let cfg = CsvReaderConfig {
            file: "t.csv".into(),
            dialect: CsvDialect {
                delimiter,
                ..CsvDialect::default()
            },
            schema: Arc::new(Schema::new(fields)),
            check_utf8: true,
            first_row_id: 0,
            batch_size,
            limit: None,
            quarantine: q.clone(),
            strict,
            bytes_read: Arc::new(AtomicU64::new(0)),
        };
        let input: Box<dyn BufRead + Send> = match trickle {
            0 => Box::new(std::io::Cursor::new(text.to_vec())),
            k => Box::new(std::io::BufReader::with_capacity(
                1,
                Trickle(std::io::Cursor::new(text.to_vec()), k),
            )),
        };
        let mut out = vec![];
        let res = (|| {
            let mut r = CsvBatchReader::build(input, cfg, fast)?;
            while let Some(b) = r.next_batch()? {
                out.push(b);
            }
            Ok(())
        })();
        (out, q, res)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<u64> {
        column_u64(batches, crate::ROW_ID)
    }

    fn hashes(batches: &[RecordBatch]) -> Vec<u64> {
        column_u64(batches, crate::ROW_HASH)
    }

    fn column_u64(batches: &[RecordBatch], name: &str) -> Vec<u64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column_by_name(name)
                    .unwrap()
                    .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn ragged_rows_are_quarantined_with_their_line() {
        let (b, q, res) = read(b"a,b\n1,2\n3\n4,5,6\n7,8\n", 2, false);
        res.expect("ok");
        assert_eq!(ids(&b), vec![0, 3]);
        let s = q.summary();
        assert_eq!(s.rows, 2);
        assert_eq!(
            (
                s.examples[0].line,
                s.examples[0].row_id,
                s.examples[0].raw.as_str()
            ),
            (3, 1, "3")
        );
        assert_eq!((s.examples[1].line, s.examples[1].row_id), (4, 2));
    }

    #[test]
    fn quoted_newlines_are_one_field() {
        let (b, q, res) = read(b"a,b\n\"x\ny\",2\n3,4\n", 2, false);
        res.expect("ok");
        assert_eq!(q.summary().rows, 0);
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "x\ny");
        assert_eq!(ids(&b), vec![0, 1]);
    }

    #[test]
    fn unterminated_quote_loses_only_its_line() {
        let (b, q, res) = read(b"a,b\n1,\"oops\n2,3\n4,5\n", 2, false);
        res.expect("ok");
        assert_eq!(ids(&b), vec![1, 2]);
        let s = q.summary();
        assert_eq!(s.rows, 1);
        assert!(
            s.examples[0].reason.starts_with("unterminated quote"),
            "{}",
            s.examples[0].reason
        );
        assert_eq!(s.examples[0].line, 2);
    }

    #[test]
    fn strict_names_file_line_column() {
        let (_, _, res) = read(b"a,b\n1,2\n3,4,5\n", 2, true);
        let e = res.expect_err("strict fails").to_string();
        assert!(e.starts_with("t.csv:3:4: wrong field count"), "{e}");
    }

    #[test]
    fn invalid_utf8_row_is_quarantined() {
        let (b, q, res) = read(b"a,b\n1,2\n3,\xff\xfe\n5,6\n", 2, false);
        res.expect("ok");
        assert_eq!(ids(&b), vec![0, 2]);
        assert!(
            q.summary().examples[0]
                .reason
                .starts_with("invalid UTF-8: undecodable bytes at column 3")
        );
    }

    #[test]
    fn a_character_split_by_a_delimiter_is_quarantined_not_fatal() {
        // Each half is invalid alone; joined they would read as "é".
        for text in [
            &b"a,b\n1,2\n\xc3,\xa9\n5,6\n"[..],
            b"a,b\n1,2\n\"\xc3\",\xa9\n5,6\n",
        ] {
            for fast in [true, false] {
                let (b, q, res) = read_with(text, 2, false, fast, 2);
                res.expect("quarantined, not an error");
                assert_eq!(ids(&b), vec![0, 2], "fast path {fast}");
                assert_eq!(q.summary().rows, 1);
            }
        }
    }

    #[test]
    fn empty_fields_are_null_and_crlf_works() {
        let (b, _, res) = read(b"a,b\r\n1,\r\n\r\n,2\r\n", 2, false);
        res.expect("ok");
        let c1 = b[0].column(1);
        assert!(c1.is_null(0));
        assert!(b[0].column(0).is_null(1));
        assert_eq!(ids(&b), vec![0, 1]);
    }

    #[test]
    fn sniffs_delimiter_and_header() {
        assert_eq!(
            sniff(b"a;b;c\n1;2;3\n4;5;6\n", true),
            CsvDialect {
                delimiter: b';',
                quote: b'"',
                has_header: true
            }
        );
        assert_eq!(sniff(b"a\tb\n1\t2\n", true).delimiter, b'\t');
        assert!(!sniff(b"1,2\n3,4\n5,6\n", true).has_header);
        assert!(sniff(b"name,age\nann,3\n", true).has_header);
        assert!(sniff(b"x,y\n", true).has_header);
    }

    #[test]
    fn names_are_made_unique() {
        let n = unique_names(&["a".into(), "".into(), "a".into(), "a".into()]);
        assert_eq!(n, vec!["a", "column_2", "a_2", "a_3"]);
    }

    /// Every cell of every batch, with its row id, as text (None for null).
    fn cells(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
        let mut rows = vec![];
        for b in batches {
            for i in 0..b.num_rows() {
                let mut row = vec![];
                for c in b.columns() {
                    row.push(if c.is_null(i) {
                        None
                    } else if let Some(s) = c.as_string_opt::<i32>() {
                        Some(s.value(i).to_string())
                    } else {
                        Some(
                            c.as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                                .value(i)
                                .to_string(),
                        )
                    });
                }
                rows.push(row);
            }
        }
        rows
    }

    #[test]
    fn fast_path_splits_plain_and_simply_quoted_fields() {
        let t = Splitter::new(CsvDialect::default());
        let mut sp = vec![];
        let f = |line: &[u8], sp: &mut Vec<(usize, usize)>| {
            split_simple(line, &t, sp).then(|| {
                sp.iter()
                    .map(|&(a, b)| String::from_utf8(line[a..b].to_vec()).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            f(b"a,,b", &mut sp),
            Some(vec!["a".into(), "".into(), "b".into()])
        );
        assert_eq!(f(b"a,", &mut sp), Some(vec!["a".into(), "".into()]));
        assert_eq!(
            f(b"\"x,y\",z", &mut sp),
            Some(vec!["x,y".into(), "z".into()])
        );
        assert_eq!(f(b"z,\"\"", &mut sp), Some(vec!["z".into(), "".into()]));
        assert_eq!(f(b"\"a\"\"b\"", &mut sp), None); // escaped quote
        assert_eq!(f(b"a\"b,c", &mut sp), None); // quote inside a plain field
        assert_eq!(f(b"\"a\"b,c", &mut sp), None); // text after the closing quote
        assert_eq!(f(b"\"open,c", &mut sp), None); // the quote runs to the next line
        assert_eq!(f(b"a\rb", &mut sp), None); // a lone CR ends a record in csv-core
    }

    proptest::proptest! {
        /// The one-pass split of a line finds the end memchr finds and the
        /// fields split_simple finds in the line; it declines only a line
        /// with a quote or a stray `\r`.
        #[test]
        fn one_pass_split_is_line_end_then_split(
            bytes in proptest::collection::vec(
                proptest::strategy::Strategy::prop_map(0u8..100, |x| match x {
                    0..=1 => b'\n',
                    2 => b'\r',
                    3 => b'"',
                    4..=15 => b',',
                    16..=19 => b'\t',
                    20 => 0xac,
                    21 => 0xc3,
                    _ => b'a' + x % 26,
                }),
                0..400,
            ),
            crlf in proptest::bool::ANY,
            delimiter in proptest::sample::select(vec![b',', b'\t']),
        ) {
            let mut bytes = bytes;
            if crlf {
                // Some line ends CRLF, one of them maybe across a block edge.
                for i in (1..bytes.len()).rev() {
                    if bytes[i] == b'\n' && i % 3 != 0 {
                        bytes[i - 1] = b'\r';
                    }
                }
            }
            let d = CsvDialect { delimiter, ..CsvDialect::default() };
            let sp = Splitter::new(d);
            let mut got = Vec::new();
            let res = split_line(&bytes, &sp, &mut got);
            // The line-at-a-time way: its end by memchr, then split_simple.
            let nl = memchr::memchr(b'\n', &bytes);
            let len_of = |n: usize| if n > 0 && bytes[n - 1] == b'\r' { n - 1 } else { n };
            match (res, nl) {
                (Some((n, len)), Some(want_n)) => {
                    proptest::prop_assert_eq!(n, want_n);
                    proptest::prop_assert_eq!(len, len_of(n));
                    let mut want = Vec::new();
                    proptest::prop_assert!(split_simple(&bytes[..len], &sp, &mut want));
                    proptest::prop_assert_eq!(got, want);
                }
                (Some(_), None) => proptest::prop_assert!(false, "a line end where there is none"),
                (None, Some(n)) => {
                    // Declined only for a quote or a stray `\r`.
                    let special = bytes[..len_of(n)].iter().any(|c| *c == b'"' || *c == b'\r');
                    proptest::prop_assert!(special);
                }
                (None, None) => {}
            }
        }

        /// A line of plain fields, of any length (the split gathers 64
        /// bytes at a time, the last block short), splits at exactly its
        /// delimiters; a quote or `\r` anywhere in it is left to the
        /// quoted-field path.
        #[test]
        fn plain_lines_split_at_every_delimiter(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'z', b',', b',', b'\t', 0xac, 0xc3, 0xa9, b'"', b'\r']),
                0..300,
            ),
            plain in proptest::bool::ANY,
            delimiter in proptest::sample::select(vec![b',', b'\t']),
        ) {
            let line: Vec<u8> = if plain {
                bytes.into_iter().filter(|c| *c != b'"' && *c != b'\r').collect()
            } else {
                bytes
            };
            let d = CsvDialect { delimiter, ..CsvDialect::default() };
            let sp = Splitter::new(d);
            let mut spans = Vec::new();
            // The line, an empty last field (so a `\r` in the line is never
            // right before its `\n`), its line end, and the next line.
            let mut text = line.clone();
            text.extend_from_slice(&[delimiter, b'\n']);
            text.extend_from_slice(b"next,line\n");
            let split = split_line(&text, &sp, &mut spans);
            let special = line.iter().any(|c| *c == b'"' || *c == b'\r');
            proptest::prop_assert_eq!(split.is_some(), !special);
            if let Some(ends) = split {
                proptest::prop_assert_eq!(ends, (line.len() + 1, line.len() + 1));
                let got: Vec<&[u8]> = spans.iter().map(|&(a, b)| &text[a..b]).collect();
                let mut want: Vec<&[u8]> = line.split(|c| *c == delimiter).collect();
                want.push(b"");
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(600))]
        /// The one-line fast path reads exactly what csv-core alone reads: the
        /// same cells, row ids, quarantined rows (line, reason, text) and errors,
        /// whatever mix of quotes, line ends and bad bytes the text holds.
        #[test]
        fn fast_path_reads_what_csv_core_reads(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"a"[..], b"bc", b",", b",", b"\"", b"\"\"", b"\n", b"\n", b"\r\n",
                    b"\r", b" ", "\u{e9}".as_bytes(), b"\xff", b"x,y", b"\"q,r\"",
                    // Longer than a word, and bytes one high bit away from `,` `"` `\r`.
                    b"abcdefghijkl", b"a,b,c,d,e,f,g,h", b"\xac", b"\xa2", b"\x8d",
                    // Halves of a two-byte character, to be split by a delimiter.
                    b"\xc3", b"\xa9",
                ]),
                0..60,
            ),
            ncols in 1usize..4,
            batch in 1usize..5,
            strict in proptest::bool::ANY,
            // Mostly the comma; now and then a delimiter that is also a quote or a line end.
            delimiter in proptest::sample::select(vec![b',', b',', b',', b',', b'\t', b'"', b'\r', b'\n']),
            trickle in 1usize..9,
        ) {
            let text: Vec<u8> = parts.concat();
            let (fb, fq, fr) = read_delimited(&text, delimiter, ncols, strict, true, batch, 0);
            // csv-core alone, the input coming a few bytes a read (records and
            // characters cut across reads, for the UTF-8 check a read at a time).
            let (sb, sq, sr) = read_delimited(&text, delimiter, ncols, strict, false, batch, trickle);
            proptest::prop_assert_eq!(cells(&fb), cells(&sb));
            proptest::prop_assert_eq!(format!("{:?}", fr), format!("{:?}", sr));
            let (fs, ss) = (fq.summary(), sq.summary());
            proptest::prop_assert_eq!(fs.rows, ss.rows);
            proptest::prop_assert_eq!(
                serde_json::to_string(&fs.examples).unwrap(),
                serde_json::to_string(&ss.examples).unwrap()
            );
            // The fast path, trickled too.
            let (tb, tq, tr) = read_delimited(&text, delimiter, ncols, strict, true, batch, trickle);
            proptest::prop_assert_eq!(cells(&fb), cells(&tb));
            proptest::prop_assert_eq!(format!("{:?}", fr), format!("{:?}", tr));
            proptest::prop_assert_eq!(
                serde_json::to_string(&fs.examples).unwrap(),
                serde_json::to_string(&tq.summary().examples).unwrap()
            );
        }
    }

    #[test]
    fn row_hashes_follow_the_fields_not_the_quoting() {
        let text =
            b"h1,h2\nx,y\n\"x\",y\n\"x,y\",\nx,\"y,\"\nx,\nx,\"\"\n\"x\"\"\",y\n\"x\ny\",z\n";
        let (b, q, r) = read(text, 2, false);
        r.unwrap();
        assert_eq!(q.summary().rows, 0);
        let h = hashes(&b);
        assert_eq!(h.len(), 8);
        assert_eq!(h[0], h[1], "plain and quoted x,y");
        assert_ne!(
            h[2], h[3],
            "`x,y` + null and `x` + `y,` join alike but differ"
        );
        assert_ne!(h[0], h[2]);
        assert_eq!(h[4], h[5], "an empty field is null, quoted or not");
        assert_ne!(h[0], h[4]);
        assert_ne!(h[6], h[0], "x\" is not x");
        let distinct: std::collections::HashSet<u64> = h.iter().copied().collect();
        assert_eq!(distinct.len(), 6);
        // Another delimiter, same fields: same hashes.
        let (t, _, r) = read_delimited(b"h1;h2\nx;y\n\"x,y\";\nx;y,\n", b';', 2, false, true, 2, 0);
        r.unwrap();
        assert_eq!(hashes(&t), vec![h[0], h[2], h[3]]);
    }

    /// Writes rows of fields as CSV with `delimiter`, quoting a field when
    /// it must be and otherwise when `quote` says so.
    fn write_rows(rows: &[Vec<String>], delimiter: u8, quote: &[bool]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..rows.first().map_or(0, Vec::len) {
            if i > 0 {
                out.push(delimiter);
            }
            out.extend_from_slice(format!("h{i}").as_bytes());
        }
        out.push(b'\n');
        let mut k = 0;
        for row in rows {
            for (i, f) in row.iter().enumerate() {
                if i > 0 {
                    out.push(delimiter);
                }
                let must = f
                    .bytes()
                    .any(|c| c == delimiter || matches!(c, b'"' | b'\n' | b'\r'));
                k += 1;
                if must || quote[k % quote.len()] {
                    out.push(b'"');
                    out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
                    out.push(b'"');
                } else {
                    out.extend_from_slice(f.as_bytes());
                }
            }
            out.push(b'\n');
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Two rows get the same hash exactly when their fields are equal (an
        /// empty field being null), whatever the quoting and delimiter.
        #[test]
        fn row_hashes_are_equal_exactly_for_equal_fields(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec!["", "", "a", "a", "b", ",", "a,", ",a", "\"", " ", "a;b", "\n", "ab"]),
                    3,
                ),
                1..30,
            ),
            quote in proptest::collection::vec(proptest::bool::ANY, 1..7),
            delimiter in proptest::sample::select(vec![b',', b',', b';', b'\t']),
        ) {
            let rows: Vec<Vec<String>> = rows.into_iter().map(|r| r.into_iter().map(String::from).collect()).collect();
            let text = write_rows(&rows, delimiter, &quote);
            let (b, q, r) = read_delimited(&text, delimiter, 3, true, true, 4, 0);
            proptest::prop_assert!(r.is_ok(), "{:?}", r);
            proptest::prop_assert_eq!(q.summary().rows, 0);
            let h = hashes(&b);
            proptest::prop_assert_eq!(h.len(), rows.len());
            for i in 0..rows.len() {
                for j in 0..rows.len() {
                    proptest::prop_assert_eq!(h[i] == h[j], rows[i] == rows[j], "rows {:?} and {:?}", &rows[i], &rows[j]);
                }
            }
        }
    }
}

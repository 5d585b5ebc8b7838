//! Quarantine: rows that cannot be read are kept, counted and reported, never dropped.
//!
//! Readers hand every malformed row to a [`Quarantine`] with its file, line,
//! row id, raw text and reason. The quarantine counts them by reason, keeps
//! the first few as examples for the profile, and, when given a path, writes
//! every one of them as JSON Lines (or CSV when the path ends in `.csv`).
//! The file is written under a temporary name and renamed on [`Quarantine::finish`],
//! so a failed run never leaves a half-written quarantine file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// How many quarantined rows are kept in memory as examples.
pub const EXAMPLES_KEPT: usize = 20;
/// Raw text longer than this is cut in the in-memory examples (never in the file).
const EXAMPLE_TEXT_MAX: usize = 500;

/// One quarantined row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRow {
    /// The file it came from.
    pub file: String,
    /// 1-based line where the row starts.
    pub line: u64,
    /// The row id it would have had (its 0-based position in the source).
    pub row_id: u64,
    /// Why it was quarantined.
    pub reason: String,
    /// The raw text of the row (lossily decoded if it was not valid UTF-8).
    pub raw: String,
}

/// A summary of what was quarantined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineSummary {
    /// Total rows quarantined.
    pub rows: u64,
    /// Count per reason kind (the reason up to its first `:`).
    pub by_reason: BTreeMap<String, u64>,
    /// The first rows quarantined.
    pub examples: Vec<QuarantinedRow>,
    /// Where every quarantined row was written, if anywhere.
    pub file: Option<PathBuf>,
}

enum Sink {
    None,
    Jsonl(BufWriter<File>),
    Csv(BufWriter<File>),
}

struct Inner {
    summary: QuarantineSummary,
    sink: Sink,
    tmp: Option<PathBuf>,
}

/// Collects quarantined rows. Shared by the readers of one dataset.
pub struct Quarantine {
    inner: Mutex<Inner>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantine")
            .field("path", &self.path)
            .finish()
    }
}

impl Quarantine {
    /// A quarantine that only counts and keeps examples.
    pub fn in_memory() -> Self {
        Quarantine {
            inner: Mutex::new(Inner {
                summary: QuarantineSummary::default(),
                sink: Sink::None,
                tmp: None,
            }),
            path: None,
        }
    }

    /// A quarantine that also writes every row to `path`.
    pub fn to_file(path: &Path) -> Result<Self> {
        let tmp = tmp_name(path);
        let f = File::create(&tmp).map_err(|source| CoreError::Write {
            path: tmp.clone(),
            source,
        })?;
        let mut w = BufWriter::new(f);
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let sink = if csv {
            w.write_all(b"file,line,row_id,reason,raw\n")
                .map_err(|source| CoreError::Write {
                    path: tmp.clone(),
                    source,
                })?;
            Sink::Csv(w)
        } else {
            Sink::Jsonl(w)
        };
        Ok(Quarantine {
            inner: Mutex::new(Inner {
                summary: QuarantineSummary {
                    file: Some(path.to_path_buf()),
                    ..Default::default()
                },
                sink,
                tmp: Some(tmp),
            }),
            path: Some(path.to_path_buf()),
        })
    }

    /// Records one row.
    pub fn push(&self, row: QuarantinedRow) -> Result<()> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| CoreError::Internal("quarantine lock poisoned".into()))?;
        let inner = &mut *g;
        inner.summary.rows += 1;
        let kind = row
            .reason
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        *inner.summary.by_reason.entry(kind).or_default() += 1;
        let tmp = inner.tmp.clone().unwrap_or_default();
        let werr = |source| CoreError::Write {
            path: tmp.clone(),
            source,
        };
        match &mut inner.sink {
            Sink::None => {}
            Sink::Jsonl(w) => {
                serde_json::to_writer(&mut *w, &row).map_err(|e| werr(e.into()))?;
                w.write_all(b"\n").map_err(werr)?;
            }
            Sink::Csv(w) => {
                let line = format!(
                    "{},{},{},{},{}\n",
                    csv_quote(&row.file),
                    row.line,
                    row.row_id,
                    csv_quote(&row.reason),
                    csv_quote(&row.raw)
                );
                w.write_all(line.as_bytes()).map_err(werr)?;
            }
        }
        if inner.summary.examples.len() < EXAMPLES_KEPT {
            let mut ex = row;
            if ex.raw.len() > EXAMPLE_TEXT_MAX {
                let mut cut = EXAMPLE_TEXT_MAX;
                while !ex.raw.is_char_boundary(cut) {
                    cut -= 1;
                }
                ex.raw.truncate(cut);
                ex.raw.push('…');
            }
            inner.summary.examples.push(ex);
        }
        Ok(())
    }

    /// The summary so far.
    pub fn summary(&self) -> QuarantineSummary {
        self.inner
            .lock()
            .map(|g| g.summary.clone())
            .unwrap_or_default()
    }

    /// Flushes and renames the quarantine file into place; returns the summary.
    pub fn finish(&self) -> Result<QuarantineSummary> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| CoreError::Internal("quarantine lock poisoned".into()))?;
        let sink = std::mem::replace(&mut g.sink, Sink::None);
        if let (Some(tmp), Some(path)) = (g.tmp.take(), self.path.as_ref()) {
            let w = match sink {
                Sink::Jsonl(w) | Sink::Csv(w) => Some(w),
                Sink::None => None,
            };
            if let Some(mut w) = w {
                w.flush().map_err(|source| CoreError::Write {
                    path: tmp.clone(),
                    source,
                })?;
            }
            std::fs::rename(&tmp, path).map_err(|source| CoreError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(g.summary.clone())
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        // A run that failed before `finish` leaves no half-written file.
        if let Ok(g) = self.inner.get_mut()
            && let Some(tmp) = g.tmp.take()
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// `dir/name` -> `dir/.name.tmp-PID`: outputs are written here, then renamed.
pub fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn csv_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_row_and_renames() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("q.jsonl");
        let q = Quarantine::to_file(&path).expect("q");
        for i in 0..30 {
            q.push(QuarantinedRow {
                file: "a.csv".into(),
                line: i + 2,
                row_id: i,
                reason: "wrong field count: expected 3, found 2".into(),
                raw: "x,y".into(),
            })
            .expect("push");
        }
        assert!(
            !path.exists(),
            "written under a temporary name until finished"
        );
        let s = q.finish().expect("finish");
        assert_eq!(s.rows, 30);
        assert_eq!(s.examples.len(), EXAMPLES_KEPT);
        assert_eq!(s.by_reason["wrong field count"], 30);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 30);
    }
}

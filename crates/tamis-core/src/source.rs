//! Input resolution: paths, globs (many files as one dataset), `-` for
//! stdin, and object-store URLs.
//!
//! Stdin is spooled to a temporary file first: the reader opens an input
//! more than once (to sniff, to sample types, to read), and a pipe can only
//! be read once. Memory stays bounded; the disk holds the copy.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ObjectStoreExt;

use crate::error::{CoreError, Result};

/// Where one input file's bytes come from.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local file.
    Local(PathBuf),
    /// Standard input, spooled to a temporary file that lives as long as this value.
    Spooled(Arc<tempfile::TempPath>),
    /// An object-store URL (`file://`, `s3://`, ...).
    Url(url::Url),
}

/// One file of a dataset.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name used in messages and provenance (the path or URL as given).
    pub name: String,
    /// Where the bytes are.
    pub location: Location,
}

impl SourceFile {
    /// Size in bytes, if known without reading.
    pub fn size(&self) -> Option<u64> {
        match &self.location {
            Location::Local(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Location::Spooled(p) => std::fs::metadata(p.as_ref() as &std::path::Path)
                .ok()
                .map(|m| m.len()),
            Location::Url(_) => None,
        }
    }

    /// A local path for formats that need random access (Parquet, Excel).
    pub fn local_path(&self) -> Option<PathBuf> {
        match &self.location {
            Location::Local(p) => Some(p.clone()),
            Location::Spooled(p) => Some(p.to_path_buf()),
            Location::Url(u) if u.scheme() == "file" => u.to_file_path().ok(),
            Location::Url(_) => None,
        }
    }

    /// Opens the raw (possibly compressed) bytes, counting them into `progress`.
    pub fn open(&self, progress: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>> {
        let open_err = |source| CoreError::Open {
            path: self.name.clone(),
            source,
        };
        let inner: Box<dyn Read + Send> = match &self.location {
            Location::Local(p) => Box::new(File::open(p).map_err(open_err)?),
            Location::Spooled(p) => {
                Box::new(File::open(p.as_ref() as &std::path::Path).map_err(open_err)?)
            }
            Location::Url(u) => {
                if let Some(p) = self.local_path() {
                    Box::new(File::open(p).map_err(open_err)?)
                } else {
                    open_url(u).map_err(open_err)?
                }
            }
        };
        Ok(Box::new(Counting { inner, progress }))
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    progress: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Streams an object through `object_store` into a blocking reader: a
/// thread runs the async download and hands chunks over a bounded channel.
fn open_url(u: &url::Url) -> io::Result<Box<dyn Read + Send>> {
    let (store, path) = object_store::parse_url(u).map_err(io::Error::other)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    std::thread::Builder::new()
        .name("tamis-objstore".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                use futures::StreamExt;
                let mut stream = match store.get(&path).await {
                    Ok(r) => r.into_stream(),
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(io::ErrorKind::NotFound, e)));
                        return;
                    }
                };
                while let Some(chunk) = stream.next().await {
                    let item = chunk.map(|b| b.to_vec()).map_err(io::Error::other);
                    if tx.send(item).is_err() {
                        return;
                    }
                }
            });
        })?;
    Ok(Box::new(ChannelReader {
        rx,
        cur: Vec::new(),
        pos: 0,
    }))
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Resolves the inputs of one dataset, in order. Globs expand to their
/// matches sorted by path; `-` is stdin.
pub fn resolve(specs: &[String]) -> Result<Vec<SourceFile>> {
    let mut out = Vec::new();
    for spec in specs {
        if spec == "-" {
            let mut tmp = tempfile::NamedTempFile::new().map_err(|source| CoreError::Open {
                path: "-".into(),
                source,
            })?;
            io::copy(&mut io::stdin().lock(), &mut tmp).map_err(|source| CoreError::Open {
                path: "-".into(),
                source,
            })?;
            out.push(SourceFile {
                name: "<stdin>".into(),
                location: Location::Spooled(Arc::new(tmp.into_temp_path())),
            });
            continue;
        }
        if let Some((scheme, _)) = spec.split_once("://")
            && scheme.chars().all(|c| c.is_ascii_alphanumeric())
            && scheme.len() > 1
        {
            let u = url::Url::parse(spec).map_err(|e| CoreError::Open {
                path: spec.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, e),
            })?;
            out.push(SourceFile {
                name: spec.clone(),
                location: Location::Url(u),
            });
            continue;
        }
        if spec.contains(['*', '?', '[']) {
            let paths = glob::glob(spec).map_err(|e| CoreError::BadGlob {
                pattern: spec.clone(),
                message: e.msg.to_string(),
            })?;
            let mut matched: Vec<PathBuf> = paths
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect();
            matched.sort();
            if matched.is_empty() {
                return Err(CoreError::NoMatch {
                    pattern: spec.clone(),
                });
            }
            for p in matched {
                out.push(SourceFile {
                    name: p.display().to_string(),
                    location: Location::Local(p),
                });
            }
            continue;
        }
        let p = PathBuf::from(spec);
        if !p.exists() {
            return Err(CoreError::Open {
                path: spec.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
            });
        }
        if p.is_dir() {
            return Err(CoreError::Open {
                path: spec.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a directory; give a glob such as `dir/*.csv`",
                ),
            });
        }
        out.push(SourceFile {
            name: spec.clone(),
            location: Location::Local(p),
        });
    }
    Ok(out)
}

//! The artifact store: uploads, job outputs, provenance, reports and logs,
//! kept through `object_store`: a local directory by default, an S3 bucket
//! (`s3://BUCKET[/PREFIX]`) with the same code. Metadata rows name artifacts
//! by key (`datasets/TENANT/DATASET/UPLOAD/NAME`, `jobs/TENANT/JOB/NAME`),
//! never by one machine's path, so a server and workers on other machines
//! agree on where everything is.
//!
//! Jobs compute on local files (the readers and DataFusion want them), so an
//! input is fetched to a scratch directory, except from a local store, where
//! it is read in place; outputs are written to scratch and then put. Every put
//! is atomic: a reader sees the old object or the whole new one (the local
//! store writes a temporary file and renames it; S3 completes a multipart
//! upload in one request), so a retried job never leaves half an artifact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::StoreError;

/// Bytes per part of an upload (S3 parts are at least 5 MiB).
const PART: usize = 8 << 20;

/// Parts of one upload in flight at once.
const UPLOADS: usize = 8;

/// Reads up to [`PART`] bytes (fewer only at the end of the file).
async fn read_part(f: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut part = Vec::with_capacity(PART);
    (&mut *f).take(PART as u64).read_to_end(&mut part).await?;
    Ok(part)
}

/// A multipart upload aborted if it is dropped before it completes (a put
/// dropped half-way): its parts are removed from the store instead of
/// lingering as an incomplete upload, which S3 keeps (and bills) until a
/// lifecycle rule clears it. Dropped while `complete` is in flight, the
/// abort either removes the parts or finds the upload already completed.
///
/// The guard owns the parts still in flight, and the abort waits for them
/// first: a part the server is still writing when the abort arrives can
/// land after it, and S3 then keeps it ("it might be necessary to abort a
/// given multipart upload multiple times", says its documentation).
struct AbortOnDrop {
    upload: Option<Box<dyn object_store::MultipartUpload>>,
    sending: futures::stream::FuturesUnordered<object_store::UploadPart>,
}

impl AbortOnDrop {
    /// Takes the upload and its parts in flight, to abort them elsewhere.
    fn take(&mut self) -> Option<Abandoned> {
        let upload = self.upload.take()?;
        Some(Abandoned {
            upload,
            sending: std::mem::take(&mut self.sending),
        })
    }
}

/// An upload to abort once its parts in flight have settled.
struct Abandoned {
    upload: Box<dyn object_store::MultipartUpload>,
    sending: futures::stream::FuturesUnordered<object_store::UploadPart>,
}

impl Abandoned {
    async fn abort(mut self) {
        // Every part's outcome is moot: the upload goes either way.
        while self.sending.next().await.is_some() {}
        let _ = self.upload.abort().await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(a) = self.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(a.abort());
        }
    }
}

/// Where artifacts live.
#[derive(Clone)]
pub struct Artifacts {
    inner: Arc<dyn ObjectStore>,
    /// The local store, when it is one (for in-place reads and moves).
    local: Option<Arc<LocalFileSystem>>,
    url: String,
    scratch: PathBuf,
}

impl std::fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifacts")
            .field("url", &self.url)
            .field("scratch", &self.scratch)
            .finish()
    }
}

/// A download: its size and its bytes as they arrive.
pub struct Download {
    /// Bytes in all.
    pub size: u64,
    /// The bytes.
    pub stream: BoxStream<'static, Result<bytes::Bytes, StoreError>>,
}

/// What a put wrote: its size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// An artifact as a local file: the store's own file (a local store) or a
/// copy in the scratch directory, removed when this is dropped.
#[derive(Debug)]
pub struct LocalCopy {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl LocalCopy {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn obj_err(key: &str, source: object_store::Error) -> StoreError {
    match source {
        object_store::Error::NotFound { .. } => StoreError::NotFound(format!("artifact `{key}`")),
        source => StoreError::Artifact {
            key: key.to_string(),
            source,
        },
    }
}

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::ArtifactFile {
        path: path.to_path_buf(),
        source,
    }
}

impl Artifacts {
    /// Opens the store at `url`: a directory (a path or `file:///DIR`, created
    /// if missing) or `s3://BUCKET[/PREFIX]`, configured from the usual
    /// `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`, …). Copies fetched for jobs go under `scratch`.
    pub fn open(url: &str, scratch: impl Into<PathBuf>) -> Result<Artifacts, StoreError> {
        Artifacts::open_with(url, scratch, std::iter::empty())
    }

    /// As [`Artifacts::open`], with S3 options given explicitly (keys as in
    /// `object_store`'s `AmazonS3ConfigKey`: `aws_endpoint`,
    /// `aws_access_key_id`, `aws_allow_http`, …); they win over the environment.
    pub fn open_with(
        url: &str,
        scratch: impl Into<PathBuf>,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Artifacts, StoreError> {
        let scratch = scratch.into();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::BadArtifactsUrl(url.to_string()));
            }
            // Transient failures are retried, but a store that is down is
            // reported within a minute rather than object_store's three.
            let retry = object_store::RetryConfig {
                max_retries: 5,
                retry_timeout: std::time::Duration::from_secs(60),
                ..Default::default()
            };
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            for (k, v) in options {
                let key: AmazonS3ConfigKey = k
                    .parse()
                    .map_err(|_| StoreError::BadArtifactsUrl(format!("{url}: option `{k}`")))?;
                b = b.with_config(key, v);
            }
            let s3 = b.build().map_err(|e| StoreError::Artifact {
                key: url.to_string(),
                source: e,
            })?;
            let prefix = prefix.trim_matches('/');
            let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            };
            return Ok(Artifacts {
                inner,
                local: None,
                url: url.to_string(),
                scratch,
            });
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if url.contains("://") => {
                return Err(StoreError::BadArtifactsUrl(url.to_string()));
            }
            None => PathBuf::from(url),
        };
        std::fs::create_dir_all(&dir).map_err(file_err(&dir))?;
        let dir = std::fs::canonicalize(&dir).map_err(file_err(&dir))?;
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| obj_err(&dir.display().to_string(), e))?,
        );
        Ok(Artifacts {
            inner: fs.clone(),
            local: Some(fs),
            url: format!("file://{}", dir.display()),
            scratch,
        })
    }

    /// The store's URL (a `file://` directory or the `s3://` URL; never credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the store is a local directory.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    fn key(key: &str) -> Result<Key, StoreError> {
        Key::parse(key).map_err(|e| obj_err(key, e.into()))
    }

    /// Streams a local file to `key` (multipart past one part), hashing it on
    /// the way, so the file is read once: the object appears whole or not at
    /// all. A put dropped half-way (its future dropped) aborts its multipart
    /// upload, so the store keeps none of its parts.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<Put, StoreError> {
        use sha2::Digest;
        let k = Artifacts::key(key)?;
        let io = file_err(file);
        let mut f = tokio::fs::File::open(file).await.map_err(&io)?;
        let mut hasher = sha2::Sha256::new();
        let first = read_part(&mut f).await.map_err(&io)?;
        hasher.update(&first);
        let mut bytes = first.len() as u64;
        if first.len() < PART {
            // One part: one request.
            self.inner
                .put(&k, PutPayload::from(first))
                .await
                .map_err(|e| obj_err(key, e))?;
            return Ok(Put {
                bytes,
                sha256: hex::encode(hasher.finalize()),
            });
        }
        let upload = self
            .inner
            .put_multipart(&k)
            .await
            .map_err(|e| obj_err(key, e))?;
        let mut guard = AbortOnDrop {
            upload: Some(upload),
            sending: futures::stream::FuturesUnordered::new(),
        };
        let sent = async {
            let AbortOnDrop {
                upload: Some(u),
                sending,
            } = &mut guard
            else {
                return Ok(());
            };
            let mut part = first;
            loop {
                sending.push(u.put_part(PutPayload::from(part)));
                // Parts go up a few at a time while the next are read.
                while sending.len() >= UPLOADS {
                    if let Some(r) = sending.next().await {
                        r.map_err(|e| obj_err(key, e))?;
                    }
                }
                part = read_part(&mut f).await.map_err(&io)?;
                if part.is_empty() {
                    break;
                }
                hasher.update(&part);
                bytes += part.len() as u64;
            }
            while let Some(r) = sending.next().await {
                r.map_err(|e| obj_err(key, e))?;
            }
            u.complete().await.map_err(|e| obj_err(key, e))?;
            Ok::<(), StoreError>(())
        }
        .await;
        match sent {
            Ok(()) => {
                guard.upload = None;
                Ok(Put {
                    bytes,
                    sha256: hex::encode(hasher.finalize()),
                })
            }
            Err(e) => {
                if let Some(a) = guard.take() {
                    a.abort().await;
                }
                Err(e)
            }
        }
    }

    /// Puts a local file at `key` and removes the local file: a rename on a
    /// local store (on the same file system), an upload otherwise.
    pub async fn move_file(&self, key: &str, file: &Path) -> Result<u64, StoreError> {
        if let Some(fs) = &self.local {
            let dest = fs
                .path_to_filesystem(&Artifacts::key(key)?)
                .map_err(|e| obj_err(key, e))?;
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(file_err(parent))?;
            }
            let len = tokio::fs::metadata(file)
                .await
                .map_err(file_err(file))?
                .len();
            if tokio::fs::rename(file, &dest).await.is_ok() {
                return Ok(len);
            }
        }
        let put = self.put_file(key, file).await?;
        let _ = tokio::fs::remove_file(file).await;
        Ok(put.bytes)
    }

    /// Puts `bytes` at `key` in one request.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.inner
            .put(&Artifacts::key(key)?, PutPayload::from(bytes))
            .await
            .map_err(|e| obj_err(key, e))?;
        Ok(())
    }

    /// Puts a file and, when it has one, its sidecar: the directory named as
    /// the file plus `suffix` (a cleaned output's `.tamis` directory of
    /// provenance, audit log and lineage) goes to `KEY+suffix/…`. The sidecar
    /// goes first, so a reader that finds the file finds what describes it.
    /// Returns what [`Artifacts::put_file`] returns for the file.
    pub async fn put_with_sidecar(
        &self,
        key: &str,
        file: &Path,
        suffix: &str,
    ) -> Result<Put, StoreError> {
        let side = sidecar(file, suffix);
        if side.is_dir() {
            for (rel, path) in walk(&side)? {
                self.put_file(&format!("{key}{suffix}/{rel}"), &path)
                    .await?;
            }
        }
        self.put_file(key, file).await
    }

    /// The size of the object at `key`.
    pub async fn size(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .head(&Artifacts::key(key)?)
            .await
            .map_err(|e| obj_err(key, e))?
            .size)
    }

    /// Streams the object at `key`.
    pub async fn get(&self, key: &str) -> Result<Download, StoreError> {
        let r = self
            .inner
            .get(&Artifacts::key(key)?)
            .await
            .map_err(|e| obj_err(key, e))?;
        let size = r.meta.size;
        let k = key.to_string();
        let stream = r
            .into_stream()
            .map(move |c| c.map_err(|e| obj_err(&k, e)))
            .boxed();
        Ok(Download { size, stream })
    }

    /// Reads the whole object at `key` (small artifacts: plans, logs, reports).
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let r = self
            .inner
            .get(&Artifacts::key(key)?)
            .await
            .map_err(|e| obj_err(key, e))?;
        Ok(r.bytes().await.map_err(|e| obj_err(key, e))?.to_vec())
    }

    /// The object at `key` as a local file, named as the key's last part:
    /// in place on a local store, else downloaded to scratch.
    pub async fn fetch(&self, key: &str) -> Result<LocalCopy, StoreError> {
        self.fetch_tree(key, true, None).await
    }

    /// As [`Artifacts::fetch`], with the object's sidecar (see
    /// [`Artifacts::put_with_sidecar`]) beside it.
    pub async fn fetch_with_sidecar(
        &self,
        key: &str,
        suffix: &str,
    ) -> Result<LocalCopy, StoreError> {
        self.fetch_tree(key, true, Some(suffix)).await
    }

    /// The sidecar of the object at `key` as local files, without the object
    /// itself: what reads only the sidecar (a clean output's provenance)
    /// downloads its few files, not an output of gigabytes. The copy's path
    /// is where the object would be (on a local store, where it is); the
    /// sidecar is beside it. A missing object is "not found", as for
    /// [`Artifacts::fetch_with_sidecar`].
    pub async fn fetch_sidecar(&self, key: &str, suffix: &str) -> Result<LocalCopy, StoreError> {
        self.fetch_tree(key, false, Some(suffix)).await
    }

    /// Fetches the object (when `object`) and its sidecar (with `suffix`).
    async fn fetch_tree(
        &self,
        key: &str,
        object: bool,
        suffix: Option<&str>,
    ) -> Result<LocalCopy, StoreError> {
        let k = Artifacts::key(key)?;
        if let Some(fs) = &self.local {
            let path = fs.path_to_filesystem(&k).map_err(|e| obj_err(key, e))?;
            if !path.is_file() {
                return Err(StoreError::NotFound(format!("artifact `{key}`")));
            }
            return Ok(LocalCopy { path, _temp: None });
        }
        std::fs::create_dir_all(&self.scratch).map_err(file_err(&self.scratch))?;
        let temp = tempfile::Builder::new()
            .prefix("fetch-")
            .tempdir_in(&self.scratch)
            .map_err(file_err(&self.scratch))?;
        let name = k.filename().unwrap_or("artifact").to_string();
        let path = temp.path().join(&name);
        if object {
            self.download(key, &path).await?;
        } else {
            self.size(key).await?;
        }
        if let Some(suffix) = suffix {
            let prefix = Artifacts::key(&format!("{key}{suffix}"))?;
            let mut list = self.inner.list(Some(&prefix));
            let side = sidecar(&path, suffix);
            while let Some(meta) = list.next().await {
                let meta = meta.map_err(|e| obj_err(key, e))?;
                let Some(rel) = meta.location.prefix_match(&prefix) else {
                    continue;
                };
                let mut dest = side.clone();
                for part in rel {
                    dest.push(part.as_ref());
                }
                self.download(meta.location.as_ref(), &dest).await?;
            }
        }
        Ok(LocalCopy {
            path,
            _temp: Some(temp),
        })
    }

    async fn download(&self, key: &str, dest: &Path) -> Result<(), StoreError> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(file_err(parent))?;
        }
        let mut d = self.get(key).await?;
        let mut f = tokio::fs::File::create(dest)
            .await
            .map_err(file_err(dest))?;
        while let Some(chunk) = d.stream.next().await {
            f.write_all(&chunk?).await.map_err(file_err(dest))?;
        }
        f.flush().await.map_err(file_err(dest))?;
        Ok(())
    }

    /// Deletes every object under `prefix` (a dataset's or a job's files).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let p = Artifacts::key(prefix)?;
        let metas: Vec<_> = self.inner.list(Some(&p)).collect().await;
        let mut n = 0;
        for m in metas {
            let m = m.map_err(|e| obj_err(prefix, e))?;
            self.inner
                .delete(&m.location)
                .await
                .map_err(|e| obj_err(m.location.as_ref(), e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Keys under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let p = Artifacts::key(prefix)?;
        let mut keys = Vec::new();
        let mut list = self.inner.list(Some(&p));
        while let Some(m) = list.next().await {
            keys.push(m.map_err(|e| obj_err(prefix, e))?.location.to_string());
        }
        keys.sort();
        Ok(keys)
    }

    /// Whether the store answers within three seconds (for readiness): a
    /// missing probe object is an answer; a refused connection, a denied
    /// request or silence is not.
    pub async fn check(&self) -> Result<(), StoreError> {
        const PROBE: &str = "_tamis/ready-probe";
        let key = Key::from(PROBE);
        let probe = self.inner.head(&key);
        match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
            Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(obj_err(PROBE, e)),
            Err(_) => Err(StoreError::ArtifactFile {
                path: PathBuf::from(&self.url),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 3 s"),
            }),
        }
    }
}

/// A file's sidecar directory (`FILE` + `suffix`).
fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The files under `dir`, as (relative key, path), sorted.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    while let Some((rel, d)) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(file_err(&d))? {
            let e = e.map_err(file_err(&d))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let p = e.path();
            if p.is_dir() {
                stack.push((r, p));
            } else {
                out.push((r, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks every operation against a store: tamis runs it on a local
/// directory in its own tests and on a real S3 server in the platform's.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance {
    #![allow(clippy::unwrap_used, missing_docs)]
    use super::*;

    fn sha(b: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(b).to_vec()
    }

    /// Starts putting a file of several parts at `root/abandoned.bin` and
    /// drops the put half-way, once `started` says the backend holds part
    /// of it: the object must not appear. The caller then checks, with
    /// [`eventually`], that the backend keeps none of its parts.
    pub async fn abandon_upload(
        a: &Artifacts,
        root: &str,
        work: &Path,
        started: impl Fn() -> bool,
    ) {
        std::fs::create_dir_all(work).unwrap();
        let f = work.join("abandoned.bin");
        std::fs::write(&f, vec![7u8; PART * 8]).unwrap();
        let k = format!("{root}/abandoned.bin");
        let mut put = Box::pin(a.put_file(&k, &f));
        loop {
            let tick = std::time::Duration::from_millis(1);
            match tokio::time::timeout(tick, &mut put).await {
                Ok(r) => panic!(
                    "the upload ended before it could be dropped: {:?}",
                    r.map(|p| p.bytes)
                ),
                Err(_) if started() => break,
                Err(_) => {}
            }
        }
        drop(put);
        assert!(
            matches!(a.size(&k).await, Err(StoreError::NotFound(_))),
            "an abandoned upload must not appear"
        );
    }

    /// Waits up to 10 s for `done` to hold; fails naming `what` otherwise.
    pub async fn eventually(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{what}: still not so after 10 s");
    }

    /// Runs the suite under `root/` of `a`; `work` is a local directory for files.
    pub async fn run(a: &Artifacts, root: &str, work: &Path) {
        std::fs::create_dir_all(work).unwrap();
        // Small objects: put, read, size, overwrite.
        let k = format!("{root}/small/plan.json");
        a.put_bytes(&k, b"{\"steps\":[]}".to_vec()).await.unwrap();
        assert_eq!(a.read(&k).await.unwrap(), b"{\"steps\":[]}");
        assert_eq!(a.size(&k).await.unwrap(), 12);
        a.put_bytes(&k, b"{}".to_vec()).await.unwrap();
        assert_eq!(a.read(&k).await.unwrap(), b"{}");

        // A file over two parts streams up and down unchanged.
        let big: Vec<u8> = (0..(PART * 2 + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let f = work.join("big.bin");
        std::fs::write(&f, &big).unwrap();
        let k = format!("{root}/big/data file é.bin");
        let put = a.put_file(&k, &f).await.unwrap();
        assert_eq!(put.bytes, big.len() as u64);
        assert_eq!(put.sha256, hex::encode(sha(&big)));
        let mut d = a.get(&k).await.unwrap();
        assert_eq!(d.size, big.len() as u64);
        let mut got = Vec::new();
        while let Some(c) = d.stream.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(sha(&got), sha(&big));
        let local = a.fetch(&k).await.unwrap();
        assert_eq!(
            local.path().file_name().unwrap().to_string_lossy(),
            "data file é.bin"
        );
        assert_eq!(sha(&std::fs::read(local.path()).unwrap()), sha(&big));
        let fetched = local.path().to_path_buf();
        drop(local);
        // A downloaded copy goes with its guard; a local store's file stays.
        assert_eq!(fetched.exists(), a.is_local());

        // Moving a file in removes the local one.
        let m = work.join("moved.csv");
        std::fs::write(&m, b"a,b\n1,2\n").unwrap();
        let k = format!("{root}/moved/upload.csv");
        assert_eq!(a.move_file(&k, &m).await.unwrap(), 8);
        assert!(!m.exists());
        assert_eq!(a.read(&k).await.unwrap(), b"a,b\n1,2\n");

        // An output travels with its sidecar, both ways.
        let out = work.join("clean.parquet");
        std::fs::write(&out, b"PAR1...PAR1").unwrap();
        let side = work.join("clean.parquet.side");
        std::fs::create_dir_all(side.join("nested")).unwrap();
        std::fs::write(side.join("lineage.json"), b"[1]").unwrap();
        std::fs::write(side.join("nested/cells.parquet"), b"cells").unwrap();
        let k = format!("{root}/jobs/j1/clean.parquet");
        a.put_with_sidecar(&k, &out, ".side").await.unwrap();
        let sidecar_came = |c: &LocalCopy| {
            let cs = super::sidecar(c.path(), ".side");
            assert_eq!(std::fs::read(cs.join("lineage.json")).unwrap(), b"[1]");
            assert_eq!(
                std::fs::read(cs.join("nested/cells.parquet")).unwrap(),
                b"cells"
            );
        };
        let c = a.fetch_with_sidecar(&k, ".side").await.unwrap();
        assert_eq!(std::fs::read(c.path()).unwrap(), b"PAR1...PAR1");
        sidecar_came(&c);
        drop(c);
        // The sidecar alone: its files, and the object only where a local
        // store keeps it anyway.
        let c = a.fetch_sidecar(&k, ".side").await.unwrap();
        assert_eq!(c.path().exists(), a.is_local());
        sidecar_came(&c);
        drop(c);
        assert_eq!(
            a.list(&format!("{root}/jobs")).await.unwrap(),
            [
                format!("{root}/jobs/j1/clean.parquet"),
                format!("{root}/jobs/j1/clean.parquet.side/lineage.json"),
                format!("{root}/jobs/j1/clean.parquet.side/nested/cells.parquet"),
            ]
        );

        // Missing objects are "not found", whatever the backend.
        for r in [
            a.read(&format!("{root}/nope")).await.map(|_| ()),
            a.fetch(&format!("{root}/nope")).await.map(|_| ()),
            a.fetch_sidecar(&format!("{root}/nope"), ".side")
                .await
                .map(|_| ()),
            a.size(&format!("{root}/nope")).await.map(|_| ()),
        ] {
            assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        }
        a.check().await.unwrap();

        // Deleting a prefix removes everything under it and nothing else.
        assert_eq!(a.delete_prefix(&format!("{root}/jobs")).await.unwrap(), 3);
        assert!(a.list(&format!("{root}/jobs")).await.unwrap().is_empty());
        assert_eq!(a.list(&format!("{root}/moved")).await.unwrap().len(), 1);
        a.delete_prefix(root).await.unwrap();
        assert!(a.list(root).await.unwrap().is_empty());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_local_directory_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let a = Artifacts::open(root.to_str().unwrap(), dir.path().join("scratch")).unwrap();
        assert!(a.is_local());
        assert!(a.url().starts_with("file://"));
        conformance::run(&a, "t", &dir.path().join("work")).await;
        // An abandoned upload leaves no staging file behind (object_store's
        // local upload removes its own; the S3 live test is the one that
        // needs the abort).
        let staged = || {
            walk(&root)
                .iter()
                .any(|p| p.to_string_lossy().contains("abandoned.bin#"))
        };
        conformance::abandon_upload(&a, "t", &dir.path().join("work"), staged).await;
        conformance::eventually("a staging file is left", || !staged()).await;
        // The same directory opened by URL sees the same objects.
        let b = Artifacts::open(&format!("file://{}", root.display()), dir.path()).unwrap();
        a.put_bytes("x/y.txt", b"1".to_vec()).await.unwrap();
        assert_eq!(b.read("x/y.txt").await.unwrap(), b"1");
        assert!(root.join("x/y.txt").is_file());
    }

    /// Every file under `dir`.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn unknown_schemes_and_bad_buckets_are_refused() {
        for url in ["gs://b/p", "s3:///p", "ftp://x"] {
            let e = Artifacts::open(url, "/tmp").unwrap_err();
            assert!(matches!(e, StoreError::BadArtifactsUrl(_)), "{url}: {e}");
            assert!(e.to_string().contains("s3://BUCKET"), "{e}");
        }
    }

    #[tokio::test]
    async fn keys_that_climb_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::open(dir.path().to_str().unwrap(), dir.path()).unwrap();
        for k in ["../x", "a/../../x", "a//b"] {
            assert!(a.put_bytes(k, b"x".to_vec()).await.is_err(), "{k}");
        }
    }
}

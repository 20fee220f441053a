//! A local (or network-mounted) folder that behaves like a blob container, for offline teams and
//! for tests. Create-if-absent is a hard link of a finished temporary file (atomic: it fails if
//! the name exists); compare-and-swap holds a lock file created with `O_EXCL` while it compares
//! the ETag and renames. ETags come from inode, modification time and size, so every write gives
//! a new one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::backend::{BlobInfo, Page, PutMode, Remote, RemoteError, RemoteResult};
use crate::sanitize::{check_relative_key, for_terminal};

use crate::fsutil::TMP_PREFIX;
const LOCK_SUFFIX: &str = ".termtag-lock";
const PAGE_SIZE: usize = 5000;
/// A lock older than this was left by a crashed writer and is broken.
const STALE_LOCK: Duration = Duration::from_secs(30);
/// A temporary file older than this belongs to a writer that was killed before its rename (a
/// live one finishes within seconds, or minutes for a huge file on a slow mount); listing removes it.
const STALE_TMP: Duration = Duration::from_secs(3600);

pub struct LocalRemote {
    root: PathBuf,
}

impl LocalRemote {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalRemote { root: root.into() }
    }

    fn path_of(&self, name: &str) -> RemoteResult<PathBuf> {
        check_relative_key(name).map_err(|msg| RemoteError::Other {
            what: self.show(name),
            msg: msg.to_string(),
        })?;
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.starts_with(TMP_PREFIX) || last.ends_with(LOCK_SUFFIX) {
            return Err(RemoteError::Other {
                what: self.show(name),
                msg: "names starting `.termtag-tmp-` or ending `.termtag-lock` are reserved".into(),
            });
        }
        Ok(self.root.join(name))
    }

    fn show(&self, name: &str) -> String {
        format!(
            "{}/{}",
            for_terminal(&self.root.to_string_lossy()),
            for_terminal(name)
        )
    }

    fn list_err(&self, e: std::io::Error) -> RemoteError {
        if e.kind() == std::io::ErrorKind::NotFound {
            RemoteError::NoContainer {
                what: self.describe(),
                msg: "no such folder".into(),
            }
        } else {
            self.io("", e)
        }
    }

    fn io(&self, name: &str, e: std::io::Error) -> RemoteError {
        match e.kind() {
            std::io::ErrorKind::NotFound => RemoteError::NotFound(self.show(name)),
            std::io::ErrorKind::PermissionDenied => RemoteError::Denied {
                what: self.show(name),
                msg: e.to_string(),
            },
            _ => RemoteError::Other {
                what: self.show(name),
                msg: e.to_string(),
            },
        }
    }
}

fn etag_of(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0u64;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{ino:x}-{mtime:x}-{:x}\"", meta.len())
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{t:x}", std::process::id())
}

/// Writes `data` to a fresh temporary file beside `dest` and syncs it.
fn write_tmp(dest: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{TMP_PREFIX}{}", unique_suffix()));
    let mut f = std::fs::File::create_new(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(tmp)
}

/// Holds `<dest>.termtag-lock` until dropped.
struct Lock(PathBuf);

impl Lock {
    fn take(dest: &Path) -> std::io::Result<Lock> {
        let mut name = dest.as_os_str().to_owned();
        name.push(LOCK_SUFFIX);
        let path = PathBuf::from(name);
        // Longer than STALE_LOCK, so that a lock left by a killed writer is outwaited and broken.
        let deadline = SystemTime::now() + STALE_LOCK + Duration::from_secs(10);
        loop {
            match std::fs::File::create_new(&path) {
                Ok(_) => return Ok(Lock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if SystemTime::now() > deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("lock {} held too long", path.display()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

enum Outcome<T> {
    Done(T),
    Conflict,
}

fn put_sync(dest: &Path, data: &[u8], mode: &PutMode) -> std::io::Result<Outcome<String>> {
    let tmp = write_tmp(dest, data)?;
    let result = (|| match mode {
        PutMode::Overwrite => {
            let _lock = Lock::take(dest)?;
            std::fs::rename(&tmp, dest)?;
            Ok(Outcome::Done(etag_of(&std::fs::metadata(dest)?)))
        }
        PutMode::Create => match std::fs::hard_link(&tmp, dest) {
            Ok(()) => Ok(Outcome::Done(etag_of(&std::fs::metadata(dest)?))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Outcome::Conflict),
            Err(e) => Err(e),
        },
        PutMode::IfMatch(etag) => {
            let _lock = Lock::take(dest)?;
            match std::fs::metadata(dest) {
                Ok(m) if &etag_of(&m) == etag => {
                    std::fs::rename(&tmp, dest)?;
                    Ok(Outcome::Done(etag_of(&std::fs::metadata(dest)?)))
                }
                Ok(_) => Ok(Outcome::Conflict),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::Conflict),
                Err(e) => Err(e),
            }
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn delete_sync(dest: &Path, if_match: Option<&str>) -> std::io::Result<Outcome<()>> {
    let _lock = Lock::take(dest)?;
    let meta = std::fs::metadata(dest)?;
    if if_match.is_some_and(|e| e != etag_of(&meta)) {
        return Ok(Outcome::Conflict);
    }
    std::fs::remove_file(dest)?;
    Ok(Outcome::Done(()))
}

fn list_sync(root: &Path, prefix: &str) -> std::io::Result<Vec<BlobInfo>> {
    let mut out = Vec::new();
    if !root.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such folder",
        ));
    }
    // Walk only the folder the prefix names, not the whole tree.
    let start = match prefix.rfind('/') {
        Some(i) => root.join(&prefix[..i]),
        None => root.to_path_buf(),
    };
    if !start.is_dir() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(&start).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let file = entry.file_name().to_string_lossy();
        if file.starts_with(TMP_PREFIX) {
            let stale = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        if file.ends_with(LOCK_SUFFIX) {
            continue;
        }
        let Some(name) = crate::index::key_of(root, entry.path()) else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        let meta = entry.metadata().map_err(std::io::Error::other)?;
        out.push(BlobInfo {
            name,
            etag: etag_of(&meta),
            size: meta.len(),
            modified_ms: modified_ms(&meta),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
    what: String,
) -> RemoteResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RemoteError::Other {
            what,
            msg: format!("worker failed: {e}"),
        })
}

#[async_trait]
impl Remote for LocalRemote {
    fn describe(&self) -> String {
        for_terminal(&self.root.to_string_lossy())
    }

    async fn ensure_exists(&self) -> RemoteResult<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| self.io("", e))
    }

    async fn list_page(&self, prefix: &str, marker: Option<String>) -> RemoteResult<Page> {
        let root = self.root.clone();
        let p = prefix.to_string();
        let all = blocking(move || list_sync(&root, &p), self.describe())
            .await?
            .map_err(|e| self.list_err(e))?;
        let start = match &marker {
            Some(m) => all.partition_point(|b| b.name.as_str() <= m.as_str()),
            None => 0,
        };
        let end = (start + PAGE_SIZE).min(all.len());
        let items = all[start..end].to_vec();
        let next =
            (end < all.len()).then(|| items.last().map(|b| b.name.clone()).unwrap_or_default());
        Ok(Page { items, next })
    }

    async fn list_all(&self, prefix: &str) -> RemoteResult<Vec<BlobInfo>> {
        let root = self.root.clone();
        let p = prefix.to_string();
        blocking(move || list_sync(&root, &p), self.describe())
            .await?
            .map_err(|e| self.list_err(e))
    }

    async fn get(&self, name: &str) -> RemoteResult<(Vec<u8>, String)> {
        let path = self.path_of(name)?;
        let r = blocking(
            move || -> std::io::Result<(Vec<u8>, String)> {
                // Read and stat the same open file so the ETag belongs to these bytes.
                use std::io::Read;
                let mut f = std::fs::File::open(&path)?;
                let meta = f.metadata()?;
                let mut buf = Vec::with_capacity(meta.len() as usize);
                f.read_to_end(&mut buf)?;
                Ok((buf, etag_of(&meta)))
            },
            self.show(name),
        )
        .await?;
        r.map_err(|e| self.io(name, e))
    }

    async fn put(&self, name: &str, data: Vec<u8>, mode: PutMode) -> RemoteResult<String> {
        let path = self.path_of(name)?;
        let r = blocking(move || put_sync(&path, &data, &mode), self.show(name)).await?;
        match r.map_err(|e| self.io(name, e))? {
            Outcome::Done(etag) => Ok(etag),
            Outcome::Conflict => Err(RemoteError::Conflict(self.show(name))),
        }
    }

    async fn delete(&self, name: &str, if_match: Option<&str>) -> RemoteResult<()> {
        let path = self.path_of(name)?;
        let m = if_match.map(str::to_string);
        let r = blocking(move || delete_sync(&path, m.as_deref()), self.show(name)).await?;
        match r.map_err(|e| self.io(name, e))? {
            Outcome::Done(()) => Ok(()),
            Outcome::Conflict => Err(RemoteError::Conflict(self.show(name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_removes_temporary_files_left_by_a_killed_writer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        let stale = dir.path().join(format!("{TMP_PREFIX}killed"));
        let live = dir.path().join(format!("{TMP_PREFIX}writing"));
        for p in [&stale, &live] {
            std::fs::write(p, b"half").unwrap();
        }
        let old = SystemTime::now() - STALE_TMP - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let names: Vec<String> = list_sync(dir.path(), "")
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["a.png"]);
        assert!(
            !stale.exists(),
            "a writer's leftover from an hour ago is removed"
        );
        assert!(live.exists(), "a write in progress is left alone");
    }
}

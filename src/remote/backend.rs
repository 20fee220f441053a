//! The one interface both remotes implement: a flat namespace of blobs (one container) with
//! listing by pages, reads, conditional writes and conditional deletes. Claims and immutable
//! batches are built on the two conditions alone, so any backend that honours them is race-free.

use async_trait::async_trait;

/// One listed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub etag: String,
    pub size: u64,
    /// Unix ms.
    pub modified_ms: i64,
}

/// One page of a listing; `next` is the marker for the following page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<BlobInfo>,
    pub next: Option<String>,
}

/// Condition on a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// `If-None-Match: *`: create only; fails with [`RemoteError::Conflict`] if the blob exists.
    Create,
    /// `If-Match: etag`: replace only the version we read; fails with [`RemoteError::Conflict`]
    /// if someone changed or removed it meanwhile.
    IfMatch(String),
}

/// Errors name the blob and say what to do; the message never carries a secret (it has passed
/// through [`super::auth::redact`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}: no such blob")]
    NotFound(String),
    #[error("{0}: changed by someone else meanwhile (condition failed)")]
    Conflict(String),
    #[error(
        "{what}: access denied ({msg}); the key or SAS may be wrong or expired, or lack a permission: check the SAS permissions (read, add, create, write, delete, list) or the role assignment"
    )]
    Denied { what: String, msg: String },
    #[error("{what}: the container does not exist ({msg}); create it or fix the [remote] settings")]
    NoContainer { what: String, msg: String },
    #[error(
        "{what}: cannot reach the storage ({msg}); check the network, the endpoint and that the storage runs, then run the command again: it resumes"
    )]
    Unreachable { what: String, msg: String },
    #[error("{what}: {msg}")]
    Other { what: String, msg: String },
}

impl RemoteError {
    /// The service or the network failed, not the request: a later run may succeed (the backend
    /// has already spent its retry budget).
    pub fn is_transient(&self) -> bool {
        matches!(self, RemoteError::Unreachable { .. })
    }
}

pub type RemoteResult<T> = Result<T, RemoteError>;

/// A blob container (or a local folder with the same semantics).
#[async_trait]
pub trait Remote: Send + Sync {
    /// Where this is, for messages; never holds a secret.
    fn describe(&self) -> String;
    /// Creates the container if it is missing (tests, benchmarks, `[remote] folder` setups).
    async fn ensure_exists(&self) -> RemoteResult<()>;
    /// Blobs whose name starts with `prefix`, in name order, one page at a time.
    async fn list_page(&self, prefix: &str, marker: Option<String>) -> RemoteResult<Page>;
    /// The content and the ETag.
    async fn get(&self, name: &str) -> RemoteResult<(Vec<u8>, String)>;
    /// Writes `data`; returns the new ETag.
    async fn put(&self, name: &str, data: Vec<u8>, mode: PutMode) -> RemoteResult<String>;
    /// Deletes, only if the ETag still matches when given. Deleting a missing blob is NotFound.
    async fn delete(&self, name: &str, if_match: Option<&str>) -> RemoteResult<()>;
    /// Every blob under `prefix`, following the pages; a backend may do it in one go.
    async fn list_all(&self, prefix: &str) -> RemoteResult<Vec<BlobInfo>> {
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let page = self.list_page(prefix, marker).await?;
            out.extend(page.items);
            match page.next {
                Some(m) if !m.is_empty() => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }
}

/// Every blob under `prefix`, following the pages.
pub async fn list_all(remote: &dyn Remote, prefix: &str) -> RemoteResult<Vec<BlobInfo>> {
    remote.list_all(prefix).await
}

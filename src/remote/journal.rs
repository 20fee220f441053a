//! The small journals (`.termtag/pull-pending.json`, `push-pending.json`) that let an
//! interrupted pull or push resume.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::project::STATE_DIR;
use crate::sanitize::show_path;

pub(super) const PULL_JOURNAL: &str = "pull-pending.json";
pub(super) const PUSH_JOURNAL: &str = "push-pending.json";

/// A journal that cannot be read or written; `path` is shown sanitised.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: cannot read")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unreadable; delete it to start over (remote claims expire on their own)")]
    Unreadable {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: cannot write")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Where the journal `name` of the project at `root` lives.
pub(super) fn journal_path(root: &Path, name: &str) -> PathBuf {
    root.join(STATE_DIR).join(name)
}

pub(super) fn write_json_atomic<T: Serialize>(path: &Path, v: &T) -> Result<(), JournalError> {
    let write = |source| JournalError::Write {
        path: show_path(path),
        source,
    };
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| write(e.into()))?;
    crate::fsutil::write_atomic(path, &bytes).map_err(write)
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, JournalError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|source| {
            JournalError::Unreadable {
                path: show_path(path),
                source,
            }
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(JournalError::Read {
            path: show_path(path),
            source,
        }),
    }
}

//! The small journals (`.termtag/pull-pending.json`, `push-pending.json`) that let an
//! interrupted pull or push resume.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::project::STATE_DIR;
use crate::sanitize::show_path;

pub(super) const PULL_JOURNAL: &str = "pull-pending.json";
pub(super) const PUSH_JOURNAL: &str = "push-pending.json";

/// Where the journal `name` of the project at `root` lives.
pub(super) fn journal_path(root: &Path, name: &str) -> PathBuf {
    root.join(STATE_DIR).join(name)
}

pub(super) fn write_json_atomic<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::fsutil::write_atomic(path, &serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("{}: cannot write", show_path(path)))
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!(
                "{}: unreadable; delete it to start over (remote claims expire on their own)",
                show_path(path)
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", show_path(path))),
    }
}

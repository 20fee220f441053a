//! Command bodies, one file per command; `cli.rs` only parses and dispatches to them. Those the
//! review screen's background jobs also run (pull, push) return a report whose `Display` is the
//! summary both show: the CLI adds a progress bar and prints; the screen turns progress into its
//! status line.

pub mod classes;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod export;
pub mod images;
pub mod import;
pub mod init;
pub mod label;
pub mod predict;
pub mod progress;
pub mod pull;
pub mod push;
pub mod queue;
pub mod refresh;
pub mod simulate;
pub mod stats;
pub mod train;

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::sanitize::{safe_join, show_path};
use crate::store::Filter;

/// A runtime of their own for the async transfers of `pull` and `push`.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?)
}

/// A `--filter` whose `boxes=` counts the proposals the review screen shows.
fn project_filter(project: &Project, text: &str) -> Result<Filter> {
    let mut filter = Filter::parse(text)?;
    filter.proposals_from = project.config.prelabel_threshold;
    Ok(filter)
}

/// Deletes the source files of removed images (`images rm`, `classes delete --delete-source`);
/// keys are checked so nothing outside the source folder can be touched.
fn delete_sources(project: &Project, keys: &[String]) -> Result<usize> {
    let Some(dir) = project.source_dir() else {
        bail!("the source is a blob container; deleting blobs is not supported from here");
    };
    let mut deleted = 0;
    for key in keys {
        let path = safe_join(&dir, key).map_err(anyhow::Error::msg)?;
        match std::fs::remove_file(&path) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot delete", show_path(&path)));
            }
        }
    }
    Ok(deleted)
}

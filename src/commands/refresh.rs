//! `termtag refresh`, and the scan `init` ends with.

use std::fmt;

use anyhow::Result;

use super::progress;
use crate::project::{Project, RefreshReport};
use crate::sanitize::for_terminal;
use crate::store::Store;

/// Adds the images that appeared in the source folder, with a bar while it indexes.
pub fn index(project: &Project, store: &mut Store) -> Result<RefreshReport> {
    let bar = progress::bar("indexing {bar:30} {pos}/{len} images ({per_sec}, {eta} left)");
    let report = project.refresh(store, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// Warnings and broken images on stderr, then the summary.
pub fn print(r: &RefreshReport) -> Result<()> {
    if !r.remote {
        for w in &r.warnings {
            errln!("warning: {w}");
        }
        for (key, why) in &r.broken {
            errln!("broken: {}: {}", for_terminal(key), for_terminal(why));
        }
    }
    outln!("{r}")?;
    Ok(())
}

/// The command line.
pub fn run(project: &Project, store: &mut Store) -> Result<()> {
    print(&index(project, store)?)
}

impl fmt::Display for RefreshReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.remote {
            return f
                .write_str("the source is a blob container: images arrive with `termtag pull`");
        }
        write!(
            f,
            "added {} images ({} broken)",
            self.added,
            self.broken.len()
        )
    }
}

//! `termtag push`, and the review screen's push (`P`).

use std::fmt;

use anyhow::Result;

use super::progress;
use crate::project::Project;
use crate::remote::{self, Progress, PushReport};
use crate::store::Store;

/// Pushes the reviewed labels of claimed images to the project's remote.
pub fn job(
    project: &Project,
    store: &mut Store,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PushReport> {
    let set = remote::open(project)?;
    Ok(super::runtime()?.block_on(remote::push(project, store, &set, progress))?)
}

/// The command line: a bar while it runs, then warnings on stderr and the summary.
pub fn run(project: &Project, store: &mut Store) -> Result<()> {
    let bar = progress::transfer_bar();
    let report = job(project, store, &|p| progress::show(&bar, p));
    bar.finish_and_clear();
    let report = report?;
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    outln!("{report}")?;
    Ok(())
}

impl fmt::Display for PushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(id) = &self.batch_id else {
            return write!(
                f,
                "nothing to push: no reviewed image holds a claim ({} claimed images still to review)",
                self.still_held
            );
        };
        write!(
            f,
            "{}pushed {} images, {} labels as batch {id}; wrote {}; {} claimed images still to review",
            if self.resumed { "resumed and " } else { "" },
            self.images,
            self.labels,
            if self.csvs.is_empty() {
                "no ALD CSV (classification)".to_string()
            } else {
                self.csvs.join(", ")
            },
            self.still_held
        )
    }
}

//! `termtag pull`, and the review screen's pull (`F`).

use std::fmt;

use anyhow::Result;

use super::progress;
use crate::project::Project;
use crate::remote::{self, Progress, PullOptions, PullReport};
use crate::sanitize::for_terminal;
use crate::store::Store;

/// How many images a pull claims unless told otherwise (`--count`); the screen's pull too.
pub const DEFAULT_COUNT: usize = 50;

/// Claims and downloads `count` images of the project's remote: the job the CLI and the
/// review screen's `F` both run.
pub fn job(
    project: &Project,
    store: &mut Store,
    count: usize,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PullReport> {
    let set = remote::open(project)?;
    let opts = PullOptions {
        count,
        ..PullOptions::default()
    };
    Ok(super::runtime()?.block_on(remote::pull(project, store, &set, &opts, progress))?)
}

/// The command line: a bar while it runs, then warnings and refusals on stderr and the summary.
pub fn run(project: &Project, store: &mut Store, count: usize) -> Result<()> {
    let bar = progress::transfer_bar();
    let report = job(project, store, count, &|p| progress::show(&bar, p));
    bar.finish_and_clear();
    let report = report?;
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    for (name, why) in &report.refused {
        errln!("refused: {name}: {}", for_terminal(why));
    }
    outln!("{report}")?;
    Ok(())
}

impl fmt::Display for PullReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resumed > 0 {
            write!(
                f,
                "resumed {} claims of an interrupted pull; ",
                self.resumed
            )?;
        }
        write!(
            f,
            "pulled {} images ({} taken over from expired claims, {} predictions, {:.1} MB) as batch {}; {} unclaimed {}left",
            self.claimed.len(),
            self.taken_over,
            self.predictions,
            self.bytes as f64 / 1e6,
            self.batch_id,
            self.remaining,
            // Without a listing only the predicted images are counted.
            if self.listed { "" } else { "predicted images " }
        )
    }
}

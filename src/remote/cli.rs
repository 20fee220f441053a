//! `termtag pull` and `termtag push`: run the async operations on a runtime of their own, with a
//! progress bar on a terminal and plain lines otherwise.

use std::io::IsTerminal;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Progress, PullOptions};
use crate::project::Project;
use crate::sanitize::for_terminal;
use crate::store::Store;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?)
}

fn bar() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    }
}

fn show(bar: &ProgressBar, p: Progress) {
    match p {
        Progress::Listing { found } => bar.set_message(format!("listing: {found} images")),
        Progress::Claiming { done, total } => {
            bar.set_message("claiming");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        Progress::Downloading { done, total } => {
            bar.set_message("downloading");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        Progress::Uploading { done, total } => {
            bar.set_message("uploading");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        Progress::Step(s) => bar.set_message(s),
    }
}

pub fn cmd_pull(project: &Project, store: &mut Store, count: usize) -> Result<()> {
    let set = super::open(project)?;
    let bar = bar();
    let opts = PullOptions {
        count,
        ..PullOptions::default()
    };
    let report = runtime()?.block_on(super::pull(project, store, &set, &opts, &|p| show(&bar, p)));
    bar.finish_and_clear();
    let report = report?;
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    for (name, why) in &report.refused {
        errln!("refused: {name}: {}", for_terminal(why));
    }
    if report.resumed > 0 {
        outln!("resumed {} claims of an interrupted pull", report.resumed)?;
    }
    outln!(
        "pulled {} images ({} taken over from expired claims, {:.1} MB, {} predictions) as batch {}; {} unclaimed {}images left",
        report.claimed.len(),
        report.taken_over,
        report.bytes as f64 / 1e6,
        report.predictions,
        report.batch_id,
        report.remaining,
        if report.listed { "" } else { "predicted " }
    )?;
    Ok(())
}

pub fn cmd_push(project: &Project, store: &mut Store) -> Result<()> {
    let set = super::open(project)?;
    let bar = bar();
    let report = runtime()?.block_on(super::push(project, store, &set, &|p| show(&bar, p)));
    bar.finish_and_clear();
    let report = report?;
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    match &report.batch_id {
        None => outln!(
            "nothing to push: no reviewed image holds a claim ({} claimed images still to review)",
            report.still_held
        )?,
        Some(id) => outln!(
            "{}pushed batch {id}: {} images, {} labels; wrote {}; {} claimed images still to review",
            if report.resumed { "resumed and " } else { "" },
            report.images,
            report.labels,
            if report.csvs.is_empty() {
                "no ALD CSV (classification)".to_string()
            } else {
                report.csvs.join(", ")
            },
            report.still_held
        )?,
    }
    Ok(())
}

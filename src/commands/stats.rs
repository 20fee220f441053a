//! `termtag stats`: counts per status, class and annotator, and review speed.

use anyhow::Result;

use crate::project::Project;
use crate::sanitize::for_terminal;
use crate::store::{Speed, Store};

pub fn run(project: &Project, store: &Store) -> Result<()> {
    let s = store.stats()?;
    outln!(
        "project {} ({}), {} images",
        for_terminal(&project.config.name),
        project.config.task,
        s.images
    )?;
    let statuses: Vec<String> = s
        .by_status
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    outln!("status: {}", statuses.join(", "))?;
    outln!("verified empty: {}", s.verified_empty)?;
    outln!("predicted: {}", s.predicted_images)?;
    let threshold = project.config.prelabel_threshold;
    let p = store.proposal_counts(threshold)?;
    outln!(
        "proposals: {} open (score ≥ {threshold}), {} dismissed, {} superseded by labels",
        p.open,
        p.dismissed,
        p.superseded
    )?;
    outln!("{:<24}{:>8}{:>8}", "class", "labels", "images")?;
    for (name, labels, images) in &s.by_class {
        outln!("  {:<22}{labels:>8}{images:>8}", for_terminal(name))?;
    }
    if !s.by_annotator.is_empty() {
        outln!("{:<24}{:>8}{:>8}", "annotator", "images", "labels")?;
        for (who, (images, labels)) in &s.by_annotator {
            outln!("  {:<22}{images:>8}{labels:>8}", for_terminal(who))?;
        }
    }
    if !s.speed.is_empty() {
        // Active time only: pauses over a minute between two keys are not counted.
        outln!("{:<16}{}", "review speed", Speed::HEADER)?;
        let all = Speed::total(&s.speed, "all");
        let total = (s.speed.len() > 1).then_some(&all);
        for sp in s.speed.iter().chain(total) {
            outln!("  {:<14}{}", for_terminal(&sp.author), sp.row())?;
        }
    }
    Ok(())
}

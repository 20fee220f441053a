//! `termtag import`: labels or predictions from a file or folder.

use anyhow::Result;

use crate::cli::{ImportArgs, ImportKind};
use crate::project::{ClassMap, Project};
use crate::sanitize::for_terminal;
use crate::store::Store;

pub fn run(project: &Project, store: &mut Store, args: &ImportArgs) -> Result<()> {
    let map = match &args.class_map {
        Some(s) => ClassMap::parse(s)?,
        None => ClassMap::default(),
    };
    let predictions = args.kind == ImportKind::Predictions;
    let report = project.import(
        store,
        &args.path,
        args.format,
        predictions,
        &map,
        args.add_classes,
        args.skip_missing,
    )?;
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    if !report.classes_added.is_empty() {
        outln!(
            "added classes: {}",
            for_terminal(&report.classes_added.join(", "))
        )?;
    }
    let c = &report.counts;
    outln!(
        "imported {} {} on {} images ({} with none){}; skipped {} rows (images not in the project)",
        c.labels,
        if predictions { "predictions" } else { "labels" },
        c.images,
        c.empty,
        report
            .run_id
            .map(|r| format!(" as model run {r}"))
            .unwrap_or_default(),
        report.skipped_rows
    )?;
    Ok(())
}

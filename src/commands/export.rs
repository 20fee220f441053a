//! `termtag export`: the reviewed labels (or the latest predictions) in a format.

use std::path::Path;

use anyhow::Result;

use crate::formats::FormatKind;
use crate::project::Project;
use crate::sanitize::show_path;
use crate::store::Store;

pub fn run(
    project: &Project,
    store: &Store,
    format: FormatKind,
    out: &Path,
    predictions: bool,
) -> Result<()> {
    let (ds, files) = project.export(store, format, out, predictions)?;
    let labels: usize = ds.images.iter().map(|i| i.labels.len()).sum();
    outln!(
        "exported {} images, {labels} {} as {} to {} ({} files)",
        ds.images.len(),
        if predictions { "predictions" } else { "labels" },
        format.name(),
        show_path(out),
        files.len()
    )?;
    Ok(())
}

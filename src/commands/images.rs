//! `termtag images list|rm`.

use anyhow::Result;

use crate::cli::ImagesCmd;
use crate::project::Project;
use crate::sanitize::for_terminal;
use crate::store::Store;

pub fn run(project: &Project, store: &mut Store, cmd: ImagesCmd) -> Result<()> {
    match cmd {
        ImagesCmd::List { filter } => {
            let filter = super::project_filter(project, &filter)?;
            for im in store.images(&filter)? {
                let when = im.reviewed_at.map(format_day).unwrap_or_default();
                let mut classes = im.classes.clone();
                classes.dedup();
                outln!(
                    "{}\t{}\t{}x{}\t{}\t{}\t{}{}",
                    for_terminal(&im.key),
                    im.status,
                    im.width,
                    im.height,
                    for_terminal(&classes.join(",")),
                    for_terminal(im.reviewed_by.as_deref().unwrap_or("")),
                    when,
                    im.error
                        .map(|e| format!("\t{}", for_terminal(&e)))
                        .unwrap_or_default()
                )?;
            }
        }
        ImagesCmd::Rm {
            keys,
            delete_source,
        } => {
            let removed = store.remove_images(&keys)?;
            let deleted = if delete_source {
                super::delete_sources(project, &removed)?
            } else {
                0
            };
            outln!(
                "removed {} images from the project{}",
                removed.len(),
                if delete_source {
                    format!(", deleted {deleted} files")
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(())
}

fn format_day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

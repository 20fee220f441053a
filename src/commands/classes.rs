//! `termtag classes add|rename|merge|delete`.

use anyhow::Result;

use crate::cli::ClassesCmd;
use crate::project::Project;
use crate::sanitize::for_terminal;
use crate::store::Store;

pub fn run(project: &Project, store: &mut Store, cmd: ClassesCmd) -> Result<()> {
    match cmd {
        ClassesCmd::Add { names } => {
            let n = store.add_classes(&names)?;
            outln!("added {n} classes")?;
        }
        ClassesCmd::Rename { old, new } => {
            store.rename_class(&old, &new)?;
            outln!("renamed {} to {}", for_terminal(&old), for_terminal(&new))?;
        }
        ClassesCmd::Merge { from, into } => {
            let n = store.merge_class(&from, &into)?;
            outln!(
                "merged {} into {}: {n} labels moved",
                for_terminal(&from),
                for_terminal(&into)
            )?;
        }
        ClassesCmd::Delete {
            name,
            with_images,
            delete_source,
        } => {
            let (labels, removed) = store.delete_class(&name, with_images)?;
            let deleted = if delete_source {
                super::delete_sources(project, &removed)?
            } else {
                0
            };
            outln!(
                "deleted class {}: {labels} labels, {} images removed{}",
                for_terminal(&name),
                removed.len(),
                if delete_source {
                    format!(", {deleted} files deleted")
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(())
}

//! `termtag train`: the command edge of [`crate::train`].

use anyhow::Result;

use crate::project::Project;
use crate::sanitize::show_path;
use crate::store::Store;

/// `termtag train`.
pub fn run(project: &Project, store: &mut Store, if_due: bool) -> Result<()> {
    let report = crate::train::train(project, store, if_due)?;
    match report {
        None => outln!("training not due yet ([train] every)")?,
        Some(r) => {
            outln!(
                "trained on {} reviewed images; model {} registered as model run {}; log {}",
                r.reviewed,
                show_path(&r.model),
                r.run_id,
                show_path(&r.log)
            )?;
            outln!("next: termtag predict --model {}", show_path(&r.model))?;
        }
    }
    Ok(())
}

//! `termtag doctor`: what works here (ONNX Runtime, graphics, the remote); outside a project too.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;

use crate::project::Project;
use crate::sanitize::for_terminal;
use crate::tui::graphics::GraphicsChoice;

/// `start`: where to look for a project; without one, the machine alone is reported.
pub fn run(start: &Path) -> Result<()> {
    let project = Project::discover(start).ok();
    for line in crate::infer::doctor_lines(project.as_ref()) {
        outln!("{line}")?;
    }
    outln!("graphics: {}", graphics())?;
    if let Some(p) = &project {
        outln!("blob storage: {}", remote(p))?;
    }
    Ok(())
}

/// What the review screen would draw with here, why, and the cell size it fits pictures to.
fn graphics() -> String {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return "not a terminal: run doctor in the terminal you review in (halfblocks always work)"
            .into();
    }
    let setup = crate::tui::graphics::detect(GraphicsChoice::Auto);
    let (w, h) = setup.cell;
    format!(
        "{} ({}); cell {w}×{h} px",
        setup.kind.name(),
        for_terminal(&setup.why)
    )
}

/// Whether the remote is configured and answers, without printing any secret.
fn remote(project: &Project) -> String {
    let remote =
        crate::project::is_remote(&project.config.source) || project.config.remote.folder.is_some();
    if !remote {
        return "not used (the source is a local folder)".into();
    }
    let check = || -> Result<String> {
        let set = crate::remote::open(project)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let page = rt.block_on(set.images.list_page(&set.prefix, None))?;
        Ok(format!(
            "{} answers; first page lists {} images",
            for_terminal(&set.name),
            page.items.len()
        ))
    };
    check().unwrap_or_else(|e| {
        format!(
            "not working: {}",
            crate::remote::auth::redact(&format!("{e:#}"))
        )
    })
}

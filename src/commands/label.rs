//! `termtag label` (the default): the review screen.

use anyhow::Result;

use crate::project::Project;
use crate::tui::app::AppError;
use crate::tui::graphics::GraphicsChoice;

pub fn run(project: &Project, graphics: GraphicsChoice) -> Result<()> {
    log_to_file(project);
    crate::tui::app::run(project, graphics).map_err(|e| match e {
        // The terminal's own I/O error stays one, as `main` expects of a reader gone away.
        AppError::Terminal(io) => io.into(),
        e => e.into(),
    })
}

/// The review screen owns the terminal: logs go to `.termtag/termtag.log` (level from TERMTAG_LOG).
fn log_to_file(project: &Project) {
    crate::logging::to_file(
        &project
            .root
            .join(crate::project::STATE_DIR)
            .join("termtag.log"),
    );
}

//! `termtag demo`: build the wood-board demo and open it (or, hidden, only write boards).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;

use crate::demo::DemoOptions;
use crate::sanitize::show_path;
use crate::tui::graphics::GraphicsChoice;

/// With `boards`, only writes that many boards and their ground truth into `dir`.
pub fn run(
    dir: &Path,
    graphics: GraphicsChoice,
    opts: &DemoOptions,
    boards: Option<u32>,
    seed: u64,
) -> Result<()> {
    if let Some(n) = boards {
        let labels = crate::demo::write_boards(dir, n, seed)?;
        outln!("wrote {n} boards (seed {seed}) and {}", show_path(&labels))?;
        return Ok(());
    }
    let project = crate::demo::build(dir, opts, &|line| {
        let _ = outln!("{line}");
    })?;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return super::label::run(&project, graphics);
    }
    outln!("demo project in {}", show_path(&project.root))?;
    super::stats::run(&project, &project.store()?)?;
    outln!(
        "open it in a terminal: termtag -C {}",
        show_path(&project.root)
    )?;
    Ok(())
}

//! `termtag init`: create a project (or add classes to one), then scan its source.

use std::path::Path;

use anyhow::Result;

use crate::model::Task;
use crate::project::Project;
use crate::sanitize::{for_terminal, show_path};

pub fn run(dir: &Path, task: Task, classes: &[String], source: Option<&str>) -> Result<()> {
    let project = Project::init(dir, task, classes, source)?;
    let mut store = project.store()?;
    let report = super::refresh::index(&project, &mut store)?;
    outln!(
        "project {} ({}) in {}",
        for_terminal(&project.config.name),
        project.config.task,
        show_path(&project.root)
    )?;
    super::refresh::print(&report)
}

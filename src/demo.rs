//! `termtag demo`: a small detection project built from files embedded in the binary, so it works
//! from any folder with nothing but `termtag`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::formats::{FormatKind, show_path};
use crate::model::Task;
use crate::project::{ClassMap, Project};

const IMAGES: &[(&str, &[u8])] = &[
    (
        "astronaut.png",
        include_bytes!("../demo/images/astronaut.png"),
    ),
    ("chelsea.png", include_bytes!("../demo/images/chelsea.png")),
    ("coffee.png", include_bytes!("../demo/images/coffee.png")),
    (
        "grace_hopper.jpg",
        include_bytes!("../demo/images/grace_hopper.jpg"),
    ),
    ("rocket.jpg", include_bytes!("../demo/images/rocket.jpg")),
];
const LABELS: &str = include_str!("../demo/labels.coco.json");
const CLASSES: &[&str] = &["cup", "bowl", "spoon", "cat", "person"];

/// Creates the demo project in `dir` (or reuses it, keeping the labels made there).
pub fn build(dir: &Path) -> Result<Project> {
    if dir.join(crate::project::CONFIG_FILE).is_file() {
        return Project::load(&dir.canonicalize()?);
    }
    let images = dir.join("images");
    std::fs::create_dir_all(&images)
        .with_context(|| format!("{}: cannot create", show_path(&images)))?;
    for (name, bytes) in IMAGES {
        std::fs::write(images.join(name), bytes)?;
    }
    let labels = dir.join("labels.coco.json");
    std::fs::write(&labels, LABELS)?;
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    let project = Project::init(dir, Task::Detect, &classes, Some(&images.to_string_lossy()))?;
    let mut store = project.store()?;
    project.refresh(&mut store, &|_, _| {})?;
    project.import(
        &mut store,
        &labels,
        FormatKind::Coco,
        false,
        &ClassMap::default(),
        false,
        false,
    )?;
    Ok(project)
}

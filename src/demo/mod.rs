//! `termtag demo`: a wood-board inspection project where the model-assisted loop is real. Boards
//! come from the deterministic generator ([`boards`]) into a local-folder remote; the first batch
//! is pulled, 20 boards come labelled, the committed detector pre-labels the rest live (or, with
//! no ONNX Runtime to be had, its recorded predictions are imported), and `[train] command` runs
//! the committed trainer. Everything lives inside the demo folder.

pub mod boards;
mod runtime;

use std::path::{Path, PathBuf};

use crate::formats::{ExportCtx, FormatError, FormatKind, ImageIndex, ImportCtx, KnownImage};
use crate::logging::causes;
use crate::model::{Dataset, Task};
use crate::project::{CONFIG_FILE, ClassMap, Project, ProjectError};
use crate::remote::{OpenError, PullError};
use crate::sanitize::show_path;
use crate::store::StoreError;

/// Why the demo could not be built; each names the file or folder and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "{dir}: this folder is not empty and holds no demo; give `termtag demo` another folder"
    )]
    NotEmpty { dir: String },
    /// `action` is what failed: create, write, read, open or delete.
    #[error("{path}: cannot {action}")]
    Io {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start the demo's first pull")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Pull(#[from] PullError),
}

/// Maps an I/O error on `path` to [`DemoError::Io`].
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DemoError {
    let path = show_path(path);
    move |source| DemoError::Io {
        path,
        action,
        source,
    }
}

pub type Result<T, E = DemoError> = std::result::Result<T, E>;

/// The seed of the demo's boards. The model was trained on boards of other seeds.
pub const SEED: u64 = 13;
/// Boards in the remote.
pub const BOARDS: u32 = 100;
/// Boards pulled when the demo is built.
pub const FIRST_BATCH: usize = 60;
/// Boards of the first batch that come labelled.
pub const LABELLED: u32 = 20;

/// The detector, its trainer and the predictions it made on the demo's first batch, recorded
/// with `scripts/demo-model/record.sh` (see demo/README.md).
const MODEL: &[u8] = include_bytes!("../../demo/model/board-detector.onnx");
/// Its weights as the trainer saved them: where `termtag train` starts from.
const WEIGHTS: &[u8] = include_bytes!("../../demo/model/board-detector.pt");
const TRAINER: &str = include_str!("../../scripts/demo-model/train.py");
const RECORDED: &str = include_str!("../../demo/model/recorded-predictions.coco.json");

/// Written first: a folder holding it may be reset.
const MARKER: &str = ".termtag-demo";
/// The ONNX Runtime wheel installed by the demo; kept across `--reset`.
pub const RUNTIME_DIR: &str = ".termtag-runtime";
pub const REMOTE_DIR: &str = "remote";
pub const MODEL_FILE: &str = "model/board-detector.onnx";
const WEIGHTS_FILE: &str = "model/board-detector.pt";
pub const RECORDED_FILE: &str = "model/recorded-predictions.coco.json";
pub const GROUND_TRUTH: &str = "ground-truth.coco.json";

#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Delete the demo (all but the runtime cache) and build it again.
    pub reset: bool,
    /// Install nothing: without a runtime, import the recorded predictions.
    pub offline: bool,
}

/// Writes `count` boards of `seed` and their ground truth (`labels.coco.json`) into `dir`: the
/// trainer's data.
pub fn write_boards(dir: &Path, count: u32, seed: u64) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut ds = dataset();
    for i in 0..count {
        let b = boards::board(seed, i);
        let key = boards::key(i);
        write(&dir.join(&key), &b.png)?;
        ds.images.push(b.labels(&key));
    }
    let out = dir.join("labels.coco.json");
    write_coco(&ds, &out)?;
    Ok(out)
}

fn dataset() -> Dataset {
    Dataset {
        classes: boards::CLASSES.iter().map(|c| c.to_string()).collect(),
        images: Vec::new(),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    std::fs::write(path, bytes).map_err(io("write", path))
}

fn write_coco(ds: &Dataset, out: &Path) -> Result<()> {
    FormatKind::Coco.export(
        ds,
        &ExportCtx {
            task: Task::Detect,
            out,
            predictions: false,
            url_prefix: "",
        },
    )?;
    Ok(())
}

/// Creates the demo in `dir` (or opens the one there, keeping what was done in it); `say` gets
/// each step for the user.
pub fn build(dir: &Path, opts: &DemoOptions, say: &dyn Fn(&str)) -> Result<Project> {
    let is_demo = dir.join(MARKER).is_file();
    if opts.reset && is_demo {
        reset(dir)?;
        say(&format!("reset: removed the demo in {}", show_path(dir)));
    } else if is_demo && dir.join(CONFIG_FILE).is_file() {
        return Ok(Project::load(
            &dir.canonicalize().map_err(io("open", dir))?,
        )?);
    } else if dir.exists() && !is_empty_or_runtime_only(dir)? {
        return Err(DemoError::NotEmpty {
            dir: show_path(dir),
        });
    }
    write(
        &dir.join(MARKER),
        b"termtag demo: `termtag demo --reset` deletes this folder's contents\n",
    )?;
    let root = dir.canonicalize().map_err(io("open", dir))?;

    // The remote: every board, as a shared folder that `F` pulls from and `P` pushes to.
    say(&format!(
        "generating {BOARDS} wood boards (seed {SEED}) into the remote folder {REMOTE_DIR}/"
    ));
    let mut truth = dataset();
    let images = crate::remote::DEFAULT_IMAGES_CONTAINER;
    for i in 0..BOARDS {
        let b = boards::board(SEED, i);
        let key = boards::key(i);
        write(&root.join(REMOTE_DIR).join(images).join(&key), &b.png)?;
        truth.images.push(b.labels(&key));
    }
    write_coco(&truth, &root.join(GROUND_TRUTH))?;
    write(&root.join(MODEL_FILE), MODEL)?;
    write(&root.join(WEIGHTS_FILE), WEIGHTS)?;
    write(&root.join("model/train.py"), TRAINER.as_bytes())?;
    write(&root.join(RECORDED_FILE), RECORDED.as_bytes())?;

    let classes: Vec<String> = boards::CLASSES.iter().map(|c| c.to_string()).collect();
    let mut project = Project::init(&root, Task::Detect, &classes, None)?;
    let cfg = &mut project.config;
    cfg.name = "wood-boards".into();
    cfg.remote.folder = Some(PathBuf::from(REMOTE_DIR));
    cfg.model.path = Some(MODEL_FILE.into());
    cfg.train.command = Some(
        "python3 model/train.py --data {export} --images .termtag/cache --init model/board-detector.pt --out {model}"
            .into(),
    );
    save(&project)?;

    let mut store = project.store()?;
    let set = crate::remote::open(&project)?;
    let pull = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?
        .block_on(crate::remote::pull(
            &project,
            &mut store,
            &set,
            &crate::remote::PullOptions {
                count: FIRST_BATCH,
                ..Default::default()
            },
            &|_| {},
        ))?;
    say(&format!(
        "pulled the first batch: {} boards; {} wait in the remote for `F`",
        pull.claimed.len(),
        pull.remaining
    ));

    publish_predictions(&project, FIRST_BATCH as u32..BOARDS)?;
    say(&format!(
        "the remote's totag CSV carries the model's recorded scores for those {} boards, so `F` pulls the least certain first",
        BOARDS as usize - FIRST_BATCH
    ));

    let mut labelled = dataset();
    labelled.images = truth.images[..LABELLED as usize].to_vec();
    store.import_labels(&labelled, "demo ground truth")?;
    say(&format!(
        "{LABELLED} boards come labelled (knot, defect); the rest wait for review"
    ));

    let live = runtime::ensure(&mut project, opts.offline, say)
        .map_err(|e| causes(&e))
        .and_then(|()| {
            say("pre-labelling the boards live with the demo model:");
            crate::commands::predict::run(
                &project,
                &mut store,
                crate::infer::PredictOptions::default(),
                None,
            )
            .map_err(|e| format!("live pre-labelling failed: {}", causes(&*e)))
        });
    if let Err(why) = live {
        say(&why);
        let report = project.import(
            &mut store,
            &root.join(RECORDED_FILE),
            FormatKind::Coco,
            true,
            &ClassMap::default(),
            false,
            true,
        )?;
        say(&format!(
            "imported the predictions recorded with the demo model instead ({} on {} boards, {RECORDED_FILE}); `termtag predict` makes them live once ONNX Runtime is installed",
            report.counts.labels, report.counts.images
        ));
    }
    Ok(project)
}

/// Writes the recorded predictions of `boards` into the remote as an active-learning-detect
/// `totag` CSV, as a training machine publishes its scores for the images still to label.
fn publish_predictions(project: &Project, boards: std::ops::Range<u32>) -> Result<()> {
    let known: Vec<KnownImage> = (0..BOARDS)
        .map(|i| KnownImage {
            key: boards::key(i),
            width: boards::WIDTH,
            height: boards::HEIGHT,
            orientation: 1,
        })
        .collect();
    let classes = dataset().classes;
    let recorded = FormatKind::Coco.import(
        &project.root.join(RECORDED_FILE),
        &ImportCtx {
            task: Task::Detect,
            images: &ImageIndex::new(known),
            classes: &classes,
            predictions: true,
        },
    )?;
    let wanted: Vec<String> = boards.map(boards::key).collect();
    let mut ds = recorded.dataset;
    ds.images.retain(|im| wanted.contains(&im.key));
    let cfg = &project.config.remote;
    let out = project
        .root
        .join(REMOTE_DIR)
        .join(&cfg.labels_container)
        .join(format!("totag_{}.csv", crate::store::now_ms()));
    let dir = out.parent().unwrap_or(&project.root);
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    FormatKind::AldCsv.export(
        &ds,
        &ExportCtx {
            task: Task::Detect,
            out: &out,
            predictions: true,
            url_prefix: "",
        },
    )?;
    Ok(())
}

fn save(project: &Project) -> Result<()> {
    let file = project.root.join(CONFIG_FILE);
    std::fs::write(&file, project.config.to_documented_toml()).map_err(io("write", &file))
}

fn is_empty_or_runtime_only(dir: &Path) -> Result<bool> {
    for e in std::fs::read_dir(dir).map_err(io("read", dir))? {
        if e.map_err(io("read", dir))?.file_name() != RUNTIME_DIR {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes everything the demo made in `dir`, except the runtime it installed.
fn reset(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io("read", dir))? {
        let e = e.map_err(io("read", dir))?;
        if e.file_name() == RUNTIME_DIR {
            continue;
        }
        let path = e.path();
        let gone = if e.file_type().map_err(io("read", &path))?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(io("delete", &path))?;
    }
    Ok(())
}

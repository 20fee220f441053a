//! A project: `termtag.toml`, the `.termtag/` state folder, and the operations the commands run on
//! them (init, refresh, import, export).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::formats::{ExportCtx, FormatError, FormatKind, ImageIndex, ImportCtx, Imported};
use crate::index;
use crate::infer::config::{ModelConfig, OnnxRuntimeConfig, TrainConfig};
use crate::model::{
    Dataset, ImageLabels, Label, ModelError, Task, orientation_swaps_axes, validate_label_name,
};
use crate::queue::QueueConfig;
use crate::sanitize::{UnsafeKey, for_terminal, show_path};
use crate::store::{ImportCounts, Store, StoreError};

pub const CONFIG_FILE: &str = "termtag.toml";
pub const STATE_DIR: &str = ".termtag";
/// Pulled images, under [`STATE_DIR`].
const CACHE_DIR: &str = "cache";
pub const DB_FILE: &str = "labels.db";

/// Why a project could not be found, read, created or changed. Each message names the file, key
/// or option and says what to do. Paths and names are sanitised when the error is made.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// `termtag.toml` does not parse; `detail` is toml's first line with the line number.
    #[error("{file}: {detail}")]
    ConfigSyntax { file: String, detail: String },
    /// A setting that is a share or a score is outside 0..1.
    #[error("{file}: {key} must be between 0 and 1")]
    ConfigRange { file: String, key: &'static str },
    #[error(
        "no {CONFIG_FILE} in {dir} or any parent folder: create a project with `termtag init DIR --task detect --classes a,b`"
    )]
    NotFound { dir: String },
    /// `action` is what failed: open, read, create or write.
    #[error("{path}: cannot {action}")]
    Io {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },
    // The option's errors quote the name error, so it is kept as a field, not a source that the
    // error line would repeat.
    #[error("--class-map entry `{0}` is not FROM=TO (TO `-` drops FROM)")]
    ClassMapEntry(String),
    #[error("--class-map: {0}")]
    ClassMapName(ModelError),
    #[error("--classes: {0}")]
    ClassName(ModelError),
    #[error("--classes lists `{0}` twice")]
    DuplicateClass(String),
    #[error("{root} is already a {found} project; its task cannot change to {wanted}")]
    TaskChange {
        root: String,
        found: Task,
        wanted: Task,
    },
    #[error(
        "--source: give the container URL without its `?...` query; put a SAS in AZURE_STORAGE_SAS_URL or in a file named by `sas_file` under [remote]"
    )]
    SourceQuery,
    #[error("--source {name}: no such folder")]
    SourceMissing {
        name: String,
        source: std::io::Error,
    },
    #[error("--source {0}: not a folder")]
    SourceNotFolder(String),
    #[error("{0}: the image source folder does not exist: fix `source` in {CONFIG_FILE}")]
    SourceFolderGone(String),
    #[error("{file}: {error}; map such names with --class-map FROM=TO")]
    ImportClassName { file: String, error: ModelError },
    #[error(
        "{file}: classes not in the project: {classes}; map them with --class-map FROM=TO (TO `-` drops), or add them with --add-classes"
    )]
    UnknownClasses { file: String, classes: String },
    #[error(
        "{file}: {what}; nothing imported: run `termtag refresh` if they were added since, or pass --skip-missing to import the rest"
    )]
    MissingImages { file: String, what: String },
    #[error("{file}: `{key}` has a label without a box, but this is a detect project")]
    LabelWithoutBox { file: String, key: String },
    #[error(
        "{file}: `{key}` has boxes, but this is a {task} project: import into a detect project"
    )]
    BoxesNotDetect {
        file: String,
        key: String,
        task: Task,
    },
    #[error(
        "{file}: `{key}` has {count} classes, but a classify project takes one per image (use a multilabel project)"
    )]
    ClassesNotOne {
        file: String,
        key: String,
        count: usize,
    },
    #[error(transparent)]
    Key(#[from] UnsafeKey),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = ProjectError> = std::result::Result<T, E>;

impl ProjectError {
    /// Wraps an I/O error on `path`, for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> ProjectError {
        let path = show_path(path);
        move |source| ProjectError::Io {
            path,
            action,
            source,
        }
    }
}

/// `termtag.toml`. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Project name, shown in the TUI and in exports.
    pub name: String,
    /// `detect`, `classify` (one class per image) or `multilabel`.
    pub task: Task,
    /// Image folder (relative to this file, or absolute) or a blob container URL.
    pub source: String,
    /// Name recorded on every label; defaults to `$USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotator: Option<String>,
    /// Predictions scoring at least this are shown as proposed boxes.
    #[serde(default = "default_prelabel_threshold")]
    pub prelabel_threshold: f64,
    /// Predictions below this are ignored by the uncertainty metrics.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// Images larger than this many megapixels are refused (recorded as broken).
    #[serde(default = "default_max_megapixels")]
    pub max_megapixels: u32,
    #[serde(default)]
    pub export: ExportConfig,
    #[serde(default)]
    pub ui: UiConfig,
    /// Key overrides: action = [keys]; see `termtag label` help (`?`) for the action names.
    /// Kept as written: the review screen checks them, reports bad ones and keeps the defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, toml::Value>,
    /// Where the ONNX Runtime library is and which execution provider to use.
    #[serde(default, skip_serializing_if = "OnnxRuntimeConfig::is_empty")]
    pub onnxruntime: OnnxRuntimeConfig,
    /// The model `predict` uses and how to read it.
    #[serde(default, skip_serializing_if = "ModelConfig::is_empty")]
    pub model: ModelConfig,
    /// Review queue order.
    #[serde(default, skip_serializing_if = "QueueConfig::is_empty")]
    pub queue: QueueConfig,
    /// The training command `termtag train` runs.
    #[serde(default, skip_serializing_if = "TrainConfig::is_empty")]
    pub train: TrainConfig,
    /// Blob storage (or shared folder) batches: see `crate::remote`.
    #[serde(
        default,
        skip_serializing_if = "crate::remote::config::RemoteConfig::is_default"
    )]
    pub remote: crate::remote::config::RemoteConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// `dark`, `light` or `high-contrast`; ~/.config/termtag/theme.toml is laid over it.
    #[serde(default = "default_theme")]
    pub theme: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: default_theme(),
        }
    }
}

fn default_theme() -> String {
    "dark".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Prefix of `image_url` in Azure ML JSONL, e.g. `azureml://datastores/workspaceblobstore/paths/images/`.
    #[serde(default)]
    pub azureml_url_prefix: String,
}

fn default_prelabel_threshold() -> f64 {
    0.5
}
fn default_min_confidence() -> f64 {
    0.05
}
fn default_max_megapixels() -> u32 {
    index::DEFAULT_MAX_MEGAPIXELS
}

/// The prelabel tables in the order `termtag.toml` lists them, each with the commented example
/// written while it is empty.
const PRELABEL_EXAMPLES: [(&str, &str); 4] = [
    (
        "onnxruntime",
        "# ONNX Runtime library (default: ORT_DYLIB_PATH, the onnxruntime Python package, system).\n# path = \"/opt/onnxruntime/lib/libonnxruntime.so\"\n# device = \"auto\"   # auto | cuda | tensorrt | cpu\n",
    ),
    (
        "model",
        "# The model `termtag predict` runs (adapter detected: tf_od, yolo, automl, classify).\n# path = \"models/model.onnx\"\n# labels = \"models/labels.txt\"\n# class_map = { cup = \"mug\", chair = \"-\" }\n# default_class = \"other\"\n",
    ),
    (
        "queue",
        "# Review order: least_confidence | mean_confidence | margin | entropy | uncertain_count.\n# metric = \"least_confidence\"\n# empty = \"last\"   # images with no detection: first | last | interleave | skip\n# diversity = true   # near-duplicate pictures take turns\n# similarity = 0.8   # grey-thumbnail correlation that makes two pictures near-duplicates\n",
    ),
    (
        "train",
        "# Training job; {export} is the exported labels, {model} the ONNX file it must write.\n# command = \"python train.py --data {export} --out {model}\"\n",
    ),
];

impl Config {
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            // toml's message spans lines with a source excerpt; keep the first line of the cause
            // and the place, which name the key.
            let msg = e.message().lines().next().unwrap_or("invalid").to_string();
            let place = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            ProjectError::ConfigSyntax {
                file: show_path(file),
                detail: format!("{place}{msg}"),
            }
        })?;
        let shares = [
            ("prelabel_threshold", cfg.prelabel_threshold),
            ("min_confidence", cfg.min_confidence),
            (
                "[queue] similarity",
                cfg.queue.similarity.map_or(0.0, f64::from),
            ),
        ];
        if let Some((key, _)) = shares.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(ProjectError::ConfigRange {
                file: show_path(file),
                key,
            });
        }
        Ok(cfg)
    }

    /// The file as `init` writes it: every field with a comment saying what it does.
    pub fn to_documented_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut out = String::new();
        out.push_str("# termtag project. Unknown keys are an error.\n\n");
        out.push_str(&format!(
            "# Project name, shown in the TUI and in exports.\nname = {}\n\n",
            q(&self.name)
        ));
        out.push_str(&format!(
            "# detect (boxes), classify (one class per image) or multilabel.\ntask = {}\n\n",
            q(self.task.as_str())
        ));
        out.push_str(&format!(
            "# Image folder (relative to this file, or absolute) or a blob container URL.\nsource = {}\n\n",
            q(&self.source)
        ));
        out.push_str("# Name recorded on every label (default: $USER).\n");
        match &self.annotator {
            Some(a) => out.push_str(&format!("annotator = {}\n\n", q(a))),
            None => out.push_str("# annotator = \"alice\"\n\n"),
        }
        out.push_str(&format!(
            "# Model predictions scoring at least this are shown as proposed boxes.\nprelabel_threshold = {}\n\n",
            self.prelabel_threshold
        ));
        out.push_str(&format!(
            "# Predictions below this are ignored when ranking by uncertainty.\nmin_confidence = {}\n\n",
            self.min_confidence
        ));
        out.push_str(&format!(
            "# Larger images are refused and recorded as broken.\nmax_megapixels = {}\n\n",
            self.max_megapixels
        ));
        out.push_str(&format!(
            "[export]\n# Prefix of image_url in Azure ML JSONL exports.\nazureml_url_prefix = {}\n\n",
            q(&self.export.azureml_url_prefix)
        ));
        out.push_str(&format!(
            "[ui]\n# dark, light or high-contrast (~/.config/termtag/theme.toml is laid over it).\ntheme = {}\n\n",
            q(&self.ui.theme)
        ));
        out.push_str("# Key overrides for the review screen: action = [keys]; `?` there lists the actions.\n");
        if self.keys.is_empty() {
            out.push_str("# [keys]\n# accept_image = [\"Enter\", \"y\"]\n");
        } else {
            out.push_str("[keys]\n");
            for (action, keys) in &self.keys {
                out.push_str(&format!("{action} = {keys}\n"));
            }
        }
        out.push_str(&self.prelabel_tables_toml());
        out.push_str(&crate::remote::config::documented_toml(
            &self.remote,
            is_remote(&self.source),
        ));
        out
    }

    /// The `[onnxruntime]`, `[model]`, `[queue]` and `[train]` tables: as set, or as commented
    /// examples ([`PRELABEL_EXAMPLES`]) when empty.
    fn prelabel_tables_toml(&self) -> String {
        fn set<T: Serialize>(v: &T, empty: bool) -> Option<String> {
            (!empty).then(|| toml::to_string(v).unwrap_or_default())
        }
        let bodies = [
            set(&self.onnxruntime, self.onnxruntime.is_empty()),
            set(&self.model, self.model.is_empty()),
            set(&self.queue, self.queue.is_empty()),
            set(&self.train, self.train.is_empty()),
        ];
        PRELABEL_EXAMPLES
            .iter()
            .zip(bodies)
            .map(|((name, example), body)| {
                format!("\n[{name}]\n{}", body.as_deref().unwrap_or(example))
            })
            .collect()
    }
}

pub struct Project {
    pub root: PathBuf,
    pub config: Config,
}

/// What `refresh` found.
#[derive(Debug, Default)]
pub struct RefreshReport {
    pub added: usize,
    pub broken: Vec<(String, String)>,
    pub warnings: Vec<String>,
    pub remote: bool,
}

/// What `import` did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub counts: ImportCounts,
    pub run_id: Option<i64>,
    pub classes_added: Vec<String>,
    pub warnings: Vec<String>,
    /// Rows left out because their image is not in the project (`--skip-missing`).
    pub skipped_rows: usize,
}

/// How imported class names map to project classes (`--class-map a=b,c=-`: `-` drops `c`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassMap(pub HashMap<String, Option<String>>);

impl ClassMap {
    pub fn parse(s: &str) -> Result<ClassMap> {
        let mut m = HashMap::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (from, to) = pair
                .split_once('=')
                .ok_or_else(|| ProjectError::ClassMapEntry(pair.to_string()))?;
            let to = match to.trim() {
                "-" => None,
                t => {
                    validate_label_name(t).map_err(ProjectError::ClassMapName)?;
                    Some(t.to_string())
                }
            };
            m.insert(from.trim().to_string(), to);
        }
        Ok(ClassMap(m))
    }
}

pub fn is_remote(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// The user name recorded on labels.
pub fn default_author() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

impl Project {
    /// Finds the project containing `start` (walking up to the nearest `termtag.toml`).
    pub fn discover(start: &Path) -> Result<Project> {
        let start = start
            .canonicalize()
            .map_err(ProjectError::io("open", start))?;
        for dir in start.ancestors() {
            if dir.join(CONFIG_FILE).is_file() {
                return Project::load(dir);
            }
        }
        Err(ProjectError::NotFound {
            dir: show_path(&start),
        })
    }

    pub fn load(root: &Path) -> Result<Project> {
        let file = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&file).map_err(ProjectError::io("read", &file))?;
        let config = Config::parse(&text, &file)?;
        Ok(Project {
            root: root.to_path_buf(),
            config,
        })
    }

    /// Creates the project (or, if `dir` already holds one of the same task, adds new classes
    /// and refreshes it). Returns the project; the caller runs `refresh`.
    pub fn init(
        dir: &Path,
        task: Task,
        classes: &[String],
        source: Option<&str>,
    ) -> Result<Project> {
        for c in classes {
            validate_label_name(c).map_err(ProjectError::ClassName)?;
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = classes.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(ProjectError::DuplicateClass(dup.clone()));
        }
        std::fs::create_dir_all(dir).map_err(ProjectError::io("create", dir))?;
        let root = dir.canonicalize().map_err(ProjectError::io("open", dir))?;
        let project = if root.join(CONFIG_FILE).is_file() {
            let p = Project::load(&root)?;
            if p.config.task != task {
                return Err(ProjectError::TaskChange {
                    root: show_path(&root),
                    found: p.config.task,
                    wanted: task,
                });
            }
            p
        } else {
            let source = match source {
                None => ".".to_string(),
                Some(s) if is_remote(s) => {
                    // termtag.toml is shared (and often committed): a SAS must not land there.
                    if s.contains('?') {
                        return Err(ProjectError::SourceQuery);
                    }
                    s.trim_end_matches('/').to_string()
                }
                Some(s) => {
                    let abs = Path::new(s).canonicalize().map_err(|source| {
                        ProjectError::SourceMissing {
                            name: for_terminal(s),
                            source,
                        }
                    })?;
                    if !abs.is_dir() {
                        return Err(ProjectError::SourceNotFolder(for_terminal(s)));
                    }
                    match abs.strip_prefix(&root) {
                        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
                        Ok(rel) => rel.to_string_lossy().into_owned(),
                        Err(_) => abs.to_string_lossy().into_owned(),
                    }
                }
            };
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "termtag".into());
            let config = Config {
                name,
                task,
                source,
                annotator: None,
                prelabel_threshold: default_prelabel_threshold(),
                min_confidence: default_min_confidence(),
                max_megapixels: default_max_megapixels(),
                export: ExportConfig::default(),
                ui: UiConfig::default(),
                keys: BTreeMap::new(),
                onnxruntime: OnnxRuntimeConfig::default(),
                model: ModelConfig::default(),
                queue: QueueConfig::default(),
                train: TrainConfig::default(),
                remote: crate::remote::config::RemoteConfig::default(),
            };
            let state = root.join(STATE_DIR);
            std::fs::create_dir_all(&state).map_err(ProjectError::io("create", &state))?;
            let file = root.join(CONFIG_FILE);
            std::fs::write(&file, config.to_documented_toml())
                .map_err(ProjectError::io("write", &file))?;
            Project { root, config }
        };
        project.store()?.add_classes(classes)?;
        Ok(project)
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join(STATE_DIR).join(DB_FILE)
    }

    /// The gallery's thumbnail cache (`.termtag/thumbs/`).
    pub fn thumb_cache(&self) -> crate::thumbs::ThumbCache {
        crate::thumbs::ThumbCache::new(self.root.join(STATE_DIR).join("thumbs"))
    }

    pub fn author(&self) -> String {
        self.config.annotator.clone().unwrap_or_else(default_author)
    }

    pub fn store(&self) -> Result<Store> {
        let state = self.root.join(STATE_DIR);
        std::fs::create_dir_all(&state).map_err(ProjectError::io("create", &state))?;
        Ok(Store::open(&self.db_path(), &self.author())?)
    }

    /// The local image folder, or `None` for a remote source.
    pub fn source_dir(&self) -> Option<PathBuf> {
        (!is_remote(&self.config.source)).then(|| self.root.join(&self.config.source))
    }

    /// Whether images arrive by `termtag pull` (a blob container or a `[remote] folder`) rather
    /// than sitting in a local source folder.
    pub fn images_are_pulled(&self) -> bool {
        self.source_dir().is_none() || self.config.remote.folder.is_some()
    }

    /// The one rule for where an image's file is, used by every command and the review screen:
    /// in the local source folder, or in the pull cache when images arrive by `termtag pull`.
    /// Keys are checked, so nothing outside those folders can be named.
    /// `termtag pull` only fills the cache (`.termtag/cache/`) that this names.
    pub fn image_file(&self, key: &str) -> Result<PathBuf> {
        let dir = match self.source_dir() {
            Some(dir) if !self.images_are_pulled() => dir,
            _ => self.root.join(STATE_DIR).join(CACHE_DIR),
        };
        Ok(crate::sanitize::safe_join(&dir, key)?)
    }

    /// Adds images that appeared in the source since the last scan.
    pub fn refresh(
        &self,
        store: &mut Store,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<RefreshReport> {
        let Some(dir) = self.source_dir() else {
            return Ok(RefreshReport {
                remote: true,
                ..RefreshReport::default()
            });
        };
        if !dir.is_dir() {
            return Err(ProjectError::SourceFolderGone(show_path(&dir)));
        }
        let known = store.image_keys()?;
        let (files, warnings) = index::find_new(&dir, &known);
        let total = files.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let images = index::probe_all(&files, self.config.max_megapixels, &|| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, total);
        });
        let broken = images
            .iter()
            .filter_map(|im| im.error.as_ref().map(|e| (im.key.clone(), e.clone())))
            .collect();
        let added = store.add_images(&images)?;
        Ok(RefreshReport {
            added,
            broken,
            warnings,
            remote: false,
        })
    }

    /// Imports labels or predictions from `path`; the store changes only if the whole file is good.
    /// Rows for images the project does not have fail the import unless `skip_missing`; skipped,
    /// they are counted in a warning.
    #[allow(clippy::too_many_arguments)]
    pub fn import(
        &self,
        store: &mut Store,
        path: &Path,
        format: FormatKind,
        as_predictions: bool,
        class_map: &ClassMap,
        add_classes: bool,
        skip_missing: bool,
    ) -> Result<ImportReport> {
        self.import_with(
            store,
            path,
            |ctx| format.import(path, ctx),
            format,
            as_predictions,
            class_map,
            add_classes,
            skip_missing,
        )
    }

    /// [`Project::import`] of labels that `read` parses (from memory, say); `path` names them.
    #[allow(clippy::too_many_arguments)]
    pub fn import_with(
        &self,
        store: &mut Store,
        path: &Path,
        read: impl FnOnce(&ImportCtx) -> Result<Imported, FormatError>,
        format: FormatKind,
        as_predictions: bool,
        class_map: &ClassMap,
        add_classes: bool,
        skip_missing: bool,
    ) -> Result<ImportReport> {
        let task = self.config.task;
        let index = ImageIndex::new(store.known_images()?);
        let classes = store.class_names()?;
        let ctx = ImportCtx {
            task,
            images: &index,
            classes: &classes,
            predictions: as_predictions,
        };
        let imported = read(&ctx)?;
        let mut report = ImportReport {
            warnings: imported.warnings,
            ..ImportReport::default()
        };
        let file = show_path(path);

        // Classes: map, then refuse (or add) the ones the project does not have.
        let mut ds = imported.dataset;
        for im in &mut ds.images {
            im.labels.retain_mut(|l| match class_map.0.get(&l.class) {
                Some(Some(to)) => {
                    l.class = to.clone();
                    true
                }
                Some(None) => false,
                None => true,
            });
        }
        let unknown: BTreeSet<&str> = ds
            .images
            .iter()
            .flat_map(|im| im.labels.iter().map(|l| l.class.as_str()))
            .filter(|c| !classes.iter().any(|k| k == c))
            .collect();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown.iter().map(|c| for_terminal(c)).collect();
            let invalid: Vec<&str> = unknown
                .iter()
                .copied()
                .filter(|c| validate_label_name(c).is_err())
                .collect();
            if !invalid.is_empty() {
                let error = validate_label_name(invalid[0]).unwrap_err();
                return Err(ProjectError::ImportClassName { file, error });
            }
            if !add_classes {
                return Err(ProjectError::UnknownClasses {
                    file,
                    classes: shown.join(", "),
                });
            }
            report.classes_added = unknown.iter().map(|c| c.to_string()).collect();
        }

        // Images: resolve names to project keys; bring boxes into the displayed orientation.
        let mut merged: BTreeMap<String, ImageLabels> = BTreeMap::new();
        let mut missing = imported.unplaced;
        let mut rotated = 0usize;
        for im in ds.images {
            let Some(known) = index.resolve(&im.key) else {
                // An image with no label is still one row (ALD `NULL`, an empty YOLO file).
                missing.push((im.key, im.labels.len().max(1)));
                continue;
            };
            let raw_layout = im.width > 0
                && known.width != known.height
                && orientation_swaps_axes(known.orientation)
                && (im.width, im.height) == (known.height, known.width);
            let mut labels = im.labels;
            if raw_layout {
                rotated += 1;
                for l in &mut labels {
                    l.bbox = l.bbox.map(|b| b.raw_to_displayed(known.orientation));
                }
            }
            let entry = merged
                .entry(known.key.clone())
                .or_insert_with(|| ImageLabels {
                    key: known.key.clone(),
                    width: known.width,
                    height: known.height,
                    labels: Vec::new(),
                });
            entry.labels.extend(labels);
        }
        if !missing.is_empty() {
            let rows: usize = missing.iter().map(|(_, n)| n).sum();
            let shown: Vec<String> = missing
                .iter()
                .take(5)
                .map(|(k, _)| format!("`{}`", for_terminal(k)))
                .collect();
            let what = format!(
                "{rows} row{} for {} image{} not in this project ({}{})",
                if rows == 1 { "" } else { "s" },
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if missing.len() > 5 { ", …" } else { "" }
            );
            if !skip_missing {
                return Err(ProjectError::MissingImages { file, what });
            }
            report.skipped_rows = rows;
            report
                .warnings
                .push(format!("{file}: skipped {what} (--skip-missing)"));
        }
        if rotated > 0 {
            report.warnings.push(format!(
                "{file}: boxes of {rotated} EXIF-rotated images were given in the stored pixel layout; turned to the displayed orientation"
            ));
        }
        let ds = Dataset {
            classes: ds.classes,
            images: merged.into_values().collect(),
        };
        check_task(task, &ds, &file)?;

        if !report.classes_added.is_empty() {
            store.add_classes(&report.classes_added)?;
        }
        let source = path.to_string_lossy();
        if as_predictions {
            let adapter = format!("import:{}", format.name());
            report.run_id = Some(store.import_predictions(&ds, &source, &adapter)?);
            report.counts = ImportCounts {
                images: ds.images.len(),
                labels: ds.images.iter().map(|i| i.labels.len()).sum(),
                empty: ds.images.iter().filter(|i| i.labels.is_empty()).count(),
            };
        } else {
            report.counts = store.import_labels(&ds, &source)?;
        }
        Ok(report)
    }

    /// Writes the reviewed labels (or the latest predictions) in `format` to `out`.
    pub fn export(
        &self,
        store: &Store,
        format: FormatKind,
        out: &Path,
        predictions: bool,
    ) -> Result<(Dataset, Vec<PathBuf>)> {
        let ds = store.dataset(predictions)?;
        let ctx = ExportCtx {
            task: self.config.task,
            out,
            predictions,
            url_prefix: &self.config.export.azureml_url_prefix,
        };
        let files = format.export(&ds, &ctx)?;
        Ok((ds, files))
    }
}

/// Labels must fit the task: boxes for detection, none for classification, one class per image
/// for `classify`.
fn check_task(task: Task, ds: &Dataset, file: &str) -> Result<()> {
    for im in &ds.images {
        let key = for_terminal(&im.key);
        let has_box = |l: &Label| l.bbox.is_some();
        match task {
            Task::Detect => {
                if im.labels.iter().any(|l| !has_box(l)) {
                    return Err(ProjectError::LabelWithoutBox {
                        file: file.into(),
                        key,
                    });
                }
            }
            Task::Classify | Task::Multilabel => {
                if im.labels.iter().any(has_box) {
                    return Err(ProjectError::BoxesNotDetect {
                        file: file.into(),
                        key,
                        task,
                    });
                }
                let distinct: BTreeSet<&str> = im.labels.iter().map(|l| l.class.as_str()).collect();
                if task == Task::Classify && distinct.len() > 1 {
                    return Err(ProjectError::ClassesNotOne {
                        file: file.into(),
                        key,
                        count: distinct.len(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_names_unknown_keys() {
        let cfg = Config {
            name: "boards".into(),
            task: Task::Detect,
            source: "images".into(),
            annotator: Some("alice".into()),
            prelabel_threshold: 0.4,
            min_confidence: 0.1,
            max_megapixels: 100,
            export: ExportConfig {
                azureml_url_prefix: "azureml://x/".into(),
            },
            ui: UiConfig {
                theme: "light".into(),
            },
            keys: BTreeMap::from([(
                "accept_image".to_string(),
                toml::Value::Array(vec![toml::Value::String("y".into())]),
            )]),
            onnxruntime: OnnxRuntimeConfig::default(),
            model: ModelConfig::default(),
            queue: QueueConfig::default(),
            train: TrainConfig::default(),
            remote: crate::remote::config::RemoteConfig::default(),
        };
        let text = cfg.to_documented_toml();
        assert_eq!(
            Config::parse(&text, Path::new("termtag.toml")).unwrap(),
            cfg
        );

        let bad = text.replace("min_confidence", "min_confidance");
        let e = Config::parse(&bad, Path::new("termtag.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_confidance"), "{e}");
        assert!(e.starts_with("termtag.toml: line "), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");

        let bad = text.replace("task = \"detect\"", "task = \"segment\"");
        let e = Config::parse(&bad, Path::new("termtag.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("segment"), "{e}");

        // Shares and scores outside 0..1 name their key.
        for (from, to, key) in [
            (
                "min_confidence = 0.1",
                "min_confidence = 1.5",
                "min_confidence",
            ),
            (
                "[queue]\n",
                "[queue]\nsimilarity = 8\n",
                "[queue] similarity",
            ),
        ] {
            assert!(text.contains(from), "{text}");
            let e = Config::parse(&text.replacen(from, to, 1), Path::new("termtag.toml"))
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("termtag.toml: {key} must be between 0 and 1"));
        }
    }

    #[test]
    fn class_maps() {
        let m = ClassMap::parse("a=b, c=-").unwrap();
        assert_eq!(m.0["a"], Some("b".into()));
        assert_eq!(m.0["c"], None);
        assert!(ClassMap::parse("a").is_err());
        assert!(
            ClassMap::parse("a=b c")
                .unwrap_err()
                .to_string()
                .contains("1 to 32")
        );
    }
}

//! `termtag predict`: decode, resize and pack on worker threads while the calling thread runs
//! the model; results are written in large transactions, and the `predicted` table makes an
//! interrupted run resume where it stopped (same model file content = same run).
//!
//! The pipeline ([`run_pipeline`]) takes its images from an [`ImageSource`] (the project's files
//! here; blobs being downloaded in `predict --stream`, [`super::stream`]) and hands its results
//! to a [`ResultSink`] (the store here; immutable parts in the labels container there).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::adapters::{self, Adapter, AdapterCtx};
use super::classmap::{ClassResolver, ModelLabels};
use super::preprocess::{self, InputData, Layout, Prepared};
use super::session::{self, Model};
use super::shard::Shard;
use super::{InferError, runtime, sha256_file};
use crate::diversity::Signature;
use crate::project::Project;
use crate::sanitize::{for_terminal, show_path};
use crate::store::{ImageResult, NewPrediction, PendingImage, Store};

#[derive(Debug, Clone, Default)]
pub struct PredictOptions {
    /// Model file; default `[model] path`.
    pub model: Option<PathBuf>,
    /// Class names file; default `[model] labels`, the model's metadata, a labels file beside it.
    pub labels: Option<PathBuf>,
    /// `--class-map FROM=TO`, laid over `[model] class_map`.
    pub class_map: Vec<(String, String)>,
    /// Start a new run even when one with the same model and settings exists.
    pub rerun: bool,
    pub shard: Option<Shard>,
    /// Decode workers (default: all cores).
    pub workers: Option<usize>,
}

/// What a run did, for the summary line and the benchmark.
#[derive(Debug, Clone, Default)]
pub struct PredictReport {
    pub run_id: i64,
    pub resumed: bool,
    pub model: PathBuf,
    pub adapter: String,
    pub provider: String,
    pub provider_notes: Vec<String>,
    pub runtime: String,
    /// Where the model's class names came from, e.g. `80 names from coco91_labels.txt`.
    pub labels: String,
    /// Images of a pulled project whose files are not in the cache (not predicted, not broken).
    pub not_pulled: usize,
    /// Images already done by this run before (resumed) and images processed now.
    pub already: usize,
    pub processed: usize,
    pub broken: Vec<(String, String)>,
    pub predictions: usize,
    /// Model class (name, or id when unnamed) → predictions dropped by the class map.
    pub dropped: BTreeMap<String, usize>,
    /// The model's classes have names (so `dropped` holds names, not ids).
    pub named: bool,
    /// Loading the runtime and the model, hashing it, choosing the adapter.
    pub setup: Duration,
    /// Decoding, inference and writing: what images/s are measured on.
    pub total: Duration,
    /// Time spent inside `Session::run`.
    pub in_run: Duration,
    pub batches: usize,
}

/// The model file: `--model`, else `[model] path` (relative to the project).
fn model_path(project: &Project, opts: &PredictOptions) -> Result<PathBuf, InferError> {
    match (&opts.model, &project.config.model.path) {
        (Some(m), _) => Ok(m.clone()),
        (None, Some(p)) => Ok(project.root.join(p)),
        (None, None) => Err(InferError::Model(
            "no model: pass --model FILE.onnx or set [model] path in termtag.toml".into(),
        )),
    }
}

/// Class-name files looked for beside the model, in this order.
const LABEL_FILES: [&str; 5] = [
    "labels.json",
    "labels.txt",
    "classes.txt",
    "names.txt",
    "classes.json",
];

/// Where the model's class names come from.
enum LabelSource {
    File(PathBuf, &'static str),
    Metadata,
    None(String),
}

/// `--labels`, else `[model] labels`, else the model's metadata `names`, else a labels file beside
/// the model: one of [`LABEL_FILES`], `<model>_labels.txt` / `<model>.txt`, or the one
/// `*_labels.txt` / `*_classes.txt` whose name shares a word with the model's.
fn label_source(
    project: &Project,
    opts: &PredictOptions,
    model: &Path,
    meta_names: bool,
) -> LabelSource {
    if let Some(l) = &opts.labels {
        return LabelSource::File(l.clone(), "--labels");
    }
    if let Some(l) = &project.config.model.labels {
        return LabelSource::File(project.root.join(l), "[model] labels");
    }
    if meta_names {
        return LabelSource::Metadata;
    }
    let Some(dir) = model.parent() else {
        return LabelSource::None(String::new());
    };
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = [format!("{stem}_labels.txt"), format!("{stem}.txt")];
    if let Some(p) = LABEL_FILES
        .iter()
        .map(|n| dir.join(n))
        .chain(named.iter().map(|n| dir.join(n)))
        .find(|p| p.is_file())
    {
        return LabelSource::File(p, "beside the model");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    let n = n.to_ascii_lowercase();
                    n.ends_with("_labels.txt") || n.ends_with("_classes.txt")
                })
        })
        .collect();
    found.sort();
    let words = |s: &str| -> Vec<String> {
        s.to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| w.len() >= 3 && *w != "labels" && *w != "classes")
            .map(str::to_string)
            .collect()
    };
    let model_words = words(&stem);
    // A word of the file's name that starts with a word of the model's: coco91 ~ coco.
    let shares = |p: &Path| {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default();
        words(&name)
            .iter()
            .any(|w| model_words.iter().any(|m| w.starts_with(m.as_str())))
    };
    let matching: Vec<&PathBuf> = found.iter().filter(|p| shares(p)).collect();
    let pick = match (found.as_slice(), matching.as_slice()) {
        ([one], _) => Some(one),
        (_, [one]) => Some(*one),
        _ => None,
    };
    if let Some(p) = pick {
        return LabelSource::File(p.clone(), "beside the model");
    }
    if found.is_empty() {
        return LabelSource::None(String::new());
    }
    LabelSource::None(format!(
        "several label files beside the model ({}), none clearly its own: pick one with --labels FILE",
        found
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| for_terminal(&n.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A hash of everything besides the model file that changes what a run predicts: the adapter
/// and its settings, the class names, the class map, the thresholds and the project's classes.
fn settings_hash(
    adapter: &dyn Adapter,
    cfg: &super::config::ModelConfig,
    labels: &ModelLabels,
    threshold: f32,
    project_classes: &[String],
) -> String {
    use sha2::Digest;
    let mut cfg = cfg.clone();
    // Where files are and how many images go in one call change nothing in the output.
    cfg.path = None;
    cfg.labels = None;
    cfg.batch = None;
    let doc = serde_json::json!({
        "adapter": adapter.summary(),
        "model": cfg,
        "labels": labels.names,
        "threshold": threshold,
        "classes": project_classes,
    });
    let h = sha2::Sha256::digest(doc.to_string().as_bytes());
    h.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The model opened and its adapter, classes and identity settled: what `predict` and
/// `predict --stream` share before they run the pipeline.
pub(crate) struct Loaded {
    pub model_file: PathBuf,
    /// SHA-256 of the model file.
    pub sha: String,
    /// [`settings_hash`]: with `sha`, the identity of a run.
    pub settings: String,
    pub model: Model,
    pub adapter: Box<dyn Adapter>,
    pub resolver: ClassResolver,
    /// The report with the model's part filled in.
    pub report: PredictReport,
}

impl Loaded {
    /// An error of the model's, naming its file.
    pub fn named(&self, e: InferError) -> InferError {
        named_model(&self.model_file, e)
    }
}

fn named_model(model_file: &Path, e: InferError) -> InferError {
    match e {
        InferError::Model(m) => InferError::Model(format!("{}: {m}", show_path(model_file))),
        InferError::Run(m) => InferError::Run(format!("{}: {m}", show_path(model_file))),
        other => other,
    }
}

/// Opens the runtime and the model, finds its class names and adapter, and hashes the settings.
pub(crate) fn load(
    project: &Project,
    store: &Store,
    opts: &PredictOptions,
) -> Result<Loaded, InferError> {
    let model_file = model_path(project, opts)?;
    if !model_file.is_file() {
        return Err(InferError::Model(format!(
            "{}: no such model file",
            show_path(&model_file)
        )));
    }
    let rt = runtime::load(&project.config.onnxruntime, Some(&project.root))?;
    let model = session::open(&rt, &model_file, &project.config.onnxruntime)?;

    let meta = &model.info.meta;
    let mut automl_labels = false;
    let (labels, labels_text) =
        match label_source(project, opts, &model_file, !meta.names.is_empty()) {
            LabelSource::File(p, how) => {
                let l = ModelLabels::load(&p)?;
                // Azure AutoML exports ship their names as labels.json.
                automl_labels = p.file_name().is_some_and(|n| n == "labels.json");
                let text = format!("{} names from {} ({how})", l.len(), show_path(&p));
                (l, text)
            }
            LabelSource::Metadata => (
                ModelLabels {
                    names: meta.names.clone(),
                },
                format!("{} names from the model's metadata", meta.names.len()),
            ),
            LabelSource::None(why) if why.is_empty() => (
                ModelLabels::default(),
                "no class names (give them with --labels FILE)".to_string(),
            ),
            LabelSource::None(why) => (ModelLabels::default(), why),
        };
    let mut cfg = project.config.model.clone();
    for (from, to) in &opts.class_map {
        cfg.class_map.insert(from.clone(), to.clone());
    }
    let cfg = &cfg;
    let threshold = cfg.score_threshold.unwrap_or(project.config.min_confidence) as f32;
    let ctx = AdapterCtx {
        cfg,
        task: project.config.task,
        num_labels: (!labels.is_empty()).then(|| labels.len()),
        automl_labels,
        threshold,
    };
    let adapter = adapters::choose(&model.info, &ctx).map_err(|e| named_model(&model_file, e))?;
    if adapter.kind() != super::config::AdapterKind::Classify
        && adapter.kind() != super::config::AdapterKind::Automl
        && !project.config.task.is_detect()
    {
        return Err(InferError::Model(format!(
            "{}: a {} model finds boxes, but this is a {} project",
            show_path(&model_file),
            adapter.kind().as_str(),
            project.config.task
        )));
    }
    let classes: HashMap<String, i64> = store
        .classes()?
        .into_iter()
        .map(|c| (c.name, c.id))
        .collect();
    let mut class_names: Vec<String> = classes.keys().cloned().collect();
    class_names.sort();
    let settings = settings_hash(adapter.as_ref(), cfg, &labels, threshold, &class_names);
    let named = !labels.is_empty();
    let resolver = ClassResolver::new(labels, cfg, classes)?;
    let sha = sha256_file(&model_file)?;
    let report = PredictReport {
        model: model_file.clone(),
        adapter: adapter.summary(),
        provider: model.provider.to_string(),
        provider_notes: model.notes.clone(),
        runtime: format!("{} ({})", show_path(&rt.path), rt.version),
        labels: labels_text,
        named,
        ..PredictReport::default()
    };
    Ok(Loaded {
        model_file,
        sha,
        settings,
        model,
        adapter,
        resolver,
        report,
    })
}

/// Runs the model over every image this run has not processed (in the shard, when given).
/// `progress(done, total)` is called as images finish.
pub fn predict(
    project: &Project,
    store: &mut Store,
    opts: &PredictOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<PredictReport, InferError> {
    let started = Instant::now();
    let mut loaded = load(project, store, opts)?;
    let adapter_name = loaded.adapter.kind().as_str();
    let shown_model = loaded.model_file.to_string_lossy().into_owned();
    let found = if opts.rerun {
        None
    } else {
        store.find_model_run(&loaded.sha, adapter_name, &loaded.settings)?
    };
    let (run_id, resumed) = match found {
        Some(run) => (run.id, true),
        None => (
            store.create_model_run(&shown_model, &loaded.sha, adapter_name, &loaded.settings)?,
            false,
        ),
    };
    let already = store.run_predicted_count(run_id)?;
    let mut todo: Vec<PendingImage> = store
        .images_to_predict(run_id)?
        .into_iter()
        .filter(|im| opts.shard.is_none_or(|s| s.contains(&im.key)))
        .collect();
    // Images that arrive by `pull` are predicted once they are in the cache.
    let before = todo.len();
    if project.images_are_pulled() {
        todo.retain(|im| project.image_file(&im.key).is_ok_and(|p| p.is_file()));
    }

    let mut report = std::mem::take(&mut loaded.report);
    report.run_id = run_id;
    report.resumed = resumed && already > 0;
    report.not_pulled = before - todo.len();
    report.already = already;
    let total = todo.len() as u64;
    report.setup = started.elapsed();
    let started = Instant::now();
    progress(0, total);
    let keys: Vec<String> = todo.iter().map(|im| im.key.clone()).collect();
    let source = FileSource {
        project,
        keys: &keys,
        next: AtomicUsize::new(0),
    };
    let mut sink = StoreSink {
        store,
        run_id,
        todo: &todo,
    };
    let ran = run_pipeline(
        &source,
        &keys,
        &mut loaded,
        &mut sink,
        STORE_COMMIT,
        project.config.max_megapixels,
        opts.workers,
        &mut report,
        &|done| progress(done, total),
    );
    if let Err(e) = ran {
        // A model whose outputs cannot be read fails on its first image: leave no empty run.
        if !resumed {
            store.discard_empty_model_run(run_id)?;
        }
        return Err(loaded.named(e));
    }
    store.finish_model_run(run_id)?;
    report.dropped = std::mem::take(&mut loaded.resolver.dropped);
    report.total = started.elapsed();
    Ok(report)
}

/// When results are handed to the sink: this many images waiting, or this long after the last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitPolicy {
    pub images: usize,
    pub every: Duration,
}

/// Into the store: large transactions.
const STORE_COMMIT: CommitPolicy = CommitPolicy {
    images: 512,
    every: Duration::from_secs(5),
};

/// Where the pipeline's images come from. `next` is called on the decode workers.
pub(crate) trait ImageSource: Sync {
    /// The next image: its index in the run's key list and its encoded bytes, or why they
    /// cannot be had; `None` when there are no more.
    fn next(&self) -> Option<(usize, Result<Vec<u8>, String>)>;
}

/// The project's image files, read on the workers in key order.
struct FileSource<'a> {
    project: &'a Project,
    keys: &'a [String],
    next: AtomicUsize,
}

impl ImageSource for FileSource<'_> {
    fn next(&self) -> Option<(usize, Result<Vec<u8>, String>)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let key = self.keys.get(i)?;
        let bytes = self
            .project
            .image_file(key)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                std::fs::read(p).map_err(|e| crate::decode::DecodeError::Open(e).to_string())
            });
        Some((i, bytes))
    }
}

/// One image's result, as the pipeline hands it to a sink.
pub(crate) struct Finished {
    /// Index in the run's key list.
    pub index: usize,
    pub result: ImageResult,
    /// Upright pixel size of the full image; (0, 0) when it could not be decoded.
    pub size: (u32, u32),
    /// The near-duplicate signature; none when it could not be decoded.
    pub signature: Option<Signature>,
}

/// Where the pipeline's results go: the store, or immutable parts in the labels container.
pub(crate) trait ResultSink {
    /// Makes `done` durable; called on the inference thread.
    fn commit(&mut self, done: Vec<Finished>) -> Result<(), InferError>;
}

struct StoreSink<'a> {
    store: &'a mut Store,
    run_id: i64,
    todo: &'a [PendingImage],
}

impl ResultSink for StoreSink<'_> {
    fn commit(&mut self, done: Vec<Finished>) -> Result<(), InferError> {
        let mut rows: Vec<(i64, ImageResult)> = Vec::with_capacity(done.len());
        let mut sigs: Vec<(i64, Signature)> = Vec::with_capacity(done.len());
        for f in done {
            let id = self.todo[f.index].id;
            if let Some(sig) = f.signature {
                sigs.push((id, sig));
            }
            rows.push((id, f.result));
        }
        self.store.write_predictions(self.run_id, &rows)?;
        self.store.write_signatures(&sigs)?;
        Ok(())
    }
}

/// A decoded image, packed for the model.
struct Ready {
    /// Index in the run's key list.
    index: usize,
    prepared: Prepared,
    /// Upright pixel size of the full image.
    size: (u32, u32),
    /// Its near-duplicate signature, taken from the picture while it was decoded.
    signature: Signature,
}

/// What the inference loop gets from the workers.
enum Job {
    Ready(Ready),
    Broken(usize, String),
}

/// Decodes, resizes and packs on worker threads what `source` yields, runs the model in
/// batches on this thread and hands the results to `sink` as `policy` says. `keys[i]` names
/// image `i` in `report.broken`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_pipeline(
    source: &dyn ImageSource,
    keys: &[String],
    loaded: &mut Loaded,
    sink: &mut dyn ResultSink,
    policy: CommitPolicy,
    max_megapixels: u32,
    workers: Option<usize>,
    report: &mut PredictReport,
    progress: &dyn Fn(u64),
) -> Result<(), InferError> {
    let adapter = loaded.adapter.as_ref();
    let (model, resolver) = (&mut loaded.model, &mut loaded.resolver);
    let spec = adapter.input().clone();
    let workers = workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, keys.len().max(1));
    // Enough queued images for the next batch and one more: overlap without piling up memory.
    let (tx, rx) = mpsc::sync_channel::<Job>(spec.batch * 2 + workers);
    std::thread::scope(|scope| -> Result<(), InferError> {
        // Owned here so that an error drops it before the scope joins the workers: a worker
        // blocked on a full channel then sees the send fail and stops.
        let rx = rx;
        for _ in 0..workers {
            let tx = tx.clone();
            let spec = &spec;
            scope.spawn(move || {
                let mut resizer = fast_image_resize::Resizer::new();
                let long_side = preprocess::needed_long_side(spec);
                while let Some((i, bytes)) = source.next() {
                    let job = match bytes.and_then(|b| {
                        preprocess::decode_bytes(&b, max_megapixels, long_side)
                            .and_then(|(img, size)| {
                                // The near-duplicate signature, from the picture at hand.
                                let signature = crate::diversity::signature(&img);
                                let prepared = preprocess::prepare(&img, spec, &mut resizer)?;
                                Ok(Ready {
                                    index: i,
                                    prepared,
                                    size,
                                    signature,
                                })
                            })
                            .map_err(|e| e.to_string())
                    }) {
                        Ok(r) => Job::Ready(r),
                        Err(e) => Job::Broken(i, e),
                    };
                    if tx.send(job).is_err() {
                        break; // the inference loop stopped on an error
                    }
                }
            });
        }
        drop(tx);

        let mut pending: Vec<Finished> = Vec::new();
        let mut last_commit = Instant::now();
        let mut batch: Vec<Ready> = Vec::with_capacity(spec.batch);
        let mut done = 0u64;
        let mut run = |batch: &mut Vec<Ready>,
                       pending: &mut Vec<Finished>,
                       report: &mut PredictReport,
                       done: &mut u64|
         -> Result<(), InferError> {
            let results = infer_batch(batch, &spec, adapter, model, resolver, report)?;
            report.processed += batch.len();
            *done += batch.len() as u64;
            for (r, preds) in batch.drain(..).zip(results) {
                report.predictions += preds.len();
                pending.push(Finished {
                    index: r.index,
                    result: ImageResult::Predicted(preds),
                    size: r.size,
                    signature: Some(r.signature),
                });
            }
            progress(*done);
            Ok(())
        };
        for job in rx.iter() {
            match job {
                Job::Ready(r) => {
                    // One call takes images of one size (models of any size get one at a time).
                    let (g, f) = (r.prepared.geom, batch.first().map(|f| f.prepared.geom));
                    if f.is_some_and(|f| (f.in_w, f.in_h) != (g.in_w, g.in_h)) {
                        run(&mut batch, &mut pending, report, &mut done)?;
                    }
                    batch.push(r);
                    if batch.len() >= spec.batch {
                        run(&mut batch, &mut pending, report, &mut done)?;
                    }
                }
                Job::Broken(i, why) => {
                    report.broken.push((keys[i].clone(), why.clone()));
                    pending.push(Finished {
                        index: i,
                        result: ImageResult::Broken(why),
                        size: (0, 0),
                        signature: None,
                    });
                    done += 1;
                    progress(done);
                }
            }
            if pending.len() >= policy.images
                || (!pending.is_empty() && last_commit.elapsed() >= policy.every)
            {
                sink.commit(std::mem::take(&mut pending))?;
                last_commit = Instant::now();
            }
        }
        if !batch.is_empty() {
            run(&mut batch, &mut pending, report, &mut done)?;
        }
        if !pending.is_empty() {
            sink.commit(pending)?;
        }
        Ok(())
    })
}

/// One inference call over a batch of same-size images; a fixed batch dimension gets padding.
fn infer_batch(
    batch: &[Ready],
    spec: &preprocess::InputSpec,
    adapter: &dyn Adapter,
    model: &mut Model,
    resolver: &mut ClassResolver,
    report: &mut PredictReport,
) -> Result<Vec<Vec<NewPrediction>>, InferError> {
    let g = batch[0].prepared.geom;
    let n = if spec.fixed_batch {
        spec.batch
    } else {
        batch.len()
    };
    let first = &batch[0].prepared.data;
    let mut data = first.clone();
    for r in &batch[1..] {
        data.extend(&r.prepared.data);
    }
    let per = first.len();
    for _ in batch.len()..n {
        data.extend(&match first {
            InputData::U8(_) => InputData::U8(vec![0; per]),
            InputData::F32(_) => InputData::F32(vec![0.0; per]),
        });
    }
    let (h, w) = (i64::from(g.in_h), i64::from(g.in_w));
    let shape = match spec.layout {
        Layout::Nhwc => [n as i64, h, w, 3],
        Layout::Nchw => [n as i64, 3, h, w],
    };
    let t = Instant::now();
    let outs = model.run(&spec.name, &shape, &data)?;
    report.in_run += t.elapsed();
    report.batches += 1;
    batch
        .iter()
        .enumerate()
        .map(|(b, r)| {
            let raw = adapter.decode(&outs, b, &r.prepared.geom)?;
            Ok(raw
                .into_iter()
                .filter_map(|r| {
                    resolver.resolve(r.class).map(|class_id| NewPrediction {
                        class_id,
                        bbox: r.bbox,
                        score: f64::from(r.score),
                    })
                })
                .collect())
        })
        .collect()
}

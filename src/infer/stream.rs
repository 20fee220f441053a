//! `termtag predict --stream`: one machine of a fleet pre-labels its shard of a blob container
//! straight from the container (nothing claimed, nothing pulled, nothing kept on its disk). The
//! images are listed, this shard's downloaded a few at a time and decoded from memory, and the
//! model runs through the pipeline `predict` uses ([`super::predict::run_pipeline`]). Results go
//! to the labels container as immutable parts every few hundred images or seconds
//! ([`crate::remote::fleet`]); a shard that is killed and started again reads its parts and
//! skips what they hold. The shard that finds every shard done writes the merged `totag` CSV.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::predict::{
    CommitPolicy, Finished, ImageSource, PredictOptions, PredictReport, ResultSink, load,
    run_pipeline,
};
use super::{InferError, Shard};
use crate::formats::{ExportCtx, ald_csv};
use crate::model::{Dataset, ImageLabels, Label};
use crate::project::Project;
use crate::remote::fleet::{self, FleetError, Merged, PartDoc};
use crate::remote::{Remote, RemoteError, RemoteSet, list_all};
use crate::sanitize::{check_relative_key, for_terminal};
use crate::store::{ImageResult, Store, now_ms};

/// What a streamed run did, for the summary line.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// The model's part, images predicted and broken now (`already`: done by earlier runs of
    /// this shard).
    pub predict: PredictReport,
    /// The run's identity: model hash and settings hash.
    pub run: String,
    pub shard: Option<Shard>,
    /// Images in the container, and in this shard.
    pub listed: usize,
    pub in_shard: usize,
    /// Blob names refused (unsafe as paths), with why.
    pub refused: Vec<(String, String)>,
    pub parts_read: usize,
    pub parts_written: usize,
    /// Listing the images container; reading this shard's parts (the cost of a restart).
    pub listing: Duration,
    pub resume: Duration,
    /// The merged `totag` CSV: written, already there, or waiting for these shards.
    pub merged: Option<Merged>,
}

/// Why a streamed run stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0} ({1} parts written are kept: run the same command again to resume)")]
    Interrupted(RemoteError, usize),
    #[error("{0}")]
    Refused(String),
}

/// A part every 256 images (`TERMTAG_PART_IMAGES` sets another number, for tests and
/// benchmarks that want many parts of few images), or every 10 s.
fn part_policy() -> CommitPolicy {
    let images = std::env::var("TERMTAG_PART_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(256);
    CommitPolicy {
        images,
        every: Duration::from_secs(10),
    }
}

/// Runs the model over this shard's images of the project's images container that no part of
/// this run names yet, writing parts to the labels container.
pub fn predict_stream(
    project: &Project,
    store: &Store,
    set: &RemoteSet,
    rt: &tokio::runtime::Runtime,
    opts: &PredictOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<StreamReport, StreamError> {
    let started = Instant::now();
    if !project.config.task.is_detect() {
        return Err(StreamError::Refused(format!(
            "--stream writes active-learning-detect CSVs, which hold boxes, and this is a {} project: `termtag pull` the images and run `termtag predict` without --stream",
            project.config.task
        )));
    }
    if opts.rerun {
        return Err(StreamError::Refused(format!(
            "--rerun cannot be used with --stream: every shard of a fleet must agree on the run; to predict again, delete the run's folder under {} in the labels container",
            for_terminal(&fleet::predictions_root(set))
        )));
    }
    let mut loaded = load(project, store, opts)?;
    if loaded.adapter.kind() == super::config::AdapterKind::Classify {
        return Err(StreamError::Refused(format!(
            "{}: a classifier finds no boxes, and --stream writes active-learning-detect CSVs of boxes",
            crate::sanitize::show_path(&loaded.model_file)
        )));
    }
    let shard = opts.shard.unwrap_or(Shard { k: 1, n: 1 });
    let run = format!("{}-{}", &loaded.sha[..16], &loaded.settings[..16]);
    let classes: HashMap<i64, String> = store
        .classes()?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let concurrency = project.config.remote.concurrency.max(1);
    let mut report = StreamReport {
        predict: std::mem::take(&mut loaded.report),
        run: run.clone(),
        shard: opts.shard,
        ..StreamReport::default()
    };

    // The images: every image blob under the prefix but termtag's own.
    let t = Instant::now();
    let blobs = rt.block_on(list_all(set.images.as_ref(), &set.prefix))?;
    let own = format!("{}termtag/", set.prefix);
    let mut mine = Vec::new();
    for b in &blobs {
        if b.name.starts_with(&own) {
            continue;
        }
        let key = &b.name[set.prefix.len()..];
        if !crate::index::is_image(Path::new(key)) {
            continue;
        }
        report.listed += 1;
        if let Err(e) = check_relative_key(key) {
            report.refused.push((for_terminal(&b.name), e.to_string()));
            continue;
        }
        if shard.contains(key) {
            mine.push(key.to_string());
        }
    }
    report.in_shard = mine.len();
    report.listing = t.elapsed();

    // What this shard's earlier runs finished.
    let t = Instant::now();
    let state = rt.block_on(async {
        set.ensure_labels().await.map_err(fleet::FleetError::from)?;
        fleet::read_shard(set, &run, shard, concurrency).await
    })?;
    report.resume = t.elapsed();
    report.parts_read = state.parts;
    let mut todo: Vec<String> = mine
        .into_iter()
        .filter(|k| !state.done.contains(k))
        .collect();
    todo.sort();
    report.predict.already = report.in_shard - todo.len();
    report.predict.resumed = report.predict.already > 0;
    report.predict.setup = started.elapsed();

    // Downloads, a few at a time, into a small queue the decode workers take from.
    let started = Instant::now();
    let total = todo.len() as u64;
    progress(0, total);
    let (tx, rx) = tokio::sync::mpsc::channel(concurrency * 2);
    let fatal: Arc<Mutex<Option<RemoteError>>> = Arc::new(Mutex::new(None));
    let download = rt.spawn(download(
        set.images.clone(),
        set.prefix.clone(),
        todo.clone(),
        concurrency,
        tx,
        fatal.clone(),
    ));
    let source = Downloaded { rx: Mutex::new(rx) };
    let mut sink = PartSink {
        rt,
        set,
        run: &run,
        shard,
        seq: state.next_seq,
        classes: &classes,
        keys: &todo,
        written: 0,
    };
    let ran = run_pipeline(
        &source,
        &todo,
        &mut loaded,
        &mut sink,
        part_policy(),
        project.config.max_megapixels,
        opts.workers,
        &mut report.predict,
        &|done| progress(done, total),
    );
    report.parts_written = sink.written;
    // Stops the downloads if the pipeline stopped early.
    drop(source);
    let _ = rt.block_on(download);
    ran.map_err(|e| loaded.named(e))?;
    if let Some(e) = fatal.lock().ok().and_then(|mut f| f.take()) {
        return Err(StreamError::Interrupted(e, report.parts_written));
    }
    // Named as blobs: the machine has no files.
    let container = set.images.describe();
    for (key, _) in &mut report.predict.broken {
        *key = format!("{container}/{}{key}", set.prefix);
    }
    report.predict.dropped = std::mem::take(&mut loaded.resolver.dropped);
    report.predict.total = started.elapsed();

    rt.block_on(fleet::mark_done(set, &run, shard))?;
    report.merged = Some(rt.block_on(fleet::merge_when_done(set, &run, shard.n, concurrency))?);
    Ok(report)
}

/// One downloaded image, or why there is none.
type Fetched = (usize, Result<Vec<u8>, String>);

/// Fetches `keys` `concurrency` at a time, in any order, into `tx`. A blob deleted since the
/// listing is a broken image; any other failure stops the downloads and is left in `fatal`.
async fn download(
    images: Arc<dyn Remote>,
    prefix: String,
    keys: Vec<String>,
    concurrency: usize,
    tx: tokio::sync::mpsc::Sender<Fetched>,
    fatal: Arc<Mutex<Option<RemoteError>>>,
) {
    let mut fetches = futures::stream::iter(keys.into_iter().enumerate())
        .map(|(i, key)| {
            let (images, name) = (images.clone(), format!("{prefix}{key}"));
            async move { (i, images.get(&name).await) }
        })
        .buffer_unordered(concurrency);
    while let Some((i, got)) = fetches.next().await {
        let item = match got {
            Ok((bytes, _)) => Ok(bytes),
            Err(RemoteError::NotFound(_)) => {
                Err("no longer in the images container (deleted after the listing)".to_string())
            }
            Err(e) => {
                if let Ok(mut f) = fatal.lock() {
                    f.get_or_insert(e);
                }
                return;
            }
        };
        if tx.send((i, item)).await.is_err() {
            return; // the pipeline stopped
        }
    }
}

/// The downloads, as the pipeline's decode workers take them.
struct Downloaded {
    rx: Mutex<tokio::sync::mpsc::Receiver<Fetched>>,
}

impl ImageSource for Downloaded {
    fn next(&self) -> Option<Fetched> {
        self.rx.lock().ok()?.blocking_recv()
    }
}

/// Writes each commit as one immutable part of this shard.
struct PartSink<'a> {
    rt: &'a tokio::runtime::Runtime,
    set: &'a RemoteSet,
    run: &'a str,
    shard: Shard,
    seq: u64,
    classes: &'a HashMap<i64, String>,
    keys: &'a [String],
    written: usize,
}

impl ResultSink for PartSink<'_> {
    fn commit(&mut self, done: Vec<Finished>) -> Result<(), InferError> {
        let mut images = Vec::new();
        let mut broken = Vec::new();
        let mut signatures = Vec::new();
        for f in done {
            let key = self.keys[f.index].clone();
            if let Some(sig) = &f.signature {
                signatures.push((key.clone(), fleet::encode_signature(sig)));
            }
            match f.result {
                ImageResult::Broken(why) => broken.push((key, why)),
                ImageResult::Predicted(preds) => images.push(ImageLabels {
                    key,
                    width: f.size.0,
                    height: f.size.1,
                    labels: preds
                        .into_iter()
                        .map(|p| Label {
                            class: self.classes.get(&p.class_id).cloned().unwrap_or_default(),
                            bbox: Some(p.bbox.unwrap_or(crate::model::BBox::FULL)),
                            score: Some(p.score),
                        })
                        .collect(),
                }),
            }
        }
        let name = fleet::shard_dir(self.set, self.run, self.shard);
        let csv = ald_csv::write(
            &Dataset {
                classes: Vec::new(),
                images,
            },
            &ExportCtx {
                task: crate::model::Task::Detect,
                out: Path::new(&name),
                predictions: true,
                url_prefix: "",
            },
        )
        .map_err(|e| InferError::Run(e.to_string()))?;
        let doc = PartDoc {
            run: self.run.to_string(),
            shard: format!("{}/{}", self.shard.k, self.shard.n),
            written_ms: now_ms(),
            totag: String::from_utf8_lossy(&csv).into_owned(),
            broken,
            signatures,
        };
        self.rt.block_on(fleet::write_part(
            self.set,
            self.run,
            self.shard,
            &mut self.seq,
            &doc,
        ))?;
        self.written += 1;
        Ok(())
    }
}

//! `termtag simulate`: does the uncertainty order find the model's mistakes sooner than plain
//! random order, and which metric does it best, on the user's own data? Review is replayed with
//! the truth (reviewed labels, or a labels file) as the annotator, in each metric's queue order
//! and in seeded random orders ([`replay`]); `--rounds` runs the whole loop, labelling and
//! retraining ([`rounds`]); `--diversity` adds the review queue's own near-duplicate option
//! ([`crate::diversity`], applied by [`crate::queue::arrange`]), so that the figures are those of
//! what users get.
//! The command itself (flags, table, plot) is [`crate::commands::simulate`].

pub mod plot;
pub mod replay;
pub mod rounds;

use std::collections::HashMap;

use serde::Serialize;

use crate::diversity::{Groups, Signature};
use crate::eval::{DetBox, GtBox};
use crate::formats::{FormatError, FormatKind, ImageIndex, ImportCtx};
use crate::infer::InferError;
use crate::model::ImageStatus;
use crate::project::{Project, ProjectError};
use crate::queue::{Diversity, Metric, Order, QueueImage, QueueParams, QueueRow};
use crate::sanitize::show_path;
use crate::store::{Filter, PredictedImage, Store, StoreError};
use crate::train::TrainError;
use replay::Mistakes;

/// Why a simulation could not run; each names the file, model or setting and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(
        "{file}: names none of this project's images; give the truth of these images (or run `termtag refresh`)"
    )]
    NoTruth { file: String },
    #[error(
        "--rounds retrains each round: set [train] command in termtag.toml (it gets {{export}} and writes {{model}})"
    )]
    NoTrainCommand,
    #[error("[train] command did not run")]
    TrainDidNotRun,
    #[error("{path}: cannot create")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("predicting with {model}: {source}")]
    Predict { model: String, source: InferError },
}

pub type Result<T, E = SimulateError> = std::result::Result<T, E>;

/// The review shares the report reads the curves at.
pub const SHARES: [f64; 3] = [0.1, 0.2, 0.5];

/// A way to order the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Metric(Metric),
    /// The metric's order with near-duplicates in turns.
    Diverse(Metric),
    Random(u64),
}

impl Strategy {
    pub fn name(self) -> String {
        match self {
            Strategy::Metric(m) => m.as_str().into(),
            Strategy::Diverse(m) => format!("{}+diverse", m.as_str()),
            Strategy::Random(_) => "random".into(),
        }
    }
}

/// The truth and the model's predictions, per image id of the store they come from.
pub struct Cases {
    /// Images with truth that the run predicted, in id order.
    pub ids: Vec<i64>,
    pub truth: HashMap<i64, Vec<GtBox>>,
    pub preds: HashMap<i64, Vec<DetBox>>,
    /// Truth images the run did not predict (left out).
    pub unpredicted: usize,
}

impl Cases {
    pub fn new(truth: HashMap<i64, Vec<GtBox>>, predicted: &[PredictedImage]) -> Cases {
        let mut preds: HashMap<i64, Vec<DetBox>> = HashMap::new();
        for im in predicted.iter().filter(|i| truth.contains_key(&i.id)) {
            let dets = im
                .predictions
                .iter()
                .filter_map(|p| {
                    Some(DetBox {
                        image: im.id,
                        class: p.class.clone(),
                        bbox: p.bbox?,
                        score: p.score,
                    })
                })
                .collect();
            preds.insert(im.id, dets);
        }
        let mut ids: Vec<i64> = preds.keys().copied().collect();
        ids.sort();
        Cases {
            unpredicted: truth.len() - ids.len(),
            ids,
            truth,
            preds,
        }
    }

    /// The queue's view of the predictions.
    pub fn queue_images(&self) -> Vec<QueueImage> {
        let mut names: HashMap<&str, std::sync::Arc<str>> = HashMap::new();
        self.ids
            .iter()
            .map(|id| QueueImage {
                id: *id,
                preds: self.preds[id]
                    .iter()
                    .map(|d| crate::queue::Scored {
                        class: names
                            .entry(d.class.as_str())
                            .or_insert_with(|| d.class.as_str().into())
                            .clone(),
                        score: d.score,
                        boxed: true,
                    })
                    .collect(),
                // Replayed as a fresh run: every prediction is open.
                decided: false,
            })
            .collect()
    }

    /// Each image's mistakes among the predictions shown from `shown_from`.
    pub fn mistakes(&self, shown_from: f64) -> HashMap<i64, Mistakes> {
        self.ids
            .iter()
            .map(|id| {
                let m = replay::image_mistakes(&self.truth[id], &self.preds[id], shown_from);
                (*id, m)
            })
            .collect()
    }

    /// Truth and predictions of every case, for AP.
    pub fn boxes(&self) -> (Vec<GtBox>, Vec<DetBox>) {
        let gts = self.ids.iter().flat_map(|id| self.truth[id].clone());
        let dets = self.ids.iter().flat_map(|id| self.preds[id].clone());
        (gts.collect(), dets.collect())
    }
}

/// The queue parameters of `strategy`: the metric's uncertain order, with the diversity option
/// (its groups in `diversity`) on for the diverse strategies only, or the seeded random order.
fn strategy_params(
    strategy: Strategy,
    params: &QueueParams,
    diversity: Option<&Diversity>,
) -> QueueParams {
    let mut p = params.clone();
    p.diversity = None;
    match strategy {
        Strategy::Metric(m) => {
            p.metric = m;
            p.order = Order::Uncertain;
        }
        Strategy::Diverse(m) => {
            p.metric = m;
            p.order = Order::Uncertain;
            p.diversity = diversity.cloned();
        }
        Strategy::Random(seed) => {
            p.order = Order::Random;
            p.seed = seed;
        }
    }
    p
}

/// The review order of `strategy` over `images`, none of them reviewed yet: the review queue's
/// ordering, with the diversity option (its groups in `diversity`) on for the diverse strategies
/// only.
pub fn strategy_order(
    strategy: Strategy,
    images: &[QueueImage],
    params: &QueueParams,
    diversity: Option<&Diversity>,
) -> Vec<i64> {
    let rows: Vec<(i64, ImageStatus)> = images.iter().map(|i| (i.id, ImageStatus::New)).collect();
    review_order(strategy, &rows, images, params, diversity)
}

/// The waiting images of `rows` in the order the review queue ([`crate::queue::review_queue`])
/// gives them under `strategy`, for a project in that state: with the diversity option, a
/// near-duplicate group with a reviewed picture among `rows` has had its turn. `images` are the
/// predictions of the images of `rows`. Waiting images the queue leaves out (the `skip` empty
/// policy) follow in id order, so that every image can be labelled.
pub fn review_order<R: QueueRow>(
    strategy: Strategy,
    rows: &[R],
    images: &[QueueImage],
    params: &QueueParams,
    diversity: Option<&Diversity>,
) -> Vec<i64> {
    let p = strategy_params(strategy, params, diversity);
    let scored = crate::queue::score(images, &p);
    let waiting = |s: ImageStatus| matches!(s, ImageStatus::New | ImageStatus::Claimed);
    let placed = crate::queue::review_queue(rows, &scored, false, &p)
        .into_iter()
        .filter(|x| waiting(rows[x.row].status()))
        .map(|x| rows[x.row].id());
    let all: Vec<i64> = rows
        .iter()
        .filter(|r| waiting(r.status()))
        .map(QueueRow::id)
        .collect();
    replay::complete(placed, &all)
}

/// One strategy's replay.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub strategy: String,
    /// Share of the mistakes found at each of [`SHARES`].
    pub found: Vec<f64>,
    /// `found` over random's.
    pub ratio: Vec<Option<f64>>,
    /// Share found after n images, n = 0..=images.
    pub curve: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub run: i64,
    pub images: usize,
    pub mistakes: Mistakes,
    /// What the shares count: per image, or once per near-duplicate group.
    pub counted: &'static str,
    pub groups: Option<usize>,
    pub seeds: u64,
    pub shares: Vec<f64>,
    /// The metrics (and their diverse twins), then `random` (mean over the seeds).
    pub lines: Vec<Line>,
}

/// Replays review in each strategy's order. Random orders are averaged into one line.
pub fn replay_all(
    cases: &Cases,
    params: &QueueParams,
    shown_from: f64,
    strategies: &[Strategy],
    diversity: Option<&Diversity>,
) -> (Mistakes, Vec<Line>) {
    let groups = diversity.map(|d| &*d.groups);
    let per_image = cases.mistakes(shown_from);
    let mut all = Mistakes::default();
    for m in per_image.values() {
        all.add(m);
    }
    let counts: HashMap<i64, usize> = per_image.iter().map(|(k, v)| (*k, v.total())).collect();
    let total = replay::total_mistakes(&counts, groups).max(1) as f64;
    let images = cases.queue_images();
    let n = images.len();
    let curve_of = |s: Strategy| -> Vec<f64> {
        let order = strategy_order(s, &images, params, diversity);
        replay::found_curve(&order, &counts, groups)
            .into_iter()
            .map(|f| f as f64 / total)
            .collect()
    };
    let mut lines = Vec::new();
    let mut random: Option<(Vec<f64>, usize)> = None;
    for s in strategies {
        let curve = curve_of(*s);
        if let Strategy::Random(_) = s {
            let (sum, k) = random.get_or_insert_with(|| (vec![0.0; curve.len()], 0));
            for (a, b) in sum.iter_mut().zip(&curve) {
                *a += b;
            }
            *k += 1;
        } else {
            lines.push((s.name(), curve));
        }
    }
    if let Some((sum, k)) = random {
        lines.push(("random".into(), sum.iter().map(|v| v / k as f64).collect()));
    }
    let at = |curve: &[f64]| -> Vec<f64> {
        SHARES
            .iter()
            .map(|f| curve[replay::reviewed_at(*f, n)])
            .collect()
    };
    let base = lines
        .iter()
        .find(|(name, _)| name == "random")
        .map(|(_, c)| at(c));
    let lines = lines
        .into_iter()
        .map(|(strategy, curve)| {
            let found = at(&curve);
            let ratio = found
                .iter()
                .enumerate()
                .map(|(i, f)| base.as_ref().and_then(|b| (b[i] > 0.0).then(|| f / b[i])))
                .collect();
            Line {
                strategy,
                found,
                ratio,
                curve,
            }
        })
        .collect();
    (all, lines)
}

/// The truth as image id → boxes of the store: a labels file read in memory (nothing is
/// imported), or the reviewed labels.
pub fn load_truth(
    project: &Project,
    store: &Store,
    file: Option<(&std::path::Path, FormatKind)>,
) -> Result<HashMap<i64, Vec<GtBox>>> {
    let gt = |id: i64, class: &str, bbox| GtBox {
        image: id,
        class: class.to_string(),
        bbox,
    };
    let Some((path, format)) = file else {
        return Ok(store
            .reviewed_labels()?
            .into_iter()
            .map(|(id, ls)| {
                let boxes = ls
                    .iter()
                    .filter_map(|l| Some(gt(id, &l.class, l.bbox?)))
                    .collect();
                (id, boxes)
            })
            .collect());
    };
    let index = ImageIndex::new(store.known_images()?);
    let classes = store.class_names()?;
    let imported = format.import(
        path,
        &ImportCtx {
            task: project.config.task,
            images: &index,
            classes: &classes,
            predictions: false,
        },
    )?;
    let ids: HashMap<String, i64> = store
        .image_briefs(&Filter::default())?
        .into_iter()
        .map(|b| (b.key, b.id))
        .collect();
    let mut out: HashMap<i64, Vec<GtBox>> = HashMap::new();
    let mut missing = imported.unplaced.len();
    for im in imported.dataset.images {
        let Some(id) = index.resolve(&im.key).and_then(|k| ids.get(&k.key)) else {
            missing += 1;
            continue;
        };
        let boxes = out.entry(*id).or_default();
        boxes.extend(
            im.labels
                .iter()
                .filter_map(|l| Some(gt(*id, &l.class, l.bbox?))),
        );
    }
    if out.is_empty() {
        return Err(SimulateError::NoTruth {
            file: show_path(path),
        });
    }
    if missing > 0 {
        errln!(
            "note: {}: {missing} images are not in this project and are left out",
            show_path(path)
        );
    }
    Ok(out)
}

/// The metrics, their diverse twins (with `diversity`), then `seeds` random orders.
pub fn strategies(metrics: &[Metric], diversity: bool, seeds: u64) -> Vec<Strategy> {
    let mut out: Vec<Strategy> = metrics.iter().map(|m| Strategy::Metric(*m)).collect();
    if diversity {
        out.extend(metrics.iter().map(|m| Strategy::Diverse(*m)));
    }
    out.extend((0..seeds).map(Strategy::Random));
    out
}

/// The queue's diversity option over the case images: their signatures as stored (by `termtag
/// predict`), those missing computed from the pictures (not stored: the replay only reads the
/// store), grouped as the review queue groups them.
pub fn near_duplicate_groups(
    project: &Project,
    store: &Store,
    ids: &[i64],
    min_similarity: f32,
) -> Result<Diversity> {
    let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
    let mut sigs: Vec<(i64, Signature)> = store
        .signatures()?
        .into_iter()
        .filter(|(id, _)| wanted.contains(id))
        .collect();
    let have: std::collections::HashSet<i64> = sigs.iter().map(|(id, _)| *id).collect();
    let keys: HashMap<i64, String> = store
        .image_briefs(&Filter::default())?
        .into_iter()
        .map(|b| (b.id, b.key))
        .collect();
    let mut files = Vec::new();
    for id in ids.iter().filter(|id| !have.contains(id)) {
        if let Some(key) = keys.get(id) {
            files.push((*id, project.image_file(key)?));
        }
    }
    let refs: Vec<(i64, &std::path::Path)> = files.iter().map(|(i, p)| (*i, p.as_path())).collect();
    let computed = crate::diversity::signatures_of_files(&refs, project.config.max_megapixels);
    let unreadable = computed.iter().filter(|(_, s)| s.is_none()).count();
    if unreadable > 0 {
        errln!("note: {unreadable} pictures could not be read and count as groups of their own");
    }
    sigs.extend(computed.into_iter().filter_map(|(id, s)| Some((id, s?))));
    Ok(Diversity {
        similarity: min_similarity,
        groups: std::sync::Arc::new(Groups::new(&sigs, min_similarity)),
    })
}

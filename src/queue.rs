//! The review queue: per-image uncertainty from model predictions, the bucket of images where the
//! model found nothing, class-balance quotas, audit and random orders. Pure functions over
//! predictions; [`review_queue`] is the one ordering that the review screen, `termtag queue` and
//! `termtag pull` (which claims the first images of it) all use.
//!
//! Detection metrics read the boxes scoring at least `min_confidence`:
//!
//! | metric | value (higher = reviewed first) |
//! |---|---|
//! | least_confidence | 1 − the lowest box score |
//! | mean_confidence | 1 − the mean box score |
//! | margin | the largest box margin 1 − \|2s − 1\| (a box score's distance from a coin toss) |
//! | entropy | the largest binary entropy H(s) = −s log₂ s − (1−s) log₂(1−s) of a box score |
//! | uncertain_count | boxes whose score lies in the band (default [0.3, 0.7]) |
//!
//! Classification (class scores, no boxes): least_confidence 1 − p₁, mean_confidence 1 − the mean
//! of the scores ≥ `min_confidence`, margin 1 − (p₁ − p₂), entropy the mean binary entropy over
//! the project's classes, uncertain_count the classes scoring in the band.
//!
//! An image with nothing at or above `min_confidence` has no value: it goes to the empty bucket,
//! placed by the `empty` policy instead of ranking first with a score of 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::ImageStatus;
use crate::rng::SplitMix;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Metric {
    #[default]
    LeastConfidence,
    MeanConfidence,
    Margin,
    Entropy,
    UncertainCount,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::LeastConfidence,
        Metric::MeanConfidence,
        Metric::Margin,
        Metric::Entropy,
        Metric::UncertainCount,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::LeastConfidence => "least_confidence",
            Metric::MeanConfidence => "mean_confidence",
            Metric::Margin => "margin",
            Metric::Entropy => "entropy",
            Metric::UncertainCount => "uncertain_count",
        }
    }
    /// The next metric, for the TUI's `m` key.
    pub fn next(self) -> Metric {
        let i = Metric::ALL.iter().position(|m| *m == self).unwrap_or(0);
        Metric::ALL[(i + 1) % Metric::ALL.len()]
    }
}

/// Where images with no prediction above `min_confidence` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum EmptyPolicy {
    /// After every ranked image (default: a miss is checked once the doubts are cleared).
    #[default]
    Last,
    /// Before the ranked images (hunting for missed objects).
    First,
    /// One empty image after every `empty_every` ranked ones.
    Interleave,
    /// Left out of the queue.
    Skip,
}

/// Which end of the ranking comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Order {
    /// Most uncertain first.
    #[default]
    Uncertain,
    /// Most confident first: checking what the model is sure about.
    Audit,
    /// Seeded shuffle of every image, empty or not: the baseline to compare against.
    Random,
}

/// `[queue]` in termtag.toml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty: Option<EmptyPolicy>,
    /// Interleave: ranked images between two empty ones (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_every: Option<usize>,
    /// uncertain_count: the score band (default [0.3, 0.7]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<[f64; 2]>,
    /// Share of the queue each class should get, by the image's top predicted class, e.g.
    /// `{ knot = 0.5, crack = 0.3 }`; classes not listed share what is left.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ideal_class_balance: BTreeMap<String, f64>,
    /// Seed of the random order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Near-duplicates take turns: a picture waits while a near-copy of it is higher in the
    /// queue, until every group has had its turn (`termtag queue --diversity` for one listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity: Option<bool>,
    /// Pictures whose grey 32×24 thumbnails correlate at least this much are near-duplicates
    /// (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

impl QueueConfig {
    pub fn is_empty(&self) -> bool {
        self == &QueueConfig::default()
    }
}

/// One prediction as the queue sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Shared: a project has a few classes and a queue many predictions.
    pub class: Arc<str>,
    pub score: f64,
    /// Detection (a box) or a class score of a classifier.
    pub boxed: bool,
}

/// An image to rank with its open predictions (newest run).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueImage {
    pub id: i64,
    pub preds: Vec<Scored>,
    /// The model proposed something, and every proposal has been accepted or dismissed: nothing
    /// is open to rank, but the model did not find the image empty either.
    pub decided: bool,
}

/// Everything that decides the order.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueParams {
    pub metric: Metric,
    pub min_confidence: f64,
    pub band: [f64; 2],
    pub empty: EmptyPolicy,
    pub empty_every: usize,
    pub balance: BTreeMap<String, f64>,
    pub order: Order,
    pub seed: u64,
    /// Number of project classes (classification entropy averages over them).
    pub num_classes: usize,
    /// Near-duplicates in turns (`[queue] diversity`); `None` when off.
    pub diversity: Option<Diversity>,
}

/// The diversity option of the queue: the similarity that makes two pictures near-duplicates,
/// and the groups found among the pictures that have a signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Diversity {
    pub similarity: f32,
    /// Keyed by the ids the queue's rows carry. Empty until a caller fills it: the screen and
    /// `termtag queue` from the store ([`Diversity::load`]), `pull` from the signatures a fleet's
    /// `predict --stream` wrote beside its predictions. Pictures with no signature (not decoded
    /// yet) are groups of their own, so where no picture has one the order is the metric's.
    pub groups: Arc<crate::diversity::Groups>,
}

impl Diversity {
    pub fn new(similarity: f32) -> Diversity {
        Diversity {
            similarity,
            groups: Arc::default(),
        }
    }

    /// The groups of the signatures in `store`.
    pub fn load(&mut self, store: &crate::store::Store) -> Result<(), crate::store::StoreError> {
        self.groups = Arc::new(crate::diversity::Groups::from_store(
            store,
            self.similarity,
        )?);
        Ok(())
    }
}

impl QueueParams {
    pub fn new(cfg: &QueueConfig, min_confidence: f64, num_classes: usize) -> QueueParams {
        QueueParams {
            metric: cfg.metric.unwrap_or_default(),
            min_confidence,
            band: cfg.band.unwrap_or([0.3, 0.7]),
            empty: cfg.empty.unwrap_or_default(),
            empty_every: cfg.empty_every.unwrap_or(10).max(1),
            balance: cfg.ideal_class_balance.clone(),
            order: Order::Uncertain,
            seed: cfg.seed.unwrap_or(0),
            num_classes,
            diversity: cfg.diversity.unwrap_or(false).then(|| {
                Diversity::new(
                    cfg.similarity
                        .unwrap_or(crate::diversity::DEFAULT_SIMILARITY),
                )
            }),
        }
    }
}

/// An image's place in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub id: i64,
    /// The metric value; `None` for the empty bucket.
    pub value: Option<f64>,
    /// Class of the best prediction at or above `min_confidence`.
    pub top_class: Option<Arc<str>>,
    /// As [`QueueImage::decided`].
    pub decided: bool,
}

/// Positions of ids (image ids, SQLite row ids): an array indexed by id when the ids are dense,
/// as row ids nearly always are, else a hash map. One memory access per lookup, where a binary
/// search over 100,000 ids costs seventeen dependent cache misses.
#[derive(Debug, Clone)]
pub enum IdSlots {
    Dense(Vec<u32>),
    Sparse(std::collections::HashMap<i64, u32>),
}

impl IdSlots {
    const NONE: u32 = u32::MAX;

    /// `ids[n]` at position `n`; a repeated id keeps its last position.
    pub fn new(ids: impl ExactSizeIterator<Item = i64> + Clone) -> IdSlots {
        let len = ids.len();
        let max = ids.clone().max().unwrap_or(0);
        let dense = ids.clone().all(|id| id >= 0) && max <= 4 * len as i64 + 1024;
        if dense {
            let mut slots = vec![Self::NONE; max as usize + 1];
            for (n, id) in ids.enumerate() {
                slots[id as usize] = n as u32;
            }
            IdSlots::Dense(slots)
        } else {
            IdSlots::Sparse(ids.enumerate().map(|(n, id)| (id, n as u32)).collect())
        }
    }

    pub fn get(&self, id: i64) -> Option<usize> {
        let n = match self {
            IdSlots::Dense(v) => *usize::try_from(id).ok().and_then(|i| v.get(i))?,
            IdSlots::Sparse(m) => *m.get(&id)?,
        };
        (n != Self::NONE).then_some(n as usize)
    }
}

/// Binary entropy in bits.
pub fn binary_entropy(p: f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    let h = |x: f64| if x <= 0.0 { 0.0 } else { -x * x.log2() };
    h(p) + h(1.0 - p)
}

/// The metric of one image, or `None` when nothing scores at least `min_confidence`. Allocates
/// nothing for detections: the review screen computes it for every predicted image when it ranks.
pub fn metric_value(img: &QueueImage, p: &QueueParams) -> Option<f64> {
    let kept = || {
        img.preds
            .iter()
            .map(|s| s.score)
            .filter(|s| *s >= p.min_confidence)
    };
    let n_kept = kept().count();
    if n_kept == 0 {
        return None;
    }
    let in_band = |s: &f64| in_band(s, p);
    let mean = || 1.0 - kept().sum::<f64>() / n_kept as f64;
    let classification = img.preds.iter().all(|s| !s.boxed);
    if classification {
        return Some(class_value(img, p, mean()));
    }
    Some(match p.metric {
        Metric::LeastConfidence => 1.0 - kept().fold(f64::INFINITY, f64::min),
        Metric::MeanConfidence => mean(),
        Metric::Margin => kept()
            .map(|s| 1.0 - (2.0 * s - 1.0).abs())
            .fold(f64::NEG_INFINITY, f64::max),
        Metric::Entropy => kept().map(binary_entropy).fold(f64::NEG_INFINITY, f64::max),
        Metric::UncertainCount => kept().filter(in_band).count() as f64,
    })
}

fn in_band(s: &f64, p: &QueueParams) -> bool {
    *s >= p.band[0] && *s <= p.band[1]
}

/// The metric of a classification (class scores, no boxes), given its mean-confidence value;
/// it allocates, as it sorts every score.
fn class_value(img: &QueueImage, p: &QueueParams, mean: f64) -> f64 {
    // Sorted best first (the entropy sums in that order).
    let mut all: Vec<f64> = img.preds.iter().map(|s| s.score).collect();
    all.sort_by(|a, b| b.total_cmp(a));
    let p1 = all[0];
    let p2 = all.get(1).copied().unwrap_or(0.0);
    match p.metric {
        Metric::LeastConfidence => 1.0 - p1,
        Metric::MeanConfidence => mean,
        Metric::Margin => 1.0 - (p1 - p2),
        Metric::Entropy => {
            let n = p.num_classes.max(all.len()).max(1);
            all.iter().map(|s| binary_entropy(*s)).sum::<f64>() / n as f64
        }
        Metric::UncertainCount => all.iter().filter(|s| in_band(s, p)).count() as f64,
    }
}

fn top_class(img: &QueueImage, min_confidence: f64) -> Option<Arc<str>> {
    img.preds
        .iter()
        .filter(|s| s.score >= min_confidence)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map(|s| s.class.clone())
}

/// Orders `images` for review. Ties keep image-id order.
pub fn order<'a>(images: impl IntoIterator<Item = &'a QueueImage>, p: &QueueParams) -> Vec<Ranked> {
    arrange(score(images, p), p)
}

/// Every image's value under `p.metric` and its top class, in image-id order: the part of
/// [`order`] that reads predictions, which the review screen keeps per metric.
pub fn score<'a>(images: impl IntoIterator<Item = &'a QueueImage>, p: &QueueParams) -> Vec<Ranked> {
    let mut sorted: Vec<&QueueImage> = images.into_iter().collect();
    sorted.sort_by_key(|i| i.id);
    sorted
        .into_iter()
        .map(|img| Ranked {
            id: img.id,
            value: metric_value(img, p),
            top_class: top_class(img, p.min_confidence),
            decided: img.decided && img.preds.is_empty(),
        })
        .collect()
}

/// The rest of [`order`]: ranks `scored` (in image-id order, as [`score`] gives it) by value,
/// then applies the class balance, the diversity option (near-duplicates in turns, within the
/// ranked images and within the empty bucket) and the empty policy; images whose proposals are
/// all decided follow. The random order is the baseline: no balance, no diversity.
pub fn arrange(scored: impl IntoIterator<Item = Ranked>, p: &QueueParams) -> Vec<Ranked> {
    arrange_served(scored, p, &std::collections::HashMap::new())
}

/// [`arrange`], where near-duplicate groups have had `served` turns already (reviewed pictures).
fn arrange_served(
    scored: impl IntoIterator<Item = Ranked>,
    p: &QueueParams,
    served: &std::collections::HashMap<u32, u32>,
) -> Vec<Ranked> {
    let (decided, scored): (Vec<Ranked>, Vec<Ranked>) = scored.into_iter().partition(|r| r.decided);
    let (mut ranked, empty): (Vec<Ranked>, Vec<Ranked>) =
        scored.into_iter().partition(|r| r.value.is_some());
    if p.order == Order::Random {
        let mut all: Vec<Ranked> = ranked.into_iter().chain(empty).chain(decided).collect();
        let mut rng = SplitMix(p.seed);
        for i in (1..all.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            all.swap(i, j);
        }
        return all;
    }
    let value = |r: &Ranked| r.value.unwrap_or(0.0);
    match p.order {
        Order::Audit => ranked.sort_by(|a, b| value(a).total_cmp(&value(b))),
        _ => ranked.sort_by(|a, b| value(b).total_cmp(&value(a))),
    }
    if !p.balance.is_empty() {
        ranked = balance(ranked, &p.balance);
    }
    let empty = match &p.diversity {
        Some(d) => {
            ranked = crate::diversity::diversify(ranked, &d.groups, served);
            crate::diversity::diversify(empty, &d.groups, served)
        }
        None => empty,
    };
    let mut out: Vec<Ranked> = match p.empty {
        EmptyPolicy::Last => ranked.into_iter().chain(empty).collect(),
        EmptyPolicy::First => empty.into_iter().chain(ranked).collect(),
        EmptyPolicy::Skip => ranked,
        EmptyPolicy::Interleave => {
            let mut out = Vec::with_capacity(ranked.len() + empty.len());
            let mut empty = empty.into_iter();
            for (i, r) in ranked.into_iter().enumerate() {
                out.push(r);
                if (i + 1) % p.empty_every == 0
                    && let Some(e) = empty.next()
                {
                    out.push(e);
                }
            }
            out.extend(empty);
            out
        }
    };
    out.extend(decided);
    out
}

/// What the review queue needs to know of an image.
pub trait QueueRow {
    fn id(&self) -> i64;
    fn status(&self) -> ImageStatus;
}

impl QueueRow for (i64, ImageStatus) {
    fn id(&self) -> i64 {
        self.0
    }
    fn status(&self) -> ImageStatus {
        self.1
    }
}

/// Where an image stands in the review queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// Waiting, ranked by the metric: its value.
    Ranked(f64),
    /// Waiting; the model found nothing at or above `min_confidence` (the empty bucket).
    Empty,
    /// Waiting; every proposal of the newest run was accepted or dismissed.
    Decided,
    /// Waiting; the model has not seen it.
    Unpredicted,
    Skipped,
    /// Reviewed (or broken, when broken images were asked for).
    Done,
}

impl Place {
    /// The metric value, for a ranked image.
    pub fn value(self) -> Option<f64> {
        match self {
            Place::Ranked(v) => Some(v),
            _ => None,
        }
    }

    /// Placed by the model's predictions (ranked, empty or decided).
    pub fn predicted(self) -> bool {
        matches!(self, Place::Ranked(_) | Place::Empty | Place::Decided)
    }
}

/// One queue position: the index of the image in the rows given, and its place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub row: usize,
    pub place: Place,
}

/// THE review queue, for the images of `rows` (those matching the filter, in key order):
/// waiting images ranked by model uncertainty as [`arrange`] orders `scored` (every predicted
/// image as [`score`] gives it, in id order; images not in `rows` are ignored), then waiting
/// images the model has not seen, then skipped ones, then reviewed ones, and broken ones when
/// `with_broken`; each of the last three groups in the order of `rows`. With `p.diversity`,
/// near-duplicates take turns as far as its groups know the images (those with a signature), and
/// a group with a reviewed picture among `rows` has had that turn: its copies do not come back
/// to the top once one of them is done.
pub fn review_queue<R: QueueRow>(
    rows: &[R],
    scored: &[Ranked],
    with_broken: bool,
    p: &QueueParams,
) -> Vec<Placed> {
    let waiting = |s: ImageStatus| matches!(s, ImageStatus::New | ImageStatus::Claimed);
    let slots = IdSlots::new(rows.iter().map(QueueRow::id));
    let mut seen = vec![false; rows.len()];
    let mut predicted: Vec<Ranked> = Vec::new();
    for r in scored {
        if let Some(n) = slots.get(r.id)
            && waiting(rows[n].status())
        {
            seen[n] = true;
            predicted.push(r.clone());
        }
    }
    let served = match &p.diversity {
        Some(d) => d.groups.served(
            rows.iter()
                .filter(|r| r.status() == ImageStatus::Reviewed)
                .map(QueueRow::id),
        ),
        None => Default::default(),
    };
    let mut out: Vec<Placed> = Vec::with_capacity(rows.len());
    out.extend(
        arrange_served(predicted, p, &served)
            .into_iter()
            .filter_map(|rk| {
                let place = match rk.value {
                    Some(v) => Place::Ranked(v),
                    None if rk.decided => Place::Decided,
                    None => Place::Empty,
                };
                Some(Placed {
                    row: slots.get(rk.id)?,
                    place,
                })
            }),
    );
    for (row, r) in rows.iter().enumerate() {
        if waiting(r.status()) && !seen[row] {
            out.push(Placed {
                row,
                place: Place::Unpredicted,
            });
        }
    }
    let group = |place: Place, keep: fn(ImageStatus, bool) -> bool| {
        (0..rows.len())
            .filter(move |&n| keep(rows[n].status(), with_broken))
            .map(move |row| Placed { row, place })
    };
    out.extend(group(Place::Skipped, |s, _| s == ImageStatus::Skipped));
    out.extend(group(Place::Done, |s, with_broken| {
        s == ImageStatus::Reviewed || (with_broken && s == ImageStatus::Broken)
    }));
    out
}

/// Class-balance quotas: walks the ranking and, at each step, serves the class furthest below
/// its share (share × picked so far − picked of that class), taking that class's next image in
/// rank order. Classes not listed share what the listed ones leave; when every class with a
/// share has run out, the rest follow in rank order.
fn balance(ranked: Vec<Ranked>, shares: &BTreeMap<String, f64>) -> Vec<Ranked> {
    const OTHER: &str = "\u{0}other";
    let listed: f64 = shares.values().filter(|v| **v > 0.0).sum();
    let mut target: BTreeMap<&str, f64> = shares
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    target.insert(OTHER, (1.0 - listed).max(0.0));
    let total: f64 = target.values().sum();
    if total <= 0.0 {
        return ranked;
    }
    for v in target.values_mut() {
        *v /= total;
    }
    // Per class, its images' positions in rank order.
    let mut lanes: BTreeMap<&str, std::collections::VecDeque<usize>> = BTreeMap::new();
    for (i, r) in ranked.iter().enumerate() {
        let c = r
            .top_class
            .as_deref()
            .filter(|c| target.contains_key(c) && *c != OTHER)
            .unwrap_or(OTHER);
        lanes.entry(c).or_default().push_back(i);
    }
    let mut picked: BTreeMap<&str, f64> = BTreeMap::new();
    let mut order = Vec::with_capacity(ranked.len());
    let mut taken = vec![false; ranked.len()];
    loop {
        let t = order.len() as f64 + 1.0;
        let best = lanes
            .iter()
            .filter(|(c, lane)| !lane.is_empty() && target.get(*c).copied().unwrap_or(0.0) > 0.0)
            .map(|(c, lane)| {
                let deficit = target[c] * t - picked.get(c).copied().unwrap_or(0.0);
                (*c, deficit, lane[0])
            })
            // Largest deficit; on a tie the better-ranked image.
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)));
        let Some((c, _, _)) = best else { break };
        if let Some(i) = lanes.get_mut(c).and_then(|l| l.pop_front()) {
            *picked.entry(c).or_default() += 1.0;
            taken[i] = true;
            order.push(i);
        }
    }
    order.extend((0..ranked.len()).filter(|i| !taken[*i]));
    let mut slots: Vec<Option<Ranked>> = ranked.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(id: i64, scores: &[(&str, f64)]) -> QueueImage {
        QueueImage {
            id,
            preds: scores
                .iter()
                .map(|(c, s)| Scored {
                    class: (*c).into(),
                    score: *s,
                    boxed: true,
                })
                .collect(),
            decided: false,
        }
    }

    fn params(metric: Metric) -> QueueParams {
        let mut p = QueueParams::new(&QueueConfig::default(), 0.1, 2);
        p.metric = metric;
        p
    }

    fn ids(r: &[Ranked]) -> Vec<i64> {
        r.iter().map(|r| r.id).collect()
    }

    /// Five images, hand-computed:
    /// 1: [0.9, 0.2]        2: [0.55]        3: [0.8, 0.75, 0.7]    4: [] (0.05 < min)
    /// 5: [0.95, 0.4, 0.35]
    fn set() -> Vec<QueueImage> {
        vec![
            boxes(1, &[("a", 0.9), ("b", 0.2)]),
            boxes(2, &[("a", 0.55)]),
            boxes(3, &[("b", 0.8), ("b", 0.75), ("a", 0.7)]),
            boxes(4, &[("a", 0.05)]),
            boxes(5, &[("a", 0.95), ("b", 0.4), ("b", 0.35)]),
        ]
    }

    #[test]
    fn least_confidence() {
        // 1 − min: 1: 0.8, 2: 0.45, 3: 0.3, 5: 0.65; 4 has nothing ≥ 0.1 → empty bucket, last.
        let r = order(&set(), &params(Metric::LeastConfidence));
        assert_eq!(ids(&r), vec![1, 5, 2, 3, 4]);
        assert!((r[0].value.unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(r[4].value, None);
    }

    #[test]
    fn mean_confidence() {
        // 1 − mean: 1: 0.45, 2: 0.45, 3: 0.25, 5: 1 − 1.7/3 = 0.4333; tie 1/2 by id.
        let r = order(&set(), &params(Metric::MeanConfidence));
        assert_eq!(ids(&r), vec![1, 2, 5, 3, 4]);
        assert!((r[2].value.unwrap() - (1.0 - 1.7 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn margin() {
        // max 1 − |2s − 1|: 1: max(0.2, 0.4) = 0.4; 2: 0.9; 3: max(0.4, 0.5, 0.6) = 0.6;
        // 5: max(0.1, 0.8, 0.7) = 0.8.
        let r = order(&set(), &params(Metric::Margin));
        assert_eq!(ids(&r), vec![2, 5, 3, 1, 4]);
        assert!((r[0].value.unwrap() - 0.9).abs() < 1e-12);
    }

    #[test]
    fn entropy() {
        // max H(s): 2: H(0.55) = 0.99277; 5: H(0.4) = 0.97095; 3: H(0.7) = 0.88129;
        // 1: H(0.2) = 0.72193.
        let r = order(&set(), &params(Metric::Entropy));
        assert_eq!(ids(&r), vec![2, 5, 3, 1, 4]);
        assert!((r[0].value.unwrap() - 0.992_774_453_987_808_6).abs() < 1e-12);
        assert!((binary_entropy(0.5) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn uncertain_count() {
        // scores in [0.3, 0.7]: 1: 0; 2: 1; 3: 1 (0.7); 5: 2. Ties 2/3 by id.
        let r = order(&set(), &params(Metric::UncertainCount));
        assert_eq!(ids(&r), vec![5, 2, 3, 1, 4]);
        assert_eq!(r[0].value, Some(2.0));
        assert_eq!(r[3].value, Some(0.0));
    }

    #[test]
    fn classification_metrics() {
        let cls = |id, s: &[f64]| QueueImage {
            id,
            preds: s
                .iter()
                .enumerate()
                .map(|(i, s)| Scored {
                    class: format!("c{i}").into(),
                    score: *s,
                    boxed: false,
                })
                .collect(),
            decided: false,
        };
        // 1: p = [0.6, 0.3, 0.1]; 2: [0.5, 0.45, 0.05].
        let imgs = vec![cls(1, &[0.6, 0.3, 0.1]), cls(2, &[0.5, 0.45, 0.05])];
        let mut p = params(Metric::Margin);
        p.num_classes = 3;
        // margin: 1: 1 − 0.3 = 0.7; 2: 1 − 0.05 = 0.95.
        let r = order(&imgs, &p);
        assert_eq!(ids(&r), vec![2, 1]);
        assert!((r[0].value.unwrap() - 0.95).abs() < 1e-12);
        // least confidence 1 − p1: 1: 0.4, 2: 0.5.
        p.metric = Metric::LeastConfidence;
        assert_eq!(ids(&order(&imgs, &p)), vec![2, 1]);
        // entropy: mean over 3 classes.
        p.metric = Metric::Entropy;
        let v = metric_value(&imgs[0], &p).unwrap();
        let want = (binary_entropy(0.6) + binary_entropy(0.3) + binary_entropy(0.1)) / 3.0;
        assert!((v - want).abs() < 1e-12);
    }

    #[test]
    fn empty_policies_audit_and_random() {
        let mut p = params(Metric::LeastConfidence);
        p.empty = EmptyPolicy::First;
        assert_eq!(ids(&order(&set(), &p)), vec![4, 1, 5, 2, 3]);
        p.empty = EmptyPolicy::Skip;
        assert_eq!(ids(&order(&set(), &p)), vec![1, 5, 2, 3]);
        p.empty = EmptyPolicy::Interleave;
        p.empty_every = 2;
        assert_eq!(ids(&order(&set(), &p)), vec![1, 5, 4, 2, 3]);
        p.empty = EmptyPolicy::Last;
        p.order = Order::Audit;
        assert_eq!(ids(&order(&set(), &p)), vec![3, 2, 5, 1, 4]);
        p.order = Order::Random;
        p.seed = 7;
        let a = ids(&order(&set(), &p));
        assert_eq!(a, ids(&order(&set(), &p)), "same seed, same order");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 3, 4, 5]);
        let seeds_differ = (0..20).any(|s| {
            p.seed = s;
            ids(&order(&set(), &p)) != a
        });
        assert!(seeds_differ);
    }

    /// The allocating version `metric_value` had before, kept as the reference.
    fn reference_value(img: &QueueImage, p: &QueueParams) -> Option<f64> {
        let kept: Vec<f64> = img
            .preds
            .iter()
            .filter(|s| s.score >= p.min_confidence)
            .map(|s| s.score)
            .collect();
        if kept.is_empty() {
            return None;
        }
        let in_band = |s: &f64| in_band(s, p);
        let mean = 1.0 - kept.iter().sum::<f64>() / kept.len() as f64;
        if img.preds.iter().all(|s| !s.boxed) {
            // Classification has one path, shared: the detection path is what is checked here.
            return Some(class_value(img, p, mean));
        }
        Some(match p.metric {
            Metric::LeastConfidence => 1.0 - kept.iter().copied().fold(f64::INFINITY, f64::min),
            Metric::MeanConfidence => mean,
            Metric::Margin => kept
                .iter()
                .map(|s| 1.0 - (2.0 * s - 1.0).abs())
                .fold(f64::NEG_INFINITY, f64::max),
            Metric::Entropy => kept
                .iter()
                .map(|s| binary_entropy(*s))
                .fold(f64::NEG_INFINITY, f64::max),
            Metric::UncertainCount => kept.iter().filter(|s| in_band(s)).count() as f64,
        })
    }

    /// Many pseudo-random images (detections and class scores, ties, single scores, nothing
    /// above the minimum): the same value, to the bit, as the reference, for every metric; and
    /// `order` is the full sort of those values with ties in id order.
    #[test]
    fn values_match_the_reference_and_order_is_the_full_sort() {
        let mut rng = SplitMix(42);
        let mut unit = || (rng.next_u64() % 21) as f64 / 20.0;
        let imgs: Vec<QueueImage> = (0..3000)
            .map(|id| {
                let n = (unit() * 5.0) as usize;
                let boxed = id % 3 != 0;
                QueueImage {
                    id,
                    preds: (0..n)
                        .map(|k| Scored {
                            class: ["a", "b", "c"][k % 3].into(),
                            score: unit(),
                            boxed,
                        })
                        .collect(),
                    decided: false,
                }
            })
            .collect();
        for metric in Metric::ALL {
            let mut p = params(metric);
            p.num_classes = 3;
            for img in &imgs {
                let (got, want) = (metric_value(img, &p), reference_value(img, &p));
                assert_eq!(
                    got.map(f64::to_bits),
                    want.map(f64::to_bits),
                    "{metric:?} {img:?}"
                );
            }
            // Reversed input: `order` sorts by id itself.
            let ranked = order(imgs.iter().rev(), &p);
            let mut want: Vec<(i64, Option<f64>)> = imgs
                .iter()
                .map(|i| (i.id, reference_value(i, &p)))
                .collect();
            want.sort_by(|a, b| match (a.1, b.1) {
                (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.0.cmp(&b.0),
            });
            let got: Vec<(i64, Option<f64>)> = ranked.iter().map(|r| (r.id, r.value)).collect();
            assert_eq!(got, want, "{metric:?}");
        }
    }

    #[test]
    fn id_slots_dense_and_sparse() {
        for ids in [vec![3, 1, 7, 2], vec![5, -1, 1 << 40, 9]] {
            let slots = IdSlots::new(ids.iter().copied());
            assert_eq!(matches!(slots, IdSlots::Dense(_)), ids[1] == 1, "{ids:?}");
            for (n, id) in ids.iter().enumerate() {
                assert_eq!(slots.get(*id), Some(n));
            }
            for missing in [0, 4, 8, 1 << 41, -7] {
                assert_eq!(slots.get(missing), None);
            }
        }
    }

    /// Planted near-duplicates: 6 smooth random pictures drawn 4 times each with small noise
    /// (ids 1..=24, copies adjacent), the copies of one picture ranked next to each other (ids in
    /// order, least confidence falling with the id). The signatures group them 6 × 4, and with
    /// diversity the queue's top 6 holds one picture of each group, in rank order; then the
    /// second copies, and so on. Without it the top 4 are copies of one picture.
    #[test]
    fn diversity_takes_one_picture_per_near_duplicate_group_first() {
        let sigs = crate::diversity::planted(6, 4, 11);
        let groups = crate::diversity::Groups::new(&sigs, crate::diversity::DEFAULT_SIMILARITY);
        assert_eq!(groups.count(), 6, "{groups:?}");
        let want: Vec<Vec<i64>> = (0..6)
            .map(|b| (1..=4).map(|c| b * 4 + c).collect())
            .collect();
        assert_eq!(groups.members(), want);
        let imgs: Vec<QueueImage> = (1..=24)
            .map(|id| boxes(id, &[("a", 0.1 + 0.03 * id as f64)]))
            .collect();
        let mut p = params(Metric::LeastConfidence);
        assert_eq!(ids(&order(&imgs, &p))[..4], [1, 2, 3, 4]);
        let cfg = QueueConfig {
            diversity: Some(true),
            ..QueueConfig::default()
        };
        p.diversity = QueueParams::new(&cfg, 0.1, 2).diversity;
        // No groups known yet (no signatures): the metric's order.
        assert_eq!(ids(&order(&imgs, &p)), (1..=24).collect::<Vec<i64>>());
        if let Some(d) = &mut p.diversity {
            d.groups = Arc::new(groups);
        }
        let got = ids(&order(&imgs, &p));
        let turns: Vec<i64> = (1..=4)
            .flat_map(|c| (0..6).map(move |b| b * 4 + c))
            .collect();
        assert_eq!(got, turns);
        // The same through the review queue the screen, `termtag queue` and `pull` share.
        let rows: Vec<(i64, ImageStatus)> = (1..=24).map(|id| (id, ImageStatus::New)).collect();
        let placed: Vec<i64> = review_queue(&rows, &score(&imgs, &p), false, &p)
            .iter()
            .map(|x| rows[x.row].0)
            .collect();
        assert_eq!(placed, turns);
        // Once a copy of the first picture is reviewed, its group has had its first turn: the
        // other copies wait behind every other group's first picture (the reviewed one is last).
        let mut rows = rows;
        rows[0].1 = ImageStatus::Reviewed;
        let placed: Vec<i64> = review_queue(&rows, &score(&imgs, &p), false, &p)
            .iter()
            .map(|x| rows[x.row].0)
            .collect();
        let mut want: Vec<i64> = vec![5, 9, 13, 17, 21];
        want.extend((1..=3).flat_map(|c| (0..6).map(move |b| b * 4 + c + 1)));
        want.push(1);
        assert_eq!(placed, want);
    }

    #[test]
    fn class_balance_quotas() {
        // Ranked by least confidence: a-images are all more uncertain than b-images.
        let imgs: Vec<QueueImage> = (1..=6)
            .map(|i| {
                let class = if i <= 4 { "a" } else { "b" };
                boxes(i, &[(class, 0.1 + 0.1 * i as f64)])
            })
            .collect();
        let mut p = params(Metric::LeastConfidence);
        // Plain order: 1..6.
        assert_eq!(ids(&order(&imgs, &p)), vec![1, 2, 3, 4, 5, 6]);
        // Half and half: a, b, a, b, then the rest of a.
        p.balance = [("a".to_string(), 0.5), ("b".to_string(), 0.5)]
            .into_iter()
            .collect();
        assert_eq!(ids(&order(&imgs, &p)), vec![1, 5, 2, 6, 3, 4]);
    }
}

//! Near-duplicates kept from filling the top of the review queue: a small grey thumbnail per
//! picture as its signature (computed where pictures are decoded anyway: `termtag predict`'s
//! decode workers, or [`backfill`] on worker threads), groups of pictures whose signatures
//! correlate strongly ([`Groups::new`], no pairwise comparison of everything), and a round-robin
//! over the groups ([`diversify`]) that [`crate::queue::arrange`] applies when `[queue]
//! diversity` is on. `termtag simulate --diversity` measures this same code.
//!
//! Why not a 64-bit dHash: on low-contrast pictures (the demo's wood boards) a few grey levels of
//! noise flip up to 18 of its bits between copies, while two different boards can differ in 4.
//! The correlation of 32×24 thumbnails, measured on 200 boards planted 5× each, is at least
//! 0.89 between copies and at most 0.69 between different boards.

use std::collections::HashMap;
use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::project::Project;
use crate::queue::Ranked;
use crate::rng::SplitMix;
use crate::store::{Store, StoreError};

/// Thumbnail size of the signature.
pub const SIG_W: u32 = 32;
pub const SIG_H: u32 = 24;
/// Bytes of a stored signature.
pub const SIG_LEN: usize = (SIG_W * SIG_H) as usize;

/// Signatures correlating at least this much are near-duplicates (by default).
pub const DEFAULT_SIMILARITY: f32 = 0.8;

/// A picture's signature: its 32×24 grey thumbnail less its mean, scaled so that the largest
/// deviation is ±127 and kept as bytes (768 per picture in the store). The correlation of two
/// pictures is the cosine of their signatures, blind to brightness and contrast; rounding to
/// bytes moves it by well under 0.01.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature(Box<[i8]>);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({:?}…)", &self.0[..4])
    }
}

impl Signature {
    /// A stored signature; `None` when it is not [`SIG_LEN`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Signature> {
        (b.len() == SIG_LEN).then(|| Signature(b.iter().map(|x| *x as i8).collect()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().map(|x| *x as u8).collect()
    }

    /// The correlation of the two pictures (0 when either is flat).
    pub fn similarity(&self, other: &Signature) -> f32 {
        let (na, nb) = (norm(&self.0), norm(&other.0));
        if na == 0.0 || nb == 0.0 {
            return 0.0;
        }
        dot(&self.0, &other.0) as f32 / (na * nb)
    }
}

fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
}

fn norm(a: &[i8]) -> f32 {
    (dot(a, a) as f32).sqrt()
}

/// THE signature of a picture (upright, as decoded for review or for the model): area-averaged to
/// 32×24, grey (Rec. 709 weights), less its mean, scaled to bytes.
pub fn signature(img: &RgbImage) -> Signature {
    let small = image::imageops::thumbnail(img, SIG_W, SIG_H);
    let mut v: Vec<f32> = small
        .pixels()
        .map(|p| {
            (0.2126 * f32::from(p[0]) + 0.7152 * f32::from(p[1]) + 0.0722 * f32::from(p[2])) / 255.0
        })
        .collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 1e-6 { 127.0 / max } else { 0.0 };
    Signature(v.iter().map(|x| (x * scale).round() as i8).collect())
}

/// Signatures of image files, decoded upright on all cores; an unreadable file gets `None`.
pub fn signatures_of_files(
    files: &[(i64, &Path)],
    max_megapixels: u32,
) -> Vec<(i64, Option<Signature>)> {
    files
        .par_iter()
        .map(|(id, path)| {
            let s = crate::decode::open_upright(path, max_megapixels)
                .ok()
                .map(|i| signature(&i.into_rgb8()));
            (*id, s)
        })
        .collect()
}

/// What [`backfill`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfill {
    /// Signatures computed and stored.
    pub added: usize,
    /// Pictures that could not be read (or are not in the pull cache yet): no signature, so
    /// each counts as a group of its own.
    pub unreadable: usize,
}

/// Computes and stores the signatures the waiting images lack (those `termtag predict` did not
/// decode: imported predictions, images predicted before signatures existed), decoding on all
/// cores and writing 512 at a time.
pub fn backfill(
    project: &Project,
    store: &mut Store,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Backfill, StoreError> {
    let todo = store.waiting_without_signature()?;
    let total = todo.len() as u64;
    let mut out = Backfill::default();
    progress(0, total);
    for chunk in todo.chunks(512) {
        let files: Vec<(i64, std::path::PathBuf)> = chunk
            .iter()
            .filter_map(|(id, key)| Some((*id, project.image_file(key).ok()?)))
            .collect();
        out.unreadable += chunk.len() - files.len();
        let refs: Vec<(i64, &Path)> = files.iter().map(|(i, p)| (*i, p.as_path())).collect();
        let sigs: Vec<(i64, Signature)> = signatures_of_files(&refs, project.config.max_megapixels)
            .into_iter()
            .filter_map(|(id, s)| {
                if s.is_none() {
                    out.unreadable += 1;
                }
                Some((id, s?))
            })
            .collect();
        store.write_signatures(&sigs)?;
        out.added += sigs.len();
        progress(out.added as u64 + out.unreadable as u64, total);
    }
    Ok(out)
}

/// Near-duplicate groups: image id → group, a group numbered by the position (in id order) of
/// its smallest image id among the images grouped. Images without a signature are in none.
#[derive(Clone, Default, PartialEq)]
pub struct Groups {
    of: HashMap<i64, u32>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Groups({} images, {} groups)", self.len(), self.count())
    }
}

/// Groups given as (image id, group).
impl FromIterator<(i64, u32)> for Groups {
    fn from_iter<T: IntoIterator<Item = (i64, u32)>>(iter: T) -> Groups {
        Groups {
            of: iter.into_iter().collect(),
        }
    }
}

/// Union-find over positions; the smaller position stays the root, so that a group is named by
/// its first image.
struct Union(Vec<u32>);

impl Union {
    fn new(n: usize) -> Union {
        Union((0..n as u32).collect())
    }
    fn root(&mut self, mut i: u32) -> u32 {
        while self.0[i as usize] != i {
            let up = self.0[self.0[i as usize] as usize];
            self.0[i as usize] = up;
            i = up;
        }
        i
    }
    fn join(&mut self, a: u32, b: u32) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[a.max(b) as usize] = a.min(b);
    }
}

/// Bits per image drawn from the pooled thumbnail, from which each table takes its key.
const POOL_BITS: usize = 128;
/// Hash tables: a pair is compared when it shares the key of any one of them.
const TABLES: usize = 20;
/// Within one bucket, each image is compared with at most this many that follow it (a bucket
/// of thousands of pictures, e.g. blank frames, would otherwise cost a square).
const BUCKET_WINDOW: usize = 64;
/// Pairs whose 128 bits differ in more places are not compared: an angle of about 62° between
/// the pooled signatures. Copies of the planted demo boards differ in at most 16 bits (99%;
/// the worst of 4,065 pairs in 30); a pair just at a correlation of 0.8 in about 26 (up to ~41
/// on synthetic pictures sharing half their content); an unrelated pair in about 64. Two
/// popcounts instead of reading 768 bytes from memory.
const MAX_BITS_APART: u32 = 44;
/// The signature averaged over 4×4 cells (8×6 values): what the hash hyperplanes see.
const POOLED: usize = (SIG_W as usize / 4) * (SIG_H as usize / 4);

impl Groups {
    /// Groups `sigs` (image id, signature): images whose signatures correlate at least
    /// `min_similarity` are joined, transitively. Not every pair is compared: random-hyperplane
    /// LSH over the 8×6-pooled signature gives each image 128 bits; 20 tables each key images by
    /// a fixed random choice of `b` of those bits (`b` ≈ log₂ n − 1, so unrelated pictures
    /// rarely share a bucket); only images sharing a bucket, and whose 128 bits are not far
    /// apart, are compared, at full resolution. Copies of a picture differ in about 8 to 16 of
    /// the 128 bits, so each table keys a pair of them alike with a chance of (1 − d/128)^b: one
    /// table of 20 is enough, and copies in a group need only be linked through each other.
    /// Pairs just at the threshold can be missed (the recall is measured by
    /// `benches/diversity.rs`); [`Groups::exact`] is the pairwise reference.
    pub fn new(sigs: &[(i64, Signature)], min_similarity: f32) -> Groups {
        let sorted = sorted_by_id(sigs);
        let n = sorted.len();
        let mut union = Union::new(n);
        let norms: Vec<f32> = sorted.iter().map(|(_, s)| norm(&s.0)).collect();
        let planes = hyperplanes();
        let bits: Vec<[u64; POOL_BITS / 64]> =
            sorted.iter().map(|(_, s)| hash(s, &planes)).collect();
        let similar = |a: usize, b: usize| {
            let (na, nb) = (norms[a], norms[b]);
            let apart: u32 = bits[a]
                .iter()
                .zip(&bits[b])
                .map(|(x, y)| (x ^ y).count_ones())
                .sum();
            na > 0.0
                && nb > 0.0
                && apart <= MAX_BITS_APART
                && dot(&sorted[a].1.0, &sorted[b].1.0) as f32 >= min_similarity * na * nb
        };
        let key_bits = ((n.max(2) as f64).log2().round() as usize)
            .saturating_sub(1)
            .clamp(6, 24);
        let mut rng = SplitMix(0x5eed_d1ce);
        // Key in the high half, position in the low one: one sort groups the buckets.
        let mut keyed: Vec<u64> = Vec::with_capacity(n);
        for _ in 0..TABLES {
            let picks = pick_bits(&mut rng, key_bits);
            keyed.clear();
            keyed.extend(bits.iter().enumerate().map(|(i, b)| {
                let key = picks.iter().enumerate().fold(0u64, |k, (j, &bit)| {
                    k | (((b[bit / 64] >> (bit % 64)) & 1) << j)
                });
                key << 32 | i as u64
            }));
            keyed.sort_unstable();
            for bucket in keyed.chunk_by(|a, b| a >> 32 == b >> 32) {
                for (x, &a) in bucket.iter().enumerate() {
                    let a = a as u32;
                    for &b in bucket.iter().skip(x + 1).take(BUCKET_WINDOW) {
                        let b = b as u32;
                        if union.root(a) != union.root(b) && similar(a as usize, b as usize) {
                            union.join(a, b);
                        }
                    }
                }
            }
        }
        Groups::from_union(&sorted, union)
    }

    /// Groups `sigs` comparing every pair (on all cores): the reference [`Groups::new`] is
    /// checked and measured against; quadratic, fine for a few thousand images.
    pub fn exact(sigs: &[(i64, Signature)], min_similarity: f32) -> Groups {
        let sorted = sorted_by_id(sigs);
        let n = sorted.len();
        let pairs: Vec<(u32, u32)> = (0..n)
            .into_par_iter()
            .flat_map_iter(|i| {
                let sorted = &sorted;
                (i + 1..n)
                    .filter(move |&j| sorted[i].1.similarity(&sorted[j].1) >= min_similarity)
                    .map(move |j| (i as u32, j as u32))
            })
            .collect();
        let mut union = Union::new(n);
        for (a, b) in pairs {
            union.join(a, b);
        }
        Groups::from_union(&sorted, union)
    }

    fn from_union(sorted: &[&(i64, Signature)], mut union: Union) -> Groups {
        Groups {
            of: (0..sorted.len())
                .map(|i| (sorted[i].0, union.root(i as u32)))
                .collect(),
        }
    }

    /// The groups of the signatures in the store (read on the calling thread: the review
    /// screen's store worker, or a command).
    pub fn from_store(store: &Store, min_similarity: f32) -> Result<Groups, StoreError> {
        Ok(Groups::new(&store.signatures()?, min_similarity))
    }

    /// The group of an image, when it has a signature.
    pub fn get(&self, id: i64) -> Option<u32> {
        self.of.get(&id).copied()
    }

    /// Images grouped (those with a signature).
    pub fn len(&self) -> usize {
        self.of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }

    /// Distinct groups.
    pub fn count(&self) -> usize {
        self.of
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// The same groups under other image ids (`None` leaves an image out).
    pub fn map_ids(&self, f: impl Fn(i64) -> Option<i64>) -> Groups {
        Groups {
            of: self
                .of
                .iter()
                .filter_map(|(id, g)| Some((f(*id)?, *g)))
                .collect(),
        }
    }

    /// Turns each group has had: how many of `ids` (the reviewed pictures) it holds.
    pub fn served(&self, ids: impl IntoIterator<Item = i64>) -> HashMap<u32, u32> {
        let mut out: HashMap<u32, u32> = HashMap::new();
        for g in ids.into_iter().filter_map(|id| self.get(id)) {
            *out.entry(g).or_insert(0) += 1;
        }
        out
    }

    /// Pairs of images in one group: how two groupings are compared (recall of one against the
    /// other counts the pairs both join).
    pub fn same_group(&self, a: i64, b: i64) -> bool {
        matches!((self.get(a), self.get(b)), (Some(x), Some(y)) if x == y)
    }

    /// Image ids per group, each group's ids ascending, groups by their first id.
    pub fn members(&self) -> Vec<Vec<i64>> {
        let mut by: HashMap<u32, Vec<i64>> = HashMap::new();
        for (id, g) in &self.of {
            by.entry(*g).or_default().push(*id);
        }
        let mut out: Vec<Vec<i64>> = by.into_values().collect();
        out.iter_mut().for_each(|v| v.sort_unstable());
        out.sort_unstable();
        out
    }
}

fn sorted_by_id(sigs: &[(i64, Signature)]) -> Vec<&(i64, Signature)> {
    let mut sorted: Vec<&(i64, Signature)> = sigs.iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    sorted
}

/// The hyperplanes' normals (standard normal coordinates: isotropic, so the angle between two
/// signatures sets the chance that a bit differs), by coordinate: `planes[d][k]` is coordinate `d` of normal `k`
/// (laid out so that [`hash`] runs over the 128 sides at once).
fn hyperplanes() -> Vec<[f32; POOL_BITS]> {
    let mut rng = SplitMix(0x0d1f_f5ee_d5ee_d123);
    let normals: Vec<[f32; POOLED]> = (0..POOL_BITS)
        .map(|_| std::array::from_fn(|_| rng.normal()))
        .collect();
    (0..POOLED)
        .map(|d| std::array::from_fn(|k| normals[k][d]))
        .collect()
}

/// `k` distinct positions among the pooled bits.
fn pick_bits(rng: &mut SplitMix, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..POOL_BITS).collect();
    for i in 0..k {
        let j = i + (rng.next_u64() % (POOL_BITS - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

/// The signature's side of each hyperplane, over its 4×4-cell sums.
fn hash(s: &Signature, planes: &[[f32; POOL_BITS]]) -> [u64; POOL_BITS / 64] {
    let cw = SIG_W as usize / 4;
    let mut pooled = [0i32; POOLED];
    for (y, row) in s.0.chunks_exact(SIG_W as usize).enumerate() {
        for (cx, cell) in row.chunks_exact(4).enumerate() {
            pooled[(y / 4) * cw + cx] += cell.iter().map(|v| i32::from(*v)).sum::<i32>();
        }
    }
    let mut side = [0f32; POOL_BITS];
    for (row, v) in planes.iter().zip(pooled) {
        let v = v as f32;
        for (acc, p) in side.iter_mut().zip(row) {
            *acc += p * v;
        }
    }
    let mut out = [0u64; POOL_BITS / 64];
    for (k, v) in side.iter().enumerate() {
        if *v >= 0.0 {
            out[k / 64] |= 1 << (k % 64);
        }
    }
    out
}

/// Synthetic planted near-duplicates for the tests (`benches/diversity.rs` has its own):
/// `bases` random pictures (64×48, eight waves each), each drawn `copies` times with a small
/// gain and noise, as (id, signature) with ids 1.. in order, copies of one picture adjacent.
#[cfg(test)]
pub(crate) fn planted(bases: usize, copies: usize, seed: u64) -> Vec<(i64, Signature)> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::new();
    for b in 0..bases {
        let waves: Vec<[f32; 4]> = (0..8)
            .map(|_| {
                [
                    (rng.unit() as f32 - 0.5) * 1.2,
                    (rng.unit() as f32 - 0.5) * 1.2,
                    rng.unit() as f32 * std::f32::consts::TAU,
                    rng.unit() as f32,
                ]
            })
            .collect();
        for c in 0..copies {
            let gain = 0.9 + 0.2 * rng.unit() as f32;
            let img = RgbImage::from_fn(64, 48, |x, y| {
                let v: f32 = waves
                    .iter()
                    .map(|w| w[3] * (w[0] * x as f32 + w[1] * y as f32 + w[2]).sin())
                    .sum();
                let noise = (rng.unit() as f32 - 0.5) * 12.0;
                let g = (128.0 + 25.0 * v * gain + noise).clamp(0.0, 255.0) as u8;
                image::Rgb([g, g, g])
            });
            out.push(((b * copies + c) as i64 + 1, signature(&img)));
        }
    }
    out
}

/// Round-robin over near-duplicate groups: the order is kept, except that an image whose group
/// already has k images above it (or reviewed: `served`, turns taken per group) waits until
/// every group's k-th turn has come. Images in no group count as groups of their own.
pub fn diversify(ranked: Vec<Ranked>, groups: &Groups, served: &HashMap<u32, u32>) -> Vec<Ranked> {
    if groups.is_empty() {
        return ranked;
    }
    let mut seen: HashMap<u32, u32> = served.clone();
    let mut turns: Vec<(u32, usize, Ranked)> = ranked
        .into_iter()
        .enumerate()
        .map(|(pos, r)| {
            let turn = match groups.get(r.id) {
                Some(g) => {
                    let k = seen.entry(g).or_insert(0);
                    *k += 1;
                    *k - 1
                }
                None => 0,
            };
            (turn, pos, r)
        })
        .collect();
    turns.sort_by_key(|(turn, pos, _)| (*turn, *pos));
    turns.into_iter().map(|(_, _, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: i64) -> Ranked {
        Ranked {
            id,
            value: Some(1.0),
            top_class: None,
            decided: false,
        }
    }

    fn groups_of(pairs: &[(i64, u32)]) -> Groups {
        pairs.iter().copied().collect()
    }

    #[test]
    fn round_robin_over_groups() {
        // 1, 2, 3 are copies; 4 and 5 alone.
        let g = groups_of(&[(1, 0), (2, 0), (3, 0), (4, 3), (5, 4)]);
        let out = diversify(vec![r(1), r(2), r(4), r(3), r(5)], &g, &HashMap::new());
        let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 4, 5, 2, 3]);
        // A copy of 1, 2 and 3 was reviewed already: their group has had its first turn.
        let served = g.served([9, 1]);
        assert_eq!(served, [(0, 1)].into());
        let g = groups_of(&[(1, 0), (2, 0), (3, 0), (4, 3), (5, 4), (9, 0)]);
        let out = diversify(vec![r(2), r(4), r(3), r(5)], &g, &g.served([9]));
        let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![4, 5, 2, 3]);
    }

    #[test]
    fn signatures_group_near_copies_only() {
        let pic = |f: &dyn Fn(u32, u32) -> u8| {
            image::RgbImage::from_fn(96, 64, |x, y| {
                let v = f(x, y);
                image::Rgb([v, v / 2, 255 - v])
            })
        };
        let a = pic(&|x, y| ((x * 7 + y * 3) % 200) as u8);
        // The same picture brighter, with a little pseudo-random noise.
        let copy = pic(&|x, y| {
            (((x * 7 + y * 3) % 200) as u8).saturating_add(6 + ((x * 31 + y * 17) % 5) as u8)
        });
        let other = pic(&|x, y| ((x * x + 5 * y) % 256) as u8);
        let (sa, sc, so) = (signature(&a), signature(&copy), signature(&other));
        assert!((sa.similarity(&sa) - 1.0).abs() < 1e-4);
        assert!(sa.similarity(&sc) > 0.95, "{}", sa.similarity(&sc));
        assert!(
            sa.similarity(&so) < DEFAULT_SIMILARITY,
            "{}",
            sa.similarity(&so)
        );
        let flat = signature(&image::RgbImage::from_pixel(40, 30, image::Rgb([9, 9, 9])));
        assert_eq!(
            flat.similarity(&flat),
            0.0,
            "a flat picture is like nothing"
        );
        let sigs = [(5, sa.clone()), (1, sc), (9, so)];
        for g in [
            Groups::new(&sigs, DEFAULT_SIMILARITY),
            Groups::exact(&sigs, DEFAULT_SIMILARITY),
        ] {
            assert_eq!(g.get(1), g.get(5));
            assert_ne!(g.get(1), g.get(9));
            assert_eq!(g.get(1), Some(0), "named by the first id's position");
            assert_eq!(g.count(), 2);
        }
        let back = Signature::from_bytes(&sa.to_bytes()).unwrap();
        assert_eq!(back, sa);
        assert_eq!(Signature::from_bytes(&[0; 5]), None);
    }

    /// On a seeded planted set the hashed grouping finds exactly the pairwise groups.
    #[test]
    fn hashed_grouping_equals_the_pairwise_one_on_a_seeded_set() {
        let sigs = planted(60, 5, 7);
        let exact = Groups::exact(&sigs, DEFAULT_SIMILARITY);
        let hashed = Groups::new(&sigs, DEFAULT_SIMILARITY);
        assert_eq!(
            exact.count(),
            60,
            "the planted copies are what the exact grouping finds"
        );
        assert_eq!(hashed.members(), exact.members());
        assert_eq!(hashed, exact);
    }
}

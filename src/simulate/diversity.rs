//! Near-duplicates kept from filling the top of the queue: a 64-bit difference hash (dHash) per
//! picture, groups of pictures whose hashes differ in at most a few bits, and a round-robin over
//! the groups applied to an ordered queue.

use std::collections::HashMap;
use std::path::Path;

use image::DynamicImage;
use image::imageops::FilterType;
use rayon::prelude::*;

use crate::queue::Ranked;

/// Hashes differing in at most this many of 64 bits are near-duplicates (by default).
pub const DEFAULT_BITS: u32 = 10;

/// dHash: the picture in grey at 9×8, one bit per horizontal neighbour pair (left brighter than
/// right). Small changes of brightness, noise or compression leave most bits alone.
pub fn dhash(img: &DynamicImage) -> u64 {
    let small = img.resize_exact(9, 8, FilterType::Triangle).to_luma8();
    let mut h = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let left = small.get_pixel(x, y)[0];
            let right = small.get_pixel(x + 1, y)[0];
            h = (h << 1) | u64::from(left > right);
        }
    }
    h
}

/// dHashes of image files, decoded upright on all cores; an unreadable file gets `None`.
pub fn hash_files(files: &[(i64, &Path)], max_megapixels: u32) -> HashMap<i64, Option<u64>> {
    files
        .par_iter()
        .map(|(id, path)| {
            let h = crate::decode::open_upright(path, max_megapixels)
                .ok()
                .map(|i| dhash(&i));
            (*id, h)
        })
        .collect()
}

/// Groups of near-duplicates: images joined when their hashes differ in at most `bits` bits
/// (and transitively). Returns image → group number; groups are numbered by their smallest id.
pub fn groups(hashes: &[(i64, u64)], bits: u32) -> HashMap<i64, usize> {
    let mut sorted = hashes.to_vec();
    sorted.sort_by_key(|(id, _)| *id);
    let n = sorted.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if (sorted[i].1 ^ sorted[j].1).count_ones() <= bits {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                // The smaller index stays the root: groups are named by their first image.
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    (0..n)
        .map(|i| (sorted[i].0, root(&mut parent, i)))
        .collect()
}

/// Round-robin over near-duplicate groups: the queue keeps its order, except that an image
/// whose group already has k images above it waits until every group's k-th turn has come.
/// Images in no group count as groups of their own.
pub fn diversify(ranked: Vec<Ranked>, groups: &HashMap<i64, usize>) -> Vec<Ranked> {
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut turns: Vec<(usize, usize, Ranked)> = ranked
        .into_iter()
        .enumerate()
        .map(|(pos, r)| {
            let turn = match groups.get(&r.id) {
                Some(g) => {
                    let k = seen.entry(*g).or_insert(0);
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
        }
    }

    #[test]
    fn round_robin_over_groups() {
        // 1, 2, 3 are copies; 4 and 5 alone.
        let g: HashMap<i64, usize> = [(1, 0), (2, 0), (3, 0), (4, 3), (5, 4)].into();
        let out = diversify(vec![r(1), r(2), r(4), r(3), r(5)], &g);
        let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 4, 5, 2, 3]);
    }

    #[test]
    fn hashes_group_near_copies_only() {
        let hs = [(5, 0b1111u64), (1, 0b0111), (9, 0xFFFF_0000), (3, 0xFFFF_0001)];
        let g = groups(&hs, 1);
        assert_eq!(g[&1], g[&5]);
        assert_eq!(g[&9], g[&3]);
        assert_ne!(g[&1], g[&3]);
        assert_eq!(groups(&hs, 0).values().collect::<std::collections::HashSet<_>>().len(), 4);
    }

    #[test]
    fn dhash_survives_a_small_change_and_tells_pictures_apart() {
        let a = image::RgbImage::from_fn(96, 64, |x, y| {
            let v = ((x * 7 + y * 3) % 200) as u8;
            image::Rgb([v, v / 2, 255 - v])
        });
        let brighter = image::RgbImage::from_fn(96, 64, |x, y| {
            let p = a.get_pixel(x, y);
            image::Rgb(p.0.map(|c| c.saturating_add(6)))
        });
        let other = image::RgbImage::from_fn(96, 64, |x, y| {
            let v = ((x * x + 5 * y) % 256) as u8;
            image::Rgb([v, v, v])
        });
        let (ha, hb, ho) = (
            dhash(&DynamicImage::ImageRgb8(a)),
            dhash(&DynamicImage::ImageRgb8(brighter)),
            dhash(&DynamicImage::ImageRgb8(other)),
        );
        assert!((ha ^ hb).count_ones() <= 4, "{:064b}\n{:064b}", ha, hb);
        assert!((ha ^ ho).count_ones() > DEFAULT_BITS);
    }
}

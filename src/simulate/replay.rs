//! Review replayed in a given order with the truth as the annotator: which of the model's
//! mistakes each image holds, and how many are found after reviewing the first n images.
//! Pure functions, so the figures can be checked by hand.

use std::collections::HashMap;

use serde::Serialize;

use crate::diversity::Groups;
use crate::eval::{DetBox, GtBox};

/// Matches at or above this IoU are the same object.
pub const IOU: f64 = 0.5;

/// The model's mistakes on one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Mistakes {
    /// Truth boxes no shown prediction overlaps at IoU ≥ 0.5.
    pub missed: usize,
    /// Shown predictions that overlap no truth box at IoU ≥ 0.5.
    pub false_positive: usize,
    /// Shown predictions on a truth box (IoU ≥ 0.5) of another class.
    pub wrong_class: usize,
}

impl Mistakes {
    pub fn total(&self) -> usize {
        self.missed + self.false_positive + self.wrong_class
    }
    pub fn add(&mut self, o: &Mistakes) {
        self.missed += o.missed;
        self.false_positive += o.false_positive;
        self.wrong_class += o.wrong_class;
    }
}

/// The mistakes of the predictions a reviewer is shown (score ≥ `shown_from`) against the
/// truth of one image. Predictions are taken best score first; each takes the unmatched truth
/// box of its own class it overlaps most (IoU ≥ 0.5), else the one of any class it overlaps
/// most (a wrong class), else it is a false positive. Truth boxes left unmatched are missed.
pub fn image_mistakes(truth: &[GtBox], preds: &[DetBox], shown_from: f64) -> Mistakes {
    let mut shown: Vec<&DetBox> = preds.iter().filter(|p| p.score >= shown_from).collect();
    shown.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut taken = vec![false; truth.len()];
    let mut m = Mistakes::default();
    for p in shown {
        let best = |same_class: bool| {
            truth
                .iter()
                .enumerate()
                .filter(|(i, t)| !taken[*i] && (!same_class || t.class == p.class))
                .map(|(i, t)| (i, t.bbox.iou(&p.bbox)))
                .filter(|(_, iou)| *iou >= IOU)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        };
        if let Some(i) = best(true) {
            taken[i] = true;
        } else if let Some(i) = best(false) {
            taken[i] = true;
            m.wrong_class += 1;
        } else {
            m.false_positive += 1;
        }
    }
    m.missed = taken.iter().filter(|t| !**t).count();
    m
}

/// Mistakes found after reviewing the first n images of `order`, for n = 0..=len: entry n.
/// With `groups` (image → near-duplicate group), a mistake counts once per group: a group is
/// worth the most mistakes any of its images holds, and reviewing a copy adds only what it
/// holds beyond the copies reviewed before it.
pub fn found_curve(
    order: &[i64],
    mistakes: &HashMap<i64, usize>,
    groups: Option<&Groups>,
) -> Vec<usize> {
    let mut counted: HashMap<u32, usize> = HashMap::new();
    let mut found = 0;
    let mut curve = Vec::with_capacity(order.len() + 1);
    curve.push(0);
    for id in order {
        let m = mistakes.get(id).copied().unwrap_or(0);
        match groups.and_then(|g| g.get(*id)) {
            Some(g) => {
                let c = counted.entry(g).or_insert(0);
                found += m.saturating_sub(*c);
                *c = (*c).max(m);
            }
            None => found += m,
        }
        curve.push(found);
    }
    curve
}

/// All mistakes there are to find, counted as [`found_curve`] counts them.
pub fn total_mistakes(mistakes: &HashMap<i64, usize>, groups: Option<&Groups>) -> usize {
    let Some(groups) = groups else {
        return mistakes.values().sum();
    };
    let mut best: HashMap<u32, usize> = HashMap::new();
    let mut loose = 0;
    for (id, m) in mistakes {
        match groups.get(*id) {
            Some(g) => {
                let b = best.entry(g).or_insert(0);
                *b = (*b).max(*m);
            }
            None => loose += m,
        }
    }
    loose + best.values().sum::<usize>()
}

/// Images reviewed at `frac` of `n` (rounded to the nearest image, at least one).
pub fn reviewed_at(frac: f64, n: usize) -> usize {
    ((frac * n as f64).round() as usize).clamp(1.min(n), n)
}

/// `order` with every id of `all` it lacks appended in id order (an order that skips the
/// empty bucket reviews those images last), and ids not in `all` left out.
pub fn complete(order: impl IntoIterator<Item = i64>, all: &[i64]) -> Vec<i64> {
    let wanted: std::collections::HashSet<i64> = all.iter().copied().collect();
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<i64> = order
        .into_iter()
        .filter(|id| wanted.contains(id) && seen.insert(*id))
        .collect();
    let mut rest: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| !seen.contains(id))
        .collect();
    rest.sort();
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BBox;

    fn b(x0: f64, y0: f64, x1: f64, y1: f64) -> BBox {
        BBox { x0, y0, x1, y1 }
    }

    #[test]
    fn group_counting() {
        // Images 1 and 2 are copies (group 0) holding 2 and 3 mistakes; image 3 holds 1.
        let m: HashMap<i64, usize> = [(1, 2), (2, 3), (3, 1)].into_iter().collect();
        let g: Groups = [(1, 0), (2, 0), (3, 1)].into_iter().collect();
        assert_eq!(found_curve(&[1, 2, 3], &m, None), vec![0, 2, 5, 6]);
        assert_eq!(found_curve(&[1, 2, 3], &m, Some(&g)), vec![0, 2, 3, 4]);
        assert_eq!(found_curve(&[2, 1, 3], &m, Some(&g)), vec![0, 3, 3, 4]);
        assert_eq!(total_mistakes(&m, Some(&g)), 4);
        assert_eq!(total_mistakes(&m, None), 6);
    }

    #[test]
    fn duplicate_prediction_on_one_object_is_a_false_positive() {
        let t = vec![GtBox {
            image: 1,
            class: "a".into(),
            bbox: b(0.0, 0.0, 0.5, 0.5),
        }];
        let d = |s| DetBox {
            image: 1,
            class: "a".into(),
            bbox: b(0.0, 0.0, 0.5, 0.5),
            score: s,
        };
        let m = image_mistakes(&t, &[d(0.9), d(0.8), d(0.1)], 0.5);
        assert_eq!(
            m,
            Mistakes {
                missed: 0,
                false_positive: 1,
                wrong_class: 0
            }
        );
    }

    #[test]
    fn reviewed_share() {
        assert_eq!(reviewed_at(0.1, 10), 1);
        assert_eq!(reviewed_at(0.2, 10), 2);
        assert_eq!(reviewed_at(0.1, 3), 1);
        assert_eq!(reviewed_at(0.5, 0), 0);
        assert_eq!(complete([3, 9, 1], &[1, 2, 3, 4]), vec![3, 1, 2, 4]);
    }
}

//! Classifiers against reviewed labels, defined as scikit-learn defines them so that
//! `scripts/check_eval_sklearn.py` can compare the figures.
//!
//! - `classify` (one class an image): the prediction is the top-scoring class; top-1 accuracy,
//!   per-class precision, recall and F1 (`precision_recall_fscore_support(labels=classes,
//!   zero_division=0)`), and the confusion matrix (rows reviewed, columns predicted; an image
//!   with no prediction goes to the column [`NONE`]).
//! - `multilabel`: per class, the average precision of the scores (`average_precision_score`:
//!   no interpolation, ties grouped), their mean over classes with a positive image, and
//!   precision, recall and F1 at a score threshold, per class and micro-averaged.

use std::collections::{BTreeMap, HashMap};

/// The predicted "class" of an image the model predicted nothing for.
pub const NONE: &str = "(none)";

/// One image: its reviewed classes and the model's class scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScores {
    pub truth: Vec<String>,
    /// Class → best score the run gave it on this image.
    pub scores: HashMap<String, f64>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassPrf {
    pub class: String,
    /// Reviewed images of this class.
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Multilabel only: average precision; `None` without a positive image.
    pub ap: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyReport {
    pub images: usize,
    pub accuracy: f64,
    pub classes: Vec<ClassPrf>,
    /// Mean F1 over the classes with reviewed images.
    pub macro_f1: Option<f64>,
    /// Column labels: the classes, then [`NONE`] when an image had no prediction.
    pub labels: Vec<String>,
    /// `matrix[reviewed][predicted]`, rows over the classes only.
    pub matrix: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MultilabelReport {
    pub images: usize,
    pub threshold: f64,
    pub classes: Vec<ClassPrf>,
    /// Mean AP over the classes with a positive image.
    pub map: Option<f64>,
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Precision, recall and F1 from counts, 0 where undefined (scikit-learn's `zero_division=0`).
fn prf(tp: usize, fp: usize, fn_: usize) -> (f64, f64, f64) {
    (
        ratio(tp, tp + fp),
        ratio(tp, tp + fn_),
        ratio(2 * tp, 2 * tp + fp + fn_),
    )
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The top-scoring class (ties: the first in `classes` order), or [`NONE`].
fn top1<'a>(scores: &HashMap<String, f64>, classes: &'a [String]) -> &'a str {
    let mut best: Option<(&'a str, f64)> = None;
    for c in classes {
        if let Some(&s) = scores.get(c)
            && best.is_none_or(|(_, b)| s > b)
        {
            best = Some((c.as_str(), s));
        }
    }
    best.map(|(c, _)| c).unwrap_or(NONE)
}

/// Multi-class figures. Images whose reviewed label is not exactly one class are skipped by the
/// caller.
pub fn classify(images: &[ImageScores], classes: &[String]) -> ClassifyReport {
    let pairs: Vec<(&str, &str)> = images
        .iter()
        .filter_map(|im| match im.truth.as_slice() {
            [t] => Some((t.as_str(), top1(&im.scores, classes))),
            _ => None,
        })
        .collect();
    let mut labels: Vec<String> = classes.to_vec();
    if pairs.iter().any(|(_, p)| *p == NONE) {
        labels.push(NONE.to_string());
    }
    let col: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut matrix = vec![vec![0usize; labels.len()]; classes.len()];
    for (t, p) in &pairs {
        if let (Some(&r), Some(&c)) = (col.get(t), col.get(p)) {
            matrix[r][c] += 1;
        }
    }
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    let per: Vec<ClassPrf> = classes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let tp = matrix[k][k];
            let support: usize = matrix[k].iter().sum();
            let predicted: usize = matrix.iter().map(|row| row[k]).sum();
            let (precision, recall, f1) = prf(tp, predicted - tp, support - tp);
            ClassPrf {
                class: c.clone(),
                support,
                precision,
                recall,
                f1,
                ap: None,
            }
        })
        .collect();
    ClassifyReport {
        images: pairs.len(),
        accuracy: ratio(correct, pairs.len()),
        macro_f1: mean(per.iter().filter(|c| c.support > 0).map(|c| c.f1)),
        classes: per,
        labels,
        matrix,
    }
}

/// Average precision as scikit-learn computes it: Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct scores,
/// highest first. `None` without a positive.
pub fn average_precision(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = truth.iter().filter(|t| **t).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if truth[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * (tp as f64 / (tp + fp) as f64);
        last_recall = recall;
    }
    Some(ap)
}

/// Multi-label figures; a class the run gave no score on an image scores 0 there.
pub fn multilabel(images: &[ImageScores], classes: &[String], threshold: f64) -> MultilabelReport {
    let (mut all_tp, mut all_fp, mut all_fn) = (0, 0, 0);
    let per: Vec<ClassPrf> = classes
        .iter()
        .map(|c| {
            let truth: Vec<bool> = images.iter().map(|im| im.truth.contains(c)).collect();
            let scores: Vec<f64> = images
                .iter()
                .map(|im| im.scores.get(c).copied().unwrap_or(0.0))
                .collect();
            let (mut tp, mut fp, mut fn_) = (0, 0, 0);
            for (t, s) in truth.iter().zip(&scores) {
                match (*t, *s >= threshold) {
                    (true, true) => tp += 1,
                    (false, true) => fp += 1,
                    (true, false) => fn_ += 1,
                    (false, false) => {}
                }
            }
            all_tp += tp;
            all_fp += fp;
            all_fn += fn_;
            let (precision, recall, f1) = prf(tp, fp, fn_);
            ClassPrf {
                class: c.clone(),
                support: tp + fn_,
                precision,
                recall,
                f1,
                ap: average_precision(&truth, &scores),
            }
        })
        .collect();
    let (micro_precision, micro_recall, micro_f1) = prf(all_tp, all_fp, all_fn);
    MultilabelReport {
        images: images.len(),
        threshold,
        map: mean(per.iter().filter_map(|c| c.ap)),
        classes: per,
        micro_precision,
        micro_recall,
        micro_f1,
    }
}

/// The best score per class of each image's predictions.
pub fn best_scores<'a>(preds: impl Iterator<Item = (&'a str, f64)>) -> HashMap<String, f64> {
    let mut out: BTreeMap<&str, f64> = BTreeMap::new();
    for (c, s) in preds {
        let e = out.entry(c).or_insert(f64::MIN);
        *e = e.max(s);
    }
    out.into_iter().map(|(c, s)| (c.to_string(), s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn im(truth: &[&str], scores: &[(&str, f64)]) -> ImageScores {
        ImageScores {
            truth: truth.iter().map(|s| s.to_string()).collect(),
            scores: scores.iter().map(|(c, s)| (c.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn classify_by_hand() {
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let images = [
            im(&["a"], &[("a", 0.9), ("b", 0.1)]), // a → a
            im(&["a"], &[("b", 0.6), ("a", 0.4)]), // a → b
            im(&["b"], &[("b", 0.7)]),             // b → b
            im(&["c"], &[]),                       // c → (none)
            im(&["a", "b"], &[("a", 1.0)]),        // not one class: skipped
        ];
        let r = classify(&images, &classes);
        assert_eq!(r.images, 4);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.labels, vec!["a", "b", "c", NONE]);
        assert_eq!(
            r.matrix,
            vec![vec![1, 1, 0, 0], vec![0, 1, 0, 0], vec![0, 0, 0, 1]]
        );
        // a: tp 1, fp 0, fn 1 → P 1, R .5, F1 2/3; b: tp 1, fp 1 → P .5, R 1; c: all 0.
        assert_eq!((r.classes[0].precision, r.classes[0].recall), (1.0, 0.5));
        assert!((r.classes[0].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((r.classes[1].precision, r.classes[1].recall), (0.5, 1.0));
        assert_eq!(r.classes[2].f1, 0.0);
        assert!((r.macro_f1.unwrap() - (4.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn average_precision_like_sklearn() {
        // sklearn: average_precision_score([1, 0, 1, 1], [0.9, 0.8, 0.8, 0.1]) = 0.75 + …
        // thresholds 0.9: P 1, R 1/3; 0.8: P 2/3, R 2/3; 0.1: P 3/4, R 1.
        let ap = average_precision(&[true, false, true, true], &[0.9, 0.8, 0.8, 0.1]).unwrap();
        let want = 1.0 / 3.0 * 1.0 + 1.0 / 3.0 * (2.0 / 3.0) + 1.0 / 3.0 * 0.75;
        assert!((ap - want).abs() < 1e-12, "{ap}");
        assert_eq!(average_precision(&[false, false], &[0.3, 0.2]), None);
        let classes: Vec<String> = ["x", "y"].iter().map(|s| s.to_string()).collect();
        let r = multilabel(
            &[
                im(&["x"], &[("x", 0.8), ("y", 0.6)]),
                im(&["y"], &[("y", 0.4)]),
            ],
            &classes,
            0.5,
        );
        // x: tp 1; y: fp 1 (0.6), fn 1 (0.4). Micro: tp 1, fp 1, fn 1.
        assert_eq!(r.classes[0].f1, 1.0);
        assert_eq!(r.classes[1].f1, 0.0);
        assert_eq!((r.micro_precision, r.micro_recall), (0.5, 0.5));
        assert_eq!(r.map, Some((1.0 + 0.5) / 2.0));
    }
}

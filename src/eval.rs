//! Model predictions against reviewed labels: Pascal VOC AP at IoU 0.5 per class (all-point
//! interpolation, VOC 2010 onwards; written as active-learning-detect's performance CSV) and
//! COCO AP averaged over IoU 0.50:0.05:0.95 (101 recall points, 100 detections an image), done
//! the way pycocotools does it so the figures agree.

pub mod classify;

use std::collections::{BTreeMap, HashMap};

use crate::model::BBox;

/// A reviewed box.
#[derive(Debug, Clone, PartialEq)]
pub struct GtBox {
    pub image: i64,
    pub class: String,
    pub bbox: BBox,
}

/// A predicted box.
#[derive(Debug, Clone, PartialEq)]
pub struct DetBox {
    pub image: i64,
    pub class: String,
    pub bbox: BBox,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    pub class: String,
    pub gt: usize,
    pub dets: usize,
    /// VOC AP at IoU 0.5; `None` when the class has no reviewed box.
    pub voc_ap50: Option<f64>,
    /// COCO AP over IoU 0.50:0.95.
    pub coco_ap: Option<f64>,
    /// COCO AP at IoU 0.5 (101-point).
    pub coco_ap50: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub images: usize,
    pub classes: Vec<ClassAp>,
    /// Means over the classes that have reviewed boxes.
    pub voc_map50: Option<f64>,
    pub coco_map: Option<f64>,
    pub coco_map50: Option<f64>,
}

/// All-point interpolated AP: area under the precision envelope.
pub fn voc_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let mut mrec = vec![0.0];
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = vec![0.0];
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (1..mrec.len())
        .filter(|&i| mrec[i] != mrec[i - 1])
        .map(|i| (mrec[i] - mrec[i - 1]) * mpre[i])
        .sum()
}

fn stable_by_score_desc<T>(v: &mut [T], score: impl Fn(&T) -> f64) {
    v.sort_by(|a, b| score(b).total_cmp(&score(a)));
}

/// VOC: detections by score; each matches the reviewed box it overlaps most, if IoU ≥ 0.5 and
/// that box is not taken yet (a second hit on it is a false positive).
fn voc_class(images: &[i64], gts: &[&GtBox], dets: &[&DetBox]) -> Option<f64> {
    if gts.is_empty() {
        return None;
    }
    let mut by_image: HashMap<i64, Vec<(&BBox, bool)>> = HashMap::new();
    for g in gts {
        by_image.entry(g.image).or_default().push((&g.bbox, false));
    }
    let mut dets: Vec<&&DetBox> = dets.iter().filter(|d| images.contains(&d.image)).collect();
    stable_by_score_desc(&mut dets, |d| d.score);
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut rec, mut prec) = (Vec::new(), Vec::new());
    for d in dets {
        let mut hit = false;
        if let Some(gs) = by_image.get_mut(&d.image) {
            let best = gs
                .iter()
                .enumerate()
                .map(|(i, (b, _))| (i, d.bbox.iou(b)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, iou)) = best
                && iou >= 0.5
                && !gs[i].1
            {
                gs[i].1 = true;
                hit = true;
            }
        }
        if hit {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        rec.push(tp / gts.len() as f64);
        prec.push(tp / (tp + fp));
    }
    Some(voc_ap(&rec, &prec))
}

/// numpy's `linspace(start, stop, n)`: `start + i * step`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i == n - 1 {
                stop
            } else {
                i as f64 * step + start
            }
        })
        .collect()
}

const MAX_DETS: usize = 100;

/// COCO AP for one class, per IoU threshold (pycocotools `evaluateImg` + `accumulate`).
fn coco_class(images: &[i64], gts: &[&GtBox], dets: &[&DetBox]) -> Option<Vec<f64>> {
    if gts.is_empty() {
        return None;
    }
    let iou_thrs = linspace(0.5, 0.95, 10);
    let rec_thrs = linspace(0.0, 1.0, 101);
    let mut g_by: BTreeMap<i64, Vec<&BBox>> = BTreeMap::new();
    for g in gts {
        g_by.entry(g.image).or_default().push(&g.bbox);
    }
    let mut d_by: BTreeMap<i64, Vec<&DetBox>> = BTreeMap::new();
    for d in dets {
        d_by.entry(d.image).or_default().push(d);
    }
    let mut sorted_images = images.to_vec();
    sorted_images.sort();
    // Per IoU threshold: (score, matched) of every detection, image by image.
    let mut per_t: Vec<Vec<(f64, bool)>> = vec![Vec::new(); iou_thrs.len()];
    for img in &sorted_images {
        let g = g_by.get(img).map(Vec::as_slice).unwrap_or(&[]);
        let mut d: Vec<&DetBox> = d_by.get(img).cloned().unwrap_or_default();
        stable_by_score_desc(&mut d, |d| d.score);
        d.truncate(MAX_DETS);
        for (ti, t) in iou_thrs.iter().enumerate() {
            let mut gtm = vec![false; g.len()];
            for dt in &d {
                let mut best = t.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for (gi, gb) in g.iter().enumerate() {
                    if gtm[gi] {
                        continue;
                    }
                    let iou = dt.bbox.iou(gb);
                    if iou < best {
                        continue;
                    }
                    best = iou;
                    m = Some(gi);
                }
                if let Some(gi) = m {
                    gtm[gi] = true;
                }
                per_t[ti].push((dt.score, m.is_some()));
            }
        }
    }
    let npig = gts.len() as f64;
    Some(
        per_t
            .into_iter()
            .map(|mut v| {
                stable_by_score_desc(&mut v, |x| x.0);
                let (mut tp, mut fp) = (0.0, 0.0);
                let mut rc = Vec::with_capacity(v.len());
                let mut pr = Vec::with_capacity(v.len());
                for (_, m) in &v {
                    if *m {
                        tp += 1.0;
                    } else {
                        fp += 1.0;
                    }
                    rc.push(tp / npig);
                    // pycocotools divides by tp + fp + np.spacing(1).
                    pr.push(tp / (tp + fp + f64::EPSILON));
                }
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                let q: Vec<f64> = rec_thrs
                    .iter()
                    .map(|r| {
                        // searchsorted(rc, r, side='left')
                        let i = rc.partition_point(|x| x < r);
                        pr.get(i).copied().unwrap_or(0.0)
                    })
                    .collect();
                q.iter().sum::<f64>() / q.len() as f64
            })
            .collect(),
    )
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Evaluates `dets` against `gts` over `images` (reviewed images the model predicted).
pub fn evaluate(images: &[i64], classes: &[String], gts: &[GtBox], dets: &[DetBox]) -> EvalReport {
    let in_set: std::collections::HashSet<i64> = images.iter().copied().collect();
    let mut out = Vec::new();
    for c in classes {
        let g: Vec<&GtBox> = gts
            .iter()
            .filter(|g| &g.class == c && in_set.contains(&g.image))
            .collect();
        let d: Vec<&DetBox> = dets
            .iter()
            .filter(|d| &d.class == c && in_set.contains(&d.image))
            .collect();
        let coco = coco_class(images, &g, &d);
        out.push(ClassAp {
            class: c.clone(),
            gt: g.len(),
            dets: d.len(),
            voc_ap50: voc_class(images, &g, &d),
            coco_ap: coco.as_ref().and_then(|v| mean(v.iter().copied())),
            coco_ap50: coco.as_ref().map(|v| v[0]),
        });
    }
    EvalReport {
        images: images.len(),
        voc_map50: mean(out.iter().filter_map(|c| c.voc_ap50)),
        coco_map: mean(out.iter().filter_map(|c| c.coco_ap)),
        coco_map50: mean(out.iter().filter_map(|c| c.coco_ap50)),
        classes: out,
    }
}

/// active-learning-detect's performance CSV: `Class Name,AP` per class with reviewed boxes,
/// then `Average`.
pub fn performance_csv(r: &EvalReport) -> String {
    let mut s = String::from("Class Name,AP\n");
    for c in &r.classes {
        if let Some(ap) = c.voc_ap50 {
            let name = if c.class.contains([',', '"']) {
                format!("\"{}\"", c.class.replace('"', "\"\""))
            } else {
                c.class.clone()
            };
            s.push_str(&format!("{name},{ap}\n"));
        }
    }
    if let Some(m) = r.voc_map50 {
        s.push_str(&format!("Average,{m}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f64, y0: f64, x1: f64, y1: f64) -> BBox {
        BBox { x0, y0, x1, y1 }
    }
    fn gt(image: i64, class: &str, bbox: BBox) -> GtBox {
        GtBox {
            image,
            class: class.into(),
            bbox,
        }
    }
    fn det(image: i64, class: &str, bbox: BBox, score: f64) -> DetBox {
        DetBox {
            image,
            class: class.into(),
            bbox,
            score,
        }
    }

    /// Class a: two reviewed boxes on image 1, one on image 2.
    /// Detections by score: 0.9 hits g1 (IoU 1), 0.8 hits g1 again (FP), 0.7 misses (FP),
    /// 0.6 hits g3 with IoU 0.56 (TP at 0.5 and 0.55 only).
    /// VOC: TP/FP = T F F T; recall 1/3 1/3 1/3 2/3; precision 1 1/2 1/3 1/2.
    /// Envelope: 1 up to recall 1/3, then 1/2 up to 2/3: AP = 1/3 · 1 + 1/3 · 1/2 = 0.5.
    #[test]
    fn voc_and_coco_by_hand() {
        let gts = vec![
            gt(1, "a", b(0.0, 0.0, 0.2, 0.2)),
            gt(1, "a", b(0.5, 0.5, 0.7, 0.7)),
            gt(2, "a", b(0.0, 0.0, 0.5, 0.5)),
        ];
        // 0.5 × 0.28 box inside the 0.5 × 0.5 one: IoU 0.56.
        let dets = vec![
            det(1, "a", b(0.0, 0.0, 0.2, 0.2), 0.9),
            det(1, "a", b(0.0, 0.0, 0.2, 0.2), 0.8),
            det(2, "a", b(0.8, 0.8, 0.9, 0.9), 0.7),
            det(2, "a", b(0.0, 0.0, 0.5, 0.28), 0.6),
        ];
        let r = evaluate(&[1, 2], &["a".into(), "b".into()], &gts, &dets);
        let a = &r.classes[0];
        assert!((a.voc_ap50.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(r.classes[1].voc_ap50, None);
        // COCO, IoU 0.5 and 0.55 (0.56 ≥ t): image order 1 then 2 by score:
        // 0.9 T, 0.8 F, 0.7 F, 0.6 T → same curve; 101-point: recall thresholds 0..0.33 (34
        // points) get 1, 0.34..0.66 (33 points) get 1/2, the rest 0: (34 + 16.5) / 101.
        let t50 = (34.0 + 16.5) / 101.0;
        assert!(
            (a.coco_ap50.unwrap() - t50).abs() < 1e-12,
            "{:?}",
            a.coco_ap50
        );
        // Thresholds 0.5, 0.55 → t50 each; 0.6..0.95 (8 thresholds) → recall 1/3 at most: 34/101.
        let want = (2.0 * t50 + 8.0 * 34.0 / 101.0) / 10.0;
        assert!(
            (a.coco_ap.unwrap() - want).abs() < 1e-12,
            "{:?} vs {want}",
            a.coco_ap
        );
        let csv = performance_csv(&r);
        assert_eq!(csv, "Class Name,AP\na,0.5\nAverage,0.5\n");
    }

    #[test]
    fn voc_ap_perfect_and_empty() {
        assert!((voc_ap(&[0.5, 1.0], &[1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(voc_ap(&[], &[]), 0.0);
    }
}

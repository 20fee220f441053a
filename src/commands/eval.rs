//! `termtag eval`: a model run against the reviewed labels; writes performance.csv.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::eval::classify::{ClassPrf, ImageScores, best_scores};
use crate::eval::{self, DetBox, GtBox, evaluate, performance_csv};
use crate::model::Task;
use crate::project::Project;
use crate::sanitize::{for_terminal, show_path};
use crate::store::{PredictedImage, Store, StoredPrediction};

/// The run `eval` measures: `--run`, else the newest that predicted a reviewed image.
pub(crate) fn eval_run(
    store: &Store,
    run: Option<i64>,
    reviewed: &HashMap<i64, Vec<StoredPrediction>>,
) -> Result<i64> {
    if let Some(r) = run {
        return Ok(r);
    }
    let mut runs = store.model_runs()?;
    runs.reverse();
    for r in runs {
        let imgs = store.predicted_images(Some(r.id))?;
        if imgs.iter().any(|i| reviewed.contains_key(&i.id)) {
            return Ok(r.id);
        }
    }
    bail!(
        "no model run has predicted a reviewed image: run `termtag predict` (it covers reviewed images too), or import predictions"
    )
}

/// `termtag eval`: AP for detection; accuracy, precision/recall/F1 and the confusion matrix for
/// classification; AP and F1 at `threshold` for multi-label.
pub fn run(
    project: &Project,
    store: &Store,
    run: Option<i64>,
    out: Option<PathBuf>,
    json: bool,
    threshold: Option<f64>,
) -> Result<()> {
    let gt_by_image = store.reviewed_labels()?;
    let run = eval_run(store, run, &gt_by_image)?;
    let predicted = store.predicted_images(Some(run))?;
    let predicted: Vec<PredictedImage> = predicted
        .into_iter()
        .filter(|i| gt_by_image.contains_key(&i.id))
        .collect();
    if predicted.is_empty() {
        bail!("model run {run} predicted none of the reviewed images");
    }
    let unseen = gt_by_image.len() - predicted.len();
    if unseen > 0 {
        errln!(
            "note: {unseen} reviewed images were not predicted by model run {run} and are left out"
        );
    }
    let out = out.unwrap_or_else(|| project.root.join("performance.csv"));
    if !project.config.task.is_detect() {
        let threshold = threshold.unwrap_or(project.config.min_confidence);
        return eval_classes(
            project,
            store,
            run,
            &gt_by_image,
            &predicted,
            &out,
            json,
            threshold,
        );
    }
    let images: Vec<i64> = predicted.iter().map(|i| i.id).collect();
    let mut gts = Vec::new();
    for id in &images {
        for l in &gt_by_image[id] {
            if let Some(b) = l.bbox {
                gts.push(GtBox {
                    image: *id,
                    class: l.class.clone(),
                    bbox: b,
                });
            }
        }
    }
    let dets: Vec<DetBox> = predicted
        .iter()
        .filter(|i| gt_by_image.contains_key(&i.id))
        .flat_map(|i| {
            i.predictions.iter().filter_map(move |p| {
                p.bbox.map(|b| DetBox {
                    image: i.id,
                    class: p.class.clone(),
                    bbox: b,
                    score: p.score,
                })
            })
        })
        .collect();
    let classes = store.class_names()?;
    let r = evaluate(&images, &classes, &gts, &dets);
    std::fs::write(&out, performance_csv(&r))
        .with_context(|| format!("{}: cannot write", show_path(&out)))?;
    if json {
        let classes: Vec<serde_json::Value> = r
            .classes
            .iter()
            .map(|c| {
                serde_json::json!({
                    "class": c.class, "gt": c.gt, "dets": c.dets,
                    "voc_ap50": c.voc_ap50, "coco_ap": c.coco_ap, "coco_ap50": c.coco_ap50,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "run": run, "images": r.images, "voc_map50": r.voc_map50,
                "coco_map": r.coco_map, "coco_map50": r.coco_map50, "classes": classes,
            })
        )?;
        return Ok(());
    }
    let f = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
    outln!("model run {run} on {} reviewed images", r.images)?;
    outln!(
        "{:<24}{:>6}{:>7}{:>10}{:>10}{:>12}",
        "class",
        "boxes",
        "preds",
        "AP@0.5",
        "COCO AP50",
        "AP@.5:.95"
    )?;
    for c in &r.classes {
        outln!(
            "  {:<22}{:>6}{:>7}{:>10}{:>10}{:>12}",
            for_terminal(&c.class),
            c.gt,
            c.dets,
            f(c.voc_ap50),
            f(c.coco_ap50),
            f(c.coco_ap)
        )?;
    }
    outln!(
        "mean (classes with reviewed boxes): VOC AP@0.5 {}, COCO mAP@[.5:.95] {} (AP50 {})",
        f(r.voc_map50),
        f(r.coco_map),
        f(r.coco_map50)
    )?;
    outln!("wrote {}", show_path(&out))?;
    Ok(())
}

/// `eval` on a classify or multilabel project.
#[allow(clippy::too_many_arguments)]
fn eval_classes(
    project: &Project,
    store: &Store,
    run: i64,
    gt_by_image: &HashMap<i64, Vec<StoredPrediction>>,
    predicted: &[PredictedImage],
    out: &Path,
    json: bool,
    threshold: f64,
) -> Result<()> {
    let classes = store.class_names()?;
    let images: Vec<ImageScores> = predicted
        .iter()
        .map(|im| ImageScores {
            truth: gt_by_image[&im.id]
                .iter()
                .map(|l| l.class.clone())
                .collect(),
            scores: best_scores(im.predictions.iter().map(|p| (p.class.as_str(), p.score))),
        })
        .collect();
    let f = |v: f64| format!("{v:.4}");
    let mut csv = String::from("Class Name,Support,Precision,Recall,F1");
    if project.config.task == Task::Classify {
        let r = eval::classify::classify(&images, &classes);
        let skipped = images.len() - r.images;
        if skipped > 0 {
            eprintln!(
                "note: {skipped} reviewed images do not have exactly one class and are left out"
            );
        }
        csv.push('\n');
        for c in &r.classes {
            csv.push_str(&format!(
                "{},{},{},{},{}\n",
                csv_field(&c.class),
                c.support,
                c.precision,
                c.recall,
                c.f1
            ));
        }
        std::fs::write(out, csv).with_context(|| format!("{}: cannot write", show_path(out)))?;
        if json {
            outln!(
                "{}",
                serde_json::json!({
                    "run": run, "task": "classify", "images": r.images, "accuracy": r.accuracy,
                    "macro_f1": r.macro_f1, "classes": prf_json(&r.classes),
                    "confusion": { "labels": r.labels, "matrix": r.matrix },
                })
            )?;
            return Ok(());
        }
        outln!(
            "model run {run} on {} reviewed images: top-1 accuracy {}, macro F1 {}",
            r.images,
            f(r.accuracy),
            r.macro_f1.map(f).unwrap_or_else(|| "-".into())
        )?;
        print_prf(&r.classes, false)?;
        outln!("confusion matrix (rows reviewed, columns predicted):")?;
        let w = r
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 16);
        let head: Vec<String> = r
            .labels
            .iter()
            .map(|l| format!("{:>w$}", short(l, w)))
            .collect();
        outln!("  {:<w$} {}", "", head.join(" "))?;
        for (c, row) in classes.iter().zip(&r.matrix) {
            let cells: Vec<String> = row.iter().map(|n| format!("{n:>w$}")).collect();
            outln!("  {:<w$} {}", short(c, w), cells.join(" "))?;
        }
    } else {
        let r = eval::classify::multilabel(&images, &classes, threshold);
        csv.push_str(",AP\n");
        for c in &r.classes {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                csv_field(&c.class),
                c.support,
                c.precision,
                c.recall,
                c.f1,
                c.ap.map(|v| v.to_string()).unwrap_or_default()
            ));
        }
        std::fs::write(out, csv).with_context(|| format!("{}: cannot write", show_path(out)))?;
        if json {
            outln!(
                "{}",
                serde_json::json!({
                    "run": run, "task": "multilabel", "images": r.images, "threshold": r.threshold,
                    "map": r.map, "micro_precision": r.micro_precision,
                    "micro_recall": r.micro_recall, "micro_f1": r.micro_f1,
                    "classes": prf_json(&r.classes),
                })
            )?;
            return Ok(());
        }
        outln!(
            "model run {run} on {} reviewed images: mAP {}, micro F1 {} at score ≥ {}",
            r.images,
            r.map.map(f).unwrap_or_else(|| "-".into()),
            f(r.micro_f1),
            r.threshold
        )?;
        print_prf(&r.classes, true)?;
    }
    outln!("wrote {}", show_path(out))?;
    Ok(())
}

fn prf_json(classes: &[ClassPrf]) -> Vec<serde_json::Value> {
    classes
        .iter()
        .map(|c| {
            serde_json::json!({
                "class": c.class, "support": c.support, "precision": c.precision,
                "recall": c.recall, "f1": c.f1, "ap": c.ap,
            })
        })
        .collect()
}

fn print_prf(classes: &[ClassPrf], ap: bool) -> Result<()> {
    outln!(
        "{:<24}{:>8}{:>11}{:>8}{:>8}{}",
        "class",
        "images",
        "precision",
        "recall",
        "F1",
        if ap { "      AP" } else { "" }
    )?;
    for c in classes {
        outln!(
            "  {:<22}{:>8}{:>11.4}{:>8.4}{:>8.4}{}",
            short(&c.class, 22),
            c.support,
            c.precision,
            c.recall,
            c.f1,
            match (ap, c.ap) {
                (false, _) => String::new(),
                (true, Some(v)) => format!("{v:>8.4}"),
                (true, None) => format!("{:>8}", "-"),
            }
        )?;
    }
    Ok(())
}

/// A class name for a table cell: safe for the terminal, cut to `w` characters.
fn short(s: &str, w: usize) -> String {
    for_terminal(s).chars().take(w).collect()
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

//! Bodies of `predict`, `queue`, `eval`, `train` and `doctor` (the ONNX Runtime part); `cli.rs`
//! only parses and dispatches.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::predict::{PredictOptions, Shard, predict};
use crate::eval::{DetBox, GtBox, evaluate, performance_csv};
use crate::formats::show_path;
use crate::model::ImageStatus;
use crate::project::Project;
use crate::queue::{EmptyPolicy, Metric, Order, QueueImage, QueueParams, Scored, order};
use crate::sanitize::for_terminal;
use crate::store::{PredictedImage, Store};

fn bar(template: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    }
}

/// `termtag predict`.
pub fn cmd_predict(
    project: &Project,
    store: &mut Store,
    model: Option<PathBuf>,
    shard: Option<Shard>,
    workers: Option<usize>,
) -> Result<()> {
    let pb = bar("predict {bar:30} {pos}/{len} images ({per_sec}, {eta} left)");
    let opts = PredictOptions {
        model,
        shard,
        workers,
    };
    let report = predict(project, store, &opts, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    outln!(
        "model {}: {}, on {} (ONNX Runtime {})",
        show_path(&report.model),
        report.adapter,
        report.provider,
        report.runtime
    )?;
    for n in &report.provider_notes {
        outln!("  not used: {}", for_terminal(n))?;
    }
    for (key, why) in &report.broken {
        eprintln!("broken: {}: {}", for_terminal(key), for_terminal(why));
    }
    if !report.dropped.is_empty() {
        let list: Vec<String> = report
            .dropped
            .iter()
            .map(|(c, n)| format!("{} ×{n}", for_terminal(c)))
            .collect();
        outln!(
            "dropped by the class map: {} (map them with [model] class_map or default_class)",
            list.join(", ")
        )?;
    }
    let secs = report.total.as_secs_f64();
    outln!(
        "model run {}{}: {} images predicted, {} predictions, {} broken{} in {secs:.1}s ({:.1} images/s; {:.0}% of the time outside inference; {:.1}s to load)",
        report.run_id,
        if report.resumed {
            format!(" (resumed after {} images)", report.already)
        } else {
            String::new()
        },
        report.processed,
        report.predictions,
        report.broken.len(),
        shard
            .map(|s| format!(", shard {}/{}", s.k, s.n))
            .unwrap_or_default(),
        report.processed as f64 / secs.max(1e-9),
        100.0 * (1.0 - report.in_run.as_secs_f64() / secs.max(1e-9)),
        report.setup.as_secs_f64(),
    )?;
    Ok(())
}

/// The queue's view of stored predictions.
pub fn queue_images(images: &[PredictedImage]) -> Vec<QueueImage> {
    images
        .iter()
        .map(|im| QueueImage {
            id: im.id,
            preds: im
                .predictions
                .iter()
                .map(|p| Scored {
                    class: p.class.clone(),
                    score: p.score,
                    boxed: p.bbox.is_some(),
                })
                .collect(),
        })
        .collect()
}

/// `termtag queue`.
pub fn cmd_queue(
    project: &Project,
    store: &Store,
    metric: Option<Metric>,
    limit: usize,
    order_by: Option<Order>,
    empty: Option<EmptyPolicy>,
    seed: Option<u64>,
) -> Result<()> {
    let cfg = &project.config;
    let classes = store.class_names()?;
    let mut p = QueueParams::new(&cfg.queue, cfg.min_confidence, classes.len());
    if let Some(m) = metric {
        p.metric = m;
    }
    if let Some(o) = order_by {
        p.order = o;
    }
    if let Some(e) = empty {
        p.empty = e;
    }
    if let Some(s) = seed {
        p.seed = s;
    }
    let all = store.predicted_images(None)?;
    let waiting: Vec<PredictedImage> = all
        .into_iter()
        .filter(|im| matches!(im.status, ImageStatus::New | ImageStatus::Claimed))
        .collect();
    let unpredicted = store.waiting_count()?.saturating_sub(waiting.len());
    let by_id: BTreeMap<i64, &PredictedImage> = waiting.iter().map(|im| (im.id, im)).collect();
    let ranked = order(&queue_images(&waiting), &p);
    let shown = if limit == 0 { ranked.len() } else { limit };
    outln!("image\t{}\tboxes\ttop classes", p.metric.as_str())?;
    for r in ranked.iter().take(shown) {
        let Some(im) = by_id.get(&r.id) else { continue };
        let kept: Vec<_> = im
            .predictions
            .iter()
            .filter(|x| x.score >= cfg.min_confidence)
            .collect();
        let mut best: BTreeMap<&str, f64> = BTreeMap::new();
        for x in &kept {
            let e = best.entry(x.class.as_str()).or_insert(0.0);
            *e = e.max(x.score);
        }
        let mut top: Vec<(&str, f64)> = best.into_iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = top
            .iter()
            .take(3)
            .map(|(c, s)| format!("{} {s:.2}", for_terminal(c)))
            .collect();
        let boxes = kept.iter().filter(|x| x.bbox.is_some()).count();
        outln!(
            "{}\t{}\t{boxes}\t{}",
            for_terminal(&im.key),
            r.value
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "empty".into()),
            top.join(", ")
        )?;
    }
    eprintln!(
        "{} of {} images waiting for review shown ({}, {} order, empty images {}){}",
        shown.min(ranked.len()),
        ranked.len(),
        p.metric.as_str(),
        value_name(p.order),
        value_name(p.empty),
        if unpredicted > 0 {
            format!("; {unpredicted} more have no prediction yet: run `termtag predict`")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `termtag eval`.
pub fn cmd_eval(
    project: &Project,
    store: &Store,
    run: Option<i64>,
    out: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    if !project.config.task.is_detect() {
        bail!(
            "eval measures boxes (AP); this is a {} project",
            project.config.task
        );
    }
    let gt_by_image = store.reviewed_labels()?;
    let run = match run {
        Some(r) => r,
        None => {
            // The newest run that predicted a reviewed image.
            let mut runs = store.model_runs()?;
            runs.reverse();
            let mut chosen = None;
            for r in runs {
                let imgs = store.predicted_images(Some(r.id))?;
                if imgs.iter().any(|i| gt_by_image.contains_key(&i.id)) {
                    chosen = Some(r.id);
                    break;
                }
            }
            chosen.context(
                "no model run has predicted a reviewed image: run `termtag predict` (it covers reviewed images too), or import predictions",
            )?
        }
    };
    let predicted = store.predicted_images(Some(run))?;
    let images: Vec<i64> = predicted
        .iter()
        .filter(|i| gt_by_image.contains_key(&i.id))
        .map(|i| i.id)
        .collect();
    if images.is_empty() {
        bail!("model run {run} predicted none of the reviewed images");
    }
    let unseen = gt_by_image.len() - images.len();
    if unseen > 0 {
        eprintln!(
            "note: {unseen} reviewed images were not predicted by model run {run} and are left out"
        );
    }
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
    let out = out.unwrap_or_else(|| project.root.join("performance.csv"));
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

/// `termtag doctor`: the ONNX Runtime lines.
pub fn cmd_doctor(project: Option<&Project>) -> Result<()> {
    for line in super::doctor_lines(project) {
        outln!("{line}")?;
    }
    Ok(())
}

/// `termtag train`.
pub fn cmd_train(project: &Project, store: &mut Store, if_due: bool) -> Result<()> {
    let report = crate::train::train(project, store, if_due)?;
    match report {
        None => outln!("training not due yet ([train] every)")?,
        Some(r) => {
            outln!(
                "trained on {} reviewed images; model {} registered as model run {}; log {}",
                r.reviewed,
                show_path(&r.model),
                r.run_id,
                show_path(&r.log)
            )?;
            outln!("next: termtag predict --model {}", show_path(&r.model))?;
        }
    }
    Ok(())
}

/// The name clap and termtag.toml use for a value.
fn value_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

//! `termtag queue`: the review queue as the screen orders it, most uncertain first.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use crate::project::Project;
use crate::queue::{
    Diversity, EmptyPolicy, Metric, Order, Place, Placed, QueueParams, review_queue, score,
};
use crate::sanitize::for_terminal;
use crate::store::Store;

/// `termtag queue`. With the diversity option (`--diversity` or `[queue] diversity`), the
/// waiting pictures without a signature are decoded first (on all cores), so that every
/// near-duplicate is known; the review screen then finds them stored.
#[allow(clippy::too_many_arguments)]
pub fn run(
    project: &Project,
    store: &mut Store,
    filter: &str,
    metric: Option<Metric>,
    limit: usize,
    order_by: Option<Order>,
    empty: Option<EmptyPolicy>,
    seed: Option<u64>,
    diversity: bool,
) -> Result<()> {
    let filter = &super::project_filter(project, filter)?;
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
    if diversity && p.diversity.is_none() {
        p.diversity = Some(Diversity::new(
            cfg.queue
                .similarity
                .unwrap_or(crate::diversity::DEFAULT_SIMILARITY),
        ));
    }
    if let Some(d) = &mut p.diversity {
        let bar = super::progress::bar("signatures {bar:30} {pos}/{len} pictures ({eta} left)");
        let filled = crate::diversity::backfill(project, store, &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })?;
        bar.finish_and_clear();
        if filled.unreadable > 0 {
            errln!(
                "note: {} pictures could not be read (or are not pulled yet): each counts as a group of its own",
                filled.unreadable
            );
        }
        d.load(store)?;
    }
    // The review screen's queue (the same reads, the same ordering), as far as the model
    // placed it: keys only for the lines printed.
    let rows = store.image_briefs(filter)?;
    let predicted = store.queue_images()?;
    let placed = review_queue(&rows, &score(&predicted, &p), false, &p);
    let unpredicted = placed
        .iter()
        .filter(|x| x.place == Place::Unpredicted)
        .count();
    let ranked: Vec<&Placed> = placed.iter().filter(|x| x.place.predicted()).collect();
    let by_id: HashMap<i64, &crate::queue::QueueImage> =
        predicted.iter().map(|q| (q.id, q)).collect();
    let shown = if limit == 0 { ranked.len() } else { limit };
    outln!("image\t{}\tboxes\ttop classes", p.metric.as_str())?;
    for x in ranked.iter().take(shown) {
        let row = &rows[x.row];
        let Some(im) = by_id.get(&row.id) else {
            continue;
        };
        let kept: Vec<_> = im
            .preds
            .iter()
            .filter(|x| x.score >= cfg.min_confidence)
            .collect();
        let mut best: BTreeMap<&str, f64> = BTreeMap::new();
        for x in &kept {
            let e = best.entry(&*x.class).or_insert(0.0);
            *e = e.max(x.score);
        }
        let mut top: Vec<(&str, f64)> = best.into_iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = top
            .iter()
            .take(3)
            .map(|(c, s)| format!("{} {s:.2}", for_terminal(c)))
            .collect();
        let boxes = kept.iter().filter(|x| x.boxed).count();
        let value = match x.place {
            Place::Ranked(v) => format!("{v:.4}"),
            // Every proposal accepted or dismissed: the model did not find it empty.
            Place::Decided => "decided".into(),
            _ => "empty".into(),
        };
        outln!(
            "{}\t{value}\t{boxes}\t{}",
            for_terminal(&row.key),
            top.join(", ")
        )?;
    }
    let near = match &p.diversity {
        Some(d) => format!(
            ", near-duplicates in turns: {} groups of {} pictures",
            d.groups.count(),
            d.groups.len()
        ),
        None => String::new(),
    };
    errln!(
        "{} of {} images waiting for review shown ({}, {} order, empty images {}{near}){}",
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

/// The name clap and termtag.toml use for a value.
fn value_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

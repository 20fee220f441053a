//! `termtag predict`: pre-label with an ONNX model (the pipeline is
//! [`crate::infer::predict`](mod@crate::infer::predict)).

use anyhow::Result;

use crate::infer::{PredictOptions, PredictReport, ShardArg, predict};
use crate::project::Project;
use crate::sanitize::{for_terminal, show_path};
use crate::store::Store;

/// `termtag predict`; `shard` is resolved here, `auto` from the process's environment.
pub fn run(
    project: &Project,
    store: &mut Store,
    mut opts: PredictOptions,
    shard: Option<ShardArg>,
) -> Result<()> {
    let mut shard_from = None;
    if let Some(arg) = shard {
        let (s, from) = arg.resolve(&crate::remote::auth::ProcessEnv)?;
        opts.shard = Some(s);
        shard_from = from;
    }
    let pb = super::progress::bar("predict {bar:30} {pos}/{len} images ({per_sec}, {eta} left)");
    let shard = opts.shard;
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
    outln!("classes: {}", for_terminal(&report.labels))?;
    for n in &report.provider_notes {
        outln!("  not used: {}", for_terminal(n))?;
    }
    for (key, why) in &report.broken {
        errln!("broken: {}: {}", for_terminal(key), for_terminal(why));
    }
    if let Some(line) = dropped_summary(&report) {
        outln!("{line}")?;
    }
    if report.not_pulled > 0 {
        outln!(
            "{} images are not pulled yet and were left for later: `termtag pull` them, then predict again",
            report.not_pulled
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
            .map(|s| match shard_from {
                Some(from) => format!(", shard {}/{} from {from}", s.k, s.n),
                None => format!(", shard {}/{}", s.k, s.n),
            })
            .unwrap_or_default(),
        report.processed as f64 / secs.max(1e-9),
        100.0 * (1.0 - report.in_run.as_secs_f64() / secs.max(1e-9)),
        report.setup.as_secs_f64(),
    )?;
    Ok(())
}

/// What the class map dropped, by model class, and the exact flag that would keep it.
fn dropped_summary(report: &PredictReport) -> Option<String> {
    let mut dropped: Vec<(&String, &usize)> = report.dropped.iter().collect();
    if dropped.is_empty() {
        return None;
    }
    dropped.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let total: usize = dropped.iter().map(|d| d.1).sum();
    // The most frequent first; a 1000-class model can drop hundreds of names.
    const SHOWN: usize = 12;
    let mut list: Vec<String> = dropped
        .iter()
        .take(SHOWN)
        .map(|(c, n)| format!("{} ×{n}", for_terminal(c)))
        .collect();
    if dropped.len() > SHOWN {
        list.push(format!("… ({} more classes)", dropped.len() - SHOWN));
    }
    let first = for_terminal(dropped[0].0);
    let how = if report.named {
        // Only a valid label name can become a project class as it is.
        let add = if crate::model::validate_label_name(&first).is_ok() {
            format!(", add the class with `termtag classes add {first}`")
        } else {
            String::new()
        };
        format!(
            "keep them with `{}` (or [model] class_map = {{ \"{first}\" = \"PROJECT_CLASS\" }} in termtag.toml){add}, or set [model] default_class",
            crate::infer::classmap::class_map_flag(&first)
        )
    } else {
        "these are model class ids without names: give the names with `--labels FILE` (or [model] labels), or map ids with `--class-map ID=PROJECT_CLASS`".to_string()
    };
    Some(format!(
        "dropped {total} predictions whose model class maps to no project class: {}; {how}",
        list.join(", ")
    ))
}

//! `termtag predict`: pre-label with an ONNX model (the pipeline is
//! [`crate::infer::predict`](mod@crate::infer::predict)).

use anyhow::Result;

use crate::infer::{PredictOptions, PredictReport, ShardArg, predict};
use crate::project::Project;
use crate::remote::fleet::Merged;
use crate::sanitize::{for_terminal, show_path};
use crate::store::Store;

/// `--shard`, resolved: `auto` from the process's environment. The shard and the scheduler
/// variables it came from.
fn resolve_shard(
    shard: Option<ShardArg>,
) -> Result<(Option<crate::infer::Shard>, Option<&'static str>)> {
    match shard {
        Some(arg) => {
            let (s, from) = arg.resolve(&crate::remote::auth::ProcessEnv)?;
            Ok((Some(s), from))
        }
        None => Ok((None, None)),
    }
}

/// `, shard K/N[ from VARS]`, or nothing.
fn shard_text(shard: Option<crate::infer::Shard>, from: Option<&str>) -> String {
    shard
        .map(|s| match from {
            Some(from) => format!(", shard {}/{} from {from}", s.k, s.n),
            None => format!(", shard {}/{}", s.k, s.n),
        })
        .unwrap_or_default()
}

/// The lines both forms print before their summary: the model, its classes, the providers not
/// used, the broken images (stderr) and what the class map dropped.
fn model_lines(report: &PredictReport) -> Result<()> {
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
    if let Some(line) = dropped_summary(report) {
        outln!("{line}")?;
    }
    Ok(())
}

/// `termtag predict`; `shard` is resolved here, `auto` from the process's environment.
pub fn run(
    project: &Project,
    store: &mut Store,
    mut opts: PredictOptions,
    shard: Option<ShardArg>,
) -> Result<()> {
    let (shard, shard_from) = resolve_shard(shard)?;
    opts.shard = shard;
    let pb = super::progress::bar("predict {bar:30} {pos}/{len} images ({per_sec}, {eta} left)");
    let report = predict(project, store, &opts, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    model_lines(&report)?;
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
        shard_text(shard, shard_from),
        report.processed as f64 / secs.max(1e-9),
        100.0 * (1.0 - report.in_run.as_secs_f64() / secs.max(1e-9)),
        report.setup.as_secs_f64(),
    )?;
    Ok(())
}

/// `termtag predict --stream`: this shard of the project's blob container, straight from it.
pub fn stream(
    project: &Project,
    store: &Store,
    mut opts: PredictOptions,
    shard: Option<ShardArg>,
) -> Result<()> {
    let (shard, shard_from) = resolve_shard(shard)?;
    opts.shard = shard;
    let set = crate::remote::open(project)?;
    let rt = super::runtime()?;
    let pb = super::progress::bar("predict {bar:30} {pos}/{len} images ({per_sec}, {eta} left)");
    let report = crate::infer::predict_stream(project, store, &set, &rt, &opts, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let report = report?;
    let p = &report.predict;
    model_lines(p)?;
    for (name, why) in &report.refused {
        errln!("refused: {name}: {why}");
    }
    let merged = match &report.merged {
        Some(Merged::Written(name, n)) => {
            format!(
                "; all shards done: wrote {} ({n} images)",
                for_terminal(name)
            )
        }
        Some(Merged::Already(name)) => {
            format!(
                "; all shards done: {} was written before",
                for_terminal(name)
            )
        }
        Some(Merged::Waiting(ks)) => format!(
            "; the merged totag waits for shard{} {} of {}",
            if ks.len() == 1 { "" } else { "s" },
            ks.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            report.shard.map_or(1, |s| s.n)
        ),
        None => String::new(),
    };
    let secs = p.total.as_secs_f64();
    outln!(
        "streamed run {}{}: {} images listed, {} in this shard, {} already done, {} predicted ({} predictions), {} broken, {} parts written in {secs:.1}s ({:.1} images/s; {:.1}s to load, {:.1}s to list, {:.2}s to read {} earlier parts){merged}",
        report.run,
        shard_text(shard, shard_from),
        report.listed,
        report.in_shard,
        p.already,
        p.processed,
        p.predictions,
        p.broken.len(),
        report.parts_written,
        p.processed as f64 / secs.max(1e-9),
        p.setup
            .saturating_sub(report.listing + report.resume)
            .as_secs_f64(),
        report.listing.as_secs_f64(),
        report.resume.as_secs_f64(),
        report.parts_read,
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

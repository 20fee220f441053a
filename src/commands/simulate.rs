//! `termtag simulate`: the command edge of [`crate::simulate`] (truth, run, strategies from the
//! flags; the replay's table and plot).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};

use crate::cli::SimulateArgs;
use crate::project::Project;
use crate::queue::{Metric, QueueParams};
use crate::sanitize::for_terminal;
use crate::simulate::{
    Cases, ReplayReport, SHARES, load_truth, near_duplicate_groups, plot, replay_all, rounds,
    strategies,
};
use crate::store::Store;

/// `termtag simulate`.
pub fn run(project: &Project, store: &Store, args: &SimulateArgs) -> Result<()> {
    if !project.config.task.is_detect() {
        bail!(
            "simulate counts missed and wrong boxes: it works on detect projects, and this is a {} project",
            project.config.task
        );
    }
    let truth = load_truth(project, store, args.truth.as_deref().zip(args.format))?;
    if truth.is_empty() {
        bail!(
            "no truth to replay against: review some images, or give a labels file with --truth FILE --format F"
        );
    }
    let as_reviewed: HashMap<i64, Vec<crate::store::StoredPrediction>> =
        truth.keys().map(|id| (*id, Vec::new())).collect();
    let run = super::eval::eval_run(store, args.run, &as_reviewed)?;
    let cases = Cases::new(truth, &store.predicted_images(Some(run))?);
    if cases.ids.is_empty() {
        bail!("model run {run} predicted none of the images with truth: run `termtag predict`");
    }
    if cases.unpredicted > 0 {
        errln!(
            "note: {} images with truth were not predicted by model run {run} and are left out",
            cases.unpredicted
        );
    }
    let cfg = &project.config;
    let params = QueueParams::new(&cfg.queue, cfg.min_confidence, store.class_names()?.len());
    let diversity = if args.diversity {
        Some(near_duplicate_groups(
            project,
            store,
            &cases.ids,
            args.near_similarity,
        )?)
    } else {
        None
    };
    if let Some(rounds) = args.rounds {
        let metrics = if args.metric.is_empty() {
            vec![params.metric]
        } else {
            args.metric.clone()
        };
        let strategies = strategies(&metrics, args.diversity, args.seeds.unwrap_or(1));
        let opts = rounds::RoundOptions {
            rounds,
            batch: args.batch.unwrap_or(1).max(1),
            shown_from: cfg.prelabel_threshold,
        };
        let report = rounds::run(
            project,
            store,
            &cases,
            run,
            &params,
            &strategies,
            diversity.as_ref(),
            &opts,
            &|line| errln!("{}", for_terminal(line)),
        )?;
        return Ok(rounds::print(&report, args.json)?);
    }
    let metrics = if args.metric.is_empty() {
        Metric::ALL.to_vec()
    } else {
        args.metric.clone()
    };
    let seeds = args.seeds.unwrap_or(10).max(1);
    let strategies = strategies(&metrics, args.diversity, seeds);
    let (mistakes, lines) = replay_all(
        &cases,
        &params,
        cfg.prelabel_threshold,
        &strategies,
        diversity.as_ref(),
    );
    let report = ReplayReport {
        run,
        images: cases.ids.len(),
        mistakes,
        counted: if diversity.is_some() {
            "once per near-duplicate group"
        } else {
            "per image"
        },
        groups: diversity.as_ref().map(|d| d.groups.count()),
        seeds,
        shares: SHARES.to_vec(),
        lines,
    };
    print_replay(&report, args.json)
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn print_replay(r: &ReplayReport, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string(r).context("JSON")?)?;
        return Ok(());
    }
    let m = &r.mistakes;
    outln!(
        "model run {} on {} images with truth: {} mistakes ({} missed, {} false positives, {} wrong classes) at IoU 0.5",
        r.run,
        r.images,
        m.total(),
        m.missed,
        m.false_positive,
        m.wrong_class
    )?;
    if let Some(g) = r.groups {
        outln!(
            "{g} near-duplicate groups; a mistake counts once per group (the most any copy holds)"
        )?;
    }
    let head: Vec<String> = r
        .shares
        .iter()
        .map(|s| format!("{:>16}", format!("after {:.0}%", 100.0 * s)))
        .collect();
    outln!(
        "mistakes found, share and × random (mean of {} seeds)",
        r.seeds
    )?;
    outln!("{:<28}{}", "strategy", head.join(""))?;
    for l in &r.lines {
        let cells: Vec<String> = l
            .found
            .iter()
            .zip(&l.ratio)
            .map(|(f, q)| {
                let q = match q {
                    Some(q) if l.strategy != "random" => format!(" ×{q:.2}"),
                    _ => String::new(),
                };
                format!("{:>16}", format!("{}{q}", pct(*f)))
            })
            .collect();
        outln!("{:<28}{}", l.strategy, cells.join(""))?;
    }
    let marks = "12345abcdefghij";
    let series: Vec<plot::Series> = r
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| plot::Series {
            mark: if l.strategy == "random" {
                '.'
            } else {
                marks.chars().nth(i).unwrap_or('*')
            },
            name: &l.strategy,
            ys: &l.curve,
        })
        .collect();
    outln!("")?;
    for line in plot::render(
        &series,
        50,
        11,
        ["0%", "50%", "100%"],
        "images reviewed",
        "mistakes found",
    ) {
        outln!("{line}")?;
    }
    Ok(())
}

//! The loop, not only the ranking: per strategy, from the same start (the replayed model run and
//! no label), label the top `batch` images of the review queue with their truth, run the project's
//! `[train] command` on those labels, predict every image with the model it wrote, measure AP@0.5
//! against the truth, and repeat. Each strategy works in its own scratch label store under
//! `.termtag/simulate/`, so the project's own labels and runs are never touched. Each round's
//! order is [`crate::queue::review_queue`]'s over that store as it stands: the labelled images are
//! reviewed there, so with the diversity option a group with a labelled picture has had its turn,
//! as it has in the review screen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Result, SimulateError};
use serde::Serialize;

use super::{Cases, Strategy, plot, review_order};
use crate::eval::GtBox;
use crate::model::{Dataset, ImageLabels, Label};
use crate::project::{Project, STATE_DIR};
use crate::queue::{Diversity, QueueParams};
use crate::sanitize::show_path;
use crate::store::{Filter, NewImage, Store};

#[derive(Debug, Clone)]
pub struct RoundOptions {
    pub rounds: usize,
    pub batch: usize,
    /// Score from which predictions are shown (for the mistakes counted each round).
    pub shown_from: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Labelled images so far.
    pub labels: usize,
    /// Mean VOC AP@0.5 over the classes with truth, of the model trained on those labels.
    pub ap50: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub strategy: String,
    /// Rounds 0 (the replayed run, no label) to R; random: the mean over the seeds.
    pub points: Vec<Point>,
    /// Labels this strategy needed to reach random's final AP (linear between rounds), if it did.
    pub labels_to_random_final: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundsReport {
    pub run: i64,
    pub images: usize,
    pub batch: usize,
    pub seeds: usize,
    pub curves: Vec<Curve>,
    /// Random's AP after the last round, the target of `labels_to_random_final`.
    pub random_final: Option<Point>,
}

/// The scratch store of one strategy: the case images, the classes, and the replayed run's
/// predictions as the starting point.
fn sandbox(
    dir: &Path,
    store: &Store,
    cases: &Cases,
    keys: &HashMap<i64, String>,
) -> Result<(Store, HashMap<i64, i64>)> {
    std::fs::create_dir_all(dir).map_err(|source| SimulateError::Create {
        path: show_path(dir),
        source,
    })?;
    let mut sb = Store::open(&dir.join("labels.db"), "simulate")?;
    let classes = store.class_names()?;
    sb.add_classes(&classes)?;
    let known: HashMap<String, crate::formats::KnownImage> = store
        .known_images()?
        .into_iter()
        .map(|k| (k.key.clone(), k))
        .collect();
    let images: Vec<NewImage> = cases
        .ids
        .iter()
        .filter_map(|id| known.get(keys.get(id)?))
        .map(|k| NewImage {
            key: k.key.clone(),
            width: k.width,
            height: k.height,
            orientation: k.orientation,
            size: 0,
            error: None,
        })
        .collect();
    sb.add_images(&images)?;
    let sb_ids: HashMap<String, i64> = sb
        .image_briefs(&Filter::default())?
        .into_iter()
        .map(|b| (b.key, b.id))
        .collect();
    let to_sb: HashMap<i64, i64> = cases
        .ids
        .iter()
        .filter_map(|id| Some((*id, *sb_ids.get(keys.get(id)?)?)))
        .collect();
    let start = Dataset {
        classes: classes.clone(),
        images: cases
            .ids
            .iter()
            .map(|id| ImageLabels {
                key: keys[id].clone(),
                width: known[&keys[id]].width,
                height: known[&keys[id]].height,
                labels: cases.preds[id]
                    .iter()
                    .map(|d| Label {
                        class: d.class.clone(),
                        bbox: Some(d.bbox),
                        score: Some(d.score),
                    })
                    .collect(),
            })
            .collect(),
    };
    sb.import_predictions(&start, "simulate: the replayed model run", "simulate")?;
    Ok((sb, to_sb))
}

/// AP@0.5 of `cases`' predictions against their truth.
fn ap50(cases: &Cases, classes: &[String]) -> f64 {
    let (gts, dets) = cases.boxes();
    crate::eval::evaluate(&cases.ids, classes, &gts, &dets)
        .voc_map50
        .unwrap_or(0.0)
}

/// One strategy's rounds in its scratch store; returns AP after each round.
#[allow(clippy::too_many_arguments)]
fn one(
    project: &Project,
    dir: &Path,
    store: &Store,
    cases: &Cases,
    keys: &HashMap<i64, String>,
    strategy: Strategy,
    params: &QueueParams,
    diversity: Option<&Diversity>,
    opts: &RoundOptions,
    say: &dyn Fn(&str),
) -> Result<Vec<Point>> {
    let classes = store.class_names()?;
    let (mut sb, to_sb) = sandbox(dir, store, cases, keys)?;
    let truth: HashMap<i64, Vec<GtBox>> = cases
        .truth
        .iter()
        .filter_map(|(id, boxes)| {
            let sid = *to_sb.get(id)?;
            let moved = boxes
                .iter()
                .map(|g| GtBox {
                    image: sid,
                    ..g.clone()
                })
                .collect();
            Some((sid, moved))
        })
        .collect();
    let diversity: Option<Diversity> = diversity.map(|d| Diversity {
        similarity: d.similarity,
        groups: std::sync::Arc::new(d.groups.map_ids(|id| to_sb.get(&id).copied())),
    });
    let sb_keys: HashMap<i64, String> = to_sb.iter().map(|(m, s)| (*s, keys[m].clone())).collect();
    let mut now = Cases::new(truth.clone(), &sb.predicted_images(None)?);
    let mut points = vec![Point {
        labels: 0,
        ap50: ap50(&now, &classes),
    }];
    let mut labelled: std::collections::HashSet<i64> = Default::default();
    for round in 1..=opts.rounds {
        // The review queue of the scratch project as it stands: the labelled images are
        // reviewed, so with the diversity option their near-duplicate groups have had a turn.
        let rows = sb.image_briefs(&Filter::default())?;
        let picked: Vec<i64> = review_order(
            strategy,
            &rows,
            &now.queue_images(),
            params,
            diversity.as_ref(),
        )
        .into_iter()
        .filter(|id| truth.contains_key(id))
        .take(opts.batch)
        .collect();
        if picked.is_empty() {
            break;
        }
        labelled.extend(&picked);
        let ds = Dataset {
            classes: classes.clone(),
            images: picked
                .iter()
                .map(|id| ImageLabels {
                    key: sb_keys[id].clone(),
                    width: 0,
                    height: 0,
                    labels: truth[id]
                        .iter()
                        .map(|g| Label {
                            class: g.class.clone(),
                            bbox: Some(g.bbox),
                            score: None,
                        })
                        .collect(),
                })
                .collect(),
        };
        sb.import_labels(&ds, "simulate: the truth")?;
        let trained =
            crate::train::train(project, &mut sb, false)?.ok_or(SimulateError::TrainDidNotRun)?;
        let opts_predict = crate::infer::PredictOptions {
            model: Some(trained.model.clone()),
            rerun: true,
            ..Default::default()
        };
        let pr = crate::infer::predict::predict(project, &mut sb, &opts_predict, &|_, _| {})
            .map_err(|source| SimulateError::Predict {
                model: show_path(&trained.model),
                source,
            })?;
        now = Cases::new(truth.clone(), &sb.predicted_images(Some(pr.run_id))?);
        let ap = ap50(&now, &classes);
        say(&format!(
            "{} round {round}: {} labels, AP@0.5 {ap:.4} (model {})",
            strategy_label(strategy),
            labelled.len(),
            show_path(&trained.model)
        ));
        points.push(Point {
            labels: labelled.len(),
            ap50: ap,
        });
    }
    Ok(points)
}

fn strategy_label(s: Strategy) -> String {
    match s {
        Strategy::Random(seed) => format!("random (seed {seed})"),
        other => other.name(),
    }
}

/// Labels at which `points` first reach `target` AP, linear between rounds.
pub fn labels_to_reach(points: &[Point], target: f64) -> Option<f64> {
    let first = points.first()?;
    if first.ap50 >= target {
        return Some(first.labels as f64);
    }
    points.windows(2).find_map(|w| {
        let (a, b) = (&w[0], &w[1]);
        (b.ap50 >= target).then(|| {
            let t = (target - a.ap50) / (b.ap50 - a.ap50).max(f64::EPSILON);
            a.labels as f64 + t.clamp(0.0, 1.0) * (b.labels - a.labels) as f64
        })
    })
}

/// Runs every strategy's rounds; random seeds are averaged round by round.
#[allow(clippy::too_many_arguments)]
pub fn run(
    project: &Project,
    store: &Store,
    cases: &Cases,
    run: i64,
    params: &QueueParams,
    strategies: &[Strategy],
    diversity: Option<&Diversity>,
    opts: &RoundOptions,
    say: &dyn Fn(&str),
) -> Result<RoundsReport> {
    if project.config.train.command.is_none() {
        return Err(SimulateError::NoTrainCommand);
    }
    let keys: HashMap<i64, String> = store
        .image_briefs(&Filter::default())?
        .into_iter()
        .map(|b| (b.id, b.key))
        .collect();
    let base: PathBuf = project
        .root
        .join(STATE_DIR)
        .join("simulate")
        .join(crate::store::now_ms().to_string());
    let mut curves: Vec<Curve> = Vec::new();
    let mut random: Vec<Vec<Point>> = Vec::new();
    for s in strategies {
        let dir = base.join(match s {
            Strategy::Random(seed) => format!("random-{seed}"),
            other => other.name(),
        });
        let points = one(
            project, &dir, store, cases, &keys, *s, params, diversity, opts, say,
        )?;
        match s {
            Strategy::Random(_) => random.push(points),
            other => curves.push(Curve {
                strategy: other.name(),
                points,
                labels_to_random_final: None,
            }),
        }
    }
    let seeds = random.len();
    if let Some(first) = random.first() {
        let points = (0..first.len())
            .map(|i| Point {
                labels: first[i].labels,
                ap50: random
                    .iter()
                    .filter_map(|p| p.get(i))
                    .map(|p| p.ap50)
                    .sum::<f64>()
                    / seeds as f64,
            })
            .collect();
        curves.push(Curve {
            strategy: "random".into(),
            points,
            labels_to_random_final: None,
        });
    }
    let random_final = curves
        .iter()
        .find(|c| c.strategy == "random")
        .and_then(|c| c.points.last().cloned());
    if let Some(target) = &random_final {
        for c in &mut curves {
            c.labels_to_random_final = labels_to_reach(&c.points, target.ap50);
        }
    }
    Ok(RoundsReport {
        run,
        images: cases.ids.len(),
        batch: opts.batch,
        seeds,
        curves,
        random_final,
    })
}

/// Prints the report; its errors are the terminal's own, so a reader gone away (`| head`) stays
/// a broken pipe.
pub fn print(r: &RoundsReport, json: bool) -> std::io::Result<()> {
    if json {
        outln!("{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    outln!(
        "AP@0.5 against the truth of {} images after each round of {} labels (round 0: model run {}; random: mean of {} seeds)",
        r.images,
        r.batch,
        r.run,
        r.seeds
    )?;
    let head: Vec<String> = r
        .curves
        .iter()
        .map(|c| format!("{:>20}", c.strategy))
        .collect();
    outln!("{:>8}{}", "labels", head.join(""))?;
    let rows = r.curves.iter().map(|c| c.points.len()).max().unwrap_or(0);
    for i in 0..rows {
        let labels = r
            .curves
            .iter()
            .find_map(|c| c.points.get(i))
            .map(|p| p.labels)
            .unwrap_or(0);
        let cells: Vec<String> = r
            .curves
            .iter()
            .map(|c| {
                let v = c.points.get(i).map(|p| format!("{:.4}", p.ap50));
                format!("{:>20}", v.unwrap_or_default())
            })
            .collect();
        outln!("{labels:>8}{}", cells.join(""))?;
    }
    if let Some(target) = &r.random_final {
        outln!(
            "labels to reach random's final AP@0.5 {:.4} ({} labels):",
            target.ap50,
            target.labels
        )?;
        for c in &r.curves {
            let line = match c.labels_to_random_final {
                Some(n) => format!(
                    "{n:.1} ({:.0}% of random's)",
                    100.0 * n / (target.labels.max(1)) as f64
                ),
                None => "not reached".into(),
            };
            outln!("  {:<26}{line}", c.strategy)?;
        }
    }
    let ys: Vec<Vec<f64>> = r
        .curves
        .iter()
        .map(|c| c.points.iter().map(|p| p.ap50).collect())
        .collect();
    let marks = "12345abcdefghij";
    let series: Vec<plot::Series> = r
        .curves
        .iter()
        .zip(&ys)
        .enumerate()
        .map(|(i, (c, ys))| plot::Series {
            mark: if c.strategy == "random" {
                '.'
            } else {
                marks.chars().nth(i).unwrap_or('*')
            },
            name: &c.strategy,
            ys,
        })
        .collect();
    outln!("")?;
    let last = r
        .curves
        .iter()
        .filter_map(|c| c.points.last())
        .map(|p| p.labels)
        .max()
        .unwrap_or(0);
    let (mid, end) = ((last / 2).to_string(), last.to_string());
    for line in plot::render(&series, 50, 11, ["0", &mid, &end], "labels", "AP@0.5") {
        outln!("{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_is_linear_between_rounds() {
        let p = |labels, ap50| Point { labels, ap50 };
        let pts = [p(0, 0.1), p(10, 0.3), p(20, 0.7)];
        assert_eq!(labels_to_reach(&pts, 0.05), Some(0.0));
        assert!((labels_to_reach(&pts, 0.5).unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(labels_to_reach(&pts, 0.8), None);
    }
}

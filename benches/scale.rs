//! Cost at scale: `cargo bench --bench scale -- [N ...]` (default 10000 30000 100000).
//!
//! For each N, builds a detection project of N images with three predictions each (one imported
//! model run, as `termtag import --as predictions` writes it) and 5% of the images reviewed with
//! a label, through the store API. No image files: none of the measured paths opens one.
//!
//! Each step then runs in a fresh process (this binary again, `--child STEP DIR`), so that its
//! time and peak memory (VmHWM) are its own:
//! - `first frame`: what the review screen loads before it can show an image: open the store,
//!   the class names, the queue query, the first image's labels and proposals;
//! - `m`: ranking again by the next metric (the review screen's `m` key), median of 5;
//! - `filter`: the queue for a filter typed after `/` (`class=b`, `name=img00001*`), median of 3;
//! - `stats`: the counts of `termtag stats`; `export`: the latest predictions as a data set;
//! - `termtag queue --limit 5` and `termtag stats`: the real binary, wall time (peak memory through
//!   /usr/bin/time when it exists).
//!
//! Prints one table row per step and size: wall time and CPU time (the process's own, from
//! /proc/self/schedstat, or user + system for the binary), which on a busy machine is what the
//! step would take on an idle one. Asserts nothing.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use termtag::model::{BBox, Dataset, ImageLabels, Label, Task};
use termtag::project::Project;
use termtag::store::NewImage;
use termtag::tui::app::{StoreCtx, store_effect};
use termtag::tui::state::{Effect, Msg};

const CLASSES: [&str; 3] = ["a", "b", "c"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 30_000, 100_000];
    }
    println!("| images | step | time | CPU time | peak memory |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        build(dir.path(), n);
        row(
            n,
            "build (setup)",
            t.elapsed().as_secs_f64() * 1e3,
            None,
            None,
        );
        for step in [
            "first-frame",
            "m",
            "filter-class",
            "filter-name",
            "stats",
            "export",
        ] {
            let (ms, cpu, kb) = run_child(step, dir.path());
            row(n, step, ms, Some(cpu), Some(kb));
        }
        for cmd in [&["queue", "--limit", "5"][..], &["stats"][..]] {
            let (ms, cpu, kb) = run_binary(dir.path(), cmd);
            row(n, &format!("termtag {}", cmd.join(" ")), ms, cpu, kb);
        }
    }
}

fn row(n: usize, step: &str, ms: f64, cpu: Option<f64>, kb: Option<u64>) {
    let mem = kb.map_or("-".to_string(), |kb| format!("{} MB", kb / 1024));
    let cpu = cpu.map_or("-".to_string(), |c| format!("{c:.0} ms"));
    println!("| {n} | {step} | {ms:.0} ms | {cpu} | {mem} |");
}

/// splitmix64, so every run builds the same project.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }
}

fn key(i: usize) -> String {
    format!("d{:03}/img{i:07}.jpg", i % 100)
}

fn build(dir: &Path, n: usize) {
    let src = dir.join("images");
    std::fs::create_dir_all(&src).expect("mkdir");
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    let project =
        Project::init(dir, Task::Detect, &classes, Some(src.to_str().unwrap())).expect("init");
    let mut store = project.store().expect("store");
    let images: Vec<NewImage> = (0..n)
        .map(|i| NewImage {
            key: key(i),
            width: 4240,
            height: 2832,
            orientation: 1,
            size: 3_000_000,
            error: None,
        })
        .collect();
    store.add_images(&images).expect("add images");
    let mut rng = Rng(7);
    let mut boxed = |class: usize, score: Option<f64>| {
        let (x, y) = (rng.unit() * 0.8, rng.unit() * 0.8);
        Label {
            class: CLASSES[class % 3].to_string(),
            bbox: Some(BBox {
                x0: x,
                y0: y,
                x1: x + 0.1,
                y1: y + 0.1,
            }),
            score,
        }
    };
    let mut scores = Rng(11);
    let predictions = Dataset {
        classes: classes.clone(),
        images: (0..n)
            .map(|i| ImageLabels {
                key: key(i),
                width: 4240,
                height: 2832,
                labels: (0..3)
                    .map(|k| boxed(i + k, Some(0.05 + 0.95 * scores.unit())))
                    .collect(),
            })
            .collect(),
    };
    store
        .import_predictions(&predictions, "bench-results.json", "import:coco")
        .expect("import predictions");
    let reviewed = Dataset {
        classes,
        images: (0..n)
            .step_by(20)
            .map(|i| ImageLabels {
                key: key(i),
                width: 4240,
                height: 2832,
                labels: vec![boxed(i, None)],
            })
            .collect(),
    };
    store
        .import_labels(&reviewed, "bench-labels.json")
        .expect("import labels");
}

/// Runs one step in a fresh process; returns its time and CPU time (ms) and peak memory (kB).
fn run_child(step: &str, dir: &Path) -> (f64, f64, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(["--child", step])
        .arg(dir)
        .output()
        .expect("run child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{step} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut it = text.split_whitespace();
    let ms = it.next().and_then(|s| s.parse().ok()).expect("time");
    let cpu = it.next().and_then(|s| s.parse().ok()).expect("cpu time");
    let kb = it.next().and_then(|s| s.parse().ok()).expect("memory");
    (ms, cpu, kb)
}

/// The real binary in the project folder: wall time, and CPU time and peak memory when
/// /usr/bin/time exists.
fn run_binary(dir: &Path, args: &[&str]) -> (f64, Option<f64>, Option<u64>) {
    let bin = env!("CARGO_BIN_EXE_termtag");
    let gnu_time = Path::new("/usr/bin/time").is_file();
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "maxrss_kb=%M cpu_s=%U+%S", bin]);
        c
    } else {
        Command::new(bin)
    };
    let t = Instant::now();
    let out = cmd
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run termtag");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "termtag {args:?} failed: {err}");
    let line = err.lines().find_map(|l| l.strip_prefix("maxrss_kb="));
    let kb = line.and_then(|l| l.split_whitespace().next()?.parse().ok());
    let cpu = line.and_then(|l| {
        let (u, s) = l.split_once("cpu_s=")?.1.trim().split_once('+')?;
        Some((u.parse::<f64>().ok()? + s.parse::<f64>().ok()?) * 1e3)
    });
    (ms, cpu, kb)
}

/// CPU time this process has run, in ms (the scheduler's own count, in ns).
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wall and CPU time since a [`mark`], in ms.
#[derive(Clone, Copy)]
struct Mark(Instant, f64);

fn mark() -> Mark {
    Mark(Instant::now(), cpu_ms())
}

fn ms_since(t: Mark) -> (f64, f64) {
    (t.0.elapsed().as_secs_f64() * 1e3, cpu_ms() - t.1)
}

/// Medians of wall and CPU times.
fn medians(v: Vec<(f64, f64)>) -> (f64, f64) {
    (
        median(v.iter().map(|x| x.0).collect()),
        median(v.iter().map(|x| x.1).collect()),
    )
}

/// One step, in this process: prints "time_ms peak_kb".
fn child(step: &str, dir: &Path) {
    let t = mark();
    let project = Project::load(dir).expect("load project");
    let mut store = project.store().expect("store");
    let classes = store.class_names().expect("classes");
    let ctx = StoreCtx::for_project(&project, classes.len());
    let metric = ctx.queue.metric;
    let query = |store: &mut termtag::store::Store, filter: &str, metric| match store_effect(
        store,
        &ctx,
        Effect::Query {
            filter: filter.to_string(),
            metric,
        },
    ) {
        Some(Msg::Queue(items)) => items,
        other => panic!("query {filter:?}: {other:?}"),
    };
    let (ms, cpu) = match step {
        "first-frame" => {
            let items = query(&mut store, "", metric);
            let first = items.first().expect("a queue").id;
            match store_effect(&mut store, &ctx, Effect::Load { id: first }) {
                Some(Msg::Loaded { .. }) => {}
                other => panic!("load: {other:?}"),
            }
            ms_since(t)
        }
        "m" => {
            query(&mut store, "", metric);
            let mut m = metric;
            medians(
                (0..5)
                    .map(|_| {
                        m = m.next();
                        let t = mark();
                        query(&mut store, "", m);
                        ms_since(t)
                    })
                    .collect(),
            )
        }
        "filter-class" | "filter-name" => {
            query(&mut store, "", metric);
            let filter = if step == "filter-class" {
                "class=b"
            } else {
                "name=img00001*"
            };
            medians(
                (0..3)
                    .map(|i| {
                        // Alternate with the full queue, as a user clearing the filter would.
                        if i > 0 {
                            query(&mut store, "", metric);
                        }
                        let t = mark();
                        query(&mut store, filter, metric);
                        ms_since(t)
                    })
                    .collect(),
            )
        }
        "stats" => {
            let t = mark();
            store.stats().expect("stats");
            ms_since(t)
        }
        "export" => {
            let t = mark();
            store.dataset(true).expect("dataset");
            ms_since(t)
        }
        other => panic!("unknown step {other}"),
    };
    println!("{ms:.1} {cpu:.1} {}", peak_kb());
}

//! End to end: the real binary in tmux, keys sent with `send-keys`, the screen read with
//! `capture-pane`, the store checked afterwards — including a `kill -9` in the middle.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};
use termtag::rng::SplitMix;

use common::tmux::Tmux;
use common::{Fixture, write_image};

fn project() -> Fixture {
    project_with(
        "a.png,knot,0.1,0.3,0.1,0.3,80,120,,0.9,0.6\n\
         a.png,defect,0.5,0.9,0.5,0.9,80,120,,0.6,0.6\n\
         b.png,knot,0.2,0.4,0.2,0.4,80,120,,0.8,0.8\n",
    )
}

/// Three 120×80 images, a.png to c.png, with these ALD CSV rows as predictions.
fn project_with(rows: &str) -> Fixture {
    let f = Fixture::new();
    for name in ["a.png", "b.png", "c.png"] {
        write_image(&f.images().join(name), 120, 80);
    }
    detect_with_predictions(&f, rows);
    f
}

/// A detect project (knot, defect) over the fixture's images, with these ALD CSV rows imported
/// as predictions.
fn detect_with_predictions(f: &Fixture, rows: &str) {
    f.init_detect("knot,defect", true);
    f.write(
        "totag.csv",
        &format!(
            "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n{rows}"
        ),
    );
    f.ok(&[
        "import",
        "totag.csv",
        "--format",
        "ald-csv",
        "--as",
        "predictions",
    ]);
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn review_in_tmux_and_survive_kill_9() {
    let f = project();
    let t = Tmux::new("review");
    t.start(&f);
    t.wait_for("REVIEW");
    // The queue arrives from the store worker a moment after the first frame.
    t.wait_for("image 1/3");
    let s = t.wait_for("proposal");
    assert!(s.contains("knot") && s.contains("0.90"), "{s}");

    // Accept a.png as shown: both proposals become labels and the queue moves on.
    t.keys(&["Enter"]);
    t.wait_for("image 2/3");
    assert_eq!(
        f.count("SELECT count(*) FROM annotation a JOIN image i ON i.id = a.image_id WHERE i.key = 'a.png'"),
        2
    );
    // b.png: delete its proposal and draw a box (w, corner, move, corner).
    t.keys(&[
        "x", "w", "Space", "l", "l", "l", "j", "j", "j", "Space", "2",
    ]);
    wait_until("the drawn box in the store", || {
        f.count("SELECT count(*) FROM annotation a JOIN image i ON i.id = a.image_id JOIN class c ON c.id = a.class_id WHERE i.key = 'b.png' AND c.name = 'defect' AND a.origin = 'human'") == 1
    });
    let s = t.screen();
    assert!(s.contains("defect") && s.contains("label"), "{s}");

    // kill -9 in the middle: everything shown as done is in the store.
    let pid = t.termtag_pid();
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    t.wait_for("termtag-exit=137");
    assert_eq!(
        f.count("SELECT count(*) FROM image WHERE key = 'a.png' AND status = 'reviewed'"),
        1
    );
    assert_eq!(f.count("SELECT count(*) FROM annotation"), 3);

    // Restart, in a fresh tmux server (killing and reusing one races its exit): the store
    // opens cleanly and the screen comes back with the work in it.
    drop(t);
    let t = Tmux::new("restart");
    t.start(&f);
    t.wait_for("REVIEW");
    // The unreviewed b.png leads the queue now, with the box drawn before the kill (its name
    // shows with the queue, its labels a moment later, when the store worker has loaded them).
    t.wait_for("b.png");
    let s = t.wait_for("defect");
    assert!(s.contains("b.png"), "{s}");
    // Help and quit.
    t.keys(&["?"]);
    t.wait_for("keys (Esc closes)");
    t.keys(&["Escape", "q"]);
    t.wait_for("termtag-exit=0");
}

#[test]
fn graphics_query_does_not_eat_the_first_key() {
    let f = project();
    let t = Tmux::new("query");
    // Auto detection asks the terminal (tmux here) what it can show.
    t.start_with(&f, "");
    t.wait_for("image 1/3");
    t.keys(&["]"]);
    t.wait_for("image 2/3");
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");
}

#[test]
fn pull_review_and_push_with_the_keys() {
    let f = Fixture::new();
    // A shared folder as the team's remote, holding three images.
    for name in ["a.png", "b.png", "c.png"] {
        write_image(&f.path("remote/activelearningimages").join(name), 64, 48);
    }
    f.init_detect("knot", false);
    let toml = f.read("proj/termtag.toml");
    f.write(
        "proj/termtag.toml",
        &format!(
            "{toml}\n[remote]\nfolder = \"{}\"\n",
            f.path("remote").display()
        ),
    );
    let t = Tmux::new("sync");
    t.start(&f);
    t.wait_for("REVIEW");
    t.keys(&["F"]);
    t.wait_for("pulled 3 images");
    t.wait_for("image 1/3");
    assert_eq!(f.count("SELECT count(*) FROM claim"), 3);
    t.keys(&["e"]);
    t.wait_for("image 2/3");
    t.keys(&["P"]);
    t.wait_for("pushed 1 images");
    let batches = std::fs::read_dir(f.path("remote/activelearninglabels/termtag/batches"))
        .unwrap()
        .count();
    assert_eq!(batches, 1);
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");
}

/// Polls the store until the pane no longer shows pending writes.
fn settled(t: &Tmux) -> String {
    let start = Instant::now();
    loop {
        let s = t.screen();
        if !s.contains("saving") {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "writes never committed:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rows of an ALD CSV export: (file, class, xmin, xmax, ymin, ymax).
fn csv_boxes(text: &str) -> Vec<(String, String, [f64; 4])> {
    let mut out: Vec<_> = text
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let n = |i: usize| c[i].parse::<f64>().unwrap();
            (c[0].to_string(), c[1].to_string(), [n(2), n(3), n(4), n(5)])
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    out
}

fn assert_boxes(got: &[(String, String, [f64; 4])], want: &[(&str, &str, [f64; 4])]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str()), (w.0, w.1), "{got:?}");
        for (a, b) in g.2.iter().zip(w.2) {
            assert!((a - b).abs() < 1e-9, "{got:?} != {want:?}");
        }
    }
}

#[test]
fn dismiss_and_move_stay_through_back_forth_restart_and_export() {
    let f = project();
    let t = Tmux::new("decide");
    t.start(&f);
    t.wait_for("image 1/3");
    let s = t.wait_for("proposal");
    assert!(s.contains("a.png"), "{s}");
    // Dismiss the best proposal (knot 0.90): said once the store has it.
    t.keys(&["x"]);
    t.wait_for("dismissed knot 0.90 on a.png");
    // The defect proposal is selected now: nudge it right (2% of the width).
    t.keys(&["l"]);
    settled(&t);
    t.keys(&["]"]);
    t.wait_for("image 2/3");
    t.keys(&["["]);
    t.wait_for("image 1/3");
    let s = t.wait_for("accepted");
    assert!(
        !s.contains("proposal"),
        "the decided proposals came back:\n{s}"
    );
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");
    drop(t);

    // After a restart the image shows the moved box alone.
    let t = Tmux::new("decide2");
    t.start(&f);
    t.wait_for("image 1/3");
    for _ in 0..3 {
        if t.wait_for("boxes").contains("a.png") {
            break;
        }
        t.keys(&["]"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = t.wait_for("accepted");
    assert!(s.contains("a.png") && !s.contains("proposal"), "{s}");
    t.keys(&["Enter"]);
    t.wait_for("a.png accepted");
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");

    f.ok(&["export", "--format", "ald-csv", "labels.csv"]);
    assert_boxes(
        &csv_boxes(&f.read("labels.csv")),
        &[("a.png", "defect", [0.52, 0.92, 0.5, 0.9])],
    );
    f.ok(&[
        "export",
        "--format",
        "ald-csv",
        "--predictions",
        "predictions.csv",
    ]);
    // a.png has no prediction left to review (the NULL row says so); b.png keeps its own.
    assert_boxes(
        &csv_boxes(&f.read("predictions.csv")),
        &[
            ("a.png", "NULL", [0.0, 0.0, 0.0, 0.0]),
            ("b.png", "knot", [0.2, 0.4, 0.2, 0.4]),
        ],
    );
    let stats = f.ok(&["stats"]);
    assert!(
        stats.contains("proposals: 1 open (score ≥ 0.5), 1 dismissed, 1 superseded by labels"),
        "{stats}"
    );
    let queue = f.ok(&["queue"]);
    assert!(
        queue.contains("b.png") && !queue.contains("a.png"),
        "{queue}"
    );
}

#[test]
fn sighup_with_pending_edits_saves_them_then_exits() {
    let f = project();
    let t = Tmux::new("hup");
    t.start(&f);
    t.wait_for("image 1/3");
    t.wait_for("proposal");
    // Hold the store's write lock, so the edits wait in the worker.
    let lock = f.db();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    t.keys(&["x", "l", "Enter"]);
    t.wait_for("saving 3");
    let pid = t.termtag_pid();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        f.count("SELECT count(*) FROM prediction WHERE decision IS NOT NULL"),
        0
    );
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    // It exits as SIGHUP would have, after the writes.
    t.wait_for("termtag-exit=129");
    assert_eq!(
        f.count("SELECT count(*) FROM image WHERE key = 'a.png' AND status = 'reviewed'"),
        1
    );
    assert_eq!(
        f.count("SELECT count(*) FROM prediction WHERE decision = 'dismissed'"),
        1
    );
    assert_eq!(
        f.count("SELECT count(*) FROM prediction WHERE decision = 'superseded'"),
        1
    );
    assert_eq!(
        f.count("SELECT count(*) FROM annotation a JOIN image i ON i.id = a.image_id WHERE i.key = 'a.png' AND abs(a.x0 - 0.52) < 1e-9"),
        1
    );
}

/// What a screen showed as done.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Done {
    Accepted(String),
    Dismissed { image: String, class: String },
}

fn done_on(screen: &str) -> Vec<Done> {
    let mut out = Vec::new();
    for line in screen.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if w.starts_with("img")
                && w.ends_with(".png")
                && words.get(i + 1).map(|s| s.trim_end_matches(':')) == Some("accepted")
            {
                out.push(Done::Accepted(w.to_string()));
            }
            // "dismissed knot 0.90 on img07.png"
            if *w == "dismissed"
                && words.get(i + 3) == Some(&"on")
                && let (Some(class), Some(image)) = (words.get(i + 1), words.get(i + 4))
            {
                out.push(Done::Dismissed {
                    image: image.to_string(),
                    class: class.to_string(),
                });
            }
        }
    }
    out
}

/// `kill -9` at seeded random moments of a review (right after a keystroke too): the store
/// stays sound and everything a screen showed as done is in it. `TERMTAG_KILL_TRIALS` and
/// `TERMTAG_KILL_SEED` run more or other trials (README, "Testing").
#[test]
fn kill_9_at_random_moments_keeps_what_was_shown_done() {
    let trials: u64 = std::env::var("TERMTAG_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("TERMTAG_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let f = Fixture::new();
    let n = 40;
    let mut rows = String::new();
    for i in 0..n {
        write_image(&f.images().join(format!("img{i:02}.png")), 32, 24);
        rows.push_str(&format!(
            "img{i:02}.png,knot,0.1,0.3,0.1,0.3,24,32,,0.9,0.7\nimg{i:02}.png,defect,0.5,0.9,0.5,0.9,24,32,,0.7,0.7\n"
        ));
    }
    detect_with_predictions(&f, &rows);
    let keys = ["x", "x", "x", "Enter", "Enter", "Enter", "l", "l", "]", "["];
    let mut rng = SplitMix(seed);
    let mut shown: Vec<Done> = Vec::new();
    for trial in 0..trials {
        let t = Tmux::new(&format!("kill{trial}"));
        t.start(&f);
        t.wait_for("image 1/");
        let presses = 1 + rng.below(12);
        let right_after_key = rng.below(3) == 0;
        for p in 0..presses {
            t.keys(&[keys[rng.below(keys.len() as u64) as usize]]);
            let last = p + 1 == presses;
            if last && right_after_key {
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            shown.extend(done_on(&t.screen()));
        }
        let pid = t.termtag_pid();
        Command::new("kill").args(["-9", &pid]).status().unwrap();
        // The killed screen leaves the terminal as it was, so the shell's exit line may wrap:
        // wait for the process instead.
        wait_until("termtag to die", || {
            !Command::new("kill")
                .args(["-0", &pid])
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        });
        drop(t);

        let db = f.db();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "trial {trial}");
        shown.sort();
        shown.dedup();
        for d in &shown {
            let n = match d {
                Done::Accepted(image) => f.count(&format!(
                    "SELECT count(*) FROM image WHERE key = '{image}' AND status = 'reviewed'"
                )),
                Done::Dismissed { image, class } => f.count(&format!(
                    "SELECT count(*) FROM prediction p JOIN image i ON i.id = p.image_id
                     JOIN class c ON c.id = p.class_id
                     WHERE i.key = '{image}' AND c.name = '{class}' AND p.decision = 'dismissed'"
                )),
            };
            assert_eq!(
                n, 1,
                "trial {trial} (seed {seed}): shown as done, not stored: {d:?}"
            );
        }
        // No box shows twice: an open proposal never sits on a label of its class.
        assert_eq!(
            f.count(
                "SELECT count(*) FROM prediction p JOIN annotation a ON a.image_id = p.image_id
                 AND a.class_id = p.class_id AND a.x0 = p.x0 AND a.y0 = p.y0
                 WHERE p.decision IS NULL"
            ),
            0,
            "trial {trial}"
        );
    }
    eprintln!(
        "{trials} kill -9 trials (seed {seed}): {} actions shown done, all stored",
        shown.len()
    );
    assert!(
        shown.iter().any(|d| matches!(d, Done::Accepted(_)))
            && shown.iter().any(|d| matches!(d, Done::Dismissed { .. })),
        "the trials never showed an action done: {shown:?}"
    );
}

#[test]
fn triage_keys_alone_review_a_pre_labelled_project() {
    // The queue: b.png (least confidence 0.7), a.png (0.45), c.png (0.05). b.png's 0.3 box is
    // under the 0.5 threshold: not shown.
    let f = project_with(
        "a.png,knot,0.1,0.3,0.1,0.3,80,120,,0.9,0.6\n\
         a.png,defect,0.5,0.9,0.5,0.9,80,120,,0.55,0.6\n\
         b.png,knot,0.2,0.4,0.2,0.4,80,120,,0.85,0.6\n\
         b.png,knot,0.6,0.8,0.6,0.8,80,120,,0.3,0.6\n\
         c.png,knot,0.3,0.6,0.3,0.6,80,120,,0.95,0.9\n",
    );
    // Score and box-count filters, before the review.
    let list = |filter: &str| f.ok(&["images", "list", "--filter", filter]);
    let keys = |out: String| -> Vec<String> {
        out.lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(list("score=0.25..0.35")), vec!["b.png"]);
    assert_eq!(keys(list("score=0.9..")), vec!["a.png", "c.png"]);
    let queue = f.ok(&["queue", "--filter", "boxes=2.."]);
    assert!(
        queue.contains("a.png") && !queue.contains("b.png"),
        "{queue}"
    );
    let queue = f.ok(&["queue", "--filter", "score=0.5..0.6"]);
    assert!(
        queue.contains("a.png") && !queue.contains("c.png"),
        "{queue}"
    );

    let t = Tmux::new("triage");
    t.start(&f);
    t.wait_for("image 1/3");
    let s = t.wait_for("0.85");
    assert!(s.contains("b.png"), "{s}");
    // Walk: accept b.png's only proposal; the walk reviews it and goes on to a.png.
    t.keys(&["p", "a"]);
    t.wait_for("b.png reviewed: its last proposal is decided");
    t.wait_for("0.55");
    // a.png: dismiss what scores under 0.60, accept what scores at least 0.80.
    t.keys(&["X"]);
    t.wait_for("dismissed 1 proposals < 0.60 on a.png");
    t.keys(&["A"]);
    t.wait_for("a.png reviewed: its last proposal is decided");
    t.wait_for("0.95");
    // c.png: repeat a.png's box, make the copy a defect, accept the model's knot.
    t.keys(&["r"]);
    t.wait_for("copied 1 boxes of a.png");
    t.keys(&["2", "a"]);
    t.wait_for("c.png reviewed: its last proposal is decided: end of the queue");
    settled(&t);
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");

    f.ok(&["export", "--format", "ald-csv", "labels.csv"]);
    assert_boxes(
        &csv_boxes(&f.read("labels.csv")),
        &[
            ("a.png", "knot", [0.1, 0.3, 0.1, 0.3]),
            ("b.png", "knot", [0.2, 0.4, 0.2, 0.4]),
            ("c.png", "defect", [0.1, 0.3, 0.1, 0.3]),
            ("c.png", "knot", [0.3, 0.6, 0.3, 0.6]),
        ],
    );
    assert_eq!(
        f.count("SELECT count(*) FROM image WHERE status = 'reviewed'"),
        3
    );
    assert_eq!(keys(list("boxes=2")), vec!["c.png"]);
    // The review speed: three images; of four decided proposals three accepted as drawn and
    // one dismissed (the copied box is no model proposal). The time depends on the run.
    let stats = f.ok(&["stats"]);
    let row: Vec<&str> = stats
        .lines()
        .skip_while(|l| !l.starts_with("review speed"))
        .nth(1)
        .unwrap_or_else(|| panic!("no speed row:\n{stats}"))
        .split_whitespace()
        .collect();
    assert_eq!(row.len(), 8, "{stats}");
    assert_eq!((row[0], row[1]), ("tester", "3"), "{stats}");
    assert_eq!(&row[4..], &["75%", "0%", "25%", "0"], "{stats}");
    assert!(
        f.count("SELECT sum(active_ms) FROM review_time WHERE author = 'tester'") > 0,
        "{stats}"
    );
}

#[test]
fn demo_from_an_empty_folder_opens_on_scored_proposals_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let db = || rusqlite::Connection::open(demo.join(".termtag/labels.db")).unwrap();
    let count = |sql: &str| -> i64 { db().query_row(sql, [], |r| r.get(0)).unwrap() };
    let t = Tmux::new("demo");
    // Live with ORT_DYLIB_PATH, else the recorded predictions: either way the same proposals.
    t.run(&format!(
        "demo {} --offline --graphics halfblocks",
        demo.display()
    ));
    t.wait_secs("REVIEW", 300);
    let s = t.wait_for("ranked by least_confidence");
    // The first screen: the least certain board, with a scored knot or defect proposal.
    let scored = s.lines().any(|l| {
        (l.contains("knot") || l.contains("defect"))
            && l.split_whitespace()
                .any(|w| w.starts_with("0.") && w.len() == 4)
    });
    assert!(scored && s.contains("board-0"), "{s}");

    // Dismiss a proposal, accept the board, push the reviewed boards, pull the next batch.
    t.keys(&["Tab", "x"]);
    t.wait_for("dismissed ");
    t.keys(&["Enter"]);
    t.wait_for(" accepted");
    assert_eq!(
        count("SELECT count(*) FROM image WHERE status = 'reviewed'"),
        21
    );
    t.keys(&["P"]);
    let s = t.wait_for("pushed ");
    assert!(s.contains("pushed 21 images"), "{s}");
    t.keys(&["F"]);
    let s = t.wait_for("pulled ");
    assert!(
        s.contains("pulled 40 images (") && s.contains("0 unclaimed left"),
        "{s}"
    );
    assert_eq!(count("SELECT count(*) FROM image"), 100);
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");
    drop(t);

    // --reset starts over: the first batch again, 20 labelled, nothing pushed.
    let out = Command::new(env!("CARGO_BIN_EXE_termtag"))
        .args(["demo", demo.to_str().unwrap(), "--reset", "--offline"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("reset: removed the demo"),
        "{said}"
    );
    assert_eq!(count("SELECT count(*) FROM image"), 60);
    assert_eq!(
        count("SELECT count(*) FROM image WHERE status = 'reviewed'"),
        20
    );
    let done = demo.join("remote/activelearninglabels/termtag/done");
    assert!(!done.exists(), "the pushed batch survived --reset");
}

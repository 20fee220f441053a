//! `termtag simulate` end to end: the replay on a hand-computable case, seeded random orders,
//! and the round loop with a stub trainer that writes a known model (that one needs
//! ORT_DYLIB_PATH, as predict does: run scripts/test.sh).

mod common;

use common::{Fixture, need_runtime, onnx_fixture as model, write_image};
use serde_json::Value;

/// Four 64×64 images; classes x, y. Truth (pixels):
/// a: x [0,0,32,32];  b: x [0,0,32,32] and x [32,32,32,32];  c: y [0,0,32,32];  d: nothing.
/// Predictions (shown from 0.5, ranked from 0.05):
/// a: x [0,0,32,32] 0.9                     → no mistake
/// b: x [0,0,32,32] 0.6                     → 1 missed
/// c: x [0,0,32,32] 0.7, y [40,40,20,20] 0.55 → 1 wrong class, 1 false positive
/// d: x [10,10,20,20] 0.3 (not shown)       → no mistake
const TRUTH: &str = r#"{"images":[
 {"id":1,"file_name":"a.png","width":64,"height":64},{"id":2,"file_name":"b.png","width":64,"height":64},
 {"id":3,"file_name":"c.png","width":64,"height":64},{"id":4,"file_name":"d.png","width":64,"height":64}],
 "annotations":[
 {"id":1,"image_id":1,"category_id":1,"bbox":[0,0,32,32],"area":1024,"iscrowd":0},
 {"id":2,"image_id":2,"category_id":1,"bbox":[0,0,32,32],"area":1024,"iscrowd":0},
 {"id":3,"image_id":2,"category_id":1,"bbox":[32,32,32,32],"area":1024,"iscrowd":0},
 {"id":4,"image_id":3,"category_id":2,"bbox":[0,0,32,32],"area":1024,"iscrowd":0}],
 "categories":[{"id":1,"name":"x"},{"id":2,"name":"y"}]}"#;

const PREDICTIONS: &str = r#"[
 {"image_id":"a.png","category_id":1,"bbox":[0,0,32,32],"score":0.9},
 {"image_id":"b.png","category_id":1,"bbox":[0,0,32,32],"score":0.6},
 {"image_id":"c.png","category_id":1,"bbox":[0,0,32,32],"score":0.7},
 {"image_id":"c.png","category_id":2,"bbox":[40,40,20,20],"score":0.55},
 {"image_id":"d.png","category_id":1,"bbox":[10,10,20,20],"score":0.3}]"#;

fn tiny() -> Fixture {
    let fx = Fixture::new();
    for k in ["a", "b", "c", "d"] {
        write_image(&fx.images().join(format!("{k}.png")), 64, 64);
    }
    fx.init_detect("x,y", true);
    fx.write("truth.json", TRUTH);
    let preds = fx.write("preds.json", PREDICTIONS);
    fx.ok(&[
        "import",
        preds.to_str().unwrap(),
        "--format",
        "coco",
        "--as",
        "predictions",
    ]);
    fx
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn line<'a>(report: &'a Value, strategy: &str) -> &'a Value {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["strategy"] == strategy)
        .unwrap_or_else(|| panic!("no {strategy} in {report}"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn replay_by_hand() {
    let fx = tiny();
    let truth = fx.path("truth.json");
    let args = [
        "simulate",
        "--truth",
        truth.to_str().unwrap(),
        "--format",
        "coco",
        "--metric",
        "least_confidence,mean_confidence",
        "--json",
    ];
    let r = json(&fx.ok(&args));
    assert_eq!(r["images"], 4);
    assert_eq!(
        r["mistakes"],
        serde_json::json!({"missed": 1, "false_positive": 1, "wrong_class": 1})
    );
    // least confidence (1 − lowest score ≥ 0.05): d 0.7, c 0.45, b 0.4, a 0.1.
    // Mistakes in that order: 0, 2, 1, 0 of 3. 10% and 20% of 4 images are 1 image (d), 50% two.
    let lc = line(&r, "least_confidence");
    let third = 1.0 / 3.0;
    assert_eq!(floats(&lc["curve"]), vec![0.0, 0.0, 2.0 * third, 1.0, 1.0]);
    assert_eq!(floats(&lc["found"]), vec![0.0, 0.0, 2.0 * third]);
    // mean confidence (1 − mean): d 0.7, b 0.4, c 1 − 1.25/2 = 0.375, a 0.1: 0, 1, 2, 0.
    let mc = line(&r, "mean_confidence");
    assert_eq!(floats(&mc["curve"]), vec![0.0, 0.0, third, 1.0, 1.0]);
    // Random, 10 seeds: every order ends with all found; the ratio is over random's share.
    let rnd = line(&r, "random");
    let rc = floats(&rnd["curve"]);
    assert_eq!(rc.len(), 5);
    assert!((rc[4] - 1.0).abs() < 1e-12 && rc[0] == 0.0);
    assert!(rc.windows(2).all(|w| w[0] <= w[1]), "{rc:?}");
    let rf = floats(&rnd["found"]);
    let ratio = lc["ratio"][2].as_f64().unwrap();
    assert!((ratio - 2.0 * third / rf[2]).abs() < 1e-12);

    // The same truth as reviewed labels gives the same replay.
    fx.ok(&["import", truth.to_str().unwrap(), "--format", "coco"]);
    let again = json(&fx.ok(&["simulate", "--metric", "least_confidence", "--json"]));
    assert_eq!(line(&again, "least_confidence")["curve"], lc["curve"]);

    // The table and the plot.
    let out = fx.ok(&["simulate"]);
    assert!(
        out.contains("3 mistakes (1 missed, 1 false positives, 1 wrong classes)"),
        "{out}"
    );
    assert!(out.contains("least_confidence"), "{out}");
    assert!(out.contains("100% |"), "{out}");
    assert!(out.contains(". random"), "{out}");
}

#[test]
fn random_orders_are_seeded() {
    let fx = tiny();
    let truth = fx.path("truth.json");
    let t = truth.to_str().unwrap();
    let run = |seeds: &str| {
        let out = fx.ok(&[
            "simulate", "--truth", t, "--format", "coco", "--seeds", seeds, "--json",
        ]);
        line(&json(&out), "random")["curve"].clone()
    };
    assert_eq!(run("7"), run("7"), "same seeds, same figures");
    // One seed gives whole images found; several average them.
    let one = floats(&run("1"));
    assert!(
        one.iter()
            .all(|v| (v * 3.0 - (v * 3.0).round()).abs() < 1e-9),
        "{one:?}"
    );
    let many: Vec<Value> = (1..=12).map(|s| run(&s.to_string())).collect();
    assert!(many.iter().any(|c| c != &many[0]), "seeds differ");
}

#[test]
fn bad_input_is_one_line() {
    let fx = tiny();
    let e = fx.fails(&["simulate"]);
    assert!(
        e.contains("no model run has predicted a reviewed image") || e.contains("no truth"),
        "{e}"
    );
    let other = fx.write("other.json", &TRUTH.replace(".png", "-elsewhere.png"));
    let e = fx.fails(&[
        "simulate",
        "--truth",
        other.to_str().unwrap(),
        "--format",
        "coco",
    ]);
    assert!(e.contains("names none of this project's images"), "{e}");
}

/// Writes `copy` as the fixture picture `orig` a little brighter (its near-duplicate) and
/// `checks` as a checkerboard of squares an eighth of `w` wide (a picture of its own), all `w` × `h`.
fn near_copies_and_checks(fx: &Fixture, (orig, copy, checks): (&str, &str, &str), w: u32, h: u32) {
    write_image(&fx.images().join(orig), w, h);
    let p = image::open(fx.images().join(orig)).unwrap().to_rgb8();
    let brighter = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb(p.get_pixel(x, y).0.map(|c| c.saturating_add(6)))
    });
    brighter.save(fx.images().join(copy)).unwrap();
    let side = w / 8;
    let board = image::RgbImage::from_fn(w, h, |x, y| {
        let v = if (x / side + y / side).is_multiple_of(2) {
            230
        } else {
            20
        };
        image::Rgb([v, v, v])
    });
    board.save(fx.images().join(checks)).unwrap();
}

/// Near-duplicates: p2 is p a little brighter, q another picture; each holds 2 mistakes (its
/// one prediction is off its one truth box: a false positive and a miss). Least confidence ranks
/// p (0.4), p2 (0.4, ties by id), q (0.3). Counted once per group ({p, p2}, {q}) there are 4
/// mistakes: the plain order finds 2, 2, 4; the diverse one takes q before p2: 2, 4, 4.
#[test]
fn diversity_takes_near_duplicates_in_turns() {
    let fx = Fixture::new();
    near_copies_and_checks(&fx, ("p.png", "p2.png", "q.png"), 64, 64);
    fx.init_detect("x", true);
    let image = |id: u32, name: &str| {
        format!(r#"{{"id":{id},"file_name":"{name}","width":64,"height":64}}"#)
    };
    let truth = fx.write(
        "truth.json",
        &format!(
            r#"{{"images":[{},{},{}],"annotations":[{}],"categories":[{{"id":1,"name":"x"}}]}}"#,
            image(1, "p.png"),
            image(2, "p2.png"),
            image(3, "q.png"),
            (1..=3)
                .map(|i| format!(
                    r#"{{"id":{i},"image_id":{i},"category_id":1,"bbox":[0,0,32,32],"area":1024,"iscrowd":0}}"#
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    let preds = fx.write(
        "preds.json",
        r#"[{"image_id":"p.png","category_id":1,"bbox":[32,32,32,32],"score":0.6},
            {"image_id":"p2.png","category_id":1,"bbox":[32,32,32,32],"score":0.6},
            {"image_id":"q.png","category_id":1,"bbox":[32,32,32,32],"score":0.7}]"#,
    );
    fx.ok(&[
        "import",
        preds.to_str().unwrap(),
        "--format",
        "coco",
        "--as",
        "predictions",
    ]);
    let r = json(&fx.ok(&[
        "simulate",
        "--truth",
        truth.to_str().unwrap(),
        "--format",
        "coco",
        "--metric",
        "least_confidence",
        "--diversity",
        "--json",
    ]));
    assert_eq!(r["groups"], 2, "{r}");
    assert_eq!(r["counted"], "once per near-duplicate group");
    assert_eq!(
        floats(&line(&r, "least_confidence")["curve"]),
        vec![0.0, 0.5, 0.5, 1.0]
    );
    assert_eq!(
        floats(&line(&r, "least_confidence+diverse")["curve"]),
        vec![0.0, 0.5, 1.0, 1.0]
    );
}

/// A detection project (classes a, b) whose `[train] command` is a stub: it records which
/// images each export holds (one line of file names per training, in `proj/calls.log`) and writes
/// the tf_od fixture, whose predictions are known (class a at [0.2, 0.1, 0.6, 0.5] 0.9 and b on
/// the whole picture 0.3, on every image).
fn stub_trainer(fx: &Fixture) {
    fx.init_detect("a,b", true);
    fx.write("proj/labels.txt", "1\ta\n3\tb\n");
    let stub = fx.write(
        "proj/stub-train.sh",
        &format!(
            "#!/bin/sh\n# records the exported images, writes the known model\n\
             echo \"$(grep -o '\"file_name\": *\"[^\"]*\"' \"$1\" | sed 's/.*\"\\([^\"]*\\)\"$/\\1/' | sort | tr '\\n' ' ')\" >> calls.log\n\
             cp '{}' \"$2\"\n",
            model("tf_od.onnx")
        ),
    );
    let toml = fx
        .read("proj/termtag.toml")
        .replace("\n[model]\n", "\n[model]\nlabels = \"labels.txt\"\n")
        .replace(
            "\n[train]\n",
            &format!(
                "\n[train]\ncommand = \"sh {} {{export}} {{model}}\"\n",
                stub.display()
            ),
        );
    fx.write("proj/termtag.toml", &toml);
    assert!(fx.read("proj/termtag.toml").contains("stub-train.sh"));
}

/// The round loop with a stub trainer: it records which images each export holds and writes
/// the tf_od fixture, whose predictions are known (class a at [0.2, 0.1, 0.6, 0.5] 0.9 and b on
/// the whole picture 0.3, on every image). Truth: a on that box in p1 and p2, a elsewhere in p3
/// and p4. AP@0.5 of class a: 0.9 ×4 in image order → TP TP FP FP of 4 truths: 0.5; b has no
/// truth. So every round measures 0.5, and the exports show what each strategy labelled.
#[test]
fn rounds_with_a_stub_trainer() {
    need_runtime();
    let fx = Fixture::new();
    for k in ["p1", "p2", "p3", "p4"] {
        write_image(&fx.images().join(format!("{k}.png")), 256, 128);
    }
    stub_trainer(&fx);
    let hit = "[51.2, 12.8, 102.4, 51.2]";
    let miss = "[0, 64, 64, 64]";
    let ann = |id: u32, bbox: &str| {
        format!(
            r#"{{"id":{id},"image_id":{id},"category_id":1,"bbox":{bbox},"area":1,"iscrowd":0}}"#
        )
    };
    let truth = fx.write(
        "truth.json",
        &format!(
            r#"{{"images":[{}],"annotations":[{},{},{},{}],"categories":[{{"id":1,"name":"a"}},{{"id":2,"name":"b"}}]}}"#,
            (1..=4)
                .map(|i| format!(r#"{{"id":{i},"file_name":"p{i}.png","width":256,"height":128}}"#))
                .collect::<Vec<_>>()
                .join(","),
            ann(1, hit),
            ann(2, hit),
            ann(3, miss),
            ann(4, miss)
        ),
    );
    fx.ok(&["predict", "--model", &model("tf_od.onnx")]);
    let out = fx.ok(&[
        "simulate",
        "--truth",
        truth.to_str().unwrap(),
        "--format",
        "coco",
        "--rounds",
        "2",
        "--batch",
        "2",
        "--train",
        "--json",
    ]);
    let r = json(&out);
    let curves = r["curves"].as_array().unwrap();
    let names: Vec<&str> = curves
        .iter()
        .map(|c| c["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["least_confidence", "random"]);
    for c in curves {
        let labels: Vec<u64> = c["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["labels"].as_u64().unwrap())
            .collect();
        assert_eq!(labels, vec![0, 2, 4]);
        for p in c["points"].as_array().unwrap() {
            assert!((p["ap50"].as_f64().unwrap() - 0.5).abs() < 1e-12, "{p}");
        }
        assert_eq!(c["labels_to_random_final"].as_f64(), Some(0.0));
    }
    // Four trainings: least confidence first (ties in image order: p1 p2, then all), then random.
    let calls = fx.read("proj/calls.log");
    let calls: Vec<&str> = calls.lines().map(str::trim_end).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0], "p1.png p2.png");
    assert_eq!(calls[1], "p1.png p2.png p3.png p4.png");
    assert_eq!(calls[2].split(' ').count(), 2);
    assert_eq!(calls[3], "p1.png p2.png p3.png p4.png");
    // The project itself is untouched: no label, its one model run.
    assert_eq!(
        fx.count("SELECT count(*) FROM image WHERE status = 'reviewed'"),
        0
    );
    assert_eq!(fx.count("SELECT count(*) FROM model_run"), 1);
}

/// The loop's diverse order is the live review queue's for the scratch project as it stands: a
/// labelled picture is reviewed, so its near-duplicate group has had its turn and its copy waits
/// in the next round. a1 and a2 are near-copies (a2 a little brighter), b (checks) and c
/// (stripes) pictures of their own. The stub's model scores every image alike, so least
/// confidence ties in image order: a1 a2 b c; with diversity a1 b c a2. One label a round: the
/// plain order labels a1, then its copy a2; the diverse one a1, then b and c while a2 waits.
#[test]
fn rounds_take_turns_after_a_labelled_copy() {
    need_runtime();
    let fx = Fixture::new();
    near_copies_and_checks(&fx, ("a1.png", "a2.png", "b.png"), 256, 128);
    let stripes = image::RgbImage::from_fn(256, 128, |_, y| {
        let v = if (y / 11) % 3 == 0 { 240 } else { 40 };
        image::Rgb([v, 60, 255 - v])
    });
    stripes.save(fx.images().join("c.png")).unwrap();
    stub_trainer(&fx);
    let names = ["a1", "a2", "b", "c"];
    let truth = fx.write(
        "truth.json",
        &format!(
            r#"{{"images":[{}],"annotations":[{}],"categories":[{{"id":1,"name":"a"}},{{"id":2,"name":"b"}}]}}"#,
            (1..=4)
                .map(|i| format!(
                    r#"{{"id":{i},"file_name":"{}.png","width":256,"height":128}}"#,
                    names[i - 1]
                ))
                .collect::<Vec<_>>()
                .join(","),
            (1..=4)
                .map(|i| format!(
                    r#"{{"id":{i},"image_id":{i},"category_id":1,"bbox":[51.2, 12.8, 102.4, 51.2],"area":1,"iscrowd":0}}"#
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    fx.ok(&["predict", "--model", &model("tf_od.onnx")]);
    let t = truth.to_str().unwrap();
    // The groups the loop uses, as the replay reports them: {a1, a2}, {b}, {c}.
    let replay = json(&fx.ok(&[
        "simulate",
        "--truth",
        t,
        "--format",
        "coco",
        "--metric",
        "least_confidence",
        "--diversity",
        "--json",
    ]));
    assert_eq!(replay["groups"], 3, "{replay}");
    let out = fx.ok(&[
        "simulate",
        "--truth",
        t,
        "--format",
        "coco",
        "--rounds",
        "3",
        "--batch",
        "1",
        "--train",
        "--metric",
        "least_confidence",
        "--diversity",
        "--seeds",
        "1",
        "--json",
    ]);
    let r = json(&out);
    let strategies: Vec<&str> = r["curves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(
        strategies,
        vec!["least_confidence", "least_confidence+diverse", "random"]
    );
    // Nine trainings: three rounds of least confidence, of its diverse twin, then of random.
    let calls = fx.read("proj/calls.log");
    let calls: Vec<&str> = calls.lines().map(str::trim_end).collect();
    assert_eq!(calls.len(), 9, "{calls:?}");
    assert_eq!(
        calls[..3],
        ["a1.png", "a1.png a2.png", "a1.png a2.png b.png"],
        "{calls:?}"
    );
    assert_eq!(
        calls[3..6],
        ["a1.png", "a1.png b.png", "a1.png b.png c.png"],
        "{calls:?}"
    );
}

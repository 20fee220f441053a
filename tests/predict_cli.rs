//! `termtag predict`, `queue`, `eval`, `train` and `doctor` end to end, with the fixture models
//! (tests/fixtures/onnx) on real ONNX Runtime. Needs ORT_DYLIB_PATH: run scripts/test.sh.

mod common;

use std::path::{Path, PathBuf};

use common::{Fixture, need_runtime, onnx_fixture as model, write_image};

/// A detect project over images a.png, b.png (256×128) and a truncated c.png, with the tf_od
/// fixture's class ids 1 and 3 named `a` and `b`.
fn detect_project() -> Fixture {
    need_runtime();
    let fx = Fixture::new();
    write_image(&fx.images().join("a.png"), 256, 128);
    write_image(&fx.images().join("sub/b.png"), 256, 128);
    // A PNG whose header reads but whose pixels are cut off: broken only when decoded.
    write_image(&fx.images().join("c.png"), 256, 128);
    let c = fx.images().join("c.png");
    let bytes = std::fs::read(&c).unwrap();
    std::fs::write(&c, &bytes[..bytes.len() / 2]).unwrap();
    project_with(&fx, "a,b");
    fx.write("proj/labels.txt", "1\ta\n3\tb\n");
    let toml = fx
        .read("proj/termtag.toml")
        .replace("\n[model]\n", "\n[model]\nlabels = \"labels.txt\"\n");
    fx.write("proj/termtag.toml", &toml);
    fx
}

fn predictions(fx: &Fixture) -> Vec<(String, String, f64, f64, f64, f64, f64)> {
    let db = fx.db();
    let mut st = db
        .prepare(
            "SELECT i.key, c.name, p.x0, p.y0, p.x1, p.y1, p.score FROM prediction p
             JOIN image i ON i.id = p.image_id JOIN class c ON c.id = p.class_id
             ORDER BY i.key, p.score DESC",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn predict_writes_boxes_marks_broken_and_resumes() {
    let fx = detect_project();
    let out = fx.ok(&["predict", "--model", &model("tf_od.onnx")]);
    assert!(out.contains("tf_od"), "{out}");
    assert!(out.contains("on CPU"), "{out}");
    assert!(
        out.contains("model run 1: 2 images predicted, 4 predictions, 1 broken"),
        "{out}"
    );
    let p = predictions(&fx);
    let (x0, y0, x1, y1) = (
        f64::from(0.2f32),
        f64::from(0.1f32),
        f64::from(0.6f32),
        f64::from(0.5f32),
    );
    for key in ["a.png", "sub/b.png"] {
        let mine: Vec<_> = p.iter().filter(|r| r.0 == key).collect();
        assert_eq!(mine.len(), 2, "{p:?}");
        assert_eq!(
            *mine[0],
            (
                key.to_string(),
                "a".to_string(),
                x0,
                y0,
                x1,
                y1,
                f64::from(0.9f32)
            )
        );
        assert_eq!(
            *mine[1],
            (
                key.to_string(),
                "b".to_string(),
                0.0,
                0.0,
                1.0,
                1.0,
                f64::from(0.3f32)
            )
        );
    }
    assert_eq!(fx.count("SELECT count(*) FROM image WHERE status = 'broken' AND key = 'c.png' AND error LIKE 'cannot decode%'"), 1);
    // The decode workers took each decoded picture's near-duplicate signature (768 bytes).
    assert_eq!(
        fx.count("SELECT count(*) FROM image_signature s JOIN image i ON i.id = s.image_id WHERE i.key IN ('a.png', 'sub/b.png') AND length(s.sig) = 768"),
        2
    );
    assert_eq!(fx.count("SELECT count(*) FROM image_signature"), 2);

    // Resume: a new image is the only work; the run continues (same model content).
    write_image(&fx.images().join("d.png"), 256, 128);
    fx.ok(&["refresh"]);
    let out = fx.ok(&["predict", "--model", &model("tf_od.onnx")]);
    assert!(
        out.contains(
            "model run 1 (resumed after 2 images): 1 images predicted, 2 predictions, 0 broken"
        ),
        "{out}"
    );
    assert_eq!(fx.count("SELECT count(*) FROM model_run"), 1);
    assert_eq!(fx.count("SELECT count(*) FROM predicted"), 3);
    assert_eq!(fx.count("SELECT count(*) FROM image_signature"), 3);
    let out = fx.ok(&["predict", "--model", &model("tf_od.onnx")]);
    assert!(out.contains("0 images predicted"), "{out}");
    assert_eq!(fx.count("SELECT count(*) FROM prediction"), 6);
}

/// Every variable `--shard auto` reads: cleared so the test machine's own cannot leak in.
const SCHEDULER_VARS: [&str; 8] = [
    "JOB_COMPLETION_INDEX",
    "JOB_COMPLETIONS",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
    "RANK",
    "WORLD_SIZE",
];

#[test]
fn shards_split_the_work() {
    let fx = detect_project();
    for i in 0..6 {
        write_image(&fx.images().join(format!("more/{i}.png")), 64, 32);
    }
    fx.ok(&["refresh"]);
    let one = fx.ok(&["predict", "--model", &model("tf_od.onnx"), "--shard", "1/2"]);
    let two = fx.ok(&["predict", "--model", &model("tf_od.onnx"), "--shard", "2/2"]);
    assert!(
        one.contains("shard 1/2") && two.contains("shard 2/2"),
        "{one}{two}"
    );
    // Every readable image exactly once, over both shards.
    assert_eq!(fx.count("SELECT count(*) FROM predicted"), 8);
    assert_eq!(
        fx.count("SELECT count(DISTINCT image_id) FROM predicted"),
        8
    );
    // `--shard auto` takes the same shares from the scheduler's variables: a Kubernetes
    // Indexed Job's pod 0 and a torchrun rank 1 of 2 split a re-run between them.
    let auto = |vars: &[(&str, &str)]| {
        let mut c = fx.cmd();
        for v in SCHEDULER_VARS {
            c.env_remove(v);
        }
        c.envs(vars.iter().copied()).args([
            "predict",
            "--model",
            &model("tf_od.onnx"),
            "--rerun",
            "--shard",
            "auto",
        ]);
        c.output().unwrap()
    };
    let pod0 = auto(&[("JOB_COMPLETION_INDEX", "0"), ("JOB_COMPLETIONS", "2")]);
    let pod0 = String::from_utf8_lossy(&pod0.stdout);
    assert!(
        pod0.contains("shard 1/2 from JOB_COMPLETION_INDEX/JOB_COMPLETIONS"),
        "{pod0}"
    );
    let rank1 = auto(&[("RANK", "1"), ("WORLD_SIZE", "2")]);
    let rank1 = String::from_utf8_lossy(&rank1.stdout);
    assert!(rank1.contains("shard 2/2 from RANK/WORLD_SIZE"), "{rank1}");
    let images = |out: &str| -> usize {
        let (_, after) = out.split_once(": ").unwrap();
        after.split(' ').next().unwrap().parse().unwrap()
    };
    let run_line = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("model run"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        images(&run_line(&pod0)) + images(&run_line(&rank1)),
        images(&run_line(&one)) + images(&run_line(&two))
    );
    // Without a scheduler: one line naming the variables it looked for, nothing predicted.
    let none = auto(&[]);
    assert!(!none.status.success());
    let err = String::from_utf8_lossy(&none.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for v in [
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "RANK/WORLD_SIZE",
    ] {
        assert!(err.contains(v), "{err}");
    }
    let out = fx
        .cmd()
        .args(["predict", "--model", &model("tf_od.onnx"), "--shard", "3/2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use K/N with 1 ≤ K ≤ N"));
}

#[test]
fn queue_lists_least_confident_first() {
    let fx = detect_project();
    fx.ok(&["predict", "--model", &model("tf_od.onnx")]);
    // Both images carry 0.9 and 0.3: least confidence 0.7 each, listed in image order.
    let out = fx.ok(&["queue", "--limit", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "image\tleast_confidence\tboxes\ttop classes");
    assert_eq!(lines[1], "a.png\t0.7000\t2\ta 0.90, b 0.30");
    assert_eq!(lines[2], "sub/b.png\t0.7000\t2\ta 0.90, b 0.30");
    let out = fx.ok(&["queue", "--metric", "uncertain_count"]);
    assert!(out.contains("a.png\t1.0000\t2"), "{out}");
}

#[test]
fn unknown_model() {
    // A missing runtime: tests/ort_runtime.rs.
    let fx = detect_project();
    let e = fx.fails(&["predict", "--model", &model("unknown.onnx")]);
    assert!(e.contains("no adapter recognises this model; inputs: x float32[1,3,8,8]; outputs: y float32[1,3,8,8]"), "{e}");
}

#[test]
fn classify_project_batches_a_real_classifier() {
    need_runtime();
    let fx = Fixture::new();
    for (name, rgb) in [
        ("r.png", [255, 0, 0]),
        ("g.png", [0, 255, 0]),
        ("b.png", [0, 0, 255]),
    ] {
        let p = fx.images().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(8, 8, image::Rgb(rgb))
            .save(&p)
            .unwrap();
    }
    let images = fx.images();
    fx.ok(&[
        "init",
        fx.project().to_str().unwrap(),
        "--task",
        "classify",
        "--classes",
        "red,green,blue",
        "--source",
        images.to_str().unwrap(),
    ]);
    fx.write("proj/names.txt", "red\ngreen\nblue\n");
    let toml = fx
        .read("proj/termtag.toml")
        .replace("\n[model]\n", "\n[model]\nlabels = \"names.txt\"\n");
    fx.write("proj/termtag.toml", &toml);
    let out = fx.ok(&["predict", "--model", &model("classify_f32.onnx")]);
    assert!(out.contains("3 images predicted"), "{out}");
    let db = fx.db();
    let top = |key: &str| -> String {
        db.query_row(
            "SELECT c.name FROM prediction p JOIN image i ON i.id = p.image_id JOIN class c ON c.id = p.class_id
             WHERE i.key = ?1 ORDER BY p.score DESC LIMIT 1",
            [key],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        (top("r.png"), top("g.png"), top("b.png")),
        ("red".into(), "green".into(), "blue".into())
    );
    // A detector in a classify project is refused.
    let e = fx.fails(&["predict", "--model", &model("tf_od.onnx")]);
    assert!(
        e.contains("finds boxes, but this is a classify project"),
        "{e}"
    );
}

/// Reviewed labels and imported predictions, hand-computed (see `voc_and_coco_by_hand` in
/// src/eval.rs for the same numbers): class a AP@0.5 = 0.5.
#[test]
fn eval_writes_the_performance_csv() {
    let fx = Fixture::new();
    write_image(&fx.images().join("1.png"), 100, 100);
    write_image(&fx.images().join("2.png"), 100, 100);
    project_with(&fx, "a,b");
    let gt = r#"{"images":[{"id":1,"file_name":"1.png","width":100,"height":100},{"id":2,"file_name":"2.png","width":100,"height":100}],
      "categories":[{"id":1,"name":"a"},{"id":2,"name":"b"}],
      "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,20,20]},
                     {"id":2,"image_id":1,"category_id":1,"bbox":[50,50,20,20]},
                     {"id":3,"image_id":2,"category_id":1,"bbox":[0,0,50,50]}]}"#;
    let dets = r#"[{"image_id":"1.png","category_id":1,"bbox":[0,0,20,20],"score":0.9},
      {"image_id":"1.png","category_id":1,"bbox":[0,0,20,20],"score":0.8},
      {"image_id":"2.png","category_id":1,"bbox":[80,80,10,10],"score":0.7},
      {"image_id":"2.png","category_id":1,"bbox":[0,0,50,28],"score":0.6}]"#;
    let gt_file = fx.write("gt.json", gt);
    let det_file = fx.write("dets.json", dets);
    fx.ok(&["import", gt_file.to_str().unwrap(), "--format", "coco"]);
    fx.ok(&[
        "import",
        det_file.to_str().unwrap(),
        "--format",
        "coco",
        "--as",
        "predictions",
    ]);
    let out = fx.ok(&["eval"]);
    assert!(out.contains("model run 1 on 2 reviewed images"), "{out}");
    let csv = std::fs::read_to_string(fx.project().join("performance.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "Class Name,AP");
    assert_eq!(lines[1], "a,0.5");
    assert_eq!(lines[2], "Average,0.5");
    assert_eq!(
        lines.len(),
        3,
        "class b has no reviewed box: not in the CSV"
    );
    let json: serde_json::Value = serde_json::from_str(&fx.ok(&["eval", "--json"])).unwrap();
    let t50 = (34.0 + 16.5) / 101.0;
    let want = (2.0 * t50 + 8.0 * 34.0 / 101.0) / 10.0;
    assert!(
        (json["coco_map"].as_f64().unwrap() - want).abs() < 1e-9,
        "{json}"
    );
}

#[test]
fn train_runs_the_command_and_registers_the_model() {
    let fx = detect_project();
    let src: PathBuf = model("tf_od.onnx").into();
    // The "training job" checks that it got the export, then writes the model.
    let cmd = format!(
        "test -s {{export}} && echo trained && cp '{}' {{model}}",
        src.display()
    );
    let toml = fx.read("proj/termtag.toml").replace(
        "\n[train]\n",
        &format!("\n[train]\ncommand = {}\nevery = 1\n", toml_string(&cmd)),
    );
    fx.write("proj/termtag.toml", &toml);
    let out = fx.ok(&["train"]);
    assert!(out.contains("registered as model run 1"), "{out}");
    let model_path: String = fx
        .db()
        .query_row("SELECT path FROM model_run WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let log = Path::new(&model_path).with_file_name("train.log");
    assert_eq!(std::fs::read_to_string(log).unwrap(), "trained\n");
    // Predicting with that file continues the registered run.
    let out = fx.ok(&["predict", "--model", &model_path]);
    assert!(out.contains("model run 1"), "{out}");
    assert_eq!(fx.count("SELECT count(*) FROM model_run"), 1);
    assert_eq!(
        fx.count("SELECT count(*) FROM model_run WHERE adapter = 'tf_od'"),
        1
    );
    // Nothing reviewed since: not due.
    assert!(fx.ok(&["train", "--if-due"]).contains("not due"));
    // A failing job names its log.
    let toml = fx
        .read("proj/termtag.toml")
        .replace(&toml_string(&cmd), "\"echo oops >&2; exit 3\"");
    fx.write("proj/termtag.toml", &toml);
    let e = fx.fails(&["train"]);
    assert!(
        e.contains("[train] command failed") && e.contains("train.log"),
        "{e}"
    );
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[test]
fn doctor_finds_the_runtime_from_the_config() {
    let fx = detect_project();
    let lib = PathBuf::from(std::env::var_os("ORT_DYLIB_PATH").unwrap());
    // `[onnxruntime] path` may name the folder; ORT_DYLIB_PATH, when set, wins over it.
    let toml = fx.read("proj/termtag.toml").replace(
        "\n[onnxruntime]\n",
        &format!(
            "\n[onnxruntime]\npath = {}\n",
            toml_string(&lib.parent().unwrap().to_string_lossy())
        ),
    );
    fx.write("proj/termtag.toml", &toml);
    let out = fx
        .cmd()
        .env_remove("ORT_DYLIB_PATH")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("found via [onnxruntime] path in termtag.toml"),
        "{text}"
    );
    assert!(
        text.contains("execution providers reported by this ONNX Runtime: ")
            && text.contains("CPUExecutionProvider"),
        "{text}"
    );
    let out = fx.ok(&["doctor"]);
    assert!(out.contains("found via ORT_DYLIB_PATH"), "{out}");
    // A configured path that holds no runtime is named in the error.
    let toml = fx.read("proj/termtag.toml").replace(
        &toml_string(&lib.parent().unwrap().to_string_lossy()),
        "\"nowhere\"",
    );
    fx.write("proj/termtag.toml", &toml);
    let out = fx
        .cmd()
        .env_remove("ORT_DYLIB_PATH")
        .args(["predict", "--model", &model("tf_od.onnx")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[onnxruntime] path") && err.contains("nowhere"),
        "{err}"
    );
}

/// A detect project over `images/` with these classes, no [model] settings.
fn project_with(fx: &Fixture, classes: &str) {
    let images = fx.images();
    fx.ok(&[
        "init",
        fx.project().to_str().unwrap(),
        "--task",
        "detect",
        "--classes",
        classes,
        "--source",
        images.to_str().unwrap(),
    ]);
}

#[test]
fn class_names_from_the_model_metadata() {
    need_runtime();
    let fx = Fixture::new();
    // 128×64, red square at (64, 16) side 32: (0.5, 0.25)-(0.75, 0.75).
    let img = image::RgbImage::from_fn(128, 64, |x, y| {
        if (64..96).contains(&x) && (16..48).contains(&y) {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([20, 20, 20])
        }
    });
    std::fs::create_dir_all(fx.images()).unwrap();
    img.save(fx.images().join("sq.png")).unwrap();
    project_with(&fx, "square,other");
    // The metadata names the class `red square`: not a project class (nor a valid label name),
    // so the summary names it and gives the flag, quoted for the shell.
    let e = fx.fails(&["predict", "--model", &model("square_yolo.onnx")]);
    assert!(
        e.contains("none of the model's 1 classes (red square, …)")
            && e.contains("`--class-map 'red square=PROJECT_CLASS'`"),
        "{e}"
    );
    let out = fx.ok(&[
        "predict",
        "--model",
        &model("square_yolo.onnx"),
        "--class-map",
        "red square=square",
    ]);
    assert!(
        out.contains("classes: 1 names from the model's metadata"),
        "{out}"
    );
    assert!(out.contains("1 images predicted, 1 predictions"), "{out}");
    let p = predictions(&fx);
    assert_eq!(p.len(), 1, "{p:?}");
    let (_, class, x0, y0, x1, y1, _) = &p[0];
    assert_eq!(class, "square");
    for (g, w) in [(*x0, 0.5), (*y0, 0.25), (*x1, 0.75), (*y1, 0.75)] {
        assert!((g - w).abs() < 0.035, "{p:?}");
    }
}

#[test]
fn labels_file_beside_the_model() {
    need_runtime();
    let fx = Fixture::new();
    write_image(&fx.images().join("a.png"), 256, 128);
    project_with(&fx, "person,car");
    // As in a model zoo folder: two models' label files side by side; the one whose name shares
    // a word with the model's (coco91 ~ coco) is its own.
    let models = fx.path("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(model("tf_od.onnx"), models.join("ssd_coco.onnx")).unwrap();
    fx.write(
        "models/coco91_labels.txt",
        "# COCO id<TAB>name\n1\tperson\n2\tbicycle\n3\tcar\n",
    );
    fx.write("models/efficientnet_labels.txt", "tench\ngoldfish\n");
    let ssd = models.join("ssd_coco.onnx");
    let out = fx.ok(&["predict", "--model", ssd.to_str().unwrap()]);
    assert!(out.contains("classes: 3 names from "), "{out}");
    assert!(
        out.contains("coco91_labels.txt (beside the model)"),
        "{out}"
    );
    let classes: Vec<String> = predictions(&fx).into_iter().map(|p| p.1).collect();
    assert_eq!(classes, vec!["person", "car"]);

    // A model whose name matches neither file: no guess, and the summary says what to do.
    std::fs::copy(model("tf_od.onnx"), models.join("model.onnx")).unwrap();
    let other = models.join("model.onnx");
    let out = fx.ok(&["predict", "--model", other.to_str().unwrap(), "--rerun"]);
    assert!(
        out.contains(
            "several label files beside the model (coco91_labels.txt, efficientnet_labels.txt)"
        ),
        "{out}"
    );
    assert!(
        out.contains("dropped 2 predictions") && out.contains("--labels FILE"),
        "{out}"
    );
}

#[test]
fn labels_and_class_map_flags_and_the_run_identity() {
    let fx = detect_project(); // [model] labels: 1 = a, 3 = b
    let tf = model("tf_od.onnx");
    let out = fx.ok(&["predict", "--model", &tf]);
    assert!(
        out.contains("model run 1: 2 images predicted, 4 predictions"),
        "{out}"
    );
    // A different class map is a different run: it predicts everything again.
    let out = fx.ok(&["predict", "--model", &tf, "--class-map", "b=-"]);
    assert!(
        out.contains("model run 2: 2 images predicted, 2 predictions"),
        "{out}"
    );
    assert!(
        out.contains("dropped 2 predictions") && out.contains("b ×2"),
        "{out}"
    );
    // The same settings again resume it; --rerun starts afresh.
    let out = fx.ok(&["predict", "--model", &tf, "--class-map", "b=-"]);
    assert!(
        out.contains("model run 2 (resumed after 2 images): 0 images predicted"),
        "{out}"
    );
    let out = fx.ok(&["predict", "--model", &tf, "--class-map", "b=-", "--rerun"]);
    assert!(out.contains("model run 3: 2 images predicted"), "{out}");

    // --labels wins over [model] labels; the summary names the model class and the exact flag.
    fx.write("coco.txt", "1\tperson\n3\tcar\n");
    let coco = fx.path("coco.txt");
    let out = fx.ok(&[
        "predict",
        "--model",
        &tf,
        "--labels",
        coco.to_str().unwrap(),
        "--class-map",
        "person=a",
    ]);
    assert!(out.contains("classes: 2 names from "), "{out}");
    assert!(out.contains("(--labels)"), "{out}");
    assert!(
        out.contains("car ×2") && out.contains("`--class-map car=PROJECT_CLASS`"),
        "{out}"
    );
    let bad = fx
        .cmd()
        .args(["predict", "--model", &tf, "--class-map", "person"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(e.contains("`person`: use MODEL_CLASS=PROJECT_CLASS"), "{e}");
    let e = fx.fails(&["predict", "--model", &tf, "--class-map", "a=nope"]);
    assert!(e.contains("`nope`, which is not a project class"), "{e}");
    // A changed threshold is a new run too.
    let toml = fx
        .read("proj/termtag.toml")
        .replace("\n[model]\n", "\n[model]\nscore_threshold = 0.5\n");
    fx.write("proj/termtag.toml", &toml);
    let out = fx.ok(&["predict", "--model", &tf]);
    assert!(
        out.contains("model run 5: 2 images predicted, 2 predictions"),
        "{out}"
    );
}

#[test]
fn models_that_do_not_fit_their_layout_fail_cleanly() {
    let fx = detect_project();
    let journal = fx.count("SELECT count(*) FROM journal");
    for (name, expected) in [
        (
            "wrong_rank.onnx",
            "no adapter recognises this model; inputs: images float32[3,64,64]",
        ),
        (
            "yolo_short.onnx",
            "YOLO output [1, 3, 8] has 3 channels, fewer than a box and one class",
        ),
    ] {
        let e = fx.fails(&["predict", "--model", &model(name)]);
        assert!(e.contains(name) && e.contains(expected), "{name}: {e}");
        assert!(!e.contains("panicked"), "{e}");
        assert_eq!(
            fx.count("SELECT count(*) FROM model_run"),
            0,
            "{name}: no run left"
        );
        assert_eq!(fx.count("SELECT count(*) FROM prediction"), 0);
        assert_eq!(fx.count("SELECT count(*) FROM journal"), journal, "{name}");
    }
    // num_detections says 3 where scores and classes hold 2: what is there is used.
    let out = fx.ok(&["predict", "--model", &model("tf_od_short.onnx")]);
    assert!(out.contains("model run 1: 2 images predicted"), "{out}");
    assert_eq!(
        fx.count("SELECT count(*) FROM prediction"),
        4,
        "two per image, none invented"
    );
}

//! Import and export through the CLI on real projects: round trips, conversions between formats,
//! EXIF orientation, class handling and bad input leaving the store unchanged.

mod common;

use common::{Fixture, write_image, write_rotated_jpeg};

/// A detect project over three 200×100 images, `a.jpg`, `b.jpg` and `sub/c.png`.
fn detect_project() -> Fixture {
    let f = Fixture::new();
    write_image(&f.images().join("a.jpg"), 200, 100);
    write_image(&f.images().join("b.jpg"), 200, 100);
    write_image(&f.images().join("sub/c.png"), 200, 100);
    f.init_detect("knot,defect", true);
    f
}

const COCO: &str = r#"{
  "images": [
    {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
    {"id": 2, "file_name": "b.jpg", "width": 200, "height": 100}
  ],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 50, 40], "area": 2000, "iscrowd": 0},
    {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100.5, 0, 99.5, 100], "area": 9950, "iscrowd": 0}
  ],
  "categories": [{"id": 1, "name": "knot"}, {"id": 2, "name": "defect"}]
}"#;

/// (key, class, x0, y0, x1, y1) of every stored label, sorted.
fn labels(f: &Fixture) -> Vec<(String, String, f64, f64, f64, f64)> {
    let db = f.db();
    let mut st = db
        .prepare(
            "SELECT i.key, c.name, a.x0, a.y0, a.x1, a.y1 FROM annotation a
             JOIN image i ON i.id = a.image_id JOIN class c ON c.id = a.class_id
             ORDER BY i.key, a.x0",
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
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn coco_import_stores_normalised_boxes_and_verified_empty_images() {
    let f = detect_project();
    f.write("coco.json", COCO);
    let out = f.ok(&["import", "coco.json", "--format", "coco"]);
    assert!(
        out.contains("imported 2 labels on 2 images (1 with none)"),
        "{out}"
    );
    let l = labels(&f);
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].0.as_str(), l[0].1.as_str()), ("a.jpg", "knot"));
    assert!(close(l[0].2, 0.05, 1e-9) && close(l[0].3, 0.2, 1e-9));
    assert!(close(l[0].4, 0.3, 1e-9) && close(l[0].5, 0.6, 1e-9));
    assert_eq!(l[1].1, "defect");
    assert!(close(l[1].2, 0.5025, 1e-9) && close(l[1].4, 1.0, 1e-9));
    // b.jpg is listed with no annotation: verified empty. sub/c.png is untouched.
    let s = f.ok(&["stats"]);
    assert!(s.contains("verified empty: 1"), "{s}");
    assert!(s.contains("status: new 1, reviewed 2"), "{s}");
    let knots = f.ok(&["images", "list", "--filter", "class=knot by=tester"]);
    assert_eq!(knots.lines().count(), 1);
    assert!(
        knots.starts_with("a.jpg\treviewed\t200x100\tknot,defect\ttester\t"),
        "{knots}"
    );
    // Importing the same file again replaces, never duplicates.
    f.ok(&["import", "coco.json", "--format", "coco"]);
    assert_eq!(labels(&f).len(), 2);
}

#[test]
fn export_import_export_gives_the_same_bytes_in_every_format() {
    let f = detect_project();
    f.write("coco.json", COCO);
    f.ok(&["import", "coco.json", "--format", "coco"]);
    for (format, out, main_file) in [
        ("coco", "x/coco.json", "x/coco.json"),
        ("voc", "x/voc", "x/voc/a.xml"),
        ("yolo", "x/yolo", "x/yolo/a.txt"),
        ("ald-csv", "x/tagged.csv", "x/tagged.csv"),
        ("azureml-jsonl", "x/labels.jsonl", "x/labels.jsonl"),
    ] {
        f.ok(&["export", "--format", format, out]);
        let first = f.read(main_file);
        // A second project over the same images reads the export and writes it again.
        let g = detect_project();
        std::fs::create_dir_all(g.path("x")).unwrap();
        std::fs::rename(f.path(out), g.path(out)).unwrap();
        g.ok(&["import", out, "--format", format]);
        assert_eq!(labels(&g).len(), 2, "{format}");
        std::fs::rename(g.path(out), g.path("first")).unwrap();
        g.ok(&["export", "--format", format, out]);
        assert_eq!(
            g.read(main_file),
            first,
            "{format} round trip changed bytes"
        );
        let a = labels(&f);
        for (x, y) in a.iter().zip(labels(&g)) {
            assert_eq!((&x.0, &x.1), (&y.0, &y.1), "{format}");
            for (p, q) in [(x.2, y.2), (x.3, y.3), (x.4, y.4), (x.5, y.5)] {
                assert!(close(p, q, 1e-6), "{format}: {p} vs {q}");
            }
        }
    }
}

#[test]
fn coco_to_yolo_to_voc_to_coco_keeps_every_box_within_a_pixel() {
    let f = detect_project();
    f.write("coco.json", COCO);
    f.ok(&["import", "coco.json", "--format", "coco"]);
    let original = labels(&f);
    let chain = [("yolo", "yolo"), ("voc", "voc"), ("coco", "back.json")];
    let mut prev = f;
    for (format, out) in chain {
        prev.ok(&["export", "--format", format, out]);
        let next = detect_project();
        std::fs::rename(prev.path(out), next.path(out)).unwrap();
        next.ok(&["import", out, "--format", format]);
        prev = next;
    }
    let last = labels(&prev);
    assert_eq!(last.len(), original.len());
    for (x, y) in original.iter().zip(&last) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        // One pixel of a 200×100 image.
        for (p, q, px) in [
            (x.2, y.2, 200.0),
            (x.3, y.3, 100.0),
            (x.4, y.4, 200.0),
            (x.5, y.5, 100.0),
        ] {
            assert!((p - q).abs() * px <= 1.0, "{p} vs {q}");
        }
    }
}

#[test]
fn malformed_files_are_refused_and_leave_the_store_unchanged() {
    let f = detect_project();
    f.write("coco.json", COCO);
    f.ok(&["import", "coco.json", "--format", "coco"]);
    let before = labels(&f);
    let journal = f.count("SELECT count(*) FROM journal");

    f.write(
        "bad.json",
        &COCO.replace("[10, 20, 50, 40]", "[10, 20, 50]"),
    );
    let e = f.fails(&["import", "bad.json", "--format", "coco"]);
    assert!(
        e.contains("bad.json") && e.contains("annotations[0]"),
        "{e}"
    );

    f.write("trunc.json", &COCO[..COCO.len() / 2]);
    let e = f.fails(&["import", "trunc.json", "--format", "coco"]);
    assert!(e.contains("trunc.json"), "{e}");

    f.write(
        "zero.json",
        &COCO.replace("[10, 20, 50, 40]", "[10, 20, 0, 40]"),
    );
    let e = f.fails(&["import", "zero.json", "--format", "coco"]);
    assert!(e.contains("zero.json") && e.contains("zero area"), "{e}");

    f.write(
        "bad.csv",
        "filename,class,xmin,xmax,ymin,ymax,height,width,folder\na.jpg,knot,0.1,zz,0.2,0.4,100,200,\n",
    );
    let e = f.fails(&["import", "bad.csv", "--format", "ald-csv"]);
    assert!(e.contains("bad.csv") && e.contains("line 2"), "{e}");

    f.write(
        "voc/a.xml",
        "<annotation><filename>a.jpg</filename><object><name>knot</name>",
    );
    let e = f.fails(&["import", "voc", "--format", "voc"]);
    assert!(e.contains("a.xml"), "{e}");

    f.write(
        "l.jsonl",
        "{\"image_url\":\"a.jpg\",\"image_details\":{\"format\":\"jpg\",\"width\":\"200px\",\"height\":\"100px\"},\"label\":[{\"label\":\"knot\",\"topX\":\"x\",\"topY\":0.1,\"bottomX\":0.2,\"bottomY\":0.3,\"isCrowd\":0}]}\n",
    );
    let e = f.fails(&["import", "l.jsonl", "--format", "azureml-jsonl"]);
    assert!(e.contains("l.jsonl") && e.contains("line 1"), "{e}");

    assert_eq!(labels(&f), before);
    assert_eq!(f.count("SELECT count(*) FROM journal"), journal);
}

#[test]
fn boxes_outside_the_image_are_clipped_with_a_warning() {
    let f = detect_project();
    f.write(
        "coco.json",
        &COCO.replace("[10, 20, 50, 40]", "[-10, 20, 50, 400]"),
    );
    let out = f
        .cmd()
        .args(["import", "coco.json", "--format", "coco"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning:") && err.contains("clipped"), "{err}");
    let l = labels(&f);
    assert_eq!((l[0].2, l[0].3, l[0].4, l[0].5), (0.0, 0.2, 0.2, 1.0));
}

#[test]
fn unknown_classes_are_refused_mapped_dropped_or_added() {
    let f = detect_project();
    let other = COCO
        .replace("\"name\": \"knot\"", "\"name\": \"Knot\"")
        .replace("\"name\": \"defect\"", "\"name\": \"bark\"");
    f.write("other.json", &other);
    let e = f.fails(&["import", "other.json", "--format", "coco"]);
    assert!(e.contains("Knot, bark") && e.contains("--class-map"), "{e}");
    assert_eq!(labels(&f).len(), 0);

    f.ok(&[
        "import",
        "other.json",
        "--format",
        "coco",
        "--class-map",
        "Knot=knot,bark=-",
    ]);
    let l = labels(&f);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].1, "knot");

    f.ok(&[
        "import",
        "other.json",
        "--format",
        "coco",
        "--class-map",
        "Knot=knot",
        "--add-classes",
    ]);
    assert_eq!(labels(&f).len(), 2);
    assert_eq!(f.count("SELECT count(*) FROM class WHERE name = 'bark'"), 1);

    f.write(
        "badname.json",
        &COCO.replace("\"name\": \"knot\"", "\"name\": \"knot round\""),
    );
    let e = f.fails(&[
        "import",
        "badname.json",
        "--format",
        "coco",
        "--add-classes",
    ]);
    assert!(e.contains("`knot round`") && e.contains("1 to 32"), "{e}");
}

#[test]
fn exif_rotated_photo_gets_boxes_on_the_displayed_image() {
    let f = Fixture::new();
    // Stored 40×20, EXIF 6: shown 20×40, rotated 90° clockwise.
    write_rotated_jpeg(&f.images().join("phone.jpg"), 40, 20, 6);
    f.init_detect("knot", true);
    // A tool that ignored EXIF labelled the left half of the stored pixels (40×20 layout).
    let raw = r#"{"images":[{"id":1,"file_name":"phone.jpg","width":40,"height":20}],
      "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,20,20],"area":400,"iscrowd":0}],
      "categories":[{"id":1,"name":"knot"}]}"#;
    f.write("raw.json", raw);
    let out = f
        .cmd()
        .args(["import", "raw.json", "--format", "coco"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EXIF-rotated"));
    // On the displayed (upright) picture that is the top half.
    let l = labels(&f);
    assert_eq!((l[0].2, l[0].3, l[0].4, l[0].5), (0.0, 0.0, 1.0, 0.5));

    // Coordinates already in the displayed 20×40 layout are kept as they are.
    let shown = r#"{"images":[{"id":1,"file_name":"phone.jpg","width":20,"height":40}],
      "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,30,10,10],"area":100,"iscrowd":0}],
      "categories":[{"id":1,"name":"knot"}]}"#;
    f.write("shown.json", shown);
    f.ok(&["import", "shown.json", "--format", "coco"]);
    let l = labels(&f);
    assert_eq!((l[0].2, l[0].3, l[0].4, l[0].5), (0.0, 0.75, 0.5, 1.0));
    // Exports carry the displayed size.
    f.ok(&["export", "--format", "coco", "out.json"]);
    let out = f.read("out.json");
    assert!(
        out.contains("\"width\": 20") && out.contains("\"height\": 40"),
        "{out}"
    );
}

#[test]
fn ald_predictions_import_with_scores_and_null_rows() {
    let f = detect_project();
    f.write(
        "totag_1690000000000.csv",
        "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n\
         a.jpg,knot,0.1,0.3,0.2,0.6,100,200,,0.9,0.4\n\
         a.jpg,defect,0.5,1,0,1,100,200,,0.4,0.4\n\
         c.png,NULL,0,0,0,0,100,200,sub,0,0\n",
    );
    let out = f.ok(&[
        "import",
        "totag_1690000000000.csv",
        "--format",
        "ald-csv",
        "--as",
        "predictions",
    ]);
    assert!(
        out.contains("imported 2 predictions on 2 images (1 with none) as model run 1"),
        "{out}"
    );
    assert_eq!(
        f.count("SELECT count(*) FROM prediction WHERE run_id = 1"),
        2
    );
    assert_eq!(
        f.count("SELECT count(*) FROM predicted WHERE run_id = 1"),
        2
    );
    assert_eq!(
        f.count("SELECT count(*) FROM model_run WHERE adapter = 'import:ald-csv'"),
        1
    );
    let score: f64 = f
        .db()
        .query_row("SELECT max(score) FROM prediction", [], |r| r.get(0))
        .unwrap();
    assert_eq!(score, 0.9);
    // Predictions are not labels.
    assert_eq!(labels(&f).len(), 0);
    // They export back with their confidences (totag layout).
    f.ok(&[
        "export",
        "--format",
        "ald-csv",
        "--predictions",
        "totag_out.csv",
    ]);
    let csv = f.read("totag_out.csv");
    assert!(csv.starts_with("filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n"), "{csv}");
    assert!(
        csv.contains("a.jpg,knot,0.1,0.3,0.2,0.6,100,200,,0.9,0.4"),
        "{csv}"
    );
    assert!(csv.contains("c.png,NULL,0,0,0,0,100,200,sub,0,0"), "{csv}");
}

#[test]
fn class_edits_follow_the_labels() {
    let f = detect_project();
    f.write("coco.json", COCO);
    f.ok(&["import", "coco.json", "--format", "coco"]);
    f.ok(&["classes", "rename", "knot", "knot_round"]);
    assert_eq!(labels(&f)[0].1, "knot_round");
    let out = f.ok(&["classes", "merge", "defect", "knot_round"]);
    assert!(out.contains("1 labels moved"), "{out}");
    assert!(labels(&f).iter().all(|l| l.1 == "knot_round"));
    f.ok(&["classes", "add", "bark"]);
    let out = f.ok(&[
        "classes",
        "delete",
        "knot_round",
        "--with-images",
        "--delete-source",
    ]);
    assert!(
        out.contains("2 labels, 1 images removed, 1 files deleted"),
        "{out}"
    );
    assert!(!f.images().join("a.jpg").exists());
    assert!(f.images().join("b.jpg").exists());
    assert_eq!(f.count("SELECT count(*) FROM image"), 2);
    let log = f.count("SELECT count(*) FROM journal WHERE action LIKE 'classes.%'");
    assert!(log >= 4, "every class edit is journalled: {log}");
}

#[test]
fn classification_projects_round_trip_through_jsonl_and_modelarts() {
    let f = Fixture::new();
    write_image(&f.images().join("cat1.jpg"), 30, 20);
    write_image(&f.images().join("dog1.jpg"), 30, 20);
    f.ok(&[
        "init",
        f.project().to_str().unwrap(),
        "--task",
        "classify",
        "--classes",
        "cat,dog",
        "--source",
        f.images().to_str().unwrap(),
    ]);
    f.write(
        "mc.jsonl",
        "{\"image_url\":\"azureml://datastores/ws/paths/pets/cat1.jpg\",\"image_details\":{\"format\":\"jpg\",\"width\":\"30px\",\"height\":\"20px\"},\"label\":\"cat\"}\n\
         {\"image_url\":\"azureml://datastores/ws/paths/pets/dog1.jpg\",\"image_details\":{\"format\":\"jpg\",\"width\":\"30px\",\"height\":\"20px\"},\"label\":\"dog\"}\n",
    );
    f.ok(&["import", "mc.jsonl", "--format", "azureml-jsonl"]);
    assert_eq!(
        f.count("SELECT count(*) FROM annotation WHERE x0 IS NULL"),
        2
    );
    f.ok(&["export", "--format", "modelarts-txt", "ma"]);
    assert_eq!(f.read("ma/cat1.txt").trim(), "cat");
    assert_eq!(f.read("ma/dog1.txt").trim(), "dog");
    f.ok(&["export", "--format", "azureml-jsonl", "out/labels.jsonl"]);
    let jsonl = f.read("out/labels.jsonl");
    assert_eq!(jsonl.lines().count(), 2);
    assert!(jsonl.contains("\"label\":\"cat\""), "{jsonl}");
    assert!(f.path("out/MLTable").exists());
    // Two classes on one image do not fit a classify project.
    f.write(
        "coco.json",
        &COCO
            .replace("a.jpg", "cat1.jpg")
            .replace("knot", "cat")
            .replace("defect", "dog"),
    );
    let e = f.fails(&["import", "coco.json", "--format", "coco"]);
    assert!(
        e.contains("cat1.jpg") && e.contains("one class per image"),
        "{e}"
    );
    assert_eq!(f.count("SELECT count(*) FROM annotation"), 2);
}

//! Files as the other tools really write them, read through the real binary.
//!
//! Each fixture reproduces the bytes of a named writer in the tool's own source:
//! - active-learning-detect (github.com/CatalystCode/active-learning-detect, commit 7a20d43),
//!   written with Python's `csv.writer` (excel dialect: `\r\n`, `repr` floats, minimal quoting);
//! - VoTT (github.com/microsoft/VoTT, commit 47f5e00), written with json2csv (every string quoted).
//!
//! And an import that cannot place rows fails unless `--skip-missing`, always saying how many.

mod common;

use common::{Fixture, write_image};

/// A detect project over 200×100 images with the given keys.
fn project(keys: &[&str]) -> Fixture {
    let f = Fixture::new();
    for k in keys {
        write_image(&f.images().join(k), 200, 100);
    }
    f.init_detect("knot,defect", true);
    f
}

/// (key, class, x0, y0, x1, y1, score) of every stored label or prediction, sorted.
fn rows(f: &Fixture, sql: &str) -> Vec<(String, String, f64, f64, f64, f64)> {
    let db = f.db();
    let mut st = db.prepare(sql).unwrap();
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

fn labels(f: &Fixture) -> Vec<(String, String, f64, f64, f64, f64)> {
    rows(
        f,
        "SELECT i.key, c.name, a.x0, a.y0, a.x1, a.y1 FROM annotation a
         JOIN image i ON i.id = a.image_id JOIN class c ON c.id = a.class_id ORDER BY i.key, a.x0",
    )
}

fn predictions(f: &Fixture) -> Vec<(String, String, f64, f64, f64, f64)> {
    rows(
        f,
        "SELECT i.key, c.name, p.x0, p.y0, p.x1, p.score FROM prediction p
         JOIN image i ON i.id = p.image_id JOIN class c ON c.id = p.class_id ORDER BY i.key, p.x0",
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// `tag/upload_vott_json.py`, `select_jsons(..., user_folders=False, ...)`: the header
/// `["filename","class","xmin","xmax","ymin","ymax","height","width"]`, one row
/// `[filename,tag,x1,x2,y1,y2,true_height,true_width]` per tag, coordinates divided by VoTT's
/// frame size (Python floats), and `[filename,"NULL",0,0,0,0,true_height,true_width]` for an image
/// without a box.
const ALD_TAGGED_NO_FOLDER: &str = "filename,class,xmin,xmax,ymin,ymax,height,width\r\n\
a.jpg,knot,0.1,0.35,0.2,0.6,100,200\r\n\
a.jpg,defect,0.5,0.75,0.1,0.3333333333333333,100,200\r\n\
b.jpg,NULL,0,0,0,0,100,200\r\n";

/// `train/create_predictions.py`, `make_csv_output(..., user_folders=False)`: the header
/// `PREDICTIONS_SCHEMA_NO_FOLDER`, rows `[name, class, xmin, xmax, ymin, ymax, height, width,
/// box_confidence, image_confidence]` with `image_confidence = calculate_confidence(...)` (the
/// lowest box score), and `[0,"NULL",0,0,0,0]` for an image with no detection.
const ALD_TOTAG_NO_FOLDER: &str = "filename,class,xmin,xmax,ymin,ymax,height,width,box_confidence,image_confidence\r\n\
a.jpg,knot,0.1,0.35,0.2,0.6,100,200,0.92,0.41\r\n\
a.jpg,defect,0.5,0.75,0.1,0.3,100,200,0.41,0.41\r\n\
b.jpg,NULL,0,0,0,0,100,200,0,0.0\r\n";

/// `tag/upload_vott_json.py`, `select_jsons(..., user_folders=True, ...)`: the same plus the
/// `folder` column holding the sub-folder's name (`Path(json_file...).stem`).
const ALD_TAGGED_FOLDER: &str = "filename,class,xmin,xmax,ymin,ymax,height,width,folder\r\n\
c.jpg,knot,0.1,0.35,0.2,0.6,100,200,board1\r\n\
d.jpg,NULL,0,0,0,0,100,200,board2\r\n";

#[test]
fn ald_tagged_without_folder_imports() {
    let f = project(&["a.jpg", "b.jpg"]);
    f.write("tagged.csv", ALD_TAGGED_NO_FOLDER);
    let out = f.ok(&["import", "tagged.csv", "--format", "ald-csv"]);
    assert!(
        out.contains("imported 2 labels on 2 images (1 with none); skipped 0 rows"),
        "{out}"
    );
    let l = labels(&f);
    assert_eq!(l.len(), 2);
    // Columns xmin, xmax, ymin, ymax → box (x0, y0, x1, y1).
    assert_eq!((l[0].0.as_str(), l[0].1.as_str()), ("a.jpg", "knot"));
    assert!(close(l[0].2, 0.1) && close(l[0].3, 0.2) && close(l[0].4, 0.35) && close(l[0].5, 0.6));
    assert_eq!(l[1].1, "defect");
    assert_eq!(
        f.count("SELECT count(*) FROM image WHERE key = 'b.jpg' AND status = 'reviewed'"),
        1,
        "the NULL row marks b.jpg verified empty"
    );
}

#[test]
fn ald_predictions_without_folder_import_with_scores() {
    let f = project(&["a.jpg", "b.jpg"]);
    f.write("totag.csv", ALD_TOTAG_NO_FOLDER);
    let out = f.ok(&[
        "import",
        "totag.csv",
        "--format",
        "ald-csv",
        "--as",
        "predictions",
    ]);
    assert!(out.contains("imported 2 predictions on 2 images"), "{out}");
    let p = predictions(&f);
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].1.as_str(), p[0].5), ("knot", 0.92));
    assert_eq!((p[1].1.as_str(), p[1].5), ("defect", 0.41));
}

#[test]
fn ald_tagged_with_folder_imports_into_sub_folders() {
    let f = project(&["board1/c.jpg", "board2/d.jpg"]);
    f.write("tagged.csv", ALD_TAGGED_FOLDER);
    f.ok(&["import", "tagged.csv", "--format", "ald-csv"]);
    let l = labels(&f);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "board1/c.jpg");
}

/// Export writes the layout ALD itself would for this project: no `folder` column when all images
/// sit in one folder (`user_folders = False`), the column when they sit in sub-folders.
#[test]
fn ald_export_writes_the_layout_the_project_uses() {
    let flat = project(&["a.jpg", "b.jpg"]);
    flat.write("tagged.csv", ALD_TAGGED_NO_FOLDER);
    flat.ok(&["import", "tagged.csv", "--format", "ald-csv"]);
    flat.ok(&["export", "--format", "ald-csv", "out.csv"]);
    let csv = flat.read("out.csv");
    assert!(
        csv.starts_with("filename,class,xmin,xmax,ymin,ymax,height,width\n"),
        "{csv}"
    );
    assert!(csv.contains("b.jpg,NULL,0,0,0,0,100,200\n"), "{csv}");
    // What termtag writes, termtag (and ALD's readers, by header) read back the same.
    let again = project(&["a.jpg", "b.jpg"]);
    std::fs::copy(flat.path("out.csv"), again.path("out.csv")).unwrap();
    again.ok(&["import", "out.csv", "--format", "ald-csv"]);
    let (a, b) = (labels(&again), labels(&flat));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        // Exports keep 6 decimals.
        for (u, v) in [(x.2, y.2), (x.3, y.3), (x.4, y.4), (x.5, y.5)] {
            assert!((u - v).abs() < 1e-6, "{x:?} vs {y:?}");
        }
    }

    let nested = project(&["board1/c.jpg", "board2/d.jpg"]);
    nested.write("tagged.csv", ALD_TAGGED_FOLDER);
    nested.ok(&["import", "tagged.csv", "--format", "ald-csv"]);
    nested.ok(&["export", "--format", "ald-csv", "out.csv"]);
    let csv = nested.read("out.csv");
    assert!(
        csv.starts_with("filename,class,xmin,xmax,ymin,ymax,height,width,folder\n"),
        "{csv}"
    );
    assert!(
        csv.contains("c.jpg,knot,0.1,0.35,0.2,0.6,100,200,board1\n"),
        "{csv}"
    );
}

/// `CsvExportProvider.export` (src/providers/export/csv.ts) writes `image: asset.name`, and
/// `AssetService.createAssetFromFilePath` (src/services/assetService.ts) takes that name from
/// `encodeFileURI(path, true)` (src/common/utils.ts): `encodeURI` plus `#`→`%23`, `?`→`%3F`.
/// json2csv quotes the header and every string.
#[test]
fn vott_url_encoded_names_are_decoded() {
    let f = project(&["my rocket #1.jpg", "b.jpg"]);
    f.write(
        "vott.csv",
        "\"image\",\"xmin\",\"ymin\",\"xmax\",\"ymax\",\"label\"\n\
         \"my%20rocket%20%231.jpg\",20,10,60,50,\"knot\"\n\
         \"b.jpg\",0,0,100,100,\"defect\"",
    );
    let out = f.ok(&["import", "vott.csv", "--format", "vott-csv"]);
    assert!(out.contains("imported 2 labels on 2 images"), "{out}");
    let l = labels(&f);
    assert_eq!(l[1].0, "my rocket #1.jpg");
    assert!(close(l[1].2, 0.1) && close(l[1].3, 0.1) && close(l[1].4, 0.3) && close(l[1].5, 0.5));
}

/// Rows whose image the project lacks: refused (exit 1, store unchanged, counted) unless
/// `--skip-missing`, which imports the rest and still says how many rows were left out.
#[test]
fn rows_that_cannot_be_placed_fail_unless_skip_missing() {
    let f = project(&["a.jpg", "b.jpg"]);
    f.write(
        "vott.csv",
        "\"image\",\"xmin\",\"ymin\",\"xmax\",\"ymax\",\"label\"\n\
         \"a.jpg\",20,10,60,50,\"knot\"\n\
         \"gone.jpg\",0,0,10,10,\"knot\"\n\
         \"gone.jpg\",5,5,10,10,\"knot\"\n\
         \"other%20gone.jpg\",0,0,10,10,\"knot\"",
    );
    f.write(
        "tagged.csv",
        "filename,class,xmin,xmax,ymin,ymax,height,width\r\n\
         a.jpg,knot,0.1,0.35,0.2,0.6,100,200\r\n\
         lost.jpg,knot,0.1,0.35,0.2,0.6,100,200\r\n\
         lost.jpg,defect,0.1,0.35,0.2,0.6,100,200\r\n",
    );
    let before = f.count("SELECT count(*) FROM journal");
    for (file, format, want) in [
        (
            "vott.csv",
            "vott-csv",
            "3 rows for 2 images not in this project",
        ),
        (
            "tagged.csv",
            "ald-csv",
            "2 rows for 1 image not in this project",
        ),
    ] {
        let e = f.fails(&["import", file, "--format", format]);
        assert!(e.contains(want) && e.contains("--skip-missing"), "{e}");
        assert!(e.contains("nothing imported"), "{e}");
        assert_eq!(labels(&f).len(), 0, "store unchanged");
        assert_eq!(f.count("SELECT count(*) FROM journal"), before);
    }
    // A COCO results list names images without a size: those the project lacks cannot be placed.
    f.write(
        "results.json",
        r#"[{"image_id": "a.jpg", "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9},
            {"image_id": "nowhere.jpg", "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.8}]"#,
    );
    let e = f.fails(&[
        "import",
        "results.json",
        "--format",
        "coco",
        "--as",
        "predictions",
    ]);
    assert!(
        e.contains("1 row for 1 image not in this project (`nowhere.jpg`)"),
        "{e}"
    );
    assert_eq!(f.count("SELECT count(*) FROM prediction"), 0);
    let out = f
        .cmd()
        .args([
            "import",
            "vott.csv",
            "--format",
            "vott-csv",
            "--skip-missing",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("imported 1 labels on 1 images"), "{stdout}");
    assert!(
        stdout.contains("skipped 3 rows (images not in the project)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "skipped 3 rows for 2 images not in this project (`gone.jpg`, `other%20gone.jpg`)"
        ),
        "{stderr}"
    );
    // A pipe gets no colour codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

//! A hostile-input corpus, generated here by code, run through the real binary. Every case ends
//! in its documented outcome (README "Bad input"): images get a `broken` mark with a reason (exit
//! 0), label files, `termtag.toml` and `labels.db` a one-line error naming the file (exit 1); the
//! store is unchanged and nothing panics.

mod common;

use std::path::Path;

use common::{Fixture, with_exif_orientation, write_image};
use image::{ImageFormat, Luma, Rgb, Rgb as Px, RgbImage};

fn jpeg_of(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

fn png_of(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// A photo-like JPEG well over 3000 bytes.
fn photo() -> Vec<u8> {
    jpeg_of(&image::DynamicImage::ImageRgb8(RgbImage::from_fn(
        320,
        240,
        |x, y| {
            Rgb([
                (x * 7 % 256) as u8,
                (y * 3 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        },
    )))
}

/// An 8×8 baseline CMYK JPEG (Adobe APP14, four components, one DC-only block each), written by
/// hand because no encoder at hand writes CMYK.
fn cmyk_jpeg() -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    let seg = |j: &mut Vec<u8>, marker: u8, body: &[u8]| {
        j.extend_from_slice(&[0xFF, marker]);
        j.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        j.extend_from_slice(body);
    };
    seg(&mut j, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1; 64]);
    seg(&mut j, 0xDB, &dqt);
    let mut sof = vec![8, 0, 8, 0, 8, 4];
    for id in 1..=4 {
        sof.extend_from_slice(&[id, 0x11, 0]);
    }
    seg(&mut j, 0xC0, &sof);
    // One Huffman code (`0`) per table: DC category 0, AC end-of-block.
    for class in [0x00, 0x10] {
        let mut dht = vec![class, 1];
        dht.extend_from_slice(&[0; 15]);
        dht.push(0);
        seg(&mut j, 0xC4, &dht);
    }
    let mut sos = vec![4];
    for id in 1..=4 {
        sos.extend_from_slice(&[id, 0x00]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    seg(&mut j, 0xDA, &sos);
    j.push(0x00); // four blocks × (DC `0`, EOB `0`) = 8 bits
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

/// A JPEG whose frame header claims `w`×`h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut j = photo();
    let sof = j.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

fn png_bad_crc() -> Vec<u8> {
    let mut p = png_of(&image::DynamicImage::ImageRgb8(RgbImage::new(20, 10)));
    // Signature (8) + IHDR length and type (8) + 13 bytes of IHDR: its CRC follows.
    p[29] ^= 0xFF;
    p
}

fn project_over(f: &Fixture) {
    f.init_detect("knot,defect", true);
}

fn no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
}

/// Image files: (name, bytes, Some(reason the mark carries) or None for a good picture).
#[test]
fn hostile_images_are_marked_broken_or_shown_upright() {
    let photo = photo();
    let gray = jpeg_of(&image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(
        30,
        20,
        |x, _| Luma([(x * 8) as u8]),
    )));
    let rgb16 = png_of(&image::DynamicImage::ImageRgb16(
        image::ImageBuffer::from_fn(30, 20, |x, _| Px([(x * 2000) as u16, 0u16, 65535u16])),
    ));
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("truncated.jpg", photo[..3000].to_vec(), Some("truncated")),
        ("empty.jpg", Vec::new(), Some("")),
        (
            "text.jpg",
            b"hello, I am not a picture\n".to_vec(),
            Some(""),
        ),
        ("bad_crc.png", png_bad_crc(), Some("")),
        (
            "huge.jpg",
            jpeg_claiming(60000, 60000),
            Some("60000×60000 is over the limit"),
        ),
        ("gray.jpg", gray, None),
        ("rgb16.png", rgb16, None),
        ("cmyk.jpg", cmyk_jpeg(), None),
        ("whole.jpg", photo.clone(), None),
    ];
    let f = Fixture::new();
    for (name, bytes, _) in &cases {
        std::fs::create_dir_all(f.images()).unwrap();
        std::fs::write(f.images().join(name), bytes).unwrap();
    }
    let out = f
        .cmd()
        .args([
            "init",
            f.project().to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            "knot",
            "--source",
            f.images().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    no_panic(&stderr);
    let broken = cases.iter().filter(|c| c.2.is_some()).count();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("added {} images ({broken} broken)", cases.len())),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for (name, _, want) in &cases {
        let (status, error): (String, Option<String>) = f
            .db()
            .query_row(
                "SELECT status, error FROM image WHERE key = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        match want {
            Some(reason) => {
                assert_eq!(status, "broken", "{name}");
                let error = error.unwrap_or_default();
                assert!(
                    !error.is_empty() && error.contains(reason),
                    "{name}: {error}"
                );
                assert!(
                    stderr.contains(&format!("broken: {name}: ")),
                    "{name} is reported: {stderr}"
                );
            }
            None => {
                assert_eq!(status, "new", "{name}: {error:?}");
                // What the review screen and predict decode: upright, whole.
                let img = termtag::decode::open_upright(&f.images().join(name), 250)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(img.width() > 0 && img.height() > 0);
            }
        }
    }
}

/// Names with escape sequences, newlines and bytes that are not UTF-8 never reach the terminal raw.
#[test]
fn hostile_file_names_are_escaped_or_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    let names: Vec<&[u8]> = vec![
        b"evil\x1b]0;pwned\x07\x1b[2J.png",
        b"two\nlines.png",
        b"not-utf8-\xff\xfe.png",
        b"ok.png",
    ];
    for n in &names {
        write_image(&f.images().join(std::ffi::OsStr::from_bytes(n)), 16, 12);
    }
    let out = f
        .cmd()
        .args([
            "init",
            f.project().to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            "knot",
            "--source",
            f.images().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let all = [out.stdout.clone(), out.stderr.clone()].concat();
    assert!(out.status.success());
    assert!(!all.contains(&0x1b) && !all.contains(&0x07), "{all:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not valid UTF-8; rename it"),
        "non-UTF-8 names are skipped with a warning: {stderr}"
    );
    let list = f.cmd().args(["images", "list"]).output().unwrap();
    assert!(list.status.success());
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("two\\u{a}lines.png"), "{text}");
    assert!(text.contains("evil\\u{1b}]0;pwned"), "{text}");
    assert_eq!(f.count("SELECT count(*) FROM image"), 3);
}

/// Malformed label files: (format, file name, content, what the error says).
fn label_cases() -> Vec<(&'static str, &'static str, String, &'static str)> {
    let coco = |images: &str, anns: &str| {
        format!(
            r#"{{"images": {images}, "annotations": {anns}, "categories": [{{"id": 1, "name": "knot"}}]}}"#
        )
    };
    let img = r#"[{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}]"#;
    let ann =
        |bbox: &str| format!(r#"[{{"id": 1, "image_id": 1, "category_id": 1, "bbox": {bbox}}}]"#);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let voc = |size: &str, bnd: &str| {
        format!(
            "<annotation><filename>a.jpg</filename><size>{size}</size><object><name>knot</name><bndbox>{bnd}</bndbox></object></annotation>"
        )
    };
    let good_size = "<width>200</width><height>100</height><depth>3</depth>";
    let h9 = "filename,class,xmin,xmax,ymin,ymax,height,width,folder\n";
    let jsonl = |label: &str| {
        format!(
            r#"{{"image_url": "a.jpg", "image_details": {{"format": "jpg", "width": 200, "height": 100}}, "label": {label}}}"#
        )
    };
    vec![
        // COCO
        (
            "coco",
            "wrong_type.json",
            coco(img, &ann(r#""10,10,5,5""#)),
            "bbox",
        ),
        (
            "coco",
            "missing_images.json",
            r#"{"annotations": [], "categories": []}"#.into(),
            "images",
        ),
        (
            "coco",
            "unknown_category.json",
            coco(
                img,
                r#"[{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1,1,5,5]}]"#,
            ),
            "no category has id 7",
        ),
        (
            "coco",
            "nan.json",
            coco(img, &ann("[NaN, 1, 5, 5]")),
            "line 1",
        ),
        (
            "coco",
            "negative.json",
            coco(img, &ann("[10, 10, -5, 5]")),
            "annotations[0]",
        ),
        (
            "coco",
            "huge.json",
            coco(img, &ann("[1e400, 1, 5, 5]")),
            "line 1",
        ),
        // 100 000 levels in an ignored field are skipped without a stack overflow.
        (
            "coco",
            "deep.json",
            format!(r#"{{"info": {deep}, "images": [], "annotations": []}}"#),
            "missing field `categories`",
        ),
        (
            "coco",
            "deep_typed.json",
            format!(r#"{{"images": {deep}}}"#),
            "$.images[0]",
        ),
        (
            "coco",
            "not_json.json",
            "\u{1b}[2J garbage".into(),
            "line 1",
        ),
        // Pascal VOC
        (
            "voc",
            "missing_box.xml",
            voc(good_size, "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"),
            "ymax",
        ),
        (
            "voc",
            "wrong_type.xml",
            voc(
                good_size,
                "<xmin>one</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>",
            ),
            "xmin",
        ),
        (
            "voc",
            "nan.xml",
            voc(
                good_size,
                "<xmin>NaN</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>",
            ),
            "xmin",
        ),
        (
            "voc",
            "negative_size.xml",
            voc(
                "<width>-200</width><height>100</height>",
                "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>",
            ),
            "width",
        ),
        ("voc", "not_xml.xml", "<annotation><object>".into(), ""),
        // YOLO (a folder with classes.txt and a.txt)
        ("yolo", "unknown_class", "7 0.5 0.5 0.1 0.1\n".into(), "7"),
        ("yolo", "nan", "0 NaN 0.5 0.1 0.1\n".into(), "NaN"),
        ("yolo", "few_fields", "0 0.5 0.5\n".into(), "line 1"),
        ("yolo", "huge", "0 1e400 0.5 0.1 0.1\n".into(), "line 1"),
        ("yolo", "negative", "0 0.5 0.5 -0.1 0.1\n".into(), "line 1"),
        // active-learning-detect CSV
        (
            "ald-csv",
            "nan.csv",
            format!("{h9}a.jpg,knot,NaN,0.2,0.1,0.2,100,200,\n"),
            "xmin `NaN` is not a number",
        ),
        (
            "ald-csv",
            "huge.csv",
            format!("{h9}a.jpg,knot,1e400,0.2,0.1,0.2,100,200,\n"),
            "not a number",
        ),
        (
            "ald-csv",
            "negative_size.csv",
            format!("{h9}a.jpg,knot,0.1,0.2,0.1,0.2,-100,200,\n"),
            "height",
        ),
        (
            "ald-csv",
            "missing_fields.csv",
            format!("{h9}a.jpg,knot,0.1\n"),
            "expected 9 columns",
        ),
        ("ald-csv", "binary.csv", "\u{0}\u{1}\u{2}".into(), "line 1"),
        // VoTT CSV
        (
            "vott-csv",
            "wrong_type.csv",
            "image,xmin,ymin,xmax,ymax,label\na.jpg,x,1,5,5,knot\n".into(),
            "xmin",
        ),
        (
            "vott-csv",
            "missing_column.csv",
            "image,xmin,ymin,xmax,label\n".into(),
            "missing column `ymax`",
        ),
        // Azure ML JSONL
        (
            "azureml-jsonl",
            "wrong_type.jsonl",
            jsonl(r#""knot""#),
            "line 1",
        ),
        (
            "azureml-jsonl",
            "missing_fields.jsonl",
            r#"{"label": []}"#.into(),
            "line 1",
        ),
        (
            "azureml-jsonl",
            "nan.jsonl",
            jsonl(r#"[{"label": "knot", "topX": NaN, "topY": 0, "bottomX": 1, "bottomY": 1}]"#),
            "line 1",
        ),
        // (Corner formats order swapped corners, so their "negative size" is a zero-area box.)
        (
            "azureml-jsonl",
            "zero_area.jsonl",
            jsonl(
                r#"[{"label": "knot", "topX": 0.5, "topY": 0.5, "bottomX": 0.5, "bottomY": 0.1}]"#,
            ),
            "zero area",
        ),
        (
            "azureml-jsonl",
            "huge.jsonl",
            jsonl(r#"[{"label": "knot", "topX": 1e400, "topY": 0, "bottomX": 1, "bottomY": 1}]"#),
            "line 1",
        ),
        ("azureml-jsonl", "deep.jsonl", deep, "line 1"),
    ]
}

#[test]
fn malformed_label_files_are_refused_with_one_line() {
    let f = Fixture::new();
    write_image(&f.images().join("a.jpg"), 200, 100);
    write_image(&f.images().join("b.jpg"), 200, 100);
    project_over(&f);
    let db = f.project().join(".termtag/labels.db");
    let fingerprint = || {
        (
            f.count("SELECT count(*) FROM annotation"),
            f.count("SELECT count(*) FROM prediction"),
            f.count("SELECT count(*) FROM journal"),
            f.count("SELECT count(*) FROM class"),
            f.count("SELECT count(*) FROM image WHERE status != 'new'"),
        )
    };
    let before = fingerprint();
    let mut failures = Vec::new();
    for (format, name, content, want) in label_cases() {
        let path = if format == "yolo" {
            f.write(&format!("yolo_{name}/classes.txt"), "knot\ndefect\n");
            f.write(&format!("yolo_{name}/a.txt"), &content);
            f.path(&format!("yolo_{name}"))
        } else {
            f.write(name, &content)
        };
        let out = f
            .cmd()
            .args(["import", path.to_str().unwrap(), "--format", format])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        no_panic(&stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("termtag:"))
            .collect();
        let ok = out.status.code() == Some(1)
            && lines.len() == 1
            && lines[0].contains(name)
            && lines[0].contains(want)
            && !stderr.contains('\u{1b}');
        if !ok {
            failures.push(format!(
                "{format} {name} (want {want:?}): {:?} {stderr}",
                out.status.code()
            ));
        }
        assert_eq!(fingerprint(), before, "{format} {name} changed the store");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(db.exists());
}

#[test]
fn an_invalid_termtag_toml_is_one_line_naming_it() {
    for bad in [
        "task = ",
        "task = \"segment\"",
        "[[[",
        "task = 3\nclasses = \"knot\"",
        "\u{1b}[2J",
    ] {
        let f = Fixture::new();
        write_image(&f.images().join("a.jpg"), 20, 10);
        project_over(&f);
        let toml = f.project().join("termtag.toml");
        std::fs::write(&toml, bad).unwrap();
        for args in [
            &["stats"][..],
            &["images", "list"],
            &["export", "--format", "coco", "x.json"],
        ] {
            let out = f.cmd().args(args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            no_panic(&stderr);
            assert_eq!(out.status.code(), Some(1), "{bad:?} {args:?}: {stderr}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{bad:?}: {stderr}");
            assert!(lines[0].contains("termtag.toml"), "{bad:?}: {stderr}");
            assert!(!stderr.contains('\u{1b}'), "{bad:?}: {stderr:?}");
        }
        assert_eq!(
            std::fs::read_to_string(&toml).unwrap(),
            bad,
            "left as it was"
        );
    }
}

/// Damages a file in place.
type Spoil = Box<dyn Fn(&Path)>;

/// A damaged `labels.db`: garbage bytes, a truncated file, a schema version no build writes.
#[test]
fn a_corrupt_labels_db_is_one_line_and_left_alone() {
    let f = Fixture::new();
    write_image(&f.images().join("a.jpg"), 20, 10);
    project_over(&f);
    let db = f.project().join(".termtag/labels.db");
    let good = std::fs::read(&db).unwrap();
    let damage: Vec<(&str, Spoil)> = vec![
        (
            "garbage",
            Box::new(|p: &Path| {
                std::fs::write(p, b"this is not sqlite at all, sorry".repeat(200)).unwrap()
            }),
        ),
        (
            "truncated",
            Box::new(move |p: &Path| {
                std::fs::write(p, &std::fs::read(p).unwrap()[..1000]).unwrap()
            }),
        ),
        ("version -1", Box::new(|p: &Path| set_version(p, -1))),
        ("version 999", Box::new(|p: &Path| set_version(p, 999))),
    ];
    for (what, spoil) in damage {
        std::fs::write(&db, &good).unwrap();
        for side in ["labels.db-wal", "labels.db-shm"] {
            let _ = std::fs::remove_file(f.project().join(".termtag").join(side));
        }
        spoil(&db);
        let spoiled = std::fs::read(&db).unwrap();
        let out = f.cmd().args(["stats"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        no_panic(&stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.contains("labels.db"), "{what}: {stderr}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            spoiled,
            "{what}: the file is left as it was"
        );
    }
}

fn set_version(db: &Path, v: i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute("UPDATE schema_version SET version = ?1", [v])
        .unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

/// Every EXIF orientation: a box drawn on the displayed picture is stored on the displayed
/// picture and leaves in every format as it came in.
#[test]
fn boxes_follow_every_exif_orientation_through_every_format() {
    for o in 1..=8u16 {
        let f = Fixture::new();
        let img = RgbImage::from_fn(40, 20, |x, _| Rgb([(x * 5) as u8, 0, 0]));
        let jpeg = jpeg_of(&image::DynamicImage::ImageRgb8(img));
        std::fs::create_dir_all(f.images()).unwrap();
        std::fs::write(f.images().join("r.jpg"), with_exif_orientation(&jpeg, o)).unwrap();
        project_over(&f);
        let (w, h) = if o >= 5 { (20, 40) } else { (40, 20) };
        let (dw, dh): (i64, i64) = f
            .db()
            .query_row("SELECT width, height FROM image", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((dw, dh), (w, h), "orientation {o}: displayed size");
        let shown = termtag::decode::open_upright(&f.images().join("r.jpg"), 250).unwrap();
        assert_eq!(
            (shown.width() as i64, shown.height() as i64),
            (w, h),
            "orientation {o}"
        );
        // A box on the displayed picture: x 10%..50%, y 20%..60%.
        let (bx, by, bw, bh) = (
            0.1 * w as f64,
            0.2 * h as f64,
            0.4 * w as f64,
            0.4 * h as f64,
        );
        f.write(
            "in.json",
            &format!(
                r#"{{"images": [{{"id": 1, "file_name": "r.jpg", "width": {w}, "height": {h}}}],
                "annotations": [{{"id": 1, "image_id": 1, "category_id": 1, "bbox": [{bx}, {by}, {bw}, {bh}]}}],
                "categories": [{{"id": 1, "name": "knot"}}]}}"#
            ),
        );
        f.ok(&["import", "in.json", "--format", "coco"]);
        let stored: (f64, f64, f64, f64) = f
            .db()
            .query_row("SELECT x0, y0, x1, y1 FROM annotation", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        let near = |a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)| {
            (a.0 - b.0).abs() < 1e-6
                && (a.1 - b.1).abs() < 1e-6
                && (a.2 - b.2).abs() < 1e-6
                && (a.3 - b.3).abs() < 1e-6
        };
        assert!(
            near(stored, (0.1, 0.2, 0.5, 0.6)),
            "orientation {o}: {stored:?}"
        );
        for (format, out) in [
            ("coco", "out.json"),
            ("voc", "voc_out"),
            ("yolo", "yolo_out"),
            ("ald-csv", "out.csv"),
            ("azureml-jsonl", "out.jsonl"),
        ] {
            f.ok(&["export", "--format", format, out]);
            // Into a second project over the same file: the same box comes back.
            let g = Fixture::new();
            std::fs::create_dir_all(g.images()).unwrap();
            std::fs::copy(f.images().join("r.jpg"), g.images().join("r.jpg")).unwrap();
            project_over(&g);
            let src = f.path(out);
            let out = g
                .cmd()
                .args(["import", src.to_str().unwrap(), "--format", format])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "orientation {o} {format}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let back: (f64, f64, f64, f64) = g
                .db()
                .query_row("SELECT x0, y0, x1, y1 FROM annotation", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .unwrap();
            assert!(
                near(back, stored),
                "orientation {o} {format}: {back:?} vs {stored:?}"
            );
        }
    }
}

/// A 1 GB line (written once, linked under each format's name): refused by its length within
/// a few seconds instead of parsed for minutes into gigabytes; one line, store unchanged.
#[test]
fn a_one_gigabyte_line_is_refused_by_its_length() {
    use std::io::Write;
    let f = Fixture::new();
    write_image(&f.images().join("a.jpg"), 200, 100);
    project_over(&f);
    let journal = f.count("SELECT count(*) FROM journal");
    let big = f.path("big.txt");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        w.write_all(b"a.jpg,knot,").unwrap();
        let chunk = vec![b'7'; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"\n").unwrap();
    }
    std::fs::create_dir_all(f.path("yolo")).unwrap();
    f.write("yolo/classes.txt", "knot\ndefect\n");
    let cases = [
        ("ald-csv", "big.csv", "big.csv"),
        ("azureml-jsonl", "big.jsonl", "big.jsonl"),
        ("vott-csv", "vott.csv", "vott.csv"),
        ("yolo", "yolo/a.txt", "yolo"),
    ];
    for (format, link, arg) in cases {
        std::fs::hard_link(&big, f.path(link)).unwrap();
        let out = f
            .cmd()
            .args(["import", f.path(arg).to_str().unwrap(), "--format", format])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        no_panic(&stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("termtag:"))
            .collect();
        assert_eq!(lines.len(), 1, "{format}: {stderr}");
        assert!(
            lines[0].contains("line 1: 1024 MB long, over the 16 MB a label line may have"),
            "{format}: {}",
            &lines[0][..lines[0].len().min(400)]
        );
        assert!(lines[0].len() < 400, "the line is not echoed");
        assert_eq!(f.count("SELECT count(*) FROM annotation"), 0);
        assert_eq!(f.count("SELECT count(*) FROM journal"), journal);
        std::fs::remove_file(f.path(link)).unwrap();
    }
}

//! The project commands end to end: init, refresh, stats, images, classes, bad input.

mod common;

use common::{Fixture, write_image, write_rotated_jpeg};

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    let mut chunk = kind.to_vec();
    chunk.extend_from_slice(data);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
}

/// A small file whose PNG header declares `w`×`h` (a decompression bomb, in effect).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn init_detect(f: &Fixture) -> String {
    f.ok(&[
        "init",
        f.project().to_str().unwrap(),
        "--task",
        "detect",
        "--classes",
        "knot,defect",
        "--source",
        f.images().to_str().unwrap(),
    ])
}

#[test]
fn init_indexes_every_format_recursively_and_records_broken_files() {
    let f = Fixture::new();
    for name in [
        "a.jpg",
        "b.JPEG",
        "sub/c.png",
        "sub/deep/d.bmp",
        "e.webp",
        "f.tiff",
    ] {
        write_image(&f.images().join(name), 32, 24);
    }
    f.write("images/notes.txt", "not an image");
    f.write("images/broken.jpg", "this is not a jpeg");
    std::fs::write(f.images().join("huge.png"), png_header_only(30_000, 30_000)).unwrap();

    let out = init_detect(&f);
    assert!(out.contains("added 8 images (2 broken)"), "{out}");
    assert_eq!(
        f.count("SELECT count(*) FROM image WHERE status = 'new'"),
        6
    );
    assert_eq!(
        f.count(
            "SELECT count(*) FROM image WHERE key = 'sub/deep/d.bmp' AND width = 32 AND height = 24"
        ),
        1
    );
    let list = f.ok(&["images", "list", "--filter", "status=broken"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("broken.jpg\tbroken\t"), "{list}");
    assert!(
        lines[1].starts_with("huge.png\tbroken\t30000x30000"),
        "{list}"
    );
    assert!(
        lines[1].contains("over the limit of 250 megapixels"),
        "{list}"
    );
    // The config file is documented and re-readable.
    let toml = f.read("proj/termtag.toml");
    assert!(toml.contains("task = \"detect\""), "{toml}");
    assert!(
        toml.contains("# Model predictions scoring at least this"),
        "{toml}"
    );
}

#[test]
fn refresh_adds_only_new_files() {
    let f = Fixture::new();
    write_image(&f.images().join("a.png"), 10, 10);
    init_detect(&f);
    let added_at = f.count("SELECT added_at FROM image WHERE key = 'a.png'");
    write_image(&f.images().join("new/b.png"), 10, 10);
    let out = f.ok(&["refresh"]);
    assert!(out.contains("added 1 images"), "{out}");
    assert_eq!(f.count("SELECT count(*) FROM image"), 2);
    assert_eq!(
        f.count("SELECT added_at FROM image WHERE key = 'a.png'"),
        added_at
    );
    let out = f.ok(&["refresh"]);
    assert!(out.contains("added 0 images"), "{out}");
    // Re-running init on the project is a refresh that also adds classes.
    write_image(&f.images().join("c.png"), 10, 10);
    let out = f.init_detect("knot,bark", false);
    assert!(out.contains("added 1 images"), "{out}");
    assert_eq!(
        f.count("SELECT count(*) FROM class WHERE name IN ('knot','defect','bark')"),
        3
    );
}

#[test]
fn exif_rotated_jpeg_is_indexed_with_its_displayed_size() {
    let f = Fixture::new();
    write_rotated_jpeg(&f.images().join("phone.jpg"), 40, 20, 6);
    write_rotated_jpeg(&f.images().join("upside.jpg"), 40, 20, 3);
    init_detect(&f);
    let row: (u32, u32, u8) = f
        .db()
        .query_row(
            "SELECT width, height, orientation FROM image WHERE key = 'phone.jpg'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, (20, 40, 6));
    let row: (u32, u32, u8) = f
        .db()
        .query_row(
            "SELECT width, height, orientation FROM image WHERE key = 'upside.jpg'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, (40, 20, 3));
}

#[test]
fn bad_config_and_names_give_one_line_errors() {
    let f = Fixture::new();
    write_image(&f.images().join("a.png"), 10, 10);
    let e = f.fails(&[
        "init",
        f.project().to_str().unwrap(),
        "--task",
        "detect",
        "--classes",
        "ok,not ok",
    ]);
    assert!(e.contains("`not ok`") && e.contains("1 to 32"), "{e}");
    init_detect(&f);

    let e = f.fails(&["classes", "rename", "knot", "knot/round"]);
    assert!(e.contains("`knot/round`"), "{e}");
    let e = f.fails(&["classes", "rename", "knot", "defect"]);
    assert!(e.contains("classes merge"), "{e}");
    let e = f.fails(&["classes", "rename", "nope", "x"]);
    assert!(e.contains("no class `nope`"), "{e}");

    let toml = f.read("proj/termtag.toml");
    f.write(
        "proj/termtag.toml",
        &toml.replace("prelabel_threshold", "prelabel_treshold"),
    );
    let e = f.fails(&["stats"]);
    assert!(
        e.contains("termtag.toml: line ") && e.contains("`prelabel_treshold`"),
        "{e}"
    );
    f.write("proj/termtag.toml", &toml);

    let e = f.fails(&["images", "list", "--filter", "colour=red"]);
    assert!(e.contains("unknown filter key `colour`"), "{e}");
    let e = f.fails(&["images", "rm", "../../etc/passwd"]);
    assert!(e.contains("no image"), "{e}");
}

#[test]
fn no_project_says_how_to_make_one() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.project()).unwrap();
    let e = f.fails(&["stats"]);
    assert!(e.contains("termtag init"), "{e}");
}

#[test]
fn images_rm_can_delete_the_source_file() {
    let f = Fixture::new();
    write_image(&f.images().join("a.png"), 10, 10);
    write_image(&f.images().join("sub/b.png"), 10, 10);
    init_detect(&f);
    let out = f.ok(&["images", "rm", "a.png"]);
    assert!(out.contains("removed 1 images"), "{out}");
    assert!(f.images().join("a.png").exists());
    let out = f.ok(&["images", "rm", "sub/b.png", "--delete-source"]);
    assert!(out.contains("deleted 1 files"), "{out}");
    assert!(!f.images().join("sub/b.png").exists());
    assert_eq!(f.count("SELECT count(*) FROM image"), 0);
    // The file left in the source stays out of the project on the next refresh.
    write_image(&f.images().join("c.png"), 10, 10);
    let out = f.ok(&["refresh"]);
    assert!(out.contains("added 1 images"), "{out}");
    assert_eq!(f.count("SELECT count(*) FROM image WHERE key = 'c.png'"), 1);
}

#[test]
fn escape_sequences_in_file_names_never_reach_the_terminal() {
    let f = Fixture::new();
    write_image(&f.images().join("evil\u{1b}[2Jname.png"), 10, 10);
    init_detect(&f);
    let list = f.ok(&["images", "list"]);
    assert!(!list.contains('\u{1b}'), "{list:?}");
    assert!(list.contains("evil\\u{1b}[2Jname.png"), "{list}");
}

#[test]
fn stats_counts_statuses_and_classes() {
    let f = Fixture::new();
    write_image(&f.images().join("a.png"), 10, 10);
    f.write("images/bad.png", "nope");
    init_detect(&f);
    let out = f.ok(&["stats"]);
    assert!(out.contains("2 images"), "{out}");
    assert!(out.contains("status: broken 1, new 1"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("knot") && l.ends_with("0       0")),
        "{out}"
    );
}

#[test]
fn doctor_reports_graphics_and_a_shared_folder_remote() {
    let f = Fixture::new();
    write_image(&f.path("remote/activelearningimages/a.png"), 10, 10);
    write_image(&f.path("remote/activelearningimages/b.png"), 10, 10);
    f.init_detect("knot", false);
    let out = f.ok(&["doctor"]);
    assert!(out.contains("graphics: not a terminal"), "{out}");
    assert!(out.contains("blob storage: not used"), "{out}");
    let toml = f.read("proj/termtag.toml");
    f.write(
        "proj/termtag.toml",
        &format!(
            "{toml}\n[remote]\nfolder = \"{}\"\n",
            f.path("remote").display()
        ),
    );
    let out = f.ok(&["doctor"]);
    assert!(out.contains("answers; first page lists 2 images"), "{out}");
}

//! A full disk under the label store, an export and the image cache: one clear line, a non-zero
//! exit, nothing half-written, and the same command completes once there is room.
//!
//! The project folder's disk is filled with a file-size limit (`ulimit -f`, SIGXFSZ ignored, so
//! writes fail with `EFBIG` as they would with `ENOSPC`); the cache's with a real 100 KB tmpfs
//! mounted over `.termtag/cache` in a private mount namespace (`unshare -Urm`), or, where user
//! namespaces are not allowed, with the file-size limit too.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Fixture, write_image};

fn termtag() -> &'static str {
    env!("CARGO_BIN_EXE_termtag")
}

/// `termtag -C proj args…` with files limited to `kb` KiB.
fn with_file_limit(fx: &Fixture, kb: u64, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kb}; exec \"$@\""))
        .arg("bash")
        .arg(termtag())
        .arg("-C")
        .arg(fx.project())
        .args(args)
        .current_dir(fx.dir.path())
        .env("USER", "tester")
        .output()
        .unwrap()
}

/// The one `termtag:` line of a failed run.
fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("termtag:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}

fn integrity(fx: &Fixture) {
    let ok: String = fx
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// 300 images and a COCO file with 6,000 boxes on them.
fn project_and_coco(fx: &Fixture) -> String {
    for i in 0..300 {
        write_image(&fx.images().join(format!("{i}.png")), 32, 24);
    }
    fx.init_detect("knot", true);
    let images: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"id":{i},"file_name":"{i}.png","width":32,"height":24}}"#))
        .collect();
    let anns: Vec<String> = (0..6000)
        .map(|k| {
            format!(
                r#"{{"id":{k},"image_id":{},"category_id":1,"bbox":[1,1,10,10]}}"#,
                k % 300
            )
        })
        .collect();
    let coco = format!(
        r#"{{"images":[{}],"annotations":[{}],"categories":[{{"id":1,"name":"knot"}}]}}"#,
        images.join(","),
        anns.join(",")
    );
    fx.write("coco.json", &coco).to_string_lossy().into_owned()
}

#[test]
fn import_on_a_full_disk_saves_nothing_and_runs_again() {
    let fx = Fixture::new();
    let coco = project_and_coco(&fx);
    let db = fx.project().join(".termtag/labels.db");
    let kb = std::fs::metadata(&db).unwrap().len() / 1024 + 32;
    let line = failure(&with_file_limit(
        &fx,
        kb,
        &["import", &coco, "--format", "coco"],
    ));
    assert!(
        line.contains("labels.db") && line.contains("none of this command's changes were saved"),
        "{line}"
    );
    integrity(&fx);
    assert_eq!(fx.count("SELECT count(*) FROM annotation"), 0);
    let out = fx.ok(&["import", &coco, "--format", "coco"]);
    assert!(out.contains("imported 6000 labels on 300 images"), "{out}");
    integrity(&fx);
}

#[test]
fn export_on_a_full_disk_keeps_the_earlier_file_whole() {
    let fx = Fixture::new();
    let coco = project_and_coco(&fx);
    fx.ok(&["import", &coco, "--format", "coco"]);
    let out = fx.path("out.json");
    std::fs::write(&out, "the earlier export").unwrap();
    let line = failure(&with_file_limit(
        &fx,
        64,
        &["export", "--format", "coco", out.to_str().unwrap()],
    ));
    assert!(line.contains("out.json: file too large"), "{line}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "the earlier export");
    // A per-image format: the folder holds whole files or none, and no temporary files.
    let yolo = fx.path("yolo");
    failure(&with_file_limit(
        &fx,
        1,
        &["export", "--format", "yolo", yolo.to_str().unwrap()],
    ));
    let leftovers: Vec<_> = walk(fx.dir.path())
        .into_iter()
        .filter(|p| p.contains(".termtag-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fx.ok(&["export", "--format", "coco", out.to_str().unwrap()]);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.ends_with('}') || written.ends_with("}\n"),
        "whole JSON"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p.to_string_lossy().into_owned());
    }
    out
}

#[test]
fn pull_into_a_full_cache_keeps_its_claims_and_resumes() {
    let fx = Fixture::new();
    let remote = fx.path("remote");
    for i in 0..20u32 {
        // About 120 KB each (noise does not compress): none fits in the 100 KB cache, nor under
        // the 64 KB file-size limit.
        let p = remote.join(format!("activelearningimages/q{i:02}.png"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let img = image::RgbImage::from_fn(200, 200, |x, y| {
            // A hash of the position: noise that PNG cannot shrink.
            let mut h = x.wrapping_mul(73_856_093)
                ^ y.wrapping_mul(19_349_663)
                ^ i.wrapping_mul(83_492_791);
            h = h.wrapping_mul(0x9E37_79B1);
            h ^= h >> 15;
            h = h.wrapping_mul(0x85EB_CA77);
            h ^= h >> 13;
            let [r, g, b, _] = h.to_le_bytes();
            image::Rgb([r, g, b])
        });
        img.save(&p).unwrap();
        assert!(
            std::fs::metadata(&p).unwrap().len() > 100 << 10,
            "incompressible"
        );
    }
    std::fs::create_dir_all(remote.join("activelearninglabels")).unwrap();
    fx.init_detect("knot", false);
    let toml = fx.read("proj/termtag.toml");
    fx.write(
        "proj/termtag.toml",
        &format!("{toml}\n[remote]\nfolder = \"{}\"\n", remote.display()),
    );
    let cache = fx.project().join(".termtag/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = Command::new("unshare")
        .args(["-Urm", "sh", "-c"])
        .arg("mount -t tmpfs -o size=100k tmpfs \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&cache)
        .arg(termtag())
        .arg("-C")
        .arg(fx.project())
        .args(["pull", "--count", "20"])
        .env("USER", "tester")
        .output()
        .expect("unshare (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    let (out, full) = if err.contains("unshare:") || err.contains("mount:") {
        // No user namespaces here: a file-size limit under the 120 KB images instead (the store
        // and the pull's journal stay under it), so every cache write fails.
        eprintln!("no private tmpfs ({}); using a file-size limit", err.trim());
        (
            with_file_limit(&fx, 64, &["pull", "--count", "20"]),
            "cannot write: file too large",
        )
    } else {
        (out, "cannot write: no storage space")
    };
    let line = failure(&out);
    assert!(
        line.contains(full) && line.contains("20 claims are kept; free space"),
        "{line}"
    );
    assert_eq!(fx.count("SELECT count(*) FROM image"), 0);
    integrity(&fx);
    let claims = || {
        std::fs::read_dir(remote.join("activelearninglabels/termtag/claims"))
            .unwrap()
            .count()
    };
    assert_eq!(claims(), 20, "the claims stay ours for the resumed pull");
    let out = fx.ok(&["pull", "--count", "20"]);
    assert!(
        out.contains("resumed 20 claims") && out.contains("pulled 20 images"),
        "{out}"
    );
    assert_eq!(claims(), 20);
    assert_eq!(fx.count("SELECT count(*) FROM image"), 20);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 20);
    integrity(&fx);
}

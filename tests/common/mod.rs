//! Shared helpers for the integration tests: real image files and a CLI runner on a temp project.
#![allow(dead_code)]

pub mod tmux;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{Rgb, RgbImage};

/// A model of tests/fixtures/onnx (made by scripts/make_onnx_fixtures.py).
pub fn onnx_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Tests that predict need ONNX Runtime: they fail, saying so, without ORT_DYLIB_PATH.
pub fn need_runtime() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none_or(|v| v.is_empty()) {
        panic!(
            "ORT_DYLIB_PATH is not set: run the tests with scripts/test.sh, which installs ONNX Runtime and sets it"
        );
    }
}

/// Writes a `w`×`h` image (format from the extension) with a gradient, so it is a real picture.
pub fn write_image(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, 128]));
    img.save(path).unwrap();
}

/// Writes a JPEG stored as `raw_w`×`raw_h` pixels with an EXIF orientation tag, as phones do.
pub fn write_rotated_jpeg(path: &Path, raw_w: u32, raw_h: u32, orientation: u16) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(raw_w, raw_h, |x, _| Rgb([(x * 5) as u8, 0, 0]));
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    std::fs::write(path, with_exif_orientation(&jpeg, orientation)).unwrap();
}

/// Inserts an APP1 Exif segment holding one Orientation tag right after the JPEG's SOI marker.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A temp folder with an image source and a project beside it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }
    pub fn project(&self) -> PathBuf {
        self.dir.path().join("proj")
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// `termtag` run with `-C project` (the project need not exist for `init`).
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("termtag").unwrap();
        c.current_dir(self.dir.path())
            .env("USER", "tester")
            .env_remove("TERMTAG_LOG")
            .arg("-C")
            .arg(self.project());
        c
    }
    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "termtag {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// Runs a command that must fail; returns its stderr, checked to be one line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(!out.status.success(), "termtag {args:?} should have failed");
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("termtag:")).collect();
        assert_eq!(lines.len(), 1, "one error line expected: {err}");
        lines[0].to_string()
    }
    /// `termtag init` of a detection project with these classes (comma-separated), its images
    /// in `images/` when `with_source`, else none (a remote project). Returns its stdout.
    pub fn init_detect(&self, classes: &str, with_source: bool) -> String {
        let project = self.project();
        let images = self.images();
        let mut args = vec![
            "init",
            project.to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            classes,
        ];
        if with_source {
            args.extend(["--source", images.to_str().unwrap()]);
        }
        self.ok(&args)
    }
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }
    /// Direct read access to the store, as a user's sqlite3 would see it.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.project().join(".termtag/labels.db")).unwrap()
    }
    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

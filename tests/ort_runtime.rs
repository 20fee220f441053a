//! What termtag says when ONNX Runtime is missing, is not ONNX Runtime, is too old or is another
//! major version — and that everything that needs no model still works. The wrong runtimes are
//! real shared libraries built here with `cc` from tests/fixtures/fake_ort/fake_ort.c.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, write_image};

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx/tf_od.onnx")
        .to_string_lossy()
        .into_owned()
}

/// Builds the fake runtime reporting `version` (or, with `None`, a library without
/// `OrtGetApiBase`) into `dir`.
fn fake_runtime(dir: &Path, version: Option<&str>) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_ort/fake_ort.c");
    let (name, source) = match version {
        Some(v) => (format!("libonnxruntime.so.{v}"), src),
        None => {
            let plain = dir.join("plain.c");
            std::fs::write(&plain, "int not_onnx_runtime(void) { return 1; }\n").unwrap();
            ("libonnxruntime.so".to_string(), plain)
        }
    };
    let out = dir.join(name);
    let mut cc = Command::new("cc");
    cc.args(["-shared", "-fPIC", "-o"]).arg(&out).arg(&source);
    if let Some(v) = version {
        cc.arg(format!("-DVERSION=\"{v}\""));
    }
    let status = cc
        .status()
        .expect("a C compiler `cc` (the Rust toolchain's linker)");
    assert!(status.success(), "cc failed for {source:?}");
    out
}

/// A detect project with one image and one label, so export and stats have something to say.
fn project() -> Fixture {
    let fx = Fixture::new();
    write_image(&fx.images().join("a.png"), 64, 48);
    fx.init_detect("knot,defect", true);
    fx.write(
        "labels.csv",
        "filename,class,xmin,xmax,ymin,ymax,height,width,folder\na.png,knot,0.1,0.5,0.2,0.6,48,64,\n",
    );
    let csv = fx.path("labels.csv");
    fx.ok(&["import", csv.to_str().unwrap(), "--format", "ald-csv"]);
    fx
}

/// `predict` fails with one line containing `expected` and naming the library; the store is
/// unchanged and the commands that need no model still work.
fn refused(fx: &Fixture, lib: &Path, expected: &str) {
    let before = fx.count("SELECT count(*) FROM model_run");
    let out = fx
        .cmd()
        .env("ORT_DYLIB_PATH", lib)
        .args(["predict", "--model", &model()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("termtag:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(expected), "{expected:?} not in {err}");
    let name = lib.file_name().unwrap().to_string_lossy();
    assert!(lines[0].contains(name.as_ref()), "{name} not named: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(fx.count("SELECT count(*) FROM model_run"), before);

    for args in [
        vec!["stats"],
        vec!["images", "list"],
        vec!["export", "--format", "coco", "out.json"],
    ] {
        let out = fx
            .cmd()
            .env("ORT_DYLIB_PATH", lib)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} must work without a usable runtime: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let coco = std::fs::read_to_string(fx.path("out.json")).unwrap();
    assert!(coco.contains("\"knot\""), "{coco}");
    // `doctor` reports the runtime problem instead of crashing.
    let out = fx
        .cmd()
        .env("ORT_DYLIB_PATH", lib)
        .arg("doctor")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "doctor: {all}");
    assert!(
        all.contains("onnxruntime: not available") && all.contains(expected),
        "doctor: {all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn missing_runtime() {
    let fx = project();
    refused(
        &fx,
        &fx.path("nowhere/libonnxruntime.so.1.31.1"),
        "ORT_DYLIB_PATH",
    );
    let out = fx
        .cmd()
        .env(
            "ORT_DYLIB_PATH",
            fx.path("nowhere/libonnxruntime.so.1.31.1"),
        )
        .args(["predict", "--model", &model()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "no such file; point it at libonnxruntime.so* (e.g. from `pip install onnxruntime`)"
        ),
        "{err}"
    );
}

#[test]
fn a_library_that_is_not_onnx_runtime() {
    let fx = project();
    let lib = fake_runtime(fx.dir.path(), None);
    refused(&fx, &lib, "not ONNX Runtime");
}

#[test]
fn a_runtime_too_old() {
    let fx = project();
    let lib = fake_runtime(fx.dir.path(), Some("1.10.0"));
    refused(&fx, &lib, "ONNX Runtime 1.10.0 is too old");
}

#[test]
fn another_major_version() {
    let fx = project();
    let lib = fake_runtime(fx.dir.path(), Some("2.1.0"));
    refused(&fx, &lib, "ONNX Runtime 2.1.0 is a different major version");
}

#[test]
fn a_runtime_without_the_api_level() {
    let fx = project();
    let lib = fake_runtime(fx.dir.path(), Some("1.99.0"));
    refused(&fx, &lib, "does not provide the C API level");
}

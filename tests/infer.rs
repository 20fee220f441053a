//! The adapters through real ONNX Runtime, on the tiny models of `scripts/make_onnx_fixtures.py`
//! (tests/fixtures/onnx). Expected boxes are worked out by hand in the comments; image sizes are
//! chosen so that the pixel ↔ normalised conversions are exact.
//!
//! These tests need the ONNX Runtime library: `scripts/test.sh` installs it and sets
//! ORT_DYLIB_PATH. Without it they fail, saying so.

mod common;

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use termtag::infer::adapters::{self, AdapterCtx, RawPred};
use termtag::infer::config::{ModelConfig, OnnxRuntimeConfig};
use termtag::infer::preprocess::{self, InputData, Layout};
use termtag::infer::runtime::{self, Runtime};
use termtag::infer::session;
use termtag::model::{BBox, Task};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

fn rt() -> Runtime {
    runtime::load(&OnnxRuntimeConfig::default(), None).unwrap_or_else(|e| {
        panic!("{e}\nrun the tests with scripts/test.sh: it installs ONNX Runtime and sets ORT_DYLIB_PATH")
    })
}

/// Runs `model` on `img` with `cfg`, through the adapter it detects; returns its name and the
/// predictions (model class ids).
fn run(
    model: &str,
    img: &RgbImage,
    cfg: &ModelConfig,
    task: Task,
    labels: Option<usize>,
) -> (String, Vec<RawPred>) {
    let rt = rt();
    let path = fixture(model);
    let mut m = session::open(&rt, &path, &OnnxRuntimeConfig::default()).unwrap();
    assert_eq!(m.provider, "CPU");
    let ctx = AdapterCtx {
        cfg,
        task,
        num_labels: labels,
        automl_labels: path.parent().unwrap().join("labels.json").is_file(),
        threshold: 0.05,
    };
    let adapter = adapters::choose(&m.info, &ctx).unwrap();
    let spec = adapter.input().clone();
    let p = preprocess::prepare(img, &spec, &mut fast_image_resize::Resizer::new()).unwrap();
    let (h, w) = (i64::from(p.geom.in_h), i64::from(p.geom.in_w));
    let shape = match spec.layout {
        Layout::Nhwc => [1, h, w, 3],
        Layout::Nchw => [1, 3, h, w],
    };
    let mut data = p.data.clone();
    // A fixed batch larger than one gets padding, as the pipeline does.
    for _ in 1..(if spec.fixed_batch { spec.batch } else { 1 }) {
        data.extend(&match &p.data {
            InputData::U8(v) => InputData::U8(vec![0; v.len()]),
            InputData::F32(v) => InputData::F32(vec![0.0; v.len()]),
        });
    }
    let outs = m.run(&spec.name, &shape, &data).unwrap();
    let preds = adapter.decode(&outs, 0, &p.geom).unwrap();
    (adapter.kind().as_str().to_string(), preds)
}

fn grey(w: u32, h: u32) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb([90, 90, 90]))
}

fn bb(x0: f64, y0: f64, x1: f64, y1: f64) -> Option<BBox> {
    Some(BBox { x0, y0, x1, y1 })
}

fn f(v: f32) -> f64 {
    f64::from(v)
}

#[test]
fn tf_od_boxes() {
    // Any-size uint8 input: 256×128 goes in as is. Slots: (ymin .1, xmin .2, ymax .5, xmax .6)
    // 0.9 class 1; (0, 0, 1, 1) 0.3 class 3; 0.01 (under the threshold); a fourth slot past
    // num_detections = 3.
    let (kind, p) = run(
        "tf_od.onnx",
        &grey(256, 128),
        &ModelConfig::default(),
        Task::Detect,
        None,
    );
    assert_eq!(kind, "tf_od");
    assert_eq!(
        p,
        vec![
            RawPred {
                class: 1,
                score: 0.9,
                bbox: bb(f(0.2), f(0.1), f(0.6), f(0.5))
            },
            RawPred {
                class: 3,
                score: 0.3,
                bbox: bb(0.0, 0.0, 1.0, 1.0)
            },
        ]
    );
}

#[test]
fn yolo_v8_head_with_nms() {
    // 128×64 letterboxed into 64×64: scale 0.5, 16 rows of padding above and below.
    // A (32,32,32,16) → input (16,24)-(48,40) → (0.25,0.25)-(0.75,0.75), class 0, 0.9;
    // B overlaps A (IoU 0.94, class 0) → suppressed; C same place, class 1, 0.7 → kept,
    // (17,24)-(49,40) → x 17/64, 49/64; E (56,40,8,8) → (52,36)-(60,44) → x 0.8125..0.9375,
    // y (36−16)/32 = 0.625..0.875; F overlaps E (IoU 0.78) → suppressed; G lies in the padding;
    // D scores under the threshold.
    let (kind, p) = run(
        "yolo_v8.onnx",
        &grey(128, 64),
        &ModelConfig::default(),
        Task::Detect,
        None,
    );
    assert_eq!(kind, "yolo");
    assert_eq!(
        p,
        vec![
            RawPred {
                class: 0,
                score: 0.9,
                bbox: bb(0.25, 0.25, 0.75, 0.75)
            },
            RawPred {
                class: 1,
                score: 0.7,
                bbox: bb(17.0 / 64.0, 0.25, 49.0 / 64.0, 0.75)
            },
            RawPred {
                class: 0,
                score: 0.6,
                bbox: bb(0.8125, 0.625, 0.9375, 0.875)
            },
        ]
    );
    // The class count from a labels file picks the same layout.
    let (_, q) = run(
        "yolo_v8.onnx",
        &grey(128, 64),
        &ModelConfig::default(),
        Task::Detect,
        Some(2),
    );
    assert_eq!(p, q);
}

#[test]
fn yolo_v5_head_with_objectness() {
    // [1, 10, 7] channels last with objectness: 0.9 × 0.8 class 1 at A's place; the second
    // (0.8 × 0.7, class 1) overlaps it → suppressed; 0.5 × 0.9 class 0 at E's place; objectness
    // 0.04 under the threshold.
    let (kind, p) = run(
        "yolo_v5.onnx",
        &grey(128, 64),
        &ModelConfig::default(),
        Task::Detect,
        None,
    );
    assert_eq!(kind, "yolo");
    assert_eq!(
        p,
        vec![
            RawPred {
                class: 1,
                score: 0.9f32 * 0.8f32,
                bbox: bb(0.25, 0.25, 0.75, 0.75)
            },
            RawPred {
                class: 0,
                score: 0.5f32 * 0.9f32,
                bbox: bb(0.8125, 0.625, 0.9375, 0.875)
            },
        ]
    );
}

#[test]
fn automl_faster_rcnn() {
    // Input 80×60 stretched from 160×120 (scale 0.5): (8,6,40,30) → (0.1,0.1)-(0.5,0.5);
    // (0,0,80,60) → the whole image; (70,50,90,70) → clipped to (0.875, 50/60)-(1,1).
    let (kind, p) = run(
        "automl_rcnn/model.onnx",
        &grey(160, 120),
        &ModelConfig::default(),
        Task::Detect,
        None,
    );
    assert_eq!(kind, "automl");
    assert_eq!(
        p,
        vec![
            RawPred {
                class: 1,
                score: 0.95,
                bbox: bb(0.1, 0.1, 0.5, 0.5)
            },
            RawPred {
                class: 2,
                score: 0.5,
                bbox: bb(0.0, 0.0, 1.0, 1.0)
            },
            RawPred {
                class: 1,
                score: 0.8,
                bbox: bb(0.875, 50.0 / 60.0, 1.0, 1.0)
            },
        ]
    );
}

#[test]
fn automl_yolo_rows() {
    // (n, 6) rows in the letterboxed 64×64 input of a 128×64 image.
    let (kind, p) = run(
        "automl_yolo/model.onnx",
        &grey(128, 64),
        &ModelConfig::default(),
        Task::Detect,
        None,
    );
    assert_eq!(kind, "automl");
    assert_eq!(
        p,
        vec![
            RawPred {
                class: 1,
                score: 0.9,
                bbox: bb(0.25, 0.25, 0.75, 0.75)
            },
            RawPred {
                class: 0,
                score: 0.3,
                bbox: bb(0.0, 0.0, 1.0, 1.0)
            },
        ]
    );
}

fn red8() -> RgbImage {
    RgbImage::from_pixel(8, 8, Rgb([255, 0, 0]))
}

#[test]
fn classifier_float_input_softmax() {
    // Mean colour × 10 = logits (10, 0, 0): softmax 1 / (1 + 2e−10) and e−10 / (1 + 2e−10).
    let (kind, p) = run(
        "classify_f32.onnx",
        &red8(),
        &ModelConfig::default(),
        Task::Classify,
        None,
    );
    assert_eq!(kind, "classify");
    let e = (-10f32).exp();
    let s = 1.0 + e + e;
    assert_eq!(
        p,
        vec![
            RawPred {
                class: 0,
                score: 1.0 / s,
                bbox: None
            },
            RawPred {
                class: 1,
                score: e / s,
                bbox: None
            },
        ]
    );
}

#[test]
fn classifier_uint8_input_sigmoid_for_multilabel() {
    // uint8 NHWC: 255 × 10/255 ≈ 10 → sigmoid ≈ 0.9999546; the others 0 → 0.5.
    let (kind, p) = run(
        "classify_u8.onnx",
        &red8(),
        &ModelConfig::default(),
        Task::Multilabel,
        None,
    );
    assert_eq!(kind, "classify");
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].class, 0);
    assert!(
        (f64::from(p[0].score) - 1.0 / (1.0 + (-10f64).exp())).abs() < 1e-6,
        "{p:?}"
    );
    assert_eq!((p[1].class, p[1].score), (1, 0.5));
    assert_eq!((p[2].class, p[2].score), (2, 0.5));
}

#[test]
fn automl_classifier_imagenet_normalised() {
    // labels.json beside the model makes it AutoML: ImageNet normalisation, so red becomes
    // ((1 − 0.485)/0.229, (0 − 0.456)/0.224, (0 − 0.406)/0.225) and those are the logits.
    let (kind, p) = run(
        "automl_cls/model.onnx",
        &red8(),
        &ModelConfig::default(),
        Task::Classify,
        None,
    );
    assert_eq!(kind, "automl");
    let l = [(1.0 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225f64];
    let z: f64 = l.iter().map(|v| v.exp()).sum();
    assert_eq!(p[0].class, 0);
    assert!(
        (f64::from(p[0].score) - l[0].exp() / z).abs() < 1e-5,
        "{p:?}"
    );
    assert_eq!(p[1].class, 2, "blue's logit is the larger of the two zeros");
}

#[test]
fn adapter_override_and_unknown_model() {
    let rt = rt();
    let m = session::open(&rt, &fixture("unknown.onnx"), &OnnxRuntimeConfig::default()).unwrap();
    let cfg = ModelConfig::default();
    let ctx = AdapterCtx {
        cfg: &cfg,
        task: Task::Detect,
        num_labels: None,
        automl_labels: false,
        threshold: 0.05,
    };
    let e = adapters::choose(&m.info, &ctx).err().unwrap().to_string();
    assert!(e.contains("no adapter recognises this model"), "{e}");
    assert!(
        e.contains("inputs: x float32[1,3,8,8]; outputs: y float32[1,3,8,8]"),
        "{e}"
    );
    assert!(e.contains("[model] adapter"), "{e}");

    // Forcing an adapter that cannot read the model says why.
    let cfg = ModelConfig {
        adapter: Some(termtag::infer::config::AdapterKind::TfOd),
        ..ModelConfig::default()
    };
    let ctx = AdapterCtx { cfg: &cfg, ..ctx };
    let e = adapters::choose(&m.info, &ctx).err().unwrap().to_string();
    assert!(
        e.contains("the tf_od adapter cannot read this model"),
        "{e}"
    );
}

#[test]
fn runtime_reports_its_version_and_providers() {
    let rt = rt();
    // The version comes from the library's build string; the pip wheel's file name carries the
    // same one, so the two sources must agree.
    let name = rt.path.file_name().unwrap().to_string_lossy().into_owned();
    if let Some(from_name) = name.split(".so.").nth(1) {
        assert_eq!(
            rt.version,
            from_name,
            "{}",
            termtag::infer::runtime::min_version()
        );
    }
    assert!(
        termtag::infer::runtime::check_version(&rt.version, &rt.path).is_ok(),
        "{}",
        rt.version
    );
    // The providers the runtime reports: CPU always; CUDA exactly when its provider plug-in
    // ships beside the library (the onnxruntime-gpu wheel), never a constant.
    let p = runtime::providers();
    assert!(p.names.contains(&"CPUExecutionProvider"), "{:?}", p.names);
    let cuda_plugin = rt
        .path
        .with_file_name("libonnxruntime_providers_cuda.so")
        .exists();
    assert_eq!(p.cuda, cuda_plugin, "{:?}", p.names);
    assert_eq!(p.cuda, p.names.contains(&"CUDAExecutionProvider"));
    let lines = termtag::infer::doctor_lines(None);
    assert!(lines[0].starts_with("onnxruntime: "), "{lines:?}");
    assert_eq!(
        lines[1],
        format!(
            "execution providers reported by this ONNX Runtime: {}",
            p.names.join(", ")
        )
    );
    assert_eq!(
        lines.iter().any(|l| l.contains("no CUDA provider")),
        !p.cuda,
        "{lines:?}"
    );
}

// ---- Detectors that really look at the pixels ----------------------------------------------
//
// square_tf_od.onnx (uint8 NHWC, any size, stretched) and square_yolo.onnx (float NCHW,
// letterboxed to the 64×64 its metadata names) find the red square: the centroid and spread of
// the red channel above 0.6. Every image also holds a blue square elsewhere, so swapped channels
// put the box on the blue one; wrong NHWC/NCHW packing or letterbox offsets move it too.

const DARK: Rgb<u8> = Rgb([30, 30, 30]);

/// A `w`×`h` dark image with a red square at (x, y, side) and a blue one at (bx, by, side).
fn squares(w: u32, h: u32, red: (u32, u32, u32), blue: (u32, u32, u32)) -> RgbImage {
    let inside = |x: u32, y: u32, (sx, sy, s): (u32, u32, u32)| {
        x >= sx && x < sx + s && y >= sy && y < sy + s
    };
    RgbImage::from_fn(w, h, |x, y| {
        if inside(x, y, red) {
            Rgb([255, 0, 0])
        } else if inside(x, y, blue) {
            Rgb([0, 0, 255])
        } else {
            DARK
        }
    })
}

/// The one box `model` finds on `img`, checked against the red square's box (normalised).
fn assert_finds(model: &str, img: &RgbImage, want: BBox, tol: f64) {
    let (_, p) = run(model, img, &ModelConfig::default(), Task::Detect, None);
    assert_eq!(p.len(), 1, "{model}: {p:?}");
    let got = p[0].bbox.expect("a box");
    for (g, w, what) in [
        (got.x0, want.x0, "x0"),
        (got.y0, want.y0, "y0"),
        (got.x1, want.x1, "x1"),
        (got.y1, want.y1, "y1"),
    ] {
        assert!(
            (g - w).abs() <= tol,
            "{model}: {what} {g:.4}, want {w:.4} (±{tol}); got {got:?}, want {want:?}"
        );
    }
}

fn norm(w: u32, h: u32, (x, y, s): (u32, u32, u32)) -> BBox {
    let (w, h) = (f64::from(w), f64::from(h));
    BBox {
        x0: f64::from(x) / w,
        y0: f64::from(y) / h,
        x1: f64::from(x + s) / w,
        y1: f64::from(y + s) / h,
    }
}

#[test]
fn nhwc_uint8_box_lands_on_the_square() {
    // Fed at its own size: the moments are exact.
    for (w, h, red, blue) in [
        (120, 90, (50, 20, 20), (5, 60, 20)),
        (64, 160, (10, 120, 30), (30, 10, 24)),
        (96, 96, (70, 70, 16), (8, 8, 16)),
    ] {
        assert_finds(
            "square_tf_od.onnx",
            &squares(w, h, red, blue),
            norm(w, h, red),
            1e-4,
        );
    }
}

#[test]
fn nchw_float_letterboxed_box_lands_on_the_square() {
    // Wide: 128×64 → 64×32 with 16 rows of grey above and below. Tall: 60×120 → 32×64 with 16
    // columns each side. Square: no padding. Bilinear shrinking blurs the edges, so within
    // about one input pixel (1/64 of the input, 2/64 of the shorter image side).
    for (w, h, red, blue) in [
        (128, 64, (64, 16, 32), (8, 8, 24)),
        (60, 120, (10, 70, 30), (20, 10, 30)),
        (200, 200, (20, 120, 50), (120, 20, 50)),
    ] {
        assert_finds(
            "square_yolo.onnx",
            &squares(w, h, red, blue),
            norm(w, h, red),
            0.035,
        );
    }
}

#[test]
fn exif_rotated_images_are_predicted_upright() {
    // Stored 160×100 with EXIF 6 (turn 90° clockwise to view): upright 100×160. A raw pixel
    // (x, y) shows at (H − 1 − y, x), so the red square at raw (20, 10, 30) shows at
    // (100 − 10 − 30, 20) = (60, 20); the blue one at raw (110, 60, 30) at (10, 110).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.jpg");
    let raw = squares(160, 100, (20, 10, 30), (110, 60, 30));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&raw)
        .unwrap();
    std::fs::write(&path, common::with_exif_orientation(&jpeg, 6)).unwrap();
    let upright = preprocess::decode_image(&path, 100, 0).unwrap();
    assert_eq!(upright.dimensions(), (100, 160));
    let want = norm(100, 160, (60, 20, 30));
    // JPEG softens the edges a little.
    assert_finds("square_tf_od.onnx", &upright, want, 0.02);
    assert_finds("square_yolo.onnx", &upright, want, 0.04);
}

#[test]
fn ultralytics_metadata_is_read() {
    let rt = rt();
    let m = session::open(
        &rt,
        &fixture("square_yolo.onnx"),
        &OnnxRuntimeConfig::default(),
    )
    .unwrap();
    let meta = &m.info.meta;
    assert_eq!(meta.names.get(&0).map(String::as_str), Some("red square"));
    assert_eq!(meta.imgsz, Some((64, 64)));
    assert_eq!(
        (meta.task.as_deref(), meta.stride),
        (Some("detect"), Some(32))
    );
    // The free input size takes the metadata's imgsz, not YOLO's default 640.
    let cfg = ModelConfig::default();
    let ctx = AdapterCtx {
        cfg: &cfg,
        task: Task::Detect,
        num_labels: Some(1),
        automl_labels: false,
        threshold: 0.05,
    };
    let a = adapters::choose(&m.info, &ctx).unwrap();
    assert_eq!(a.kind().as_str(), "yolo");
    assert!(a.summary().contains("64×64"), "{}", a.summary());

    // A `-cls` export: task classify picks the classifier, and its softmax output is read as
    // probabilities (a second softmax would flatten 0.9999 to about 0.58).
    let (kind, p) = run(
        "ultralytics_cls.onnx",
        &red8(),
        &ModelConfig::default(),
        Task::Classify,
        None,
    );
    assert_eq!(kind, "classify");
    assert_eq!(p[0].class, 0);
    assert!(p[0].score > 0.999, "{p:?}");
}

#[test]
fn large_jpeg_decodes_scaled_and_upright() {
    // Raw 1600×800, left half red, right half blue, EXIF 6 (rotate 90° clockwise): upright it
    // is 800×1600 with red on top. Asking for a 400 px long side decodes at 1/4: 200×400.
    let dir = tempfile::tempdir().unwrap();
    let raw = RgbImage::from_fn(1600, 800, |x, _| {
        if x < 800 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut jpeg = Vec::new();
    raw.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let path = dir.path().join("r.jpg");
    std::fs::write(&path, common::with_exif_orientation(&jpeg, 6)).unwrap();
    let small = preprocess::decode_image(&path, 100, 400).unwrap();
    assert_eq!(small.dimensions(), (200, 400));
    let top = small.get_pixel(100, 20);
    let bottom = small.get_pixel(100, 380);
    assert!(top[0] > 200 && top[2] < 50, "{top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 50, "{bottom:?}");
    let full = preprocess::decode_image(&path, 100, 0).unwrap();
    assert_eq!(full.dimensions(), (800, 1600));
    // From memory (a downloaded blob), scaled: the size reported is the full image's, upright.
    let bytes = std::fs::read(&path).unwrap();
    let (small, size) = preprocess::decode_bytes(&bytes, 100, 400).unwrap();
    assert_eq!((small.dimensions(), size), ((200, 400), (800, 1600)));
    let (_, size) = preprocess::decode_bytes(&bytes, 100, 0).unwrap();
    assert_eq!(size, (800, 1600));
    let e = preprocess::decode_image(&path, 1, 400)
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the limit of 1 megapixels"), "{e}");
}

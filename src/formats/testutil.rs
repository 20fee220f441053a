//! What the format tests share: fixture paths, a small project index, labels and box checks.

use std::path::{Path, PathBuf};

use super::{ExportCtx, ImageIndex, ImportCtx, KnownImage};
use crate::model::{BBox, Dataset, ImageLabels, Label, Task};

/// `tests/fixtures/<format>/<name>`.
pub fn fixture(format: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format)
        .join(name)
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An image of the project, upright.
pub fn known(key: &str, width: u32, height: u32) -> KnownImage {
    KnownImage {
        key: key.into(),
        width,
        height,
        orientation: 1,
    }
}

/// A project of `(key, width, height)` images.
pub fn index(images: &[(&str, u32, u32)]) -> ImageIndex {
    ImageIndex::new(images.iter().map(|&(k, w, h)| known(k, w, h)).collect())
}

pub fn bb(x0: f64, y0: f64, x1: f64, y1: f64) -> BBox {
    BBox { x0, y0, x1, y1 }
}

/// A box given as a `BBox` or as its corners `(x0, y0, x1, y1)`.
pub trait Corners {
    fn corners(self) -> (f64, f64, f64, f64);
}

impl Corners for BBox {
    fn corners(self) -> (f64, f64, f64, f64) {
        (self.x0, self.y0, self.x1, self.y1)
    }
}

impl Corners for (f64, f64, f64, f64) {
    fn corners(self) -> (f64, f64, f64, f64) {
        self
    }
}

/// A detection label.
pub fn det(class: &str, b: impl Corners, score: Option<f64>) -> Label {
    let (x0, y0, x1, y1) = b.corners();
    Label {
        class: class.into(),
        bbox: Some(BBox { x0, y0, x1, y1 }),
        score,
    }
}

/// A classification label.
pub fn cls(class: &str, score: Option<f64>) -> Label {
    Label {
        class: class.into(),
        bbox: None,
        score,
    }
}

/// `got` is a box within 1e-9 of `want` on every corner.
pub fn assert_box(got: Option<BBox>, want: impl Corners) {
    let b = got.expect("a box");
    let (got, want) = (b.corners(), want.corners());
    for (g, w) in [
        (got.0, want.0),
        (got.1, want.1),
        (got.2, want.2),
        (got.3, want.3),
    ] {
        assert!((g - w).abs() < 1e-9, "got {got:?}, want {want:?}");
    }
}

/// `back`, read back from an export of `want`, holds the same images in the same order with the
/// same labels: boxes (and, with `scores`, scores) within the 1e-6 the formats write.
pub fn assert_round_trip(back: &[ImageLabels], want: &[ImageLabels], scores: bool) {
    assert_eq!(back.len(), want.len());
    for (a, b) in back.iter().zip(want) {
        assert_eq!((&a.key, a.width, a.height), (&b.key, b.width, b.height));
        assert_eq!(a.labels.len(), b.labels.len(), "{}", a.key);
        for (la, lb) in a.labels.iter().zip(&b.labels) {
            assert_eq!(la.class, lb.class);
            assert_eq!(la.bbox.is_some(), lb.bbox.is_some(), "{}", a.key);
            if let (Some(p), Some(q)) = (la.bbox, lb.bbox) {
                for (x, y) in [(p.x0, q.x0), (p.y0, q.y0), (p.x1, q.x1), (p.y1, q.y1)] {
                    assert!((x - y).abs() < 1e-6, "{p:?} vs {q:?}");
                }
            }
            if scores {
                assert!((la.score.unwrap() - lb.score.unwrap()).abs() < 1e-6);
            }
        }
    }
}

/// How a detect project imports: nothing known but the images of `images`.
pub fn detect_import(images: &ImageIndex, predictions: bool) -> ImportCtx<'_> {
    ImportCtx {
        task: Task::Detect,
        images,
        classes: &[],
        predictions,
    }
}

/// How a detect project exports to `out`.
pub fn detect_export(out: &Path, predictions: bool) -> ExportCtx<'_> {
    ExportCtx {
        task: Task::Detect,
        out,
        predictions,
        url_prefix: "",
    }
}

/// `l` is a `class` label with the box `want`.
pub fn assert_label(l: &Label, class: &str, want: impl Corners) {
    assert_eq!(l.class, class);
    assert_box(l.bbox, want);
}

/// Three images: two boxes (one with a score), none, and one box on a non-square image.
pub fn detect_dataset() -> Dataset {
    Dataset {
        classes: vec!["knot".into(), "crack".into()],
        images: vec![
            ImageLabels {
                key: "a/st1026.jpg".into(),
                width: 640,
                height: 480,
                labels: vec![
                    det("knot", bb(0.1, 0.1, 0.3, 0.3), Some(0.9)),
                    det("crack", bb(0.5, 0.5, 0.75, 0.625), None),
                ],
            },
            ImageLabels {
                key: "b/empty.png".into(),
                width: 320,
                height: 240,
                labels: vec![],
            },
            ImageLabels {
                key: "c.jpg".into(),
                width: 100,
                height: 50,
                labels: vec![det(
                    "crack",
                    bb(1.0 / 3.0, 0.2, 2.0 / 3.0, 0.6),
                    Some(1.0 / 3.0),
                )],
            },
        ],
    }
}

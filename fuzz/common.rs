//! The bodies of the fuzz targets, shared by `cargo fuzz` (fuzz/fuzz_targets/) and the seeded
//! stable run (tests/fuzz_seeded.rs). Each takes arbitrary bytes and must end in a value or a clean
//! error: a panic is a crash. What an importer accepts must also hold: finite, normalised, ordered
//! boxes.

use std::path::{Path, PathBuf};

use termtag::formats::{FormatKind, ImageIndex, ImportCtx, KnownImage};
use termtag::infer::adapters::{AdapterCtx, choose};
use termtag::infer::config::{AdapterKind, ModelConfig};
use termtag::infer::preprocess::Geometry;
use termtag::infer::session::{DType, ModelInfo, Output, TensorInfo};
use termtag::model::Task;

pub const FORMATS: [(FormatKind, &str); 7] = [
    (FormatKind::Coco, "json"),
    (FormatKind::Voc, "xml"),
    (FormatKind::Yolo, "txt"),
    (FormatKind::AldCsv, "csv"),
    (FormatKind::AzuremlJsonl, "jsonl"),
    (FormatKind::ModelartsTxt, "txt"),
    (FormatKind::VottCsv, "csv"),
];

fn scratch(ext: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "termtag-fuzz-{}-{}.{ext}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Every importer on `data`, for every task, as labels and as predictions.
pub fn import(data: &[u8]) {
    let index = ImageIndex::new(
        [
            ("a.jpg", 200, 100, 1),
            ("sub/b.png", 64, 128, 6),
            ("c.jpg", 1, 1, 3),
        ]
        .iter()
        .map(|&(k, w, h, o)| KnownImage {
            key: k.into(),
            width: w,
            height: h,
            orientation: o,
        })
        .collect(),
    );
    let classes = vec!["knot".to_string(), "defect".to_string()];
    for (kind, ext) in FORMATS {
        let path = scratch(ext);
        if std::fs::write(&path, data).is_err() {
            continue;
        }
        for task in [Task::Detect, Task::Classify, Task::Multilabel] {
            for predictions in [false, true] {
                let ctx = ImportCtx {
                    task,
                    images: &index,
                    classes: &classes,
                    predictions,
                };
                if let Ok(got) = kind.import(&path, &ctx) {
                    check_imported(&got.dataset, kind);
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

fn check_imported(ds: &termtag::model::Dataset, kind: FormatKind) {
    for im in &ds.images {
        for l in &im.labels {
            if let Some(b) = l.bbox {
                let ok = [b.x0, b.y0, b.x1, b.y1]
                    .iter()
                    .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
                    && b.x0 < b.x1
                    && b.y0 < b.y1;
                assert!(ok, "{}: box {b:?} accepted", kind.name());
            }
            if let Some(s) = l.score {
                assert!(s.is_finite(), "{}: score {s} accepted", kind.name());
            }
        }
    }
}

/// The project-file parser.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = termtag::project::Config::parse(text, Path::new("termtag.toml"));
    }
}

/// A cursor over the fuzz input that never runs out (zeros after the end).
struct Bytes<'a>(&'a [u8], usize);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        b
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// A dimension: small, sometimes dynamic (-1).
    fn dim(&mut self) -> i64 {
        match self.u8() {
            0 => -1,
            b => i64::from(b % 24),
        }
    }
}

/// The model-output decoders: a model whose declared and actual outputs have any shape, any
/// length and any values (NaN, infinities), forced to each adapter. True when an adapter accepted
/// the model and decoding ran.
pub fn outputs(data: &[u8]) -> bool {
    let mut b = Bytes(data, 0);
    let adapter = [
        AdapterKind::TfOd,
        AdapterKind::Yolo,
        AdapterKind::Automl,
        AdapterKind::Classify,
    ][usize::from(b.u8() % 4)];
    let input_shape = match b.u8() % 6 {
        0 | 1 => vec![1, 3, 32, 32],
        2 | 3 => vec![-1, -1, -1, 3],
        4 => vec![2, 32, 32, 3],
        _ => (0..usize::from(b.u8() % 6)).map(|_| b.dim()).collect(),
    };
    // Mostly the layout the adapter expects, with fuzzed sizes; sometimes anything at all.
    let n = b.dim();
    let nc = b.dim();
    let layout: Vec<(String, Vec<i64>)> = match (adapter, b.u8() % 4) {
        (_, 0) => {
            let names = [
                "detection_boxes",
                "detection_scores",
                "detection_classes",
                "num_detections",
                "boxes_0",
                "labels_0",
                "scores_0",
                "output0",
            ];
            (0..usize::from(b.u8() % 5))
                .map(|_| {
                    let name = names[usize::from(b.u8()) % names.len()].to_string();
                    let shape = (0..usize::from(b.u8() % 4)).map(|_| b.dim()).collect();
                    (name, shape)
                })
                .collect()
        }
        (AdapterKind::TfOd, _) => vec![
            ("detection_boxes".into(), vec![1, n, 4]),
            ("detection_scores".into(), vec![1, n]),
            ("detection_classes".into(), vec![1, n]),
            ("num_detections".into(), vec![1]),
        ],
        (AdapterKind::Yolo, k) => vec![(
            "output0".into(),
            if k == 1 {
                vec![1, 4 + nc, n]
            } else {
                vec![1, n, 5 + nc]
            },
        )],
        (AdapterKind::Automl, 1) => vec![("output0".into(), vec![n, 6])],
        (AdapterKind::Automl, _) => (0..=usize::from(b.u8() % 2))
            .flat_map(|i| {
                [
                    (format!("boxes_{i}"), vec![n, 4]),
                    (format!("labels_{i}"), vec![n]),
                    (format!("scores_{i}"), vec![n]),
                ]
            })
            .collect(),
        (AdapterKind::Classify, _) => vec![("output0".into(), vec![1, nc])],
    };
    let mut declared = Vec::new();
    let mut actual = Vec::new();
    for (name, shape) in layout {
        // The run may give another shape than declared, and data of another length.
        let run_shape: Vec<usize> = shape
            .iter()
            .map(|&d| {
                if d < 0 || b.u8() % 8 == 0 {
                    usize::from(b.u8() % 8)
                } else {
                    d as usize
                }
            })
            .collect();
        let len = if b.u8() % 4 == 0 {
            usize::from(b.u8())
        } else {
            run_shape.iter().product::<usize>().min(4096)
        };
        let values: Vec<f32> = (0..len)
            .map(|_| match b.u8() % 8 {
                0 => b.f32(),
                1 => f32::NAN,
                2 => f32::INFINITY,
                _ => f32::from(b.u8()) / 255.0,
            })
            .collect();
        declared.push(TensorInfo {
            name: name.clone(),
            dtype: DType::F32,
            shape,
        });
        actual.push(Output {
            name,
            dtype: DType::F32,
            shape: run_shape,
            data: values,
        });
    }
    let info = ModelInfo {
        inputs: vec![TensorInfo {
            name: "images".into(),
            dtype: if b.u8() % 2 == 0 {
                DType::U8
            } else {
                DType::F32
            },
            shape: input_shape,
        }],
        outputs: declared,
        meta: Default::default(),
    };
    let cfg = ModelConfig {
        adapter: Some(adapter),
        ..ModelConfig::default()
    };
    let ctx = AdapterCtx {
        cfg: &cfg,
        task: [Task::Detect, Task::Classify, Task::Multilabel][usize::from(b.u8() % 3)],
        num_labels: (b.u8() % 2 == 0).then(|| usize::from(b.u8() % 10)),
        automl_labels: b.u8() % 2 == 0,
        threshold: f32::from(b.u8()) / 255.0,
    };
    let Ok(a) = choose(&info, &ctx) else {
        return false;
    };
    let spec = a.input();
    let geom = Geometry::new(
        u32::from(b.u8()) + 1,
        u32::from(b.u8()) + 1,
        spec.size,
        spec.fit,
    );
    for batch in 0..spec.batch.min(4) {
        if let Ok(preds) = a.decode(&actual, batch, &geom) {
            for p in preds {
                if let Some(bx) = p.bbox {
                    assert!(
                        [bx.x0, bx.y0, bx.x1, bx.y1].iter().all(|v| v.is_finite()),
                        "{}: non-finite box {bx:?}",
                        adapter.as_str()
                    );
                }
            }
        }
    }
    true
}

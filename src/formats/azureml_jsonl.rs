//! Azure ML JSONL, the data format of AutoML for Images: one JSON object per line, one line per image.
//!
//! ```text
//! {"image_url":"…","image_details":{"format":"jpg","width":"499px","height":"666px"},
//!  "label":[{"label":"can","topX":0.26,"topY":0.40,"bottomX":0.73,"bottomY":0.70,"isCrowd":0}]}
//! ```
//! (one line in the file). Multi-label: `"label":["a","b"]`; multi-class: `"label":"a"`.
//! Coordinates are normalised. Export also writes an `MLTable` file beside the `.jsonl` so that
//! Azure ML can load it as a data asset (`image_url` as a stream column).
//!
//! Predictions: detection boxes carry `"score"` (as AutoML's own prediction output does);
//! classification lines carry a `"scores"` object, class name → score, in label order. Neither is
//! part of the training format; AutoML ignores them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ExportCtx, FormatError, ImportCtx, Imported, norm_box, read_lines, round6, write_file,
};
use crate::model::{Dataset, ImageLabels, Label, Task};
use crate::sanitize::{check_relative_key, for_terminal};

// ---------------------------------------------------------------------------------------------
// Import

/// A JSON number; its own type so that a wrong value reads "expected a number".
struct Num(f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// An image side in pixels: AutoML writes `"499px"`; plain `"499"` and `499` are accepted too.
struct Px(u32);

impl<'de> Deserialize<'de> for Px {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Px;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pixel size such as \"499px\" or 499")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Px, E> {
                u32::try_from(v)
                    .map(Px)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Px, E> {
                u32::try_from(v)
                    .map(Px)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Px, E> {
                if v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) {
                    // Whole and in range, checked just above.
                    Ok(Px(v as u32))
                } else {
                    Err(E::invalid_value(Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Px, E> {
                let t = v.trim();
                t.strip_suffix("px")
                    .unwrap_or(t)
                    .trim()
                    .parse::<u32>()
                    .map(Px)
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RawLine {
    image_url: String,
    #[serde(default)]
    image_details: Option<RawDetails>,
    /// Checked against the task before it is read as boxes, names or a name.
    label: Value,
    #[serde(default)]
    scores: Option<HashMap<String, Num>>,
}

/// `format` is not read: the image file says what it is.
#[derive(Deserialize)]
struct RawDetails {
    width: Option<Px>,
    height: Option<Px>,
}

/// `isCrowd` is not read: termtag has no crowd boxes, so they import as ordinary boxes.
#[derive(Deserialize)]
struct RawBox {
    label: String,
    #[serde(rename = "topX")]
    top_x: Num,
    #[serde(rename = "topY")]
    top_y: Num,
    #[serde(rename = "bottomX")]
    bottom_x: Num,
    #[serde(rename = "bottomY")]
    bottom_y: Num,
    score: Option<Num>,
}

/// A JSON path for messages: `$`, `$.label[1].topX`.
fn json_path(prefix: &str, p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." {
        prefix.to_string()
    } else if s.starts_with('[') {
        format!("{prefix}{s}")
    } else {
        format!("{prefix}.{s}")
    }
}

/// Deserializes `v` into `T`, naming the JSON path of the first problem.
fn typed<'a, T: Deserialize<'a>>(
    v: &'a Value,
    path: &Path,
    line: usize,
    prefix: &str,
) -> Result<T, FormatError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        FormatError::invalid(
            path,
            format!("line {line}: {}", json_path(prefix, e.path())),
            e.inner(),
        )
    })
}

/// What a `label` value looks like, for a message when it does not fit the task.
fn shape(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "one class name (the multi-class layout)",
        Value::Array(a) if a.iter().all(Value::is_string) => {
            "a list of class names (the multi-label layout)"
        }
        Value::Array(a) if a.iter().all(Value::is_object) => {
            "a list of boxes (the detection layout)"
        }
        Value::Array(_) => "a list of mixed values",
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::Object(_) => "an object",
    }
}

fn fits(task: Task, v: &Value) -> bool {
    match (task, v) {
        (Task::Classify, Value::String(_)) => true,
        (Task::Multilabel, Value::Array(a)) => a.iter().all(Value::is_string),
        (Task::Detect, Value::Array(a)) => a.iter().all(Value::is_object),
        _ => false,
    }
}

fn expected(task: Task) -> &'static str {
    match task {
        Task::Detect => r#"a list of boxes like [{"label":"can","topX":0.26,...}]"#,
        Task::Classify => r#"one class name like "can""#,
        Task::Multilabel => r#"a list of class names like ["can","carton"]"#,
    }
}

/// Reads one image per non-blank line. `image_url` is kept as written (the caller resolves it by
/// its path tail); `classes` lists the class names met, in order of first appearance.
pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    let text = read_lines(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Imported::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut classes: Vec<String> = Vec::new();

    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let at = format!("line {n}");
        let value: Value = serde_json::from_str(raw).map_err(|e| {
            // serde_json appends "at line 1 column C"; within one line only the column matters.
            let msg = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
            FormatError::invalid(
                path,
                &at,
                format!("malformed JSON at column {}: {msg}", e.column()),
            )
        })?;
        if !value.is_object() {
            return Err(FormatError::invalid(
                path,
                format!("{at}: $"),
                format!("expected one JSON object per line, found {}", shape(&value)),
            ));
        }
        let line: RawLine = typed(&value, path, n, "$")?;

        let key = line.image_url;
        if key.trim().is_empty() {
            return Err(FormatError::invalid(
                path,
                format!("{at}: $.image_url"),
                "image_url is empty",
            ));
        }
        if let Some(first) = seen.insert(key.clone(), n) {
            return Err(FormatError::invalid(
                path,
                format!("{at}: $.image_url"),
                format!(
                    "image `{}` is already on line {first}; give each image one line",
                    for_terminal(&key)
                ),
            ));
        }

        if !fits(ctx.task, &line.label) {
            return Err(FormatError::invalid(
                path,
                format!("{at}: $.label"),
                format!(
                    "found {}, but the project's task is {}: expected {}",
                    shape(&line.label),
                    ctx.task,
                    expected(ctx.task)
                ),
            ));
        }
        let scores = line.scores.unwrap_or_default();
        let score_of = |class: &str| {
            if ctx.predictions {
                scores.get(class).map(|s| s.0)
            } else {
                None
            }
        };
        let class_label = |class: String| Label {
            score: score_of(&class),
            class,
            bbox: None,
        };

        let labels = match ctx.task {
            Task::Detect => {
                let boxes: Vec<RawBox> = typed(&line.label, path, n, "$.label")?;
                let mut labels = Vec::with_capacity(boxes.len());
                for (j, b) in boxes.into_iter().enumerate() {
                    let place = format!("{at}: $.label[{j}]");
                    let corners = (b.top_x.0, b.top_y.0, b.bottom_x.0, b.bottom_y.0);
                    let bbox = norm_box(corners, path, &place, &mut out.warnings)?;
                    labels.push(Label {
                        class: b.label,
                        bbox: Some(bbox),
                        score: b.score.filter(|_| ctx.predictions).map(|s| s.0),
                    });
                }
                labels
            }
            Task::Multilabel => {
                let names: Vec<String> = typed(&line.label, path, n, "$.label")?;
                for (j, name) in names.iter().enumerate() {
                    if names[..j].contains(name) {
                        return Err(FormatError::invalid(
                            path,
                            format!("{at}: $.label[{j}]"),
                            format!("class `{}` is listed twice", for_terminal(name)),
                        ));
                    }
                }
                names.into_iter().map(class_label).collect()
            }
            Task::Classify => {
                let name: String = typed(&line.label, path, n, "$.label")?;
                vec![class_label(name)]
            }
        };
        for l in &labels {
            if l.class.is_empty() {
                return Err(FormatError::invalid(
                    path,
                    format!("{at}: $.label"),
                    "a class name is empty",
                ));
            }
            if !classes.contains(&l.class) {
                classes.push(l.class.clone());
            }
        }

        let stated = line
            .image_details
            .and_then(|d| Some((d.width?.0, d.height?.0)))
            .filter(|&(w, h)| w > 0 && h > 0);
        // Boxes are normalised, so an image of unknown size still imports (size 0).
        let (width, height) = stated
            .or_else(|| ctx.images.resolve(&key).map(|im| (im.width, im.height)))
            .unwrap_or((0, 0));
        out.dataset.images.push(ImageLabels {
            key,
            width,
            height,
            labels,
        });
    }
    out.dataset.classes = classes;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Export

#[derive(Serialize)]
struct OutLine<'a> {
    image_url: String,
    #[serde(skip_serializing_if = "OutDetails::is_empty")]
    image_details: OutDetails,
    label: OutLabel<'a>,
    #[serde(skip_serializing_if = "Scores::is_empty")]
    scores: Scores<'a>,
}

#[derive(Serialize)]
struct OutDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<String>,
}

impl OutDetails {
    fn is_empty(&self) -> bool {
        self.format.is_none() && self.width.is_none() && self.height.is_none()
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutLabel<'a> {
    Boxes(Vec<OutBox<'a>>),
    Names(Vec<&'a str>),
    Name(&'a str),
}

#[derive(Serialize)]
struct OutBox<'a> {
    label: &'a str,
    #[serde(rename = "topX")]
    top_x: f64,
    #[serde(rename = "topY")]
    top_y: f64,
    #[serde(rename = "bottomX")]
    bottom_x: f64,
    #[serde(rename = "bottomY")]
    bottom_y: f64,
    #[serde(rename = "isCrowd")]
    is_crowd: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

/// Class → score in label order (a `serde_json::Map` would sort the keys).
struct Scores<'a>(Vec<(&'a str, f64)>);

impl Scores<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Scores<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `image_details.format`: the key's extension, lowercased, `jpeg` written as AutoML's `jpg`.
fn image_format(key: &str) -> Option<String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    match name.rsplit_once('.') {
        Some((base, ext)) if !base.is_empty() && !ext.is_empty() => {
            let ext = ext.to_lowercase();
            Some(if ext == "jpeg" { "jpg".into() } else { ext })
        }
        _ => None,
    }
}

/// The `MLTable` file that makes Azure ML read `jsonl_name` (beside it) as a table of images.
fn mltable(jsonl_name: &str) -> String {
    let file = format!("./{jsonl_name}");
    // A plain YAML scalar is safe for ordinary names; anything else is single-quoted.
    let plain = jsonl_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let file = if plain {
        file
    } else {
        format!("'{}'", file.replace('\'', "''"))
    };
    format!(
        "paths:
  - file: {file}
transformations:
  - read_json_lines:
      encoding: utf8
      invalid_lines: error
      include_path_column: false
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
type: mltable
"
    )
}

/// Writes `ctx.out` (the `.jsonl`) and an `MLTable` file in the same folder; returns both.
/// `image_url` is `ctx.url_prefix` followed by the key.
pub fn export(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    let out = ctx.out;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "MLTable" && !n.chars().any(char::is_control))
        .ok_or_else(|| {
            FormatError::invalid(
                out,
                "output",
                "expected a .jsonl file name (the MLTable file is written beside it)",
            )
        })?;

    let mut text = String::new();
    for im in &ds.images {
        check_relative_key(&im.key).map_err(|e| FormatError::invalid(out, "image key", e))?;
        let at = || format!("image `{}`", for_terminal(&im.key));
        let label = match ctx.task {
            Task::Detect => {
                let mut boxes = Vec::with_capacity(im.labels.len());
                for l in &im.labels {
                    let b = l.bbox.ok_or_else(|| {
                        FormatError::invalid(
                            out,
                            at(),
                            format!("label `{}` has no box", for_terminal(&l.class)),
                        )
                    })?;
                    boxes.push(OutBox {
                        label: &l.class,
                        top_x: round6(b.x0),
                        top_y: round6(b.y0),
                        bottom_x: round6(b.x1),
                        bottom_y: round6(b.y1),
                        is_crowd: 0,
                        score: l.score.filter(|_| ctx.predictions).map(round6),
                    });
                }
                OutLabel::Boxes(boxes)
            }
            Task::Multilabel => OutLabel::Names(im.labels.iter().map(|l| &*l.class).collect()),
            Task::Classify => match im.labels.as_slice() {
                [one] => OutLabel::Name(&one.class),
                [] => {
                    return Err(FormatError::invalid(
                        out,
                        at(),
                        "has no class; a multi-class line needs exactly one (label the image or \
                         leave it out of the export)",
                    ));
                }
                many => {
                    return Err(FormatError::invalid(
                        out,
                        at(),
                        format!(
                            "has {} classes; a multi-class line holds exactly one",
                            many.len()
                        ),
                    ));
                }
            },
        };
        let scores = if ctx.predictions && !ctx.task.is_detect() {
            im.labels
                .iter()
                .filter_map(|l| Some((&*l.class, round6(l.score?))))
                .collect()
        } else {
            Vec::new()
        };
        let px = |v: u32| (v > 0).then(|| format!("{v}px"));
        let line = OutLine {
            image_url: format!("{}{}", ctx.url_prefix, im.key),
            image_details: OutDetails {
                format: image_format(&im.key),
                width: px(im.width),
                height: px(im.height),
            },
            label,
            scores: Scores(scores),
        };
        let json = serde_json::to_string(&line)
            .map_err(|e| FormatError::invalid(out, at(), format!("cannot write JSON: {e}")))?;
        text.push_str(&json);
        text.push('\n');
    }

    write_file(out, text.as_bytes())?;
    let table = out.with_file_name("MLTable");
    write_file(&table, mltable(&name).as_bytes())?;
    Ok(vec![out.to_path_buf(), table])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageIndex;
    use crate::formats::testutil::{self, assert_label, assert_round_trip, cls, det, index, read};

    const AML: &str = "azureml://datastores/workspaceblobstore/paths/images/";

    fn fixture(name: &str) -> PathBuf {
        testutil::fixture("azureml_jsonl", name)
    }

    fn ictx(ix: &ImageIndex, task: Task, predictions: bool) -> ImportCtx<'_> {
        ImportCtx {
            task,
            images: ix,
            classes: &[],
            predictions,
        }
    }

    fn ectx<'a>(
        out: &'a Path,
        task: Task,
        predictions: bool,
        url_prefix: &'a str,
    ) -> ExportCtx<'a> {
        ExportCtx {
            task,
            out,
            predictions,
            url_prefix,
        }
    }

    fn image(key: &str, width: u32, height: u32, labels: Vec<Label>) -> ImageLabels {
        ImageLabels {
            key: key.into(),
            width,
            height,
            labels,
        }
    }

    /// Imports `text` as a detection file (or `task`), returning the error text.
    fn import_err(text: &str, task: Task) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.jsonl");
        std::fs::write(&p, text).unwrap();
        let ix = ImageIndex::default();
        let e = import(&p, &ictx(&ix, task, true)).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl: line "),
            "error names file and line: {e}"
        );
        e
    }

    fn import_text(text: &str, task: Task) -> Imported {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        std::fs::write(&p, text).unwrap();
        let ix = ImageIndex::default();
        import(&p, &ictx(&ix, task, true)).unwrap()
    }

    fn detect_set() -> Dataset {
        Dataset {
            classes: vec!["can".into(), "carton".into(), "milk_bottle".into()],
            images: vec![
                image(
                    "fridge/31.jpg",
                    499,
                    666,
                    vec![det("can", (0.26, 0.40, 0.73, 0.70), Some(0.9))],
                ),
                image(
                    "fridge/32.JPEG",
                    640,
                    480,
                    vec![
                        det("carton", (0.1, 0.2, 0.5, 0.9), Some(0.8)),
                        det("milk_bottle", (0.55, 0.0, 1.0, 0.125), Some(1.0 / 3.0)),
                    ],
                ),
                image("empty.png", 0, 0, vec![]),
            ],
        }
    }

    #[test]
    fn imports_the_design_example_and_detection_lines() {
        let ix = index(&[("images/empty.png", 320, 200)]);
        let got = import(&fixture("detect.jsonl"), &ictx(&ix, Task::Detect, true)).unwrap();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let ims = &got.dataset.images;
        assert_eq!(ims.len(), 3, "the blank line is skipped");
        assert_eq!(
            ims[0].key,
            "azureml://datastores/workspaceblobstore/paths/odFridgeObjects/images/31.jpg"
        );
        assert_eq!((ims[0].width, ims[0].height), (499, 666));
        assert_eq!(ims[0].labels.len(), 1);
        assert_label(&ims[0].labels[0], "can", (0.26, 0.40, 0.73, 0.70));
        assert_eq!(ims[0].labels[0].score, None);
        // Plain numbers and "480" are sizes too.
        assert_eq!((ims[1].width, ims[1].height), (640, 480));
        assert_label(&ims[1].labels[0], "carton", (0.1, 0.2, 0.5, 0.9));
        assert_eq!(ims[1].labels[0].score, None);
        assert_label(&ims[1].labels[1], "milk_bottle", (0.55, 0.0, 1.0, 0.125));
        assert_eq!(ims[1].labels[1].score, Some(0.875));
        // No image_details: the project's size.
        assert_eq!(ims[2].key, "images/empty.png");
        assert_eq!((ims[2].width, ims[2].height), (320, 200));
        assert!(ims[2].labels.is_empty(), "label [] = verified empty");
        assert_eq!(got.dataset.classes, ["can", "carton", "milk_bottle"]);

        let as_labels = import(&fixture("detect.jsonl"), &ictx(&ix, Task::Detect, false)).unwrap();
        assert_eq!(as_labels.dataset.images[1].labels[1].score, None);
    }

    #[test]
    fn imports_multilabel_and_multiclass() {
        let ix = ImageIndex::default();
        let got = import(
            &fixture("multilabel.jsonl"),
            &ictx(&ix, Task::Multilabel, true),
        )
        .unwrap();
        let ims = &got.dataset.images;
        assert_eq!(ims.len(), 3);
        assert_eq!(ims[0].labels, [cls("can", None), cls("milk_bottle", None)]);
        assert!(ims[1].labels.is_empty());
        assert_eq!(ims[2].labels, [cls("carton", Some(0.6))]);
        assert_eq!(
            (ims[2].width, ims[2].height),
            (0, 0),
            "unknown size stays 0"
        );

        let got = import(
            &fixture("multiclass.jsonl"),
            &ictx(&ix, Task::Classify, true),
        )
        .unwrap();
        let ims = &got.dataset.images;
        assert_eq!(ims.len(), 2, "CRLF line ends");
        assert_eq!(
            ims[0].key,
            "azureml://datastores/workspaceblobstore/paths/fridgeObjects/can/1.jpg"
        );
        assert_eq!(ims[0].labels, [cls("can", None)]);
        assert_eq!((ims[0].width, ims[0].height), (499, 666));
        assert_eq!(ims[1].labels, [cls("carton", Some(0.93))]);

        let got = import(
            &fixture("multiclass.jsonl"),
            &ictx(&ix, Task::Classify, false),
        )
        .unwrap();
        assert_eq!(got.dataset.images[1].labels, [cls("carton", None)]);
    }

    #[test]
    fn exports_detection_and_mltable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export/train.jsonl");
        let files = export(&detect_set(), &ectx(&out, Task::Detect, false, AML)).unwrap();
        let table = dir.path().join("export/MLTable");
        assert_eq!(files, [out.clone(), table.clone()]);
        assert_eq!(read(&out), read(&fixture("expected_detect.jsonl")));
        assert_eq!(read(&table), read(&fixture("expected_MLTable")));

        export(&detect_set(), &ectx(&out, Task::Detect, true, AML)).unwrap();
        assert_eq!(
            read(&out),
            read(&fixture("expected_detect_predictions.jsonl"))
        );
    }

    #[test]
    fn exports_classification_with_scores_for_predictions() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ml.jsonl");
        let ds = Dataset {
            classes: vec!["can".into(), "milk_bottle".into()],
            images: vec![
                image(
                    "a/1.jpg",
                    100,
                    50,
                    vec![cls("can", Some(0.9)), cls("milk_bottle", Some(0.25))],
                ),
                image("a/2.jpg", 0, 0, vec![]),
            ],
        };
        export(&ds, &ectx(&out, Task::Multilabel, true, "")).unwrap();
        assert_eq!(
            read(&out),
            read(&fixture("expected_multilabel_predictions.jsonl"))
        );

        let prefix = "https://acct.blob.core.windows.net/c/";
        let ds = Dataset {
            classes: vec!["can".into(), "carton".into()],
            images: vec![
                image("can/1.jpg", 499, 666, vec![cls("can", Some(0.93))]),
                image("carton/7", 0, 0, vec![cls("carton", None)]),
            ],
        };
        let out = dir.path().join("mc.jsonl");
        export(&ds, &ectx(&out, Task::Classify, false, prefix)).unwrap();
        assert_eq!(read(&out), read(&fixture("expected_multiclass.jsonl")));
        export(&ds, &ectx(&out, Task::Classify, true, prefix)).unwrap();
        assert_eq!(
            read(&out),
            read(&fixture("expected_multiclass_predictions.jsonl"))
        );
    }

    #[test]
    fn round_trip_is_byte_identical() {
        let cases = [
            (detect_set(), Task::Detect, false),
            (detect_set(), Task::Detect, true),
            (
                Dataset {
                    classes: vec![],
                    images: vec![
                        image(
                            "x/1.jpg",
                            10,
                            20,
                            vec![cls("a", Some(0.5)), cls("b", Some(0.125))],
                        ),
                        image("x/2.jpeg", 10, 20, vec![]),
                    ],
                },
                Task::Multilabel,
                true,
            ),
            (
                Dataset {
                    classes: vec![],
                    images: vec![image("x/1.png", 10, 20, vec![cls("a", Some(0.75))])],
                },
                Task::Classify,
                true,
            ),
        ];
        for (ds, task, predictions) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (dir.path().join("a/t.jsonl"), dir.path().join("b/t.jsonl"));
            export(&ds, &ectx(&a, task, predictions, "")).unwrap();
            let ix = ImageIndex::default();
            let back = import(&a, &ictx(&ix, task, predictions)).unwrap();
            assert!(back.warnings.is_empty());
            export(&back.dataset, &ectx(&b, task, predictions, "")).unwrap();
            assert_eq!(read(&a), read(&b), "{task}");
            assert_round_trip(&back.dataset.images, &ds.images, predictions);
        }
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let ok = r#"{"image_url":"a.jpg","label":[]}"#;
        let e = import_err(
            &format!("{ok}\n{{\"image_url\":\"b.jpg\",\"label\":[}}\n"),
            Task::Detect,
        );
        assert!(
            e.contains("bad.jsonl: line 2: malformed JSON at column"),
            "{e}"
        );
        assert!(!e.contains("at line 1 column"), "{e}");
        let e = import_err("[1,2]\n", Task::Detect);
        assert!(
            e.contains("line 1: $: expected one JSON object per line"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_json_path() {
        let e = import_err(
            r#"{"image_url":"a.jpg","label":[{"label":"x","topX":0.1,"topY":0.1,"bottomX":0.2,"bottomY":0.2},{"label":"y","topX":"0.3","topY":0.1,"bottomX":0.4,"bottomY":0.2}]}"#,
            Task::Detect,
        );
        assert!(
            e.contains("line 1: $.label[1].topX: invalid type: string \"0.3\", expected a number"),
            "{e}"
        );
        let e = import_err(
            "\n\n{\"image_url\":\"a.jpg\",\"label\":[{\"label\":\"x\",\"topX\":0.1,\"topY\":0.1,\"bottomX\":0.2}]}",
            Task::Detect,
        );
        assert!(
            e.contains("line 3: $.label[0]: missing field `bottomY`"),
            "{e}"
        );
        let e = import_err(r#"{"label":[]}"#, Task::Detect);
        assert!(e.contains("line 1: $: missing field `image_url`"), "{e}");
        let e = import_err(r#"{"image_url":7,"label":[]}"#, Task::Detect);
        assert!(
            e.contains("line 1: $.image_url: invalid type: integer `7`"),
            "{e}"
        );
        let e = import_err(
            r#"{"image_url":"a.jpg","image_details":{"width":"wide","height":"10px"},"label":[]}"#,
            Task::Detect,
        );
        assert!(e.contains("line 1: $.image_details.width: invalid value: string \"wide\", expected a pixel size"), "{e}");
        let e = import_err(
            r#"{"image_url":"a.jpg","label":["a"],"scores":{"a":"high"}}"#,
            Task::Multilabel,
        );
        assert!(
            e.contains("line 1: $.scores.a: invalid type: string \"high\", expected a number"),
            "{e}"
        );
        let e = import_err(
            r#"{"image_url":"a.jpg","label":[{"label":3,"topX":0.1,"topY":0.1,"bottomX":0.2,"bottomY":0.2}]}"#,
            Task::Detect,
        );
        assert!(
            e.contains("line 1: $.label[0].label: invalid type: integer `3`"),
            "{e}"
        );
    }

    #[test]
    fn label_shape_must_match_the_task() {
        let e = import_err(r#"{"image_url":"a.jpg","label":"can"}"#, Task::Detect);
        assert!(e.contains("line 1: $.label: found one class name (the multi-class layout), but the project's task is detect"), "{e}");
        let e = import_err(r#"{"image_url":"a.jpg","label":["can"]}"#, Task::Classify);
        assert!(
            e.contains("line 1: $.label: found a list of class names"),
            "{e}"
        );
        assert!(e.contains("task is classify"), "{e}");
        let e = import_err(
            r#"{"image_url":"a.jpg","label":[{"label":"can"}]}"#,
            Task::Multilabel,
        );
        assert!(e.contains("found a list of boxes"), "{e}");
        let e = import_err(
            r#"{"image_url":"a.jpg","label":["can",{"label":"x"}]}"#,
            Task::Multilabel,
        );
        assert!(e.contains("found a list of mixed values"), "{e}");
        let e = import_err(r#"{"image_url":"a.jpg","label":[]}"#, Task::Classify);
        assert!(
            e.contains("line 1: $.label: found a list of class names"),
            "{e}"
        );
        // An empty list fits both list tasks.
        for task in [Task::Detect, Task::Multilabel] {
            let got = import_text(r#"{"image_url":"a.jpg","label":[]}"#, task);
            assert!(got.dataset.images[0].labels.is_empty());
        }
    }

    #[test]
    fn zero_area_box_is_rejected_and_outside_box_clipped() {
        let e = import_err(
            r#"{"image_url":"a.jpg","label":[{"label":"x","topX":0.1,"topY":0.1,"bottomX":0.2,"bottomY":0.2},{"label":"x","topX":0.5,"topY":0.1,"bottomX":0.5,"bottomY":0.2}]}"#,
            Task::Detect,
        );
        assert!(e.contains("line 1: $.label[1]: box has zero area"), "{e}");
        let got = import_text(
            r#"{"image_url":"a.jpg","label":[{"label":"x","topX":-0.5,"topY":0.5,"bottomX":0.5,"bottomY":1.5}]}"#,
            Task::Detect,
        );
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(
            got.warnings[0].contains("line 1: $.label[0]: box reaches outside"),
            "{:?}",
            got.warnings
        );
        assert_label(&got.dataset.images[0].labels[0], "x", (0.0, 0.5, 0.5, 1.0));
    }

    #[test]
    fn duplicates_and_empty_names_are_rejected() {
        let line = r#"{"image_url":"a.jpg","label":[]}"#;
        let e = import_err(&format!("{line}\n\n{line}\n"), Task::Detect);
        assert!(
            e.contains("line 3: $.image_url: image `a.jpg` is already on line 1"),
            "{e}"
        );
        let e = import_err(r#"{"image_url":" ","label":[]}"#, Task::Detect);
        assert!(e.contains("line 1: $.image_url: image_url is empty"), "{e}");
        let e = import_err(
            r#"{"image_url":"a.jpg","label":["a","b","a"]}"#,
            Task::Multilabel,
        );
        assert!(
            e.contains("line 1: $.label[2]: class `a` is listed twice"),
            "{e}"
        );
        let e = import_err(r#"{"image_url":"a.jpg","label":""}"#, Task::Classify);
        assert!(e.contains("line 1: $.label: a class name is empty"), "{e}");
    }

    #[test]
    fn export_refuses_what_the_layout_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.jsonl");
        let ds = Dataset {
            classes: vec![],
            images: vec![image("a.jpg", 1, 1, vec![])],
        };
        let e = export(&ds, &ectx(&out, Task::Classify, false, ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("image `a.jpg`: has no class"), "{e}");
        let ds = Dataset {
            classes: vec![],
            images: vec![image("a.jpg", 1, 1, vec![cls("a", None), cls("b", None)])],
        };
        let e = export(&ds, &ectx(&out, Task::Classify, false, ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("image `a.jpg`: has 2 classes"), "{e}");
        let ds = Dataset {
            classes: vec![],
            images: vec![image("a.jpg", 1, 1, vec![cls("a", None)])],
        };
        let e = export(&ds, &ectx(&out, Task::Detect, false, ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("image `a.jpg`: label `a` has no box"), "{e}");
        let ds = Dataset {
            classes: vec![],
            images: vec![image("../a.jpg", 1, 1, vec![])],
        };
        let e = export(&ds, &ectx(&out, Task::Detect, false, ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("leaves its folder"), "{e}");
        assert!(!out.exists(), "nothing written on error");
        let e = export(
            &detect_set(),
            &ectx(&dir.path().join("MLTable"), Task::Detect, false, ""),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected a .jsonl file name"), "{e}");
    }

    #[test]
    fn mltable_quotes_unusual_names() {
        assert!(mltable("train.jsonl").contains("  - file: ./train.jsonl\n"));
        assert!(mltable("my data's.jsonl").contains("  - file: './my data''s.jsonl'\n"));
    }

    #[test]
    fn image_formats() {
        assert_eq!(image_format("a/b.JPEG").as_deref(), Some("jpg"));
        assert_eq!(image_format("a.b/c.Png").as_deref(), Some("png"));
        assert_eq!(image_format("a.b/c"), None);
        assert_eq!(image_format(".hidden"), None);
    }
}

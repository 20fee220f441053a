//! COCO JSON: one file for the whole set.
//!
//! Export writes the `instances` layout: `images` (ids 1..n in the order given), `annotations`
//! (ids 1..m), `categories` (ids 1..k in project class order), pixel `bbox` `[x, y, width, height]`,
//! `area` and `iscrowd: 0`. An image with no annotation is an image verified to hold no object.
//! Predictions add a `score` to each annotation, which is what most COCO tools read besides the
//! bare results list.
//!
//! Classification (classify, multilabel) has no COCO standard; this module writes one annotation
//! per image class with `category_id` and no `bbox`, `area` or `iscrowd`, and reads such files back.
//! Importing a detection file into a classification project keeps each image's classes and drops
//! the boxes, with a warning.
//!
//! Import accepts the `instances` layout, or (predictions only) the COCO results list
//! `[{image_id, category_id, bbox, score}]`. A results list carries no images and no categories:
//! - `category_id` is the id termtag's export gives: 1 = the project's first class;
//! - `image_id` must be the image's file name (a string). Integer ids point into an instances
//!   file that the list does not carry, so they are rejected; give the instances layout with a
//!   `score` on each annotation instead.
//!
//! A results list names only the images that have predictions, so it says nothing of the others.
//! The `instances` import lists every category as a class, in file order, used or not, so that
//! export → import → export keeps the category list. Images keep the size the file states; one
//! with no size takes the project's, and a detection image with neither is skipped with a warning.
//!
//! Crowd annotations (`iscrowd: 1`) mark regions of many objects, not one object; they are skipped
//! with a warning. Unknown fields (`info`, `licenses`, `segmentation`, ...) are ignored.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};

use super::{
    ExportCtx, FormatError, ImportCtx, Imported, pixel_box, read_to_string, round6, write_file,
};
use crate::model::{BBox, Dataset, ImageLabels, Label, Task, class_index};
use crate::sanitize::{for_terminal, show_path};

#[derive(Serialize)]
struct OutFile<'a> {
    images: Vec<OutImage<'a>>,
    annotations: Vec<OutAnnotation>,
    categories: Vec<OutCategory<'a>>,
}

#[derive(Serialize)]
struct OutImage<'a> {
    id: usize,
    file_name: &'a str,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct OutAnnotation {
    id: usize,
    image_id: usize,
    category_id: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    bbox: Option<[f64; 4]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    area: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iscrowd: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

#[derive(Serialize)]
struct OutCategory<'a> {
    id: usize,
    name: &'a str,
}

#[derive(Deserialize)]
#[serde(expecting = "a COCO object with images, annotations and categories")]
struct InFile {
    images: Vec<InImage>,
    // Required: COCO `image_info` files (test sets) have no `annotations` and mean "unlabelled",
    // which must not be read as "verified empty".
    annotations: Vec<InAnnotation>,
    categories: Vec<InCategory>,
}

#[derive(Deserialize)]
#[serde(expecting = "an image {id, file_name, width, height}")]
struct InImage {
    id: i64,
    file_name: String,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
}

#[derive(Deserialize)]
#[serde(expecting = "an annotation {id, image_id, category_id, bbox, ...}")]
struct InAnnotation {
    image_id: i64,
    category_id: i64,
    #[serde(default)]
    bbox: Option<Vec<f64>>,
    #[serde(default)]
    iscrowd: Option<u8>,
    #[serde(default)]
    score: Option<f64>,
}

#[derive(Deserialize)]
#[serde(expecting = "a category {id, name}")]
struct InCategory {
    id: i64,
    name: String,
}

#[derive(Deserialize)]
#[serde(expecting = "a result {image_id, category_id, bbox, score}")]
struct InResult {
    image_id: ImageRef,
    category_id: i64,
    #[serde(default)]
    bbox: Option<Vec<f64>>,
    #[serde(default)]
    score: Option<f64>,
}

/// A results list's `image_id`: an integer id (which needs an instances file) or a file name.
enum ImageRef {
    Id(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ImageRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an image file name (string) or an image id (integer)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ImageRef, E> {
                Ok(ImageRef::Id(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ImageRef, E> {
                i64::try_from(v)
                    .map(ImageRef::Id)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ImageRef, E> {
                Ok(ImageRef::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    let text = read_to_string(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut warnings = Vec::new();
    let mut unplaced = Vec::new();
    let dataset = if text.trim_start().starts_with('[') {
        import_results(path, text, ctx, &mut warnings, &mut unplaced)?
    } else {
        import_instances(path, text, ctx, &mut warnings, &mut unplaced)?
    };
    Ok(Imported {
        dataset,
        warnings,
        unplaced,
    })
}

/// Reads the `instances` layout.
fn import_instances(
    file: &Path,
    text: &str,
    ctx: &ImportCtx,
    warnings: &mut Vec<String>,
    unplaced: &mut Vec<(String, usize)>,
) -> Result<Dataset, FormatError> {
    let coco: InFile = from_json(file, text)?;

    let mut classes: Vec<String> = Vec::new();
    let mut categories: HashMap<i64, &str> = HashMap::new();
    for (i, c) in coco.categories.iter().enumerate() {
        if categories.insert(c.id, &c.name).is_some() {
            return Err(invalid(
                file,
                format!("$.categories[{i}].id"),
                format!("category id {} appears more than once", c.id),
            ));
        }
        if !classes.contains(&c.name) {
            classes.push(c.name.clone());
        }
    }

    let mut images: Vec<Slot> = Vec::with_capacity(coco.images.len());
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, im) in coco.images.iter().enumerate() {
        if let Some(first) = by_id.insert(im.id, i) {
            return Err(invalid(
                file,
                format!("$.images[{i}].id"),
                format!("image id {} is already used by $.images[{first}]", im.id),
            ));
        }
        if im.file_name.trim().is_empty() {
            return Err(invalid(
                file,
                format!("$.images[{i}].file_name"),
                "file_name is empty; expected the image's path or file name",
            ));
        }
        if let Some(first) = by_name.insert(&im.file_name, i) {
            return Err(invalid(
                file,
                format!("$.images[{i}].file_name"),
                format!("`{}` is already listed as $.images[{first}]", im.file_name),
            ));
        }
        let stated = match (im.width, im.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Some((w, h)),
            _ => None,
        };
        images.push(Slot::new(image_entry(&im.file_name, stated, ctx)));
    }

    let mut counts = Counts::default();
    for (i, a) in coco.annotations.iter().enumerate() {
        let at = format!("$.annotations[{i}]");
        let &slot = by_id.get(&a.image_id).ok_or_else(|| {
            invalid(
                file,
                format!("{at}.image_id"),
                format!("no image has id {} (see $.images)", a.image_id),
            )
        })?;
        let class = *categories.get(&a.category_id).ok_or_else(|| {
            invalid(
                file,
                format!("{at}.category_id"),
                format!("no category has id {} (see $.categories)", a.category_id),
            )
        })?;
        match a.iscrowd {
            None | Some(0) => {}
            Some(1) => {
                counts.crowd += 1;
                continue;
            }
            Some(v) => {
                return Err(invalid(
                    file,
                    format!("{at}.iscrowd"),
                    format!("iscrowd is {v}; expected 0 or 1"),
                ));
            }
        }
        let entry = Entry::new(class, a.bbox.as_deref(), a.score);
        let image = &mut images[slot];
        add_entry(image, &entry, &at, file, ctx, warnings, &mut counts)?;
    }
    counts.warn(file, warnings);
    for (slot, im) in images.iter().zip(&coco.images) {
        if slot.image.is_none() {
            unplaced.push((im.file_name.clone(), slot.unplaced.max(1)));
        }
    }
    Ok(Dataset {
        classes,
        images: images.into_iter().filter_map(|s| s.image).collect(),
    })
}

/// Reads a bare results list (predictions only; see the module doc for the rules).
fn import_results(
    file: &Path,
    text: &str,
    ctx: &ImportCtx,
    warnings: &mut Vec<String>,
    unplaced: &mut Vec<(String, usize)>,
) -> Result<Dataset, FormatError> {
    if !ctx.predictions {
        return Err(invalid(
            file,
            "$",
            "this is a COCO results list, which holds predictions: import it as predictions, \
             or give the instances layout (images, annotations, categories) for labels",
        ));
    }
    let results: Vec<InResult> = from_json(file, text)?;
    let mut images: Vec<Slot> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut counts = Counts::default();
    for (i, r) in results.iter().enumerate() {
        let at = format!("$[{i}]");
        let name = match &r.image_id {
            ImageRef::Name(n) if !n.trim().is_empty() => n.as_str(),
            ImageRef::Name(_) => {
                return Err(invalid(
                    file,
                    format!("{at}.image_id"),
                    "image_id is empty; expected the image's file name",
                ));
            }
            ImageRef::Id(id) => {
                return Err(invalid(
                    file,
                    format!("{at}.image_id"),
                    format!(
                        "image_id {id} refers to an instances file that a results list does not \
                         carry; write image_id as the image's file name, or import the instances \
                         layout with a `score` on each annotation"
                    ),
                ));
            }
        };
        let class = usize::try_from(r.category_id)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .and_then(|k| ctx.classes.get(k))
            .ok_or_else(|| {
                invalid(
                    file,
                    format!("{at}.category_id"),
                    format!(
                        "category id {} is not one of the project's {} classes; a results list \
                         uses the ids of termtag's COCO export (1 = the first project class)",
                        r.category_id,
                        ctx.classes.len()
                    ),
                )
            })?;
        let slot = *by_name.entry(name).or_insert_with(|| {
            images.push(Slot::new(image_entry(name, None, ctx)));
            images.len() - 1
        });
        let entry = Entry::new(class, r.bbox.as_deref(), r.score);
        let image = &mut images[slot];
        add_entry(image, &entry, &at, file, ctx, warnings, &mut counts)?;
    }
    counts.warn(file, warnings);
    for (name, &slot) in &by_name {
        if images[slot].image.is_none() {
            unplaced.push((name.to_string(), images[slot].unplaced));
        }
    }
    unplaced.sort();
    Ok(Dataset {
        classes: ctx.classes.to_vec(),
        images: images.into_iter().filter_map(|s| s.image).collect(),
    })
}

/// A new image for `name`, sized from the file or the project; `None` for a detection image whose
/// size is known to neither, since its pixel boxes cannot be placed (the caller reports it unplaced).
fn image_entry(name: &str, stated: Option<(u32, u32)>, ctx: &ImportCtx) -> Option<ImageLabels> {
    let size = stated.or_else(|| ctx.images.resolve(name).map(|k| (k.width, k.height)));
    let (width, height) = match size {
        Some(s) => s,
        None if ctx.task.is_detect() => return None,
        None => (0, 0),
    };
    Some(ImageLabels {
        key: name.to_string(),
        width,
        height,
        labels: Vec::new(),
    })
}

/// One annotation or result entry after decoding.
struct Entry<'a> {
    class: &'a str,
    bbox: Option<&'a [f64]>,
    score: Option<f64>,
}

impl<'a> Entry<'a> {
    fn new(class: &'a str, bbox: Option<&'a [f64]>, score: Option<f64>) -> Self {
        Entry { class, bbox, score }
    }
}

/// An image being read: `None` when it cannot be placed (no size is known for its pixel boxes),
/// and then how many annotations named it, for the unplaced report.
struct Slot {
    image: Option<ImageLabels>,
    unplaced: usize,
}

impl Slot {
    fn new(image: Option<ImageLabels>) -> Self {
        Slot { image, unplaced: 0 }
    }
}

/// Things counted across a file, reported once each.
#[derive(Default)]
struct Counts {
    crowd: usize,
    boxes_dropped: usize,
}

impl Counts {
    fn warn(&self, file: &Path, warnings: &mut Vec<String>) {
        let file = show_path(file);
        if self.crowd > 0 {
            warnings.push(format!(
                "{file}: skipped {} crowd annotation(s) (iscrowd 1): they mark regions of many \
                 objects, not one object",
                self.crowd
            ));
        }
        if self.boxes_dropped > 0 {
            warnings.push(format!(
                "{file}: dropped the boxes of {} annotation(s): a classification project keeps \
                 only each image's classes",
                self.boxes_dropped
            ));
        }
    }
}

/// Adds one annotation to its image: a box for detection, an image class (once) otherwise. An
/// image that cannot be placed counts it instead.
fn add_entry(
    slot: &mut Slot,
    e: &Entry,
    at: &str,
    file: &Path,
    ctx: &ImportCtx,
    warnings: &mut Vec<String>,
    counts: &mut Counts,
) -> Result<(), FormatError> {
    let Some(im) = slot.image.as_mut() else {
        slot.unplaced += 1;
        return Ok(());
    };
    let score = match e.score {
        Some(s) if ctx.predictions => {
            if !(0.0..=1.0).contains(&s) {
                return Err(invalid(
                    file,
                    format!("{at}.score"),
                    format!("score {s} is outside 0..1"),
                ));
            }
            Some(s)
        }
        _ => None,
    };
    if ctx.task.is_detect() {
        let bbox = pixel_bbox(e.bbox, im.width, im.height, at, file, warnings)?;
        im.labels.push(Label {
            class: e.class.to_string(),
            bbox: Some(bbox),
            score,
        });
        return Ok(());
    }
    if e.bbox.is_some() {
        counts.boxes_dropped += 1;
    }
    if let Some(l) = im.labels.iter_mut().find(|l| l.class == e.class) {
        // The same class twice (several boxes, or several predictions): keep the best score.
        if score > l.score {
            l.score = score;
        }
        return Ok(());
    }
    if ctx.task == Task::Classify && !ctx.predictions && !im.labels.is_empty() {
        return Err(invalid(
            file,
            format!("{at}.category_id"),
            format!(
                "image `{}` already has class `{}`; a classify project takes one class per image",
                im.key, im.labels[0].class
            ),
        ));
    }
    im.labels.push(Label {
        class: e.class.to_string(),
        bbox: None,
        score,
    });
    Ok(())
}

/// A COCO `[x, y, width, height]` pixel box as a normalised box.
fn pixel_bbox(
    bbox: Option<&[f64]>,
    width: u32,
    height: u32,
    at: &str,
    file: &Path,
    warnings: &mut Vec<String>,
) -> Result<BBox, FormatError> {
    let place = format!("{at}.bbox");
    let Some(b) = bbox else {
        return Err(invalid(
            file,
            at,
            "annotation has no bbox; a detect project needs [x, y, width, height] in pixels",
        ));
    };
    let &[x, y, w, h] = b else {
        return Err(invalid(
            file,
            place,
            format!(
                "bbox has {} numbers; expected 4: [x, y, width, height] in pixels",
                b.len()
            ),
        ));
    };
    if w < 0.0 || h < 0.0 {
        return Err(invalid(
            file,
            place,
            format!(
                "bbox width {w} and height {h} must not be negative; COCO boxes are \
                 [x, y, width, height]"
            ),
        ));
    }
    pixel_box((x, y, x + w, y + h), width, height, file, &place, warnings)
}

/// Decodes JSON, naming the JSON path of a wrong or missing value and the line of a syntax error.
fn from_json<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, FormatError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let place = json_path(e.path());
        json_error(file, e.into_inner(), Some(place))
    })?;
    de.end().map_err(|e| json_error(file, e, None))?;
    Ok(value)
}

fn json_error(file: &Path, e: serde_json::Error, place: Option<String>) -> FormatError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the line goes in the place or the message.
    let msg = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m);
    match (e.classify(), place) {
        (serde_json::error::Category::Data, Some(place)) => invalid(
            file,
            place,
            format!("{msg} (line {}, column {})", e.line(), e.column()),
        ),
        _ => invalid(
            file,
            format!("line {}", e.line()),
            format!("not valid JSON: {msg} (column {})", e.column()),
        ),
    }
}

/// `$.annotations[3].bbox` style path.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::from("$");
    for seg in path {
        // Writing to a String cannot fail.
        let _ = match seg {
            Segment::Seq { index } => write!(s, "[{index}]"),
            Segment::Map { key } => write!(s, ".{key}"),
            Segment::Enum { variant } => write!(s, ".{variant}"),
            Segment::Unknown => write!(s, ".?"),
        };
    }
    s
}

/// An error whose place and message may quote the file's text, made safe for a terminal.
fn invalid(file: &Path, place: impl AsRef<str>, msg: impl AsRef<str>) -> FormatError {
    FormatError::invalid(
        file,
        for_terminal(place.as_ref()),
        for_terminal(msg.as_ref()),
    )
}

pub fn export(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    let mut images = Vec::with_capacity(ds.images.len());
    let mut annotations = Vec::new();
    for (i, im) in ds.images.iter().enumerate() {
        let image_id = i + 1;
        images.push(OutImage {
            id: image_id,
            file_name: &im.key,
            width: im.width,
            height: im.height,
        });
        for l in &im.labels {
            let category_id = class_index(&ds.classes, &l.class).ok_or_else(|| {
                invalid(
                    ctx.out,
                    &im.key,
                    format!("class `{}` is not in the project's class list", l.class),
                )
            })? + 1;
            let (bbox, area, iscrowd) = if ctx.task.is_detect() {
                let b = l.bbox.ok_or_else(|| {
                    invalid(
                        ctx.out,
                        &im.key,
                        format!("a `{}` label has no box in a detect project", l.class),
                    )
                })?;
                if im.width == 0 || im.height == 0 {
                    return Err(invalid(
                        ctx.out,
                        &im.key,
                        "image size is unknown; COCO boxes need it to be written in pixels",
                    ));
                }
                let (x0, y0, x1, y1) = b.to_pixels(im.width, im.height);
                let (w, h) = (round6(x1 - x0), round6(y1 - y0));
                (
                    Some([round6(x0), round6(y0), w, h]),
                    Some(round6(w * h)),
                    Some(0),
                )
            } else {
                (None, None, None)
            };
            annotations.push(OutAnnotation {
                id: annotations.len() + 1,
                image_id,
                category_id,
                bbox,
                area,
                iscrowd,
                score: if ctx.predictions {
                    l.score.map(round6)
                } else {
                    None
                },
            });
        }
    }
    let categories = ds
        .classes
        .iter()
        .enumerate()
        .map(|(i, name)| OutCategory { id: i + 1, name })
        .collect();
    let out = OutFile {
        images,
        annotations,
        categories,
    };
    let mut text =
        serde_json::to_string_pretty(&out).map_err(|e| FormatError::io(ctx.out, e.into()))?;
    text.push('\n');
    write_file(ctx.out, text.as_bytes())?;
    Ok(vec![ctx.out.to_path_buf()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageIndex;
    use crate::formats::testutil::{
        self, assert_box, assert_round_trip, bb, cls, detect_dataset, known,
    };

    fn fixture(name: &str) -> PathBuf {
        testutil::fixture("coco", name)
    }

    fn ctx<'a>(task: Task, images: &'a ImageIndex, classes: &'a [String]) -> ImportCtx<'a> {
        ImportCtx {
            task,
            images,
            classes,
            predictions: false,
        }
    }

    fn export_to(ds: &Dataset, task: Task, predictions: bool, out: &Path) -> String {
        let ctx = ExportCtx {
            task,
            out,
            predictions,
            url_prefix: "",
        };
        assert_eq!(export(ds, &ctx).unwrap(), vec![out.to_path_buf()]);
        std::fs::read_to_string(out).unwrap()
    }

    #[test]
    fn imports_instances_fixture() {
        let ix = ImageIndex::default();
        let file = fixture("instances.json");
        let got = import(&file, &ctx(Task::Detect, &ix, &[])).unwrap();
        let ds = got.dataset;
        assert_eq!(ds.classes, ["knot", "crack"]);
        let keys: Vec<_> = ds.images.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a/st1026.jpg", "b/empty.png", "c.jpg"]);
        let a = &ds.images[0];
        assert_eq!((a.width, a.height), (640, 480));
        assert_eq!(a.labels.len(), 2);
        assert_eq!(a.labels[0].class, "knot");
        assert_box(a.labels[0].bbox, bb(0.1, 0.1, 0.3, 0.3));
        assert_eq!(a.labels[0].score, None, "labels import drops scores");
        assert_eq!(a.labels[1].class, "crack");
        assert_box(
            a.labels[1].bbox,
            bb(320.5 / 640.0, 0.5, 420.5 / 640.0, 300.25 / 480.0),
        );
        // Present with no annotation: verified empty.
        assert_eq!((ds.images[1].width, ds.images[1].height), (320, 240));
        assert!(ds.images[1].labels.is_empty());
        // [90, 40, 20, 20] on 100×50 reaches outside: clipped; the crowd annotation is skipped.
        let c = &ds.images[2];
        assert_eq!(c.labels.len(), 1);
        assert_box(c.labels[0].bbox, bb(0.9, 0.8, 1.0, 1.0));
        assert_eq!(got.warnings.len(), 2, "{:?}", got.warnings);
        assert!(
            got.warnings[0].contains("instances.json: $.annotations[2].bbox: box reaches outside")
        );
        assert!(got.warnings[1].contains("1 crowd annotation"));
    }

    #[test]
    fn predictions_keep_scores() {
        let ix = ImageIndex::default();
        let mut c = ctx(Task::Detect, &ix, &[]);
        c.predictions = true;
        let ds = import(&fixture("instances.json"), &c).unwrap().dataset;
        assert_eq!(ds.images[0].labels[0].score, Some(0.9));
        assert_eq!(ds.images[0].labels[1].score, None);
    }

    #[test]
    fn missing_size_comes_from_the_project_or_is_unplaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("i.json");
        std::fs::write(
            &file,
            r#"{"images":[{"id":1,"file_name":"x.jpg"},{"id":2,"file_name":"gone.jpg","width":0}],
                "annotations":[{"image_id":1,"category_id":1,"bbox":[0,0,50,25]},
                               {"image_id":2,"category_id":1,"bbox":[0,0,5,5]}],
                "categories":[{"id":1,"name":"knot"}]}"#,
        )
        .unwrap();
        let ix = ImageIndex::new(vec![known("imgs/x.jpg", 100, 50)]);
        let got = import(&file, &ctx(Task::Detect, &ix, &[])).unwrap();
        assert_eq!(got.dataset.images.len(), 1);
        let x = &got.dataset.images[0];
        assert_eq!((x.key.as_str(), x.width, x.height), ("x.jpg", 100, 50));
        assert_box(x.labels[0].bbox, bb(0.0, 0.0, 0.5, 0.5));
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.unplaced, [("gone.jpg".to_string(), 1)]);
    }

    #[test]
    fn exports_expected_text_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("deep/coco.json");
        let ds = detect_dataset();
        let first = export_to(&ds, Task::Detect, false, &out);
        let expected = std::fs::read_to_string(fixture("expected_export.json")).unwrap();
        assert_eq!(first, expected);

        let ix = ImageIndex::default();
        let back = import(&out, &ctx(Task::Detect, &ix, &[])).unwrap();
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        assert_eq!(back.dataset.classes, ds.classes);
        assert_round_trip(&back.dataset.images, &ds.images, false);
        let out2 = dir.path().join("again.json");
        assert_eq!(export_to(&back.dataset, Task::Detect, false, &out2), first);
    }

    #[test]
    fn predictions_export_scores_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pred.json");
        let first = export_to(&detect_dataset(), Task::Detect, true, &out);
        assert!(
            first.contains("\"iscrowd\": 0,\n      \"score\": 0.9\n"),
            "{first}"
        );
        assert!(first.contains("\"score\": 0.333333"));
        assert_eq!(
            first.matches("\"score\"").count(),
            2,
            "no score where none is known"
        );
        let ix = ImageIndex::default();
        let mut c = ctx(Task::Detect, &ix, &[]);
        c.predictions = true;
        let back = import(&out, &c).unwrap().dataset;
        assert_eq!(back.images[2].labels[0].score, Some(0.333333));
        let out2 = dir.path().join("pred2.json");
        assert_eq!(export_to(&back, Task::Detect, true, &out2), first);
    }

    #[test]
    fn multilabel_without_boxes() {
        let ix = ImageIndex::default();
        let ds = import(
            &fixture("multilabel.json"),
            &ctx(Task::Multilabel, &ix, &[]),
        )
        .unwrap()
        .dataset;
        assert_eq!(ds.classes, ["cat", "indoor"]);
        assert_eq!(ds.images[0].labels, [cls("indoor", None), cls("cat", None)]);
        assert!(ds.images[1].labels.is_empty());

        // Predictions: scores written, no bbox/area/iscrowd; byte-identical after a round trip.
        let mut pred = ds.clone();
        pred.images[0].labels[0].score = Some(0.8);
        pred.images[0].labels[1].score = Some(1.0 / 3.0);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ml.json");
        let first = export_to(&pred, Task::Multilabel, true, &out);
        let expected =
            std::fs::read_to_string(fixture("expected_multilabel_predictions.json")).unwrap();
        assert_eq!(first, expected);
        let mut c = ctx(Task::Multilabel, &ix, &[]);
        c.predictions = true;
        let back = import(&out, &c).unwrap().dataset;
        assert_eq!(back.images[0].labels[1].score, Some(0.333333));
        assert_eq!(
            export_to(&back, Task::Multilabel, true, &dir.path().join("b.json")),
            first
        );
    }

    #[test]
    fn detection_file_into_classification_keeps_classes() {
        let ix = ImageIndex::default();
        let got = import(&fixture("instances.json"), &ctx(Task::Multilabel, &ix, &[])).unwrap();
        let a = &got.dataset.images[0];
        assert_eq!(a.labels, [cls("knot", None), cls("crack", None)]);
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("dropped the boxes of 3"))
        );

        // Classify: one class per image; `a/st1026.jpg` has two.
        let e = import(&fixture("instances.json"), &ctx(Task::Classify, &ix, &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("instances.json: $.annotations[1].category_id: image `a/st1026.jpg` already has class `knot`"), "{e}");
    }

    #[test]
    fn results_list_with_file_names() {
        let ix = ImageIndex::new(vec![
            known("a/st1026.jpg", 640, 480),
            known("c.jpg", 100, 50),
        ]);
        let classes = ["knot".to_string(), "crack".to_string()];
        let mut c = ctx(Task::Detect, &ix, &classes);
        c.predictions = true;
        let got = import(&fixture("results.json"), &c).unwrap();
        let ds = got.dataset;
        assert!(got.warnings.is_empty());
        assert_eq!(ds.classes, classes);
        assert_eq!(ds.images.len(), 2);
        let a = &ds.images[0];
        assert_eq!(
            (a.key.as_str(), a.width, a.height),
            ("a/st1026.jpg", 640, 480)
        );
        assert_eq!(a.labels[0].class, "crack");
        assert_box(a.labels[0].bbox, bb(0.1, 0.1, 0.3, 0.3));
        assert_eq!(a.labels[0].score, Some(0.75));
        assert_eq!(a.labels[1].class, "knot");
        assert_box(a.labels[1].bbox, bb(0.0, 0.0, 0.5, 0.5));
        assert_eq!(a.labels[1].score, Some(0.125));
        let b = &ds.images[1];
        assert_eq!(b.key, "c.jpg");
        assert_box(b.labels[0].bbox, bb(0.1, 0.1, 0.4, 0.5));

        // An image the project does not know: no size, unplaced with its rows counted.
        let few = ImageIndex::new(vec![known("c.jpg", 100, 50)]);
        let mut c = ctx(Task::Detect, &few, &classes);
        c.predictions = true;
        let got = import(&fixture("results.json"), &c).unwrap();
        assert_eq!(got.dataset.images.len(), 1);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(
            got.unplaced.len(),
            1,
            "one entry per image: {:?}",
            got.unplaced
        );
        assert_eq!(got.unplaced[0].1, 2, "{:?}", got.unplaced);
    }

    #[test]
    fn results_list_rules() {
        let ix = ImageIndex::new(vec![
            known("a/st1026.jpg", 640, 480),
            known("c.jpg", 100, 50),
        ]);
        let classes = ["knot".to_string()];
        let mut c = ctx(Task::Detect, &ix, &classes);
        c.predictions = true;
        let file = fixture("results_int_ids.json");
        let e = import(&file, &c).unwrap_err().to_string();
        assert!(
            e.contains(
                "results_int_ids.json: $[0].image_id: image_id 42 refers to an instances file"
            ),
            "{e}"
        );

        let e = import(&fixture("results.json"), &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("results.json: $[0].category_id: category id 2 is not one of the project's 1 classes"), "{e}");

        c.predictions = false;
        let e = import(&fixture("results.json"), &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("results.json: $: this is a COCO results list"),
            "{e}"
        );
    }

    /// Writes `text` to a file, imports it and checks the error names the file, place and problem.
    fn assert_rejected(text: &str, predictions: bool, place: &str, msg: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(&file, text).unwrap();
        let ix = ImageIndex::new(vec![known("x.jpg", 100, 50)]);
        let classes = ["knot".to_string()];
        let mut c = ctx(Task::Detect, &ix, &classes);
        c.predictions = predictions;
        let e = import(&file, &c).unwrap_err().to_string();
        let head = format!("{}: {place}: ", file.display());
        assert!(e.starts_with(&head), "{e:?} should start with {head:?}");
        assert!(e.contains(msg), "{e:?} should contain {msg:?}");
    }

    const IMG: &str = r#""images":[{"id":1,"file_name":"x.jpg","width":100,"height":50}]"#;
    const CAT: &str = r#""categories":[{"id":1,"name":"knot"}]"#;

    fn with_ann(ann: &str) -> String {
        format!(r#"{{{IMG},"annotations":[{ann}],{CAT}}}"#)
    }

    #[test]
    fn rejects_bad_input() {
        assert_rejected(
            "{\"images\": [\n",
            false,
            "line 2",
            "not valid JSON: EOF while parsing",
        );
        assert_rejected(
            &format!("{}x", with_ann("")),
            false,
            "line 1",
            "trailing characters",
        );
        assert_rejected(
            "42",
            false,
            "$",
            "invalid type: integer `42`, expected a COCO object with images, annotations and categories",
        );
        assert_rejected(
            "[3]",
            true,
            "$[0]",
            "invalid type: integer `3`, expected a result {image_id, category_id, bbox, score}",
        );
        assert_rejected(
            r#"{"images":[{"id":1}],"annotations":[],"categories":[]}"#,
            false,
            "$.images[0]",
            "missing field `file_name`",
        );
        assert_rejected(
            &format!("{{{IMG},{CAT}}}"),
            false,
            "$",
            "missing field `annotations`",
        );
        assert_rejected(
            r#"{"images":[{"id":"a","file_name":"x.jpg"}],"annotations":[],"categories":[]}"#,
            false,
            "$.images[0].id",
            "invalid type: string \"a\", expected i64",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[1,"2",3,4]}"#),
            false,
            "$.annotations[0].bbox[1]",
            "invalid type: string \"2\", expected f64",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[1,2,3]}"#),
            false,
            "$.annotations[0].bbox",
            "bbox has 3 numbers; expected 4",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[10,2,-3,4]}"#),
            false,
            "$.annotations[0].bbox",
            "negative",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[10,2,0,4]}"#),
            false,
            "$.annotations[0].bbox",
            "zero area",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[150,2,10,4]}"#),
            false,
            "$.annotations[0].bbox",
            "zero area",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1}"#),
            false,
            "$.annotations[0]",
            "annotation has no bbox",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":9,"bbox":[1,2,3,4]}"#),
            false,
            "$.annotations[0].category_id",
            "no category has id 9",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":5,"category_id":1,"bbox":[1,2,3,4]}"#),
            false,
            "$.annotations[0].image_id",
            "no image has id 5",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[1,2,3,4],"iscrowd":2}"#),
            false,
            "$.annotations[0].iscrowd",
            "iscrowd is 2",
        );
        assert_rejected(
            &with_ann(r#"{"image_id":1,"category_id":1,"bbox":[1,2,3,4],"score":1.5}"#),
            true,
            "$.annotations[0].score",
            "score 1.5 is outside 0..1",
        );
        assert_rejected(
            &format!(
                r#"{{"images":[{{"id":1,"file_name":"x.jpg"}},{{"id":1,"file_name":"y.jpg"}}],"annotations":[],{CAT}}}"#
            ),
            false,
            "$.images[1].id",
            "image id 1 is already used by $.images[0]",
        );
        assert_rejected(
            &format!(
                r#"{{"images":[{{"id":1,"file_name":"x.jpg"}},{{"id":2,"file_name":"x.jpg"}}],"annotations":[],{CAT}}}"#
            ),
            false,
            "$.images[1].file_name",
            "`x.jpg` is already listed as $.images[0]",
        );
        assert_rejected(
            r#"{"images":[{"id":1,"file_name":" "}],"annotations":[],"categories":[]}"#,
            false,
            "$.images[0].file_name",
            "file_name is empty",
        );
        assert_rejected(
            &format!(
                r#"{{{IMG},"annotations":[],"categories":[{{"id":1,"name":"a"}},{{"id":1,"name":"b"}}]}}"#
            ),
            false,
            "$.categories[1].id",
            "category id 1 appears more than once",
        );
        assert_rejected(
            r#"[{"image_id":1.5,"category_id":1,"bbox":[1,2,3,4]}]"#,
            true,
            "$[0].image_id",
            "expected an image file name (string) or an image id (integer)",
        );
        assert_rejected(
            r#"[{"image_id":"x.jpg","category_id":1,"bbox":[1,2,3,"4"]}]"#,
            true,
            "$[0].bbox[3]",
            "invalid type",
        );
        assert_rejected(
            r#"[{"image_id":"","category_id":1,"bbox":[1,2,3,4]}]"#,
            true,
            "$[0].image_id",
            "image_id is empty",
        );
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(
            &file,
            r#"{"images":[{"id":1,"file_name":"a\u001b[31m.jpg"},{"id":2,"file_name":"a\u001b[31m.jpg"}],"annotations":[],"categories":[]}"#,
        )
        .unwrap();
        let ix = ImageIndex::default();
        let e = import(&file, &ctx(Task::Detect, &ix, &[]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\u{1b}'), "{e:?}");
        assert!(e.contains("a\\u{1b}[31m.jpg"), "{e:?}");
    }

    #[test]
    fn export_rejects_what_coco_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.json");
        let ctx = ExportCtx {
            task: Task::Detect,
            out: &out,
            predictions: false,
            url_prefix: "",
        };
        let mut ds = detect_dataset();
        ds.images[0].labels[0].bbox = None;
        let e = export(&ds, &ctx).unwrap_err().to_string();
        assert!(
            e.ends_with("o.json: a/st1026.jpg: a `knot` label has no box in a detect project"),
            "{e}"
        );

        let mut ds = detect_dataset();
        ds.images[2].width = 0;
        let e = export(&ds, &ctx).unwrap_err().to_string();
        assert!(e.contains("o.json: c.jpg: image size is unknown"), "{e}");

        let mut ds = detect_dataset();
        ds.classes.pop();
        let e = export(&ds, &ctx).unwrap_err().to_string();
        assert!(
            e.contains("o.json: a/st1026.jpg: class `crack` is not in"),
            "{e}"
        );
        assert!(!out.exists(), "nothing written on error");
    }
}

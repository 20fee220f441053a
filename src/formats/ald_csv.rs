//! active-learning-detect (ALD) CSV, Microsoft's active-learning pipeline for object detection.
//!
//! Four layouts, told apart by the header. ALD writes the `folder` column only when its config says
//! `user_folders = True` (images in sub-folders); otherwise the same columns without it:
//! - `tagged` (reviewed labels): `filename,class,xmin,xmax,ymin,ymax,height,width[,folder]`
//! - `totag` / `tagging` (model predictions): the same plus `box_confidence,image_confidence`.
//!
//! Coordinates are normalised (note the order xmin, xmax, ymin, ymax); `height`/`width` are the
//! image's pixel size. An image with no object is one row of class `NULL` with zero coordinates.
//! The image key is `folder/filename` (just `filename` when `folder` is empty or absent); rows of
//! one image need not be adjacent.
//!
//! Export writes the layout the target project uses: with `folder` when any image sits in a
//! sub-folder (ALD's `user_folders = True`), without it when all images are in one folder.
//! Predictions get `image_confidence` = the image's lowest box score, which is what ALD itself
//! writes (its review queue picks the images whose least certain box is least certain).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{
    ExportCtx, FormatError, ImportCtx, Imported, fmt_num, norm_box, parse_num, read_lines,
    write_file,
};
use crate::model::{Dataset, ImageLabels, Label, Task};
use crate::sanitize::{check_relative_key, for_terminal};

/// Columns every layout starts with, in this order.
const BASE: [&str; 8] = [
    "filename", "class", "xmin", "xmax", "ymin", "ymax", "height", "width",
];
const FOLDER: &str = "folder";
const SCORES: [&str; 2] = ["box_confidence", "image_confidence"];

/// One of ALD's four CSV layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    folder: bool,
    scores: bool,
}

impl Layout {
    const ALL: [Layout; 4] = [
        Layout {
            folder: true,
            scores: false,
        },
        Layout {
            folder: false,
            scores: false,
        },
        Layout {
            folder: true,
            scores: true,
        },
        Layout {
            folder: false,
            scores: true,
        },
    ];

    fn columns(self) -> Vec<&'static str> {
        let mut c = BASE.to_vec();
        if self.folder {
            c.push(FOLDER);
        }
        if self.scores {
            c.extend(SCORES);
        }
        c
    }

    /// Index of `box_confidence`.
    fn score_col(self) -> usize {
        BASE.len() + usize::from(self.folder)
    }

    fn name(self) -> &'static str {
        if self.scores {
            "totag/tagging"
        } else {
            "tagged"
        }
    }
}

/// The columns of a `tagged` file, with or without `folder`.
pub fn tagged_columns(folder: bool) -> Vec<&'static str> {
    Layout {
        folder,
        scores: false,
    }
    .columns()
}

/// The columns of a `totag`/`tagging` file (predictions, with scores), with or without `folder`.
pub fn totag_columns(folder: bool) -> Vec<&'static str> {
    Layout {
        folder,
        scores: true,
    }
    .columns()
}

/// The class ALD writes for an image that holds no object.
const NULL_CLASS: &str = "NULL";

fn detect_only(task: Task) -> Result<(), FormatError> {
    if task.is_detect() {
        Ok(())
    } else {
        Err(FormatError::Unsupported(format!(
            "ald-csv holds object-detection boxes only, not {task} labels; \
             use azureml-jsonl or modelarts-txt for classification"
        )))
    }
}

/// One image being gathered from possibly scattered rows.
struct Pending {
    image: ImageLabels,
    /// Size stated on the image's first row, and that row's line: all its rows must agree.
    stated: (u32, u32),
    size_line: u64,
    /// Line of a `NULL` row, if the image had one.
    null_line: Option<u64>,
    /// Line of the first box row, if any.
    box_line: Option<u64>,
}

/// Reads a `tagged` or `totag`/`tagging` file (the header decides). Images keep the order of their
/// first row; `classes` lists the class names met, in order of first appearance.
pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    detect_only(ctx.task)?;
    read(&read_lines(path)?, path, ctx)
}

/// [`import`] of text in memory; `path` names it in messages (a file, a blob).
pub fn read(text: &str, path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    detect_only(ctx.task)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records().map(|r| r.map_err(|e| csv_error(path, e)));
    let header = match records.next() {
        Some(r) => r?,
        None => return Err(FormatError::invalid(path, "line 1", "the file is empty")),
    };
    read_records(&header, records, path, ctx)
}

/// The rows of `rows` whose key `keep` accepts, read and checked as [`read`] reads a file (line
/// numbers are those of the file the rows came from): a subset of a `totag` CSV goes straight
/// into an import, without being written out again.
pub fn read_rows(
    rows: &Rows,
    keep: impl Fn(&str) -> bool,
    path: &Path,
    ctx: &ImportCtx,
) -> Result<Imported, FormatError> {
    detect_only(ctx.task)?;
    let trimmed = |r: &csv::StringRecord| {
        let mut r = r.clone();
        r.trim();
        r
    };
    let records = rows
        .rows
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(_, r)| Ok(trimmed(r)));
    read_records(&trimmed(&rows.header), records, path, ctx)
}

/// [`read`] after the header.
fn read_records(
    header: &csv::StringRecord,
    records: impl Iterator<Item = Result<csv::StringRecord, FormatError>>,
    path: &Path,
    ctx: &ImportCtx,
) -> Result<Imported, FormatError> {
    let header: Vec<&str> = header.iter().collect();
    let Some(layout) = Layout::ALL.into_iter().find(|l| l.columns() == header) else {
        let shown: Vec<String> = Layout::ALL
            .iter()
            .map(|l| format!("`{}` ({})", l.columns().join(","), l.name()))
            .collect();
        return Err(FormatError::invalid(
            path,
            "line 1",
            format!("header must be one of {}", shown.join(", ")),
        ));
    };
    let columns = layout.columns();
    if ctx.predictions && !layout.scores {
        return Err(FormatError::invalid(
            path,
            "line 1",
            "this is a `tagged` file (reviewed labels, no box_confidence column), so it has no \
             scores to import as predictions; import it as labels, or import a totag/tagging file",
        ));
    }

    let mut out = Imported::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut classes: Vec<String> = Vec::new();

    for rec in records {
        let rec = rec?;
        let line = rec.position().map_or(0, |p| p.line());
        let at = format!("line {line}");
        if rec.len() != columns.len() {
            return Err(FormatError::invalid(
                path,
                &at,
                format!(
                    "expected {} columns ({}), found {}",
                    columns.len(),
                    columns.join(","),
                    rec.len()
                ),
            ));
        }
        // Columns by position; the header check fixed their meaning.
        let field = |i: usize| rec.get(i).unwrap_or_default();
        let place = |i: usize| format!("line {line}, column {} ({})", i + 1, columns[i]);
        let num = |i: usize| parse_num(field(i), path, &place(i), columns[i]);

        let filename = field(0);
        if filename.is_empty() {
            return Err(FormatError::invalid(path, place(0), "filename is empty"));
        }
        let class = field(1);
        if class.is_empty() {
            return Err(FormatError::invalid(
                path,
                place(1),
                "class is empty (write `NULL` for an image with no object)",
            ));
        }
        let height = pixels(num(6)?, path, &place(6), "height")?;
        let width = pixels(num(7)?, path, &place(7), "width")?;
        let key = image_key(if layout.folder { field(BASE.len()) } else { "" }, filename);

        let idx = *by_key.entry(key.clone()).or_insert_with(|| {
            let (w, h) = match (width, height) {
                (w, h) if w > 0 && h > 0 => (w, h),
                // The file has no size: take the project's, else leave 0 (boxes are normalised).
                _ => ctx
                    .images
                    .resolve(&key)
                    .map_or((0, 0), |im| (im.width, im.height)),
            };
            pending.push(Pending {
                image: ImageLabels {
                    key: key.clone(),
                    width: w,
                    height: h,
                    labels: Vec::new(),
                },
                stated: (width, height),
                size_line: line,
                null_line: None,
                box_line: None,
            });
            pending.len() - 1
        });
        let p = &mut pending[idx];
        if (width, height) != p.stated {
            return Err(FormatError::invalid(
                path,
                &at,
                format!(
                    "image `{}` is {width}×{height} (width×height) here but {}×{} on line {}",
                    for_terminal(&key),
                    p.stated.0,
                    p.stated.1,
                    p.size_line
                ),
            ));
        }

        if class == NULL_CLASS {
            if let Some(b) = p.box_line {
                return Err(FormatError::invalid(
                    path,
                    &at,
                    format!(
                        "`NULL` row (no object) for image `{}`, which has a box on line {b}",
                        for_terminal(&key)
                    ),
                ));
            }
            p.null_line.get_or_insert(line);
            continue;
        }
        if let Some(n) = p.null_line {
            return Err(FormatError::invalid(
                path,
                &at,
                format!(
                    "box for image `{}`, which line {n} marks as holding no object (`NULL`)",
                    for_terminal(&key)
                ),
            ));
        }
        let (xmin, xmax, ymin, ymax) = (num(2)?, num(3)?, num(4)?, num(5)?);
        let bbox = norm_box((xmin, ymin, xmax, ymax), path, &at, &mut out.warnings)?;
        let score = if ctx.predictions && layout.scores {
            Some(num(layout.score_col())?)
        } else {
            None
        };
        p.box_line.get_or_insert(line);
        if !classes.iter().any(|c| c == class) {
            classes.push(class.to_string());
        }
        p.image.labels.push(Label {
            class: class.to_string(),
            bbox: Some(bbox),
            score,
        });
    }

    out.dataset = Dataset {
        classes,
        images: pending.into_iter().map(|p| p.image).collect(),
    };
    Ok(out)
}

/// A pixel size column: a whole, non-negative number.
fn pixels(v: f64, path: &Path, place: &str, what: &str) -> Result<u32, FormatError> {
    if v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) {
        // Checked whole and in range just above.
        Ok(v as u32)
    } else {
        Err(FormatError::invalid(
            path,
            place,
            format!("{what} `{v}` is not a whole number of pixels"),
        ))
    }
}

fn csv_error(path: &Path, e: csv::Error) -> FormatError {
    let line = e.position().map_or(0, |p| p.line());
    FormatError::invalid(path, format!("line {line}"), format!("unreadable CSV: {e}"))
}

/// Writes labels as a `tagged` file, predictions as a `totag` file (every box needs a score), with
/// the `folder` column only when some image sits in a sub-folder.
pub fn export(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    write_file(ctx.out, &write(ds, ctx)?)?;
    Ok(vec![ctx.out.to_path_buf()])
}

/// [`export`] into memory: the file's bytes; `ctx.out` names it in messages.
pub fn write(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<u8>, FormatError> {
    detect_only(ctx.task)?;
    let out = ctx.out;
    let mut w = csv_writer();
    let io = |e: csv::Error| FormatError::io(out, e.into());
    let layout = Layout {
        folder: ds.images.iter().any(|im| im.key.contains('/')),
        scores: ctx.predictions,
    };
    w.write_record(layout.columns()).map_err(io)?;

    for im in &ds.images {
        check_relative_key(&im.key).map_err(|e| FormatError::invalid(out, "image key", e))?;
        let shown = for_terminal(&im.key);
        let (folder, filename) = im.key.rsplit_once('/').unwrap_or(("", &im.key));
        let (h, w_px) = (im.height.to_string(), im.width.to_string());
        // ALD's image confidence: the least certain box decides how certain the image is.
        let image_conf = if ctx.predictions && !im.labels.is_empty() {
            let mut min = f64::INFINITY;
            for l in &im.labels {
                let s = l.score.ok_or_else(|| {
                    FormatError::invalid(
                        out,
                        format!("image `{shown}`"),
                        format!(
                            "prediction of class `{}` has no score; a totag file needs box_confidence",
                            for_terminal(&l.class)
                        ),
                    )
                })?;
                min = min.min(s);
            }
            fmt_num(min)
        } else {
            "0".to_string()
        };
        let mut row = |class: &str, x0: &str, x1: &str, y0: &str, y1: &str, conf: &str| {
            let mut r = vec![filename, class, x0, x1, y0, y1, &h, &w_px];
            if layout.folder {
                r.push(folder);
            }
            if layout.scores {
                r.extend([conf, image_conf.as_str()]);
            }
            w.write_record(r).map_err(io)
        };

        if im.labels.is_empty() {
            row(NULL_CLASS, "0", "0", "0", "0", "0")?;
            continue;
        }
        for l in &im.labels {
            if l.class == NULL_CLASS {
                return Err(FormatError::invalid(
                    out,
                    format!("image `{shown}`"),
                    "class `NULL` cannot be written: ALD reads it as \"no object in this image\"",
                ));
            }
            let b = l.bbox.ok_or_else(|| {
                FormatError::invalid(
                    out,
                    format!("image `{shown}`"),
                    format!("label `{}` has no box", for_terminal(&l.class)),
                )
            })?;
            let conf = l.score.map(fmt_num).unwrap_or_default();
            row(
                &l.class,
                &fmt_num(b.x0),
                &fmt_num(b.x1),
                &fmt_num(b.y0),
                &fmt_num(b.y1),
                &conf,
            )?;
        }
    }

    w.into_inner()
        .map_err(|e| FormatError::io(out, e.into_error()))
}

/// How ALD writes its CSVs: `\n` line ends, quotes only where needed.
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new())
}

/// An image's key: `folder/filename`, just `filename` when `folder` is empty.
fn image_key(folder: &str, filename: &str) -> String {
    let folder = folder.trim_end_matches('/');
    if folder.is_empty() {
        filename.to_string()
    } else {
        format!("{folder}/{filename}")
    }
}

/// An ALD file as rows, every column kept as written (another tool's extra columns too), each
/// row with its image key: what the remote reads, filters, merges and writes back when it
/// keeps the team's `totag`/`tagging`/`tagged` CSVs. [`read`] is the strict reader of labels.
#[derive(Debug, Clone)]
pub struct Rows {
    pub header: csv::StringRecord,
    pub rows: Vec<(String, csv::StringRecord)>,
}

/// [`Rows::conform`] refused: the header has no `folder` column, but this image (its key) sits
/// in a sub-folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("it has no `folder` column, but image `{}` sits in a sub-folder", for_terminal(.0))]
pub struct LosesFolder(pub String);

impl Rows {
    /// Any CSV with a `filename` column (and maybe `folder`); `name` names it in messages.
    pub fn parse(text: &str, name: &Path) -> Result<Rows, FormatError> {
        let mut r = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(text.as_bytes());
        let header = r
            .headers()
            .map_err(|e| {
                FormatError::invalid(name, "line 1", format!("unreadable CSV header: {e}"))
            })?
            .clone();
        let col = |n: &str| header.iter().position(|h| h.trim() == n);
        let (Some(fi), folder) = (col("filename"), col(FOLDER)) else {
            return Err(FormatError::invalid(
                name,
                "line 1",
                "no `filename` column; not an active-learning-detect CSV",
            ));
        };
        let mut rows = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| csv_error(name, e))?;
            let dir = folder.and_then(|i| rec.get(i)).unwrap_or_default();
            rows.push((image_key(dir, rec.get(fi).unwrap_or_default()), rec));
        }
        Ok(Rows { header, rows })
    }

    /// The same rows under `header` (ALD writes `folder` only with `user_folders = True`): columns
    /// matched by name, a missing one left empty; refused when that would lose a row's folder.
    pub fn conform(self, header: &csv::StringRecord) -> Result<Rows, LosesFolder> {
        if self.header == *header {
            return Ok(self);
        }
        let from: Vec<Option<usize>> = header
            .iter()
            .map(|h| self.header.iter().position(|c| c.trim() == h.trim()))
            .collect();
        let folder = self.header.iter().position(|c| c.trim() == FOLDER);
        let keeps_folder = header.iter().any(|c| c.trim() == FOLDER);
        let mut rows = Vec::with_capacity(self.rows.len());
        for (k, r) in self.rows {
            if !keeps_folder && folder.and_then(|i| r.get(i)).is_some_and(|f| !f.is_empty()) {
                return Err(LosesFolder(k));
            }
            let rec: csv::StringRecord = from
                .iter()
                .map(|i| i.and_then(|i| r.get(i)).unwrap_or_default())
                .collect();
            rows.push((k, rec));
        }
        Ok(Rows {
            header: header.clone(),
            rows,
        })
    }

    /// The header and the rows whose key `keep` accepts, as ALD writes a CSV.
    pub fn to_csv(&self, keep: impl Fn(&str) -> bool) -> Result<String, csv::Error> {
        let mut w = csv_writer();
        w.write_record(&self.header)?;
        for (k, r) in &self.rows {
            if keep(k) {
                w.write_record(r)?;
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        // Every field came from a `&str`.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Per image key, the scores of its boxes by class: `box_confidence`, else
    /// `image_confidence`; an image whose only row is `NULL` (no object) has none.
    pub fn scores(&self) -> HashMap<String, Vec<(String, f64)>> {
        let col = |n: &str| self.header.iter().position(|h| h.trim() == n);
        let (img, bx, class) = (col(SCORES[1]), col(SCORES[0]), col("class"));
        let mut out: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        for (k, r) in &self.rows {
            let entry = out.entry(k.clone()).or_default();
            let class = class.and_then(|i| r.get(i)).unwrap_or_default();
            let score = [bx, img]
                .into_iter()
                .flatten()
                .filter_map(|i| r.get(i)?.trim().parse::<f64>().ok())
                .next();
            if class != NULL_CLASS
                && let Some(s) = score
            {
                entry.push((class.to_string(), s));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testutil::{
        assert_round_trip, bb, det, detect_export as ectx, detect_import as ictx,
    };
    use crate::formats::{ImageIndex, KnownImage};

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ald_csv/");

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(FIX).join(name)
    }

    fn assert_box(l: &Label, class: &str, (x0, y0, x1, y1): (f64, f64, f64, f64)) {
        assert_eq!(l.class, class);
        let b = l.bbox.expect("detection label has a box");
        for (got, want) in [(b.x0, x0), (b.y0, y0), (b.x1, x1), (b.y1, y1)] {
            assert!(
                (got - want).abs() < 1e-12,
                "{b:?} vs {:?}",
                (x0, y0, x1, y1)
            );
        }
    }

    /// Writes `text` to a temp file and imports it, returning the error's text.
    fn import_err(text: &str, predictions: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        std::fs::write(&p, text).unwrap();
        let ix = ImageIndex::default();
        let e = import(&p, &ictx(&ix, predictions)).unwrap_err().to_string();
        assert!(e.contains("bad.csv"), "error names the file: {e}");
        e
    }

    fn import_text(text: &str, predictions: bool) -> Imported {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, text).unwrap();
        let ix = ImageIndex::default();
        import(&p, &ictx(&ix, predictions)).unwrap()
    }

    const H9: &str = "filename,class,xmin,xmax,ymin,ymax,height,width,folder\n";
    const H11: &str =
        "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n";

    #[test]
    fn imports_tagged_grouping_scattered_rows() {
        let ix = ImageIndex::default();
        let got = import(&fixture("tagged.csv"), &ictx(&ix, false)).unwrap();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let ims = &got.dataset.images;
        let keys: Vec<&str> = ims.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            ["board1/st1026.png", "board1/st1027.png", "st1028.png"]
        );
        assert_eq!((ims[0].width, ims[0].height), (488, 512));
        assert_eq!((ims[2].width, ims[2].height), (800, 600));
        assert_eq!(ims[0].labels.len(), 3);
        // Columns are xmin, xmax, ymin, ymax; boxes are (x0, y0, x1, y1).
        assert_box(
            &ims[0].labels[0],
            "knot",
            (0.69150746, 0.3375946, 0.7407868, 0.39795738),
        );
        assert_box(&ims[0].labels[1], "defect", (0.2, 0.5, 0.35, 0.6));
        assert_box(&ims[0].labels[2], "knot", (0.5, 0.7, 0.625, 0.8));
        assert!(ims[1].labels.is_empty(), "NULL row = verified empty");
        assert_box(&ims[2].labels[0], "knot", (0.1, 0.15, 0.2, 0.3));
        assert!(
            ims.iter()
                .flat_map(|i| &i.labels)
                .all(|l| l.score.is_none())
        );
        assert_eq!(got.dataset.classes, ["knot", "defect"]);
    }

    #[test]
    fn imports_totag_with_scores_only_as_predictions() {
        let ix = ImageIndex::default();
        let got = import(&fixture("totag.csv"), &ictx(&ix, true)).unwrap();
        let ims = &got.dataset.images;
        let keys: Vec<&str> = ims.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "board2/st1030.png",
                "board2/st1031.png",
                "st 1032, copy.png"
            ]
        );
        assert_box(&ims[0].labels[0], "knot", (0.25, 0.125, 0.5, 0.375));
        assert_eq!(ims[0].labels[0].score, Some(0.91));
        assert_box(&ims[0].labels[1], "defect", (0.6, 0.6, 0.9, 0.95));
        assert_eq!(ims[0].labels[1].score, Some(0.42));
        assert!(ims[1].labels.is_empty());
        assert_box(&ims[2].labels[0], "knot", (0.0, 0.0, 1.0, 0.5));
        assert_eq!(ims[2].labels[0].score, Some(0.7));
        assert_eq!((ims[2].width, ims[2].height), (400, 300));

        let as_labels = import(&fixture("totag.csv"), &ictx(&ix, false)).unwrap();
        let ims = &as_labels.dataset.images;
        assert_eq!(ims[0].labels.len(), 2);
        assert!(
            ims.iter()
                .flat_map(|i| &i.labels)
                .all(|l| l.score.is_none())
        );
    }

    #[test]
    fn tagged_file_as_predictions_is_refused() {
        let ix = ImageIndex::default();
        let e = import(&fixture("tagged.csv"), &ictx(&ix, true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tagged.csv: line 1:"), "{e}");
        assert!(e.contains("no scores"), "{e}");
    }

    fn sample_labels() -> Dataset {
        Dataset {
            classes: vec!["knot".into(), "defect".into()],
            images: vec![
                ImageLabels {
                    key: "board1/st1026.png".into(),
                    width: 488,
                    height: 512,
                    labels: vec![
                        det(
                            "knot",
                            bb(0.69150746, 0.3375946, 0.7407868, 0.39795738),
                            None,
                        ),
                        det("defect", bb(0.2, 0.5, 0.35, 0.6), Some(0.5)),
                        det("knot", bb(0.5, 0.7, 0.625, 0.8), None),
                    ],
                },
                ImageLabels {
                    key: "board1/st1027.png".into(),
                    width: 488,
                    height: 512,
                    labels: vec![],
                },
                ImageLabels {
                    key: "st1028.png".into(),
                    width: 800,
                    height: 600,
                    labels: vec![det("knot", bb(0.1, 0.15, 0.2, 0.3), None)],
                },
            ],
        }
    }

    fn sample_predictions() -> Dataset {
        Dataset {
            classes: vec!["knot".into(), "defect".into()],
            images: vec![
                ImageLabels {
                    key: "board2/st1030.png".into(),
                    width: 488,
                    height: 512,
                    labels: vec![
                        det("knot", bb(0.25, 0.125, 0.5, 0.375), Some(0.91)),
                        det("defect", bb(0.6, 0.6, 0.9, 0.95), Some(0.42)),
                    ],
                },
                ImageLabels {
                    key: "board2/st1031.png".into(),
                    width: 488,
                    height: 512,
                    labels: vec![],
                },
                ImageLabels {
                    key: "st 1032, copy.png".into(),
                    width: 400,
                    height: 300,
                    labels: vec![det("knot", bb(0.0, 0.0, 1.0, 0.5), Some(0.7))],
                },
            ],
        }
    }

    #[test]
    fn exports_tagged_layout_for_labels() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/tagged.csv");
        let files = export(&sample_labels(), &ectx(&out, false)).unwrap();
        assert_eq!(files, [out.as_path()]);
        let want = std::fs::read_to_string(fixture("expected_tagged.csv")).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
    }

    #[test]
    fn exports_totag_layout_with_min_image_confidence() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("totag.csv");
        export(&sample_predictions(), &ectx(&out, true)).unwrap();
        let want = std::fs::read_to_string(fixture("expected_totag.csv")).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
    }

    #[test]
    fn round_trip_is_byte_identical() {
        for (ds, predictions) in [(sample_labels(), false), (sample_predictions(), true)] {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
            export(&ds, &ectx(&a, predictions)).unwrap();
            let ix = ImageIndex::default();
            let back = import(&a, &ictx(&ix, predictions)).unwrap();
            assert!(back.warnings.is_empty());
            export(&back.dataset, &ectx(&b, predictions)).unwrap();
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
            assert_round_trip(&back.dataset.images, &ds.images, predictions);
        }
    }

    #[test]
    fn size_comes_from_the_project_when_the_file_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,0,0,f\n")).unwrap();
        let ix = ImageIndex::new(vec![KnownImage {
            key: "f/a.jpg".into(),
            width: 640,
            height: 480,
            orientation: 1,
        }]);
        let got = import(&p, &ictx(&ix, false)).unwrap();
        let im = &got.dataset.images[0];
        assert_eq!(
            (im.key.as_str(), im.width, im.height),
            ("f/a.jpg", 640, 480)
        );
    }

    #[test]
    fn bad_header_names_line_1() {
        let e = import_err(
            "filename,class,xmin,ymin,xmax,ymax,height,width,folder\n",
            false,
        );
        assert!(e.contains("line 1: header must be"), "{e}");
        let e = import_err("", false);
        assert!(e.contains("line 1: the file is empty"), "{e}");
    }

    #[test]
    fn wrong_column_count_names_the_line() {
        let e = import_err(&format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,10,10\n"), false);
        assert!(e.contains("line 2: expected 9 columns"), "{e}");
        assert!(e.contains("found 8"), "{e}");
    }

    #[test]
    fn non_numeric_coordinate_names_line_and_column() {
        let e = import_err(
            &format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,10,10,\nb.jpg,knot,0.1,x,0.1,0.2,10,10,\n"),
            false,
        );
        assert!(
            e.contains("line 3, column 4 (xmax): xmax `x` is not a number"),
            "{e}"
        );
        let e = import_err(
            &format!("{H11}a.jpg,knot,0.1,0.2,0.1,0.2,10,10,,high,0.5\n"),
            true,
        );
        assert!(e.contains("line 2, column 10 (box_confidence)"), "{e}");
        let e = import_err(&format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,10.5,10,\n"), false);
        assert!(
            e.contains("line 2, column 7 (height): height `10.5` is not a whole number"),
            "{e}"
        );
        let e = import_err(&format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,-3,10,\n"), false);
        assert!(e.contains("column 7 (height)"), "{e}");
    }

    #[test]
    fn empty_fields_are_rejected() {
        let e = import_err(&format!("{H9},knot,0.1,0.2,0.1,0.2,10,10,\n"), false);
        assert!(
            e.contains("line 2, column 1 (filename): filename is empty"),
            "{e}"
        );
        let e = import_err(&format!("{H9}a.jpg,,0.1,0.2,0.1,0.2,10,10,\n"), false);
        assert!(
            e.contains("line 2, column 2 (class): class is empty"),
            "{e}"
        );
    }

    #[test]
    fn zero_area_box_is_rejected_with_its_line() {
        let e = import_err(&format!("{H9}a.jpg,knot,0.3,0.3,0.1,0.2,10,10,\n"), false);
        assert!(e.contains("line 2: box has zero area"), "{e}");
    }

    #[test]
    fn box_outside_is_clipped_with_one_warning() {
        let got = import_text(&format!("{H9}a.jpg,knot,-0.1,0.5,0.5,1.25,10,10,\n"), false);
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(got.warnings[0].contains("line 2"), "{:?}", got.warnings);
        assert_box(
            &got.dataset.images[0].labels[0],
            "knot",
            (0.0, 0.5, 0.5, 1.0),
        );
    }

    #[test]
    fn null_row_and_boxes_for_one_image_conflict() {
        let e = import_err(
            &format!(
                "{H9}a.jpg,NULL,0,0,0,0,10,10,f\nb.jpg,knot,0.1,0.2,0.1,0.2,10,10,\na.jpg,knot,0.1,0.2,0.1,0.2,10,10,f\n"
            ),
            false,
        );
        assert!(
            e.contains("line 4: box for image `f/a.jpg`, which line 2 marks"),
            "{e}"
        );
        let e = import_err(
            &format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,10,10,\na.jpg,NULL,0,0,0,0,10,10,\n"),
            false,
        );
        assert!(e.contains("line 3: `NULL` row"), "{e}");
        assert!(e.contains("box on line 2"), "{e}");
    }

    #[test]
    fn conflicting_sizes_for_one_image_are_rejected() {
        let e = import_err(
            &format!("{H9}a.jpg,knot,0.1,0.2,0.1,0.2,10,10,\na.jpg,knot,0.3,0.4,0.1,0.2,20,10,\n"),
            false,
        );
        assert!(e.contains("line 3: image `a.jpg` is 10×20"), "{e}");
        assert!(e.contains("on line 2"), "{e}");
    }

    #[test]
    fn line_numbers_count_quoted_newlines() {
        let e = import_err(
            &format!(
                "{H9}\"a\nb.jpg\",knot,0.1,0.2,0.1,0.2,10,10,\nc.jpg,knot,z,0.2,0.1,0.2,10,10,\n"
            ),
            false,
        );
        assert!(e.contains("line 4, column 3 (xmin)"), "{e}");
    }

    #[test]
    fn classification_is_unsupported() {
        let ix = ImageIndex::default();
        let mut c = ictx(&ix, false);
        c.task = Task::Classify;
        assert!(matches!(
            import(&fixture("tagged.csv"), &c),
            Err(FormatError::Unsupported(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.csv");
        let mut e = ectx(&out, false);
        e.task = Task::Multilabel;
        assert!(matches!(
            export(&sample_labels(), &e),
            Err(FormatError::Unsupported(_))
        ));
        assert!(!out.exists());
    }

    #[test]
    fn export_refuses_what_ald_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.csv");

        let mut ds = sample_predictions();
        ds.images[0].labels[1].score = None;
        let e = export(&ds, &ectx(&out, true)).unwrap_err().to_string();
        assert!(
            e.contains("image `board2/st1030.png`: prediction of class `defect` has no score"),
            "{e}"
        );

        let mut ds = sample_labels();
        ds.images[2].labels[0].class = "NULL".into();
        let e = export(&ds, &ectx(&out, false)).unwrap_err().to_string();
        assert!(
            e.contains("image `st1028.png`: class `NULL` cannot be written"),
            "{e}"
        );

        let mut ds = sample_labels();
        ds.images[2].key = "../st1028.png".into();
        let e = export(&ds, &ectx(&out, false)).unwrap_err().to_string();
        assert!(e.contains("leaves its folder"), "{e}");
        assert!(!out.exists(), "nothing written on error");
    }

    #[test]
    fn rows_keep_every_column_and_give_box_scores() {
        let text = "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n\
                    a.jpg,can,0.1,0.2,0.1,0.2,10,10,,0.9,0.4\n\
                    a.jpg,can,0.1,0.2,0.1,0.2,10,10,,0.4,0.4\n\
                    b.jpg,NULL,0,0,0,0,10,10,,0,0\n\
                    c.jpg,can,0.1,0.2,0.1,0.2,10,10,sub/,0.7,0.7\n";
        let rows = Rows::parse(text, Path::new("t")).unwrap();
        let c = rows.scores();
        assert_eq!(
            c["a.jpg"],
            [("can".to_string(), 0.9), ("can".to_string(), 0.4)]
        );
        assert!(c["b.jpg"].is_empty(), "NULL: predicted, nothing found");
        assert_eq!(
            c["sub/c.jpg"],
            [("can".to_string(), 0.7)],
            "keys as the strict reader makes them"
        );
        let kept = rows.to_csv(|k| k == "b.jpg").unwrap();
        assert_eq!(
            kept,
            format!(
                "{}b.jpg,NULL,0,0,0,0,10,10,,0,0\n",
                text.lines().next().unwrap().to_string() + "\n"
            )
        );
        let e = Rows::parse("x,y\n1,2\n", Path::new("totag_1.csv")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("totag_1.csv: line 1: no `filename` column"),
            "{e}"
        );
    }

    #[test]
    fn rows_read_as_the_file_would_be_with_its_line_numbers() {
        let text = format!(
            "{}{}{}",
            H11.replace(",folder", ", folder"),
            "a.png,knot,0.1,0.2,0.1,0.2,10,10,,0.9,0.9\n",
            "b.png,knot,0.1,0.2,0.1,0.2,10,10,,0.5,0.5\nb.png,knot,0.1,0.2,0.1,0.2,10,ten,,0.5,0.5\n"
        );
        let rows = Rows::parse(&text, Path::new("totag_1.csv")).unwrap();
        let ix = ImageIndex::default();
        let got = read_rows(
            &rows,
            |k| k == "a.png",
            Path::new("totag_1.csv"),
            &ictx(&ix, true),
        )
        .unwrap();
        let want = import_text(&rows.to_csv(|k| k == "a.png").unwrap(), true);
        assert_eq!(got.dataset, want.dataset);
        assert_eq!(got.dataset.images[0].labels[0].score, Some(0.9));
        // b.png's second row is bad: named by its line in the original file.
        let e = read_rows(
            &rows,
            |k| k == "b.png",
            Path::new("totag_1.csv"),
            &ictx(&ix, true),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("totag_1.csv: line 4, column 8 (width)"),
            "{e}"
        );
    }
}

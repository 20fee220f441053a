//! VoTT CSV export (import only): header `image,xmin,ymin,xmax,ymax,label`, one row per box, pixel
//! coordinates, fields usually quoted (`"img.jpg",10,20,30,40,"car"`). The file states no image
//! size, so boxes are placed on the project image's displayed size; rows for images the project
//! does not have are handed back as unplaced. Images without boxes have no row, so the format
//! carries no verified-empty images, and no scores.
//!
//! VoTT names an asset by the last component of its `encodeURI`d path with `#` and `?` encoded too
//! (`AssetService.createAssetFromFilePath` → `encodeFileURI(path, true)`), and its CSV exporter
//! writes that name as is: `my%20rocket.jpg` for `my rocket.jpg`. Names are percent-decoded; a name
//! that only resolves as written (a literal `%` from another writer) is taken as written.

use std::collections::HashMap;
use std::path::Path;

use super::{FormatError, ImportCtx, Imported, KnownImage, parse_num, pixel_box};
use crate::model::{Dataset, ImageLabels, Label};

const COLUMNS: [&str; 6] = ["image", "xmin", "ymin", "xmax", "ymax", "label"];

/// The project image VoTT means by `name`, and the name that found it (decoded when it was
/// percent-encoded).
fn resolve<'a>(ctx: &'a ImportCtx, name: &str) -> Option<(&'a KnownImage, String)> {
    let decoded = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok();
    if let Some(d) = decoded.filter(|d| d != name)
        && let Some(known) = ctx.images.resolve(&d)
    {
        return Some((known, d.into_owned()));
    }
    ctx.images.resolve(name).map(|k| (k, name.to_string()))
}

pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    if !ctx.task.is_detect() {
        return Err(FormatError::Unsupported(format!(
            "vott-csv carries detection boxes only, but this project's task is {}",
            ctx.task
        )));
    }
    let text = super::read_lines(path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let mut col = [0usize; 6];
    for (slot, name) in col.iter_mut().zip(COLUMNS) {
        *slot = header.iter().position(|h| h == name).ok_or_else(|| {
            FormatError::invalid(
                path,
                "line 1",
                format!(
                    "missing column `{name}`; expected the header {}",
                    COLUMNS.join(",")
                ),
            )
        })?;
    }

    let mut warnings = Vec::new();
    let mut images: Vec<ImageLabels> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut unplaced: Vec<(String, usize)> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let place = format!("line {}", rec.position().map_or(0, |p| p.line()));
        let field = |i: usize| rec.get(col[i]).unwrap_or("");
        let (image, label) = (field(0), field(5));
        for (v, name) in [(image, "image"), (label, "label")] {
            if v.is_empty() {
                return Err(FormatError::invalid(
                    path,
                    &place,
                    format!("column `{name}` is empty"),
                ));
            }
        }
        let num = |i: usize| parse_num(field(i), path, &place, &format!("column `{}`", COLUMNS[i]));
        let corners = (num(1)?, num(2)?, num(3)?, num(4)?);
        let Some((known, name)) = resolve(ctx, image) else {
            match unplaced.iter_mut().find(|(m, _)| m == image) {
                Some((_, rows)) => *rows += 1,
                None => unplaced.push((image.to_string(), 1)),
            }
            continue;
        };
        let bbox = pixel_box(
            corners,
            known.width,
            known.height,
            path,
            &place,
            &mut warnings,
        )?;
        let i = *by_name.entry(name.clone()).or_insert_with(|| {
            images.push(ImageLabels {
                key: name,
                width: known.width,
                height: known.height,
                labels: Vec::new(),
            });
            images.len() - 1
        });
        images[i].labels.push(Label {
            class: label.to_string(),
            bbox: Some(bbox),
            score: None,
        });
    }
    let mut classes: Vec<String> = Vec::new();
    for l in images.iter().flat_map(|i| &i.labels) {
        if !classes.contains(&l.class) {
            classes.push(l.class.clone());
        }
    }
    Ok(Imported {
        dataset: Dataset { classes, images },
        warnings,
        unplaced,
    })
}

/// A csv error as a [`FormatError`] naming the line (1-based, the header being line 1).
fn csv_error(path: &Path, e: csv::Error) -> FormatError {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => FormatError::io(path, io),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => FormatError::invalid(
            path,
            format!("line {}", line.unwrap_or(0)),
            format!("{len} fields, but the header has {expected_len}"),
        ),
        csv::ErrorKind::Utf8 { .. } => FormatError::invalid(
            path,
            format!("line {}", line.unwrap_or(0)),
            "not valid UTF-8 text",
        ),
        other => FormatError::invalid(
            path,
            line.map_or_else(|| "file".to_string(), |l| format!("line {l}")),
            format!("{other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageIndex;
    use crate::formats::testutil::{self, assert_box, index};
    use crate::model::Task;

    fn fixture(name: &str) -> std::path::PathBuf {
        testutil::fixture("vott_csv", name)
    }

    fn project() -> ImageIndex {
        index(&[("img.jpg", 100, 50), ("sub/img2.png", 200, 100)])
    }

    fn imp(path: &Path) -> Result<Imported, FormatError> {
        let ix = project();
        import(
            path,
            &ImportCtx {
                task: Task::Detect,
                images: &ix,
                classes: &[],
                predictions: true,
            },
        )
    }

    #[test]
    fn imports_design_example() {
        // The header from DESIGN.md and the quoted rows VoTT writes.
        let got = imp(&fixture("export.csv")).unwrap();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let ds = got.dataset;
        assert_eq!(ds.classes, ["car", "person"]);
        assert_eq!(ds.images.len(), 2);
        let a = &ds.images[0];
        assert_eq!((a.key.as_str(), a.width, a.height), ("img.jpg", 100, 50));
        assert_eq!(a.labels.len(), 2, "two rows, one image");
        assert_eq!(a.labels[0].class, "car");
        assert_box(a.labels[0].bbox, (0.1, 0.4, 0.3, 0.8));
        assert_eq!(a.labels[1].class, "person");
        assert_box(a.labels[1].bbox, (0.0, 0.0, 1.0, 1.0));
        assert!(a.labels.iter().all(|l| l.score.is_none()));
        let b = &ds.images[1];
        // The name as written; the caller resolves it (here to sub/img2.png).
        assert_eq!((b.key.as_str(), b.width, b.height), ("img2.png", 200, 100));
        assert_eq!(b.labels.len(), 1);
        assert_box(b.labels[0].bbox, (5.5 / 200.0, 6.5 / 100.0, 0.1, 0.3));
    }

    #[test]
    fn quoted_header_and_unknown_images() {
        let got = imp(&fixture("quoted_missing.csv")).unwrap();
        let ds = got.dataset;
        assert_eq!(ds.images.len(), 1);
        assert_eq!(ds.images[0].key, "sub/img2.png");
        assert_box(ds.images[0].labels[0].bbox, (0.05, 0.1, 0.15, 0.2));
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let unplaced: Vec<(&str, usize)> =
            got.unplaced.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        assert_eq!(
            unplaced,
            [
                ("m1.jpg", 2),
                ("m2.jpg", 1),
                ("m3.jpg", 1),
                ("m4.jpg", 1),
                ("m5.jpg", 1),
                ("m6.jpg", 1),
                ("m7.jpg", 1)
            ],
            "every row of an unknown image is counted"
        );
    }

    /// VoTT's `encodeFileURI(path, true)` (src/common/utils.ts) names `my rocket #1?.jpg`
    /// `my%20rocket%20%231%3F.jpg`; `CsvExportProvider.export` (src/providers/export/csv.ts)
    /// writes that name into the `image` column through json2csv, quoted.
    #[test]
    fn decodes_vott_url_encoded_names() {
        let ix = index(&[("my rocket #1?.jpg", 100, 50), ("100%.jpg", 100, 50)]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vott.csv");
        std::fs::write(
            &p,
            "\"image\",\"xmin\",\"ymin\",\"xmax\",\"ymax\",\"label\"\n\
             \"my%20rocket%20%231%3F.jpg\",10,5,20,10,\"car\"\n\
             \"100%25.jpg\",0,0,50,25,\"car\"\n\
             \"100%.jpg\",0,0,50,25,\"car\"",
        )
        .unwrap();
        let ctx = ImportCtx {
            task: Task::Detect,
            images: &ix,
            classes: &[],
            predictions: false,
        };
        let got = import(&p, &ctx).unwrap();
        assert!(got.unplaced.is_empty(), "{:?}", got.unplaced);
        let keys: Vec<(&str, usize)> = got
            .dataset
            .images
            .iter()
            .map(|i| (i.key.as_str(), i.labels.len()))
            .collect();
        assert_eq!(keys, [("my rocket #1?.jpg", 1), ("100%.jpg", 2)]);
    }

    fn import_text(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, text).unwrap();
        match imp(&p) {
            Ok(got) => format!("ok: {}", got.warnings.join(" | ")),
            Err(e) => e.to_string(),
        }
    }

    const HEAD: &str = "image,xmin,ymin,xmax,ymax,label\n";

    #[test]
    fn rejects_bad_input_naming_file_line_and_column() {
        let rows = |r: &str| format!("{HEAD}{r}");
        let cases = [
            (
                "image,xmin,ymin,xmax,label\n".to_string(),
                "line 1: missing column `ymax`; expected the header image,xmin,ymin,xmax,ymax,label",
            ),
            (String::new(), "line 1: missing column `image`"),
            (
                "\"img.jpg\",1,2,3,4,\"car\"\n".into(),
                "line 1: missing column `image`",
            ),
            (
                rows("\"img.jpg\",10,20,30,40,car\n\"img.jpg\",1,2\n"),
                "line 3: 3 fields, but the header has 6",
            ),
            (
                rows("\"img.jpg\",10,20,30,40\n"),
                "line 2: 5 fields, but the header has 6",
            ),
            (
                rows("\"img.jpg\",ten,20,30,40,\"car\"\n"),
                "line 2: column `xmin` `ten` is not a number",
            ),
            (
                rows("\"img.jpg\",10,20,30,,\"car\"\n"),
                "line 2: column `ymax` `` is not a number",
            ),
            (
                rows("\"img.jpg\",10,20,30,40,\"car\"\n\"img.jpg\",10,20,NaN,40,\"car\"\n"),
                "line 3: column `xmax` `NaN` is not a number",
            ),
            (
                rows("\"img.jpg\",10,20,10,40,\"car\"\n"),
                "line 2: box has zero area",
            ),
            (
                rows("\"img.jpg\",200,20,300,40,\"car\"\n"),
                "line 2: box has zero area",
            ),
            (
                rows("\"img.jpg\",10,20,30,40,\"\"\n"),
                "line 2: column `label` is empty",
            ),
            (
                rows("\"\",10,20,30,40,\"car\"\n"),
                "line 2: column `image` is empty",
            ),
            // Rows of unknown images are still checked: malformed is an error, not a skip.
            (
                rows("\"nope.jpg\",a,20,30,40,\"car\"\n"),
                "line 2: column `xmin` `a` is not a number",
            ),
        ];
        for (text, want) in cases {
            let e = import_text(&text);
            assert!(e.contains("in.csv: "), "{text:?}: {e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn rejects_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(
            &p,
            b"image,xmin,ymin,xmax,ymax,label\n\"img.jpg\",1,2,3,4,\"c\xff\"\n",
        )
        .unwrap();
        let e = imp(&p).unwrap_err().to_string();
        assert!(e.contains("in.csv: line 2: not valid UTF-8 text"), "{e}");
    }

    #[test]
    fn clips_boxes_outside_with_one_warning() {
        let w = import_text(&format!(
            "{HEAD}\"img.jpg\",-5,20,30,40,\"car\"\r\n\"img.jpg\",10,20,30,40,\"car\"\r\n"
        ));
        assert!(w.starts_with("ok: "), "{w}");
        assert_eq!(w.matches("clipped").count(), 1, "{w}");
        assert!(
            w.contains("in.csv: line 2: box reaches outside the image"),
            "{w}"
        );
    }

    #[test]
    fn accepts_bom_spaces_and_column_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(
            &p,
            "\u{feff}label, image ,xmax,ymax,xmin,ymin\n car , img.jpg ,30,40,10,20\n",
        )
        .unwrap();
        let ds = imp(&p).unwrap().dataset;
        assert_eq!(ds.images[0].key, "img.jpg");
        assert_eq!(ds.images[0].labels[0].class, "car");
        assert_box(ds.images[0].labels[0].bbox, (0.1, 0.4, 0.3, 0.8));
    }

    #[test]
    fn refuses_other_tasks_and_missing_files() {
        let ix = project();
        let ctx = ImportCtx {
            task: Task::Multilabel,
            images: &ix,
            classes: &[],
            predictions: false,
        };
        let e = import(&fixture("export.csv"), &ctx).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
        let e = imp(&fixture("no_such.csv")).unwrap_err();
        assert!(matches!(e, FormatError::Io { .. }), "{e}");
        assert!(e.to_string().contains("no_such.csv"), "{e}");
    }
}

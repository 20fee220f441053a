//! Label formats: one module per format, each with `import` and `export` (VoTT is import-only).
//!
//! Importers read a file or folder into a [`Dataset`] whose image names are *as written in the file*
//! and whose sizes are the ones the file states (or, when the file states none, the project's);
//! the project layer resolves names to project images, checks classes and writes the store in one
//! transaction. Exporters get a [`Dataset`] keyed by project key with displayed sizes.
//!
//! Adding a format: one module here and one line in each `match` below.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::model::{BBox, BoxIssue, Dataset, Task};
use crate::sanitize::{for_terminal, show_path};

pub mod ald_csv;
pub mod azureml_jsonl;
pub mod coco;
pub mod modelarts_txt;
pub mod voc;
pub mod vott_csv;
pub mod yolo;

#[cfg(test)]
pub(crate) mod testutil;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatKind {
    /// COCO JSON (`instances` layout; the results list for predictions).
    Coco,
    /// Pascal VOC: one `.xml` per image, same base name.
    Voc,
    /// YOLO: one `.txt` per image plus `classes.txt`.
    Yolo,
    /// active-learning-detect CSV (`tagged`, `tagging`, `totag`).
    AldCsv,
    /// Azure ML JSONL (AutoML for Images) with an `MLTable` file.
    AzuremlJsonl,
    /// ModelArts classification: same-name `.txt`, one label per line.
    ModelartsTxt,
    /// VoTT CSV export (import only).
    VottCsv,
}

impl FormatKind {
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Coco => "coco",
            FormatKind::Voc => "voc",
            FormatKind::Yolo => "yolo",
            FormatKind::AldCsv => "ald-csv",
            FormatKind::AzuremlJsonl => "azureml-jsonl",
            FormatKind::ModelartsTxt => "modelarts-txt",
            FormatKind::VottCsv => "vott-csv",
        }
    }

    pub fn import(self, path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
        match self {
            FormatKind::Coco => coco::import(path, ctx),
            FormatKind::Voc => voc::import(path, ctx),
            FormatKind::Yolo => yolo::import(path, ctx),
            FormatKind::AldCsv => ald_csv::import(path, ctx),
            FormatKind::AzuremlJsonl => azureml_jsonl::import(path, ctx),
            FormatKind::ModelartsTxt => modelarts_txt::import(path, ctx),
            FormatKind::VottCsv => vott_csv::import(path, ctx),
        }
    }

    /// Writes `ds` to `ctx.out`; returns the files written.
    pub fn export(self, ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
        match self {
            FormatKind::Coco => coco::export(ds, ctx),
            FormatKind::Voc => voc::export(ds, ctx),
            FormatKind::Yolo => yolo::export(ds, ctx),
            FormatKind::AldCsv => ald_csv::export(ds, ctx),
            FormatKind::AzuremlJsonl => azureml_jsonl::export(ds, ctx),
            FormatKind::ModelartsTxt => modelarts_txt::export(ds, ctx),
            FormatKind::VottCsv => Err(FormatError::Unsupported(
                "vott-csv can only be imported; export to coco, voc, yolo, ald-csv or azureml-jsonl"
                    .into(),
            )),
        }
    }
}

/// A project image an importer may look up (for formats that carry no size, e.g. VoTT pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownImage {
    pub key: String,
    /// Displayed size (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation 1–8.
    pub orientation: u8,
}

/// The project's images, looked up by the names other tools write: the full key, a path that ends
/// with the key (or that the key ends with), the file name, or the file stem.
#[derive(Debug, Default)]
pub struct ImageIndex {
    images: Vec<KnownImage>,
    by_key: std::collections::HashMap<String, usize>,
    /// Key without its extension (`a/b` for `a/b.jpg`): how per-image label files name images.
    by_key_stem: std::collections::HashMap<String, Vec<usize>>,
    by_name: std::collections::HashMap<String, Vec<usize>>,
    by_stem: std::collections::HashMap<String, Vec<usize>>,
}

impl ImageIndex {
    pub fn new(images: Vec<KnownImage>) -> Self {
        let mut ix = ImageIndex::default();
        for (i, im) in images.iter().enumerate() {
            ix.by_key.insert(im.key.clone(), i);
            ix.by_key_stem
                .entry(key_without_ext(&im.key).to_string())
                .or_default()
                .push(i);
            let name = file_name(&im.key);
            ix.by_name.entry(name.to_string()).or_default().push(i);
            ix.by_stem
                .entry(stem(name).to_string())
                .or_default()
                .push(i);
        }
        ix.images = images;
        ix
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Finds the project image another tool calls `name`: a key, a longer path or URL ending in a
    /// key, a key without its extension (what same-name label files give: `a/b` for `a/b.jpg`,
    /// `img.v2` for `img.v2.png`), a file name, or a file stem. Ambiguous names resolve to nothing.
    pub fn resolve(&self, name: &str) -> Option<&KnownImage> {
        let name = name.replace('\\', "/");
        let name = name.trim_start_matches("./");
        let unique = |v: Option<&Vec<usize>>| match v.map(Vec::as_slice) {
            Some([i]) => Some(&self.images[*i]),
            _ => None,
        };
        // The whole name, then ever shorter component-aligned tails of it (absolute paths, URLs,
        // a labels folder in front), as a key and as a key without extension.
        let mut tail = name;
        loop {
            if let Some(&i) = self.by_key.get(tail) {
                return Some(&self.images[i]);
            }
            if let Some(im) = unique(self.by_key_stem.get(tail)) {
                return Some(im);
            }
            match tail.find('/') {
                Some(pos) => tail = &tail[pos + 1..],
                None => break,
            }
        }
        let fname = file_name(name);
        unique(self.by_name.get(fname)).or_else(|| unique(self.by_stem.get(stem(fname))))
    }
}

/// `key` without the extension of its last component.
fn key_without_ext(key: &str) -> &str {
    let start = key.rfind('/').map_or(0, |p| p + 1);
    match key[start..].rfind('.') {
        Some(p) if p > 0 => &key[..start + p],
        _ => key,
    }
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// File name without its last extension.
pub fn stem(name: &str) -> &str {
    let name = file_name(name);
    match name.rfind('.') {
        Some(p) if p > 0 => &name[..p],
        _ => name,
    }
}

/// What an importer needs besides the file.
pub struct ImportCtx<'a> {
    pub task: Task,
    /// The project's images.
    pub images: &'a ImageIndex,
    /// The project's classes, in order (YOLO files without `classes.txt` use these indices).
    pub classes: &'a [String],
    /// True when importing as predictions: formats that carry scores keep them.
    pub predictions: bool,
}

/// An import's result: the labels and the non-fatal things the user should hear about.
#[derive(Debug, Default)]
pub struct Imported {
    pub dataset: Dataset,
    pub warnings: Vec<String>,
    /// Rows the importer could not place, as (image name as written, rows): images the project
    /// does not have, for formats that need the project's image to read a row. The project layer
    /// refuses the import over them unless told to skip.
    pub unplaced: Vec<(String, usize)>,
}

/// What an exporter needs besides the labels.
pub struct ExportCtx<'a> {
    pub task: Task,
    /// Output file (single-file formats) or folder (per-image formats).
    pub out: &'a Path,
    /// Exporting predictions (with scores) rather than reviewed labels.
    pub predictions: bool,
    /// Azure ML JSONL: prefix put before each key to make `image_url`
    /// (e.g. `azureml://datastores/workspaceblobstore/paths/images/`).
    pub url_prefix: &'a str,
}

/// A rejected file: always one line naming the file, the place in it and the problem.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{file}: {place}: {msg}")]
    Invalid {
        file: String,
        place: String,
        msg: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl FormatError {
    /// `place` is a line (`line 3`), a JSON path (`$.annotations[2].bbox`) or an element path.
    pub fn invalid(file: &Path, place: impl fmt::Display, msg: impl fmt::Display) -> Self {
        FormatError::Invalid {
            file: show_path(file),
            place: place.to_string(),
            msg: msg.to_string(),
        }
    }
    pub fn io(file: &Path, source: std::io::Error) -> Self {
        FormatError::Io {
            file: show_path(file),
            source,
        }
    }
}

/// Reads a whole file, mapping the error to one that names it.
pub fn read_to_string(path: &Path) -> Result<String, FormatError> {
    let bytes = std::fs::read(path).map_err(|e| FormatError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        FormatError::invalid(
            path,
            format!("line {line}"),
            "not valid UTF-8 text (save the file as UTF-8)",
        )
    })
}

/// The longest line a line-based label file (CSV, JSONL, YOLO, ModelArts) may have: one image's
/// labels. A longer one is not a label file, and parsing it would take minutes and gigabytes.
pub const MAX_LINE: usize = 16 << 20;

/// [`read_to_string`] for line-based formats: refuses a line longer than [`MAX_LINE`].
pub fn read_lines(path: &Path) -> Result<String, FormatError> {
    let text = read_to_string(path)?;
    for (n, line) in text.split('\n').enumerate() {
        if line.len() > MAX_LINE {
            return Err(FormatError::invalid(
                path,
                format!("line {}", n + 1),
                format!(
                    "{} MB long, over the {} MB a label line may have: this is not a label file of this format",
                    line.len() >> 20,
                    MAX_LINE >> 20
                ),
            ));
        }
    }
    Ok(text)
}

/// Writes a file, creating its parent folders. Text passes the redaction layer first: an export
/// never carries a credential (a SAS in an image URL, a key in a class name).
pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), FormatError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| FormatError::io(parent, e))?;
    }
    let redacted = std::str::from_utf8(contents)
        .ok()
        .map(crate::remote::auth::redact)
        .filter(|r| r.as_bytes() != contents);
    crate::fsutil::write_atomic(path, redacted.as_deref().map_or(contents, str::as_bytes))
        .map_err(|e| FormatError::io(path, e))
}

/// Path of the per-image file for `key` under `root` with its extension replaced by `ext`,
/// refusing keys that would escape `root`.
pub fn sidecar_path(root: &Path, key: &str, ext: &str) -> Result<PathBuf, FormatError> {
    let p = crate::sanitize::safe_join(root, key)
        .map_err(|e| FormatError::invalid(root, for_terminal(key), e))?;
    Ok(p.with_extension(ext))
}

/// Makes a box from pixel corners, clipping (with a warning) to the image and rejecting boxes
/// with no area or non-finite numbers.
#[allow(clippy::too_many_arguments)]
pub fn pixel_box(
    (x0, y0, x1, y1): (f64, f64, f64, f64),
    width: u32,
    height: u32,
    file: &Path,
    place: &str,
    warnings: &mut Vec<String>,
) -> Result<BBox, FormatError> {
    if width == 0 || height == 0 {
        return Err(FormatError::invalid(
            file,
            place,
            "image width and height must be positive to place a box",
        ));
    }
    finish_box(
        BBox::from_pixels(x0, y0, x1, y1, width, height),
        file,
        place,
        warnings,
    )
}

/// Makes a box from normalised corners, like [`pixel_box`].
pub fn norm_box(
    (x0, y0, x1, y1): (f64, f64, f64, f64),
    file: &Path,
    place: &str,
    warnings: &mut Vec<String>,
) -> Result<BBox, FormatError> {
    finish_box(BBox::clipped(x0, y0, x1, y1), file, place, warnings)
}

fn finish_box(
    r: Result<(BBox, bool), BoxIssue>,
    file: &Path,
    place: &str,
    warnings: &mut Vec<String>,
) -> Result<BBox, FormatError> {
    match r {
        Ok((b, clipped)) => {
            if clipped {
                warnings.push(format!(
                    "{}: {place}: box reaches outside the image; clipped to its edges",
                    show_path(file)
                ));
            }
            Ok(b)
        }
        Err(issue) => Err(FormatError::invalid(file, place, issue)),
    }
}

/// Rounds to 6 decimals, so that export → import → export gives the same bytes.
pub fn round6(v: f64) -> f64 {
    let r = (v * 1e6).round() / 1e6;
    if r == 0.0 { 0.0 } else { r }
}

/// A number for text formats: at most 6 decimals, no trailing zeros (`0.25`, `12`, `0.333333`).
pub fn fmt_num(v: f64) -> String {
    let s = format!("{:.6}", round6(v));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Parses a number field of a text format, naming the place on failure.
pub fn parse_num(s: &str, file: &Path, place: &str, what: &str) -> Result<f64, FormatError> {
    let t = s.trim();
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            FormatError::invalid(
                file,
                place,
                format!("{what} `{}` is not a number", for_terminal(t)),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix() -> ImageIndex {
        testutil::index(&[
            ("a/st1026.png", 10, 10),
            ("b/st1026.jpg", 10, 10),
            ("c/x.jpg", 10, 10),
            ("y.png", 10, 10),
        ])
    }

    #[test]
    fn resolves_names() {
        let ix = ix();
        assert_eq!(ix.resolve("c/x.jpg").unwrap().key, "c/x.jpg");
        assert_eq!(ix.resolve("/data/imgs/c/x.jpg").unwrap().key, "c/x.jpg");
        assert_eq!(ix.resolve("https://acct/cont/y.png").unwrap().key, "y.png");
        assert_eq!(ix.resolve("x.jpg").unwrap().key, "c/x.jpg");
        assert_eq!(ix.resolve("x").unwrap().key, "c/x.jpg");
        assert_eq!(ix.resolve("st1026.png").unwrap().key, "a/st1026.png");
        assert!(ix.resolve("st1026").is_none(), "ambiguous stem");
        assert!(ix.resolve("zzz.jpg").is_none());
    }

    #[test]
    fn resolves_label_file_paths_without_extension() {
        let ix = ImageIndex::new(
            [
                "a/b.jpg",
                "z/b.jpg",
                "c.v2.jpeg",
                "empty.png",
                "q/q.png",
                "r/q.jpg",
            ]
            .iter()
            .map(|k| testutil::known(k, 1, 1))
            .collect(),
        );
        let key = |n: &str| ix.resolve(n).map(|k| k.key.clone());
        assert_eq!(key("a/b").as_deref(), Some("a/b.jpg"));
        assert_eq!(key("z/b").as_deref(), Some("z/b.jpg"));
        assert_eq!(key("b"), None, "a bare stem in two folders stays ambiguous");
        assert_eq!(
            key("c.v2").as_deref(),
            Some("c.v2.jpeg"),
            "dotted names keep their dot"
        );
        assert_eq!(key("labels/a/b").as_deref(), Some("a/b.jpg"));
        assert_eq!(key("empty").as_deref(), Some("empty.png"));
        assert_eq!(
            key("r/q").as_deref(),
            Some("r/q.jpg"),
            "not the q in another folder"
        );
        assert_eq!(key("b/nothing"), None);
    }

    #[test]
    fn exports_pass_the_redaction_layer() {
        crate::remote::auth::register_secret("export-planted-secret-42");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/out.json");
        write_file(
            &p,
            b"{\"url\": \"https://a/b.jpg?sv=1&sig=c2VjcmV0\", \"k\": \"export-planted-secret-42\"}",
        )
        .unwrap();
        let got = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            got,
            "{\"url\": \"https://a/b.jpg?sv=1&sig=REDACTED\", \"k\": \"REDACTED\"}"
        );
        // Bytes that are not text are written as they are.
        write_file(&p, &[0xff, 0x00, 0x01]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), [0xff, 0x00, 0x01]);
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(12.0), "12");
        assert_eq!(fmt_num(1.0 / 3.0), "0.333333");
        assert_eq!(fmt_num(-0.0000001), "0");
        assert_eq!(fmt_num(0.1 * 3.0), "0.3");
    }
}

//! YOLO detection labels: `classes.txt` (one class name per line; the line number from 0 is the
//! class index) and one `.txt` per image, mirroring the image key (`a/b.jpg` → `a/b.txt`), with one
//! `class_index xc yc w h` line per box, normalised to [0, 1]. Predictions add a sixth column, the
//! score (as Ultralytics writes with `save_conf`). An empty `.txt` is an image verified to hold no
//! object.
//!
//! The per-image file helpers here (`txt_files`, `read_sidecars`, `ClassNumbers`, `SidecarPaths`,
//! `write_sidecars`) are shared with the other one-`.txt`-per-image format, ModelArts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{
    ExportCtx, FormatError, ImportCtx, Imported, fmt_num, norm_box, parse_num, read_lines, round6,
    sidecar_path, write_file,
};
use crate::model::{Dataset, ImageLabels, Label};
use crate::sanitize::{for_terminal, show_path};

const CLASSES_FILE: &str = "classes.txt";

/// Reads a YOLO folder (every `*.txt` below it except the root `classes.txt`) or one `.txt`.
pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    if !ctx.task.is_detect() {
        return Err(FormatError::Unsupported(format!(
            "yolo carries detection boxes only, but this project's task is {}; \
             use modelarts-txt or azureml-jsonl for classification",
            ctx.task
        )));
    }
    let (root, files) = txt_files(path)?;
    let classes_path = root.join(CLASSES_FILE);
    if !path.is_dir() && path == classes_path {
        return Err(FormatError::invalid(
            path,
            "file",
            "classes.txt holds the class names, not labels; pass the labels folder or an image's .txt",
        ));
    }
    let file_classes = if classes_path.is_file() {
        Some(read_classes(&classes_path)?)
    } else {
        None
    };
    let classes = ClassList {
        names: file_classes.as_deref().unwrap_or(ctx.classes),
        source: match file_classes {
            Some(_) => show_path(&classes_path),
            None => "the project (there is no classes.txt beside the labels)".into(),
        },
    };

    let mut warnings = Vec::new();
    let label_files = files.iter().filter(|(file, _)| *file != classes_path);
    let images = read_sidecars(path, label_files, ctx, &mut warnings, |file, warnings| {
        parse_labels(file, &classes, ctx.predictions, warnings)
    })?;
    Ok(Imported {
        dataset: Dataset {
            classes: classes.names.to_vec(),
            images,
        },
        warnings,
        ..Imported::default()
    })
}

/// Writes `classes.txt` and one `.txt` per image into the folder `ctx.out`.
pub fn export(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    if !ctx.task.is_detect() {
        return Err(FormatError::Unsupported(format!(
            "yolo carries detection boxes only, but this project's task is {}; \
             export to modelarts-txt or azureml-jsonl instead",
            ctx.task
        )));
    }
    let numbers = ClassNumbers::new(&ds.classes);
    let classes_path = ctx.out.join(CLASSES_FILE);
    let mut paths = SidecarPaths::default();
    paths.reserve(&classes_path, "the class list");

    // Everything is checked before the first file is written, so a bad key leaves no half export.
    let mut files = vec![(classes_path, lines(&ds.classes))];
    for im in &ds.images {
        let path = sidecar_path(ctx.out, &im.key, "txt")?;
        paths.claim(&path, &im.key)?;
        let mut text = String::new();
        for (n, l) in im.labels.iter().enumerate() {
            let place = format!("image `{}` label {}", for_terminal(&im.key), n + 1);
            let idx = numbers.of(&l.class, &path, &place)?;
            let b = l.bbox.ok_or_else(|| {
                FormatError::invalid(&path, &place, "label has no box; yolo needs one per label")
            })?;
            let (xc, w) = centre_size(b.x0, b.x1);
            let (yc, h) = centre_size(b.y0, b.y1);
            let _ = write!(
                text,
                "{idx} {} {} {} {}",
                fmt_num(xc),
                fmt_num(yc),
                fmt_num(w),
                fmt_num(h)
            );
            if let (true, Some(s)) = (ctx.predictions, l.score) {
                let _ = write!(text, " {}", fmt_num(s));
            }
            text.push('\n');
        }
        files.push((path, text));
    }
    write_sidecars(files)
}

/// Centre and size of one axis as 6-decimal numbers, chosen so that the written box still lies
/// inside [0, 1] and keeps some area: otherwise re-importing would clip or reject it and
/// export → import → export would drift. Moves the edges by at most 1e-6.
fn centre_size(lo: f64, hi: f64) -> (f64, f64) {
    let s = round6(hi - lo).clamp(1e-6, 1.0);
    // Lowest and highest 6-decimal centres keeping the box inside; the 1e-6 (in units of 1e-6)
    // absorbs float noise so that an exact bound is not pushed one step further.
    let min_c = ((s / 2.0) * 1e6 - 1e-6).ceil() / 1e6;
    let max_c = ((1.0 - s / 2.0) * 1e6 + 1e-6).floor() / 1e6;
    let c = round6((lo + hi) / 2.0).min(max_c).max(min_c);
    (round6(c), s)
}

fn lines(items: &[String]) -> String {
    items.iter().map(|s| format!("{s}\n")).collect()
}

/// The names class indices refer to, and where they came from (for error messages).
struct ClassList<'a> {
    names: &'a [String],
    source: String,
}

fn read_classes(path: &Path) -> Result<Vec<String>, FormatError> {
    let text = read_lines(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while names.last().is_some_and(String::is_empty) {
        names.pop();
    }
    // A blank line in the middle would silently shift every later index.
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(FormatError::invalid(
            path,
            format!("line {}", i + 1),
            "empty class name; classes.txt holds one name per line, line 1 being class 0",
        ));
    }
    Ok(names)
}

fn parse_labels(
    file: &Path,
    classes: &ClassList,
    predictions: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Label>, FormatError> {
    let text = read_lines(file)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let place = format!("line {}", i + 1);
        let err = |msg: String| FormatError::invalid(file, &place, msg);
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.len() {
            0 => continue,
            5 | 6 => {}
            n => {
                return Err(err(format!(
                    "expected 5 columns `class xc yc w h` (or 6, with a score), found {n}"
                )));
            }
        }
        let idx: usize = cols[0].parse().map_err(|_| {
            err(format!(
                "class index `{}` is not a whole number ≥ 0",
                for_terminal(cols[0])
            ))
        })?;
        let class = classes.names.get(idx).ok_or_else(|| {
            let n = classes.names.len();
            let has = match n {
                0 => "no classes".to_string(),
                1 => "1 class (index 0)".to_string(),
                _ => format!("{n} classes (indices 0 to {})", n - 1),
            };
            err(format!(
                "class index {idx} is out of range: {} has {has}",
                classes.source
            ))
        })?;
        let num = |col: usize, what: &str| parse_num(cols[col], file, &place, what);
        let (xc, yc, w, h) = (num(1, "xc")?, num(2, "yc")?, num(3, "w")?, num(4, "h")?);
        for (v, what, text) in [(w, "w", cols[3]), (h, "h", cols[4])] {
            if v < 0.0 {
                return Err(err(format!(
                    "{what} `{text}` is negative; expected a size between 0 and 1"
                )));
            }
        }
        let bbox = norm_box(
            (xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0),
            file,
            &place,
            warnings,
        )?;
        let score = match cols.get(5) {
            Some(_) => {
                let s = num(5, "score")?;
                if !(0.0..=1.0).contains(&s) {
                    return Err(err(format!(
                        "score `{}` is outside 0 to 1",
                        for_terminal(cols[5])
                    )));
                }
                Some(s)
            }
            None => None,
        };
        labels.push(Label {
            class: class.clone(),
            bbox: Some(bbox),
            score: score.filter(|_| predictions),
        });
    }
    Ok(labels)
}

// ---- helpers shared by the one-`.txt`-per-image formats (YOLO, ModelArts) ----

/// The label files an import reads: for a folder, every `*.txt` below it (sorted, hidden files and
/// folders skipped, symlinked folders not followed) with its `/`-separated path relative to the
/// folder; for a file, that file and its name. Also returns the folder the files are relative to.
pub(super) fn txt_files(path: &Path) -> Result<(PathBuf, Vec<(PathBuf, String)>), FormatError> {
    if path.is_dir() {
        let mut out = Vec::new();
        walk(path, "", &mut out)?;
        Ok((path.to_path_buf(), out))
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let root = path.parent().unwrap_or(Path::new("")).to_path_buf();
        Ok((root, vec![(path.to_path_buf(), name)]))
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<(PathBuf, String)>) -> Result<(), FormatError> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|rd| rd.collect::<Result<Vec<_>, _>>())
        .map_err(|e| FormatError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        // Hidden entries: `.git`, macOS `._x.txt` resource forks and the like.
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let rel_name = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let kind = e.file_type().map_err(|err| FormatError::io(&path, err))?;
        if kind.is_dir() {
            walk(&path, &rel_name, out)?;
        } else if has_txt_ext(&name) && path.is_file() {
            out.push((path, rel_name));
        }
    }
    Ok(())
}

fn has_txt_ext(name: &str) -> bool {
    name.len() > 4 && name.is_char_boundary(name.len() - 4) && {
        let (_, ext) = name.split_at(name.len() - 4);
        ext.eq_ignore_ascii_case(".txt")
    }
}

/// The images of one-`.txt`-per-image files (as [`txt_files`] lists them), each keyed by the
/// project's image of the same name when there is one, with the labels `read` finds in its file.
/// Two files describing one image are refused; no file at all is a warning.
pub(super) fn read_sidecars<'a>(
    path: &Path,
    files: impl IntoIterator<Item = &'a (PathBuf, String)>,
    ctx: &ImportCtx,
    warnings: &mut Vec<String>,
    mut read: impl FnMut(&Path, &mut Vec<String>) -> Result<Vec<Label>, FormatError>,
) -> Result<Vec<ImageLabels>, FormatError> {
    let mut images = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for (file, rel) in files {
        let name = strip_txt(rel);
        let known = ctx.images.resolve(name);
        let key = known.map_or_else(|| name.to_string(), |k| k.key.clone());
        if let Some(prev) = seen.insert(key.clone(), file.clone()) {
            return Err(same_image(file, &prev, &key));
        }
        let labels = read(file, warnings)?;
        images.push(ImageLabels {
            key,
            width: known.map_or(0, |k| k.width),
            height: known.map_or(0, |k| k.height),
            labels,
        });
    }
    if images.is_empty() {
        warnings.push(format!("{}: no .txt label files found", show_path(path)));
    }
    Ok(images)
}

/// Each class's number (its place in the project's list), as the per-image files write it.
pub(super) struct ClassNumbers<'a>(HashMap<&'a str, usize>);

impl<'a> ClassNumbers<'a> {
    pub(super) fn new(classes: &'a [String]) -> Self {
        ClassNumbers(
            classes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i))
                .collect(),
        )
    }

    /// The number of `class`, or the error for the label at `place` of `file`.
    pub(super) fn of(&self, class: &str, file: &Path, place: &str) -> Result<usize, FormatError> {
        self.0.get(class).copied().ok_or_else(|| {
            FormatError::invalid(
                file,
                place,
                format!("class `{}` is not in the class list", for_terminal(class)),
            )
        })
    }
}

/// Writes the per-image files, all checked beforehand; returns their paths.
pub(super) fn write_sidecars(files: Vec<(PathBuf, String)>) -> Result<Vec<PathBuf>, FormatError> {
    for (path, text) in &files {
        write_file(path, text.as_bytes())?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// `a/b.txt` → `a/b`.
fn strip_txt(rel: &str) -> &str {
    if has_txt_ext(rel) {
        &rel[..rel.len() - 4]
    } else {
        rel
    }
}

/// Two label files that resolved to the same project image.
fn same_image(file: &Path, prev: &Path, key: &str) -> FormatError {
    FormatError::invalid(
        file,
        "file",
        format!(
            "describes the same image `{}` as {}; keep one of them",
            for_terminal(key),
            show_path(prev)
        ),
    )
}

/// Output paths already taken by an export, so that two keys mapping to one file (`a.jpg` and
/// `a.png` → `a.txt`) are refused instead of one silently overwriting the other.
#[derive(Default)]
pub(super) struct SidecarPaths {
    taken: HashMap<PathBuf, String>,
}

impl SidecarPaths {
    pub(super) fn reserve(&mut self, path: &Path, what: &str) {
        self.taken.insert(path.to_path_buf(), what.to_string());
    }

    pub(super) fn claim(&mut self, path: &Path, key: &str) -> Result<(), FormatError> {
        if let Some(prev) = self.taken.get(path) {
            return Err(FormatError::invalid(
                path,
                format!("image `{}`", for_terminal(key)),
                format!(
                    "this file is already written for {}; rename one of the images",
                    for_terminal(prev)
                ),
            ));
        }
        self.taken
            .insert(path.to_path_buf(), format!("image `{key}`"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageIndex;
    use crate::formats::testutil::{self, assert_box, det, index, read, strings};
    use crate::model::Task;

    fn fixtures() -> PathBuf {
        testutil::fixture("yolo", "")
    }

    fn project() -> ImageIndex {
        index(&[
            ("a/b.jpg", 640, 480),
            ("z/b.jpg", 100, 100),
            ("empty.png", 50, 40),
            ("c.v2.jpeg", 200, 100),
        ])
    }

    fn imp(
        path: &Path,
        ix: &ImageIndex,
        classes: &[String],
        predictions: bool,
    ) -> Result<Imported, FormatError> {
        import(
            path,
            &ImportCtx {
                task: Task::Detect,
                images: ix,
                classes,
                predictions,
            },
        )
    }

    fn exp(ds: &Dataset, out: &Path, predictions: bool) -> Result<Vec<PathBuf>, FormatError> {
        export(
            ds,
            &ExportCtx {
                task: Task::Detect,
                out,
                predictions,
                url_prefix: "",
            },
        )
    }

    #[test]
    fn imports_fixture_folder() {
        let ix = project();
        let got = imp(&fixtures().join("labels"), &ix, &[], false).unwrap();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let ds = got.dataset;
        assert_eq!(ds.classes, strings(&["car", "person", "dog"]));
        let keys: Vec<&str> = ds.images.iter().map(|i| i.key.as_str()).collect();
        // `a/b` is ambiguous by stem (a/b.jpg, z/b.jpg) but resolved by its path; `c.v2` by its
        // dotted stem; `unknown/x` is not in the project and keeps its relative name.
        assert_eq!(keys, ["a/b.jpg", "c.v2.jpeg", "empty.png", "unknown/x"]);

        let ab = &ds.images[0];
        assert_eq!((ab.width, ab.height), (640, 480));
        assert_eq!(ab.labels.len(), 2);
        assert_eq!(ab.labels[0].class, "car");
        assert_box(ab.labels[0].bbox, (0.4, 0.3, 0.6, 0.7));
        assert_eq!(ab.labels[1].class, "person");
        assert_box(ab.labels[1].bbox, (0.2, 0.7, 0.3, 0.8));
        assert!(ab.labels.iter().all(|l| l.score.is_none()));

        let c = &ds.images[1];
        assert_eq!((c.width, c.height), (200, 100));
        assert_eq!(c.labels.len(), 1);
        assert_eq!(c.labels[0].class, "dog");
        assert_box(c.labels[0].bbox, (0.0, 0.0, 1.0, 1.0));

        let e = &ds.images[2];
        assert_eq!((e.width, e.height), (50, 40));
        assert!(e.labels.is_empty(), "empty txt = verified empty");

        let u = &ds.images[3];
        assert_eq!((u.width, u.height), (0, 0));
        assert_eq!(u.labels.len(), 1);
        assert_box(u.labels[0].bbox, (0.125, 0.25, 0.375, 0.75));
    }

    #[test]
    fn imports_single_file_with_classes_beside_it() {
        let ix = project();
        let got = imp(&fixtures().join("labels/a/b.txt"), &ix, &[], false);
        // No classes.txt beside a/b.txt and no project classes: index 0 is out of range.
        let e = got.unwrap_err().to_string();
        assert!(
            e.contains("b.txt: line 1: class index 0 is out of range"),
            "{e}"
        );
        assert!(
            e.contains("there is no classes.txt beside the labels) has no classes"),
            "{e}"
        );

        let classes = strings(&["car", "person"]);
        let ds = imp(&fixtures().join("labels/a/b.txt"), &ix, &classes, false)
            .unwrap()
            .dataset;
        assert_eq!(ds.classes, classes);
        assert_eq!(ds.images.len(), 1);
        // A lone file is named by its stem; `b` is ambiguous in this project, so it stays `b`.
        assert_eq!(ds.images[0].key, "b");
        assert_eq!(ds.images[0].labels[1].class, "person");

        let ds = imp(&fixtures().join("labels/empty.txt"), &ix, &[], false)
            .unwrap()
            .dataset;
        assert_eq!(
            ds.classes,
            strings(&["car", "person", "dog"]),
            "root classes.txt"
        );
        assert_eq!(ds.images[0].key, "empty.png");
        assert!(ds.images[0].labels.is_empty());
    }

    #[test]
    fn imports_predictions_with_scores() {
        let ix = index(&[("img1.jpg", 100, 100), ("img2.jpg", 100, 100)]);
        let dir = fixtures().join("predictions");
        let ds = imp(&dir, &ix, &[], true).unwrap().dataset;
        assert_eq!(ds.images.len(), 2);
        let l = &ds.images[0].labels;
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].class.as_str(), l[0].score), ("cat", Some(0.91)));
        assert_box(l[0].bbox, (0.1, 0.1, 0.3, 0.5));
        assert_eq!(
            (l[1].class.as_str(), l[1].score),
            ("dog", None),
            "5 columns: no score"
        );
        assert_box(l[1].bbox, (0.5, 0.5, 0.7, 0.7));
        assert!(ds.images[1].labels.is_empty());

        // The same files imported as labels drop the score.
        let ds = imp(&dir, &ix, &[], false).unwrap().dataset;
        assert!(ds.images[0].labels.iter().all(|l| l.score.is_none()));
    }

    fn sample() -> Dataset {
        Dataset {
            classes: strings(&["car", "person", "dog"]),
            images: vec![
                ImageLabels {
                    key: "a/b.jpg".into(),
                    width: 640,
                    height: 480,
                    labels: vec![
                        det("person", (0.1, 0.2, 0.4, 0.6), Some(0.875)),
                        det("car", (0.0, 0.0, 1.0 / 3.0, 1.0), None),
                    ],
                },
                ImageLabels {
                    key: "empty.png".into(),
                    width: 50,
                    height: 40,
                    labels: vec![],
                },
                ImageLabels {
                    key: "z.jpeg".into(),
                    width: 10,
                    height: 10,
                    labels: vec![det("dog", (0.6666667, 0.123, 1.0, 0.5), Some(0.5))],
                },
            ],
        }
    }

    #[test]
    fn exports_expected_text() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let files = exp(&sample(), &out, false).unwrap();
        assert_eq!(
            files,
            ["classes.txt", "a/b.txt", "empty.txt", "z.txt"].map(|f| out.join(f))
        );
        assert_eq!(read(&out.join("classes.txt")), "car\nperson\ndog\n");
        assert_eq!(
            read(&out.join("a/b.txt")),
            "1 0.25 0.4 0.3 0.4\n0 0.166667 0.5 0.333333 1\n"
        );
        assert_eq!(read(&out.join("empty.txt")), "");
        assert_eq!(
            read(&out.join("z.txt")),
            "2 0.833333 0.3115 0.333333 0.377\n"
        );

        // Predictions carry the score as a 6th column where there is one.
        let out = dir.path().join("pred");
        exp(&sample(), &out, true).unwrap();
        assert_eq!(
            read(&out.join("a/b.txt")),
            "1 0.25 0.4 0.3 0.4 0.875\n0 0.166667 0.5 0.333333 1\n"
        );
        assert_eq!(
            read(&out.join("z.txt")),
            "2 0.833333 0.3115 0.333333 0.377 0.5\n"
        );
    }

    #[test]
    fn edge_boxes_stay_inside_after_rounding() {
        let inside = |(c, s): (f64, f64)| {
            assert!(
                s > 0.0 && c - s / 2.0 >= -1e-12 && c + s / 2.0 <= 1.0 + 1e-12,
                "{c} {s}"
            );
            (c, s)
        };
        // Plain rounding would give c 0.000001, s 0.000003: x0 = -0.0000005, clipped on import.
        assert_eq!(inside(centre_size(0.0, 0.0000026)), (0.000002, 0.000003));
        // Plain rounding would give c 1, s 0.000001: half the box outside.
        assert_eq!(inside(centre_size(0.9999991, 1.0)), (0.999999, 0.000001));
        // Too small to write: grows to the smallest writable size instead of zero area.
        assert_eq!(inside(centre_size(0.5, 0.5000001)), (0.5, 0.000001));
        assert_eq!(inside(centre_size(0.0, 1.0)), (0.5, 1.0));
        assert_eq!(inside(centre_size(0.25, 0.5)), (0.375, 0.25));
        assert_eq!(inside(centre_size(0.0, 1.0 / 3.0)), (0.166667, 0.333333));
    }

    #[test]
    fn round_trip_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let mut ds = sample();
        ds.images[0]
            .labels
            .push(det("dog", (0.0000004, 0.9999991, 0.0100007, 1.0), None));
        ds.images[0]
            .labels
            .push(det("dog", (0.0, 0.0, 0.0000026, 0.3), Some(0.25)));
        let ix = index(&[
            ("a/b.jpg", 640, 480),
            ("empty.png", 50, 40),
            ("z.jpeg", 10, 10),
        ]);
        for predictions in [false, true] {
            let one = dir.path().join(format!("one{predictions}"));
            let two = dir.path().join(format!("two{predictions}"));
            let files1 = exp(&ds, &one, predictions).unwrap();
            let back = imp(&one, &ix, &[], predictions).unwrap();
            assert!(back.warnings.is_empty(), "{:?}", back.warnings);
            assert_eq!(back.dataset.images.len(), ds.images.len());
            for (a, b) in ds.images.iter().zip(&back.dataset.images) {
                assert_eq!(a.key, b.key);
                assert_eq!((a.width, a.height), (b.width, b.height));
                assert_eq!(a.labels.len(), b.labels.len());
                for (la, lb) in a.labels.iter().zip(&b.labels) {
                    assert_eq!(la.class, lb.class);
                    assert_eq!(lb.score, la.score.filter(|_| predictions));
                    let (x, y) = (la.bbox.unwrap(), lb.bbox.unwrap());
                    for (p, q) in [(x.x0, y.x0), (x.y0, y.y0), (x.x1, y.x1), (x.y1, y.y1)] {
                        assert!((p - q).abs() <= 1e-6, "{x:?} vs {y:?}");
                    }
                }
            }
            let files2 = exp(&back.dataset, &two, predictions).unwrap();
            assert_eq!(files1.len(), files2.len());
            for (f1, f2) in files1.iter().zip(&files2) {
                assert_eq!(
                    f1.strip_prefix(&one).unwrap(),
                    f2.strip_prefix(&two).unwrap()
                );
                assert_eq!(read(f1), read(f2), "{}", f1.display());
            }
        }
    }

    /// Writes `classes.txt` (car, person) and `img.txt` with `body`, imports the folder and returns
    /// the error text (or the warnings when it succeeds, prefixed `ok:`).
    fn import_body(body: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("classes.txt"), "car\nperson\n").unwrap();
        std::fs::write(dir.path().join("img.txt"), body).unwrap();
        match imp(dir.path(), &ImageIndex::default(), &[], false) {
            Ok(got) => format!("ok: {}", got.warnings.join(" | ")),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rejects_bad_lines_naming_file_and_line() {
        let cases = [
            (
                "0 0.5 0.5 0.2\n",
                "line 1: expected 5 columns `class xc yc w h` (or 6, with a score), found 4",
            ),
            ("\n0 0.5 0.5 0.2 0.2 0.9 1\n", "line 2: expected 5 columns"),
            (
                "0 0.5 0.5 0.2 0.2\n0 0.1 0.2 0.3 0.1 0.2 0.3 0.4\n",
                "line 2: expected 5 columns",
            ),
            (
                "car 0.5 0.5 0.2 0.2\n",
                "line 1: class index `car` is not a whole number",
            ),
            (
                "-1 0.5 0.5 0.2 0.2\n",
                "line 1: class index `-1` is not a whole number",
            ),
            (
                "1.0 0.5 0.5 0.2 0.2\n",
                "line 1: class index `1.0` is not a whole number",
            ),
            (
                "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n",
                "line 2: class index 2 is out of range: ",
            ),
            ("0 abc 0.5 0.2 0.2\n", "line 1: xc `abc` is not a number"),
            ("0 0.5 0.5 0.2 NaN\n", "line 1: h `NaN` is not a number"),
            ("0 0.5 0.5 0.2 inf\n", "line 1: h `inf` is not a number"),
            ("0 0.5 0.5 0 0.2\n", "line 1: box has zero area"),
            ("0 1.5 0.5 0.2 0.2\n", "line 1: box has zero area"),
            ("0 0.5 0.5 -0.2 0.2\n", "line 1: w `-0.2` is negative"),
            (
                "0 0.5 0.5 0.2 0.2 high\n",
                "line 1: score `high` is not a number",
            ),
            (
                "0 0.5 0.5 0.2 0.2 1.5\n",
                "line 1: score `1.5` is outside 0 to 1",
            ),
        ];
        for (body, want) in cases {
            let e = import_body(body);
            assert!(e.contains("img.txt: "), "{body:?}: {e}");
            assert!(e.contains(want), "{body:?}: {e}");
        }
        let e = import_body("0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n");
        assert!(
            e.contains("classes.txt has 2 classes (indices 0 to 1)"),
            "{e}"
        );
    }

    #[test]
    fn clips_boxes_outside_with_one_warning() {
        let w = import_body("0 0.95 0.5 0.2 0.2\r\n1 0.5 0.5 0.2 0.2\r\n");
        assert!(w.starts_with("ok: "), "{w}");
        assert_eq!(w.matches("clipped").count(), 1, "{w}");
        assert!(
            w.contains("img.txt: line 1: box reaches outside the image"),
            "{w}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("img.txt"), "0 0.95 0.5 0.2 0.2\n").unwrap();
        let classes = strings(&["car"]);
        let ds = imp(
            &dir.path().join("img.txt"),
            &ImageIndex::default(),
            &classes,
            false,
        )
        .unwrap()
        .dataset;
        assert_box(ds.images[0].labels[0].bbox, (0.85, 0.4, 1.0, 0.6));
    }

    #[test]
    fn rejects_bad_classes_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("classes.txt"), "car\n\nperson\n").unwrap();
        std::fs::write(dir.path().join("img.txt"), "0 0.5 0.5 0.2 0.2\n").unwrap();
        let e = imp(dir.path(), &ImageIndex::default(), &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("classes.txt: line 2: empty class name"), "{e}");

        let e = imp(
            &dir.path().join("classes.txt"),
            &ImageIndex::default(),
            &[],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("classes.txt: file: classes.txt holds the class names"),
            "{e}"
        );

        // Trailing blank lines are fine.
        std::fs::write(dir.path().join("classes.txt"), "car\nperson\n\n\n").unwrap();
        let ds = imp(dir.path(), &ImageIndex::default(), &[], false)
            .unwrap()
            .dataset;
        assert_eq!(ds.classes, strings(&["car", "person"]));
    }

    #[test]
    fn rejects_two_files_for_one_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("q.txt"), "").unwrap();
        std::fs::write(dir.path().join("sub/q.txt"), "").unwrap();
        let ix = index(&[("sub/q.jpg", 10, 10)]);
        let e = imp(dir.path(), &ix, &[], false).unwrap_err().to_string();
        assert!(
            e.contains("q.txt: file: describes the same image `sub/q.jpg` as "),
            "{e}"
        );
    }

    #[test]
    fn empty_folder_warns() {
        let dir = tempfile::tempdir().unwrap();
        let got = imp(dir.path(), &ImageIndex::default(), &[], false).unwrap();
        assert!(got.dataset.images.is_empty());
        assert_eq!(got.warnings.len(), 1);
        assert!(got.warnings[0].contains("no .txt label files found"));
    }

    #[test]
    fn refuses_other_tasks() {
        let ix = ImageIndex::default();
        let ctx = ImportCtx {
            task: Task::Classify,
            images: &ix,
            classes: &[],
            predictions: false,
        };
        let e = import(&fixtures().join("labels"), &ctx).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("detection boxes only"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let ctx = ExportCtx {
            task: Task::Multilabel,
            out: dir.path(),
            predictions: false,
            url_prefix: "",
        };
        let e = export(&sample(), &ctx).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
    }

    #[test]
    fn export_refuses_bad_datasets_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let one = |key: &str, label: Label| Dataset {
            classes: strings(&["car"]),
            images: vec![
                ImageLabels {
                    key: "ok.jpg".into(),
                    width: 1,
                    height: 1,
                    labels: vec![],
                },
                ImageLabels {
                    key: key.into(),
                    width: 1,
                    height: 1,
                    labels: vec![label],
                },
            ],
        };
        let car = det("car", (0.1, 0.1, 0.2, 0.2), None);

        let e = exp(&one("../x.jpg", car.clone()), &out, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("leaves its folder"), "{e}");
        let e = exp(
            &one("x.jpg", det("bus", (0.1, 0.1, 0.2, 0.2), None)),
            &out,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.txt: image `x.jpg` label 1: class `bus` is not in the class list"),
            "{e}"
        );
        let no_box = Label {
            class: "car".into(),
            bbox: None,
            score: None,
        };
        let e = exp(&one("x.jpg", no_box), &out, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label has no box"), "{e}");
        let e = exp(&one("ok.png", car.clone()), &out, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ok.txt: image `ok.png`: this file is already written for image `ok.jpg`"),
            "{e}"
        );
        let e = exp(&one("classes.jpg", car), &out, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already written for the class list"), "{e}");
        assert!(!out.exists(), "nothing written when the dataset is refused");
    }
}

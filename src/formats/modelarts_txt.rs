//! ModelArts classification: beside each image a `.txt` of the same base name (`a/b.jpg` →
//! `a/b.txt`) holding its labels, one per line. An empty file is an image verified to show none of
//! the classes. The format has no place for scores, so predictions export as plain labels.

use std::path::{Path, PathBuf};

use super::yolo::{ClassNumbers, SidecarPaths, read_sidecars, txt_files, write_sidecars};
use super::{ExportCtx, FormatError, ImportCtx, Imported, read_lines, sidecar_path};
use crate::model::{Dataset, Label, Task};
use crate::sanitize::{for_terminal, show_path};

/// Reads every `*.txt` below a folder (images beside them are ignored) or one `.txt`.
pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    if ctx.task.is_detect() {
        return Err(FormatError::Unsupported(
            "modelarts-txt carries image classes only, not boxes; \
             use voc, yolo or coco for a detection project"
                .into(),
        ));
    }
    let (_, files) = txt_files(path)?;
    let mut warnings = Vec::new();
    let images = read_sidecars(path, &files, ctx, &mut warnings, |file, warnings| {
        read_labels(file, ctx.task, warnings)
    })?;
    // The classes in the order they first appear.
    let mut classes: Vec<String> = Vec::new();
    for l in images.iter().flat_map(|im| &im.labels) {
        if !classes.contains(&l.class) {
            classes.push(l.class.clone());
        }
    }
    Ok(Imported {
        dataset: Dataset { classes, images },
        warnings,
        ..Imported::default()
    })
}

fn read_labels(
    file: &Path,
    task: Task,
    warnings: &mut Vec<String>,
) -> Result<Vec<Label>, FormatError> {
    let text = read_lines(file)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut labels: Vec<(Label, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        if let Some((_, first)) = labels.iter().find(|(l, _)| l.class == name) {
            warnings.push(format!(
                "{}: line {}: label `{}` repeats line {first}; kept once",
                show_path(file),
                i + 1,
                for_terminal(name)
            ));
            continue;
        }
        if let (Task::Classify, Some((first, at))) = (task, labels.first()) {
            return Err(FormatError::invalid(
                file,
                format!("line {}", i + 1),
                format!(
                    "second label `{}` (line {at} has `{}`): a classify project takes one label \
                     per image; import into a multilabel project instead",
                    for_terminal(name),
                    for_terminal(&first.class)
                ),
            ));
        }
        let label = Label {
            class: name.to_string(),
            bbox: None,
            score: None,
        };
        labels.push((label, i + 1));
    }
    Ok(labels.into_iter().map(|(l, _)| l).collect())
}

/// Writes one `.txt` per image into the folder `ctx.out`, labels in `ds.classes` order.
pub fn export(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    if ctx.task.is_detect() {
        return Err(FormatError::Unsupported(
            "modelarts-txt carries image classes only, not boxes; \
             export a detection project to voc, yolo or coco"
                .into(),
        ));
    }
    let numbers = ClassNumbers::new(&ds.classes);
    let mut paths = SidecarPaths::default();
    // Everything is checked before the first file is written, so a bad key leaves no half export.
    let mut files = Vec::with_capacity(ds.images.len());
    for im in &ds.images {
        let path = sidecar_path(ctx.out, &im.key, "txt")?;
        paths.claim(&path, &im.key)?;
        let place = format!("image `{}`", for_terminal(&im.key));
        let mut idx = Vec::with_capacity(im.labels.len());
        for l in &im.labels {
            idx.push(numbers.of(&l.class, &path, &place)?);
        }
        idx.sort_unstable();
        idx.dedup();
        if ctx.task == Task::Classify && idx.len() > 1 {
            return Err(FormatError::invalid(
                &path,
                &place,
                format!(
                    "has {} classes, but a classify project takes one per image",
                    idx.len()
                ),
            ));
        }
        let text: String = idx
            .iter()
            .map(|&i| format!("{}\n", ds.classes[i]))
            .collect();
        files.push((path, text));
    }
    write_sidecars(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageIndex;
    use crate::formats::testutil::{self, cls, index, strings};
    use crate::model::ImageLabels;

    fn fixtures() -> PathBuf {
        testutil::fixture("modelarts_txt", "")
    }

    fn project() -> ImageIndex {
        index(&[
            ("cats/1.jpg", 300, 200),
            ("dogs/1.jpg", 640, 480),
            ("both.png", 10, 20),
            ("none.jpg", 5, 5),
        ])
    }

    fn imp(path: &Path, task: Task, ix: &ImageIndex) -> Result<Imported, FormatError> {
        import(
            path,
            &ImportCtx {
                task,
                images: ix,
                classes: &[],
                predictions: false,
            },
        )
    }

    fn exp(ds: &Dataset, task: Task, out: &Path) -> Result<Vec<PathBuf>, FormatError> {
        export(
            ds,
            &ExportCtx {
                task,
                out,
                predictions: false,
                url_prefix: "",
            },
        )
    }

    fn classes(ds: &Dataset) -> Vec<Vec<&str>> {
        ds.images
            .iter()
            .map(|i| i.labels.iter().map(|l| l.class.as_str()).collect())
            .collect()
    }

    #[test]
    fn imports_multilabel_folder() {
        let got = imp(&fixtures().join("multilabel"), Task::Multilabel, &project()).unwrap();
        let ds = got.dataset;
        let keys: Vec<&str> = ds.images.iter().map(|i| i.key.as_str()).collect();
        // The .jpg files beside the .txt files are ignored; `other/7` is not in the project.
        assert_eq!(
            keys,
            [
                "both.png",
                "cats/1.jpg",
                "dogs/1.jpg",
                "none.jpg",
                "other/7"
            ]
        );
        assert_eq!(
            classes(&ds),
            [
                vec!["cat", "dog"],
                vec!["cat"],
                vec!["dog"],
                vec![],
                vec!["猫"]
            ]
        );
        assert_eq!(ds.classes, strings(&["cat", "dog", "猫"]));
        assert_eq!((ds.images[0].width, ds.images[0].height), (10, 20));
        assert_eq!((ds.images[2].width, ds.images[2].height), (640, 480));
        assert_eq!((ds.images[4].width, ds.images[4].height), (0, 0));
        assert!(
            ds.images
                .iter()
                .flat_map(|i| &i.labels)
                .all(|l| l.bbox.is_none() && l.score.is_none())
        );
        // `both.txt` lists `dog` twice (with CRLF and blank lines around).
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(
            got.warnings[0].contains("both.txt: line 4: label `dog` repeats line 2"),
            "{:?}",
            got.warnings
        );
    }

    #[test]
    fn imports_single_file() {
        let path = fixtures().join("multilabel/cats/1.txt");
        let ds = imp(&path, Task::Classify, &project()).unwrap().dataset;
        assert_eq!(ds.images.len(), 1);
        // A lone file is named by its stem; `1` is ambiguous (cats/1.jpg, dogs/1.jpg).
        assert_eq!(ds.images[0].key, "1");
        assert_eq!(classes(&ds), [vec!["cat"]]);
    }

    #[test]
    fn classify_rejects_two_labels() {
        let e = imp(&fixtures().join("multilabel"), Task::Classify, &project())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("both.txt: line 2: second label `dog` (line 1 has `cat`)"),
            "{e}"
        );
        // One label repeated is still one label.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.txt"), "cat\ncat\n").unwrap();
        let got = imp(dir.path(), Task::Classify, &project()).unwrap();
        assert_eq!(classes(&got.dataset), [vec!["cat"]]);
        assert_eq!(got.warnings.len(), 1);
    }

    #[test]
    fn refuses_detect() {
        let e = imp(&fixtures().join("multilabel"), Task::Detect, &project()).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = exp(&Dataset::default(), Task::Detect, dir.path()).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
    }

    fn sample() -> Dataset {
        let im = |key: &str, labels: Vec<Label>| ImageLabels {
            key: key.into(),
            width: 1,
            height: 1,
            labels,
        };
        Dataset {
            classes: strings(&["dog", "cat", "猫"]),
            images: vec![
                im(
                    "a/x.jpg",
                    vec![cls("cat", None), cls("dog", None), cls("cat", None)],
                ),
                im("b.png", vec![]),
                im("c.jpeg", vec![cls("猫", None)]),
            ],
        }
    }

    #[test]
    fn exports_expected_text_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        let files = exp(&sample(), Task::Multilabel, &one).unwrap();
        assert_eq!(files, ["a/x.txt", "b.txt", "c.txt"].map(|f| one.join(f)));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        // ds.classes order, duplicates once; an empty file for the verified-empty image.
        assert_eq!(read(&one.join("a/x.txt")), "dog\ncat\n");
        assert_eq!(read(&one.join("b.txt")), "");
        assert_eq!(read(&one.join("c.txt")), "猫\n");

        let ix = index(&[("a/x.jpg", 1, 1), ("b.png", 1, 1), ("c.jpeg", 1, 1)]);
        let back = imp(&one, Task::Multilabel, &ix).unwrap();
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        let mut ds = back.dataset;
        assert_eq!(classes(&ds), [vec!["dog", "cat"], vec![], vec!["猫"]]);
        let keys: Vec<&str> = ds.images.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a/x.jpg", "b.png", "c.jpeg"]);
        ds.classes = sample().classes;
        let two = dir.path().join("two");
        let files2 = exp(&ds, Task::Multilabel, &two).unwrap();
        for (f1, f2) in files.iter().zip(&files2) {
            assert_eq!(std::fs::read(f1).unwrap(), std::fs::read(f2).unwrap());
        }
    }

    #[test]
    fn export_refuses_bad_datasets_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let e = exp(&sample(), Task::Classify, &out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.txt: image `a/x.jpg`: has 2 classes, but a classify project"),
            "{e}"
        );
        let mut ds = sample();
        ds.images[2].labels.push(cls("bird", None));
        let e = exp(&ds, Task::Multilabel, &out).unwrap_err().to_string();
        assert!(
            e.contains("c.txt: image `c.jpeg`: class `bird` is not in the class list"),
            "{e}"
        );
        let mut ds = sample();
        ds.images[1].key = "a/x.png".into();
        let e = exp(&ds, Task::Multilabel, &out).unwrap_err().to_string();
        assert!(
            e.contains("image `a/x.png`: this file is already written for image `a/x.jpg`"),
            "{e}"
        );
        let mut ds = sample();
        ds.images[1].key = "/etc/passwd".into();
        let e = exp(&ds, Task::Multilabel, &out).unwrap_err().to_string();
        assert!(e.contains("leaves its folder"), "{e}");
        assert!(!out.exists(), "nothing written when the dataset is refused");
    }
}

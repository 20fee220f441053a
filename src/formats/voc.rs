//! Pascal VOC: one `.xml` per image with the image's base name, beside it (ModelArts reads them
//! from there).
//!
//! Export writes `out/a/b.xml` for key `a/b.jpg`, with `<filename>` the key's file name, `<folder>`
//! its parent folder (empty at the top), `<size>` in displayed pixels (`<depth>` 3, since it is not
//! known), and per object `<name>`, `<pose>Unspecified</pose>`, `<truncated>0</truncated>`,
//! `<difficult>0</difficult>` and `<bndbox>`. Coordinates are pixel edges as decimals (`fmt_num`),
//! not shifted by the VOC devkit's 1-based convention. Predictions add a `<score>` element to each
//! object with a score. An image without objects gets a file with no `<object>`: verified empty.
//! Two keys with the same base name in one folder (`a/x.jpg`, `a/x.png`) cannot both have a VOC
//! file, so the export is refused before anything is written.
//!
//! VOC carries boxes only: classify and multilabel projects are refused both ways
//! (use `modelarts-txt` or `azureml-jsonl`).
//!
//! Import takes one `.xml` file or a folder searched recursively for `*.xml`. The image name is
//! the xml's folder relative to the folder given, joined with the file name part of `<filename>`
//! (tools write bare names, some a full path); without `<filename>` it is the xml's relative path
//! without extension, which the caller resolves by stem. `<folder>` and `<path>` are ignored: they
//! describe the annotator's machine. `<pose>`, `<truncated>`, `<difficult>` and `<part>` are
//! ignored; difficult objects are kept as ordinary boxes. Coordinates may be decimals (labelImg
//! writes `12.5` at times). A missing or zero `<size>` is taken from the project's image. Errors
//! name the xml file and an element path such as `annotation/object[2]/bndbox/xmax` (indices
//! 1-based, as in XPath).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quick_xml::escape::{escape, resolve_xml_entity};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

use super::{
    ExportCtx, FormatError, ImportCtx, Imported, fmt_num, parse_num, pixel_box, read_to_string,
    sidecar_path, write_file,
};
use crate::model::{Dataset, ImageLabels, Label};
use crate::sanitize::{for_terminal, show_path};

const CLASSIFY_UNSUPPORTED: &str = "voc carries boxes only; for a classify or multilabel project \
                                    use modelarts-txt or azureml-jsonl";

/// Deeper nesting than any VOC file has; the bound keeps hostile files from exhausting the stack.
const MAX_DEPTH: usize = 32;

pub fn import(path: &Path, ctx: &ImportCtx) -> Result<Imported, FormatError> {
    if !ctx.task.is_detect() {
        return Err(FormatError::Unsupported(CLASSIFY_UNSUPPORTED.into()));
    }
    let (root, files) = if path.is_dir() {
        let mut files = Vec::new();
        find_xml(path, &mut files)?;
        if files.is_empty() {
            return Err(FormatError::invalid(
                path,
                "folder",
                "no .xml files here or in its subfolders; expected one VOC file per image",
            ));
        }
        files.sort();
        (path, files)
    } else {
        (
            path.parent().unwrap_or(Path::new("")),
            vec![path.to_path_buf()],
        )
    };

    let mut out = Imported::default();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in &files {
        let rel_dir = file
            .parent()
            .and_then(|d| d.strip_prefix(root).ok())
            .map(slash_path)
            .unwrap_or_default();
        let Some(im) = read_one(file, &rel_dir, ctx, &mut out.warnings, &mut out.unplaced)? else {
            continue;
        };
        if let Some(first) = seen.insert(im.key.clone(), file.clone()) {
            return Err(FormatError::invalid(
                file,
                "annotation/filename",
                format!(
                    "image `{}` is already described by {}",
                    for_terminal(&im.key),
                    show_path(&first)
                ),
            ));
        }
        for l in &im.labels {
            if !out.dataset.classes.contains(&l.class) {
                out.dataset.classes.push(l.class.clone());
            }
        }
        out.dataset.images.push(im);
    }
    Ok(out)
}

/// Collects `*.xml` files under `dir`; symlinked folders are not followed, so no loops.
fn find_xml(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), FormatError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FormatError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FormatError::io(dir, e))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            find_xml(&path, files)?;
        } else if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// `a/b` from a relative path, whatever the platform's separator.
fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Reads one VOC file; `None` (with a warning) when the image's size is known to neither the
/// file nor the project, since pixel boxes cannot be placed without it.
fn read_one(
    file: &Path,
    rel_dir: &str,
    ctx: &ImportCtx,
    warnings: &mut Vec<String>,
    unplaced: &mut Vec<(String, usize)>,
) -> Result<Option<ImageLabels>, FormatError> {
    let text = read_to_string(file)?;
    let root = parse_xml(&text, file)?;
    if root.name != "annotation" {
        return Err(bad(
            file,
            &root.name,
            format!("root element is <{}>; expected <annotation>", root.name),
        ));
    }
    let key = match root.child("filename").map(Elem::value) {
        Some(f) if !f.is_empty() => {
            let f = f.replace('\\', "/");
            join(rel_dir, f.rsplit('/').next().unwrap_or(&f))
        }
        _ => {
            let stem = file.file_stem().map(|s| s.to_string_lossy());
            join(rel_dir, stem.as_deref().unwrap_or_default())
        }
    };

    let stated = match root.child("size") {
        Some(size) => {
            let w = pixels(size, "width", "annotation/size", file)?;
            let h = pixels(size, "height", "annotation/size", file)?;
            (w > 0 && h > 0).then_some((w, h))
        }
        None => None,
    };
    let Some((width, height)) =
        stated.or_else(|| ctx.images.resolve(&key).map(|k| (k.width, k.height)))
    else {
        // No size to place its pixel boxes on: one row per object (one for an empty image).
        unplaced.push((key, root.children("object").count().max(1)));
        return Ok(None);
    };

    let mut labels = Vec::new();
    for (i, obj) in root.children("object").enumerate() {
        let at = format!("annotation/object[{}]", i + 1);
        let class = match obj.child("name").map(Elem::value) {
            Some(n) if !n.is_empty() => n.to_string(),
            Some(_) => return Err(bad(file, format!("{at}/name"), "class name is empty")),
            None => return Err(bad(file, &at, "missing <name> (the class)")),
        };
        let bndbox = obj.child("bndbox").ok_or_else(|| {
            bad(
                file,
                &at,
                "missing <bndbox> with <xmin>, <ymin>, <xmax>, <ymax>",
            )
        })?;
        let box_at = format!("{at}/bndbox");
        let [x0, y0, x1, y1] =
            ["xmin", "ymin", "xmax", "ymax"].map(|n| number(bndbox, n, &box_at, file));
        let (x0, y0, x1, y1) = (x0?, y0?, x1?, y1?);
        if x1 < x0 || y1 < y0 {
            return Err(bad(
                file,
                &box_at,
                format!(
                    "max is less than min (x {}..{}, y {}..{}); expected xmin ≤ xmax and ymin ≤ ymax",
                    fmt_num(x0),
                    fmt_num(x1),
                    fmt_num(y0),
                    fmt_num(y1)
                ),
            ));
        }
        let bbox = pixel_box((x0, y0, x1, y1), width, height, file, &box_at, warnings)?;
        let score = match obj.child("score") {
            Some(_) if ctx.predictions => {
                let s = number(obj, "score", &at, file)?;
                if !(0.0..=1.0).contains(&s) {
                    return Err(bad(
                        file,
                        format!("{at}/score"),
                        format!("score {} is outside 0..1", fmt_num(s)),
                    ));
                }
                Some(s)
            }
            _ => None,
        };
        labels.push(Label {
            class,
            bbox: Some(bbox),
            score,
        });
    }
    Ok(Some(ImageLabels {
        key,
        width,
        height,
        labels,
    }))
}

/// The number in child `name` of `parent`, whose element path is `at`.
fn number(parent: &Elem, name: &str, at: &str, file: &Path) -> Result<f64, FormatError> {
    let e = parent
        .child(name)
        .ok_or_else(|| bad(file, at, format!("missing <{name}>")))?;
    parse_num(e.value(), file, &format!("{at}/{name}"), name)
}

/// A whole, non-negative pixel count (`500` or `500.0`).
fn pixels(parent: &Elem, name: &str, at: &str, file: &Path) -> Result<u32, FormatError> {
    let v = number(parent, name, at, file)?;
    if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX) {
        return Err(bad(
            file,
            format!("{at}/{name}"),
            format!("{name} {} is not a whole number of pixels", fmt_num(v)),
        ));
    }
    // Checked above: whole and in range.
    Ok(v as u32)
}

/// An error whose place and message may quote the file's text, made safe for a terminal.
fn bad(file: &Path, place: impl AsRef<str>, msg: impl AsRef<str>) -> FormatError {
    FormatError::invalid(
        file,
        for_terminal(place.as_ref()),
        for_terminal(msg.as_ref()),
    )
}

/// An XML element: the little of XML that VOC uses (no attributes, text in leaves).
#[derive(Debug)]
struct Elem {
    name: String,
    text: String,
    children: Vec<Elem>,
}

impl Elem {
    fn new(name: &str) -> Self {
        Elem {
            name: name.to_string(),
            text: String::new(),
            children: Vec::new(),
        }
    }
    fn child(&self, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.name == name)
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Elem> {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn value(&self) -> &str {
        self.text.trim()
    }
}

/// Parses a document into its root element, naming the line of any syntax error.
fn parse_xml(text: &str, file: &Path) -> Result<Elem, FormatError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let line_at = |pos: u64| {
        let end = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
        format!(
            "line {}",
            text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        )
    };
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Elem> = Vec::new();
    let mut root: Option<Elem> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            bad(
                file,
                line_at(reader.error_position()),
                format!("malformed XML: {e}"),
            )
        })?;
        let here = || line_at(reader.buffer_position());
        let done = match event {
            Event::Start(s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(bad(
                        file,
                        here(),
                        "elements nested too deeply for a VOC file",
                    ));
                }
                stack.push(Elem::new(s.name().as_ref()));
                None
            }
            Event::Empty(s) => Some(Elem::new(s.name().as_ref())),
            // The reader checks that end names match their start.
            Event::End(_) => stack.pop(),
            Event::Text(t) => {
                push_text(&mut stack, &t.xml10_content(), file, here)?;
                None
            }
            Event::CData(t) => {
                push_text(&mut stack, &t.xml10_content(), file, here)?;
                None
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => resolve_xml_entity(&r)
                        .ok_or_else(|| bad(file, here(), format!("unknown entity `&{};`", &*r)))?
                        .to_string(),
                };
                push_text(&mut stack, &resolved, file, here)?;
                None
            }
            Event::Eof => break,
            _ => None,
        };
        if let Some(elem) = done {
            match stack.last_mut() {
                Some(parent) => parent.children.push(elem),
                None if root.is_none() => root = Some(elem),
                None => {
                    return Err(bad(
                        file,
                        here(),
                        "a second root element; expected one <annotation>",
                    ));
                }
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(bad(
            file,
            line_at(reader.buffer_position()),
            format!(
                "file ends inside <{}>; the element is never closed",
                open.name
            ),
        ));
    }
    root.ok_or_else(|| bad(file, "line 1", "no XML element; expected <annotation>"))
}

/// Appends text to the open element; only whitespace may stand outside the root.
fn push_text(
    stack: &mut [Elem],
    text: &str,
    file: &Path,
    here: impl Fn() -> String,
) -> Result<(), FormatError> {
    match stack.last_mut() {
        Some(e) => e.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(bad(file, here(), "text outside the root element")),
    }
    Ok(())
}

pub fn export(ds: &Dataset, ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    if !ctx.task.is_detect() {
        return Err(FormatError::Unsupported(CLASSIFY_UNSUPPORTED.into()));
    }
    // Render everything first so that a refused export writes nothing.
    let mut files: Vec<(PathBuf, String)> = Vec::with_capacity(ds.images.len());
    let mut owner: HashMap<PathBuf, &str> = HashMap::new();
    for im in &ds.images {
        let path = sidecar_path(ctx.out, &im.key, "xml")?;
        if let Some(first) = owner.insert(path.clone(), &im.key) {
            return Err(bad(
                ctx.out,
                &im.key,
                format!(
                    "`{first}` and `{}` would both be described by {}; VOC pairs files with images \
                     by base name, so rename one image",
                    im.key,
                    show_path(&path)
                ),
            ));
        }
        files.push((path, render(im, ctx)?));
    }
    let mut written = Vec::with_capacity(files.len());
    for (path, xml) in files {
        write_file(&path, xml.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// One image's VOC document.
fn render(im: &ImageLabels, ctx: &ExportCtx) -> Result<String, FormatError> {
    if im.width == 0 || im.height == 0 {
        return Err(bad(
            ctx.out,
            &im.key,
            "image size is unknown; VOC needs width and height in pixels",
        ));
    }
    let (folder, name) = im.key.rsplit_once('/').unwrap_or(("", &im.key));
    let mut s = String::new();
    // Writing to a String cannot fail, hence the ignored results.
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<annotation>\n\
         \t<folder>{}</folder>\n\t<filename>{}</filename>\n\
         \t<size>\n\t\t<width>{}</width>\n\t\t<height>{}</height>\n\t\t<depth>3</depth>\n\t</size>\n",
        escape(folder),
        escape(name),
        im.width,
        im.height
    );
    for l in &im.labels {
        let b = l.bbox.ok_or_else(|| {
            bad(
                ctx.out,
                &im.key,
                format!("a `{}` label has no box in a detect project", l.class),
            )
        })?;
        let (x0, y0, x1, y1) = b.to_pixels(im.width, im.height);
        let _ = write!(
            s,
            "\t<object>\n\t\t<name>{}</name>\n\t\t<pose>Unspecified</pose>\n\
             \t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n",
            escape(l.class.as_str())
        );
        if let Some(score) = l.score.filter(|_| ctx.predictions) {
            let _ = writeln!(s, "\t\t<score>{}</score>", fmt_num(score));
        }
        let _ = write!(
            s,
            "\t\t<bndbox>\n\t\t\t<xmin>{}</xmin>\n\t\t\t<ymin>{}</ymin>\n\
             \t\t\t<xmax>{}</xmax>\n\t\t\t<ymax>{}</ymax>\n\t\t</bndbox>\n\t</object>\n",
            fmt_num(x0),
            fmt_num(y0),
            fmt_num(x1),
            fmt_num(y1)
        );
    }
    s.push_str("</annotation>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageIndex;
    use crate::formats::testutil::{
        self, assert_box, assert_round_trip, bb, det, detect_dataset, detect_export as ectx,
        detect_import as ictx, known, read,
    };
    use crate::model::Task;

    fn fixtures() -> PathBuf {
        testutil::fixture("voc", "")
    }

    #[test]
    fn imports_labelimg_folder() {
        let ix = ImageIndex::new(vec![known("imgs/odd/nofilename.jpg", 30, 20)]);
        let got = import(&fixtures().join("labelimg"), &ictx(&ix, false)).unwrap();
        let ds = &got.dataset;
        let keys: Vec<_> = ds.images.iter().map(|i| i.key.as_str()).collect();
        // Sorted by xml path; names from <filename>, folders from the xml's place.
        assert_eq!(
            keys,
            [
                "odd/r&d 猫.png",
                "odd/nofilename",
                "st1026.jpg",
                "sub/2007_000027.jpg"
            ]
        );
        assert_eq!(ds.classes, ["knot", "crack", "person"]);

        let esc = &ds.images[0];
        assert_eq!((esc.width, esc.height), (200, 100));
        assert_eq!(esc.labels.len(), 1);
        assert_eq!(esc.labels[0].class, "knot");
        assert_box(esc.labels[0].bbox, bb(0.0, 0.0, 0.5, 0.5));

        // No <size>, no object: sized from the project, verified empty.
        let empty = &ds.images[1];
        assert_eq!((empty.width, empty.height), (30, 20));
        assert!(empty.labels.is_empty());

        let st = &ds.images[2];
        assert_eq!((st.width, st.height), (640, 480));
        assert_eq!(st.labels.len(), 2);
        assert_eq!(st.labels[0].class, "knot");
        assert_box(st.labels[0].bbox, bb(0.1, 0.1, 0.3, 0.3));
        assert_eq!(st.labels[0].score, None);
        assert_eq!(st.labels[1].class, "crack");
        // xmax 652 > width 640: clipped, one warning.
        assert_box(
            st.labels[1].bbox,
            bb(12.5 / 640.0, 300.25 / 480.0, 1.0, 1.0),
        );
        assert_eq!(st.labels[1].score, None, "labels import ignores <score>");

        // Only the object's own <bndbox>, not the <part>'s.
        let p = &ds.images[3];
        assert_eq!((p.width, p.height), (486, 500));
        assert_eq!(p.labels.len(), 1);
        assert_eq!(p.labels[0].class, "person");
        assert_box(
            p.labels[0].bbox,
            bb(174.0 / 486.0, 101.0 / 500.0, 349.0 / 486.0, 351.0 / 500.0),
        );

        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(
            got.warnings[0].ends_with(
                "st1026.xml: annotation/object[2]/bndbox: box reaches outside the image; clipped to its edges"
            ),
            "{:?}",
            got.warnings
        );
    }

    #[test]
    fn imports_one_file_with_scores() {
        let ix = ImageIndex::default();
        let got = import(
            &fixtures().join("labelimg/sub/voc2012.xml"),
            &ictx(&ix, false),
        )
        .unwrap();
        assert_eq!(got.dataset.images.len(), 1);
        assert_eq!(got.dataset.images[0].key, "2007_000027.jpg");

        let got = import(&fixtures().join("labelimg/st1026.xml"), &ictx(&ix, true)).unwrap();
        let labels = &got.dataset.images[0].labels;
        assert_eq!(labels[0].score, None);
        assert_eq!(labels[1].score, Some(0.625));
    }

    #[test]
    fn no_size_and_unknown_image_is_unplaced() {
        let ix = ImageIndex::default();
        let got = import(
            &fixtures().join("labelimg/odd/nofilename.xml"),
            &ictx(&ix, false),
        )
        .unwrap();
        assert!(got.dataset.images.is_empty());
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.unplaced.len(), 1);
        assert_eq!(got.unplaced[0].0, "nofilename");
    }

    #[test]
    fn exports_expected_files_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("voc");
        let ds = detect_dataset();
        let files = export(&ds, &ectx(&out, false)).unwrap();
        let rel = ["a/st1026.xml", "b/empty.xml", "c.xml"];
        assert_eq!(files, rel.map(|r| out.join(r)));
        for r in rel {
            assert_eq!(
                read(&out.join(r)),
                read(&fixtures().join("expected").join(r)),
                "{r}"
            );
        }

        let ix = ImageIndex::default();
        let back = import(&out, &ictx(&ix, false)).unwrap();
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        assert_eq!(back.dataset.classes, ["knot", "crack"]);
        assert_eq!(back.dataset.images.len(), 3);
        assert_round_trip(&back.dataset.images, &ds.images, false);
        let out2 = dir.path().join("again");
        export(&back.dataset, &ectx(&out2, false)).unwrap();
        for r in rel {
            assert_eq!(read(&out2.join(r)), read(&out.join(r)), "{r}");
        }
    }

    #[test]
    fn predictions_write_and_read_scores() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p");
        export(&detect_dataset(), &ectx(&out, true)).unwrap();
        assert_eq!(
            read(&out.join("c.xml")),
            read(&fixtures().join("c_predictions.xml"))
        );
        assert!(read(&out.join("a/st1026.xml")).contains("<score>0.9</score>"));
        let ix = ImageIndex::default();
        let back = import(&out, &ictx(&ix, true)).unwrap().dataset;
        assert_eq!(back.images[0].labels[0].score, Some(0.9));
        assert_eq!(back.images[0].labels[1].score, None);
        assert_eq!(back.images[2].labels[0].score, Some(0.333333));
        let out2 = dir.path().join("p2");
        export(&back, &ectx(&out2, true)).unwrap();
        assert_eq!(read(&out2.join("c.xml")), read(&out.join("c.xml")));
    }

    #[test]
    fn escapes_names_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let ds = Dataset {
            classes: vec!["猫".into()],
            images: vec![ImageLabels {
                key: "R&D <1>/it's \"x\".jpg".into(),
                width: 10,
                height: 10,
                labels: vec![det("猫", bb(0.0, 0.0, 0.5, 0.5), None)],
            }],
        };
        let files = export(&ds, &ectx(&out, false)).unwrap();
        let xml = read(&files[0]);
        assert!(xml.contains("<folder>R&amp;D &lt;1&gt;</folder>"), "{xml}");
        assert!(
            xml.contains("<filename>it&apos;s &quot;x&quot;.jpg</filename>"),
            "{xml}"
        );
        assert!(xml.contains("<name>猫</name>"));
        let ix = ImageIndex::default();
        let back = import(&out, &ictx(&ix, false)).unwrap().dataset;
        assert_eq!(back.images[0].key, ds.images[0].key);
        assert_eq!(back.images[0].labels[0].class, "猫");
    }

    #[test]
    fn export_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let mut c = ectx(&out, false);
        c.task = Task::Multilabel;
        let e = export(&detect_dataset(), &c).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)));
        assert!(
            e.to_string().contains("modelarts-txt or azureml-jsonl"),
            "{e}"
        );

        let mut ds = detect_dataset();
        ds.images[1].key = "a/st1026.png".into();
        let e = export(&ds, &ectx(&out, false)).unwrap_err().to_string();
        assert!(
            e.contains(
                "o: a/st1026.png: `a/st1026.jpg` and `a/st1026.png` would both be described by"
            ),
            "{e}"
        );
        assert!(!out.exists(), "nothing written when refused");

        let mut ds = detect_dataset();
        ds.images[2].key = "../c.jpg".into();
        let e = export(&ds, &ectx(&out, false)).unwrap_err().to_string();
        assert!(e.contains("leaves its folder"), "{e}");

        let mut ds = detect_dataset();
        ds.images[2].height = 0;
        let e = export(&ds, &ectx(&out, false)).unwrap_err().to_string();
        assert!(e.contains("o: c.jpg: image size is unknown"), "{e}");

        let mut ds = detect_dataset();
        ds.images[2].labels[0].bbox = None;
        let e = export(&ds, &ectx(&out, false)).unwrap_err().to_string();
        assert!(e.contains("o: c.jpg: a `crack` label has no box"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn import_refuses_classification() {
        let ix = ImageIndex::default();
        let mut c = ictx(&ix, false);
        c.task = Task::Classify;
        let e = import(&fixtures().join("labelimg"), &c).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
    }

    /// Writes `xml` as `bad.xml`, imports it, and checks the error names the file and place.
    fn assert_rejected(xml: &str, predictions: bool, place: &str, msg: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.xml");
        std::fs::write(&file, xml).unwrap();
        let ix = ImageIndex::default();
        let e = import(&file, &ictx(&ix, predictions))
            .unwrap_err()
            .to_string();
        let head = format!("{}: {place}: ", file.display());
        assert!(e.starts_with(&head), "{e:?} should start with {head:?}");
        assert!(e.contains(msg), "{e:?} should contain {msg:?}");
    }

    fn doc(objects: &str) -> String {
        format!(
            "<annotation>\n<filename>x.jpg</filename>\n<size><width>100</width><height>50</height></size>\n{objects}</annotation>\n"
        )
    }

    const OK_OBJ: &str = "<object><name>knot</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>\n";

    #[test]
    fn rejects_bad_input() {
        assert_rejected(
            "<annotation>\n<object>\n</annotation>\n",
            false,
            "line 3",
            "malformed XML",
        );
        assert_rejected(
            "<annotation>\n<object>\n",
            false,
            "line 3",
            "file ends inside <object>",
        );
        assert_rejected(
            "<annotation>\n<!-- never closed\n",
            false,
            "line 2",
            "malformed XML",
        );
        assert_rejected("", false, "line 1", "no XML element");
        assert_rejected(
            "<root/>",
            false,
            "root",
            "root element is <root>; expected <annotation>",
        );
        assert_rejected(
            "<annotation/>\n<annotation/>",
            false,
            "line 2",
            "a second root element",
        );
        assert_rejected(
            "<annotation/>\ntext",
            false,
            "line 2",
            "text outside the root",
        );
        assert_rejected(
            "<annotation>\n<filename>&bogus;</filename></annotation>",
            false,
            "line 2",
            "unknown entity `&bogus;`",
        );
        assert_rejected(
            &doc(&format!("{OK_OBJ}<object><bndbox/></object>\n")),
            false,
            "annotation/object[2]",
            "missing <name>",
        );
        assert_rejected(
            &doc("<object><name> </name></object>\n"),
            false,
            "annotation/object[1]/name",
            "class name is empty",
        );
        assert_rejected(
            &doc("<object><name>knot</name></object>\n"),
            false,
            "annotation/object[1]",
            "missing <bndbox>",
        );
        assert_rejected(
            &doc(&format!(
                "{OK_OBJ}<object><name>k</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>5</ymax></bndbox></object>\n"
            )),
            false,
            "annotation/object[2]/bndbox",
            "missing <xmax>",
        );
        assert_rejected(
            &doc(&format!(
                "{OK_OBJ}<object><name>k</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>abc</xmax><ymax>5</ymax></bndbox></object>\n"
            )),
            false,
            "annotation/object[2]/bndbox/xmax",
            "xmax `abc` is not a number",
        );
        assert_rejected(
            &doc(
                "<object><name>k</name><bndbox><xmin>3</xmin><ymin>1</ymin><xmax>3</xmax><ymax>5</ymax></bndbox></object>\n",
            ),
            false,
            "annotation/object[1]/bndbox",
            "zero area",
        );
        assert_rejected(
            &doc(
                "<object><name>k</name><bndbox><xmin>120</xmin><ymin>1</ymin><xmax>130</xmax><ymax>5</ymax></bndbox></object>\n",
            ),
            false,
            "annotation/object[1]/bndbox",
            "zero area",
        );
        assert_rejected(
            &doc(
                "<object><name>k</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>3</xmax><ymax>5</ymax></bndbox></object>\n",
            ),
            false,
            "annotation/object[1]/bndbox",
            "max is less than min (x 9..3, y 1..5)",
        );
        assert_rejected(
            &doc(
                "<object><name>k</name><score>2</score><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>5</ymax></bndbox></object>\n",
            ),
            true,
            "annotation/object[1]/score",
            "score 2 is outside 0..1",
        );
        assert_rejected(
            "<annotation><size><width>abc</width><height>5</height></size></annotation>",
            false,
            "annotation/size/width",
            "width `abc` is not a number",
        );
        assert_rejected(
            "<annotation><size><width>10.5</width><height>5</height></size></annotation>",
            false,
            "annotation/size/width",
            "width 10.5 is not a whole number of pixels",
        );
        assert_rejected(
            "<annotation><size><width>10</width></size></annotation>",
            false,
            "annotation/size",
            "missing <height>",
        );
        let deep = format!(
            "{}{}",
            "<annotation>".repeat(10_000),
            "</annotation>".repeat(10_000)
        );
        assert_rejected(&deep, false, "line 1", "nested too deeply");
    }

    #[test]
    fn folder_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ix = ImageIndex::default();
        let e = import(dir.path(), &ictx(&ix, false))
            .unwrap_err()
            .to_string();
        assert!(e.contains(": folder: no .xml files"), "{e}");

        let one = "<annotation><filename>x.jpg</filename><size><width>9</width><height>9</height></size></annotation>";
        std::fs::write(dir.path().join("a.xml"), one).unwrap();
        std::fs::write(dir.path().join("b.XML"), one).unwrap();
        let e = import(dir.path(), &ictx(&ix, false))
            .unwrap_err()
            .to_string();
        let a = dir.path().join("a.xml");
        let b = dir.path().join("b.XML");
        assert_eq!(
            e,
            format!(
                "{}: annotation/filename: image `x.jpg` is already described by {}",
                b.display(),
                a.display()
            )
        );

        std::fs::remove_file(&b).unwrap();
        std::fs::write(
            dir.path().join("latin1.xml"),
            b"<annotation>\xe9</annotation>",
        )
        .unwrap();
        let e = import(dir.path(), &ictx(&ix, false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("latin1.xml"), "{e}");
    }
}

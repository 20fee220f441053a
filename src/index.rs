//! Scans an image folder: finds images recursively and reads their size and EXIF orientation from
//! the headers, without decoding pixels. A file that cannot be read, or a JPEG cut short (no end
//! marker: a cheap tail read), is recorded as broken with the reason; it never stops the scan.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::{ImageDecoder, ImageReader, metadata::Orientation};
use rayon::prelude::*;

use crate::decode::DecodeError;
use crate::model::orientation_swaps_axes;
use crate::store::NewImage;

/// File extensions indexed (lower-cased).
pub const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];

/// Largest image accepted, in megapixels, unless the project sets `max_megapixels`.
pub const DEFAULT_MAX_MEGAPIXELS: u32 = 250;

pub fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Relative, `/`-separated key of `path` under `root`; `None` for a name that is not valid UTF-8
/// (it could not round-trip through the store and label files).
pub fn key_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// Image files under `root` whose key is not in `known`, sorted by key, plus warnings for the
/// files that had to be passed over (unreadable folders, names that are not UTF-8).
pub fn find_new(root: &Path, known: &HashSet<String>) -> (Vec<(String, PathBuf)>, Vec<String>) {
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("skipped: {e}"));
                continue;
            }
        };
        let path = entry.path();
        // The project's own state folder is never part of the source.
        if entry.file_type().is_dir() && entry.file_name() == ".termtag" {
            continue;
        }
        if !entry.file_type().is_file() || !is_image(path) {
            continue;
        }
        match key_of(root, path) {
            Some(key) if !known.contains(&key) => found.push((key, path.to_path_buf())),
            Some(_) => {}
            None => warnings.push(format!(
                "skipped {}: the file name is not valid UTF-8; rename it",
                crate::sanitize::for_terminal(&path.to_string_lossy())
            )),
        }
    }
    (found, warnings)
}

/// Reads the headers of every file in parallel. `progress` is called once per file.
pub fn probe_all(
    files: &[(String, PathBuf)],
    max_megapixels: u32,
    progress: &(dyn Fn() + Sync),
) -> Vec<NewImage> {
    files
        .par_iter()
        .map(|(key, path)| {
            let im = probe(key, path, max_megapixels);
            progress();
            im
        })
        .collect()
}

/// Reads one image's header: displayed size, EXIF orientation and file size.
pub fn probe(key: &str, path: &Path, max_megapixels: u32) -> NewImage {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut im = NewImage {
        key: key.to_string(),
        width: 0,
        height: 0,
        orientation: 1,
        size,
        error: None,
    };
    match read_header(path) {
        Ok((w, h, orientation)) => {
            let (w, h) = if orientation_swaps_axes(orientation) {
                (h, w)
            } else {
                (w, h)
            };
            im.width = w;
            im.height = h;
            im.orientation = orientation;
            if let Err(e) = DecodeError::check_size(w, h, max_megapixels) {
                im.error = Some(e.to_string());
            }
        }
        Err(e) => im.error = Some(e.to_string()),
    }
    im
}

fn read_header(path: &Path) -> Result<(u32, u32, u8), DecodeError> {
    let mut file = File::open(path).map_err(DecodeError::Open)?;
    crate::decode::check_complete(&mut file)?;
    let reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(DecodeError::Read)?;
    if reader.format().is_none() {
        return Err(DecodeError::UnknownFormat);
    }
    let mut decoder = reader.into_decoder().map_err(DecodeError::decode)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(DecodeError::ZeroSize);
    }
    // A missing or unreadable EXIF block means no rotation, not a broken image.
    let orientation = decoder.orientation().map(exif_value).unwrap_or(1);
    Ok((w, h, orientation))
}

fn exif_value(o: Orientation) -> u8 {
    match o {
        Orientation::NoTransforms => 1,
        Orientation::FlipHorizontal => 2,
        Orientation::Rotate180 => 3,
        Orientation::FlipVertical => 4,
        Orientation::Rotate90FlipH => 5,
        Orientation::Rotate90 => 6,
        Orientation::Rotate270FlipH => 7,
        Orientation::Rotate270 => 8,
    }
}

//! Gallery thumbnails kept on disk (`.termtag/thumbs/`), so that a page seen before appears
//! without decoding its 12-megapixel originals again.
//!
//! One file per image file, named by a hash of its path. It starts with the size and
//! modification time of the original it was made from: a file that changed (same name, new
//! content) misses and its thumbnail is made again over the old one. The picture is a small
//! upright JPEG that fits [`SIDE`]×[`SIDE`]. Made and written by the graphics worker, never by
//! the screen's thread; a write goes through a temporary file, so a crash leaves no half
//! thumbnail.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use image::{DynamicImage, RgbImage};
use sha2::{Digest, Sha256};

use crate::decode::DecodeError;

/// The longest side of a stored thumbnail: a gallery tile is 22×7 cells, 352×224 pixels with
/// 16×32-pixel cells.
pub const SIDE: u32 = 384;

const MAGIC: &[u8; 8] = b"TTTHUMB1";
const HEADER: usize = MAGIC.len() + 16;

/// The thumbnail folder of one project.
#[derive(Debug, Clone)]
pub struct ThumbCache {
    dir: PathBuf,
}

/// What identifies the content of an original: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: u64,
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, DecodeError> {
        let meta = std::fs::metadata(path).map_err(DecodeError::Open)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Stamp {
            size: meta.len(),
            mtime_ns,
        })
    }
}

impl ThumbCache {
    pub fn new(dir: PathBuf) -> ThumbCache {
        ThumbCache { dir }
    }

    /// Where the thumbnail of `original` is kept.
    fn file(&self, original: &Path) -> PathBuf {
        let hash = Sha256::digest(original.as_os_str().as_encoded_bytes());
        let name: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(&name[..2]).join(format!("{name}.thumb"))
    }

    /// The stored thumbnail of `original`, if there is one made from its present content.
    pub fn get(&self, original: &Path) -> Option<DynamicImage> {
        let stamp = Stamp::of(original).ok()?;
        let bytes = std::fs::read(self.file(original)).ok()?;
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let word = |i: usize| {
            let at = MAGIC.len() + 8 * i;
            u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        };
        if (Stamp {
            size: word(0),
            mtime_ns: word(1),
        }) != stamp
        {
            return None;
        }
        image::load_from_memory_with_format(&bytes[HEADER..], image::ImageFormat::Jpeg).ok()
    }

    /// The thumbnail of `original`: the stored one, or one made now (the original decoded at
    /// the smallest DCT scale that still covers [`SIDE`]) and stored for next time. A thumbnail
    /// that cannot be stored (read-only project, full disk) is still returned.
    pub fn get_or_make(
        &self,
        original: &Path,
        max_megapixels: u32,
    ) -> Result<DynamicImage, DecodeError> {
        if let Some(img) = self.get(original) {
            return Ok(img);
        }
        let stamp = Stamp::of(original)?;
        let full = crate::infer::preprocess::decode_image(original, max_megapixels, SIDE)?;
        let small = shrink(full);
        if let Err(e) = self.put(original, stamp, &small) {
            tracing::warn!(file = %original.display(), "thumbnail not stored: {e}");
        }
        Ok(DynamicImage::ImageRgb8(small))
    }

    fn put(&self, original: &Path, stamp: Stamp, img: &RgbImage) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER + 32 * 1024);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&stamp.size.to_le_bytes());
        bytes.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
        let mut jpeg = Cursor::new(&mut bytes);
        jpeg.set_position(HEADER as u64);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(img)
            .map_err(std::io::Error::other)?;
        let file = self.file(original);
        std::fs::create_dir_all(file.parent().expect("a thumbnail file has a folder"))?;
        let tmp = file.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &file)
    }
}

/// `img` fitted into [`SIDE`]×[`SIDE`] (never enlarged).
fn shrink(img: RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.max(h) <= SIDE {
        return img;
    }
    let s = f64::from(SIDE) / f64::from(w.max(h));
    let (nw, nh) = (
        ((f64::from(w) * s).round() as u32).max(1),
        ((f64::from(h) * s).round() as u32).max(1),
    );
    image::imageops::thumbnail(&img, nw, nh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(path: &Path, w: u32, h: u32, shade: u8) {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([shade, (x % 256) as u8, (y % 256) as u8])
        })
        .save(path)
        .unwrap();
    }

    #[test]
    fn made_once_then_read_back_and_made_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ThumbCache::new(dir.path().join("thumbs"));
        let original = dir.path().join("a.jpg");
        photo(&original, 1600, 1200, 20);
        assert!(cache.get(&original).is_none(), "nothing stored yet");

        let made = cache.get_or_make(&original, 250).unwrap();
        assert_eq!((made.width(), made.height()), (SIDE, 288));
        let stored = cache.get(&original).expect("stored by get_or_make");
        assert_eq!((stored.width(), stored.height()), (SIDE, 288));
        // The stored picture is the original's: its red channel is the shade.
        let red = stored.to_rgb8().get_pixel(10, 10).0[0];
        assert!(red.abs_diff(20) < 12, "red {red}");

        // Same name, new content (and size): the old thumbnail is not used.
        photo(&original, 800, 1000, 220);
        assert!(cache.get(&original).is_none(), "a changed file misses");
        let again = cache.get_or_make(&original, 250).unwrap();
        assert_eq!((again.width(), again.height()), (307, SIDE));
        let red = cache.get(&original).unwrap().to_rgb8().get_pixel(10, 10).0[0];
        assert!(red.abs_diff(220) < 12, "red {red}");
        // One file per original, replaced in place.
        let files: Vec<_> = walkdir(&dir.path().join("thumbs"));
        assert_eq!(files.len(), 1, "{files:?}");
    }

    #[test]
    fn damaged_or_foreign_files_are_made_again_and_small_pictures_kept_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ThumbCache::new(dir.path().join("thumbs"));
        let original = dir.path().join("small.png");
        photo(&original, 100, 60, 128);
        let file = cache.file(&original);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"TTTHUMB1 cut short").unwrap();
        assert!(cache.get(&original).is_none());
        let made = cache.get_or_make(&original, 250).unwrap();
        assert_eq!((made.width(), made.height()), (100, 60));
        assert!(cache.get(&original).is_some());
        // A missing original is an error naming the problem, not a stale thumbnail.
        std::fs::remove_file(&original).unwrap();
        assert!(cache.get(&original).is_none());
        let err = cache.get_or_make(&original, 250).unwrap_err().to_string();
        assert!(err.starts_with("cannot open"), "{err}");
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}

//! Decoding a picture for display or inference: EXIF orientation applied, memory bounded by
//! `image::Limits`, every failure a one-line reason.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// Decodes `path` upright. Images over `max_megapixels` are refused before any pixel is decoded.
pub fn open_upright(path: &Path, max_megapixels: u32) -> Result<DynamicImage, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    upright_from(BufReader::new(file), max_megapixels)
}

/// [`open_upright`] for bytes already read (or any seekable reader).
pub fn upright_from(
    reader: impl std::io::BufRead + std::io::Seek,
    max_megapixels: u32,
) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("not a recognised image format".into());
    }
    let max_pixels = u64::from(max_megapixels) * 1_000_000;
    let mut limits = Limits::default();
    // RGBA8 at the largest accepted size, plus slack for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels * 4 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!(
            "{w}×{h} is over the limit of {max_megapixels} megapixels (raise max_megapixels in termtag.toml)"
        ));
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_garbage_files_fail_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("g.png");
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 0]))
            .save(&good)
            .unwrap();
        let img = open_upright(&good, 250).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48));
        let bytes = std::fs::read(&good).unwrap();
        let trunc = dir.path().join("t.png");
        std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
        assert!(open_upright(&trunc, 250).is_err());
        let junk = dir.path().join("j.jpg");
        std::fs::write(&junk, b"not an image").unwrap();
        assert!(open_upright(&junk, 250).is_err());
        let e = open_upright(&good, 0).unwrap_err();
        assert!(e.contains("64×48 is over the limit"), "{e}");
    }
}

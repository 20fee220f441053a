//! Decoding a picture for display or inference: EXIF orientation applied, memory bounded by
//! `image::Limits`, every failure a one-line reason.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// Why a picture cannot be shown or predicted on. The text is stored as the image's error and
/// shown next to its key, so it names the problem and, where one exists, the setting to change.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open: {0}")]
    Open(io::Error),
    #[error("cannot read: {0}")]
    Read(io::Error),
    #[error("not a recognised image format")]
    UnknownFormat,
    /// The decoder's own words (the `image` crate's or jpeg-decoder's).
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error(
        "{w}×{h} is over the limit of {max_megapixels} megapixels (raise max_megapixels in termtag.toml)"
    )]
    OverLimit { w: u32, h: u32, max_megapixels: u32 },
    #[error("truncated: the JPEG ends before its end marker (an interrupted copy or download?)")]
    Truncated,
    #[error("image has zero width or height")]
    ZeroSize,
    /// Scaling to the model's input (fast_image_resize's words).
    #[error("resize: {0}")]
    Resize(String),
}

impl DecodeError {
    pub fn decode(e: impl std::fmt::Display) -> DecodeError {
        DecodeError::Decode(e.to_string())
    }

    /// Refuses a `w`×`h` image over `max_megapixels` (before any pixel is decoded).
    pub fn check_size(w: u32, h: u32, max_megapixels: u32) -> Result<(), DecodeError> {
        if u64::from(w) * u64::from(h) > u64::from(max_megapixels) * 1_000_000 {
            return Err(DecodeError::OverLimit {
                w,
                h,
                max_megapixels,
            });
        }
        Ok(())
    }
}

/// Decodes `path` upright. Images over `max_megapixels` are refused before any pixel is decoded.
pub fn open_upright(path: &Path, max_megapixels: u32) -> Result<DynamicImage, DecodeError> {
    let file = File::open(path).map_err(DecodeError::Open)?;
    upright_from(BufReader::new(file), max_megapixels)
}

/// [`open_upright`] for bytes already read (or any seekable reader).
pub fn upright_from(
    mut reader: impl std::io::BufRead + std::io::Seek,
    max_megapixels: u32,
) -> Result<DynamicImage, DecodeError> {
    check_complete(&mut reader)?;
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(DecodeError::Read)?;
    if reader.format().is_none() {
        return Err(DecodeError::UnknownFormat);
    }
    let max_pixels = u64::from(max_megapixels) * 1_000_000;
    let mut limits = Limits::default();
    // RGBA8 at the largest accepted size, plus slack for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels * 4 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(DecodeError::decode)?;
    let (w, h) = decoder.dimensions();
    DecodeError::check_size(w, h, max_megapixels)?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(DecodeError::decode)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// The reason a file is cut short, if it is: a JPEG that never reaches its end marker decodes
/// without error as a few rows over grey, so the decoder alone cannot tell. Leaves `r` at the start.
pub fn check_complete<R: Read + Seek>(r: &mut R) -> Result<(), DecodeError> {
    let cut = jpeg_cut_short(r).map_err(DecodeError::Read)?;
    r.rewind().map_err(DecodeError::Read)?;
    if cut {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

/// Whether `r` is a JPEG without its end-of-image marker. A whole file costs two small reads
/// (its start and its tail); only a file that does not end in the marker (trailing data, or cut
/// short) is walked segment by segment, skipping segments by their length so that the end marker
/// of an EXIF thumbnail is not taken for the image's own.
fn jpeg_cut_short<R: Read + Seek>(r: &mut R) -> io::Result<bool> {
    r.rewind()?;
    let mut soi = [0u8; 2];
    if r.read_exact(&mut soi).is_err() || soi != [0xFF, 0xD8] {
        return Ok(false);
    }
    let len = r.seek(SeekFrom::End(0))?;
    let tail_len = len.min(256);
    r.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(256);
    r.take(tail_len).read_to_end(&mut tail)?;
    // Some writers pad after the marker.
    while tail
        .last()
        .is_some_and(|&b| b == 0 || b.is_ascii_whitespace())
    {
        tail.pop();
    }
    if tail.ends_with(&[0xFF, 0xD9]) {
        return Ok(false);
    }
    r.seek(SeekFrom::Start(2))?;
    Ok(!walk_to_eoi(&mut BufReader::new(r))?)
}

/// Follows the JPEG's segments and entropy-coded data; true when the end marker is reached.
fn walk_to_eoi(r: &mut impl Read) -> io::Result<bool> {
    let mut byte = || -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        match r.read(&mut b)? {
            0 => Ok(None),
            _ => Ok(Some(b[0])),
        }
    };
    let mut in_scan = false;
    loop {
        let Some(b) = byte()? else { return Ok(false) };
        if b != 0xFF {
            if in_scan {
                continue;
            }
            return Ok(false); // not a marker where one must be: damaged
        }
        let mut m = 0xFF;
        while m == 0xFF {
            let Some(n) = byte()? else { return Ok(false) };
            m = n;
        }
        match m {
            0x00 | 0xD0..=0xD7 if in_scan => continue, // stuffed byte, restart marker
            0xD9 => return Ok(true),
            0x01 | 0xD0..=0xD7 => continue, // markers without a length
            _ => {}
        }
        let (Some(hi), Some(lo)) = (byte()?, byte()?) else {
            return Ok(false);
        };
        let seg = (usize::from(hi) << 8 | usize::from(lo)).saturating_sub(2);
        for _ in 0..seg {
            if byte()?.is_none() {
                return Ok(false);
            }
        }
        in_scan = m == 0xDA;
    }
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
        let e = open_upright(&good, 0).unwrap_err().to_string();
        assert!(e.contains("64×48 is over the limit"), "{e}");
    }

    fn photo_jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_fn(320, 240, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 3 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let mut jpeg = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        jpeg
    }

    #[test]
    fn a_jpeg_cut_short_is_refused_and_trailing_data_is_not() {
        let jpeg = photo_jpeg();
        assert!(jpeg.len() > 3000);
        let ok = |b: &[u8]| upright_from(std::io::Cursor::new(b), 250);
        assert!(ok(&jpeg).is_ok());
        let e = ok(&jpeg[..3000]).unwrap_err().to_string();
        assert!(e.starts_with("truncated:"), "{e}");
        // Cut anywhere after the header: still caught.
        for cut in [jpeg.len() - 2, jpeg.len() - 1, jpeg.len() / 2] {
            assert!(ok(&jpeg[..cut]).is_err(), "cut at {cut}");
        }
        // Data after the end marker (motion photos append a video) and zero padding are whole.
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"ftypmp42 some appended video bytes");
        assert!(ok(&trailing).is_ok());
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 100]);
        assert!(ok(&padded).is_ok());
        // A thumbnail's end marker inside APP1 does not count for the image's: cut after it.
        let mut with_thumb = jpeg[..2].to_vec();
        let thumb = photo_jpeg();
        with_thumb.extend_from_slice(&[0xFF, 0xE1]);
        with_thumb.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        with_thumb.extend_from_slice(&thumb);
        with_thumb.extend_from_slice(&jpeg[2..]);
        assert!(ok(&with_thumb).is_ok());
        let mut cut = with_thumb[..thumb.len() + 600].to_vec();
        cut.extend_from_slice(b"trailing junk");
        assert!(ok(&cut).is_err());
    }
}

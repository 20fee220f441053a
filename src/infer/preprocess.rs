//! Image → input tensor: decode with EXIF orientation and allocation limits, resize (stretch or
//! letterbox) with fast_image_resize, pack as uint8 or float, NHWC or NCHW. Runs on worker
//! threads, never on the inference thread.

use std::io::Cursor;
use std::path::Path;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::config::Normalize;
use crate::decode::DecodeError;
use crate::model::BBox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    U8,
    F32,
}

/// How an image is brought to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Scale each axis to the input size.
    Stretch,
    /// Keep the aspect ratio, centre, pad with this grey level (YOLO).
    Letterbox(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed {
        w: u32,
        h: u32,
    },
    /// The model takes any size; the longer side is capped (0: no cap).
    Any {
        max_side: u32,
    },
}

/// What one model input wants.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub elem: Elem,
    pub layout: Layout,
    pub size: Size,
    pub fit: Fit,
    pub normalize: Normalize,
    /// Images per inference call.
    pub batch: usize,
    /// The batch dimension is fixed: a short last batch is padded to `batch` images.
    pub fixed_batch: bool,
}

/// Maps input-tensor pixels back to the image: `x_img = (x_in - pad_x) / scale_x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub src_w: u32,
    pub src_h: u32,
    pub in_w: u32,
    pub in_h: u32,
    pub scale_x: f64,
    pub scale_y: f64,
    pub pad_x: f64,
    pub pad_y: f64,
}

impl Geometry {
    pub fn new(src_w: u32, src_h: u32, size: Size, fit: Fit) -> Geometry {
        let (sw, sh) = (f64::from(src_w.max(1)), f64::from(src_h.max(1)));
        let (in_w, in_h) = match size {
            Size::Fixed { w, h } => (w, h),
            Size::Any { max_side } => {
                let long = src_w.max(src_h);
                if max_side == 0 || long <= max_side {
                    (src_w, src_h)
                } else {
                    let s = f64::from(max_side) / f64::from(long);
                    (
                        ((sw * s).round() as u32).max(1),
                        ((sh * s).round() as u32).max(1),
                    )
                }
            }
        };
        let (iw, ih) = (f64::from(in_w), f64::from(in_h));
        match fit {
            Fit::Letterbox(_) if matches!(size, Size::Fixed { .. }) => {
                let s = (iw / sw).min(ih / sh);
                let (nw, nh) = ((sw * s).round(), (sh * s).round());
                Geometry {
                    src_w,
                    src_h,
                    in_w,
                    in_h,
                    scale_x: nw / sw,
                    scale_y: nh / sh,
                    pad_x: ((iw - nw) / 2.0).floor(),
                    pad_y: ((ih - nh) / 2.0).floor(),
                }
            }
            _ => Geometry {
                src_w,
                src_h,
                in_w,
                in_h,
                scale_x: iw / sw,
                scale_y: ih / sh,
                pad_x: 0.0,
                pad_y: 0.0,
            },
        }
    }

    /// Size of the resized image inside the input (smaller than the input when letterboxed).
    fn content(&self) -> (u32, u32) {
        (
            ((f64::from(self.src_w) * self.scale_x).round() as u32).clamp(1, self.in_w),
            ((f64::from(self.src_h) * self.scale_y).round() as u32).clamp(1, self.in_h),
        )
    }

    /// A box in input-tensor pixels as a normalised box in the image; `None` when nothing of it
    /// lies inside the image.
    pub fn input_box(&self, x0: f64, y0: f64, x1: f64, y1: f64) -> Option<BBox> {
        let w = f64::from(self.src_w.max(1)) * self.scale_x;
        let h = f64::from(self.src_h.max(1)) * self.scale_y;
        BBox::clipped(
            (x0 - self.pad_x) / w,
            (y0 - self.pad_y) / h,
            (x1 - self.pad_x) / w,
            (y1 - self.pad_y) / h,
        )
        .ok()
        .map(|(b, _)| b)
    }

    /// A box normalised to the input tensor (TF Object Detection API) as one in the image.
    pub fn input_normalised_box(&self, x0: f64, y0: f64, x1: f64, y1: f64) -> Option<BBox> {
        let (iw, ih) = (f64::from(self.in_w), f64::from(self.in_h));
        self.input_box(x0 * iw, y0 * ih, x1 * iw, y1 * ih)
    }
}

/// Pixels packed for one image.
#[derive(Debug, Clone, PartialEq)]
pub enum InputData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

impl InputData {
    pub fn len(&self) -> usize {
        match self {
            InputData::U8(v) => v.len(),
            InputData::F32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends another image's data (same element type) for a batch.
    pub fn extend(&mut self, other: &InputData) {
        match (self, other) {
            (InputData::U8(a), InputData::U8(b)) => a.extend_from_slice(b),
            (InputData::F32(a), InputData::F32(b)) => a.extend_from_slice(b),
            _ => {}
        }
    }
}

/// One image ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub data: InputData,
    pub geom: Geometry,
}

/// Decodes an image file upright (EXIF orientation applied) as RGB, refusing images whose
/// decoded size would pass `max_megapixels`. A JPEG much larger than needed (`min_long_side`,
/// 0 = full size) is decoded at 1/4 or 1/8 scale in the DCT domain: most of a 12 MP decode is
/// work for pixels the model never sees.
pub fn decode_image(
    path: &Path,
    max_megapixels: u32,
    min_long_side: u32,
) -> Result<RgbImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(DecodeError::Open)?;
    decode_bytes(&bytes, max_megapixels, min_long_side).map(|(img, _)| img)
}

/// A decoded image and the upright pixel size of the full image.
pub type Decoded = (RgbImage, (u32, u32));

/// [`decode_image`] of an image already in memory (a downloaded blob), with the upright size
/// of the full image (the decoded one is smaller when a JPEG was decoded scaled).
pub fn decode_bytes(
    bytes: &[u8],
    max_megapixels: u32,
    min_long_side: u32,
) -> Result<Decoded, DecodeError> {
    crate::decode::check_complete(&mut Cursor::new(bytes))?;
    if min_long_side > 0
        && bytes.starts_with(&[0xFF, 0xD8])
        && let Some(scaled) = decode_jpeg_scaled(bytes, max_megapixels, min_long_side)?
    {
        return Ok(scaled);
    }
    let img = match crate::decode::upright_from(Cursor::new(bytes), max_megapixels)? {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    let size = img.dimensions();
    Ok((img, size))
}

/// A JPEG decoded at the smallest DCT scale whose longer side still reaches `min_long_side`,
/// with the full image's upright size; `None` when scaling would gain nothing or the colour
/// model needs the general decoder.
fn decode_jpeg_scaled(
    bytes: &[u8],
    max_megapixels: u32,
    min_long_side: u32,
) -> Result<Option<Decoded>, DecodeError> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.read_info().map_err(DecodeError::decode)?;
    let Some(info) = d.info() else {
        return Ok(None);
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    DecodeError::check_size(w, h, max_megapixels)?;
    let long = w.max(h);
    // Only from 1/4 scale down: jpeg-decoder's entropy decoding is slower than zune-jpeg's
    // (the general decoder), so at 1/2 scale the full decode wins (2 MP JPEG to 640: 80 against
    // 47 images/s per core, `cargo bench --bench predict -- capacity`); at 1/4 scaling wins 2×.
    if long < 4 * min_long_side || info.pixel_format != jpeg_decoder::PixelFormat::RGB24 {
        return Ok(None);
    }
    let want = |v: u32| (u64::from(v) * u64::from(min_long_side)).div_ceil(u64::from(long)) as u16;
    let (sw, sh) = d.scale(want(w), want(h)).map_err(DecodeError::decode)?;
    let pixels = d.decode().map_err(DecodeError::decode)?;
    let Some(rgb) = RgbImage::from_raw(u32::from(sw), u32::from(sh), pixels) else {
        return Ok(None);
    };
    // The orientation from the EXIF block, read by the general decoder's header parser.
    let orientation = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Jpeg)
        .into_decoder()
        .ok()
        .and_then(|mut dec| dec.orientation().ok())
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let (sw, sh) = rgb.dimensions();
    let mut img = DynamicImage::ImageRgb8(rgb);
    img.apply_orientation(orientation);
    // A quarter turn swaps the sides of the full image as it swapped the decoded one's.
    let size = if (img.width(), img.height()) == (sw, sh) {
        (w, h)
    } else {
        (h, w)
    };
    Ok(Some((
        match img {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.to_rgb8(),
        },
        size,
    )))
}

/// The longer side the decoded image needs to have for `spec` (0: the full image).
pub fn needed_long_side(spec: &InputSpec) -> u32 {
    match spec.size {
        Size::Fixed { w, h } => w.max(h),
        Size::Any { max_side } => max_side,
    }
}

/// Resizes and packs `img` as `spec` wants it.
pub fn prepare(
    img: &RgbImage,
    spec: &InputSpec,
    resizer: &mut Resizer,
) -> Result<Prepared, DecodeError> {
    let geom = Geometry::new(img.width(), img.height(), spec.size, spec.fit);
    let (cw, ch) = geom.content();
    let resized: std::borrow::Cow<'_, [u8]> = if (cw, ch) == (img.width(), img.height()) {
        std::borrow::Cow::Borrowed(img.as_raw().as_slice())
    } else {
        let src = images::ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
            .map_err(|e| DecodeError::Resize(e.to_string()))?;
        let mut dst = images::Image::new(cw, ch, PixelType::U8x3);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        resizer
            .resize(&src, &mut dst, &opts)
            .map_err(|e| DecodeError::Resize(e.to_string()))?;
        std::borrow::Cow::Owned(dst.into_vec())
    };
    let (iw, ih) = (geom.in_w as usize, geom.in_h as usize);
    let (cw, ch) = (cw as usize, ch as usize);
    let (px, py) = (geom.pad_x as usize, geom.pad_y as usize);
    let pad = match spec.fit {
        Fit::Letterbox(v) => v,
        Fit::Stretch => 0,
    };
    // The image at its place in the input, HWC.
    let hwc: std::borrow::Cow<'_, [u8]> = if (cw, ch) == (iw, ih) {
        resized
    } else {
        let mut canvas = vec![pad; iw * ih * 3];
        for y in 0..ch {
            let dst = ((y + py) * iw + px) * 3;
            canvas[dst..dst + cw * 3].copy_from_slice(&resized[y * cw * 3..(y + 1) * cw * 3]);
        }
        std::borrow::Cow::Owned(canvas)
    };
    let data = match spec.elem {
        Elem::U8 => match spec.layout {
            Layout::Nhwc => InputData::U8(hwc.into_owned()),
            Layout::Nchw => {
                let plane = iw * ih;
                let mut out = vec![0u8; plane * 3];
                for (i, px) in hwc.chunks_exact(3).enumerate() {
                    out[i] = px[0];
                    out[plane + i] = px[1];
                    out[2 * plane + i] = px[2];
                }
                InputData::U8(out)
            }
        },
        Elem::F32 => {
            let (scale, mean, std) = match spec.normalize {
                Normalize::Raw => (1.0, [0.0; 3], [1.0; 3]),
                Normalize::Unit => (1.0 / 255.0, [0.0; 3], [1.0; 3]),
                Normalize::Imagenet => (1.0 / 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            };
            // One lookup table per channel: 256 values instead of a multiply-add a pixel.
            let lut: Vec<[f32; 256]> = (0..3)
                .map(|c| {
                    let mut t = [0f32; 256];
                    for (v, slot) in t.iter_mut().enumerate() {
                        *slot = ((v as f32) * scale - mean[c]) / std[c];
                    }
                    t
                })
                .collect();
            let plane = iw * ih;
            let mut out = vec![0f32; plane * 3];
            match spec.layout {
                Layout::Nhwc => {
                    for (i, v) in hwc.iter().enumerate() {
                        out[i] = lut[i % 3][*v as usize];
                    }
                }
                Layout::Nchw => {
                    for (i, px) in hwc.chunks_exact(3).enumerate() {
                        out[i] = lut[0][px[0] as usize];
                        out[plane + i] = lut[1][px[1] as usize];
                        out[2 * plane + i] = lut[2][px[2] as usize];
                    }
                }
            }
            InputData::F32(out)
        }
    };
    Ok(Prepared { data, geom })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_geometry_round_trips() {
        // 200×100 into 64×64: scale 0.32, content 64×32, padded 16 rows above.
        let g = Geometry::new(200, 100, Size::Fixed { w: 64, h: 64 }, Fit::Letterbox(114));
        assert_eq!((g.pad_x, g.pad_y), (0.0, 16.0));
        assert_eq!(g.content(), (64, 32));
        let b = g.input_box(0.0, 16.0, 32.0, 32.0).unwrap();
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (0.0, 0.0, 0.5, 0.5));
    }

    #[test]
    fn any_size_caps_the_long_side() {
        let g = Geometry::new(4000, 3000, Size::Any { max_side: 1000 }, Fit::Stretch);
        assert_eq!((g.in_w, g.in_h), (1000, 750));
        let g = Geometry::new(400, 300, Size::Any { max_side: 1000 }, Fit::Stretch);
        assert_eq!((g.in_w, g.in_h), (400, 300));
    }

    #[test]
    fn packs_nchw_float_and_pads() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 255, 0, 255]));
        let spec = InputSpec {
            name: "x".into(),
            elem: Elem::F32,
            layout: Layout::Nchw,
            size: Size::Fixed { w: 2, h: 2 },
            fit: Fit::Letterbox(0),
            normalize: Normalize::Unit,
            batch: 1,
            fixed_batch: true,
        };
        let p = prepare(&img, &spec, &mut Resizer::new()).unwrap();
        // Content 2×1 centred: pad_y = floor(0.5) = 0, so row 0 is the image and row 1 padding.
        let InputData::F32(v) = p.data else { panic!() };
        assert_eq!(v.len(), 12);
        assert_eq!(&v[0..4], &[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(&v[8..12], &[1.0, 1.0, 0.0, 0.0]);
    }
}

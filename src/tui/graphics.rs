//! Pictures for the review screen: protocol choice, and a worker that decodes (EXIF-corrected,
//! memory-limited), crops to the zoom, resizes to the canvas, draws the box overlay into the pixels
//! for kitty / sixel / iTerm2, and encodes. The UI thread only ever renders finished results;
//! results carrying an old generation are dropped by the app.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use fast_image_resize as fir;
use fast_image_resize::IntoImageView;
use image::{DynamicImage, Rgba, RgbaImage};
use ratatui::layout::Rect;
use ratatui_image::Resize;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;

use crate::model::BBox;

/// `--graphics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum GraphicsChoice {
    /// Ask the terminal; halfblocks when it answers nothing useful.
    #[default]
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    Halfblocks,
}

/// Picks the protocol. Must run after entering the alternate screen and before the input thread
/// starts, since the terminal's answers arrive on stdin.
pub fn picker(choice: GraphicsChoice) -> Picker {
    if choice == GraphicsChoice::Halfblocks {
        return Picker::halfblocks();
    }
    let started = std::time::Instant::now();
    let queried = Picker::from_query_stdio();
    tracing::info!(
        ok = queried.is_ok(),
        ms = started.elapsed().as_millis() as u64,
        "terminal graphics query"
    );
    let mut p = queried.unwrap_or_else(|_| Picker::halfblocks());
    match choice {
        GraphicsChoice::Kitty => p.set_protocol_type(ProtocolType::Kitty),
        GraphicsChoice::Sixel => p.set_protocol_type(ProtocolType::Sixel),
        GraphicsChoice::Iterm2 => p.set_protocol_type(ProtocolType::Iterm2),
        GraphicsChoice::Auto | GraphicsChoice::Halfblocks => {}
    }
    p
}

pub fn protocol_name(p: ProtocolType) -> &'static str {
    match p {
        ProtocolType::Halfblocks => "halfblocks",
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
    }
}

/// A box to draw into the pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayBox {
    pub bbox: BBox,
    pub rgb: [u8; 3],
    pub proposal: bool,
    pub selected: bool,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub generation: u64,
    pub id: i64,
    pub path: PathBuf,
    /// Canvas size in cells.
    pub cells: (u16, u16),
    pub zoom: Option<BBox>,
    /// Boxes to draw into the pixels (empty for halfblocks, where they are cell widgets).
    pub overlay: Vec<OverlayBox>,
    /// Crosshair position while drawing a box.
    pub crosshair: Option<(f64, f64)>,
}

pub enum Request {
    Render(Job),
    Prefetch(Vec<(i64, PathBuf)>),
    /// Gallery thumbnails: id, file, size in cells.
    Thumbs(Vec<(i64, PathBuf, (u16, u16))>),
}

/// A finished picture, ready to render.
pub struct Picture {
    pub generation: u64,
    pub id: i64,
    pub protocol: Protocol,
    /// What was asked for; the app compares it to decide whether to ask again.
    pub job_cells: (u16, u16),
}

pub enum Reply {
    Ready(Picture),
    /// The file could not be decoded: the image is broken.
    Failed {
        id: i64,
        error: String,
    },
    /// The picture could not be drawn at this size or zoom; the image itself is fine.
    Trouble {
        error: String,
    },
    Thumb {
        id: i64,
        protocol: Protocol,
    },
}

/// Decoded images kept for quick back-and-forth and for prefetching.
struct Cache {
    entries: VecDeque<(i64, Arc<DynamicImage>)>,
    capacity: usize,
}

impl Cache {
    fn get(&mut self, id: i64) -> Option<Arc<DynamicImage>> {
        let pos = self.entries.iter().position(|(k, _)| *k == id)?;
        let entry = self.entries.remove(pos)?;
        let img = entry.1.clone();
        self.entries.push_back(entry);
        Some(img)
    }
    fn put(&mut self, id: i64, img: Arc<DynamicImage>) {
        self.entries.retain(|(k, _)| *k != id);
        self.entries.push_back((id, img));
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }
}

/// Runs until the request channel closes. Only the newest render request is worked on: older
/// ones still queued are skipped.
pub fn worker(picker: Picker, max_megapixels: u32, rx: Receiver<Request>, tx: impl Fn(Reply)) {
    let mut cache = Cache {
        entries: VecDeque::new(),
        capacity: 6,
    };
    let mut prefetch: VecDeque<(i64, PathBuf)> = VecDeque::new();
    let mut thumbs: VecDeque<(i64, PathBuf, (u16, u16))> = VecDeque::new();
    // The last display-size picture: a box edit re-draws only the overlay on it.
    type FitKey = (i64, (u16, u16), Option<[u64; 4]>);
    let mut fitted: Option<(FitKey, RgbaImage)> = None;
    loop {
        // Drain what is queued; keep the newest render.
        let first = if prefetch.is_empty() && thumbs.is_empty() {
            match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => return,
            }
        } else {
            rx.try_recv().ok()
        };
        let mut render = None;
        for req in first.into_iter().chain(rx.try_iter()) {
            match req {
                Request::Render(job) => render = Some(job),
                Request::Prefetch(ids) => prefetch.extend(ids),
                // A new page replaces the thumbnails still waiting.
                Request::Thumbs(list) => thumbs = list.into(),
            }
        }
        if let Some(job) = render {
            let key: FitKey = (
                job.id,
                job.cells,
                job.zoom.map(|z| [z.x0, z.y0, z.x1, z.y1].map(f64::to_bits)),
            );
            let base = match &fitted {
                Some((k, img)) if *k == key => Ok(img),
                _ => match decoded(&mut cache, job.id, &job.path, max_megapixels) {
                    Ok(img) => fit(&picker, &img, job.cells, job.zoom)
                        .map(|img| &fitted.insert((key, img)).1)
                        .map_err(|error| Reply::Trouble { error }),
                    Err(error) => Err(Reply::Failed { id: job.id, error }),
                },
            };
            let reply = match base {
                Ok(b) => match finish(&picker, b, &job) {
                    Ok(protocol) => Reply::Ready(Picture {
                        generation: job.generation,
                        id: job.id,
                        protocol,
                        job_cells: job.cells,
                    }),
                    Err(error) => Reply::Trouble { error },
                },
                Err(reply) => reply,
            };
            tx(reply);
        } else if let Some((id, path, cells)) = thumbs.pop_front() {
            // Thumbnails are not cached as decoded images: a page of them would evict the
            // pictures being reviewed.
            let thumb = crate::decode::open_upright(&path, max_megapixels).and_then(|img| {
                let small = fit(&picker, &img, cells, None)?;
                let job = Job {
                    generation: 0,
                    id,
                    path,
                    cells,
                    zoom: None,
                    overlay: Vec::new(),
                    crosshair: None,
                };
                finish(&picker, &small, &job)
            });
            if let Ok(protocol) = thumb {
                tx(Reply::Thumb { id, protocol });
            }
        } else if let Some((id, path)) = prefetch.pop_front() {
            // Failures surface when the image is shown.
            let _ = decoded(&mut cache, id, &path, max_megapixels);
        }
    }
}

fn decoded(
    cache: &mut Cache,
    id: i64,
    path: &std::path::Path,
    max_megapixels: u32,
) -> Result<Arc<DynamicImage>, String> {
    if let Some(img) = cache.get(id) {
        return Ok(img);
    }
    let img = Arc::new(crate::decode::open_upright(path, max_megapixels)?);
    cache.put(id, img.clone());
    Ok(img)
}

/// Crops to the zoom, fits the canvas, draws the overlay and encodes for the terminal.
pub fn compose(picker: &Picker, img: &DynamicImage, job: &Job) -> Result<Protocol, String> {
    let fitted = fit(picker, img, job.cells, job.zoom)?;
    finish(picker, &fitted, job)
}

/// The display-size picture: the zoomed region of `img`, fitted to `cells` at the terminal's
/// font size. This is the expensive step, so the worker keeps the last one.
pub fn fit(
    picker: &Picker,
    img: &DynamicImage,
    (cols, rows): (u16, u16),
    zoom: Option<BBox>,
) -> Result<RgbaImage, String> {
    let (fw, fh) = picker.font_size();
    if cols == 0 || rows == 0 {
        return Err("no room to draw the picture".into());
    }
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let z = zoom.unwrap_or(BBox {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    });
    // The visible region in source pixels, at least one pixel.
    let (cw, ch) = (
        (z.width() * w).clamp(1.0, w),
        (z.height() * h).clamp(1.0, h),
    );
    let (left, top) = ((z.x0 * w).clamp(0.0, w - cw), (z.y0 * h).clamp(0.0, h - ch));
    let max_w = f64::from(u32::from(cols) * u32::from(fw));
    let max_h = f64::from(u32::from(rows) * u32::from(fh));
    // Fit the canvas, enlarging small pictures and zoomed regions too.
    let scale = (max_w / cw).min(max_h / ch);
    let dw = ((cw * scale).round() as u32).max(1);
    let dh = ((ch * scale).round() as u32).max(1);
    // Resize in the decoded pixel layout (a JPEG is RGB8) and convert only the small result.
    let converted;
    let src = match img {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => img,
        other => {
            converted = DynamicImage::ImageRgba8(other.to_rgba8());
            &converted
        }
    };
    let pixel_type = src.pixel_type().ok_or("resize: unsupported pixel type")?;
    let mut dst = fir::images::Image::new(dw, dh, pixel_type);
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear))
        .crop(left, top, cw, ch);
    fir::Resizer::new()
        .resize(src, &mut dst, &options)
        .map_err(|e| format!("resize: {e}"))?;
    let buf = dst.into_vec();
    let out = if pixel_type == fir::PixelType::U8x3 {
        image::RgbImage::from_raw(dw, dh, buf).map(|rgb| DynamicImage::ImageRgb8(rgb).to_rgba8())
    } else {
        RgbaImage::from_raw(dw, dh, buf)
    };
    out.ok_or_else(|| "resize: bad buffer".to_string())
}

/// Draws the overlay into a copy of the fitted picture and encodes it for the terminal.
pub fn finish(picker: &Picker, fitted: &RgbaImage, job: &Job) -> Result<Protocol, String> {
    let mut rgba = fitted.clone();
    let zoom = job.zoom.unwrap_or(BBox {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    });
    for b in &job.overlay {
        draw_box(&mut rgba, &zoom, b);
    }
    if let Some(c) = job.crosshair {
        draw_crosshair(&mut rgba, &zoom, c);
    }
    let area = Rect::new(0, 0, job.cells.0, job.cells.1);
    picker
        .new_protocol(DynamicImage::ImageRgba8(rgba), area, Resize::Fit(None))
        .map_err(|e| e.to_string())
}

fn to_px(v: f64, lo: f64, span: f64, size: u32) -> i64 {
    (((v - lo) / span) * f64::from(size)).round() as i64
}

/// Solid lines for labels, dashed for proposals, thicker when selected, plus a filled corner
/// tag so kind and selection read without colour.
fn draw_box(img: &mut RgbaImage, zoom: &BBox, b: &OverlayBox) {
    let (w, h) = (img.width(), img.height());
    let x0 = to_px(b.bbox.x0, zoom.x0, zoom.width(), w);
    let x1 = to_px(b.bbox.x1, zoom.x0, zoom.width(), w) - 1;
    let y0 = to_px(b.bbox.y0, zoom.y0, zoom.height(), h);
    let y1 = to_px(b.bbox.y1, zoom.y0, zoom.height(), h) - 1;
    let thick = if b.selected { 4 } else { 2 };
    let color = Rgba([b.rgb[0], b.rgb[1], b.rgb[2], 255]);
    let mut put = |x: i64, y: i64, along: i64| {
        if b.proposal && (along / 8) % 2 == 1 {
            return;
        }
        if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
            img.put_pixel(x as u32, y as u32, color);
        }
    };
    for t in 0..thick {
        for x in x0..=x1 {
            put(x, y0 + t, x - x0);
            put(x, y1 - t, x - x0);
        }
        for y in y0..=y1 {
            put(x0 + t, y, y - y0);
            put(x1 - t, y, y - y0);
        }
    }
    let tag = if b.selected { 12 } else { 7 };
    for y in y0..y0 + tag {
        for x in x0..x0 + tag {
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                img.put_pixel(x as u32, y as u32, color);
            }
        }
    }
}

fn draw_crosshair(img: &mut RgbaImage, zoom: &BBox, (cx, cy): (f64, f64)) {
    let (w, h) = (img.width(), img.height());
    let x = to_px(cx, zoom.x0, zoom.width(), w);
    let y = to_px(cy, zoom.y0, zoom.height(), h);
    let white = Rgba([255, 255, 255, 255]);
    for i in 0..i64::from(w) {
        if y >= 0 && (y as u32) < h && (i / 4) % 2 == 0 {
            img.put_pixel(i as u32, y as u32, white);
        }
    }
    for j in 0..i64::from(h) {
        if x >= 0 && (x as u32) < w && (j / 4) % 2 == 0 {
            img.put_pixel(x as u32, j as u32, white);
        }
    }
}

/// Spawns the worker thread; replies go through `send`.
pub fn spawn(
    picker: Picker,
    max_megapixels: u32,
    send: impl Fn(Reply) + Send + 'static,
) -> Sender<Request> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("termtag-graphics".into())
        .spawn(move || worker(picker, max_megapixels, rx, send))
        .expect("spawn graphics worker");
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_marks_labels_solid_and_proposals_dashed() {
        let mut img = RgbaImage::from_pixel(100, 100, Rgba([0, 0, 0, 255]));
        let full = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 1.0,
            y1: 1.0,
        };
        let b = |proposal| OverlayBox {
            bbox: BBox {
                x0: 0.1,
                y0: 0.1,
                x1: 0.9,
                y1: 0.5,
            },
            rgb: [255, 0, 0],
            proposal,
            selected: false,
        };
        draw_box(&mut img, &full, &b(false));
        let red = Rgba([255, 0, 0, 255]);
        assert!(
            (10..90).all(|x| *img.get_pixel(x, 10) == red),
            "solid top edge"
        );
        assert_eq!(
            *img.get_pixel(50, 30),
            Rgba([0, 0, 0, 255]),
            "inside untouched"
        );
        let mut img = RgbaImage::from_pixel(100, 100, Rgba([0, 0, 0, 255]));
        draw_box(&mut img, &full, &b(true));
        let gaps = (20..90).filter(|&x| *img.get_pixel(x, 10) != red).count();
        assert!(gaps > 20, "dashed top edge has gaps: {gaps}");
    }

    #[test]
    fn compose_fits_the_canvas_and_honours_zoom() {
        let picker = Picker::halfblocks();
        let img =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(400, 200, image::Rgb([9, 9, 9])));
        let job = Job {
            generation: 1,
            id: 1,
            path: PathBuf::new(),
            cells: (40, 20),
            zoom: None,
            overlay: Vec::new(),
            crosshair: None,
        };
        let p = compose(&picker, &img, &job).unwrap();
        let a = p.area();
        assert!(a.width <= 40 && a.height <= 20, "{a:?}");
        assert_eq!(a.width, 40, "a wide image fills the width");
        let zoomed = Job {
            zoom: Some(BBox {
                x0: 0.0,
                y0: 0.0,
                x1: 0.25,
                y1: 1.0,
            }),
            ..job
        };
        let p = compose(&picker, &img, &zoomed).unwrap();
        assert!(
            p.area().height >= 19,
            "a tall crop fills the height: {:?}",
            p.area()
        );
    }
}

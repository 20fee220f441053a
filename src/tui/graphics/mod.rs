//! Pictures for the review screen. Detection picks the protocol (asking the terminal); a worker
//! decodes (EXIF-corrected, memory-limited), crops to the zoom, resizes to the canvas and hands
//! the display-size picture to the protocol's driver, which encodes only what the terminal does
//! not show yet. The UI thread writes the finished bytes with the frame, nothing more.
//!
//! One module per protocol behind [`Driver`]: [`kitty`] (pictures kept in the terminal, overlay
//! as a second image), [`sixel`] and [`iterm2`] (dirty cell strips, [`tiles`]); halfblocks are
//! cells drawn by ratatui-image, as are gallery thumbnails.

pub mod iterm2;
pub mod kitty;
pub mod overlay;
pub mod sixel;
pub mod tiles;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use fast_image_resize as fir;
use fast_image_resize::IntoImageView;
use image::{DynamicImage, RgbaImage};
use ratatui::layout::Rect;
use ratatui_image::Resize;
use ratatui_image::picker::{Capability, Picker, ProtocolType};
use ratatui_image::protocol::Protocol;

use crate::decode::DecodeError;
use crate::model::BBox;
use crate::thumbs::ThumbCache;

pub use overlay::{Overlay, OverlayBox};

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

/// The protocol pictures are drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Halfblocks,
    Kitty,
    Sixel,
    Iterm2,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Halfblocks => "halfblocks",
            Kind::Kitty => "kitty",
            Kind::Sixel => "sixel",
            Kind::Iterm2 => "iterm2",
        }
    }

    fn of(p: ProtocolType) -> Kind {
        match p {
            ProtocolType::Halfblocks => Kind::Halfblocks,
            ProtocolType::Sixel => Kind::Sixel,
            ProtocolType::Kitty => Kind::Kitty,
            ProtocolType::Iterm2 => Kind::Iterm2,
        }
    }
}

/// What the review screen draws with, and why.
#[derive(Clone)]
pub struct Setup {
    /// Halfblocks and thumbnails.
    pub picker: Picker,
    pub kind: Kind,
    /// Cell size in pixels, as the terminal reported it.
    pub cell: (u16, u16),
    /// Inside tmux: kitty and iTerm2 are wrapped for passthrough, kitty uses placeholders.
    pub tmux: bool,
    /// The terminal's answer, the flag, tmux.
    pub why: String,
    /// For the status line when the protocol asked for cannot be used.
    pub warning: Option<String>,
}

impl Setup {
    pub fn halfblocks() -> Setup {
        let picker = Picker::halfblocks();
        Setup {
            cell: picker.font_size(),
            picker,
            kind: Kind::Halfblocks,
            tmux: false,
            why: "--graphics halfblocks".into(),
            warning: None,
        }
    }

    /// Boxes are drawn as cells over the picture (halfblocks, kitty placeholders in tmux).
    pub fn cell_overlay(&self) -> bool {
        self.kind == Kind::Halfblocks || (self.kind == Kind::Kitty && self.tmux)
    }

    /// The driver that writes pictures as bytes; none for halfblocks (cells).
    pub fn driver(&self) -> Option<Box<dyn Driver>> {
        match self.kind {
            Kind::Halfblocks => None,
            Kind::Kitty => Some(Box::new(kitty::Kitty::new(self.tmux, self.tmux))),
            Kind::Sixel => Some(Box::new(tiles::Tiled::new(sixel::Sixel))),
            Kind::Iterm2 => Some(Box::new(tiles::Tiled::new(iterm2::Iterm2 {
                tmux: self.tmux,
            }))),
        }
    }
}

/// Picks the protocol. Must run after entering the alternate screen and before the input thread
/// starts, since the terminal's answers arrive on stdin.
pub fn detect(choice: GraphicsChoice) -> Setup {
    if choice == GraphicsChoice::Halfblocks {
        return Setup::halfblocks();
    }
    let started = std::time::Instant::now();
    let queried = Picker::from_query_stdio();
    tracing::info!(
        ok = queried.is_ok(),
        ms = started.elapsed().as_millis() as u64,
        "terminal graphics query"
    );
    let answered = queried.is_ok();
    let mut picker = queried.unwrap_or_else(|_| Picker::halfblocks());
    let said: Vec<&str> = picker
        .capabilities()
        .iter()
        .filter_map(|c| match c {
            Capability::Kitty => Some("kitty"),
            Capability::Sixel => Some("sixel"),
            _ => None,
        })
        .collect();
    let (mut kind, mut why) = match choice {
        GraphicsChoice::Kitty => (Kind::Kitty, "--graphics kitty".to_string()),
        GraphicsChoice::Sixel => (Kind::Sixel, "--graphics sixel".to_string()),
        GraphicsChoice::Iterm2 => (Kind::Iterm2, "--graphics iterm2".to_string()),
        GraphicsChoice::Auto | GraphicsChoice::Halfblocks => {
            let kind = Kind::of(picker.protocol_type());
            let why = if !answered {
                "the terminal did not answer the graphics query".to_string()
            } else if said.is_empty() {
                format!(
                    "the terminal answered the query without kitty or sixel; {} by its name",
                    kind.name()
                )
            } else {
                format!(
                    "the terminal answered the query with {}",
                    said.join(" and ")
                )
            };
            (kind, why)
        }
    };
    let tmux = std::env::var_os("TMUX").is_some_and(|v| !v.is_empty());
    let mut warning = None;
    if tmux && matches!(kind, Kind::Kitty | Kind::Iterm2) {
        if passthrough_on() {
            why.push_str("; inside tmux with allow-passthrough on");
            if kind == Kind::Kitty {
                why.push_str(" (Unicode placeholders, boxes as cells)");
            }
        } else {
            let w = format!(
                "inside tmux with allow-passthrough off: {} pictures cannot reach the terminal, drawing halfblocks (`tmux set -g allow-passthrough on` to use {0})",
                kind.name()
            );
            why = w.clone();
            warning = Some(w);
            kind = Kind::Halfblocks;
        }
    } else if tmux && kind == Kind::Sixel {
        match sixel_in_tmux(&tmux_display("#{version}|#{sixel_support}")) {
            Ok(how) => why.push_str(&format!("; {how}")),
            Err(w) => {
                why = w.to_string();
                warning = Some(why.clone());
                kind = Kind::Halfblocks;
            }
        }
    } else if tmux {
        why.push_str("; inside tmux");
    }
    picker.set_protocol_type(match kind {
        Kind::Halfblocks => ProtocolType::Halfblocks,
        Kind::Kitty => ProtocolType::Kitty,
        Kind::Sixel => ProtocolType::Sixel,
        Kind::Iterm2 => ProtocolType::Iterm2,
    });
    Setup {
        cell: picker.font_size(),
        picker,
        kind,
        tmux,
        why,
        warning,
    }
}

/// Whether tmux passes escape sequences of this pane through to the terminal.
fn passthrough_on() -> bool {
    let v = tmux(&["show", "-Apv"], "allow-passthrough");
    // With -A an inherited value comes with a `*`.
    matches!(v.trim().trim_end_matches('*').trim(), "on" | "all")
}

/// A tmux format expanded for this pane.
fn tmux_display(format: &str) -> String {
    tmux(&["display", "-p"], format)
}

/// What `tmux ARGS [-t PANE] LAST` prints; empty when tmux does not answer.
fn tmux(args: &[&str], last: &str) -> String {
    let pane = std::env::var("TMUX_PANE").unwrap_or_default();
    let mut cmd = std::process::Command::new("tmux");
    cmd.args(args);
    if !pane.is_empty() {
        cmd.args(["-t", &pane]);
    }
    cmd.arg(last)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Sixel inside tmux, from tmux's answer to `#{version}|#{sixel_support}`: tmux 3.4 and later,
/// when built with sixel, keeps sixel pictures in the pane and draws them itself (`Ok`, how);
/// older tmux, or one built without it, drops them, and tmux cannot place a passed-through sixel
/// at a pane's cell, so halfblocks are drawn instead (`Err`, saying so).
pub fn sixel_in_tmux(answer: &str) -> Result<String, NoTmuxSixel> {
    let (version, support) = answer.split_once('|').unwrap_or((answer, ""));
    let version = crate::sanitize::for_terminal(version.trim());
    let version = if version.is_empty() {
        "(version unknown)".to_string()
    } else {
        version
    };
    if support.trim() == "1" {
        return Ok(format!("inside tmux {version}, which draws sixel itself"));
    }
    let why = if support.trim() == "0" {
        "built without sixel"
    } else {
        "sixel needs tmux 3.4 or later built with it"
    };
    Err(NoTmuxSixel { version, why })
}

/// This tmux drops sixel pictures; `version` is sanitised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "inside tmux {version} ({why}): drawing halfblocks; kitty or iTerm2 with `tmux set -g allow-passthrough on`, or sixel outside tmux, show real pixels"
)]
pub struct NoTmuxSixel {
    version: String,
    why: &'static str,
}

/// What the screen wants the terminal to show: one display-size picture at a cell position with
/// the overlay over it.
pub struct Scene<'a> {
    /// Equal keys, equal `base` pixels (image, canvas size, zoom).
    pub key: u64,
    pub base: &'a RgbaImage,
    pub overlay: &'a Overlay,
    /// Top-left cell of the picture.
    pub at: (u16, u16),
    /// Cell size in pixels.
    pub cell: (u16, u16),
}

impl Scene<'_> {
    /// Cells the picture covers.
    pub fn cells(&self) -> (u16, u16) {
        cells_of(self.base, self.cell)
    }
}

fn cells_of(img: &RgbaImage, (cw, ch): (u16, u16)) -> (u16, u16) {
    let n = |px: u32, c: u16| px.div_ceil(u32::from(c.max(1))).min(u32::from(u16::MAX)) as u16;
    (n(img.width(), cw), n(img.height(), ch))
}

/// One terminal graphics protocol. It remembers what the terminal shows and turns the next
/// scene into the bytes that bring the terminal there: the whole picture only when the terminal
/// does not have it.
pub trait Driver: Send {
    /// Appends the bytes that take the terminal from the last scene to `scene` (`None`: no
    /// picture, the screen draws cells there).
    fn frame(&mut self, scene: Option<&Scene>, out: &mut Vec<u8>);
    /// The screen was cleared: the next frame draws everything again.
    fn reset(&mut self);
    /// Encodes ahead what a later frame showing `base` under `key` would send (the worker
    /// calls it for prefetched images while the user looks at the current one).
    fn prepare(&mut self, _key: u64, _base: &RgbaImage, _cell: (u16, u16)) {}
    /// How the screen treats the picture's cells after the last frame.
    fn shown(&self) -> Shown;
}

/// What the picture's cells hold.
#[derive(Clone)]
pub enum Shown {
    /// Pixels the driver wrote: the cells are left alone.
    Pixels,
    /// Kitty Unicode placeholder cells for this image id.
    Placeholder(u32),
    /// Halfblocks (and other ratatui-image protocols) rendered as cells.
    Cells(Protocol),
}

/// PNG settings for kitty and iTerm2, chosen by bytes and encode time on 12-megapixel photos
/// fitted to a 160×48 screen (`cargo bench --bench tui`, "kitty payloads").
const PNG_COMPRESSION: image::codecs::png::CompressionType =
    image::codecs::png::CompressionType::Fast;
const PNG_FILTER: image::codecs::png::FilterType = image::codecs::png::FilterType::Adaptive;

/// `img`'s pixels `x..x+w`, `y..y+h` as PNG: RGB, or RGBA when `alpha` (a transparent layer).
pub fn png(img: &RgbaImage, (x0, y0, w, h): (u32, u32, u32, u32), alpha: bool) -> Vec<u8> {
    use image::ImageEncoder;
    let channels = if alpha { 4 } else { 3 };
    let stride = img.width() as usize * 4;
    let mut data = Vec::with_capacity((w * h) as usize * channels);
    for y in y0..y0 + h {
        let row = &img.as_raw()[y as usize * stride..][x0 as usize * 4..(x0 + w) as usize * 4];
        if alpha {
            data.extend_from_slice(row);
        } else {
            data.extend(row.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]));
        }
    }
    let colour = if alpha {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    // Encoding into memory fails only on a zero-sized picture, which is never sent.
    let _ = image::codecs::png::PngEncoder::new_with_quality(&mut out, PNG_COMPRESSION, PNG_FILTER)
        .write_image(&data, w, h, colour);
    out
}

/// Moves the cursor to a cell (0-based).
pub fn cursor_to(out: &mut Vec<u8>, x: u16, y: u16) {
    out.extend_from_slice(format!("\x1b[{};{}H", u32::from(y) + 1, u32::from(x) + 1).as_bytes());
}

/// Appends `seq`, wrapped for tmux passthrough (every ESC doubled) when `tmux`.
pub fn wrap(out: &mut Vec<u8>, tmux: bool, seq: &[u8]) {
    if !tmux {
        out.extend_from_slice(seq);
        return;
    }
    out.extend_from_slice(b"\x1bPtmux;");
    for &b in seq {
        if b == 0x1b {
            out.push(0x1b);
        }
        out.push(b);
    }
    out.extend_from_slice(b"\x1b\\");
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub generation: u64,
    pub id: i64,
    pub path: PathBuf,
    /// Where the picture may go, in cells.
    pub canvas: Rect,
    pub zoom: Option<BBox>,
    /// Painted into the pixels (empty where boxes are cells).
    pub overlay: Overlay,
    /// Counts screen clears: when it changes, the terminal lost the pictures it showed.
    pub cleared: u64,
}

pub enum Request {
    Render(Job),
    /// Something covers the canvas (a popup, the gallery, no image): take the picture away.
    Hide {
        cleared: u64,
    },
    Prefetch(Vec<(i64, PathBuf)>),
    /// Gallery thumbnails: id, file, size in cells.
    Thumbs(Vec<(i64, PathBuf, (u16, u16))>),
}

/// A finished picture, ready to show.
pub struct Picture {
    pub generation: u64,
    pub id: i64,
    /// Where it lands on screen, in cells.
    pub area: Rect,
    pub shown: Shown,
    /// For the terminal, written with the next frame; in order, never skipped (each frame
    /// builds on what the last one left on screen).
    pub bytes: Vec<u8>,
}

pub enum Reply {
    Ready(Picture),
    /// Bytes that take a picture away.
    Hidden(Vec<u8>),
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

/// The last few values by key, least recently used first.
struct Recent<K, V> {
    entries: VecDeque<(K, V)>,
    capacity: usize,
}

impl<K: PartialEq + Copy, V: Clone> Recent<K, V> {
    fn new(capacity: usize) -> Recent<K, V> {
        Recent {
            entries: VecDeque::new(),
            capacity,
        }
    }
    fn get(&mut self, key: K) -> Option<V> {
        let pos = self.entries.iter().position(|(k, _)| *k == key)?;
        let entry = self.entries.remove(pos)?;
        let v = entry.1.clone();
        self.entries.push_back(entry);
        Some(v)
    }
    fn put(&mut self, key: K, v: V) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push_back((key, v));
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }
}

/// Decoded images kept for quick back-and-forth and for prefetching.
type Cache = Recent<i64, Arc<DynamicImage>>;

fn decoded(
    cache: &mut Cache,
    id: i64,
    path: &std::path::Path,
    max_megapixels: u32,
) -> Result<Arc<DynamicImage>, DecodeError> {
    if let Some(img) = cache.get(id) {
        return Ok(img);
    }
    let img = Arc::new(crate::decode::open_upright(path, max_megapixels)?);
    cache.put(id, img.clone());
    Ok(img)
}

/// Display-size pictures kept: the ones the kitty driver keeps in the terminal (going back
/// re-places them) and the prefetched next ones.
const FITTED: usize = 8;

/// Turns jobs into pictures. Keeps the display-size pictures of the last few images and of the
/// prefetched ones, so an overlay change, going back and a prefetched next image cost no resize.
pub struct Renderer {
    picker: Picker,
    cell: (u16, u16),
    driver: Option<Box<dyn Driver>>,
    /// Display-size pictures by scene key.
    fitted: Recent<u64, Arc<RgbaImage>>,
    /// The last canvas drawn into: prefetched pictures are fitted to it.
    canvas: Option<(u16, u16)>,
    cleared: u64,
}

impl Renderer {
    pub fn new(setup: &Setup) -> Renderer {
        Renderer {
            picker: setup.picker.clone(),
            cell: setup.cell,
            driver: setup.driver(),
            fitted: Recent::new(FITTED),
            canvas: None,
            cleared: 0,
        }
    }

    fn cleared(&mut self, cleared: u64) {
        if cleared != self.cleared {
            self.cleared = cleared;
            if let Some(d) = self.driver.as_mut() {
                d.reset();
            }
        }
    }

    /// Equal keys, equal display-size pixels.
    fn key(&self, id: i64, (w, h): (u16, u16), zoom: Option<BBox>) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        let zoom = zoom.map(|z| [z.x0, z.y0, z.x1, z.y1].map(f64::to_bits));
        (id, w, h, zoom, self.cell).hash(&mut hasher);
        hasher.finish()
    }

    /// Work done ahead for an image the user is likely to open next (the worker calls it when
    /// idle): its display-size picture for the last canvas, and what the driver can encode of
    /// it before it is shown.
    pub fn prepare(&mut self, id: i64, img: &DynamicImage) {
        let Some(canvas) = self.canvas else { return };
        let key = self.key(id, canvas, None);
        let base = match self.fitted.get(key) {
            Some(b) => b,
            None => match fit(img, canvas, self.cell, None) {
                Ok(b) => {
                    let b = Arc::new(b);
                    self.fitted.put(key, b.clone());
                    b
                }
                Err(_) => return,
            },
        };
        if let Some(d) = self.driver.as_mut() {
            d.prepare(key, &base, self.cell);
        }
    }

    /// The picture for `job`; `image` gives the decoded image when its display-size picture
    /// is not kept.
    pub fn render(
        &mut self,
        job: &Job,
        image: impl FnOnce() -> Result<Arc<DynamicImage>, DecodeError>,
    ) -> Reply {
        self.cleared(job.cleared);
        let size = (job.canvas.width, job.canvas.height);
        self.canvas = Some(size);
        let key = self.key(job.id, size, job.zoom);
        let base = match self.fitted.get(key) {
            Some(b) => b,
            None => {
                let img = match image() {
                    Ok(img) => img,
                    Err(e) => {
                        return Reply::Failed {
                            id: job.id,
                            error: e.to_string(),
                        };
                    }
                };
                match fit(&img, size, self.cell, job.zoom) {
                    Ok(f) => {
                        let f = Arc::new(f);
                        self.fitted.put(key, f.clone());
                        f
                    }
                    Err(e) => {
                        return Reply::Trouble {
                            error: e.to_string(),
                        };
                    }
                }
            }
        };
        let base = &*base;
        let (shown, area, bytes) = match self.driver.as_mut() {
            None => {
                let protocol = match self.picker.new_protocol(
                    DynamicImage::ImageRgba8(base.clone()),
                    Rect::new(0, 0, job.canvas.width, job.canvas.height),
                    Resize::Fit(None),
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        return Reply::Trouble {
                            error: e.to_string(),
                        };
                    }
                };
                let a = protocol.area();
                (
                    Shown::Cells(protocol),
                    centred(job.canvas, (a.width, a.height)),
                    Vec::new(),
                )
            }
            Some(d) => {
                let area = centred(job.canvas, cells_of(base, self.cell));
                let scene = Scene {
                    key,
                    base,
                    overlay: &job.overlay,
                    at: (area.x, area.y),
                    cell: self.cell,
                };
                let mut bytes = Vec::new();
                d.frame(Some(&scene), &mut bytes);
                (d.shown(), area, bytes)
            }
        };
        Reply::Ready(Picture {
            generation: job.generation,
            id: job.id,
            area,
            shown,
            bytes,
        })
    }

    /// The bytes that take the picture off the screen.
    pub fn hide(&mut self, cleared: u64) -> Vec<u8> {
        self.cleared(cleared);
        let mut out = Vec::new();
        if let Some(d) = self.driver.as_mut() {
            d.frame(None, &mut out);
        }
        out
    }

    /// A gallery thumbnail (ratatui-image cells or its own escape sequences).
    pub fn thumb(&self, img: &DynamicImage, cells: (u16, u16)) -> Result<Protocol, DrawError> {
        let small = fit(img, cells, self.cell, None)?;
        self.picker
            .new_protocol(
                DynamicImage::ImageRgba8(small),
                Rect::new(0, 0, cells.0, cells.1),
                Resize::Fit(None),
            )
            .map_err(|e| DrawError::Protocol(e.to_string()))
    }
}

/// Why a decoded picture cannot be drawn: the screen says so and goes on.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    #[error("no room to draw the picture")]
    NoRoom,
    /// fast_image_resize's words.
    #[error("resize: {0}")]
    Resize(String),
    /// ratatui-image could not make the terminal's picture.
    #[error("{0}")]
    Protocol(String),
}

/// A `size` area centred in `canvas` (clipped to it).
fn centred(canvas: Rect, (w, h): (u16, u16)) -> Rect {
    let (w, h) = (w.min(canvas.width), h.min(canvas.height));
    Rect::new(
        canvas.x + (canvas.width - w) / 2,
        canvas.y + (canvas.height - h) / 2,
        w,
        h,
    )
}

/// Runs until the request channel closes. Only the newest render request is worked on: older
/// ones still queued are skipped, so on a slow link the screen follows the last key.
pub fn worker(
    setup: Setup,
    max_megapixels: u32,
    thumb_cache: &ThumbCache,
    rx: Receiver<Request>,
    tx: impl Fn(Reply),
) {
    let mut cache = Cache::new(6);
    let mut renderer = Renderer::new(&setup);
    let mut prefetch: VecDeque<(i64, PathBuf)> = VecDeque::new();
    // Decoded by prefetch, to be fitted and encoded ahead.
    let mut prepare: VecDeque<i64> = VecDeque::new();
    let mut thumbs: VecDeque<(i64, PathBuf, (u16, u16))> = VecDeque::new();
    loop {
        // Drain what is queued; keep the newest render or hide.
        let first = if prefetch.is_empty() && thumbs.is_empty() && prepare.is_empty() {
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
                r @ (Request::Render(_) | Request::Hide { .. }) => render = Some(r),
                Request::Prefetch(ids) => prefetch.extend(ids),
                // A new page replaces the thumbnails still waiting.
                Request::Thumbs(list) => thumbs = list.into(),
            }
        }
        match render {
            Some(Request::Render(job)) => {
                let reply = renderer.render(&job, || {
                    decoded(&mut cache, job.id, &job.path, max_megapixels)
                });
                if matches!(reply, Reply::Failed { .. } | Reply::Trouble { .. }) {
                    let bytes = renderer.hide(job.cleared);
                    if !bytes.is_empty() {
                        tx(Reply::Hidden(bytes));
                    }
                }
                tx(reply);
            }
            Some(Request::Hide { cleared }) => {
                let bytes = renderer.hide(cleared);
                if !bytes.is_empty() {
                    tx(Reply::Hidden(bytes));
                }
            }
            _ => {
                if let Some((id, path, cells)) = thumbs.pop_front() {
                    // Thumbnails come from the on-disk cache, not the decoded-image one: a page
                    // of them would evict the pictures being reviewed.
                    // A thumbnail that fails is left blank: the picture says why when opened.
                    let thumb = thumb_cache
                        .get_or_make(&path, max_megapixels)
                        .ok()
                        .and_then(|img| renderer.thumb(&img, cells).ok());
                    if let Some(protocol) = thumb {
                        tx(Reply::Thumb { id, protocol });
                    }
                } else if let Some((id, path)) = prefetch.pop_front() {
                    // Failures surface when the image is shown.
                    if decoded(&mut cache, id, &path, max_megapixels).is_ok() {
                        prepare.push_back(id);
                    }
                } else if let Some(id) = prepare.pop_front()
                    && let Some(img) = cache.get(id)
                {
                    renderer.prepare(id, &img);
                }
            }
        }
    }
}

/// The display-size picture: the zoomed region of `img`, fitted to `cells` at `cell`
/// pixels a cell. This is the expensive step, so the worker keeps the last one.
pub fn fit(
    img: &DynamicImage,
    (cols, rows): (u16, u16),
    (fw, fh): (u16, u16),
    zoom: Option<BBox>,
) -> Result<RgbaImage, DrawError> {
    if cols == 0 || rows == 0 {
        return Err(DrawError::NoRoom);
    }
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let z = zoom.unwrap_or(BBox::FULL);
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
    let pixel_type = src
        .pixel_type()
        .ok_or_else(|| DrawError::Resize("unsupported pixel type".into()))?;
    let mut dst = fir::images::Image::new(dw, dh, pixel_type);
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear))
        .crop(left, top, cw, ch);
    fir::Resizer::new()
        .resize(src, &mut dst, &options)
        .map_err(|e| DrawError::Resize(e.to_string()))?;
    let buf = dst.into_vec();
    let out = if pixel_type == fir::PixelType::U8x3 {
        image::RgbImage::from_raw(dw, dh, buf).map(|rgb| DynamicImage::ImageRgb8(rgb).to_rgba8())
    } else {
        RgbaImage::from_raw(dw, dh, buf)
    };
    out.ok_or_else(|| DrawError::Resize("bad buffer".into()))
}

/// Spawns the worker thread; replies go through `send`.
pub fn spawn(
    setup: Setup,
    max_megapixels: u32,
    thumb_cache: ThumbCache,
    send: impl Fn(Reply) + Send + 'static,
) -> Sender<Request> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("termtag-graphics".into())
        .spawn(move || worker(setup, max_megapixels, &thumb_cache, rx, send))
        .expect("spawn graphics worker");
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(canvas: Rect, zoom: Option<BBox>) -> Job {
        Job {
            generation: 1,
            id: 1,
            path: PathBuf::new(),
            canvas,
            zoom,
            overlay: Overlay::default(),
            cleared: 0,
        }
    }

    #[test]
    fn the_picture_fits_the_canvas_and_honours_zoom() {
        let img = Arc::new(DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            400,
            200,
            image::Rgb([9, 9, 9]),
        )));
        let canvas = Rect::new(2, 1, 40, 20);
        let mut r = Renderer::new(&Setup::halfblocks());
        let Reply::Ready(p) = r.render(&job(canvas, None), || Ok(img.clone())) else {
            panic!("no picture")
        };
        assert_eq!(
            p.area.width, 40,
            "a wide image fills the width: {:?}",
            p.area
        );
        assert!(
            p.area.y > canvas.y,
            "and is centred vertically: {:?}",
            p.area
        );
        let zoom = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 0.25,
            y1: 1.0,
        };
        let Reply::Ready(p) = r.render(&job(canvas, Some(zoom)), || Ok(img.clone())) else {
            panic!("no picture")
        };
        assert!(
            p.area.height >= 19,
            "a tall crop fills the height: {:?}",
            p.area
        );
    }

    #[test]
    fn sixel_inside_tmux_only_where_tmux_draws_it() {
        assert!(sixel_in_tmux("3.4|1").unwrap().contains("tmux 3.4"));
        let no = |answer| sixel_in_tmux(answer).unwrap_err().to_string();
        let old = no("3.3a|");
        assert!(
            old.contains("tmux 3.3a") && old.contains("3.4 or later"),
            "{old}"
        );
        assert!(no("3.5a|0").contains("built without sixel"));
        assert!(no("").contains("version unknown"));
    }

    #[test]
    fn tmux_passthrough_doubles_every_escape() {
        let mut out = Vec::new();
        wrap(&mut out, true, b"\x1b_Ga=p\x1b\\");
        assert_eq!(out, b"\x1bPtmux;\x1b\x1b_Ga=p\x1b\x1b\\\x1b\\");
    }
}

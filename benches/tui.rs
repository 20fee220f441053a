//! Review-screen frame cost: `cargo bench --bench tui -- [N_IMAGES]` (default 12).
//!
//! Setup makes 12-megapixel JPEGs (4240×2832) from `../shared/images` (a generated picture when
//! that folder is absent) and decodes them once (the review screen prefetches). It first compares
//! kitty payload encodings of one display-size picture (bytes and encode time). Then, for a
//! 160×48 terminal with 10×20-pixel cells and each protocol it runs, per image: "next image"
//! (prefetched: the renderer prepared it while the previous one was shown, as the worker does),
//! five "box edit"s (move right) and "back" (previous image and forward again), through the real
//! graphics renderer and the real crossterm backend, into a byte-counting sink that is flushed at
//! the end of each frame. Prints p50 / p99 time from action (update) to complete frame written
//! and bytes per frame (the screen's cells and the pictures together), with the time the thread
//! spent on a CPU (figures from a machine shared with other builds). Asserts nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::DynamicImage;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use ratatui_image::picker::Picker;

use termtag::model::{BBox, ImageStatus, Origin, Task};
use termtag::theme::Theme;
use termtag::tui::action::Action;
use termtag::tui::graphics::{Job, Kind, Overlay, Picture, Renderer, Reply, Setup};
use termtag::tui::keymap::Keymap;
use termtag::tui::state::{BoxItem, Current, ItemKind, Msg, QueueItem, State, update};
use termtag::tui::view::{self, Ui};

/// Counts bytes, keeps none.
#[derive(Default, Clone)]
struct Sink {
    bytes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}
impl Sink {
    fn count(&self) -> usize {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}
impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes
            .fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const W: u16 = 160;
const H: u16 = 48;
const CELL: (u16, u16) = (10, 20);

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(12)
        .max(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let files = make_jpegs(dir.path(), n);
    let images: Vec<Arc<DynamicImage>> = files
        .iter()
        .map(|p| Arc::new(termtag::decode::open_upright(p, 250).expect("decode")))
        .collect();
    println!(
        "setup: {n} JPEGs of 4240×2832 made and decoded in {:.1}s; {W}×{H} cells of {}×{} px",
        t.elapsed().as_secs_f64(),
        CELL.0,
        CELL.1
    );
    kitty_payloads(&images);
    for (kind, tmux) in [
        (Kind::Halfblocks, false),
        (Kind::Kitty, false),
        (Kind::Kitty, true),
        (Kind::Sixel, false),
        (Kind::Iterm2, false),
    ] {
        let setup = Setup {
            picker: Picker::halfblocks(),
            kind,
            cell: CELL,
            tmux,
            why: "bench".into(),
            warning: None,
        };
        bench(&setup, &images);
    }
}

struct Screen {
    term: Terminal<CrosstermBackend<Sink>>,
    sink: Sink,
    renderer: Renderer,
    picture: Option<Picture>,
    state: State,
    theme: Theme,
    keymap: Keymap,
    cell_overlay: bool,
    name: &'static str,
}

impl Screen {
    /// Renders and draws the current screen; returns the bytes written.
    fn frame(&mut self, images: &[Arc<DynamicImage>]) -> usize {
        let canvas = view::areas(Rect::new(0, 0, W, H)).canvas;
        let id = self.state.current_item().expect("an image").id;
        let job = Job {
            generation: 1,
            id,
            path: PathBuf::new(),
            canvas,
            zoom: self.state.zoom,
            overlay: if self.cell_overlay {
                Overlay::default()
            } else {
                Overlay::of(&self.state, &self.theme)
            },
            cleared: 0,
        };
        let before = self.sink.count();
        // Halfblocks pictures do not change with the boxes (they are cells); the app keeps them.
        let same_cells = self.cell_overlay
            && self.name == "halfblocks"
            && self.picture.as_ref().is_some_and(|p| p.id == id);
        if !same_cells {
            let img = images[id as usize].clone();
            let Reply::Ready(p) = self.renderer.render(&job, || Ok(img)) else {
                panic!("render failed")
            };
            self.picture = Some(p);
        }
        let ui = Ui {
            theme: &self.theme,
            thumbs: None,
            keymap: &self.keymap,
            picture: self.picture.as_ref(),
            cell_overlay: self.cell_overlay,
            protocol: self.name,
        };
        self.term.draw(|f| view::draw(f, &self.state, &ui)).unwrap();
        if let Some(p) = self.picture.as_mut() {
            let bytes = std::mem::take(&mut p.bytes);
            let out = self.term.backend_mut();
            out.write_all(&bytes).unwrap();
            out.flush().unwrap();
        }
        self.sink.count() - before
    }

    fn set_boxes(&mut self) {
        let id = self.state.current_item().expect("an image").id;
        self.state.current = Some(Current {
            id,
            status: ImageStatus::New,
            items: vec![BoxItem {
                class: "knot".into(),
                bbox: Some(BBox {
                    x0: 0.2,
                    y0: 0.2,
                    x1: 0.5,
                    y1: 0.6,
                }),
                score: Some(0.7),
                kind: ItemKind::Label(Origin::Human),
                prediction: None,
            }],
            decisions: Vec::new(),
        });
        self.state.selected = Some(0);
    }
}

fn bench(setup: &Setup, images: &[Arc<DynamicImage>]) {
    let sink = Sink::default();
    // A fixed viewport: the sink is no terminal, so there is no size to ask it for.
    let term = Terminal::with_options(
        CrosstermBackend::new(sink.clone()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, W, H)),
        },
    )
    .unwrap();
    let mut state = State::new("bench", Task::Detect, vec!["knot".into(), "defect".into()]);
    state.queue = (0..images.len())
        .map(|i| QueueItem {
            id: i as i64,
            key: format!("img{i}.jpg"),
            width: 4240,
            height: 2832,
            status: ImageStatus::New,
            score: None,
        })
        .collect();
    let mut s = Screen {
        term,
        sink,
        renderer: Renderer::new(setup),
        picture: None,
        state,
        theme: Theme::preset("dark").unwrap(),
        keymap: Keymap::defaults(),
        cell_overlay: setup.cell_overlay(),
        name: setup.kind.name(),
    };
    let (mut next_t, mut edit_t, mut back_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut next_c, mut edit_c, mut back_c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut next_b, mut edit_b, mut back_b) = (Vec::new(), Vec::new(), Vec::new());
    // Each image comes back with its boxes as last edited (the store's part).
    let mut edited = std::collections::HashMap::new();
    for i in 0..images.len() {
        // While the user looks at a picture, the worker prepares the next one (prefetch).
        if i > 0 {
            s.renderer.prepare(i as i64, &images[i]);
        }
        let start = Clock::start();
        if i > 0 {
            let left = s.state.current.take().expect("boxes");
            edited.insert(left.id, left);
            update(&mut s.state, Msg::Action(Action::NextImage));
        }
        s.set_boxes();
        let bytes = s.frame(images);
        // The first picture was not prefetched: it is not a "next image".
        if i > 0 {
            next_b.push(bytes);
            start.stop(&mut next_t, &mut next_c);
        }
        for _ in 0..5 {
            let start = Clock::start();
            update(&mut s.state, Msg::Action(Action::MoveRight));
            edit_b.push(s.frame(images));
            start.stop(&mut edit_t, &mut edit_c);
        }
        if i > 0 {
            for a in [Action::PrevImage, Action::NextImage] {
                let start = Clock::start();
                let left = s.state.current.take().expect("boxes");
                edited.insert(left.id, left);
                update(&mut s.state, Msg::Action(a));
                let id = s.state.current_item().expect("an image").id;
                match edited.remove(&id) {
                    Some(cur) => s.state.current = Some(cur),
                    None => s.set_boxes(),
                }
                s.state.selected = Some(0);
                back_b.push(s.frame(images));
                start.stop(&mut back_t, &mut back_c);
            }
        }
    }
    let name = if setup.tmux {
        format!("{} (tmux)", setup.kind.name())
    } else {
        setup.kind.name().to_string()
    };
    println!(
        "{name:>13}: next image p50 {:>5.1} ms p99 {:>5.1} ms (CPU {:>5.1} / {:>5.1}) {:>9} B | box edit p50 {:>5.1} ms p99 {:>5.1} ms (CPU {:>5.1} / {:>5.1}) {:>8} B | back p50 {:>5.1} ms (CPU {:>5.1}) {:>8} B",
        pct(&mut next_t, 50),
        pct(&mut next_t, 99),
        pct(&mut next_c, 50),
        pct(&mut next_c, 99),
        median(&mut next_b),
        pct(&mut edit_t, 50),
        pct(&mut edit_t, 99),
        pct(&mut edit_c, 50),
        pct(&mut edit_c, 99),
        median(&mut edit_b),
        pct(&mut back_t, 50),
        pct(&mut back_c, 50),
        median(&mut back_b),
    );
}

/// Wall time from action to frame written, and the time this thread spent on a CPU meanwhile
/// (Linux schedstat; zero elsewhere): on a busy machine the second is the work without the
/// waiting for a core.
struct Clock {
    wall: Instant,
    cpu: u64,
}

fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: on_cpu_ns(),
        }
    }
    fn stop(self, wall: &mut Vec<Duration>, cpu: &mut Vec<Duration>) {
        wall.push(self.wall.elapsed());
        cpu.push(Duration::from_nanos(on_cpu_ns().saturating_sub(self.cpu)));
    }
}

fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    let i = ((v.len() - 1) * p).div_ceil(100);
    v[i].as_secs_f64() * 1000.0
}

fn median(v: &mut [usize]) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}

fn make_jpegs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/images");
    let mut seeds: Vec<DynamicImage> = std::fs::read_dir(&shared)
        .map(|rd| {
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            paths
                .into_iter()
                .filter_map(|p| image::open(p).ok())
                .collect()
        })
        .unwrap_or_default();
    if seeds.is_empty() {
        seeds.push(DynamicImage::ImageRgb8(image::RgbImage::from_fn(
            640,
            427,
            |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]),
        )));
    }
    (0..n)
        .map(|i| {
            let big = seeds[i % seeds.len()].resize_exact(
                4240,
                2832,
                image::imageops::FilterType::Triangle,
            );
            let p = dir.join(format!("img{i}.jpg"));
            big.to_rgb8().save(&p).expect("save jpeg");
            p
        })
        .collect()
}

/// Kitty payloads for one display-size picture: what the issue measured (raw RGBA, base64),
/// zlib of raw RGB (the target), and PNG settings; bytes as sent (base64) and encode time.
fn kitty_payloads(images: &[Arc<DynamicImage>]) {
    use base64::Engine;
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use std::io::Write as _;
    let canvas = view::areas(Rect::new(0, 0, W, H)).canvas;
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v).len();
    let zlib = |raw: &[u8], level| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        z.write_all(raw).unwrap();
        z.finish().unwrap()
    };
    let png = |rgb: &[u8], w, h, c, f| {
        let mut out = Vec::new();
        PngEncoder::new_with_quality(&mut out, c, f)
            .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    };
    type Way<'a> = (&'a str, Box<dyn Fn(&[u8], u32, u32) -> usize + 'a>);
    let ways: Vec<Way> = vec![
        (
            "zlib 6 RGB, unencoded (target)",
            Box::new(|r, _, _| zlib(r, 6).len()),
        ),
        (
            "zlib 1 RGB, base64 (before)",
            Box::new(|r, _, _| b64(&zlib(r, 1))),
        ),
        (
            "PNG fast, Sub",
            Box::new(|r, w, h| b64(&png(r, w, h, CompressionType::Fast, FilterType::Sub))),
        ),
        (
            "PNG fast, Paeth",
            Box::new(|r, w, h| b64(&png(r, w, h, CompressionType::Fast, FilterType::Paeth))),
        ),
        (
            "PNG fast, adaptive",
            Box::new(|r, w, h| b64(&png(r, w, h, CompressionType::Fast, FilterType::Adaptive))),
        ),
        (
            "PNG level 2, adaptive",
            Box::new(|r, w, h| {
                b64(&png(
                    r,
                    w,
                    h,
                    CompressionType::Level(2),
                    FilterType::Adaptive,
                ))
            }),
        ),
        (
            "PNG default, adaptive",
            Box::new(|r, w, h| {
                b64(&png(
                    r,
                    w,
                    h,
                    CompressionType::Default,
                    FilterType::Adaptive,
                ))
            }),
        ),
        ("termtag (graphics::png)", Box::new(|_, _, _| 0)),
    ];
    let pictures: Vec<image::RgbaImage> = images
        .iter()
        .take(3)
        .map(|img| {
            termtag::tui::graphics::fit(img, (canvas.width, canvas.height), CELL, None).unwrap()
        })
        .collect();
    let (w, h) = pictures[0].dimensions();
    println!(
        "kitty payloads, {} pictures of {w}×{h} (mean bytes as sent, mean encode ms):",
        pictures.len()
    );
    let mut target = 0.0;
    for (name, way) in &ways {
        let (mut bytes, mut ms) = (0usize, 0.0);
        for p in &pictures {
            let rgb: Vec<u8> = p
                .as_raw()
                .chunks_exact(4)
                .flat_map(|q| [q[0], q[1], q[2]])
                .collect();
            let t = Instant::now();
            bytes += if name.starts_with("termtag") {
                termtag::tui::graphics::kitty::payload(p, false).len()
            } else {
                way(&rgb, p.width(), p.height())
            };
            ms += t.elapsed().as_secs_f64() * 1000.0;
        }
        let n = pictures.len() as f64;
        let mean = bytes as f64 / n;
        if name.contains("target") {
            target = mean;
        }
        let vs_target = if target > 0.0 {
            format!("{:.2}× target", mean / target)
        } else {
            String::new()
        };
        println!(
            "  {name:<32} {:>10.0} B {:>6.1} ms  {:.3}× issue's 12,119,180  {vs_target}",
            mean,
            ms / n,
            mean / 12_119_180.0
        );
    }
}

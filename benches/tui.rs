//! Review-screen frame cost: `cargo bench --bench tui -- [N_IMAGES]` (default 12).
//!
//! Setup makes 12-megapixel JPEGs (4240×2832) from `../shared/images` (a generated picture when
//! that folder is absent). For each protocol it then feeds "next image" (decode + fit + overlay +
//! encode + draw) and "move box" (overlay + encode + draw from the cached display-size image; for
//! halfblocks only the cells are redrawn) and writes every frame to a byte-counting sink through
//! the real crossterm backend. Prints p50 / p99 time from action to complete frame and bytes per
//! frame. Asserts nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::DynamicImage;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use ratatui_image::picker::{Picker, ProtocolType};

use termtag::model::{BBox, ImageStatus, Origin, Task};
use termtag::theme::Theme;
use termtag::tui::action::Action;
use termtag::tui::graphics::{Job, OverlayBox, Picture, finish, fit};
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

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let files = make_jpegs(dir.path(), n);
    println!(
        "setup: {n} JPEGs of 4240×2832 in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let canvas = view::areas(Rect::new(0, 0, W, H)).canvas;
    for proto in [
        ProtocolType::Halfblocks,
        ProtocolType::Sixel,
        ProtocolType::Kitty,
        ProtocolType::Iterm2,
    ] {
        let mut picker = Picker::halfblocks();
        picker.set_protocol_type(proto);
        bench(&picker, proto, &files, canvas);
    }
}

fn bench(picker: &Picker, proto: ProtocolType, files: &[PathBuf], canvas: Rect) {
    let theme = Theme::preset("dark").unwrap();
    let keymap = Keymap::defaults();
    let cell_overlay = proto == ProtocolType::Halfblocks;
    let sink = Sink::default();
    // A fixed viewport: the sink is no terminal, so there is no size to ask it for.
    let mut term = Terminal::with_options(
        CrosstermBackend::new(sink.clone()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, W, H)),
        },
    )
    .unwrap();
    let mut state = State::new("bench", Task::Detect, vec!["knot".into(), "defect".into()]);
    state.queue = files
        .iter()
        .enumerate()
        .map(|(i, _)| QueueItem {
            id: i as i64,
            key: format!("img{i}.jpg"),
            width: 4240,
            height: 2832,
            status: ImageStatus::New,
            score: None,
        })
        .collect();
    let mut next_times = Vec::new();
    let mut decode_times = Vec::new();
    let mut prefetched_times = Vec::new();
    let mut move_times = Vec::new();
    let mut next_bytes = Vec::new();
    let mut move_bytes = Vec::new();
    for (i, path) in files.iter().enumerate() {
        // next image: the state moves on, the worker decodes and composes, the frame is drawn.
        let start = Instant::now();
        if i > 0 {
            update(&mut state, Msg::Action(Action::NextImage));
        }
        state.current = Some(Current {
            id: i as i64,
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
        state.selected = Some(0);
        let img = termtag::decode::open_upright(path, 250).expect("decode");
        decode_times.push(start.elapsed());
        let shown_start = Instant::now();
        let fitted = fit(picker, &img, (canvas.width, canvas.height), None).expect("fit");
        let pic = picture(picker, &fitted, &state, canvas, cell_overlay, &theme);
        let before = sink.count();
        draw(
            &mut term,
            &state,
            &theme,
            &keymap,
            &pic,
            cell_overlay,
            proto,
        );
        next_times.push(start.elapsed());
        prefetched_times.push(shown_start.elapsed());
        next_bytes.push(sink.count() - before);

        // move box, five times per image.
        for _ in 0..5 {
            let start = Instant::now();
            update(&mut state, Msg::Action(Action::MoveRight));
            let pic = if cell_overlay {
                pic_clone(&pic)
            } else {
                picture(picker, &fitted, &state, canvas, cell_overlay, &theme)
            };
            let before = sink.count();
            draw(
                &mut term,
                &state,
                &theme,
                &keymap,
                &pic,
                cell_overlay,
                proto,
            );
            move_times.push(start.elapsed());
            move_bytes.push(sink.count() - before);
        }
    }
    let name = termtag::tui::graphics::protocol_name(proto);
    println!(
        "{name:>10}: next image p50 {:>6.1} ms p99 {:>6.1} ms (decode p50 {:>5.1} ms; already prefetched p50 {:>5.1} ms p99 {:>5.1} ms) {:>8} B/frame | move box p50 {:>6.1} ms p99 {:>6.1} ms {:>8} B/frame",
        pct(&mut next_times, 50),
        pct(&mut next_times, 99),
        pct(&mut decode_times, 50),
        pct(&mut prefetched_times, 50),
        pct(&mut prefetched_times, 99),
        median(&mut next_bytes),
        pct(&mut move_times, 50),
        pct(&mut move_times, 99),
        median(&mut move_bytes),
    );
}

/// The display-size picture is cached by the worker; for halfblocks a box move redraws cells only.
fn pic_clone(p: &Picture) -> Picture {
    Picture {
        generation: p.generation,
        id: p.id,
        protocol: p.protocol.clone(),
        job_cells: p.job_cells,
    }
}

fn picture(
    picker: &Picker,
    fitted: &image::RgbaImage,
    state: &State,
    canvas: Rect,
    cell_overlay: bool,
    theme: &Theme,
) -> Picture {
    let overlay = if cell_overlay {
        Vec::new()
    } else {
        state
            .current
            .iter()
            .flat_map(|c| c.items.iter())
            .filter_map(|it| {
                Some(OverlayBox {
                    bbox: it.bbox?,
                    rgb: termtag::theme::rgb(theme.class_color(0)),
                    proposal: it.is_proposal(),
                    selected: true,
                })
            })
            .collect()
    };
    let job = Job {
        generation: 1,
        id: state.current_item().map_or(0, |q| q.id),
        path: PathBuf::new(),
        cells: (canvas.width, canvas.height),
        zoom: None,
        overlay,
        crosshair: None,
    };
    Picture {
        generation: 1,
        id: job.id,
        protocol: finish(picker, fitted, &job).expect("encode"),
        job_cells: job.cells,
    }
}

#[allow(clippy::too_many_arguments)]
fn draw(
    term: &mut Terminal<CrosstermBackend<Sink>>,
    state: &State,
    theme: &Theme,
    keymap: &Keymap,
    pic: &Picture,
    cell_overlay: bool,
    proto: ProtocolType,
) {
    let ui = Ui {
        theme,
        thumbs: None,
        keymap,
        picture: Some(pic),
        cell_overlay,
        protocol: termtag::tui::graphics::protocol_name(proto),
    };
    term.draw(|f| view::draw(f, state, &ui)).unwrap();
}

fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    let i = ((v.len() - 1) * p) / 100;
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

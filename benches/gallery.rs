//! Gallery page cost: `cargo bench --bench gallery -- [PAGES]` (default 2).
//!
//! Setup makes 12-megapixel JPEGs (4240×2832) from `../shared/images` (a generated picture when
//! that folder is absent), as many as PAGES pages of the gallery of a 160×48 terminal with
//! 10×20-pixel cells. Then, per page, through the graphics worker's own steps (the thumbnail
//! cache of `.termtag/thumbs/`, then the tile's picture for the terminal):
//! - `no cache`: every original decoded whole and fitted (what the gallery did before the cache);
//! - `first visit`: the thumbnails made (DCT-scaled decode) and written to the cache;
//! - `cached`: the page again, read from the cache (median of 5).
//!
//! Prints wall and CPU milliseconds per page (CPU time from /proc/self/schedstat: what an idle
//! machine would take); asserts nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ratatui::layout::Rect;
use ratatui_image::picker::Picker;

use termtag::thumbs::ThumbCache;
use termtag::tui::graphics::{Kind, Renderer, Setup};
use termtag::tui::view;

const W: u16 = 160;
const H: u16 = 48;
const CELL: (u16, u16) = (10, 20);
const MAX_MP: u32 = 250;

fn main() {
    let pages: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2)
        .max(1);
    let (cols, rows) = view::gallery_grid(view::gallery_area(Rect::new(0, 0, W, H)));
    let per_page = cols * rows;
    let cells = (view::TILE.0 - 2, view::TILE.1 - 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let files = make_jpegs(dir.path(), per_page * pages);
    println!(
        "setup: {} JPEGs of 4240×2832 in {:.1}s; {W}×{H} terminal, {}×{} px cells: {cols}×{rows} tiles a page",
        files.len(),
        t.elapsed().as_secs_f64(),
        CELL.0,
        CELL.1
    );
    let setup = Setup {
        picker: Picker::halfblocks(),
        kind: Kind::Halfblocks,
        cell: CELL,
        tmux: false,
        why: "bench".into(),
        warning: None,
    };
    let renderer = Renderer::new(&setup);
    let cache = ThumbCache::new(dir.path().join("thumbs"));
    println!(
        "| page | no cache (decode whole) | first visit (make + store) | cached (median of 5) |"
    );
    println!("|---|---|---|---|");
    for (p, page) in files.chunks(per_page).enumerate() {
        let ms = |f: &dyn Fn()| {
            let (t, cpu) = (Instant::now(), cpu_ms());
            f();
            (t.elapsed().as_secs_f64() * 1e3, cpu_ms() - cpu)
        };
        let plain = ms(&|| {
            for f in page {
                let img = termtag::decode::open_upright(f, MAX_MP).expect("decode");
                renderer.thumb(&img, cells).expect("thumb");
            }
        });
        let through_cache = || {
            for f in page {
                let img = cache.get_or_make(f, MAX_MP).expect("thumbnail");
                renderer.thumb(&img, cells).expect("thumb");
            }
        };
        let first = ms(&through_cache);
        let mut cached: Vec<(f64, f64)> = (0..5).map(|_| ms(&through_cache)).collect();
        cached.sort_by(|a, b| a.0.total_cmp(&b.0));
        let show = |(wall, cpu): (f64, f64)| format!("{wall:.0} ms (CPU {cpu:.0} ms)");
        println!(
            "| {} ({} tiles) | {} | {} | {} |",
            p + 1,
            page.len(),
            show(plain),
            show(first),
            show(cached[2])
        );
    }
}

/// CPU time this thread has run, in ms (the scheduler's own count, in ns).
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

/// `n` 12 MP JPEGs, cycling through the shared photos.
fn make_jpegs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/images");
    let mut seeds: Vec<image::RgbImage> = std::fs::read_dir(&shared)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .filter_map(|p| image::open(p).ok())
        .map(|img| {
            image::imageops::resize(
                &img.to_rgb8(),
                4240,
                2832,
                image::imageops::FilterType::Triangle,
            )
        })
        .collect();
    if seeds.is_empty() {
        seeds.push(image::RgbImage::from_fn(4240, 2832, |x, y| {
            image::Rgb([(x / 17) as u8, (y / 11) as u8, ((x + y) / 23) as u8])
        }));
    }
    let mut written: Vec<PathBuf> = Vec::new();
    for (i, seed) in seeds.iter().enumerate().take(n) {
        let path = dir.join(format!("seed{i}.jpg"));
        seed.save(&path).expect("save jpeg");
        written.push(path);
    }
    // Distinct files (the cache is per file), each a copy of a seed.
    (0..n)
        .map(|i| {
            let path = dir.join(format!("img{i:04}.jpg"));
            std::fs::copy(&written[i % written.len()], &path).expect("copy");
            path
        })
        .collect()
}

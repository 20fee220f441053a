//! Indexing throughput: `cargo bench --bench index -- [N]` (default 100000).
//!
//! Makes N image files (hard links to a handful of real JPEGs and PNGs: from `../shared/images`
//! when present, generated otherwise) in 100 folders, then times a cold `init` (scan + header
//! reads + store inserts) and a no-change `refresh`. Prints images/second; asserts nothing.

use std::path::Path;
use std::time::Instant;

use termtag::model::Task;
use termtag::project::Project;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let seeds = seed_images(&dir.path().join("seeds"));
    let src = dir.path().join("images");
    let t = Instant::now();
    for i in 0..n {
        let sub = src.join(format!("d{:03}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&sub).expect("mkdir");
        }
        let seed = &seeds[i % seeds.len()];
        let ext = seed.extension().and_then(|e| e.to_str()).unwrap_or("jpg");
        std::fs::hard_link(seed, sub.join(format!("img{i:06}.{ext}"))).expect("link");
    }
    println!("setup: {n} files in {:.1}s", t.elapsed().as_secs_f64());

    let proj = dir.path().join("proj");
    let t = Instant::now();
    let project = Project::init(
        &proj,
        Task::Detect,
        &["a".into()],
        Some(src.to_str().unwrap()),
    )
    .expect("init");
    let mut store = project.store().expect("store");
    let report = project.refresh(&mut store, &|_, _| {}).expect("refresh");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "index: {} images in {secs:.2}s = {:.0} images/s ({} threads)",
        report.added,
        report.added as f64 / secs,
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let again = project.refresh(&mut store, &|_, _| {}).expect("refresh");
    println!(
        "refresh with nothing new: {} added in {:.2}s",
        again.added,
        t.elapsed().as_secs_f64()
    );
}

fn seed_images(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/images");
    let mut seeds: Vec<_> = std::fs::read_dir(&shared)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
                .collect()
        })
        .unwrap_or_default();
    if seeds.is_empty() {
        for (i, (w, h)) in [(640, 480), (1024, 768), (300, 500)]
            .into_iter()
            .enumerate()
        {
            let p = dir.join(format!("seed{i}.jpg"));
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 0]))
                .save(&p)
                .expect("save");
            seeds.push(p);
        }
    }
    seeds.sort();
    seeds
}

//! Pre-labeling throughput: `cargo bench --bench predict -- [N] [max_side=M]` (default 200
//! images; `max_side` sets `[model] max_side`, the longer side fed to the any-size model).
//!
//! Needs `../shared/models/ssd_mobilenet_v2_coco.onnx` and `../shared/images`, ONNX Runtime
//! (ORT_DYLIB_PATH or the Python package) and, for the comparison, `python3` with onnxruntime,
//! numpy and Pillow.
//!
//! Setup: every shared image upscaled to about 12 megapixels and saved as a JPEG, then linked N
//! times. Measures `termtag predict` (the library call the command makes) in images/s and the
//! share of its time spent outside `Session::run`, then the plain Python pipeline of
//! benches/predict_baseline.py (PIL decode + numpy + `InferenceSession.run`, one image at a time)
//! on the same model, images and thread count. Checks that the coffee photo gives cup, bowl and
//! dining table. Asserts no timing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use termtag::infer::{PredictOptions, predict};
use termtag::model::Task;
use termtag::project::Project;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let max_side: Option<u32> = std::env::args()
        .skip(1)
        .find_map(|a| a.strip_prefix("max_side=").and_then(|v| v.parse().ok()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared");
    let model = shared.join("models/ssd_mobilenet_v2_coco.onnx");
    if !model.is_file() {
        eprintln!(
            "{} not found: this benchmark needs ../shared",
            model.display()
        );
        return;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let t = Instant::now();
    let seeds = make_seeds(&shared.join("images"), &dir.path().join("seeds"));
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let name = seed.file_name().and_then(|s| s.to_str()).unwrap_or("x.jpg");
        let sub = images.join(format!("{:03}", i / seeds.len()));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::hard_link(seed, sub.join(name)).expect("link");
    }
    println!(
        "setup: {} seed JPEGs of ~12 MP linked {n} times in {:.1}s",
        seeds.len(),
        t.elapsed().as_secs_f64()
    );

    // A project whose classes are the COCO names the shared photos show.
    let proj = dir.path().join("proj");
    let project = Project::init(
        &proj,
        Task::Detect,
        &["cup", "bowl", "dining_table", "person", "cat", "motorcycle"].map(String::from),
        Some(images.to_str().expect("utf-8 path")),
    )
    .expect("init");
    std::fs::copy(
        shared.join("models/coco91_labels.txt"),
        proj.join("coco91_labels.txt"),
    )
    .expect("labels");
    let toml = std::fs::read_to_string(proj.join("termtag.toml"))
        .expect("toml")
        .replace(
            "\n[model]\n",
            &format!(
                "\n[model]\nlabels = \"coco91_labels.txt\"\nclass_map = {{ \"dining table\" = \"dining_table\" }}\n{}",
                max_side.map(|m| format!("max_side = {m}\n")).unwrap_or_default()
            ),
        );
    std::fs::write(proj.join("termtag.toml"), toml).expect("toml");
    let project = Project::load(&project.root).expect("load");
    let mut store = project.store().expect("store");
    project.refresh(&mut store, &|_, _| {}).expect("refresh");

    let opts = PredictOptions {
        model: Some(model.clone()),
        workers: Some(threads),
        ..PredictOptions::default()
    };
    let r = predict(&project, &mut store, &opts, &|_, _| {}).expect("predict");
    println!("adapter: {}", r.adapter);
    let secs = r.total.as_secs_f64();
    let termtag_ips = r.processed as f64 / secs;
    println!(
        "termtag predict: {} images in {secs:.1}s = {termtag_ips:.2} images/s on {} ({} decode workers, {threads} ORT threads); Session::run {:.1}s, {:.0}% of the time outside it; setup {:.1}s",
        r.processed,
        r.provider,
        threads,
        r.in_run.as_secs_f64(),
        100.0 * (1.0 - r.in_run.as_secs_f64() / secs),
        r.setup.as_secs_f64()
    );

    // Sanity: the coffee photo.
    let coffee: Vec<(String, f64)> = store
        .predicted_images(Some(r.run_id))
        .expect("predictions")
        .into_iter()
        .find(|im| im.key.ends_with("coffee.jpg"))
        .map(|im| {
            im.predictions
                .into_iter()
                .filter(|p| p.score > 0.3)
                .map(|p| (p.class, p.score))
                .collect()
        })
        .unwrap_or_default();
    println!("coffee: {coffee:?}");
    for want in ["cup", "bowl", "dining_table"] {
        assert!(
            coffee.iter().any(|(c, _)| c == want),
            "the coffee photo should give {want}: {coffee:?}"
        );
    }

    // The plain Python pipeline on the same files.
    let files: Vec<PathBuf> = walk(&images);
    let list = dir.path().join("files.txt");
    std::fs::write(
        &list,
        files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .expect("list");
    let out = Command::new("python3")
        .arg(root.join("benches/predict_baseline.py"))
        .arg(&model)
        .arg(&list)
        .arg(threads.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            print!("{text}");
            if let Some(py_ips) = text
                .lines()
                .find_map(|l| l.strip_prefix("python images/s "))
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                println!(
                    "termtag / python: {:.2}× the images per second",
                    termtag_ips / py_ips
                );
            }
        }
        Ok(o) => println!(
            "python baseline failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("python baseline not run: {e}"),
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Each shared image upscaled to ~12 MP (aspect kept) as a JPEG.
fn make_seeds(shared_images: &Path, out: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(out).expect("mkdir");
    let mut srcs: Vec<PathBuf> = std::fs::read_dir(shared_images)
        .expect("../shared/images")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    srcs.sort();
    srcs.iter()
        .map(|src| {
            let img = image::open(src).expect("decode").to_rgb8();
            let s = (12e6 / (f64::from(img.width()) * f64::from(img.height()))).sqrt();
            let (w, h) = (
                (f64::from(img.width()) * s) as u32,
                (f64::from(img.height()) * s) as u32,
            );
            let big = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("img");
            let path = out.join(format!("{stem}.jpg"));
            big.save(&path).expect("save jpeg");
            path
        })
        .collect()
}

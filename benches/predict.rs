//! Pre-labeling throughput: `cargo bench --bench predict -- [N] [max_side=M]` (default 200
//! images; `max_side` sets `[model] max_side`, the longer side fed to the any-size model).
//!
//! Needs `../shared/models/ssd_mobilenet_v2_coco.onnx` and `../shared/images`, ONNX Runtime
//! (ORT_DYLIB_PATH or the Python package) and, for the comparison, `python3` with onnxruntime,
//! numpy and Pillow.
//!
//! Setup: every shared image upscaled to about 12 megapixels and saved as a JPEG, then linked N
//! times. Measures `termtag predict` (the library call the command makes) in images/s and the
//! share of its time spent outside `Session::run`, then the two Python pipelines of
//! benches/predict_baseline.py on the same model, images and thread count: the careful one (PIL
//! `draft` + `thumbnail` to 1024, a 2-thread decode pool ahead of `run`) and the naive one
//! (full-size decode, one image at a time). Checks that the coffee photo gives cup, bowl and
//! dining table. Asserts no timing.
//!
//! `cargo bench --bench predict -- capacity [N] [input=WxH] [keep=DIR]`: the pipeline without
//! inference (what a GPU would be fed): decode, orientation, resize and tensor packing for a
//! WIDTH×HEIGHT letterboxed float NCHW input (default 640×640), one thread, in images/s per core,
//! for 12 MP JPEGs, 12 MP PNGs and 2 MP JPEGs; per JPEG set with the DCT-scaled decoder predict
//! uses and with the general (full-size) decoder; beside PIL (`draft` + resize + numpy) in one
//! Python thread on the same files. `keep=DIR` makes the files there once and reuses them.
//!
//! `cargo bench --bench predict -- pipeline LIST [input=WxH]`: that pipeline once over each file
//! named in LIST, timing nothing: for counting its instructions under valgrind, which load
//! cannot distort (scripts/decode-instructions.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use termtag::infer::config::Normalize;
use termtag::infer::preprocess::{Elem, Fit, InputSpec, Layout, Size};
use termtag::infer::{PredictOptions, predict};
use termtag::model::Task;
use termtag::project::Project;

fn main() {
    if std::env::args().any(|a| a == "capacity") {
        capacity();
        return;
    }
    if std::env::args().any(|a| a == "pipeline") {
        pipeline();
        return;
    }
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
            for row in ["careful", "naive"] {
                if let Some(py_ips) = text
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("python {row} images/s ")))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                {
                    println!(
                        "termtag / python {row}: {:.2}× the images per second",
                        termtag_ips / py_ips
                    );
                }
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

/// `capacity` mode: decode + orientation + resize + packing with no inference, one thread, beside
/// PIL on the same files.
fn capacity() {
    use termtag::infer::preprocess::{decode_image, needed_long_side, prepare};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(24);
    let spec = input_spec(&args);
    let Size::Fixed { w, h } = spec.size else {
        unreachable!("a fixed input")
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/images");
    if !shared.is_dir() {
        eprintln!(
            "{} not found: this benchmark needs ../shared",
            shared.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = match args.iter().find_map(|a| a.strip_prefix("keep=")) {
        Some(d) => PathBuf::from(d),
        None => tmp.path().to_path_buf(),
    };
    let made = |sub: &str, make: &dyn Fn(&Path) -> Vec<PathBuf>| {
        let out = dir.join(sub);
        if out.is_dir() {
            walk(&out)
        } else {
            let part = dir.join(format!("{sub}.part"));
            let _ = std::fs::remove_dir_all(&part);
            make(&part);
            std::fs::rename(&part, &out).expect("rename");
            walk(&out)
        }
    };
    let jpeg12 = made("jpeg12", &|d| make_seeds(&shared, d));
    let png12 = made("png12", &|d| reencode(&jpeg12, d, None, "png"));
    let jpeg2 = made("jpeg2", &|d| reencode(&jpeg12, d, Some(2e6), "jpg"));
    println!(
        "input {w}×{h} letterboxed, float32 NCHW; {n} files per set; one thread; median of {ROUNDS} rounds"
    );
    println!("| files | pipeline | images/s | images per CPU second | vs PIL (CPU) |");
    println!("|---|---|---|---|---|");
    for (label, files) in [
        ("12 MP JPEG", &jpeg12),
        ("12 MP PNG", &png12),
        ("2 MP JPEG", &jpeg2),
    ] {
        let list: Vec<&PathBuf> = files.iter().cycle().take(n).collect();
        let listing = tmp.path().join("capacity.txt");
        std::fs::write(
            &listing,
            list.iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .expect("list");
        let pil_once = || {
            let o = Command::new("python3")
                .arg(root.join("benches/predict_baseline.py"))
                .args(["--capacity", &w.to_string(), &h.to_string()])
                .arg(&listing)
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            Some((
                field("pil images/s ")?,
                field("pil images per cpu second ")?,
            ))
        };
        let pil = median((0..ROUNDS).map(|_| pil_once()).collect());
        let rust = |long_side: u32| {
            let mut resizer = fast_image_resize::Resizer::new();
            let mut one = |f: &Path| {
                let img = decode_image(f, 250, long_side).expect("decode");
                prepare(&img, &spec, &mut resizer).expect("prepare");
            };
            files.iter().for_each(|f| one(f));
            let rounds = (0..ROUNDS)
                .map(|_| {
                    let (t, cpu) = (Instant::now(), thread_cpu_secs());
                    list.iter().for_each(|f| one(f));
                    Some((
                        n as f64 / t.elapsed().as_secs_f64(),
                        n as f64 / (thread_cpu_secs() - cpu),
                    ))
                })
                .collect();
            median(rounds).expect("timed")
        };
        let row = |name: &str, (ips, cps): (f64, f64)| {
            let vs = pil.map_or("-".into(), |(_, p)| format!("{:.2}×", cps / p));
            println!("| {label} | {name} | {ips:.1} | {cps:.1} | {vs} |");
        };
        let long_side = needed_long_side(&spec);
        let (fw, fh) = image::image_dimensions(files[0].as_path()).expect("dimensions");
        let is_jpeg = files[0].extension().is_some_and(|e| e == "jpg");
        if is_jpeg && fw.max(fh) >= 4 * long_side {
            row("termtag (jpeg-decoder, DCT-scaled 1/4)", rust(long_side));
            row("termtag, full-size decode (zune-jpeg)", rust(0));
        } else if is_jpeg {
            row("termtag (zune-jpeg, full size)", rust(long_side));
        } else {
            row("termtag (image png)", rust(long_side));
        }
        match pil {
            Some((ips, cps)) => {
                println!("| {label} | PIL draft + resize + numpy | {ips:.1} | {cps:.1} | 1× |")
            }
            None => println!("| {label} | PIL | not run (python3 with Pillow and numpy) | | |"),
        }
    }
}

/// Timed rounds per pipeline in `capacity` mode; the median is shown.
const ROUNDS: usize = 3;

/// Per pair, the median of the first values and the median of the second; `None` if any is.
fn median(rounds: Vec<Option<(f64, f64)>>) -> Option<(f64, f64)> {
    let rounds: Vec<(f64, f64)> = rounds.into_iter().collect::<Option<_>>()?;
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Some((
        mid(rounds.iter().map(|r| r.0).collect()),
        mid(rounds.iter().map(|r| r.1).collect()),
    ))
}

/// CPU time of this thread (user + system), from /proc: unlike wall time, waiting for a core on a
/// busy machine does not count.
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0 // USER_HZ
}

/// A WIDTH×HEIGHT (`input=WxH`, default 640×640) letterboxed float32 NCHW input in 0..1.
fn input_spec(args: &[String]) -> InputSpec {
    let (w, h): (u32, u32) = args
        .iter()
        .find_map(|a| {
            let (w, h) = a.strip_prefix("input=")?.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((640, 640));
    InputSpec {
        name: "x".into(),
        elem: Elem::F32,
        layout: Layout::Nchw,
        size: Size::Fixed { w, h },
        fit: Fit::Letterbox(114),
        normalize: Normalize::Unit,
        batch: 1,
        fixed_batch: false,
    }
}

/// `pipeline` mode: the capacity pipeline (DCT-scaled decode where predict uses it, resize,
/// packing) once over each file named in the list, untimed.
fn pipeline() {
    use termtag::infer::preprocess::{decode_image, needed_long_side, prepare};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(list) = args.iter().skip_while(|a| *a != "pipeline").nth(1) else {
        eprintln!("usage: pipeline LIST [input=WxH]");
        return;
    };
    let spec = input_spec(&args);
    let mut resizer = fast_image_resize::Resizer::new();
    let text = std::fs::read_to_string(list).expect("the list of files");
    for f in text.lines().filter(|l| !l.is_empty()) {
        let img = decode_image(Path::new(f), 250, needed_long_side(&spec)).expect("decode");
        prepare(&img, &spec, &mut resizer).expect("prepare");
    }
}

/// `seeds` saved again as `ext`, scaled to about `megapixels` when given.
fn reencode(seeds: &[PathBuf], out: &Path, megapixels: Option<f64>, ext: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(out).expect("mkdir");
    seeds
        .iter()
        .map(|src| {
            let mut img = image::open(src).expect("decode").to_rgb8();
            if let Some(mp) = megapixels {
                let s = (mp / (f64::from(img.width()) * f64::from(img.height()))).sqrt();
                let (w, h) = (
                    (f64::from(img.width()) * s) as u32,
                    (f64::from(img.height()) * s) as u32,
                );
                img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            }
            let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("img");
            let path = out.join(format!("{stem}.{ext}"));
            img.save(&path).expect("save");
            path
        })
        .collect()
}

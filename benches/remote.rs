//! Remote transfer and listing speed against an Azurite of its own (and the local-folder
//! backend for listing): `cargo bench --bench remote -- [LIST_N]` (default 10000; creating blobs in Azurite runs at about 40 a second here).
//!
//! Needs Azurite in `.tools/` (scripts/test.sh installs it). Prints seconds and speed-ups;
//! asserts nothing beyond the operations succeeding.
//! - pull of 200 images (~150 KB JPEGs): concurrency 8 vs 1 (sequential);
//! - push of 1,000 reviewed images: concurrency 8 vs 1;
//!   both also with 20 ms added to every request, a stand-in for the round trip to a distant
//!   storage account (localhost Azurite has none, so there concurrency only shares its CPU);
//! - listing LIST_N blobs in Azurite (pages of 5,000) and 100,000 files in a local folder.
//!
//! `cargo bench --bench remote -- scale [N] [azurite=M]` (default 100000, M = N): a local-folder
//! remote of N small PNGs and an Azurite (in memory) of M, each filled once (32 uploads in flight)
//! with a `totag` CSV holding a prediction for each image (as active-learning-detect writes it);
//! then, measured on each: listing every blob, and `pull` of the 50 most uncertain (the CSV,
//! checks and claims of those 50, downloads, the store; the images are not listed), checked to be
//! those 50, with the requests it made.

#[path = "../tests/remote_support/mod.rs"]
mod remote_support;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use remote_support::{Backend, Counted, OwnAzurite};
use termtag::model::{BBox, Dataset, ImageLabels, Label};
use termtag::remote::{self, PullOptions, PutMode, Remote, list_all};

fn photo() -> Vec<u8> {
    // Noise compresses badly, like a photo: about 100 KB as JPEG.
    let mut x: u32 = 12345;
    let img = image::RgbImage::from_fn(400, 300, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .expect("jpeg");
    out
}

async fn upload(remote: &dyn Remote, names: impl Iterator<Item = String>, body: &[u8], par: usize) {
    futures::stream::iter(names)
        .map(|n| async move {
            remote
                .put(&n, body.to_vec(), PutMode::Overwrite)
                .await
                .expect("upload");
        })
        .buffer_unordered(par)
        .collect::<Vec<()>>()
        .await;
}

fn label_all(store: &mut termtag::store::Store) {
    let images = store
        .held_claims()
        .expect("claims")
        .into_iter()
        .map(|c| ImageLabels {
            key: c.key,
            width: 400,
            height: 300,
            labels: vec![Label {
                class: "can".into(),
                bbox: Some(BBox {
                    x0: 0.1,
                    y0: 0.2,
                    x1: 0.5,
                    y1: 0.6,
                }),
                score: None,
            }],
        })
        .collect();
    store
        .import_labels(
            &Dataset {
                classes: vec!["can".into()],
                images,
            },
            "bench",
        )
        .expect("label");
}

fn main() {
    if std::env::args().any(|a| a == "scale") {
        let n = std::env::args()
            .skip(1)
            .find_map(|a| a.parse().ok())
            .unwrap_or(100_000);
        let azurite_n = std::env::args()
            .find_map(|a| a.strip_prefix("azurite=")?.parse().ok())
            .unwrap_or(n);
        scale(n, azurite_n);
        return;
    }
    let list_n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let az = OwnAzurite::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let body = photo();
    println!("image size: {} KB", body.len() / 1024);

    // Pull of 200 images.
    for delay_ms in [0u64, 20] {
        let mut pull_secs = Vec::new();
        for par in [8usize, 1] {
            let b = Backend::azure(&az.url(), &format!("pull{par}-{delay_ms}"));
            let dir = tempfile::tempdir().expect("tempdir");
            let p = b.project(dir.path());
            let set = b.open(&p);
            let mut s = p.store().expect("store");
            rt.block_on(async {
                set.images.ensure_exists().await.expect("container");
                set.labels.ensure_exists().await.expect("container");
                upload(
                    set.images.as_ref(),
                    (0..200).map(|i| format!("img{i:04}.jpg")),
                    &body,
                    16,
                )
                .await;
            });
            let set = Counted::wrap(&set, Duration::from_millis(delay_ms));
            let t = Instant::now();
            let r = rt
                .block_on(remote::pull(
                    &p,
                    &mut s,
                    &set,
                    &PullOptions {
                        count: 200,
                        concurrency: Some(par),
                        ..Default::default()
                    },
                    &|_| {},
                ))
                .expect("pull");
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(r.claimed.len(), 200);
            println!(
                "pull 200 images, +{delay_ms} ms per request, concurrency {par}: {secs:.2}s ({:.1} MB/s, claims + downloads + store)",
                r.bytes as f64 / 1e6 / secs
            );
            pull_secs.push(secs);
        }
        println!(
            "pull speed-up, +{delay_ms} ms per request, 8 over 1: {:.1}x",
            pull_secs[1] / pull_secs[0]
        );

        // Push of 1,000 reviewed images.
        let mut push_secs = Vec::new();
        for par in [8usize, 1] {
            let b = Backend::azure(&az.url(), &format!("push{par}-{delay_ms}"));
            let dir = tempfile::tempdir().expect("tempdir");
            let mut p = b.project(dir.path());
            p.config.remote.concurrency = par;
            let set = b.open(&p);
            let mut s = p.store().expect("store");
            let small = remote_support::png(1);
            rt.block_on(async {
                set.images.ensure_exists().await.expect("container");
                set.labels.ensure_exists().await.expect("container");
                upload(
                    set.images.as_ref(),
                    (0..1000).map(|i| format!("img{i:04}.png")),
                    &small,
                    16,
                )
                .await;
                remote::pull(
                    &p,
                    &mut s,
                    &set,
                    &PullOptions {
                        count: 1000,
                        concurrency: Some(16),
                        ..Default::default()
                    },
                    &|_| {},
                )
                .await
                .expect("pull");
            });
            label_all(&mut s);
            let set = Counted::wrap(&set, Duration::from_millis(delay_ms));
            let t = Instant::now();
            let r = rt
                .block_on(remote::push(&p, &mut s, &set, &|_| {}))
                .expect("push");
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(r.images, 1000);
            println!(
                "push 1000 labeled images, +{delay_ms} ms per request, concurrency {par}: {secs:.2}s (batch + done markers + 3 CSVs + claim releases)"
            );
            push_secs.push(secs);
        }
        println!(
            "push speed-up, +{delay_ms} ms per request, 8 over 1: {:.1}x",
            push_secs[1] / push_secs[0]
        );
    }

    // Listing.
    let b = Backend::azure(&az.url(), "list");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = b.project(dir.path());
    let set = b.open(&p);
    rt.block_on(async {
        set.images.ensure_exists().await.expect("container");
        let t = Instant::now();
        upload(set.images.as_ref(), (0..list_n).map(|i| format!("d{:02}/img{i:06}.jpg", i % 50)), b"x", 64).await;
        println!("created {list_n} blobs in Azurite in {:.1}s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let all = list_all(set.images.as_ref(), "").await.expect("list");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(all.len(), list_n);
        println!(
            "list {list_n} blobs (Azurite, pages of 5000): {secs:.2}s = {:.0} blobs/s; 100k extrapolated linearly: {:.1}s",
            list_n as f64 / secs,
            secs * 100_000.0 / list_n as f64
        );
    });

    let local_dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    for i in 0..100_000 {
        let sub = local_dir.path().join(format!("d{:02}", i % 50));
        if i < 50 {
            std::fs::create_dir_all(&sub).expect("mkdir");
        }
        std::fs::write(sub.join(format!("img{i:06}.jpg")), b"x").expect("write");
    }
    println!("created 100000 files in {:.1}s", t.elapsed().as_secs_f64());
    let local = remote::local::LocalRemote::new(local_dir.path());
    let t = Instant::now();
    let all = rt.block_on(list_all(&local, "")).expect("list");
    println!(
        "list 100000 blobs (local folder backend, pages of 5000): {:.2}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(all.len(), 100_000);
}

/// Uploads in flight while filling a scale container: Azurite answers one at a time, so more
/// only queue (256 left one waiting past the retry budget).
const SEED_IN_FLIGHT: usize = 32;

/// The container-scale run: see the module comment.
fn scale(n: usize, azurite_n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let folder = tempfile::tempdir().expect("tempdir");
    let b = Backend::local(folder.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let p = b.project(dir.path());
    let set = b.open(&p);
    fill(&rt, &set, n, "local folder");
    measure(&rt, &p, &set, n, "local folder");

    let az = OwnAzurite::start_in_memory();
    let b = Backend::azure(&az.url(), "scale");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = b.project(dir.path());
    let set = b.open(&p);
    fill(&rt, &set, azurite_n, "Azurite (in memory)");
    measure(&rt, &p, &set, azurite_n, "Azurite");
}

fn scale_key(i: usize) -> String {
    format!("d{:02}/img{i:06}.png", i % 50)
}

/// Confidence of image `i` of `n`: a fixed permutation, so the 50 most uncertain are known.
fn scale_conf(i: usize, n: usize) -> f64 {
    ((i * 7919) % n) as f64 / n as f64
}

/// Creates the containers, `n` small PNGs (the speed of each tenth printed: Azurite slows as it
/// fills) and a `totag` CSV with a prediction for each, as active-learning-detect writes it.
fn fill(rt: &tokio::runtime::Runtime, set: &remote::RemoteSet, n: usize, label: &str) {
    let body = remote_support::png(1);
    rt.block_on(async {
        set.images.ensure_exists().await.expect("container");
        set.labels.ensure_exists().await.expect("container");
        let start = Instant::now();
        let step = n.div_ceil(10).max(1);
        for from in (0..n).step_by(step) {
            let t = Instant::now();
            let to = (from + step).min(n);
            futures::stream::iter(from..to)
                .map(|i| {
                    let body = body.clone();
                    async move {
                        // A set-up upload that failed (Azurite stalls now and then under load)
                        // is simply made again: overwriting is idempotent.
                        let mut tries = 0;
                        while let Err(e) = set
                            .images
                            .put(&scale_key(i), body.clone(), PutMode::Overwrite)
                            .await
                        {
                            tries += 1;
                            assert!(tries < 5, "upload: {e}");
                        }
                    }
                })
                .buffer_unordered(SEED_IN_FLIGHT)
                .collect::<Vec<()>>()
                .await;
            println!(
                "set-up, {label}: blobs {from}..{to} at {:.0} a second ({SEED_IN_FLIGHT} in flight)",
                (to - from) as f64 / t.elapsed().as_secs_f64()
            );
        }
        println!(
            "set-up, {label}: created {n} blobs in {:.0}s",
            start.elapsed().as_secs_f64()
        );
        let mut totag = String::from(
            "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n",
        );
        for i in 0..n {
            let k = scale_key(i);
            let (folder, file) = k.split_once('/').expect("a folder");
            let c = scale_conf(i, n);
            totag.push_str(&format!(
                "{file},can,0.1,0.5,0.1,0.5,12,16,{folder},{c:.6},{c:.6}\n"
            ));
        }
        set.labels
            .put("totag_1000.csv", totag.into_bytes(), PutMode::Create)
            .await
            .expect("totag");
    });
}

/// Measured: listing all `n` blobs (twice), and `pull` of the 50 most uncertain, checked to be
/// those 50, with its requests counted.
fn measure(
    rt: &tokio::runtime::Runtime,
    p: &termtag::project::Project,
    set: &remote::RemoteSet,
    n: usize,
    label: &str,
) {
    for run in 1..=2 {
        let t = Instant::now();
        let all = rt
            .block_on(list_all(set.images.as_ref(), ""))
            .expect("list");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(all.len(), n);
        println!(
            "{label}: list {n} blobs (pages of 5000), run {run}: {secs:.2}s = {:.0} blobs/s",
            n as f64 / secs
        );
    }
    let images = std::sync::Arc::new(Counted::new(set.images.clone()));
    let labels = std::sync::Arc::new(Counted::new(set.labels.clone()));
    let counted = remote::RemoteSet {
        images: images.clone(),
        labels: labels.clone(),
        ..set.clone()
    };
    let mut store = p.store().expect("store");
    let t = Instant::now();
    let r = rt
        .block_on(remote::pull(
            p,
            &mut store,
            &counted,
            &PullOptions {
                count: 50,
                ..Default::default()
            },
            &|_| {},
        ))
        .expect("pull");
    let secs = t.elapsed().as_secs_f64();
    let mut want: Vec<usize> = (0..n).collect();
    want.sort_by(|a, b| scale_conf(*a, n).total_cmp(&scale_conf(*b, n)));
    let mut want: Vec<String> = want.into_iter().take(50).map(scale_key).collect();
    want.sort();
    assert_eq!(r.claimed, want, "the 50 most uncertain");
    assert!(!r.listed, "the predictions named enough images");
    println!(
        "{label}: pull the 50 most uncertain of {n} (totag CSV of {n} rows, checks, claims, downloads, store): {secs:.2}s, {} predictions, {} requests, {} pages listing the images",
        r.predictions,
        images.requests() + labels.requests(),
        images.whole_listings()
    );
}

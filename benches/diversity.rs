//! Near-duplicate grouping of the review queue's diversity option:
//! `cargo bench --bench diversity -- [N...]` (default 10000 100000).
//!
//! For each N: N synthetic pictures (64×48, N/5 smooth random pictures drawn 5 times with a
//! small gain and noise, signatures by `diversity::signature`), twice: unrelated pictures, and
//! pictures sharing 30% of their content (different pictures then correlate up to ~0.68, as
//! the demo's boards of one kind of wood do, ≤ 0.69). Times the hashed
//! grouping (`Groups::new`, one thread, median of 3) and the review queue with diversity on,
//! and measures against the pairwise grouping: exactly (all cores) up to 20,000 pictures, else
//! the pair recall on 300 sampled pictures compared with every other. Also: the signatures
//! written to a label store and read back and grouped, as the review screen's store worker does.
//!
//! `DIVERSITY_STORE=path/labels.db` also compares the two groupings on the signatures stored in
//! a project (e.g. the planted boards of scripts/simulate/bench.sh). Asserts nothing.

use std::sync::Arc;
use std::time::Instant;
use termtag::rng::SplitMix;

use rayon::prelude::*;
use termtag::diversity::{DEFAULT_SIMILARITY, Groups, Signature, signature};
use termtag::model::ImageStatus;
use termtag::queue::{
    Diversity, QueueConfig, QueueImage, QueueParams, Scored, review_queue, score,
};

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    // What predict's decode workers add per picture.
    let photo = image::RgbImage::from_fn(1024, 768, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 256) as u8])
    });
    let t = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(signature(std::hint::black_box(&photo)));
    }
    println!("signature of a 1024×768 picture: {:.2} ms", ms(t) / 20.0);
    if let Ok(path) = std::env::var("DIVERSITY_STORE") {
        let store =
            termtag::store::Store::open(std::path::Path::new(&path), "bench").expect("store");
        let sigs = store.signatures().expect("signatures");
        println!("{path}: {} stored signatures", sigs.len());
        compare(&sigs, true);
    }
    for n in sizes {
        for shared in [0.0, 0.3] {
            let t = Instant::now();
            let sigs = planted(n / 5, 5, shared, 42);
            println!(
                "\n{n} pictures ({} × 5 copies, shared content {shared}): signatures in {:.1}s",
                n / 5,
                t.elapsed().as_secs_f64()
            );
            compare(&sigs, n <= 20_000);
            queue(&sigs);
            if shared == 0.0 {
                from_store(&sigs);
            }
        }
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn compare(sigs: &[(i64, Signature)], exact: bool) {
    let mut times = Vec::new();
    let mut hashed = Groups::default();
    for _ in 0..3 {
        let t = Instant::now();
        hashed = Groups::new(sigs, DEFAULT_SIMILARITY);
        times.push(ms(t));
    }
    println!(
        "  hashed grouping (one thread): {:.0} ms (median of 3), {} groups",
        median(times),
        hashed.count()
    );
    if exact {
        let t = Instant::now();
        let reference = Groups::exact(sigs, DEFAULT_SIMILARITY);
        let took = ms(t);
        let want = reference.members();
        let got: std::collections::HashSet<Vec<i64>> = hashed.members().into_iter().collect();
        let same = want.iter().filter(|g| got.contains(*g)).count();
        // Pictures in a pairwise group that the hashed grouping does not reproduce exactly.
        let moved: usize = want
            .iter()
            .filter(|g| !got.contains(*g))
            .map(Vec::len)
            .sum();
        println!(
            "  pairwise grouping ({} threads): {took:.0} ms, {} groups; the hashed one has {same} of them exactly ({moved} pictures in groups it does not reproduce)",
            rayon::current_num_threads(),
            want.len()
        );
    }
    // Pair recall: pairs correlating ≥ the threshold (direct near-duplicates) that the hashed
    // grouping puts in one group, for 300 sampled pictures against all.
    let step = (sigs.len() / 300).max(1);
    let (found, pairs) = sigs
        .par_iter()
        .step_by(step)
        .map(|(a, sa)| {
            let mut f = (0usize, 0usize);
            for (b, sb) in sigs {
                if a != b && sa.similarity(sb) >= DEFAULT_SIMILARITY {
                    f.1 += 1;
                    f.0 += usize::from(hashed.same_group(*a, *b));
                }
            }
            f
        })
        .reduce(|| (0, 0), |x, y| (x.0 + y.0, x.1 + y.1));
    println!(
        "  pair recall on sampled pictures: {found}/{pairs} = {:.4}",
        found as f64 / pairs.max(1) as f64
    );
}

/// The review queue of all the pictures with diversity on (every picture predicted, one box).
fn queue(sigs: &[(i64, Signature)]) {
    let cfg = QueueConfig {
        diversity: Some(true),
        ..QueueConfig::default()
    };
    let mut p = QueueParams::new(&cfg, 0.1, 2);
    let class: Arc<str> = "a".into();
    let images: Vec<QueueImage> = sigs
        .iter()
        .map(|(id, _)| QueueImage {
            id: *id,
            preds: vec![Scored {
                class: class.clone(),
                score: 0.1 + 0.8 * ((*id * 7919) % 1000) as f64 / 1000.0,
                boxed: true,
            }],
            decided: false,
        })
        .collect();
    let rows: Vec<(i64, ImageStatus)> =
        sigs.iter().map(|(id, _)| (*id, ImageStatus::New)).collect();
    let scored = score(&images, &p);
    let t = Instant::now();
    let plain = review_queue(&rows, &scored, false, &p).len();
    let without = ms(t);
    if let Some(d) = &mut p.diversity {
        *d = Diversity {
            similarity: DEFAULT_SIMILARITY,
            groups: Arc::new(Groups::new(sigs, DEFAULT_SIMILARITY)),
        };
    }
    let t = Instant::now();
    let diverse = review_queue(&rows, &scored, false, &p).len();
    println!(
        "  review_queue of {plain} images: {without:.0} ms with no groups known, {:.0} ms with the groups ({diverse} placed)",
        ms(t)
    );
}

/// What the review screen's store worker does with diversity on: read every stored signature
/// and group them.
fn from_store(sigs: &[(i64, Signature)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store =
        termtag::store::Store::open(&dir.path().join("labels.db"), "bench").expect("store");
    let images: Vec<termtag::store::NewImage> = sigs
        .iter()
        .map(|(id, _)| termtag::store::NewImage {
            key: format!("img{id:07}.png"),
            width: 64,
            height: 48,
            orientation: 1,
            size: 1,
            error: None,
        })
        .collect();
    store.add_images(&images).expect("images");
    let t = Instant::now();
    store.write_signatures(sigs).expect("write");
    let wrote = ms(t);
    let mut times = Vec::new();
    let mut groups = 0;
    for _ in 0..3 {
        let t = Instant::now();
        groups = Groups::from_store(&store, DEFAULT_SIMILARITY)
            .expect("read")
            .count();
        times.push(ms(t));
    }
    println!(
        "  store: {} signatures written in {wrote:.0} ms; read and grouped in {:.0} ms (median of 3, {groups} groups)",
        sigs.len(),
        median(times)
    );
}

type Wave = [f32; 4];

fn waves(rng: &mut SplitMix) -> Vec<Wave> {
    (0..8)
        .map(|_| {
            [
                (rng.unit_f32() - 0.5) * 1.2,
                (rng.unit_f32() - 0.5) * 1.2,
                rng.unit_f32() * std::f32::consts::TAU,
                rng.unit_f32(),
            ]
        })
        .collect()
}

fn field(w: &[Wave], x: f32, y: f32) -> f32 {
    w.iter()
        .map(|w| w[3] * (w[0] * x + w[1] * y + w[2]).sin())
        .sum()
}

/// `bases` pictures, each `shared` of one common picture and the rest its own, drawn `copies`
/// times with a gain in [0.9, 1.1] and uniform noise of ±6 grey levels; ids 1.., copies adjacent.
fn planted(bases: usize, copies: usize, shared: f32, seed: u64) -> Vec<(i64, Signature)> {
    let common = waves(&mut SplitMix(seed ^ 0xc0ffee));
    (0..bases)
        .into_par_iter()
        .flat_map_iter(|b| {
            let mut rng = SplitMix(seed.wrapping_mul(1_000_003).wrapping_add(b as u64));
            let own = waves(&mut rng);
            let common = &common;
            (0..copies)
                .map(|c| {
                    let gain = 0.9 + 0.2 * rng.unit_f32();
                    let img = image::RgbImage::from_fn(64, 48, |x, y| {
                        let (x, y) = (x as f32, y as f32);
                        let v = shared * field(common, x, y) + (1.0 - shared) * field(&own, x, y);
                        let noise = (rng.unit_f32() - 0.5) * 12.0;
                        let g = (128.0 + 25.0 * v * gain + noise).clamp(0.0, 255.0) as u8;
                        image::Rgb([g, g, g])
                    });
                    ((b * copies + c) as i64 + 1, signature(&img))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

//! A container pre-labelled by a fleet of machines: `termtag predict --stream --shard K/N` run as
//! separate processes, each in a fresh project folder of its own (a Kubernetes pod's disk is
//! gone when the pod is), against Azurite and against the local-folder backend.
//!
//! - four shards at once predict every image exactly once across their parts, with the scores
//!   the model gives, and one of them writes the merged `totag` CSV;
//! - a shard killed (SIGKILL) mid-run and started again in a new folder loses and doubles
//!   nothing;
//! - three annotators who pull afterwards get disjoint batches, the most uncertain images first;
//!   with a shard still missing, pull ranks the parts of the shards that finished.
//!
//! The model is tests/fixtures/onnx/square_yolo.onnx: on a dark 64×64 image with one red pixel of
//! level L it finds a box scoring (L/255 − 0.6)·2.5, so every image here has its own score.
//! Needs ORT_DYLIB_PATH; the azure_ tests need AZURITE_BLOB_URL (both set by scripts/test.sh).

mod common;
mod remote_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use remote_support::{Backend, azurite_url, unique};
use termtag::formats::ald_csv::Rows;
use termtag::infer::Shard;
use termtag::remote::fleet::PartDoc;
use termtag::remote::{PutMode, RemoteSet, list_all};

/// The images of the main scenario.
const IMAGES: u32 = 40;

fn key(i: u32) -> String {
    format!("img_{i:03}.png")
}

/// Image `i`'s red level: a permutation of 200..240, so that score order is not key order.
fn level(i: u32) -> u8 {
    (200 + (i * 17) % 40) as u8
}

/// The score square_yolo gives image `i` (computed in f32, as the model does).
fn truth(i: u32) -> f64 {
    f64::from((f32::from(level(i)) / 255.0 - 0.6) * 2.5)
}

/// A `side`×`side` dark PNG with one red pixel of [`level`]`(i)`.
fn picture(i: u32, side: u32) -> Vec<u8> {
    let (px, py) = ((i * 7) % (side - 4) + 2, (i * 11) % (side - 4) + 2);
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        if (x, y) == (px, py) {
            image::Rgb([level(i), 0, 0])
        } else {
            image::Rgb([0, 0, 0])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn model() -> String {
    common::onnx_fixture("square_yolo.onnx")
}

/// The containers, a place for the machines' folders, and a reader of what they wrote.
struct Fleet {
    b: Backend,
    root: tempfile::TempDir,
    set: RemoteSet,
    rt: tokio::runtime::Runtime,
}

impl Fleet {
    /// `n` images of `side` pixels, plus a broken PNG and a file that is no image.
    fn new(b: Backend, n: u32, side: u32) -> Fleet {
        let mut images: Vec<(String, Vec<u8>)> =
            (0..n).map(|i| (key(i), picture(i, side))).collect();
        images.push(("broken.png".into(), b"not a png at all".to_vec()));
        images.push(("notes.txt".into(), b"not an image".to_vec()));
        Fleet::seeded(b, images)
    }

    /// The images container holding `images` (name, bytes).
    fn seeded(b: Backend, images: Vec<(String, Vec<u8>)>) -> Fleet {
        common::need_runtime();
        let root = tempfile::tempdir().unwrap();
        let seeder = b.project(&root.path().join("seeder"));
        let set = b.open(&seeder);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            set.images.ensure_exists().await.unwrap();
            set.labels.ensure_exists().await.unwrap();
            let puts = images.into_iter().map(|(name, body)| {
                let images = set.images.clone();
                async move {
                    images.put(&name, body, PutMode::Overwrite).await.unwrap();
                }
            });
            use futures::StreamExt as _;
            futures::stream::iter(puts)
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        });
        Fleet { b, root, set, rt }
    }

    /// A fresh project folder on the containers, as a new pod or annotator has.
    fn machine(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(unique(name));
        let mut init = vec![
            "init".to_string(),
            dir.to_string_lossy().into_owned(),
            "--task".into(),
            "detect".into(),
            "--classes".into(),
            "can".into(),
        ];
        if let Backend::Azure { url, images, .. } = &self.b {
            init.extend(["--source".into(), format!("{url}/{images}")]);
        }
        let out = self.cmd(self.root.path(), &init).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.join("termtag.toml");
        let mut toml = std::fs::read_to_string(&file).unwrap();
        match &self.b {
            Backend::Azure { labels, .. } => {
                toml = toml.replace(
                    "labels_container = \"activelearninglabels\"",
                    &format!("labels_container = \"{labels}\""),
                );
            }
            Backend::Local {
                root,
                images,
                labels,
            } => {
                toml.push_str(&format!(
                    "\n[remote]\nfolder = {:?}\nimages_container = {images:?}\nlabels_container = {labels:?}\n",
                    root.to_string_lossy()
                ));
            }
        }
        std::fs::write(&file, toml).unwrap();
        dir
    }

    fn cmd(&self, dir: &Path, args: &[String]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_termtag"));
        c.env_remove("AZURE_STORAGE_SAS_URL")
            .env_remove("AZURE_STORAGE_CONNECTION_STRING")
            .env("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
            .env("AZURE_STORAGE_KEY", termtag::remote::auth::AZURITE_KEY)
            .env("USER", "fleet")
            .env_remove("TERMTAG_LOG")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `termtag predict --stream --shard K/N` in a fresh folder; `part` images a part.
    fn shard(&self, k: u32, n: u32, part: Option<usize>) -> Child {
        let dir = self.machine(&format!("shard-{k}-of-{n}"));
        let args: Vec<String> = [
            "predict",
            "--stream",
            "--shard",
            &format!("{k}/{n}"),
            "--model",
            &model(),
            "--class-map",
            "red square=can",
            "--workers",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut c = self.cmd(&dir, &args);
        if let Some(p) = part {
            c.env("TERMTAG_PART_IMAGES", p.to_string());
        }
        c.spawn().unwrap()
    }

    /// Every part of every run: its name and content.
    fn parts(&self) -> Vec<(String, PartDoc)> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            for b in list_all(self.set.labels.as_ref(), "termtag/predictions/")
                .await
                .unwrap()
            {
                if b.name.rsplit('/').next().unwrap().starts_with("part-") {
                    let (bytes, _) = self.set.labels.get(&b.name).await.unwrap();
                    out.push((b.name, serde_json::from_slice(&bytes).unwrap()));
                }
            }
            out
        })
    }

    /// How many parts name each image (predicted or broken), and the scores they give.
    fn tally(&self) -> (BTreeMap<String, usize>, BTreeMap<String, Vec<f64>>) {
        let mut times = BTreeMap::new();
        let mut scores = BTreeMap::new();
        for (name, doc) in self.parts() {
            let rows = Rows::parse(&doc.totag, Path::new(&name)).unwrap();
            let mut keys: BTreeSet<String> = rows.rows.iter().map(|(k, _)| k.clone()).collect();
            keys.extend(doc.broken.iter().map(|(k, _)| k.clone()));
            for k in keys {
                *times.entry(k).or_insert(0) += 1;
            }
            for (k, s) in rows.scores() {
                scores
                    .entry(k)
                    .or_insert_with(Vec::new)
                    .extend(s.iter().map(|(c, v)| {
                        assert_eq!(c, "can", "{name}");
                        *v
                    }));
            }
        }
        (times, scores)
    }

    /// The `totag_<ms>.csv` blobs in the labels container.
    fn totags(&self) -> Vec<String> {
        self.rt.block_on(async {
            list_all(self.set.labels.as_ref(), "totag_")
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.name)
                .collect()
        })
    }

    /// `termtag pull --count n` by three annotators at once; each one's claimed keys.
    fn pull_three(&self, n: usize) -> Vec<BTreeSet<String>> {
        let dirs: Vec<PathBuf> = (0..3).map(|a| self.machine(&format!("ann{a}"))).collect();
        let pulls: Vec<Child> = dirs
            .iter()
            .map(|d| {
                self.cmd(d, &["pull".into(), "--count".into(), n.to_string()])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for p in pulls {
            ok(p.wait_with_output().unwrap(), "pull");
        }
        dirs.iter().map(|d| self.claimed(d)).collect()
    }

    fn claimed(&self, dir: &Path) -> BTreeSet<String> {
        let args: Vec<String> = ["images", "list", "--filter", "status=claimed"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = ok(self.cmd(dir, &args).output().unwrap(), "images list");
        out.lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A finished command's stdout, after checking it succeeded.
fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `m` images of `among` the model is least sure of (lowest score first): the review
/// queue's least_confidence order, from the scores the model is known to give.
fn most_uncertain(among: impl Iterator<Item = u32>, m: usize) -> BTreeSet<String> {
    let mut v: Vec<u32> = among.collect();
    v.sort_by(|a, b| truth(*a).total_cmp(&truth(*b)));
    v.into_iter().take(m).map(key).collect()
}

fn four_shards_then_three_annotators(b: Backend) {
    let f = Fleet::new(b, IMAGES, 64);
    let shards: Vec<Child> = (1..=4).map(|k| f.shard(k, 4, None)).collect();
    let (outs, errs): (Vec<String>, Vec<String>) = shards
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            (ok(out, "predict --stream"), err)
        })
        .unzip();
    for o in &outs {
        assert!(
            o.contains("streamed run ") && o.contains(" in this shard"),
            "{o}"
        );
    }
    // The broken PNG: one line, by the shard that holds it, naming the blob.
    let broken: Vec<&str> = errs
        .iter()
        .flat_map(|e| e.lines())
        .filter(|l| l.starts_with("broken: "))
        .collect();
    assert_eq!(broken.len(), 1, "{errs:?}");
    assert!(broken[0].contains("/broken.png: "), "{broken:?}");

    // Every image exactly once across the parts, with the score the model gives it; the broken
    // PNG recorded once; the text file never.
    let (times, scores) = f.tally();
    let mut want: BTreeMap<String, usize> = (0..IMAGES).map(|i| (key(i), 1)).collect();
    want.insert("broken.png".into(), 1);
    assert_eq!(times, want);
    for i in 0..IMAGES {
        let s = &scores[&key(i)];
        assert_eq!(s.len(), 1, "{}: {s:?}", key(i));
        assert!(
            (s[0] - truth(i)).abs() < 1e-4,
            "{}: {s:?} vs {}",
            key(i),
            truth(i)
        );
    }
    let listed: usize = outs
        .iter()
        .map(|o| {
            let n = o.split(" images listed").next().unwrap();
            n.rsplit(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(
        listed,
        4 * (IMAGES as usize + 1),
        "each shard lists every image"
    );

    // The last shard to finish merged them for active-learning-detect: all images once (two
    // shards finishing together may both write it, with the same rows).
    let totags = f.totags();
    assert!(!totags.is_empty() && totags.len() <= 2, "{totags:?}");
    assert!(
        outs.iter()
            .any(|o| o.contains("all shards done: wrote totag_")),
        "{outs:?}"
    );
    let text = f.rt.block_on(f.set.labels.get(&totags[0])).unwrap().0;
    let rows = Rows::parse(&String::from_utf8(text).unwrap(), Path::new("totag")).unwrap();
    assert_eq!(
        rows.header.iter().collect::<Vec<_>>(),
        termtag::formats::ald_csv::totag_columns(false)
    );
    let merged = rows.scores();
    assert_eq!(merged.len(), IMAGES as usize);
    for i in 0..IMAGES {
        assert!((merged[&key(i)][0].1 - truth(i)).abs() < 1e-4);
    }

    // Three annotators pull 5 each, at once: disjoint, and together the 15 least certain.
    let got = f.pull_three(5);
    for g in &got {
        assert_eq!(g.len(), 5, "{got:?}");
    }
    let all: BTreeSet<String> = got.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 15, "disjoint batches: {got:?}");
    assert_eq!(all, most_uncertain(0..IMAGES, 15), "{got:?}");
}

fn killed_shard_restarts(b: Backend) {
    const N: u32 = 240;
    let f = Fleet::new(b, N, 384);
    let shard = Shard { k: 1, n: 2 };
    let mine = (0..N).filter(|i| shard.contains(&key(*i))).count();
    let parts_of_shard_1 = |f: &Fleet| {
        f.parts()
            .iter()
            .filter(|(n, _)| n.contains("/shard-1-of-2/"))
            .count()
    };
    // Parts of 8 images; killed once two are written.
    let mut child = f.shard(1, 2, Some(8));
    let deadline = Instant::now() + Duration::from_secs(120);
    while parts_of_shard_1(&f) < 2 {
        assert!(Instant::now() < deadline, "no parts after 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "shard 1 ended before it could be killed: {}",
            String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "shard 1 finished before the kill: give it more images"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = parts_of_shard_1(&f);
    let (times, _) = f.tally();
    assert!(
        times.len() < mine,
        "killed mid-run: {} of {mine} done",
        times.len()
    );
    assert!(times.values().all(|&t| t == 1), "{times:?}");

    // Started again on a new machine: it reads its parts and does the rest.
    let out = ok(
        f.shard(1, 2, Some(8)).wait_with_output().unwrap(),
        "restart",
    );
    let already = out
        .split(" already done")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        already >= 2 * 8,
        "the parts written before the kill count: {out}"
    );
    assert!(
        out.contains(&format!("{before} earlier parts")),
        "{before} parts read: {out}"
    );
    assert!(
        out.contains("the merged totag waits for shard 2 of 2"),
        "{out}"
    );
    ok(
        f.shard(2, 2, Some(8)).wait_with_output().unwrap(),
        "shard 2",
    );

    let (times, _) = f.tally();
    let mut want: BTreeMap<String, usize> = (0..N).map(|i| (key(i), 1)).collect();
    want.insert("broken.png".into(), 1);
    assert_eq!(times, want, "nothing lost, nothing doubled");
    assert_eq!(f.totags().len(), 1);
}

fn pull_ranks_the_shards_that_finished(b: Backend) {
    let f = Fleet::new(b, IMAGES, 64);
    for k in 1..=3 {
        let out = ok(f.shard(k, 4, None).wait_with_output().unwrap(), "shard");
        assert!(out.contains("the merged totag waits for shard"), "{out}");
    }
    assert!(f.totags().is_empty(), "shard 4 has not finished");
    let finished = |i: &u32| (1..=3).any(|k| Shard { k, n: 4 }.contains(&key(*i)));
    let dir = f.machine("annotator");
    let out = ok(
        f.cmd(&dir, &["pull".into(), "--count".into(), "4".into()])
            .output()
            .unwrap(),
        "pull",
    );
    assert_eq!(
        f.claimed(&dir),
        most_uncertain((0..IMAGES).filter(finished), 4),
        "{out}"
    );
}

/// Near-duplicates: `PHOTOS` photos, `COPIES` copies each.
const PHOTOS: u32 = 7;
const COPIES: u32 = 5;

fn copy_key(g: u32, c: u32) -> String {
    format!("photo{g}_copy{c}.png")
}

/// Copy `c` of photo `g`: 64×64, the photo's own pattern of 8×8-pixel blocks in the green
/// channel (unrelated between photos) with a few grey levels of noise per copy, and one red
/// pixel of level 200 + 6g + c, so that square_yolo scores a photo's copies alike (within 0.05)
/// and photo 0's copies are the least certain of all. Red stays below the model's threshold
/// elsewhere, so the pattern changes no score.
fn copy_picture(g: u32, c: u32) -> Vec<u8> {
    let mix = |a: u32, b: u32, x: u32| {
        let mut r = termtag::rng::SplitMix(u64::from(a) << 40 | u64::from(b) << 20 | u64::from(x));
        r.below(1 << 16) as u32
    };
    let level = (200 + g * 6 + c) as u8;
    let img = image::RgbImage::from_fn(64, 64, |x, y| {
        if (x, y) == (40, 20) {
            return image::Rgb([level, 0, 0]);
        }
        let block = mix(g, 1_000, (y / 8) * 8 + x / 8) % 200 + 30;
        let noise = mix(g, 2_000 + c, y * 64 + x) % 13;
        image::Rgb([40, (block + noise - 6) as u8, 30])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// Two shards predict `PHOTOS` × `COPIES` near-duplicates. An annotator without `[queue]
/// diversity` pulls `COPIES` and gets every copy of the least certain photo; one with it pulls
/// `COPIES` of the rest and gets one copy of each of `COPIES` other photos (the least certain
/// copy of each), as the review queue would order them, from the signatures in the run's
/// `signatures.json`; those signatures land in that annotator's store.
fn pull_takes_near_duplicates_in_turns(b: Backend) {
    let images: Vec<(String, Vec<u8>)> = (0..PHOTOS)
        .flat_map(|g| (0..COPIES).map(move |c| (copy_key(g, c), copy_picture(g, c))))
        .collect();
    let f = Fleet::seeded(b, images);
    let shards: Vec<Child> = (1..=2).map(|k| f.shard(k, 2, Some(8))).collect();
    for s in shards {
        ok(s.wait_with_output().unwrap(), "predict --stream");
    }
    // Every part carries its images' signatures, and the merged run keeps them beside its CSV.
    for (name, doc) in f.parts() {
        let rows = Rows::parse(&doc.totag, Path::new(&name)).unwrap();
        let keys: BTreeSet<&String> = rows.rows.iter().map(|(k, _)| k).collect();
        let signed: BTreeSet<&String> = doc.signatures.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, signed, "{name}");
    }
    assert_eq!(f.totags().len(), 1);
    let sidecars: Vec<String> = f.rt.block_on(async {
        list_all(f.set.labels.as_ref(), "termtag/predictions/")
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .filter(|n| n.ends_with("/signatures.json"))
            .collect()
    });
    assert_eq!(sidecars.len(), 1, "{sidecars:?}");
    let doc: termtag::remote::fleet::SignaturesDoc =
        serde_json::from_slice(&f.rt.block_on(f.set.labels.get(&sidecars[0])).unwrap().0).unwrap();
    assert_eq!(doc.signatures.len(), (PHOTOS * COPIES) as usize);

    let photo = |k: &String| k.split('_').next().unwrap().to_string();
    let pull = |dir: &Path| {
        ok(
            f.cmd(dir, &["pull".into(), "--count".into(), COPIES.to_string()])
                .output()
                .unwrap(),
            "pull",
        )
    };
    let plain = f.machine("plain");
    let out = pull(&plain);
    let want: BTreeSet<String> = (0..COPIES).map(|c| copy_key(0, c)).collect();
    assert_eq!(f.claimed(&plain), want, "without diversity, copies: {out}");

    let diverse = f.machine("diverse");
    let file = diverse.join("termtag.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    assert!(toml.contains("# diversity = true"), "{toml}");
    std::fs::write(
        &file,
        toml.replace("# diversity = true", "diversity = true"),
    )
    .unwrap();
    let out = pull(&diverse);
    let got = f.claimed(&diverse);
    let want: BTreeSet<String> = (1..=COPIES).map(|g| copy_key(g, 0)).collect();
    assert_eq!(
        got.iter().map(photo).collect::<BTreeSet<_>>().len(),
        COPIES as usize,
        "one copy of each photo: {got:?} {out}"
    );
    assert_eq!(got, want, "{out}");
    let store = termtag::store::Store::open(&diverse.join(".termtag/labels.db"), "t").unwrap();
    assert_eq!(store.signatures().unwrap().len(), COPIES as usize);
}

/// With one shard of two finished, there is no merged run yet: pull groups the signatures in
/// that shard's parts, and takes one copy (the least certain) of each photo the shard holds.
fn pull_groups_the_parts_of_an_unfinished_run(b: Backend) {
    let images: Vec<(String, Vec<u8>)> = (0..PHOTOS)
        .flat_map(|g| (0..COPIES).map(move |c| (copy_key(g, c), copy_picture(g, c))))
        .collect();
    let f = Fleet::seeded(b, images);
    let out = ok(f.shard(1, 2, Some(8)).wait_with_output().unwrap(), "shard");
    assert!(out.contains("the merged totag waits for shard"), "{out}");
    let first = Shard { k: 1, n: 2 };
    // Each photo's least certain copy among those shard 1 predicted.
    let want: BTreeSet<String> = (0..PHOTOS)
        .filter_map(|g| {
            (0..COPIES)
                .map(|c| copy_key(g, c))
                .find(|k| first.contains(k))
        })
        .collect();
    assert!(
        want.len() >= 3,
        "the shard holds copies of several photos: {want:?}"
    );
    let dir = f.machine("diverse");
    let file = dir.join("termtag.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        toml.replace("# diversity = true", "diversity = true"),
    )
    .unwrap();
    let out = ok(
        f.cmd(
            &dir,
            &["pull".into(), "--count".into(), want.len().to_string()],
        )
        .output()
        .unwrap(),
        "pull",
    );
    assert_eq!(f.claimed(&dir), want, "{out}");
}

/// What `--stream` cannot do is refused in one line that says what to do instead.
#[test]
fn stream_refusals_say_what_to_do() {
    let (_d, b) = local();
    let f = Fleet::new(b, 1, 64);
    let dir = f.machine("refusals");
    let refused = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = f.cmd(&dir, &args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("termtag:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        lines[0].to_string()
    };
    let e = refused(&["predict", "--stream", "--rerun", "--model", &model()]);
    assert!(
        e.contains("--rerun cannot be used with --stream") && e.contains("termtag/predictions/"),
        "{e}"
    );
    // A project with no remote has nothing to stream.
    let plain = f.root.path().join("plain");
    let init: Vec<String> = [
        "init",
        plain.to_str().unwrap(),
        "--task",
        "detect",
        "--classes",
        "can",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ok(f.cmd(f.root.path(), &init).output().unwrap(), "init");
    let out = f
        .cmd(&plain, &["predict".into(), "--stream".into()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("this project has no remote"),
        "{err}"
    );
}

fn local() -> (tempfile::TempDir, Backend) {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::local(&dir.path().join("remote"));
    (dir, b)
}

#[test]
fn local_four_shards_then_three_annotators() {
    let (_d, b) = local();
    four_shards_then_three_annotators(b);
}

#[test]
fn local_killed_shard_restarts() {
    let (_d, b) = local();
    killed_shard_restarts(b);
}

#[test]
fn local_pull_ranks_the_shards_that_finished() {
    let (_d, b) = local();
    pull_ranks_the_shards_that_finished(b);
}

#[test]
fn local_pull_takes_near_duplicates_in_turns() {
    let (_d, b) = local();
    pull_takes_near_duplicates_in_turns(b);
}

#[test]
fn local_pull_groups_the_parts_of_an_unfinished_run() {
    let (_d, b) = local();
    pull_groups_the_parts_of_an_unfinished_run(b);
}

#[test]
fn azure_pull_groups_the_parts_of_an_unfinished_run() {
    pull_groups_the_parts_of_an_unfinished_run(Backend::azure(&azurite_url(), "flu"));
}

#[test]
fn azure_pull_takes_near_duplicates_in_turns() {
    pull_takes_near_duplicates_in_turns(Backend::azure(&azurite_url(), "fld"));
}

#[test]
fn azure_four_shards_then_three_annotators() {
    four_shards_then_three_annotators(Backend::azure(&azurite_url(), "fl4"));
}

#[test]
fn azure_killed_shard_restarts() {
    killed_shard_restarts(Backend::azure(&azurite_url(), "flk"));
}

#[test]
fn azure_pull_ranks_the_shards_that_finished() {
    pull_ranks_the_shards_that_finished(Backend::azure(&azurite_url(), "flp"));
}

/// The summary line's `N<what>` figure, e.g. `seconds(out, "s to read")`.
fn figure(out: &str, before: &str) -> f64 {
    out.split(before)
        .next()
        .and_then(|s| s.rsplit([' ', '(']).next())
        .and_then(|n| n.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("no `{before}` in {out}"))
}

/// Not a test: the fleet's figures, printed (speed is measured, never asserted).
/// `TERMTAG_FLEET_IMAGES` (default 2000) small images on Azurite, predicted by one shard, then
/// (fresh containers) by four at once, one decode worker each; then the one-shard run started
/// again: it reads all its parts and predicts nothing (the cost of a resume). Parts of
/// `TERMTAG_PART_IMAGES` images (default 256).
/// `cargo test --test fleet azure_fleet_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn azure_fleet_speed() {
    let n: u32 = std::env::var("TERMTAG_FLEET_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // `TERMTAG_FLEET_BACKEND=local`: the local-folder backend, to tell Azurite's share apart.
    let local = std::env::var("TERMTAG_FLEET_BACKEND").is_ok_and(|v| v == "local");
    let dir = tempfile::tempdir().unwrap();
    for shards in [1u32, 4] {
        let b = if local {
            Backend::local(&dir.path().join(format!("remote{shards}")))
        } else {
            Backend::azure(&azurite_url(), "flb")
        };
        let f = Fleet::new(b, n, 64);
        let t = Instant::now();
        let children: Vec<Child> = (1..=shards).map(|k| f.shard(k, shards, None)).collect();
        let outs: Vec<String> = children
            .into_iter()
            .map(|c| ok(c.wait_with_output().unwrap(), "predict --stream"))
            .collect();
        let wall = t.elapsed().as_secs_f64();
        let (times, _) = f.tally();
        assert_eq!(times.len(), n as usize + 1);
        eprintln!(
            "{n} images, {shards} shard(s) at once: {wall:.1}s wall (processes started to all done), {:.0} images/s; per shard: {}",
            f64::from(n) / wall,
            outs.iter()
                .map(|o| format!("{:.0} images/s", figure(o, " images/s")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if shards == 1 {
            let t = Instant::now();
            let out = ok(f.shard(1, 1, None).wait_with_output().unwrap(), "resume");
            eprintln!(
                "resume of the finished 1-shard run: {:.2}s to read {} parts ({:.1}s wall, with loading the model and listing {n} blobs in {:.2}s)",
                figure(&out, "s to read"),
                figure(&out, " earlier parts"),
                t.elapsed().as_secs_f64(),
                figure(&out, "s to list"),
            );
        }
    }
}

/// Not a test: what the signatures cost. `TERMTAG_FLEET_IMAGES` (default 512) small images,
/// shard 1 of 2 predicted in parts of 256 (so no merged run: pull reads the parts). Prints a
/// full part's size with its signatures and without (the same document, signatures emptied),
/// then the time `fleet::newest_run` (pull's read of the parts) takes with and without
/// signatures, and a whole `termtag pull --count 1` without and with `[queue] diversity`.
/// `TERMTAG_FLEET_BACKEND=local` for the local-folder backend, else Azurite.
/// `cargo test --test fleet fleet_signature_figures -- --ignored --nocapture`
#[test]
#[ignore]
fn fleet_signature_figures() {
    let n: u32 = std::env::var("TERMTAG_FLEET_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let local = std::env::var("TERMTAG_FLEET_BACKEND").is_ok_and(|v| v == "local");
    let dir = tempfile::tempdir().unwrap();
    let b = if local {
        Backend::local(&dir.path().join("remote"))
    } else {
        Backend::azure(&azurite_url(), "fls")
    };
    let f = Fleet::new(b, n, 64);
    ok(
        f.shard(1, 2, Some(256)).wait_with_output().unwrap(),
        "shard",
    );
    let parts = f.parts();
    let (name, full) = parts
        .iter()
        .max_by_key(|(_, d)| d.signatures.len())
        .unwrap();
    let with = serde_json::to_vec(full).unwrap().len();
    let mut bare = full.clone();
    bare.signatures.clear();
    let without = serde_json::to_vec(&bare).unwrap().len();
    eprintln!(
        "{name}: {} images, {with} bytes with signatures, {without} without ({:.1}x)",
        full.signatures.len(),
        with as f64 / without as f64
    );
    let images: usize = parts.iter().map(|(_, d)| d.signatures.len()).sum();
    let read = |what: &str| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let got =
                f.rt.block_on(termtag::remote::fleet::newest_run(&f.set, None, true, 8))
                    .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            assert!(got.run.is_some());
        }
        eprintln!(
            "pull's read of {} parts ({images} images), {what}: {:.1} ms (best of 5)",
            parts.len(),
            best * 1e3
        );
    };
    read("with signatures");
    let sigs: Vec<(i64, termtag::diversity::Signature)> =
        f.rt.block_on(termtag::remote::fleet::newest_run(&f.set, None, true, 8))
            .unwrap()
            .signatures
            .into_values()
            .enumerate()
            .map(|(i, s)| (i as i64, s))
            .collect();
    let t = Instant::now();
    let groups = termtag::diversity::Groups::new(&sigs, termtag::diversity::DEFAULT_SIMILARITY);
    eprintln!(
        "grouping their {} signatures (Groups::new, this build's profile): {:.0} ms, {} groups",
        sigs.len(),
        t.elapsed().as_secs_f64() * 1e3,
        groups.count()
    );
    for diversity in [false, true] {
        let d = f.machine("figures");
        if diversity {
            let file = d.join("termtag.toml");
            let toml = std::fs::read_to_string(&file).unwrap();
            std::fs::write(
                &file,
                toml.replace("# diversity = true", "diversity = true"),
            )
            .unwrap();
        }
        let t = Instant::now();
        ok(
            f.cmd(&d, &["pull".into(), "--count".into(), "1".into()])
                .output()
                .unwrap(),
            "pull",
        );
        eprintln!(
            "pull --count 1, diversity {diversity}: {:.2}s wall (process start to exit)",
            t.elapsed().as_secs_f64()
        );
    }
    // The same parts as termtag wrote them before signatures: the difference is their cost.
    f.rt.block_on(async {
        for (name, doc) in &parts {
            let mut bare = doc.clone();
            bare.signatures.clear();
            f.set
                .labels
                .put(name, serde_json::to_vec(&bare).unwrap(), PutMode::Overwrite)
                .await
                .unwrap();
        }
    });
    read("the same parts without signatures");
}

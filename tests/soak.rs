//! Many annotators against one Azurite: eight `termtag` processes at once pull, review (a
//! scripted label import) and push until the container is done, while a ninth claims a batch and
//! walks away with a short claim time, so its claims expire and are taken over. Afterwards every
//! image is labelled exactly once, every pushed label is in the labels container, and no claim is
//! left. `scripts/test.sh` runs a short slice (`TERMTAG_SOAK_IMAGES`, default 96); the documented
//! longer soak is `TERMTAG_SOAK_IMAGES=2000 cargo test --release --test soak` (a few minutes).

mod remote_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use remote_support::{Backend, azurite_url, count};

const ANNOTATORS: usize = 8;

fn images() -> usize {
    std::env::var("TERMTAG_SOAK_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

fn termtag(dir: &Path, user: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_termtag"))
        .env_remove("AZURE_STORAGE_SAS_URL")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
        .env("AZURE_STORAGE_KEY", termtag::remote::auth::AZURITE_KEY)
        .env("USER", user)
        .env_remove("TERMTAG_LOG")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{user}: termtag {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// An annotator's project on the shared containers, claims lasting `claim_hours`.
fn annotator(root: &Path, b: &Backend, user: &str, claim_hours: f64) -> std::path::PathBuf {
    let Backend::Azure {
        url,
        images,
        labels,
    } = b
    else {
        unreachable!()
    };
    let dir = root.join(user);
    termtag(
        root,
        user,
        &[
            "init",
            dir.to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            "can",
            "--source",
            &format!("{url}/{images}"),
        ],
    );
    let toml = std::fs::read_to_string(dir.join("termtag.toml")).unwrap();
    let toml = toml
        .replace(
            "labels_container = \"activelearninglabels\"",
            &format!("labels_container = \"{labels}\""),
        )
        .replace(
            "claim_hours = 72.0",
            &format!("claim_hours = {claim_hours}"),
        );
    std::fs::write(dir.join("termtag.toml"), toml).unwrap();
    dir
}

/// Keys this project holds claimed and has not reviewed yet.
fn claimed(dir: &Path, user: &str) -> Vec<String> {
    termtag(dir, user, &["images", "list", "--filter", "status=claimed"])
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect()
}

/// The review: one `can` box per claimed image, its position naming the annotator.
fn review(dir: &Path, user: &str, n: usize, keys: &[String]) {
    let x0 = 0.01 * n as f64;
    let mut csv = String::from("filename,class,xmin,xmax,ymin,ymax,height,width\n");
    for k in keys {
        csv += &format!("{k},can,{x0:.2},0.9,0.1,0.9,12,16\n");
    }
    let file = dir.join("review.csv");
    std::fs::write(&file, csv).unwrap();
    termtag(
        dir,
        user,
        &["import", file.to_str().unwrap(), "--format", "ald-csv"],
    );
}

#[test]
fn eight_annotators_label_every_image_exactly_once() {
    let n = images();
    let b = Backend::azure(&azurite_url(), "soak");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let seeder = b.project(&root.path().join("seeder"));
    let set = b.open(&seeder);
    rt.block_on(b.seed(&set, n as u32, None));

    // The one who walks away: claims for 2 s, then is gone.
    let gone = annotator(root.path(), &b, "gone", 2.0 / 3600.0);
    let out = termtag(&gone, "gone", &["pull", "--count", "6"]);
    assert!(out.contains("pulled 6 images"), "{out}");

    let pushed = Arc::new(AtomicUsize::new(0));
    let taken_over = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60 + n as u64);
    let workers: Vec<_> = (0..ANNOTATORS)
        .map(|i| {
            let user = format!("annotator{i}");
            let dir = annotator(root.path(), &b, &user, 72.0);
            let (pushed, taken_over) = (pushed.clone(), taken_over.clone());
            std::thread::spawn(move || {
                let mut mine = 0;
                while pushed.load(Ordering::SeqCst) < n {
                    assert!(
                        Instant::now() < deadline,
                        "{user}: the container is not done after the deadline ({} of {n} pushed)",
                        pushed.load(Ordering::SeqCst)
                    );
                    let out = termtag(&dir, &user, &["pull", "--count", "4"]);
                    if let Some(t) = out
                        .split(" taken over")
                        .next()
                        .and_then(|s| s.rsplit('(').next())
                        .and_then(|s| s.trim().parse::<usize>().ok())
                    {
                        taken_over.fetch_add(t, Ordering::SeqCst);
                    }
                    let keys = claimed(&dir, &user);
                    if keys.is_empty() {
                        // Nothing free now: the walked-away claims expire soon.
                        std::thread::sleep(Duration::from_millis(300));
                        continue;
                    }
                    review(&dir, &user, i, &keys);
                    let out = termtag(&dir, &user, &["push"]);
                    assert!(
                        out.contains(&format!("{} images", keys.len())),
                        "{user}: {out}"
                    );
                    mine += keys.len();
                    pushed.fetch_add(keys.len(), Ordering::SeqCst);
                }
                mine
            })
        })
        .collect();
    let per: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    eprintln!("images pushed per annotator: {per:?}");
    assert_eq!(per.iter().sum::<usize>(), n, "pushed exactly once in all");
    assert_eq!(
        taken_over.load(Ordering::SeqCst),
        6,
        "the walked-away claims were taken over"
    );
    assert!(
        per.iter().filter(|&&m| m > 0).count() >= ANNOTATORS / 2,
        "the work was shared: {per:?}"
    );

    // The labels container: one done marker per image, no claim left, and every image in
    // exactly one pushed batch, with the label its annotator drew.
    rt.block_on(async {
        assert_eq!(count(set.labels.as_ref(), "termtag/done/").await, n);
        assert_eq!(count(set.labels.as_ref(), "termtag/claims/").await, 0);
        let mut labelled: BTreeMap<String, usize> = BTreeMap::new();
        for blob in termtag::remote::list_all(set.labels.as_ref(), "termtag/batches/")
            .await
            .unwrap()
        {
            let (bytes, _) = set.labels.get(&blob.name).await.unwrap();
            let batch: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let text = batch.to_string();
            for i in 0..n {
                let key = format!("img_{i:03}.png");
                if text.contains(&format!("\"{key}\"")) {
                    *labelled.entry(key).or_default() += 1;
                }
            }
        }
        assert_eq!(labelled.len(), n, "every image is in a batch");
        let twice: Vec<_> = labelled.iter().filter(|(_, c)| **c != 1).collect();
        assert!(twice.is_empty(), "labelled more than once: {twice:?}");
        // The ALD `tagged` CSVs carry every image too (merged batches may repeat older ones,
        // so only presence is checked there).
        let mut tagged = String::new();
        for blob in termtag::remote::list_all(set.labels.as_ref(), "tagged_")
            .await
            .unwrap()
        {
            let (bytes, _) = set.labels.get(&blob.name).await.unwrap();
            tagged += &String::from_utf8(bytes).unwrap();
        }
        for i in 0..n {
            assert!(
                tagged.contains(&format!("img_{i:03}.png,can,")),
                "img_{i:03}"
            );
        }
    });
}

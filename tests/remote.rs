//! Pull and push against Azurite (started by scripts/test.sh) and against the local-folder
//! backend, through one suite: every scenario runs on both.

mod remote_support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use remote_support::{Backend, OwnAzurite, azurite_url, count, label_claimed};
use termtag::project::Project;
use termtag::remote::{self, PullOptions, PullReport, PushReport, RemoteSet};
use termtag::store::Store;

/// Confidences: img_003 least certain, then 001, 005, 002 (a class the project lacks), 000;
/// img_004 has no detection; the others have no prediction at all.
const TOTAG: &str =
    "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence
img_000.png,can,0.1,0.5,0.1,0.5,12,16,,0.9,0.8
img_000.png,bottle,0.2,0.6,0.2,0.6,12,16,,0.8,0.8
img_001.png,can,0.1,0.5,0.1,0.5,12,16,,0.3,0.3
img_003.png,can,0.1,0.5,0.1,0.5,12,16,,0.1,0.1
img_004.png,NULL,0,0,0,0,12,16,,0,0
img_005.png,bottle,0.3,0.4,0.3,0.4,12,16,,0.6,0.6
img_002.png,mystery,0.3,0.4,0.3,0.4,12,16,,0.7,0.7
";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

async fn pull(p: &Project, s: &mut Store, set: &RemoteSet, n: usize) -> PullReport {
    remote::pull(
        p,
        s,
        set,
        &PullOptions {
            count: n,
            ..Default::default()
        },
        &|_| {},
    )
    .await
    .unwrap()
}

async fn push(p: &Project, s: &mut Store, set: &RemoteSet) -> PushReport {
    remote::push(p, s, set, &|_| {}).await.unwrap()
}

async fn round_trip(b: Backend) {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pa = b.project(dirs.0.path());
    let set_a = b.open(&pa);
    b.seed(&set_a, 10, Some(TOTAG)).await;
    let mut sa = pa.store().unwrap();

    // The four least certain predicted images.
    let r = pull(&pa, &mut sa, &set_a, 4).await;
    assert_eq!(
        r.claimed,
        vec!["img_001.png", "img_002.png", "img_003.png", "img_005.png"]
    );
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    assert!(!r.listed, "the predictions named enough images");
    assert_eq!(r.remaining, 2, "predicted images left: img_000 and img_004");
    assert!(
        r.warnings.iter().any(|w| w.contains("mystery")),
        "{:?}",
        r.warnings
    );
    assert_eq!(
        r.predictions, 3,
        "one box each; img_002's class is not in the project"
    );
    for k in &r.claimed {
        let path = pa.image_file(k).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            remote_support::png(k[4..7].parse().unwrap())
        );
    }
    let held = sa.held_claims().unwrap();
    assert_eq!(held.len(), 4);
    assert!(
        held.iter()
            .all(|c| c.status == termtag::model::ImageStatus::Claimed && c.etag.is_some())
    );
    assert_eq!(count(set_a.labels.as_ref(), "termtag/claims/").await, 4);

    // Nothing reviewed yet: push does nothing.
    let nothing = push(&pa, &mut sa, &set_a).await;
    assert_eq!(nothing.batch_id, None);
    assert_eq!(nothing.still_held, 4);

    let labelled = label_claimed(&mut sa);
    let pr = push(&pa, &mut sa, &set_a).await;
    assert_eq!(pr.images, 4);
    assert_eq!(pr.labels, 4);
    assert!(pr.warnings.is_empty(), "{:?}", pr.warnings);
    assert_eq!(pr.csvs.len(), 3, "{:?}", pr.csvs);
    assert!(sa.held_claims().unwrap().is_empty());
    assert_eq!(count(set_a.labels.as_ref(), "termtag/claims/").await, 0);
    assert_eq!(count(set_a.labels.as_ref(), "termtag/done/").await, 4);

    // The batch reads back with the labels as pushed.
    let batches = remote::read_batches(&set_a).await.unwrap();
    assert_eq!(batches.len(), 1);
    let keys: Vec<&str> = batches[0].images.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        labelled.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        batches[0].images[0].labels[0].bbox,
        Some([0.25, 0.25, 0.75, 0.5])
    );

    // ALD CSVs: tagged holds the four with their box; totag lost them; tagging is empty.
    let tagged = remote::newest_ald_csv(&set_a, "tagged")
        .await
        .unwrap()
        .unwrap();
    let (header, rows) = remote::read_ald_csv(&set_a, &tagged).await.unwrap();
    assert_eq!(
        header,
        [
            "filename", "class", "xmin", "xmax", "ymin", "ymax", "height", "width", "folder"
        ]
    );
    let tagged_keys: BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(tagged_keys.len(), 4);
    let row = &rows.iter().find(|(k, _)| k == "img_001.png").unwrap().1;
    assert_eq!(row[1..6], ["can", "0.25", "0.75", "0.25", "0.5"]);
    let totag = remote::newest_ald_csv(&set_a, "totag")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(totag, "totag_1000.csv");
    let (_, rows) = remote::read_ald_csv(&set_a, &totag).await.unwrap();
    let left: BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(left, BTreeSet::from(["img_000.png", "img_004.png"]));
    let tagging = remote::newest_ald_csv(&set_a, "tagging")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        remote::read_ald_csv(&set_a, &tagging)
            .await
            .unwrap()
            .1
            .len(),
        0
    );

    // A second push rewrites nothing.
    let before = count(set_a.labels.as_ref(), "").await;
    let again = push(&pa, &mut sa, &set_a).await;
    assert_eq!(again.batch_id, None);
    assert_eq!(count(set_a.labels.as_ref(), "").await, before);

    // Another annotator gets the rest: the image without detection, then the unpredicted ones;
    // new blobs appear on the next pull.
    let pb = b.project(dirs.1.path());
    let set_b = b.open(&pb);
    let mut sb = pb.store().unwrap();
    set_b
        .images
        .put(
            "img_new.png",
            remote_support::png(99),
            remote::PutMode::Create,
        )
        .await
        .unwrap();
    set_b
        .images
        .put(
            "sub dir/猫 1.png",
            remote_support::png(98),
            remote::PutMode::Create,
        )
        .await
        .unwrap();
    let r = pull(&pb, &mut sb, &set_b, 100).await;
    assert_eq!(
        r.claimed,
        vec![
            "img_000.png",
            "img_004.png",
            "img_006.png",
            "img_007.png",
            "img_008.png",
            "img_009.png",
            "img_new.png",
            "sub dir/猫 1.png"
        ]
    );
    assert_eq!(
        std::fs::read(pb.image_file("sub dir/猫 1.png").unwrap()).unwrap(),
        remote_support::png(98)
    );
    assert!(r.listed);
    assert_eq!(r.remaining, 0);
    let r = pull(&pb, &mut sb, &set_b, 5).await;
    assert!(r.claimed.is_empty());
}

async fn concurrent_pullers(b: Backend) {
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let projects: Vec<Project> = dirs.iter().map(|d| b.project(d.path())).collect();
    let sets: Vec<RemoteSet> = projects.iter().map(|p| b.open(p)).collect();
    b.seed(&sets[0], 40, Some(TOTAG)).await;
    let mut stores: Vec<Store> = projects.iter().map(|p| p.store().unwrap()).collect();
    let pulls =
        projects
            .iter()
            .zip(stores.iter_mut())
            .zip(sets.iter())
            .map(|((p, s), set)| async move {
                remote::pull(
                    p,
                    s,
                    set,
                    &PullOptions {
                        count: 5,
                        ..Default::default()
                    },
                    &|_| {},
                )
                .await
                .unwrap()
            });
    let reports = futures::future::join_all(pulls).await;
    let mut all = HashSet::new();
    for r in &reports {
        assert_eq!(r.claimed.len(), 5, "{:?}", r.claimed);
        for k in &r.claimed {
            assert!(all.insert(k.clone()), "{k} claimed twice");
        }
    }
    assert_eq!(all.len(), 40);
    assert_eq!(count(sets[0].labels.as_ref(), "termtag/claims/").await, 40);
    for s in &stores {
        assert_eq!(s.held_claims().unwrap().len(), 5);
    }
}

async fn expired_claims_are_taken_over(b: Backend) {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (b.project(dirs.0.path()), b.project(dirs.1.path()));
    let (set_a, set_b) = (b.open(&pa), b.open(&pb));
    b.seed(&set_a, 6, Some(TOTAG)).await;
    let (mut sa, mut sb) = (pa.store().unwrap(), pb.store().unwrap());
    let short = PullOptions {
        count: 3,
        claim_ttl: Some(Duration::from_millis(800)),
        ..Default::default()
    };
    let ra = remote::pull(&pa, &mut sa, &set_a, &short, &|_| {})
        .await
        .unwrap();
    assert_eq!(ra.claimed.len(), 3);
    // Before expiry B gets the other three.
    let rb = pull(&pb, &mut sb, &set_b, 3).await;
    assert_eq!(rb.taken_over, 0);
    assert!(rb.claimed.iter().all(|k| !ra.claimed.contains(k)));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rb = pull(&pb, &mut sb, &set_b, 3).await;
    assert_eq!(rb.claimed, ra.claimed);
    assert_eq!(rb.taken_over, 3);
    // A pushes anyway: its labels go up, its claims were taken so it warns.
    label_claimed(&mut sa);
    let pr = push(&pa, &mut sa, &set_a).await;
    assert_eq!(pr.images, 3);
    assert_eq!(pr.warnings.len(), 3, "{:?}", pr.warnings);
    assert!(sa.held_claims().unwrap().is_empty());
    // B's claims are intact.
    assert_eq!(count(set_b.labels.as_ref(), "termtag/claims/").await, 6);
}

/// A push that fails half-way (the network goes away after `n` writes) resumes on the next run
/// and leaves exactly one batch, one done marker per image and one row set per image.
async fn interrupted_push_resumes(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(dir.path());
    let set = b.open(&p);
    b.seed(&set, 12, Some(TOTAG)).await;
    let mut s = p.store().unwrap();
    pull(&p, &mut s, &set, 12).await;
    label_claimed(&mut s);
    let flaky = RemoteSet {
        labels: Arc::new(flaky::Flaky::new(set.labels.clone(), 5)),
        ..set.clone()
    };
    let e = remote::push(&p, &mut s, &flaky, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("resumes"), "{e}");
    assert_eq!(
        s.held_claims().unwrap().len(),
        12,
        "nothing released locally yet"
    );
    let pr = push(&p, &mut s, &set).await;
    assert!(pr.resumed);
    assert_eq!(pr.images, 12);
    assert_eq!(remote::read_batches(&set).await.unwrap().len(), 1);
    assert_eq!(count(set.labels.as_ref(), "termtag/done/").await, 12);
    assert_eq!(count(set.labels.as_ref(), "termtag/claims/").await, 0);
    assert_eq!(count(set.labels.as_ref(), "tagged_").await, 1);
    let tagged = remote::newest_ald_csv(&set, "tagged")
        .await
        .unwrap()
        .unwrap();
    let (_, rows) = remote::read_ald_csv(&set, &tagged).await.unwrap();
    assert_eq!(rows.len(), 12);
    assert!(s.held_claims().unwrap().is_empty());
}

/// Downloads fail half-way: the claims are kept, nothing half-done enters the store, and the
/// next pull resumes them instead of claiming more.
async fn interrupted_pull_resumes(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(dir.path());
    let set = b.open(&p);
    b.seed(&set, 8, Some(TOTAG)).await;
    let mut s = p.store().unwrap();
    let flaky = RemoteSet {
        images: Arc::new(flaky::Flaky::reads(set.images.clone(), 2)),
        ..set.clone()
    };
    let opts = PullOptions {
        count: 4,
        concurrency: Some(1),
        ..Default::default()
    };
    let e = remote::pull(&p, &mut s, &flaky, &opts, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4 claims are kept") && e.contains("resumes"),
        "{e}"
    );
    assert!(s.image_statuses().unwrap().is_empty());
    assert_eq!(count(set.labels.as_ref(), "termtag/claims/").await, 4);
    let r = remote::pull(&p, &mut s, &set, &opts, &|_| {})
        .await
        .unwrap();
    assert_eq!(r.resumed, 4);
    assert_eq!(
        r.claimed,
        vec!["img_001.png", "img_002.png", "img_003.png", "img_005.png"]
    );
    assert_eq!(count(set.labels.as_ref(), "termtag/claims/").await, 4);
    assert_eq!(s.held_claims().unwrap().len(), 4);
}

/// With predictions a pull ranks from the `totag` CSV and checks only the images it claims; the
/// images container is listed once the unclaimed predicted images run out.
async fn predictions_spare_the_listing(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(dir.path());
    let set = b.open(&p);
    b.seed(&set, 10, Some(TOTAG)).await;
    let images = Arc::new(remote_support::Counted::new(set.images.clone()));
    let watched = RemoteSet {
        images: images.clone(),
        ..set.clone()
    };
    let mut s = p.store().unwrap();
    let r = pull(&p, &mut s, &watched, 3).await;
    assert_eq!(r.claimed, ["img_001.png", "img_003.png", "img_005.png"]);
    assert_eq!(r.predictions, 3);
    assert!(!r.listed);
    assert_eq!(
        images.whole_listings(),
        0,
        "the images container was not listed"
    );
    // Next in line, img_002, was pushed by someone whose CSVs are not written yet: skipped.
    set.labels
        .put(
            "termtag/done/img_002.png",
            b"x".to_vec(),
            remote::PutMode::Create,
        )
        .await
        .unwrap();
    let r = pull(&p, &mut s, &watched, 1).await;
    assert_eq!(r.claimed, ["img_000.png"]);
    assert_eq!(images.whole_listings(), 0);
    // Then the image where the model found nothing, then (listed) the unpredicted ones.
    let r = pull(&p, &mut s, &watched, 2).await;
    assert_eq!(r.claimed, ["img_004.png", "img_006.png"]);
    assert!(r.listed);
    assert_eq!(images.whole_listings(), 1);
    assert_eq!(r.remaining, 3);
    assert_eq!(count(set.labels.as_ref(), "termtag/claims/").await, 6);
}

/// ALD's `folder` column may name the annotator's local folder: the predicted keys are not blobs,
/// so the pull lists the container and matches the rows by file name.
async fn predictions_from_a_local_folder(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(dir.path());
    let set = b.open(&p);
    b.seed(
        &set,
        4,
        Some(
            "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence
img_001.png,can,0.1,0.5,0.1,0.5,12,16,mine,0.4,0.4
img_002.png,can,0.1,0.5,0.1,0.5,12,16,mine,0.2,0.2
",
        ),
    )
    .await;
    let mut s = p.store().unwrap();
    let r = pull(&p, &mut s, &set, 3).await;
    assert!(r.listed);
    assert_eq!(r.claimed, ["img_000.png", "img_001.png", "img_002.png"]);
    let r = pull(&p, &mut s, &set, 1).await;
    assert_eq!(
        r.claimed,
        ["img_003.png"],
        "the two predicted ones went first"
    );
}

mod flaky {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use termtag::remote::{Page, PutMode, Remote, RemoteError, RemoteResult};

    /// The real backend, whose network "goes away" for good after `ok` writes (or reads too,
    /// with `reads`).
    pub struct Flaky {
        inner: Arc<dyn Remote>,
        left: AtomicUsize,
        reads: bool,
    }

    impl Flaky {
        pub fn new(inner: Arc<dyn Remote>, ok: usize) -> Flaky {
            Flaky {
                inner,
                left: AtomicUsize::new(ok),
                reads: false,
            }
        }
        pub fn reads(inner: Arc<dyn Remote>, ok: usize) -> Flaky {
            Flaky {
                inner,
                left: AtomicUsize::new(ok),
                reads: true,
            }
        }
        fn gate(&self, name: &str) -> RemoteResult<()> {
            let left = self.left.load(Ordering::SeqCst);
            if left == 0 {
                return Err(RemoteError::Unreachable {
                    what: name.into(),
                    msg: "connection refused".into(),
                });
            }
            self.left.store(left - 1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[async_trait]
    impl Remote for Flaky {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        async fn ensure_exists(&self) -> RemoteResult<()> {
            self.inner.ensure_exists().await
        }
        async fn list_page(&self, prefix: &str, marker: Option<String>) -> RemoteResult<Page> {
            self.inner.list_page(prefix, marker).await
        }
        async fn get(&self, name: &str) -> RemoteResult<(Vec<u8>, String)> {
            if self.reads {
                self.gate(name)?;
            }
            self.inner.get(name).await
        }
        async fn put(&self, name: &str, data: Vec<u8>, mode: PutMode) -> RemoteResult<String> {
            self.gate(name)?;
            self.inner.put(name, data, mode).await
        }
        async fn delete(&self, name: &str, if_match: Option<&str>) -> RemoteResult<()> {
            self.gate(name)?;
            self.inner.delete(name, if_match).await
        }
    }
}

// ---- local folder backend ----

fn local() -> (tempfile::TempDir, Backend) {
    let d = tempfile::tempdir().unwrap();
    let b = Backend::local(d.path());
    (d, b)
}

#[test]
fn local_round_trip() {
    let (_d, b) = local();
    rt().block_on(round_trip(b));
}

#[test]
fn local_concurrent_pullers_get_disjoint_claims() {
    let (_d, b) = local();
    rt().block_on(concurrent_pullers(b));
}

#[test]
fn local_expired_claims_are_taken_over() {
    let (_d, b) = local();
    rt().block_on(expired_claims_are_taken_over(b));
}

#[test]
fn local_interrupted_pull_resumes() {
    let (_d, b) = local();
    rt().block_on(interrupted_pull_resumes(b));
}

#[test]
fn azure_interrupted_pull_resumes() {
    rt().block_on(interrupted_pull_resumes(Backend::azure(
        &azurite_url(),
        "pr",
    )));
}

#[test]
fn local_predictions_spare_the_listing() {
    let (_d, b) = local();
    rt().block_on(predictions_spare_the_listing(b));
}

#[test]
fn local_predictions_from_a_local_folder() {
    let (_d, b) = local();
    rt().block_on(predictions_from_a_local_folder(b));
}

#[test]
fn local_interrupted_push_resumes() {
    let (_d, b) = local();
    rt().block_on(interrupted_push_resumes(b));
}

// ---- Azure Blob Storage (Azurite) ----

#[test]
fn azure_round_trip() {
    rt().block_on(round_trip(Backend::azure(&azurite_url(), "rt")));
}

#[test]
fn azure_concurrent_pullers_get_disjoint_claims() {
    rt().block_on(concurrent_pullers(Backend::azure(&azurite_url(), "cc")));
}

#[test]
fn azure_expired_claims_are_taken_over() {
    rt().block_on(expired_claims_are_taken_over(Backend::azure(
        &azurite_url(),
        "ex",
    )));
}

#[test]
fn azure_predictions_spare_the_listing() {
    rt().block_on(predictions_spare_the_listing(Backend::azure(
        &azurite_url(),
        "ps",
    )));
}

#[test]
fn azure_predictions_from_a_local_folder() {
    rt().block_on(predictions_from_a_local_folder(Backend::azure(
        &azurite_url(),
        "pf",
    )));
}

#[test]
fn azure_interrupted_push_resumes() {
    rt().block_on(interrupted_push_resumes(Backend::azure(
        &azurite_url(),
        "ip",
    )));
}

#[test]
fn azure_read_only_sas_is_refused_and_changes_nothing() {
    let b = Backend::azure(&azurite_url(), "ro");
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(dir.path());
    rt().block_on(async {
        b.seed(&b.open(&p), 3, Some(TOTAG)).await;
        let ro = termtag::remote::open_with_env(&p, &b.sas_env("rl")).unwrap();
        let mut s = p.store().unwrap();
        let before = std::fs::read_dir(p.root.join(".termtag")).unwrap().count();
        let e = remote::pull(
            &p,
            &mut s,
            &ro,
            &PullOptions {
                count: 2,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("access denied") && e.contains("SAS permissions"),
            "{e}"
        );
        assert!(!e.contains("sig="), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert_eq!(s.image_statuses().unwrap().len(), 0);
        assert!(s.held_claims().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(p.root.join(".termtag")).unwrap().count(),
            before
        );
        assert_eq!(count(ro.labels.as_ref(), "termtag/claims/").await, 0);
    });
}

/// Azurite goes down in the middle of a push and comes back: the push completes, with one batch,
/// every image done once and no claim left.
#[test]
fn azure_push_survives_a_storage_restart() {
    let mut az = OwnAzurite::start();
    let b = Backend::azure(&az.url(), "rs");
    let dir = tempfile::tempdir().unwrap();
    let mut p = b.project(dir.path());
    p.config.remote.concurrency = 1;
    let runtime = rt();
    let set = b.open(&p);
    let n = 150;
    let mut s = p.store().unwrap();
    runtime.block_on(async {
        b.seed(&set, n, None).await;
        pull(&p, &mut s, &set, n as usize).await;
    });
    label_claimed(&mut s);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let outage = std::thread::spawn(move || {
        rx.recv().unwrap();
        az.stop();
        std::thread::sleep(Duration::from_millis(1500));
        az.restart();
        az
    });
    let tx = std::sync::Mutex::new(Some(tx));
    let first = runtime.block_on(remote::push(&p, &mut s, &set, &|pr| {
        if let remote::Progress::Uploading { done, .. } = pr
            && done == 20
            && let Some(tx) = tx.lock().unwrap().take()
        {
            tx.send(()).unwrap();
        }
    }));
    let _az = outage.join().unwrap();
    let report = match first {
        Ok(r) => r,
        // The outage outlasted every retry: running push again resumes it.
        Err(e) => {
            eprintln!("first push failed ({e}); resuming");
            runtime.block_on(push(&p, &mut s, &set))
        }
    };
    assert_eq!(report.images, n as usize);
    runtime.block_on(async {
        assert_eq!(remote::read_batches(&set).await.unwrap().len(), 1);
        assert_eq!(
            count(set.labels.as_ref(), "termtag/done/").await,
            n as usize
        );
        assert_eq!(count(set.labels.as_ref(), "termtag/claims/").await, 0);
        let tagged = remote::newest_ald_csv(&set, "tagged")
            .await
            .unwrap()
            .unwrap();
        let (_, rows) = remote::read_ald_csv(&set, &tagged).await.unwrap();
        let keys: HashSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!((rows.len(), keys.len()), (n as usize, n as usize));
    });
    assert!(s.held_claims().unwrap().is_empty());
}

#[test]
fn cache_paths_never_leave_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let p = Backend::local(dir.path()).project(&dir.path().join("p"));
    for bad in ["../x.png", "/etc/passwd", "a/../../x.png", "a\u{1b}b.png"] {
        assert!(p.image_file(bad).is_err(), "{bad:?}");
    }
    assert!(
        p.image_file("sub/ok.png")
            .unwrap()
            .starts_with(p.root.join(".termtag/cache"))
    );
}

/// The commands as a user runs them: `init --source URL`, credentials from the environment,
/// `pull`, label, `push`; and a wrong key that never reaches the screen.
#[test]
fn azure_cli_init_pull_push() {
    let url = azurite_url();
    let b = Backend::azure(&url, "cli");
    let seed_dir = tempfile::tempdir().unwrap();
    let seeder = b.project(seed_dir.path());
    rt().block_on(b.seed(&b.open(&seeder), 5, Some(TOTAG)));
    let Backend::Azure { images, labels, .. } = &b else {
        unreachable!()
    };

    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("cans");
    let key = termtag::remote::auth::AZURITE_KEY;
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint={url};"
    );
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = assert_cmd::Command::cargo_bin("termtag").unwrap();
        c.env_remove("AZURE_STORAGE_SAS_URL")
            .env_remove("AZURE_STORAGE_CONNECTION_STRING")
            .env_remove("AZURE_STORAGE_KEY")
            .env_remove("AZURE_STORAGE_ACCOUNT")
            .env("USER", "tester")
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // A SAS in --source is refused: termtag.toml is shared and must hold no secret.
    let out = run(
        &[
            "init",
            proj.to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            "can",
            "--source",
            &format!("{url}/{images}?sv=2022-11-02&sig=c2VjcmV0"),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("AZURE_STORAGE_SAS_URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c2VjcmV0") && !proj.join("termtag.toml").exists(),
        "{stderr}"
    );
    let source = format!("{url}/{images}");
    let out = run(
        &[
            "init",
            proj.to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            "can,bottle",
            "--source",
            &source,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml_path = proj.join("termtag.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    assert!(toml.contains("[remote]") && !toml.contains(key));
    std::fs::write(
        &toml_path,
        toml.replace(
            "labels_container = \"activelearninglabels\"",
            &format!("labels_container = \"{labels}\""),
        ),
    )
    .unwrap();

    let p = proj.to_str().unwrap();
    let out = run(
        &["-C", p, "pull", "--count", "2"],
        &[("AZURE_STORAGE_CONNECTION_STRING", &conn)],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("pulled 2 images"), "{stdout}");
    assert!(!stdout.contains(key) && !stderr.contains(key) && !stderr.contains("sig="));

    let project = Project::load(&proj).unwrap();
    let mut s = project.store().unwrap();
    label_claimed(&mut s);
    drop(s);
    let out = run(
        &["-C", p, "push"],
        &[("AZURE_STORAGE_CONNECTION_STRING", &conn)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("as batch") && stdout.contains("2 images"),
        "{stdout}"
    );

    // A wrong key: a one-line error that names the container and shows no secret.
    let wrong = "d3JvbmctYnV0LWJhc2U2NC1rZXktdmFsdWUtMTIzNDU2Nzg=";
    let out = run(
        &["-C", p, "pull", "--count", "1"],
        &[
            ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"),
            ("AZURE_STORAGE_KEY", wrong),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("access denied")
            && (stderr.contains(images.as_str()) || stderr.contains(labels.as_str())),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stderr.contains("sig="),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("termtag:")).count(),
        1,
        "{stderr}"
    );
}

/// Blob names that would escape the cache (`..`) are refused and reported; the other images
/// are pulled. (Azurite fails to list names with control characters, which real Azure returns
/// encoded; the local-folder test below covers those.)
#[test]
fn azure_unsafe_blob_names_are_refused() {
    let b = Backend::azure(&azurite_url(), "un");
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(&dir.path().join("p"));
    let set = b.open(&p);
    rt().block_on(async {
        b.seed(&set, 2, None).await;
        for bad in ["../../evil.png", "x/../../../evil2.png"] {
            set.images
                .put(bad, remote_support::png(7), remote::PutMode::Overwrite)
                .await
                .unwrap();
        }
        let mut s = p.store().unwrap();
        let r = pull(&p, &mut s, &set, 10).await;
        assert_eq!(r.claimed, vec!["img_000.png", "img_001.png"]);
        let refused: Vec<&str> = r.refused.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(refused, ["../../evil.png", "x/../../../evil2.png"]);
        assert!(
            r.refused
                .iter()
                .all(|(_, why)| why.contains("leaves its folder"))
        );
    });
    assert!(!dir.path().join("evil.png").exists() && !dir.path().join("evil2.png").exists());
}

#[test]
fn local_control_characters_in_names_are_refused() {
    let (d, b) = local();
    let pdir = tempfile::tempdir().unwrap();
    let p = b.project(pdir.path());
    let set = b.open(&p);
    rt().block_on(async {
        b.seed(&set, 1, None).await;
        let img_dir = d.path().join("activelearningimages");
        std::fs::write(img_dir.join("esc\u{1b}[31m.png"), remote_support::png(3)).unwrap();
        let mut s = p.store().unwrap();
        let r = pull(&p, &mut s, &set, 10).await;
        assert_eq!(r.claimed, vec!["img_000.png"]);
        assert_eq!(r.refused.len(), 1);
        assert!(!r.refused[0].0.contains('\u{1b}'), "{:?}", r.refused);
        assert!(
            r.refused[0].1.contains("control characters"),
            "{:?}",
            r.refused
        );
    });
}

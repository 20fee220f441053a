//! Faults injected for real: a proxy in front of Azurite drops connections, stalls and answers
//! 500/503 at chosen requests of a pull and of a push. The log of the proxy proves each fault hit
//! in the middle of the transfer; the outcome shows retries helped, nothing was lost or duplicated,
//! and a second run has nothing left to do.

mod remote_support;

use std::collections::HashSet;
use std::time::Duration;

use remote_support::fault_proxy::{Fault, FaultProxy, Rule, Seen};
use remote_support::{Backend, azurite_url, count, label_claimed};
use termtag::remote::{self, PullOptions};

const TOTAG: &str =
    "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence
img_000.png,can,0.1,0.5,0.1,0.5,12,16,,0.9,0.8
";

fn azurite_port() -> u16 {
    let url = azurite_url();
    let host = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    host.rsplit(':').next().unwrap().parse().unwrap()
}

/// The same containers as `b`, reached through `proxy`.
fn through(b: &Backend, proxy: &FaultProxy) -> Backend {
    let Backend::Azure { images, labels, .. } = b else {
        unreachable!()
    };
    Backend::Azure {
        url: proxy.url(),
        images: images.clone(),
        labels: labels.clone(),
    }
}

/// Index in `log` of each request that got a fault, checked to sit between successful
/// requests of the same kind (`kind` in the request line): the fault hit mid-transfer.
fn assert_mid(log: &[Seen], kind: &str, faults: usize) {
    let of_kind: Vec<&Seen> = log.iter().filter(|s| s.line.contains(kind)).collect();
    let hit: Vec<usize> = of_kind
        .iter()
        .enumerate()
        .filter(|(_, s)| s.fault.is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hit.len(),
        faults,
        "faults on {kind}: {of_kind:#?}\nall: {:#?}",
        &log[..log.len().min(40)]
    );
    for i in hit {
        assert!(
            of_kind[..i].iter().any(|s| s.fault.is_none())
                && of_kind[i + 1..].iter().any(|s| s.fault.is_none()),
            "fault {i} on {kind} is not between good requests: {of_kind:#?}"
        );
    }
}

#[test]
fn faults_mid_pull_are_retried_and_nothing_is_lost() {
    let direct = Backend::azure(&azurite_url(), "fpull");
    let seed_dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seeder = direct.project(seed_dir.path());
    let dset = direct.open(&seeder);
    rt.block_on(direct.seed(&dset, 16, Some(TOTAG)));
    let Backend::Azure { images, labels, .. } = &direct else {
        unreachable!()
    };

    let proxy = FaultProxy::start(azurite_port());
    let get_image = format!("GET /devstoreaccount1/{images}/img_");
    let put_claim = format!("PUT /devstoreaccount1/{labels}/termtag%2Fclaims%2F");
    proxy.add(Rule::new(&get_image, 3, Fault::Status(503)));
    proxy.add(Rule::new(&get_image, 6, Fault::Drop));
    proxy.add(Rule::new(
        &get_image,
        9,
        Fault::Stall(Duration::from_millis(1500)),
    ));
    proxy.add(Rule::new(&get_image, 11, Fault::Status(500)));
    proxy.add(Rule::new(&put_claim, 4, Fault::Status(503)));
    proxy.add(Rule::new(&put_claim, 7, Fault::Drop));
    // The claim is written, but its answer is lost: the retry meets our own claim.
    proxy.add(Rule::new(&put_claim, 10, Fault::LoseAnswer));

    let b = through(&direct, &proxy);
    let dir = tempfile::tempdir().unwrap();
    let p = b.project(dir.path());
    let set = b.open(&p);
    let mut s = p.store().unwrap();
    let opts = PullOptions {
        count: 16,
        ..Default::default()
    };
    let r = rt
        .block_on(remote::pull(&p, &mut s, &set, &opts, &|_| {}))
        .unwrap();
    let log = proxy.log();
    assert_mid(&log, &get_image, 4);
    assert_mid(&log, &put_claim, 3);
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    let keys: HashSet<&String> = r.claimed.iter().collect();
    assert_eq!((r.claimed.len(), keys.len()), (16, 16), "every image once");
    assert_eq!(s.held_claims().unwrap().len(), 16);
    for k in &r.claimed {
        assert!(p.image_file(k).unwrap().exists(), "{k} downloaded");
    }
    rt.block_on(async {
        assert_eq!(count(dset.labels.as_ref(), "termtag/claims/").await, 16);
    });
    // A second pull finds nothing left.
    let again = rt
        .block_on(remote::pull(&p, &mut s, &set, &opts, &|_| {}))
        .unwrap();
    assert!(
        again.claimed.is_empty() && again.remaining == 0,
        "{again:?}"
    );
}

#[test]
fn faults_mid_push_are_retried_and_nothing_is_duplicated() {
    let direct = Backend::azure(&azurite_url(), "fpush");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Backend::Azure { labels, .. } = &direct else {
        unreachable!()
    };
    let proxy = FaultProxy::start(azurite_port());
    let b = through(&direct, &proxy);
    let p = b.project(dir.path());
    let set = b.open(&p);
    let dset = direct.open(&p);
    rt.block_on(direct.seed(&dset, 12, Some(TOTAG)));
    let mut s = p.store().unwrap();
    rt.block_on(remote::pull(
        &p,
        &mut s,
        &set,
        &PullOptions {
            count: 12,
            ..Default::default()
        },
        &|_| {},
    ))
    .unwrap();
    label_claimed(&mut s);

    // During the push: the batch upload answered 503, then stored with its answer lost; done
    // markers dropped and failed,
    // a claim release stalled, the tagged CSV upload dropped.
    let put = format!("PUT /devstoreaccount1/{labels}/");
    let done = format!("PUT /devstoreaccount1/{labels}/termtag%2Fdone%2F");
    let release = format!("DELETE /devstoreaccount1/{labels}/termtag%2Fclaims%2F");
    let before = proxy.log().len();
    proxy.add(Rule::new(
        &format!("{put}termtag%2Fbatches%2F"),
        1,
        Fault::Status(503),
    ));
    // The batch is stored, but its answer is lost: the retry must not store a second one.
    proxy.add(Rule::new(
        &format!("{put}termtag%2Fbatches%2F"),
        2,
        Fault::LoseAnswer,
    ));
    proxy.add(Rule::new(&done, 3, Fault::Drop));
    proxy.add(Rule::new(&done, 7, Fault::Status(500)));
    proxy.add(Rule::new(
        &release,
        5,
        Fault::Stall(Duration::from_millis(1500)),
    ));
    proxy.add(Rule::new(&format!("{put}tagged_"), 1, Fault::Drop));
    let r = rt
        .block_on(remote::push(&p, &mut s, &set, &|_| {}))
        .unwrap();
    let log = proxy.log()[before..].to_vec();
    assert_mid(&log, &done, 2);
    assert_mid(&log, &release, 1);
    assert!(
        log.iter()
            .any(|x| x.line.contains("termtag%2Fbatches%2F") && x.fault == Some(Fault::Status(503))),
        "the batch upload was failed once: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|x| x.line.contains("termtag%2Fbatches%2F") && x.fault == Some(Fault::LoseAnswer)),
        "the batch was stored with its answer lost: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|x| x.line.contains("/tagged_") && x.fault == Some(Fault::Drop)),
        "the tagged CSV upload was dropped once: {log:#?}"
    );
    assert_eq!((r.images, r.labels), (12, 12));
    rt.block_on(async {
        assert_eq!(remote::read_batches(&dset).await.unwrap().len(), 1);
        assert_eq!(count(dset.labels.as_ref(), "termtag/done/").await, 12);
        assert_eq!(count(dset.labels.as_ref(), "termtag/claims/").await, 0);
        assert_eq!(count(dset.labels.as_ref(), "tagged_").await, 1);
        let tagged = remote::newest_ald_csv(&dset, "tagged")
            .await
            .unwrap()
            .unwrap();
        let (_, rows) = remote::read_ald_csv(&dset, &tagged).await.unwrap();
        let keys: HashSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!((rows.len(), keys.len()), (12, 12), "every label once");
    });
    assert!(s.held_claims().unwrap().is_empty());
    // A second push has nothing to do.
    let again = rt
        .block_on(remote::push(&p, &mut s, &set, &|_| {}))
        .unwrap();
    assert_eq!(again.images, 0);
}

#[test]
fn a_stalled_connection_is_abandoned_and_retried() {
    let direct = Backend::azure(&azurite_url(), "fstall");
    let seed_dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seeder = direct.project(seed_dir.path());
    let dset = direct.open(&seeder);
    rt.block_on(direct.seed(&dset, 4, None));
    let Backend::Azure { images, .. } = &direct else {
        unreachable!()
    };
    let proxy = FaultProxy::start(azurite_port());
    let get_image = format!("GET /devstoreaccount1/{images}/img_");
    // A connection that never answers (for ten minutes): only a per-attempt timeout ends it.
    proxy.add(Rule::new(
        &get_image,
        2,
        Fault::Stall(Duration::from_secs(600)),
    ));
    let b = through(&direct, &proxy);
    let dir = tempfile::tempdir().unwrap();
    let mut p = b.project(dir.path());
    p.config.remote.timeout_seconds = 1.0;
    let set = b.open(&p);
    let mut s = p.store().unwrap();
    let opts = PullOptions {
        count: 4,
        concurrency: Some(1),
        ..Default::default()
    };
    let r = rt
        .block_on(async {
            // A guard against hanging the suite, far above the 1 s timeout; not a speed check.
            tokio::time::timeout(
                Duration::from_secs(120),
                remote::pull(&p, &mut s, &set, &opts, &|_| {}),
            )
            .await
        })
        .expect("the pull still waits on the stalled connection: no per-attempt timeout")
        .unwrap();
    let stalled = proxy
        .log()
        .iter()
        .filter(|s| matches!(s.fault, Some(Fault::Stall(_))))
        .count();
    assert_eq!(stalled, 1, "the stall hit one download");
    assert_eq!(r.claimed.len(), 4, "{r:?}");
    for k in &r.claimed {
        assert!(p.image_file(k).unwrap().exists(), "{k}");
    }
}

//! `predict` on a project whose images arrive by `pull` (a blob container, or a `[remote]
//! folder`): it predicts the pulled images from the cache, the same files the review screen
//! shows (`Project::image_file`), and leaves the others for later. Needs ORT_DYLIB_PATH; the
//! Azure variant needs Azurite (both set by scripts/test.sh).

mod remote_support;

use std::collections::BTreeSet;
use std::path::Path;

use remote_support::{Backend, azurite_url};
use termtag::infer::{PredictOptions, predict};
use termtag::remote::{self, PullOptions};

fn tf_od() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/tf_od.onnx")
}

async fn predict_after_pull(b: Backend) {
    assert!(
        std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty()),
        "ORT_DYLIB_PATH is not set: run the tests with scripts/test.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let project = b.project(dir.path());
    let set = b.open(&project);
    b.seed(&set, 6, None).await;
    let mut store = project.store().unwrap();
    let opts = PullOptions {
        count: 2,
        claim_ttl: None,
        concurrency: None,
    };
    let pulled = remote::pull(&project, &mut store, &set, &opts, &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.claimed.len(), 2, "{pulled:?}");

    // The tf_od fixture's class ids 1 and 3 are the project's `can` and `bottle`.
    let labels = dir.path().join("names.txt");
    std::fs::write(&labels, "1\tcan\n3\tbottle\n").unwrap();
    let opts = PredictOptions {
        model: Some(tf_od()),
        labels: Some(labels),
        ..PredictOptions::default()
    };
    let r =
        tokio::task::block_in_place(|| predict(&project, &mut store, &opts, &|_, _| {})).unwrap();
    assert_eq!(r.processed, 2, "{r:?}");
    assert!(r.broken.is_empty(), "{:?}", r.broken);
    assert_eq!(r.predictions, 4);
    let predicted: BTreeSet<String> = store
        .predicted_images(Some(r.run_id))
        .unwrap()
        .into_iter()
        .map(|im| im.key)
        .collect();
    let claimed: BTreeSet<String> = pulled.claimed.iter().cloned().collect();
    assert_eq!(predicted, claimed);
    for k in &claimed {
        assert!(project.image_file(k).unwrap().is_file());
    }

    // Two more pulled: the same run resumes with only those.
    let more = remote::pull(
        &project,
        &mut store,
        &set,
        &PullOptions {
            count: 2,
            claim_ttl: None,
            concurrency: None,
        },
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(more.claimed.len(), 2);
    let r2 =
        tokio::task::block_in_place(|| predict(&project, &mut store, &opts, &|_, _| {})).unwrap();
    assert_eq!((r2.run_id, r2.processed, r2.already), (r.run_id, 2, 2));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn local_folder_predict_after_pull() {
    let d = tempfile::tempdir().unwrap();
    rt().block_on(predict_after_pull(Backend::local(d.path())));
}

#[test]
fn azure_predict_after_pull() {
    rt().block_on(predict_after_pull(Backend::azure(&azurite_url(), "pp")));
}

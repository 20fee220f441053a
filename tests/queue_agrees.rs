//! One review queue: the review screen's order, `termtag queue`'s order and the images `termtag
//! pull` claims agree, under a queue setting where the old per-command orderings did not
//! (margin, images the model found empty first). Runs on the local-folder remote.

mod remote_support;

use std::path::Path;
use std::process::Command;

use remote_support::{Backend, png};
use termtag::model::{ImageStatus, Task};
use termtag::project::{ClassMap, Project};
use termtag::queue::{EmptyPolicy, Metric};
use termtag::remote::{self, PullOptions};
use termtag::store::{Decided, Decision, Store};
use termtag::tui::app::{StoreCtx, store_effect};
use termtag::tui::state::{Effect, Msg};

/// Margins 1 − |2s − 1| (largest box decides): img_002 (0.5) 1.0, img_005 (0.45) 0.9,
/// img_000 (0.3) 0.6, img_001 (0.95) 0.1; img_003 and img_006 found empty (NULL rows);
/// img_004 and img_007 not predicted.
const TOTAG: &str =
    "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence
img_000.png,can,0.1,0.5,0.1,0.5,12,16,,0.3,0.3
img_001.png,can,0.1,0.5,0.1,0.5,12,16,,0.95,0.95
img_002.png,bottle,0.2,0.6,0.2,0.6,12,16,,0.5,0.5
img_003.png,NULL,0,0,0,0,12,16,,0,0
img_005.png,can,0.3,0.4,0.3,0.4,12,16,,0.45,0.45
img_006.png,NULL,0,0,0,0,12,16,,0,0
";

const N: u32 = 8;

fn queue_settings(p: &mut Project) {
    p.config.queue.metric = Some(Metric::Margin);
    p.config.queue.empty = Some(EmptyPolicy::First);
}

/// An annotator's project in `dir` pulling `count` images from a local-folder remote in `remote`
/// seeded with the same images and the totag CSV: the project, its store and the claimed keys.
fn pull_seeded(
    remote: &Path,
    dir: &Path,
    diversity: bool,
    count: usize,
) -> (Project, Store, Vec<String>) {
    let b = Backend::local(remote);
    let mut pr = b.project(dir);
    queue_settings(&mut pr);
    if diversity {
        pr.config.queue.diversity = Some(true);
    }
    let set = b.open(&pr);
    let mut sr = pr.store().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(async {
        b.seed(&set, N, Some(TOTAG)).await;
        let opts = PullOptions {
            count,
            ..Default::default()
        };
        remote::pull(&pr, &mut sr, &set, &opts, &|_| {})
            .await
            .unwrap()
    });
    (pr, sr, r.claimed)
}

/// A project holding the same images locally, with the totag CSV imported as predictions.
fn local_project(dir: &Path) -> (Project, Store) {
    local_project_of(dir, &png)
}

/// [`local_project`] with the pictures `picture(i)`.
fn local_project_of(dir: &Path, picture: &dyn Fn(u32) -> Vec<u8>) -> (Project, Store) {
    let src = dir.join("images");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..N {
        std::fs::write(src.join(format!("img_{i:03}.png")), picture(i)).unwrap();
    }
    let classes = vec!["can".to_string(), "bottle".to_string()];
    let mut p = Project::init(dir, Task::Detect, &classes, src.to_str()).unwrap();
    queue_settings(&mut p);
    let mut s = p.store().unwrap();
    p.refresh(&mut s, &|_, _| {}).unwrap();
    let csv = dir.join("totag.csv");
    std::fs::write(&csv, TOTAG).unwrap();
    let r = p
        .import(
            &mut s,
            &csv,
            termtag::formats::FormatKind::AldCsv,
            true,
            &ClassMap::default(),
            false,
            false,
        )
        .unwrap();
    assert_eq!(r.counts.images, 6);
    (p, s)
}

/// The review screen's queue: its store worker answering the query it sends.
fn screen_order(p: &Project, s: &mut Store) -> Vec<(String, ImageStatus)> {
    let ctx = StoreCtx::for_project(p, 2);
    let query = Effect::Query {
        filter: String::new(),
        metric: Metric::Margin,
    };
    let Some(Msg::Queue(items)) = store_effect(s, &ctx, query) else {
        panic!("the store worker answers a query with the queue");
    };
    items.into_iter().map(|q| (q.key, q.status)).collect()
}

/// `termtag queue` in the project: (key, value column) per line.
fn cli_order(dir: &Path) -> Vec<(String, String)> {
    cli_order_with(dir, &[])
}

fn cli_order_with(dir: &Path, more: &[&str]) -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_termtag"))
        .args([
            "queue", "--metric", "margin", "--empty", "first", "--limit", "0",
        ])
        .args(more)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split('\t');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn the_screen_termtag_queue_and_pull_share_one_order() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (pl, mut sl) = local_project(dirs[0].path());

    let screen: Vec<String> = screen_order(&pl, &mut sl)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expected: Vec<String> = [3, 6, 2, 5, 0, 1, 4, 7]
        .iter()
        .map(|i| format!("img_{i:03}.png"))
        .collect();
    assert_eq!(screen, expected, "empty first, then by margin, then unseen");
    let cli = cli_order(dirs[0].path());
    let cli_keys: Vec<&str> = cli.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        cli_keys,
        screen[..6],
        "termtag queue lists what the model placed"
    );
    assert_eq!(cli[0].1, "empty");

    // Pull from a remote holding the same images and CSV claims the head of that queue.
    let (pr, mut sr, claimed) = pull_seeded(dirs[1].path(), dirs[2].path(), false, 3);
    let mut head = screen[..3].to_vec();
    head.sort();
    assert_eq!(claimed, head);
    // And its own screen orders the pulled images as the local project's screen does.
    let pulled: Vec<String> = screen_order(&pr, &mut sr)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(pulled, screen[..3]);
}

#[test]
fn an_image_whose_proposals_are_all_decided_is_not_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (p, mut s) = local_project(dir.path());
    // Dismiss img_002's only proposal, leaving it waiting with no label.
    let id = s
        .image_briefs(&Default::default())
        .unwrap()
        .into_iter()
        .find(|r| r.key == "img_002.png")
        .unwrap()
        .id;
    let mut edit = s.image_edit(id).unwrap();
    edit.decisions = s
        .proposals(id, 0.0)
        .unwrap()
        .into_iter()
        .map(|pr| Decided {
            prediction: pr.prediction,
            decision: Decision::Dismissed,
        })
        .collect();
    assert_eq!(edit.decisions.len(), 1);
    s.apply_edit(id, "dismiss", &edit).unwrap();

    let screen = screen_order(&p, &mut s);
    let cli = cli_order(dir.path());
    let line = cli.iter().find(|(k, _)| k == "img_002.png").unwrap();
    assert_eq!(line.1, "decided", "{cli:?}");
    // Not in the empty bucket at the front: after the images the model ranked, on both.
    let keys: Vec<&str> = screen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "img_003.png",
            "img_006.png",
            "img_005.png",
            "img_000.png",
            "img_001.png",
            "img_002.png",
            "img_004.png",
            "img_007.png"
        ]
    );
    let cli_keys: Vec<&str> = cli.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(cli_keys, keys[..6]);
    assert_eq!(screen[5].1, ImageStatus::New);
}

/// Distinct 64×48 pictures (waves of another direction each), except that img_005 is img_002
/// a little brighter with a little noise: a near-duplicate.
fn waves(i: u32) -> Vec<u8> {
    let (k, copy) = if i == 5 { (2, true) } else { (i, false) };
    let angle = k as f32 * 0.7;
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        let t = (angle.cos() * x as f32 + angle.sin() * y as f32) * (0.15 + 0.02 * k as f32);
        let mut v = 128.0 + 90.0 * (t + k as f32).sin();
        if copy {
            v += 6.0 + ((x * 31 + y * 17) % 5) as f32;
        }
        let v = v.clamp(0.0, 255.0) as u8;
        image::Rgb([v, v, v.saturating_sub(20)])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// With `[queue] diversity` on: `termtag queue --diversity` fills in the signatures (the
/// pictures were imported with their predictions, so `predict` computed none) and moves
/// img_005, the near-copy of img_002, behind the other ranked images; the screen, finding the
/// signatures stored, shows the same order. Before they exist, the screen shows the metric's
/// order. `pull` has no signature for pictures it has not downloaded: it claims the head of the
/// metric's order.
#[test]
fn with_diversity_the_screen_and_termtag_queue_agree_and_pull_ranks_without_signatures() {
    let keys = |v: &[u32]| -> Vec<String> { v.iter().map(|i| format!("img_{i:03}.png")).collect() };
    let plain = keys(&[3, 6, 2, 5, 0, 1, 4, 7]);
    let diverse = keys(&[3, 6, 2, 0, 1, 5, 4, 7]);
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (mut pl, mut sl) = local_project_of(dirs[0].path(), &waves);
    pl.config.queue.diversity = Some(true);
    std::fs::write(
        dirs[0].path().join("termtag.toml"),
        pl.config.to_documented_toml(),
    )
    .unwrap();
    let screen = |p: &Project, s: &mut Store| -> Vec<String> {
        screen_order(p, s).into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(screen(&pl, &mut sl), plain, "no signatures yet");

    let cli = cli_order_with(dirs[0].path(), &["--diversity"]);
    let cli_keys: Vec<String> = cli.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(cli_keys, diverse[..6]);
    assert_eq!(
        sl.signatures().unwrap().len(),
        N as usize,
        "filled in and stored"
    );
    assert_eq!(
        screen(&pl, &mut sl),
        diverse,
        "the stored signatures reach the screen"
    );
    // The setting alone does it for `termtag queue` too.
    let again: Vec<String> = cli_order(dirs[0].path())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(again, diverse[..6]);

    // A totag CSV carries no signatures (a fleet's `predict --stream` writes them beside it):
    // pull with diversity on claims the head of the plain order.
    let (_, _, claimed) = pull_seeded(dirs[1].path(), dirs[2].path(), true, 5);
    let mut head = plain[..5].to_vec();
    head.sort();
    assert_eq!(claimed, head);
}

//! The review screen at the model level: key sequences through `update()`, effects carried out on
//! a real store, and the store checked afterwards.

mod common;

use common::{Fixture, write_image};
use termtag::formats::FormatKind;
use termtag::model::{ImageStatus, Task};
use termtag::project::{ClassMap, Project};
use termtag::store::{Filter, Store};
use termtag::tui::action::Action;
use termtag::tui::app::{StoreCtx, store_effect};
use termtag::tui::state::{Effect, ItemKind, Mode, Msg, State, SyncFailed, update};

/// Runs messages through `update()` and the store, as the app would, until nothing is pending.
struct Harness {
    state: State,
    store: Store,
    ctx: StoreCtx,
}

impl Harness {
    fn new(project: &Project) -> Harness {
        let store = project.store().unwrap();
        let classes = store.class_names().unwrap();
        let ctx = StoreCtx::for_project(project, classes.len());
        let mut h = Harness {
            state: State::new("test", project.config.task, classes),
            store,
            ctx,
        };
        h.effects(vec![Effect::Query {
            filter: String::new(),
            metric: h.state.metric,
        }]);
        h
    }

    fn effects(&mut self, effects: Vec<Effect>) {
        let mut pending = effects;
        while let Some(e) = pending.pop() {
            if let Some(msg) = store_effect(&mut self.store, &self.ctx, e) {
                let more = update(&mut self.state, msg);
                pending.extend(more.into_iter().rev());
            }
        }
    }

    fn send(&mut self, msg: Msg) {
        let fx = update(&mut self.state, msg);
        // Effects run in order: reverse onto the stack.
        self.effects(fx.into_iter().rev().collect());
    }

    fn keys(&mut self, actions: &[Action]) {
        for a in actions {
            self.send(Msg::Action(*a));
        }
    }

    fn key_of_current(&self) -> String {
        self.state.current_item().unwrap().key.clone()
    }

    /// (class, origin, box rounded to 3 decimals) of an image's labels.
    fn labels(&self, key: &str) -> Vec<(String, String, Option<[i64; 4]>)> {
        let row = self
            .store
            .images(&Filter::parse(&format!("path={key}")).unwrap())
            .unwrap()
            .pop()
            .unwrap();
        self.store
            .image_edit(row.id)
            .unwrap()
            .labels
            .into_iter()
            .map(|l| {
                let r = |v: f64| (v * 1000.0).round() as i64;
                (
                    l.class,
                    l.origin.as_str().to_string(),
                    l.bbox.map(|b| [r(b.x0), r(b.y0), r(b.x1), r(b.y1)]),
                )
            })
            .collect()
    }

    fn status(&self, key: &str) -> ImageStatus {
        self.store
            .images(&Filter::parse(&format!("path={key}")).unwrap())
            .unwrap()[0]
            .status
    }
}

/// A detect project with three 100×100 images and model predictions on them.
fn detect_project() -> (Fixture, Project) {
    new_project(
        Task::Detect,
        &["a.png", "b.png", "c.png"],
        100,
        &["knot", "defect"],
        "a.png,knot,0.1,0.3,0.1,0.3,100,100,,0.9,0.6\n\
         a.png,defect,0.5,0.9,0.5,0.9,100,100,,0.6,0.6\n\
         a.png,knot,0.0,0.1,0.0,0.1,100,100,,0.2,0.6\n\
         b.png,knot,0.2,0.4,0.2,0.4,100,100,,0.6,0.6\n\
         c.png,defect,0.3,0.6,0.3,0.6,100,100,,0.7,0.7\n",
    )
}

/// A project of `size`×`size` images with these classes, and these ALD CSV rows (if any)
/// imported as model predictions.
fn new_project(
    task: Task,
    names: &[&str],
    size: u32,
    classes: &[&str],
    predictions: &str,
) -> (Fixture, Project) {
    let f = Fixture::new();
    for name in names {
        write_image(&f.images().join(name), size, size);
    }
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let project = Project::init(
        &f.project(),
        task,
        &classes,
        Some(f.images().to_str().unwrap()),
    )
    .unwrap();
    let mut store = project.store().unwrap();
    project.refresh(&mut store, &|_, _| {}).unwrap();
    if !predictions.is_empty() {
        import_predictions(&f, &project, &mut store, "totag.csv", predictions);
    }
    (f, project)
}

/// Imports active-learning-detect prediction rows (without the header) into the project as one
/// model run, through `store` (a separate connection stands for another process).
fn import_predictions(f: &Fixture, project: &Project, store: &mut Store, name: &str, rows: &str) {
    let csv = f.write(
        name,
        &format!(
            "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n{rows}"
        ),
    );
    project
        .import(
            store,
            &csv,
            FormatKind::AldCsv,
            true,
            &ClassMap::default(),
            false,
            false,
        )
        .unwrap();
}

#[test]
fn review_three_images_accept_fix_draw_delete_and_mark_empty() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    assert_eq!(h.state.queue.len(), 3);

    // a.png: two proposals above the 0.5 threshold (the 0.2 one is not shown). Fix the class of
    // the second, then accept the image.
    assert_eq!(h.key_of_current(), "a.png");
    let cur = h.state.current.as_ref().unwrap();
    assert_eq!(cur.items.len(), 2);
    assert!(cur.items.iter().all(|i| i.is_proposal()));
    h.keys(&[Action::NextBox, Action::Class(1), Action::AcceptImage]);
    assert_eq!(
        h.labels("a.png"),
        vec![
            (
                "knot".into(),
                "accepted_prediction".into(),
                Some([100, 100, 300, 300])
            ),
            (
                "knot".into(),
                "accepted_prediction".into(),
                Some([500, 500, 900, 900])
            ),
        ]
    );
    assert_eq!(h.status("a.png"), ImageStatus::Reviewed);

    // b.png: delete the proposal, draw a box of our own (defect), accept.
    assert_eq!(h.key_of_current(), "b.png");
    h.keys(&[Action::DeleteBox, Action::DrawBox]);
    assert!(matches!(h.state.mode, Mode::Draw { .. }));
    // Crosshair starts at the centre (0.5, 0.5): set a corner, move 5 coarse steps right and down.
    h.keys(&[Action::Confirm]);
    for _ in 0..5 {
        h.keys(&[Action::MoveRight, Action::MoveDown]);
    }
    h.keys(&[Action::Confirm, Action::Class(2)]);
    // Saved at once, before the image is accepted.
    assert_eq!(
        h.labels("b.png"),
        vec![("defect".into(), "human".into(), Some([500, 500, 600, 600]))]
    );
    assert_eq!(h.status("b.png"), ImageStatus::New);
    h.keys(&[Action::AcceptImage]);
    assert_eq!(h.status("b.png"), ImageStatus::Reviewed);
    assert_eq!(h.labels("b.png").len(), 1);

    // c.png: nothing there after all.
    assert_eq!(h.key_of_current(), "c.png");
    h.keys(&[Action::MarkEmpty]);
    assert_eq!(h.labels("c.png"), vec![]);
    assert_eq!(h.status("c.png"), ImageStatus::Reviewed);
    let stats = h.store.stats().unwrap();
    assert_eq!(stats.verified_empty, 1);
    assert_eq!(stats.by_status.get("reviewed"), Some(&3));
}

#[test]
fn move_resize_fine_steps_and_undo_redo() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    // The best proposal (knot, 0.1..0.3) is selected on arrival; move it: coarse is 2% of the
    // view, fine one pixel.
    h.keys(&[Action::MoveRight, Action::MoveDownFine]);
    assert_eq!(
        h.labels("a.png"),
        vec![(
            "knot".into(),
            "accepted_prediction".into(),
            Some([120, 110, 320, 310])
        )]
    );
    // Grow the bottom-right corner, then switch to the top-left corner and pull it left.
    h.keys(&[Action::GrowRight, Action::CycleCorner, Action::GrowLeftFine]);
    assert_eq!(h.labels("a.png")[0].2, Some([110, 110, 340, 310]));
    // Undo three times: back to before the corner moves and the fine move.
    h.keys(&[Action::Undo, Action::Undo, Action::Undo]);
    assert_eq!(h.labels("a.png")[0].2, Some([120, 100, 320, 300]));
    h.keys(&[Action::Redo]);
    assert_eq!(h.labels("a.png")[0].2, Some([120, 110, 320, 310]));
    // Boxes never leave the image.
    for _ in 0..100 {
        h.keys(&[Action::MoveLeft, Action::MoveUp]);
    }
    assert_eq!(h.labels("a.png")[0].2, Some([0, 0, 200, 200]));
}

#[test]
fn undo_survives_a_restart() {
    let (_f, project) = detect_project();
    {
        let mut h = Harness::new(&project);
        h.keys(&[Action::AcceptImage]);
        assert_eq!(h.labels("a.png").len(), 2);
    }
    let mut h = Harness::new(&project);
    h.keys(&[Action::Undo]);
    assert_eq!(h.labels("a.png").len(), 0);
    assert_eq!(h.status("a.png"), ImageStatus::New);
    // The undone image is where the queue now stands, with its proposals back.
    assert_eq!(h.key_of_current(), "a.png");
    assert_eq!(h.state.current.as_ref().unwrap().items.len(), 2);
}

#[test]
fn classification_keys_toggle_or_pick_classes() {
    let f = Fixture::new();
    for name in ["p1.png", "p2.png"] {
        write_image(&f.images().join(name), 20, 20);
    }
    let project = Project::init(
        &f.project(),
        Task::Multilabel,
        &["cat".into(), "dog".into(), "bird".into()],
        Some(f.images().to_str().unwrap()),
    )
    .unwrap();
    let mut store = project.store().unwrap();
    project.refresh(&mut store, &|_, _| {}).unwrap();
    drop(store);
    let mut h = Harness::new(&project);
    h.keys(&[Action::Class(1), Action::Class(3), Action::Class(1)]);
    assert_eq!(
        h.labels("p1.png"),
        vec![("bird".into(), "human".into(), None)]
    );
    // The picker: open, move down twice (cat → dog → bird), back up once, choose dog.
    h.keys(&[
        Action::ClassPicker,
        Action::MoveDown,
        Action::MoveDown,
        Action::MoveUp,
    ]);
    assert_eq!(h.state.mode, Mode::Picker { index: 1 });
    h.keys(&[Action::Confirm, Action::AcceptImage]);
    assert_eq!(
        h.labels("p1.png"),
        vec![
            ("bird".into(), "human".into(), None),
            ("dog".into(), "human".into(), None)
        ]
    );
    assert_eq!(h.key_of_current(), "p2.png");
}

#[test]
fn filter_narrows_the_queue_and_bad_filters_say_why() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    h.keys(&[Action::Filter]);
    for c in "name=b*".chars() {
        h.send(Msg::Input(c));
    }
    h.keys(&[Action::Confirm]);
    assert_eq!(h.state.queue.len(), 1);
    assert_eq!(h.key_of_current(), "b.png");
    h.keys(&[Action::Filter]);
    for _ in 0.."name=b*".len() {
        h.send(Msg::Backspace);
    }
    for c in "colour=red".chars() {
        h.send(Msg::Input(c));
    }
    h.keys(&[Action::Confirm]);
    let m = h.state.message.as_ref().unwrap();
    assert!(m.error && m.text.contains("unknown filter key"), "{m:?}");
}

#[test]
fn an_undecodable_picture_is_marked_broken_and_skipped() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    let id = h.state.current_item().unwrap().id;
    h.send(Msg::PictureFailed {
        id,
        error: "truncated JPEG".into(),
    });
    assert_eq!(h.status("a.png"), ImageStatus::Broken);
    assert_eq!(h.key_of_current(), "b.png");
    let m = h.state.message.as_ref().unwrap();
    assert!(m.text.contains("a.png is broken (truncated JPEG)"), "{m:?}");
    // And it is out of the queue next time.
    let h = Harness::new(&project);
    assert_eq!(h.state.queue.len(), 2);
}

#[test]
fn gallery_tags_every_marked_image_at_once() {
    let f = Fixture::new();
    for name in ["p1.png", "p2.png", "p3.png", "p4.png"] {
        write_image(&f.images().join(name), 20, 20);
    }
    let project = Project::init(
        &f.project(),
        Task::Multilabel,
        &["cat".into(), "dog".into()],
        Some(f.images().to_str().unwrap()),
    )
    .unwrap();
    let mut store = project.store().unwrap();
    project.refresh(&mut store, &|_, _| {}).unwrap();
    drop(store);
    let mut h = Harness::new(&project);
    h.send(Msg::GalleryColumns(2));
    h.keys(&[Action::Gallery]);
    assert!(matches!(h.state.mode, Mode::Gallery { cursor: 0, .. }));
    // Mark p1, p2 (right) and p4 (down from p2), tag them all "dog".
    h.keys(&[
        Action::Confirm,
        Action::MoveRight,
        Action::Confirm,
        Action::MoveDown,
        Action::Confirm,
        Action::Class(2),
    ]);
    for key in ["p1.png", "p2.png", "p4.png"] {
        assert_eq!(
            h.labels(key),
            vec![("dog".into(), "human".into(), None)],
            "{key}"
        );
        assert_eq!(h.status(key), ImageStatus::Reviewed);
    }
    assert_eq!(h.labels("p3.png"), vec![]);
    // The gallery shows what it tagged.
    let id2 = h.state.queue[1].id;
    assert_eq!(h.state.gallery_labels[&id2], vec!["dog".to_string()]);
    // Pressing the same class again on images that all have it takes it off.
    h.keys(&[Action::Class(2)]);
    assert_eq!(h.labels("p2.png"), vec![]);
    // Enter opens the image under the cursor for review.
    h.keys(&[Action::AcceptImage]);
    assert_eq!(h.state.mode, Mode::Normal);
    assert_eq!(h.key_of_current(), "p4.png");
}

#[test]
fn zoom_in_stops_at_one_percent_and_zoom_out_returns_to_the_whole_image() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    for _ in 0..30 {
        h.keys(&[Action::ZoomIn]);
    }
    let z = h.state.zoom.unwrap();
    assert!(
        (z.width() - 0.01).abs() < 1e-9 && (z.height() - 0.01).abs() < 1e-9,
        "{z:?}"
    );
    for _ in 0..30 {
        h.keys(&[Action::ZoomOut]);
    }
    assert_eq!(h.state.zoom, None);
    // z zooms to the selected box with a margin, and back.
    h.keys(&[Action::ZoomBox]);
    let z = h.state.zoom.unwrap();
    assert!(z.x0 < 0.1 && z.x1 > 0.3 && z.width() < 0.5, "{z:?}");
    h.keys(&[Action::ZoomBox]);
    assert_eq!(h.state.zoom, None);
}

#[test]
fn queue_is_ranked_by_uncertainty_and_m_switches_the_metric() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    // least_confidence: 1 - the lowest score >= min_confidence (0.05).
    let keys: Vec<(&str, f64)> = h
        .state
        .queue
        .iter()
        .map(|q| (q.key.as_str(), q.score.unwrap()))
        .collect();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert_eq!(
        keys.iter().map(|k| k.0).collect::<Vec<_>>(),
        ["a.png", "b.png", "c.png"]
    );
    assert!(
        close(keys[0].1, 0.8) && close(keys[1].1, 0.4) && close(keys[2].1, 0.3),
        "{keys:?}"
    );
    h.keys(&[Action::SwitchMetric]);
    assert_eq!(h.state.metric.as_str(), "mean_confidence");
    // a.png: 1 - mean(0.9, 0.6, 0.2).
    let a = h.state.queue.iter().find(|q| q.key == "a.png").unwrap();
    assert!(
        close(a.score.unwrap(), 1.0 - (0.9 + 0.6 + 0.2) / 3.0),
        "{a:?}"
    );
    // Reviewed images go to the end of the queue.
    h.keys(&[Action::AcceptImage, Action::SwitchMetric]);
    assert_eq!(h.state.queue.last().unwrap().key, "a.png");
    assert_eq!(h.state.queue.last().unwrap().score, None);
}

#[test]
fn the_queue_sees_predictions_written_by_another_connection() {
    let (f, project) = detect_project();
    let mut h = Harness::new(&project);
    assert_eq!(h.state.queue[0].key, "a.png");
    // A pull or a `termtag predict` in another shell imports a newer run: c.png becomes the
    // least confident image.
    let mut other = project.store().unwrap();
    import_predictions(
        &f,
        &project,
        &mut other,
        "totag2.csv",
        "c.png,defect,0.3,0.6,0.3,0.6,100,100,,0.1,0.1\n",
    );
    // Round the five metrics, back to least_confidence.
    h.keys(&[Action::SwitchMetric; 5]);
    assert_eq!(h.state.metric.as_str(), "least_confidence");
    let c = &h.state.queue[0];
    assert_eq!(c.key, "c.png");
    assert!((c.score.unwrap() - 0.9).abs() < 1e-9, "{c:?}");
}

#[test]
fn pull_and_push_run_in_the_background_one_at_a_time() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    let fx = update(&mut h.state, Msg::Action(Action::Pull));
    assert_eq!(fx, vec![Effect::Sync { pull: true }]);
    assert_eq!(h.state.sync.as_deref(), Some("pull: starting"));
    // A second transfer waits for the first; the screen keeps working meanwhile.
    assert!(update(&mut h.state, Msg::Action(Action::Push)).is_empty());
    assert!(
        h.state
            .message
            .as_ref()
            .unwrap()
            .text
            .contains("already running")
    );
    h.keys(&[Action::NextImage]);
    assert_eq!(h.key_of_current(), "b.png");
    update(
        &mut h.state,
        Msg::SyncProgress("pull: downloading 3/50".into()),
    );
    assert_eq!(h.state.sync.as_deref(), Some("pull: downloading 3/50"));
    // When it ends the queue is rebuilt.
    let fx = update(
        &mut h.state,
        Msg::SyncDone {
            pull: true,
            result: Err(SyncFailed("access denied".into())),
        },
    );
    assert_eq!(h.state.sync, None);
    let m = h.state.message.as_ref().unwrap();
    assert!(m.error && m.text == "pull failed: access denied", "{m:?}");
    assert!(matches!(fx[0], Effect::Query { .. }));
}

/// What the screen shows of the current image, in a form a reload must give back: the labels
/// in order, the open proposals by prediction, the decisions taken.
type Shown = (
    Vec<(String, String, Option<[u64; 4]>)>,
    Vec<(i64, String)>,
    Vec<(i64, String)>,
    ImageStatus,
);

fn shown(state: &State) -> Option<(i64, Shown)> {
    let cur = state.current.as_ref()?;
    let bits = |b: termtag::model::BBox| [b.x0, b.y0, b.x1, b.y1].map(f64::to_bits);
    let labels = cur
        .items
        .iter()
        .filter_map(|it| match it.kind {
            ItemKind::Label(o) => {
                Some((it.class.clone(), o.as_str().to_string(), it.bbox.map(bits)))
            }
            ItemKind::Proposal => None,
        })
        .collect();
    let mut proposals: Vec<(i64, String)> = cur
        .items
        .iter()
        .filter(|it| it.is_proposal())
        .map(|it| (it.prediction.unwrap(), it.class.clone()))
        .collect();
    proposals.sort();
    let decisions = cur
        .decisions
        .iter()
        .map(|d| (d.prediction, d.decision.as_str().to_string()))
        .collect();
    Some((cur.id, (labels, proposals, decisions, cur.status)))
}

#[test]
fn dismissed_and_moved_proposals_stay_decided_after_back_forth_and_restart() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    assert_eq!(h.key_of_current(), "a.png");
    // Dismiss the best proposal (knot 0.9); the defect one is selected next: move it right.
    h.keys(&[Action::DeleteBox, Action::MoveRight]);
    assert_eq!(h.state.pending, 0, "every write answered");
    let m = h.state.message.as_ref().unwrap();
    assert!(!m.error, "{m:?}");
    let before = shown(&h.state).unwrap();
    // Away and back: the same.
    h.keys(&[Action::NextImage, Action::PrevImage]);
    assert_eq!(shown(&h.state).unwrap(), before);
    let cur = h.state.current.as_ref().unwrap();
    assert_eq!(cur.items.len(), 1, "{:?}", cur.items);
    assert!(!cur.items[0].is_proposal());
    // Restart: the same, and no doubling.
    let mut h = Harness::new(&project);
    assert_eq!(h.key_of_current(), "a.png");
    assert_eq!(shown(&h.state).unwrap(), before);
    // Accepting saves exactly the moved box.
    h.keys(&[Action::AcceptImage]);
    assert_eq!(
        h.labels("a.png"),
        vec![(
            "defect".into(),
            "accepted_prediction".into(),
            Some([520, 500, 920, 900])
        )]
    );
    // Stats and the prediction export agree: b.png and c.png keep one open proposal each.
    let counts = h.store.proposal_counts(0.5).unwrap();
    assert_eq!(
        (counts.open, counts.dismissed, counts.superseded),
        (2, 1, 1)
    );
    let ds = h.store.dataset(true).unwrap();
    let a = ds.images.iter().find(|i| i.key == "a.png").unwrap();
    // The 0.2 knot stays a prediction (below the threshold it was never shown).
    assert_eq!(a.labels.len(), 1);
    assert_eq!(a.labels[0].score, Some(0.2));
    // One undo takes back the accept; the next one the move, which reopens the proposal.
    h.keys(&[Action::Undo]);
    assert_eq!(h.status("a.png"), ImageStatus::New);
    h.keys(&[Action::Undo]);
    assert_eq!(h.key_of_current(), "a.png");
    let cur = h.state.current.as_ref().unwrap();
    assert_eq!(cur.items.iter().filter(|i| i.is_proposal()).count(), 1);
    h.keys(&[Action::Undo]);
    let cur = h.state.current.as_ref().unwrap();
    assert_eq!(cur.items.iter().filter(|i| i.is_proposal()).count(), 2);
}

#[test]
fn boxes_on_the_border_resize_and_move_without_panic() {
    // Within 0.002 of the right and bottom border, and thinner than the minimum size.
    let (_f, project) = new_project(
        Task::Detect,
        &["edge.png"],
        1000,
        &["knot"],
        "edge.png,knot,0.9995,1.0,0.9995,1.0,1000,1000,,0.9,0.9\n\
         edge.png,knot,0.0,0.0005,0.0,0.0005,1000,1000,,0.8,0.8\n",
    );
    let mut h = Harness::new(&project);
    let grow = [
        Action::GrowRight,
        Action::GrowDown,
        Action::GrowLeft,
        Action::GrowUp,
        Action::GrowLeftFine,
        Action::GrowRightFine,
        Action::MoveRight,
        Action::MoveDown,
        Action::MoveLeftFine,
    ];
    for _ in 0..2 {
        for _ in 0..4 {
            h.keys(&grow);
            h.keys(&[Action::CycleCorner]);
        }
        h.keys(&[Action::NextBox]);
    }
    for (_, _, b) in h.labels("edge.png") {
        let [x0, y0, x1, y1] = b.unwrap();
        assert!(0 <= x0 && x0 <= x1 && x1 <= 1000 && 0 <= y0 && y0 <= y1 && y1 <= 1000);
    }
}

#[test]
fn a_failed_write_is_shown_and_stops_editing() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    // Another terminal deletes a class while the screen is open.
    project
        .store()
        .unwrap()
        .delete_class("defect", false)
        .unwrap();
    h.keys(&[Action::Class(2)]);
    assert!(h.state.store_error.is_some());
    let m = h.state.message.clone().unwrap();
    assert!(m.error && m.text.contains("not saved"), "{m:?}");
    // Further edits are refused and the screen keeps what the store has.
    let before = shown(&h.state);
    h.keys(&[Action::MoveRight, Action::AcceptImage, Action::Undo]);
    assert_eq!(shown(&h.state), before);
    assert_eq!(h.state.pending, 0);
    assert!(
        h.state
            .message
            .as_ref()
            .unwrap()
            .text
            .contains("editing is stopped")
    );
    assert_eq!(h.status("a.png"), ImageStatus::New);
    // Moving around still works, and reads the classes that are left.
    h.keys(&[Action::NextImage]);
    assert_eq!(h.state.classes, vec!["knot".to_string()]);
}

#[test]
fn a_gallery_tag_of_many_images_is_one_undo() {
    let (_f, project) = new_project(
        Task::Multilabel,
        &["p1.png", "p2.png", "p3.png"],
        20,
        &["cat", "dog"],
        "",
    );
    let mut h = Harness::new(&project);
    h.keys(&[
        Action::Gallery,
        Action::Confirm,
        Action::MoveRight,
        Action::Confirm,
        Action::MoveRight,
        Action::Confirm,
        Action::Class(1),
    ]);
    for key in ["p1.png", "p2.png", "p3.png"] {
        assert_eq!(h.status(key), ImageStatus::Reviewed);
    }
    assert!(h.state.message.as_ref().unwrap().text.contains("3 images"));
    h.keys(&[Action::Undo]);
    for key in ["p1.png", "p2.png", "p3.png"] {
        assert_eq!(h.status(key), ImageStatus::New, "{key}");
        assert_eq!(h.labels(key), vec![]);
    }
    let m = h.state.message.as_ref().unwrap();
    assert!(m.text.contains("undone: tag of 3 images"), "{m:?}");
}

#[test]
fn ctrl_c_leaves_in_every_mode() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let keymap = termtag::tui::keymap::Keymap::defaults();
    let mut s = State::new("t", Task::Detect, vec!["knot".into()]);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for mode in [
        Mode::Normal,
        Mode::Filter {
            input: String::new(),
        },
        Mode::Help,
    ] {
        s.mode = mode;
        assert_eq!(
            termtag::tui::app::key_to_msg(&s, &keymap, &ctrl_c),
            Some(Msg::Shutdown)
        );
    }
    update(&mut s, Msg::Shutdown);
    assert!(s.quit);
}

/// Random reviews through `update()` and a real store, then a restart: the screen shows what
/// it showed before, and every write was answered. `PROPTEST_CASES` runs more.
mod random_reviews {
    use super::*;
    use proptest::prelude::*;

    const DETECT: &[Action] = &[
        Action::NextImage,
        Action::PrevImage,
        Action::NextBox,
        Action::PrevBox,
        Action::AcceptBox,
        Action::DeleteBox,
        Action::AcceptImage,
        Action::MarkEmpty,
        Action::Class(1),
        Action::Class(2),
        Action::Class(3),
        Action::MoveLeft,
        Action::MoveRight,
        Action::MoveUpFine,
        Action::MoveDown,
        Action::GrowLeft,
        Action::GrowRight,
        Action::GrowUp,
        Action::GrowDownFine,
        Action::GrowRightFine,
        Action::CycleCorner,
        Action::DrawBox,
        Action::Confirm,
        Action::Cancel,
        Action::Undo,
        Action::Redo,
        Action::ZoomIn,
        Action::ZoomOut,
        Action::ZoomBox,
        Action::ClassPicker,
        Action::Help,
        // Triage (repeat previous is left out: its copies are on screen only until accepted).
        Action::WalkProposals,
        Action::AcceptAbove,
        Action::DismissBelow,
        Action::DismissThresholdUp,
        Action::AcceptThresholdDown,
    ];

    const MULTILABEL: &[Action] = &[
        Action::NextImage,
        Action::PrevImage,
        Action::AcceptImage,
        Action::MarkEmpty,
        Action::Class(1),
        Action::Class(2),
        Action::Confirm,
        Action::Cancel,
        Action::Undo,
        Action::Redo,
        Action::Gallery,
        Action::MoveRight,
        Action::ClassPicker,
    ];

    /// A detect project whose predictions include boxes on the border and tiny ones.
    fn edge_project() -> (Fixture, Project) {
        let (f, project) = detect_project();
        let mut store = project.store().unwrap();
        import_predictions(
            &f,
            &project,
            &mut store,
            "edge.csv",
            "b.png,knot,0.9985,1.0,0.0,0.0015,100,100,,0.95,0.9\n\
             b.png,defect,0.0,1.0,0.0,1.0,100,100,,0.55,0.9\n\
             c.png,knot,0.0,0.001,0.999,1.0,100,100,,0.75,0.7\n",
        );
        (f, project)
    }

    fn multilabel_project() -> (Fixture, Project) {
        new_project(
            Task::Multilabel,
            &["p1.png", "p2.png", "p3.png"],
            20,
            &["cat", "dog"],
            "",
        )
    }

    fn check(project: &Project, actions: &[Action]) -> Result<(), TestCaseError> {
        let mut h = Harness::new(project);
        h.send(Msg::GalleryColumns(2));
        for (n, a) in actions.iter().enumerate() {
            h.keys(&[*a]);
            prop_assert_eq!(h.state.pending, 0, "a write was not answered after {:?}", a);
            prop_assert!(h.state.store_error.is_none(), "{:?}", h.state.store_error);
            // After every action the store already holds what the screen shows.
            if let Some((id, showing)) = shown(&h.state)
                && !matches!(h.state.mode, Mode::Gallery { .. })
            {
                let mut fresh = h.state.clone();
                fresh.current = None;
                let loaded = store_effect(&mut h.store, &h.ctx, Effect::Load { id }).unwrap();
                update(&mut fresh, loaded);
                prop_assert_eq!(
                    shown(&fresh),
                    Some((id, showing)),
                    "after action {} ({:?})",
                    n,
                    a
                );
            }
        }
        // Leave the modes that hold the image (drawing, gallery) the way a user would.
        h.keys(&[Action::Cancel, Action::Cancel]);
        let before = shown(&h.state);
        let statuses: std::collections::BTreeMap<i64, ImageStatus> =
            h.state.queue.iter().map(|q| (q.id, q.status)).collect();
        let classes = h.state.classes.clone();
        drop(h);

        let mut again = Harness::new(project);
        let now: std::collections::BTreeMap<i64, ImageStatus> =
            again.state.queue.iter().map(|q| (q.id, q.status)).collect();
        prop_assert_eq!(now, statuses);
        prop_assert_eq!(&again.state.classes, &classes);
        if let Some((id, _)) = &before {
            again.state.pos = again.state.queue.iter().position(|q| q.id == *id).unwrap();
            again.state.current = None;
            again.effects(vec![Effect::Load { id: *id }]);
        }
        prop_assert_eq!(shown(&again.state), before);
        Ok(())
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn detect_reviews_reload_as_shown(
            actions in proptest::collection::vec(proptest::sample::select(DETECT), 1..60)
        ) {
            let (_f, project) = edge_project();
            check(&project, &actions)?;
        }

        #[test]
        fn multilabel_reviews_reload_as_shown(
            actions in proptest::collection::vec(proptest::sample::select(MULTILABEL), 1..40)
        ) {
            let (_f, project) = multilabel_project();
            check(&project, &actions)?;
        }
    }
}

// ---- triage keys (issue 14) ----------------------------------------------------------------

/// (class, is a proposal, box rounded to 3 decimals) of what the screen shows.
fn shown_items(h: &Harness) -> Vec<(String, bool, Option<[i64; 4]>)> {
    let r = |v: f64| (v * 1000.0).round() as i64;
    h.state
        .current
        .as_ref()
        .unwrap()
        .items
        .iter()
        .map(|it| {
            (
                it.class.clone(),
                it.is_proposal(),
                it.bbox.map(|b| [r(b.x0), r(b.y0), r(b.x1), r(b.y1)]),
            )
        })
        .collect()
}

/// What the message line says.
fn said(h: &Harness) -> String {
    h.state
        .message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

fn selected_score(h: &Harness) -> Option<f64> {
    h.state.selected_item().and_then(|it| it.score)
}

fn label(class: &str, origin: &str, b: [i64; 4]) -> (String, String, Option<[i64; 4]>) {
    (class.into(), origin.into(), Some(b))
}

#[test]
fn repeat_previous_copies_the_last_reviewed_boxes_as_proposals() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    // Nothing reviewed yet: nothing to copy.
    h.keys(&[Action::RepeatPrevious]);
    assert!(said(&h).contains("nothing to repeat"));
    // a.png: accept its two proposals. b.png: copy them over.
    h.keys(&[Action::AcceptImage]);
    assert_eq!(h.key_of_current(), "b.png");
    h.keys(&[Action::RepeatPrevious]);
    assert_eq!(
        shown_items(&h),
        vec![
            ("knot".into(), true, Some([100, 100, 300, 300])),
            ("defect".into(), true, Some([500, 500, 900, 900])),
            ("knot".into(), true, Some([200, 200, 400, 400])),
        ],
        "the copies come before the model's proposal"
    );
    assert_eq!(h.state.selected, Some(0));
    assert!(
        h.labels("b.png").is_empty(),
        "copies are proposals, not labels"
    );
    // Again: nothing is copied twice.
    h.keys(&[Action::RepeatPrevious]);
    assert_eq!(shown_items(&h).len(), 3);
    // Accept the first copy: one write, one undo step.
    h.keys(&[Action::AcceptBox]);
    assert_eq!(
        h.labels("b.png"),
        vec![label("knot", "accepted_prediction", [100, 100, 300, 300])]
    );
    h.keys(&[Action::Undo]);
    assert!(h.labels("b.png").is_empty());
    // Copy, dismiss the defect copy, accept the image: the knot copy and the model's knot.
    h.keys(&[Action::RepeatPrevious, Action::NextBox, Action::DeleteBox]);
    h.keys(&[Action::AcceptImage]);
    assert_eq!(
        h.labels("b.png"),
        vec![
            label("knot", "accepted_prediction", [100, 100, 300, 300]),
            label("knot", "accepted_prediction", [200, 200, 400, 400]),
        ]
    );
    // c.png copies from b.png now, the image reviewed last.
    h.keys(&[Action::RepeatPrevious]);
    assert!(said(&h).contains("of b.png"));
    assert_eq!(shown_items(&h).len(), 3);
}

#[test]
fn repeat_previous_in_classification_copies_the_class() {
    use termtag::store::{ImageResult, NewPrediction};
    let (_f, project) = new_project(Task::Classify, &["a.png", "b.png"], 20, &["cat", "dog"], "");
    {
        // A classifier's run: cat on both images.
        let mut store = project.store().unwrap();
        let cat = store.classes().unwrap()[0].id;
        let run = store
            .create_model_run("m.onnx", "abc", "classify", "cfg")
            .unwrap();
        let results: Vec<(i64, ImageResult)> = store
            .images(&Filter::default())
            .unwrap()
            .iter()
            .zip([0.9, 0.8])
            .map(|(im, score)| {
                let p = NewPrediction {
                    class_id: cat,
                    bbox: None,
                    score,
                };
                (im.id, ImageResult::Predicted(vec![p]))
            })
            .collect();
        store.write_predictions(run, &results).unwrap();
    }
    let mut h = Harness::new(&project);
    let first = h.key_of_current();
    let second = if first == "a.png" { "b.png" } else { "a.png" };
    // The model says cat; the reviewer says dog, then copies that onto the next image.
    h.keys(&[Action::Class(2), Action::AcceptImage]);
    assert_eq!(h.labels(&first), vec![("dog".into(), "human".into(), None)]);
    h.keys(&[Action::RepeatPrevious]);
    assert_eq!(
        shown_items(&h),
        vec![("dog".into(), true, None), ("cat".into(), true, None)]
    );
    h.keys(&[Action::AcceptImage]);
    assert_eq!(
        h.labels(second),
        vec![("dog".into(), "accepted_prediction".into(), None)]
    );
}

#[test]
fn the_walk_goes_proposal_by_proposal_across_images() {
    // b.png ranks first (its only prediction, 0.3, is below the 0.5 threshold: no proposal).
    let (_f, project) = new_project(
        Task::Detect,
        &["a.png", "b.png", "c.png"],
        100,
        &["knot", "defect"],
        "a.png,knot,0.1,0.3,0.1,0.3,100,100,,0.9,0.6\n\
         a.png,defect,0.5,0.9,0.5,0.9,100,100,,0.55,0.6\n\
         b.png,knot,0.2,0.4,0.2,0.4,100,100,,0.3,0.3\n\
         c.png,knot,0.3,0.6,0.3,0.6,100,100,,0.6,0.6\n\
         c.png,knot,0.6,0.7,0.6,0.7,100,100,,0.7,0.6\n",
    );
    let mut h = Harness::new(&project);
    assert_eq!(h.key_of_current(), "b.png");
    // The walk passes b.png, which has no proposal, and selects a.png's first.
    h.keys(&[Action::WalkProposals]);
    assert!(h.state.walk);
    assert_eq!(h.key_of_current(), "a.png");
    assert_eq!(selected_score(&h), Some(0.9));
    // Accept: the next proposal is selected, a.png is not reviewed yet.
    h.keys(&[Action::AcceptBox]);
    assert_eq!(selected_score(&h), Some(0.55));
    assert_eq!(h.status("a.png"), ImageStatus::New);
    // Dismiss the last one: a.png is reviewed with its one label, and the walk goes on to c.png.
    h.keys(&[Action::DeleteBox]);
    assert_eq!(h.status("a.png"), ImageStatus::Reviewed);
    assert_eq!(
        h.labels("a.png"),
        vec![label("knot", "accepted_prediction", [100, 100, 300, 300])]
    );
    assert_eq!(h.key_of_current(), "c.png");
    assert_eq!(selected_score(&h), Some(0.7));
    // Tab and Shift-Tab walk c.png's proposals; past the last, the queue has no more.
    h.keys(&[Action::NextBox]);
    assert_eq!(selected_score(&h), Some(0.6));
    h.keys(&[Action::NextBox]);
    assert_eq!(h.key_of_current(), "c.png");
    assert!(said(&h).contains("no open proposal"));
    h.keys(&[Action::PrevBox]);
    assert_eq!(selected_score(&h), Some(0.7));
    // Going back passes reviewed a.png and b.png (no proposals), and comes back to c.png.
    h.keys(&[Action::PrevBox]);
    assert!(said(&h).contains("no open proposal"));
    assert_eq!(h.key_of_current(), "c.png");
    assert_eq!(selected_score(&h), Some(0.7));
    // A class key re-classes and moves on; the last decision reviews c.png.
    h.keys(&[Action::Class(2)]);
    assert_eq!(selected_score(&h), Some(0.6));
    assert_eq!(h.status("c.png"), ImageStatus::New);
    h.keys(&[Action::AcceptBox]);
    assert_eq!(h.status("c.png"), ImageStatus::Reviewed);
    assert_eq!(
        h.labels("c.png"),
        vec![
            label("defect", "accepted_prediction", [600, 600, 700, 700]),
            label("knot", "accepted_prediction", [300, 300, 600, 600]),
        ]
    );
    // The last decision and the review are one undo step.
    h.keys(&[Action::Undo]);
    assert_eq!(h.status("c.png"), ImageStatus::New);
    assert_eq!(
        h.labels("c.png"),
        vec![label("defect", "accepted_prediction", [600, 600, 700, 700])]
    );
    assert_eq!(h.key_of_current(), "c.png");
    assert_eq!(selected_score(&h), Some(0.6));
    // The walk ends with its key.
    h.keys(&[Action::WalkProposals]);
    assert!(!h.state.walk);
}

#[test]
fn thresholds_accept_and_dismiss_by_score_each_one_undo() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    assert_eq!((h.state.accept_at, h.state.dismiss_below), (0.8, 0.6));
    // a.png shows knot 0.9 and defect 0.6: nothing scores below 0.6.
    h.keys(&[Action::DismissBelow]);
    assert!(said(&h).contains("no proposal here scores < 0.60"));
    assert_eq!(h.state.pending, 0);
    h.keys(&[Action::DismissThresholdUp]);
    assert_eq!(h.state.dismiss_below, 0.65);
    h.keys(&[Action::DismissBelow]);
    assert_eq!(
        shown_items(&h),
        vec![("knot".into(), true, Some([100, 100, 300, 300]))]
    );
    h.keys(&[Action::AcceptAbove]);
    assert_eq!(
        h.labels("a.png"),
        vec![label("knot", "accepted_prediction", [100, 100, 300, 300])]
    );
    assert_eq!(
        h.status("a.png"),
        ImageStatus::New,
        "Enter still reviews it"
    );
    // Each is one undo: the accept, then the dismissal.
    h.keys(&[Action::Undo]);
    assert!(h.labels("a.png").is_empty());
    assert_eq!(shown_items(&h).len(), 1);
    h.keys(&[Action::Undo]);
    assert_eq!(shown_items(&h).len(), 2);
    // The accept threshold never drops under the dismiss threshold, nor rises over 1.
    for _ in 0..10 {
        h.keys(&[Action::AcceptThresholdDown]);
    }
    assert_eq!(h.state.accept_at, 0.65);
    for _ in 0..10 {
        h.keys(&[Action::AcceptThresholdUp]);
    }
    assert_eq!(h.state.accept_at, 1.0);
    // In the walk, a threshold that decides the last proposal reviews the image.
    h.keys(&[
        Action::WalkProposals,
        Action::AcceptThresholdDown,
        Action::AcceptThresholdDown,
    ]);
    h.keys(&[Action::AcceptThresholdDown, Action::AcceptThresholdDown]);
    assert_eq!(h.state.accept_at, 0.8);
    h.keys(&[Action::AcceptAbove, Action::DismissBelow]);
    assert_eq!(h.status("a.png"), ImageStatus::Reviewed);
    assert_eq!(h.key_of_current(), "b.png");
}

#[test]
fn review_time_is_counted_key_to_key_with_idle_gaps_cut() {
    let (_f, project) = detect_project();
    let mut h = Harness::new(&project);
    // A scripted session: (time in ms, key). The clock is the message, nothing sleeps.
    let script = [
        (0, None),
        (4_000, Some(Action::NextBox)),       // 4 s on a.png
        (10_000, Some(Action::AcceptImage)),  // 6 s on a.png: accepted unchanged (2)
        (200_000, Some(Action::NextBox)),     // 190 s idle on b.png: not counted
        (202_000, Some(Action::MoveRight)),   // 2 s on b.png: the proposal is edited
        (203_000, Some(Action::AcceptImage)), // 1 s on b.png
        (206_000, Some(Action::DeleteBox)),   // 3 s on c.png: dismissed
        (208_000, Some(Action::Quit)),        // 2 s on c.png, not reviewed
    ];
    for (at, key) in script {
        h.send(Msg::Activity { at_ms: at });
        if let Some(a) = key {
            h.keys(&[a]);
        }
    }
    let per_image: Vec<(String, String, i64)> = {
        let db = rusqlite::Connection::open(project.root.join(".termtag/labels.db")).unwrap();
        let mut st = db
            .prepare(
                "SELECT i.key, t.author, t.active_ms FROM review_time t
                 JOIN image i ON i.id = t.image_id ORDER BY i.key",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let me = h.store.author().to_string();
    assert_eq!(
        per_image,
        vec![
            ("a.png".into(), me.clone(), 10_000),
            ("b.png".into(), me.clone(), 3_000),
            ("c.png".into(), me.clone(), 5_000),
        ]
    );
    let speed = h.store.review_speed().unwrap();
    assert_eq!(
        speed,
        vec![termtag::store::Speed {
            author: me,
            reviewed: 2,
            active_ms: 18_000,
            accepted_unchanged: 2,
            edited: 1,
            dismissed: 1,
            drawn: 0,
        }]
    );
    assert_eq!(speed[0].seconds_per_image(), Some(9.0));
    assert_eq!(speed[0].images_per_hour(), Some(400.0));
    // The dashboard reads the same figures.
    h.state.quit = false;
    h.keys(&[Action::Dashboard]);
    assert_eq!(h.state.stats.as_ref().unwrap().speed, speed);
}

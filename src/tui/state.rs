//! The review screen's state and its pure `update()`: messages in, state changes and effects out.
//! Nothing here touches the terminal, the disk or the clock, so key sequences are unit-testable.

use crate::model::{BBox, ImageStatus, Origin, Task};
use crate::queue::Metric;
use crate::store::{Decided, Decision, EditLabel, ImageEdit, Proposal, Replay, Stats};

use super::action::Action;

/// Coarse steps move a box by this share of the visible region.
const COARSE: f64 = 0.02;
/// Boxes are never made smaller than this (normalised), so they stay selectable.
const MIN_SIZE: f64 = 0.002;
/// A pause between two keys longer than this is idle time, not review time.
pub const IDLE_MS: i64 = 60_000;
/// How far one key moves the accept or dismiss threshold.
const THRESHOLD_STEP: f64 = 0.05;

#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub id: i64,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub status: ImageStatus,
    /// The queue's ranking value (uncertainty), when a metric ranked it.
    pub score: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A label in the store, with where it came from.
    Label(Origin),
    /// A model prediction above the threshold, not yet accepted; or a label copied from the
    /// last reviewed image (no prediction, no score), shown until decided.
    Proposal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoxItem {
    pub class: String,
    pub bbox: Option<BBox>,
    pub score: Option<f64>,
    pub kind: ItemKind,
    /// The prediction a proposal shows: the decision about it is stored there.
    pub prediction: Option<i64>,
}

impl BoxItem {
    pub fn is_proposal(&self) -> bool {
        self.kind == ItemKind::Proposal
    }
}

/// The image being reviewed, once its labels are loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub id: i64,
    pub status: ImageStatus,
    pub items: Vec<BoxItem>,
    /// Decisions taken on the image's predictions (sorted by prediction id).
    pub decisions: Vec<Decided>,
}

impl Current {
    fn decide(&mut self, prediction: Option<i64>, decision: Decision) {
        let Some(prediction) = prediction else { return };
        self.decisions.retain(|d| d.prediction != prediction);
        self.decisions.push(Decided {
            prediction,
            decision,
        });
        self.decisions.sort_by_key(|d| d.prediction);
    }

    /// Item `i`, a proposal, becomes the user's label: the prediction is superseded.
    fn adopt(&mut self, i: usize) {
        let Some(item) = self.items.get_mut(i) else {
            return;
        };
        if item.kind != ItemKind::Proposal {
            return;
        }
        item.kind = ItemKind::Label(Origin::AcceptedPrediction);
        let p = item.prediction.take();
        self.decide(p, Decision::Superseded);
    }

    /// Removes item `i`; a proposal removed is dismissed, or superseded when a label of its
    /// class takes its place.
    fn remove(&mut self, i: usize, decision: Decision) -> Option<BoxItem> {
        if i >= self.items.len() {
            return None;
        }
        let item = self.items.remove(i);
        self.decide(item.prediction, decision);
        Some(item)
    }

    /// Keeps the items `keep` says yes to, deciding about the proposals it drops.
    fn retain(&mut self, decision: Decision, mut keep: impl FnMut(&BoxItem) -> bool) {
        let mut i = 0;
        while i < self.items.len() {
            if keep(&self.items[i]) {
                i += 1;
            } else {
                self.remove(i, decision);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    BottomRight,
    TopLeft,
    TopRight,
    BottomLeft,
}

impl Corner {
    fn next(self) -> Corner {
        match self {
            Corner::BottomRight => Corner::TopLeft,
            Corner::TopLeft => Corner::TopRight,
            Corner::TopRight => Corner::BottomLeft,
            Corner::BottomLeft => Corner::BottomRight,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Corner::BottomRight => "bottom-right",
            Corner::TopLeft => "top-left",
            Corner::TopRight => "top-right",
            Corner::BottomLeft => "bottom-left",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    /// Drawing a box: a crosshair at `cursor`; `first` once the first corner is set.
    Draw {
        cursor: (f64, f64),
        first: Option<(f64, f64)>,
    },
    /// Choosing a class from the list.
    Picker {
        index: usize,
    },
    /// Typing a queue filter.
    Filter {
        input: String,
    },
    Help,
    Dashboard,
    /// Thumbnail grid over the queue: `cursor` and `marked` are queue positions.
    Gallery {
        cursor: usize,
        marked: Vec<usize>,
    },
}

/// Messages `update()` handles: user actions, typed text, and results from the workers.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Action(Action),
    /// A character typed while a text field has focus.
    Input(char),
    Backspace,
    Loaded {
        id: i64,
        edit: ImageEdit,
        proposals: Vec<Proposal>,
        /// The project's classes now (another terminal may have changed them).
        classes: Vec<String>,
    },
    Queue(Vec<QueueItem>),
    /// A write committed; `note` says what is now done.
    Saved {
        note: Option<String>,
    },
    /// An undo (`undo == true`) or redo committed.
    Replayed {
        undo: bool,
        replay: Replay,
    },
    /// A write failed (nothing of it is stored): editing stops.
    StoreFailed(String),
    /// Leave after the pending writes are committed (Ctrl-C, SIGTERM, SIGHUP).
    Shutdown,
    /// A key arrived at this time (ms of a monotonic clock): the time since the last key was
    /// spent on the image shown, unless it was longer than [`IDLE_MS`].
    Activity {
        at_ms: i64,
    },
    /// The labels of the image this annotator reviewed last (`None`: there is none), to copy
    /// onto image `id` as proposals.
    Previous {
        id: i64,
        from: Option<(String, Vec<EditLabel>)>,
    },
    Stats(Stats),
    /// Classes of images shown in the gallery.
    GalleryLabels(Vec<(i64, Vec<String>)>),
    /// How many thumbnails fit in a gallery row (from the layout).
    GalleryColumns(usize),
    /// A pull or push running in the background says how far it is.
    SyncProgress(String),
    /// A pull or push ended: a summary, or why it failed.
    SyncDone {
        pull: bool,
        result: Result<String, String>,
    },
    /// The picture of an image could not be decoded: it is recorded broken and skipped.
    PictureFailed {
        id: i64,
        error: String,
    },
    Error(String),
}

/// Work `update()` asks the app to do on its workers.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Load {
        id: i64,
    },
    Save {
        id: i64,
        action: String,
        edit: ImageEdit,
        /// Shown once the write committed.
        note: Option<String>,
    },
    MarkBroken {
        id: i64,
        error: String,
    },
    Undo,
    Redo,
    /// Read the labels of the image this annotator reviewed last (other than `id`).
    Previous {
        id: i64,
    },
    /// Add active review time to an image. Not answered: a failure only shows an error.
    ActiveTime {
        id: i64,
        ms: i64,
    },
    /// Rebuild the queue: images matching `filter`, ranked by `metric`.
    Query {
        filter: String,
        metric: Metric,
    },
    Stats,
    /// Decode ahead: the next images of the queue.
    Prefetch {
        ids: Vec<i64>,
    },
    /// Pull the next batch (or push the reviewed one) in the background.
    Sync {
        pull: bool,
    },
    /// Read the classes of these images (for the gallery).
    GalleryLabels {
        ids: Vec<i64>,
    },
    /// Add or remove (`add == false`) a class on many images; `only` replaces their classes
    /// (multi-class). One transaction, one journal row per image.
    Tag {
        ids: Vec<i64>,
        class: String,
        add: bool,
        only: bool,
        note: Option<String>,
    },
}

impl Effect {
    /// Writes to the store: each is answered by `Saved`, `Replayed` or `StoreFailed`.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Effect::Save { .. }
                | Effect::MarkBroken { .. }
                | Effect::Undo
                | Effect::Redo
                | Effect::Tag { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub project: String,
    pub task: Task,
    pub classes: Vec<String>,
    pub queue: Vec<QueueItem>,
    pub pos: usize,
    pub current: Option<Current>,
    pub selected: Option<usize>,
    pub corner: Corner,
    pub mode: Mode,
    /// Visible region of the image (normalised); `None` shows all of it.
    pub zoom: Option<BBox>,
    pub filter: String,
    pub message: Option<Message>,
    /// Index of the class a new box gets.
    pub last_class: usize,
    pub stats: Option<Stats>,
    /// Classes per image id, as the gallery last read them.
    pub gallery_labels: std::collections::HashMap<i64, Vec<String>>,
    pub gallery_columns: usize,
    /// The uncertainty metric the queue is ranked by.
    pub metric: Metric,
    /// What a running pull or push is doing; `None` when none runs.
    pub sync: Option<String>,
    /// Shown once the queue that a finished transfer asked for arrives.
    pub after_queue: Option<Message>,
    /// Writes sent to the store and not yet committed.
    pub pending: usize,
    /// Why a write failed: set, it stops editing.
    pub store_error: Option<String>,
    /// Proposal walk: Tab and the decision keys go from proposal to proposal across images.
    pub walk: bool,
    /// The walk is looking for the next (`true`) or previous image with an open proposal.
    pub seek: Option<bool>,
    /// Where that search started: it comes back there when it finds none.
    pub seek_from: usize,
    /// `accept_above` accepts the proposals scoring at least this.
    pub accept_at: f64,
    /// `dismiss_below` dismisses the proposals scoring less than this.
    pub dismiss_below: f64,
    /// Active time on the image shown, not yet sent to the store.
    pub clock: Clock,
    pub quit: bool,
}

/// Active review time, from the times keys arrive (see [`Msg::Activity`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clock {
    /// When the last key arrived.
    pub last: Option<i64>,
    /// The image the time below was spent on.
    pub image: Option<i64>,
    pub ms: i64,
}

impl Clock {
    /// The time gathered so far, as a store write.
    fn flush(&mut self) -> Option<Effect> {
        let ms = std::mem::take(&mut self.ms);
        let id = self.image?;
        (ms > 0).then_some(Effect::ActiveTime { id, ms })
    }
}

impl State {
    pub fn new(project: &str, task: Task, classes: Vec<String>) -> State {
        State {
            project: project.to_string(),
            task,
            classes,
            queue: Vec::new(),
            pos: 0,
            current: None,
            selected: None,
            corner: Corner::BottomRight,
            mode: Mode::Normal,
            zoom: None,
            filter: String::new(),
            message: None,
            last_class: 0,
            stats: None,
            gallery_labels: std::collections::HashMap::new(),
            gallery_columns: 4,
            metric: Metric::default(),
            sync: None,
            after_queue: None,
            pending: 0,
            store_error: None,
            walk: false,
            seek: None,
            seek_from: 0,
            accept_at: 0.8,
            dismiss_below: 0.6,
            clock: Clock::default(),
            quit: false,
        }
    }

    pub fn current_item(&self) -> Option<&QueueItem> {
        self.queue.get(self.pos)
    }

    /// The classes changed under the screen (a class renamed, merged or deleted meanwhile).
    fn set_classes(&mut self, classes: Vec<String>) {
        self.classes = classes;
        let n = self.classes.len();
        self.last_class = self.last_class.min(n.saturating_sub(1));
        if let Mode::Picker { index } = &mut self.mode {
            *index = (*index).min(n.saturating_sub(1));
        }
    }

    /// An image's key as the screen shows it.
    fn key_of(&self, id: i64) -> String {
        self.queue
            .iter()
            .find(|q| q.id == id)
            .map(|q| crate::sanitize::for_terminal(&q.key))
            .unwrap_or_else(|| format!("image {id}"))
    }

    pub fn selected_item(&self) -> Option<&BoxItem> {
        let cur = self.current.as_ref()?;
        cur.items.get(self.selected?)
    }

    fn info(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    /// One pixel of the current image, normalised, per axis.
    fn pixel(&self) -> (f64, f64) {
        let (w, h) = self
            .current_item()
            .map(|q| (q.width.max(1), q.height.max(1)))
            .unwrap_or((1000, 1000));
        (1.0 / f64::from(w), 1.0 / f64::from(h))
    }

    fn coarse(&self) -> (f64, f64) {
        match self.zoom {
            Some(z) => (COARSE * z.width(), COARSE * z.height()),
            None => (COARSE, COARSE),
        }
    }

    /// Go to queue position `pos` and ask for its labels and the next pictures.
    fn goto(&mut self, pos: usize) -> Vec<Effect> {
        if self.queue.is_empty() {
            self.current = None;
            return Vec::new();
        }
        self.pos = pos.min(self.queue.len() - 1);
        self.seek = None;
        self.current = None;
        self.selected = None;
        self.zoom = None;
        self.mode = Mode::Normal;
        let id = self.queue[self.pos].id;
        let ids = self.queue[self.pos + 1..]
            .iter()
            .take(3)
            .map(|q| q.id)
            .collect::<Vec<_>>();
        let mut fx = vec![Effect::Load { id }];
        if !ids.is_empty() {
            fx.push(Effect::Prefetch { ids });
        }
        fx
    }

    /// The labels (not proposals) and decisions of the current image as the store keeps them.
    fn edit_of(cur: &Current, status: ImageStatus) -> ImageEdit {
        ImageEdit {
            status,
            decisions: cur.decisions.clone(),
            labels: cur
                .items
                .iter()
                .filter_map(|it| match it.kind {
                    ItemKind::Label(origin) => Some(EditLabel {
                        class: it.class.clone(),
                        bbox: it.bbox,
                        origin,
                        score: it.score,
                    }),
                    ItemKind::Proposal => None,
                })
                .collect(),
        }
    }

    /// Saves the current image after a change of its labels, keeping its status.
    fn save(&mut self, action: &str) -> Vec<Effect> {
        self.save_noting(action, None)
    }

    /// Saves, and says `note` once the store has it.
    fn save_noting(&mut self, action: &str, note: Option<String>) -> Vec<Effect> {
        let Some(cur) = &self.current else {
            return Vec::new();
        };
        let edit = State::edit_of(cur, cur.status);
        vec![Effect::Save {
            id: cur.id,
            action: action.to_string(),
            edit,
            note,
        }]
    }

    /// Marks the current image reviewed with its labels, saves, and moves on.
    fn finish(&mut self, action: &str, status_note: &str) -> Vec<Effect> {
        let Some(cur) = &mut self.current else {
            return Vec::new();
        };
        cur.status = ImageStatus::Reviewed;
        let edit = State::edit_of(cur, ImageStatus::Reviewed);
        let id = cur.id;
        if let Some(q) = self.queue.get_mut(self.pos) {
            q.status = ImageStatus::Reviewed;
        }
        let key = self
            .queue
            .get(self.pos)
            .map(|q| q.key.clone())
            .unwrap_or_default();
        let key = crate::sanitize::for_terminal(&key);
        // Said once the store has it.
        let note = if self.pos + 1 < self.queue.len() {
            format!("{key} {status_note}")
        } else {
            format!("{key} {status_note}: end of the queue")
        };
        let mut fx = vec![Effect::Save {
            id,
            action: action.to_string(),
            edit,
            note: Some(note),
        }];
        if self.pos + 1 < self.queue.len() {
            let from = self.pos;
            fx.extend(self.goto(self.pos + 1));
            // The walk goes on to the next image that has a proposal.
            if self.walk {
                self.seek = Some(true);
                self.seek_from = from;
            }
        }
        fx
    }

    /// Positions of the current image's proposals.
    fn proposal_positions(&self) -> Vec<usize> {
        self.current.as_ref().map_or_else(Vec::new, |c| {
            (0..c.items.len())
                .filter(|i| c.items[*i].is_proposal())
                .collect()
        })
    }

    /// After a decision in the walk: the next proposal of this image (from position `from`
    /// on, wrapping) is selected and the change saved; with none left, the image is saved as
    /// reviewed and the walk moves on. Either way one write, one undo step.
    fn walk_on(&mut self, action: &str, from: usize, note: Option<String>) -> Vec<Effect> {
        let props = self.proposal_positions();
        if props.is_empty() {
            return self.finish(action, "reviewed: its last proposal is decided");
        }
        self.selected = props
            .iter()
            .find(|i| **i >= from)
            .or(props.first())
            .copied();
        self.save_noting(action, note)
    }

    /// The walk's Tab and Shift-Tab: the next (previous) proposal on this image, else the next
    /// (previous) image that has one.
    fn walk_step(&mut self, forward: bool) -> Vec<Effect> {
        let props = self.proposal_positions();
        let sel = self.selected;
        let next = if forward {
            props.iter().find(|i| sel.is_none_or(|s| **i > s))
        } else {
            props.iter().rev().find(|i| sel.is_none_or(|s| **i < s))
        };
        if let Some(i) = next {
            self.selected = Some(*i);
            return Vec::new();
        }
        self.seek_image(forward)
    }

    /// Leaves for the next (previous) image; once loaded, an image without proposals is passed.
    /// When none is left that way, the walk returns to the image it started from.
    fn seek_image(&mut self, forward: bool) -> Vec<Effect> {
        let from = if self.seek.is_some() {
            self.seek_from
        } else {
            self.pos
        };
        let target = if forward {
            (self.pos + 1 < self.queue.len()).then_some(self.pos + 1)
        } else {
            self.pos.checked_sub(1)
        };
        let fx = match target {
            Some(p) => {
                let fx = self.goto(p);
                self.seek = Some(forward);
                self.seek_from = from;
                return fx;
            }
            None if from != self.pos => self.goto(from),
            None => {
                self.seek = None;
                Vec::new()
            }
        };
        self.info(if forward {
            "no open proposal further down the queue"
        } else {
            "no open proposal further up the queue"
        });
        fx
    }

    /// Accepts this image's proposals scoring at least `accept_at`, or dismisses those below
    /// `dismiss_below`: one write.
    fn by_threshold(&mut self, accept: bool) -> Vec<Effect> {
        let (at, below, task) = (self.accept_at, self.dismiss_below, self.task);
        let Some(cur) = &mut self.current else {
            return Vec::new();
        };
        let hit = |it: &BoxItem| {
            it.is_proposal()
                && it
                    .score
                    .is_some_and(|s| if accept { s >= at } else { s < below })
        };
        let n = cur.items.iter().filter(|it| hit(it)).count();
        let rule = if accept {
            format!("≥ {at:.2}")
        } else {
            format!("< {below:.2}")
        };
        if n == 0 {
            self.info(format!("no proposal here scores {rule}"));
            return Vec::new();
        }
        let id = cur.id;
        let n = if !accept {
            cur.retain(Decision::Dismissed, |it| !hit(it));
            n
        } else if task == Task::Classify {
            // One class per image: the best proposal at the threshold, the others dismissed.
            if let Some(i) = cur.items.iter().position(hit) {
                cur.adopt(i);
            }
            cur.retain(Decision::Dismissed, |it| !it.is_proposal());
            1
        } else {
            for i in 0..cur.items.len() {
                if hit(&cur.items[i]) {
                    cur.adopt(i);
                }
            }
            n
        };
        let verb = if accept { "accepted" } else { "dismissed" };
        let note = format!("{verb} {n} proposals {rule} on {}", self.key_of(id));
        let action = if accept {
            "accept_above"
        } else {
            "dismiss_below"
        };
        if self.walk {
            return self.walk_on(action, 0, Some(note));
        }
        let props = self.proposal_positions();
        let n_items = self.current.as_ref().map_or(0, |c| c.items.len());
        self.selected = props.first().copied().or((n_items > 0).then_some(0));
        self.save_noting(action, Some(note))
    }

    fn move_threshold(&mut self, accept: bool, step: f64) {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        if accept {
            self.accept_at = round((self.accept_at + step).clamp(self.dismiss_below, 1.0));
        } else {
            self.dismiss_below = round((self.dismiss_below + step).clamp(0.0, self.accept_at));
        }
        self.info(format!(
            "accept ≥ {:.2}, dismiss < {:.2}",
            self.accept_at, self.dismiss_below
        ));
    }

    /// The labels of the last reviewed image arrived: they join this image as proposals.
    fn repeat_previous(&mut self, from: Option<(String, Vec<EditLabel>)>) {
        let Some((key, labels)) = from else {
            self.info("nothing to repeat: you have not reviewed an image yet");
            return;
        };
        let key = crate::sanitize::for_terminal(&key);
        if labels.is_empty() {
            self.info(format!("{key} was verified empty: nothing to copy"));
            return;
        }
        let what = if self.task.is_detect() {
            "boxes"
        } else {
            "classes"
        };
        let Some(cur) = &mut self.current else {
            return;
        };
        let copies: Vec<BoxItem> = labels
            .into_iter()
            .filter(|l| {
                !cur.items
                    .iter()
                    .any(|it| it.class == l.class && it.bbox == l.bbox)
            })
            .map(|l| BoxItem {
                class: l.class,
                bbox: l.bbox,
                score: None,
                kind: ItemKind::Proposal,
                prediction: None,
            })
            .collect();
        let n = copies.len();
        if n == 0 {
            self.info(format!("the {what} of {key} are here already"));
            return;
        }
        // Before the model's proposals: for classification, Enter keeps the first proposal.
        let at = cur
            .items
            .iter()
            .position(BoxItem::is_proposal)
            .unwrap_or(cur.items.len());
        cur.items.splice(at..at, copies);
        self.selected = Some(at);
        self.info(format!(
            "copied {n} {what} of {key} as proposals: a accepts one, Enter all"
        ));
    }

    /// A key came at `at` (ms): the time since the last one goes to the image shown, unless
    /// it was idle. Time gathered for an image is written when another image gets time.
    fn tick(&mut self, at: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let shown = self.current_item().map(|q| q.id);
        if let (Some(last), Some(id)) = (self.clock.last, shown) {
            let gap = at - last;
            if (0..=IDLE_MS).contains(&gap) {
                if self.clock.image != Some(id) {
                    fx.extend(self.clock.flush());
                    self.clock.image = Some(id);
                }
                self.clock.ms += gap;
            }
        }
        self.clock.last = Some(at);
        fx
    }

    fn with_selected(&mut self, f: impl FnOnce(&mut BBox, (f64, f64), (f64, f64), Corner)) -> bool {
        let (px, coarse, corner) = (self.pixel(), self.coarse(), self.corner);
        let Some(i) = self.selected else {
            return false;
        };
        let Some(cur) = &mut self.current else {
            return false;
        };
        let Some(item) = cur.items.get_mut(i) else {
            return false;
        };
        let Some(b) = &mut item.bbox else {
            return false;
        };
        f(b, px, coarse, corner);
        // Editing a proposal makes it the user's label.
        cur.adopt(i);
        true
    }

    fn move_box(&mut self, dx: f64, dy: f64) -> Vec<Effect> {
        let moved = self.with_selected(|b, _, _, _| {
            // min/max rather than clamp: an imported box may poke out of the image.
            let dx = dx.min(1.0 - b.x1).max(-b.x0);
            let dy = dy.min(1.0 - b.y1).max(-b.y0);
            b.x0 += dx;
            b.x1 += dx;
            b.y0 += dy;
            b.y1 += dy;
        });
        if moved {
            self.save("move_box")
        } else {
            self.no_box()
        }
    }

    fn grow_box(&mut self, dx: f64, dy: f64) -> Vec<Effect> {
        let grown = self.with_selected(|b, _, _, corner| {
            let (left, top) = match corner {
                Corner::BottomRight => (false, false),
                Corner::TopLeft => (true, true),
                Corner::TopRight => (false, true),
                Corner::BottomLeft => (true, false),
            };
            // Not `clamp`: a box whose edge lies within MIN_SIZE of the border (models and
            // imports make them) would give it bounds the wrong way round. The image border
            // wins over the minimum size.
            if left {
                b.x0 = (b.x0 + dx).min(b.x1 - MIN_SIZE).max(0.0);
            } else {
                b.x1 = (b.x1 + dx).max(b.x0 + MIN_SIZE).min(1.0);
            }
            if top {
                b.y0 = (b.y0 + dy).min(b.y1 - MIN_SIZE).max(0.0);
            } else {
                b.y1 = (b.y1 + dy).max(b.y0 + MIN_SIZE).min(1.0);
            }
        });
        if grown {
            self.save("resize_box")
        } else {
            self.no_box()
        }
    }

    fn no_box(&mut self) -> Vec<Effect> {
        if self.task.is_detect() {
            self.info("no box selected: Tab selects one, w draws one");
        }
        Vec::new()
    }

    fn set_class(&mut self, index: usize) -> Vec<Effect> {
        let Some(class) = self.classes.get(index).cloned() else {
            self.error(format!(
                "no class {}: the project has {}",
                index + 1,
                self.classes.len()
            ));
            return Vec::new();
        };
        self.last_class = index;
        let task = self.task;
        let selected = self.selected;
        let Some(cur) = &mut self.current else {
            return Vec::new();
        };
        let human = |class: String| BoxItem {
            class,
            bbox: None,
            score: None,
            kind: ItemKind::Label(Origin::Human),
            prediction: None,
        };
        match task {
            Task::Detect => {
                let Some(i) = selected.filter(|i| *i < cur.items.len()) else {
                    return self.no_box();
                };
                if cur.items[i].is_proposal() {
                    cur.adopt(i);
                } else {
                    cur.items[i].kind = ItemKind::Label(Origin::Human);
                }
                cur.items[i].class = class;
            }
            Task::Classify => {
                cur.items.retain(BoxItem::is_proposal);
                cur.items.push(human(class));
            }
            Task::Multilabel => {
                if let Some(i) = cur
                    .items
                    .iter()
                    .position(|it| it.class == class && !it.is_proposal())
                {
                    cur.items.remove(i);
                } else {
                    // The user's label takes the place of a proposal of its class.
                    cur.retain(Decision::Superseded, |it| it.class != class);
                    cur.items.push(human(class));
                }
            }
        }
        self.save("set_class")
    }

    fn select_step(&mut self, forward: bool) {
        let n = self.current.as_ref().map_or(0, |c| c.items.len());
        if n == 0 {
            self.selected = None;
            return;
        }
        self.selected = Some(match (self.selected, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        });
    }

    fn zoom_by(&mut self, factor: f64) {
        let full = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 1.0,
            y1: 1.0,
        };
        let z = self.zoom.unwrap_or(full);
        let (cx, cy) = match self.selected_item().and_then(|i| i.bbox) {
            Some(b) if self.zoom.is_none() => ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0),
            _ => ((z.x0 + z.x1) / 2.0, (z.y0 + z.y1) / 2.0),
        };
        // Zoom stops at 1% of the image: past that there is nothing left to see.
        let (w, h) = (
            (z.width() * factor).clamp(0.01, 1.0),
            (z.height() * factor).clamp(0.01, 1.0),
        );
        if w >= 1.0 && h >= 1.0 {
            self.zoom = None;
            return;
        }
        let x0 = (cx - w / 2.0).clamp(0.0, 1.0 - w);
        let y0 = (cy - h / 2.0).clamp(0.0, 1.0 - h);
        self.zoom = Some(BBox {
            x0,
            y0,
            x1: x0 + w,
            y1: y0 + h,
        });
    }

    fn draw_step(&mut self, dx: f64, dy: f64) -> bool {
        if let Mode::Draw { cursor, .. } = &mut self.mode {
            cursor.0 = (cursor.0 + dx).clamp(0.0, 1.0);
            cursor.1 = (cursor.1 + dy).clamp(0.0, 1.0);
            true
        } else {
            false
        }
    }

    fn action(&mut self, a: Action) -> Vec<Effect> {
        let (px, coarse) = (self.pixel(), self.coarse());
        // Modes that take over the keys.
        match &mut self.mode {
            Mode::Help | Mode::Dashboard => {
                if matches!(
                    a,
                    Action::Cancel | Action::Help | Action::Dashboard | Action::Quit
                ) {
                    self.mode = Mode::Normal;
                }
                return Vec::new();
            }
            Mode::Gallery { .. } => return self.gallery_action(a),
            Mode::Picker { index } => {
                let n = self.classes.len().max(1);
                match a {
                    Action::MoveDown | Action::NextBox => *index = (*index + 1) % n,
                    Action::MoveUp | Action::PrevBox => *index = (*index + n - 1) % n,
                    Action::Confirm | Action::AcceptImage => {
                        let i = *index;
                        self.mode = Mode::Normal;
                        return self.set_class(i);
                    }
                    Action::Cancel | Action::Quit => self.mode = Mode::Normal,
                    Action::Class(n) => {
                        self.mode = Mode::Normal;
                        return self.set_class(usize::from(n) - 1);
                    }
                    _ => {}
                }
                return Vec::new();
            }
            Mode::Filter { input } => {
                match a {
                    Action::Confirm | Action::AcceptImage => {
                        let filter = input.trim().to_string();
                        self.mode = Mode::Normal;
                        self.filter = filter.clone();
                        return vec![Effect::Query {
                            filter,
                            metric: self.metric,
                        }];
                    }
                    Action::Cancel => self.mode = Mode::Normal,
                    _ => {}
                }
                return Vec::new();
            }
            Mode::Draw { cursor, first } => {
                let (cx, cy) = *cursor;
                let handled = match a {
                    Action::MoveLeft | Action::GrowLeft => self.draw_step(-coarse.0, 0.0),
                    Action::MoveRight | Action::GrowRight => self.draw_step(coarse.0, 0.0),
                    Action::MoveUp | Action::GrowUp => self.draw_step(0.0, -coarse.1),
                    Action::MoveDown | Action::GrowDown => self.draw_step(0.0, coarse.1),
                    Action::MoveLeftFine | Action::GrowLeftFine => self.draw_step(-px.0, 0.0),
                    Action::MoveRightFine | Action::GrowRightFine => self.draw_step(px.0, 0.0),
                    Action::MoveUpFine | Action::GrowUpFine => self.draw_step(0.0, -px.1),
                    Action::MoveDownFine | Action::GrowDownFine => self.draw_step(0.0, px.1),
                    Action::Cancel => {
                        self.mode = Mode::Normal;
                        self.info("drawing cancelled");
                        true
                    }
                    Action::Confirm | Action::AcceptImage => {
                        match *first {
                            None => {
                                *first = Some((cx, cy));
                                self.info("first corner set: move to the opposite corner, Space");
                            }
                            Some((fx, fy)) => {
                                self.mode = Mode::Normal;
                                return self.add_drawn_box((fx, fy), (cx, cy));
                            }
                        }
                        true
                    }
                    _ => false,
                };
                if handled || !matches!(a, Action::ZoomIn | Action::ZoomOut | Action::Quit) {
                    return Vec::new();
                }
            }
            Mode::Normal => {}
        }

        match a {
            Action::Quit => {
                self.quit = true;
                self.clock.flush().into_iter().collect()
            }
            Action::RepeatPrevious => match &self.current {
                Some(cur) => vec![Effect::Previous { id: cur.id }],
                None => Vec::new(),
            },
            Action::WalkProposals => {
                self.walk = !self.walk;
                self.seek = None;
                if !self.walk {
                    self.info("proposal walk off");
                    return Vec::new();
                }
                self.info("proposal walk: Tab next proposal, a accept, x dismiss, 1-9 class");
                let props = self.proposal_positions();
                let sel = self.selected.unwrap_or(0);
                match props.iter().find(|i| **i >= sel).or(props.first()) {
                    Some(i) => {
                        self.selected = Some(*i);
                        Vec::new()
                    }
                    None if self.current.is_some() => self.seek_image(true),
                    None => Vec::new(),
                }
            }
            Action::AcceptAbove => self.by_threshold(true),
            Action::DismissBelow => self.by_threshold(false),
            Action::AcceptThresholdUp => {
                self.move_threshold(true, THRESHOLD_STEP);
                Vec::new()
            }
            Action::AcceptThresholdDown => {
                self.move_threshold(true, -THRESHOLD_STEP);
                Vec::new()
            }
            Action::DismissThresholdUp => {
                self.move_threshold(false, THRESHOLD_STEP);
                Vec::new()
            }
            Action::DismissThresholdDown => {
                self.move_threshold(false, -THRESHOLD_STEP);
                Vec::new()
            }
            Action::Help => {
                self.mode = Mode::Help;
                Vec::new()
            }
            Action::Dashboard => {
                self.mode = Mode::Dashboard;
                vec![Effect::Stats]
            }
            Action::Pull | Action::Push => {
                let pull = a == Action::Pull;
                if let Some(s) = &self.sync {
                    self.info(format!("a transfer is already running ({s})"));
                    return Vec::new();
                }
                self.sync = Some(
                    if pull {
                        "pull: starting"
                    } else {
                        "push: starting"
                    }
                    .into(),
                );
                vec![Effect::Sync { pull }]
            }
            Action::SwitchMetric => {
                self.metric = self.metric.next();
                self.info(format!("queue ranked by {}", self.metric.as_str()));
                vec![Effect::Query {
                    filter: self.filter.clone(),
                    metric: self.metric,
                }]
            }
            Action::Gallery => {
                if self.task.is_detect() {
                    self.info("the gallery is for classification projects");
                    return Vec::new();
                }
                self.mode = Mode::Gallery {
                    cursor: self.pos,
                    marked: Vec::new(),
                };
                self.gallery_page_effects()
            }
            Action::Filter => {
                self.mode = Mode::Filter {
                    input: self.filter.clone(),
                };
                Vec::new()
            }
            Action::NextImage => {
                if self.pos + 1 < self.queue.len() {
                    self.goto(self.pos + 1)
                } else {
                    self.info("end of the queue");
                    Vec::new()
                }
            }
            Action::PrevImage => {
                if self.pos > 0 {
                    self.goto(self.pos - 1)
                } else {
                    Vec::new()
                }
            }
            Action::NextBox | Action::PrevBox if self.walk => self.walk_step(a == Action::NextBox),
            Action::NextBox => {
                self.select_step(true);
                Vec::new()
            }
            Action::PrevBox => {
                self.select_step(false);
                Vec::new()
            }
            Action::AcceptBox => {
                let Some(i) = self.selected else {
                    return self.no_box();
                };
                let Some(cur) = &mut self.current else {
                    return Vec::new();
                };
                match cur.items.get(i) {
                    Some(item) if item.is_proposal() => {
                        cur.adopt(i);
                        if !self.walk {
                            return self.save("accept_box");
                        }
                        if self.task == Task::Classify {
                            cur.retain(Decision::Dismissed, |it| !it.is_proposal());
                        }
                        self.walk_on("accept_box", i, None)
                    }
                    _ => Vec::new(),
                }
            }
            Action::DeleteBox => {
                let Some(i) = self.selected else {
                    return self.no_box();
                };
                let Some(cur) = &mut self.current else {
                    return Vec::new();
                };
                let cur_id = cur.id;
                let Some(removed) = cur.remove(i, Decision::Dismissed) else {
                    return Vec::new();
                };
                self.selected = match cur.items.len() {
                    0 => None,
                    n => Some(i.min(n - 1)),
                };
                if removed.is_proposal() {
                    let key = self.key_of(cur_id);
                    let score = removed
                        .score
                        .map(|s| format!(" {s:.2}"))
                        .unwrap_or_default();
                    let note = format!(
                        "dismissed {}{score} on {key}",
                        crate::sanitize::for_terminal(&removed.class)
                    );
                    if self.walk {
                        return self.walk_on("dismiss_proposal", i, Some(note));
                    }
                    self.save_noting("dismiss_proposal", Some(note))
                } else {
                    self.save("delete_box")
                }
            }
            Action::AcceptImage => {
                let task = self.task;
                if let Some(cur) = &mut self.current {
                    // A classify image takes one class: the user's, else the best proposal.
                    if task == Task::Classify {
                        let mut kept = cur.items.iter().any(|it| !it.is_proposal());
                        cur.retain(Decision::Dismissed, |it| {
                            let keep = !it.is_proposal() || !kept;
                            kept |= it.is_proposal();
                            keep
                        });
                    }
                    for i in 0..cur.items.len() {
                        cur.adopt(i);
                    }
                }
                self.finish("accept_image", "accepted")
            }
            Action::MarkEmpty => {
                if let Some(cur) = &mut self.current {
                    cur.retain(Decision::Dismissed, |_| false);
                }
                self.selected = None;
                self.finish("mark_empty", "marked empty")
            }
            Action::Class(n) => {
                let on_proposal = self.selected_item().is_some_and(BoxItem::is_proposal);
                let fx = self.set_class(usize::from(n) - 1);
                let saved = fx.iter().any(|e| matches!(e, Effect::Save { .. }));
                if !(self.walk && saved && (on_proposal || !self.task.is_detect())) {
                    return fx;
                }
                // In the walk the class decides the proposal, and the walk moves on (the
                // write is made there, once).
                if self.task == Task::Classify
                    && let Some(cur) = &mut self.current
                {
                    cur.retain(Decision::Dismissed, |it| !it.is_proposal());
                }
                let from = self.selected.unwrap_or(0);
                self.walk_on("set_class", from, None)
            }
            Action::ClassPicker => {
                if self.classes.is_empty() {
                    return Vec::new();
                }
                let index = self
                    .selected_item()
                    .and_then(|it| self.classes.iter().position(|c| *c == it.class))
                    .unwrap_or(self.last_class);
                self.mode = Mode::Picker { index };
                Vec::new()
            }
            Action::MoveLeft => self.move_box(-coarse.0, 0.0),
            Action::MoveRight => self.move_box(coarse.0, 0.0),
            Action::MoveUp => self.move_box(0.0, -coarse.1),
            Action::MoveDown => self.move_box(0.0, coarse.1),
            Action::MoveLeftFine => self.move_box(-px.0, 0.0),
            Action::MoveRightFine => self.move_box(px.0, 0.0),
            Action::MoveUpFine => self.move_box(0.0, -px.1),
            Action::MoveDownFine => self.move_box(0.0, px.1),
            Action::GrowLeft => self.grow_box(-coarse.0, 0.0),
            Action::GrowRight => self.grow_box(coarse.0, 0.0),
            Action::GrowUp => self.grow_box(0.0, -coarse.1),
            Action::GrowDown => self.grow_box(0.0, coarse.1),
            Action::GrowLeftFine => self.grow_box(-px.0, 0.0),
            Action::GrowRightFine => self.grow_box(px.0, 0.0),
            Action::GrowUpFine => self.grow_box(0.0, -px.1),
            Action::GrowDownFine => self.grow_box(0.0, px.1),
            Action::CycleCorner => {
                self.corner = self.corner.next();
                self.info(format!("active corner: {}", self.corner.name()));
                Vec::new()
            }
            Action::DrawBox => {
                if !self.task.is_detect() {
                    self.info("boxes belong to detect projects; use the class keys");
                    return Vec::new();
                }
                if self.current.is_none() {
                    return Vec::new();
                }
                let z = self.zoom.unwrap_or(BBox {
                    x0: 0.0,
                    y0: 0.0,
                    x1: 1.0,
                    y1: 1.0,
                });
                self.mode = Mode::Draw {
                    cursor: ((z.x0 + z.x1) / 2.0, (z.y0 + z.y1) / 2.0),
                    first: None,
                };
                self.info("move the crosshair, Space sets a corner, Esc cancels");
                Vec::new()
            }
            Action::Undo => vec![Effect::Undo],
            Action::Redo => vec![Effect::Redo],
            Action::ZoomBox => {
                if self.zoom.is_some() {
                    self.zoom = None;
                } else if let Some(b) = self.selected_item().and_then(|i| i.bbox) {
                    let (mx, my) = (b.width() * 0.25 + 0.01, b.height() * 0.25 + 0.01);
                    self.zoom = Some(BBox {
                        x0: (b.x0 - mx).max(0.0),
                        y0: (b.y0 - my).max(0.0),
                        x1: (b.x1 + mx).min(1.0),
                        y1: (b.y1 + my).min(1.0),
                    });
                } else {
                    return self.no_box();
                }
                Vec::new()
            }
            Action::ZoomIn => {
                self.zoom_by(1.0 / 1.5);
                Vec::new()
            }
            Action::ZoomOut => {
                self.zoom_by(1.5);
                Vec::new()
            }
            Action::Confirm | Action::Cancel => {
                self.selected = None;
                Vec::new()
            }
        }
    }

    /// Queue positions of the gallery page holding `cursor` (a page is a few rows).
    pub fn gallery_page(&self, cursor: usize, rows: usize) -> std::ops::Range<usize> {
        let per_page = (self.gallery_columns.max(1) * rows.max(1)).max(1);
        let start = cursor / per_page * per_page;
        start..(start + per_page).min(self.queue.len())
    }

    fn gallery_page_effects(&self) -> Vec<Effect> {
        let Mode::Gallery { cursor, .. } = &self.mode else {
            return Vec::new();
        };
        // Labels for a generous page; the view decides how many rows fit.
        let ids: Vec<i64> = self
            .gallery_page(*cursor, 8)
            .filter_map(|p| self.queue.get(p).map(|q| q.id))
            .collect();
        vec![Effect::GalleryLabels { ids }]
    }

    fn gallery_action(&mut self, a: Action) -> Vec<Effect> {
        let cols = self.gallery_columns.max(1);
        let n = self.queue.len();
        let Mode::Gallery { cursor, marked } = &mut self.mode else {
            return Vec::new();
        };
        let before = *cursor / (cols * 8);
        match a {
            Action::MoveLeft | Action::PrevBox => *cursor = cursor.saturating_sub(1),
            Action::MoveRight | Action::NextBox => *cursor = (*cursor + 1).min(n.saturating_sub(1)),
            Action::MoveUp => *cursor = cursor.saturating_sub(cols),
            Action::MoveDown => *cursor = (*cursor + cols).min(n.saturating_sub(1)),
            Action::Confirm => {
                let c = *cursor;
                if let Some(i) = marked.iter().position(|m| *m == c) {
                    marked.remove(i);
                } else {
                    marked.push(c);
                }
            }
            Action::Class(k) => {
                let Some(class) = self.classes.get(usize::from(k) - 1).cloned() else {
                    return Vec::new();
                };
                let targets: Vec<usize> = if marked.is_empty() {
                    vec![*cursor]
                } else {
                    marked.clone()
                };
                let ids: Vec<i64> = targets
                    .iter()
                    .filter_map(|p| self.queue.get(*p).map(|q| q.id))
                    .collect();
                let only = self.task == Task::Classify;
                // A tag reviews the images.
                for p in &targets {
                    if let Some(q) = self.queue.get_mut(*p) {
                        q.status = ImageStatus::Reviewed;
                    }
                }
                // Multi-label: add the class unless every target already has it, then remove it.
                let all_have = ids.iter().all(|id| {
                    self.gallery_labels
                        .get(id)
                        .is_some_and(|l| l.contains(&class))
                });
                let add = only || !all_have;
                let n = ids.len();
                let note = format!(
                    "{} {class} {} {n} images",
                    if add { "tagged" } else { "untagged" },
                    if add { "on" } else { "from" }
                );
                let mut fx = vec![Effect::Tag {
                    ids: ids.clone(),
                    class,
                    add,
                    only,
                    note: Some(note),
                }];
                fx.push(Effect::GalleryLabels { ids });
                return fx;
            }
            Action::AcceptImage => {
                let c = *cursor;
                return self.goto(c);
            }
            Action::Undo => return vec![Effect::Undo],
            Action::Redo => return vec![Effect::Redo],
            Action::Cancel | Action::Gallery | Action::Quit => {
                // Tags may have changed the image under the gallery: read it again.
                self.mode = Mode::Normal;
                let pos = self.pos;
                return self.goto(pos);
            }
            _ => return Vec::new(),
        }
        let after = match &self.mode {
            Mode::Gallery { cursor, .. } => *cursor / (cols * 8),
            _ => before,
        };
        if after != before {
            self.gallery_page_effects()
        } else {
            Vec::new()
        }
    }

    fn add_drawn_box(&mut self, a: (f64, f64), b: (f64, f64)) -> Vec<Effect> {
        let class = self
            .classes
            .get(self.last_class)
            .cloned()
            .unwrap_or_default();
        let Ok((bbox, _)) = BBox::clipped(a.0, a.1, b.0, b.1) else {
            self.error("the box has no area: draw it again (w)");
            return Vec::new();
        };
        let Some(cur) = &mut self.current else {
            return Vec::new();
        };
        cur.items.push(BoxItem {
            class: class.clone(),
            bbox: Some(bbox),
            score: None,
            kind: ItemKind::Label(Origin::Human),
            prediction: None,
        });
        self.selected = Some(cur.items.len() - 1);
        self.info(format!("new {class} box: a digit or c changes its class"));
        self.save("draw_box")
    }
}

/// The one place state changes.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    // Once a write failed, nothing more is written: an action that would write is undone on
    // the screen and refused, so what the screen shows never runs ahead of a broken store.
    let before = state.store_error.is_some().then(|| state.clone());
    let acked = matches!(
        msg,
        Msg::Saved { .. } | Msg::Replayed { .. } | Msg::StoreFailed(_)
    );
    if acked {
        state.pending = state.pending.saturating_sub(1);
    }
    let fx = handle(state, msg);
    let writes = fx.iter().filter(|e| e.is_write()).count();
    if writes > 0
        && let Some(mut before) = before
    {
        let why = before.store_error.clone().unwrap_or_default();
        before.error(format!(
            "not saved: the label store failed ({why}); editing is stopped, q quits"
        ));
        *state = before;
        return fx.into_iter().filter(|e| !e.is_write()).collect();
    }
    state.pending += writes;
    fx
}

fn handle(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Action(a) => state.action(a),
        Msg::Input(c) => {
            if let Mode::Filter { input } = &mut state.mode {
                input.push(c);
            }
            Vec::new()
        }
        Msg::Backspace => {
            if let Mode::Filter { input } = &mut state.mode {
                input.pop();
            }
            Vec::new()
        }
        Msg::Loaded {
            id,
            edit,
            proposals,
            classes,
        } => {
            if classes != state.classes {
                state.set_classes(classes);
            }
            // A result for an image we already left is stale.
            if state.current_item().map(|q| q.id) != Some(id) {
                return Vec::new();
            }
            // The store decides what is still a proposal: shown as it comes.
            let mut items: Vec<BoxItem> = edit
                .labels
                .into_iter()
                .map(|l| BoxItem {
                    class: l.class,
                    bbox: l.bbox,
                    score: l.score,
                    kind: ItemKind::Label(l.origin),
                    prediction: None,
                })
                .collect();
            items.extend(proposals.into_iter().map(|p| BoxItem {
                class: p.class,
                bbox: p.bbox,
                score: Some(p.score),
                kind: ItemKind::Proposal,
                prediction: Some(p.prediction),
            }));
            state.selected = (!items.is_empty()).then_some(0);
            if let Some(q) = state.queue.get_mut(state.pos) {
                q.status = edit.status;
            }
            state.current = Some(Current {
                id,
                status: edit.status,
                items,
                decisions: edit.decisions,
            });
            if state.walk {
                let props = state.proposal_positions();
                match (state.seek, props.first(), props.last()) {
                    (Some(forward), None, _) => return state.seek_image(forward),
                    (Some(false), _, Some(last)) => state.selected = Some(*last),
                    (_, Some(first), _) => state.selected = Some(*first),
                    (None, None, _) => {}
                }
                state.seek = None;
            }
            Vec::new()
        }
        Msg::Saved { note } => {
            if let Some(note) = note {
                state.info(note);
            }
            Vec::new()
        }
        Msg::Replayed { undo, replay } => {
            let verb = if undo { "undo" } else { "redo" };
            match replay {
                Replay::Nothing => {
                    state.info(format!("nothing to {verb}"));
                    Vec::new()
                }
                Replay::Stale { image_id, action } => {
                    let key = state.key_of(image_id);
                    state.error(format!(
                        "cannot {verb} {action} on {key}: the image was changed since (by another annotator or a command); dropped from your history"
                    ));
                    Vec::new()
                }
                Replay::Done { action, images } => {
                    let done = if undo { "undone" } else { "redone" };
                    let what = if images.len() > 1 {
                        format!("{action} of {} images", images.len())
                    } else {
                        action
                    };
                    for (id, status) in &images {
                        if let Some(q) = state.queue.iter_mut().find(|q| q.id == *id) {
                            q.status = *status;
                        }
                    }
                    let first = images.first().map(|i| i.0);
                    let fx = match state.queue.iter().position(|q| Some(q.id) == first) {
                        Some(pos) if !matches!(state.mode, Mode::Gallery { .. }) => state.goto(pos),
                        // The gallery stays where it is; its labels are read again.
                        _ => state.gallery_page_effects(),
                    };
                    state.info(format!("{done}: {what}"));
                    fx
                }
            }
        }
        Msg::StoreFailed(e) => {
            state.error(format!(
                "not saved: {e}; editing is stopped, q quits (edits saved before are kept)"
            ));
            state.store_error = Some(e);
            Vec::new()
        }
        Msg::Shutdown => {
            state.quit = true;
            state.clock.flush().into_iter().collect()
        }
        Msg::Activity { at_ms } => state.tick(at_ms),
        Msg::Previous { id, from } => {
            // The user has moved on meanwhile: the copy was for another image.
            if state.current.as_ref().map(|c| c.id) == Some(id) {
                state.repeat_previous(from);
            }
            Vec::new()
        }
        Msg::Queue(items) => {
            let n = items.len();
            state.queue = items;
            state.info(format!(
                "{n} images in the queue, ranked by {}",
                state.metric.as_str()
            ));
            if let Some(m) = state.after_queue.take() {
                state.message = Some(m);
            }
            state.goto(0)
        }
        Msg::Stats(s) => {
            state.stats = Some(s);
            Vec::new()
        }
        Msg::GalleryLabels(labels) => {
            state.gallery_labels.extend(labels);
            Vec::new()
        }
        Msg::SyncProgress(text) => {
            state.sync = Some(text);
            Vec::new()
        }
        Msg::SyncDone { pull, result } => {
            state.sync = None;
            match result {
                Ok(summary) => state.info(summary),
                Err(e) => state.error(format!(
                    "{} failed: {e}",
                    if pull { "pull" } else { "push" }
                )),
            }
            state.after_queue = state.message.clone();
            // New images arrived, or claims were released: rebuild the queue.
            vec![Effect::Query {
                filter: state.filter.clone(),
                metric: state.metric,
            }]
        }
        Msg::GalleryColumns(n) => {
            state.gallery_columns = n.max(1);
            Vec::new()
        }
        Msg::PictureFailed { id, error } => {
            let Some(pos) = state.queue.iter().position(|q| q.id == id) else {
                return Vec::new();
            };
            state.queue[pos].status = ImageStatus::Broken;
            let key = crate::sanitize::for_terminal(&state.queue[pos].key);
            state.error(format!("{key} is broken ({error}); skipped"));
            let mut fx = vec![Effect::MarkBroken { id, error }];
            if pos == state.pos && pos + 1 < state.queue.len() {
                let msg = state.message.clone();
                fx.extend(state.goto(pos + 1));
                state.message = msg;
            }
            fx
        }
        Msg::Error(e) => {
            state.error(e);
            Vec::new()
        }
    }
}

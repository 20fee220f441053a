//! The review screen's state and its pure `update()`: messages in, state changes and effects out.
//! Nothing here touches the terminal, the disk or the clock, so key sequences are unit-testable.

use crate::model::{BBox, ImageStatus, Origin, Task};
use crate::queue::Metric;
use crate::store::{Decided, Decision, EditLabel, ImageEdit, Proposal, Replay, Stats};

use super::action::Action;

mod draw;
mod filter;
mod gallery;
mod help;
mod picker;
mod replies;
mod review;

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
        result: Result<String, SyncFailed>,
    },
    /// The picture of an image could not be decoded: it is recorded broken and skipped.
    PictureFailed {
        id: i64,
        error: String,
    },
    Error(String),
}

/// Why a background pull or push failed: its error line, the causes joined and secrets redacted
/// on the sync thread, since the error itself can be neither cloned nor compared as a [`Msg`] is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SyncFailed(pub String);

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

    /// Where `class` stands in the project's classes (its colour), if it is one of them.
    pub fn class_index(&self, class: &str) -> Option<usize> {
        crate::model::class_index(&self.classes, class)
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

    /// An action goes to the handler of the mode that has the keys.
    fn action(&mut self, a: Action) -> Vec<Effect> {
        match self.mode {
            Mode::Help | Mode::Dashboard => self.help_action(a),
            Mode::Gallery { .. } => self.gallery_action(a),
            Mode::Picker { .. } => self.picker_action(a),
            Mode::Filter { .. } => self.filter_action(a),
            Mode::Draw { .. } => match self.draw_action(a) {
                Some(fx) => fx,
                None => self.review_action(a),
            },
            Mode::Normal => self.review_action(a),
        }
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
        Msg::Input(c) => state.filter_input(Some(c)),
        Msg::Backspace => state.filter_input(None),
        Msg::Loaded {
            id,
            edit,
            proposals,
            classes,
        } => state.loaded(id, edit, proposals, classes),
        Msg::Saved { note } => {
            if let Some(note) = note {
                state.info(note);
            }
            Vec::new()
        }
        Msg::Replayed { undo, replay } => state.replayed(undo, replay),
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
        Msg::PictureFailed { id, error } => state.picture_failed(id, error),
        Msg::Error(e) => {
            state.error(e);
            Vec::new()
        }
    }
}

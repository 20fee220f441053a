//! The review screen's loop: terminal events → keymap → `update()` → effects on workers → results
//! back as messages → draw. The loop itself never decodes, encodes or touches the disk: the store
//! worker owns the label store, the graphics worker owns pictures.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEventKind};

use crate::model::ImageStatus;
use crate::project::{Project, ProjectError};
use crate::queue::{Metric, QueueImage, QueueParams, Ranked};
use crate::store::{Filter, FilterError, ImageBrief, Store, StoreError};
use crate::theme::Theme;

use super::graphics::{self, GraphicsChoice, Job, Overlay, Picture, Reply, Request, Shown};
use super::keymap::{Key, Keymap};
use super::state::{Effect, Mode, Msg, QueueItem, State, SyncFailed, update};
use super::view::{self, Ui};

/// Why the review screen could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "the review screen needs a terminal: run termtag in one (or use the commands: termtag --help)"
    )]
    NoTerminal,
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up the terminal")]
    Setup(#[source] std::io::Error),
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    /// `0` names the thread: the input reader, the signal listener, the store worker.
    #[error("cannot start the {0}")]
    Thread(&'static str, #[source] std::io::Error),
    /// Reading the terminal's size or writing a frame failed (the terminal went away).
    #[error(transparent)]
    Terminal(#[from] std::io::Error),
    #[error("the store worker stopped unexpectedly: see .termtag/termtag.log")]
    WorkerDied,
    /// The store's failure as the screen showed it.
    #[error("the label store failed, so editing stopped: {0} (what was shown as saved is saved)")]
    StoreFailed(String),
}

/// Why a store effect failed: its message goes to the status line, as a store failure when the
/// effect was a write.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Everything that wakes the loop.
enum AppEvent {
    Term(Event),
    Msg(Msg),
    Picture(Reply),
    /// SIGTERM, SIGHUP or SIGINT: leave once the pending writes are committed.
    Signal(i32),
}

/// What the store worker needs besides the store.
#[derive(Debug, Clone)]
pub struct StoreCtx {
    /// Proposals shown from this score up.
    pub threshold: f64,
    /// How the queue is ranked (the metric is set per query).
    pub queue: QueueParams,
    /// What the last queue query read, so that ranking by another metric (`m`) or filtering
    /// again does not read the whole project again.
    cache: RefCell<QueueCache>,
}

impl StoreCtx {
    pub fn for_project(project: &Project, num_classes: usize) -> StoreCtx {
        let cfg = &project.config;
        StoreCtx {
            threshold: cfg.prelabel_threshold,
            queue: QueueParams::new(&cfg.queue, cfg.min_confidence, num_classes),
            cache: RefCell::default(),
        }
    }
}

/// Store reads behind the queue, valid until a write makes them stale.
#[derive(Debug, Clone, Default)]
struct QueueCache {
    /// `PRAGMA data_version` when read: it moves when another connection (a pull, `termtag
    /// predict` in another shell) commits, which drops everything below.
    data_version: i64,
    /// Every predicted image with its newest run's predictions.
    predictions: Option<Vec<QueueImage>>,
    /// Per metric, every predicted image's value and top class (in id order), so that `m`
    /// back to a metric seen before only sorts.
    scored: HashMap<Metric, Vec<Ranked>>,
    /// The image rows of the last filter (its text, as typed).
    rows: Option<(String, Vec<ImageBrief>)>,
    /// Near-duplicate groups of the stored signatures, with `[queue] diversity` on. Reviewing
    /// writes no signature, so only another connection's commit (`termtag predict`, `termtag
    /// queue --diversity` filling them in) drops them.
    groups: Option<std::sync::Arc<crate::diversity::Groups>>,
}

impl QueueCache {
    /// The queue for `filter`, reading from the store only what is not cached.
    fn queue(
        &mut self,
        store: &Store,
        filter_text: &str,
        params: &QueueParams,
        threshold: f64,
    ) -> Result<Vec<QueueItem>, EffectError> {
        let version = store.data_version()?;
        if version != self.data_version {
            *self = QueueCache {
                data_version: version,
                ..QueueCache::default()
            };
        }
        let mut filter = Filter::parse(filter_text)?;
        filter.proposals_from = threshold;
        if self.rows.as_ref().is_none_or(|(f, _)| f != filter_text) {
            let rows = store.image_briefs(&filter)?;
            self.rows = Some((filter_text.to_string(), rows));
        }
        if self.predictions.is_none() {
            self.predictions = Some(store.queue_images()?);
            self.scored.clear();
        }
        let mut params = std::borrow::Cow::Borrowed(params);
        if let Some(d) = &params.diversity {
            if self.groups.is_none() {
                let g = crate::diversity::Groups::from_store(store, d.similarity)?;
                self.groups = Some(std::sync::Arc::new(g));
            }
            if let Some(d) = &mut params.to_mut().diversity {
                d.groups = self.groups.clone().unwrap_or_default();
            }
        }
        let (Some((_, rows)), Some(predictions)) = (&self.rows, &self.predictions) else {
            unreachable!("both read above");
        };
        let scored = self
            .scored
            .entry(params.metric)
            .or_insert_with(|| crate::queue::score(predictions, &params));
        Ok(queue_items(scored, rows, &filter, &params))
    }

    /// Forgets what a write by this worker may have changed: a `labels_only` write (a broken
    /// mark) touches image rows; edits, undo and redo may decide proposals too.
    fn written(&mut self, labels_only: bool) {
        self.rows = None;
        if !labels_only {
            self.predictions = None;
            self.scored.clear();
        }
    }
}

/// The review screen's queue for a filter: [`crate::queue::review_queue`] over the images
/// matching it (broken ones only when the filter asks for them). `scored` holds every predicted
/// image (newest run) as [`crate::queue::score`] gives it, in id order.
pub fn queue_items(
    scored: &[Ranked],
    rows: &[ImageBrief],
    filter: &Filter,
    params: &QueueParams,
) -> Vec<QueueItem> {
    let with_broken = filter.status == Some(ImageStatus::Broken);
    crate::queue::review_queue(rows, scored, with_broken, params)
        .into_iter()
        .map(|p| {
            let r = &rows[p.row];
            QueueItem {
                id: r.id,
                key: r.key.clone(),
                width: r.width,
                height: r.height,
                status: r.status,
                score: p.place.value(),
            }
        })
        .collect()
}

/// Carries out one store effect; the message it returns goes back to `update()`. Every write
/// is answered, once its transaction committed or failed.
pub fn store_effect(store: &mut Store, ctx: &StoreCtx, effect: Effect) -> Option<Msg> {
    let write = effect.is_write();
    if write {
        // Edits, undo and redo also decide proposals (dismissed / superseded), which the cached
        // predictions hold; a broken mark touches the image row only.
        let labels_only = matches!(effect, Effect::MarkBroken { .. });
        ctx.cache.borrow_mut().written(labels_only);
    }
    let result: Result<Option<Msg>, EffectError> = (|| {
        Ok(match effect {
            Effect::Load { id } => Some(Msg::Loaded {
                id,
                edit: store.image_edit(id)?,
                proposals: store.proposals(id, ctx.threshold)?,
                classes: store.class_names()?,
            }),
            Effect::Save {
                id,
                action,
                edit,
                note,
            } => {
                store.apply_edit(id, &action, &edit)?;
                Some(Msg::Saved { note })
            }
            Effect::MarkBroken { id, error } => {
                store.mark_broken(id, &error)?;
                Some(Msg::Saved { note: None })
            }
            Effect::Undo => Some(Msg::Replayed {
                undo: true,
                replay: store.undo()?,
            }),
            Effect::Redo => Some(Msg::Replayed {
                undo: false,
                replay: store.redo()?,
            }),
            Effect::Query { filter, metric } => {
                let params = QueueParams {
                    metric,
                    ..ctx.queue.clone()
                };
                let items = ctx
                    .cache
                    .borrow_mut()
                    .queue(store, &filter, &params, ctx.threshold)?;
                Some(Msg::Queue(items))
            }
            Effect::Stats => Some(Msg::Stats(store.stats()?)),
            Effect::Previous { id } => Some(Msg::Previous {
                id,
                from: store.last_reviewed(id)?,
            }),
            Effect::ActiveTime { id, ms } => {
                store.add_active_time(id, ms)?;
                None
            }
            Effect::Prefetch { .. } | Effect::Sync { .. } => None,
            Effect::GalleryLabels { ids } => {
                let mut out = Vec::new();
                for id in ids {
                    let edit = store.image_edit(id)?;
                    out.push((id, edit.labels.into_iter().map(|l| l.class).collect()));
                }
                Some(Msg::GalleryLabels(out))
            }
            Effect::Tag {
                ids,
                class,
                add,
                only,
                note,
            } => {
                let mut edits = Vec::new();
                for id in ids {
                    let mut edit = store.image_edit(id)?;
                    if only {
                        edit.labels.clear();
                    }
                    edit.labels.retain(|l| l.class != class);
                    if add {
                        edit.labels.push(crate::store::EditLabel {
                            class: class.clone(),
                            bbox: None,
                            origin: crate::model::Origin::Human,
                            score: None,
                        });
                    }
                    edit.status = ImageStatus::Reviewed;
                    edits.push((id, edit));
                }
                store.apply_edits(&edits, "tag")?;
                Some(Msg::Saved { note })
            }
        })
    })();
    match result {
        Ok(msg) => msg,
        Err(e) if write => Some(Msg::StoreFailed(e.to_string())),
        Err(e) => Some(Msg::Error(e.to_string())),
    }
}

/// Loads the theme and keymap: presets and defaults, with the user's files laid over them.
/// Problems are returned for the status line; they never stop the screen.
pub fn ui_config(project: &Project) -> (Theme, Keymap, Vec<String>) {
    let mut problems = Vec::new();
    let mut theme = Theme::preset(&project.config.ui.theme).unwrap_or_else(|e| {
        problems.push(format!("termtag.toml [ui] theme: {e}"));
        Theme::preset("dark").expect("the dark preset parses")
    });
    let user_dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("termtag"));
    if let Some(path) = user_dir.as_ref().map(|d| d.join("theme.toml"))
        && let Ok(text) = std::fs::read_to_string(&path)
    {
        match theme.overlay(&text) {
            Ok(t) => theme = t,
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let mut overrides: Vec<(String, String)> = Vec::new();
    if let Some(path) = user_dir.as_ref().map(|d| d.join("keys.toml"))
        && let Ok(text) = std::fs::read_to_string(&path)
    {
        overrides.push((path.display().to_string(), text));
    }
    if !project.config.keys.is_empty()
        && let Ok(text) = toml::to_string(&project.config.keys)
    {
        overrides.push(("termtag.toml [keys]".into(), text));
    }
    let refs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (keymap, key_problems) = Keymap::load(&refs);
    problems.extend(key_problems);
    (theme, keymap, problems)
}

/// Maps a terminal key to a message, given the mode (text fields take characters).
pub fn key_to_msg(state: &State, keymap: &Keymap, ev: &crossterm::event::KeyEvent) -> Option<Msg> {
    use crossterm::event::{KeyCode, KeyModifiers};
    // Ctrl-C always leaves (after saving), whatever the keymap and the mode: the raw terminal
    // turns it into a key rather than a signal.
    if ev.code == KeyCode::Char('c') && ev.modifiers.contains(KeyModifiers::CONTROL) {
        return Some(Msg::Shutdown);
    }
    if let Mode::Filter { .. } = state.mode {
        match ev.code {
            KeyCode::Char(c)
                if !ev
                    .modifiers
                    .contains(crossterm::event::KeyModifiers::CONTROL) =>
            {
                return Some(Msg::Input(c));
            }
            KeyCode::Backspace => return Some(Msg::Backspace),
            _ => {}
        }
    }
    let key = Key::from_event(ev)?;
    keymap.action(&key).map(Msg::Action)
}

/// Runs the review screen until the user quits.
pub fn run(project: &Project, choice: GraphicsChoice) -> Result<(), AppError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(AppError::NoTerminal);
    }
    let store = project.store()?;
    let (theme, keymap, mut problems) = ui_config(project);
    let max_mp = project.config.max_megapixels;
    let classes = store.class_names()?;
    let ctx = StoreCtx::for_project(project, classes.len());
    let metric = ctx.queue.metric;

    let mut terminal = ratatui::try_init().map_err(AppError::Setup)?;
    // From here every way out, early errors and panics included, restores the terminal.
    let screen = Screen::take();
    let setup = graphics::detect(choice);
    if choice != GraphicsChoice::Halfblocks {
        // A terminal that leaves part of the graphics query unanswered leaves ratatui-image's
        // reader waiting on stdin, where it would eat the user's first key. Ask for the device
        // attributes, which every terminal answers, so that reader finishes; then drop what
        // is pending.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[c").and_then(|_| out.flush());
        std::thread::sleep(Duration::from_millis(100));
        while crossterm::event::poll(Duration::from_millis(50)).unwrap_or(false) {
            let _ = crossterm::event::read();
        }
    }
    let protocol = setup.kind.name();
    let cell_overlay = setup.cell_overlay();
    tracing::info!(protocol, why = %setup.why, "review screen started");
    problems.extend(setup.warning.clone());

    let (tx, rx) = mpsc::channel::<AppEvent>();
    let input_tx = tx.clone();
    std::thread::Builder::new()
        .name("termtag-input".into())
        .spawn(move || {
            while let Ok(ev) = crossterm::event::read() {
                tracing::debug!(?ev, "terminal event");
                if input_tx.send(AppEvent::Term(ev)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| AppError::Thread("input reader", e))?;
    let signals = listen_for_signals(tx.clone())?;
    let (store_tx, worker) = spawn_store_worker(store, ctx, tx.clone())?;
    let gfx_tx_reply = tx.clone();
    let gfx = graphics::spawn(setup, max_mp, project.thumb_cache(), move |r| {
        let _ = gfx_tx_reply.send(AppEvent::Picture(r));
    });

    let mut state = State::new(&project.config.name, project.config.task, classes);
    state.metric = metric;
    if !problems.is_empty() {
        update(&mut state, Msg::Error(problems.join("; ")));
    }
    let ui = Ui {
        theme: &theme,
        thumbs: None,
        keymap: &keymap,
        picture: None,
        cell_overlay,
        protocol,
    };
    let mut signal = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        event_loop(
            &mut terminal,
            &mut state,
            &rx,
            &store_tx,
            &gfx,
            &tx,
            project,
            &ui,
            &mut signal,
        )
    }));
    // Whatever ended the loop (q, Ctrl-C, a signal, a terminal gone, a panic), the writes
    // already sent are committed before termtag exits: the worker runs all it was sent.
    if state.pending > 0 && matches!(outcome, Ok(Ok(()))) {
        state.message = Some(super::state::Message {
            text: format!("saving {} edits before quitting…", state.pending),
            error: false,
        });
        let _ = terminal.draw(|f| view::draw(f, &state, &ui));
    }
    drop(store_tx);
    let worker_died = worker.join().is_err();
    signals.close();
    drop(screen);
    let outcome = match outcome {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    // Failures reported while draining, and a signal that arrived as the terminal went away.
    for ev in rx.try_iter() {
        match ev {
            AppEvent::Msg(Msg::StoreFailed(e)) => state.store_error = Some(e),
            AppEvent::Signal(s) => signal = signal.or(Some(s)),
            _ => {}
        }
    }
    if worker_died {
        return Err(AppError::WorkerDied);
    }
    if let Some(e) = state.store_error.take() {
        return Err(AppError::StoreFailed(e));
    }
    if let Some(sig) = signal {
        tracing::info!(sig, "review screen stopped by a signal after saving");
        // Exit as the signal would have (the parent sees it), now that everything is saved.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
    }
    outcome
}

/// The terminal while the review screen has it. A panic on the screen's own thread restores
/// the terminal, then reports as usual; a panic on a worker thread goes to the log (printing it
/// would garble the screen) and its worker reports the failure on screen. Dropped, it restores
/// the terminal and the default panic hook.
struct Screen;

impl Screen {
    fn take() -> Screen {
        // ratatui's hook restores the terminal for a panic on any thread.
        let restore_and_report = std::panic::take_hook();
        let ui = std::thread::current().id();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == ui {
                restore_and_report(info);
            } else {
                let thread = std::thread::current().name().unwrap_or("?").to_string();
                tracing::error!(thread, "panic: {info}");
            }
        }));
        Screen
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
        let _ = std::panic::take_hook();
    }
}

/// SIGTERM, SIGHUP (the SSH link dropped) and SIGINT become events of the loop, which then
/// leaves as `q` does: after the pending writes are committed.
fn listen_for_signals(tx: Sender<AppEvent>) -> Result<signal_hook::iterator::Handle, AppError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
        .map_err(AppError::Signals)?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("termtag-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(AppEvent::Signal(sig)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| AppError::Thread("signal listener", e))?;
    Ok(handle)
}

/// Runs a pull or push on its own thread, with its own store connection (SQLite serialises the
/// writes), reporting progress and the outcome as messages.
fn spawn_sync(project: &Project, pull: bool, tx: Sender<AppEvent>) {
    let project = Project {
        root: project.root.clone(),
        config: project.config.clone(),
    };
    let done_tx = tx.clone();
    // The jobs are the commands' own, whose errors are joined at the command edge (`anyhow`).
    let failed = |e: &(dyn std::error::Error + 'static)| {
        SyncFailed(crate::remote::auth::redact(&crate::logging::causes(e)))
    };
    let run = move || -> Result<String, SyncFailed> {
        let mut store = project.store().map_err(|e| failed(&e))?;
        let verb = if pull { "pull" } else { "push" };
        let progress = |p: crate::remote::Progress| {
            let _ = tx.send(AppEvent::Msg(Msg::SyncProgress(format!("{verb}: {p}"))));
        };
        let report = if pull {
            let count = crate::commands::pull::DEFAULT_COUNT;
            crate::commands::pull::job(&project, &mut store, count, &progress)
                .map(|r| r.to_string())
        } else {
            crate::commands::push::job(&project, &mut store, &progress).map(|r| r.to_string())
        };
        report.map_err(|e| failed(&*e))
    };
    let spawned = std::thread::Builder::new()
        .name("termtag-sync".into())
        .spawn(move || {
            let result = run();
            let _ = done_tx.send(AppEvent::Msg(Msg::SyncDone { pull, result }));
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the transfer thread: {e}");
    }
}

/// The store worker owns the store. It carries out every effect it was sent, in order, even
/// when nobody listens any more (that is how pending writes are drained on exit), and answers
/// every write. A panic in it is answered as a store failure, and it writes nothing after that.
fn spawn_store_worker(
    mut store: Store,
    ctx: StoreCtx,
    tx: Sender<AppEvent>,
) -> Result<(Sender<Effect>, std::thread::JoinHandle<()>), AppError> {
    let (etx, erx) = mpsc::channel::<Effect>();
    let handle = std::thread::Builder::new()
        .name("termtag-store".into())
        .spawn(move || {
            let mut broken: Option<String> = None;
            for effect in erx {
                let write = effect.is_write();
                let reply = match &broken {
                    Some(why) if write => Some(Msg::StoreFailed(why.clone())),
                    Some(why) => Some(Msg::Error(why.clone())),
                    None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        store_effect(&mut store, &ctx, effect)
                    }))
                    .unwrap_or_else(|panic| {
                        let text = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let why = format!(
                            "internal error in the store worker ({text}); see .termtag/termtag.log"
                        );
                        broken = Some(why.clone());
                        Some(Msg::StoreFailed(why))
                    }),
                };
                if let Some(msg) = reply {
                    let _ = tx.send(AppEvent::Msg(msg));
                }
            }
        })
        .map_err(|e| AppError::Thread("store worker", e))?;
    Ok((etx, handle))
}

#[allow(clippy::too_many_arguments)]
fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    state: &mut State,
    rx: &Receiver<AppEvent>,
    store_tx: &Sender<Effect>,
    gfx: &Sender<Request>,
    sync_tx: &Sender<AppEvent>,
    project: &Project,
    ui_base: &Ui,
    signal: &mut Option<i32>,
) -> Result<(), AppError> {
    let mut picture: Option<Picture> = None;
    // Graphics bytes for the next frame, in the order the worker made them.
    let mut pending: Vec<u8> = Vec::new();
    // Screen clears (terminal resizes): the terminal lost the pictures it showed.
    let mut cleared = 0u64;
    // Events that arrived while a frame was written, handled before the next one.
    let mut backlog: std::collections::VecDeque<AppEvent> = std::collections::VecDeque::new();
    let mut thumbs: std::collections::HashMap<i64, ratatui_image::protocol::Protocol> =
        std::collections::HashMap::new();
    let mut thumbs_asked: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let mut generation = 0u64;
    let mut asked: Option<Job> = None;
    let mut dirty = true;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let dispatch = |state: &mut State, msg: Msg| {
        let effects = update(state, msg);
        for e in effects {
            match e {
                Effect::Sync { pull } => spawn_sync(project, pull, sync_tx.clone()),
                Effect::Prefetch { ids } => {
                    let paths: Vec<(i64, PathBuf)> = ids
                        .into_iter()
                        .filter_map(|id| {
                            let q = state.queue.iter().find(|q| q.id == id)?;
                            Some((id, project.image_file(&q.key).ok()?))
                        })
                        .collect();
                    let _ = gfx.send(Request::Prefetch(paths));
                }
                other => {
                    let write = other.is_write();
                    if store_tx.send(other).is_err() && write {
                        // The worker is gone: say so rather than drop the write.
                        update(
                            state,
                            Msg::StoreFailed(
                                "the store worker stopped: see .termtag/termtag.log".into(),
                            ),
                        );
                    }
                }
            }
        }
    };
    let _ = store_tx.send(Effect::Query {
        filter: String::new(),
        metric: state.metric,
    });
    // Review time is counted from here, key to key.
    let started = Instant::now();
    dispatch(state, active_at(started));
    loop {
        if dirty && backlog.is_empty() && last_draw.elapsed() >= Duration::from_millis(10) {
            let size = terminal.size()?;
            let size = ratatui::layout::Rect::new(0, 0, size.width, size.height);
            // Ask for the picture this screen needs, if it is not what was asked last.
            let job = if view::too_small(size) {
                None
            } else {
                wanted_job(state, project, view::areas(size).canvas, ui_base, cleared)
            };
            match job {
                Some(job) if !asked.as_ref().is_some_and(|a| same_job(a, &job)) => {
                    generation += 1;
                    let job = Job { generation, ..job };
                    asked = Some(job.clone());
                    let _ = gfx.send(Request::Render(job));
                }
                Some(_) => {}
                None => {
                    if asked.take().is_some() {
                        let _ = gfx.send(Request::Hide { cleared });
                    }
                }
            }
            if let Mode::Gallery { cursor, .. } = state.mode.clone()
                && !view::too_small(size)
            {
                let main = view::gallery_area(size);
                let (cols, rows) = view::gallery_grid(main);
                if cols != state.gallery_columns {
                    dispatch(state, Msg::GalleryColumns(cols));
                }
                let cells = (view::TILE.0 - 2, view::TILE.1 - 3);
                let wanted: Vec<(i64, PathBuf, (u16, u16))> = state
                    .gallery_page(cursor, rows)
                    .filter_map(|p| state.queue.get(p))
                    .filter(|q| !thumbs_asked.contains(&q.id))
                    .filter_map(|q| Some((q.id, project.image_file(&q.key).ok()?, cells)))
                    .collect();
                if !wanted.is_empty() {
                    thumbs_asked.extend(wanted.iter().map(|w| w.0));
                    let _ = gfx.send(Request::Thumbs(wanted));
                }
            }
            let ui = Ui {
                picture: picture.as_ref(),
                thumbs: Some(&thumbs),
                ..*ui_base
            };
            terminal.draw(|f| view::draw(f, state, &ui))?;
            if !pending.is_empty() {
                // One write for the frame's pictures, after its cells.
                use std::io::Write;
                let out = terminal.backend_mut();
                out.write_all(&pending)?;
                out.flush()?;
                pending.clear();
            }
            last_draw = Instant::now();
            dirty = false;
            // What came in while this frame was written is handled before the next one, so
            // on a slow link the next frame shows the last key, not each key in turn.
            backlog.extend(rx.try_iter());
        }
        if state.quit {
            return Ok(());
        }
        let timeout = if dirty {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(250)
        };
        let ev = match backlog
            .pop_front()
            .map_or_else(|| rx.recv_timeout(timeout), Ok)
        {
            Ok(ev) => ev,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        match ev {
            AppEvent::Term(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                dispatch(state, active_at(started));
                if let Some(msg) = key_to_msg(state, ui_base.keymap, &k) {
                    dispatch(state, msg);
                }
            }
            AppEvent::Term(Event::Resize(..)) => {
                // The screen is cleared and drawn again. Thumbnails are sized to their tiles,
                // which do not change; the page may.
                cleared += 1;
            }
            AppEvent::Term(_) => continue,
            AppEvent::Signal(sig) => {
                *signal = Some(sig);
                dispatch(state, Msg::Shutdown);
            }
            AppEvent::Msg(msg) => dispatch(state, msg),
            AppEvent::Picture(Reply::Ready(mut p)) => {
                pending.append(&mut p.bytes);
                // A cell picture for an old request is dropped; pixels are on screen either way.
                if p.generation == generation || !matches!(p.shown, Shown::Cells(_)) {
                    picture = Some(p);
                }
            }
            AppEvent::Picture(Reply::Hidden(mut bytes)) => pending.append(&mut bytes),
            AppEvent::Picture(Reply::Thumb { id, protocol }) => {
                // Keep memory bounded: thumbnails of a few pages at most.
                if thumbs.len() > 256 {
                    thumbs.clear();
                    thumbs_asked.clear();
                }
                thumbs.insert(id, protocol);
            }
            AppEvent::Picture(Reply::Trouble { error }) => {
                dispatch(
                    state,
                    Msg::Error(format!("cannot draw the picture: {error}")),
                );
            }
            AppEvent::Picture(Reply::Failed { id, error }) => {
                if asked.as_ref().is_some_and(|a| a.id == id) {
                    asked = None;
                    dispatch(state, Msg::PictureFailed { id, error });
                }
            }
        }
        dirty = true;
    }
}

/// A key arrived now, on the loop's monotonic clock.
fn active_at(started: Instant) -> Msg {
    Msg::Activity {
        at_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The render job the current screen needs; `None` when no picture should be on screen.
fn wanted_job(
    state: &State,
    project: &Project,
    canvas: ratatui::layout::Rect,
    ui: &Ui,
    cleared: u64,
) -> Option<Job> {
    if view::covered(state) {
        return None;
    }
    let item = state.current_item()?;
    let path = project.image_file(&item.key).ok()?;
    Some(Job {
        generation: 0,
        id: item.id,
        path,
        canvas,
        zoom: state.zoom,
        overlay: if ui.cell_overlay {
            Overlay::default()
        } else {
            Overlay::of(state, ui.theme)
        },
        cleared,
    })
}

fn same_job(a: &Job, b: &Job) -> bool {
    Job {
        generation: b.generation,
        ..a.clone()
    } == *b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{QueueConfig, Scored};

    /// The queue as it was built before rows were walked beside the scores: maps and sets.
    fn reference(
        images: &[QueueImage],
        rows: &[ImageBrief],
        filter: &Filter,
        params: &QueueParams,
    ) -> Vec<(i64, Option<f64>)> {
        let waiting = |s: ImageStatus| matches!(s, ImageStatus::New | ImageStatus::Claimed);
        let rows: Vec<&ImageBrief> = rows
            .iter()
            .filter(|r| {
                r.status != ImageStatus::Broken || filter.status == Some(ImageStatus::Broken)
            })
            .collect();
        let by_id: HashMap<i64, &ImageBrief> = rows.iter().map(|r| (r.id, *r)).collect();
        let predicted: Vec<&QueueImage> = images
            .iter()
            .filter(|p| by_id.get(&p.id).is_some_and(|r| waiting(r.status)))
            .collect();
        let seen: std::collections::HashSet<i64> = predicted.iter().map(|p| p.id).collect();
        let mut out: Vec<(i64, Option<f64>)> = crate::queue::order(predicted, params)
            .iter()
            .map(|r| (r.id, r.value))
            .collect();
        let group = |keep: &dyn Fn(&ImageBrief) -> bool| -> Vec<(i64, Option<f64>)> {
            rows.iter()
                .filter(|r| keep(r))
                .map(|r| (r.id, None))
                .collect()
        };
        out.extend(group(&|r| waiting(r.status) && !seen.contains(&r.id)));
        out.extend(group(&|r| r.status == ImageStatus::Skipped));
        out.extend(group(&|r| {
            matches!(r.status, ImageStatus::Reviewed | ImageStatus::Broken)
        }));
        out
    }

    #[test]
    fn queue_items_order_the_rows_as_the_full_sort_did() {
        // 2,000 images with every status, keys in another order than ids, predictions for
        // most (some below the minimum confidence, some for images the filter left out).
        let mut x: u64 = 9;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let rows: Vec<ImageBrief> = (0..2000)
            .map(|i| ImageBrief {
                id: (i * 7919) % 2003,
                key: format!("k{i:05}.jpg"),
                width: 10,
                height: 10,
                status: ImageStatus::ALL[next(5) as usize],
            })
            .collect();
        let mut images: Vec<QueueImage> = Vec::new();
        for id in 0..2003 {
            if next(4) == 0 {
                continue;
            }
            let preds = (0..next(4))
                .map(|k| Scored {
                    class: ["a", "b"][k as usize % 2].into(),
                    score: next(20) as f64 / 20.0,
                    boxed: true,
                })
                .collect();
            images.push(QueueImage {
                id,
                preds,
                decided: false,
            });
        }
        images.sort_by_key(|i| i.id);
        for (filter, metric) in [
            ("", crate::queue::Metric::LeastConfidence),
            ("", crate::queue::Metric::Entropy),
            ("status=broken", crate::queue::Metric::Margin),
        ] {
            let filter = Filter::parse(filter).unwrap();
            let rows: Vec<ImageBrief> = rows
                .iter()
                .filter(|r| filter.status.is_none_or(|s| s == r.status))
                .cloned()
                .collect();
            let mut params = QueueParams::new(&QueueConfig::default(), 0.1, 2);
            params.metric = metric;
            let scored = crate::queue::score(&images, &params);
            let got: Vec<(i64, Option<f64>)> = queue_items(&scored, &rows, &filter, &params)
                .iter()
                .map(|q| (q.id, q.score))
                .collect();
            assert_eq!(got, reference(&images, &rows, &filter, &params));
            assert_eq!(
                got.iter().any(|g| g.1.is_some()),
                filter.status.is_none(),
                "ranked images unless only broken ones are asked for"
            );
        }
    }
}

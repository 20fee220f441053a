//! The review screen's loop: terminal events → keymap → `update()` → effects on workers → results
//! back as messages → draw. The loop itself never decodes, encodes or touches the disk: the store
//! worker owns the label store, the graphics worker owns pictures.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossterm::event::{Event, KeyEventKind};

use crate::model::ImageStatus;
use crate::project::Project;
use crate::queue::{QueueImage, QueueParams};
use crate::store::{Filter, ImageRow, Store};
use crate::theme::Theme;

use super::graphics::{self, GraphicsChoice, Job, OverlayBox, Picture, Reply, Request};
use super::keymap::{Key, Keymap};
use super::state::{Effect, Mode, Msg, QueueItem, State, update};
use super::view::{self, Ui};

/// Everything that wakes the loop.
enum AppEvent {
    Term(Event),
    Msg(Msg),
    Picture(Reply),
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
    /// The image rows of the last filter (its text, as typed).
    rows: Option<(String, Vec<ImageRow>)>,
}

impl QueueCache {
    /// The queue for `filter`, reading from the store only what is not cached.
    fn queue(
        &mut self,
        store: &Store,
        filter_text: &str,
        params: &QueueParams,
    ) -> Result<Vec<QueueItem>, String> {
        let err = |e: crate::store::StoreError| e.to_string();
        let version = store.data_version().map_err(err)?;
        if version != self.data_version {
            *self = QueueCache {
                data_version: version,
                ..QueueCache::default()
            };
        }
        let filter = Filter::parse(filter_text)?;
        if self.rows.as_ref().is_none_or(|(f, _)| f != filter_text) {
            self.rows = Some((filter_text.to_string(), store.images(&filter).map_err(err)?));
        }
        if self.predictions.is_none() {
            let predicted = store.predicted_images(None).map_err(err)?;
            self.predictions = Some(crate::infer::cmd::queue_images(&predicted));
        }
        let (Some((_, rows)), Some(predictions)) = (&self.rows, &self.predictions) else {
            unreachable!("both read above");
        };
        Ok(queue_items(predictions, rows, &filter, params))
    }

    /// Forgets what a write by this worker may have changed: `labels_only` writes (edits, undo,
    /// broken marks) touch images and labels; anything else may touch predictions too.
    fn written(&mut self, labels_only: bool) {
        self.rows = None;
        if !labels_only {
            self.predictions = None;
        }
    }
}

/// The review queue for a filter: images waiting for review ranked by model uncertainty (the
/// same ordering as `termtag queue`), then waiting images the model has not seen, then skipped
/// and reviewed ones; broken images only when the filter asks for them. `predictions` holds every
/// predicted image (newest run); `rows` the images matching the filter.
pub fn queue_items(
    predictions: &[QueueImage],
    rows: &[ImageRow],
    filter: &Filter,
    params: &QueueParams,
) -> Vec<QueueItem> {
    let waiting = |s: ImageStatus| matches!(s, ImageStatus::New | ImageStatus::Claimed);
    let rows: Vec<&ImageRow> = rows
        .iter()
        .filter(|r| r.status != ImageStatus::Broken || filter.status == Some(ImageStatus::Broken))
        .collect();
    let by_id: HashMap<i64, &ImageRow> = rows.iter().map(|r| (r.id, *r)).collect();
    let predicted: Vec<&QueueImage> = predictions
        .iter()
        .filter(|p| by_id.get(&p.id).is_some_and(|r| waiting(r.status)))
        .collect();
    let seen: HashSet<i64> = predicted.iter().map(|p| p.id).collect();
    let ranked = crate::queue::order(predicted, params);
    let item = |r: &ImageRow, score: Option<f64>| QueueItem {
        id: r.id,
        key: r.key.clone(),
        width: r.width,
        height: r.height,
        status: r.status,
        score,
    };
    let mut items: Vec<QueueItem> = Vec::with_capacity(rows.len());
    items.extend(
        ranked
            .iter()
            .filter_map(|rk| by_id.get(&rk.id).map(|r| item(r, rk.value))),
    );
    // Images the model has not seen yet, then the rest, each group by key.
    items.extend(
        rows.iter()
            .filter(|r| waiting(r.status) && !seen.contains(&r.id))
            .map(|r| item(r, None)),
    );
    items.extend(
        rows.iter()
            .filter(|r| r.status == ImageStatus::Skipped)
            .map(|r| item(r, None)),
    );
    items.extend(
        rows.iter()
            .filter(|r| matches!(r.status, ImageStatus::Reviewed | ImageStatus::Broken))
            .map(|r| item(r, None)),
    );
    items
}

/// Carries out one store effect; the message it returns goes back to `update()`.
pub fn store_effect(store: &mut Store, ctx: &StoreCtx, effect: Effect) -> Option<Msg> {
    match &effect {
        Effect::Load { .. }
        | Effect::Query { .. }
        | Effect::Stats
        | Effect::Prefetch { .. }
        | Effect::Sync { .. }
        | Effect::GalleryLabels { .. } => {}
        Effect::Save { .. }
        | Effect::MarkBroken { .. }
        | Effect::Undo
        | Effect::Redo
        | Effect::Tag { .. } => ctx.cache.borrow_mut().written(true),
        #[allow(unreachable_patterns)]
        _ => ctx.cache.borrow_mut().written(false),
    }
    let result: Result<Option<Msg>, String> = (|| {
        let err = |e: crate::store::StoreError| e.to_string();
        Ok(match effect {
            Effect::Load { id } => Some(Msg::Loaded {
                id,
                edit: store.image_edit(id).map_err(err)?,
                proposals: store.proposals(id, ctx.threshold).map_err(err)?,
            }),
            Effect::Save { id, action, edit } => {
                store.apply_edit(id, &action, &edit).map_err(err)?;
                None
            }
            Effect::MarkBroken { id, error } => {
                store.mark_broken(id, &error).map_err(err)?;
                None
            }
            Effect::Undo | Effect::Redo => {
                let done = if effect == Effect::Undo {
                    store.undo()
                } else {
                    store.redo()
                };
                match done.map_err(err)? {
                    Some((id, action)) => Some(Msg::Undone { id, action }),
                    None => Some(Msg::Error(format!(
                        "nothing to {}",
                        if effect == Effect::Undo {
                            "undo"
                        } else {
                            "redo"
                        }
                    ))),
                }
            }
            Effect::Query { filter, metric } => {
                let params = QueueParams {
                    metric,
                    ..ctx.queue.clone()
                };
                let items = ctx.cache.borrow_mut().queue(store, &filter, &params)?;
                Some(Msg::Queue(items))
            }
            Effect::Stats => Some(Msg::Stats(store.stats().map_err(err)?)),
            Effect::Prefetch { .. } | Effect::Sync { .. } => None,
            Effect::GalleryLabels { ids } => {
                let mut out = Vec::new();
                for id in ids {
                    let edit = store.image_edit(id).map_err(err)?;
                    out.push((id, edit.labels.into_iter().map(|l| l.class).collect()));
                }
                Some(Msg::GalleryLabels(out))
            }
            Effect::Tag {
                ids,
                class,
                add,
                only,
            } => {
                let mut edits = Vec::new();
                for id in ids {
                    let mut edit = store.image_edit(id).map_err(err)?;
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
                store.apply_edits(&edits, "tag").map_err(err)?;
                None
            }
        })
    })();
    result.unwrap_or_else(|e| Some(Msg::Error(e)))
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
    if let Mode::Filter { .. } = state.mode {
        use crossterm::event::KeyCode;
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
pub fn run(project: &Project, choice: GraphicsChoice) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!(
            "the review screen needs a terminal: run termtag in one (or use the commands: termtag --help)"
        );
    }
    let store = project.store()?;
    let (theme, keymap, problems) = ui_config(project);
    let max_mp = project.config.max_megapixels;
    let classes = store.class_names()?;
    let ctx = StoreCtx::for_project(project, classes.len());
    let metric = ctx.queue.metric;

    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let picker = graphics::picker(choice);
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
    let protocol = graphics::protocol_name(picker.protocol_type());
    let cell_overlay = picker.protocol_type() == ratatui_image::picker::ProtocolType::Halfblocks;
    tracing::info!(protocol, "review screen started");

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
        })?;
    let store_tx = spawn_store_worker(store, ctx, tx.clone());
    let gfx_tx_reply = tx.clone();
    let gfx = graphics::spawn(picker, max_mp, move |r| {
        let _ = gfx_tx_reply.send(AppEvent::Picture(r));
    });

    let mut state = State::new(&project.config.name, project.config.task, classes);
    state.metric = metric;
    if !problems.is_empty() {
        update(&mut state, Msg::Error(problems.join("; ")));
    }
    let result = event_loop(
        &mut terminal,
        &mut state,
        &rx,
        &store_tx,
        &gfx,
        &tx,
        project,
        &Ui {
            theme: &theme,
            thumbs: None,
            keymap: &keymap,
            picture: None,
            cell_overlay,
            protocol,
        },
    );
    ratatui::restore();
    result
}

/// Runs a pull or push on its own thread, with its own store connection (SQLite serialises the
/// writes), reporting progress and the outcome as messages.
fn spawn_sync(project: &Project, pull: bool, tx: Sender<AppEvent>) {
    let project = Project {
        root: project.root.clone(),
        config: project.config.clone(),
    };
    let done_tx = tx.clone();
    let run = move || -> Result<String> {
        let send = |m: Msg| {
            let _ = tx.send(AppEvent::Msg(m));
        };
        let mut store = project.store()?;
        let set = crate::remote::open(&project)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()?;
        let verb = if pull { "pull" } else { "push" };
        let progress = |p: crate::remote::Progress| {
            use crate::remote::Progress as P;
            let text = match p {
                P::Listing { found } => format!("{verb}: listing, {found} images"),
                P::Claiming { done, total } => format!("{verb}: claiming {done}/{total}"),
                P::Downloading { done, total } => format!("{verb}: downloading {done}/{total}"),
                P::Uploading { done, total } => format!("{verb}: uploading {done}/{total}"),
                P::Step(s) => format!("{verb}: {s}"),
            };
            send(Msg::SyncProgress(text));
        };
        if pull {
            // The same batch size as `termtag pull` without --count.
            let opts = crate::remote::PullOptions {
                count: 50,
                ..crate::remote::PullOptions::default()
            };
            let r = rt.block_on(crate::remote::pull(
                &project, &mut store, &set, &opts, &progress,
            ))?;
            Ok(format!(
                "pulled {} images ({} predictions); {} unclaimed left",
                r.claimed.len(),
                r.predictions,
                r.remaining
            ))
        } else {
            let r = rt.block_on(crate::remote::push(&project, &mut store, &set, &progress))?;
            Ok(match r.batch_id {
                Some(b) => format!(
                    "pushed {} images, {} labels as batch {b}",
                    r.images, r.labels
                ),
                None => "nothing reviewed to push".to_string(),
            })
        }
    };
    let spawned = std::thread::Builder::new()
        .name("termtag-sync".into())
        .spawn(move || {
            let result = run().map_err(|e| crate::remote::auth::redact(&format!("{e:#}")));
            let _ = done_tx.send(AppEvent::Msg(Msg::SyncDone { pull, result }));
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the transfer thread: {e}");
    }
}

fn spawn_store_worker(mut store: Store, ctx: StoreCtx, tx: Sender<AppEvent>) -> Sender<Effect> {
    let (etx, erx) = mpsc::channel::<Effect>();
    std::thread::Builder::new()
        .name("termtag-store".into())
        .spawn(move || {
            for effect in erx {
                if let Some(msg) = store_effect(&mut store, &ctx, effect)
                    && tx.send(AppEvent::Msg(msg)).is_err()
                {
                    break;
                }
            }
        })
        .expect("spawn store worker");
    etx
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
) -> Result<()> {
    let mut picture: Option<Picture> = None;
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
                            Some((id, crate::remote::image_path(project, &q.key).ok()?))
                        })
                        .collect();
                    let _ = gfx.send(Request::Prefetch(paths));
                }
                other => {
                    let _ = store_tx.send(other);
                }
            }
        }
    };
    let _ = store_tx.send(Effect::Query {
        filter: String::new(),
        metric: state.metric,
    });
    loop {
        if dirty && last_draw.elapsed() >= Duration::from_millis(10) {
            let size = terminal.size()?;
            let size = ratatui::layout::Rect::new(0, 0, size.width, size.height);
            // Ask for the picture this screen needs, if it is not what was asked last.
            if !view::too_small(size)
                && let Some(job) = wanted_job(state, project, view::areas(size).canvas, ui_base)
            {
                let same = asked.as_ref().is_some_and(|a| same_job(a, &job));
                if !same {
                    generation += 1;
                    let job = Job { generation, ..job };
                    asked = Some(job.clone());
                    let _ = gfx.send(Request::Render(job));
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
                    .filter_map(|q| {
                        Some((
                            q.id,
                            crate::remote::image_path(project, &q.key).ok()?,
                            cells,
                        ))
                    })
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
            last_draw = Instant::now();
            dirty = false;
        }
        if state.quit {
            return Ok(());
        }
        let timeout = if dirty {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(250)
        };
        let ev = match rx.recv_timeout(timeout) {
            Ok(ev) => ev,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        match ev {
            AppEvent::Term(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                if let Some(msg) = key_to_msg(state, ui_base.keymap, &k) {
                    dispatch(state, msg);
                }
            }
            AppEvent::Term(Event::Resize(..)) => {
                // Thumbnails are sized to their tiles, which do not change; the page may.
            }
            AppEvent::Term(_) => continue,
            AppEvent::Msg(msg) => dispatch(state, msg),
            AppEvent::Picture(Reply::Ready(p)) => {
                if p.generation == generation {
                    picture = Some(p);
                }
            }
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

/// The render job the current screen needs.
fn wanted_job(
    state: &State,
    project: &Project,
    canvas: ratatui::layout::Rect,
    ui: &Ui,
) -> Option<Job> {
    let item = state.current_item()?;
    let path = crate::remote::image_path(project, &item.key).ok()?;
    let mut overlay = Vec::new();
    let mut crosshair = None;
    if !ui.cell_overlay {
        if let Some(cur) = state.current.as_ref().filter(|c| c.id == item.id) {
            for (i, it) in cur.items.iter().enumerate() {
                let Some(bbox) = it.bbox else { continue };
                let ci = state
                    .classes
                    .iter()
                    .position(|c| *c == it.class)
                    .unwrap_or(0);
                let selected = state.selected == Some(i);
                overlay.push(OverlayBox {
                    bbox,
                    rgb: crate::theme::rgb(if selected {
                        ui.theme.selected
                    } else {
                        ui.theme.class_color(ci)
                    }),
                    proposal: it.is_proposal(),
                    selected,
                });
            }
        }
        if let Mode::Draw { cursor, first } = &state.mode {
            crosshair = Some(*cursor);
            if let Some(f) = first
                && let Ok((bbox, _)) = crate::model::BBox::clipped(f.0, f.1, cursor.0, cursor.1)
            {
                overlay.push(OverlayBox {
                    bbox,
                    rgb: crate::theme::rgb(ui.theme.selected),
                    proposal: true,
                    selected: true,
                });
            }
        }
    }
    Some(Job {
        generation: 0,
        id: item.id,
        path,
        cells: (canvas.width, canvas.height),
        zoom: state.zoom,
        overlay,
        crosshair,
    })
}

fn same_job(a: &Job, b: &Job) -> bool {
    a.id == b.id
        && a.cells == b.cells
        && a.zoom == b.zoom
        && a.overlay == b.overlay
        && a.crosshair == b.crosshair
}

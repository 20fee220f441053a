//! The delta path draws the right picture: a scripted review (next, nudge, resize a box, draw,
//! delete, zoom, back, terminal resize) goes through each protocol's driver into a test terminal
//! that parses the bytes and composes the screen. After every step the screen must have the
//! pixels a full redraw gives, and each edit must stay within its byte budget.

mod graphics_term;

use std::collections::HashMap;
use std::sync::Arc;

use image::{DynamicImage, RgbaImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui_image::picker::Picker;

use graphics_term::TestTerm;
use termtag::model::{BBox, ImageStatus, Origin, Task};
use termtag::theme::Theme;
use termtag::tui::action::Action;
use termtag::tui::graphics::kitty::DIACRITICS;
use termtag::tui::graphics::{Job, Kind, Overlay, Picture, Renderer, Reply, Setup, fit};
use termtag::tui::keymap::Keymap;
use termtag::tui::state::{BoxItem, Current, ItemKind, Msg, QueueItem, State, update};
use termtag::tui::view::{self, Ui};

const CELL: (u16, u16) = (8, 16);

/// A photo-like picture: smooth shapes and fine grain, so it compresses like a photo.
fn photo(seed: u32, w: u32, h: u32) -> DynamicImage {
    let mut n = seed.wrapping_mul(2_654_435_761);
    DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let grain = (n >> 27) as i32 - 16;
        let f = |v: f32| (v.clamp(0.0, 255.0)) as i32;
        let r = f(128.0 + 100.0 * ((x as f32 / 37.0) + seed as f32).sin()) + grain;
        let g = f(128.0 + 90.0 * ((y as f32 / 23.0) - (x as f32 / 91.0)).cos()) + grain;
        let b = f((x ^ y) as f32 % 200.0) + grain;
        image::Rgb([r, g, b].map(|v| v.clamp(0, 255) as u8))
    }))
}

fn setup(kind: Kind, tmux: bool) -> Setup {
    Setup {
        picker: Picker::halfblocks(),
        kind,
        cell: CELL,
        tmux,
        why: "test".into(),
        warning: None,
    }
}

struct Review {
    setup: Setup,
    renderer: Renderer,
    term: TestTerm,
    state: State,
    images: Vec<Arc<DynamicImage>>,
    size: (u16, u16),
    cleared: u64,
    theme: Theme,
    /// The cells on the running terminal, as ratatui last wrote them.
    cells: Option<Buffer>,
    /// Each image's boxes as last edited.
    edits: HashMap<i64, Current>,
    /// The last frame needed the decoded image (its display-size picture was not kept).
    decoded: std::cell::Cell<bool>,
}

fn boxes(i: usize) -> Current {
    let b = |x0, y0, x1, y1| BBox { x0, y0, x1, y1 };
    Current {
        id: i as i64,
        status: ImageStatus::New,
        items: vec![
            BoxItem {
                class: "knot".into(),
                bbox: Some(b(0.2, 0.25, 0.45, 0.6)),
                score: None,
                kind: ItemKind::Label(Origin::Human),
                prediction: None,
            },
            BoxItem {
                class: "defect".into(),
                bbox: Some(b(0.6, 0.1, 0.9, 0.5)),
                score: Some(0.7),
                kind: ItemKind::Proposal,
                prediction: None,
            },
        ],
        decisions: Vec::new(),
    }
}

impl Review {
    fn new(kind: Kind, tmux: bool) -> Review {
        let setup = setup(kind, tmux);
        let mut state = State::new("t", Task::Detect, vec!["knot".into(), "defect".into()]);
        state.queue = (0..3)
            .map(|i| QueueItem {
                id: i,
                key: format!("img{i}.jpg"),
                width: 1200,
                height: 800,
                status: ImageStatus::New,
                score: None,
            })
            .collect();
        state.current = Some(boxes(0));
        state.selected = Some(0);
        let size = (100, 30);
        Review {
            renderer: Renderer::new(&setup),
            term: TestTerm::new(size.0.into(), size.1.into(), (CELL.0.into(), CELL.1.into())),
            setup,
            state,
            images: (0..3).map(|i| Arc::new(photo(i, 1200, 800))).collect(),
            size,
            cleared: 0,
            theme: Theme::preset("dark").unwrap(),
            cells: None,
            edits: HashMap::new(),
            decoded: std::cell::Cell::new(false),
        }
    }

    fn job(&self) -> Job {
        let canvas = view::areas(Rect::new(0, 0, self.size.0, self.size.1)).canvas;
        Job {
            generation: 1,
            id: self.state.current_item().unwrap().id,
            path: Default::default(),
            canvas,
            zoom: self.state.zoom,
            overlay: if self.setup.cell_overlay() {
                Overlay::default()
            } else {
                Overlay::of(&self.state, &self.theme)
            },
            cleared: self.cleared,
        }
    }

    /// Renders the current screen through `renderer` into `term`; returns the bytes written.
    fn show(
        &self,
        renderer: &mut Renderer,
        term: &mut TestTerm,
        cells: &mut Option<Buffer>,
    ) -> (usize, Picture) {
        let job = self.job();
        let img = self.images[job.id as usize].clone();
        let decoded = std::cell::Cell::new(false);
        let Reply::Ready(p) = renderer.render(&job, || {
            decoded.set(true);
            Ok(img)
        }) else {
            panic!("no picture")
        };
        self.decoded.set(decoded.get());
        // The screen's cells, for kitty placeholders.
        let keymap = Keymap::defaults();
        let ui = Ui {
            theme: &self.theme,
            thumbs: None,
            keymap: &keymap,
            picture: Some(&p),
            cell_overlay: self.setup.cell_overlay(),
            protocol: self.setup.kind.name(),
        };
        let mut t = Terminal::new(TestBackend::new(self.size.0, self.size.1)).unwrap();
        // The frame as drawn, with the cells left to the pictures marked.
        let now = t
            .draw(|f| view::draw(f, &self.state, &ui))
            .unwrap()
            .buffer
            .clone();
        // Ratatui writes the cells that changed (erasing pixels there), then the pictures.
        let before = cells
            .take()
            .filter(|b| b.area == now.area)
            .unwrap_or_else(|| Buffer::empty(now.area));
        for (x, y, _) in before.diff(&now) {
            term.erase_cell(x.into(), y.into());
        }
        term.feed(&p.bytes);
        term.set_placeholders(placeholders(&now));
        *cells = Some(now);
        (p.bytes.len(), p)
    }

    /// One step: the delta on the running terminal, checked against a full redraw.
    fn step(&mut self, what: &str) -> usize {
        let mut renderer = std::mem::replace(&mut self.renderer, Renderer::new(&self.setup));
        let mut term = std::mem::replace(&mut self.term, TestTerm::new(1, 1, (1, 1)));
        let mut cells = self.cells.take();
        let (bytes, p) = self.show(&mut renderer, &mut term, &mut cells);
        let decoded = self.decoded.get();
        self.cells = cells;
        let (mut fresh, mut fresh_term) = (Renderer::new(&self.setup), self.blank());
        let (full, _) = self.show(&mut fresh, &mut fresh_term, &mut None);
        let got = term.compose();
        let want = fresh_term.compose();
        assert!(
            got == want,
            "{what}: {} differs from a full redraw in {} pixels",
            self.setup.kind.name(),
            differing(&got, &want)
        );
        self.check_picture(&got, &p);
        self.renderer = renderer;
        self.term = term;
        self.decoded.set(decoded);
        println!(
            "{:>10} {what:<24} {bytes:>8} B (full redraw {full} B)",
            self.setup.kind.name()
        );
        bytes
    }

    fn blank(&self) -> TestTerm {
        TestTerm::new(
            self.size.0.into(),
            self.size.1.into(),
            (CELL.0.into(), CELL.1.into()),
        )
    }

    /// The picture region shows the display-size picture with its boxes (exactly for the
    /// lossless protocols, recognisably for sixel's 252 colours).
    fn check_picture(&self, screen: &RgbaImage, p: &Picture) {
        let job = self.job();
        let mut want = fit(
            &self.images[job.id as usize],
            (job.canvas.width, job.canvas.height),
            CELL,
            job.zoom,
        )
        .unwrap();
        job.overlay.paint_pixels(&mut want);
        let (ox, oy) = (u32::from(p.area.x * CELL.0), u32::from(p.area.y * CELL.1));
        let (mut err, mut seen) = (0u64, 0u64);
        for (x, y, px) in want.enumerate_pixels() {
            let s = screen.get_pixel(ox + x, oy + y);
            // Where boxes are cells (kitty placeholders), those cells show text, not pixels.
            if s[3] == 0 && self.setup.cell_overlay() {
                continue;
            }
            seen += 1;
            err += (0..3).map(|c| u64::from(px[c].abs_diff(s[c]))).sum::<u64>();
        }
        assert!(
            seen * 10 >= 8 * u64::from(want.width() * want.height()),
            "most of the picture is on screen"
        );
        let mean = err as f64 / (3.0 * seen as f64);
        let limit = if self.setup.kind == Kind::Sixel {
            24.0
        } else {
            0.0
        };
        assert!(
            mean <= limit,
            "{}: picture differs from the expected one by {mean:.1} per channel",
            self.setup.kind.name()
        );
    }

    fn act(&mut self, a: Action) {
        update(&mut self.state, Msg::Action(a));
    }

    /// Another image, with its boxes as they were left (the store's part).
    fn goto(&mut self, a: Action) {
        if let Some(cur) = self.state.current.take() {
            self.edits.insert(cur.id, cur);
        }
        self.act(a);
        let id = self.state.current_item().unwrap().id;
        self.state.current = Some(self.edits.remove(&id).unwrap_or_else(|| boxes(id as usize)));
        self.state.selected = Some(0);
    }
}

fn differing(a: &RgbaImage, b: &RgbaImage) -> usize {
    if a.dimensions() != b.dimensions() {
        return usize::MAX;
    }
    a.pixels().zip(b.pixels()).filter(|(x, y)| x != y).count()
}

fn placeholders(buf: &ratatui::buffer::Buffer) -> HashMap<(u32, u32), (u32, u32, u32)> {
    let mut out = HashMap::new();
    for pos in buf.area.positions() {
        let cell = &buf[pos];
        let mut chars = cell.symbol().chars();
        if chars.next() != Some('\u{10EEEE}') {
            continue;
        }
        let d = |c: Option<char>| {
            DIACRITICS
                .iter()
                .position(|&x| Some(x) == c)
                .expect("diacritic") as u32
        };
        let (row, col) = (d(chars.next()), d(chars.next()));
        let Color::Rgb(r, g, b) = cell.fg else {
            panic!("placeholder without an id colour")
        };
        let id = u32::from_be_bytes([0, r, g, b]);
        out.insert((u32::from(pos.x), u32::from(pos.y)), (id, row, col));
    }
    out
}

/// The scripted review; returns byte counts: the first frame, the edits (each with its budget
/// in percent of a full frame for sixel and iTerm2), going back.
fn review(kind: Kind, tmux: bool) -> (usize, Vec<(usize, usize)>, usize) {
    let mut r = Review::new(kind, tmux);
    let first = r.step("first picture");
    let mut edits = Vec::new();
    // Each edit with its share of a full frame for sixel and iTerm2: one box redrawn, or two
    // (the selection moves from one box to another).
    for (a, what, share) in [
        (Action::MoveRight, "nudge right", 10),
        (Action::MoveRightFine, "nudge one pixel", 10),
        (Action::GrowDown, "resize the box", 10),
        (Action::NextBox, "select the next box", 20),
        (Action::DrawBox, "draw: crosshair", 10),
        (Action::MoveRight, "draw: move", 10),
        (Action::Confirm, "draw: first corner", 10),
        (Action::MoveDown, "draw: drag", 10),
        (Action::Cancel, "draw: cancel", 10),
        (Action::DeleteBox, "delete a box", 20),
    ] {
        r.act(a);
        edits.push((r.step(what), share));
    }
    r.act(Action::ZoomBox);
    r.step("zoom to the box");
    r.act(Action::ZoomBox);
    r.step("zoom back");
    // The worker prepares the next image while this one is shown.
    r.renderer.prepare(1, &r.images[1].clone());
    r.goto(Action::NextImage);
    r.step("next image (prefetched)");
    assert!(!r.decoded.get(), "a prefetched picture was decoded again");
    r.goto(Action::NextImage);
    r.step("next image (not prefetched)");
    assert!(r.decoded.get());
    r.goto(Action::PrevImage);
    r.goto(Action::PrevImage);
    let back = r.step("back");
    assert!(
        !r.decoded.get(),
        "going back decoded and resized the picture again"
    );
    // The terminal is resized: it clears, the canvas changes.
    r.size = (120, 36);
    r.cleared += 1;
    r.term.clear(120, 36);
    r.cells = None;
    r.step("terminal resized");
    r.act(Action::MoveLeft);
    edits.push((r.step("nudge after resize"), 10));
    (first, edits, back)
}

#[test]
fn kitty_sends_each_picture_once_then_only_the_overlay() {
    let (first, edits, back) = review(Kind::Kitty, false);
    for (e, _) in &edits {
        assert!(*e <= 30_000, "a box edit took {e} bytes");
    }
    assert!(
        back <= 2_000,
        "going back to a held picture took {back} bytes"
    );
    assert!(
        first > 20 * back.max(1),
        "the first frame carries the picture"
    );
}

#[test]
fn kitty_in_tmux_uses_placeholders_and_passthrough() {
    let (_, edits, back) = review(Kind::Kitty, true);
    // Boxes are cells here: the pictures' bytes do not change on an edit.
    assert!(edits.iter().all(|e| e.0 == 0), "{edits:?}");
    assert!(back <= 2_000, "{back}");
}

#[test]
fn sixel_box_edits_send_only_changed_cells() {
    let (first, edits, _) = review(Kind::Sixel, false);
    for (e, share) in &edits {
        assert!(
            e * 100 <= first * share,
            "an edit took {e} bytes of a {first}-byte frame"
        );
    }
}

#[test]
fn iterm2_box_edits_send_only_changed_cells() {
    let (first, edits, _) = review(Kind::Iterm2, false);
    for (e, share) in &edits {
        assert!(
            e * 100 <= first * share,
            "an edit took {e} bytes of a {first}-byte frame"
        );
    }
}

/// A delta that misses a piece must not pass: drop the last picture sequence of an edit.
#[test]
fn a_wrong_delta_is_caught() {
    for kind in [Kind::Kitty, Kind::Sixel, Kind::Iterm2] {
        let mut r = Review::new(kind, false);
        let mut term = r.blank();
        let mut renderer = Renderer::new(&r.setup);
        r.show(&mut renderer, &mut term, &mut None);
        r.act(Action::MoveRight);
        let job = r.job();
        let img = r.images[0].clone();
        let Reply::Ready(p) = renderer.render(&job, || Ok(img)) else {
            panic!()
        };
        // Cut before the last sequence that carries or places a picture.
        let cut = [&b"\x1b_G"[..], b"\x1bP", b"\x1b]1337"]
            .iter()
            .filter_map(|pat| p.bytes.windows(pat.len()).rposition(|w| w == *pat))
            .max()
            .expect("the edit sends something");
        // Back off to the start of a chunked transmission, so what is left still parses.
        let cut = first_of_transmission(&p.bytes, cut);
        term.feed(&p.bytes[..cut]);
        let mut full = r.blank();
        r.show(&mut Renderer::new(&r.setup), &mut full, &mut None);
        assert_ne!(
            term.compose(),
            full.compose(),
            "{}: a wrong delta went unnoticed",
            kind.name()
        );
    }
}

/// The start of the kitty transmission that the sequence at `at` belongs to.
fn first_of_transmission(b: &[u8], mut at: usize) -> usize {
    while at > 0 && b[at..].starts_with(b"\x1b_Gq=2,m=") {
        at = b[..at].windows(3).rposition(|w| w == b"\x1b_G").unwrap();
    }
    at
}

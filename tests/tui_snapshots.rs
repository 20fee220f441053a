//! Snapshots of the main screens on a `TestBackend` with halfblocks, and colours checked directly
//! (snapshots do not record colour).

use image::{DynamicImage, Rgb, RgbImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};

use termtag::model::{BBox, ImageStatus, Origin, Task};
use termtag::store::Stats;
use termtag::theme::Theme;
use termtag::tui::action::Action;
use termtag::tui::graphics::{Job, Overlay, Picture, Renderer, Reply, Setup};
use termtag::tui::keymap::Keymap;
use termtag::tui::state::{BoxItem, Current, ItemKind, Mode, Msg, QueueItem, State, update};
use termtag::tui::view::{self, Ui};

fn state(task: Task) -> State {
    let mut s = State::new("boards", task, vec!["knot".into(), "defect".into()]);
    s.queue = vec![
        QueueItem {
            id: 1,
            key: "st1026\u{1b}[31m.png".into(),
            width: 200,
            height: 100,
            status: ImageStatus::New,
            score: Some(0.4),
        },
        QueueItem {
            id: 2,
            key: "st1027.png".into(),
            width: 200,
            height: 100,
            status: ImageStatus::New,
            score: Some(0.2),
        },
    ];
    s.current = Some(Current {
        id: 1,
        status: ImageStatus::New,
        items: vec![
            BoxItem {
                class: "knot".into(),
                bbox: Some(BBox {
                    x0: 0.1,
                    y0: 0.2,
                    x1: 0.4,
                    y1: 0.8,
                }),
                score: None,
                kind: ItemKind::Label(Origin::Human),
                prediction: None,
            },
            BoxItem {
                class: "defect".into(),
                bbox: Some(BBox {
                    x0: 0.55,
                    y0: 0.1,
                    x1: 0.9,
                    y1: 0.6,
                }),
                score: Some(0.62),
                kind: ItemKind::Proposal,
                prediction: Some(7),
            },
        ],
        decisions: Vec::new(),
    });
    s.selected = Some(1);
    s
}

fn picture(canvas: ratatui::layout::Rect) -> Picture {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            Rgb([40, 40, 40])
        } else {
            Rgb([200, 200, 200])
        }
    }));
    let job = Job {
        generation: 1,
        id: 1,
        path: Default::default(),
        canvas,
        zoom: None,
        overlay: Overlay::default(),
        cleared: 0,
    };
    match Renderer::new(&Setup::halfblocks()).render(&job, || Ok(std::sync::Arc::new(img))) {
        Reply::Ready(p) => p,
        _ => panic!("the picture renders"),
    }
}

fn render(s: &State, w: u16, h: u16) -> (Terminal<TestBackend>, Theme) {
    let theme = Theme::preset("dark").unwrap();
    let keymap = Keymap::defaults();
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let canvas = view::areas(ratatui::layout::Rect::new(0, 0, w, h)).canvas;
    let pic = picture(canvas);
    let ui = Ui {
        theme: &theme,
        thumbs: None,
        keymap: &keymap,
        picture: Some(&pic),
        cell_overlay: true,
        protocol: "halfblocks",
    };
    term.draw(|f| view::draw(f, s, &ui)).unwrap();
    (term, theme)
}

#[test]
fn review_screen() {
    let (term, theme) = render(&state(Task::Detect), 100, 30);
    insta::assert_snapshot!(term.backend());
    let buf = term.backend().buffer();
    // The selected proposal is drawn heavy in the selection colour; the other box in its class
    // colour with light lines, so neither depends on colour alone.
    let cells: Vec<(char, Color)> = buf
        .content()
        .iter()
        .map(|c| (c.symbol().chars().next().unwrap_or(' '), c.fg))
        .collect();
    assert!(
        cells
            .iter()
            .any(|&(ch, fg)| ch == '┏' && fg == theme.selected)
    );
    assert!(
        cells
            .iter()
            .any(|&(ch, fg)| ch == '┌' && fg == theme.class_color(0))
    );
    // The escape sequence in the file name is shown escaped.
    let text: String = cells.iter().map(|c| c.0).collect();
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn help_lists_every_action_from_the_keymap() {
    let mut s = state(Task::Detect);
    update(&mut s, Msg::Action(Action::Help));
    let (term, _) = render(&s, 160, 40);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn dashboard_shows_progress_per_class_and_annotator() {
    let mut s = state(Task::Detect);
    s.mode = Mode::Dashboard;
    let mut stats = Stats {
        images: 4,
        verified_empty: 1,
        predicted_images: 3,
        ..Stats::default()
    };
    stats.by_status.insert("new".into(), 2);
    stats.by_status.insert("reviewed".into(), 2);
    stats.by_class = vec![("knot".into(), 3, 1), ("defect".into(), 1, 1)];
    stats.by_annotator.insert("alice".into(), (2, 4));
    stats.speed = vec![termtag::store::Speed {
        author: "alice".into(),
        reviewed: 2,
        active_ms: 19_000,
        accepted_unchanged: 3,
        edited: 1,
        dismissed: 1,
        drawn: 1,
    }];
    s.stats = Some(stats);
    let (term, _) = render(&s, 100, 30);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn classification_screen_and_picker() {
    let mut s = state(Task::Multilabel);
    if let Some(cur) = &mut s.current {
        for it in &mut cur.items {
            it.bbox = None;
        }
    }
    s.mode = Mode::Picker { index: 1 };
    let (term, theme) = render(&s, 100, 30);
    insta::assert_snapshot!(term.backend());
    let buf = term.backend().buffer();
    assert!(buf.content().iter().any(|c| {
        c.symbol() == "d" && c.fg == theme.selected && c.modifier.contains(Modifier::REVERSED)
    }));
}

#[test]
fn too_small_terminal_says_so() {
    let (term, _) = render(&state(Task::Detect), 40, 10);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn gallery_grid_marks_and_cursor() {
    let mut s = state(Task::Multilabel);
    s.gallery_columns = 3;
    s.gallery_labels.insert(1, vec!["knot".into()]);
    s.mode = Mode::Gallery {
        cursor: 1,
        marked: vec![0],
    };
    let (term, theme) = render(&s, 100, 30);
    insta::assert_snapshot!(term.backend());
    let buf = term.backend().buffer();
    assert!(buf.content().iter().any(|c| c.symbol() == "■"));
    assert!(
        buf.content()
            .iter()
            .any(|c| c.fg == theme.class_color(0) && c.symbol() == "k")
    );
}

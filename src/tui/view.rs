//! Drawing `&State`: the picture with its boxes, the side panel, the status bar and the popups.
//! Widgets take their styles from the theme and their key hints from the keymap.

use ratatui::Frame;
use ratatui::buffer::CellDiffOption;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use ratatui_image::Image;

use crate::model::Task;
use crate::sanitize::for_terminal;
use crate::theme::Theme;

use super::action::Action;
use super::graphics::kitty::placeholder;
use super::graphics::{Overlay, Picture, Shown};
use super::keymap::Keymap;
use super::state::{ItemKind, Mode, State};

/// Smallest terminal the screen is drawn in.
pub const MIN_SIZE: (u16, u16) = (60, 14);
const PANEL_WIDTH: u16 = 34;

/// What the view needs besides the state.
pub struct Ui<'a> {
    pub theme: &'a Theme,
    /// Gallery thumbnails by image id.
    pub thumbs: Option<&'a std::collections::HashMap<i64, ratatui_image::protocol::Protocol>>,
    pub keymap: &'a Keymap,
    pub picture: Option<&'a Picture>,
    /// Boxes are drawn as cells (halfblocks, kitty placeholders) rather than into the pixels.
    pub cell_overlay: bool,
    pub protocol: &'a str,
}

pub struct Areas {
    pub canvas: Rect,
    pub panel: Rect,
    pub status: Rect,
    pub message: Rect,
}

pub fn areas(size: Rect) -> Areas {
    let [main, message, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(size);
    let [canvas, panel] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(PANEL_WIDTH)]).areas(main);
    Areas {
        canvas,
        panel,
        status,
        message,
    }
}

pub fn too_small(size: Rect) -> bool {
    size.width < MIN_SIZE.0 || size.height < MIN_SIZE.1
}

pub fn draw(f: &mut Frame, state: &State, ui: &Ui) {
    let size = f.area();
    if too_small(size) {
        let msg = format!(
            "terminal too small: {}×{}, termtag needs at least {}×{}",
            size.width, size.height, MIN_SIZE.0, MIN_SIZE.1
        );
        f.render_widget(
            Paragraph::new(msg)
                .style(ui.theme.error_style())
                .wrap(Wrap { trim: true }),
            size,
        );
        return;
    }
    let a = areas(size);
    if let Mode::Gallery { cursor, marked } = &state.mode {
        let main = Rect::new(
            a.canvas.x,
            a.canvas.y,
            a.canvas.width + a.panel.width,
            a.canvas.height,
        );
        draw_gallery(f, main, state, *cursor, marked, ui);
    } else {
        draw_canvas(f, a.canvas, state, ui);
        draw_panel(f, a.panel, state, ui);
    }
    draw_message(f, a.message, state, ui);
    draw_status(f, a.status, state, ui);
    match &state.mode {
        Mode::Help => draw_help(f, size, ui),
        Mode::Dashboard => draw_dashboard(f, size, state, ui),
        Mode::Picker { index } => draw_picker(f, size, state, *index, ui),
        _ => {}
    }
}

/// Whether something is drawn over the canvas (a popup, the gallery), so pixels written by a
/// graphics protocol must go; cell pictures (halfblocks) stay under it.
pub fn covered(state: &State) -> bool {
    matches!(
        state.mode,
        Mode::Help | Mode::Dashboard | Mode::Picker { .. } | Mode::Gallery { .. }
    )
}

fn draw_canvas(f: &mut Frame, canvas: Rect, state: &State, ui: &Ui) {
    let Some(item) = state.current_item() else {
        let text = if state.filter.is_empty() {
            "no images to review: add some with `termtag refresh` or `termtag pull`".to_string()
        } else {
            format!(
                "no image matches `{}` (/ to change the filter)",
                for_terminal(&state.filter)
            )
        };
        f.render_widget(Paragraph::new(text).style(ui.theme.dimmed()), canvas);
        return;
    };
    let picture = ui.picture.filter(|p| p.id == item.id);
    let Some(picture) = picture else {
        let text = format!("loading {} …", for_terminal(&item.key));
        f.render_widget(Paragraph::new(text).style(ui.theme.dimmed()), canvas);
        return;
    };
    let rect = picture.area.intersection(canvas);
    let buf = f.buffer_mut();
    match &picture.shown {
        Shown::Cells(p) => Image::new(p).render(rect, buf),
        // The driver's pixels are there: ratatui must not write over them.
        Shown::Pixels if !covered(state) => {
            for pos in rect.positions() {
                buf[pos].set_diff_option(CellDiffOption::Skip);
            }
        }
        Shown::Placeholder(id) if !covered(state) => {
            let [_, r, g, b] = id.to_be_bytes();
            for pos in rect.positions() {
                let (col, row) = (pos.x - rect.x, pos.y - rect.y);
                buf[pos]
                    .set_symbol(&placeholder(row, col))
                    .set_fg(Color::Rgb(r, g, b));
            }
        }
        Shown::Pixels | Shown::Placeholder(_) => {}
    }
    if ui.cell_overlay {
        Overlay::of(state, ui.theme).paint_cells(buf, rect, ui.theme);
    }
}

fn kind_label(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Proposal => "proposal",
        ItemKind::Label(crate::model::Origin::Human) => "label",
        ItemKind::Label(crate::model::Origin::AcceptedPrediction) => "accepted",
        ItemKind::Label(crate::model::Origin::Imported) => "imported",
    }
}

fn draw_panel(f: &mut Frame, area: Rect, state: &State, ui: &Ui) {
    let t = ui.theme;
    let mut lines: Vec<Line> = Vec::new();
    lines.push(Line::styled(for_terminal(&state.project), t.title()));
    if let Some(q) = state.current_item() {
        lines.push(Line::from(vec![
            Span::styled("image ", t.dimmed()),
            Span::raw(format!("{}/{}", state.pos + 1, state.queue.len())),
            Span::styled(format!("  {}", q.status), t.dimmed()),
        ]));
        if let Some(s) = q.score {
            lines.push(Line::from(vec![
                Span::styled("uncertainty ", t.dimmed()),
                Span::raw(format!("{s:.3}")),
            ]));
        }
        lines.push(Line::raw(for_terminal(&q.key)));
        lines.push(Line::styled(
            format!("{}×{}", q.width, q.height),
            t.dimmed(),
        ));
    } else {
        lines.push(Line::styled("queue empty", t.dimmed()));
    }
    if let Some(z) = state.zoom {
        lines.push(Line::styled(
            format!("zoom {:.0}%", 100.0 / z.width().max(z.height())),
            t.dimmed(),
        ));
    }
    lines.push(Line::raw(""));
    let heading = if state.task == Task::Detect {
        "boxes"
    } else {
        "classes"
    };
    lines.push(Line::styled(heading, t.title()));
    match &state.current {
        None if state.current_item().is_some() => lines.push(Line::styled("loading…", t.dimmed())),
        None => {}
        Some(cur) if cur.items.is_empty() => {
            let empty = if cur.status == crate::model::ImageStatus::Reviewed {
                "verified empty"
            } else {
                "none yet"
            };
            lines.push(Line::styled(empty, t.dimmed()));
        }
        Some(cur) => {
            for (i, it) in cur.items.iter().enumerate() {
                let selected = state.selected == Some(i);
                let class_index = state.class_index(&it.class).unwrap_or(0);
                let marker = if selected { "▶" } else { " " };
                let shape = if it.is_proposal() { "◌" } else { "●" };
                let score = it.score.map(|s| format!(" {s:.2}")).unwrap_or_default();
                let mut spans = vec![
                    Span::raw(format!("{marker}{:>2} ", i + 1)),
                    Span::styled(shape, Style::default().fg(t.class_color(class_index))),
                    Span::raw(format!(" {:<12}", for_terminal(&it.class))),
                    Span::styled(format!("{score:>5} {}", kind_label(it.kind)), t.dimmed()),
                ];
                if selected {
                    spans = spans
                        .into_iter()
                        .map(|s| s.patch_style(Style::default().add_modifier(Modifier::BOLD)))
                        .collect();
                }
                lines.push(Line::from(spans));
            }
        }
    }
    if state.current.as_ref().is_some_and(|c| {
        c.items
            .iter()
            .any(|it| it.is_proposal() && it.score.is_some())
    }) {
        let key = |a| ui.keymap.keys_for(a).first().cloned().unwrap_or_default();
        lines.push(Line::styled(
            format!(
                "{} accept ≥ {:.2}  {} dismiss < {:.2}",
                key(Action::AcceptAbove),
                state.accept_at,
                key(Action::DismissBelow),
                state.dismiss_below
            ),
            t.dimmed(),
        ));
    }
    if !state.task.is_detect() {
        lines.push(Line::raw(""));
        let keys: Vec<String> = state
            .classes
            .iter()
            .enumerate()
            .take(9)
            .map(|(i, c)| format!("{} {}", i + 1, for_terminal(c)))
            .collect();
        lines.push(Line::styled(keys.join("  "), t.dimmed()));
    }
    if state.task.is_detect() && state.selected.is_some() {
        lines.push(Line::styled(
            format!("corner: {}", state.corner.name()),
            t.dimmed(),
        ));
    }
    lines.push(Line::styled(
        format!("graphics: {}", ui.protocol),
        t.dimmed(),
    ));
    let block = Block::default()
        .borders(Borders::LEFT)
        .border_style(t.dimmed());
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_message(f: &mut Frame, area: Rect, state: &State, ui: &Ui) {
    if let Mode::Filter { input } = &state.mode {
        let line = Line::from(vec![
            Span::styled("filter: ", ui.theme.key()),
            Span::raw(for_terminal(input)),
            Span::styled("▏", ui.theme.key()),
            Span::styled(
                "  class= status= name= path= by= date= score= boxes=  Enter apply, Esc cancel",
                ui.theme.dimmed(),
            ),
        ]);
        f.render_widget(Paragraph::new(line), area);
        return;
    }
    if let Some(m) = &state.message {
        let style = if m.error {
            ui.theme.error_style()
        } else {
            ui.theme.ok_style()
        };
        f.render_widget(
            Paragraph::new(Line::styled(
                for_terminal(&crate::remote::auth::redact(&m.text)),
                style,
            )),
            area,
        );
    }
}

fn draw_status(f: &mut Frame, area: Rect, state: &State, ui: &Ui) {
    let mode = match &state.mode {
        Mode::Normal if state.walk => "WALK",
        Mode::Normal => "REVIEW",
        Mode::Draw { first: None, .. } => "DRAW 1/2",
        Mode::Draw { .. } => "DRAW 2/2",
        Mode::Picker { .. } => "CLASS",
        Mode::Filter { .. } => "FILTER",
        Mode::Help => "HELP",
        Mode::Dashboard => "DASHBOARD",
        Mode::Gallery { .. } => "GALLERY",
    };
    let hints: &[(Action, &str)] = match &state.mode {
        Mode::Draw { .. } => &[
            (Action::MoveLeft, "move"),
            (Action::Confirm, "corner"),
            (Action::Cancel, "cancel"),
        ],
        Mode::Picker { .. } => &[
            (Action::MoveDown, "down"),
            (Action::MoveUp, "up"),
            (Action::AcceptImage, "choose"),
            (Action::Cancel, "cancel"),
        ],
        Mode::Help | Mode::Dashboard => &[(Action::Cancel, "close")],
        Mode::Gallery { .. } => &[
            (Action::MoveRight, "move"),
            (Action::Confirm, "mark"),
            (Action::Class(1), "tag marked"),
            (Action::AcceptImage, "open"),
            (Action::Cancel, "back"),
        ],
        _ if state.walk => &[
            (Action::NextBox, "next proposal"),
            (Action::AcceptBox, "accept"),
            (Action::DeleteBox, "dismiss"),
            (Action::Class(1), "class"),
            (Action::AcceptAbove, "accept ≥"),
            (Action::DismissBelow, "dismiss <"),
            (Action::Undo, "undo"),
            (Action::WalkProposals, "walk off"),
        ],
        _ if state.task.is_detect() => &[
            (Action::AcceptImage, "accept"),
            (Action::NextImage, "next"),
            (Action::NextBox, "box"),
            (Action::AcceptBox, "ok box"),
            (Action::DeleteBox, "delete"),
            (Action::DrawBox, "draw"),
            (Action::MarkEmpty, "empty"),
            (Action::Undo, "undo"),
            (Action::Help, "help"),
            (Action::Quit, "quit"),
        ],
        _ => &[
            (Action::AcceptImage, "accept"),
            (Action::NextImage, "next"),
            (Action::Class(1), "class"),
            (Action::ClassPicker, "pick"),
            (Action::Gallery, "gallery"),
            (Action::MarkEmpty, "none"),
            (Action::Undo, "undo"),
            (Action::Help, "help"),
            (Action::Quit, "quit"),
        ],
    };
    let mut spans = vec![
        Span::styled(
            format!(" {mode} "),
            ui.theme.bar().add_modifier(Modifier::BOLD),
        ),
        Span::raw(" "),
    ];
    for (a, what) in hints {
        if let Some(k) = ui.keymap.keys_for(*a).first() {
            spans.push(Span::styled(k.clone(), ui.theme.key()));
            spans.push(Span::styled(format!(" {what}  "), ui.theme.dimmed()));
        }
    }
    if let Some(sync) = &state.sync {
        spans.push(Span::styled(
            format!("⇅ {}", for_terminal(sync)),
            ui.theme.key(),
        ));
    }
    // Writes not committed yet, or the failure that stopped editing.
    if state.store_error.is_some() {
        spans.push(Span::styled(" ✗ not saved ", ui.theme.error_style()));
    } else if state.pending > 0 {
        spans.push(Span::styled(
            format!(" saving {}… ", state.pending),
            ui.theme.key(),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn popup(size: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(size.width.saturating_sub(2));
    let h = h.min(size.height.saturating_sub(2));
    Rect::new(
        size.x + (size.width - w) / 2,
        size.y + (size.height - h) / 2,
        w,
        h,
    )
}

fn draw_help(f: &mut Frame, size: Rect, ui: &Ui) {
    let rows = ui.keymap.help_rows();
    let mut lines: Vec<Line> = rows
        .iter()
        .map(|(keys, a)| {
            let desc = if matches!(a, Action::Class(_)) {
                "set / toggle class 1–9".to_string()
            } else {
                a.description()
            };
            Line::from(vec![
                Span::styled(format!("{keys:>16}  "), ui.theme.key()),
                Span::raw(desc),
            ])
        })
        .collect();
    // One column when it fits the height, two side by side otherwise.
    let n = lines.len() as u16;
    let two = n + 2 > size.height.saturating_sub(2) && size.width >= 2 * 70 + 4;
    let (w, h) = if two {
        (2 * 70 + 3, n.div_ceil(2) + 2)
    } else {
        (72, n + 2)
    };
    let area = popup(size, w, h);
    f.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys (Esc closes) ")
        .border_style(ui.theme.title());
    let inner = block.inner(area);
    f.render_widget(block, area);
    if two {
        let [left, right] =
            Layout::horizontal([Constraint::Length(70), Constraint::Min(1)]).areas(inner);
        let half = lines.len().div_ceil(2);
        let rest = lines.split_off(half);
        f.render_widget(Paragraph::new(lines), left);
        f.render_widget(Paragraph::new(rest), right);
    } else {
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn draw_dashboard(f: &mut Frame, size: Rect, state: &State, ui: &Ui) {
    let t = ui.theme;
    let mut lines = Vec::new();
    match &state.stats {
        None => lines.push(Line::styled("counting…", t.dimmed())),
        Some(s) => {
            let reviewed = s.by_status.get("reviewed").copied().unwrap_or(0);
            let pct = if s.images == 0 {
                0.0
            } else {
                100.0 * reviewed as f64 / s.images as f64
            };
            let filled = (pct / 5.0).round() as usize;
            lines.push(Line::from(vec![
                Span::raw(format!("reviewed {reviewed}/{} ", s.images)),
                Span::styled("█".repeat(filled), t.ok_style()),
                Span::styled("░".repeat(20 - filled.min(20)), t.dimmed()),
                Span::raw(format!(" {pct:.0}%")),
            ]));
            let statuses: Vec<String> = s
                .by_status
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            lines.push(Line::styled(statuses.join("  "), t.dimmed()));
            lines.push(Line::raw(format!(
                "verified empty {}   predicted {}",
                s.verified_empty, s.predicted_images
            )));
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                format!("{:<20}{:>8}{:>8}", "class", "labels", "images"),
                t.title(),
            ));
            for (i, (name, labels, images)) in s.by_class.iter().enumerate() {
                lines.push(Line::from(vec![
                    Span::styled("● ", Style::default().fg(t.class_color(i))),
                    Span::raw(format!("{:<18}{labels:>8}{images:>8}", for_terminal(name))),
                ]));
            }
            if !s.by_annotator.is_empty() {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    format!("{:<20}{:>8}{:>8}", "annotator", "images", "labels"),
                    t.title(),
                ));
                for (who, (images, labels)) in &s.by_annotator {
                    lines.push(Line::raw(format!(
                        "  {:<18}{images:>8}{labels:>8}",
                        for_terminal(who)
                    )));
                }
            }
            if !s.speed.is_empty() {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    format!("{:<14}{}", "speed", crate::store::Speed::HEADER),
                    t.title(),
                ));
                for sp in &s.speed {
                    lines.push(Line::raw(format!(
                        "  {:<12}{}",
                        for_terminal(&sp.author),
                        sp.row()
                    )));
                }
            }
        }
    }
    let width = if state.stats.as_ref().is_some_and(|s| !s.speed.is_empty()) {
        80
    } else {
        56
    };
    let area = popup(size, width, lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" dashboard (Esc closes) ")
        .border_style(t.title());
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_picker(f: &mut Frame, size: Rect, state: &State, index: usize, ui: &Ui) {
    let t = ui.theme;
    let lines: Vec<Line> = state
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = if i < 9 {
                format!("{}", i + 1)
            } else {
                " ".into()
            };
            let style = if i == index {
                t.highlight()
            } else {
                Style::default()
            };
            Line::from(vec![
                Span::styled(format!(" {key} "), t.key()),
                Span::styled("● ", Style::default().fg(t.class_color(i))),
                Span::styled(format!("{:<24}", for_terminal(c)), style),
            ])
        })
        .collect();
    let area = popup(size, 34, lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" class ")
        .border_style(t.title());
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// Gallery tile size in cells: the thumbnail plus two text lines.
pub const TILE: (u16, u16) = (24, 10);

/// Thumbnail grid (columns, rows) that fits `main`.
pub fn gallery_grid(main: Rect) -> (usize, usize) {
    (
        usize::from((main.width / TILE.0).max(1)),
        usize::from((main.height / TILE.1).max(1)),
    )
}

/// The gallery's main area (canvas and panel together) for a terminal size.
pub fn gallery_area(size: Rect) -> Rect {
    let a = areas(size);
    Rect::new(
        a.canvas.x,
        a.canvas.y,
        a.canvas.width + a.panel.width,
        a.canvas.height,
    )
}

fn draw_gallery(
    f: &mut Frame,
    main: Rect,
    state: &State,
    cursor: usize,
    marked: &[usize],
    ui: &Ui,
) {
    let t = ui.theme;
    let (cols, rows) = gallery_grid(main);
    let page = state.gallery_page(cursor, rows);
    for (slot, pos) in page.enumerate() {
        let Some(q) = state.queue.get(pos) else { break };
        let x = main.x + (slot % cols) as u16 * TILE.0;
        let y = main.y + (slot / cols) as u16 * TILE.1;
        let tile = Rect::new(x, y, TILE.0, TILE.1).intersection(main);
        let is_cursor = pos == cursor;
        let is_marked = marked.contains(&pos);
        let border = if is_cursor {
            t.highlight()
        } else if is_marked {
            t.key()
        } else {
            t.dimmed()
        };
        let title = format!(
            "{}{}",
            if is_marked { "■ " } else { "" },
            for_terminal(&q.key)
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(border)
            .title(title);
        let inner = block.inner(tile);
        f.render_widget(block, tile);
        let [pic, label] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        if let Some(p) = ui.thumbs.and_then(|m| m.get(&q.id)) {
            let a = p.area();
            let r = Rect::new(
                pic.x + (pic.width.saturating_sub(a.width)) / 2,
                pic.y,
                a.width.min(pic.width),
                a.height.min(pic.height),
            );
            f.render_widget(Image::new(p), r);
        }
        let classes = state.gallery_labels.get(&q.id).cloned().unwrap_or_default();
        let text = if classes.is_empty() {
            Line::styled(
                if q.status == crate::model::ImageStatus::Reviewed {
                    "(none)"
                } else {
                    "—"
                },
                t.dimmed(),
            )
        } else {
            Line::from(
                classes
                    .iter()
                    .map(|c| {
                        let i = state.class_index(c).unwrap_or(0);
                        Span::styled(
                            format!("{} ", for_terminal(c)),
                            Style::default().fg(t.class_color(i)),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        f.render_widget(Paragraph::new(text), label);
    }
}

//! Draw mode: a crosshair moved by the box keys; two corners make a new box.

use crate::model::{BBox, Origin};
use crate::tui::action::Action;

use super::{BoxItem, Effect, ItemKind, Mode, State};

impl State {
    pub(super) fn start_draw(&mut self) -> Vec<Effect> {
        if !self.task.is_detect() {
            self.info("boxes belong to detect projects; use the class keys");
            return Vec::new();
        }
        if self.current.is_none() {
            return Vec::new();
        }
        let z = self.zoom.unwrap_or(BBox::FULL);
        self.mode = Mode::Draw {
            cursor: ((z.x0 + z.x1) / 2.0, (z.y0 + z.y1) / 2.0),
            first: None,
        };
        self.info("move the crosshair, Space sets a corner, Esc cancels");
        Vec::new()
    }

    /// An action while drawing; `None` passes it on to review mode (zoom and quit).
    pub(super) fn draw_action(&mut self, a: Action) -> Option<Vec<Effect>> {
        let (px, coarse) = (self.pixel(), self.coarse());
        let Mode::Draw { cursor, first } = &mut self.mode else {
            return None;
        };
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
                        return Some(self.add_drawn_box((fx, fy), (cx, cy)));
                    }
                }
                true
            }
            _ => false,
        };
        if handled || !matches!(a, Action::ZoomIn | Action::ZoomOut | Action::Quit) {
            return Some(Vec::new());
        }
        None
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

//! Review mode (no overlay open): moving and resizing boxes, classes, decisions on proposals,
//! the proposal walk and the score thresholds.

use crate::model::{BBox, Origin, Task};
use crate::store::{Decision, EditLabel};
use crate::tui::action::Action;

use super::{BoxItem, Corner, Effect, ItemKind, MIN_SIZE, State, THRESHOLD_STEP};

impl State {
    /// An action in review mode (and the ones draw mode passes on).
    pub(super) fn review_action(&mut self, a: Action) -> Vec<Effect> {
        let (px, coarse) = (self.pixel(), self.coarse());
        match a {
            Action::Quit => {
                self.quit = true;
                self.clock.flush().into_iter().collect()
            }
            Action::RepeatPrevious => match &self.current {
                Some(cur) => vec![Effect::Previous { id: cur.id }],
                None => Vec::new(),
            },
            Action::WalkProposals => self.toggle_walk(),
            Action::AcceptAbove => self.by_threshold(true),
            Action::DismissBelow => self.by_threshold(false),
            Action::AcceptThresholdUp => self.move_threshold(true, THRESHOLD_STEP),
            Action::AcceptThresholdDown => self.move_threshold(true, -THRESHOLD_STEP),
            Action::DismissThresholdUp => self.move_threshold(false, THRESHOLD_STEP),
            Action::DismissThresholdDown => self.move_threshold(false, -THRESHOLD_STEP),
            Action::Help => self.open_help(),
            Action::Dashboard => self.open_dashboard(),
            Action::Pull | Action::Push => self.start_sync(a == Action::Pull),
            Action::SwitchMetric => {
                self.metric = self.metric.next();
                self.info(format!("queue ranked by {}", self.metric.as_str()));
                vec![Effect::Query {
                    filter: self.filter.clone(),
                    metric: self.metric,
                }]
            }
            Action::Gallery => self.open_gallery(),
            Action::Filter => self.open_filter(),
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
            Action::NextBox => self.select_step(true),
            Action::PrevBox => self.select_step(false),
            Action::AcceptBox => self.accept_box(),
            Action::DeleteBox => self.delete_box(),
            Action::AcceptImage => self.accept_image(),
            Action::MarkEmpty => {
                if let Some(cur) = &mut self.current {
                    cur.retain(Decision::Dismissed, |_| false);
                }
                self.selected = None;
                self.finish("mark_empty", "marked empty")
            }
            Action::Class(n) => self.class_key(usize::from(n) - 1),
            Action::ClassPicker => self.open_picker(),
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
            Action::DrawBox => self.start_draw(),
            Action::Undo => vec![Effect::Undo],
            Action::Redo => vec![Effect::Redo],
            Action::ZoomBox => self.zoom_box(),
            Action::ZoomIn => self.zoom_by(1.0 / 1.5),
            Action::ZoomOut => self.zoom_by(1.5),
            Action::Confirm | Action::Cancel => {
                self.selected = None;
                Vec::new()
            }
        }
    }

    /// Starts a pull or push in the background, unless one is running.
    fn start_sync(&mut self, pull: bool) -> Vec<Effect> {
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

    /// The selected proposal becomes a label.
    fn accept_box(&mut self) -> Vec<Effect> {
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

    /// Deletes the selected label, or dismisses the selected proposal.
    fn delete_box(&mut self) -> Vec<Effect> {
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
        if !removed.is_proposal() {
            return self.save("delete_box");
        }
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
    }

    /// Every proposal becomes a label, the image is reviewed, and the queue moves on.
    fn accept_image(&mut self) -> Vec<Effect> {
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

    /// A class key (1-9): the class of the selected box, or of the image.
    fn class_key(&mut self, index: usize) -> Vec<Effect> {
        let on_proposal = self.selected_item().is_some_and(BoxItem::is_proposal);
        let fx = self.set_class(index);
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

    /// The proposal walk on or off; on, it selects the next proposal from the selection.
    fn toggle_walk(&mut self) -> Vec<Effect> {
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

    /// Zooms onto the selected box with a margin, or back out.
    fn zoom_box(&mut self) -> Vec<Effect> {
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

    /// Positions of the current image's proposals.
    pub(super) fn proposal_positions(&self) -> Vec<usize> {
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
    pub(super) fn seek_image(&mut self, forward: bool) -> Vec<Effect> {
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

    fn move_threshold(&mut self, accept: bool, step: f64) -> Vec<Effect> {
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
        Vec::new()
    }

    /// The labels of the last reviewed image arrived: they join this image as proposals.
    pub(super) fn repeat_previous(&mut self, from: Option<(String, Vec<EditLabel>)>) {
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

    pub(super) fn set_class(&mut self, index: usize) -> Vec<Effect> {
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

    fn select_step(&mut self, forward: bool) -> Vec<Effect> {
        let n = self.current.as_ref().map_or(0, |c| c.items.len());
        if n == 0 {
            self.selected = None;
            return Vec::new();
        }
        self.selected = Some(match (self.selected, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        });
        Vec::new()
    }

    fn zoom_by(&mut self, factor: f64) -> Vec<Effect> {
        let z = self.zoom.unwrap_or(BBox::FULL);
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
            return Vec::new();
        }
        let x0 = (cx - w / 2.0).clamp(0.0, 1.0 - w);
        let y0 = (cy - h / 2.0).clamp(0.0, 1.0 - h);
        self.zoom = Some(BBox {
            x0,
            y0,
            x1: x0 + w,
            y1: y0 + h,
        });
        Vec::new()
    }
}

//! Gallery mode: a thumbnail grid over the queue; classes are tagged on the marked images.

use crate::model::{ImageStatus, Task};
use crate::tui::action::Action;

use super::{Effect, Mode, State};

impl State {
    pub(super) fn open_gallery(&mut self) -> Vec<Effect> {
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

    /// Queue positions of the gallery page holding `cursor` (a page is a few rows).
    pub fn gallery_page(&self, cursor: usize, rows: usize) -> std::ops::Range<usize> {
        let per_page = (self.gallery_columns.max(1) * rows.max(1)).max(1);
        let start = cursor / per_page * per_page;
        start..(start + per_page).min(self.queue.len())
    }

    pub(super) fn gallery_page_effects(&self) -> Vec<Effect> {
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

    pub(super) fn gallery_action(&mut self, a: Action) -> Vec<Effect> {
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
                let targets: Vec<usize> = if marked.is_empty() {
                    vec![*cursor]
                } else {
                    marked.clone()
                };
                return self.tag(usize::from(k) - 1, &targets);
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

    /// Class `index` on the images at queue positions `targets`: in a multi-label project added,
    /// or removed when every target has it already; in a classify project it replaces theirs.
    /// A tag reviews the images.
    fn tag(&mut self, index: usize, targets: &[usize]) -> Vec<Effect> {
        let Some(class) = self.classes.get(index).cloned() else {
            return Vec::new();
        };
        let ids: Vec<i64> = targets
            .iter()
            .filter_map(|p| self.queue.get(*p).map(|q| q.id))
            .collect();
        let only = self.task == Task::Classify;
        for p in targets {
            if let Some(q) = self.queue.get_mut(*p) {
                q.status = ImageStatus::Reviewed;
            }
        }
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
        vec![
            Effect::Tag {
                ids: ids.clone(),
                class,
                add,
                only,
                note: Some(note),
            },
            Effect::GalleryLabels { ids },
        ]
    }
}

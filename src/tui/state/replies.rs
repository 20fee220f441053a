//! Worker replies that take more than a line: an image's labels loaded, an undo or redo
//! committed, a picture that cannot be decoded.

use crate::model::ImageStatus;
use crate::store::{ImageEdit, Proposal, Replay};

use super::{BoxItem, Current, Effect, ItemKind, Mode, State};

impl State {
    /// An image's labels and open proposals arrived, with the project's classes now.
    pub(super) fn loaded(
        &mut self,
        id: i64,
        edit: ImageEdit,
        proposals: Vec<Proposal>,
        classes: Vec<String>,
    ) -> Vec<Effect> {
        if classes != self.classes {
            self.set_classes(classes);
        }
        // A result for an image we already left is stale.
        if self.current_item().map(|q| q.id) != Some(id) {
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
        self.selected = (!items.is_empty()).then_some(0);
        if let Some(q) = self.queue.get_mut(self.pos) {
            q.status = edit.status;
        }
        self.current = Some(Current {
            id,
            status: edit.status,
            items,
            decisions: edit.decisions,
        });
        if self.walk {
            let props = self.proposal_positions();
            match (self.seek, props.first(), props.last()) {
                (Some(forward), None, _) => return self.seek_image(forward),
                (Some(false), _, Some(last)) => self.selected = Some(*last),
                (_, Some(first), _) => self.selected = Some(*first),
                (None, None, _) => {}
            }
            self.seek = None;
        }
        Vec::new()
    }

    pub(super) fn replayed(&mut self, undo: bool, replay: Replay) -> Vec<Effect> {
        let verb = if undo { "undo" } else { "redo" };
        match replay {
            Replay::Nothing => {
                self.info(format!("nothing to {verb}"));
                Vec::new()
            }
            Replay::Stale { image_id, action } => {
                let key = self.key_of(image_id);
                self.error(format!(
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
                    if let Some(q) = self.queue.iter_mut().find(|q| q.id == *id) {
                        q.status = *status;
                    }
                }
                let first = images.first().map(|i| i.0);
                let fx = match self.queue.iter().position(|q| Some(q.id) == first) {
                    Some(pos) if !matches!(self.mode, Mode::Gallery { .. }) => self.goto(pos),
                    // The gallery stays where it is; its labels are read again.
                    _ => self.gallery_page_effects(),
                };
                self.info(format!("{done}: {what}"));
                fx
            }
        }
    }

    /// Image `id` cannot be decoded: it is recorded broken and, when shown, passed.
    pub(super) fn picture_failed(&mut self, id: i64, error: String) -> Vec<Effect> {
        let Some(pos) = self.queue.iter().position(|q| q.id == id) else {
            return Vec::new();
        };
        self.queue[pos].status = ImageStatus::Broken;
        let key = crate::sanitize::for_terminal(&self.queue[pos].key);
        self.error(format!("{key} is broken ({error}); skipped"));
        let mut fx = vec![Effect::MarkBroken { id, error }];
        if pos == self.pos && pos + 1 < self.queue.len() {
            let msg = self.message.clone();
            fx.extend(self.goto(pos + 1));
            self.message = msg;
        }
        fx
    }
}

//! Picker mode: choosing the selected item's class from the list.

use crate::tui::action::Action;

use super::{Effect, Mode, State};

impl State {
    /// Opens the list on the selected item's class, else on the last class used.
    pub(super) fn open_picker(&mut self) -> Vec<Effect> {
        if self.classes.is_empty() {
            return Vec::new();
        }
        let index = self
            .selected_item()
            .and_then(|it| self.class_index(&it.class))
            .unwrap_or(self.last_class);
        self.mode = Mode::Picker { index };
        Vec::new()
    }

    pub(super) fn picker_action(&mut self, a: Action) -> Vec<Effect> {
        let n = self.classes.len().max(1);
        let Mode::Picker { index } = &mut self.mode else {
            return Vec::new();
        };
        match a {
            Action::MoveDown | Action::NextBox => *index = (*index + 1) % n,
            Action::MoveUp | Action::PrevBox => *index = (*index + n - 1) % n,
            Action::Confirm | Action::AcceptImage => {
                let i = *index;
                self.mode = Mode::Normal;
                return self.set_class(i);
            }
            Action::Cancel | Action::Quit => self.mode = Mode::Normal,
            Action::Class(n) => {
                self.mode = Mode::Normal;
                return self.set_class(usize::from(n) - 1);
            }
            _ => {}
        }
        Vec::new()
    }
}

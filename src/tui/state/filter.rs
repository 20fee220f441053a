//! Filter mode: typing the queue filter; Enter rebuilds the queue.

use crate::tui::action::Action;

use super::{Effect, Mode, State};

impl State {
    pub(super) fn open_filter(&mut self) -> Vec<Effect> {
        self.mode = Mode::Filter {
            input: self.filter.clone(),
        };
        Vec::new()
    }

    pub(super) fn filter_action(&mut self, a: Action) -> Vec<Effect> {
        let Mode::Filter { input } = &mut self.mode else {
            return Vec::new();
        };
        match a {
            Action::Confirm | Action::AcceptImage => {
                let filter = input.trim().to_string();
                self.mode = Mode::Normal;
                self.filter = filter.clone();
                return vec![Effect::Query {
                    filter,
                    metric: self.metric,
                }];
            }
            Action::Cancel => self.mode = Mode::Normal,
            _ => {}
        }
        Vec::new()
    }

    /// A character typed (`Some`) or erased (`None`); outside the filter field it is ignored.
    pub(super) fn filter_input(&mut self, c: Option<char>) -> Vec<Effect> {
        if let Mode::Filter { input } = &mut self.mode {
            match c {
                Some(c) => input.push(c),
                None => {
                    input.pop();
                }
            }
        }
        Vec::new()
    }
}

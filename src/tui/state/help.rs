//! Help and dashboard: read-only overlays that any of their own keys, Esc or q closes.

use crate::tui::action::Action;

use super::{Effect, Mode, State};

impl State {
    pub(super) fn open_help(&mut self) -> Vec<Effect> {
        self.mode = Mode::Help;
        Vec::new()
    }

    /// The dashboard asks for fresh figures each time it opens.
    pub(super) fn open_dashboard(&mut self) -> Vec<Effect> {
        self.mode = Mode::Dashboard;
        vec![Effect::Stats]
    }

    pub(super) fn help_action(&mut self, a: Action) -> Vec<Effect> {
        if matches!(
            a,
            Action::Cancel | Action::Help | Action::Dashboard | Action::Quit
        ) {
            self.mode = Mode::Normal;
        }
        Vec::new()
    }
}

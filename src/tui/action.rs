//! The vocabulary of the review screen: keymap files, the help screen and the tests all name
//! actions by these names.

macro_rules! actions {
    ($( $variant:ident => $name:literal, $desc:literal; )*) => {
        /// Something the user asks for. `update()` turns it into state changes and effects.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $( $variant, )*
            /// Set (detection) or toggle (classification) the class with this 1-based hotkey.
            Class(u8),
        }

        impl Action {
            /// Every action with a fixed name, in help order (`Class(n)` is listed separately).
            pub const NAMED: &'static [Action] = &[ $( Action::$variant, )* ];

            pub fn name(self) -> String {
                match self {
                    $( Action::$variant => $name.to_string(), )*
                    Action::Class(n) => format!("class_{n}"),
                }
            }

            pub fn description(self) -> String {
                match self {
                    $( Action::$variant => $desc.to_string(), )*
                    Action::Class(n) => format!("set / toggle class {n}"),
                }
            }

            pub fn from_name(name: &str) -> Option<Action> {
                match name {
                    $( $name => Some(Action::$variant), )*
                    other => other
                        .strip_prefix("class_")
                        .and_then(|n| n.parse::<u8>().ok())
                        .filter(|n| (1..=9).contains(n))
                        .map(Action::Class),
                }
            }
        }
    };
}

actions! {
    AcceptImage => "accept_image", "accept the image as shown, next in queue";
    NextImage => "next_image", "next image without accepting";
    PrevImage => "prev_image", "previous image";
    NextBox => "next_box", "select next box";
    PrevBox => "prev_box", "select previous box";
    AcceptBox => "accept_box", "accept the selected proposal";
    DeleteBox => "delete_box", "delete the selected box";
    ClassPicker => "class_picker", "pick a class from a list";
    MoveLeft => "move_left", "move the box left";
    MoveRight => "move_right", "move the box right";
    MoveUp => "move_up", "move the box up";
    MoveDown => "move_down", "move the box down";
    MoveLeftFine => "move_left_fine", "move the box left one pixel";
    MoveRightFine => "move_right_fine", "move the box right one pixel";
    MoveUpFine => "move_up_fine", "move the box up one pixel";
    MoveDownFine => "move_down_fine", "move the box down one pixel";
    GrowLeft => "resize_left", "move the active corner left";
    GrowRight => "resize_right", "move the active corner right";
    GrowUp => "resize_up", "move the active corner up";
    GrowDown => "resize_down", "move the active corner down";
    GrowLeftFine => "resize_left_fine", "move the active corner left one pixel";
    GrowRightFine => "resize_right_fine", "move the active corner right one pixel";
    GrowUpFine => "resize_up_fine", "move the active corner up one pixel";
    GrowDownFine => "resize_down_fine", "move the active corner down one pixel";
    CycleCorner => "cycle_corner", "cycle the active corner";
    DrawBox => "draw_box", "draw a new box (Space sets each corner)";
    Confirm => "confirm", "set a corner / choose";
    Cancel => "cancel", "cancel / close";
    MarkEmpty => "mark_empty", "mark the image verified-empty";
    RepeatPrevious => "repeat_previous", "copy the last reviewed image's labels as proposals";
    WalkProposals => "walk_proposals", "proposal walk on/off: Tab a x 1-9 go across images";
    AcceptAbove => "accept_above", "accept proposals here ≥ the accept threshold";
    DismissBelow => "dismiss_below", "dismiss proposals here < the dismiss threshold";
    AcceptThresholdUp => "accept_threshold_up", "raise the accept threshold by 0.05";
    AcceptThresholdDown => "accept_threshold_down", "lower the accept threshold by 0.05";
    DismissThresholdUp => "dismiss_threshold_up", "raise the dismiss threshold by 0.05";
    DismissThresholdDown => "dismiss_threshold_down", "lower the dismiss threshold by 0.05";
    Undo => "undo", "undo";
    Redo => "redo", "redo";
    ZoomBox => "zoom_box", "zoom to the selected box and back";
    ZoomIn => "zoom_in", "zoom in";
    ZoomOut => "zoom_out", "zoom out";
    Filter => "filter", "filter the queue";
    SwitchMetric => "switch_metric", "rank the queue by the next uncertainty metric";
    Push => "push", "push the reviewed batch to blob storage";
    Pull => "pull", "pull the next batch from blob storage";
    Dashboard => "dashboard", "progress dashboard";
    Gallery => "gallery", "gallery: Space marks images, a class key tags them all";
    Help => "help", "this help";
    Quit => "quit", "quit";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::NAMED {
            assert_eq!(Action::from_name(&a.name()), Some(*a));
            assert!(!a.description().is_empty());
        }
        assert_eq!(Action::from_name("class_3"), Some(Action::Class(3)));
        assert_eq!(Action::from_name("class_0"), None);
        assert_eq!(Action::from_name("fly"), None);
    }
}

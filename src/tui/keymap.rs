//! Keys → actions. The defaults are embedded (`keymap.toml`); user files override per action.
//! A broken user binding is reported and the rest still applies.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;

const DEFAULTS: &str = include_str!("keymap.toml");

/// A key as the keymap stores it: code plus the modifiers that matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyCodeOrd,
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

/// `KeyCode` subset with an order, so bindings list deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeOrd {
    Char(char),
    Enter,
    Tab,
    BackTab,
    Esc,
    Delete,
    Backspace,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    PageUp,
    PageDown,
}

const NAMED: &[(&str, KeyCodeOrd)] = &[
    ("Enter", KeyCodeOrd::Enter),
    ("Tab", KeyCodeOrd::Tab),
    ("BackTab", KeyCodeOrd::BackTab),
    ("Esc", KeyCodeOrd::Esc),
    ("Space", KeyCodeOrd::Char(' ')),
    ("Delete", KeyCodeOrd::Delete),
    ("Backspace", KeyCodeOrd::Backspace),
    ("Left", KeyCodeOrd::Left),
    ("Right", KeyCodeOrd::Right),
    ("Up", KeyCodeOrd::Up),
    ("Down", KeyCodeOrd::Down),
    ("Home", KeyCodeOrd::Home),
    ("End", KeyCodeOrd::End),
    ("PageUp", KeyCodeOrd::PageUp),
    ("PageDown", KeyCodeOrd::PageDown),
];

/// A key name in a keymap file that names no key.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a key: use one character or one of {names}, with C-, A- or S- before it", names = NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
pub struct NotAKey(String);

impl Key {
    pub fn parse(s: &str) -> Result<Key, NotAKey> {
        let mut key = Key {
            code: KeyCodeOrd::Esc,
            ctrl: false,
            alt: false,
            shift: false,
        };
        let mut rest = s;
        while rest.chars().count() > 2 {
            if let Some(r) = rest.strip_prefix("C-") {
                key.ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("A-") {
                key.alt = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("S-") {
                key.shift = true;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCodeOrd::Char(c),
            _ => NAMED
                .iter()
                .find(|(n, _)| *n == rest)
                .map(|(_, k)| *k)
                .ok_or_else(|| NotAKey(crate::sanitize::for_terminal(s)))?,
        };
        // Shift on a character is the character itself ("H", not "S-h").
        if matches!(key.code, KeyCodeOrd::Char(_)) {
            key.shift = false;
        }
        Ok(key)
    }

    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let code = match ev.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(c),
            KeyCode::Enter => KeyCodeOrd::Enter,
            KeyCode::Tab if ev.modifiers.contains(KeyModifiers::SHIFT) => KeyCodeOrd::BackTab,
            KeyCode::Tab => KeyCodeOrd::Tab,
            KeyCode::BackTab => KeyCodeOrd::BackTab,
            KeyCode::Esc => KeyCodeOrd::Esc,
            KeyCode::Delete => KeyCodeOrd::Delete,
            KeyCode::Backspace => KeyCodeOrd::Backspace,
            KeyCode::Left => KeyCodeOrd::Left,
            KeyCode::Right => KeyCodeOrd::Right,
            KeyCode::Up => KeyCodeOrd::Up,
            KeyCode::Down => KeyCodeOrd::Down,
            KeyCode::Home => KeyCodeOrd::Home,
            KeyCode::End => KeyCodeOrd::End,
            KeyCode::PageUp => KeyCodeOrd::PageUp,
            KeyCode::PageDown => KeyCodeOrd::PageDown,
            _ => return None,
        };
        let is_char = matches!(code, KeyCodeOrd::Char(_));
        Some(Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
            shift: !is_char
                && code != KeyCodeOrd::BackTab
                && ev.modifiers.contains(KeyModifiers::SHIFT),
        })
    }

    /// How help and the status bar show the key.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCodeOrd::Char(' ') => "Space".to_string(),
            KeyCodeOrd::Char(c) => c.to_string(),
            other => NAMED
                .iter()
                .find(|(_, k)| *k == other)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
        };
        let mut s = String::new();
        if self.ctrl {
            s.push_str("C-");
        }
        if self.alt {
            s.push_str("A-");
        }
        if self.shift {
            s.push_str("S-");
        }
        s + &base
    }
}

#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: BTreeMap<Key, Action>,
}

impl Keymap {
    /// The defaults with each override file laid over them in order; problems are returned, not
    /// fatal.
    pub fn load(overrides: &[(&str, &str)]) -> (Keymap, Vec<String>) {
        let mut by_action: BTreeMap<String, Vec<String>> =
            toml::from_str(DEFAULTS).expect("embedded keymap.toml is valid");
        let mut problems = Vec::new();
        for (origin, text) in overrides {
            let table = match toml::from_str::<BTreeMap<String, toml::Value>>(text) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!(
                        "{origin}: {}",
                        e.message().lines().next().unwrap_or("invalid")
                    ));
                    continue;
                }
            };
            for (action, value) in table {
                if Action::from_name(&action).is_none() {
                    problems.push(format!("{origin}: unknown action `{action}`"));
                    continue;
                }
                // A list of keys, or one key as a plain string.
                let keys = match value {
                    toml::Value::String(k) => Some(vec![k]),
                    toml::Value::Array(list) => list
                        .into_iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>(),
                    _ => None,
                };
                match keys {
                    Some(keys) => {
                        by_action.insert(action, keys);
                    }
                    None => problems.push(format!(
                        "{origin}: `{action}` must be a key or a list of keys, like [\"Enter\"]"
                    )),
                }
            }
        }
        let mut bindings = BTreeMap::new();
        for (name, keys) in &by_action {
            let Some(action) = Action::from_name(name) else {
                continue;
            };
            for k in keys {
                match Key::parse(k) {
                    Ok(key) => {
                        if let Some(other) = bindings.insert(key, action)
                            && other != action
                        {
                            problems.push(format!(
                                "key `{k}` is bound to both `{}` and `{name}`; `{name}` wins",
                                other.name()
                            ));
                        }
                    }
                    Err(e) => problems.push(format!("key for `{name}`: {e}")),
                }
            }
        }
        (Keymap { bindings }, problems)
    }

    pub fn defaults() -> Keymap {
        Keymap::load(&[]).0
    }

    pub fn action(&self, key: &Key) -> Option<Action> {
        self.bindings.get(key).copied()
    }

    /// Keys bound to `action`, as labels.
    pub fn keys_for(&self, action: Action) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| k.label())
            .collect()
    }

    /// (keys, action) for every bound action, in help order.
    pub fn help_rows(&self) -> Vec<(String, Action)> {
        let mut rows = Vec::new();
        for a in Action::NAMED {
            let keys = self.keys_for(*a);
            if !keys.is_empty() {
                rows.push((keys.join(" "), *a));
            }
        }
        let class_keys: Vec<String> = (1..=9)
            .flat_map(|n| self.keys_for(Action::Class(n)))
            .collect();
        if !class_keys.is_empty() {
            rows.push((class_keys.join(""), Action::Class(1)));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> Key {
        Key::from_event(&KeyEvent::new(code, m)).unwrap()
    }

    #[test]
    fn defaults_cover_the_design_keys() {
        let k = Keymap::defaults();
        let a = |code, m| k.action(&ev(code, m));
        assert_eq!(
            a(KeyCode::Enter, KeyModifiers::NONE),
            Some(Action::AcceptImage)
        );
        assert_eq!(
            a(KeyCode::Char('H'), KeyModifiers::SHIFT),
            Some(Action::GrowLeft)
        );
        assert_eq!(
            a(KeyCode::Char('h'), KeyModifiers::NONE),
            Some(Action::MoveLeft)
        );
        assert_eq!(
            a(KeyCode::Left, KeyModifiers::SHIFT),
            Some(Action::MoveLeftFine)
        );
        assert_eq!(
            a(KeyCode::Char('r'), KeyModifiers::CONTROL),
            Some(Action::Redo)
        );
        assert_eq!(
            a(KeyCode::BackTab, KeyModifiers::SHIFT),
            Some(Action::PrevBox)
        );
        assert_eq!(
            a(KeyCode::Char('3'), KeyModifiers::NONE),
            Some(Action::Class(3))
        );
        assert_eq!(
            a(KeyCode::Char(' '), KeyModifiers::NONE),
            Some(Action::Confirm)
        );
        // Every named action has a default key, so help lists all of them.
        for act in Action::NAMED {
            assert!(!k.keys_for(*act).is_empty(), "{act:?} has no key");
        }
    }

    #[test]
    fn default_keys_do_not_collide() {
        let (_, problems) = Keymap::load(&[]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn overrides_replace_per_action_and_report_problems() {
        let (k, problems) = Keymap::load(&[(
            "termtag.toml [keys]",
            "accept_image = [\"y\"]\nfly = [\"f\"]\nundo = [\"C-Bogus\"]\nredo = 3\nquit = \"Q\"",
        )]);
        assert_eq!(
            k.action(&Key::parse("y").unwrap()),
            Some(Action::AcceptImage)
        );
        assert_eq!(k.action(&Key::parse("Enter").unwrap()), None);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("unknown action `fly`"));
        assert!(problems[1].contains("`redo` must be a key or a list"));
        assert!(problems[2].contains("C-Bogus"));
        assert_eq!(k.action(&Key::parse("Q").unwrap()), Some(Action::Quit));
        // The rest of the defaults still run.
        assert_eq!(
            k.action(&Key::parse("u").unwrap()),
            None,
            "undo was rebound"
        );
        assert_eq!(k.action(&Key::parse("?").unwrap()), Some(Action::Help));
        let (_, problems) = Keymap::load(&[("keys.toml", "this is = = not toml")]);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn labels() {
        assert_eq!(Key::parse("C-r").unwrap().label(), "C-r");
        assert_eq!(Key::parse("S-Left").unwrap().label(), "S-Left");
        assert_eq!(Key::parse("Space").unwrap().label(), "Space");
        let e = Key::parse("Hyper").unwrap_err().to_string();
        assert!(
            e.starts_with("`Hyper` is not a key") && e.contains("PageUp"),
            "{e}"
        );
    }
}

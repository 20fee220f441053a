//! Untrusted names (file names, blob names, label names from files) pass through here before they
//! reach the terminal or the disk.

use std::path::{Component, Path, PathBuf};

/// Escapes control characters (including ESC, so no escape sequence survives) and other
/// invisible formatting characters as `\u{..}`, keeping printable text of any script.
pub fn for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let invisible = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if invisible {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A path as it may be shown on a terminal.
pub fn show_path(p: &Path) -> String {
    for_terminal(&p.to_string_lossy())
}

/// Checks that a `/`-separated relative key stays inside its root: no `..`, no absolute path, no
/// drive prefix, no empty or control-character components.
pub fn check_relative_key(key: &str) -> Result<(), UnsafeKey> {
    let shown = || for_terminal(key);
    if key.is_empty() {
        return Err(UnsafeKey::Empty);
    }
    if key.chars().any(char::is_control) {
        return Err(UnsafeKey::Control(shown()));
    }
    if key.contains('\\') {
        return Err(UnsafeKey::Backslash(shown()));
    }
    for comp in Path::new(key).components() {
        match comp {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(UnsafeKey::Escapes(shown())),
        }
    }
    Ok(())
}

/// Why a file or blob name cannot be used as a relative path (the name shown is sanitised).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeKey {
    #[error("empty path")]
    Empty,
    #[error("path `{0}` contains control characters")]
    Control(String),
    #[error("path `{0}` contains a backslash")]
    Backslash(String),
    #[error("path `{0}` leaves its folder (absolute, `..` or a drive prefix)")]
    Escapes(String),
}

/// Joins a relative key to `root`, refusing anything that could land outside `root`.
pub fn safe_join(root: &Path, key: &str) -> Result<PathBuf, UnsafeKey> {
    check_relative_key(key)?;
    Ok(root.join(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_sequences() {
        assert_eq!(for_terminal("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(for_terminal("猫/ok.jpg"), "猫/ok.jpg");
        assert_eq!(for_terminal("x\u{202e}y\n"), "x\\u{202e}y\\u{a}");
    }

    #[test]
    fn keys_stay_inside() {
        assert!(safe_join(Path::new("/r"), "a/b.jpg").is_ok());
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "",
            "a\u{7}b",
            "a\\..\\b",
        ] {
            assert!(safe_join(Path::new("/r"), bad).is_err(), "{bad:?}");
        }
    }
}

//! Semantic styles from `themes/*.toml`: widgets ask the theme for a style by meaning, never
//! hard-code a colour. The presets are embedded; a user theme file is laid over them and, when it
//! is broken, reported while the preset keeps running.

use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

const PRESETS: &[(&str, &str)] = &[
    ("dark", include_str!("../themes/dark.toml")),
    ("light", include_str!("../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../themes/high-contrast.toml"),
    ),
];

pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// Theme file keys; every one optional so a user file can override a few.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    fg: Option<String>,
    bg: Option<String>,
    dim: Option<String>,
    accent: Option<String>,
    selected: Option<String>,
    proposal: Option<String>,
    error: Option<String>,
    ok: Option<String>,
    bar_fg: Option<String>,
    bar_bg: Option<String>,
    classes: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub fg: Color,
    pub bg: Color,
    pub dim: Color,
    pub accent: Color,
    pub selected: Color,
    pub proposal: Color,
    pub error: Color,
    pub ok: Color,
    pub bar_fg: Color,
    pub bar_bg: Color,
    pub classes: Vec<Color>,
}

/// A theme that cannot be used; the caller names the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("no theme `{name}`: use one of {}", preset_names().join(", "))]
    NoPreset { name: String },
    /// TOML's first line about it.
    #[error("theme: {0}")]
    Syntax(String),
    #[error("theme key `{key}`: `{value}` is not a colour (a name or #rrggbb)")]
    NotAColour { key: &'static str, value: String },
    #[error("theme key `classes`: give at least one colour")]
    NoClassColours,
}

fn color(s: &str, key: &'static str) -> Result<Color, ThemeError> {
    Color::from_str(s).map_err(|_| ThemeError::NotAColour {
        key,
        value: s.to_string(),
    })
}

impl Theme {
    /// A preset by name (`dark`, `light`, `high-contrast`).
    pub fn preset(name: &str) -> Result<Theme, ThemeError> {
        let text = PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| ThemeError::NoPreset {
                name: name.to_string(),
            })?;
        let base = Theme {
            fg: Color::Reset,
            bg: Color::Reset,
            dim: Color::DarkGray,
            accent: Color::Cyan,
            selected: Color::White,
            proposal: Color::Yellow,
            error: Color::Red,
            ok: Color::Green,
            bar_fg: Color::Black,
            bar_bg: Color::Cyan,
            classes: vec![Color::Yellow],
        };
        base.overlay(text)
    }

    /// This theme with the keys of a TOML theme file laid over it.
    pub fn overlay(&self, text: &str) -> Result<Theme, ThemeError> {
        let f: ThemeFile = toml::from_str(text).map_err(|e| {
            ThemeError::Syntax(e.message().lines().next().unwrap_or("invalid").to_string())
        })?;
        let mut t = self.clone();
        let pairs: [(&Option<String>, &mut Color, &'static str); 10] = [
            (&f.fg, &mut t.fg, "fg"),
            (&f.bg, &mut t.bg, "bg"),
            (&f.dim, &mut t.dim, "dim"),
            (&f.accent, &mut t.accent, "accent"),
            (&f.selected, &mut t.selected, "selected"),
            (&f.proposal, &mut t.proposal, "proposal"),
            (&f.error, &mut t.error, "error"),
            (&f.ok, &mut t.ok, "ok"),
            (&f.bar_fg, &mut t.bar_fg, "bar_fg"),
            (&f.bar_bg, &mut t.bar_bg, "bar_bg"),
        ];
        for (src, dst, key) in pairs {
            if let Some(s) = src {
                *dst = color(s, key)?;
            }
        }
        if let Some(list) = &f.classes {
            if list.is_empty() {
                return Err(ThemeError::NoClassColours);
            }
            t.classes = list
                .iter()
                .map(|s| color(s, "classes"))
                .collect::<Result<_, _>>()?;
        }
        Ok(t)
    }

    /// Colour of the class at `index` in project order (the palette repeats).
    pub fn class_color(&self, index: usize) -> Color {
        self.classes[index % self.classes.len()]
    }

    pub fn text(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }
    pub fn dimmed(&self) -> Style {
        Style::default().fg(self.dim)
    }
    pub fn title(&self) -> Style {
        Style::default()
            .fg(self.accent)
            .add_modifier(Modifier::BOLD)
    }
    pub fn highlight(&self) -> Style {
        Style::default()
            .fg(self.selected)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }
    pub fn error_style(&self) -> Style {
        Style::default().fg(self.error).add_modifier(Modifier::BOLD)
    }
    pub fn ok_style(&self) -> Style {
        Style::default().fg(self.ok)
    }
    pub fn bar(&self) -> Style {
        Style::default().fg(self.bar_fg).bg(self.bar_bg)
    }
    pub fn key(&self) -> Style {
        Style::default()
            .fg(self.accent)
            .add_modifier(Modifier::BOLD)
    }
}

/// RGB of a colour for drawing into pixels; named colours get their usual xterm values.
pub fn rgb(c: Color) -> [u8; 3] {
    match c {
        Color::Rgb(r, g, b) => [r, g, b],
        Color::Black => [0, 0, 0],
        Color::Red => [205, 0, 0],
        Color::Green => [0, 205, 0],
        Color::Yellow => [205, 205, 0],
        Color::Blue => [0, 0, 238],
        Color::Magenta => [205, 0, 205],
        Color::Cyan => [0, 205, 205],
        Color::Gray => [229, 229, 229],
        Color::DarkGray => [127, 127, 127],
        Color::LightRed => [255, 0, 0],
        Color::LightGreen => [0, 255, 0],
        Color::LightYellow => [255, 255, 0],
        Color::LightBlue => [92, 92, 255],
        Color::LightMagenta => [255, 0, 255],
        Color::LightCyan => [0, 255, 255],
        Color::Indexed(_) | Color::White | Color::Reset => [255, 255, 255],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_user_files_overlay() {
        for name in preset_names() {
            let t = Theme::preset(name).unwrap();
            assert!(t.classes.len() >= 8, "{name}");
        }
        let dark = Theme::preset("dark").unwrap();
        assert_eq!(dark.class_color(0), Color::Rgb(0xe6, 0x9f, 0x00));
        assert_eq!(dark.class_color(8), dark.class_color(0));
        let mine = dark.overlay("accent = \"red\"").unwrap();
        assert_eq!(mine.accent, Color::Red);
        assert_eq!(mine.classes, dark.classes);
        let e = dark.overlay("accent = \"nope\"").unwrap_err().to_string();
        assert!(e.contains("`accent`") && e.contains("nope"), "{e}");
        let e = dark.overlay("acent = \"red\"").unwrap_err().to_string();
        assert!(e.contains("acent"), "{e}");
        assert!(Theme::preset("neon").is_err());
    }
}

//! The image filter shared by `termtag images list --filter` and the TUI's `/`:
//! space-separated `key=value` terms, all of which must hold.
//!
//! | term | matches |
//! |---|---|
//! | `class=knot` | images with a label of class `knot` (`class=none`: no label) |
//! | `status=reviewed` | images with that status |
//! | `name=st1*` | file name glob (`*`, `?`) |
//! | `path=boards/*` | key glob over the whole relative path |
//! | `by=alice` | reviewed by, or with a label written by, `alice` |
//! | `date=2026-01-01..2026-02-01` | reviewed on those days (either end may be left open; one day alone works too) |

use time::{Date, macros::format_description};

use crate::model::ImageStatus;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub class: Option<String>,
    pub status: Option<ImageStatus>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub by: Option<String>,
    /// Reviewed at or after this time (unix ms).
    pub since: Option<i64>,
    /// Reviewed before this time (unix ms).
    pub until: Option<i64>,
}

const TERMS: &str = "class, status, name, path, by, date";

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        for term in s.split_whitespace() {
            let (k, v) = term
                .split_once('=')
                .ok_or_else(|| format!("filter term `{term}` is not key=value (keys: {TERMS})"))?;
            if v.is_empty() {
                return Err(format!("filter term `{term}` has no value"));
            }
            match k {
                "class" => f.class = Some(v.to_string()),
                "status" => f.status = Some(v.parse()?),
                "name" => f.name = Some(v.to_string()),
                "path" => f.path = Some(v.to_string()),
                "by" => f.by = Some(v.to_string()),
                "date" => {
                    let (a, b) = v.split_once("..").unwrap_or((v, v));
                    f.since = (!a.is_empty()).then(|| day_start(a)).transpose()?;
                    f.until = (!b.is_empty())
                        .then(|| day_start(b).map(|ms| ms + 86_400_000))
                        .transpose()?;
                }
                other => return Err(format!("unknown filter key `{other}` (keys: {TERMS})")),
            }
        }
        Ok(f)
    }

    /// The SQL condition over `image i` and its arguments (names are matched in Rust).
    pub(crate) fn sql(&self) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut conds = vec!["1".to_string()];
        let mut args: Vec<Value> = Vec::new();
        let arg = |v: Value, args: &mut Vec<Value>| {
            args.push(v);
            format!("?{}", args.len())
        };
        if let Some(c) = &self.class {
            if c == "none" {
                conds
                    .push("NOT EXISTS (SELECT 1 FROM annotation a WHERE a.image_id = i.id)".into());
            } else {
                let p = arg(Value::Text(c.clone()), &mut args);
                // Not correlated: SQLite would walk the class's labels once per image.
                conds.push(format!(
                    "i.id IN (SELECT a.image_id FROM annotation a JOIN class c ON c.id = a.class_id
                              WHERE c.name = {p})"
                ));
            }
        }
        if let Some(s) = self.status {
            let p = arg(Value::Text(s.as_str().into()), &mut args);
            conds.push(format!("i.status = {p}"));
        }
        if let Some(by) = &self.by {
            let p = arg(Value::Text(by.clone()), &mut args);
            conds.push(format!(
                "(i.reviewed_by = {p} OR EXISTS (SELECT 1 FROM annotation a WHERE a.image_id = i.id AND a.author = {p}))"
            ));
        }
        // Globs narrow the rows in SQL (a key that matches `path` matches it in SQL too, and a
        // file name that matches `name` makes its key match `*/name` or `name`); the exact test
        // stays in `matches_names`. A literal prefix lets SQLite use the key index.
        if let Some(g) = &self.path {
            let p = arg(Value::Text(sql_glob(g)), &mut args);
            conds.push(format!("i.key GLOB {p}"));
        }
        if let Some(g) = &self.name {
            let p = arg(Value::Text(sql_glob(g)), &mut args);
            let q = arg(Value::Text(format!("*/{}", sql_glob(g))), &mut args);
            conds.push(format!("(i.key GLOB {p} OR i.key GLOB {q})"));
        }
        if let Some(t) = self.since {
            let p = arg(Value::Integer(t), &mut args);
            conds.push(format!("i.reviewed_at >= {p}"));
        }
        if let Some(t) = self.until {
            let p = arg(Value::Integer(t), &mut args);
            conds.push(format!("i.reviewed_at < {p}"));
        }
        (conds.join(" AND "), args)
    }

    pub(crate) fn matches_names(&self, key: &str) -> bool {
        let name = key.rsplit('/').next().unwrap_or(key);
        self.name.as_deref().is_none_or(|g| glob_match(g, name))
            && self.path.as_deref().is_none_or(|g| glob_match(g, key))
    }
}

fn day_start(s: &str) -> Result<i64, String> {
    let d = Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("date `{s}` is not YYYY-MM-DD"))?;
    Ok(d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// A glob for SQLite's GLOB, which also knows `[...]` classes: `[` is made literal.
fn sql_glob(pattern: &str) -> String {
    pattern.replace('[', "[[]")
}

/// Shell-style glob with `*` (any run, including `/`) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("st1*", "st1026.png"));
        assert!(!glob_match("st1*", "xst1026.png"));
        assert!(glob_match("*.png", "a.png"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(glob_match("boards/*", "boards/x/y.jpg"));
        assert!(glob_match("猫*", "猫1.jpg"));
    }

    #[test]
    fn parses_terms() {
        let f = Filter::parse(
            "class=knot status=reviewed name=st1* by=alice date=2026-01-01..2026-01-02",
        )
        .unwrap();
        assert_eq!(f.class.as_deref(), Some("knot"));
        assert_eq!(f.status, Some(ImageStatus::Reviewed));
        assert_eq!(f.since, Some(1_767_225_600_000));
        assert_eq!(f.until, Some(1_767_225_600_000 + 2 * 86_400_000));
        let f = Filter::parse("date=2026-01-01..").unwrap();
        assert!(f.since.is_some() && f.until.is_none());
        assert!(
            Filter::parse("colour=red")
                .unwrap_err()
                .contains("unknown filter key")
        );
        assert!(
            Filter::parse("status=done")
                .unwrap_err()
                .contains("unknown status")
        );
        assert!(
            Filter::parse("date=yesterday")
                .unwrap_err()
                .contains("YYYY-MM-DD")
        );
        assert!(Filter::parse("knot").unwrap_err().contains("key=value"));
    }
}

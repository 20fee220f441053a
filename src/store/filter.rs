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
//! | `score=0.3..0.6` | the newest model run predicted a box or class scoring in that band (ends included, either may be left open) |
//! | `boxes=0`, `boxes=5..`, `boxes=1..3` | the image shows that many boxes: its labels plus its open proposals |

use time::{Date, macros::format_description};

use crate::model::{ImageStatus, ModelError};
use crate::sanitize::for_terminal;

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
    /// A prediction of the newest run scores in this band (both ends included).
    pub score: Option<(f64, f64)>,
    /// Boxes shown (labels plus open proposals), both ends included.
    pub boxes: Option<(u64, u64)>,
    /// Open proposals count as shown boxes from this score up: the project's
    /// `prelabel_threshold`, which callers set (0 until they do).
    pub proposals_from: f64,
}

const TERMS: &str = "class, status, name, path, by, date, score, boxes";

/// A filter the user typed that cannot be used: the term, and what a good one looks like.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("filter term `{}` is not key=value (keys: {TERMS})", for_terminal(.0))]
    NotKeyValue(String),
    #[error("filter term `{}` has no value", for_terminal(.0))]
    NoValue(String),
    #[error("unknown filter key `{}` (keys: {TERMS})", for_terminal(.0))]
    UnknownKey(String),
    #[error(transparent)]
    Status(#[from] ModelError),
    #[error("date `{}` is not YYYY-MM-DD", for_terminal(.0))]
    Date(String),
    #[error("filter term `{}` is not a value or a range lo..hi: {hint}", for_terminal(.term))]
    NotRange { term: String, hint: &'static str },
    #[error("filter term `{}` has its ends the wrong way round", for_terminal(.0))]
    Reversed(String),
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        for term in s.split_whitespace() {
            let (k, v) = term
                .split_once('=')
                .ok_or_else(|| FilterError::NotKeyValue(term.to_string()))?;
            if v.is_empty() {
                return Err(FilterError::NoValue(term.to_string()));
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
                "score" => {
                    let hint = "scores are between 0 and 1, e.g. score=0.3..0.6";
                    let (lo, hi) = range(term, v, hint, |s| {
                        s.parse::<f64>().ok().filter(|x| (0.0..=1.0).contains(x))
                    })?;
                    f.score = Some((lo.unwrap_or(0.0), hi.unwrap_or(1.0)));
                }
                "boxes" => {
                    let hint = "box counts are whole numbers, e.g. boxes=0 or boxes=5..";
                    let (lo, hi) = range(term, v, hint, |s| s.parse::<u64>().ok())?;
                    f.boxes = Some((lo.unwrap_or(0), hi.unwrap_or(u64::MAX)));
                }
                other => return Err(FilterError::UnknownKey(other.to_string())),
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
        if let Some((lo, hi)) = self.score {
            let (a, b) = (
                arg(Value::Real(lo), &mut args),
                arg(Value::Real(hi), &mut args),
            );
            conds.push(format!(
                "i.id IN (SELECT p.image_id FROM prediction p
                          WHERE p.score BETWEEN {a} AND {b}
                            AND p.run_id = (SELECT max(d.run_id) FROM predicted d
                                            WHERE d.image_id = p.image_id))"
            ));
        }
        if let Some((lo, hi)) = self.boxes {
            let t = arg(Value::Real(self.proposals_from), &mut args);
            let a = arg(
                Value::Integer(i64::try_from(lo).unwrap_or(i64::MAX)),
                &mut args,
            );
            let b = arg(
                Value::Integer(i64::try_from(hi).unwrap_or(i64::MAX)),
                &mut args,
            );
            conds.push(format!(
                "((SELECT count(*) FROM annotation a WHERE a.image_id = i.id AND a.x0 IS NOT NULL)
                  + (SELECT count(*) FROM prediction p WHERE p.image_id = i.id AND p.x0 IS NOT NULL
                       AND p.score >= {t} AND {open})) BETWEEN {a} AND {b}",
                open = super::review::OPEN_PROPOSAL
            ));
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

/// `lo..hi`, `lo..`, `..hi` or one value; ends parsed by `parse`, `lo` not above `hi`.
fn range<T: PartialOrd + Copy>(
    term: &str,
    v: &str,
    hint: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(Option<T>, Option<T>), FilterError> {
    let bad = || FilterError::NotRange {
        term: term.to_string(),
        hint,
    };
    let (a, b) = v.split_once("..").unwrap_or((v, v));
    let end = |s: &str| -> Result<Option<T>, FilterError> {
        if s.is_empty() {
            Ok(None)
        } else {
            parse(s).map(Some).ok_or_else(bad)
        }
    };
    let (lo, hi) = (end(a)?, end(b)?);
    if let (Some(l), Some(h)) = (lo, hi)
        && l > h
    {
        return Err(FilterError::Reversed(term.to_string()));
    }
    Ok((lo, hi))
}

fn day_start(s: &str) -> Result<i64, FilterError> {
    let d = Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|_| FilterError::Date(s.to_string()))?;
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
                .to_string()
                .contains("unknown filter key")
        );
        assert!(
            Filter::parse("status=done")
                .unwrap_err()
                .to_string()
                .contains("unknown status")
        );
        assert!(
            Filter::parse("date=yesterday")
                .unwrap_err()
                .to_string()
                .contains("YYYY-MM-DD")
        );
        assert!(
            Filter::parse("knot")
                .unwrap_err()
                .to_string()
                .contains("key=value")
        );
    }

    #[test]
    fn parses_score_and_box_ranges() {
        let f = Filter::parse("score=0.3..0.6 boxes=5..").unwrap();
        assert_eq!(f.score, Some((0.3, 0.6)));
        assert_eq!(f.boxes, Some((5, u64::MAX)));
        assert_eq!(Filter::parse("boxes=0").unwrap().boxes, Some((0, 0)));
        assert_eq!(Filter::parse("boxes=..2").unwrap().boxes, Some((0, 2)));
        assert_eq!(
            Filter::parse("score=..0.4").unwrap().score,
            Some((0.0, 0.4))
        );
        for (bad, why) in [
            ("score=0.3..1.5", "between 0 and 1"),
            ("score=high", "between 0 and 1"),
            ("score=0.6..0.3", "wrong way round"),
            ("boxes=-1", "whole numbers"),
            ("boxes=5..2", "wrong way round"),
        ] {
            let e = Filter::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }
}

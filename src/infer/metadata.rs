//! What a model says about itself in its ONNX metadata. Ultralytics exports (detect and `-cls`
//! alike) write `names` as a Python dict literal (`{0: 'person', 1: 'bicycle'}`), `imgsz` as
//! `[h, w]`, `task` and `stride`; termtag reads them so a model needs no hand-written labels file.

use std::collections::BTreeMap;

/// The metadata keys termtag uses; all optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelMeta {
    /// Class id → name, from `names`.
    pub names: BTreeMap<usize, String>,
    /// `(w, h)` the model was exported for, from `imgsz`.
    pub imgsz: Option<(u32, u32)>,
    /// `detect`, `classify`, `segment`, `pose`, `obb`.
    pub task: Option<String>,
    pub stride: Option<u32>,
    /// Why a present key could not be read (shown, never fatal).
    pub problems: Vec<String>,
}

impl ModelMeta {
    /// Reads the keys from `lookup(key)`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ModelMeta {
        let mut m = ModelMeta::default();
        if let Some(v) = lookup("names") {
            match parse_names(&v) {
                Some(n) => m.names = n,
                None => m
                    .problems
                    .push("metadata `names` is neither a dict {0: 'a', …} nor a list".into()),
            }
        }
        if let Some(v) = lookup("imgsz") {
            match parse_imgsz(&v) {
                Some(s) => m.imgsz = Some(s),
                None => m
                    .problems
                    .push("metadata `imgsz` is not [h, w] or one number".into()),
            }
        }
        m.task = lookup("task").map(|t| t.trim().to_string());
        m.stride = lookup("stride").and_then(|s| s.trim().parse().ok());
        m
    }
}

/// `[640, 480]` (h, w) or `640` → `(w, h)`.
pub fn parse_imgsz(s: &str) -> Option<(u32, u32)> {
    let inner = s
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    let nums: Vec<u32> = inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match nums.as_slice() {
        [n] if *n > 0 => Some((*n, *n)),
        [h, w] if *h > 0 && *w > 0 => Some((*w, *h)),
        _ => None,
    }
}

/// A Python or JSON literal of class names: `{0: 'a', 1: "b's"}`, `{"0": "a"}` or `['a', 'b']`.
pub fn parse_names(s: &str) -> Option<BTreeMap<usize, String>> {
    let mut p = Parser {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let (open, close) = match p.peek()? {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => return None,
    };
    p.expect(open)?;
    let mut out = BTreeMap::new();
    let mut next_id = 0usize;
    loop {
        p.ws();
        if p.peek()? == close {
            p.i += 1;
            break;
        }
        let id = if open == b'{' {
            let id = match p.peek()? {
                b'\'' | b'"' => p.string()?.trim().parse().ok()?,
                _ => p.number()?,
            };
            p.ws();
            p.expect(b':')?;
            p.ws();
            id
        } else {
            next_id
        };
        out.insert(id, p.string()?);
        next_id += 1;
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            c if c == close => {}
            _ => return None,
        }
    }
    p.ws();
    (p.i == p.s.len()).then_some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }
    fn number(&mut self) -> Option<usize> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    /// A quoted string with Python/JSON escapes.
    fn string(&mut self) -> Option<String> {
        let q = self.peek().filter(|c| *c == b'\'' || *c == b'"')?;
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            if c == q {
                break;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let e = self.peek()?;
            self.i += 1;
            let ch = match e {
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                b'x' | b'u' => {
                    let n = if e == b'x' { 2 } else { 4 };
                    let hex = std::str::from_utf8(self.s.get(self.i..self.i + n)?).ok()?;
                    self.i += n;
                    char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                }
                other => char::from(other),
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        String::from_utf8(out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultralytics_names() {
        let n =
            parse_names("{0: 'person', 1: 'bicycle', 2: \"people's car\", 10: 'a\\'b'}").unwrap();
        assert_eq!(n[&0], "person");
        assert_eq!(n[&2], "people's car");
        assert_eq!(n[&10], "a'b");
        assert_eq!(n.len(), 4);
        let j = parse_names(r#"{"0": "cat", "1": "dog"}"#).unwrap();
        assert_eq!(j[&1], "dog");
        let l = parse_names("['cat', 'dog']").unwrap();
        assert_eq!(l[&1], "dog");
        assert!(parse_names("{0: 'a'").is_none());
        assert!(parse_names("{0: 'a'} trailing").is_none());
        assert!(parse_names("person").is_none());
    }

    #[test]
    fn imgsz_is_h_w() {
        assert_eq!(parse_imgsz("[480, 640]"), Some((640, 480)));
        assert_eq!(parse_imgsz("224"), Some((224, 224)));
        assert_eq!(parse_imgsz("[0, 1]"), None);
        let m = ModelMeta::from_lookup(|k| match k {
            "names" => Some("{0: 'square'}".into()),
            "imgsz" => Some("[64, 64]".into()),
            "task" => Some("detect".into()),
            "stride" => Some("32".into()),
            _ => None,
        });
        assert_eq!(m.names[&0], "square");
        assert_eq!(
            (m.imgsz, m.task.as_deref(), m.stride),
            (Some((64, 64)), Some("detect"), Some(32))
        );
    }
}

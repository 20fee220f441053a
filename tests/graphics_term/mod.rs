//! A terminal for tests: it parses what termtag writes for pictures — kitty graphics commands
//! (chunked, PNG or raw pixels with zlib, ids, placements, deletes, virtual placements shown by
//! Unicode placeholder cells), sixel and iTerm2 inline images, cursor moves, all optionally
//! inside tmux passthrough — keeps images and placements as a terminal would, and composes the
//! screen into pixels.
//! Anything it does not understand fails the test.

use std::collections::HashMap;
use std::io::Read;

use base64::Engine;
use image::{Rgba, RgbaImage};

#[derive(Debug, Clone, Copy)]
struct Placement {
    /// Top-left cell; unused for virtual placements.
    at: (u32, u32),
    /// Pixel offset inside the first cell (`X=`, `Y=`).
    off: (u32, u32),
    z: i64,
    /// Shown through placeholder cells only.
    virtual_: bool,
}

pub struct TestTerm {
    cell: (u32, u32),
    cols: u32,
    rows: u32,
    cursor: (u32, u32),
    /// What sixel and iTerm2 drew into the cells (opaque), transparent where nothing is.
    pixels: RgbaImage,
    images: HashMap<u32, RgbaImage>,
    placements: HashMap<(u32, u32), Placement>,
    /// A chunked kitty transmission in progress: its keys and the base64 so far.
    loading: Option<(HashMap<String, String>, Vec<u8>)>,
    /// Placeholder cells: (column, row) → (image id, image row, image column).
    placeholders: HashMap<(u32, u32), (u32, u32, u32)>,
}

fn keys(s: &str) -> HashMap<String, String> {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("bad key {kv:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn num(k: &HashMap<String, String>, key: &str, default: i64) -> i64 {
    k.get(key).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{key}={v}"))
    })
}

/// Position of the terminator `end` from `from`.
fn find(b: &[u8], from: usize, end: &[u8]) -> usize {
    b[from..]
        .windows(end.len())
        .position(|w| w == end)
        .map(|p| p + from)
        .unwrap_or_else(|| panic!("unterminated sequence at byte {from}"))
}

impl TestTerm {
    pub fn new(cols: u32, rows: u32, cell: (u32, u32)) -> TestTerm {
        TestTerm {
            cell,
            cols,
            rows,
            cursor: (0, 0),
            pixels: RgbaImage::new(cols * cell.0, rows * cell.1),
            images: HashMap::new(),
            placements: HashMap::new(),
            loading: None,
            placeholders: HashMap::new(),
        }
    }

    /// The screen cleared and resized: pixels drawn into cells and placements are gone; kitty
    /// keeps image data.
    pub fn clear(&mut self, cols: u32, rows: u32) {
        self.cols = cols;
        self.rows = rows;
        self.pixels = RgbaImage::new(cols * self.cell.0, rows * self.cell.1);
        self.placements.clear();
        self.placeholders.clear();
    }

    /// Text written into a cell covers what was drawn there.
    pub fn erase_cell(&mut self, cx: u32, cy: u32) {
        for y in cy * self.cell.1..(cy + 1) * self.cell.1 {
            for x in cx * self.cell.0..(cx + 1) * self.cell.0 {
                if x < self.pixels.width() && y < self.pixels.height() {
                    self.pixels.put_pixel(x, y, Rgba([0, 0, 0, 0]));
                }
            }
        }
    }

    /// Cells now holding kitty placeholders (set from the screen's cells).
    pub fn set_placeholders(&mut self, cells: HashMap<(u32, u32), (u32, u32, u32)>) {
        self.placeholders = cells;
    }

    pub fn feed(&mut self, b: &[u8]) {
        let mut i = 0;
        while i < b.len() {
            assert_eq!(
                b[i], 0x1b,
                "text where an escape sequence was expected at byte {i}"
            );
            match b.get(i + 1) {
                Some(b'[') => {
                    let end = (i + 2..b.len())
                        .find(|&j| (0x40..=0x7e).contains(&b[j]))
                        .expect("unterminated CSI");
                    let params = std::str::from_utf8(&b[i + 2..end]).unwrap();
                    assert_eq!(b[end], b'H', "unexpected CSI {params}{}", b[end] as char);
                    let (r, c) = params.split_once(';').unwrap();
                    self.cursor = (c.parse::<u32>().unwrap() - 1, r.parse::<u32>().unwrap() - 1);
                    i = end + 1;
                }
                Some(b'_') => {
                    let end = find(b, i, b"\x1b\\");
                    self.kitty(&b[i + 2..end]);
                    i = end + 2;
                }
                Some(b'P') if b[i..].starts_with(b"\x1bPtmux;") => {
                    // Passthrough: ends at the first ESC \ whose ESC is not doubled.
                    let mut j = i + 7;
                    let mut inner = Vec::new();
                    loop {
                        assert!(j < b.len(), "unterminated tmux passthrough");
                        if b[j] == 0x1b && b.get(j + 1) == Some(&0x1b) {
                            inner.push(0x1b);
                            j += 2;
                        } else if b[j] == 0x1b && b.get(j + 1) == Some(&b'\\') {
                            break;
                        } else {
                            assert_ne!(b[j], 0x1b, "lone ESC inside tmux passthrough");
                            inner.push(b[j]);
                            j += 1;
                        }
                    }
                    self.feed(&inner);
                    i = j + 2;
                }
                Some(b'P') => {
                    let end = find(b, i, b"\x1b\\");
                    self.sixel(&b[i + 2..end]);
                    i = end + 2;
                }
                Some(b']') => {
                    let end = find(b, i, b"\x07");
                    self.iterm2(&b[i + 2..end]);
                    i = end + 1;
                }
                other => panic!("unknown escape {:?} at byte {i}", other.map(|c| *c as char)),
            }
        }
    }

    fn kitty(&mut self, body: &[u8]) {
        assert_eq!(body[0], b'G', "APC that is not a kitty graphics command");
        let body = std::str::from_utf8(&body[1..]).unwrap();
        let (head, payload) = body.split_once(';').unwrap_or((body, ""));
        let k = keys(head);
        assert_eq!(
            k.get("q").map(String::as_str),
            Some("2"),
            "responses not suppressed: {head}"
        );
        let more = num(&k, "m", 0) == 1;
        if let Some((first, mut data)) = self.loading.take() {
            // A continuation chunk carries only m (and q).
            assert!(
                k.keys().all(|key| key == "m" || key == "q"),
                "continuation with keys: {head}"
            );
            assert!(payload.len() <= 4096, "chunk over 4096 bytes");
            data.extend_from_slice(payload.as_bytes());
            if more {
                self.loading = Some((first, data));
            } else {
                self.kitty_command(&first, &data);
            }
            return;
        }
        assert!(payload.len() <= 4096, "chunk over 4096 bytes");
        if more {
            self.loading = Some((k, payload.as_bytes().to_vec()));
        } else {
            self.kitty_command(&k, payload.as_bytes());
        }
    }

    fn kitty_command(&mut self, k: &HashMap<String, String>, payload: &[u8]) {
        let a = k.get("a").map_or("t", String::as_str);
        let id = num(k, "i", 0) as u32;
        match a {
            "t" | "T" => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .expect("base64 payload");
                let raw = if k.get("o").map(String::as_str) == Some("z") {
                    let mut out = Vec::new();
                    flate2::read::ZlibDecoder::new(&raw[..])
                        .read_to_end(&mut out)
                        .expect("zlib payload");
                    out
                } else {
                    raw
                };
                let (mut w, mut h) = (num(k, "s", 0) as u32, num(k, "v", 0) as u32);
                let rgba: Vec<u8> = match num(k, "f", 32) {
                    100 => {
                        let png =
                            image::load_from_memory_with_format(&raw, image::ImageFormat::Png)
                                .expect("PNG payload")
                                .to_rgba8();
                        assert!(
                            (w == 0 || w == png.width()) && (h == 0 || h == png.height()),
                            "s=, v= disagree with the PNG"
                        );
                        (w, h) = png.dimensions();
                        png.into_raw()
                    }
                    24 => {
                        assert_eq!(raw.len(), (w * h * 3) as usize, "RGB size");
                        raw.chunks_exact(3)
                            .flat_map(|p| [p[0], p[1], p[2], 255])
                            .collect()
                    }
                    32 => {
                        assert_eq!(raw.len(), (w * h * 4) as usize, "RGBA size");
                        raw
                    }
                    f => panic!("format f={f}"),
                };
                assert!(id != 0, "image without id");
                self.images
                    .insert(id, RgbaImage::from_raw(w, h, rgba).unwrap());
                if a == "T" {
                    self.place(k, id);
                }
            }
            "p" => {
                assert!(
                    self.images.contains_key(&id),
                    "placement of image {id}, which the terminal does not hold"
                );
                self.place(k, id);
            }
            "d" => match k.get("d").map_or("a", String::as_str) {
                "a" | "A" => self.placements.clear(),
                "i" => self.placements.retain(|(img, _), _| *img != id),
                "I" => {
                    self.placements.retain(|(img, _), _| *img != id);
                    self.images.remove(&id);
                }
                d => panic!("delete d={d}"),
            },
            a => panic!("kitty action a={a}"),
        }
    }

    fn place(&mut self, k: &HashMap<String, String>, id: u32) {
        let off = (num(k, "X", 0) as u32, num(k, "Y", 0) as u32);
        assert!(
            off.0 < self.cell.0 && off.1 < self.cell.1,
            "offset {off:?} outside the cell"
        );
        let p = Placement {
            at: self.cursor,
            off,
            z: num(k, "z", 0),
            virtual_: num(k, "U", 0) == 1,
        };
        self.placements.insert((id, num(k, "p", 0) as u32), p);
    }

    fn sixel(&mut self, body: &[u8]) {
        let q = body
            .iter()
            .position(|&c| c == b'q')
            .expect("sixel without q");
        let params = std::str::from_utf8(&body[..q]).unwrap();
        assert_eq!(
            params.split(';').nth(1),
            Some("1"),
            "sixel must keep unset pixels (P2=1)"
        );
        let data = &body[q + 1..];
        let mut palette: HashMap<u32, [u8; 3]> = HashMap::new();
        let (ox, oy) = (self.cursor.0 * self.cell.0, self.cursor.1 * self.cell.1);
        let (mut x, mut band, mut colour) = (0u32, 0u32, 0u32);
        let (mut w, mut h) = (u32::MAX, u32::MAX);
        let mut i = 0;
        let number = |i: &mut usize| -> u32 {
            let s = *i;
            while *i < data.len() && data[*i].is_ascii_digit() {
                *i += 1;
            }
            std::str::from_utf8(&data[s..*i])
                .unwrap()
                .parse()
                .unwrap_or(0)
        };
        while i < data.len() {
            match data[i] {
                b'"' => {
                    i += 1;
                    let mut v = Vec::new();
                    loop {
                        v.push(number(&mut i));
                        if data.get(i) == Some(&b';') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    (w, h) = (v[2], v[3]);
                }
                b'#' => {
                    i += 1;
                    colour = number(&mut i);
                    if data.get(i) == Some(&b';') {
                        let mut v = Vec::new();
                        while data.get(i) == Some(&b';') {
                            i += 1;
                            v.push(number(&mut i));
                        }
                        assert_eq!(v[0], 2, "RGB colours only");
                        let c = |p: u32| ((p * 255 + 50) / 100) as u8;
                        palette.insert(colour, [c(v[1]), c(v[2]), c(v[3])]);
                    }
                }
                b'$' => {
                    x = 0;
                    i += 1;
                }
                b'-' => {
                    x = 0;
                    band += 1;
                    i += 1;
                }
                b'!' | b'?'..=b'~' => {
                    let n = if data[i] == b'!' {
                        i += 1;
                        number(&mut i)
                    } else {
                        1
                    };
                    let bits = data[i] - 63;
                    i += 1;
                    let rgb = *palette
                        .get(&colour)
                        .expect("colour used before it was defined");
                    for _ in 0..n {
                        for r in 0..6 {
                            let y = band * 6 + r;
                            if bits & (1 << r) != 0 && x < w && y < h {
                                let (px, py) = (ox + x, oy + y);
                                if px < self.pixels.width() && py < self.pixels.height() {
                                    self.pixels.put_pixel(
                                        px,
                                        py,
                                        Rgba([rgb[0], rgb[1], rgb[2], 255]),
                                    );
                                }
                            }
                        }
                        x += 1;
                    }
                }
                c => panic!("sixel byte {:?}", c as char),
            }
        }
    }

    fn iterm2(&mut self, body: &[u8]) {
        let body = std::str::from_utf8(body).unwrap();
        let rest = body
            .strip_prefix("1337;File=")
            .expect("OSC that is not iTerm2 File=");
        let (args, b64) = rest.split_once(':').expect("iTerm2 image without data");
        let a = keys(&args.replace(';', ","));
        assert_eq!(a.get("inline").map(String::as_str), Some("1"));
        let data = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            num(&a, "size", -1),
            data.len() as i64,
            "size= matches the file"
        );
        let img = image::load_from_memory(&data)
            .expect("iTerm2 image decodes")
            .to_rgba8();
        let px = |k: &str| {
            a.get(k)
                .and_then(|v| v.strip_suffix("px"))
                .map(|v| v.parse::<u32>().unwrap())
        };
        assert_eq!(
            (px("width"), px("height")),
            (Some(img.width()), Some(img.height())),
            "shown at its own size"
        );
        let (ox, oy) = (self.cursor.0 * self.cell.0, self.cursor.1 * self.cell.1);
        for (x, y, p) in img.enumerate_pixels() {
            if ox + x < self.pixels.width() && oy + y < self.pixels.height() {
                self.pixels.put_pixel(ox + x, oy + y, *p);
            }
        }
    }

    /// The screen as pixels: what was drawn into cells, then kitty placements by z-index.
    pub fn compose(&self) -> RgbaImage {
        assert!(
            self.loading.is_none(),
            "a kitty transmission was left unfinished"
        );
        let mut out = self.pixels.clone();
        let mut order: Vec<_> = self
            .placements
            .iter()
            .filter(|(_, p)| !p.virtual_)
            .collect();
        order.sort_by_key(|((id, _), p)| (p.z, *id));
        for ((id, _), p) in order {
            let img = &self.images[id];
            let (ox, oy) = (
                p.at.0 * self.cell.0 + p.off.0,
                p.at.1 * self.cell.1 + p.off.1,
            );
            for (x, y, px) in img.enumerate_pixels() {
                if ox + x < out.width() && oy + y < out.height() {
                    blend(out.get_pixel_mut(ox + x, oy + y), *px);
                }
            }
        }
        // Placeholder cells show their part of a virtually placed image.
        for (&(cx, cy), &(id, row, col)) in &self.placeholders {
            if !self
                .placements
                .iter()
                .any(|((i, _), p)| *i == id && p.virtual_)
            {
                continue;
            }
            let img = &self.images[&id];
            for y in 0..self.cell.1 {
                for x in 0..self.cell.0 {
                    let (ix, iy) = (col * self.cell.0 + x, row * self.cell.1 + y);
                    if ix < img.width() && iy < img.height() {
                        out.put_pixel(
                            cx * self.cell.0 + x,
                            cy * self.cell.1 + y,
                            *img.get_pixel(ix, iy),
                        );
                    }
                }
            }
        }
        out
    }
}

fn blend(dst: &mut Rgba<u8>, src: Rgba<u8>) {
    let a = u32::from(src[3]);
    for c in 0..3 {
        dst[c] = ((u32::from(src[c]) * a + u32::from(dst[c]) * (255 - a)) / 255) as u8;
    }
    dst[3] = dst[3].max(src[3]);
}

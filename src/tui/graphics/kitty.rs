//! The kitty graphics protocol (kitty, Ghostty, WezTerm, Konsole). Each display-size picture is
//! sent once, as PNG (`f=100`) and chunked, under its own image id; the overlay is a second,
//! mostly transparent image placed above it (higher z-index) over the same cells, so a box edit
//! sends only the overlay. The last few pictures stay in the terminal: going back to one costs a
//! placement. Inside tmux the pictures are virtual placements shown through Unicode placeholder
//! cells (U+10EEEE, `U=1`), wrapped for passthrough, and the overlay is drawn as cells.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use base64::Engine;

use super::{Driver, Scene, Shown, cursor_to, wrap};

/// Pictures kept in the terminal for going back.
const KEEP: usize = 4;
/// Pictures encoded ahead (the prefetched next images).
const PREPARED: usize = 3;
/// Base64 bytes per chunk, the protocol's limit.
const CHUNK: usize = 4096;

pub struct Kitty {
    tmux: bool,
    placeholders: bool,
    next_id: u32,
    /// Pictures the terminal holds: (scene key, image id), oldest first.
    held: VecDeque<(u64, u32)>,
    /// The picture placed on screen: image id and top-left cell.
    placed: Option<(u32, (u16, u16))>,
    /// The overlay on screen: image id and what it shows.
    shown_overlay: Option<(u32, u64)>,
    /// Overlays the terminal holds: image id, what it shows, its picture's id, and where it
    /// goes (cell and pixel offset in the cell from the picture's corner), oldest first.
    overlays: VecDeque<Overlaid>,
    /// The screen was cleared: remove every placement before placing again.
    wipe: bool,
    /// Payloads encoded ahead: (scene key, base64 PNG).
    prepared: VecDeque<(u64, Vec<u8>)>,
}

impl Kitty {
    pub fn new(tmux: bool, placeholders: bool) -> Kitty {
        Kitty {
            tmux,
            placeholders,
            // Ids differ between termtag processes sharing a terminal; placeholders carry the
            // id in a 24-bit colour.
            next_id: 0x1_0000 + (std::process::id() & 0x7fff) * 0x100,
            held: VecDeque::new(),
            placed: None,
            shown_overlay: None,
            overlays: VecDeque::new(),
            wipe: false,
            prepared: VecDeque::new(),
        }
    }

    fn alloc(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = if id >= 0xff_ffff { 0x1_0000 } else { id + 1 };
        id
    }

    fn command(&self, out: &mut Vec<u8>, keys: &str) {
        wrap(out, self.tmux, format!("\x1b_G{keys},q=2\x1b\\").as_bytes());
    }

    /// Sends a base64 payload in chunks; `keys` go on the first chunk.
    fn transmit(&self, out: &mut Vec<u8>, keys: &str, b64: &[u8]) {
        let chunks: Vec<&[u8]> = b64.chunks(CHUNK).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let more = u8::from(i + 1 < chunks.len());
            let head = if i == 0 {
                format!("{keys},q=2,m={more}")
            } else {
                format!("q=2,m={more}")
            };
            let mut seq = format!("\x1b_G{head};").into_bytes();
            seq.extend_from_slice(chunk);
            seq.extend_from_slice(b"\x1b\\");
            wrap(out, self.tmux, &seq);
        }
    }

    /// The terminal's id for this picture, sending it first when the terminal does not hold it.
    fn picture(&mut self, s: &Scene, out: &mut Vec<u8>) -> u32 {
        if let Some(pos) = self.held.iter().position(|(k, _)| *k == s.key) {
            let entry = self.held.remove(pos).expect("position is in range");
            self.held.push_back(entry);
            return entry.1;
        }
        let id = self.alloc();
        let b64 = match self.prepared.iter().position(|(k, _)| *k == s.key) {
            Some(pos) => self.prepared.remove(pos).expect("position is in range").1,
            None => payload(s.base, false),
        };
        self.transmit(out, &format!("a=t,f=100,i={id}"), &b64);
        self.held.push_back((s.key, id));
        while self.held.len() > KEEP {
            let (_, old) = self.held.pop_front().expect("longer than KEEP");
            if self.placed.is_some_and(|p| p.0 == old) {
                self.placed = None;
            }
            self.command(out, &format!("a=d,d=I,i={old}"));
        }
        id
    }

    /// Takes the overlay off the screen; the terminal keeps it for going back.
    fn hide_overlay(&mut self, out: &mut Vec<u8>) {
        if let Some((id, _)) = self.shown_overlay.take() {
            self.command(out, &format!("a=d,d=i,i={id}"));
        }
    }
}

impl Driver for Kitty {
    fn frame(&mut self, scene: Option<&Scene>, out: &mut Vec<u8>) {
        if self.wipe {
            self.wipe = false;
            self.command(out, "a=d,d=a");
            self.placed = None;
            self.shown_overlay = None;
        }
        let Some(s) = scene else {
            if let Some((id, _)) = self.placed.take() {
                self.command(out, &format!("a=d,d=i,i={id}"));
            }
            self.hide_overlay(out);
            return;
        };
        let id = self.picture(s, out);
        let (w, h) = s.base.dimensions();
        if self.placed != Some((id, s.at)) {
            if let Some((old, _)) = self.placed.filter(|p| p.0 != id) {
                self.command(out, &format!("a=d,d=i,i={old}"));
            }
            if self.placeholders {
                let (cols, rows) = s.cells();
                self.command(out, &format!("a=p,U=1,i={id},p=1,c={cols},r={rows}"));
            } else {
                cursor_to(out, s.at.0, s.at.1);
                self.command(out, &format!("a=p,i={id},p=1,z=1,C=1"));
            }
            self.placed = Some((id, s.at));
        }
        if self.placeholders {
            return;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        (format!("{:?}", s.overlay), w, h, s.at, id).hash(&mut hasher);
        let what = hasher.finish();
        if self.shown_overlay.is_some_and(|o| o.1 == what) {
            return;
        }
        let old = self.shown_overlay.take();
        if let Some(ov) = self.overlays.iter().find(|o| o.1 == what) {
            // Back to a picture whose overlay the terminal still holds.
            let (ov, cell) = (ov.0, ov.3);
            cursor_to(out, s.at.0 + cell.0, s.at.1 + cell.1);
            self.command(out, &format!("a=p,i={ov},p=1,z=2,C=1{}", offset(cell)));
            self.shown_overlay = Some((ov, what));
        } else if !s.overlay.is_empty() {
            let mut layer = image::RgbaImage::new(w, h);
            s.overlay.paint_pixels(&mut layer);
            if let Some((x, y, lw, lh)) = painted(&layer) {
                let (cw, ch) = (u32::from(s.cell.0.max(1)), u32::from(s.cell.1.max(1)));
                let part = image::imageops::crop_imm(&layer, x, y, lw, lh).to_image();
                let cell = ((x / cw) as u16, (y / ch) as u16, x % cw, y % ch);
                let ov = self.alloc();
                cursor_to(out, s.at.0 + cell.0, s.at.1 + cell.1);
                self.transmit(
                    out,
                    &format!("a=T,f=100,i={ov},p=1,z=2,C=1{}", offset(cell)),
                    &payload(&part, true),
                );
                self.overlays.push_back((ov, what, id, cell));
                self.shown_overlay = Some((ov, what));
                while self.overlays.len() > KEEP {
                    let (gone, ..) = self.overlays.pop_front().expect("longer than KEEP");
                    self.command(out, &format!("a=d,d=I,i={gone}"));
                }
            }
        }
        // Taken away after the new one is up, so the boxes never blink. An overlay of another
        // picture is kept for going back; one of this picture is gone for good.
        if let Some((old, _)) = old {
            let same_picture = self.overlays.iter().any(|o| o.0 == old && o.2 == id);
            if same_picture {
                self.overlays.retain(|o| o.0 != old);
                self.command(out, &format!("a=d,d=I,i={old}"));
            } else {
                self.command(out, &format!("a=d,d=i,i={old}"));
            }
        }
    }

    fn reset(&mut self) {
        self.wipe = true;
    }

    fn prepare(&mut self, key: u64, base: &image::RgbaImage, _cell: (u16, u16)) {
        let known = |k: &u64| *k == key;
        if self.held.iter().any(|(k, _)| known(k)) || self.prepared.iter().any(|(k, _)| known(k)) {
            return;
        }
        self.prepared.push_back((key, payload(base, false)));
        while self.prepared.len() > PREPARED {
            self.prepared.pop_front();
        }
    }

    fn shown(&self) -> Shown {
        match self.placed {
            Some((id, _)) if self.placeholders => Shown::Placeholder(id),
            _ => Shown::Pixels,
        }
    }
}

type Overlaid = (u32, u64, u32, (u16, u16, u32, u32));

/// A picture as kitty receives it (`f=100`): PNG, base64. Smaller than zlib-compressed raw
/// pixels, since PNG's filters predict each pixel from its neighbours (figures in
/// `benches/tui.rs`). `alpha`: keep transparency (the overlay).
pub fn payload(img: &image::RgbaImage, alpha: bool) -> Vec<u8> {
    let (w, h) = img.dimensions();
    base64::engine::general_purpose::STANDARD
        .encode(super::png(img, (0, 0, w, h), alpha))
        .into_bytes()
}

/// Pixel offset keys for a placement inside its first cell.
fn offset((_, _, x, y): (u16, u16, u32, u32)) -> String {
    format!(",X={x},Y={y}")
}

/// The smallest rectangle holding every painted pixel: x, y, width, height.
fn painted(layer: &image::RgbaImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = layer.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (y, row) in layer.as_raw().chunks_exact(w as usize * 4).enumerate() {
        let mut xs = row
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, p)| p[3] != 0)
            .map(|(x, _)| x as u32);
        if let Some(first) = xs.next() {
            let last = xs.next_back().unwrap_or(first);
            x0 = x0.min(first);
            x1 = x1.max(last + 1);
            y0 = y0.min(y as u32);
            y1 = y as u32 + 1;
        }
    }
    (x1 > x0).then(|| (x0, y0, x1 - x0, y1 - y0))
}

/// The text of one placeholder cell: row and column of the picture, as diacritics; the cell's
/// foreground colour carries the image id.
pub fn placeholder(row: u16, col: u16) -> String {
    let d = |i: u16| DIACRITICS[usize::from(i).min(DIACRITICS.len() - 1)];
    format!("\u{10EEEE}{}{}", d(row), d(col))
}

/// Row and column diacritics for Unicode placeholders, from kitty's rowcolumn-diacritics.txt
/// (<https://sw.kovidgoyal.net/kitty/graphics-protocol/#unicode-placeholders>).
pub static DIACRITICS: [char; 297] = [
    '\u{305}',
    '\u{30D}',
    '\u{30E}',
    '\u{310}',
    '\u{312}',
    '\u{33D}',
    '\u{33E}',
    '\u{33F}',
    '\u{346}',
    '\u{34A}',
    '\u{34B}',
    '\u{34C}',
    '\u{350}',
    '\u{351}',
    '\u{352}',
    '\u{357}',
    '\u{35B}',
    '\u{363}',
    '\u{364}',
    '\u{365}',
    '\u{366}',
    '\u{367}',
    '\u{368}',
    '\u{369}',
    '\u{36A}',
    '\u{36B}',
    '\u{36C}',
    '\u{36D}',
    '\u{36E}',
    '\u{36F}',
    '\u{483}',
    '\u{484}',
    '\u{485}',
    '\u{486}',
    '\u{487}',
    '\u{592}',
    '\u{593}',
    '\u{594}',
    '\u{595}',
    '\u{597}',
    '\u{598}',
    '\u{599}',
    '\u{59C}',
    '\u{59D}',
    '\u{59E}',
    '\u{59F}',
    '\u{5A0}',
    '\u{5A1}',
    '\u{5A8}',
    '\u{5A9}',
    '\u{5AB}',
    '\u{5AC}',
    '\u{5AF}',
    '\u{5C4}',
    '\u{610}',
    '\u{611}',
    '\u{612}',
    '\u{613}',
    '\u{614}',
    '\u{615}',
    '\u{616}',
    '\u{617}',
    '\u{657}',
    '\u{658}',
    '\u{659}',
    '\u{65A}',
    '\u{65B}',
    '\u{65D}',
    '\u{65E}',
    '\u{6D6}',
    '\u{6D7}',
    '\u{6D8}',
    '\u{6D9}',
    '\u{6DA}',
    '\u{6DB}',
    '\u{6DC}',
    '\u{6DF}',
    '\u{6E0}',
    '\u{6E1}',
    '\u{6E2}',
    '\u{6E4}',
    '\u{6E7}',
    '\u{6E8}',
    '\u{6EB}',
    '\u{6EC}',
    '\u{730}',
    '\u{732}',
    '\u{733}',
    '\u{735}',
    '\u{736}',
    '\u{73A}',
    '\u{73D}',
    '\u{73F}',
    '\u{740}',
    '\u{741}',
    '\u{743}',
    '\u{745}',
    '\u{747}',
    '\u{749}',
    '\u{74A}',
    '\u{7EB}',
    '\u{7EC}',
    '\u{7ED}',
    '\u{7EE}',
    '\u{7EF}',
    '\u{7F0}',
    '\u{7F1}',
    '\u{7F3}',
    '\u{816}',
    '\u{817}',
    '\u{818}',
    '\u{819}',
    '\u{81B}',
    '\u{81C}',
    '\u{81D}',
    '\u{81E}',
    '\u{81F}',
    '\u{820}',
    '\u{821}',
    '\u{822}',
    '\u{823}',
    '\u{825}',
    '\u{826}',
    '\u{827}',
    '\u{829}',
    '\u{82A}',
    '\u{82B}',
    '\u{82C}',
    '\u{82D}',
    '\u{951}',
    '\u{953}',
    '\u{954}',
    '\u{F82}',
    '\u{F83}',
    '\u{F86}',
    '\u{F87}',
    '\u{135D}',
    '\u{135E}',
    '\u{135F}',
    '\u{17DD}',
    '\u{193A}',
    '\u{1A17}',
    '\u{1A75}',
    '\u{1A76}',
    '\u{1A77}',
    '\u{1A78}',
    '\u{1A79}',
    '\u{1A7A}',
    '\u{1A7B}',
    '\u{1A7C}',
    '\u{1B6B}',
    '\u{1B6D}',
    '\u{1B6E}',
    '\u{1B6F}',
    '\u{1B70}',
    '\u{1B71}',
    '\u{1B72}',
    '\u{1B73}',
    '\u{1CD0}',
    '\u{1CD1}',
    '\u{1CD2}',
    '\u{1CDA}',
    '\u{1CDB}',
    '\u{1CE0}',
    '\u{1DC0}',
    '\u{1DC1}',
    '\u{1DC3}',
    '\u{1DC4}',
    '\u{1DC5}',
    '\u{1DC6}',
    '\u{1DC7}',
    '\u{1DC8}',
    '\u{1DC9}',
    '\u{1DCB}',
    '\u{1DCC}',
    '\u{1DD1}',
    '\u{1DD2}',
    '\u{1DD3}',
    '\u{1DD4}',
    '\u{1DD5}',
    '\u{1DD6}',
    '\u{1DD7}',
    '\u{1DD8}',
    '\u{1DD9}',
    '\u{1DDA}',
    '\u{1DDB}',
    '\u{1DDC}',
    '\u{1DDD}',
    '\u{1DDE}',
    '\u{1DDF}',
    '\u{1DE0}',
    '\u{1DE1}',
    '\u{1DE2}',
    '\u{1DE3}',
    '\u{1DE4}',
    '\u{1DE5}',
    '\u{1DE6}',
    '\u{1DFE}',
    '\u{20D0}',
    '\u{20D1}',
    '\u{20D4}',
    '\u{20D5}',
    '\u{20D6}',
    '\u{20D7}',
    '\u{20DB}',
    '\u{20DC}',
    '\u{20E1}',
    '\u{20E7}',
    '\u{20E9}',
    '\u{20F0}',
    '\u{2CEF}',
    '\u{2CF0}',
    '\u{2CF1}',
    '\u{2DE0}',
    '\u{2DE1}',
    '\u{2DE2}',
    '\u{2DE3}',
    '\u{2DE4}',
    '\u{2DE5}',
    '\u{2DE6}',
    '\u{2DE7}',
    '\u{2DE8}',
    '\u{2DE9}',
    '\u{2DEA}',
    '\u{2DEB}',
    '\u{2DEC}',
    '\u{2DED}',
    '\u{2DEE}',
    '\u{2DEF}',
    '\u{2DF0}',
    '\u{2DF1}',
    '\u{2DF2}',
    '\u{2DF3}',
    '\u{2DF4}',
    '\u{2DF5}',
    '\u{2DF6}',
    '\u{2DF7}',
    '\u{2DF8}',
    '\u{2DF9}',
    '\u{2DFA}',
    '\u{2DFB}',
    '\u{2DFC}',
    '\u{2DFD}',
    '\u{2DFE}',
    '\u{2DFF}',
    '\u{A66F}',
    '\u{A67C}',
    '\u{A67D}',
    '\u{A6F0}',
    '\u{A6F1}',
    '\u{A8E0}',
    '\u{A8E1}',
    '\u{A8E2}',
    '\u{A8E3}',
    '\u{A8E4}',
    '\u{A8E5}',
    '\u{A8E6}',
    '\u{A8E7}',
    '\u{A8E8}',
    '\u{A8E9}',
    '\u{A8EA}',
    '\u{A8EB}',
    '\u{A8EC}',
    '\u{A8ED}',
    '\u{A8EE}',
    '\u{A8EF}',
    '\u{A8F0}',
    '\u{A8F1}',
    '\u{AAB0}',
    '\u{AAB2}',
    '\u{AAB3}',
    '\u{AAB7}',
    '\u{AAB8}',
    '\u{AABE}',
    '\u{AABF}',
    '\u{AAC1}',
    '\u{FE20}',
    '\u{FE21}',
    '\u{FE22}',
    '\u{FE23}',
    '\u{FE24}',
    '\u{FE25}',
    '\u{FE26}',
    '\u{10A0F}',
    '\u{10A38}',
    '\u{1D185}',
    '\u{1D186}',
    '\u{1D187}',
    '\u{1D188}',
    '\u{1D189}',
    '\u{1D1AA}',
    '\u{1D1AB}',
    '\u{1D1AC}',
    '\u{1D1AD}',
    '\u{1D242}',
    '\u{1D243}',
    '\u{1D244}',
];

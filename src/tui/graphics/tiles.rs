//! Protocols without layers (sixel, iTerm2): the overlay is painted into the picture, and after
//! the picture's full frame only the cells whose pixels changed are re-encoded, as cell-aligned
//! strips written at their cell positions. A new picture, position or cleared screen sends the
//! picture's full frame without overlay, then the overlay as strips: the full frames of the last
//! few pictures and of the prefetched ones are kept encoded, so going back or to a prefetched
//! picture encodes only the strips.

use image::{Rgba, RgbaImage};

use super::{Driver, Scene, Shown, cursor_to};

/// Encodes a rectangle of a picture for one protocol.
pub trait TileEncoder: Send {
    /// Appends the escape sequence that draws `img`'s pixels `x..x+w`, `y..y+h` at the cursor.
    /// Positions are of the whole picture, so that position-dependent work (dithering) gives a
    /// strip the same pixels as the full frame.
    fn encode(&self, img: &RgbaImage, rect: (u32, u32, u32, u32), out: &mut Vec<u8>);
}

/// Above this share of changed cells a full frame is cheaper than strips.
const FULL_FRAME_SHARE: f64 = 0.5;

struct Drawn {
    key: u64,
    at: (u16, u16),
    pixels: RgbaImage,
}

/// Full frames of pictures without their overlay kept: the prefetched next images and the last
/// few shown (going back).
const FRAMES: usize = 6;

pub struct Tiled<E> {
    enc: E,
    shown: Option<Drawn>,
    /// Full frames of pictures without their overlay (`at` unused), most recently used last.
    frames: Vec<(Drawn, Vec<u8>)>,
}

impl<E: TileEncoder> Tiled<E> {
    pub fn new(enc: E) -> Tiled<E> {
        Tiled {
            enc,
            shown: None,
            frames: Vec::new(),
        }
    }

    /// The full frame of `base` without overlay (encoded unless kept), now the most recent.
    fn base_frame(&mut self, key: u64, base: &RgbaImage, cell: (u32, u32)) -> &(Drawn, Vec<u8>) {
        match self.frames.iter().position(|f| f.0.key == key) {
            Some(i) => {
                let f = self.frames.remove(i);
                self.frames.push(f);
            }
            None => {
                let pixels = on_cells(base, cell);
                let mut bytes = Vec::new();
                self.enc
                    .encode(&pixels, (0, 0, pixels.width(), pixels.height()), &mut bytes);
                if self.frames.len() >= FRAMES {
                    self.frames.remove(0);
                }
                let at = (0, 0);
                self.frames.push((Drawn { key, at, pixels }, bytes));
            }
        }
        self.frames.last().expect("pushed above")
    }
}

/// The picture on whole cells: the part of the last column and row that the picture does not
/// fill is painted too, so nothing of an earlier picture stays there.
fn on_cells(picture: &RgbaImage, (cw, ch): (u32, u32)) -> RgbaImage {
    let (w, h) = picture.dimensions();
    let mut pixels = RgbaImage::from_pixel(
        w.div_ceil(cw) * cw,
        h.div_ceil(ch) * ch,
        Rgba([0, 0, 0, 255]),
    );
    image::imageops::replace(&mut pixels, picture, 0, 0);
    pixels
}

/// Changed cells as a rectangle: first column, first row, columns, rows.
type Rect4 = (u32, u32, u32, u32);

/// Cells of `cell` size whose pixels differ between `a` and `b`: runs per cell row, and runs
/// with the same columns on consecutive rows merged (a box's side is one rectangle).
pub fn changed_cells(a: &RgbaImage, b: &RgbaImage, cell: (u16, u16)) -> Vec<Rect4> {
    let (cw, ch) = (u32::from(cell.0.max(1)), u32::from(cell.1.max(1)));
    let (w, h) = b.dimensions();
    let (cols, rows) = (w.div_ceil(cw), h.div_ceil(ch));
    let mut done: Vec<Rect4> = Vec::new();
    let mut open: Vec<Rect4> = Vec::new();
    for row in 0..rows {
        let mut dirty = vec![false; cols as usize];
        for y in row * ch..((row + 1) * ch).min(h) {
            let (ra, rb) = (row_bytes(a, y), row_bytes(b, y));
            for (col, d) in dirty.iter_mut().enumerate() {
                if *d {
                    continue;
                }
                let x0 = col * cw as usize * 4;
                let x1 = ((col + 1) * cw as usize * 4).min(rb.len());
                *d = ra[x0..x1] != rb[x0..x1];
            }
        }
        let mut next_open = Vec::new();
        let mut col = 0;
        while col < cols {
            if !dirty[col as usize] {
                col += 1;
                continue;
            }
            let start = col;
            while col < cols && dirty[col as usize] {
                col += 1;
            }
            let n = col - start;
            match open.iter().position(|r| r.0 == start && r.2 == n) {
                Some(i) => {
                    let mut r = open.swap_remove(i);
                    r.3 += 1;
                    next_open.push(r);
                }
                None => next_open.push((start, row, n, 1)),
            }
        }
        done.append(&mut open);
        open = next_open;
    }
    done.append(&mut open);
    done.sort_by_key(|r| (r.1, r.0));
    done
}

fn row_bytes(img: &RgbaImage, y: u32) -> &[u8] {
    let stride = img.width() as usize * 4;
    &img.as_raw()[y as usize * stride..(y as usize + 1) * stride]
}

impl<E: TileEncoder> Driver for Tiled<E> {
    fn frame(&mut self, scene: Option<&Scene>, out: &mut Vec<u8>) {
        let Some(s) = scene else {
            // The screen draws over the cells; the next picture is a full frame.
            self.shown = None;
            return;
        };
        let mut picture = s.base.clone();
        s.overlay.paint_pixels(&mut picture);
        let (cw, ch) = (u32::from(s.cell.0.max(1)), u32::from(s.cell.1.max(1)));
        let pixels = on_cells(&picture, (cw, ch));
        let (w, h) = pixels.dimensions();
        // A new picture: its full frame (kept or encoded ahead when it was shown or prefetched
        // before), then the overlay as changed cells.
        let showing = self
            .shown
            .as_ref()
            .is_some_and(|p| p.key == s.key && p.at == s.at);
        if !showing {
            let (drawn, bytes) = self.base_frame(s.key, s.base, (cw, ch));
            let pixels = drawn.pixels.clone();
            cursor_to(out, s.at.0, s.at.1);
            out.extend_from_slice(bytes);
            self.shown = Some(Drawn {
                key: s.key,
                at: s.at,
                pixels,
            });
        }
        // Rectangles of changed cells when the terminal shows this picture at this place.
        let changed = match &self.shown {
            Some(p) if p.key == s.key && p.at == s.at && p.pixels.dimensions() == (w, h) => {
                Some(changed_cells(&p.pixels, &pixels, s.cell))
            }
            _ => None,
        };
        let total = w.div_ceil(cw) * h.div_ceil(ch);
        match changed {
            Some(rects)
                if f64::from(rects.iter().map(|r| r.2 * r.3).sum::<u32>())
                    <= FULL_FRAME_SHARE * f64::from(total) =>
            {
                for (col, row, n, m) in rects {
                    let (x, y) = (col * cw, row * ch);
                    cursor_to(out, s.at.0 + col as u16, s.at.1 + row as u16);
                    let size = ((n * cw).min(w - x), (m * ch).min(h - y));
                    self.enc.encode(&pixels, (x, y, size.0, size.1), out);
                }
            }
            _ => {
                cursor_to(out, s.at.0, s.at.1);
                self.enc.encode(&pixels, (0, 0, w, h), out);
            }
        }
        self.shown = Some(Drawn {
            key: s.key,
            at: s.at,
            pixels,
        });
    }

    fn reset(&mut self) {
        self.shown = None;
    }

    fn prepare(&mut self, key: u64, base: &RgbaImage, cell: (u16, u16)) {
        self.base_frame(
            key,
            base,
            (u32::from(cell.0.max(1)), u32::from(cell.1.max(1))),
        );
    }

    fn shown(&self) -> Shown {
        Shown::Pixels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_cells_become_rectangles() {
        let a = RgbaImage::new(40, 40);
        let mut b = a.clone();
        // Cells are 10×20: pixel (35, 5) is cell (3, 0); (35, 25) and (25, 25) are (3, 1) and
        // (2, 1), one run; (5, 5) and (5, 25) are one column, two rows.
        for (x, y) in [(35, 5), (35, 25), (25, 25), (5, 5), (5, 25)] {
            b.put_pixel(x, y, Rgba([1, 2, 3, 255]));
        }
        assert_eq!(
            changed_cells(&a, &b, (10, 20)),
            vec![(0, 0, 1, 2), (3, 0, 1, 1), (2, 1, 2, 1)]
        );
        assert!(changed_cells(&a, &a, (10, 20)).is_empty());
    }
}

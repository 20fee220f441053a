//! Protocols without layers (sixel, iTerm2): the overlay is painted into the picture, and after
//! the first full frame only the cells whose pixels changed are re-encoded, as cell-aligned strips
//! written at their cell positions. A new picture, position or cleared screen sends a full frame.

use image::RgbaImage;

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

pub struct Tiled<E> {
    enc: E,
    shown: Option<Drawn>,
}

impl<E: TileEncoder> Tiled<E> {
    pub fn new(enc: E) -> Tiled<E> {
        Tiled { enc, shown: None }
    }
}

/// A run of changed cells in one cell row: (first column, columns, row).
type Run = (u32, u32, u32);

/// Cells of `cell` size whose pixels differ between `a` and `b`, as runs per cell row.
pub fn changed_runs(a: &RgbaImage, b: &RgbaImage, cell: (u16, u16)) -> Vec<Run> {
    let (cw, ch) = (u32::from(cell.0.max(1)), u32::from(cell.1.max(1)));
    let (w, h) = b.dimensions();
    let (cols, rows) = (w.div_ceil(cw), h.div_ceil(ch));
    let mut runs = Vec::new();
    for row in 0..rows {
        let mut dirty = vec![false; cols as usize];
        for y in row * ch..((row + 1) * ch).min(h) {
            let (ra, rb) = (row_bytes(a, y), row_bytes(b, y));
            for (col, d) in dirty.iter_mut().enumerate() {
                if *d {
                    continue;
                }
                let x0 = col as usize * cw as usize * 4;
                let x1 = ((col + 1) * cw as usize * 4).min(rb.len());
                *d = ra[x0..x1] != rb[x0..x1];
            }
        }
        let mut col = 0;
        while col < cols {
            if dirty[col as usize] {
                let start = col;
                while col < cols && dirty[col as usize] {
                    col += 1;
                }
                runs.push((start, col - start, row));
            } else {
                col += 1;
            }
        }
    }
    runs
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
        let mut pixels = s.base.clone();
        s.overlay.paint_pixels(&mut pixels);
        let (w, h) = pixels.dimensions();
        let (cw, ch) = (u32::from(s.cell.0), u32::from(s.cell.1));
        // Strips of changed cells when the terminal shows this picture at this place.
        let runs = match &self.shown {
            Some(p) if p.key == s.key && p.at == s.at && p.pixels.dimensions() == (w, h) => {
                Some(changed_runs(&p.pixels, &pixels, s.cell))
            }
            _ => None,
        };
        let total = w.div_ceil(cw) * h.div_ceil(ch);
        match runs {
            Some(runs)
                if f64::from(runs.iter().map(|r| r.1).sum::<u32>())
                    <= FULL_FRAME_SHARE * f64::from(total) =>
            {
                for (col, n, row) in runs {
                    let (x, y) = (col * cw, row * ch);
                    cursor_to(out, s.at.0 + col as u16, s.at.1 + row as u16);
                    self.enc
                        .encode(&pixels, (x, y, (n * cw).min(w - x), ch.min(h - y)), out);
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

    fn shown(&self) -> Shown {
        Shown::Pixels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn changed_cells_become_runs_per_row() {
        let a = RgbaImage::new(40, 40);
        let mut b = a.clone();
        // Cells are 10×20: pixel (15, 5) is cell (1, 0); (35, 25) and (25, 25) are (3, 1), (2, 1).
        for (x, y) in [(15, 5), (35, 25), (25, 25)] {
            b.put_pixel(x, y, Rgba([1, 2, 3, 255]));
        }
        assert_eq!(changed_runs(&a, &b, (10, 20)), vec![(1, 1, 0), (2, 2, 1)]);
        assert!(changed_runs(&a, &a, (10, 20)).is_empty());
    }
}

//! Sixel (DEC, xterm `-ti vt340`, foot, WezTerm, mlterm, tmux 3.4+). A fixed 252-colour palette
//! (6 red × 7 green × 6 blue levels) with ordered dithering keyed to the picture position: photos
//! stay recognisable, and a strip re-encoded after a box edit has exactly the pixels the full
//! frame had there, so strips and frames never disagree.

use image::RgbaImage;

use super::tiles::TileEncoder;

const LEVELS: [u32; 3] = [6, 7, 6];
/// 4×4 Bayer matrix.
const BAYER: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

pub struct Sixel;

/// Palette index of a pixel at picture position (x, y).
fn quantise(px: &[u8], x: u32, y: u32) -> u8 {
    let t = (f32::from(BAYER[(y % 4) as usize][(x % 4) as usize]) + 0.5) / 16.0 - 0.5;
    let mut idx = 0u32;
    for c in 0..3 {
        let n = LEVELS[c];
        let v = f32::from(px[c]) * (n - 1) as f32 / 255.0 + t;
        let level = (v.round().max(0.0) as u32).min(n - 1);
        idx = idx * n + level;
    }
    idx as u8
}

/// The palette colour in percent, as sixel states it.
fn percent(idx: u8) -> [u32; 3] {
    let i = u32::from(idx);
    let levels = [
        i / (LEVELS[1] * LEVELS[2]),
        (i / LEVELS[2]) % LEVELS[1],
        i % LEVELS[2],
    ];
    [0, 1, 2].map(|c| (levels[c] * 100 + (LEVELS[c] - 1) / 2) / (LEVELS[c] - 1))
}

fn push_run(out: &mut Vec<u8>, ch: u8, n: usize) {
    if n >= 4 {
        out.extend_from_slice(format!("!{n}").as_bytes());
        out.push(ch);
    } else {
        out.extend(std::iter::repeat_n(ch, n));
    }
}

impl TileEncoder for Sixel {
    fn encode(&self, img: &RgbaImage, (x0, y0, w, h): (u32, u32, u32, u32), out: &mut Vec<u8>) {
        let idx: Vec<u8> = (y0..y0 + h)
            .flat_map(|y| (x0..x0 + w).map(move |x| (x, y)))
            .map(|(x, y)| quantise(&img.get_pixel(x, y).0, x, y))
            .collect();
        let mut used = [false; 256];
        for &i in &idx {
            used[usize::from(i)] = true;
        }
        // P2 = 1: pixels left at zero keep what is on screen, so a strip's last band does not
        // paint below the strip.
        out.extend_from_slice(format!("\x1bP0;1;0q\"1;1;{w};{h}").as_bytes());
        for (i, _) in used.iter().enumerate().filter(|(_, u)| **u) {
            let [r, g, b] = percent(i as u8);
            out.extend_from_slice(format!("#{i};2;{r};{g};{b}").as_bytes());
        }
        let w = w as usize;
        let mut bits: Vec<Vec<u8>> = vec![Vec::new(); 256];
        for band in 0..(h as usize).div_ceil(6) {
            let mut colours = Vec::new();
            for r in 0..6 {
                let y = band * 6 + r;
                if y >= h as usize {
                    break;
                }
                for x in 0..w {
                    let c = usize::from(idx[y * w + x]);
                    if bits[c].is_empty() {
                        bits[c] = vec![0; w];
                        colours.push(c);
                    }
                    bits[c][x] |= 1 << r;
                }
            }
            colours.sort_unstable();
            for (n, &c) in colours.iter().enumerate() {
                if n > 0 {
                    out.push(b'$');
                }
                out.extend_from_slice(format!("#{c}").as_bytes());
                let row = std::mem::take(&mut bits[c]);
                let end = row.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                let mut x = 0;
                while x < end {
                    let b = row[x];
                    let start = x;
                    while x < end && row[x] == b {
                        x += 1;
                    }
                    push_run(out, 63 + b, x - start);
                }
            }
            out.push(b'-');
        }
        out.extend_from_slice(b"\x1b\\");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_spans_black_to_white_and_keeps_grey_levels_apart() {
        assert_eq!(percent(0), [0, 0, 0]);
        assert_eq!(percent(251), [100, 100, 100]);
        let grey = |v: u8| {
            let mut hits = std::collections::BTreeSet::new();
            for y in 0..4 {
                for x in 0..4 {
                    hits.insert(quantise(&[v, v, v, 255], x, y));
                }
            }
            hits
        };
        assert_ne!(grey(60), grey(190), "different greys dither differently");
        assert_eq!(grey(0).len(), 1);
    }
}

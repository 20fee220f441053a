//! The demo's wood boards: a deterministic generator (same seed, same bytes) of planks with
//! `knot`s (round, dark, ringed, the grain bending around them) and `defect`s (irregular cracks),
//! with their ground-truth boxes. Distractors (pin knots, mineral streaks) are drawn but not
//! labelled, so a model has something to be unsure about.

use crate::model::{BBox, ImageLabels, Label};
use crate::rng::SplitMix;

pub const WIDTH: u32 = 384;
pub const HEIGHT: u32 = 256;
pub const CLASSES: [&str; 2] = ["knot", "defect"];

/// The boards' random numbers ([`SplitMix`]: they never change with a crate update).
struct Rng(SplitMix);

impl Rng {
    fn new(seed: u64, index: u64) -> Rng {
        let mut r = SplitMix(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        Rng(r)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.0.unit_f32()
    }
    fn below(&mut self, n: u32) -> u32 {
        self.0.below(u64::from(n)) as u32
    }
}

#[derive(Debug, Clone, Copy)]
struct Knot {
    x: f32,
    y: f32,
    rx: f32,
    ry: f32,
    /// Darkness 0..1: faint knots are the hard ones.
    dark: f32,
}

/// One generated board: its PNG file and its ground truth in pixels.
pub struct Board {
    pub png: Vec<u8>,
    /// (class index, x0, y0, x1, y1)
    pub objects: Vec<(usize, f32, f32, f32, f32)>,
}

impl Board {
    /// The ground truth as a format-neutral labelled image.
    pub fn labels(&self, key: &str) -> ImageLabels {
        let labels = self
            .objects
            .iter()
            .filter_map(|&(c, x0, y0, x1, y1)| {
                let (b, _) = BBox::clipped(
                    f64::from(x0) / f64::from(WIDTH),
                    f64::from(y0) / f64::from(HEIGHT),
                    f64::from(x1) / f64::from(WIDTH),
                    f64::from(y1) / f64::from(HEIGHT),
                )
                .ok()?;
                Some(Label {
                    class: CLASSES[c].to_string(),
                    bbox: Some(b),
                    score: None,
                })
            })
            .collect();
        ImageLabels {
            key: key.to_string(),
            width: WIDTH,
            height: HEIGHT,
            labels,
        }
    }
}

/// The file name of board `index`.
pub fn key(index: u32) -> String {
    format!("board-{index:03}.png")
}

fn overlaps(boxes: &[(usize, f32, f32, f32, f32)], b: (f32, f32, f32, f32)) -> bool {
    boxes.iter().any(|&(_, x0, y0, x1, y1)| {
        b.0 < x1 + 6.0 && x0 < b.2 + 6.0 && b.1 < y1 + 6.0 && y0 < b.3 + 6.0
    })
}

/// A crack: a jittered walk mostly along the grain, with a branch now and then; returns the
/// stamped points (x, y, half-width).
fn crack(rng: &mut Rng) -> Vec<(f32, f32, f32)> {
    let len = rng.range(28.0, 110.0);
    let mut angle = rng.range(-0.5, 0.5)
        + if rng.below(2) == 0 {
            0.0
        } else {
            std::f32::consts::PI
        };
    let (mut x, mut y) = (0.0f32, 0.0f32);
    let width = rng.range(0.9, 2.2);
    let mut pts = Vec::new();
    let mut walked = 0.0;
    let mut branches = Vec::new();
    while walked < len {
        angle += rng.range(-0.45, 0.45);
        x += angle.cos() * 1.5;
        y += angle.sin() * 1.5;
        walked += 1.5;
        // Thickest in the middle, tapering at both ends.
        let taper = (1.0 - (2.0 * walked / len - 1.0).powi(2)).max(0.15);
        pts.push((x, y, width * taper));
        if rng.below(40) == 0 {
            branches.push((x, y, angle + rng.range(-1.2, 1.2)));
        }
    }
    for (mut bx, mut by, mut a) in branches {
        let n = rng.range(6.0, 20.0) as usize;
        for i in 0..n {
            a += rng.range(-0.5, 0.5);
            bx += a.cos() * 1.5;
            by += a.sin() * 1.5;
            pts.push((bx, by, width * 0.6 * (1.0 - i as f32 / n as f32).max(0.2)));
        }
    }
    pts
}

/// Board `index` of the set drawn from `seed`.
pub fn board(seed: u64, index: u32) -> Board {
    let mut rng = Rng::new(seed, u64::from(index));
    let (w, h) = (WIDTH as f32, HEIGHT as f32);
    // Species tint: pale pine to darker oak.
    let base = [
        rng.range(188.0, 226.0),
        rng.range(138.0, 172.0),
        rng.range(88.0, 118.0),
    ];
    let period = rng.range(7.0, 13.0);
    let (f1, f2) = (rng.range(0.004, 0.012), rng.range(0.02, 0.045));
    let (a1, a2) = (rng.range(6.0, 22.0), rng.range(1.0, 4.0));
    // The literal is part of the boards' bytes (and of what the shipped model saw): keep it.
    #[allow(clippy::approx_constant)]
    let (p1, p2) = (rng.range(0.0, 6.28), rng.range(0.0, 6.28));
    let mut objects: Vec<(usize, f32, f32, f32, f32)> = Vec::new();

    let mut knots = Vec::new();
    let n_knots = [0, 1, 1, 2, 2, 3][rng.below(6) as usize];
    for _ in 0..n_knots * 4 {
        if knots.len() == n_knots {
            break;
        }
        let rx = rng.range(7.0, 22.0);
        let ry = rx * rng.range(0.6, 1.0);
        let (x, y) = (
            rng.range(rx + 4.0, w - rx - 4.0),
            rng.range(ry + 4.0, h - ry - 4.0),
        );
        let b = (x - rx - 1.0, y - ry - 1.0, x + rx + 1.0, y + ry + 1.0);
        if overlaps(&objects, b) {
            continue;
        }
        let dark = if rng.below(6) == 0 {
            rng.range(0.3, 0.5)
        } else {
            rng.range(0.6, 1.0)
        };
        knots.push(Knot { x, y, rx, ry, dark });
        objects.push((0, b.0, b.1, b.2, b.3));
    }
    // Pin knots: too small to label, easy to mistake.
    let mut pins = Vec::new();
    for _ in 0..rng.below(4) {
        let r = rng.range(1.5, 4.0);
        pins.push(Knot {
            x: rng.range(8.0, w - 8.0),
            y: rng.range(8.0, h - 8.0),
            rx: r,
            ry: r * 0.8,
            dark: rng.range(0.5, 0.9),
        });
    }

    // Cracks are stamped into a darkness mask, then blended into the grain.
    let mut crack_mask = vec![0f32; (WIDTH * HEIGHT) as usize];
    let n_defects = [0, 0, 1, 1, 1, 2][rng.below(6) as usize];
    let mut placed = 0;
    for _ in 0..n_defects * 4 {
        if placed == n_defects {
            break;
        }
        let pts = crack(&mut rng);
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for &(x, y, r) in &pts {
            x0 = x0.min(x - r);
            y0 = y0.min(y - r);
            x1 = x1.max(x + r);
            y1 = y1.max(y + r);
        }
        let (cw, ch) = (x1 - x0, y1 - y0);
        if cw > w - 8.0 || ch > h - 8.0 {
            continue;
        }
        let ox = rng.range(4.0 - x0, w - 4.0 - x1);
        let oy = rng.range(4.0 - y0, h - 4.0 - y1);
        let b = (x0 + ox - 1.0, y0 + oy - 1.0, x1 + ox + 1.0, y1 + oy + 1.0);
        if overlaps(&objects, b) {
            continue;
        }
        for &(x, y, r) in &pts {
            stamp(&mut crack_mask, x + ox, y + oy, r, 1.0);
        }
        objects.push((1, b.0, b.1, b.2, b.3));
        placed += 1;
    }
    // Mineral streaks: faint, thin, short, along the grain; not defects.
    for _ in 0..rng.below(3) {
        let (start, mut y) = (rng.range(10.0, w - 60.0), rng.range(10.0, h - 10.0));
        let end = start + rng.range(15.0, 50.0);
        let mut x = start;
        while x < end {
            stamp(&mut crack_mask, x, y, 0.7, 0.35);
            x += 1.0;
            y += rng.range(-0.3, 0.3);
        }
    }

    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    let all_knots: Vec<Knot> = knots.iter().chain(pins.iter()).copied().collect();
    for py in 0..HEIGHT {
        for px in 0..WIDTH {
            let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
            // The grain line index, bent by slow waves and pushed around each knot.
            let mut t = y + a1 * (x * f1 + p1).sin() + a2 * (x * f2 + p2).sin();
            for k in &all_knots {
                let (dx, dy) = ((x - k.x) / (k.rx * 3.0), (y - k.y) / (k.ry * 2.2));
                let e = (-(dx * dx + dy * dy)).exp();
                t -= (y - k.y).signum() * k.ry * 1.6 * e;
            }
            let phase = t / period;
            let ring = 0.5 + 0.5 * (phase * std::f32::consts::TAU).sin();
            let late = ring.powi(6); // thin dark latewood lines
            let fine = 0.5 + 0.5 * (x * 0.9 + t * 3.1).sin() * (y * 0.37).cos();
            let noise = (rng.0.next_u64() & 0xff) as f32 / 255.0 - 0.5;
            let mut shade = 1.0 - 0.22 * late - 0.05 * fine + 0.035 * noise;
            let mut color = base;
            for k in &all_knots {
                let (dx, dy) = ((x - k.x) / k.rx, (y - k.y) / k.ry);
                let d = (dx * dx + dy * dy).sqrt();
                if d < 1.25 {
                    // Dark heart, concentric rings, a darker rim, soft edge.
                    let inside = (1.0 - ((d - 0.95) / 0.25).clamp(0.0, 1.0)) * k.dark;
                    let rings = 0.85 + 0.15 * (d * 14.0).sin();
                    let rim = (-(d - 0.92).powi(2) / 0.01).exp() * 0.25;
                    let knot_shade = (0.42 + 0.25 * d) * rings - rim;
                    shade = shade * (1.0 - inside) + knot_shade * inside;
                    color = [
                        color[0] * (1.0 - 0.15 * inside),
                        color[1] * (1.0 - 0.2 * inside),
                        color[2] * (1.0 - 0.3 * inside),
                    ];
                }
            }
            let c = crack_mask[(py * WIDTH + px) as usize].min(1.0);
            shade *= 1.0 - 0.78 * c;
            let i = ((py * WIDTH + px) * 3) as usize;
            for ch in 0..3 {
                rgb[i + ch] = (color[ch] * shade).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Board {
        png: encode_png(&rgb),
        objects,
    }
}

/// Adds darkness `strength` in a disc of radius `r` (anti-aliased) around (cx, cy).
fn stamp(mask: &mut [f32], cx: f32, cy: f32, r: f32, strength: f32) {
    let reach = r + 1.0;
    let (xa, xb) = (
        (cx - reach).floor().max(0.0),
        (cx + reach).ceil().min(WIDTH as f32 - 1.0),
    );
    let (ya, yb) = (
        (cy - reach).floor().max(0.0),
        (cy + reach).ceil().min(HEIGHT as f32 - 1.0),
    );
    let mut py = ya;
    while py <= yb {
        let mut px = xa;
        while px <= xb {
            let d = ((px + 0.5 - cx).powi(2) + (py + 0.5 - cy).powi(2)).sqrt();
            let v = (r + 0.5 - d).clamp(0.0, 1.0) * strength;
            let i = (py as u32 * WIDTH + px as u32) as usize;
            mask[i] = mask[i].max(v);
            px += 1.0;
        }
        py += 1.0;
    }
}

fn encode_png(rgb: &[u8]) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
        .expect("an in-memory PNG of a fixed size always encodes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_board() {
        let a = board(13, 4);
        let b = board(13, 4);
        assert_eq!(a.png, b.png);
        assert_eq!(a.objects, b.objects);
        assert_ne!(board(14, 4).png, a.png);
        assert_ne!(board(13, 5).png, a.png);
    }

    #[test]
    fn boxes_lie_on_the_board_and_both_classes_occur() {
        let mut seen = [0usize; 2];
        for i in 0..40 {
            let b = board(13, i);
            let im = image::load_from_memory(&b.png).unwrap();
            assert_eq!((im.width(), im.height()), (WIDTH, HEIGHT));
            for &(c, x0, y0, x1, y1) in &b.objects {
                seen[c] += 1;
                assert!(x0 >= 0.0 && y0 >= 0.0 && x1 <= WIDTH as f32 && y1 <= HEIGHT as f32);
                assert!(x1 - x0 > 4.0 && y1 - y0 > 2.0, "{x0} {y0} {x1} {y1}");
            }
        }
        assert!(seen[0] > 20 && seen[1] > 10, "{seen:?}");
    }
}

//! What is drawn over the picture — boxes with their tags, the selection, the crosshair and the
//! box being drawn — decided once from the state, then painted either into a pixel layer (kitty,
//! sixel, iTerm2) or into cells (halfblocks, kitty placeholders).

use image::{Rgba, RgbaImage};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use crate::model::BBox;
use crate::sanitize::for_terminal;
use crate::theme::Theme;
use crate::tui::state::{Mode, State};

/// One box as it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayBox {
    pub bbox: BBox,
    pub color: Color,
    /// Dashed: a model's proposal (or the box being drawn).
    pub proposal: bool,
    /// Heavy: the selected box.
    pub selected: bool,
    /// Class, score and `?` for proposals; empty for the box being drawn.
    pub tag: String,
}

/// Everything drawn over the picture, in image coordinates (0–1) of the whole image.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// The visible part of the image.
    pub zoom: BBox,
    pub boxes: Vec<OverlayBox>,
    /// Cursor while drawing a box.
    pub crosshair: Option<(f64, f64)>,
}

impl Default for Overlay {
    fn default() -> Overlay {
        Overlay {
            zoom: BBox::FULL,
            boxes: Vec::new(),
            crosshair: None,
        }
    }
}

impl Overlay {
    /// The overlay the screen shows for `state`: the only place that decides it.
    pub fn of(state: &State, theme: &Theme) -> Overlay {
        let mut o = Overlay {
            zoom: state.zoom.unwrap_or(BBox::FULL),
            ..Overlay::default()
        };
        let item = state.current_item().map(|q| q.id);
        if let Some(cur) = state.current.as_ref().filter(|c| Some(c.id) == item) {
            for (i, it) in cur.items.iter().enumerate() {
                let Some(bbox) = it.bbox else { continue };
                let class = state.class_index(&it.class).unwrap_or(0);
                let selected = state.selected == Some(i);
                let mut tag = for_terminal(&it.class);
                if let Some(s) = it.score {
                    tag.push_str(&format!(" {s:.2}"));
                }
                if it.is_proposal() {
                    tag.push('?');
                }
                o.boxes.push(OverlayBox {
                    bbox,
                    color: if selected {
                        theme.selected
                    } else {
                        theme.class_color(class)
                    },
                    proposal: it.is_proposal(),
                    selected,
                    tag,
                });
            }
        }
        if let Mode::Draw { cursor, first } = &state.mode {
            o.crosshair = Some(*cursor);
            if let Some(f) = first
                && let Ok((bbox, _)) = BBox::clipped(f.0, f.1, cursor.0, cursor.1)
            {
                o.boxes.push(OverlayBox {
                    bbox,
                    color: theme.selected,
                    proposal: true,
                    selected: true,
                    tag: String::new(),
                });
            }
        }
        o
    }

    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty() && self.crosshair.is_none()
    }

    /// Paints into a picture of the zoomed region (a transparent layer or the picture itself).
    pub fn paint_pixels(&self, img: &mut RgbaImage) {
        for b in &self.boxes {
            pixel_box(img, &self.zoom, b);
        }
        if let Some(c) = self.crosshair {
            pixel_crosshair(img, &self.zoom, c);
        }
    }

    /// Paints as cells over a picture that fills `rect`.
    pub fn paint_cells(&self, buf: &mut Buffer, rect: Rect, theme: &Theme) {
        for b in &self.boxes {
            cell_box(buf, rect, &self.zoom, b, theme);
        }
        if let Some(c) = self.crosshair
            && let Some(pos) = to_cell(rect, &self.zoom, c.0, c.1)
        {
            buf[pos].set_char('┼').set_fg(theme.selected);
        }
    }
}

fn to_px(v: f64, lo: f64, span: f64, size: u32) -> i64 {
    (((v - lo) / span) * f64::from(size)).round() as i64
}

/// Solid lines for labels, dashed for proposals, thicker when selected, plus a filled corner
/// tag so kind and selection read without colour.
fn pixel_box(img: &mut RgbaImage, zoom: &BBox, b: &OverlayBox) {
    let (w, h) = (img.width(), img.height());
    let x0 = to_px(b.bbox.x0, zoom.x0, zoom.width(), w);
    let x1 = to_px(b.bbox.x1, zoom.x0, zoom.width(), w) - 1;
    let y0 = to_px(b.bbox.y0, zoom.y0, zoom.height(), h);
    let y1 = to_px(b.bbox.y1, zoom.y0, zoom.height(), h) - 1;
    let thick = if b.selected { 4 } else { 2 };
    let [r, g, bl] = crate::theme::rgb(b.color);
    let color = Rgba([r, g, bl, 255]);
    let mut put = |x: i64, y: i64| {
        if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
            img.put_pixel(x as u32, y as u32, color);
        }
    };
    let dash = |along: i64| !b.proposal || (along / 8) % 2 == 0;
    // Only the part of an edge that is on the picture is walked.
    let (cx0, cx1) = (x0.max(0), x1.min(i64::from(w) - 1));
    let (cy0, cy1) = (y0.max(0), y1.min(i64::from(h) - 1));
    for t in 0..thick {
        for x in cx0..=cx1 {
            if dash(x - x0) {
                put(x, y0 + t);
                put(x, y1 - t);
            }
        }
        for y in cy0..=cy1 {
            if dash(y - y0) {
                put(x0 + t, y);
                put(x1 - t, y);
            }
        }
    }
    let tag = if b.selected { 12 } else { 7 };
    for y in y0..y0 + tag {
        for x in x0..x0 + tag {
            put(x, y);
        }
    }
}

fn pixel_crosshair(img: &mut RgbaImage, zoom: &BBox, (cx, cy): (f64, f64)) {
    let (w, h) = (img.width(), img.height());
    let x = to_px(cx, zoom.x0, zoom.width(), w);
    let y = to_px(cy, zoom.y0, zoom.height(), h);
    let white = Rgba([255, 255, 255, 255]);
    if y >= 0 && (y as u32) < h {
        for i in (0..w).filter(|i| (i / 4) % 2 == 0) {
            img.put_pixel(i, y as u32, white);
        }
    }
    if x >= 0 && (x as u32) < w {
        for j in (0..h).filter(|j| (j / 4) % 2 == 0) {
            img.put_pixel(x as u32, j, white);
        }
    }
}

fn to_cell(rect: Rect, zoom: &BBox, x: f64, y: f64) -> Option<(u16, u16)> {
    let cx = ((x - zoom.x0) / zoom.width() * f64::from(rect.width)).floor();
    let cy = ((y - zoom.y0) / zoom.height() * f64::from(rect.height)).floor();
    if cx < 0.0 || cy < 0.0 || rect.is_empty() {
        return None;
    }
    let (cx, cy) = (
        (cx as u16).min(rect.width.saturating_sub(1)),
        (cy as u16).min(rect.height.saturating_sub(1)),
    );
    Some((rect.x + cx, rect.y + cy))
}

/// A box as cell borders: solid for labels, dashed for proposals, heavy when selected; its tag
/// written on the top edge.
fn cell_box(buf: &mut Buffer, rect: Rect, zoom: &BBox, b: &OverlayBox, theme: &Theme) {
    let bb = &b.bbox;
    let (Some((x0, y0)), Some((x1, y1))) = (
        to_cell(rect, zoom, bb.x0.max(zoom.x0), bb.y0.max(zoom.y0)),
        to_cell(
            rect,
            zoom,
            (bb.x1.min(zoom.x1) - 1e-9).max(zoom.x0),
            (bb.y1.min(zoom.y1) - 1e-9).max(zoom.y0),
        ),
    ) else {
        return;
    };
    let (h, v, tl, tr, bl, br) = match (b.selected, b.proposal) {
        (true, _) => ('━', '┃', '┏', '┓', '┗', '┛'),
        (false, true) => ('╌', '╎', '┌', '┐', '└', '┘'),
        (false, false) => ('─', '│', '┌', '┐', '└', '┘'),
    };
    let mut put = |x: u16, y: u16, c: char| {
        buf[(x, y)].set_char(c).set_fg(b.color);
    };
    for x in x0..=x1 {
        put(x, y0, h);
        put(x, y1, h);
    }
    for y in y0..=y1 {
        put(x0, y, v);
        put(x1, y, v);
    }
    put(x0, y0, tl);
    put(x1, y0, tr);
    put(x0, y1, bl);
    put(x1, y1, br);
    let room = usize::from(rect.x + rect.width - x0).saturating_sub(1);
    let style = Style::default()
        .fg(theme.bar_fg)
        .bg(b.color)
        .add_modifier(Modifier::BOLD);
    for (i, ch) in b.tag.chars().take(room).enumerate() {
        buf[(x0 + 1 + i as u16, y0)].set_char(ch).set_style(style);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(proposal: bool) -> Overlay {
        Overlay {
            boxes: vec![OverlayBox {
                bbox: BBox {
                    x0: 0.1,
                    y0: 0.1,
                    x1: 0.9,
                    y1: 0.5,
                },
                color: Color::Rgb(255, 0, 0),
                proposal,
                selected: false,
                tag: "knot".into(),
            }],
            ..Overlay::default()
        }
    }

    #[test]
    fn labels_are_solid_and_proposals_dashed() {
        let black = Rgba([0, 0, 0, 255]);
        let red = Rgba([255, 0, 0, 255]);
        let mut img = RgbaImage::from_pixel(100, 100, black);
        boxed(false).paint_pixels(&mut img);
        assert!((10..90).all(|x| *img.get_pixel(x, 10) == red), "solid");
        assert_eq!(*img.get_pixel(50, 30), black, "inside untouched");
        let mut img = RgbaImage::from_pixel(100, 100, black);
        boxed(true).paint_pixels(&mut img);
        let gaps = (20..90).filter(|&x| *img.get_pixel(x, 10) != red).count();
        assert!(gaps > 20, "dashed top edge has gaps: {gaps}");
    }

    #[test]
    fn zoom_moves_the_box_and_clips_it() {
        let mut o = boxed(false);
        o.zoom = BBox {
            x0: 0.5,
            y0: 0.0,
            x1: 1.0,
            y1: 0.5,
        };
        let mut img = RgbaImage::new(100, 100);
        o.paint_pixels(&mut img);
        // Right edge at x = 0.9 → (0.9-0.5)/0.5 = 80 %.
        assert_eq!(img.get_pixel(79, 50)[3], 255);
        assert_eq!(img.get_pixel(0, 50)[3], 0, "left edge is off the picture");
    }

    #[test]
    fn cells_show_the_tag_on_the_top_edge() {
        let theme = Theme::preset("dark").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, 20, 10));
        boxed(true).paint_cells(&mut buf, Rect::new(0, 0, 20, 10), &theme);
        assert_eq!(buf[(2, 1)].symbol(), "┌");
        let tag: String = (3..7).map(|x| buf[(x, 1)].symbol().to_string()).collect();
        assert_eq!(tag, "knot");
    }
}

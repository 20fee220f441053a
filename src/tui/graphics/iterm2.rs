//! iTerm2 inline images (OSC 1337 `File=`; also WezTerm, mintty, VS Code): each frame or strip
//! is a PNG placed at the cursor at its own pixel size.

use base64::Engine;
use image::RgbaImage;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::tiles::TileEncoder;

pub struct Iterm2 {
    /// Inside tmux: wrapped for passthrough.
    pub tmux: bool,
}

impl TileEncoder for Iterm2 {
    fn encode(&self, img: &RgbaImage, (x0, y0, w, h): (u32, u32, u32, u32), out: &mut Vec<u8>) {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                rgb.extend_from_slice(&img.get_pixel(x, y).0[..3]);
            }
        }
        let mut png = Vec::new();
        let encoded =
            PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Sub)
                .write_image(&rgb, w, h, ExtendedColorType::Rgb8);
        if encoded.is_err() {
            return;
        }
        let seq = format!(
            "\x1b]1337;File=inline=1;size={};width={w}px;height={h}px;preserveAspectRatio=0;doNotMoveCursor=1:{}\x07",
            png.len(),
            base64::engine::general_purpose::STANDARD.encode(&png)
        );
        super::wrap(out, self.tmux, seq.as_bytes());
    }
}

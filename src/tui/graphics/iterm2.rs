//! iTerm2 inline images (OSC 1337 `File=`; also WezTerm, mintty, VS Code): each frame or strip
//! is a PNG placed at the cursor at its own pixel size.

use base64::Engine;
use image::RgbaImage;

use super::tiles::TileEncoder;

pub struct Iterm2 {
    /// Inside tmux: wrapped for passthrough.
    pub tmux: bool,
}

impl TileEncoder for Iterm2 {
    fn encode(&self, img: &RgbaImage, rect: (u32, u32, u32, u32), out: &mut Vec<u8>) {
        let (_, _, w, h) = rect;
        let png = super::png(img, rect, false);
        let seq = format!(
            "\x1b]1337;File=inline=1;size={};width={w}px;height={h}px;preserveAspectRatio=0;doNotMoveCursor=1:{}\x07",
            png.len(),
            base64::engine::general_purpose::STANDARD.encode(&png)
        );
        super::wrap(out, self.tmux, seq.as_bytes());
    }
}

//! `jpeg-decoders MODE REPEATS FILE...`: decodes each file REPEATS times with one decoder, to
//! RGB, and prints the mean time. MODE: `jpeg-decoder-quarter` (what termtag's predict uses for
//! 12 MP JPEGs), `zune-full` (the `image` crate's decoder, no DCT scaling), `libjpeg-quarter`
//! (libjpeg-turbo's C code through the `mozjpeg` crate, built without its SIMD parts, which need
//! nasm). Quarter: DCT-scaled to 1/4, as PIL's `draft` does for a 640 input.

use std::io::Cursor;

fn decode(mode: &str, bytes: &[u8]) -> Vec<u8> {
    match mode {
        "jpeg-decoder-quarter" => {
            let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
            d.read_info().expect("header");
            let i = d.info().expect("info");
            d.scale(i.width.div_ceil(4), i.height.div_ceil(4))
                .expect("scale");
            d.decode().expect("decode")
        }
        "zune-full" => zune_jpeg::JpegDecoder::new(Cursor::new(bytes))
            .decode()
            .expect("decode"),
        "libjpeg-quarter" => {
            let mut d = mozjpeg::Decompress::builder()
                .from_mem(bytes)
                .expect("header");
            d.scale(2); // eighths
            let mut s = d.rgb().expect("rgb");
            let px: Vec<[u8; 3]> = s.read_scanlines().expect("decode");
            s.finish().expect("finish");
            px.into_iter().flatten().collect()
        }
        other => panic!("unknown mode {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, reps, files @ ..] = args.as_slice() else {
        eprintln!("usage: jpeg-decoders MODE REPEATS FILE...");
        std::process::exit(2);
    };
    let reps: usize = reps.parse().expect("REPEATS");
    let t = std::time::Instant::now();
    let mut pixels = 0;
    for _ in 0..reps {
        for f in files {
            pixels += decode(mode, &std::fs::read(f).expect("read")).len() / 3;
        }
    }
    let n = reps * files.len();
    println!(
        "{mode}: {n} images, {pixels} pixels out, {:.1} ms each",
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}

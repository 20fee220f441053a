//! The fuzz targets of fuzz/ on stable Rust: a seeded mutator over a corpus (the format fixtures,
//! the saved crash cases in tests/fixtures/fuzz/<target>/ and a few hostile seeds). Short in the
//! normal run; `TERMTAG_FUZZ_ITERS=100000` for a longer one, `TERMTAG_FUZZ_SEED` to vary it. The
//! coverage-guided run is `cargo +nightly fuzz run import` (see README "Bad input").
//! A failing input is written to target/fuzz-failures/ to be added to the crash corpus.

#[path = "../fuzz/common.rs"]
mod fuzz_common;

use std::path::{Path, PathBuf};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 17
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"NaN",
    b"-1",
    b"1e400",
    b"-0",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\n",
    b"\r\n",
    b"\0",
    b",",
    b"</",
    b"<",
    b">",
    b"99999999999999999999",
    b"0.5",
    b"null",
    b"true",
    b"\xff\xfe",
    b"\x1b[2J",
    b"=",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"NULL",
    b"folder",
    b" ",
    b"%20",
    b"..",
    b"/",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 => v.truncate(at),
            4 if !v.is_empty() => {
                let start = rng.below(v.len());
                let end = (start + rng.below(64)).min(v.len());
                let chunk = v[start..end].to_vec();
                v.splice(at..at, chunk);
            }
            _ => {
                let i = at.min(v.len().saturating_sub(1));
                if let Some(b) = v.get_mut(i) {
                    *b = rng.below(256) as u8;
                }
            }
        }
    }
    v
}

fn files_under(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.metadata().is_ok_and(|m| m.len() < 1 << 20)
            && p.extension().is_none_or(|e| e != "onnx")
        {
            out.push(std::fs::read(&p).unwrap());
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `target` on every corpus file and on `iters` mutants; a panic fails with the input saved.
fn run(name: &str, target: fn(&[u8]), mut corpus: Vec<Vec<u8>>, iters: u64, salt: u64) {
    files_under(&fixtures().join("fuzz").join(name), &mut corpus);
    assert!(!corpus.is_empty());
    let seed = env_num("TERMTAG_FUZZ_SEED", 16) ^ salt;
    let mut rng = Rng(seed);
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failure = None;
    for i in 0..corpus.len() as u64 + iters {
        let input = if (i as usize) < corpus.len() {
            corpus[i as usize].clone()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, base)
        };
        if let Err(e) = std::panic::catch_unwind(|| target(&input)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}-{i}"));
            std::fs::write(&file, &input).unwrap();
            failure = Some(format!(
                "{name}: input {i} (seed {seed}) panicked: {msg}; saved as {}",
                file.display()
            ));
            break;
        }
    }
    std::panic::set_hook(quiet);
    if let Some(f) = failure {
        panic!("{f}");
    }
}

#[test]
fn fuzz_importers() {
    let mut corpus = Vec::new();
    for dir in [
        "coco",
        "voc",
        "yolo",
        "ald_csv",
        "azureml_jsonl",
        "modelarts_txt",
        "vott_csv",
    ] {
        files_under(&fixtures().join(dir), &mut corpus);
    }
    run(
        "import",
        fuzz_common::import,
        corpus,
        env_num("TERMTAG_FUZZ_ITERS", 300),
        1,
    );
}

#[test]
fn fuzz_config_parser() {
    let corpus = vec![
        b"name = \"x\"\ntask = \"detect\"\nsource = \"images\"\n[classes]\n".to_vec(),
        b"task = \"detect\"\nmax_megapixels = 250\n[model]\npath = \"m.onnx\"\ninput_size = [640, 640]\n[remote]\nclaim_hours = 72\n[export]\nazureml_url_prefix = \"x\"\n".to_vec(),
    ];
    run(
        "config",
        fuzz_common::config,
        corpus,
        env_num("TERMTAG_FUZZ_ITERS", 300) * 4,
        2,
    );
}

static DECODED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn outputs_counted(data: &[u8]) {
    if fuzz_common::outputs(data) {
        DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn fuzz_output_decoders() {
    let mut rng = Rng(env_num("TERMTAG_FUZZ_SEED", 16));
    let corpus: Vec<Vec<u8>> = (0..64)
        .map(|_| (0..256).map(|_| rng.below(256) as u8).collect())
        .collect();
    let iters = env_num("TERMTAG_FUZZ_ITERS", 300) * 10;
    run("outputs", outputs_counted, corpus, iters, 3);
    // The mutants must get past the adapters' model checks often enough to test the decoders.
    let decoded = DECODED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        decoded * 20 >= iters,
        "only {decoded} of {iters} inputs reached a decoder"
    );
}

//! Every diagnostic leaves through one redaction layer ([`crate::remote::auth::redact`]): the
//! tracing subscribers (stderr for commands, `.termtag/termtag.log` for the review screen, both
//! with the Azure SDK's request logs at `TERMTAG_LOG=trace`), `errln!`/`outln!` and the final
//! error line. Colour only when stderr is a terminal.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::remote::auth::redact;

/// A [`MakeWriter`] whose writers redact secrets from what passes through them.
pub struct Redacting<M>(pub M);

/// Writes `buf` redacted. The subscriber hands over one formatted event per write.
pub struct RedactWriter<W>(W);

impl<W: Write> Write for RedactWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write_all(redact(&String::from_utf8_lossy(buf)).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactWriter(self.0.make_writer())
    }
}

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("TERMTAG_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// Commands: warnings (or `TERMTAG_LOG`) to stderr.
pub fn to_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("warn"))
        .with_writer(Redacting(io::stderr))
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// The review screen owns the terminal: logs go to `path` (level from `TERMTAG_LOG`, else info).
pub fn to_file(path: &Path) {
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("info"))
        .with_writer(Redacting(std::sync::Mutex::new(file)))
        .with_ansi(false)
        .try_init();
}

/// The last line a failed command prints: the error and its causes on one line, redacted.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    format!("termtag: {}", redact(&causes(e)))
}

/// An error and its causes on one line, outermost first, leaving out one that its wrapper already
/// quotes (`out.json: File too large` over `File too large`).
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(e), |e| e.source()).map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_quotes_each_cause_once() {
        let io = std::io::Error::other("File too large");
        let e = anyhow::Error::new(crate::formats::FormatError::io(
            std::path::Path::new("out.json"),
            io,
        ))
        .context("export failed");
        assert_eq!(
            error_line(&*e),
            "termtag: export failed: out.json: File too large"
        );
    }

    #[test]
    fn the_writer_redacts_what_it_passes_on() {
        crate::remote::auth::register_secret("planted-secret-0123456789");
        let mut out = Vec::new();
        {
            let mut w = RedactWriter(&mut out);
            w.write_all(b"GET https://a.blob.core.windows.net/c?sv=1&sig=abc%2Bdef HTTP/1.1 planted-secret-0123456789\n")
                .unwrap();
        }
        let s = String::from_utf8(out).unwrap();
        assert!(
            !s.contains("abc%2Bdef") && !s.contains("planted-secret"),
            "{s}"
        );
        assert!(s.contains("sig=REDACTED"), "{s}");
    }
}

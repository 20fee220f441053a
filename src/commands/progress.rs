//! Progress: one way to make a bar on a terminal (hidden otherwise), and the words for a
//! transfer's progress, for a bar and for the review screen's status line alike.

use std::fmt;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::remote::Progress;

/// A bar drawn with `template` on stderr when it is a terminal; hidden otherwise (pipes, logs).
pub fn bar(template: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    }
}

/// A bar for a pull or push: the step as its message, counts as its position.
pub fn transfer_bar() -> ProgressBar {
    bar("{msg} {bar:30} {pos}/{len}")
}

/// Shows `p` on a [`transfer_bar`].
pub fn show(bar: &ProgressBar, p: Progress) {
    let (step, counts) = p.parts();
    bar.set_message(step);
    if let Some((done, total)) = counts {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

impl Progress {
    /// The step in words, and `(done, total)` when it counts.
    fn parts(&self) -> (String, Option<(usize, usize)>) {
        match *self {
            Progress::Listing { found } => (format!("listing, {found} images"), None),
            Progress::Claiming { done, total } => ("claiming".into(), Some((done, total))),
            Progress::Downloading { done, total } => ("downloading".into(), Some((done, total))),
            Progress::Uploading { done, total } => ("uploading".into(), Some((done, total))),
            Progress::Step(s) => (s.to_string(), None),
        }
    }
}

/// `claiming 3/10`, `listing, 120 images`: the status line's words.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            (step, Some((done, total))) => write!(f, "{step} {done}/{total}"),
            (step, None) => f.write_str(&step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_in_words() {
        let shown = [
            Progress::Listing { found: 12 },
            Progress::Claiming { done: 3, total: 10 },
            Progress::Downloading { done: 1, total: 2 },
            Progress::Uploading { done: 4, total: 4 },
            Progress::Step("recording"),
        ]
        .map(|p| p.to_string());
        assert_eq!(
            shown,
            [
                "listing, 12 images",
                "claiming 3/10",
                "downloading 1/2",
                "uploading 4/4",
                "recording"
            ]
        );
    }
}

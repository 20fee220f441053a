//! termtag: terminal image labeling for detection and classification.
//!
//! Layout: [`model`] holds the domain types, [`store`] the SQLite label store (the only writer of
//! labels), [`formats`] one module per import/export format, [`project`] the project file and the
//! operations the commands run, [`index`] the image-folder scanner, [`cli`] the command line and
//! [`commands`] the body of each command.
#![forbid(unsafe_code)]

/// `println!` for command output: a closed stdout (`termtag images list | head`) comes back as an
/// error, which `main` treats as a quiet exit, instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(
            &mut std::io::stdout().lock(),
            format_args!("{}\n", $crate::remote::auth::redact(&format!($($arg)*))),
        )
    };
}

/// `eprintln!` through the redaction layer (see [`logging`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::remote::auth::redact(&format!($($arg)*)))
    };
}

pub mod cli;
pub mod commands;
pub mod decode;
pub mod demo;
pub mod diversity;
pub mod eval;
pub mod formats;
pub mod fsutil;
pub mod index;
pub mod infer;
pub mod logging;
pub mod model;
pub mod project;
pub mod queue;
pub mod remote;
pub mod rng;
pub mod sanitize;
pub mod simulate;
pub mod store;
pub mod theme;
pub mod thumbs;
pub mod train;
pub mod tui;

//! termtag: terminal image labeling for detection and classification.
//!
//! Layout: [`model`] holds the domain types, [`store`] the SQLite label store (the only writer of
//! labels), [`formats`] one module per import/export format, [`project`] the project file and the
//! operations the commands run, [`index`] the image-folder scanner, [`cli`] the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod decode;
pub mod demo;
pub mod eval;
pub mod formats;
pub mod index;
pub mod infer;
pub mod model;
pub mod project;
pub mod queue;
pub mod remote;
pub mod sanitize;
pub mod store;
pub mod theme;
pub mod train;
pub mod tui;

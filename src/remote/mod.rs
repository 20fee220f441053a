//! Remote batches: claim, download, label, push. Azure Blob Storage ([`azure`]) or a local
//! folder ([`local`]) behind one trait ([`Remote`]).
//!
//! Layout, compatible with active-learning-detect (ALD):
//! - images container (`activelearningimages`): the images, under `[remote] prefix`;
//! - labels container (`activelearninglabels`): ALD's timestamped `totag_<ms>.csv`,
//!   `tagging_<ms>.csv`, `tagged_<ms>.csv` under the prefix, and termtag's own state under
//!   `<prefix>termtag/`: `claims/<key>` (one per image, created with `If-None-Match: *`, taken
//!   over after expiry with `If-Match`), `done/<key>` (written once an image is pushed) and
//!   `batches/<id>.json` (the pushed labels, immutable), and `predictions/` (the parts a fleet
//!   of `predict --stream` machines writes, [`fleet`]).
//!
//! A pull or push interrupted at any point is resumed by running it again: each keeps a small
//! journal in `.termtag/` and every remote write is conditional or idempotent.

mod ald;
pub mod auth;
pub mod azure;
pub mod backend;
mod candidates;
mod claim;
pub mod config;
pub mod fleet;
mod journal;
pub mod local;
mod pull;
mod push;
mod set;

pub use ald::{newest_ald_csv, read_ald_csv};
pub use backend::{BlobInfo, Page, PutMode, Remote, RemoteError, RemoteResult, list_all};
pub use config::{
    DEFAULT_IMAGES_CONTAINER, DEFAULT_LABELS_CONTAINER, RemoteConfig, documented_toml,
};
pub use journal::JournalError;
pub use pull::{FetchError, PullError, PullOptions, PullReport, pull};
pub use push::{BatchDoc, BatchImage, BatchLabel, PushError, PushReport, push, read_batches};
pub use set::{OpenError, RemoteSet, open, open_with_env};

/// Progress of a pull or push, for a bar or a status line.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Listing { found: usize },
    Claiming { done: usize, total: usize },
    Downloading { done: usize, total: usize },
    Uploading { done: usize, total: usize },
    Step(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Project;
    use crate::store::Store;

    /// The TUI runs pull and push on background tasks: their futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(p: &Project, s: &mut Store, set: &RemoteSet) {
        fn send<T: Send>(_: T) {}
        send(pull(p, s, set, &PullOptions::default(), &|_| {}));
        send(push(p, s, set, &|_| {}));
    }
}

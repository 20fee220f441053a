//! Command bodies shared by the command line and the review screen's background jobs: each
//! runs one command and returns a report whose `Display` is the summary both show. The CLI
//! adds a progress bar and prints; the screen turns progress into its status line.

pub mod progress;
pub mod pull;
pub mod push;

use anyhow::Result;

/// A runtime of their own for the async transfers of `pull` and `push`.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?)
}

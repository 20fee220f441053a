//! `[remote]` in termtag.toml: containers, prefix, claim lifetime, transfers. Plain data with
//! defaults and the commented table `init` writes; it knows nothing of a project.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sanitize::{UnsafeKey, check_relative_key};

pub const DEFAULT_IMAGES_CONTAINER: &str = "activelearningimages";
pub const DEFAULT_LABELS_CONTAINER: &str = "activelearninglabels";

/// `[remote]` in termtag.toml. Secrets never go here: only the name of a file holding a SAS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Images container when the source URL names none (and for `folder`).
    #[serde(default = "default_images")]
    pub images_container: String,
    #[serde(default = "default_labels")]
    pub labels_container: String,
    /// Virtual folder inside both containers, e.g. `project1/`.
    #[serde(default)]
    pub prefix: String,
    /// Claims older than this may be taken over by another annotator.
    #[serde(default = "default_claim_hours")]
    pub claim_hours: f64,
    /// Parallel transfers.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds one request (with its whole answer) may take before it is abandoned and retried.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: f64,
    /// File holding a SAS URL or token (kept out of this file and out of git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_file: Option<PathBuf>,
    /// A shared folder to use as the remote instead of Azure (offline teams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
}

fn default_images() -> String {
    DEFAULT_IMAGES_CONTAINER.into()
}
fn default_labels() -> String {
    DEFAULT_LABELS_CONTAINER.into()
}
fn default_claim_hours() -> f64 {
    72.0
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout_seconds() -> f64 {
    120.0
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            images_container: default_images(),
            labels_container: default_labels(),
            prefix: String::new(),
            claim_hours: default_claim_hours(),
            timeout_seconds: default_timeout_seconds(),
            concurrency: default_concurrency(),
            sas_file: None,
            folder: None,
        }
    }
}

impl RemoteConfig {
    pub fn is_default(&self) -> bool {
        *self == RemoteConfig::default()
    }

    /// How long one request may take; a zero or unusable value falls back to the default.
    pub fn request_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs_f64(default_timeout_seconds()))
    }

    /// How long a claim lasts: `inf` (never) or a huge number becomes a century.
    pub fn claim_ttl(&self) -> Duration {
        Duration::try_from_secs_f64(self.claim_hours.max(0.0) * 3600.0)
            .unwrap_or(Duration::from_secs(100 * 365 * 86_400))
    }
}

/// The `[remote]` table as `init` writes it: live for a blob source or a changed config,
/// commented out otherwise.
pub fn documented_toml(cfg: &RemoteConfig, remote_source: bool) -> String {
    let live = remote_source || !cfg.is_default();
    let c = if live { "" } else { "# " };
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = String::new();
    out.push_str("\n# Batches from blob storage: `termtag pull` / `termtag push`. Credentials come from the\n");
    out.push_str("# environment (AZURE_STORAGE_SAS_URL, AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT +\n");
    out.push_str("# AZURE_STORAGE_KEY, or an Azure login), never from this file.\n");
    out.push_str(&format!("{c}[remote]\n"));
    out.push_str(&format!(
        "# Images container when the source URL names none.\n{c}images_container = {}\n",
        q(&cfg.images_container)
    ));
    out.push_str(&format!(
        "# Container of the active-learning-detect CSVs and termtag's claims and batches.\n{c}labels_container = {}\n",
        q(&cfg.labels_container)
    ));
    out.push_str(&format!(
        "# Virtual folder inside both containers.\n{c}prefix = {}\n",
        q(&cfg.prefix)
    ));
    out.push_str(&format!(
        "# Hours after which another annotator may take over a claimed image.\n{c}claim_hours = {}\n",
        toml::Value::Float(cfg.claim_hours)
    ));
    out.push_str(&format!(
        "# Parallel transfers.\n{c}concurrency = {}\n",
        cfg.concurrency
    ));
    out.push_str(&format!(
        "# Seconds one request (with its whole answer) may take before it is abandoned and retried.\n{c}timeout_seconds = {}\n",
        toml::Value::Float(cfg.timeout_seconds)
    ));
    out.push_str("# A file holding a SAS URL (keep it out of git).\n");
    match &cfg.sas_file {
        Some(f) => out.push_str(&format!("{c}sas_file = {}\n", q(&f.to_string_lossy()))),
        None => out.push_str("# sas_file = \"secrets/sas.txt\"\n"),
    }
    out.push_str("# A shared folder used as the remote instead of Azure (offline teams).\n");
    match &cfg.folder {
        Some(f) => out.push_str(&format!("{c}folder = {}\n", q(&f.to_string_lossy()))),
        None => out.push_str("# folder = \"/mnt/team/termtag-remote\"\n"),
    }
    out
}

/// `[remote] prefix` names no folder inside the container. The message quotes the name error,
/// so it is kept as a field, not a source that the error line would repeat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[remote] prefix: {0}")]
pub struct BadPrefix(pub UnsafeKey);

/// A prefix is a folder: `a/b/`, never `..` or absolute.
pub fn normalise_prefix(p: &str) -> Result<String, BadPrefix> {
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    check_relative_key(p).map_err(BadPrefix)?;
    Ok(format!("{p}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(normalise_prefix("").unwrap(), "");
        assert_eq!(normalise_prefix("/a/b/").unwrap(), "a/b/");
        let e = normalise_prefix("../x").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("[remote] prefix: path `../x` leaves"),
            "{e}"
        );
    }
}

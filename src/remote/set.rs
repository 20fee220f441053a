//! Where the images and the labels are, who this annotator is, and the blob names of termtag's
//! own state in the labels container.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use super::{Remote, auth, azure, local};
use crate::project::{Project, STATE_DIR, is_remote};
use crate::sanitize::show_path;
use crate::store::now_ms;

const INSTANCE_FILE: &str = "remote-id";

/// Where the images and the labels are, and who this annotator is.
#[derive(Clone)]
pub struct RemoteSet {
    pub images: Arc<dyn Remote>,
    pub labels: Arc<dyn Remote>,
    pub prefix: String,
    /// `author/instance`: unique per project copy, so two copies by one user never share claims.
    pub owner: String,
    /// Recorded in the claim table: where the claims are.
    pub name: String,
}

impl RemoteSet {
    pub(super) fn claim_name(&self, key: &str) -> String {
        format!("{}termtag/claims/{key}", self.prefix)
    }
    pub(super) fn done_name(&self, key: &str) -> String {
        format!("{}termtag/done/{key}", self.prefix)
    }
    pub(super) fn batch_name(&self, id: &str) -> String {
        format!("{}termtag/batches/{id}.json", self.prefix)
    }
}

/// Opens the project's remote: `[remote] folder`, else the Azure container of `source`, with
/// credentials from the process environment.
pub fn open(project: &Project) -> Result<RemoteSet> {
    open_with_env(project, &auth::ProcessEnv)
}

/// [`open`] with credentials looked up in `env` (tests and tools that hold their own).
pub fn open_with_env(project: &Project, env: &dyn auth::Env) -> Result<RemoteSet> {
    let cfg = &project.config.remote;
    let owner = format!("{}/{}", project.author(), instance_id(&project.root)?);
    let prefix = super::config::normalise_prefix(&cfg.prefix).map_err(|e| anyhow!("{e}"))?;
    if let Some(folder) = &cfg.folder {
        let root = project.root.join(folder);
        return Ok(RemoteSet {
            images: Arc::new(local::LocalRemote::new(root.join(&cfg.images_container))),
            labels: Arc::new(local::LocalRemote::new(root.join(&cfg.labels_container))),
            prefix,
            owner,
            name: format!("folder:{}", root.display()),
        });
    }
    if !is_remote(&project.config.source) {
        bail!(
            "this project has no remote: create it with `termtag init DIR --source https://ACCOUNT.blob.core.windows.net/CONTAINER`, or set `folder` under [remote] in termtag.toml"
        );
    }
    let (endpoint, source_sas) =
        auth::Endpoint::parse(&project.config.source).map_err(|e| anyhow!("{e}"))?;
    let sas_file = cfg.sas_file.as_ref().map(|f| project.root.join(f));
    let credential = auth::resolve(&endpoint, source_sas.as_deref(), sas_file.as_deref(), env)
        .map_err(|e| anyhow!("{e}"))?;
    let images_container = endpoint
        .container
        .clone()
        .unwrap_or_else(|| cfg.images_container.clone());
    let (images, labels) = azure::open_pair(
        &endpoint,
        &images_container,
        &cfg.labels_container,
        &credential,
        cfg.request_timeout(),
    )?;
    let name = images.describe();
    Ok(RemoteSet {
        images,
        labels,
        prefix,
        owner,
        name,
    })
}

/// A random id for this copy of the project, made once.
fn instance_id(root: &Path) -> Result<String> {
    let file = root.join(STATE_DIR).join(INSTANCE_FILE);
    if let Ok(s) = std::fs::read_to_string(&file) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    let id = random_hex(8);
    std::fs::create_dir_all(root.join(STATE_DIR))?;
    std::fs::write(&file, &id).with_context(|| format!("{}: cannot write", show_path(&file)))?;
    Ok(id)
}

pub(super) fn random_hex(bytes: usize) -> String {
    use sha2::Digest as _;
    let seed = format!(
        "{}-{}-{:?}-{:?}",
        std::process::id(),
        now_ms(),
        std::time::Instant::now(),
        std::thread::current().id()
    );
    let h = sha2::Sha256::digest(seed.as_bytes());
    h.iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

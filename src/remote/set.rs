//! Where the images and the labels are, who this annotator is, and the blob names of termtag's
//! own state in the labels container.

use std::path::Path;
use std::sync::Arc;

use super::config::BadPrefix;
use super::{Remote, RemoteError, auth, azure, local};
use crate::project::{Project, STATE_DIR, is_remote};
use crate::sanitize::show_path;
use crate::store::now_ms;

const INSTANCE_FILE: &str = "remote-id";

/// Why the project's remote cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "this project has no remote: create it with `termtag init DIR --source https://ACCOUNT.blob.core.windows.net/CONTAINER`, or set `folder` under [remote] in termtag.toml"
    )]
    NoRemote,
    #[error(transparent)]
    Prefix(#[from] BadPrefix),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// This copy's id (`.termtag/remote-id`) cannot be saved; `action` is create or write.
    #[error("{path}: cannot {action}")]
    Instance {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },
}

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

    /// Creates the labels container when the first pull of a project, or a fleet's first
    /// machine, finds none.
    pub async fn ensure_labels(&self) -> super::RemoteResult<()> {
        match self.labels.list_page(&self.prefix, None).await {
            Err(super::RemoteError::NoContainer { .. }) => self.labels.ensure_exists().await,
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }
}

/// Opens the project's remote: `[remote] folder`, else the Azure container of `source`, with
/// credentials from the process environment.
pub fn open(project: &Project) -> Result<RemoteSet, OpenError> {
    open_with_env(project, &auth::ProcessEnv)
}

/// [`open`] with credentials looked up in `env` (tests and tools that hold their own).
pub fn open_with_env(project: &Project, env: &dyn auth::Env) -> Result<RemoteSet, OpenError> {
    let cfg = &project.config.remote;
    let owner = format!("{}/{}", project.author(), instance_id(&project.root)?);
    let prefix = super::config::normalise_prefix(&cfg.prefix)?;
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
        return Err(OpenError::NoRemote);
    }
    let (endpoint, source_sas) = auth::Endpoint::parse(&project.config.source)?;
    let sas_file = cfg.sas_file.as_ref().map(|f| project.root.join(f));
    let credential = auth::resolve(&endpoint, source_sas.as_deref(), sas_file.as_deref(), env)?;
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
fn instance_id(root: &Path) -> Result<String, OpenError> {
    let file = root.join(STATE_DIR).join(INSTANCE_FILE);
    if let Ok(s) = std::fs::read_to_string(&file) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    let id = random_hex(8);
    let dir = root.join(STATE_DIR);
    let failed = |path: &Path, action| {
        let path = show_path(path);
        move |source| OpenError::Instance {
            path,
            action,
            source,
        }
    };
    std::fs::create_dir_all(&dir).map_err(failed(&dir, "create"))?;
    std::fs::write(&file, &id).map_err(failed(&file, "write"))?;
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

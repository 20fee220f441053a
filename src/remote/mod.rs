//! Remote batches: claim, download, label, push. Azure Blob Storage ([`azure`]) or a local
//! folder ([`local`]) behind one trait ([`Remote`]).
//!
//! Layout, compatible with active-learning-detect (ALD):
//! - images container (`activelearningimages`): the images, under `[remote] prefix`;
//! - labels container (`activelearninglabels`): ALD's timestamped `totag_<ms>.csv`,
//!   `tagging_<ms>.csv`, `tagged_<ms>.csv` under the prefix, and termtag's own state under
//!   `<prefix>termtag/`: `claims/<key>` (one per image, created with `If-None-Match: *`, taken
//!   over after expiry with `If-Match`), `done/<key>` (written once an image is pushed) and
//!   `batches/<id>.json` (the pushed labels, immutable).
//!
//! A pull or push interrupted at any point is resumed by running it again: each keeps a small
//! journal in `.termtag/` and every remote write is conditional or idempotent.

pub mod auth;
pub mod azure;
pub mod backend;
mod candidates;
pub mod cli;
pub mod local;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

pub use backend::{BlobInfo, Page, PutMode, Remote, RemoteError, RemoteResult, list_all};

use crate::formats::{ExportCtx, FormatKind, show_path};
use crate::model::{Dataset, Task};
use crate::project::{ClassMap, Project, STATE_DIR, is_remote};
use crate::sanitize::{check_relative_key, for_terminal, safe_join};
use crate::store::{NewClaim, Store, now_ms};

pub const DEFAULT_IMAGES_CONTAINER: &str = "activelearningimages";
pub const DEFAULT_LABELS_CONTAINER: &str = "activelearninglabels";
/// Downloaded images live here, under the project.
pub const CACHE_DIR: &str = "cache";
const PULL_JOURNAL: &str = "pull-pending.json";
const PUSH_JOURNAL: &str = "push-pending.json";
const INSTANCE_FILE: &str = "remote-id";
/// Batches pushed this long before the newest `tagged` CSV are merged into the next one, so
/// that two pushes at the same moment cannot drop each other's rows for good.
const MERGE_WINDOW_MS: i64 = 10 * 60 * 1000;

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
    fn claim_name(&self, key: &str) -> String {
        format!("{}termtag/claims/{key}", self.prefix)
    }
    fn done_name(&self, key: &str) -> String {
        format!("{}termtag/done/{key}", self.prefix)
    }
    fn batch_name(&self, id: &str) -> String {
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
    let prefix = normalise_prefix(&cfg.prefix)?;
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
        Duration::try_from_secs_f64(cfg.timeout_seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs_f64(default_timeout_seconds())),
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

/// A prefix is a folder: `a/b/`, never `..` or absolute.
pub fn normalise_prefix(p: &str) -> Result<String> {
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    check_relative_key(p).map_err(|e| anyhow!("[remote] prefix: {e}"))?;
    Ok(format!("{p}/"))
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

fn random_hex(bytes: usize) -> String {
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

/// Where a pulled image is kept.
pub fn cache_path(project: &Project, key: &str) -> Result<PathBuf> {
    safe_join(&project.root.join(STATE_DIR).join(CACHE_DIR), key).map_err(|e| anyhow!("{e}"))
}

/// Progress of a pull or push, for a bar or a status line.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Listing { found: usize },
    Claiming { done: usize, total: usize },
    Downloading { done: usize, total: usize },
    Uploading { done: usize, total: usize },
    Step(&'static str),
}

/// What a claim blob holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClaimDoc {
    image: String,
    owner: String,
    batch: String,
    claimed_at: i64,
    expires_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub count: usize,
    /// Overrides `[remote] claim_hours` (tests use seconds).
    pub claim_ttl: Option<Duration>,
    /// Overrides `[remote] concurrency`; 1 is sequential.
    pub concurrency: Option<usize>,
}

#[derive(Debug, Default)]
pub struct PullReport {
    pub batch_id: String,
    /// Keys claimed and downloaded by this pull.
    pub claimed: Vec<String>,
    /// How many of them were taken over from an expired claim.
    pub taken_over: usize,
    /// Keys resumed from an interrupted pull.
    pub resumed: usize,
    pub predictions: usize,
    /// Blob names refused (unsafe names) or images that failed, with why.
    pub refused: Vec<(String, String)>,
    pub warnings: Vec<String>,
    /// Unclaimed images still waiting after this pull (predicted ones only, unless `listed`).
    pub remaining: usize,
    /// Whether the images container was listed: not when the predictions named enough images.
    pub listed: bool,
    pub bytes: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PullJournal {
    batch_id: String,
    /// key -> claim ETag, for claims won but not yet recorded in the store.
    won: BTreeMap<String, String>,
    expires_at: i64,
}

fn journal_path(project: &Project, name: &str) -> PathBuf {
    project.root.join(STATE_DIR).join(name)
}

fn write_json_atomic<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::fsutil::write_atomic(path, &serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("{}: cannot write", show_path(path)))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!(
                "{}: unreadable; delete it to start over (remote claims expire on their own)",
                show_path(path)
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", show_path(path))),
    }
}

/// Creates the labels container on first use (an images-only container from another tool).
async fn ensure_labels(set: &RemoteSet) -> Result<()> {
    match set.labels.list_page(&set.prefix, None).await {
        Err(RemoteError::NoContainer { .. }) => Ok(set.labels.ensure_exists().await?),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

/// The newest `<kind>_<ms>.csv` in the labels container, with its ms.
async fn newest_csv(set: &RemoteSet, kind: &str) -> Result<Option<(i64, String)>> {
    let prefix = format!("{}{kind}_", set.prefix);
    let blobs = list_all(set.labels.as_ref(), &prefix).await?;
    Ok(blobs
        .iter()
        .filter_map(|b| {
            let ms = b.name[prefix.len()..]
                .strip_suffix(".csv")?
                .parse::<i64>()
                .ok()?;
            Some((ms, b.name.clone()))
        })
        .max())
}

async fn get_text(remote: &dyn Remote, name: &str) -> Result<String> {
    let (bytes, _) = remote.get(name).await?;
    String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", for_terminal(name)))
}

/// CSV rows (header first) of an ALD file, with the image key of each row.
struct AldRows {
    header: csv::StringRecord,
    rows: Vec<(String, csv::StringRecord)>,
}

fn parse_ald(text: &str, what: &str) -> Result<AldRows> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = r
        .headers()
        .map_err(|e| anyhow!("{what}: unreadable CSV header: {e}"))?
        .clone();
    let col = |n: &str| header.iter().position(|h| h.trim() == n);
    let (Some(fi), folder) = (col("filename"), col("folder")) else {
        bail!("{what}: no `filename` column; not an active-learning-detect CSV");
    };
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| anyhow!("{what}: unreadable CSV: {e}"))?;
        let file = rec.get(fi).unwrap_or_default();
        let dir = folder.and_then(|i| rec.get(i)).unwrap_or_default();
        let key = if dir.is_empty() {
            file.to_string()
        } else {
            format!("{dir}/{file}")
        };
        rows.push((key, rec));
    }
    Ok(AldRows { header, rows })
}

impl AldRows {
    /// The same rows under `header` (ALD writes `folder` only with `user_folders = True`): columns
    /// matched by name, a missing one left empty; refused when that would lose a row's folder.
    fn conform(self, header: &csv::StringRecord) -> Result<AldRows> {
        if self.header == *header {
            return Ok(self);
        }
        let from: Vec<Option<usize>> = header
            .iter()
            .map(|h| self.header.iter().position(|c| c.trim() == h.trim()))
            .collect();
        let folder = self.header.iter().position(|c| c.trim() == "folder");
        let keeps_folder = header.iter().any(|c| c.trim() == "folder");
        let mut rows = Vec::with_capacity(self.rows.len());
        for (k, r) in self.rows {
            if !keeps_folder && folder.and_then(|i| r.get(i)).is_some_and(|f| !f.is_empty()) {
                bail!(
                    "it has no `folder` column, but image `{}` sits in a sub-folder",
                    for_terminal(&k)
                );
            }
            let rec: csv::StringRecord = from
                .iter()
                .map(|i| i.and_then(|i| r.get(i)).unwrap_or_default())
                .collect();
            rows.push((k, rec));
        }
        Ok(AldRows {
            header: header.clone(),
            rows,
        })
    }

    fn to_csv(&self, keep: impl Fn(&str) -> bool) -> Result<String> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record(&self.header)?;
        for (k, r) in &self.rows {
            if keep(k) {
                w.write_record(r)?;
            }
        }
        Ok(String::from_utf8(
            w.into_inner().map_err(|e| anyhow!("{e}"))?,
        )?)
    }

    /// Per image key: the lowest confidence of its boxes, or `None` for a `NULL` (no object) row.
    fn confidences(&self) -> HashMap<String, Option<f64>> {
        let col = |n: &str| self.header.iter().position(|h| h.trim() == n);
        let (img, bx, class) = (col("image_confidence"), col("box_confidence"), col("class"));
        let mut out: HashMap<String, Option<f64>> = HashMap::new();
        for (k, r) in &self.rows {
            let is_null = class.and_then(|i| r.get(i)) == Some("NULL");
            let conf = [bx, img]
                .into_iter()
                .flatten()
                .filter_map(|i| r.get(i)?.trim().parse::<f64>().ok())
                .next();
            let entry = out.entry(k.clone()).or_insert(None);
            if !is_null && let Some(c) = conf {
                *entry = Some(entry.map_or(c, |e: f64| e.min(c)));
            }
        }
        out
    }
}

/// The key for a totag row: an exact key, else the same file name (ALD's `folder` column is
/// often the annotator's local folder, not a blob path).
fn lookup<'a, T>(
    map: &'a HashMap<String, T>,
    by_name: &'a HashMap<String, String>,
    key: &str,
) -> Option<&'a T> {
    map.get(key).or_else(|| {
        let name = key.rsplit('/').next().unwrap_or(key);
        by_name.get(name).and_then(|k| map.get(k))
    })
}

enum ClaimOutcome {
    Won { etag: String, taken_over: bool },
    Lost,
}

/// Claims `key` for `owner`: create the claim blob if absent; if present and ours (a retried
/// request, or a crash before we recorded it) or expired, replace it with `If-Match` on its ETag.
/// Whether `key` has been pushed (its `done/` marker exists).
async fn is_done(set: &RemoteSet, key: &str) -> RemoteResult<bool> {
    match set.labels.get(&set.done_name(key)).await {
        Ok(_) => Ok(true),
        Err(RemoteError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn try_claim(set: &RemoteSet, key: &str, doc: &ClaimDoc) -> RemoteResult<ClaimOutcome> {
    let name = set.claim_name(key);
    let body = serde_json::to_vec(doc).unwrap_or_default();
    for _ in 0..4 {
        match set.labels.put(&name, body.clone(), PutMode::Create).await {
            Ok(etag) => {
                return Ok(ClaimOutcome::Won {
                    etag,
                    taken_over: false,
                });
            }
            Err(RemoteError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        let (bytes, etag) = match set.labels.get(&name).await {
            Ok(x) => x,
            Err(RemoteError::NotFound(_)) => continue, // released meanwhile: try to create again
            Err(e) => return Err(e),
        };
        let current: Option<ClaimDoc> = serde_json::from_slice(&bytes).ok();
        let ours = current.as_ref().is_some_and(|c| c.owner == doc.owner);
        // An unreadable claim is treated as expired only once it is old enough by its own
        // timestamp; a readable one says when it expires.
        let expired = current.as_ref().is_none_or(|c| c.expires_at <= now_ms());
        if !ours && !expired {
            return Ok(ClaimOutcome::Lost);
        }
        match set
            .labels
            .put(&name, body.clone(), PutMode::IfMatch(etag.clone()))
            .await
        {
            Ok(etag) => {
                return Ok(ClaimOutcome::Won {
                    etag,
                    taken_over: !ours,
                });
            }
            Err(RemoteError::Conflict(_)) => {
                if ours {
                    continue;
                }
                return Ok(ClaimOutcome::Lost);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(ClaimOutcome::Lost)
}

fn is_image_name(name: &str) -> bool {
    crate::index::is_image(Path::new(name))
}

/// Claims the `count` most uncertain unclaimed images, downloads them into the cache and adds
/// them to the store as claimed, with their predictions from the newest `totag` CSV.
pub async fn pull(
    project: &Project,
    store: &mut Store,
    set: &RemoteSet,
    opts: &PullOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PullReport> {
    let cfg = &project.config.remote;
    let concurrency = opts.concurrency.unwrap_or(cfg.concurrency).max(1);
    let ttl = opts.claim_ttl.unwrap_or_else(|| {
        // `inf` (never) or a huge number: a century.
        Duration::try_from_secs_f64(cfg.claim_hours.max(0.0) * 3600.0)
            .unwrap_or(Duration::from_secs(100 * 365 * 86_400))
    });
    let jpath = journal_path(project, PULL_JOURNAL);
    let mut journal: PullJournal = read_json(&jpath)?.unwrap_or_default();
    let mut report = PullReport::default();
    let now = now_ms();
    if journal.batch_id.is_empty() {
        journal.batch_id = format!("{now}-{}", random_hex(4));
        journal.expires_at = now + ttl.as_millis() as i64;
    }
    report.batch_id = journal.batch_id.clone();
    report.resumed = journal.won.len();

    progress(Progress::Step("listing"));
    let taken = candidates::taken(store, &journal.won)?;
    let mut found = candidates::Candidates::find(set, taken, concurrency, progress).await?;

    // Claim, in rounds of as many as are still needed, `concurrency` at a time.
    let (batch_id, expires_at) = (journal.batch_id.clone(), journal.expires_at);
    let doc = |key: &str| ClaimDoc {
        image: key.to_string(),
        owner: set.owner.clone(),
        batch: batch_id.clone(),
        claimed_at: now,
        expires_at,
    };
    // First re-assert claims won by an interrupted pull.
    let resume: Vec<String> = journal.won.keys().cloned().collect();
    let mut won: BTreeMap<String, String> = BTreeMap::new();
    for key in resume {
        if let ClaimOutcome::Won { etag, .. } = try_claim(set, &key, &doc(&key)).await? {
            won.insert(key, etag);
        }
    }
    // Claims resumed from an interrupted pull count toward this one.
    let target = opts.count.max(won.len());
    while won.len() < target {
        let round = found.next_round(target - won.len()).await?;
        if round.is_empty() {
            break;
        }
        let results: Vec<(String, RemoteResult<ClaimOutcome>)> = futures::stream::iter(round)
            .map(|key| {
                let d = doc(&key);
                async move {
                    let r = match try_claim(set, &key, &d).await {
                        Ok(ClaimOutcome::Won { etag, .. }) if is_done(set, &key).await? => {
                            // Pushed between our listing and our claim (a push writes `done/`
                            // before it releases the claim we just replaced): give it back.
                            let _ = set.labels.delete(&set.claim_name(&key), Some(&etag)).await;
                            Ok(ClaimOutcome::Lost)
                        }
                        r => r,
                    };
                    Ok::<_, RemoteError>((key, r))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let mut first_err = None;
        for (key, r) in results {
            match r {
                Ok(ClaimOutcome::Won { etag, taken_over }) => {
                    report.taken_over += usize::from(taken_over);
                    won.insert(key, etag);
                }
                Ok(ClaimOutcome::Lost) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if !won.is_empty() {
            journal.won = won.clone();
            write_json_atomic(&jpath, &journal)?;
        }
        progress(Progress::Claiming {
            done: won.len(),
            total: target,
        });
        if let Some(e) = first_err {
            return Err(anyhow!(
                "{e}{}",
                if won.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} claims won so far are kept; `termtag pull` again resumes)",
                        won.len()
                    )
                }
            ));
        }
    }
    report.remaining = found.remaining();
    report.listed = found.listed;
    report.refused = std::mem::take(&mut found.refused);
    let totag = found.totag.take();

    // Download, `concurrency` at a time, into the cache (temporary file, then rename).
    let total = won.len();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let downloads: Vec<(String, Result<u64>)> = futures::stream::iter(won.keys().cloned())
        .map(|key| {
            let counter = &counter;
            async move {
                let r = async {
                    let dest = cache_path(project, &key)?;
                    let blob = format!("{}{key}", set.prefix);
                    let (bytes, _) = set.images.get(&blob).await?;
                    let n = bytes.len() as u64;
                    let dest2 = dest.clone();
                    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                        if let Some(dir) = dest2.parent() {
                            std::fs::create_dir_all(dir)?;
                        }
                        crate::fsutil::write_atomic(&dest2, &bytes)
                    })
                    .await
                    .map_err(|e| anyhow!("{e}"))?
                    .with_context(|| format!("{}: cannot write", show_path(&dest)))?;
                    Ok(n)
                }
                .await;
                let done = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(Progress::Downloading { done, total });
                (key, r)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut ok_keys = Vec::new();
    let mut outage = None;
    let mut local = None;
    for (key, r) in downloads {
        match r {
            Ok(n) => {
                report.bytes += n;
                ok_keys.push(key);
            }
            // The network failed: keep the claim for the next run, which resumes.
            Err(e)
                if e.downcast_ref::<RemoteError>()
                    .is_some_and(RemoteError::is_transient) =>
            {
                outage.get_or_insert(e);
            }
            // This machine cannot write the cache (disk full, permissions): not the image's
            // fault, so the claim is kept too, and the pull stops with one message.
            Err(e) if e.downcast_ref::<std::io::Error>().is_some() => {
                local.get_or_insert(e);
            }
            Err(e) => {
                // The image vanished or its name is unsafe: give the claim back.
                if let Some(etag) = won.get(&key) {
                    let _ = set.labels.delete(&set.claim_name(&key), Some(etag)).await;
                }
                journal.won.remove(&key);
                report.refused.push((for_terminal(&key), format!("{e:#}")));
            }
        }
    }
    // Either way the claims stay ours, in the journal, for the next pull to resume.
    let stopped = outage
        .map(|e| (e, ""))
        .or(local.map(|e| (e, "free space, then ")));
    if let Some((e, first)) = stopped {
        write_json_atomic(&jpath, &journal)?;
        return Err(anyhow!(
            "{e:#} ({} claims are kept; {first}`termtag pull` again resumes)",
            journal.won.len()
        ));
    }
    ok_keys.sort();

    // Record: images (probed from the cache) and claims, in one transaction.
    progress(Progress::Step("recording"));
    let max_mp = project.config.max_megapixels;
    let images: Vec<crate::store::NewImage> = ok_keys
        .iter()
        .map(|k| {
            let path = cache_path(project, k).unwrap_or_default();
            crate::index::probe(k, &path, max_mp)
        })
        .collect();
    let claims: Vec<NewClaim> = ok_keys
        .iter()
        .map(|k| NewClaim {
            key: k.clone(),
            remote: set.name.clone(),
            batch_id: journal.batch_id.clone(),
            etag: won[k].clone(),
            claimed_at: now,
            expires_at: journal.expires_at,
        })
        .collect();
    store.add_claimed_images(&images, &claims)?;
    for im in &images {
        if let Some(e) = &im.error {
            report
                .warnings
                .push(format!("{}: {}", for_terminal(&im.key), for_terminal(e)));
        }
    }

    // Predictions of the pulled images, through the ALD CSV importer.
    if let Some(rows) = &totag
        && project.config.task == Task::Detect
        && !ok_keys.is_empty()
    {
        let wanted: HashSet<&str> = ok_keys.iter().map(String::as_str).collect();
        let names: HashSet<&str> = ok_keys
            .iter()
            .map(|k| k.rsplit('/').next().unwrap_or(k))
            .collect();
        let text = rows
            .to_csv(|k| wanted.contains(k) || names.contains(k.rsplit('/').next().unwrap_or(k)))?;
        if text.lines().count() > 1 {
            let tmp = project.root.join(STATE_DIR).join("pulled-totag.csv");
            std::fs::write(&tmp, &text)?;
            // Classes the project lacks are dropped, with a warning, rather than failing a
            // pull whose claims are already won.
            let known = store.class_names()?;
            let class_col = rows.header.iter().position(|h| h.trim() == "class");
            let unknown: HashSet<String> = rows
                .rows
                .iter()
                .filter_map(|(_, r)| class_col.and_then(|i| r.get(i)).map(str::to_string))
                .filter(|c| c != "NULL" && !known.contains(c))
                .collect();
            let mut map = ClassMap::default();
            for c in &unknown {
                map.0.insert(c.clone(), None);
            }
            if !unknown.is_empty() {
                let mut u: Vec<_> = unknown.iter().map(|c| for_terminal(c)).collect();
                u.sort();
                report.warnings.push(format!(
                    "predictions of classes not in the project were skipped: {}",
                    u.join(", ")
                ));
            }
            match project.import(store, &tmp, FormatKind::AldCsv, true, &map, false, true) {
                Ok(r) => {
                    report.predictions = r.counts.labels;
                    report.warnings.extend(
                        r.warnings
                            .into_iter()
                            .filter(|w| !w.contains("not in this project")),
                    );
                }
                Err(e) => report
                    .warnings
                    .push(format!("predictions not imported: {e:#}")),
            }
            let _ = std::fs::remove_file(&tmp);
        }
    }
    let _ = std::fs::remove_file(&jpath);
    report.claimed = ok_keys;
    Ok(report)
}

#[derive(Debug, Default)]
pub struct PushReport {
    pub batch_id: Option<String>,
    pub images: usize,
    pub labels: usize,
    /// True when this push finished one that was interrupted.
    pub resumed: bool,
    pub csvs: Vec<String>,
    pub warnings: Vec<String>,
    /// Claimed images not reviewed yet: still held.
    pub still_held: usize,
}

/// The pushed batch: labels as termtag reads them back, and ALD `tagged` rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchDoc {
    pub batch_id: String,
    pub owner: String,
    pub pushed_at: i64,
    pub task: Task,
    pub images: Vec<BatchImage>,
    /// The batch as an ALD `tagged` CSV (with header); empty for classification.
    pub tagged_csv: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchImage {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub labels: Vec<BatchLabel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchLabel {
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PushJournal {
    batch: BatchDoc,
    /// key -> claim ETag to release with.
    claims: BTreeMap<String, Option<String>>,
    /// Steps done: 1 batch blob, 2 done markers, 3 CSVs, 4 claims released.
    stage: u8,
    csv_ms: Option<i64>,
}

/// Uploads the reviewed labels of claimed images as one immutable batch, marks them done,
/// writes new ALD CSVs and releases the claims. Resumes an interrupted push first.
pub async fn push(
    project: &Project,
    store: &mut Store,
    set: &RemoteSet,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PushReport> {
    let concurrency = project.config.remote.concurrency.max(1);
    let jpath = journal_path(project, PUSH_JOURNAL);
    let mut report = PushReport::default();
    let held = store.held_claims()?;
    let mut journal = match read_json::<PushJournal>(&jpath)? {
        Some(j) => {
            report.resumed = true;
            j
        }
        None => {
            let reviewed: BTreeMap<String, Option<String>> = held
                .iter()
                .filter(|c| c.status == "reviewed")
                .map(|c| (c.key.clone(), c.etag.clone()))
                .collect();
            report.still_held = held.len() - reviewed.len();
            if reviewed.is_empty() {
                return Ok(report);
            }
            let batch = build_batch(project, store, set, &reviewed)?;
            let j = PushJournal {
                batch,
                claims: reviewed,
                stage: 0,
                csv_ms: None,
            };
            write_json_atomic(&jpath, &j)?;
            j
        }
    };
    let keys: Vec<String> = journal.claims.keys().cloned().collect();
    report.batch_id = Some(journal.batch.batch_id.clone());
    report.images = journal.batch.images.len();
    report.labels = journal.batch.images.iter().map(|i| i.labels.len()).sum();

    if journal.stage < 1 {
        progress(Progress::Step("uploading the batch"));
        let name = set.batch_name(&journal.batch.batch_id);
        let body = serde_json::to_vec_pretty(&journal.batch)?;
        match set.labels.put(&name, body.clone(), PutMode::Create).await {
            Ok(_) | Err(RemoteError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        journal.stage = 1;
        write_json_atomic(&jpath, &journal)?;
    }
    if journal.stage < 2 {
        let total = keys.len();
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let batch_id = journal.batch.batch_id.clone();
        let results: Vec<RemoteResult<()>> = futures::stream::iter(keys.clone())
            .map(|key: String| {
                let counter = &counter;
                let body = batch_id.clone().into_bytes();
                async move {
                    let name = set.done_name(&key);
                    let r = match set.labels.put(&name, body.clone(), PutMode::Create).await {
                        Ok(_) | Err(RemoteError::Conflict(_)) => Ok(()),
                        Err(e) => Err(e),
                    };
                    let done = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(Progress::Uploading { done, total });
                    r
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(anyhow!("{e} (`termtag push` again resumes this batch)"));
        }
        journal.stage = 2;
        write_json_atomic(&jpath, &journal)?;
    }
    if journal.stage < 3 {
        progress(Progress::Step("writing the ALD CSVs"));
        if journal.csv_ms.is_none() {
            journal.csv_ms = Some(now_ms());
            write_json_atomic(&jpath, &journal)?;
        }
        let ms = journal.csv_ms.unwrap_or_else(now_ms);
        report.csvs = write_ald_csvs(set, &journal.batch, ms)
            .await
            .map_err(|e| anyhow!("{e:#} (`termtag push` again resumes this batch)"))?;
        journal.stage = 3;
        write_json_atomic(&jpath, &journal)?;
    }
    if journal.stage < 4 {
        progress(Progress::Step("releasing claims"));
        let releases: Vec<(String, RemoteResult<()>)> =
            futures::stream::iter(journal.claims.clone())
                .map(|(key, etag): (String, Option<String>)| async move {
                    let name = set.claim_name(&key);
                    let r = set.labels.delete(&name, etag.as_deref()).await;
                    (key, r)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let mut first_err = None;
        for (key, r) in releases {
            match r {
                Ok(()) | Err(RemoteError::NotFound(_)) => {}
                Err(RemoteError::Conflict(_)) => report.warnings.push(format!(
                    "{}: the claim had expired and was taken over by another annotator; your labels were pushed, theirs will follow",
                    for_terminal(&key)
                )),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(anyhow!("{e} (`termtag push` again resumes this batch)"));
        }
        report.warnings.sort();
        journal.stage = 4;
        write_json_atomic(&jpath, &journal)?;
    }
    store.release_claims(&keys)?;
    std::fs::remove_file(&jpath)
        .with_context(|| format!("{}: cannot remove", show_path(&jpath)))?;
    if report.resumed {
        report.still_held = store.held_claims()?.len();
    }
    Ok(report)
}

fn build_batch(
    project: &Project,
    store: &Store,
    set: &RemoteSet,
    keys: &BTreeMap<String, Option<String>>,
) -> Result<BatchDoc> {
    let ds = store.dataset(false)?;
    let images: Vec<_> = ds
        .images
        .into_iter()
        .filter(|im| keys.contains_key(&im.key))
        .collect();
    let now = now_ms();
    let batch_id = format!("{now}-{}", random_hex(4));
    let tagged_csv = if project.config.task == Task::Detect {
        let tmp = project.root.join(STATE_DIR).join("push-tagged.csv");
        let sub = Dataset {
            classes: ds.classes.clone(),
            images: images.clone(),
        };
        FormatKind::AldCsv.export(
            &sub,
            &ExportCtx {
                task: project.config.task,
                out: &tmp,
                predictions: false,
                url_prefix: "",
            },
        )?;
        let text = std::fs::read_to_string(&tmp)?;
        let _ = std::fs::remove_file(&tmp);
        text
    } else {
        String::new()
    };
    Ok(BatchDoc {
        batch_id,
        owner: set.owner.clone(),
        pushed_at: now,
        task: project.config.task,
        images: images
            .into_iter()
            .map(|im| BatchImage {
                key: im.key,
                width: im.width,
                height: im.height,
                labels: im
                    .labels
                    .into_iter()
                    .map(|l| BatchLabel {
                        class: l.class,
                        bbox: l.bbox.map(|b| [b.x0, b.y0, b.x1, b.y1]),
                    })
                    .collect(),
            })
            .collect(),
        tagged_csv,
    })
}

/// Writes `tagged_<ms>.csv` (the newest one, plus recent batches, plus this batch),
/// `totag_<ms>.csv` (the newest one without anything tagged) and `tagging_<ms>.csv` (the newest
/// totag rows of images claimed now). Each with `If-None-Match: *`, so a retry rewrites nothing.
async fn write_ald_csvs(set: &RemoteSet, batch: &BatchDoc, ms: i64) -> Result<Vec<String>> {
    if batch.tagged_csv.is_empty() {
        return Ok(Vec::new());
    }
    let mut mine = parse_ald(&batch.tagged_csv, "batch")?;
    let newest_tagged = newest_csv(set, "tagged").await?;
    // Rows by image key; later sources replace earlier ones for the same image.
    let mut merged: BTreeMap<String, Vec<csv::StringRecord>> = BTreeMap::new();
    fn add(merged: &mut BTreeMap<String, Vec<csv::StringRecord>>, rows: AldRows) {
        let mut fresh: BTreeMap<String, Vec<csv::StringRecord>> = BTreeMap::new();
        for (k, r) in rows.rows {
            fresh.entry(k).or_default().push(r);
        }
        merged.extend(fresh);
    }
    let mut since = i64::MIN;
    if let Some((tms, name)) = &newest_tagged
        && *tms != ms
    {
        let text = get_text(set.labels.as_ref(), name).await?;
        let rows = parse_ald(&text, &for_terminal(name))?;
        // Keep the layout the project already uses.
        mine = mine.conform(&rows.header).map_err(|e| {
            anyhow!(
                "{}: its columns differ from termtag's tagged CSV ({e}); move it aside or fix it",
                for_terminal(name)
            )
        })?;
        add(&mut merged, rows);
        since = tms - MERGE_WINDOW_MS;
    } else if let Some((_, name)) = newest_csv(set, "totag").await? {
        // The first tagged CSV takes the layout of the project's predictions.
        let text = get_text(set.labels.as_ref(), &name).await?;
        let folder = parse_ald(&text, &for_terminal(&name))?
            .header
            .iter()
            .any(|c| c.trim() == "folder");
        let header = crate::formats::ald_csv::tagged_columns(folder)
            .into_iter()
            .collect();
        mine = mine.conform(&header).map_err(|e| {
            anyhow!(
                "{}: {e}; termtag cannot write its tagged CSV in the same layout",
                for_terminal(&name)
            )
        })?;
    }
    // Batches pushed around the same time by others, which the newest CSV may lack.
    let bprefix = set.batch_name("");
    let bprefix = bprefix.trim_end_matches(".json");
    let mut recent: Vec<BlobInfo> = list_all(set.labels.as_ref(), bprefix)
        .await?
        .into_iter()
        .filter(|b| {
            b.name[bprefix.len()..]
                .split('-')
                .next()
                .and_then(|m| m.parse::<i64>().ok())
                .is_some_and(|m| m >= since)
        })
        .filter(|b| b.name != set.batch_name(&batch.batch_id))
        .collect();
    recent.sort_by(|a, b| a.name.cmp(&b.name));
    for b in recent {
        let text = get_text(set.labels.as_ref(), &b.name).await?;
        if let Ok(doc) = serde_json::from_str::<BatchDoc>(&text)
            && !doc.tagged_csv.is_empty()
            && let Ok(rows) = parse_ald(&doc.tagged_csv, "batch")
            && let Ok(rows) = rows.conform(&mine.header)
        {
            add(&mut merged, rows);
        }
    }
    let tagged_keys: HashSet<String> = merged
        .keys()
        .cloned()
        .chain(mine.rows.iter().map(|(k, _)| k.clone()))
        .collect();
    let header = mine.header.clone();
    add(&mut merged, mine);
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(&header)?;
    for rows in merged.values() {
        for r in rows {
            w.write_record(r)?;
        }
    }
    let tagged = w.into_inner().map_err(|e| anyhow!("{e}"))?;

    let mut files = vec![(format!("{}tagged_{ms}.csv", set.prefix), tagged)];
    if let Some((_, name)) = newest_csv(set, "totag").await? {
        let text = get_text(set.labels.as_ref(), &name).await?;
        let rows = parse_ald(&text, &for_terminal(&name))?;
        let claim_prefix = set.claim_name("");
        let claimed: HashSet<String> = list_all(set.labels.as_ref(), &claim_prefix)
            .await?
            .into_iter()
            .map(|b| b.name[claim_prefix.len()..].to_string())
            .filter(|k| !batch.images.iter().any(|i| &i.key == k))
            .collect();
        let totag = rows.to_csv(|k| !tagged_keys.contains(k))?;
        let tagging = rows.to_csv(|k| claimed.contains(k) && !tagged_keys.contains(k))?;
        files.push((format!("{}totag_{ms}.csv", set.prefix), totag.into_bytes()));
        files.push((
            format!("{}tagging_{ms}.csv", set.prefix),
            tagging.into_bytes(),
        ));
    }
    let mut written = Vec::new();
    for (name, body) in files {
        match set.labels.put(&name, body.clone(), PutMode::Create).await {
            Ok(_) | Err(RemoteError::Conflict(_)) => written.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

/// Reads back every pushed batch (for audits, tests and merging).
pub async fn read_batches(set: &RemoteSet) -> Result<Vec<BatchDoc>> {
    let prefix = set.batch_name("");
    let prefix = prefix.trim_end_matches(".json");
    let mut out = Vec::new();
    for b in list_all(set.labels.as_ref(), prefix).await? {
        let text = get_text(set.labels.as_ref(), &b.name).await?;
        out.push(
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a termtag batch", for_terminal(&b.name)))?,
        );
    }
    Ok(out)
}

/// Reads an ALD CSV from the labels container: `(image key, row)` pairs, header first.
pub async fn read_ald_csv(
    set: &RemoteSet,
    name: &str,
) -> Result<(Vec<String>, Vec<(String, Vec<String>)>)> {
    let text = get_text(set.labels.as_ref(), name).await?;
    let rows = parse_ald(&text, &for_terminal(name))?;
    Ok((
        rows.header.iter().map(str::to_string).collect(),
        rows.rows
            .into_iter()
            .map(|(k, r)| (k, r.iter().map(str::to_string).collect()))
            .collect(),
    ))
}

/// The newest `<kind>_<ms>.csv` name (`kind`: totag, tagging, tagged).
pub async fn newest_ald_csv(set: &RemoteSet, kind: &str) -> Result<Option<String>> {
    Ok(newest_csv(set, kind).await?.map(|(_, n)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TUI runs pull and push on background tasks: their futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(p: &Project, s: &mut Store, set: &RemoteSet) {
        fn send<T: Send>(_: T) {}
        send(pull(p, s, set, &PullOptions::default(), &|_| {}));
    }

    #[allow(dead_code)]
    fn push_is_send(p: &Project, s: &mut Store, set: &RemoteSet) {
        fn send<T: Send>(_: T) {}
        send(push(p, s, set, &|_| {}));
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalise_prefix("").unwrap(), "");
        assert_eq!(normalise_prefix("/a/b/").unwrap(), "a/b/");
        assert!(normalise_prefix("../x").is_err());
    }

    #[test]
    fn confidences_rank_boxes_and_null_rows() {
        let text = "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n\
                    a.jpg,can,0.1,0.2,0.1,0.2,10,10,,0.9,0.4\n\
                    a.jpg,can,0.1,0.2,0.1,0.2,10,10,,0.4,0.4\n\
                    b.jpg,NULL,0,0,0,0,10,10,,0,0\n\
                    c.jpg,can,0.1,0.2,0.1,0.2,10,10,sub,0.7,0.7\n";
        let rows = parse_ald(text, "t").unwrap();
        let c = rows.confidences();
        assert_eq!(c["a.jpg"], Some(0.4));
        assert_eq!(c["b.jpg"], None);
        assert_eq!(c["sub/c.jpg"], Some(0.7));
        let kept = rows.to_csv(|k| k == "b.jpg").unwrap();
        assert_eq!(kept.lines().count(), 2);
        assert!(parse_ald("x,y\n1,2\n", "t").is_err());
    }
}

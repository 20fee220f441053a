//! Shared by the remote tests and the remote benchmark: the two backends behind one setup,
//! an Azurite of one's own that can be stopped and restarted, and real PNG images.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use termtag::model::Task;
use termtag::project::Project;
use termtag::remote::auth::{AZURITE_KEY, MapEnv, account_sas};
use termtag::remote::{PutMode, Remote, RemoteSet, open_with_env};

/// The Azurite that scripts/test.sh started.
pub fn azurite_url() -> String {
    match std::env::var("AZURITE_BLOB_URL") {
        Ok(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
        _ => panic!(
            "AZURITE_BLOB_URL is not set: the Azure Blob tests need Azurite; run them with scripts/test.sh (it installs and starts Azurite)"
        ),
    }
}

pub fn azurite_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/azurite-3.35.0/node_modules/.bin/azurite-blob");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh once (it installs Azurite 3.35.0 into .tools/)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An Azurite of our own on a free port, with its data on disk so it survives a restart.
pub struct OwnAzurite {
    pub port: u16,
    pub data: tempfile::TempDir,
    child: Option<Child>,
    in_memory: bool,
}

impl OwnAzurite {
    pub fn start() -> OwnAzurite {
        Self::start_with(false)
    }

    /// One that keeps everything in memory (`--inMemoryPersistence`): lost when stopped, but
    /// quicker to fill with the 100,000 blobs of a scale benchmark.
    #[allow(dead_code)]
    pub fn start_in_memory() -> OwnAzurite {
        Self::start_with(true)
    }

    fn start_with(in_memory: bool) -> OwnAzurite {
        let mut a = OwnAzurite {
            port: free_port(),
            data: tempfile::tempdir().unwrap(),
            child: None,
            in_memory,
        };
        a.launch();
        a
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(azurite_bin());
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string());
        // Azurite refuses a location with in-memory persistence.
        if !self.in_memory {
            cmd.arg("--location").arg(self.data.path());
        }
        let child = cmd
            .args([
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
            ])
            .args(self.in_memory.then_some("--inMemoryPersistence"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("azurite did not start on port {}", self.port);
    }

    /// Stops it the way an outage would look to a client: the port goes dead.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            for _ in 0..100 {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for OwnAzurite {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A small real PNG, different for each `i`.
pub fn png(i: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 12, |x, y| {
        image::Rgb([(i * 37 % 256) as u8, (x * 9) as u8, (y * 13 + i) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{:x}-{}-{}",
        (t % 0xffff_ffff) as u64,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One remote (a pair of containers) that several annotator projects share.
#[derive(Clone)]
pub enum Backend {
    Azure {
        url: String,
        images: String,
        labels: String,
    },
    Local {
        root: PathBuf,
        images: String,
        labels: String,
    },
}

impl Backend {
    pub fn azure(url: &str, tag: &str) -> Backend {
        Backend::Azure {
            url: url.to_string(),
            images: unique(&format!("i{tag}")),
            labels: unique(&format!("l{tag}")),
        }
    }

    pub fn local(root: &Path) -> Backend {
        Backend::Local {
            root: root.to_path_buf(),
            images: "activelearningimages".into(),
            labels: "activelearninglabels".into(),
        }
    }

    pub fn is_azure(&self) -> bool {
        matches!(self, Backend::Azure { .. })
    }

    /// Credentials as an annotator would set them: the dev account's name and key.
    pub fn env(&self) -> MapEnv {
        MapEnv(HashMap::from([
            (
                "AZURE_STORAGE_ACCOUNT".to_string(),
                "devstoreaccount1".to_string(),
            ),
            ("AZURE_STORAGE_KEY".to_string(), AZURITE_KEY.to_string()),
        ]))
    }

    /// A SAS URL with only these permissions, signed from the dev account key.
    pub fn sas_env(&self, permissions: &str) -> MapEnv {
        let Backend::Azure { url, .. } = self else {
            panic!("SAS only for Azure")
        };
        let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let sas = account_sas("devstoreaccount1", AZURITE_KEY, permissions, expiry, false).unwrap();
        MapEnv(HashMap::from([(
            "AZURE_STORAGE_SAS_URL".to_string(),
            format!("{url}?{sas}"),
        )]))
    }

    /// A new annotator's project on this remote, in `dir`.
    pub fn project(&self, dir: &Path) -> Project {
        let classes = vec!["can".to_string(), "bottle".to_string()];
        let mut p = match self {
            Backend::Azure { url, images, .. } => Project::init(
                dir,
                Task::Detect,
                &classes,
                Some(&format!("{url}/{images}")),
            )
            .unwrap(),
            Backend::Local { .. } => Project::init(dir, Task::Detect, &classes, None).unwrap(),
        };
        match self {
            Backend::Azure { labels, .. } => p.config.remote.labels_container = labels.clone(),
            Backend::Local {
                root,
                images,
                labels,
            } => {
                p.config.remote.folder = Some(root.clone());
                p.config.remote.images_container = images.clone();
                p.config.remote.labels_container = labels.clone();
            }
        }
        p
    }

    pub fn open(&self, project: &Project) -> RemoteSet {
        open_with_env(project, &self.env()).unwrap()
    }

    /// Creates the containers and uploads `n` images `img_000.png`.. plus an optional totag CSV.
    pub async fn seed(&self, set: &RemoteSet, n: u32, totag: Option<&str>) {
        set.images.ensure_exists().await.unwrap();
        set.labels.ensure_exists().await.unwrap();
        let uploads = (0..n).map(|i| {
            let images = set.images.clone();
            async move {
                images
                    .put(&format!("img_{i:03}.png"), png(i), PutMode::Overwrite)
                    .await
                    .unwrap();
            }
        });
        futures::stream::iter(uploads)
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        if let Some(csv) = totag {
            set.labels
                .put("totag_1000.csv", csv.as_bytes().to_vec(), PutMode::Create)
                .await
                .unwrap();
        }
    }
}

use futures::StreamExt as _;

pub mod fault_proxy;

/// Count of blobs under `prefix`.
pub async fn count(remote: &dyn Remote, prefix: &str) -> usize {
    termtag::remote::list_all(remote, prefix)
        .await
        .unwrap()
        .len()
}

/// Reviews every claimed image: one `can` box each.
pub fn label_claimed(s: &mut termtag::store::Store) -> Vec<String> {
    let keys: Vec<String> = s
        .held_claims()
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    use termtag::model::{BBox, Dataset, ImageLabels, Label};
    let ds = Dataset {
        classes: vec!["can".into(), "bottle".into()],
        images: keys
            .iter()
            .map(|k| ImageLabels {
                key: k.clone(),
                width: 16,
                height: 12,
                labels: vec![Label {
                    class: "can".into(),
                    bbox: Some(BBox {
                        x0: 0.25,
                        y0: 0.25,
                        x1: 0.75,
                        y1: 0.5,
                    }),
                    score: None,
                }],
            })
            .collect(),
    };
    s.import_labels(&ds, "test").unwrap();
    keys
}

/// The real backend, counting requests (all of them, and listings of the whole container), with
/// an optional delay added to each: a stand-in for the round trip to a distant storage account,
/// which localhost Azurite does not have.
pub struct Counted {
    pub inner: std::sync::Arc<dyn Remote>,
    delay: std::time::Duration,
    whole: AtomicU64,
    all: AtomicU64,
}

#[allow(dead_code)]
impl Counted {
    pub fn new(inner: std::sync::Arc<dyn Remote>) -> Counted {
        Counted::delayed(inner, std::time::Duration::ZERO)
    }
    pub fn delayed(inner: std::sync::Arc<dyn Remote>, delay: std::time::Duration) -> Counted {
        Counted {
            inner,
            delay,
            whole: AtomicU64::new(0),
            all: AtomicU64::new(0),
        }
    }
    /// Both containers of `set` behind `delay`.
    pub fn wrap(set: &RemoteSet, delay: std::time::Duration) -> RemoteSet {
        RemoteSet {
            images: std::sync::Arc::new(Counted::delayed(set.images.clone(), delay)),
            labels: std::sync::Arc::new(Counted::delayed(set.labels.clone(), delay)),
            ..set.clone()
        }
    }
    /// Pages of listings of the whole container (an empty prefix).
    pub fn whole_listings(&self) -> u64 {
        self.whole.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> u64 {
        self.all.load(Ordering::SeqCst)
    }
    async fn request(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

#[async_trait::async_trait]
impl Remote for Counted {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn ensure_exists(&self) -> termtag::remote::RemoteResult<()> {
        self.inner.ensure_exists().await
    }
    async fn list_page(
        &self,
        prefix: &str,
        marker: Option<String>,
    ) -> termtag::remote::RemoteResult<termtag::remote::Page> {
        self.request().await;
        if prefix.is_empty() {
            self.whole.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.list_page(prefix, marker).await
    }
    async fn get(&self, name: &str) -> termtag::remote::RemoteResult<(Vec<u8>, String)> {
        self.request().await;
        self.inner.get(name).await
    }
    async fn put(
        &self,
        name: &str,
        data: Vec<u8>,
        mode: PutMode,
    ) -> termtag::remote::RemoteResult<String> {
        self.request().await;
        self.inner.put(name, data, mode).await
    }
    async fn delete(
        &self,
        name: &str,
        if_match: Option<&str>,
    ) -> termtag::remote::RemoteResult<()> {
        self.request().await;
        self.inner.delete(name, if_match).await
    }
}

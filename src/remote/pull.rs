//! `pull`, as named steps: find the candidates (`candidates.rs`: ranked from the team's
//! predictions, listing the container only when they run out) → claim the first
//! `count` → download them into the cache → record them in the store → import their
//! predictions. A journal of the claims won lets an interrupted pull resume.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::candidates::{self, Candidates};
use super::claim::{ClaimDoc, ClaimOutcome, is_done, release, try_claim};
use super::journal::{JournalError, PULL_JOURNAL, journal_path, read_json, write_json_atomic};
use super::set::random_hex;
use super::{Progress, RemoteError, RemoteResult, RemoteSet};
use crate::formats::ald_csv::{self, Rows};
use crate::formats::{FormatKind, ImportCtx};
use crate::logging::causes;
use crate::model::Task;
use crate::project::{ClassMap, Project, ProjectError};
use crate::queue::QueueParams;
use crate::sanitize::for_terminal;
use crate::sanitize::show_path;
use crate::store::{NewClaim, Store, StoreError, now_ms};

/// Why a pull stopped. Claims already won are kept (in the journal) whenever the message says
/// so, and `termtag pull` again resumes them.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The labels container's active-learning-detect CSVs.
    #[error(transparent)]
    Ald(#[from] super::ald::AldError),
    /// A fleet's prediction parts.
    #[error(transparent)]
    Fleet(#[from] super::fleet::FleetError),
    /// A claim request failed; `kept` claims won before it stay ours.
    #[error("{source}{}", kept_note(.kept))]
    Claim { source: RemoteError, kept: usize },
    /// Downloads stopped on an outage or an unwritable cache; every claim is kept.
    #[error("{} ({kept} claims are kept; {first}`termtag pull` again resumes)", causes(.source))]
    Stopped {
        source: FetchError,
        kept: usize,
        /// What to do before pulling again (`free space, then `), or nothing.
        first: &'static str,
    },
}

fn kept_note(kept: &usize) -> String {
    if *kept == 0 {
        String::new()
    } else {
        format!(" ({kept} claims won so far are kept; `termtag pull` again resumes)")
    }
}

/// Why one image could not be brought into the cache.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Its key names no place in the cache.
    #[error(transparent)]
    Key(#[from] ProjectError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// This machine cannot write the cache (disk full, permissions): not the image's fault.
    #[error("{path}: cannot write")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// The write was cancelled, or panicked.
    #[error("{0}")]
    Task(tokio::task::JoinError),
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub count: usize,
    /// Overrides `[remote] claim_hours` (tests use seconds).
    pub claim_ttl: Option<std::time::Duration>,
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

/// What one pull works with: the project, the remote, the journal and the report it fills.
struct Pull<'a> {
    project: &'a Project,
    set: &'a RemoteSet,
    concurrency: usize,
    jpath: std::path::PathBuf,
    journal: PullJournal,
    now: i64,
    report: PullReport,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
}

/// Claims the first `count` unclaimed images of the review queue, downloads them into the cache
/// and adds them to the store as claimed, with their predictions from the newest `totag` CSV.
pub async fn pull(
    project: &Project,
    store: &mut Store,
    set: &RemoteSet,
    opts: &PullOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PullReport, PullError> {
    let mut p = Pull::start(project, set, opts, progress)?;
    let cfg = &project.config;
    let params = QueueParams::new(&cfg.queue, cfg.min_confidence, store.class_names()?.len());
    let taken = candidates::taken(store, &p.journal.won)?;
    let mut found = Candidates::find(set, taken, params, p.concurrency, progress).await?;
    let won = p.claim(&mut found, opts.count).await?;
    p.report.remaining = found.remaining();
    p.report.listed = found.listed;
    p.report.refused.append(&mut found.refused);
    let keys = p.download(&won).await?;
    p.record(store, &won, &keys)?;
    // The signatures the fleet took: `[queue] diversity` on the screen need not decode these.
    let sigs: Vec<(String, crate::diversity::Signature)> = keys
        .iter()
        .filter_map(|k| Some((k.clone(), found.signatures.get(k)?.clone())))
        .collect();
    store.write_signatures_by_key(&sigs)?;
    if let Some(totag) = &found.totag {
        p.import_predictions(store, totag, &keys)?;
    }
    let _ = std::fs::remove_file(&p.jpath);
    p.report.claimed = keys;
    Ok(p.report)
}

impl<'a> Pull<'a> {
    /// Resumes the journal of an interrupted pull, or starts a new batch.
    fn start(
        project: &'a Project,
        set: &'a RemoteSet,
        opts: &PullOptions,
        progress: &'a (dyn Fn(Progress) + Send + Sync),
    ) -> Result<Pull<'a>, JournalError> {
        let cfg = &project.config.remote;
        let ttl = opts.claim_ttl.unwrap_or_else(|| cfg.claim_ttl());
        let jpath = journal_path(&project.root, PULL_JOURNAL);
        let mut journal: PullJournal = read_json(&jpath)?.unwrap_or_default();
        let now = now_ms();
        if journal.batch_id.is_empty() {
            journal.batch_id = format!("{now}-{}", random_hex(4));
            journal.expires_at = now + ttl.as_millis() as i64;
        }
        let report = PullReport {
            batch_id: journal.batch_id.clone(),
            resumed: journal.won.len(),
            ..PullReport::default()
        };
        Ok(Pull {
            project,
            set,
            concurrency: opts.concurrency.unwrap_or(cfg.concurrency).max(1),
            jpath,
            journal,
            now,
            report,
            progress,
        })
    }

    /// Re-asserts the claims of an interrupted pull, then claims candidates in rounds of as many
    /// as are still needed, `concurrency` at a time, until `count` are won. Returns key → ETag.
    async fn claim(
        &mut self,
        candidates: &mut Candidates<'_>,
        count: usize,
    ) -> Result<BTreeMap<String, String>, PullError> {
        let set = self.set;
        let (batch, claimed_at, expires_at) = (
            self.journal.batch_id.clone(),
            self.now,
            self.journal.expires_at,
        );
        let doc = |key: &str| ClaimDoc {
            image: key.to_string(),
            owner: set.owner.clone(),
            batch: batch.clone(),
            claimed_at,
            expires_at,
        };
        let mut won: BTreeMap<String, String> = BTreeMap::new();
        let resume: Vec<String> = self.journal.won.keys().cloned().collect();
        for key in resume {
            if let ClaimOutcome::Won { etag, .. } = try_claim(set, &key, &doc(&key)).await? {
                won.insert(key, etag);
            }
        }
        // Claims resumed from an interrupted pull count toward this one.
        let target = count.max(won.len());
        while won.len() < target {
            let round = candidates.next_round(target - won.len()).await?;
            if round.is_empty() {
                break;
            }
            let results: Vec<(String, RemoteResult<ClaimOutcome>)> = futures::stream::iter(round)
                .map(|key| {
                    let d = doc(&key);
                    async move {
                        let r = match try_claim(set, &key, &d).await {
                            Ok(ClaimOutcome::Won { etag, .. }) if is_done(set, &key).await? => {
                                // Pushed between our listing and our claim (a push writes
                                // `done/` before it releases the claim we just replaced):
                                // give it back.
                                let _ = release(set, &key, Some(&etag)).await;
                                Ok(ClaimOutcome::Lost)
                            }
                            r => r,
                        };
                        Ok::<_, RemoteError>((key, r))
                    }
                })
                .buffer_unordered(self.concurrency)
                .try_collect()
                .await?;
            let mut first_err = None;
            for (key, r) in results {
                match r {
                    Ok(ClaimOutcome::Won { etag, taken_over }) => {
                        self.report.taken_over += usize::from(taken_over);
                        won.insert(key, etag);
                    }
                    Ok(ClaimOutcome::Lost) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if !won.is_empty() {
                self.journal.won = won.clone();
                write_json_atomic(&self.jpath, &self.journal)?;
            }
            (self.progress)(Progress::Claiming {
                done: won.len(),
                total: target,
            });
            if let Some(source) = first_err {
                return Err(PullError::Claim {
                    source,
                    kept: won.len(),
                });
            }
        }
        Ok(won)
    }

    /// Downloads the claimed images, `concurrency` at a time, into the cache (temporary file,
    /// then rename). Returns the keys now in the cache, sorted. An image that vanished or has an
    /// unsafe name gives its claim back; an outage or an unwritable cache stops the pull with
    /// every claim kept for the next one.
    async fn download(&mut self, won: &BTreeMap<String, String>) -> Result<Vec<String>, PullError> {
        let (project, set) = (self.project, self.set);
        let total = won.len();
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let progress = self.progress;
        let downloads: Vec<(String, Result<u64, FetchError>)> =
            futures::stream::iter(won.keys().cloned())
                .map(|key| {
                    let counter = &counter;
                    async move {
                        let r = fetch_into_cache(project, set, &key).await;
                        let done = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        progress(Progress::Downloading { done, total });
                        (key, r)
                    }
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut keys = Vec::new();
        let mut outage = None;
        let mut local = None;
        for (key, r) in downloads {
            match r {
                Ok(n) => {
                    self.report.bytes += n;
                    keys.push(key);
                }
                // The network failed: keep the claim for the next run, which resumes.
                Err(FetchError::Remote(e)) if e.is_transient() => {
                    outage.get_or_insert(FetchError::Remote(e));
                }
                // This machine cannot write the cache (disk full, permissions): not the image's
                // fault, so the claim is kept too, and the pull stops with one message.
                Err(e @ FetchError::Write { .. }) => {
                    local.get_or_insert(e);
                }
                Err(e) => {
                    // The image vanished or its name is unsafe: give the claim back.
                    if let Some(etag) = won.get(&key) {
                        let _ = release(set, &key, Some(etag)).await;
                    }
                    self.journal.won.remove(&key);
                    self.report.refused.push((for_terminal(&key), causes(&e)));
                }
            }
        }
        // Either way the claims stay ours, in the journal, for the next pull to resume.
        let stopped = outage
            .map(|e| (e, ""))
            .or(local.map(|e| (e, "free space, then ")));
        if let Some((source, first)) = stopped {
            write_json_atomic(&self.jpath, &self.journal)?;
            return Err(PullError::Stopped {
                source,
                kept: self.journal.won.len(),
                first,
            });
        }
        keys.sort();
        Ok(keys)
    }

    /// Adds the downloaded images (probed from the cache) and their claims, in one transaction.
    fn record(
        &mut self,
        store: &mut Store,
        won: &BTreeMap<String, String>,
        keys: &[String],
    ) -> Result<(), StoreError> {
        (self.progress)(Progress::Step("recording"));
        let max_mp = self.project.config.max_megapixels;
        let images: Vec<crate::store::NewImage> = keys
            .iter()
            .map(|k| {
                let path = self.project.image_file(k).unwrap_or_default();
                crate::index::probe(k, &path, max_mp)
            })
            .collect();
        let claims: Vec<NewClaim> = keys
            .iter()
            .map(|k| NewClaim {
                key: k.clone(),
                remote: self.set.name.clone(),
                batch_id: self.journal.batch_id.clone(),
                etag: won[k].clone(),
                claimed_at: self.now,
                expires_at: self.journal.expires_at,
            })
            .collect();
        store.add_claimed_images(&images, &claims)?;
        for im in &images {
            if let Some(e) = &im.error {
                self.report.warnings.push(format!(
                    "{}: {}",
                    for_terminal(&im.key),
                    for_terminal(e)
                ));
            }
        }
        Ok(())
    }

    /// The predictions of the pulled images, from the `totag` rows, through the ALD importer.
    /// Classes the project lacks are dropped with a warning rather than failing a pull whose
    /// claims are already won.
    fn import_predictions(
        &mut self,
        store: &mut Store,
        (totag_name, totag): &(String, Rows),
        keys: &[String],
    ) -> Result<(), StoreError> {
        let project = self.project;
        if project.config.task != Task::Detect || keys.is_empty() {
            return Ok(());
        }
        let wanted: HashSet<&str> = keys.iter().map(String::as_str).collect();
        let names: HashSet<&str> = keys
            .iter()
            .map(|k| k.rsplit('/').next().unwrap_or(k))
            .collect();
        let keep =
            |k: &str| wanted.contains(k) || names.contains(k.rsplit('/').next().unwrap_or(k));
        if !totag.rows.iter().any(|(k, _)| keep(k)) {
            return Ok(());
        }
        let known = store.class_names()?;
        let class_col = totag.header.iter().position(|h| h.trim() == "class");
        let unknown: HashSet<String> = totag
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
            self.report.warnings.push(format!(
                "predictions of classes not in the project were skipped: {}",
                u.join(", ")
            ));
        }
        let name = Path::new(totag_name);
        let read = |ctx: &ImportCtx<'_>| ald_csv::read_rows(totag, keep, name, ctx);
        match project.import_with(
            store,
            name,
            read,
            FormatKind::AldCsv,
            true,
            &map,
            false,
            true,
        ) {
            Ok(r) => {
                self.report.predictions = r.counts.labels;
                self.report.warnings.extend(
                    r.warnings
                        .into_iter()
                        .filter(|w| !w.contains("not in this project")),
                );
            }
            Err(e) => self
                .report
                .warnings
                .push(format!("predictions not imported: {}", causes(&e))),
        }
        Ok(())
    }
}

/// Downloads one image into the cache; returns its size.
async fn fetch_into_cache(
    project: &Project,
    set: &RemoteSet,
    key: &str,
) -> Result<u64, FetchError> {
    let dest = project.image_file(key)?;
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
    .map_err(FetchError::Task)?
    .map_err(|source| FetchError::Write {
        path: show_path(&dest),
        source,
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::error_line;

    /// A stopped pull says the cause once, then what was kept and what to do, on one line.
    #[test]
    fn a_stopped_pull_names_the_file_its_cause_and_what_to_do_once() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let e = PullError::Stopped {
            source: FetchError::Write {
                path: "cache/a.jpg".into(),
                source: full,
            },
            kept: 3,
            first: "free space, then ",
        };
        assert_eq!(
            error_line(&e),
            "termtag: cache/a.jpg: cannot write: no storage space (3 claims are kept; free space, then `termtag pull` again resumes)"
        );
        let lost = PullError::Claim {
            source: RemoteError::Conflict("claims/a.jpg".into()),
            kept: 0,
        };
        assert_eq!(
            error_line(&lost),
            "termtag: claims/a.jpg: changed by someone else meanwhile (condition failed)"
        );
    }
}

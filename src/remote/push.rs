//! `push`, as named steps: build the batch from the reviewed claimed images → upload it →
//! mark its images done → write the ALD CSVs → release the claims. Each step is recorded in a
//! journal, so an interrupted push resumes where it stopped; every remote write is conditional
//! or idempotent.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::ald::{get_text, newest_csv, read_newest};
use super::claim::{claimed_keys, release};
use super::journal::{JournalError, PUSH_JOURNAL, journal_path, read_json, write_json_atomic};
use super::set::random_hex;
use super::{BlobInfo, Progress, PutMode, RemoteError, RemoteResult, RemoteSet, list_all};
use crate::formats::ald_csv::{self, LosesFolder, Rows};
use crate::formats::{ExportCtx, FormatError};
use crate::logging::causes;
use crate::model::{Dataset, ImageStatus, Task};
use crate::project::Project;
use crate::sanitize::for_terminal;
use crate::sanitize::show_path;
use crate::store::{Store, StoreError, now_ms};

/// Why a push stopped. Once its batch is built, the journal keeps it: `termtag push` again
/// resumes where this one stopped.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Ald(#[from] super::ald::AldError),
    /// A step after the batch blob failed.
    #[error("{} (`termtag push` again resumes this batch)", causes(.0))]
    Resume(#[source] Box<PushError>),
    #[error("batch {id}: cannot encode")]
    Encode {
        id: String,
        source: serde_json::Error,
    },
    /// The newest `tagged` CSV (`name`) cannot take the batch's rows. The reason is quoted in the
    /// middle of the message, so it is a field, not a source the error line would repeat.
    #[error(
        "{name}: its columns differ from termtag's tagged CSV ({why}); move it aside or fix it"
    )]
    TaggedLayout { name: String, why: LosesFolder },
    /// The first tagged CSV takes the layout of the newest `totag` one (`name`), which cannot
    /// take the batch's rows.
    #[error("{name}: {why}; termtag cannot write its tagged CSV in the same layout")]
    TotagLayout { name: String, why: LosesFolder },
    #[error("{path}: cannot remove")]
    RemoveJournal {
        path: String,
        source: std::io::Error,
    },
    #[error("{name}: not a termtag batch")]
    NotABatch {
        name: String,
        source: serde_json::Error,
    },
}

/// Batches pushed this long before the newest `tagged` CSV are merged into the next one, so
/// that two pushes at the same moment cannot drop each other's rows for good.
const MERGE_WINDOW_MS: i64 = 10 * 60 * 1000;

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

impl PushJournal {
    /// Records that step `stage` is done.
    fn reached(&mut self, stage: u8, path: &Path) -> Result<(), JournalError> {
        self.stage = stage;
        write_json_atomic(path, self)
    }
}

/// Uploads the reviewed labels of claimed images as one immutable batch, marks them done,
/// writes new ALD CSVs and releases the claims. Resumes an interrupted push first.
pub async fn push(
    project: &Project,
    store: &mut Store,
    set: &RemoteSet,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PushReport, PushError> {
    let jpath = journal_path(&project.root, PUSH_JOURNAL);
    let mut report = PushReport::default();
    let mut journal = match read_json::<PushJournal>(&jpath)? {
        Some(j) => {
            report.resumed = true;
            j
        }
        None => {
            let held = store.held_claims()?;
            let reviewed: BTreeMap<String, Option<String>> = held
                .iter()
                .filter(|c| c.status == ImageStatus::Reviewed)
                .map(|c| (c.key.clone(), c.etag.clone()))
                .collect();
            report.still_held = held.len() - reviewed.len();
            if reviewed.is_empty() {
                return Ok(report);
            }
            let j = PushJournal {
                batch: build_batch(project, store, set, &reviewed)?,
                claims: reviewed,
                stage: 0,
                csv_ms: None,
            };
            write_json_atomic(&jpath, &j)?;
            j
        }
    };
    report.batch_id = Some(journal.batch.batch_id.clone());
    report.images = journal.batch.images.len();
    report.labels = journal.batch.images.iter().map(|i| i.labels.len()).sum();
    let concurrency = project.config.remote.concurrency.max(1);
    let resume = |e: PushError| PushError::Resume(Box::new(e));

    if journal.stage < 1 {
        progress(Progress::Step("uploading the batch"));
        upload_batch(set, &journal.batch).await?;
        journal.reached(1, &jpath)?;
    }
    if journal.stage < 2 {
        mark_done(set, &journal, concurrency, progress)
            .await
            .map_err(resume)?;
        journal.reached(2, &jpath)?;
    }
    if journal.stage < 3 {
        progress(Progress::Step("writing the ALD CSVs"));
        let ms = match journal.csv_ms {
            Some(ms) => ms,
            None => {
                let ms = now_ms();
                journal.csv_ms = Some(ms);
                write_json_atomic(&jpath, &journal)?;
                ms
            }
        };
        report.csvs = write_ald_csvs(set, &journal.batch, ms)
            .await
            .map_err(resume)?;
        journal.reached(3, &jpath)?;
    }
    if journal.stage < 4 {
        progress(Progress::Step("releasing claims"));
        report.warnings = release_claims(set, &journal.claims, concurrency)
            .await
            .map_err(resume)?;
        journal.reached(4, &jpath)?;
    }
    let keys: Vec<String> = journal.claims.keys().cloned().collect();
    store.release_claims(&keys)?;
    std::fs::remove_file(&jpath).map_err(|source| PushError::RemoveJournal {
        path: show_path(&jpath),
        source,
    })?;
    if report.resumed {
        report.still_held = store.held_claims()?.len();
    }
    Ok(report)
}

/// Writes the batch blob once (a retry finds it there).
async fn upload_batch(set: &RemoteSet, batch: &BatchDoc) -> Result<(), PushError> {
    let body = serde_json::to_vec_pretty(batch).map_err(|source| PushError::Encode {
        id: batch.batch_id.clone(),
        source,
    })?;
    match set
        .labels
        .put(&set.batch_name(&batch.batch_id), body, PutMode::Create)
        .await
    {
        Ok(_) | Err(RemoteError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes `done/<key>` for every image of the batch, `concurrency` at a time.
async fn mark_done(
    set: &RemoteSet,
    journal: &PushJournal,
    concurrency: usize,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), PushError> {
    let total = journal.claims.len();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let batch_id = &journal.batch.batch_id;
    let keys: Vec<String> = journal.claims.keys().cloned().collect();
    let results: Vec<RemoteResult<()>> = futures::stream::iter(keys)
        .map(|key: String| {
            let counter = &counter;
            let body = batch_id.clone().into_bytes();
            async move {
                let r = match set
                    .labels
                    .put(&set.done_name(&key), body, PutMode::Create)
                    .await
                {
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
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Releases the batch's claims (each with the ETag it was won with). Returns warnings for claims
/// that had expired and been taken over meanwhile.
async fn release_claims(
    set: &RemoteSet,
    claims: &BTreeMap<String, Option<String>>,
    concurrency: usize,
) -> Result<Vec<String>, PushError> {
    let releases: Vec<(String, RemoteResult<()>)> = futures::stream::iter(claims.clone())
        .map(|(key, etag): (String, Option<String>)| async move {
            let r = release(set, &key, etag.as_deref()).await;
            (key, r)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut warnings = Vec::new();
    let mut first_err = None;
    for (key, r) in releases {
        match r {
            Ok(()) | Err(RemoteError::NotFound(_)) => {}
            Err(RemoteError::Conflict(_)) => warnings.push(format!(
                "{}: the claim had expired and was taken over by another annotator; your labels were pushed, theirs will follow",
                for_terminal(&key)
            )),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e.into());
    }
    warnings.sort();
    Ok(warnings)
}
fn build_batch(
    project: &Project,
    store: &Store,
    set: &RemoteSet,
    keys: &BTreeMap<String, Option<String>>,
) -> Result<BatchDoc, PushError> {
    let ds = store.dataset(false)?;
    let images: Vec<_> = ds
        .images
        .into_iter()
        .filter(|im| keys.contains_key(&im.key))
        .collect();
    let now = now_ms();
    let batch_id = format!("{now}-{}", random_hex(4));
    // The batch as ALD's `tagged` CSV, as an export would write it (secrets redacted).
    let tagged_csv = if project.config.task == Task::Detect {
        let sub = Dataset {
            classes: ds.classes.clone(),
            images: images.clone(),
        };
        let name = Path::new("batch");
        let ctx = ExportCtx {
            task: project.config.task,
            out: name,
            predictions: false,
            url_prefix: "",
        };
        crate::remote::auth::redact(&String::from_utf8_lossy(&ald_csv::write(&sub, &ctx)?))
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
async fn write_ald_csvs(
    set: &RemoteSet,
    batch: &BatchDoc,
    ms: i64,
) -> Result<Vec<String>, PushError> {
    if batch.tagged_csv.is_empty() {
        return Ok(Vec::new());
    }
    let totag = read_newest(set, "totag").await?;
    let (tagged, tagged_keys) = merged_tagged(set, batch, ms, totag.as_ref()).await?;
    let mut files = vec![(format!("{}tagged_{ms}.csv", set.prefix), tagged)];
    if let Some((_, _, rows)) = &totag {
        let claimed: HashSet<String> = claimed_keys(set)
            .await?
            .into_iter()
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
        match set.labels.put(&name, body, PutMode::Create).await {
            Ok(_) | Err(RemoteError::Conflict(_)) => written.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

/// The next `tagged` CSV: the newest one (whose layout it keeps; the first takes the layout of
/// the predictions), batches pushed around the same time by others, which it may lack, and this
/// batch, later rows replacing earlier ones image by image. Returns it with every tagged key.
async fn merged_tagged(
    set: &RemoteSet,
    batch: &BatchDoc,
    ms: i64,
    totag: Option<&(i64, String, Rows)>,
) -> Result<(Vec<u8>, HashSet<String>), PushError> {
    let mut mine = Rows::parse(&batch.tagged_csv, Path::new("batch"))?;
    // Rows by image key; later sources replace earlier ones for the same image.
    let mut merged: BTreeMap<String, Vec<csv::StringRecord>> = BTreeMap::new();
    fn add(merged: &mut BTreeMap<String, Vec<csv::StringRecord>>, rows: Rows) {
        let mut fresh: BTreeMap<String, Vec<csv::StringRecord>> = BTreeMap::new();
        for (k, r) in rows.rows {
            fresh.entry(k).or_default().push(r);
        }
        merged.extend(fresh);
    }
    let mut since = i64::MIN;
    let newest_tagged = newest_csv(set, "tagged").await?;
    if let Some((tms, name)) = &newest_tagged
        && *tms != ms
    {
        let text = get_text(set.labels.as_ref(), name).await?;
        let rows = Rows::parse(&text, Path::new(name))?;
        // Keep the layout the project already uses.
        mine = mine
            .conform(&rows.header)
            .map_err(|why| PushError::TaggedLayout {
                name: for_terminal(name),
                why,
            })?;
        add(&mut merged, rows);
        since = tms - MERGE_WINDOW_MS;
    } else if let Some((_, name, rows)) = totag {
        // The first tagged CSV takes the layout of the project's predictions.
        let folder = rows.header.iter().any(|c| c.trim() == "folder");
        let header = crate::formats::ald_csv::tagged_columns(folder)
            .into_iter()
            .collect();
        mine = mine
            .conform(&header)
            .map_err(|why| PushError::TotagLayout {
                name: for_terminal(name),
                why,
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
            && let Ok(rows) = Rows::parse(&doc.tagged_csv, Path::new("batch"))
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
    let tagged = Rows {
        header,
        rows: merged
            .into_iter()
            .flat_map(|(k, rows)| rows.into_iter().map(move |r| (k.clone(), r)))
            .collect(),
    };
    Ok((tagged.to_csv(|_| true)?.into_bytes(), tagged_keys))
}

/// Reads back every pushed batch (for audits, tests and merging).
pub async fn read_batches(set: &RemoteSet) -> Result<Vec<BatchDoc>, PushError> {
    let prefix = set.batch_name("");
    let prefix = prefix.trim_end_matches(".json");
    let mut out = Vec::new();
    for b in list_all(set.labels.as_ref(), prefix).await? {
        let text = get_text(set.labels.as_ref(), &b.name).await?;
        out.push(
            serde_json::from_str(&text).map_err(|source| PushError::NotABatch {
                name: for_terminal(&b.name),
                source,
            })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::error_line;

    /// A push stopped after its batch was uploaded says why, then that running it again resumes,
    /// each once, on one line.
    #[test]
    fn a_resumable_push_says_its_cause_once_then_how_to_resume() {
        let denied = RemoteError::Denied {
            what: "done/a.jpg".into(),
            msg: "403".into(),
        };
        let e = PushError::Resume(Box::new(PushError::Remote(denied.clone())));
        let line = error_line(&e);
        assert_eq!(
            line,
            format!("termtag: {denied} (`termtag push` again resumes this batch)")
        );
        let gone = PushError::RemoveJournal {
            path: ".termtag/push-pending.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            error_line(&PushError::Resume(Box::new(gone))),
            "termtag: .termtag/push-pending.json: cannot remove: permission denied (`termtag push` again resumes this batch)"
        );
    }
}

//! The step of a pull that finds what to claim, and in which order.
//!
//! With predictions (the newest `totag` CSV, which names the images, and the parts of a
//! `predict --stream` run newer than it, [`super::fleet`]), the ranking comes from the
//! CSV through the review queue and only the images about to be claimed are checked: that the
//! blob exists and has no `done/` marker. The images container is listed (100,000 blobs take a
//! minute on Azurite) only when there are no predictions, when the unclaimed predicted images run
//! out, or when one is not where the CSV says (ALD's `folder` may be the annotator's local
//! folder: the listing then matches rows by file name).
//!
//! With `[queue] diversity` on, near-duplicates take turns here as on the screen: the fleet's
//! parts and the newest merged run's `signatures.json` carry each predicted picture's signature
//! (taken while `predict --stream` decoded it), so the pictures are grouped without being
//! downloaded. Pictures without one (predicted before termtag kept signatures, or only found by
//! listing) are groups of their own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};

use super::ald::{lookup, read_newest};
use super::claim::{claimed_keys, done_keys, is_done};
use super::pull::PullError;
use super::{Progress, RemoteResult, RemoteSet, fleet, list_all};
use crate::diversity::{Groups, Signature};
use crate::formats::ald_csv::Rows;
use crate::model::ImageStatus;
use crate::queue::{QueueImage, QueueParams, Scored, review_queue, score};
use crate::sanitize::{check_relative_key, for_terminal};
use crate::store::Store;

/// Images this pull may not take whatever the remote says: held or reviewed here, or claimed by
/// an interrupted pull (`pending`, re-asserted first). Read before the pull awaits anything: a
/// store cannot be shared across threads.
pub(super) fn taken(
    store: &Store,
    pending: &BTreeMap<String, String>,
) -> Result<HashSet<String>, crate::store::StoreError> {
    let mut taken: HashSet<String> = store
        .image_statuses()?
        .into_iter()
        .filter(|(_, s)| matches!(s, ImageStatus::Reviewed | ImageStatus::Claimed))
        .map(|(k, _)| k)
        .collect();
    taken.extend(store.held_claims()?.into_iter().map(|c| c.key));
    taken.extend(pending.keys().cloned());
    Ok(taken)
}

/// The images to claim, handed out in rounds by [`Candidates::next_round`].
pub(super) struct Candidates<'a> {
    set: &'a RemoteSet,
    concurrency: usize,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
    /// The project's `[queue]` settings: the order is the review queue's.
    params: QueueParams,
    /// In claim order (see [`Candidates::rank`]). Before listing: the unclaimed predicted
    /// images only.
    keys: Vec<String>,
    /// How many of `keys` nobody had claimed.
    unclaimed: usize,
    next: usize,
    /// Whether `keys` came from listing the images container.
    pub listed: bool,
    /// Keys handed out so far: a listing after them does not hand them out again.
    tried: HashSet<String>,
    /// Tagged by ALD or pushed (the newest `tagged` CSV, and the `done/` markers once listed).
    done: HashSet<String>,
    /// Claimed by anyone when the pull started.
    claimed: HashSet<String>,
    /// Held, reviewed or being resumed here.
    taken: HashSet<String>,
    /// Each predicted image's (class, score) rows; empty where the model found nothing.
    scores: HashMap<String, Vec<(String, f64)>>,
    /// The predicted pictures' near-duplicate signatures (only with `[queue] diversity`).
    pub signatures: fleet::Signatures,
    /// Blob names refused (unsafe names), with why.
    pub refused: Vec<(String, String)>,
    /// The newest `totag` CSV, its blob name and rows: the pulled images' predictions; with a
    /// fleet's parts newer than it laid over it, the run's folder and the merged rows.
    pub totag: Option<(String, Rows)>,
}

impl<'a> Candidates<'a> {
    /// Reads the labels container's CSVs and claims. `taken`: see [`taken`].
    pub(super) async fn find(
        set: &'a RemoteSet,
        taken: HashSet<String>,
        params: QueueParams,
        concurrency: usize,
        progress: &'a (dyn Fn(Progress) + Send + Sync),
    ) -> Result<Candidates<'a>, PullError> {
        progress(Progress::Step("listing"));
        set.ensure_labels().await?;
        let newest = read_newest(set, "totag").await?;
        let totag_ms = newest.as_ref().map(|(ms, _, _)| *ms);
        let mut totag = newest.map(|(_, name, rows)| (name, rows));
        // A fleet's parts newer than the newest totag: the shards that finished count already.
        let fleet::Newest { run, signatures } =
            fleet::newest_run(set, totag_ms, params.diversity.is_some(), concurrency).await?;
        if let Some((run, rows)) = run {
            totag = Some(match totag {
                Some((_, older)) => {
                    let rows =
                        fleet::overlay(rows, older).map_err(|why| fleet::FleetError::Layout {
                            name: for_terminal(&run),
                            why,
                        })?;
                    (run, rows)
                }
                None => (run, rows),
            });
        }
        let mut done = HashSet::new();
        if let Some((_, _, rows)) = read_newest(set, "tagged").await? {
            done.extend(rows.rows.into_iter().map(|(k, _)| k));
        }
        // Claims are released on push, so this listing stays as small as the work in progress.
        let claimed = claimed_keys(set).await?;
        let mut c = Candidates {
            set,
            concurrency,
            progress,
            params,
            keys: Vec::new(),
            unclaimed: 0,
            next: 0,
            listed: false,
            tried: HashSet::new(),
            done,
            claimed,
            taken,
            scores: totag
                .as_ref()
                .map(|(_, rows)| rows.scores())
                .unwrap_or_default(),
            signatures,
            refused: Vec::new(),
            totag,
        };
        let predicted: Vec<&String> = c.scores.keys().filter(|k| c.free(k)).collect();
        (c.keys, c.unclaimed) = c.rank(predicted, &HashMap::new());
        c.keys.truncate(c.unclaimed);
        (c.progress)(Progress::Listing {
            found: c.keys.len(),
        });
        Ok(c)
    }

    fn free(&self, key: &str) -> bool {
        !self.done.contains(key) && !self.taken.contains(key) && !self.tried.contains(key)
    }

    /// `keys` in claim order, and how many come before the claimed: the review queue's order
    /// ([`review_queue`], the project's `[queue]` settings) with the `totag` rows as the
    /// predictions; what the queue leaves out (`empty = "skip"`, no prediction) follows, so
    /// that every image is pulled in the end; unclaimed before (possibly expired) claimed.
    /// `by_name` finds a row by file name where the CSV's folder is not the container's.
    /// With `[queue] diversity`, the near-duplicate groups are those of the pictures'
    /// signatures ([`Groups::new`], as the screen groups the store's), keyed by position in
    /// `keys` as the ids below are.
    fn rank(
        &self,
        mut keys: Vec<&String>,
        by_name: &HashMap<String, String>,
    ) -> (Vec<String>, usize) {
        // Ids in key order, as the store's ids are for the screen: ties keep key order.
        keys.sort();
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let predicted: Vec<QueueImage> = keys
            .iter()
            .enumerate()
            .filter_map(|(id, k)| {
                let preds = lookup(&self.scores, by_name, k)?
                    .iter()
                    .map(|(class, score)| Scored {
                        class: names
                            .entry(class.as_str())
                            .or_insert_with(|| class.as_str().into())
                            .clone(),
                        score: *score,
                        boxed: true,
                    })
                    .collect();
                Some(QueueImage {
                    id: id as i64,
                    preds,
                    decided: false,
                })
            })
            .collect();
        let rows: Vec<(i64, ImageStatus)> = (0..keys.len())
            .map(|id| (id as i64, ImageStatus::New))
            .collect();
        let mut params = self.params.clone();
        if let Some(d) = &mut params.diversity {
            let sigs: Vec<(i64, Signature)> = keys
                .iter()
                .enumerate()
                .filter_map(|(id, k)| Some((id as i64, self.signatures.get(k.as_str())?.clone())))
                .collect();
            d.groups = Arc::new(Groups::new(&sigs, d.similarity));
        }
        let mut placed = vec![false; keys.len()];
        let mut order: Vec<usize> =
            review_queue(&rows, &score(&predicted, &params), false, &params)
                .into_iter()
                .map(|p| p.row)
                .inspect(|&n| placed[n] = true)
                .collect();
        order.extend((0..keys.len()).filter(|&n| !placed[n]));
        let mut ranked: Vec<(bool, String)> = order
            .into_iter()
            .map(|n| (self.claimed.contains(keys[n]), keys[n].clone()))
            .collect();
        // Stable: each group keeps the queue's order.
        ranked.sort_by_key(|c| c.0);
        let unclaimed = ranked.iter().filter(|r| !r.0).count();
        (ranked.into_iter().map(|r| r.1).collect(), unclaimed)
    }

    /// Up to `need` more keys to try to claim, in order; empty when none are left.
    pub(super) async fn next_round(&mut self, need: usize) -> Result<Vec<String>, PullError> {
        let mut round = Vec::new();
        while !self.listed && round.len() < need {
            let start = self.next;
            let end = (start + need - round.len()).min(self.keys.len());
            if start == end {
                self.list().await?;
                break;
            }
            self.next = end;
            match self.check(start..end).await? {
                Some(ready) => {
                    // Before any listing, so that it does not hand them out again.
                    self.tried.extend(ready.iter().cloned());
                    round.extend(ready);
                }
                None => {
                    self.list().await?;
                    break;
                }
            }
        }
        if self.listed {
            let end = (self.next + need - round.len()).min(self.keys.len());
            let listed = &self.keys[self.next..end];
            self.tried.extend(listed.iter().cloned());
            round.extend_from_slice(listed);
            self.next = end;
        }
        Ok(round)
    }

    /// Unclaimed images not handed out (predicted ones only, unless [`Candidates::listed`]).
    pub(super) fn remaining(&self) -> usize {
        self.unclaimed.saturating_sub(self.next)
    }

    /// Checks `keys[range]`, `concurrency` at a time: those whose image exists and is not done,
    /// or `None` when one is missing or its name unusable (the container must be listed).
    async fn check(&mut self, range: std::ops::Range<usize>) -> RemoteResult<Option<Vec<String>>> {
        let set = self.set;
        let checks: Vec<Option<bool>> = futures::stream::iter(self.keys[range.clone()].to_vec())
            .map(|key: String| async move {
                if !crate::index::is_image(Path::new(&key)) || check_relative_key(&key).is_err() {
                    return Ok(None);
                }
                let blob = format!("{}{key}", set.prefix);
                let (page, done) =
                    futures::try_join!(set.images.list_page(&blob, None), is_done(set, &key))?;
                // Names sort after their own prefixes, so the blob itself comes first.
                let exists = page.items.first().is_some_and(|b| b.name == blob);
                Ok(exists.then_some(done))
            })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        if checks.iter().any(Option::is_none) {
            return Ok(None);
        }
        let mut ready = Vec::new();
        for (key, done) in self.keys[range].iter().zip(checks) {
            if done == Some(true) {
                self.done.insert(key.clone());
                self.tried.insert(key.clone());
            } else {
                ready.push(key.clone());
            }
        }
        Ok(Some(ready))
    }

    /// Lists the images container and ranks every free image in it.
    async fn list(&mut self) -> Result<(), PullError> {
        let set = self.set;
        let blobs = list_all(set.images.as_ref(), &set.prefix).await?;
        (self.progress)(Progress::Listing { found: blobs.len() });
        self.done.extend(done_keys(set).await?);
        let mut keys: Vec<String> = Vec::new();
        for b in &blobs {
            let key = &b.name[set.prefix.len()..];
            if !crate::index::is_image(Path::new(key)) {
                continue;
            }
            if let Err(e) = check_relative_key(key) {
                self.refused.push((for_terminal(&b.name), e.to_string()));
                continue;
            }
            if self.free(key) {
                keys.push(key.to_string());
            }
        }
        let by_name: HashMap<String, String> = self
            .scores
            .keys()
            .map(|k| (k.rsplit('/').next().unwrap_or(k).to_string(), k.clone()))
            .collect();
        (self.keys, self.unclaimed) = self.rank(keys.iter().collect(), &by_name);
        self.next = 0;
        self.listed = true;
        Ok(())
    }
}

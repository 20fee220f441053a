//! The step of a pull that finds what to claim, and in which order.
//!
//! With predictions (the newest `totag` CSV, which names the images), the ranking comes from the
//! CSV and only the images about to be claimed are checked: that the blob exists and has no
//! `done/` marker. The images container is listed (100,000 blobs take a minute on Azurite) only
//! when there are no predictions, when the unclaimed predicted images run out, or when one is
//! not where the CSV says (ALD's `folder` may be the annotator's local folder: the listing then
//! matches rows by file name).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use futures::{StreamExt as _, TryStreamExt as _};

use super::{
    AldRows, Progress, RemoteResult, RemoteSet, ensure_labels, get_text, is_done, is_image_name,
    list_all, lookup, newest_csv, parse_ald,
};
use crate::sanitize::{check_relative_key, for_terminal};
use crate::store::Store;

/// Images this pull may not take whatever the remote says: held or reviewed here, or claimed by
/// an interrupted pull (`pending`, re-asserted first). Read before the pull awaits anything: a
/// store cannot be shared across threads.
pub(super) fn taken(store: &Store, pending: &BTreeMap<String, String>) -> Result<HashSet<String>> {
    let mut taken: HashSet<String> = store
        .image_statuses()?
        .into_iter()
        .filter(|(_, s)| matches!(s.as_str(), "reviewed" | "claimed"))
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
    /// In claim order: predicted images least confident first, then images where the model found
    /// nothing, then images without a prediction; unclaimed before (possibly expired) claimed.
    /// Before listing: the unclaimed predicted images only.
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
    conf: HashMap<String, Option<f64>>,
    /// Blob names refused (unsafe names), with why.
    pub refused: Vec<(String, String)>,
    /// The newest `totag` CSV: the predictions of the pulled images are imported from it.
    pub totag: Option<AldRows>,
}

impl<'a> Candidates<'a> {
    /// Reads the labels container's CSVs and claims. `taken`: see [`taken`].
    pub(super) async fn find(
        set: &'a RemoteSet,
        taken: HashSet<String>,
        concurrency: usize,
        progress: &'a (dyn Fn(Progress) + Send + Sync),
    ) -> Result<Candidates<'a>> {
        ensure_labels(set).await?;
        let totag = match newest_csv(set, "totag").await? {
            Some((_, name)) => {
                let text = get_text(set.labels.as_ref(), &name).await?;
                Some(parse_ald(&text, &for_terminal(&name))?)
            }
            None => None,
        };
        let mut done = HashSet::new();
        if let Some((_, name)) = newest_csv(set, "tagged").await? {
            let text = get_text(set.labels.as_ref(), &name).await?;
            let rows = parse_ald(&text, &for_terminal(&name))?;
            done.extend(rows.rows.into_iter().map(|(k, _)| k));
        }
        // Claims are released on push, so this listing stays as small as the work in progress.
        let claim_prefix = set.claim_name("");
        let claimed = list_all(set.labels.as_ref(), &claim_prefix)
            .await?
            .into_iter()
            .map(|b| b.name[claim_prefix.len()..].to_string())
            .collect();
        let mut c = Candidates {
            set,
            concurrency,
            progress,
            keys: Vec::new(),
            unclaimed: 0,
            next: 0,
            listed: false,
            tried: HashSet::new(),
            done,
            claimed,
            taken,
            conf: totag.as_ref().map(AldRows::confidences).unwrap_or_default(),
            refused: Vec::new(),
            totag,
        };
        let predicted: Vec<&String> = c.conf.keys().filter(|k| c.free(k)).collect();
        (c.keys, c.unclaimed) = c.rank(predicted.into_iter(), &HashMap::new());
        c.keys.truncate(c.unclaimed);
        (c.progress)(Progress::Listing {
            found: c.keys.len(),
        });
        Ok(c)
    }

    fn free(&self, key: &str) -> bool {
        !self.done.contains(key) && !self.taken.contains(key) && !self.tried.contains(key)
    }

    /// `keys` in claim order (see [`Candidates::keys`]), and how many come before the claimed.
    fn rank<'k>(
        &self,
        keys: impl Iterator<Item = &'k String>,
        by_name: &HashMap<String, String>,
    ) -> (Vec<String>, usize) {
        let mut ranked: Vec<(bool, u8, f64, &String)> = keys
            .map(|k| {
                let (bucket, c) = match lookup(&self.conf, by_name, k) {
                    Some(Some(c)) => (0, *c),
                    Some(None) => (1, 0.0),
                    None => (2, 0.0),
                };
                (self.claimed.contains(k), bucket, c, k)
            })
            .collect();
        ranked.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.total_cmp(&b.2))
                .then_with(|| a.3.cmp(b.3))
        });
        let unclaimed = ranked.iter().filter(|r| !r.0).count();
        (ranked.into_iter().map(|r| r.3.clone()).collect(), unclaimed)
    }

    /// Up to `need` more keys to try to claim, in order; empty when none are left.
    pub(super) async fn next_round(&mut self, need: usize) -> Result<Vec<String>> {
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
                if !is_image_name(&key) || check_relative_key(&key).is_err() {
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
    async fn list(&mut self) -> Result<()> {
        let set = self.set;
        let blobs = list_all(set.images.as_ref(), &set.prefix).await?;
        (self.progress)(Progress::Listing { found: blobs.len() });
        let done_prefix = set.done_name("");
        self.done.extend(
            list_all(set.labels.as_ref(), &done_prefix)
                .await?
                .into_iter()
                .map(|b| b.name[done_prefix.len()..].to_string()),
        );
        let mut keys: Vec<String> = Vec::new();
        for b in &blobs {
            let key = &b.name[set.prefix.len()..];
            if !is_image_name(key) {
                continue;
            }
            if let Err(e) = check_relative_key(key) {
                self.refused.push((for_terminal(&b.name), e));
                continue;
            }
            if self.free(key) {
                keys.push(key.to_string());
            }
        }
        let by_name: HashMap<String, String> = self
            .conf
            .keys()
            .map(|k| (k.rsplit('/').next().unwrap_or(k).to_string(), k.clone()))
            .collect();
        (self.keys, self.unclaimed) = self.rank(keys.iter(), &by_name);
        self.next = 0;
        self.listed = true;
        Ok(())
    }
}

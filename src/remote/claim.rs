//! Claims: one blob per image under `termtag/claims/`, created with `If-None-Match: *`, taken
//! over after expiry with `If-Match`; `termtag/done/<key>` marks an image pushed.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{PutMode, RemoteError, RemoteResult, RemoteSet};
use crate::store::now_ms;

/// What a claim blob holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ClaimDoc {
    pub image: String,
    pub owner: String,
    pub batch: String,
    pub claimed_at: i64,
    pub expires_at: i64,
}

pub(super) enum ClaimOutcome {
    Won { etag: String, taken_over: bool },
    Lost,
}

/// Whether `key` has been pushed (its `done/` marker exists).
pub(super) async fn is_done(set: &RemoteSet, key: &str) -> RemoteResult<bool> {
    match set.labels.get(&set.done_name(key)).await {
        Ok(_) => Ok(true),
        Err(RemoteError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Claims `key` for `doc.owner`: create the claim blob if absent; if present and ours (a retried
/// request, or a crash before we recorded it) or expired, replace it with `If-Match` on its ETag.
pub(super) async fn try_claim(
    set: &RemoteSet,
    key: &str,
    doc: &ClaimDoc,
) -> RemoteResult<ClaimOutcome> {
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

/// Gives the claim on `key` back, if it is still the one with `etag`.
pub(super) async fn release(set: &RemoteSet, key: &str, etag: Option<&str>) -> RemoteResult<()> {
    set.labels.delete(&set.claim_name(key), etag).await
}

/// Image keys that hold a claim blob (anyone's).
pub(super) async fn claimed_keys(set: &RemoteSet) -> RemoteResult<HashSet<String>> {
    keys_under(set, &set.claim_name("")).await
}

/// Image keys marked pushed.
pub(super) async fn done_keys(set: &RemoteSet) -> RemoteResult<HashSet<String>> {
    keys_under(set, &set.done_name("")).await
}

async fn keys_under(set: &RemoteSet, prefix: &str) -> RemoteResult<HashSet<String>> {
    Ok(super::list_all(set.labels.as_ref(), prefix)
        .await?
        .into_iter()
        .map(|b| b.name[prefix.len()..].to_string())
        .collect())
}

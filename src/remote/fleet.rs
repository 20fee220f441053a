//! The predictions of a fleet of machines (`termtag predict --stream --shard K/N`) in the labels
//! container. A fleet machine's disk does not outlive it, so its whole state is here:
//!
//! - `<prefix>termtag/predictions/<run>/shard-K-of-N/part-<seq>.json`: immutable parts (created
//!   with `If-None-Match: *`), each the images one shard predicted since its last part, as an
//!   active-learning-detect `totag` CSV, and the images it could not read. `<run>` is the model's
//!   hash and the settings' hash, so every shard of one fleet writes under one run, and a shard
//!   that restarts skips the images its parts name;
//! - `.../shard-K-of-N/done.json` once a shard has predicted all its images;
//! - `<prefix>totag_<ms>.csv`, every shard's predictions merged, written by whichever shard finds
//!   all N done (two that do write the same rows), then `<run>/totag.json` naming it. Before the
//!   CSV, `<run>/signatures.json` ([`SignaturesDoc`]): the merged images' near-duplicate
//!   signatures, which the CSV has no column for.
//!
//! A pull ranks the newest `totag` CSV and, when a run has parts newer than it, those parts
//! ([`newest_run`]): the predictions of shards that finished are claimable before the
//! whole fleet is. Its `[queue] diversity` groups come from the parts' signatures and the newest
//! run's `signatures.json` (a signature belongs to the picture, whichever run took it).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::{PutMode, RemoteError, RemoteSet, list_all};
use crate::diversity::Signature;
use crate::formats::ald_csv::{self, Rows};
use crate::infer::Shard;
use crate::sanitize::for_terminal;
use crate::store::now_ms;

/// Why the fleet's state in the labels container cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(
        "{name}: not a termtag prediction part ({why}); remove it from the labels container if nothing else wrote it, then run again"
    )]
    BadPart { name: String, why: String },
    #[error("{name}: {why}")]
    Csv { name: String, why: String },
    #[error(transparent)]
    Ald(#[from] super::ald::AldError),
    /// A part's or an older `totag`'s rows cannot be laid under the full header.
    #[error("{name}: {why}")]
    Layout {
        name: String,
        why: ald_csv::LosesFolder,
    },
}

/// One part: what one shard predicted since its previous part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartDoc {
    /// The run (model and settings hashes) and the shard, `K/N`.
    pub run: String,
    pub shard: String,
    pub written_ms: i64,
    /// The images predicted, as an active-learning-detect `totag` CSV: one row a box, one `NULL`
    /// row for an image where the model found nothing.
    pub totag: String,
    /// Images that could not be read or decoded, and why: not tried again.
    pub broken: Vec<(String, String)>,
    /// The predicted images' near-duplicate signatures ([`crate::diversity::signature`]), as
    /// (key, base64 of the 768 bytes); absent from parts written before termtag kept them.
    #[serde(default)]
    pub signatures: Vec<(String, String)>,
}

/// `<run>/signatures.json`: the signatures of a merged run's images, in the form of a part's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SignaturesDoc {
    pub run: String,
    pub signatures: Vec<(String, String)>,
}

/// Image key → signature.
pub type Signatures = HashMap<String, Signature>;

/// A signature as a part stores it.
pub fn encode_signature(s: &Signature) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s.to_bytes())
}

/// The signatures of a part or a `signatures.json` (`name`); one that is not base64 of
/// [`crate::diversity::SIG_LEN`] bytes makes the blob unreadable, as a broken CSV would.
fn decode_signatures(
    name: &str,
    list: &[(String, String)],
    into: &mut Signatures,
) -> Result<(), FleetError> {
    use base64::Engine as _;
    for (key, text) in list {
        let sig = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| Signature::from_bytes(&b))
            .ok_or_else(|| FleetError::BadPart {
                name: for_terminal(name),
                why: format!(
                    "the signature of {} is not base64 of {} bytes",
                    for_terminal(key),
                    crate::diversity::SIG_LEN
                ),
            })?;
        into.insert(key.clone(), sig);
    }
    Ok(())
}

/// Where the runs' parts are.
pub fn predictions_root(set: &RemoteSet) -> String {
    format!("{}termtag/predictions/", set.prefix)
}

pub fn run_dir(set: &RemoteSet, run: &str) -> String {
    format!("{}{run}/", predictions_root(set))
}

pub fn shard_dir(set: &RemoteSet, run: &str, shard: Shard) -> String {
    format!("{}shard-{}-of-{}/", run_dir(set, run), shard.k, shard.n)
}

fn part_name(dir: &str, seq: u64) -> String {
    format!("{dir}part-{seq:06}.json")
}

/// `part-000012.json` → 12.
fn part_seq(name: &str) -> Option<u64> {
    name.rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

const DONE: &str = "done.json";
const MERGED: &str = "totag.json";
const SIGNATURES: &str = "signatures.json";

/// Every column of a `totag` CSV: parts with and without `folder` merge into this.
fn full_header() -> csv::StringRecord {
    csv::StringRecord::from(ald_csv::totag_columns(true))
}

/// What a shard's parts say: the images it finished (predicted or broken), the next part's
/// number, how many parts there are and whether it marked itself done.
#[derive(Debug, Default)]
pub struct ShardState {
    pub done: HashSet<String>,
    pub next_seq: u64,
    pub parts: usize,
    pub finished: bool,
}

/// One part read: its rows (under the full header), the document, and its signatures decoded.
type Part = (Rows, PartDoc, Signatures);

/// Reads one part.
async fn read_part(set: &RemoteSet, name: &str) -> Result<Part, FleetError> {
    let (bytes, _) = set.labels.get(name).await?;
    let bad = |why: String| FleetError::BadPart {
        name: for_terminal(name),
        why,
    };
    let mut doc: PartDoc = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let rows = Rows::parse(&doc.totag, Path::new(name))
        .map_err(|e| bad(e.to_string()))?
        .conform(&full_header())
        .map_err(|e| bad(e.to_string()))?;
    let mut sigs = Signatures::new();
    decode_signatures(name, &std::mem::take(&mut doc.signatures), &mut sigs)?;
    Ok((rows, doc, sigs))
}

/// Reads the parts named, `concurrency` at a time, in name order.
async fn read_parts(
    set: &RemoteSet,
    names: &[String],
    concurrency: usize,
) -> Result<Vec<Part>, FleetError> {
    // Owned names: a closure over borrowed ones would make the future not `Send` for every
    // lifetime, which the review screen's pull needs.
    futures::stream::iter(names.to_vec())
        .map(|n: String| async move { read_part(set, &n).await })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// The state of `shard` of `run`, from its parts.
pub async fn read_shard(
    set: &RemoteSet,
    run: &str,
    shard: Shard,
    concurrency: usize,
) -> Result<ShardState, FleetError> {
    let dir = shard_dir(set, run, shard);
    let blobs = list_all(set.labels.as_ref(), &dir).await?;
    let mut state = ShardState::default();
    let mut names = Vec::new();
    for b in &blobs {
        if b.name == format!("{dir}{DONE}") {
            state.finished = true;
        } else if let Some(seq) = part_seq(&b.name) {
            state.next_seq = state.next_seq.max(seq + 1);
            names.push(b.name.clone());
        }
    }
    state.parts = names.len();
    for (rows, doc, _) in read_parts(set, &names, concurrency).await? {
        state.done.extend(rows.rows.into_iter().map(|(k, _)| k));
        state.done.extend(doc.broken.into_iter().map(|(k, _)| k));
    }
    Ok(state)
}

/// Writes `doc` as the shard's part `*seq` (the next free number, should another process of
/// the same shard have taken it); returns its name and leaves `*seq` after it.
pub async fn write_part(
    set: &RemoteSet,
    run: &str,
    shard: Shard,
    seq: &mut u64,
    doc: &PartDoc,
) -> Result<String, FleetError> {
    let dir = shard_dir(set, run, shard);
    let body = serde_json::to_vec(doc).map_err(|e| FleetError::BadPart {
        name: for_terminal(&part_name(&dir, *seq)),
        why: e.to_string(),
    })?;
    loop {
        let name = part_name(&dir, *seq);
        *seq += 1;
        match set.labels.put(&name, body.clone(), PutMode::Create).await {
            Ok(_) => return Ok(name),
            Err(RemoteError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Marks `shard` of `run` done (idempotent).
pub async fn mark_done(set: &RemoteSet, run: &str, shard: Shard) -> Result<(), FleetError> {
    let name = format!("{}{DONE}", shard_dir(set, run, shard));
    let body = serde_json::json!({ "run": run, "shard": format!("{}/{}", shard.k, shard.n), "ms": now_ms() });
    match set
        .labels
        .put(&name, body.to_string().into_bytes(), PutMode::Create)
        .await
    {
        Ok(_) | Err(RemoteError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Where the merged `totag` CSV stands once a shard has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// Written now, by this shard: its name and rows.
    Written(String, usize),
    /// Written before (by another shard, or an earlier run of this one).
    Already(String),
    /// These shards (K) have not finished yet.
    Waiting(Vec<u32>),
}

/// Writes the merged `totag_<ms>.csv` of `run` once all `n` shards are done.
pub async fn merge_when_done(
    set: &RemoteSet,
    run: &str,
    n: u32,
    concurrency: usize,
) -> Result<Merged, FleetError> {
    let dir = run_dir(set, run);
    let blobs = list_all(set.labels.as_ref(), &dir).await?;
    let marker = format!("{dir}{MERGED}");
    if blobs.iter().any(|b| b.name == marker) {
        let (bytes, _) = set.labels.get(&marker).await?;
        let name = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["totag"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Ok(Merged::Already(name));
    }
    let done: BTreeSet<u32> = (1..=n)
        .filter(|k| {
            let name = format!("{dir}shard-{k}-of-{n}/{DONE}");
            blobs.iter().any(|b| b.name == name)
        })
        .collect();
    let waiting: Vec<u32> = (1..=n).filter(|k| !done.contains(k)).collect();
    if !waiting.is_empty() {
        return Ok(Merged::Waiting(waiting));
    }
    let parts: Vec<String> = blobs
        .iter()
        .filter(|b| b.name.contains(&format!("-of-{n}/")) && part_seq(&b.name).is_some())
        .map(|b| b.name.clone())
        .collect();
    let (mut rows, mut sigs) = merge(read_parts(set, &parts, concurrency).await?);
    // ALD hands out what its newest `totag` lists: not the images being tagged or tagged.
    let mut taken: HashSet<String> = HashSet::new();
    for kind in ["tagging", "tagged"] {
        if let Some((_, _, r)) = super::ald::read_newest(set, kind).await? {
            taken.extend(r.rows.into_iter().map(|(k, _)| k));
        }
    }
    rows.rows.retain(|(k, _)| !taken.contains(k));
    // The signatures before the CSV, so that a pull that finds the CSV finds them too.
    sigs.retain(|k, _| !taken.contains(k));
    let mut signatures: Vec<(String, String)> = sigs
        .iter()
        .map(|(k, s)| (k.clone(), encode_signature(s)))
        .collect();
    signatures.sort();
    let sig_name = format!("{dir}{SIGNATURES}");
    let body = serde_json::to_vec(&SignaturesDoc {
        run: run.to_string(),
        signatures,
    })
    .map_err(|e| FleetError::BadPart {
        name: for_terminal(&sig_name),
        why: e.to_string(),
    })?;
    match set.labels.put(&sig_name, body, PutMode::Create).await {
        // Another shard merging at once wrote the same signatures.
        Ok(_) | Err(RemoteError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let images = rows
        .rows
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<HashSet<_>>()
        .len();
    // ALD writes `folder` only when images sit in sub-folders.
    let folder = rows.rows.iter().any(|(k, _)| k.contains('/'));
    let rows = rows
        .conform(&csv::StringRecord::from(ald_csv::totag_columns(folder)))
        .map_err(|why| FleetError::Layout {
            name: for_terminal(&dir),
            why,
        })?;
    let text = rows.to_csv(|_| true).map_err(|e| FleetError::Csv {
        name: for_terminal(&dir),
        why: e.to_string(),
    })?;
    let mut ms = now_ms();
    let name = loop {
        let name = format!("{}totag_{ms}.csv", set.prefix);
        match set
            .labels
            .put(&name, text.clone().into_bytes(), PutMode::Create)
            .await
        {
            Ok(_) => break name,
            Err(RemoteError::Conflict(_)) => ms += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let body = serde_json::json!({ "totag": name, "images": images });
    match set
        .labels
        .put(&marker, body.to_string().into_bytes(), PutMode::Create)
        .await
    {
        Ok(_) | Err(RemoteError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Merged::Written(name, images))
}

/// Parts' rows as one `Rows` under the full header, sorted by key, and their signatures; an
/// image named by two parts (two processes of one shard at once) keeps the first part's rows.
fn merge(parts: Vec<Part>) -> (Rows, Signatures) {
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut sigs = Signatures::new();
    for (i, (rows, _, part_sigs)) in parts.into_iter().enumerate() {
        for (k, r) in rows.rows {
            if *owner.entry(k.clone()).or_insert(i) == i {
                out.push((k, r));
            }
        }
        for (k, s) in part_sigs {
            sigs.entry(k).or_insert(s);
        }
    }
    // Stable: an image's rows keep their order.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let rows = Rows {
        header: full_header(),
        rows: out,
    };
    (rows, sigs)
}

/// What a pull reads from the fleet's folder ([`newest_run`]).
#[derive(Debug, Default)]
pub struct Newest {
    /// The run with the newest part, when that part is newer than the newest `totag` CSV: its
    /// folder and every part of it, all shards, merged.
    pub run: Option<(String, Rows)>,
    /// Signatures: the newest run's `signatures.json`, with `run`'s parts' laid over them.
    pub signatures: Signatures,
}

/// The predictions of the run with the newest part, when that part is newer than `after_ms`
/// (the newest `totag` CSV's time), and, when `with_signatures` (`[queue] diversity` on), the
/// signatures a pull can group images by.
pub async fn newest_run(
    set: &RemoteSet,
    after_ms: Option<i64>,
    with_signatures: bool,
    concurrency: usize,
) -> Result<Newest, FleetError> {
    let root = predictions_root(set);
    let blobs = list_all(set.labels.as_ref(), &root).await?;
    let mut out = Newest::default();
    let sidecar = blobs
        .iter()
        .filter(|b| b.name.ends_with(&format!("/{SIGNATURES}")))
        .max_by_key(|b| b.modified_ms);
    if let (true, Some(b)) = (with_signatures, sidecar) {
        let (bytes, _) = set.labels.get(&b.name).await?;
        let doc: SignaturesDoc =
            serde_json::from_slice(&bytes).map_err(|e| FleetError::BadPart {
                name: for_terminal(&b.name),
                why: e.to_string(),
            })?;
        decode_signatures(&b.name, &doc.signatures, &mut out.signatures)?;
    }
    let run_of = |name: &str| name[root.len()..].split('/').next().map(str::to_string);
    let Some(newest) = blobs
        .iter()
        .filter(|b| part_seq(&b.name).is_some())
        .max_by_key(|b| b.modified_ms)
    else {
        return Ok(out);
    };
    if after_ms.is_some_and(|ms| newest.modified_ms <= ms) {
        return Ok(out);
    }
    let Some(run) = run_of(&newest.name) else {
        return Ok(out);
    };
    let parts: Vec<String> = blobs
        .iter()
        .filter(|b| part_seq(&b.name).is_some() && run_of(&b.name).as_deref() == Some(run.as_str()))
        .map(|b| b.name.clone())
        .collect();
    let (rows, sigs) = merge(read_parts(set, &parts, concurrency).await?);
    if with_signatures {
        out.signatures.extend(sigs);
    }
    out.run = Some((format!("{root}{run}/"), rows));
    Ok(out)
}

/// `newer` laid over `older`: `newer`'s rows, then `older`'s rows of images `newer` lacks,
/// under the full header.
pub fn overlay(newer: Rows, older: Rows) -> Result<Rows, ald_csv::LosesFolder> {
    let older = older.conform(&full_header())?;
    let newer = newer.conform(&full_header())?;
    let have: HashSet<String> = newer.rows.iter().map(|(k, _)| k.clone()).collect();
    let mut rows = newer.rows;
    rows.extend(older.rows.into_iter().filter(|(k, _)| !have.contains(k)));
    Ok(Rows {
        header: full_header(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Rows {
        Rows::parse(text, Path::new("t.csv")).unwrap()
    }

    #[test]
    fn part_names_sort_and_parse() {
        assert_eq!(
            part_seq("p/termtag/predictions/r/shard-1-of-2/part-000012.json"),
            Some(12)
        );
        assert_eq!(
            part_seq("p/termtag/predictions/r/shard-1-of-2/done.json"),
            None
        );
        assert!(part_name("d/", 9) < part_name("d/", 10));
    }

    #[test]
    fn parts_without_signatures_still_read_and_bad_ones_are_refused() {
        let old = r#"{"run":"r","shard":"1/1","written_ms":0,"totag":"","broken":[]}"#;
        let doc: PartDoc = serde_json::from_str(old).unwrap();
        assert!(doc.signatures.is_empty());
        let mut sigs = Signatures::new();
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8, 9]));
        let s = crate::diversity::signature(&img);
        decode_signatures("p", &[("a.png".into(), encode_signature(&s))], &mut sigs).unwrap();
        assert_eq!(sigs["a.png"], s);
        let e = decode_signatures(
            "p/part-000001.json",
            &[("b.png".into(), "AAAA".into())],
            &mut sigs,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("part-000001.json") && e.contains("b.png") && e.contains("768 bytes"),
            "{e}"
        );
    }

    #[test]
    fn merge_keeps_one_part_per_image_and_overlay_prefers_newer() {
        let h = "filename,class,xmin,xmax,ymin,ymax,height,width,box_confidence,image_confidence\n";
        let doc = |r: &str| PartDoc {
            run: "r".into(),
            shard: "1/1".into(),
            written_ms: 0,
            totag: r.into(),
            broken: vec![],
            signatures: vec![],
        };
        let a = format!(
            "{h}b.png,can,0.1,0.2,0.1,0.2,4,4,0.5,0.5\nb.png,can,0.3,0.4,0.3,0.4,4,4,0.6,0.5\n"
        );
        let b = format!("{h}b.png,can,0.1,0.2,0.1,0.2,4,4,0.9,0.9\na.png,NULL,0,0,0,0,4,4,0,0\n");
        let (m, _) = merge(vec![
            (rows(&a), doc(&a), Signatures::new()),
            (rows(&b), doc(&b), Signatures::new()),
        ]);
        let keys: Vec<&str> = m.rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["a.png", "b.png", "b.png"],
            "b.png from the first part only"
        );
        assert_eq!(m.scores()["b.png"].len(), 2);
        let old = rows(&format!(
            "{h}a.png,can,0.1,0.2,0.1,0.2,4,4,0.2,0.2\nc.png,can,0.1,0.2,0.1,0.2,4,4,0.7,0.7\n"
        ));
        let o = overlay(m, old).unwrap();
        let s = o.scores();
        assert!(s["a.png"].is_empty(), "the newer NULL row wins");
        assert_eq!(s["c.png"], vec![("can".to_string(), 0.7)]);
    }
}

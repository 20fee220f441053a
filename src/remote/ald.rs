//! The active-learning-detect CSVs in the labels container: `totag_<ms>.csv`,
//! `tagging_<ms>.csv`, `tagged_<ms>.csv`, the newest of each kind being the current one.

use std::collections::HashMap;

use std::path::Path;

use super::{Remote, RemoteError, RemoteSet, list_all};
use crate::formats::FormatError;
use crate::formats::ald_csv::Rows;
use crate::sanitize::for_terminal;

/// Why an active-learning-detect CSV in the labels container cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AldError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}: not UTF-8 text; move it aside or save it as UTF-8")]
    NotText(String),
}

type Result<T> = std::result::Result<T, AldError>;

/// The newest `<kind>_<ms>.csv` in the labels container, with its ms.
pub(super) async fn newest_csv(set: &RemoteSet, kind: &str) -> Result<Option<(i64, String)>> {
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

pub(super) async fn get_text(remote: &dyn Remote, name: &str) -> Result<String> {
    let (bytes, _) = remote.get(name).await?;
    String::from_utf8(bytes).map_err(|_| AldError::NotText(for_terminal(name)))
}

/// The newest `<kind>` CSV: its ms, its name and its rows.
pub(super) async fn read_newest(
    set: &RemoteSet,
    kind: &str,
) -> Result<Option<(i64, String, Rows)>> {
    let Some((ms, name)) = newest_csv(set, kind).await? else {
        return Ok(None);
    };
    let text = get_text(set.labels.as_ref(), &name).await?;
    let rows = Rows::parse(&text, Path::new(&name))?;
    Ok(Some((ms, name, rows)))
}

/// The key for a totag row: an exact key, else the same file name (ALD's `folder` column is
/// often the annotator's local folder, not a blob path).
pub(super) fn lookup<'a, T>(
    map: &'a HashMap<String, T>,
    by_name: &'a HashMap<String, String>,
    key: &str,
) -> Option<&'a T> {
    map.get(key).or_else(|| {
        let name = key.rsplit('/').next().unwrap_or(key);
        by_name.get(name).and_then(|k| map.get(k))
    })
}

/// Reads an ALD CSV from the labels container: `(image key, row)` pairs, header first.
pub async fn read_ald_csv(
    set: &RemoteSet,
    name: &str,
) -> Result<(Vec<String>, Vec<(String, Vec<String>)>)> {
    let text = get_text(set.labels.as_ref(), name).await?;
    let rows = Rows::parse(&text, Path::new(name))?;
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

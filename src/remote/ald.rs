//! The active-learning-detect CSVs in the labels container: `totag_<ms>.csv`,
//! `tagging_<ms>.csv`, `tagged_<ms>.csv`, the newest of each kind being the current one.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};

use super::{Remote, RemoteSet, list_all};
use crate::sanitize::for_terminal;

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
    String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", for_terminal(name)))
}

/// The newest `<kind>` CSV: its ms, its name and its rows.
pub(super) async fn read_newest(
    set: &RemoteSet,
    kind: &str,
) -> Result<Option<(i64, String, AldRows)>> {
    let Some((ms, name)) = newest_csv(set, kind).await? else {
        return Ok(None);
    };
    let text = get_text(set.labels.as_ref(), &name).await?;
    let rows = parse_ald(&text, &for_terminal(&name))?;
    Ok(Some((ms, name, rows)))
}

/// CSV rows (header first) of an ALD file, with the image key of each row.
pub(super) struct AldRows {
    pub header: csv::StringRecord,
    pub rows: Vec<(String, csv::StringRecord)>,
}

pub(super) fn parse_ald(text: &str, what: &str) -> Result<AldRows> {
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
    pub(super) fn conform(self, header: &csv::StringRecord) -> Result<AldRows> {
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

    pub(super) fn to_csv(&self, keep: impl Fn(&str) -> bool) -> Result<String> {
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
    pub(super) fn confidences(&self) -> HashMap<String, Option<f64>> {
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

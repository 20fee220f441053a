//! The label store: SQLite in WAL mode, the only writer of labels. Every mutation is one
//! transaction and leaves a journal row naming who did what.

mod filter;
mod infer;
mod remote;
mod review;
mod schema;
mod signature;
mod speed;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::formats::KnownImage;
use crate::model::{BBox, Dataset, ImageLabels, ImageStatus, Label, Origin, validate_label_name};

pub use filter::{Filter, FilterError, glob_match};
pub use infer::{
    ImageResult, ModelRun, NewPrediction, PendingImage, PredictedImage, StoredPrediction,
    TRAINED_ADAPTER,
};
pub use remote::{HeldClaim, NewClaim};
pub use review::{Decided, Decision, EditLabel, ImageEdit, Proposal, ProposalCounts, Replay};
pub use schema::VERSION as SCHEMA_VERSION;
pub use speed::Speed;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("label store {path}: {}", sql_message(.error))]
    Open {
        path: String,
        error: rusqlite::Error,
    },
    #[error(
        "label store {path} has schema version {found}, newer than this termtag understands ({supported}): update termtag"
    )]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("label store .termtag/labels.db: {}", sql_message(.0))]
    Sql(rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

// Not `#[from]`: that would make the SQLite error a source, and the error chain would repeat it.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e)
    }
}

/// SQLite's own wording, except for a full disk (or a file-size limit), which says what happened to
/// the command's changes and what to do.
fn sql_message(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
    match e {
        rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, DiskFull | SystemIoFailure) => {
            "cannot write (disk full, or a write refused by the system): none of this command's changes were saved; free space and run it again".into()
        }
        e => e.to_string(),
    }
}

/// Inserts the images whose key is not known yet, with `status` (or `broken` when probing
/// failed); returns how many were inserted.
fn insert_images(tx: &Transaction, images: &[NewImage], status: ImageStatus) -> Result<usize> {
    let now = now_ms();
    let mut st = tx.prepare(
        "INSERT OR IGNORE INTO image (key, width, height, orientation, size, added_at, status, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut added = 0;
    for im in images {
        let status = if im.error.is_some() {
            ImageStatus::Broken
        } else {
            status
        };
        added += st.execute(params![
            im.key,
            im.width,
            im.height,
            im.orientation,
            im.size as i64,
            now,
            status.as_str(),
            im.error
        ])?;
    }
    Ok(added)
}

fn invalid(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(msg.to_string())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassRow {
    pub id: i64,
    pub name: String,
    pub position: i64,
    pub archived: bool,
}

/// An image found by the indexer, ready to be added.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    pub size: u64,
    /// Set when the file could not be read; the image is stored as `broken`.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub id: i64,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    pub size: u64,
    pub added_at: i64,
    pub status: ImageStatus,
    pub error: Option<String>,
    pub reviewed_at: Option<i64>,
    pub reviewed_by: Option<String>,
    /// Classes of the image's labels, in class order, repeated per box.
    pub classes: Vec<String>,
    /// Authors of the image's labels (deduplicated).
    pub authors: Vec<String>,
}

/// What the review queue needs of an image: [`ImageRow`] less the labels, which cost a lookup per
/// image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBrief {
    pub id: i64,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub status: ImageStatus,
}

impl crate::queue::QueueRow for ImageBrief {
    fn id(&self) -> i64 {
        self.id
    }
    fn status(&self) -> ImageStatus {
        self.status
    }
}

/// Result of an import, for the command's summary line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportCounts {
    pub images: usize,
    pub labels: usize,
    pub empty: usize,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    pub images: usize,
    pub by_status: BTreeMap<String, usize>,
    /// class → (labels, images with that class); every class listed, in class order.
    pub by_class: Vec<(String, usize, usize)>,
    /// annotator → (images reviewed, labels written).
    pub by_annotator: BTreeMap<String, (usize, usize)>,
    pub verified_empty: usize,
    pub predicted_images: usize,
    /// Review speed per annotator.
    pub speed: Vec<Speed>,
}

pub struct Store {
    conn: Connection,
    author: String,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path, author: &str) -> Result<Store> {
        let shown = crate::sanitize::for_terminal(&path.to_string_lossy());
        let open_err = |error| StoreError::Open {
            path: shown.clone(),
            error,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let found: Option<i64> = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        if let Some(found) = found
            && found > schema::VERSION
        {
            return Err(StoreError::TooNew {
                path: shown,
                found,
                supported: schema::VERSION,
            });
        }
        schema::migrate(&mut conn).map_err(|e| match e {
            schema::MigrateError::Sql(e) => open_err(e),
            other => invalid(format!("label store {shown}: {other}")),
        })?;
        Ok(Store {
            conn,
            author: author.to_string(),
        })
    }

    pub fn author(&self) -> &str {
        &self.author
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
    }

    /// Changes whenever another connection (a pull, `termtag predict` in another shell) commits
    /// to the store: what was read before may be stale.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    // ---- classes ---------------------------------------------------------------------------

    pub fn classes(&self) -> Result<Vec<ClassRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, position, archived FROM class ORDER BY position, id")?;
        let rows = st.query_map([], |r| {
            Ok(ClassRow {
                id: r.get(0)?,
                name: r.get(1)?,
                position: r.get(2)?,
                archived: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn class_names(&self) -> Result<Vec<String>> {
        Ok(self.classes()?.into_iter().map(|c| c.name).collect())
    }

    /// Adds the classes not yet present, in order; returns how many were new.
    pub fn add_classes(&mut self, names: &[String]) -> Result<usize> {
        for n in names {
            validate_label_name(n).map_err(invalid)?;
        }
        let tx = self.conn.transaction()?;
        let added = insert_classes(&tx, names)?;
        if added > 0 {
            journal(&tx, &self.author, "classes.add", None, &names.join(","))?;
        }
        tx.commit()?;
        Ok(added)
    }

    pub fn rename_class(&mut self, old: &str, new: &str) -> Result<()> {
        validate_label_name(new).map_err(invalid)?;
        let tx = self.conn.transaction()?;
        let id = class_id(&tx, old)?;
        if class_id(&tx, new).is_ok() {
            return Err(invalid(format!(
                "class `{new}` already exists: use `termtag classes merge {old} {new}` to fold one into the other"
            )));
        }
        tx.execute("UPDATE class SET name = ?1 WHERE id = ?2", params![new, id])?;
        journal(
            &tx,
            &self.author,
            "classes.rename",
            None,
            &format!("{old} -> {new}"),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Moves every label and prediction of `from` to `into` and removes `from`.
    /// Returns how many labels moved.
    pub fn merge_class(&mut self, from: &str, into: &str) -> Result<usize> {
        if from == into {
            return Err(invalid(format!("cannot merge class `{from}` into itself")));
        }
        let tx = self.conn.transaction()?;
        let (f, i) = (class_id(&tx, from)?, class_id(&tx, into)?);
        let moved = tx.execute(
            "UPDATE annotation SET class_id = ?1, updated_at = ?3 WHERE class_id = ?2",
            params![i, f, now_ms()],
        )?;
        tx.execute(
            "UPDATE prediction SET class_id = ?1 WHERE class_id = ?2",
            params![i, f],
        )?;
        tx.execute("DELETE FROM class WHERE id = ?1", params![f])?;
        journal(
            &tx,
            &self.author,
            "classes.merge",
            None,
            &format!("{from} -> {into}"),
        )?;
        tx.commit()?;
        Ok(moved)
    }

    /// Deletes a class with its labels and predictions. With `with_images`, the images that carry
    /// the class leave the project; their keys are returned so the caller can delete the files.
    /// Without it, reviewed images left with no label go back to `new`: they were not verified empty.
    pub fn delete_class(&mut self, name: &str, with_images: bool) -> Result<(usize, Vec<String>)> {
        let tx = self.conn.transaction()?;
        let id = class_id(&tx, name)?;
        let affected: Vec<(i64, String)> = {
            let mut st = tx.prepare(
                "SELECT DISTINCT i.id, i.key FROM image i JOIN annotation a ON a.image_id = i.id
                 WHERE a.class_id = ?1 ORDER BY i.key",
            )?;
            st.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let labels = tx.execute("DELETE FROM annotation WHERE class_id = ?1", params![id])?;
        tx.execute("DELETE FROM prediction WHERE class_id = ?1", params![id])?;
        tx.execute("DELETE FROM class WHERE id = ?1", params![id])?;
        let mut removed = Vec::new();
        for (image_id, key) in affected {
            if with_images {
                tx.execute("DELETE FROM image WHERE id = ?1", params![image_id])?;
                tx.execute(
                    "INSERT OR REPLACE INTO excluded (key, at) VALUES (?1, ?2)",
                    params![key, now_ms()],
                )?;
                removed.push(key);
            } else {
                tx.execute(
                    "UPDATE image SET status = 'new', reviewed_at = NULL, reviewed_by = NULL
                     WHERE id = ?1 AND status = 'reviewed'
                       AND NOT EXISTS (SELECT 1 FROM annotation WHERE image_id = ?1)",
                    params![image_id],
                )?;
            }
        }
        let detail = format!("{name} labels={labels} images_removed={}", removed.len());
        journal(&tx, &self.author, "classes.delete", None, &detail)?;
        tx.commit()?;
        Ok((labels, removed))
    }

    // ---- images ----------------------------------------------------------------------------

    /// Keys the source scan must skip: known images and images removed from the project.
    pub fn image_keys(&self) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT key FROM image UNION SELECT key FROM excluded")?;
        let keys = st.query_map([], |r| r.get(0))?;
        Ok(keys.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds images whose key is not yet known, in one transaction; returns how many were added.
    pub fn add_images(&mut self, images: &[NewImage]) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let added = insert_images(&tx, images, ImageStatus::New)?;
        if added > 0 {
            journal(
                &tx,
                &self.author,
                "images.add",
                None,
                &format!("{added} images"),
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// The project's images for import name resolution.
    pub fn known_images(&self) -> Result<Vec<KnownImage>> {
        let mut st = self
            .conn
            .prepare("SELECT key, width, height, orientation FROM image ORDER BY key")?;
        let rows = st.query_map([], |r| {
            Ok(KnownImage {
                key: r.get(0)?,
                width: r.get(1)?,
                height: r.get(2)?,
                orientation: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// [`Store::images`] for the review queue: the same images in the same order, without their
    /// labels.
    pub fn image_briefs(&self, filter: &Filter) -> Result<Vec<ImageBrief>> {
        let (sql_where, args) = filter.sql();
        let mut st = self.conn.prepare(&format!(
            "SELECT i.id, i.key, i.width, i.height, i.status FROM image i WHERE {sql_where}"
        ))?;
        let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let key = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            if !filter.matches_names(key) {
                continue;
            }
            let status = r.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?;
            let status = status.parse().unwrap_or(ImageStatus::New);
            out.push(ImageBrief {
                id: r.get(0)?,
                key: key.to_string(),
                width: r.get(2)?,
                height: r.get(3)?,
                status,
            });
        }
        // Sorted here: SQLite's walk of the key index fetches the rows in key order, a random
        // order in the table, and takes ten times as long. Keys compare as bytes either way.
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Images matching `filter`, sorted by key.
    pub fn images(&self, filter: &Filter) -> Result<Vec<ImageRow>> {
        let (sql_where, args) = filter.sql();
        let sql = format!(
            "SELECT i.id, i.key, i.width, i.height, i.orientation, i.size, i.added_at, i.status,
                    i.error, i.reviewed_at, i.reviewed_by,
                    (SELECT group_concat(c.name, char(31)) FROM
                        (SELECT c.name FROM annotation a JOIN class c ON c.id = a.class_id
                         WHERE a.image_id = i.id ORDER BY c.position, a.id) c),
                    (SELECT group_concat(author, char(31)) FROM
                        (SELECT DISTINCT author FROM annotation WHERE image_id = i.id ORDER BY author))
             FROM image i WHERE {sql_where} ORDER BY i.key"
        );
        let mut st = self.conn.prepare(&sql)?;
        let split = |s: Option<String>| -> Vec<String> {
            s.map(|s| s.split('\u{1f}').map(str::to_string).collect())
                .unwrap_or_default()
        };
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let status: String = r.get(7)?;
            Ok(ImageRow {
                id: r.get(0)?,
                key: r.get(1)?,
                width: r.get(2)?,
                height: r.get(3)?,
                orientation: r.get(4)?,
                size: r.get::<_, i64>(5)? as u64,
                added_at: r.get(6)?,
                status: status.parse().unwrap_or(ImageStatus::New),
                error: r.get(8)?,
                reviewed_at: r.get(9)?,
                reviewed_by: r.get(10)?,
                classes: split(r.get(11)?),
                authors: split(r.get(12)?),
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if filter.matches_names(&row.key) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Removes images (and their labels) from the project; returns the keys removed.
    /// Unknown keys are an error and nothing is removed. Removed keys are remembered so that a
    /// refresh does not bring back a file left in the source.
    pub fn remove_images(&mut self, keys: &[String]) -> Result<Vec<String>> {
        let tx = self.conn.transaction()?;
        let now = now_ms();
        for key in keys {
            tx.execute(
                "INSERT OR REPLACE INTO excluded (key, at) VALUES (?1, ?2)",
                params![key, now],
            )?;
            let n = tx.execute("DELETE FROM image WHERE key = ?1", params![key])?;
            if n == 0 {
                return Err(invalid(format!(
                    "no image `{}` in this project: see `termtag images list`",
                    crate::sanitize::for_terminal(key)
                )));
            }
        }
        journal(&tx, &self.author, "images.rm", None, &keys.join("\n"))?;
        tx.commit()?;
        Ok(keys.to_vec())
    }

    // ---- labels and predictions --------------------------------------------------------------

    /// Replaces the labels of every image in `ds` (keys already resolved to project keys) with the
    /// imported ones and marks those images reviewed: an imported image with no label is verified
    /// empty. One transaction: on error nothing changes.
    pub fn import_labels(&mut self, ds: &Dataset, source: &str) -> Result<ImportCounts> {
        let tx = self.conn.transaction()?;
        let classes = class_ids(&tx)?;
        let now = now_ms();
        let mut counts = ImportCounts::default();
        for im in &ds.images {
            let image_id = image_id(&tx, &im.key)?;
            tx.execute(
                "DELETE FROM annotation WHERE image_id = ?1",
                params![image_id],
            )?;
            for l in &im.labels {
                let cid = lookup_class(&classes, &l.class)?;
                insert_label(
                    &tx,
                    image_id,
                    cid,
                    l.bbox,
                    Origin::Imported,
                    l.score,
                    &self.author,
                    now,
                )?;
            }
            tx.execute(
                "UPDATE image SET status = 'reviewed', reviewed_at = ?2, reviewed_by = ?3, error = NULL WHERE id = ?1",
                params![image_id, now, self.author],
            )?;
            counts.images += 1;
            counts.labels += im.labels.len();
            counts.empty += usize::from(im.labels.is_empty());
        }
        let detail = format!(
            "{source}: {} images, {} labels",
            counts.images, counts.labels
        );
        journal(&tx, &self.author, "import.labels", None, &detail)?;
        tx.commit()?;
        Ok(counts)
    }

    /// Records `ds` as one model run's predictions (`adapter` says where they came from, e.g.
    /// `import:coco`). Returns the run id.
    pub fn import_predictions(&mut self, ds: &Dataset, path: &str, adapter: &str) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let classes = class_ids(&tx)?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO model_run (path, adapter, started_at, finished_at) VALUES (?1, ?2, ?3, ?3)",
            params![path, adapter, now],
        )?;
        let run = tx.last_insert_rowid();
        for im in &ds.images {
            let image_id = image_id(&tx, &im.key)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO predicted (run_id, image_id) VALUES (?1, ?2)",
            )?
            .execute(params![run, image_id])?;
            for l in &im.labels {
                let cid = lookup_class(&classes, &l.class)?;
                let score = l.score.ok_or_else(|| {
                    invalid(format!(
                        "{path}: a prediction for `{}` has no score: import it with `--as labels`",
                        crate::sanitize::for_terminal(&im.key)
                    ))
                })?;
                let b = l.bbox;
                tx.prepare_cached(
                    "INSERT INTO prediction (run_id, image_id, class_id, x0, y0, x1, y1, score)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    run,
                    image_id,
                    cid,
                    b.map(|b| b.x0),
                    b.map(|b| b.y0),
                    b.map(|b| b.x1),
                    b.map(|b| b.y1),
                    score
                ])?;
            }
            review::inherit_decisions(&tx, run, image_id)?;
        }
        journal(
            &tx,
            &self.author,
            "import.predictions",
            None,
            &format!("{path}: run {run}, {} images", ds.images.len()),
        )?;
        tx.commit()?;
        Ok(run)
    }

    /// The reviewed labels (images that are reviewed or carry labels), sorted by key, or with
    /// `predictions` the latest model run's predictions for every image it processed, less
    /// those a reviewer dismissed or replaced by a label.
    pub fn dataset(&self, predictions: bool) -> Result<Dataset> {
        let classes = self.class_names()?;
        let (images_sql, labels_sql) = if predictions {
            (
                "SELECT i.id, i.key, i.width, i.height FROM image i
                 WHERE EXISTS (SELECT 1 FROM predicted p WHERE p.image_id = i.id) ORDER BY i.key",
                "SELECT p.image_id, c.name, p.x0, p.y0, p.x1, p.y1, p.score
                 FROM prediction p JOIN class c ON c.id = p.class_id
                 WHERE p.run_id = (SELECT max(run_id) FROM predicted d WHERE d.image_id = p.image_id)
                   AND p.decision IS NULL
                 ORDER BY p.image_id, p.score DESC, p.id",
            )
        } else {
            (
                "SELECT i.id, i.key, i.width, i.height FROM image i
                 WHERE i.status = 'reviewed' OR EXISTS (SELECT 1 FROM annotation a WHERE a.image_id = i.id)
                 ORDER BY i.key",
                "SELECT a.image_id, c.name, a.x0, a.y0, a.x1, a.y1, a.score
                 FROM annotation a JOIN class c ON c.id = a.class_id ORDER BY a.image_id, a.id",
            )
        };
        let mut labels: HashMap<i64, Vec<Label>> = HashMap::new();
        {
            let mut st = self.conn.prepare(labels_sql)?;
            let rows = st.query_map([], |r| {
                let coords: [Option<f64>; 4] = [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?];
                let bbox = bbox_of(coords);
                Ok((
                    r.get::<_, i64>(0)?,
                    Label {
                        class: r.get(1)?,
                        bbox,
                        score: r.get(6)?,
                    },
                ))
            })?;
            for row in rows {
                let (id, l) = row?;
                labels.entry(id).or_default().push(l);
            }
        }
        let mut st = self.conn.prepare(images_sql)?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, u32>(3)?,
            ))
        })?;
        let mut images = Vec::new();
        for row in rows {
            let (id, key, width, height) = row?;
            images.push(ImageLabels {
                key,
                width,
                height,
                labels: labels.remove(&id).unwrap_or_default(),
            });
        }
        Ok(Dataset { classes, images })
    }

    pub fn stats(&self) -> Result<Stats> {
        let c = &self.conn;
        let mut s = Stats {
            images: c.query_row("SELECT count(*) FROM image", [], |r| n(r, 0))?,
            ..Stats::default()
        };
        let mut st = c.prepare("SELECT status, count(*) FROM image GROUP BY status")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, n(r, 1)?)))? {
            let (k, v): (String, usize) = row?;
            s.by_status.insert(k, v);
        }
        let mut st = c.prepare(
            "SELECT c.name, count(a.id), count(DISTINCT a.image_id) FROM class c
             LEFT JOIN annotation a ON a.class_id = c.id GROUP BY c.id ORDER BY c.position, c.id",
        )?;
        for row in st.query_map([], |r| Ok((r.get(0)?, n(r, 1)?, n(r, 2)?)))? {
            s.by_class.push(row?);
        }
        let mut st = c.prepare(
            "SELECT reviewed_by, count(*) FROM image WHERE status = 'reviewed' AND reviewed_by IS NOT NULL
             GROUP BY reviewed_by",
        )?;
        for row in st.query_map([], |r| Ok((r.get(0)?, n(r, 1)?)))? {
            let (who, n): (String, usize) = row?;
            s.by_annotator.entry(who).or_default().0 = n;
        }
        let mut st = c.prepare("SELECT author, count(*) FROM annotation GROUP BY author")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, n(r, 1)?)))? {
            let (who, n): (String, usize) = row?;
            s.by_annotator.entry(who).or_default().1 = n;
        }
        s.verified_empty = c.query_row(
            "SELECT count(*) FROM image i WHERE status = 'reviewed'
             AND NOT EXISTS (SELECT 1 FROM annotation a WHERE a.image_id = i.id)",
            [],
            |r| n(r, 0),
        )?;
        s.predicted_images =
            // DISTINCT in a subquery walks the `predicted_image` index; count(DISTINCT) sorts.
            c.query_row(
                "SELECT count(*) FROM (SELECT DISTINCT image_id FROM predicted)",
                [],
                |r| n(r, 0),
            )?;
        s.speed = self.review_speed()?;
        Ok(s)
    }

    /// How many journal rows there are.
    pub fn journal_len(&self) -> Result<usize> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM journal", [], |r| n(r, 0))?)
    }
}

/// Records who did what; part of the caller's transaction.
fn journal(
    tx: &Transaction,
    author: &str,
    action: &str,
    image_id: Option<i64>,
    detail: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO journal (at, author, action, image_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_ms(), author, action, image_id, detail],
    )?;
    Ok(())
}

/// One label row; part of the caller's transaction.
#[allow(clippy::too_many_arguments)]
fn insert_label(
    tx: &Transaction,
    image_id: i64,
    class_id: i64,
    bbox: Option<BBox>,
    origin: Origin,
    score: Option<f64>,
    author: &str,
    now: i64,
) -> Result<()> {
    let b = bbox;
    tx.execute(
        "INSERT INTO annotation (image_id, class_id, x0, y0, x1, y1, origin, score, author, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            image_id,
            class_id,
            b.map(|b| b.x0),
            b.map(|b| b.y0),
            b.map(|b| b.x1),
            b.map(|b| b.y1),
            origin.as_str(),
            score,
            author,
            now
        ],
    )?;
    Ok(())
}

/// A box from four nullable columns (all NULL: a classification label).
fn bbox_of(coords: [Option<f64>; 4]) -> Option<BBox> {
    match coords {
        [Some(x0), Some(y0), Some(x1), Some(y1)] => Some(BBox { x0, y0, x1, y1 }),
        _ => None,
    }
}

/// A count column as `usize`.
fn n(r: &rusqlite::Row, i: usize) -> rusqlite::Result<usize> {
    Ok(r.get::<_, i64>(i)?.max(0) as usize)
}

fn insert_classes(tx: &Transaction, names: &[String]) -> Result<usize> {
    let mut pos: i64 = tx.query_row(
        "SELECT coalesce(max(position), -1) + 1 FROM class",
        [],
        |r| r.get(0),
    )?;
    let mut added = 0;
    for n in names {
        let exists: bool = tx.query_row(
            "SELECT count(*) > 0 FROM class WHERE name = ?1",
            params![n],
            |r| r.get(0),
        )?;
        if !exists {
            tx.execute(
                "INSERT INTO class (name, position) VALUES (?1, ?2)",
                params![n, pos],
            )?;
            pos += 1;
            added += 1;
        }
    }
    Ok(added)
}

fn class_id(tx: &Connection, name: &str) -> Result<i64> {
    tx.query_row("SELECT id FROM class WHERE name = ?1", params![name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| {
        invalid(format!(
            "no class `{}` in this project: see `termtag stats` for the classes",
            crate::sanitize::for_terminal(name)
        ))
    })
}

fn class_ids(tx: &Connection) -> Result<HashMap<String, i64>> {
    let mut st = tx.prepare("SELECT name, id FROM class")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn lookup_class(classes: &HashMap<String, i64>, name: &str) -> Result<i64> {
    classes.get(name).copied().ok_or_else(|| {
        invalid(format!(
            "no class `{}` in this project",
            crate::sanitize::for_terminal(name)
        ))
    })
}

fn image_id(tx: &Connection, key: &str) -> Result<i64> {
    tx.prepare_cached("SELECT id FROM image WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?
        .ok_or_else(|| {
            invalid(format!(
                "no image `{}` in this project",
                crate::sanitize::for_terminal(key)
            ))
        })
}

impl Store {
    /// Records that an image could not be decoded, with the reason.
    pub fn mark_broken(&mut self, image_id: i64, error: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE image SET status = 'broken', error = ?2 WHERE id = ?1",
            params![image_id, error],
        )?;
        journal(&tx, &self.author, "mark_broken", Some(image_id), error)?;
        tx.commit()?;
        Ok(())
    }
}

/// A store in a temporary folder (kept while the folder lives) with the classes knot and defect
/// and the 100×50 images `keys`, and the id of the first, for the store's unit tests.
#[cfg(test)]
fn test_store(keys: &[&str]) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("labels.db"), "alice").unwrap();
    s.add_classes(&["knot".into(), "defect".into()]).unwrap();
    let images: Vec<NewImage> = keys
        .iter()
        .map(|key| NewImage {
            key: key.to_string(),
            width: 100,
            height: 50,
            orientation: 1,
            size: 10,
            error: None,
        })
        .collect();
    s.add_images(&images).unwrap();
    let id = s.images(&Filter::default()).unwrap()[0].id;
    (dir, s, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store, i64) {
        test_store(&["a.jpg"])
    }

    #[test]
    fn discarding_an_empty_run_removes_its_journal_line_only() {
        let (_d, mut s, _) = store();
        // A model file named like another run's journal line: a match on the wording would
        // take run 1's line for run 11's.
        let kept = s
            .create_model_run("odd: run 11 (copy).onnx", "1", "yolo", "cfg")
            .unwrap();
        for _ in 0..9 {
            s.create_model_run("m.onnx", "2", "yolo", "cfg").unwrap();
        }
        let empty = s.create_model_run("m.onnx", "3", "yolo", "cfg").unwrap();
        assert_eq!((kept, empty), (1, 11));
        let before = s.journal_len().unwrap();
        assert!(s.discard_empty_model_run(empty).unwrap());
        assert_eq!(s.journal_len().unwrap(), before - 1);
        let runs: Vec<String> = s
            .conn
            .prepare("SELECT detail FROM journal WHERE action = 'model.run' ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(runs.len(), 10);
        assert!(runs[0].ends_with(": run 1 (yolo)"), "{runs:?}");
        assert!(
            !runs.iter().any(|d| d.ends_with(": run 11 (yolo)")),
            "{runs:?}"
        );
    }

    fn with_images(keys: &[&str]) -> (tempfile::TempDir, Store) {
        let (dir, mut s, _) = store();
        let images: Vec<NewImage> = keys
            .iter()
            .map(|k| NewImage {
                key: k.to_string(),
                width: 100,
                height: 50,
                orientation: 1,
                size: 10,
                error: None,
            })
            .collect();
        s.add_images(&images).unwrap();
        (dir, s)
    }

    #[test]
    fn each_image_shows_the_newest_run_that_processed_it() {
        use super::infer::{ImageResult, NewPrediction};
        let (_dir, mut s) = with_images(&["b.jpg", "c.jpg"]);
        let ids: HashMap<String, i64> = s
            .images(&Filter::default())
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.id))
            .collect();
        let knot = s.classes().unwrap()[0].id;
        let pred = |score| NewPrediction {
            class_id: knot,
            bbox: Some(BBox {
                x0: 0.1,
                y0: 0.1,
                x1: 0.2,
                y1: 0.2,
            }),
            score,
        };
        let old = s.create_model_run("old.onnx", "1", "yolo", "cfg").unwrap();
        let new = s.create_model_run("new.onnx", "2", "yolo", "cfg").unwrap();
        // The old run saw a, b and c; the new one a (two boxes) and b (nothing), not c.
        s.write_predictions(
            old,
            &[
                (ids["a.jpg"], ImageResult::Predicted(vec![pred(0.9)])),
                (ids["b.jpg"], ImageResult::Predicted(vec![pred(0.8)])),
                (ids["c.jpg"], ImageResult::Predicted(vec![pred(0.7)])),
            ],
        )
        .unwrap();
        s.write_predictions(
            new,
            &[
                (
                    ids["a.jpg"],
                    ImageResult::Predicted(vec![pred(0.4), pred(0.6)]),
                ),
                (ids["b.jpg"], ImageResult::Predicted(vec![])),
            ],
        )
        .unwrap();
        let scores = |run| -> Vec<(String, i64, Vec<f64>)> {
            s.predicted_images(run)
                .unwrap()
                .into_iter()
                .map(|p| {
                    (
                        p.key,
                        p.run_id,
                        p.predictions.iter().map(|x| x.score).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(
            scores(None),
            vec![
                ("a.jpg".into(), new, vec![0.4, 0.6]),
                ("b.jpg".into(), new, vec![]),
                ("c.jpg".into(), old, vec![0.7]),
            ]
        );
        assert_eq!(
            scores(Some(old)),
            vec![
                ("a.jpg".into(), old, vec![0.9]),
                ("b.jpg".into(), old, vec![0.8]),
                ("c.jpg".into(), old, vec![0.7]),
            ]
        );
        let shown: Vec<f64> = s
            .proposals(ids["a.jpg"], 0.0)
            .unwrap()
            .iter()
            .map(|p| p.score)
            .collect();
        assert_eq!(shown, vec![0.6, 0.4]);
        let exported: Vec<(String, Vec<Option<f64>>)> = s
            .dataset(true)
            .unwrap()
            .images
            .into_iter()
            .map(|im| (im.key, im.labels.iter().map(|l| l.score).collect()))
            .collect();
        assert_eq!(
            exported,
            vec![
                ("a.jpg".into(), vec![Some(0.6), Some(0.4)]),
                ("b.jpg".into(), vec![]),
                ("c.jpg".into(), vec![Some(0.7)]),
            ]
        );
        assert_eq!(s.stats().unwrap().predicted_images, 3);

        // The review queue's lean read gives what the queue made of `predicted_images`, also
        // after a decision and with a class score (no box).
        s.conn
            .execute(
                "UPDATE prediction SET decision = 'dismissed' WHERE score = 0.4",
                [],
            )
            .unwrap();
        let defect = s.classes().unwrap()[1].id;
        let d = s.create_model_run("cls.onnx", "3", "cls", "cfg").unwrap();
        let score = NewPrediction {
            class_id: defect,
            bbox: None,
            score: 0.3,
        };
        s.write_predictions(d, &[(ids["c.jpg"], ImageResult::Predicted(vec![score]))])
            .unwrap();
        let lean = s.queue_images().unwrap();
        let full: Vec<crate::queue::QueueImage> = s
            .predicted_images(None)
            .unwrap()
            .iter()
            .map(|im| crate::queue::QueueImage {
                id: im.id,
                preds: im
                    .predictions
                    .iter()
                    .map(|p| crate::queue::Scored {
                        class: p.class.as_str().into(),
                        score: p.score,
                        boxed: p.bbox.is_some(),
                    })
                    .collect(),
                decided: false,
            })
            .collect();
        assert_eq!(lean, full);
        let preds = |i: usize| -> Vec<(&str, f64, bool)> {
            lean[i]
                .preds
                .iter()
                .map(|p| (&*p.class, p.score, p.boxed))
                .collect()
        };
        assert_eq!(preds(0), vec![("knot", 0.6, true)]);
        assert_eq!(preds(1), vec![]);
        assert_eq!(preds(2), vec![("defect", 0.3, false)]);
        assert!(lean.iter().all(|q| !q.decided));

        // Every proposal decided: nothing open, and not an image the model found empty.
        s.conn
            .execute(
                "UPDATE prediction SET decision = 'dismissed' WHERE score = 0.6",
                [],
            )
            .unwrap();
        let lean = s.queue_images().unwrap();
        let decided: Vec<(usize, bool)> = lean.iter().map(|q| (q.preds.len(), q.decided)).collect();
        assert_eq!(decided, vec![(0, true), (0, false), (1, false)]);
    }

    #[test]
    fn name_and_path_filters_narrow_in_sql_and_match_exactly() {
        let (_dir, s) = with_images(&["x/ab/c.jpg", "x/b[1].jpg", "猫/猫1.jpg", "ab.png"]);
        let keys = |f: &str| -> Vec<String> {
            s.images(&Filter::parse(f).unwrap())
                .unwrap()
                .into_iter()
                .map(|r| r.key)
                .collect()
        };
        assert_eq!(keys("name=a*"), vec!["a.jpg", "ab.png"], "not x/ab/c.jpg");
        assert_eq!(keys("name=b[1]*"), vec!["x/b[1].jpg"]);
        assert_eq!(keys("name=?1.jpg"), vec!["猫/猫1.jpg"]);
        assert_eq!(keys("path=x/*"), vec!["x/ab/c.jpg", "x/b[1].jpg"]);
        assert_eq!(keys("path=*c.jpg name=c*"), vec!["x/ab/c.jpg"]);
        assert_eq!(keys("path=a*"), vec!["a.jpg", "ab.png"]);
        // The review queue's rows: the same images, in the same order.
        for f in ["", "name=a*", "path=x/*", "status=new", "class=none"] {
            let f = Filter::parse(f).unwrap();
            let brief: Vec<(i64, String, u32, u32, ImageStatus)> = s
                .image_briefs(&f)
                .unwrap()
                .into_iter()
                .map(|b| (b.id, b.key, b.width, b.height, b.status))
                .collect();
            let full: Vec<(i64, String, u32, u32, ImageStatus)> = s
                .images(&f)
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.key, r.width, r.height, r.status))
                .collect();
            assert_eq!(brief, full, "{f:?}");
        }
    }

    #[test]
    fn refuses_a_store_from_a_newer_termtag() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.db");
        drop(Store::open(&p, "a").unwrap());
        let c = Connection::open(&p).unwrap();
        c.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(c);
        let e = Store::open(&p, "a").err().unwrap().to_string();
        assert!(
            e.contains("schema version 99") && e.contains("update termtag"),
            "{e}"
        );
    }
}

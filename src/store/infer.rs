//! Store queries for pre-labeling, the review queue, evaluation and training: model runs, the
//! images a run still has to process, predictions written in large transactions.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, bbox_of, journal, now_ms};
use crate::model::{BBox, ImageStatus};
use crate::queue::{IdSlots, QueueImage, Scored};

/// A model run as recorded in `model_run`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRun {
    pub id: i64,
    pub path: String,
    pub sha256: Option<String>,
    pub adapter: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// An image a run still has to process.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingImage {
    pub id: i64,
    pub key: String,
}

/// One predicted box (or class score, without a box) ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPrediction {
    pub class_id: i64,
    pub bbox: Option<BBox>,
    pub score: f64,
}

/// What a worker made of one image: predictions, or the reason it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageResult {
    Predicted(Vec<NewPrediction>),
    Broken(String),
}

/// A stored prediction, as the queue and eval read them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrediction {
    pub class: String,
    pub bbox: Option<BBox>,
    pub score: f64,
}

/// An image with its latest predictions, for the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedImage {
    pub id: i64,
    pub key: String,
    pub status: ImageStatus,
    pub run_id: i64,
    pub predictions: Vec<StoredPrediction>,
}

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<ModelRun> {
    Ok(ModelRun {
        id: r.get(0)?,
        path: r.get(1)?,
        sha256: r.get(2)?,
        adapter: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
    })
}

/// Adapter of a run registered by `termtag train` before any prediction chose the real one.
pub const TRAINED_ADAPTER: &str = "trained";

const RUN_COLUMNS: &str = "id, path, sha256, adapter, started_at, finished_at";

impl Store {
    /// The run of the model with this sha256, adapter and settings hash (`config`), if one was
    /// started before (the newest), or the run `termtag train` registered for it (its adapter and
    /// settings are set now).
    pub fn find_model_run(
        &mut self,
        sha256: &str,
        adapter: &str,
        config: &str,
    ) -> Result<Option<ModelRun>> {
        let run = self
            .conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM model_run WHERE sha256 = ?1
                     AND ((adapter = ?2 AND config = ?4) OR (adapter = ?3 AND config IS NULL))
                     ORDER BY id DESC LIMIT 1"
                ),
                params![sha256, adapter, TRAINED_ADAPTER, config],
                run_row,
            )
            .optional()?;
        match run {
            Some(mut run) if run.adapter == TRAINED_ADAPTER => {
                self.conn.execute(
                    "UPDATE model_run SET adapter = ?2, config = ?3 WHERE id = ?1",
                    params![run.id, adapter, config],
                )?;
                run.adapter = adapter.to_string();
                Ok(Some(run))
            }
            other => Ok(other),
        }
    }

    /// Records a new model run (not finished yet).
    pub fn create_model_run(
        &mut self,
        path: &str,
        sha256: &str,
        adapter: &str,
        config: &str,
    ) -> Result<i64> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO model_run (path, sha256, adapter, started_at, config) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![path, sha256, adapter, now_ms(), config],
        )?;
        let id = tx.last_insert_rowid();
        journal(
            &tx,
            &self.author,
            "model.run",
            None,
            &format!("{path}: run {id} ({adapter})"),
        )?;
        // The line names its run in `after`, so that discarding the run finds it by id.
        tx.execute(
            "UPDATE journal SET after = json_object('run_id', ?1) WHERE id = last_insert_rowid()",
            params![id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Removes a run that recorded nothing (and its journal line), as if it never started;
    /// false when it has predictions, which are kept.
    pub fn discard_empty_model_run(&mut self, run_id: i64) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let gone = tx.execute(
            "DELETE FROM model_run WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM predicted WHERE run_id = ?1)
               AND NOT EXISTS (SELECT 1 FROM prediction WHERE run_id = ?1)",
            params![run_id],
        )? == 1;
        if gone {
            tx.execute(
                "DELETE FROM journal WHERE action = 'model.run' AND json_extract(after, '$.run_id') = ?1",
                params![run_id],
            )?;
        }
        tx.commit()?;
        Ok(gone)
    }

    pub fn finish_model_run(&mut self, run_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE model_run SET finished_at = ?2 WHERE id = ?1",
            params![run_id, now_ms()],
        )?;
        Ok(())
    }

    pub fn model_runs(&self) -> Result<Vec<ModelRun>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM model_run ORDER BY id"))?;
        let rows = st.query_map([], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Images that are not broken and that `run_id` has not processed yet, in key order.
    pub fn images_to_predict(&self, run_id: i64) -> Result<Vec<PendingImage>> {
        let mut st = self.conn.prepare(
            "SELECT i.id, i.key FROM image i WHERE i.status != 'broken'
             AND NOT EXISTS (SELECT 1 FROM predicted p WHERE p.run_id = ?1 AND p.image_id = i.id)
             ORDER BY i.key",
        )?;
        let rows = st.query_map(params![run_id], |r| {
            Ok(PendingImage {
                id: r.get(0)?,
                key: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes the results of many images in one transaction: predictions and the `predicted`
    /// marks (so a resumed run skips them), and broken images with their reason.
    pub fn write_predictions(&mut self, run_id: i64, results: &[(i64, ImageResult)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut mark =
                tx.prepare("INSERT OR IGNORE INTO predicted (run_id, image_id) VALUES (?1, ?2)")?;
            let mut insert = tx.prepare(
                "INSERT INTO prediction (run_id, image_id, class_id, x0, y0, x1, y1, score)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            // A reviewed image keeps its status (and labels) even if its file went bad; it is
            // simply not marked predicted, so the next run tries it again.
            let mut broken = tx.prepare(
                "UPDATE image SET status = 'broken', error = ?2 WHERE id = ?1 AND status != 'reviewed'",
            )?;
            for (image_id, result) in results {
                match result {
                    ImageResult::Predicted(preds) => {
                        // A retried batch must not duplicate rows: the mark decides.
                        if mark.execute(params![run_id, image_id])? == 0 {
                            continue;
                        }
                        for p in preds {
                            let b = p.bbox;
                            insert.execute(params![
                                run_id,
                                image_id,
                                p.class_id,
                                b.map(|b| b.x0),
                                b.map(|b| b.y0),
                                b.map(|b| b.x1),
                                b.map(|b| b.y1),
                                p.score
                            ])?;
                        }
                        if !preds.is_empty() {
                            super::review::inherit_decisions(&tx, run_id, *image_id)?;
                        }
                    }
                    ImageResult::Broken(why) => {
                        broken.execute(params![image_id, why])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many images `run_id` has processed.
    pub fn run_predicted_count(&self, run_id: i64) -> Result<usize> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM predicted WHERE run_id = ?1",
            params![run_id],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// Every image that some run processed, with the predictions of the newest run that
    /// processed it less those a reviewer dismissed or replaced by a label (what the queue
    /// ranks), or with `run_id` every prediction of that run (what eval measures); sorted by
    /// image id.
    ///
    /// Two linear passes, whatever the project size: the images with their newest run (one scan
    /// of the `predicted_image` index), then every prediction, kept when its run is its image's
    /// newest.
    pub fn predicted_images(&self, run_id: Option<i64>) -> Result<Vec<PredictedImage>> {
        let mut st = self.conn.prepare(
            "SELECT i.id, i.key, i.status, d.run FROM image i
             JOIN (SELECT image_id, max(run_id) AS run FROM predicted
                   WHERE (?1 IS NULL OR run_id = ?1) GROUP BY image_id) d ON d.image_id = i.id",
        )?;
        let rows = st.query_map(params![run_id], |r| {
            let status: String = r.get(2)?;
            Ok(PredictedImage {
                id: r.get(0)?,
                key: r.get(1)?,
                status: status.parse().unwrap_or(ImageStatus::New),
                run_id: r.get(3)?,
                predictions: Vec::new(),
            })
        })?;
        let mut images: Vec<PredictedImage> = rows.collect::<rusqlite::Result<_>>()?;
        // Already in id order but for SQLite's say-so: sorting here costs next to nothing.
        images.sort_by_key(|im| im.id);
        let index: HashMap<i64, usize> = images
            .iter()
            .enumerate()
            .map(|(n, im)| (im.id, n))
            .collect();
        let classes: HashMap<i64, String> = self
            .conn
            .prepare("SELECT id, name FROM class")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = self.conn.prepare(
            "SELECT p.image_id, p.run_id, p.class_id, p.x0, p.y0, p.x1, p.y1, p.score
             FROM prediction p WHERE (?1 IS NULL AND p.decision IS NULL) OR p.run_id = ?1
             ORDER BY p.id",
        )?;
        let mut rows = st.query(params![run_id])?;
        while let Some(r) = rows.next()? {
            let Some(&n) = index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            if images[n].run_id != r.get::<_, i64>(1)? {
                continue;
            }
            let Some(class) = classes.get(&r.get::<_, i64>(2)?) else {
                continue;
            };
            images[n].predictions.push(StoredPrediction {
                class: class.clone(),
                bbox: bbox_of([r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?]),
                score: r.get(7)?,
            });
        }
        Ok(images)
    }

    /// What the review queue ranks: [`Store::predicted_images`] with `run_id` `None` (the open
    /// predictions), plus whether an image's were all decided, read lean
    /// (no keys, no boxes, one shared name per class), so that a project of 100,000 predicted
    /// images opens in well under a second. Both are sequential scans: the `predicted_image`
    /// index, then the predictions in row order, each found its image by [`IdSlots`]. (No join
    /// with `image`: a `predicted` row of a removed image is removed with it.)
    pub fn queue_images(&self) -> Result<Vec<QueueImage>> {
        let mut st = self.conn.prepare(
            "SELECT image_id, max(run_id) FROM predicted GROUP BY image_id ORDER BY image_id",
        )?;
        let newest: Vec<(i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let slots = IdSlots::new(newest.iter().map(|&(id, _)| id));
        let mut images: Vec<QueueImage> = newest
            .iter()
            .map(|&(id, _)| QueueImage {
                id,
                preds: Vec::new(),
                decided: false,
            })
            .collect();
        let classes: HashMap<i64, Arc<str>> = self
            .conn
            .prepare("SELECT id, name FROM class")?
            .query_map([], |r| Ok((r.get(0)?, Arc::from(r.get::<_, String>(1)?))))?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = self.conn.prepare(
            "SELECT image_id, run_id, class_id, x0 IS NOT NULL AND y0 IS NOT NULL
                    AND x1 IS NOT NULL AND y1 IS NOT NULL, score, decision IS NOT NULL
             FROM prediction ORDER BY id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let Some(n) = slots.get(r.get(0)?) else {
                continue;
            };
            if newest[n].1 != r.get::<_, i64>(1)? {
                continue;
            }
            let Some(class) = classes.get(&r.get::<_, i64>(2)?) else {
                continue;
            };
            if r.get(5)? {
                images[n].decided = true;
                continue;
            }
            images[n].preds.push(Scored {
                class: class.clone(),
                score: r.get(4)?,
                boxed: r.get(3)?,
            });
        }
        // Decided only when nothing is left open.
        for im in &mut images {
            im.decided &= im.preds.is_empty();
        }
        Ok(images)
    }

    /// Reviewed images and their labels (class, box), keyed by image id.
    pub fn reviewed_labels(&self) -> Result<HashMap<i64, Vec<StoredPrediction>>> {
        let mut out: HashMap<i64, Vec<StoredPrediction>> = HashMap::new();
        let mut st = self
            .conn
            .prepare("SELECT id FROM image WHERE status = 'reviewed'")?;
        for id in st.query_map([], |r| r.get::<_, i64>(0))? {
            out.insert(id?, Vec::new());
        }
        let mut st = self.conn.prepare(
            "SELECT a.image_id, c.name, a.x0, a.y0, a.x1, a.y1 FROM annotation a
             JOIN class c ON c.id = a.class_id JOIN image i ON i.id = a.image_id
             WHERE i.status = 'reviewed' ORDER BY a.image_id, a.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                StoredPrediction {
                    class: r.get(1)?,
                    bbox: bbox_of([r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]),
                    score: 1.0,
                },
            ))
        })?;
        for row in rows {
            let (id, l) = row?;
            out.entry(id).or_default().push(l);
        }
        Ok(out)
    }

    /// How many images are reviewed now.
    pub fn reviewed_count(&self) -> Result<usize> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM image WHERE status = 'reviewed'",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// How many images wait for review (new or claimed).
    pub fn waiting_count(&self) -> Result<usize> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM image WHERE status IN ('new', 'claimed')",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// Records a model produced by `termtag train` as a run that has predicted nothing yet; the
    /// next `predict` with that file continues it.
    pub fn register_trained_model(
        &mut self,
        path: &str,
        sha256: &str,
        reviewed: usize,
    ) -> Result<i64> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO model_run (path, sha256, adapter, started_at) VALUES (?1, ?2, ?3, ?4)",
            params![path, sha256, TRAINED_ADAPTER, now_ms()],
        )?;
        let id = tx.last_insert_rowid();
        journal(
            &tx,
            &self.author,
            "model.train",
            None,
            &format!("{path}: run {id}, trained on {reviewed} reviewed images"),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Reviewed-image count recorded by the last `termtag train`, from the journal.
    pub fn reviewed_at_last_train(&self) -> Result<Option<usize>> {
        let detail: Option<String> = self
            .conn
            .query_row(
                "SELECT detail FROM journal WHERE action = 'model.train' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(detail.and_then(|d| {
            let tail = d.rsplit_once(", trained on ")?.1;
            tail.split_whitespace().next()?.parse().ok()
        }))
    }
}

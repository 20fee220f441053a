//! What the review screen reads and writes: an image's labels, status and the decisions taken on
//! its predictions, written as one journalled snapshot, so that undo and redo replay exactly what
//! the screen did; and the proposals, the predictions still waiting for a decision.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Result, Store, bbox_of, class_ids, insert_label, invalid, lookup_class, now_ms};
use crate::model::{BBox, ImageStatus, Origin};

/// One label as the review screen edits it and the journal snapshots it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EditLabel {
    pub class: String,
    pub bbox: Option<BBox>,
    pub origin: Origin,
    pub score: Option<f64>,
}

/// What the reviewer made of a prediction. Either way it is no longer a proposal: not shown,
/// not ranked by the queue, not exported as a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Rejected: the box is wrong.
    Dismissed,
    /// A label took its place: accepted as it was, or moved, resized or re-classed.
    Superseded,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Dismissed => "dismissed",
            Decision::Superseded => "superseded",
        }
    }
    fn parse(s: &str) -> Option<Decision> {
        match s {
            "dismissed" => Some(Decision::Dismissed),
            "superseded" => Some(Decision::Superseded),
            _ => None,
        }
    }
}

/// A decision on one prediction (by its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decided {
    pub prediction: i64,
    pub decision: Decision,
}

/// Everything an edit of one image can change: its labels, its status and the decisions on its
/// predictions (sorted by prediction id).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageEdit {
    pub status: ImageStatus,
    pub labels: Vec<EditLabel>,
    /// Journal rows written before decisions were stored have none: replaying them reopens
    /// the image's predictions, which is what they were at that time.
    #[serde(default)]
    pub decisions: Vec<Decided>,
}

impl ImageEdit {
    /// The same state, up to the float noise of a JSON round trip.
    fn same_as(&self, other: &ImageEdit) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let same_box = |a: Option<BBox>, b: Option<BBox>| match (a, b) {
            (Some(a), Some(b)) => {
                close(a.x0, b.x0) && close(a.y0, b.y0) && close(a.x1, b.x1) && close(a.y1, b.y1)
            }
            (None, None) => true,
            _ => false,
        };
        self.status == other.status
            && self.decisions == other.decisions
            && self.labels.len() == other.labels.len()
            && self.labels.iter().zip(&other.labels).all(|(a, b)| {
                a.class == b.class
                    && a.origin == b.origin
                    && same_box(a.bbox, b.bbox)
                    && match (a.score, b.score) {
                        (Some(x), Some(y)) => close(x, y),
                        (x, y) => x.is_none() && y.is_none(),
                    }
            })
    }
}

/// A prediction shown for review.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The prediction row: its decision is recorded there.
    pub prediction: i64,
    pub class: String,
    pub bbox: Option<BBox>,
    pub score: f64,
}

/// What an undo or redo did.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// There was nothing to undo (redo).
    Nothing,
    /// The user action was taken back (done again): its name, and the images it covered
    /// (in the order they were edited) with the status each has now.
    Done {
        action: String,
        images: Vec<(i64, ImageStatus)>,
    },
    /// The image was changed since (by another annotator, or `termtag` commands): replaying
    /// the action would overwrite that change, so it is dropped from the history instead.
    Stale { image_id: i64, action: String },
}

/// The one rule for "this prediction is a proposal": the newest run that processed its image
/// made it, nobody decided about it yet, and its image is waiting for review. Over
/// `prediction p` joined with `image i`.
pub(crate) const OPEN_PROPOSAL: &str = "p.decision IS NULL
    AND p.run_id = (SELECT max(d.run_id) FROM predicted d WHERE d.image_id = p.image_id)
    AND i.status IN ('new', 'claimed', 'skipped')";

impl Store {
    /// Current labels, status and decisions of an image.
    pub fn image_edit(&self, image_id: i64) -> Result<ImageEdit> {
        read_edit(&self.conn, image_id)
    }

    /// Replaces an image's labels, status and decisions in one transaction, journalling the
    /// state before and after (which is what undo and redo replay). A new edit discards this
    /// author's redo history.
    pub fn apply_edit(&mut self, image_id: i64, action: &str, edit: &ImageEdit) -> Result<()> {
        self.apply_edits(&[(image_id, edit.clone())], action)
    }

    /// Several images' edits of one user action in one transaction: one journal row each,
    /// sharing one step, so a single undo takes the whole action back.
    pub fn apply_edits(&mut self, edits: &[(i64, ImageEdit)], action: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE journal SET undone = 2 WHERE undone = 1 AND author = ?1",
            params![self.author],
        )?;
        // Journal ids are max + 1: the step is the id of the action's first row.
        let step: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM journal", [], |r| {
            r.get(0)
        })?;
        for (image_id, edit) in edits {
            let before = read_edit(&tx, *image_id)?;
            write_edit(&tx, &self.author, *image_id, edit)?;
            tx.execute(
                "INSERT INTO journal (at, author, action, image_id, before, after, step)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    now_ms(),
                    self.author,
                    action,
                    image_id,
                    to_json(&before)?,
                    to_json(edit)?,
                    step
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Undoes this author's newest user action still in force.
    pub fn undo(&mut self) -> Result<Replay> {
        self.replay(true)
    }

    /// Redoes this author's action undone last.
    pub fn redo(&mut self) -> Result<Replay> {
        self.replay(false)
    }

    fn replay(&mut self, undo: bool) -> Result<Replay> {
        let tx = self.conn.transaction()?;
        let pick = if undo {
            "SELECT coalesce(step, id) FROM journal
             WHERE undone = 0 AND before IS NOT NULL AND image_id IS NOT NULL AND author = ?1
             ORDER BY id DESC LIMIT 1"
        } else {
            "SELECT coalesce(step, id) FROM journal
             WHERE undone = 1 AND before IS NOT NULL AND image_id IS NOT NULL AND author = ?1
             ORDER BY id ASC LIMIT 1"
        };
        let Some(step) = tx
            .query_row(pick, params![self.author], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            return Ok(Replay::Nothing);
        };
        let in_step = "(step = ?1 OR (step IS NULL AND id = ?1)) AND author = ?2
                       AND before IS NOT NULL AND image_id IS NOT NULL";
        let rows: Vec<(i64, i64, String, String, String)> = {
            let order = if undo { "DESC" } else { "ASC" };
            let mut st = tx.prepare(&format!(
                "SELECT id, image_id, action, before, after FROM journal WHERE {in_step}
                 ORDER BY id {order}"
            ))?;
            st.query_map(params![step, self.author], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let parse = |jid: i64, text: &str| -> Result<ImageEdit> {
            serde_json::from_str(text)
                .map_err(|e| invalid(format!("journal row {jid} is unreadable: {e}")))
        };
        let mut writes = Vec::new();
        for (jid, image_id, action, before, after) in &rows {
            let (from, to) = if undo {
                (parse(*jid, after)?, parse(*jid, before)?)
            } else {
                (parse(*jid, before)?, parse(*jid, after)?)
            };
            if !read_edit(&tx, *image_id)?.same_as(&from) {
                tx.execute(
                    &format!("UPDATE journal SET undone = 3 WHERE {in_step}"),
                    params![step, self.author],
                )?;
                tx.commit()?;
                return Ok(Replay::Stale {
                    image_id: *image_id,
                    action: action.clone(),
                });
            }
            writes.push((*image_id, to));
        }
        for (image_id, to) in &writes {
            write_edit(&tx, &self.author, *image_id, to)?;
        }
        tx.execute(
            &format!("UPDATE journal SET undone = ?3 WHERE {in_step}"),
            params![step, self.author, i64::from(undo)],
        )?;
        tx.commit()?;
        writes
            .sort_by_key(|(image_id, _)| rows.iter().find(|r| r.1 == *image_id).map_or(0, |r| r.0));
        Ok(match rows.first() {
            Some((_, _, action, _, _)) => Replay::Done {
                action: action.clone(),
                images: writes.iter().map(|(id, e)| (*id, e.status)).collect(),
            },
            None => Replay::Nothing,
        })
    }

    /// The image this annotator last worked on that is reviewed now (other than `except`):
    /// its key and labels, for "repeat previous".
    pub fn last_reviewed(&self, except: i64) -> Result<Option<(String, Vec<EditLabel>)>> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT i.id, i.key FROM journal j JOIN image i ON i.id = j.image_id
                 WHERE j.author = ?1 AND j.image_id != ?2 AND j.undone = 0
                   AND i.status = 'reviewed'
                 ORDER BY j.id DESC LIMIT 1",
                params![self.author, except],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        found
            .map(|(id, key)| Ok((key, read_edit(&self.conn, id)?.labels)))
            .transpose()
    }

    /// The proposals of an image scoring at least `threshold`, best first (none once the image
    /// is reviewed).
    pub fn proposals(&self, image_id: i64, threshold: f64) -> Result<Vec<Proposal>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT p.id, c.name, p.x0, p.y0, p.x1, p.y1, p.score FROM prediction p
             JOIN class c ON c.id = p.class_id JOIN image i ON i.id = p.image_id
             WHERE p.image_id = ?1 AND p.score >= ?2 AND {OPEN_PROPOSAL}
             ORDER BY p.score DESC, p.id"
        ))?;
        let rows = st.query_map(params![image_id, threshold], |r| {
            let coords: [Option<f64>; 4] = [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?];
            Ok(Proposal {
                prediction: r.get(0)?,
                class: r.get(1)?,
                bbox: bbox_of(coords),
                score: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Open proposals (score ≥ `threshold`) and decided predictions, for `termtag stats`.
    pub fn proposal_counts(&self, threshold: f64) -> Result<ProposalCounts> {
        let open = self.conn.query_row(
            &format!(
                "SELECT count(*) FROM prediction p JOIN image i ON i.id = p.image_id
                 WHERE p.score >= ?1 AND {OPEN_PROPOSAL}"
            ),
            params![threshold],
            |r| r.get::<_, i64>(0),
        )?;
        let decided = |d: Decision| {
            self.conn.query_row(
                "SELECT count(*) FROM prediction WHERE decision = ?1",
                params![d.as_str()],
                |r| r.get::<_, i64>(0),
            )
        };
        Ok(ProposalCounts {
            open: open.max(0) as usize,
            dismissed: decided(Decision::Dismissed)?.max(0) as usize,
            superseded: decided(Decision::Superseded)?.max(0) as usize,
        })
    }
}

/// How many predictions wait for review and how many were decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProposalCounts {
    pub open: usize,
    pub dismissed: usize,
    pub superseded: usize,
}

/// A new run's prediction identical to one decided before (same image, class and box: the same
/// predictions file imported again, the same batch pulled again) keeps that decision, so a
/// dismissed box does not come back. Part of the caller's transaction.
pub(crate) fn inherit_decisions(tx: &Transaction, run_id: i64, image_id: i64) -> Result<()> {
    let earlier = "FROM prediction q
        WHERE q.image_id = prediction.image_id AND q.class_id = prediction.class_id
          AND q.run_id != prediction.run_id AND q.decision IS NOT NULL
          AND q.x0 IS prediction.x0 AND q.y0 IS prediction.y0
          AND q.x1 IS prediction.x1 AND q.y1 IS prediction.y1";
    tx.execute(
        &format!(
            "UPDATE prediction SET (decision, decided_by, decided_at) =
                (SELECT q.decision, q.decided_by, q.decided_at {earlier} ORDER BY q.id DESC LIMIT 1)
             WHERE run_id = ?1 AND image_id = ?2 AND decision IS NULL
               AND EXISTS (SELECT 1 {earlier})"
        ),
        params![run_id, image_id],
    )?;
    Ok(())
}

fn to_json(e: &ImageEdit) -> Result<String> {
    serde_json::to_string(e).map_err(|e| invalid(e.to_string()))
}

fn read_edit(conn: &Connection, image_id: i64) -> Result<ImageEdit> {
    let status: String = conn
        .query_row(
            "SELECT status FROM image WHERE id = ?1",
            params![image_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| invalid(format!("no image with id {image_id}")))?;
    let mut st = conn.prepare(
        "SELECT c.name, a.x0, a.y0, a.x1, a.y1, a.origin, a.score FROM annotation a
         JOIN class c ON c.id = a.class_id WHERE a.image_id = ?1 ORDER BY a.id",
    )?;
    let labels = st
        .query_map(params![image_id], |r| {
            let coords: [Option<f64>; 4] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?];
            let origin: String = r.get(5)?;
            Ok(EditLabel {
                class: r.get(0)?,
                bbox: bbox_of(coords),
                origin: Origin::parse(&origin).unwrap_or(Origin::Human),
                score: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT id, decision FROM prediction WHERE image_id = ?1 AND decision IS NOT NULL
         ORDER BY id",
    )?;
    let decisions = st
        .query_map(params![image_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .filter_map(|row| match row {
            Ok((prediction, d)) => Decision::parse(&d).map(|decision| {
                Ok(Decided {
                    prediction,
                    decision,
                })
            }),
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(ImageEdit {
        status: status.parse().unwrap_or(ImageStatus::New),
        labels,
        decisions,
    })
}

fn write_edit(tx: &Transaction, author: &str, image_id: i64, edit: &ImageEdit) -> Result<()> {
    let classes = class_ids(tx)?;
    let now = now_ms();
    tx.execute(
        "DELETE FROM annotation WHERE image_id = ?1",
        params![image_id],
    )?;
    for l in &edit.labels {
        let cid = lookup_class(&classes, &l.class)?;
        insert_label(tx, image_id, cid, l.bbox, l.origin, l.score, author, now)?;
    }
    let reviewed = edit.status == ImageStatus::Reviewed;
    tx.execute(
        "UPDATE image SET status = ?2,
            reviewed_at = CASE WHEN ?3 THEN ?4 ELSE NULL END,
            reviewed_by = CASE WHEN ?3 THEN ?5 ELSE NULL END
         WHERE id = ?1",
        params![image_id, edit.status.as_str(), reviewed, now, author],
    )?;
    // Decisions: only those that change get a new author and time.
    let listed: Vec<i64> = edit.decisions.iter().map(|d| d.prediction).collect();
    let mut reopen = tx.prepare(
        "SELECT id FROM prediction WHERE image_id = ?1 AND decision IS NOT NULL ORDER BY id",
    )?;
    let decided: Vec<i64> = reopen
        .query_map(params![image_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in decided.into_iter().filter(|id| !listed.contains(id)) {
        tx.execute(
            "UPDATE prediction SET decision = NULL, decided_by = NULL, decided_at = NULL
             WHERE id = ?1",
            params![id],
        )?;
    }
    // A decision on a prediction deleted since (with its class or run) has nothing to mark.
    for d in &edit.decisions {
        tx.execute(
            "UPDATE prediction SET decision = ?3, decided_by = ?4, decided_at = ?5
             WHERE id = ?1 AND image_id = ?2 AND decision IS NOT ?3",
            params![d.prediction, image_id, d.decision.as_str(), author, now],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Filter, ImageResult, NewPrediction};

    fn store() -> (tempfile::TempDir, Store, i64) {
        crate::store::test_store(&["a.jpg", "b.jpg"])
    }

    /// The box of the test knots: 0.2 wide from `x0`.
    fn knot_box(x0: f64) -> BBox {
        BBox {
            x0,
            y0: 0.1,
            x1: x0 + 0.2,
            y1: 0.5,
        }
    }

    fn knot(x0: f64) -> EditLabel {
        EditLabel {
            class: "knot".into(),
            bbox: Some(knot_box(x0)),
            origin: Origin::Human,
            score: None,
        }
    }

    fn edit(status: ImageStatus, labels: Vec<EditLabel>) -> ImageEdit {
        ImageEdit {
            status,
            labels,
            decisions: Vec::new(),
        }
    }

    fn done(image_id: i64, action: &str, status: ImageStatus) -> Replay {
        Replay::Done {
            action: action.into(),
            images: vec![(image_id, status)],
        }
    }

    #[test]
    fn edits_undo_and_redo_survive_reopening() {
        let (dir, mut s, id) = store();
        let one = edit(ImageStatus::Reviewed, vec![knot(0.1)]);
        let two = edit(ImageStatus::Reviewed, vec![knot(0.1), knot(0.5)]);
        s.apply_edit(id, "draw", &one).unwrap();
        s.apply_edit(id, "draw", &two).unwrap();
        assert_eq!(s.image_edit(id).unwrap(), two);
        drop(s);

        // A restart keeps the history.
        let mut s = Store::open(&dir.path().join("labels.db"), "alice").unwrap();
        assert_eq!(s.undo().unwrap(), done(id, "draw", ImageStatus::Reviewed));
        assert_eq!(s.image_edit(id).unwrap(), one);
        s.undo().unwrap();
        let first = s.image_edit(id).unwrap();
        assert_eq!(first.status, ImageStatus::New);
        assert!(first.labels.is_empty());
        assert_eq!(s.undo().unwrap(), Replay::Nothing);
        s.redo().unwrap();
        assert_eq!(s.image_edit(id).unwrap(), one);
        // A new edit drops what could have been redone.
        let three = edit(ImageStatus::Reviewed, vec![]);
        s.apply_edit(id, "mark_empty", &three).unwrap();
        assert_eq!(s.redo().unwrap(), Replay::Nothing);
        assert_eq!(
            s.undo().unwrap(),
            done(id, "mark_empty", ImageStatus::Reviewed)
        );
        assert_eq!(s.image_edit(id).unwrap(), one);
        // Another annotator's undo does not touch alice's edits.
        drop(s);
        let mut bob = Store::open(&dir.path().join("labels.db"), "bob").unwrap();
        assert_eq!(bob.undo().unwrap(), Replay::Nothing);
    }

    #[test]
    fn an_edit_with_an_unknown_class_changes_nothing() {
        let (_dir, mut s, id) = store();
        let bad = edit(
            ImageStatus::Reviewed,
            vec![
                knot(0.1),
                EditLabel {
                    class: "nope".into(),
                    ..knot(0.3)
                },
            ],
        );
        assert!(s.apply_edit(id, "draw", &bad).is_err());
        let now = s.image_edit(id).unwrap();
        assert!(now.labels.is_empty());
        assert_eq!(now.status, ImageStatus::New);
        assert_eq!(s.journal_len().unwrap(), 2, "only the setup rows");
    }

    #[test]
    fn redo_history_is_per_annotator_and_one_action_is_one_undo() {
        let (dir, mut alice, a) = store();
        let b = alice.images(&Filter::default()).unwrap()[1].id;
        alice
            .apply_edit(a, "draw", &edit(ImageStatus::New, vec![knot(0.1)]))
            .unwrap();
        assert_eq!(alice.undo().unwrap(), done(a, "draw", ImageStatus::New));
        // Bob edits another image: alice can still redo hers.
        let mut bob = Store::open(&dir.path().join("labels.db"), "bob").unwrap();
        bob.apply_edit(b, "draw", &edit(ImageStatus::New, vec![knot(0.3)]))
            .unwrap();
        assert_eq!(alice.redo().unwrap(), done(a, "draw", ImageStatus::New));
        // A tag of two images is one step.
        let tagged = edit(ImageStatus::Reviewed, vec![knot(0.5)]);
        alice
            .apply_edits(&[(a, tagged.clone()), (b, tagged.clone())], "tag")
            .unwrap();
        assert_eq!(
            alice.undo().unwrap(),
            Replay::Done {
                action: "tag".into(),
                images: vec![(a, ImageStatus::New), (b, ImageStatus::New)]
            }
        );
        assert_eq!(alice.image_edit(a).unwrap().labels, vec![knot(0.1)]);
        assert_eq!(alice.image_edit(b).unwrap().labels, vec![knot(0.3)]);
        assert_eq!(
            alice.redo().unwrap(),
            Replay::Done {
                action: "tag".into(),
                images: vec![(a, ImageStatus::Reviewed), (b, ImageStatus::Reviewed)]
            }
        );
        assert_eq!(alice.image_edit(b).unwrap(), tagged);
        // Bob changes b afterwards: alice's tag can no longer be undone without losing bob's
        // work, so it is dropped, and so is her earlier edit of a, which the tag changed.
        bob.apply_edit(b, "draw", &edit(ImageStatus::Reviewed, vec![]))
            .unwrap();
        assert_eq!(
            alice.undo().unwrap(),
            Replay::Stale {
                image_id: b,
                action: "tag".into()
            }
        );
        assert!(alice.image_edit(b).unwrap().labels.is_empty());
        assert_eq!(
            alice.undo().unwrap(),
            Replay::Stale {
                image_id: a,
                action: "draw".into()
            }
        );
        assert_eq!(alice.image_edit(a).unwrap(), tagged);
        assert_eq!(alice.undo().unwrap(), Replay::Nothing);
    }

    #[test]
    fn decisions_are_journalled_undone_and_survive_a_resumed_run() {
        let (_dir, mut s, id) = store();
        let knot_id = s.classes().unwrap()[0].id;
        let run = s.create_model_run("m.onnx", "abc", "yolo", "cfg").unwrap();
        let pred = |x0: f64, score: f64| NewPrediction {
            class_id: knot_id,
            bbox: Some(knot_box(x0)),
            score,
        };
        s.write_predictions(
            run,
            &[(
                id,
                ImageResult::Predicted(vec![pred(0.1, 0.9), pred(0.5, 0.8)]),
            )],
        )
        .unwrap();
        let props = s.proposals(id, 0.5).unwrap();
        assert_eq!(props.len(), 2);
        let dismissed = Decided {
            prediction: props[0].prediction,
            decision: Decision::Dismissed,
        };
        let mut e = s.image_edit(id).unwrap();
        e.decisions = vec![dismissed];
        s.apply_edit(id, "dismiss_proposal", &e).unwrap();
        assert_eq!(s.proposals(id, 0.5).unwrap(), vec![props[1].clone()]);
        assert_eq!(
            s.proposal_counts(0.5).unwrap(),
            ProposalCounts {
                open: 1,
                dismissed: 1,
                superseded: 0
            }
        );
        // The same run resumed (the same batch written again) brings nothing back.
        s.write_predictions(run, &[(id, ImageResult::Predicted(vec![pred(0.1, 0.9)]))])
            .unwrap();
        assert_eq!(s.proposals(id, 0.5).unwrap().len(), 1);
        // Undo reopens it.
        assert_eq!(
            s.undo().unwrap(),
            done(id, "dismiss_proposal", ImageStatus::New)
        );
        assert_eq!(s.proposals(id, 0.5).unwrap(), props);
        // A reviewed image has no proposals.
        let mut e = s.image_edit(id).unwrap();
        e.status = ImageStatus::Reviewed;
        s.apply_edit(id, "accept_image", &e).unwrap();
        assert!(s.proposals(id, 0.5).unwrap().is_empty());
    }

    #[test]
    fn the_same_predictions_imported_again_keep_their_decisions() {
        use crate::model::{Dataset, ImageLabels, Label};
        let (_dir, mut s, id) = store();
        let ds = Dataset {
            classes: vec!["knot".into()],
            images: vec![ImageLabels {
                key: "a.jpg".into(),
                width: 100,
                height: 50,
                labels: [0.1, 0.5]
                    .map(|x0| Label {
                        class: "knot".into(),
                        bbox: Some(knot_box(x0)),
                        score: Some(0.9),
                    })
                    .to_vec(),
            }],
        };
        s.import_predictions(&ds, "p.csv", "import:ald-csv")
            .unwrap();
        let props = s.proposals(id, 0.5).unwrap();
        let mut e = s.image_edit(id).unwrap();
        e.decisions = vec![Decided {
            prediction: props[0].prediction,
            decision: Decision::Dismissed,
        }];
        s.apply_edit(id, "dismiss_proposal", &e).unwrap();
        // A second import is a newer run: its copy of the dismissed box stays dismissed.
        s.import_predictions(&ds, "p.csv", "import:ald-csv")
            .unwrap();
        let again = s.proposals(id, 0.5).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].bbox, props[1].bbox);
        assert_eq!(s.proposal_counts(0.5).unwrap().dismissed, 2);
    }
}

//! Schema and migrations. Each migration runs once, in order, in its own transaction; the version
//! table records the last one applied. Never edit a shipped migration: add the next one.

use rusqlite::{Connection, params};

/// Migrations in order; index + 1 is the schema version after it ran.
const MIGRATIONS: &[&str] = &[
    // 1: the base schema.
    r#"
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (0);

CREATE TABLE image (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,          -- path relative to the source, '/'-separated, or blob name
    width       INTEGER NOT NULL DEFAULT 0,    -- displayed size, after EXIF orientation
    height      INTEGER NOT NULL DEFAULT 0,
    orientation INTEGER NOT NULL DEFAULT 1,    -- EXIF orientation 1..8
    size        INTEGER NOT NULL DEFAULT 0,    -- bytes
    added_at    INTEGER NOT NULL,              -- unix ms
    status      TEXT NOT NULL DEFAULT 'new'
                CHECK (status IN ('new','claimed','reviewed','skipped','broken')),
    error       TEXT,                          -- why a broken image is broken
    reviewed_at INTEGER,
    reviewed_by TEXT
);
CREATE INDEX image_status ON image(status);

CREATE TABLE class (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL,                 -- display / export order
    colour   TEXT,
    hotkey   TEXT,
    archived INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE annotation (
    id         INTEGER PRIMARY KEY,
    image_id   INTEGER NOT NULL REFERENCES image(id) ON DELETE CASCADE,
    class_id   INTEGER NOT NULL REFERENCES class(id),
    x0 REAL, y0 REAL, x1 REAL, y1 REAL,        -- normalised, displayed orientation; NULL = classification
    origin     TEXT NOT NULL CHECK (origin IN ('human','accepted_prediction','imported')),
    score      REAL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX annotation_image ON annotation(image_id);
CREATE INDEX annotation_class ON annotation(class_id);

CREATE TABLE model_run (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL,                 -- model file, or the imported predictions file
    sha256      TEXT,
    adapter     TEXT NOT NULL,                 -- e.g. tf_od, yolo, import:coco
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE TABLE prediction (
    id       INTEGER PRIMARY KEY,
    run_id   INTEGER NOT NULL REFERENCES model_run(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES image(id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES class(id),
    x0 REAL, y0 REAL, x1 REAL, y1 REAL,
    score    REAL NOT NULL
);
CREATE INDEX prediction_image ON prediction(image_id, run_id);

-- Which images a run has processed, including those where it found nothing: lets an interrupted
-- run resume, and tells "no detection" apart from "not predicted yet".
CREATE TABLE predicted (
    run_id   INTEGER NOT NULL REFERENCES model_run(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES image(id) ON DELETE CASCADE,
    PRIMARY KEY (run_id, image_id)
);

-- Who did what when. `before`/`after` are JSON snapshots of the image's labels and status, so
-- that undo works across restarts; bulk operations (import, class edits) record one row.
CREATE TABLE journal (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    author   TEXT NOT NULL,
    action   TEXT NOT NULL,
    image_id INTEGER REFERENCES image(id) ON DELETE SET NULL,
    detail   TEXT,
    before   TEXT,
    after    TEXT,
    undone   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX journal_image ON journal(image_id);

-- Keys removed from the project whose files stay in the source: refresh must not re-add them.
CREATE TABLE excluded (
    key TEXT PRIMARY KEY,
    at  INTEGER NOT NULL
);

CREATE TABLE claim (
    image_id   INTEGER PRIMARY KEY REFERENCES image(id) ON DELETE CASCADE,
    remote     TEXT NOT NULL,
    batch_id   TEXT NOT NULL,
    etag       TEXT,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    // 2: a model run is identified by everything that changes its output, not by the model file
    // alone: `config` is a hash of the labels, class map, thresholds and adapter options.
    r#"
ALTER TABLE model_run ADD COLUMN config TEXT;
"#,
    // 3: what the reviewer decided about each prediction, and journal steps. A dismissed
    // prediction was rejected; a superseded one was replaced by a label (accepted, moved,
    // resized or re-classed). Either way it is no longer a proposal. Rows of one user action
    // share a `step`, so one undo takes back the whole action.
    r#"
ALTER TABLE prediction ADD COLUMN decision TEXT CHECK (decision IN ('dismissed','superseded'));
ALTER TABLE prediction ADD COLUMN decided_by TEXT;
ALTER TABLE prediction ADD COLUMN decided_at INTEGER;
ALTER TABLE journal ADD COLUMN step INTEGER;
CREATE INDEX journal_step ON journal(step);

-- Predictions accepted before decisions were recorded: an identical accepted label supersedes
-- them, so they do not come back as proposals next to it.
UPDATE prediction SET decision = 'superseded',
    decided_by = (SELECT a.author FROM annotation a
                  WHERE a.image_id = prediction.image_id AND a.class_id = prediction.class_id
                    AND a.origin = 'accepted_prediction'
                    AND a.x0 IS prediction.x0 AND a.y0 IS prediction.y0
                    AND a.x1 IS prediction.x1 AND a.y1 IS prediction.y1),
    decided_at = (SELECT a.created_at FROM annotation a
                  WHERE a.image_id = prediction.image_id AND a.class_id = prediction.class_id
                    AND a.origin = 'accepted_prediction'
                    AND a.x0 IS prediction.x0 AND a.y0 IS prediction.y0
                    AND a.x1 IS prediction.x1 AND a.y1 IS prediction.y1)
WHERE EXISTS (SELECT 1 FROM annotation a
              WHERE a.image_id = prediction.image_id AND a.class_id = prediction.class_id
                AND a.origin = 'accepted_prediction'
                AND a.x0 IS prediction.x0 AND a.y0 IS prediction.y0
                AND a.x1 IS prediction.x1 AND a.y1 IS prediction.y1);
"#,
    // 4: find an image's runs by image id. The queue, the review screen, proposals, export and
    // stats ask for "the newest run that processed this image"; the primary key of `predicted`
    // starts with run_id, so without this index each such lookup scanned the whole table.
    r#"
CREATE INDEX predicted_image ON predicted(image_id, run_id);
"#,
    // 5: active review time per image and annotator, for the review speed in `stats` and the
    // dashboard: the time the image was on screen while keys came, idle gaps cut.
    r#"
CREATE TABLE review_time (
    image_id   INTEGER NOT NULL REFERENCES image(id) ON DELETE CASCADE,
    author     TEXT NOT NULL,
    active_ms  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (image_id, author)
);
"#,
    // 6: each picture's near-duplicate signature (`diversity::signature`: 768 bytes, its 32×24
    // grey thumbnail), written where the picture is decoded anyway (`termtag predict`) or by a
    // backfill; `[queue] diversity` groups the pictures by it.
    r#"
CREATE TABLE image_signature (
    image_id INTEGER PRIMARY KEY REFERENCES image(id) ON DELETE CASCADE,
    sig      BLOB NOT NULL
);
"#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Why a store cannot be opened by this build.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the store's schema version is {0}, which no termtag writes (this build knows 0 to {VERSION}); the file is damaged: restore labels.db from a backup"
    )]
    Corrupt(i64),
    #[error(
        "the store's schema version is {0}, newer than this build's {VERSION}: it was written by a newer termtag; upgrade termtag to open it"
    )]
    TooNew(i64),
}

pub fn migrate(conn: &mut Connection) -> Result<i64, MigrateError> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    let mut current: i64 = if has_table {
        conn.query_row("SELECT version FROM schema_version", [], |r| r.get(0))?
    } else {
        0
    };
    if current < 0 {
        return Err(MigrateError::Corrupt(current));
    }
    if current > VERSION {
        return Err(MigrateError::TooNew(current));
    }
    while let Some(sql) = usize::try_from(current)
        .ok()
        .and_then(|i| MIGRATIONS.get(i))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        current += 1;
        tx.execute("UPDATE schema_version SET version = ?1", params![current])?;
        tx.commit()?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_accepted_before_decisions_existed_are_superseded() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(
            "UPDATE schema_version SET version = 1;
             INSERT INTO image (id, key, added_at) VALUES (1, 'a.jpg', 0);
             INSERT INTO class (id, name, position) VALUES (1, 'knot', 0);
             INSERT INTO model_run (id, path, adapter, started_at) VALUES (1, 'm', 'yolo', 0);
             INSERT INTO predicted VALUES (1, 1);
             INSERT INTO prediction (id, run_id, image_id, class_id, x0, y0, x1, y1, score)
               VALUES (1, 1, 1, 1, 0.1, 0.1, 0.3, 0.3, 0.9), (2, 1, 1, 1, 0.5, 0.5, 0.7, 0.7, 0.8);
             INSERT INTO annotation (image_id, class_id, x0, y0, x1, y1, origin, author, created_at, updated_at)
               VALUES (1, 1, 0.1, 0.1, 0.3, 0.3, 'accepted_prediction', 'alice', 5, 5);",
        )
        .unwrap();
        assert_eq!(migrate(&mut c).unwrap(), VERSION);
        let rows: Vec<(i64, Option<String>, Option<String>)> = c
            .prepare("SELECT id, decision, decided_by FROM prediction ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (1, Some("superseded".into()), Some("alice".into())),
                (2, None, None)
            ]
        );
    }

    #[test]
    fn a_stored_version_out_of_range_is_an_error_not_a_panic() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), VERSION);
        for (v, want) in [
            (-1, "damaged"),
            (i64::MIN, "damaged"),
            (VERSION + 1, "newer"),
        ] {
            conn.execute("UPDATE schema_version SET version = ?1", [v])
                .unwrap();
            let e = migrate(&mut conn).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(&v.to_string()), "{e}");
        }
    }
}

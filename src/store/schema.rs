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
    // 2: find an image's runs by image id. The queue, the review screen, proposals, export and
    // stats ask for "the newest run that processed this image"; the primary key of `predicted`
    // starts with run_id, so without this index each such lookup scanned the whole table.
    r#"
CREATE INDEX predicted_image ON predicted(image_id, run_id);
"#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
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
    while (current as usize) < MIGRATIONS.len() {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[current as usize])?;
        current += 1;
        tx.execute("UPDATE schema_version SET version = ?1", params![current])?;
        tx.commit()?;
    }
    Ok(current)
}

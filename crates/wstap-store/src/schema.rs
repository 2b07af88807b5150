//! The capture's schema, its version, and how a database is opened for it.
//!
//! The SQL below is the product's contract with people who query a capture with `sqlite3`
//! (`docs/capture-format.md` explains every column): columns are named as one would query
//! them, times are microseconds since the Unix epoch, and a frame's flags byte is kept
//! whole with the bits as columns beside it (the `frames` view over the compact
//! `frame_rows` the writer fills, since version 9). Each new version adds a forward
//! migration to [`MIGRATIONS`], run on a capture of an older wstap when it is opened; a
//! capture written by a newer wstap is refused, never guessed at.

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// `PRAGMA application_id`: `wstp`, so `file(1)`-like tools and wstap itself can tell a
/// capture from any other SQLite database.
pub const APPLICATION_ID: i64 = 0x7773_7470;

/// The schema version this crate writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 9;

/// Version 1: every table and index.
const V1: &str = r#"
CREATE TABLE captures (
    id            INTEGER PRIMARY KEY,
    started_us    INTEGER NOT NULL,
    ended_us      INTEGER,
    writer        TEXT NOT NULL,
    max_capture   INTEGER NOT NULL,
    inline_max    INTEGER NOT NULL,
    payload_file  TEXT NOT NULL
);

CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    ev_start         INTEGER NOT NULL,
    ev_end           INTEGER,
    started_us       INTEGER NOT NULL,
    ended_us         INTEGER,
    client           TEXT NOT NULL,
    target           TEXT NOT NULL,
    host             TEXT NOT NULL,
    port             INTEGER NOT NULL,
    via              TEXT NOT NULL,
    listener         TEXT,
    tls              INTEGER NOT NULL,
    client_tls       TEXT,
    upstream_tls     TEXT,
    upstream_proxy   TEXT,
    url              TEXT,
    path             TEXT,
    status           INTEGER,
    subprotocol      TEXT,
    extensions       TEXT,
    extension_names  TEXT,
    kind             TEXT,
    outcome          TEXT,
    state            TEXT GENERATED ALWAYS AS (COALESCE(outcome, 'open')) VIRTUAL,
    close_initiator  TEXT,
    close_code       INTEGER,
    close_reason     TEXT,
    frames_c2s       INTEGER NOT NULL DEFAULT 0,
    frames_s2c       INTEGER NOT NULL DEFAULT 0,
    messages_c2s     INTEGER NOT NULL DEFAULT 0,
    messages_s2c     INTEGER NOT NULL DEFAULT 0,
    bytes_c2s        INTEGER NOT NULL DEFAULT 0,
    bytes_s2c        INTEGER NOT NULL DEFAULT 0,
    violations       INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    duration_us      INTEGER,
    start_event      TEXT NOT NULL,
    end_event        TEXT
);

CREATE TABLE handshakes (
    session       INTEGER PRIMARY KEY,
    ev            INTEGER NOT NULL,
    time_us       INTEGER NOT NULL,
    url           TEXT NOT NULL,
    status        INTEGER,
    accept_valid  INTEGER NOT NULL,
    subprotocol   TEXT,
    issues        TEXT,
    request_raw   BLOB,
    response_raw  BLOB,
    event         TEXT NOT NULL
);

CREATE TABLE http (
    id            INTEGER PRIMARY KEY,
    session       INTEGER NOT NULL,
    ev            INTEGER NOT NULL,
    time_us       INTEGER NOT NULL,
    url           TEXT NOT NULL,
    method        TEXT NOT NULL,
    status        INTEGER,
    responder     TEXT NOT NULL,
    error         TEXT,
    request_raw   BLOB,
    response_raw  BLOB,
    event         TEXT NOT NULL
);
CREATE INDEX http_by_session ON http(session, id);

CREATE TABLE frames (
    id             INTEGER PRIMARY KEY,
    session        INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    dir            TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    time_us        INTEGER NOT NULL,
    end_time_us    INTEGER NOT NULL,
    flags          INTEGER NOT NULL,
    mask_key       INTEGER,
    length_bits    INTEGER NOT NULL,
    payload_len    INTEGER NOT NULL,
    payload        BLOB,
    payload_at     INTEGER,
    payload_kept   INTEGER NOT NULL,
    close_code     INTEGER,
    close_reason   TEXT,
    inflated_len   INTEGER,
    inflated       BLOB,
    inflated_at    INTEGER,
    inflated_kept  INTEGER,
    violations     TEXT,
    msg            INTEGER,
    fin            INTEGER GENERATED ALWAYS AS ((flags >> 7) & 1) VIRTUAL,
    rsv1           INTEGER GENERATED ALWAYS AS ((flags >> 6) & 1) VIRTUAL,
    rsv2           INTEGER GENERATED ALWAYS AS ((flags >> 5) & 1) VIRTUAL,
    rsv3           INTEGER GENERATED ALWAYS AS ((flags >> 4) & 1) VIRTUAL,
    opcode         INTEGER GENERATED ALWAYS AS (flags & 15) VIRTUAL,
    header_len     INTEGER GENERATED ALWAYS AS (2 + CASE length_bits WHEN 16 THEN 2
                       WHEN 64 THEN 8 ELSE 0 END + CASE WHEN mask_key IS NULL THEN 0 ELSE 4 END) VIRTUAL
);
CREATE INDEX frames_by_session ON frames(session, seq);
CREATE INDEX frames_by_message ON frames(session, msg) WHERE msg IS NOT NULL;

CREATE TABLE message_rows (
    id           INTEGER PRIMARY KEY,
    session      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    dir          TEXT NOT NULL,
    opcode       INTEGER NOT NULL,
    flags        INTEGER NOT NULL,
    masked       INTEGER NOT NULL,
    frames       INTEGER NOT NULL,
    first_frame  INTEGER,
    last_frame   INTEGER,
    time_us      INTEGER NOT NULL,
    end_time_us  INTEGER NOT NULL,
    len          INTEGER NOT NULL,
    wire_len     INTEGER NOT NULL,
    compressed   INTEGER NOT NULL,
    close_code   INTEGER,
    data         BLOB,
    data_at      INTEGER,
    data_kept    INTEGER NOT NULL,
    violations   TEXT,
    incomplete   INTEGER NOT NULL
);
CREATE INDEX message_rows_by_session ON message_rows(session, seq);

-- Every message: a frame that is a whole message by itself (the common case) is stored
-- once, as that frame (frames.msg holds its number among the session's messages); any
-- other message (fragmented, cut short, ...) has a row of its own in message_rows.
CREATE VIEW messages AS
    SELECT id + 1 AS id, session, msg AS seq, dir, flags & 15 AS opcode, flags,
           mask_key IS NOT NULL AS masked, 1 AS frames, seq AS first_frame, seq AS last_frame,
           time_us, end_time_us, COALESCE(inflated_len, payload_len) AS len,
           payload_len AS wire_len, inflated_len IS NOT NULL AS compressed, close_code,
           CASE WHEN inflated_len IS NULL THEN payload ELSE inflated END AS data,
           CASE WHEN inflated_len IS NULL THEN payload_at ELSE inflated_at END AS data_at,
           CASE WHEN inflated_len IS NULL THEN payload_kept ELSE inflated_kept END AS data_kept,
           (SELECT NULLIF(json_group_array(value), '[]') FROM json_each(frames.violations)
             WHERE substr(value, 1, 13) = 'invalid_utf8:' OR substr(value, 1, 15) = 'truncated_utf8:'
                OR substr(value, 1, 15) = 'inflate_failed:') AS violations,
           0 AS incomplete
      FROM frames WHERE msg IS NOT NULL
    UNION ALL
    SELECT id, session, seq, dir, opcode, flags, masked, frames, first_frame, last_frame,
           time_us, end_time_us, len, wire_len, compressed, close_code, data, data_at,
           data_kept, violations, incomplete
      FROM message_rows;

CREATE TABLE notices (
    id       INTEGER PRIMARY KEY,
    time_us  INTEGER NOT NULL,
    message  TEXT NOT NULL
);
"#;

/// The statement that turns a table's version-1 violations (`code: text` strings) into
/// version-2 objects, split as `wstap_trace::view::split_violation` splits them.
macro_rules! objects_from_texts {
    ($table:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET violations = (
    SELECT json_group_array(CASE
               WHEN instr(value, ':') = 0 THEN json_object('code', value, 'text', '')
               WHEN substr(value, instr(value, ':') + 1, 1) = ' ' THEN json_object(
                   'code', substr(value, 1, instr(value, ':') - 1),
                   'text', substr(value, instr(value, ':') + 2))
               ELSE json_object(
                   'code', substr(value, 1, instr(value, ':') - 1),
                   'text', substr(value, instr(value, ':') + 1))
           END)
      FROM json_each(",
            $table,
            ".violations))
 WHERE json_valid(violations);
"
        )
    };
}

/// The `messages` view (version 2 on) made again, with `$frame` and `$row` appended to
/// the columns of its two halves (what later versions add to every message).
macro_rules! messages_view {
    ($frame:literal, $row:literal) => {
        concat!(
            r#"
DROP VIEW messages;
CREATE VIEW messages AS
    SELECT id + 1 AS id, session, msg AS seq, dir, flags & 15 AS opcode, flags,
           mask_key IS NOT NULL AS masked, 1 AS frames, seq AS first_frame, seq AS last_frame,
           time_us, end_time_us, COALESCE(inflated_len, payload_len) AS len,
           payload_len AS wire_len, inflated_len IS NOT NULL AS compressed, close_code,
           CASE WHEN inflated_len IS NULL THEN payload ELSE inflated END AS data,
           CASE WHEN inflated_len IS NULL THEN payload_at ELSE inflated_at END AS data_at,
           CASE WHEN inflated_len IS NULL THEN payload_kept ELSE inflated_kept END AS data_kept,
           (SELECT NULLIF(json_group_array(json(value)), '[]') FROM json_each(frames.violations)
             WHERE json_extract(value, '$.code')
                   IN ('invalid_utf8', 'truncated_utf8', 'inflate_failed')) AS violations,
           0 AS incomplete"#,
            $frame,
            r#"
      FROM frames WHERE msg IS NOT NULL
    UNION ALL
    SELECT id, session, seq, dir, opcode, flags, masked, frames, first_frame, last_frame,
           time_us, end_time_us, len, wire_len, compressed, close_code, data, data_at,
           data_kept, violations, incomplete"#,
            $row,
            r#"
      FROM message_rows;
"#
        )
    };
}

/// Version 2: violations are kept as objects, `{"code": ..., "text": ...}`, not as
/// `code: text` strings a reader had to split (and a filter had to match by prefix). A
/// string is split as `wstap_trace::view::split_violation` splits it; a list that is not
/// JSON is left as it was (a reader takes it for none, as version 1 did).
const V2: &str = concat!(
    objects_from_texts!("frames"),
    objects_from_texts!("message_rows"),
    messages_view!("", "")
);

/// Version 3: what wstap did to live sessions (breakpoints, decisions, injections,
/// closes), one row per intervention, numbered in the event order; `event` is its trace
/// line.
const V3: &str = r#"
CREATE TABLE interventions (
    id          INTEGER PRIMARY KEY,
    session     INTEGER NOT NULL,
    time_us     INTEGER NOT NULL,
    action      TEXT NOT NULL,
    by          TEXT NOT NULL,
    dir         TEXT,
    held        INTEGER,
    frame       INTEGER,
    event       TEXT NOT NULL
);
CREATE INDEX interventions_by_session ON interventions(session, id);
CREATE INDEX interventions_by_frame ON interventions(session, dir, frame);
"#;

/// Version 4: the messages wstap wrote itself (an edit, an injection, a resend) are
/// messages of their sessions, in `message_rows` with their `origin` (`NULL` for a peer's
/// message), the frames as written (`wire`), and for an edit the held message it
/// replaced (`held`). They have no frame rows: only what was read is framed there.
const V4: &str = concat!(
    r#"
ALTER TABLE message_rows ADD COLUMN origin TEXT;
ALTER TABLE message_rows ADD COLUMN wire BLOB;
ALTER TABLE message_rows ADD COLUMN held INTEGER;
"#,
    messages_view!(
        ", 'wire' AS origin, NULL AS wire, NULL AS held",
        ", COALESCE(origin, 'wire') AS origin, wire, held"
    )
);

/// Version 5: payloads go to segment files (`payload_segment` bytes each, named
/// `payloads-000000.bin` and on; `NULL`: the one `payload_file` of older captures), and a
/// capture may be bounded (`max_bytes`, `--capture-max`): the payloads before
/// `payloads_from` were dropped to stay within it, their rows kept.
const V5: &str = r#"
ALTER TABLE captures ADD COLUMN payload_segment INTEGER;
ALTER TABLE captures ADD COLUMN max_bytes INTEGER;
ALTER TABLE captures ADD COLUMN payloads_from INTEGER NOT NULL DEFAULT 0;
"#;

/// The spacing of `message_marks`, as a literal for the SQL of version 6.
macro_rules! mark_every {
    () => {
        256
    };
}

/// The size of the id blocks no frame span crosses, as a literal for version 8's SQL.
macro_rules! span_block {
    () => {
        4096
    };
}

/// The most ids a frame span skips between two of its frames, as a literal for version 8.
macro_rules! span_gap {
    () => {
        1024
    };
}

/// Version 6: one index on `frames` fewer. A session's whole-frame messages were found by
/// `frames_by_message` (session, msg), an index every frame row paid for; now they are
/// found through `frames_by_session`, since `msg` rises with `seq` within a session, and
/// `message_marks` says where to start: for every [`MARK_EVERY`]th message of a session,
/// the `frame` (a `seq`) that every whole-frame message numbered below it precedes and
/// none numbered at or above it does. A reader seeks to the mark, then scans at most that
/// many messages' frames.
const V6: &str = concat!(
    r#"
CREATE TABLE message_marks (
    session  INTEGER NOT NULL,
    msg      INTEGER NOT NULL,
    frame    INTEGER NOT NULL,
    PRIMARY KEY (session, msg)
) WITHOUT ROWID;
INSERT INTO message_marks
    SELECT session, msg, seq FROM frames WHERE msg IS NOT NULL AND msg % "#,
    mark_every!(),
    r#" = 0;
INSERT INTO message_marks
    SELECT r.session, r.seq, COALESCE((SELECT f.seq + 1 FROM frames f
                                        WHERE f.session = r.session AND f.id < r.id
                                        ORDER BY f.id DESC LIMIT 1), 0)
      FROM message_rows r WHERE r.seq % "#,
    mark_every!(),
    r#" = 0;
DROP INDEX frames_by_message;
"#
);

/// Version 7: payload views. `sessions.view` is the view wstap chose for the session as
/// it recorded it (from its subprotocol, its URL or its first messages, or `--view`;
/// `NULL`: none, each message read as JSON, text or hex); `view_choices` holds the view a
/// person picked for a session afterwards, which a reader prefers. `stream_packets`
/// holds, for a byte-stream protocol (MQTT), the packets a message ends when they are not
/// its own bytes (a packet split across messages): what protocol filters read of it.
/// `proto_schema` holds the descriptor set and message types the protobuf view names
/// fields by (`--proto-descriptor`, `--proto-type`), at most one row.
const V7: &str = r#"
ALTER TABLE sessions ADD COLUMN view TEXT;
CREATE TABLE view_choices (
    session  INTEGER PRIMARY KEY,
    view     TEXT NOT NULL,
    time_us  INTEGER NOT NULL
);
CREATE TABLE stream_packets (
    session  INTEGER NOT NULL,
    msg      INTEGER NOT NULL,
    frame    INTEGER,
    bytes    BLOB NOT NULL,
    PRIMARY KEY (session, msg)
) WITHOUT ROWID;
CREATE INDEX stream_packets_by_frame ON stream_packets(session, frame) WHERE frame IS NOT NULL;
CREATE TABLE proto_schema (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    descriptor_set  BLOB NOT NULL,
    c2s             TEXT,
    s2c             TEXT
);
"#;

/// Version 8: no index on `frames`. Every frame row went into `frames_by_session` too,
/// at one of as many places as there are sessions writing at once, and that B-tree
/// insert was a large part of what a row cost the writer (docs/performance.md); the
/// table itself is only ever appended to. `frame_spans` says where a session's frames
/// are instead: one row per run of them, `(session, first_seq, first_id, last_id)`, every
/// frame of the session from `first_seq` up to the next span's `first_seq` having an
/// `id` in `first_id..=last_id`. A run never crosses a [`SPAN_BLOCK`]-aligned block of
/// ids nor skips more than [`SPAN_GAP`] ids between two of its frames, so a reader scans
/// at most that many rows per frame it finds. Made here as the writer makes them
/// (`crate::spans`), from `frames_by_session` before it goes.
const V8: &str = concat!(
    r#"
CREATE TABLE frame_spans (
    session    INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL,
    first_id   INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    PRIMARY KEY (session, first_seq)
) WITHOUT ROWID;
INSERT INTO frame_spans (session, first_seq, first_id, last_id)
    SELECT session, min(seq), min(id), max(id) FROM (
        SELECT session, seq, id, sum(starts) OVER (PARTITION BY session ORDER BY seq) AS span
          FROM (SELECT session, seq, id,
                       CASE WHEN lag(id) OVER w IS NULL
                              OR id / "#,
    span_block!(),
    r#" != lag(id) OVER w / "#,
    span_block!(),
    r#"
                              OR id - lag(id) OVER w > "#,
    span_gap!(),
    r#" THEN 1 ELSE 0 END AS starts
                  FROM frames WINDOW w AS (PARTITION BY session ORDER BY seq)))
     GROUP BY session, span;
DROP INDEX frames_by_session;
"#
);

/// Version 9: frame rows that cost less to write. A row's cost to SQLite grows with its
/// columns (about 35 ns each, SQLite alone), and the six generated columns were
/// computed on every insert though none is stored (another 160 ns); a frame row cost
/// 1.2 µs, the most of anything the capture does per frame. Frames are now stored in
/// `frame_rows`, 17 columns: the flags byte, the length's encoding, the direction and the
/// masking key in one integer (`head`), the end time as an offset from the start
/// (`end_after_us`, zero bytes when it is 0), and what few frames have (a close code and
/// reason, violations) in one JSON object (`rare`, `NULL` for the rest). `frames` is a
/// view that spells every column as before, in the same order, the flag bits included:
/// what a query of `frames` read, it reads still.
const V9: &str = concat!(
    r#"
CREATE TABLE frame_rows (
    id             INTEGER PRIMARY KEY,
    session        INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    idx            INTEGER NOT NULL,
    time_us        INTEGER NOT NULL,
    end_after_us   INTEGER NOT NULL,
    head           INTEGER NOT NULL,
    payload_len    INTEGER NOT NULL,
    payload        BLOB,
    payload_at     INTEGER,
    payload_kept   INTEGER NOT NULL,
    msg            INTEGER,
    inflated_len   INTEGER,
    inflated       BLOB,
    inflated_at    INTEGER,
    inflated_kept  INTEGER,
    rare           TEXT
);
INSERT INTO frame_rows
    SELECT id, session, seq, idx, time_us, end_time_us - time_us,
           flags | CASE length_bits WHEN 16 THEN 256 WHEN 64 THEN 512 ELSE 0 END
                 | CASE dir WHEN 's2c' THEN 1024 ELSE 0 END
                 | CASE WHEN mask_key IS NULL THEN 0 ELSE 2048 | (mask_key << 16) END,
           payload_len, payload, payload_at, payload_kept, msg,
           inflated_len, inflated, inflated_at, inflated_kept,
           CASE WHEN close_code IS NULL AND close_reason IS NULL AND violations IS NULL THEN NULL
                -- A merge patch onto nothing: the keys whose values are NULL left out.
                ELSE json_patch('{}', json_object('close_code', close_code,
                    'close_reason', close_reason,
                    -- An array as the writer spells it, as JSON; any other text as a
                    -- string, which the view gives back as it was.
                    'violations', CASE WHEN json_valid(violations)
                                            AND json_type(violations) = 'array'
                                            AND json(violations) = violations
                                       THEN json(violations) ELSE violations END)) END
      FROM frames ORDER BY id;
DROP TABLE frames;
CREATE VIEW frames AS
    SELECT id, session, seq, CAST(CASE WHEN head & 1024 THEN 's2c' ELSE 'c2s' END AS TEXT) AS dir,
           idx, time_us, CAST(time_us + end_after_us AS INTEGER) AS end_time_us,
           CAST(head & 255 AS INTEGER) AS flags,
           CAST(CASE WHEN head & 2048 THEN (head >> 16) & 4294967295 END AS INTEGER) AS mask_key,
           CAST(CASE (head >> 8) & 3 WHEN 1 THEN 16 WHEN 2 THEN 64 ELSE 7 END AS INTEGER)
               AS length_bits,
           payload_len, payload, payload_at, payload_kept,
           CAST(json_extract(rare, '$.close_code') AS INTEGER) AS close_code,
           CAST(json_extract(rare, '$.close_reason') AS TEXT) AS close_reason,
           inflated_len, inflated, inflated_at, inflated_kept,
           CAST(json_extract(rare, '$.violations') AS TEXT) AS violations, msg,
           CAST((head >> 7) & 1 AS INTEGER) AS fin, CAST((head >> 6) & 1 AS INTEGER) AS rsv1,
           CAST((head >> 5) & 1 AS INTEGER) AS rsv2, CAST((head >> 4) & 1 AS INTEGER) AS rsv3,
           CAST(head & 15 AS INTEGER) AS opcode,
           CAST(2 + CASE (head >> 8) & 3 WHEN 1 THEN 2 WHEN 2 THEN 8 ELSE 0 END
                  + CASE WHEN head & 2048 THEN 4 ELSE 0 END AS INTEGER) AS header_len
      FROM frame_rows;
"#,
    messages_view!(
        ", 'wire' AS origin, NULL AS wire, NULL AS held",
        ", COALESCE(origin, 'wire') AS origin, wire, held"
    )
);

/// How many messages of a session lie between two of its `message_marks` (version 6).
pub(crate) const MARK_EVERY: u64 = mark_every!();

/// The blocks of frame ids no span crosses (version 8).
pub(crate) const SPAN_BLOCK: i64 = span_block!();

/// The most ids a span skips between two frames of its session (version 8).
pub(crate) const SPAN_GAP: i64 = span_gap!();

/// Forward migrations: `MIGRATIONS[n]` takes a database from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9];

/// Settings for a connection that writes: WAL (readers never block the writer, nor it
/// them), and fsync only at checkpoints. A killed process loses nothing committed; a power
/// cut may lose the last transactions, never the database.
/// A capture bounded at `max_bytes` keeps its log to a sixteenth of that at most.
pub(crate) fn tune_writer(conn: &Connection, max_bytes: Option<u64>) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Room for every statement the writer runs (23: its own, the spans', the schema's and
    // six frame inserts), so none is prepared again.
    conn.set_prepared_statement_cache_capacity(32);
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 8 MiB of page cache: enough for the hot index pages of many open sessions.
    conn.pragma_update(None, "cache_size", -8192)?;
    // Checkpoint every 16 MiB of WAL rather than 4: fewer, larger checkpoints; less for a
    // small bound, and the log cut back to that after each checkpoint.
    const PAGE: u64 = 4096;
    let log = max_bytes.map_or(16 << 20, |bound| (bound / 16).clamp(64 * PAGE, 16 << 20));
    conn.pragma_update(None, "wal_autocheckpoint", (log / PAGE) as i64)?;
    if max_bytes.is_some() {
        conn.pragma_update(None, "journal_size_limit", log as i64)?;
    }
    Ok(())
}

/// Creates the schema in a new, empty database.
pub(crate) fn create(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for migration in MIGRATIONS {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Brings the capture at `dir`, written by an older wstap, to [`SCHEMA_VERSION`]: takes
/// the writer's lock (so no writer is at work on it), then runs the migrations it lacks
/// in one transaction, so a failure leaves it as it was; a capture whose frames were
/// rewritten is compacted after (`VACUUM`), when there is room for it.
pub(crate) fn migrate(dir: &Path, database: &Path) -> Result<(), StoreError> {
    // Another reader may be migrating it this moment: wait for it, a little.
    let mut tries = 0;
    let _lock = loop {
        match crate::layout::WriterLock::take(dir) {
            Err(StoreError::InUse { .. }) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            taken => break taken?,
        }
    };
    let mut conn = Connection::open(database)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let from = usize::try_from(version).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(from) {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    if from < REWRITES_FRAMES {
        // The old frames table's pages are free now: as many as the new one's. Give them
        // back, or the migrated capture takes about twice the room it needs. Migrated it
        // is, either way: if there is no room to compact it (a copy of the database goes
        // to the temporary directory), it keeps the free pages, which SQLite fills first
        // when the capture takes more sessions.
        if conn.execute_batch("VACUUM").is_ok() {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        }
    }
    Ok(())
}

/// The version whose migration writes every frame anew ([`V9`]), freeing the pages of
/// the table before it: a capture of any version below it is compacted after migrating.
const REWRITES_FRAMES: usize = 9;

/// Checks that `conn` holds a capture this crate can read, and says why not otherwise;
/// returns its schema version (an older one needs [`migrate`]).
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let id: i64 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    if id != APPLICATION_ID {
        return Err(StoreError::not_a_capture(
            path,
            "an SQLite database, but not one wstap wrote",
        ));
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        return Err(StoreError::not_a_capture(
            path,
            &format!("schema version {version}: an unfinished capture"),
        ));
    }
    Ok(version)
}

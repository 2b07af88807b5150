//! The capture's schema, its version, and how a database is opened for it.
//!
//! The SQL below is the product's contract with people who query a capture with `sqlite3`
//! (`docs/capture-format.md` explains every column): columns are named as one would query
//! them, times are microseconds since the Unix epoch, and a frame's flags byte is kept
//! whole with the bits as generated columns beside it. Each new version adds a forward
//! migration to [`MIGRATIONS`]; a capture written by a newer wstap is refused, never
//! guessed at.

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// `PRAGMA application_id`: `wstp`, so `file(1)`-like tools and wstap itself can tell a
/// capture from any other SQLite database.
pub const APPLICATION_ID: i64 = 0x7773_7470;

/// The schema version this crate writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

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
    tls              INTEGER NOT NULL,
    client_tls       TEXT,
    upstream_tls     TEXT,
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
    fin            INTEGER GENERATED ALWAYS AS ((flags >> 7) & 1) VIRTUAL,
    rsv1           INTEGER GENERATED ALWAYS AS ((flags >> 6) & 1) VIRTUAL,
    rsv2           INTEGER GENERATED ALWAYS AS ((flags >> 5) & 1) VIRTUAL,
    rsv3           INTEGER GENERATED ALWAYS AS ((flags >> 4) & 1) VIRTUAL,
    opcode         INTEGER GENERATED ALWAYS AS (flags & 15) VIRTUAL,
    mask_key       INTEGER,
    header_len     INTEGER NOT NULL,
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
    violations     TEXT
);
CREATE INDEX frames_by_session ON frames(session, seq);

CREATE TABLE messages (
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
    data_frame   INTEGER,
    violations   TEXT,
    incomplete   INTEGER NOT NULL
);
CREATE INDEX messages_by_session ON messages(session, seq);

CREATE TABLE notices (
    id       INTEGER PRIMARY KEY,
    time_us  INTEGER NOT NULL,
    message  TEXT NOT NULL
);
"#;

/// Forward migrations: `MIGRATIONS[n]` takes a database from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[V1];

/// Settings for a connection that writes: WAL (readers never block the writer, nor it
/// them), and fsync only at checkpoints. A killed process loses nothing committed; a power
/// cut may lose the last transactions, never the database.
pub(crate) fn tune_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 8 MiB of page cache: enough for the hot index pages of many open sessions.
    conn.pragma_update(None, "cache_size", -8192)?;
    // Checkpoint every 16 MiB of WAL rather than 4: fewer, larger checkpoints.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
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

/// Checks that `conn` holds a capture this crate can read, and says why not otherwise.
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
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
    if version < SCHEMA_VERSION {
        return Err(StoreError::not_a_capture(
            path,
            &format!("schema version {version}: an unfinished capture"),
        ));
    }
    Ok(())
}

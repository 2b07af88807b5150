//! Frame rows waiting to be inserted, many per `INSERT` statement.
//!
//! Small frames arrive at tens of thousands a second, and most of the writer's time per
//! row went to allocating: a `String` for the direction, a `Vec` per inline payload, the
//! SQL text of the statement. Here a row is a run of [`Cell`]s in one vector and the
//! inline bytes of every waiting row share one buffer, both reused from one flush to the
//! next; the statements' text is built once.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use std::ops::Range;

/// The number of columns of `frame_rows`, where frames are stored.
pub(crate) const FRAME_COLUMNS: usize = 17;

/// Rows per `INSERT` statement when enough are waiting (SQLite's default limit is 32,766
/// parameters; 32 rows of 17 stay far below it).
const ROWS_PER_INSERT: usize = 32;

/// One value of a waiting row.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    /// Text of the row's own (a close code and reason, violations): rare.
    Text(String),
    /// Bytes in the shared buffer.
    Bytes(Range<usize>),
}

impl From<Option<i64>> for Cell {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Cell::Null, Cell::Int)
    }
}

/// The rows waiting: see the module documentation.
#[derive(Debug)]
pub(crate) struct PendingFrames {
    cells: Vec<Cell>,
    bytes: Vec<u8>,
    insert_many: String,
    insert_one: String,
}

impl PendingFrames {
    pub fn new() -> Self {
        PendingFrames {
            cells: Vec::with_capacity(FRAME_COLUMNS * ROWS_PER_INSERT),
            bytes: Vec::new(),
            insert_many: insert_frames_sql(ROWS_PER_INSERT),
            insert_one: insert_frames_sql(1),
        }
    }

    /// Copies `bytes` into the shared buffer, as a cell (`Null` for `None`).
    pub fn bytes(&mut self, bytes: Option<&[u8]>) -> Cell {
        match bytes {
            Some(bytes) => {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(bytes);
                Cell::Bytes(start..self.bytes.len())
            }
            None => Cell::Null,
        }
    }

    /// Adds a row; returns whether enough are waiting to be worth a flush.
    pub fn push(&mut self, row: [Cell; FRAME_COLUMNS]) -> bool {
        self.cells.extend(row);
        self.cells.len() >= FRAME_COLUMNS * ROWS_PER_INSERT
    }

    /// Inserts every waiting row.
    pub fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let rows = self.cells.len() / FRAME_COLUMNS;
        let mut done = 0;
        while done < rows {
            let (n, sql) = if rows - done >= ROWS_PER_INSERT {
                (ROWS_PER_INSERT, &self.insert_many)
            } else {
                (1, &self.insert_one)
            };
            let cells = &self.cells[done * FRAME_COLUMNS..(done + n) * FRAME_COLUMNS];
            let bytes = &self.bytes;
            let values = cells.iter().map(|cell| match cell {
                Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
                Cell::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
                Cell::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
                Cell::Bytes(range) => ToSqlOutput::Borrowed(ValueRef::Blob(&bytes[range.clone()])),
            });
            conn.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values))?;
            done += n;
        }
        self.cells.clear();
        self.bytes.clear();
        Ok(())
    }
}

/// `INSERT INTO frame_rows VALUES (?,…),…` for `rows` rows. (SQLite keeps a statement journal
/// for a many-row insert that names the rowid, whatever its conflict clause: the rowid's
/// type check may abort it. Thirty-two rows a statement still beat one, 2.04 against
/// 2.23 µs per event in the writer bench's fan-in row.)
fn insert_frames_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; FRAME_COLUMNS].join(","));
    format!(
        "INSERT INTO frame_rows VALUES {}",
        vec![row; rows].join(",")
    )
}

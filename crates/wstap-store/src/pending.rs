//! Frame rows waiting to be inserted, many per `INSERT` statement.
//!
//! Small frames arrive at tens of thousands a second, and most of the writer's time per
//! row went to allocating: a `String` for the direction, a `Vec` per inline payload, the
//! SQL text of the statement. Here a row is a run of [`Cell`]s in one vector and the
//! inline bytes of every waiting row share one buffer, both reused from one flush to the
//! next; the statements' text is built once.
//!
//! SQLite's cost for a row grows with the values bound and the columns it codes, `NULL`s
//! included (docs/performance.md), and most frames have none of the last five columns of
//! `frame_rows` (a compressed message's inflated bytes, a close frame's or a broken
//! frame's `rare` facts). Rows that all lack them are inserted by a statement that names
//! only the columns before them, which SQLite fills with `NULL` for less.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use std::ops::Range;

/// The columns of `frame_rows`, in order: the writer's rows (`CaptureWriter::frame`) give
/// their values in this order.
const FRAME_ROW_COLUMNS: [&str; 17] = [
    "id",
    "session",
    "seq",
    "idx",
    "time_us",
    "end_after_us",
    "head",
    "payload_len",
    "payload",
    "payload_at",
    "payload_kept",
    "msg",
    "inflated_len",
    "inflated",
    "inflated_at",
    "inflated_kept",
    "rare",
];

/// The number of columns of `frame_rows`, where frames are stored.
pub(crate) const FRAME_ROW_WIDTH: usize = FRAME_ROW_COLUMNS.len();

/// The columns before those most frames leave `NULL`.
const COMMON_COLUMNS: usize = 12;

/// Rows per `INSERT` statement, largest first: the rows waiting take as many of the
/// largest as fit, then of the next, down to one. (SQLite's default limit is 32,766
/// parameters; 32 rows of 17 stay far below it.)
const ROWS_PER_INSERT: [usize; 3] = [32, 8, 1];
const _: () = assert!(ROWS_PER_INSERT[ROWS_PER_INSERT.len() - 1] == 1);

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

/// Which of a row's columns an `INSERT` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The first [`COMMON_COLUMNS`]: the rest are `NULL`.
    Common,
    /// Every column.
    Full,
}

impl Shape {
    fn of(row: &[Cell]) -> Shape {
        if row[COMMON_COLUMNS..]
            .iter()
            .all(|cell| matches!(cell, Cell::Null))
        {
            Shape::Common
        } else {
            Shape::Full
        }
    }

    /// Its place in [`PendingFrames::inserts`].
    fn index(self) -> usize {
        match self {
            Shape::Common => 0,
            Shape::Full => 1,
        }
    }

    fn columns(self) -> usize {
        match self {
            Shape::Common => COMMON_COLUMNS,
            Shape::Full => FRAME_ROW_WIDTH,
        }
    }
}

/// The rows waiting: see the module documentation.
#[derive(Debug)]
pub(crate) struct PendingFrames {
    cells: Vec<Cell>,
    bytes: Vec<u8>,
    /// The `INSERT`s of each shape (by [`Shape::index`]), one for each of
    /// [`ROWS_PER_INSERT`].
    inserts: [[String; ROWS_PER_INSERT.len()]; 2],
}

impl PendingFrames {
    pub fn new() -> Self {
        let inserts = |shape: Shape| ROWS_PER_INSERT.map(|rows| insert_sql(shape, rows));
        PendingFrames {
            cells: Vec::with_capacity(FRAME_ROW_WIDTH * ROWS_PER_INSERT[0]),
            bytes: Vec::new(),
            inserts: [inserts(Shape::Common), inserts(Shape::Full)],
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
    pub fn push(&mut self, row: [Cell; FRAME_ROW_WIDTH]) -> bool {
        self.cells.extend(row);
        self.cells.len() >= FRAME_ROW_WIDTH * ROWS_PER_INSERT[0]
    }

    /// Inserts every waiting row, in order, by the fewest statements: as many rows as the
    /// largest statement that fits takes, each time, naming only the common columns when
    /// none of those rows has the others (so mixed shapes never take more statements).
    pub fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let rows = self.cells.len() / FRAME_ROW_WIDTH;
        let mut at = 0;
        while at < rows {
            // The largest that fits; the last, one row, always does.
            let which = ROWS_PER_INSERT
                .iter()
                .position(|&size| size <= rows - at)
                .unwrap_or(ROWS_PER_INSERT.len() - 1);
            let chunk = at..at + ROWS_PER_INSERT[which];
            let shape = if chunk
                .clone()
                .all(|i| Shape::of(self.row(i)) == Shape::Common)
            {
                Shape::Common
            } else {
                Shape::Full
            };
            let values = chunk
                .clone()
                .flat_map(|i| &self.row(i)[..shape.columns()])
                .map(|cell| self.value(cell));
            conn.prepare_cached(&self.inserts[shape.index()][which])?
                .execute(rusqlite::params_from_iter(values))?;
            at = chunk.end;
        }
        self.cells.clear();
        self.bytes.clear();
        Ok(())
    }

    fn row(&self, i: usize) -> &[Cell] {
        &self.cells[i * FRAME_ROW_WIDTH..(i + 1) * FRAME_ROW_WIDTH]
    }

    fn value<'a>(&'a self, cell: &'a Cell) -> ToSqlOutput<'a> {
        match cell {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Cell::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Cell::Bytes(range) => ToSqlOutput::Borrowed(ValueRef::Blob(&self.bytes[range.clone()])),
        }
    }
}

/// `INSERT INTO frame_rows (…) VALUES (?,…),…` of `rows` rows of `shape`. (SQLite keeps a
/// statement journal for a many-row insert that names the rowid, whatever its conflict
/// clause: the rowid's type check may abort it. Thirty-two rows a statement still beat
/// one, 2.04 against 2.23 µs per event in the writer bench's fan-in row, in schema 7.)
fn insert_sql(shape: Shape, rows: usize) -> String {
    let columns = &FRAME_ROW_COLUMNS[..shape.columns()];
    let row = format!("({})", vec!["?"; columns.len()].join(","));
    format!(
        "INSERT INTO frame_rows ({}) VALUES {}",
        columns.join(", "),
        vec![row; rows].join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of frame `id`: with inflated bytes or `rare` facts when `full` says so.
    fn frame_row(pending: &mut PendingFrames, id: i64, full: Full) -> [Cell; FRAME_ROW_WIDTH] {
        let payload = pending.bytes(Some(&id.to_be_bytes()));
        let mut row: [Cell; FRAME_ROW_WIDTH] = std::array::from_fn(|_| Cell::Null);
        for (i, value) in [id, 1, id, id, 10 * id, 0, 0x81, 8].into_iter().enumerate() {
            row[i] = Cell::Int(value);
        }
        row[8] = payload;
        row[10] = Cell::Int(8);
        match full {
            Full::No => {}
            Full::Inflated => {
                row[12] = Cell::Int(3);
                row[13] = pending.bytes(Some(b"abc"));
                row[15] = Cell::Int(3);
            }
            Full::Rare => row[16] = Cell::Text(format!("{{\"close_code\":{id}}}")),
        }
        row
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Full {
        No,
        Inflated,
        Rare,
    }

    #[test]
    fn rows_of_either_shape_go_in_whole() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::create(&mut conn).unwrap();
        let mut pending = PendingFrames::new();
        // Flushes of 32 rows: one all common, one with a few full rows, one all full;
        // then 20 left for the last flush (8, 8, 1, 1, 1, 1), some of them full.
        let full = |id: i64| match id {
            41..=43 | 60 | 65..=80 | 110 => Full::Rare,
            81..=96 | 100 => Full::Inflated,
            _ => Full::No,
        };
        for id in 1..=116 {
            let row = frame_row(&mut pending, id, full(id));
            if pending.push(row) {
                pending.flush(&conn).unwrap();
            }
        }
        pending.flush(&conn).unwrap();
        type Read = (i64, i64, Vec<u8>, Option<Vec<u8>>, Option<i64>);
        let mut statement = conn
            .prepare("SELECT id, time_us, payload, inflated, close_code FROM frames ORDER BY id")
            .unwrap();
        let read: Vec<Read> = statement
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected: Vec<Read> = (1..=116)
            .map(|id: i64| {
                let inflated = (full(id) == Full::Inflated).then(|| b"abc".to_vec());
                let code = (full(id) == Full::Rare).then_some(id);
                (id, 10 * id, id.to_be_bytes().to_vec(), inflated, code)
            })
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn the_columns_named_are_those_of_the_table_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::create(&mut conn).unwrap();
        let mut statement = conn
            .prepare("SELECT name FROM pragma_table_info('frame_rows') ORDER BY cid")
            .unwrap();
        let columns: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(columns, FRAME_ROW_COLUMNS);
        assert_eq!(FRAME_ROW_COLUMNS[COMMON_COLUMNS], "inflated_len");
    }
}

//! The wstap capture store: every session of a run on disk, in SQLite, at bounded memory.
//!
//! A capture is one folder ([`layout`]): an SQLite database whose schema is documented in
//! `docs/capture-format.md` (for `sqlite3` as much as for wstap), and a payload file for
//! payloads too large to keep inline. [`CaptureWriter`] is a lossless sink of the event
//! bus that writes a run as it happens; [`Capture`] reads it back (by filter, by page, or
//! every event in order), while it is written or long after. The filter language's SQL
//! runs here, against [`columns`], with the predicate's own functions registered.
//!
//! No tokio: the writer runs on a thread of its own, driven by `wstap-bus`.
#![deny(missing_docs)]

pub mod bound;
pub mod columns;
pub mod decoded;
mod error;
pub mod export;
pub mod facts;
mod functions;
mod ids;
pub mod layout;
mod payloads;
mod pending;
mod proto;
mod read;
mod rows;
mod schema;
mod segment;
mod spans;
mod writer;

pub use error::StoreError;
pub use read::{
    Capture, CaptureRow, Position, Rows, SessionRow, StoredFrame, StoredHandshake, StoredMessage,
    TimelineBucket,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use writer::{CaptureInfo, CaptureWriter, Committed, INLINE_MAX};

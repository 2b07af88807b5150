//! Boxed stream halves and a read half with a look-ahead buffer.
//!
//! Every connection, plain TCP or TLS, is split into a [`BoxRead`] and a [`BoxWrite`] so
//! the HTTP, tunnel and relay code is written once. [`Incoming`] adds the buffer that HTTP
//! parsing needs: bytes read past a head stay there and are handed on (as the first body
//! bytes, or as the first WebSocket bytes to relay), so nothing read is ever lost.

use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// The read half of any connection.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of any connection.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How many bytes a read asks for when filling the look-ahead buffer.
const FILL_CHUNK: usize = 16 * 1024;

/// A read half with a look-ahead buffer: see the module documentation.
pub struct Incoming {
    /// The stream.
    pub io: BoxRead,
    /// Bytes read from `io` and not consumed yet.
    pub buf: BytesMut,
}

impl Incoming {
    /// Wraps a read half with an empty buffer.
    pub fn new(io: BoxRead) -> Self {
        Incoming {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Reads more into the buffer; `Ok(0)` at end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(FILL_CHUNK);
        self.io.read_buf(&mut self.buf).await
    }

    /// Takes everything buffered.
    pub fn take_buffered(&mut self) -> BytesMut {
        self.buf.split()
    }
}

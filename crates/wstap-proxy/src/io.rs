//! The two ends of a session, as boxed stream halves with a look-ahead buffer.
//!
//! Every connection, plain TCP or TLS, is split into a [`BoxRead`] and a [`BoxWrite`] so
//! the HTTP, CONNECT and relay code is written once. [`Incoming`] adds the buffer that HTTP
//! parsing needs: bytes read past a head stay there and are handed on (as the first body
//! bytes, or as the first WebSocket bytes to relay), so nothing read is ever lost.
//! [`Client`] and [`Upstream`] are the two ends every stage of a connection works with.

use crate::target::Target;
use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use wstap_trace::TcpLeg;

/// The read half of any connection.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of any connection.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How many bytes a read asks for when filling the look-ahead buffer.
const FILL_CHUNK: usize = 4 * 1024;

/// A read half with a look-ahead buffer: see the module documentation.
pub(crate) struct Incoming {
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

/// A read half (with its look-ahead buffer) and a write half joined back into one stream,
/// for what needs both at once (a TLS handshake, hyper). Buffered bytes are read first.
pub(crate) struct Joined {
    incoming: Incoming,
    out: BoxWrite,
}

impl Joined {
    /// Joins `incoming` and `out`.
    pub fn new(incoming: Incoming, out: BoxWrite) -> Self {
        Joined { incoming, out }
    }

    /// Joins them with `prefix` to be read before anything buffered.
    pub fn with_prefix(mut incoming: Incoming, out: BoxWrite, mut prefix: BytesMut) -> Self {
        prefix.unsplit(incoming.take_buffered());
        incoming.buf = prefix;
        Joined { incoming, out }
    }
}

impl AsyncRead for Joined {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.incoming.buf.is_empty() {
            let n = this.incoming.buf.len().min(buf.remaining());
            buf.put_slice(&this.incoming.buf.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.incoming.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Joined {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.out).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.out).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.out).poll_shutdown(cx)
    }
}

/// Splits any stream into boxed halves.
pub(crate) fn split_boxed<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
) -> (Incoming, BoxWrite) {
    let (read, write) = tokio::io::split(stream);
    (Incoming::new(Box::new(read)), Box::new(write))
}

/// The client side of a connection.
pub(crate) struct Client {
    /// Reads from the client.
    pub incoming: Incoming,
    /// Writes to the client.
    pub out: BoxWrite,
}

impl Client {
    /// Wraps an accepted TCP stream.
    pub fn from_tcp(stream: TcpStream) -> Self {
        let (read, write) = stream.into_split();
        Client {
            incoming: Incoming::new(Box::new(read)),
            out: Box::new(write),
        }
    }
}

/// A connection to an upstream.
pub(crate) struct Upstream {
    /// Where it goes.
    pub target: Target,
    /// Reads from the upstream.
    pub incoming: Incoming,
    /// Writes to the upstream.
    pub out: BoxWrite,
    /// Whether another request may follow on it.
    pub reusable: bool,
    /// The TCP connection's two ends, when known (for the record of its handshake).
    pub addresses: Option<TcpLeg>,
}

/// The two ends of a TCP stream, when the OS tells them.
pub(crate) fn tcp_leg(stream: &TcpStream) -> Option<TcpLeg> {
    Some(TcpLeg {
        local: stream.local_addr().ok()?.to_string(),
        peer: stream.peer_addr().ok()?.to_string(),
    })
}

impl Upstream {
    /// Wraps a connected TCP stream.
    pub fn from_tcp(target: Target, stream: TcpStream) -> Self {
        let addresses = tcp_leg(&stream);
        let (read, write) = stream.into_split();
        Self::from_halves(target, (Incoming::new(Box::new(read)), Box::new(write)))
            .with_addresses(addresses)
    }

    /// The same, with the TCP connection's ends known to be `addresses`.
    pub fn with_addresses(mut self, addresses: Option<TcpLeg>) -> Self {
        self.addresses = addresses;
        self
    }

    /// Wraps split halves (of a TLS stream, say).
    pub fn from_halves(target: Target, (incoming, out): (Incoming, BoxWrite)) -> Self {
        Upstream {
            target,
            incoming,
            out,
            reusable: true,
            addresses: None,
        }
    }
}

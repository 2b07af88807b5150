//! The byte-exact relay: every byte read from one side is written to the other at once,
//! unchanged, and only then shown to the tap.
//!
//! Each direction is a pump: read, write all, tap, publish, repeat. Backpressure is
//! natural: a pump does not read again until its write finished, so a side that stops
//! reading stops the other side's reads, and no buffer grows. End of stream is passed on
//! as a write shutdown (half-close), so close handshakes and half-closed sockets pass
//! through as the peers do them.
//!
//! With `--strict` a pump judges each read before forwarding it: the bytes before the first
//! frame that breaks the protocol go on, that frame and everything after it in the read
//! are withheld, and the pump stops.
//!
//! Buffers are lent, not owned: a pump takes a buffer from a small per-thread pool only
//! while a read is ready and returns it as soon as a read would wait. An idle session
//! therefore holds no relay buffer at all, which is what keeps ten thousand idle sessions
//! cheap.

use crate::clock::now;
use crate::io::{BoxRead, BoxWrite, Client, Upstream};
use crate::tap::Tap;
use bytes::BytesMut;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::Poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wstap_bus::EventBus;
use wstap_wire::Offence;

/// Size of one relay buffer: one read moves at most this much.
const RELAY_BUFFER: usize = 64 * 1024;
/// Buffers a worker thread keeps for reuse.
const POOL_PER_THREAD: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

fn lend() -> BytesMut {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(RELAY_BUFFER))
}

fn give_back(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() >= RELAY_BUFFER {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_PER_THREAD {
                pool.push(buf);
            }
        });
    }
}

/// Reads once, into a buffer lent only while data is ready. An empty buffer means end
/// of stream.
async fn read_lent(src: &mut BoxRead, spare: &mut Option<BytesMut>) -> io::Result<BytesMut> {
    poll_fn(|cx| {
        let buf = spare.get_or_insert_with(lend);
        let polled = {
            let read = pin!(src.read_buf(buf));
            read.poll(cx)
        };
        match polled {
            Poll::Pending => {
                if let Some(buf) = spare.take() {
                    give_back(buf);
                }
                Poll::Pending
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(spare.take().unwrap_or_default())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    })
    .await
}

/// How one direction ended.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// The source closed cleanly; the destination was shut down for writing.
    Eof,
    /// Reading the source failed.
    ReadFailed(io::Error),
    /// Writing the destination failed.
    WriteFailed(io::Error),
    /// `--strict`: the source sent a frame that breaks the protocol; it and what followed
    /// it in the same read were withheld.
    Violation {
        /// The offending frame.
        offence: Offence,
        /// Bytes withheld.
        withheld: u64,
    },
}

impl PumpEnd {
    /// Whether the direction ended by an error.
    pub fn is_error(&self) -> bool {
        !matches!(self, PumpEnd::Eof)
    }
}

/// One direction of a relay.
pub(crate) struct Leg {
    /// Where bytes come from.
    pub src: BoxRead,
    /// Bytes already read from `src` (read ahead while parsing a head).
    pub initial: BytesMut,
    /// Where bytes go.
    pub dst: BoxWrite,
}

/// The two legs between a client and an upstream, each starting with the bytes already
/// read ahead from its source.
pub(crate) fn legs(client: Client, upstream: Upstream) -> (Leg, Leg) {
    let c2s = Leg {
        src: client.incoming.io,
        initial: client.incoming.buf,
        dst: upstream.out,
    };
    let s2c = Leg {
        src: upstream.incoming.io,
        initial: upstream.incoming.buf,
        dst: client.out,
    };
    (c2s, s2c)
}

/// Moves bytes from `leg.src` to `leg.dst` until either fails or `src` ends, tapping
/// them when a tap is given and counting them in `moved`. Returns how it ended. The leg is
/// borrowed, so its writer is still there afterwards (to send a close frame at shutdown).
async fn pump(
    leg: &mut Leg,
    mut tap: Option<&mut Tap>,
    bus: &EventBus,
    moved: &mut u64,
    strict: bool,
) -> PumpEnd {
    // Always take the read-ahead bytes out of the leg: an empty buffer left there would
    // keep its whole allocation alive for as long as the session lasts.
    let initial = std::mem::take(&mut leg.initial);
    let mut next = (!initial.is_empty()).then_some(initial);
    let mut spare = None;
    loop {
        let mut buf = match next.take() {
            Some(buf) => buf,
            None => match read_lent(&mut leg.src, &mut spare).await {
                Ok(buf) => buf,
                Err(e) => return PumpEnd::ReadFailed(e),
            },
        };
        if buf.is_empty() {
            let _ = leg.dst.shutdown().await;
            return PumpEnd::Eof;
        }
        let time = now();
        match tap.as_deref_mut() {
            // Strict: judge the bytes first; forward those before the first offending
            // frame, and withhold it and the rest.
            Some(tap) if strict => {
                let (events, verdict) = tap.judge(&buf, time);
                let clean = &buf[..verdict.clean];
                if !clean.is_empty() {
                    if let Err(e) = write_now(&mut leg.dst, clean).await {
                        return PumpEnd::WriteFailed(e);
                    }
                    *moved += clean.len() as u64;
                }
                bus.publish(events).await;
                if let Some(offence) = verdict.offence {
                    let withheld = (buf.len() - verdict.clean) as u64;
                    return PumpEnd::Violation { offence, withheld };
                }
            }
            // Normal: forward at once, then let the tap unmask the same buffer in place.
            tap => {
                if let Err(e) = write_now(&mut leg.dst, &buf).await {
                    return PumpEnd::WriteFailed(e);
                }
                *moved += buf.len() as u64;
                if let Some(tap) = tap {
                    let events = tap.observe(&mut buf, time);
                    bus.publish(events).await;
                }
            }
        }
        if buf.capacity() >= RELAY_BUFFER {
            buf.clear();
            spare = Some(buf);
        }
    }
}

async fn write_now(dst: &mut BoxWrite, bytes: &[u8]) -> io::Result<()> {
    dst.write_all(bytes).await?;
    dst.flush().await
}

/// How a two-way relay ended.
#[derive(Debug)]
pub(crate) struct RelayEnd {
    /// Bytes client to server.
    pub c2s_bytes: u64,
    /// Bytes server to client.
    pub s2c_bytes: u64,
    /// How the client-to-server direction ended (`None`: it was stopped).
    pub c2s: Option<PumpEnd>,
    /// How the server-to-client direction ended.
    pub s2c: Option<PumpEnd>,
    /// Whether `stop` ended the relay.
    pub interrupted: bool,
}

impl RelayEnd {
    /// Whether both directions reached end of stream without an error.
    pub fn clean(&self) -> bool {
        let eof = |end: &Option<PumpEnd>| end.as_ref().is_some_and(|e| !e.is_error());
        eof(&self.c2s) && eof(&self.s2c)
    }
}

/// The taps of a WebSocket relay: one per direction.
pub(crate) struct Taps<'a> {
    /// Client to server.
    pub c2s: &'a mut Tap,
    /// Server to client.
    pub s2c: &'a mut Tap,
    /// `--strict`: judge each read before forwarding it.
    pub strict: bool,
}

/// Relays both directions until both end, one fails (then the other is stopped), or
/// `stop` resolves. Taps, when given, see each direction's bytes.
pub(crate) async fn relay_both(
    c2s: &mut Leg,
    s2c: &mut Leg,
    taps: Option<Taps<'_>>,
    bus: &EventBus,
    stop: impl Future<Output = ()>,
) -> RelayEnd {
    let (mut c2s_bytes, mut s2c_bytes) = (0u64, 0u64);
    let (mut c2s_end, mut s2c_end) = (None, None);
    let mut interrupted = false;
    let (c2s_tap, s2c_tap, strict) = match taps {
        Some(taps) => (Some(taps.c2s), Some(taps.s2c), taps.strict),
        None => (None, None, false),
    };
    {
        let mut up = pin!(pump(c2s, c2s_tap, bus, &mut c2s_bytes, strict));
        let mut down = pin!(pump(s2c, s2c_tap, bus, &mut s2c_bytes, strict));
        let mut stop = pin!(stop);
        tokio::select! {
            how = &mut up => {
                let failed = how.is_error();
                c2s_end = Some(how);
                if !failed {
                    tokio::select! {
                        how = &mut down => s2c_end = Some(how),
                        _ = &mut stop => interrupted = true,
                    }
                }
            }
            how = &mut down => {
                let failed = how.is_error();
                s2c_end = Some(how);
                if !failed {
                    tokio::select! {
                        how = &mut up => c2s_end = Some(how),
                        _ = &mut stop => interrupted = true,
                    }
                }
            }
            _ = &mut stop => interrupted = true,
        }
    }
    RelayEnd {
        c2s_bytes,
        s2c_bytes,
        c2s: c2s_end,
        s2c: s2c_end,
        interrupted,
    }
}

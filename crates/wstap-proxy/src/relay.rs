//! The drive loop: the one place where a relay's bytes meet sockets. It decides nothing:
//! it reads into a lent buffer, feeds the [`Relay`] core, writes what the core says, publishes
//! the core's records, and sleeps until the core's deadline. WebSocket sessions and blind
//! tunnels run through it alike; only the core's configuration differs.
//!
//! Each direction is a pump: write everything queued for its destination, publish, then
//! read its source once (unless the core has stopped reading it). Backpressure is natural:
//! a pump does not read again until its writes finished, so a side that stops reading
//! stops the other side's reads, and no buffer grows. The pumps and a control branch (the
//! proxy's stop signal and the core's timer) run concurrently in the session's task and
//! share the core behind a mutex that is never held across an await; a [`Notify`] tells
//! each branch when the core may have work for it. No branch is ever cancelled while it
//! publishes, so no record is lost: when a failure ends the relay, only a write that waits
//! on a peer gives up (the session is over; its bytes have nowhere to go).
//!
//! Buffers are lent, not owned: a pump takes a buffer from a small per-thread pool only
//! while a read is ready and returns it as soon as a read would wait. An idle session
//! therefore holds no relay buffer at all, which is what keeps ten thousand idle sessions
//! cheap.

use crate::clock::now;
use crate::io::{BoxRead, BoxWrite, Client, Incoming, Upstream};
use crate::session::Session;
use bytes::BytesMut;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use wstap_relay::{Command, Relay, RelayEnd, Side, Transmit};
use wstap_trace::BusEvent;

/// Size of one relay buffer: one read moves at most this much.
const RELAY_BUFFER: usize = 64 * 1024;
/// Buffers a worker thread keeps for reuse.
const POOL_PER_THREAD: usize = 16;
/// How long a stopping proxy waits for a session's streams to reach a frame boundary, so
/// that each side gets its `1001 Going Away` without a frame being cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

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

async fn write_now(dst: &mut BoxWrite, bytes: &[u8]) -> io::Result<()> {
    dst.write_all(bytes).await?;
    dst.flush().await
}

/// What the branches of one drive share.
struct Shared<'a> {
    relay: Mutex<Relay>,
    /// Signalled whenever the core may have new work for another branch.
    changed: Notify,
    /// Set, and signalled, once a failure ended the relay at once.
    aborted: AtomicBool,
    aborting: Notify,
    /// Held while a batch of records is drained and published, so batches reach the bus
    /// in the order the core made them, whichever branch publishes.
    publishing: tokio::sync::Mutex<()>,
    session: &'a Session,
}

impl Shared<'_> {
    fn relay(&self) -> MutexGuard<'_, Relay> {
        // Poisoned only if a branch panicked holding it; the core is still consistent
        // between calls, so carry on with it.
        self.relay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the other branches; `relay` is the core as just changed (its guard is
    /// dropped here, before anyone wakes).
    fn changed(&self, relay: MutexGuard<'_, Relay>) {
        let aborted = relay.is_aborted();
        drop(relay);
        if aborted && !self.aborted.swap(true, Ordering::AcqRel) {
            self.aborting.notify_waiters();
        }
        self.changed.notify_waiters();
    }

    /// Writes `bytes` to `dst`, giving up only if a failure ends the relay meanwhile:
    /// `None` then. The common case (the socket has room) costs one poll.
    async fn write(&self, dst: &mut BoxWrite, bytes: &[u8]) -> Option<io::Result<()>> {
        let mut write = pin!(write_now(dst, bytes));
        if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            return Some(done);
        }
        let aborting = self.aborting.notified();
        let mut aborting = pin!(aborting);
        aborting.as_mut().enable();
        if self.aborted.load(Ordering::Acquire) {
            return None;
        }
        tokio::select! {
            biased;
            done = &mut write => Some(done),
            () = aborting => None,
        }
    }

    /// Publishes the records the core has decoded so far.
    async fn publish(&self) {
        if !self.relay().has_events() {
            return;
        }
        let _turn = self.publishing.lock().await;
        let events: Vec<BusEvent> = {
            let mut relay = self.relay();
            if !relay.has_events() {
                return;
            }
            let session = self.session.id;
            relay
                .drain_events()
                .map(|record| BusEvent::Wire { session, record })
                .collect()
        };
        self.session.bus().publish(events).await;
    }
}

/// One direction: reads `from`, writes to the other side.
struct Pump {
    from: Side,
    src: BoxRead,
    /// Bytes read ahead of the relay (while parsing a head), fed first.
    ahead: Option<BytesMut>,
    dst: BoxWrite,
}

impl Pump {
    fn new(from: Side, incoming: Incoming, dst: BoxWrite) -> Pump {
        // Always take the read-ahead bytes out: an empty buffer left there would keep its
        // whole allocation alive for as long as the session lasts.
        let Incoming { io, buf } = incoming;
        Pump {
            from,
            src: io,
            ahead: (!buf.is_empty()).then_some(buf),
            dst,
        }
    }

    async fn run(mut self, shared: &Shared<'_>) {
        let to = self.from.other();
        // The chunk last fed: the core's forwards to `to` are ranges of it.
        let mut fed: Option<BytesMut> = None;
        let mut spare: Option<BytesMut> = None;
        loop {
            let changed = shared.changed.notified();
            let mut changed = pin!(changed);
            changed.as_mut().enable();

            loop {
                // (The guard must not live into the write: a statement of its own.)
                let next = shared.relay().poll_transmit(to);
                let Some(transmit) = next else {
                    break;
                };
                let written = match &transmit {
                    Transmit::Forward(range) => {
                        match fed.as_ref().and_then(|b| b.get(range.clone())) {
                            Some(bytes) => shared.write(&mut self.dst, bytes).await,
                            None => Some(Err(io::Error::other(
                                "the relay forwarded bytes it was not fed",
                            ))),
                        }
                    }
                    Transmit::Built(bytes) => shared.write(&mut self.dst, bytes).await,
                    // A peer that is gone already cannot be told more: nothing to report.
                    Transmit::Shutdown => {
                        let _ = self.dst.shutdown().await;
                        Some(Ok(()))
                    }
                };
                let Some(written) = written else {
                    // The relay was ended by a failure while this write waited.
                    break;
                };
                let mut relay = shared.relay();
                match written {
                    Ok(()) => relay.transmitted(to),
                    Err(e) => relay.write_failed(to, e.to_string()),
                }
                if relay.is_done() {
                    shared.changed(relay);
                }
            }
            // Everything from the last chunk is written: its buffer can take the next read.
            if let Some(mut buf) = fed.take() {
                if buf.capacity() >= RELAY_BUFFER {
                    buf.clear();
                    spare = Some(buf);
                }
            }
            shared.publish().await;
            let (done, reading) = {
                let relay = shared.relay();
                (relay.is_done(), relay.wants_read(self.from))
            };
            if done {
                shared.changed.notify_waiters();
                return;
            }
            if !reading {
                if let Some(buf) = spare.take() {
                    give_back(buf);
                }
                changed.await;
                continue;
            }
            let read = match self.ahead.take() {
                Some(ahead) => Ok(ahead),
                None => tokio::select! {
                    read = read_lent(&mut self.src, &mut spare) => read,
                    () = &mut changed => continue,
                },
            };
            let time = now();
            let mut relay = shared.relay();
            match read {
                Ok(chunk) if chunk.is_empty() => relay.end_of_stream(self.from),
                Ok(chunk) => {
                    relay.feed(self.from, &chunk, time);
                    fed = Some(chunk);
                }
                Err(e) => relay.read_failed(self.from, e.to_string()),
            }
            // The other pump writes to this side; the control branch ends the drive.
            if relay.has_transmit(self.from) || relay.is_finished() || relay.is_done() {
                shared.changed(relay);
            }
        }
    }
}

/// The proxy's stop signal and the core's timer; returns once the relay is done.
async fn control(shared: &Shared<'_>, stop: impl Future<Output = ()>) {
    let mut stop = pin!(stop);
    let mut stopped = false;
    loop {
        let changed = shared.changed.notified();
        let mut changed = pin!(changed);
        changed.as_mut().enable();
        let deadline = {
            let relay = shared.relay();
            if relay.is_done() {
                return;
            }
            relay.poll_timeout()
        };
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = u64::try_from(at.0.saturating_sub(now().0)).unwrap_or(0);
                    tokio::time::sleep(Duration::from_micros(wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop, if !stopped => {
                stopped = true;
                let mut relay = shared.relay();
                relay.command(Command::Shutdown { grace: SHUTDOWN_GRACE }, now());
                shared.changed(relay);
            }
            () = sleep => {
                let mut relay = shared.relay();
                relay.handle_timeout(now());
                shared.changed(relay);
            }
            () = &mut changed => {}
        }
    }
}

/// Relays between `client` and `upstream` through `relay` until it is done, then ends it:
/// the records of what was left open are published, and how it ended is returned.
pub(crate) async fn drive(
    relay: Relay,
    client: Client,
    upstream: Upstream,
    session: &Session,
) -> RelayEnd {
    let shared = Shared {
        relay: Mutex::new(relay),
        changed: Notify::new(),
        aborted: AtomicBool::new(false),
        aborting: Notify::new(),
        publishing: tokio::sync::Mutex::new(()),
        session,
    };
    {
        let c2s = Pump::new(Side::Client, client.incoming, upstream.out);
        let s2c = Pump::new(Side::Server, upstream.incoming, client.out);
        tokio::join!(
            c2s.run(&shared),
            s2c.run(&shared),
            control(&shared, session.shared.stopping())
        );
    }
    let end = shared.relay().end(now());
    shared.publish().await;
    end
}

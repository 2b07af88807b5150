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
//! share the core behind a mutex that is never held across an await (two locks per chunk
//! relayed); a bell tells each branch when the core may have work for it. A pump drains
//! the records of its own feed in the same lock, so each direction's batches reach the
//! bus in order. No branch is ever cancelled while it publishes, so no record is lost:
//! when a failure ends the relay, only a write that waits on a peer gives up (the session
//! is over; its bytes have nowhere to go).
//!
//! A session that can be intercepted is enrolled in the registry (`wstap-control`): the
//! control branch also waits on its mailbox and carries each order out on the core, and
//! whatever the core notes (a message held, a timeout) is turned into interventions in
//! the same lock as the records it follows, so they reach the bus in order.
//!
//! Buffers are lent, not owned: a pump takes a buffer from a small per-thread pool only
//! while a read is ready and returns it as soon as a read would wait. An idle session
//! therefore holds no relay buffer at all, which is what keeps ten thousand idle sessions
//! cheap.

pub(crate) mod blind;
pub(crate) mod websocket;

use crate::clock::now;
use crate::io::{BoxRead, BoxWrite, Client, Incoming, Upstream};
use crate::session::Session;
use bytes::BytesMut;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wstap_control::{Enrolment, Mailbox, Order};
use wstap_relay::{Command, Relay, RelayConfig, RelayEnd, Side, Transmit};
use wstap_trace::convert::to_utc;
use wstap_trace::{BusEvent, Event};
use wstap_wire::Timestamp;

/// Size of one relay buffer: one read moves at most this much, unless the stream keeps
/// filling it.
const RELAY_BUFFER: usize = 64 * 1024;
/// The buffer of a stream whose last read filled its buffer: a busy stream moves more per
/// read, and a message crosses fewer reads (one that does and must be judged whole before
/// it goes on, at a breakpoint, is copied). Streams of small messages, the many sessions
/// of a fan-in, stay at [`RELAY_BUFFER`]: buffers in flight are what the proxy's memory
/// holds under load.
const LARGE_RELAY_BUFFER: usize = 256 * 1024;
/// Buffers a worker thread keeps for reuse.
const POOL_PER_THREAD: usize = 16;
/// How long a stopping proxy waits for a session's streams to reach a frame boundary, so
/// that each side gets its `1001 Going Away` without a frame being cut; a side that has not
/// taken what was written to it after as long again is dropped (the core's two steps).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of at least `want` bytes: from this thread's pool, else new.
fn lend(want: usize) -> BytesMut {
    let pooled = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let fits = pool.iter().rposition(|buf| buf.capacity() >= want)?;
        Some(pool.swap_remove(fits))
    });
    pooled.unwrap_or_else(|| BytesMut::with_capacity(want))
}

/// How large the next read of a stream should be, after a read of `read` bytes: large
/// while reads bring at least a small buffer's worth.
fn next_read_size(read: usize) -> usize {
    match read >= RELAY_BUFFER {
        true => LARGE_RELAY_BUFFER,
        false => RELAY_BUFFER,
    }
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

/// Reads once, up to `want` bytes, into a buffer lent only while data is ready. An empty
/// buffer means end of stream.
async fn read_lent(
    src: &mut BoxRead,
    spare: &mut Option<BytesMut>,
    want: usize,
) -> io::Result<BytesMut> {
    if let Some(small) = spare.take_if(|buf| buf.capacity() < want) {
        give_back(small);
    }
    poll_fn(|cx| {
        let buf = spare.get_or_insert_with(|| lend(want));
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

/// Tells the branches of one drive that the core may have work for them.
///
/// The branches run in one task (`tokio::join!` polls every branch whenever the task
/// wakes), so ringing is counting up and waking that task, and waiting is watching the
/// count change: no lock, no list of waiters. This holds only while the branches share a
/// task; were they spread over tasks, this would have to become a `Notify`.
#[derive(Default)]
struct Bell {
    rung: AtomicU64,
}

impl Bell {
    /// How often it has rung: wait with [`Bell::rung_since`] from here.
    fn count(&self) -> u64 {
        self.rung.load(Ordering::Acquire)
    }

    /// Rings: every branch will be polled again.
    async fn ring(&self) {
        self.rung.fetch_add(1, Ordering::AcqRel);
        poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::Ready(())
        })
        .await;
    }

    /// Resolves once the bell has rung after `seen` (a [`Bell::count`]).
    async fn rung_since(&self, seen: u64) {
        poll_fn(|_| {
            if self.count() == seen {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// What the branches of one drive share.
struct Shared<'a> {
    relay: Mutex<Relay>,
    bell: Bell,
    /// Set once a failure ended the relay at once: a write waiting on a peer gives up.
    aborted: AtomicBool,
    session: &'a Session,
    /// The session's place in the registry, when it can be intercepted: locked only
    /// while the core is, and after it.
    enrolment: Option<Mutex<Enrolment>>,
}

impl Shared<'_> {
    fn relay(&self) -> MutexGuard<'_, Relay> {
        // Poisoned only if a branch panicked holding it; the core is still consistent
        // between calls, so carry on with it.
        self.relay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rings for the other branches, after a change to the core: `aborted` says whether
    /// the core is now ended by a failure.
    async fn changed(&self, aborted: bool) {
        if aborted {
            self.aborted.store(true, Ordering::Release);
        }
        self.bell.ring().await;
    }

    /// Writes `bytes` to `dst`, giving up only if the relay ends at once meanwhile:
    /// `None` then.
    async fn write(&self, dst: &mut BoxWrite, bytes: &[u8]) -> Option<io::Result<()>> {
        self.abortable(write_now(dst, bytes)).await
    }

    /// Runs `io` to its end, or until the relay ends at once (`None`).
    async fn abortable<T>(&self, io: impl Future<Output = T>) -> Option<T> {
        let aborted = poll_fn(|_| {
            if self.aborted.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            biased;
            done = io => Some(done),
            () = aborted => None,
        }
    }

    /// What the core noted since the last call, at `time`, as events after `events`. Call
    /// with the core locked, so a held message is in the registry before anyone can
    /// decide on it.
    fn noted(&self, relay: &mut Relay, time: Timestamp, events: &mut Vec<BusEvent>) {
        if !relay.has_notes() {
            return;
        }
        let notes = relay.drain_notes();
        if let Some(enrolment) = &self.enrolment {
            let mut enrolment = enrolment.lock().unwrap_or_else(PoisonError::into_inner);
            let records = enrolment.noted(notes, to_utc(time));
            events.extend(records.into_iter().map(recorded));
        }
    }

    /// Carries `order` out on the core: the records of what was done, and whether the
    /// core ended at once.
    fn carry_out(&self, order: Order) -> (Vec<BusEvent>, bool) {
        let mut relay = self.relay();
        let mut events = Vec::new();
        if let Some(enrolment) = &self.enrolment {
            let mut enrolment = enrolment.lock().unwrap_or_else(PoisonError::into_inner);
            let time = now();
            let records = enrolment.carry_out(order, &mut relay, monotonic_now(), to_utc(time));
            events.extend(records.into_iter().map(recorded));
        }
        (events, relay.is_aborted())
    }

    async fn publish(&self, events: Vec<BusEvent>) {
        if !events.is_empty() {
            self.session.bus().publish(events).await;
        }
    }
}

/// The core's records so far, as bus events of `session`.
fn drain(relay: &mut Relay, session: u64) -> Vec<BusEvent> {
    if !relay.has_events() {
        return Vec::new();
    }
    relay
        .drain_events()
        .map(|record| BusEvent::Wire { session, record })
        .collect()
}

/// A record of what wstap did (an intervention, a message it wrote), as a bus event.
fn recorded(record: Event) -> BusEvent {
    BusEvent::Event(Box::new(record))
}

/// The next order in the mailbox, if the session has one.
async fn next_order(mailbox: &mut Option<Mailbox>) -> Order {
    match mailbox {
        Some(mailbox) => mailbox.next().await,
        None => std::future::pending().await,
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

    /// Writes one transmit; `None` when a failure elsewhere ended the relay meanwhile.
    async fn transmit(
        &mut self,
        shared: &Shared<'_>,
        transmit: &Transmit,
        fed: Option<&BytesMut>,
    ) -> Option<io::Result<()>> {
        match transmit {
            Transmit::Forward(range) => match fed.and_then(|b| b.get(range.clone())) {
                Some(bytes) => shared.write(&mut self.dst, bytes).await,
                None => Some(Err(io::Error::other(
                    "the relay forwarded bytes it was not fed",
                ))),
            },
            Transmit::Built(bytes) => shared.write(&mut self.dst, bytes).await,
            // A peer that is gone already cannot be told more: nothing to report. Ending a
            // TLS stream writes its close_notify, which a peer that reads nothing can hold
            // up as long as any write: it gives up as a write does.
            Transmit::Shutdown => shared.abortable(self.dst.shutdown()).await.map(|_| Ok(())),
        }
    }

    async fn run(mut self, shared: &Shared<'_>) {
        let (to, session) = (self.from.other(), shared.session.id);
        // The chunk last fed: the core's forwards to `to` are ranges of it.
        let mut fed: Option<BytesMut> = None;
        let mut spare: Option<BytesMut> = None;
        let mut want = RELAY_BUFFER;
        // What the last feed made: the first transmit and the records.
        let mut next: Option<Transmit> = None;
        let mut events: Vec<BusEvent> = Vec::new();
        loop {
            let seen = shared.bell.count();
            let (done, reading) = {
                // Write what the core queued for `to`, a lock per transmit written.
                loop {
                    let transmit = match next.take() {
                        Some(transmit) => transmit,
                        None => match shared.relay().poll_transmit(to) {
                            Some(transmit) => transmit,
                            None => break,
                        },
                    };
                    let Some(written) = self.transmit(shared, &transmit, fed.as_ref()).await else {
                        break;
                    };
                    let (finished, aborted, for_the_other) = {
                        let mut relay = shared.relay();
                        match written {
                            Ok(()) => relay.transmitted(to),
                            Err(e) => relay.write_failed(to, e.to_string()),
                        }
                        next = relay.poll_transmit(to);
                        // On a stream with network conditions a write moves the next
                        // deadline, and a cut-off carried out once what came before it
                        // was written may have queued closes for both sides: the control
                        // branch looks again, and tells the other pump.
                        let for_the_other = relay.is_shaped();
                        (relay.is_done(), relay.is_aborted(), for_the_other)
                    };
                    if finished || for_the_other {
                        shared.changed(aborted).await;
                    }
                }
                // Everything from the last chunk is written: its buffer takes the next read.
                if let Some(mut buf) = fed.take() {
                    if buf.capacity() >= RELAY_BUFFER {
                        buf.clear();
                        spare = Some(buf);
                    }
                }
                shared.publish(std::mem::take(&mut events)).await;
                let mut relay = shared.relay();
                events = drain(&mut relay, session);
                (relay.is_done(), relay.wants_read(self.from))
            };
            if !events.is_empty() {
                continue;
            }
            if done {
                shared.changed(false).await;
                return;
            }
            if !reading {
                if let Some(buf) = spare.take() {
                    give_back(buf);
                }
                shared.bell.rung_since(seen).await;
                continue;
            }
            let read = match self.ahead.take() {
                Some(ahead) => Ok(ahead),
                None => tokio::select! {
                    read = read_lent(&mut self.src, &mut spare, want) => read,
                    () = shared.bell.rung_since(seen) => continue,
                },
            };
            let time = now();
            let (ring, aborted) = {
                let mut relay = shared.relay();
                match read {
                    Ok(chunk) if chunk.is_empty() => relay.end_of_stream(self.from),
                    Ok(chunk) => {
                        want = next_read_size(chunk.len());
                        // Only a stream with network conditions times its frames: the
                        // others read no monotonic clock per chunk.
                        match relay.is_shaped() {
                            true => relay.feed_at(self.from, &chunk, time, monotonic_now()),
                            false => relay.feed(self.from, &chunk, time),
                        }
                        fed = Some(chunk);
                    }
                    Err(e) => relay.read_failed(self.from, e.to_string()),
                }
                next = relay.poll_transmit(to);
                events = drain(&mut relay, session);
                // A message held: the control branch gives it its timeout.
                let noted = relay.has_notes();
                shared.noted(&mut relay, time, &mut events);
                // The other pump writes to this side; the control branch ends the drive,
                // and learns the deadlines of a line of network conditions.
                let ring = relay.has_transmit(self.from)
                    || relay.is_finished()
                    || noted
                    || relay.is_shaped();
                (ring, relay.is_aborted())
            };
            if ring || aborted {
                shared.changed(aborted).await;
            }
        }
    }
}

/// The monotonic time, from the clock tokio's timers run on.
fn monotonic_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The proxy's stop signal, the core's timer (on the monotonic clock) and the session's
/// mailbox; returns once the relay is done.
async fn control(
    shared: &Shared<'_>,
    mut stop: Pin<&mut impl Future<Output = ()>>,
    mut mailbox: Option<Mailbox>,
) {
    let mut stopped = false;
    loop {
        let seen = shared.bell.count();
        let mut events = Vec::new();
        let (deadline, aborted, work) = {
            let mut relay = shared.relay();
            if relay.is_done() {
                return;
            }
            // Tells the core the time at every wake: a close that began with bytes (under
            // --strict) starts its grace here, a message held its timeout (and one whose
            // timeout passed meanwhile goes on: the pumps hear of what that queued).
            let queued =
                |relay: &Relay| [Side::Client, Side::Server].map(|to| relay.has_transmit(to));
            let before = queued(&relay);
            relay.handle_timeout(monotonic_now());
            shared.noted(&mut relay, now(), &mut events);
            // A side whose queue was empty and is not now: its pump may be waiting.
            let after = queued(&relay);
            let work = (0..2).any(|side| after[side] && !before[side]);
            (relay.poll_timeout(), relay.is_aborted(), work)
        };
        shared.publish(events).await;
        if aborted {
            shared.changed(true).await;
            continue;
        }
        if work {
            // Not `changed`'s loop: the bell this rings is heard below, once.
            shared.bell.ring().await;
        }
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let changed = tokio::select! {
            () = &mut stop, if !stopped => {
                stopped = true;
                let mut relay = shared.relay();
                // Refused only by a relay that ended at once: nothing is left to close.
                let _ = relay.command(Command::Shutdown { grace: SHUTDOWN_GRACE }, monotonic_now());
                Some(relay.is_aborted())
            }
            () = sleep => {
                let mut relay = shared.relay();
                relay.handle_timeout(monotonic_now());
                Some(relay.is_aborted())
            }
            order = next_order(&mut mailbox) => {
                let (events, aborted) = shared.carry_out(order);
                shared.publish(events).await;
                Some(aborted)
            }
            () = shared.bell.rung_since(seen) => None,
        };
        if let Some(aborted) = changed {
            shared.changed(aborted).await;
        }
    }
}

/// Relays between `client` and `upstream` through a relay core configured by `config`
/// until it is done, then ends it: the records of what was left open are published, and
/// how it ended is returned.
///
/// Not an `async fn`: an async function keeps its arguments for as long as it runs, even
/// once they are moved on, and the core alone is 1.6 KiB. Here the core and the pumps are
/// made first and the future holds them once: an idle session is that much smaller.
pub(crate) fn drive<'a>(
    config: RelayConfig,
    client: Client,
    upstream: Upstream,
    session: &'a Session,
    enrolled: Option<(Enrolment, Mailbox)>,
) -> impl Future<Output = RelayEnd> + Send + 'a {
    let mut relay = Relay::new(config);
    let (enrolment, mailbox, started) = match enrolled {
        Some((mut enrolment, mailbox)) => {
            let started = enrolment.start(&mut relay, monotonic_now(), to_utc(now()));
            (Some(Mutex::new(enrolment)), Some(mailbox), started)
        }
        None => (None, None, Vec::new()),
    };
    let shared = Shared {
        relay: Mutex::new(relay),
        bell: Bell::default(),
        aborted: AtomicBool::new(false),
        session,
        enrolment,
    };
    let c2s = Pump::new(Side::Client, client.incoming, upstream.out);
    let s2c = Pump::new(Side::Server, upstream.incoming, client.out);
    async move {
        shared
            .publish(started.into_iter().map(recorded).collect())
            .await;
        {
            let stop = pin!(session.shared.stopping());
            tokio::join!(
                c2s.run(&shared),
                s2c.run(&shared),
                control(&shared, stop, mailbox)
            );
        }
        let (end, events) = {
            let mut relay = shared.relay();
            let time = now();
            let end = relay.end(time);
            let mut events = drain(&mut relay, session.id);
            shared.noted(&mut relay, time, &mut events);
            if let Some(enrolment) = &shared.enrolment {
                let mut enrolment = enrolment.lock().unwrap_or_else(PoisonError::into_inner);
                let lost = enrolment.ended(&end.lost, to_utc(time));
                events.extend(lost.into_iter().map(recorded));
            }
            (end, events)
        };
        shared.publish(events).await;
        end
    }
}

//! The event bus: from the relay's taps to the sinks (trace file, capture store, console,
//! inspector).
//!
//! The relay publishes one batch per read: the records its tap decoded from those bytes
//! ([`BusEvent`], defined with the event model in `wstap-trace`, so that sinks depend on
//! the model and not on the engine). Turning records into lines, rows and screens is the
//! sinks' work, on their own threads, never the relay's.
//!
//! Two kinds of subscriber:
//! - **lossless** (the trace file): bounded by the bytes its queued batches hold (payload
//!   captures and records), not by their number; when that budget is spent, the publisher
//!   waits, which slows the relay rather than losing an event. A count bound would be
//!   wrong both ways: small enough to bound big batches, it stalls a relay of small
//!   messages whenever the subscriber naps for a few milliseconds;
//! - **lossy** (the console): bounded; when it is full, the batch is dropped for that
//!   subscriber and counted, so a slow terminal never slows traffic.
//!
//! Every lossless subscriber gets the batches in one order, so the capture and the trace of
//! a run tell the same story: with more than one, a publisher queues its batch for all of
//! them in one turn (with one, as by default, there is nothing to agree on and no turn).
//!
//! A lossless subscriber's thread naps between rounds so that each round takes many
//! batches; [`Backlog::nap`] ends a nap early once half its budget is queued, or a batch
//! does not fit in what is left. [`Backlog`] also counts the publishers waiting for room:
//! how widely the subscriber holds the relay up (the driver lends it the relay's priority
//! while it holds up many).
//! A fixed nap would cap a fast stream at a budget per nap: 16 MiB per 20 ms held 16 KiB
//! echoes to 530 MB/s while the writer slept (docs/performance.md). Half, not less: the
//! capture's commits cost by their number (each rewrites every session's index leaf), and
//! a fan-in's records filled a quarter of the capture's budget (16 MiB then) in about
//! half its nap. Half of the 8 MiB it has since is that quarter again; the fan-in row
//! read within its spread of the 16 MiB build all the same (docs/performance.md).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use wstap_trace::sink::batch_heap_bytes;
use wstap_trace::{Batch, BusEvent, Event};

/// A receiver draining a backlog gives its budget back in this many steps at most (see
/// [`LosslessReceiver::release`]).
const RELEASE_STEPS: usize = 16;

/// What a batch weighs against a lossless subscriber's budget: roughly the memory it holds.
pub(crate) fn weight(batch: &[BusEvent]) -> usize {
    std::mem::size_of::<Vec<BusEvent>>() + std::mem::size_of_val(batch) + batch_heap_bytes(batch)
}

/// A batch as queued for a lossless subscriber, with the budget it took.
#[derive(Debug)]
struct Weighed {
    batch: Batch,
    permits: u32,
}

/// The receiving end of a lossless subscription: see [`EventBus::subscribe_lossless`].
#[derive(Debug)]
pub struct LosslessReceiver {
    rx: mpsc::UnboundedReceiver<Weighed>,
    budget: Arc<Semaphore>,
    alarm: Arc<Alarm>,
    /// Budget of batches taken and not yet given back: see [`LosslessReceiver::release`].
    owed: usize,
    /// How much is given back at a time while a backlog is drained.
    step: usize,
}

/// Wakes a napping subscriber's thread once its backlog passes half the budget, or a
/// batch does not fit in what is left of it; counts the publishers waiting for room, and
/// wakes the thread watching them once there are more than it watches for.
#[derive(Debug)]
struct Alarm {
    /// The thread that last napped in [`Backlog::nap`].
    napper: Mutex<Option<Thread>>,
    /// Set by a publisher that found the backlog past [`Alarm::at_free`]; taken by the nap.
    rung: AtomicBool,
    /// Rings when fewer than this many permits are free.
    at_free: usize,
    /// Publishers waiting for room now.
    waiting: AtomicUsize,
    /// The thread that last parked in [`Backlog::park_until_waiting_above`].
    watcher: Mutex<Option<Thread>>,
    /// It is woken when more publishers than this wait (none watches: `usize::MAX`).
    watch_above: AtomicUsize,
}

impl Alarm {
    fn new(limit: u32) -> Alarm {
        Alarm {
            napper: Mutex::new(None),
            rung: AtomicBool::new(false),
            at_free: limit as usize - limit as usize / 2,
            waiting: AtomicUsize::new(0),
            watcher: Mutex::new(None),
            watch_above: AtomicUsize::new(usize::MAX),
        }
    }

    /// Called by a publisher with what the budget has free after it took its share (0
    /// when its batch did not fit). Rings once until a nap takes the ring: a publisher
    /// that finds it rung only reads the flag.
    fn check(&self, free: usize) {
        if free < self.at_free
            && !self.rung.load(Ordering::Relaxed)
            && !self.rung.swap(true, Ordering::AcqRel)
        {
            let napper = self.napper.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(napper) = napper.as_ref() {
                napper.unpark();
            }
        }
    }
}

/// A publisher's place among those waiting for room, for as long as it waits (its
/// future may be dropped while it does).
struct WaitingForRoom<'a>(&'a Alarm);

impl<'a> WaitingForRoom<'a> {
    fn enter(alarm: &'a Alarm) -> WaitingForRoom<'a> {
        // SeqCst here and in the watcher: each sees the other's write, or the watcher
        // finds the count high enough itself.
        let now = alarm.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        if now > alarm.watch_above.load(Ordering::SeqCst) {
            let watcher = alarm.watcher.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(watcher) = watcher.as_ref() {
                watcher.unpark();
            }
        }
        WaitingForRoom(alarm)
    }
}

impl Drop for WaitingForRoom<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A lossless subscriber's backlog as its threads see it without the receiver: for
/// napping between rounds of draining, and for watching how many publishers wait.
#[derive(Debug, Clone)]
pub(crate) struct Backlog(Arc<Alarm>);

impl Backlog {
    /// Sleeps the calling thread for `nap`, or less: until half the budget is queued or
    /// a batch does not fit. A ring since the last nap ends this one at once, even if the
    /// round since drained the backlog: one round more, never a publisher left waiting.
    /// For a subscriber on a thread of its own, between rounds of draining, once its
    /// receiver gave back what it took (as it has when [`LosslessReceiver::try_recv`]
    /// found nothing).
    pub(crate) fn nap(&self, nap: Duration) {
        *self.0.napper.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(std::thread::current());
        let until = Instant::now() + nap;
        while !self.0.rung.swap(false, Ordering::AcqRel) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left);
        }
    }

    /// How many publishers are waiting for room.
    pub(crate) fn publishers_waiting(&self) -> usize {
        self.0.waiting.load(Ordering::SeqCst)
    }

    /// Parks the calling thread until more than `above` publishers wait. It may return
    /// sooner (when the thread is unparked otherwise): callers look again. One thread
    /// watches a backlog: the last to call this.
    pub(crate) fn park_until_waiting_above(&self, above: usize) {
        *self
            .0
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
        self.0.watch_above.store(above, Ordering::SeqCst);
        if self.publishers_waiting() <= above {
            std::thread::park();
        }
    }
}

impl LosslessReceiver {
    /// Its backlog, for the threads that drain it.
    pub(crate) fn backlog(&self) -> Backlog {
        Backlog(Arc::clone(&self.alarm))
    }

    /// Waits for the next batch; `None` once every publisher is gone. Blocks the thread:
    /// for a subscriber on a thread of its own.
    pub fn blocking_recv(&mut self) -> Option<Batch> {
        self.settle();
        self.rx.blocking_recv().map(|w| self.release(w))
    }

    /// Waits for the next batch; `None` once every publisher is gone.
    pub async fn recv(&mut self) -> Option<Batch> {
        self.settle();
        self.rx.recv().await.map(|w| self.release(w))
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<Batch> {
        match self.rx.try_recv() {
            Ok(weighed) => Some(self.release(weighed)),
            Err(_) => {
                self.settle();
                None
            }
        }
    }

    /// Gives a received batch's budget back to the publishers: at once when it was the
    /// last one queued, else once a [`RELEASE_STEPS`]th of the budget is owed. Each giving
    /// back takes the budget's lock and wakes the publishers waiting for it; a capture
    /// draining a fan-in's backlog of thousands of small batches did that per batch, 4% of
    /// the proxy's time (docs/performance.md).
    fn release(&mut self, weighed: Weighed) -> Batch {
        self.owed += weighed.permits as usize;
        if self.owed >= self.step || self.rx.is_empty() {
            self.settle();
        }
        weighed.batch
    }

    /// Gives back whatever budget is owed.
    fn settle(&mut self) {
        if self.owed > 0 {
            self.budget.add_permits(std::mem::take(&mut self.owed));
        }
    }
}

impl Drop for LosslessReceiver {
    /// Whatever is still queued will never be taken: closing the budget releases every
    /// publisher waiting for room, and none waits again.
    fn drop(&mut self) {
        self.budget.close();
    }
}

#[derive(Debug)]
struct LosslessSubscriber {
    tx: mpsc::UnboundedSender<Weighed>,
    budget: Arc<Semaphore>,
    alarm: Arc<Alarm>,
    /// The whole budget: no batch may take more, or it would wait forever.
    limit: u32,
}

impl LosslessSubscriber {
    /// Queues `batch`, first waiting until the budget has room for it.
    async fn send(&self, batch: Batch) {
        let permits = u32::try_from(weight(&batch))
            .unwrap_or(u32::MAX)
            .clamp(1, self.limit);
        let acquired = match self.budget.try_acquire_many(permits) {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => {
                // Full: a napping subscriber wakes to make room.
                let _waiting = WaitingForRoom::enter(&self.alarm);
                self.alarm.check(0);
                self.budget.acquire_many(permits).await
            }
            Err(TryAcquireError::Closed) => return,
        };
        // An error means the subscriber is gone (it reported its own failure): the relay
        // carries on without it.
        if let Ok(permit) = acquired {
            permit.forget();
            let _ = self.tx.send(Weighed { batch, permits });
            self.alarm.check(self.budget.available_permits());
        }
    }
}

/// Counts the events a lossy subscriber missed.
#[derive(Debug, Default)]
pub struct DropCounter {
    events: AtomicU64,
}

impl DropCounter {
    /// Takes the number of events dropped since the last call.
    pub fn take_events(&self) -> u64 {
        self.events.swap(0, Ordering::Relaxed)
    }
}

/// The bus: see the module documentation.
#[derive(Debug, Default)]
pub struct EventBus {
    lossless: Vec<LosslessSubscriber>,
    lossy: Vec<LossySubscriber>,
    /// Taken by a publisher while it queues a batch for each lossless subscriber, when
    /// there is more than one: concurrent publishers would otherwise reach them in
    /// different orders, and a capture and a trace of the same run would disagree.
    ordered: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct LossySubscriber {
    tx: mpsc::Sender<Batch>,
    dropped: Arc<DropCounter>,
    /// Whether it wants frame and message records, or only session-level events.
    wire: bool,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber that never misses an event; publishers wait when the batches
    /// queued for it hold more than `budget` bytes.
    pub fn subscribe_lossless(&mut self, budget: usize) -> LosslessReceiver {
        let limit = u32::try_from(budget.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(limit as usize));
        let alarm = Arc::new(Alarm::new(limit));
        self.lossless.push(LosslessSubscriber {
            tx,
            budget: Arc::clone(&budget),
            alarm: Arc::clone(&alarm),
            limit,
        });
        LosslessReceiver {
            rx,
            budget,
            alarm,
            owed: 0,
            step: (limit as usize / RELEASE_STEPS).max(1),
        }
    }

    /// Adds a subscriber that misses batches rather than slow anyone down. With `wire`
    /// false it only gets batches holding session-level events (a quiet console).
    pub fn subscribe_lossy(
        &mut self,
        capacity: usize,
        wire: bool,
    ) -> (mpsc::Receiver<Batch>, Arc<DropCounter>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(DropCounter::default());
        self.lossy.push(LossySubscriber {
            tx,
            dropped: Arc::clone(&dropped),
            wire,
        });
        (rx, dropped)
    }

    /// Whether anyone listens (when nobody does, taps may skip building events).
    pub fn has_subscribers(&self) -> bool {
        !self.lossless.is_empty() || !self.lossy.is_empty()
    }

    /// Publishes one event.
    ///
    /// The event is boxed before the returned future exists, so a future that awaits
    /// this holds a pointer, not the event: sessions keep such futures for as long as
    /// they live (a relay awaiting its end), and events are large.
    pub fn publish_one(&self, event: Event) -> impl std::future::Future<Output = ()> + '_ {
        self.publish(vec![BusEvent::Event(Box::new(event))])
    }

    /// Publishes a batch: waits on lossless subscribers, never on lossy ones.
    pub async fn publish(&self, events: Vec<BusEvent>) {
        if events.is_empty() || !self.has_subscribers() {
            return;
        }
        let only_wire = events.iter().all(BusEvent::is_wire);
        let batch: Batch = Arc::new(events);
        for sub in &self.lossy {
            if only_wire && !sub.wire {
                continue;
            }
            if sub.tx.try_send(Arc::clone(&batch)).is_err() {
                let lost = batch.len() as u64;
                sub.dropped.events.fetch_add(lost, Ordering::Relaxed);
            }
        }
        match self.lossless.as_slice() {
            [] => {}
            [only] => only.send(batch).await,
            all => {
                let _turn = self.ordered.lock().await;
                for sub in all {
                    sub.send(Arc::clone(&batch)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;
    use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, StreamAnalyzer, Timestamp};

    /// The events one read of a masked binary frame of `len` bytes produces.
    fn batch_of(len: usize) -> Vec<BusEvent> {
        let mut analyzer =
            StreamAnalyzer::new(Direction::ClientToServer, AnalyzerConfig::default());
        let wire = FrameBuilder::binary()
            .mask([1, 2, 3, 4])
            .encode(&vec![7; len]);
        let mut records = Vec::new();
        analyzer.feed(&wire, Timestamp(0), &mut records);
        records
            .into_iter()
            .map(|record| BusEvent::Wire { session: 1, record })
            .collect()
    }

    const SHORT: Duration = Duration::from_millis(50);

    /// Publishes a batch for a frame of `len` bytes; fails the test if that has to wait.
    async fn publish_at_once(bus: &EventBus, len: usize, why: &str) {
        timeout(SHORT, bus.publish(batch_of(len)))
            .await
            .unwrap_or_else(|_| panic!("publishing waited: {why}"));
    }

    fn notice(text: &str) -> Event {
        Event::Notice(wstap_trace::Notice {
            time: chrono::DateTime::UNIX_EPOCH,
            message: text.into(),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_lossless_subscriber_gets_concurrent_publishers_batches_in_one_order() {
        let mut bus = EventBus::new();
        // Small budgets, drained as they fill: publishers also wait in their turn.
        let drain = |mut rx: LosslessReceiver| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while let Some(batch) = rx.blocking_recv() {
                    if let Some(BusEvent::Event(event)) = batch.first() {
                        if let Event::Notice(notice) = &**event {
                            seen.push(notice.message.clone());
                        }
                    }
                }
                seen
            })
        };
        let capture = drain(bus.subscribe_lossless(4 * 1024));
        let trace = drain(bus.subscribe_lossless(64 * 1024));
        let bus = Arc::new(bus);
        let publishers: Vec<_> = (0..8)
            .map(|publisher| {
                let bus = Arc::clone(&bus);
                tokio::spawn(async move {
                    for n in 0..2_000 {
                        let text = format!("{publisher}/{n}");
                        bus.publish(vec![BusEvent::Event(Box::new(notice(&text)))])
                            .await;
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.unwrap();
        }
        drop(bus);
        let (captured, traced) = (capture.join().unwrap(), trace.join().unwrap());
        assert_eq!(captured.len(), 16_000);
        assert!(
            captured == traced,
            "the two subscribers saw different orders"
        );
    }

    #[tokio::test]
    async fn a_publisher_waits_when_the_budget_is_spent_and_goes_on_when_batches_are_taken() {
        let mut bus = EventBus::new();
        let mut rx = bus.subscribe_lossless(48 * 1024);
        // A frame of 32 KiB and its message, which shares the frame's bytes: over half the
        // budget.
        publish_at_once(&bus, 32 * 1024, "the first batch fits").await;
        let second = bus.publish(batch_of(32 * 1024));
        tokio::pin!(second);
        assert!(
            timeout(SHORT, &mut second).await.is_err(),
            "the second batch waits for room"
        );
        assert_eq!(rx.recv().await.map(|b| b.len()), Some(2));
        timeout(SHORT, second)
            .await
            .expect("taking a batch makes room");
        assert_eq!(rx.try_recv().map(|b| b.len()), Some(2));
    }

    #[tokio::test]
    async fn publishers_waiting_for_room_are_counted_until_they_go_on_or_give_up() {
        let mut bus = EventBus::new();
        let mut rx = bus.subscribe_lossless(48 * 1024);
        let backlog = rx.backlog();
        publish_at_once(&bus, 32 * 1024, "the first batch fits").await;
        assert_eq!(backlog.publishers_waiting(), 0);
        let (waits, gives_up) = (
            bus.publish(batch_of(32 * 1024)),
            bus.publish(batch_of(32 * 1024)),
        );
        tokio::pin!(waits);
        assert!(timeout(SHORT, &mut waits).await.is_err());
        {
            tokio::pin!(gives_up);
            assert!(timeout(SHORT, &mut gives_up).await.is_err());
            assert_eq!(backlog.publishers_waiting(), 2);
        }
        assert_eq!(
            backlog.publishers_waiting(),
            1,
            "a dropped publish waits no more"
        );
        assert!(rx.recv().await.is_some());
        timeout(SHORT, waits)
            .await
            .expect("taking a batch makes room");
        assert_eq!(backlog.publishers_waiting(), 0);
    }

    #[tokio::test]
    async fn a_watcher_wakes_once_more_publishers_wait_than_it_watches_for() {
        let mut bus = EventBus::new();
        let rx = bus.subscribe_lossless(48 * 1024);
        let backlog = rx.backlog();
        publish_at_once(&bus, 32 * 1024, "the first batch fits").await;
        let (watching, woke) = std::sync::mpsc::channel();
        let watcher = backlog.clone();
        std::thread::spawn(move || {
            while watcher.publishers_waiting() <= 1 {
                // About to park (or to look again, after a wake-up with one waiting).
                let _ = watching.send(false);
                watcher.park_until_waiting_above(1);
            }
            let _ = watching.send(true);
        });
        let parking = tokio::task::spawn_blocking(move || {
            let parking = woke.recv_timeout(WAKE_UP);
            (parking, woke)
        });
        let (parking, woke) = parking.await.unwrap();
        assert_eq!(parking, Ok(false), "the watcher parks while none waits");
        let first = bus.publish(batch_of(32 * 1024));
        tokio::pin!(first);
        assert!(timeout(SHORT, &mut first).await.is_err());
        assert!(
            woke.try_iter().all(|woke| !woke),
            "one waiting, the watcher of more than one sleeps on"
        );
        let second = bus.publish(batch_of(32 * 1024));
        tokio::pin!(second);
        assert!(timeout(SHORT, &mut second).await.is_err());
        let woke = tokio::task::spawn_blocking(move || loop {
            match woke.recv_timeout(WAKE_UP) {
                Ok(false) => continue,
                other => break other,
            }
        })
        .await
        .unwrap();
        assert_eq!(
            woke,
            Ok(true),
            "two waiting, the watcher of more than one woke"
        );
        drop(rx);
    }

    #[tokio::test]
    async fn thousands_of_small_batches_queue_without_waiting() {
        let mut bus = EventBus::new();
        let mut rx = bus.subscribe_lossless(8 << 20);
        for _ in 0..5_000 {
            publish_at_once(&bus, 64, "small batches are light").await;
        }
        let mut received = 0;
        while rx.try_recv().is_some() {
            received += 1;
        }
        assert_eq!(received, 5_000);
    }

    #[tokio::test]
    async fn a_backlog_gives_its_budget_back_in_steps_and_all_of_it_once_drained() {
        let mut bus = EventBus::new();
        let mut rx = bus.subscribe_lossless(64 * 1024);
        let each = weight(&batch_of(64));
        let step = 64 * 1024 / RELEASE_STEPS;
        let queued = 3 * step / each + 2;
        for _ in 0..queued {
            publish_at_once(&bus, 64, "small batches are light").await;
        }
        let free = |bus: &EventBus| bus.lossless[0].budget.available_permits();
        let full = free(&bus);
        assert_eq!(full, 64 * 1024 - queued * each);
        let mut given_back = Vec::new();
        while rx.try_recv().is_some() {
            given_back.push(free(&bus) - full);
        }
        assert_eq!(given_back.len(), queued);
        assert_eq!(
            given_back[0], 0,
            "one small batch taken gives nothing back yet"
        );
        // Before the last batch, budget comes back only a step at a time.
        let steps: Vec<usize> = given_back[..queued - 1]
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&s| s > 0)
            .collect();
        assert!(steps.len() >= 2, "steps while draining: {given_back:?}");
        assert!(
            steps.iter().all(|s| (step..step + each).contains(s)),
            "given back in steps of {step}: {steps:?}"
        );
        assert_eq!(
            free(&bus),
            64 * 1024,
            "the last batch taken gives back the rest"
        );
    }

    #[tokio::test]
    async fn a_batch_heavier_than_the_whole_budget_still_passes() {
        let mut bus = EventBus::new();
        let mut rx = bus.subscribe_lossless(1024);
        publish_at_once(
            &bus,
            60 * 1024,
            "an oversized batch takes the whole budget, not more",
        )
        .await;
        assert!(rx.try_recv().is_some());
        publish_at_once(&bus, 60 * 1024, "and gives it back").await;
    }

    #[tokio::test]
    async fn a_subscriber_that_is_gone_never_holds_up_the_relay() {
        let mut bus = EventBus::new();
        drop(bus.subscribe_lossless(48 * 1024));
        for _ in 0..10 {
            publish_at_once(&bus, 16 * 1024, "nobody to wait for").await;
        }
    }

    #[tokio::test]
    async fn a_subscriber_gone_with_a_full_queue_releases_the_waiting_publisher() {
        let mut bus = EventBus::new();
        let rx = bus.subscribe_lossless(48 * 1024);
        bus.publish(batch_of(32 * 1024)).await;
        let waiting = bus.publish(batch_of(32 * 1024));
        tokio::pin!(waiting);
        assert!(
            timeout(SHORT, &mut waiting).await.is_err(),
            "the budget is spent"
        );
        drop(rx);
        timeout(SHORT, waiting)
            .await
            .expect("the waiting publisher is released");
        publish_at_once(&bus, 16 * 1024, "and later ones do not wait").await;
    }

    /// How a nap on a thread of its own ended.
    struct Woke {
        after: Duration,
        /// Bytes of the tests' 64 KiB budget taken as it ended.
        queued: usize,
        /// Given back, to be drained.
        rx: LosslessReceiver,
    }

    /// Starts `rx` napping for `nap` on a thread of its own.
    fn nap_on_a_thread(rx: LosslessReceiver, nap: Duration) -> std::sync::mpsc::Receiver<Woke> {
        let (done, woke) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            rx.backlog().nap(nap);
            let after = start.elapsed();
            let queued = 64 * 1024 - rx.budget.available_permits();
            let _ = done.send(Woke { after, queued, rx });
        });
        woke
    }

    /// What `bus`'s only lossless subscriber has queued, in bytes of its 64 KiB budget.
    fn queued(bus: &EventBus) -> usize {
        64 * 1024 - bus.lossless[0].budget.available_permits()
    }

    const LONG_NAP: Duration = Duration::from_secs(600);
    /// Far longer than a wake-up takes, even on a loaded machine.
    const WAKE_UP: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn half_the_budget_queued_ends_a_nap_and_less_does_not() {
        let mut bus = EventBus::new();
        let rx = bus.subscribe_lossless(64 * 1024);
        let woke = nap_on_a_thread(rx, LONG_NAP);
        while queued(&bus) + weight(&batch_of(1024)) < 32 * 1024 {
            publish_at_once(&bus, 1024, "far below the budget").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(woke.try_recv().is_err(), "woke at {} bytes", queued(&bus));
        }
        publish_at_once(&bus, 1024, "past half the budget").await;
        let woke = tokio::task::spawn_blocking(move || woke.recv_timeout(WAKE_UP))
            .await
            .unwrap()
            .expect("half the budget queued and the nap went on");
        assert!(woke.after < WAKE_UP);
        assert!(woke.queued >= 32 * 1024, "woke at {} bytes", woke.queued);
    }

    #[tokio::test]
    async fn a_batch_that_does_not_fit_ends_a_nap() {
        let mut bus = EventBus::new();
        let rx = bus.subscribe_lossless(64 * 1024);
        publish_at_once(&bus, 4 * 1024, "below half the budget").await;
        assert!(queued(&bus) < 32 * 1024);
        let woke = nap_on_a_thread(rx, LONG_NAP);
        // Heavier than what is left, though the backlog is below half. (While it waits it
        // holds what is free, so the budget reads as full from here.)
        let publish = bus.publish(batch_of(60 * 1024));
        tokio::pin!(publish);
        assert!(
            timeout(SHORT, &mut publish).await.is_err(),
            "it waits for room"
        );
        let mut woke = tokio::task::spawn_blocking(move || woke.recv_timeout(WAKE_UP))
            .await
            .unwrap()
            .expect("a publisher waited and the nap went on");
        assert!(woke.rx.try_recv().is_some());
        timeout(WAKE_UP, publish)
            .await
            .expect("room made, the batch goes");
    }

    #[tokio::test]
    async fn a_small_backlog_leaves_the_nap_whole() {
        let mut bus = EventBus::new();
        let rx = bus.subscribe_lossless(64 * 1024);
        let nap = Duration::from_millis(300);
        let woke = nap_on_a_thread(rx, nap);
        publish_at_once(&bus, 1024, "far below the budget").await;
        let woke = tokio::task::spawn_blocking(move || woke.recv().unwrap())
            .await
            .unwrap();
        assert!(
            woke.after >= nap,
            "a nap of {nap:?} ended after {:?}",
            woke.after
        );
    }

    #[tokio::test]
    async fn a_backlog_that_filled_while_busy_skips_the_next_nap() {
        let mut bus = EventBus::new();
        let mut rx = bus.subscribe_lossless(64 * 1024);
        rx.backlog().nap(Duration::ZERO); // registers this thread as the napper
        publish_at_once(&bus, 40 * 1024, "past half the budget, short of all").await;
        assert!((32 * 1024..64 * 1024).contains(&queued(&bus)));
        let nap = Duration::from_secs(5);
        let start = std::time::Instant::now();
        rx.backlog().nap(nap);
        assert!(start.elapsed() < nap, "the nap went on");
        assert!(rx.try_recv().is_some());
    }
}

//! A lossless [`Sink`] on a thread of its own, fed by the bus.
//!
//! The thread hands every event to the sink in order. It makes what was written durable
//! ([`Sink::flush`]) whenever it has caught up with the bus, and at least every
//! [`Cadence::max_delay`] while it has not, so that a killed proxy leaves a trace whose
//! every complete line parses and a capture whose every committed transaction is there.
//! After catching up it naps for [`Cadence::nap`], so that a busy relay hands it many
//! batches per wake-up instead of waking it (and paying for a flush) for every one; a
//! backlog past half the budget ends the nap early (`Backlog::nap`).
//!
//! A background sink runs below the relay's priority, with a relief thread at the
//! relay's that drains it in its stead while it holds up more than one session
//! ([`spawn`]); one of the two writes at a time.
//!
//! If writing fails (a full disk), the thread says so loudly once on stderr and keeps
//! draining the bus, so the relay never blocks on a dead sink; the stats it returns say
//! what reached the sink.

use crate::bus::{Backlog, LosslessReceiver};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wstap_trace::Sink;

/// How often a sink makes its writes durable, and how long it naps once caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// After catching up with the bus (and flushing), wait this long before looking again,
    /// or less once half the backlog's budget is queued.
    pub nap: Duration,
    /// While events keep coming, flush at least this often.
    pub max_delay: Duration,
    /// Run at a lower scheduling priority (Linux: 10 nice steps below the thread that
    /// starts it), so that when the machine is busy the sink's bursts (a commit, a
    /// checkpoint) wait for the relay's threads rather than delay them. The sink still
    /// never falls behind for good: once its backlog is full the relay waits for it, and
    /// while it holds up more than one session a relief thread at the relay's priority
    /// drains it ([`spawn`]).
    pub background: bool,
}

/// How many nice steps (Linux) background sinks and the inspector run below the relay's
/// threads. 5 was tried for the sinks: fan-in read 0.50 to 0.54 of direct against 0.45
/// to 0.51 at 10 in four runs of the same rounds, but two throughput runs of three read
/// lower at 16 KiB and wss (wss 16 KiB 0.29 and 0.39 against 0.35 and 0.44), so 10 it
/// stays (docs/performance.md, 2026-12-05 evening).
const NICE_STEPS_BELOW_RELAY: i32 = 10;

/// Lowers the calling thread's priority (10 nice steps), for work that must leave the
/// CPU to the relay: the web inspector. Threads it starts afterwards inherit the priority.
pub fn yield_to_relay() {
    run_nicer_by(NICE_STEPS_BELOW_RELAY);
}

/// Lowers the calling thread's priority by `steps` from where it is (never raises it, so
/// a wstap started at nice 8 runs its sinks at 18, still below its relay), down to the
/// lowest, 19. Failing to lower it is harmless, so it is not reported.
#[allow(unsafe_code)]
fn run_nicer_by(steps: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: nice has no memory effects; on Linux it changes the calling thread only.
    unsafe {
        libc::nice(steps);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = steps;
}

/// What a sink's thread did, returned when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Events written in the batches before the first error (or in all).
    pub events: u64,
    /// The first error, if writing failed.
    pub error: Option<String>,
}

/// A relay publishes a session's records from a future per direction (both joined in the
/// session's task; its control branch publishes too, now and then): more publishers than
/// this waiting for a background sink means it holds up more than one session, or one
/// whose rules and commands publish besides its traffic.
const PUBLISHERS_PER_SESSION: usize = 2;

/// Starts a thread named `name` that feeds `sink` from `rx` until the bus closes, then
/// flushes and returns what it did.
///
/// A background sink gets a second thread, `name+`, at the relay's priority. It sleeps
/// until more publishers wait for the sink's backlog than one session has, and then
/// drains it in the sink's stead until they are that few again: a sink that holds up
/// many sessions is what the relay is waiting for, so it runs as the relay would. Only
/// one of the two threads writes at a time, in the bus's order. A sink that holds up a
/// single session (a stream of large messages) stays below the relay: lent the relay's
/// priority there, it drained in more, smaller rounds, and the 16 KiB rows read lower
/// (docs/performance.md, 2026-12-05 night). With more than one lossless subscriber (a
/// trace besides the capture) publishers take turns, one waits for room while the others
/// wait for their turn, and no relief thread starts: those sinks drain as before.
///
/// A panic in the sink (on either thread) ends both, and the receiver with them, so the
/// relay goes on without the sink; joining the returned thread yields the panic.
pub fn spawn<S: Sink>(
    name: &str,
    rx: LosslessReceiver,
    sink: S,
    cadence: Cadence,
) -> std::io::Result<JoinHandle<SinkStats>> {
    Ok(start(name, rx, sink, cadence)?.0)
}

/// [`spawn`], and what its threads share.
fn start<S: Sink>(
    name: &str,
    rx: LosslessReceiver,
    sink: S,
    cadence: Cadence,
) -> std::io::Result<(JoinHandle<SinkStats>, Arc<Shared<S>>)> {
    let backlog = rx.backlog();
    let shared = Arc::new(Shared {
        worker: Mutex::new(Worker {
            sink: Some(sink),
            rx,
            max_delay: cadence.max_delay,
            stats: SinkStats::default(),
            last_flush: Instant::now(),
            unflushed: false,
        }),
        relief_asked: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    let relief = if cadence.background {
        let (shared, backlog) = (Arc::clone(&shared), backlog.clone());
        Some(
            std::thread::Builder::new()
                .name(format!("{name}+"))
                .spawn(move || relieve(&shared, &backlog))?,
        )
    } else {
        None
    };
    let relief_thread = relief.as_ref().map(|relief| relief.thread().clone());
    let own = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let ending = EndsRelief {
                closed: &own.closed,
                relief: relief.as_ref().map(|relief| relief.thread().clone()),
            };
            if cadence.background {
                run_nicer_by(NICE_STEPS_BELOW_RELAY);
            }
            run(&own, &backlog, cadence.nap);
            drop(ending);
            if let Some(Err(panic)) = relief.map(JoinHandle::join) {
                std::panic::resume_unwind(panic);
            }
            let worker = own.worker.lock().unwrap_or_else(PoisonError::into_inner);
            worker.stats.clone()
        });
    match thread {
        Ok(thread) => Ok((thread, shared)),
        Err(e) => {
            // No sink thread: the relief thread ends too, and the receiver with the last
            // of them, so that no publisher waits for room that never comes.
            shared.closed.store(true, Ordering::Release);
            if let Some(relief) = relief_thread {
                relief.unpark();
            }
            Err(e)
        }
    }
}

/// What a sink's threads share.
struct Shared<S: Sink> {
    worker: Mutex<Worker<S>>,
    /// Set by the relief thread when it wants the worker: the sink's own thread hands it
    /// over after the batch it is writing.
    relief_asked: AtomicBool,
    /// Set when the sink's own thread ends (the bus closed, or the sink panicked) or
    /// could not start: the relief thread ends then too.
    closed: AtomicBool,
}

impl<S: Sink> Shared<S> {
    /// The worker, unless a thread panicked holding it: the sink is then left alone.
    fn worker(&self) -> Option<std::sync::MutexGuard<'_, Worker<S>>> {
        self.worker.lock().ok()
    }
}

/// Ends the relief thread when the sink's own thread ends, returning or panicking: the
/// relief thread then lets go of the receiver, and no publisher waits for it.
struct EndsRelief<'a> {
    closed: &'a AtomicBool,
    relief: Option<std::thread::Thread>,
}

impl Drop for EndsRelief<'_> {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        if let Some(relief) = &self.relief {
            relief.unpark();
        }
    }
}

/// The sink's own thread: rounds of draining the bus, a nap after each that caught up.
fn run<S: Sink>(shared: &Shared<S>, backlog: &Backlog, nap: Duration) {
    loop {
        let Some(mut worker) = shared.worker() else {
            return;
        };
        let end = worker.round(true, || shared.relief_asked.load(Ordering::Acquire));
        drop(worker);
        match end {
            Round::CaughtUp => backlog.nap(nap),
            Round::HandedOver => {
                // Until the relief thread has the worker: taking it back first would
                // only hand it over again after a batch.
                while shared.relief_asked.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
            }
            Round::Closed => return,
        }
    }
}

/// The relief thread: drains the bus at the relay's priority while the sink holds up
/// more than one session.
fn relieve<S: Sink>(shared: &Shared<S>, backlog: &Backlog) {
    let held_up_widely = || backlog.publishers_waiting() > PUBLISHERS_PER_SESSION;
    while !shared.closed.load(Ordering::Acquire) {
        backlog.park_until_waiting_above(PUBLISHERS_PER_SESSION);
        if !held_up_widely() {
            continue;
        }
        shared.relief_asked.store(true, Ordering::Release);
        let worker = shared.worker();
        shared.relief_asked.store(false, Ordering::Release);
        let Some(mut worker) = worker else {
            return;
        };
        if worker.round(false, || !held_up_widely()) == Round::Closed {
            return;
        }
    }
}

/// How a round of draining ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Nothing was left queued; what was written is flushed.
    CaughtUp,
    /// Stopped early for the other thread, which goes on where it stopped.
    HandedOver,
    /// The bus closed, and the sink with it.
    Closed,
}

/// The sink and the receiver feeding it, with what was done: whichever of a sink's
/// threads holds it drains the bus.
struct Worker<S: Sink> {
    /// `None` once closed.
    sink: Option<S>,
    rx: LosslessReceiver,
    max_delay: Duration,
    stats: SinkStats,
    last_flush: Instant,
    /// Something was written since the last flush.
    unflushed: bool,
}

impl<S: Sink> Worker<S> {
    /// Writes what the bus has queued, the first batch awaited if `wait` and there is
    /// none, until none is left (then flushes), the bus closes, or `hand_over` says the
    /// other thread goes on after the batch just written.
    fn round(&mut self, wait: bool, hand_over: impl Fn() -> bool) -> Round {
        if self.sink.is_none() {
            return Round::Closed;
        }
        let first = match self.rx.try_recv() {
            Some(batch) => batch,
            None => {
                // Caught up, maybe with batches the other thread wrote before it handed
                // over: they become durable before any wait.
                self.flush();
                if !wait {
                    return Round::CaughtUp;
                }
                match self.rx.blocking_recv() {
                    Some(batch) => batch,
                    None => {
                        self.close();
                        return Round::Closed;
                    }
                }
            }
        };
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            if let (None, Some(sink)) = (&self.stats.error, self.sink.as_mut()) {
                match sink.write_batch(&batch) {
                    Ok(()) => self.stats.events += batch.len() as u64,
                    Err(e) => fail(sink, &mut self.stats, e),
                }
                self.unflushed = true;
            }
            if self.last_flush.elapsed() >= self.max_delay {
                self.flush();
            }
            if hand_over() {
                return Round::HandedOver;
            }
            next = self.rx.try_recv();
        }
        // Caught up with the bus: everything written so far becomes durable now.
        self.flush();
        Round::CaughtUp
    }

    fn flush(&mut self) {
        if let (true, None, Some(sink)) = (self.unflushed, &self.stats.error, self.sink.as_mut()) {
            if let Err(e) = sink.flush() {
                fail(sink, &mut self.stats, e);
            }
        }
        self.unflushed = false;
        self.last_flush = Instant::now();
    }

    /// Closes the sink (flushing it), once.
    fn close(&mut self) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        if self.stats.error.is_none() {
            let what = sink.what();
            if let Err(e) = sink.close() {
                eprintln!("wstap: ERROR: finishing {what} failed: {e}");
                self.stats.error = Some(e.to_string());
            }
        }
    }
}

/// Records the first failure and says it once, loudly.
fn fail<S: Sink>(sink: &S, stats: &mut SinkStats, error: S::Error) {
    if stats.error.is_none() {
        eprintln!(
            "wstap: ERROR: writing {} failed: {error}. Traffic is still relayed, but its events are being lost there.",
            sink.what()
        );
        stats.error = Some(error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventBus;
    use std::sync::{Arc, Mutex};
    use wstap_trace::{BusEvent, Event, Notice};

    /// What a [`Memory`] sink was given.
    #[derive(Default)]
    struct Log {
        written: Vec<String>,
        flushes: usize,
    }

    /// A sink that keeps what it was given, and fails after `fail_after` writes.
    struct Memory {
        log: Arc<Mutex<Log>>,
        fail_after: usize,
    }

    impl Sink for Memory {
        type Error = String;

        fn what(&self) -> String {
            "memory".into()
        }

        fn write(&mut self, event: &BusEvent) -> Result<(), String> {
            let mut log = self.log.lock().unwrap();
            if log.written.len() == self.fail_after {
                return Err("full".into());
            }
            if let BusEvent::Event(e) = event {
                if let Event::Notice(n) = &**e {
                    log.written.push(n.message.clone());
                }
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), String> {
            self.log.lock().unwrap().flushes += 1;
            Ok(())
        }
    }

    fn notice(text: &str) -> Event {
        Event::Notice(Notice {
            time: chrono::DateTime::UNIX_EPOCH,
            message: text.into(),
        })
    }

    const CADENCE: Cadence = Cadence {
        nap: Duration::from_millis(1),
        max_delay: Duration::from_millis(100),
        background: false,
    };

    fn memory(fail_after: usize) -> (Memory, Arc<Mutex<Log>>) {
        let log = Arc::default();
        let sink = Memory {
            log: Arc::clone(&log),
            fail_after,
        };
        (sink, log)
    }

    #[tokio::test]
    async fn every_event_reaches_the_sink_in_order_and_is_flushed() {
        let mut bus = EventBus::new();
        let (sink, log) = memory(usize::MAX);
        let thread = spawn("test-sink", bus.subscribe_lossless(1 << 20), sink, CADENCE).unwrap();
        for i in 0..1000 {
            bus.publish_one(notice(&i.to_string())).await;
        }
        drop(bus);
        let stats = tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        assert_eq!(
            stats,
            SinkStats {
                events: 1000,
                error: None
            }
        );
        let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let log = log.lock().unwrap();
        assert_eq!(log.written, expected);
        assert!(log.flushes >= 1);
    }

    /// The calling thread's niceness.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn niceness() -> i32 {
        // SAFETY: getpriority reads the calling thread's priority and nothing else.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    /// The niceness a background sink's thread writes at, or a foreground one's.
    #[cfg(target_os = "linux")]
    async fn sink_niceness(background: bool) -> i32 {
        let mut bus = EventBus::new();
        let writes = Writes::default();
        let sink = Noting {
            writes: Arc::clone(&writes),
            gate: None,
        };
        let cadence = Cadence {
            background,
            ..CADENCE
        };
        let thread = spawn("test-sink", bus.subscribe_lossless(1 << 20), sink, cadence).unwrap();
        bus.publish_one(notice("which priority")).await;
        drop(bus);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        let writes = writes.lock().unwrap();
        writes.first().expect("the sink was written to").2
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_background_sink_and_the_inspector_run_steps_below_the_relay() {
        // Wherever the tests run (under `nice` too): steps below it, 19 at the lowest.
        let relay = niceness();
        assert_eq!(
            sink_niceness(true).await,
            (relay + NICE_STEPS_BELOW_RELAY).min(19)
        );
        assert_eq!(
            sink_niceness(false).await,
            relay,
            "a foreground sink keeps the relay's"
        );
        let inspector = std::thread::spawn(|| {
            yield_to_relay();
            niceness()
        });
        assert_eq!(
            inspector.join().unwrap(),
            (relay + NICE_STEPS_BELOW_RELAY).min(19)
        );
        assert_eq!(
            niceness(),
            relay,
            "the relay's own thread is left as it was"
        );
    }

    /// Far longer than any wait below takes, even on a loaded machine.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// Waits (a bounded time) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < PATIENCE, "never: {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Who wrote an event: its text, the writing thread's name and niceness.
    #[cfg(target_os = "linux")]
    type Writes = Arc<Mutex<Vec<(String, String, i32)>>>;

    /// A sink that notes who wrote each event; with a gate, it says when its first write
    /// begins (the gate's sender) and holds it until let go (its receiver).
    #[cfg(target_os = "linux")]
    struct Noting {
        writes: Writes,
        gate: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
    }

    #[cfg(target_os = "linux")]
    impl Sink for Noting {
        type Error = String;

        fn what(&self) -> String {
            "noting".into()
        }

        fn write(&mut self, event: &BusEvent) -> Result<(), String> {
            if let Some((entered, release)) = self.gate.take() {
                let _ = entered.send(());
                let _ = release.recv();
            }
            if let BusEvent::Event(e) = event {
                if let Event::Notice(n) = &**e {
                    let thread = std::thread::current().name().unwrap_or("").to_owned();
                    let written = (n.message.clone(), thread, niceness());
                    self.writes.lock().unwrap().push(written);
                }
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_holding_up_more_than_one_session_is_drained_at_the_relays_priority() {
        let relay = niceness();
        let heavy = |i: usize| format!("{i}{}", "x".repeat(2000));
        // Room for one heavy batch queued, not two.
        let one = crate::bus::weight(&[BusEvent::Event(Box::new(notice(&heavy(0))))]);
        let mut bus = EventBus::new();
        let rx = bus.subscribe_lossless(one * 3 / 2);
        let backlog = rx.backlog();
        let writes = Writes::default();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let sink = Noting {
            writes: Arc::clone(&writes),
            gate: Some((entered_tx, release_rx)),
        };
        let cadence = Cadence {
            background: true,
            ..CADENCE
        };
        let (thread, shared) = start("test-sink", rx, sink, cadence).unwrap();
        let bus = Arc::new(bus);
        bus.publish_one(notice("first")).await;
        tokio::task::spawn_blocking(move || entered.recv_timeout(PATIENCE))
            .await
            .unwrap()
            .expect("the sink's thread took the first batch");
        // The sink's thread is held in its first write: one heavy batch queues, the
        // next ones wait for room.
        bus.publish_one(notice(&heavy(0))).await;
        let publish = |i: usize| {
            let bus = Arc::clone(&bus);
            tokio::spawn(async move { bus.publish_one(notice(&heavy(i))).await })
        };
        let mut publishers = vec![publish(1), publish(2)];
        until("two publishers wait", || backlog.publishers_waiting() == 2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !shared.relief_asked.load(Ordering::Acquire),
            "as many waiting as one session has: the relief thread sleeps on"
        );
        publishers.push(publish(3));
        until("the relief thread asks for the sink", || {
            shared.relief_asked.load(Ordering::Acquire)
        })
        .await;
        release.send(()).unwrap();
        for publisher in publishers {
            tokio::time::timeout(PATIENCE, publisher)
                .await
                .expect("every publisher gets room")
                .unwrap();
        }
        drop(bus);
        let stats = tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        assert_eq!(stats.events, 5);
        let writes = writes.lock().unwrap();
        let below = (relay + NICE_STEPS_BELOW_RELAY).min(19);
        assert_eq!(writes[0], ("first".into(), "test-sink".into(), below));
        assert_eq!(
            writes[1],
            (heavy(0), "test-sink+".into(), relay),
            "the batch queued while three publishers waited is written by the relief thread, at the relay's priority"
        );
        let mut rest: Vec<&str> = writes[2..].iter().map(|w| &w.0[..1]).collect();
        rest.sort_unstable();
        assert_eq!(rest, ["1", "2", "3"], "every batch arrives, once");
    }

    #[tokio::test]
    async fn a_hand_over_comes_after_one_batch_and_what_it_left_is_flushed_before_a_wait() {
        let mut bus = EventBus::new();
        let (sink, log) = memory(usize::MAX);
        let mut worker = Worker {
            sink: Some(sink),
            rx: bus.subscribe_lossless(1 << 20),
            max_delay: PATIENCE,
            stats: SinkStats::default(),
            last_flush: Instant::now(),
            unflushed: false,
        };
        bus.publish_one(notice("one")).await;
        bus.publish_one(notice("two")).await;
        // The relief thread's rounds, each handing over after the batch it wrote.
        assert_eq!(worker.round(false, || true), Round::HandedOver);
        assert_eq!(log.lock().unwrap().written, ["one"]);
        assert_eq!(worker.round(false, || true), Round::HandedOver);
        assert_eq!(log.lock().unwrap().written, ["one", "two"]);
        assert_eq!(log.lock().unwrap().flushes, 0, "a hand-over does not flush");
        // The sink's own thread, with nothing queued: it flushes, then waits.
        let waiting = std::thread::spawn(move || worker.round(true, || false));
        until("what the relief thread wrote is flushed", || {
            log.lock().unwrap().flushes == 1
        })
        .await;
        assert!(!waiting.is_finished(), "it waits for the next batch");
        drop(bus);
        let end = tokio::task::spawn_blocking(move || waiting.join().unwrap())
            .await
            .unwrap();
        assert_eq!(end, Round::Closed);
    }

    /// A sink that panics when written to.
    struct Panics;

    impl Sink for Panics {
        type Error = String;

        fn what(&self) -> String {
            "panics".into()
        }

        fn write(&mut self, _: &BusEvent) -> Result<(), String> {
            panic!("a sink that panics (the test wants it)");
        }

        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panicking_background_sink_never_holds_up_the_publisher_and_its_thread_says_so() {
        let mut bus = EventBus::new();
        let cadence = Cadence {
            background: true,
            ..CADENCE
        };
        // A budget of one batch: with nobody draining, the 2nd publish would wait forever.
        let thread = spawn("test-sink", bus.subscribe_lossless(1), Panics, cadence).unwrap();
        for i in 0..100 {
            let publish = bus.publish_one(notice(&i.to_string()));
            tokio::time::timeout(PATIENCE, publish)
                .await
                .expect("the relay goes on without the sink");
        }
        drop(bus);
        let joined = tokio::task::spawn_blocking(move || thread.join())
            .await
            .unwrap();
        assert!(
            joined.is_err(),
            "joining the sink's thread yields its panic"
        );
    }

    #[tokio::test]
    async fn a_failing_sink_reports_once_and_never_holds_up_the_publisher() {
        let mut bus = EventBus::new();
        let (sink, log) = memory(3);
        // A budget of one batch: a sink that stopped draining would block the 2nd publish.
        let thread = spawn("test-sink", bus.subscribe_lossless(1), sink, CADENCE).unwrap();
        for i in 0..100 {
            let publish = bus.publish_one(notice(&i.to_string()));
            tokio::time::timeout(Duration::from_secs(5), publish)
                .await
                .expect("the bus is drained after the failure");
        }
        drop(bus);
        let stats = tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        assert_eq!(stats.events, 3);
        assert_eq!(stats.error.as_deref(), Some("full"));
        assert_eq!(log.lock().unwrap().written.len(), 3);
    }
}

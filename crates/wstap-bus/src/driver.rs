//! A lossless [`Sink`] on a thread of its own, fed by the bus.
//!
//! The thread hands every event to the sink in order. It makes what was written durable
//! ([`Sink::flush`]) whenever it has caught up with the bus, and at least every
//! [`Cadence::max_delay`] while it has not, so that a killed proxy leaves a trace whose
//! every complete line parses and a capture whose every committed transaction is there.
//! After catching up it naps for [`Cadence::nap`], so that a busy relay hands it many
//! batches per wake-up instead of waking it (and paying for a flush) for every one; a
//! backlog past half the budget ends the nap early ([`LosslessReceiver::nap`]).
//!
//! If writing fails (a full disk), the thread says so loudly once on stderr and keeps
//! draining the bus, so the relay never blocks on a dead sink; the stats it returns say
//! what reached the sink.

use crate::bus::LosslessReceiver;
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
    /// a waiting relay leaves it the CPU.
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

/// Starts a thread named `name` that feeds `sink` from `rx` until the bus closes, then
/// flushes and returns what it did.
pub fn spawn<S: Sink>(
    name: &str,
    rx: LosslessReceiver,
    sink: S,
    cadence: Cadence,
) -> std::io::Result<JoinHandle<SinkStats>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if cadence.background {
                run_nicer_by(NICE_STEPS_BELOW_RELAY);
            }
            run(sink, rx, cadence)
        })
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

fn flush<S: Sink>(sink: &mut S, stats: &mut SinkStats) {
    if stats.error.is_none() {
        if let Err(e) = sink.flush() {
            fail(sink, stats, e);
        }
    }
}

fn run<S: Sink>(mut sink: S, mut rx: LosslessReceiver, cadence: Cadence) -> SinkStats {
    let mut stats = SinkStats::default();
    let mut last_flush = Instant::now();
    while let Some(batch) = rx.blocking_recv() {
        let mut next = Some(batch);
        while let Some(batch) = next.take() {
            if stats.error.is_none() {
                match sink.write_batch(&batch) {
                    Ok(()) => stats.events += batch.len() as u64,
                    Err(e) => fail(&sink, &mut stats, e),
                }
            }
            if last_flush.elapsed() >= cadence.max_delay {
                flush(&mut sink, &mut stats);
                last_flush = Instant::now();
            }
            next = rx.try_recv();
        }
        // Caught up with the bus: everything written so far becomes durable now.
        flush(&mut sink, &mut stats);
        last_flush = Instant::now();
        rx.nap(cadence.nap);
    }
    if stats.error.is_none() {
        let what = sink.what();
        if let Err(e) = sink.close() {
            eprintln!("wstap: ERROR: finishing {what} failed: {e}");
            stats.error = Some(e.to_string());
        }
    }
    stats
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

    /// A sink that notes the niceness of the thread that writes to it.
    #[cfg(target_os = "linux")]
    struct Niceness(Arc<Mutex<Option<i32>>>);

    #[cfg(target_os = "linux")]
    impl Sink for Niceness {
        type Error = String;

        fn what(&self) -> String {
            "niceness".into()
        }

        fn write(&mut self, _: &BusEvent) -> Result<(), String> {
            *self.0.lock().unwrap() = Some(niceness());
            Ok(())
        }

        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    /// The niceness a background sink's thread writes at, or a foreground one's.
    #[cfg(target_os = "linux")]
    async fn sink_niceness(background: bool) -> i32 {
        let mut bus = EventBus::new();
        let seen = Arc::new(Mutex::new(None));
        let sink = Niceness(Arc::clone(&seen));
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
        let noted = *seen.lock().unwrap();
        noted.expect("the sink was written to")
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

//! Network conditions: what a bad network does to the stream to one side, at the
//! granularity of WebSocket frames.
//!
//! A stream with conditions ([`Command::Condition`]) sends what the relay queues for it
//! through a *line*: a delay queue of owned bytes, each piece with the time it is due.
//! Forwarded bytes are copied out of the chunk as it is fed and split where the analyzer
//! says frames end, so every frame is timed on its own and none is cut: a frame reaches
//! the receiver when its last byte would have over a link of the given bandwidth, plus
//! the latency (and a jitter drawn once per message), never before a frame sent earlier
//! (order is kept, as on TCP). The line is pipelined: reading goes on while pieces wait,
//! until the line holds its budget of bytes; then the sender is not read (backpressure,
//! as a slow network gives), so memory stays bounded. A paused line releases nothing
//! until the conditions change. A cut-off ends the connection after a number of messages
//! (the stream gets exactly those, whole) or after a time: at once without close frames
//! (a WebSocket client sees 1006), or with a close frame of a given code to each side.
//!
//! Untouched streams pay nothing: no line, no copy, no frame ends.
//!
//! [`Command::Condition`]: super::Command::Condition

use super::{Note, Queued, Relay};
use crate::Side;
use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};
use wstap_wire::mask::random_key;
use wstap_wire::FrameEnd;

/// Network conditions on the stream to one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// Added to the way of every frame.
    pub latency: Duration,
    /// Each message's latency varies by up to this much either way (never below zero),
    /// drawn once per message; order is kept.
    pub jitter: Duration,
    /// Bytes per second the stream carries at most: a frame arrives when its last byte
    /// would have over such a link (paced, never cut).
    pub bandwidth: Option<NonZeroU64>,
    /// Nothing goes to the side: frames queue (up to `budget`) until the conditions
    /// change.
    pub paused: bool,
    /// When the connection is cut, if ever.
    pub cutoff: Option<Cutoff>,
    /// Bytes the line holds before the sender is not read.
    pub budget: usize,
}

impl Default for Conditions {
    fn default() -> Conditions {
        Conditions {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth: None,
            paused: false,
            cutoff: None,
            budget: 16 << 20,
        }
    }
}

/// When and how a connection is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    /// When.
    pub after: After,
    /// How.
    pub cut: Cut,
}

/// When a cut-off comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Once this many data messages more have gone to the side: they arrive whole, and
    /// nothing read after them goes on.
    Messages(u64),
    /// This long after the conditions were set.
    Time(Duration),
}

/// How a connection is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// Both connections end at once, without close frames (a WebSocket client sees
    /// 1006), as when a network drops.
    Abort,
    /// A close frame with this code and reason goes to each side, as
    /// [`super::Command::Close`] sends it.
    Close {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
        /// How long to wait for a frame boundary and the writes.
        grace: Duration,
    },
}

/// One piece of the line and when it is due.
#[derive(Debug)]
struct Piece {
    due: Instant,
    queued: Queued,
}

/// The line of the stream to one side: see the module documentation.
#[derive(Debug)]
pub(super) struct Line {
    conditions: Conditions,
    /// Conditions were cleared: the line goes once what it holds has gone.
    retiring: bool,
    pieces: VecDeque<Piece>,
    /// Bytes the pieces hold.
    bytes: usize,
    /// When the link is free again (bandwidth).
    link_free: Option<Instant>,
    /// When the last piece is due: none is due before it.
    last_due: Option<Instant>,
    /// The jitter drawn for the message being admitted.
    jitter: Duration,
    /// Whether the last piece admitted ended inside a data message.
    mid_message: bool,
    rng: u64,
    /// Data messages admitted since the conditions were set.
    messages: u64,
    /// When a timed cut-off comes.
    cut_at: Option<Instant>,
    /// A cut-off reached: carried out once everything before it went, at the latest
    /// when this is due.
    cut_pending: Option<(Instant, Cut)>,
    /// A message cut-off's abort waits [`ABORT_LINGER`] after the stream's end went out.
    lingering: bool,
}

/// How long an abort after a number of messages waits once they and the end of the
/// stream went out: dropping the connection at once could reset it before the receiver
/// read the last of them (a reset discards what it has not read).
const ABORT_LINGER: Duration = Duration::from_millis(200);

impl Line {
    fn new(conditions: Conditions, now: Instant) -> Line {
        let [a, b, c, d] = random_key();
        let [e, f, g, h] = random_key();
        let mut line = Line {
            conditions: Conditions::default(),
            retiring: false,
            pieces: VecDeque::new(),
            bytes: 0,
            link_free: None,
            last_due: None,
            jitter: Duration::ZERO,
            mid_message: false,
            rng: u64::from_le_bytes([a, b, c, d, e, f, g, h]) | 1,
            messages: 0,
            cut_at: None,
            cut_pending: None,
            lingering: false,
        };
        line.set(conditions, now);
        line
    }

    fn set(&mut self, conditions: Conditions, now: Instant) {
        self.cut_at = match conditions.cutoff {
            Some(Cutoff {
                after: After::Time(after),
                ..
            }) => Some(now + after),
            _ => None,
        };
        self.messages = 0;
        self.retiring = false;
        self.conditions = conditions;
    }

    /// A number in `0..=bound` (xorshift: jitter needs spread, not secrecy).
    fn draw(&mut self, bound: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        match bound.checked_add(1) {
            Some(span) => self.rng % span,
            None => self.rng,
        }
    }

    /// When a piece of `len` bytes that arrived at `now` is due; `starts_message`: it
    /// begins a message (a new jitter is drawn).
    fn due(&mut self, len: usize, now: Instant, starts_message: bool) -> Instant {
        let mut due = now;
        if let Some(rate) = self.conditions.bandwidth {
            let start = self.link_free.map_or(now, |free| free.max(now));
            let nanos = (len as u128 * 1_000_000_000) / u128::from(rate.get());
            due = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            self.link_free = Some(due);
        }
        if starts_message && !self.conditions.jitter.is_zero() {
            let jitter = self.conditions.jitter.as_nanos() as u64;
            self.jitter = Duration::from_nanos(self.draw(2 * jitter));
        }
        due += self.conditions.latency;
        if !self.conditions.jitter.is_zero() {
            due = (due + self.jitter)
                .checked_sub(self.conditions.jitter)
                .map_or(due, |jittered| jittered.max(now));
        }
        // Order is kept: nothing overtakes what went before.
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        self.last_due = Some(due);
        due
    }

    fn push(&mut self, due: Instant, queued: Queued) {
        self.bytes += queued_len(&queued);
        self.pieces.push_back(Piece { due, queued });
    }

    /// Whether a data message cut-off is reached.
    fn cut_reached(&self) -> bool {
        matches!(
            self.conditions.cutoff,
            Some(Cutoff { after: After::Messages(n), .. }) if self.messages >= n
        )
    }

    /// The message cut-off, once reached: the rest is not admitted.
    fn reach_cut(&mut self, now: Instant) {
        if let Some(cutoff) = self.conditions.cutoff.take() {
            let due = self.last_due.map_or(now, |last| last.max(now));
            self.cut_pending = Some((due, cutoff.cut));
        }
    }

    /// Whether the first piece may go at `now`.
    fn head_due(&self, now: Instant) -> bool {
        !self.conditions.paused && self.pieces.front().is_some_and(|p| p.due <= now)
    }

    /// The next time after `now` something on the line falls due.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let piece = match self.conditions.paused {
            true => None,
            false => {
                let later = self.pieces.partition_point(|p| p.due <= now);
                self.pieces.get(later).map(|p| p.due)
            }
        };
        let cut = self
            .cut_at
            .into_iter()
            .chain(self.cut_pending.as_ref().map(|c| c.0));
        piece.into_iter().chain(cut).filter(|at| *at > now).min()
    }

    fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    fn clear(&mut self) {
        self.pieces.clear();
        self.bytes = 0;
    }
}

fn queued_len(queued: &Queued) -> usize {
    match queued {
        Queued::Forward(range) => range.len(),
        Queued::Close(bytes) | Queued::Inject(bytes) | Queued::Released(bytes) => bytes.len(),
        Queued::Shutdown => 0,
    }
}

/// How many data messages end in `bytes`, whole frames as read.
fn messages_in(bytes: &[u8]) -> u64 {
    super::frame_headers(bytes)
        .filter(|header| header.fin() && !header.opcode().is_control())
        .count() as u64
}

/// The lines of a relay's streams, and what they need to know.
#[derive(Debug)]
pub(super) struct Shaping {
    /// By destination side.
    lines: [Option<Line>; 2],
    /// Where frames ended in the chunk being fed (when interception does not keep them).
    pub ends: Vec<FrameEnd>,
    /// The time the relay was last told.
    clock: Instant,
    /// Cut-offs carried out, to tell.
    notes: Vec<Note>,
}

impl Relay {
    fn line(&self, to: Side) -> Option<&Line> {
        self.shaping.as_ref()?.lines[to.index()].as_ref()
    }

    fn line_mut(&mut self, to: Side) -> Option<&mut Line> {
        self.shaping.as_mut()?.lines[to.index()].as_mut()
    }

    /// Whether the stream to `to` goes through a line.
    pub(super) fn shaped(&self, to: Side) -> bool {
        self.line(to).is_some()
    }

    /// Whether any stream of the relay goes through a line: its deadlines change with
    /// every chunk fed, so the driver should ask for [`Relay::poll_timeout`] again.
    pub fn is_shaped(&self) -> bool {
        self.shaping.is_some()
    }

    /// The time is `now`, for the lines.
    pub(super) fn tell_time(&mut self, now: Instant) {
        if let Some(shaping) = self.shaping.as_mut() {
            shaping.clock = shaping.clock.max(now);
        }
    }

    /// The conditions on the stream to `to`, if any.
    pub fn conditions(&self, to: Side) -> Option<&Conditions> {
        self.line(to)
            .filter(|line| !line.retiring)
            .map(|line| &line.conditions)
    }

    /// Sets (or clears) the conditions on the stream to `to`, at `now`.
    pub(super) fn condition(&mut self, to: Side, conditions: Option<Conditions>, now: Instant) {
        let shaping = self.shaping.get_or_insert_with(|| {
            Box::new(Shaping {
                lines: [None, None],
                ends: Vec::new(),
                clock: now,
                notes: Vec::new(),
            })
        });
        shaping.clock = shaping.clock.max(now);
        let clock = shaping.clock;
        let slot = &mut shaping.lines[to.index()];
        match (slot.as_mut(), conditions) {
            (Some(line), Some(conditions)) => line.set(conditions, clock),
            (None, Some(conditions)) => *slot = Some(Line::new(conditions, clock)),
            (Some(line), None) => {
                line.set(Conditions::default(), clock);
                line.retiring = true;
            }
            (None, None) => {}
        }
        self.retire_lines();
        self.cut_due(now);
    }

    /// Lines whose conditions were cleared and that hold nothing go.
    fn retire_lines(&mut self) {
        let Some(shaping) = self.shaping.as_mut() else {
            return;
        };
        for (index, slot) in shaping.lines.iter_mut().enumerate() {
            let idle = self.in_flight[index].is_none() && self.queues[index].is_empty();
            if slot
                .as_ref()
                .is_some_and(|l| l.retiring && l.is_empty() && idle && l.cut_pending.is_none())
            {
                *slot = None;
            }
        }
        if shaping.lines.iter().all(Option::is_none) && shaping.notes.is_empty() {
            self.shaping = None;
        }
    }

    /// Moves what is queued for `to` onto its line; forwarded ranges are copied from
    /// `chunk`, the chunk being fed (and split where its frames end).
    pub(super) fn admit(&mut self, to: Side, chunk: Option<&[u8]>) {
        let from = to.other();
        // Without the chunk, ranges of it cannot be copied: what is queued goes out as
        // queued, and the line starts with what comes after it.
        if chunk.is_none() && self.forward_queued(to) {
            return;
        }
        let Some(shaping) = self.shaping.as_mut() else {
            return;
        };
        let clock = shaping.clock;
        let ends: &[FrameEnd] = match self.intercept.as_ref() {
            Some(intercept) => &intercept.ends,
            None => &shaping.ends,
        };
        let Some(line) = shaping.lines[to.index()].as_mut() else {
            return;
        };
        let queue = &mut self.queues[to.index()];
        let mut dropped = 0;
        let mut cut = false;
        while let Some(queued) = queue.pop_front() {
            if cut {
                // Past a cut-off nothing goes on; the cut ends the stream.
                dropped += queued_len(&queued) as u64;
                continue;
            }
            match queued {
                Queued::Forward(range) => {
                    let Some(chunk) = chunk else {
                        debug_assert!(false, "a forwarded range without its chunk");
                        continue;
                    };
                    // One piece per frame that ends in the range, and one for the rest.
                    let mut cuts: Vec<(usize, bool, bool)> = ends
                        .iter()
                        .filter(|end| end.offset > range.start && end.offset <= range.end)
                        .map(|end| (end.offset, end.message_open, end.ends_message))
                        .collect();
                    if cuts.last().is_none_or(|last| last.0 < range.end) {
                        cuts.push((range.end, true, false));
                    }
                    let mut start = range.start;
                    for (end, open, ends_message) in cuts {
                        let Some(piece) = chunk.get(start..end) else {
                            break;
                        };
                        let due = line.due(piece.len(), clock, !line.mid_message);
                        line.push(due, Queued::Released(piece.to_vec()));
                        line.mid_message = open;
                        start = end;
                        if ends_message {
                            line.messages += 1;
                            if line.cut_reached() {
                                line.reach_cut(clock);
                                dropped += (range.end - start) as u64;
                                cut = true;
                                break;
                            }
                        }
                    }
                }
                Queued::Released(bytes) => {
                    let due = line.due(bytes.len(), clock, !line.mid_message);
                    line.messages += messages_in(&bytes);
                    line.push(due, Queued::Released(bytes));
                    if line.cut_reached() {
                        line.reach_cut(clock);
                        cut = true;
                    }
                }
                other => {
                    let due = line.due(queued_len(&other), clock, false);
                    line.push(due, other);
                }
            }
        }
        if cut {
            self.lanes[from.index()].note_dropped(dropped, false);
            let lane = &mut self.lanes[from.index()];
            if lane.is_reading() {
                lane.reading = crate::lane::Reading::Stopped;
            }
        }
    }

    /// Admits what waits for every line (nothing forwarded: no chunk is at hand).
    pub(super) fn admit_all(&mut self) {
        if self.shaping.is_some() {
            for to in [Side::Client, Side::Server] {
                self.admit(to, None);
            }
        }
    }

    /// The next piece due for `to` now, off its line; `None` when nothing is due (or the
    /// stream has no line: then `Some(None)` is not returned either, see
    /// [`Relay::poll_transmit`]).
    pub(super) fn take_due(&mut self, to: Side) -> Option<Queued> {
        let clock = self.shaping.as_ref()?.clock;
        let line = self.line_mut(to)?;
        if !line.head_due(clock) {
            return None;
        }
        let piece = line.pieces.pop_front()?;
        line.bytes -= queued_len(&piece.queued);
        Some(piece.queued)
    }

    /// Whether something on the line to `to` may go now.
    pub(super) fn line_due(&self, to: Side) -> bool {
        let Some(shaping) = self.shaping.as_ref() else {
            return false;
        };
        self.line(to)
            .is_some_and(|line| line.head_due(shaping.clock))
    }

    /// Whether the line to `to` holds anything.
    pub(super) fn line_holds(&self, to: Side) -> bool {
        self.line(to).is_some_and(|line| !line.is_empty())
    }

    /// Whether the line to `to` holds its budget: its sender is not read.
    pub(super) fn line_full(&self, to: Side) -> bool {
        self.line(to)
            .is_some_and(|line| line.bytes >= line.conditions.budget)
    }

    /// When something on a line falls due next.
    pub(super) fn lines_deadline(&self) -> Option<Instant> {
        let shaping = self.shaping.as_ref()?;
        shaping
            .lines
            .iter()
            .flatten()
            .filter_map(|line| line.next_due(shaping.clock))
            .min()
    }

    /// Drops what the lines hold: the relay ended at once.
    pub(super) fn clear_lines(&mut self) {
        if let Some(shaping) = self.shaping.as_mut() {
            for line in shaping.lines.iter_mut().flatten() {
                line.clear();
                line.cut_pending = None;
                line.cut_at = None;
            }
        }
    }

    /// Carries out a cut-off that is due at `now`: a timed one, or one reached whose
    /// line has gone out.
    pub(super) fn cut_due(&mut self, now: Instant) {
        self.tell_time(now);
        let mut ended = Vec::new();
        let mut cuts = Vec::new();
        let Some(shaping) = self.shaping.as_mut() else {
            return;
        };
        for (index, slot) in shaping.lines.iter_mut().enumerate() {
            let Some(line) = slot.as_mut() else {
                continue;
            };
            let to = [Side::Client, Side::Server][index];
            if line.cut_at.is_some_and(|at| at <= now) {
                line.cut_at = None;
                if let Some(cutoff) = line.conditions.cutoff.take() {
                    cuts.push((to, cutoff.cut, true));
                }
            }
            let written = line.is_empty() && self.in_flight[index].is_none();
            if written && line.cut_pending.as_ref().is_some_and(|(at, _)| *at <= now) {
                match line.cut_pending.take() {
                    // The messages went out: end the stream after them, and drop the
                    // connections once the receiver had time to read them.
                    Some((_, Cut::Abort)) if !line.lingering => {
                        line.lingering = true;
                        line.cut_pending = Some((now + ABORT_LINGER, Cut::Abort));
                        ended.push(to);
                    }
                    // A lingering abort was told when the stream ended.
                    Some((_, cut)) => cuts.push((to, cut, !line.lingering)),
                    None => {}
                }
            }
        }
        // The cut is decided when the stream ends: told then, even if the peers end the
        // session before the linger is over.
        for to in ended {
            self.end_stream(to, None);
            if let Some(shaping) = self.shaping.as_mut() {
                shaping.notes.push(Note::CutOff {
                    to,
                    cut: Cut::Abort,
                });
            }
        }
        // Both ways' conditions cut at once (a timed cut-off of `to:both`): once.
        cuts.dedup_by(|later, earlier| later.1 == earlier.1);
        for (to, cut, tell) in cuts {
            if self.aborted {
                break;
            }
            if let Some(shaping) = self.shaping.as_mut().filter(|_| tell) {
                shaping.notes.push(Note::CutOff {
                    to,
                    cut: cut.clone(),
                });
            }
            match cut {
                Cut::Abort => {
                    self.commanded_abort = true;
                    self.abort();
                }
                Cut::Close {
                    code,
                    reason,
                    grace,
                } => {
                    // The close frames wait behind what the lines hold: their grace
                    // starts once they can arrive.
                    let grace = grace + self.lines_lag(now);
                    for side in [Side::Client, Side::Server] {
                        self.close(side, code, &reason, now, grace);
                    }
                }
            }
        }
        self.admit_all();
    }

    /// How long from `now` until a frame queued now on the slower line could arrive:
    /// what that line holds, then its latency and jitter.
    fn lines_lag(&self, now: Instant) -> Duration {
        let Some(shaping) = self.shaping.as_ref() else {
            return Duration::ZERO;
        };
        shaping
            .lines
            .iter()
            .flatten()
            .map(|line| {
                let backlog = line
                    .last_due
                    .map_or(Duration::ZERO, |last| last.saturating_duration_since(now));
                backlog + line.conditions.latency + line.conditions.jitter
            })
            .max()
            .unwrap_or_default()
    }

    /// Takes the cut-offs carried out since the last call.
    pub(super) fn drain_line_notes(&mut self) -> Vec<Note> {
        self.shaping
            .as_mut()
            .map(|shaping| std::mem::take(&mut shaping.notes))
            .unwrap_or_default()
    }

    /// Whether a cut-off waits to be told.
    pub(super) fn has_line_notes(&self) -> bool {
        self.shaping.as_ref().is_some_and(|s| !s.notes.is_empty())
    }

    /// After a piece to `to` was written: a cut-off may be due, a retired line may go.
    pub(super) fn line_written(&mut self) {
        let Some(clock) = self.shaping.as_ref().map(|s| s.clock) else {
            return;
        };
        self.cut_due(clock);
        self.retire_lines();
    }
}

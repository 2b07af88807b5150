//! Per-direction analysis: frames and messages with every violation, bounded memory.
//!
//! A [`StreamAnalyzer`] drives a [`FrameDecoder`] for one direction and turns what it
//! finds into [`Record`]s: a [`FrameRecord`] as each frame ends, and a [`MessageRecord`]
//! as each message ends (first data frame plus its continuations; every control frame is
//! a message of its own). It applies the rules of RFC 6455 sections 5 and 8 and RFC 7692,
//! records what breaks them as [`Violation`]s, and never stops.
//!
//! Payload is *captured* up to configured limits for display; beyond them only counts are
//! kept. UTF-8 validation and inflation see every byte, so verdicts and inflated sizes stay
//! exact however large a message is.
//!
//! [`StreamAnalyzer::judge`] is the same analysis for a relay that withholds what breaks
//! the protocol: it stops after the first offending frame and says where in the chunk that
//! frame began, so everything before it can be forwarded and nothing after it is decoded.
//! [`StreamAnalyzer::feed_marking_ends`] also says where in the chunk each frame ended and
//! whether a data message was still open there, for a relay that holds or adds messages
//! only between them (RFC 6455 section 5.4).
//!
//! Chunks are only read, never changed: a relay decides about bytes and then forwards them
//! exactly as read.

use crate::close::CloseFrame;
use crate::decoder::{FrameDecoder, FrameHandler, Progress};
use crate::deflate::{DeflateParams, Inflater};
use crate::header::{FrameHeader, LengthEncoding, Opcode};
use crate::utf8::{FinishedUtf8, Utf8State, Utf8Validator};
use crate::violation::Violation;
use crate::{Direction, Timestamp};
use bytes::Bytes;
use std::ops::ControlFlow;

/// How a [`StreamAnalyzer`] should read its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyzerConfig {
    /// Payload bytes kept per frame (control frames always keep up to 125).
    pub max_frame_capture: usize,
    /// Bytes kept per message (inflated bytes for compressed messages).
    pub max_message_capture: usize,
    /// permessage-deflate, when the handshake accepted it.
    pub deflate: Option<DeflateParams>,
    /// RSV bits (as in the first byte: `0x40 | 0x20 | 0x10`) that negotiated extensions
    /// other than permessage-deflate may use; frames using them are not flagged.
    pub other_extension_bits: u8,
}

impl AnalyzerConfig {
    /// How many payload bytes a frame record keeps: control frames at least 125, all of a
    /// valid one's.
    fn frame_limit(&self, header: &FrameHeader) -> usize {
        if header.opcode().is_control() {
            self.max_frame_capture.max(125)
        } else {
            self.max_frame_capture
        }
    }
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            max_frame_capture: 64 * 1024,
            max_message_capture: 64 * 1024,
            deflate: None,
            other_extension_bits: 0,
        }
    }
}

/// Some bytes of a longer stream, and how long the whole was.
///
/// The bytes are shared, not copied, where two records hold the same: a message of one
/// frame holds (a prefix of) that frame's payload, or of its inflated data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capture {
    /// The first bytes, up to the capture limit.
    pub data: Bytes,
    /// How many bytes there were in all.
    pub total: u64,
}

/// The most a capture reserves before its bytes arrive: a header may claim any length, so
/// a peer that sends one and stalls makes the session hold at most this much per buffer.
const RESERVE_MAX: usize = 16 * 1024;

/// The payload length a frame's header announces, as far as it is worth reserving for: a
/// control frame's is at most 125 bytes when valid.
fn expected_payload(header: &FrameHeader) -> u64 {
    if header.opcode().is_control() {
        header.payload_len().min(125)
    } else {
        header.payload_len()
    }
}

impl Capture {
    /// Whether bytes beyond `data` were left out.
    pub fn truncated(&self) -> bool {
        self.total > self.data.len() as u64
    }

    /// The same bytes cut at `limit`, without copying them.
    fn prefix(&self, limit: usize) -> Capture {
        Capture {
            data: self.data.slice(..self.data.len().min(limit)),
            total: self.total,
        }
    }
}

/// A capture being filled as a frame's or a message's bytes arrive.
#[derive(Debug, Default)]
struct Filling {
    data: Vec<u8>,
    total: u64,
}

impl Filling {
    /// An empty capture with room for the `expected` bytes it will keep (at most `limit`),
    /// so that a payload arriving in pieces is not copied again as the buffer grows.
    fn expecting(expected: u64, limit: usize) -> Self {
        let room = usize::try_from(expected).unwrap_or(usize::MAX);
        Filling {
            data: Vec::with_capacity(room.min(limit).min(RESERVE_MAX)),
            total: 0,
        }
    }

    /// Keeps what `limit` leaves room for of `bytes`, and counts them all.
    fn push(&mut self, bytes: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.data.len());
        self.data.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.total += bytes.len() as u64;
    }

    /// The capture, filled. Its buffer is cut to its length first (a no-op for the common
    /// payload that arrived as announced; glibc usually shrinks in place otherwise): a
    /// capture's memory is then its length, which is what the bus weighs.
    fn done(mut self) -> Capture {
        self.data.shrink_to_fit();
        Capture {
            data: Bytes::from(self.data),
            total: self.total,
        }
    }
}

/// What inflating a compressed frame's payload produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inflated {
    /// The inflated bytes this frame yielded (the last frame includes the message tail).
    pub data: Capture,
}

/// One frame, as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// Which way the frame went.
    pub direction: Direction,
    /// 0-based number of the frame in its direction.
    pub index: u64,
    /// When the frame's first byte arrived.
    pub time: Timestamp,
    /// When its last byte arrived.
    pub end_time: Timestamp,
    /// The header, bit for bit.
    pub header: FrameHeader,
    /// The unmasked payload (still compressed when RSV1 marks it so).
    pub payload: Capture,
    /// Code and reason, on close frames.
    pub close: Option<CloseFrame>,
    /// Inflated data, on frames of a compressed message.
    pub inflated: Option<Inflated>,
    /// Every rule this frame breaks.
    pub violations: Vec<Violation>,
}

/// One message: a data frame and its continuations, or one control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Which way the message went.
    pub direction: Direction,
    /// The opcode of its first frame.
    pub opcode: Opcode,
    /// Number of frames.
    pub frames: u64,
    /// When its first byte arrived.
    pub first_time: Timestamp,
    /// When its last byte arrived.
    pub last_time: Timestamp,
    /// Whether it was compressed (RSV1 on the first frame under permessage-deflate).
    pub compressed: bool,
    /// Payload bytes on the wire, summed over its frames.
    pub wire_payload_len: u64,
    /// The message data (inflated when compressed), captured up to the limit; `total` is
    /// the full data length. A message of one frame holds what that frame's record holds
    /// (`payload`, or `inflated` when compressed), cut at the smaller of the two limits: of
    /// equal length, they are the same bytes, and where the message's limit is no larger
    /// than the frame's they share one buffer.
    pub data: Capture,
    /// Violations about the message as a whole (UTF-8, inflation).
    pub violations: Vec<Violation>,
    /// Whether the message was cut short by a new data frame or the end of the stream.
    pub incomplete: bool,
}

/// A frame ended, or a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A frame ended.
    Frame(FrameRecord),
    /// A message ended (after the record of its last frame).
    Message(MessageRecord),
}

/// What was left of a frame when the stream ended in its middle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialFrame {
    /// Only `received` of `needed` header bytes arrived.
    Header {
        /// Header bytes that arrived.
        received: usize,
        /// Header bytes the frame needed, as far as those tell.
        needed: usize,
    },
    /// The header arrived, and `received` of its payload bytes.
    Payload {
        /// The frame's header.
        header: FrameHeader,
        /// Payload bytes that arrived.
        received: u64,
        /// What its header already broke.
        violations: Vec<Violation>,
    },
}

/// What [`StreamAnalyzer::judge`] found in one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// How many bytes at the start of the chunk break nothing: they may be forwarded.
    pub clean: usize,
    /// The first frame that breaks the protocol, if any; it and everything after it in
    /// the chunk is withheld.
    pub offence: Option<Offence>,
}

/// A frame that breaks the protocol, as [`StreamAnalyzer::judge`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offence {
    /// The first rule it breaks.
    pub violation: Violation,
    /// Its 0-based index in this direction.
    pub index: u64,
    /// Whether it begins in the judged chunk. When it does, the clean bytes end exactly
    /// where it begins, between frames; when it does not, its first bytes were in an
    /// earlier chunk that broke nothing yet, so the receiver has part of it.
    pub begins_in_chunk: bool,
}

/// Where a frame ended in a chunk, as [`StreamAnalyzer::feed_marking_ends`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEnd {
    /// The index just past the frame's last byte in the chunk.
    pub offset: usize,
    /// Whether a fragmented data message is still open after this frame: a message of
    /// one's own may be written here only when none is.
    pub message_open: bool,
    /// Whether this frame ended a data message (its last frame, FIN set).
    pub ends_message: bool,
}

/// The frame being read. Its record's `payload` and `inflated` are filled in when it ends.
#[derive(Debug)]
struct OpenFrame {
    record: FrameRecord,
    payload: Filling,
    /// On a frame of a compressed message.
    inflated: Option<Filling>,
    /// Whether its payload belongs to the open data message.
    data: bool,
}

impl OpenFrame {
    /// The frame's record, with what it captured so far.
    fn into_record(self) -> FrameRecord {
        let mut record = self.record;
        record.payload = self.payload.done();
        record.inflated = self.inflated.map(|inflated| Inflated {
            data: inflated.done(),
        });
        record
    }
}

/// The data message being assembled. Its record's `data` is filled in when it ends.
#[derive(Debug)]
struct OpenMessage {
    record: MessageRecord,
    data: Filling,
    /// A message of one frame, whose data is a prefix of that frame's capture (its payload,
    /// or its inflated data when compressed): shared when the frame ends, not gathered.
    shares_frame: bool,
    utf8: Option<Utf8Validator>,
    /// Set once invalid UTF-8 has been reported, on the frame that carried it.
    utf8_reported: bool,
}

impl OpenMessage {
    /// The record of the message, ended with `frame`'s record when that frame is its
    /// last and complete (a message that shares its frame's bytes takes them from it).
    fn into_record(self, frame: Option<&FrameRecord>, config: &AnalyzerConfig) -> MessageRecord {
        let mut record = self.record;
        record.data = match (self.shares_frame, frame) {
            (true, Some(frame)) => {
                let kept = match record.compressed {
                    true => frame.inflated.as_ref().map(|inflated| &inflated.data),
                    false => Some(&frame.payload),
                };
                kept.map(|kept| kept.prefix(config.max_message_capture))
                    .unwrap_or_default()
            }
            _ => self.data.done(),
        };
        record
    }

    /// Reports invalid UTF-8 on `frame` as soon as a byte makes the message invalid.
    fn check_utf8(&mut self, frame: &mut FrameRecord) {
        let invalid = self
            .utf8
            .as_ref()
            .is_some_and(|u| u.state() == Utf8State::Invalid);
        if invalid && !self.utf8_reported {
            self.utf8_reported = true;
            frame.violations.push(Violation::InvalidUtf8);
            self.record.violations.push(Violation::InvalidUtf8);
        }
    }
}

/// Analyses one direction of one WebSocket connection: see the module documentation.
#[derive(Debug)]
pub struct StreamAnalyzer {
    decoder: FrameDecoder,
    state: AnalyzerState,
}

#[derive(Debug)]
struct AnalyzerState {
    direction: Direction,
    config: AnalyzerConfig,
    allowed_rsv: u8,
    inflater: Option<Inflater>,
    frames_seen: u64,
    close_seen: bool,
    frame: Option<OpenFrame>,
    message: Option<OpenMessage>,
    /// A control frame's own message, collected beside the open data message.
    control: Option<OpenMessage>,
    /// Whole inflated messages, kept on request ([`StreamAnalyzer::keep_whole`]).
    whole: Option<Box<Whole>>,
}

/// The whole inflated data of compressed messages, beyond any capture limit: what a
/// relay needs to compress them again for a receiver whose context differs. One entry
/// per compressed message record, in order (empty for one the relay gave up on; only
/// what came of one cut short).
#[derive(Debug, Default)]
struct Whole {
    /// Of the compressed message being read.
    current: Vec<u8>,
    /// The relay gave up on the message being read: its data is not kept.
    skipping: bool,
    /// Of those that ended, oldest first.
    done: std::collections::VecDeque<Vec<u8>>,
}

/// Where the data of the compressed message being read goes, when it is kept.
fn kept_whole(whole: &mut Option<Box<Whole>>) -> Option<&mut Vec<u8>> {
    whole
        .as_deref_mut()
        .filter(|w| !w.skipping)
        .map(|w| &mut w.current)
}

impl AnalyzerState {
    /// A compressed message ended (whole or cut short): its data joins those kept.
    fn end_whole(&mut self) {
        if let Some(whole) = self.whole.as_deref_mut() {
            let data = std::mem::take(&mut whole.current);
            whole.skipping = false;
            whole.done.push_back(data);
        }
    }
}

impl StreamAnalyzer {
    /// An analyzer for `direction` at the start of the stream.
    pub fn new(direction: Direction, config: AnalyzerConfig) -> Self {
        let deflate_bit = if config.deflate.is_some() { 0x40 } else { 0 };
        StreamAnalyzer {
            decoder: FrameDecoder::new(),
            state: AnalyzerState {
                direction,
                allowed_rsv: deflate_bit | (config.other_extension_bits & 0x70),
                inflater: config
                    .deflate
                    .map(|params| Inflater::new(params.no_context_takeover(direction))),
                config,
                frames_seen: 0,
                close_seen: false,
                frame: None,
                message: None,
                control: None,
                whole: None,
            },
        }
    }

    /// From the next compressed message on (and the rest of the one being read), keeps
    /// each one's whole inflated data, whatever the capture limits, until
    /// [`StreamAnalyzer::take_whole`] takes it.
    pub fn keep_whole(&mut self) {
        self.state.whole.get_or_insert_with(Box::default);
    }

    /// Keeps no more whole messages (dropping those not taken).
    pub fn stop_keeping_whole(&mut self) {
        self.state.whole = None;
    }

    /// How much of the compressed message being read is kept whole so far.
    pub fn whole_so_far(&self) -> usize {
        self.state.whole.as_ref().map_or(0, |w| w.current.len())
    }

    /// Keeps nothing more of the compressed message being read, if one is (its entry
    /// will be empty).
    pub fn skip_whole(&mut self) {
        let compressed = self
            .state
            .message
            .as_ref()
            .is_some_and(|m| m.record.compressed);
        if let Some(whole) = self.state.whole.as_deref_mut().filter(|_| compressed) {
            whole.current = Vec::new();
            whole.skipping = true;
        }
    }

    /// The whole inflated data of the oldest compressed message that ended and was not
    /// taken yet, when [`StreamAnalyzer::keep_whole`] asked for it.
    pub fn take_whole(&mut self) -> Option<Vec<u8>> {
        self.state.whole.as_mut()?.done.pop_front()
    }

    /// The direction this analyzer reads.
    pub fn direction(&self) -> Direction {
        self.state.direction
    }

    /// Whether the stream is between frames (nothing of a next frame has arrived), so a
    /// new frame could be written into it without corrupting one.
    pub fn at_frame_boundary(&self) -> bool {
        self.decoder.progress() == Progress::Idle
    }

    /// Number of complete frames seen so far.
    pub fn frames_seen(&self) -> u64 {
        self.state.frames_seen
    }

    /// Whether a fragmented data message is open (its final frame has not arrived).
    pub fn message_open(&self) -> bool {
        self.state.message.is_some()
    }

    /// Analyses `chunk`, which arrived at `time`, appending records to `out`.
    pub fn feed(&mut self, chunk: &[u8], time: Timestamp, out: &mut Vec<Record>) {
        let mut sink = Sink {
            state: &mut self.state,
            out,
            judge: None,
            ends: None,
        };
        self.decoder.feed(chunk, time, &mut sink);
    }

    /// Analyses `chunk` as [`StreamAnalyzer::feed`] does, and appends to `ends` where in
    /// it each frame ended.
    pub fn feed_marking_ends(
        &mut self,
        chunk: &[u8],
        time: Timestamp,
        out: &mut Vec<Record>,
        ends: &mut Vec<FrameEnd>,
    ) {
        let mut sink = Sink {
            state: &mut self.state,
            out,
            judge: None,
            ends: Some(ends),
        };
        self.decoder.feed(chunk, time, &mut sink);
    }

    /// Analyses `chunk` as [`StreamAnalyzer::feed`] does, but stops after the first frame
    /// that breaks the protocol: records go to `out` for the frames before it and for it
    /// (if it ends in the chunk), and none for anything after it, which is never decoded.
    /// A frame whose header is complete and already breaks a rule counts as offending even
    /// when its payload continues in a later chunk.
    pub fn judge(&mut self, chunk: &[u8], time: Timestamp, out: &mut Vec<Record>) -> Verdict {
        self.judge_into(chunk, time, out, None)
    }

    /// Judges `chunk` as [`StreamAnalyzer::judge`] does, and appends to `ends` where in it
    /// each frame it decoded ended.
    pub fn judge_marking_ends(
        &mut self,
        chunk: &[u8],
        time: Timestamp,
        out: &mut Vec<Record>,
        ends: &mut Vec<FrameEnd>,
    ) -> Verdict {
        self.judge_into(chunk, time, out, Some(ends))
    }

    fn judge_into(
        &mut self,
        chunk: &[u8],
        time: Timestamp,
        out: &mut Vec<Record>,
        ends: Option<&mut Vec<FrameEnd>>,
    ) -> Verdict {
        let mut judge = Judge {
            next_start: self.at_frame_boundary().then_some(0),
            current_start: None,
            offence: None,
        };
        // A frame already open when the chunk arrives began in an earlier chunk.
        let mut sink = Sink {
            state: &mut self.state,
            out,
            judge: Some(&mut judge),
            ends,
        };
        self.decoder.feed(chunk, time, &mut sink);
        if judge.offence.is_none() {
            if let Some(frame) = self.state.frame.as_ref() {
                if let Some(violation) = frame.record.violations.first() {
                    judge.offence = Some((
                        judge.current_start,
                        Offence {
                            violation: violation.clone(),
                            index: frame.record.index,
                            begins_in_chunk: judge.current_start.is_some(),
                        },
                    ));
                }
            }
        }
        match judge.offence {
            Some((start, offence)) => Verdict {
                clean: start.unwrap_or(0),
                offence: Some(offence),
            },
            None => Verdict {
                clean: chunk.len(),
                offence: None,
            },
        }
    }

    /// Ends the stream. Returns what arrived of a frame cut off mid-way, if any, and
    /// appends a record for a message left open (marked incomplete) to `out`.
    pub fn finish(&mut self, time: Timestamp, out: &mut Vec<Record>) -> Option<PartialFrame> {
        let partial = match self.decoder.progress() {
            Progress::Idle => None,
            Progress::InHeader { received, needed } => {
                Some(PartialFrame::Header { received, needed })
            }
            Progress::InPayload { header, received } => Some(PartialFrame::Payload {
                header,
                received,
                violations: self
                    .state
                    .frame
                    .as_mut()
                    .map(|f| std::mem::take(&mut f.record.violations))
                    .unwrap_or_default(),
            }),
        };
        let cut = self.state.frame.take();
        if let Some(mut message) = self.state.message.take() {
            message.record.incomplete = true;
            message.record.last_time = time;
            if message.record.compressed {
                self.state.end_whole();
            }
            // What arrived of the frame it shares is its data.
            let cut = cut.map(OpenFrame::into_record);
            let record = message.into_record(cut.as_ref(), &self.state.config);
            out.push(Record::Message(record));
        }
        partial
    }
}

struct Sink<'a> {
    state: &'a mut AnalyzerState,
    out: &'a mut Vec<Record>,
    /// Set by [`StreamAnalyzer::judge`]: stop after the first offending frame.
    judge: Option<&'a mut Judge>,
    /// Set by [`StreamAnalyzer::feed_marking_ends`]: where frames end.
    ends: Option<&'a mut Vec<FrameEnd>>,
}

/// Where the frames of a judged chunk begin, and the first one that offends.
struct Judge {
    /// Where the next frame begins in the chunk (`None`: in an earlier chunk).
    next_start: Option<usize>,
    /// Where the frame being read began.
    current_start: Option<usize>,
    /// The first offending frame and where it began.
    offence: Option<(Option<usize>, Offence)>,
}

impl FrameHandler for Sink<'_> {
    fn header(&mut self, header: &FrameHeader, time: Timestamp) {
        if let Some(judge) = self.judge.as_deref_mut() {
            judge.current_start = judge.next_start;
        }
        self.state.begin_frame(header, time, self.out);
    }

    fn payload(&mut self, data: &[u8]) {
        self.state.payload(data);
    }

    fn wants_bytes(&self) -> bool {
        self.state.wants_bytes()
    }

    fn skipped(&mut self, len: usize) {
        self.state.skipped(len);
    }

    fn end(&mut self, time: Timestamp, offset: usize) -> ControlFlow<()> {
        let ends_message = self
            .state
            .frame
            .as_ref()
            .is_some_and(|frame| frame.data && frame.record.header.fin());
        let broken = self.state.end_frame(time, self.out);
        if let Some(ends) = self.ends.as_deref_mut() {
            ends.push(FrameEnd {
                offset,
                message_open: self.state.message.is_some(),
                ends_message,
            });
        }
        let Some(judge) = self.judge.as_deref_mut() else {
            return ControlFlow::Continue(());
        };
        judge.next_start = Some(offset);
        match broken {
            Some(offence) => {
                let begins_in_chunk = judge.current_start.is_some();
                judge.offence = Some((
                    judge.current_start,
                    Offence {
                        begins_in_chunk,
                        ..offence
                    },
                ));
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

impl AnalyzerState {
    fn begin_frame(&mut self, header: &FrameHeader, time: Timestamp, out: &mut Vec<Record>) {
        let mut violations = self.header_violations(header);
        let opcode = header.opcode();
        let is_data_start = matches!(opcode, Opcode::Text | Opcode::Binary);
        let mut data = false;

        if self.close_seen {
            violations.push(Violation::FrameAfterClose);
        }
        if opcode == Opcode::Continuation {
            if self.message.is_none() {
                violations.push(Violation::ContinuationWithoutMessage);
                // Read it as a message of its own, so its payload is still shown.
                self.message = Some(self.open_message(header, time, false));
            }
            data = true;
        } else if is_data_start {
            if let Some(mut cut) = self.message.take() {
                violations.push(Violation::DataFrameInsideFragmentedMessage);
                cut.record.incomplete = true;
                if cut.record.compressed {
                    self.end_whole();
                }
                out.push(Record::Message(cut.into_record(None, &self.config)));
            }
            let compressed = header.rsv1() && self.inflater.is_some();
            if compressed {
                if let Some(inflater) = self.inflater.as_mut() {
                    inflater.begin_message();
                }
            }
            self.message = Some(self.open_message(header, time, compressed));
            data = true;
        } else {
            // Control frames and reserved opcodes are messages of their own.
            self.control = Some(self.open_message(header, time, false));
        }

        let compressed = data && self.message.as_ref().is_some_and(|m| m.record.compressed);
        let frame = FrameRecord {
            direction: self.direction,
            index: self.frames_seen,
            time,
            end_time: time,
            header: *header,
            payload: Capture::default(),
            close: None,
            inflated: None,
            violations,
        };
        self.frame = Some(OpenFrame {
            record: frame,
            payload: Filling::expecting(expected_payload(header), self.config.frame_limit(header)),
            inflated: compressed.then(Filling::default),
            data,
        });
    }

    fn header_violations(&self, header: &FrameHeader) -> Vec<Violation> {
        let mut v = Vec::new();
        if let Opcode::Reserved(bits) = header.opcode() {
            v.push(Violation::ReservedOpcode(bits));
        }
        let rsv = header.rsv_bits();
        let deflating = self.inflater.is_some();
        let misplaced_rsv1 = deflating
            && header.rsv1()
            && (header.opcode() == Opcode::Continuation || header.opcode().is_control());
        if misplaced_rsv1 {
            v.push(Violation::CompressedBitMisplaced);
        }
        let unexplained = rsv & !self.allowed_rsv;
        if unexplained != 0 {
            v.push(Violation::ReservedBitSet { bits: unexplained });
        }
        if header.opcode().is_control() {
            if header.payload_len() > 125 {
                v.push(Violation::ControlFrameTooLong(header.payload_len()));
            }
            if !header.fin() {
                v.push(Violation::FragmentedControlFrame);
            }
        }
        if header.length_encoding() == LengthEncoding::Bits64 && header.payload_len() >> 63 != 0 {
            v.push(Violation::LengthHighBitSet);
        } else if header.length_encoding() != LengthEncoding::minimal_for(header.payload_len()) {
            v.push(Violation::NonMinimalLength {
                used: header.length_encoding(),
                len: header.payload_len(),
            });
        }
        match (self.direction, header.mask().is_some()) {
            (Direction::ClientToServer, false) => v.push(Violation::UnmaskedClientFrame),
            (Direction::ServerToClient, true) => v.push(Violation::MaskedServerFrame),
            _ => {}
        }
        v
    }

    /// The message that the frame of `header` opens.
    fn open_message(&self, header: &FrameHeader, time: Timestamp, compressed: bool) -> OpenMessage {
        // A message of one frame (the common case) holds a prefix of what that frame's
        // record holds: its bytes are shared if the message keeps no more than the frame.
        let single = header.fin() || header.opcode().is_control();
        let frame_keeps = match compressed {
            true => self.config.max_frame_capture,
            false => self.config.frame_limit(header),
        };
        let shares_frame = single && self.config.max_message_capture <= frame_keeps;
        // One that keeps more gathers its own copy, sized for it when known.
        let expected = match single && !compressed && !shares_frame {
            true => expected_payload(header),
            false => 0,
        };
        OpenMessage {
            record: MessageRecord {
                direction: self.direction,
                opcode: header.opcode(),
                frames: 0,
                first_time: time,
                last_time: time,
                compressed,
                wire_payload_len: 0,
                data: Capture::default(),
                violations: Vec::new(),
                incomplete: false,
            },
            data: Filling::expecting(expected, self.config.max_message_capture),
            shares_frame,
            utf8: (header.opcode() == Opcode::Text).then(Utf8Validator::new),
            utf8_reported: false,
        }
    }

    /// Whether the payload bytes of the frame being read still matter: to a capture with
    /// room left, a UTF-8 check or an inflater. Otherwise only their count does, and the
    /// decoder need not unmask them.
    fn wants_bytes(&self) -> bool {
        let Some(frame) = self.frame.as_ref() else {
            return false;
        };
        if frame.payload.data.len() < self.config.frame_limit(&frame.record.header) {
            return true;
        }
        let message = if frame.data {
            self.message.as_ref()
        } else {
            self.control.as_ref()
        };
        message.is_some_and(|m| {
            m.record.compressed
                || m.utf8.is_some()
                || (!m.shares_frame && m.data.data.len() < self.config.max_message_capture)
        })
    }

    /// Counts `len` payload bytes that [`AnalyzerState::wants_bytes`] said nothing needs.
    fn skipped(&mut self, len: usize) {
        let Some(frame) = self.frame.as_mut() else {
            return;
        };
        frame.payload.total += len as u64;
        let message = if frame.data {
            self.message.as_mut()
        } else {
            self.control.as_mut()
        };
        if let Some(message) = message {
            message.record.wire_payload_len += len as u64;
            if !message.shares_frame {
                message.data.total += len as u64;
            }
        }
    }

    fn payload(&mut self, data: &[u8]) {
        let Some(frame) = self.frame.as_mut() else {
            return;
        };
        let limit = self.config.frame_limit(&frame.record.header);
        frame.payload.push(data, limit);
        let message = if frame.data {
            self.message.as_mut()
        } else {
            self.control.as_mut()
        };
        let Some(message) = message else {
            return;
        };
        message.record.wire_payload_len += data.len() as u64;
        if message.record.compressed {
            if let Some(inflater) = self.inflater.as_mut() {
                let piece = Piece::Data(data);
                let whole = kept_whole(&mut self.whole);
                let inflated = frame.inflated.get_or_insert_with(Filling::default);
                inflate(
                    inflater,
                    piece,
                    &self.config,
                    (&mut frame.record, inflated, message),
                    whole,
                );
            }
        } else {
            if !message.shares_frame {
                message.data.push(data, self.config.max_message_capture);
            }
            if let Some(utf8) = message.utf8.as_mut() {
                utf8.feed(data);
            }
        }
        message.check_utf8(&mut frame.record);
    }

    /// Ends the frame being read and records it (and its message, when it ends one).
    /// Returns what it breaks, if anything.
    fn end_frame(&mut self, time: Timestamp, out: &mut Vec<Record>) -> Option<Offence> {
        let OpenFrame {
            mut record,
            payload,
            mut inflated,
            data,
        } = self.frame.take()?;
        record.payload = payload.done();
        record.end_time = time;
        self.frames_seen += 1;
        if record.header.opcode() == Opcode::Close {
            self.close_seen = true;
            record.close = Some(CloseFrame::parse(
                &record.payload.data,
                &mut record.violations,
            ));
        }
        let fin = record.header.fin();
        let open = if data {
            self.message.take()
        } else {
            self.control.take()
        };
        let message = match open {
            Some(mut message) => {
                message.record.frames += 1;
                message.record.last_time = time;
                // A control frame is a message of its own even without FIN (which is
                // itself a violation); a data message ends at FIN.
                if !data || fin {
                    self.finish_message(&mut message, &mut record, &mut inflated);
                    Some(message)
                } else {
                    self.message = Some(message);
                    None
                }
            }
            None => None,
        };
        record.inflated = inflated.map(|inflated| Inflated {
            data: inflated.done(),
        });
        let message = message.map(|m| m.into_record(Some(&record), &self.config));
        let offence = record.violations.first().map(|violation| Offence {
            violation: violation.clone(),
            index: record.index,
            begins_in_chunk: false,
        });
        out.push(Record::Frame(record));
        if let Some(message) = message {
            out.push(Record::Message(message));
        }
        offence
    }

    /// Final checks on a message whose last frame is `frame`; violations found go on both.
    fn finish_message(
        &mut self,
        message: &mut OpenMessage,
        frame: &mut FrameRecord,
        inflated: &mut Option<Filling>,
    ) {
        if message.record.compressed {
            if let Some(inflater) = self.inflater.as_mut() {
                let current = kept_whole(&mut self.whole);
                inflate(
                    inflater,
                    Piece::Tail,
                    &self.config,
                    (
                        frame,
                        inflated.get_or_insert_with(Filling::default),
                        message,
                    ),
                    current,
                );
                self.end_whole();
            }
        }
        if let Some(mut utf8) = message.utf8.take() {
            let violation = match utf8.finish() {
                FinishedUtf8::Valid => None,
                // Already reported on the frame that carried the bad byte.
                FinishedUtf8::Invalid => None,
                FinishedUtf8::Truncated => Some(Violation::TruncatedUtf8),
            };
            if let Some(violation) = violation {
                frame.violations.push(violation.clone());
                message.record.violations.push(violation);
            }
        }
    }
}

/// What to inflate next: a piece of a compressed message, or the tail RFC 7692 implies
/// after its last frame.
enum Piece<'a> {
    Data(&'a [u8]),
    Tail,
}

/// Inflates `piece` into the frame's and the message's captures, the message's UTF-8
/// check and, when kept, its `whole` data; an inflation failure goes on the frame.
fn inflate(
    inflater: &mut Inflater,
    piece: Piece<'_>,
    config: &AnalyzerConfig,
    (frame, inflated, message): (&mut FrameRecord, &mut Filling, &mut OpenMessage),
    mut whole: Option<&mut Vec<u8>>,
) {
    let mut data = (!message.shares_frame).then_some(&mut message.data);
    let utf8 = &mut message.utf8;
    let mut output = |out: &[u8]| {
        if let Some(whole) = whole.as_mut() {
            whole.extend_from_slice(out);
        }
        inflated.push(out, config.max_frame_capture);
        if let Some(data) = data.as_mut() {
            data.push(out, config.max_message_capture);
        }
        if let Some(utf8) = utf8.as_mut() {
            utf8.feed(out);
        }
    };
    let result = match piece {
        Piece::Data(data) => inflater.inflate(data, &mut output),
        Piece::Tail => inflater.end_message(&mut output),
    };
    // The bytes inflated before a failure come first, so does their verdict. A failure
    // belongs to the message as much as to the frame that carried it.
    message.check_utf8(frame);
    if let Err(why) = result {
        frame.violations.push(Violation::InflateFailed(why.clone()));
        message
            .record
            .violations
            .push(Violation::InflateFailed(why));
    }
}

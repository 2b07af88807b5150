//! A pcapng export: each WebSocket session's decrypted traffic as the TCP streams
//! Wireshark would have captured in the clear, so `tshark` and Wireshark decode its
//! handshake and frames themselves.
//!
//! A session is written as two TCP connections: the client leg (the client's address to
//! the listener it reached) and the upstream leg (wstap's own address to the server's,
//! from the handshake's record of them). Each begins with its three-way handshake, carries
//! the HTTP upgrade and the frames byte for byte as they crossed it (masking and
//! compression as on the wire; a payload the capture kept only part of is completed with
//! zeros, and says so in a packet comment), and ends with FINs when the session ends.
//! Segments are at most one MSS; sequence and acknowledgement numbers run as on a real
//! connection; timestamps are the capture's. Frames a breakpoint dropped or replaced are
//! on the leg they were read from only, and what wstap wrote itself is on the leg it was
//! written to only. The first packet of each leg carries a comment naming the wstap
//! session.
//!
//! Events go in one at a time, in the order they happened, and packets come out: memory
//! holds one frame, a few bytes per open session, and the list of frames breakpoints
//! kept from their destination, however large the capture.

mod blocks;

use crate::event::*;
use blocks::{Segment, ACK, FIN, PSH, SYN};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use wstap_wire::Direction;

/// Writes a pcapng file from a capture's events: see the module documentation.
pub struct PcapngWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    sessions: HashMap<u64, Legs>,
    /// `(session, client to server, frame index)` of frames not forwarded.
    not_forwarded: HashSet<(u64, bool, u64)>,
    packets: u64,
}

/// One session's two TCP connections.
#[derive(Default)]
struct Legs {
    client: Option<Tcp>,
    upstream: Option<Tcp>,
    /// The client's address and the listener's, from its start.
    client_ends: Option<(SocketAddr, SocketAddr)>,
    listener: Option<SocketAddr>,
    target: String,
    started_us: i64,
}

/// One TCP connection: `a` opened it to `b`.
struct Tcp {
    a: SocketAddr,
    b: SocketAddr,
    /// The next sequence number from `a` and from `b`.
    next: [u32; 2],
    ip_id: u16,
    /// A comment for its next packet (its first one).
    comment: Option<String>,
    closed: bool,
}

impl<W: Write> PcapngWriter<W> {
    /// Starts the file: its section header and its one interface.
    pub fn new(mut out: W, application: &str) -> std::io::Result<Self> {
        out.write_all(&blocks::file_header(application))?;
        Ok(PcapngWriter {
            out,
            buffer: Vec::new(),
            sessions: HashMap::new(),
            not_forwarded: HashSet::new(),
            packets: 0,
        })
    }

    /// Notes that frame `index` going `dir` in `session` was never forwarded (a
    /// breakpoint dropped it, or sent an edit in its place): before its events go in.
    pub fn not_forwarded(&mut self, session: u64, dir: Direction, index: u64) {
        self.not_forwarded
            .insert((session, dir == Direction::ClientToServer, index));
    }

    /// How many packets went out so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Writes the packets `event` stands for.
    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::SessionStart(start) => self.start(start),
            Event::Handshake(h) => self.handshake(h),
            Event::Frame(frame) => self.frame(frame),
            Event::Message(m) => self.written_message(m),
            Event::SessionEnd(end) => self.end(end),
            _ => Ok(()),
        }
    }

    /// Ends the file; returns where it went.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    /// A session's start: its legs open when its handshake shows it is a WebSocket
    /// session (HTTP sessions and tunnels are not written).
    fn start(&mut self, start: &SessionStart) -> std::io::Result<()> {
        let client = start.client.parse::<SocketAddr>().ok();
        let listener = start
            .listener
            .as_deref()
            .and_then(|l| l.parse::<SocketAddr>().ok());
        let legs = Legs {
            client_ends: client.zip(listener),
            listener,
            target: start.target.clone(),
            started_us: start.time.timestamp_micros(),
            ..Legs::default()
        };
        self.sessions.insert(start.session, legs);
        Ok(())
    }

    fn handshake(&mut self, h: &Handshake) -> std::io::Result<()> {
        let exchange = &h.exchange;
        let Some(legs) = self.sessions.get_mut(&exchange.session) else {
            return Ok(());
        };
        let time_us = exchange.time.timestamp_micros();
        if let Some((a, b)) = legs.client_ends {
            let comment = format!(
                "wstap session {}: client leg, {a} to wstap at {b}",
                exchange.session
            );
            let mut tcp = Tcp::new(a, b, exchange.session, 0, comment);
            tcp.open(&mut self.buffer, legs.started_us, &mut self.packets);
            legs.client = Some(tcp);
        }
        let ends = h
            .upstream
            .as_ref()
            .and_then(|leg| Some((leg.local.parse().ok()?, leg.peer.parse().ok()?)))
            .or_else(|| made_up_upstream(legs, exchange.session));
        if let Some((a, b)) = ends {
            let to = if legs.target == b.to_string() {
                legs.target.clone()
            } else {
                format!("{} at {b}", legs.target)
            };
            let comment = format!(
                "wstap session {}: upstream leg, wstap at {a} to {to}",
                exchange.session
            );
            let mut tcp = Tcp::new(a, b, exchange.session, 1, comment);
            tcp.open(&mut self.buffer, time_us, &mut self.packets);
            legs.upstream = Some(tcp);
        }
        let (request, forwarded) = request_heads(exchange);
        let response = response_head(exchange);
        let answered_us = time_us + h.duration_us.unwrap_or(0) as i64;
        let packets = &mut self.packets;
        if let Some(tcp) = legs.client.as_mut() {
            tcp.send(&mut self.buffer, true, time_us, &[&request], 0, packets);
        }
        if let Some(tcp) = legs.upstream.as_mut() {
            tcp.send(&mut self.buffer, true, time_us, &[&forwarded], 0, packets);
            if let Some(response) = &response {
                tcp.send(
                    &mut self.buffer,
                    false,
                    answered_us,
                    &[response],
                    0,
                    packets,
                );
            }
        }
        if let (Some(tcp), Some(response)) = (legs.client.as_mut(), &response) {
            tcp.send(
                &mut self.buffer,
                false,
                answered_us,
                &[response],
                0,
                packets,
            );
        }
        self.flush()
    }

    fn frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        let c2s = frame.dir == Direction::ClientToServer;
        let forwarded = !self
            .not_forwarded
            .contains(&(frame.session, c2s, frame.index));
        let Some(legs) = self.sessions.get_mut(&frame.session) else {
            return Ok(());
        };
        let (header, payload, missing) = wire_frame(frame);
        let time_us = frame.time.timestamp_micros();
        let (mut read_from, written_to) = match frame.dir {
            Direction::ClientToServer => (legs.client.as_mut(), legs.upstream.as_mut()),
            Direction::ServerToClient => (legs.upstream.as_mut(), legs.client.as_mut()),
        };
        let mut written_to = written_to.filter(|_| forwarded);
        if missing > 0 || frame.payload.dropped {
            // Said on the packets that carry the frame's first bytes, on each leg it took.
            let note = format!(
                "wstap: frame {} ({}) has {missing} payload bytes the capture did not keep, written as zeros",
                frame.index,
                frame.dir.short()
            );
            for tcp in read_from.iter_mut().chain(written_to.iter_mut()) {
                tcp.comment.get_or_insert_with(|| note.clone());
            }
        }
        let parts: [&[u8]; 2] = [&header, &payload];
        if let Some(tcp) = read_from {
            tcp.send(
                &mut self.buffer,
                c2s,
                time_us,
                &parts,
                missing,
                &mut self.packets,
            );
        }
        if let Some(tcp) = written_to {
            tcp.send(
                &mut self.buffer,
                c2s,
                time_us,
                &parts,
                missing,
                &mut self.packets,
            );
        }
        self.flush()
    }

    /// A message wstap wrote itself (an edit, an injection): its frames, on the leg
    /// it went to.
    fn written_message(&mut self, m: &Message) -> std::io::Result<()> {
        let Some(wire) = m.wire.as_ref().filter(|_| !m.origin.is_wire()) else {
            return Ok(());
        };
        let Some(legs) = self.sessions.get_mut(&m.session) else {
            return Ok(());
        };
        let c2s = m.dir == Direction::ClientToServer;
        let tcp = match m.dir {
            Direction::ClientToServer => legs.upstream.as_mut(),
            Direction::ServerToClient => legs.client.as_mut(),
        };
        if let Some(tcp) = tcp {
            let time_us = m.time.timestamp_micros();
            tcp.send(
                &mut self.buffer,
                c2s,
                time_us,
                &[&wire.bytes],
                0,
                &mut self.packets,
            );
        }
        self.flush()
    }

    fn end(&mut self, end: &SessionEnd) -> std::io::Result<()> {
        let Some(mut legs) = self.sessions.remove(&end.session) else {
            return Ok(());
        };
        let time_us = end.time.timestamp_micros();
        for tcp in [legs.client.as_mut(), legs.upstream.as_mut()]
            .into_iter()
            .flatten()
        {
            tcp.close(&mut self.buffer, time_us, &mut self.packets);
        }
        self.flush()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.out.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }
}

/// Where the upstream leg is said to run when the capture does not say (one recorded
/// before wstap kept it): from the listener's address to the target's, when the target
/// is an IP address of the same family.
fn made_up_upstream(legs: &Legs, session: u64) -> Option<(SocketAddr, SocketAddr)> {
    let peer: SocketAddr = legs.target.parse().ok()?;
    let local_ip = legs
        .listener
        .map(|l| l.ip())
        .filter(|ip| ip.is_ipv4() == peer.is_ipv4())?;
    let port = 49152 + (session % 16384) as u16;
    Some((SocketAddr::new(local_ip, port), peer))
}

impl Tcp {
    fn new(a: SocketAddr, b: SocketAddr, session: u64, leg: u64, comment: String) -> Tcp {
        // Distinct initial sequence numbers per connection; Wireshark shows them relative.
        let seed = (session.wrapping_mul(2654435761).wrapping_add(leg * 977)) as u32;
        Tcp {
            a,
            b,
            next: [seed.wrapping_mul(3) | 1, seed.wrapping_mul(7) | 2],
            ip_id: (session as u16).wrapping_mul(31),
            comment: Some(comment),
            closed: false,
        }
    }

    fn mss(&self) -> usize {
        match self.a.ip() {
            IpAddr::V4(_) => 1460,
            IpAddr::V6(_) => 1440,
        }
    }

    /// One segment from `a` (`from_a`) or `b`.
    fn segment(
        &mut self,
        out: &mut Vec<u8>,
        from_a: bool,
        time_us: i64,
        flags: u8,
        payload: &[u8],
    ) {
        let (from, to, mine, theirs) = if from_a {
            (self.a, self.b, 0, 1)
        } else {
            (self.b, self.a, 1, 0)
        };
        let packet = Segment {
            from,
            to,
            seq: self.next[mine],
            ack: self.next[theirs],
            flags,
            ip_id: self.ip_id,
            payload,
        }
        .encode();
        self.ip_id = self.ip_id.wrapping_add(1);
        let advance = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.next[mine] = self.next[mine].wrapping_add(advance);
        blocks::packet_block(out, time_us, &packet, self.comment.take().as_deref());
    }

    /// The three-way handshake.
    fn open(&mut self, out: &mut Vec<u8>, time_us: i64, packets: &mut u64) {
        self.segment(out, true, time_us, SYN, &[]);
        self.segment(out, false, time_us, SYN | ACK, &[]);
        self.segment(out, true, time_us, ACK, &[]);
        *packets += 3;
    }

    /// Sends `parts` and then `zeros` zero bytes (standing for payload bytes the
    /// capture did not keep) from `a` (`from_a`) or `b`, in segments of one MSS, each
    /// acknowledged.
    fn send(
        &mut self,
        out: &mut Vec<u8>,
        from_a: bool,
        time_us: i64,
        parts: &[&[u8]],
        zeros: u64,
        packets: &mut u64,
    ) {
        if self.closed {
            return;
        }
        let mss = self.mss();
        let mut chunk = Vec::with_capacity(mss);
        for part in parts {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                let take = (mss - chunk.len()).min(rest.len());
                chunk.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if chunk.len() == mss {
                    self.flush_segment(out, from_a, time_us, &mut chunk, packets);
                }
            }
        }
        let mut zeros = zeros;
        while zeros > 0 {
            let take = ((mss - chunk.len()) as u64).min(zeros);
            chunk.resize(chunk.len() + take as usize, 0);
            zeros -= take;
            if chunk.len() == mss {
                self.flush_segment(out, from_a, time_us, &mut chunk, packets);
            }
        }
        self.flush_segment(out, from_a, time_us, &mut chunk, packets);
    }

    fn flush_segment(
        &mut self,
        out: &mut Vec<u8>,
        from_a: bool,
        time_us: i64,
        chunk: &mut Vec<u8>,
        packets: &mut u64,
    ) {
        if chunk.is_empty() {
            return;
        }
        self.segment(out, from_a, time_us, PSH | ACK, chunk);
        // The other side acknowledges what it got, as a real stack would.
        self.segment(out, !from_a, time_us, ACK, &[]);
        *packets += 2;
        chunk.clear();
    }

    /// Both sides' FINs and the last acknowledgement.
    fn close(&mut self, out: &mut Vec<u8>, time_us: i64, packets: &mut u64) {
        if self.closed {
            return;
        }
        self.segment(out, true, time_us, FIN | ACK, &[]);
        self.segment(out, false, time_us, FIN | ACK, &[]);
        self.segment(out, true, time_us, ACK, &[]);
        *packets += 3;
        self.closed = true;
    }
}

/// A frame as it was on the wire: its header, its payload masked again (what the
/// capture kept), and how many payload bytes it did not keep.
fn wire_frame(frame: &Frame) -> (Vec<u8>, Vec<u8>, u64) {
    let first = u8::from_str_radix(&frame.flags, 2).unwrap_or(0);
    let key = frame
        .mask_key
        .as_deref()
        .and_then(|k| u32::from_str_radix(k, 16).ok())
        .map(u32::to_be_bytes);
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    let len = frame.payload_len;
    let mut header = vec![first];
    match frame.length_bits {
        16 => {
            header.push(mask_bit | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        64 => {
            header.push(mask_bit | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
        _ => header.push(mask_bit | len as u8),
    }
    let mut payload = frame.payload.bytes.clone();
    payload.truncate(usize::try_from(len).unwrap_or(usize::MAX));
    if let Some(key) = key {
        header.extend_from_slice(&key);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    let missing = len.saturating_sub(payload.len() as u64);
    (header, payload, missing)
}

/// The request head as the client sent it, and as wstap forwarded it.
fn request_heads(exchange: &Exchange) -> (Vec<u8>, Vec<u8>) {
    let as_sent = match &exchange.raw {
        Some(raw) if !raw.request.is_empty() => raw.request.clone(),
        _ => head_bytes(
            &format!(
                "{} {} {}",
                exchange.request.method, exchange.request.target, exchange.request.version
            ),
            &exchange.request.headers,
        ),
    };
    let forwarded = &exchange.forwarded;
    let changed = forwarded.target.is_some()
        || !forwarded.removed_headers.is_empty()
        || !forwarded.rewritten_headers.is_empty();
    if !changed {
        return (as_sent.clone(), as_sent);
    }
    let target = forwarded
        .target
        .as_deref()
        .unwrap_or(&exchange.request.target);
    let headers: Headers = exchange
        .request
        .headers
        .iter()
        .filter(|(name, _)| {
            !forwarded
                .removed_headers
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
        })
        .map(|(name, value)| {
            let rewritten = forwarded
                .rewritten_headers
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(name));
            (
                name.clone(),
                rewritten.map_or(value.clone(), |r| r.to.clone()),
            )
        })
        .collect();
    let line = format!(
        "{} {target} {}",
        exchange.request.method, exchange.request.version
    );
    (as_sent, head_bytes(&line, &headers))
}

/// The response head as it was sent, when there was one.
fn response_head(exchange: &Exchange) -> Option<Vec<u8>> {
    if let Some(raw) = exchange.raw.as_ref().filter(|r| !r.response.is_empty()) {
        return Some(raw.response.clone());
    }
    let response = exchange.response.as_ref()?;
    Some(head_bytes(
        &format!(
            "{} {} {}",
            response.version, response.status, response.reason
        ),
        &response.headers,
    ))
}

fn head_bytes(first_line: &str, headers: &Headers) -> Vec<u8> {
    let mut head = format!("{first_line}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

//! The bytes of a pcapng file (the section header, the interface description and
//! enhanced packet blocks, draft-ietf-opsawg-pcapng) and of the packets in it: IPv4 or
//! IPv6 headers and TCP segments, with their checksums, on the raw IP link type.

use std::net::{IpAddr, SocketAddr};

/// Raw IP: each packet starts with its IPv4 or IPv6 header.
const LINKTYPE_RAW: u16 = 101;

/// TCP flags.
pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

/// Appends a block of `kind` with `body` (padded to 32 bits) and its length twice.
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend_from_slice(&total.to_le_bytes());
}

/// Appends an option (code, length, value padded to 32 bits).
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + value.len().div_ceil(4) * 4 - value.len(), 0);
}

fn end_of_options(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// The section header block and one interface (raw IP, microsecond timestamps) named
/// after wstap.
pub(crate) fn file_header(application: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    option(&mut shb, 4, application.as_bytes()); // shb_userappl
    end_of_options(&mut shb);
    block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes()); // no snap length
    option(&mut idb, 2, b"wstap"); // if_name
    option(
        &mut idb,
        3,
        b"wstap: decrypted WebSocket sessions, client and upstream legs",
    ); // if_description
    option(&mut idb, 9, &[6]); // if_tsresol: microseconds
    end_of_options(&mut idb);
    block(&mut out, 1, &idb);
    out
}

/// An enhanced packet block for `packet` at `time_us`, with `comment` if any.
pub(crate) fn packet_block(out: &mut Vec<u8>, time_us: i64, packet: &[u8], comment: Option<&str>) {
    let time = time_us.max(0) as u64;
    let mut epb = Vec::with_capacity(packet.len() + 64);
    epb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
    epb.extend_from_slice(&((time >> 32) as u32).to_le_bytes());
    epb.extend_from_slice(&(time as u32).to_le_bytes());
    epb.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    epb.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    epb.extend_from_slice(packet);
    epb.resize(epb.len() + packet.len().div_ceil(4) * 4 - packet.len(), 0);
    if let Some(comment) = comment {
        option(&mut epb, 1, comment.as_bytes()); // opt_comment
        end_of_options(&mut epb);
    }
    block(out, 6, &epb);
}

/// One TCP segment from `from` to `to`, in an IPv4 or IPv6 packet (both addresses of
/// one family: the caller makes sure).
pub(crate) struct Segment<'a> {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub ip_id: u16,
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// The packet's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut tcp = Vec::with_capacity(20 + self.payload.len());
        tcp.extend_from_slice(&self.from.port().to_be_bytes());
        tcp.extend_from_slice(&self.to.port().to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        let ack = if self.flags & ACK != 0 { self.ack } else { 0 };
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&65535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        tcp.extend_from_slice(self.payload);
        let mut packet = Vec::with_capacity(40 + tcp.len());
        let length = tcp.len();
        match (self.from.ip(), self.to.ip()) {
            (IpAddr::V4(from), IpAddr::V4(to)) => {
                let mut pseudo = Vec::with_capacity(12);
                pseudo.extend_from_slice(&from.octets());
                pseudo.extend_from_slice(&to.octets());
                pseudo.extend_from_slice(&[0, 6]);
                pseudo.extend_from_slice(&(length as u16).to_be_bytes());
                let sum = checksum(&[&pseudo, &tcp]);
                tcp[16..18].copy_from_slice(&sum.to_be_bytes());
                packet.push(0x45);
                packet.push(0);
                packet.extend_from_slice(&((20 + length) as u16).to_be_bytes());
                packet.extend_from_slice(&self.ip_id.to_be_bytes());
                packet.extend_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
                packet.push(64);
                packet.push(6);
                packet.extend_from_slice(&[0, 0]);
                packet.extend_from_slice(&from.octets());
                packet.extend_from_slice(&to.octets());
                let sum = checksum(&[&packet]);
                packet[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            (from, to) => {
                let from = v6(from);
                let to = v6(to);
                let mut pseudo = Vec::with_capacity(40);
                pseudo.extend_from_slice(&from);
                pseudo.extend_from_slice(&to);
                pseudo.extend_from_slice(&(length as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 6]);
                let sum = checksum(&[&pseudo, &tcp]);
                tcp[16..18].copy_from_slice(&sum.to_be_bytes());
                packet.extend_from_slice(&0x6000_0000u32.to_be_bytes());
                packet.extend_from_slice(&(length as u16).to_be_bytes());
                packet.push(6);
                packet.push(64);
                packet.extend_from_slice(&from);
                packet.extend_from_slice(&to);
            }
        }
        packet.extend_from_slice(&tcp);
        packet
    }
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(ip) => ip.octets(),
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
    }
}

/// The Internet checksum (RFC 1071) of the parts, one after another.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in part.iter() {
            match odd.take() {
                Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let segment = Segment {
            from: "10.0.0.1:1000".parse().unwrap(),
            to: "10.0.0.2:80".parse().unwrap(),
            seq: 1,
            ack: 2,
            flags: ACK | PSH,
            ip_id: 7,
            payload: b"hello",
        };
        let packet = segment.encode();
        assert_eq!(checksum(&[&packet[..20]]), 0, "the IPv4 header");
        let mut pseudo = packet[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 25]);
        assert_eq!(checksum(&[&pseudo, &packet[20..]]), 0, "the TCP segment");
    }
}

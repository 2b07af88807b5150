//! The Deflater against two inflaters: wstap's own and a plain flate2 stream limited to the
//! negotiated window, message after message, with and without context takeover; and a
//! peer's stream (flate2's deflate, as browsers and libraries make it) read by the
//! Inflater and sent again through the Deflater.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use proptest::prelude::*;
use wstap_wire::deflate::{Inflater, MESSAGE_TAIL};
use wstap_wire::{DeflateParams, Deflater, Direction};

fn params() -> impl Strategy<Value = DeflateParams> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(8u8..=15),
        proptest::option::of(8u8..=15),
    )
        .prop_map(|(s, c, sb, cb)| DeflateParams {
            server_no_context_takeover: s,
            client_no_context_takeover: c,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
        })
}

/// Messages that compress (repeated text, referring back across messages) and that do
/// not (random bytes), large enough to pass a small window.
fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2_000),
            ("[a-c ]{0,40}", 1usize..200).prop_map(|(word, times)| word.repeat(times).into_bytes()),
            Just(b"{\"type\":\"chat\",\"from\":\"Ronald\",\"text\":\"hello\"}".to_vec()),
        ],
        1..8,
    )
}

fn inflate_with_wstap(inflater: &mut Inflater, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    inflater.begin_message();
    inflater
        .inflate(payload, &mut |d| out.extend_from_slice(d))
        .unwrap();
    inflater
        .end_message(&mut |d| out.extend_from_slice(d))
        .unwrap();
    out
}

/// A plain flate2 raw inflater with a window of exactly `bits` (9 at least: zlib's
/// smallest), kept across messages unless `reset`: a back-reference beyond the window
/// is an error here.
fn inflate_with_flate2(decompress: &mut Decompress, reset: bool, payload: &[u8]) -> Vec<u8> {
    if reset {
        decompress.reset(false);
    }
    let input = [payload, &MESSAGE_TAIL].concat();
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    let start_in = decompress.total_in();
    loop {
        let consumed = (decompress.total_in() - start_in) as usize;
        out.reserve(4096);
        decompress
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("inflates within the window");
        if (decompress.total_in() - start_in) as usize == input.len() && out.len() < out.capacity()
        {
            return out;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn deflated_messages_inflate_to_themselves_within_the_negotiated_window(
        params in params(),
        direction in prop_oneof![Just(Direction::ClientToServer), Just(Direction::ServerToClient)],
        messages in messages(),
    ) {
        let mut deflater = Deflater::new(params, direction);
        let reset = params.no_context_takeover(direction);
        let mut inflater = Inflater::new(reset);
        let bits = params.window_bits(direction).max(9);
        let mut plain = Decompress::new_with_window_bits(false, bits);
        for message in &messages {
            let mut payload = Vec::new();
            deflater.compress(message, &mut payload).unwrap();
            prop_assert!(!payload.ends_with(&MESSAGE_TAIL) || payload.len() < 4 || message.is_empty());
            prop_assert_eq!(&inflate_with_wstap(&mut inflater, &payload), message);
            prop_assert_eq!(&inflate_with_flate2(&mut plain, reset, &payload), message);
        }
    }

    /// A peer's compressed messages (flate2's deflate with a sync flush and the tail
    /// stripped, context kept) read by the Inflater and sent again through the Deflater
    /// reach a fresh receiver as the same messages: what re-encoding a direction does.
    #[test]
    fn a_peers_stream_reencoded_reads_the_same(messages in messages()) {
        let mut peer = Compress::new(Compression::fast(), false);
        let mut reader = Inflater::new(false);
        let params = DeflateParams::default();
        let mut deflater = Deflater::new(params, Direction::ServerToClient);
        let mut receiver = Inflater::new(false);
        for message in &messages {
            let mut wire = Vec::with_capacity(message.len() + 1024);
            let start = peer.total_in();
            while ((peer.total_in() - start) as usize) < message.len() || wire.len() == wire.capacity() {
                let consumed = (peer.total_in() - start) as usize;
                wire.reserve(1024);
                peer.compress_vec(&message[consumed..], &mut wire, FlushCompress::Sync).unwrap();
            }
            if wire.is_empty() {
                // zlib flushes nothing new for an empty message; a peer sends `00`.
                wire.push(0);
            } else {
                prop_assert!(wire.ends_with(&MESSAGE_TAIL));
                wire.truncate(wire.len() - 4);
            }
            let read = inflate_with_wstap(&mut reader, &wire);
            prop_assert_eq!(&read, message);
            let mut again = Vec::new();
            deflater.compress(&read, &mut again).unwrap();
            prop_assert_eq!(&inflate_with_wstap(&mut receiver, &again), message);
        }
    }
}

#[test]
fn rfc_7692_hello_then_hello_again_shares_the_window() {
    // Section 7.2.3.2: with context takeover the second "Hello" is a back-reference.
    let mut deflater = Deflater::new(DeflateParams::default(), Direction::ClientToServer);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    deflater.compress(b"Hello", &mut first).unwrap();
    deflater.compress(b"Hello", &mut second).unwrap();
    assert!(
        second.len() < first.len(),
        "{first:02x?} then {second:02x?}"
    );
    let mut inflater = Inflater::new(false);
    assert_eq!(inflate_with_wstap(&mut inflater, &first), b"Hello");
    assert_eq!(inflate_with_wstap(&mut inflater, &second), b"Hello");

    // Without context takeover both are the same, whole.
    let params = DeflateParams {
        client_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let mut deflater = Deflater::new(params, Direction::ClientToServer);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    deflater.compress(b"Hello", &mut a).unwrap();
    deflater.compress(b"Hello", &mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(inflate_with_wstap(&mut Inflater::new(true), &b), b"Hello");
}

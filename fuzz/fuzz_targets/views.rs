//! Fuzz every payload view: any bytes, cut into messages at any points, decoded by a
//! session's decoder of each view (streams and attachments included), must never panic,
//! and every problem must point inside its message. The protobuf view is also read with a
//! schema (the tests' chat.proto).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use wstap_views::{detect, ProtoSchema, ProtoTypes, ProtocolField, SessionDecoder, View};
use wstap_wire::Direction;

/// chat.proto's Envelope one way and Ack the other.
fn schema() -> &'static ProtoSchema {
    static SCHEMA: OnceLock<ProtoSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut types = ProtoTypes::default();
        types.add("c2s=chat.Envelope").expect("a type");
        types.add("s2c=chat.Ack").expect("a type");
        ProtoSchema::new(include_bytes!("../../tests/peers/proto/chat.pb"), types)
            .expect("the tests' descriptor set")
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    // The control byte chooses the text flag and where the messages are cut.
    let text = control & 1 == 1;
    let step = usize::from(control >> 1).max(1);
    let decoders = View::ALL
        .into_iter()
        .map(|view| SessionDecoder::new(Some(view)))
        .chain([SessionDecoder::new(Some(View::Protobuf)).with_schema(Some(schema().clone()))]);
    for mut session in decoders {
        for (n, message) in bytes.chunks(step).enumerate() {
            let dir = if n % 3 == 2 { Direction::ServerToClient } else { Direction::ClientToServer };
            let decoded = session.decode(dir, message, text);
            if let Some(problem) = &decoded.problem {
                assert!(problem.at <= message.len());
            }
            let _ = decoded.to_json();
        }
    }
    let _ = detect::sniff(bytes, text);
    for field in ProtocolField::all() {
        let _ = field.values(bytes);
    }
});

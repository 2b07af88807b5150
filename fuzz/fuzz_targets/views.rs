//! Fuzz every payload view: any bytes, cut into messages at any points, decoded by a
//! session's decoder of each view (streams and attachments included), must never panic,
//! and every problem must point inside its message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_views::{detect, ProtocolField, SessionDecoder, View};
use wstap_wire::Direction;

fuzz_target!(|input: &[u8]| {
    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    // The control byte chooses the text flag and where the messages are cut.
    let text = control & 1 == 1;
    let step = usize::from(control >> 1).max(1);
    for view in View::ALL {
        let mut session = SessionDecoder::new(Some(view));
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

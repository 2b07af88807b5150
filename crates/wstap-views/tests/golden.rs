//! Golden tests: sessions of real protocol libraries, recorded through wstap
//! (tests/peers/node/protocols.mjs, tests/peers/python_protocols.py; turned into
//! `tests/golden/NAME.json` by tests/peers/record_golden.py), read as wstap reads them
//! live: the view chosen from the handshake and the first messages, every data message
//! decoded in order, every call paired with its answer. What that gives must equal
//! `NAME.expected.json`, which `WSTAP_BLESS=1 cargo test -p wstap-views --test golden`
//! writes afresh (read its diff before committing it).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use wstap_views::calls::Pairer;
use wstap_views::{Detector, SessionDecoder};
use wstap_wire::Direction;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// What wstap makes of a recording: its view, each message's decode, its calls.
fn read(recording: &Value) -> Value {
    let url = recording["url"].as_str().expect("a URL");
    let mut detector = Detector::from_handshake(recording["subprotocol"].as_str(), url);
    let mut decoder = SessionDecoder::new(detector.view()).with_url(url);
    let mut pairer = Pairer::new();
    let mut decoded = Vec::new();
    let mut answered = Vec::new();
    for (n, message) in recording["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .enumerate()
    {
        let payload = unhex(message["payload"].as_str().expect("a payload"));
        let text = message["text"].as_bool().expect("text or not");
        let dir = match message["dir"].as_str() {
            Some("c2s") => Direction::ClientToServer,
            _ => Direction::ServerToClient,
        };
        if !detector.is_settled() && detector.observe(&payload, text).is_some() {
            decoder = SessionDecoder::new(detector.view()).with_url(url);
        }
        if decoder.view().is_none() {
            decoded.push(Value::Null);
            continue;
        }
        let this = decoder.decode(dir, &payload, text);
        let at_us = message["at_us"].as_i64().expect("a time");
        for call in this.items.iter().filter_map(|item| item.call.as_ref()) {
            answered.extend(pairer.observe(call, dir, n as u64, at_us));
        }
        decoded.push(this.to_json());
    }
    let answered: Vec<Value> = answered
        .iter()
        .map(|a| json!({ "name": a.name, "call": a.call, "answer": a.answer, "latency_us": a.latency_us }))
        .collect();
    let unanswered: Vec<Value> = pairer
        .unanswered()
        .iter()
        .map(|u| json!({ "name": u.name, "call": u.call }))
        .collect();
    json!({
        "view": detector.view().map(|v| v.name()),
        "messages": decoded,
        "calls": { "answered": answered, "unanswered": unanswered },
    })
}

#[test]
fn real_library_recordings_decode_as_blessed() {
    let bless = std::env::var_os("WSTAP_BLESS").is_some();
    let mut recordings: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "json")
                && !path.to_string_lossy().ends_with(".expected.json")
        })
        .collect();
    recordings.sort();
    assert!(recordings.len() >= 9, "{recordings:?}");
    let mut differ = Vec::new();
    for path in &recordings {
        let recording: Value =
            serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON");
        let got = read(&recording);
        let expected_path = path.with_extension("expected.json");
        if bless {
            let mut text = serde_json::to_string_pretty(&got).expect("JSON");
            text.push('\n');
            std::fs::write(&expected_path, text).expect("writable");
            continue;
        }
        let expected: Value = std::fs::read(&expected_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| panic!("no {}: bless it", expected_path.display()));
        if got != expected {
            differ.push(format!(
                "{}:\n{}",
                path.display(),
                serde_json::to_string_pretty(&got).unwrap_or_default()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "decoded otherwise than blessed (WSTAP_BLESS=1 writes what it gives now):\n{}",
        differ.join("\n")
    );
}

#[test]
fn every_recording_decodes_whole_and_answers_every_call() {
    for entry in std::fs::read_dir(golden_dir()).expect("tests/golden") {
        let path = entry.expect("an entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.ends_with(".expected.json") {
            continue;
        }
        let recording: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
        let got = read(&recording);
        assert!(got["view"].is_string(), "{name}: no view");
        for message in got["messages"].as_array().expect("messages") {
            assert!(message.get("problem").is_none(), "{name}: {message}");
        }
        assert_eq!(got["calls"]["unanswered"], json!([]), "{name}");
        assert!(
            !got["calls"]["answered"]
                .as_array()
                .expect("answered")
                .is_empty(),
            "{name}: no call answered"
        );
    }
}

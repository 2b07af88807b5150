//! Fuzz handshake analysis: header lists built from arbitrary text must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_wire::handshake::analyze;

fn headers(text: &str) -> Vec<(String, String)> {
    text.split('\n')
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let (request, response) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = input.first().map_or(101, |b| if b & 1 == 0 { 101 } else { u16::from(*b) * 3 });
    let _ = analyze("GET", &headers(request), status, &headers(response));
});

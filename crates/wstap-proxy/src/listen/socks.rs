//! The SOCKS5 listener (`--socks5`, RFC 1928): no authentication, or user and password
//! (RFC 1929) when `--proxy-auth` is set; `CONNECT` only, to a domain, IPv4 or IPv6
//! address. Once the tunnel is open it is handled exactly as an HTTP `CONNECT` tunnel:
//! sniffed, TLS intercepted where it can be, WebSockets decoded.
//!
//! The parser is sans-IO ([`parse_greeting`], [`parse_auth`], [`parse_request`]: each
//! says how many bytes it needs, and never panics on any input; `fuzz/` feeds it). Bad
//! input gets the reply the RFC has for it, or a clean close, never a hang: every read
//! has the handshake timeout.

use crate::error::UpstreamError;
use crate::io::Client;
use crate::session::{Ending, Session};
use crate::stage::Stage;
use crate::target::Target;
use crate::tunnel;
use crate::upstream::connect as dial_tcp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wstap_trace::{Outcome, SessionKind, Via};

/// The protocol version byte.
const VERSION: u8 = 5;
/// Methods.
const NO_AUTH: u8 = 0x00;
const USER_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;

/// A reply's code (RFC 1928, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Succeeded.
    Succeeded = 0x00,
    /// General failure.
    GeneralFailure = 0x01,
    /// Network unreachable.
    NetworkUnreachable = 0x03,
    /// Host unreachable.
    HostUnreachable = 0x04,
    /// Connection refused.
    ConnectionRefused = 0x05,
    /// TTL expired (a timeout).
    TtlExpired = 0x06,
    /// Command not supported.
    CommandNotSupported = 0x07,
    /// Address type not supported.
    AddressTypeNotSupported = 0x08,
}

/// Why a SOCKS client's bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    /// Not SOCKS version 5 (SOCKS4, or not SOCKS at all).
    #[error("not SOCKS5 (version byte {0:#04x})")]
    Version(u8),
    /// A greeting that offers no method.
    #[error("the greeting offers no authentication method")]
    NoMethods,
    /// The username/password sub-negotiation has the wrong version.
    #[error("user/password version {0:#04x}, not 1")]
    AuthVersion(u8),
    /// A command other than CONNECT.
    #[error("command {0:#04x} is not supported (CONNECT only)")]
    Command(u8),
    /// An address type other than IPv4, domain, IPv6.
    #[error("address type {0:#04x} is not supported")]
    AddressType(u8),
    /// A domain name that is empty or not text.
    #[error("the domain name is empty or not text")]
    Domain,
    /// Port 0.
    #[error("port 0 is not a destination")]
    Port,
    /// The reserved byte of a request is not zero.
    #[error("the request's reserved byte is {0:#04x}, not 0")]
    Reserved(u8),
}

impl SocksError {
    /// The reply a request with this error gets (greeting errors get none: the
    /// connection closes).
    pub fn reply(&self) -> Reply {
        match self {
            SocksError::Command(_) => Reply::CommandNotSupported,
            SocksError::AddressType(_) => Reply::AddressTypeNotSupported,
            _ => Reply::GeneralFailure,
        }
    }
}

/// What a parser needs: more bytes (at least this many in all), or it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The input must be this long (in all) before it can be parsed.
    Need(usize),
    /// The value, and how many bytes it took.
    Done(T, usize),
}

/// A greeting: the methods offered.
pub fn parse_greeting(bytes: &[u8]) -> Result<Parsed<Vec<u8>>, SocksError> {
    match bytes {
        [] => Ok(Parsed::Need(2)),
        [version, ..] if *version != VERSION => Err(SocksError::Version(*version)),
        [_] => Ok(Parsed::Need(2)),
        [_, 0, ..] => Err(SocksError::NoMethods),
        [_, n, methods @ ..] => {
            let n = usize::from(*n);
            match methods.get(..n) {
                Some(methods) => Ok(Parsed::Done(methods.to_vec(), 2 + n)),
                None => Ok(Parsed::Need(2 + n)),
            }
        }
    }
}

/// A user and a password, as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name's bytes.
    pub user: Vec<u8>,
    /// The password's bytes.
    pub password: Vec<u8>,
}

/// A username/password sub-negotiation (RFC 1929).
pub fn parse_auth(bytes: &[u8]) -> Result<Parsed<Credentials>, SocksError> {
    match bytes {
        [] => Ok(Parsed::Need(2)),
        [version, ..] if *version != 1 => Err(SocksError::AuthVersion(*version)),
        [_] => Ok(Parsed::Need(2)),
        [_, ulen, rest @ ..] => {
            let ulen = usize::from(*ulen);
            let Some((user, rest)) = rest.split_at_checked(ulen) else {
                return Ok(Parsed::Need(2 + ulen + 1));
            };
            let Some((&plen, rest)) = rest.split_first() else {
                return Ok(Parsed::Need(2 + ulen + 1));
            };
            let plen = usize::from(plen);
            match rest.get(..plen) {
                Some(password) => Ok(Parsed::Done(
                    Credentials {
                        user: user.to_vec(),
                        password: password.to_vec(),
                    },
                    3 + ulen + plen,
                )),
                None => Ok(Parsed::Need(3 + ulen + plen)),
            }
        }
    }
}

/// A request: where to connect.
pub fn parse_request(bytes: &[u8]) -> Result<Parsed<(String, u16)>, SocksError> {
    let Some(head) = bytes.get(..4) else {
        if let Some(&version) = bytes.first().filter(|&&v| v != VERSION) {
            return Err(SocksError::Version(version));
        }
        return Ok(Parsed::Need(4));
    };
    let (version, command, reserved, kind) = (head[0], head[1], head[2], head[3]);
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    if command != 0x01 {
        return Err(SocksError::Command(command));
    }
    if reserved != 0 {
        return Err(SocksError::Reserved(reserved));
    }
    let rest = &bytes[4..];
    let (host, used) = match kind {
        0x01 => match rest.get(..4) {
            Some(ip) => (
                std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                4,
            ),
            None => return Ok(Parsed::Need(4 + 4 + 2)),
        },
        0x04 => match rest.get(..16).and_then(|ip| <[u8; 16]>::try_from(ip).ok()) {
            Some(ip) => (std::net::Ipv6Addr::from(ip).to_string(), 16),
            None => return Ok(Parsed::Need(4 + 16 + 2)),
        },
        0x03 => {
            let Some(&len) = rest.first() else {
                return Ok(Parsed::Need(5));
            };
            let len = usize::from(len);
            let Some(name) = rest.get(1..1 + len) else {
                return Ok(Parsed::Need(5 + len + 2));
            };
            match std::str::from_utf8(name) {
                Ok(name) if !name.is_empty() && !name.contains(['\0', '/', ' ']) => {
                    (name.to_owned(), 1 + len)
                }
                _ => return Err(SocksError::Domain),
            }
        }
        other => return Err(SocksError::AddressType(other)),
    };
    let Some(port) = rest.get(used..used + 2) else {
        return Ok(Parsed::Need(4 + used + 2));
    };
    let port = u16::from_be_bytes([port[0], port[1]]);
    if port == 0 {
        return Err(SocksError::Port);
    }
    Ok(Parsed::Done((host, port), 4 + used + 2))
}

/// A reply with an all-zero bound address (clients of CONNECT do not use it).
fn reply(code: Reply) -> [u8; 10] {
    [VERSION, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// What the handshake came to.
enum Handshake {
    /// Connect here.
    Connect(Target),
    /// Refused: the reply to send (if any), and why, for the record.
    Refused(Option<Reply>, String),
}

/// Reads one message that `parse` accepts, exactly its bytes and no more.
async fn read_message<T>(
    stream: &mut TcpStream,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, SocksError>,
) -> std::io::Result<Result<T, SocksError>> {
    let mut buf = Vec::new();
    loop {
        match parse(&buf) {
            Ok(Parsed::Done(value, _)) => return Ok(Ok(value)),
            Ok(Parsed::Need(n)) => {
                let have = buf.len();
                buf.resize(n.max(have + 1), 0);
                stream.read_exact(&mut buf[have..]).await?;
            }
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// The greeting, the authentication and the request, as the client sends them.
async fn negotiate(
    stream: &mut TcpStream,
    credentials: Option<&str>,
) -> std::io::Result<Handshake> {
    let methods = match read_message(stream, parse_greeting).await? {
        Ok(methods) => methods,
        Err(e) => return Ok(Handshake::Refused(None, e.to_string())),
    };
    let wanted = if credentials.is_some() {
        USER_PASSWORD
    } else {
        NO_AUTH
    };
    if !methods.contains(&wanted) {
        stream.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
        let why = match credentials {
            Some(_) => "the client offered no user/password authentication (--proxy-auth is set)",
            None => "the client offered no method that needs no authentication",
        };
        return Ok(Handshake::Refused(None, why.to_owned()));
    }
    stream.write_all(&[VERSION, wanted]).await?;
    if let Some(expected) = credentials {
        let Credentials { user, password } = match read_message(stream, parse_auth).await? {
            Ok(given) => given,
            Err(e) => return Ok(Handshake::Refused(None, e.to_string())),
        };
        let given = [user.as_slice(), b":", password.as_slice()].concat();
        let ok = given == expected.as_bytes();
        stream.write_all(&[1, if ok { 0 } else { 1 }]).await?;
        if !ok {
            return Ok(Handshake::Refused(
                None,
                "wrong SOCKS5 user or password".to_owned(),
            ));
        }
    }
    match read_message(stream, parse_request).await? {
        Ok((host, port)) => Ok(Handshake::Connect(Target { host, port })),
        Err(e) => Ok(Handshake::Refused(Some(e.reply()), e.to_string())),
    }
}

/// The reply a failed connection to the target gets.
fn failure_reply(error: &UpstreamError) -> Reply {
    match error {
        UpstreamError::ConnectTimeout { .. } => Reply::TtlExpired,
        UpstreamError::Connect { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => Reply::ConnectionRefused,
            std::io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
            _ => Reply::HostUnreachable,
        },
        _ => Reply::GeneralFailure,
    }
}

/// Serves one connection accepted on a SOCKS5 listener up to its tunnel: the tunnel's
/// first stage, or `None` when the handshake failed (the session is then recorded).
pub(crate) async fn serve(mut session: Session, mut stream: TcpStream) -> Option<Stage> {
    let _ = stream.set_nodelay(true);
    let config = &session.shared.config;
    let timeout = config.handshake_timeout;
    let credentials = config.proxy_auth.clone();
    let negotiated =
        tokio::time::timeout(timeout, negotiate(&mut stream, credentials.as_deref())).await;
    let target = match negotiated {
        Ok(Ok(Handshake::Connect(target))) => target,
        Ok(Ok(Handshake::Refused(code, why))) => {
            if let Some(code) = code {
                let _ = stream.write_all(&reply(code)).await;
            }
            return fail(session, "-", why).await;
        }
        Ok(Err(e)) => {
            return fail(session, "-", format!("the SOCKS5 handshake broke off: {e}")).await
        }
        Err(_) => {
            return fail(
                session,
                "-",
                format!("no SOCKS5 handshake within {timeout:?}"),
            )
            .await
        }
    };
    let label = target.to_string();
    if crate::guard::is_self(&target, &session.shared.listening) {
        let _ = stream.write_all(&reply(Reply::ConnectionRefused)).await;
        return fail(
            session,
            &label,
            "the target is this proxy itself (a loop)".into(),
        )
        .await;
    }
    let parent = config.upstream_proxy.as_ref();
    let upstream = match dial_tcp(&target, config.connect_timeout, parent).await {
        Ok((upstream, parent)) => {
            session.note_upstream(parent, None);
            upstream
        }
        Err(e) => {
            let _ = stream.write_all(&reply(failure_reply(&e))).await;
            return fail(session, &label, e.to_string()).await;
        }
    };
    if stream.write_all(&reply(Reply::Succeeded)).await.is_err() {
        session.note_target(label, Via::Socks5, false);
        session
            .end(Outcome::Aborted, SessionKind::Tunnel, Ending::default())
            .await;
        return None;
    }
    let upstream = crate::io::Upstream::from_tcp(target.clone(), upstream);
    Some(tunnel::first_stage(session, Client::from_tcp(stream), upstream, target).await)
}

/// Records a SOCKS session that never got its tunnel; there is no stage to run.
async fn fail(mut session: Session, target: &str, why: String) -> Option<Stage> {
    session.note_target(target, Via::Socks5, false);
    let ending = Ending {
        error: Some(why),
        ..Ending::default()
    };
    session
        .end(Outcome::Error, SessionKind::Tunnel, ending)
        .await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings() {
        assert_eq!(parse_greeting(&[]), Ok(Parsed::Need(2)));
        assert_eq!(parse_greeting(&[5]), Ok(Parsed::Need(2)));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(Parsed::Need(4)));
        assert_eq!(
            parse_greeting(&[5, 2, 0, 2]),
            Ok(Parsed::Done(vec![0, 2], 4))
        );
        assert_eq!(parse_greeting(&[4, 1]), Err(SocksError::Version(4)));
        assert_eq!(
            parse_greeting(b"GET / HTTP/1.1"),
            Err(SocksError::Version(b'G'))
        );
        assert_eq!(parse_greeting(&[5, 0]), Err(SocksError::NoMethods));
    }

    #[test]
    fn user_and_password() {
        assert_eq!(parse_auth(&[1, 1, b'u']), Ok(Parsed::Need(4)));
        assert_eq!(
            parse_auth(&[1, 1, b'u', 2, b'p', b'w']),
            Ok(Parsed::Done(
                Credentials {
                    user: b"u".to_vec(),
                    password: b"pw".to_vec()
                },
                6
            ))
        );
        assert_eq!(parse_auth(&[5, 1]), Err(SocksError::AuthVersion(5)));
    }

    #[test]
    fn requests_for_each_address_type() {
        let v4 = [5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
        assert_eq!(
            parse_request(&v4),
            Ok(Parsed::Done(("127.0.0.1".into(), 8080), 10))
        );
        assert_eq!(parse_request(&v4[..7]), Ok(Parsed::Need(10)));
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(&[1, 0, 80]);
        assert_eq!(parse_request(&v6), Ok(Parsed::Done(("::1".into(), 80), 22)));
        let mut name = vec![5, 1, 0, 3, 11];
        name.extend_from_slice(b"example.com");
        assert_eq!(parse_request(&name), Ok(Parsed::Need(18)));
        name.extend_from_slice(&[1, 187]);
        assert_eq!(
            parse_request(&name),
            Ok(Parsed::Done(("example.com".into(), 443), 18))
        );
        assert_eq!(parse_request(&[5, 2, 0, 1]), Err(SocksError::Command(2)));
        assert_eq!(parse_request(&[5, 3, 0, 1]), Err(SocksError::Command(3)));
        assert_eq!(
            parse_request(&[5, 1, 0, 9]),
            Err(SocksError::AddressType(9))
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(SocksError::Domain)
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 1, 1, 2, 3, 4, 0, 0]),
            Err(SocksError::Port)
        );
        assert_eq!(parse_request(&[4]), Err(SocksError::Version(4)));
        assert_eq!(SocksError::Command(2).reply(), Reply::CommandNotSupported);
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            fn need_is_more<T>(len: usize, parsed: Result<Parsed<T>, SocksError>) {
                match parsed {
                    Ok(Parsed::Need(n)) => assert!(n > len, "asks for {n} with {len}"),
                    Ok(Parsed::Done(_, used)) => assert!(used <= len),
                    Err(_) => {}
                }
            }
            need_is_more(bytes.len(), parse_greeting(&bytes));
            need_is_more(bytes.len(), parse_auth(&bytes));
            need_is_more(bytes.len(), parse_request(&bytes));
        }
    }
}

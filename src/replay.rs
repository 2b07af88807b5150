//! `wstap replay [CAPTURE] --session N`: plays a recorded session's client side against
//! its server again (or `--to` another), with the recorded handshake (a new key; the
//! subprotocol and extensions offered as recorded), the client's messages at their
//! recorded offsets (`--timing original`) or each as soon as the server has answered the
//! one before as often as it did in the recording (`--timing fast`), compressed when
//! permessage-deflate is agreed; then compares the server's answers with the recording
//! (see [`crate::diff`]): exit status 0 only when they are the same.

use crate::captures::{chosen, open_capture, session_messages};
use crate::compare::Compared;
use crate::diff::{compared, report, Side};
use crate::endpoint::Endpoint;
use crate::AppError;
use base64::Engine;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};
use wstap_store::StoredMessage;
use wstap_wire::deflate::{parse_extensions, PERMESSAGE_DEFLATE};
use wstap_wire::handshake::compute_accept;
use wstap_wire::mask::random_key;
use wstap_wire::{DeflateParams, Direction, Opcode};

/// Options of `wstap replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The capture (default: the newest in ~/.wstap/captures).
    pub capture: Option<PathBuf>,
    /// The session to replay.
    #[arg(long, value_name = "N")]
    pub session: u64,
    /// Connect here instead (ws:// or wss://, with a path; default: the recorded URL).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// When the client's messages go out.
    #[arg(long, value_enum, default_value_t = Timing::Original)]
    pub timing: Timing,
    /// A JSON path (`id`, `params.0.ts`) left out of the comparison (repeatable).
    #[arg(long, value_name = "PATH")]
    pub ignore: Vec<String>,
    /// How long to wait for answers the server is still due, in seconds.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds)]
    pub wait: Duration,
    /// Trust this CA (PEM) for a wss server as well as the platform's roots (repeatable).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Do not verify a wss server's certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Go through this HTTP proxy (`http://[user:password@]host:port`, a `CONNECT`
    /// tunnel): a running wstap records the replayed session into its capture (over wss,
    /// wstap's own CA is trusted then, as the proxy presents its certificates).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
}

/// When the client's messages go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Timing {
    /// At their recorded offsets from the opening.
    Original,
    /// Each once the server has sent as many messages as it had before it in the
    /// recording (or after `--wait` without them).
    Fast,
}

/// Request headers not replayed as recorded: the new connection makes its own.
const NOT_REPLAYED: [&str; 4] = [
    "sec-websocket-key",
    "host",
    "proxy-connection",
    "proxy-authorization",
];

/// The client's side of the recording.
struct Plan {
    /// Its data messages.
    messages: Vec<Planned>,
    /// How many data messages the server sent.
    expected: usize,
    /// Its close's payload.
    close: Vec<u8>,
}

/// A client message to send, and when.
struct Planned {
    opcode: Opcode,
    data: Vec<u8>,
    offset: Duration,
    /// Server messages recorded before it.
    after_server: usize,
}

impl Plan {
    /// What the client did in `messages` (a session's, in order), from `opened_us`.
    fn of(messages: &[StoredMessage], opened_us: i64) -> Result<Plan, String> {
        let mut planned = Vec::new();
        let mut server_before = 0;
        // The client's close as recorded (a close with no code stays one), else 1000.
        let mut close = None;
        for m in messages {
            let message = &m.message;
            let opcode = Opcode::from_bits(message.opcode);
            let data_message = matches!(opcode, Opcode::Text | Opcode::Binary);
            let from_the_peer = message.origin.is_wire();
            match message.dir {
                Direction::ServerToClient if data_message && from_the_peer => server_before += 1,
                Direction::ClientToServer if opcode == Opcode::Close && from_the_peer => {
                    close.get_or_insert_with(|| message.payload.bytes.clone());
                }
                Direction::ClientToServer if data_message && from_the_peer => {
                    if message.payload.truncated || message.payload.dropped {
                        return Err(format!(
                            "client message {} was not kept whole in the capture",
                            m.seq
                        ));
                    }
                    let offset = message.time.timestamp_micros() - opened_us;
                    planned.push(Planned {
                        opcode,
                        data: message.payload.bytes.clone(),
                        offset: Duration::from_micros(u64::try_from(offset).unwrap_or(0)),
                        after_server: server_before,
                    });
                }
                _ => {}
            }
        }
        Ok(Plan {
            messages: planned,
            expected: server_before,
            close: close.unwrap_or_else(|| 1000u16.to_be_bytes().to_vec()),
        })
    }
}

/// Runs `wstap replay`.
pub async fn replay(args: ReplayArgs) -> Result<(), AppError> {
    let path = chosen(args.capture.as_deref())?;
    let capture = open_capture(&path)?;
    let session = args.session;
    let bad = |why: String| AppError::BadInput(format!("session {session}: {why}"));
    let stored = capture
        .handshake(session)
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("not a WebSocket session (no handshake recorded)".to_owned()))?;
    let exchange = &stored.handshake.exchange;
    let opened_us =
        exchange.time.timestamp_micros() + stored.handshake.duration_us.map_or(0, |d| d as i64);
    let messages = session_messages(&capture, session)?;
    let plan = Plan::of(&messages, opened_us).map_err(bad)?;
    let recorded = compared(messages, Side::Server);
    let url = args.to.clone().unwrap_or_else(|| exchange.url.clone());
    let target = Target::parse(&url).map_err(AppError::BadInput)?;
    let headers: Vec<(String, String)> = exchange
        .request
        .headers
        .iter()
        .filter(|(n, _)| !NOT_REPLAYED.contains(&n.to_ascii_lowercase().as_str()))
        .cloned()
        .collect();
    println!(
        "wstap replay: session {session} to {url}: {} client messages, {} server messages recorded",
        plan.messages.len(),
        plan.expected
    );
    let tcp = match &args.proxy {
        None => connect(&target.host, target.port).await?,
        Some(proxy) => {
            let proxy = ProxyUrl::parse(proxy).map_err(AppError::BadInput)?;
            let mut tunnel = connect(&proxy.host, proxy.port).await?;
            open_tunnel(&mut tunnel, &proxy, &target).await?;
            tunnel
        }
    };
    let wait = args.wait;
    let received = if target.tls {
        let mut upstream_ca = args.upstream_ca.clone();
        if args.proxy.is_some() {
            // A wstap in the way presents certificates of its CA: trust it too.
            let own = crate::run::ca_dir(None)
                .map(|dir| dir.join(wstap_proxy::tls::ca::CERT_PEM))
                .ok()
                .filter(|pem| pem.is_file());
            upstream_ca.extend(own);
        }
        let config = wstap_proxy::tls::upstream_client_config(&wstap_proxy::TlsConfig {
            upstream_ca,
            insecure: args.insecure,
            ..wstap_proxy::TlsConfig::default()
        })
        .map_err(|e| AppError::BadInput(e.to_string()))?;
        let name = rustls_pki_name(&target.host)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| AppError::Export(format!("TLS with {url}: {e}")))?;
        play(tls, &target, &headers, &plan, args.timing, wait).await?
    } else {
        play(tcp, &target, &headers, &plan, args.timing, wait).await?
    };
    report(&recorded, &received, &args.ignore)
}

/// A number of seconds (`2`, `0.5`), at most a day.
fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds from 0 to 86400"))
}

/// A TCP connection to `host:port`, within 10 s.
async fn connect(host: &str, port: u16) -> Result<TcpStream, AppError> {
    timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
        .await
        .map_err(|_| AppError::Export(format!("connecting to {host}:{port}: timed out")))?
        .map_err(|e| AppError::Export(format!("connecting to {host}:{port}: {e}")))
}

/// An HTTP proxy to tunnel through: `http://[user:password@]host:port`.
#[derive(Debug, PartialEq, Eq)]
struct ProxyUrl {
    host: String,
    port: u16,
    /// `user:password`, for `Proxy-Authorization: Basic`.
    credentials: Option<String>,
}

impl ProxyUrl {
    fn parse(url: &str) -> Result<ProxyUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--proxy {url}: not an http:// URL"))?;
        let rest = rest.trim_end_matches('/');
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((credentials, authority)) => (Some(credentials.to_owned()), authority),
            None => (None, rest),
        };
        // The port is required: a proxy has no default one worth guessing.
        let (host, port) = authority
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("--proxy {url}: give the proxy's host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("--proxy {url}: no host"));
        }
        Ok(ProxyUrl {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// Asks `proxy` (already connected on `stream`) for a tunnel to `target`.
async fn open_tunnel(
    stream: &mut TcpStream,
    proxy: &ProxyUrl,
    target: &Target,
) -> Result<(), AppError> {
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let mut request = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(credentials) = &proxy.credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| AppError::Export(format!("asking the proxy for a tunnel: {e}")))?;
    let (status, _, rest) = read_response(stream).await?;
    if !(200..300).contains(&status) || !rest.is_empty() {
        return Err(AppError::Export(format!(
            "the proxy answered CONNECT {host} with {status}"
        )));
    }
    Ok(())
}

fn rustls_pki_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, AppError> {
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| AppError::BadInput(format!("{host}: {e}")))
}

/// Where to connect: from a ws:// or wss:// URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// `host` or `host:port` as the Host header says it.
    authority: String,
    /// Path and query.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(format!("{url}: not a ws:// or wss:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
                match after.strip_prefix(':') {
                    Some(port) => (host, port),
                    None if after.is_empty() => (host, ""),
                    None => return Err(format!("{url}: bad host")),
                }
            }
            None => authority.split_once(':').unwrap_or((authority, "")),
        };
        let port = match port {
            "" => default_port,
            port => port
                .parse::<u16>()
                .map_err(|_| format!("{url}: bad port {port:?}"))?,
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }
}

/// The opening handshake, the client's messages as planned, and the close; returns the
/// server's messages.
async fn play<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    headers: &[(String, String)],
    plan: &Plan,
    timing: Timing,
    wait: Duration,
) -> Result<Vec<Compared>, AppError> {
    let failed = |what: &str, e: std::io::Error| AppError::Export(format!("{what}: {e}"));
    let key = new_key();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        target.path, target.authority
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Sec-WebSocket-Key: {key}\r\n\r\n"));
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed("sending the handshake", e))?;
    let (status, response, rest) = read_response(&mut stream).await?;
    if status != 101 {
        return Err(AppError::Export(format!(
            "the server answered the handshake with {status}, not 101"
        )));
    }
    let header = |name: &str| {
        response
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if header("Sec-WebSocket-Accept") != compute_accept(&key) {
        return Err(AppError::Export(
            "the server's Sec-WebSocket-Accept does not match the key".to_owned(),
        ));
    }
    let deflate = parse_extensions(&header("Sec-WebSocket-Extensions"))
        .into_iter()
        .find(|e| e.name == PERMESSAGE_DEFLATE)
        .map(|e| DeflateParams::from_extension(&e))
        .transpose()
        .map_err(|e| AppError::Export(format!("the server's permessage-deflate: {e}")))?;
    println!(
        "  connected{}",
        if deflate.is_some() {
            ", permessage-deflate"
        } else {
            ""
        }
    );
    let mut session = Session {
        endpoint: Endpoint::new(Direction::ClientToServer, deflate),
        received: Vec::new(),
        seq: 0,
        server_closed: false,
    };
    session.heard(&rest);
    let opened = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = 0;
    let mut last_activity = Instant::now();
    let mut close_sent: Option<Instant> = None;
    loop {
        let data_received = session.data_received();
        let due = match plan.messages.get(next) {
            _ if close_sent.is_some() => None,
            Some(planned) => Some(match timing {
                Timing::Original => opened + planned.offset,
                Timing::Fast if data_received >= planned.after_server => Instant::now(),
                Timing::Fast => last_activity + wait,
            }),
            // Everything sent: close once the server's due answers came, or it went quiet.
            None if data_received >= plan.expected => Some(Instant::now()),
            None => Some(last_activity + wait),
        };
        if session.server_closed {
            if close_sent.is_none() {
                // The server closed first: answer its close with its code, as a client must.
                let code = session.server_close_code();
                let _ = session.send(&mut stream, Opcode::Close, &code).await;
            }
            break;
        }
        if let Some(sent) = close_sent {
            if sent.elapsed() > wait {
                break;
            }
        }
        let give_up = close_sent.map(|sent| sent + wait);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    session.heard(&buf[..n]);
                    last_activity = Instant::now();
                }
            },
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                match plan.messages.get(next) {
                    Some(planned) => {
                        session.send(&mut stream, planned.opcode, &planned.data).await
                            .map_err(|e| failed("sending a message", e))?;
                        next += 1;
                        last_activity = Instant::now();
                    }
                    None => {
                        session.send(&mut stream, Opcode::Close, &plan.close).await
                            .map_err(|e| failed("sending the close", e))?;
                        close_sent = Some(Instant::now());
                    }
                }
            }
            () = sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => break,
        }
    }
    let _ = stream.shutdown().await;
    Ok(session.received)
}

/// The connection's state once open.
struct Session {
    endpoint: Endpoint,
    received: Vec<Compared>,
    /// Messages of the new session so far, both ways (their numbers).
    seq: u64,
    server_closed: bool,
}

impl Session {
    /// The code of the server's close (as its first two bytes), or none.
    fn server_close_code(&self) -> Vec<u8> {
        self.received
            .iter()
            .find(|m| m.opcode == Opcode::Close)
            .map(|m| m.data.iter().take(2).copied().collect())
            .unwrap_or_default()
    }

    fn data_received(&self) -> usize {
        self.received
            .iter()
            .filter(|m| m.opcode != Opcode::Close)
            .count()
    }

    fn heard(&mut self, bytes: &[u8]) {
        for message in self.endpoint.heard(bytes) {
            if matches!(
                message.opcode,
                Opcode::Text | Opcode::Binary | Opcode::Close
            ) {
                self.server_closed |= message.opcode == Opcode::Close;
                self.received.push(Compared {
                    seq: self.seq,
                    opcode: message.opcode,
                    data: message.data.data,
                });
                self.seq += 1;
            }
        }
    }

    /// Writes one message, masked, compressed when deflate was agreed.
    async fn send(
        &mut self,
        stream: &mut (impl AsyncWrite + Unpin),
        opcode: Opcode,
        data: &[u8],
    ) -> std::io::Result<()> {
        let frame = self.endpoint.frame(opcode, data)?;
        self.seq += 1;
        stream.write_all(&frame).await
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
fn new_key() -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(4) {
        chunk.copy_from_slice(&random_key());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The response head: status, headers, and bytes read past it.
async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), AppError> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > 64 * 1024 {
            return Err(AppError::Export("the response head is too long".to_owned()));
        }
        let mut chunk = [0u8; 4096];
        let n = timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| AppError::Export("no answer to the handshake in 10 s".to_owned()))?
            .map_err(|e| AppError::Export(format!("reading the handshake's answer: {e}")))?;
        if n == 0 {
            return Err(AppError::Export(
                "the server closed the connection during the handshake".to_owned(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| AppError::Export(format!("not an HTTP response: {head:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, buf[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_urls() {
        assert_eq!(
            Target::parse("wss://example.com/chat?room=1").unwrap(),
            Target {
                tls: true,
                host: "example.com".into(),
                port: 443,
                authority: "example.com".into(),
                path: "/chat?room=1".into(),
            }
        );
        let t = Target::parse("ws://127.0.0.1:9001").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9001, "/")
        );
        let t = Target::parse("ws://[::1]:8080/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        let t = Target::parse("wss://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert!(Target::parse("ws://[::1/").is_err());
        let t = Target::parse("ws://host?q=1").unwrap();
        assert_eq!(t.path, "/?q=1");
        assert!(Target::parse("http://host/").is_err());
        assert!(Target::parse("ws://host:99999/").is_err());
        assert!(Target::parse("ws:///path").is_err());
    }

    #[test]
    fn waits_are_seconds_within_a_day() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["-1", "inf", "NaN", "1e9", "soon"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxies_from_urls() {
        assert_eq!(
            ProxyUrl::parse("http://127.0.0.1:8888").unwrap(),
            ProxyUrl {
                host: "127.0.0.1".into(),
                port: 8888,
                credentials: None
            }
        );
        let p = ProxyUrl::parse("http://ann:s3cret@[::1]:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 3128));
        assert_eq!(p.credentials.as_deref(), Some("ann:s3cret"));
        assert!(ProxyUrl::parse("socks5://127.0.0.1:1080").is_err());
        assert!(ProxyUrl::parse("http://127.0.0.1").is_err());
        assert!(ProxyUrl::parse("http://:8888").is_err());
    }
}

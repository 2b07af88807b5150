//! The replayed connection: the opening handshake with the recorded headers, the
//! client's messages as planned, the close, and the server's messages as they came.

use super::net::{read_response, Target};
use super::plan::Plan;
use super::Timing;
use crate::compare::Compared;
use crate::endpoint::Endpoint;
use crate::AppError;
use base64::Engine;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};
use wstap_wire::deflate::{parse_extensions, PERMESSAGE_DEFLATE};
use wstap_wire::handshake::{compute_accept, header_values};
use wstap_wire::mask::random_key;
use wstap_wire::{DeflateParams, Direction, Opcode};

/// The opening handshake, the client's messages as planned, and the close; returns the
/// server's messages.
pub(super) async fn play<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    headers: &[(String, String)],
    plan: &Plan,
    timing: Timing,
    wait: Duration,
    quiet: bool,
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
    let (response, rest) = read_response(&mut stream).await?;
    let status = response.status();
    if status != 101 {
        return Err(AppError::Export(format!(
            "the server answered the handshake with {status}, not 101"
        )));
    }
    let header = |name: &str| {
        header_values(&response.headers, name)
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
    if !quiet {
        println!(
            "  connected{}",
            if deflate.is_some() {
                ", permessage-deflate"
            } else {
                ""
            }
        );
    }
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
                    data: message.data.data.to_vec(),
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

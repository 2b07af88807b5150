//! One client of `wstap mock`: its handshake answered as recorded, then the script played
//! while the client's messages are read (whole and inflated: [`Endpoint`]) and matched
//! with the recording.

use super::rules::MockRules;
use super::script::{Match, Matcher, Script, Trigger};
use super::Options;
use crate::diff::preview;
use crate::endpoint::{read_head, Endpoint};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};
use wstap_control::Outcome;
use wstap_proxy::{take_request, Request};
use wstap_wire::deflate::{parse_extensions, Extension, PERMESSAGE_DEFLATE};
use wstap_wire::handshake::{compute_accept, header_tokens, header_values, is_websocket_upgrade};
use wstap_wire::{DeflateParams, Direction, Opcode};

/// How long the client has to answer a close before the connection is dropped.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one connection from `peer` (plain or TLS); every outcome is reported on the
/// console, none is an error.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: String,
    scripts: Arc<Vec<Script>>,
    options: Arc<Options>,
) {
    let (request, rest) = match read_request(&mut stream).await {
        Ok(found) => found,
        Err(why) => {
            refuse(&mut stream, 400, &why).await;
            println!("mock: {peer}: refused: {why}");
            return;
        }
    };
    let Some(script) = choose(&scripts, request.target()) else {
        let why = format!("no recorded session for {}", request.target());
        refuse(&mut stream, 404, &why).await;
        println!("mock: {peer}: refused: {why}");
        return;
    };
    let Some(key) = header_values(&request.headers, "Sec-WebSocket-Key")
        .next()
        .map(str::to_owned)
    else {
        let why = "not a WebSocket handshake (no Sec-WebSocket-Key)";
        refuse(&mut stream, 400, why).await;
        println!("mock: {peer}: refused: {why}");
        return;
    };
    let (head, deflate) = answer(script, &request, &key);
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    println!(
        "mock: {peer}: session {} ({}){}",
        script.session,
        request.target(),
        if deflate.is_some() {
            ", permessage-deflate"
        } else {
            ""
        }
    );
    // The connection as a proxy's rules would see it: host and port from `Host`.
    let authority = header_values(&request.headers, "Host")
        .next()
        .unwrap_or_default()
        .to_owned();
    let (host, port) = wstap_store::facts::split_target(&authority);
    let info = wstap_control::SessionInfo {
        id: script.session,
        host: host.to_owned(),
        port,
        url: format!("ws://{authority}{}", request.target()),
        path: request.target().to_owned(),
        client: peer.clone(),
        subprotocol: script.subprotocol.clone(),
        status: Some(101),
        ..wstap_control::SessionInfo::default()
    };
    let mut player = Player::new(script, &options, deflate, info);
    let end = player.run(&mut stream, rest).await;
    println!("mock: {peer}: {end}");
}

/// The script for `target`: the one recorded with that target, else with that path, else
/// the only one.
fn choose<'s>(scripts: &'s [Script], target: &str) -> Option<&'s Script> {
    let path = |t: &str| t.split('?').next().unwrap_or_default().to_owned();
    scripts
        .iter()
        .find(|s| s.target == target)
        .or_else(|| scripts.iter().find(|s| path(&s.target) == path(target)))
        .or_else(|| (scripts.len() == 1).then(|| &scripts[0]))
}

/// The 101 answer as recorded: the subprotocol when the client offers it, and the
/// recorded permessage-deflate when the client offers that (less a client window the
/// client did not offer to limit).
fn answer(script: &Script, request: &Request, key: &str) -> (String, Option<DeflateParams>) {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        compute_accept(key)
    );
    if let Some(protocol) = &script.subprotocol {
        if header_tokens(&request.headers, "Sec-WebSocket-Protocol").any(|t| t == protocol) {
            head.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
        }
    }
    let offers: Vec<Extension> = header_values(&request.headers, "Sec-WebSocket-Extensions")
        .flat_map(parse_extensions)
        .filter(|e| e.name == PERMESSAGE_DEFLATE)
        .collect();
    let mut deflate = None;
    if let (Some(recorded), Some(offer)) = (&script.deflate, offers.first()) {
        let mut accepted = recorded.clone();
        let offered_client_window = offer
            .params
            .iter()
            .any(|(k, _)| k == "client_max_window_bits");
        accepted
            .params
            .retain(|(k, _)| offered_client_window || k != "client_max_window_bits");
        if let Ok(params) = DeflateParams::from_extension(&accepted) {
            head.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                accepted.to_header_value()
            ));
            deflate = Some(params);
        }
    }
    head.push_str("\r\n");
    (head, deflate)
}

/// Reads the request head (the proxy's own parser) and checks that it asks for a
/// WebSocket; returns it and any bytes read after it.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Request, Vec<u8>), String> {
    let (request, rest) = read_head(stream, take_request, None)
        .await
        .map_err(|e| format!("not a GET request: {e}"))?;
    if request.method() != "GET" {
        return Err(format!("not a GET request: {}", request.method()));
    }
    if !is_websocket_upgrade(&request.headers) {
        return Err("not a WebSocket upgrade (no Upgrade: websocket)".to_owned());
    }
    Ok((request, rest.to_vec()))
}

/// Answers a request that cannot be served, with the reason as its body.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, why: &str) {
    let reason = if status == 404 {
        "Not Found"
    } else {
        "Bad Request"
    };
    let body = format!("{why}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What a rule made of a client's message.
enum Ruled {
    /// Match it with the recording (as the rule rewrote it).
    Match(Vec<u8>),
    /// Handled: answered or dropped.
    Done,
    /// The connection is over, so.
    Ended(String),
}

/// Plays one script on one connection.
struct Player<'s> {
    script: &'s Script,
    rules: &'s MockRules,
    /// The connection as the rules' filters see it.
    info: wstap_control::SessionInfo,
    strict: bool,
    matcher: Matcher,
    /// When each recorded client message was matched.
    heard_at: Vec<Option<Instant>>,
    next: usize,
    opened: Instant,
    endpoint: Endpoint,
    close_sent: bool,
}

impl<'s> Player<'s> {
    fn new(
        script: &'s Script,
        options: &'s Options,
        deflate: Option<DeflateParams>,
        info: wstap_control::SessionInfo,
    ) -> Self {
        Player {
            script,
            rules: &options.rules,
            info,
            strict: options.strict,
            matcher: Matcher::new(script.client.len(), options.matching, &options.ignore),
            heard_at: vec![None; script.client.len()],
            next: 0,
            opened: Instant::now(),
            endpoint: Endpoint::new(Direction::ServerToClient, deflate),
            close_sent: false,
        }
    }

    /// When the next step is due, if it can be known yet.
    fn due(&self) -> Option<Instant> {
        let step = self.script.steps.get(self.next)?;
        match step.trigger {
            Trigger::At(offset) => Some(self.opened + offset),
            Trigger::After { client, delay } => self.heard_at[client].map(|at| at + delay),
        }
    }

    /// Plays until the connection ends; says how it ended.
    async fn run(
        &mut self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        mut pending: Vec<u8>,
    ) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        let mut closing_since: Option<Instant> = None;
        loop {
            if !pending.is_empty() {
                let chunk = std::mem::take(&mut pending);
                match self.heard(stream, &chunk).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return end,
                    Err(e) => return format!("write failed: {e}"),
                }
            }
            let due = if self.close_sent { None } else { self.due() };
            let give_up = closing_since.map(|at| at + CLOSE_WAIT);
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) => return self.ended("the client closed the connection"),
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                    Err(e) => return self.ended(&format!("read failed: {e}")),
                },
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    let step = &self.script.steps[self.next];
                    self.next += 1;
                    if let Err(e) = self.send(stream, step.message.opcode, &step.message.data).await {
                        return format!("write failed: {e}");
                    }
                    if step.message.opcode == Opcode::Close {
                        self.close_sent = true;
                        closing_since = Some(Instant::now());
                    }
                }
                () = sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                    return "the client did not answer the close; connection dropped".to_owned();
                }
            }
        }
    }

    fn ended(&self, how: &str) -> String {
        format!(
            "{how}; {} of {} server messages played",
            self.next,
            self.script.steps.len()
        )
    }

    /// Handles the client's bytes; `Some` when the connection is over.
    async fn heard(
        &mut self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        chunk: &[u8],
    ) -> std::io::Result<Option<String>> {
        for message in self.endpoint.heard(chunk) {
            let data = message.data.data.to_vec();
            match message.opcode {
                Opcode::Text | Opcode::Binary => {
                    let data = match self.ruled(stream, message.opcode, data).await? {
                        Ruled::Match(data) => data,
                        Ruled::Done => continue,
                        Ruled::Ended(end) => return Ok(Some(end)),
                    };
                    let heard = self
                        .matcher
                        .hear(&self.script.client, message.opcode, &data);
                    let shown = preview(message.opcode, &data);
                    if let Some(end) = self.report(stream, heard, &shown).await? {
                        return Ok(Some(end));
                    }
                }
                Opcode::Ping => self.send(stream, Opcode::Pong, &data).await?,
                Opcode::Close => {
                    if !self.close_sent {
                        self.send(stream, Opcode::Close, &data).await?;
                    }
                    let _ = stream.shutdown().await;
                    return Ok(Some(self.ended("closed by the client")));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// What the first rule that selects a client message makes of it.
    async fn ruled(
        &mut self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        opcode: Opcode,
        data: Vec<u8>,
    ) -> std::io::Result<Ruled> {
        let now_us = chrono::Utc::now().timestamp_micros();
        let Some((rule, rewritten)) = self.rules.first_match(&self.info, opcode, &data, now_us)
        else {
            return Ok(Ruled::Match(data));
        };
        let shown = preview(opcode, &data);
        if let Some(delay) = rule.delay {
            tokio::time::sleep(delay).await;
        }
        let name = &rule.name;
        match &rule.outcome {
            Outcome::Forward | Outcome::Break => {
                if rewritten != data {
                    println!("mock:   client message rewritten by {name}: {shown}");
                }
                Ok(Ruled::Match(rewritten))
            }
            Outcome::Drop => {
                println!("mock:   client message dropped by {name}: {shown}");
                Ok(Ruled::Done)
            }
            Outcome::Respond { opcode, payload } => {
                println!("mock:   client message answered by {name}: {shown}");
                self.send(stream, *opcode, payload).await?;
                Ok(Ruled::Done)
            }
            Outcome::Close { code, reason, .. } => {
                let mut close = code.to_be_bytes().to_vec();
                close.extend_from_slice(reason.as_bytes());
                self.send(stream, Opcode::Close, &close).await?;
                self.close_sent = true;
                let _ = stream.shutdown().await;
                Ok(Ruled::Ended(
                    self.ended(&format!("closed with {code} by {name}")),
                ))
            }
            Outcome::Abort => Ok(Ruled::Ended(
                self.ended(&format!("dropped by {name} without a close frame")),
            )),
        }
    }

    /// Says what a client message was; in strict mode, closes on one unrecorded.
    async fn report(
        &mut self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        heard: Match,
        preview: &str,
    ) -> std::io::Result<Option<String>> {
        match heard {
            Match::Expected(index) => {
                self.heard_at[index] = Some(Instant::now());
                println!(
                    "mock:   client message as recorded (#{}): {preview}",
                    self.script.client[index].seq
                );
            }
            Match::Differs(index) => {
                self.heard_at[index] = Some(Instant::now());
                println!(
                    "mock:   client message differs from the recorded #{}: {preview}",
                    self.script.client[index].seq
                );
            }
            Match::Unexpected => {
                println!("mock:   client message with no recorded counterpart: {preview}");
                if self.strict {
                    let mut close = 1008u16.to_be_bytes().to_vec();
                    close.extend_from_slice(b"unexpected message");
                    self.send(stream, Opcode::Close, &close).await?;
                    self.close_sent = true;
                    let _ = stream.shutdown().await;
                    return Ok(Some(self.ended("closed with 1008 (--strict)")));
                }
            }
        }
        Ok(None)
    }

    /// Writes one message as a single frame, compressed when deflate was agreed.
    async fn send(
        &mut self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        opcode: Opcode,
        data: &[u8],
    ) -> std::io::Result<()> {
        let frame = self.endpoint.frame(opcode, data)?;
        stream.write_all(&frame).await
    }
}

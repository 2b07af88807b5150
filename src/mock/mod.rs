//! `wstap mock [CAPTURE] --session N`: serves the **server side** of recorded sessions to
//! any client, offline. The handshake is answered as recorded (subprotocol,
//! permessage-deflate), then the server's messages are played: unprompted ones at their
//! recorded offsets, answers when the client sends the message they answered (see
//! [`script`]). Every client message is reported against the recording; `--strict` closes
//! with 1008 on one the recording does not have.

mod conn;
mod rules;
mod script;

use crate::captures::{chosen, open_capture, session_messages};
use crate::AppError;
use clap::Args;
pub use script::Matching;
use script::{Heard, Script};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wstap_filter::Filter;
use wstap_store::Capture;
use wstap_wire::deflate::{parse_extensions, PERMESSAGE_DEFLATE};
use wstap_wire::Opcode;

/// Options of `wstap mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// The capture (default: the newest in ~/.wstap/captures).
    pub capture: Option<PathBuf>,
    /// A session to serve (repeatable: each is served at its recorded path).
    #[arg(long, value_name = "N", required_unless_present = "filter")]
    pub session: Vec<u64>,
    /// Serve every WebSocket session this filter selects (docs/filters.md), each at its
    /// recorded path.
    #[arg(long, value_name = "EXPR", value_parser = crate::FilterParser)]
    pub filter: Option<Filter>,
    /// Address to listen on (port 0: any free port; loopback unless said otherwise).
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// How a client's messages are paired with the recorded ones.
    #[arg(long = "match", value_enum, default_value_t = Matching::Content)]
    pub matching: Matching,
    /// A JSON path (`id`, `params.0.ts`) left out when comparing messages (repeatable).
    #[arg(long, value_name = "PATH")]
    pub ignore: Vec<String>,
    /// A server message that began within this many milliseconds after a client message
    /// is its answer; any later one is played at its recorded offset.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub answer_window: u64,
    /// Close with 1008 when the client sends a message the recording does not have.
    #[arg(long)]
    pub strict: bool,
    /// Serve wss: TLS with certificates from wstap's CA (the one the proxy uses), for
    /// whatever name the client asks for.
    #[arg(long)]
    pub tls: bool,
    /// Where wstap's CA lives (default: ~/.wstap/ca, or $WSTAP_HOME/ca).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Rules (docs/rules.md) that decide a client's message before it is matched:
    /// rewrite it (an id set to the recorded one), answer it (`respond`), drop it, close
    /// or abort.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

/// What every connection plays by.
#[derive(Debug)]
pub struct Options {
    matching: Matching,
    ignore: Vec<String>,
    strict: bool,
    rules: rules::MockRules,
}

/// Runs `wstap mock` until Ctrl-C.
pub async fn mock(args: MockArgs) -> Result<(), AppError> {
    let path = chosen(args.capture.as_deref())?;
    let capture = open_capture(&path)?;
    let window = Duration::from_millis(args.answer_window);
    let mut sessions = args.session.clone();
    if let Some(filter) = &args.filter {
        let selected = capture
            .session_ids(filter, None)
            .map_err(|e| AppError::BadInput(e.to_string()))?;
        for id in selected {
            let websocket = capture.handshake(id).ok().flatten().is_some();
            if websocket && !sessions.contains(&id) {
                sessions.push(id);
            }
        }
        if sessions.is_empty() {
            return Err(AppError::BadInput(format!(
                "the filter selects no WebSocket session of {}",
                path.display()
            )));
        }
    }
    let scripts = sessions
        .iter()
        .map(|&session| load(&capture, session, window))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = match &args.rules {
        Some(path) => rules::MockRules::load(path)?,
        None => rules::MockRules::default(),
    };
    let tls = if args.tls {
        let dir = crate::run::ca_dir(args.ca_dir.as_deref())?;
        let config = wstap_proxy::tls::local_server_config(&dir)
            .map_err(|e| AppError::BadInput(format!("--tls: {e}")))?;
        Some(tokio_rustls::TlsAcceptor::from(config))
    } else {
        None
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| AppError::BadInput(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::BadInput(format!("cannot listen on {}: {e}", args.listen)))?;
    for script in &scripts {
        println!(
            "wstap mock: session {} at {scheme}://{addr}{} ({} client messages, {} server messages to play)",
            script.session,
            script.target,
            script.client.len(),
            script.steps.len()
        );
    }
    let scripts = Arc::new(scripts);
    let options = Arc::new(Options {
        matching: args.matching,
        ignore: args.ignore,
        strict: args.strict,
        rules,
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, peer)) = accepted {
                    let (scripts, options) = (scripts.clone(), options.clone());
                    let peer = peer.to_string();
                    match tls.clone() {
                        None => {
                            tokio::spawn(conn::serve(stream, peer, scripts, options));
                        }
                        Some(acceptor) => {
                            tokio::spawn(async move {
                                match acceptor.accept(stream).await {
                                    Ok(stream) => conn::serve(stream, peer, scripts, options).await,
                                    Err(e) => println!("mock: {peer}: TLS handshake failed: {e}"),
                                }
                            });
                        }
                    }
                }
            }
            () = crate::run::wait_for_signal() => return Ok(()),
        }
    }
}

/// The script of `session`: its handshake and every message, each whole.
fn load(capture: &Capture, session: u64, window: Duration) -> Result<Script, AppError> {
    let bad = |why: String| AppError::BadInput(format!("session {session}: {why}"));
    let stored = capture
        .handshake(session)
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("not a WebSocket session (no handshake recorded)".to_owned()))?;
    let handshake = &stored.handshake;
    let response = handshake.exchange.response.as_ref();
    if response.map(|r| r.status) != Some(101) {
        return Err(bad("its handshake was not accepted (no 101)".to_owned()));
    }
    let extensions = response
        .into_iter()
        .flat_map(|r| &r.headers)
        .filter(|(n, _)| n.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .flat_map(|(_, v)| parse_extensions(v));
    let deflate = extensions
        .into_iter()
        .find(|e| e.name == PERMESSAGE_DEFLATE);
    let opened_us =
        handshake.exchange.time.timestamp_micros() + handshake.duration_us.map_or(0, |d| d as i64);
    let mut heard = Vec::new();
    for stored in session_messages(capture, session)? {
        let m = stored.message;
        if !m.origin.is_wire() {
            // What wstap wrote is not the server's to play.
            continue;
        }
        let payload = &m.payload;
        if payload.dropped || payload.truncated {
            return Err(bad(format!(
                "message {} was not kept whole in the capture ({}); record with a larger --max-capture",
                stored.seq,
                if payload.dropped { "dropped to keep the capture in its bound" } else { "cut at --max-capture" }
            )));
        }
        heard.push(Heard {
            seq: stored.seq,
            dir: m.dir,
            opcode: Opcode::from_bits(m.opcode),
            data: m.payload.bytes,
            start_us: m.time.timestamp_micros(),
            end_us: m.end_time.timestamp_micros(),
        });
    }
    let (client, steps) = Script::steps_of(heard, opened_us, window);
    let target = handshake.exchange.request.target.clone();
    let target = if target.starts_with('/') {
        target
    } else {
        // An absolute-form target (a plain proxied request): its path.
        url_path(&target)
    };
    Ok(Script {
        session,
        target,
        subprotocol: handshake.subprotocol.clone(),
        deflate,
        client,
        steps,
    })
}

/// The path and query of an absolute URL (`/` when it has none).
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find('/') {
        Some(at) => rest[at..].to_owned(),
        None => "/".to_owned(),
    }
}

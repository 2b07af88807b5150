//! `wstap`: a Fiddler-style WebSocket debugging proxy.
//!
//! This file only parses the command line and dispatches: running the proxy is [`run`],
//! the live log is [`console`], and each subcommand has a module of its own.

mod ca;
mod captures;
mod compare;
mod console;
mod demo;
mod diff;
mod endpoint;
mod export;
mod frames;
mod import;
mod mock;
mod proto;
mod replay;
mod rules;
mod run;
mod sessions;
mod view;
mod web;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A WebSocket debugging proxy: byte-exact relay, a live per-frame log, JSON and HAR traces.
///
/// With no subcommand, runs the proxy. Point a client's HTTP proxy setting at it
/// (http_proxy / https_proxy, --proxy-server, ...) and watch its WebSocket frames.
#[derive(Debug, Parser)]
#[command(name = "wstap", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List a capture's sessions (the newest capture unless one is named).
    Sessions(sessions::SessionsArgs),
    /// Show a session's frames (or messages) as the live log showed them.
    Frames(frames::FramesArgs),
    /// Turn a capture or a trace into NDJSON, per-session JSON or HAR (Chrome DevTools).
    Export(export::ExportArgs),
    /// Build a capture from an NDJSON trace.
    Import(import::ImportArgs),
    /// Serve the web inspector over a saved capture (the newest unless one is named).
    View(view::ViewArgs),
    /// Run the proxy with a chat server and three scripted clients, to see the log at once.
    Demo(demo::DemoArgs),
    /// Show wstap's CA (creating it if needed) and how to trust it, or export it.
    Ca(ca::CaArgs),
    /// Serve the server side of recorded sessions to any client, offline.
    Mock(mock::MockArgs),
    /// Compare two recorded sessions message by message (exit status 1 when they differ).
    Diff(diff::DiffArgs),
    /// Play a recorded session's client side against its server again and compare the
    /// answers with the recording (exit status 1 when they differ).
    Replay(replay::ReplayArgs),
}

/// The proxy's options alone, as a subcommand that runs a proxy of its own (`demo`,
/// `replay --record`) writes them: every default as `wstap` has it.
#[derive(Debug, Parser)]
#[command(name = "wstap")]
struct EmbeddedArgs {
    #[command(flatten)]
    run: RunArgs,
}

impl RunArgs {
    /// The options `flags` give, the rest at their defaults; a mistake is a bad input.
    pub fn embedded<'a>(flags: impl IntoIterator<Item = &'a str>) -> Result<RunArgs, AppError> {
        EmbeddedArgs::try_parse_from(std::iter::once("wstap").chain(flags))
            .map(|parsed| parsed.run)
            .map_err(|e| {
                let text = e.to_string();
                AppError::BadInput(text.lines().next().unwrap_or_default().to_owned())
            })
    }
}

/// Options of the proxy itself.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Record into `--capture` after the sessions it holds (`wstap replay`), rather than
    /// into a new capture.
    #[arg(skip)]
    pub append: bool,
    /// Address to listen on (repeatable; IPv6 as [::1]:8888).
    #[arg(
        short,
        long = "listen",
        value_name = "ADDR",
        default_value = "127.0.0.1:8888"
    )]
    pub listen: Vec<SocketAddr>,
    /// Record to this capture folder (default: a new one under ~/.wstap/captures).
    #[arg(long, value_name = "PATH", conflicts_with = "no_capture")]
    pub capture: Option<PathBuf>,
    /// Do not record a capture.
    #[arg(long)]
    pub no_capture: bool,
    /// Let this run's capture grow to at most this size on disk: past it, the oldest
    /// payloads are dropped (every record stays). Default: the smaller of 4GiB and a
    /// quarter of the free space where it is written; 0 for no bound.
    #[arg(long, value_name = "SIZE", value_parser = captures::parse_size)]
    pub capture_max: Option<u64>,
    /// Keep at most this much of old captures in the default folder; the oldest go first.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = captures::parse_size)]
    pub capture_keep: u64,
    /// Also write every event to this NDJSON trace file (see docs/trace-format.md).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Show only what matches this filter on the console (docs/filters.md); the capture
    /// and the trace still record everything.
    #[arg(long, value_name = "EXPR", value_parser = FilterParser)]
    pub filter: Option<wstap_filter::Filter>,
    /// Payload bytes captured per frame and per message, for the log and the trace.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_capture: usize,
    /// Seconds a client may take to send a request head (and an upstream to answer a handshake).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub handshake_timeout: u64,
    /// Seconds connecting to an upstream may take.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Show full handshake and HTTP headers.
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print nothing but errors (and the inspector's address, which holds its token).
    #[arg(short, long)]
    pub quiet: bool,
    /// Where wstap's CA lives (default: $WSTAP_HOME, else ~/.wstap); created on first run.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Also trust this PEM file's certificates for upstream servers (repeatable).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Do not verify upstream certificates (a warning is printed on every start).
    #[arg(long)]
    pub insecure: bool,
    /// Relay TLS to host:port matching this regular expression without interception
    /// (repeatable; for certificate-pinned clients).
    #[arg(long, value_name = "REGEX")]
    pub ignore_hosts: Vec<String>,
    /// Serve at most this many client connections at once; more get 503.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Require Basic proxy authentication with these credentials (user:password).
    #[arg(long, value_name = "USER:PASS", value_parser = parse_credentials)]
    pub proxy_auth: Option<String>,
    /// Seconds open sessions get to finish on Ctrl-C/SIGTERM before wstap closes them (1001).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub grace: u64,
    /// At the first protocol violation, close both sides (1002, or 1007 for bad UTF-8)
    /// instead of relaying it; the offending bytes are withheld and the trace says why.
    #[arg(long)]
    pub strict: bool,
    /// Also listen for SOCKS5 clients here (repeatable; CONNECT only, user/password
    /// when --proxy-auth is set).
    #[arg(long, value_name = "ADDR")]
    pub socks5: Vec<SocketAddr>,
    /// Send every upstream connection through this parent HTTP proxy, with CONNECT:
    /// http://[user:password@]host:port.
    #[arg(long, value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// Hosts that go direct instead of through --upstream-proxy: comma-separated names
    /// (subdomains included), IPs, or * (default: $NO_PROXY).
    #[arg(long, value_name = "LIST")]
    pub no_upstream_proxy_for: Option<String>,
    /// Be a reverse proxy for URL (ws://, wss://, http://, https://, with an optional path
    /// prefix): clients connect to wstap as if it were the server. URL alone takes the
    /// --listen address (the forward proxy is then off there); LISTEN=URL adds a listener
    /// of its own (repeatable).
    #[arg(long, value_name = "[LISTEN=]URL")]
    pub reverse: Vec<String>,
    /// With --reverse: give Origin the upstream's origin too (Host always gets it).
    #[arg(long, requires = "reverse")]
    pub reverse_rewrite_origin: bool,
    /// With --reverse: the reverse listeners speak TLS, with a certificate from wstap's CA for
    /// the name the client asks for, else the URL's host (or the one --reverse-cert names).
    #[arg(long, requires = "reverse")]
    pub reverse_tls: bool,
    /// With --reverse: speak TLS with this certificate chain (PEM) instead of one from the CA.
    #[arg(long, value_name = "FILE", requires_all = ["reverse", "reverse_key"])]
    pub reverse_cert: Option<PathBuf>,
    /// The private key (PEM) of --reverse-cert.
    #[arg(long, value_name = "FILE", requires = "reverse_cert")]
    pub reverse_key: Option<PathBuf>,
    /// Serve the web inspector here (default 127.0.0.1:8889; it needs the token wstap
    /// prints, wherever it listens).
    #[arg(long, value_name = "ADDR", env = "WSTAP_WEB")]
    pub web: Option<SocketAddr>,
    /// Do not serve the web inspector.
    #[arg(long)]
    pub no_web: bool,
    /// Do not intercept TLS at all: wss:// and https:// are relayed as blind tunnels.
    #[arg(
        long = "no-tls-intercept",
        alias = "no-intercept",
        conflicts_with_all = ["insecure", "upstream_ca", "ignore_hosts"]
    )]
    pub no_tls_intercept: bool,
    /// Hold every WebSocket message this filter selects (docs/filters.md) until it is
    /// forwarded, edited or dropped from the inspector or its API (repeatable).
    #[arg(long = "break", value_name = "FILTER", value_parser = FilterParser)]
    pub breakpoints: Vec<wstap_filter::Filter>,
    /// Let --break hold pings, pongs and closes too (else they pass).
    #[arg(long)]
    pub break_control: bool,
    /// Apply the rules in this file (TOML; docs/rules.md) to every WebSocket message:
    /// rewrite, delay, drop, answer, close, abort or hold what each selects. Read again
    /// on SIGHUP (a bad file is reported and the rules in force stay).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Network conditions on the sessions FILTER selects (session fields; '' for all):
    /// e.g. 'host:example.com=to:client, latency:200ms, jitter:50ms, bandwidth:64KiB/s',
    /// or pause, drop-after:N|DURATION, close-after:N|DURATION[:CODE[:REASON]]
    /// (docs/rules.md). Frame by frame, never cutting one; repeatable, the first that
    /// selects a session's way applies.
    #[arg(long = "conditions", value_name = "FILTER=SPEC", value_parser = parse_network_conditions)]
    pub conditions: Vec<wstap_control::NetworkConditions>,
    /// Read the messages of the sessions FILTER selects (session fields; '' for all) as
    /// VIEW: text, json, hex, msgpack, cbor, protobuf, signalr, socketio, stomp, mqtt,
    /// graphql or jsonrpc (else wstap chooses by subprotocol, URL and first messages).
    /// Repeatable: the first that selects a session applies.
    #[arg(long = "view", value_name = "FILTER=VIEW", value_parser = parse_view_rule)]
    pub views: Vec<(wstap_filter::Filter, wstap_views::View)>,
    #[command(flatten)]
    pub proto: proto::ProtoArgs,
    /// Bytes a session may keep per direction while a message is held; past it wstap
    /// stops reading that side, and a larger message is not held (K, M, G suffixes).
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    pub break_buffer: usize,
    /// Forward a held message unchanged after this many seconds (default: it waits as
    /// long as its session lives).
    #[arg(long, value_name = "SECS")]
    pub break_timeout: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Sessions(args)) => sessions::sessions(&args),
        Some(Command::Frames(args)) => frames::frames(&args),
        Some(Command::Export(args)) => export::export(&args),
        Some(Command::Import(args)) => import::import(&args),
        Some(Command::View(args)) => runtime().and_then(|rt| rt.block_on(view::view(args))),
        Some(Command::Demo(args)) => runtime().and_then(|rt| rt.block_on(demo::demo(args))),
        Some(Command::Ca(args)) => ca::ca(&args),
        Some(Command::Mock(args)) => runtime().and_then(|rt| rt.block_on(mock::mock(args))),
        Some(Command::Diff(args)) => diff::diff(&args),
        Some(Command::Replay(args)) => runtime().and_then(|rt| rt.block_on(replay::replay(args))),
        None => runtime().and_then(|rt| rt.block_on(run::run(cli.run))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wstap: error: {e}");
            match e {
                AppError::BadInput(_) | AppError::NoSuchSession(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Parses `--filter` for the command line. Its error names the option and shows the
/// caret under the filter (or under the part of a long one around the mistake); unlike
/// clap's own message for a bad value, it does not repeat the whole filter first.
#[derive(Debug, Clone, Copy)]
pub struct FilterParser;

impl clap::builder::TypedValueParser for FilterParser {
    type Value = wstap_filter::Filter;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let option = arg.map_or_else(|| "--filter".to_owned(), |a| a.to_string());
        let invalid = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid filter for '{option}': {message}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("it is not valid UTF-8".to_owned()))?;
        wstap_filter::Filter::parse(text).map_err(|e| invalid(e.to_string()))
    }
}

/// `--conditions FILTER=SPEC`.
fn parse_network_conditions(value: &str) -> Result<wstap_control::NetworkConditions, String> {
    let (filter, spec) = wstap_control::split_filter_and_spec(value)?;
    wstap_control::NetworkConditions::parse("--conditions".to_owned(), filter, spec)
}

/// `--view FILTER=VIEW`: a session-only filter and a view's name.
fn parse_view_rule(value: &str) -> Result<(wstap_filter::Filter, wstap_views::View), String> {
    let (filter, name) = value
        .rsplit_once('=')
        .map(|(filter, name)| (filter.trim(), name.trim()))
        .ok_or_else(|| "write FILTER=VIEW, e.g. 'path:/hub*=signalr'".to_owned())?;
    let view = wstap_views::View::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = wstap_views::View::ALL.iter().map(|v| v.name()).collect();
        format!("no view {name:?}: the views are {}", names.join(", "))
    })?;
    let filter = wstap_filter::Filter::parse(filter).map_err(|e| e.to_string())?;
    if filter.reads_records() {
        return Err(format!(
            "{:?} tests messages: a view is chosen per session, so use session fields (host, path, url, subprotocol, ...)",
            filter.source()
        ));
    }
    Ok((filter, view))
}

/// A size in bytes, with an optional K, M or G suffix (powers of 1024; `iB` and `B`
/// accepted after it).
fn parse_size(value: &str) -> Result<usize, String> {
    let text = value.trim();
    let text = text
        .strip_suffix("iB")
        .or_else(|| text.strip_suffix('B'))
        .unwrap_or(text);
    let (number, shift) = match text.char_indices().last() {
        Some((at, 'K' | 'k')) => (&text[..at], 10),
        Some((at, 'M' | 'm')) => (&text[..at], 20),
        Some((at, 'G' | 'g')) => (&text[..at], 30),
        _ => (text, 0),
    };
    let number: usize = number
        .trim()
        .parse()
        .map_err(|_| format!("expected a size such as 16M or 1048576, not {value:?}"))?;
    number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{value:?} is not a size wstap can keep"))
}

fn parse_credentials(value: &str) -> Result<String, String> {
    match value.split_once(':') {
        Some((user, _)) if !user.is_empty() => Ok(value.to_owned()),
        _ => Err("expected USER:PASSWORD".to_owned()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)
}

/// What the command line reports as a failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The proxy could not start.
    #[error(transparent)]
    Proxy(#[from] wstap_proxy::ProxyError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Reading a trace or writing an export failed.
    #[error("{0}")]
    Export(String),
    /// The trace file could not be created.
    #[error("cannot write the trace file {path}: {reason}")]
    Trace {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The demo failed.
    #[error("demo: {0}")]
    Demo(String),
    /// Writing the trace failed while the proxy ran; traffic was relayed regardless.
    #[error("the trace is incomplete: {0}")]
    TraceIncomplete(String),
    /// Writing the capture failed while the proxy ran; traffic was relayed regardless.
    #[error("the capture is incomplete: {0}")]
    CaptureIncomplete(String),
    /// The capture could not be created.
    #[error("cannot record a capture: {0}")]
    Capture(#[from] wstap_store::StoreError),
    /// Two sessions compared were not the same (exit status 1; the comparison is printed).
    #[error("the sessions differ: {0}")]
    Differs(String),
    /// A session asked for is not there.
    #[error("no session {0}")]
    NoSuchSession(u64),
    /// A file given is not what the command reads, or is damaged (exit status 2).
    #[error("{0}")]
    BadInput(String),
    /// Neither `WSTAP_HOME` nor `HOME` says where wstap keeps its files.
    #[error("no folder for wstap's files: set WSTAP_HOME (HOME is not set)")]
    NoHome,
    /// No CA directory could be found.
    #[error("no CA directory: pass --ca-dir or set WSTAP_HOME (HOME is not set)")]
    NoCaDir,
    /// The web inspector could not start.
    #[error("inspector: {0}")]
    Inspector(#[from] wstap_inspector::InspectorError),
    /// The CA could not be loaded or created.
    #[error(transparent)]
    Ca(#[from] wstap_proxy::tls::ca::CaError),
}

impl From<wstap_store::export::ExportError> for AppError {
    fn from(e: wstap_store::export::ExportError) -> Self {
        match e {
            wstap_store::export::ExportError::NoSuchSession(n) => AppError::NoSuchSession(n),
            other => AppError::Export(other.to_string()),
        }
    }
}

//! `wstap replay [CAPTURE] --session N`: plays a recorded session's client side against
//! its server again (or `--to` another), with the recorded handshake (a new key; the
//! subprotocol and extensions offered as recorded), the client's messages at their
//! recorded offsets (`--timing original`) or each as soon as the server has answered the
//! one before as often as it did in the recording (`--timing fast`), compressed when
//! permessage-deflate is agreed; then compares the server's answers with the recording
//! (see [`crate::diff`]): exit status 0 only when they are the same.

mod net;
mod plan;
mod play;

use crate::captures::{chosen, open_capture, session_messages};
use crate::compare::Compared;
use crate::diff::{compared, report, Side};
use crate::AppError;
use clap::{Args, ValueEnum};
use net::{connect, Target};
use plan::Plan;
use play::play;
use std::path::PathBuf;
use std::time::Duration;

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
    /// tunnel), as wstap's own --upstream-proxy does: a running wstap records the
    /// replayed session into its capture (over wss, wstap's own CA is trusted then, as
    /// the proxy presents its certificates).
    #[arg(long = "upstream-proxy", visible_alias = "proxy", value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// Hosts that go direct instead of through --upstream-proxy: comma-separated names
    /// (subdomains included), IPs, or * (default: $NO_PROXY).
    #[arg(long, value_name = "LIST")]
    pub no_upstream_proxy_for: Option<String>,
    /// Record the replayed session, every frame, into a new capture here rather than
    /// into the capture it was recorded in (a wstap proxy of the replay's own carries it).
    #[arg(long, value_name = "DIR", conflicts_with = "no_record")]
    pub record: Option<PathBuf>,
    /// Do not record the replayed session.
    #[arg(long)]
    pub no_record: bool,
    /// Apply these rules (docs/rules.md) to the replayed session on its way, as
    /// `wstap --rules` would: rewrite what the client sends, or what the server answers.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Print nothing while it plays (the inspector's replay).
    #[arg(skip)]
    pub quiet: bool,
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

/// Runs `wstap replay`: through a wstap proxy of its own, which records the replayed
/// session (into the capture it came from, unless `--record` or `--no-record` say
/// otherwise) and applies `--rules`.
pub async fn replay(mut args: ReplayArgs) -> Result<(), AppError> {
    let capture = chosen(args.capture.as_deref())?;
    // Into the capture it came from, after its sessions, unless a running wstap writes
    // it: that one records what goes through it, so replay through it to record there.
    let into = match (&args.record, args.no_record) {
        (_, true) => Recording::No,
        (Some(dir), false) => Recording::New(dir.clone()),
        (None, false) if wstap_store::layout::is_being_written(&capture) => {
            println!(
                "wstap replay: {} is being written by a running wstap: the replay is not recorded (--upstream-proxy through that wstap records it there)",
                capture.display()
            );
            Recording::No
        }
        (None, false) => Recording::Append(capture),
    };
    // What is wrong with the capture or the session is said before anything starts.
    let prepared = prepare(&args)?;
    let engine = match (&into, &args.rules) {
        (Recording::No, None) => None,
        _ => Some(own_proxy(&mut args, &into).await?),
    };
    let played = play_prepared(&args, prepared).await;
    if let Some(engine) = engine {
        // Stopping flushes the capture: the replayed session is all there once it returns.
        engine.stop(Duration::from_secs(1), true).await?;
        match &into {
            Recording::New(dir) | Recording::Append(dir) => {
                println!("  recorded into {}", dir.display())
            }
            Recording::No => {}
        }
    }
    let (recorded, received) = played?;
    report(&recorded, &received, &args.ignore)
}

/// Where a replay records the session it plays.
#[derive(Debug)]
enum Recording {
    No,
    /// A new capture.
    New(PathBuf),
    /// The capture it came from, after its sessions.
    Append(PathBuf),
}

/// Starts a wstap proxy on loopback for the replay to go through: recording `into`,
/// with `--rules`, chained to `--upstream-proxy`; `args` then go through it.
async fn own_proxy(
    args: &mut ReplayArgs,
    into: &Recording,
) -> Result<crate::run::Started, AppError> {
    let path = |p: &PathBuf| p.to_string_lossy().into_owned();
    let mut flags: Vec<String> = ["--listen", "127.0.0.1:0", "-q", "--no-web", "--grace", "1"]
        .map(str::to_owned)
        .to_vec();
    match into {
        Recording::New(dir) | Recording::Append(dir) => {
            flags.extend(["--capture".to_owned(), path(dir)])
        }
        Recording::No => flags.push("--no-capture".to_owned()),
    }
    if let Some(rules) = &args.rules {
        flags.extend(["--rules".to_owned(), path(rules)]);
    }
    if let Some(parent) = args.upstream_proxy.take() {
        flags.extend(["--upstream-proxy".to_owned(), parent]);
    }
    if let Some(bypass) = &args.no_upstream_proxy_for {
        flags.extend(["--no-upstream-proxy-for".to_owned(), bypass.clone()]);
    }
    for ca in &args.upstream_ca {
        flags.extend(["--upstream-ca".to_owned(), path(ca)]);
    }
    if args.insecure {
        flags.push("--insecure".to_owned());
    }
    let run_args = crate::RunArgs {
        append: matches!(into, Recording::Append(_)),
        ..crate::RunArgs::embedded(flags.iter().map(String::as_str))?
    };
    let started = crate::run::start(&run_args).await?;
    let listener = started
        .proxy
        .local_addrs()
        .first()
        .copied()
        .ok_or_else(|| AppError::Export("the replay's proxy has no address".to_owned()))?;
    args.upstream_proxy = Some(format!("http://{listener}"));
    args.no_upstream_proxy_for = Some(String::new());
    Ok(started)
}

/// Plays the session again as `args` say: what the server sent in the recording, and
/// what it sent now (as [`crate::diff::compared`] has them). The inspector's *Replay*
/// runs this too, through the proxy it belongs to.
pub async fn run(args: &ReplayArgs) -> Result<(Vec<Compared>, Vec<Compared>), AppError> {
    let prepared = prepare(args)?;
    play_prepared(args, prepared).await
}

/// What a replay plays, read from the capture before anything connects.
struct Prepared {
    plan: Plan,
    /// The server's messages in the recording.
    recorded: Vec<Compared>,
    url: String,
    target: Target,
    headers: Vec<(String, String)>,
}

/// Reads the session `args` name: its plan, what the server sent, where it went.
fn prepare(args: &ReplayArgs) -> Result<Prepared, AppError> {
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
    Ok(Prepared {
        plan,
        recorded,
        url,
        target,
        headers,
    })
}

/// Plays what `prepare` read, as `args` say.
async fn play_prepared(
    args: &ReplayArgs,
    prepared: Prepared,
) -> Result<(Vec<Compared>, Vec<Compared>), AppError> {
    let Prepared {
        plan,
        recorded,
        url,
        target,
        headers,
    } = prepared;
    if !args.quiet {
        println!(
            "wstap replay: session {} to {url}: {} client messages, {} server messages recorded",
            args.session,
            plan.messages.len(),
            plan.expected
        );
    }
    let parent = crate::run::parent_proxy(
        args.upstream_proxy.as_deref(),
        args.no_upstream_proxy_for.as_deref(),
    )?
    .filter(|parent| !parent.bypasses(&target.host));
    let tcp = match &parent {
        None => connect(&target.host, target.port).await?,
        Some(parent) => parent
            .connect(&target.host, target.port, Duration::from_secs(10))
            .await
            .map_err(AppError::Export)?,
    };
    let wait = args.wait;
    let received = if target.tls {
        let mut upstream_ca = args.upstream_ca.clone();
        if parent.is_some() {
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
        play(tls, &target, &headers, &plan, args.timing, wait, args.quiet).await?
    } else {
        play(tcp, &target, &headers, &plan, args.timing, wait, args.quiet).await?
    };
    Ok((recorded, received))
}

/// The inspector's *Replay*: `wstap replay` of a session of `capture`, quietly, through
/// the proxy at `proxy` (`http://[user:password@]host:port`), which records the new
/// session; `upstream_ca` holds the proxy's own CA (it intercepts a wss replay) and
/// whatever else the proxy trusts; the comparison as the page shows it.
pub fn through_proxy(
    capture: PathBuf,
    proxy: String,
    upstream_ca: Vec<PathBuf>,
    insecure: bool,
) -> wstap_inspector::Replayer {
    wstap_inspector::Replayer::new(move |request| {
        let args = ReplayArgs {
            capture: Some(capture.clone()),
            session: request.session,
            to: None,
            timing: match request.fast {
                true => Timing::Fast,
                false => Timing::Original,
            },
            wait: Duration::from_secs(2),
            ignore: request.ignore,
            upstream_ca: upstream_ca.clone(),
            insecure,
            upstream_proxy: Some(proxy.clone()),
            // The proxy is on loopback: no NO_PROXY may send the replay around it.
            no_upstream_proxy_for: Some(String::new()),
            record: None,
            no_record: true,
            rules: None,
            quiet: true,
        };
        Box::pin(async move {
            let (recorded, received) = run(&args).await.map_err(|e| match e {
                AppError::BadInput(why) => wstap_inspector::ReplayError::Refused(why),
                other => wstap_inspector::ReplayError::Failed(other.to_string()),
            })?;
            Ok(crate::diff::comparison_json(
                &recorded,
                &received,
                &args.ignore,
            ))
        })
    })
}

/// A number of seconds (`2`, `0.5`), at most a day.
fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds from 0 to 86400"))
}

fn rustls_pki_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, AppError> {
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| AppError::BadInput(format!("{host}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_seconds_within_a_day() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["-1", "inf", "NaN", "1e9", "soon"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}

//! `wstap` with no subcommand: run the proxy until Ctrl-C (or SIGTERM).

use crate::console::{self, printer::ConsoleOptions};
use crate::{AppError, RunArgs};
use std::time::Duration;
use wstap_bus::{driver, Cadence, EventBus, SinkStats};
use wstap_proxy::{ProxyConfig, RunningProxy, TlsConfig};
use wstap_store::{CaptureInfo, CaptureWriter};
use wstap_trace::TraceFile;

/// The trace file's backlog, in bytes of queued records and captures: when the writer
/// falls this far behind, the relay waits (nothing is lost). Large enough that a relay of
/// small messages never waits while the writer naps between rounds; small enough that a
/// saturated relay of large captures adds only this much to the proxy's memory.
const TRACE_BACKLOG: usize = 4 << 20;
/// The console's backlog, in batches; beyond it the console misses batches (and says so).
const CONSOLE_BACKLOG: usize = 4096;
/// The trace writer flushes whenever it catches up, then naps this long so that a busy
/// relay hands it many batches per wake-up; while it is behind it flushes every 100 ms.
const TRACE_CADENCE: Cadence = Cadence {
    nap: Duration::from_millis(2),
    max_delay: Duration::from_millis(100),
    background: true,
};
/// The capture commits whenever it catches up and at least every 50 ms while it is
/// behind, so an event is on disk (and survives `kill -9`) within about 50 ms; the nap
/// lets a commit gather many events. At 2 ms a window-1 echo paid for 500 small commits
/// a second: added p99 latency 122-144 µs against 77-92 µs at 20 ms. 40 ms rather than
/// 20: a commit rewrites each busy session's index leaf, so SQLite's rows cost less in
/// larger commits (the writer bench's `floor` rows); the proxy's fan-in read 0.40 against
/// 0.36 of direct, a mean within the bench's spread (docs/performance.md). A backlog past
/// half its budget ends the nap early. The worst an event waits for its commit is
/// unchanged: `max_delay` once its round begins.
const CAPTURE_CADENCE: Cadence = Cadence {
    nap: Duration::from_millis(40),
    max_delay: Duration::from_millis(50),
    background: true,
};
/// The capture's backlog. Larger than the trace's: SQLite writes in bursts (a commit, a
/// checkpoint), and a relay that finds the backlog full waits for the writer, so the
/// budget is what carries the traffic through a burst. Not larger: a writer that cannot
/// keep up fills it, and glibc may hold a full backlog once in each relay worker's arena
/// (the records are made there and freed by the capture thread), so it counts up to
/// twice in the proxy's peak memory. Against 16 MiB in the same rounds, 8 read the
/// throughput and fan-in rows within their spread, and the 10M-frame row's peak RSS at
/// 41.9, 42.0 and 42.2 MiB against 59.7 and 41.9 (docs/performance.md).
const CAPTURE_BACKLOG: usize = 8 << 20;

/// A lossless sink's thread, and what it writes to, for messages.
struct SinkThread {
    thread: std::thread::JoinHandle<SinkStats>,
    what: &'static str,
}

impl SinkThread {
    /// Waits for the sink to write everything; `Err` says what is missing.
    async fn join(self) -> Result<SinkStats, String> {
        let what = self.what;
        match tokio::task::spawn_blocking(move || self.thread.join()).await {
            Ok(Ok(stats)) => match &stats.error {
                Some(error) => Err(format!(
                    "{error} (at most {} events reached the {what})",
                    stats.events
                )),
                None => Ok(stats),
            },
            _ => Err(format!("the {what} writer crashed")),
        }
    }
}

/// A started proxy with its sinks.
pub struct Started {
    /// The proxy.
    pub proxy: RunningProxy,
    /// Where the capture is recorded, if it is.
    pub capture: Option<std::path::PathBuf>,
    /// How large it may grow (`--capture-max`), when bounded.
    pub capture_max: Option<u64>,
    /// The web inspector, if it is served.
    pub inspector: Option<wstap_inspector::Inspector>,
    /// The registry of live sessions, breakpoints and rules.
    pub control: wstap_control::Control,
    capture_thread: Option<SinkThread>,
    trace: Option<SinkThread>,
    console: std::thread::JoinHandle<()>,
}

impl Started {
    /// Stops the proxy, waits for the sinks to write everything, prints a summary.
    ///
    /// Fails if writing the trace failed at some point (a full disk): the relay went on,
    /// but the trace is incomplete, and a script driving wstap should hear of it.
    pub async fn stop(self, grace: Duration, quiet: bool) -> Result<(), AppError> {
        let sessions = self.proxy.sessions_started();
        self.proxy.shutdown(grace).await;
        if let Some(inspector) = self.inspector {
            let _ = tokio::task::spawn_blocking(move || inspector.stop()).await;
        }
        if !quiet {
            eprintln!("wstap: stopped after {sessions} sessions");
        }
        let console = self.console;
        let _ = tokio::task::spawn_blocking(move || console.join()).await;
        // Both sinks are waited for before either failure is reported: neither is cut short.
        let capture = match self.capture_thread {
            Some(thread) => Some(thread.join().await),
            None => None,
        };
        let trace = match self.trace {
            Some(thread) => Some(thread.join().await),
            None => None,
        };
        if let Some(result) = capture {
            let stats = result.map_err(AppError::CaptureIncomplete)?;
            if !quiet {
                let path = self.capture.as_deref().unwrap_or(std::path::Path::new("?"));
                eprintln!(
                    "wstap: capture complete, {} events in {}",
                    stats.events,
                    path.display()
                );
            }
        }
        if let Some(result) = trace {
            let stats = result.map_err(AppError::TraceIncomplete)?;
            if !quiet {
                eprintln!("wstap: trace complete, {} events written", stats.events);
            }
        }
        Ok(())
    }
}

/// Raises the open-file limit: every proxied session holds two sockets, and the usual
/// soft limit (1024) would cap the proxy at about 500 sessions. The soft limit goes to
/// the hard one, and past it to 65,536 where the process may raise its hard limit.
fn raise_fd_limit() {
    #[cfg(unix)]
    {
        /// What a privileged wstap asks for beyond a lower hard limit: room for 30,000
        /// sessions.
        const WANTED: libc::rlim_t = 65_536;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit with a pointer to a valid local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return;
            }
            if limit.rlim_max < WANTED {
                // Allowed only with CAP_SYS_RESOURCE; without it the hard limit stays.
                let raised = libc::rlimit {
                    rlim_cur: WANTED,
                    rlim_max: WANTED,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    return;
                }
            }
            if limit.rlim_cur < limit.rlim_max {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

/// Makes a file-size limit (`ulimit -f`) a write error instead of a kill: by default
/// SIGXFSZ ends the process, and a trace outgrowing a quota must not end the relay.
fn survive_file_size_limit() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Starts the proxy and its sinks as `args` say.
pub async fn start(args: &RunArgs) -> Result<Started, AppError> {
    raise_fd_limit();
    survive_file_size_limit();
    let (listen, reverse) = reverse_proxies(args)?;
    let control = control(args).await?;
    let mut config = ProxyConfig {
        listen,
        max_capture: args.max_capture,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        tls: tls_config(args)?,
        max_connections: args.max_connections,
        proxy_auth: args.proxy_auth.clone(),
        strict: args.strict,
        upstream_proxy: parent_proxy(
            args.upstream_proxy.as_deref(),
            args.no_upstream_proxy_for.as_deref(),
        )?,
        socks5: args.socks5.clone(),
        reverse,
        control: Some(control.clone()),
        first_session: 1,
    };
    let exposed: Vec<String> = args
        .listen
        .iter()
        .chain(&args.socks5)
        .filter(|a| !a.ip().is_loopback())
        .map(ToString::to_string)
        .collect();
    if !exposed.is_empty() && args.proxy_auth.is_none() {
        eprintln!(
            "wstap: WARNING: listening on {} without --proxy-auth: anyone who can reach it can use this proxy (and see what it decrypts)",
            exposed.join(", ")
        );
    }
    for reverse in config
        .reverse
        .iter()
        .filter(|r| !r.listen.ip().is_loopback())
    {
        eprintln!(
            "wstap: WARNING: the reverse listener on {} is not on loopback: anyone who can reach it reaches {} through wstap",
            reverse.listen,
            reverse.url()
        );
    }
    if args.insecure {
        eprintln!("wstap: WARNING: --insecure: upstream TLS certificates are NOT verified; anyone on the path can impersonate servers");
    }
    let mut bus = EventBus::new();
    let feed = (!args.no_web).then(wstap_inspector::LiveFeed::new);
    let proto_schema = args.proto.load()?;
    let recording = start_capture(args, &mut bus, feed.as_ref(), proto_schema.as_ref())?;
    if let Some(recording) = &recording {
        config.first_session = recording.first_session;
    }
    let capture = recording.as_ref().map(|r| r.path.clone());
    let capture_max = recording.as_ref().and_then(|r| r.max_bytes);
    let capture_thread = recording.map(|r| r.thread);
    let trace = match &args.trace {
        Some(path) => {
            let writer = format!("wstap {}", env!("CARGO_PKG_VERSION"));
            let file = TraceFile::create(path, &writer).map_err(|e| AppError::Trace {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let rx = bus.subscribe_lossless(TRACE_BACKLOG);
            let thread =
                driver::spawn("wstap-trace", rx, file, TRACE_CADENCE).map_err(AppError::Runtime)?;
            Some(SinkThread {
                thread,
                what: "trace",
            })
        }
        None => None,
    };
    // A quiet console prints only errors, so it need not see frames at all.
    let (rx, dropped) = bus.subscribe_lossy(CONSOLE_BACKLOG, !args.quiet);
    let options = ConsoleOptions::from_args(args);
    let filter = args.filter.clone();
    let views = console::views::ViewSettings {
        rules: args.views.clone(),
        schema: proto_schema.clone(),
        chosen: std::collections::HashMap::new(),
    };
    let console = std::thread::Builder::new()
        .name("wstap-console".into())
        .spawn(move || console::print(rx, dropped, options, filter, views))
        .map_err(AppError::Runtime)?;
    let proxy = wstap_proxy::start(config, bus).await?;
    let inspector = match (&capture, feed) {
        (Some(path), Some(feed)) => {
            let replayer = replayer(args, path, &proxy)?;
            crate::web::start(args.web, path, Some(feed), Some(control.clone()), replayer)?
        }
        _ => None,
    };
    Ok(Started {
        proxy,
        inspector,
        control,
        capture,
        capture_max,
        capture_thread,
        trace,
        console,
    })
}

/// The registry commands reach live sessions through, with `--break`'s breakpoints and
/// `--rules`' rules set.
async fn control(args: &RunArgs) -> Result<wstap_control::Control, AppError> {
    let control = wstap_control::Control::new(wstap_control::Settings {
        budget: args.break_buffer,
        timeout: args.break_timeout.map(Duration::from_secs),
        ..wstap_control::Settings::default()
    });
    // `--conditions` come first, and stay when the file is read again; each is named by
    // its place on the command line.
    let given: Vec<_> = args
        .conditions
        .iter()
        .enumerate()
        .map(|(n, given)| wstap_control::NetworkConditions {
            name: format!("--conditions {}", n + 1),
            ..given.clone()
        })
        .collect();
    let with_given = move |mut set: wstap_control::RuleSet| {
        set.conditions.splice(0..0, given.iter().cloned());
        set
    };
    match &args.rules {
        Some(path) => {
            let rules = crate::rules::load(path).map_err(AppError::BadInput)?;
            control.set_rules(with_given(rules)).await;
            let file = path.clone();
            control.set_rules_source(wstap_control::RulesSource {
                name: path.display().to_string(),
                read: Box::new(move || crate::rules::load(&file).map(&with_given)),
            });
        }
        None if !args.conditions.is_empty() => {
            control
                .set_rules(with_given(wstap_control::RuleSet::default()))
                .await;
        }
        None => {}
    }
    for filter in &args.breakpoints {
        control
            .add_breakpoint(filter.clone(), args.break_control)
            .await;
    }
    Ok(control)
}

/// Reads the rules file again on every SIGHUP: its rules replace those in force, or, when
/// it has a mistake, the mistake is reported and the rules in force stay.
fn reload_rules_on_hangup(control: wstap_control::Control) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            let name = control.rules_source().unwrap_or_default();
            match control.reload_rules().await {
                Ok(count) => eprintln!("wstap: rules read again from {name}: {count} in force"),
                Err(e) => eprintln!("wstap: rules not read again, the old ones stay: {e}"),
            }
        }
    });
}

/// The bound of the capture at `path`: `--capture-max` (0: none), else the default there.
fn capture_bound(asked: Option<u64>, path: &std::path::Path) -> Option<u64> {
    match asked {
        Some(0) => None,
        Some(bound) => Some(bound),
        None => Some(wstap_store::bound::default_for(path)),
    }
}

/// Starts the capture writer (unless `--no-capture`): at `--capture`, or in a new folder
/// under the default root, after pruning old captures there.
fn start_capture(
    args: &RunArgs,
    bus: &mut EventBus,
    feed: Option<&wstap_inspector::LiveFeed>,
    proto_schema: Option<&wstap_views::ProtoSchema>,
) -> Result<Option<Recording>, AppError> {
    if args.no_capture {
        return Ok(None);
    }
    let path = match &args.capture {
        Some(path) => path.clone(),
        None => {
            let root = crate::captures::root()?;
            crate::captures::prune(&root, args.capture_keep, args.quiet);
            crate::captures::new_path(&root)
        }
    };
    let max_bytes = capture_bound(args.capture_max, &path);
    let info = CaptureInfo {
        writer: format!("wstap {}", env!("CARGO_PKG_VERSION")),
        max_capture: args.max_capture,
        max_bytes,
    };
    let (mut writer, first_session) = match args.append {
        true => CaptureWriter::append(&path)?,
        false => (CaptureWriter::create(&path, &info)?, 1),
    };
    writer.choose_views(args.views.clone());
    if let Some(schema) = proto_schema {
        writer.keep_proto_schema(schema)?;
    }
    let mut feed = feed.map(wstap_inspector::LiveFeed::hook);
    let mut warned = false;
    writer.on_commit(move |committed| {
        if !warned && committed.size.dropped > 0 {
            warned = true;
            let bound = committed.size.bound.unwrap_or_default();
            eprintln!(
                "wstap: the capture reached its bound of {}: from now on its oldest payloads are dropped to stay within it (every record stays). --capture-max SIZE raises the bound; 0 removes it.",
                crate::captures::human_size(bound)
            );
        }
        if let Some(feed) = feed.as_mut() {
            feed(committed);
        }
    });
    let rx = bus.subscribe_lossless(CAPTURE_BACKLOG);
    let thread =
        driver::spawn("wstap-capture", rx, writer, CAPTURE_CADENCE).map_err(AppError::Runtime)?;
    let thread = SinkThread {
        thread,
        what: "capture",
    };
    Ok(Some(Recording {
        path,
        max_bytes,
        thread,
        first_session,
    }))
}

/// A capture being written.
struct Recording {
    path: std::path::PathBuf,
    /// Its bound, when it has one.
    max_bytes: Option<u64>,
    thread: SinkThread,
    /// The number its next session takes.
    first_session: u64,
}

/// The forward proxy's listen addresses and the reverse listeners, from `--listen` and
/// `--reverse`: a bare URL takes the `--listen` addresses over, `LISTEN=URL` adds one.
fn reverse_proxies(
    args: &RunArgs,
) -> Result<(Vec<std::net::SocketAddr>, Vec<wstap_proxy::ReverseProxy>), AppError> {
    let tls = match (&args.reverse_cert, &args.reverse_key) {
        (Some(cert), Some(key)) => wstap_proxy::ReverseTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ if args.reverse_tls => wstap_proxy::ReverseTls::FromCa,
        _ => wstap_proxy::ReverseTls::Off,
    };
    let mut listen = args.listen.clone();
    let mut reverse = Vec::new();
    let mut took_listen = false;
    for spec in &args.reverse {
        let bad = |why: String| AppError::BadInput(format!("--reverse {spec}: {why}"));
        let split = spec
            .split_once('=')
            .and_then(|(addr, url)| Some((addr.parse().ok()?, url)));
        let (addrs, url) =
            match split {
                Some((addr, url)) => (vec![addr], url),
                None if took_listen => return Err(bad(
                    "only one --reverse may take the --listen address; give the others LISTEN=URL"
                        .into(),
                )),
                None => {
                    took_listen = true;
                    (std::mem::take(&mut listen), spec.as_str())
                }
            };
        for addr in addrs {
            let mut proxy = wstap_proxy::ReverseProxy::new(addr, url).map_err(bad)?;
            proxy.rewrite_origin = args.reverse_rewrite_origin;
            proxy.tls = tls.clone();
            reverse.push(proxy);
        }
    }
    Ok((listen, reverse))
}

/// The inspector's *Replay*, through this proxy's first listener (with `--proxy-auth`'s
/// credentials), trusting its CA for wss; none when it has no forward proxy listener.
fn replayer(
    args: &RunArgs,
    capture: &std::path::Path,
    proxy: &wstap_proxy::RunningProxy,
) -> Result<Option<wstap_inspector::Replayer>, AppError> {
    let reverse: Vec<_> = proxy.reverse_listeners().map(|(addr, _)| addr).collect();
    let Some(listener) = proxy
        .local_addrs()
        .iter()
        .find(|addr| !reverse.contains(addr))
    else {
        return Ok(None);
    };
    let credentials = args
        .proxy_auth
        .as_ref()
        .map_or_else(String::new, |auth| format!("{auth}@"));
    let mut upstream_ca = args.upstream_ca.clone();
    if !args.no_tls_intercept {
        upstream_ca.push(ca_dir(args.ca_dir.as_deref())?.join(wstap_proxy::tls::ca::CERT_PEM));
    }
    Ok(Some(crate::replay::through_proxy(
        capture.to_owned(),
        format!("http://{credentials}{listener}"),
        upstream_ca,
        args.insecure,
    )))
}

/// `--upstream-proxy`, with the hosts that bypass it: `--no-upstream-proxy-for`, else
/// `NO_PROXY` (or `no_proxy`).
pub(crate) fn parent_proxy(
    url: Option<&str>,
    no_proxy_for: Option<&str>,
) -> Result<Option<wstap_proxy::ParentProxy>, AppError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let bypass = no_proxy_for
        .map(str::to_owned)
        .or_else(|| std::env::var("NO_PROXY").ok())
        .or_else(|| std::env::var("no_proxy").ok())
        .unwrap_or_default();
    wstap_proxy::ParentProxy::parse(url, &bypass)
        .map(Some)
        .map_err(|e| AppError::BadInput(format!("--upstream-proxy {e}")))
}

/// The CA directory from `--ca-dir`, `$WSTAP_HOME` or `~/.wstap`.
pub fn ca_dir(given: Option<&std::path::Path>) -> Result<std::path::PathBuf, AppError> {
    given
        .map(std::path::Path::to_path_buf)
        .or_else(wstap_proxy::tls::ca::default_dir)
        .ok_or(AppError::NoCaDir)
}

fn tls_config(args: &RunArgs) -> Result<Option<TlsConfig>, AppError> {
    if args.no_tls_intercept {
        return Ok(None);
    }
    Ok(Some(TlsConfig {
        ca_dir: ca_dir(args.ca_dir.as_deref())?,
        upstream_ca: args.upstream_ca.clone(),
        insecure: args.insecure,
        ignore_hosts: args.ignore_hosts.clone(),
    }))
}

/// Runs the proxy until interrupted.
pub async fn run(args: RunArgs) -> Result<(), AppError> {
    // Listening for Ctrl-C and SIGTERM before the proxy listens: a service manager that
    // stops wstap the moment it accepts connections gets a graceful stop too.
    let stop = stop_signal();
    let started = start(&args).await?;
    if !args.quiet {
        for addr in started.proxy.local_addrs() {
            eprintln!("wstap: proxy listening on http://{addr}");
        }
        for addr in started.proxy.socks_addrs() {
            eprintln!("wstap: SOCKS5 listening on socks5://{addr}");
        }
        for (addr, reverse) in started.proxy.reverse_listeners() {
            eprintln!(
                "wstap: reverse proxy listening on {} -> {}",
                reverse.listening_url(addr),
                reverse.url()
            );
        }
        match &started.capture {
            Some(path) => match started.capture_max {
                Some(max) => eprintln!(
                    "wstap: recording to {} (at most {})",
                    path.display(),
                    crate::captures::human_size(max)
                ),
                None => eprintln!("wstap: recording to {}", path.display()),
            },
            None => eprintln!("wstap: not recording a capture (--no-capture)"),
        }
        if let Some(path) = &args.trace {
            eprintln!("wstap: writing trace to {}", path.display());
        }
        if started.inspector.is_none() && args.no_capture && !args.no_web {
            eprintln!("wstap: no inspector: it shows the capture, and --no-capture is set");
        }
    }
    // Even with -q: the token is new at every start, and the address is useless without it.
    if let Some(inspector) = &started.inspector {
        crate::web::announce(inspector);
    }
    if !args.quiet {
        match started.proxy.ca() {
            Some(ca) if ca.created() => eprintln!(
                "wstap: created a new CA in {}; trust it to see wss:// traffic: run `wstap ca`, or open http://wstap/ through the proxy",
                ca.dir().display()
            ),
            Some(ca) => eprintln!("wstap: intercepting TLS with the CA in {} (`wstap ca` shows how to trust it)", ca.dir().display()),
            None => eprintln!("wstap: TLS interception is off; wss:// and https:// are relayed as blind tunnels"),
        }
        eprintln!("wstap: press Ctrl-C to stop");
    }
    if let Some(path) = &args.rules {
        if !args.quiet {
            let count = started.control.rules().len();
            eprintln!(
                "wstap: {count} rules from {} (SIGHUP reads it again)",
                path.display()
            );
        }
        reload_rules_on_hangup(started.control.clone());
    }
    stop.await;
    if !args.quiet {
        eprintln!(
            "wstap: stopping: no new connections; open sessions get {} s to finish",
            args.grace
        );
    }
    started
        .stop(Duration::from_secs(args.grace), args.quiet)
        .await
}

/// Waits for Ctrl-C or SIGTERM (from now on).
pub async fn wait_for_signal() {
    stop_signal().await;
}

/// Listens for Ctrl-C and SIGTERM from the moment it is called (not from when it is first
/// awaited): resolves when one comes.
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            let next = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = next(term) => {}
                () = next(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

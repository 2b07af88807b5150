//! `wstap` with no subcommand: run the proxy until Ctrl-C (or SIGTERM).

use crate::console::{self, ConsoleOptions};
use crate::{AppError, RunArgs};
use std::time::Duration;
use wstap_proxy::{trace_sink, EventBus, ProxyConfig, RunningProxy};

/// Bus capacity, in batches, of the trace file (lossless) and the console (lossy).
const TRACE_BACKLOG: usize = 1024;
const CONSOLE_BACKLOG: usize = 4096;

/// A started proxy with its sinks.
pub struct Started {
    /// The proxy.
    pub proxy: RunningProxy,
    trace: Option<std::thread::JoinHandle<trace_sink::TraceStats>>,
    console: std::thread::JoinHandle<()>,
}

impl Started {
    /// Stops the proxy, waits for the sinks to write everything, prints a summary.
    pub async fn stop(self, grace: Duration, quiet: bool) {
        self.proxy.shutdown(grace).await;
        let console = self.console;
        let _ = tokio::task::spawn_blocking(move || console.join()).await;
        if let Some(trace) = self.trace {
            let stats = tokio::task::spawn_blocking(move || trace.join()).await;
            if let Ok(Ok(stats)) = stats {
                if !quiet {
                    eprintln!("wstap: trace complete, {} events written", stats.events);
                }
            }
        }
    }
}

/// Starts the proxy and its sinks as `args` say.
pub async fn start(args: &RunArgs) -> Result<Started, AppError> {
    let config = ProxyConfig {
        listen: args.listen.clone(),
        max_capture: args.max_capture,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        connect_timeout: Duration::from_secs(args.connect_timeout),
    };
    let mut bus = EventBus::new();
    let trace = match &args.trace {
        Some(path) => {
            let rx = bus.subscribe_lossless(TRACE_BACKLOG);
            Some(trace_sink::spawn(
                path,
                &format!("wstap {}", env!("CARGO_PKG_VERSION")),
                rx,
            )?)
        }
        None => None,
    };
    let (rx, dropped) = bus.subscribe_lossy(CONSOLE_BACKLOG);
    let options = ConsoleOptions::from_args(args);
    let console = std::thread::Builder::new()
        .name("wstap-console".into())
        .spawn(move || console::print(rx, dropped, options))
        .map_err(AppError::Runtime)?;
    let proxy = wstap_proxy::start(config, bus).await?;
    Ok(Started {
        proxy,
        trace,
        console,
    })
}

/// Runs the proxy until interrupted.
pub async fn run(args: RunArgs) -> Result<(), AppError> {
    let started = start(&args).await?;
    if !args.quiet {
        for addr in started.proxy.local_addrs() {
            eprintln!("wstap: proxy listening on http://{addr}");
        }
        if let Some(path) = &args.trace {
            eprintln!("wstap: writing trace to {}", path.display());
        }
        eprintln!("wstap: press Ctrl-C to stop");
    }
    wait_for_signal().await;
    if !args.quiet {
        eprintln!("wstap: stopping");
    }
    started.stop(Duration::from_secs(2), args.quiet).await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

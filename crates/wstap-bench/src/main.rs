//! `wstap-bench`: the proxy against a direct connection, in one run.
//!
//! Starts a tokio-tungstenite echo server (plain and TLS) and the real `wstap` binary as a
//! subprocess (quiet console, `--trace` to a file), then runs each scenario directly and
//! through the proxy, alternating, for several rounds, and reports medians and the ratio
//! proxied/direct. Idle sessions and the 256 MiB message run against fresh proxy
//! processes so that their memory figures are theirs alone.
//!
//! Reference rows read the results against the machine: a copy-only relay process
//! (floor.rs) and raw TCP round trips with and without minimal relays (loopback.rs).
//!
//! `--quick` runs every scenario in a few seconds (CI runs it; no timing is asserted);
//! `--json` prints one JSON object after the table. Everything stays on loopback.

mod capture;
mod floor;
mod inspector;
mod interleaved;
mod loopback;
mod peers;
mod proxy;
mod report;
mod scenarios;
mod suite;

use peers::{echo_server, Pki};
use proxy::{locate_wstap, raise_fd_limit};
use std::path::PathBuf;
use std::time::Duration;
use suite::{against_floor, Bench, MainScenarios, References};

/// Scenario names for `--only`.
const SCENARIOS: [&str; 12] = [
    "throughput",
    "modes",
    "breakpoints",
    "rules",
    "latency",
    "fan-in",
    "idle",
    "big",
    "capture",
    "inspector",
    "floor",
    "loopback",
];

/// How much of everything to run.
struct Plan {
    rounds: usize,
    seconds: f64,
    fan_in_connections: usize,
    idle_ws: usize,
    idle_wss: usize,
    big: usize,
    capture: capture::BigCapture,
    disk_bytes: usize,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            rounds: 5,
            seconds: 2.0,
            fan_in_connections: 100,
            idle_ws: 10_000,
            idle_wss: 2_000,
            big: 256 << 20,
            // One million messages to search, then ten million frames in all.
            capture: capture::BigCapture {
                search: 500_000,
                bulk: 4_500_000,
                every: 50_000,
                interleaved: 500_000,
            },
            disk_bytes: 512 << 20,
        }
    }

    fn quick() -> Plan {
        Plan {
            rounds: 1,
            seconds: 0.25,
            fan_in_connections: 20,
            idle_ws: 200,
            idle_wss: 50,
            big: 8 << 20,
            capture: capture::BigCapture {
                search: 5_000,
                bulk: 20_000,
                every: 1_000,
                interleaved: 60_000,
            },
            disk_bytes: 16 << 20,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

struct Args {
    quick: bool,
    json: bool,
    wstap: Option<PathBuf>,
    only: Option<String>,
    seconds: Option<f64>,
    rounds: Option<usize>,
    max_capture: Option<usize>,
    wstap_args: Vec<String>,
    baseline: Option<PathBuf>,
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == scenario)
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        json: false,
        wstap: None,
        only: None,
        seconds: None,
        rounds: None,
        max_capture: None,
        wstap_args: Vec::new(),
        baseline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--wstap" => args.wstap = Some(it.next().ok_or("--wstap needs a path")?.into()),
            "--baseline" => {
                let path = PathBuf::from(it.next().ok_or("--baseline needs a path")?);
                if !path.is_file() {
                    return Err(format!("--baseline {}: no such file", path.display()));
                }
                args.baseline = Some(path);
            }
            "--only" => {
                let only = it.next().ok_or("--only needs a scenario")?;
                if !SCENARIOS.contains(&only.as_str()) {
                    return Err(format!("--only takes one of {SCENARIOS:?}"));
                }
                args.only = Some(only);
            }
            "--seconds" => {
                let secs: f64 = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a number")?;
                if !(secs > 0.0 && secs <= 600.0) {
                    return Err("--seconds must be in (0, 600]".into());
                }
                args.seconds = Some(secs);
            }
            "--rounds" => {
                let rounds: usize = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--rounds needs a number")?;
                if !(1..=100).contains(&rounds) {
                    return Err("--rounds must be in 1..=100".into());
                }
                args.rounds = Some(rounds);
            }
            "--max-capture" => {
                let bytes = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--max-capture needs a byte count")?;
                args.max_capture = Some(bytes);
            }
            "--wstap-arg" => args
                .wstap_args
                .push(it.next().ok_or("--wstap-arg needs an argument")?),
            "-h" | "--help" => {
                println!(
                    "usage: wstap-bench [--quick] [--json] [--wstap PATH] [--baseline PATH] [--wstap-arg ARG]... [--only SCENARIO] [--seconds N] [--rounds N] [--max-capture BYTES]\n\
                     scenarios: {}\n\
                     --seconds sets each round's length; --rounds how many rounds a row run in rounds takes its median of (5; more for a tighter one); --max-capture is passed to the main proxy (default: wstap's own, 64 KiB);\n\
                     --wstap-arg passes an argument to every wstap the bench starts (for profiling: --wstap-arg --no-capture);\n\
                     --baseline runs another wstap binary's main and idle rows in the same rounds, alternating, and holds this one to it",
                    SCENARIOS.join(", ")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() {
    // Internal mode: serve as the floor relay (see floor.rs) until killed; with
    // `--tls DIR`, the TLS floor, with the benchmark's PKI in DIR.
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some("--floor-relay") {
        let addr = raw.next().and_then(|a| a.parse().ok());
        let tls = match (raw.next().as_deref(), raw.next()) {
            (Some("--tls"), Some(dir)) => {
                let dir = std::path::PathBuf::from(dir);
                let tls = Pki::server_from(&dir).and_then(|server| {
                    let client = peers::client_tls(&Pki::ca_from(&dir))?;
                    Ok(floor::FloorTls { server, client })
                });
                match tls {
                    Ok(tls) => Some(tls),
                    Err(e) => {
                        eprintln!("wstap-bench: the TLS floor relay: {e}");
                        std::process::exit(1);
                    }
                }
            }
            _ => None,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build();
        if let (Some(addr), Ok(rt)) = (addr, rt) {
            let _ = rt.block_on(floor::serve(addr, tls));
        }
        std::process::exit(1);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("wstap-bench: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wstap-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(all_met) => {
            if !all_met && !args.quick {
                eprintln!("wstap-bench: some targets were missed (see the table)");
            }
        }
        Err(e) => {
            eprintln!("wstap-bench: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: &Args) -> Result<bool, String> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(seconds) = args.seconds {
        plan.seconds = seconds;
    }
    if let Some(rounds) = args.rounds {
        plan.rounds = rounds;
    }
    // The main proxy captures as wstap does by default (64 KiB of each payload) unless told.
    let max_capture = args.max_capture;
    let fd_limit = raise_fd_limit(4 * plan.idle_ws as u64 + 4096);
    let wstap = locate_wstap(args.wstap.clone())?;
    let dir = std::env::temp_dir().join(format!("wstap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pki = Pki::new(&dir)?;
    let plain = echo_server(None).await.map_err(|e| e.to_string())?;
    let secure = echo_server(Some(pki.server.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let bench = Bench {
        plan,
        wstap,
        wstap_args: args.wstap_args.clone(),
        max_capture,
        dir,
        pki,
        plain,
        secure,
        fd_limit,
        baseline: args.baseline.clone(),
    };

    let mut rows = Vec::new();
    let mut references = References::default();
    // The floor first: the main latency rows are held to it.
    if args.runs("floor") {
        let (floor_rows, floor) = bench.floor().await?;
        rows.extend(floor_rows);
        references.floor = Some(floor);
    }
    let which = MainScenarios {
        throughput: args.runs("throughput"),
        latency: args.runs("latency"),
        fan_in: args.runs("fan-in"),
    };
    if which.throughput {
        let disk = capture::disk_write_rate(&bench.dir.join("disk"), bench.plan.disk_bytes)?;
        references.disk_mb_s = Some(disk);
        rows.push(report::Row::reference(
            format!(
                "disk: sequential write + fdatasync of {} MiB, in the capture's folder (MB/s)",
                bench.plan.disk_bytes >> 20
            ),
            "-".into(),
            format!("{disk:.0}"),
            "-".into(),
            serde_json::json!({"scenario": "disk", "mb_per_s": disk}),
        ));
    }
    let main_proxy = if which.throughput || which.latency || which.fan_in {
        let (main_rows, main_proxy) = bench.main_proxy(&which, references).await?;
        let floor_rows = against_floor(&main_rows);
        rows.extend(main_rows);
        rows.extend(floor_rows);
        Some(main_proxy)
    } else {
        None
    };
    if args.runs("modes") {
        rows.extend(bench.modes().await?);
    }
    if args.runs("breakpoints") {
        rows.extend(bench.breakpoints().await?);
    }
    if args.runs("rules") {
        rows.extend(bench.rules().await?);
    }
    if args.runs("idle") {
        rows.extend(bench.idle().await?);
    }
    if args.runs("capture") {
        rows.extend(bench.big_capture(&bench.plan.capture).await?);
    }
    if args.runs("inspector") {
        rows.push(bench.inspector_live().await?);
    }
    if args.runs("loopback") {
        rows.extend(bench.loopback().await?);
    }
    if args.runs("big") {
        rows.push(bench.big_message().await?);
    }
    let _ = std::fs::remove_dir_all(&bench.dir);

    report::print(&rows, args.quick, args.json, main_proxy.as_ref());
    Ok(rows.iter().all(|r| r.met))
}

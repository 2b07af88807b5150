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

mod floor;
mod loopback;
mod peers;
mod proxy;
mod scenarios;

use peers::{client_tls, echo_server, Pki, Route};
use proxy::{locate_wstap, raise_fd_limit, ProxyProcess};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Payload bytes the bench's wstap captures per frame and message, unless told otherwise.
const BENCH_CAPTURE: usize = 1024;

/// Scenario names for `--only`.
const SCENARIOS: [&str; 7] = [
    "throughput",
    "latency",
    "fan-in",
    "idle",
    "big",
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
    max_capture: Option<usize>,
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
        max_capture: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--wstap" => args.wstap = Some(it.next().ok_or("--wstap needs a path")?.into()),
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
            "--max-capture" => {
                let bytes = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--max-capture needs a byte count")?;
                args.max_capture = Some(bytes);
            }
            "-h" | "--help" => {
                println!(
                    "usage: wstap-bench [--quick] [--json] [--wstap PATH] [--only SCENARIO] [--seconds N] [--max-capture BYTES]\n\
                     scenarios: {}\n\
                     --seconds sets each round's length; --max-capture is passed to wstap (default: wstap's own)",
                    SCENARIOS.join(", ")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One row of the report.
struct Row {
    scenario: String,
    direct: String,
    proxied: String,
    result: String,
    target: String,
    met: bool,
    json: Value,
}

fn main() {
    // Internal mode: serve as the floor relay (see floor.rs) until killed.
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some("--floor-relay") {
        let addr = raw.next().and_then(|a| a.parse().ok());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build();
        if let (Some(addr), Ok(rt)) = (addr, rt) {
            let _ = rt.block_on(floor::serve(addr));
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
    // Every frame's header bits and the first KiB of its payload: a full-payload trace of a
    // saturated loopback echo is written at the disk's speed (measured: 30 GB in 7 minutes),
    // which would measure the disk, not the proxy. `--max-capture 65536` restores wstap's default.
    let max_capture = Some(args.max_capture.unwrap_or(BENCH_CAPTURE));
    let fd_limit = raise_fd_limit(4 * plan.idle_ws as u64 + 4096);
    let wstap = locate_wstap(args.wstap.clone())?;
    let dir = std::env::temp_dir().join(format!("wstap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pki = Pki::new(&dir)?;
    let plain = echo_server(None).await.map_err(|e| e.to_string())?;
    let secure = echo_server(Some(pki.server.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let direct_tls = client_tls(&pki.ca_pem)?;
    let mut rows = Vec::new();

    // Throughput, latency and fan-in share one proxy process.
    let proxy = ProxyProcess::start(&wstap, max_capture, &dir.join("main"), &pki.ca_pem)?;
    let proxied_tls = client_tls(&proxy.ca_pem())?;
    let mut trace_written = 0u64;
    let route = |server, via_proxy: bool, tls: bool| Route {
        server,
        proxy: via_proxy.then_some(proxy.addr),
        tls: tls.then(|| {
            if via_proxy {
                proxied_tls.clone()
            } else {
                direct_tls.clone()
            }
        }),
    };
    for (tls, server, floor) in [(false, plain, 0.5), (true, secure, 0.4)] {
        if !args.runs("throughput") {
            break;
        }
        for size in [64usize, 16 * 1024] {
            let (mut direct, mut proxied) = (Vec::new(), Vec::new());
            for _ in 0..plan.rounds {
                direct.push(
                    scenarios::throughput(&route(server, false, tls), size, 16, plan.duration())
                        .await?,
                );
                proxied.push(
                    scenarios::throughput(&route(server, true, tls), size, 16, plan.duration())
                        .await?,
                );
                trace_written = trace_written.max(proxy.drain_trace());
            }
            let (d, p) = (median(direct), median(proxied));
            let ratio = p / d;
            let scheme = if tls { "wss" } else { "ws" };
            let size_name = if size == 64 {
                "64 B".to_owned()
            } else {
                "16 KiB".to_owned()
            };
            rows.push(Row {
                scenario: format!("throughput {scheme} {size_name}, window 16 (msg/s)"),
                direct: format!("{d:.0}"),
                proxied: format!("{p:.0}"),
                result: format!("ratio {ratio:.2}"),
                target: format!(">= {floor}"),
                met: ratio >= floor,
                json: json!({"scenario": "throughput", "scheme": scheme, "size": size, "window": 16,
                             "direct_msgs_per_s": d, "proxied_msgs_per_s": p, "ratio": ratio}),
            });
        }
    }

    let (mut d50, mut d99, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let latency_rounds = if args.runs("latency") { plan.rounds } else { 0 };
    for _ in 0..latency_rounds {
        let (a, b) = scenarios::latency(&route(plain, false, false), plan.duration()).await?;
        d50.push(a);
        d99.push(b);
        let (a, b) = scenarios::latency(&route(plain, true, false), plan.duration()).await?;
        p50.push(a);
        p99.push(b);
        trace_written = trace_written.max(proxy.drain_trace());
    }
    let quantiles = if latency_rounds > 0 {
        let (d50, d99, p50, p99) = (median(d50), median(d99), median(p50), median(p99));
        vec![("p50", d50, p50, 30.0), ("p99", d99, p99, 150.0)]
    } else {
        Vec::new()
    };
    for (name, d, p, limit) in quantiles {
        let added = p - d;
        rows.push(Row {
            scenario: format!("latency ws 64 B, window 1, {name} (µs)"),
            direct: format!("{d:.1}"),
            proxied: format!("{p:.1}"),
            result: format!("added {added:.1} µs"),
            target: format!("<= {limit} µs added"),
            met: added <= limit,
            json: json!({"scenario": "latency", "quantile": name, "direct_us": d, "proxied_us": p, "added_us": added}),
        });
    }

    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    let fan_in_rounds = if args.runs("fan-in") { plan.rounds } else { 0 };
    for _ in 0..fan_in_rounds {
        direct.push(
            scenarios::fan_in(
                &route(plain, false, false),
                plan.fan_in_connections,
                4,
                1024,
                plan.duration(),
            )
            .await?,
        );
        proxied.push(
            scenarios::fan_in(
                &route(plain, true, false),
                plan.fan_in_connections,
                4,
                1024,
                plan.duration(),
            )
            .await?,
        );
        trace_written = trace_written.max(proxy.drain_trace());
        let (d, p) = (direct[direct.len() - 1], proxied[proxied.len() - 1]);
        eprintln!("wstap-bench: fan-in round: direct {d:.0} msg/s, proxied {p:.0} msg/s");
    }
    if fan_in_rounds > 0 {
        let (d, p) = (median(direct), median(proxied));
        rows.push(Row {
        scenario: format!("fan-in {} connections, window 4, 1 KiB (msg/s)", plan.fan_in_connections),
        direct: format!("{d:.0}"),
        proxied: format!("{p:.0}"),
        result: format!("ratio {:.2}", p / d),
        target: ">= 0.5".into(),
        met: p / d >= 0.5,
        json: json!({"scenario": "fan_in", "connections": plan.fan_in_connections, "direct_msgs_per_s": d,
                     "proxied_msgs_per_s": p, "ratio": p / d}),
    });
    }
    let trace_bytes = trace_written.max(proxy.drain_trace());
    let main_peak_mib = proxy.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
    proxy.stop()?;

    // Idle sessions, each kind on a fresh proxy.
    let fd_room = (fd_limit.saturating_sub(512) / 2) as usize;
    for (tls, server, wanted, limit_kib) in [
        (false, plain, plan.idle_ws, 10.0),
        (true, secure, plan.idle_wss, 40.0),
    ] {
        if !args.runs("idle") {
            break;
        }
        let count = wanted.min(fd_room);
        let proxy = ProxyProcess::start(
            &wstap,
            max_capture,
            &dir.join(format!("idle-{tls}")),
            &pki.ca_pem,
        )?;
        let idle_route = Route {
            server,
            proxy: Some(proxy.addr),
            tls: if tls {
                Some(client_tls(&proxy.ca_pem())?)
            } else {
                None
            },
        };
        // One session first, so the baseline includes the runtime's warm state.
        scenarios::idle(&idle_route, 1, || ()).await?;
        let before = proxy.rss_kib().unwrap_or(0);
        let (after, answered) =
            scenarios::idle(&idle_route, count, || proxy.rss_kib().unwrap_or(0)).await?;
        let per_session = after.saturating_sub(before) as f64 / count as f64;
        let scheme = if tls { "wss" } else { "ws" };
        rows.push(Row {
            scenario: format!("idle {count} {scheme} sessions, then one echo each"),
            direct: "-".into(),
            proxied: format!("{answered}/{count} answered"),
            result: format!("{per_session:.1} KiB RSS/session"),
            target: format!("<= {limit_kib} KiB, all answer"),
            met: per_session <= limit_kib && answered == count,
            json: json!({"scenario": "idle", "scheme": scheme, "sessions": count, "answered": answered,
                         "rss_before_kib": before, "rss_after_kib": after, "kib_per_session": per_session}),
        });
        proxy.stop()?;
    }

    // The floor: the cheapest relay there is, measured the same way, for reading the rows
    // above against what any relay costs on this machine.
    if args.runs("floor") {
        let floor = ProxyProcess::start_floor(&dir.join("floor"))?;
        let via = |relay: bool| route_to(plain, relay.then_some(floor.addr));
        for size in [64usize, 16 * 1024] {
            let (mut direct, mut relayed) = (Vec::new(), Vec::new());
            for _ in 0..plan.rounds {
                direct.push(scenarios::throughput(&via(false), size, 16, plan.duration()).await?);
                relayed.push(scenarios::throughput(&via(true), size, 16, plan.duration()).await?);
            }
            let (d, f) = (median(direct), median(relayed));
            rows.push(Row {
                scenario: format!("floor relay: throughput ws {size} B, window 16 (msg/s)"),
                direct: format!("{d:.0}"),
                proxied: format!("{f:.0}"),
                result: format!("ratio {:.2}", f / d),
                target: "(reference)".into(),
                met: true,
                json: json!({"scenario": "floor_throughput", "size": size, "direct_msgs_per_s": d,
                             "floor_msgs_per_s": f, "ratio": f / d}),
            });
        }
        let (mut d50, mut f50, mut d99, mut f99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            let (a, b) = scenarios::latency(&via(false), plan.duration()).await?;
            d50.push(a);
            d99.push(b);
            let (a, b) = scenarios::latency(&via(true), plan.duration()).await?;
            f50.push(a);
            f99.push(b);
        }
        for (name, d, f) in [
            ("p50", median(d50), median(f50)),
            ("p99", median(d99), median(f99)),
        ] {
            rows.push(Row {
                scenario: format!("floor relay: latency ws 64 B, {name} (µs)"),
                direct: format!("{d:.1}"),
                proxied: format!("{f:.1}"),
                result: format!("added {:.1} µs", f - d),
                target: "(reference)".into(),
                met: true,
                json: json!({"scenario": "floor_latency", "quantile": name, "direct_us": d, "floor_us": f, "added_us": f - d}),
            });
        }
        let (mut direct, mut relayed) = (Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            direct.push(
                scenarios::fan_in(
                    &via(false),
                    plan.fan_in_connections,
                    4,
                    1024,
                    plan.duration(),
                )
                .await?,
            );
            relayed.push(
                scenarios::fan_in(
                    &via(true),
                    plan.fan_in_connections,
                    4,
                    1024,
                    plan.duration(),
                )
                .await?,
            );
        }
        let (d, f) = (median(direct), median(relayed));
        rows.push(Row {
            scenario: format!("floor relay: fan-in {} connections (msg/s)", plan.fan_in_connections),
            direct: format!("{d:.0}"),
            proxied: format!("{f:.0}"),
            result: format!("ratio {:.2}", f / d),
            target: "(reference)".into(),
            met: true,
            json: json!({"scenario": "floor_fan_in", "direct_msgs_per_s": d, "floor_msgs_per_s": f, "ratio": f / d}),
        });
        floor.stop()?;
    }

    if args.runs("loopback") {
        rows.extend(loopback_rows(&plan).await?);
    }

    // One big message each way, on a fresh proxy.
    if args.runs("big") {
        let proxy = ProxyProcess::start(&wstap, max_capture, &dir.join("big"), &pki.ca_pem)?;
        let direct = scenarios::big_message(&route_to(plain, None), plan.big).await?;
        let proxied = scenarios::big_message(&route_to(plain, Some(proxy.addr)), plan.big).await?;
        let peak_mib = proxy.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
        let ratio = proxied / direct;
        rows.push(Row {
        scenario: format!("one {} MiB message each way", plan.big >> 20),
        direct: format!("{direct:.2} s"),
        proxied: format!("{proxied:.2} s"),
        result: format!("time x{ratio:.2}, proxy peak RSS {peak_mib:.1} MiB"),
        target: "<= 2x, <= 64 MiB".into(),
        met: ratio <= 2.0 && peak_mib <= 64.0,
        json: json!({"scenario": "big_message", "bytes": plan.big, "direct_s": direct, "proxied_s": proxied,
                     "time_ratio": ratio, "proxy_peak_rss_mib": peak_mib}),
    });
        proxy.stop()?;
    }
    let _ = std::fs::remove_dir_all(&dir);

    print_report(&rows, args, trace_bytes, main_peak_mib);
    Ok(rows.iter().all(|r| r.met))
}

/// Raw TCP round trips: direct, with one core kept busy, and through the two kinds of
/// relay (see loopback.rs), `plan.rounds` rounds each, interleaved, medians.
async fn loopback_rows(plan: &Plan) -> Result<Vec<Row>, String> {
    use loopback::{Path, RoundTrip};
    let (rounds, duration) = (plan.rounds, plan.duration() / 2);
    let samples = tokio::task::spawn_blocking(move || {
        let mut samples = vec![Vec::new(); Path::ALL.len()];
        for _ in 0..rounds {
            for (path, found) in Path::ALL.into_iter().zip(&mut samples) {
                found.push(loopback::measure(path, duration)?);
            }
        }
        std::io::Result::Ok(samples)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("loopback round trip: {e}"))?;
    let medians: Vec<RoundTrip> = samples
        .into_iter()
        .map(|found| RoundTrip {
            p50: median(found.iter().map(|r| r.p50).collect()),
            p99: median(found.iter().map(|r| r.p99).collect()),
        })
        .collect();
    let direct = medians[0];
    let pair = |r: RoundTrip| format!("{:.1} / {:.1}", r.p50, r.p99);
    let rows = Path::ALL
        .into_iter()
        .zip(medians)
        .map(|(path, found)| {
            let relayed = matches!(path, Path::ThreadRelay | Path::EventLoopRelay);
            Row {
                scenario: format!(
                    "loopback: raw TCP 64 B round trip, {}, p50 / p99 (µs)",
                    path.describe()
                ),
                direct: pair(if relayed { direct } else { found }),
                proxied: if relayed { pair(found) } else { "-".into() },
                result: if relayed {
                    format!(
                        "added {:.1} / {:.1} µs",
                        found.p50 - direct.p50,
                        found.p99 - direct.p99
                    )
                } else {
                    format!("p50 {:.1} µs", found.p50)
                },
                target: "(reference)".into(),
                met: true,
                json: json!({"scenario": "loopback", "path": path.key(),
                             "p50_us": found.p50, "p99_us": found.p99}),
            }
        })
        .collect();
    Ok(rows)
}

fn route_to(server: std::net::SocketAddr, proxy: Option<std::net::SocketAddr>) -> Route {
    Route {
        server,
        proxy,
        tls: None,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    match loopback::idle_policy() {
        Some(idle) => format!("{cores} cores, {cpu}, {idle}"),
        None => format!("{cores} cores, {cpu}"),
    }
}

fn print_report(rows: &[Row], args: &Args, trace_bytes: u64, main_peak_mib: f64) {
    println!(
        "wstap-bench{}: {}",
        if args.quick { " --quick" } else { "" },
        machine()
    );
    println!();
    println!("| scenario | direct | through wstap | result | target | met |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let met = if r.met { "yes" } else { "NO" };
        println!(
            "| {} | {} | {} | {} | {} | {met} |",
            r.scenario, r.direct, r.proxied, r.result, r.target
        );
    }
    if ["throughput", "latency", "fan-in"]
        .iter()
        .any(|scenario| args.runs(scenario))
    {
        println!();
        println!(
            "(throughput, latency and fan-in proxy: trace file {:.1} MiB, peak RSS {main_peak_mib:.1} MiB)",
            trace_bytes as f64 / (1 << 20) as f64
        );
    }
    if args.json {
        let doc = json!({
            "machine": machine(),
            "quick": args.quick,
            "trace_bytes": trace_bytes,
            "throughput_proxy_peak_rss_mib": main_peak_mib,
            "results": rows.iter().map(|r| {
                let mut v = r.json.clone();
                v["target_met"] = json!(r.met);
                v
            }).collect::<Vec<_>>(),
        });
        println!("{doc}");
    }
}

//! The benchmark's scenario groups, each turning measurements into report rows: direct
//! and proxied runs alternate within every round, and rows carry medians over rounds.

use crate::loopback::{self, Path, RoundTrip};
use crate::peers::{client_tls, Mode, Pki, Route};
use crate::proxy::{ProxyProcess, Recording};
use crate::report::{median, MainProxy, Row};
use crate::scenarios;
use crate::Plan;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Fan-in's messages in flight per connection, and their size.
const FAN_IN_WINDOW: usize = 4;
const FAN_IN_SIZE: usize = 1024;

/// Throughput's messages in flight.
const THROUGHPUT_WINDOW: usize = 16;

/// What every scenario group shares: the plan, the echo servers and how to start wstap.
pub struct Bench {
    /// How much of everything to run.
    pub plan: Plan,
    /// The wstap binary.
    pub wstap: PathBuf,
    /// Extra arguments for every wstap.
    pub wstap_args: Vec<String>,
    /// `--max-capture` for the main proxy (`None`: wstap's default, 64 KiB).
    pub max_capture: Option<usize>,
    /// A scratch directory for proxies' files.
    pub dir: PathBuf,
    /// The benchmark's own CA and the echo server's certificate.
    pub pki: Pki,
    /// The plain echo server.
    pub plain: SocketAddr,
    /// The TLS echo server.
    pub secure: SocketAddr,
    /// The open-file limit, which bounds the idle session count.
    pub fd_limit: u64,
    /// `--baseline`: another wstap binary whose main rows run in the same rounds,
    /// alternating with this one's, so the two are read against the same moment.
    pub baseline: Option<PathBuf>,
}

/// Which scenarios of the main proxy to run.
pub struct MainScenarios {
    /// Throughput rows.
    pub throughput: bool,
    /// Latency rows.
    pub latency: bool,
    /// Fan-in row.
    pub fan_in: bool,
}

/// What the main rows are read against, when this run measured it.
#[derive(Debug, Clone, Copy, Default)]
pub struct References {
    /// The floor relay's figures.
    pub floor: Option<Floor>,
    /// The disk's sequential write speed, MB/s.
    pub disk_mb_s: Option<f64>,
}

/// The floor relay's figures in this run that other rows are held to: its added latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floor {
    /// Added latency at p50 and p99, µs.
    pub added: (f64, f64),
}

/// Rows that read the main rows against the floor relay measured in their own rounds
/// (the TLS floor for wss): wstap's ratio to direct divided by the floor's (1.0 would be
/// a relay as cheap as the floor), and the baseline's, when there is one.
pub fn against_floor(main: &[Row]) -> Vec<Row> {
    main.iter()
        .filter_map(|row| {
            let floor_ratio = row.json["floor_ratio"].as_f64()?;
            let ratio = row.json["ratio"].as_f64()?;
            let share = ratio / floor_ratio;
            let baseline = row.json["baseline_ratio"].as_f64().map(|b| b / floor_ratio);
            let mut result = match baseline {
                Some(b) => format!("{share:.2} of the floor (baseline {b:.2})"),
                None => format!("{share:.2} of the floor"),
            };
            let by_round = &row.json["floor_shares_by_round"];
            if let (Some(mid), Some(least), Some(most)) = (
                by_round["median"].as_f64(),
                by_round["least"].as_f64(),
                by_round["most"].as_f64(),
            ) {
                result.push_str(&format!("; round by round {mid:.2} ({least:.2}-{most:.2})"));
            }
            let json = json!({"scenario": "against_floor", "of": row.json["scenario"],
                       "scheme": row.json["scheme"], "size": row.json["size"],
                       "floor_ratio": floor_ratio, "ratio": ratio, "share_of_floor": share,
                       "baseline_share": baseline, "floor_shares_by_round": by_round});
            let scenario = format!("against the floor: {}", row.scenario);
            let (direct, relayed) = (
                format!("floor {floor_ratio:.2}"),
                format!("wstap {ratio:.2}"),
            );
            Some(match floor_target(&row.json) {
                Some(target) => Row {
                    scenario,
                    direct,
                    proxied: relayed,
                    result,
                    target: format!(">= {target:.2} of the floor"),
                    met: share >= target,
                    json,
                },
                None => Row::reference(scenario, direct, relayed, result, json),
            })
        })
        .collect()
}

/// Each round's wstap rate over the floor relay's in the same round (`proxied[i]` and
/// `floor[i]` are round `i`'s): their median, least and most, as JSON; `null` without a
/// floor. The `against the floor` rows' share is wstap's median rate over the floor's
/// (each a median over all rounds); this reads the same rounds pair by pair, and its
/// spread says how firm that share is.
fn floor_shares_by_round(proxied: &[f64], floor: &[f64]) -> serde_json::Value {
    debug_assert!(
        floor.is_empty() || floor.len() == proxied.len(),
        "a floor run in every round wstap ran, or in none"
    );
    let shares: Vec<f64> = proxied
        .iter()
        .zip(floor)
        .filter(|(_, f)| **f > 0.0)
        .map(|(p, f)| p / f)
        .collect();
    let (Some(least), Some(most)) = (
        shares.iter().copied().min_by(f64::total_cmp),
        shares.iter().copied().max_by(f64::total_cmp),
    ) else {
        return serde_json::Value::Null;
    };
    json!({"median": median(shares), "least": least, "most": most})
}

/// The share of the floor relay's ratio a main row must reach with the capture at its
/// defaults (the capture-cost issue's targets; the TLS floor for wss); `None`: the row
/// is read against the floor for reference only.
fn floor_target(row: &serde_json::Value) -> Option<f64> {
    if !row["max_capture"].is_null() {
        return None;
    }
    match (
        row["scenario"].as_str()?,
        row["scheme"].as_str(),
        row["size"].as_u64(),
    ) {
        ("throughput", Some("ws"), Some(64)) => Some(0.95),
        ("throughput", Some("ws"), Some(16_384)) => Some(0.85),
        ("throughput", Some("wss"), _) => Some(0.8),
        ("fan_in", _, _) => Some(0.8),
        _ => None,
    }
}

/// What a throughput row's target is.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A ratio to direct.
    Ratio(f64),
    /// Payload bytes captured per second, against this share of the disk's write speed.
    Disk(f64),
}

impl Bench {
    fn proxy(&self, name: &str, recording: Recording) -> Result<ProxyProcess, String> {
        self.proxy_of(&self.wstap, name, recording)
    }

    fn proxy_of(
        &self,
        binary: &std::path::Path,
        name: &str,
        recording: Recording,
    ) -> Result<ProxyProcess, String> {
        ProxyProcess::start(
            binary,
            recording,
            &self.wstap_args,
            &self.dir.join(name),
            &self.pki.ca_pem,
        )
    }

    /// The baseline binary's proxy for `name`, when there is a baseline.
    fn baseline_proxy(
        &self,
        name: &str,
        recording: Recording,
    ) -> Result<Option<ProxyProcess>, String> {
        self.baseline
            .as_deref()
            .map(|binary| self.proxy_of(binary, &format!("{name}-baseline"), recording))
            .transpose()
    }

    /// Throughput, latency and fan-in, all against one proxy recording a capture at the
    /// default payload capture (64 KiB, or `--max-capture`).
    pub async fn main_proxy(
        &self,
        which: &MainScenarios,
        references: References,
    ) -> Result<(Vec<Row>, MainProxy), String> {
        let recording = Recording::Capture(self.max_capture);
        let proxy = self.proxy("main", recording)?;
        let baseline = self.baseline_proxy("main", recording)?;
        let mut run = MainRun::new(self, proxy, baseline)?;
        let mut rows = Vec::new();
        if which.throughput {
            // The captured rate is read off the payload file: payloads kept inline in the
            // database (`--max-capture` at most INLINE_MAX, as this build has it; an older
            // `--wstap` binary may keep more inline) are not in it.
            let to_file = self
                .max_capture
                .is_none_or(|kept| kept > wstap_store::INLINE_MAX);
            let disk = references
                .disk_mb_s
                .filter(|_| to_file)
                .map(|_| Target::Disk(0.8));
            for (tls, server, targets) in [
                (
                    false,
                    self.plain,
                    [Target::Ratio(0.45), disk.unwrap_or(Target::Ratio(0.5))],
                ),
                (true, self.secure, [Target::Ratio(0.4), Target::Ratio(0.4)]),
            ] {
                for (size, target) in [64usize, 16 * 1024].into_iter().zip(targets) {
                    rows.extend(
                        run.throughput(tls, server, size, target, references)
                            .await?,
                    );
                }
            }
        }
        if which.latency {
            rows.extend(run.latency(references).await?);
        }
        if which.fan_in {
            rows.extend(run.fan_in().await?);
        }
        run.drain();
        let main = MainProxy {
            captured_bytes: run.captured_bytes,
            peak_mib: run.main.proxy.peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        };
        run.stop()?;
        if which.throughput {
            // The same 16 KiB echo, keeping 1 KiB of each payload.
            let recording = Recording::Capture(Some(1024));
            let proxy = self.proxy("small-capture", recording)?;
            let baseline = self.baseline_proxy("small-capture", recording)?;
            let mut run = MainRun::new(self, proxy, baseline)?;
            let found = run
                .throughput(false, self.plain, 16 * 1024, Target::Ratio(0.5), references)
                .await?;
            for mut row in found {
                row.scenario = format!("{}, 1 KiB captured", row.scenario);
                row.json["max_capture"] = json!(1024);
                rows.push(row);
            }
            run.stop()?;
        }
        Ok((rows, main))
    }

    async fn fan_in_rate(&self, route: &Route) -> Result<f64, String> {
        scenarios::fan_in(
            route,
            self.plan.fan_in_connections,
            FAN_IN_WINDOW,
            FAN_IN_SIZE,
            self.plan.duration(),
        )
        .await
    }

    /// Idle sessions, ws and wss, each kind on a fresh proxy so that its memory is theirs.
    pub async fn idle(&self) -> Result<Vec<Row>, String> {
        let fd_room = (self.fd_limit.saturating_sub(512) / 2) as usize;
        let mut rows = Vec::new();
        for (tls, server, wanted, limit_kib) in [
            (false, self.plain, self.plan.idle_ws, 10.0),
            (true, self.secure, self.plan.idle_wss, 40.0),
        ] {
            let count = wanted.min(fd_room);
            let scheme = if tls { "wss" } else { "ws" };
            let binaries = std::iter::once((&self.wstap, false))
                .chain(self.baseline.as_ref().map(|b| (b, true)));
            for (binary, is_baseline) in binaries {
                let name = format!("idle-{tls}{}", if is_baseline { "-baseline" } else { "" });
                let proxy = self.proxy_of(binary, &name, Recording::Capture(None))?;
                let (before, after, answered) = idle_sessions(&proxy, server, tls, count).await?;
                proxy.stop()?;
                let per_session = after.saturating_sub(before) as f64 / count as f64;
                let json = json!({"scenario": "idle", "scheme": scheme, "sessions": count,
                                  "answered": answered, "rss_before_kib": before,
                                  "rss_after_kib": after, "kib_per_session": per_session,
                                  "baseline": is_baseline});
                let scenario = format!("idle {count} {scheme} sessions, then one echo each");
                rows.push(if is_baseline {
                    Row::reference(
                        format!("{scenario} (baseline)"),
                        "-".into(),
                        format!("{answered}/{count} answered"),
                        format!("{per_session:.1} KiB RSS/session"),
                        json,
                    )
                } else {
                    Row {
                        scenario,
                        direct: "-".into(),
                        proxied: format!("{answered}/{count} answered"),
                        result: format!("{per_session:.1} KiB RSS/session"),
                        target: format!("<= {limit_kib} KiB, all answer"),
                        met: per_session <= limit_kib && answered == count,
                        json,
                    }
                });
            }
        }
        Ok(rows)
    }

    /// The floor: the cheapest relay there is, measured the same way (and the TLS floor,
    /// for wss), in reference rows of its own: what any relay costs on this machine. Also
    /// returns its added latency (p50, p99), which the main latency rows are held to. (The
    /// main throughput and fan-in rows run the floor relays in their own rounds and are
    /// read against those.)
    pub async fn floor(&self) -> Result<(Vec<Row>, Floor), String> {
        let floor = ProxyProcess::start_floor(&self.dir.join("floor"), None)?;
        let via = |relay: bool| route_to(self.plain, relay.then_some(floor.addr));
        let mut rows = Vec::new();
        let mut figures = Floor::default();
        for size in [64usize, 16 * 1024] {
            let (d, f) = self.direct_and_relayed(&via, size).await?;
            rows.push(Row::reference(
                format!(
                    "floor relay: throughput ws {}, window {THROUGHPUT_WINDOW} (msg/s)",
                    size_name(size)
                ),
                format!("{d:.0}"),
                format!("{f:.0}"),
                format!("ratio {:.2}", f / d),
                json!({"scenario": "floor_throughput", "size": size, "direct_msgs_per_s": d,
                       "floor_msgs_per_s": f, "ratio": f / d}),
            ));
        }
        let (mut d50, mut f50, mut d99, mut f99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.plan.rounds {
            let (a, b) = scenarios::latency(&via(false), self.plan.duration()).await?;
            d50.push(a);
            d99.push(b);
            let (a, b) = scenarios::latency(&via(true), self.plan.duration()).await?;
            f50.push(a);
            f99.push(b);
        }
        let (d50, f50, d99, f99) = (median(d50), median(f50), median(d99), median(f99));
        figures.added = (f50 - d50, f99 - d99);
        for (name, d, f) in [("p50", d50, f50), ("p99", d99, f99)] {
            rows.push(Row::reference(
                format!("floor relay: latency ws 64 B, {name} (µs)"),
                format!("{d:.1}"),
                format!("{f:.1}"),
                format!("added {:.1} µs", f - d),
                json!({"scenario": "floor_latency", "quantile": name, "direct_us": d,
                       "floor_us": f, "added_us": f - d}),
            ));
        }
        let (mut direct, mut relayed) = (Vec::new(), Vec::new());
        for _ in 0..self.plan.rounds {
            direct.push(self.fan_in_rate(&via(false)).await?);
            relayed.push(self.fan_in_rate(&via(true)).await?);
        }
        let (d, f) = (median(direct), median(relayed));
        rows.push(Row::reference(
            format!(
                "floor relay: fan-in {} connections (msg/s)",
                self.plan.fan_in_connections
            ),
            format!("{d:.0}"),
            format!("{f:.0}"),
            format!("ratio {:.2}", f / d),
            json!({"scenario": "floor_fan_in", "direct_msgs_per_s": d, "floor_msgs_per_s": f,
                   "ratio": f / d}),
        ));
        floor.stop()?;
        rows.extend(self.tls_floor().await?);
        Ok((rows, figures))
    }

    /// Throughput at `size` on `via(false)` (direct) and `via(true)` (through a floor
    /// relay), in turn each round: the medians, msg/s.
    async fn direct_and_relayed(
        &self,
        via: &impl Fn(bool) -> Route,
        size: usize,
    ) -> Result<(f64, f64), String> {
        let (mut direct, mut relayed) = (Vec::new(), Vec::new());
        for _ in 0..self.plan.rounds {
            for (relay, found) in [(false, &mut direct), (true, &mut relayed)] {
                let rate = scenarios::throughput(
                    &via(relay),
                    size,
                    THROUGHPUT_WINDOW,
                    self.plan.duration(),
                )
                .await?;
                found.push(rate);
            }
        }
        Ok((median(direct), median(relayed)))
    }

    /// The TLS floor's wss throughput rows, 64 B and 16 KiB.
    async fn tls_floor(&self) -> Result<Vec<Row>, String> {
        let pki_dir = self.pki.ca_pem.parent().unwrap_or(&self.dir);
        let floor = ProxyProcess::start_floor(&self.dir.join("tls-floor"), Some(pki_dir))?;
        let tls = client_tls(&self.pki.ca_pem)?;
        let via = |relay: bool| Route {
            server: self.secure,
            proxy: relay.then_some(floor.addr),
            tls: Some(tls.clone()),
            mode: Mode::Connect,
        };
        let mut rows = Vec::new();
        for size in [64usize, 16 * 1024] {
            let (d, f) = self.direct_and_relayed(&via, size).await?;
            rows.push(Row::reference(
                format!(
                    "TLS floor relay: throughput wss {}, window {THROUGHPUT_WINDOW} (msg/s)",
                    size_name(size)
                ),
                format!("{d:.0}"),
                format!("{f:.0}"),
                format!("ratio {:.2}", f / d),
                json!({"scenario": "tls_floor_throughput", "size": size, "direct_msgs_per_s": d,
                       "floor_msgs_per_s": f, "ratio": f / d}),
            ));
        }
        floor.stop()?;
        Ok(rows)
    }

    /// Raw TCP round trips: direct, with one core kept busy, and through the two kinds of
    /// relay (see loopback.rs), interleaved within each round, medians.
    pub async fn loopback(&self) -> Result<Vec<Row>, String> {
        let (rounds, duration) = (self.plan.rounds, self.plan.duration() / 2);
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
        Ok(Path::ALL
            .into_iter()
            .zip(medians)
            .map(|(path, found)| {
                let relayed = matches!(path, Path::ThreadRelay | Path::EventLoopRelay);
                let (direct_figure, relayed_figure, result) = if relayed {
                    let added = format!(
                        "added {:.1} / {:.1} µs",
                        found.p50 - direct.p50,
                        found.p99 - direct.p99
                    );
                    (pair(direct), pair(found), added)
                } else {
                    (pair(found), "-".into(), format!("p50 {:.1} µs", found.p50))
                };
                Row::reference(
                    format!(
                        "loopback: raw TCP 64 B round trip, {}, p50 / p99 (µs)",
                        path.describe()
                    ),
                    direct_figure,
                    relayed_figure,
                    result,
                    json!({"scenario": "loopback", "path": path.key(),
                           "p50_us": found.p50, "p99_us": found.p99}),
                )
            })
            .collect())
    }

    /// The proxy modes: one wstap (recording a capture, as by default) with its forward
    /// port, a SOCKS5 listener and a reverse listener for the plain echo server; in every
    /// round the same echo runs through each, each run after a direct one, so SOCKS5 and
    /// reverse are read against forward mode of the same process and the same moment.
    pub async fn modes(&self) -> Result<Vec<Row>, String> {
        let (socks, reverse) = (crate::proxy::free_addr()?, crate::proxy::free_addr()?);
        let mut args = self.wstap_args.clone();
        args.extend([
            "--socks5".to_owned(),
            socks.to_string(),
            "--reverse".to_owned(),
            format!("{reverse}=ws://{}", self.plain),
        ]);
        let proxy = ProxyProcess::start(
            &self.wstap,
            Recording::Capture(self.max_capture),
            &args,
            &self.dir.join("modes"),
            &self.pki.ca_pem,
        )?;
        let route = |mode: Option<Mode>| Route {
            server: self.plain,
            proxy: mode.map(|mode| match mode {
                Mode::Connect => proxy.addr,
                Mode::Socks5 => socks,
                Mode::Reverse => reverse,
            }),
            tls: None,
            mode: mode.unwrap_or(Mode::Connect),
        };
        let modes = [Mode::Connect, Mode::Socks5, Mode::Reverse];
        let mut rows = Vec::new();
        for size in [64usize, 16 * 1024] {
            let (mut direct, mut through) = (Vec::new(), vec![Vec::new(); modes.len()]);
            for round in 0..self.plan.rounds {
                // A direct run before each proxied one, as in the main rows: a run through
                // the proxy leaves the capture writer work that would otherwise land on
                // the next mode's run. The modes' order turns round by round.
                for turn in 0..modes.len() {
                    let i = (round + turn) % modes.len();
                    for (way, found) in [(None, &mut direct), (Some(modes[i]), &mut through[i])] {
                        proxy.drain();
                        let rate = scenarios::throughput(
                            &route(way),
                            size,
                            THROUGHPUT_WINDOW,
                            self.plan.duration(),
                        )
                        .await?;
                        found.push(rate);
                    }
                }
            }
            let rates: Vec<f64> = std::iter::once(direct).chain(through).map(median).collect();
            let (direct, forward) = (rates[0], rates[1] / rates[0]);
            for (mode, rate) in [(Mode::Socks5, rates[2]), (Mode::Reverse, rates[3])] {
                let ratio = rate / direct;
                rows.push(Row {
                    scenario: format!(
                        "mode {}: throughput ws {}, window {THROUGHPUT_WINDOW} (msg/s)",
                        mode.name(),
                        size_name(size)
                    ),
                    direct: format!("{direct:.0}"),
                    proxied: format!("{rate:.0}"),
                    result: format!("ratio {ratio:.2}; forward mode {forward:.2}"),
                    target: "within 0.05 of forward".into(),
                    met: ratio >= forward - 0.05,
                    json: json!({"scenario": "mode_throughput", "mode": format!("{mode:?}").to_lowercase(),
                                 "size": size, "window": THROUGHPUT_WINDOW,
                                 "direct_msgs_per_s": direct, "proxied_msgs_per_s": rate,
                                 "ratio": ratio, "forward_ratio": forward}),
                });
            }
        }
        proxy.stop()?;
        Ok(rows)
    }

    /// A breakpoint that selects nothing: the same echo through a wstap with no breakpoint
    /// and through one whose breakpoint reads every message's payload (a text search that
    /// never matches, so each message is judged whole before it goes on), turn by turn,
    /// each after a direct run, both recording a capture as by default.
    pub async fn breakpoints(&self) -> Result<Vec<Row>, String> {
        let judged = [
            "--break".to_owned(),
            r#"text~"no message says this""#.to_owned(),
        ];
        let rates = self.against_plain("break", &[&judged]).await?;
        Ok(rates
            .into_iter()
            .map(|(size, none_rate, rates)| {
                nothing_selected(
                    "breakpoint",
                    "no breakpoint",
                    "breakpoint_nothing",
                    size,
                    none_rate,
                    rates[0],
                )
            })
            .collect())
    }

    /// Rules (`--rules`): ten that select nothing (each reads every message's payload),
    /// held to no rules; and one that rewrites every message the client sends, reported.
    pub async fn rules(&self) -> Result<Vec<Row>, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let nothing: String = (0..10)
            .map(|n| {
                format!("[[rule]]\nfilter = 'text~\"no message says this {n}\"'\ndrop = true\n\n")
            })
            .collect();
        let every =
            "[[rule]]\nfilter = 'dir:c2s'\nreplace = [{ hex = \"a5\", with_hex = \"5a\" }]\n";
        let mut args = Vec::new();
        for (name, text) in [
            ("rules-nothing.toml", nothing.as_str()),
            ("rules-every.toml", every),
        ] {
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            args.push(vec!["--rules".to_owned(), path.display().to_string()]);
        }
        let rates = self.against_plain("rules", &[&args[0], &args[1]]).await?;
        let mut rows = Vec::new();
        for (size, none_rate, rates) in rates {
            let [nothing_rate, every_rate] = [rates[0], rates[1]];
            rows.push(nothing_selected(
                "ten rules",
                "no rules",
                "rules_nothing",
                size,
                none_rate,
                nothing_rate,
            ));
            let every_ratio = every_rate / none_rate;
            rows.push(Row::reference(
                format!(
                    "a rule rewriting every client message: throughput ws {}, window {THROUGHPUT_WINDOW} (msg/s)",
                    size_name(size)
                ),
                format!("{none_rate:.0} (no rules)"),
                format!("{every_rate:.0}"),
                format!("ratio {every_ratio:.2} of none"),
                json!({"scenario": "rules_rewrite_every", "size": size, "window": THROUGHPUT_WINDOW,
                       "none_msgs_per_s": none_rate, "rules_msgs_per_s": every_rate,
                       "ratio": every_ratio}),
            ));
        }
        Ok(rows)
    }

    /// The same echo (64 B and 16 KiB) through a wstap with no extra arguments and
    /// through one per entry of `variants` (its extra arguments), turn by turn, each after
    /// a direct run, all recording a capture as by default. Per size: the plain wstap's
    /// median rate and each variant's.
    async fn against_plain(
        &self,
        name: &str,
        variants: &[&[String]],
    ) -> Result<Vec<(usize, f64, Vec<f64>)>, String> {
        let start = |label: String, extra: &[String]| {
            let mut args = self.wstap_args.clone();
            args.extend(extra.iter().cloned());
            ProxyProcess::start(
                &self.wstap,
                Recording::Capture(self.max_capture),
                &args,
                &self.dir.join(label),
                &self.pki.ca_pem,
            )
        };
        let mut proxies = vec![start(format!("{name}-none"), &[])?];
        for (n, extra) in variants.iter().enumerate() {
            proxies.push(start(format!("{name}-{n}"), extra)?);
        }
        let route = |proxy: Option<&ProxyProcess>| Route {
            server: self.plain,
            proxy: proxy.map(|p| p.addr),
            tls: None,
            mode: Mode::Connect,
        };
        let mut out = Vec::new();
        for size in [64usize, 16 * 1024] {
            let mut rates = vec![Vec::new(); proxies.len()];
            for round in 0..self.plan.rounds {
                for turn in 0..proxies.len() {
                    let i = (round + turn) % proxies.len();
                    for proxy in &proxies {
                        proxy.drain();
                    }
                    // A direct run first: the proxied run then starts on a quiet machine.
                    scenarios::throughput(
                        &route(None),
                        size,
                        THROUGHPUT_WINDOW,
                        self.plan.duration(),
                    )
                    .await?;
                    let rate = scenarios::throughput(
                        &route(Some(&proxies[i])),
                        size,
                        THROUGHPUT_WINDOW,
                        self.plan.duration(),
                    )
                    .await?;
                    rates[i].push(rate);
                }
            }
            let mut medians = rates.into_iter().map(median);
            let plain = medians.next().unwrap_or(0.0);
            out.push((size, plain, medians.collect()));
        }
        for proxy in proxies {
            proxy.stop()?;
        }
        Ok(out)
    }

    /// One big message each way, on a fresh proxy.
    pub async fn big_message(&self) -> Result<Row, String> {
        let proxy = self.proxy("big", Recording::Capture(None))?;
        let size = self.plan.big;
        let direct = scenarios::big_message(&route_to(self.plain, None), size).await?;
        let proxied = scenarios::big_message(&route_to(self.plain, Some(proxy.addr)), size).await?;
        let peak_mib = proxy.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
        proxy.stop()?;
        let ratio = proxied / direct;
        Ok(Row {
            scenario: format!("one {} MiB message each way", size >> 20),
            direct: format!("{direct:.2} s"),
            proxied: format!("{proxied:.2} s"),
            result: format!("time x{ratio:.2}, proxy peak RSS {peak_mib:.1} MiB"),
            target: "<= 2x, <= 64 MiB".into(),
            met: ratio <= 2.0 && peak_mib <= 64.0,
            json: json!({"scenario": "big_message", "bytes": size, "direct_s": direct,
                         "proxied_s": proxied, "time_ratio": ratio,
                         "proxy_peak_rss_mib": peak_mib}),
        })
    }
}

/// Which way a main-row run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Direct,
    Wstap,
    Baseline,
    /// Through the floor relay (the TLS floor for wss).
    Floor,
}

/// The ways of one round: direct first, then this wstap, the baseline and the floor
/// relay (each when wanted), their order turning round by round so none always runs
/// right after the direct run (over 5 rounds of three ways, wstap runs there twice and
/// the others once or twice).
fn ways(round: usize, baseline: bool, floor: bool) -> Vec<Way> {
    let mut relayed = vec![Way::Wstap];
    relayed.extend(baseline.then_some(Way::Baseline));
    relayed.extend(floor.then_some(Way::Floor));
    let turn = round % relayed.len();
    relayed.rotate_left(turn);
    std::iter::once(Way::Direct).chain(relayed).collect()
}

/// A row reading this wstap's figure against the baseline's of the same rounds.
fn against_baseline(scenario: &str, current: f64, baseline: f64, rule: Rule) -> Row {
    let (result, target, met) = match rule {
        Rule::RatioWithin(slack) => (
            format!("ratio {current:.2} vs {baseline:.2}"),
            format!(">= baseline - {slack}"),
            current >= baseline - slack,
        ),
        Rule::AddedWithin(slack) => (
            format!("added {current:.1} vs {baseline:.1} µs"),
            format!("<= baseline + {slack} µs"),
            current <= baseline + slack,
        ),
    };
    Row {
        scenario: format!("against the baseline: {scenario}"),
        direct: format!("baseline {baseline:.2}"),
        proxied: format!("wstap {current:.2}"),
        result,
        target,
        met,
        json: json!({"scenario": "against_baseline", "of": scenario,
                     "current": current, "baseline": baseline}),
    }
}

/// What a baseline row holds this wstap to.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// A ratio to direct no lower than the baseline's less this.
    RatioWithin(f64),
    /// Added latency no higher than the baseline's plus this, µs.
    AddedWithin(f64),
}

/// A proxy of the main rows and the routes through it.
struct Proxied {
    proxy: ProxyProcess,
    routes: Routes,
}

impl Proxied {
    fn new(bench: &Bench, proxy: ProxyProcess) -> Result<Proxied, String> {
        Ok(Proxied {
            routes: Routes {
                direct_tls: client_tls(&bench.pki.ca_pem)?,
                proxied_tls: client_tls(&proxy.ca_pem())?,
                proxy: proxy.addr,
            },
            proxy,
        })
    }
}

/// The floor relays the main rows run in their own rounds: wstap is read against them
/// as measured at the same moments, not minutes apart.
struct Floors {
    plain: ProxyProcess,
    tls: ProxyProcess,
}

impl Floors {
    fn start(bench: &Bench) -> Result<Floors, String> {
        let pki_dir = bench.pki.ca_pem.parent().unwrap_or(&bench.dir);
        Ok(Floors {
            plain: ProxyProcess::start_floor(&bench.dir.join("main-floor"), None)?,
            tls: ProxyProcess::start_floor(&bench.dir.join("main-tls-floor"), Some(pki_dir))?,
        })
    }

    fn stop(self) -> Result<(), String> {
        self.plain.stop()?;
        self.tls.stop()
    }
}

/// The main proxy's run (and the baseline's and the floor relays beside it): routes, and
/// how much payload the main proxy has captured so far.
struct MainRun<'a> {
    bench: &'a Bench,
    main: Proxied,
    baseline: Option<Proxied>,
    floors: Floors,
    captured_bytes: u64,
}

impl<'a> MainRun<'a> {
    fn new(
        bench: &'a Bench,
        proxy: ProxyProcess,
        baseline: Option<ProxyProcess>,
    ) -> Result<Self, String> {
        Ok(MainRun {
            bench,
            main: Proxied::new(bench, proxy)?,
            baseline: baseline.map(|p| Proxied::new(bench, p)).transpose()?,
            floors: Floors::start(bench)?,
            captured_bytes: 0,
        })
    }

    /// The route of `way` to `server`; `None` for the baseline when there is none.
    fn route(&self, way: Way, server: SocketAddr, tls: bool) -> Option<Route> {
        match way {
            Way::Direct => Some(self.main.routes.to(server, false, tls)),
            Way::Wstap => Some(self.main.routes.to(server, true, tls)),
            Way::Baseline => self
                .baseline
                .as_ref()
                .map(|b| b.routes.to(server, true, tls)),
            // The TLS floor shows the client the benchmark's own certificate for the
            // server, which the direct route's configuration trusts.
            Way::Floor => Some(Route {
                proxy: Some(match tls {
                    true => self.floors.tls.addr,
                    false => self.floors.plain.addr,
                }),
                ..self.main.routes.to(server, false, tls)
            }),
        }
    }

    /// The ways of `round`; `floor`: whether the floor relay runs in it.
    fn ways(&self, round: usize, floor: bool) -> Vec<Way> {
        ways(round, self.baseline.is_some(), floor)
    }

    /// Stops every process of the run.
    fn stop(self) -> Result<(), String> {
        self.main.proxy.stop()?;
        if let Some(baseline) = self.baseline {
            baseline.proxy.stop()?;
        }
        self.floors.stop()
    }

    /// Empties the proxies' bulk files (see [`ProxyProcess::drain`]), keeping count of the
    /// main proxy's; returns its bytes since the last drain.
    fn drain(&mut self) -> u64 {
        if let Some(baseline) = &self.baseline {
            baseline.proxy.drain();
        }
        let bytes = self.main.proxy.drain();
        self.captured_bytes += bytes;
        bytes
    }

    async fn throughput(
        &mut self,
        tls: bool,
        server: SocketAddr,
        size: usize,
        target: Target,
        references: References,
    ) -> Result<Vec<Row>, String> {
        let plan = &self.bench.plan;
        let (mut direct, mut proxied, mut base, mut floor, mut captured) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..plan.rounds {
            for way in self.ways(round, true) {
                let Some(route) = self.route(way, server, tls) else {
                    continue;
                };
                self.drain();
                let start = std::time::Instant::now();
                let rate =
                    scenarios::throughput(&route, size, THROUGHPUT_WINDOW, plan.duration()).await?;
                let bytes = self.drain();
                match way {
                    Way::Direct => direct.push(rate),
                    Way::Wstap => {
                        captured.push(bytes as f64 / start.elapsed().as_secs_f64() / 1e6);
                        proxied.push(rate);
                    }
                    Way::Baseline => base.push(rate),
                    Way::Floor => floor.push(rate),
                }
            }
        }
        let by_round = floor_shares_by_round(&proxied, &floor);
        let (d, p, mb_s) = (median(direct), median(proxied), median(captured));
        let ratio = p / d;
        let floor_ratio = median(floor) / d;
        let baseline = (!base.is_empty()).then(|| median(base) / d);
        let scheme = if tls { "wss" } else { "ws" };
        let size_name = size_name(size);
        let (result, target_text, met) = match (target, references.disk_mb_s) {
            (Target::Disk(share), Some(disk)) => (
                format!(
                    "ratio {ratio:.2}; payloads captured {mb_s:.0} MB/s = {:.2} of the disk's {disk:.0} MB/s",
                    mb_s / disk
                ),
                format!("captured >= {share} x disk"),
                mb_s >= share * disk,
            ),
            (Target::Disk(_), None) | (Target::Ratio(_), _) => {
                let want = match target {
                    Target::Ratio(r) => r,
                    Target::Disk(_) => 0.5,
                };
                (format!("ratio {ratio:.2}"), format!(">= {want}"), ratio >= want)
            }
        };
        let scenario =
            format!("throughput {scheme} {size_name}, window {THROUGHPUT_WINDOW} (msg/s)");
        let mut rows = vec![Row {
            scenario: scenario.clone(),
            direct: format!("{d:.0}"),
            proxied: format!("{p:.0}"),
            result,
            target: target_text,
            met,
            json: json!({"scenario": "throughput", "scheme": scheme, "size": size,
                         "window": THROUGHPUT_WINDOW, "direct_msgs_per_s": d,
                         "proxied_msgs_per_s": p, "ratio": ratio,
                         "captured_mb_per_s": mb_s, "baseline_ratio": baseline,
                         "floor_ratio": floor_ratio, "floor_shares_by_round": by_round,
                         "rounds": plan.rounds}),
        }];
        if let Some(baseline) = baseline {
            rows.push(against_baseline(
                &scenario,
                ratio,
                baseline,
                Rule::RatioWithin(0.05),
            ));
        }
        Ok(rows)
    }

    async fn latency(&mut self, references: References) -> Result<Vec<Row>, String> {
        let (plain, duration) = (self.bench.plain, self.bench.plan.duration());
        // Per way: p50 samples, p99 samples.
        let mut samples: [(Vec<f64>, Vec<f64>); 4] = Default::default();
        for round in 0..self.bench.plan.rounds {
            for way in self.ways(round, false) {
                let Some(route) = self.route(way, plain, false) else {
                    continue;
                };
                let (a, b) = scenarios::latency(&route, duration).await?;
                let slot = &mut samples[way as usize];
                slot.0.push(a);
                slot.1.push(b);
            }
            self.drain();
        }
        let [(d50, d99), (p50, p99), (b50, b99), _] = samples;
        let baseline = (!b50.is_empty()).then(|| (median(b50), median(b99)));
        // Against the floor relay of the same run when there is one: within 10 µs of its
        // added p50 and 100 µs of its added p99; otherwise the first targets, 30 and 150.
        let (limits, against) = match references.floor {
            Some(Floor { added: (f50, f99) }) => ([f50 + 10.0, f99 + 100.0], Some([f50, f99])),
            None => ([30.0, 150.0], None),
        };
        let quantiles = [
            (
                "p50",
                median(d50),
                median(p50),
                limits[0],
                against.map(|a| a[0]),
                baseline.map(|b| b.0),
            ),
            (
                "p99",
                median(d99),
                median(p99),
                limits[1],
                against.map(|a| a[1]),
                baseline.map(|b| b.1),
            ),
        ];
        let mut rows = Vec::new();
        for (name, d, p, limit, floor, base) in quantiles {
            let added = p - d;
            let target = match floor {
                Some(f) => format!(
                    "<= {limit:.1} µs added (floor +{f:.1} and {:.0})",
                    limit - f
                ),
                None => format!("<= {limit} µs added"),
            };
            let scenario = format!("latency ws 64 B, window 1, {name} (µs)");
            rows.push(Row {
                scenario: scenario.clone(),
                direct: format!("{d:.1}"),
                proxied: format!("{p:.1}"),
                result: format!("added {added:.1} µs"),
                target,
                met: added <= limit,
                json: json!({"scenario": "latency", "quantile": name, "direct_us": d,
                             "proxied_us": p, "added_us": added, "limit_us": limit,
                             "baseline_added_us": base.map(|b| b - d),
                             "rounds": self.bench.plan.rounds}),
            });
            if let Some(base) = base {
                rows.push(against_baseline(
                    &scenario,
                    added,
                    base - d,
                    Rule::AddedWithin(10.0),
                ));
            }
        }
        Ok(rows)
    }

    async fn fan_in(&mut self) -> Result<Vec<Row>, String> {
        let mut rates: [Vec<f64>; 4] = Default::default();
        for round in 0..self.bench.plan.rounds {
            for way in self.ways(round, true) {
                let Some(route) = self.route(way, self.bench.plain, false) else {
                    continue;
                };
                rates[way as usize].push(self.bench.fan_in_rate(&route).await?);
            }
            self.drain();
            let last = |v: &Vec<f64>| v.last().copied().unwrap_or(0.0);
            eprintln!(
                "wstap-bench: fan-in round: direct {:.0} msg/s, proxied {:.0} msg/s, floor {:.0} msg/s",
                last(&rates[Way::Direct as usize]),
                last(&rates[Way::Wstap as usize]),
                last(&rates[Way::Floor as usize])
            );
        }
        let [direct, proxied, base, floor] = rates;
        let by_round = floor_shares_by_round(&proxied, &floor);
        let (d, p) = (median(direct), median(proxied));
        let floor_ratio = median(floor) / d;
        let baseline = (!base.is_empty()).then(|| median(base) / d);
        let connections = self.bench.plan.fan_in_connections;
        let scenario =
            format!("fan-in {connections} connections, window {FAN_IN_WINDOW}, 1 KiB (msg/s)");
        let mut rows = vec![Row {
            scenario: scenario.clone(),
            direct: format!("{d:.0}"),
            proxied: format!("{p:.0}"),
            result: format!("ratio {:.2}", p / d),
            target: ">= 0.5".into(),
            met: p / d >= 0.5,
            json: json!({"scenario": "fan_in", "connections": connections,
                         "direct_msgs_per_s": d, "proxied_msgs_per_s": p, "ratio": p / d,
                         "baseline_ratio": baseline, "floor_ratio": floor_ratio,
                         "floor_shares_by_round": by_round,
                         "rounds": self.bench.plan.rounds}),
        }];
        if let Some(baseline) = baseline {
            rows.push(against_baseline(
                &scenario,
                p / d,
                baseline,
                Rule::RatioWithin(0.05),
            ));
        }
        Ok(rows)
    }
}

/// Opens `count` idle sessions to `server` through `proxy`, then one echo on each;
/// returns the proxy's RSS before and after (KiB) and how many answered.
async fn idle_sessions(
    proxy: &ProxyProcess,
    server: SocketAddr,
    tls: bool,
    count: usize,
) -> Result<(u64, u64, usize), String> {
    let route = Route {
        server,
        proxy: Some(proxy.addr),
        tls: if tls {
            Some(client_tls(&proxy.ca_pem())?)
        } else {
            None
        },
        mode: Mode::Connect,
    };
    // One session first, so the baseline includes the runtime's warm state.
    scenarios::idle(&route, 1, || ()).await?;
    let before = proxy.rss_kib().unwrap_or(0);
    let (after, answered) = scenarios::idle(&route, count, || proxy.rss_kib().unwrap_or(0)).await?;
    Ok((before, after, answered))
}

/// Routes to the echo servers, direct or through the main proxy, with the TLS client
/// configuration each needs.
struct Routes {
    direct_tls: Arc<rustls::ClientConfig>,
    proxied_tls: Arc<rustls::ClientConfig>,
    proxy: SocketAddr,
}

impl Routes {
    fn to(&self, server: SocketAddr, through_proxy: bool, tls: bool) -> Route {
        let config = if through_proxy {
            &self.proxied_tls
        } else {
            &self.direct_tls
        };
        Route {
            server,
            proxy: through_proxy.then_some(self.proxy),
            tls: tls.then(|| Arc::clone(config)),
            mode: Mode::Connect,
        }
    }
}

/// `64 B`, `16 KiB`: a message size as the report names it.
/// The row of `what` (a breakpoint, ten rules) selecting nothing, at `size`: its rate
/// held to the rate with `none` (no breakpoint, no rules).
fn nothing_selected(
    what: &str,
    none: &str,
    name: &str,
    size: usize,
    none_rate: f64,
    rate: f64,
) -> Row {
    let ratio = rate / none_rate;
    Row {
        scenario: format!(
            "{what} matching nothing: throughput ws {}, window {THROUGHPUT_WINDOW} (msg/s)",
            size_name(size)
        ),
        direct: format!("{none_rate:.0} ({none})"),
        proxied: format!("{rate:.0}"),
        result: format!("ratio {ratio:.2} of none"),
        target: ">= 0.95 of none".into(),
        met: ratio >= 0.95,
        json: json!({"scenario": name, "size": size, "window": THROUGHPUT_WINDOW,
                     "none_msgs_per_s": none_rate, "judged_msgs_per_s": rate,
                     "ratio": ratio}),
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn route_to(server: SocketAddr, proxy: Option<SocketAddr>) -> Route {
    Route {
        server,
        proxy,
        tls: None,
        mode: Mode::Connect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_runs_once_a_round_and_each_relay_takes_its_turn_after_direct() {
        let all = [Way::Wstap, Way::Baseline, Way::Floor];
        let mut first = Vec::new();
        for round in 0..3 {
            let order = ways(round, true, true);
            assert_eq!(order[0], Way::Direct, "direct first, round {round}");
            for way in all {
                let runs = order.iter().filter(|w| **w == way).count();
                assert_eq!(runs, 1, "{way:?} once in round {round}");
            }
            first.push(order[1]);
        }
        for way in all {
            assert!(
                first.contains(&way),
                "{way:?} runs right after direct in some round"
            );
        }
        assert_eq!(ways(0, false, false), [Way::Direct, Way::Wstap]);
        assert_eq!(ways(1, false, true), [Way::Direct, Way::Floor, Way::Wstap]);
    }

    #[test]
    fn the_floor_is_read_round_by_round_in_pairs() {
        let shares = floor_shares_by_round(&[50.0, 90.0, 30.0, 40.0], &[100.0, 100.0, 60.0, 0.0]);
        // 0.5, 0.9 and 0.5; a floor that moved nothing pairs with nothing.
        assert_eq!(shares["least"].as_f64(), Some(0.5));
        assert_eq!(shares["most"].as_f64(), Some(0.9));
        assert_eq!(shares["median"].as_f64(), Some(0.5));
        // An even count: the upper of the middle two, as every median of the report.
        let even = floor_shares_by_round(&[50.0, 60.0, 70.0, 80.0], &[100.0; 4]);
        assert_eq!(even["median"].as_f64(), Some(0.7));
        assert!(
            floor_shares_by_round(&[50.0], &[]).is_null(),
            "no floor run"
        );
    }

    fn main_row(json: serde_json::Value) -> Row {
        Row::reference("a row".into(), "-".into(), "-".into(), "-".into(), json)
    }

    #[test]
    fn a_main_row_is_read_against_the_floor_of_its_own_rounds() {
        let rows = [
            // Fan-in at 0.8 of the floor: met, just (its medians'; its rounds, made up
            // apart from them, read 0.88 pair by pair).
            main_row(
                json!({"scenario": "fan_in", "ratio": 0.4, "floor_ratio": 0.5,
                            "baseline_ratio": 0.3,
                            "floor_shares_by_round": floor_shares_by_round(
                                &[60.0, 70.0, 80.0], &[100.0, 80.0, 90.0])}),
            ),
            // ws 64 B at 0.9 of its floor, under its 0.95.
            main_row(json!({"scenario": "throughput", "scheme": "ws", "size": 64,
                            "ratio": 0.45, "floor_ratio": 0.5})),
            // The 1 KiB-captured row: for reference.
            main_row(
                json!({"scenario": "throughput", "scheme": "ws", "size": 16384,
                            "ratio": 0.2, "floor_ratio": 0.4, "max_capture": 1024}),
            ),
            // A row without a floor (latency): none.
            main_row(json!({"scenario": "latency", "ratio": 0.5})),
        ];
        let read = against_floor(&rows);
        assert_eq!(read.len(), 3);
        let share = |row: &Row| row.json["share_of_floor"].as_f64().unwrap();
        assert!((share(&read[0]) - 0.8).abs() < 1e-9);
        assert!(read[0].met);
        assert_eq!(read[0].json["baseline_share"].as_f64(), Some(0.3 / 0.5));
        assert_eq!(
            read[0].result,
            "0.80 of the floor (baseline 0.60); round by round 0.88 (0.60-0.89)"
        );
        assert_eq!(read[1].result, "0.90 of the floor", "no rounds, no pairs");
        assert!((share(&read[1]) - 0.9).abs() < 1e-9);
        assert!(!read[1].met, "0.9 is under ws 64 B's 0.95");
        assert!(read[2].met);
        assert_eq!(read[2].target, "(reference)");
    }
}

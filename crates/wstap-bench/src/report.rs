//! The report: one row per measured figure, printed as a Markdown table and, with
//! `--json`, as one JSON object.

use serde_json::{json, Value};

/// One row of the report.
pub struct Row {
    /// What was measured, with its unit.
    pub scenario: String,
    /// The direct figure (or `-`).
    pub direct: String,
    /// The figure through wstap (or through a reference relay).
    pub proxied: String,
    /// The ratio or difference the target is about.
    pub result: String,
    /// The target, or `(reference)`.
    pub target: String,
    /// Whether the target was met (reference rows always are).
    pub met: bool,
    /// The row's figures for `--json`.
    pub json: Value,
}

impl Row {
    /// A reference row: figures to read the others against, with no target of its own.
    pub fn reference(
        scenario: String,
        direct: String,
        relayed: String,
        result: String,
        json: Value,
    ) -> Row {
        Row {
            scenario,
            direct,
            proxied: relayed,
            result,
            target: "(reference)".into(),
            met: true,
            json,
        }
    }
}

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What the report says about the proxy that ran throughput, latency and fan-in.
pub struct MainProxy {
    /// Payload bytes it captured (into its capture's payload file).
    pub captured_bytes: u64,
    /// Its peak RSS, MiB.
    pub peak_mib: f64,
}

/// The machine: cores, CPU model and, where the kernel shows them, the cpuidle facts that
/// decide what waking a core costs.
pub fn machine() -> String {
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
    match crate::loopback::idle_policy() {
        Some(idle) => format!("{cores} cores, {cpu}, {idle}"),
        None => format!("{cores} cores, {cpu}"),
    }
}

/// Prints the table, the main proxy's footprint (if it ran) and, if asked, the JSON line.
pub fn print(rows: &[Row], quick: bool, json: bool, main_proxy: Option<&MainProxy>) {
    println!(
        "wstap-bench{}: {}",
        if quick { " --quick" } else { "" },
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
    if let Some(main) = main_proxy {
        println!();
        println!(
            "(throughput, latency and fan-in proxy: {:.1} MiB of payloads captured, peak RSS {:.1} MiB)",
            main.captured_bytes as f64 / (1 << 20) as f64,
            main.peak_mib
        );
    }
    if json {
        let doc = json!({
            "machine": machine(),
            "quick": quick,
            "captured_bytes": main_proxy.map_or(0, |m| m.captured_bytes),
            "throughput_proxy_peak_rss_mib": main_proxy.map_or(0.0, |m| m.peak_mib),
            "results": rows.iter().map(|r| {
                let mut v = r.json.clone();
                v["target_met"] = json!(r.met);
                v
            }).collect::<Vec<_>>(),
        });
        println!("{doc}");
    }
}

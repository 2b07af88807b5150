//! `wstap-bench --quick` runs every scenario against the real wstap binary and reports
//! them all. No timing is asserted here (timings belong to the benchmark's own output);
//! what must hold is that every scenario completes, every idle session answers, the big
//! message comes back intact and every reference row is there.

use std::process::Command;

#[test]
fn quick_run_completes_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_wstap-bench"))
        .args(["--quick", "--json"])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_line = stdout.lines().last().expect("a JSON line");
    let doc: serde_json::Value = serde_json::from_str(json_line).expect("the last line is JSON");
    let results = doc["results"].as_array().expect("results");
    let count = |name: &str| results.iter().filter(|r| r["scenario"] == name).count();
    assert_eq!(
        count("throughput"),
        5,
        "ws/wss x 64 B/16 KiB, and 16 KiB at a 1 KiB capture"
    );
    assert_eq!(count("disk"), 1, "the disk's own rate, for the capture row");
    let modes: Vec<(String, u64)> = results
        .iter()
        .filter(|r| r["scenario"] == "mode_throughput")
        .map(|r| {
            (
                r["mode"].as_str().unwrap().to_owned(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("socks5", 64),
        ("reverse", 64),
        ("socks5", 16384),
        ("reverse", 16384),
    ];
    assert_eq!(
        modes,
        expected.map(|(m, s)| (m.to_owned(), s)),
        "SOCKS5 and reverse, each size"
    );
    for row in results
        .iter()
        .filter(|r| r["scenario"] == "mode_throughput")
    {
        assert!(row["proxied_msgs_per_s"].as_f64() > Some(0.0), "{row}");
    }
    for scenario in [
        "capture_build",
        "capture_page",
        "capture_search",
        "capture_count",
    ] {
        assert_eq!(count(scenario), 1, "{scenario}");
    }
    assert_eq!(
        count("capture_page_interleaved"),
        2,
        "one of many sessions, and a sparse one"
    );
    assert_eq!(count("breakpoint_nothing"), 2, "64 B and 16 KiB");
    assert_eq!(count("rules_nothing"), 2, "64 B and 16 KiB");
    assert_eq!(count("rules_rewrite_every"), 2, "64 B and 16 KiB");
    for (scenario, rate) in [
        ("breakpoint_nothing", "judged_msgs_per_s"),
        ("rules_nothing", "judged_msgs_per_s"),
        ("rules_rewrite_every", "rules_msgs_per_s"),
    ] {
        for row in results.iter().filter(|r| r["scenario"] == scenario) {
            assert!(row[rate].as_f64() > Some(0.0), "{row}");
        }
    }
    assert_eq!(count("latency"), 2);
    assert_eq!(count("fan_in"), 1);
    assert_eq!(count("idle"), 2);
    assert_eq!(count("big_message"), 1);
    assert_eq!(count("floor_throughput"), 2);
    assert_eq!(count("floor_latency"), 2);
    assert_eq!(count("floor_fan_in"), 1);
    assert_eq!(
        count("tls_floor_throughput"),
        2,
        "the TLS floor, wss 64 B and 16 KiB"
    );
    for row in results
        .iter()
        .filter(|r| r["scenario"] == "tls_floor_throughput")
    {
        assert!(row["floor_msgs_per_s"].as_f64() > Some(0.0), "{row}");
    }
    let wss_against_floor = results
        .iter()
        .filter(|r| r["scenario"] == "against_floor")
        .filter(|r| r["of"] == "throughput" && r["floor_ratio"].as_f64() > Some(0.0))
        .count();
    assert_eq!(
        wss_against_floor, 5,
        "ws and wss, 64 B and 16 KiB, and 16 KiB at a 1 KiB capture, read against a floor"
    );
    let loopback: Vec<_> = results
        .iter()
        .filter(|r| r["scenario"] == "loopback")
        .collect();
    let paths: Vec<_> = loopback.iter().map(|r| r["path"].clone()).collect();
    assert_eq!(
        paths,
        [
            "direct",
            "direct_one_core_busy",
            "thread_relay",
            "event_loop_relay"
        ],
        "every raw TCP path, in order"
    );
    for row in loopback {
        let (p50, p99) = (
            row["p50_us"].as_f64().unwrap(),
            row["p99_us"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{row}");
    }
    for idle in results.iter().filter(|r| r["scenario"] == "idle") {
        assert_eq!(
            idle["answered"], idle["sessions"],
            "every idle session answers: {idle}"
        );
    }
    for row in results.iter().filter(|r| r["scenario"] == "throughput") {
        assert!(row["proxied_msgs_per_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    for scenario in ["throughput", "latency", "fan_in"] {
        for row in results.iter().filter(|r| r["scenario"] == scenario) {
            assert_eq!(row["rounds"], 1, "--quick runs one round: {row}");
        }
    }
}

#[test]
fn rounds_set_how_many_samples_a_row_takes_its_median_of() {
    let out = Command::new(env!("CARGO_BIN_EXE_wstap-bench"))
        .args(["--quick", "--json", "--only", "fan-in", "--rounds", "3"])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let doc: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON");
    let rows: Vec<_> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["scenario"] == "fan_in")
        .collect();
    assert_eq!(rows.len(), 1);
    for row in rows {
        assert_eq!(row["rounds"], 3, "{row}");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_wstap-bench"))
        .args(["--quick", "--rounds", "0"])
        .output()
        .expect("the bench runs");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--rounds must be in 1..=100"));
}

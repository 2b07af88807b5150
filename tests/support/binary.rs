//! The real `wstap` binary: started with its files in the test run's own home, waited
//! for until it listens, and stopped as a user or a service manager would.

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The binary, with its files (CA, captures) in this test run's own home, never the
/// user's, and no colour.
pub fn wstap_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wstap"));
    command
        .env("NO_COLOR", "1")
        .env("WSTAP_HOME", super::test_home());
    command
}

/// Runs the binary with `args` to its end.
pub fn wstap(args: &[&str]) -> Output {
    wstap_command()
        .args(args)
        .output()
        .expect("the wstap binary runs")
}

/// A loopback address whose port was free a moment ago.
pub fn free_loopback_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// Starts `command` (the binary, with `--listen ADDR` added) and waits until it listens.
pub fn spawn_listening(mut command: Command) -> (Child, SocketAddr) {
    let addr = free_loopback_addr();
    command
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (child, addr);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("wstap did not start");
}

/// Asks `child` to stop, as Ctrl-C or a service manager would.
pub fn sigterm(child: &Child) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// Stops `child` at once, as `kill -9` would.
pub fn sigkill(child: &Child) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

//! The real `wstap` binary: started with its files in the test run's own home, waited
//! for until it listens, and stopped as a user or a service manager would.

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The binary, with its files (CA, captures) in this test run's own home, never the
/// user's, no colour, and its inspector on a free port (tests run side by side).
pub fn wstap_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wstap"));
    command
        .env("NO_COLOR", "1")
        .env("WSTAP_HOME", super::test_home())
        .env("WSTAP_WEB", "127.0.0.1:0");
    command
}

/// Runs the binary with `args` to its end.
pub fn wstap(args: &[&str]) -> Output {
    wstap_command()
        .args(args)
        .output()
        .expect("the wstap binary runs")
}

/// A loopback address whose port was free a moment ago, for a process to listen on.
///
/// It is picked below the kernel's ephemeral range (32768 and up on Linux): a port the
/// kernel handed out for `:0` and took back would soon be handed out again, to any test
/// binding `:0` meanwhile, and the wstap started on it would fail to listen while the
/// test talked to that other server. Ports here are only ever taken on purpose.
pub fn free_loopback_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mixed = (seed ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9)).rotate_left(29);
        let port = 20_000 + (mixed % 12_000) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// Starts `command` (the binary, with `--listen ADDR` added) and waits until it listens.
pub fn spawn_listening(mut command: Command) -> (Child, SocketAddr) {
    let addr = free_loopback_addr();
    command
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    wait_listening(&mut child, addr);
    (child, addr)
}

/// Starts `command` (with `--listen` added) with its console (standard output) read into
/// lines as they come; the process is killed when the test lets go of it.
pub fn spawn_with_console(
    mut command: Command,
) -> (
    KillOnDrop,
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let addr = free_loopback_addr();
    command
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = KillOnDrop(command.spawn().unwrap());
    let console = collect_lines(child.0.stdout.take().expect("stdout is piped"));
    wait_listening(&mut child.0, addr);
    (child, addr, console)
}

/// Waits until `child` accepts connections at `addr` (five seconds at most).
fn wait_listening(child: &mut Child, addr: SocketAddr) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
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

/// A running wstap and its inspector, as the line it printed at start tells.
pub struct WithInspector {
    /// The process.
    pub child: Child,
    /// The proxy's address.
    pub proxy: SocketAddr,
    /// The inspector's address.
    pub web: SocketAddr,
    /// The inspector's token.
    pub token: String,
    /// Everything else it printed to stderr, read as it comes (so the pipe never fills).
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for WithInspector {
    /// A test that fails half-way leaves no wstap behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process that is killed when the test lets go of it, passed or failed. When the
/// test failed, it says whether the child had already ended, how, and what it wrote to a
/// piped stderr: a wstap that died under a test is then no mystery.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let ended_before = self.0.try_wait().ok().flatten();
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            match ended_before {
                Some(status) => eprintln!("the child had ended before the test failed: {status}"),
                None => eprintln!("the child was still running when the test failed"),
            }
            if let Some(mut stderr) = self.0.stderr.take() {
                let mut said = String::new();
                let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
                eprintln!("its stderr:\n{said}");
            }
        }
    }
}

/// Starts `command` (with `--listen` added) and reads its stderr until the inspector's
/// line, `wstap: inspector: http://ADDR/?token=T`.
pub fn spawn_with_inspector(command: Command) -> WithInspector {
    let (mut child, proxy) = spawn_listening(command);
    let stderr = child.stderr.take().expect("stderr is piped");
    let (url, rest) = follow_stderr(stderr);
    let url = url.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("wstap printed no inspector line: {}", rest.lock().unwrap());
    });
    let (web, token) = parse_inspector_url(&url);
    WithInspector {
        child,
        proxy,
        web,
        token,
        stderr: rest,
    }
}

/// Reads `stderr` on a thread: returns the inspector's URL (once it is printed, within
/// 10 s) and the text printed, which keeps growing.
pub fn follow_stderr(
    stderr: std::process::ChildStderr,
) -> (Option<String>, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::BufRead;
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = std::sync::Arc::clone(&text);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("wstap: inspector: ") {
                let _ = tx.send(url.trim().to_owned());
            }
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    (rx.recv_timeout(Duration::from_secs(10)).ok(), text)
}

/// The lines `output` (a child's stdout or stderr) prints, collected as they come on a
/// thread of their own (so the pipe never fills).
pub fn collect_lines(
    output: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::BufRead;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// `http://ADDR/?token=T` as its address and token.
pub fn parse_inspector_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (addr, query) = rest.split_once("/?token=").expect("a token in the URL");
    (addr.parse().expect("an address"), query.to_owned())
}

/// The events of `kind` in the capture at `capture`, in order, as `wstap export` gives
/// them (payloads unredacted).
pub fn exported_events(capture: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    let out = wstap(&[
        "export",
        capture.to_str().unwrap(),
        "--format",
        "ndjson",
        "--no-redact",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["type"] == kind)
        .collect()
}

/// Runs a peer script (`program args`), which must succeed, and reads the JSON line it
/// prints last; proxies from the environment are left out.
pub fn peer_json(program: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(program)
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON")
}

/// A capture's JSON export (nothing redacted), with `extra` arguments (a filter, say).
pub fn export_json(capture: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "export",
        capture.to_str().expect("a UTF-8 path"),
        "--format",
        "json",
        "--no-redact",
    ];
    args.extend_from_slice(extra);
    let out = wstap(&args);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

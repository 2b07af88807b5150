//! The real `wstap` binary as a subprocess, run as a user would run it: quiet console,
//! recording a capture, its own CA, trusting the benchmark's upstream CA.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What a benchmarked `wstap` records: a capture (wstap's default), keeping this many
/// payload bytes per frame and message (`None`: wstap's default, 64 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// A capture.
    Capture(Option<usize>),
}

/// A running `wstap`.
pub struct ProxyProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its CA directory.
    pub ca_dir: PathBuf,
    /// Its capture folder.
    pub recorded: PathBuf,
    /// Its inspector's address and token, when it serves one (`--web`).
    pub inspector: Option<(SocketAddr, String)>,
    recording: Option<Recording>,
}

/// Finds the `wstap` binary: `--wstap PATH`, else next to this executable (building it
/// with cargo, in the same profile, when it is not there yet).
pub fn locate_wstap(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or("no executable directory")?;
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join("wstap");
    if candidate.exists() {
        return Ok(candidate);
    }
    let release = dir.ends_with("release");
    eprintln!(
        "wstap-bench: building the wstap binary ({})",
        if release { "release" } else { "debug" }
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "wstap", "--bin", "wstap"]);
    if release {
        build.arg("--release");
    }
    build.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() || !candidate.exists() {
        return Err(format!("could not build {}", candidate.display()));
    }
    Ok(candidate)
}

/// Reads a wstap's stderr until its `wstap: inspector: http://ADDR/?token=T` line (within
/// 10 s), then goes on reading it (so the pipe never fills), and returns ADDR and T.
pub fn inspector_of(stderr: std::process::ChildStderr) -> Result<(SocketAddr, String), String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("wstap: inspector: http://") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .map_err(|_| "wstap printed no inspector address".to_owned())?;
    let (addr, token) = url
        .split_once("/?token=")
        .ok_or_else(|| format!("not an inspector address: {url}"))?;
    let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    Ok((addr, token.to_owned()))
}

/// The lowest port [`free_port`] hands out.
const FIRST_LISTEN_PORT: u32 = 10_000;

/// How far [`free_port`] has gone through its ports, from a start of this process's own;
/// 0 until the first call.
static PORTS_TRIED: AtomicU32 = AtomicU32::new(0);

/// A loopback port that was free a moment ago, for a listener the benchmark starts in
/// another process. Not one the kernel hands out for outgoing connections: one of those
/// (the fan-in's hundred clients, a relay's upstream legs) could take it between this
/// check and the listener's bind, and a full run then stopped with "Address already in
/// use". Never the same port twice in one run, so two listeners asked for in a row do
/// not get the same one either; on a machine that leaves under 1,000 ports below its
/// outgoing range, the kernel chooses, as before, and neither holds.
fn free_port() -> Result<u16, String> {
    let outgoing_from = outgoing_ports_from();
    let count = outgoing_from.saturating_sub(FIRST_LISTEN_PORT);
    if count < 1_000 {
        // A machine that hands out nearly every port for outgoing connections: let the
        // kernel choose, as before.
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        return Ok(listener.local_addr().map_err(|e| e.to_string())?.port());
    }
    // Start where this process's id says, so two benchmarks side by side rarely meet.
    let _ = PORTS_TRIED.compare_exchange(
        0,
        std::process::id().wrapping_mul(7_919) % count + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..count {
        let tried = PORTS_TRIED.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST_LISTEN_PORT + tried % count).map_err(|e| e.to_string())?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!(
        "no free port from {FIRST_LISTEN_PORT} to {}",
        outgoing_from - 1
    ))
}

/// The first port the kernel hands out for outgoing connections (Linux's default when
/// it does not say).
fn outgoing_ports_from() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback address whose port was free a moment ago, for a listener of wstap's.
pub fn free_addr() -> Result<SocketAddr, String> {
    Ok(([127, 0, 0, 1], free_port()?).into())
}

impl ProxyProcess {
    /// Starts `wstap` with its files in `dir`.
    pub fn start(
        wstap: &Path,
        recording: Recording,
        extra: &[String],
        dir: &Path,
        upstream_ca: &Path,
    ) -> Result<ProxyProcess, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let ca_dir = dir.join("ca");
        let mut command = Command::new(wstap);
        command
            .arg("-q")
            .args(["--listen", &addr.to_string()])
            .arg("--ca-dir")
            .arg(&ca_dir)
            .arg("--upstream-ca")
            .arg(upstream_ca)
            .stdout(Stdio::null());
        let Recording::Capture(max_capture) = recording;
        let recorded = dir.join("capture");
        // `--wstap-arg --no-capture` (for profiling) replaces the capture.
        if !extra.iter().any(|a| a == "--no-capture") {
            command.arg("--capture").arg(&recorded);
        }
        // No inspector unless a scenario asks for one (`--web`), so none competes for its
        // default port or for the machine's cores.
        let web = extra
            .iter()
            .any(|a| a == "--web" || a.starts_with("--web="));
        if web {
            command.stderr(Stdio::piped());
        } else {
            command.arg("--no-web");
        }
        command
            .args(max_capture.map(|n| format!("--max-capture={n}")))
            .args(extra);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", wstap.display()))?;
        let inspector = match child.stderr.take() {
            Some(stderr) if web => Some(inspector_of(stderr)?),
            _ => None,
        };
        let mut proxy = ProxyProcess {
            child,
            addr,
            ca_dir,
            recorded,
            inspector,
            recording: Some(recording),
        };
        proxy.wait_listening()?;
        Ok(proxy)
    }

    /// Empties the capture's payload files (`payloads.bin` of older binaries, the
    /// segments `payloads-NNNNNN.bin` since) and returns how many bytes were written to
    /// them since the last drain. The proxy goes on appending at the file's new end (it
    /// opened it to append), so it does all its usual work, but a long run neither fills
    /// the disk nor gets the writer throttled on dirty pages. Nothing reads the emptied
    /// bytes: the benchmark never reads these payloads back. (A segment the proxy drops to
    /// stay within its bound between two drains takes what it got since the last one
    /// with it: at most a segment's worth, uncounted.)
    pub fn drain(&self) -> u64 {
        if self.recording.is_none() {
            return 0;
        }
        let Ok(entries) = std::fs::read_dir(&self.recorded) else {
            return 0;
        };
        let mut written = 0;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("payloads") && name.ends_with(".bin")) {
                continue;
            }
            written += entry.metadata().map_or(0, |m| m.len());
            if let Ok(handle) = std::fs::OpenOptions::new().write(true).open(entry.path()) {
                let _ = handle.set_len(0);
            }
        }
        written
    }

    /// Starts the floor relay: this benchmark's own binary in `--floor-relay` mode; the
    /// TLS floor with the benchmark's PKI in `tls` when given.
    pub fn start_floor(dir: &Path, tls: Option<&Path>) -> Result<ProxyProcess, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(["--floor-relay", &addr.to_string()])
            .args(
                tls.map(|dir| ["--tls".as_ref(), dir.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the floor relay: {e}"))?;
        let mut relay = ProxyProcess {
            child,
            addr,
            ca_dir: dir.join("ca"),
            recorded: dir.join("none"),
            inspector: None,
            recording: None,
        };
        relay.wait_listening()?;
        Ok(relay)
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(self.addr).is_err() {
            if Instant::now() > deadline {
                return Err("the process did not start listening within 15 s".into());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the process exited at start: {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The CA certificate the proxy signs with.
    pub fn ca_pem(&self) -> PathBuf {
        self.ca_dir.join("wstap-ca.pem")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory so far, KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Stops the proxy (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("wstap did not stop on SIGTERM within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Raises this process's open-file limit toward `want` (children inherit it) and
/// returns what it is now.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let raised = libc::rlimit {
            rlim_cur: want.max(limit.rlim_cur),
            rlim_max: want.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Not allowed to raise the hard limit: go as far as it lets us.
            let soft = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_ports_are_free_never_twice_and_not_the_outgoing_connections() {
        let outgoing_from = outgoing_ports_from();
        let ports: Vec<u16> = (0..3).map(|_| free_port().unwrap()).collect();
        for (i, port) in ports.iter().enumerate() {
            if outgoing_from >= FIRST_LISTEN_PORT + 1_000 {
                assert!(
                    !ports[..i].contains(port),
                    "{port} handed out twice: {ports:?}"
                );
                assert!(
                    (FIRST_LISTEN_PORT..outgoing_from).contains(&u32::from(*port)),
                    "{port} is not below the outgoing ports from {outgoing_from}"
                );
            }
            TcpListener::bind(("127.0.0.1", *port)).expect("a port handed out is free");
        }
    }
}

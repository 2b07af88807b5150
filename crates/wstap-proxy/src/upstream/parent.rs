//! Chaining to a parent HTTP proxy (`--upstream-proxy`): every upstream connection, for a
//! tunnel or for an absolute-form request, is a `CONNECT` through the parent, with Basic
//! credentials when given, except for the hosts the bypass list names (`NO_PROXY`).
//!
//! Only the TCP connection changes: what wstap sends and reads over it is what it would
//! send and read over a direct connection, byte for byte.

use crate::error::UpstreamError;
use crate::target::Target;
use base64::Engine;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wstap_trace::ParentHop;

/// The longest answer head a parent may send to `CONNECT`.
const MAX_ANSWER: usize = 16 * 1024;

/// A parent proxy and the hosts that go around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProxy {
    host: String,
    port: u16,
    credentials: Option<String>,
    bypass: Vec<String>,
}

impl ParentProxy {
    /// Parses `http://[user:pass@]host:port` (the port defaults to 80); `bypass` is a
    /// `NO_PROXY`-style list: `*`, host names (matching their subdomains too, with or
    /// without a leading dot) and IP literals, comma- or space-separated.
    pub fn parse(url: &str, bypass: &str) -> Result<ParentProxy, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: the upstream proxy must be an http:// URL"))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(format!("{url:?}: an upstream proxy URL has no path"));
        }
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) if user.contains(':') => (Some(user.to_owned()), hostport),
            Some(_) => return Err(format!("{url:?}: credentials must be user:password")),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("{url:?}: {port:?} is not a port"))?;
                (host, port)
            }
            _ => (hostport, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let bypass = bypass
            .split([',', ' '])
            .map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase())
            .map(|entry| {
                let host = strip_port(&entry);
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            })
            .filter(|entry| !entry.is_empty())
            .collect();
        Ok(ParentProxy {
            host: host.to_owned(),
            port,
            credentials,
            bypass,
        })
    }

    /// The parent's address, as `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether connections to `host` go direct.
    pub fn bypasses(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.bypass.iter().any(|entry| {
            entry == "*"
                || *entry == host
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }

    /// A tunnel to `host:port` through the parent, for wstap's own tools (`wstap
    /// replay`), within `timeout`; why not, on one line.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<TcpStream, String> {
        let target = Target {
            host: host.to_owned(),
            port,
        };
        match self.tunnel(&target, timeout).await {
            Ok((stream, _)) => Ok(stream),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A TCP connection to `target` through the parent, and the parent's answer:
    /// connected within `timeout`, and the parent's `2xx` answer to `CONNECT` read within
    /// `timeout` too.
    pub(crate) async fn tunnel(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<(TcpStream, ParentHop), UpstreamError> {
        let started = Instant::now();
        let parent = self.address();
        let unreachable = |reason: String| UpstreamError::ParentUnreachable {
            parent: parent.clone(),
            reason,
        };
        let attempt = TcpStream::connect((self.host.as_str(), self.port));
        let mut stream = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| unreachable(format!("connecting timed out after {timeout:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(credentials) = &self.credentials {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
        }
        request.push_str("\r\n");
        let answer = async {
            stream.write_all(request.as_bytes()).await?;
            read_head(&mut stream).await
        };
        let head = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| unreachable(format!("no answer to CONNECT within {timeout:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let status_line = head.lines().next().unwrap_or("").to_owned();
        let code = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(200..=299) if status_line.starts_with("HTTP/1.") => {
                let hop = ParentHop {
                    proxy: parent,
                    status_line,
                    connect_us: started.elapsed().as_micros() as u64,
                };
                Ok((stream, hop))
            }
            _ => {
                let because = tokio::time::timeout(timeout, read_reason(&mut stream, &head))
                    .await
                    .ok()
                    .flatten();
                Err(UpstreamError::ParentRefused {
                    parent,
                    target: target.clone(),
                    status_line,
                    because,
                })
            }
        }
    }
}

/// `host:port` without the port (IPv6 in brackets keeps its colons).
fn strip_port(entry: &str) -> &str {
    match entry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.contains(':') => {
            host
        }
        Some((host, port)) if host.ends_with(']') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => entry,
    }
}

/// The first line of a refusal's body (at most 1 KiB of it, as `Content-Length` says),
/// when it has one: a parent that is a wstap says there why.
async fn read_reason(stream: &mut TcpStream, head: &str) -> Option<String> {
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    })?;
    let mut body = vec![0u8; length.min(1024)];
    stream.read_exact(&mut body).await.ok()?;
    let text = String::from_utf8_lossy(&body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.to_owned())
}

/// Reads a response head a byte at a time, so nothing after it is taken from the tunnel.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER {
            return Err(std::io::Error::other("its answer head is too long"));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other(if head.is_empty() {
                "it closed the connection without answering".to_owned()
            } else {
                format!(
                    "it closed the connection mid-answer: {:?}",
                    String::from_utf8_lossy(&head)
                )
            }));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_credentials() {
        let p = ParentProxy::parse("http://u:p@corp.example:3128", "").unwrap();
        assert_eq!(p.address(), "corp.example:3128");
        assert_eq!(p.credentials.as_deref(), Some("u:p"));
        assert_eq!(
            ParentProxy::parse("http://[::1]:8080/", "")
                .unwrap()
                .address(),
            "[::1]:8080"
        );
        assert_eq!(
            ParentProxy::parse("http://proxy", "").unwrap().address(),
            "proxy:80"
        );
        for bad in [
            "https://p:1",
            "p:1",
            "http://p:0",
            "http://p:x",
            "http://user@p:1",
            "http://p:1/path",
            "http://",
        ] {
            assert!(ParentProxy::parse(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bypass_list_matches_hosts_their_subdomains_and_ips() {
        let p =
            ParentProxy::parse("http://p:1", "example.com, .internal,10.0.0.1:443 [::1]").unwrap();
        for direct in [
            "example.com",
            "api.example.com",
            "a.b.internal",
            "10.0.0.1",
            "::1",
            "EXAMPLE.COM",
        ] {
            assert!(p.bypasses(direct), "{direct}");
        }
        for via in ["notexample.com", "example.org", "internal.net", "10.0.0.2"] {
            assert!(!p.bypasses(via), "{via}");
        }
        assert!(ParentProxy::parse("http://p:1", "*")
            .unwrap()
            .bypasses("anything"));
        assert!(!ParentProxy::parse("http://p:1", "")
            .unwrap()
            .bypasses("anything"));
    }
}

//! Where requests go, as written: `host:port` targets (CONNECT, SOCKS5) and absolute-form
//! URLs, parsed and checked. It depends on nothing else in the engine, so every room that
//! names a target (dialing, errors, heads, the stages) can use it without a circle.

use std::fmt;

/// An upstream `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port` or `[v6]:port` as a CONNECT target; the port is required.
pub(crate) fn parse_authority(authority: &str) -> Result<Target, String> {
    if authority.contains("://") || authority.starts_with('/') {
        return Err(format!(
            "CONNECT needs host:port, not a URI ({authority:?})"
        ));
    }
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| format!("CONNECT target {authority:?} has no port"))?;
    let port = parse_port(port, authority)?;
    Ok(Target { host, port })
}

fn split_host_port(authority: &str) -> Option<(String, &str)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        Some((host.to_owned(), port))
    } else {
        let (host, port) = authority.rsplit_once(':')?;
        (!host.contains(':')).then(|| (host.to_owned(), port))
    }
}

fn parse_port(port: &str, whole: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port in {whole:?}")),
        Ok(p) => Ok(p),
    }
}

/// An absolute-form request target split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AbsoluteUrl {
    /// `http`, `ws`, `https` or `wss`, lower-cased.
    pub scheme: String,
    /// Host and port (the scheme's default when absent).
    pub target: Target,
    /// The origin-form target to send upstream: path and query, at least `/`.
    pub path_and_query: String,
}

impl AbsoluteUrl {
    /// Whether the scheme needs TLS to the upstream.
    pub fn is_tls(&self) -> bool {
        matches!(self.scheme.as_str(), "https" | "wss")
    }
}

/// Parses an absolute-form request target (`http://host:port/path?query`).
pub(crate) fn parse_absolute(url: &str) -> Result<AbsoluteUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        other => return Err(format!("unsupported scheme {other:?}")),
    };
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_start);
    // Credentials in the URL are not for the upstream's authority.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let target = match split_host_port(authority) {
        Some((host, port)) => Target {
            host,
            port: parse_port(port, authority)?,
        },
        None => Target {
            host: bare_host(authority)
                .ok_or_else(|| format!("{url:?}: an IPv6 host goes in brackets, closed: [::1]"))?,
            port: default_port,
        },
    };
    let path_and_query = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(AbsoluteUrl {
        scheme,
        target,
        path_and_query,
    })
}

/// The host of an authority without a port: `[v6]` unbracketed, a name or IPv4 as it
/// is; `None` for a bracket left open or an IPv6 address without brackets.
fn bare_host(authority: &str) -> Option<String> {
    match authority.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').map(str::to_owned),
        None => (!authority.contains(':')).then(|| authority.to_owned()),
    }
}

/// The URL scheme for a request: `ws`/`wss` for a WebSocket handshake, else `http`/`https`.
pub(crate) fn scheme(websocket: bool, tls: bool) -> &'static str {
    match (websocket, tls) {
        (true, false) => "ws",
        (true, true) => "wss",
        (false, false) => "http",
        (false, true) => "https",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets() {
        assert_eq!(
            parse_authority("example.com:443").unwrap().to_string(),
            "example.com:443"
        );
        assert_eq!(parse_authority("[::1]:8080").unwrap().host, "::1");
        assert!(parse_authority("example.com").is_err());
        assert!(parse_authority("example.com:99999").is_err());
        assert!(parse_authority("example.com:0").is_err());
        assert!(parse_authority("http://example.com:80/").is_err());
    }

    #[test]
    fn absolute_urls() {
        let u = parse_absolute("ws://h/chat?x=1").unwrap();
        assert_eq!(
            (u.target.to_string(), u.path_and_query.as_str()),
            ("h:80".into(), "/chat?x=1")
        );
        let u = parse_absolute("HTTP://user:pw@[::1]:81").unwrap();
        assert_eq!(
            (u.target.to_string(), u.path_and_query.as_str()),
            ("[::1]:81".into(), "/")
        );
        assert!(parse_absolute("wss://h").unwrap().is_tls());
        assert!(parse_absolute("ftp://h/").is_err());
        assert_eq!(
            parse_absolute("ws://[::1]/").unwrap().target.to_string(),
            "[::1]:80"
        );
        for unclosed in ["http://[::1/", "http://::1/", "http://[::1"] {
            let error = parse_absolute(unclosed).unwrap_err();
            assert!(error.contains("in brackets"), "{unclosed}: {error}");
        }
        assert!(parse_absolute("/relative").is_err());
    }
}

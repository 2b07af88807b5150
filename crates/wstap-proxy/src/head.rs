//! HTTP/1.x message heads read off the wire, kept exactly as sent.
//!
//! The proxy reads request and response heads itself (with `httparse`) rather than
//! through hyper's server, because the trace must record header names in the case and
//! order the peer used, and hyper does not expose that. A [`Head`] keeps the raw bytes
//! next to the parsed fields; forwarding writes those raw header lines unchanged, except
//! for the request target of absolute-form requests and the hop-by-hop and `Proxy-*`
//! lines a forward proxy must drop ([`Request::rewrite`]). A request and a response are
//! different types ([`Request`], [`Response`]) that share what heads have in common.
//!
//! Limits protect the proxy: a request line over [`MAX_REQUEST_LINE`] is refused with 414,
//! a head over [`MAX_HEAD`] or with more than [`MAX_HEADERS`] headers with 431.

use crate::io::Incoming;
use bytes::BytesMut;
use std::time::Duration;
use wstap_trace::{RequestHead, ResponseHead};

/// The longest request line accepted.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers accepted.
pub const MAX_HEADERS: usize = 256;

/// Why a head could not be read; each maps to a status the proxy answers with.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// "request" or "response".
        what: &'static str,
        /// httparse's reason.
        detail: String,
    },
    /// The request line is longer than [`MAX_REQUEST_LINE`].
    #[error("request line longer than {MAX_REQUEST_LINE} bytes")]
    RequestLineTooLong,
    /// The head is longer than [`MAX_HEAD`] or has too many headers.
    #[error("header section larger than {MAX_HEAD} bytes or {MAX_HEADERS} headers")]
    TooLarge,
    /// The peer closed in the middle of a head.
    #[error("connection closed after {0} bytes of an incomplete head")]
    Truncated(usize),
    /// Nothing complete arrived in time.
    #[error("no complete head within {0:?}")]
    Timeout(Duration),
    /// Reading failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

impl HeadError {
    /// The status code the proxy answers a bad request head with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Malformed { .. } | HeadError::Truncated(_) | HeadError::Io(_) => 400,
            HeadError::RequestLineTooLong => 414,
            HeadError::TooLarge => 431,
            HeadError::Timeout(_) => 408,
        }
    }
}

/// A parsed head with its raw bytes: a [`Request`] or a [`Response`], told apart by
/// their first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<L> {
    /// The request line or the status line.
    pub line: L,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// Headers in wire order and case (values decoded lossily when not UTF-8).
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, through the empty line.
    pub raw: BytesMut,
}

/// A request's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// The method.
    pub method: String,
    /// The request target, as sent.
    pub target: String,
}

/// A response's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
}

/// A request head.
pub type Request = Head<RequestLine>;
/// A response head.
pub type Response = Head<StatusLine>;

impl Request {
    /// The method.
    pub fn method(&self) -> &str {
        &self.line.method
    }

    /// The request target, as sent.
    pub fn target(&self) -> &str {
        &self.line.target
    }

    /// The head in event form.
    pub fn request_head(&self) -> RequestHead {
        RequestHead {
            method: self.line.method.clone(),
            target: self.line.target.clone(),
            version: self.version(),
            headers: self.headers.clone(),
        }
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.line.status
    }

    /// The head in event form.
    pub fn response_head(&self) -> ResponseHead {
        ResponseHead {
            status: self.line.status,
            reason: self.line.reason.clone(),
            version: self.version(),
            headers: self.headers.clone(),
        }
    }
}

impl<L> Head<L> {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub fn version(&self) -> String {
        format!("HTTP/1.{}", self.minor_version)
    }

    /// Whether the peer asked for the connection to close after this message (HTTP/1.0
    /// without keep-alive counts too). `also` names another header to look in
    /// (`Proxy-Connection`, which clients of a proxy still send).
    pub fn wants_close(&self, also: Option<&str>) -> bool {
        self.has_token("connection", "close")
            || also.is_some_and(|name| self.has_token(name, "close"))
            || (self.minor_version == 0 && !self.has_token("connection", "keep-alive"))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header lists `token` (comma lists, case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

impl Request {
    /// The head for forwarding: the request line with `target` in place of the original
    /// (when given), and every header line for which `drop` is false, byte for byte.
    /// Returns the bytes and the names of the headers dropped.
    pub fn rewrite(
        &self,
        target: Option<&str>,
        drop: impl Fn(&str) -> bool,
    ) -> (Vec<u8>, Vec<String>) {
        let edited = self.edit(target, |name, _| match drop(name) {
            true => LineEdit::Drop,
            false => LineEdit::Keep,
        });
        (edited.bytes, edited.removed)
    }

    /// The head for forwarding with each header line kept, dropped or given a new value
    /// as `edit` says (it sees the name and the value); the request line gets `target`
    /// when given. Lines kept are copied byte for byte; a new value keeps the line's name
    /// as sent and ends with CRLF.
    pub(crate) fn edit(
        &self,
        target: Option<&str>,
        edit: impl Fn(&str, &str) -> LineEdit,
    ) -> EditedHead {
        let mut edited = EditedHead {
            bytes: Vec::with_capacity(self.raw.len() + 64),
            removed: Vec::new(),
            replaced: Vec::new(),
        };
        let out = &mut edited.bytes;
        let mut lines = split_lines(&self.raw);
        let Some(first) = lines.next() else {
            out.extend_from_slice(&self.raw);
            return edited;
        };
        match target {
            Some(target) => {
                out.extend_from_slice(self.line.method.as_bytes());
                out.push(b' ');
                out.extend_from_slice(target.as_bytes());
                out.extend_from_slice(format!(" HTTP/1.{}\r\n", self.minor_version).as_bytes());
            }
            None => out.extend_from_slice(first),
        }
        for line in lines {
            let name_end = line.iter().position(|&b| b == b':').unwrap_or(0);
            if name_end == 0 {
                out.extend_from_slice(line);
                continue;
            }
            let name = String::from_utf8_lossy(&line[..name_end]);
            let value = String::from_utf8_lossy(&line[name_end + 1..]);
            match edit(&name, value.trim()) {
                LineEdit::Keep => out.extend_from_slice(line),
                LineEdit::Drop => edited.removed.push(name.into_owned()),
                LineEdit::Replace(new) => {
                    out.extend_from_slice(&line[..name_end]);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(new.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    let old = value.trim().to_owned();
                    edited.replaced.push((name.into_owned(), old, new));
                }
            }
        }
        edited
    }
}

/// What [`Request::edit`] does with one header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineEdit {
    /// Forward it as it came.
    Keep,
    /// Leave it out.
    Drop,
    /// Forward it with this value instead.
    Replace(String),
}

/// A head edited for forwarding, and what was changed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EditedHead {
    /// The bytes to send.
    pub bytes: Vec<u8>,
    /// Names of the header lines left out.
    pub removed: Vec<String>,
    /// Header lines given a new value: name, old value, new value.
    pub replaced: Vec<(String, String, String)>,
}

/// Splits a raw head into its lines, each with its own line ending.
fn split_lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split_inclusive(|&b| b == b'\n')
}

fn collect_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Parses a request head from the start of `bytes`, without I/O (for fuzzing and tools):
/// `Ok(None)` when more bytes are needed. The same code the proxy runs on every request.
pub fn parse_request(bytes: &[u8]) -> Result<Option<Request>, HeadError> {
    try_parse_request(&mut BytesMut::from(bytes))
}

/// Takes a request head off the front of `buf`, without I/O, leaving what follows it:
/// `Ok(None)` when more bytes are needed. The parser the proxy runs on every request, for
/// wstap's own servers (`wstap mock`).
pub fn take_request(buf: &mut BytesMut) -> Result<Option<Request>, HeadError> {
    try_parse_request(buf)
}

/// Takes a response head off the front of `buf`, as [`take_request`] does a request's,
/// for wstap's own clients (`wstap replay`).
pub fn take_response(buf: &mut BytesMut) -> Result<Option<Response>, HeadError> {
    try_parse_response(buf)
}

/// Reads a request head from `incoming`. `Ok(None)`: the peer closed cleanly before
/// sending anything.
pub async fn read_request(
    incoming: &mut Incoming,
    timeout: Duration,
) -> Result<Option<Request>, HeadError> {
    read_head(incoming, timeout, try_parse_request).await
}

/// Reads a response head from `incoming`. `Ok(None)`: the peer closed before answering.
pub async fn read_response(
    incoming: &mut Incoming,
    timeout: Duration,
) -> Result<Option<Response>, HeadError> {
    read_head(incoming, timeout, try_parse_response).await
}

async fn read_head<L>(
    incoming: &mut Incoming,
    timeout: Duration,
    try_parse: fn(&mut BytesMut) -> Result<Option<Head<L>>, HeadError>,
) -> Result<Option<Head<L>>, HeadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(head) = try_parse(&mut incoming.buf)? {
            return Ok(Some(head));
        }
        let read = tokio::time::timeout_at(deadline, incoming.fill())
            .await
            .map_err(|_| HeadError::Timeout(timeout))??;
        if read == 0 {
            return match incoming.buf.len() {
                0 => Ok(None),
                n => Err(HeadError::Truncated(n)),
            };
        }
    }
}

/// What httparse's `what` error means for the proxy.
fn malformed(what: &'static str) -> impl Fn(httparse::Error) -> HeadError {
    move |e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooLarge,
        e => HeadError::Malformed {
            what,
            detail: e.to_string(),
        },
    }
}

fn try_parse_request(buf: &mut BytesMut) -> Result<Option<Request>, HeadError> {
    // Tolerate the blank lines RFC 9112 section 2.2 lets a server skip before a request.
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let _ = buf.split_to(blank);
    let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    if line_len > MAX_REQUEST_LINE {
        return Err(HeadError::RequestLineTooLong);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = match req.parse(buf).map_err(malformed("request"))? {
        httparse::Status::Partial => None,
        httparse::Status::Complete(len) => Some((
            len,
            Head {
                // A complete parse always has all three.
                line: RequestLine {
                    method: req.method.unwrap_or_default().to_owned(),
                    target: req.path.unwrap_or_default().to_owned(),
                },
                minor_version: req.version.unwrap_or(1),
                headers: collect_headers(req.headers),
                raw: BytesMut::new(),
            },
        )),
    };
    complete(buf, parsed)
}

fn try_parse_response(buf: &mut BytesMut) -> Result<Option<Response>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let parsed = match res.parse(buf).map_err(malformed("response"))? {
        httparse::Status::Partial => None,
        httparse::Status::Complete(len) => Some((
            len,
            Head {
                // A complete parse always has all three.
                line: StatusLine {
                    status: res.code.unwrap_or_default(),
                    reason: res.reason.unwrap_or_default().to_owned(),
                },
                minor_version: res.version.unwrap_or(1),
                headers: collect_headers(res.headers),
                raw: BytesMut::new(),
            },
        )),
    };
    complete(buf, parsed)
}

/// Takes a head of `len` bytes off `buf` when one was parsed, within the size limit.
fn complete<L>(
    buf: &mut BytesMut,
    parsed: Option<(usize, Head<L>)>,
) -> Result<Option<Head<L>>, HeadError> {
    match parsed {
        Some((len, _)) if len > MAX_HEAD => Err(HeadError::TooLarge),
        Some((len, mut head)) => {
            head.raw = buf.split_to(len);
            Ok(Some(head))
        }
        None if buf.len() > MAX_HEAD => Err(HeadError::TooLarge),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_case_order_and_raw_bytes() {
        let raw = b"GET ws://h:1/p HTTP/1.1\r\nHost: h:1\r\nsec-websocket-KEY: k\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        let head = parse_request(raw).unwrap().unwrap();
        let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "sec-websocket-KEY", "X-A", "x-a"]);
        assert_eq!(&head.raw[..], raw);
    }

    #[test]
    fn rewrite_changes_only_the_target_and_dropped_lines() {
        let raw = b"GET http://h/p?q HTTP/1.1\r\nHost: h\r\nProxy-Connection: keep-alive\r\nX-Odd:  spaced \r\n\r\n";
        let head = parse_request(raw).unwrap().unwrap();
        let (out, removed) = head.rewrite(Some("/p?q"), |n| {
            n.to_ascii_lowercase().starts_with("proxy-")
        });
        assert_eq!(
            out,
            b"GET /p?q HTTP/1.1\r\nHost: h\r\nX-Odd:  spaced \r\n\r\n"
        );
        assert_eq!(removed, ["Proxy-Connection"]);
    }

    #[test]
    fn limits_map_to_statuses() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(parse_request(long.as_bytes()).unwrap_err().status(), 414);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_request(big.as_bytes()).unwrap_err().status(), 431);
        assert_eq!(
            parse_request(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
    }
}

//! HTTP/1.1 message bodies: how long they are (RFC 9112 section 6) and relaying them.
//!
//! The proxy never decodes a body; it finds where it ends and copies its bytes, chunk
//! framing and trailers included, exactly as they came. A request carrying both
//! `Content-Length` and `Transfer-Encoding`, or a transfer coding that is not chunked, is
//! refused, since proxies disagreeing on such framing is how requests get smuggled.

use crate::head::{Head, Request, Response};
use crate::io::{BoxWrite, Incoming};
use std::io;
use tokio::io::AsyncWriteExt;

/// Where a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: up to the zero-size chunk and the trailers.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

/// The body framing of a request, or why it is unacceptable.
pub fn request_body(head: &Request) -> Result<BodyKind, String> {
    let te = transfer_encoding(head);
    let cl = content_length(head)?;
    match (te, cl) {
        (Some(_), Some(_)) => Err("both Content-Length and Transfer-Encoding".into()),
        (Some(true), None) => Ok(BodyKind::Chunked),
        (Some(false), None) => Err("a Transfer-Encoding whose last coding is not chunked".into()),
        (None, Some(0)) | (None, None) => Ok(BodyKind::Empty),
        (None, Some(n)) => Ok(BodyKind::Length(n)),
    }
}

/// The body framing of a response to a `method` request.
pub fn response_body(head: &Response, method: &str) -> BodyKind {
    if method.eq_ignore_ascii_case("HEAD")
        || head.status() < 200
        || head.status() == 204
        || head.status() == 304
    {
        return BodyKind::Empty;
    }
    match (transfer_encoding(head), content_length(head)) {
        (Some(true), _) => BodyKind::Chunked,
        (Some(false), _) | (None, Err(_)) | (None, Ok(None)) => BodyKind::UntilClose,
        (None, Ok(Some(0))) => BodyKind::Empty,
        (None, Ok(Some(n))) => BodyKind::Length(n),
    }
}

/// `Some(true)` when the last transfer coding is chunked, `Some(false)` for another one.
fn transfer_encoding<L>(head: &Head<L>) -> Option<bool> {
    let codings: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    codings
        .last()
        .map(|last| last.eq_ignore_ascii_case("chunked"))
}

fn content_length<L>(head: &Head<L>) -> Result<Option<u64>, String> {
    let mut found: Option<u64> = None;
    for (_, value) in head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in value.split(',') {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| format!("invalid Content-Length {value:?}"))?;
            if found.is_some_and(|f| f != n) {
                return Err("conflicting Content-Length values".into());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Copies a body of `kind` from `src` to `dst`, returning the bytes copied.
pub async fn relay(src: &mut Incoming, dst: &mut BoxWrite, kind: BodyKind) -> io::Result<u64> {
    let copied = match kind {
        BodyKind::Empty => 0,
        BodyKind::Length(n) => copy_exact(src, dst, n).await?,
        BodyKind::UntilClose => copy_to_end(src, dst).await?,
        BodyKind::Chunked => copy_chunked(src, dst).await?,
    };
    dst.flush().await?;
    Ok(copied)
}

async fn copy_exact(src: &mut Incoming, dst: &mut BoxWrite, mut remaining: u64) -> io::Result<u64> {
    let total = remaining;
    while remaining > 0 {
        if src.buf.is_empty() && src.fill().await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body ended {remaining} bytes short of {total}"),
            ));
        }
        let n = usize::try_from(remaining).map_or(src.buf.len(), |r| r.min(src.buf.len()));
        let piece = src.buf.split_to(n);
        dst.write_all(&piece).await?;
        remaining -= n as u64;
    }
    Ok(total)
}

async fn copy_to_end(src: &mut Incoming, dst: &mut BoxWrite) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        if src.buf.is_empty() && src.fill().await? == 0 {
            return Ok(total);
        }
        let piece = src.buf.split();
        dst.write_all(&piece).await?;
        total += piece.len() as u64;
    }
}

/// Reads one line (through `\n`) into the buffer's front and returns its length.
async fn line_len(src: &mut Incoming) -> io::Result<usize> {
    let mut searched = 0;
    loop {
        if let Some(pos) = src.buf[searched..].iter().position(|&b| b == b'\n') {
            return Ok(searched + pos + 1);
        }
        searched = src.buf.len();
        if searched > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk line too long",
            ));
        }
        if src.fill().await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
    }
}

fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits: &[u8] = line
        .split(|&b| b == b';' || b == b'\r' || b == b'\n' || b == b' ' || b == b'\t')
        .next()
        .unwrap_or_default();
    std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty())
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "invalid chunk size"))
}

async fn copy_chunked(src: &mut Incoming, dst: &mut BoxWrite) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let len = line_len(src).await?;
        let line = src.buf.split_to(len);
        let size = chunk_size(&line)?;
        dst.write_all(&line).await?;
        total += line.len() as u64;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let len = line_len(src).await?;
                let line = src.buf.split_to(len);
                dst.write_all(&line).await?;
                total += line.len() as u64;
                if line.as_ref() == b"\r\n" || line.as_ref() == b"\n" {
                    return Ok(total);
                }
            }
        }
        total += copy_exact(src, dst, size).await?;
        let len = line_len(src).await?;
        let crlf = src.buf.split_to(len);
        dst.write_all(&crlf).await?;
        total += crlf.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{RequestLine, StatusLine};
    use bytes::BytesMut;

    fn headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn request(with: &[(&str, &str)]) -> Request {
        Head {
            line: RequestLine {
                method: "POST".into(),
                target: "/".into(),
            },
            minor_version: 1,
            headers: headers(with),
            raw: BytesMut::new(),
        }
    }

    fn response(with: &[(&str, &str)], status: u16) -> Response {
        Head {
            line: StatusLine {
                status,
                reason: String::new(),
            },
            minor_version: 1,
            headers: headers(with),
            raw: BytesMut::new(),
        }
    }

    #[test]
    fn request_framing_refuses_smuggling_shapes() {
        assert_eq!(
            request_body(&request(&[("Content-Length", "5")])),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            request_body(&request(&[("Transfer-Encoding", "gzip, chunked")])),
            Ok(BodyKind::Chunked)
        );
        assert!(request_body(&request(&[
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked")
        ]))
        .is_err());
        assert!(request_body(&request(&[("Transfer-Encoding", "chunked, gzip")])).is_err());
        assert!(request_body(&request(&[
            ("Content-Length", "5"),
            ("Content-Length", "6")
        ]))
        .is_err());
        assert_eq!(request_body(&request(&[])), Ok(BodyKind::Empty));
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            response_body(&response(&[("Content-Length", "5")], 200), "HEAD"),
            BodyKind::Empty
        );
        assert_eq!(response_body(&response(&[], 204), "GET"), BodyKind::Empty);
        assert_eq!(
            response_body(&response(&[], 200), "GET"),
            BodyKind::UntilClose
        );
        assert_eq!(
            response_body(&response(&[("transfer-encoding", "chunked")], 200), "GET"),
            BodyKind::Chunked
        );
    }

    #[tokio::test]
    async fn chunked_body_is_copied_verbatim_up_to_its_end() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let mut src = Incoming::new(Box::new(std::io::Cursor::new(wire.to_vec())));
        let (client, mut server) = tokio::io::duplex(1024);
        let mut dst: BoxWrite = Box::new(client);
        let n = relay(&mut src, &mut dst, BodyKind::Chunked).await.unwrap();
        drop(dst);
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut out)
            .await
            .unwrap();
        assert_eq!(out, &wire[..wire.len() - 4]);
        assert_eq!(n as usize, wire.len() - 4);
        // What follows the body stays for the next message.
        let mut rest = src.buf.to_vec();
        if rest.is_empty() {
            src.fill().await.unwrap();
            rest = src.buf.to_vec();
        }
        assert_eq!(rest, b"NEXT");
    }
}

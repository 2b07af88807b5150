//! Responses the proxy writes itself: errors (400, 431, 502, ...) and `200` for CONNECT.
//!
//! Every error response names its reason in the body and in an `X-Wstap-Error` header, so
//! a person looking at a failed client knows what the proxy saw.

use crate::io::BoxWrite;
use tokio::io::AsyncWriteExt;
use wstap_trace::ResponseHead;

/// The reason phrase for the statuses the proxy sends.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "Connection Established",
        400 => "Bad Request",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        508 => "Loop Detected",
        _ => "Error",
    }
}

/// An error response with extra header lines (e.g. `Proxy-Authenticate`).
/// Returns the head, the whole answer's bytes, and the length of its head in them.
fn error_response(
    status: u16,
    detail: &str,
    extra: &[(&str, &str)],
) -> (ResponseHead, Vec<u8>, usize) {
    let body = format!("wstap: {detail}\n");
    let one_line = detail.replace(['\r', '\n'], " ");
    let mut headers: Vec<(String, String)> = extra
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    headers.extend([
        (
            "Content-Type".to_owned(),
            "text/plain; charset=utf-8".to_owned(),
        ),
        ("Content-Length".to_owned(), body.len().to_string()),
        ("Connection".to_owned(), "close".to_owned()),
        ("X-Wstap-Error".to_owned(), one_line),
    ]);
    let mut bytes = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).into_bytes();
    for (name, value) in &headers {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    let head_len = bytes.len();
    bytes.extend_from_slice(body.as_bytes());
    let head = ResponseHead {
        status,
        reason: reason_phrase(status).to_owned(),
        version: "HTTP/1.1".to_owned(),
        headers,
    };
    (head, bytes, head_len)
}

/// Writes an error response with `extra` header lines and closes the connection for
/// writing; failures to write are ignored (the client is gone anyway). Returns the head
/// written and the head's bytes, for the record.
pub(crate) async fn send_error(
    out: &mut BoxWrite,
    status: u16,
    detail: &str,
    extra: &[(&str, &str)],
) -> (ResponseHead, Vec<u8>) {
    let (head, mut bytes, head_len) = error_response(status, detail, extra);
    let _ = out.write_all(&bytes).await;
    let _ = out.flush().await;
    let _ = out.shutdown().await;
    bytes.truncate(head_len);
    (head, bytes)
}

/// The answer to a successful CONNECT.
pub(crate) const CONNECT_ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";

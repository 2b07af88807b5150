//! Responses: JSON, files, downloads and errors, each with the headers every answer of
//! the inspector carries (a Content-Security-Policy that allows no inline script, no
//! sniffing, no referrer, no caching of what the API returns).

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::convert::Infallible;
use wstap_filter::ParseError;
use wstap_store::StoreError;

/// The body of every response.
pub type Body = BoxBody<Bytes, Infallible>;

/// The policy of every page: scripts, styles and requests only from the inspector itself,
/// nothing inline, no frames, no forms, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// A body of bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A response with the inspector's headers.
pub fn response(status: StatusCode, media_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(media_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON answer.
pub fn json_reply(value: &Value) -> Response<Body> {
    response(StatusCode::OK, "application/json", full(value.to_string()))
}

/// A plain-text answer.
pub fn text(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut text = text.into();
    text.push('\n');
    response(status, "text/plain; charset=utf-8", full(text))
}

/// A download: `bytes` saved as `file_name`.
pub fn download(media_type: &str, file_name: &str, bytes: Vec<u8>) -> Response<Body> {
    let mut reply = response(StatusCode::OK, media_type, full(bytes));
    let disposition = format!("attachment; filename=\"{file_name}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        reply
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    reply
}

/// Why an API request failed: its status, and a reason for a person.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    /// The methods allowed, on a 405.
    allow: Option<&'static str>,
}

impl ApiError {
    /// A request the API cannot answer as asked (400).
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// A body whose `field` is missing or wrong (400).
    pub fn field(field: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": reason.into(), "field": field }),
            allow: None,
        }
    }

    /// Nothing there (404).
    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }

    /// What was asked no longer fits the state of things: the session ended, the message
    /// is no longer held (409).
    pub fn conflict(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, reason)
    }

    /// A method this path does not answer (405), with the ones it does.
    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("this path answers {allow}"),
            )
        }
    }

    /// What the API did on the caller's behalf failed further on: a replay's server
    /// could not be reached, say (502).
    pub fn bad_gateway(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, reason)
    }

    /// A body larger than the API takes (413).
    pub fn too_large(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, reason)
    }

    /// A body that is not JSON by its type (415).
    pub fn unsupported_media(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason)
    }

    fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": reason.into() }),
            allow: None,
        }
    }

    /// A filter that does not parse (400), with where and why, for the page to show
    /// under the filter box.
    pub fn filter(e: &ParseError) -> ApiError {
        let (column, width) = e.span();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "error": e.message(),
                "filter_error": { "message": e.message(), "column": column, "width": width, "text": e.to_string() },
            }),
            allow: None,
        }
    }

    /// The capture could not be read (500).
    pub fn store(e: &StoreError) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({ "error": format!("reading the capture failed: {e}") }),
            allow: None,
        }
    }

    /// The answer.
    pub fn into_response(self) -> Response<Body> {
        let mut reply = json_reply(&self.body);
        *reply.status_mut() = self.status;
        if let Some(allow) = self.allow {
            reply
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        reply
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::store(&e)
    }
}

//! `http://wstap/`: wstap's own page, with its CA for download and how to trust it.
//!
//! Like mitmproxy's `mitm.it`: a client already pointed at the proxy opens
//! `http://wstap/` and gets the CA certificate (`/ca.pem`, `/ca.cer`) and instructions.
//! Only the public certificate is ever served. The page is served by hyper, one request
//! per connection, on the client connection the request arrived on.

use crate::head::Request;
use crate::io::{Client, Joined};
use crate::session::{Ending, Session};
use crate::stage::Stage;
use crate::target::parse_absolute;
use crate::tls::ca::CertificateAuthority;
use crate::tls::instructions::trust_instructions;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use wstap_trace::{
    Event, Exchange, Forwarded, HttpExchange, Outcome, Responder, ResponseHead, SessionKind,
};

/// The host name that means wstap itself.
pub(crate) const HOST: &str = "wstap";

/// Whether `head` asks for wstap's own page.
pub(crate) fn is_for_wstap(head: &Request) -> bool {
    parse_absolute(head.target()).is_ok_and(|url| url.target.host.eq_ignore_ascii_case(HOST))
}

/// One page: status, content type, body.
#[derive(Debug, Clone)]
struct Page {
    status: u16,
    content_type: &'static str,
    disposition: Option<&'static str>,
    body: Bytes,
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn page_for(method: &str, path: &str, ca: Option<&CertificateAuthority>) -> Page {
    let text = |status, body: String| Page {
        status,
        content_type: "text/plain; charset=utf-8",
        disposition: None,
        body: Bytes::from(body),
    };
    if method != "GET" && method != "HEAD" {
        return text(405, format!("wstap: {method} is not served here\n"));
    }
    let path = path.split('?').next().unwrap_or("/");
    let Some(ca) = ca else {
        return text(
            404,
            "wstap: TLS interception is off, so there is no CA to trust.\n".to_owned(),
        );
    };
    match path {
        "/ca.pem" => Page {
            status: 200,
            content_type: "application/x-pem-file",
            disposition: Some("attachment; filename=\"wstap-ca.pem\""),
            body: Bytes::from(ca.cert_pem().to_owned()),
        },
        "/ca.cer" => Page {
            status: 200,
            content_type: "application/pkix-cert",
            disposition: Some("attachment; filename=\"wstap-ca.cer\""),
            body: Bytes::copy_from_slice(ca.cert_der()),
        },
        "/" => {
            let (subject, from, until) = ca.describe();
            let steps = html_escape(&trust_instructions("wstap-ca.pem", "wstap-ca.cer"));
            let html = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>wstap CA</title></head><body>\
                 <h1>wstap: trust the debugging CA</h1>\
                 <p>Download the CA certificate: <a href=\"/ca.pem\">wstap-ca.pem</a> (PEM) or \
                 <a href=\"/ca.cer\">wstap-ca.cer</a> (DER).</p>\
                 <p>Subject: {}<br>SHA-256 fingerprint: <code>{}</code><br>Valid from {} until {}</p>\
                 <pre>{steps}</pre></body></html>",
                html_escape(&subject),
                ca.fingerprint_sha256(),
                html_escape(&from),
                html_escape(&until)
            );
            Page {
                status: 200,
                content_type: "text/html; charset=utf-8",
                disposition: None,
                body: Bytes::from(html),
            }
        }
        _ => text(
            404,
            format!("wstap: nothing at {path}; try http://wstap/\n"),
        ),
    }
}

/// The reason phrase hyper writes for the statuses the page uses.
fn page_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "",
    }
}

impl Page {
    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".to_owned(), self.content_type.to_owned()),
            ("content-length".to_owned(), self.body.len().to_string()),
        ];
        if let Some(disposition) = self.disposition {
            headers.push(("content-disposition".to_owned(), disposition.to_owned()));
        }
        headers
    }

    fn response(&self) -> hyper::Response<Full<Bytes>> {
        let mut builder = hyper::Response::builder().status(self.status);
        for (name, value) in self.headers() {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(self.body.clone()))
            .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
    }
}

/// Serves wstap's page for `head` on `client`, records it, and ends the session.
pub(crate) async fn serve(mut session: Session, client: Client, head: Request) -> Stage {
    let time = Utc::now();
    let ca = session
        .shared
        .tls
        .as_ref()
        .map(|t| std::sync::Arc::clone(&t.ca));
    let path = parse_absolute(head.target()).map_or_else(|_| "/".to_owned(), |u| u.path_and_query);
    let page = page_for(head.method(), &path, ca.as_deref());
    let event = Event::Http(HttpExchange {
        exchange: Exchange {
            session: session.id,
            time,
            url: format!("http://{HOST}{path}"),
            request: head.request_head(),
            forwarded: Forwarded::default(),
            response: Some(ResponseHead {
                status: page.status,
                reason: page_reason(page.status).to_owned(),
                version: "HTTP/1.1".to_owned(),
                headers: page.headers(),
            }),
            raw: None,
        },
        request_body_bytes: 0,
        response_body_bytes: page.body.len() as u64,
        duration_us: 0,
        responder: Responder::Proxy,
        error: None,
    });
    session.record(event).await;

    // hyper parses the request again from the start, so hand it the head we read.
    let io = Joined::with_prefix(client.incoming, client.out, head.raw);
    let service = service_fn(move |_request| {
        let response = page.response();
        async move { Ok::<_, Infallible>(response) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .await;
    let (outcome, error) = match served {
        Ok(()) => (Outcome::Closed, None),
        Err(e) => (Outcome::Aborted, Some(e.to_string())),
    };
    let ending = Ending {
        error,
        ..Ending::default()
    };
    session.end(outcome, SessionKind::Http, ending).await;
    Stage::Done
}

//! How a connection's request stage ends: closed after its last request (or before its
//! first), or refused with an answer of wstap's own. Both the request loop and the
//! exchange end it so; this module is what they share.

use crate::error::SessionError;
use crate::head::Request;
use crate::session::Ending;
use crate::stage::{Requests, Stage};
use wstap_trace::{Outcome, SessionKind};

/// Ends an HTTP session that closed normally: `empty` when it never sent a request.
pub(crate) async fn end(requests: Requests, ending: Ending) -> Stage {
    let kind = if requests.served == 0 {
        SessionKind::Empty
    } else {
        SessionKind::Http
    };
    requests.session.end(Outcome::Closed, kind, ending).await;
    Stage::Done
}

/// Answers `head` with `error`, recording it at `url`, and ends the session.
pub(crate) async fn refuse_at(
    requests: Requests,
    error: SessionError,
    head: Option<&Request>,
    url: &str,
) -> Stage {
    let Requests {
        session,
        mut client,
        ..
    } = requests;
    session
        .refuse(&mut client.out, error, head, url, SessionKind::Http)
        .await;
    Stage::Done
}

//! The API that reaches live sessions (`docs/inspector.md`): breakpoints and rules, the
//! messages held and the decisions on them, and messages, closes and aborts sent on a
//! session.
//!
//! What changes something is a POST, PATCH or DELETE with `Content-Type:
//! application/json`: no cross-site form can send that type, and a foreign page may not
//! without the inspector's consent, which it never gives (the guard has already refused
//! a foreign `Host` or `Origin`, and a request without the token). A request about a
//! session that ended, or a message no longer held, gets 409 with the reason; a body
//! that does not say what it must, 400 naming the field.

use crate::replay::{ReplayError, ReplayRequest, Replayer};
use crate::reply::{json_reply, ApiError, Body};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use wstap_control::{
    BreakpointView, Control, ControlError, HeldAction, HeldView, Injection, RuleView,
};
use wstap_filter::Filter;
use wstap_relay::Side;
use wstap_trace::Decider;
use wstap_wire::Opcode;

/// The largest body a command may carry: a held message's edit of up to 16 MiB, in
/// base64.
pub const MAX_BODY: usize = 24 << 20;

/// A request of this API, by path (after `/api/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `breakpoints`
    Breakpoints,
    /// `breakpoints/ID`
    Breakpoint(u64),
    /// `rules`
    Rules,
    /// `rules/ID`
    Rule(u64),
    /// `rules/reload`
    RulesReload,
    /// `held`
    Held,
    /// `held/ID`
    HeldMessage(u64),
    /// `sessions/N/inject`
    Inject(u64),
    /// `sessions/N/close`
    Close(u64),
    /// `sessions/N/abort`
    Abort(u64),
    /// `sessions/N/conditions`
    Conditions(u64),
    /// `sessions/N/replay`
    Replay(u64),
    /// `sessions/N/view`
    View(u64),
}

impl Route {
    /// The route at `path`, if it is one of this API's.
    pub fn of_path(path: &str) -> Option<Route> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let number = |text: &str| text.parse::<u64>().ok();
        match parts.as_slice() {
            ["breakpoints"] => Some(Route::Breakpoints),
            ["breakpoints", id] => Some(Route::Breakpoint(number(id)?)),
            ["rules"] => Some(Route::Rules),
            ["rules", "reload"] => Some(Route::RulesReload),
            ["rules", id] => Some(Route::Rule(number(id)?)),
            ["held"] => Some(Route::Held),
            ["held", id] => Some(Route::HeldMessage(number(id)?)),
            ["sessions", n, "inject"] => Some(Route::Inject(number(n)?)),
            ["sessions", n, "close"] => Some(Route::Close(number(n)?)),
            ["sessions", n, "abort"] => Some(Route::Abort(number(n)?)),
            ["sessions", n, "conditions"] => Some(Route::Conditions(number(n)?)),
            ["sessions", n, "replay"] => Some(Route::Replay(number(n)?)),
            ["sessions", n, "view"] => Some(Route::View(number(n)?)),
            _ => None,
        }
    }

    /// The methods it answers.
    pub fn allowed(self) -> &'static str {
        match self {
            Route::Breakpoints | Route::Rules => "GET, HEAD, POST",
            Route::Breakpoint(_) => "PATCH, DELETE",
            Route::Rule(_) => "DELETE",
            Route::RulesReload => "POST",
            Route::Held => "GET, HEAD",
            Route::Conditions(_) => "GET, HEAD, POST",
            Route::HeldMessage(_)
            | Route::Inject(_)
            | Route::Close(_)
            | Route::Abort(_)
            | Route::Replay(_)
            | Route::View(_) => "POST",
        }
    }

    fn reads(method: &Method) -> bool {
        method == Method::GET || method == Method::HEAD
    }
}

/// The live sessions' registry, when there is one (not while `wstap view` shows a
/// capture after the fact).
#[derive(Debug)]
pub struct Commands {
    /// The registry.
    pub control: Option<Control>,
    /// Plays a recorded session again, when the binary can.
    pub replayer: Option<Replayer>,
    /// The capture (where a person's choice of a session's view is kept).
    pub store: std::sync::Arc<crate::store::Store>,
}

/// Who sent a request: the page says so with `X-Wstap-Client: inspector`.
fn decider(headers: &HeaderMap) -> Decider {
    match headers.get("x-wstap-client").and_then(|v| v.to_str().ok()) {
        Some("inspector") => Decider::Inspector,
        _ => Decider::Api,
    }
}

/// Whether the request says its body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

impl Commands {
    /// Answers `route` for a request with `method`, `headers` and `body`.
    pub async fn answer(
        &self,
        route: Route,
        method: &Method,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, ApiError> {
        let allowed = match route {
            Route::Breakpoints | Route::Rules => Route::reads(method) || method == Method::POST,
            Route::Breakpoint(_) => method == Method::PATCH || method == Method::DELETE,
            Route::Rule(_) => method == Method::DELETE,
            Route::Held => Route::reads(method),
            Route::Conditions(_) => Route::reads(method) || method == Method::POST,
            _ => method == Method::POST,
        };
        if !allowed {
            return Err(ApiError::method_not_allowed(route.allowed()));
        }
        if !Route::reads(method) && !is_json(headers) {
            return Err(ApiError::unsupported_media(
                "requests that change something must be JSON (Content-Type: application/json)",
            ));
        }
        if let Route::View(session) = route {
            return self.choose_view(session, &parse_body(&body)?).await;
        }
        let Some(control) = &self.control else {
            // A saved capture: nothing held, no breakpoints, and nothing to change.
            return match route {
                Route::Conditions(_) if Route::reads(method) => Ok(json_reply(
                    &json!({ "client": null, "server": null, "live": false }),
                )),
                Route::Breakpoints | Route::Held | Route::Rules if Route::reads(method) => {
                    Ok(json_reply(&json!({
                        "held": [], "breakpoints": [], "rules": [], "intercepting": false
                    })))
                }
                _ => Err(ApiError::conflict(
                    "this inspector shows a capture, not a running proxy: nothing is live",
                )),
            };
        };
        let body = match Route::reads(method) {
            true => Map::new(),
            false => parse_body(&body)?,
        };
        let by = decider(headers);
        match route {
            Route::Breakpoints if Route::reads(method) => Ok(json_reply(&json!({
                "breakpoints": control.breakpoints().iter().map(breakpoint_json).collect::<Vec<_>>(),
                "intercepting": true,
            }))),
            Route::Breakpoints => {
                let source = string(&body, "filter")?.ok_or_else(|| missing("filter"))?;
                let filter = Filter::parse(source).map_err(|e| ApiError::filter(&e))?;
                let control_frames = boolean(&body, "control")?.unwrap_or(false);
                let id = control.add_breakpoint(filter, control_frames).await;
                let mut reply = json_reply(&json!({ "id": id }));
                *reply.status_mut() = StatusCode::CREATED;
                Ok(reply)
            }
            Route::Breakpoint(id) if method == Method::DELETE => {
                control.remove_breakpoint(id).await.map_err(refusal)?;
                Ok(json_reply(&json!({ "deleted": id })))
            }
            Route::Breakpoint(id) => {
                let enabled = boolean(&body, "enabled")?.ok_or_else(|| missing("enabled"))?;
                control
                    .set_breakpoint_enabled(id, enabled)
                    .await
                    .map_err(refusal)?;
                let view = control.breakpoints().into_iter().find(|b| b.id == id);
                Ok(json_reply(
                    &view.as_ref().map_or(Value::Null, breakpoint_json),
                ))
            }
            Route::Rules if Route::reads(method) => Ok(json_reply(&json!({
                "rules": control.rules().iter().map(rule_json).collect::<Vec<_>>(),
                "file": control.rules_source(),
                "intercepting": true,
            }))),
            Route::RulesReload => {
                let count = control.reload_rules().await.map_err(refusal)?;
                Ok(json_reply(&json!({ "in_force": count })))
            }
            Route::Rules => {
                // The rules file's own language, as a string: `[[rule]]` tables.
                let text = string(&body, "rules")?.ok_or_else(|| missing("rules"))?;
                let rules = wstap_control::parse_rules(text).map_err(|e| {
                    ApiError::field("rules", format!("\"rules\" has a mistake at {e}"))
                })?;
                let ids = control.add_rules(rules).await;
                let mut reply = json_reply(&json!({ "ids": ids }));
                *reply.status_mut() = StatusCode::CREATED;
                Ok(reply)
            }
            Route::Rule(id) => {
                control.remove_rule(id).await.map_err(refusal)?;
                Ok(json_reply(&json!({ "deleted": id })))
            }
            Route::Held => Ok(json_reply(&json!({
                "held": control.held().iter().map(held_json).collect::<Vec<_>>(),
                "intercepting": true,
            }))),
            Route::HeldMessage(id) => {
                let action = held_action(&body)?;
                control.decide(id, action, by).await.map_err(refusal)?;
                Ok(json_reply(&json!({ "ok": true })))
            }
            Route::Inject(session) => {
                let to = side(&body, "to")?.ok_or_else(|| missing("to"))?;
                let kind = string(&body, "type")?.ok_or_else(|| missing("type"))?;
                let opcode = match kind {
                    "text" => Opcode::Text,
                    "binary" => Opcode::Binary,
                    "ping" => Opcode::Ping,
                    "pong" => Opcode::Pong,
                    "close" => {
                        let (code, reason) = close_of(&body)?;
                        control
                            .close(session, Some(to), code, reason, by)
                            .await
                            .map_err(refusal)?;
                        return Ok(json_reply(&json!({ "ok": true })));
                    }
                    other => {
                        return Err(ApiError::field(
                            "type",
                            format!("{other:?} is not text, binary, ping, pong or close"),
                        ))
                    }
                };
                let injection = Injection {
                    to,
                    opcode,
                    payload: payload(&body)?.unwrap_or_default(),
                    resent: message_id(&body, "resend")?,
                };
                control
                    .inject(session, injection, by)
                    .await
                    .map_err(refusal)?;
                Ok(json_reply(&json!({ "ok": true })))
            }
            Route::Close(session) => {
                let to = match string(&body, "to")?.unwrap_or("both") {
                    "both" => None,
                    _ => side(&body, "to")?,
                };
                let (code, reason) = close_of(&body)?;
                control
                    .close(session, to, code, reason, by)
                    .await
                    .map_err(refusal)?;
                Ok(json_reply(&json!({ "ok": true })))
            }
            Route::Abort(session) => {
                control.abort(session, by).await.map_err(refusal)?;
                Ok(json_reply(&json!({ "ok": true })))
            }
            Route::Replay(session) => self.replay(session, &body).await,
            // A session that is not live has no conditions: nothing to refuse.
            Route::Conditions(session) if Route::reads(method) && !control.is_live(session) => Ok(
                json_reply(&json!({ "client": null, "server": null, "live": false })),
            ),
            Route::Conditions(session) if Route::reads(method) => conditions_json(control, session),
            Route::Conditions(session) => {
                // The language of `--conditions`; `none` takes away what was set here.
                let text = string(&body, "conditions")?.ok_or_else(|| missing("conditions"))?;
                let (toward, conditions) = wstap_control::parse_conditions(text)
                    .map_err(|e| ApiError::field("conditions", e))?;
                control
                    .set_session_conditions(session, conditions.map(|c| (toward, c)), by)
                    .await
                    .map_err(refusal)?;
                conditions_json(control, session)
            }
            Route::View(session) => self.choose_view(session, &body).await,
        }
    }
}

impl Commands {
    /// `POST /api/sessions/N/view` `{"view": "signalr"}` (`null`: wstap's own choice):
    /// the view the session's messages are read with from now on, kept in the capture.
    async fn choose_view(
        &self,
        session: u64,
        body: &Map<String, Value>,
    ) -> Result<Response<Body>, ApiError> {
        let view = match string(body, "view")? {
            None => None,
            Some(name) => Some(wstap_views::View::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = wstap_views::View::ALL.iter().map(|v| v.name()).collect();
                ApiError::field(
                    "view",
                    format!("no view {name:?}: the views are {}", names.join(", ")),
                )
            })?),
        };
        let chosen = self
            .store
            .read(move |capture| {
                capture.choose_view(session, view)?;
                Ok(capture.session(session)?.and_then(|row| row.view))
            })
            .await?;
        Ok(json_reply(
            &json!({ "view": chosen.map(|v| v.name()), "chosen": view.map(|v| v.name()) }),
        ))
    }

    /// `POST /api/sessions/N/replay` `{"timing": "fast"|"original", "ignore": [paths]}`:
    /// plays session N's client side again through the proxy (which records the new
    /// session) and answers with the comparison; a session that cannot replay is a 400,
    /// a replay that fails on its way a 502, each with the reason.
    async fn replay(
        &self,
        session: u64,
        body: &Map<String, Value>,
    ) -> Result<Response<Body>, ApiError> {
        let Some(replayer) = &self.replayer else {
            return Err(ApiError::conflict(
                "this proxy cannot replay: it records no capture",
            ));
        };
        let fast = match string(body, "timing")?.unwrap_or("fast") {
            "fast" => true,
            "original" => false,
            other => {
                return Err(ApiError::field(
                    "timing",
                    format!("\"timing\" is fast or original, not {other:?}"),
                ))
            }
        };
        let ignore = match body.get("ignore") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(paths)) => paths
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::field("ignore", "\"ignore\" is a list of JSON paths (strings)")
                })?,
            Some(_) => {
                return Err(ApiError::field(
                    "ignore",
                    "\"ignore\" is a list of JSON paths (strings)",
                ))
            }
        };
        let request = ReplayRequest {
            session,
            fast,
            ignore,
        };
        match replayer.replay(request).await {
            Ok(comparison) => Ok(json_reply(&comparison)),
            Err(ReplayError::Refused(reason)) => Err(ApiError::bad_request(reason)),
            Err(ReplayError::Failed(reason)) => Err(ApiError::bad_gateway(reason)),
        }
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::field(field, format!("\"{field}\" is required"))
}

fn string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::field(
            field,
            format!("\"{field}\" must be a string"),
        )),
    }
}

fn boolean(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::field(
            field,
            format!("\"{field}\" must be true or false"),
        )),
    }
}

/// A recorded message's id, as a session's message rows give it (`id`).
fn message_id(body: &Map<String, Value>, field: &str) -> Result<Option<u64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(id) if id > 0 => Ok(Some(id)),
            _ => Err(ApiError::field(
                field,
                format!("\"{field}\" must be a message's id, a positive integer"),
            )),
        },
    }
}

fn side(body: &Map<String, Value>, field: &str) -> Result<Option<Side>, ApiError> {
    match string(body, field)? {
        None => Ok(None),
        Some("client") => Ok(Some(Side::Client)),
        Some("server") => Ok(Some(Side::Server)),
        Some(other) => Err(ApiError::field(
            field,
            format!("\"{field}\" must be \"client\" or \"server\", not {other:?}"),
        )),
    }
}

/// The payload a body carries: `text` (UTF-8) or `base64` (any bytes), not both.
fn payload(body: &Map<String, Value>) -> Result<Option<Vec<u8>>, ApiError> {
    match (string(body, "text")?, string(body, "base64")?) {
        (Some(_), Some(_)) => Err(ApiError::field(
            "text",
            "give \"text\" or \"base64\", not both",
        )),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .map(Some)
            .map_err(|e| ApiError::field("base64", format!("\"base64\" is not base64: {e}"))),
        (None, None) => Ok(None),
    }
}

/// A close's code (default 1000) and reason (default empty).
fn close_of(body: &Map<String, Value>) -> Result<(u16, String), ApiError> {
    let code = match body.get("code") {
        None | Some(Value::Null) => 1000,
        Some(value) => value
            .as_u64()
            .and_then(|code| u16::try_from(code).ok())
            .ok_or_else(|| ApiError::field("code", "\"code\" must be a close code, 1000-4999"))?,
    };
    let reason = string(body, "reason")?.unwrap_or_default().to_owned();
    Ok((code, reason))
}

fn held_action(body: &Map<String, Value>) -> Result<HeldAction, ApiError> {
    let action = string(body, "action")?.ok_or_else(|| missing("action"))?;
    match action {
        "forward" => Ok(HeldAction::Forward),
        "drop" => Ok(HeldAction::Drop),
        "continue" => Ok(HeldAction::Continue),
        "edit" => Ok(HeldAction::Edit {
            payload: payload(body)?
                .ok_or_else(|| ApiError::field("text", "an edit needs \"text\" or \"base64\""))?,
            as_bytes: boolean(body, "as_bytes")?.unwrap_or(false),
        }),
        other => Err(ApiError::field(
            "action",
            format!("{other:?} is not forward, drop, edit or continue"),
        )),
    }
}

/// A registry's refusal, as an answer.
fn refusal(e: ControlError) -> ApiError {
    let reason = e.to_string();
    match e {
        ControlError::NoBreakpoint(_) | ControlError::NoRule(_) => ApiError::not_found(reason),
        ControlError::Invalid(_) => ApiError::bad_request(reason),
        ControlError::NoSession(_)
        | ControlError::NoRulesSource
        | ControlError::NotHeld(_)
        | ControlError::Gone(_)
        | ControlError::Refused(_) => ApiError::conflict(reason),
    }
}

fn breakpoint_json(b: &BreakpointView) -> Value {
    json!({
        "id": b.id,
        "filter": b.filter,
        "control": b.control,
        "enabled": b.enabled,
        "hits": b.hits,
    })
}

fn rule_json(r: &RuleView) -> Value {
    let mut value = json!({
        "id": r.id,
        "name": r.name,
        "filter": r.filter,
        "hits": r.hits,
    });
    if let Some(every) = r.every {
        value["every_ms"] = json!(every.as_millis() as u64);
    }
    if let Some(conditions) = &r.conditions {
        value["conditions"] = json!(conditions);
    }
    value
}

/// The network conditions that apply to live session `session`, by the side each way
/// goes to.
fn conditions_json(control: &Control, session: u64) -> Result<Response<Body>, ApiError> {
    let [client, server] = control.session_conditions(session).map_err(refusal)?;
    Ok(json_reply(&json!({
        "client": client.as_ref().map(rule_json),
        "server": server.as_ref().map(rule_json),
        "live": true,
    })))
}

fn held_json(h: &HeldView) -> Value {
    let mut value = json!({
        "id": h.id,
        "session": h.session,
        "dir": h.dir.short(),
        "opcode": h.opcode.bits(),
        "type": h.opcode.name().to_ascii_lowercase(),
        "len": h.len,
        "truncated": (h.payload.len() as u64) < h.len,
        "compressed": h.compressed,
        "since": h.since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "since_us": h.since.timestamp_micros(),
        "breakpoint": h.breakpoint,
        "frame": h.frame,
    });
    let text = match h.opcode {
        Opcode::Text => std::str::from_utf8(&h.payload).ok(),
        _ => None,
    };
    match text {
        Some(text) => value["text"] = json!(text),
        None => value["base64"] = json!(BASE64.encode(&h.payload)),
    }
    value
}

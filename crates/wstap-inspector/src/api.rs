//! The HTTP API the page uses (documented in `docs/inspector.md`, for scripts too): the
//! capture's sessions, one session's handshake, pages of its frames or messages by index,
//! one record's bytes, its timeline, and exports. Every answer is JSON but exports.

use crate::query::Query;
use crate::reply::{download, json_reply, ApiError, Body};
use crate::selection::{Key, RowsKey, Selections};
use crate::store::Store;
use crate::views;
use hyper::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use wstap_filter::Filter;
use wstap_store::export::{self, Export, Format};
use wstap_store::{Capture, Position, Rows};
use wstap_trace::export::Redaction;
use wstap_trace::TraceHeader;
use wstap_views::{SessionDecoder, View};

/// Rows a page may ask for at once.
const MAX_PAGE: u64 = 1000;
/// Rows a page gets when it does not say.
const DEFAULT_PAGE: u64 = 100;
/// Buckets a timeline is cut into, about.
const TIMELINE_BUCKETS: i64 = 150;

/// What the API handlers share.
#[derive(Debug)]
pub struct Api {
    /// The capture.
    pub store: Arc<Store>,
    /// Filtered views, by index.
    pub selections: Arc<Selections>,
    /// Whether a writer is adding to the capture.
    pub live: bool,
}

/// An API request, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/api/capture`
    Capture,
    /// `/api/sessions`
    Sessions,
    /// `/api/sessions/N`
    Session(u64),
    /// `/api/sessions/N/rows`
    Rows(u64),
    /// `/api/sessions/N/frames/SEQ`
    Frame(u64, u64),
    /// `/api/sessions/N/messages/SEQ`
    Message(u64, u64),
    /// `/api/sessions/N/timeline`
    Timeline(u64),
    /// `/api/sessions/N/calls`
    Calls(u64),
    /// `/api/export`
    Export,
    /// `/api/live`
    Live,
}

impl Endpoint {
    /// The endpoint at `path` (after `/api/`).
    pub fn of_path(path: &str) -> Option<Endpoint> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let number = |text: &str| text.parse::<u64>().ok();
        match parts.as_slice() {
            ["capture"] => Some(Endpoint::Capture),
            ["sessions"] => Some(Endpoint::Sessions),
            ["export"] => Some(Endpoint::Export),
            ["live"] => Some(Endpoint::Live),
            ["sessions", n] => Some(Endpoint::Session(number(n)?)),
            ["sessions", n, "rows"] => Some(Endpoint::Rows(number(n)?)),
            ["sessions", n, "timeline"] => Some(Endpoint::Timeline(number(n)?)),
            ["sessions", n, "calls"] => Some(Endpoint::Calls(number(n)?)),
            ["sessions", n, "frames", seq] => Some(Endpoint::Frame(number(n)?, number(seq)?)),
            ["sessions", n, "messages", seq] => Some(Endpoint::Message(number(n)?, number(seq)?)),
            _ => None,
        }
    }
}

impl Api {
    /// Answers `endpoint` (all but the live feed, which the server streams).
    pub async fn answer(
        &self,
        endpoint: Endpoint,
        query: Query,
    ) -> Result<Response<Body>, ApiError> {
        match endpoint {
            Endpoint::Capture => self.capture().await,
            Endpoint::Sessions => self.sessions(query).await,
            Endpoint::Session(id) => self.session(id).await,
            Endpoint::Rows(id) => self.rows(id, query).await,
            Endpoint::Frame(id, seq) => self.frame(id, seq).await,
            Endpoint::Message(id, seq) => self.message(id, seq).await,
            Endpoint::Timeline(id) => self.timeline(id).await,
            Endpoint::Calls(id) => self.calls(id).await,
            Endpoint::Export => self.export(query).await,
            Endpoint::Live => Err(ApiError::not_found("the live feed is streamed")),
        }
    }

    async fn capture(&self) -> Result<Response<Body>, ApiError> {
        let live = self.live;
        let value = self
            .store
            .read(move |capture| {
                let info = capture.info()?;
                let sessions = capture.count_sessions(&Filter::default())?;
                let size = capture.size()?;
                Ok(json!({
                    "dir": capture.dir().display().to_string(),
                    "info": info,
                    "size": crate::live::size_json(&size),
                    "sessions": sessions,
                    "live": live,
                    "version": env!("CARGO_PKG_VERSION"),
                }))
            })
            .await?;
        Ok(json_reply(&value))
    }

    /// A page of the sessions a filter selects, by index.
    async fn sessions(&self, query: Query) -> Result<Response<Body>, ApiError> {
        let filter = filter_of(&query)?;
        let (index, limit) = page_of(&query)?;
        let value = self
            .store
            .read(move |capture| {
                let ids = capture.session_ids(&filter, None)?;
                let total = ids.len() as u64;
                // One keyset query for the page: the matches after the one before it.
                let rows: Vec<Value> = match ids.get(index as usize) {
                    Some(&first) => capture
                        .sessions(&filter, first.checked_sub(1), limit as usize)?
                        .into_iter()
                        .zip(index..)
                        .map(|(row, at)| {
                            let mut row = json!(row);
                            row["index"] = json!(at);
                            row
                        })
                        .collect(),
                    None => Vec::new(),
                };
                Ok(json!({ "total": total, "index": index, "rows": rows }))
            })
            .await?;
        Ok(json_reply(&value))
    }

    async fn session(&self, id: u64) -> Result<Response<Body>, ApiError> {
        let value = self
            .store
            .read(move |capture| {
                let session = session_of(capture, id)?;
                let handshake = capture.handshake(id)?;
                let http = capture.http(id)?;
                let interventions = capture.interventions(id)?;
                let frames = capture.extent(Rows::Frames, id)?;
                let messages = capture.extent(Rows::Messages, id)?;
                Ok(json!({
                    "session": session,
                    "handshake": handshake.as_ref().map(views::handshake),
                    "http": http,
                    "interventions": interventions,
                    "frames": frames,
                    "messages": messages,
                }))
            })
            .await?;
        Ok(json_reply(&value))
    }

    /// A page of a session's frames or messages, by index in what the filter selects.
    async fn rows(&self, id: u64, query: Query) -> Result<Response<Body>, ApiError> {
        let filter = filter_of(&query)?;
        let rows_key = match query.get("kind").unwrap_or("frames") {
            "frames" => RowsKey::Frames,
            "messages" => RowsKey::Messages,
            other => {
                return Err(ApiError::bad_request(format!(
                    "kind must be frames or messages, not {other:?}"
                )))
            }
        };
        let (index, limit) = page_of(&query)?;
        let selections = Arc::clone(&self.selections);
        let value = self
            .store
            .read(move |capture| {
                let rows = Rows::from(rows_key);
                let extent = capture.extent(rows, id)?;
                let (total, page) = if filter.is_all() {
                    let page = if index < extent {
                        page(capture, rows, id, index, limit)?
                    } else {
                        Vec::new()
                    };
                    (extent, page)
                } else {
                    let key = Key {
                        session: id,
                        rows: rows_key,
                        filter: filter.source().to_owned(),
                    };
                    let found = selections.get(key, extent, |from| {
                        capture.positions(rows, id, &filter, from)
                    })?;
                    let wanted: Vec<u64> = found
                        .positions
                        .iter()
                        .skip(index as usize)
                        .take(limit as usize)
                        .copied()
                        .collect();
                    let total = found.positions.len() as u64;
                    (total, page_at(capture, rows, id, &wanted, index)?)
                };
                Ok(json!({ "total": total, "extent": extent, "index": index, "rows": page }))
            })
            .await?;
        Ok(json_reply(&value))
    }

    async fn frame(&self, id: u64, seq: u64) -> Result<Response<Body>, ApiError> {
        let value = self
            .store
            .read(move |capture| {
                let frame = capture
                    .frames(Some(id), &Filter::default(), Position::From(seq), 1)?
                    .into_iter()
                    .find(|f| f.seq == seq)
                    .ok_or_else(|| {
                        ApiError::not_found(format!("session {id} has no frame {seq}"))
                    })?;
                Ok(views::frame_detail(&frame))
            })
            .await?;
        Ok(json_reply(&value))
    }

    async fn message(&self, id: u64, seq: u64) -> Result<Response<Body>, ApiError> {
        let value = self
            .store
            .read(move |capture| {
                let all = Filter::default();
                let message = capture
                    .messages(Some(id), &all, Position::From(seq), 1)?
                    .into_iter()
                    .find(|m| m.seq == seq)
                    .ok_or_else(|| {
                        ApiError::not_found(format!("session {id} has no message {seq}"))
                    })?;
                // The bytes its frames carried: their payloads, as they were on the wire;
                // for a message wstap wrote, its frames as written.
                let written = message.message.wire.as_ref();
                let wire = match (message.first_frame, message.last_frame) {
                    _ if written.is_some() => written.map(|w| (w.bytes.clone(), w.truncated)),
                    (Some(first), Some(last)) if last >= first => {
                        let span = (last - first + 1).min(MAX_PAGE * 10) as usize;
                        let frames = capture.frames(Some(id), &all, Position::From(first), span)?;
                        let mut bytes = Vec::new();
                        let mut truncated = false;
                        for f in frames.iter().filter(|f| {
                            f.frame.dir == message.message.dir
                                && (f.frame.opcode < 8) == (message.message.opcode < 8)
                        }) {
                            bytes.extend_from_slice(&f.frame.payload.bytes);
                            truncated |= f.frame.payload.truncated;
                        }
                        Some((bytes, truncated))
                    }
                    _ => None,
                };
                let mut detail =
                    views::message_detail(&message, wire.as_ref().map(|(b, t)| (b.as_slice(), *t)));
                if let Some(decoded) = Decoder::of(capture, id, seq, seq)?.decode(&message) {
                    detail["decoded"] = decoded.to_json();
                }
                Ok(detail)
            })
            .await?;
        Ok(json_reply(&value))
    }

    /// The session's calls paired with their answers (by message number), latency
    /// figures per name, and the calls never answered.
    async fn calls(&self, id: u64) -> Result<Response<Body>, ApiError> {
        let value = self
            .store
            .read(move |capture| {
                session_of(capture, id)?;
                let calls = capture.calls(id)?;
                let mut value = calls.to_json();
                value["view"] = json!(calls.view.map(|v| v.name()));
                Ok(value)
            })
            .await?;
        Ok(json_reply(&value))
    }

    /// Messages and bytes per slice of the session's time, each direction.
    async fn timeline(&self, id: u64) -> Result<Response<Body>, ApiError> {
        let value = self
            .store
            .read(move |capture| {
                let session = session_of(capture, id)?;
                let end = match session.ended_us {
                    Some(end) => end,
                    None => now_us(),
                };
                let width = bucket_width(end - session.started_us);
                let buckets = capture.timeline(id, session.started_us, width)?;
                Ok(json!({
                    "start_us": session.started_us,
                    "end_us": end,
                    "width_us": width,
                    "buckets": buckets,
                }))
            })
            .await?;
        Ok(json_reply(&value))
    }

    /// A download of the capture, one session, or what a filter selects.
    async fn export(&self, query: Query) -> Result<Response<Body>, ApiError> {
        let filter = filter_of(&query)?;
        let session = query.number("session")?;
        let name = query.get("format").unwrap_or("json");
        let format = Format::from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!("format must be ndjson, json or har, not {name:?}"))
        })?;
        let bytes = self
            .store
            .read(move |capture| {
                let info = capture.info()?;
                let time = chrono_time(info.started_us);
                let what = Export {
                    format,
                    session,
                    filter: Some(&filter),
                    redaction: &Redaction::default(),
                    header: TraceHeader::new(info.writer, time),
                    version: env!("CARGO_PKG_VERSION"),
                    proto_schema: None,
                };
                export::export(capture, &what).map_err(|e| match e {
                    wstap_store::StoreError::Export(export::ExportError::NoSuchSession(n)) => {
                        ApiError::not_found(format!("no session {n}"))
                    }
                    other => ApiError::store(&other),
                })
            })
            .await?;
        let base = match session {
            Some(n) => format!("wstap-session-{n}"),
            None => "wstap-capture".to_owned(),
        };
        let file = format!("{base}.{}", format.extension());
        Ok(download(format.media_type(), &file, bytes))
    }
}

/// A page of an unfiltered view: rows from position `index` on (a row's index is its
/// position).
fn page(
    capture: &Capture,
    rows: Rows,
    id: u64,
    index: u64,
    limit: u64,
) -> Result<Vec<Value>, ApiError> {
    let all = Filter::default();
    let at = Position::From(index);
    Ok(match rows {
        Rows::Frames => capture
            .frames(Some(id), &all, at, limit as usize)?
            .iter()
            .map(|f| views::frame_row(f.seq, f))
            .collect(),
        Rows::Messages => {
            let messages = capture.messages(Some(id), &all, at, limit as usize)?;
            let mut decoder = Decoder::of_page(capture, id, &messages)?;
            messages
                .iter()
                .map(|m| decoder.row(views::message_row(m.seq, m), m))
                .collect()
        }
    })
}

/// Decodes a page's messages with their session's view. A byte-stream view (MQTT) reads
/// each message as the capture's filters do: the packets that end in it, joined across
/// messages by the writer, so a page may start anywhere; other views read the page in
/// order (a Socket.IO packet and its attachments on one page are joined).
enum Decoder {
    /// The session has no view.
    Plain,
    /// A byte-stream view, with the page's joined packets by message number.
    Stream(View, std::collections::HashMap<u64, Vec<u8>>),
    /// Any other view.
    Ordered(Box<SessionDecoder>),
}

impl Decoder {
    /// The decoder for session `id`'s messages numbered `from` to `to`.
    fn of(capture: &Capture, id: u64, from: u64, to: u64) -> Result<Decoder, ApiError> {
        let Some(session) = capture.session(id)? else {
            return Ok(Decoder::Plain);
        };
        let url = session.url.as_deref().unwrap_or_default();
        Ok(match session.view {
            None => Decoder::Plain,
            Some(view @ View::Mqtt) => Decoder::Stream(view, capture.stream_packets(id, from, to)?),
            Some(view @ View::Protobuf) => Decoder::Ordered(Box::new(
                SessionDecoder::new(Some(view)).with_schema(capture.proto_schema()?),
            )),
            Some(view) => Decoder::Ordered(Box::new(SessionDecoder::new(Some(view)).with_url(url))),
        })
    }

    /// The page's decoder: `messages` are its rows.
    fn of_page(
        capture: &Capture,
        id: u64,
        messages: &[wstap_store::StoredMessage],
    ) -> Result<Decoder, ApiError> {
        let from = messages.first().map_or(0, |m| m.seq);
        let to = messages.last().map_or(0, |m| m.seq);
        Decoder::of(capture, id, from, to)
    }

    /// Message `stored`, decoded, when its session has a view and it is a data message.
    fn decode(&mut self, stored: &wstap_store::StoredMessage) -> Option<wstap_views::Decoded> {
        let m = &stored.message;
        if m.opcode != 1 && m.opcode != 2 {
            return None;
        }
        let text = m.opcode == 1;
        match self {
            Decoder::Plain => None,
            Decoder::Stream(view, packets) => {
                let packets = packets.get(&stored.seq).map(Vec::as_slice);
                Some(wstap_views::decode_packets(
                    *view,
                    &m.payload.bytes,
                    packets,
                    text,
                ))
            }
            Decoder::Ordered(decoder) => {
                let decoded = decoder.decode(m.dir, &m.payload.bytes, text);
                if m.payload.truncated || m.payload.dropped {
                    decoder.lose(m.dir);
                }
                Some(decoded)
            }
        }
    }

    /// `row` with the message's decoded summary, when it has one.
    fn row(&mut self, mut row: Value, stored: &wstap_store::StoredMessage) -> Value {
        if let Some(decoded) = self.decode(stored) {
            views::add_decoded(&mut row, &decoded);
        }
        row
    }
}

/// A page of a filtered view: the rows at `positions` (the filter's matches from `index`
/// on), read by position without running the filter again, numbered from `index`.
fn page_at(
    capture: &Capture,
    rows: Rows,
    id: u64,
    positions: &[u64],
    index: u64,
) -> Result<Vec<Value>, ApiError> {
    let numbered = index..;
    Ok(match rows {
        Rows::Frames => capture
            .frames_at(id, positions)?
            .iter()
            .zip(numbered)
            .map(|(f, i)| views::frame_row(i, f))
            .collect(),
        Rows::Messages => {
            let messages = capture.messages_at(id, positions)?;
            let mut decoder = Decoder::of_page(capture, id, &messages)?;
            messages
                .iter()
                .zip(numbered)
                .map(|(m, i)| decoder.row(views::message_row(i, m), m))
                .collect()
        }
    })
}

/// Session `id`, or a 404 that says there is none.
fn session_of(capture: &Capture, id: u64) -> Result<wstap_store::SessionRow, ApiError> {
    capture
        .session(id)?
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))
}

/// The `filter` parameter, parsed; a parse error says where.
fn filter_of(query: &Query) -> Result<Filter, ApiError> {
    Filter::parse(query.get("filter").unwrap_or("")).map_err(|e| ApiError::filter(&e))
}

/// The `index` and `limit` parameters.
fn page_of(query: &Query) -> Result<(u64, u64), ApiError> {
    let index = query.number("index")?.unwrap_or(0);
    let limit = query.number("limit")?.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    Ok((index, limit))
}

/// A slice of time for a timeline of `span_us`: about [`TIMELINE_BUCKETS`] of them, each
/// a round 1, 2 or 5 times a power of ten µs, and at least a millisecond.
fn bucket_width(span_us: i64) -> i64 {
    let wanted = (span_us / TIMELINE_BUCKETS).max(1000);
    let mut power = 1000i64;
    loop {
        for step in [1, 2, 5] {
            let width = step * power;
            if width >= wanted {
                return width;
            }
        }
        power = power.saturating_mul(10);
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn chrono_time(us: i64) -> chrono::DateTime<chrono::Utc> {
    wstap_trace::convert::to_utc(wstap_wire::Timestamp(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_slices_are_round_and_about_150_to_a_session() {
        assert_eq!(bucket_width(0), 1000, "a millisecond at least");
        assert_eq!(bucket_width(3_550_000), 50_000);
        assert_eq!(bucket_width(60_000_000), 500_000);
        assert_eq!(bucket_width(3_600_000_000), 50_000_000);
        for span in [1_000_000i64, 7_777_777, 86_400_000_000] {
            let buckets = span / bucket_width(span);
            assert!((50..=150).contains(&buckets), "{span}: {buckets}");
        }
    }
}

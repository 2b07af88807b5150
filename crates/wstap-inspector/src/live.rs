//! The live feed: what each commit of the capture changed, as server-sent events.
//!
//! The capture writer tells a [`LiveFeed`] of every commit; each page that listens gets
//! `commit` events, at most four a second (commits in between are gathered into one),
//! with the rows of the sessions they changed (new rows, new counts) and the last event
//! number, so the page adds what is new and fetches only
//! records it does not have. A page that falls too far behind gets `resync` and reloads
//! its lists once. A comment every 15 s keeps idle connections open through proxies.
//! While a proxy runs, `intercept` events say at once that the breakpoints or the held
//! messages changed (not at the next commit: a held message waits for a person).

use crate::reply::{response, Body};
use crate::store::Store;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use wstap_store::bound::CaptureSize;
use wstap_store::Committed;

/// Commits kept for pages that are slow to read them.
const FEED_BACKLOG: usize = 1024;
/// The last event of a feed: the capture is finished, or the inspector stops.
const END: &str = "event: end\ndata: {}\n\n";
/// The breakpoints or held messages changed: the page asks for them again.
const INTERCEPT: &str = "event: intercept\ndata: {}\n\n";
/// Session rows one commit event carries at most.
const MAX_ROWS_PER_COMMIT: usize = 200;
/// Commits are sent to a page at most this often, gathered.
const GATHER: Duration = Duration::from_millis(250);
/// How often an idle feed says it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where the capture writer announces its commits.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    commits: broadcast::Sender<Arc<Committed>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed::new()
    }
}

impl LiveFeed {
    /// A feed no page listens to yet.
    pub fn new() -> LiveFeed {
        let (commits, _) = broadcast::channel(FEED_BACKLOG);
        LiveFeed { commits }
    }

    /// The hook to give `CaptureWriter::on_commit`: cheap, and it never blocks the writer.
    pub fn hook(&self) -> impl FnMut(&Committed) + Send + 'static {
        let commits = self.commits.clone();
        move |committed| {
            if commits.receiver_count() > 0 {
                let _ = commits.send(Arc::new(committed.clone()));
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.commits.subscribe()
    }
}

/// The `text/event-stream` answer of `/api/live`: a task follows the feed (if any) and
/// writes events until the page goes away, or says `end` when the inspector stops.
pub fn stream(
    feed: Option<&LiveFeed>,
    store: Arc<Store>,
    intercept: Option<watch::Receiver<u64>>,
    stop: watch::Receiver<bool>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let commits = feed.map(LiveFeed::subscribe);
    tokio::spawn(follow(commits, store, intercept, tx, stop));
    let mut reply = response(
        StatusCode::OK,
        "text/event-stream",
        ChannelBody { rx }.boxed(),
    );
    reply.headers_mut().insert(
        "x-accel-buffering",
        hyper::header::HeaderValue::from_static("no"),
    );
    reply
}

async fn follow(
    mut commits: Option<broadcast::Receiver<Arc<Committed>>>,
    store: Arc<Store>,
    mut intercept: Option<watch::Receiver<u64>>,
    tx: mpsc::Sender<Bytes>,
    mut stop: watch::Receiver<bool>,
) {
    let live = commits.is_some();
    let hello = format!("event: hello\ndata: {}\n\n", json!({ "live": live }));
    if tx.send(Bytes::from(hello)).await.is_err() {
        return;
    }
    // Commits are gathered and sent at most every GATHER: a page needs no more, and each
    // event costs a read of the capture.
    let mut gathered: Option<Committed> = None;
    let start = tokio::time::Instant::now();
    let mut sent_at = start.checked_sub(GATHER).unwrap_or(start);
    loop {
        let next = async {
            match commits.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let due = sent_at + GATHER;
        let event = tokio::select! {
            received = next => match received {
                Ok(committed) => {
                    gather(&mut gathered, &committed);
                    if tokio::time::Instant::now() < due {
                        continue;
                    }
                    sent_at = tokio::time::Instant::now();
                    match gathered.take() {
                        Some(all) => commit_event(&store, all).await,
                        None => None,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => Some("event: resync\ndata: {}\n\n".to_owned()),
                Err(broadcast::error::RecvError::Closed) => Some(END.to_owned()),
            },
            _ = tokio::time::sleep_until(due), if gathered.is_some() => {
                sent_at = tokio::time::Instant::now();
                match gathered.take() {
                    Some(all) => commit_event(&store, all).await,
                    None => None,
                }
            }
            changed = changed(&mut intercept) => match changed {
                true => Some(INTERCEPT.to_owned()),
                // The registry is gone (the proxy stopped): nothing more will change.
                false => {
                    intercept = None;
                    None
                }
            },
            _ = tokio::time::sleep(KEEP_ALIVE) => Some(": alive\n\n".to_owned()),
            _ = stop.changed() => Some(END.to_owned()),
            _ = tx.closed() => return,
        };
        let Some(event) = event else { continue };
        // After `end` the stream finishes cleanly, and the page stops reconnecting.
        if tx.send(Bytes::from(event.clone())).await.is_err() || event == END {
            return;
        }
    }
}

/// Whether the breakpoints or the held messages changed (`false`: they never will again).
async fn changed(intercept: &mut Option<watch::Receiver<u64>>) -> bool {
    match intercept {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Adds a commit to those not sent yet: the last event, and every session changed.
fn gather(gathered: &mut Option<Committed>, committed: &Committed) {
    let all = gathered.get_or_insert_with(Committed::default);
    all.last_event = all.last_event.max(committed.last_event);
    all.sessions.extend_from_slice(&committed.sessions);
    all.sessions.sort_unstable();
    all.sessions.dedup();
    all.size = committed.size;
}

/// One commit as an event: the changed sessions' rows, read after the commit. A commit
/// that changed very many sessions (a load test) says only that: the page reloads what
/// it shows instead of receiving thousands of rows it does not show.
async fn commit_event(store: &Arc<Store>, committed: Committed) -> Option<String> {
    if committed.sessions.len() > MAX_ROWS_PER_COMMIT {
        let data = json!({
            "last_event": committed.last_event,
            "sessions": [],
            "many": true,
            "size": size_json(&committed.size),
        });
        return Some(format!("event: commit\ndata: {data}\n\n"));
    }
    let ids = committed.sessions.clone();
    let rows = store
        .read(move |capture| {
            let mut rows = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(row) = capture.session(id)? {
                    rows.push(row);
                }
            }
            Ok(rows)
        })
        .await
        .ok()?;
    let data = json!({
        "last_event": committed.last_event,
        "sessions": rows,
        "size": size_json(&committed.size),
    });
    Some(format!("event: commit\ndata: {data}\n\n"))
}

/// A capture's size against its bound, as the page shows it.
pub(crate) fn size_json(size: &CaptureSize) -> serde_json::Value {
    json!({ "bytes": size.bytes, "bound": size.bound, "dropped": size.dropped })
}

/// A response body fed by a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

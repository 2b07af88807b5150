//! Where captures live, which one a command means, and how old ones are let go.
//!
//! By default wstap records every run to `$WSTAP_HOME/captures/<start time>` (else
//! `~/.wstap/captures/...`). At start it deletes the oldest captures there until what is
//! left fits `--capture-keep`; a capture being written by another wstap is never touched.
//! Commands that read a capture take one by path, or the newest there is. A source for
//! `export` may also be an NDJSON trace: [`Source::open`] tells which.

use crate::AppError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use wstap_store::{layout, Capture};
use wstap_trace::{Event, TraceError, TraceReader};

/// The folder captures go to by default.
pub fn root() -> Result<PathBuf, AppError> {
    wstap_proxy::tls::ca::default_dir()
        .map(|home| home.join("captures"))
        .ok_or(AppError::NoHome)
}

/// A new capture's folder under `root`, named for the time it starts.
pub fn new_path(root: &Path) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y-%m-%d_%H-%M-%S").to_string();
    let mut path = root.join(&stamp);
    let mut n = 2;
    while path.exists() {
        path = root.join(format!("{stamp}-{n}"));
        n += 1;
    }
    path
}

/// The captures under `root`, oldest first (their names sort by time).
fn all(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| layout::is_capture(path))
        .collect();
    found.sort();
    found
}

/// The newest capture under the default root.
pub fn newest() -> Result<PathBuf, AppError> {
    let root = root()?;
    all(&root).pop().ok_or_else(|| {
        AppError::BadInput(format!(
            "no capture yet in {}: run wstap to make one, or name a capture",
            root.display()
        ))
    })
}

/// The capture a command names, or the newest.
pub fn chosen(path: Option<&Path>) -> Result<PathBuf, AppError> {
    match path {
        Some(path) => Ok(path.to_owned()),
        None => newest(),
    }
}

/// Bytes a folder's files take.
fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

/// Deletes the oldest captures under `root` until the rest take at most `keep` bytes,
/// saying so for each. Captures being written are neither deleted nor counted.
pub fn prune(root: &Path, keep: u64, quiet: bool) {
    let mut captures: Vec<(PathBuf, u64)> = all(root)
        .into_iter()
        .filter(|path| !layout::is_being_written(path))
        .map(|path| {
            let size = size_of(&path);
            (path, size)
        })
        .collect();
    let mut total: u64 = captures.iter().map(|(_, size)| size).sum();
    captures.reverse();
    while total > keep {
        let Some((oldest, size)) = captures.pop() else {
            break;
        };
        match std::fs::remove_dir_all(&oldest) {
            Ok(()) => {
                total -= size;
                if !quiet {
                    eprintln!(
                        "wstap: deleted the oldest capture {} ({}) to keep captures within {} (--capture-keep)",
                        oldest.display(),
                        human_size(size),
                        human_size(keep)
                    );
                }
            }
            Err(e) => {
                eprintln!(
                    "wstap: warning: cannot delete old capture {}: {e}",
                    oldest.display()
                );
                break;
            }
        }
    }
}

/// `2.0 GiB`, `512.0 KiB`, `10 B`.
pub fn human_size(bytes: u64) -> String {
    wstap_store::bound::size_text(bytes)
}

/// `--capture-keep`: a size like `2GiB`, `500MB`, `0` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    wstap_filter::value::size(&compact)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("expected a size like 2GiB, 500MiB or 0, not {text:?}"))
}

/// What a command reads events from.
pub enum Source {
    /// A capture.
    Capture(Capture),
    /// An NDJSON trace file.
    Trace(PathBuf),
}

impl Source {
    /// Opens `path` as a capture or a trace, whichever it is; anything else is an error
    /// that says what it is not.
    pub fn open(path: &Path) -> Result<Source, AppError> {
        if path.is_dir() || path.file_name().is_some_and(|n| n == layout::DATABASE) {
            return Ok(Source::Capture(open_capture(path)?));
        }
        let mut start = [0u8; 64];
        let read = File::open(path)
            .and_then(|mut f| f.read(&mut start))
            .map_err(|e| AppError::BadInput(format!("cannot read {}: {e}", path.display())))?;
        let head = String::from_utf8_lossy(&start[..read]);
        if head.trim_start().starts_with("{\"type\":\"trace\"") {
            Ok(Source::Trace(path.to_owned()))
        } else if start.starts_with(b"SQLite format 3\0") {
            Err(AppError::BadInput(format!(
                "{} is an SQLite database; a capture is the folder that holds capture.db",
                path.display()
            )))
        } else {
            Err(AppError::BadInput(format!(
                "{} is neither a wstap capture (a folder with capture.db) nor an NDJSON trace",
                path.display()
            )))
        }
    }

    /// Calls `each` with every event (of one session, when given) in order.
    pub fn for_each_event(
        &self,
        session: Option<u64>,
        mut each: impl FnMut(Event) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        match self {
            Source::Capture(capture) => {
                let mut failed = None;
                let read = capture.for_each_event(session, |event| {
                    if failed.is_none() {
                        if let Err(e) = each(event) {
                            failed = Some(e);
                        }
                    }
                    Ok(())
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                read.map_err(|e| AppError::BadInput(e.to_string()))
            }
            Source::Trace(path) => {
                for event in read_trace(path)? {
                    let event = event?;
                    if session.is_none() || event.session() == session {
                        each(event)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl wstap_store::export::EventSource for Source {
    type Error = AppError;

    fn for_each_event(
        &self,
        session: Option<u64>,
        each: &mut dyn FnMut(Event) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        Source::for_each_event(self, session, each)
    }

    fn recorded_views(
        &self,
    ) -> Result<std::collections::HashMap<u64, Option<wstap_views::View>>, AppError> {
        match self {
            Source::Capture(capture) => capture
                .recorded_views()
                .map_err(|e| AppError::BadInput(e.to_string())),
            Source::Trace(_) => Ok(std::collections::HashMap::new()),
        }
    }

    fn view_of(&self, session: u64) -> Option<Option<wstap_views::View>> {
        match self {
            Source::Capture(capture) => wstap_store::export::EventSource::view_of(capture, session),
            Source::Trace(_) => None,
        }
    }

    fn proto_schema(&self) -> Result<Option<wstap_views::ProtoSchema>, AppError> {
        match self {
            Source::Capture(capture) => capture
                .proto_schema()
                .map_err(|e| AppError::BadInput(e.to_string())),
            Source::Trace(_) => Ok(None),
        }
    }
}

/// Opens a capture; every way of failing is bad input.
pub fn open_capture(path: &Path) -> Result<Capture, AppError> {
    Capture::open(path).map_err(|e| AppError::BadInput(e.to_string()))
}

/// The events of the trace at `path`, warning (once) about a torn last line.
pub fn read_trace(path: &Path) -> Result<impl Iterator<Item = Result<Event, AppError>>, AppError> {
    let file = File::open(path)
        .map_err(|e| AppError::BadInput(format!("cannot open {}: {e}", path.display())))?;
    let (_, reader) = TraceReader::new(BufReader::new(file) as BufReader<File>)
        .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
    let shown = path.display().to_string();
    Ok(reader.filter_map(move |item| match item {
        Ok(event) => Some(Ok(event)),
        Err(e @ TraceError::TornLastLine { .. }) => {
            eprintln!("wstap: warning: {shown}: {e}; reading the lines before it");
            None
        }
        Err(e) => Some(Err(AppError::BadInput(format!("{shown}: {e}")))),
    }))
}

/// Every message of `session`, in order (held in memory: for the commands that compare or
/// play a whole session).
pub fn session_messages(
    capture: &Capture,
    session: u64,
) -> Result<Vec<wstap_store::StoredMessage>, AppError> {
    let bad = |e: wstap_store::StoreError| AppError::BadInput(format!("session {session}: {e}"));
    if capture.session(session).map_err(bad)?.is_none() {
        return Err(AppError::NoSuchSession(session));
    }
    let all = wstap_filter::Filter::default();
    let mut messages = Vec::new();
    let mut position = wstap_store::Position::From(0);
    loop {
        let page = capture
            .messages(Some(session), &all, position, 1000)
            .map_err(bad)?;
        let Some(last) = page.last() else {
            return Ok(messages);
        };
        position = wstap_store::Position::From(last.seq + 1);
        messages.extend(page);
    }
}

//! One end of a WebSocket that wstap itself plays (the mock's server, the replay's
//! client): the opening handshake's heads read with the proxy's own parser, its own
//! messages framed, and the other end's decoded, whole and inflated, by the wire crate.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use wstap_proxy::{Head, HeadError, MAX_HEAD};
use wstap_wire::analyzer::{AnalyzerConfig, MessageRecord, StreamAnalyzer};
use wstap_wire::mask::random_key;
use wstap_wire::{DeflateParams, Deflater, Direction, FrameBuilder, Opcode, Record, Timestamp};

/// The largest message of the other end kept whole.
const MAX_MESSAGE: usize = 16 << 20;

/// See the module documentation.
pub struct Endpoint {
    /// The direction this end sends in.
    sends: Direction,
    deflater: Option<Deflater>,
    analyzer: StreamAnalyzer,
}

impl Endpoint {
    /// The end that sends in direction `sends` on a connection that agreed `deflate`.
    pub fn new(sends: Direction, deflate: Option<DeflateParams>) -> Endpoint {
        let hears = match sends {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        };
        let config = AnalyzerConfig {
            max_frame_capture: MAX_MESSAGE,
            max_message_capture: MAX_MESSAGE,
            deflate,
            other_extension_bits: 0,
        };
        Endpoint {
            sends,
            deflater: deflate.map(|params| Deflater::new(params, sends)),
            analyzer: StreamAnalyzer::new(hears, config),
        }
    }

    /// The other end's messages that `bytes` completed, in order.
    pub fn heard(&mut self, bytes: &[u8]) -> Vec<MessageRecord> {
        let mut records = Vec::new();
        let now = Timestamp(chrono::Utc::now().timestamp_micros());
        self.analyzer.feed(bytes, now, &mut records);
        records
            .into_iter()
            .filter_map(|record| match record {
                Record::Message(message) => Some(message),
                Record::Frame(_) => None,
            })
            .collect()
    }

    /// One whole message as one frame: masked when this end is the client, a data
    /// message compressed when permessage-deflate was agreed.
    pub fn frame(&mut self, opcode: Opcode, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut builder = FrameBuilder::new(opcode);
        if self.sends == Direction::ClientToServer {
            builder = builder.mask(random_key());
        }
        match (&mut self.deflater, opcode) {
            (Some(deflater), Opcode::Text | Opcode::Binary) => {
                let mut compressed = Vec::new();
                deflater
                    .compress(data, &mut compressed)
                    .map_err(std::io::Error::other)?;
                Ok(builder.rsv1(true).encode(&compressed))
            }
            _ => Ok(builder.encode(data)),
        }
    }
}

/// Reads from `stream` until `take` (`wstap_proxy::take_request` or `take_response`)
/// finds a whole head at the front of what was read, within `wait` when one is given:
/// the head, and the bytes read past it; or why not, on one line.
pub async fn read_head<S: AsyncRead + Unpin, L>(
    stream: &mut S,
    take: fn(&mut BytesMut) -> Result<Option<Head<L>>, HeadError>,
    wait: Option<Duration>,
) -> Result<(Head<L>, BytesMut), String> {
    let read = async {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if let Some(head) = take(&mut buf).map_err(|e| e.to_string())? {
                return Ok((head, buf));
            }
            if buf.len() > MAX_HEAD {
                return Err(HeadError::TooLarge.to_string());
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("reading the head: {e}"))?;
            if n == 0 {
                return Err("the connection closed before its head ended".to_owned());
            }
        }
    };
    match wait {
        Some(wait) => tokio::time::timeout(wait, read)
            .await
            .map_err(|_| format!("no complete head within {} s", wait.as_secs()))?,
        None => read.await,
    }
}

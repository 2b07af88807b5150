//! `wstap demo`: the proxy, an in-process chat server and three scripted clients (Ronald,
//! John and Adam) talking through it, so the live log can be seen with nothing else
//! installed.
//!
//! The chat server greets (`Welcome NAME.`), announces (`NAME joined.`, `NAME left.`) and
//! relays (`NAME says: ...`) to everyone. The clients reach it through the proxy with
//! `CONNECT`, exactly as a browser or a proxied library would.

use crate::run::start;
use crate::{AppError, RunArgs};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Options of `wstap demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long the scripted chat takes, in seconds; the demo then exits by itself.
    #[arg(long, value_name = "SECS", default_value_t = 4.0)]
    pub duration: f64,
    /// Address for the demo's proxy (port 0: any free port).
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Also write the demo's events to this trace file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Show full handshake headers.
    #[arg(short, long)]
    pub verbose: bool,
    /// Do not record the demo to a capture (and so serve no inspector).
    #[arg(long)]
    pub no_capture: bool,
    /// Serve the web inspector here (default 127.0.0.1:8889).
    #[arg(long, value_name = "ADDR", env = "WSTAP_WEB")]
    pub web: Option<SocketAddr>,
    /// Do not serve the web inspector.
    #[arg(long)]
    pub no_web: bool,
}

type Peers = Arc<Mutex<Vec<(String, mpsc::UnboundedSender<String>)>>>;

/// Runs the demo.
pub async fn demo(args: DemoArgs) -> Result<(), AppError> {
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0) {
        return Err(AppError::Demo(
            "--duration must be between 0 and 3600 seconds".into(),
        ));
    }
    // The demo is plain ws://; it needs no CA.
    let listen = args.listen.to_string();
    let web = args.web.map(|web| web.to_string());
    let trace = args
        .trace
        .as_ref()
        .map(|t| t.to_string_lossy().into_owned());
    let mut flags = vec!["--listen", &listen, "--no-tls-intercept", "--grace", "1"];
    flags.extend(args.no_capture.then_some("--no-capture"));
    flags.extend(args.no_web.then_some("--no-web"));
    flags.extend(args.verbose.then_some("--verbose"));
    if let Some(web) = &web {
        flags.extend(["--web", web.as_str()]);
    }
    if let Some(trace) = &trace {
        flags.extend(["--trace", trace.as_str()]);
    }
    let run_args = RunArgs::embedded(flags)?;
    let started = start(&run_args).await?;
    let proxy = *started
        .proxy
        .local_addrs()
        .first()
        .ok_or_else(|| AppError::Demo("the proxy has no address".into()))?;
    let chat = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| AppError::Demo(e.to_string()))?;
    let chat_addr = chat
        .local_addr()
        .map_err(|e| AppError::Demo(e.to_string()))?;
    eprintln!("wstap demo: proxy on http://{proxy}, chat server on ws://{chat_addr}/chat");
    if let Some(inspector) = &started.inspector {
        crate::web::announce(inspector);
    }
    tokio::spawn(chat_server(chat));

    let step = Duration::from_secs_f64(args.duration / 10.0);
    let script = run_script(proxy, chat_addr, step);
    let result = tokio::time::timeout(
        Duration::from_secs_f64(args.duration) + Duration::from_secs(10),
        script,
    )
    .await;
    // Let the last frames reach the log before stopping.
    tokio::time::sleep(Duration::from_millis(100)).await;
    started.stop(Duration::from_secs(1), false).await?;
    match result {
        Ok(result) => result,
        Err(_) => Err(AppError::Demo(
            "the scripted chat did not finish in time".into(),
        )),
    }
}

async fn run_script(proxy: SocketAddr, chat: SocketAddr, step: Duration) -> Result<(), AppError> {
    let mut ronald = Chatter::join(proxy, chat, "Ronald").await?;
    tokio::time::sleep(step).await;
    let mut john = Chatter::join(proxy, chat, "John").await?;
    tokio::time::sleep(step).await;
    ronald.say("Hi John!").await?;
    tokio::time::sleep(step).await;
    let mut adam = Chatter::join(proxy, chat, "Adam").await?;
    tokio::time::sleep(step).await;
    john.say("Hello Ronald, hello Adam. Anyone up for lunch?")
        .await?;
    tokio::time::sleep(step).await;
    adam.ping(b"are you there?").await?;
    tokio::time::sleep(step).await;
    adam.say("Sorry, can't stay. Bye!").await?;
    tokio::time::sleep(step).await;
    adam.leave(CloseCode::Normal, "bye").await?;
    tokio::time::sleep(step).await;
    john.leave(CloseCode::Library(4001), "gone to lunch")
        .await?;
    tokio::time::sleep(step).await;
    ronald.leave(CloseCode::Away, "logging off").await?;
    Ok(())
}

/// One scripted client: writes on the socket, while a task drains what the server sends.
struct Chatter {
    sink: futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>,
    reader: tokio::task::JoinHandle<()>,
}

impl Chatter {
    async fn join(proxy: SocketAddr, chat: SocketAddr, name: &str) -> Result<Chatter, AppError> {
        let stream = connect_through(proxy, chat).await?;
        let url = format!("ws://{chat}/chat?name={name}");
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| AppError::Demo(format!("{name} could not connect: {e}")))?;
        let (sink, mut stream) = ws.split();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        Ok(Chatter { sink, reader })
    }

    async fn say(&mut self, text: &str) -> Result<(), AppError> {
        self.send(Message::text(text)).await
    }

    async fn ping(&mut self, data: &[u8]) -> Result<(), AppError> {
        self.send(Message::Ping(data.to_vec().into())).await
    }

    async fn leave(mut self, code: CloseCode, reason: &str) -> Result<(), AppError> {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.send(Message::Close(Some(frame))).await?;
        // The reader ends when the server's close arrives and the connection closes.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.reader).await;
        Ok(())
    }

    async fn send(&mut self, message: Message) -> Result<(), AppError> {
        self.sink
            .send(message)
            .await
            .map_err(|e| AppError::Demo(e.to_string()))
    }
}

/// Opens a CONNECT tunnel to `target` through the proxy at `proxy`.
async fn connect_through(proxy: SocketAddr, target: SocketAddr) -> Result<TcpStream, AppError> {
    let fail = |e: String| AppError::Demo(format!("CONNECT through {proxy}: {e}"));
    let mut stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    // Read the proxy's answer byte by byte, so no tunnelled byte is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.map_err(|e| fail(e.to_string()))?;
        head.push(byte);
        if head.len() > 8192 {
            return Err(fail("answer too long".into()));
        }
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(fail(String::from_utf8_lossy(&head).trim().to_owned()));
    }
    Ok(stream)
}

async fn chat_server(listener: TcpListener) {
    let peers: Peers = Arc::default();
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(chat_session(stream, Arc::clone(&peers)));
    }
}

fn broadcast(peers: &Peers, text: &str) {
    if let Ok(peers) = peers.lock() {
        for (_, tx) in peers.iter() {
            let _ = tx.send(text.to_owned());
        }
    }
}

async fn chat_session(stream: TcpStream, peers: Peers) {
    let mut name = String::from("someone");
    // The error type is tungstenite's own, and this callback never returns it.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        if let Some(query) = request.uri().query() {
            if let Some(n) = query.split('&').find_map(|kv| kv.strip_prefix("name=")) {
                name = n.to_owned();
            }
        }
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    broadcast(&peers, &format!("{name} joined."));
    if let Ok(mut list) = peers.lock() {
        list.push((name.clone(), tx.clone()));
    }
    let _ = tx.send(format!("Welcome {name}."));
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => broadcast(&peers, &format!("{name} says: {}", text.as_str())),
            Message::Close(_) => break,
            _ => {}
        }
    }
    if let Ok(mut list) = peers.lock() {
        list.retain(|(n, _)| n != &name);
    }
    broadcast(&peers, &format!("{name} left."));
    drop(tx);
    let _ = writer.await;
}

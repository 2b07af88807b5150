//! `wstap demo`: the proxy, an in-process chat server and three scripted clients (Ronald,
//! John and Adam) talking through it, so the live log can be seen with nothing else
//! installed.
//!
//! The chat server greets (`Welcome NAME.`), announces (`NAME joined.`, `NAME left.`) and
//! relays (`NAME says: ...`) to everyone. The clients reach it through the proxy with
//! `CONNECT`, exactly as a browser or a proxied library would. With `--app signalr` or
//! `--app socketio` the same chat speaks that protocol ([`app`]).

mod app;

use crate::run::start;
use crate::{AppError, RunArgs};
use app::{App, Said};
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
    /// Record the demo in this capture folder (default: a new one under ~/.wstap/captures).
    #[arg(long, value_name = "DIR", conflicts_with = "no_capture")]
    pub capture: Option<PathBuf>,
    /// Serve the web inspector here (default 127.0.0.1:8889).
    #[arg(long, value_name = "ADDR", env = "WSTAP_WEB")]
    pub web: Option<SocketAddr>,
    /// Do not serve the web inspector.
    #[arg(long)]
    pub no_web: bool,
    /// What the chat speaks: plain text, the SignalR hub protocol or Socket.IO.
    #[arg(long, value_enum, default_value_t = App::Plain)]
    pub app: App,
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
    let capture = args
        .capture
        .as_ref()
        .map(|c| c.to_string_lossy().into_owned());
    if let Some(capture) = &capture {
        flags.extend(["--capture", capture.as_str()]);
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
    let app = args.app;
    eprintln!(
        "wstap demo: proxy on http://{proxy}, chat server on ws://{chat_addr}{}",
        app.path("NAME")
    );
    if let Some(inspector) = &started.inspector {
        crate::web::announce(inspector);
    }
    tokio::spawn(chat_server(chat, app));

    let step = Duration::from_secs_f64(args.duration / 10.0);
    let script = run_script(proxy, chat_addr, step, app);
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

async fn run_script(
    proxy: SocketAddr,
    chat: SocketAddr,
    step: Duration,
    app: App,
) -> Result<(), AppError> {
    let mut ronald = Chatter::join(proxy, chat, "Ronald", app).await?;
    tokio::time::sleep(step).await;
    let mut john = Chatter::join(proxy, chat, "John", app).await?;
    tokio::time::sleep(step).await;
    ronald.say("Hi John!").await?;
    tokio::time::sleep(step).await;
    let mut adam = Chatter::join(proxy, chat, "Adam", app).await?;
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

/// One scripted client: a task writes what it is given, another reads what the server
/// sends (answering the protocol's pings).
struct Chatter {
    app: App,
    name: String,
    calls: u32,
    out: mpsc::UnboundedSender<Message>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Chatter {
    async fn join(
        proxy: SocketAddr,
        chat: SocketAddr,
        name: &str,
        app: App,
    ) -> Result<Chatter, AppError> {
        let stream = connect_through(proxy, chat).await?;
        let url = format!("ws://{chat}{}", app.path(name));
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| AppError::Demo(format!("{name} could not connect: {e}")))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut queue) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                let last = message.is_close();
                if sink.send(message).await.is_err() || last {
                    break;
                }
            }
        });
        let answers = out.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = &message {
                    if let Some(answer) = app.client_answers(text.as_str()) {
                        let _ = answers.send(Message::text(answer));
                    }
                }
            }
        });
        for hello in app.client_hello() {
            let _ = out.send(Message::text(hello));
        }
        Ok(Chatter {
            app,
            name: name.to_owned(),
            calls: 0,
            out,
            reader,
            writer,
        })
    }

    async fn say(&mut self, text: &str) -> Result<(), AppError> {
        self.calls += 1;
        let said = self.app.client_says(self.calls, &self.name, text);
        self.send(Message::text(said))
    }

    async fn ping(&mut self, data: &[u8]) -> Result<(), AppError> {
        self.send(Message::Ping(data.to_vec().into()))
    }

    async fn leave(self, code: CloseCode, reason: &str) -> Result<(), AppError> {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.send(Message::Close(Some(frame)))?;
        // The reader ends when the server's close arrives and the connection closes.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.reader).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer).await;
        Ok(())
    }

    fn send(&self, message: Message) -> Result<(), AppError> {
        self.out
            .send(message)
            .map_err(|_| AppError::Demo(format!("{} lost the connection", self.name)))
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

async fn chat_server(listener: TcpListener, app: App) {
    let peers: Peers = Arc::default();
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(chat_session(stream, Arc::clone(&peers), app));
    }
}

fn broadcast(peers: &Peers, text: &str) {
    if let Ok(peers) = peers.lock() {
        for (_, tx) in peers.iter() {
            let _ = tx.send(text.to_owned());
        }
    }
}

async fn chat_session(stream: TcpStream, peers: Peers, app: App) {
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
    broadcast(&peers, &app.server_announces(&name, true));
    if let Ok(mut list) = peers.lock() {
        list.push((name.clone(), tx.clone()));
    }
    for welcome in app.server_welcome(&name) {
        let _ = tx.send(welcome);
    }
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
            Message::Text(text) => match app.server_reads(text.as_str()) {
                Said::Text { text, ack } => {
                    broadcast(&peers, &app.server_relays(&name, &text));
                    if let Some(answer) = ack.and_then(|ack| app.server_acks(&ack)) {
                        let _ = tx.send(answer);
                    }
                }
                Said::Answer(answers) => {
                    // The protocol's hello answered: then a ping of its own, to be seen.
                    for answer in answers.into_iter().chain(app.server_ping()) {
                        let _ = tx.send(answer);
                    }
                }
                Said::Nothing => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    if let Ok(mut list) = peers.lock() {
        list.retain(|(n, _)| n != &name);
    }
    broadcast(&peers, &app.server_announces(&name, false));
    drop(tx);
    let _ = writer.await;
}

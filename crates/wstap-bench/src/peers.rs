//! The peers of the benchmark: an echo server (plain and TLS) and clients that reach it
//! directly or through the proxy, all tokio-tungstenite, as a user's own peers would be.

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Any stream a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A client WebSocket over any stream.
pub type Ws = WebSocketStream<Box<dyn Io>>;

/// No message or frame size limits: the big-message scenario sends 256 MiB at once.
pub fn unlimited() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA of the benchmark's own and the echo server's TLS configuration.
pub struct Pki {
    /// The CA certificate, PEM, for `wstap --upstream-ca` and direct clients.
    pub ca_pem: PathBuf,
    /// The echo server's TLS configuration (certificate for localhost and 127.0.0.1).
    pub server: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// Makes the CA and the server certificate, writing the CA to `dir`, and the server's
    /// certificate and key beside it for the TLS floor relay's process
    /// ([`Pki::server_from`]).
    pub fn new(dir: &Path) -> Result<Pki, String> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let e = |e: rcgen::Error| e.to_string();
        let ca_key = KeyPair::generate().map_err(e)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).map_err(e)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().map_err(e)?;
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(e)?
            .signed_by(&key, &issuer)
            .map_err(e)?;
        let ca_pem = dir.join(CA_PEM);
        std::fs::write(&ca_pem, ca.pem()).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(SERVER_PEM), cert.pem()).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(SERVER_KEY_PEM), key.serialize_pem()).map_err(|e| e.to_string())?;
        Ok(Pki {
            ca_pem,
            server: Pki::server_from(dir)?,
        })
    }

    /// The echo server's TLS configuration, from the files [`Pki::new`] wrote to `dir`.
    pub fn server_from(dir: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let cert = CertificateDer::from_pem_slice(&read(SERVER_PEM)?).map_err(|e| e.to_string())?;
        let key =
            PrivateKeyDer::from_pem_slice(&read(SERVER_KEY_PEM)?).map_err(|e| e.to_string())?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(server))
    }

    /// The CA's file in `dir`, as [`Pki::new`] wrote it.
    pub fn ca_from(dir: &Path) -> PathBuf {
        dir.join(CA_PEM)
    }
}

/// The files of the benchmark's PKI.
const CA_PEM: &str = "bench-upstream-ca.pem";
const SERVER_PEM: &str = "bench-server.pem";
const SERVER_KEY_PEM: &str = "bench-server-key.pem";

/// A client TLS configuration trusting the certificates in `pem`.
pub fn client_tls(pem: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Starts an echo server on loopback (TLS when `tls` is given); returns its address.
pub async fn echo_server(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let io: Box<dyn Io> = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => Box::new(tls),
                        Err(_) => return,
                    },
                    None => Box::new(stream),
                };
                let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(io, Some(unlimited())).await
                else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                while let Some(Ok(msg)) = stream.next().await {
                    if (msg.is_binary() || msg.is_text()) && sink.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// How a client reaches the echo server.
#[derive(Clone)]
pub struct Route {
    /// The echo server.
    pub server: SocketAddr,
    /// The proxy, when going through it.
    pub proxy: Option<SocketAddr>,
    /// TLS client configuration, for wss.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How the proxy is asked to reach the server.
    pub mode: Mode,
}

/// How a client asks the proxy for the echo server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An HTTP `CONNECT` tunnel (forward mode).
    Connect,
    /// A SOCKS5 `CONNECT` (`--socks5`).
    Socks5,
    /// None: the proxy is a reverse listener for the server (`--reverse`).
    Reverse,
}

impl Mode {
    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Connect => "forward (CONNECT)",
            Mode::Socks5 => "SOCKS5",
            Mode::Reverse => "reverse",
        }
    }
}

/// Opens a WebSocket along `route`.
pub async fn connect(route: &Route) -> Result<Ws, String> {
    let target = route.proxy.unwrap_or(route.server);
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect {target}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let host = format!("localhost:{}", route.server.port());
    match (route.proxy, route.mode) {
        (None, _) | (Some(_), Mode::Reverse) => {}
        (Some(_), Mode::Connect) => http_connect(&mut stream, &host).await?,
        (Some(_), Mode::Socks5) => socks5_connect(&mut stream, route.server.port()).await?,
    }
    let io: Box<dyn Io> = match &route.tls {
        Some(config) => {
            let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let tls = TlsConnector::from(Arc::clone(config))
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Box::new(tls)
        }
        None => Box::new(stream),
    };
    let scheme = if route.tls.is_some() { "wss" } else { "ws" };
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("{scheme}://{host}/echo"),
        io,
        Some(unlimited()),
    )
    .await
    .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// Asks an HTTP proxy on `stream` for a tunnel to `host` and reads its `200`.
async fn http_connect(stream: &mut TcpStream, host: &str) -> Result<(), String> {
    let request = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(
            stream
                .read_u8()
                .await
                .map_err(|e| format!("CONNECT answer: {e}"))?,
        );
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "CONNECT refused: {}",
            String::from_utf8_lossy(&head)
        ));
    }
    Ok(())
}

/// Asks a SOCKS5 proxy on `stream` (no authentication) for `localhost:port`.
async fn socks5_connect(stream: &mut TcpStream, port: u16) -> Result<(), String> {
    let e = |e: std::io::Error| format!("SOCKS5: {e}");
    stream.write_all(&[5, 1, 0]).await.map_err(e)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.map_err(e)?;
    if choice != [5, 0] {
        return Err(format!("SOCKS5 method refused: {choice:?}"));
    }
    let mut request = vec![5, 1, 0, 3, 9];
    request.extend_from_slice(b"localhost");
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await.map_err(e)?;
    // wstap's replies carry an IPv4 address: ten bytes.
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.map_err(e)?;
    if reply[1] != 0 {
        return Err(format!("SOCKS5 CONNECT refused: reply {}", reply[1]));
    }
    Ok(())
}

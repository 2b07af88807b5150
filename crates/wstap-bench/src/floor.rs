//! The floor: the cheapest user-space CONNECT relay tokio can make, run as a process of its
//! own like wstap. It reads the CONNECT head, dials, answers 200 and then only copies
//! bytes (`copy_bidirectional`): no parsing after that, no tap, no trace. Whatever it costs
//! against a direct connection on this machine, any relay costs at least that; wstap's
//! figures are read against it.
//!
//! The TLS floor does the same with TLS ended on both legs, as wstap does for `wss://`:
//! rustls toward the client (the benchmark's own certificate for the echo server) and
//! toward the server, and `copy_bidirectional` of the plaintext between them. It is the
//! ceiling of any TLS-intercepting relay here, and wstap's wss rows are read against it.

use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How the TLS floor ends TLS on each leg.
#[derive(Clone)]
pub struct FloorTls {
    /// Toward the client.
    pub server: Arc<rustls::ServerConfig>,
    /// Toward the server.
    pub client: Arc<rustls::ClientConfig>,
}

/// Serves as the floor relay on `listen` until killed (the `--floor-relay` mode), ending
/// TLS on both legs when `tls` says how.
pub async fn serve(listen: SocketAddr, tls: Option<FloorTls>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = relay(client, tls).await;
        });
    }
}

async fn relay(mut client: TcpStream, tls: Option<FloorTls>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        head.push(client.read_u8().await?);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut upstream = TcpStream::connect(target.as_str()).await?;
    upstream.set_nodelay(true)?;
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    let Some(tls) = tls else {
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    };
    let host = target
        .rsplit_once(':')
        .map_or(target.as_str(), |(host, _)| host);
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut client = TlsAcceptor::from(tls.server).accept(client).await?;
    let mut upstream = TlsConnector::from(tls.client)
        .connect(name, upstream)
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

//! The floor: the cheapest user-space CONNECT relay tokio can make, run as a process of its
//! own like wstap. It reads the CONNECT head, dials, answers 200 and then only copies
//! bytes (`copy_bidirectional`): no parsing after that, no tap, no trace. Whatever it costs
//! against a direct connection on this machine, any relay costs at least that; wstap's
//! figures are read against it.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves as the floor relay on `listen` until killed (the `--floor-relay` mode).
pub async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = relay(client).await;
        });
    }
}

async fn relay(mut client: TcpStream) -> std::io::Result<()> {
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
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

//! Reading a client's TLS ClientHello before answering it: the name it asks for (SNI)
//! decides which certificate wstap presents. Interception in CONNECT tunnels and TLS
//! reverse listeners both start their handshakes here.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};

/// Reads the ClientHello from `io`, leaving the handshake to be answered.
pub(crate) async fn read_client_hello<IO>(io: IO) -> Result<StartHandshake<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
        .await
        .map_err(|e| format!("reading the client's TLS ClientHello failed: {e}"))
}

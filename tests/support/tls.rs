//! TLS for tests: a test PKI (its own CA, made with rcgen) for upstream servers, TLS
//! servers (WebSocket echo, raw), and clients that trust wstap's CA.

use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A CA of the tests' own and a server certificate for `localhost` and `127.0.0.1`.
pub struct TestPki {
    pub ca_pem_path: PathBuf,
    /// The server's certificate chain and key as PEM files, for peers in other languages.
    pub server_chain_pem_path: PathBuf,
    pub server_key_pem_path: PathBuf,
    pub ca_der: CertificateDer<'static>,
    pub server: Arc<rustls::ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TestPki {
    pub fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test upstream CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let ca_pem_path = temp_path("upstream-ca.pem");
        std::fs::write(&ca_pem_path, ca_cert.pem()).unwrap();
        let server_chain_pem_path = temp_path("server-chain.pem");
        std::fs::write(&server_chain_pem_path, server_cert.pem() + &ca_cert.pem()).unwrap();
        let server_key_pem_path = temp_path("server-key.pem");
        std::fs::write(&server_key_pem_path, server_key.serialize_pem()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone(), ca_cert.der().clone()], key)
            .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestPki {
            ca_pem_path,
            server_chain_pem_path,
            server_key_pem_path,
            ca_der: ca_cert.der().clone(),
            server: Arc::new(server),
        }
    }
}

impl TestPki {
    /// An intercepting proxy's TLS settings: a fresh CA of its own in a temp folder, and
    /// this PKI's CA trusted upstream.
    pub fn intercepting(&self) -> wstap_proxy::tls::TlsConfig {
        wstap_proxy::tls::TlsConfig {
            ca_dir: temp_path("ca"),
            upstream_ca: vec![self.ca_pem_path.clone()],
            insecure: false,
            ignore_hosts: Vec::new(),
        }
    }
}

/// A client configuration trusting only the CA certificates in `pem`.
pub fn client_trusting(pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Wraps a tunnel in TLS as a client would, checking the certificate for `name`.
pub async fn tls_client(
    stream: TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, stream).await
}

/// Accepts TLS clients on a fresh loopback port for as long as the test runs; each one
/// gets a task of its own that completes the TLS handshake and hands the stream to `serve`.
async fn tls_server<F, Fut>(pki: &TestPki, serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::clone(&pki.server));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let serve = serve.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls).await;
                }
            });
        }
    });
    addr
}

/// A TLS WebSocket echo server (tokio-tungstenite over rustls) for any number of clients.
pub async fn tls_echo_server(pki: &TestPki) -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    tls_server(pki, |tls| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    })
    .await
}

/// Like [`raw_server`], over TLS.
pub async fn raw_tls_server(
    pki: &TestPki,
    response: String,
) -> (SocketAddr, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::clone(&pki.server));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let stream = acceptor.accept(stream).await.unwrap();
        play_raw(stream, response.as_bytes(), &[], &record).await;
    });
    (addr, seen, task)
}

/// A hyper HTTPS server answering every request with a fixed body.
pub async fn https_server(pki: &TestPki) -> SocketAddr {
    use http_body_util::Full;
    tls_server(pki, |tls| async move {
        let service =
            hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let body = format!("secure hello at {}", req.uri().path());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    bytes::Bytes::from(body),
                )))
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
            .await;
    })
    .await
}

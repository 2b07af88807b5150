//! TLS interception for `wss://` and `https://`.
//!
//! Inside a `CONNECT` tunnel whose first bytes are a TLS ClientHello, wstap reads the
//! hello (SNI, ALPN), opens its own verified TLS connection to the upstream with the same
//! server name, then completes the client's handshake with a certificate for that name
//! signed by wstap's CA ([`ca`]). ALPN offers the client only `http/1.1`, so browsers
//! speak HTTP/1.1 WebSockets to it (HTTP/2 is not intercepted). From then on the
//! decrypted streams go through the same HTTP loop, relay and tap as plain ones.
//!
//! Upstream certificates are verified against the platform's roots plus any
//! `--upstream-ca` files; `--insecure` turns verification off. `SSLKEYLOGFILE` is honoured
//! on both legs, so a capture of the traffic can be decrypted in Wireshark.

pub mod ca;
mod hello;
pub mod instructions;
mod legs;
mod local;

pub(crate) use hello::read_client_hello;
pub(crate) use legs::tls_leg;
pub use local::local_server_config;

use ca::{CaError, CertificateAuthority};
use regex::Regex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How TLS interception is set up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// Where the CA lives.
    pub ca_dir: PathBuf,
    /// Extra roots to trust for upstream certificates (PEM files).
    pub upstream_ca: Vec<PathBuf>,
    /// Do not verify upstream certificates at all.
    pub insecure: bool,
    /// Regular expressions over `host:port`: matching tunnels are relayed without
    /// interception.
    pub ignore_hosts: Vec<String>,
}

/// Why interception could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// An `--upstream-ca` file.
    #[error("cannot use {path} as an upstream CA: {reason}")]
    UpstreamCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An `--ignore-hosts` pattern.
    #[error("--ignore-hosts {pattern:?} is not a valid regular expression: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A `--reverse-cert` or `--reverse-key` file.
    #[error("cannot use {path} for the reverse listener's TLS: {reason}")]
    ServerIdentity {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Leaf-certificate server configs kept for reuse.
const CERT_CACHE: usize = 1024;

/// Everything interception needs, shared by all sessions.
pub(crate) struct Interceptor {
    /// The CA.
    pub(crate) ca: Arc<CertificateAuthority>,
    provider: Arc<CryptoProvider>,
    upstream: Arc<ClientConfig>,
    ignore: Vec<Regex>,
    key_log: Arc<dyn rustls::KeyLog>,
    configs: Mutex<HashMap<String, (u64, Arc<ServerConfig>)>>,
    tick: AtomicU64,
    issued: AtomicU64,
    /// Whether upstream verification is off.
    pub insecure: bool,
}

impl std::fmt::Debug for Interceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interceptor")
            .field("ca", &self.ca)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl Interceptor {
    /// Loads (or creates) the CA and builds the upstream client configuration.
    pub fn new(config: &TlsConfig) -> Result<Self, TlsSetupError> {
        let ca = Arc::new(CertificateAuthority::load_or_create(&config.ca_dir)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key_log: Arc<dyn rustls::KeyLog> = Arc::new(rustls::KeyLogFile::new());
        let ignore = config
            .ignore_hosts
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| TlsSetupError::Pattern {
                    pattern: p.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let upstream = Arc::new(client_config(config, &provider, &key_log)?);
        Ok(Interceptor {
            ca,
            provider,
            upstream,
            ignore,
            key_log,
            configs: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            insecure: config.insecure,
        })
    }

    /// Whether tunnels to `target` (`host:port`) are relayed without interception.
    pub fn ignores(&self, target: &str) -> bool {
        self.ignore.iter().any(|r| r.is_match(target))
    }

    /// The client configuration for upstream connections.
    pub fn upstream_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.upstream)
    }

    /// How many leaf certificates were signed so far (cache misses).
    pub fn certificates_issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// The server configuration presenting a certificate for `host`, from the cache or new.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, TlsSetupError> {
        let key = host.to_ascii_lowercase();
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut configs) = self.configs.lock() {
            if let Some((used, config)) = configs.get_mut(&key) {
                *used = tick;
                return Ok(Arc::clone(config));
            }
        }
        // Signing happens outside the lock.
        let certified = self.ca.issue(&key)?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedCert(certified)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.key_log = Arc::clone(&self.key_log);
        let config = Arc::new(config);
        if let Ok(mut configs) = self.configs.lock() {
            if configs.len() >= CERT_CACHE {
                if let Some(oldest) = configs
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(k, _)| k.clone())
                {
                    configs.remove(&oldest);
                }
            }
            configs.insert(key, (tick, Arc::clone(&config)));
        }
        Ok(config)
    }
}

/// A server configuration presenting the certificate chain in `cert` with the private key
/// in `key` (PEM files), for a reverse listener given its own identity.
pub(crate) fn server_config_from_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let bad = |path: &Path, reason: String| TlsSetupError::ServerIdentity {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert, "no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(key, format!("it does not go with {}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The TLS client configuration wstap's upstream legs use (platform roots, `upstream_ca`,
/// or no verification when `insecure`; `SSLKEYLOGFILE` honoured), for a client of
/// wstap's own (`wstap replay`).
pub fn upstream_client_config(config: &TlsConfig) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_log: Arc<dyn rustls::KeyLog> = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(client_config(config, &provider, &key_log)?))
}

fn client_config(
    config: &TlsConfig,
    provider: &Arc<CryptoProvider>,
    key_log: &Arc<dyn rustls::KeyLog>,
) -> Result<ClientConfig, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()?;
    let mut client = if config.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(Arc::clone(provider))))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // Platform roots: a missing or partly unreadable store only means fewer roots.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        for path in &config.upstream_ca {
            let bad = |reason: String| TlsSetupError::UpstreamCa {
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    client.key_log = Arc::clone(key_log);
    Ok(client)
}

/// `--insecure`: accepts any upstream certificate, still checking handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

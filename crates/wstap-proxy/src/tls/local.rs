//! TLS for servers of wstap's own (`wstap mock --tls`): whatever name a client asks for
//! (SNI), it is shown a certificate for that name issued by wstap's CA, so any client that
//! trusts the CA (as it must to go through the proxy) trusts the server too.

use super::ca::{CaError, CertificateAuthority};
use super::TlsSetupError;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The name a certificate is issued for when the client names none (an IP-literal URL:
/// loopback, where wstap's own servers listen).
const UNNAMED: &str = "127.0.0.1";

/// A server configuration presenting certificates of the CA in `ca_dir` (created if
/// missing), one per name asked for, issued on first use.
pub fn local_server_config(ca_dir: &Path) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let ca = CertificateAuthority::load_or_create(ca_dir)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Issuing {
            ca,
            issued: Mutex::new(HashMap::new()),
        }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Issues (and keeps) a certificate per server name.
#[derive(Debug)]
struct Issuing {
    ca: CertificateAuthority,
    issued: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Issuing {
    fn for_name(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let name = name.to_ascii_lowercase();
        if let Some(found) = self.issued.lock().ok().and_then(|m| m.get(&name).cloned()) {
            return Ok(found);
        }
        let certified = self.ca.issue(&name)?;
        if let Ok(mut issued) = self.issued.lock() {
            issued.insert(name, Arc::clone(&certified));
        }
        Ok(certified)
    }
}

impl ResolvesServerCert for Issuing {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.for_name(hello.server_name().unwrap_or(UNNAMED)).ok()
    }
}

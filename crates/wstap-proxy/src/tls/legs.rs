//! What a finished TLS handshake negotiated, as the trace records it: version, cipher,
//! server name, ALPN, and the server's certificate on an upstream leg.

use wstap_trace::{PeerCertificate, TlsLeg};

/// What a finished TLS handshake negotiated, for the trace: with the peer's certificate
/// when `with_certificate` (the upstream leg; a client presents none).
pub(crate) fn tls_leg(
    state: &rustls::CommonState,
    sni: Option<String>,
    with_certificate: bool,
) -> TlsLeg {
    let certificate = with_certificate
        .then(|| state.peer_certificates().and_then(|chain| chain.first()))
        .flatten()
        .and_then(|der| peer_certificate(der.as_ref()));
    TlsLeg {
        version: state
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: state
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default(),
        sni,
        alpn: state
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        certificate,
    }
}

/// The facts of a certificate people check: who, by whom, when, for which names, and its
/// fingerprint. `None` for bytes that do not parse (rustls verified them, or `--insecure`
/// let them through).
fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let time = |t: &x509_parser::time::ASN1Time| {
        chrono::DateTime::from_timestamp(t.timestamp(), 0)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default()
    };
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                GeneralName::IPAddress(ip) => ip_text(ip),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Some(PeerCertificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: time(&cert.validity().not_before),
        not_after: time(&cert.validity().not_after),
        names,
        sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// An IP address from a certificate's 4 or 16 bytes.
fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

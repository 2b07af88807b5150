//! wstap's own certificate authority: created once, kept on disk, reused ever after.
//!
//! The CA is an ECDSA P-256 key and a self-signed certificate made with rcgen. It lives in
//! a directory of its own (created 0700) as three files: the certificate as PEM
//! ([`CERT_PEM`]) and DER ([`CERT_DER`], for systems that want a `.cer`), and the private
//! key as PEM ([`KEY_PEM`], created 0600 and never overwritten). Loading checks that the
//! certificate and key belong together; a missing, corrupt or mismatched file is an error
//! that names the file, never a reason to make a new CA behind the user's back.
//!
//! Leaf certificates for intercepted hosts are signed on demand with one shared leaf key
//! pair, valid from a day ago for 395 days (browsers refuse more than 397).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SecureRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The certificate, PEM.
pub const CERT_PEM: &str = "wstap-ca.pem";
/// The certificate, DER.
pub const CERT_DER: &str = "wstap-ca.cer";
/// The private key, PEM (mode 0600).
pub const KEY_PEM: &str = "wstap-ca-key.pem";

/// How long leaf certificates are valid (browsers refuse more than 397 days).
const LEAF_DAYS: i64 = 395;
/// How long the CA is valid.
const CA_DAYS: i64 = 10 * 365;

/// What can go wrong with the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file or the directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or the directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file exists but does not hold what it should.
    #[error("{path} is not a valid {what} ({reason}); fix or remove it (wstap never overwrites a CA file)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// One of the two CA files is missing.
    #[error("the CA in {dir} is incomplete: {present} exists but {missing} does not; restore {missing}, or remove {present} to make a new CA")]
    Incomplete {
        /// The CA directory.
        dir: PathBuf,
        /// The file that exists.
        present: &'static str,
        /// The file that does not.
        missing: &'static str,
    },
    /// The certificate was not made for the key.
    #[error("{cert} does not belong to the key in {key}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rcgen or rustls refused to make a certificate.
    #[error("cannot make a certificate for {subject}: {reason}")]
    Generate {
        /// For whom.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// The CA directory when none is given: `$WSTAP_HOME`, else `~/.wstap`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("WSTAP_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(home));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".wstap"))
}

/// A loaded (or new) CA: see the module documentation.
pub struct CertificateAuthority {
    dir: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaf_key: KeyPair,
    leaf_signing_key: Arc<dyn rustls::sign::SigningKey>,
    created: bool,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn generate_error(subject: &str, e: impl std::fmt::Display) -> CaError {
    CaError::Generate {
        subject: subject.to_owned(),
        reason: e.to_string(),
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // A failing system RNG leaves a zero serial, which still makes a valid certificate.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

impl CertificateAuthority {
    /// Loads the CA in `dir`, or creates it there when the directory holds none.
    ///
    /// Two wstaps started at once on a new machine (a proxy and `wstap mock --tls`, two
    /// test processes) both find no CA: one creates it, the other waits for its files
    /// (each appears whole, the key first) and loads it, so both use the same CA.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        const CREATION_GRACE: Duration = Duration::from_secs(3);
        const POLL: Duration = Duration::from_millis(20);
        let cert_path = dir.join(CERT_PEM);
        let key_path = dir.join(KEY_PEM);
        let started = Instant::now();
        loop {
            let creating_elsewhere = started.elapsed() < CREATION_GRACE;
            match (cert_path.exists(), key_path.exists()) {
                (false, false) => match Self::create(dir) {
                    // Another process published the key first: load its CA.
                    Err(CaError::Write { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                    created => return created,
                },
                (true, true) => return Self::load(dir),
                (false, true) if creating_elsewhere => {}
                (true, false) => {
                    return Err(CaError::Incomplete {
                        dir: dir.to_owned(),
                        present: CERT_PEM,
                        missing: KEY_PEM,
                    })
                }
                (false, true) => {
                    return Err(CaError::Incomplete {
                        dir: dir.to_owned(),
                        present: KEY_PEM,
                        missing: CERT_PEM,
                    })
                }
            }
            std::thread::sleep(POLL);
        }
    }

    fn create(dir: &Path) -> Result<Self, CaError> {
        create_private_dir(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| generate_error("the CA", e))?;
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("wstap CA {}", now.date()));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "wstap WebSocket debugging proxy");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(CA_DAYS);
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| generate_error("the CA", e))?;

        let key_path = dir.join(KEY_PEM);
        write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&dir.join(CERT_PEM), cert.pem().as_bytes(), 0o644)?;
        write_new(&dir.join(CERT_DER), cert.der(), 0o644)?;
        let mut ca = Self::load(dir)?;
        ca.created = true;
        Ok(ca)
    }

    fn load(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join(CERT_PEM);
        let key_path = dir.join(KEY_PEM);
        let key_pem = read_text(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Corrupt {
            path: key_path.clone(),
            what: "PEM private key",
            reason: e.to_string(),
        })?;
        let cert_pem = read_text(&cert_path)?;
        let corrupt = |reason: String| CaError::Corrupt {
            path: cert_path.clone(),
            what: "PEM certificate",
            reason,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| corrupt(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| corrupt(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::Mismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let cert_der = CertificateDer::from(pem.contents.clone());
        let der_path = dir.join(CERT_DER);
        if !der_path.exists() {
            // The DER copy is public and derived; restoring it changes nothing (nor does
            // another process restoring it at the same moment).
            match write_new(&der_path, &cert_der, 0o644) {
                Err(CaError::Write { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| corrupt(e.to_string()))?;
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| generate_error("the leaf key", e))?;
        let leaf_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let leaf_signing_key = rustls::crypto::ring::sign::any_ecdsa_type(&leaf_der)
            .map_err(|e| generate_error("the leaf key", e))?;
        Ok(CertificateAuthority {
            dir: dir.to_owned(),
            cert_pem,
            cert_der,
            issuer,
            leaf_key,
            leaf_signing_key,
            created: false,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this run created the CA.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate as DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The SHA-256 fingerprint as colon-separated upper-case hex.
    pub fn fingerprint_sha256(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.cert_der);
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Subject and validity, for display: `(subject, not_before, not_after)` in RFC 3339.
    pub fn describe(&self) -> (String, String, String) {
        match x509_parser::parse_x509_certificate(&self.cert_der) {
            Ok((_, cert)) => {
                let validity = cert.validity();
                let show = |t: &x509_parser::time::ASN1Time| {
                    chrono::DateTime::from_timestamp(t.timestamp(), 0)
                        .map_or_else(|| t.to_string(), |d| d.to_rfc3339())
                };
                (
                    cert.subject().to_string(),
                    show(&validity.not_before),
                    show(&validity.not_after),
                )
            }
            Err(e) => (format!("unreadable: {e}"), String::new(), String::new()),
        }
    }

    /// A certificate for `host` (a DNS name or an IP literal), signed by the CA, with the
    /// shared leaf key, ready for rustls.
    pub fn issue(&self, host: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let mut params =
            CertificateParams::new(vec![host.to_owned()]).map_err(|e| generate_error(host, e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(LEAF_DAYS);
        params.serial_number = Some(random_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| generate_error(host, e))?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        Ok(Arc::new(CertifiedKey::new(
            chain,
            Arc::clone(&self.leaf_signing_key),
        )))
    }
}

fn read_text(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| CaError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes a file that must not exist yet, with `mode` (on Unix).
/// Writes a new file at `path` whole or not at all: the bytes go to a file of this
/// process's own beside it, which is then linked at `path` (failing with `AlreadyExists`
/// when another process published one first), so a reader never sees half a file.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let write_error = |source| CaError::Write {
        path: path.to_owned(),
        source,
    };
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}-{n}.partial", std::process::id()));
    let staged = PathBuf::from(staged);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&staged).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let published = written.and_then(|()| fs::hard_link(&staged, path));
    let _ = fs::remove_file(&staged);
    published.map_err(write_error)
}

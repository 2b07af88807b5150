//! `wstap ca`: where the CA lives, its fingerprint and validity, how to trust it; or the
//! certificate itself with `--export pem|der`.

use crate::run::ca_dir;
use crate::AppError;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use wstap_proxy::tls::ca::{CertificateAuthority, CERT_DER, CERT_PEM, KEY_PEM};
use wstap_proxy::tls::instructions::trust_instructions;

/// Options of `wstap ca`.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Where the CA lives (default: $WSTAP_HOME, else ~/.wstap); created if absent.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Write the CA certificate to standard output instead.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub export: Option<ExportFormat>,
}

/// Certificate encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// PEM text.
    Pem,
    /// DER bytes.
    Der,
}

/// Runs `wstap ca`.
pub fn ca(args: &CaArgs) -> Result<(), AppError> {
    let dir = ca_dir(args.ca_dir.as_deref())?;
    let ca = CertificateAuthority::load_or_create(&dir)?;
    let mut out = std::io::stdout().lock();
    let written = match args.export {
        Some(ExportFormat::Pem) => out.write_all(ca.cert_pem().as_bytes()),
        Some(ExportFormat::Der) => out.write_all(ca.cert_der()),
        None => {
            let (subject, from, until) = ca.describe();
            let pem = dir.join(CERT_PEM);
            let der = dir.join(CERT_DER);
            let text = format!(
                "wstap CA{}\n  directory    {}\n  certificate  {} (PEM), {} (DER)\n  private key  {} (keep it private)\n  subject      {subject}\n  valid        {from} to {until}\n  SHA-256      {}\n\n{}",
                if ca.created() { " (created now)" } else { "" },
                dir.display(),
                pem.display(),
                der.display(),
                dir.join(KEY_PEM).display(),
                ca.fingerprint_sha256(),
                trust_instructions(&pem.display().to_string(), &der.display().to_string()),
            );
            out.write_all(text.as_bytes())
        }
    };
    written.map_err(|e| AppError::Export(format!("cannot write to standard output: {e}")))
}

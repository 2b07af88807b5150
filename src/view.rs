//! `wstap view [CAPTURE]`: the web inspector over a saved capture, without proxying.

use crate::captures::chosen;
use crate::AppError;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `wstap view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The capture (default: the newest in ~/.wstap/captures).
    pub capture: Option<PathBuf>,
    /// Serve the inspector here (default 127.0.0.1:8889).
    #[arg(long, value_name = "ADDR", env = "WSTAP_WEB")]
    pub web: Option<SocketAddr>,
    /// Keep this schema in the capture: its protobuf messages read by it from now on.
    #[command(flatten)]
    pub proto: crate::proto::ProtoArgs,
}

/// Runs `wstap view` until Ctrl-C.
pub async fn view(args: ViewArgs) -> Result<(), AppError> {
    let path = chosen(args.capture.as_deref())?;
    let capture = crate::captures::open_capture(&path)?;
    if let Some(schema) = args.proto.load()? {
        capture
            .keep_proto_schema(&schema)
            .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
    }
    drop(capture);
    let listen = args.web.unwrap_or(crate::web::DEFAULT_WEB);
    let inspector = crate::web::start(Some(listen), &path, None, None, None)?;
    let Some(inspector) = inspector else {
        return Ok(());
    };
    eprintln!("wstap: showing {}", path.display());
    crate::web::announce(&inspector);
    eprintln!("wstap: press Ctrl-C to stop");
    crate::run::wait_for_signal().await;
    let _ = tokio::task::spawn_blocking(move || inspector.stop()).await;
    Ok(())
}

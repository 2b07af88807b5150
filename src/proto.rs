//! `--proto-descriptor FILE --proto-type TYPE`: the schema the protobuf view names fields
//! by, shared by the commands that decode messages (the proxy, `wstap view`, `wstap
//! export`). The proxy keeps it in its capture, so later readers have it too; `wstap
//! view` keeps one given afterwards; `wstap export` reads with one for that export only.

use crate::AppError;
use clap::Args;
use std::path::PathBuf;
use wstap_views::{ProtoSchema, ProtoTypes};

/// The protobuf schema options.
#[derive(Debug, Clone, Default, Args)]
pub struct ProtoArgs {
    /// A protobuf descriptor set (protoc --descriptor_set_out=FILE --include_imports): the
    /// protobuf view names fields and enum values by it. Needs --proto-type.
    #[arg(long, value_name = "FILE", requires = "proto_types")]
    pub proto_descriptor: Option<PathBuf>,
    /// The message type protobuf messages are read as: TYPE both ways, or c2s=TYPE and
    /// s2c=TYPE for each direction (repeatable).
    #[arg(
        long = "proto-type",
        value_name = "[c2s=|s2c=]TYPE",
        requires = "proto_descriptor"
    )]
    pub proto_types: Vec<String>,
}

impl ProtoArgs {
    /// The schema they name, if they name one; a file that cannot be read or used, or a
    /// type it does not have, is a one-line error.
    pub fn load(&self) -> Result<Option<ProtoSchema>, AppError> {
        let Some(path) = &self.proto_descriptor else {
            return Ok(None);
        };
        let mut types = ProtoTypes::default();
        for spec in &self.proto_types {
            types
                .add(spec)
                .map_err(|e| AppError::BadInput(format!("--proto-type: {e}")))?;
        }
        let bytes = std::fs::read(path).map_err(|e| {
            AppError::BadInput(format!("--proto-descriptor {}: {e}", path.display()))
        })?;
        ProtoSchema::new(&bytes, types)
            .map(Some)
            .map_err(|e| AppError::BadInput(format!("--proto-descriptor {}: {e}", path.display())))
    }
}

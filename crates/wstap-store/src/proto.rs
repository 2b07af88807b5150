//! The protobuf schema a capture keeps (`proto_schema`, schema 7): the descriptor set and
//! message types its protobuf view names fields by, written once by whoever was given
//! them (the recording proxy, or `wstap view --proto-descriptor` later) and read by every
//! reader that decodes messages.

use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use wstap_views::{ProtoSchema, ProtoTypes};

/// Keeps `schema` in the capture, in place of any it kept before.
pub(crate) fn keep(conn: &Connection, schema: &ProtoSchema) -> Result<(), StoreError> {
    let types = schema.types();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO proto_schema (id, descriptor_set, c2s, s2c) VALUES (1, ?1, ?2, ?3)",
    )?
    .execute(params![schema.descriptor_set(), types.c2s, types.s2c])?;
    Ok(())
}

/// The schema the capture keeps, if any.
pub(crate) fn read(conn: &Connection) -> Result<Option<ProtoSchema>, StoreError> {
    let row = conn
        .prepare_cached("SELECT descriptor_set, c2s, s2c FROM proto_schema WHERE id = 1")?
        .query_row([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                ProtoTypes {
                    c2s: row.get(1)?,
                    s2c: row.get(2)?,
                },
            ))
        })
        .optional()?;
    let Some((descriptor_set, types)) = row else {
        return Ok(None);
    };
    ProtoSchema::new(&descriptor_set, types)
        .map(Some)
        .map_err(|e| StoreError::BadRow {
            table: "proto_schema",
            id: 1,
            why: e.to_string(),
        })
}

//! The protobuf schema a capture keeps (`proto_schema`, schema 7): the descriptor set and
//! message types its protobuf view names fields by, written once by whoever was given
//! them (the recording proxy, or `wstap view --proto-descriptor` later) and read by every
//! reader that decodes messages.

use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Mutex;
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

/// The schema the capture keeps, if any; `cache` holds the last one parsed, used again
/// while the row says the same (a descriptor set with its imports can be large, and the
/// inspector asks for it on every page).
pub(crate) fn read(
    conn: &Connection,
    cache: &Mutex<Option<Box<ProtoSchema>>>,
) -> Result<Option<ProtoSchema>, StoreError> {
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
    let mut cached = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(schema) = cached.as_ref() {
        if schema.descriptor_set() == descriptor_set.as_slice() && *schema.types() == types {
            return Ok(Some(ProtoSchema::clone(schema)));
        }
    }
    let schema = ProtoSchema::new(&descriptor_set, types).map_err(|e| StoreError::BadRow {
        table: "proto_schema",
        id: 1,
        why: e.to_string(),
    })?;
    *cached = Some(Box::new(schema.clone()));
    Ok(Some(schema))
}

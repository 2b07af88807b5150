//! The protobuf view with a schema: a descriptor set written here with `prost-types` (what
//! `protoc --descriptor_set_out` writes), messages encoded by `prost-reflect`, read back
//! by name.

use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value as PValue};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
    FileDescriptorProto, FileDescriptorSet, MessageOptions,
};
use serde_json::json;
use std::collections::HashMap;
use wstap_views::{ProtoSchema, ProtoTypes, SchemaError, SessionDecoder, View};
use wstap_wire::Direction;

fn field(
    name: &str,
    number: i32,
    ty: Type,
    label: Label,
    type_name: Option<&str>,
) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(Into::into),
        ..Default::default()
    }
}

/// `chat.proto`: an `Envelope` the client sends and an `Ack` the server answers with.
fn descriptor_set() -> Vec<u8> {
    use Label::{Optional, Repeated};
    let counts_entry = DescriptorProto {
        name: Some("CountsEntry".into()),
        field: vec![
            field("key", 1, Type::String, Optional, None),
            field("value", 2, Type::Int32, Optional, None),
        ],
        options: Some(MessageOptions {
            map_entry: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let inner = DescriptorProto {
        name: Some("Inner".into()),
        field: vec![field("ok", 1, Type::Bool, Optional, None)],
        ..Default::default()
    };
    let envelope = DescriptorProto {
        name: Some("Envelope".into()),
        field: vec![
            field("from", 1, Type::String, Optional, None),
            field("text", 2, Type::String, Optional, None),
            field("kind", 3, Type::Enum, Optional, Some(".chat.Kind")),
            field("ids", 4, Type::Int64, Repeated, None),
            field(
                "counts",
                5,
                Type::Message,
                Repeated,
                Some(".chat.Envelope.CountsEntry"),
            ),
            field("blob", 6, Type::Bytes, Optional, None),
            field(
                "inner",
                7,
                Type::Message,
                Optional,
                Some(".chat.Envelope.Inner"),
            ),
            field("score", 8, Type::Double, Optional, None),
        ],
        nested_type: vec![counts_entry, inner],
        ..Default::default()
    };
    let ack = DescriptorProto {
        name: Some("Ack".into()),
        field: vec![field("id", 1, Type::Uint64, Optional, None)],
        ..Default::default()
    };
    let kind = EnumDescriptorProto {
        name: Some("Kind".into()),
        value: ["KIND_UNSPECIFIED", "TEXT", "JOIN"]
            .iter()
            .enumerate()
            .map(|(n, name)| EnumValueDescriptorProto {
                name: Some((*name).into()),
                number: Some(n as i32),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("chat.proto".into()),
            package: Some("chat".into()),
            message_type: vec![envelope, ack],
            enum_type: vec![kind],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn types(specs: &[&str]) -> ProtoTypes {
    let mut types = ProtoTypes::default();
    for spec in specs {
        types.add(spec).unwrap();
    }
    types
}

fn schema(specs: &[&str]) -> ProtoSchema {
    ProtoSchema::new(&descriptor_set(), types(specs)).unwrap()
}

fn message(name: &str, fields: &[(&str, PValue)]) -> Vec<u8> {
    let pool = DescriptorPool::decode(descriptor_set().as_slice()).unwrap();
    let mut message = DynamicMessage::new(pool.get_message_by_name(name).unwrap());
    for (field, value) in fields {
        message.set_field_by_name(field, value.clone());
    }
    message.encode_to_vec()
}

fn decoder(specs: &[&str]) -> SessionDecoder {
    SessionDecoder::new(Some(View::Protobuf)).with_schema(Some(schema(specs)))
}

#[test]
fn fields_read_by_name_enum_values_by_name_and_bytes_as_hex() {
    let inner = {
        let pool = DescriptorPool::decode(descriptor_set().as_slice()).unwrap();
        let mut inner =
            DynamicMessage::new(pool.get_message_by_name("chat.Envelope.Inner").unwrap());
        inner.set_field_by_name("ok", PValue::Bool(true));
        inner
    };
    let payload = message(
        "chat.Envelope",
        &[
            ("from", PValue::String("John".into())),
            ("text", PValue::String("hi".into())),
            ("kind", PValue::EnumNumber(2)),
            ("ids", PValue::List(vec![PValue::I64(-1), PValue::I64(300)])),
            (
                "counts",
                PValue::Map(HashMap::from([
                    (MapKey::String("b".into()), PValue::I32(2)),
                    (MapKey::String("a".into()), PValue::I32(1)),
                ])),
            ),
            ("blob", PValue::Bytes(vec![0, 0xff].into())),
            ("inner", PValue::Message(inner)),
            ("score", PValue::F64(0.5)),
        ],
    );
    let decoded = decoder(&["chat.Envelope"]).decode(Direction::ClientToServer, &payload, false);
    assert_eq!(decoded.problem, None);
    assert_eq!(
        decoded.items[0].tree,
        json!({
            "from": "John", "text": "hi", "kind": "JOIN", "ids": [-1, 300],
            "counts": {"a": 1, "b": 2}, "blob": "0x00ff", "inner": {"ok": true}, "score": 0.5
        })
    );
    let summary = &decoded.items[0].summary;
    assert!(summary.starts_with("PROTOBUF Envelope {"), "{summary}");
    assert!(summary.contains("\"from\":\"John\""), "{summary}");
}

#[test]
fn each_direction_reads_as_its_own_type_and_one_without_reads_without_the_schema() {
    let ack = message("chat.Ack", &[("id", PValue::U64(7))]);
    let mut both = decoder(&["c2s=chat.Envelope", "s2c=chat.Ack"]);
    let answer = both.decode(Direction::ServerToClient, &ack, false);
    assert_eq!(answer.items[0].tree, json!({ "id": 7 }));
    assert!(answer.items[0].summary.starts_with("PROTOBUF Ack "));

    let mut client_only = decoder(&["c2s=chat.Envelope"]);
    let answer = client_only.decode(Direction::ServerToClient, &ack, false);
    assert_eq!(
        answer.items[0].tree,
        json!({ "1": 7 }),
        "numbered, as without a schema"
    );
}

#[test]
fn fields_the_schema_does_not_know_show_by_number() {
    // Ack { id = 7 } followed by field 9, a string the schema has not heard of.
    let mut payload = message("chat.Ack", &[("id", PValue::U64(7))]);
    payload.extend_from_slice(&[0x4a, 0x02, b'h', b'i']);
    let decoded = decoder(&["chat.Ack"]).decode(Direction::ClientToServer, &payload, false);
    assert_eq!(decoded.problem, None);
    assert_eq!(decoded.items[0].tree["id"], json!(7));
    assert_eq!(decoded.items[0].tree["#9"], json!("hi"));
}

#[test]
fn a_payload_not_of_its_type_says_so_and_reads_without_the_schema() {
    // Field 1 of Envelope is a string: these bytes are not UTF-8.
    let payload = [0x0a, 0x02, 0xff, 0xfe];
    let decoded = decoder(&["chat.Envelope"]).decode(Direction::ClientToServer, &payload, false);
    let problem = decoded.problem.expect("a problem");
    assert!(
        problem.what.starts_with("not a chat.Envelope:"),
        "{}",
        problem.what
    );
    assert_eq!(decoded.items[0].tree, json!({ "1": "0xfffe" }));
}

#[test]
fn bad_schemas_and_types_are_clear_errors() {
    let set = descriptor_set();
    match ProtoSchema::new(b"\xff\xff not a descriptor set", types(&["chat.Ack"])) {
        Err(SchemaError::BadDescriptorSet(_)) => {}
        other => panic!("{other:?}"),
    }
    let unknown = ProtoSchema::new(&set, types(&["chat.Acks"])).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "the descriptor set has no message type chat.Acks (it has chat.Ack, chat.Envelope, chat.Envelope.Inner)"
    );
    assert_eq!(
        ProtoSchema::new(&set, ProtoTypes::default()).unwrap_err(),
        SchemaError::NoType
    );
    for bad in ["", "up=chat.Ack", "c2s=", "chat..Ack", "chat Ack"] {
        assert_eq!(
            ProtoTypes::default().add(bad),
            Err(SchemaError::BadTypeSpec(bad.into())),
            "{bad:?}"
        );
    }
    // A leading dot, as descriptors write type names, is the same name.
    assert!(ProtoSchema::new(&set, types(&[".chat.Ack"])).is_ok());
}

proptest! {
    #[test]
    fn what_prost_reflect_encodes_the_view_reads_back(
        from in ".{0,20}",
        ids in prop::collection::vec(any::<i64>(), 0..8),
        score in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        counts in prop::collection::hash_map("[a-z]{1,4}", any::<i32>(), 0..4),
        kind in 0i32..5,
    ) {
        let payload = message("chat.Envelope", &[
            ("from", PValue::String(from.clone())),
            ("ids", PValue::List(ids.iter().map(|n| PValue::I64(*n)).collect())),
            ("score", PValue::F64(score)),
            ("counts", PValue::Map(counts.iter().map(|(k, v)| (MapKey::String(k.clone()), PValue::I32(*v))).collect())),
            ("kind", PValue::EnumNumber(kind)),
        ]);
        let decoded = decoder(&["chat.Envelope"]).decode(Direction::ClientToServer, &payload, false);
        prop_assert_eq!(decoded.problem, None);
        let tree = &decoded.items[0].tree;
        // proto3 leaves out fields at their defaults.
        if !from.is_empty() {
            prop_assert_eq!(&tree["from"], &json!(from));
        }
        if !ids.is_empty() {
            prop_assert_eq!(&tree["ids"], &json!(ids));
        }
        if score != 0.0 {
            prop_assert_eq!(&tree["score"], &json!(score));
        }
        if !counts.is_empty() {
            prop_assert_eq!(&tree["counts"], &json!(counts));
        }
        let names = ["KIND_UNSPECIFIED", "TEXT", "JOIN"];
        match kind {
            0 => prop_assert!(tree.get("kind").is_none()),
            1 | 2 => prop_assert_eq!(&tree["kind"], &json!(names[kind as usize])),
            _ => prop_assert_eq!(&tree["kind"], &json!(kind)),
        }
    }

    #[test]
    fn no_bytes_make_the_schema_view_panic(payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut decoder = decoder(&["c2s=chat.Envelope", "s2c=chat.Ack"]);
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let decoded = decoder.decode(dir, &payload, false);
            prop_assert!(!decoded.items.is_empty() || decoded.problem.is_some());
        }
    }
}

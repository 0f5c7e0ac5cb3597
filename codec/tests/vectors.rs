//! Every golden vector (`codec/vectors/packme`, the copy of `shared/vectors/packme`), through
//! the schema-driven codec.
//!
//! The generated-code path is held to the same vectors by the `packme-conformance` crate.

use bytes::Bytes;
use packme::json::{from_hex, to_hex};
use packme::schema::Schema;
use serde_json::Value;
use support::{same, vectors, vectors_dir};

mod support;

fn load() -> (Schema, Vec<Value>) {
    let schema =
        Schema::compile_dir(vectors_dir().join("manifests")).expect("the vector manifests compile");
    (schema, vectors())
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn message_ids_match_every_vector() {
    let (schema, vectors) = load();
    for v in vectors.iter().filter(|v| v.get("id").is_some()) {
        let message = schema.message_by_name(str_of(v, "class")).unwrap();
        assert_eq!(
            u64::from(message.id),
            v["id"].as_u64().unwrap(),
            "{}",
            str_of(v, "name")
        );
    }
}

#[test]
fn normal_vectors_encode_and_decode_exactly() {
    let (schema, vectors) = load();
    let mut checked = 0;
    for v in vectors
        .iter()
        .filter(|v| v.get("quirk").is_none() && v.get("invalid").is_none())
    {
        let name = str_of(v, "name");
        let message = schema.message_by_name(str_of(v, "class")).unwrap();
        let tid = v["transaction_id"].as_u64().unwrap() as u32;
        let bytes = schema
            .encode_json(message, tid, &v["values"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(to_hex(&bytes), str_of(v, "hex"), "{name}: encode");
        let frame = Bytes::from(from_hex(str_of(v, "hex")).unwrap());
        let decoded = schema
            .decode_json(&frame)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            schema.classes[decoded.message.class].name,
            str_of(v, "class"),
            "{name}"
        );
        assert_eq!(decoded.transaction_id, tid, "{name}");
        assert!(
            same(&decoded.values, &v["values"]),
            "{name}: decoded {} expected {}",
            decoded.values,
            v["values"]
        );
        checked += 1;
    }
    assert_eq!(checked, 59, "every normal vector was checked");
}

/// Quirk vectors: the encoder reproduces the reference's bytes where the input is valid for
/// a typed encoder; integer wrap-around and binary padding/truncation are refused on
/// purpose (silently changing a value hides bugs), with these exact messages.
#[test]
fn quirk_vectors_behave_as_documented() {
    let (schema, vectors) = load();
    let refused = [
        (
            "quirk_integer_out_of_range_wraps",
            "at i8: 200 is not a int8 value",
        ),
        (
            "quirk_binary_short_input_zero_padded",
            "at hash: binary4 needs exactly 4 bytes, the hex has 1",
        ),
        (
            "quirk_binary_long_input_truncated",
            "at hash: binary4 needs exactly 4 bytes, the hex has 5",
        ),
    ];
    let mut checked = 0;
    for v in vectors.iter().filter(|v| v.get("quirk").is_some()) {
        let name = str_of(v, "name");
        let message = schema.message_by_name(str_of(v, "class")).unwrap();
        let tid = v["transaction_id"].as_u64().unwrap() as u32;
        let encoded = schema.encode_json(message, tid, &v["values"]);
        if let Some((_, error)) = refused.iter().find(|(n, _)| *n == name) {
            assert_eq!(encoded.unwrap_err().to_string(), *error, "{name}");
        } else {
            assert_eq!(
                to_hex(&encoded.unwrap_or_else(|e| panic!("{name}: {e}"))),
                str_of(v, "hex"),
                "{name}: encode"
            );
        }
        // Decoding the reference's bytes gives what the reference decoder gave.
        let frame = Bytes::from(from_hex(str_of(v, "hex")).unwrap());
        let decoded = schema.decode_json(&frame);
        match &v["decoded"] {
            Value::Null => assert!(decoded.is_err(), "{name}: the reference failed, so must we"),
            expected => {
                let decoded = decoded.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    same(&decoded.values, expected),
                    "{name}: decoded {} expected {expected}",
                    decoded.values
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 7);
}

/// Invalid and lenient inputs: everything the reference rejects is rejected; of what the
/// JS reference accepts, we accept trailing bytes and unused flag bits (harmless, and
/// ConnectMe peers rely on trailing bytes being ignored) and reject the rest, as the Dart
/// reference does or as strictness demands.
#[test]
fn invalid_vectors_are_rejected_or_accepted_as_documented() {
    let (schema, vectors) = load();
    let expectations: &[(&str, Result<(), &str>)] = &[
        ("invalid_empty_buffer", Err("unexpected end of input at offset 0: frame header needs 8 bytes, 0 left")),
        ("invalid_three_bytes", Err("unexpected end of input at offset 0: frame header needs 8 bytes, 3 left")),
        ("invalid_unknown_message_id", Err("unknown message id 1")),
        ("invalid_header_only", Err("unexpected end of input at offset 8: int8 needs 1 bytes, 0 left")),
        ("invalid_truncated_last_byte", Err("unexpected end of input at offset 30: uint64 needs 8 bytes, 7 left")),
        ("invalid_truncated_string_body", Err("unexpected end of input at offset 13: string needs 4 bytes, 2 left")),
        ("lenient_trailing_garbage_ignored", Ok(())),
        ("lenient_bool_byte_2_is_false", Err("invalid bool byte 0x02 at offset 8 (expected 0x00 or 0x01)")),
        ("lenient_enum_index_out_of_range", Err("enum AccountStatus has no value number 7 (offset 15)")),
        ("lenient_string_length_past_end_at_tail", Err("unexpected end of input at offset 12: string needs 4294967295 bytes, 3 left")),
        ("lenient_invalid_utf8_replaced", Err("invalid UTF-8 in the string at offset 12")),
        ("lenient_unused_flag_bits_ignored", Ok(())),
        ("invalid_flag_set_without_data", Err("unexpected end of input at offset 10: string length needs 4 bytes, 1 left")),
        ("lenient_unknown_kin_id_falls_back_to_root", Err("class id 12345 at offset 9 is not Shape or one of its descendants")),
        ("invalid_array_count_past_end", Err("array count 4294967295 at offset 9 is impossible: 36 bytes left, an element needs at least 1")),
    ];
    let invalid: Vec<&Value> = vectors
        .iter()
        .filter(|v| v.get("invalid").is_some())
        .collect();
    assert_eq!(invalid.len(), expectations.len());
    for v in invalid {
        let name = str_of(v, "name");
        let (_, expectation) = expectations
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        let frame = Bytes::from(from_hex(str_of(v, "hex")).unwrap());
        let decoded = schema.decode_json(&frame);
        match expectation {
            Ok(()) => {
                let decoded = decoded.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    same(&decoded.values, &v["decoded"]),
                    "{name}: {}",
                    decoded.values
                );
            }
            Err(message) => assert_eq!(decoded.unwrap_err().to_string(), *message, "{name}"),
        }
    }
}

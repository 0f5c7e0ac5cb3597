//! Property tests: for generated types, decode(encode(x)) == x, `encoded_len` is exact,
//! and the schema-driven decoder reads the same bytes to the same JSON as the generated
//! `to_json` (the two independent paths agree). Arbitrary bytes never panic either path.

#[path = "../../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use packme::json::ToJson;
use packme::schema::Schema;
use packme::{decode_frame, ByteString, DecodeError, Message, Packet, Timestamp};
use packme_conformance::{collections, common as cm, decode_through_view, primitives, rpc, shapes};
use proptest::prelude::*;

fn schema() -> &'static Schema {
    static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| Schema::compile_dir(support::vectors_dir().join("manifests")).unwrap())
}

fn text() -> impl Strategy<Value = ByteString> + Clone {
    any::<String>().prop_map(ByteString::from)
}

/// Any binary32 bit pattern, with NaNs canonical: JSON can only say "NaN", so the JSON
/// path writes the canonical NaN (see `nan_payloads_survive_the_typed_path`).
fn float32() -> impl Strategy<Value = f32> + Clone {
    any::<u32>().prop_map(|bits| match f32::from_bits(bits) {
        x if x.is_nan() => f32::NAN,
        x => x,
    })
}

fn float64() -> impl Strategy<Value = f64> + Clone {
    any::<u64>().prop_map(|bits| match f64::from_bits(bits) {
        x if x.is_nan() => f64::NAN,
        x => x,
    })
}

fn optional_scalars() -> impl Strategy<Value = primitives::OptionalScalarsMessage> {
    (
        (
            any::<Option<i8>>(),
            any::<Option<u16>>(),
            any::<Option<i32>>(),
            any::<Option<u64>>(),
        ),
        (
            proptest::option::of(float32()),
            proptest::option::of(float64()),
            any::<Option<bool>>(),
            proptest::option::of(text()),
        ),
        (any::<Option<i64>>(), any::<Option<[u8; 3]>>(), any::<u8>()),
    )
        .prop_map(
            |(
                (o_i8, o_u16, o_i32, o_u64),
                (o_f32, o_f64, o_bool, o_str),
                (when, o_bin, required_tail),
            )| {
                primitives::OptionalScalarsMessage {
                    o_i8,
                    o_u16,
                    o_i32,
                    o_u64,
                    o_f32,
                    o_f64,
                    o_bool,
                    o_str,
                    o_when: when.map(Timestamp::from_millis),
                    o_bin,
                    required_tail,
                }
            },
        )
}

fn lists() -> impl Strategy<Value = collections::ListsMessage> {
    let color = prop_oneof![
        Just(collections::Color::Red),
        Just(collections::Color::Green),
        Just(collections::Color::Blue)
    ];
    (
        (
            any::<Vec<u8>>(),
            proptest::collection::vec(text(), 0..4),
            proptest::collection::vec(proptest::collection::vec(float64(), 0..3), 0..3),
        ),
        (
            proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<i16>(), 0..3), 0..3),
                0..3,
            ),
            any::<Vec<[u8; 2]>>(),
        ),
        (
            any::<Vec<i64>>(),
            any::<Vec<bool>>(),
            any::<Vec<i64>>(),
            proptest::collection::vec(color, 0..5),
        ),
        (
            proptest::option::of(any::<Vec<u32>>()),
            proptest::collection::vec((float32(), float32()), 0..4),
            proptest::option::of(proptest::collection::vec(
                proptest::collection::vec(text(), 0..3),
                0..3,
            )),
        ),
    )
        .prop_map(
            |(
                (bytes, words, matrix),
                (cube, ids),
                (times, bits, bigs, colors),
                (maybe, points, labels),
            )| collections::ListsMessage {
                bytes,
                words,
                matrix,
                cube,
                ids,
                times: times.into_iter().map(Timestamp::from_millis).collect(),
                bits,
                bigs,
                colors,
                maybe,
                points: points
                    .into_iter()
                    .map(|(x, y)| collections::ListsMessagePoint { x, y })
                    .collect(),
                labels,
            },
        )
}

fn user() -> impl Strategy<Value = cm::User> {
    let status = prop_oneof![
        Just(cm::AccountStatus::Active),
        Just(cm::AccountStatus::OnHold),
        Just(cm::AccountStatus::Closed)
    ];
    let leaf = (
        any::<[u8; 12]>(),
        text(),
        proptest::option::of(text()),
        status,
        text(),
        proptest::option::of(text()),
        text(),
    )
        .prop_map(
            |(id, full_name, email, status, street, zip, city)| cm::User {
                id,
                full_name,
                email,
                status,
                home: cm::Address { street, zip, city },
                manager: None,
                reports: vec![],
            },
        );
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            inner.clone(),
            proptest::option::of(inner.clone()),
            proptest::collection::vec(inner, 0..3),
        )
            .prop_map(|(mut user, manager, reports)| {
                user.manager = manager.map(Box::new);
                user.reports = reports;
                user
            })
    })
}

fn shape() -> impl Strategy<Value = shapes::AnyShape> {
    let name = text();
    let label = proptest::option::of(text());
    prop_oneof![
        (name.clone(), label.clone())
            .prop_map(|(name, label)| shapes::Shape { name, label }.into()),
        (name.clone(), label.clone(), float64()).prop_map(|(name, label, radius)| shapes::Circle {
            name,
            label,
            radius
        }
        .into()),
        (
            name.clone(),
            label.clone(),
            float32(),
            float32(),
            any::<Option<bool>>()
        )
            .prop_map(|(name, label, w, h, rounded)| shapes::Rect {
                name,
                label,
                w,
                h,
                rounded
            }
            .into()),
        (
            name,
            label,
            float32(),
            float32(),
            any::<Option<bool>>(),
            any::<Option<u8>>()
        )
            .prop_map(|(name, label, w, h, rounded, tile)| shapes::Square {
                name,
                label,
                w,
                h,
                rounded,
                tile
            }
            .into()),
    ]
}

fn draw() -> impl Strategy<Value = shapes::DrawMessage> {
    let rect = prop_oneof![
        (text(), float32()).prop_map(|(name, w)| shapes::AnyRect::from(shapes::Rect {
            name,
            label: None,
            w,
            h: 1.0,
            rounded: Some(true)
        })),
        (text(), any::<Option<u8>>()).prop_map(|(name, tile)| shapes::AnyRect::from(
            shapes::Square {
                name,
                label: Some("s".into()),
                w: 2.0,
                h: 2.0,
                rounded: None,
                tile
            }
        )),
    ];
    (
        shape(),
        proptest::collection::vec(shape(), 0..5),
        proptest::option::of(rect),
        text(),
        float64(),
        any::<(i32, i32)>(),
    )
        .prop_map(
            |(main, items, highlight, name, radius, (x, y))| shapes::DrawMessage {
                main,
                items,
                highlight,
                exact: shapes::Circle {
                    name,
                    label: None,
                    radius,
                },
                origin: shapes::PlainPoint { x, y },
            },
        )
}

/// The invariants every generated message type must hold; `view` decodes through the
/// type's borrowed view (see `decode_through_view`).
fn round_trip<M: Message + ToJson + PartialEq + std::fmt::Debug>(
    message: M,
    tid: u32,
    view: impl Fn(&Bytes) -> Result<Packet<M>, DecodeError>,
) -> Result<(), TestCaseError> {
    let packet = Packet::new(message, tid);
    let bytes = packet.to_bytes();
    prop_assert_eq!(bytes.len(), packet.frame_len());
    let decoded =
        decode_frame::<M>(bytes.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    // NaN != NaN, so compare the re-encoded bytes as well as (for NaN-free values) equality.
    prop_assert_eq!(&decoded.to_bytes(), &bytes);
    let viewed = view(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&viewed.to_bytes(), &bytes);
    let dynamic = schema()
        .decode_json(&bytes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        support::same(&dynamic.values, &packet.to_json()),
        "schema path {} vs generated {}",
        dynamic.values,
        packet.to_json()
    );
    let reencoded = schema()
        .encode_json(dynamic.message, tid, &dynamic.values)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&reencoded[..], &bytes[..]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn optional_scalars_round_trip(m in optional_scalars(), tid in any::<u32>()) {
        round_trip(m, tid, |f| decode_through_view::<primitives::OptionalScalarsMessageRef>(f))?;
    }

    #[test]
    fn arrays_round_trip(m in lists(), tid in any::<u32>()) {
        round_trip(m, tid, |f| decode_through_view::<collections::ListsMessageRef>(f))?;
    }

    #[test]
    fn recursive_users_round_trip(user in proptest::option::of(user()), error in proptest::option::of(text())) {
        round_trip(rpc::GetUserResponse { user, error }, 7, |f| decode_through_view::<rpc::GetUserResponseRef>(f))?;
    }

    #[test]
    fn inheritance_families_round_trip(m in draw()) {
        round_trip(m, 9, |f| decode_through_view::<shapes::DrawMessageRef>(f))?;
    }

    /// Arbitrary bytes after a valid header: both decoders return Ok or Err, never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), pick in 0usize..26) {
        let registry = packme_conformance::registry();
        let mut ids: Vec<u32> = registry.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        let mut frame = ids[pick].to_be_bytes().to_vec();
        frame.extend_from_slice(&[0, 0, 0, 1]);
        frame.extend_from_slice(&body);
        let frame = Bytes::from(frame);
        let typed = registry.decode(frame.clone());
        let dynamic = schema().decode_json(&frame);
        prop_assert_eq!(typed.is_ok(), dynamic.is_ok(), "the generated and schema decoders disagree on {:?}", frame);
    }

    /// Arbitrary bodies of the messages with recursion, families and arrays of strings:
    /// the borrowed views never panic and accept exactly what the owned decoders accept.
    #[test]
    fn arbitrary_bodies_decode_alike_through_views(body in proptest::collection::vec(any::<u8>(), 0..256), pick in 0usize..3) {
        let id = [rpc::GetUserResponse::ID, shapes::DrawMessage::ID, collections::ListsMessage::ID][pick];
        let mut frame = id.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0, 0, 0, 1]);
        frame.extend_from_slice(&body);
        let frame = Bytes::from(frame);
        let (owned, viewed) = match pick {
            0 => (decode_frame::<rpc::GetUserResponse>(frame.clone()).map(|p| p.to_bytes()), decode_through_view::<rpc::GetUserResponseRef>(&frame).map(|p| p.to_bytes())),
            1 => (decode_frame::<shapes::DrawMessage>(frame.clone()).map(|p| p.to_bytes()), decode_through_view::<shapes::DrawMessageRef>(&frame).map(|p| p.to_bytes())),
            _ => (decode_frame::<collections::ListsMessage>(frame.clone()).map(|p| p.to_bytes()), decode_through_view::<collections::ListsMessageRef>(&frame).map(|p| p.to_bytes())),
        };
        prop_assert_eq!(owned, viewed);
    }
}

#[test]
fn nan_payloads_survive_the_typed_path() {
    let m = primitives::FloatsMessage {
        f32: f32::from_bits(0x7f80_0001),
        f64: f64::from_bits(0xfff0_0000_0000_0002),
    };
    let bytes = Packet::new(m, 1).to_bytes();
    assert_eq!(
        &bytes[8..],
        &[0x7f, 0x80, 0, 1, 0xff, 0xf0, 0, 0, 0, 0, 0, 2]
    );
    let back = decode_frame::<primitives::FloatsMessage>(bytes.clone()).unwrap();
    assert_eq!(back.to_bytes(), bytes);
}

#[test]
fn deep_recursion_is_refused_not_a_stack_overflow() {
    // A user whose manager has a manager ... 10 000 levels deep, built as raw bytes.
    let mut frame = rpc::GetUserResponse::ID.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 0, 0, 1, 0x01]);
    let user_prefix: &[u8] = &[
        0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    for _ in 0..10_000 {
        frame.extend_from_slice(user_prefix);
    }
    let err = decode_frame::<rpc::GetUserResponse>(Bytes::from(frame.clone())).unwrap_err();
    assert!(err.to_string().contains("nested deeper than 128"), "{err}");
    let frame = Bytes::from(frame);
    let err = packme::decode_frame_ref::<rpc::GetUserResponseRef>(&frame).unwrap_err();
    assert!(err.to_string().contains("nested deeper than 128"), "{err}");
    assert!(schema().decode_json(&frame).is_err());
}

//! Every golden vector through the *generated* Rust types: values -> struct -> bytes must
//! equal the reference's hex, and bytes -> struct -> values must equal the vector's values.

#[path = "../../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use packme::json::{from_hex, to_hex, FromJson, ToJson};
use packme::{decode_frame, DecodeError, Message, Packet};
use packme_conformance::*;
use serde_json::Value;
use support::{same, vectors};

/// What one vector expects of one generated type. `view` decodes the frame through the
/// type's borrowed view and converts it to the owned type: it must agree with the owned
/// decoder on every vector, valid or not.
fn check<M: Message + FromJson + ToJson + std::fmt::Debug + PartialEq + Send + Sync + 'static>(
    v: &Value,
    view: impl Fn(&Bytes) -> Result<Packet<M>, DecodeError>,
) {
    let name = v["name"].as_str().unwrap();
    let hex = v["hex"].as_str().unwrap();
    let frame = Bytes::from(from_hex(hex).unwrap());
    let tid = v["transaction_id"].as_u64().unwrap_or_default() as u32;
    let decoded = decode_frame::<M>(frame.clone());
    // Compared as JSON, where NaN equals itself.
    match (view(&frame), &decoded) {
        (Ok(a), Ok(b)) => assert_eq!(
            (a.transaction_id, a.to_json()),
            (b.transaction_id, b.to_json()),
            "{name}: the borrowed view decodes alike"
        ),
        (a, b) => assert_eq!(a.err().as_ref(), b.as_ref().err(), "{name}: view and owned"),
    }

    if v.get("invalid").is_some() {
        // The schema-driven tests pin the exact messages; here the generated decoder must
        // agree on accept / reject and on the values.
        let accepted = [
            "lenient_trailing_garbage_ignored",
            "lenient_unused_flag_bits_ignored",
        ];
        match decoded {
            Ok(packet) if accepted.contains(&name) => {
                assert!(same(&packet.to_json(), &v["decoded"]), "{name}")
            }
            Ok(packet) => panic!("{name}: decoded {packet:?}, must be rejected"),
            Err(_) => assert!(!accepted.contains(&name), "{name}: rejected"),
        }
        return;
    }

    let values = &v["values"];
    let expect_decoded = if v.get("quirk").is_some() && v["roundtrip"] == Value::Bool(false) {
        &v["decoded"]
    } else {
        values
    };
    match M::from_json(values) {
        Ok(message) => {
            let packet = Packet::new(message, tid);
            let bytes = packet.to_bytes();
            assert_eq!(to_hex(&bytes), hex, "{name}: encode");
            assert_eq!(
                packet.frame_len(),
                bytes.len(),
                "{name}: encoded_len is exact"
            );
        }
        Err(e) => {
            let refused = [
                "quirk_integer_out_of_range_wraps",
                "quirk_binary_short_input_zero_padded",
                "quirk_binary_long_input_truncated",
            ];
            assert!(refused.contains(&name), "{name}: {e}");
        }
    }
    match (decoded, expect_decoded) {
        (Err(_), Value::Null) => {}
        (Ok(packet), expected) => {
            assert_eq!(packet.transaction_id, tid, "{name}");
            assert!(
                same(&packet.message.to_json(), expected),
                "{name}: decoded {} expected {expected}",
                packet.message.to_json()
            );
        }
        (Err(e), _) => panic!("{name}: {e}"),
    }
}

/// Checks a vector against the owned type and its view (the type itself when the
/// message holds no string).
macro_rules! check {
    ($v:expr, $owned:ty, $view:ty) => {
        check::<$owned>($v, |frame| decode_through_view::<$view>(frame))
    };
}

fn dispatch(v: &Value) {
    match v["class"].as_str().unwrap_or("") {
        "AllIntsMessage" => check!(v, primitives::AllIntsMessage, primitives::AllIntsMessage),
        "FloatsMessage" => check!(v, primitives::FloatsMessage, primitives::FloatsMessage),
        "FlagsAndTimeMessage" => check!(
            v,
            primitives::FlagsAndTimeMessage,
            primitives::FlagsAndTimeMessage
        ),
        "EmptyPingMessage" => check!(
            v,
            primitives::EmptyPingMessage,
            primitives::EmptyPingMessage
        ),
        "OptionalScalarsMessage" => check!(
            v,
            primitives::OptionalScalarsMessage,
            primitives::OptionalScalarsMessageRef
        ),
        "EchoMessage" => check!(v, text::EchoMessage, text::EchoMessageRef),
        "TripleMessage" => check!(v, text::TripleMessage, text::TripleMessageRef),
        "TaggedNoteMessage" => check!(v, text::TaggedNoteMessage, text::TaggedNoteMessageRef),
        "PingV1Message" => check!(
            v,
            mixed_case_v1::PingV1Message,
            mixed_case_v1::PingV1MessageRef
        ),
        "SyncRequest" => check!(v, mixed_case_v1::SyncRequest, mixed_case_v1::SyncRequest),
        "SyncResponse" => check!(
            v,
            mixed_case_v1::SyncResponse,
            mixed_case_v1::SyncResponseRef
        ),
        "ListsMessage" => check!(v, collections::ListsMessage, collections::ListsMessageRef),
        "GetUserRequest" => check!(v, rpc::GetUserRequest, rpc::GetUserRequest),
        "GetUserResponse" => check!(v, rpc::GetUserResponse, rpc::GetUserResponseRef),
        "ListUsersRequest" => check!(v, rpc::ListUsersRequest, rpc::ListUsersRequest),
        "ListUsersResponse" => check!(v, rpc::ListUsersResponse, rpc::ListUsersResponseRef),
        "PingPongRequest" => check!(v, rpc::PingPongRequest, rpc::PingPongRequest),
        "PingPongResponse" => check!(v, rpc::PingPongResponse, rpc::PingPongResponse),
        "NotifyMessage" => check!(v, rpc::NotifyMessage, rpc::NotifyMessageRef),
        "DrawMessage" => check!(v, shapes::DrawMessage, shapes::DrawMessageRef),
        "DRenderMessage" => check!(v, naming::DRenderMessage, naming::DRenderMessage),
        "UserProfileUpdateMessage" => check!(
            v,
            naming::UserProfileUpdateMessage,
            naming::UserProfileUpdateMessage
        ),
        "HTTPStatusMessage" => check!(v, naming::HTTPStatusMessage, naming::HTTPStatusMessage),
        "FetchV2ItemsRequest" => {
            check!(v, naming::FetchV2ItemsRequest, naming::FetchV2ItemsRequest)
        }
        "FetchV2ItemsResponse" => check!(
            v,
            naming::FetchV2ItemsResponse,
            naming::FetchV2ItemsResponseRef
        ),
        "WideHolderMessage" => check!(v, quirks::WideHolderMessage, quirks::WideHolderMessage),
        other => panic!("{}: no generated type for class {other:?}", v["name"]),
    }
}

#[test]
fn every_vector_through_generated_types() {
    let mut checked = 0;
    for v in vectors() {
        if v.get("class").is_none() {
            // Invalid frames without a known class: the registry must refuse them.
            let frame = Bytes::from(from_hex(v["hex"].as_str().unwrap()).unwrap());
            assert!(registry().decode(frame).is_err(), "{}", v["name"]);
        } else {
            dispatch(&v);
        }
        checked += 1;
    }
    assert_eq!(checked, 81);
}

#[test]
fn registry_knows_every_message_and_decodes_by_id() {
    let registry = registry();
    assert_eq!(registry.len(), 26);
    for v in vectors().iter().filter(|v| v.get("id").is_some()) {
        let info = registry.get(v["id"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(info.name, v["class"].as_str().unwrap());
    }
    let hex = "269f9ec7000000640a0b0c0d0e0f101112131415";
    let any = registry
        .decode(Bytes::from(from_hex(hex).unwrap()))
        .unwrap();
    assert_eq!(any.transaction_id, 100);
    let request = any.message.downcast::<rpc::GetUserRequest>().unwrap();
    assert_eq!(
        request.user_id,
        [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    );
}

#[test]
fn response_helper_copies_the_transaction_id() {
    let request = Packet::new(rpc::GetUserRequest { user_id: [7; 12] }, 4242);
    let response = request.response(rpc::GetUserResponse {
        user: None,
        error: Some("no such user".into()),
    });
    assert_eq!(response.transaction_id, 4242);
    let bytes = response.to_bytes();
    assert_eq!(&bytes[4..8], &4242u32.to_be_bytes());
    assert_eq!(
        decode_frame::<rpc::GetUserResponse>(bytes).unwrap(),
        response
    );
}

#[test]
fn decoded_strings_borrow_the_frame() {
    let frame =
        Bytes::from(from_hex("2ba5c4bb000000290000000e48656c6c6f2c205061636b4d6521").unwrap());
    let packet = decode_frame::<text::EchoMessage>(frame.clone()).unwrap();
    assert_eq!(&*packet.text, "Hello, PackMe!");
    let range = frame.as_ptr_range();
    assert!(
        range.contains(&packet.text.as_ptr()),
        "the string is a view into the received frame"
    );
    let view = packme::decode_frame_ref::<text::EchoMessageRef>(&frame).unwrap();
    assert_eq!(view.text, "Hello, PackMe!");
    assert_eq!(
        view.text.as_ptr(),
        frame[12..].as_ptr(),
        "the view borrows the frame"
    );
}

//! Arbitrary bytes into both decoders (generated types via the registry, and the
//! schema-driven codec) for every message of the golden-vector manifests. Neither may
//! panic or hang, they must agree on accept/reject, and whatever the generated decoder
//! accepts must re-encode to a frame that decodes to the same value. The messages with
//! borrowed views (recursion, families, nested arrays of strings) also go through their
//! view, which must decode to the same frame or fail alike.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use packme::schema::Schema;
use packme::{decode_frame, FrameHeader, Message};
use packme_conformance::{collections, decode_through_view, naming, primitives, rpc, shapes};

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::compile_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/packme/manifests")).unwrap()
    })
}

/// Decodes `frame` as `M` directly and through its view `V`; both must give the same
/// re-encoded frame, or both fail.
macro_rules! views_agree {
    ($frame:expr, $id:expr, $(($owned:ty, $view:ty)),*) => {
        match $id {
            $(id if id == <$owned>::ID => assert_eq!(
                decode_frame::<$owned>($frame.clone()).map(|p| p.to_bytes()),
                decode_through_view::<$view>($frame).map(|p| p.to_bytes()),
                "the view decodes differently"
            ),)*
            _ => {}
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let registry = packme_conformance::registry();
    // Steer the first byte towards registered ids so most inputs reach a body decoder.
    let frame = match data.split_first() {
        Some((pick, rest)) => {
            let mut ids: Vec<u32> = registry.iter().map(|i| i.id).collect();
            ids.sort_unstable();
            let mut frame = ids[usize::from(*pick) % ids.len()].to_be_bytes().to_vec();
            frame.extend_from_slice(rest);
            Bytes::from(frame)
        }
        None => Bytes::new(),
    };
    if let Some(id) = FrameHeader::message_id(&frame) {
        views_agree!(
            &frame,
            id,
            (rpc::GetUserResponse, rpc::GetUserResponseRef),
            (rpc::NotifyMessage, rpc::NotifyMessageRef),
            (shapes::DrawMessage, shapes::DrawMessageRef),
            (collections::ListsMessage, collections::ListsMessageRef),
            (naming::FetchV2ItemsResponse, naming::FetchV2ItemsResponseRef),
            (primitives::OptionalScalarsMessage, primitives::OptionalScalarsMessageRef)
        );
    }
    let typed = registry.decode(frame.clone());
    let dynamic = schema().decode_json(&frame);
    assert_eq!(typed.is_ok(), dynamic.is_ok(), "the decoders disagree");
    // quirks.json's WideChild uses the reference's overflowing flag layout (spec 6.7.3):
    // re-encoding its values can legitimately decode differently, so it is exempt.
    let quirk = dynamic.as_ref().is_ok_and(|d| schema().classes[d.message.class].name == "WideHolderMessage");
    if let (Ok(decoded), false) = (dynamic, quirk) {
        let reencoded = schema().encode_json(decoded.message, decoded.transaction_id, &decoded.values).unwrap();
        let again = schema().decode_json(&Bytes::from(reencoded)).unwrap();
        // NaN payloads are canonicalised by JSON; compare the JSON text.
        assert_eq!(again.values.to_string(), decoded.values.to_string());
    }
});

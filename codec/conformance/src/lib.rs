//! The code `packme` generates for the golden-vector manifests, compiled as a crate so the
//! tests can hold it to every vector and so `cargo clippy` checks generated code too.

packme::include_generated!("vectors");

use packme::{decode_frame_ref, DecodeError, MessageRef, Packet};

/// Decodes `frame` through the borrowed view `V` and converts the view to the owned type:
/// what the tests compare with the owned decoder.
pub fn decode_through_view<'a, V>(frame: &'a bytes::Bytes) -> Result<Packet<V::Owned>, DecodeError>
where
    V: MessageRef<'a>,
    V::Owned: From<V>,
{
    decode_frame_ref::<V>(frame).map(|p| Packet::new(p.message.into(), p.transaction_id))
}

//! What can be sent: strings as text, bytes as binary, PackMe packets as binary, each
//! framed for the connection's wire in one buffer.

use bytes::Bytes;
use packme::{ByteString, Message, Packet};

use super::received::BinaryRef;
use super::{Kind, Wire};

/// A value that can be sent as one ConnectMe message.
///
/// Strings become text messages (on TCP, their UTF-8 bytes); bytes become binary
/// messages; a [`Packet`] is encoded straight into the frame after its header, so it is
/// written exactly once.
pub trait IntoFrame: Sized {
    /// The complete frame for `wire`.
    fn into_frame(self, wire: Wire) -> Bytes;

    /// The frame as a header and a body that leave in one vectored write. The default is
    /// the whole frame in one buffer; `Bytes` payloads of a few KiB or more keep their
    /// buffer on unmasked wires instead of being copied behind a header.
    fn into_parts(self, wire: Wire) -> FrameParts {
        FrameParts::whole(self.into_frame(wire))
    }

    /// The payload's length, when it is known without encoding. A frame of known size
    /// under 1 KiB sent on its connection's own shard is written by
    /// [`IntoFrame::write_frame`] straight into the connection's queue, without a buffer
    /// of its own. The default (`None`) always builds the frame with `into_parts`.
    fn payload_len(&self) -> Option<usize> {
        None
    }

    /// Appends the complete frame for `wire` to `out`; `len` is what
    /// [`IntoFrame::payload_len`] returned.
    fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
        let _ = len;
        out.extend_from_slice(&self.into_frame(wire));
    }

    /// [`IntoFrame::into_parts`] for a payload whose length `len` (what
    /// [`IntoFrame::payload_len`] returned) is already known, so a type whose length costs
    /// a walk over its content (a PackMe packet) need not measure itself twice.
    fn into_parts_sized(self, wire: Wire, len: usize) -> FrameParts {
        let _ = len;
        self.into_parts(wire)
    }
}

/// A frame in one or two buffers: what [`IntoFrame::into_parts`] returns, so that a large
/// payload can leave in one vectored write behind its header without being copied.
#[derive(Debug, Clone)]
pub struct FrameParts {
    pub(crate) head: Bytes,
    pub(crate) body: Option<Bytes>,
}

impl FrameParts {
    /// A frame in one buffer.
    pub fn whole(frame: Bytes) -> Self {
        Self {
            head: frame,
            body: None,
        }
    }

    /// A frame as its header (for WebSocket and TCP alike, what [`Wire::header`] builds)
    /// and its payload in a buffer of its own, written together without a copy.
    pub fn split(head: Bytes, body: Bytes) -> Self {
        Self {
            head,
            body: Some(body),
        }
    }

    /// The frame's first (or only) buffer.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The payload, when it has a buffer of its own.
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// The whole frame's length.
    #[allow(clippy::len_without_is_empty)] // a frame always has a header
    pub fn len(&self) -> usize {
        self.head.len() + self.body.as_ref().map_or(0, Bytes::len)
    }
}

/// How a message is queued: a small frame of known size is written in place (into a
/// connection's queue, or a session's replay buffer), anything else is built as parts.
pub(crate) enum Framing<F> {
    InPlace {
        message: F,
        /// The payload's length.
        len: usize,
        /// The whole frame's length.
        frame_len: usize,
    },
    Parts(FrameParts),
}

impl<F: IntoFrame> Framing<F> {
    #[inline]
    pub(crate) fn of(message: F, wire: Wire) -> Self {
        match message.payload_len() {
            Some(len) if len < ZERO_COPY_MIN => Framing::InPlace {
                frame_len: wire.frame_len(len),
                message,
                len,
            },
            Some(len) => Framing::Parts(message.into_parts_sized(wire, len)),
            None => Framing::Parts(message.into_parts(wire)),
        }
    }
}

/// Payloads from this size up are sent without copying (an extra iovec costs less than
/// the copy from here on); smaller frames are copied into the connection's outbox.
pub(crate) const ZERO_COPY_MIN: usize = 1024;

fn binary_parts(data: Bytes, wire: Wire) -> FrameParts {
    if data.len() < ZERO_COPY_MIN || wire == Wire::WsClient {
        return FrameParts::whole(binary(&data, wire));
    }
    let head = wire.header(Kind::Binary, data.len());
    FrameParts::split(head, data)
}

fn text(s: &str, wire: Wire) -> Bytes {
    wire.frame(Kind::Text, s.len(), |b| b.extend_from_slice(s.as_bytes()))
}

fn binary(data: &[u8], wire: Wire) -> Bytes {
    wire.frame(Kind::Binary, data.len(), |b| b.extend_from_slice(data))
}

/// `IntoFrame` for types that deref to `str` (text) or `[u8]` (binary): their payload is
/// those bytes. `$parts` overrides `into_parts` for types that own a `Bytes` buffer.
macro_rules! slice_frames {
    ($kind:ident, $build:ident: $($ty:ty $(=> $parts:expr)?),* $(,)?) => {$(
        impl IntoFrame for $ty {
            fn into_frame(self, wire: Wire) -> Bytes {
                $build(&self, wire)
            }
            $(fn into_parts(self, wire: Wire) -> FrameParts {
                $parts(self, wire)
            })?
            fn payload_len(&self) -> Option<usize> {
                Some(self.len())
            }
            fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
                let payload: &[u8] = self.as_ref();
                wire.write_frame(out, Kind::$kind, len, |b| b.extend_from_slice(payload));
            }
        }
    )*};
}

slice_frames!(Text, text: &str, String, &String, ByteString);
slice_frames!(
    Binary,
    binary: Bytes => binary_parts,
    &Bytes => |data: &Bytes, wire| binary_parts(data.clone(), wire),
    Vec<u8>,
    &[u8],
);

impl<const N: usize> IntoFrame for &[u8; N] {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(self, wire)
    }
    fn payload_len(&self) -> Option<usize> {
        Some(N)
    }
    fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
        wire.write_frame(out, Kind::Binary, len, |b| b.extend_from_slice(self));
    }
}

/// Bytes the engine itself encoded as UTF-8 (the JSON protocol's envelopes, written by
/// serde_json from strings), sent as a text message without validating them again.
pub(crate) struct Utf8Bytes(pub(crate) Bytes);

impl IntoFrame for Utf8Bytes {
    fn into_frame(self, wire: Wire) -> Bytes {
        wire.frame(Kind::Text, self.0.len(), |b| b.extend_from_slice(&self.0))
    }
    fn payload_len(&self) -> Option<usize> {
        Some(self.0.len())
    }
    fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
        wire.write_frame(out, Kind::Text, len, |b| b.extend_from_slice(&self.0));
    }
}

impl<M: Message> IntoFrame for &Packet<M> {
    fn into_frame(self, wire: Wire) -> Bytes {
        wire.frame(Kind::Binary, self.frame_len(), |b| self.encode(b))
    }
    fn payload_len(&self) -> Option<usize> {
        Some(self.frame_len())
    }
    fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
        wire.write_frame(out, Kind::Binary, len, |b| self.encode(b));
    }
    fn into_parts_sized(self, wire: Wire, len: usize) -> FrameParts {
        FrameParts::whole(wire.frame(Kind::Binary, len, |b| self.encode(b)))
    }
}

impl<M: Message> IntoFrame for Packet<M> {
    fn into_frame(self, wire: Wire) -> Bytes {
        (&self).into_frame(wire)
    }
    fn payload_len(&self) -> Option<usize> {
        Some(self.frame_len())
    }
    fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
        (&self).write_frame(wire, len, out)
    }
    fn into_parts_sized(self, wire: Wire, len: usize) -> FrameParts {
        (&self).into_parts_sized(wire, len)
    }
}

impl IntoFrame for BinaryRef<'_> {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(&self, wire)
    }
    fn into_parts(self, wire: Wire) -> FrameParts {
        match self {
            BinaryRef::Shared(data) => binary_parts(data.clone(), wire),
            BinaryRef::InPlace(data) => data.into_parts(wire),
        }
    }
    fn payload_len(&self) -> Option<usize> {
        Some(self.len())
    }
    fn write_frame(self, wire: Wire, len: usize, out: &mut Vec<u8>) {
        wire.write_frame(out, Kind::Binary, len, |b| b.extend_from_slice(&self));
    }
}

/// A frame already encoded for a connection's wire (what a broadcast shares).
#[derive(Debug, Clone)]
pub struct Frame(pub(crate) Bytes);

impl IntoFrame for Frame {
    fn into_frame(self, _wire: Wire) -> Bytes {
        self.0
    }
}

/// The frame a shard fans out to its connections: `frame` itself if no other thread holds
/// it, else a copy owned by this shard.
///
/// Every connection's queue takes a clone of a large frame (small ones are copied into
/// each outbox) and its writer drops it, each an atomic update of the frame's reference
/// count. Shared across shards, that count's cache line bounces between cores on every
/// update (the `broadcast_fan_out` bench measured a 64-byte broadcast to 1 000 links on
/// two shards at twice the cost of copying the frame for every link); one copy per shard
/// keeps every update core-local.
pub(crate) fn shard_local(frame: Bytes) -> Bytes {
    if frame.is_unique() {
        frame
    } else {
        Bytes::copy_from_slice(&frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_copies_a_frame_only_while_another_thread_may_hold_it() {
        let frame = Bytes::from(vec![b'B'; 64]);
        let at = frame.as_ptr();
        let unique = shard_local(frame);
        assert_eq!(
            unique.as_ptr(),
            at,
            "a frame nobody else holds is not copied"
        );
        let other_shard = unique.clone();
        let local = shard_local(unique);
        assert_ne!(local.as_ptr(), at, "a shared frame is copied");
        assert_eq!(local, other_shard);
    }

    #[test]
    fn server_frames_match_the_wire_tables() {
        assert_eq!(
            &"hi".into_frame(Wire::WsServer)[..],
            &[0x81, 0x02, b'h', b'i']
        );
        assert_eq!(
            &[1u8, 2, 3].into_frame(Wire::WsServer)[..],
            &[0x82, 0x03, 1, 2, 3]
        );
        assert_eq!(
            &"hi".into_frame(Wire::Tcp)[..],
            &[0, 0, 0, 0, 0, 0, 0, 0x0a, b'h', b'i']
        );
    }

    #[test]
    fn large_bytes_keep_their_buffer_behind_a_separate_header() {
        let payload = Bytes::from(vec![9u8; 4096]);
        let parts = payload.clone().into_parts(Wire::WsServer);
        assert_eq!(&parts.head[..], &[0x82, 126, 0x10, 0x00]);
        assert_eq!(
            parts.body.as_ref().map(|b| b.as_ptr()),
            Some(payload.as_ptr()),
            "not copied"
        );
        let whole = payload.clone().into_frame(Wire::WsServer);
        assert_eq!([&parts.head[..], &payload[..]].concat(), whole.to_vec());
        let tcp = payload.clone().into_parts(Wire::Tcp);
        assert_eq!(&tcp.head[..], &(4096u64 + 8).to_be_bytes());
        let small = Bytes::from_static(b"tiny").into_parts(Wire::WsServer);
        assert!(
            small.body.is_none(),
            "small payloads are copied into one buffer"
        );
        assert!(
            payload.into_parts(Wire::WsClient).body.is_none(),
            "masked frames are built whole"
        );
    }

    /// Every type that writes itself into a queue writes exactly its `into_frame` bytes.
    #[test]
    fn frames_written_in_place_equal_built_frames() {
        fn check<F: IntoFrame + Clone>(message: F, wire: Wire) {
            let built = message.clone().into_frame(wire);
            let len = message.payload_len().expect("a known size");
            let mut out = b"earlier".to_vec();
            message.write_frame(wire, len, &mut out);
            assert_eq!(&out[..7], b"earlier", "appended, not overwritten");
            assert_eq!(&out[7..], &built[..], "{wire:?}");
            assert_eq!(wire.frame_len(len), built.len());
        }
        let packet = Packet::new(TestMessage(vec![3; 200]), 9);
        for wire in [Wire::WsServer, Wire::Tcp] {
            check("hi", wire);
            check(String::from("héllo"), wire);
            check(&String::from("x"), wire);
            check(ByteString::from("text"), wire);
            check(Bytes::from_static(&[1, 2, 3]), wire);
            check(&Bytes::from(vec![7u8; 300]), wire);
            check(vec![0u8; 126], wire);
            check(&[9u8; 5][..], wire);
            check(&[4u8; 2], wire);
            check(&packet, wire);
            check(packet.clone(), wire);
        }
    }

    /// A message with a binary payload, for the `Packet` frames.
    #[derive(Debug, Clone, PartialEq)]
    struct TestMessage(Vec<u8>);

    impl packme::Encode for TestMessage {
        fn encoded_len(&self) -> usize {
            self.0.len()
        }
        fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
            buf.put_slice(&self.0);
        }
    }

    impl packme::Decode for TestMessage {
        const MIN_LEN: usize = 0;
        fn decode(r: &mut packme::Reader<'_>) -> Result<Self, packme::DecodeError> {
            Ok(Self(r.slice(r.remaining(), "body")?.to_vec()))
        }
    }

    impl Message for TestMessage {
        const ID: u32 = 0x0102_0304;
        const NAME: &'static str = "TestMessage";
    }

    #[test]
    fn client_frames_are_masked() {
        let frame = "hello".into_frame(Wire::WsClient);
        assert_eq!(frame[0], 0x81);
        assert_eq!(frame[1], 0x85);
        let mut payload = frame[6..].to_vec();
        crate::proto::mask::apply_mask(&mut payload, [frame[2], frame[3], frame[4], frame[5]]);
        assert_eq!(payload, b"hello");
    }
}

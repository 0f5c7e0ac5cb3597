//! What can be sent: strings as text, bytes as binary, PackMe packets as binary, each
//! framed for the connection's wire in one buffer.

use bytes::Bytes;
use packme::{ByteString, Message, Packet};

use crate::proto::{Kind, Wire};

/// A value that can be sent as one ConnectMe message.
///
/// Strings become text messages (on TCP, their UTF-8 bytes); bytes become binary
/// messages; a [`Packet`] is encoded straight into the frame after its header, so it is
/// written exactly once.
pub trait IntoFrame {
    /// The complete frame for `wire`.
    fn into_frame(self, wire: Wire) -> Bytes;
}

fn text(s: &str, wire: Wire) -> Bytes {
    wire.frame(Kind::Text, s.len(), |b| b.extend_from_slice(s.as_bytes()))
}

fn binary(data: &[u8], wire: Wire) -> Bytes {
    wire.frame(Kind::Binary, data.len(), |b| b.extend_from_slice(data))
}

impl IntoFrame for &str {
    fn into_frame(self, wire: Wire) -> Bytes {
        text(self, wire)
    }
}

impl IntoFrame for String {
    fn into_frame(self, wire: Wire) -> Bytes {
        text(&self, wire)
    }
}

impl IntoFrame for &String {
    fn into_frame(self, wire: Wire) -> Bytes {
        text(self, wire)
    }
}

impl IntoFrame for ByteString {
    fn into_frame(self, wire: Wire) -> Bytes {
        text(&self, wire)
    }
}

impl IntoFrame for Bytes {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(&self, wire)
    }
}

impl IntoFrame for &Bytes {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(self, wire)
    }
}

impl IntoFrame for Vec<u8> {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(&self, wire)
    }
}

impl IntoFrame for &[u8] {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(self, wire)
    }
}

impl<const N: usize> IntoFrame for &[u8; N] {
    fn into_frame(self, wire: Wire) -> Bytes {
        binary(self, wire)
    }
}

impl<M: Message> IntoFrame for &Packet<M> {
    fn into_frame(self, wire: Wire) -> Bytes {
        wire.frame(Kind::Binary, self.frame_len(), |b| self.encode(b))
    }
}

impl<M: Message> IntoFrame for Packet<M> {
    fn into_frame(self, wire: Wire) -> Bytes {
        (&self).into_frame(wire)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn client_frames_are_masked() {
        let frame = "hello".into_frame(Wire::WsClient);
        assert_eq!(frame[0], 0x81);
        assert_eq!(frame[1], 0x85);
        let mut payload = frame[6..].to_vec();
        crate::proto::mask::apply_mask(&mut payload, [frame[2], frame[3], frame[4], frame[5]]);
        assert_eq!(payload, b"hello");
    }
}

//! The protocol core: WebSocket and ConnectMe TCP framing as plain functions and types over
//! byte buffers, with no sockets and no runtime (quinn and hyper are the models).
//!
//! Everything a peer can send is parsed here, so this is where limits are enforced and
//! where the tables of exact wire bytes are tested. The I/O layer above only moves bytes
//! between sockets and these types.

pub(crate) mod batch;
mod connection;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod moment;
pub(crate) mod outbox;
pub(crate) mod outgoing;
pub(crate) mod queries;
pub(crate) mod received;
pub mod tcp;
pub mod ws;

use bytes::{Bytes, BytesMut};

pub use batch::WriteBatch;
pub use connection::{Config, Connection, End, Keepalive, Timeouts, MAX_PENDING_PONGS};
pub use error::{close_code, ProtocolError};
pub use frame::OpCode;
pub use outgoing::{Frame, FrameParts, IntoFrame};
pub use received::{BinaryRef, Received};
pub use ws::{Incoming, Limits, MessageReader, Next, Role};

/// How a connection's incoming bytes are cut into messages.
#[derive(Debug)]
pub enum Decoder {
    /// WebSocket frames.
    Ws(MessageReader),
    /// ConnectMe TCP length-prefixed frames; every payload is binary.
    Tcp(tcp::TcpDeframer),
}

impl Decoder {
    /// The next message in `buf`, or `Ok(None)` until more bytes arrive. A whole binary
    /// message (every ConnectMe TCP payload) is left at the front of `buf`
    /// ([`Next::Binary`]).
    #[inline]
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Next>, ProtocolError> {
        match self {
            Self::Ws(reader) => reader.next_in_place(buf),
            Self::Tcp(deframer) => deframer.next_in_place(buf),
        }
    }

    /// Bytes the receive buffer must hold before the next call can make progress.
    pub fn wanted(&self) -> usize {
        match self {
            Self::Ws(reader) => reader.wanted(),
            Self::Tcp(deframer) => deframer.wanted(),
        }
    }

    /// Accepts session control frames from now on (the session extension is in use).
    pub fn accept_session_frames(&mut self) {
        match self {
            Self::Ws(reader) => reader.accept_session_frames(),
            Self::Tcp(deframer) => deframer.accept_session_frames(),
        }
    }

    /// Whether a fragmented message is in progress (its fragments so far are held).
    pub fn in_message(&self) -> bool {
        match self {
            Self::Ws(reader) => reader.in_message(),
            Self::Tcp(_) => false,
        }
    }
}

/// What kind of message a payload is sent as. ConnectMe TCP has no such marker: both are
/// sent as the bare payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A text message (UTF-8).
    Text,
    /// A binary message.
    Binary,
    /// A session control message (the engine's session extension): opcode 0x3 on a
    /// WebSocket, a length prefix with its top bit set on ConnectMe TCP.
    Session,
}

impl Kind {
    fn opcode(self) -> OpCode {
        match self {
            Self::Text => OpCode::Text,
            Self::Binary => OpCode::Binary,
            Self::Session => OpCode::Session,
        }
    }
}

/// How a connection frames outgoing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// WebSocket, server to client: unmasked, so one encoded frame can go to every client.
    WsServer,
    /// WebSocket, client to server: masked with a fresh key per frame.
    WsClient,
    /// ConnectMe TCP: 8-byte length prefix.
    Tcp,
}

impl Wire {
    /// One complete frame for a `kind` message of `len` bytes written by `write_payload`.
    #[inline]
    pub fn frame(self, kind: Kind, len: usize, write_payload: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        let mut buf = Vec::with_capacity(self.frame_len(len));
        self.write_frame(&mut buf, kind, len, write_payload);
        Bytes::from(buf)
    }

    /// The size of a frame with a `len`-byte payload.
    pub fn frame_len(self, len: usize) -> usize {
        match self {
            Self::WsServer => frame::header_len(len, false) + len,
            Self::WsClient => frame::header_len(len, true) + len,
            Self::Tcp => tcp::PREFIX_LEN + len,
        }
    }

    /// Appends one complete frame for a `kind` message of `len` bytes written by
    /// `write_payload` to `out` (a connection's queue of small frames).
    #[inline]
    pub fn write_frame(
        self,
        out: &mut Vec<u8>,
        kind: Kind,
        len: usize,
        write_payload: impl FnOnce(&mut Vec<u8>),
    ) {
        let opcode = kind.opcode();
        match self {
            Self::WsServer => frame::write_frame(out, opcode, None, len, write_payload),
            Self::WsClient => frame::write_frame(out, opcode, Some(mask_key()), len, write_payload),
            Self::Tcp if kind == Kind::Session => {
                let mut payload = Vec::with_capacity(len);
                write_payload(&mut payload);
                tcp::write_session_frame(out, &payload)
            }
            Self::Tcp => tcp::write_frame(out, len, write_payload),
        }
    }

    /// Only the header of an unmasked frame (WebSocket server) or the length prefix (TCP)
    /// for a payload of `len` bytes that is sent from its own buffer.
    pub fn header(self, kind: Kind, len: usize) -> Bytes {
        let mut head = BytesMut::with_capacity(frame::MAX_HEADER_LEN);
        match self {
            Self::Tcp => {
                let flags = if kind == Kind::Session {
                    tcp::SESSION_BIT
                } else {
                    0
                };
                head.extend_from_slice(&(flags | (tcp::PREFIX_LEN + len) as u64).to_be_bytes())
            }
            _ => frame::write_header(&mut head, true, kind.opcode(), None, len),
        }
        head.freeze()
    }

    /// A control frame (close, ping, pong); `None` on TCP, which has none.
    pub fn control(self, opcode: OpCode, payload: &[u8]) -> Option<Bytes> {
        let mask = match self {
            Self::WsServer => None,
            Self::WsClient => Some(mask_key()),
            Self::Tcp => return None,
        };
        Some(frame::build_frame(opcode, mask, payload.len(), |b| {
            b.extend_from_slice(payload)
        }))
    }

    /// Whether this is a WebSocket.
    pub fn is_websocket(self) -> bool {
        !matches!(self, Self::Tcp)
    }
}

/// A masking key. RFC 6455 asks for unpredictable keys so that a client's payload cannot
/// be aimed at an intermediary; fastrand's per-thread generator is seeded randomly.
fn mask_key() -> [u8; 4] {
    fastrand::u32(..).to_ne_bytes()
}

/// Client frames written by hand, for the tests of this module's parts.
#[cfg(test)]
pub(crate) mod test_frames {
    use super::frame::write_header;
    use super::mask::apply_mask;
    use super::OpCode;

    /// The masking key of RFC 6455's examples.
    pub(crate) const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame masked with [`KEY`].
    pub(crate) fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, fin, opcode, Some(KEY), payload.len());
        let mut body = payload.to_vec();
        apply_mask(&mut body, KEY);
        out.extend_from_slice(&body);
        out
    }
}

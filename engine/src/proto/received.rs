//! What a connection hands up for dispatch: a received data message, whole, either taken
//! out of the receive buffer or still lying at its front ([`Received`]), and the lent form
//! binary listeners see ([`BinaryRef`]).
//!
//! A small message read where it arrived costs no allocation and no reference count, which
//! for small messages is most of what dispatch would otherwise cost.

use bytes::Bytes;
use packme::{ByteString, BytesAtFront, TextAtFront};

/// A received data message, whole.
#[derive(Debug)]
pub enum Received<'a> {
    /// A text message with a buffer of its own (it arrived in fragments).
    Text(ByteString),
    /// A binary message with a buffer of its own.
    Binary(Bytes),
    /// A whole binary message at the front of the receive buffer: read it there, then take
    /// it or let it drop (which consumes it).
    InPlace(BytesAtFront<'a>),
    /// A whole text message at the front of the receive buffer, already validated.
    TextInPlace(TextAtFront<'a>),
    /// A session control message (the session extension's own frames): handled by the
    /// session layer, never dispatched to listeners.
    Session(Bytes),
}

/// A binary message lent to a [`listen_ref`](crate::Listeners::listen_ref) handler for the
/// call. It reads as `&[u8]`; sending it ([`IntoFrame`](super::outgoing::IntoFrame)) copies a small message into the
/// connection's queue and shares a large one without a copy; [`BinaryRef::to_bytes`]
/// keeps it.
#[derive(Debug, Clone, Copy)]
pub enum BinaryRef<'a> {
    /// A message under 1 KiB, still in the connection's receive buffer.
    InPlace(&'a [u8]),
    /// A message with a buffer of its own.
    Shared(&'a Bytes),
}

impl BinaryRef<'_> {
    /// The message as `Bytes`: a copy of a message read in place, a reference otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Self::InPlace(data) => Bytes::copy_from_slice(data),
            Self::Shared(data) => Bytes::clone(data),
        }
    }
}

impl std::ops::Deref for BinaryRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::InPlace(data) => data,
            Self::Shared(data) => data,
        }
    }
}

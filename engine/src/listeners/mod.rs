//! Listeners: handlers registered per message type ([`Listeners`], the verbs), what they
//! can receive ([`Listen`]) and return ([`Reply`]), the tables that hold them and the
//! receive-path dispatch of ConnectMe (spec section 4).
//!
//! A handler may add or cancel listeners while it runs (the reference fails with a
//! concurrent modification there, 11.A14): changes made during a dispatch are applied
//! right after it, before the next message.
//!
//! A small binary message whose listeners all only borrow it is lent where it arrived in
//! the receive buffer ([`BinaryRef`]) instead of being split off as `Bytes`: for small
//! messages the reference count costs more than everything else dispatch does.

mod dispatch;
mod handler;
mod table;
mod verbs;

use std::borrow::Cow;
use std::marker::PhantomData;

use bytes::Bytes;
use packme::{decode_frame, ByteString, DecodeError, Message, Packet, Registry};

pub(crate) use dispatch::dispatch;
pub(crate) use handler::Handler;
pub(crate) use table::{HandlerTable, ListenerCell};
pub(crate) use verbs::sealed::Host;
pub use verbs::Listeners;

use crate::proto::outgoing::IntoFrame;
use crate::proto::received::BinaryRef;

/// What a listener is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// Text messages.
    Text,
    /// Binary messages that are not a registered PackMe message.
    Binary,
    /// PackMe messages with this id.
    Message(u32),
}

/// A received message in the form every listener of its key starts from: borrowed while
/// other listeners still need it, owned by the last one, so the common single listener
/// takes the message without touching its reference count.
#[derive(Debug, Clone)]
pub enum Raw<'a> {
    /// A text message.
    Text(Cow<'a, ByteString>),
    /// A binary message or a whole PackMe frame.
    Binary(Cow<'a, Bytes>),
    /// A small binary message read in place in the connection's receive buffer: what
    /// listeners get when every one of them only borrows ([`Listen::BORROWS`]).
    BinaryInPlace(&'a [u8]),
    /// A text message read in place, when every text listener only borrows.
    TextInPlace(&'a str),
}

impl Raw<'_> {
    /// A binary message, lent.
    fn binary(&self) -> Option<BinaryRef<'_>> {
        match self {
            Self::Binary(data) => Some(BinaryRef::Shared(data)),
            Self::BinaryInPlace(data) => Some(BinaryRef::InPlace(data)),
            Self::Text(_) | Self::TextInPlace(_) => None,
        }
    }

    /// A binary message as `Bytes` of its own (a copy only for one read in place).
    fn into_bytes(self) -> Option<Bytes> {
        match self {
            Self::Binary(data) => Some(data.into_owned()),
            Self::BinaryInPlace(data) => Some(Bytes::copy_from_slice(data)),
            Self::Text(_) | Self::TextInPlace(_) => None,
        }
    }
}

/// A type a listener can receive: `String` or `ByteString` (text), `Bytes` or `Vec<u8>`
/// (binary), or `Packet<M>` for a PackMe message `M` (the transaction id comes with it,
/// so the handler can answer with `packet.response(..)`).
pub trait Listen: Sized + 'static {
    /// Whether [`Listen::from_raw`] only reads the message (copies what it keeps), so a
    /// message whose listeners all borrow is handed out in place, never split off the
    /// receive buffer into a reference-counted `Bytes`.
    const BORROWS: bool = false;
    /// The key this type listens on.
    fn key() -> Key;
    /// Converts the received message; PackMe types decode here. `Ok(None)` if `raw` is
    /// of the other kind (dispatch never routes it so).
    fn from_raw(raw: Raw<'_>) -> Result<Option<Self>, DecodeError>;
    /// Registers what decoding this type needs (PackMe message ids).
    fn register(_registry: &mut Registry) {}
}

impl Listen for ByteString {
    fn key() -> Key {
        Key::Text
    }
    fn from_raw(raw: Raw<'_>) -> Result<Option<Self>, DecodeError> {
        match raw {
            Raw::Text(s) => Ok(Some(s.into_owned())),
            Raw::TextInPlace(s) => Ok(Some(s.into())),
            _ => Ok(None),
        }
    }
}

impl Listen for String {
    const BORROWS: bool = true;
    fn key() -> Key {
        Key::Text
    }
    fn from_raw(raw: Raw<'_>) -> Result<Option<Self>, DecodeError> {
        match raw {
            Raw::Text(s) => Ok(Some(String::from(&**s))),
            Raw::TextInPlace(s) => Ok(Some(s.into())),
            _ => Ok(None),
        }
    }
}

impl Listen for Bytes {
    fn key() -> Key {
        Key::Binary
    }
    fn from_raw(raw: Raw<'_>) -> Result<Option<Self>, DecodeError> {
        Ok(raw.into_bytes())
    }
}

impl Listen for Vec<u8> {
    const BORROWS: bool = true;
    fn key() -> Key {
        Key::Binary
    }
    fn from_raw(raw: Raw<'_>) -> Result<Option<Self>, DecodeError> {
        Ok(raw.binary().map(|data| data.to_vec()))
    }
}

impl<M: Message + Send + Sync + 'static> Listen for Packet<M> {
    fn key() -> Key {
        Key::Message(M::ID)
    }
    fn from_raw(raw: Raw<'_>) -> Result<Option<Self>, DecodeError> {
        raw.into_bytes().map(decode_frame::<M>).transpose()
    }
    fn register(registry: &mut Registry) {
        // A collision is reported when the application registers its manifests; here the
        // first type registered for an id keeps it.
        let _ = registry.add::<M>();
    }
}

/// The PackMe types listeners of `T` decode (empty for text and raw bytes).
pub(crate) fn registry_of<T: Listen>() -> Registry {
    let mut registry = Registry::new();
    T::register(&mut registry);
    registry
}

/// Identifies one registered listener, for [`cancel`](crate::Listeners::cancel).
pub struct ListenerId<T> {
    pub(crate) id: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> ListenerId<T> {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            _type: PhantomData,
        }
    }
}

impl<T> Clone for ListenerId<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ListenerId<T> {}
impl<T> std::fmt::Debug for ListenerId<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ListenerId({})", self.id)
    }
}

/// Where a handler's return value goes: `()` sends nothing, a [`Packet`] (typically
/// `request.response(..)`) is sent back to the peer that sent the message, `Option` of
/// either sends when `Some` (the auto-reply style).
pub trait Reply {
    /// Sends the reply, if any, through `ctx`.
    fn deliver<C: Context>(self, ctx: &C);
}

impl Reply for () {
    fn deliver<C: Context>(self, _ctx: &C) {}
}

impl<M: Message> Reply for Packet<M> {
    fn deliver<C: Context>(self, ctx: &C) {
        ctx.send(self);
    }
}

impl<R: Reply> Reply for Option<R> {
    fn deliver<C: Context>(self, ctx: &C) {
        if let Some(reply) = self {
            reply.deliver(ctx);
        }
    }
}

/// The connection a handler is called with: a server's `Peer` or a `Client`.
pub trait Context {
    /// Sends a message on this connection.
    fn send<F: IntoFrame>(&self, message: F);
}

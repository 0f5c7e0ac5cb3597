//! Listeners: handlers registered per message type, and the receive-path dispatch of
//! ConnectMe (spec section 4): text to `String` listeners; binary tried as PackMe by its
//! registered 4-byte id, answering a pending query when the transaction id *and* the type
//! match, else going to that type's listeners; anything else, or a PackMe frame that does
//! not decode, to raw-bytes listeners.
//!
//! A handler may add or cancel listeners while it runs (the reference fails with a
//! concurrent modification there, 11.A14): changes made during a dispatch are applied
//! right after it, before the next message.
//!
//! A small binary message whose listeners all only borrow it is lent where it arrived in
//! the receive buffer ([`BinaryRef`]) instead of being split off as `Bytes`: for small
//! messages the reference count costs more than everything else dispatch does.

use std::borrow::Cow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;
use packme::{
    decode_frame, decode_frame_ref, ByteString, DecodeError, HasView, Message, MessageInfo, Packet,
    Registry,
};
use rustc_hash::FxHashMap;

use crate::proto::outgoing::{IntoFrame, ZERO_COPY_MIN};
use crate::proto::received::{BinaryRef, Received};

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

/// Identifies one registered listener, for [`cancel`](crate::Server::cancel).
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

type ErasedHandler<C> = Arc<dyn Fn(Raw<'_>, &C) -> Result<(), DecodeError> + Send + Sync>;

/// A handler in the erased form stored in tables.
pub(crate) struct Handler<C> {
    call: ErasedHandler<C>,
    /// It only reads the message ([`Listen::BORROWS`]).
    borrows: bool,
}

impl<C> Clone for Handler<C> {
    fn clone(&self) -> Self {
        Self {
            call: self.call.clone(),
            borrows: self.borrows,
        }
    }
}

/// Wraps a typed handler into the erased form stored in tables.
pub(crate) fn handler<T, C, R, F>(f: F) -> Handler<C>
where
    T: Listen,
    C: Context + 'static,
    R: Reply,
    F: Fn(T, &C) -> R + Send + Sync + 'static,
{
    Handler {
        call: Arc::new(move |raw, ctx| {
            if let Some(arg) = T::from_raw(raw)? {
                f(arg, ctx).deliver(ctx);
            }
            Ok(())
        }),
        borrows: T::BORROWS,
    }
}

/// Wraps a handler of binary messages lent for the call (`listen_ref`).
pub(crate) fn ref_handler<C, R, F>(f: F) -> Handler<C>
where
    C: Context + 'static,
    R: Reply,
    F: Fn(BinaryRef<'_>, &C) -> R + Send + Sync + 'static,
{
    Handler {
        call: Arc::new(move |raw, ctx| {
            if let Some(data) = raw.binary() {
                f(data, ctx).deliver(ctx);
            }
            Ok(())
        }),
        borrows: true,
    }
}

/// Wraps a handler of PackMe messages read as views (`listen_view`): strings borrow the
/// received frame for the call, with no reference count each.
pub(crate) fn view_handler<M, C, R, F>(f: F) -> Handler<C>
where
    M: HasView,
    C: Context + 'static,
    R: Reply,
    F: for<'a> Fn(Packet<M::View<'a>>, &C) -> R + Send + Sync + 'static,
{
    Handler {
        call: Arc::new(move |raw, ctx| {
            let copy;
            let frame = match &raw {
                Raw::Binary(frame) => &**frame,
                Raw::BinaryInPlace(data) => {
                    copy = Bytes::copy_from_slice(data);
                    &copy
                }
                Raw::Text(_) | Raw::TextInPlace(_) => return Ok(()),
            };
            f(decode_frame_ref::<M::View<'_>>(frame)?, ctx).deliver(ctx);
            Ok(())
        }),
        borrows: false,
    }
}

type HandlerList<C> = Vec<(u64, Handler<C>)>;

/// Handlers by key, each list in registration order. Text and binary lists are fields, so
/// the common lookups cost nothing; PackMe ids (already hashes) go through FxHash.
pub(crate) struct Listeners<C> {
    text: HandlerList<C>,
    binary: HandlerList<C>,
    messages: FxHashMap<u32, HandlerList<C>>,
}

impl<C> Default for Listeners<C> {
    fn default() -> Self {
        Self {
            text: Vec::new(),
            binary: Vec::new(),
            messages: FxHashMap::default(),
        }
    }
}

impl<C> Clone for Listeners<C> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            binary: self.binary.clone(),
            messages: self.messages.clone(),
        }
    }
}

impl<C> Listeners<C> {
    fn list_mut(&mut self, key: Key) -> &mut HandlerList<C> {
        match key {
            Key::Text => &mut self.text,
            Key::Binary => &mut self.binary,
            Key::Message(id) => self.messages.entry(id).or_default(),
        }
    }

    pub(crate) fn add(&mut self, key: Key, id: u64, handler: Handler<C>) {
        self.list_mut(key).push((id, handler));
    }

    pub(crate) fn remove(&mut self, key: Key, id: u64) -> bool {
        let list = self.list_mut(key);
        let before = list.len();
        list.retain(|(existing, _)| *existing != id);
        let removed = list.len() != before;
        if let Key::Message(message) = key {
            if self.messages.get(&message).is_some_and(Vec::is_empty) {
                self.messages.remove(&message);
            }
        }
        removed
    }

    fn get(&self, key: Key) -> &[(u64, Handler<C>)] {
        match key {
            Key::Text => &self.text,
            Key::Binary => &self.binary,
            Key::Message(id) => self.messages.get(&id).map(Vec::as_slice).unwrap_or(&[]),
        }
    }

    fn has(&self, key: Key) -> bool {
        !self.get(key).is_empty()
    }

    fn all_borrow(&self, key: Key) -> bool {
        self.get(key).iter().all(|(_, handler)| handler.borrows)
    }
}

type Deferred<C> = Box<dyn FnOnce(&mut Listeners<C>)>;

/// A listener table that handlers can change while it dispatches.
pub(crate) struct ListenerCell<C> {
    table: RefCell<Listeners<C>>,
    deferred: RefCell<Vec<Deferred<C>>>,
}

impl<C> Default for ListenerCell<C> {
    fn default() -> Self {
        Self {
            table: RefCell::default(),
            deferred: RefCell::default(),
        }
    }
}

impl<C> ListenerCell<C> {
    pub(crate) fn with_table(table: Listeners<C>) -> Self {
        Self {
            table: RefCell::new(table),
            deferred: RefCell::default(),
        }
    }

    /// Applies `change` now, or right after the dispatch in progress.
    pub(crate) fn apply(&self, change: impl FnOnce(&mut Listeners<C>) + 'static) {
        match self.table.try_borrow_mut() {
            Ok(mut table) => change(&mut table),
            Err(_) => self.deferred.borrow_mut().push(Box::new(change)),
        }
    }

    fn apply_deferred(&self) {
        // The common case, checked without building and dropping an empty batch.
        if self.deferred.borrow().is_empty() {
            return;
        }
        loop {
            let pending = std::mem::take(&mut *self.deferred.borrow_mut());
            if pending.is_empty() {
                return;
            }
            let mut table = self.table.borrow_mut();
            for change in pending {
                change(&mut table);
            }
        }
    }
}

/// Runs `handler`, containing a panic so that one failing handler cannot take the shard
/// down; returns its decode result.
fn call<C>(handler: &Handler<C>, raw: Raw<'_>, ctx: &C) -> Result<(), DecodeError> {
    match catch_unwind(AssertUnwindSafe(|| (handler.call)(raw, ctx))) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            tracing::error!(panic = %what, "message handler panicked");
            Ok(())
        }
    }
}

/// Calls every handler for `key` in `tables` (the connection's own first), stopping at the
/// first decode failure, which is returned (the caller then treats the frame as bytes).
/// Every handler but the last gets a clone of `raw`; the last gets `raw` itself.
fn call_all<C>(
    tables: &Tables<'_, C>,
    key: Key,
    raw: Raw<'_>,
    ctx: &C,
) -> Result<bool, DecodeError> {
    let [own, shared] = tables.map(|table| table.map_or(&[][..], |table| table.get(key)));
    let mut left = own.len() + shared.len();
    for (_, handler) in own.iter().chain(shared) {
        left -= 1;
        if left == 0 {
            call(handler, raw, ctx)?;
            return Ok(true);
        }
        call(handler, raw.clone(), ctx)?;
    }
    Ok(false)
}

/// The connection's own listeners (if any), then the endpoint-wide ones.
type Tables<'a, C> = [Option<&'a Listeners<C>>; 2];

/// Dispatches one received message on `link` (spec section 4): `own` are the connection's
/// listeners, `shared` the server-wide (or client) ones.
pub(crate) fn dispatch<C>(
    message: Received,
    conn: u64,
    registry: &Registry,
    own: Option<&ListenerCell<C>>,
    shared: &ListenerCell<C>,
    ctx: &C,
) {
    {
        let own_table = own.map(|cell| cell.table.borrow());
        let shared_table = shared.table.borrow();
        let tables = [own_table.as_deref(), Some(&*shared_table)];
        dispatch_in(message, conn, registry, &tables, ctx);
    }
    if let Some(own) = own {
        own.apply_deferred();
    }
    shared.apply_deferred();
}

fn dispatch_in<C>(
    message: Received,
    conn: u64,
    registry: &Registry,
    tables: &Tables<'_, C>,
    ctx: &C,
) {
    let frame = match message {
        Received::Text(text) => {
            let _ = call_all(tables, Key::Text, Raw::Text(Cow::Owned(text)), ctx);
            return;
        }
        Received::TextInPlace(text) if all_borrow(tables, Key::Text) => {
            let _ = call_all(tables, Key::Text, Raw::TextInPlace(text.as_str()), ctx);
            return;
        }
        Received::TextInPlace(text) => {
            let _ = call_all(tables, Key::Text, Raw::Text(Cow::Owned(text.take())), ctx);
            return;
        }
        Received::Binary(frame) => frame,
        Received::InPlace(message) if readable_in_place(message.as_bytes(), registry, tables) => {
            let _ = call_all(
                tables,
                Key::Binary,
                Raw::BinaryInPlace(message.as_bytes()),
                ctx,
            );
            return;
        }
        Received::InPlace(message) => message.take(),
    };
    if let Some(id) = packme::FrameHeader::message_id(&frame) {
        let key = Key::Message(id);
        let info = registered(registry, id);
        if info.is_some() || any_listens(tables, key) {
            // Borrowed: a frame that does not decode goes on to the raw-bytes listeners.
            match call_all(tables, key, Raw::Binary(Cow::Borrowed(&frame)), ctx) {
                Ok(true) => return,
                Ok(false) => {
                    // Registered but nobody listens: it still counts as PackMe unless it
                    // fails to decode, in which case raw-bytes listeners get it.
                    let decodes = info.is_none_or(|info| (info.decode)(frame.clone()).is_ok());
                    if decodes {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(conn, %error, "unpacking message failed, delivering as bytes");
                }
            }
        }
    }
    let _ = call_all(tables, Key::Binary, Raw::Binary(Cow::Owned(frame)), ctx);
}

/// Whether a binary message can be handed out in place: it is small (a large one is
/// worth a reference count, as sending it on then needs no copy), goes to raw-bytes
/// listeners only (it cannot be a PackMe message someone listens for or registered, which
/// decode from `Bytes`; query answers never get here, the connection takes them), and
/// every one of them only borrows it.
fn readable_in_place<C>(data: &[u8], registry: &Registry, tables: &Tables<'_, C>) -> bool {
    if data.len() >= ZERO_COPY_MIN {
        return false;
    }
    if let Some(id) = packme::FrameHeader::message_id(data) {
        let packme = registered(registry, id).is_some() || any_listens(tables, Key::Message(id));
        if packme {
            return false;
        }
    }
    all_borrow(tables, Key::Binary)
}

/// What `registry` knows of PackMe id `id` (an empty registry, the common case for raw
/// bytes, is not searched).
fn registered(registry: &Registry, id: u32) -> Option<&MessageInfo> {
    if registry.is_empty() {
        None
    } else {
        registry.get(id)
    }
}

/// Whether any table has a listener for `key`.
fn any_listens<C>(tables: &Tables<'_, C>, key: Key) -> bool {
    tables.iter().flatten().any(|t| t.has(key))
}

/// Whether every listener for `key`, in every table, only borrows the message.
fn all_borrow<C>(tables: &Tables<'_, C>, key: Key) -> bool {
    tables.iter().flatten().all(|t| t.all_borrow(key))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use packme::{BytesAtFront, TextAtFront};

    use super::*;

    /// Records what each listener got.
    #[derive(Default)]
    struct Seen(RefCell<Vec<(u8, Bytes)>>);

    impl Context for Seen {
        fn send<F: IntoFrame>(&self, _message: F) {}
    }

    /// A binary listener that records what it got under `tag`.
    fn recorder(tag: u8) -> Handler<Seen> {
        handler(move |data: Bytes, seen: &Seen| seen.0.borrow_mut().push((tag, data)))
    }

    /// Dispatches `frame` as a binary message on a server link with the connection's `own`
    /// listeners (if any) and the endpoint-wide `shared` ones; returns what they recorded.
    fn dispatch_binary(
        own: Option<Listeners<Seen>>,
        shared: Listeners<Seen>,
        frame: Bytes,
    ) -> Vec<(u8, Bytes)> {
        let own = own.map(ListenerCell::with_table);
        let shared = ListenerCell::with_table(shared);
        let seen = Seen::default();
        dispatch(
            Received::Binary(frame),
            1,
            &Registry::new(),
            own.as_ref(),
            &shared,
            &seen,
        );
        seen.0.into_inner()
    }

    #[test]
    fn every_listener_gets_the_message_and_the_last_one_takes_it() {
        let mut table = Listeners::<Seen>::default();
        for tag in [1u8, 2] {
            table.add(Key::Binary, u64::from(tag), recorder(tag));
        }
        let frame = Bytes::from(vec![7u8; 16]);
        let at = frame.as_ptr();
        let seen = dispatch_binary(None, table, frame);
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|(_, data)| data[..] == [7u8; 16]));
        assert_eq!((seen[0].0, seen[1].0), (1, 2), "in registration order");
        assert_eq!(seen[1].1.as_ptr(), at, "the frame itself, not a copy");
    }

    #[test]
    fn own_listeners_come_first_and_the_last_listener_anywhere_takes_the_message() {
        for shared_tags in [&[][..], &[3u8][..]] {
            let mut own = Listeners::<Seen>::default();
            own.add(Key::Binary, 1, recorder(1));
            own.add(Key::Binary, 2, recorder(2));
            let mut shared = Listeners::<Seen>::default();
            for &tag in shared_tags {
                shared.add(Key::Binary, u64::from(tag), recorder(tag));
            }
            let frame = Bytes::from(vec![9u8; 8]);
            let at = frame.as_ptr();
            let seen = dispatch_binary(Some(own), shared, frame);
            let tags: Vec<u8> = seen.iter().map(|(tag, _)| *tag).collect();
            let expected: Vec<u8> = [1, 2].iter().chain(shared_tags).copied().collect();
            assert_eq!(tags, expected, "own listeners first, in registration order");
            assert_eq!(
                seen.last().unwrap().1.as_ptr(),
                at,
                "the received frame, not a copy"
            );
        }
    }

    #[test]
    fn a_message_lent_in_place_is_consumed_even_if_its_handler_panics() {
        let mut table = Listeners::<Seen>::default();
        table.add(
            Key::Binary,
            1,
            ref_handler(|data: BinaryRef, seen: &Seen| {
                assert!(matches!(data, BinaryRef::InPlace(_)), "lent in place");
                seen.0.borrow_mut().push((1, data.to_bytes()));
                assert_ne!(&data[..], b"boom", "a handler failure on purpose");
            }),
        );
        let shared = ListenerCell::with_table(table);
        let seen = Seen::default();
        let mut buf = bytes::BytesMut::from(&b"boomfine rest"[..]);
        for len in [4, 4] {
            let message = Received::InPlace(BytesAtFront::new(&mut buf, len));
            dispatch(message, 1, &Registry::new(), None, &shared, &seen);
        }
        assert_eq!(&buf[..], b" rest", "each message consumed, the rest left");
        let seen: Vec<Bytes> = seen.0.into_inner().into_iter().map(|(_, d)| d).collect();
        assert_eq!(seen, [&b"boom"[..], &b"fine"[..]]);
    }

    #[test]
    fn text_is_lent_to_string_listeners_and_split_off_for_byte_strings() {
        let string = handler(|text: String, seen: &Seen| {
            seen.0.borrow_mut().push((0, Bytes::from(text)));
        });
        let byte_string = handler(|text: ByteString, seen: &Seen| {
            seen.0.borrow_mut().push((0, text.into_bytes()));
        });
        let mut buf = bytes::BytesMut::from(&b"lentkept rest"[..]);
        for (handler, text, copied) in [(string, "lent", true), (byte_string, "kept", false)] {
            let mut table = Listeners::<Seen>::default();
            table.add(Key::Text, 1, handler);
            let (seen, at) = (Seen::default(), buf.as_ptr());
            let message = Received::TextInPlace(TextAtFront::new(&mut buf, 4).unwrap());
            let shared = ListenerCell::with_table(table);
            dispatch(message, 1, &Registry::new(), None, &shared, &seen);
            let (_, got) = seen.0.into_inner().pop().expect("delivered");
            assert_eq!(
                got,
                text.as_bytes(),
                "the text, and the buffer advanced past it"
            );
            assert_eq!(got.as_ptr() != at, copied, "{text}: copied only by String");
        }
        assert_eq!(&buf[..], b" rest");
    }

    #[test]
    fn a_single_listener_takes_the_message_without_a_clone() {
        let mut table = Listeners::<Seen>::default();
        table.add(
            Key::Binary,
            1,
            handler(|data: Bytes, seen: &Seen| {
                let unique = u8::from(data.is_unique());
                seen.0.borrow_mut().push((unique, data));
            }),
        );
        let mut received = bytes::BytesMut::from(&[5u8; 32][..]);
        let frame = received.split_to(16).freeze();
        drop(received);
        let seen = dispatch_binary(None, table, frame);
        assert_eq!(seen[0].0, 1, "no other reference to the frame exists");
    }
}

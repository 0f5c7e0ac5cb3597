//! What a JSON handler or middleware holds while it runs: [`JsonContext`], the request's
//! `e`/`v`/`c` and the caller's identity, with the sends of websocket-core-features.md §8.2
//! (`send`, `emit`, `reply`, `error`, room broadcast, join/leave).
//!
//! It exists apart from the server so the router can be written and tested without one: a
//! connection is reached only through [`JsonPeer`], a handful of primitives the server's
//! JSON connection implements (send a frame, close, identity, rooms). Every envelope is
//! encoded here with [`Head`]/[`SysError`], so the peer only moves bytes.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::encode::{now_ms, EncodeError, Head, SysError};
use super::envelope::Envelope;
use super::error::HandlerError;
use super::router::JsonRouter;
use crate::auth::Identity;

/// The connection as the JSON router sees it: the server's JSON connection implements it.
///
/// Every frame handed over is one complete envelope without `s`: everything the router
/// sends is a sequenced message (sessions-resume.md), and `s`, the last key, is added by the
/// session layer (drop the final `}`, append `,"s":N}`). Calls come from the connection's
/// shard thread, never while another call on the same peer is running.
pub(crate) trait JsonPeer: 'static {
    /// The connection's id, for logs.
    fn connection_id(&self) -> u64;

    /// Queues one text frame to this connection. `Err` when it is closed (or closing).
    fn send_text(&self, frame: Bytes) -> Result<(), PeerClosed>;

    /// Closes the connection with a close frame carrying `code` and `reason`.
    fn close(&self, code: u16, reason: &str);

    /// Who the connection is authenticated as, read when a message starts being handled
    /// (so a login handler's effect is seen by the next message).
    fn identity(&self) -> Option<Rc<Identity>>;

    /// Adds the connection's session to `room` (created if missing). An `Err` is answered
    /// to the client as it is (e.g. a full room, a forbidden one).
    fn join(&self, room: &str) -> Result<(), HandlerError>;

    /// Removes the connection's session from `room`; `false` if it was not a member.
    fn leave(&self, room: &str) -> bool;

    /// Sends `frame`, encoded once, to every member of `room` (but this connection's
    /// session when `exclude_self`); returns how many it was queued to.
    fn broadcast_to_room(&self, room: &str, frame: Bytes, exclude_self: bool) -> usize;

    /// A `sys.*` event the connection answers itself instead of the router (the session
    /// events `sys.ack` and `sys.reconnect.request`): `true` if it did, and the message
    /// goes no further. Called in arrival order, before the message is queued.
    fn system_event(&self, _envelope: &Envelope<'_>) -> bool {
        false
    }

    /// A `sys.*` message whose envelope was refused: `true` if the connection sent
    /// `answer` (its `sys.error`) itself, as a control event outside the session's
    /// sequence (sessions-resume.md: the answer to a `sys.ack` or a
    /// `sys.reconnect.request`); `false` sends it as any other answer.
    fn refused_system_event(&self, _event: &str, _answer: &Bytes) -> bool {
        false
    }
}

/// The connection is closed: nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub(crate) struct PeerClosed;

/// What a send from a [`JsonContext`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection went away (or its dispatcher was closed).
    #[error("the connection is closed")]
    Closed,
    /// The payload is not a JSON object, or its `Serialize` failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<PeerClosed> for SendError {
    fn from(_: PeerClosed) -> Self {
        SendError::Closed
    }
}

/// One connection's state shared by its dispatcher and every context it hands out.
pub(super) struct Conn {
    pub(super) peer: Rc<dyn JsonPeer>,
    pub(super) router: Arc<JsonRouter>,
    closed: Cell<bool>,
}

impl Conn {
    pub(super) fn new(peer: Rc<dyn JsonPeer>, router: Arc<JsonRouter>) -> Self {
        Conn {
            peer,
            router,
            closed: Cell::new(false),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(super) fn set_closed(&self) {
        self.closed.set(true);
    }

    /// Sends an encoded frame unless the dispatcher was closed.
    pub(super) fn send_frame(&self, frame: Vec<u8>) -> Result<(), SendError> {
        self.send_bytes(Bytes::from(frame))
    }

    /// Sends an encoded frame unless the dispatcher was closed.
    pub(super) fn send_bytes(&self, frame: Bytes) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        self.peer.send_text(frame)?;
        Ok(())
    }

    /// Sends a copy of `frame` (a [`with_scratch`] buffer) unless the dispatcher was closed.
    pub(super) fn send_copy(&self, frame: &[u8]) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        self.peer.send_text(Bytes::copy_from_slice(frame))?;
        Ok(())
    }

    /// Sends `error` as a `sys.error` answering `request` (its `c` and `v`).
    pub(super) fn send_sys_error(&self, request: &Request, error: &SysError<'_>) {
        let mut out = Vec::with_capacity(128);
        error.encode(request.head("", now_ms()), &mut out);
        // A closed connection has nobody left to tell.
        let _ = self.send_frame(out);
    }
}

thread_local! {
    /// The shard thread's buffer for encoding outbound envelopes (see [`with_scratch`]).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer kept after use only up to this capacity: a rare large reply is not held.
const SCRATCH_KEPT: usize = 16 * 1024;

/// Runs `f` on the thread's encode buffer, emptied. An envelope is encoded there and sent
/// as a copy of its exact size ([`Conn::send_copy`]): one allocation per frame, where a
/// fresh `Vec` cost one, a second when the reply outgrew its guessed capacity, and a third
/// for `Bytes::from` of a `Vec` with spare capacity. One buffer per shard thread, none per
/// connection. Re-entrant: a call inside `f` (an application's `Serialize` that sends) gets
/// a buffer of its own.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut out = SCRATCH.take();
    out.clear();
    let result = f(&mut out);
    if out.capacity() <= SCRATCH_KEPT {
        SCRATCH.set(out);
    }
    result
}

/// The `e`, `v` and `c` of the message being handled, owned (the frame is gone by the time
/// an awaiting handler replies), in one allocation that also holds the answer's event:
/// `<e>.response<v><c>`.
pub(super) struct Request {
    text: Box<str>,
    event_end: usize,
    version_start: usize,
    version_end: usize,
    has_correlation: bool,
    /// What middleware handed on to the handler (§8.2 `extras`), one value per type;
    /// allocated only when used.
    extras: RefCell<Vec<Box<dyn Any>>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("event", &self.event())
            .field("version", &self.version())
            .field("correlation", &self.correlation())
            .finish_non_exhaustive()
    }
}

/// What an answer's event adds to the request's (§8.4).
const RESPONSE_SUFFIX: &str = ".response";

impl Request {
    pub(super) fn new(envelope: &Envelope<'_>) -> Self {
        let (event, version) = (envelope.event(), envelope.version());
        let correlation = envelope.correlation();
        let c = correlation.unwrap_or("");
        let version_start = event.len() + RESPONSE_SUFFIX.len();
        let mut text = String::with_capacity(version_start + version.len() + c.len());
        text.push_str(event);
        text.push_str(RESPONSE_SUFFIX);
        text.push_str(version);
        text.push_str(c);
        Request {
            text: text.into_boxed_str(),
            event_end: event.len(),
            version_start,
            version_end: version_start + version.len(),
            has_correlation: correlation.is_some(),
            extras: RefCell::default(),
        }
    }

    pub(super) fn event(&self) -> &str {
        &self.text[..self.event_end]
    }

    /// `<event>.response`, the event of an answer.
    pub(super) fn response_event(&self) -> &str {
        &self.text[..self.version_start]
    }

    pub(super) fn version(&self) -> &str {
        &self.text[self.version_start..self.version_end]
    }

    pub(super) fn correlation(&self) -> Option<&str> {
        self.has_correlation.then(|| &self.text[self.version_end..])
    }

    /// A head with `event`, the request's `v` and `c`.
    pub(super) fn head<'a>(&'a self, event: &'a str, t: u64) -> Head<'a> {
        Head::new(event, self.version(), t).correlation(self.correlation())
    }
}

/// What a handler and a middleware get: the request, the caller, and the sends.
///
/// Cheap to clone (two reference counts); a clone kept after the handler ends (in a task of
/// its own) can still send until the connection closes, then every send is
/// `Err(SendError::Closed)`.
#[derive(Clone)]
pub struct JsonContext {
    conn: Rc<Conn>,
    request: Rc<Request>,
    identity: Option<Rc<Identity>>,
}

impl fmt::Debug for JsonContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonContext")
            .field("connection", &self.conn.peer.connection_id())
            .field("event", &self.event())
            .field("version", &self.version())
            .field("correlation", &self.correlation())
            .field("user", &self.user())
            .finish()
    }
}

impl JsonContext {
    /// A context for `request`, with the identity the connection has now.
    pub(super) fn new(conn: Rc<Conn>, request: Rc<Request>) -> Self {
        let identity = conn.peer.identity();
        JsonContext {
            conn,
            request,
            identity,
        }
    }

    pub(super) fn conn(&self) -> &Rc<Conn> {
        &self.conn
    }

    pub(super) fn request(&self) -> &Request {
        &self.request
    }

    /// The request's event (`e`).
    pub fn event(&self) -> &str {
        self.request.event()
    }

    /// The request's version (`v`, or the current version when it had none).
    pub fn version(&self) -> &str {
        self.request.version()
    }

    /// The request's correlation id (`c`).
    pub fn correlation(&self) -> Option<&str> {
        self.request.correlation()
    }

    /// The connection's id.
    pub fn connection_id(&self) -> u64 {
        self.conn.peer.connection_id()
    }

    /// Who the caller is authenticated as, `None` when anonymous.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// The caller's user id, `None` when anonymous.
    pub fn user(&self) -> Option<&str> {
        self.identity().map(|identity| identity.user.as_str())
    }

    /// Stores `value` for the rest of this message's pipeline, replacing a value of the same
    /// type: how a middleware hands something to the handler (§8.2 `extras`, typed).
    pub fn set_extra<T: 'static>(&self, value: T) {
        let mut extras = self.request.extras.borrow_mut();
        match extras.iter_mut().find(|extra| extra.is::<T>()) {
            Some(extra) => *extra = Box::new(value),
            None => extras.push(Box::new(value)),
        }
    }

    /// A clone of the value of type `T` stored with [`JsonContext::set_extra`].
    pub fn extra<T: Clone + 'static>(&self) -> Option<T> {
        let extras = self.request.extras.borrow();
        extras
            .iter()
            .find_map(|extra| extra.downcast_ref::<T>().cloned())
    }

    /// Whether the connection is gone: sends fail from then on.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Sends a message the server starts: the current protocol version, no `c`.
    pub fn send<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), SendError> {
        let version = self.conn.router.config().current();
        self.encode_send(Head::new(event, version, now_ms()), payload)
    }

    /// Sends to the caller with the request's version and no `c` (§8.2 `emit`: not an
    /// answer to the request, so a client's `request()` is not resolved by it).
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), SendError> {
        self.encode_send(Head::new(event, self.version(), now_ms()), payload)
    }

    /// Answers the request: `<event>.response` with its `c` and `v`. Returning the payload
    /// from the handler does the same.
    pub fn reply<T: Serialize + ?Sized>(&self, payload: &T) -> Result<(), SendError> {
        let head = self.request.head(self.request.response_event(), now_ms());
        self.encode_send(head, payload)
    }

    /// Answers the request with `sys.error {code, message}` (its `c` and `v`).
    pub fn error(&self, code: u16, message: &str) -> Result<(), SendError> {
        let mut out = Vec::with_capacity(128);
        HandlerError::new(code, message.to_owned()).encode_app(&self.request, &mut out)?;
        self.conn.send_frame(out)
    }

    /// Sends `event` to every member of `room` (but the caller's session when
    /// `exclude_sender`), encoded once; the envelope carries the current version and no `c`
    /// (§8.2). Returns how many it was queued to.
    pub fn broadcast_to_room<T: Serialize + ?Sized>(
        &self,
        room: &str,
        event: &str,
        payload: &T,
        exclude_sender: bool,
    ) -> Result<usize, SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let version = self.conn.router.config().current();
        let frame = with_scratch(|out| {
            Head::new(event, version, now_ms()).encode(payload, out)?;
            Ok::<_, SendError>(Bytes::copy_from_slice(out))
        })?;
        Ok(self
            .conn
            .peer
            .broadcast_to_room(room, frame, exclude_sender))
    }

    /// Joins `room`; the server's refusal (a full room) comes back as the error to answer.
    pub fn join(&self, room: &str) -> Result<(), HandlerError> {
        if self.is_closed() {
            return Err(SendError::Closed.into());
        }
        self.conn.peer.join(room)
    }

    /// Leaves `room`; `false` if the caller was not in it.
    pub fn leave(&self, room: &str) -> bool {
        self.conn.peer.leave(room)
    }

    /// Closes the connection with `code` and `reason`.
    pub fn close(&self, code: u16, reason: &str) {
        if !self.is_closed() {
            self.conn.peer.close(code, reason);
        }
    }

    /// The auto-reply for a handler's returned value (§8.1 step 8, §8.4): `<event>.response`
    /// with the request's `c` and `v`. An object is the payload; any other value (a list, a
    /// string, a number) goes in `{"data": …}`, since `p` is always an object (§3) and the
    /// reference's silent drop of lists is a defect (§18 A6); `null` (`()`, `None`) sends
    /// nothing. Sent whether or not the request had a `c`, as the reference does, for
    /// clients listening for `<event>.response`.
    pub(super) fn auto_reply<R: Serialize + ?Sized>(&self, value: &R) -> Result<(), HandlerError> {
        let head = self.request.head(self.request.response_event(), now_ms());
        with_scratch(|out| {
            match head.encode(value, out) {
                Ok(()) => {}
                Err(EncodeError::PayloadNotObject) => {
                    let raw =
                        serde_json::value::to_raw_value(value).map_err(HandlerError::internal)?;
                    if raw.get() == "null" {
                        return Ok(());
                    }
                    head.encode(&Wrapped { data: &raw }, out)
                        .map_err(HandlerError::internal)?;
                }
                Err(error) => return Err(HandlerError::internal(error)),
            }
            // A connection gone while the handler ran has nobody left to answer (§8.1 step
            // 10: the reference crashed there).
            let _ = self.conn.send_copy(out);
            Ok(())
        })
    }

    fn encode_send<T: Serialize + ?Sized>(
        &self,
        head: Head<'_>,
        payload: &T,
    ) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        with_scratch(|out| {
            head.encode(payload, out)?;
            self.conn.send_copy(out)
        })
    }
}

/// A returned value that is not an object, as the reply's payload.
#[derive(Serialize)]
struct Wrapped<'a> {
    data: &'a serde_json::value::RawValue,
}

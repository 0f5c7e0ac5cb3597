//! [`Peer`]: a handle to one client connected to a server (ConnectMe's server-side client
//! object). It is `Send + Sync + Clone`: on the connection's own shard it acts directly on
//! the connection; from any other thread it posts the work to that shard.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use packme::{Message, Packet, Registry, RegistryError, Request};

use super::client_entry::Conn;
use super::info::ConnInfo;
use super::shard::shard_of;
use super::{IntoFanout, ServerShared};
use crate::auth::Identity;
use crate::listeners::{Context, Handler, Host, Key};
use crate::proto::close_code;
use crate::proto::outgoing::IntoFrame;
use crate::proto::FrameParts;
use crate::query::{query_channel, Query, QueryError};
use crate::room::RoomError;

struct PeerInner<S> {
    /// The id, which also names the shard that owns the client ([`shard_of`]).
    id: u64,
    info: ConnInfo,
    /// Boxed: 8 bytes on every connection where the identity itself takes 48, and only an
    /// authenticating server has one (this allocation is most of what a peer costs).
    identity: Option<Box<Identity>>,
    state: S,
    server: Arc<ServerShared<S>>,
    /// The client is gone (its connection, or its session, ended): it joins no room.
    ended: AtomicBool,
    /// The client speaks the JSON protocol.
    json: bool,
}

/// A client connected to the server.
pub struct Peer<S = ()> {
    inner: Arc<PeerInner<S>>,
}

impl<S> Clone for Peer<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Peer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.inner.id)
            .field("shard", &shard_of(self.inner.id))
            .field("peer_addr", &self.inner.info.peer_addr())
            .finish_non_exhaustive()
    }
}

impl<S> Peer<S> {
    /// Whether the client speaks the websocket_core JSON protocol (else ConnectMe's).
    pub fn speaks_json(&self) -> bool {
        self.inner.json
    }
}

impl<S: Send + Sync + 'static> Peer<S> {
    /// A peer for client `id`, made by the shard that owns it ([`shard_of`]).
    pub(crate) fn new(
        id: u64,
        info: ConnInfo,
        identity: Option<Identity>,
        state: S,
        server: Arc<ServerShared<S>>,
        json: bool,
    ) -> Self {
        Self {
            inner: Arc::new(PeerInner {
                id,
                info,
                identity: identity.map(Box::new),
                state,
                server,
                ended: AtomicBool::new(false),
                json,
            }),
        }
    }

    /// A server-unique connection id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The shard (core) that owns this client. A session stays on the shard that created
    /// it: a resume that arrives on another is handed over to it.
    pub fn shard(&self) -> usize {
        shard_of(self.inner.id)
    }

    /// Address, path, query, headers and subprotocol of the connection (for a session,
    /// of the connection that created it).
    pub fn info(&self) -> &ConnInfo {
        &self.inner.info
    }

    /// Who the client authenticated as ([`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)).
    pub fn identity(&self) -> Option<&Identity> {
        self.inner.identity.as_deref()
    }

    /// The authenticated user id.
    pub fn user(&self) -> Option<&str> {
        self.inner.identity.as_ref().map(|i| i.user.as_str())
    }

    /// A header of the upgrade request (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.info.headers().get(name)
    }

    /// The per-connection state built by the server's state factory (ConnectMe's custom
    /// client class). Use interior mutability (atomics, a `Mutex`) for fields that change.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// Runs `f` on this client's shard with its entry; dropped if it is gone.
    fn with_conn(&self, f: impl FnOnce(&mut Conn<S>) + Send + 'static) {
        let server = &self.inner.server;
        if let Some(f) = server.on_local_conn(self.shard(), self.inner.id, f) {
            server.post_to_conn(self.shard(), self.inner.id, f);
        }
    }

    /// Sends a message: a string as text, bytes as binary, a [`Packet`] encoded once.
    /// Dropped silently if the client is closing or gone. With a session, the message is
    /// numbered and kept for replay, and reaches the client even across a reconnect.
    pub fn send<F: IntoFrame>(&self, message: F) {
        // On the client's own shard a small message is encoded straight into its queue;
        // elsewhere it is framed here and the frame is posted.
        let mut message = Some(message);
        let server = &self.inner.server;
        let wire = server.wire();
        let local = server.on_local_conn(self.shard(), self.inner.id, |conn| {
            if let Some(message) = message.take() {
                conn.send_message(wire, message);
            }
        });
        if local.is_none() {
            return;
        }
        let Some(message) = message else { return };
        let frame = message.into_parts(wire);
        server.post_to_conn(self.shard(), self.inner.id, move |conn| {
            conn.send_parts(frame)
        });
    }

    /// Sends a PackMe message with a fresh server transaction id.
    pub fn send_message<M: Message>(&self, message: M) {
        self.send(Packet::new(
            message,
            self.inner.server.next_transaction_id(),
        ));
    }

    /// Sends `request` and resolves with the response carrying the same transaction id and
    /// the request's response type, or an error on timeout or disconnect. Server
    /// transaction ids count down from `u32::MAX`, a range real clients never reach, so
    /// they cannot collide with the client's own queries (spec 11.A1).
    pub fn query<R: Request>(&self, request: R) -> Query<R::Response> {
        let tid = self.inner.server.next_transaction_id();
        let frame = Packet::new(request, tid).into_frame(self.inner.server.wire());
        let (reply, query) = query_channel();
        self.with_conn(move |conn| match conn.link.clone() {
            Some(link) => {
                if link.register_query(tid, <R::Response as Message>::ID, reply) {
                    conn.send_parts(FrameParts::whole(frame));
                }
            }
            None => {
                let _ = reply.send(Err(QueryError::NotConnected));
            }
        });
        query
    }

    /// Drops the client's current connection at once, without a close handshake, as a
    /// network failure would. A session is kept (suspended) for the client to resume; a
    /// client without one is gone. Meant for tests and for kicking a stuck socket.
    pub fn disconnect(&self) {
        self.with_conn(|conn| {
            if let Some(link) = &conn.link {
                link.abort(crate::proto::End::Closed(close_code::GOING_AWAY));
            }
        });
    }

    /// The client processed every sequenced message of its session up to `seq` (the JSON
    /// protocol's `sys.ack`): they leave the replay buffer.
    pub(super) fn acknowledge(&self, seq: u64) {
        self.with_conn(move |conn| {
            if let Some(session) = conn.session.as_mut() {
                session.replay.ack(seq);
            }
        });
    }

    /// The client ended (its connection, or its session): rooms refuse it from now on.
    pub(super) fn ended(&self) {
        self.inner.ended.store(true, Ordering::Release);
    }

    pub(super) fn has_ended(&self) -> bool {
        self.inner.ended.load(Ordering::Acquire)
    }

    /// Joins room `room` (created if missing). Membership belongs to the client: with a
    /// session it survives reconnects (broadcasts to the room wait in the session's
    /// replay buffer meanwhile) and ends when the session ends.
    pub fn join(&self, room: &str) -> Result<(), RoomError> {
        self.inner.server.join(room, self)
    }

    /// Leaves room `room`; whether the client was in it. An empty room is deleted unless
    /// it was created to be kept.
    pub fn leave(&self, room: &str) -> bool {
        self.inner.server.leave(room, self)
    }

    /// The rooms the client is in, in the order joined.
    pub fn rooms(&self) -> Vec<String> {
        self.inner.server.rooms.rooms_of(self.inner.id)
    }

    /// Sends `message` to every other member of room `room` (not to this client), as
    /// [`Server::broadcast_to_room`](crate::Server::broadcast_to_room) does.
    pub fn broadcast_to_room<F: IntoFanout>(&self, room: &str, message: F) {
        self.inner
            .server
            .broadcast_to_rooms(&[room], message, Some(self.inner.id));
    }

    /// Sends a text message to the members of room `room` (this client too unless
    /// `exclude_self`); returns how many it was posted to.
    pub(super) fn broadcast_text_to_room(
        &self,
        room: &str,
        text: impl IntoFanout,
        exclude_self: bool,
    ) -> usize {
        let exclude = exclude_self.then_some(self.inner.id);
        self.inner.server.broadcast_to_rooms(&[room], text, exclude)
    }

    /// Closes the connection with a normal close (1000).
    pub fn close(&self) {
        self.close_with(close_code::NORMAL, "");
    }

    /// Closes the connection with `code` and `reason`. A session ends with it (it is not
    /// kept for a resume).
    pub fn close_with(&self, code: u16, reason: &str) {
        let reason = reason.to_owned();
        self.with_conn(move |conn| {
            if let Some(session) = conn.session.as_mut() {
                session.closing = true;
            }
            if let Some(link) = &conn.link {
                link.close(code, &reason);
            }
        });
    }
}

/// The listener verbs ([`Listeners`](crate::Listeners)) of one connection: its own
/// listeners, called before the server-wide ones (the seed's "listen once logged in"
/// pattern). From a handler on the connection's shard a change is in effect for the next
/// message; from another thread, once the shard runs it from its mailbox, shortly after
/// the call returns.
impl<S: Send + Sync + 'static> Host for Peer<S> {
    type Context = Peer<S>;

    fn add_handler(&self, key: Key, registry: Registry, handler: Handler<Peer<S>>) -> u64 {
        if !registry.is_empty() {
            let _ = self.add_registry(&registry);
        }
        let id = self.inner.server.next_listener_id();
        self.with_conn(move |conn| {
            conn.own_listeners()
                .apply(move |table| table.add(key, id, handler));
        });
        id
    }

    fn remove_handler(&self, key: Key, id: u64) {
        self.with_conn(move |conn| {
            conn.own_listeners().apply(move |table| {
                table.remove(key, id);
            });
        });
    }

    fn add_registry(&self, registry: &Registry) -> Result<(), RegistryError> {
        let server = super::Server {
            shared: self.inner.server.clone(),
        };
        server.add_registry(registry)
    }
}

impl<S: Send + Sync + 'static> Context for Peer<S> {
    fn send<F: IntoFrame>(&self, message: F) {
        Peer::send(self, message);
    }
}

#[cfg(test)]
mod tests {
    /// An idle connection's memory is mostly a few allocations (ARCHITECTURE.md, "What a
    /// parked connection still costs"): the peer's stays in mimalloc's 128-byte class
    /// (with the `Arc`'s two counts).
    #[test]
    fn a_peer_stays_in_its_size_class() {
        let size = std::mem::size_of::<super::PeerInner<()>>() + 16;
        assert!(size <= 128, "the peer's allocation grew to {size} bytes");
    }
}

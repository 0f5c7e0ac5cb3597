//! The client: connects to a ConnectMe server over WebSocket (`ws://`), TCP or a Unix
//! socket, keeps listeners across reconnects, and exposes a `Send + Sync + Clone` handle
//! usable from any thread or async runtime.
//!
//! The connection runs on its own thread with its own runtime (the same driver
//! choice as a server shard). The handle talks to it through a mailbox; query results come
//! back through runtime-agnostic channels.

mod builder;
mod json;
mod session;
mod target;
mod thread;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use packme::{Message, Packet, Registry, RegistryError, Request};

pub use builder::ClientBuilder;
pub use json::{JsonClient, JsonEvent, JsonListenerId, JsonReply, JsonStatus, RequestError};
pub use session::{ClientSessionConfig, SendError};
pub use target::{ConnectError, Target};

use builder::ClientConfig;
use thread::{ClientLocal, Job};

use crate::listeners::{Context, Handler, Host, Key};
use crate::mailbox::Mailbox;
use crate::proto::close_code;
use crate::proto::outgoing::IntoFrame;
use crate::proto::End;
use crate::query::{query_channel, Query, QueryError};

struct ClientInner {
    config: ClientConfig,
    mailbox: Mailbox<Job>,
    connected: AtomicBool,
    closed: AtomicBool,
    next_tid: AtomicU32,
    next_listener: AtomicU64,
    protocol: Mutex<Option<String>>,
    /// Every message type registered so far, so `register` can report a collision at
    /// the call (the client thread's copy is updated through the mailbox).
    registry: Mutex<Registry>,
    /// With sessions: what the session keeps unacknowledged, checked at each send.
    unacked: Arc<session::Unacked>,
    /// With sessions: the current session's id.
    session_id: Mutex<Option<crate::session::SessionId>>,
}

/// A connection to a ConnectMe server that reconnects by itself. Cheap to clone; every
/// method may be called from any thread.
///
/// The client closes when the last handle the application holds (the one `build` or
/// `connect` returned, and clones of it) is dropped. The `&Client` a handler is called
/// with belongs to the client's thread: a clone of it does not keep the client open.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
    /// Held by the handles the application owns (the one `build` returns and its clones),
    /// not by the client's own thread: when the last of them is dropped, the client closes
    /// instead of reconnecting forever with nobody to use it.
    _owner: Option<Arc<Owner>>,
}

/// Closes its client when dropped (see [`Client`]'s `_owner`).
struct Owner(Client);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.inner.config.target)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for `address` (see [`Target::parse`]).
    pub fn builder(address: &str) -> ClientBuilder {
        ClientBuilder::new(address)
    }

    fn begin(&self, must_succeed: bool) -> oneshot::Receiver<Result<(), ConnectError>> {
        let (tx, rx) = oneshot::channel();
        self.post(move |local| {
            if local.begin.is_fired() {
                let _ = tx.send(Err(ConnectError::AlreadyStarted));
                return;
            }
            *local.first.borrow_mut() = Some((tx, must_succeed));
            local.begin.fire();
        });
        rx
    }

    /// Connects, resolving when the first connection is open; fails (and the client stops)
    /// if it fails. Later disconnects reconnect per the policy. Listeners added before
    /// this call see every message of the connection.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        self.begin(true).await.unwrap_or(Err(ConnectError::Closed))
    }

    /// [`Client::connect`] for a plain thread.
    pub fn connect_blocking(&self) -> Result<(), ConnectError> {
        self.begin(true).recv().unwrap_or(Err(ConnectError::Closed))
    }

    /// Starts connecting in the background (retrying per the policy from the first
    /// attempt on) and returns at once.
    pub fn start(&self) {
        drop(self.begin(false));
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The subprotocol the server selected on the current connection.
    pub fn protocol(&self) -> Option<String> {
        self.inner
            .protocol
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn post(&self, job: impl FnOnce(&Rc<ClientLocal>) + Send + 'static) {
        self.inner.mailbox.post(Box::new(job));
    }

    fn next_tid(&self) -> u32 {
        // Clients count up from 1 like the references; 0 is skipped (JS reads it as unset).
        loop {
            let tid = self.inner.next_tid.fetch_add(1, Ordering::Relaxed);
            if tid != 0 {
                return tid;
            }
        }
    }

    /// Sends a message: a string as text, bytes as binary, a [`Packet`] as binary.
    /// Without sessions it is dropped (and logged at debug level) while disconnected, as
    /// ConnectMe does. With [sessions](ClientBuilder::sessions) it is kept until the
    /// server acknowledges it and sent after a reconnect if needed; when the session's
    /// buffer is full it is dropped with a warning: use [`Client::try_send`] to see that.
    pub fn send<F: IntoFrame>(&self, message: F) {
        if let Err(error) = self.try_send(message) {
            tracing::warn!(%error, "message not sent");
        }
    }

    /// Like [`Client::send`], but says when the message was not accepted: the client is
    /// closed, or (with sessions) the session already keeps as much unacknowledged output
    /// as it may ([`ClientSessionConfig`]).
    pub fn try_send<F: IntoFrame>(&self, message: F) -> Result<(), SendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let frame = message.into_parts(self.inner.config.target.wire());
        if let Some(config) = &self.inner.config.sessions {
            let len = frame.head().len() + frame.body().map_or(0, bytes::Bytes::len);
            self.inner.unacked.reserve(config, len)?;
            self.post(move |local| {
                let link = local.link.borrow().clone();
                if let Some(session) = local.session.borrow_mut().as_mut() {
                    session.send(link.as_ref(), frame);
                }
            });
            return Ok(());
        }
        self.post(move |local| match local.link.borrow().as_ref() {
            Some(link) => {
                link.send_parts(frame);
            }
            None => tracing::debug!("send while disconnected: message dropped"),
        });
        Ok(())
    }

    /// The current session's id (with sessions, once the server created it).
    pub fn session_id(&self) -> Option<crate::session::SessionId> {
        *self
            .inner
            .session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a PackMe message with a fresh transaction id.
    pub fn send_message<M: Message>(&self, message: M) {
        self.send(Packet::new(message, self.next_tid()));
    }

    /// Sends `request` and resolves with the response that carries its transaction id and
    /// its response type; fails on timeout, disconnect, or when not connected.
    pub fn query<R: Request>(&self, request: R) -> Query<R::Response> {
        let (reply, query) = query_channel();
        if !self.is_connected() {
            let _ = reply.send(Err(QueryError::NotConnected));
            return query;
        }
        let tid = self.next_tid();
        let frame = Packet::new(request, tid).into_frame(self.inner.config.target.wire());
        self.post(move |local| match local.link.borrow().as_ref() {
            Some(link) => {
                if link.register_query(tid, <R::Response as Message>::ID, reply) {
                    link.send(frame);
                }
            }
            None => {
                let _ = reply.send(Err(QueryError::NotConnected));
            }
        });
        query
    }

    /// Closes the connection (normal close) and stops reconnecting. Returns at once.
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.post(|local| {
            if let Some(link) = local.link.borrow().as_ref() {
                link.close(close_code::NORMAL, "");
            }
            local.stop.fire();
            local.begin.fire();
        });
    }

    /// Drops the current connection without a close handshake (it reconnects per policy).
    /// Meant for tests of reconnect behaviour.
    pub fn disconnect(&self) {
        self.post(|local| {
            if let Some(link) = local.link.borrow().as_ref() {
                link.abort(End::Closed(close_code::NORMAL));
            }
        });
    }
}

/// The listener verbs ([`Listeners`](crate::Listeners)) of a client: its listeners survive
/// reconnects; a change takes effect once the client's thread runs it, shortly after the
/// call returns.
impl Host for Client {
    type Context = Client;

    fn add_handler(&self, key: Key, registry: Registry, handler: Handler<Client>) -> u64 {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        self.post(move |local| {
            let _ = local.registry.borrow_mut().merge(&registry);
            local
                .listeners
                .apply(move |table| table.add(key, id, handler));
        });
        id
    }

    fn remove_handler(&self, key: Key, id: u64) {
        self.post(move |local| {
            local.listeners.apply(move |table| {
                table.remove(key, id);
            })
        });
    }

    /// Checked here against every type registered so far, so a collision is reported at
    /// the call; the client thread's copy is updated through the mailbox.
    fn add_registry(&self, registry: &Registry) -> Result<(), RegistryError> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(registry)?;
        let registry = registry.clone();
        self.post(move |local| {
            // Cannot collide: every change to this copy went through the checked one.
            let _ = local.registry.borrow_mut().merge(&registry);
        });
        Ok(())
    }
}

impl Context for Client {
    fn send<F: IntoFrame>(&self, message: F) {
        Client::send(self, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Listeners;

    #[test]
    fn register_reports_a_collision_at_the_call() {
        fn never(_: bytes::Bytes) -> Result<packme::AnyPacket, packme::DecodeError> {
            unreachable!()
        }
        let one = |type_id, name| {
            let mut registry = Registry::new();
            let info = packme::MessageInfo {
                id: 7,
                name,
                type_id,
                decode: never,
            };
            registry.insert(info).unwrap();
            registry
        };
        let client = Client::builder("ws://127.0.0.1:1/").build().unwrap();
        client
            .register(&one(std::any::TypeId::of::<u8>(), "A"))
            .unwrap();
        client
            .register(&one(std::any::TypeId::of::<u8>(), "A"))
            .unwrap();
        let error = client
            .register(&one(std::any::TypeId::of::<u16>(), "B"))
            .unwrap_err();
        assert_eq!((error.existing, error.new), ("A", "B"));
        client.close();
    }
}

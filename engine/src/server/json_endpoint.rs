//! The websocket_core JSON protocol on a server's WebSocket connections, beside the binary
//! ConnectMe protocol: which upgrades speak it (a path, or a subprotocol on any path), and
//! the connection the JSON router talks to ([`JsonConnection`], the server's
//! [`JsonPeer`]).
//!
//! A JSON connection is an ordinary client of the shard (listed by `clients`, reached by
//! broadcasts, a member of rooms, counted by the guards and the message rate); only its
//! inbound frames go to a [`JsonDispatcher`] instead of the listeners.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use super::peer::Peer;
use crate::auth::Identity;
use crate::json::{
    now_ms, CloseCode, DispatchConfig, HandlerError, Head, JsonDispatcher, JsonPeer, JsonRouter,
    PeerClosed,
};
use crate::link::Link;
use crate::proto::outgoing::Utf8Bytes;
use crate::room::RoomError;

/// Where the JSON protocol is served ([`ServerBuilder::json`](crate::ServerBuilder::json)).
#[derive(Clone)]
pub(crate) struct JsonEndpoint {
    /// The router; `None`: the server speaks only the binary protocol.
    pub router: Option<Arc<JsonRouter>>,
    /// Upgrades to exactly this path speak JSON (the reference's default, `/ws`).
    pub path: Option<String>,
    /// Upgrades offering this subprotocol speak JSON, whatever their path.
    pub subprotocol: Option<String>,
    pub dispatch: DispatchConfig,
    /// The application-level heartbeat; `None`: off.
    pub heartbeat: Option<JsonHeartbeat>,
}

impl Default for JsonEndpoint {
    fn default() -> Self {
        Self {
            router: None,
            path: Some("/ws".to_owned()),
            subprotocol: None,
            dispatch: DispatchConfig::default(),
            heartbeat: Some(JsonHeartbeat::default()),
        }
    }
}

/// The JSON protocol's heartbeat (websocket-core-features.md §7, sessions-resume.md): a
/// connection silent for `interval` gets `sys.ping {t}`; one silent for `timeout` is closed
/// with 4004. Any inbound frame counts as life, a `sys.pong` or a WebSocket pong included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonHeartbeat {
    /// Silence after which a `sys.ping` goes out (default 15 s).
    pub interval: Duration,
    /// Silence after which the connection is closed with 4004 (default 40 s: before the
    /// WebSocket keepalive's 45 s would close it with 1001).
    pub timeout: Duration,
}

impl Default for JsonHeartbeat {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(40),
        }
    }
}

/// `sys.ping`'s payload.
#[derive(Serialize)]
struct Ping {
    t: u64,
}

impl JsonEndpoint {
    /// Whether an upgrade to `path` offering `protocols` speaks JSON.
    pub(crate) fn selects(&self, path: &str, protocols: &[String]) -> bool {
        self.router.is_some()
            && (self.path.as_deref() == Some(path) || self.offered_subprotocol(protocols).is_some())
    }

    /// The JSON subprotocol, if the upgrade offers it (and the server serves JSON).
    pub(crate) fn offered_subprotocol(&self, protocols: &[String]) -> Option<&str> {
        let name = self
            .subprotocol
            .as_deref()
            .filter(|_| self.router.is_some())?;
        protocols.iter().any(|p| p == name).then_some(name)
    }
}

/// `sys.session.created`'s payload (websocket-core-features.md §4, sessions-resume.md).
#[derive(Serialize)]
struct SessionCreated<'a> {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "userId")]
    user_id: Option<&'a str>,
}

/// A server connection as the JSON router sees it.
pub(super) struct JsonConnection<S> {
    peer: Peer<S>,
    link: Rc<Link>,
    identity: Option<Rc<Identity>>,
    /// The version of the messages the server starts.
    router: Arc<JsonRouter>,
    /// When the peer had last been heard at the last `sys.ping`: one ping per silence.
    pinged: Cell<Option<Instant>>,
}

impl<S: Send + Sync + 'static> JsonConnection<S> {
    /// Starts the JSON protocol on an admitted connection: `sys.session.created` goes out
    /// first, then every text frame goes to the returned dispatcher. The connection is
    /// also returned (weakly) for the shard's heartbeat.
    pub(super) fn start(
        peer: Peer<S>,
        link: Rc<Link>,
        endpoint: &JsonEndpoint,
    ) -> Option<(JsonDispatcher, Weak<Self>)> {
        let router = endpoint.router.clone()?;
        let connection = Rc::new(JsonConnection {
            identity: peer.identity().cloned().map(Rc::new),
            peer,
            link,
            router: router.clone(),
            pinged: Cell::new(None),
        });
        connection.send_envelope("sys.session.created", &connection.created());
        let weak = Rc::downgrade(&connection);
        let dispatcher = JsonDispatcher::new(router, connection, endpoint.dispatch);
        Some((dispatcher, weak))
    }

    /// One heartbeat check at `now` (the shard runs it every second).
    pub(super) fn heartbeat(&self, config: &JsonHeartbeat, now: Instant) {
        let heard = self.link.last_heard();
        let silent = now.saturating_duration_since(heard);
        if silent >= config.timeout {
            self.peer
                .close_with(CloseCode::InactivityTimeout.as_u16(), "inactivity timeout");
        } else if silent >= config.interval && self.pinged.replace(Some(heard)) != Some(heard) {
            self.send_envelope("sys.ping", &Ping { t: now_ms() });
        }
    }

    /// A message the server starts (no `c`), in the current version.
    fn send_envelope<T: Serialize>(&self, event: &str, payload: &T) {
        let mut out = Vec::with_capacity(128);
        Head::new(event, self.router.config().current(), now_ms())
            .encode(payload, &mut out)
            .expect("an object payload");
        let _ = self.send_text(Bytes::from(out));
    }

    /// `sys.session.created {sessionId, userId}`: the first message on every connection.
    /// Until sessions reach the JSON wire the id names the connection, and no resume
    /// secret is given.
    fn created(&self) -> SessionCreated<'_> {
        SessionCreated {
            session_id: format!("{:016x}", self.peer.id()),
            user_id: self.peer.user(),
        }
    }
}

impl<S: Send + Sync + 'static> JsonPeer for JsonConnection<S> {
    fn connection_id(&self) -> u64 {
        self.peer.id()
    }

    fn send_text(&self, frame: Bytes) -> Result<(), PeerClosed> {
        if !self.link.is_open() {
            return Err(PeerClosed);
        }
        // Every frame comes from the JSON module's encoders, which write UTF-8 only.
        self.peer.send(Utf8Bytes(frame));
        Ok(())
    }

    fn close(&self, code: u16, reason: &str) {
        self.peer.close_with(code, reason);
    }

    fn identity(&self) -> Option<Rc<Identity>> {
        self.identity.clone()
    }

    fn join(&self, room: &str) -> Result<(), HandlerError> {
        self.peer.join(room).map_err(|error| match error {
            RoomError::Full { .. } => HandlerError::new(1012, "Room is full"),
            RoomError::Gone => HandlerError::new(1012, "Connection is closed"),
        })
    }

    fn leave(&self, room: &str) -> bool {
        self.peer.leave(room)
    }

    fn broadcast_to_room(&self, room: &str, frame: Bytes, exclude_self: bool) -> usize {
        self.peer
            .broadcast_text_to_room(room, Utf8Bytes(frame), exclude_self)
    }
}

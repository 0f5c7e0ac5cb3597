//! The websocket_core JSON protocol on a server's WebSocket connections, beside the binary
//! ConnectMe protocol: which upgrades speak it (a path, or a subprotocol on any path), and
//! the connection the JSON router talks to ([`JsonConnection`], the server's
//! [`JsonPeer`]).
//!
//! A JSON connection is an ordinary client of the shard (listed by `clients`, reached by
//! broadcasts, a member of rooms, counted by the guards and the message rate); only its
//! inbound frames go to a [`JsonDispatcher`] instead of the listeners.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::peer::Peer;
use crate::auth::Identity;
use crate::json::{
    now_ms, DispatchConfig, HandlerError, Head, JsonDispatcher, JsonPeer, JsonRouter, PeerClosed,
};
use crate::link::Link;
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
}

impl Default for JsonEndpoint {
    fn default() -> Self {
        Self {
            router: None,
            path: Some("/ws".to_owned()),
            subprotocol: None,
            dispatch: DispatchConfig::default(),
        }
    }
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
}

impl<S: Send + Sync + 'static> JsonConnection<S> {
    /// Starts the JSON protocol on an admitted connection: `sys.session.created` goes out
    /// first, then every text frame goes to the returned dispatcher.
    pub(super) fn start(
        peer: Peer<S>,
        link: Rc<Link>,
        endpoint: &JsonEndpoint,
    ) -> Option<JsonDispatcher> {
        let router = endpoint.router.clone()?;
        let connection = JsonConnection {
            identity: peer.identity().cloned().map(Rc::new),
            peer,
            link,
        };
        connection.announce(router.config().current());
        Some(JsonDispatcher::new(
            router,
            Rc::new(connection),
            endpoint.dispatch,
        ))
    }

    /// `sys.session.created {sessionId, userId}`: the first message on every connection.
    /// Until sessions reach the JSON wire the id names the connection, and no resume
    /// secret is given.
    fn announce(&self, version: &str) {
        let payload = SessionCreated {
            session_id: format!("{:016x}", self.peer.id()),
            user_id: self.peer.user(),
        };
        let mut out = Vec::with_capacity(128);
        Head::new("sys.session.created", version, now_ms())
            .encode(&payload, &mut out)
            .expect("an object payload");
        let _ = self.send_text(Bytes::from(out));
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
        // The JSON encoders write UTF-8 only; a frame that is not is refused, not sent.
        let text = packme::utf8_string(frame).map_err(|_| PeerClosed)?;
        self.peer.send(text);
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
        let Ok(text) = packme::utf8_string(frame) else {
            return 0;
        };
        self.peer.broadcast_text_to_room(room, text, exclude_self)
    }
}

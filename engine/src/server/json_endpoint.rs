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
    now_ms, DispatchConfig, Envelope, ErrorCode, HandlerError, Head, JsonDispatcher, JsonPeer,
    JsonRouter, PeerClosed, SysError, SYS_ERROR,
};
use crate::link::Link;
use crate::proto::close_code;
use crate::proto::outgoing::Utf8Bytes;
use crate::room::RoomError;
use crate::session::wire::Secret;
use crate::session::SessionId;

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
#[serde(rename_all = "camelCase")]
struct SessionCreated<'a> {
    session_id: String,
    user_id: Option<&'a str>,
    /// Only with sessions on: what the client presents to resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    resume_secret: Option<String>,
}

/// `sys.session.restored`'s payload (sessions-resume.md).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionRestored<'a> {
    pub session_id: String,
    pub user_id: Option<&'a str>,
    pub rooms: Vec<String>,
    /// The authenticator's metadata for the session's user (empty without one).
    pub metadata: Option<&'a std::collections::BTreeMap<String, String>>,
    pub last_seq: u64,
    pub replayed: u64,
}

/// `sys.disconnect`'s payload.
#[derive(Serialize)]
pub(super) struct Disconnect<'a> {
    pub reason: &'a str,
}

/// `sys.ack`'s payload.
#[derive(serde::Deserialize)]
struct Ack {
    s: u64,
}

/// One control event (sessions-resume.md: never numbered, never kept for replay) as a
/// complete envelope: `event` with `payload` in `version`, carrying `c` if given.
pub(super) fn control_envelope<T: Serialize>(
    event: &str,
    version: &str,
    correlation: Option<&str>,
    payload: &T,
) -> Bytes {
    let mut out = Vec::with_capacity(160);
    Head::new(event, version, now_ms())
        .correlation(correlation)
        .encode(payload, &mut out)
        .expect("an object payload");
    Bytes::from(out)
}

/// A `sys.error` control event (answering a `sys.reconnect.request` or a `sys.ack`).
pub(super) fn control_error(
    code: u16,
    message: &str,
    version: &str,
    correlation: Option<&str>,
) -> Bytes {
    let code = ErrorCode::from_u16(code).unwrap_or(ErrorCode::Unknown);
    let mut out = Vec::with_capacity(160);
    SysError::new(code).message(message).encode(
        Head::new(SYS_ERROR, version, now_ms()).correlation(correlation),
        &mut out,
    );
    Bytes::from(out)
}

/// How a JSON connection starts ([`JsonConnection::start`]).
pub(super) enum Greeting {
    /// A new client: `sys.session.created`, with the session's id and resume secret when
    /// sessions are on (without, the id names the connection and there is no secret).
    Created(Option<(SessionId, Secret)>),
    /// A resumed session: `sys.session.restored` and the replay were already queued.
    Restored,
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
    /// The connection has a session (sessions are on): `sys.ack` is served.
    sessioned: bool,
}

impl<S: Send + Sync + 'static> JsonConnection<S> {
    /// Starts the JSON protocol on an admitted connection: `sys.session.created` goes out
    /// first, then every text frame goes to the returned dispatcher. The connection is
    /// also returned (weakly) for the shard's heartbeat.
    pub(super) fn start(
        peer: Peer<S>,
        link: Rc<Link>,
        endpoint: &JsonEndpoint,
        greeting: Greeting,
    ) -> Option<(JsonDispatcher, Weak<Self>)> {
        let router = endpoint.router.clone()?;
        let sessioned = !matches!(greeting, Greeting::Created(None));
        let connection = Rc::new(JsonConnection {
            identity: peer.identity().cloned().map(Rc::new),
            peer,
            link,
            router: router.clone(),
            pinged: Cell::new(None),
            sessioned,
        });
        if let Greeting::Created(session) = greeting {
            let created = connection.created(session);
            connection.send_envelope("sys.session.created", &created);
        }
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
                .close_with(close_code::INACTIVITY_TIMEOUT, "inactivity timeout");
        } else if silent >= config.interval && self.pinged.replace(Some(heard)) != Some(heard) {
            self.send_envelope("sys.ping", &Ping { t: now_ms() });
        }
    }

    /// A control event the server starts (no `c`, no `s`), in the current version.
    fn send_envelope<T: Serialize>(&self, event: &str, payload: &T) {
        let frame = control_envelope(event, self.router.config().current(), None, payload);
        self.send_control(frame);
    }

    /// Queues a control event: straight on the connection, outside the session's
    /// sequence and replay buffer.
    fn send_control(&self, frame: Bytes) {
        // The JSON module's encoders write UTF-8 only.
        self.link.send_message(Utf8Bytes(frame));
    }

    /// `sys.session.created {sessionId, userId, resumeSecret}`: the first message on every
    /// connection that does not resume. Without sessions the id names the connection
    /// and there is no secret.
    fn created(&self, session: Option<(SessionId, Secret)>) -> SessionCreated<'_> {
        let (session_id, resume_secret) = match session {
            Some((id, secret)) => (id.to_string(), Some(secret.to_hex())),
            None => (format!("{:016x}", self.peer.id()), None),
        };
        SessionCreated {
            session_id,
            user_id: self.peer.user(),
            resume_secret,
        }
    }

    /// `sys.ack {s}`: the client processed every sequenced message up to `s`, which
    /// leave the replay buffer. A malformed one is answered (a control `sys.error` 1009).
    fn ack(&self, envelope: &Envelope<'_>) {
        match serde_json::from_str::<Ack>(envelope.payload()) {
            Ok(Ack { s }) => self.peer.acknowledge(s),
            Err(_) => self.send_control(control_error(
                ErrorCode::ValidationFailed.as_u16(),
                "sys.ack needs {\"s\": the last sequence number processed}",
                envelope.version(),
                envelope.correlation(),
            )),
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

    /// With sessions on: `sys.ack`, and a `sys.reconnect.request` that is not the
    /// connection's first message (the first one is taken by the shard before it gets
    /// here), answered with a control `sys.error` 1001.
    fn system_event(&self, envelope: &Envelope<'_>) -> bool {
        if !self.sessioned {
            return false;
        }
        match envelope.event() {
            "sys.ack" => self.ack(envelope),
            RECONNECT_REQUEST => self.send_control(control_error(
                ErrorCode::InvalidProtocol.as_u16(),
                "sys.reconnect.request must be the first message on a connection",
                envelope.version(),
                envelope.correlation(),
            )),
            _ => return false,
        }
        true
    }

    fn refused_system_event(&self, event: &str, answer: &Bytes) -> bool {
        let control = self.sessioned && matches!(event, "sys.ack" | RECONNECT_REQUEST);
        if control {
            self.send_control(answer.clone());
        }
        control
    }
}

/// The event that asks to resume a session (sessions-resume.md).
pub(super) const RECONNECT_REQUEST: &str = "sys.reconnect.request";

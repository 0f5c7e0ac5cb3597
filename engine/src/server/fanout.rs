//! What a broadcast sends when its clients speak different protocols: JSON-protocol
//! connections read only JSON envelopes, ConnectMe's binary clients read PackMe (and text).
//!
//! A broadcast is encoded once per protocol, never per client: either one frame for every
//! client ([`Fanout::One`], what `broadcast(message)` has always sent), or the message in
//! each protocol's own encoding ([`PerProtocol`]: a JSON event for the JSON clients, a
//! PackMe message or any other frame for the binary ones), each client getting the one its
//! connection speaks. One frame that a JSON client cannot read (binary, or a text that is
//! not a JSON object) is not sent to JSON clients: it would only break their protocol.

use bytes::Bytes;
use serde::Serialize;

use crate::json::{now_ms, EncodeError, Head};
use crate::proto::outgoing::{IntoFrame, Utf8Bytes};
use crate::proto::Wire;
use crate::session::json_wire;

/// A broadcast's frames, encoded once. (Public only as [`IntoFanout`]'s hidden method's
/// result: it cannot be named outside the crate.)
#[derive(Clone, Debug)]
pub enum Fanout {
    /// The same frame for everyone (a JSON client gets it only if it is a JSON envelope).
    One(Bytes),
    /// A WebSocket text frame with a JSON envelope for the JSON clients, and a frame for
    /// the binary ones.
    Each {
        /// The JSON clients' frame.
        json: Bytes,
        /// Everyone else's.
        binary: Bytes,
    },
}

impl Fanout {
    /// The frame a client gets (`json`: it speaks the JSON protocol), if any.
    pub(crate) fn frame_for(&self, json: bool) -> Option<&Bytes> {
        match self {
            Fanout::One(frame) if json => json_wire::object_payload(frame).map(|_| frame),
            Fanout::One(frame) => Some(frame),
            Fanout::Each { json: frame, .. } if json => Some(frame),
            Fanout::Each { binary, .. } => Some(binary),
        }
    }

    /// Each frame as a buffer of this shard's own (see [`shard_local`](crate::proto::outgoing::shard_local)).
    pub(crate) fn shard_local(self) -> Self {
        use crate::proto::outgoing::shard_local;
        match self {
            Fanout::One(frame) => Fanout::One(shard_local(frame)),
            Fanout::Each { json, binary } => Fanout::Each {
                json: shard_local(json),
                binary: shard_local(binary),
            },
        }
    }
}

/// What can be broadcast: any message ([`IntoFrame`]: the same frame for every client), or
/// a [`PerProtocol`] message.
pub trait IntoFanout {
    /// Encodes the broadcast for a server with this `wire`, whose JSON protocol starts its
    /// messages in version `json_version`.
    #[doc(hidden)]
    fn into_fanout(self, wire: Wire, json_version: &str) -> Fanout;
}

impl<F: IntoFrame> IntoFanout for F {
    fn into_fanout(self, wire: Wire, _json_version: &str) -> Fanout {
        Fanout::One(self.into_frame(wire))
    }
}

/// One message in each protocol's encoding, for a broadcast that reaches JSON-protocol and
/// binary clients alike ([`Server::broadcast`](crate::Server::broadcast),
/// [`Server::broadcast_to_room`](crate::Server::broadcast_to_room), ...): the JSON clients
/// get event `e` with payload `p` (with `s` if they have a session), the others `binary`
/// (a PackMe [`Packet`](crate::Packet), bytes, a text).
///
/// ```no_run
/// # use connectme::{PerProtocol, Server};
/// # let server: Server = Server::builder().build();
/// let payload = serde_json::json!({ "player": 7, "x": 10, "y": 4 });
/// let moved = PerProtocol::new("player.moved", &payload, &b"\x01\x07\x0a\x04"[..])?;
/// server.broadcast_to_room("arena", moved);
/// # Ok::<(), connectme::json::EncodeError>(())
/// ```
#[derive(Debug)]
pub struct PerProtocol<F> {
    event: String,
    /// The payload as JSON text (an object).
    payload: String,
    binary: F,
}

impl<F: IntoFrame> PerProtocol<F> {
    /// The JSON event `event` with `payload` (which must serialise to a JSON object), and
    /// `binary` for the clients of the binary protocol.
    pub fn new<T: Serialize + ?Sized>(
        event: &str,
        payload: &T,
        binary: F,
    ) -> Result<Self, EncodeError> {
        let payload = serde_json::to_string(payload).map_err(EncodeError::Serialize)?;
        if !payload.starts_with('{') {
            return Err(EncodeError::PayloadNotObject);
        }
        Ok(Self {
            event: event.to_owned(),
            payload,
            binary,
        })
    }
}

impl<F: IntoFrame> IntoFanout for PerProtocol<F> {
    fn into_fanout(self, wire: Wire, json_version: &str) -> Fanout {
        let mut envelope = Vec::with_capacity(self.payload.len() + 64);
        Head::new(&self.event, json_version, now_ms())
            .encode_raw(&self.payload, &mut envelope)
            .expect("checked to be an object when built");
        Fanout::Each {
            json: Utf8Bytes(Bytes::from(envelope)).into_frame(Wire::WsServer),
            binary: self.binary.into_frame(wire),
        }
    }
}

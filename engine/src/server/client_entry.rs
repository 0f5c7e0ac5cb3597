//! A client's entry on its shard: its peer, its live connection (none while its session
//! is suspended) and its session, and how a message reaches it either way.

use std::rc::Rc;

use bytes::Bytes;

use super::peer::Peer;
use super::Fanout;
use crate::link::Link;
use crate::listeners::ListenerCell;
use crate::proto::outgoing::{Framing, IntoFrame, ZERO_COPY_MIN};
use crate::proto::{FrameParts, Kind, Wire};
use crate::session::{json_wire, ServerSession};

/// One client on its shard: its peer, its live connection, and its session if it has one.
pub(crate) struct Conn<S> {
    pub peer: Peer<S>,
    /// The live connection; `None` while a session is suspended.
    pub link: Option<Rc<Link>>,
    /// The client's session, if it negotiated the session extension: every data message
    /// sent to it is numbered and kept for replay (and, while it is suspended, the
    /// client's own listeners).
    pub session: Option<Box<ServerSession>>,
}

impl<S: Send + Sync + 'static> Conn<S> {
    /// The client's own listener table (created on first use): its connection's, or the
    /// one kept while its session is suspended (an entry has one or the other).
    pub(crate) fn own_listeners(&mut self) -> Rc<ListenerCell<Peer<S>>> {
        if let Some(link) = &self.link {
            return link.listeners::<ListenerCell<Peer<S>>>();
        }
        let Some(session) = self.session.as_mut() else {
            // An entry without a connection is a suspended session; failing that, a table
            // nobody keeps (its listeners could never be called anyway).
            return Rc::default();
        };
        let kept = session
            .suspended_listeners
            .get_or_insert_with(|| Rc::new(ListenerCell::<Peer<S>>::default()));
        kept.clone()
            .downcast::<ListenerCell<Peer<S>>>()
            .expect("a peer's own listener table")
    }
}

impl<S> Conn<S> {
    /// Whether `link` is this client's current connection.
    pub(super) fn is_current(&self, link: &Rc<Link>) -> bool {
        self.link.as_ref().is_some_and(|l| Rc::ptr_eq(l, link))
    }

    /// Sends `message`: encoded straight into the connection's queue, or, with a session,
    /// kept for replay and queued (or only kept while suspended). A small frame is encoded
    /// once, into the replay buffer, and copied from there into the queue.
    pub(crate) fn send_message<F: IntoFrame>(&mut self, wire: Wire, message: F) {
        let Some(session) = &mut self.session else {
            if let Some(link) = &self.link {
                link.send_message(message);
            }
            return;
        };
        if session.json {
            self.send_json(&message.into_frame(wire));
            return;
        }
        match Framing::of(message, wire) {
            Framing::InPlace {
                message,
                len,
                frame_len,
            } => {
                let frame = session
                    .replay
                    .push_with(frame_len, |out| message.write_frame(wire, len, out));
                if let Some(link) = &self.link {
                    link.send_copied(frame);
                }
            }
            Framing::Parts(frame) => self.send_parts(frame),
        }
    }

    /// Sends a frame built elsewhere.
    pub(crate) fn send_parts(&mut self, frame: FrameParts) {
        if let Some(session) = &mut self.session {
            if session.json {
                let whole = match frame.body() {
                    None => frame.head().clone(),
                    Some(body) => Bytes::from([frame.head().as_ref(), body].concat()),
                };
                self.send_json(&whole);
                return;
            }
            session.replay.push(&frame);
        }
        if let Some(link) = &self.link {
            link.send_parts(frame);
        }
    }

    /// Sends a broadcast: the frame for the client's protocol, if there is one.
    pub(crate) fn send_fanout(&mut self, fanout: &Fanout) {
        if let Some(frame) = fanout.frame_for(self.peer.speaks_json()) {
            self.send_shared(frame);
        }
    }

    /// Sends a frame other clients share (a broadcast).
    pub(crate) fn send_shared(&mut self, frame: &Bytes) {
        let Some(session) = &mut self.session else {
            if let Some(link) = &self.link {
                link.send_shared(frame);
            }
            return;
        };
        if session.json {
            self.send_json(frame);
            return;
        }
        let kept = session.replay.push_whole(frame);
        if let Some(link) = &self.link {
            link.send_kept(kept);
        }
    }

    /// Sends `frame` (a whole WebSocket frame) to a JSON session: an envelope is numbered,
    /// `"s":N` added as its last key ([`json_wire`]), and kept for replay; anything else
    /// (a binary frame, a text that is not a JSON object) has no place in the session's
    /// sequence and goes out once, as it is.
    fn send_json(&mut self, frame: &Bytes) {
        let session = self.session.as_mut().expect("a JSON session");
        let Some(payload) = json_wire::object_payload(frame) else {
            if let Some(link) = &self.link {
                link.send_shared(frame);
            }
            return;
        };
        let seq = session.replay.last() + 1;
        let len = json_wire::sequenced_len(payload, seq);
        let frame_len = Wire::WsServer.frame_len(len);
        let write = |out: &mut Vec<u8>| {
            Wire::WsServer.write_frame(out, Kind::Text, len, |out| {
                json_wire::write_sequenced(out, payload, seq)
            })
        };
        if frame_len < ZERO_COPY_MIN {
            let kept = session.replay.push_with(frame_len, write);
            if let Some(link) = &self.link {
                link.send_copied(kept);
            }
        } else {
            let mut whole = Vec::with_capacity(frame_len);
            write(&mut whole);
            let kept = session.replay.push_whole(&Bytes::from(whole));
            if let Some(link) = &self.link {
                link.send_kept(kept);
            }
        }
    }
}

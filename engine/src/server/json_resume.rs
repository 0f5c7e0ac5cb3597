//! Resuming a session in band, as the JSON protocol does (sessions-resume.md): a client
//! connects, is given a fresh session, and asks with `sys.reconnect.request` (its first
//! message) to resume an older one instead.
//!
//! A session lives on the shard that created it and never changes shards (everything sent
//! to it stays in one shard's order), but SO_REUSEPORT put the new socket wherever it
//! liked. So the socket moves, as a resume at the upgrade does ([`super::shard`]'s
//! hand-off), only later in the connection's life:
//!
//! 1. Reading pauses right after the request (the bytes read past it are kept).
//! 2. The session's shard vets the resume (secret, user, replay window) without taking
//!    the session. A refusal is answered on this connection, which goes on with the fresh
//!    session its `sys.session.created` announced.
//! 3. Accepted: the fresh session is discarded (it never joined a room), the connection's
//!    writer writes what was queued for it and parks, and its two socket halves are put
//!    back together (a dropped write half would shut the socket's write side down).
//! 4. The socket and the kept bytes go to the session's shard, which takes the session
//!    (replacing a connection it still had, 4003), answers `sys.session.restored` with the
//!    request's `c`, replays every message after `lastSeq`, and serves the connection.
//!
//! Between 2 and 4 the session stays where it was, so whatever is sent to it meanwhile is
//! kept for the replay. If it changed in between (it expired, another resume took it),
//! the connection is told why and closed with 1013, to connect again.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Deserialize;

use super::json_endpoint::{control_error, Greeting, JsonConnection, RECONNECT_REQUEST};
use super::peer::Peer;
use super::shard::{serve_connection, Protocol, Serving, Shard};
use crate::auth::Identity;
use crate::guard::Permit;
use crate::json::{parse, JsonDispatcher};
use crate::link::Link;
use crate::proto::outgoing::Utf8Bytes;
use crate::proto::{close_code, End};
use crate::rt::net::Accepted;
use crate::session::resume_error;
use crate::session::wire::{Resume, Secret};
use crate::session::SessionId;

/// A `sys.reconnect.request`, read from a JSON connection's first message.
pub(super) struct ReconnectRequest {
    /// What the client asked to resume, or the code and text of its refusal.
    resume: Result<Resume, (u16, &'static str)>,
    /// The request's `c`, carried by the answer.
    correlation: Option<String>,
    /// The request's `v`, the answer's.
    version: String,
}

/// The request's payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestPayload {
    session_id: Option<String>,
    resume_secret: Option<String>,
    last_seq: Option<u64>,
}

/// The text of each refusal.
fn refusal_text(code: u16) -> &'static str {
    match code {
        resume_error::BAD_CREDENTIALS => "Invalid session credentials",
        resume_error::UNKNOWN_SESSION => "Session not found",
        resume_error::DUPLICATE => "The connection already holds this session",
        resume_error::GAP => "Messages the resume needs are no longer buffered",
        _ => "The session could not be resumed",
    }
}

impl ReconnectRequest {
    /// The request `text` makes, if it is a well-formed envelope of that event.
    fn read(text: &str, config: &crate::json::EnvelopeConfig) -> Option<Self> {
        let envelope = parse(text, config).ok()?;
        if envelope.event() != RECONNECT_REQUEST {
            return None;
        }
        let resume = match serde_json::from_str::<RequestPayload>(envelope.payload()) {
            Err(_) => Err((
                1009,
                "sys.reconnect.request needs {sessionId, resumeSecret, lastSeq}",
            )),
            Ok(RequestPayload {
                session_id: None, ..
            }) => Err((1009, "sessionId is required")),
            Ok(RequestPayload {
                session_id: Some(id),
                resume_secret,
                last_seq,
            }) => {
                let secret = resume_secret.as_deref().and_then(Secret::parse);
                match (SessionId::parse(&id), secret) {
                    (None, _) => Err((resume_error::UNKNOWN_SESSION, "Session not found")),
                    (_, None) => Err((
                        resume_error::BAD_CREDENTIALS,
                        "resumeSecret is missing or malformed",
                    )),
                    (Some(id), Some(secret)) => Ok(Resume {
                        id,
                        secret,
                        last_seq: last_seq.unwrap_or(0),
                    }),
                }
            }
        };
        Some(ReconnectRequest {
            resume,
            correlation: envelope.correlation().map(str::to_owned),
            version: envelope.version().to_owned(),
        })
    }

    /// The control `sys.error` refusing this request with `code`.
    fn refuse(&self, link: &Rc<Link>, code: u16, text: &str) {
        let frame = control_error(code, text, &self.version, self.correlation.as_deref());
        link.send_message(Utf8Bytes(frame));
    }
}

/// A connection that goes on as it was (its resume was refused): its read half, the bytes
/// read past the request, and its place in the guards' caps.
pub(super) type GoOn<T> = (<T as crate::rt::net::Stream>::Read, BytesMut, Permit);

impl<S: Send + Sync + 'static> Shard<S> {
    /// The version the server starts JSON messages in.
    pub(super) fn json_version(&self) -> &str {
        self.server.json_version()
    }

    /// The connection's first message as a `sys.reconnect.request`, if it is one and
    /// sessions are on (a later one is refused by the connection itself).
    pub(super) fn reconnect_request(&self, link: &Link, text: &str) -> Option<ReconnectRequest> {
        if self.server.config.sessions.is_none()
            || link.data_received() != 1
            || !text.contains(RECONNECT_REQUEST)
        {
            return None;
        }
        let router = self.server.config.json.router.as_ref()?;
        ReconnectRequest::read(text, router.config())
    }

    /// Serves a `sys.reconnect.request` (see the module docs). Returns the connection to
    /// go on reading when the resume was refused (the client was told), `None` once the
    /// socket moved to the session (or, rarely, was dropped on the way).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn resume_in_band<T: Accepted>(
        self: Rc<Self>,
        reader: T::Read,
        link: &Rc<Link>,
        peer: &Peer<S>,
        dispatcher: &JsonDispatcher,
        request: ReconnectRequest,
        rest: BytesMut,
        permit: Permit,
    ) -> Option<GoOn<T>> {
        let owner = match self.vet_in_band(peer, &request).await {
            // Closed meanwhile (the server is stopping, say): it ends where it is.
            Ok(_) if !link.is_open() => return Some((reader, rest, permit)),
            Ok(owner) => owner,
            Err((code, text)) => {
                request.refuse(link, code, text);
                return Some((reader, rest, permit));
            }
        };
        let Ok(resume) = request.resume else {
            unreachable!("vetted")
        };
        dispatcher.close();
        self.discard(link, peer);
        let writer = self.park_writer(link).await?;
        let Some(stream) = T::reunite(reader, writer) else {
            tracing::warn!(
                conn = link.id,
                "socket halves of two streams: resume dropped"
            );
            return None;
        };
        let fd = stream.into_owned_fd();
        let identity = peer.identity().cloned();
        let (correlation, version) = (request.correlation, request.version);
        self.server.post(
            owner,
            Box::new(move |shard| match T::from_owned_fd(fd) {
                Ok(stream) => {
                    let answer = (version.as_str(), correlation.as_deref());
                    shard.start_resumed(stream, rest, &resume, answer, identity, permit);
                }
                Err(error) => {
                    tracing::warn!(%error, "a resuming connection could not be handed over")
                }
            }),
        );
        None
    }

    /// Step 2: the session's shard vets the resume. Its index, or the refusal.
    async fn vet_in_band(
        &self,
        peer: &Peer<S>,
        request: &ReconnectRequest,
    ) -> Result<usize, (u16, &'static str)> {
        let resume = request.resume?;
        let holder = self
            .server
            .session_peer(&resume.id)
            .ok_or(resume_error::UNKNOWN_SESSION)
            .map_err(|code| (code, refusal_text(code)))?;
        if holder.id() == peer.id() {
            let code = resume_error::DUPLICATE;
            return Err((code, refusal_text(code)));
        }
        let owner = holder.shard();
        let identity = peer.identity().cloned();
        let (answer, vetted) = oneshot::channel();
        self.server.post(
            owner,
            Box::new(move |shard| {
                let _ = answer.send(shard.vet_resume(&holder, &resume, identity.as_ref(), true));
            }),
        );
        match vetted.await {
            Ok(Ok(())) => Ok(owner),
            Ok(Err(code)) => Err((code, refusal_text(code))),
            // The shard is stopping.
            Err(_) => Err((close_code::GOING_AWAY, "The server is shutting down")),
        }
    }

    /// Step 3: the fresh session goes, unseen (it was announced, never used): out of the
    /// client table and the indexes; the application is told it disconnected.
    fn discard(&self, link: &Rc<Link>, peer: &Peer<S>) {
        let conn = self.conns.borrow_mut().remove(&link.id);
        if let Some(conn) = conn {
            self.forget(&conn);
            if let Some(on_disconnect) = &self.server.config.on_disconnect {
                super::shard::guard("on_disconnect", || on_disconnect(peer));
            }
        }
    }

    /// Step 3: waits (within the close timeout) until everything queued on `link` is
    /// written and its writer parked, and takes its write half; the link ends. `None` if
    /// the peer does not read it in time: the connection is dropped.
    async fn park_writer<W: 'static>(&self, link: &Rc<Link>) -> Option<W> {
        let deadline = Instant::now() + self.server.config.timeouts.close;
        let half = loop {
            link.request_park();
            if let Some(half) = link.take_write_half() {
                break half;
            }
            if Instant::now() >= deadline {
                link.abort(End::WriteTimeout);
                return None;
            }
            crate::rt::sleep(Duration::from_millis(1)).await;
        };
        link.abort(End::Moved);
        match half.downcast::<W>() {
            Ok(half) => Some(*half),
            Err(_) => unreachable!("a link's write half is its stream's"),
        }
    }

    /// Step 4, on the session's shard: takes the session and serves the socket as its
    /// connection; or, if the session changed since it was vetted, tells the client why
    /// and closes (1013), for it to connect again.
    fn start_resumed<T: Accepted>(
        self: &Rc<Self>,
        stream: T,
        buf: BytesMut,
        resume: &Resume,
        answer: (&str, Option<&str>),
        identity: Option<Identity>,
        permit: Permit,
    ) {
        let (reader, writer) = stream.into_split();
        let (link, peer) = match self.take_session(resume, identity.as_ref(), true) {
            Ok(taken) => self.attach_resumed(taken, resume.last_seq, Some(answer)),
            Err(code) => {
                let link = self.new_link(self.next_id());
                crate::link::writer::attach(writer, &link);
                let frame = control_error(code, refusal_text(code), answer.0, answer.1);
                link.send_message(Utf8Bytes(frame));
                link.close(
                    close_code::TRY_AGAIN_LATER,
                    "session changed: connect again",
                );
                link.finish();
                drop((reader, permit));
                return;
            }
        };
        crate::link::writer::attach(writer, &link);
        let endpoint = &self.server.config.json;
        let Some((dispatcher, connection)) =
            JsonConnection::start(peer.clone(), link.clone(), endpoint, Greeting::Restored)
        else {
            unreachable!("a JSON session implies a JSON router")
        };
        self.watch_json(connection);
        let serving = Serving::new(self.clone(), link, peer, Protocol::Json(dispatcher), permit);
        drop(crate::rt::spawn(serve_connection::<S, T>(
            serving, reader, buf,
        )));
    }
}

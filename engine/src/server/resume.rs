//! A shard's side of sessions: taking a session for a resume (checking its secret, its
//! user and its replay window), replacing a connection it still had, putting it on the new
//! connection with its missed messages, the session frames a client sends, and the end of
//! sessions that expired.

use std::any::Any;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::client_entry::Conn;
use super::json_endpoint::{control_envelope, Disconnect, SessionRestored};
use super::opening::Opened;
use super::peer::Peer;
use super::shard::{guard, text_of, Protocol, Shard};
use crate::auth::Identity;
use crate::guard::TokenBucket;
use crate::json::SysError;
use crate::link::Link;
use crate::proto::outgoing::Utf8Bytes;
use crate::proto::received::Received;
use crate::proto::{close_code, End};
use crate::session::replay::ReplayError;
use crate::session::wire::{Control, Resume};
use crate::session::{resume_error, ServerSession, ACK_EVERY};

/// What to do with a data message that arrived on a session's connection.
pub(super) enum Arrival {
    /// Dispatch it.
    Dispatch,
    /// Drop it: the connection was replaced by a resume.
    Replaced,
    /// Drop it: over the message rate; a message would pass after this long.
    RateLimited(Duration),
}

/// A session taken from its entry to be resumed on another connection.
pub(super) struct Taken<S> {
    peer: Peer<S>,
    session: Box<ServerSession>,
    /// The session's own listeners, as they were on its last connection.
    listeners: Option<Rc<dyn Any>>,
}

impl<S: Send + Sync + 'static> Shard<S> {
    /// Which other shard holds the session this opening resumes, if another does.
    pub(super) fn resume_elsewhere(&self, opened: &Opened) -> Option<usize> {
        let Some(Ok(Some(resume))) = &opened.offer else {
            return None;
        };
        let owner = self.server.session_peer(&resume.id)?.shard();
        (owner != self.index).then_some(owner)
    }

    /// Takes the session `resume` names (it lives on this shard), replacing its live
    /// connection if it has one.
    pub(super) fn take_session(
        &self,
        resume: &Resume,
        identity: Option<&Identity>,
        json: bool,
    ) -> Result<Taken<S>, u16> {
        let peer = self
            .server
            .session_peer(&resume.id)
            .ok_or(resume_error::UNKNOWN_SESSION)?;
        self.vet_resume(&peer, resume, identity, json)?;
        Ok(self.detach_for_resume(&peer))
    }

    /// Checks a resume against the session `peer` holds (on this shard): that it is
    /// there, of the same protocol (`json`), not closing, and that the secret and the user
    /// match and the replay buffer still holds what the client needs. A resume past what
    /// it holds ends the session (1013).
    pub(super) fn vet_resume(
        &self,
        peer: &Peer<S>,
        resume: &Resume,
        identity: Option<&Identity>,
        json: bool,
    ) -> Result<(), u16> {
        let key = peer.id();
        let mut conns = self.conns.borrow_mut();
        let conn = conns.get_mut(&key).ok_or(resume_error::UNKNOWN_SESSION)?;
        let session = conn.session.as_ref().ok_or(resume_error::UNKNOWN_SESSION)?;
        if session.closing || session.id != resume.id || session.json != json {
            return Err(resume_error::UNKNOWN_SESSION);
        }
        if !session.secret.matches(&resume.secret) {
            return Err(resume_error::BAD_CREDENTIALS);
        }
        // With an authenticator, only the session's own user may resume it.
        if self.server.config.auth.is_some()
            && session.user.as_deref() != identity.map(|i| i.user.as_str())
        {
            return Err(resume_error::BAD_CREDENTIALS);
        }
        let replayable = session.replay.after(resume.last_seq).map(|_| ());
        match replayable {
            Ok(()) => Ok(()),
            Err(ReplayError::Unknown) => Err(resume_error::BAD_CREDENTIALS),
            Err(ReplayError::Gap) => {
                let conn = conns.remove(&key).expect("found above");
                drop(conns);
                tracing::debug!(session = %resume.id, "resume past the replay buffer: session ended");
                self.end_session(conn, close_code::TRY_AGAIN_LATER, "resume gap");
                Err(resume_error::GAP)
            }
        }
    }

    /// Takes the session `peer` holds (vetted) out of this shard: a live connection is
    /// told it was replaced (4003).
    fn detach_for_resume(&self, peer: &Peer<S>) -> Taken<S> {
        let key = peer.id();
        let mut conn = self.conns.borrow_mut().remove(&key).expect("vetted");
        self.server.sessions(self.index).remove(&key);
        let mut session = conn.session.take().expect("vetted");
        let mut listeners = session.suspended_listeners.take();
        if let Some(old) = conn.link.take() {
            session.received_before = session.received(old.data_received());
            listeners = old.take_listeners();
            self.replaced(old, session.json);
        }
        Taken {
            peer: conn.peer,
            session,
            listeners,
        }
    }

    /// A connection whose session was resumed elsewhere: it is told (a JSON one with
    /// `sys.disconnect` first) and closed (4003), and dropped if its peer does not answer
    /// within the close timeout. (Its entry in the timer heap now finds the new
    /// connection, so its own close timeout is kept here.)
    fn replaced(&self, old: Rc<Link>, json: bool) {
        if json {
            let reason = Disconnect {
                reason: "replaced_by_reconnection",
            };
            let frame = control_envelope("sys.disconnect", self.json_version(), None, &reason);
            old.send_message(Utf8Bytes(frame));
        }
        old.fail_queries();
        old.close(close_code::REPLACED, "replaced_by_reconnection");
        let close_timeout = self.server.config.timeouts.close;
        drop(crate::rt::spawn(async move {
            crate::rt::sleep(close_timeout).await;
            old.abort(End::CloseTimeout);
        }));
    }

    /// Puts a taken session on a new connection here: restored, then every message the
    /// client has not processed, in order, then live traffic.
    ///
    /// `json` is the request's `v` and `c` for a JSON session, answered with
    /// `sys.session.restored` (a binary session gets the extension's restored frame).
    pub(super) fn attach_resumed(
        &self,
        taken: Taken<S>,
        last_seq: u64,
        json: Option<(&str, Option<&str>)>,
    ) -> (Rc<Link>, Peer<S>) {
        let Taken {
            peer,
            mut session,
            listeners,
        } = taken;
        let key = peer.id();
        let link = self.new_link(key);
        link.adopt_listeners(listeners);
        session.received_mark = link.data_received();
        session.suspended_since = None;
        session.replay.ack(last_seq);
        let replayed = session.replay.after(last_seq).map_or(0, Iterator::count) as u64;
        match json {
            None => {
                link.accept_session_frames();
                link.send_session(&Control::Restored {
                    last_seq,
                    replayed,
                    received: session.received_before,
                });
            }
            Some((version, correlation)) => {
                let restored = SessionRestored {
                    session_id: session.id.to_string(),
                    user_id: peer.user(),
                    rooms: peer.rooms(),
                    metadata: peer.identity().map(|i| &i.metadata),
                    last_seq,
                    replayed,
                };
                let frame =
                    control_envelope("sys.session.restored", version, correlation, &restored);
                link.send_message(Utf8Bytes(frame));
            }
        }
        for frame in session.replay.after(last_seq).into_iter().flatten() {
            link.send_kept(frame);
        }
        tracing::debug!(session = %session.id, last_seq, "session resumed");
        self.insert(Conn {
            peer: peer.clone(),
            link: Some(link.clone()),
            session: Some(session),
        });
        if let Some(on_resume) = &self.server.config.on_resume {
            guard("on_resume", || on_resume(&peer));
        }
        if self.stop.is_fired() {
            link.close(close_code::GOING_AWAY, "server shutting down");
        }
        (link, peer)
    }

    /// A session frame from the client: an acknowledgement. Anything else breaks the
    /// extension's protocol (1002).
    pub(super) fn session_control(&self, link: &Rc<Link>, bytes: &[u8]) {
        match Control::decode(bytes) {
            Some(Control::Ack { seq }) => {
                let mut conns = self.conns.borrow_mut();
                if let Some(session) = conns
                    .get_mut(&link.id)
                    .filter(|c| c.is_current(link))
                    .and_then(|c| c.session.as_mut())
                {
                    session.replay.ack(seq);
                }
            }
            _ => link.close(close_code::PROTOCOL_ERROR, "unexpected session frame"),
        }
    }

    /// Before a data message of a session is dispatched: acknowledges the client's
    /// messages every [`ACK_EVERY`], and takes the message from the session's budget if
    /// there is a message rate. A message over the rate still counts as received (it is
    /// acknowledged, and not sent again after a resume): it is dropped, not postponed.
    ///
    /// Most messages need none of this (no message rate, no acknowledgement due, the
    /// connection open): they are dispatched without looking the session up.
    #[inline]
    pub(super) fn session_received(&self, link: &Rc<Link>, message: &Received<'_>) -> Arrival {
        if self.server.config.message_rate.is_none() && !link.session_work_due(ACK_EVERY as u32) {
            return Arrival::Dispatch;
        }
        self.session_bookkeeping(link, message)
    }

    /// [`Shard::session_received`] when there is work: an acknowledgement, a message rate,
    /// or a connection that is closing.
    fn session_bookkeeping(&self, link: &Rc<Link>, message: &Received<'_>) -> Arrival {
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(&link.id).filter(|c| c.is_current(link)) else {
            return Arrival::Replaced;
        };
        let Some(session) = conn.session.as_mut() else {
            return Arrival::Dispatch;
        };
        let counter = link.data_received();
        let received = session.received(counter);
        // Every ACK_EVERY messages on the connection (the only messages that reach here
        // without a message rate), and whenever ACK_EVERY are unacknowledged.
        let ack_point = u64::from(counter).is_multiple_of(ACK_EVERY);
        if received > session.acked && (ack_point || received >= session.acked + ACK_EVERY) {
            session.acked = received;
            link.send_session(&Control::Ack { seq: received });
        }
        match self.charge(&mut session.rate, message) {
            Ok(()) => Arrival::Dispatch,
            Err(retry) => Arrival::RateLimited(retry),
        }
    }

    /// Takes `message` from the budget of a client outside the session extension: its
    /// JSON session's, which a resume keeps (so reconnecting does not refill it), or
    /// without a session `budget`, the connection's own.
    pub(super) fn charge_client(
        &self,
        link: &Rc<Link>,
        budget: &mut Option<TokenBucket>,
        message: &Received<'_>,
    ) -> Result<(), Duration> {
        if self.server.config.message_rate.is_none() {
            return Ok(());
        }
        let mut conns = self.conns.borrow_mut();
        let session = conns
            .get_mut(&link.id)
            .filter(|c| c.is_current(link))
            .and_then(|c| c.session.as_mut());
        match session {
            Some(session) => self.charge(&mut session.rate, message),
            None => self.charge(budget, message),
        }
    }

    /// Takes `message` from the client's `budget` under the server's message rate (the
    /// budget is made full at the client's first message): `Err` with the time until a
    /// message would pass. Without a message rate, or for an exempt message, `Ok`.
    pub(super) fn charge(
        &self,
        budget: &mut Option<TokenBucket>,
        message: &Received<'_>,
    ) -> Result<(), Duration> {
        let Some(limit) = &self.server.config.message_rate else {
            return Ok(());
        };
        if self.rate_exempt(message) {
            return Ok(());
        }
        let now = Instant::now();
        budget
            .get_or_insert_with(|| TokenBucket::new(now))
            .take(limit, now)
    }

    /// Whether `message` is a PackMe message the message rate does not count
    /// ([`ServerBuilder::message_rate_exempt`](crate::ServerBuilder::message_rate_exempt)).
    pub(super) fn rate_exempt(&self, message: &Received<'_>) -> bool {
        let exempt = &self.server.config.rate_exempt;
        if exempt.is_empty() {
            return false;
        }
        let bytes: &[u8] = match message {
            Received::Binary(bytes) => bytes,
            Received::InPlace(message) => message.as_bytes(),
            _ => return false,
        };
        packme::FrameHeader::message_id(bytes).is_some_and(|id| exempt.contains(&id))
    }

    /// A message over the client's message rate was dropped: counted, logged, the client
    /// told where its protocol can say it (a session frame, or the JSON protocol's 1010
    /// carrying the message's `c`), and the application's callback called.
    pub(super) fn rate_limited(
        &self,
        link: &Rc<Link>,
        peer: &Peer<S>,
        retry: Duration,
        protocol: &Protocol,
        message: &Received<'_>,
    ) {
        self.server.refusals.message();
        tracing::debug!(conn = link.id, ?retry, "message dropped: rate limit");
        let retry_after_ms = retry.as_nanos().div_ceil(1_000_000);
        match protocol {
            Protocol::Binary { sessioned: true } => {
                let retry_after_ms = u32::try_from(retry_after_ms).unwrap_or(u32::MAX);
                link.send_session(&Control::RateLimited { retry_after_ms });
            }
            Protocol::Json(json) => {
                let retry_after_ms = u64::try_from(retry_after_ms).unwrap_or(u64::MAX);
                json.refuse_frame(text_of(message), &SysError::rate_limited(retry_after_ms));
            }
            Protocol::Binary { sessioned: false } => {}
        }
        if let Some(on_rate_limited) = &self.server.config.on_rate_limited {
            guard("on_rate_limited", || on_rate_limited(peer, retry));
        }
    }

    /// Ends a session taken out of the table: its connection, if any, is closed with
    /// `code`, and the application is told the client is gone.
    pub(super) fn end_session(&self, conn: Conn<S>, code: u16, reason: &str) {
        self.forget(&conn);
        if let Some(link) = &conn.link {
            link.close(code, reason);
        }
        if let Some(on_disconnect) = &self.server.config.on_disconnect {
            guard("on_disconnect", || on_disconnect(&conn.peer));
        }
    }

    /// Ends the suspended sessions whose time to be resumed is over (and those the
    /// application closed while suspended).
    pub(super) fn expire_sessions(&self, now: Instant) {
        let Some(config) = self.server.config.sessions else {
            return;
        };
        // (suspended since, id, due): due once its time is over, or closed by the
        // application while suspended.
        let mut suspended: Vec<(Instant, u64, bool)> = self
            .conns
            .borrow()
            .iter()
            .filter_map(|(&id, c)| {
                let session = c.session.as_ref()?;
                let since = session.suspended_since?;
                Some((since, id, session.closing || now >= since + config.ttl))
            })
            .collect();
        // Past this shard's share of `max_suspended`, the longest suspended go first.
        let cap = config
            .max_suspended
            .div_ceil(self.server.config.shards.max(1));
        let over = suspended.len().saturating_sub(cap);
        if over > 0 {
            suspended.sort_unstable();
            tracing::warn!(
                over,
                cap,
                "too many suspended sessions: the oldest expire early"
            );
        }
        let expired = suspended
            .iter()
            .enumerate()
            .filter(|&(i, &(_, _, due))| i < over || due)
            .map(|(_, &(_, id, _))| id)
            .collect::<Vec<_>>();
        for id in expired {
            let conn = self.conns.borrow_mut().remove(&id);
            if let Some(conn) = conn {
                tracing::debug!(conn = id, "suspended session expired");
                self.end_session(conn, close_code::SESSION_EXPIRED, "session expired");
            }
        }
    }
}

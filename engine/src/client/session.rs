//! The client's side of a session (see [`crate::session`]): what it keeps across
//! reconnects (the id and secret, how many of the server's messages it processed, its own
//! messages the server has not acknowledged), and what it does on each connection: offer
//! a resume, send again what the server did not process, acknowledge what it did.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::link::Link;
use crate::proto::FrameParts;
use crate::session::replay::Replay;
use crate::session::wire::{Control, Resume, Secret};
use crate::session::{SessionId, ACK_EVERY};

/// How a client keeps its session ([`ClientBuilder::sessions`](crate::ClientBuilder::sessions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSessionConfig {
    /// Most messages kept until the server acknowledges them: sent and not yet
    /// acknowledged, or queued while disconnected (default 4 096). Past it,
    /// [`Client::try_send`](crate::Client::try_send) fails.
    pub max_unacked: usize,
    /// Most bytes kept the same way (default 4 MiB).
    pub max_unacked_bytes: usize,
}

impl Default for ClientSessionConfig {
    fn default() -> Self {
        Self {
            max_unacked: 4096,
            max_unacked_bytes: 4 << 20,
        }
    }
}

/// Why a message was not accepted for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session already keeps as many unacknowledged messages (or bytes) as it may.
    #[error("the session's send buffer is full ({0} messages wait for the server)")]
    Full(usize),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

/// What the client's handles and its thread share about the session's buffer: its size,
/// so that a sender learns at the call that it is full.
#[derive(Debug, Default)]
pub(super) struct Unacked {
    messages: AtomicUsize,
    bytes: AtomicUsize,
}

impl Unacked {
    /// Reserves room for one message of `len` bytes.
    pub(super) fn reserve(
        &self,
        config: &ClientSessionConfig,
        len: usize,
    ) -> Result<(), SendError> {
        let messages = self.messages.fetch_add(1, Ordering::AcqRel);
        let bytes = self.bytes.fetch_add(len, Ordering::AcqRel);
        if messages >= config.max_unacked
            || (messages > 0 && bytes + len > config.max_unacked_bytes)
        {
            self.release(1, len);
            return Err(SendError::Full(messages));
        }
        Ok(())
    }

    fn release(&self, messages: usize, bytes: usize) {
        self.messages.fetch_sub(messages, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Where the session is on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection, or one that has not answered the offer yet: sends are kept only.
    Waiting,
    /// The server created or restored the session on this connection: sends go out.
    Live,
    /// The server does not offer sessions: sends go out as they would without them.
    Unsupported,
}

/// The session state on the client's thread.
pub(super) struct ClientSession {
    creds: Option<(SessionId, Secret)>,
    /// The server's data messages processed on earlier connections (and before the mark).
    processed_before: u64,
    /// The connection's received-message counter when the session was (re)established.
    mark: u32,
    acked: u64,
    sent: Replay,
    phase: Phase,
    unacked: Arc<Unacked>,
}

/// What the application hears of a failed resume.
pub(super) struct ResumeFailed {
    pub code: u16,
}

impl ClientSession {
    pub(super) fn new(unacked: Arc<Unacked>) -> Self {
        Self {
            creds: None,
            processed_before: 0,
            mark: 0,
            acked: 0,
            // The caller's reservation enforces the bounds; the buffer never drops.
            sent: Replay::new(usize::MAX, usize::MAX),
            phase: Phase::Waiting,
            unacked,
        }
    }

    /// The resume to offer on a new connection, if there is a session to resume.
    pub(super) fn offer(&self) -> Option<Resume> {
        self.creds.map(|(id, secret)| Resume {
            id,
            secret,
            last_seq: self.processed_before,
        })
    }

    /// A connection ended: what it processed is counted; sends wait for the next one.
    pub(super) fn disconnected(&mut self, link: &Link) {
        if self.phase == Phase::Live {
            self.processed_before = self.processed(link);
        }
        self.phase = Phase::Waiting;
    }

    fn processed(&self, link: &Link) -> u64 {
        self.processed_before + u64::from(link.data_received().wrapping_sub(self.mark))
    }

    /// Sends (or, until the session is live on a connection, keeps) a message whose room
    /// was reserved.
    pub(super) fn send(&mut self, link: Option<&Rc<Link>>, frame: FrameParts) {
        match (self.phase, link) {
            (Phase::Unsupported, Some(link)) => {
                self.unacked.release(1, frame.len());
                link.send_parts(frame);
            }
            (Phase::Live, Some(link)) => {
                self.sent.push(&frame);
                link.send_parts(frame);
            }
            _ => {
                self.sent.push(&frame);
            }
        }
    }

    /// The server did not accept the extension on this connection: what waits goes out
    /// now, and sends go out unnumbered until a connection has a session again.
    pub(super) fn unsupported(&mut self, link: &Rc<Link>) {
        tracing::warn!("the server does not offer sessions: messages may be lost on reconnects");
        let (len, bytes) = (self.sent.len(), self.sent.bytes());
        for frame in self.take_kept() {
            link.send_parts(frame);
        }
        self.unacked.release(len, bytes);
        self.phase = Phase::Unsupported;
    }

    fn take_kept(&mut self) -> Vec<FrameParts> {
        self.sent.take_all()
    }

    /// A session frame from the server. `Err` if it breaks the extension's protocol;
    /// `Ok(Some(..))` when a resume failed (a new session started).
    pub(super) fn control(
        &mut self,
        link: &Rc<Link>,
        bytes: &[u8],
    ) -> Result<Option<ResumeFailed>, ()> {
        match Control::decode(bytes).ok_or(())? {
            Control::Created {
                id,
                secret,
                refused,
                ..
            } if self.phase == Phase::Waiting => {
                let had_session = self.creds.is_some();
                self.creds = Some((id, secret));
                self.processed_before = 0;
                self.acked = 0;
                self.mark = link.data_received();
                // A new session numbers from 1: what waits is sent again on it.
                for frame in self.take_kept() {
                    self.sent.push(&frame);
                    link.send_parts(frame);
                }
                self.phase = Phase::Live;
                Ok(had_session.then_some(ResumeFailed {
                    code: refused.unwrap_or(crate::session::resume_error::UNKNOWN_SESSION),
                }))
            }
            Control::Restored {
                last_seq, received, ..
            } if self.phase == Phase::Waiting => {
                self.processed_before = last_seq;
                self.acked = last_seq;
                self.mark = link.data_received();
                self.acknowledged(received);
                for frame in self.sent.after(received).map_err(|_| ())? {
                    link.send_kept(frame);
                }
                self.phase = Phase::Live;
                Ok(None)
            }
            Control::Ack { seq } if self.phase == Phase::Live => {
                self.acknowledged(seq);
                Ok(None)
            }
            Control::RateLimited { retry_after_ms } => {
                tracing::warn!(retry_after_ms, "the server refused a message: rate limit");
                Ok(None)
            }
            _ => Err(()),
        }
    }

    /// The server processed our messages up to `seq`: they are forgotten.
    fn acknowledged(&mut self, seq: u64) {
        let (len, bytes) = (self.sent.len(), self.sent.bytes());
        self.sent.ack(seq);
        self.unacked
            .release(len - self.sent.len(), bytes - self.sent.bytes());
    }

    /// After a data message from the server: acknowledges every [`ACK_EVERY`].
    pub(super) fn received(&mut self, link: &Rc<Link>) {
        if self.phase != Phase::Live {
            return;
        }
        let processed = self.processed(link);
        if processed >= self.acked + ACK_EVERY {
            self.acked = processed;
            link.send_session(&Control::Ack { seq: processed });
        }
    }

    /// The session's id, once the server created it.
    pub(super) fn id(&self) -> Option<SessionId> {
        self.creds.map(|(id, _)| id)
    }
}

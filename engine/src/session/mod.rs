//! Sessions: what outlives a connection. A client that negotiates the engine's session
//! extension gets a session (id, resume secret, numbered output kept in a replay buffer);
//! when its connection drops, the session is suspended for a while instead of ending, and
//! a new connection that presents the id and secret resumes it: the server sends again
//! exactly the data messages the client did not process, the client sends again those the
//! server did not, and both continue with the next number. No message is lost, none is
//! delivered twice, and a gap the server cannot fill is reported (1013), never silent.
//!
//! Real ConnectMe clients never offer the extension and see nothing of it: their wire is
//! unchanged. The extension's wire is in [`wire`] and the README.

pub(crate) mod frame_log;
pub(crate) mod json_wire;
pub(crate) mod replay;
pub(crate) mod wire;

use std::time::{Duration, Instant};

use crate::guard::TokenBucket;
use replay::Replay;
use wire::Secret;
pub use wire::SessionId;

/// A receiver acknowledges the other side's data messages after this many, so each side's
/// replay buffer holds at most about this many messages that the peer already has.
pub(crate) const ACK_EVERY: u64 = 32;

/// Error codes a failed resume reports (the JSON protocol's `sys.error` codes).
pub mod resume_error {
    /// A wrong secret, or an authenticated user other than the session's.
    pub const BAD_CREDENTIALS: u16 = 1004;
    /// No such session: it expired, was closed, or never existed.
    pub const UNKNOWN_SESSION: u16 = 1006;
    /// The connection asked to resume the session it already holds.
    pub const DUPLICATE: u16 = 1007;
    /// Messages the client needs were dropped from the replay buffer (`resumeGap`).
    pub const GAP: u16 = 1013;
}

/// How sessions behave on a server ([`ServerBuilder::sessions`](crate::ServerBuilder::sessions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long a session whose connection dropped waits to be resumed before it ends
    /// (default 2 minutes: long enough for a phone to change networks or leave a tunnel,
    /// short enough that abandoned sessions do not pile up).
    pub ttl: Duration,
    /// Most data messages a session keeps for replay (default 4 096).
    pub replay_messages: usize,
    /// Most bytes a session keeps for replay (default 4 MiB). Over either bound the oldest
    /// message is dropped; a resume that needs it fails with 1013.
    pub replay_bytes: usize,
    /// Most sessions suspended at once, over all shards (default 100 000). Past it the
    /// longest suspended expire early (checked every second): clients that open sessions
    /// and vanish cannot hold memory without bound.
    pub max_suspended: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(120),
            replay_messages: 4096,
            replay_bytes: 4 << 20,
            max_suspended: 100_000,
        }
    }
}

/// The server's side of one session, kept with its client's entry on the shard that
/// owns it (and moved with it when a resume lands on another shard).
#[derive(Debug)]
pub(crate) struct ServerSession {
    pub id: SessionId,
    pub secret: Secret,
    pub user: Option<String>,
    /// Every data message sent to the session that the client has not acknowledged.
    pub replay: Replay,
    /// The client's data messages processed on earlier connections.
    pub received_before: u64,
    /// The current connection's received-message counter when it was attached.
    pub received_mark: u32,
    /// The last number acknowledged to the client.
    pub acked: u64,
    /// Since when the session has no connection.
    pub suspended_since: Option<Instant>,
    /// The application closed the session: when its connection ends, so does it.
    pub closing: bool,
    /// The client's message budget under the server's message rate (made full at its
    /// first message). It is the session's, not the connection's: a resume does not
    /// refill it, so reconnecting gains a flooding client nothing.
    pub rate: Option<TokenBucket>,
    /// The session speaks the JSON protocol: its sequenced messages carry `s`
    /// ([`json_wire`]), and its control messages are JSON events.
    pub json: bool,
    /// The client's own listeners (a `ListenerCell`) while the session is suspended: the
    /// next connection takes them back. Kept here rather than beside every client's
    /// entry in the shard's table, where it would cost each entry 16 bytes.
    pub suspended_listeners: Option<std::rc::Rc<dyn std::any::Any>>,
}

impl ServerSession {
    pub(crate) fn new(config: &SessionConfig, user: Option<String>, json: bool) -> Self {
        Self {
            id: SessionId::random(),
            secret: Secret::random(),
            user,
            replay: Replay::new(config.replay_messages, config.replay_bytes),
            received_before: 0,
            received_mark: 0,
            acked: 0,
            suspended_since: None,
            closing: false,
            rate: None,
            json,
            suspended_listeners: None,
        }
    }

    /// The client's data messages processed so far, given the current connection's
    /// counter.
    pub(crate) fn received(&self, counter: u32) -> u64 {
        self.received_before + u64::from(counter.wrapping_sub(self.received_mark))
    }
}

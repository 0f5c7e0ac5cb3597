//! Server configuration: every option of ConnectMe's server, plus the limits and
//! timeouts a production server needs, each with a default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::peer::{ConnInfo, Peer};
use crate::proto::Timeouts;
use crate::rt::Driver;

/// Which protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// WebSocket (RFC 6455), upgrade on any path.
    #[default]
    WebSocket,
    /// ConnectMe TCP: 8-byte big-endian total length, then the payload.
    Tcp,
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address; port 0 picks a free port shared by every shard.
    Tcp(SocketAddr),
    /// A Unix domain socket path (a stale socket file there is replaced).
    Unix(PathBuf),
}

/// Limits on what a peer may send and hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest WebSocket frame payload.
    pub max_frame: usize,
    /// Largest message (WebSocket: all fragments; TCP: one frame's payload).
    pub max_message: usize,
    /// Largest WebSocket upgrade request head.
    pub max_handshake: usize,
    /// Outgoing bytes queued for one connection before it is closed as a slow consumer
    /// (close code 1008).
    pub max_queued_bytes: usize,
    /// Queries one connection may have pending.
    pub max_pending_queries: usize,
}

impl Limits {
    /// The frame and message limits, as the protocol core takes them.
    pub(crate) fn frames(&self) -> crate::proto::Limits {
        crate::proto::Limits {
            max_frame: self.max_frame,
            max_message: self.max_message,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_message: 16 << 20,
            max_handshake: 8 << 10,
            max_queued_bytes: 16 << 20,
            max_pending_queries: 65_536,
        }
    }
}

pub(crate) type StateFactory<S> = Arc<dyn Fn(&ConnInfo) -> S + Send + Sync>;
pub(crate) type PeerCallback<S> = Arc<dyn Fn(&Peer<S>) + Send + Sync>;

pub(crate) struct ServerConfig<S> {
    pub endpoint: Endpoint,
    pub shards: usize,
    pub transport: Transport,
    pub driver: Driver,
    pub pin_cores: bool,
    pub ring_entries: u32,
    pub limits: Limits,
    /// Close, query, body and write timeouts, keepalive.
    pub timeouts: Timeouts,
    pub handshake_timeout: Duration,
    pub flush_delay: Duration,
    /// Subprotocols the server speaks: the first one the client offers among them is
    /// selected. `None` (the default) selects none, whatever the client offers, as
    /// tungstenite and axum do.
    pub protocols: Option<Vec<String>>,
    pub state: StateFactory<S>,
    pub on_connect: Option<PeerCallback<S>>,
    pub on_disconnect: Option<PeerCallback<S>>,
}

impl<S> ServerConfig<S> {
    /// The subprotocol to answer with: the first one the client offers that is configured
    /// (none unless a list is configured: a server never claims to speak a protocol just
    /// because a client asked for it). Never required: a client offering none, or only
    /// unknown ones, is accepted without one.
    pub(crate) fn select_protocol(&self, offered: &[String]) -> Option<String> {
        let supported = self.protocols.as_deref()?;
        offered.iter().find(|p| supported.contains(p)).cloned()
    }
}

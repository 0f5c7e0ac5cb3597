//! The server's plain configuration types: what it speaks, where it listens, and the
//! limits a peer is held to, each with a default.

use std::net::SocketAddr;
use std::path::PathBuf;

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

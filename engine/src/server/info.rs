//! What the server learned about a connection when it was accepted: its address and its
//! upgrade request. Plain data, built once by the shard and kept by the connection's peer.

use std::net::SocketAddr;

use crate::proto::handshake::Headers;

/// What the server learned about a connection when it was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The peer's address (`None` on a Unix socket).
    pub peer_addr: Option<SocketAddr>,
    /// The upgrade request's path (WebSocket only).
    pub path: String,
    /// The upgrade request's query string, without `?`.
    pub query: Option<String>,
    /// The upgrade request's headers (WebSocket only; ConnectMe clients put their custom
    /// headers here).
    pub headers: Headers,
    /// The subprotocol selected for this connection.
    pub protocol: Option<String>,
}

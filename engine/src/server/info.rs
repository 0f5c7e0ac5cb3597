//! What the server learned about a connection when it was accepted: its address and its
//! upgrade request. Plain data, built once by the shard and kept by the connection's peer
//! for the connection's whole life, so it is kept compact (issue 15): the path, the query
//! and the subprotocol share one string, the headers are packed in one allocation.

use std::fmt;
use std::net::SocketAddr;

use crate::proto::handshake::Headers;

/// What the server learned about a connection when it was accepted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    peer_addr: Option<SocketAddr>,
    /// The path, the query and the subprotocol, back to back: one allocation where three
    /// strings took up to three and 72 bytes in every peer.
    text: Box<str>,
    /// Where the query starts in `text` (the path's end).
    query_at: u32,
    /// Where the subprotocol starts in `text` (the query's end).
    protocol_at: u32,
    has_query: bool,
    has_protocol: bool,
    headers: Headers,
}

impl ConnInfo {
    /// A connection from `peer_addr` (`None` on a Unix socket) that made no upgrade request
    /// (ConnectMe TCP).
    pub(crate) fn without_request(peer_addr: Option<SocketAddr>) -> Self {
        Self {
            peer_addr,
            ..Self::default()
        }
    }

    /// A WebSocket connection from `peer_addr`, its upgrade request's path, query and
    /// headers, and the subprotocol selected (the server makes these; this is for
    /// testing what reads one, e.g. a state factory).
    ///
    /// # Panics
    ///
    /// If the path, query and subprotocol together are 4 GiB or longer (a server refuses
    /// an upgrade request over its `max_handshake` limit, 8 KiB by default).
    pub fn new(
        peer_addr: Option<SocketAddr>,
        path: &str,
        query: Option<&str>,
        headers: Headers,
        protocol: Option<&str>,
    ) -> Self {
        let query_text = query.unwrap_or_default();
        let protocol_text = protocol.unwrap_or_default();
        let offset = |len: usize| u32::try_from(len).expect("an upgrade request under 4 GiB");
        Self {
            peer_addr,
            text: [path, query_text, protocol_text].concat().into_boxed_str(),
            query_at: offset(path.len()),
            protocol_at: offset(path.len() + query_text.len()),
            has_query: query.is_some(),
            has_protocol: protocol.is_some(),
            headers,
        }
    }

    /// The peer's address (`None` on a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The upgrade request's path (WebSocket only; empty otherwise).
    pub fn path(&self) -> &str {
        &self.text[..self.query_at as usize]
    }

    /// The upgrade request's query string, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.has_query
            .then(|| &self.text[self.query_at as usize..self.protocol_at as usize])
    }

    /// The upgrade request's headers (WebSocket only; ConnectMe clients put their custom
    /// headers here), or those [`ServerBuilder::keep_headers`](crate::ServerBuilder::keep_headers)
    /// kept once the connection is open.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The subprotocol selected for this connection.
    pub fn protocol(&self) -> Option<&str> {
        self.has_protocol
            .then(|| &self.text[self.protocol_at as usize..])
    }

    /// Keeps only the headers named in `names` (case-insensitive).
    pub(crate) fn keep_only_headers(&mut self, names: &[String]) {
        self.headers = self.headers.only(names);
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("peer_addr", &self.peer_addr)
            .field("path", &self.path())
            .field("query", &self.query())
            .field("headers", &self.headers)
            .field("protocol", &self.protocol())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_comes_back_as_given() {
        let addr = "127.0.0.1:9000".parse().ok();
        let headers = Headers::from_pairs([("x-device", "phone")]);
        let info = ConnInfo::new(addr, "/game", Some("room=7"), headers.clone(), Some("chat"));
        assert_eq!(info.peer_addr(), addr);
        assert_eq!(info.path(), "/game");
        assert_eq!(info.query(), Some("room=7"));
        assert_eq!(info.protocol(), Some("chat"));
        assert_eq!(info.headers(), &headers);

        let bare = ConnInfo::new(addr, "/", None, Headers::default(), None);
        assert_eq!(
            (bare.path(), bare.query(), bare.protocol()),
            ("/", None, None)
        );
        let empty = ConnInfo::new(addr, "/", Some(""), Headers::default(), Some(""));
        assert_eq!((empty.query(), empty.protocol()), (Some(""), Some("")));

        let tcp = ConnInfo::without_request(None);
        assert_eq!((tcp.peer_addr(), tcp.path(), tcp.query()), (None, "", None));
        assert!(tcp.headers().is_empty());
    }
}

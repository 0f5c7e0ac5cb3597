//! Where a client connects ([`Target`], parsed from `ws://`, `tcp://`, `unix:` or a bare
//! socket address) and why connecting can fail ([`ConnectError`]).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::proto::handshake::HandshakeError;
use crate::proto::Wire;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not something the client can connect to.
    #[error("invalid address {0:?}: {1}")]
    InvalidAddress(String, String),
    /// The socket could not be opened.
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// Connecting or the handshake took longer than the connect timeout.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// The client was closed.
    #[error("client closed")]
    Closed,
    /// `connect` or `start` was called a second time.
    #[error("client already started")]
    AlreadyStarted,
}

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A WebSocket server.
    WebSocket {
        /// `host:port` to connect to.
        connect: String,
        /// The `Host` header (host, and the port unless it is the default).
        host: String,
        /// Path and query of the upgrade request.
        target: String,
    },
    /// A ConnectMe TCP server.
    Tcp(SocketAddr),
    /// A ConnectMe TCP server on a Unix socket.
    Unix(PathBuf),
}

impl Target {
    /// `ws://host:port/path?query`, `tcp://host:port`, `unix:/path`, or a bare socket
    /// address (TCP, as ConnectMe treats an IP-literal address).
    pub fn parse(address: &str) -> Result<Self, ConnectError> {
        let invalid = |why: &str| ConnectError::InvalidAddress(address.to_owned(), why.to_owned());
        if let Some(path) = address
            .strip_prefix("unix://")
            .or_else(|| address.strip_prefix("unix:"))
        {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Ok(addr) = address.parse::<SocketAddr>() {
            return Ok(Self::Tcp(addr));
        }
        let url = url::Url::parse(address).map_err(|e| invalid(&e.to_string()))?;
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        match url.scheme() {
            "ws" => {
                let connect = format!("{host}:{}", url.port().unwrap_or(80));
                let host = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                };
                let mut target = url.path().to_owned();
                if let Some(query) = url.query() {
                    target.push('?');
                    target.push_str(query);
                }
                Ok(Self::WebSocket {
                    connect,
                    host,
                    target,
                })
            }
            "tcp" => {
                let port = url.port().ok_or_else(|| invalid("tcp:// needs a port"))?;
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(
                    host.trim_matches(['[', ']']),
                    port,
                ))
                .map_err(|e| invalid(&e.to_string()))?
                .next()
                .ok_or_else(|| invalid("resolves to nothing"))?;
                Ok(Self::Tcp(addr))
            }
            "wss" => Err(invalid("wss:// (TLS) is not supported yet")),
            other => Err(invalid(&format!("unsupported scheme {other}"))),
        }
    }

    pub(super) fn wire(&self) -> Wire {
        match self {
            Self::WebSocket { .. } => Wire::WsClient,
            _ => Wire::Tcp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("ws://127.0.0.1:9001/game?x=1").unwrap(),
            Target::WebSocket {
                connect: "127.0.0.1:9001".into(),
                host: "127.0.0.1:9001".into(),
                target: "/game?x=1".into()
            }
        );
        assert_eq!(
            Target::parse("ws://example.com").unwrap(),
            Target::WebSocket {
                connect: "example.com:80".into(),
                host: "example.com".into(),
                target: "/".into()
            }
        );
        assert_eq!(
            Target::parse("127.0.0.1:7000").unwrap(),
            Target::Tcp("127.0.0.1:7000".parse().unwrap())
        );
        assert_eq!(
            Target::parse("tcp://127.0.0.1:7000").unwrap(),
            Target::Tcp("127.0.0.1:7000".parse().unwrap())
        );
        assert_eq!(
            Target::parse("unix:/tmp/x.sock").unwrap(),
            Target::Unix("/tmp/x.sock".into())
        );
        assert!(matches!(
            Target::parse("wss://x"),
            Err(ConnectError::InvalidAddress(..))
        ));
        assert!(matches!(
            Target::parse("http://x"),
            Err(ConnectError::InvalidAddress(..))
        ));
    }
}

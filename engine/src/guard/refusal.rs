//! Refusing a connection before its upgrade: which guard said no, and the HTTP response.
//!
//! A refused upgrade gets a complete HTTP/1.1 error response and `Connection: close`, in
//! the same format as the handshake's own errors (`HandshakeError::http_response`): status
//! line, extra headers, `Content-Type: text/plain; charset=utf-8`, `Content-Length`,
//! `Connection: close`, then a one-line body. Clients (browsers, the Dart client) see a
//! status instead of a reset, and a 429 says when to come back.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest body kept: the reason is a short diagnostic, not a payload.
const MAX_REASON: usize = 256;

/// Which guard refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedBy {
    /// The server's total connection cap (503).
    Connections,
    /// The cap on open connections from one address (503).
    ConnectionsPerIp,
    /// The handshake rate from one address (429 with `Retry-After`).
    HandshakeRate,
    /// The `Origin` header is not on the allow-list (403).
    Origin,
}

/// A refused connection: the guard, and for a rate limit when a retry can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection refused ({status}): {reason}", status = self.status(), reason = self.reason())]
pub(crate) struct Refusal {
    /// The guard that refused.
    pub(crate) by: RefusedBy,
    /// Time until the guard would admit the same request (rate limits only).
    pub(crate) retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal by a guard without a retry time.
    pub(crate) const fn new(by: RefusedBy) -> Self {
        Self {
            by,
            retry_after: None,
        }
    }

    /// A handshake-rate refusal: retry after `retry_after`.
    pub(crate) const fn rate(retry_after: Duration) -> Self {
        Self {
            by: RefusedBy::HandshakeRate,
            retry_after: Some(retry_after),
        }
    }

    /// The HTTP status: 503 for connection caps (the server is fine, just full), 429 for
    /// the rate, 403 for the origin.
    pub(crate) const fn status(&self) -> u16 {
        match self.by {
            RefusedBy::Connections | RefusedBy::ConnectionsPerIp => 503,
            RefusedBy::HandshakeRate => 429,
            RefusedBy::Origin => 403,
        }
    }

    /// A short reason for the response body and logs; says nothing about the limits.
    pub(crate) const fn reason(&self) -> &'static str {
        match self.by {
            RefusedBy::Connections => "server at its connection limit",
            RefusedBy::ConnectionsPerIp => "too many connections from this address",
            RefusedBy::HandshakeRate => "too many connection attempts from this address",
            RefusedBy::Origin => "origin not allowed",
        }
    }

    /// The complete HTTP response for this refusal.
    pub(crate) fn http_response(&self) -> Vec<u8> {
        http_refusal(self.status(), self.reason(), self.retry_after)
    }
}

/// How many connections and messages a server's guards refused since it was built
/// ([`Server::refusals`](crate::Server::refusals)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusals {
    /// Connections refused by [`Guards::max_connections`](crate::Guards::max_connections)
    /// (503).
    pub connections: u64,
    /// Connections refused by
    /// [`Guards::max_connections_per_ip`](crate::Guards::max_connections_per_ip) (503).
    pub connections_per_ip: u64,
    /// Connections refused by
    /// [`Guards::handshakes_per_ip`](crate::Guards::handshakes_per_ip) (429).
    pub handshake_rate: u64,
    /// WebSocket upgrades refused by
    /// [`Guards::allowed_origins`](crate::Guards::allowed_origins) (403).
    pub origin: u64,
    /// Messages dropped by
    /// [`ServerBuilder::message_rate`](crate::ServerBuilder::message_rate).
    pub messages: u64,
}

/// The counters behind [`Refusals`], shared by the shards. Touched only when something is
/// refused.
#[derive(Debug, Default)]
pub(crate) struct RefusalCounters {
    connections: AtomicU64,
    connections_per_ip: AtomicU64,
    handshake_rate: AtomicU64,
    origin: AtomicU64,
    messages: AtomicU64,
}

impl RefusalCounters {
    /// Counts a refused connection.
    pub(crate) fn connection(&self, by: RefusedBy) {
        let counter = match by {
            RefusedBy::Connections => &self.connections,
            RefusedBy::ConnectionsPerIp => &self.connections_per_ip,
            RefusedBy::HandshakeRate => &self.handshake_rate,
            RefusedBy::Origin => &self.origin,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message dropped by the message rate.
    pub(crate) fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> Refusals {
        Refusals {
            connections: self.connections.load(Ordering::Relaxed),
            connections_per_ip: self.connections_per_ip.load(Ordering::Relaxed),
            handshake_rate: self.handshake_rate.load(Ordering::Relaxed),
            origin: self.origin.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
        }
    }
}

/// The standard reason phrase of the statuses a refusal uses (and a few neighbours).
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        // The reason phrase may be empty (RFC 9112 §4).
        _ => "",
    }
}

/// A complete HTTP/1.1 error response that closes the connection.
///
/// `status` outside 100..=999 becomes 500. `reason` is the one-line text/plain body (cut at
/// 256 bytes, control characters replaced by spaces so it stays one line).
/// `retry_after` becomes `Retry-After` in whole seconds, rounded up.
pub(crate) fn http_refusal(status: u16, reason: &str, retry_after: Option<Duration>) -> Vec<u8> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let mut body: String = truncate(reason, MAX_REASON)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    body.push('\n');
    let mut head = String::with_capacity(160 + body.len());
    // Writing to a String cannot fail.
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if let Some(after) = retry_after {
        let secs = after
            .as_secs()
            .saturating_add(u64::from(after.subsec_nanos() > 0));
        let _ = write!(head, "Retry-After: {secs}\r\n");
    }
    let _ = write!(
        head,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    head.into_bytes()
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("responses are UTF-8")
    }

    #[test]
    fn rate_refusal_bytes() {
        let refusal = Refusal::rate(Duration::from_millis(1500));
        assert_eq!(
            text(refusal.http_response()),
            "HTTP/1.1 429 Too Many Requests\r\n\
             Retry-After: 2\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 47\r\n\
             Connection: close\r\n\
             \r\n\
             too many connection attempts from this address\n"
        );
    }

    #[test]
    fn cap_and_origin_refusal_bytes() {
        assert_eq!(
            text(Refusal::new(RefusedBy::Connections).http_response()),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 31\r\nConnection: close\r\n\r\nserver at its connection limit\n"
        );
        let per_ip = text(Refusal::new(RefusedBy::ConnectionsPerIp).http_response());
        assert!(per_ip.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!per_ip.contains("Retry-After"));
        assert_eq!(
            text(Refusal::new(RefusedBy::Origin).http_response()),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 19\r\nConnection: close\r\n\r\norigin not allowed\n"
        );
    }

    #[test]
    fn statuses_and_phrases() {
        for (status, line) in [
            (400, "HTTP/1.1 400 Bad Request\r\n"),
            (401, "HTTP/1.1 401 Unauthorized\r\n"),
            (403, "HTTP/1.1 403 Forbidden\r\n"),
            (404, "HTTP/1.1 404 Not Found\r\n"),
            (429, "HTTP/1.1 429 Too Many Requests\r\n"),
            (503, "HTTP/1.1 503 Service Unavailable\r\n"),
            (418, "HTTP/1.1 418 \r\n"),
            (0, "HTTP/1.1 500 Internal Server Error\r\n"),
            (1000, "HTTP/1.1 500 Internal Server Error\r\n"),
        ] {
            let response = text(http_refusal(status, "x", None));
            assert!(response.starts_with(line), "{status}: {response:?}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (after, header) in [
            (Duration::ZERO, "Retry-After: 0\r\n"),
            (Duration::from_nanos(1), "Retry-After: 1\r\n"),
            (Duration::from_millis(100), "Retry-After: 1\r\n"),
            (Duration::from_secs(1), "Retry-After: 1\r\n"),
            (Duration::from_millis(1001), "Retry-After: 2\r\n"),
            (Duration::from_secs(60), "Retry-After: 60\r\n"),
            (Duration::MAX, "Retry-After: 18446744073709551615\r\n"),
        ] {
            let response = text(http_refusal(429, "slow down", Some(after)));
            assert!(response.contains(header), "{after:?}: {response:?}");
        }
    }

    #[test]
    fn body_is_one_short_line_and_length_is_exact() {
        for reason in [
            String::new(),
            "line\r\nInjected: header".to_owned(),
            "é".repeat(200),
            "x".repeat(10_000),
        ] {
            let response = text(http_refusal(400, &reason, None));
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
            assert!(body.len() <= MAX_REASON + 1);
            assert_eq!(body.matches('\n').count(), 1);
            assert!(body.ends_with('\n'));
            assert!(!head.contains("Injected"));
        }
    }

    #[test]
    fn refusal_parses_as_http_error_on_the_client_side() {
        // The handshake's own client parser reads the status.
        let response = Refusal::rate(Duration::from_secs(3)).http_response();
        let key = crate::proto::handshake::new_key();
        assert_eq!(
            crate::proto::handshake::parse_response(&response, &key, 8192),
            Err(crate::proto::handshake::HandshakeError::Status(429))
        );
    }
}

//! The WebSocket opening handshake (RFC 6455 section 4), both ends, without I/O.
//!
//! The server side parses the upgrade request (any path: ConnectMe routes nothing, the
//! path, query and headers are handed to the application), and answers a request that is
//! not a WebSocket upgrade with a plain HTTP error instead of failing (spec 11.A6). The
//! client side writes the upgrade request with custom headers and checks the server's
//! answer, `Sec-WebSocket-Accept` included.

use base64::Engine;

/// The GUID every accept key is derived with (section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Headers a handshake may carry.
const MAX_HEADERS: usize = 64;

/// A handshake that cannot go on. On the server side each maps to an HTTP error status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request or response head exceeds the limit.
    #[error("handshake larger than {max} bytes")]
    TooLarge {
        /// Configured limit.
        max: usize,
    },
    /// Not parseable as HTTP/1.1.
    #[error("malformed HTTP: {0}")]
    Malformed(String),
    /// A method other than GET.
    #[error("method {0} is not GET")]
    NotGet(String),
    /// A plain HTTP request without `Upgrade: websocket`.
    #[error("not a WebSocket upgrade request")]
    NotWebSocket,
    /// `Sec-WebSocket-Version` other than 13.
    #[error("unsupported WebSocket version {0:?}")]
    UnsupportedVersion(String),
    /// `Sec-WebSocket-Key` missing or not 16 base64-encoded bytes.
    #[error("missing or invalid Sec-WebSocket-Key")]
    BadKey,
    /// The server answered with a status other than 101.
    #[error("server answered HTTP {0} instead of 101")]
    Status(u16),
    /// The server's `Sec-WebSocket-Accept` does not match our key.
    #[error("server's Sec-WebSocket-Accept does not match")]
    BadAccept,
}

impl HandshakeError {
    /// The HTTP response a server sends before closing the connection.
    pub fn http_response(&self) -> Vec<u8> {
        let (status, extra) = match self {
            Self::TooLarge { .. } => ("431 Request Header Fields Too Large", ""),
            Self::NotGet(_) => ("405 Method Not Allowed", "Allow: GET\r\n"),
            Self::NotWebSocket => (
                "426 Upgrade Required",
                "Upgrade: websocket\r\nConnection: Upgrade\r\n",
            ),
            Self::UnsupportedVersion(_) => {
                ("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n")
            }
            _ => ("400 Bad Request", ""),
        };
        let body = format!("{self}\n");
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// Name-value header list with case-insensitive lookup.
///
/// Every connection keeps its upgrade headers for its whole life, so they are stored in
/// one string: each name and value after its length (ASCII digits of six bits), in order. A
/// handful of headers costs their text and two or three bytes each, where a `String` per
/// name and value costs two allocations per header, and offsets kept apart a second
/// allocation that shared its size class with the handshake's passing ones (issue 15).
/// Reading walks the string: `get` and `len` take time in the number of headers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    packed: Box<str>,
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Headers {
    /// Headers from name-value pairs, in order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut packed = String::new();
        for (name, value) in pairs {
            for part in [name, value] {
                push_len(&mut packed, part.len());
                packed.push_str(part);
            }
        }
        Self {
            packed: packed.into_boxed_str(),
        }
    }

    /// All headers in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest = &*self.packed;
        std::iter::from_fn(move || {
            let name = take_str(&mut rest)?;
            let value = take_str(&mut rest)?;
            Some((name, value))
        })
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The headers named in `names` (case-insensitive), in order; none allocates nothing.
    pub(crate) fn only(&self, names: &[String]) -> Self {
        Self::from_pairs(
            self.iter()
                .filter(|(name, _)| names.iter().any(|kept| kept.eq_ignore_ascii_case(name))),
        )
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        let values: Vec<std::borrow::Cow<'_, str>> = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h.value))
            .collect();
        Self::from_pairs(
            headers
                .iter()
                .zip(&values)
                .map(|(h, v)| (h.name, v.as_ref())),
        )
    }
}

/// Appends `len` in ASCII characters, six bits each, low first, bit 6 saying more follow
/// (LEB128 with 6-bit groups): every byte stays below 0x80, so the packed headers are a
/// `str` and reading them back slices it, with no UTF-8 validation and no `unsafe`.
fn push_len(out: &mut String, mut len: usize) {
    while len >= 0x40 {
        out.push(char::from((len & 0x3f) as u8 | 0x40));
        len >>= 6;
    }
    out.push(char::from(len as u8));
}

/// Takes one length-prefixed string off the front of `rest` (written by [`push_len`]
/// and a whole `str`).
fn take_str<'a>(rest: &mut &'a str) -> Option<&'a str> {
    if rest.is_empty() {
        return None;
    }
    let mut len = 0usize;
    let mut shift = 0;
    let mut digits = 0;
    for &byte in rest.as_bytes() {
        digits += 1;
        len |= usize::from(byte & 0x3f) << shift;
        if byte & 0x40 == 0 {
            break;
        }
        shift += 6;
    }
    let part = rest.get(digits..digits + len)?;
    *rest = &rest[digits + len..];
    Some(part)
}

/// A client's upgrade request, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The path, without the query (`/chat`).
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// All request headers.
    pub headers: Headers,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    pub protocols: Vec<String>,
    key: String,
}

impl UpgradeRequest {
    /// The `Sec-WebSocket-Key` the response must answer.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Parses the upgrade request at the start of `buf`: `Ok(None)` while incomplete,
/// otherwise the request and the bytes it took (frames may follow in the same read).
pub fn parse_request(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    // One empty line before the request line is tolerated (RFC 9112 section 2.2); a second
    // is no HTTP request, answered at once rather than after the handshake timeout.
    let request_line = buf.strip_prefix(b"\r\n").unwrap_or(buf);
    if request_line == b"\r" {
        // The start of a CRLF: the tolerated empty line, or a refused second one.
        return Ok(None);
    }
    if request_line.starts_with(b"\r") || request_line.starts_with(b"\n") {
        return Err(HandshakeError::Malformed(
            "empty line where the request line belongs".into(),
        ));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => {
            return Err(HandshakeError::TooLarge { max: max_len })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooLarge { max: max_len })
        }
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    if consumed > max_len {
        return Err(HandshakeError::TooLarge { max: max_len });
    }
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or("/");
    if request.version != Some(1) {
        return Err(HandshakeError::Malformed("HTTP version is not 1.1".into()));
    }
    let headers = Headers::from_httparse(request.headers);
    if !headers.has_token("upgrade", "websocket") {
        return Err(HandshakeError::NotWebSocket);
    }
    if method != "GET" {
        return Err(HandshakeError::NotGet(method.to_owned()));
    }
    if !headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::Malformed(
            "Connection header lacks the upgrade token".into(),
        ));
    }
    match headers.get("sec-websocket-version") {
        Some(v) if v.trim() == "13" => {}
        other => {
            return Err(HandshakeError::UnsupportedVersion(
                other.unwrap_or("").to_owned(),
            ))
        }
    }
    let key = headers
        .get("sec-websocket-key")
        .map(str::trim)
        .unwrap_or("");
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !matches!(decoded, Ok(ref bytes) if bytes.len() == 16) {
        return Err(HandshakeError::BadKey);
    }
    let key = key.to_owned();
    let protocols = headers
        .get_all("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    };
    Ok(Some((
        UpgradeRequest {
            path,
            query,
            headers,
            protocols,
            key,
        },
        consumed,
    )))
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
///
/// RustCrypto's `sha1` uses the CPU's SHA extensions where it has them (detected at run
/// time): one handshake's digest in tens of nanoseconds instead of the ~600 ns that
/// `sha1_smol`, 1.6% of the server's CPU per handshake in the `connect` profile, took.
pub fn accept_key(key: &str) -> String {
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The 101 response completing the handshake, selecting `protocol` and accepting
/// `extension` if given.
pub fn accept_response(key: &str, protocol: Option<&str>, extension: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(protocol) = protocol {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(protocol);
        out.push_str("\r\n");
    }
    if let Some(extension) = extension {
        out.push_str("Sec-WebSocket-Extensions: ");
        out.push_str(extension);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A fresh random `Sec-WebSocket-Key`.
pub fn new_key() -> String {
    let mut raw = [0u8; 16];
    fastrand::fill(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The client's upgrade request for `host` (the `Host` header value) and `target`
/// (path and query), with the caller's extra headers and offered subprotocols.
pub fn client_request(
    host: &str,
    target: &str,
    key: &str,
    headers: &[(String, String)],
    protocols: &[String],
) -> Vec<u8> {
    let mut out = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(&protocols.join(", "));
        out.push_str("\r\n");
    }
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeResponse {
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    /// All response headers.
    pub headers: Headers,
}

/// Parses the server's answer to a request sent with `key`.
pub fn parse_response(
    buf: &[u8],
    key: &str,
    max_len: usize,
) -> Result<Option<(UpgradeResponse, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let consumed = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => {
            return Err(HandshakeError::TooLarge { max: max_len })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(HandshakeError::Status(status));
    }
    let headers = Headers::from_httparse(response.headers);
    if !headers.has_token("upgrade", "websocket") || !headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::Malformed(
            "101 response without the upgrade headers".into(),
        ));
    }
    if headers.get("sec-websocket-accept").map(str::trim) != Some(accept_key(key).as_str()) {
        return Err(HandshakeError::BadAccept);
    }
    let protocol = headers
        .get("sec-websocket-protocol")
        .map(|p| p.trim().to_owned());
    Ok(Some((UpgradeResponse { protocol, headers }, consumed)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn headers_keep_every_pair_in_order_whatever_its_length() {
        let long = "v".repeat(20_000);
        let medium = "m".repeat(200);
        let pairs = [
            ("Host", "example.com"),
            ("X-Empty", ""),
            ("X-Long", long.as_str()),
            ("x-medium", medium.as_str()),
            ("x-empty", "é"),
        ];
        let headers = super::Headers::from_pairs(pairs);
        assert_eq!(headers.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(headers.len(), 5);
        assert!(!headers.is_empty());
        assert_eq!(headers.get("HOST"), Some("example.com"));
        assert_eq!(headers.get("x-long"), Some(long.as_str()));
        assert_eq!(headers.get_all("x-empty").collect::<Vec<_>>(), ["", "é"]);
        assert_eq!(headers.get("absent"), None);
        // One byte of length below 64, two below 4 096, three below 262 144.
        let text: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
        // Ten lengths of a byte each, but 200 takes two and 20 000 three.
        assert_eq!(headers.packed.len(), text + 10 + 1 + 2);
        let none = super::Headers::from_pairs([]);
        assert!(none.is_empty());
        assert_eq!(none.len(), 0);
        assert_eq!(format!("{none:?}"), "[]");
        assert_eq!(
            format!("{:?}", super::Headers::from_pairs([("a", "b")])),
            r#"[("a", "b")]"#
        );
    }

    use super::*;

    const RFC_REQUEST: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_rfc_request_with_trailing_frame_bytes() {
        let mut bytes = RFC_REQUEST.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80]);
        let (request, consumed) = parse_request(&bytes, 8192).unwrap().unwrap();
        assert_eq!(consumed, RFC_REQUEST.len());
        assert_eq!(request.path, "/chat");
        assert_eq!(request.query.as_deref(), Some("room=1"));
        assert_eq!(request.protocols, ["chat", "superchat"]);
        assert_eq!(request.headers.get("ORIGIN"), Some("http://example.com"));
        assert_eq!(request.headers.len(), 7);
        assert_eq!(
            request.headers.iter().nth(1),
            Some(("Upgrade", "websocket"))
        );
        let response =
            String::from_utf8(accept_response(request.key(), Some("chat"), None)).unwrap();
        assert_eq!(
            response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        for end in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse_request(&RFC_REQUEST.as_bytes()[..end], 8192),
                Ok(None),
                "prefix {end}"
            );
        }
    }

    #[test]
    fn bad_requests_get_http_errors() {
        let with = |from: &str, to: &str| RFC_REQUEST.replace(from, to);
        let table = [
            (
                "plain http",
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
                "426 Upgrade Required",
            ),
            ("post", with("GET", "POST"), "405 Method Not Allowed"),
            (
                "version 8",
                with("Version: 13", "Version: 8"),
                "426 Upgrade Required",
            ),
            (
                "short key",
                with("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
                "400 Bad Request",
            ),
            (
                "no connection upgrade",
                with("Connection: Upgrade", "Connection: keep-alive"),
                "400 Bad Request",
            ),
            (
                "garbage",
                "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n".to_owned(),
                "400 Bad Request",
            ),
            ("http/1.0", with("HTTP/1.1", "HTTP/1.0"), "400 Bad Request"),
        ];
        for (what, request, status) in table {
            let error = parse_request(request.as_bytes(), 8192).unwrap_err();
            let response = String::from_utf8(error.http_response()).unwrap();
            assert!(
                response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{what}: {response}"
            );
            assert!(response.contains("Content-Length: "), "{what}");
        }
    }

    /// Blank lines are no request: refused from the bytes that arrived, without waiting
    /// for more (issue 13: they used to wait out the 10 s handshake timeout).
    #[test]
    fn blank_lines_are_refused_at_once() {
        for blank in ["\r\n\r\n", "\n\n", "\r\n\n", "\r\n\r\nGET / HTTP/1.1\r\n"] {
            assert!(
                matches!(
                    parse_request(blank.as_bytes(), 8192),
                    Err(HandshakeError::Malformed(_))
                ),
                "{blank:?}"
            );
        }
        let one_empty_line = "\r\nGET / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(
            parse_request(one_empty_line.as_bytes(), 8192),
            Ok(None),
            "tolerated, incomplete"
        );
    }

    #[test]
    fn oversized_head_is_refused() {
        let huge = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n", "a".repeat(9000));
        assert_eq!(
            parse_request(huge.as_bytes(), 8192),
            Err(HandshakeError::TooLarge { max: 8192 })
        );
    }

    #[test]
    fn client_request_round_trips_through_the_server_parser_and_back() {
        let key = new_key();
        let headers = vec![("X-Token".to_owned(), "abc".to_owned())];
        let request = client_request("127.0.0.1:9", "/game?x=1", &key, &headers, &[]);
        let (parsed, _) = parse_request(&request, 8192).unwrap().unwrap();
        assert_eq!(parsed.headers.get("x-token"), Some("abc"));
        assert!(parsed.protocols.is_empty());
        let response = accept_response(parsed.key(), None, None);
        let (answer, consumed) = parse_response(&response, &key, 8192).unwrap().unwrap();
        assert_eq!((answer.protocol, consumed), (None, response.len()));
        assert_eq!(
            parse_response(&response, &new_key(), 8192),
            Err(HandshakeError::BadAccept)
        );
        let refused = HandshakeError::NotWebSocket.http_response();
        assert_eq!(
            parse_response(&refused, &key, 8192),
            Err(HandshakeError::Status(426))
        );
    }
}

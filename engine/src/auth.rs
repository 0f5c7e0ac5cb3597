//! Authentication at the upgrade: an [`Authenticator`] sees the whole upgrade request
//! (path, query, headers, cookies, offered subprotocols, peer address) and accepts it with
//! an [`Identity`] or refuses it with HTTP 401 or 403, before any 101 is sent (the
//! reference upgraded first and closed after, and dropped the frames a client sent while
//! its authenticator ran). It may be async: it runs on the connection's shard, bounded by
//! the server's auth timeout. On ConnectMe TCP, which has no upgrade, it sees only the peer
//! address, and a refusal closes the socket.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::proto::handshake::Headers;

/// Who a connection authenticated as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user id: a session keeps it, and only the same user may resume it.
    pub user: String,
    /// The application's data about the user, kept with the client.
    pub metadata: BTreeMap<String, String>,
}

impl Identity {
    /// An identity with no metadata.
    pub fn user(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            metadata: BTreeMap::new(),
        }
    }
}

/// Why an upgrade was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or credentials that do not check out: HTTP 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Valid credentials without the right to connect: HTTP 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
}

impl AuthError {
    /// The HTTP status the client is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
        }
    }
}

/// What an authenticator sees of a connection: its upgrade request (WebSocket) or only
/// its address (TCP).
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The peer's address (`None` on a Unix socket).
    pub peer_addr: Option<SocketAddr>,
    /// The request path (empty on TCP).
    pub path: String,
    /// The query string without `?`.
    pub query: Option<String>,
    /// The request headers.
    pub headers: Headers,
    /// The subprotocols the client offered, in order.
    pub protocols: Vec<String>,
    /// Whether [`AuthRequest::token`] may read the query string
    /// ([`ServerBuilder::tokens_in_query`](crate::ServerBuilder::tokens_in_query)).
    query_tokens: bool,
}

/// The subprotocol prefix that carries a token (`Sec-WebSocket-Protocol: token.<value>`),
/// the one header a browser's `WebSocket` constructor lets a page set.
pub const TOKEN_PROTOCOL_PREFIX: &str = "token.";
/// The cookie that carries a token.
pub const TOKEN_COOKIE: &str = "access_token";
/// The query parameter that carries a token, where enabled.
pub const TOKEN_QUERY_PARAM: &str = "token";

impl AuthRequest {
    pub(crate) fn new(
        peer_addr: Option<SocketAddr>,
        path: String,
        query: Option<String>,
        headers: Headers,
        protocols: Vec<String>,
        query_tokens: bool,
    ) -> Self {
        Self {
            peer_addr,
            path,
            query,
            headers,
            protocols,
            query_tokens,
        }
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// A cookie's value from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("cookie")
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
    }

    /// A query parameter's raw value (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .as_deref()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// The bearer token: from `Authorization: Bearer ..`, else the
    /// [`TOKEN_COOKIE`] cookie, else a `token.<value>` subprotocol, else (only where
    /// enabled: URLs end up in logs) the [`TOKEN_QUERY_PARAM`] query parameter.
    pub fn token(&self) -> Option<&str> {
        let bearer = self.header("authorization").and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        bearer
            .or_else(|| self.cookie(TOKEN_COOKIE))
            .or_else(|| {
                self.protocols
                    .iter()
                    .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
            })
            .or_else(|| {
                self.query_tokens
                    .then(|| self.query_param(TOKEN_QUERY_PARAM))
                    .flatten()
            })
            .filter(|token| !token.is_empty())
    }
}

/// The future an authenticator returns.
pub type AuthFuture = Pin<Box<dyn Future<Output = Result<Identity, AuthError>>>>;

/// Decides who may connect ([`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)).
/// Implemented for every `Fn(AuthRequest) -> impl Future<Output = Result<Identity,
/// AuthError>>`; the future runs on the connection's shard (it need not be `Send`).
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts the connection as an identity, or refuses it.
    fn authenticate(&self, request: AuthRequest) -> AuthFuture;
}

impl<F, Fut> Authenticator for F
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity, AuthError>> + 'static,
{
    fn authenticate(&self, request: AuthRequest) -> AuthFuture {
        Box::pin(self(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], protocols: &[&str], query: Option<&str>) -> AuthRequest {
        AuthRequest::new(
            None,
            "/".into(),
            query.map(Into::into),
            Headers::from_pairs(headers.iter().copied()),
            protocols.iter().map(|p| p.to_string()).collect(),
            false,
        )
    }

    #[test]
    fn the_token_comes_from_the_header_the_cookie_or_a_subprotocol() {
        assert_eq!(
            request(&[("Authorization", "Bearer abc")], &[], None).token(),
            Some("abc")
        );
        assert_eq!(
            request(&[("authorization", "bearer  abc ")], &[], None).token(),
            Some("abc")
        );
        assert_eq!(
            request(&[("Authorization", "Basic xyz")], &[], None).token(),
            None
        );
        assert_eq!(
            request(&[("Cookie", "a=1; access_token=\"t2\"; b=2")], &[], None).token(),
            Some("t2")
        );
        assert_eq!(
            request(&[], &["chat", "token.t3"], None).token(),
            Some("t3")
        );
        assert_eq!(request(&[], &["token."], None).token(), None);
    }

    #[test]
    fn the_query_string_is_read_only_where_enabled() {
        let mut with_query = request(&[], &[], Some("room=1&token=t4"));
        assert_eq!(with_query.token(), None, "URLs end up in logs");
        assert_eq!(with_query.query_param("room"), Some("1"));
        with_query.query_tokens = true;
        assert_eq!(with_query.token(), Some("t4"));
    }

    #[test]
    fn refusals_have_their_status() {
        assert_eq!(AuthError::Unauthorized("no token".into()).status(), 401);
        assert_eq!(AuthError::Forbidden("banned".into()).status(), 403);
    }
}

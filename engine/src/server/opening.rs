//! The opening of an accepted connection, before it is admitted: the WebSocket upgrade
//! (with the origin check, the authenticator and the session offer), or on ConnectMe TCP
//! with sessions the client's first frame; and the answer to a connection a guard refused.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;

use super::builder::ServerConfig;
use super::config::Transport;
use super::info::ConnInfo;
use super::ServerShared;
use crate::auth::{AuthRequest, Identity};
use crate::guard::{http_refusal, Refusal};
use crate::link::reader::{read_head, HeadError, MIN_READ};
use crate::proto::{handshake, tcp};
use crate::rt::io::{read_more, shutdown, write_all};
use crate::rt::net::Accepted;
use crate::session::wire::{Control, Resume, EXTENSION};

/// What the opening of a connection produced.
pub(super) struct Opened {
    pub(super) info: ConnInfo,
    /// The session extension's offer: `None` without it; `Some(Err(()))` for a malformed
    /// resume.
    pub(super) offer: Option<Result<Option<Resume>, ()>>,
    /// Who the authenticator accepted the connection as (with one configured).
    pub(super) identity: Option<Identity>,
    /// The connection speaks the JSON protocol ([`JsonEndpoint`](super::json_endpoint::JsonEndpoint)).
    pub(super) json: bool,
}

/// The opening: the WebSocket handshake (answering a bad one with an HTTP error), or for
/// TCP with sessions on, the client's first frame (a session hello, or its first message,
/// which stays in `buf`). `None` if the connection must be dropped.
pub(super) async fn open<S, T>(
    server: &ServerShared<S>,
    stream: &mut T,
    buf: &mut BytesMut,
    peer_addr: Option<SocketAddr>,
) -> Option<Opened>
where
    T: crate::rt::net::ReadHalf + crate::rt::net::WriteHalf,
{
    let config = &server.config;
    Some(match config.transport {
        Transport::WebSocket => {
            let max = config.limits.max_handshake;
            let request = read_head(stream, buf, |b| handshake::parse_request(b, max));
            let request = match crate::rt::timeout(config.handshake_timeout, request).await {
                Ok(Ok(request)) => request,
                Ok(Err(HeadError::Invalid(error))) => {
                    tracing::debug!(?peer_addr, %error, "handshake refused");
                    let _ = write_all(stream, error.http_response()).await;
                    shutdown(stream).await;
                    return None;
                }
                Ok(Err(HeadError::Io(_))) | Err(_) => return None,
            };
            if let Err(refusal) = server.admission.check_origin(request.headers.get("origin")) {
                server.refused(&refusal, peer_addr);
                let _ = write_all(stream, refusal.http_response()).await;
                shutdown(stream).await;
                return None;
            }
            let auth_request = || {
                AuthRequest::new(
                    peer_addr,
                    request.path.clone(),
                    request.query.clone(),
                    request.headers.clone(),
                    request.protocols.clone(),
                    config.query_tokens,
                )
            };
            let identity = match authenticate(config, auth_request).await {
                Ok(identity) => identity,
                Err((status, reason)) => {
                    tracing::debug!(?peer_addr, status, %reason, "upgrade refused by the authenticator");
                    let _ = write_all(stream, http_refusal(status, &reason, None)).await;
                    shutdown(stream).await;
                    return None;
                }
            };
            let json = config.json.selects(&request.path, &request.protocols);
            // The session extension belongs to the binary protocol.
            let offer = config.sessions.filter(|_| !json).and_then(|_| {
                request
                    .headers
                    .get_all("sec-websocket-extensions")
                    .find_map(Resume::from_extension_offer)
            });
            let protocol = config.select_protocol(&request.protocols);
            let extension = offer.is_some().then_some(EXTENSION);
            let response =
                handshake::accept_response(request.key(), protocol.as_deref(), extension);
            write_all(stream, response).await.ok()?;
            Opened {
                info: ConnInfo::new(
                    peer_addr,
                    &request.path,
                    request.query.as_deref(),
                    request.headers,
                    protocol.as_deref(),
                ),
                offer,
                identity,
                json,
            }
        }
        Transport::Tcp => {
            // ConnectMe TCP has no upgrade request: the authenticator sees the address.
            let auth_request = || {
                AuthRequest::new(
                    peer_addr,
                    String::new(),
                    None,
                    Default::default(),
                    Vec::new(),
                    false,
                )
            };
            let identity = match authenticate(config, auth_request).await {
                Ok(identity) => identity,
                Err((status, reason)) => {
                    tracing::debug!(?peer_addr, status, %reason, "connection refused by the authenticator");
                    return None;
                }
            };
            let offer = match config.sessions {
                None => None,
                Some(_) => {
                    let hello = read_head(stream, buf, tcp_hello);
                    match crate::rt::timeout(config.handshake_timeout, hello).await {
                        Ok(Ok(offer)) => offer,
                        Ok(Err(_)) | Err(_) => return None,
                    }
                }
            };
            Opened {
                info: ConnInfo::without_request(peer_addr),
                offer,
                identity,
                json: false,
            }
        }
    })
}

/// Runs the authenticator, if there is one, on the request `request` builds, bounded by
/// the auth timeout: the identity (`None` without an authenticator), or the HTTP status
/// and reason to refuse with (503 when it did not answer in time).
async fn authenticate<S>(
    config: &ServerConfig<S>,
    request: impl FnOnce() -> AuthRequest,
) -> Result<Option<Identity>, (u16, String)> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    match crate::rt::timeout(config.auth_timeout, auth.authenticate(request())).await {
        Ok(Ok(identity)) => Ok(Some(identity)),
        Ok(Err(error)) => Err((error.status(), error.to_string())),
        Err(_) => Err((503, "authentication timed out".into())),
    }
}

/// Recognises a session hello as the first ConnectMe TCP frame: `Some(offer)` and its
/// length, or `None` and nothing consumed when the first frame is a plain message.
#[allow(clippy::type_complexity)]
fn tcp_hello(buf: &[u8]) -> Result<Option<(Option<Result<Option<Resume>, ()>>, usize)>, ()> {
    /// A hello is a tag and at most 40 bytes.
    const MAX_HELLO: u64 = (tcp::PREFIX_LEN + 64) as u64;
    let Some(prefix) = buf.first_chunk::<{ tcp::PREFIX_LEN }>() else {
        return Ok(None);
    };
    let total = u64::from_be_bytes(*prefix);
    if total & tcp::SESSION_BIT == 0 {
        return Ok(Some((None, 0)));
    }
    let total = total & !tcp::SESSION_BIT;
    if !(tcp::PREFIX_LEN as u64..=MAX_HELLO).contains(&total) {
        return Err(());
    }
    let Some(frame) = buf.get(..total as usize) else {
        return Ok(None);
    };
    match Control::decode(&frame[tcp::PREFIX_LEN..]) {
        Some(Control::Hello(resume)) => Ok(Some((Some(Ok(resume)), frame.len()))),
        _ => Err(()),
    }
}

/// How long a refused WebSocket connection may take to take its answer and close.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes read and discarded from a refused WebSocket connection.
const LINGER_BYTES: usize = 16 << 10;

/// Answers a connection a guard refused, before its upgrade request was read. A WebSocket
/// client gets the HTTP error, then a write shutdown; what it sends meanwhile (its
/// request) is read and discarded until it closes, within [`LINGER`] and
/// [`LINGER_BYTES`], because closing a socket with unread input resets the connection,
/// which can destroy the answer before the client reads it. Not reading the request first
/// means the answer is immediate and a refused client holds no socket longer than that.
/// ConnectMe TCP has no way to say why: the connection is just closed.
pub(super) async fn refuse<T: Accepted>(transport: Transport, stream: &mut T, refusal: &Refusal) {
    if transport != Transport::WebSocket {
        return;
    }
    let answer = async {
        if write_all(stream, refusal.http_response()).await.is_err() {
            return;
        }
        shutdown(stream).await;
        let mut buf = BytesMut::with_capacity(MIN_READ);
        let mut drained = 0;
        while drained < LINGER_BYTES {
            buf.clear();
            let (result, returned) = read_more(stream, buf).await;
            buf = returned;
            match result {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = crate::rt::timeout(LINGER, answer).await;
}

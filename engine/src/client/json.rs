//! The JSON protocol's client ([`JsonClient`]): the engine's [`Client`] speaking the
//! websocket_core envelope (websocket-core-features.md §15), so a Rust program, a test or a
//! bot talks to a JSON-protocol server as the Dart `WsClient` and the browser's
//! `wscore.js` do.
//!
//! Built on [`Client`], it inherits the reconnect policy (backoff with jitter), keepalive
//! and limits. On top: `on`/`off` listeners by event, `send`, `request` matched by `c`
//! with a timeout (a `sys.error` carrying the `c` fails it with the server's code), the
//! automatic `sys.pong`, a bounded queue for sends made while disconnected (sent, in
//! order, on the next connection), and a stream of connection status changes.
//!
//! Sessions (sessions-resume.md), when the server offers them (its `sys.session.created`
//! carries a `resumeSecret`): the client keeps the session's id, secret and the highest
//! `s` it processed; on every reconnect its first message is `sys.reconnect.request`, and
//! nothing else goes out until the answer. Replayed messages it already processed are
//! dropped, so listeners see every sequenced message once and in order. A failed resume is
//! reported ([`JsonStatus::SessionLost`]) and the fresh session is adopted. It
//! acknowledges every [`ACK_EVERY`]-th message (`sys.ack`), so the server's replay buffer
//! stays short. Requests in flight when the connection drops fail with
//! [`RequestError::Disconnected`] (the request may or may not have been handled).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Client, ClientBuilder, ConnectError};
use crate::json::{now_ms, EncodeError, Head};
use crate::proto::outgoing::Utf8Bytes;
use crate::Listeners;

/// Sends kept while disconnected, at most (the oldest is dropped past it).
const OFFLINE_QUEUE: usize = 256;

/// The client acknowledges its session's messages after this many (`sys.ack`).
const ACK_EVERY: u64 = 32;

/// A message from the server, as a listener sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JsonEvent {
    /// `e`.
    #[serde(rename = "e")]
    pub event: String,
    /// `p` (`{}` when absent).
    #[serde(rename = "p", default)]
    pub payload: Value,
    /// `c`, on replies and errors.
    #[serde(rename = "c", default)]
    pub correlation: Option<String>,
    /// `v`.
    #[serde(rename = "v", default)]
    pub version: Option<String>,
    /// `s`: the session's sequence number, on sequenced messages of a session.
    #[serde(rename = "s", default)]
    pub seq: Option<u64>,
}

/// Why a [`JsonClient::request`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The server answered with `sys.error`.
    #[error("the server refused the request: {code} {message}")]
    Refused {
        /// Its `code`.
        code: u16,
        /// Its `message`.
        message: String,
        /// The whole `sys.error` payload (`details`, `retryAfterMs`, ...).
        payload: Value,
    },
    /// No answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// The connection ended before the answer (or the client was closed).
    #[error("the connection ended before the answer")]
    Disconnected,
    /// The payload is not a JSON object, or could not be serialised.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A change of the connection's status ([`JsonClient::statuses`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStatus {
    /// Connected (again). Queued sends go out once the session is settled: at once
    /// without sessions, after [`JsonStatus::Resumed`] or [`JsonStatus::SessionLost`] on a
    /// reconnect with them.
    Connected,
    /// The session was resumed: every message it was sent while away follows, none lost.
    Resumed,
    /// The session could not be resumed (the server's `sys.error` code: 1006 expired,
    /// 1013 its replay buffer no longer held what was missed, ...): a new session started,
    /// and messages sent to the old one while away may be lost.
    SessionLost(u16),
    /// The connection ended; the client reconnects per its policy unless closed.
    Disconnected,
}

/// What the client keeps of its session.
#[derive(Default)]
struct SessionState {
    /// The session's id and resume secret (once the server offered a session).
    session: Option<(String, String)>,
    /// The highest `s` processed.
    last_seq: u64,
    /// The last `s` acknowledged.
    acked: u64,
    /// The session announced on the current connection, adopted if the resume fails.
    fresh: Option<(String, String)>,
    /// The `c` of the resume request waiting for its answer.
    resuming: Option<String>,
    /// The connection may carry the application's sends (its session is settled).
    ready: bool,
}

/// `sys.session.created`'s payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    session_id: String,
    resume_secret: Option<String>,
}

/// Identifies a listener for [`JsonClient::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonListenerId(u64);

type Listener = Arc<dyn Fn(&JsonEvent) + Send + Sync>;
type Answer = oneshot::Sender<Result<Value, RequestError>>;

/// A client of the JSON protocol. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct JsonClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonClient")
            .field("connected", &self.shared.client.is_connected())
            .finish_non_exhaustive()
    }
}

struct Shared {
    client: Client,
    version: String,
    next: AtomicU64,
    listeners: Mutex<FxHashMap<String, Vec<(JsonListenerId, Listener)>>>,
    pending: Mutex<FxHashMap<String, Answer>>,
    offline: Mutex<VecDeque<Bytes>>,
    statuses: Mutex<Vec<Sender<JsonStatus>>>,
    session: Mutex<SessionState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JsonClient {
    /// Builds the client from `builder` (its URL's path is the server's JSON path, e.g.
    /// `ws://host:port/ws`; reconnect policy, headers and limits as for any client; its
    /// `on_connect`/`on_disconnect` are the JSON client's own, see [`JsonClient::statuses`]),
    /// speaking protocol version `"1.0"`. Connect it with [`JsonClient::connect_blocking`]
    /// or [`JsonClient::start`].
    pub fn new(builder: ClientBuilder) -> Result<Self, ConnectError> {
        Self::with_version(builder, "1.0")
    }

    /// [`JsonClient::new`] with another protocol version in `v`.
    pub fn with_version(builder: ClientBuilder, version: &str) -> Result<Self, ConnectError> {
        // The connection callbacks reach the client's state once it exists.
        let slot: Arc<OnceLock<Weak<Shared>>> = Arc::default();
        let (up, down) = (slot.clone(), slot.clone());
        let client = builder
            .on_connect(move |_| {
                if let Some(shared) = up.get().and_then(Weak::upgrade) {
                    shared.connected();
                }
            })
            .on_disconnect(move |_| {
                if let Some(shared) = down.get().and_then(Weak::upgrade) {
                    shared.disconnected();
                }
            })
            .build()?;
        let shared = Arc::new(Shared {
            client,
            version: version.to_owned(),
            next: AtomicU64::new(1),
            listeners: Mutex::default(),
            pending: Mutex::default(),
            offline: Mutex::default(),
            statuses: Mutex::default(),
            session: Mutex::default(),
        });
        let _ = slot.set(Arc::downgrade(&shared));
        let weak = Arc::downgrade(&shared);
        shared.client.listen(move |text: String, _: &Client| {
            if let Some(shared) = weak.upgrade() {
                shared.received(&text);
            }
        });
        Ok(Self { shared })
    }

    /// Connects, blocking until the first connection is up (or failed).
    pub fn connect_blocking(&self) -> Result<(), ConnectError> {
        self.shared.client.connect_blocking()
    }

    /// Starts connecting in the background.
    pub fn start(&self) {
        self.shared.client.start();
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.client.is_connected()
    }

    /// Calls `f` for every message of event `event` (a reply or error matched to a
    /// request goes to the request, not here).
    pub fn on(
        &self,
        event: &str,
        f: impl Fn(&JsonEvent) + Send + Sync + 'static,
    ) -> JsonListenerId {
        let id = JsonListenerId(self.shared.next.fetch_add(1, Ordering::Relaxed));
        lock(&self.shared.listeners)
            .entry(event.to_owned())
            .or_default()
            .push((id, Arc::new(f)));
        id
    }

    /// Removes a listener; whether it was there.
    pub fn off(&self, id: JsonListenerId) -> bool {
        let mut listeners = lock(&self.shared.listeners);
        for list in listeners.values_mut() {
            if let Some(at) = list.iter().position(|(l, _)| *l == id) {
                list.remove(at);
                return true;
            }
        }
        false
    }

    /// Sends event `event` with `payload` (a JSON object), without `c`. While
    /// disconnected it waits (at most 256, the oldest dropped past that) and goes out on
    /// the next connection.
    pub fn send<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), EncodeError> {
        let frame = self.shared.encode(event, payload, None)?;
        self.shared.send(frame);
        Ok(())
    }

    /// Sends `event` with a fresh `c` and resolves with the reply's payload (the
    /// `<event>.response` or anything else carrying the `c`), a `sys.error`'s code, or
    /// [`RequestError::Timeout`] after `timeout`.
    pub fn request<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        timeout: Duration,
    ) -> JsonReply {
        let c = self.shared.next.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        let frame = match self.shared.encode(event, payload, Some(&c)) {
            Ok(frame) => frame,
            Err(error) => {
                let _ = tx.send(Err(error.into()));
                return JsonReply { rx };
            }
        };
        lock(&self.shared.pending).insert(c.clone(), tx);
        self.shared.send(frame);
        let weak = Arc::downgrade(&self.shared);
        self.shared.client.post(move |_| {
            drop(crate::rt::spawn(async move {
                crate::rt::sleep(timeout).await;
                if let Some(shared) = weak.upgrade() {
                    shared.answer(&c, Err(RequestError::Timeout));
                }
            }));
        });
        JsonReply { rx }
    }

    /// A stream of status changes from now on (each call gets its own; a receiver that
    /// falls 64 changes behind misses the newer ones).
    pub fn statuses(&self) -> Receiver<JsonStatus> {
        let (tx, rx) = crossbeam_channel::bounded(64);
        lock(&self.shared.statuses).push(tx);
        rx
    }

    /// Closes the client: pending requests fail with [`RequestError::Disconnected`].
    pub fn close(&self) {
        self.shared.client.close();
        self.shared.fail_pending();
    }
}

impl Shared {
    fn encode<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        c: Option<&str>,
    ) -> Result<Bytes, EncodeError> {
        let mut out = Vec::with_capacity(128);
        Head::new(event, &self.version, now_ms())
            .correlation(c)
            .encode(payload, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// Sends on the client's thread: on the connection once its session is settled, or
    /// into the offline queue.
    fn send(self: &Arc<Self>, frame: Bytes) {
        self.send_on(frame, false);
    }

    /// Sends on the client's thread; `first` goes out before the session is settled (the
    /// resume request, the pong, the ack).
    fn send_on(self: &Arc<Self>, frame: Bytes, first: bool) {
        let shared = Arc::downgrade(self);
        self.client.post(move |local| {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let ready = first || lock(&shared.session).ready;
            match local.link.borrow().as_ref() {
                Some(link) if ready => {
                    link.send_message(Utf8Bytes(frame));
                }
                // A connection's own traffic (a pong, an ack, a resume request) dies with it.
                _ if first => {}
                _ => {
                    let mut offline = lock(&shared.offline);
                    if offline.len() == OFFLINE_QUEUE {
                        offline.pop_front();
                        tracing::warn!("JSON client offline queue full: the oldest send dropped");
                    }
                    offline.push_back(frame);
                }
            }
        });
    }

    fn received(self: &Arc<Self>, text: &str) {
        let message: JsonEvent = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "not a JSON envelope: ignored");
                return;
            }
        };
        if message.event == "sys.ping" {
            let t = message.payload.get("t").cloned().unwrap_or(Value::Null);
            if let Ok(frame) = self.encode("sys.pong", &serde_json::json!({ "t": t }), None) {
                self.send_on(frame, true);
            }
            return;
        }
        match message.event.as_str() {
            "sys.session.created" => self.session_created(&message),
            "sys.session.restored" => self.session_restored(&message),
            "sys.error" if self.is_resume_answer(&message) => {
                self.resume_failed(&message);
                return;
            }
            _ => {
                if let Some(seq) = message.seq {
                    if !self.sequenced(seq) {
                        return;
                    }
                }
            }
        }
        if let Some(c) = message.correlation.as_deref() {
            if lock(&self.pending).contains_key(c) {
                let result = if message.event == "sys.error" {
                    Err(refused(&message.payload))
                } else {
                    Ok(message.payload.clone())
                };
                self.answer(c, result);
                return;
            }
        }
        let listeners: Vec<Listener> = lock(&self.listeners)
            .get(&message.event)
            .map(|list| list.iter().map(|(_, f)| f.clone()).collect())
            .unwrap_or_default();
        for listener in listeners {
            listener(&message);
        }
    }

    fn answer(&self, c: &str, result: Result<Value, RequestError>) {
        if let Some(tx) = lock(&self.pending).remove(c) {
            let _ = tx.send(result);
        }
    }

    fn fail_pending(&self) {
        let pending = std::mem::take(&mut *lock(&self.pending));
        for (_, tx) in pending {
            let _ = tx.send(Err(RequestError::Disconnected));
        }
    }

    /// Sends what waited, through the one send path (so it waits again, in order, if the
    /// connection drops before it goes out).
    fn flush_offline(self: &Arc<Self>) {
        let queued = std::mem::take(&mut *lock(&self.offline));
        for frame in queued {
            self.send(frame);
        }
    }

    fn connected(&self) {
        self.status(JsonStatus::Connected);
    }

    fn disconnected(&self) {
        {
            let mut session = lock(&self.session);
            session.ready = false;
            session.resuming = None;
            session.fresh = None;
        }
        self.fail_pending();
        self.status(JsonStatus::Disconnected);
    }

    /// `sys.session.created`: a connection's first message. With a session kept from an
    /// earlier connection, the client asks to resume it first; otherwise the announced
    /// session is the client's and sends may go.
    fn session_created(self: &Arc<Self>, message: &JsonEvent) {
        let Ok(created) = serde_json::from_value::<Created>(message.payload.clone()) else {
            return;
        };
        let fresh = created
            .resume_secret
            .map(|secret| (created.session_id, secret));
        let mut session = lock(&self.session);
        let Some((id, secret)) = session.session.clone().filter(|_| fresh.is_some()) else {
            *session = SessionState {
                session: fresh,
                ready: true,
                ..SessionState::default()
            };
            drop(session);
            self.flush_offline();
            return;
        };
        let c = format!("resume-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let request = serde_json::json!({
            "sessionId": id,
            "resumeSecret": secret,
            "lastSeq": session.last_seq,
        });
        session.fresh = fresh;
        session.resuming = Some(c.clone());
        drop(session);
        if let Ok(frame) = self.encode("sys.reconnect.request", &request, Some(&c)) {
            self.send_on(frame, true);
        }
    }

    /// `sys.session.restored`: the session is back; its missed messages follow.
    fn session_restored(self: &Arc<Self>, message: &JsonEvent) {
        {
            let mut session = lock(&self.session);
            if session.resuming.is_none() || session.resuming != message.correlation {
                return;
            }
            session.resuming = None;
            session.fresh = None;
            session.ready = true;
        }
        self.status(JsonStatus::Resumed);
        self.flush_offline();
    }

    fn is_resume_answer(&self, message: &JsonEvent) -> bool {
        let session = lock(&self.session);
        session.resuming.is_some() && session.resuming == message.correlation
    }

    /// The resume was refused: the connection's fresh session becomes the client's.
    fn resume_failed(self: &Arc<Self>, message: &JsonEvent) {
        let RequestError::Refused { code, .. } = refused(&message.payload) else {
            unreachable!("refused() builds a refusal")
        };
        tracing::warn!(
            code,
            "session not resumed: a new one started, messages may be lost"
        );
        {
            let mut session = lock(&self.session);
            let fresh = session.fresh.take();
            *session = SessionState {
                session: fresh,
                ready: true,
                ..SessionState::default()
            };
        }
        self.status(JsonStatus::SessionLost(code));
        self.flush_offline();
    }

    /// A sequenced message numbered `seq`: `false` if it was processed already (a
    /// replayed duplicate). Acknowledges every [`ACK_EVERY`] messages.
    fn sequenced(self: &Arc<Self>, seq: u64) -> bool {
        let ack = {
            let mut session = lock(&self.session);
            if seq <= session.last_seq {
                return false;
            }
            session.last_seq = seq;
            (seq >= session.acked + ACK_EVERY).then(|| {
                session.acked = seq;
                seq
            })
        };
        if let Some(s) = ack {
            if let Ok(frame) = self.encode("sys.ack", &serde_json::json!({ "s": s }), None) {
                self.send_on(frame, true);
            }
        }
        true
    }

    fn status(&self, status: JsonStatus) {
        lock(&self.statuses).retain(|tx| {
            !matches!(
                tx.try_send(status),
                Err(crossbeam_channel::TrySendError::Disconnected(_))
            )
        });
    }
}

/// `sys.error`'s payload as a [`RequestError::Refused`].
fn refused(payload: &Value) -> RequestError {
    RequestError::Refused {
        code: payload
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(1000),
        message: payload
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        payload: payload.clone(),
    }
}

/// A request's answer: await it, or [`JsonReply::wait`] on a plain thread.
#[must_use = "a request's answer is only seen when awaited or waited for"]
#[derive(Debug)]
pub struct JsonReply {
    rx: oneshot::Receiver<Result<Value, RequestError>>,
}

impl JsonReply {
    /// Blocks until the answer, the timeout or a disconnect. Not on the client's thread.
    pub fn wait(self) -> Result<Value, RequestError> {
        self.rx.recv().unwrap_or(Err(RequestError::Disconnected))
    }
}

impl Future for JsonReply {
    type Output = Result<Value, RequestError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(RequestError::Disconnected)))
    }
}

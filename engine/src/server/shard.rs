//! A shard: one thread pinned to one core, running one runtime that accepts on its
//! own `SO_REUSEPORT` listener and owns its connections, their buffers and their state.
//! Other threads reach it only through its mailbox.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use packme::Registry;
use rustc_hash::FxHashMap;

use super::builder::ServerConfig;
use super::config::Transport;
use super::info::ConnInfo;
use super::peer::Peer;
use super::{PeerFilter, ServerShared};
use crate::auth::{AuthRequest, Authenticator, Identity};
use crate::guard::http_refusal;
use crate::guard::{Permit, Refusal, TokenBucket};
use crate::link::reader::{read_head, read_loop, HeadError, MIN_READ};
use crate::link::timers::Timers;
use crate::link::{writer, Link};
use crate::listeners::{dispatch, HandlerTable, ListenerCell};
use crate::mailbox::Inbox;
use crate::proto::outgoing::{shard_local, IntoFrame};
use crate::proto::received::Received;
use crate::proto::{close_code, handshake, tcp, Config, Connection, End, FrameParts, Wire};
use crate::rt::io::{read_more, shutdown, write_all};
use crate::rt::net::{Accepted, Stream, TcpListener, UnixListener};
use crate::rt::{first, First};
use crate::session::replay::ReplayError;
use crate::session::wire::{Control, Resume, EXTENSION};
use crate::session::{resume_error, ServerSession, ACK_EVERY};
use crate::signal::Signal;

/// Work posted to a shard from another thread.
pub(crate) type Job<S> = Box<dyn FnOnce(&Rc<Shard<S>>) + Send>;

/// One client on its shard: its peer, its live connection, and its session if it has one.
pub(crate) struct Conn<S> {
    pub peer: Peer<S>,
    /// The live connection; `None` while a session is suspended.
    pub link: Option<Rc<Link>>,
    /// The client's session, if it negotiated the session extension: every data message
    /// sent to it is numbered and kept for replay.
    pub session: Option<Box<ServerSession>>,
    /// The client's own listeners while it has no connection (a suspended session): the
    /// next connection takes them back.
    pub parked_listeners: Option<Rc<dyn Any>>,
}

impl<S: Send + Sync + 'static> Conn<S> {
    /// The client's own listener table (created on first use): its connection's, or the
    /// one kept while its session is suspended.
    pub(crate) fn own_listeners(&mut self) -> Rc<ListenerCell<Peer<S>>> {
        if let Some(link) = &self.link {
            return link.listeners::<ListenerCell<Peer<S>>>();
        }
        let parked = self
            .parked_listeners
            .get_or_insert_with(|| Rc::new(ListenerCell::<Peer<S>>::default()));
        parked
            .clone()
            .downcast::<ListenerCell<Peer<S>>>()
            .expect("a peer's own listener table")
    }
}

impl<S> Conn<S> {
    /// Whether `link` is this client's current connection.
    fn is_current(&self, link: &Rc<Link>) -> bool {
        self.link.as_ref().is_some_and(|l| Rc::ptr_eq(l, link))
    }

    /// Sends `message`: encoded straight into the connection's queue, or, with a session,
    /// encoded once, kept for replay and queued (or only kept while suspended).
    pub(crate) fn send_message<F: IntoFrame>(&mut self, wire: Wire, message: F) {
        match &mut self.session {
            None => {
                if let Some(link) = &self.link {
                    link.send_message(message);
                }
            }
            Some(_) => self.send_parts(message.into_parts(wire)),
        }
    }

    /// Sends a frame built elsewhere.
    pub(crate) fn send_parts(&mut self, frame: FrameParts) {
        if let Some(session) = &mut self.session {
            session.replay.push(frame.clone());
        }
        if let Some(link) = &self.link {
            link.send_parts(frame);
        }
    }

    /// Sends a frame other clients share (a broadcast).
    pub(crate) fn send_shared(&mut self, frame: &Bytes) {
        if let Some(session) = &mut self.session {
            session.replay.push(FrameParts::whole(frame.clone()));
        }
        if let Some(link) = &self.link {
            link.send_shared(frame);
        }
    }
}

/// What to do with a data message that arrived on a session's connection.
enum Arrival {
    /// Dispatch it.
    Dispatch,
    /// Drop it: the connection was replaced by a resume.
    Replaced,
    /// Drop it: over the message rate; a message would pass after this long.
    RateLimited(Duration),
}

/// A session taken from its entry to be resumed on another connection.
pub(crate) struct Taken<S> {
    peer: Peer<S>,
    session: Box<ServerSession>,
    /// The session's own listeners, as they were on its last connection.
    listeners: Option<Rc<dyn Any>>,
}

/// What the opening of a connection produced.
struct Opened {
    info: ConnInfo,
    /// The session extension's offer: `None` without it; `Some(Err(()))` for a malformed
    /// resume.
    offer: Option<Result<Option<Resume>, ()>>,
    /// Who the authenticator accepted the connection as (with one configured).
    identity: Option<Identity>,
}

pub(crate) struct Shard<S> {
    pub index: usize,
    pub server: Arc<ServerShared<S>>,
    pub conns: RefCell<FxHashMap<u64, Conn<S>>>,
    pub listeners: ListenerCell<Peer<S>>,
    pub registry: RefCell<Registry>,
    timers: Rc<Timers>,
    /// What every connection of the shard is built from (one allocation for all of them).
    conn_config: Arc<Config>,
    stop: Signal,
    next_seq: Cell<u64>,
}

struct Current {
    server: usize,
    index: usize,
    shard: Rc<dyn Any>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// How a `Peer` reaches its client, from any thread. (Methods of the server's shared
/// state, so that the peer needs nothing of the shard's insides.)
impl<S: Send + Sync + 'static> ServerShared<S> {
    /// Runs `f` with client `id`'s entry if this thread is shard `index`; otherwise hands
    /// `f` back for posting. A missing client (gone, or moved to another shard) drops `f`
    /// here.
    pub(super) fn on_local_conn<F: FnOnce(&mut Conn<S>)>(
        self: &Arc<Self>,
        index: usize,
        id: u64,
        f: F,
    ) -> Option<F> {
        let shard = CURRENT.with(|current| {
            let current = current.borrow();
            current
                .as_ref()
                .filter(|c| c.server == Arc::as_ptr(self) as *const () as usize && c.index == index)
                .and_then(|c| c.shard.clone().downcast::<Shard<S>>().ok())
        });
        match shard {
            // Not this shard's thread: the caller posts `f` to the shard.
            None => Some(f),
            Some(shard) => {
                if let Some(conn) = shard.conns.borrow_mut().get_mut(&id) {
                    f(conn);
                }
                None
            }
        }
    }

    /// Posts `f` to shard `index`, to run there with client `id`'s entry (if it is still
    /// there).
    pub(super) fn post_to_conn(
        &self,
        index: usize,
        id: u64,
        f: impl FnOnce(&mut Conn<S>) + Send + 'static,
    ) {
        self.post(
            index,
            Box::new(move |shard| {
                if let Some(conn) = shard.conns.borrow_mut().get_mut(&id) {
                    f(conn);
                }
            }),
        );
    }
}

impl<S> ServerShared<S> {
    /// A connection a guard refused: logged and counted.
    fn refused(&self, refusal: &Refusal, peer_addr: Option<SocketAddr>) {
        tracing::debug!(?peer_addr, %refusal, "connection refused");
        self.refusals.connection(refusal.by);
    }
}

/// Whether the current thread is one of `server`'s shards.
pub(crate) fn on_shard_of<S>(server: &ServerShared<S>) -> bool {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .is_some_and(|c| c.server == server as *const ServerShared<S> as *const () as usize)
    })
}

/// A shard's listening socket.
pub(crate) enum ShardListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// What a shard thread starts from.
pub(crate) struct ShardStart<S> {
    pub index: usize,
    pub server: Arc<ServerShared<S>>,
    pub listener: ShardListener,
    pub inbox: Inbox<Job<S>>,
    pub listeners: HandlerTable<Peer<S>>,
    pub registry: Registry,
}

impl<S: Send + Sync + 'static> Shard<S> {
    /// The shard thread's body: runs until the server closes.
    pub(crate) async fn run(start: ShardStart<S>) -> io::Result<()> {
        let shard = Rc::new(Shard {
            index: start.index,
            server: start.server.clone(),
            conns: RefCell::new(FxHashMap::default()),
            listeners: ListenerCell::with_table(start.listeners),
            registry: RefCell::new(start.registry),
            timers: Rc::default(),
            conn_config: Arc::new(Config {
                wire: start.server.wire(),
                limits: start.server.config.limits.frames(),
                max_queued_bytes: start.server.config.limits.max_queued_bytes,
                max_pending_queries: start.server.config.limits.max_pending_queries,
                timeouts: start.server.config.timeouts,
            }),
            stop: Signal::default(),
            next_seq: Cell::new(0),
        });
        let owner = Rc::downgrade(&shard);
        shard.timers.start(Box::new(move |id| {
            let shard = owner.upgrade()?;
            let link = shard.conns.borrow().get(&id).and_then(|c| c.link.clone());
            link
        }));
        CURRENT.with(|current| {
            *current.borrow_mut() = Some(Current {
                server: Arc::as_ptr(&start.server) as *const () as usize,
                index: start.index,
                shard: shard.clone(),
            })
        });
        drop(crate::rt::spawn(mailbox_loop(shard.clone(), start.inbox)));
        drop(crate::rt::spawn(idle_sweep(Rc::downgrade(&shard))));
        let result = match start.listener {
            ShardListener::Tcp(std) => {
                let listener = TcpListener::from_std(std)?;
                // ConnectMe TCP has no ping: TCP keepalive finds a vanished peer there.
                // WebSocket connections have the connection's own pings instead, and skip
                // the three setsockopt calls on every accept.
                let config = &shard.server.config;
                let keepalive = match config.transport {
                    Transport::Tcp => config.timeouts.keepalive,
                    Transport::WebSocket => None,
                };
                accept_loop(&shard, || async {
                    let (stream, addr) = listener.accept().await?;
                    let _ = stream.set_nodelay(true);
                    crate::rt::net::set_tcp_keepalive(&stream, keepalive);
                    Ok((stream, Some(addr)))
                })
                .await
            }
            ShardListener::Unix(std) => {
                let listener = UnixListener::from_std(std)?;
                accept_loop(&shard, || async { Ok((listener.accept().await?.0, None)) }).await
            }
        };
        shard.drain().await;
        CURRENT.with(|current| current.borrow_mut().take());
        result
    }

    /// Stops accepting; the shard then closes its connections and ends.
    pub(crate) fn shutdown(&self) {
        self.stop.fire();
    }

    /// Sends one pre-encoded frame to every connection that passes `filter`.
    pub(crate) fn broadcast(&self, frame: Bytes, filter: Option<&PeerFilter<S>>) {
        let frame = shard_local(frame);
        for conn in self.conns.borrow_mut().values_mut() {
            if filter.is_none_or(|keep| keep(&conn.peer)) {
                conn.send_shared(&frame);
            }
        }
    }

    /// Sends one pre-encoded frame to the clients `keys` (a room broadcast's members on
    /// this shard).
    pub(crate) fn send_to(&self, keys: &[u64], frame: Bytes) {
        let frame = shard_local(frame);
        let mut conns = self.conns.borrow_mut();
        for key in keys {
            if let Some(conn) = conns.get_mut(key) {
                conn.send_shared(&frame);
            }
        }
    }

    /// Closes every connection with 1001 and waits (bounded) until they are gone.
    async fn drain(&self) {
        for link in self.links() {
            link.close(close_code::GOING_AWAY, "server shutting down");
        }
        let deadline =
            Instant::now() + self.server.config.timeouts.close + Duration::from_millis(500);
        while !self.links().is_empty() && Instant::now() < deadline {
            crate::rt::sleep(Duration::from_millis(5)).await;
        }
        for link in self.links() {
            link.abort(End::CloseTimeout);
        }
        crate::rt::sleep(Duration::from_millis(1)).await;
    }

    /// The live connections.
    fn links(&self) -> Vec<Rc<Link>> {
        self.conns
            .borrow()
            .values()
            .filter_map(|c| c.link.clone())
            .collect()
    }

    fn next_id(&self) -> u64 {
        let seq = self.next_seq.get() + 1;
        self.next_seq.set(seq);
        ((self.index as u64) << 48) | seq
    }
}

/// The shard that owns client `key` (see [`Shard::next_id`]): a client never changes
/// shards.
pub(crate) fn shard_of(key: u64) -> usize {
    (key >> 48) as usize
}

impl<S: Send + Sync + 'static> Shard<S> {}

async fn mailbox_loop<S: Send + Sync + 'static>(shard: Rc<Shard<S>>, inbox: Inbox<Job<S>>) {
    let mut jobs = Vec::new();
    while inbox.recv_batch(&mut jobs).await.is_some() {
        for job in jobs.drain(..) {
            job(&shard);
        }
    }
}

/// Once a second, parks the writer task of every connection that sent nothing since the
/// last sweep: an idle connection then costs its reader task and little else.
async fn idle_sweep<S: Send + Sync + 'static>(shard: std::rc::Weak<Shard<S>>) {
    loop {
        crate::rt::sleep(Duration::from_secs(1)).await;
        let Some(shard) = shard.upgrade() else { return };
        if shard.stop.is_fired() {
            return;
        }
        for link in shard
            .conns
            .borrow()
            .values()
            .filter_map(|c| c.link.as_ref())
        {
            link.sweep_idle();
        }
        let now = Instant::now();
        shard.expire_sessions(now);
        if shard.index == 0 {
            // Forgets the addresses whose handshake budget refilled, also when no
            // connection arrives to sweep them.
            shard.server.admission.sweep(now);
        }
    }
}

/// Waits out a transient accept failure (descriptor exhaustion) instead of spinning.
async fn accept_failed(error: io::Error) {
    tracing::warn!(%error, "accept failed");
    crate::rt::sleep(Duration::from_millis(20)).await;
}

/// Accepts until the shard stops, serving each connection in its own task. `accept`
/// yields a stream and its peer address (none on a Unix socket).
async fn accept_loop<S, T, F, Fut>(shard: &Rc<Shard<S>>, mut accept: F) -> io::Result<()>
where
    S: Send + Sync + 'static,
    T: Accepted,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<(T, Option<SocketAddr>)>>,
{
    loop {
        match first(accept(), shard.stop.wait()).await {
            First::B(()) => return Ok(()),
            First::A(Ok((stream, addr))) => {
                drop(crate::rt::spawn(serve(shard.clone(), stream, addr)))
            }
            First::A(Err(error)) => accept_failed(error).await,
        }
    }
}

/// The opening: the WebSocket handshake (answering a bad one with an HTTP error), or for
/// TCP with sessions on, the client's first frame (a session hello, or its first message,
/// which stays in `buf`). `None` if the connection must be dropped.
async fn open<S, T>(
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
            let identity = match &config.auth {
                None => None,
                Some(auth) => {
                    let request = AuthRequest::new(
                        peer_addr,
                        request.path.clone(),
                        request.query.clone(),
                        request.headers.clone(),
                        request.protocols.clone(),
                        config.query_tokens,
                    );
                    match authenticate(config, auth.as_ref(), request).await {
                        Ok(identity) => Some(identity),
                        Err((status, reason)) => {
                            tracing::debug!(?peer_addr, status, %reason, "upgrade refused by the authenticator");
                            let _ = write_all(stream, http_refusal(status, &reason, None)).await;
                            shutdown(stream).await;
                            return None;
                        }
                    }
                }
            };
            let offer = config.sessions.and_then(|_| {
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
                info: ConnInfo {
                    peer_addr,
                    path: request.path,
                    query: request.query,
                    headers: request.headers,
                    protocol,
                },
                offer,
                identity,
            }
        }
        Transport::Tcp => {
            let identity = match &config.auth {
                None => None,
                Some(auth) => {
                    let request = AuthRequest::new(
                        peer_addr,
                        String::new(),
                        None,
                        Default::default(),
                        Vec::new(),
                        false,
                    );
                    match authenticate(config, auth.as_ref(), request).await {
                        Ok(identity) => Some(identity),
                        Err((status, reason)) => {
                            tracing::debug!(?peer_addr, status, %reason, "connection refused by the authenticator");
                            return None;
                        }
                    }
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
                info: ConnInfo {
                    peer_addr,
                    ..ConnInfo::default()
                },
                offer,
                identity,
            }
        }
    })
}

/// Runs the authenticator, bounded by the auth timeout: the identity, or the HTTP status
/// and reason to refuse with (503 when it did not answer in time).
async fn authenticate<S>(
    config: &ServerConfig<S>,
    auth: &dyn Authenticator,
    request: AuthRequest,
) -> Result<Identity, (u16, String)> {
    match crate::rt::timeout(config.auth_timeout, auth.authenticate(request)).await {
        Ok(Ok(identity)) => Ok(identity),
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

/// Serves one accepted connection: its admission by the guards, its opening, then (on
/// this shard, or on the one that holds the session it resumes) the rest of its life,
/// holding its permit throughout.
async fn serve<S, T>(shard: Rc<Shard<S>>, mut stream: T, peer_addr: Option<SocketAddr>)
where
    S: Send + Sync + 'static,
    T: Accepted,
{
    let server = &shard.server;
    let permit = match server
        .admission
        .admit(peer_addr.map(|a| a.ip()), Instant::now())
    {
        Ok(permit) => permit,
        Err(refusal) => {
            server.refused(&refusal, peer_addr);
            Box::pin(refuse(server.config.transport, &mut stream, &refusal)).await;
            return;
        }
    };
    let mut buf = BytesMut::with_capacity(MIN_READ);
    let opened =
        Box::pin(async { open(&shard.server, &mut stream, &mut buf, peer_addr).await }).await;
    let Some(opened) = opened else { return };
    match shard.resume_elsewhere(&opened) {
        Some(owner) => hand_off(&shard, owner, stream, buf, opened, permit),
        None => start_connection(&shard, stream, buf, opened, permit),
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
async fn refuse<T: Accepted>(transport: Transport, stream: &mut T, refusal: &Refusal) {
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

/// Hands an opened connection to shard `owner`, which holds the session it resumes: a
/// session never changes shards, so everything sent to it stays in one shard's order.
fn hand_off<S, T>(
    shard: &Shard<S>,
    owner: usize,
    stream: T,
    buf: BytesMut,
    opened: Opened,
    permit: Permit,
) where
    S: Send + Sync + 'static,
    T: Accepted,
{
    let fd = stream.into_owned_fd();
    shard.server.post(
        owner,
        Box::new(move |owner| match T::from_owned_fd(fd) {
            Ok(stream) => start_connection(owner, stream, buf, opened, permit),
            Err(error) => tracing::warn!(%error, "a resuming connection could not be handed over"),
        }),
    );
}

/// Admits an opened connection on this shard and starts the task that serves it.
///
/// The opening's task ends here: what only the opening needed (the upgrade request, the
/// session offer, the stream before it was split) is freed with it, and every idle
/// connection keeps only [`serve_connection`]'s state.
fn start_connection<S, T>(
    shard: &Rc<Shard<S>>,
    stream: T,
    buf: BytesMut,
    opened: Opened,
    permit: Permit,
) where
    S: Send + Sync + 'static,
    T: Stream,
{
    let (reader, writer) = stream.into_split();
    let (link, peer, sessioned) = shard.admit(opened);
    writer::attach(writer, &link);
    let served = serve_connection(shard.clone(), reader, buf, link, peer, sessioned, permit);
    drop(crate::rt::spawn(served));
}

/// Serves an admitted connection until it ends: reads and dispatches, then the bounded
/// wait for the writer. Every idle connection keeps this task for its whole life, so its
/// state is kept small (the wait for the writer at the end is boxed).
async fn serve_connection<S, R>(
    shard: Rc<Shard<S>>,
    mut reader: R,
    buf: BytesMut,
    link: Rc<Link>,
    peer: Peer<S>,
    sessioned: bool,
    // The connection's place in the guards' caps, given back when it ends.
    _permit: Permit,
) where
    S: Send + Sync + 'static,
    R: crate::rt::net::SplitRead + 'static,
{
    // A client without a session: its message budget, if there is a message rate.
    let mut budget: Option<TokenBucket> = None;
    read_loop(&mut reader, buf, &link, |message| {
        if sessioned {
            if let Received::Session(control) = message {
                shard.session_control(&link, &control);
                return;
            }
            let exempt = shard.rate_exempt(&message);
            match shard.session_received(&link, exempt) {
                Arrival::Dispatch => {}
                // Replaced by a resume: the session lives on another connection now.
                Arrival::Replaced => return,
                Arrival::RateLimited(retry) => {
                    shard.rate_limited(&link, &peer, retry, true);
                    return;
                }
            }
        } else if let Some(limit) = shard
            .server
            .config
            .message_rate
            .as_ref()
            .filter(|_| !shard.rate_exempt(&message))
        {
            let now = Instant::now();
            let budget = budget.get_or_insert_with(|| TokenBucket::new(now));
            if let Err(retry) = budget.take(limit, now) {
                shard.rate_limited(&link, &peer, retry, false);
                return;
            }
        }
        let registry = shard.registry.borrow();
        let own = link.existing_listeners::<ListenerCell<Peer<S>>>();
        dispatch(
            message,
            &link,
            &registry,
            own.as_deref(),
            &shard.listeners,
            &peer,
        );
    })
    .await;
    shard.disconnected(&link, &peer);
    // Boxed: the timer future is large and cache-line aligned, and would set the size
    // and alignment of every connection's task for an await that happens once.
    let close_timeout = shard.server.config.timeouts.close;
    if Box::pin(crate::rt::timeout(close_timeout, link.writer_done()))
        .await
        .is_err()
    {
        // The peer does not take the rest of our output: drop it with the socket.
        link.abort(End::WriteTimeout);
    }
}

impl<S: Send + Sync + 'static> Shard<S> {
    /// Admits an opened connection: a plain client, a new session, or a resumed one.
    /// Returns its link, its peer, and whether it has a session.
    fn admit(&self, opened: Opened) -> (Rc<Link>, Peer<S>, bool) {
        let Opened {
            info,
            offer,
            identity,
        } = opened;
        let refused = match offer {
            None => {
                let (link, peer) = self.admit_plain(info, identity);
                return (link, peer, false);
            }
            Some(Err(())) => Some(resume_error::BAD_CREDENTIALS),
            Some(Ok(None)) => None,
            Some(Ok(Some(resume))) => match self.take_session(&resume, identity.as_ref()) {
                Ok(taken) => {
                    let (link, peer) = self.attach_resumed(taken, resume.last_seq);
                    return (link, peer, true);
                }
                Err(code) => Some(code),
            },
        };
        let (link, peer) = self.admit_session(info, identity, refused);
        (link, peer, true)
    }

    fn new_link(&self, id: u64) -> Rc<Link> {
        let conn = Connection::new(self.conn_config.clone(), Instant::now());
        Link::new(
            id,
            conn,
            self.timers.clone(),
            self.server.config.flush_delay,
        )
    }

    /// A client without a session: the link and the peer (running the state factory),
    /// registered, and the application told.
    fn admit_plain(&self, info: ConnInfo, identity: Option<Identity>) -> (Rc<Link>, Peer<S>) {
        let id = self.next_id();
        let link = self.new_link(id);
        let state = (self.server.config.state)(&info);
        let peer = Peer::new(id, self.index, info, identity, state, self.server.clone());
        self.insert(Conn {
            peer: peer.clone(),
            link: Some(link.clone()),
            session: None,
            parked_listeners: None,
        });
        self.connected(&link, &peer);
        (link, peer)
    }

    /// A client with a new session, announced to it first (with the code of the resume
    /// it asked for, if that failed).
    fn admit_session(
        &self,
        info: ConnInfo,
        identity: Option<Identity>,
        refused: Option<u16>,
    ) -> (Rc<Link>, Peer<S>) {
        let config = self.server.config.sessions.unwrap_or_default();
        let id = self.next_id();
        let link = self.new_link(id);
        link.accept_session_frames();
        let state = (self.server.config.state)(&info);
        let user = identity.as_ref().map(|i| i.user.clone());
        let peer = Peer::new(id, self.index, info, identity, state, self.server.clone());
        let session = Box::new(ServerSession::new(&config, user));
        link.send_session(&Control::Created {
            id: session.id,
            secret: session.secret,
            user: session.user.clone(),
            refused,
        });
        self.server.index_session(session.id, Some(peer.clone()));
        self.insert(Conn {
            peer: peer.clone(),
            link: Some(link.clone()),
            session: Some(session),
            parked_listeners: None,
        });
        self.connected(&link, &peer);
        (link, peer)
    }

    fn insert(&self, conn: Conn<S>) {
        let (id, peer) = (conn.peer.id(), conn.peer.clone());
        self.conns.borrow_mut().insert(id, conn);
        self.server.index_user(&peer, true);
        self.server.sessions(self.index).insert(id, peer);
    }

    /// Which other shard holds the session this opening resumes, if another does.
    fn resume_elsewhere(&self, opened: &Opened) -> Option<usize> {
        let Some(Ok(Some(resume))) = &opened.offer else {
            return None;
        };
        let owner = self.server.session_peer(&resume.id)?.shard();
        (owner != self.index).then_some(owner)
    }

    /// Takes the session `resume` names (it lives on this shard), replacing its live
    /// connection if it has one.
    fn take_session(&self, resume: &Resume, identity: Option<&Identity>) -> Result<Taken<S>, u16> {
        let peer = self
            .server
            .session_peer(&resume.id)
            .ok_or(resume_error::UNKNOWN_SESSION)?;
        self.detach_for_resume(&peer, resume, identity)
    }

    /// Checks a resume against the session it names and, if it may proceed, takes the
    /// session out of this shard: a live connection is told it was replaced (4003).
    /// A resume past what the replay buffer still holds ends the session (1013).
    fn detach_for_resume(
        &self,
        peer: &Peer<S>,
        resume: &Resume,
        identity: Option<&Identity>,
    ) -> Result<Taken<S>, u16> {
        let key = peer.id();
        let mut conns = self.conns.borrow_mut();
        let conn = conns.get_mut(&key).ok_or(resume_error::UNKNOWN_SESSION)?;
        let session = conn.session.as_ref().ok_or(resume_error::UNKNOWN_SESSION)?;
        if session.closing || session.id != resume.id {
            return Err(resume_error::UNKNOWN_SESSION);
        }
        if !session.secret.matches(&resume.secret) {
            return Err(resume_error::BAD_CREDENTIALS);
        }
        // With an authenticator, only the session's own user may resume it.
        if self.server.config.auth.is_some()
            && session.user.as_deref() != identity.map(|i| i.user.as_str())
        {
            return Err(resume_error::BAD_CREDENTIALS);
        }
        let replayable = session.replay.after(resume.last_seq).map(|_| ());
        match replayable {
            Ok(()) => {}
            Err(ReplayError::Unknown) => return Err(resume_error::BAD_CREDENTIALS),
            Err(ReplayError::Gap) => {
                let conn = conns.remove(&key).expect("found above");
                drop(conns);
                tracing::debug!(session = %resume.id, "resume past the replay buffer: session ended");
                self.end_session(conn, close_code::TRY_AGAIN_LATER, "resume gap");
                return Err(resume_error::GAP);
            }
        }
        let mut conn = conns.remove(&key).expect("found above");
        drop(conns);
        self.server.sessions(self.index).remove(&key);
        let mut session = conn.session.take().expect("checked above");
        let mut listeners = conn.parked_listeners.take();
        if let Some(old) = conn.link.take() {
            session.received_before = session.received(old.data_received());
            listeners = old.take_listeners();
            self.replaced(old);
        }
        Ok(Taken {
            peer: conn.peer,
            session,
            listeners,
        })
    }

    /// A connection whose session was resumed elsewhere: it is told and closed (4003),
    /// and dropped if its peer does not answer within the close timeout. (Its entry in the
    /// timer heap now finds the new connection, so its own close timeout is kept here.)
    fn replaced(&self, old: Rc<Link>) {
        old.fail_queries();
        old.close(close_code::REPLACED, "replaced_by_reconnection");
        let close_timeout = self.server.config.timeouts.close;
        drop(crate::rt::spawn(async move {
            crate::rt::sleep(close_timeout).await;
            old.abort(End::CloseTimeout);
        }));
    }

    /// Puts a taken session on a new connection here: restored, then every message the
    /// client has not processed, in order, then live traffic.
    fn attach_resumed(&self, taken: Taken<S>, last_seq: u64) -> (Rc<Link>, Peer<S>) {
        let Taken {
            peer,
            mut session,
            listeners,
        } = taken;
        let key = peer.id();
        let link = self.new_link(key);
        link.accept_session_frames();
        link.adopt_listeners(listeners);
        session.received_mark = link.data_received();
        session.suspended_since = None;
        session.replay.ack(last_seq);
        let replay: Vec<FrameParts> = session
            .replay
            .after(last_seq)
            .map(|frames| frames.cloned().collect())
            .unwrap_or_default();
        link.send_session(&Control::Restored {
            last_seq,
            replayed: replay.len() as u64,
            received: session.received_before,
        });
        for frame in replay {
            link.send_parts(frame);
        }
        tracing::debug!(session = %session.id, last_seq, "session resumed");
        self.insert(Conn {
            peer: peer.clone(),
            link: Some(link.clone()),
            session: Some(session),
            parked_listeners: None,
        });
        if let Some(on_resume) = &self.server.config.on_resume {
            guard("on_resume", || on_resume(&peer));
        }
        if self.stop.is_fired() {
            link.close(close_code::GOING_AWAY, "server shutting down");
        }
        (link, peer)
    }

    /// A session frame from the client: an acknowledgement. Anything else breaks the
    /// extension's protocol (1002).
    fn session_control(&self, link: &Rc<Link>, bytes: &[u8]) {
        match Control::decode(bytes) {
            Some(Control::Ack { seq }) => {
                let mut conns = self.conns.borrow_mut();
                if let Some(session) = conns
                    .get_mut(&link.id)
                    .filter(|c| c.is_current(link))
                    .and_then(|c| c.session.as_mut())
                {
                    session.replay.ack(seq);
                }
            }
            _ => link.close(close_code::PROTOCOL_ERROR, "unexpected session frame"),
        }
    }

    /// Before a data message of a session is dispatched: acknowledges the client's
    /// messages every [`ACK_EVERY`], and takes the message from the session's budget if
    /// there is a message rate. A message over the rate still counts as received (it is
    /// acknowledged, and not sent again after a resume): it is dropped, not postponed.
    fn session_received(&self, link: &Rc<Link>, rate_exempt: bool) -> Arrival {
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(&link.id).filter(|c| c.is_current(link)) else {
            return Arrival::Replaced;
        };
        let Some(session) = conn.session.as_mut() else {
            return Arrival::Dispatch;
        };
        let received = session.received(link.data_received());
        if received >= session.acked + ACK_EVERY {
            session.acked = received;
            link.send_session(&Control::Ack { seq: received });
        }
        if let Some(limit) = self
            .server
            .config
            .message_rate
            .as_ref()
            .filter(|_| !rate_exempt)
        {
            let now = Instant::now();
            let budget = session.rate.get_or_insert_with(|| TokenBucket::new(now));
            if let Err(retry) = budget.take(limit, now) {
                return Arrival::RateLimited(retry);
            }
        }
        Arrival::Dispatch
    }

    /// Whether `message` is a PackMe message the message rate does not count
    /// ([`ServerBuilder::message_rate_exempt`](crate::ServerBuilder::message_rate_exempt)).
    fn rate_exempt(&self, message: &Received<'_>) -> bool {
        let exempt = &self.server.config.rate_exempt;
        if exempt.is_empty() {
            return false;
        }
        let bytes: &[u8] = match message {
            Received::Binary(bytes) => bytes,
            Received::InPlace(message) => message.as_bytes(),
            _ => return false,
        };
        packme::FrameHeader::message_id(bytes).is_some_and(|id| exempt.contains(&id))
    }

    /// A message over the client's message rate was dropped: counted, logged, the client
    /// told if it has a session, and the application's callback called.
    fn rate_limited(&self, link: &Rc<Link>, peer: &Peer<S>, retry: Duration, sessioned: bool) {
        self.server.refusals.message();
        tracing::debug!(conn = link.id, ?retry, "message dropped: rate limit");
        if sessioned {
            let retry_after_ms =
                u32::try_from(retry.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX);
            link.send_session(&Control::RateLimited { retry_after_ms });
        }
        if let Some(on_rate_limited) = &self.server.config.on_rate_limited {
            guard("on_rate_limited", || on_rate_limited(peer, retry));
        }
    }

    /// The connection is open: tell the application (and close it if we are stopping).
    fn connected(&self, link: &Rc<Link>, peer: &Peer<S>) {
        if let Some(on_connect) = &self.server.config.on_connect {
            guard("on_connect", || on_connect(peer));
        }
        if self.stop.is_fired() {
            link.close(close_code::GOING_AWAY, "server shutting down");
        }
    }

    /// A connection ended: its queries fail; a session is suspended until it is resumed
    /// or expires; a client without one is gone (unregistered, the application told). A
    /// connection replaced by a resume changes nothing of its former session.
    fn disconnected(&self, link: &Rc<Link>, peer: &Peer<S>) {
        let end = link.end().unwrap_or(End::Closed(close_code::GOING_AWAY));
        tracing::debug!(conn = link.id, %end, "connection ended");
        link.fail_queries();
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(&link.id).filter(|c| c.is_current(link)) else {
            drop(conns);
            link.finish();
            return;
        };
        let suspend = !self.stop.is_fired() && conn.session.as_ref().is_some_and(|s| !s.closing);
        if suspend {
            let session = conn.session.as_mut().expect("checked above");
            session.received_before = session.received(link.data_received());
            session.suspended_since = Some(Instant::now());
            conn.link = None;
            conn.parked_listeners = link.take_listeners();
            tracing::debug!(session = %session.id, "session suspended");
            drop(conns);
            if let Some(on_suspend) = &self.server.config.on_suspend {
                guard("on_suspend", || on_suspend(peer));
            }
        } else {
            let conn = conns.remove(&link.id).expect("found above");
            drop(conns);
            self.forget(&conn);
            if let Some(on_disconnect) = &self.server.config.on_disconnect {
                guard("on_disconnect", || on_disconnect(peer));
            }
        }
        link.finish();
    }

    /// Removes a client's registrations (the client list, the session index).
    fn forget(&self, conn: &Conn<S>) {
        self.server.sessions(self.index).remove(&conn.peer.id());
        if let Some(session) = &conn.session {
            self.server.index_session(session.id, None);
        }
        conn.peer.ended();
        self.server.index_user(&conn.peer, false);
        self.server.rooms.leave_all(conn.peer.id());
    }

    /// Ends a session taken out of the table: its connection, if any, is closed with
    /// `code`, and the application is told the client is gone.
    fn end_session(&self, conn: Conn<S>, code: u16, reason: &str) {
        self.forget(&conn);
        if let Some(link) = &conn.link {
            link.close(code, reason);
        }
        if let Some(on_disconnect) = &self.server.config.on_disconnect {
            guard("on_disconnect", || on_disconnect(&conn.peer));
        }
    }

    /// Ends the suspended sessions whose time to be resumed is over (and those the
    /// application closed while suspended).
    fn expire_sessions(&self, now: Instant) {
        let Some(config) = self.server.config.sessions else {
            return;
        };
        let expired: Vec<u64> = self
            .conns
            .borrow()
            .iter()
            .filter(|(_, c)| {
                c.session.as_ref().is_some_and(|s| {
                    s.suspended_since
                        .is_some_and(|since| s.closing || now >= since + config.ttl)
                })
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            let conn = self.conns.borrow_mut().remove(&id);
            if let Some(conn) = conn {
                tracing::debug!(conn = id, "suspended session expired");
                self.end_session(conn, close_code::SESSION_EXPIRED, "session expired");
            }
        }
    }
}

/// Runs an application callback, containing a panic.
pub(crate) fn guard(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(callback = what, "callback panicked");
    }
}

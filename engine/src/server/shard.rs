//! A shard: one thread pinned to one core, running one runtime that accepts on its
//! own `SO_REUSEPORT` listener and owns its connections, their buffers and their state.
//! Other threads reach it only through its mailbox.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use packme::Registry;
use rustc_hash::FxHashMap;

use super::client_entry::Conn;
use super::config::Transport;
use super::info::ConnInfo;
use super::json_endpoint::{Greeting, JsonConnection};
use super::json_resume::ReconnectRequest;
use super::opening::{open, refuse, Opened};
use super::peer::Peer;
use super::resume::Arrival;
use super::{Fanout, PeerFilter, ServerShared};
use crate::auth::Identity;
use crate::guard::{Permit, Refusal, TokenBucket};
use crate::json::{ErrorCode, JsonDispatcher, SysError};
use crate::link::reader::{read_loop, Stopped, MIN_READ};
use crate::link::timers::Timers;
use crate::link::{writer, Link, Parked};
use crate::listeners::{dispatch, HandlerTable, ListenerCell};
use crate::mailbox::Inbox;
use crate::proto::received::Received;
use crate::proto::{close_code, Config, Connection, End};
use crate::rt::idle::IdlePoller;
use crate::rt::net::{Accepted, TcpListener, UnixListener};
use crate::rt::{first, First};
use crate::session::wire::{Control, Secret};
use crate::session::{resume_error, ServerSession, SessionId};
use crate::signal::Signal;

/// Work posted to a shard from another thread.
pub(crate) type Job<S> = Box<dyn FnOnce(&Rc<Shard<S>>) + Send>;

pub(crate) struct Shard<S> {
    pub index: usize,
    pub server: Arc<ServerShared<S>>,
    pub conns: RefCell<FxHashMap<u64, Conn<S>>>,
    pub listeners: ListenerCell<Peer<S>>,
    pub registry: RefCell<Registry>,
    pub(super) timers: Rc<Timers>,
    /// The JSON protocol's connections, for the heartbeat (the dead ones are dropped at
    /// each sweep).
    json_conns: RefCell<Vec<Weak<JsonConnection<S>>>>,
    /// What every connection of the shard is built from (one allocation for all of them).
    pub(super) conn_config: Arc<Config>,
    pub(super) stop: Signal,
    next_seq: Cell<u64>,
    /// Where the sockets of parked connections wait.
    idle: IdlePoller,
    /// Connections parked since the last idle sweep (their memory is to be trimmed).
    parked_since_sweep: Cell<bool>,
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
    pub(super) fn refused(&self, refusal: &Refusal, peer_addr: Option<SocketAddr>) {
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
            json_conns: RefCell::default(),
            conn_config: Arc::new(Config {
                wire: start.server.wire(),
                limits: start.server.config.limits.frames(),
                max_queued_bytes: start.server.config.limits.max_queued_bytes,
                max_pending_queries: start.server.config.limits.max_pending_queries,
                timeouts: start.server.config.timeouts,
            }),
            stop: Signal::default(),
            next_seq: Cell::new(0),
            idle: IdlePoller::new()?,
            parked_since_sweep: Cell::new(false),
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
        drop(crate::rt::spawn(wake_parked(Rc::downgrade(&shard))));
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

    /// Sends a broadcast's pre-encoded frames to every connection that passes `filter`.
    pub(crate) fn broadcast(&self, frame: Fanout, filter: Option<&PeerFilter<S>>) {
        let frame = frame.shard_local();
        for conn in self.conns.borrow_mut().values_mut() {
            if filter.is_none_or(|keep| keep(&conn.peer)) {
                conn.send_fanout(&frame);
            }
        }
    }

    /// Sends a broadcast's pre-encoded frames to the clients `keys` (a room broadcast's
    /// members on this shard).
    pub(crate) fn send_to(&self, keys: &[u64], frame: Fanout) {
        let frame = frame.shard_local();
        let mut conns = self.conns.borrow_mut();
        for key in keys {
            if let Some(conn) = conns.get_mut(key) {
                conn.send_fanout(&frame);
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

    pub(super) fn next_id(&self) -> u64 {
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

async fn mailbox_loop<S: Send + Sync + 'static>(shard: Rc<Shard<S>>, inbox: Inbox<Job<S>>) {
    let mut jobs = Vec::new();
    while inbox.recv_batch(&mut jobs).await.is_some() {
        for job in jobs.drain(..) {
            job(&shard);
        }
    }
}

/// Once a second, asks every connection that queued nothing since the last sweep to park
/// its writer, and the whole connection once it has received nothing for a while (see
/// `Link::sweep_idle`); trims the thread's freed memory after connections parked
/// ([`ServerBuilder::trim_memory`](crate::ServerBuilder::trim_memory)); expires sessions
/// and runs the JSON heartbeat.
async fn idle_sweep<S: Send + Sync + 'static>(shard: std::rc::Weak<Shard<S>>) {
    loop {
        crate::rt::sleep(Duration::from_secs(1)).await;
        let Some(shard) = shard.upgrade() else { return };
        if shard.stop.is_fired() {
            return;
        }
        if shard.parked_since_sweep.replace(false) {
            if let Some(trim) = &shard.server.config.trim_memory {
                trim();
            }
        }
        let now = Instant::now();
        for link in shard
            .conns
            .borrow()
            .values()
            .filter_map(|c| c.link.as_ref())
        {
            link.sweep_idle(now);
        }
        shard.expire_sessions(now);
        shard.json_heartbeat(now);
        if shard.index == 0 {
            // Forgets the addresses whose handshake budget refilled, also when no
            // connection arrives to sweep them.
            shard.server.admission.sweep(now);
        }
    }
}

/// Resumes the parked connections whose sockets have an event (the peer sent, closed or
/// failed), for as long as the shard runs. (A stopping shard closes every connection,
/// which resumes them; this task is dropped with the shard's runtime.)
async fn wake_parked<S: Send + Sync + 'static>(shard: Weak<Shard<S>>) {
    let mut keys = Vec::new();
    loop {
        let Some(shard) = shard.upgrade() else { return };
        if let Err(error) = shard.idle.readable().await {
            tracing::warn!(%error, "waiting for parked connections failed");
            crate::rt::sleep(Duration::from_millis(20)).await;
        }
        if let Err(error) = shard.idle.take_ready(&mut keys) {
            tracing::warn!(%error, "reading parked connections' events failed");
        }
        for key in keys.drain(..) {
            let link = shard.conns.borrow().get(&key).and_then(|c| c.link.clone());
            if let Some(link) = link {
                link.socket_ready();
            }
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
    T: Accepted,
{
    let (reader, writer) = stream.into_split();
    let json = opened.json;
    let (link, peer, admitted) = shard.admit(opened);
    writer::attach(writer, &link);
    let greeting = || match admitted {
        Admitted::NewSession(id, secret) => Greeting::Created(Some((id, secret))),
        Admitted::Plain => Greeting::Created(None),
        Admitted::Resumed => Greeting::Restored,
    };
    let endpoint = &shard.server.config.json;
    let protocol = match json
        .then(|| JsonConnection::start(peer.clone(), link.clone(), endpoint, greeting()))
        .flatten()
    {
        Some((dispatcher, connection)) => {
            shard.watch_json(connection);
            Protocol::Json(dispatcher)
        }
        None => Protocol::Binary {
            sessioned: !matches!(admitted, Admitted::Plain),
        },
    };
    let serving = Serving::new(shard.clone(), link, peer, protocol, permit);
    drop(crate::rt::spawn(serve_connection::<S, T>(
        serving, reader, buf,
    )));
}

/// What an admitted connection has of a session.
enum Admitted {
    /// None (sessions are off).
    Plain,
    /// A session created for it.
    NewSession(SessionId, Secret),
    /// The session it resumed at its upgrade.
    Resumed,
}

/// What serving a connection keeps from one read to the next, and while it is parked.
pub(super) struct Serving<S> {
    shard: Rc<Shard<S>>,
    link: Rc<Link>,
    peer: Peer<S>,
    protocol: Protocol,
    /// The connection's place in the guards' caps, given back when it ends.
    permit: Permit,
    /// A client without a session: its message budget, if there is a message rate.
    budget: Option<TokenBucket>,
}

impl<S: Send + Sync + 'static> Serving<S> {
    pub(super) fn new(
        shard: Rc<Shard<S>>,
        link: Rc<Link>,
        peer: Peer<S>,
        protocol: Protocol,
        permit: Permit,
    ) -> Self {
        Self {
            shard,
            link,
            peer,
            protocol,
            permit,
            budget: None,
        }
    }

    /// Hands a data message to the session bookkeeping, the rate limit and then the JSON
    /// dispatcher or the listeners. Breaks on a JSON `sys.reconnect.request`.
    fn received(&mut self, message: Received<'_>) -> ControlFlow<ReconnectRequest> {
        let (shard, link, peer, protocol) = (&self.shard, &self.link, &self.peer, &self.protocol);
        if protocol.sessioned() {
            if let Received::Session(control) = message {
                shard.session_control(link, &control);
                return ControlFlow::Continue(());
            }
            match shard.session_received(link, &message) {
                Arrival::Dispatch => {}
                // Replaced by a resume: the session lives on another connection now.
                Arrival::Replaced => return ControlFlow::Continue(()),
                Arrival::RateLimited(retry) => {
                    shard.rate_limited(link, peer, retry, protocol, &message);
                    return ControlFlow::Continue(());
                }
            }
        } else if let Err(retry) = shard.charge_client(link, &mut self.budget, &message) {
            shard.rate_limited(link, peer, retry, protocol, &message);
            return ControlFlow::Continue(());
        }
        if let Some(json) = protocol.json() {
            return shard.json_received(link, json, &message);
        }
        let registry = shard.registry.borrow();
        let own = link.existing_listeners::<ListenerCell<Peer<S>>>();
        dispatch(
            message,
            link,
            &registry,
            own.as_deref(),
            &shard.listeners,
            peer,
        );
        ControlFlow::Continue(())
    }

    /// The end of a connection: its JSON handlers stop, the shard forgets it (or suspends
    /// its session), and the writer gets the close timeout to flush.
    async fn finish(self) {
        if let Some(json) = self.protocol.json() {
            // Queued messages and running handlers of a connection that went away are
            // dropped.
            json.close();
        }
        self.shard.disconnected(&self.link, &self.peer);
        // Boxed: the timer future is large and cache-line aligned, and would set the size
        // and alignment of every connection's task for an await that happens once.
        let close_timeout = self.shard.server.config.timeouts.close;
        if Box::pin(crate::rt::timeout(close_timeout, self.link.writer_done()))
            .await
            .is_err()
        {
            // The peer does not take the rest of our output: drop it with the socket.
            self.link.abort(End::WriteTimeout);
        }
    }
}

/// Serves an admitted connection until it ends or parks: reads and dispatches, then the
/// bounded wait for the writer. A connection in use keeps this task; an idle one parks
/// ([`park`]) and keeps only its [`Serving`] state.
pub(super) async fn serve_connection<S, T>(
    mut serving: Serving<S>,
    mut reader: T::Read,
    mut buf: BytesMut,
) where
    S: Send + Sync + 'static,
    T: Accepted,
{
    loop {
        let link = serving.link.clone();
        let stopped = read_loop(&mut reader, buf, &link, |m| serving.received(m)).await;
        drop(link);
        match stopped {
            Stopped::Ended => break,
            Stopped::Parked => match park::<S, T>(serving, reader) {
                Ok(()) => return,
                // The writer has not parked yet: read on (the next sweep asks again).
                Err((same, same_reader)) => {
                    (serving, reader, buf) = (same, same_reader, BytesMut::new());
                }
            },
            // Only a JSON connection pauses, on a `sys.reconnect.request`.
            Stopped::Paused(request, rest) => {
                let Some(json) = serving.protocol.json() else {
                    break;
                };
                let resume = serving.shard.clone().resume_in_band::<T>(
                    reader,
                    &serving.link,
                    &serving.peer,
                    json,
                    request,
                    rest,
                    serving.permit,
                );
                match Box::pin(resume).await {
                    Some((same_reader, rest, same_permit)) => {
                        (reader, buf, serving.permit) = (same_reader, rest, same_permit);
                    }
                    // The socket moved to the resumed session's connection.
                    None => return,
                }
            }
        }
    }
    serving.finish().await;
}

/// Parks an idle connection whole: its socket goes to the shard's [`IdlePoller`], its
/// state into its link, and its task ends. Gives everything back if the writer has not
/// parked yet, or if the connection is no longer open (a close asked for in the sweep's
/// turn): a closing connection runs to its end with its tasks, as nothing would resume
/// it once parked.
fn park<S, T>(serving: Serving<S>, reader: T::Read) -> Result<(), (Serving<S>, T::Read)>
where
    S: Send + Sync + 'static,
    T: Accepted,
{
    if !serving.link.is_open() {
        return Err((serving, reader));
    }
    let Some(half) = serving.link.take_write_half() else {
        return Err((serving, reader));
    };
    let Ok(writer) = half.downcast::<T::Write>() else {
        unreachable!("a link's write half is its stream's")
    };
    let Some(stream) = T::reunite(reader, *writer) else {
        unreachable!("a link's halves are one stream's")
    };
    let fd = match stream.detach() {
        Ok(fd) => fd,
        Err(error) => {
            // Out of descriptors: the connection cannot be parked, nor served on.
            tracing::warn!(%error, "an idle connection could not be parked");
            serving.link.abort(End::Io(error.to_string()));
            drop(crate::rt::spawn(serving.finish()));
            return Ok(());
        }
    };
    let (link, parked) = ParkedServing::<S, T>::new(serving, fd);
    let parked = Box::new(parked);
    let shard = &parked.shard;
    match shard.idle.watch(parked.fd.as_raw_fd(), link.id) {
        Ok(()) => {
            shard.server.parked.fetch_add(1, Ordering::Relaxed);
            shard.parked_since_sweep.set(true);
            link.park(parked);
        }
        Err(error) => {
            tracing::debug!(%error, "an idle connection could not be parked");
            parked.serve_again(&link);
        }
    }
    Ok(())
}

/// A connection parked whole: its socket (out of the executor, in the shard's
/// [`IdlePoller`]) and what serving it keeps, which is its [`Serving`] but the link: the
/// link keeps this, and hands itself back when it starts it again.
struct ParkedServing<S, T> {
    shard: Rc<Shard<S>>,
    peer: Peer<S>,
    protocol: Protocol,
    permit: Permit,
    budget: Option<TokenBucket>,
    fd: std::os::fd::OwnedFd,
    stream: std::marker::PhantomData<fn() -> T>,
}

impl<S: Send + Sync + 'static, T: Accepted> ParkedServing<S, T> {
    /// `serving` parked with its socket `fd`, and its link.
    fn new(serving: Serving<S>, fd: std::os::fd::OwnedFd) -> (Rc<Link>, Self) {
        let Serving {
            shard,
            link,
            peer,
            protocol,
            permit,
            budget,
        } = serving;
        let parked = Self {
            shard,
            peer,
            protocol,
            permit,
            budget,
            fd,
            stream: std::marker::PhantomData,
        };
        (link, parked)
    }

    /// Gives the socket back to the executor and serves it again (its writer starts once
    /// it has output).
    fn serve_again(self, link: &Rc<Link>) {
        let Self {
            shard,
            peer,
            protocol,
            permit,
            budget,
            fd,
            ..
        } = self;
        let serving = Serving {
            shard,
            link: link.clone(),
            peer,
            protocol,
            permit,
            budget,
        };
        match T::from_owned_fd(fd) {
            Ok(stream) => {
                let (reader, writer) = stream.into_split();
                writer::attach(writer, link);
                drop(crate::rt::spawn(serve_connection::<S, T>(
                    serving,
                    reader,
                    BytesMut::new(),
                )));
            }
            Err(error) => {
                tracing::warn!(%error, "a parked connection could not be resumed");
                link.abort(End::Io(error.to_string()));
                drop(crate::rt::spawn(serving.finish()));
            }
        }
        link.changed();
    }
}

impl<S: Send + Sync + 'static, T: Accepted> Parked for ParkedServing<S, T> {
    fn start(self: Box<Self>, link: Rc<Link>) {
        let shard = &self.shard;
        shard.idle.forget(self.fd.as_raw_fd());
        shard.server.parked.fetch_sub(1, Ordering::Relaxed);
        self.serve_again(&link);
    }

    fn into_write_half(self: Box<Self>) -> Result<Box<dyn Any>, Box<dyn Parked>> {
        Err(self)
    }

    fn is_whole(&self) -> bool {
        true
    }
}

/// What an admitted connection speaks.
pub(super) enum Protocol {
    /// ConnectMe's binary protocol (PackMe, text): messages go to the listeners.
    Binary {
        /// With the engine's session extension.
        sessioned: bool,
    },
    /// The JSON protocol: frames go to the connection's dispatcher.
    Json(JsonDispatcher),
}

impl Protocol {
    fn sessioned(&self) -> bool {
        matches!(self, Protocol::Binary { sessioned: true })
    }

    fn json(&self) -> Option<&JsonDispatcher> {
        match self {
            Protocol::Json(dispatcher) => Some(dispatcher),
            Protocol::Binary { .. } => None,
        }
    }
}

/// A received message's text, if it is a text message.
pub(super) fn text_of<'a>(message: &'a Received<'_>) -> Option<&'a str> {
    match message {
        Received::Text(text) => Some(text),
        Received::TextInPlace(text) => Some(text.as_str()),
        _ => None,
    }
}

impl<S: Send + Sync + 'static> Shard<S> {
    /// A data message on a JSON connection: a text goes to its dispatcher (a first
    /// message that asks to resume a session pauses reading instead), a binary frame is
    /// refused. Dropped on a connection a resume replaced.
    fn json_received(
        &self,
        link: &Rc<Link>,
        json: &JsonDispatcher,
        message: &Received<'_>,
    ) -> ControlFlow<ReconnectRequest> {
        if !link.is_open() && !self.is_current(link) {
            return ControlFlow::Continue(());
        }
        match text_of(message) {
            Some(text) => {
                if let Some(request) = self.reconnect_request(link, text) {
                    return ControlFlow::Break(request);
                }
                json.received(text);
            }
            None => json.refuse_frame(
                None,
                &SysError::new(ErrorCode::InvalidProtocol)
                    .message("Binary frames are not accepted: send JSON text")
                    .details_raw(r#"{"reason":"binary_frame"}"#),
            ),
        }
        ControlFlow::Continue(())
    }

    /// Whether `link` is its client's current connection.
    fn is_current(&self, link: &Rc<Link>) -> bool {
        self.conns
            .borrow()
            .get(&link.id)
            .is_some_and(|c| c.is_current(link))
    }

    /// Keeps a JSON connection for the heartbeat.
    pub(super) fn watch_json(&self, connection: Weak<JsonConnection<S>>) {
        self.json_conns.borrow_mut().push(connection);
    }

    /// Runs the JSON protocol's heartbeat on every JSON connection, forgetting the ended.
    fn json_heartbeat(&self, now: Instant) {
        let Some(config) = self.server.config.json.heartbeat else {
            return;
        };
        self.json_conns
            .borrow_mut()
            .retain(|connection| match connection.upgrade() {
                Some(connection) => {
                    connection.heartbeat(&config, now);
                    true
                }
                None => false,
            });
    }

    /// Admits an opened connection: a plain client, a new session, or a resumed one.
    /// A JSON connection has a session whenever sessions are on (it resumes in band, if
    /// it asks to, with its first message).
    fn admit(&self, opened: Opened) -> (Rc<Link>, Peer<S>, Admitted) {
        let Opened {
            info,
            offer,
            identity,
            json,
        } = opened;
        if json && self.server.config.sessions.is_some() {
            return self.admit_session(info, identity, None, true);
        }
        let refused = match offer {
            None => {
                let (link, peer) = self.admit_plain(info, identity, json);
                return (link, peer, Admitted::Plain);
            }
            Some(Err(())) => Some(resume_error::BAD_CREDENTIALS),
            Some(Ok(None)) => None,
            Some(Ok(Some(resume))) => match self.take_session(&resume, identity.as_ref(), false) {
                Ok(taken) => {
                    let (link, peer) = self.attach_resumed(taken, resume.last_seq, None);
                    return (link, peer, Admitted::Resumed);
                }
                Err(code) => Some(code),
            },
        };
        self.admit_session(info, identity, refused, false)
    }

    pub(super) fn new_link(&self, id: u64) -> Rc<Link> {
        let conn = Connection::new(self.conn_config.clone(), Instant::now());
        Link::new(
            id,
            conn,
            self.timers.clone(),
            self.server.config.flush_delay,
        )
    }

    /// A new client's link and peer (running the state factory), not yet registered.
    fn new_client(
        &self,
        mut info: ConnInfo,
        identity: Option<Identity>,
        json: bool,
    ) -> (Rc<Link>, Peer<S>) {
        let id = self.next_id();
        let link = self.new_link(id);
        let state = (self.server.config.state)(&info);
        if let Some(names) = &self.server.config.kept_headers {
            // The state factory saw every header; the connection keeps the named ones.
            info.keep_only_headers(names);
        }
        let server = self.server.clone();
        let peer = Peer::new(id, info, identity, state, server, json);
        (link, peer)
    }

    /// A client without a session: the link and the peer (running the state factory),
    /// registered, and the application told.
    fn admit_plain(
        &self,
        info: ConnInfo,
        identity: Option<Identity>,
        json: bool,
    ) -> (Rc<Link>, Peer<S>) {
        let (link, peer) = self.new_client(info, identity, json);
        self.insert(Conn {
            peer: peer.clone(),
            link: Some(link.clone()),
            session: None,
        });
        self.connected(&link, &peer);
        (link, peer)
    }

    /// A client with a new session. A binary one is told first, in a session frame (with
    /// the code of the resume it asked for, if that failed); a JSON one (`json`) is told
    /// by its connection's `sys.session.created`.
    fn admit_session(
        &self,
        info: ConnInfo,
        identity: Option<Identity>,
        refused: Option<u16>,
        json: bool,
    ) -> (Rc<Link>, Peer<S>, Admitted) {
        let config = self.server.config.sessions.unwrap_or_default();
        let user = identity.as_ref().map(|i| i.user.clone());
        let (link, peer) = self.new_client(info, identity, json);
        let session = Box::new(ServerSession::new(&config, user, json));
        let admitted = Admitted::NewSession(session.id, session.secret);
        if !json {
            link.accept_session_frames();
            link.send_session(&Control::Created {
                id: session.id,
                secret: session.secret,
                user: session.user.clone(),
                refused,
            });
        }
        self.server.index_session(session.id, Some(peer.clone()));
        self.insert(Conn {
            peer: peer.clone(),
            link: Some(link.clone()),
            session: Some(session),
        });
        self.connected(&link, &peer);
        (link, peer, admitted)
    }

    pub(super) fn insert(&self, conn: Conn<S>) {
        let (id, peer) = (conn.peer.id(), conn.peer.clone());
        self.conns.borrow_mut().insert(id, conn);
        self.server.index_user(&peer, true);
        self.server.sessions(self.index).insert(id, peer);
    }

    /// The connection is open: tell the application (and close it if we are stopping).
    pub(super) fn connected(&self, link: &Rc<Link>, peer: &Peer<S>) {
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
            session.suspended_listeners = link.take_listeners();
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
    pub(super) fn forget(&self, conn: &Conn<S>) {
        self.server.sessions(self.index).remove(&conn.peer.id());
        if let Some(session) = &conn.session {
            self.server.index_session(session.id, None);
        }
        conn.peer.ended();
        self.server.index_user(&conn.peer, false);
        self.server.leave_all(&conn.peer);
    }
}

/// Runs an application callback, containing a panic.
pub(crate) fn guard(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(callback = what, "callback panicked");
    }
}

#[cfg(test)]
mod tests {
    /// What a parked connection keeps of its serving state (ARCHITECTURE.md, "What a
    /// parked connection still costs"): 88 bytes while it held its link too (which held
    /// it: a cycle), 76 without, in mimalloc's 80-byte size class.
    #[test]
    fn parked_serving_state_stays_in_its_size_class() {
        let size = std::mem::size_of::<super::ParkedServing<(), ()>>();
        assert!(size <= 80, "the parked serving state grew to {size} bytes");
    }
}

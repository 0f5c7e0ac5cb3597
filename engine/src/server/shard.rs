//! A shard: one thread pinned to one core, running one runtime that accepts on its
//! own `SO_REUSEPORT` listener and owns its connections, their buffers and their state.
//! Other threads reach it only through its mailbox.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
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
use crate::link::reader::{read_head, read_loop, HeadError, MIN_READ};
use crate::link::timers::Timers;
use crate::link::{writer, Link};
use crate::listeners::{dispatch, HandlerTable, ListenerCell};
use crate::mailbox::Inbox;
use crate::proto::outgoing::shard_local;
use crate::proto::{close_code, handshake, Config, Connection, End};
use crate::rt::io::{shutdown, write_all};
use crate::rt::net::{Stream, TcpListener, UnixListener};
use crate::rt::{first, First};
use crate::signal::Signal;

/// Work posted to a shard from another thread.
pub(crate) type Job<S> = Box<dyn FnOnce(&Rc<Shard<S>>) + Send>;

pub(crate) struct Conn<S> {
    pub peer: Peer<S>,
    pub link: Rc<Link>,
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

/// How a `Peer` reaches its connection, from any thread. (Methods of the server's shared
/// state, so that the peer needs nothing of the shard's insides.)
impl<S: Send + Sync + 'static> ServerShared<S> {
    /// Runs `f` with connection `id`'s link if this thread is shard `index`; otherwise
    /// hands `f` back for posting. Missing connections (already gone) drop `f`.
    pub(super) fn on_local_link<F: FnOnce(&Rc<Link>)>(
        self: &Arc<Self>,
        index: usize,
        id: u64,
        f: F,
    ) -> Option<F> {
        let found = CURRENT.with(|current| {
            let current = current.borrow();
            let shard = current
                .as_ref()
                .filter(|c| c.server == Arc::as_ptr(self) as *const () as usize && c.index == index)
                .and_then(|c| c.shard.downcast_ref::<Shard<S>>())?;
            let link = shard.conns.borrow().get(&id).map(|c| c.link.clone());
            Some(link)
        });
        match found {
            // Not this shard's thread: the caller posts `f` to the shard.
            None => Some(f),
            Some(Some(link)) => {
                f(&link);
                None
            }
            // This shard, but the connection is gone.
            Some(None) => None,
        }
    }

    /// Posts `f` to shard `index`, to run there with connection `id`'s link (if it is
    /// still there).
    pub(super) fn post_to_link(
        &self,
        index: usize,
        id: u64,
        f: impl FnOnce(&Rc<Link>) + Send + 'static,
    ) {
        self.post(
            index,
            Box::new(move |shard| {
                let link = shard.conns.borrow().get(&id).map(|c| c.link.clone());
                if let Some(link) = link {
                    f(&link);
                }
            }),
        );
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
            let link = shard.conns.borrow().get(&id).map(|c| c.link.clone());
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
        for conn in self.conns.borrow().values() {
            if filter.is_none_or(|keep| keep(&conn.peer)) {
                conn.link.send_shared(&frame);
            }
        }
    }

    /// Closes every connection with 1001 and waits (bounded) until they are gone.
    async fn drain(&self) {
        let links: Vec<_> = self
            .conns
            .borrow()
            .values()
            .map(|c| c.link.clone())
            .collect();
        for link in links {
            link.close(close_code::GOING_AWAY, "server shutting down");
        }
        let deadline =
            Instant::now() + self.server.config.timeouts.close + Duration::from_millis(500);
        while !self.conns.borrow().is_empty() && Instant::now() < deadline {
            crate::rt::sleep(Duration::from_millis(5)).await;
        }
        let left: Vec<_> = self
            .conns
            .borrow()
            .values()
            .map(|c| c.link.clone())
            .collect();
        for link in left {
            link.abort(End::CloseTimeout);
        }
        crate::rt::sleep(Duration::from_millis(1)).await;
    }

    fn next_id(&self) -> u64 {
        let seq = self.next_seq.get() + 1;
        self.next_seq.set(seq);
        ((self.index as u64) << 48) | seq
    }
}

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
        for conn in shard.conns.borrow().values() {
            conn.link.sweep_idle();
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
    T: Stream + 'static,
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

/// The opening: the WebSocket handshake (answering a bad one with an HTTP error), or
/// nothing for TCP. `None` if the connection must be dropped.
async fn open<S, R, W>(
    config: &ServerConfig<S>,
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    peer_addr: Option<SocketAddr>,
) -> Option<ConnInfo>
where
    R: crate::rt::net::ReadHalf,
    W: crate::rt::net::WriteHalf,
{
    Some(match config.transport {
        Transport::WebSocket => {
            let max = config.limits.max_handshake;
            let request = read_head(reader, buf, |b| handshake::parse_request(b, max));
            let request = match crate::rt::timeout(config.handshake_timeout, request).await {
                Ok(Ok(request)) => request,
                Ok(Err(HeadError::Invalid(error))) => {
                    tracing::debug!(?peer_addr, %error, "handshake refused");
                    let _ = write_all(writer, error.http_response()).await;
                    shutdown(writer).await;
                    return None;
                }
                Ok(Err(HeadError::Io(_))) | Err(_) => return None,
            };
            let protocol = config.select_protocol(&request.protocols);
            let response = handshake::accept_response(request.key(), protocol.as_deref());
            write_all(writer, response).await.ok()?;
            ConnInfo {
                peer_addr,
                path: request.path,
                query: request.query,
                headers: request.headers,
                protocol,
            }
        }
        Transport::Tcp => ConnInfo {
            peer_addr,
            ..ConnInfo::default()
        },
    })
}

/// Serves one accepted connection until it ends.
///
/// Every idle connection keeps this task for its whole life, so its state is kept small:
/// everything that is only needed once (the handshake, building the peer, the bounded
/// wait for the writer at the end) happens in a boxed future or a plain function whose
/// state is freed afterwards, and this is a function returning an `async move` block
/// rather than an `async fn`, which would hold the stream a second time, unused.
fn serve<S, T>(
    shard: Rc<Shard<S>>,
    stream: T,
    peer_addr: Option<SocketAddr>,
) -> impl Future<Output = ()>
where
    S: Send + Sync + 'static,
    T: Stream,
{
    let (mut reader, mut writer) = stream.into_split();
    async move {
        let mut buf = BytesMut::with_capacity(MIN_READ);
        let Some((link, peer)) = Box::pin(async {
            let config = &shard.server.config;
            let info = open(config, &mut reader, &mut writer, &mut buf, peer_addr).await?;
            Some(shard.admit(info))
        })
        .await
        else {
            return;
        };
        writer::attach(writer, &link);
        shard.connected(&link, &peer);
        read_loop(&mut reader, buf, &link, |message| {
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
}

impl<S: Send + Sync + 'static> Shard<S> {
    /// Builds the link and the peer (running the state factory) and registers them.
    fn admit(&self, info: ConnInfo) -> (Rc<Link>, Peer<S>) {
        let config = &self.server.config;
        let id = self.next_id();
        let conn = Connection::new(self.conn_config.clone(), Instant::now());
        let link = Link::new(id, conn, self.timers.clone(), config.flush_delay);
        let state = (config.state)(&info);
        let peer = Peer::new(id, self.index, info, state, self.server.clone());
        let conn = Conn {
            peer: peer.clone(),
            link: link.clone(),
        };
        self.conns.borrow_mut().insert(id, conn);
        self.server.sessions(self.index).insert(id, peer.clone());
        (link, peer)
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

    /// The connection ended: fail its queries, unregister it, tell the application.
    fn disconnected(&self, link: &Rc<Link>, peer: &Peer<S>) {
        let end = link.end().unwrap_or(End::Closed(close_code::GOING_AWAY));
        tracing::debug!(conn = link.id, %end, "connection ended");
        link.fail_queries();
        self.conns.borrow_mut().remove(&link.id);
        self.server.sessions(self.index).remove(&link.id);
        if let Some(on_disconnect) = &self.server.config.on_disconnect {
            guard("on_disconnect", || on_disconnect(peer));
        }
        link.finish();
    }
}

/// Runs an application callback, containing a panic.
pub(crate) fn guard(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(callback = what, "callback panicked");
    }
}

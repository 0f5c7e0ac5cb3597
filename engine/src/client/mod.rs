//! The client: connects to a ConnectMe server over WebSocket (`ws://`), TCP or a Unix
//! socket, keeps listeners across reconnects, and exposes a `Send + Sync + Clone` handle
//! usable from any thread or async runtime.
//!
//! The connection runs on its own thread with its own runtime (the same driver
//! choice as a server shard). The handle talks to it through a mailbox; query results come
//! back through runtime-agnostic channels.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;

use bytes::BytesMut;
use packme::{Message, Packet, Registry, RegistryError, Request};

use crate::link::reader::{read_head, read_loop, HeadError, MIN_READ};
use crate::link::timers::Timers;
use crate::link::{writer, Link};
use crate::listeners::{dispatch, Context, Handler, Host, Key, ListenerCell};
use crate::mailbox::{mailbox, Inbox, Mailbox};
use crate::proto::handshake::{self, HandshakeError};
use crate::proto::outgoing::IntoFrame;
use crate::proto::{close_code, Config, Connection, End, Keepalive, Timeouts, Wire};
use crate::query::{query_channel, Query, QueryError};
use crate::reconnect::Reconnect;
use crate::rt::io::write_all;
use crate::rt::net::{set_tcp_keepalive, ReadHalf, Stream, TcpStream, UnixStream, WriteHalf};
use crate::rt::{Driver, First};
use crate::server::Limits;
use crate::signal::Signal;

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

    fn wire(&self) -> Wire {
        match self {
            Self::WebSocket { .. } => Wire::WsClient,
            _ => Wire::Tcp,
        }
    }
}

type Callback = Arc<dyn Fn(&Client) + Send + Sync>;

struct ClientConfig {
    target: Target,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    reconnect: Reconnect,
    timeouts: Timeouts,
    connect_timeout: Duration,
    driver: Driver,
    limits: Limits,
    on_connect: Option<Callback>,
    on_disconnect: Option<Callback>,
}

type Job = Box<dyn FnOnce(&Rc<ClientLocal>) + Send>;

struct ClientInner {
    config: ClientConfig,
    mailbox: Mailbox<Job>,
    connected: AtomicBool,
    closed: AtomicBool,
    next_tid: AtomicU32,
    next_listener: AtomicU64,
    protocol: Mutex<Option<String>>,
    /// Every message type registered so far, so `register` can report a collision at
    /// the call (the client thread's copy is updated through the mailbox).
    registry: Mutex<Registry>,
}

/// A connection to a ConnectMe server that reconnects by itself. Cheap to clone; every
/// method may be called from any thread.
///
/// The client closes when the last handle the application holds (the one `build` or
/// `connect` returned, and clones of it) is dropped. The `&Client` a handler is called
/// with belongs to the client's thread: a clone of it does not keep the client open.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
    /// Held by the handles the application owns (the one `build` returns and its clones),
    /// not by the client's own thread: when the last of them is dropped, the client closes
    /// instead of reconnecting forever with nobody to use it.
    _owner: Option<Arc<Owner>>,
}

/// Closes its client when dropped (see [`Client`]'s `_owner`).
struct Owner(Client);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.inner.config.target)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// The client thread's state.
struct ClientLocal {
    client: Client,
    listeners: ListenerCell<Client>,
    registry: RefCell<Registry>,
    link: RefCell<Option<Rc<Link>>>,
    timers: Rc<Timers>,
    stop: Signal,
    /// Fired by the first `connect`/`start` (or `close`).
    begin: Signal,
    /// Where the first attempt's outcome goes, and whether a failure stops the client.
    first: RefCell<Option<(FirstResult, bool)>>,
}

type FirstResult = oneshot::Sender<Result<(), ConnectError>>;

/// Configures a [`Client`].
pub struct ClientBuilder {
    config: Result<ClientConfig, ConnectError>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self.config.as_ref().map(|c| &c.target);
        f.debug_struct("ClientBuilder")
            .field("target", &target)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for `address` (see [`Target::parse`]).
    pub fn builder(address: &str) -> ClientBuilder {
        ClientBuilder {
            config: Target::parse(address).map(|target| ClientConfig {
                target,
                headers: Vec::new(),
                protocols: Vec::new(),
                reconnect: Reconnect::default(),
                timeouts: Timeouts::default(),
                connect_timeout: Duration::from_secs(10),
                driver: Driver::Auto,
                limits: Limits::default(),
                on_connect: None,
                on_disconnect: None,
            }),
        }
    }

    fn begin(&self, must_succeed: bool) -> oneshot::Receiver<Result<(), ConnectError>> {
        let (tx, rx) = oneshot::channel();
        self.post(move |local| {
            if local.begin.is_fired() {
                let _ = tx.send(Err(ConnectError::AlreadyStarted));
                return;
            }
            *local.first.borrow_mut() = Some((tx, must_succeed));
            local.begin.fire();
        });
        rx
    }

    /// Connects, resolving when the first connection is open; fails (and the client stops)
    /// if it fails. Later disconnects reconnect per the policy. Listeners added before
    /// this call see every message of the connection.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        self.begin(true).await.unwrap_or(Err(ConnectError::Closed))
    }

    /// [`Client::connect`] for a plain thread.
    pub fn connect_blocking(&self) -> Result<(), ConnectError> {
        self.begin(true).recv().unwrap_or(Err(ConnectError::Closed))
    }

    /// Starts connecting in the background (retrying per the policy from the first
    /// attempt on) and returns at once.
    pub fn start(&self) {
        drop(self.begin(false));
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The subprotocol the server selected on the current connection.
    pub fn protocol(&self) -> Option<String> {
        self.inner
            .protocol
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn post(&self, job: impl FnOnce(&Rc<ClientLocal>) + Send + 'static) {
        self.inner.mailbox.post(Box::new(job));
    }

    fn next_tid(&self) -> u32 {
        // Clients count up from 1 like the references; 0 is skipped (JS reads it as unset).
        loop {
            let tid = self.inner.next_tid.fetch_add(1, Ordering::Relaxed);
            if tid != 0 {
                return tid;
            }
        }
    }

    /// Sends a message: a string as text, bytes as binary, a [`Packet`] as binary. Dropped
    /// (and logged at debug level) while disconnected, as ConnectMe does.
    pub fn send<F: IntoFrame>(&self, message: F) {
        let frame = message.into_parts(self.inner.config.target.wire());
        self.post(move |local| match local.link.borrow().as_ref() {
            Some(link) => {
                link.send_parts(frame);
            }
            None => tracing::debug!("send while disconnected: message dropped"),
        });
    }

    /// Sends a PackMe message with a fresh transaction id.
    pub fn send_message<M: Message>(&self, message: M) {
        self.send(Packet::new(message, self.next_tid()));
    }

    /// Sends `request` and resolves with the response that carries its transaction id and
    /// its response type; fails on timeout, disconnect, or when not connected.
    pub fn query<R: Request>(&self, request: R) -> Query<R::Response> {
        let (reply, query) = query_channel();
        if !self.is_connected() {
            let _ = reply.send(Err(QueryError::NotConnected));
            return query;
        }
        let tid = self.next_tid();
        let frame = Packet::new(request, tid).into_frame(self.inner.config.target.wire());
        self.post(move |local| match local.link.borrow().as_ref() {
            Some(link) => {
                if link.register_query(tid, <R::Response as Message>::ID, reply) {
                    link.send(frame);
                }
            }
            None => {
                let _ = reply.send(Err(QueryError::NotConnected));
            }
        });
        query
    }

    /// Closes the connection (normal close) and stops reconnecting. Returns at once.
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.post(|local| {
            if let Some(link) = local.link.borrow().as_ref() {
                link.close(close_code::NORMAL, "");
            }
            local.stop.fire();
            local.begin.fire();
        });
    }

    /// Drops the current connection without a close handshake (it reconnects per policy).
    /// Meant for tests of reconnect behaviour.
    pub fn disconnect(&self) {
        self.post(|local| {
            if let Some(link) = local.link.borrow().as_ref() {
                link.abort(End::Closed(close_code::NORMAL));
            }
        });
    }
}

/// The listener verbs ([`Listeners`](crate::Listeners)) of a client: its listeners survive
/// reconnects; a change takes effect once the client's thread runs it, shortly after the
/// call returns.
impl Host for Client {
    type Context = Client;

    fn add_handler(&self, key: Key, registry: Registry, handler: Handler<Client>) -> u64 {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        self.post(move |local| {
            let _ = local.registry.borrow_mut().merge(&registry);
            local
                .listeners
                .apply(move |table| table.add(key, id, handler));
        });
        id
    }

    fn remove_handler(&self, key: Key, id: u64) {
        self.post(move |local| {
            local.listeners.apply(move |table| {
                table.remove(key, id);
            })
        });
    }

    /// Checked here against every type registered so far, so a collision is reported at
    /// the call; the client thread's copy is updated through the mailbox.
    fn add_registry(&self, registry: &Registry) -> Result<(), RegistryError> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(registry)?;
        let registry = registry.clone();
        self.post(move |local| {
            // Cannot collide: every change to this copy went through the checked one.
            let _ = local.registry.borrow_mut().merge(&registry);
        });
        Ok(())
    }
}

impl Context for Client {
    fn send<F: IntoFrame>(&self, message: F) {
        Client::send(self, message);
    }
}

impl ClientBuilder {
    fn with(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        if let Ok(config) = self.config.as_mut() {
            f(config);
        }
        self
    }

    /// Adds a header to the WebSocket upgrade request.
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.with(|c| c.headers.push((name, value)))
    }

    /// Offers subprotocols (none by default, as ConnectMe clients).
    pub fn protocols<I: IntoIterator<Item = P>, P: Into<String>>(self, protocols: I) -> Self {
        let protocols = protocols.into_iter().map(Into::into).collect();
        self.with(|c| c.protocols = protocols)
    }

    /// Reconnect policy (default: backoff with jitter; [`Reconnect::CONNECTME`] for 3 s).
    pub fn reconnect(self, reconnect: Reconnect) -> Self {
        self.with(|c| c.reconnect = reconnect)
    }

    /// How long a query waits for its response (default 30 s).
    pub fn query_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.timeouts.query = timeout)
    }

    /// Keepalive (default [`Keepalive::default`]: a ping after 15 s without anything from
    /// the server, the connection dropped and reconnected after 45 s, so a dead server is
    /// noticed within a minute); `None` turns it off. Over TCP it sets TCP keepalive.
    pub fn keepalive(self, keepalive: Option<Keepalive>) -> Self {
        self.with(|c| c.timeouts.keepalive = keepalive)
    }

    /// Body, write and close timeouts (see [`Timeouts`]; the query timeout is
    /// [`ClientBuilder::query_timeout`], keepalive [`ClientBuilder::keepalive`]).
    pub fn timeouts(self, timeouts: Timeouts) -> Self {
        self.with(|c| c.timeouts = timeouts)
    }

    /// How long connecting plus the handshake may take (default 10 s).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.connect_timeout = timeout)
    }

    /// I/O driver of the client's thread.
    pub fn driver(self, driver: Driver) -> Self {
        self.with(|c| c.driver = driver)
    }

    /// Frame, message and queue limits.
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|c| c.limits = limits)
    }

    /// Called on the client thread after every successful connection.
    pub fn on_connect(self, f: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.with(|c| c.on_connect = Some(Arc::new(f)))
    }

    /// Called on the client thread after every lost connection (pending queries have
    /// already failed).
    pub fn on_disconnect(self, f: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.with(|c| c.on_disconnect = Some(Arc::new(f)))
    }

    /// Builds the client and starts its thread, not connected yet: add listeners, then
    /// [`Client::connect`] or [`Client::start`] (ConnectMe's `client`).
    pub fn build(self) -> Result<Client, ConnectError> {
        let config = self.config?;
        let driver = config.driver.resolve()?;
        let (tx, inbox) = mailbox();
        let thread_client = Client {
            inner: Arc::new(ClientInner {
                config,
                mailbox: tx,
                connected: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                next_tid: AtomicU32::new(1),
                next_listener: AtomicU64::new(1),
                protocol: Mutex::new(None),
                registry: Mutex::new(Registry::new()),
            }),
            _owner: None,
        };
        let client = Client {
            inner: thread_client.inner.clone(),
            _owner: Some(Arc::new(Owner(thread_client.clone()))),
        };
        std::thread::Builder::new()
            .name("connectme-client".into())
            .spawn(move || {
                if let Err(error) = driver.block_on(256, run(thread_client, inbox)) {
                    tracing::error!(%error, "client runtime failed");
                }
            })?;
        Ok(client)
    }

    /// Builds and connects (ConnectMe's `connect`); fails if the first attempt fails.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let client = self.build()?;
        client.connect().await?;
        Ok(client)
    }
}

async fn mailbox_loop(local: Rc<ClientLocal>, inbox: Inbox<Job>) {
    let mut jobs = Vec::new();
    while inbox.recv_batch(&mut jobs).await.is_some() {
        for job in jobs.drain(..) {
            job(&local);
        }
    }
}

/// The client thread: connect, serve the connection, wait, reconnect.
async fn run(client: Client, inbox: Inbox<Job>) {
    let local = Rc::new(ClientLocal {
        client: client.clone(),
        listeners: ListenerCell::default(),
        registry: RefCell::new(Registry::new()),
        link: RefCell::new(None),
        timers: Timers::start(),
        stop: Signal::default(),
        begin: Signal::default(),
        first: RefCell::new(None),
    });
    let mailbox = crate::rt::spawn(mailbox_loop(local.clone(), inbox));
    local.begin.wait().await;
    let config = &client.inner.config;
    let (mut first, first_must_succeed) = match local.first.borrow_mut().take() {
        Some((tx, must)) => (Some(tx), must),
        None => (None, false),
    };
    let mut attempt = 0u32;
    while !client.inner.closed.load(Ordering::Acquire) {
        tracing::debug!(target = ?config.target, "connecting");
        let outcome = match &config.target {
            Target::Tcp(addr) => {
                match connect_with_timeout(config, TcpStream::connect(*addr)).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        set_tcp_keepalive(&stream, config.timeouts.keepalive);
                        session(&local, stream, &mut first).await
                    }
                    Err(e) => Err(e),
                }
            }
            Target::WebSocket { connect, .. } => {
                match connect_with_timeout(config, TcpStream::connect(connect.as_str())).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        set_tcp_keepalive(&stream, config.timeouts.keepalive);
                        session(&local, stream, &mut first).await
                    }
                    Err(e) => Err(e),
                }
            }
            Target::Unix(path) => {
                match connect_with_timeout(config, UnixStream::connect(path)).await {
                    Ok(stream) => session(&local, stream, &mut first).await,
                    Err(e) => Err(e),
                }
            }
        };
        match outcome {
            Ok(()) => attempt = 0,
            Err(error) => {
                tracing::debug!(%error, "connection attempt failed");
                if let Some(first) = first.take() {
                    let _ = first.send(Err(error));
                    if first_must_succeed {
                        break;
                    }
                }
            }
        }
        if client.inner.closed.load(Ordering::Acquire) {
            break;
        }
        let Some(delay) = config.reconnect.delay(attempt) else {
            break;
        };
        attempt = attempt.saturating_add(1);
        if let First::B(()) = crate::rt::first(crate::rt::sleep(delay), local.stop.wait()).await {
            break;
        }
    }
    client.inner.closed.store(true, Ordering::Release);
    drop(mailbox);
}

async fn connect_with_timeout<T>(
    config: &ClientConfig,
    connect: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, ConnectError> {
    match crate::rt::timeout(config.connect_timeout, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ConnectError::Io(e)),
        Err(_) => Err(ConnectError::Timeout(config.connect_timeout)),
    }
}

/// Performs the WebSocket handshake on `reader`/`writer`; returns leftover bytes.
async fn client_handshake<R: ReadHalf, W: WriteHalf>(
    config: &ClientConfig,
    host: &str,
    target: &str,
    reader: &mut R,
    writer: &mut W,
) -> Result<(BytesMut, Option<String>), ConnectError> {
    let key = handshake::new_key();
    let request = handshake::client_request(host, target, &key, &config.headers, &config.protocols);
    write_all(writer, request).await?;
    let mut buf = BytesMut::with_capacity(MIN_READ);
    let max = config.limits.max_handshake;
    let response = match read_head(reader, &mut buf, |b| {
        handshake::parse_response(b, &key, max)
    })
    .await
    {
        Ok(response) => response,
        Err(HeadError::Invalid(error)) => return Err(error.into()),
        Err(HeadError::Io(error)) => return Err(error.into()),
    };
    if let Some(protocol) = &response.protocol {
        if !config.protocols.contains(protocol) {
            return Err(HandshakeError::Malformed(format!(
                "server selected unoffered subprotocol {protocol}"
            ))
            .into());
        }
    }
    Ok((buf, response.protocol))
}

/// One connection: handshake, then serve until it ends. `Err` only if it never opened.
async fn session<T: Stream>(
    local: &Rc<ClientLocal>,
    stream: T,
    first: &mut Option<oneshot::Sender<Result<(), ConnectError>>>,
) -> Result<(), ConnectError> {
    let client = &local.client;
    let config = &client.inner.config;
    let (mut reader, mut writer) = stream.into_split();
    let (buf, protocol) = match &config.target {
        Target::WebSocket { host, target, .. } => {
            let handshake = client_handshake(config, host, target, &mut reader, &mut writer);
            match crate::rt::timeout(config.connect_timeout, handshake).await {
                Ok(result) => result?,
                Err(_) => return Err(ConnectError::Timeout(config.connect_timeout)),
            }
        }
        _ => (BytesMut::with_capacity(MIN_READ), None),
    };
    let conn = Connection::new(
        Config {
            wire: config.target.wire(),
            limits: config.limits.frames(),
            max_queued_bytes: config.limits.max_queued_bytes,
            max_pending_queries: config.limits.max_pending_queries,
            timeouts: config.timeouts,
        },
        Instant::now(),
    );
    let link = Link::new(0, conn, local.timers.clone(), Duration::ZERO);
    *client
        .inner
        .protocol
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = protocol;
    *local.link.borrow_mut() = Some(link.clone());
    client.inner.connected.store(true, Ordering::Release);
    writer::attach(writer, &link);
    if let Some(first) = first.take() {
        let _ = first.send(Ok(()));
    }
    if let Some(on_connect) = &config.on_connect {
        crate::server::guard("on_connect", || on_connect(client));
    }
    if client.inner.closed.load(Ordering::Acquire) {
        link.close(close_code::NORMAL, "");
    }
    read_loop(&mut reader, buf, &link, |message| {
        let registry = local.registry.borrow();
        dispatch(message, &link, &registry, None, &local.listeners, client);
    })
    .await;
    let end = link.end().unwrap_or(End::Closed(close_code::NORMAL));
    tracing::debug!(%end, "client connection ended");
    // Disconnected before failing the queries: whoever sees the failure sees the state.
    local.link.borrow_mut().take();
    client.inner.connected.store(false, Ordering::Release);
    link.fail_queries();
    if let Some(on_disconnect) = &config.on_disconnect {
        crate::server::guard("on_disconnect", || on_disconnect(client));
    }
    link.finish();
    if crate::rt::timeout(config.timeouts.close, link.writer_done())
        .await
        .is_err()
    {
        link.abort(End::WriteTimeout);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Listeners;

    #[test]
    fn register_reports_a_collision_at_the_call() {
        fn never(_: bytes::Bytes) -> Result<packme::AnyPacket, packme::DecodeError> {
            unreachable!()
        }
        let one = |type_id, name| {
            let mut registry = Registry::new();
            let info = packme::MessageInfo {
                id: 7,
                name,
                type_id,
                decode: never,
            };
            registry.insert(info).unwrap();
            registry
        };
        let client = Client::builder("ws://127.0.0.1:1/").build().unwrap();
        client
            .register(&one(std::any::TypeId::of::<u8>(), "A"))
            .unwrap();
        client
            .register(&one(std::any::TypeId::of::<u8>(), "A"))
            .unwrap();
        let error = client
            .register(&one(std::any::TypeId::of::<u16>(), "B"))
            .unwrap_err();
        assert_eq!((error.existing, error.new), ("A", "B"));
        client.close();
    }

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

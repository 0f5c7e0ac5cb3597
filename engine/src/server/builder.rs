//! Configuring a server: [`ServerBuilder`], with every option of ConnectMe's server plus
//! the limits and timeouts a production server needs, each with a default, and the
//! configuration it builds.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use packme::Registry;

use super::config::{Endpoint, Limits, Transport};
use super::info::ConnInfo;
use super::json_endpoint::{JsonEndpoint, JsonHeartbeat};
use super::peer::Peer;
use super::{Server, ServerShared, Setup};
use crate::auth::Authenticator;
use crate::guard::{AdmissionControl, Guards, RateLimit, RefusalCounters};
use crate::proto::{Keepalive, Timeouts};
use crate::rt::Driver;
use crate::session::SessionConfig;

pub(crate) type StateFactory<S> = Arc<dyn Fn(&ConnInfo) -> S + Send + Sync>;
pub(crate) type PeerCallback<S> = Arc<dyn Fn(&Peer<S>) + Send + Sync>;
/// A callback about a client and a room.
pub(crate) type RoomCallback<S> = Arc<dyn Fn(&Peer<S>, &str) + Send + Sync>;
pub(crate) type RateLimitedCallback<S> = Arc<dyn Fn(&Peer<S>, Duration) + Send + Sync>;
/// Hands a thread's freed memory back to the system ([`ServerBuilder::trim_memory`]).
pub(crate) type TrimMemory = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct ServerConfig<S> {
    pub endpoint: Endpoint,
    pub shards: usize,
    pub transport: Transport,
    pub driver: Driver,
    pub pin_cores: bool,
    pub ring_entries: u32,
    pub limits: Limits,
    /// Close, query, body and write timeouts, keepalive.
    pub timeouts: Timeouts,
    pub handshake_timeout: Duration,
    pub flush_delay: Duration,
    /// Subprotocols the server speaks: the first one the client offers among them is
    /// selected. `None` (the default) selects none, whatever the client offers, as
    /// tungstenite and axum do.
    pub protocols: Option<Vec<String>>,
    pub state: StateFactory<S>,
    pub on_connect: Option<PeerCallback<S>>,
    pub on_disconnect: Option<PeerCallback<S>>,
    /// A session lost its connection and waits to be resumed.
    pub on_suspend: Option<PeerCallback<S>>,
    /// A suspended (or half-open) session was resumed on a new connection.
    pub on_resume: Option<PeerCallback<S>>,
    /// A client joined a room.
    pub on_room_join: Option<RoomCallback<S>>,
    /// A client left a room (by leaving, or by ending).
    pub on_room_leave: Option<RoomCallback<S>>,
    /// Sessions for the clients that ask for them; `None`: off.
    pub sessions: Option<SessionConfig>,
    /// Who may connect; `None`: everyone.
    pub auth: Option<Arc<dyn Authenticator>>,
    pub auth_timeout: Duration,
    /// Whether a token may come from the query string.
    pub query_tokens: bool,
    /// The upgrade headers a connection keeps after its handshake; `None`: all.
    pub kept_headers: Option<Vec<String>>,
    /// Connection caps, handshake rate and origin check.
    pub guards: Guards,
    /// Each client's message rate; `None`: unlimited.
    pub message_rate: Option<RateLimit>,
    /// PackMe message ids the message rate does not count.
    pub rate_exempt: Vec<u32>,
    pub on_rate_limited: Option<RateLimitedCallback<S>>,
    /// The JSON protocol: its router, and which upgrades speak it.
    pub json: JsonEndpoint,
    /// Called on a shard after connections parked there; `None`: never.
    pub trim_memory: Option<TrimMemory>,
}

impl<S> ServerConfig<S> {
    /// The subprotocol to answer with: the first one the client offers that is configured
    /// (none unless a list is configured: a server never claims to speak a protocol just
    /// because a client asked for it). Never required: a client offering none, or only
    /// unknown ones, is accepted without one.
    /// An upgrade offering the JSON protocol's subprotocol gets it.
    pub(crate) fn select_protocol(&self, offered: &[String]) -> Option<String> {
        if let Some(json) = self.json.offered_subprotocol(offered) {
            return Some(json.to_owned());
        }
        let supported = self.protocols.as_deref()?;
        offered.iter().find(|p| supported.contains(p)).cloned()
    }
}

/// Configures a [`Server`].
pub struct ServerBuilder<S> {
    config: ServerConfig<S>,
}

impl<S> std::fmt::Debug for ServerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("endpoint", &self.config.endpoint)
            .field("shards", &self.config.shards)
            .field("transport", &self.config.transport)
            .field("limits", &self.config.limits)
            .field("timeouts", &self.config.timeouts)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder<()> {
    pub(super) fn new() -> Self {
        let shards = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            config: ServerConfig {
                endpoint: Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
                shards,
                transport: Transport::WebSocket,
                driver: Driver::Auto,
                pin_cores: true,
                ring_entries: 1024,
                limits: Limits::default(),
                timeouts: Timeouts::default(),
                handshake_timeout: Duration::from_secs(10),
                flush_delay: Duration::ZERO,
                protocols: None,
                state: Arc::new(|_| ()),
                on_connect: None,
                on_disconnect: None,
                on_suspend: None,
                on_resume: None,
                on_room_join: None,
                on_room_leave: None,
                sessions: None,
                auth: None,
                auth_timeout: Duration::from_secs(10),
                query_tokens: false,
                kept_headers: None,
                guards: Guards::default(),
                message_rate: None,
                rate_exempt: Vec::new(),
                on_rate_limited: None,
                json: JsonEndpoint::default(),
                trim_memory: None,
            },
        }
    }
}

impl<S: Send + Sync + 'static> ServerBuilder<S> {
    /// Listen on a TCP address (`"0.0.0.0:9001"`, `"[::1]:0"`, `"localhost:9001"`).
    pub fn addr(mut self, addr: impl ToSocketAddrs) -> io::Result<Self> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing")
        })?;
        self.config.endpoint = Endpoint::Tcp(addr);
        Ok(self)
    }

    /// Listen on a Unix domain socket.
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.endpoint = Endpoint::Unix(path.into());
        self
    }

    /// Number of shards (threads, one per core). Default: the available cores.
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = shards.max(1);
        self
    }

    /// WebSocket (default) or ConnectMe TCP.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.config.transport = transport;
        self
    }

    /// I/O driver (default: `CONNECTME_DRIVER`, else io_uring where available, else epoll).
    pub fn driver(mut self, driver: Driver) -> Self {
        self.config.driver = driver;
        self
    }

    /// Pin shard `i` to the `i`-th allowed core (default true).
    pub fn pin_cores(mut self, pin: bool) -> Self {
        self.config.pin_cores = pin;
        self
    }

    /// Frame, message, handshake, queue and pending-query limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How long a server-to-client query waits for its response (default 30 s).
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.query = timeout;
        self
    }

    /// How long a client may take to send its upgrade request (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// How long to wait for the peer's close frame after sending ours (default 5 s); also
    /// how long a closing connection may take to flush what it queued before it is dropped.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.close = timeout;
        self
    }

    /// WebSocket keepalive (default [`Keepalive::default`]: a ping after 15 s of silence,
    /// closed with 1001 after 45 s, so a peer that vanished without a FIN is gone within a
    /// minute); `None` turns it off. ConnectMe TCP has no ping: there a vanished peer is
    /// found by TCP keepalive, set on its sockets with the same timing.
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.config.timeouts.keepalive = keepalive;
        self
    }

    /// How long a frame or fragmented message may take from its first byte to its last
    /// before the connection is closed with 1008 (default 30 s; `None`: unbounded). A peer
    /// that stalls mid-message holds at most what it sent, and only this long.
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.timeouts.body = timeout;
        self
    }

    /// How long queued output may wait without the peer reading any of it before the
    /// connection is dropped (default 30 s; `None`: unbounded), so a peer that never reads
    /// cannot hold its socket and queue.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.timeouts.write = timeout;
        self
    }

    /// How long each connection's outgoing frames are held before they are written
    /// (default zero: written at the end of the loop turn that queued them). Frames
    /// queued meanwhile leave in the same write, so a stream of broadcasts costs one
    /// send per client per delay instead of one per message: at 200 broadcasts/s to
    /// 1 000 clients, 20 ms halves the server's CPU per delivery (see `perf/README.md`).
    /// Every message waits up to the delay; a queue of 64 KiB (or half
    /// [`Limits::max_queued_bytes`], if lower), or a close, is written at once.
    pub fn flush_delay(mut self, delay: Duration) -> Self {
        self.config.flush_delay = delay;
        self
    }

    /// Subprotocols the server supports: the client's first choice among them is
    /// selected. Default: none, whatever the client offers (as tungstenite and axum do),
    /// so nothing is echoed that the application does not speak. A client offering none,
    /// or only unknown ones, is accepted without one.
    pub fn protocols<I: IntoIterator<Item = P>, P: Into<String>>(mut self, protocols: I) -> Self {
        self.config.protocols = Some(protocols.into_iter().map(Into::into).collect());
        self
    }

    /// Offers sessions to the clients that ask for them (the engine's [`Client`] with
    /// [`ClientBuilder::sessions`]): a dropped connection suspends its session for
    /// [`SessionConfig::ttl`] instead of ending it, and a reconnect resumes it without
    /// losing or repeating a message either way. Clients that do not ask (every real
    /// ConnectMe client) are served exactly as without it. With sessions, `on_connect`
    /// and `on_disconnect` mark a session's start and end, not each connection's, and a
    /// [`Peer`] stays valid across its client's reconnects.
    ///
    /// On ConnectMe TCP, which has no handshake, a client with sessions opens with a hello
    /// frame, so a server with sessions admits a TCP client once its first frame arrives
    /// (within the handshake timeout).
    ///
    /// [`Client`]: crate::Client
    /// [`ClientBuilder::sessions`]: crate::ClientBuilder::sessions
    pub fn sessions(mut self, config: SessionConfig) -> Self {
        self.config.sessions = Some(config);
        self
    }

    /// Authenticates every connection before it is upgraded: the authenticator sees the
    /// whole upgrade request ([`AuthRequest`](crate::AuthRequest): path, query, headers, cookies, offered
    /// subprotocols, address; [`AuthRequest::token`](crate::AuthRequest::token) finds a bearer token) and accepts with
    /// an [`Identity`](crate::Identity) ([`Peer::identity`]; a session keeps its user, and only that user may
    /// resume it) or refuses with 401 / 403, before any 101. It may be async (it runs on
    /// the connection's shard) and is bounded by [`auth_timeout`](Self::auth_timeout)
    /// (503 past it). Bytes a client sends meanwhile wait in its buffer. On ConnectMe TCP
    /// it sees only the address, and a refusal closes the socket.
    pub fn authenticate(mut self, authenticator: impl Authenticator) -> Self {
        self.config.auth = Some(Arc::new(authenticator));
        self
    }

    /// How long an authenticator may take (default 10 s).
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.config.auth_timeout = timeout;
        self
    }

    /// Lets [`AuthRequest::token`](crate::AuthRequest::token) read a `token` query parameter (default off: URLs end
    /// up in proxy and server logs; browsers can use the `token.<value>` subprotocol or a
    /// cookie instead).
    pub fn tokens_in_query(mut self, allow: bool) -> Self {
        self.config.query_tokens = allow;
        self
    }

    /// Keeps only the named upgrade headers (case-insensitive) for [`Peer::header`] and
    /// [`ConnInfo::headers`](crate::ConnInfo::headers) once a connection is open; by
    /// default every header is kept for the connection's whole life. A server that reads
    /// a few headers, or none (`keep_headers(&[])`), saves their memory in every
    /// connection: ~230 B per idle client sending a handful (perf/README.md, session 15).
    /// The authenticator, the guards and the state factory ([`ServerBuilder::state`]) see
    /// every header either way; `on_connect` and everything after see the kept ones.
    pub fn keep_headers(mut self, names: &[&str]) -> Self {
        self.config.kept_headers = Some(names.iter().map(|&name| name.to_owned()).collect());
        self
    }

    /// Connection guards: caps on open connections (in total and per address), a
    /// handshake rate per address and an `Origin` allow-list (see [`Guards`] for each
    /// default and why). Every accepted connection is admitted before its upgrade is read
    /// and holds its place until it closes; a refused WebSocket gets an HTTP error (503
    /// for a cap, 429 with `Retry-After` for the rate, 403 for the origin, never a 101), a
    /// refused ConnectMe TCP connection is closed. Default: [`Guards::default`]; loopback
    /// peers skip the per-address guards unless [`Guards::exempt_loopback`] is false.
    /// [`Server::refusals`] counts the refusals.
    pub fn guards(mut self, guards: Guards) -> Self {
        self.config.guards = guards;
        self
    }

    /// Limits how many messages each client may send (default: unlimited). The budget is
    /// the client's: with a session it survives reconnects (a resume does not refill
    /// it), otherwise it is the connection's. A message over the rate is dropped, not
    /// dispatched: a client with a session is told (the session extension's
    /// `rate_limited` control message, with the time until a message would pass), and
    /// [`on_rate_limited`](Self::on_rate_limited) is called, so that an application whose
    /// clients are plain ConnectMe clients can answer in its own protocol.
    ///
    /// There is no default rate because the right one is the game's: a shooter's inputs
    /// arrive at 60 per second, a lobby's chat at one, and a guessed limit would silently
    /// drop a plain client's messages (ConnectMe's protocol cannot tell it). Count what
    /// your clients send and allow a few times that, with a burst for a reconnect's
    /// catch-up.
    pub fn message_rate(mut self, limit: RateLimit) -> Self {
        self.config.message_rate = Some(limit);
        self
    }

    /// PackMe messages the [message rate](Self::message_rate) does not count, by id
    /// (`[Heartbeat::ID, Resync::ID]`): a client's keepalives or a resync after a
    /// reconnect must pass even when it has used its budget.
    pub fn message_rate_exempt(mut self, ids: impl IntoIterator<Item = u32>) -> Self {
        self.config.rate_exempt = ids.into_iter().collect();
        self
    }

    /// Serves the websocket_core JSON protocol (the `v/e/p/c/t` envelope, routed by
    /// `router`) on the upgrades to [`json_path`](Self::json_path) (default `/ws`, as the
    /// reference) and on those offering [`json_subprotocol`](Self::json_subprotocol);
    /// every other upgrade speaks the binary ConnectMe protocol. Both kinds of client share
    /// rooms, broadcasts, `clients`, the guards and the message rate.
    ///
    /// A JSON connection gets `sys.session.created` first; each text frame is one envelope,
    /// and every envelope gets an answer (a `sys.error` for a refused one, never a silent
    /// drop); a binary frame is answered with `sys.error` 1001. A `sys.pong` without a
    /// handler of the application's is accepted silently.
    pub fn json(mut self, mut router: crate::json::JsonRouter) -> Self {
        if !router.has_handler("sys.pong") {
            router.on("sys.pong", |_, _: serde::de::IgnoredAny| async { Ok(()) });
        }
        self.config.json.router = Some(Arc::new(router));
        self
    }

    /// The path whose upgrades speak the JSON protocol (exact match, query string aside;
    /// default `/ws`); `None`: only the subprotocol selects it.
    pub fn json_path(mut self, path: Option<&str>) -> Self {
        self.config.json.path = path.map(str::to_owned);
        self
    }

    /// A subprotocol that selects the JSON protocol on any path, and is named in the 101
    /// (default: none).
    pub fn json_subprotocol(mut self, name: &str) -> Self {
        self.config.json.subprotocol = Some(name.to_owned());
        self
    }

    /// The JSON protocol's heartbeat (default: `sys.ping` after 15 s of silence, close
    /// with 4004 after 40 s); `None` turns it off (the WebSocket keepalive still runs).
    pub fn json_heartbeat(mut self, heartbeat: Option<JsonHeartbeat>) -> Self {
        self.config.json.heartbeat = heartbeat;
        self
    }

    /// How a JSON connection runs its handlers: in order (the default) or up to n at once,
    /// how many messages may wait, and the handler timeout ([`DispatchConfig`](crate::json::DispatchConfig)).
    pub fn json_dispatch(mut self, config: crate::json::DispatchConfig) -> Self {
        self.config.json.dispatch = config;
        self
    }

    /// Called for each message dropped by the [message rate](Self::message_rate), with
    /// the time until the client's next message would pass. Runs on the client's shard,
    /// before its next message is read: keep it short.
    pub fn on_rate_limited(
        mut self,
        f: impl Fn(&Peer<S>, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.config.on_rate_limited = Some(Arc::new(f));
        self
    }

    /// Called after a client connected (and was added to [`Server::clients`]).
    pub fn on_connect(mut self, f: impl Fn(&Peer<S>) + Send + Sync + 'static) -> Self {
        self.config.on_connect = Some(Arc::new(f));
        self
    }

    /// Called after a client disconnected (its pending queries already failed).
    pub fn on_disconnect(mut self, f: impl Fn(&Peer<S>) + Send + Sync + 'static) -> Self {
        self.config.on_disconnect = Some(Arc::new(f));
        self
    }

    /// With sessions: called when a session loses its connection and starts waiting to be
    /// resumed (its rooms and state stay; messages to it are kept).
    pub fn on_suspend(mut self, f: impl Fn(&Peer<S>) + Send + Sync + 'static) -> Self {
        self.config.on_suspend = Some(Arc::new(f));
        self
    }

    /// With sessions: called when a session is resumed on a new connection (after the
    /// missed messages were queued for it).
    pub fn on_resume(mut self, f: impl Fn(&Peer<S>) + Send + Sync + 'static) -> Self {
        self.config.on_resume = Some(Arc::new(f));
        self
    }

    /// Called when a client joins a room (not when it joins one it is in). Runs on the
    /// thread that made the join (the client's shard for a handler's join): keep it short.
    pub fn on_room_join(mut self, f: impl Fn(&Peer<S>, &str) + Send + Sync + 'static) -> Self {
        self.config.on_room_join = Some(Arc::new(f));
        self
    }

    /// Called when a client leaves a room: by [`Peer::leave`], or for each of its rooms
    /// when it ends (a session that expired or was closed; a suspended session stays in
    /// its rooms).
    pub fn on_room_leave(mut self, f: impl Fn(&Peer<S>, &str) + Send + Sync + 'static) -> Self {
        self.config.on_room_leave = Some(Arc::new(f));
        self
    }

    /// How a shard hands freed memory back to the system once its idle connections have
    /// parked: `trim` runs on the shard's thread at the idle sweep after connections
    /// parked there (at most once a second, and only then). A parked connection frees its
    /// tasks and its receive buffer, but an allocator keeps what a thread freed resident
    /// until that thread allocates again, and a shard whose connections all went quiet
    /// does not: pass the allocator's collect call, e.g. mimalloc's
    /// `unsafe { libmimalloc_sys::mi_collect(true) }` (feature `extended`) or glibc's
    /// `malloc_trim(0)`. Default: none (the memory is reused by the next busy period).
    pub fn trim_memory(mut self, trim: impl Fn() + Send + Sync + 'static) -> Self {
        self.config.trim_memory = Some(Arc::new(trim));
        self
    }

    /// The per-connection state factory (ConnectMe's custom client class): called once per
    /// accepted connection with what is known about it.
    ///
    /// # Panics
    ///
    /// If [`on_connect`](Self::on_connect), [`on_disconnect`](Self::on_disconnect),
    /// [`on_suspend`](Self::on_suspend), [`on_resume`](Self::on_resume),
    /// [`on_room_join`](Self::on_room_join), [`on_room_leave`](Self::on_room_leave) or
    /// [`on_rate_limited`](Self::on_rate_limited) was set before: those callbacks take the
    /// peer type this call changes, so they would be lost. Call `state` first.
    pub fn state<T: Send + Sync + 'static>(
        self,
        factory: impl Fn(&ConnInfo) -> T + Send + Sync + 'static,
    ) -> ServerBuilder<T> {
        let c = self.config;
        assert!(
            c.on_connect.is_none()
                && c.on_disconnect.is_none()
                && c.on_suspend.is_none()
                && c.on_resume.is_none()
                && c.on_room_join.is_none()
                && c.on_room_leave.is_none()
                && c.on_rate_limited.is_none(),
            "ServerBuilder::state must come before on_connect, on_disconnect, on_suspend, on_resume, on_room_join, on_room_leave and on_rate_limited, which take the peer type it changes"
        );
        ServerBuilder {
            config: ServerConfig {
                endpoint: c.endpoint,
                shards: c.shards,
                transport: c.transport,
                driver: c.driver,
                pin_cores: c.pin_cores,
                ring_entries: c.ring_entries,
                limits: c.limits,
                timeouts: c.timeouts,
                handshake_timeout: c.handshake_timeout,
                flush_delay: c.flush_delay,
                protocols: c.protocols,
                state: Arc::new(factory),
                on_connect: None,
                on_disconnect: None,
                on_suspend: None,
                on_resume: None,
                on_room_join: None,
                on_room_leave: None,
                sessions: c.sessions,
                auth: c.auth,
                auth_timeout: c.auth_timeout,
                query_tokens: c.query_tokens,
                kept_headers: c.kept_headers,
                guards: c.guards,
                message_rate: c.message_rate,
                rate_exempt: c.rate_exempt,
                on_rate_limited: None,
                json: c.json,
                trim_memory: c.trim_memory,
            },
        }
    }

    /// Builds the server without starting it (ConnectMe's `server`).
    ///
    /// A session's replay buffer is capped at the queue limit
    /// ([`Limits::max_queued_bytes`]): a resume queues the whole replay at once, and more
    /// than the queue takes would close the client as a slow consumer on every resume.
    pub fn build(mut self) -> Server<S> {
        let max_queued = self.config.limits.max_queued_bytes;
        if let Some(sessions) = self.config.sessions.as_mut() {
            if sessions.replay_bytes > max_queued {
                tracing::warn!(
                    replay_bytes = sessions.replay_bytes,
                    max_queued,
                    "session replay buffer capped at the queue limit"
                );
                sessions.replay_bytes = max_queued;
            }
        }
        let admission = AdmissionControl::new(&self.config.guards, Instant::now());
        Server {
            shared: Arc::new(ServerShared {
                admission,
                refusals: RefusalCounters::default(),
                parked: std::sync::atomic::AtomicUsize::new(0),
                config: self.config,
                setup: Mutex::new(Setup {
                    started: false,
                    listeners: Vec::new(),
                    registry: Registry::new(),
                }),
                shards: OnceLock::new(),
                local_addr: OnceLock::new(),
                threads: Mutex::new(Vec::new()),
                closing: AtomicBool::new(false),
                next_tid: AtomicU32::new(u32::MAX),
                next_listener: AtomicU64::new(1),
                driver: OnceLock::new(),
                session_index: Mutex::default(),
                rooms: crate::room::Rooms::default(),
                users: Mutex::default(),
            }),
        }
    }

    /// Builds, starts and returns the running server (ConnectMe's `serve`).
    pub fn start(self) -> io::Result<Server<S>> {
        let server = self.build();
        server.start()?;
        Ok(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "state must come before on_connect")]
    fn state_after_a_callback_is_refused_rather_than_dropping_it() {
        let _ = Server::builder().on_connect(|_| {}).state(|_| 1u8);
    }

    #[test]
    fn a_replay_buffer_larger_than_the_queue_is_capped_at_it() {
        let server = Server::builder()
            .limits(Limits {
                max_queued_bytes: 1 << 20,
                ..Limits::default()
            })
            .sessions(SessionConfig {
                replay_bytes: 8 << 20,
                ..SessionConfig::default()
            })
            .build();
        let sessions = server.shared.config.sessions.unwrap();
        assert_eq!(sessions.replay_bytes, 1 << 20);
    }

    #[test]
    fn state_then_callbacks_keeps_both() {
        let builder = Server::builder().state(|_| 1u8).on_connect(|peer| {
            let _: &u8 = peer.state();
        });
        assert!(builder.config.on_connect.is_some());
    }
}

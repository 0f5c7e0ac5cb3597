//! The server: a builder with ConnectMe's options, and [`Server`], a `Send + Sync + Clone`
//! handle to the running shards with ConnectMe's verbs (`listen`, `cancel`, `register`,
//! `broadcast`, `clients`, `close`).

mod builder;
mod client_entry;
mod config;
mod fanout;
mod info;
mod json_endpoint;
mod json_resume;
mod opening;
mod peer;
mod resume;
mod shard;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use packme::{Message, Packet, Registry, RegistryError};
use socket2::{Domain, Socket, Type};
use std::rc::Rc;

pub use builder::ServerBuilder;
pub use config::{Endpoint, Limits, Transport};
pub(crate) use fanout::Fanout;
pub use fanout::{IntoFanout, PerProtocol};
pub use info::ConnInfo;
pub use json_endpoint::JsonHeartbeat;
pub use peer::Peer;

use builder::ServerConfig;
pub(crate) use shard::guard;
use shard::{Job, Shard, ShardListener, ShardStart};

use crate::guard::{AdmissionControl, RefusalCounters, Refusals};
use crate::listeners::{Handler, HandlerTable, Host, Key};
use crate::mailbox::{mailbox, Mailbox};
use crate::proto::outgoing::{Frame, IntoFrame};
use crate::proto::Wire;
use crate::room::{RoomError, RoomOptions, Rooms};
use crate::rt::Driver;
use crate::session::SessionId;
use rustc_hash::FxHashMap;

type ListenerOp<S> = Arc<dyn Fn(&mut HandlerTable<Peer<S>>) + Send + Sync>;
/// A broadcast filter: which peers receive the frame.
pub(crate) type PeerFilter<S> = dyn Fn(&Peer<S>) -> bool + Send + Sync;

struct ShardHandle<S> {
    mailbox: Mailbox<Job<S>>,
    /// This shard's slice of the session table: connection id -> peer.
    sessions: Mutex<HashMap<u64, Peer<S>>>,
}

/// Listener changes and registrations made before start are replayed into each shard;
/// after start they are posted to every shard. One lock orders the two.
pub(super) struct Setup<S> {
    started: bool,
    listeners: Vec<(u64, ListenerOp<S>)>,
    registry: Registry,
}

pub(crate) struct ServerShared<S> {
    config: ServerConfig<S>,
    setup: Mutex<Setup<S>>,
    shards: OnceLock<Vec<ShardHandle<S>>>,
    local_addr: OnceLock<SocketAddr>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closing: AtomicBool,
    next_tid: AtomicU32,
    next_listener: AtomicU64,
    driver: OnceLock<Driver>,
    /// Every session by its public id: where a resume finds it, whichever shard it is on.
    session_index: Mutex<FxHashMap<SessionId, Peer<S>>>,
    /// Every room and its members.
    rooms: Rooms<Peer<S>>,
    /// The clients of each authenticated user.
    users: Mutex<FxHashMap<String, FxHashMap<u64, Peer<S>>>>,
    /// The connection guards, shared by the shards.
    admission: AdmissionControl,
    /// What the guards refused.
    refusals: RefusalCounters,
    /// Connections parked whole, on all shards (see [`Server::parked_connections`]).
    parked: AtomicUsize,
}

impl<S: Send + Sync + 'static> ServerShared<S> {
    fn wire(&self) -> Wire {
        match self.config.transport {
            Transport::WebSocket => Wire::WsServer,
            Transport::Tcp => Wire::Tcp,
        }
    }

    /// Server-originated transaction ids count down from `u32::MAX` (spec 11.A1).
    fn next_transaction_id(&self) -> u32 {
        self.next_tid.fetch_sub(1, Ordering::Relaxed)
    }

    fn next_listener_id(&self) -> u64 {
        self.next_listener.fetch_add(1, Ordering::Relaxed)
    }

    fn post(&self, shard: usize, job: Job<S>) {
        if let Some(handle) = self.shards.get().and_then(|s| s.get(shard)) {
            handle.mailbox.post(job);
        }
    }

    /// Posts a job from `make` to every shard; the returned receiver gets one ack per
    /// shard once its job ran.
    fn post_to_all(&self, make: impl Fn() -> Job<S>) -> Receiver<()> {
        let (ack, acks) = crossbeam_channel::bounded(self.config.shards);
        for index in 0..self.config.shards {
            let job = make();
            let ack = ack.clone();
            self.post(
                index,
                Box::new(move |shard| {
                    job(shard);
                    let _ = ack.send(());
                }),
            );
        }
        acks
    }

    /// Waits until every shard ran a change, so that listeners and registrations made
    /// from a plain thread are in effect when the call returns. On a shard thread (a
    /// handler) it does not wait: that shard's mailbox runs only after the handler, and a
    /// shard must never block on another; the change applies right after the handler.
    fn wait_acks(&self, acks: Receiver<()>) {
        if shard::on_shard_of(self) {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for _ in 0..self.config.shards {
            if acks.recv_deadline(deadline).is_err() {
                tracing::warn!("a shard did not apply a listener or registry change within 5 s");
                return;
            }
        }
    }

    fn sessions(&self, shard: usize) -> MutexGuard<'_, HashMap<u64, Peer<S>>> {
        self.shards
            .get()
            .expect("shards exist while connections do")[shard]
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The client holding session `id`, if it exists.
    fn session_peer(&self, id: &SessionId) -> Option<Peer<S>> {
        self.session_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Adds (`Some`) or removes (`None`) session `id` in the index.
    fn index_session(&self, id: SessionId, peer: Option<Peer<S>>) {
        let mut index = self.session_index.lock().unwrap_or_else(|e| e.into_inner());
        match peer {
            Some(peer) => {
                index.insert(id, peer);
            }
            None => {
                index.remove(&id);
            }
        }
    }

    /// Encodes `message` once and posts it to every shard that has members of `rooms`
    /// (except `exclude`), each member once.
    /// Returns how many clients the message was posted to.
    fn broadcast_to_rooms<F: IntoFanout>(
        &self,
        rooms: &[&str],
        message: F,
        exclude: Option<u64>,
    ) -> usize {
        let recipients = self.rooms.recipients(rooms, exclude, shard::shard_of);
        if recipients.is_empty() {
            return 0;
        }
        let frame = self.fanout(message);
        let mut count = 0;
        for (index, keys) in recipients {
            count += keys.len();
            let frame = frame.clone();
            self.post(index, Box::new(move |shard| shard.send_to(&keys, frame)));
        }
        count
    }

    /// A broadcast's frames for this server.
    fn fanout<F: IntoFanout>(&self, message: F) -> Fanout {
        message.into_fanout(self.wire(), self.json_version())
    }

    /// The version the server starts JSON messages in.
    fn json_version(&self) -> &str {
        self.config
            .json
            .router
            .as_ref()
            .map_or("1.0", |router| router.config().current())
    }

    /// Adds (`true`) or removes `peer` in its user's entry of the user index.
    fn index_user(&self, peer: &Peer<S>, add: bool) {
        let Some(user) = peer.user() else { return };
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if add {
            users
                .entry(user.to_owned())
                .or_default()
                .insert(peer.id(), peer.clone());
        } else if let Some(clients) = users.get_mut(user) {
            clients.remove(&peer.id());
            if clients.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Adds `peer` to room `room`, unless it has ended.
    fn join(&self, room: &str, peer: &Peer<S>) -> Result<(), RoomError> {
        let joined = self
            .rooms
            .join(room, peer.id(), peer.clone(), || !peer.has_ended())?;
        if let (true, Some(on_room_join)) = (joined, &self.config.on_room_join) {
            guard("on_room_join", || on_room_join(peer, room));
        }
        Ok(())
    }

    /// Removes `peer` from `room`; whether it was a member.
    fn leave(&self, room: &str, peer: &Peer<S>) -> bool {
        let left = self.rooms.leave(room, peer.id());
        if let (true, Some(on_room_leave)) = (left, &self.config.on_room_leave) {
            guard("on_room_leave", || on_room_leave(peer, room));
        }
        left
    }

    /// Removes an ended `peer` from every room.
    fn leave_all(&self, peer: &Peer<S>) {
        let left = self.rooms.leave_all(peer.id());
        if let Some(on_room_leave) = &self.config.on_room_leave {
            for room in left {
                guard("on_room_leave", || on_room_leave(peer, &room));
            }
        }
    }

    fn setup(&self) -> MutexGuard<'_, Setup<S>> {
        self.setup.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A ConnectMe server: build it with [`Server::builder`], add listeners, then
/// [`start`](Server::start) (returns once bound) or [`serve`](Server::serve) (blocks).
///
/// Cloning is cheap and every method may be called from any thread, including from
/// handlers running on the shards.
pub struct Server<S = ()> {
    shared: Arc<ServerShared<S>>,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.shared.config.endpoint)
            .field("local_addr", &self.shared.local_addr.get())
            .field("shards", &self.shared.config.shards)
            .finish_non_exhaustive()
    }
}

impl<S> Clone for Server<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Server<()> {
    /// A builder with defaults: WebSocket on 127.0.0.1:0, one shard per available core.
    pub fn builder() -> ServerBuilder<()> {
        ServerBuilder::new()
    }
}

impl<S: Send + Sync + 'static> Server<S> {
    /// Binds one `SO_REUSEPORT` listener per shard (all on the same port, also when the
    /// configured port is 0), starts the shard threads and returns.
    pub fn start(&self) -> io::Result<()> {
        let shared = &self.shared;
        let config = &shared.config;
        let driver = config.driver.resolve()?;
        let listeners = bind(&config.endpoint, config.shards)?;
        if let ShardListener::Tcp(l) = &listeners[0] {
            let _ = shared.local_addr.set(l.local_addr()?);
        }
        let mut setup = shared.setup();
        if setup.started {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "server already started",
            ));
        }
        let mut handles = Vec::new();
        let mut starts = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let (tx, inbox) = mailbox();
            handles.push(ShardHandle {
                mailbox: tx,
                sessions: Mutex::new(HashMap::new()),
            });
            let mut table = HandlerTable::default();
            for (_, op) in &setup.listeners {
                op(&mut table);
            }
            starts.push(ShardStart {
                index,
                server: shared.clone(),
                listener,
                inbox,
                listeners: table,
                registry: setup.registry.clone(),
            });
        }
        let _ = shared.shards.set(handles);
        let _ = shared.driver.set(driver);
        setup.started = true;
        drop(setup);
        let cores = if config.pin_cores {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut threads = shared.threads.lock().unwrap_or_else(|e| e.into_inner());
        for start in starts {
            let core = (!cores.is_empty()).then(|| cores[start.index % cores.len()]);
            let entries = config.ring_entries;
            let name = format!("connectme-shard-{}", start.index);
            threads.push(std::thread::Builder::new().name(name).spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let index = start.index;
                match driver.block_on(entries, Shard::run(start)) {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) | Err(error) => {
                        tracing::error!(shard = index, %error, "shard failed")
                    }
                }
            })?);
        }
        tracing::info!(endpoint = ?config.endpoint, addr = ?shared.local_addr.get(), shards = config.shards, %driver, "server running");
        Ok(())
    }

    /// Starts the server and blocks until it is closed.
    pub fn serve(&self) -> io::Result<()> {
        self.start()?;
        self.wait();
        Ok(())
    }

    /// Blocks until every shard has stopped (after [`Server::close`]).
    pub fn wait(&self) {
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// The bound TCP address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    /// How many connections and messages the [guards](ServerBuilder::guards) and the
    /// [message rate](ServerBuilder::message_rate) refused so far.
    pub fn refusals(&self) -> Refusals {
        self.shared.refusals.snapshot()
    }

    /// How many connections are parked right now: idle for a few seconds, they hold no
    /// task, no buffer and no pending read, only their socket and their state, until the
    /// client sends, a message is sent to them, or they are closed. (What an idle
    /// connection costs is measured in perf/README.md.)
    pub fn parked_connections(&self) -> usize {
        self.shared.parked.load(Ordering::Relaxed)
    }

    /// The I/O driver the shards run on (known once started).
    pub fn driver(&self) -> Option<Driver> {
        self.shared.driver.get().copied()
    }

    fn change_listeners(&self, id: u64, op: ListenerOp<S>, add: bool) {
        let mut setup = self.shared.setup();
        if add {
            setup.listeners.push((id, op.clone()));
        } else {
            setup.listeners.retain(|(existing, _)| *existing != id);
        }
        if setup.started {
            let acks = self.shared.post_to_all(move || {
                let op = op.clone();
                Box::new(move |shard: &Rc<Shard<S>>| shard.listeners.apply(move |t| op(t)))
            });
            drop(setup);
            self.shared.wait_acks(acks);
        }
    }

    /// Encodes `message` once and sends the same bytes to every connected client; a
    /// [`PerProtocol`] message is encoded once per protocol, and each client gets the one
    /// its connection speaks. (A frame a JSON-protocol client cannot read, binary or a text
    /// that is not a JSON object, is not sent to JSON clients.)
    pub fn broadcast<F: IntoFanout>(&self, message: F) {
        self.fan_out(self.shared.fanout(message), None);
    }

    /// Like [`Server::broadcast`], to the clients for which `filter` returns true.
    pub fn broadcast_where<F, P>(&self, message: F, filter: P)
    where
        F: IntoFanout,
        P: Fn(&Peer<S>) -> bool + Send + Sync + 'static,
    {
        self.fan_out(self.shared.fanout(message), Some(Arc::new(filter)));
    }

    /// Encodes a PackMe message with a fresh server transaction id and broadcasts it.
    pub fn broadcast_message<M: Message>(&self, message: M) {
        self.broadcast(Packet::new(message, self.shared.next_transaction_id()));
    }

    /// Encodes `message` for this server's wire once, to send to many peers with
    /// [`Peer::send`] without re-encoding.
    pub fn encode<F: IntoFrame>(&self, message: F) -> Frame {
        Frame(message.into_frame(self.shared.wire()))
    }

    fn fan_out(&self, frame: Fanout, filter: Option<Arc<PeerFilter<S>>>) {
        for shard in 0..self.shared.config.shards {
            let frame = frame.clone();
            let filter = filter.clone();
            self.shared.post(
                shard,
                Box::new(move |shard| shard.broadcast(frame, filter.as_deref())),
            );
        }
    }

    /// The clients (sessions, or connections without one) of an authenticated user.
    pub fn clients_of(&self, user: &str) -> Vec<Peer<S>> {
        self.shared
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .map(|clients| clients.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Closes every client of an authenticated user (their sessions end).
    pub fn close_user(&self, user: &str, code: u16, reason: &str) {
        for peer in self.clients_of(user) {
            peer.close_with(code, reason);
        }
    }

    /// Creates room `room` with `options` (or changes an existing room's options). A
    /// join creates a missing room with the defaults: unlimited, deleted when empty.
    pub fn create_room(&self, room: &str, options: RoomOptions) {
        self.shared.rooms.create(room, options);
    }

    /// Deletes room `room` (its members leave it); whether it existed.
    pub fn delete_room(&self, room: &str) -> bool {
        self.shared.rooms.delete(room)
    }

    /// A room's options and metadata, if it exists.
    pub fn room(&self, room: &str) -> Option<RoomOptions> {
        self.shared.rooms.options(room)
    }

    /// Every room's name.
    pub fn rooms(&self) -> Vec<String> {
        self.shared.rooms.names()
    }

    /// The members of room `room` (suspended sessions included).
    pub fn room_members(&self, room: &str) -> Vec<Peer<S>> {
        self.shared.rooms.members(room)
    }

    /// Sends `message` to every member of room `room`, encoded once (once per protocol,
    /// as [`Server::broadcast`] says).
    pub fn broadcast_to_room<F: IntoFanout>(&self, room: &str, message: F) {
        self.shared.broadcast_to_rooms(&[room], message, None);
    }

    /// Sends `message` to every member of any of `rooms`, each once, except `exclude`
    /// (the sender, typically).
    pub fn broadcast_to_rooms<F: IntoFanout>(
        &self,
        rooms: &[&str],
        message: F,
        exclude: Option<&Peer<S>>,
    ) {
        self.shared
            .broadcast_to_rooms(rooms, message, exclude.map(Peer::id));
    }

    /// The connected clients, across all shards.
    pub fn clients(&self) -> Vec<Peer<S>> {
        let Some(shards) = self.shared.shards.get() else {
            return Vec::new();
        };
        shards
            .iter()
            .flat_map(|s| {
                s.sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Graceful shutdown: stop accepting, close every connection with 1001 (waiting up
    /// to the close timeout for each peer's close), then stop the shards. Returns at
    /// once; [`Server::wait`] blocks until done.
    pub fn close(&self) {
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        for shard in 0..self.shared.config.shards {
            self.shared.post(shard, Box::new(|shard| shard.shutdown()));
        }
    }
}

/// The listener verbs ([`Listeners`](crate::Listeners)) of a server: server-wide
/// listeners, called after a connection's own; on a running server a change is in effect on
/// every shard when the call returns (from a handler, right after the handler returns).
impl<S: Send + Sync + 'static> Host for Server<S> {
    type Context = Peer<S>;

    fn add_handler(&self, key: Key, registry: Registry, handler: Handler<Peer<S>>) -> u64 {
        if !registry.is_empty() {
            // A collision is reported when the application registers its manifests; here
            // the first type registered for an id keeps it.
            let _ = self.add_registry(&registry);
        }
        let id = self.shared.next_listener_id();
        let op: ListenerOp<S> = Arc::new(move |table| table.add(key, id, handler.clone()));
        self.change_listeners(id, op, true);
        id
    }

    fn remove_handler(&self, key: Key, id: u64) {
        let op: ListenerOp<S> = Arc::new(move |table| {
            table.remove(key, id);
        });
        self.change_listeners(id, op, false);
    }

    fn add_registry(&self, registry: &Registry) -> Result<(), RegistryError> {
        let mut setup = self.shared.setup();
        setup.registry.merge(registry)?;
        if setup.started {
            let registry = registry.clone();
            let acks = self.shared.post_to_all(move || {
                let registry = registry.clone();
                Box::new(move |shard: &Rc<Shard<S>>| {
                    let _ = shard.registry.borrow_mut().merge(&registry);
                })
            });
            drop(setup);
            self.shared.wait_acks(acks);
        }
        Ok(())
    }
}

fn bind(endpoint: &Endpoint, shards: usize) -> io::Result<Vec<ShardListener>> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let first = bind_reuseport(*addr)?;
            let addr = first.local_addr()?;
            let mut listeners = vec![ShardListener::Tcp(first)];
            for _ in 1..shards {
                listeners.push(ShardListener::Tcp(bind_reuseport(addr)?));
            }
            Ok(listeners)
        }
        Endpoint::Unix(path) => {
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                std::fs::remove_file(path)?;
            }
            let listener = std::os::unix::net::UnixListener::bind(path)?;
            listener.set_nonblocking(true)?;
            // Every shard accepts from the same socket; the kernel hands each connection
            // to one of them.
            let mut listeners = Vec::new();
            for _ in 1..shards {
                listeners.push(ShardListener::Unix(listener.try_clone()?));
            }
            listeners.insert(0, ShardListener::Unix(listener));
            Ok(listeners)
        }
    }
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

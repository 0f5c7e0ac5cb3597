//! The game example's authoritative server and its bot clients (`examples/game.rs`), here
//! so that tests run them in-process. Messages: `packme/game.json`.
//!
//! A client sends a [`JoinRoomMessage`] and gets a [`WelcomeMessage`] (its player id, its
//! spawn point) back, then streams [`PlayerInputMessage`]s (a sequence number, a direction,
//! buttons). Every room steps its world at a fixed 30 Hz: it applies each player's latest
//! input and sends the room one [`WorldStateMessage`] (the tick number, every player's
//! position and the last input applied for it), encoded once for all its members
//! ([`Server::broadcast_to_room`]).
//!
//! # The tick: one task per room, on a shard
//!
//! A room's loop is a task spawned ([`connectme::spawn`]) on the shard of the player who
//! opened the room, while its join is handled, and it sleeps on that shard's timer
//! ([`connectme::sleep_until`]). Not a ticker thread: the engine's model is a runtime per
//! shard where anything that waits is a task, and a room costs only a few microseconds
//! per tick, so it shares a shard with connections the way a handler does, without a
//! thread or a timer of its own beside the shards'; rooms spread over the
//! shards as their first players do (the kernel spreads connections over the shards'
//! `SO_REUSEPORT` listeners). Players on other shards reach the room through its mutex
//! (an input is a store of the latest value) and the room's broadcast reaches them
//! through their shards' mailboxes, as any cross-shard send does.
//!
//! The loop does not drift: tick `n` is due at `start + n / 30 s`, computed from the
//! room's start rather than by sleeping a period after each tick, so the timer's
//! millisecond rounding and the tick's own work never add up. A tick that is late (its
//! shard was busy) runs at once and the next ones keep their deadlines, so the world
//! catches up; more than a second behind, the schedule starts again from now instead of
//! running a burst of ticks. Tick numbers always count steps of the world: they are
//! consecutive whatever the timing.
//!
//! # Join, leave, resume
//!
//! The server has sessions on (and the bots ask for them). A player is a session: it
//! joins with its first message, it leaves when its session ends ([`on_disconnect`]:
//! closed, or not resumed within the session's time to live), and it does *not* leave
//! when its connection drops. Its [`Peer`] and its [`Seat`] (which room, which player)
//! stay, the engine keeps it in the room, and the room keeps simulating it (with the last
//! input it sent). When the client resumes, the engine sends it every snapshot it missed,
//! in order, then the live ones: a resumed player keeps its place and sees no gap in the
//! tick numbers. Its inputs are sequenced the same way.
//!
//! Snapshots could go unsequenced instead: a game needs only the newest snapshot, and a
//! client back from a 10-second outage gets 300 stale ones in a burst before the current
//! one. The engine has no unsequenced send on a session today (every data message is
//! numbered and replayed), so this example replays them, which also makes "no gap" a
//! property a test can check. The replay window bounds it: at 30 Hz the default 4 096
//! messages cover 136 s (more than the session's 2 minutes), and the default 4 MiB
//! covers 2 minutes of a room of about 70 players (16 bytes each per snapshot); past
//! that a resume fails (1013) and the client starts a new session, which a bot answers
//! by joining again as a new player. For the same reason a bot does not queue inputs
//! while it is disconnected: only the latest input counts, so it sends the next one
//! once it is back.
//!
//! The [`WelcomeMessage`] is sent before the player joins the engine's room: it is queued
//! on the player's own shard at once, while room broadcasts arrive through the shard's
//! mailbox, so it always precedes the first snapshot.
//!
//! # Cost
//!
//! Measured with `cargo run --release --example game -- --shards 2` and the bots in a
//! second process on the same 2-core VM (io_uring; epoll within the noise), one room:
//!
//! | players | snapshot | tick work | server process CPU per tick |
//! |---|---|---|---|
//! | 10 | 176 B | 28 µs | 0.33 ms (1% of a core) |
//! | 100 | 1.6 KB | 33 µs | 1.8 ms (5%) |
//! | 300 | 4.8 KB | 41 µs | 5.5 ms (17%) |
//!
//! "Tick work" is the room's task: stepping, encoding once, handing the bytes to the
//! shards. The rest, growing with the players, is each player's input received and
//! snapshot written, the kernel's part included. No gap, repeat or late tick in
//! 12-second runs.
//!
//! [`on_disconnect`]: connectme::ServerBuilder::on_disconnect

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use connectme::{
    Client, ClientSessionConfig, ConnectError, Listeners, Packet, Peer, Reconnect, Server,
    SessionConfig,
};

pub use crate::proto::game::{
    JoinRoomMessage, Player, PlayerInputMessage, WelcomeMessage, WorldStateMessage,
};
use crate::proto::registry;

/// Ticks per second of every room.
pub const TICK_RATE: u8 = 30;
/// How far a player moves per tick along its input's direction.
pub const SPEED: f32 = 4.0;
/// The button that doubles the speed (bit 0 of [`PlayerInputMessage::buttons`]).
pub const BOOST: u8 = 1;
/// The world is `[0, WORLD] x [0, WORLD]`; players stop at its edges.
pub const WORLD: f32 = 1000.0;
/// The farthest a player can move in one tick.
pub const MAX_STEP: f32 = SPEED * 2.0;

/// One tick.
const PERIOD: Duration = Duration::from_nanos(1_000_000_000 / TICK_RATE as u64);

/// How far behind its schedule a room may fall before it stops catching up.
const MAX_LAG: Duration = Duration::from_secs(1);

/// When tick `n` of a room that started at `start` is due: `n / TICK_RATE` seconds later,
/// exactly (no period is added up, so nothing drifts).
fn due(start: Instant, n: u64) -> Instant {
    start + Duration::from_nanos(n * 1_000_000_000 / u64::from(TICK_RATE))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-client state (the engine's per-client state; with sessions it lives as long as
/// the session, across reconnects): which room and which player the client is.
#[derive(Default)]
pub struct Seat {
    joined: Mutex<Option<(Arc<Room>, u32)>>,
}

impl Seat {
    /// The client's player id, once it joined a room.
    pub fn player_id(&self) -> Option<u32> {
        lock(&self.joined).as_ref().map(|(_, id)| *id)
    }

    /// The client's room, once it joined one.
    pub fn room(&self) -> Option<String> {
        lock(&self.joined)
            .as_ref()
            .map(|(room, _)| room.name.clone())
    }
}

/// One room: its name (the engine room its snapshots go to) and its world.
struct Room {
    name: String,
    world: Mutex<World>,
}

/// A room's world, stepped by its tick task; inputs are stored into it from any shard.
#[derive(Default)]
struct World {
    tick: u32,
    players: BTreeMap<u32, Body>,
    /// The last player left: the tick task stops.
    closed: bool,
}

/// A player in the world.
struct Body {
    x: f32,
    y: f32,
    /// The latest input received: applied at every tick until the next one arrives.
    input: PlayerInputMessage,
    /// The sequence number of the input applied at the last tick.
    last_input: u32,
}

impl World {
    /// Applies each player's latest input: one step of the world.
    fn step(&mut self) {
        self.tick = self.tick.wrapping_add(1);
        for body in self.players.values_mut() {
            let PlayerInputMessage {
                seq,
                dx,
                dy,
                buttons,
            } = body.input;
            // Authoritative: a direction is -1, 0 or 1 whatever the client sent.
            let (dx, dy) = (f32::from(dx.signum()), f32::from(dy.signum()));
            let mut speed = if buttons & BOOST != 0 {
                MAX_STEP
            } else {
                SPEED
            };
            if dx != 0.0 && dy != 0.0 {
                speed *= std::f32::consts::FRAC_1_SQRT_2;
            }
            body.x = (body.x + dx * speed).clamp(0.0, WORLD);
            body.y = (body.y + dy * speed).clamp(0.0, WORLD);
            body.last_input = seq;
        }
    }

    fn snapshot(&self) -> WorldStateMessage {
        WorldStateMessage {
            tick: self.tick,
            players: self
                .players
                .iter()
                .map(|(&id, body)| Player {
                    id,
                    x: body.x,
                    y: body.y,
                    last_input: body.last_input,
                })
                .collect(),
        }
    }
}

/// Where player `id` appears: a grid of 16 x 16 spots in the middle of the world.
fn spawn_point(id: u32) -> (f32, f32) {
    let (column, row) = (id % 16, (id / 16) % 16);
    (
        WORLD / 4.0 + column as f32 * (WORLD / 32.0),
        WORLD / 4.0 + row as f32 * (WORLD / 32.0),
    )
}

/// Counters of the server's work, for [`Game::stats`].
#[derive(Default)]
struct Counters {
    ticks: AtomicU64,
    /// Time spent in ticks: stepping, encoding, handing the snapshot to the shards.
    tick_nanos: AtomicU64,
    snapshot_bytes: AtomicU64,
    inputs: AtomicU64,
    late_ticks: AtomicU64,
}

/// What a [`Game`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GameStats {
    /// Room ticks run, every room together.
    pub ticks: u64,
    /// Time spent in them (stepping, encoding, handing the snapshot to the shards).
    pub tick_time: Duration,
    /// Bytes of the snapshots encoded (once per tick, whatever the room's size).
    pub snapshot_bytes: u64,
    /// Player inputs received.
    pub inputs: u64,
    /// Ticks that ran more than one period late.
    pub late_ticks: u64,
    /// Rooms open now.
    pub rooms: usize,
    /// Players in them now.
    pub players: usize,
}

struct Shared {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_player: AtomicU32,
    counters: Counters,
}

/// The game server: rooms of players ticking at [`TICK_RATE`]. Cheap to clone.
#[derive(Clone)]
pub struct Game {
    server: Server<Seat>,
    shared: Arc<Shared>,
}

impl Game {
    /// Starts a game server on `addr` with `shards` shards (`None`: the engine's default,
    /// one per core), with sessions.
    pub fn start(addr: &str, shards: Option<usize>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            rooms: Mutex::new(HashMap::new()),
            next_player: AtomicU32::new(1),
            counters: Counters::default(),
        });
        let leaving = shared.clone();
        let mut builder = Server::builder()
            .addr(addr)?
            .state(|_| Seat::default())
            .sessions(SessionConfig::default())
            // A session's end, not a dropped connection: the player leaves its room.
            .on_disconnect(move |peer| {
                let joined = lock(&peer.state().joined).take();
                if let Some((room, id)) = joined {
                    tracing::info!(room = %room.name, player = id, "player left");
                    leaving.leave(&room, id);
                }
            });
        if let Some(shards) = shards {
            builder = builder.shards(shards);
        }
        let game = Self {
            server: builder.build(),
            shared,
        };
        game.server
            .register(&registry())
            .expect("the manifests' ids are distinct");
        let g = game.clone();
        game.server
            .listen(move |join: Packet<JoinRoomMessage>, peer: &Peer<Seat>| {
                g.join(&join.room, &join.name, peer);
            });
        // One server-wide listener (a listener added with `peer.listen` belongs to the
        // connection and would be gone after a resume).
        let shared = game.shared.clone();
        game.server.listen(
            move |input: Packet<PlayerInputMessage>, peer: &Peer<Seat>| {
                shared.counters.inputs.fetch_add(1, Ordering::Relaxed);
                let joined = lock(&peer.state().joined);
                let Some((room, id)) = joined.as_ref() else {
                    return;
                };
                let mut world = lock(&room.world);
                if let Some(body) = world.players.get_mut(id) {
                    if input.seq > body.input.seq {
                        body.input = input.message;
                    }
                }
            },
        );
        game.server.start()?;
        Ok(game)
    }

    /// The engine's server.
    pub fn server(&self) -> &Server<Seat> {
        &self.server
    }

    /// The client of player `id`.
    pub fn peer(&self, id: u32) -> Option<Peer<Seat>> {
        self.server
            .clients()
            .into_iter()
            .find(|peer| peer.state().player_id() == Some(id))
    }

    /// What the server did so far.
    pub fn stats(&self) -> GameStats {
        let c = &self.shared.counters;
        let rooms = lock(&self.shared.rooms);
        GameStats {
            ticks: c.ticks.load(Ordering::Relaxed),
            tick_time: Duration::from_nanos(c.tick_nanos.load(Ordering::Relaxed)),
            snapshot_bytes: c.snapshot_bytes.load(Ordering::Relaxed),
            inputs: c.inputs.load(Ordering::Relaxed),
            late_ticks: c.late_ticks.load(Ordering::Relaxed),
            rooms: rooms.len(),
            players: rooms.values().map(|r| lock(&r.world).players.len()).sum(),
        }
    }

    /// Closes the server (its clients' sessions end) and waits until it stopped.
    pub fn close(&self) {
        self.server.close();
        self.server.wait();
    }

    /// A client asks to join `room_name` (runs on the client's shard).
    fn join(&self, room_name: &str, name: &str, peer: &Peer<Seat>) {
        let mut joined = lock(&peer.state().joined);
        if joined.is_some() {
            // One room per session; the first join stands.
            return;
        }
        let room_name = match room_name.trim() {
            "" => "lobby",
            name => name,
        };
        let id = self.shared.next_player.fetch_add(1, Ordering::Relaxed);
        let (x, y) = spawn_point(id);
        // Under the rooms' lock, so that a room the last player is leaving is either
        // still open (and this player keeps it open) or already gone (and a new one
        // opens).
        let (room, opened, tick) = {
            let mut rooms = lock(&self.shared.rooms);
            let mut opened = false;
            let room = rooms
                .entry(room_name.to_owned())
                .or_insert_with(|| {
                    opened = true;
                    Arc::new(Room {
                        name: room_name.to_owned(),
                        world: Mutex::default(),
                    })
                })
                .clone();
            let mut world = lock(&room.world);
            world.players.insert(
                id,
                Body {
                    x,
                    y,
                    input: PlayerInputMessage {
                        seq: 0,
                        dx: 0,
                        dy: 0,
                        buttons: 0,
                    },
                    last_input: 0,
                },
            );
            let tick = world.tick;
            drop(world);
            (room, opened, tick)
        };
        // Before joining the engine's room: queued here at once, it precedes every
        // snapshot, which reaches this shard through its mailbox.
        peer.send_message(WelcomeMessage {
            player_id: id,
            room: room.name.as_str().into(),
            tick,
            tick_rate: TICK_RATE,
            x,
            y,
        });
        if let Err(error) = peer.join(&room.name) {
            tracing::warn!(%error, room = %room.name, "join refused");
            self.shared.leave(&room, id);
            return;
        }
        tracing::info!(room = %room.name, player = id, %name, "player joined");
        *joined = Some((room.clone(), id));
        drop(joined);
        if opened {
            connectme::spawn(run_room(self.server.clone(), room, self.shared.clone()));
        }
    }
}

impl Shared {
    /// Player `id` leaves `room`; the last one closes it.
    fn leave(&self, room: &Arc<Room>, id: u32) {
        let mut rooms = lock(&self.rooms);
        let mut world = lock(&room.world);
        world.players.remove(&id);
        if world.players.is_empty() && !world.closed {
            world.closed = true;
            if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(&room.name);
            }
        }
    }
}

/// A room's tick loop, on the shard that opened it, until its last player leaves.
async fn run_room(server: Server<Seat>, room: Arc<Room>, shared: Arc<Shared>) {
    tracing::info!(room = %room.name, "room opened");
    let counters = &shared.counters;
    let mut start = Instant::now();
    let mut n = 0u64;
    loop {
        n += 1;
        let deadline = due(start, n);
        connectme::sleep_until(deadline).await;
        let began = Instant::now();
        let mut world = lock(&room.world);
        if world.closed {
            break;
        }
        world.step();
        let packet = Packet::numbered(world.snapshot());
        counters
            .snapshot_bytes
            .fetch_add(packet.frame_len() as u64, Ordering::Relaxed);
        // Encoded once; each member's shard gets the same bytes. Sent with the world
        // still locked: a player who joins meanwhile (in the world, then in the engine's
        // room) either is in this snapshot or does not get it.
        server.broadcast_to_room(&room.name, packet);
        drop(world);
        let now = Instant::now();
        counters.ticks.fetch_add(1, Ordering::Relaxed);
        counters
            .tick_nanos
            .fetch_add((now - began).as_nanos() as u64, Ordering::Relaxed);
        let late = began.saturating_duration_since(deadline);
        if late > PERIOD {
            counters.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        if late > MAX_LAG {
            tracing::warn!(room = %room.name, ?late, "room fell behind: schedule restarted");
            start = now;
            n = 0;
        }
    }
    tracing::info!(room = %room.name, "room closed");
}

/// How a bot steers: `(bot index, input sequence number) -> (dx, dy, buttons)`.
pub type Steer = Arc<dyn Fn(usize, u32) -> (i8, i8, u8) + Send + Sync>;

/// Walks a square, one side a second, boosting on every other side.
pub fn walk_squares() -> Steer {
    Arc::new(|bot, seq| {
        let side = (seq / u32::from(TICK_RATE) + bot as u32) % 4;
        let boost = if side.is_multiple_of(2) { BOOST } else { 0 };
        match side {
            0 => (1, 0, boost),
            1 => (0, 1, boost),
            2 => (-1, 0, boost),
            _ => (0, -1, boost),
        }
    })
}

/// What a bot saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotReport {
    /// `bot-<index>`.
    pub name: String,
    /// Its player id (from the last [`WelcomeMessage`]).
    pub player_id: Option<u32>,
    /// Snapshots received.
    pub snapshots: u64,
    /// The first tick received.
    pub first_tick: Option<u32>,
    /// The last tick received.
    pub last_tick: Option<u32>,
    /// Times the tick number jumped forward by more than one.
    pub gaps: u64,
    /// Ticks skipped by those jumps.
    pub missed: u64,
    /// Snapshots whose tick was not after the previous one (a repeat or a reordering).
    pub repeats: u64,
    /// Snapshots in which its player moved farther than [`MAX_STEP`] in one tick, or was
    /// missing.
    pub teleports: u64,
    /// Its position in the first snapshot that had it.
    pub first_position: Option<(f32, f32)>,
    /// Its position in the last snapshot that had it.
    pub position: Option<(f32, f32)>,
    /// The sequence number of its last input the server applied (the last snapshot's).
    pub acked_input: u32,
    /// Inputs sent.
    pub inputs: u32,
    /// Connections opened (the first one, then one per reconnect).
    pub connects: u32,
    /// Resumes the server could not serve (a new session and player followed).
    pub resume_failures: u32,
    /// The last tick received before the connection last dropped.
    pub dropped_at: Option<u32>,
}

impl BotReport {
    fn snapshot(&mut self, state: &WorldStateMessage) {
        self.snapshots += 1;
        let consecutive = match self.last_tick {
            None => {
                self.first_tick = Some(state.tick);
                false
            }
            Some(last) if state.tick == last.wrapping_add(1) => true,
            Some(last) if state.tick > last => {
                self.gaps += 1;
                self.missed += u64::from(state.tick - last - 1);
                false
            }
            Some(_) => {
                self.repeats += 1;
                return;
            }
        };
        self.last_tick = Some(state.tick);
        let Some(id) = self.player_id else { return };
        let Some(me) = state.players.iter().find(|p| p.id == id) else {
            self.teleports += 1;
            return;
        };
        if let (true, Some((x, y))) = (consecutive, self.position) {
            if (me.x - x).hypot(me.y - y) > MAX_STEP * 1.001 {
                self.teleports += 1;
            }
        }
        self.first_position.get_or_insert((me.x, me.y));
        self.position = Some((me.x, me.y));
        self.acked_input = me.last_input;
    }
}

impl std::fmt::Display for BotReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let player = self.player_id.map_or("-".into(), |id| id.to_string());
        let ticks = match (self.first_tick, self.last_tick) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            _ => "none".into(),
        };
        let position = self
            .position
            .map_or("-".into(), |(x, y)| format!("({x:.0}, {y:.0})"));
        write!(
            f,
            "{} player {player}: {} snapshots, ticks {ticks}, {} gaps ({} missed), {} repeats, \
             {} teleports, {} inputs (last applied {}), {} connections, {} failed resumes, at {position}",
            self.name,
            self.snapshots,
            self.gaps,
            self.missed,
            self.repeats,
            self.teleports,
            self.inputs,
            self.acked_input,
            self.connects,
            self.resume_failures,
        )
    }
}

/// Bot players: each a client with sessions (a thread each) in one room; one thread sends
/// every bot's input at [`TICK_RATE`].
pub struct Bots {
    clients: Vec<Client>,
    reports: Vec<Arc<Mutex<BotReport>>>,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
}

impl Bots {
    /// Connects `n` bots to `url`, each joining `room`, and starts sending their inputs.
    /// A bot whose connection drops reconnects after 20 ms, then backs off up to 2 s.
    pub fn connect(url: &str, room: &str, n: usize, steer: Steer) -> Result<Self, ConnectError> {
        let reconnect = Reconnect::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_secs(2),
            factor: 2.0,
        };
        Self::connect_with(url, room, n, steer, reconnect)
    }

    /// [`Bots::connect`] with its own reconnect policy.
    pub fn connect_with(
        url: &str,
        room: &str,
        n: usize,
        steer: Steer,
        reconnect: Reconnect,
    ) -> Result<Self, ConnectError> {
        let mut clients = Vec::with_capacity(n);
        let mut reports = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("bot-{i}");
            let report = Arc::new(Mutex::new(BotReport {
                name: name.clone(),
                ..BotReport::default()
            }));
            let join = JoinRoomMessage {
                room: room.into(),
                name: name.as_str().into(),
            };
            let (on_connect, on_failed) = (report.clone(), report.clone());
            let on_disconnect = report.clone();
            let rejoin = join.clone();
            let client = Client::builder(url)
                .sessions(ClientSessionConfig::default())
                .reconnect(reconnect)
                .on_connect(move |_| lock(&on_connect).connects += 1)
                .on_disconnect(move |_| {
                    let mut report = lock(&on_disconnect);
                    report.dropped_at = report.last_tick;
                })
                .on_resume_failed(move |client, code| {
                    tracing::warn!(code, "resume failed: joining again as a new player");
                    let mut report = lock(&on_failed);
                    report.resume_failures += 1;
                    report.player_id = None;
                    report.position = None;
                    client.send_message(rejoin.clone());
                })
                .build()?;
            let r = report.clone();
            client.listen(move |welcome: Packet<WelcomeMessage>, _: &Client| {
                lock(&r).player_id = Some(welcome.player_id);
            });
            let r = report.clone();
            client.listen(move |state: Packet<WorldStateMessage>, _: &Client| {
                lock(&r).snapshot(&state);
            });
            client.connect_blocking()?;
            client.send_message(join);
            clients.push(client);
            reports.push(report);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let (clients, reports, stop) = (clients.clone(), reports.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bot-inputs".into())
                .spawn(move || drive(&clients, &reports, &stop, &steer))
                .expect("spawn the input thread")
        };
        Ok(Self {
            clients,
            reports,
            stop,
            driver: Some(driver),
        })
    }

    /// Each bot's report so far.
    pub fn reports(&self) -> Vec<BotReport> {
        self.reports.iter().map(|r| lock(r).clone()).collect()
    }

    /// Bot `i`'s report so far.
    pub fn report(&self, i: usize) -> BotReport {
        lock(&self.reports[i]).clone()
    }

    /// Stops the inputs, closes the clients (their sessions end: their players leave)
    /// and returns the reports.
    pub fn stop(mut self) -> Vec<BotReport> {
        self.halt();
        self.reports()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
        for client in &self.clients {
            client.close();
        }
    }
}

impl Drop for Bots {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The input thread: every bot's input at each of its deadlines, without drift.
fn drive(clients: &[Client], reports: &[Arc<Mutex<BotReport>>], stop: &AtomicBool, steer: &Steer) {
    let start = Instant::now();
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let deadline = due(start, u64::from(seq));
        if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (i, (client, report)) in clients.iter().zip(reports).enumerate() {
            // Only the latest input matters: none is queued for a reconnect.
            if !client.is_connected() {
                continue;
            }
            let (dx, dy, buttons) = steer(i, seq);
            client.send_message(PlayerInputMessage {
                seq,
                dx,
                dy,
                buttons,
            });
            lock(report).inputs += 1;
        }
    }
}

/// This process's CPU time (user + system), from `/proc/self/stat` (Linux; `None`
/// elsewhere).
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

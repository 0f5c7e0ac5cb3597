//! The engine's bench server: the bench protocol (see the crate docs) on the engine.
//!
//! `cargo run --release -p perf --bin bench-server -- --addr 127.0.0.1:PORT [--shards N] [--driver uring|epoll]
//! [--flush-delay-ms N] [--sessions] [--rooms] [--json] [--no-trim] [--no-headers]`
//!
//! The server hands memory freed by parked connections back to the system with mimalloc's
//! collect call (`ServerBuilder::trim_memory`), as a production deployment on mimalloc
//! would; `--no-trim` leaves it to mimalloc (perf/idle-ab compares the two).
//! `--no-headers` keeps no upgrade header past the handshake (`ServerBuilder::keep_headers`,
//! the bench protocol reads none); by default every header is kept, as ConnectMe's API has
//! them.
//!
//! `--sessions` turns on the session extension (`SessionConfig::default()`): clients that
//! offer `x-connectme-session` get a session, the others the plain wire. `--rooms`: a
//! client whose upgrade path is `/room/NAME` joins room `NAME` at connect, and a message
//! starting with `R` goes to every member of the sender's room (the sender included,
//! `Server::broadcast_to_room`).
//!
//! `--json`: the websocket_core JSON protocol on upgrades to `/ws` (the reference's path),
//! with one routed handler, `echo`, that returns its payload (auto-replied as
//! `echo.response` with the request's `c`): `loadgen --scenario json-echo`. Other paths
//! keep the bench protocol.

use std::time::Duration;

use clap::Parser;
use connectme::json::JsonRouter;
use connectme::{BinaryRef, ByteString, Driver, Listeners, Peer, Server, SessionConfig};
use perf::{BROADCAST_TAG, ROOM_TAG};

#[cfg(not(feature = "census"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// Built with `--features census`: the same allocator, counted (perf/idle-census).
#[cfg(feature = "census")]
#[global_allocator]
static GLOBAL: perf::census::Census<mimalloc::MiMalloc> = perf::census::Census(mimalloc::MiMalloc);

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9100")]
    addr: String,
    /// Shards; the runner pins the process to one core and uses 1.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    #[arg(long, default_value = "auto")]
    driver: Driver,
    /// Hold each connection's writes this many milliseconds (the engine's flush delay;
    /// default 0, as perf/run measures).
    #[arg(long, default_value_t = 0)]
    flush_delay_ms: u64,
    /// Offer sessions (the `x-connectme-session` extension, default configuration).
    #[arg(long)]
    sessions: bool,
    /// Rooms from the upgrade path `/room/NAME`; `R` messages go to the sender's room.
    #[arg(long)]
    rooms: bool,
    /// Serve the JSON protocol on `/ws` with an `echo` handler.
    #[arg(long)]
    json: bool,
    /// Do not trim freed memory after connections park (`ServerBuilder::trim_memory`).
    #[arg(long)]
    no_trim: bool,
    /// Keep no upgrade header past the handshake (`ServerBuilder::keep_headers(&[])`).
    #[arg(long)]
    no_headers: bool,
    /// Only check that the driver is available: print it and exit (1 if not).
    #[arg(long)]
    check_driver: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // `CENSUS_AT=0.3,6`: the allocation census at those seconds after start.
    #[cfg(feature = "census")]
    if let Ok(times) = std::env::var("CENSUS_AT") {
        let times = times.split(',').filter_map(|t| t.parse::<f64>().ok());
        perf::census::dump_at(times.map(Duration::from_secs_f64).collect());
    }
    // `CENSUS_TRACE=632,448`: where the next six allocations of each size come from, once the
    // server has started (after 0.5 s).
    #[cfg(feature = "census")]
    if let Ok(sizes) = std::env::var("CENSUS_TRACE") {
        let sizes = sizes.split(',').filter_map(|s| s.parse().ok()).collect();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            perf::census::trace_sizes(sizes, 6);
        });
    }
    if args.check_driver {
        println!("{}", args.driver.resolve()?);
        return Ok(());
    }
    let mut builder = Server::builder()
        .addr(&args.addr)?
        .shards(args.shards)
        .driver(args.driver)
        .pin_cores(false)
        .flush_delay(Duration::from_millis(args.flush_delay_ms));
    if !args.no_trim {
        // SAFETY: `mi_collect` has no preconditions; it only frees and purges the calling
        // thread's (and abandoned) mimalloc pages, which is this server's allocator.
        builder = builder.trim_memory(|| unsafe { libmimalloc_sys::mi_collect(true) });
    }
    if args.no_headers {
        builder = builder.keep_headers(&[]);
    }
    if args.sessions {
        builder = builder.sessions(SessionConfig::default());
    }
    if args.rooms {
        builder = builder.on_connect(|peer: &Peer| {
            if let Some(room) = room_of(peer) {
                let _ = peer.join(room);
            }
        });
    }
    if args.json {
        let mut router = JsonRouter::default();
        router.on("echo", |_, payload: serde_json::Value| async move {
            Ok(payload)
        });
        builder = builder.json(router);
    }
    let server = builder.build();
    let all = server.clone();
    server.listen_ref(move |data: BinaryRef, peer: &Peer| match data.first() {
        Some(&BROADCAST_TAG) => all.broadcast(data),
        Some(&ROOM_TAG) => {
            if let Some(room) = room_of(peer) {
                all.broadcast_to_room(room, data);
            }
        }
        _ => peer.send(data),
    });
    let all = server.clone();
    server.listen(
        move |text: ByteString, peer: &Peer| match text.as_bytes().first() {
            Some(&BROADCAST_TAG) => all.broadcast(text),
            Some(&ROOM_TAG) => {
                if let Some(room) = room_of(peer) {
                    all.broadcast_to_room(room, text);
                }
            }
            _ => peer.send(text),
        },
    );
    server.serve()
}

/// The room named by the client's upgrade path `/room/NAME`.
fn room_of(peer: &Peer) -> Option<&str> {
    peer.info().path().strip_prefix("/room/")
}

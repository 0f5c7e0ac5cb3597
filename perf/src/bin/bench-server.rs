//! The engine's bench server: the bench protocol (see the crate docs) on the engine.
//!
//! `cargo run --release -p perf --bin bench-server -- --addr 127.0.0.1:PORT [--shards N] [--driver uring|epoll]
//! [--flush-delay-ms N]`

use std::time::Duration;

use clap::Parser;
use connectme::{BinaryRef, ByteString, Driver, Listeners, Peer, Server};
use perf::BROADCAST_TAG;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Only check that the driver is available: print it and exit (1 if not).
    #[arg(long)]
    check_driver: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if args.check_driver {
        println!("{}", args.driver.resolve()?);
        return Ok(());
    }
    let server = Server::builder()
        .addr(&args.addr)?
        .shards(args.shards)
        .driver(args.driver)
        .pin_cores(false)
        .flush_delay(Duration::from_millis(args.flush_delay_ms))
        .build();
    let room = server.clone();
    server.listen_ref(move |data: BinaryRef, peer: &Peer| {
        if data.first() == Some(&BROADCAST_TAG) {
            room.broadcast(data);
        } else {
            peer.send(data);
        }
    });
    let room = server.clone();
    server.listen(move |text: ByteString, peer: &Peer| {
        if text.as_bytes().first() == Some(&BROADCAST_TAG) {
            room.broadcast(text);
        } else {
            peer.send(text);
        }
    });
    server.serve()
}

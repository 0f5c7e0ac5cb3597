//! An authoritative game server: rooms of players stepped at a fixed 30 Hz, each tick's
//! `WorldStateMessage` encoded once and broadcast to the room; players resume their
//! sessions after a dropped connection without losing their place or a snapshot. And bot
//! players to run against it. The server and the bots live in `examples/src/game.rs`
//! (its module docs say how the tick runs and why); the messages in
//! `examples/packme/game.json`.
//!
//! ```text
//! cargo run --release --example game                       # server on 127.0.0.1:9003
//! cargo run --release --example game -- --bots 50 --url ws://127.0.0.1:9003 --seconds 10
//! cargo run --release --example game -- --demo             # server and 3 bots, one kicked
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use examples::game::{process_cpu, walk_squares, BotReport, Bots, Game, GameStats};

#[derive(Parser)]
struct Args {
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:9003")]
    addr: String,
    /// Server shards (default: one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Run this many bot players against `--url` instead of a server.
    #[arg(long)]
    bots: Option<usize>,
    /// The server the bots play on.
    #[arg(long, default_value = "ws://127.0.0.1:9003")]
    url: String,
    /// The room the bots join.
    #[arg(long, default_value = "arena")]
    room: String,
    /// How long the bots play.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// How often the server prints its figures, in seconds (0: never).
    #[arg(long, default_value_t = 10.0)]
    stats: f64,
    /// Run a server (2 shards) and 3 bots in this process, drop one bot's connection from
    /// the server halfway, print what each bot saw, then exit.
    #[arg(long)]
    demo: bool,
}

/// Prints the bots' reports: each (up to 10 of them) and the totals.
fn summary(reports: &[BotReport], seconds: f64) {
    if reports.len() <= 10 {
        for report in reports {
            println!("{report}");
        }
    }
    let sum = |f: fn(&BotReport) -> u64| reports.iter().map(f).sum::<u64>();
    let snapshots = sum(|r| r.snapshots);
    println!(
        "{} bots, {:.1} s: {snapshots} snapshots ({:.1}/s per bot), {} gaps ({} ticks missed), \
         {} repeats, {} teleports, {} reconnects, {} failed resumes",
        reports.len(),
        seconds,
        snapshots as f64 / seconds / reports.len().max(1) as f64,
        sum(|r| r.gaps),
        sum(|r| r.missed),
        sum(|r| r.repeats),
        sum(|r| r.teleports),
        sum(|r| u64::from(r.connects.saturating_sub(1))),
        sum(|r| u64::from(r.resume_failures)),
    );
}

fn bots(args: &Args, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let began = Instant::now();
    let bots = Bots::connect(&args.url, &args.room, n, walk_squares())?;
    println!(
        "{n} bots in room {:?} on {} for {} s",
        args.room, args.url, args.seconds
    );
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let reports = bots.stop();
    summary(&reports, began.elapsed().as_secs_f64());
    Ok(())
}

/// Prints the server's figures every `every` until it stops.
fn report_stats(game: &Game, every: Duration) {
    let mut last = (game.stats(), process_cpu(), Instant::now());
    loop {
        std::thread::sleep(every);
        let now = (game.stats(), process_cpu(), Instant::now());
        let (s, t): (GameStats, GameStats) = (last.0, now.0);
        let ticks = now.0.ticks - last.0.ticks;
        let elapsed = (now.2 - last.2).as_secs_f64();
        let per_tick = |d: Duration| d.as_secs_f64() * 1e6 / ticks.max(1) as f64;
        let cpu = match (last.1, now.1) {
            (Some(a), Some(b)) => format!(
                "process CPU {:.0}% ({:.0} µs per room tick)",
                (b - a).as_secs_f64() * 100.0 / elapsed,
                per_tick(b - a)
            ),
            _ => "process CPU unknown".into(),
        };
        println!(
            "{} rooms, {} players: {:.1} ticks/s, tick work {:.1} µs, snapshot {} B, {:.0} inputs/s, \
             {} late ticks; {cpu}",
            t.rooms,
            t.players,
            ticks as f64 / elapsed,
            per_tick(t.tick_time - s.tick_time),
            (t.snapshot_bytes - s.snapshot_bytes) / ticks.max(1),
            (t.inputs - s.inputs) as f64 / elapsed,
            t.late_ticks - s.late_ticks,
        );
        last = now;
    }
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let game = Game::start("127.0.0.1:0", Some(2))?;
    let url = format!("ws://{}/", game.server().local_addr().expect("bound"));
    let began = Instant::now();
    let bots = Bots::connect(&url, "demo", 3, walk_squares())?;
    std::thread::sleep(Duration::from_millis(750));
    let kicked = bots.report(0);
    if let Some(peer) = kicked.player_id.and_then(|id| game.peer(id)) {
        println!(
            "dropping {}'s connection at tick {}",
            kicked.name,
            kicked.last_tick.unwrap_or_default()
        );
        peer.disconnect();
    }
    std::thread::sleep(Duration::from_millis(750));
    let reports = bots.stop();
    summary(&reports, began.elapsed().as_secs_f64());
    game.close();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let args = Args::parse();
    if args.demo {
        return demo();
    }
    if let Some(n) = args.bots {
        return bots(&args, n);
    }
    let game = Game::start(&args.addr, args.shards)?;
    let server = game.server();
    println!(
        "game server on ws://{} ({} driver, {} Hz rooms); try: cargo run --release --example game -- --bots 10 --url ws://{}",
        server.local_addr().expect("bound"),
        server.driver().unwrap_or_default(),
        examples::game::TICK_RATE,
        server.local_addr().expect("bound"),
    );
    if args.stats > 0.0 {
        let game = game.clone();
        let every = Duration::from_secs_f64(args.stats);
        std::thread::spawn(move || report_stats(&game, every));
    }
    server.wait();
    Ok(())
}

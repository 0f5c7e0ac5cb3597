//! The game example over loopback: a server with two shards and three bots in one room.
//! Each bot gets every tick's snapshot, in order and once, and its inputs move its player;
//! a bot whose connection the server drops resumes its session, keeps its player and its
//! place, and still gets every tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connectme::Reconnect;
use examples::game::{BotReport, Bots, Game, Steer};

/// Waits until `done` (or panics at `deadline`, showing the reports).
fn wait_until(bots: &Bots, deadline: Instant, what: &str, done: impl Fn(&[BotReport]) -> bool) {
    loop {
        let reports = bots.reports();
        if done(&reports) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {reports:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every snapshot arrived: consecutive ticks, none twice, the bot's player in each one
/// and never moving farther than a step.
fn assert_every_tick(report: &BotReport) {
    let (Some(first), Some(last)) = (report.first_tick, report.last_tick) else {
        panic!("no snapshot: {report:#?}");
    };
    assert_eq!(
        (report.gaps, report.missed, report.repeats, report.teleports),
        (0, 0, 0, 0),
        "{report:#?}"
    );
    assert_eq!(u64::from(last - first) + 1, report.snapshots, "{report:#?}");
    assert_eq!(report.resume_failures, 0, "{report:#?}");
}

#[test]
fn bots_get_every_tick_and_a_dropped_one_resumes_without_a_gap() {
    let began = Instant::now();
    let deadline = began + Duration::from_millis(2700);
    let game = Game::start("127.0.0.1:0", Some(2)).unwrap();
    let url = format!("ws://{}/", game.server().local_addr().unwrap());
    // bot-0 walks right, bot-1 stands still, bot-2 walks down.
    let steer: Steer = Arc::new(|bot, _| match bot {
        0 => (1, 0, 0),
        1 => (0, 0, 0),
        _ => (0, 1, 0),
    });
    // Back 200 ms after a drop: six ticks or so happen while it is away.
    let away = Duration::from_millis(200);
    let bots = Bots::connect_with(&url, "test", 3, steer, Reconnect::Fixed(away)).unwrap();

    // About half a second of ticks.
    wait_until(&bots, deadline, "15 snapshots each", |r| {
        r.iter().all(|r| r.snapshots >= 15 && r.acked_input > 0)
    });
    assert_eq!(game.server().room_members("test").len(), 3);
    let before = bots.reports();
    for report in &before {
        assert_every_tick(report);
        assert_eq!(report.connects, 1, "{report:#?}");
    }
    let moved = |r: &BotReport| {
        let ((x0, y0), (x, y)) = (r.first_position.unwrap(), r.position.unwrap());
        (x - x0, y - y0)
    };
    let (dx, dy) = moved(&before[0]);
    assert!(dx > 0.0 && dy == 0.0, "bot-0 walks right: {:#?}", before[0]);
    assert_eq!(
        moved(&before[1]),
        (0.0, 0.0),
        "bot-1 stands: {:#?}",
        before[1]
    );
    let (dx, dy) = moved(&before[2]);
    assert!(dx == 0.0 && dy > 0.0, "bot-2 walks down: {:#?}", before[2]);

    // The server drops bot-2's connection; its session resumes it, and the snapshots
    // sent meanwhile are replayed.
    let dropped = &before[2];
    let peer = game.peer(dropped.player_id.unwrap()).expect("bot-2's peer");
    let dropped_on = Instant::now();
    peer.disconnect();
    wait_until(&bots, deadline, "bot-2 back, 10 ticks later", |r| {
        r[2].connects == 2
            && r[2]
                .dropped_at
                .is_some_and(|at| r.iter().all(|r| r.last_tick.unwrap() >= at + 10))
    });
    assert!(dropped_on.elapsed() >= away / 2, "bot-2 was away");
    let after = bots.stop();
    for report in &after {
        assert_every_tick(report);
    }
    let resumed = &after[2];
    assert_eq!(resumed.player_id, dropped.player_id, "kept its player");
    assert_eq!(resumed.first_tick, dropped.first_tick);
    assert!(
        resumed.position.unwrap().1 > dropped.position.unwrap().1,
        "kept walking down from where it was: {resumed:#?}"
    );
    assert!(resumed.acked_input > dropped.acked_input, "{resumed:#?}");
    game.close();
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "took {:?}",
        began.elapsed()
    );
}

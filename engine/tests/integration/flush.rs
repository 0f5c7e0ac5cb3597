//! The flush delay: frames queued over several loop turns leave in one write once the
//! delay has passed; a full queue and a close are written without waiting.

use connectme::Listeners;
use std::io::Read;
use std::time::{Duration, Instant};

use bytes::Bytes;
use connectme::{Limits, Peer, Server};

use crate::support::{server, RawWs};

/// A server echoing every binary message, holding its writes for `delay`.
fn echo_server(delay: Duration) -> Server {
    echo_server_with(delay, Limits::default())
}

fn echo_server_with(delay: Duration, limits: Limits) -> Server {
    let server = server().flush_delay(delay).limits(limits).build();
    server.listen(|data: Bytes, peer: &Peer| peer.send(data));
    server.start().expect("start");
    server
}

#[test]
fn frames_queued_within_the_delay_leave_in_one_write_after_it() {
    let delay = Duration::from_millis(400);
    let server = echo_server(delay);
    let mut ws = RawWs::connect(server.local_addr().unwrap());
    let start = Instant::now();
    // Three messages in separate segments, each echoed in its own turn of the loop.
    for byte in [b'a', b'b', b'c'] {
        ws.send_frame(0x82, &[byte], true);
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut got = [0u8; 64];
    let n = ws.stream.read(&mut got).expect("echoes");
    assert!(
        start.elapsed() >= delay - Duration::from_millis(50),
        "held for the delay, got them after {:?}",
        start.elapsed()
    );
    assert_eq!(
        &got[..n],
        [0x82, 1, b'a', 0x82, 1, b'b', 0x82, 1, b'c'],
        "all three echoes in the first read"
    );
    server.close();
}

#[test]
fn a_full_queue_and_a_close_do_not_wait_for_the_delay() {
    let server = echo_server(Duration::from_secs(30));
    let mut ws = RawWs::connect(server.local_addr().unwrap());
    let start = Instant::now();
    let big = vec![7u8; 100 << 10];
    ws.send_frame(0x82, &big, true);
    let (first, payload) = ws.read_frame();
    assert_eq!((first, payload.len()), (0x82, big.len()));
    ws.send_frame(0x88, &1000u16.to_be_bytes(), true);
    assert_eq!(ws.expect_close(), 1000);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "written at once, not after 30 s: {:?}",
        start.elapsed()
    );
    server.close();
}

#[test]
fn holding_never_fills_a_small_queue_limit() {
    let limits = Limits {
        max_queued_bytes: 8 << 10,
        ..Limits::default()
    };
    let server = echo_server_with(Duration::from_secs(1), limits);
    let mut ws = RawWs::connect(server.local_addr().unwrap());
    // Three 3 KiB echoes, each in its own turn and all within the delay: held together
    // they would pass the 8 KiB limit, so the writer must flush at half of it instead of
    // closing the connection with 1008.
    for byte in [1u8, 2, 3] {
        ws.send_frame(0x82, &[byte; 3 << 10], true);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut echoed = Vec::new();
    for _ in 0..3 {
        let (first, payload) = ws.read_frame();
        assert_eq!(first, 0x82, "an echo, not a close");
        echoed.push(payload[0]);
    }
    assert_eq!(echoed, [1, 2, 3]);
    server.close();
}

//! The connection's rules, tested through [`Pair`]: a server and a client connection wired
//! in memory under simulated time. No socket and no sleep: every byte and every deadline
//! is the test's to choose.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::proto::outgoing::IntoFrame;
use crate::proto::test_frames::masked;
use crate::proto::Kind;

/// What one side received.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Session(Vec<u8>),
}

/// One end of the pair.
struct Side {
    conn: Connection,
    recv: BytesMut,
    got: Vec<Got>,
    /// Takes nothing off the wire: what the other side writes stays in flight.
    deaf: bool,
    /// Gone without a word: reads nothing, writes nothing, while the other side's writes
    /// still complete (the kernel's buffers take them).
    vanished: bool,
    /// Written by this side and not yet taken by the other (it is deaf).
    in_flight: WriteBatch,
}

impl Side {
    fn new(config: Config, now: Instant) -> Self {
        Self {
            conn: Connection::new(config, now),
            recv: BytesMut::new(),
            got: Vec::new(),
            deaf: false,
            vanished: false,
            in_flight: WriteBatch::new(),
        }
    }

    /// Takes bytes off the wire into this side, as a read would.
    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.recv.extend_from_slice(bytes);
        self.conn.received(now);
        self.poll(now);
    }

    fn poll(&mut self, now: Instant) {
        while let Some(message) = self.conn.poll_received(now, &mut self.recv) {
            self.got.push(match message {
                Received::Text(text) => Got::Text(text.to_string()),
                Received::TextInPlace(text) => Got::Text(text.as_str().to_owned()),
                Received::Binary(data) => Got::Binary(data.to_vec()),
                Received::InPlace(data) => Got::Binary(data.as_bytes().to_vec()),
                Received::Session(data) => Got::Session(data.to_vec()),
            });
        }
    }
}

/// A server and a client connection wired in memory, and the clock they share.
struct Pair {
    now: Instant,
    server: Side,
    client: Side,
    /// Every byte that crossed, per direction (server to client, client to server).
    wire: [Vec<u8>; 2],
}

fn config(wire: Wire) -> Config {
    Config {
        wire,
        limits: Limits {
            max_frame: 1024,
            max_message: 4096,
        },
        max_queued_bytes: 64 << 10,
        max_pending_queries: 8,
        timeouts: Timeouts::default(),
    }
}

impl Pair {
    fn ws() -> Self {
        Self::with(config(Wire::WsServer), config(Wire::WsClient))
    }

    /// Both sides without keepalive: time passes without pings.
    fn without_keepalive() -> Self {
        let quiet = |wire| Config {
            timeouts: Timeouts {
                keepalive: None,
                ..Timeouts::default()
            },
            ..config(wire)
        };
        Self::with(quiet(Wire::WsServer), quiet(Wire::WsClient))
    }

    fn with(server: Config, client: Config) -> Self {
        let now = Instant::now();
        Self {
            now,
            server: Side::new(server, now),
            client: Side::new(client, now),
            wire: [Vec::new(), Vec::new()],
        }
    }

    /// Moves bytes both ways until neither side has anything left to send.
    fn drive(&mut self) {
        while self.transmit(true) | self.transmit(false) {}
    }

    /// One write from the server (or the client) to the other side; whether anything moved.
    fn transmit(&mut self, from_server: bool) -> bool {
        let now = self.now;
        let (from, to, log) = if from_server {
            (&mut self.server, &mut self.client, &mut self.wire[0])
        } else {
            (&mut self.client, &mut self.server, &mut self.wire[1])
        };
        if from.vanished {
            return false;
        }
        if from.in_flight.is_empty() {
            from.conn.poll_transmit(now, &mut from.in_flight);
        }
        if from.in_flight.is_empty() || to.deaf {
            return false;
        }
        let bytes = from.in_flight.iovec_bytes();
        from.in_flight.consume(bytes.len());
        from.conn.transmitted(now, true);
        log.extend_from_slice(&bytes);
        if !to.vanished {
            to.receive(now, &bytes);
        }
        true
    }

    /// Lets `by` pass, firing every deadline that comes due on the way, in order.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [&self.server, &self.client]
                .into_iter()
                .filter(|side| !side.vanished)
                .filter_map(|side| side.conn.poll_timeout())
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    for side in [&mut self.server, &mut self.client] {
                        if !side.vanished && side.conn.poll_timeout().is_some_and(|t| t <= self.now)
                        {
                            side.conn.handle_timeout(self.now);
                        }
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
        self.drive();
    }

    /// Raw bytes from the client's side of the socket straight into the server (make the
    /// client `vanished` if its own connection would write meanwhile).
    fn client_sends_raw(&mut self, bytes: &[u8]) {
        self.wire[1].extend_from_slice(bytes);
        self.server.receive(self.now, bytes);
    }

    /// The server's bytes on the wire since the last call.
    fn take_server_wire(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.wire[0])
    }
}

/// The frames of a server's (unmasked, small) output: opcode byte and payload.
fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while wire.len() >= 2 {
        let len = usize::from(wire[1]);
        assert!(len < 126, "a small frame");
        out.push((wire[0], wire[2..2 + len].to_vec()));
        wire = &wire[2 + len..];
    }
    out
}

/// The close code of the close frame in a server's output, if there is one.
fn close_code_in(wire: &[u8]) -> Option<u16> {
    frames(wire)
        .into_iter()
        .find(|(op, _)| *op == 0x88)
        .map(|(_, payload)| u16::from_be_bytes([payload[0], payload[1]]))
}

/// An unmasked (server) close frame with `code` and no reason.
fn server_close(code: u16) -> Vec<u8> {
    let [hi, lo] = code.to_be_bytes();
    vec![0x88, 0x02, hi, lo]
}

fn text(s: &str) -> Got {
    Got::Text(s.to_owned())
}

// ---- messages ----

#[test]
fn messages_cross_both_ways_in_order_with_exact_server_bytes() {
    let mut pair = Pair::ws();
    assert!(pair.server.conn.send_message("hi"));
    assert!(pair.server.conn.send_message(&[1u8, 2, 3][..]));
    assert!(pair.client.conn.send_message("hello"));
    pair.drive();
    assert_eq!(
        pair.take_server_wire(),
        [&[0x81, 0x02, b'h', b'i'][..], &[0x82, 0x03, 1, 2, 3]].concat()
    );
    assert_eq!(pair.client.got, [text("hi"), Got::Binary(vec![1, 2, 3])]);
    assert_eq!(pair.server.got, [text("hello")]);
}

#[test]
fn fragments_with_a_ping_between_them_make_one_message_and_a_pong() {
    let mut pair = Pair::ws();
    let stream = [
        masked(false, OpCode::Text, "κό".as_bytes()),
        masked(true, OpCode::Ping, b"p"),
        masked(false, OpCode::Continuation, "σ".as_bytes()),
        masked(true, OpCode::Pong, b"unsolicited"),
        masked(true, OpCode::Continuation, "με".as_bytes()),
    ]
    .concat();
    // Every split of the stream gives the same result.
    for split in [1, 7, 13, stream.len() - 1] {
        let mut pair = Pair::ws();
        pair.client_sends_raw(&stream[..split]);
        pair.client_sends_raw(&stream[split..]);
        pair.drive();
        assert_eq!(pair.server.got, [text("κόσμε")], "split at {split}");
        assert_eq!(
            pair.take_server_wire(),
            [0x8a, 0x01, b'p'],
            "split at {split}"
        );
    }
    pair.client_sends_raw(&stream);
    pair.drive();
    assert_eq!(pair.server.got, [text("κόσμε")]);
}

// ---- the close handshake ----

#[test]
fn close_started_by_the_server_is_echoed_and_both_finish() {
    let mut pair = Pair::ws();
    pair.server.conn.close(pair.now, 1000, "bye");
    assert!(!pair.server.conn.is_open() && pair.server.conn.is_receiving());
    pair.drive();
    assert_eq!(
        pair.take_server_wire(),
        [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']
    );
    assert_eq!(pair.client.conn.end(), Some(&End::PeerClosed(Some(1000))));
    assert!(!pair.client.conn.is_receiving(), "the client is done");
    assert_eq!(pair.server.conn.end(), Some(&End::Closed(1000)));
    assert!(
        !pair.server.conn.is_receiving(),
        "the echo completed the handshake"
    );
    assert!(!pair.server.conn.is_aborted(), "a clean end flushes");
}

#[test]
fn close_started_by_the_client_is_echoed_with_its_code() {
    let mut pair = Pair::ws();
    pair.client.conn.close(pair.now, 4001, "");
    pair.drive();
    assert_eq!(pair.take_server_wire(), server_close(4001));
    assert_eq!(pair.server.conn.end(), Some(&End::PeerClosed(Some(4001))));
    assert!(!pair.client.conn.is_receiving() && !pair.server.conn.is_receiving());
}

#[test]
fn a_peer_that_never_answers_the_close_is_dropped_at_the_close_timeout() {
    let mut pair = Pair::ws();
    pair.client.vanished = true;
    pair.server.conn.close(pair.now, 1001, "");
    pair.advance(Duration::from_millis(4_999));
    assert!(!pair.server.conn.is_aborted());
    pair.advance(Duration::from_millis(1));
    assert!(pair.server.conn.is_aborted());
    assert_eq!(
        pair.server.conn.end(),
        Some(&End::Closed(1001)),
        "the first reason stays"
    );
    assert_eq!(pair.server.conn.poll_timeout(), None, "nothing more to do");
}

#[test]
fn data_after_close_is_refused() {
    let mut pair = Pair::ws();
    pair.server.conn.close(pair.now, 1000, "");
    assert!(!pair.server.conn.send_message("late"));
    pair.drive();
    assert!(pair.client.got.is_empty());
}

// ---- pings ----

#[test]
fn a_ping_is_answered_with_its_payload() {
    let mut pair = Pair::ws();
    pair.client_sends_raw(&masked(true, OpCode::Ping, b"hi"));
    pair.drive();
    assert_eq!(pair.take_server_wire(), [0x8a, 0x02, b'h', b'i']);
}

/// Pings arriving together are each answered, in order (Autobahn 2.10, 2.11).
#[test]
fn pings_arriving_together_are_each_answered() {
    let mut pair = Pair::ws();
    let pings: Vec<u8> = (0..10u8)
        .flat_map(|i| masked(true, OpCode::Ping, &[i]))
        .collect();
    pair.client_sends_raw(&pings);
    pair.drive();
    let pongs = frames(&pair.take_server_wire());
    let expected: Vec<(u8, Vec<u8>)> = (0..10u8).map(|i| (0x8a, vec![i])).collect();
    assert_eq!(pongs, expected);
}

/// A peer flooding pings while never reading gets pongs for its latest pings only: the
/// server holds at most `MAX_PENDING_PONGS` whatever the flood (issue 13: 2.46 M pings
/// once grew the server by 680 MB).
#[test]
fn a_ping_flood_from_a_peer_that_never_reads_holds_a_few_pongs() {
    let mut pair = Pair::ws();
    pair.client.deaf = true;
    for chunk in 0..10u32 {
        let mut flood = Vec::new();
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            flood.extend(masked(true, OpCode::Ping, &i.to_be_bytes()));
        }
        pair.client_sends_raw(&flood);
        pair.drive();
    }
    let pong = |i: u32| [&[0x8a, 0x04][..], &i.to_be_bytes()].concat();
    let latest = |last: u32| -> Vec<u8> {
        (last + 1 - MAX_PENDING_PONGS as u32..=last)
            .flat_map(pong)
            .collect()
    };
    let mut batch = std::mem::take(&mut pair.server.in_flight);
    assert_eq!(
        batch.iovec_bytes(),
        latest(9_999),
        "the first write took the pongs of the first read's latest pings"
    );
    let written = batch.iovec_bytes().len();
    batch.consume(written);
    pair.server.conn.poll_transmit(pair.now, &mut batch);
    assert_eq!(
        batch.iovec_bytes(),
        latest(99_999),
        "the flood's latest pongs wait"
    );
    assert!(pair.server.recv.is_empty(), "the flood itself is not kept");
}

// ---- limits ----

#[test]
fn every_limit_closes_with_its_code_and_stops_reading() {
    let too_big = masked(true, OpCode::Binary, &[0; 1025]);
    let message_too_big = [
        masked(false, OpCode::Binary, &[0; 1000]),
        masked(false, OpCode::Continuation, &[0; 1000]),
        masked(false, OpCode::Continuation, &[0; 1000]),
        masked(false, OpCode::Continuation, &[0; 1000]),
        masked(true, OpCode::Continuation, &[0; 1000]),
    ]
    .concat();
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("frame over the limit", too_big, 1009),
        ("message over the limit", message_too_big, 1009),
        (
            "invalid UTF-8",
            masked(true, OpCode::Text, &[0xce, 0xba, 0xff]),
            1007,
        ),
        ("unmasked frame", vec![0x81, 0x01, b'a'], 1002),
        (
            "reserved opcode",
            masked(true, OpCode::Binary, b"x")
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 0x83 } else { *b })
                .collect(),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut pair = Pair::ws();
        pair.client_sends_raw(&bytes);
        pair.client_sends_raw(&masked(true, OpCode::Text, b"after"));
        pair.drive();
        let wire = pair.take_server_wire();
        assert_eq!(frames(&wire).len(), 1, "{what}: only a close: {wire:?}");
        assert_eq!(close_code_in(&wire), Some(code), "{what}");
        assert!(pair.server.got.is_empty(), "{what}: nothing delivered");
        assert!(!pair.server.conn.is_receiving(), "{what}: reading stopped");
        assert!(
            matches!(pair.server.conn.end(), Some(End::Protocol(_))),
            "{what}"
        );
        assert!(
            !pair.server.conn.is_aborted(),
            "{what}: the close is flushed"
        );
    }
}

/// A slow consumer is closed with 1008, and what it was never handed is dropped rather
/// than written to a peer that does not read.
#[test]
fn a_slow_consumer_is_closed_and_its_queue_dropped() {
    let mut pair = Pair::ws();
    pair.client.deaf = true;
    let chunk = vec![7u8; 10_000];
    let mut sent = 0;
    while pair.server.conn.send_message(&chunk[..]) {
        sent += 1;
        pair.drive();
    }
    assert!(sent >= 6, "{sent} sends accepted before the 64 KiB limit");
    assert_eq!(pair.server.conn.end(), Some(&End::SlowConsumer));
    assert_eq!(pair.server.conn.queued_bytes(), 0, "the queue was dropped");
    let mut batch = std::mem::take(&mut pair.server.in_flight);
    let in_flight = batch.iovec_bytes().len();
    batch.consume(in_flight);
    pair.server.conn.poll_transmit(pair.now, &mut batch);
    let close = frames(&batch.iovec_bytes());
    assert_eq!(close.len(), 1, "only the close is left to write");
    assert_eq!(close[0].0, 0x88);
    assert_eq!(&close[0].1[..2], &1008u16.to_be_bytes());
    assert_eq!(&close[0].1[2..], b"send queue limit exceeded");
}

#[test]
fn the_queue_limit_counts_frames_written_in_place() {
    let mut small = config(Wire::WsServer);
    small.max_queued_bytes = 100;
    let mut conn = Connection::new(small, Instant::now());
    assert!(conn.send_message(&[0u8; 60][..]));
    assert_eq!(conn.queued_bytes(), 62);
    assert!(!conn.send_message(&[0u8; 60][..]), "over the limit");
    assert!(!conn.is_open(), "a slow consumer is closed");
}

// ---- keepalive and timeouts ----

#[test]
fn keepalive_pings_a_silent_peer_and_a_live_one_stays() {
    let mut pair = Pair::ws();
    pair.client.conn = Connection::new(
        Config {
            timeouts: Timeouts {
                keepalive: None,
                ..Timeouts::default()
            },
            ..config(Wire::WsClient)
        },
        pair.now,
    );
    pair.advance(Duration::from_secs(14));
    assert!(
        pair.take_server_wire().is_empty(),
        "no ping before the interval"
    );
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.take_server_wire(),
        [0x89, 0x00],
        "a ping at 15 s of silence"
    );
    pair.advance(Duration::from_secs(600));
    assert!(
        pair.server.conn.is_open(),
        "a peer that answers pings stays"
    );
    let pings = pair.take_server_wire().len() / 2;
    assert_eq!(pings, 40, "one ping per 15 s of silence");
}

#[test]
fn a_vanished_peer_is_closed_at_the_idle_timeout() {
    let mut pair = Pair::ws();
    pair.client.vanished = true;
    pair.advance(Duration::from_secs(44));
    assert!(pair.server.conn.is_open());
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.server.conn.end(), Some(&End::IdleTimeout));
    assert!(!pair.server.conn.is_receiving(), "the server stops reading");
    let frames = frames(&pair.take_server_wire());
    assert_eq!(frames[0], (0x89, vec![]), "pinged at 15 s");
    assert_eq!(frames[1].0, 0x88, "then closed");
    assert_eq!(frames[1].1, b"\x03\xe9idle timeout", "with 1001");
}

/// The client side of the same rule: a dead server is noticed and the connection ends, so
/// the client's reconnect policy can take over.
#[test]
fn a_client_notices_a_dead_server() {
    let mut pair = Pair::ws();
    pair.server.vanished = true;
    pair.advance(Duration::from_secs(45));
    assert_eq!(pair.client.conn.end(), Some(&End::IdleTimeout));
}

#[test]
fn keepalive_can_be_turned_off_and_tcp_has_none() {
    let mut off = Pair::without_keepalive();
    let mut tcp = Pair::with(config(Wire::Tcp), config(Wire::Tcp));
    for pair in [&mut off, &mut tcp] {
        pair.client.vanished = true;
        pair.advance(Duration::from_secs(3600));
        assert!(pair.server.conn.is_open());
        assert!(pair.take_server_wire().is_empty());
    }
}

/// A frame header and then silence (issue 13: 14 bytes declaring 16 MiB held memory
/// forever) is closed with 1008 at the body timeout.
#[test]
fn a_frame_that_stalls_mid_way_is_closed_at_the_body_timeout() {
    let mut pair = Pair::ws();
    let frame = masked(true, OpCode::Binary, &[5; 1000]);
    pair.client_sends_raw(&frame[..100]);
    pair.advance(Duration::from_secs(29));
    assert!(pair.server.conn.is_open());
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.server.conn.end(), Some(&End::BodyTimeout));
    assert_eq!(close_code_in(&pair.take_server_wire()), Some(1008));
}

#[test]
fn the_body_timeout_counts_from_the_first_byte_of_each_message() {
    let mut pair = Pair::ws();
    // The test writes the client's bytes itself: its own connection must not add pongs
    // in the middle of them.
    pair.client.vanished = true;
    let frame = masked(true, OpCode::Binary, &[5; 1000]);
    // Message after message, each taking 20 s and each read ending mid-frame.
    for _ in 0..5 {
        pair.client_sends_raw(&frame[..500]);
        pair.advance(Duration::from_secs(20));
        pair.client_sends_raw(&frame[500..]);
    }
    assert!(pair.server.conn.is_open(), "{:?}", pair.server.conn.end());
    assert_eq!(pair.server.got.len(), 5);
    // A fragmented message must complete in time too, however busy its fragments are.
    pair.client_sends_raw(&masked(false, OpCode::Binary, b"x"));
    for _ in 0..29 {
        pair.advance(Duration::from_secs(1));
        pair.client_sends_raw(&masked(false, OpCode::Continuation, b"x"));
    }
    assert!(pair.server.conn.is_open());
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.server.conn.end(), Some(&End::BodyTimeout));
}

/// A peer that never reads cannot hold its socket and queue: with output waiting and no
/// progress for the write timeout, the connection is aborted.
#[test]
fn a_peer_that_stops_reading_is_dropped_at_the_write_timeout() {
    let mut pair = Pair::ws();
    pair.client.deaf = true;
    assert!(pair.server.conn.send_message("unread"));
    pair.drive();
    pair.advance(Duration::from_secs(29));
    assert!(!pair.server.conn.is_aborted());
    pair.advance(Duration::from_secs(1));
    assert!(pair.server.conn.is_aborted());
    assert!(!pair.server.conn.has_transmit(), "nothing more is written");
}

#[test]
fn progress_on_writes_keeps_a_slow_reader() {
    let mut pair = Pair::without_keepalive();
    for _ in 0..10 {
        pair.client.deaf = true;
        assert!(pair.server.conn.send_message("tick"));
        pair.drive();
        pair.advance(Duration::from_secs(20));
        pair.client.deaf = false;
        pair.drive();
    }
    assert!(pair.server.conn.is_open());
    assert_eq!(pair.client.got.len(), 10);
}

// ---- queries ----

#[test]
fn a_query_answer_completes_the_query_and_is_not_delivered() {
    let mut pair = Pair::ws();
    let (reply, answer) = oneshot::channel();
    assert!(pair
        .server
        .conn
        .register_query(pair.now, 7, 0x0102_0304, reply));
    let response = [
        &0x0102_0304u32.to_be_bytes()[..],
        &7u32.to_be_bytes(),
        b"body",
    ]
    .concat();
    let other = [&0x0102_0304u32.to_be_bytes()[..], &8u32.to_be_bytes()].concat();
    pair.client.conn.send_message(&other[..]);
    pair.client.conn.send_message(&response[..]);
    pair.drive();
    assert_eq!(answer.try_recv().unwrap().unwrap(), response);
    assert_eq!(
        pair.server.got,
        [Got::Binary(other)],
        "only the non-answer is delivered"
    );
}

#[test]
fn a_query_fails_at_its_deadline() {
    let mut pair = Pair::ws();
    let (reply, answer) = oneshot::channel();
    pair.server.conn.register_query(pair.now, 1, 5, reply);
    pair.advance(Duration::from_millis(29_999));
    assert!(answer.try_recv().is_err(), "still pending");
    pair.advance(Duration::from_millis(1));
    assert_eq!(
        answer.try_recv().unwrap(),
        Err(QueryError::Timeout(Duration::from_secs(30)))
    );
}

// ---- output ----

#[test]
fn messages_written_in_place_keep_their_order_among_separate_frames() {
    let mut conn = Connection::new(config(Wire::WsServer), Instant::now());
    let big = Bytes::from(vec![b'B'; 4096]);
    assert!(conn.send_message("first"));
    assert!(conn.send_message(big.clone()));
    assert!(conn.send_message(&b"second"[..]));
    assert!(conn.send_parts("third".into_parts(Wire::WsServer)));
    let mut batch = WriteBatch::new();
    conn.poll_transmit(Instant::now(), &mut batch);
    let mut expected = "first".into_frame(Wire::WsServer).to_vec();
    expected.extend_from_slice(&big.clone().into_frame(Wire::WsServer));
    expected.extend_from_slice(&b"second"[..].into_frame(Wire::WsServer));
    expected.extend_from_slice(&"third".into_frame(Wire::WsServer));
    assert_eq!(batch.iovec_bytes(), expected);
    assert_eq!(conn.queued_bytes(), 0, "all of it was taken");
}

#[test]
fn a_shared_small_frame_is_copied_and_a_large_one_shared() {
    let mut conn = Connection::new(config(Wire::WsServer), Instant::now());
    let small = Bytes::from(vec![b'B'; 64]);
    let large = Bytes::from(vec![b'L'; 2048]);
    assert!(conn.send_shared(&small));
    assert!(
        small.is_unique(),
        "the small frame's reference count is untouched"
    );
    assert!(conn.send_shared(&large));
    assert!(!large.is_unique(), "the large frame is queued by reference");
    let mut batch = WriteBatch::new();
    conn.poll_transmit(Instant::now(), &mut batch);
    assert_eq!(batch.iovec_bytes(), [&small[..], &large[..]].concat());
}

/// A PackMe message that counts how often it is measured.
struct Measured {
    body: Vec<u8>,
    measured: std::rc::Rc<std::cell::Cell<usize>>,
}

impl packme::Encode for Measured {
    fn encoded_len(&self) -> usize {
        self.measured.set(self.measured.get() + 1);
        self.body.len()
    }
    fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
        buf.put_slice(&self.body);
    }
}

impl packme::Decode for Measured {
    const MIN_LEN: usize = 0;
    fn decode(_: &mut packme::Reader<'_>) -> Result<Self, packme::DecodeError> {
        unreachable!("only sent")
    }
}

impl packme::Message for Measured {
    const ID: u32 = 7;
    const NAME: &'static str = "Measured";
}

#[test]
fn a_packet_is_measured_once_whatever_its_size() {
    for size in [100, 4096] {
        let measured = std::rc::Rc::new(std::cell::Cell::new(0));
        let message = Measured {
            body: vec![b'm'; size],
            measured: measured.clone(),
        };
        let packet = packme::Packet::new(message, 9);
        let mut conn = Connection::new(config(Wire::WsServer), Instant::now());
        assert!(conn.send_message(&packet));
        assert_eq!(measured.get(), 1, "{size}-byte packet measured once");
        let mut batch = WriteBatch::new();
        conn.poll_transmit(Instant::now(), &mut batch);
        let mut expected = Wire::WsServer.header(Kind::Binary, size + 8).to_vec();
        expected.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 9]);
        expected.extend_from_slice(&packet.message.body);
        assert_eq!(batch.iovec_bytes(), expected, "{size}-byte packet's frame");
    }
}

/// Session control frames (the session extension) travel both ways in order with data,
/// are not counted as data messages, and are a protocol error (1002) where the extension
/// is not in use.
#[test]
fn session_frames_travel_in_order_and_are_not_counted_as_data() {
    for (server, client) in [(Wire::WsServer, Wire::WsClient), (Wire::Tcp, Wire::Tcp)] {
        let mut pair = Pair::with(config(server), config(client));
        pair.server.conn.accept_session_frames();
        pair.client.conn.accept_session_frames();
        assert!(pair.server.conn.send_session(b"created"));
        assert!(pair.server.conn.send_message(Bytes::from_static(b"one")));
        assert!(pair.client.conn.send_message(Bytes::from_static(b"two")));
        assert!(pair.client.conn.send_session(b"ack"));
        pair.drive();
        assert_eq!(
            pair.client.got,
            [
                Got::Session(b"created".to_vec()),
                Got::Binary(b"one".to_vec())
            ]
        );
        assert_eq!(
            pair.server.got,
            [Got::Binary(b"two".to_vec()), Got::Session(b"ack".to_vec())]
        );
        assert_eq!(pair.client.conn.data_received(), 1);
        assert_eq!(pair.server.conn.data_received(), 1);
        if server == Wire::WsServer {
            let wire = pair.take_server_wire();
            assert_eq!(&wire[..9], b"\x83\x07created", "opcode 0x3, unmasked");
        }
    }

    let mut pair = Pair::ws();
    pair.client.conn.accept_session_frames();
    assert!(pair.client.conn.send_session(b"ack"));
    pair.drive();
    assert_eq!(close_code_in(&pair.take_server_wire()), Some(1002));
    assert!(pair.server.got.is_empty());
}

// ---- rest (a parked connection) ----

#[test]
fn a_connection_at_rest_holds_no_working_state_and_goes_on_as_before() {
    for (server, client) in [(Wire::WsServer, Wire::WsClient), (Wire::Tcp, Wire::Tcp)] {
        let mut pair = Pair::with(config(server), config(client));
        pair.server.conn.accept_session_frames();
        pair.client.conn.accept_session_frames();
        assert!(pair.client.conn.send_message(Bytes::from_static(b"one")));
        pair.drive();
        pair.server.conn.rest();
        assert!(!pair.server.conn.is_working(), "{server:?}");
        assert!(!pair.server.conn.has_transmit());
        // Received again: the decoder made afresh still takes session frames.
        assert!(pair.client.conn.send_session(b"ack"));
        assert!(pair.client.conn.send_message(Bytes::from_static(b"two")));
        pair.drive();
        assert_eq!(
            pair.server.got,
            [
                Got::Binary(b"one".to_vec()),
                Got::Session(b"ack".to_vec()),
                Got::Binary(b"two".to_vec())
            ],
            "{server:?}"
        );
        // Sent after a rest: the queue made afresh.
        pair.server.conn.rest();
        assert!(pair.server.conn.send_message(Bytes::from_static(b"three")));
        assert_eq!(pair.server.conn.queued_bytes(), server.frame_len(5));
        pair.drive();
        assert_eq!(pair.client.got, [Got::Binary(b"three".to_vec())]);
        assert_eq!(pair.server.conn.queued_bytes(), 0);
    }
}

#[test]
fn what_is_in_flight_keeps_the_working_state() {
    // A fragmented message half received: its fragments and its body deadline stay.
    let mut pair = Pair::ws();
    pair.client_sends_raw(&masked(false, OpCode::Text, b"he"));
    pair.server.conn.rest();
    assert!(pair.server.conn.is_working());
    pair.client_sends_raw(&masked(true, OpCode::Continuation, b"llo"));
    assert_eq!(pair.server.got, [text("hello")]);

    // Output waiting for the peer to read it: the write deadline stays.
    let mut pair = Pair::ws();
    pair.client.deaf = true;
    assert!(pair.server.conn.send_message("unread"));
    pair.drive();
    pair.server.conn.rest();
    assert!(pair.server.conn.is_working());
    pair.advance(Timeouts::default().write.unwrap());
    assert_eq!(pair.server.conn.end(), Some(&End::WriteTimeout));

    // A close sent and not answered: the close deadline stays.
    let mut pair = Pair::ws();
    pair.client.vanished = true;
    pair.server.conn.close(pair.now, 1000, "bye");
    pair.drive();
    pair.server.conn.rest();
    assert!(pair.server.conn.is_working());
    pair.advance(Timeouts::default().close);
    assert!(
        pair.server.conn.is_aborted(),
        "dropped at the close timeout"
    );

    // A pong not written yet: it stays, and goes out.
    let mut pair = Pair::ws();
    pair.client_sends_raw(&masked(true, OpCode::Ping, b"hi"));
    pair.server.conn.rest();
    assert!(pair.server.conn.is_working());
    pair.drive();
    assert_eq!(
        frames(&pair.take_server_wire()),
        [(0x8A, b"hi".to_vec())],
        "the pong"
    );

    // A query not answered yet: it stays, and its deadline fires.
    let mut pair = Pair::ws();
    let (reply, answer) = oneshot::channel();
    assert!(pair.server.conn.register_query(pair.now, 1, 5, reply));
    pair.drive();
    pair.server.conn.rest();
    assert!(pair.server.conn.is_working());
    pair.advance(Timeouts::default().query);
    assert_eq!(
        answer.try_recv().unwrap(),
        Err(QueryError::Timeout(Duration::from_secs(30)))
    );
    pair.server.conn.rest();
    assert!(!pair.server.conn.is_working(), "nothing is in flight now");
}

#[test]
fn a_connection_at_rest_still_keeps_its_deadlines() {
    // Keepalive lives outside the working state: a silent peer is pinged, then closed.
    let mut pair = Pair::ws();
    pair.server.conn.rest();
    pair.client.vanished = true;
    let keepalive = Keepalive::default();
    pair.advance(keepalive.interval);
    assert!(pair.server.conn.is_working(), "the ping was queued");
    pair.advance(keepalive.timeout - keepalive.interval);
    assert_eq!(pair.server.conn.end(), Some(&End::IdleTimeout));
}

#[test]
fn the_working_state_stays_in_its_size_class() {
    // Created for every connection in use (ARCHITECTURE.md, "An idle connection"):
    // mimalloc's 224-byte class, apart from the link's and the peer's (see `Work`).
    let size = std::mem::size_of::<super::Work>();
    assert!(
        (193..=224).contains(&size),
        "the working state is {size} bytes"
    );
}

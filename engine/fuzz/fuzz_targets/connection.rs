//! The sans-IO connection driven by arbitrary input: bytes from the peer (raw, or as
//! well-formed masked frames of any opcode), time steps, sends, partial writes, closes and
//! queries, in any order. Checks that nothing panics, that the queue never holds more
//! than its limit plus one frame, that a connection that stopped receiving hands out no
//! message, that an aborted one has nothing to write, and that time always moves it
//! forward: after `handle_timeout(now)` the next deadline is later than `now`, so a driver
//! never spins. With the session extension on (a bit of the first byte), session frames
//! go both ways too.
//!
//! Input: a sequence of operations, each an op byte, a length byte and that many bytes.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use connectme::proto::WriteBatch;
use connectme::proto::{Config, Connection, Keepalive, Limits, Timeouts, Wire};
use libfuzzer_sys::fuzz_target;

const MAX_QUEUED: usize = 4096;
const MAX_FRAME: usize = 512;

fn config(wire: Wire) -> Config {
    Config {
        wire,
        limits: Limits {
            max_frame: MAX_FRAME,
            max_message: 2 * MAX_FRAME,
        },
        max_queued_bytes: MAX_QUEUED,
        max_pending_queries: 4,
        timeouts: Timeouts {
            close: Duration::from_millis(50),
            query: Duration::from_millis(80),
            body: Some(Duration::from_millis(100)),
            write: Some(Duration::from_millis(120)),
            keepalive: Some(Keepalive {
                interval: Duration::from_millis(30),
                timeout: Duration::from_millis(90),
            }),
        },
    }
}

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let key = [9, 8, 7, 6];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&wire, mut ops)) = data.split_first() else {
        return;
    };
    let wire = if wire & 1 == 0 { Wire::WsServer } else { Wire::Tcp };
    let start = Instant::now();
    let mut now = start;
    let sessions = data[0] & 2 != 0;
    let mut conn = Connection::new(config(wire), now);
    if sessions {
        conn.accept_session_frames();
    }
    let mut recv = BytesMut::new();
    let mut batch = WriteBatch::new();
    let mut fed = 0usize;
    while let [op, len, rest @ ..] = ops {
        let len = usize::from(*len).min(rest.len());
        let (arg, tail) = rest.split_at(len);
        ops = tail;
        match op % 8 {
            0 | 1 => {
                let bytes = if op % 8 == 0 || arg.is_empty() {
                    arg.to_vec()
                } else {
                    frame(arg[0], &arg[1..])
                };
                fed += bytes.len();
                recv.extend_from_slice(&bytes);
                conn.received(now);
                while let Some(message) = conn.poll_received(now, &mut recv) {
                    assert!(conn.is_receiving(), "a message after receiving stopped");
                    drop(message);
                }
                assert!(recv.len() <= fed, "the buffer holds no more than arrived");
            }
            2 => {
                let step = u64::from(arg.first().copied().unwrap_or(1));
                now += Duration::from_millis(step);
                if conn.poll_timeout().is_some_and(|at| at <= now) {
                    conn.handle_timeout(now);
                    if let Some(next) = conn.poll_timeout() {
                        assert!(next > now, "a deadline at or before now after handling it");
                    }
                }
            }
            3 => {
                if sessions && arg.first().is_some_and(|b| b & 1 == 1) {
                    let _ = conn.send_session(arg);
                } else {
                    let _ = conn.send_message(arg);
                }
                assert!(conn.queued_bytes() <= MAX_QUEUED + arg.len() + 16);
            }
            4 => {
                if batch.is_empty() {
                    conn.poll_transmit(now, &mut batch);
                }
                let written = usize::from(arg.first().copied().unwrap_or(255));
                let before = batch.chunks().map(<[u8]>::len).sum::<usize>();
                batch.consume(written);
                if before > 0 {
                    conn.transmitted(now, batch.is_empty());
                }
            }
            5 => conn.close(now, 1000 + u16::from(arg.first().copied().unwrap_or(0)), ""),
            6 => {
                let (reply, _answer) = oneshot::channel();
                let tid = u32::from(arg.first().copied().unwrap_or(0));
                let _ = conn.register_query(now, tid, 7, reply);
            }
            _ => conn.eof(),
        }
        if conn.is_aborted() {
            assert!(!conn.has_transmit(), "an aborted connection writes nothing");
        }
    }
});

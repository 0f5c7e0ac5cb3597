//! PackMe against bincode on the world-state update, in two ways that stay meaningful on
//! a noisy machine where one criterion run can swing by 20%:
//!
//! - `race`: times PackMe and bincode in alternating short rounds and reports the fastest
//!   round of each (noise only ever adds time, so the minimum is the cleanest figure), for
//!   encode, for owned decode (PackMe's `ByteString` views against `String`s) and for
//!   borrowed decode (PackMe's generated `…Ref` view against bincode into `&str`); both
//!   sides decode and drop their result inside the timing.
//! - `views`: what one string field costs each codec, apart from everything else: 60
//!   views into a frame (`Bytes::slice`, an atomic increment, and its drop, an atomic
//!   decrement) against 60 `String`s (allocate, copy, free).
//! - `count CODEC N`: decodes N times with one codec (`packme`, `packme-ref`, `bincode`,
//!   `bincode-ref`), for instruction counting under callgrind, which is repeatable
//!   whatever else the machine is doing.
//!
//! ```text
//! cargo build --release -p benches --example codec_compare
//! taskset -c 1 target/release/examples/codec_compare race
//! taskset -c 1 target/release/examples/codec_compare views
//! # the same under the engine's allocator:
//! cargo build --release -p benches --example codec_compare --features mimalloc
//! valgrind --tool=callgrind target/release/examples/codec_compare count packme 2000
//! valgrind --tool=callgrind target/release/examples/codec_compare count packme 0   # setup only
//! valgrind --tool=callgrind target/release/examples/codec_compare count bincode 2000
//! ```

use std::hint::black_box;
use std::time::Instant;

use benches::proto::world::{WorldStateMessage, WorldStateMessageRef};
use benches::serde_mirror::WorldState;
use benches::{world_state, world_state_serde};
use bytes::{Bytes, BytesMut};
use packme::{decode_frame, decode_frame_ref, Packet};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 300;
const PER_ROUND: usize = 200;

/// The same update in both encodings.
struct Fixture {
    packet: Packet<WorldStateMessage>,
    frame: Bytes,
    mirror: WorldState,
    bincode: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let message = world_state(64);
        let mirror = world_state_serde(&message);
        let packet = Packet::new(message, 7);
        let frame = packet.to_bytes();
        let bincode = bincode::serde::encode_to_vec(&mirror, config()).unwrap();
        Fixture {
            packet,
            frame,
            mirror,
            bincode,
        }
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixture = Fixture::new();
    match args.first().map(String::as_str) {
        Some("race") | None => race(&fixture),
        Some("views") => views(),
        Some("count") => {
            let codec = args.get(1).map_or("packme", String::as_str);
            // Run once with 0 rounds to subtract the setup from the count.
            let rounds = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(2000);
            count(&fixture, codec, rounds);
        }
        Some(other) => panic!("unknown mode {other} (race, views, or count CODEC N)"),
    }
}

fn decode_packme(f: &Fixture) {
    black_box(decode_frame::<WorldStateMessage>(black_box(&f.frame).clone()).unwrap());
}

fn decode_bincode(f: &Fixture) {
    let (decoded, _): (WorldState, usize) =
        bincode::serde::decode_from_slice(black_box(&f.bincode), config()).unwrap();
    black_box(decoded);
}

fn decode_packme_ref(f: &Fixture) {
    black_box(decode_frame_ref::<WorldStateMessageRef>(black_box(&f.frame)).unwrap());
}

fn decode_bincode_ref(f: &Fixture) {
    let (decoded, _): (WorldState<&str>, usize) =
        bincode::serde::borrow_decode_from_slice(black_box(&f.bincode), config()).unwrap();
    black_box(decoded);
}

fn count(f: &Fixture, codec: &str, rounds: usize) {
    let decode = match codec {
        "packme" => decode_packme,
        "packme-ref" => decode_packme_ref,
        "bincode" => decode_bincode,
        "bincode-ref" => decode_bincode_ref,
        other => panic!("unknown codec {other} (packme, packme-ref, bincode or bincode-ref)"),
    };
    for _ in 0..rounds {
        decode(f);
    }
}

fn race(f: &Fixture) {
    let decode = fastest_rounds(|| decode_packme(f), || decode_bincode(f));
    let decode_borrowed = fastest_rounds(|| decode_packme_ref(f), || decode_bincode_ref(f));
    let mut packme_buf = BytesMut::with_capacity(f.frame.len());
    let mut bincode_buf = Vec::with_capacity(f.bincode.len());
    let encode = fastest_rounds(
        || {
            packme_buf.clear();
            packme_buf.reserve(f.packet.frame_len());
            black_box(&f.packet).encode(&mut packme_buf);
            black_box(packme_buf.len());
        },
        || {
            bincode_buf.clear();
            bincode::serde::encode_into_std_write(black_box(&f.mirror), &mut bincode_buf, config())
                .unwrap();
            black_box(bincode_buf.len());
        },
    );
    for (what, (packme, bincode)) in [
        ("encode", encode),
        ("decode", decode),
        ("decode borrowed", decode_borrowed),
    ] {
        println!(
            "{what}: packme {packme:.0} ns, bincode {bincode:.0} ns, packme/bincode {:.2}",
            packme / bincode
        );
    }
}

fn views() {
    const STRINGS: usize = 60;
    const LEN: usize = 11;
    let frame = Bytes::from(vec![b'a'; STRINGS * LEN]);
    let range = |i: usize| i * LEN..(i + 1) * LEN;
    let mut views = Vec::with_capacity(STRINGS);
    let mut strings: Vec<String> = Vec::with_capacity(STRINGS);
    let (view, string) =
        fastest_rounds(
            || {
                views.extend((0..STRINGS).map(|i| black_box(&frame).slice(range(i))));
                views.clear();
            },
            || {
                strings.extend((0..STRINGS).map(|i| {
                    String::from(std::str::from_utf8(&black_box(&frame)[range(i)]).unwrap())
                }));
                strings.clear();
            },
        );
    println!(
        "{STRINGS} strings of {LEN} B: Bytes views {view:.0} ns, Strings {string:.0} ns, views/Strings {:.2}",
        view / string
    );
}

/// Alternates rounds of `a` and `b` and returns the fastest round of each, in ns per call.
fn fastest_rounds(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let round = |run: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            run();
        }
        start.elapsed().as_nanos() as f64 / PER_ROUND as f64
    };
    let (mut best_a, mut best_b) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        best_a = best_a.min(round(&mut a));
        best_b = best_b.min(round(&mut b));
    }
    (best_a, best_b)
}

//! Decodes the world-state update many times with one codec, for instruction counting
//! under callgrind, which is repeatable on a noisy machine where wall-clock benches are not:
//!
//! ```text
//! cargo build --release -p benches --example decode_count
//! valgrind --tool=callgrind target/release/examples/decode_count packme 2000
//! valgrind --tool=callgrind target/release/examples/decode_count packme 0   # setup only
//! valgrind --tool=callgrind target/release/examples/decode_count bincode 2000
//! ```

use std::hint::black_box;

use benches::proto::world::WorldStateMessage;
use benches::{world_state, world_state_serde};
use packme::{decode_frame, Packet};

fn main() {
    let codec = std::env::args().nth(1).unwrap_or_else(|| "packme".into());
    // Run once with 0 rounds to subtract the setup from the count.
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    let message = world_state(64);
    match codec.as_str() {
        "packme" => {
            let frame = Packet::new(message, 7).to_bytes();
            for _ in 0..rounds {
                black_box(decode_frame::<WorldStateMessage>(black_box(frame.clone())).unwrap());
            }
        }
        "bincode" => {
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(world_state_serde(&message), config).unwrap();
            for _ in 0..rounds {
                let (decoded, _): (benches::serde_mirror::WorldState, usize) =
                    bincode::serde::decode_from_slice(black_box(&bytes), config).unwrap();
                black_box(decoded);
            }
        }
        other => panic!("unknown codec {other} (packme or bincode)"),
    }
}

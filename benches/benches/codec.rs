//! PackMe encode and decode of a world-state update (64 entities), side by side with
//! serde + bincode 2 (standard config) and serde_json on the same data. Decode has an owned
//! row (PackMe's `ByteString` views, bincode's `String`s) and a borrowed row (PackMe's
//! generated `…Ref` view, bincode into `&str`) for each binary codec.
//!
//! `cargo bench -p benches --bench codec` (add `--features mimalloc` for the allocator the
//! engine's servers run with; the ranking of the decoders depends on it).

use benches::proto::world::{WorldStateMessage, WorldStateMessageRef};
use benches::{serde_mirror, world_state, world_state_serde};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use packme::{decode_frame, decode_frame_ref, Packet};
use std::hint::black_box;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn codec(c: &mut Criterion) {
    let message = world_state(64);
    let mirror = world_state_serde(&message);
    let packet = Packet::new(message, 7);
    let frame = packet.to_bytes();
    let bincode_config = bincode::config::standard();
    let bincode_bytes = bincode::serde::encode_to_vec(&mirror, bincode_config).unwrap();
    let json_bytes = serde_json::to_vec(&mirror).unwrap();

    let mut encode = c.benchmark_group("encode world_state(64)");
    encode.throughput(Throughput::Elements(1));
    encode.bench_function("packme", |b| {
        let mut buf = BytesMut::with_capacity(frame.len());
        b.iter(|| {
            buf.clear();
            buf.reserve(packet.frame_len());
            black_box(&packet).encode(&mut buf);
            black_box(buf.len())
        })
    });
    encode.bench_function("bincode (serde)", |b| {
        let mut buf = Vec::with_capacity(bincode_bytes.len());
        b.iter(|| {
            buf.clear();
            bincode::serde::encode_into_std_write(black_box(&mirror), &mut buf, bincode_config)
                .unwrap();
            black_box(buf.len())
        })
    });
    encode.bench_function("serde_json", |b| {
        let mut buf = Vec::with_capacity(json_bytes.len());
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&mirror)).unwrap();
            black_box(buf.len())
        })
    });
    encode.finish();

    let mut decode = c.benchmark_group("decode world_state(64)");
    decode.throughput(Throughput::Elements(1));
    decode.bench_function("packme", |b| {
        b.iter(|| decode_frame::<WorldStateMessage>(black_box(&frame).clone()).unwrap())
    });
    decode.bench_function("bincode (serde)", |b| {
        b.iter(|| {
            bincode::serde::decode_from_slice::<serde_mirror::WorldState, _>(
                black_box(&bincode_bytes),
                bincode_config,
            )
            .unwrap()
        })
    });
    decode.bench_function("packme (borrowed view)", |b| {
        b.iter(|| decode_frame_ref::<WorldStateMessageRef>(black_box(&frame)).unwrap())
    });
    decode.bench_function("bincode (serde, borrowed)", |b| {
        b.iter(|| {
            bincode::serde::borrow_decode_from_slice::<serde_mirror::WorldState<&str>, _>(
                black_box(&bincode_bytes),
                bincode_config,
            )
            .unwrap()
        })
    });
    decode.bench_function("serde_json", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_mirror::WorldState>(black_box(&json_bytes)).unwrap()
        })
    });
    decode.finish();

    println!(
        "frame sizes: packme {} B, bincode {} B, serde_json {} B",
        frame.len(),
        bincode_bytes.len(),
        json_bytes.len()
    );
}

criterion_group!(benches, codec);
criterion_main!(benches);

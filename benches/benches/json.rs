//! The JSON protocol's envelope parse (engine/src/json): serde_json against sonic-rs (SIMD)
//! on the same visitor, for a ~100 B chat message and a ~4 KiB state payload: parse,
//! validate, and borrow `e` and `c` (the payload is captured as raw text, unparsed, by each
//! library's raw-value type). Also the outbound encode of a small reply. The module is
//! compiled in here from its source file, so the bench runs exactly the engine's code
//! without making it public.
//!
//! `cargo bench -p benches --bench json` (the figures and the choice they led to, sonic-rs,
//! are in the module docs of engine/src/json/mod.rs).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

// The engine's module `json`, its files without its tests, at this crate's root (its
// files name each other as `super::`).
#[allow(dead_code)]
#[path = "../../engine/src/json/codes.rs"]
mod codes;
#[allow(dead_code)]
#[path = "../../engine/src/json/encode.rs"]
mod encode;
#[allow(dead_code)]
#[path = "../../engine/src/json/envelope.rs"]
mod envelope;

use encode::Head;
use envelope::{parse_with, EnvelopeConfig, SerdeJson, SonicRs};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SMALL: &str = r#"{"v":"1.0","e":"chat.message","p":{"room":"lobby","text":"hi all!"},"c":"a1b2c3d4","t":1764871200000}"#;

/// A state sync with players, ~4 KiB.
fn large() -> String {
    let mut players = Vec::new();
    let mut i = 0;
    loop {
        players.push(format!(
            r#"{{"id":"player-{i:04}","name":"Player \"{i}\"","x":{}.25,"y":-{}.5,"hp":{},"alive":true,"tags":["team-{}","lvl-{}"]}}"#,
            i * 37 % 1000,
            i * 11 % 500,
            100 - i % 100,
            i % 2,
            i % 30
        ));
        let text = format!(
            r#"{{"v":"1.0","e":"state.sync","p":{{"tick":123456,"players":[{}]}},"c":"0f8e2d1c-7b6a-4c3d-9e8f-1a2b3c4d5e6f","t":1764871200000}}"#,
            players.join(",")
        );
        if text.len() >= 4000 {
            return text;
        }
        i += 1;
    }
}

fn parse_group(c: &mut Criterion, name: &str, text: &str) {
    let config = EnvelopeConfig::default();
    // Both agree, and both borrow `e`.
    let a = parse_with::<SerdeJson>(text, &config).unwrap();
    let b = parse_with::<SonicRs>(text, &config).unwrap();
    assert_eq!(a, b);
    assert!(a.event_is_borrowed() && b.event_is_borrowed());

    let mut group = c.benchmark_group(format!("json envelope parse {name} ({} B)", text.len()));
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            let envelope = parse_with::<SerdeJson>(black_box(text), &config).unwrap();
            black_box((envelope.event().len(), envelope.correlation().map(str::len)))
        })
    });
    group.bench_function("sonic-rs", |b| {
        b.iter(|| {
            let envelope = parse_with::<SonicRs>(black_box(text), &config).unwrap();
            black_box((envelope.event().len(), envelope.correlation().map(str::len)))
        })
    });
    // What the engine runs: its plain one-pass scan, sonic-rs where the scan gives up.
    group.bench_function("engine (plain scan)", |b| {
        b.iter(|| {
            let envelope = envelope::parse(black_box(text), &config).unwrap();
            black_box((envelope.event().len(), envelope.correlation().map(str::len)))
        })
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    parse_group(c, "chat", SMALL);
    parse_group(c, "state", &large());
}

fn encode(c: &mut Criterion) {
    #[derive(serde::Serialize)]
    struct Reply<'a> {
        room: &'a str,
        text: &'a str,
        ok: bool,
    }
    let reply = Reply {
        room: "lobby",
        text: "hi all!",
        ok: true,
    };
    let mut group = c.benchmark_group("json envelope encode chat reply");
    group.throughput(Throughput::Elements(1));
    group.bench_function("Head::encode", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            Head::new("chat.message.response", "1.0", 1_764_871_200_000)
                .correlation(Some("a1b2c3d4"))
                .seq(Some(42))
                .encode(black_box(&reply), &mut out)
                .unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);

//! The engine's hot functions, each beside what it replaces so a regression shows:
//! frame header parsing and frame encoding against tungstenite's, unmasking against the
//! byte-at-a-time loop, UTF-8 validation against `std`, message reassembly against a
//! naive copy-per-message reader, TCP deframing against a copying deframer (the
//! reference's approach), listener dispatch against a direct call, cross-shard
//! broadcast fan-out against copying the frame for each recipient, and one connection's
//! whole echo of a small message through its state machine.
//!
//! `cargo bench -p benches --bench engine`

use std::hint::black_box;
use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use connectme::proto::frame::{build_frame, write_header, FrameHeader, OpCode};
use connectme::proto::mask::{apply_mask, apply_mask_bytewise};
use connectme::proto::tcp::TcpDeframer;
use connectme::proto::{
    Config, Connection, Incoming, Limits, MessageReader, Received, Role, Timeouts, Wire, WriteBatch,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn masked_frames(count: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        write_header(&mut out, true, OpCode::Binary, Some(KEY), size);
        let start = out.len();
        out.extend((0..size).map(|j| (i + j) as u8));
        apply_mask(&mut out[start..], KEY);
    }
    out
}

fn header_parse(c: &mut Criterion) {
    let frame = masked_frames(1, 4096);
    let mut group = c.benchmark_group("frame_header_parse");
    group.bench_function("connectme", |b| {
        b.iter(|| FrameHeader::parse(black_box(&frame)).unwrap())
    });
    group.bench_function("tungstenite", |b| {
        b.iter(|| {
            let mut cursor = Cursor::new(black_box(&frame[..]));
            tungstenite::protocol::frame::FrameHeader::parse(&mut cursor).unwrap()
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_encode_server");
    for size in [64usize, 4096] {
        let payload = Bytes::from(vec![7u8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("connectme", size), &payload, |b, p| {
            b.iter(|| {
                build_frame(OpCode::Binary, None, p.len(), |buf| {
                    buf.extend_from_slice(p)
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("tungstenite", size), &payload, |b, p| {
            b.iter(|| {
                let frame = tungstenite::protocol::frame::Frame::message(
                    p.clone(),
                    tungstenite::protocol::frame::coding::OpCode::Data(
                        tungstenite::protocol::frame::coding::Data::Binary,
                    ),
                    true,
                );
                let mut out = Vec::with_capacity(size + 14);
                frame.format(&mut out).unwrap();
                out
            })
        });
    }
    group.finish();
}

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask_4k");
    let mut data = vec![0x5au8; 4096];
    group.throughput(Throughput::Bytes(4096));
    group.bench_function("word_at_a_time", |b| {
        b.iter(|| apply_mask(black_box(&mut data), KEY))
    });
    group.bench_function("bytewise", |b| {
        b.iter(|| apply_mask_bytewise(black_box(&mut data), KEY))
    });
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8_validate_4k");
    let text = Bytes::from("κόσμε, hello world; ".repeat(4096 / 24 + 1).into_bytes());
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("simdutf8", |b| {
        b.iter(|| packme::utf8_string(black_box(text.clone())).unwrap())
    });
    group.bench_function("std", |b| {
        b.iter(|| std::str::from_utf8(black_box(&text)).unwrap().len())
    });
    group.finish();
}

/// What a simple server does: parse, copy each payload out, unmask it byte by byte.
fn naive_messages(mut data: &[u8]) -> usize {
    let mut total = 0;
    while let Ok(Some(header)) = FrameHeader::parse(data) {
        let len = header.payload_len as usize;
        let mut payload = data[header.header_len..header.header_len + len].to_vec();
        apply_mask_bytewise(&mut payload, header.mask.unwrap_or_default());
        total += black_box(payload).len();
        data = &data[header.header_len + len..];
    }
    total
}

fn reassembly(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_messages_100");
    for size in [64usize, 4096] {
        let stream = masked_frames(100, size);
        group.throughput(Throughput::Elements(100));
        // The receive buffer is filled outside the timing, as the socket read fills it.
        group.bench_with_input(
            BenchmarkId::new("connectme_zero_copy", size),
            &stream,
            |b, s| {
                b.iter_batched(
                    || BytesMut::from(&s[..]),
                    |mut buf| {
                        let mut reader = MessageReader::new(Role::Server, Limits::default());
                        let mut n = 0;
                        while let Some(message) = reader.next(&mut buf).unwrap() {
                            black_box(&message);
                            n += 1;
                        }
                        n
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_with_input(BenchmarkId::new("naive_copy", size), &stream, |b, s| {
            b.iter(|| naive_messages(s))
        });
    }
    group.finish();
}

fn tcp_frames(count: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..count {
        out.extend_from_slice(&((size + 8) as u64).to_be_bytes());
        out.extend(std::iter::repeat_n(0x41u8, size));
    }
    out
}

/// The reference's approach: keep a buffer, copy each payload out into a new array.
fn copying_deframer(data: &[u8]) -> usize {
    let mut offset = 0;
    let mut total = 0;
    while data.len() - offset >= 8 {
        let len = u64::from_be_bytes(data[offset..offset + 8].try_into().unwrap()) as usize;
        if data.len() - offset < len {
            break;
        }
        let payload = data[offset + 8..offset + len].to_vec();
        total += black_box(payload).len();
        offset += len;
    }
    total
}

fn tcp(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_deframe_100");
    for size in [64usize, 4096] {
        let stream = tcp_frames(100, size);
        group.throughput(Throughput::Elements(100));
        group.bench_with_input(BenchmarkId::new("connectme", size), &stream, |b, s| {
            b.iter_batched(
                || BytesMut::from(&s[..]),
                |mut buf| {
                    let mut deframer = TcpDeframer::new(1 << 20);
                    let mut n = 0;
                    while let Some(Incoming::Binary(payload)) = deframer.next(&mut buf).unwrap() {
                        n += black_box(payload).len();
                    }
                    n
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("copying", size), &stream, |b, s| {
            b.iter(|| copying_deframer(s))
        });
    }
    group.finish();
}

/// Counts what handlers send back.
struct Sink(std::cell::Cell<usize>);

impl connectme::Context for Sink {
    fn send<F: connectme::IntoFrame>(&self, message: F) {
        let frame = message.into_frame(connectme::proto::Wire::WsServer);
        self.0.set(self.0.get() + frame.len());
    }
}

/// The receive path after framing: classify, look up listeners, call them. Against a
/// `match` on the first byte calling a closure directly (what a hand-written server does).
fn dispatch(c: &mut Criterion) {
    use connectme::bench_api::DispatchBench;
    use connectme::Listeners;
    let mut group = c.benchmark_group("dispatch");
    let sink = Sink(std::cell::Cell::new(0));
    let table = DispatchBench::<Sink>::new(packme::Registry::new());
    table.listen(|data: Bytes, ctx: &Sink| ctx.0.set(ctx.0.get() + data.len()));
    table.listen(|text: packme::ByteString, ctx: &Sink| ctx.0.set(ctx.0.get() + text.len()));
    // Cut from a receive buffer, as the read loop does: reference-counted, so the bench
    // pays what the engine pays to hand the message around.
    let mut received = bytes::BytesMut::from(&[0x45; 128][..]);
    let binary = received.split_to(64).freeze();
    let text = packme::utf8_string(received.split_to(12).freeze()).unwrap();
    group.bench_function("connectme_binary", |b| {
        b.iter(|| table.binary(black_box(binary.clone()), &sink))
    });
    group.bench_function("connectme_text", |b| {
        b.iter(|| table.text(black_box(text.clone()), &sink))
    });
    let direct = |data: &Bytes, ctx: &Sink| ctx.0.set(ctx.0.get() + data.len());
    group.bench_function("direct_closure", |b| {
        b.iter(|| direct(black_box(&binary), &sink))
    });
    group.finish();

    // The whole hand-over of a 64-byte message that just arrived in the receive buffer:
    // to a listener that keeps it (split off, reference-counted) and to one it is lent to
    // (read in place). The gap is what `listen_ref` saves per small message.
    let mut group = c.benchmark_group("dispatch_received_64b");
    let message = [0x45u8; 64];
    let mut buf = bytes::BytesMut::with_capacity(4096);
    group.bench_function("split_off_to_bytes_listener", |b| {
        b.iter(|| {
            buf.extend_from_slice(black_box(&message));
            table.received(&mut buf, message.len(), &sink);
        })
    });
    let lent = DispatchBench::<Sink>::new(packme::Registry::new());
    lent.listen_ref(|data: connectme::BinaryRef, ctx: &Sink| ctx.0.set(ctx.0.get() + data.len()));
    group.bench_function("in_place_to_listen_ref", |b| {
        b.iter(|| {
            buf.extend_from_slice(black_box(&message));
            lent.received(&mut buf, message.len(), &sink);
        })
    });
    group.finish();

    // The same for a 64-byte text message: to a `ByteString` listener (split off) and to a
    // `String` one, which copies anyway and so is lent the text in place.
    let mut group = c.benchmark_group("dispatch_received_text_64b");
    for (name, strings) in [
        ("split_off_to_byte_string_listener", false),
        ("in_place_to_string_listener", true),
    ] {
        let texts = DispatchBench::<Sink>::new(packme::Registry::new());
        if strings {
            texts.listen(|text: String, ctx: &Sink| ctx.0.set(ctx.0.get() + text.len()));
        } else {
            texts
                .listen(|text: packme::ByteString, ctx: &Sink| ctx.0.set(ctx.0.get() + text.len()));
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.extend_from_slice(black_box(&message));
                texts.received_text(&mut buf, message.len(), &sink);
            })
        });
    }
    group.finish();

    // A PackMe world-state update (64 entities, ~200 strings) to a `Packet<M>` listener
    // (owned decode: a reference count per string) and to a `listen_view` one (strings
    // borrow the frame); each handler sums the entity names' lengths.
    use benches::proto::world::WorldStateMessage;
    let mut group = c.benchmark_group("dispatch_packme_world_state_64");
    let frame = packme::Packet::new(benches::world_state(64), 7).to_bytes();
    let owned = DispatchBench::<Sink>::new(packme::Registry::new());
    owned.listen(|state: packme::Packet<WorldStateMessage>, ctx: &Sink| {
        let names: usize = state
            .entities
            .iter()
            .flat_map(|e| &e.name)
            .map(|n| n.len())
            .sum();
        ctx.0.set(ctx.0.get() + names);
    });
    group.bench_function("packet_listener", |b| {
        b.iter(|| owned.binary(black_box(frame.clone()), &sink))
    });
    let viewed = DispatchBench::<Sink>::new(packme::Registry::new());
    viewed.listen_view::<WorldStateMessage, _, _>(|state, ctx: &Sink| {
        let names: usize = state
            .entities
            .iter()
            .flat_map(|e| e.name)
            .map(str::len)
            .sum();
        ctx.0.set(ctx.0.get() + names);
    });
    group.bench_function("listen_view", |b| {
        b.iter(|| viewed.binary(black_box(frame.clone()), &sink))
    });
    group.finish();
}

/// One broadcast to 1 000 links spread over two shard threads, through the shards'
/// mailboxes, until every link's writer has taken the frame (no sockets: what the engine
/// adds on top of the kernel's sends). Against the same fan-out copying the frame per link.
fn fan_out(c: &mut Criterion) {
    use connectme::bench_api::FanOutBench;
    const SHARDS: usize = 2;
    const LINKS: usize = 1000;
    let bench = FanOutBench::new(SHARDS, LINKS / SHARDS);
    let mut group = c.benchmark_group("broadcast_fan_out_2_shards_1000_links");
    group.throughput(Throughput::Elements(LINKS as u64));
    for size in [64usize, 4096] {
        let frame = Bytes::from(vec![b'B'; size]);
        group.bench_with_input(BenchmarkId::new("connectme", size), &frame, |b, f| {
            b.iter(|| bench.broadcast(f))
        });
        group.bench_with_input(BenchmarkId::new("copy_per_link", size), &frame, |b, f| {
            b.iter(|| bench.broadcast_copying(f))
        });
    }
    group.finish();
}

/// What the engine's sans-IO connection costs per small message, with no socket and no
/// task: a 64-byte masked frame arrives in the receive buffer, is decoded in place, sent
/// back (encoded into the queue), and the queue is handed to a write that completes.
/// This is the part of a server's user time per echoed message that is the connection's
/// own: deadlines, the receive and send state, and the queue.
fn connection_echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("connection_echo_64b");
    let payload = [0x45u8; 64];
    let frame = build_frame(OpCode::Binary, Some(KEY), payload.len(), |b| {
        b.extend_from_slice(&payload)
    });
    let config = Config {
        wire: Wire::WsServer,
        limits: Limits::default(),
        max_queued_bytes: 1 << 20,
        max_pending_queries: 16,
        timeouts: Timeouts::default(),
    };
    let now = std::time::Instant::now();
    let mut conn = Connection::new(config, now);
    let mut buf = BytesMut::with_capacity(4096);
    let mut batch = WriteBatch::new();
    group.throughput(Throughput::Elements(1));
    group.bench_function("ws_server", |b| {
        b.iter(|| {
            buf.extend_from_slice(black_box(&frame));
            conn.received(now);
            while let Some(message) = conn.poll_received(now, &mut buf) {
                if let Received::InPlace(data) = message {
                    conn.send_message(data.as_bytes());
                }
            }
            conn.poll_transmit(now, &mut batch);
            let written: usize = batch.chunks().map(<[u8]>::len).sum();
            batch.consume(black_box(written));
            conn.transmitted(now, batch.is_empty());
            black_box(conn.poll_timeout())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    header_parse,
    encode,
    unmask,
    utf8,
    reassembly,
    tcp,
    dispatch,
    fan_out,
    connection_echo
);
criterion_main!(benches);

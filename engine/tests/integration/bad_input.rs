//! Bad input closes or rejects only the offending connection; a well-behaved client on the
//! same server keeps working throughout.

use connectme::Listeners;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use bytes::Bytes;
use connectme::{ByteString, Client, Limits, Peer, Server, Transport};

use crate::support::{connect, read_head, recv, server, ws_url, RawWs, WAIT};

fn echo_server(transport: Transport) -> Server {
    let server = server()
        .transport(transport)
        .limits(Limits {
            max_frame: 1024,
            max_message: 4096,
            ..Limits::default()
        })
        .start()
        .unwrap();
    server.listen(|text: ByteString, peer: &Peer| peer.send(text));
    server.listen(|data: Bytes, peer: &Peer| peer.send(data));
    server
}

/// A client that must keep getting its echoes.
struct Witness {
    client: Client,
    rx: mpsc::Receiver<String>,
}

impl Witness {
    fn new(url: &str) -> Self {
        let (tx, rx) = mpsc::channel();
        let client = connect(url, |c| {
            c.listen(move |text: String, _: &Client| {
                let _ = tx.send(text);
            });
        });
        Self { client, rx }
    }

    fn still_works(&self, round: &str) {
        self.client.send(round);
        assert_eq!(recv(&self.rx, round), round);
    }
}

#[test]
fn protocol_violations_close_only_the_offender_with_the_right_code() {
    let server = echo_server(Transport::WebSocket);
    let addr = server.local_addr().unwrap();
    let witness = Witness::new(&ws_url(&server));
    let cases: [(&str, u8, Vec<u8>, bool, u16); 5] = [
        ("oversized frame", 0x82, vec![0; 2048], true, 1009),
        (
            "invalid UTF-8",
            0x81,
            vec![0xce, 0xba, 0xff, 0xff],
            true,
            1007,
        ),
        (
            "unmasked client frame",
            0x81,
            b"hello".to_vec(),
            false,
            1002,
        ),
        ("reserved opcode", 0x83, vec![], true, 1002),
        ("fragmented ping", 0x09, vec![], true, 1002),
    ];
    for (what, first, payload, masked, code) in cases {
        let mut raw = RawWs::connect(addr);
        raw.send_frame(first, &payload, masked);
        assert_eq!(raw.expect_close(), code, "{what}");
        witness.still_works(what);
    }
    // A message over the limit in fragments under the frame limit.
    let mut raw = RawWs::connect(addr);
    raw.send_frame(0x02, &[1; 1000], true);
    for _ in 0..4 {
        raw.send_frame(0x00, &[1; 1000], true);
    }
    raw.send_frame(0x80, &[1; 1000], true);
    assert_eq!(
        raw.expect_close(),
        1009,
        "fragmented message over the limit"
    );
    witness.still_works("after fragments");
    server.close();
    server.wait();
}

#[test]
fn bad_handshakes_get_http_errors() {
    let server = echo_server(Transport::WebSocket);
    let addr = server.local_addr().unwrap();
    let witness = Witness::new(&ws_url(&server));
    let cases: [(&str, &[u8], &str); 4] = [
        ("plain HTTP", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 "),
        ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", "HTTP/1.1 400 "),
        ("wrong version", b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", "HTTP/1.1 426 "),
        ("oversized head", &[b'A'; 9000], "HTTP/1.1 "),
    ];
    for (what, request, status) in cases {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket.write_all(request).unwrap();
        let head = read_head(&mut socket);
        assert!(head.starts_with(status), "{what}: {head:?}");
        witness.still_works(what);
    }
    server.close();
    server.wait();
}

#[test]
fn tcp_bogus_lengths_close_only_the_offender() {
    let server = echo_server(Transport::Tcp);
    let addr = server.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let good = connect(&addr.to_string(), |c| {
        c.listen(move |data: Bytes, _: &Client| {
            let _ = tx.send(data);
        });
    });
    for prefix in [u64::MAX, 7, 8 + 4097] {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket.write_all(&prefix.to_be_bytes()).unwrap();
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "length {prefix}: connection closed without a reply"
        );
        good.send(Bytes::from_static(b"ok"));
        assert_eq!(recv(&rx, "echo"), Bytes::from_static(b"ok"));
    }
    server.close();
    server.wait();
}

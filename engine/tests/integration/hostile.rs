//! One hostile client at a time, on real sockets: a ping flood from a peer that never
//! reads, a frame header and then silence, a slow consumer, a silent peer, a silent
//! server, blank lines for a request. Each must end within its timeout, hold no memory or
//! socket beyond it, and leave every other connection working.
//!
//! The timeouts are shortened so each case ends in about a second; the in-memory tests of
//! `proto::Connection` check the same rules at their default lengths.

use connectme::Listeners;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connectme::{ByteString, Client, Keepalive, Limits, Peer, Server};

use crate::support::{connect, read_head, recv, server, ws_url, RawWs, WAIT};

/// An echo server whose every timeout is short.
fn short_timeouts() -> Server {
    let server = server()
        .shards(1)
        .keepalive(None)
        .body_timeout(Some(Duration::from_millis(500)))
        .write_timeout(Some(Duration::from_millis(500)))
        .limits(Limits {
            max_queued_bytes: 256 << 10,
            ..Limits::default()
        })
        .start()
        .unwrap();
    server.listen(|text: ByteString, peer: &Peer| peer.send(text));
    server
}

/// The process's resident memory, from /proc.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Whether a process still holds the server's end of the connection from `client`: its row
/// in /proc/net/tcp has an inode (a socket the kernel keeps alone after close, to finish
/// sending, has none).
fn server_holds_socket_of(client: SocketAddr) -> bool {
    let SocketAddr::V4(client) = client else {
        panic!("IPv4 loopback expected")
    };
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(client.ip().octets()),
        client.port()
    );
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .map(|row| row.split_whitespace().collect::<Vec<_>>())
        .any(|fields| fields[2] == remote && fields[9] != "0")
}

/// A client that keeps getting its echoes while a hostile one does its worst.
fn witness(server: &Server) -> (Client, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let client = connect(&ws_url(server), |c| {
        c.listen(move |text: String, _: &Client| {
            let _ = tx.send(text);
        });
    });
    (client, rx)
}

fn still_works(witness: &(Client, mpsc::Receiver<String>), round: &str) {
    witness.0.send(round);
    assert_eq!(recv(&witness.1, round), round);
}

/// Issue 13: 2.46 M pings from a peer that never read grew the server by 680 MB and
/// stalled the other connections of its shard for up to a second (under epoll, for as long
/// as the flood lasted). Now at most one pong
/// waits (a newer ping replaces it), so memory stays flat, and the others keep their pace.
/// Once the unread pongs fill the socket, the write timeout drops the peer.
#[test]
fn a_ping_flood_from_a_peer_that_never_reads_holds_no_memory_and_stalls_nobody() {
    let server = short_timeouts();
    let witness = witness(&server);
    let mut raw = RawWs::connect(server.local_addr().unwrap());
    raw.stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let before = rss_bytes();
    let flooder = std::thread::spawn(move || {
        let ping = [0x89u8, 0x80, 1, 2, 3, 4];
        let flood: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 10_000)
            .collect();
        let started = Instant::now();
        let mut sent = 0usize;
        while started.elapsed() < Duration::from_secs(2) && sent < 5_000_000 {
            match raw.stream.write(&flood) {
                Ok(n) => sent += n / ping.len(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // Dropped at the write timeout: it never reads the pongs it asks for.
                Err(_) => break,
            }
        }
        (sent, raw)
    });
    let mut slowest = Duration::ZERO;
    let mut rounds = 0;
    while !flooder.is_finished() {
        let started = Instant::now();
        still_works(&witness, &format!("round {rounds}"));
        slowest = slowest.max(started.elapsed());
        rounds += 1;
    }
    let (sent, _raw) = flooder.join().unwrap();
    let grew = rss_bytes().saturating_sub(before);
    assert!(sent > 200_000, "the flood was sent ({sent} pings)");
    assert!(
        grew < 64 << 20,
        "the server grew by {grew} bytes for {sent} pings"
    );
    // Under epoll every read of a flood completes at once: without the read loop's pause
    // after a run of such reads, the flood held the shard for its whole length.
    assert!(
        slowest < Duration::from_millis(500),
        "another client waited {slowest:?} for an echo during the flood ({rounds} rounds)"
    );
    eprintln!("ping flood: {sent} pings, RSS +{grew} B, slowest echo meanwhile {slowest:?} in {rounds} rounds");
    server.close();
    server.wait();
}

/// Issue 13: 14 bytes declaring a 16 MiB frame held ~2 MB of memory per connection
/// forever. Now the buffer follows the bytes received and the body timeout ends it.
#[test]
fn frame_headers_then_silence_cost_little_and_are_closed_at_the_body_timeout() {
    let server = short_timeouts();
    let witness = witness(&server);
    let addr = server.local_addr().unwrap();
    let before = rss_bytes();
    let mut stalled: Vec<RawWs> = (0..100)
        .map(|_| {
            let mut raw = RawWs::connect(addr);
            let mut header = vec![0x82, 0xFF];
            header.extend_from_slice(&(16u64 << 20).to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4]);
            raw.stream.write_all(&header).unwrap();
            raw
        })
        .collect();
    // Half of a 1 MiB frame, then silence.
    let mut half = RawWs::connect(addr);
    let mut frame = vec![0x82, 0xFF];
    frame.extend_from_slice(&(1u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend(std::iter::repeat_n(7u8, 512 << 10));
    half.stream.write_all(&frame).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let grew = rss_bytes().saturating_sub(before);
    assert!(grew < 32 << 20, "100 stalled headers cost {grew} bytes");
    let started = Instant::now();
    for raw in stalled.iter_mut().chain([&mut half]) {
        assert_eq!(raw.expect_close(), 1008, "closed as a stalled message");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed at the body timeout"
    );
    still_works(&witness, "after the stalled frames");
    server.close();
    server.wait();
}

/// Issue 13: a slow consumer was closed with 1008 but its socket and whole queue were held
/// forever because the writer never timed out. Now the socket is released within the
/// close timeout (or the write timeout), whether or not the peer ever reads.
#[test]
fn a_slow_consumer_releases_its_socket_without_ever_reading() {
    let server = short_timeouts();
    let witness = witness(&server);
    let raw = RawWs::connect(server.local_addr().unwrap());
    let client_addr = raw.stream.local_addr().unwrap();
    let chunk = "x".repeat(60_000);
    // The upgrade answer may reach the client before the server lists the connection.
    crate::support::wait_for("the server to list the slow consumer", || {
        server
            .clients()
            .iter()
            .any(|p| p.info().peer_addr() == Some(client_addr))
    });
    // The server fills the peer's socket and then its queue, which closes it.
    let (tx, rx) = mpsc::channel();
    let server_side = server.clone();
    std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            let peers = server_side.clients();
            let Some(peer) = peers
                .iter()
                .find(|p| p.info().peer_addr() == Some(client_addr))
            else {
                break;
            };
            peer.send(chunk.as_str());
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = tx.send(());
    });
    recv(&rx, "the server to stop sending to the slow consumer");
    let started = Instant::now();
    crate::support::wait_for("the slow consumer's socket to be released", || {
        !server_holds_socket_of(client_addr)
    });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "released within the timeouts"
    );
    drop(raw);
    still_works(&witness, "after the slow consumer");
    server.close();
    server.wait();
}

/// A peer that answers nothing is pinged, then closed with 1001 at the keepalive timeout,
/// byte for byte.
#[test]
fn a_silent_peer_is_pinged_then_closed_by_keepalive() {
    let server = server()
        .keepalive(Some(Keepalive {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(600),
        }))
        .start()
        .unwrap();
    let mut raw = RawWs::connect(server.local_addr().unwrap());
    let started = Instant::now();
    assert_eq!(
        raw.read_frame(),
        (0x89, vec![]),
        "a ping after the interval"
    );
    let (first, payload) = raw.read_frame();
    assert_eq!((first, &payload[..]), (0x88, &b"\x03\xe9idle timeout"[..]));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(2),
        "closed at the timeout, after {elapsed:?}"
    );
    let mut rest = Vec::new();
    let _ = raw.stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "then the socket closes");
    server.close();
    server.wait();
}

/// The client notices a server that went silent (accepts, upgrades, then answers nothing,
/// not even pings) and reconnects.
#[test]
fn the_client_reconnects_when_the_server_goes_silent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let request = read_head(&mut stream);
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .trim()
                .to_owned();
            let accept = connectme::proto::handshake::accept_key(&key);
            let response = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
            stream.write_all(response.as_bytes()).unwrap();
            let _ = tx.send(Instant::now());
            held.push(stream);
        }
        std::thread::sleep(WAIT);
    });
    let client = Client::builder(&format!("ws://{addr}/"))
        .keepalive(Some(Keepalive {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(600),
        }))
        .reconnect(connectme::Reconnect::Fixed(Duration::from_millis(50)))
        .build()
        .unwrap();
    client.connect_blocking().unwrap();
    let first = recv(&rx, "the first connection");
    let second = recv(&rx, "a reconnect after the silent server timed out");
    let gap = second - first;
    assert!(
        gap >= Duration::from_millis(500) && gap < Duration::from_secs(3),
        "{gap:?}"
    );
    client.close();
}

/// Issue 13: `\r\n\r\n` as a request waited out the 10 s handshake timeout. Now it gets
/// 400 at once.
#[test]
fn blank_lines_for_a_request_get_400_at_once() {
    let server = server()
        .handshake_timeout(Duration::from_secs(10))
        .start()
        .unwrap();
    let mut socket = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    socket.write_all(b"\r\n\r\n").unwrap();
    let head = read_head(&mut socket);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "at once");
    server.close();
    server.wait();
}

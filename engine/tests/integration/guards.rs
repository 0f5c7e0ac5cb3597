//! The connection guards and the message rate on real sockets: caps answered with 503,
//! the handshake rate with 429 and `Retry-After`, a foreign `Origin` with 403 and never a
//! 101, permits given back when connections close, and a session's message budget that a
//! reconnect does not refill. Loopback is exempt from the per-address guards by default,
//! so the tests that need them turn the exemption off.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectme::{
    Client, ClientSessionConfig, Guards, Listeners, Peer, RateLimit, Reconnect, Server,
    SessionConfig,
};

use crate::support::{read_head, server, wait_for, RawWs, WAIT};

/// Sends a WebSocket upgrade request (with `extra` header lines) and reads the whole
/// response until the server closes: the head and everything after it.
fn upgrade(addr: SocketAddr, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    // A refused connection may be answered (and shut) before the request is written.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&chunk[..n]);
                if response.starts_with(b"HTTP/1.1 101 ") && response.ends_with(b"\r\n\r\n") {
                    // Upgraded: the server keeps the connection open.
                    break;
                }
            }
            Err(error) => {
                assert!(
                    !response.is_empty(),
                    "no response before the error: {error}"
                );
                break;
            }
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// The status line's code.
fn status(response: &str) -> u16 {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// Only the guards a test names, with loopback counted like any address.
fn strict() -> Guards {
    Guards {
        exempt_loopback: false,
        ..Guards::off()
    }
}

fn guarded(guards: Guards) -> Server {
    server().guards(guards).start().unwrap()
}

#[test]
fn per_ip_cap_is_503() {
    let server = guarded(Guards {
        max_connections_per_ip: Some(2),
        ..strict()
    });
    let addr = server.local_addr().unwrap();
    let held = [RawWs::connect(addr), RawWs::connect(addr)];
    let refused = upgrade(addr, "");
    assert_eq!(status(&refused), 503, "{refused}");
    assert!(refused.contains("too many connections from this address"));
    assert!(!refused.contains("Retry-After"), "{refused}");
    let refusals = server.refusals();
    assert_eq!((refusals.connections_per_ip, refusals.connections), (1, 0));
    drop(held);
    server.close();
    server.wait();
}

#[test]
fn loopback_is_exempt_by_default() {
    let server = guarded(Guards {
        max_connections_per_ip: Some(1),
        handshakes_per_ip: Some(RateLimit::per_minute(1)),
        ..Guards::default()
    });
    let addr = server.local_addr().unwrap();
    let held: Vec<_> = (0..4).map(|_| RawWs::connect(addr)).collect();
    assert_eq!(server.refusals(), Default::default());
    drop(held);
    server.close();
    server.wait();
}

#[test]
fn total_cap_is_503() {
    let server = guarded(Guards {
        max_connections: Some(2),
        ..Guards::off()
    });
    let addr = server.local_addr().unwrap();
    let held = [RawWs::connect(addr), RawWs::connect(addr)];
    let refused = upgrade(addr, "");
    assert_eq!(status(&refused), 503, "{refused}");
    assert!(refused.contains("server at its connection limit"));
    assert_eq!(server.refusals().connections, 1);
    drop(held);
    server.close();
    server.wait();
}

#[test]
fn handshake_rate_is_429_with_retry_after() {
    let server = guarded(Guards {
        handshakes_per_ip: Some(RateLimit::per_second(1).burst(2)),
        ..strict()
    });
    let addr = server.local_addr().unwrap();
    // The rate counts attempts, whether or not their connections stay open.
    drop(RawWs::connect(addr));
    drop(RawWs::connect(addr));
    let refused = upgrade(addr, "");
    assert_eq!(status(&refused), 429, "{refused}");
    assert!(refused.contains("\r\nRetry-After: 1\r\n"), "{refused}");
    assert_eq!(server.refusals().handshake_rate, 1);
    server.close();
    server.wait();
}

#[test]
fn a_foreign_origin_is_403_and_never_101() {
    let connects = Arc::new(AtomicUsize::new(0));
    let c = connects.clone();
    let server = server()
        .guards(Guards {
            allowed_origins: Some(vec!["https://game.example.com".into()]),
            ..Guards::default()
        })
        .on_connect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let refused = upgrade(addr, "Origin: https://evil.example\r\n");
    assert_eq!(status(&refused), 403, "{refused}");
    assert!(!refused.contains("101"), "{refused}");
    assert!(refused.ends_with("origin not allowed\n"), "{refused}");
    assert_eq!(server.refusals().origin, 1);
    // The listed origin (any case), and a client that is not a browser, get in.
    let allowed = upgrade(addr, "Origin: https://Game.Example.com\r\n");
    assert_eq!(status(&allowed), 101, "{allowed}");
    let no_origin = upgrade(addr, "");
    assert_eq!(status(&no_origin), 101, "{no_origin}");
    wait_for("two clients", || connects.load(Ordering::SeqCst) == 2);
    assert_eq!(server.refusals().origin, 1);
    server.close();
    server.wait();
}

#[test]
fn a_closed_connection_gives_its_permit_back() {
    let server = guarded(Guards {
        max_connections: Some(1),
        max_connections_per_ip: Some(1),
        ..strict()
    });
    let addr = server.local_addr().unwrap();
    let first = RawWs::connect(addr);
    assert_eq!(status(&upgrade(addr, "")), 503);
    drop(first);
    // The permit is given back once the server has noticed the close.
    wait_for("a new connection admitted", || {
        match status(&upgrade(addr, "")) {
            101 => true,
            503 => {
                std::thread::sleep(Duration::from_millis(10));
                false
            }
            other => panic!("unexpected status {other}"),
        }
    });
    server.close();
    server.wait();
}

#[test]
fn a_refused_tcp_connection_is_closed() {
    let server = server()
        .transport(connectme::Transport::Tcp)
        .guards(Guards {
            max_connections: Some(1),
            ..Guards::off()
        })
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let held = TcpStream::connect(addr).unwrap();
    wait_for("the first connection", || server.clients().len() == 1);
    let mut refused = TcpStream::connect(addr).unwrap();
    refused.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = refused.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "nothing is written to a refused TCP client"
    );
    assert_eq!(server.refusals().connections, 1);
    drop(held);
    server.close();
    server.wait();
}

/// Counts what the server dispatched and what the rate refused.
#[derive(Default)]
struct Counts {
    dispatched: AtomicUsize,
    limited: AtomicUsize,
    retry: Mutex<Option<Duration>>,
}

fn rated_server(limit: RateLimit, sessions: bool) -> (Server, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let mut builder = server()
        .message_rate(limit)
        .on_rate_limited(move |_, retry| {
            *c.retry.lock().unwrap() = Some(retry);
            c.limited.fetch_add(1, Ordering::SeqCst);
        });
    if sessions {
        builder = builder.sessions(SessionConfig::default());
    }
    let server = builder.build();
    let c = counts.clone();
    server.listen(move |_: bytes::Bytes, _: &Peer| {
        c.dispatched.fetch_add(1, Ordering::SeqCst);
    });
    server.start().unwrap();
    (server, counts)
}

fn message(n: u32) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&n.to_be_bytes())
}

/// A plain client over the rate: the excess is dropped and the application told.
#[test]
fn message_rate_drops_a_plain_clients_excess() {
    // A token every 10 s: nothing refills during the test.
    let (server, counts) = rated_server(RateLimit::new(0.1, 3), false);
    let client = crate::support::connect(&crate::support::ws_url(&server), |_| {});
    for n in 0..5 {
        client.send(message(n));
    }
    wait_for("two refusals", || {
        counts.limited.load(Ordering::SeqCst) == 2
    });
    assert_eq!(counts.dispatched.load(Ordering::SeqCst), 3);
    let retry = counts.retry.lock().unwrap().expect("a retry time");
    assert!(
        retry > Duration::from_secs(9) && retry <= Duration::from_secs(10),
        "{retry:?}"
    );
    assert_eq!(server.refusals().messages, 2);
    client.close();
    server.close();
    server.wait();
}

/// A session client over the rate gets its excess dropped, and reconnecting (the session
/// resumes) does not refill its budget.
#[test]
fn message_rate_survives_a_resume() {
    let (server, counts) = rated_server(RateLimit::new(0.1, 5), true);
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    let client = Client::builder(&crate::support::ws_url(&server))
        .reconnect(Reconnect::Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            factor: 2.0,
        })
        .sessions(ClientSessionConfig::default())
        .on_connect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    client.connect_blocking().unwrap();
    wait_for("session created", || client.session_id().is_some());
    let session = client.session_id();
    for n in 0..8 {
        client.send(message(n));
    }
    wait_for("three refusals", || {
        counts.limited.load(Ordering::SeqCst) == 3
    });
    assert_eq!(counts.dispatched.load(Ordering::SeqCst), 5);

    client.disconnect();
    wait_for("reconnected", || connections.load(Ordering::SeqCst) == 2);
    assert_eq!(client.session_id(), session, "the session was resumed");
    for n in 8..12 {
        client.send(message(n));
    }
    wait_for("seven refusals", || {
        counts.limited.load(Ordering::SeqCst) == 7
    });
    assert_eq!(
        counts.dispatched.load(Ordering::SeqCst),
        5,
        "the resume did not refill the budget"
    );
    assert_eq!(server.refusals().messages, 7);
    client.close();
    server.close();
    server.wait();
}

/// A session client is told on the wire: the `rate_limited` control message (tag 5, the
/// milliseconds until a message would pass), and the refused message is acknowledged as
/// received, so it is not sent again after a resume.
#[test]
fn a_session_client_is_told_rate_limited_on_the_wire() {
    let (server, counts) = rated_server(RateLimit::new(0.1, 1), true);
    let addr = server.local_addr().unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Extensions: x-connectme-session\r\n\r\n",
        )
        .unwrap();
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut ws = RawWs { stream };
    let (first, created) = ws.read_frame();
    assert_eq!((first, created[0]), (0x83, 3), "created");
    ws.send_frame(0x82, b"one", true);
    ws.send_frame(0x82, b"two", true);
    let (first, limited) = ws.read_frame();
    assert_eq!(
        (first, limited.len(), limited[0]),
        (0x83, 5, 5),
        "rate_limited"
    );
    let retry_ms = u32::from_be_bytes(limited[1..5].try_into().unwrap());
    assert!((9_000..=10_000).contains(&retry_ms), "{retry_ms}");
    assert_eq!(counts.dispatched.load(Ordering::SeqCst), 1);
    assert_eq!(counts.limited.load(Ordering::SeqCst), 1);
    server.close();
    server.wait();
}

/// Exempt PackMe messages pass whatever the budget, and take nothing from it.
#[test]
fn exempt_messages_pass_the_message_rate() {
    const HEARTBEAT: u32 = 0x0A0B_0C0D;
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let server = server()
        .message_rate(RateLimit::new(0.1, 2))
        .message_rate_exempt([HEARTBEAT])
        .on_rate_limited(move |_, _| {
            c.limited.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let c = counts.clone();
    server.listen(move |_: bytes::Bytes, _: &Peer| {
        c.dispatched.fetch_add(1, Ordering::SeqCst);
    });
    server.start().unwrap();
    let client = crate::support::connect(&crate::support::ws_url(&server), |_| {});
    let heartbeat = || {
        let mut frame = HEARTBEAT.to_be_bytes().to_vec();
        frame.extend_from_slice(&7u32.to_be_bytes());
        bytes::Bytes::from(frame)
    };
    client.send(message(1));
    for _ in 0..5 {
        client.send(heartbeat());
    }
    client.send(message(2));
    client.send(message(3));
    wait_for("one refusal", || counts.limited.load(Ordering::SeqCst) == 1);
    assert_eq!(
        counts.dispatched.load(Ordering::SeqCst),
        7,
        "2 counted + 5 exempt"
    );
    client.close();
    server.close();
    server.wait();
}

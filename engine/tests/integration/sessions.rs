//! Sessions that survive reconnects: every message either way arrives once and in order
//! across connections killed at random points (by the client, by the server, or left
//! half-open or blackholed behind a proxy), over WebSocket and ConnectMe TCP, on two
//! shards.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use connectme::{
    resume_error, Client, ClientSessionConfig, Keepalive, Listeners, Peer, Reconnect,
    SessionConfig, Transport,
};

use crate::support::{recv, server, wait_for, WAIT};

/// Pings after 50 ms of silence, gone after 150 ms: a blackholed connection is found
/// within a test's time.
const SHORT_KEEPALIVE: Keepalive = Keepalive {
    interval: Duration::from_millis(50),
    timeout: Duration::from_millis(150),
};

fn fast_reconnect() -> Reconnect {
    Reconnect::Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        factor: 2.0,
    }
}

/// A TCP proxy in front of the server that can break the current connection in two
/// ways the endpoints cannot tell from a network failure: cut the client's side while the
/// server's stays open and silent (to the server the old connection is half-open, and it
/// learns of the reconnect only from the resume), or swallow everything both ways without
/// closing anything (both sides learn only by their keepalive timeouts).
struct Proxy {
    addr: SocketAddr,
    current: Arc<Mutex<Option<Piped>>>,
    zombies: Arc<Mutex<Vec<TcpStream>>>,
}

/// The current connection through the proxy.
struct Piped {
    client: TcpStream,
    upstream: TcpStream,
    faults: Arc<Faults>,
}

/// What the proxy does to a connection instead of forwarding faithfully.
#[derive(Default)]
struct Faults {
    /// Both pumps swallow what they read.
    swallow: AtomicBool,
    /// The client's side was cut on purpose: the end of it is not passed on.
    cut: AtomicBool,
}

impl Proxy {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let current = Arc::new(Mutex::new(None));
        let zombies = Arc::new(Mutex::new(Vec::new()));
        let slot = current.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(target) else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let faults = Arc::new(Faults::default());
                *slot.lock().unwrap() = Some(Piped {
                    client: client.try_clone().unwrap(),
                    upstream: upstream.try_clone().unwrap(),
                    faults: faults.clone(),
                });
                pump(
                    client.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                    faults.clone(),
                );
                pump(upstream, client, faults);
            }
        });
        Self {
            addr,
            current,
            zombies,
        }
    }

    /// Cuts the client's side; the server's side stays open, unread and unwritten.
    fn half_open(&self) {
        if let Some(piped) = self.current.lock().unwrap().take() {
            piped.faults.cut.store(true, Ordering::SeqCst);
            let _ = piped.client.shutdown(Shutdown::Both);
            self.zombies.lock().unwrap().push(piped.upstream);
        }
    }

    /// Swallows everything both ways from now on, closing nothing.
    fn blackhole(&self) {
        if let Some(piped) = self.current.lock().unwrap().take() {
            piped.faults.swallow.store(true, Ordering::SeqCst);
            let mut zombies = self.zombies.lock().unwrap();
            zombies.push(piped.client);
            zombies.push(piped.upstream);
        }
    }
}

/// Copies `from` into `to` (or only reads, once told to swallow), and passes the end of
/// `from` on to `to` as TCP would (a FIN, or a reset), unless the client's side was cut on
/// purpose: then the upstream socket stays open and silent (the proxy keeps a clone).
fn pump(mut from: TcpStream, mut to: TcpStream, faults: Arc<Faults>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let end = loop {
            match from.read(&mut buf) {
                Ok(0) => break Shutdown::Write,
                Err(_) => break Shutdown::Both,
                Ok(_) if faults.swallow.load(Ordering::SeqCst) => {}
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break Shutdown::Both;
                    }
                }
            }
        };
        if !faults.cut.load(Ordering::SeqCst) && !faults.swallow.load(Ordering::SeqCst) {
            let _ = to.shutdown(end);
        }
    });
}

/// How a connection is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The client drops it without a close (a reset from the client's side).
    Client,
    /// The server drops it without a close.
    Server,
    /// Behind the proxy: the client's side is cut, the server's left half-open.
    HalfOpen,
    /// Behind the proxy: nothing gets through either way and nothing closes (a phone that
    /// lost its network); both sides find out by keepalive timeout. WebSocket only: TCP
    /// keepalive cannot be made short enough for a test.
    Blackhole,
}

/// 10 000 numbered messages from the server (direct sends, room broadcasts and global
/// broadcasts mixed) and 2 000 from the client, with the connection killed 50 times at
/// random points: each side receives every number once, in order.
fn chaos(transport: Transport) {
    const FROM_SERVER: u32 = 10_000;
    const FROM_CLIENT: u32 = 2_000;
    const KILLS: u32 = 50;
    let (peer_tx, peer_rx) = mpsc::channel::<Peer>();
    let peer_tx = Mutex::new(peer_tx);
    let disconnects = Arc::new(AtomicUsize::new(0));
    let d = disconnects.clone();
    // The sender outpaces the client (a debug build): a replay window of the whole run,
    // so no resume can fall past it (that case, 1013, has its own test below).
    let server = server()
        .transport(transport)
        .keepalive(Some(SHORT_KEEPALIVE))
        .sessions(SessionConfig {
            replay_messages: FROM_SERVER as usize,
            replay_bytes: 1 << 30,
            ..SessionConfig::default()
        })
        .on_connect(move |peer| {
            let _ = peer_tx.lock().unwrap().send(peer.clone());
        })
        .on_disconnect(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let (server_got_tx, server_got) = mpsc::channel::<u32>();
    server.listen(move |bytes: bytes::Bytes, _: &Peer| {
        let n = u32::from_be_bytes(bytes[..4].try_into().unwrap());
        let _ = server_got_tx.send(n);
    });
    server.start().unwrap();
    let target = server.local_addr().unwrap();
    let proxy = Proxy::start(target);
    let url = match transport {
        Transport::WebSocket => format!("ws://{}/", proxy.addr),
        Transport::Tcp => format!("tcp://{}", proxy.addr),
    };
    let (client_got_tx, client_got) = mpsc::channel::<u32>();
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    let failed = Arc::new(Mutex::new(Vec::new()));
    let f = failed.clone();
    let client = Client::builder(&url)
        .reconnect(fast_reconnect())
        .keepalive(Some(SHORT_KEEPALIVE))
        // A blackhole during the upgrade is found by the connect timeout.
        .connect_timeout(Duration::from_millis(300))
        .sessions(ClientSessionConfig::default())
        .on_connect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .on_resume_failed(move |_, code| f.lock().unwrap().push(code))
        .build()
        .unwrap();
    client.listen(move |bytes: bytes::Bytes, _: &Client| {
        let n = u32::from_be_bytes(bytes[..4].try_into().unwrap());
        let _ = client_got_tx.send(n);
    });
    client.connect_blocking().unwrap();
    let peer = recv(&peer_rx, "the session's peer");
    peer.join("room").unwrap();

    // The stream is spread over the connections: the n-th message waits for the
    // (n / PER_CONNECTION)-th connection, so every kill lands mid-stream.
    const PER_CONNECTION: u32 = FROM_SERVER / KILLS;
    let kills_done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (server, peer, client) = (server.clone(), peer.clone(), client.clone());
        let (connections, kills_done) = (connections.clone(), kills_done.clone());
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(7);
            let mut from_client = 1;
            for n in 1..=FROM_SERVER {
                while n > connections.load(Ordering::SeqCst) as u32 * PER_CONNECTION
                    && !kills_done.load(Ordering::SeqCst)
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
                let payload = bytes::Bytes::copy_from_slice(&n.to_be_bytes());
                match rng.u8(..) {
                    0..32 => server.broadcast(payload),
                    32..64 => server.broadcast_to_room("room", payload),
                    _ => peer.send(payload),
                }
                if n % 5 == 0 && from_client <= FROM_CLIENT {
                    while client
                        .try_send(bytes::Bytes::copy_from_slice(&from_client.to_be_bytes()))
                        .is_err()
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    from_client += 1;
                }
            }
        })
    };
    // Kills until the client has been through KILLS reconnects (a kill that finds no
    // live connection, say while a blackholed one is not noticed yet, does nothing).
    let kinds: &[Kill] = match transport {
        Transport::WebSocket => &[Kill::Client, Kill::Server, Kill::HalfOpen, Kill::Blackhole],
        Transport::Tcp => &[Kill::Client, Kill::Server, Kill::HalfOpen],
    };
    let mut rng = fastrand::Rng::with_seed(11);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut kill = 0;
    while connections.load(Ordering::SeqCst) <= KILLS as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} reconnects in 30 s",
            connections.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(rng.u64(1..8)));
        match kinds[kill % kinds.len()] {
            Kill::Client => client.disconnect(),
            Kill::Server => peer.disconnect(),
            Kill::HalfOpen => proxy.half_open(),
            Kill::Blackhole => proxy.blackhole(),
        }
        kill += 1;
    }
    kills_done.store(true, Ordering::SeqCst);
    sender.join().unwrap();

    let expect_in_order = |rx: &mpsc::Receiver<u32>, count: u32, side: &str| {
        let failed = failed.lock().unwrap().clone();
        assert!(failed.is_empty(), "resumes failed: {failed:?}");
        for expected in 1..=count {
            let got = rx
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("{side}: message {expected} never arrived"));
            assert_eq!(got, expected, "{side}: out of order, lost or repeated");
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "{side}: a message arrived twice"
        );
    };
    expect_in_order(&client_got, FROM_SERVER, "client");
    expect_in_order(&server_got, FROM_CLIENT, "server");
    assert_eq!(
        disconnects.load(Ordering::SeqCst),
        0,
        "the session never ended"
    );
    assert!(peer_rx.try_recv().is_err(), "no second session was created");
    // The proxy's zombie sockets would hold the server's drain for its close timeout.
    drop(proxy);
    client.close();
    server.close();
    server.wait();
}

#[test]
fn chaos_resume_over_websocket_loses_and_repeats_nothing() {
    chaos(Transport::WebSocket);
}

#[test]
fn chaos_resume_over_tcp_loses_and_repeats_nothing() {
    chaos(Transport::Tcp);
}

/// A client whose session expired meanwhile is told (1006) and starts a new one; a real
/// ConnectMe client (no extension) is served as before on a server with sessions.
#[test]
fn an_expired_session_is_reported_and_a_new_one_starts() {
    let server = server()
        .sessions(SessionConfig {
            ttl: Duration::from_millis(100),
            ..SessionConfig::default()
        })
        .start()
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (failed_tx, failed) = mpsc::channel();
    let failed_tx = Mutex::new(failed_tx);
    let client = Client::builder(&url)
        .reconnect(Reconnect::Fixed(Duration::from_millis(1500)))
        .sessions(ClientSessionConfig::default())
        .on_resume_failed(move |_, code| {
            let _ = failed_tx.lock().unwrap().send(code);
        })
        .build()
        .unwrap();
    client.connect_blocking().unwrap();
    wait_for("session created", || client.session_id().is_some());
    let first = client.session_id().unwrap();
    client.disconnect();
    assert_eq!(
        recv(&failed, "the failed resume"),
        resume_error::UNKNOWN_SESSION
    );
    wait_for("new session", || {
        client.session_id().is_some_and(|id| id != first)
    });
    assert_eq!(server.clients().len(), 1, "the expired session is gone");
    client.close();
    server.close();
    server.wait();
}

/// A raw WebSocket client speaking the session extension by hand, to check its bytes.
struct RawSession {
    ws: crate::support::RawWs,
}

/// What a `created` message says.
struct Created {
    id: String,
    secret: String,
    refused: u16,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RawSession {
    /// Upgrades with the extension offered (and `resume`, `id.secret.last`, if given);
    /// the server must accept it.
    fn open(addr: SocketAddr, resume: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let offer = match resume {
            Some(r) => format!("x-connectme-session; resume={r}"),
            None => "x-connectme-session".to_owned(),
        };
        let request = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let head = crate::support::read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Extensions: x-connectme-session\r\n"),
            "{head}"
        );
        Self {
            ws: crate::support::RawWs { stream },
        }
    }

    /// The next frame must be a session frame (opcode 0x3): its payload.
    fn control(&mut self) -> Vec<u8> {
        let (first, payload) = self.ws.read_frame();
        assert_eq!(first, 0x83, "a session frame");
        payload
    }

    fn created(&mut self) -> Created {
        let p = self.control();
        assert_eq!((p[0], p.len()), (3, 35), "created, without a user");
        Created {
            id: hex(&p[1..17]),
            secret: hex(&p[17..33]),
            refused: u16::from_be_bytes([p[33], p[34]]),
        }
    }

    fn text(&mut self) -> String {
        let (first, payload) = self.ws.read_frame();
        assert_eq!(first, 0x81, "a text frame");
        String::from_utf8(payload).unwrap()
    }
}

/// Starts a server with sessions (replay bound `replay`) whose clients' peers arrive on
/// the returned channel.
fn session_server(replay: usize) -> (connectme::Server, mpsc::Receiver<Peer>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = server()
        .sessions(SessionConfig {
            replay_messages: replay,
            ..SessionConfig::default()
        })
        .on_connect(move |peer| {
            let _ = tx.lock().unwrap().send(peer.clone());
        })
        .start()
        .unwrap();
    (server, rx)
}

/// The exact bytes of a resume: `restored` (last seq, replayed, received), then the
/// missed messages in order; a wrong secret is 1004 and starts a new session.
#[test]
fn resume_on_the_raw_wire_replays_exactly_what_was_missed() {
    let (server, peers) = session_server(4096);
    let addr = server.local_addr().unwrap();
    let mut first = RawSession::open(addr, None);
    let created = first.created();
    assert_eq!(created.refused, 0);
    let peer = recv(&peers, "the session");
    for text in ["a", "b", "c", "d", "e"] {
        peer.send(text);
    }
    assert_eq!(first.text(), "a");
    assert_eq!(first.text(), "b");
    drop(first);
    wait_for("suspended", || server.clients().len() == 1);

    let wrong = format!("{}.{}.2", created.id, "00".repeat(16));
    let mut refused = RawSession::open(addr, Some(&wrong));
    let fresh = refused.created();
    assert_eq!(fresh.refused, resume_error::BAD_CREDENTIALS);
    assert_ne!(fresh.id, created.id, "a new session");
    drop(refused);

    let mut resumed = RawSession::open(addr, Some(&format!("{}.{}.2", created.id, created.secret)));
    let restored = resumed.control();
    let mut expected = vec![4u8];
    for n in [2u64, 3, 0] {
        expected.extend_from_slice(&n.to_be_bytes());
    }
    assert_eq!(
        restored, expected,
        "restored: last seq 2, 3 replayed, 0 received"
    );
    assert_eq!(
        [resumed.text(), resumed.text(), resumed.text()],
        ["c", "d", "e"]
    );
    peer.send("f");
    assert_eq!(
        resumed.text(),
        "f",
        "the same peer reaches the resumed session"
    );
    server.close();
    server.wait();
}

/// A resume that needs messages the bounded buffer dropped fails with 1013 and ends the
/// session (a second try is 1006): the client is never given a silent gap.
#[test]
fn a_resume_past_the_replay_buffer_is_a_gap_never_silent() {
    let (server, peers) = session_server(2);
    let addr = server.local_addr().unwrap();
    let mut first = RawSession::open(addr, None);
    let created = first.created();
    let peer = recv(&peers, "the session");
    drop(first);
    wait_for("suspended", || server.clients().len() == 1);
    for text in ["a", "b", "c"] {
        peer.send(text);
    }
    let creds = format!("{}.{}.0", created.id, created.secret);
    let mut gap = RawSession::open(addr, Some(&creds));
    assert_eq!(gap.created().refused, resume_error::GAP);
    let mut again = RawSession::open(addr, Some(&creds));
    assert_eq!(again.created().refused, resume_error::UNKNOWN_SESSION);
    server.close();
    server.wait();
}

/// Two connections resuming one session: the later one gets it, the earlier one is told
/// with close 4003 (a half-open connection the server had not noticed is replaced the
/// same way).
#[test]
fn a_second_resume_replaces_the_first_connection_with_4003() {
    let (server, peers) = session_server(4096);
    let addr = server.local_addr().unwrap();
    let mut first = RawSession::open(addr, None);
    let created = first.created();
    let peer = recv(&peers, "the session");
    let creds = format!("{}.{}.0", created.id, created.secret);
    let mut a = RawSession::open(addr, Some(&creds));
    assert_eq!(a.control()[0], 4, "restored");
    assert_eq!(
        first.ws.expect_close(),
        4003,
        "the original connection is replaced"
    );
    let mut b = RawSession::open(addr, Some(&creds));
    assert_eq!(b.control()[0], 4, "restored again");
    assert_eq!(a.ws.expect_close(), 4003);
    peer.send("only b");
    assert_eq!(b.text(), "only b");
    server.close();
    server.wait();
}

/// A client's own listeners (`peer.listen`) belong to its session: they still answer
/// after the connection dropped and the session resumed, and one added while the session
/// was suspended is in place when it comes back.
#[test]
fn a_clients_own_listeners_survive_a_resume() {
    let (server, peers) = session_server(4096);
    let url = format!("ws://{}/", server.local_addr().unwrap());
    // Back after 300 ms: long enough to add a listener while suspended.
    let client = Client::builder(&url)
        .reconnect(Reconnect::Fixed(Duration::from_millis(300)))
        .sessions(ClientSessionConfig::default())
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    client.listen(move |text: String, _: &Client| {
        let _ = tx.send(text);
    });
    client.connect_blocking().unwrap();
    let peer = recv(&peers, "the session");
    peer.listen(|text: String, peer: &Peer| peer.send(format!("own:{text}")));
    wait_for("the listener is in place", || {
        client.send("a");
        rx.recv_timeout(Duration::from_millis(50)).ok() == Some("own:a".into())
    });
    while rx.try_recv().is_ok() {}

    peer.disconnect();
    wait_for("suspended", || !client.is_connected());
    peer.listen(|text: String, peer: &Peer| peer.send(format!("added:{text}")));
    client.send("b");
    assert_eq!(recv(&rx, "the first listener, after the resume"), "own:b");
    assert_eq!(recv(&rx, "the listener added while suspended"), "added:b");
    client.close();
    server.close();
    server.wait();
}

/// Resumes that land on either of the two shards (the kernel spreads connections over the
/// shards' listeners; eight in a row all landing on the session's own shard has a chance
/// of 1 in 256): a resume on the other shard is handed to the session's shard, and each
/// one restores the session with exactly what was sent since.
#[test]
fn resumes_on_either_shard_restore_the_session() {
    let (server, peers) = session_server(4096);
    let addr = server.local_addr().unwrap();
    let mut first = RawSession::open(addr, None);
    let created = first.created();
    let peer = recv(&peers, "the session");
    drop(first);
    let mut last = 0;
    for round in 1..=8u64 {
        wait_for("suspended", || server.clients().len() == 1);
        peer.send(format!("m{round}"));
        let creds = format!("{}.{}.{last}", created.id, created.secret);
        let mut resumed = RawSession::open(addr, Some(&creds));
        let restored = resumed.control();
        assert_eq!(restored[0], 4, "restored in round {round}");
        assert_eq!(resumed.text(), format!("m{round}"));
        last = round;
        drop(resumed);
    }
    assert!(peers.try_recv().is_err(), "never a new session");
    server.close();
    server.wait();
}

/// `on_suspend` and `on_resume` mark a session losing and regaining its connection;
/// `on_connect` and `on_disconnect` its start and end.
#[test]
fn lifecycle_callbacks_mark_suspension_and_resume() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = |what: &'static str| {
        let events = events.clone();
        move |_: &Peer| events.lock().unwrap().push(what)
    };
    let server = server()
        .sessions(SessionConfig {
            ttl: Duration::from_millis(200),
            ..SessionConfig::default()
        })
        .on_connect(log("connect"))
        .on_suspend(log("suspend"))
        .on_resume(log("resume"))
        .on_disconnect(log("disconnect"))
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut first = RawSession::open(addr, None);
    let created = first.created();
    drop(first);
    wait_for("suspended", || events.lock().unwrap().len() == 2);
    let creds = format!("{}.{}.0", created.id, created.secret);
    let mut resumed = RawSession::open(addr, Some(&creds));
    assert_eq!(resumed.control()[0], 4);
    drop(resumed);
    wait_for("expired", || events.lock().unwrap().len() == 5);
    assert_eq!(
        *events.lock().unwrap(),
        ["connect", "suspend", "resume", "suspend", "disconnect"]
    );
    server.close();
    server.wait();
}

/// Clients that never ask for a session (every real ConnectMe client) are served on a
/// server with sessions exactly as without: no extension in the upgrade answer, no session
/// frame, and on ConnectMe TCP their first message is their first message.
#[test]
fn clients_without_the_extension_see_the_wire_they_always_did() {
    for transport in [Transport::WebSocket, Transport::Tcp] {
        let server = server()
            .transport(transport)
            .sessions(SessionConfig::default())
            .build();
        server.listen(|text: bytes::Bytes, peer: &Peer| peer.send(text));
        server.start().unwrap();
        let addr = server.local_addr().unwrap();
        match transport {
            Transport::WebSocket => {
                let (mut socket, response) = tungstenite::connect(format!("ws://{addr}/")).unwrap();
                assert!(response.headers().get("sec-websocket-extensions").is_none());
                socket
                    .send(tungstenite::Message::Binary(vec![1u8, 2, 3].into()))
                    .unwrap();
                assert_eq!(
                    socket.read().unwrap(),
                    tungstenite::Message::Binary(vec![1u8, 2, 3].into())
                );
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                let frame = [0, 0, 0, 0, 0, 0, 0, 11, 1, 2, 3];
                stream.write_all(&frame).unwrap();
                let mut echo = [0u8; 11];
                stream.read_exact(&mut echo).unwrap();
                assert_eq!(echo, frame, "the same frame back, nothing before it");
            }
        }
        server.close();
        server.wait();
    }
}

/// Clients that open sessions and vanish cannot hold memory without bound: past
/// `max_suspended` the longest suspended sessions expire early.
#[test]
fn suspended_sessions_are_bounded() {
    let server = server()
        .sessions(SessionConfig {
            max_suspended: 2,
            ..SessionConfig::default()
        })
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    for _ in 0..6 {
        let mut raw = RawSession::open(addr, None);
        raw.created();
    }
    wait_for("at most two suspended sessions left", || {
        server.clients().len() <= 2
    });
    server.close();
    server.wait();
}

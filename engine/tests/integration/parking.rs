//! Idle connections parked whole: after a couple of seconds without traffic a connection
//! gives up its tasks and buffers (its socket waits in the shard's idle set), and comes
//! back, losing nothing, when the client sends, when the server sends to it, when it is
//! closed from either side, or when the server shuts down. Real sockets, both drivers;
//! each test waits out one park (about three seconds) and runs beside the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectme::{ByteString, Keepalive, Listeners, Peer, Server};

use crate::support::{server, wait_for, RawWs};

/// A two-shard echo server without pings (so that nothing but the test wakes a parked
/// connection), counting disconnections and memory trims.
fn echo_server(disconnected: &Arc<AtomicUsize>, trims: &Arc<AtomicUsize>) -> Server {
    let count = disconnected.clone();
    let trimmed = trims.clone();
    let server = server()
        .keepalive(None)
        .on_disconnect(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .trim_memory(move || {
            trimmed.fetch_add(1, Ordering::SeqCst);
        })
        .start()
        .unwrap();
    server.listen(|text: ByteString, peer: &Peer| peer.send(text));
    server
}

fn wait_parked(server: &Server, count: usize) {
    wait_for(&format!("{count} parked connections"), || {
        server.parked_connections() == count
    });
}

/// Text `payload` from the client, and its echo.
fn round_trip(ws: &mut RawWs, payload: &str) {
    ws.send_frame(0x81, payload.as_bytes(), true);
    assert_eq!(ws.read_frame(), (0x81, payload.as_bytes().to_vec()));
}

/// A parked connection wakes for its client's next message (sent in two halves, the
/// second while the first waits in the resumed reader) and for anything the server sends
/// it, and parks again once idle; the others stay parked meanwhile. The application's
/// memory trim runs after connections parked, not before nor while nothing parks.
#[test]
fn a_parked_connection_wakes_for_either_side_and_parks_again() {
    let disconnected = Arc::new(AtomicUsize::new(0));
    let trims = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&disconnected, &trims);
    let addr = server.local_addr().unwrap();
    let mut clients: Vec<RawWs> = (0..4).map(|_| RawWs::connect(addr)).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        round_trip(ws, &format!("hello {i}"));
    }
    assert_eq!(trims.load(Ordering::SeqCst), 0, "nothing parked yet");
    wait_parked(&server, 4);
    wait_for("memory trimmed after the park", || {
        trims.load(Ordering::SeqCst) > 0
    });
    // Nothing parks any more (a shard whose connections parked a sweep later trims once
    // more within a second): no further trims.
    std::thread::sleep(Duration::from_millis(1100));
    let trimmed = trims.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        trims.load(Ordering::SeqCst),
        trimmed,
        "trims only after parks"
    );

    // The client speaks first: a frame split across two writes.
    let frame = [
        0x81u8,
        0x85,
        1,
        2,
        3,
        4,
        b'w' ^ 1,
        b'a' ^ 2,
        b'k' ^ 3,
        b'e' ^ 4,
        b'!' ^ 1,
    ];
    let ws = &mut clients[0];
    std::io::Write::write_all(&mut ws.stream, &frame[..4]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::io::Write::write_all(&mut ws.stream, &frame[4..]).unwrap();
    assert_eq!(ws.read_frame(), (0x81, b"wake!".to_vec()));
    assert!(
        server.parked_connections() <= 3,
        "the woken one is not parked"
    );

    // The server speaks first: a broadcast reaches every parked connection.
    server.broadcast("to all");
    for ws in &mut clients {
        assert_eq!(ws.read_frame(), (0x81, b"to all".to_vec()));
    }
    assert_eq!(server.parked_connections(), 0);

    // Idle again, parked again, and still working.
    wait_parked(&server, 4);
    for (i, ws) in clients.iter_mut().enumerate() {
        round_trip(ws, &format!("again {i}"));
    }
    assert_eq!(disconnected.load(Ordering::SeqCst), 0);
    server.close();
}

/// Under io_uring a busy connection keeps a read in the kernel while it waits; once it
/// falls silent, the idle sweep cancels that read and parks it (without keepalive nothing
/// else would ever take the read back). A message arriving while the read is being
/// cancelled is handled, not lost: busy again, the 16 clients fall silent together, then
/// each sends one message, spread over the second in which they park.
#[test]
fn a_busy_connection_that_falls_silent_parks_and_loses_nothing() {
    let server = echo_server(&Arc::default(), &Arc::default());
    let addr = server.local_addr().unwrap();
    let mut clients: Vec<RawWs> = (0..16).map(|_| RawWs::connect(addr)).collect();
    let busy = |clients: &mut Vec<RawWs>, what: &str| {
        for round in 0..8 {
            for (i, ws) in clients.iter_mut().enumerate() {
                round_trip(ws, &format!("{what} {i} {round}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    busy(&mut clients, "busy");
    wait_parked(&server, 16);

    busy(&mut clients, "busy again");
    let silent = Instant::now();
    for (i, ws) in clients.iter_mut().enumerate() {
        let at = silent + Duration::from_millis(2000 + 80 * i as u64);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        round_trip(ws, &format!("late {i}"));
    }
    wait_parked(&server, 16);
    for (i, ws) in clients.iter_mut().enumerate() {
        round_trip(ws, &format!("after {i}"));
    }
    server.close();
}

/// A parked connection ends properly whichever way it ends: the client hangs up (the
/// server notices, forgets it and tells the application), the server closes it (the
/// close frame goes out), or the server shuts down (1001 to every parked client).
#[test]
fn a_parked_connection_ends_properly_either_way() {
    let disconnected = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&disconnected, &Arc::default());
    let addr = server.local_addr().unwrap();
    let mut clients: Vec<RawWs> = (0..4).map(|_| RawWs::connect(addr)).collect();
    for ws in &mut clients {
        round_trip(ws, "hi");
    }
    wait_parked(&server, 4);

    // The client hangs up without a close frame.
    drop(clients.remove(0));
    wait_for("the hang-up noticed", || {
        disconnected.load(Ordering::SeqCst) == 1
    });
    assert_eq!(server.clients().len(), 3);
    assert_eq!(server.parked_connections(), 3);

    // The server closes one.
    let peer = server.clients().into_iter().next().unwrap();
    let closed = clients
        .iter()
        .position(|ws| ws.stream.local_addr().unwrap() == peer.info().peer_addr().unwrap())
        .unwrap();
    peer.close_with(4000, "bye");
    let mut ws = clients.remove(closed);
    assert_eq!(ws.expect_close(), 4000);
    wait_for("the close counted", || {
        disconnected.load(Ordering::SeqCst) == 2
    });

    // The server shuts down with two still parked.
    assert_eq!(server.parked_connections(), 2);
    server.close();
    for mut ws in clients {
        assert_eq!(ws.expect_close(), 1001);
    }
    assert_eq!(server.parked_connections(), 0);
}

/// Keepalive pings reach a parked connection (each wakes it) and the client's pongs keep
/// it alive past the keepalive timeout; a client that stops answering is closed (1001)
/// even though it was parked.
#[test]
fn keepalive_works_across_parks() {
    let server = server()
        .keepalive(Some(Keepalive {
            interval: Duration::from_millis(3500),
            timeout: Duration::from_millis(6000),
        }))
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut answering = RawWs::connect(addr);
    let mut silent = RawWs::connect(addr);
    wait_parked(&server, 2);
    let (first, payload) = answering.read_frame();
    assert_eq!(first, 0x89, "a ping");
    answering.send_frame(0x8A, &payload, true);
    assert_eq!(silent.read_frame().0, 0x89, "a ping");
    // The answered one parks again and outlives the timeout; the silent one is closed.
    assert_eq!(silent.expect_close(), 1001);
    assert_eq!(server.clients().len(), 1);
    let (first, payload) = answering.read_frame();
    assert_eq!(first, 0x89, "the next ping");
    answering.send_frame(0x8A, &payload, true);
    server.close();
}

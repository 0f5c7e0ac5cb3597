//! What the server tells about its clients (headers, path, query, subprotocol, shard), a
//! real third-party client (tungstenite), and graceful shutdown.

use connectme::Listeners;
use std::sync::mpsc;

use connectme::{Client, Peer};
use tungstenite::Message;

use crate::support::{connect_with, recv, server, wait_for, ws_url};

#[test]
fn clients_expose_headers_path_query_and_protocol() {
    let server = server().protocols(["v1", "v2"]).start().unwrap();
    let url = format!("ws://{}/game/lobby?room=7", server.local_addr().unwrap());
    let client = connect_with(
        Client::builder(&url)
            .header("X-Token", "secret")
            .protocols(["v2", "v1"]),
        |_| {},
    );
    wait_for("client registered", || server.clients().len() == 1);
    let peer = server.clients().remove(0);
    assert_eq!(peer.header("x-token"), Some("secret"));
    assert_eq!(peer.info().path(), "/game/lobby");
    assert_eq!(peer.info().query(), Some("room=7"));
    assert_eq!(
        peer.info().protocol(),
        Some("v2"),
        "the client's first choice among the server's is selected"
    );
    assert_eq!(client.protocol().as_deref(), Some("v2"));
    assert!(peer.info().peer_addr().is_some());
    client.close();
    wait_for("client removed", || server.clients().is_empty());
    server.close();
    server.wait();
}

/// `keep_headers` keeps the named headers (whatever their case) and drops the rest once
/// the connection is open, while the authenticator and the state factory still see every
/// header.
#[test]
fn only_the_kept_headers_stay_and_the_authenticator_sees_all() {
    let (seen_tx, seen_rx) = mpsc::channel();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let server = server()
        .state(|info: &connectme::ConnInfo| info.headers().get("x-device").map(str::to_owned))
        .keep_headers(&["X-Token"])
        .authenticate(move |request: connectme::AuthRequest| {
            let seen = request.header("x-device").map(str::to_owned);
            let _ = seen_tx.lock().unwrap().send(seen);
            async move { Ok(connectme::Identity::user("someone")) }
        })
        .start()
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let client = connect_with(
        Client::builder(&url)
            .header("x-token", "secret")
            .header("X-Device", "phone"),
        |_| {},
    );
    wait_for("client registered", || server.clients().len() == 1);
    assert_eq!(seen_rx.recv().unwrap().as_deref(), Some("phone"));
    let peer = server.clients().remove(0);
    assert_eq!(peer.header("X-TOKEN"), Some("secret"));
    assert_eq!(peer.header("x-device"), None);
    assert_eq!(
        peer.state().as_deref(),
        Some("phone"),
        "the state factory saw it"
    );
    assert_eq!(peer.header("host"), None);
    let kept: Vec<_> = peer.info().headers().iter().collect();
    assert_eq!(kept, [("x-token", "secret")]);
    client.close();

    let none = crate::support::server().keep_headers(&[]).start().unwrap();
    let url = format!("ws://{}/", none.local_addr().unwrap());
    let client = connect_with(Client::builder(&url).header("x-token", "secret"), |_| {});
    wait_for("client registered", || none.clients().len() == 1);
    assert!(none.clients()[0].info().headers().is_empty());
    client.close();
    server.close();
    server.wait();
    none.close();
    none.wait();
}

#[test]
fn tungstenite_client_echo_and_close_handshake() {
    let server = server().start().unwrap();
    server.listen(|text: String, peer: &Peer| peer.send(text.chars().rev().collect::<String>()));
    let (mut socket, response) = tungstenite::connect(ws_url(&server)).unwrap();
    assert_eq!(response.status(), 101);
    socket.send(Message::text("Alyx")).unwrap();
    assert_eq!(socket.read().unwrap(), Message::text("xylA"));
    socket.close(None).unwrap();
    match socket.read() {
        Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the close handshake to complete, got {other:?}"),
    }
    server.close();
    server.wait();
}

#[test]
fn graceful_close_sends_going_away_to_every_client() {
    let server = server().start().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let (socket, _) = tungstenite::connect(ws_url(&server)).unwrap();
        sockets.push(socket);
    }
    wait_for("clients registered", || server.clients().len() == 4);
    let closer = server.clone();
    std::thread::spawn(move || {
        closer.close();
        closer.wait();
        let _ = tx.send(());
    });
    for socket in &mut sockets {
        match socket.read().unwrap() {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    drop(sockets);
    recv(&rx, "server stopped");
}

#[test]
fn an_idle_connection_still_receives_after_its_writer_parked() {
    let server = server().start().unwrap();
    server.listen(|text: String, peer: &Peer| peer.send(text));
    let (tx, rx) = mpsc::channel();
    let client = connect_with(Client::builder(&ws_url(&server)), |c| {
        c.listen(move |text: String, _: &Client| {
            let _ = tx.send(text);
        });
    });
    client.send("before");
    assert_eq!(recv(&rx, "echo before idling"), "before");
    // Two idle sweeps (one per second) park the connection's writer.
    std::thread::sleep(std::time::Duration::from_millis(2300));
    server.broadcast("wake up");
    assert_eq!(recv(&rx, "broadcast to the idle connection"), "wake up");
    client.send("after");
    assert_eq!(recv(&rx, "echo after idling"), "after");
    server.close();
    server.wait();
}

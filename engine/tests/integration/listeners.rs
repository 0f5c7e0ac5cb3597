//! Listener semantics: server-wide and per-client listeners, the "listen for logged-in
//! clients only" pattern, cancel, registration order, and a handler that panics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use connectme::{ByteString, Client, Packet, Peer, QueryError};

use crate::support::{alyx, connect, recv, server, ws_url, GetUserRequest, IntroductionMessage};

#[test]
fn per_client_listener_after_authentication() {
    let server = server()
        .query_timeout(Duration::from_secs(2))
        .start()
        .unwrap();
    // Only clients that introduced themselves may ask for users.
    server.listen(|intro: Packet<IntroductionMessage>, peer: &Peer| {
        let name = intro.name.clone();
        peer.listen(move |req: Packet<GetUserRequest>, _: &Peer| {
            let mut user = alyx();
            user.last_name = format!("{} (asked by {name})", user.last_name).into();
            req.response(user)
        });
    });
    let url = ws_url(&server);
    let short = |url: &str| {
        let client = Client::builder(url)
            .query_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        client.connect_blocking().unwrap();
        client
    };
    let stranger = short(&url);
    let member = short(&url);
    let request = || GetUserRequest { id: "hl3".into() };
    assert_eq!(
        member.query(request()).wait(),
        Err(QueryError::Timeout(Duration::from_millis(300)))
    );
    member.send_message(IntroductionMessage {
        name: "Eli".into(),
        age: 44,
    });
    let response = member.query(request()).wait().expect("authenticated query");
    assert_eq!(response.last_name, "Vance (asked by Eli)");
    assert_eq!(response.first_name, "Alyx");
    assert_eq!(
        stranger.query(request()).wait(),
        Err(QueryError::Timeout(Duration::from_millis(300))),
        "the other client's listener is not shared"
    );
    server.close();
    server.wait();
}

#[test]
fn own_listeners_run_before_server_wide_ones_and_cancel_removes_one() {
    let server = server().start().unwrap();
    let (tx, rx) = mpsc::channel();
    let wide_tx = tx.clone();
    let wide = server.listen(move |text: String, peer: &Peer| {
        let _ = wide_tx.send(format!("server:{text}"));
        if text == "join" {
            let own_tx = wide_tx.clone();
            peer.listen(move |text: ByteString, _: &Peer| {
                let _ = own_tx.send(format!("own:{text}"));
            });
        }
    });
    let client = connect(&ws_url(&server), |_| {});
    client.send("join");
    assert_eq!(recv(&rx, "join"), "server:join");
    client.send("a");
    assert_eq!(recv(&rx, "own listener"), "own:a");
    assert_eq!(recv(&rx, "server-wide listener"), "server:a");
    server.cancel(wide);
    client.send("b");
    assert_eq!(recv(&rx, "own listener"), "own:b");
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "cancelled listener still called"
    );
    drop(tx);
    server.close();
    server.wait();
}

#[test]
fn a_panicking_handler_harms_nothing_else() {
    let server = server().start().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    server.listen(move |text: String, peer: &Peer| {
        counter.fetch_add(1, Ordering::Relaxed);
        if text == "boom" {
            panic!("handler failure on purpose");
        }
        peer.send(text);
    });
    let (tx, rx) = mpsc::channel();
    let client = connect(&ws_url(&server), |c| {
        c.listen(move |text: String, _: &Client| {
            let _ = tx.send(text);
        });
    });
    client.send("boom");
    client.send("still here");
    assert_eq!(recv(&rx, "echo after the panic"), "still here");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    server.close();
    server.wait();
}

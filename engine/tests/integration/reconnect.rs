//! The client reconnects after the server restarts, and its listeners survive.

use connectme::Listeners;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use connectme::{Client, Reconnect};

use crate::support::{connect_with, recv, server, wait_for};

#[test]
fn client_reconnects_after_server_restart_with_its_listeners() {
    let first = server().start().unwrap();
    let addr = first.local_addr().unwrap();
    let url = format!("ws://{addr}/");
    let connects = Arc::new(AtomicUsize::new(0));
    let disconnects = Arc::new(AtomicUsize::new(0));
    let (c, d) = (connects.clone(), disconnects.clone());
    let (tx, rx) = mpsc::channel();
    let client = connect_with(
        Client::builder(&url)
            .reconnect(Reconnect::Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                factor: 2.0,
            })
            .on_connect(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .on_disconnect(move |_| {
                d.fetch_add(1, Ordering::SeqCst);
            }),
        |client| {
            client.listen(move |text: String, _: &Client| {
                let _ = tx.send(text);
            });
        },
    );
    wait_for("first connection", || {
        connects.load(Ordering::SeqCst) == 1 && first.clients().len() == 1
    });
    first.broadcast("before");
    assert_eq!(recv(&rx, "message before the restart"), "before");

    first.close();
    first.wait();
    wait_for("disconnect noticed", || {
        disconnects.load(Ordering::SeqCst) == 1
    });
    assert!(!client.is_connected());

    let second = server().addr(addr).unwrap().start().unwrap();
    wait_for("reconnected", || {
        connects.load(Ordering::SeqCst) == 2 && second.clients().len() == 1
    });
    second.broadcast("after");
    assert_eq!(recv(&rx, "message after the restart"), "after");
    client.close();
    wait_for("client closed", || second.clients().is_empty());
    second.close();
    second.wait();
}

#[test]
fn first_connect_fails_clearly_when_nothing_listens() {
    // Bind and drop a listener to find a port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::builder(&format!("ws://127.0.0.1:{port}/"))
        .reconnect(Reconnect::Never)
        .build()
        .unwrap();
    let error = client.connect_blocking().unwrap_err();
    assert!(matches!(error, connectme::ConnectError::Io(_)), "{error}");
}

#[test]
fn dropping_the_last_handle_closes_the_client() {
    let server = server().start().unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let client = connect_with(Client::builder(&url), |_| {});
    wait_for("the client connected", || server.clients().len() == 1);
    let kept = client.clone();
    drop(client);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.clients().len(), 1, "a clone keeps the client open");
    assert!(kept.is_connected());
    drop(kept);
    wait_for("the server saw the client leave", || {
        server.clients().is_empty()
    });
    server.close();
    server.wait();
}

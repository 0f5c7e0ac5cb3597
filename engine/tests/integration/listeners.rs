//! Listener semantics: server-wide and per-client listeners, the "listen for logged-in
//! clients only" pattern, cancel, registration order, a handler that panics, and binary
//! messages lent in place (`listen_ref`).

use connectme::Listeners;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use connectme::{BinaryRef, ByteString, Client, Packet, Peer, QueryError, Transport};

use crate::support::{
    alyx, connect, recv, server, ws_url, GetUserRequest, GetUserResponse, IntroductionMessage,
    RawWs,
};

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

/// What a `listen_ref` handler was lent: (read in place, the bytes).
type Lent = (bool, Vec<u8>);

fn lend_and_echo(tx: mpsc::Sender<Lent>) -> impl Fn(BinaryRef<'_>, &Peer) + Send + Sync {
    move |data: BinaryRef, peer: &Peer| {
        let _ = tx.send((matches!(data, BinaryRef::InPlace(_)), data.to_vec()));
        peer.send(data);
    }
}

#[test]
fn lent_messages_echo_byte_exact_read_in_place_when_small() {
    let server = server().start().unwrap();
    let (tx, rx) = mpsc::channel();
    server.listen_ref(lend_and_echo(tx));
    let mut ws = RawWs::connect(server.local_addr().unwrap());
    let small: Vec<u8> = (0..100u8).collect();
    let large: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    ws.send_frame(0x82, &small, true);
    ws.send_frame(0x82, &large, true);
    ws.send_frame(0x82, b"", true);
    ws.send_frame(0x02, b"fra", true); // fragmented: reassembled, so it has its own buffer
    ws.send_frame(0x80, b"gment", true);
    ws.send_frame(0x82, b"last one", true);
    let expected: [(bool, &[u8]); 5] = [
        (true, &small),
        (false, &large),
        (true, b""),
        (false, b"fragment"),
        (true, b"last one"),
    ];
    for (in_place, payload) in expected {
        assert_eq!(ws.read_frame(), (0x82, payload.to_vec()), "echo");
        assert_eq!(recv(&rx, "lent message"), (in_place, payload.to_vec()));
    }
    server.close();
    server.wait();
}

#[test]
fn a_listener_that_keeps_messages_makes_them_shared_until_cancelled() {
    let server = server().start().unwrap();
    let (tx, rx) = mpsc::channel();
    server.listen_ref(lend_and_echo(tx));
    let (kept_tx, kept_rx) = mpsc::channel();
    let keeper = server.listen(move |data: Bytes, _: &Peer| {
        let _ = kept_tx.send(data);
    });
    let mut ws = RawWs::connect(server.local_addr().unwrap());
    ws.send_frame(0x82, b"kept", true);
    assert_eq!(ws.read_frame(), (0x82, b"kept".to_vec()));
    assert_eq!(recv(&rx, "lent, shared"), (false, b"kept".to_vec()));
    assert_eq!(recv(&kept_rx, "kept"), Bytes::from_static(b"kept"));
    server.cancel(keeper);
    ws.send_frame(0x82, b"lent", true);
    assert_eq!(ws.read_frame(), (0x82, b"lent".to_vec()));
    assert_eq!(recv(&rx, "lent, in place"), (true, b"lent".to_vec()));
    server.close();
    server.wait();
}

#[test]
fn packme_messages_and_query_answers_are_not_lent_to_raw_listeners() {
    for transport in [Transport::WebSocket, Transport::Tcp] {
        let server = server().transport(transport).start().unwrap();
        let (tx, rx) = mpsc::channel();
        server.listen_ref(lend_and_echo(tx));
        server.listen(|req: Packet<GetUserRequest>, _: &Peer| req.response(alyx()));
        let url = match transport {
            Transport::Tcp => server.local_addr().unwrap().to_string(),
            _ => ws_url(&server),
        };
        let (lent_tx, lent_rx) = mpsc::channel();
        let client = connect(&url, |c| {
            c.listen_ref(move |data: BinaryRef, _: &Client| {
                let _ = lent_tx.send(data.to_vec());
            });
        });
        let response = client.query(GetUserRequest { id: "hl3".into() });
        assert_eq!(response.wait().unwrap().message, alyx(), "{transport:?}");
        client.send(&b"raw bytes"[..]);
        assert_eq!(recv(&lent_rx, "echo lent to the client"), b"raw bytes");
        assert_eq!(
            recv(&rx, "lent on the server"),
            (true, b"raw bytes".to_vec())
        );
        assert!(
            rx.try_recv().is_err(),
            "{transport:?}: the request was not lent"
        );
        assert!(
            lent_rx.try_recv().is_err(),
            "{transport:?}: the answer was not lent"
        );
        server.close();
        server.wait();
    }
}

/// Alyx, with the id the request asked for in her last name.
fn alyx_for(id: &str) -> GetUserResponse {
    let mut user = alyx();
    user.last_name = format!("{} ({id})", user.last_name).into();
    user
}

#[test]
fn requests_read_as_views_are_answered_by_server_peer_and_client() {
    let server = server().start().unwrap();
    server.listen_view::<GetUserRequest, _, _>(|request, _: &Peer| {
        request.answer(alyx_for(request.id))
    });
    let (asked_tx, asked_rx) = mpsc::channel();
    server.listen(move |text: String, peer: &Peer| match text.as_str() {
        "join" => {
            peer.listen_view::<GetUserRequest, _, _>(|request, _: &Peer| {
                request.answer(alyx_for(&format!("own {}", request.id)))
            });
        }
        "ask me" => {
            let question = peer.query(GetUserRequest { id: "g-man".into() });
            let asked_tx = asked_tx.clone();
            connectme::spawn(async move {
                let _ = asked_tx.send(question.await.map(|answer| answer.message));
            });
        }
        _ => {}
    });
    let client = connect(&ws_url(&server), |c| {
        c.listen_view::<GetUserRequest, _, _>(|request, _: &Client| {
            request.answer(alyx_for(&format!("client {}", request.id)))
        });
    });
    let ask = |id: &str| client.query(GetUserRequest { id: id.into() }).wait();
    assert_eq!(
        ask("hl3").unwrap().message,
        alyx_for("hl3"),
        "server-wide view"
    );
    client.send("ask me");
    assert_eq!(
        recv(&asked_rx, "the client's answer").unwrap(),
        alyx_for("client g-man"),
        "the client's view listener"
    );
    client.send("join");
    assert_eq!(
        ask("ep2").unwrap().message,
        alyx_for("own ep2"),
        "the connection's own view listener answers first"
    );
    server.close();
    server.wait();
}

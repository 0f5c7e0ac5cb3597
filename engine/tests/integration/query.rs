//! Queries in both directions: matched by transaction id and response type, server ids
//! from the top of the range, precise timeouts, and failure on disconnect.

use connectme::Listeners;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connectme::{Client, Packet, Peer, QueryError};

use crate::support::{alyx, connect, connect_with, recv, server, wait_for, ws_url, GetUserRequest};

#[test]
fn client_query_gets_the_auto_reply() {
    let server = server().start().unwrap();
    server.listen(|req: Packet<GetUserRequest>, _: &Peer| {
        assert_eq!(req.id, "hl3");
        req.response(alyx())
    });
    let client = connect(&ws_url(&server), |_| {});
    for _ in 0..3 {
        let response = client
            .query(GetUserRequest { id: "hl3".into() })
            .wait()
            .unwrap();
        assert_eq!(response.message, alyx());
        assert!(response.transaction_id < 100, "client ids count up from 1");
    }
    server.close();
    server.wait();
}

#[test]
fn server_query_to_a_client_uses_ids_clients_never_reach() {
    let server = server().start().unwrap();
    let (tx, rx) = mpsc::channel();
    let _client = connect(&ws_url(&server), |c| {
        c.listen(move |req: Packet<GetUserRequest>, _: &Client| {
            let _ = tx.send(req.transaction_id);
            req.response(alyx())
        });
    });
    wait_for("client registered", || server.clients().len() == 1);
    let peer = server.clients().remove(0);
    let response = peer
        .query(GetUserRequest { id: "1".into() })
        .wait()
        .unwrap();
    assert_eq!(response.message, alyx());
    let tid = recv(&rx, "request");
    assert_eq!(response.transaction_id, tid);
    assert!(
        tid > u32::MAX - 100,
        "server ids count down from u32::MAX, got {tid}"
    );
    server.close();
    server.wait();
}

#[test]
fn a_message_with_a_colliding_id_but_another_type_does_not_answer_a_query() {
    // The reference completes a pending query with any message carrying its id (11.A1).
    let server = server().start().unwrap();
    let (tx, rx) = mpsc::channel();
    server.listen(move |req: Packet<GetUserRequest>, peer: &Peer| {
        // First push an unrelated request with the same transaction id, then answer.
        peer.send(Packet::new(
            GetUserRequest { id: "push".into() },
            req.transaction_id,
        ));
        peer.send(req.response(alyx()));
    });
    let client = connect(&ws_url(&server), |c| {
        c.listen(move |push: Packet<GetUserRequest>, _: &Client| {
            let _ = tx.send(push.id.to_string());
        });
    });
    let response = client
        .query(GetUserRequest { id: "x".into() })
        .wait()
        .unwrap();
    assert_eq!(response.message, alyx());
    assert_eq!(recv(&rx, "the push"), "push", "the push went to listeners");
    server.close();
    server.wait();
}

#[test]
fn query_timeout_is_precise() {
    let server = server().start().unwrap();
    let client = connect_with(
        Client::builder(&ws_url(&server)).query_timeout(Duration::from_millis(250)),
        |_| {},
    );
    for _ in 0..3 {
        let start = Instant::now();
        let result = client
            .query(GetUserRequest {
                id: "nobody answers".into(),
            })
            .wait();
        let elapsed = start.elapsed();
        assert_eq!(result, Err(QueryError::Timeout(Duration::from_millis(250))));
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(700),
            "timed out after {elapsed:?}"
        );
    }
    server.close();
    server.wait();
}

#[test]
fn pending_queries_fail_at_once_when_the_connection_drops() {
    let server = server()
        .query_timeout(Duration::from_secs(20))
        .start()
        .unwrap();
    server.listen(|_: Packet<GetUserRequest>, peer: &Peer| peer.close());
    let (seen_tx, seen_rx) = mpsc::channel();
    let client = connect_with(
        Client::builder(&ws_url(&server))
            .query_timeout(Duration::from_secs(20))
            .reconnect(connectme::Reconnect::Never),
        |c| {
            // The client sees the server's query but never answers it.
            c.listen(move |_: Packet<GetUserRequest>, _: &Client| {
                let _ = seen_tx.send(());
            });
        },
    );
    wait_for("client registered", || server.clients().len() == 1);
    let peer = server.clients().remove(0);
    let server_side = peer.query(GetUserRequest {
        id: "never answered".into(),
    });
    recv(&seen_rx, "the server's query reached the client");
    let start = Instant::now();
    let client_side = client
        .query(GetUserRequest {
            id: "closes".into(),
        })
        .wait();
    assert_eq!(client_side, Err(QueryError::Disconnected));
    assert_eq!(server_side.wait(), Err(QueryError::Disconnected));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        client.query(GetUserRequest { id: "after".into() }).wait(),
        Err(QueryError::NotConnected)
    );
    server.close();
    server.wait();
}

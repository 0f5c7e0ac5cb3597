//! Broadcast reaches every client exactly once, from any shard or thread, with the same
//! bytes; a filtered broadcast reaches exactly the clients it selects.

use connectme::Listeners;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use connectme::{ByteString, Client, Peer};

use crate::support::{connect_with, recv, server, wait_for, ws_url};

/// Starts a server (after `setup` added its listeners: listeners added after start reach
/// each shard through its mailbox, so a message already on its way may miss them) and
/// connects `count` clients spread over both shards.
fn clients_on_both_shards(
    count: usize,
    setup: impl FnOnce(&connectme::Server),
) -> (
    connectme::Server,
    Vec<Client>,
    mpsc::Receiver<(usize, String)>,
) {
    let server = server().build();
    setup(&server);
    server.start().unwrap();
    let (tx, rx) = mpsc::channel();
    let url = ws_url(&server);
    let clients: Vec<Client> = (0..count)
        .map(|i| {
            let tx = tx.clone();
            connect_with(
                Client::builder(&url).header("x-index", i.to_string()),
                |c| {
                    let text_tx = tx.clone();
                    c.listen(move |text: String, _: &Client| {
                        let _ = text_tx.send((i, text));
                    });
                    c.listen(move |data: Bytes, _: &Client| {
                        let _ = tx.send((i, format!("bytes:{data:?}")));
                    });
                },
            )
        })
        .collect();
    wait_for("all clients registered", || server.clients().len() == count);
    let shards: HashSet<usize> = server.clients().iter().map(Peer::shard).collect();
    assert_eq!(
        shards.len(),
        2,
        "SO_REUSEPORT spread {count} clients over both shards"
    );
    (server, clients, rx)
}

/// Collects one message per client and checks that no extra one follows.
fn expect_once_each(rx: &mpsc::Receiver<(usize, String)>, count: usize, expected: &str) {
    let mut seen: HashMap<usize, usize> = HashMap::new();
    while seen.len() < count {
        let (i, text) = recv(rx, "broadcast delivery");
        assert_eq!(text, expected);
        *seen.entry(i).or_default() += 1;
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a client got a second copy"
    );
    assert!(seen.values().all(|&n| n == 1));
}

#[test]
fn broadcast_from_each_shard_and_from_outside_reaches_every_client_once() {
    let count = 16;
    let (server, clients, rx) = clients_on_both_shards(count, |server| {
        let handle = server.clone();
        server.listen(move |text: ByteString, peer: &Peer| {
            if let Some(rest) = text.strip_prefix("shout:") {
                handle.broadcast(format!("{rest} from shard {}", peer.shard()));
            }
        });
    });
    // Trigger from a client of each shard, so the broadcast starts on each.
    for shard in 0..2 {
        let peer = server
            .clients()
            .into_iter()
            .find(|p| p.shard() == shard)
            .unwrap();
        let i: usize = peer.header("X-Index").unwrap().parse().unwrap();
        clients[i].send("shout:hello");
        expect_once_each(&rx, count, &format!("hello from shard {shard}"));
    }
    // And from a thread that is not a shard.
    server.broadcast(Bytes::from_static(b"\x40raw"));
    expect_once_each(&rx, count, "bytes:b\"@raw\"");
    server.close();
    server.wait();
}

#[test]
fn filtered_broadcast_reaches_exactly_the_selected_clients() {
    let count = 12;
    let (server, _clients, rx) = clients_on_both_shards(count, |_| {});
    // Select by connection id parity: deterministic, and spans both shards.
    let selected: HashSet<u64> = server
        .clients()
        .iter()
        .map(Peer::id)
        .filter(|id| id % 2 == 0)
        .collect();
    let wanted = selected.len();
    server.broadcast_where("team", move |peer: &Peer| peer.id() % 2 == 0);
    let mut got = HashSet::new();
    for _ in 0..wanted {
        let (i, text) = recv(&rx, "filtered delivery");
        assert_eq!(text, "team");
        assert!(got.insert(i), "client {i} got two copies");
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "an unselected client got it"
    );
    server.close();
    server.wait();
}

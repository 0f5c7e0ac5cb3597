//! Rooms on two shards: a room broadcast reaches its members only, each once; membership
//! belongs to the session (kept while suspended, with the broadcasts it missed replayed;
//! gone when the session expires).

use std::sync::{mpsc, Mutex};
use std::time::Duration;

use connectme::{
    Client, ClientSessionConfig, Listeners, Peer, Reconnect, RoomError, RoomOptions, Server,
    SessionConfig,
};

use crate::support::{recv, server, wait_for};

/// A client that forwards every text it receives to the returned channel.
fn text_client(url: &str, sessions: bool) -> (Client, mpsc::Receiver<String>) {
    let mut builder = Client::builder(url).reconnect(Reconnect::Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        factor: 2.0,
    });
    if sessions {
        builder = builder.sessions(ClientSessionConfig::default());
    }
    let client = builder.build().unwrap();
    let (tx, rx) = mpsc::channel();
    client.listen(move |text: String, _: &Client| {
        let _ = tx.send(text);
    });
    client.connect_blocking().unwrap();
    (client, rx)
}

fn started(sessions: Option<SessionConfig>) -> (Server, mpsc::Receiver<Peer>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let mut builder = server().on_connect(move |peer| {
        let _ = tx.lock().unwrap().send(peer.clone());
    });
    if let Some(config) = sessions {
        builder = builder.sessions(config);
    }
    (builder.start().unwrap(), rx)
}

#[test]
fn a_room_broadcast_reaches_its_members_once_across_shards() {
    let (server, peers) = started(None);
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (client, rx) = text_client(&url, false);
        let peer = recv(&peers, "peer");
        clients.push((client, rx, peer));
    }
    // 0, 1, 2 in red; 2, 3 in blue; 4 in none; 5 in both and the sender.
    for (i, rooms) in [
        &["red"][..],
        &["red"],
        &["red", "blue"],
        &["blue"],
        &[],
        &["red", "blue"],
    ]
    .iter()
    .enumerate()
    {
        for room in rooms.iter() {
            clients[i].2.join(room).unwrap();
        }
    }
    assert_eq!(server.room_members("red").len(), 4);
    assert_eq!(clients[5].2.rooms(), ["red", "blue"]);

    server.broadcast_to_rooms(&["red", "blue"], "both", Some(&clients[5].2));
    clients[3].2.broadcast_to_room("blue", "from 3");
    for i in [0, 1, 2, 3] {
        assert_eq!(recv(&clients[i].1, "room broadcast"), "both", "client {i}");
    }
    assert_eq!(recv(&clients[2].1, "blue"), "from 3");
    assert_eq!(recv(&clients[5].1, "blue"), "from 3");
    for (i, (_, rx, _)) in clients.iter().enumerate() {
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "client {i} got an extra copy"
        );
    }

    server.create_room(
        "duel",
        RoomOptions {
            max_members: Some(1),
            ..RoomOptions::default()
        },
    );
    clients[0].2.join("duel").unwrap();
    assert!(matches!(
        clients[1].2.join("duel"),
        Err(RoomError::Full { max: 1, .. })
    ));
    assert!(clients[0].2.leave("duel"));
    assert!(server.room("duel").is_none(), "deleted when empty");

    let (client, _, peer) = clients.remove(0);
    client.close();
    wait_for("the closed client left its rooms", || {
        server.room_members("red").len() == 3
    });
    assert_eq!(peer.join("red"), Err(RoomError::Gone));
    server.close();
    server.wait();
}

#[test]
fn rooms_belong_to_the_session_across_suspension_and_expiry() {
    let (server, peers) = started(Some(SessionConfig {
        ttl: Duration::from_millis(300),
        ..SessionConfig::default()
    }));
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = text_client(&url, true);
    let peer = recv(&peers, "peer");
    peer.join("lobby").unwrap();
    peer.disconnect();
    // While suspended (or already back), the broadcast is kept for the session.
    server.broadcast_to_room("lobby", "while away");
    assert_eq!(recv(&rx, "replayed room broadcast"), "while away");
    assert_eq!(peer.rooms(), ["lobby"], "membership survived the reconnect");

    client.close();
    wait_for("the session expired and left its rooms", || {
        server.rooms().is_empty() && server.clients().is_empty()
    });
    server.close();
    server.wait();
}

#[test]
fn room_callbacks_see_every_join_and_leave_including_the_rooms_an_ended_client_leaves() {
    let (tx, events) = mpsc::channel();
    let (join_tx, leave_tx) = (Mutex::new(tx.clone()), Mutex::new(tx));
    let (peers_tx, peers) = mpsc::channel();
    let peers_tx = Mutex::new(peers_tx);
    let server = server()
        .on_connect(move |peer| {
            let _ = peers_tx.lock().unwrap().send(peer.clone());
        })
        .on_room_join(move |peer, room| {
            let _ = join_tx
                .lock()
                .unwrap()
                .send(format!("{} joined {room}", peer.id()));
        })
        .on_room_leave(move |peer, room| {
            let _ = leave_tx
                .lock()
                .unwrap()
                .send(format!("{} left {room}", peer.id()));
        })
        .start()
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, _rx) = text_client(&url, false);
    let peer = recv(&peers, "peer");
    let id = peer.id();
    for room in ["red", "blue", "red"] {
        peer.join(room).unwrap();
    }
    assert!(peer.leave("red"));
    assert!(!peer.leave("red"), "not a member any more");
    peer.join("green").unwrap();
    drop(client);
    let expected = [
        "joined red",
        "joined blue",
        "left red",
        "joined green",
        "left blue",
        "left green",
    ];
    for event in expected {
        assert_eq!(recv(&events, event), format!("{id} {event}"));
    }
    assert!(
        events.recv_timeout(Duration::from_millis(100)).is_err(),
        "a second join of a room, or leaving one it is not in, calls nothing"
    );
}

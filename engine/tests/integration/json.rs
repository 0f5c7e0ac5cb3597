//! The websocket_core JSON protocol on real sockets, driven by tungstenite as an independent
//! client: the exact envelopes on the wire (`sys.session.created` first, auto-replies with
//! `c` and `v`, a `sys.error` for every refused frame), order of a connection's handlers,
//! the message rate, subprotocol selection, JSON and binary clients sharing rooms, and a
//! broadcast reaching each of them in its own encoding.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use connectme::json::{
    HandlerError, JsonClient, JsonContext, JsonRouter, JsonStatus, RequestError,
};
use connectme::{Client, JsonHeartbeat, Listeners, PerProtocol, RateLimit, Server};
use serde::Deserialize;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::support::{connect, recv, server, wait_for, ws_url};

pub(crate) type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

#[derive(Deserialize)]
struct Echo {
    msg: String,
}

#[derive(Deserialize)]
struct Join {
    room: String,
}

#[derive(Deserialize)]
struct Say {
    room: String,
    text: String,
}

/// The router the tests share: `echo` (typed), `slow` (awaits), `join`, `say` (a room
/// broadcast to the others), `whoami` (requires auth), `fail` (an application error).
pub(crate) fn router() -> JsonRouter {
    let mut router = JsonRouter::default();
    router.on(
        "echo",
        |_, p: Echo| async move { Ok(json!({ "msg": p.msg })) },
    );
    router.on("slow", |_, p: Value| async move {
        connectme::sleep(Duration::from_millis(60)).await;
        Ok(p)
    });
    router.on("join", |ctx: JsonContext, p: Join| async move {
        ctx.join(&p.room)?;
        Ok(json!({ "joined": p.room }))
    });
    router.on("say", |ctx: JsonContext, p: Say| async move {
        let sent = ctx
            .broadcast_to_room(&p.room, "chat.message", &json!({ "text": p.text }), true)
            .map_err(HandlerError::internal)?;
        Ok(json!({ "sent": sent }))
    });
    router
        .on("whoami", |ctx: JsonContext, _: Value| async move {
            Ok(json!({ "user": ctx.user() }))
        })
        .requires_auth();
    router.on("fail", |_, _: Value| async move {
        Err::<(), _>(HandlerError::new(4100, "not today"))
    });
    router
}

fn json_server() -> Server {
    server()
        .json(router())
        .json_subprotocol("wscore.json")
        .start()
        .unwrap()
}

/// Connects to `path` and returns the socket and its `sys.session.created`.
pub(crate) fn open(server: &Server, path: &str) -> (Socket, Value) {
    let url = format!("ws://{}{path}", server.local_addr().unwrap());
    let (mut socket, _) = tungstenite::connect(url).expect("upgrade");
    set_timeout(&socket);
    let created = read(&mut socket);
    (socket, created)
}

fn set_timeout(socket: &Socket) {
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
}

pub(crate) fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).unwrap();
}

/// The next frame. A blocking read on a test thread can be interrupted (EINTR, from the
/// io_uring work of a runtime on that thread): tungstenite keeps what it read, so the read
/// is retried.
pub(crate) fn next(socket: &mut Socket) -> Message {
    loop {
        match socket.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other.expect("a frame"),
        }
    }
}

/// The next text frame, parsed; its `t` checked and removed so the rest compares exactly.
pub(crate) fn read(socket: &mut Socket) -> Value {
    loop {
        match next(socket) {
            Message::Text(text) => {
                let mut value: Value = serde_json::from_str(&text).expect("JSON");
                let t = value
                    .as_object_mut()
                    .and_then(|o| o.remove("t"))
                    .expect("every envelope has t");
                assert!(t.as_u64().is_some_and(|t| t > 1_700_000_000_000), "{t}");
                return value;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[test]
fn the_first_message_is_session_created() {
    let server = json_server();
    let (_socket, created) = open(&server, "/ws");
    assert_eq!(created["e"], "sys.session.created");
    assert_eq!(created["v"], "1.0");
    assert!(created["p"]["sessionId"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(created["p"]["userId"], Value::Null);
}

#[test]
fn a_routed_handler_is_answered_with_its_response_event_c_and_v() {
    let server = json_server();
    let (mut socket, _) = open(&server, "/ws");
    send(
        &mut socket,
        r#"{"v":"1.0","e":"echo","p":{"msg":"hi"},"c":"r1"}"#,
    );
    assert_eq!(
        read(&mut socket),
        json!({"v":"1.0","e":"echo.response","p":{"msg":"hi"},"c":"r1"})
    );
    // No `v` and no `p`: the current version, an empty payload (and a typed handler that
    // needs a field says which).
    send(&mut socket, r#"{"e":"echo","c":"r2"}"#);
    let answer = read(&mut socket);
    assert_eq!(answer["e"], "sys.error");
    assert_eq!(answer["c"], "r2");
    assert_eq!(answer["p"]["code"], 1009);
    assert_eq!(answer["p"]["details"]["errors"][0]["field"], "msg");
}

#[test]
fn every_refused_frame_gets_a_sys_error() {
    let server = json_server();
    let (mut socket, _) = open(&server, "/ws");
    let cases = [
        ("not json", 1001, None),
        (r#"[1,2]"#, 1001, None),
        (r#"{"p":{}, "c":"a"}"#, 1001, Some("a")),
        (r#"{"e":"echo","v":1,"c":"b"}"#, 1002, Some("b")),
        (r#"{"e":"echo","v":"9.9","c":"c"}"#, 1002, Some("c")),
        (r#"{"e":"echo","p":[],"c":"d"}"#, 1001, Some("d")),
        (r#"{"e":"nobody","c":"e"}"#, 1008, Some("e")),
        (r#"{"e":"whoami","c":"f"}"#, 1003, Some("f")),
    ];
    for (frame, code, c) in cases {
        send(&mut socket, frame);
        let answer = read(&mut socket);
        assert_eq!(answer["e"], "sys.error", "{frame}");
        assert_eq!(answer["p"]["code"], code, "{frame}: {answer}");
        assert_eq!(answer.get("c").and_then(Value::as_str), c, "{frame}");
    }
    send(&mut socket, r#"{"e":"fail","c":"g"}"#);
    let answer = read(&mut socket);
    assert_eq!(
        answer,
        json!({"v":"1.0","e":"sys.error","p":{"code":4100,"message":"not today"},"c":"g"})
    );
    socket.send(Message::binary(vec![1, 2, 3])).unwrap();
    let answer = read(&mut socket);
    assert_eq!(answer["e"], "sys.error");
    assert_eq!(answer["p"]["code"], 1001);
    assert_eq!(answer["p"]["details"]["reason"], "binary_frame");
    // A client's own text is repeated clipped, never in full.
    let long = "x".repeat(70_000);
    send(&mut socket, &format!(r#"{{"e":"{long}","c":"l"}}"#));
    let answer = read(&mut socket);
    assert_eq!(answer["p"]["code"], 1008);
    let message = answer["p"]["message"].as_str().unwrap();
    assert!(message.len() < 200 && message.ends_with('…'), "{message}");
    send(
        &mut socket,
        &format!(r#"{{"e":"echo","v":"{long}","c":"m"}}"#),
    );
    let answer = read(&mut socket);
    assert_eq!(answer["p"]["code"], 1002);
    assert!(answer.to_string().len() < 500, "{answer}");
    // And the connection still works.
    send(
        &mut socket,
        r#"{"e":"echo","p":{"msg":"still here"},"c":"h"}"#,
    );
    assert_eq!(read(&mut socket)["p"]["msg"], "still here");
}

#[test]
fn a_connections_messages_are_handled_in_order() {
    let server = json_server();
    let (mut socket, _) = open(&server, "/ws");
    send(&mut socket, r#"{"e":"slow","p":{"n":1},"c":"1"}"#);
    send(&mut socket, r#"{"e":"echo","p":{"msg":"2"},"c":"2"}"#);
    send(&mut socket, r#"{"e":"slow","p":{"n":3},"c":"3"}"#);
    let order: Vec<Value> = (0..3).map(|_| read(&mut socket)["c"].clone()).collect();
    assert_eq!(order, [json!("1"), json!("2"), json!("3")]);
}

#[test]
fn over_the_message_rate_a_message_gets_1010_with_retry_after() {
    let server = server()
        .json(router())
        .message_rate(RateLimit::new(1.0, 2))
        .start()
        .unwrap();
    let (mut socket, _) = open(&server, "/ws");
    for c in ["1", "2"] {
        send(
            &mut socket,
            &format!(r#"{{"e":"echo","p":{{"msg":"x"}},"c":"{c}"}}"#),
        );
        assert_eq!(read(&mut socket)["e"], "echo.response");
    }
    send(&mut socket, r#"{"e":"echo","p":{"msg":"x"},"c":"3"}"#);
    let answer = read(&mut socket);
    assert_eq!(answer["e"], "sys.error");
    assert_eq!(answer["c"], "3");
    assert_eq!(answer["p"]["code"], 1010);
    let retry = answer["p"]["retryAfterMs"]
        .as_u64()
        .expect("top-level retryAfterMs");
    assert!((1..=1000).contains(&retry), "{retry}");
    assert_eq!(answer["p"]["details"]["retryAfterMs"], retry);
}

#[test]
fn the_subprotocol_selects_json_on_any_path_and_is_named_in_the_101() {
    let server = json_server();
    let mut request = format!("ws://{}/game", server.local_addr().unwrap())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "other, wscore.json".parse().unwrap(),
    );
    let (mut socket, response) = tungstenite::connect(request).unwrap();
    set_timeout(&socket);
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "wscore.json"
    );
    assert_eq!(read(&mut socket)["e"], "sys.session.created");
    // Without it, another path speaks the binary protocol: a text frame goes to the
    // listeners, and no session announcement comes first.
    server.listen(|text: String, peer: &connectme::Peer| peer.send(format!("binary:{text}")));
    let (mut plain, _) = tungstenite::connect(ws_url(&server)).unwrap();
    set_timeout(&plain);
    plain.send(Message::text("hello")).unwrap();
    assert_eq!(next(&mut plain), Message::text("binary:hello"));
}

#[test]
fn json_and_binary_clients_share_rooms() {
    let server = json_server();
    let (tx, rx) = std::sync::mpsc::channel();
    let binary = connect(&ws_url(&server), |client| {
        client.listen(move |text: String, _: &Client| {
            let _ = tx.send(text);
        });
    });
    // The 101 reaches the client just before the server lists it.
    wait_for("the binary client to be listed", || {
        !server.clients().is_empty()
    });
    let peer = server.clients().remove(0);
    peer.join("lobby").unwrap();
    let (mut alice, _) = open(&server, "/ws");
    let (mut bob, _) = open(&server, "/ws");
    for socket in [&mut alice, &mut bob] {
        send(socket, r#"{"e":"join","p":{"room":"lobby"},"c":"j"}"#);
        assert_eq!(read(socket)["p"]["joined"], "lobby");
    }
    send(
        &mut alice,
        r#"{"e":"say","p":{"room":"lobby","text":"hi all"},"c":"s"}"#,
    );
    assert_eq!(
        read(&mut alice)["p"]["sent"],
        2,
        "bob and the binary client, not alice"
    );
    let heard = read(&mut bob);
    assert_eq!(
        heard,
        json!({"v":"1.0","e":"chat.message","p":{"text":"hi all"}})
    );
    let text: Value = serde_json::from_str(&recv(&rx, "the binary client's copy")).unwrap();
    assert_eq!(text["p"]["text"], "hi all");
    // A server-side room broadcast reaches the JSON clients too.
    server.broadcast_to_room(
        "lobby",
        r#"{"v":"1.0","e":"news","p":{},"t":1750000000000}"#,
    );
    assert_eq!(read(&mut alice)["e"], "news");
    assert_eq!(read(&mut bob)["e"], "news");
    drop(binary);
}

#[test]
fn a_per_protocol_broadcast_reaches_each_client_in_its_own_encoding() {
    let server = json_server();
    let (tx, rx) = std::sync::mpsc::channel();
    let binary = connect(&ws_url(&server), |client| {
        client.listen(move |data: bytes::Bytes, _: &Client| {
            let _ = tx.send(data.to_vec());
        });
    });
    wait_for("the binary client to be listed", || {
        !server.clients().is_empty()
    });
    server.clients().remove(0).join("arena").unwrap();
    let (mut json_client, _) = open(&server, "/ws");
    send(
        &mut json_client,
        r#"{"e":"join","p":{"room":"arena"},"c":"j"}"#,
    );
    assert_eq!(read(&mut json_client)["p"]["joined"], "arena");

    // Binary only: the JSON client, which could not read it, is not sent it.
    server.broadcast_to_room("arena", &b"\x09\x09"[..]);
    assert_eq!(recv(&rx, "the binary-only frame"), [9, 9]);
    let moved = PerProtocol::new(
        "player.moved",
        &json!({"x": 10, "y": 4}),
        &b"\x01\x0a\x04"[..],
    )
    .unwrap();
    server.broadcast_to_room("arena", moved);
    assert_eq!(
        read(&mut json_client),
        json!({"v":"1.0","e":"player.moved","p":{"x":10,"y":4}}),
        "the JSON client's next message is the event (no binary frame before it)"
    );
    assert_eq!(recv(&rx, "the binary encoding"), [1, 10, 4]);
    // The same for a global broadcast.
    let tick = PerProtocol::new("tick", &json!({"n": 1}), &b"\x07"[..]).unwrap();
    server.broadcast(tick);
    assert_eq!(
        read(&mut json_client),
        json!({"v":"1.0","e":"tick","p":{"n":1}})
    );
    assert_eq!(recv(&rx, "the binary tick"), [7]);
    assert!(PerProtocol::new("bad", &json!([1]), &b""[..]).is_err());
    drop(binary);
}

/// A JSON server whose heartbeat pings after 1 s of silence and closes after 3 s.
fn quick_heartbeat_server() -> Server {
    server()
        .json(router())
        .json_heartbeat(Some(JsonHeartbeat {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        }))
        .start()
        .unwrap()
}

#[test]
fn a_silent_connection_is_pinged_and_closed_with_4004_and_a_pong_keeps_it() {
    let server = quick_heartbeat_server();
    let (mut socket, _) = open(&server, "/ws");
    let started = Instant::now();
    let ping = read(&mut socket);
    assert_eq!(ping["e"], "sys.ping");
    assert!(ping["p"]["t"].as_u64().is_some(), "{ping}");
    assert!(ping.get("c").is_none());
    // Answered, the connection lives past the timeout; the pong itself gets no answer.
    send(&mut socket, r#"{"e":"sys.pong","p":{"t":1}}"#);
    let ping = read(&mut socket);
    assert_eq!(
        ping["e"], "sys.ping",
        "pinged again after another silent second"
    );
    send(&mut socket, r#"{"e":"sys.pong","p":{}}"#);
    // Then silence: closed with 4004 within the timeout (and the sweep's second).
    let closed_at = loop {
        match next(&mut socket) {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["e"], "sys.ping", "only pings while silent: {value}");
            }
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4004);
                break Instant::now();
            }
            other => panic!("expected pings then a 4004 close, got {other:?}"),
        }
    };
    assert!(
        closed_at - started > Duration::from_secs(4),
        "the pongs kept it open past the first timeout"
    );
}

#[test]
fn the_json_client_requests_listens_and_answers_the_heartbeat() {
    let server = quick_heartbeat_server();
    let url = format!("ws://{}/ws", server.local_addr().unwrap());
    let client = JsonClient::new(Client::builder(&url)).unwrap();
    let statuses = client.statuses();
    let (tx, created) = std::sync::mpsc::channel();
    client.on("sys.session.created", move |event| {
        let _ = tx.send(event.payload.clone());
    });
    client.connect_blocking().unwrap();
    assert_eq!(
        statuses.recv_timeout(Duration::from_secs(5)),
        Ok(JsonStatus::Connected)
    );
    assert!(recv(&created, "sys.session.created")["sessionId"].is_string());

    let wait = Duration::from_secs(5);
    let reply = client.request("echo", &json!({ "msg": "hi" }), wait).wait();
    assert_eq!(reply.unwrap(), json!({ "msg": "hi" }));
    match client.request("fail", &json!({}), wait).wait() {
        Err(RequestError::Refused { code, message, .. }) => {
            assert_eq!((code, message.as_str()), (4100, "not today"))
        }
        other => panic!("expected the application's error, got {other:?}"),
    }
    match client.request("echo", &json!({}), wait).wait() {
        Err(RequestError::Refused {
            code: 1009,
            payload,
            ..
        }) => {
            assert_eq!(payload["details"]["errors"][0]["field"], "msg")
        }
        other => panic!("expected 1009, got {other:?}"),
    }
    let slow = client.request("slow", &json!({}), Duration::from_millis(10));
    assert!(matches!(slow.wait(), Err(RequestError::Timeout)));

    // A room event reaches the listener; a sender's own request still gets its reply.
    let (tx, heard) = std::sync::mpsc::channel();
    client.on("chat.message", move |event| {
        let _ = tx.send(event.payload["text"].clone());
    });
    let joined = client.request("join", &json!({ "room": "r" }), wait).wait();
    assert_eq!(joined.unwrap(), json!({ "joined": "r" }));
    let (mut other, _) = open(&server, "/ws");
    send(&mut other, r#"{"e":"join","p":{"room":"r"},"c":"j"}"#);
    read(&mut other);
    send(
        &mut other,
        r#"{"e":"say","p":{"room":"r","text":"hello client"},"c":"s"}"#,
    );
    assert_eq!(recv(&heard, "the room's message"), json!("hello client"));

    // Past the heartbeat's timeout the client is still connected: it answers the pings.
    std::thread::sleep(Duration::from_secs(4));
    assert!(client.is_connected());
    assert!(statuses.try_recv().is_err(), "no disconnect");
    let reply = client
        .request("echo", &json!({ "msg": "still" }), wait)
        .wait();
    assert_eq!(reply.unwrap(), json!({ "msg": "still" }));
    client.close();
}

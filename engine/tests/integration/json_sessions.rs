//! Sessions on the JSON wire (sessions-resume.md), driven by tungstenite as an independent
//! client over real sockets on a two-shard server: `s` on every sequenced message and on
//! none of the control events, `sys.reconnect.request` answered with
//! `sys.session.restored` (with the request's `c`) and the exact missed messages, on
//! whichever shard the new socket landed; each refusal (1004, 1006, 1007, 1009, 1013, a
//! late request) answered without `s` while the connection keeps its fresh session;
//! `sys.ack` dropping acknowledged messages; a live connection replaced with
//! `sys.disconnect` and 4003; and the engine's `JsonClient` resuming by itself.

use std::sync::mpsc;
use std::time::Duration;

use connectme::json::{JsonClient, JsonStatus};
use connectme::{Client, PerProtocol, Reconnect, Server, SessionConfig};
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use crate::json::{next, open, read, router, send, Socket};
use crate::support::server;

fn session_server(config: SessionConfig) -> Server {
    server().json(router()).sessions(config).start().unwrap()
}

/// Sends `{e, p, c}` and reads the answer.
fn request(socket: &mut Socket, event: &str, payload: Value, c: &str) -> Value {
    let frame = json!({"v": "1.0", "e": event, "p": payload, "c": c});
    send(socket, &frame.to_string());
    read(socket)
}

/// A new connection asking to resume `session` (a `sys.session.created` payload) after
/// `last_seq`: the socket, its own fresh session, and the answer.
fn resume(server: &Server, session: &Value, last_seq: u64, c: &str) -> (Socket, Value, Value) {
    let (mut socket, fresh) = open(server, "/ws");
    let answer = request(
        &mut socket,
        "sys.reconnect.request",
        json!({
            "sessionId": session["sessionId"],
            "resumeSecret": session["resumeSecret"],
            "lastSeq": last_seq,
        }),
        c,
    );
    (socket, fresh["p"].clone(), answer)
}

/// Asks to resume with `payload` and returns the answer.
fn resume_with(server: &Server, payload: Value, c: &str) -> (Socket, Value, Value) {
    let (mut socket, fresh) = open(server, "/ws");
    let answer = request(&mut socket, "sys.reconnect.request", payload, c);
    (socket, fresh["p"].clone(), answer)
}

fn is_hex(value: &Value, len: usize) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The control `sys.error` a refused resume gets: the code and the request's `c`, no `s`.
fn assert_refused(answer: &Value, code: u16, c: &str) {
    assert_eq!(answer["e"], "sys.error", "{answer}");
    assert_eq!(answer["p"]["code"], code, "{answer}");
    assert_eq!(answer["c"], c, "{answer}");
    assert!(
        answer.get("s").is_none(),
        "a control event has no s: {answer}"
    );
}

#[test]
fn a_json_session_numbers_its_messages_and_a_resume_replays_exactly_the_missed_ones() {
    let server = session_server(SessionConfig::default());
    let (mut a, created) = open(&server, "/ws");
    assert_eq!(created["e"], "sys.session.created");
    assert!(created.get("s").is_none(), "{created}");
    let session = created["p"].clone();
    assert!(is_hex(&session["sessionId"], 32), "{session}");
    assert!(is_hex(&session["resumeSecret"], 32), "{session}");
    assert_eq!(
        request(&mut a, "join", json!({"room": "lobby"}), "j"),
        json!({"v":"1.0","e":"join.response","p":{"joined":"lobby"},"c":"j","s":1})
    );
    let (mut b, _) = open(&server, "/ws");
    request(&mut b, "join", json!({"room": "lobby"}), "bj");
    let say = |b: &mut Socket, text: &str| {
        let sent = request(b, "say", json!({"room": "lobby", "text": text}), text);
        assert_eq!(sent["p"]["sent"], 1, "{sent}");
    };
    let mut last = 1;
    // Eight drops and resumes: with two shards, the new socket lands on the session's
    // shard or on the other one, and both must give the same result.
    for round in 0..8 {
        say(&mut b, &format!("live {round}"));
        assert_eq!(
            read(&mut a),
            json!({"v":"1.0","e":"chat.message","p":{"text":format!("live {round}")},"s":last + 1})
        );
        last += 1;
        drop(a);
        say(&mut b, &format!("away {round}.1"));
        say(&mut b, &format!("away {round}.2"));
        // The broadcasts reach the session's shard through its mailbox.
        std::thread::sleep(Duration::from_millis(50));
        let (mut again, fresh, restored) = resume(&server, &session, last, &format!("r{round}"));
        assert_ne!(fresh["sessionId"], session["sessionId"]);
        assert_eq!(
            restored,
            json!({"v":"1.0","e":"sys.session.restored","p":{
                "sessionId": session["sessionId"], "userId": null, "rooms": ["lobby"],
                "metadata": null, "lastSeq": last, "replayed": 2,
            },"c":format!("r{round}")})
        );
        for n in 1..=2 {
            assert_eq!(
                read(&mut again),
                json!({"v":"1.0","e":"chat.message","p":{"text":format!("away {round}.{n}")},"s":last + n})
            );
        }
        last += 2;
        a = again;
    }
    assert_eq!(
        request(&mut a, "echo", json!({"msg": "still me"}), "e"),
        json!({"v":"1.0","e":"echo.response","p":{"msg":"still me"},"c":"e","s":last + 1})
    );
    // A server broadcast is numbered in the session's sequence too.
    server.broadcast(PerProtocol::new("tick", &json!({"n": 1}), &b"\x01"[..]).unwrap());
    assert_eq!(
        read(&mut a),
        json!({"v":"1.0","e":"tick","p":{"n":1},"s":last + 2})
    );
}

#[test]
fn a_refused_resume_is_answered_and_the_connection_keeps_its_fresh_session() {
    let server = session_server(SessionConfig::default());
    let (mut a, created) = open(&server, "/ws");
    let session = created["p"].clone();
    for n in 1..=3 {
        assert_eq!(request(&mut a, "echo", json!({"msg": "x"}), "e")["s"], n);
    }
    let id = session["sessionId"].clone();
    let secret = session["resumeSecret"].clone();

    let wrong_secret = json!({"sessionId": id, "resumeSecret": "00".repeat(16), "lastSeq": 0});
    let (mut c, _, answer) = resume_with(&server, wrong_secret, "bad");
    assert_eq!(
        answer,
        json!({"v":"1.0","e":"sys.error","p":{"code":1004,"message":"Invalid session credentials"},"c":"bad"})
    );
    // The connection goes on with the session its sys.session.created announced.
    assert_eq!(request(&mut c, "echo", json!({"msg": "y"}), "c1")["s"], 1);
    // A request that is not the connection's first message is refused.
    let late = json!({"sessionId": id, "resumeSecret": secret, "lastSeq": 3});
    assert_refused(
        &request(&mut c, "sys.reconnect.request", late, "late"),
        1001,
        "late",
    );
    assert_eq!(request(&mut c, "echo", json!({"msg": "y"}), "c2")["s"], 2);

    let unknown = json!({"sessionId": "ab".repeat(16), "resumeSecret": secret, "lastSeq": 0});
    assert_refused(&resume_with(&server, unknown, "u").2, 1006, "u");
    let not_an_id = json!({"sessionId": "nope", "resumeSecret": secret});
    assert_refused(&resume_with(&server, not_an_id, "n").2, 1006, "n");
    let no_id = json!({"resumeSecret": secret});
    assert_refused(&resume_with(&server, no_id, "m").2, 1009, "m");
    let no_secret = json!({"sessionId": id, "lastSeq": 0});
    assert_refused(&resume_with(&server, no_secret, "ns").2, 1004, "ns");
    let beyond = json!({"sessionId": id, "resumeSecret": secret, "lastSeq": 99});
    assert_refused(&resume_with(&server, beyond, "b").2, 1004, "b");

    // A request whose envelope itself is refused is still answered outside the sequence:
    // `p` not an object (1001), `v` not a string (1002). The connection goes on.
    let (mut e, _) = open(&server, "/ws");
    send(&mut e, r#"{"e":"sys.reconnect.request","p":[1],"c":"arr"}"#);
    assert_refused(&read(&mut e), 1001, "arr");
    send(
        &mut e,
        r#"{"e":"sys.reconnect.request","v":7,"p":{},"c":"ver"}"#,
    );
    assert_refused(&read(&mut e), 1002, "ver");
    assert_eq!(request(&mut e, "echo", json!({"msg": "z"}), "e1")["s"], 1);

    // A connection naming its own session.
    let (mut d, own) = open(&server, "/ws");
    let own = json!({
        "sessionId": own["p"]["sessionId"], "resumeSecret": own["p"]["resumeSecret"], "lastSeq": 0,
    });
    assert_refused(
        &request(&mut d, "sys.reconnect.request", own, "self"),
        1007,
        "self",
    );

    // None of it touched the session.
    assert_eq!(request(&mut a, "echo", json!({"msg": "x"}), "e")["s"], 4);
}

#[test]
fn acknowledged_messages_leave_the_buffer_and_a_resume_past_it_ends_the_session_with_1013() {
    let server = session_server(SessionConfig::default());
    let (mut a, created) = open(&server, "/ws");
    let session = created["p"].clone();
    for n in 1..=3 {
        assert_eq!(request(&mut a, "echo", json!({"msg": "x"}), "e")["s"], n);
    }
    // A malformed ack is answered (a control event); a good one is not.
    assert_refused(
        &request(&mut a, "sys.ack", json!({"seq": 2}), "ack"),
        1009,
        "ack",
    );
    send(&mut a, r#"{"e":"sys.ack","p":"2","c":"str"}"#);
    assert_refused(&read(&mut a), 1001, "str");
    send(&mut a, r#"{"e":"sys.ack","p":{"s":2}}"#);
    assert_eq!(request(&mut a, "echo", json!({"msg": "x"}), "e")["s"], 4);

    // Message 2 was acknowledged, so it is gone: resuming after 1 cannot be served.
    let (_b, _, answer) = resume(&server, &session, 1, "gap");
    assert_refused(&answer, 1013, "gap");
    // The session ended: its connection is closed (1013) and it cannot be resumed.
    let close = loop {
        match next(&mut a) {
            Message::Close(frame) => break frame,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected the close, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Again));
    assert_refused(&resume(&server, &session, 4, "gone").2, 1006, "gone");
}

#[test]
fn resuming_a_live_session_replaces_its_connection_with_sys_disconnect_and_4003() {
    let server = session_server(SessionConfig::default());
    let (mut a, created) = open(&server, "/ws");
    let session = created["p"].clone();
    assert_eq!(request(&mut a, "echo", json!({"msg": "x"}), "e")["s"], 1);
    let (mut b, _, restored) = resume(&server, &session, 1, "take");
    assert_eq!(restored["e"], "sys.session.restored", "{restored}");
    assert_eq!(restored["p"]["replayed"], 0);
    assert_eq!(
        read(&mut a),
        json!({"v":"1.0","e":"sys.disconnect","p":{"reason":"replaced_by_reconnection"}})
    );
    match next(&mut a) {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4003),
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(request(&mut b, "echo", json!({"msg": "x"}), "e")["s"], 2);
}

#[test]
fn the_json_client_resumes_its_session_without_losing_or_repeating_a_message() {
    let server = session_server(SessionConfig::default());
    let url = format!("ws://{}/ws", server.local_addr().unwrap());
    let builder = Client::builder(&url).reconnect(Reconnect::Backoff {
        initial: Duration::from_millis(150),
        max: Duration::from_millis(300),
        factor: 2.0,
    });
    let client = JsonClient::new(builder).unwrap();
    let statuses = client.statuses();
    let (tx, chat) = mpsc::channel();
    client.on("chat.message", move |event| {
        let text = event.payload["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let _ = tx.send((event.seq, text));
    });
    client.connect_blocking().unwrap();
    let timeout = Duration::from_secs(5);
    for room in ["lobby", "a-only"] {
        client
            .request("join", &json!({ "room": room }), timeout)
            .wait()
            .unwrap();
    }
    let (mut b, _) = open(&server, "/ws");
    request(&mut b, "join", json!({"room": "lobby"}), "bj");
    // What B is sent besides its answers.
    let mut to_b = Vec::new();
    let mut say = |b: &mut Socket, text: &str| {
        let mut answer = request(b, "say", json!({"room": "lobby", "text": text}), text);
        while answer["e"] != "say.response" {
            to_b.push(answer);
            answer = read(b);
        }
    };
    say(&mut b, "m1");
    // The server drops the client's connection, as a network failure would.
    server.room_members("a-only")[0].disconnect();
    say(&mut b, "m2");
    say(&mut b, "m3");
    let mut seen = Vec::new();
    while !seen.contains(&JsonStatus::Disconnected) {
        seen.push(statuses.recv_timeout(timeout).expect("a status"));
    }
    // Sent while away (a send on a connection that is dying is as lost as the
    // connection): queued, and sent after the resume.
    client
        .send("say", &json!({"room": "lobby", "text": "from a"}))
        .unwrap();
    while !seen.contains(&JsonStatus::Resumed) {
        seen.push(statuses.recv_timeout(timeout).expect("a status"));
    }
    assert_eq!(
        seen,
        [
            JsonStatus::Connected,
            JsonStatus::Disconnected,
            JsonStatus::Connected,
            JsonStatus::Resumed
        ]
    );
    say(&mut b, "m4");
    let got: Vec<(Option<u64>, String)> = (0..4)
        .map(|_| chat.recv_timeout(timeout).expect("a chat message"))
        .collect();
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4"]);
    let seqs: Vec<u64> = got.iter().map(|(s, _)| s.expect("numbered")).collect();
    // Numbered in order (the client's own `say.response` takes a number between m3 and m4
    // or before m2, wherever its queued send was handled).
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert!(seqs[3] - seqs[0] <= 4, "{seqs:?}");
    assert!(chat.recv_timeout(Duration::from_millis(200)).is_err());
    // The queued send reached the room once the session was back.
    if to_b.is_empty() {
        to_b.push(read(&mut b));
    }
    assert_eq!(to_b.len(), 1, "{to_b:?}");
    assert_eq!(to_b[0]["e"], "chat.message");
    assert_eq!(to_b[0]["p"]["text"], "from a");
}

//! Authentication at the upgrade: refusals are HTTP 401 / 403 before any 101, an async
//! authenticator's pipelined frames are not lost, a session keeps its user and only that
//! user may resume it, and the user index finds and closes a user's clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use connectme::{AuthError, AuthRequest, Identity, Listeners, Peer, Server, SessionConfig};

use crate::support::{read_head, recv, server, wait_for, WAIT};

/// Accepts `Bearer alice` and `Bearer bob` as those users (after a short async wait),
/// refuses `Bearer banned` with 403 and anything else with 401.
fn auth_server(sessions: bool) -> (Server, mpsc::Receiver<Peer>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let mut builder = server()
        .authenticate(|request: AuthRequest| async move {
            connectme::sleep(Duration::from_millis(30)).await;
            match request.token() {
                Some("banned") => Err(AuthError::Forbidden("banned".into())),
                Some(user @ ("alice" | "bob")) => Ok(Identity::user(user)),
                _ => Err(AuthError::Unauthorized("no valid token".into())),
            }
        })
        .on_connect(move |peer| {
            let _ = tx.lock().unwrap().send(peer.clone());
        });
    if sessions {
        builder = builder.sessions(SessionConfig::default());
    }
    (builder.start().unwrap(), rx)
}

/// Sends an upgrade request with `extra` headers (and `then` right behind it in the same
/// write); returns the stream and the response head.
fn upgrade(server: &Server, extra: &str, then: &[u8]) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(then);
    stream.write_all(&request).unwrap();
    let head = read_head(&mut stream);
    (stream, head)
}

#[test]
fn refusals_are_401_and_403_before_any_101() {
    let (server, _) = auth_server(false);
    for (header, status) in [
        ("", "401"),
        ("Authorization: Bearer mallory\r\n", "401"),
        ("Authorization: Bearer banned\r\n", "403"),
    ] {
        let (mut stream, head) = upgrade(&server, header, b"");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{header:?}: {head}"
        );
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            !String::from_utf8_lossy(&rest).contains("101"),
            "no upgrade follows a refusal"
        );
    }
    assert!(server.clients().is_empty());
    server.close();
    server.wait();
}

#[test]
fn frames_sent_while_the_authenticator_runs_are_not_lost() {
    let (server, peers) = auth_server(false);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    server.listen(move |text: String, peer: &Peer| {
        let _ = tx
            .lock()
            .unwrap()
            .send((text, peer.user().map(str::to_owned)));
    });
    // A masked text frame "early" right behind the request, in the same write.
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&key);
    frame.extend(b"early".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let (_stream, head) = upgrade(&server, "Cookie: access_token=alice\r\n", &frame);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let peer = recv(&peers, "alice's peer");
    assert_eq!(peer.user(), Some("alice"));
    assert_eq!(
        recv(&rx, "the pipelined frame"),
        ("early".to_owned(), Some("alice".to_owned()))
    );
    server.close();
    server.wait();
}

#[test]
fn only_the_sessions_user_may_resume_it_and_the_user_index_closes_a_user() {
    let (server, peers) = auth_server(true);
    let offer = "Sec-WebSocket-Extensions: x-connectme-session\r\n";
    let (mut alice, head) = upgrade(
        &server,
        &format!("Authorization: Bearer alice\r\n{offer}"),
        b"",
    );
    assert!(head.contains("x-connectme-session"), "{head}");
    // Header, tag, id, secret, refused code (none), the user's length and the user.
    let mut created = [0u8; 2 + 1 + 32 + 2 + 2 + 5];
    alice.read_exact(&mut created).unwrap();
    assert_eq!(&created[..3], &[0x83, 42, 3], "created, with the user");
    assert_eq!(&created[35..], b"\x00\x00\x00\x05alice");
    let (id, secret) = (hex(&created[3..19]), hex(&created[19..35]));
    let peer = recv(&peers, "alice's session");
    drop(alice);
    wait_for("suspended", || server.clients().len() == 1);

    let resume =
        format!("Sec-WebSocket-Extensions: x-connectme-session; resume={id}.{secret}.0\r\n");
    let (mut bob, head) = upgrade(
        &server,
        &format!("Authorization: Bearer bob\r\n{resume}"),
        b"",
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut refused = [0u8; 2 + 1 + 32 + 2 + 2 + 3];
    bob.read_exact(&mut refused).unwrap();
    assert_eq!(
        &refused[35..37],
        &[0x03, 0xEC],
        "1004: bob may not resume alice's session"
    );
    let bobs = recv(&peers, "bob's new session");

    assert_eq!(server.clients_of("alice").len(), 1);
    assert_eq!(server.clients_of("bob")[0].id(), bobs.id());
    server.close_user("alice", 1000, "");
    wait_for("alice's suspended session closed", || {
        server.clients_of("alice").is_empty()
    });
    assert!(peer.join("lobby").is_err(), "alice is gone");
    server.close();
    server.wait();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An authenticator that does not answer within the auth timeout: 503, and no upgrade.
#[test]
fn a_slow_authenticator_is_bounded_by_the_auth_timeout() {
    let server = server()
        .authenticate(|_: AuthRequest| async move {
            connectme::sleep(Duration::from_secs(30)).await;
            Ok(Identity::user("late"))
        })
        .auth_timeout(Duration::from_millis(100))
        .start()
        .unwrap();
    let started = std::time::Instant::now();
    let (_stream, head) = upgrade(&server, "Authorization: Bearer x\r\n", b"");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(server.clients().is_empty());
    server.close();
    server.wait();
}

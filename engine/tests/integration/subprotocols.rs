//! WebSocket subprotocol selection (RFC 6455 section 4.2.2): the server answers with a
//! subprotocol only when it was configured with it, as tungstenite and axum do, never
//! because a client offered one; a client offering none, or only unknown ones, is accepted
//! without one. tungstenite is the independent client: it fails the connection when the
//! server selects none of what it offered (`NoSubProtocol`), after checking that the
//! answer is otherwise a valid 101 upgrade.

use connectme::Listeners;
use connectme::{Client, Peer, Server};
use tungstenite::client::IntoClientRequest;
use tungstenite::error::{ProtocolError, SubProtocolError};
use tungstenite::http::HeaderValue;
use tungstenite::Message;

use crate::support::{connect_with, server, wait_for, ws_url};

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Connects with tungstenite, offering `offered` (`Sec-WebSocket-Protocol`).
fn offer(
    server: &Server,
    offered: &'static str,
) -> Result<(Socket, tungstenite::handshake::client::Response), Box<tungstenite::Error>> {
    let mut request = ws_url(server).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(offered));
    tungstenite::connect(request).map_err(Box::new)
}

/// Offers `offered` with tungstenite and expects the server to select none: a 101 answer
/// without `Sec-WebSocket-Protocol`, which tungstenite then fails. Returns once the server
/// has let go of that connection.
fn expect_none_selected(server: &Server, offered: &'static str) {
    match offer(server, offered).map_err(|e| *e) {
        Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        ))) => {}
        other => panic!("expected a 101 answer without a subprotocol, got {other:?}"),
    }
    wait_for("the failed connection gone", || server.clients().is_empty());
}

/// The subprotocol the server recorded for its only client.
fn server_side_protocol(server: &Server) -> Option<String> {
    wait_for("client registered", || server.clients().len() == 1);
    server
        .clients()
        .remove(0)
        .info()
        .protocol()
        .map(str::to_owned)
}

#[test]
fn no_subprotocol_is_selected_by_default_even_when_one_is_offered() {
    let server = server().start().unwrap();
    server.listen(|text: String, peer: &Peer| peer.send(text));
    expect_none_selected(&server, "chat");

    // A client offering none, as ConnectMe clients do, works as before.
    let (mut socket, response) = tungstenite::connect(ws_url(&server)).unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers().get("Sec-WebSocket-Protocol"), None);
    socket.send(Message::text("hello")).unwrap();
    assert_eq!(socket.read().unwrap(), Message::text("hello"));
    drop(socket);
    wait_for("tungstenite client gone", || server.clients().is_empty());

    // The engine's client accepts an answer without one, and the server records none.
    let client = connect_with(
        Client::builder(&ws_url(&server)).protocols(["chat"]),
        |_| {},
    );
    assert_eq!(client.protocol(), None);
    assert_eq!(server_side_protocol(&server), None);
    client.close();
    server.close();
    server.wait();
}

#[test]
fn a_configured_subprotocol_is_selected() {
    let server = server().protocols(["v1", "v2"]).start().unwrap();
    // The first one the client offers among those configured.
    let (socket, response) = offer(&server, "v3, v2, v1").unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol"),
        Some(&HeaderValue::from_static("v2"))
    );
    assert_eq!(server_side_protocol(&server).as_deref(), Some("v2"));
    drop(socket);
    server.close();
    server.wait();
}

#[test]
fn an_unconfigured_offer_is_not_echoed() {
    let server = server().protocols(["v1"]).start().unwrap();
    expect_none_selected(&server, "v9");

    let client = connect_with(Client::builder(&ws_url(&server)).protocols(["v9"]), |_| {});
    assert_eq!(client.protocol(), None);
    assert_eq!(server_side_protocol(&server), None);
    client.close();
    server.close();
    server.wait();
}

//! The chat example's server and client (`examples/chat.rs`), here so that tests run
//! them in-process.
//!
//! A client introduces itself, and only then does the server take its chat lines (a
//! listener of the client's own, added once it is introduced); introduced clients are in
//! the lobby room, lines are broadcast to the room, and `/who` lists its members.
//!
//! Both sides use the engine's sessions: a client whose connection drops reconnects and
//! resumes its session, so no line is lost or repeated either way, and the server keeps
//! its name and its place in the room meanwhile. `/kick` makes the server
//! drop the sender's connection ([`Peer::disconnect`]), as a network failure would, to
//! show it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectme::{
    Client, ClientSessionConfig, ConnectError, Listeners, Packet, Peer, Reconnect, Server,
    SessionConfig,
};

use crate::proto::{manifest::IntroductionMessage, registry};

/// What the server sends a client it kicked (once: it is kept for the resume).
pub const KICKED: &str = "* kicked: the server dropped your connection, your session resumes it";

/// What a client reports (to its own `on_line`, not to the room) after a reconnect that
/// resumes its session.
pub const RECONNECTED: &str = "* reconnected: resuming the session";

/// Per-client state: the name, once introduced. With sessions it lives as long as the
/// client's session, across its reconnects.
#[derive(Default)]
pub struct Member {
    name: Mutex<Option<String>>,
}

impl Member {
    /// The client's name, once it introduced itself.
    pub fn name(&self) -> Option<String> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The room every introduced member is in.
pub const LOBBY: &str = "lobby";

/// Starts a chat server with sessions on `addr`: members join the lobby room when they
/// introduce themselves.
pub fn server(addr: &str) -> std::io::Result<Server<Member>> {
    let server = Server::builder()
        .addr(addr)?
        .state(|_| Member::default())
        .sessions(SessionConfig::default())
        .build();
    server
        .register(&registry())
        .expect("the seed's ids are distinct");
    let chat = server.clone();
    server.listen(
        move |intro: Packet<IntroductionMessage>, peer: &Peer<Member>| {
            let name = intro.name.to_string();
            *peer.state().name.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
            if peer.join(LOBBY).is_err() {
                return; // gone meanwhile
            }
            chat.broadcast_to_room(LOBBY, format!("* {name} joined"));
            // Chat lines from now on: a listener of this client's own (ConnectMe's "listen
            // once logged in"). It belongs to the session, so it survives reconnects.
            let chat = chat.clone();
            peer.listen(
                move |line: String, peer: &Peer<Member>| match line.as_str() {
                    "/who" => {
                        let mut names: Vec<String> = chat
                            .room_members(LOBBY)
                            .iter()
                            .filter_map(|p| p.state().name())
                            .collect();
                        names.sort();
                        peer.send(format!("* here: {}", names.join(", ")));
                    }
                    "/kick" => {
                        tracing::info!(name = %name, "kicked: connection dropped, session kept");
                        // Kept in the session's replay buffer: it arrives after the resume.
                        peer.send(KICKED);
                        peer.disconnect();
                    }
                    _ => chat.broadcast_to_room(LOBBY, format!("{name}: {line}")),
                },
            );
        },
    );
    server.start()?;
    Ok(server)
}

/// Connects a chat client with sessions to `url` (not introduced yet: send it an
/// [`IntroductionMessage`]). Every text from the server goes to `on_line`, in order and
/// once, whatever happens to the connection; so do [`RECONNECTED`] after each reconnect
/// and a warning when a resume failed (a new session started: lines may be missing).
pub fn member(
    url: &str,
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> Result<Client, ConnectError> {
    let on_line = Arc::new(on_line);
    let connections = AtomicUsize::new(0);
    let (on_connect, on_failed) = (on_line.clone(), on_line.clone());
    let client = Client::builder(url)
        .sessions(ClientSessionConfig::default())
        .reconnect(Reconnect::Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            factor: 2.0,
        })
        .on_connect(move |_| {
            if connections.fetch_add(1, Ordering::Relaxed) > 0 {
                on_connect(RECONNECTED);
            }
        })
        .on_resume_failed(move |_, code| {
            on_failed(&format!(
                "* resume failed ({code}): a new session started, lines may be missing"
            ));
        })
        .build()?;
    client.listen(move |text: String, _: &Client| on_line(&text));
    client.connect_blocking()?;
    Ok(client)
}

//! ConnectMe engine: a thread-per-core WebSocket and TCP server and client, wire-compatible
//! with the Dart and JavaScript ConnectMe libraries and their PackMe messages.
//!
//! A [`Server`] runs one shard per core: a pinned thread with a monoio runtime (io_uring, or
//! epoll where io_uring is blocked) accepting on its own `SO_REUSEPORT` listener. A
//! connection lives on one shard; its handlers run there. [`Server`], [`Peer`] and
//! [`Client`] are `Send + Sync + Clone` handles usable from any thread.
//!
//! ```no_run
//! use connectme::{ByteString, Client, Listeners, Peer, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder().addr("127.0.0.1:9000")?.build();
//! server.listen(|text: ByteString, peer: &Peer| peer.send(text)); // echo
//! server.start()?;
//!
//! let client = Client::builder("ws://127.0.0.1:9000/").build()?;
//! client.listen(|text: String, _: &Client| println!("{text}"));
//! client.connect_blocking()?;
//! client.send("hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! Four layers, from the wire up, each in its own modules:
//!
//! 1. **The protocol core, without I/O** ([`proto`]). Frames, the handshake, ConnectMe's TCP
//!    framing, and [`proto::Connection`]: one connection's every rule as a state machine in
//!    the style of quinn-proto. Bytes and the current time go in
//!    ([`poll_received`](proto::Connection::poll_received),
//!    [`handle_timeout`](proto::Connection::handle_timeout)); messages, bytes to send
//!    ([`poll_transmit`](proto::Connection::poll_transmit)) and the next deadline
//!    ([`poll_timeout`](proto::Connection::poll_timeout)) come out. Limits and their close
//!    codes, the close handshake, pings, keepalive, the body and write timeouts and query
//!    deadlines all live there, and are tested with two connections wired in memory under
//!    simulated time, with no socket and no sleep.
//! 2. **The runtime seam** (private module `rt`). The only module that names the
//!    executor (monoio): spawning, timers, sockets, owned-buffer reads and writes, the
//!    io_uring/epoll choice. [`spawn`], [`sleep`] and [`timeout`] are its public part.
//! 3. **Links and shards** (private). A link drives one connection over its socket: a
//!    reader task, a writer task that parks when idle, and an entry in its thread's timer
//!    heap (one sleep per thread, not a timer per connection). A shard is a pinned thread
//!    with its own runtime, `SO_REUSEPORT` listener, connections and listener table; other
//!    threads reach it through its mailbox.
//! 4. **The API** ([`Server`], [`Peer`], [`Client`], the [`Listeners`] verbs, [`Query`]):
//!    ConnectMe's verbs on `Send + Sync + Clone` handles.
//! 5. **Above connections** (private modules `session`, `room`, `auth`, `guard`):
//!    sessions that outlive connections ([`SessionConfig`]: numbered messages both ways,
//!    a bounded replay buffer, resume at the upgrade, the engine's `x-connectme-session`
//!    extension on the wire; a session stays on the shard that created it and a resume
//!    arriving elsewhere hands its socket over), rooms ([`RoomOptions`]; membership
//!    belongs to the session), authentication before the 101 ([`Authenticator`]) and
//!    admission guards ([`Guards`], [`RateLimit`]).
//!
//! How a message's bytes move from the socket to a handler and back, what an idle
//! connection still holds, and why the runtime is monoio: `ARCHITECTURE.md` in the
//! repository.
//!
//! ## Why the defaults are what they are
//!
//! | what | default | why |
//! |---|---|---|
//! | frame and message size | 16 MiB | far above any game message, low enough that a declared length cannot exhaust memory; the receive buffer grows only with bytes that arrive |
//! | queued output | 16 MiB | a burst to a slow client fits; past it the client is closed with 1008 and its unsent queue dropped |
//! | keepalive | ping after 15 s of silence, close (1001) after 45 s | a peer that vanished without a FIN (a phone that lost its network) is gone within a minute; a live one answers the ping long before |
//! | body timeout | 30 s | a frame or message must arrive whole within it, or the connection is closed with 1008: a stalled upload holds its bytes only that long |
//! | write timeout | 30 s | output that a peer does not read for that long ends the connection (even mid-write), so a peer that never reads cannot hold its socket and queue |
//! | close timeout | 5 s | how long the peer has to answer our close frame, and how long a closing connection may take to flush |
//! | handshake timeout | 10 s | how long an upgrade request may take to arrive |
//! | query timeout | 30 s | per query, to the millisecond |
//! | suspended session | 2 minutes | a phone changing networks or leaving a tunnel is back well within it; abandoned sessions do not pile up |
//! | suspended sessions | 100 000 at most | clients that open sessions and vanish cannot hold memory without bound; past it the longest suspended expire early |
//! | replay buffer | 4 096 messages / 4 MiB per session | minutes of a busy game's traffic; past it a resume fails with 1013 instead of silently skipping |
//! | connections per address | 256, loopback exempt | a carrier-grade NAT or an office fits; one host cannot take the file limit |
//! | handshakes per address | 10/s, burst 100 | a NAT full of clients reconnecting after a restart passes; a flood gets 429 |
//! | auth timeout | 10 s | an authenticator that hangs cannot hold the socket (503) |
//!
//! Every one is configurable on [`ServerBuilder`] and [`ClientBuilder`]; the timeouts with
//! `None` turn off. ConnectMe TCP has no ping: there TCP keepalive, set on its sockets with
//! the keepalive's timing, finds a vanished peer.
#![deny(unsafe_code)]

mod auth;
#[cfg(any(test, feature = "bench-api"))]
#[doc(hidden)]
pub mod bench_api;
mod client;
mod guard;
pub mod json;
mod link;
mod listeners;
mod mailbox;
pub mod proto;
mod query;
mod reconnect;
mod room;
mod rt;
mod server;
mod session;
mod signal;

pub use auth::{
    AuthError, AuthFuture, AuthRequest, Authenticator, Identity, TOKEN_COOKIE,
    TOKEN_PROTOCOL_PREFIX, TOKEN_QUERY_PARAM,
};
pub use client::{Client, ClientBuilder, ClientSessionConfig, ConnectError, SendError, Target};
pub use guard::{Guards, RateLimit, Refusals};
pub use listeners::{Context, Key, Listen, ListenerId, Listeners, Raw, Reply};
pub use packme::{ByteString, Packet, Registry};
pub use proto::{BinaryRef, Frame, FrameParts, IntoFrame, Keepalive, Timeouts};
pub use query::{Query, QueryError};
pub use reconnect::Reconnect;
pub use room::{RoomError, RoomOptions};
pub use rt::{sleep, sleep_until, spawn, timeout, Driver, Elapsed, Task, DRIVER_ENV};
pub use server::{
    ConnInfo, Endpoint, IntoFanout, JsonHeartbeat, Limits, Peer, PerProtocol, Server,
    ServerBuilder, Transport,
};
pub use session::{resume_error, SessionConfig, SessionId};

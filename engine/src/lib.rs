//! ConnectMe engine: a thread-per-core WebSocket and TCP server and client, wire-compatible
//! with the Dart and JavaScript ConnectMe libraries and their PackMe messages.
//!
//! A [`Server`] runs one shard per core: a pinned thread with a monoio runtime (io_uring, or
//! epoll where io_uring is blocked) accepting on its own `SO_REUSEPORT` listener. A
//! connection lives on one shard; its handlers run there. [`Server`], [`Peer`] and
//! [`Client`] are `Send + Sync + Clone` handles usable from any thread.
//!
//! ```no_run
//! use connectme::{ByteString, Client, Peer, Server};
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
//! Layers, from the wire up: [`proto`] (frames, handshake, TCP framing: plain functions
//! over byte buffers), the links and shards (private), then the API ([`server`],
//! [`client`], [`listeners`], [`query`]).
#![deny(unsafe_code)]

#[doc(hidden)]
pub mod bench_api;
pub mod client;
mod link;
pub mod listeners;
mod mailbox;
pub mod proto;
pub mod query;
pub mod reconnect;
pub mod rt;
pub mod server;
mod signal;

pub use client::{Client, ClientBuilder, ConnectError, Target};
pub use listeners::{Context, Listen, ListenerId, Reply};
pub use packme::{ByteString, Packet, Registry};
pub use proto::outgoing::{Frame, FrameParts, IntoFrame};
pub use proto::received::BinaryRef;
pub use proto::{Keepalive, Timeouts};
pub use query::{Query, QueryError};
pub use reconnect::Reconnect;
pub use rt::{sleep, spawn, timeout, Driver};
pub use server::{ConnInfo, Endpoint, Limits, Peer, Server, ServerBuilder, Transport};

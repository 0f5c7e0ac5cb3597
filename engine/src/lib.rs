//! ConnectMe engine: a thread-per-core WebSocket and TCP server and client.
#![deny(unsafe_code)]

pub mod client;
mod conn;
pub mod driver;
mod iovec;
mod link;
pub mod listeners;
mod mailbox;
pub mod outgoing;
pub mod proto;
pub mod query;
pub mod reconnect;
pub mod server;
mod signal;

pub use client::{Client, ClientBuilder, ConnectError, Target};
pub use driver::Driver;

pub use listeners::{Context, Listen, ListenerId, Reply};
/// Spawns a task on the current shard or client thread, for handlers that need to await
/// (a query, a timer) without blocking their thread. Only call it from a handler or a
/// callback of the engine; the task is not `Send` and stays on that thread.
pub use monoio::spawn;
pub use outgoing::{Frame, FrameParts, IntoFrame};
pub use packme::{ByteString, Packet, Registry};
pub use query::{Query, QueryError};
pub use reconnect::Reconnect;
pub use server::{ConnInfo, Endpoint, Limits, Peer, Server, ServerBuilder, Transport};

//! ConnectMe engine: a thread-per-core WebSocket and TCP server and client.
#![forbid(unsafe_code)]

pub mod proto;

//! Integration tests on real loopback sockets with two shards. Run under both I/O drivers
//! by `.ci/run` (`CONNECTME_DRIVER=uring` and `=epoll`).

mod auth;
mod bad_input;
mod broadcast;
mod flush;
mod guards;
mod hostile;
mod json;
mod json_sessions;
mod listeners;
mod parking;
mod peers;
mod query;
mod reconnect;
mod rooms;
mod sessions;
mod subprotocols;
mod support;
mod tcp;

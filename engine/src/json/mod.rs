//! The websocket_core JSON event protocol's envelope (issue 17), beside the binary
//! ConnectMe protocol: parsing and validating inbound `v/e/p/c/t` messages
//! (websocket-core-features.md §3), the `sys.error` and close codes (§16), and writing
//! outbound envelopes with `s` for sequenced session messages (sessions-resume.md).
//!
//! It exists as its own module because the router, the session layer, the server's JSON
//! connections and the JSON client all speak this envelope; none of it does I/O.
//!
//! Where it departs from the reference, on purpose (§18): every refused message has a
//! typed `EnvelopeError` to answer with `sys.error` (1001, or 1002 for `v`, carrying the
//! message's `c` when it could be read) instead of a silent drop; a `v` that is not a string
//! is a 1002 instead of a crash; `sys.error` texts are fixed or the application's, never an
//! error's own text; a key given twice is refused (1001, `duplicate_key`).
//!
//! # API
//!
//! - `parse(text, &EnvelopeConfig) -> Result<Envelope, EnvelopeError>`: one pass, one
//!   validation in the reference's order (§3: JSON object, `e`, `v`, `p`, then `t`/`c`).
//!   `Envelope` borrows `e`, `c` and `p` (as raw JSON text, unparsed) from the frame.
//!   [`EnvelopeConfig`]: current version, supported set, minimum.
//! - `EnvelopeError`: its `EnvelopeErrorKind`, the `sys.error` [`ErrorCode`], the `c`
//!   and `v` to echo; `EnvelopeError::encode_answer` writes the whole `sys.error`.
//! - `Head`: `e`, `v`, `c`, `t`, `s` of an outbound envelope; `Head::encode` writes it
//!   around a `Serialize` payload, `Head::encode_raw` around JSON text.
//! - `SysError`: `{code, message, details?}` (+ `retryAfterMs` for 1010), with
//!   `SysError::internal` carrying only an id.
//!
//! # The router
//!
//! Above the envelope, the transport-independent half of the server's JSON protocol
//! (§8, §11): a [`JsonRouter`] built once and shared by every shard (handlers by event and
//! version, typed payloads decoded into the handler's `T` with a 1009 naming the failing
//! field, per-handler `requires_auth`, a not-found handler, ordered async middleware, and
//! auto-replies as `<event>.response`), and per connection a `JsonDispatcher` that runs
//! the messages in order (or up to `concurrency` at once), bounded, timed and cancelled with
//! the connection. Handlers get a [`JsonContext`] (`send`, `emit`, `reply`, `error`, room
//! broadcast, join/leave) and fail with a [`HandlerError`]: an application's own answer, or
//! any error (and any panic) as 1500 with a logged id. The server plugs a connection in by
//! implementing `JsonPeer` (send a frame, close, identity, rooms).
//!
//! # The JSON library: sonic-rs, by measurement
//!
//! The same pass runs on either library (`JsonBackend`: `SonicRs`, `SerdeJson`);
//! measured with `cargo bench -p benches --bench json` (benches/benches/json.rs: parse,
//! validate, borrow `e` and `c`), x86-64 without `target-cpu`, on this 2-core machine:
//!
//! | message | serde_json 1.0.154 | sonic-rs 0.5.12 |
//! |---|---|---|
//! | chat, 101 B | 190 ns | 137 ns (−28 %) |
//! | state sync, 4 070 B | 4.17 µs | 3.96 µs (−5 %) |
//!
//! Three reruns while other work loaded the machine kept the order (chat 260–269 ns
//! against 196–203 ns; 4 KiB 5.58–6.08 µs against 5.47–5.90 µs), and
//! `RUSTFLAGS="-C target-cpu=native"` changed neither ratio. Small messages are this
//! protocol's traffic (chat, lobby, RPC), so `parse` uses sonic-rs. What that costs: a
//! larger dependency tree and SIMD `unsafe` code reading untrusted input; the tests hold it
//! to serde_json (both must give the same `Result` on every edge case and on random
//! objects and text), and switching back is `parse_with::<SerdeJson>`. Outbound encoding
//! stays on serde_json's writer (65 ns for a small reply with `c` and `s`). simd-json was
//! not a candidate: it parses a mutable buffer in place, so a received frame would have to
//! be copied first, and nothing could borrow from the frame itself.

mod codes;
mod context;
mod dispatch;
mod encode;
mod envelope;
mod error;
mod router;
#[cfg(test)]
mod router_tests;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

/// The JSON protocol's client (in the client's module, as it is built on [`crate::Client`]).
pub use crate::client::{
    JsonClient, JsonEvent, JsonListenerId, JsonReply, JsonStatus, RequestError,
};
pub use codes::ErrorCode;
pub use context::{JsonContext, SendError};
pub(crate) use context::{JsonPeer, PeerClosed};
pub use dispatch::DispatchConfig;
pub(crate) use dispatch::JsonDispatcher;
pub use encode::EncodeError;
pub(crate) use encode::{now_ms, Head, SysError, SYS_ERROR};
pub use envelope::EnvelopeConfig;
pub(crate) use envelope::{parse, Envelope};
#[cfg(any(test, feature = "bench-api"))]
pub(crate) use envelope::{parse_with, SerdeJson, SonicRs};
pub use error::HandlerError;
pub use router::{JsonRouter, LocalBoxFuture, Next, Outcome, Route};
pub use schema::{JsonController, Schema};

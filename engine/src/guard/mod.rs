//! Admission and rate-limit guards: who may open a connection, how often, and from where.
//!
//! The reference backend has no limits on connections or handshakes per address, no origin
//! check and a per-session rate limiter that a reconnect resets (spec §18 B6, C4, C8, E3).
//! This module holds the pieces that close those gaps, as plain types over the current time
//! with no I/O and no clock reads of their own, so they are tested under simulated time:
//!
//! - [`RateLimit`] and `TokenBucket`: a rate with a burst, and the 16-byte state that
//!   enforces it (GCRA, one timestamp). Small enough to live in every session.
//! - [`Guards`] and `AdmissionControl`: the connection-level guards (total connections,
//!   connections and handshake rate per address, allowed origins), shared by every shard
//!   thread behind sharded mutexes touched once per connection, never per message.
//!   `admit` hands out a `Permit` that gives the connection back when dropped.
//! - `Refusal` and `http_refusal`: which guard said no, and the HTTP response that says so
//!   (503, 429 with `Retry-After`, 403), in the format of the handshake's own errors.
//!
//! The server wires them in: [`ServerBuilder::guards`](crate::ServerBuilder::guards) and
//! [`ServerBuilder::message_rate`](crate::ServerBuilder::message_rate) configure them,
//! [`Server::refusals`](crate::Server::refusals) counts what they refused.

mod admission;
mod bucket;
mod origin;
mod refusal;

pub use admission::Guards;
pub(crate) use admission::{AdmissionControl, Permit};
pub use bucket::RateLimit;
pub(crate) use bucket::TokenBucket;
pub use refusal::Refusals;
// `http_refusal` also answers the upgrade's other refusals (authentication) in the same
// format.
pub(crate) use refusal::{http_refusal, Refusal, RefusalCounters};

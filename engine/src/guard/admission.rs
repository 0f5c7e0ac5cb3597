//! Connection admission: the total cap, the caps and handshake rate per address, and the
//! origin check, shared by every shard thread.
//!
//! The reference has no limits on connections or handshakes per address (spec §18 B6), and
//! its only rate limit is per session, which a reconnect resets (C8). Here every accepted
//! connection asks [`AdmissionControl::admit`] once, before its upgrade is answered, and
//! holds the returned [`Permit`] for its whole life; dropping the permit gives the slot
//! back. Nothing here runs per message.
//!
//! # Contention
//!
//! The total is one atomic. Per-address state sits in [`SHARDS`] mutexes chosen by a keyed
//! hash of the address, each padded to its own cache line: two shard threads contend only
//! when two connections from addresses in the same slot arrive or close at the same moment,
//! and then for a hash-map lookup.
//!
//! # Memory bound
//!
//! An attacker rotating source addresses must not grow the table. An address group's entry
//! (about 40 bytes plus the map's overhead) exists while it has an open connection or its
//! handshake bucket is not full, and is removed:
//!
//! - when its last connection closes, if its bucket is full (or there is no rate limit);
//! - by a sweep of its slot at most once per [`SWEEP_EVERY`] during `admit` (and by
//!   [`AdmissionControl::sweep`]), once its bucket has refilled: with the default
//!   rate that is at most 10 s after its last handshake;
//! - and, when a slot holds more than `max(IDLE_PER_SLOT, its busy entries)` idle entries
//!   (no open connection, bucket still refilling), by evicting all of that slot's idle
//!   entries. Their rate-limit state is lost, which gains an attacker nothing they did not
//!   already have by rotating addresses.
//!
//! So the table never holds more than one entry per address group with an open
//! connection, plus at most `SHARDS × max(IDLE_PER_SLOT, busy entries per slot)` idle ones:
//! 65 536 idle entries (a few MiB) unless the open connections themselves are more.
//! Map capacity is given back after a sweep that leaves a slot mostly empty.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::bucket::{RateLimit, TokenBucket};
use super::origin::AllowedOrigins;
use super::refusal::{Refusal, RefusedBy};

/// Mutex-guarded slots of the per-address table.
const SHARDS: usize = 64;
/// Idle entries a slot may hold before they are evicted (see the module docs).
const IDLE_PER_SLOT: usize = 1024;
/// How often `admit` sweeps the slot it touches.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Connection-level guards: caps on connections, the handshake rate per address, and the
/// origins allowed to open a WebSocket.
///
/// Per-address guards count IPv4 addresses one by one and IPv6 addresses by /64 (one host,
/// or one home network, usually owns a whole /64 and can pick any address in it);
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 peer) count as their IPv4 address.
///
/// ```
/// use connectme::{Guards, RateLimit};
///
/// let guards = Guards {
///     max_connections: Some(100_000),
///     handshakes_per_ip: Some(RateLimit::per_second(5).burst(20)),
///     allowed_origins: Some(vec!["https://game.example.com".into()]),
///     ..Guards::default()
/// };
/// assert_eq!(guards.max_connections_per_ip, Some(256));
/// ```
///
/// # Defaults, and why
///
/// | guard | default | why |
/// |---|---|---|
/// | `max_connections` | `None` | the right total depends on the machine (memory, `ulimit -n`) and the game; a guessed cap refuses real players on a big box, and one address cannot reach the fd limit past the per-address cap |
/// | `max_connections_per_ip` | 256 | one host cannot hold more than 256 sockets' worth of memory, while a carrier-grade NAT address (typically a few dozen subscribers, each with a connection or two) or an office still fits |
/// | `handshakes_per_ip` | 10/s, burst 100 | a hundred clients behind one NAT reconnect at once after a restart; 600 a minute sustained is far above any honest address and caps what one address costs the authenticator; the excess gets 429 with `Retry-After` |
/// | `allowed_origins` | `None` (no check) | the server cannot guess its site's origins, and non-browser clients send none; **set it when browsers connect and the handshake authenticates with cookies**, or any site can open sockets in your users' names |
/// | `exempt_loopback` | `true` | loopback peers are a local reverse proxy (all clients would share its address) or a load test; they still count toward `max_connections` |
///
/// Behind a reverse proxy or load balancer every connection has the proxy's address: pass
/// the client's real address (PROXY protocol, `X-Forwarded-For` from a trusted proxy) or
/// turn the per-address guards off with `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Guards {
    /// Most connections open at once on the whole server (503 past it).
    pub max_connections: Option<usize>,
    /// Most connections open at once from one address or IPv6 /64 (503 past it).
    pub max_connections_per_ip: Option<usize>,
    /// Connection attempts per address or IPv6 /64 (429 with `Retry-After` past it). An
    /// attempt that passes the rate takes a token even if a connection cap then refuses it,
    /// so a client hammering at its cap is soon told when to come back.
    pub handshakes_per_ip: Option<RateLimit>,
    /// Origins whose pages may open a WebSocket (403 for others); `None` allows all. A
    /// request without an `Origin` header (not a browser) passes; `Origin: null` passes
    /// only if the list holds `"null"`. Entries are `scheme://host[:port]`, compared
    /// ignoring ASCII case; no wildcards.
    pub allowed_origins: Option<Vec<String>>,
    /// Whether loopback peers (127.0.0.0/8, `::1`) skip the per-address guards.
    pub exempt_loopback: bool,
}

impl Guards {
    /// Every guard off: no caps, no rate, no origin check (tests and benchmarks).
    pub const fn off() -> Self {
        Self {
            max_connections: None,
            max_connections_per_ip: None,
            handshakes_per_ip: None,
            allowed_origins: None,
            exempt_loopback: true,
        }
    }
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_connections_per_ip: Some(256),
            handshakes_per_ip: Some(RateLimit::per_second(10).burst(100)),
            allowed_origins: None,
            exempt_loopback: true,
        }
    }
}

/// What per-address guards count: an IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IpKey {
    V4(u32),
    V6(u64),
}

impl IpKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One address group's state.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Connections open.
    open: u32,
    /// Handshake bucket (unused without a handshake rate).
    bucket: TokenBucket,
}

/// One mutex-guarded part of the per-address table.
#[derive(Debug)]
struct Slot {
    entries: HashMap<IpKey, Entry, RandomState>,
    /// Entries with an open connection.
    busy: usize,
    /// When `admit` sweeps this slot next.
    next_sweep: Instant,
}

impl Slot {
    /// Removes the entries that can be forgotten at `now`, and gives back capacity the
    /// slot no longer needs.
    fn sweep(&mut self, rate: Option<&RateLimit>, now: Instant) {
        self.entries
            .retain(|_, entry| !forgettable(entry, rate.is_some(), now));
        self.next_sweep = now.checked_add(SWEEP_EVERY).unwrap_or(now);
        let len = self.entries.len();
        if self.entries.capacity() > 64 && self.entries.capacity() / 4 > len {
            self.entries.shrink_to(len * 2);
        }
    }

    /// Before inserting an entry: keeps the idle entries bounded (see the module docs).
    fn make_room(&mut self, rate: Option<&RateLimit>, now: Instant) {
        let limit = IDLE_PER_SLOT.max(self.busy);
        if self.entries.len().saturating_sub(self.busy) < limit {
            return;
        }
        self.sweep(rate, now);
        if self.entries.len().saturating_sub(self.busy) >= limit {
            self.entries.retain(|_, entry| entry.open > 0);
        }
    }
}

/// Whether an entry holds nothing worth keeping at `now`.
fn forgettable(entry: &Entry, rated: bool, now: Instant) -> bool {
    entry.open == 0 && (!rated || entry.bucket.is_full(now))
}

/// A slot padded to its own cache line, so that slots do not contend through false
/// sharing.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(Mutex<Slot>);

/// The state shared by the control's clones and its permits.
struct Shared {
    max_connections: Option<usize>,
    max_per_ip: Option<usize>,
    rate: Option<RateLimit>,
    exempt_loopback: bool,
    origins: Option<AllowedOrigins>,
    /// Connections admitted and not yet released.
    open: AtomicUsize,
    /// The first `now` seen; `latest` counts from it.
    base: Instant,
    /// Nanoseconds from `base` to the latest `now` passed in: the time a release judges
    /// buckets by, so that dropping a permit reads no clock.
    latest: AtomicU64,
    /// Picks the slot; keyed independently of the slots' maps, whose keys then spread
    /// over all of their hash bits.
    pick: RandomState,
    slots: Box<[Padded]>,
}

impl Shared {
    fn slot(&self, key: &IpKey) -> MutexGuard<'_, Slot> {
        let index = (self.pick.hash_one(key) % SHARDS as u64) as usize;
        self.slots[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn observe(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.latest.fetch_max(nanos, Ordering::Relaxed);
    }

    fn latest(&self) -> Instant {
        let nanos = self.latest.load(Ordering::Relaxed);
        self.base
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.base)
    }

    fn reserve_total(&self) -> Result<(), Refusal> {
        let max = self.max_connections.unwrap_or(usize::MAX);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .map(drop)
            .map_err(|_| Refusal::new(RefusedBy::Connections))
    }

    fn release(&self, key: Option<IpKey>) {
        if let Some(key) = key {
            let now = self.latest();
            let mut slot = self.slot(&key);
            let slot = &mut *slot;
            if let Some(entry) = slot.entries.get_mut(&key) {
                entry.open = entry.open.saturating_sub(1);
                if entry.open == 0 {
                    slot.busy = slot.busy.saturating_sub(1);
                    if forgettable(entry, self.rate.is_some(), now) {
                        slot.entries.remove(&key);
                    }
                }
            }
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection guards of one server, shared by all its shard threads (clones share
/// the state).
#[derive(Clone)]
pub(crate) struct AdmissionControl {
    shared: Arc<Shared>,
}

impl fmt::Debug for AdmissionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("AdmissionControl")
            .field("open", &s.open.load(Ordering::Relaxed))
            .field("max_connections", &s.max_connections)
            .field("max_connections_per_ip", &s.max_per_ip)
            .field("handshakes_per_ip", &s.rate)
            .field("exempt_loopback", &s.exempt_loopback)
            .field("origins", &s.origins)
            .finish_non_exhaustive()
    }
}

impl AdmissionControl {
    /// The guards in `guards`, with `now` as the start of time.
    pub(crate) fn new(guards: &Guards, now: Instant) -> Self {
        let slots = (0..SHARDS)
            .map(|_| {
                Padded(Mutex::new(Slot {
                    entries: HashMap::with_hasher(RandomState::new()),
                    busy: 0,
                    next_sweep: now.checked_add(SWEEP_EVERY).unwrap_or(now),
                }))
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                max_connections: guards.max_connections,
                max_per_ip: guards.max_connections_per_ip,
                rate: guards.handshakes_per_ip,
                exempt_loopback: guards.exempt_loopback,
                origins: guards.allowed_origins.as_deref().map(AllowedOrigins::new),
                open: AtomicUsize::new(0),
                base: now,
                latest: AtomicU64::new(0),
                pick: RandomState::new(),
                slots,
            }),
        }
    }

    /// Admits a connection from `ip` (`None` when unknown: only the total applies), or
    /// says which guard refused it. Hold the permit for the connection's life.
    ///
    /// Checks, in order: the handshake rate of the address (an attempt it lets through
    /// takes a token, whatever the caps then say), its connection cap, the total cap. The
    /// origin is not checked here: call [`Self::check_origin`] once the upgrade request
    /// has been read. Locks one slot's mutex for a hash-map lookup; reads no clock.
    pub(crate) fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Result<Permit, Refusal> {
        let shared = &self.shared;
        shared.observe(now);
        let per_ip = shared.max_per_ip.is_some() || shared.rate.is_some();
        let key = ip
            .filter(|ip| per_ip && !(shared.exempt_loopback && ip.to_canonical().is_loopback()))
            .map(IpKey::of);
        let Some(key) = key else {
            shared.reserve_total()?;
            return Ok(self.permit(None));
        };

        let rate = shared.rate.as_ref();
        let mut slot = shared.slot(&key);
        let slot = &mut *slot;
        if now >= slot.next_sweep {
            slot.sweep(rate, now);
        }
        if !slot.entries.contains_key(&key) {
            slot.make_room(rate, now);
        }
        let entry = slot.entries.entry(key).or_insert(Entry {
            open: 0,
            bucket: TokenBucket::new(now),
        });
        if let Some(rate) = rate {
            entry.bucket.take(rate, now).map_err(Refusal::rate)?;
        }
        let cap = shared.max_per_ip.unwrap_or(usize::MAX);
        if entry.open as usize >= cap || entry.open == u32::MAX {
            return Err(Refusal::new(RefusedBy::ConnectionsPerIp));
        }
        shared.reserve_total()?;
        entry.open += 1;
        if entry.open == 1 {
            slot.busy += 1;
        }
        Ok(self.permit(Some(key)))
    }

    fn permit(&self, key: Option<IpKey>) -> Permit {
        Permit {
            shared: Arc::clone(&self.shared),
            key,
        }
    }

    /// Whether a WebSocket upgrade with this `Origin` header value (or none) may go on.
    /// Without an allow-list everything passes; with one, see [`Guards::allowed_origins`].
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        self.shared
            .origins
            .as_ref()
            .is_none_or(|origins| origins.allows(origin))
    }

    /// [`Self::origin_allowed`] as a refusal (403).
    pub(crate) fn check_origin(&self, origin: Option<&str>) -> Result<(), Refusal> {
        if self.origin_allowed(origin) {
            Ok(())
        } else {
            Err(Refusal::new(RefusedBy::Origin))
        }
    }

    /// Removes every forgettable entry now (`admit` does this for its slot once per
    /// second; a server may also call it from a timer so that memory comes back when
    /// connections stop arriving).
    pub(crate) fn sweep(&self, now: Instant) {
        self.shared.observe(now);
        let rate = self.shared.rate.as_ref();
        for slot in self.shared.slots.iter() {
            slot.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sweep(rate, now);
        }
    }

    /// Connections admitted and not yet released.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Address groups the table holds (for metrics and the memory-bound test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn tracked_addresses(&self) -> usize {
        self.shared
            .slots
            .iter()
            .map(|slot| {
                slot.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }
}

/// An admitted connection. Dropping it releases the connection's place in the caps; hold
/// it for the connection's whole life.
#[must_use = "dropping the permit releases the connection's slot at once"]
pub(crate) struct Permit {
    shared: Arc<Shared>,
    /// The address group counted, if any.
    key: Option<IpKey>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("key", &self.key).finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    fn v6(text: &str) -> Option<IpAddr> {
        Some(IpAddr::V6(text.parse::<Ipv6Addr>().unwrap()))
    }

    fn control(guards: Guards) -> (AdmissionControl, Instant) {
        let t0 = Instant::now();
        (AdmissionControl::new(&guards, t0), t0)
    }

    #[test]
    fn is_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<AdmissionControl>();
        send_sync::<Permit>();
        assert!(std::mem::size_of::<Permit>() <= 24);
        assert!(std::mem::size_of::<Padded>() <= 256);
    }

    #[test]
    fn defaults() {
        let guards = Guards::default();
        assert_eq!(guards.max_connections, None);
        assert_eq!(guards.max_connections_per_ip, Some(256));
        assert_eq!(guards.handshakes_per_ip, Some(RateLimit::new(10.0, 100)));
        assert_eq!(guards.allowed_origins, None);
        assert!(guards.exempt_loopback);
    }

    #[test]
    fn per_ip_cap_and_release_on_drop() {
        let (control, t0) = control(Guards {
            max_connections_per_ip: Some(2),
            handshakes_per_ip: None,
            ..Guards::default()
        });
        let a = v4(203, 0, 113, 7);
        let first = control.admit(a, t0).unwrap();
        let second = control.admit(a, t0).unwrap();
        let refused = control.admit(a, t0).unwrap_err();
        assert_eq!(refused, Refusal::new(RefusedBy::ConnectionsPerIp));
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.retry_after, None);
        // Another address is not affected; unknown addresses only count in the total.
        let other = control.admit(v4(203, 0, 113, 8), t0).unwrap();
        let unknown: Vec<_> = (0..5).map(|_| control.admit(None, t0).unwrap()).collect();
        assert_eq!(control.open_connections(), 8);
        drop(first);
        let third = control.admit(a, t0).unwrap();
        assert!(control.admit(a, t0).is_err());
        drop((second, third, other, unknown));
        assert_eq!(control.open_connections(), 0);
        assert_eq!(control.tracked_addresses(), 0, "no rate: freed on release");
        let _again = control.admit(a, t0).unwrap();
    }

    #[test]
    fn total_cap() {
        let (control, t0) = control(Guards {
            max_connections: Some(3),
            ..Guards::default()
        });
        let permits: Vec<_> = (1..=3)
            .map(|i| control.admit(v4(198, 51, 100, i), t0).unwrap())
            .collect();
        let refused = control.admit(v4(198, 51, 100, 9), t0).unwrap_err();
        assert_eq!(refused, Refusal::new(RefusedBy::Connections));
        assert_eq!(refused.status(), 503);
        assert_eq!(
            control.admit(None, t0).unwrap_err().by,
            RefusedBy::Connections
        );
        // A refusal by the total leaves the address's count untouched.
        assert_eq!(control.open_connections(), 3);
        drop(permits);
        let _permit = control.admit(v4(198, 51, 100, 9), t0).unwrap();
        assert_eq!(control.open_connections(), 1);
    }

    #[test]
    fn handshake_rate_is_429_with_retry_after() {
        let (control, t0) = control(Guards {
            handshakes_per_ip: Some(RateLimit::per_second(4).burst(2)),
            ..Guards::default()
        });
        let a = v4(192, 0, 2, 1);
        // Permits dropped at once: the rate counts attempts, not open connections.
        drop(control.admit(a, t0).unwrap());
        drop(control.admit(a, t0).unwrap());
        let refused = control.admit(a, t0 + 100 * MS).unwrap_err();
        assert_eq!(refused, Refusal::rate(150 * MS));
        assert_eq!(refused.status(), 429);
        let response = String::from_utf8(refused.http_response()).unwrap();
        assert!(response.starts_with("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"));
        // Other addresses have their own buckets.
        drop(control.admit(v4(192, 0, 2, 2), t0).unwrap());
        assert!(control.admit(a, t0 + 249 * MS).is_err());
        drop(control.admit(a, t0 + 250 * MS).unwrap());
        assert_eq!(
            control.admit(a, t0 + 250 * MS).unwrap_err(),
            Refusal::rate(250 * MS)
        );
        assert_eq!(control.open_connections(), 0);
    }

    #[test]
    fn refused_attempts_still_take_tokens_from_a_capped_address() {
        let (control, t0) = control(Guards {
            max_connections_per_ip: Some(1),
            handshakes_per_ip: Some(RateLimit::per_second(1).burst(3)),
            ..Guards::default()
        });
        let a = v4(192, 0, 2, 50);
        let _held = control.admit(a, t0).unwrap();
        assert_eq!(
            control.admit(a, t0).unwrap_err().by,
            RefusedBy::ConnectionsPerIp
        );
        assert_eq!(
            control.admit(a, t0).unwrap_err().by,
            RefusedBy::ConnectionsPerIp
        );
        // A client hammering at its cap is told to back off.
        assert_eq!(
            control.admit(a, t0).unwrap_err(),
            Refusal::rate(Duration::from_secs(1))
        );
    }

    #[test]
    fn ipv6_counts_per_64() {
        let (control, t0) = control(Guards {
            max_connections_per_ip: Some(2),
            handshakes_per_ip: None,
            ..Guards::default()
        });
        let _a = control.admit(v6("2001:db8:1:2::1"), t0).unwrap();
        let _b = control
            .admit(v6("2001:db8:1:2:ffff:ffff:ffff:ffff"), t0)
            .unwrap();
        assert_eq!(
            control
                .admit(v6("2001:db8:1:2:abcd::9"), t0)
                .unwrap_err()
                .by,
            RefusedBy::ConnectionsPerIp,
            "same /64"
        );
        let _c = control.admit(v6("2001:db8:1:3::1"), t0).unwrap();
        let _d = control.admit(v6("2001:db9:1:2::1"), t0).unwrap();
        assert_eq!(control.tracked_addresses(), 3);
    }

    #[test]
    fn ipv4_mapped_counts_as_ipv4() {
        let (control, t0) = control(Guards {
            max_connections_per_ip: Some(1),
            handshakes_per_ip: None,
            ..Guards::default()
        });
        let _plain = control.admit(v4(192, 0, 2, 33), t0).unwrap();
        assert_eq!(
            control.admit(v6("::ffff:192.0.2.33"), t0).unwrap_err().by,
            RefusedBy::ConnectionsPerIp
        );
        // Its neighbour in the same /64 of the mapped range is another IPv4 address.
        let _neighbour = control.admit(v6("::ffff:192.0.2.34"), t0).unwrap();
        assert_eq!(
            IpKey::of(v6("::ffff:1.2.3.4").unwrap()),
            IpKey::V4(0x0102_0304)
        );
    }

    #[test]
    fn loopback_is_exempt_unless_configured() {
        let strict = Guards {
            max_connections_per_ip: Some(1),
            ..Guards::default()
        };
        let (control, t0) = control(strict.clone());
        let held: Vec<_> = (0..500)
            .map(|_| control.admit(v4(127, 0, 0, 1), t0).unwrap())
            .collect();
        let _v6 = control.admit(v6("::1"), t0).unwrap();
        let _mapped = control.admit(v6("::ffff:127.0.0.1"), t0).unwrap();
        assert_eq!(control.tracked_addresses(), 0);
        drop(held);

        let (control, t0) = self::control(Guards {
            exempt_loopback: false,
            ..strict
        });
        let _one = control.admit(v4(127, 0, 0, 1), t0).unwrap();
        assert!(control.admit(v4(127, 0, 0, 1), t0).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_rotating_addresses() {
        let limit = RateLimit::per_second(10).burst(100);
        let (control, t0) = control(Guards {
            handshakes_per_ip: Some(limit),
            ..Guards::default()
        });
        // 100 000 distinct addresses, each one handshake, all at the same instant: every
        // bucket is left refilling, so only the idle bound limits the table.
        for i in 0..100_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            drop(control.admit(Some(ip), t0).unwrap());
        }
        let bound = SHARDS * IDLE_PER_SLOT;
        let tracked = control.tracked_addresses();
        assert!(tracked <= bound, "{tracked} > {bound}");
        assert_eq!(control.open_connections(), 0);
        // Once the buckets have refilled (one interval after a single handshake), a sweep
        // forgets them all.
        control.sweep(t0 + 100 * MS);
        assert_eq!(control.tracked_addresses(), 0);

        // The same, spread over time: admit's own periodic sweeps keep the table small.
        let (control, t0) = self::control(Guards::default());
        for i in 0..30_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100); // 10 000 per second
            let ip = IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64));
            drop(control.admit(Some(ip), now).unwrap());
        }
        let tracked = control.tracked_addresses();
        // Live entries: about the last SWEEP_EVERY + one interval of arrivals.
        assert!(tracked <= 12_000, "{tracked}");
    }

    #[test]
    fn entries_are_freed_on_release_once_the_bucket_is_full() {
        let (control, t0) = control(Guards {
            handshakes_per_ip: Some(RateLimit::per_second(10).burst(2)),
            ..Guards::default()
        });
        let a = v4(192, 0, 2, 77);
        let permit = control.admit(a, t0).unwrap();
        assert_eq!(control.tracked_addresses(), 1);
        // Another admission moves the clock past the refill, then the release frees it.
        drop(
            control
                .admit(v4(192, 0, 2, 78), t0 + Duration::from_secs(1))
                .unwrap(),
        );
        drop(permit);
        assert_eq!(
            control.tracked_addresses(),
            1,
            "only the refilling neighbour"
        );
        control.sweep(t0 + Duration::from_secs(2));
        assert_eq!(control.tracked_addresses(), 0);
    }

    #[test]
    fn busy_entries_are_never_evicted() {
        let (control, t0) = control(Guards {
            max_connections_per_ip: Some(1),
            handshakes_per_ip: Some(RateLimit::per_minute(1)),
            ..Guards::default()
        });
        let held: Vec<_> = (0..3_000u32)
            .map(|i| {
                control
                    .admit(Some(IpAddr::V4(Ipv4Addr::from(i + 1))), t0)
                    .unwrap()
            })
            .collect();
        let rotated = 70_000;
        for i in 0..rotated {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            drop(control.admit(Some(ip), t0).unwrap());
        }
        let tracked = control.tracked_addresses();
        assert!(
            tracked < 3_000 + rotated as usize,
            "idle entries were evicted"
        );
        assert!(tracked <= 3_000 + SHARDS * IDLE_PER_SLOT, "{tracked}");
        // The held addresses keep their entries: an evicted one would come back with a
        // fresh bucket and admit again.
        for i in (0..3_000u32).step_by(97) {
            let ip = IpAddr::V4(Ipv4Addr::from(i + 1));
            assert!(control.admit(Some(ip), t0).is_err(), "{i}");
        }
        drop(held);
        assert_eq!(control.open_connections(), 0);
        control.sweep(t0 + Duration::from_secs(120));
        assert_eq!(control.tracked_addresses(), 0);
    }

    #[test]
    fn concurrent_admissions_balance() {
        let (control, t0) = control(Guards {
            max_connections: Some(10_000),
            max_connections_per_ip: Some(8),
            handshakes_per_ip: None,
            ..Guards::default()
        });
        std::thread::scope(|scope| {
            for thread in 0..4u8 {
                let control = control.clone();
                scope.spawn(move || {
                    for round in 0..2_000u32 {
                        let ip = v4(10, thread, (round % 7) as u8, 1);
                        let permit = control.admit(ip, t0);
                        let other = control.admit(None, t0);
                        drop((permit, other));
                    }
                });
            }
        });
        assert_eq!(control.open_connections(), 0);
        assert_eq!(control.tracked_addresses(), 0);
    }

    #[test]
    fn origin_check() {
        let (open, _) = control(Guards::default());
        assert!(open.origin_allowed(Some("https://anything.example")));
        assert!(open.origin_allowed(None));
        let (strict, _) = control(Guards {
            allowed_origins: Some(vec!["https://game.example.com".into()]),
            ..Guards::default()
        });
        assert!(strict.origin_allowed(Some("https://Game.example.com")));
        assert!(strict.origin_allowed(None));
        assert!(!strict.origin_allowed(Some("https://evil.example")));
        let refused = strict
            .check_origin(Some("https://evil.example"))
            .unwrap_err();
        assert_eq!((refused.by, refused.status()), (RefusedBy::Origin, 403));
        assert_eq!(strict.check_origin(None), Ok(()));
    }

    #[test]
    fn guards_off_counts_only_the_total() {
        let (control, t0) = control(Guards::off());
        let permits: Vec<_> = (0..1000)
            .map(|_| control.admit(v4(192, 0, 2, 1), t0).unwrap())
            .collect();
        assert_eq!(control.open_connections(), 1000);
        assert_eq!(control.tracked_addresses(), 0);
        drop(permits);
        assert_eq!(control.open_connections(), 0);
    }
}

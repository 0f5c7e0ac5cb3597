//! Rooms: named groups of clients for broadcasts, shared by all shards.
//!
//! Membership belongs to the client (its session, when it has one): a suspended session
//! stays in its rooms and gets their broadcasts in its replay buffer; a client that ends
//! leaves every room at once (the reference kept dead members in rooms for ever). The
//! registry is one table behind a lock, touched by joins, leaves and broadcasts; a room
//! broadcast takes the member list under the lock, groups it by shard, encodes the message
//! once and posts one job per shard that has members, so a client in several of the target
//! rooms gets one copy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::{FxHashMap, FxHashSet};

/// How a room is created ([`Server::create_room`](crate::Server::create_room)); rooms a
/// join creates get the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomOptions {
    /// Most members at once; `None` (the default): unlimited.
    pub max_members: Option<usize>,
    /// Keep the room when its last member leaves (default: it is deleted).
    pub keep_when_empty: bool,
    /// The application's data about the room.
    pub metadata: BTreeMap<String, String>,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The room has its maximum of members.
    #[error("room {room} is full ({max} members)")]
    Full {
        /// The room.
        room: String,
        /// Its maximum.
        max: usize,
    },
    /// The client is gone (closed, or its session expired).
    #[error("the client is gone")]
    Gone,
}

struct Room<P> {
    options: RoomOptions,
    /// Members by client key.
    members: FxHashMap<u64, P>,
}

struct Table<P> {
    rooms: FxHashMap<Arc<str>, Room<P>>,
    /// Each client's rooms, in the order joined.
    memberships: FxHashMap<u64, Vec<Arc<str>>>,
}

/// Every room of a server. `P` is the server's peer type (kept for `members`).
pub(crate) struct Rooms<P> {
    table: Mutex<Table<P>>,
}

impl<P> Default for Rooms<P> {
    fn default() -> Self {
        Self {
            table: Mutex::new(Table {
                rooms: FxHashMap::default(),
                memberships: FxHashMap::default(),
            }),
        }
    }
}

impl<P: Clone> Rooms<P> {
    fn lock(&self) -> MutexGuard<'_, Table<P>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `room` with `options`, or changes the options of the existing one (its
    /// members stay, even above a new maximum).
    pub(crate) fn create(&self, room: &str, options: RoomOptions) {
        let mut table = self.lock();
        match table.rooms.get_mut(room) {
            Some(existing) => existing.options = options,
            None => {
                table.rooms.insert(
                    room.into(),
                    Room {
                        options,
                        members: FxHashMap::default(),
                    },
                );
            }
        }
    }

    /// Deletes `room`; its members leave it. Whether it existed.
    pub(crate) fn delete(&self, room: &str) -> bool {
        let mut table = self.lock();
        let Some(removed) = table.rooms.remove(room) else {
            return false;
        };
        for key in removed.members.keys() {
            if let Some(rooms) = table.memberships.get_mut(key) {
                rooms.retain(|r| &**r != room);
                if rooms.is_empty() {
                    table.memberships.remove(key);
                }
            }
        }
        true
    }

    /// Adds client `key` to `room` (created with the defaults if missing), if `alive`
    /// (checked under the lock that [`Rooms::leave_all`] takes, so a client that ends
    /// meanwhile is never left behind as a member). Joining a room twice is not an error
    /// and changes nothing: `Ok(false)`.
    pub(crate) fn join(
        &self,
        room: &str,
        key: u64,
        peer: P,
        alive: impl FnOnce() -> bool,
    ) -> Result<bool, RoomError> {
        let mut table = self.lock();
        if !alive() {
            return Err(RoomError::Gone);
        }
        let Table { rooms, memberships } = &mut *table;
        let name = match rooms.get_key_value(room) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = room.into();
                rooms.insert(
                    name.clone(),
                    Room {
                        options: RoomOptions::default(),
                        members: FxHashMap::default(),
                    },
                );
                name
            }
        };
        let entry = rooms.get_mut(room).expect("inserted above");
        if entry.members.contains_key(&key) {
            return Ok(false);
        }
        if let Some(max) = entry.options.max_members {
            if entry.members.len() >= max {
                return Err(RoomError::Full {
                    room: room.to_owned(),
                    max,
                });
            }
        }
        entry.members.insert(key, peer);
        memberships.entry(key).or_default().push(name);
        Ok(true)
    }

    /// Removes client `key` from `room`; an empty room is deleted unless kept. Whether it
    /// was a member.
    pub(crate) fn leave(&self, room: &str, key: u64) -> bool {
        let mut table = self.lock();
        let Table { rooms, memberships } = &mut *table;
        let Some(entry) = rooms.get_mut(room) else {
            return false;
        };
        if entry.members.remove(&key).is_none() {
            return false;
        }
        if entry.members.is_empty() && !entry.options.keep_when_empty {
            rooms.remove(room);
        }
        if let Some(joined) = memberships.get_mut(&key) {
            joined.retain(|r| &**r != room);
            if joined.is_empty() {
                memberships.remove(&key);
            }
        }
        true
    }

    /// Removes client `key` from every room (it ended); the rooms it was in.
    pub(crate) fn leave_all(&self, key: u64) -> Vec<Arc<str>> {
        let mut table = self.lock();
        let Table { rooms, memberships } = &mut *table;
        let left = memberships.remove(&key).unwrap_or_default();
        for room in &left {
            if let Some(entry) = rooms.get_mut(room) {
                entry.members.remove(&key);
                if entry.members.is_empty() && !entry.options.keep_when_empty {
                    rooms.remove(room);
                }
            }
        }
        left
    }

    /// The rooms client `key` is in, in the order joined.
    pub(crate) fn rooms_of(&self, key: u64) -> Vec<String> {
        self.lock()
            .memberships
            .get(&key)
            .map(|rooms| rooms.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default()
    }

    /// The members of `room`.
    pub(crate) fn members(&self, room: &str) -> Vec<P> {
        self.lock()
            .rooms
            .get(room)
            .map(|r| r.members.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The options (with metadata) of `room`, if it exists.
    pub(crate) fn options(&self, room: &str) -> Option<RoomOptions> {
        self.lock().rooms.get(room).map(|r| r.options.clone())
    }

    /// Every room's name.
    pub(crate) fn names(&self) -> Vec<String> {
        self.lock().rooms.keys().map(|r| r.to_string()).collect()
    }

    /// The members of any of `rooms` except `exclude`, each once, grouped by the shard
    /// `shard_of` gives their key: what a room broadcast sends to.
    pub(crate) fn recipients(
        &self,
        rooms: &[&str],
        exclude: Option<u64>,
        shard_of: impl Fn(u64) -> usize,
    ) -> FxHashMap<usize, Vec<u64>> {
        let table = self.lock();
        let mut by_shard: FxHashMap<usize, Vec<u64>> = FxHashMap::default();
        let mut seen = FxHashSet::default();
        for room in rooms {
            let Some(entry) = table.rooms.get(*room) else {
                continue;
            };
            for &key in entry.members.keys() {
                if Some(key) == exclude || (rooms.len() > 1 && !seen.insert(key)) {
                    continue;
                }
                by_shard.entry(shard_of(key)).or_default().push(key);
            }
        }
        by_shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_of(key: u64) -> usize {
        (key >> 48) as usize
    }

    #[test]
    fn join_leave_and_auto_delete() {
        let rooms = Rooms::<u64>::default();
        rooms.join("lobby", 1, 1, || true).unwrap();
        rooms.join("lobby", 1, 1, || true).unwrap();
        rooms.join("lobby", 2, 2, || true).unwrap();
        rooms.join("red", 1, 1, || true).unwrap();
        assert_eq!(rooms.join("red", 3, 3, || false), Err(RoomError::Gone));
        assert_eq!(rooms.rooms_of(1), ["lobby", "red"]);
        let mut members = rooms.members("lobby");
        members.sort();
        assert_eq!(members, [1, 2]);
        assert!(rooms.leave("red", 1));
        assert!(!rooms.leave("red", 1));
        assert_eq!(rooms.names(), ["lobby"], "an empty room is deleted");
        rooms.leave_all(1);
        rooms.leave_all(2);
        assert!(rooms.names().is_empty());
        assert!(rooms.rooms_of(1).is_empty());
    }

    #[test]
    fn max_members_and_kept_rooms() {
        let rooms = Rooms::<u64>::default();
        let mut options = RoomOptions {
            max_members: Some(1),
            keep_when_empty: true,
            ..RoomOptions::default()
        };
        options.metadata.insert("map".into(), "dust".into());
        rooms.create("arena", options.clone());
        rooms.join("arena", 1, 1, || true).unwrap();
        assert_eq!(
            rooms.join("arena", 2, 2, || true),
            Err(RoomError::Full {
                room: "arena".into(),
                max: 1
            })
        );
        rooms.leave_all(1);
        assert_eq!(rooms.options("arena"), Some(options), "kept when empty");
        rooms.join("arena", 2, 2, || true).unwrap();
        assert!(rooms.delete("arena"));
        assert!(rooms.rooms_of(2).is_empty(), "members leave a deleted room");
    }

    #[test]
    fn recipients_are_each_member_once_by_shard_without_the_excluded() {
        let rooms = Rooms::<u64>::default();
        let (a, b, c) = (1u64, (1 << 48) | 1, (1 << 48) | 2);
        for (room, key) in [("x", a), ("x", b), ("y", b), ("y", c)] {
            rooms.join(room, key, key, || true).unwrap();
        }
        let mut got = rooms.recipients(&["x", "y", "missing"], Some(c), shard_of);
        for keys in got.values_mut() {
            keys.sort();
        }
        assert_eq!(got.get(&0), Some(&vec![a]));
        assert_eq!(got.get(&1), Some(&vec![b]), "b is in both rooms: one copy");
        assert_eq!(got.len(), 2);
    }
}

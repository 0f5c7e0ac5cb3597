//! Data for the benches: a realistic game message (a world-state update: 64 entities with
//! positions, optional fields and a few strings) as PackMe generated types, and the same
//! data as serde structs for bincode and serde_json.

pub mod proto {
    packme::include_generated!("world");
}

use proto::world;

/// The serde mirror of `world.json`, field for field. Strings are `String` by default;
/// `WorldState<&str>` is the borrowed form (bincode's `borrow_decode_from_slice`), the
/// counterpart of PackMe's generated view `WorldStateMessageRef`.
pub mod serde_mirror {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum EntityKind {
        Player,
        Npc,
        Projectile,
        Item,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Vec3 {
        pub x: f32,
        pub y: f32,
        pub z: f32,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Entity<S = String> {
        pub id: u32,
        pub kind: EntityKind,
        pub position: Vec3,
        pub velocity: Vec3,
        pub name: Option<S>,
        pub health: Option<u16>,
        pub target: Option<u32>,
        pub tags: Vec<S>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Event<S = String> {
        pub kind: S,
        pub text: S,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct WorldState<S = String> {
        pub tick: u64,
        pub server_time: i64,
        pub entities: Vec<Entity<S>>,
        pub events: Option<Vec<Event<S>>>,
    }
}

const KINDS: [world::EntityKind; 4] = [
    world::EntityKind::Player,
    world::EntityKind::Npc,
    world::EntityKind::Projectile,
    world::EntityKind::Item,
];

/// The benchmark message: `entities` entities, every other one named, players with health.
pub fn world_state(entities: u32) -> world::WorldStateMessage {
    world::WorldStateMessage {
        tick: 1_234_567,
        server_time: packme::Timestamp::from_millis(1_700_000_000_123),
        entities: (0..entities)
            .map(|i| {
                let f = i as f32;
                world::Entity {
                    id: 10_000 + i,
                    kind: KINDS[i as usize % 4],
                    position: world::Vec3 {
                        x: f * 1.5,
                        y: 2.0,
                        z: -f,
                    },
                    velocity: world::Vec3 {
                        x: 0.25,
                        y: 0.0,
                        z: f / 10.0,
                    },
                    name: (i % 2 == 0).then(|| format!("player-{i:04}").into()),
                    health: (i % 4 == 0).then_some(100 - (i % 100) as u16),
                    target: (i % 3 == 0).then_some(10_000 + (i + 1) % entities),
                    tags: if i % 5 == 0 {
                        vec!["visible".into(), "moving".into()]
                    } else {
                        vec![]
                    },
                }
            })
            .collect(),
        events: Some(vec![world::WorldStateMessageEvent {
            kind: "chat".into(),
            text: "gg, well played".into(),
        }]),
    }
}

/// The same data for serde.
pub fn world_state_serde(message: &world::WorldStateMessage) -> serde_mirror::WorldState {
    use serde_mirror as s;
    let kind = |k: world::EntityKind| match k {
        world::EntityKind::Player => s::EntityKind::Player,
        world::EntityKind::Npc => s::EntityKind::Npc,
        world::EntityKind::Projectile => s::EntityKind::Projectile,
        world::EntityKind::Item => s::EntityKind::Item,
    };
    let vec3 = |v: &world::Vec3| s::Vec3 {
        x: v.x,
        y: v.y,
        z: v.z,
    };
    s::WorldState {
        tick: message.tick,
        server_time: message.server_time.millis(),
        entities: message
            .entities
            .iter()
            .map(|e| s::Entity {
                id: e.id,
                kind: kind(e.kind),
                position: vec3(&e.position),
                velocity: vec3(&e.velocity),
                name: e.name.as_ref().map(|n| n.to_string()),
                health: e.health,
                target: e.target,
                tags: e.tags.iter().map(|t| t.to_string()).collect(),
            })
            .collect(),
        events: message.events.as_ref().map(|events| {
            events
                .iter()
                .map(|e| s::Event {
                    kind: e.kind.to_string(),
                    text: e.text.to_string(),
                })
                .collect()
        }),
    }
}

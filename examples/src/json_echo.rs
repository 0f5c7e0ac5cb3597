//! The `json_echo` example's server: the websocket_core JSON protocol on `/ws` with a few
//! handlers that exercise each of its answers (a typed reply, an awaiting handler, an
//! application error, a handler that requires auth, rooms), and optionally sessions. Here so that the example binary and
//! `tests/python_json.rs`, which drives it with Python's `websockets` as an independent
//! client, share it.

use std::time::Duration;

use connectme::json::{HandlerError, JsonContext, JsonRouter};
use connectme::{RateLimit, Server, SessionConfig};
use serde::{Deserialize, Serialize};

/// `echo`'s request and reply: `{msg}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Echo {
    /// Sent back as it came.
    pub msg: String,
}

/// `sum`'s request: `{values: [number]}`.
#[derive(Debug, Deserialize)]
pub struct Sum {
    /// The numbers to add up.
    pub values: Vec<f64>,
}

/// `sum`'s reply: `{sum}`.
#[derive(Debug, Serialize)]
pub struct Total {
    /// The values' sum.
    pub sum: f64,
}

/// The identity `whoami` reports: `{user}` (always a user, since it requires auth).
#[derive(Debug, Serialize)]
pub struct WhoAmI {
    /// The connection's user.
    pub user: Option<String>,
}

/// `join`'s request: `{room}`.
#[derive(Debug, Deserialize)]
pub struct Join {
    /// The room to join.
    pub room: String,
}

/// `say`'s request: `{room, text}`, sent to the room's other members as
/// `chat.message {text}`.
#[derive(Debug, Deserialize)]
pub struct Say {
    /// The room.
    pub room: String,
    /// What to say.
    pub text: String,
}

/// How long `slow` waits before it answers.
pub const SLOW: Duration = Duration::from_millis(50);

/// The example's handlers: `echo` (`{msg}` back), `sum` (`{values}` → `{sum}`), `slow`
/// (its payload back after [`SLOW`]), `fail` (always the application error 4100 "not
/// today"), `whoami` (requires auth, so an anonymous connection gets 1003), `join`
/// (`{room}` → `{joined}`) and `say` (`chat.message {text}` to the room's other members,
/// answered `{sent}`).
pub fn router() -> JsonRouter {
    let mut router = JsonRouter::default();
    router.on("echo", |_, p: Echo| async move { Ok(Echo { msg: p.msg }) });
    router.on("sum", |_, p: Sum| async move {
        // From +0.0: `Iterator::sum` of no floats is -0.0.
        let sum = p.values.iter().fold(0.0, |sum, v| sum + v);
        Ok(Total { sum })
    });
    router.on("slow", |_, p: serde_json::Value| async move {
        connectme::sleep(SLOW).await;
        Ok(p)
    });
    router.on("fail", |_, _: serde::de::IgnoredAny| async move {
        Err::<(), _>(HandlerError::new(4100, "not today"))
    });
    router
        .on(
            "whoami",
            |ctx: JsonContext, _: serde::de::IgnoredAny| async move {
                Ok(WhoAmI {
                    user: ctx.user().map(str::to_owned),
                })
            },
        )
        .requires_auth();
    router.on("join", |ctx: JsonContext, p: Join| async move {
        ctx.join(&p.room)?;
        Ok(serde_json::json!({ "joined": p.room }))
    });
    router.on("say", |ctx: JsonContext, p: Say| async move {
        let text = serde_json::json!({ "text": p.text });
        let sent = ctx
            .broadcast_to_room(&p.room, "chat.message", &text, true)
            .map_err(HandlerError::internal)?;
        Ok(serde_json::json!({ "sent": sent }))
    });
    router
}

/// Starts the JSON server on `addr` (`127.0.0.1:0` for any free port), each client limited
/// to `rate` messages per second with a burst of as many when `rate` is given, with
/// sessions (resumable, `s` on every sequenced message) when `sessions`. The I/O driver is
/// `CONNECTME_DRIVER`'s, else the default.
pub fn server(addr: &str, rate: Option<u32>, sessions: bool) -> std::io::Result<Server> {
    let mut builder = Server::builder().addr(addr)?.json(router());
    if let Some(n) = rate {
        builder = builder.message_rate(RateLimit::new(f64::from(n), n));
    }
    if sessions {
        builder = builder.sessions(SessionConfig::default());
    }
    builder.start()
}

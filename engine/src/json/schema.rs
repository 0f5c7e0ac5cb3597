//! Two ways of organising a router that the reference offers (websocket-core-features.md
//! §8.3, §11): the declarative [`Schema`] (per-field checks given at registration, tested
//! before the handler) and [`JsonController`]s (groups of registrations).
//!
//! A typed payload (`Deserialize`) already says which field is wrong and why; a schema is
//! for what a type cannot say (a range, a pattern, a field that must be one of a few
//! strings) and for handlers that take the payload as it comes (`serde_json::Value`).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::error::HandlerError;
use super::router::JsonRouter;

type Check = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// Checks on a payload's top-level fields, tested in the order given before the handler
/// runs ([`Route::schema`](super::Route::schema)). The first that fails is answered
/// `sys.error` 1009 "Validation failed for field: `name`" with `details.errors =
/// [{field, reason}]`; a field not named is not looked at. A check that panics is a 1500,
/// as any handler's panic.
///
/// ```
/// # use connectme::json::Schema;
/// let schema = Schema::new()
///     .field("room", "a name of 1 to 32 characters", |v| {
///         v.as_str().is_some_and(|s| (1..=32).contains(&s.chars().count()))
///     })
///     .field("limit", "an integer from 1 to 100, or nothing", |v| {
///         v.is_null() || v.as_u64().is_some_and(|n| (1..=100).contains(&n))
///     });
/// ```
#[derive(Default)]
pub struct Schema {
    fields: Vec<Field>,
}

struct Field {
    name: Box<str>,
    reason: Box<str>,
    check: Check,
}

impl Schema {
    /// A schema with no checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check of field `name`: `check` gets its value (`Value::Null` when the field
    /// is missing) and returns whether it is valid; `reason` is what the client is told
    /// when it is not.
    pub fn field(
        mut self,
        name: &str,
        reason: &str,
        check: impl Fn(&Value) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fields.push(Field {
            name: name.into(),
            reason: reason.into(),
            check: Box::new(check),
        });
        self
    }

    /// Tests `payload`, a JSON object's text (the envelope's validated `p`).
    pub(crate) fn check(&self, payload: &str) -> Result<(), HandlerError> {
        let payload: Value =
            serde_json::from_str(payload).map_err(|_| HandlerError::validation("", "not JSON"))?;
        for field in &self.fields {
            let value = payload.get(&*field.name).unwrap_or(&Value::Null);
            let passed = catch_unwind(AssertUnwindSafe(|| (field.check)(value))).map_err(|_| {
                HandlerError::internal(format!("the schema check of {:?} panicked", field.name))
            })?;
            if !passed {
                return Err(HandlerError::validation(&field.name, &field.reason));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.fields.iter().map(|field| &field.name))
            .finish()
    }
}

/// A group of registrations, so that an application's handlers can live in modules of
/// their own (a lobby, a matchmaker, a chat) and be added in one call:
/// [`JsonRouter::controller`]. As in the reference it only groups: no prefix, no scope.
///
/// ```
/// # use connectme::json::{JsonController, JsonRouter};
/// struct Lobby;
///
/// impl JsonController for Lobby {
///     fn register(&self, router: &mut JsonRouter) {
///         router.on("lobby.list", |_, _: serde_json::Value| async { Ok(vec!["a", "b"]) });
///     }
/// }
///
/// let mut router = JsonRouter::default();
/// router.controller(&Lobby);
/// assert!(router.has_handler("lobby.list"));
/// ```
pub trait JsonController {
    /// Registers the controller's handlers (and middleware) on `router`.
    fn register(&self, router: &mut JsonRouter);
}

impl JsonRouter {
    /// Registers everything `controller` has.
    pub fn controller(&mut self, controller: &impl JsonController) -> &mut Self {
        controller.register(self);
        self
    }
}

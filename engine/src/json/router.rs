//! The JSON protocol's routing table (websocket-core-features.md §8, §11): which handler
//! an event and version go to, the middleware every message passes through first, and the
//! steps between a valid envelope and a handler's answer (not found, auth, typed payload,
//! auto-reply).
//!
//! A [`JsonRouter`] is built once at start and shared read-only by every shard behind an
//! `Arc` (it is `Send + Sync`; the futures its handlers return need not be `Send`, they run
//! on the connection's shard). Per-connection state lives in the dispatcher.
//!
//! Where it departs from the reference on purpose: version lookup is exact, then the
//! event's default handler, then the nearest registered version (the reference fell back to
//! whichever registration came first); registering the same event and version twice is a
//! start-up panic instead of a silently ignored handler; a not-found handler's returned
//! value is auto-replied like any handler's (the reference turned it into a 1500).

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::future::{ready, Future};
use std::marker::PhantomData;
use std::pin::Pin;

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codes::ErrorCode;
use super::context::JsonContext;
use super::encode::clipped;
use super::envelope::{compare_versions, Envelope, EnvelopeConfig};
use super::error::HandlerError;
use super::schema::Schema;
use super::validate;

/// A boxed future that stays on its thread.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// What the rest of a message's pipeline ends with: `Ok` once the handler answered (or
/// chose not to), or the error the dispatcher answers with `sys.error`.
pub type Outcome = Result<(), HandlerError>;

type Middleware = Box<dyn Fn(JsonContext, Next) -> LocalBoxFuture<Outcome> + Send + Sync>;

/// The routing table: handlers by event and version, the not-found handler, the middleware.
pub struct JsonRouter {
    config: EnvelopeConfig,
    routes: Vec<Route>,
    events: FxHashMap<Box<str>, EventRoutes>,
    not_found: Option<usize>,
    middleware: Vec<Middleware>,
}

/// The registrations of one event.
#[derive(Default)]
struct EventRoutes {
    /// From [`JsonRouter::on`]: any version.
    default: Option<usize>,
    /// From [`JsonRouter::on_version`], in registration order.
    versions: Vec<(Box<str>, usize)>,
}

/// One registered handler and its options.
pub struct Route {
    handler: Box<dyn ErasedHandler>,
    requires_auth: bool,
    schema: Option<Schema>,
}

impl Route {
    /// Answers 1003 instead of running the handler when the connection is anonymous
    /// (§5.3).
    pub fn requires_auth(&mut self) -> &mut Self {
        self.requires_auth = true;
        self
    }

    /// Checks the payload against `schema` before the handler runs (after the auth
    /// check, before the payload is decoded into the handler's type): the first field that
    /// fails is answered 1009 naming it.
    pub fn schema(&mut self, schema: Schema) -> &mut Self {
        self.schema = Some(schema);
        self
    }

    /// The payload checked against the schema, then decoded for the handler.
    fn decode(&self, payload: &str) -> Result<Box<dyn Any>, HandlerError> {
        if let Some(schema) = &self.schema {
            schema.check(payload)?;
        }
        self.handler.decode(payload)
    }

    /// [`Route::decode`] and the handler's call in one, the payload never boxed.
    fn decode_call(&self, ctx: JsonContext, payload: &str) -> LocalBoxFuture<Outcome> {
        if let Some(schema) = &self.schema {
            if let Err(error) = schema.check(payload) {
                return Box::pin(ready(Err(error)));
            }
        }
        self.handler.decode_call(ctx, payload)
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("requires_auth", &self.requires_auth)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for JsonRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonRouter")
            .field("config", &self.config)
            .field("routes", &self.routes.len())
            .field("not_found", &self.not_found.is_some())
            .field("middleware", &self.middleware.len())
            .finish()
    }
}

impl Default for JsonRouter {
    fn default() -> Self {
        JsonRouter::new(EnvelopeConfig::default())
    }
}

impl JsonRouter {
    /// An empty router accepting the versions of `config`.
    pub fn new(config: EnvelopeConfig) -> Self {
        JsonRouter {
            config,
            routes: Vec::new(),
            events: FxHashMap::default(),
            not_found: None,
            middleware: Vec::new(),
        }
    }

    /// The versions inbound envelopes are checked against; its current version is the `v`
    /// of messages the server starts.
    pub fn config(&self) -> &EnvelopeConfig {
        &self.config
    }

    /// Handles `event` in every version that has no handler of its own.
    ///
    /// The handler gets the context and `p` decoded into `T` (a failure is answered 1009
    /// with the field and reason, and the handler does not run). What it returns is the
    /// answer: a value is sent as `<event>.response` with the request's `c` and `v` (an
    /// object as the payload, anything else in `{"data": …}`, `()`/`None` sends nothing),
    /// an error as `sys.error`.
    ///
    /// # Panics
    ///
    /// If `event` already has a default handler.
    pub fn on<T, R, F, Fut>(&mut self, event: &str, handler: F) -> &mut Route
    where
        F: Fn(JsonContext, T) -> Fut + Send + Sync + 'static,
        T: DeserializeOwned + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + 'static,
        R: Serialize + 'static,
    {
        let index = self.push(handler);
        let routes = self.events.entry(event.into()).or_default();
        assert!(
            routes.default.is_none(),
            "JsonRouter::on: {event:?} already has a handler"
        );
        routes.default = Some(index);
        &mut self.routes[index]
    }

    /// Handles `event` when the message's `v` is exactly `version`. A message whose version
    /// has no handler goes to the event's default handler ([`JsonRouter::on`]), else to the
    /// highest registered version below its own, else to the lowest above it: an old client
    /// is served rather than refused (§3).
    ///
    /// # Panics
    ///
    /// If `event` already has a handler for `version`.
    pub fn on_version<T, R, F, Fut>(&mut self, event: &str, version: &str, handler: F) -> &mut Route
    where
        F: Fn(JsonContext, T) -> Fut + Send + Sync + 'static,
        T: DeserializeOwned + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + 'static,
        R: Serialize + 'static,
    {
        let index = self.push(handler);
        let routes = self.events.entry(event.into()).or_default();
        assert!(
            routes.versions.iter().all(|(v, _)| &**v != version),
            "JsonRouter::on_version: {event:?} already has a handler for {version:?}"
        );
        routes.versions.push((version.into(), index));
        &mut self.routes[index]
    }

    /// Handles every event that has no handler (instead of answering 1008); it runs after
    /// the middleware, like any handler, and its returned value is auto-replied.
    pub fn not_found<T, R, F, Fut>(&mut self, handler: F) -> &mut Route
    where
        F: Fn(JsonContext, T) -> Fut + Send + Sync + 'static,
        T: DeserializeOwned + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + 'static,
        R: Serialize + 'static,
    {
        let index = self.push(handler);
        self.not_found = Some(index);
        &mut self.routes[index]
    }

    /// Appends a middleware: every message, known event or not, passes through the
    /// middleware in registration order before its handler is looked up (§8.1 step 3).
    ///
    /// A middleware continues with `next.run(ctx).await`, which runs the rest of the chain
    /// and the handler and gives back their outcome (to pass on, or to change); it stops by
    /// returning without calling it: `Ok(())` answers nothing, `Err(error)` answers
    /// `sys.error`.
    pub fn middleware<F, Fut>(&mut self, middleware: F) -> &mut Self
    where
        F: Fn(JsonContext, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + 'static,
    {
        self.middleware.push(Box::new(move |ctx, next| {
            Box::pin(middleware(ctx, next)) as LocalBoxFuture<Outcome>
        }));
        self
    }

    /// Whether `event` has a handler of its own (in any version).
    pub fn has_handler(&self, event: &str) -> bool {
        self.events.contains_key(event)
    }

    /// Removes every handler of `event` (all versions): its messages go to the not-found
    /// handler from now on. Whether it had any. (A router is fixed once the server starts;
    /// this is for composing one, e.g. replacing a controller's handler.)
    pub fn off(&mut self, event: &str) -> bool {
        self.events.remove(event).is_some()
    }

    fn push<T, R, F, Fut>(&mut self, handler: F) -> usize
    where
        F: Fn(JsonContext, T) -> Fut + Send + Sync + 'static,
        T: DeserializeOwned + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + 'static,
        R: Serialize + 'static,
    {
        self.routes.push(Route {
            handler: Box::new(TypedHandler {
                handler,
                types: PhantomData,
            }),
            requires_auth: false,
            schema: None,
        });
        self.routes.len() - 1
    }

    /// The handler for `event` in `version`, by the rule of [`JsonRouter::on_version`].
    fn lookup(&self, event: &str, version: &str) -> Option<usize> {
        let routes = self.events.get(event)?;
        if let Some((_, index)) = routes.versions.iter().find(|(v, _)| &**v == version) {
            return Some(*index);
        }
        if routes.default.is_some() {
            return routes.default;
        }
        let nearest = |wanted: Ordering| {
            routes
                .versions
                .iter()
                .filter(|(v, _)| compare_versions(v, version) == Some(wanted))
                .max_by(|(a, _), (b, _)| {
                    let order = compare_versions(a, b).unwrap_or(Ordering::Equal);
                    if wanted == Ordering::Less {
                        order
                    } else {
                        order.reverse()
                    }
                })
                .map(|(_, index)| *index)
        };
        nearest(Ordering::Less)
            .or_else(|| nearest(Ordering::Greater))
            .or_else(|| routes.versions.first().map(|(_, index)| *index))
    }

    /// Routes a valid envelope and decodes its payload now, while the frame is at hand;
    /// what is wrong is answered later, in the pipeline's order (§8.1: middleware, then
    /// not found, auth, payload).
    pub(super) fn prepare(&self, envelope: &Envelope<'_>) -> Target {
        match self
            .lookup(envelope.event(), envelope.version())
            .or(self.not_found)
        {
            Some(index) => Target::Route {
                index,
                payload: self.routes[index].decode(envelope.payload()),
            },
            None => Target::NotFound,
        }
    }

    /// Whether messages go through middleware; without any, the dispatcher may start a
    /// message's handler at once with [`JsonRouter::start_direct`].
    pub(super) fn has_middleware(&self) -> bool {
        !self.middleware.is_empty()
    }

    /// The whole pipeline of a message when there is no middleware, started while the
    /// frame is at hand: routed, checked (auth, then the schema) and decoded as
    /// [`JsonRouter::prepare`] and [`Next::run`] would, in the same order, without boxing
    /// the decoded payload.
    pub(super) fn start_direct(
        &self,
        ctx: JsonContext,
        envelope: &Envelope<'_>,
    ) -> LocalBoxFuture<Outcome> {
        debug_assert!(self.middleware.is_empty());
        let index = self
            .lookup(envelope.event(), envelope.version())
            .or(self.not_found);
        match self.checked(&ctx, index) {
            Ok(route) => route.decode_call(ctx, envelope.payload()),
            Err(error) => Box::pin(ready(Err(error))),
        }
    }

    /// The end of the chain: the checks of §8.1 steps 4 to 6, then the handler.
    fn invoke(&self, ctx: JsonContext, target: Target) -> LocalBoxFuture<Outcome> {
        let (index, payload) = match target {
            Target::Route { index, payload } => (Some(index), Some(payload)),
            Target::NotFound => (None, None),
        };
        match (self.checked(&ctx, index), payload) {
            (Ok(route), Some(Ok(payload))) => route.handler.call(ctx, payload),
            (Err(error), _) | (_, Some(Err(error))) => Box::pin(ready(Err(error))),
            (Ok(_), None) => unreachable!("a route always has its payload"),
        }
    }

    /// §8.1 steps 4 and 5: a handler (else 1008), and auth if it requires it (else 1003).
    fn checked(&self, ctx: &JsonContext, index: Option<usize>) -> Result<&Route, HandlerError> {
        let Some(index) = index else {
            let message = format!("Handler not found for event: {}", clipped(ctx.event()));
            return Err(HandlerError::new(
                ErrorCode::HandlerNotFound.as_u16(),
                message,
            ));
        };
        let route = &self.routes[index];
        if route.requires_auth && ctx.identity().is_none() {
            return Err(ErrorCode::AuthRequired.into());
        }
        Ok(route)
    }
}

/// Where a message goes, with its payload already decoded for that handler.
pub(super) enum Target {
    /// A handler (the not-found one included).
    Route {
        index: usize,
        payload: Result<Box<dyn Any>, HandlerError>,
    },
    /// No handler and no not-found handler: 1008.
    NotFound,
}

/// The rest of a message's pipeline, handed to a middleware.
pub struct Next {
    index: usize,
    target: Target,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("middleware", &self.index)
            .finish_non_exhaustive()
    }
}

impl Next {
    /// The whole pipeline of a routed message.
    pub(super) fn start(target: Target) -> Self {
        Next { index: 0, target }
    }

    /// Runs the remaining middleware and the handler; `Ok` once the handler answered (its
    /// auto-reply is sent), `Err` with what the dispatcher will answer.
    pub fn run(self, ctx: JsonContext) -> LocalBoxFuture<Outcome> {
        let conn = ctx.conn().clone();
        let router = &*conn.router;
        match router.middleware.get(self.index) {
            Some(middleware) => middleware(
                ctx,
                Next {
                    index: self.index + 1,
                    target: self.target,
                },
            ),
            None => router.invoke(ctx, self.target),
        }
    }
}

/// A handler with its payload type erased, so one table holds them all.
trait ErasedHandler: Send + Sync {
    /// `p` decoded into the handler's type, or the 1009 answering it.
    fn decode(&self, payload: &str) -> Result<Box<dyn Any>, HandlerError>;

    /// Runs the handler on what [`ErasedHandler::decode`] gave, and auto-replies.
    fn call(&self, ctx: JsonContext, payload: Box<dyn Any>) -> LocalBoxFuture<Outcome>;

    /// [`ErasedHandler::decode`] then [`ErasedHandler::call`], the payload never boxed.
    fn decode_call(&self, ctx: JsonContext, payload: &str) -> LocalBoxFuture<Outcome>;
}

/// `fn() -> …`: the router stays `Send + Sync` whatever the handler's payload, future and
/// answer types are.
type Types<T, Fut, R> = PhantomData<fn() -> (T, Fut, R)>;

struct TypedHandler<F, T, Fut, R> {
    handler: F,
    types: Types<T, Fut, R>,
}

impl<F, T, Fut, R> ErasedHandler for TypedHandler<F, T, Fut, R>
where
    F: Fn(JsonContext, T) -> Fut + Send + Sync + 'static,
    T: DeserializeOwned + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + 'static,
    R: Serialize + 'static,
{
    fn decode(&self, payload: &str) -> Result<Box<dyn Any>, HandlerError> {
        validate::decode::<T>(payload).map(|value| Box::new(value) as Box<dyn Any>)
    }

    fn call(&self, ctx: JsonContext, payload: Box<dyn Any>) -> LocalBoxFuture<Outcome> {
        let Ok(payload) = payload.downcast::<T>() else {
            // `prepare` decoded it with this very handler.
            return Box::pin(ready(Err(HandlerError::internal(
                "payload decoded for another handler",
            ))));
        };
        self.call_typed(ctx, *payload)
    }

    fn decode_call(&self, ctx: JsonContext, payload: &str) -> LocalBoxFuture<Outcome> {
        match validate::decode::<T>(payload) {
            Ok(payload) => self.call_typed(ctx, payload),
            Err(error) => Box::pin(ready(Err(error))),
        }
    }
}

impl<F, T, Fut, R> TypedHandler<F, T, Fut, R>
where
    F: Fn(JsonContext, T) -> Fut + Send + Sync + 'static,
    T: DeserializeOwned + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + 'static,
    R: Serialize + 'static,
{
    /// The handler's future, then the auto-reply of its answer.
    fn call_typed(&self, ctx: JsonContext, payload: T) -> LocalBoxFuture<Outcome> {
        let answer = (self.handler)(ctx.clone(), payload);
        Box::pin(async move {
            let value = answer.await?;
            ctx.auto_reply(&value)
        })
    }
}

//! Handlers in the erased form the tables store: a typed handler (`Fn(T, &C) -> R`) becomes
//! one closure over the received message in its raw form, which converts, calls and
//! delivers the reply; a panic in it is contained here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use packme::{decode_frame_ref, DecodeError, HasView, Packet};

use super::{Context, Listen, Raw, Reply};
use crate::link::Link;
use crate::proto::outgoing::IntoFrame;
use crate::proto::received::BinaryRef;

/// A stored handler: called with the message, the connection's context for the handler,
/// and the link its reply goes to directly (no lookup of the connection by id).
type ErasedHandler<C> = Arc<dyn Fn(Raw<'_>, &C, &Rc<Link>) -> Result<(), Failed> + Send + Sync>;

/// A message a handler could not decode. Boxed: the error is rare, and a result one
/// pointer wide comes back from every handler call in a register instead of through
/// memory.
pub(super) type Failed = Box<DecodeError>;

/// A handler in the erased form stored in tables.
#[allow(unreachable_pub)] // named by the sealed `Host`, not nameable outside the crate
pub struct Handler<C> {
    call: ErasedHandler<C>,
    /// It only reads the message ([`Listen::BORROWS`]).
    pub(crate) borrows: bool,
}

/// A handler's reply goes straight into its connection's queue.
impl Context for Rc<Link> {
    fn send<F: IntoFrame>(&self, message: F) {
        self.send_message(message);
    }
}

impl<C> std::fmt::Debug for Handler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("borrows", &self.borrows)
            .finish_non_exhaustive()
    }
}

impl<C> Clone for Handler<C> {
    fn clone(&self) -> Self {
        Self {
            call: self.call.clone(),
            borrows: self.borrows,
        }
    }
}

/// Wraps a typed handler into the erased form stored in tables.
pub(crate) fn handler<T, C, R, F>(f: F) -> Handler<C>
where
    T: Listen,
    C: Context + 'static,
    R: Reply,
    F: Fn(T, &C) -> R + Send + Sync + 'static,
{
    Handler {
        call: Arc::new(move |raw, ctx, link| {
            if let Some(arg) = T::from_raw(raw).map_err(Box::new)? {
                f(arg, ctx).deliver(link);
            }
            Ok(())
        }),
        borrows: T::BORROWS,
    }
}

/// Wraps a handler of binary messages lent for the call (`listen_ref`).
pub(crate) fn ref_handler<C, R, F>(f: F) -> Handler<C>
where
    C: Context + 'static,
    R: Reply,
    F: Fn(BinaryRef<'_>, &C) -> R + Send + Sync + 'static,
{
    Handler {
        call: Arc::new(move |raw, ctx, link| {
            if let Some(data) = raw.binary() {
                f(data, ctx).deliver(link);
            }
            Ok(())
        }),
        borrows: true,
    }
}

/// Wraps a handler of PackMe messages read as views (`listen_view`): strings borrow the
/// received frame for the call, with no reference count each.
pub(crate) fn view_handler<M, C, R, F>(f: F) -> Handler<C>
where
    M: HasView,
    C: Context + 'static,
    R: Reply,
    F: for<'a> Fn(Packet<M::View<'a>>, &C) -> R + Send + Sync + 'static,
{
    Handler {
        call: Arc::new(move |raw, ctx, link| {
            let copy;
            let frame = match &raw {
                Raw::Binary(frame) => &**frame,
                Raw::BinaryInPlace(data) => {
                    copy = Bytes::copy_from_slice(data);
                    &copy
                }
                Raw::Text(_) | Raw::TextInPlace(_) => return Ok(()),
            };
            f(
                decode_frame_ref::<M::View<'_>>(frame).map_err(Box::new)?,
                ctx,
            )
            .deliver(link);
            Ok(())
        }),
        borrows: false,
    }
}

/// Runs `handler`, containing a panic so that one failing handler cannot take the shard
/// down; returns its decode result.
#[inline]
pub(super) fn call<C>(
    handler: &Handler<C>,
    raw: Raw<'_>,
    ctx: &C,
    link: &Rc<Link>,
) -> Result<(), Failed> {
    match catch_unwind(AssertUnwindSafe(|| (handler.call)(raw, ctx, link))) {
        Ok(result) => result,
        Err(panic) => {
            panicked(panic);
            Ok(())
        }
    }
}

/// Reports a handler's panic (out of line: the call above stays small).
#[cold]
#[inline(never)]
fn panicked(panic: Box<dyn std::any::Any + Send>) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into());
    tracing::error!(panic = %what, "message handler panicked");
}

//! Queries: a request sent with a transaction id, answered by the response that comes back
//! with the same id *and* the expected response type (spec 11.A1: the reference matches by
//! id alone, so a peer's unrelated message with a colliding id completes the wrong query).
//!
//! Pending queries live with their connection ([`crate::proto`]'s connection state machine):
//! each fails with a clear [`QueryError`] at its own deadline (to the millisecond) or when
//! the connection closes. This module is the caller's side: the future of the response.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use packme::{decode_frame, Message, Packet};

pub use crate::proto::queries::QueryError;
use crate::proto::queries::Reply;

/// A query in flight: a future of the response. It works on any executor (and
/// [`Query::wait`] blocks a plain thread); the timeout runs on the connection's shard.
#[must_use = "a query does nothing useful unless awaited"]
#[derive(Debug)]
pub struct Query<M> {
    rx: oneshot::Receiver<Result<Bytes, QueryError>>,
    _response: PhantomData<fn() -> M>,
}

/// The sending half a transport completes.
pub(crate) fn query_channel<M>() -> (Reply, Query<M>) {
    let (tx, rx) = oneshot::channel();
    (
        tx,
        Query {
            rx,
            _response: PhantomData,
        },
    )
}

fn finish<M: Message>(
    result: Result<Result<Bytes, QueryError>, oneshot::RecvError>,
) -> Result<Packet<M>, QueryError> {
    match result {
        Ok(Ok(frame)) => Ok(decode_frame::<M>(frame)?),
        Ok(Err(e)) => Err(e),
        // The connection dropped the query without answering: it is gone.
        Err(oneshot::RecvError) => Err(QueryError::Disconnected),
    }
}

impl<M: Message> Query<M> {
    /// Blocks the current thread until the response, the timeout or a disconnect. Do not
    /// call it on a shard or client thread: that thread completes the query.
    pub fn wait(self) -> Result<Packet<M>, QueryError> {
        finish(self.rx.recv())
    }
}

impl<M: Message> Future for Query<M> {
    type Output = Result<Packet<M>, QueryError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(finish)
    }
}

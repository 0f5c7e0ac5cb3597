//! The runtime seam: everything that touches the executor and the kernel (spawning, timers,
//! sockets, reads and writes, the io_uring/epoll choice) goes through this module, and
//! monoio is named nowhere else in the crate. Swapping the executor (compio, or a shard
//! driver written on the `io-uring` crate for provided buffer rings) means rewriting this
//! module, not the engine.
//!
//! The public part is what a handler needs without depending on monoio itself: [`spawn`],
//! [`sleep`] and [`timeout`], which run on the calling shard or client thread.

mod driver;
pub(crate) mod idle;
pub(crate) mod io;
pub(crate) mod net;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub(crate) use driver::readiness;
pub use driver::{Driver, DRIVER_ENV};

/// A task spawned with [`spawn`]: await it for its output, or drop it to let it run on
/// detached.
pub struct Task<T>(monoio::task::JoinHandle<T>);

impl<T> Future for Task<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Task")
    }
}

/// Spawns a task on the current shard or client thread, for handlers that need to await
/// (a query, a timer) without blocking their thread. Only call it from a handler or a
/// callback of the engine: the task is not `Send` and stays on that thread.
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Task(monoio::spawn(future))
}

/// Waits for `duration` on the current shard or client thread's timer.
pub async fn sleep(duration: Duration) {
    monoio::time::sleep(duration).await
}

/// Waits until `deadline` on the current thread's timer.
pub fn sleep_until(deadline: Instant) -> impl Future<Output = ()> {
    monoio::time::sleep_until(deadline.into())
}

/// Lets the thread's other tasks, and the driver's readiness events, run before this task
/// goes on. A task whose reads never wait (a socket kept readable by a flood) otherwise
/// holds its thread under epoll: each read completes at once, so the driver is not polled
/// and other connections' readiness is never acted on.
///
/// The task is woken by a tiny task spawned behind the others. Waking itself would not do:
/// monoio puts a task woken while it runs back at the *front* of the queue
/// (`Schedule::yield_now`), so it would run again before anything else.
pub(crate) async fn let_others_run() {
    let mut queued = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut queued, true) {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        drop(monoio::spawn(async move { waker.wake() }));
        Poll::Pending
    })
    .await
}

/// `future` did not complete within its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Runs `future` for at most `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    monoio::time::timeout(duration, future)
        .await
        .map_err(|_| Elapsed)
}

/// Which of two futures finished first.
pub(crate) enum First<A, B> {
    /// The first one, with its output.
    A(A),
    /// The second one.
    B(B),
}

/// Runs `a` and `b` until one of them finishes (`a` is polled first); the other is dropped
/// with the returned future, which cancels it. A plain future rather than an `async fn`, so
/// the two are stored once (an idle connection's read is one of them).
pub(crate) fn first<A: Future, B: Future>(a: A, b: B) -> Race<A, B> {
    Race { a, b }
}

pin_project_lite::pin_project! {
    /// The future of [`first`].
    pub(crate) struct Race<A, B> {
        #[pin]
        a: A,
        #[pin]
        b: B,
    }
}

impl<A: Future, B: Future> Future for Race<A, B> {
    type Output = First<A::Output, B::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.a.poll(cx) {
            return Poll::Ready(First::A(out));
        }
        this.b.poll(cx).map(First::B)
    }
}

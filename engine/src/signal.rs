//! A one-shot, single-thread signal a task can await (stop accepting, stop reading).

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Fires once; every later `wait` returns at once.
#[derive(Default)]
pub(crate) struct Signal {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Signal {
    pub(crate) fn fire(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once [`Signal::fire`] was called. One waiter at a time.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.get() {
                return Poll::Ready(());
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

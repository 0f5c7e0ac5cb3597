//! Cross-thread work for a shard: a crossbeam channel plus a wake-up its runtime awaits.
//!
//! Any thread may post a job (a broadcast, a send to a client of that shard, a listener
//! change); the shard's mailbox task runs them in order on the shard's thread, where the
//! connection state lives. Posting wakes the task only if it is not already notified, so a
//! burst of jobs costs one cross-thread wake-up (monoio's `sync` wakers unpark the runtime
//! through its eventfd).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};

struct Wake {
    waker: AtomicWaker,
    notified: AtomicBool,
}

/// The posting side; cheap to clone, `Send + Sync`.
pub(crate) struct Mailbox<T> {
    tx: Sender<T>,
    wake: Arc<Wake>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

/// The receiving side, owned by one runtime.
pub(crate) struct Inbox<T> {
    rx: Receiver<T>,
    wake: Arc<Wake>,
}

/// A connected mailbox and inbox.
pub(crate) fn mailbox<T>() -> (Mailbox<T>, Inbox<T>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let wake = Arc::new(Wake {
        waker: AtomicWaker::new(),
        notified: AtomicBool::new(false),
    });
    (
        Mailbox {
            tx,
            wake: wake.clone(),
        },
        Inbox { rx, wake },
    )
}

impl<T> Mailbox<T> {
    /// Posts `item`; `false` if the inbox is gone (the shard stopped).
    pub(crate) fn post(&self, item: T) -> bool {
        if self.tx.send(item).is_err() {
            return false;
        }
        if !self.wake.notified.swap(true, Ordering::AcqRel) {
            self.wake.waker.wake();
        }
        true
    }
}

impl<T> Inbox<T> {
    /// Waits until at least one item is available, then returns everything queued, or
    /// `None` once every mailbox is dropped and the queue is empty.
    pub(crate) async fn recv_batch(&self, out: &mut Vec<T>) -> Option<()> {
        poll_fn(|cx| {
            self.wake.notified.store(false, Ordering::Release);
            loop {
                match self.rx.try_recv() {
                    Ok(item) => out.push(item),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) if out.is_empty() => return Poll::Ready(None),
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(()));
            }
            self.wake.waker.register(cx.waker());
            // A post between the drain and the registration would otherwise be missed.
            if !self.rx.is_empty() || self.wake.notified.load(Ordering::Acquire) {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }
}

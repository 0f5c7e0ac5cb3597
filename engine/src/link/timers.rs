//! One timer for every connection of a thread (a shard, or a client's thread): a heap of
//! deadlines and a single sleep for the earliest, instead of a timer task per connection.
//!
//! A link schedules itself when its connection's next deadline moves earlier; a deadline
//! that moved later is found stale when it comes due and scheduled again. So a connection
//! has about one entry here whatever it does, and an idle one costs its heap entry.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::{poll_fn, Future};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

use super::Link;

struct Entry {
    at: Instant,
    link: Weak<Link>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

/// The deadlines of one thread's connections.
#[derive(Default)]
pub(crate) struct Timers {
    heap: RefCell<BinaryHeap<Reverse<Entry>>>,
    /// Heap size at which it is next swept of entries nobody waits for any more.
    sweep_at: Cell<usize>,
    /// What the running sleep waits for.
    armed: Cell<Option<Instant>>,
    waker: Cell<Option<Waker>>,
}

impl Timers {
    /// Starts the thread's timer task.
    pub(crate) fn start() -> Rc<Self> {
        let timers = Rc::new(Self::default());
        drop(crate::rt::spawn(run(Rc::downgrade(&timers))));
        timers
    }

    /// Calls `link` back at `at`.
    pub(crate) fn schedule(&self, at: Instant, link: Weak<Link>) {
        {
            let mut heap = self.heap.borrow_mut();
            heap.push(Reverse(Entry { at, link }));
            if heap.len() >= self.sweep_at.get() {
                sweep(&mut heap);
                self.sweep_at.set(2 * heap.len() + MIN_SWEEP);
            }
        }
        if self.armed.get().is_none_or(|armed| at < armed) {
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    /// The entries due at `now`, removed from the heap.
    fn take_due(&self, now: Instant, due: &mut Vec<Entry>) {
        let mut heap = self.heap.borrow_mut();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            due.extend(heap.pop().map(|Reverse(e)| e));
        }
    }

    fn earliest(&self) -> Option<Instant> {
        self.heap.borrow().peek().map(|Reverse(e)| e.at)
    }
}

/// Heap size below which stale entries are not swept.
const MIN_SWEEP: usize = 1024;

/// Drops the entries of links that are gone or wait for another deadline now. A link's
/// entry stays in the heap until its deadline even after the link ends (a heap cannot
/// remove from the middle): a storm of short connections, each with a keepalive deadline
/// seconds away, would otherwise grow it by one entry per connection. Sweeping when it has
/// doubled keeps it within twice the live entries at O(1) amortized per entry.
fn sweep(heap: &mut BinaryHeap<Reverse<Entry>>) {
    heap.retain(|Reverse(entry)| {
        entry
            .link
            .upgrade()
            .is_some_and(|link| link.scheduled.get() == Some(entry.at))
    });
}

/// Fires deadlines as they come due, until the thread's timers are dropped.
async fn run(timers: Weak<Timers>) {
    let mut due = Vec::new();
    loop {
        let next = {
            let Some(timers) = timers.upgrade() else {
                return;
            };
            timers.take_due(Instant::now(), &mut due);
            for entry in due.drain(..) {
                if let Some(link) = entry.link.upgrade() {
                    link.on_timer(entry.at);
                }
            }
            let next = timers.earliest();
            timers.armed.set(next);
            next
        };
        let mut sleep = next.map(|at| Box::pin(crate::rt::sleep_until(at)));
        poll_fn(|cx| {
            let Some(timers) = timers.upgrade() else {
                return Poll::Ready(());
            };
            if let Some(sleep) = sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            // An earlier deadline than the one armed wakes this through `schedule`.
            if timers.armed.get() != timers.earliest() {
                return Poll::Ready(());
            }
            timers.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proto::{Connection, Wire};

    /// A storm of short connections leaves an entry each (their keepalive deadline, 15 s
    /// away): the heap is swept instead of growing by one per connection.
    #[test]
    fn entries_of_ended_links_are_swept() {
        let timers = Rc::new(Timers::default());
        let live = Link::new(0, conn(), timers.clone(), Duration::ZERO);
        for id in 1..=10_000 {
            drop(Link::new(id, conn(), timers.clone(), Duration::ZERO));
        }
        let len = timers.heap.borrow().len();
        assert!(len <= 2 * MIN_SWEEP, "{len} entries for one live link");
        sweep(&mut timers.heap.borrow_mut());
        assert_eq!(
            timers.earliest(),
            live.scheduled.get(),
            "the live link's entry stays"
        );
        assert_eq!(timers.heap.borrow().len(), 1);
    }

    fn conn() -> Connection {
        Connection::new(
            crate::bench_api::bench_config(Wire::WsServer),
            Instant::now(),
        )
    }
}

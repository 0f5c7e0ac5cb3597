//! One timer for every connection of a thread (a shard, or a client's thread): a heap of
//! deadlines and a single sleep for the earliest, instead of a timer task per connection.
//!
//! A link schedules itself when its connection's next deadline moves earlier; a deadline
//! that moved later is found stale when it comes due and scheduled again. So a connection
//! has about one entry here whatever it does, and an idle one costs its heap entry.
//!
//! Entries name a connection by its id, not by a reference to its link: an entry outlives
//! its connection until its deadline (a heap cannot remove from the middle), and a weak
//! reference would keep the ended link's memory allocated until then. The thread that owns
//! the links looks them up by id ([`Timers::start`]).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{poll_fn, Future};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

use super::Link;

/// Finds a live link by id on the thread that owns it.
pub(crate) type Lookup = Box<dyn Fn(u64) -> Option<Rc<Link>>>;

/// Heap size below which stale entries are not swept.
const MIN_SWEEP: usize = 1024;

/// The deadlines of one thread's connections.
#[derive(Default)]
pub(crate) struct Timers {
    /// (deadline, connection id), earliest first.
    heap: RefCell<BinaryHeap<Reverse<(Instant, u64)>>>,
    /// Heap size at which it is next swept of entries nobody waits for any more.
    sweep_at: Cell<usize>,
    /// What the running sleep waits for.
    armed: Cell<Option<Instant>>,
    waker: Cell<Option<Waker>>,
    lookup: RefCell<Option<Lookup>>,
}

impl Timers {
    /// Starts the thread's timer task, which finds links with `lookup`.
    pub(crate) fn start(self: &Rc<Self>, lookup: Lookup) {
        *self.lookup.borrow_mut() = Some(lookup);
        drop(crate::rt::spawn(run(Rc::downgrade(self))));
    }

    /// Calls link `id` back at `at`.
    pub(crate) fn schedule(&self, at: Instant, id: u64) {
        // Swept before the push: the link scheduling may not be where `lookup` finds it
        // yet (a new connection schedules before its shard registers it).
        if self.heap.borrow().len() >= self.sweep_at.get() {
            self.sweep();
            self.sweep_at.set(2 * self.heap.borrow().len() + MIN_SWEEP);
        }
        self.heap.borrow_mut().push(Reverse((at, id)));
        if self.armed.get().is_none_or(|armed| at < armed) {
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    /// Drops the entries of links that are gone or wait for another deadline now, so a
    /// storm of short connections (each leaving its keepalive deadline behind) does not
    /// grow the heap by one entry per connection: swept once it has doubled, it stays
    /// within about twice the live entries at O(1) amortized per entry.
    fn sweep(&self) {
        let lookup = self.lookup.borrow();
        let Some(lookup) = lookup.as_ref() else {
            return;
        };
        self.heap.borrow_mut().retain(|&Reverse((at, id))| {
            lookup(id).is_some_and(|link| link.scheduled.get() == Some(at))
        });
    }

    /// The entries due at `now`, removed from the heap.
    fn take_due(&self, now: Instant, due: &mut Vec<(Instant, u64)>) {
        let mut heap = self.heap.borrow_mut();
        while heap.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            due.extend(heap.pop().map(|Reverse(entry)| entry));
        }
    }

    fn earliest(&self) -> Option<Instant> {
        self.heap.borrow().peek().map(|Reverse((at, _))| *at)
    }

    fn find(&self, id: u64) -> Option<Rc<Link>> {
        self.lookup.borrow().as_ref().and_then(|lookup| lookup(id))
    }
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
            for (at, id) in due.drain(..) {
                if let Some(link) = timers.find(id) {
                    link.on_timer(at);
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
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::proto::{Connection, Wire};

    /// A storm of short connections leaves an entry each (their keepalive deadline, 15 s
    /// away): the heap is swept instead of growing by one per connection, and an ended
    /// link's memory is not held by its entry.
    #[test]
    fn entries_of_ended_links_are_swept_and_hold_no_link() {
        let timers = Rc::new(Timers::default());
        let links: Rc<RefCell<HashMap<u64, Rc<Link>>>> = Rc::default();
        let table = links.clone();
        *timers.lookup.borrow_mut() = Some(Box::new(move |id| table.borrow().get(&id).cloned()));
        let live = Link::new(0, conn(), timers.clone(), Duration::ZERO);
        links.borrow_mut().insert(0, live.clone());
        for id in 1..=10_000 {
            let link = Link::new(id, conn(), timers.clone(), Duration::ZERO);
            assert_eq!(
                Rc::weak_count(&link),
                0,
                "nothing keeps the ended link's memory"
            );
        }
        let len = timers.heap.borrow().len();
        assert!(len <= 2 * MIN_SWEEP, "{len} entries for one live link");
        timers.sweep();
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

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
use std::num::NonZeroU64;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::Link;

/// A moment in 8 bytes where an `Instant` takes 16 (and `Option<Deadline>` 8 too): every
/// connection holds one and the heap one per connection. Nanoseconds since its thread's
/// [`Timers`] were made, plus one; good for 584 years. Made and read by those timers
/// ([`Timers::deadline`]); a moment before they were made (none is: deadlines lie ahead
/// of the links that schedule them) reads as that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline(NonZeroU64);

/// Finds a live link by id on the thread that owns it.
pub(crate) type Lookup = Box<dyn Fn(u64) -> Option<Rc<Link>>>;

/// Heap size below which stale entries are not swept.
const MIN_SWEEP: usize = 1024;

/// The deadlines of one thread's connections.
pub(crate) struct Timers {
    /// What this thread's deadlines count from.
    epoch: Instant,
    /// (deadline, connection id), earliest first.
    heap: RefCell<BinaryHeap<Reverse<(Deadline, u64)>>>,
    /// Heap size at which it is next swept of entries nobody waits for any more.
    sweep_at: Cell<usize>,
    /// What the running sleep waits for.
    armed: Cell<Option<Deadline>>,
    waker: Cell<Option<Waker>>,
    lookup: RefCell<Option<Lookup>>,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            heap: RefCell::default(),
            sweep_at: Cell::default(),
            armed: Cell::default(),
            waker: Cell::default(),
            lookup: RefCell::default(),
        }
    }
}

impl Timers {
    /// `at` as a deadline of this thread.
    pub(crate) fn deadline(&self, at: Instant) -> Deadline {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        Deadline(NonZeroU64::MIN.saturating_add(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// The moment `deadline` stands for.
    fn instant(&self, deadline: Deadline) -> Instant {
        self.epoch + Duration::from_nanos(deadline.0.get() - 1)
    }

    /// Starts the thread's timer task, which finds links with `lookup`.
    pub(crate) fn start(self: &Rc<Self>, lookup: Lookup) {
        *self.lookup.borrow_mut() = Some(lookup);
        drop(crate::rt::spawn(run(Rc::downgrade(self))));
    }

    /// Calls link `id` back at `at`.
    ///
    /// Never calls `lookup` itself: a link schedules from inside the owner's own code
    /// (while its table of links may be borrowed), so the sweep this may call for runs in
    /// the timer task.
    pub(crate) fn schedule(&self, at: Deadline, id: u64) {
        self.heap.borrow_mut().push(Reverse((at, id)));
        if self.armed.get().is_none_or(|armed| at < armed) || self.sweep_due() {
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    /// Whether the heap has grown enough to be swept.
    fn sweep_due(&self) -> bool {
        self.heap.borrow().len() >= self.sweep_at.get().max(MIN_SWEEP)
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
    fn take_due(&self, now: Instant, due: &mut Vec<(Deadline, u64)>) {
        let now = self.deadline(now);
        let mut heap = self.heap.borrow_mut();
        while heap.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            due.extend(heap.pop().map(|Reverse(entry)| entry));
        }
    }

    fn earliest(&self) -> Option<Deadline> {
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
            if timers.sweep_due() {
                timers.sweep();
                timers
                    .sweep_at
                    .set(2 * timers.heap.borrow().len() + MIN_SWEEP);
            }
            timers.take_due(Instant::now(), &mut due);
            for (at, id) in due.drain(..) {
                if let Some(link) = timers.find(id) {
                    link.on_timer(at);
                }
            }
            let next = timers.earliest();
            timers.armed.set(next);
            next.map(|at| timers.instant(at))
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
            // An earlier deadline than the one armed, or a heap due for a sweep, wakes this
            // through `schedule`.
            if timers.armed.get() != timers.earliest() || timers.sweep_due() {
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
    /// away): the timer task sweeps the heap once it has grown, instead of it growing by
    /// one per connection, and an ended link's memory is not held by its entry. Scheduling
    /// never looks links up itself: here the table is borrowed mutably while thousands of
    /// links schedule (as a shard's is while it sends), which would panic if it did.
    #[test]
    fn entries_of_ended_links_are_swept_by_the_task_and_hold_no_link() {
        crate::rt::Driver::Epoll
            .block_on(64, async {
                let timers = Rc::new(Timers::default());
                let links: Rc<RefCell<HashMap<u64, Rc<Link>>>> = Rc::default();
                let table = links.clone();
                timers.start(Box::new(move |id| table.borrow().get(&id).cloned()));
                let live = Link::new(0, conn(), timers.clone(), Duration::ZERO);
                links.borrow_mut().insert(0, live.clone());
                {
                    let _borrowed = links.borrow_mut();
                    for id in 1..=10_000 {
                        let link = Link::new(id, conn(), timers.clone(), Duration::ZERO);
                        assert_eq!(
                            Rc::weak_count(&link),
                            0,
                            "nothing keeps the ended link's memory"
                        );
                    }
                }
                crate::rt::sleep(Duration::from_millis(5)).await;
                assert_eq!(
                    timers.earliest(),
                    live.scheduled.get(),
                    "the live link's entry stays"
                );
                assert_eq!(timers.heap.borrow().len(), 1, "the rest were swept");
            })
            .unwrap();
    }

    /// Deadlines keep their order and stand for their moment to the nanosecond; a moment
    /// from before the timers were made reads as that moment (never as "none").
    #[test]
    fn deadlines_keep_order_and_their_moment() {
        let before = Instant::now();
        let timers = Timers::default();
        let at = Instant::now() + Duration::from_millis(1500);
        let deadline = timers.deadline(at);
        assert_eq!(timers.instant(deadline), at);
        assert!(deadline < timers.deadline(at + Duration::from_nanos(1)));
        assert!(timers.deadline(before) <= timers.deadline(Instant::now()));
        assert_eq!(timers.instant(timers.deadline(before)), timers.epoch);
        assert_eq!(std::mem::size_of::<Option<Deadline>>(), 8);
    }

    fn conn() -> Connection {
        Connection::new(
            crate::bench_api::bench_config(Wire::WsServer),
            Instant::now(),
        )
    }
}

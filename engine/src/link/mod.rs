//! A link drives one live connection over its socket: the sans-IO
//! [`Connection`](crate::proto::Connection) decides, the link moves bytes and time in and
//! out of it. It owns what only a running connection has: its reader and writer tasks
//! ([`reader`], [`writer`]), its place in the thread's timer heap ([`timers`]), and the
//! connection's own listeners.
//!
//! Everything queued during one turn of the shard's loop leaves in one write ("corking"):
//! senders only queue frames and wake the writer, which runs after the current task
//! yields. With a flush delay the writer holds a connection's frames that long before
//! writing, so frames queued over several turns (a stream of broadcasts) share one write.
//!
//! After every change to the connection the link applies what follows from it
//! ([`Link::changed`]): the writer is woken when there is output, the reader stopped when
//! the connection no longer receives, the writer stopped when it is aborted, and the timer
//! moved when a deadline came earlier.

pub(crate) mod reader;
pub(crate) mod timers;
pub(crate) mod writer;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::proto::outgoing::{FrameParts, IntoFrame};
use crate::proto::queries::Reply;
use crate::proto::{Connection, End};
use crate::session::frame_log::Kept;
use crate::session::wire::Control;
use timers::{Deadline, Timers};

/// How long a connection must have received nothing before the idle sweep parks it
/// whole (see [`ParkedConnection`]): long enough that a connection in use, even a slow
/// one, keeps its tasks, short enough that idle ones are parked within seconds.
const PARK_AFTER: Duration = Duration::from_secs(2);

/// [`Link::park_requests`] bit: the writer is asked to park.
const PARK_WRITER: u8 = 1;
/// [`Link::park_requests`] bit: the reader is asked to park (the whole connection).
const PARK_READER: u8 = 2;

/// Queued bytes at which a held queue is written without waiting out the flush delay
/// (or half the queue limit, if that is lower, so holding never closes a healthy peer as
/// a slow consumer): holding more saves no sends worth the latency and the memory.
const FLUSH_NOW_BYTES: usize = 64 << 10;

pub(crate) struct Link {
    pub(crate) id: u64,
    conn: RefCell<Connection>,
    timers: Rc<Timers>,
    /// The deadline the timer heap holds for this link, if any.
    scheduled: Cell<Option<Deadline>>,
    /// How long the writer holds queued frames before writing them, in microseconds
    /// (compact: this struct is most of what an idle connection holds).
    flush_delay_us: u32,
    /// The writer task, waiting for output (or holding it for the flush delay), or
    /// mid-write for an abort (see `aborted`). One slot per task, not per thing awaited:
    /// a task waits on one thing at a time. New output does not wake a writer mid-write
    /// (see [`WriterState::Writing`]); an abort does. (This struct is most of what an
    /// idle connection holds.)
    writer: Cell<Option<Waker>>,
    /// The reader's task, waiting for the connection to stop receiving or to be asked to
    /// park (see `reading_stopped`, `reader_released`), and at its end for the writer to
    /// finish (see `writer_done`).
    reader: Cell<Option<Waker>>,
    /// This connection's own listeners, a `ListenerCell<C>` for the endpoint's context type.
    listeners: Cell<Option<Rc<dyn Any>>>,
    /// What the link keeps of a task that is not running: the write half of a writer
    /// that parked, or the whole connection.
    parked: Cell<Option<Box<dyn Parked>>>,
    /// What the shard's idle sweep asked to park: the waiting writer ([`PARK_WRITER`]),
    /// the reader waiting for the socket ([`PARK_READER`], so that the connection parks
    /// whole). One byte for both: this struct is most of what an idle connection holds.
    park_requests: Cell<u8>,
    /// Whether anything was queued since the last idle sweep.
    active: Cell<bool>,
    /// What the writer task is doing, when it runs.
    writer_state: Cell<WriterState>,
    /// Fired when the writer has flushed and shut the write side down, or stopped.
    writer_done: Cell<bool>,
}

impl Link {
    pub(crate) fn new(
        id: u64,
        conn: Connection,
        timers: Rc<Timers>,
        flush_delay: Duration,
    ) -> Rc<Self> {
        let link = Rc::new(Self {
            id,
            conn: RefCell::new(conn),
            timers,
            scheduled: Cell::new(None),
            flush_delay_us: u32::try_from(flush_delay.as_micros()).unwrap_or(u32::MAX),
            writer: Cell::new(None),
            reader: Cell::new(None),
            listeners: Cell::new(None),
            parked: Cell::new(None),
            park_requests: Cell::new(0),
            active: Cell::new(false),
            writer_state: Cell::new(WriterState::Waiting),
            writer_done: Cell::new(false),
        });
        link.reschedule();
        link
    }

    /// A link with no socket and no timer task, over a connection with the benches'
    /// settings (benches and unit tests).
    #[cfg(any(test, feature = "bench-api"))]
    pub(crate) fn detached(wire: crate::proto::Wire) -> Rc<Self> {
        let conn = Connection::new(crate::bench_api::bench_config(wire), Instant::now());
        Self::new(1, conn, Rc::default(), Duration::ZERO)
    }

    /// Why the connection ended, once it has.
    pub(crate) fn end(&self) -> Option<End> {
        self.conn.borrow().end().cloned()
    }

    // ---- sending ----

    /// Queues a data frame; `false` if the connection no longer sends or the frame would
    /// exceed the queue limit (the connection is then closed with 1008).
    pub(crate) fn send(self: &Rc<Self>, frame: Bytes) -> bool {
        self.send_parts(FrameParts::whole(frame))
    }

    /// Queues a frame given as a header and a body.
    pub(crate) fn send_parts(self: &Rc<Self>, frame: FrameParts) -> bool {
        let queued = self.conn.borrow_mut().send_parts(frame);
        self.queued(queued)
    }

    /// Queues a small frame kept elsewhere (a session's replay buffer), copied.
    #[inline]
    pub(crate) fn send_copied(self: &Rc<Self>, frame: &[u8]) -> bool {
        let queued = self.conn.borrow_mut().send_copied(frame);
        self.queued(queued)
    }

    /// Queues a frame a session's replay buffer kept.
    pub(crate) fn send_kept(self: &Rc<Self>, frame: Kept<'_>) -> bool {
        match frame {
            Kept::Copied(frame) => self.send_copied(frame),
            Kept::Shared(frame) => self.send_parts(frame.clone()),
        }
    }

    /// Queues a frame other connections share (a broadcast), without touching its
    /// reference count unless it is large.
    pub(crate) fn send_shared(self: &Rc<Self>, frame: &Bytes) -> bool {
        let queued = self.conn.borrow_mut().send_shared(frame);
        self.queued(queued)
    }

    /// Queues `message`, a small one encoded straight into the queue.
    pub(crate) fn send_message<F: IntoFrame>(self: &Rc<Self>, message: F) -> bool {
        let queued = self.conn.borrow_mut().send_message(message);
        self.queued(queued)
    }

    /// After a send: the connection is active and its writer has work. A writer holding
    /// for the flush delay is woken only once the queue should be written early, not for
    /// every frame. A refused frame may have closed the connection (a slow consumer).
    fn queued(self: &Rc<Self>, queued: bool) -> bool {
        if !queued {
            self.changed();
            return false;
        }
        self.active.set(true);
        if self.writer_state.get() != WriterState::Holding
            || self.conn.borrow().queued_bytes() >= self.flush_now_bytes()
        {
            self.wake_writer();
        }
        true
    }

    /// Queued bytes at which a held queue is written without waiting out the delay.
    fn flush_now_bytes(&self) -> usize {
        FLUSH_NOW_BYTES.min(self.conn.borrow().max_queued_bytes() / 2)
    }

    /// Wakes the writer task, or restarts it if it was parked (with the reader too if the
    /// whole connection was).
    fn wake_writer(self: &Rc<Self>) {
        if let Some(w) = self.waiting_writer() {
            w.wake();
            return;
        }
        if let Some(parked) = self.parked.take() {
            parked.start(self.clone());
        }
    }

    // ---- sessions ----

    /// The session extension is in use on this connection: session frames are accepted.
    pub(crate) fn accept_session_frames(&self) {
        self.conn.borrow_mut().accept_session_frames();
    }

    /// Queues a session control message, in order with the data frames.
    pub(crate) fn send_session(self: &Rc<Self>, control: &Control) -> bool {
        let queued = self.conn.borrow_mut().send_session(&control.encode());
        self.queued(queued)
    }

    /// Whether the data message just received needs the shard's session bookkeeping: every
    /// `every`-th message on the connection (when an acknowledgement may be due), and every
    /// message once the connection is closing (its session may have ended or moved to a
    /// newer connection). Until then a message is dispatched without looking the session up.
    #[inline]
    pub(crate) fn session_work_due(&self, every: u32) -> bool {
        let conn = self.conn.borrow();
        !conn.is_open() || conn.data_received().is_multiple_of(every)
    }

    /// When bytes last arrived from the peer.
    pub(crate) fn last_heard(&self) -> Instant {
        self.conn.borrow().last_received()
    }

    /// Whether data may still be sent (see [`Connection::is_open`]).
    pub(crate) fn is_open(&self) -> bool {
        self.conn.borrow().is_open()
    }

    /// Data messages received so far (wrapping; see [`Connection::data_received`]).
    pub(crate) fn data_received(&self) -> u32 {
        self.conn.borrow().data_received()
    }

    // ---- closing ----

    /// Starts the closing handshake (see [`Connection::close`]).
    pub(crate) fn close(self: &Rc<Self>, code: u16, reason: &str) {
        self.conn.borrow_mut().close(Instant::now(), code, reason);
        self.changed();
    }

    /// No more frames: the writer flushes what is queued and shuts the write side down.
    pub(crate) fn finish(self: &Rc<Self>) {
        self.conn.borrow_mut().finish();
        self.changed();
    }

    /// Stops reading and writing at once.
    pub(crate) fn abort(self: &Rc<Self>, end: End) {
        self.conn.borrow_mut().abort(end);
        self.changed();
    }

    /// Resolves once the writer has flushed and shut the write side down, or stopped.
    pub(crate) fn writer_done(&self) -> impl Future<Output = ()> + '_ {
        until(&self.reader, || self.writer_done.get())
    }

    /// The writer has flushed and shut the write side down, or stopped.
    pub(super) fn writer_finished(&self) {
        self.writer_done.set(true);
        wake(&self.reader);
    }

    /// Resolves once the connection no longer receives (the reader must stop).
    pub(crate) fn reading_stopped(&self) -> impl Future<Output = ()> + '_ {
        until(&self.reader, || !self.conn.borrow().is_receiving())
    }

    /// For a reader waiting with nothing in its buffer (for the socket to be readable, or
    /// on a cancelable read in the kernel): resolves once the connection no longer
    /// receives (`false`) or the idle sweep asks the reader to park (`true`, the request
    /// taken).
    pub(crate) fn reader_released(&self) -> impl Future<Output = bool> + '_ {
        let released = until(&self.reader, || {
            self.park_requested(PARK_READER) || !self.conn.borrow().is_receiving()
        });
        async move {
            released.await;
            self.conn.borrow().is_receiving()
        }
    }

    /// Resolves once the connection is aborted (the writer must stop, even mid-write).
    pub(crate) fn aborted(&self) -> impl Future<Output = ()> + '_ {
        until(&self.writer, || self.conn.borrow().is_aborted())
    }

    /// How long the writer holds queued frames before writing them.
    pub(crate) fn flush_delay(&self) -> Duration {
        Duration::from_micros(u64::from(self.flush_delay_us))
    }

    // ---- queries ----

    /// Registers a query (its frame must be sent right after).
    pub(crate) fn register_query(
        self: &Rc<Self>,
        tid: u32,
        expected_id: u32,
        reply: Reply,
    ) -> bool {
        let registered =
            self.conn
                .borrow_mut()
                .register_query(Instant::now(), tid, expected_id, reply);
        self.reschedule();
        registered
    }

    /// Fails every pending query (the connection ended).
    pub(crate) fn fail_queries(&self) {
        self.conn.borrow_mut().fail_queries();
    }

    // ---- keeping the tasks and the timer in step with the connection ----

    /// Applies what a change to the connection implies for the tasks and the timer.
    pub(crate) fn changed(self: &Rc<Self>) {
        let (receiving, aborted, output) = {
            let conn = self.conn.borrow();
            (conn.is_receiving(), conn.is_aborted(), conn.has_transmit())
        };
        if !receiving {
            wake(&self.reader);
        }
        if aborted {
            wake(&self.writer);
        }
        if !receiving && !output && self.take_parked_writer().is_some() {
            // An idle connection ending (how most end: the peer closes an idle one): its
            // parked write half is dropped here, with nothing to flush, instead of starting
            // a task only to shut it down.
            self.writer_finished();
        } else if output || !receiving {
            // The writer writes, or flushes and shuts down, or stops.
            self.wake_writer();
        }
        self.reschedule();
    }

    /// Puts the connection's next deadline in the timer heap if it is earlier than the one
    /// there.
    fn reschedule(self: &Rc<Self>) {
        let Some(at) = self.conn.borrow().poll_timeout() else {
            return;
        };
        let at = self.timers.deadline(at);
        if self.scheduled.get().is_none_or(|scheduled| at < scheduled) {
            self.scheduled.set(Some(at));
            self.timers.schedule(at, self.id);
        }
    }

    /// The timer heap calls back for the deadline `at` (stale unless it is the one this
    /// link last scheduled).
    fn on_timer(self: &Rc<Self>, at: Deadline) {
        if self.scheduled.get() != Some(at) {
            return;
        }
        self.scheduled.set(None);
        self.conn.borrow_mut().handle_timeout(Instant::now());
        self.changed();
        self.rest_if_parked();
    }

    /// A connection parked whole whose deadline passed without resuming it (a query that
    /// kept its working state expired, and nothing was queued) gives that state up now:
    /// nothing else would until the peer sends.
    fn rest_if_parked(&self) {
        let parked = self.parked.take();
        if parked.as_ref().is_some_and(|parked| parked.is_whole()) {
            self.conn.borrow_mut().rest();
        }
        self.parked.set(parked);
    }

    /// Takes what the connection has to send into `batch`, as the writer does (benches).
    #[cfg(any(test, feature = "bench-api"))]
    pub(crate) fn take_batch(&self, batch: &mut crate::proto::batch::WriteBatch) {
        self.conn.borrow_mut().poll_transmit(Instant::now(), batch);
    }

    /// A write of the batch completed, as the writer reports it (benches).
    #[cfg(any(test, feature = "bench-api"))]
    pub(crate) fn transmitted(&self, drained: bool) {
        self.conn.borrow_mut().transmitted(Instant::now(), drained);
    }

    // ---- listeners ----

    /// This connection's listener table of type `T`, created on first use.
    pub(crate) fn listeners<T: Default + 'static>(&self) -> Rc<T> {
        if let Some(table) = self.existing_listeners::<T>() {
            return table;
        }
        let table = Rc::new(T::default());
        self.listeners.set(Some(table.clone()));
        table
    }

    /// Gives this link the listener table another link had (a resumed session keeps its
    /// connection's own listeners).
    pub(crate) fn adopt_listeners(&self, table: Option<Rc<dyn Any>>) {
        self.listeners.set(table);
    }

    /// Takes the listener table away (to give it to the link that replaces this one).
    pub(crate) fn take_listeners(&self) -> Option<Rc<dyn Any>> {
        self.listeners.take()
    }

    /// The listener table if one was created.
    pub(crate) fn existing_listeners<T: 'static>(&self) -> Option<Rc<T>> {
        let slot = self.listeners.take();
        let table = slot.as_ref().and_then(|t| t.clone().downcast::<T>().ok());
        self.listeners.set(slot);
        table
    }

    // ---- idle ----

    /// Asks the writer to park once everything queued is written (as the idle sweep
    /// does, but now).
    pub(crate) fn request_park(&self) {
        if let Some(w) = self.waiting_writer() {
            self.request_park_of(PARK_WRITER);
            w.wake();
        }
    }

    /// The writer's waker if it waits for output or holds it; `None` while it writes
    /// (it looks at the queue again once the write is done) or does not run.
    fn waiting_writer(&self) -> Option<Waker> {
        if self.writer_state.get() == WriterState::Writing {
            return None;
        }
        self.writer.take()
    }

    /// Asks the writer or the reader (`which`, a `PARK_` bit) to park.
    fn request_park_of(&self, which: u8) {
        self.park_requests.set(self.park_requests.get() | which);
    }

    /// Whether the writer or the reader (`which`) was asked to park; the request is taken.
    pub(super) fn park_requested(&self, which: u8) -> bool {
        let requests = self.park_requests.get();
        self.park_requests.set(requests & !which);
        requests & which != 0
    }

    /// The parked writer's write half (not a whole connection's).
    fn take_parked_writer(&self) -> Option<Box<dyn Any>> {
        match self.parked.take()?.into_write_half() {
            Ok(half) => Some(half),
            Err(whole) => {
                self.parked.set(Some(whole));
                None
            }
        }
    }

    /// The parked writer's write half, once everything queued was written and the writer
    /// parked; `None` while it still runs (or has output to write).
    pub(crate) fn take_write_half(&self) -> Option<Box<dyn Any>> {
        if self.conn.borrow().has_transmit() {
            return None;
        }
        self.take_parked_writer()
    }

    /// The shard's idle sweep: a connection that queued nothing since the last sweep
    /// parks its writer task, so an idle connection keeps only its reader; one that also
    /// received nothing for [`PARK_AFTER`] is asked to park whole (the reader does if it
    /// is waiting with nothing in its buffer, once its pending read, if any, is cancelled,
    /// and its writer has parked).
    pub(crate) fn sweep_idle(&self, now: Instant) {
        if self.active.replace(false) || !self.conn.borrow().is_open() {
            return;
        }
        if let Some(w) = self.waiting_writer() {
            self.request_park_of(PARK_WRITER);
            w.wake();
        }
        if now.saturating_duration_since(self.last_heard()) >= PARK_AFTER {
            self.request_park_of(PARK_READER);
            wake(&self.reader);
        }
    }

    /// Parks the whole connection: neither task runs until it is resumed (see
    /// [`Parked`]). The writer must have parked already, its half taken.
    pub(crate) fn park(&self, connection: Box<dyn Parked>) {
        self.conn.borrow_mut().rest();
        let before = self.parked.replace(Some(connection));
        debug_assert!(before.is_none(), "parked twice");
    }

    /// The parked connection's socket has an event: resumes it. Nothing happens unless it
    /// is parked whole (a late event).
    pub(crate) fn socket_ready(self: &Rc<Self>) {
        match self.parked.take() {
            Some(whole) if whole.is_whole() => whole.start(self.clone()),
            writer => self.parked.set(writer),
        }
    }
}
/// What the writer task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriterState {
    /// Waiting for output (or not running).
    Waiting,
    /// Holding queued frames for the flush delay.
    Holding,
    /// A write is in flight: new output is taken once it is done, so it is not woken for
    /// that (a wake per queued frame, each a poll of the write for nothing).
    Writing,
}

/// What a link keeps of its tasks while they are not running: the write half of a writer
/// that parked (the reader runs), or a whole connection at rest. A connection idle long
/// enough parks whole: neither task runs and it holds no buffer (its socket waits in the
/// shard's [`IdlePoller`](crate::rt::idle::IdlePoller)). It is resumed, its tasks started
/// again, when the peer sends or hangs up, when a frame is queued (a broadcast, a ping),
/// or when the connection is closed or aborted.
pub(crate) trait Parked {
    /// Starts what was parked again: the writer, or the whole connection (whose writer
    /// starts once it has output).
    fn start(self: Box<Self>, link: Rc<Link>);
    /// The write half (a `W`, boxed) if only the writer was parked, without shutting the
    /// socket's write side down; a whole connection comes back unchanged.
    fn into_write_half(self: Box<Self>) -> Result<Box<dyn Any>, Box<dyn Parked>>;
    /// Whether the whole connection is parked (not only its writer).
    fn is_whole(&self) -> bool;
}

/// Resolves once `done` holds; while it does not, the waiting task's waker is kept in
/// `slot`, where [`wake`] finds it. Dropped (raced against a read or a write that
/// finished first), it takes its waker back out of the slot: a waker left there would
/// keep its task's memory alive after the task ended (a parked writer's whole task).
fn until<'a, F: Fn() -> bool + 'a>(slot: &'a Cell<Option<Waker>>, done: F) -> Until<'a, F> {
    Until { slot, done }
}

/// The future of [`until`].
struct Until<'a, F> {
    slot: &'a Cell<Option<Waker>>,
    done: F,
}

impl<F: Fn() -> bool> Future for Until<'_, F> {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if (self.done)() {
            return Poll::Ready(());
        }
        self.slot.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl<F> Drop for Until<'_, F> {
    fn drop(&mut self) {
        drop(self.slot.take());
    }
}

/// Wakes the task waiting in `slot`, if any.
fn wake(slot: &Cell<Option<Waker>>) {
    if let Some(waker) = slot.take() {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    /// Every connection holds a link for its whole life, idle or not, and it is most of
    /// what a parked connection holds (ARCHITECTURE.md, "What a parked connection still
    /// costs"). 360 bytes before the connection core, 688 at first with it (the
    /// connection's state, configuration and timers live here), 432 once the
    /// configuration was shared and the rarely used parts created on first use, 352
    /// since the fragment buffer and the end are boxed and the parked and listener slots
    /// are plain cells: with the `Rc`'s two counts, 368, in mimalloc's 384-byte size
    /// class instead of 448. 208 (224 with the counts, that class exactly) since what only
    /// a connection in use needs (decoder, queue, in-flight deadlines) is boxed apart and
    /// given up at rest, and deadlines take 8 bytes; 176 (192 with the counts) since each
    /// task has one waker slot instead of one per thing it awaits; 136 (152 with the
    /// counts, in the 160 class) since queued bytes, pongs, queries and the end are
    /// working state and the last received moment takes 8 bytes.
    #[test]
    fn a_link_stays_in_its_size_class() {
        let size = std::mem::size_of::<super::Link>() + 16;
        assert!(size <= 160, "the link's allocation grew to {size} bytes");
    }

    /// Stands for a connection parked whole (its socket and serving state).
    struct ParkedWhole;

    impl super::Parked for ParkedWhole {
        fn start(self: Box<Self>, _link: std::rc::Rc<super::Link>) {}
        fn into_write_half(
            self: Box<Self>,
        ) -> Result<Box<dyn std::any::Any>, Box<dyn super::Parked>> {
            Err(self)
        }
        fn is_whole(&self) -> bool {
            true
        }
    }

    /// A query keeps a parked connection's working state while it waits; once it has
    /// expired, with nothing queued to resume the connection, the state is given up.
    #[test]
    fn a_parked_connection_rests_again_when_its_query_expires() {
        let link = super::Link::detached(crate::proto::Wire::WsServer);
        let (reply, answer) = oneshot::channel();
        assert!(link.register_query(1, 5, reply));
        link.park(Box::new(ParkedWhole));
        assert!(link.conn.borrow().is_working(), "the query is in flight");

        let later = std::time::Instant::now() + crate::proto::Timeouts::default().query;
        link.conn.borrow_mut().handle_timeout(later);
        assert!(answer.try_recv().unwrap().is_err(), "the query expired");
        link.rest_if_parked();
        assert!(!link.conn.borrow().is_working());
    }
}

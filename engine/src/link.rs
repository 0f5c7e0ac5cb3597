//! One live connection's shard-local state: its outgoing queue and writer task, its
//! close state machine, its pending queries and its own listeners.
//!
//! Everything queued for a connection during one turn of the shard's loop leaves in one
//! write (`send` when it is one buffer, `writev` when several): senders only queue frames
//! and wake the writer, which runs after the current task yields ("corking"). Small frames
//! are encoded or copied into one contiguous buffer of the [`Outbox`], large ones keep
//! their own buffer. The queue is bounded: a peer that does not read gets closed with 1008
//! instead of growing memory without limit.
//!
//! With a flush delay configured the writer holds a connection's frames that long before
//! writing, so frames queued over several turns (a stream of broadcasts) share one write:
//! fewer sends for more latency, the trade a tick-based game server makes anyway.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::AsyncWriteRent;

use crate::iovec::WriteBatch;
use crate::outbox::Outbox;
use crate::outgoing::{FrameParts, IntoFrame, ZERO_COPY_MIN};
use crate::proto::{close_code, frame::close_payload, OpCode, Wire};
use crate::query::{PendingQueries, QueryError};
use crate::signal::Signal;

/// Most frames handed to one `writev` (Linux's IOV_MAX is 1024).
const MAX_BATCH: usize = 256;

/// Queued bytes at which a held queue is written without waiting out the flush delay
/// (or half the queue limit, if that is lower, so holding never closes a healthy peer as
/// a slow consumer): holding more saves no sends worth the latency and the memory.
const FLUSH_NOW_BYTES: usize = 64 << 10;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending and receiving.
    Open,
    /// Our close frame is queued; waiting for the peer's (until the close timeout).
    Closing,
    /// No more frames; the writer flushes what is queued and stops.
    Finished,
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkLimits {
    pub max_queued_bytes: usize,
    pub max_pending_queries: usize,
    pub query_timeout: Duration,
    pub close_timeout: Duration,
    /// How long the writer holds queued frames before writing them (zero: it writes at
    /// the end of the turn in which they were queued).
    pub flush_delay: Duration,
}

pub(crate) struct Link {
    pub(crate) id: u64,
    pub(crate) wire: Wire,
    limits: LinkLimits,
    out: RefCell<Outbox>,
    queued_bytes: Cell<usize>,
    writer: Cell<Option<Waker>>,
    phase: Cell<Phase>,
    stop: Signal,
    queries: RefCell<PendingQueries>,
    timer_running: Cell<bool>,
    /// This connection's own listeners, a `ListenerCell<C>` for the endpoint's context type.
    listeners: RefCell<Option<Rc<dyn Any>>>,
    /// The write half of an idle connection whose writer task ended; the next frame
    /// restarts it.
    parked: RefCell<Option<ParkedWriter>>,
    /// Asks a waiting writer to park (set by the shard's idle sweep).
    park_requested: Cell<bool>,
    /// Whether anything was queued since the last idle sweep.
    active: Cell<bool>,
    /// Whether the writer is holding queued frames for the flush delay.
    holding: Cell<bool>,
    /// Fired when the writer has flushed and shut the write side down.
    writer_done: Signal,
}

/// Restarts a parked writer task with its write half.
type ParkedWriter = Box<dyn FnOnce(Rc<Link>)>;

impl Link {
    pub(crate) fn new(id: u64, wire: Wire, limits: LinkLimits) -> Rc<Self> {
        Rc::new(Self {
            id,
            wire,
            limits,
            out: RefCell::new(Outbox::default()),
            queued_bytes: Cell::new(0),
            writer: Cell::new(None),
            phase: Cell::new(Phase::Open),
            stop: Signal::default(),
            queries: RefCell::new(PendingQueries::new(limits.max_pending_queries)),
            timer_running: Cell::new(false),
            listeners: RefCell::new(None),
            parked: RefCell::new(None),
            park_requested: Cell::new(false),
            active: Cell::new(false),
            holding: Cell::new(false),
            writer_done: Signal::default(),
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.phase.get() == Phase::Open
    }

    /// Queues a data frame; `false` if the connection no longer sends or the frame would
    /// exceed the queue limit (the connection is then closed with 1008).
    pub(crate) fn send(self: &Rc<Self>, frame: Bytes) -> bool {
        self.send_parts(FrameParts {
            head: frame,
            body: None,
        })
    }

    /// Queues a frame given as a header and a body.
    pub(crate) fn send_parts(self: &Rc<Self>, frame: FrameParts) -> bool {
        let len = frame.head.len() + frame.body.as_ref().map_or(0, Bytes::len);
        if !self.admit(len) {
            return false;
        }
        {
            let mut out = self.out.borrow_mut();
            match frame.body {
                Some(body) => {
                    out.push_separate(frame.head);
                    out.push(body);
                }
                None => out.push(frame.head),
            }
        }
        self.queued(len);
        true
    }

    /// Queues a frame other connections share (a broadcast), without touching its
    /// reference count unless it is large.
    pub(crate) fn send_shared(self: &Rc<Self>, frame: &Bytes) -> bool {
        if !self.admit(frame.len()) {
            return false;
        }
        self.out.borrow_mut().push_shared(frame);
        self.queued(frame.len());
        true
    }

    /// Queues `message`: a small frame of known size is encoded straight into the queue's
    /// contiguous buffer, anything else is built by [`IntoFrame::into_parts`].
    pub(crate) fn send_message<F: IntoFrame>(self: &Rc<Self>, message: F) -> bool {
        let len = match message.payload_len() {
            Some(len) if len < ZERO_COPY_MIN => len,
            Some(len) => return self.send_parts(message.into_parts_sized(self.wire, len)),
            None => return self.send_parts(message.into_parts(self.wire)),
        };
        let frame_len = self.wire.frame_len(len);
        if !self.admit(frame_len) {
            return false;
        }
        let wire = self.wire;
        self.out
            .borrow_mut()
            .append(|out| message.write_frame(wire, len, out));
        self.queued(frame_len);
        true
    }

    /// Whether a frame of `len` bytes may be queued: `false` if the connection no longer
    /// sends or the frame would exceed the queue limit (the connection is then closed with
    /// 1008).
    fn admit(self: &Rc<Self>, len: usize) -> bool {
        if self.phase.get() != Phase::Open {
            return false;
        }
        // One frame is always accepted into an empty queue, so a single message may be
        // as large as the message limit allows.
        let queued = self.queued_bytes.get() + len;
        if self.queued_bytes.get() > 0 && queued > self.limits.max_queued_bytes {
            tracing::warn!(
                conn = self.id,
                queued,
                "send queue limit exceeded, closing slow consumer"
            );
            self.close(close_code::POLICY, "send queue limit exceeded");
            return false;
        }
        true
    }

    /// Queues a control frame (not counted against the queue limit); it ends a flush
    /// delay's hold.
    fn push(self: &Rc<Self>, frame: Bytes) {
        self.out.borrow_mut().push(frame);
        self.active.set(true);
        self.wake_writer();
    }

    /// `len` more bytes were queued: the connection is active and its writer has work. A
    /// writer holding for the flush delay is woken only once the queue should be written
    /// early, not for every frame.
    fn queued(self: &Rc<Self>, len: usize) {
        let queued = self.queued_bytes.get() + len;
        self.queued_bytes.set(queued);
        self.active.set(true);
        if !self.holding.get() || queued >= self.flush_now_bytes() {
            self.wake_writer();
        }
    }

    /// Queued bytes at which a held queue is written without waiting out the delay.
    fn flush_now_bytes(&self) -> usize {
        FLUSH_NOW_BYTES.min(self.limits.max_queued_bytes / 2)
    }

    /// Wakes the writer task, or restarts it if it was parked.
    fn wake_writer(self: &Rc<Self>) {
        if let Some(w) = self.writer.take() {
            w.wake();
            return;
        }
        let parked = self.parked.borrow_mut().take();
        if let Some(resume) = parked {
            resume(self.clone());
        }
    }

    /// Moves the oldest queued frames (at most one `writev`'s worth) into the empty `batch`.
    pub(crate) fn take_batch(&self, batch: &mut WriteBatch) {
        let taken = self.out.borrow_mut().take_into(batch, MAX_BATCH);
        self.queued_bytes
            .set(self.queued_bytes.get().saturating_sub(taken));
    }

    /// The shard's idle sweep: a connection that queued nothing since the last sweep
    /// parks its writer task, so an idle connection keeps only its reader.
    pub(crate) fn sweep_idle(&self) {
        if self.active.replace(false) || self.phase.get() != Phase::Open {
            return;
        }
        if let Some(w) = self.writer.take() {
            self.park_requested.set(true);
            w.wake();
        }
    }

    /// Resolves once the writer has flushed and shut the write side down.
    pub(crate) async fn writer_done(&self) {
        self.writer_done.wait().await
    }

    /// Answers a ping.
    pub(crate) fn pong(self: &Rc<Self>, payload: &[u8]) {
        if self.phase.get() == Phase::Open {
            if let Some(frame) = self.wire.control(OpCode::Pong, payload) {
                self.push(frame);
            }
        }
    }

    /// Starts the closing handshake: our close frame goes out, the reader waits for the
    /// peer's close up to the close timeout. On TCP the write side is shut down after the
    /// queue drains.
    pub(crate) fn close(self: &Rc<Self>, code: u16, reason: &str) {
        if self.phase.get() != Phase::Open {
            return;
        }
        match self
            .wire
            .control(OpCode::Close, &close_payload(code, reason))
        {
            Some(frame) => {
                self.push(frame);
                self.phase.set(Phase::Closing);
            }
            None => self.finish(),
        }
        let link = Rc::downgrade(self);
        let timeout = self.limits.close_timeout;
        monoio::spawn(async move {
            monoio::time::sleep(timeout).await;
            if let Some(link) = link.upgrade() {
                link.abort();
            }
        });
    }

    /// The peer sent its close frame: echo it if we have not sent ours, then finish.
    pub(crate) fn peer_closed(self: &Rc<Self>, code: Option<u16>) {
        if self.phase.get() == Phase::Open {
            let payload = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
            if let Some(frame) = self.wire.control(OpCode::Close, &payload) {
                self.push(frame);
            }
        }
        self.finish();
    }

    /// Sends a protocol-error close and finishes without waiting for the peer.
    pub(crate) fn fail(self: &Rc<Self>, code: u16, reason: &str) {
        if self.phase.get() == Phase::Open {
            if let Some(frame) = self
                .wire
                .control(OpCode::Close, &close_payload(code, reason))
            {
                self.push(frame);
            }
        }
        self.finish();
    }

    /// No more frames: the writer flushes and stops.
    ///
    /// A parked writer has nothing to flush: its write half is dropped here (the socket
    /// closes with the connection) instead of starting a task only to shut it down, which
    /// is how most connections end (the peer closes an idle one).
    pub(crate) fn finish(self: &Rc<Self>) {
        self.phase.set(Phase::Finished);
        if self.out.borrow().is_empty() && self.parked.borrow_mut().take().is_some() {
            self.writer_done.fire();
            return;
        }
        self.wake_writer();
    }

    /// Stops the reader at once (and the writer after its flush).
    pub(crate) fn abort(self: &Rc<Self>) {
        self.finish();
        self.stop.fire();
    }

    /// Resolves when the connection must stop reading.
    pub(crate) async fn stopped(&self) {
        self.stop.wait().await
    }

    /// Registers a query (its frame must be sent right after) and makes sure the
    /// connection's deadline timer runs.
    pub(crate) fn register_query(
        self: &Rc<Self>,
        tid: u32,
        expected_id: u32,
        reply: oneshot::Sender<Result<Bytes, QueryError>>,
    ) -> bool {
        if !self.is_open() {
            let _ = reply.send(Err(QueryError::NotConnected));
            return false;
        }
        let deadline = Instant::now() + self.limits.query_timeout;
        if !self
            .queries
            .borrow_mut()
            .insert(tid, expected_id, reply, deadline)
        {
            return false;
        }
        if !self.timer_running.replace(true) {
            monoio::spawn(deadline_timer(Rc::downgrade(self)));
        }
        true
    }

    /// Completes a pending query with this frame, if it answers one.
    pub(crate) fn complete_query(&self, tid: u32, id: u32, frame: &Bytes) -> bool {
        self.queries.borrow_mut().complete(tid, id, frame)
    }

    /// Whether a query on this connection waits for its answer.
    pub(crate) fn awaits_queries(&self) -> bool {
        !self.queries.borrow().is_empty()
    }

    /// Fails every pending query (the connection ended).
    pub(crate) fn fail_queries(&self) {
        self.queries.borrow_mut().fail_all(QueryError::Disconnected);
    }

    /// This connection's listener table of type `T`, created on first use.
    pub(crate) fn listeners<T: Default + 'static>(&self) -> Rc<T> {
        let mut slot = self.listeners.borrow_mut();
        if let Some(existing) = slot.as_ref() {
            if let Ok(table) = existing.clone().downcast::<T>() {
                return table;
            }
        }
        let table = Rc::new(T::default());
        *slot = Some(table.clone());
        table
    }

    /// The listener table if one was created.
    pub(crate) fn existing_listeners<T: 'static>(&self) -> Option<Rc<T>> {
        self.listeners
            .borrow()
            .as_ref()?
            .clone()
            .downcast::<T>()
            .ok()
    }
}

/// Fails queries as their deadlines pass; runs while any query is pending.
async fn deadline_timer(link: Weak<Link>) {
    loop {
        let next = {
            let Some(link) = link.upgrade() else { return };
            let next = link
                .queries
                .borrow_mut()
                .expire(Instant::now(), link.limits.query_timeout);
            if next.is_none() {
                link.timer_running.set(false);
                return;
            }
            next
        };
        if let Some(at) = next {
            monoio::time::sleep_until(at.into()).await;
        }
    }
}

/// What the writer does next.
enum Next {
    Write,
    Park,
    Finish,
}

/// Gives `link` its write half. No task runs until the first frame is queued, so a
/// connection that only listens never pays for a writer.
pub(crate) fn attach_writer<W: AsyncWriteRent + 'static>(writer: W, link: &Link) {
    *link.parked.borrow_mut() = Some(Box::new(move |link| start_writer(writer, link)));
}

/// Starts the writer task of `link`.
fn start_writer<W: AsyncWriteRent + 'static>(writer: W, link: Rc<Link>) {
    monoio::spawn(write_loop(writer, link));
}

/// Writes everything queued on `link` to `writer`, one write per batch (`send` for one
/// buffer, `writev` for several), until the link finishes; then shuts the write side
/// down. Parks (ends, keeping the write half in the link) when the idle sweep asks.
async fn write_loop<W: AsyncWriteRent + 'static>(mut writer: W, link: Rc<Link>) {
    let mut batch = WriteBatch::new();
    loop {
        let next = poll_fn(|cx| {
            if !link.out.borrow().is_empty() {
                return Poll::Ready(Next::Write);
            }
            if link.phase.get() == Phase::Finished {
                return Poll::Ready(Next::Finish);
            }
            if link.park_requested.replace(false) {
                return Poll::Ready(Next::Park);
            }
            link.writer.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        match next {
            Next::Write => hold(&link).await,
            Next::Finish => break,
            Next::Park => {
                link.out.borrow_mut().release();
                *link.parked.borrow_mut() = Some(Box::new(move |link| start_writer(writer, link)));
                return;
            }
        }
        link.take_batch(&mut batch);
        while !batch.is_empty() {
            batch.prepare();
            let (result, returned) = if batch.len() == 1 {
                writer.write(batch).await
            } else {
                writer.writev(batch).await
            };
            batch = returned;
            match result {
                Ok(0) | Err(_) => {
                    link.abort();
                    link.writer_done.fire();
                    return;
                }
                Ok(n) => batch.consume(n),
            }
        }
    }
    let _ = writer.shutdown().await;
    link.writer_done.fire();
}

/// Waits out the link's flush delay, letting frames gather; ends early once the queue
/// holds [`FLUSH_NOW_BYTES`] (or half its limit) or the link stops being open (a close
/// goes out at once).
async fn hold(link: &Link) {
    let delay = link.limits.flush_delay;
    if delay.is_zero() {
        return;
    }
    let flush_now = link.flush_now_bytes();
    let mut sleep = std::pin::pin!(monoio::time::sleep(delay));
    link.holding.set(true);
    poll_fn(|cx| {
        if link.phase.get() != Phase::Open
            || link.queued_bytes.get() >= flush_now
            || sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(());
        }
        // Woken by the timer, by a queue grown to `flush_now`, or by a control frame or
        // the end of the link (`push`, `finish`).
        link.writer.set(Some(cx.waker().clone()));
        Poll::Pending
    })
    .await;
    link.holding.set(false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outgoing::IntoFrame;

    #[test]
    fn messages_written_in_place_keep_their_order_among_separate_frames() {
        let link = Link::new(1, Wire::WsServer, crate::bench_api::bench_limits());
        let big = Bytes::from(vec![b'B'; 4096]);
        assert!(link.send_message("first"));
        assert!(link.send_message(big.clone()));
        assert!(link.send_message(&b"second"[..]));
        assert!(link.send("third".into_frame(Wire::WsServer)));
        let mut batch = WriteBatch::new();
        link.take_batch(&mut batch);
        batch.prepare();
        let mut expected = "first".into_frame(Wire::WsServer).to_vec();
        expected.extend_from_slice(&big.clone().into_frame(Wire::WsServer));
        expected.extend_from_slice(&b"second"[..].into_frame(Wire::WsServer));
        expected.extend_from_slice(&"third".into_frame(Wire::WsServer));
        assert_eq!(batch.iovec_bytes(), expected);
        assert_eq!(link.queued_bytes.get(), 0, "all of it was taken");
    }

    #[test]
    fn a_shared_small_frame_is_copied_and_a_large_one_shared() {
        let link = Link::new(1, Wire::WsServer, crate::bench_api::bench_limits());
        let small = Bytes::from(vec![b'B'; 64]);
        let large = Bytes::from(vec![b'L'; 2048]);
        assert!(link.send_shared(&small));
        assert!(
            small.is_unique(),
            "the small frame's reference count is untouched"
        );
        assert!(link.send_shared(&large));
        assert!(!large.is_unique(), "the large frame is queued by reference");
        let mut batch = WriteBatch::new();
        link.take_batch(&mut batch);
        batch.prepare();
        assert_eq!(batch.iovec_bytes(), [&small[..], &large[..]].concat());
    }

    /// A PackMe message that counts how often it is measured.
    struct Measured {
        body: Vec<u8>,
        measured: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl packme::Encode for Measured {
        fn encoded_len(&self) -> usize {
            self.measured.set(self.measured.get() + 1);
            self.body.len()
        }
        fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
            buf.put_slice(&self.body);
        }
    }

    impl packme::Decode for Measured {
        const MIN_LEN: usize = 0;
        fn decode(_: &mut packme::Reader<'_>) -> Result<Self, packme::DecodeError> {
            unreachable!("only sent")
        }
    }

    impl packme::Message for Measured {
        const ID: u32 = 7;
        const NAME: &'static str = "Measured";
    }

    #[test]
    fn a_packet_is_measured_once_whatever_its_size() {
        for size in [100, 4096] {
            let measured = std::rc::Rc::new(std::cell::Cell::new(0));
            let message = Measured {
                body: vec![b'm'; size],
                measured: measured.clone(),
            };
            let packet = packme::Packet::new(message, 9);
            let link = Link::new(1, Wire::WsServer, crate::bench_api::bench_limits());
            assert!(link.send_message(&packet));
            assert_eq!(measured.get(), 1, "{size}-byte packet measured once");
            let mut batch = WriteBatch::new();
            link.take_batch(&mut batch);
            batch.prepare();
            let mut expected = Wire::WsServer
                .header(crate::proto::Kind::Binary, size + 8)
                .to_vec();
            expected.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 9]);
            expected.extend_from_slice(&packet.message.body);
            assert_eq!(batch.iovec_bytes(), expected, "{size}-byte packet's frame");
        }
    }

    #[test]
    fn the_queue_limit_counts_frames_written_in_place() {
        let limits = LinkLimits {
            max_queued_bytes: 100,
            ..crate::bench_api::bench_limits()
        };
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let link = Link::new(1, Wire::WsServer, limits);
            assert!(link.send_message(&[0u8; 60][..]));
            assert_eq!(link.queued_bytes.get(), 62);
            assert!(!link.send_message(&[0u8; 60][..]), "over the limit");
            assert!(!link.is_open(), "a slow consumer is closed");
            assert_eq!(
                link.queued_bytes.get(),
                62,
                "the refused frame is not counted"
            );
        });
    }

    #[test]
    fn a_closed_link_refuses_messages() {
        let link = Link::new(1, Wire::Tcp, crate::bench_api::bench_limits());
        link.finish();
        assert!(!link.send_message("late"));
        assert!(link.out.borrow().is_empty());
    }
}

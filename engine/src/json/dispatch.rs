//! One connection's side of the JSON router: [`JsonDispatcher`] takes each inbound text
//! frame, answers a refused envelope at once, and runs the routed messages' pipelines on the
//! connection's shard.
//!
//! It fixes what websocket-core-features.md §8.1 and §18 B2, B6, D3, D4 list against the
//! reference, where every message ran concurrently, unbounded, without timeout, and
//! outlived its connection:
//!
//! - **In order** by default: message N+1's pipeline starts once N's has finished
//!   (`concurrency(n)` lets up to n run at once; replies still carry their `c`).
//! - **Bounded**: at most `max_queued` messages wait behind the running ones. One more is
//!   answered `sys.error` 1010 `rateLimitExceeded` (§16's "too many requests"), with its `c`
//!   and `details.reason = "too_many_pending"`, rather than closing: the client learns which
//!   request was refused and can retry it, the connection and its session stay, and the
//!   answer is written at once so it holds no memory here (outbound bytes are bounded by
//!   the server's slow-consumer policy).
//! - **Timed**: a pipeline running longer than `handler_timeout` (30 s) is dropped and
//!   answered 1500 "Handler timed out" with an error id (§16 has no timeout code; 1500 is
//!   what the client's `request()` already rejects on), and the next message starts.
//! - **Cancelled**: [`JsonDispatcher::close`] (or dropping it) drops every queued message
//!   and every running pipeline at its next wake-up; nothing is sent after it.
//! - **Contained**: a panic in a handler or middleware is caught and answered 1500 with an
//!   error id that is logged with the panic's text; the text never reaches the client.
//!
//! A pipeline that finishes without waiting runs inline in [`JsonDispatcher::received`]
//! and costs no task; one that waits is moved into a task (`crate::rt::spawn`), which then
//! also runs the messages queued behind it. The inline poll cannot use a no-op waker:
//! monoio's timers keep the first waker they are polled with, so a sleep started inline
//! would never wake the task. It uses the dispatcher's [`TaskWakers`] instead, which wakes
//! the connection's tasks (one by default).

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::codes::ErrorCode;
use super::context::{Conn, JsonContext, JsonPeer, Request};
use super::encode::{now_ms, Head, SysError, SYS_ERROR};
use super::envelope::{parse, Envelope};
use super::error::new_error_id;
use super::router::{JsonRouter, LocalBoxFuture, Next, Outcome, Target};
use crate::rt;

/// A connection's dispatch limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchConfig {
    max_queued: usize,
    handler_timeout: Option<Duration>,
    concurrency: usize,
}

impl Default for DispatchConfig {
    /// 64 queued, 30 s per message, one at a time.
    fn default() -> Self {
        DispatchConfig {
            max_queued: 64,
            handler_timeout: Some(Duration::from_secs(30)),
            concurrency: 1,
        }
    }
}

impl DispatchConfig {
    /// How many messages may wait behind the running ones (0: none wait).
    pub fn max_queued(mut self, max: usize) -> Self {
        self.max_queued = max;
        self
    }

    /// How long one message's middleware and handler may run; `None`: without limit.
    pub fn handler_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How many messages may run at once (at least 1, the default: in order).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
}

/// The dispatcher of one JSON connection. Not `Clone`: the connection owns it, and
/// dropping it cancels everything it runs.
pub(crate) struct JsonDispatcher {
    inner: Rc<Inner>,
}

struct Inner {
    conn: Rc<Conn>,
    config: DispatchConfig,
    state: RefCell<State>,
    wakers: Arc<TaskWakers>,
    /// A waker of `wakers`, for inline polls.
    inline_waker: Waker,
}

#[derive(Default)]
struct State {
    /// Routed messages waiting for a free run slot.
    queue: VecDeque<Job>,
    /// Pipelines running (inline or in a task).
    running: usize,
    /// Which of the [`TaskWakers`] slots a task holds.
    slots: Vec<bool>,
}

/// The wakers of a connection's running tasks, by slot. Waking it wakes them all: it is
/// what inline polls register with timers and I/O (see the module docs), and what `close`
/// uses to make the tasks drop their pipelines. With `concurrency(n)` a wake-up meant for
/// one task polls the others too, which is harmless.
#[derive(Default)]
struct TaskWakers {
    slots: Mutex<Vec<Option<Waker>>>,
}

impl TaskWakers {
    fn set(&self, slot: usize, waker: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
        }
        if !slots[slot].as_ref().is_some_and(|w| w.will_wake(waker)) {
            slots[slot] = Some(waker.clone());
        }
    }

    fn clear(&self, slot: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = slots.get_mut(slot) {
            *waker = None;
        }
    }
}

impl Wake for TaskWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // A task's waker only queues the task: nothing runs (or locks) here.
        for waker in slots.iter().flatten() {
            waker.wake_by_ref();
        }
    }
}

/// A routed message that has not started.
struct Job {
    request: Rc<Request>,
    target: Target,
}

impl fmt::Debug for JsonDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("JsonDispatcher")
            .field("connection", &self.inner.conn.peer.connection_id())
            .field("running", &state.running)
            .field("queued", &state.queue.len())
            .field("closed", &self.inner.conn.is_closed())
            .finish()
    }
}

impl JsonDispatcher {
    /// A dispatcher for the connection `peer`, routing with `router`.
    pub(crate) fn new(
        router: Arc<JsonRouter>,
        peer: Rc<dyn JsonPeer>,
        config: DispatchConfig,
    ) -> Self {
        let wakers = Arc::new(TaskWakers::default());
        JsonDispatcher {
            inner: Rc::new(Inner {
                conn: Rc::new(Conn::new(peer, router)),
                config,
                state: RefCell::default(),
                inline_waker: Waker::from(wakers.clone()),
                wakers,
            }),
        }
    }

    /// Handles one inbound text frame (already checked to be UTF-8). Every frame gets its
    /// answer: a refused envelope its 1001/1002 now, a routed message whatever its
    /// pipeline sends. Ignored after [`JsonDispatcher::close`].
    pub(crate) fn received(&self, text: &str) {
        let inner = &self.inner;
        let conn = &inner.conn;
        if conn.is_closed() {
            return;
        }
        let router = &*conn.router;
        let envelope = match parse(text, router.config()) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::debug!(
                    connection = conn.peer.connection_id(),
                    reason = error.kind().reason(),
                    "JSON envelope refused"
                );
                let mut out = Vec::with_capacity(160);
                error.encode_answer(router.config(), None, now_ms(), &mut out);
                let answer = Bytes::from(out);
                let sent_as_control = error
                    .system_event()
                    .is_some_and(|event| conn.peer.refused_system_event(event, &answer));
                if !sent_as_control {
                    let _ = conn.send_bytes(answer);
                }
                return;
            }
        };
        if envelope.event().starts_with("sys.") && conn.peer.system_event(&envelope) {
            return;
        }
        let request = Rc::new(Request::new(&envelope));
        let mut state = inner.state.borrow_mut();
        if state.running >= inner.config.concurrency {
            if state.queue.len() >= inner.config.max_queued {
                drop(state);
                inner.refuse(&request);
            } else {
                let target = router.prepare(&envelope);
                state.queue.push_back(Job { request, target });
            }
            return;
        }
        state.running += 1;
        drop(state);
        let running = if router.has_middleware() {
            let target = router.prepare(&envelope);
            Running::start(conn, Job { request, target })
        } else {
            Running::direct(conn, request, &envelope)
        };
        Inner::run(inner, running);
    }

    /// Answers a frame the server refused before routing it (over the message rate, or a
    /// binary frame) with `error`, carrying the frame's `c` and `v` when they can be read.
    pub(crate) fn refuse_frame(&self, text: Option<&str>, error: &SysError<'_>) {
        let conn = &self.inner.conn;
        let config = conn.router.config();
        let envelope = text.and_then(|text| parse(text, config).ok());
        let version = envelope.as_ref().map_or(config.current(), |e| e.version());
        let head = Head::new(SYS_ERROR, version, now_ms())
            .correlation(envelope.as_ref().and_then(|e| e.correlation()));
        let mut out = Vec::with_capacity(160);
        error.encode(head, &mut out);
        let _ = conn.send_frame(out);
    }

    /// Cancels everything: queued messages are dropped, running pipelines are dropped at
    /// their next wake-up without sending, and later frames are ignored. Called by `Drop`.
    pub(crate) fn close(&self) {
        let inner = &self.inner;
        if inner.conn.is_closed() {
            return;
        }
        inner.conn.set_closed();
        let queue = std::mem::take(&mut inner.state.borrow_mut().queue);
        // Dropped outside the borrow: payloads run the application's `Drop`s.
        drop(queue);
        inner.wakers.wake_by_ref();
    }

    /// Messages running and waiting.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        let state = self.inner.state.borrow();
        state.running + state.queue.len()
    }
}

impl Drop for JsonDispatcher {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// Runs a started pipeline (whose run slot is counted), inline while pipelines finish
    /// without waiting, then in a task; either way on to the queued messages.
    fn run(inner: &Rc<Inner>, mut running: Running) {
        loop {
            let mut cx = Context::from_waker(&inner.inline_waker);
            match running.poll(&mut cx) {
                Poll::Ready(outcome) => running.finish(Ended::Done(outcome)),
                Poll::Pending if inner.conn.is_closed() => {}
                Poll::Pending => {
                    Inner::spawn(inner, running);
                    return;
                }
            }
            match inner.next_job() {
                Some(job) => running = Running::start(&inner.conn, job),
                None => return,
            }
        }
    }

    /// Moves a waiting pipeline into a task, which goes on with the queue after it.
    fn spawn(inner: &Rc<Inner>, running: Running) {
        let slot = inner.take_slot();
        let task_inner = inner.clone();
        drop(rt::spawn(async move {
            let inner = task_inner;
            let closed = poll_fn(|cx| inner.poll_closed(slot, cx));
            if let rt::First::A(()) = rt::first(closed, inner.clone().work(running)).await {
                // Cancelled: the pipeline is dropped with `work`.
                inner.state.borrow_mut().running -= 1;
            }
            inner.free_slot(slot);
        }));
    }

    /// The task's loop: the running pipeline under the timeout, then each queued one.
    async fn work(self: Rc<Inner>, mut running: Running) {
        loop {
            let ended = match self.config.handler_timeout {
                Some(limit) => rt::timeout(limit, poll_fn(|cx| running.poll(cx)))
                    .await
                    .map_or(Ended::TimedOut, Ended::Done),
                None => Ended::Done(poll_fn(|cx| running.poll(cx)).await),
            };
            running.finish(ended);
            match self.next_job() {
                Some(job) => running = Running::start(&self.conn, job),
                None => return,
            }
        }
    }

    /// The next queued message, or `None` (and one run slot fewer).
    fn next_job(&self) -> Option<Job> {
        let mut state = self.state.borrow_mut();
        let job = if self.conn.is_closed() {
            None
        } else {
            state.queue.pop_front()
        };
        if job.is_none() {
            state.running -= 1;
        }
        job
    }

    /// Answers a message the queue has no room for (see the module docs for why 1010).
    fn refuse(&self, request: &Request) {
        tracing::debug!(
            connection = self.conn.peer.connection_id(),
            event = request.event(),
            limit = self.config.max_queued,
            "JSON message refused: too many pending"
        );
        let details = format!(
            "{{\"reason\":\"too_many_pending\",\"limit\":{}}}",
            self.config.max_queued
        );
        let error = SysError::new(ErrorCode::RateLimitExceeded)
            .message("Too many pending messages")
            .details_raw(details);
        self.conn.send_sys_error(request, &error);
    }

    fn take_slot(&self) -> usize {
        let mut state = self.state.borrow_mut();
        let free = state.slots.iter().position(|taken| !taken);
        let index = free.unwrap_or_else(|| {
            state.slots.push(false);
            state.slots.len() - 1
        });
        state.slots[index] = true;
        index
    }

    fn free_slot(&self, index: usize) {
        self.wakers.clear(index);
        if let Some(taken) = self.state.borrow_mut().slots.get_mut(index) {
            *taken = false;
        }
    }

    /// Ready once the dispatcher is closed; until then keeps the task's waker in its slot
    /// (polled before the pipeline, so it is there before anything can wake it).
    fn poll_closed(&self, index: usize, cx: &mut Context<'_>) -> Poll<()> {
        if self.conn.is_closed() {
            return Poll::Ready(());
        }
        self.wakers.set(index, cx.waker());
        Poll::Pending
    }
}

/// How a pipeline ended.
enum Ended {
    /// It returned (`Ok(outcome)`) or panicked (`Err(panic)`).
    Done(Result<Outcome, Box<dyn Any + Send>>),
    /// It ran past the handler timeout.
    TimedOut,
}

/// A started pipeline with what is needed to answer for it.
struct Running {
    ctx: JsonContext,
    /// `None` once it panicked (it is never polled again).
    pipeline: Option<LocalBoxFuture<Outcome>>,
    /// A panic while the pipeline was being built (a handler's synchronous part).
    panic: Option<Box<dyn Any + Send>>,
}

impl Running {
    /// A queued message's pipeline, or one with middleware.
    fn start(conn: &Rc<Conn>, job: Job) -> Self {
        let next = Next::start(job.target);
        Running::build(conn, job.request, move |ctx| next.run(ctx))
    }

    /// The pipeline of a message that runs at once without middleware, decoded from the
    /// frame straight into the handler's type ([`JsonRouter::start_direct`]).
    fn direct(conn: &Rc<Conn>, request: Rc<Request>, envelope: &Envelope<'_>) -> Self {
        let router = &*conn.router;
        Running::build(conn, request, |ctx| router.start_direct(ctx, envelope))
    }

    /// Builds the pipeline with `pipeline`, a panic in its synchronous part (a decode, a
    /// handler's code before its first await) caught as the pipeline's end.
    fn build(
        conn: &Rc<Conn>,
        request: Rc<Request>,
        pipeline: impl FnOnce(JsonContext) -> LocalBoxFuture<Outcome>,
    ) -> Self {
        let ctx = JsonContext::new(conn.clone(), request);
        let handler_ctx = ctx.clone();
        match catch_unwind(AssertUnwindSafe(move || pipeline(handler_ctx))) {
            Ok(pipeline) => Running {
                ctx,
                pipeline: Some(pipeline),
                panic: None,
            },
            Err(panic) => Running {
                ctx,
                pipeline: None,
                panic: Some(panic),
            },
        }
    }

    /// Polls the pipeline, a panic caught as its end.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Outcome, Box<dyn Any + Send>>> {
        if let Some(panic) = self.panic.take() {
            return Poll::Ready(Err(panic));
        }
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Poll::Ready(Ok(Ok(())));
        };
        match catch_unwind(AssertUnwindSafe(|| pipeline.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(outcome)) => Poll::Ready(Ok(outcome)),
            Err(panic) => {
                self.pipeline = None;
                Poll::Ready(Err(panic))
            }
        }
    }

    /// Answers for the pipeline's end: its error as `sys.error`, a panic or a timeout as
    /// 1500 with a logged id.
    fn finish(self, ended: Ended) {
        let Running { ctx, pipeline, .. } = self;
        // The timed-out pipeline goes first: nothing it holds outlives its answer.
        drop(pipeline);
        let conn = ctx.conn();
        let request = ctx.request();
        match ended {
            Ended::Done(Ok(Ok(()))) => {}
            Ended::Done(Ok(Err(error))) => error.answer(conn, request),
            Ended::Done(Err(panic)) => {
                let id = new_error_id();
                let text = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a non-string panic payload");
                tracing::error!(
                    error_id = %format_args!("{id:016x}"),
                    connection = conn.peer.connection_id(),
                    event = request.event(),
                    panic = text,
                    "JSON handler panicked",
                );
                conn.send_sys_error(request, &SysError::internal(id));
            }
            Ended::TimedOut => {
                let id = new_error_id();
                tracing::warn!(
                    error_id = %format_args!("{id:016x}"),
                    connection = conn.peer.connection_id(),
                    event = request.event(),
                    "JSON handler timed out",
                );
                let error = SysError::new(ErrorCode::InternalError)
                    .message("Handler timed out")
                    .details_raw(format!(
                        "{{\"errorId\":\"{id:016x}\",\"reason\":\"timeout\"}}"
                    ));
                conn.send_sys_error(request, &error);
            }
        }
    }
}

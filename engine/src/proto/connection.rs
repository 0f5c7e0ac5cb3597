//! One connection's rules as a state machine without I/O, in the style of quinn-proto's
//! `Connection`: the driver hands it the bytes that arrived and the current time; it hands
//! back received messages, the bytes to send, and the next moment it needs to be woken.
//!
//! Everything a connection decides lives here, so it can be tested with two endpoints wired
//! in memory under simulated time (see the tests at the end of this file): message
//! assembly and UTF-8, the close handshake and its timeout, pings and pongs, every limit and
//! the close code it gives, query answers and deadlines, keepalive and the idle timeout, the
//! body timeout (a frame or message that stalls mid-way) and the write timeout (a peer that
//! stops reading). The driver only moves bytes and calls back at [`Connection::poll_timeout`].
//!
//! Nothing a peer sends can make it hold more than it received: at most
//! [`MAX_PENDING_PONGS`] pongs wait (past that the oldest unanswered ping goes unanswered,
//! as RFC 6455 section 5.5.3 allows: a peer flooding pings gets pongs for its latest),
//! data is bounded by the queue limit, and a connection that can no longer make progress
//! ends within its timeouts.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use packme::{BytesAtFront, FrameHeader, TextAtFront};

use super::batch::WriteBatch;
use super::frame::close_payload;
use super::moment::Moment;
use super::outbox::Outbox;
use super::outgoing::{FrameParts, Framing, IntoFrame};
use super::queries::{PendingQueries, QueryError, Reply};
use super::received::Received;
use super::tcp::TcpDeframer;
use super::{close_code, Decoder, Incoming, Limits, MessageReader, Next, OpCode, ProtocolError};
use super::{Kind, Role, Wire};

/// Most separate buffers handed to one write (Linux's IOV_MAX is 1024).
const MAX_BATCH: usize = 256;

/// Pongs that may wait to be written. A handful of pings arriving together are each
/// answered (the Autobahn TestSuite expects it, cases 2.10 and 2.11); a flood is answered
/// for its latest pings only, so it cannot grow the connection's memory.
pub const MAX_PENDING_PONGS: usize = 16;

/// WebSocket keepalive: a ping after `interval` without anything from the peer, and the
/// connection closed after `timeout` without anything (a peer that vanished without a FIN,
/// or stopped answering). ConnectMe TCP has no ping; there the driver relies on TCP
/// keepalive for a vanished peer and the write timeout for one that stops reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence after which a ping is sent.
    pub interval: Duration,
    /// Silence after which the connection is closed (1001).
    pub timeout: Duration,
}

impl Default for Keepalive {
    /// A ping after 15 s of silence, closed after 45 s: a vanished peer is gone within a
    /// minute (the issue every game server hits with mobile clients), while a live one
    /// answers the ping long before; browsers and every WebSocket library answer pings by
    /// themselves.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(45),
        }
    }
}

/// How long a connection may take for the things a peer could otherwise stall forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// After our close frame, how long the peer has to answer with its own.
    pub close: Duration,
    /// How long a query waits for its response.
    pub query: Duration,
    /// How long a frame or fragmented message may take from its first byte to its last
    /// (`None`: unbounded). Bounds how long a stalled upload holds its memory.
    pub body: Option<Duration>,
    /// How long queued output may wait without the peer reading any of it (`None`:
    /// unbounded). After it the connection is dropped: a peer that never reads cannot hold
    /// its socket and queue.
    pub write: Option<Duration>,
    /// Pings and the idle timeout (WebSocket only; `None`: off).
    pub keepalive: Option<Keepalive>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            close: Duration::from_secs(5),
            query: Duration::from_secs(30),
            body: Some(Duration::from_secs(30)),
            write: Some(Duration::from_secs(30)),
            keepalive: Some(Keepalive::default()),
        }
    }
}

/// What a connection is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How frames are cut and built (and which end of a WebSocket this is).
    pub wire: Wire,
    /// Largest incoming frame and message.
    pub limits: Limits,
    /// Outgoing bytes queued before the peer is closed as a slow consumer (1008).
    pub max_queued_bytes: usize,
    /// Queries that may wait for their response at once.
    pub max_pending_queries: usize,
    /// The timeouts.
    pub timeouts: Timeouts,
}

/// Why a connection ended (the first reason wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The peer sent a close frame, with its code if it gave one.
    PeerClosed(Option<u16>),
    /// The peer closed the socket without a close frame.
    Eof,
    /// The socket failed.
    Io(String),
    /// The peer broke the protocol; a close with the matching code was sent.
    Protocol(ProtocolError),
    /// This side closed it (a close call, shutdown).
    Closed(u16),
    /// The peer did not answer our close frame in time.
    CloseTimeout,
    /// The peer read none of our output for the write timeout.
    WriteTimeout,
    /// Nothing arrived for the keepalive timeout.
    IdleTimeout,
    /// A frame or message was not completed within the body timeout.
    BodyTimeout,
    /// More output was queued than the queue limit allows.
    SlowConsumer,
    /// The socket went on as another connection: the session it asked to resume (in
    /// band, the JSON protocol's `sys.reconnect.request`) took it over.
    Moved,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed(Some(code)) => write!(f, "peer closed with {code}"),
            Self::PeerClosed(None) => f.write_str("peer closed without a code"),
            Self::Eof => f.write_str("peer closed the socket"),
            Self::Io(error) => write!(f, "socket error: {error}"),
            Self::Protocol(error) => write!(f, "protocol error: {error}"),
            Self::Closed(code) => write!(f, "closed by this side with {code}"),
            Self::CloseTimeout => f.write_str("peer did not answer the close in time"),
            Self::WriteTimeout => f.write_str("peer stopped reading (write timeout)"),
            Self::IdleTimeout => f.write_str("nothing received for the idle timeout"),
            Self::BodyTimeout => f.write_str("message not completed within the body timeout"),
            Self::SlowConsumer => f.write_str("send queue limit exceeded"),
            Self::Moved => f.write_str("the socket moved to the session it resumed"),
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending and receiving.
    Open,
    /// Our close frame is queued; the peer's is awaited until [`Work::close_deadline`].
    Closing,
    /// Nothing more is read or queued: what is queued is written, then the write side
    /// shuts down.
    Flushing,
    /// Nothing more is written: the socket is to be dropped at once.
    Aborted,
}

/// One connection's state: see the module docs.
///
/// What only a connection in use needs (the decoder, the send queue, the deadlines of
/// what is in flight) is boxed apart in `Work`, created on first use and given up by
/// [`Connection::rest`] when the connection is parked: an idle connection keeps only
/// what it must remember.
pub struct Connection {
    /// Shared by the connections of an endpoint.
    config: Arc<Config>,
    /// The working state, `None` while the connection is at rest.
    work: Option<Box<Work>>,
    /// When the peer was last heard (any byte).
    last_received: Moment,
    /// Data messages received (query answers included; session frames not), wrapping:
    /// the session layer numbers a peer's messages by it.
    data_received: u32,
    phase: Phase,
    /// A keepalive ping waits to be written.
    ping_due: bool,
    /// A keepalive ping went out since the peer was last heard.
    ping_sent: bool,
    /// Session control frames are accepted (kept here for a decoder created again after
    /// a rest).
    session_frames: bool,
}

/// What a connection needs only while it is in use: 224 bytes that a parked connection
/// does not hold. What waits to be written (queued frames, pongs) and queries awaiting
/// their answer are in flight, and keep it.
///
/// Its size class is chosen, not incidental: every connection in use allocates it, and
/// gives it up when parked, so a class it shared with what an idle connection keeps (the
/// link, 160; the peer and the headers, 128) would leave that class's pages half empty:
/// at 192 B, the peer's class then, it cost ~100 B of RSS per idle connection. The end,
/// inline, takes it to 224 (perf/README.md, session 16).
struct Work {
    decoder: Decoder,
    out: Outbox,
    /// Data bytes queued and not yet handed to a write (control frames not counted).
    queued_bytes: usize,
    /// The payloads of the pings not answered yet, oldest first.
    pongs: VecDeque<Bytes>,
    /// Created by the first query: most connections never send one.
    queries: Option<Box<PendingQueries>>,
    /// Why the connection ended, once it has: kept here rather than in the connection, as
    /// a connection ends in use (a parked one is resumed to end), and never rests after.
    end: Option<End>,
    /// Since when an incomplete frame or message is held.
    partial_since: Option<Instant>,
    /// Since when output handed to the writer waits for the peer to read it.
    write_since: Option<Instant>,
    /// While closing (and only then: leaving `Phase::Closing` clears it), when the
    /// peer's close frame is due.
    close_deadline: Option<Instant>,
}

impl Work {
    /// A connection's working state, fresh: nothing received or queued.
    #[cold]
    #[inline(never)]
    fn new(config: &Config, session_frames: bool) -> Box<Self> {
        let mut decoder = match config.wire {
            Wire::WsServer => Decoder::Ws(MessageReader::new(Role::Server, config.limits)),
            Wire::WsClient => Decoder::Ws(MessageReader::new(Role::Client, config.limits)),
            Wire::Tcp => Decoder::Tcp(TcpDeframer::new(config.limits.max_message)),
        };
        if session_frames {
            decoder.accept_session_frames();
        }
        Box::new(Self {
            decoder,
            out: Outbox::default(),
            queued_bytes: 0,
            pongs: VecDeque::new(),
            queries: None,
            end: None,
            partial_since: None,
            write_since: None,
            close_deadline: None,
        })
    }

    /// Whether nothing is in flight: a fresh one would do the same.
    fn is_at_rest(&self) -> bool {
        !self.decoder.in_message()
            && self.out.is_empty()
            && self.pongs.is_empty()
            && self
                .queries
                .as_ref()
                .is_none_or(|queries| queries.is_empty())
            && self.end.is_none()
            && self.partial_since.is_none()
            && self.write_since.is_none()
            && self.close_deadline.is_none()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("wire", &self.config.wire)
            .field("phase", &self.phase)
            .field("end", &self.end())
            .field("queued_bytes", &self.queued_bytes())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection that opened at `now` (after the handshake, if any). An endpoint shares
    /// one `Arc<Config>` among its connections.
    pub fn new(config: impl Into<Arc<Config>>, now: Instant) -> Self {
        let config = config.into();
        let work = Some(Work::new(&config, false));
        Self {
            config,
            work,
            last_received: now.into(),
            data_received: 0,
            phase: Phase::Open,
            ping_due: false,
            ping_sent: false,
            session_frames: false,
        }
    }

    /// The working state, created again if the connection was at rest.
    #[inline]
    fn work(&mut self) -> &mut Work {
        let Self {
            work,
            config,
            session_frames,
            ..
        } = self;
        work.get_or_insert_with(|| Work::new(config, *session_frames))
    }

    /// The connection is parked: gives its working state up if nothing is in flight (a
    /// fragmented message, output or a pong not written, a query not answered, a
    /// deadline keep it). It is created again on next use.
    pub fn rest(&mut self) {
        if self.work.as_ref().is_some_and(|work| work.is_at_rest()) {
            self.work = None;
        }
    }

    /// Whether the connection holds its working state (not at rest).
    pub fn is_working(&self) -> bool {
        self.work.is_some()
    }

    /// Accepts session control frames from now on: the session extension is in use on
    /// this connection (see `crate::session`).
    pub fn accept_session_frames(&mut self) {
        self.session_frames = true;
        if let Some(work) = &mut self.work {
            work.decoder.accept_session_frames();
        }
    }

    /// When bytes last arrived from the peer (its last sign of life).
    pub fn last_received(&self) -> Instant {
        self.last_received.into()
    }

    /// Data messages received so far (query answers included), wrapping at 2^32: the
    /// difference between two readings is how many arrived in between.
    pub fn data_received(&self) -> u32 {
        self.data_received
    }

    /// How this connection frames its messages.
    pub fn wire(&self) -> Wire {
        self.config.wire
    }

    /// Whether data may still be sent.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the driver should go on reading.
    pub fn is_receiving(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing)
    }

    /// Whether the socket must be dropped now, without writing anything more.
    pub fn is_aborted(&self) -> bool {
        self.phase == Phase::Aborted
    }

    /// Why the connection ended, once it has.
    pub fn end(&self) -> Option<&End> {
        self.work.as_ref()?.end.as_ref()
    }

    fn ended(&mut self, end: End) {
        self.work().end.get_or_insert(end);
    }

    // ---- receiving ----

    /// Bytes the receive buffer must hold before [`Connection::poll_received`] can make
    /// progress (the whole frame at its front, as far as its header tells).
    pub fn wanted(&self) -> usize {
        self.work.as_ref().map_or(0, |work| work.decoder.wanted())
    }

    /// Bytes arrived at `now` (appended to the receive buffer): the peer is alive.
    pub fn received(&mut self, now: Instant) {
        self.last_received = now.into();
        self.ping_sent = false;
    }

    /// The peer closed its side of the socket.
    pub fn eof(&mut self) {
        self.ended(End::Eof);
        self.finish();
    }

    /// The socket failed: nothing more can be written.
    pub fn io_error(&mut self, error: &std::io::Error) {
        self.abort(End::Io(error.to_string()));
    }

    /// The next data message in `buf`, or `None` when `buf` holds no whole one or the
    /// connection stopped receiving. Pings, pongs, close frames and query answers are
    /// handled here and never returned.
    #[inline]
    pub fn poll_received<'b>(
        &mut self,
        now: Instant,
        buf: &'b mut BytesMut,
    ) -> Option<Received<'b>> {
        while self.is_receiving() {
            let work = self.work();
            let next = match work.decoder.next(buf) {
                Ok(Some(next)) => next,
                Ok(None) => {
                    work.partial_since = match work.partial_since {
                        _ if buf.is_empty() && !work.decoder.in_message() => None,
                        Some(since) => Some(since),
                        None => Some(now),
                    };
                    return None;
                }
                Err(error) => {
                    self.protocol_error(error);
                    return None;
                }
            };
            if !work.decoder.in_message() {
                work.partial_since = None;
            }
            if !matches!(next, Next::Taken(ref incoming) if incoming.is_control()) {
                self.data_received = self.data_received.wrapping_add(1);
            }
            match next {
                Next::Binary(len) => {
                    if self.answers_query(&buf[..len]) {
                        self.complete_query(buf.split_to(len).freeze());
                        continue;
                    }
                    return Some(Received::InPlace(BytesAtFront::new(buf, len)));
                }
                Next::Text(len) => {
                    return match TextAtFront::new(buf, len) {
                        Ok(text) => Some(Received::TextInPlace(text)),
                        Err(_) => {
                            self.protocol_error(ProtocolError::InvalidUtf8);
                            None
                        }
                    }
                }
                Next::Taken(Incoming::Text(text)) => return Some(Received::Text(text)),
                Next::Taken(Incoming::Binary(data)) => {
                    if self.answers_query(&data) {
                        self.complete_query(data);
                        continue;
                    }
                    return Some(Received::Binary(data));
                }
                Next::Taken(Incoming::Ping(payload)) => {
                    if self.phase == Phase::Open {
                        let pongs = &mut self.work().pongs;
                        if pongs.len() == MAX_PENDING_PONGS {
                            pongs.pop_front();
                        }
                        pongs.push_back(payload);
                    }
                }
                Next::Taken(Incoming::Pong(_)) => {}
                Next::Taken(Incoming::Session(payload)) => return Some(Received::Session(payload)),
                Next::Taken(Incoming::Close(close)) => {
                    self.peer_closed(close.map(|(code, _)| code));
                    return None;
                }
            }
        }
        None
    }

    fn protocol_error(&mut self, error: ProtocolError) {
        tracing::debug!(%error, "peer broke the protocol");
        self.fail(error.close_code(), &error.to_string());
        self.ended(End::Protocol(error));
    }

    /// The peer's close frame: echo its code if we have not sent ours, then finish.
    fn peer_closed(&mut self, code: Option<u16>) {
        if self.phase == Phase::Open {
            let payload = code.map(u16::to_be_bytes).unwrap_or_default();
            let payload = if code.is_some() { &payload[..] } else { &[] };
            self.push_control(OpCode::Close, payload);
        }
        self.ended(End::PeerClosed(code));
        self.finish();
    }

    // ---- sending ----

    /// Data bytes queued and not yet handed to a write.
    pub fn queued_bytes(&self) -> usize {
        self.work.as_ref().map_or(0, |work| work.queued_bytes)
    }

    /// Largest queue the connection accepts.
    pub fn max_queued_bytes(&self) -> usize {
        self.config.max_queued_bytes
    }

    /// Queues `message`: a small frame of known size is encoded straight into the queue's
    /// contiguous buffer, anything else is built by [`IntoFrame::into_parts`]. `false` if
    /// the connection no longer sends or the queue limit was exceeded (the connection is
    /// then closed with 1008).
    #[inline]
    pub fn send_message<F: IntoFrame>(&mut self, message: F) -> bool {
        let wire = self.config.wire;
        let (message, len, frame_len) = match Framing::of(message, wire) {
            Framing::InPlace {
                message,
                len,
                frame_len,
            } => (message, len, frame_len),
            Framing::Parts(parts) => return self.send_parts(parts),
        };
        self.queue_small(frame_len, |out| message.write_frame(wire, len, out))
    }

    /// Queues a small frame already encoded elsewhere (a session's replay buffer keeps
    /// it), copied into the queue.
    pub(crate) fn send_copied(&mut self, frame: &[u8]) -> bool {
        self.queue_small(frame.len(), |out| out.extend_from_slice(frame))
    }

    /// Queues a small frame of `frame_len` bytes, written by `write` into the contiguous
    /// part of the queue, if [`Connection::admit`] takes it.
    #[inline]
    fn queue_small(&mut self, frame_len: usize, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if !self.admit(frame_len) {
            return false;
        }
        let work = self.work();
        work.out.append(write);
        work.queued_bytes += frame_len;
        true
    }

    /// Queues a frame given as a header and a body.
    pub fn send_parts(&mut self, frame: FrameParts) -> bool {
        let len = frame.len();
        if !self.admit(len) {
            return false;
        }
        let work = self.work();
        match frame.body {
            Some(body) => {
                work.out.push_separate(frame.head);
                work.out.push(body);
            }
            None => work.out.push(frame.head),
        }
        work.queued_bytes += len;
        true
    }

    /// Queues a frame other connections share (a broadcast), without touching its
    /// reference count unless it is large.
    #[inline]
    pub fn send_shared(&mut self, frame: &Bytes) -> bool {
        if !self.admit(frame.len()) {
            return false;
        }
        let work = self.work();
        work.out.push_shared(frame);
        work.queued_bytes += frame.len();
        true
    }

    /// Queues a session control message (the session extension's own frames, in order
    /// with the data frames), counted against the queue limit like data.
    pub fn send_session(&mut self, payload: &[u8]) -> bool {
        let wire = self.config.wire;
        self.queue_small(wire.frame_len(payload.len()), |out| {
            wire.write_frame(out, Kind::Session, payload.len(), |b| {
                b.extend_from_slice(payload)
            })
        })
    }

    /// Whether a data frame of `len` bytes may be queued. Over the limit the peer is a slow
    /// consumer: what it has not been handed yet is dropped (writing megabytes to a peer
    /// that does not read only delays the end) and it is closed with 1008.
    fn admit(&mut self, len: usize) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        // One frame is always accepted into an empty queue, so a single message may be as
        // large as the message limit allows.
        let queued_before = self.queued_bytes();
        let queued = queued_before + len;
        if queued_before > 0 && queued > self.config.max_queued_bytes {
            tracing::warn!(queued, "send queue limit exceeded, closing slow consumer");
            self.drop_queue();
            self.fail(close_code::POLICY, "send queue limit exceeded");
            self.ended(End::SlowConsumer);
            return false;
        }
        true
    }

    /// Queues a control frame (not counted against the queue limit).
    fn push_control(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        match self.config.wire.control(opcode, payload) {
            Some(frame) => {
                self.work().out.push(frame);
                true
            }
            None => false,
        }
    }

    /// Starts the closing handshake at `now`: our close frame goes out and the peer has the
    /// close timeout to answer. On TCP, which has no close frame, what is queued is written
    /// and the write side shut down.
    pub fn close(&mut self, now: Instant, code: u16, reason: &str) {
        if self.phase != Phase::Open {
            return;
        }
        self.ended(End::Closed(code));
        if self.push_control(OpCode::Close, &close_payload(code, reason)) {
            self.phase = Phase::Closing;
            self.work().close_deadline = Some(now + self.config.timeouts.close);
        } else {
            self.finish();
        }
    }

    /// Sends a close and finishes without waiting for the peer's (a protocol error, a
    /// timeout).
    fn fail(&mut self, code: u16, reason: &str) {
        if self.phase == Phase::Open {
            self.push_control(OpCode::Close, &close_payload(code, reason));
        }
        self.finish();
    }

    /// No more frames: what is queued is written, then the write side shuts down.
    pub fn finish(&mut self) {
        if self.phase != Phase::Aborted {
            self.phase = Phase::Flushing;
        }
        self.stop_awaiting_close();
    }

    /// The close handshake is no longer awaited (the connection flushes or stopped).
    fn stop_awaiting_close(&mut self) {
        if let Some(work) = &mut self.work {
            work.close_deadline = None;
        }
    }

    /// Stops at once: nothing more is read or written.
    pub fn abort(&mut self, end: End) {
        self.ended(end);
        self.phase = Phase::Aborted;
        self.stop_awaiting_close();
        self.drop_queue();
        if let Some(work) = &mut self.work {
            work.pongs = VecDeque::new();
        }
        self.ping_due = false;
    }

    /// Drops everything queued and not yet handed to a write.
    fn drop_queue(&mut self) {
        if let Some(work) = &mut self.work {
            work.out = Outbox::default();
            work.queued_bytes = 0;
        }
    }

    // ---- transmitting ----

    /// Whether anything waits to be written.
    pub fn has_transmit(&self) -> bool {
        self.phase != Phase::Aborted
            && (self
                .work
                .as_ref()
                .is_some_and(|work| !work.out.is_empty() || !work.pongs.is_empty())
                || self.ping_due)
    }

    /// Moves what waits to be written into the empty `batch`: a pending pong or keepalive
    /// ping first (a control frame may go between whole data frames), then the oldest
    /// queued frames, at most one write's worth. Returns the data bytes moved.
    pub fn poll_transmit(&mut self, now: Instant, batch: &mut WriteBatch) -> usize {
        if self.phase == Phase::Aborted {
            return 0;
        }
        let wire = self.config.wire;
        if let Some(work) = self.work.as_mut().filter(|work| !work.pongs.is_empty()) {
            for payload in work.pongs.drain(..) {
                if let Some(frame) = wire.control(OpCode::Pong, &payload) {
                    batch.push(frame);
                }
            }
        }
        if std::mem::take(&mut self.ping_due) {
            if let Some(frame) = self.config.wire.control(OpCode::Ping, b"") {
                batch.push(frame);
            }
        }
        if self.work.is_none() && batch.is_empty() {
            return 0;
        }
        let work = self.work();
        let taken = work.out.take_into(batch, MAX_BATCH);
        if !batch.is_empty() && work.write_since.is_none() {
            work.write_since = Some(now);
        }
        work.queued_bytes = work.queued_bytes.saturating_sub(taken);
        taken
    }

    /// A write completed at `now`; `drained` if the batch it came from is fully written.
    /// A partial write is progress: the write timeout counts again from `now`. A drained
    /// batch stops it (`now` is not read then): it starts again when the next batch is
    /// handed out.
    pub fn transmitted(&mut self, now: Instant, drained: bool) {
        if drained {
            if let Some(work) = &mut self.work {
                work.write_since = None;
            }
        } else {
            self.work().write_since = Some(now);
        }
    }

    /// The queue went idle: give its buffers back.
    pub fn release(&mut self) {
        if let Some(work) = &mut self.work {
            work.out.release();
        }
    }

    // ---- queries ----

    /// Registers a query at `now` (its frame must be sent right after); on failure the
    /// reply has already been failed.
    pub fn register_query(
        &mut self,
        now: Instant,
        tid: u32,
        expected_id: u32,
        reply: Reply,
    ) -> bool {
        if self.phase != Phase::Open {
            let _ = reply.send(Err(QueryError::NotConnected));
            return false;
        }
        let deadline = now + self.config.timeouts.query;
        let max = self.config.max_pending_queries;
        self.work()
            .queries
            .get_or_insert_with(|| Box::new(PendingQueries::new(max)))
            .insert(tid, expected_id, reply, deadline)
    }

    /// Fails every pending query (the connection ended).
    pub fn fail_queries(&mut self) {
        if let Some(queries) = self.queries_mut() {
            queries.fail_all(QueryError::Disconnected);
        }
    }

    fn queries(&self) -> Option<&PendingQueries> {
        self.work.as_ref()?.queries.as_deref()
    }

    fn queries_mut(&mut self) -> Option<&mut PendingQueries> {
        self.work.as_mut()?.queries.as_deref_mut()
    }

    fn answers_query(&self, frame: &[u8]) -> bool {
        self.queries().is_some_and(|queries| {
            !queries.is_empty()
                && FrameHeader::parse(frame)
                    .is_some_and(|h| queries.expects(h.transaction_id, h.message_id))
        })
    }

    fn complete_query(&mut self, frame: Bytes) {
        if let (Some(h), Some(queries)) = (FrameHeader::parse(&frame), self.queries_mut()) {
            queries.complete(h.transaction_id, h.message_id, &frame);
        }
    }

    // ---- time ----

    /// The next moment [`Connection::handle_timeout`] has something to do, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeouts = &self.config.timeouts;
        let mut next = self.queries().and_then(|q| q.next_deadline());
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        if self.phase == Phase::Aborted {
            return None;
        }
        let work = self.work.as_deref();
        consider(work.and_then(|w| w.close_deadline));
        consider(
            work.and_then(|w| w.write_since)
                .zip(timeouts.write)
                .map(|(s, t)| s + t),
        );
        if self.is_receiving() {
            let partial_since = work.and_then(|w| w.partial_since);
            consider(partial_since.zip(timeouts.body).map(|(s, t)| s + t));
            if let Some(keepalive) = self.keepalive() {
                let last_received = self.last_received();
                consider(Some(last_received + keepalive.timeout));
                if !self.ping_sent {
                    consider(Some(last_received + keepalive.interval));
                }
            }
        }
        next
    }

    /// Keepalive, where the wire has pings.
    fn keepalive(&self) -> Option<Keepalive> {
        self.config
            .timeouts
            .keepalive
            .filter(|_| self.config.wire.is_websocket())
    }

    /// Does what is due at `now`: pings, timeouts, query deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeouts = self.config.timeouts;
        let work = self.work.as_deref();
        let (close_deadline, write_since, partial_since) = (
            work.and_then(|w| w.close_deadline),
            work.and_then(|w| w.write_since),
            work.and_then(|w| w.partial_since),
        );
        if close_deadline.is_some_and(|at| now >= at) {
            self.abort(End::CloseTimeout);
        }
        if write_since
            .zip(timeouts.write)
            .is_some_and(|(s, t)| now >= s + t)
        {
            self.abort(End::WriteTimeout);
        }
        if self.is_receiving() {
            if partial_since
                .zip(timeouts.body)
                .is_some_and(|(s, t)| now >= s + t)
            {
                let reason = format!(
                    "message not completed within {:?}",
                    timeouts.body.unwrap_or_default()
                );
                self.fail(close_code::POLICY, &reason);
                self.ended(End::BodyTimeout);
            } else if let Some(keepalive) = self.keepalive() {
                let last_received = self.last_received();
                if now >= last_received + keepalive.timeout {
                    self.fail(close_code::GOING_AWAY, "idle timeout");
                    self.ended(End::IdleTimeout);
                } else if !self.ping_sent && now >= last_received + keepalive.interval {
                    self.ping_sent = true;
                    self.ping_due = self.phase == Phase::Open;
                }
            }
        }
        if let Some(queries) = self.queries_mut() {
            queries.expire(now, timeouts.query);
        }
    }
}

#[cfg(test)]
mod tests;

//! The load generator: raw TCP with hand-written WebSocket client framing (masking key 0,
//! frames built once), one thread, so it stays cheap and is never the bottleneck.
//! Every scenario is bounded in time and count, reads the server's CPU time from `/proc`
//! over the measured window (exactly from its threads' `schedstat`, split into user and
//! kernel from `stat`'s clock ticks), and prints a table row and a JSON line.
//!
//! ```text
//! loadgen --addr 127.0.0.1:9100 --server-pid PID --label connectme-uring --scenario echo \
//!         --connections 64 --depth 16 --size 64 --duration 5
//! ```
//!
//! `--sessions` offers the engine's session extension (`x-connectme-session`) in every
//! upgrade and speaks its minimum: session frames (opcode 0x3) from the server are read
//! and skipped, and echo connections acknowledge every 32nd data message received (a
//! session frame `[2, seq as u64 big-endian]`), as the engine's client does, so the
//! server's replay buffer stays short. `--scenario room --rooms N`: connection `i` upgrades
//! on `/room/{i % N}` and connections `0..N` each publish `R` messages to their room,
//! `--rate` publishes per second over all rooms (bench-server `--rooms`).
//!
//! `--scenario json-echo` and `json-latency` speak the websocket_core JSON protocol (issue
//! 17) on `--path` (default `/ws`): as `echo` (`--connections`, `--depth`) and `latency`
//! (`--rate`) do, with each request the envelope
//! `{"v":"1.0","e":"echo","p":{"msg":"xx…"},"c":"<id>","t":<ms>}`, its payload about `--size`
//! bytes and its `c` unique. Replies are parsed with serde_json and matched by `c`; one
//! that is not `echo.response` with the payload sent, or names no request in flight, is an
//! error (server-initiated `sys.*` messages without `c` are skipped). Servers:
//! bench-server `--json`, tokio-tungstenite-server `--json`.
//!
//! `--raw`: plain TCP against a byte-echo server (`uring-proto`): no upgrade, frames go
//! out unmasked (the server frames' layout, so the echoed bytes parse as server frames),
//! and each connection opens by exchanging one 10-byte frame in place of the handshake
//! (echo, latency, connect, idle).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use perf::{
    cpu_time, machine_ticks, rss_bytes, CpuTime, MachineTicks, BROADCAST_TAG, ECHO_TAG, ROOM_TAG,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    Echo,
    Latency,
    Broadcast,
    Room,
    Connect,
    Idle,
    Resume,
    /// `echo`'s load as JSON requests to a routed `echo` handler.
    JsonEcho,
    /// `latency`'s load as JSON requests to a routed `echo` handler.
    JsonLatency,
}

impl Scenario {
    fn is_json(self) -> bool {
        matches!(self, Scenario::JsonEcho | Scenario::JsonLatency)
    }
}

#[derive(Parser, Debug)]
struct Args {
    /// Server under test.
    #[arg(long)]
    addr: SocketAddr,
    /// Its process id, for CPU time and memory.
    #[arg(long)]
    server_pid: u32,
    /// Name of the server in the results.
    #[arg(long)]
    label: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Connections (echo, latency, broadcast subscribers, json-echo, json-latency).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Messages in flight per connection (echo, json-echo).
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Message size in bytes (at least 9: tag and timestamp); the JSON scenarios' payload
    /// size (`{"msg":"xx…"}`, at least 10).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages per second: all connections together (latency, json-latency), publishes
    /// (broadcast).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Handshakes (connect) or idle connections (idle), sessions (resume).
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Concurrent handshakes (connect, idle, resume).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Offer the session extension in every upgrade (echo connections acknowledge).
    #[arg(long)]
    sessions: bool,
    /// Rooms (room scenario): connection i joins room i % rooms, and one per room publishes.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Resume: data messages each session has the server send before its connection
    /// drops (echoes of its own, left unacknowledged, so they stay in the server's replay
    /// buffer; `--size` bytes each).
    #[arg(long, default_value_t = 0)]
    buffered: u64,
    /// Resume: ask for the whole buffer again (`last seq` 0) instead of nothing.
    #[arg(long)]
    replay: bool,
    /// Upgrade path (echo, latency, json-echo, json-latency); default `/`, `/ws` for the
    /// JSON scenarios (the reference's endpoint).
    #[arg(long)]
    path: Option<String>,
    /// Append the JSON result line to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Plain TCP to a byte-echo server: no upgrade, unmasked frames (see the module docs).
    #[arg(long)]
    raw: bool,
}

/// `--raw`, set once at start.
static RAW: AtomicBool = AtomicBool::new(false);

fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A masked (key 0) binary frame: tag, send time, zero padding up to `size`.
fn frame(tag: u8, size: usize, out: &mut Vec<u8>) {
    let size = size.max(9);
    frame_header(0x82, size, out);
    out.push(tag);
    out.extend_from_slice(&now_ns().to_le_bytes());
    out.resize(out.len() + size - 9, 0);
}

/// A client frame's header: `first` (FIN and opcode), the length, mask key 0 (no mask
/// with `--raw`).
fn frame_header(first: u8, size: usize, out: &mut Vec<u8>) {
    let masked = !RAW.load(Ordering::Relaxed);
    let mask_bit = if masked { 0x80 } else { 0 };
    out.push(first);
    match size {
        0..=125 => out.push(mask_bit | size as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
}

/// Server frames (unmasked) out of a read buffer.
struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Data frames (text or binary) taken so far: a session's received sequence number.
    data_frames: u64,
}

impl FrameReader {
    fn new() -> Self {
        Self::with_capacity(256 * 1024)
    }

    fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            data_frames: 0,
        }
    }

    async fn fill(&mut self, stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// The next complete frame's payload timestamp (data frames), skipping others.
    fn next_timestamp(&mut self) -> Option<Option<u64>> {
        let (opcode, payload) = self.next_frame()?;
        let payload = &self.buf[payload];
        Some((matches!(opcode, 1 | 2) && payload.len() >= 9).then(|| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[1..9]);
            u64::from_le_bytes(b)
        }))
    }

    /// The next complete frame: its opcode and where its payload is in `buf` (valid until
    /// the next `fill`).
    fn next_frame(&mut self) -> Option<(u8, std::ops::Range<usize>)> {
        let data = &self.buf[self.start..self.end];
        if data.len() < 2 {
            return None;
        }
        let (len, header) = match data[1] & 0x7F {
            126 if data.len() >= 4 => (u16::from_be_bytes([data[2], data[3]]) as usize, 4),
            127 if data.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        assert!(
            header + len <= self.buf.len(),
            "frame larger than the read buffer"
        );
        if data.len() < header + len {
            return None;
        }
        let opcode = data[0] & 0x0F;
        if matches!(opcode, 1 | 2) {
            self.data_frames += 1;
        }
        let payload = self.start + header..self.start + header + len;
        self.start += header + len;
        Some((opcode, payload))
    }

    /// The next session frame's payload (opcode 0x3), reading as needed; data frames on
    /// the way are counted and skipped.
    async fn next_session_frame(
        &mut self,
        stream: &mut (impl AsyncReadExt + Unpin),
    ) -> io::Result<Vec<u8>> {
        loop {
            while let Some((opcode, payload)) = self.next_frame() {
                if opcode == 3 {
                    return Ok(self.buf[payload].to_vec());
                }
            }
            self.fill(stream).await?;
        }
    }
}

/// A session acknowledgement: every data message up to `seq` was processed.
fn session_ack(seq: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x83, 0x80 | 9, 0, 0, 0, 0, 2]);
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Acknowledgements every 32 data messages received (the engine's client's interval).
const ACK_EVERY: u64 = 32;

/// Connects and upgrades on `/` (`path`), offering `extension` (the session extension,
/// with or without a resume token) when given.
async fn ws_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    ws_connect_with(addr, "/", None).await
}

async fn ws_connect_with(
    addr: SocketAddr,
    path: &str,
    extension: Option<&str>,
) -> io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // RST on close: thousands of handshakes must not fill the port range with TIME_WAIT.
    socket.set_zero_linger()?;
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    if RAW.load(Ordering::Relaxed) {
        // A byte-echo server: one 10-byte frame there and back stands for the handshake.
        let mut hello = Vec::with_capacity(10);
        frame_header(0x82, 8, &mut hello);
        hello.extend_from_slice(b"rawhello");
        stream.write_all(&hello).await?;
        let mut back = [0u8; 10];
        stream.read_exact(&mut back).await?;
        if back[..] != hello[..] {
            return Err(io::Error::other(
                "the raw echo did not return the opening frame",
            ));
        }
        return Ok(stream);
    }
    let extension = extension
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 {extension}\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        if head.len() > 4096 {
            return Err(io::Error::other("handshake response too long"));
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(format!(
            "handshake refused: {}",
            String::from_utf8_lossy(&head)
        )));
    }
    // An offered session must be accepted: a run without it would measure the plain wire.
    if !extension.is_empty()
        && !String::from_utf8_lossy(&head)
            .to_ascii_lowercase()
            .contains("x-connectme-session")
    {
        return Err(io::Error::other(
            "the server did not accept the session extension",
        ));
    }
    Ok(stream)
}

#[derive(Default)]
struct Stats {
    measuring: Cell<bool>,
    stop: Cell<bool>,
    count: Cell<u64>,
    errors: Cell<u64>,
    hist: RefCell<Option<Histogram<u64>>>,
}

impl Stats {
    fn new() -> Rc<Self> {
        let stats = Rc::new(Self::default());
        *stats.hist.borrow_mut() =
            Some(Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("bounds"));
        stats
    }

    /// Counts an error; the first one is printed.
    fn error(&self, why: &str) {
        if self.errors.get() == 0 {
            eprintln!("loadgen: {why}");
        }
        self.errors.set(self.errors.get() + 1);
    }

    fn record(&self, sent_ns: u64) {
        if self.measuring.get() {
            self.count.set(self.count.get() + 1);
            let latency = now_ns().saturating_sub(sent_ns).max(1);
            if let Some(h) = self.hist.borrow_mut().as_mut() {
                let _ = h.record(latency);
            }
        }
    }
}

/// What a measured window found: its length, the server's CPU time over it, and the
/// share of the machine's time the hypervisor stole meanwhile (percent).
type Measured = (Duration, CpuTime, f64);

/// The start of a measured window: the clock, the server's CPU time and the machine's
/// ticks. A server that has exited is an error, not a zero.
struct Window {
    start: Instant,
    cpu: CpuTime,
    machine: MachineTicks,
    pid: u32,
}

impl Window {
    fn open(pid: u32) -> io::Result<Self> {
        Ok(Self {
            cpu: cpu_time(pid)?,
            machine: machine_ticks()?,
            start: Instant::now(),
            pid,
        })
    }

    fn close(self) -> io::Result<Measured> {
        let elapsed = self.start.elapsed();
        let cpu = cpu_time(self.pid)?.since(self.cpu);
        let steal = machine_ticks()?.steal_percent_since(self.machine);
        Ok((elapsed, cpu, steal))
    }
}

/// Runs `args.duration` seconds of measurement (after the warm-up) while load runs.
async fn measure(args: &Args, stats: &Stats) -> io::Result<Measured> {
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let window = Window::open(args.server_pid)?;
    stats.measuring.set(true);
    let bar = progress(args.duration);
    while window.start.elapsed().as_secs_f64() < args.duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bar.set_position((window.start.elapsed().as_secs_f64() * 10.0) as u64);
        bar.set_message(format!("{} ops", stats.count.get()));
    }
    stats.measuring.set(false);
    let measured = window.close();
    bar.finish_and_clear();
    stats.stop.set(true);
    measured
}

fn progress(seconds: f64) -> ProgressBar {
    let bar = ProgressBar::new((seconds * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("  {bar:30} {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The upgrade path: `--path`, else `/ws` for the JSON scenarios and `/` for the others.
fn path(args: &Args) -> &str {
    match &args.path {
        Some(path) => path,
        None if args.scenario.is_json() => "/ws",
        None => "/",
    }
}

/// The extension offer for a new session, when `--sessions`.
fn offer(args: &Args) -> Option<&'static str> {
    args.sessions.then_some("x-connectme-session")
}

async fn echo(args: &Args, stats: Rc<Stats>) -> io::Result<()> {
    for _ in 0..args.connections {
        let stream = ws_connect_with(args.addr, path(args), offer(args)).await?;
        let (stats, depth, size, sessions) = (stats.clone(), args.depth, args.size, args.sessions);
        tokio::task::spawn_local(async move {
            let (mut rd, mut wr) = stream.into_split();
            let mut out = Vec::with_capacity(depth * (size + 14));
            for _ in 0..depth {
                frame(ECHO_TAG, size, &mut out);
            }
            let mut reader = FrameReader::new();
            let mut acked = 0;
            while !stats.stop.get() {
                if wr.write_all(&out).await.is_err() || reader.fill(&mut rd).await.is_err() {
                    stats.errors.set(stats.errors.get() + 1);
                    return;
                }
                out.clear();
                while let Some(ts) = reader.next_timestamp() {
                    if let Some(ts) = ts {
                        stats.record(ts);
                        frame(ECHO_TAG, size, &mut out);
                    }
                }
                while sessions && reader.data_frames >= acked + ACK_EVERY {
                    acked += ACK_EVERY;
                    session_ack(acked, &mut out);
                }
            }
        });
    }
    Ok(())
}

/// Who publishes in a paced scenario: every connection to itself (latency), one to all
/// (broadcast), or one per room to its room.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Paced {
    Latency,
    Broadcast,
    Room,
}

async fn paced(args: &Args, stats: Rc<Stats>, mode: Paced) -> io::Result<()> {
    let rooms = args.rooms.clamp(1, args.connections.max(1));
    let (senders, tag) = match mode {
        Paced::Latency => (args.connections, ECHO_TAG),
        Paced::Broadcast => (1, BROADCAST_TAG),
        Paced::Room => (rooms, ROOM_TAG),
    };
    let interval = Duration::from_secs_f64(senders as f64 / args.rate.max(1) as f64);
    for i in 0..args.connections {
        let path = match mode {
            Paced::Room => format!("/room/{}", i % rooms),
            Paced::Latency => path(args).to_owned(),
            Paced::Broadcast => "/".to_owned(),
        };
        let stream = ws_connect_with(args.addr, &path, None).await?;
        let (mut rd, wr) = stream.into_split();
        let reader_stats = stats.clone();
        // Subscribers that never send keep their write half in their reader task: dropping
        // it would shut the socket down for writing, which servers rightly take as a
        // disconnect.
        let (keep, wr) = if i >= senders {
            (Some(wr), None)
        } else {
            (None, Some(wr))
        };
        tokio::task::spawn_local(async move {
            let _keep = keep;
            let mut reader = FrameReader::new();
            while !reader_stats.stop.get() {
                if reader.fill(&mut rd).await.is_err() {
                    return;
                }
                while let Some(ts) = reader.next_timestamp() {
                    if let Some(ts) = ts {
                        reader_stats.record(ts);
                    }
                }
            }
        });
        let Some(wr) = wr else { continue };
        let size = args.size;
        let offset = interval.mul_f64(i as f64 / senders as f64);
        spawn_paced(wr, stats.clone(), interval, offset, move |out| {
            frame(tag, size, out)
        });
    }
    Ok(())
}

/// The JSON scenarios' payload: `{"msg":"xx…"}`, `size` bytes (at least 10), as text and
/// as the value every reply must carry back.
fn json_payload(size: usize) -> Rc<(String, Value)> {
    let text = format!(r#"{{"msg":"{}"}}"#, "x".repeat(size.saturating_sub(10)));
    let value = serde_json::from_str(&text).expect("a JSON object");
    Rc::new((text, value))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A reply as the JSON client reads it (`v`, `t` and unknown keys ignored).
#[derive(Deserialize)]
struct JsonReply<'a> {
    #[serde(borrow)]
    e: Cow<'a, str>,
    #[serde(default)]
    p: Value,
    #[serde(borrow, default)]
    c: Option<Cow<'a, str>>,
}

/// What a server's text frame was to a JSON connection.
enum Answer {
    /// The right reply to the request in flight sent at this time (ns).
    Echoed(u64),
    /// The reply to a request in flight, but not its echo: an error.
    Wrong(String),
    /// No reply to any request in flight: an error.
    Stray(String),
    /// A message the server started (a `sys.*` event without `c`).
    Skip,
}

/// One JSON connection's requests: each `c` is `<connection>-<sequence number>`, and the
/// ones in flight are kept by sequence number with their send time.
struct JsonClient {
    conn: usize,
    next: u64,
    inflight: HashMap<u64, u64>,
    payload: Rc<(String, Value)>,
    body: String,
}

impl JsonClient {
    fn new(conn: usize, payload: Rc<(String, Value)>) -> Self {
        Self {
            conn,
            next: 0,
            inflight: HashMap::new(),
            payload,
            body: String::new(),
        }
    }

    /// Appends the next request, a masked (key 0) text frame, to `out`.
    fn request(&mut self, out: &mut Vec<u8>) {
        use std::fmt::Write;
        self.next += 1;
        self.body.clear();
        let _ = write!(
            self.body,
            r#"{{"v":"1.0","e":"echo","p":{},"c":"{}-{}","t":{}}}"#,
            self.payload.0,
            self.conn,
            self.next,
            unix_ms()
        );
        frame_header(0x81, self.body.len(), out);
        out.extend_from_slice(self.body.as_bytes());
        self.inflight.insert(self.next, now_ns());
    }

    /// Matches a text frame from the server to its request by `c`.
    fn answer(&mut self, text: &[u8]) -> Answer {
        let reply: JsonReply = match serde_json::from_slice(text) {
            Ok(reply) => reply,
            Err(e) => return Answer::Stray(format!("not an envelope ({e})")),
        };
        let Some(c) = reply.c else {
            if reply.e.starts_with("sys.") && reply.e != "sys.error" {
                return Answer::Skip;
            }
            return Answer::Stray(format!("`{}` without c", reply.e));
        };
        let sent = c
            .split_once('-')
            .filter(|(conn, _)| conn.parse() == Ok(self.conn))
            .and_then(|(_, seq)| seq.parse::<u64>().ok())
            .and_then(|seq| self.inflight.remove(&seq));
        match sent {
            None => Answer::Stray(format!("`{}` with c {c:?}: no such request", reply.e)),
            Some(sent) if reply.e == "echo.response" && reply.p == self.payload.1 => {
                Answer::Echoed(sent)
            }
            Some(_) => Answer::Wrong(format!(
                "`{}` for c {c:?}, payload {}",
                reply.e,
                truncate(&reply.p.to_string(), 200)
            )),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `echo`'s load in JSON: `depth` requests in flight per connection, a new one sent for
/// each reply.
async fn json_echo(args: &Args, stats: Rc<Stats>) -> io::Result<()> {
    let payload = json_payload(args.size);
    for i in 0..args.connections {
        let stream = ws_connect_with(args.addr, path(args), None).await?;
        let (stats, depth) = (stats.clone(), args.depth);
        let mut client = JsonClient::new(i, payload.clone());
        tokio::task::spawn_local(async move {
            let (mut rd, mut wr) = stream.into_split();
            let mut out = Vec::new();
            for _ in 0..depth {
                client.request(&mut out);
            }
            let mut reader = FrameReader::new();
            while !stats.stop.get() {
                if wr.write_all(&out).await.is_err() || reader.fill(&mut rd).await.is_err() {
                    stats.error("json-echo: connection lost");
                    return;
                }
                out.clear();
                while let Some((opcode, payload)) = reader.next_frame() {
                    match opcode {
                        1 => match client.answer(&reader.buf[payload]) {
                            Answer::Echoed(sent) => {
                                stats.record(sent);
                                client.request(&mut out);
                            }
                            Answer::Wrong(why) => {
                                stats.error(&why);
                                client.request(&mut out);
                            }
                            Answer::Stray(why) => stats.error(&why),
                            Answer::Skip => {}
                        },
                        8 => {
                            stats.error("json-echo: the server closed the connection");
                            return;
                        }
                        _ => {}
                    }
                }
            }
        });
    }
    Ok(())
}

/// `latency`'s load in JSON: every connection sends a request every
/// `connections / rate` seconds (staggered), whatever the replies.
async fn json_latency(args: &Args, stats: Rc<Stats>) -> io::Result<()> {
    let payload = json_payload(args.size);
    let senders = args.connections.max(1);
    let interval = Duration::from_secs_f64(senders as f64 / args.rate.max(1) as f64);
    for i in 0..args.connections {
        let stream = ws_connect_with(args.addr, path(args), None).await?;
        let (mut rd, wr) = stream.into_split();
        let client = Rc::new(RefCell::new(JsonClient::new(i, payload.clone())));
        let (reader_stats, reader_client) = (stats.clone(), client.clone());
        tokio::task::spawn_local(async move {
            let mut reader = FrameReader::new();
            while !reader_stats.stop.get() {
                if reader.fill(&mut rd).await.is_err() {
                    return;
                }
                while let Some((opcode, payload)) = reader.next_frame() {
                    if opcode != 1 {
                        continue;
                    }
                    match reader_client.borrow_mut().answer(&reader.buf[payload]) {
                        Answer::Echoed(sent) => reader_stats.record(sent),
                        Answer::Wrong(why) | Answer::Stray(why) => reader_stats.error(&why),
                        Answer::Skip => {}
                    }
                }
            }
        });
        let offset = interval.mul_f64(i as f64 / senders as f64);
        spawn_paced(wr, stats.clone(), interval, offset, move |out| {
            client.borrow_mut().request(out)
        });
    }
    Ok(())
}

/// The paced scenarios' sender: after `offset` (connections are staggered over one
/// interval), one message every `interval`, built into a cleared buffer by `build`,
/// until the run stops or the connection fails.
fn spawn_paced(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    stats: Rc<Stats>,
    interval: Duration,
    offset: Duration,
    mut build: impl FnMut(&mut Vec<u8>) + 'static,
) {
    tokio::task::spawn_local(async move {
        tokio::time::sleep(offset).await;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = Vec::new();
        while !stats.stop.get() {
            ticker.tick().await;
            out.clear();
            build(&mut out);
            if wr.write_all(&out).await.is_err() {
                return;
            }
        }
    });
}

async fn connect_storm(args: &Args, stats: Rc<Stats>) -> io::Result<Measured> {
    let started = Rc::new(Cell::new(0usize));
    stats.measuring.set(true);
    let window = Window::open(args.server_pid)?;
    let bar = ProgressBar::new(args.count as u64);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (stats, started, addr, count, bar) = (
            stats.clone(),
            started.clone(),
            args.addr,
            args.count,
            bar.clone(),
        );
        workers.push(tokio::task::spawn_local(async move {
            while started.get() < count {
                started.set(started.get() + 1);
                let t = now_ns();
                match ws_connect(addr).await {
                    Ok(stream) => {
                        stats.record(t);
                        drop(stream);
                    }
                    Err(_) => stats.errors.set(stats.errors.get() + 1),
                }
                bar.inc(1);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    bar.finish_and_clear();
    window.close()
}

async fn idle(args: &Args) -> io::Result<f64> {
    let before = rss_bytes(args.server_pid)?;
    let mut open = Vec::with_capacity(args.count);
    let bar = ProgressBar::new(args.count as u64);
    while open.len() < args.count {
        let batch = (args.count - open.len()).min(args.concurrency);
        let pending: Vec<_> = (0..batch)
            .map(|_| tokio::task::spawn_local(open_idle(args.addr, offer(args))))
            .collect();
        for p in pending {
            open.push(p.await.map_err(io::Error::other)??);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    // Steady state: servers may trim idle connections' state on a timer (the engine parks
    // a connection whole after 2 s without traffic, checked once a second).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_bytes(args.server_pid)?;
    drop(open);
    Ok(after.saturating_sub(before) as f64 / args.count as f64)
}

/// An idle connection as a real client leaves one: connected, and one message (16 bytes)
/// sent and its echo read.
async fn open_idle(addr: SocketAddr, extension: Option<&'static str>) -> io::Result<TcpStream> {
    let mut stream = ws_connect_with(addr, "/", extension).await?;
    let mut out = Vec::with_capacity(32);
    frame(ECHO_TAG, 16, &mut out);
    stream.write_all(&out).await?;
    let mut reader = FrameReader::with_capacity(4096);
    loop {
        while let Some(timestamp) = reader.next_timestamp() {
            if timestamp.is_some() {
                return Ok(stream);
            }
        }
        reader.fill(&mut stream).await?;
    }
}

/// What the load generator keeps of a session to resume it.
struct HeldSession {
    id: [u8; 16],
    secret: [u8; 16],
    /// Data messages received on it.
    received: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens a session, reads its `created` message and has the server send `buffered`
/// messages on it (echoes, not acknowledged).
async fn open_session(
    addr: SocketAddr,
    buffered: u64,
    size: usize,
) -> io::Result<(TcpStream, HeldSession)> {
    let mut stream = ws_connect_with(addr, "/", Some("x-connectme-session")).await?;
    let mut reader = FrameReader::with_capacity(16 * 1024);
    let created = reader.next_session_frame(&mut stream).await?;
    if created.len() < 35 || created[0] != 3 || created[33..35] != [0, 0] {
        return Err(io::Error::other(format!(
            "expected created, got {created:?}"
        )));
    }
    let mut held = HeldSession {
        id: created[1..17].try_into().expect("16 bytes"),
        secret: created[17..33].try_into().expect("16 bytes"),
        received: 0,
    };
    let mut out = Vec::new();
    for _ in 0..buffered {
        frame(ECHO_TAG, size, &mut out);
    }
    stream.write_all(&out).await?;
    while reader.data_frames < buffered {
        while reader.next_frame().is_some() {}
        if reader.data_frames < buffered {
            reader.fill(&mut stream).await?;
        }
    }
    held.received = reader.data_frames;
    Ok((stream, held))
}

/// Resumes `held`: the upgrade with the resume token, then the first session frame must
/// be `restored` (and, with `--replay`, the replayed messages must arrive).
async fn resume_session(
    addr: SocketAddr,
    held: &HeldSession,
    replay: bool,
) -> io::Result<TcpStream> {
    let last = if replay { 0 } else { held.received };
    let offer = format!(
        "x-connectme-session; resume={}.{}.{last}",
        hex(&held.id),
        hex(&held.secret)
    );
    let mut stream = ws_connect_with(addr, "/", Some(&offer)).await?;
    let mut reader = FrameReader::with_capacity(16 * 1024);
    let first = reader.next_session_frame(&mut stream).await?;
    match first.first() {
        Some(4) if first.len() >= 25 => {
            let replayed = u64::from_be_bytes(first[9..17].try_into().expect("8 bytes"));
            while reader.data_frames < replayed {
                while reader.next_frame().is_some() {}
                if reader.data_frames < replayed {
                    reader.fill(&mut stream).await?;
                }
            }
            Ok(stream)
        }
        Some(3) if first.len() >= 35 => Err(io::Error::other(format!(
            "resume refused: {}",
            u16::from_be_bytes([first[33], first[34]])
        ))),
        _ => Err(io::Error::other(format!("unexpected {first:?}"))),
    }
}

/// The resume storm: `count` sessions opened (`concurrency` handshakes at a time), each
/// with `buffered` messages in the server's replay buffer; their connections reset at
/// once, then all resumed, `concurrency` at a time. Server RSS per session live, per
/// suspended session, and the storm's length and server CPU per resume.
async fn resume_storm(
    args: &Args,
    stats: Rc<Stats>,
    row: &mut serde_json::Value,
) -> io::Result<()> {
    let pid = args.server_pid;
    let before = rss_bytes(pid)?;
    let mut open = Vec::with_capacity(args.count);
    while open.len() < args.count {
        let batch = (args.count - open.len()).min(args.concurrency);
        let pending: Vec<_> = (0..batch)
            .map(|_| tokio::task::spawn_local(open_session(args.addr, args.buffered, args.size)))
            .collect();
        for p in pending {
            open.push(p.await.map_err(io::Error::other)??);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live = rss_bytes(pid)?;
    let (streams, held): (Vec<_>, Vec<_>) = open.into_iter().unzip();
    // Zero linger: every connection is reset, as a dropped network would leave it.
    drop(streams);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let suspended = rss_bytes(pid)?;

    let held = Rc::new(held);
    let next = Rc::new(Cell::new(0usize));
    let resumed = Rc::new(RefCell::new(Vec::with_capacity(args.count)));
    stats.measuring.set(true);
    let window = Window::open(pid)?;
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (held, next, resumed, stats, addr, replay) = (
            held.clone(),
            next.clone(),
            resumed.clone(),
            stats.clone(),
            args.addr,
            args.replay,
        );
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= held.len() {
                    break;
                }
                next.set(i + 1);
                let t = now_ns();
                match resume_session(addr, &held[i], replay).await {
                    Ok(stream) => {
                        stats.record(t);
                        resumed.borrow_mut().push(stream);
                    }
                    Err(e) => {
                        if stats.errors.get() == 0 {
                            eprintln!("resume failed: {e}");
                        }
                        stats.errors.set(stats.errors.get() + 1);
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(io::Error::other)?;
    }
    let (elapsed, cpu, steal) = window.close()?;
    stats.measuring.set(false);
    let resumes = resumed.borrow().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes(pid)?;
    let per = |bytes: u64| (bytes.saturating_sub(before) as f64 / args.count as f64).round();
    row["params"] = format!(
        "N={} K={} buffered={} S={} replay={}",
        args.count, args.concurrency, args.buffered, args.size, args.replay
    )
    .into();
    row["rss_bytes_per_live_session"] = per(live).into();
    row["rss_bytes_per_suspended_session"] = per(suspended).into();
    row["rss_bytes_per_resumed_session"] = per(after).into();
    row["storm_seconds"] = elapsed.as_secs_f64().into();
    row["resumed"] = resumes.into();
    row["errors"] = stats.errors.get().into();
    row["resumes_per_second"] = (resumes as f64 / elapsed.as_secs_f64()).round().into();
    row["server_cpu_us_per_resume"] = (cpu.total_us() as f64 / resumes.max(1) as f64).into();
    row["steal_percent"] = ((steal * 10.0).round() / 10.0).into();
    if let Some(h) = stats.hist.borrow().as_ref() {
        for (name, q) in [("p50_us", 0.5), ("p99_us", 0.99)] {
            row[name] = (h.value_at_quantile(q) as f64 / 1000.0).into();
        }
        row["max_us"] = (h.max() as f64 / 1000.0).into();
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    RAW.store(args.raw, Ordering::Relaxed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let stats = Stats::new();
    let mut row = serde_json::json!({
        "server": args.label,
        "scenario": args.scenario.to_possible_value().map(|v| v.get_name().to_owned()),
    });
    local.block_on(&runtime, async {
        let (elapsed, cpu, steal) = match args.scenario {
            Scenario::Echo => {
                echo(&args, stats.clone()).await?;
                measure(&args, &stats).await?
            }
            Scenario::Latency => {
                paced(&args, stats.clone(), Paced::Latency).await?;
                measure(&args, &stats).await?
            }
            Scenario::Broadcast => {
                paced(&args, stats.clone(), Paced::Broadcast).await?;
                measure(&args, &stats).await?
            }
            Scenario::Room => {
                paced(&args, stats.clone(), Paced::Room).await?;
                measure(&args, &stats).await?
            }
            Scenario::JsonEcho => {
                json_echo(&args, stats.clone()).await?;
                measure(&args, &stats).await?
            }
            Scenario::JsonLatency => {
                json_latency(&args, stats.clone()).await?;
                measure(&args, &stats).await?
            }
            Scenario::Connect => connect_storm(&args, stats.clone()).await?,
            Scenario::Resume => {
                resume_storm(&args, stats.clone(), &mut row).await?;
                return Ok::<(), io::Error>(());
            }
            Scenario::Idle => {
                let per_conn = idle(&args).await?;
                row["connections"] = args.count.into();
                row["rss_bytes_per_connection"] = (per_conn.round() as u64).into();
                return Ok::<(), io::Error>(());
            }
        };
        let ops = stats.count.get();
        row["params"] = match args.scenario {
            Scenario::Echo | Scenario::JsonEcho => {
                format!("C={} D={} S={}", args.connections, args.depth, args.size)
            }
            Scenario::Latency | Scenario::JsonLatency => format!(
                "C={} rate={}/s S={}",
                args.connections, args.rate, args.size
            ),
            Scenario::Broadcast => format!(
                "subscribers={} publishes={}/s S={}",
                args.connections, args.rate, args.size
            ),
            Scenario::Room => format!(
                "connections={} rooms={} publishes={}/s S={}",
                args.connections,
                args.rooms.clamp(1, args.connections.max(1)),
                args.rate,
                args.size
            ),
            _ => format!("N={} K={}", args.count, args.concurrency),
        }
        .into();
        row["seconds"] = elapsed.as_secs_f64().into();
        row["ops"] = ops.into();
        row["ops_per_second"] = (ops as f64 / elapsed.as_secs_f64()).round().into();
        let per_op = |us: u64| {
            if ops > 0 {
                us as f64 / ops as f64
            } else {
                f64::NAN
            }
        };
        row["server_cpu_us"] = cpu.total_us().into();
        row["server_cpu_us_per_op"] = per_op(cpu.total_us()).into();
        row["server_user_us_per_op"] = per_op(cpu.user_us).into();
        row["server_system_us_per_op"] = per_op(cpu.system_us).into();
        row["steal_percent"] = ((steal * 10.0).round() / 10.0).into();
        row["errors"] = stats.errors.get().into();
        if let Some(h) = stats.hist.borrow().as_ref() {
            for (name, q) in [("p50_us", 0.5), ("p99_us", 0.99), ("p999_us", 0.999)] {
                row[name] = (h.value_at_quantile(q) as f64 / 1000.0).into();
            }
            row["max_us"] = (h.max() as f64 / 1000.0).into();
            row["percentiles_us"] = [0.5, 0.9, 0.99, 0.999, 0.9999]
                .iter()
                .map(|&q| serde_json::json!([q, h.value_at_quantile(q) as f64 / 1000.0]))
                .collect::<Vec<_>>()
                .into();
        }
        Ok(())
    })?;
    let line = row.to_string();
    eprintln!("{}", table_row(&row));
    println!("{line}");
    if let Some(path) = &args.json {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

fn table_row(row: &serde_json::Value) -> String {
    let num = |key: &str| row.get(key).and_then(|v| v.as_f64());
    let mut out = format!(
        "{:<20} {:<10}",
        row["server"].as_str().unwrap_or(""),
        row["scenario"].as_str().unwrap_or("")
    );
    if let Some(storm) = num("storm_seconds") {
        out.push_str(&format!(
            " {} resumed in {storm:.3} s, cpu {:.1} us/resume; RSS B/session live {:.0}, suspended {:.0}, resumed {:.0}",
            row["resumed"],
            num("server_cpu_us_per_resume").unwrap_or(f64::NAN),
            num("rss_bytes_per_live_session").unwrap_or(f64::NAN),
            num("rss_bytes_per_suspended_session").unwrap_or(f64::NAN),
            num("rss_bytes_per_resumed_session").unwrap_or(f64::NAN),
        ));
        return out;
    }
    if let Some(rss) = num("rss_bytes_per_connection") {
        out.push_str(&format!(" {rss:>8.0} B/conn"));
        return out;
    }
    out.push_str(&format!(
        " {:>10.0} ops/s  cpu {:>7.3} us/op (user {:.3}, kernel {:.3})  p50 {:>8.1} p99 {:>8.1} p99.9 {:>8.1} max {:>9.1} us  steal {:.0}%",
        num("ops_per_second").unwrap_or(0.0),
        num("server_cpu_us_per_op").unwrap_or(f64::NAN),
        num("server_user_us_per_op").unwrap_or(f64::NAN),
        num("server_system_us_per_op").unwrap_or(f64::NAN),
        num("p50_us").unwrap_or(0.0),
        num("p99_us").unwrap_or(0.0),
        num("p999_us").unwrap_or(0.0),
        num("max_us").unwrap_or(0.0),
        num("steal_percent").unwrap_or(0.0),
    ));
    out
}

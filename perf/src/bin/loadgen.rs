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

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use perf::{cpu_time, machine_ticks, rss_bytes, CpuTime, MachineTicks, BROADCAST_TAG, ECHO_TAG};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    Echo,
    Latency,
    Broadcast,
    Connect,
    Idle,
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
    /// Connections (echo, latency, broadcast subscribers).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Messages in flight per connection (echo).
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Message size in bytes (at least 9: tag and timestamp).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages per second: all connections together (latency), publishes (broadcast).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Handshakes (connect) or idle connections (idle).
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Concurrent handshakes (connect, idle).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Append the JSON result line to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A masked (key 0) binary frame: tag, send time, zero padding up to `size`.
fn frame(tag: u8, size: usize, out: &mut Vec<u8>) {
    let size = size.max(9);
    out.push(0x82);
    match size {
        0..=125 => out.push(0x80 | size as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.push(tag);
    out.extend_from_slice(&now_ns().to_le_bytes());
    out.resize(out.len() + size - 9, 0);
}

/// Server frames (unmasked) out of a read buffer.
struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    fn new() -> Self {
        Self {
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
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
        let payload = &data[header..header + len];
        let ts = (matches!(opcode, 1 | 2) && payload.len() >= 9).then(|| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[1..9]);
            u64::from_le_bytes(b)
        });
        self.start += header + len;
        Some(ts)
    }
}

async fn ws_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // RST on close: thousands of handshakes must not fill the port range with TIME_WAIT.
    socket.set_zero_linger()?;
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
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

async fn echo(args: &Args, stats: Rc<Stats>) -> io::Result<()> {
    for _ in 0..args.connections {
        let stream = ws_connect(args.addr).await?;
        let (stats, depth, size) = (stats.clone(), args.depth, args.size);
        tokio::task::spawn_local(async move {
            let (mut rd, mut wr) = stream.into_split();
            let mut out = Vec::with_capacity(depth * (size + 14));
            for _ in 0..depth {
                frame(ECHO_TAG, size, &mut out);
            }
            let mut reader = FrameReader::new();
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
            }
        });
    }
    Ok(())
}

async fn paced(args: &Args, stats: Rc<Stats>, broadcast: bool) -> io::Result<()> {
    let senders = if broadcast { 1 } else { args.connections };
    let interval = Duration::from_secs_f64(senders as f64 / args.rate.max(1) as f64);
    for i in 0..args.connections {
        let stream = ws_connect(args.addr).await?;
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
        let Some(mut wr) = wr else { continue };
        let (stats, size) = (stats.clone(), args.size);
        let tag = if broadcast { BROADCAST_TAG } else { ECHO_TAG };
        let offset = interval.mul_f64(i as f64 / senders as f64);
        tokio::task::spawn_local(async move {
            tokio::time::sleep(offset).await;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut out = Vec::new();
            while !stats.stop.get() {
                ticker.tick().await;
                out.clear();
                frame(tag, size, &mut out);
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
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
            .map(|_| tokio::task::spawn_local(ws_connect(args.addr)))
            .collect();
        for p in pending {
            open.push(p.await.map_err(io::Error::other)??);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    // Steady state: servers may trim idle connections' state on a timer (the engine parks
    // idle writers once a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_bytes(args.server_pid)?;
    drop(open);
    Ok(after.saturating_sub(before) as f64 / args.count as f64)
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let stats = Stats::new();
    let mut row = serde_json::json!({
        "server": args.label,
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
    });
    local.block_on(&runtime, async {
        let (elapsed, cpu, steal) = match args.scenario {
            Scenario::Echo => {
                echo(&args, stats.clone()).await?;
                measure(&args, &stats).await?
            }
            Scenario::Latency => {
                paced(&args, stats.clone(), false).await?;
                measure(&args, &stats).await?
            }
            Scenario::Broadcast => {
                paced(&args, stats.clone(), true).await?;
                measure(&args, &stats).await?
            }
            Scenario::Connect => connect_storm(&args, stats.clone()).await?,
            Scenario::Idle => {
                let per_conn = idle(&args).await?;
                row["connections"] = args.count.into();
                row["rss_bytes_per_connection"] = (per_conn.round() as u64).into();
                return Ok::<(), io::Error>(());
            }
        };
        let ops = stats.count.get();
        row["params"] = match args.scenario {
            Scenario::Echo => format!("C={} D={} S={}", args.connections, args.depth, args.size),
            Scenario::Latency => format!(
                "C={} rate={}/s S={}",
                args.connections, args.rate, args.size
            ),
            Scenario::Broadcast => format!(
                "subscribers={} publishes={}/s S={}",
                args.connections, args.rate, args.size
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

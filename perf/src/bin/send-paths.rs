//! What the kernel charges a server per small message sent on loopback, for each way of
//! handing it the message: the broadcast scenario's floor, measured without any engine.
//!
//! One thread (CPU 0) owns the server ends of C loopback TCP connections and "publishes":
//! it sends one S-byte message to every connection, R times a second. A second thread
//! (CPU 1) drains the client ends with epoll, as the load generator does. The sender uses
//! the paths in turn, publish by publish, and charges each publish the sending thread's
//! CPU time (user and kernel, `CLOCK_THREAD_CPUTIME_ID`); the report is the median per
//! delivery over blocks of publishes, so drift in the machine's speed hits every path
//! alike.
//!
//! Paths: `send(2)` per connection, `writev(2)` with one iovec per connection, and one
//! io_uring submission of C `IORING_OP_SEND` / `IORING_OP_WRITEV` entries (ring set up as
//! the engine's: SINGLE_ISSUER | DEFER_TASKRUN), plus `IORING_OP_SEND` on registered
//! files, which monoio does not use.
//!
//!   cargo run --release -p perf --bin send-paths -- [--connections 1000] [--rate 200]
//!     [--size 64] [--rounds 12] [--publishes 100]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use clap::Parser;
use io_uring::{opcode, types, IoUring};

#[derive(Parser)]
struct Args {
    /// Connections each publish goes to.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Publishes per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Blocks measured per path (after one discarded warm-up block); the report is their
    /// median.
    #[arg(long, default_value_t = 12)]
    rounds: usize,
    /// Publishes per path in each block (the paths take turns publish by publish).
    #[arg(long, default_value_t = 100)]
    publishes: usize,
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Send,
    Writev,
    UringSend,
    UringWritev,
    UringSendFixed,
}

const PATHS: [Path; 5] = [
    Path::Send,
    Path::Writev,
    Path::UringSend,
    Path::UringWritev,
    Path::UringSendFixed,
];

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// CPU time (user and kernel) this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn connect_all(n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (mut servers, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..n {
        clients.push(TcpStream::connect(addr).expect("connect"));
        let (server, _) = listener.accept().expect("accept");
        server.set_nodelay(true).expect("nodelay");
        servers.push(server);
    }
    (servers, clients)
}

/// Drains every client end, as the load generator's subscribers do, until `expected`
/// bytes arrived or nothing arrived for a second; returns the bytes read.
fn drain(clients: Vec<TcpStream>, expected: u64) -> u64 {
    pin(1);
    #[allow(unsafe_code)]
    // SAFETY: plain epoll calls on descriptors this thread owns; events is sized for them.
    unsafe {
        let ep = libc::epoll_create1(0);
        for (i, c) in clients.iter().enumerate() {
            c.set_nonblocking(true).expect("nonblocking");
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.as_raw_fd(), &mut ev);
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = [0u8; 65536];
        let mut total = 0u64;
        let mut clients = clients;
        let mut last = Instant::now();
        while total < expected && last.elapsed() < Duration::from_secs(1) {
            let n = libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50);
            if n > 0 {
                last = Instant::now();
            }
            for ev in events.iter().take(n.max(0) as usize) {
                let client = &mut clients[ev.u64 as usize];
                while let Ok(got @ 1..) = client.read(&mut buf) {
                    total += got as u64;
                }
            }
        }
        libc::close(ep);
        total
    }
}

struct Sender {
    fds: Vec<i32>,
    message: Vec<u8>,
    iovec: libc::iovec,
    ring: IoUring,
}

impl Sender {
    fn publish(&mut self, path: Path) {
        let len = self.message.len();
        match path {
            Path::Send | Path::Writev => {
                for &fd in &self.fds {
                    // SAFETY: the buffer and iovec outlive the call.
                    #[allow(unsafe_code)]
                    let sent = unsafe {
                        if let Path::Send = path {
                            libc::send(fd, self.message.as_ptr().cast(), len, libc::MSG_DONTWAIT)
                        } else {
                            libc::writev(fd, &self.iovec, 1)
                        }
                    };
                    assert_eq!(sent, len as isize, "{path:?} short write");
                }
            }
            Path::UringSend | Path::UringWritev | Path::UringSendFixed => {
                for (i, &fd) in self.fds.iter().enumerate() {
                    let entry = match path {
                        Path::UringSend => {
                            opcode::Send::new(types::Fd(fd), self.message.as_ptr(), len as u32)
                                .build()
                        }
                        Path::UringWritev => {
                            opcode::Writev::new(types::Fd(fd), &self.iovec, 1).build()
                        }
                        _ => opcode::Send::new(
                            types::Fixed(i as u32),
                            self.message.as_ptr(),
                            len as u32,
                        )
                        .build(),
                    };
                    // SAFETY: the message and iovec live in `self` until the completions
                    // below are reaped.
                    #[allow(unsafe_code)]
                    unsafe {
                        self.ring
                            .submission()
                            .push(&entry)
                            .expect("ring sized for C");
                    }
                }
                self.ring.submit_and_wait(self.fds.len()).expect("submit");
                for cqe in self.ring.completion() {
                    assert_eq!(cqe.result(), len as i32, "{path:?} short write");
                }
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    let (servers, clients) = connect_all(args.connections);
    let expected =
        ((args.rounds + 1) * PATHS.len() * args.publishes * args.connections * args.size) as u64;
    let drainer = std::thread::spawn(move || drain(clients, expected));
    pin(0);
    let mut builder = IoUring::builder();
    builder.setup_single_issuer().setup_defer_taskrun();
    let ring = builder
        .build((args.connections as u32).next_power_of_two())
        .expect("io_uring");
    let fds: Vec<i32> = servers.iter().map(|s| s.as_raw_fd()).collect();
    ring.submitter()
        .register_files(&fds)
        .expect("register files");
    let message = vec![b'B'; args.size];
    let iovec = libc::iovec {
        iov_base: message.as_ptr() as *mut libc::c_void,
        iov_len: message.len(),
    };
    let mut sender = Sender {
        fds,
        message,
        iovec,
        ring,
    };
    let period = Duration::from_secs(1) / args.rate;
    // Per path: CPU time of each block of `publishes` publishes; paths take turns publish by
    // publish, so a change in the machine's speed lands on all of them alike.
    let mut blocks: Vec<Vec<f64>> = vec![Vec::new(); PATHS.len()];
    let mut next = Instant::now();
    for round in 0..args.rounds + 1 {
        let mut spent = [Duration::ZERO; PATHS.len()];
        for _ in 0..args.publishes {
            for (p, &path) in PATHS.iter().enumerate() {
                let before = thread_cpu();
                sender.publish(path);
                spent[p] += thread_cpu() - before;
                next += period;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
        if round > 0 {
            let deliveries = (args.publishes * args.connections) as f64;
            for (p, block) in blocks.iter_mut().enumerate() {
                block.push(spent[p].as_secs_f64() * 1e6 / deliveries);
            }
        }
    }
    let received = drainer.join().expect("drainer");
    println!(
        "send paths: {} connections, {} publishes/s, {} B; server-thread CPU (user + kernel) \
         per delivery, median of {} blocks of {} publishes per path (paths interleaved)",
        args.connections, args.rate, args.size, args.rounds, args.publishes
    );
    println!("| path | cpu us/delivery | vs send(2) | spread (min-max of blocks) |");
    println!("|---|---:|---:|---|");
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&blocks[0]);
    for (path, block) in PATHS.iter().zip(&blocks) {
        let (min, max) = block
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let m = median(block);
        println!(
            "| {path:?} | {m:.3} | {:.2}x | {min:.3}-{max:.3} |",
            m / base
        );
    }
    assert_eq!(received, expected, "every message arrived");
}

//! Issue 15's runtime question, as a prototype: a single-threaded TCP byte-echo server
//! two ways, to measure what io_uring's provided buffer rings buy over the way the engine
//! reads on monoio today.
//!
//! ```text
//! uring-proto --mode pbuf   --addr 127.0.0.1:PORT [--buffers 256] [--buffer-size 4096]
//! uring-proto --mode monoio --addr 127.0.0.1:PORT [--driver uring|epoll]
//! ```
//!
//! - `pbuf`: straight on the `io-uring` crate. Multishot accept; per connection one
//!   multishot receive (`RecvMulti`) that takes its buffers from ONE provided buffer ring
//!   (`IORING_REGISTER_PBUF_RING`) shared by every connection, so an idle connection holds
//!   no receive buffer. Received bytes are echoed from the ring buffer they arrived in
//!   (`Send`, or one `Writev` of several), which goes back to the ring once sent; past
//!   `--max-held` buffers per connection, or while the ring is dry, they are copied to a
//!   pooled output buffer (taken only while output is pending) and the ring buffer goes
//!   back at once. All of a loop turn's SQEs leave in one `io_uring_enter`. Ring
//!   exhaustion (`ENOBUFS`, which ends the multishot receive) parks the connection until
//!   buffers come back, then re-arms it, first come first served: no byte is lost, since
//!   the kernel keeps unread bytes in the socket. A connection is a 24-byte slab entry.
//! - `monoio`: the engine's way: one task per connection, an owned read buffer of the
//!   engine's first size (512 B, `MIN_READ`) that doubles while reads fill it (to 64 KiB)
//!   and halves while they use little of it, `read` then `write_all`.
//!
//! `--driver` picks monoio's driver; `pbuf` ignores it, and both ignore `--shards` (one
//! thread), so `perf/idle-ab` and `perf/ab-flags` drive this binary as they drive
//! bench-server. The load generator speaks raw TCP to it with `--raw`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use clap::{Parser, ValueEnum};
use io_uring::{cqueue, opcode, types, IoUring};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Mode {
    /// io-uring crate: multishot accept and receive over one provided buffer ring.
    Pbuf,
    /// monoio, a task and an owned read buffer per connection (the engine today).
    Monoio,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, value_enum, default_value = "pbuf")]
    mode: Mode,
    #[arg(long, default_value = "127.0.0.1:9100")]
    addr: SocketAddr,
    /// monoio's driver, `uring` or `epoll` (ignored by `pbuf`).
    #[arg(long, default_value = "uring")]
    driver: String,
    /// Ignored: one thread (accepted because the perf scripts pass it).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Provided buffers in the ring (a power of two, at most 32 768).
    #[arg(long, default_value_t = 256)]
    buffers: u16,
    /// Bytes per provided buffer.
    #[arg(long, default_value_t = 4096)]
    buffer_size: u32,
    /// Most ring buffers one connection holds while they wait to be echoed; bytes past
    /// that are copied out and their buffer returned at once.
    #[arg(long, default_value_t = 16)]
    max_held: u16,
    /// Submission queue entries (the completion queue gets four times as many).
    #[arg(long, default_value_t = 4096)]
    ring_entries: u32,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Pbuf => pbuf::serve(&args),
        Mode::Monoio => monoio_echo::serve(&args),
    }
}

/// A listening socket with `SO_REUSEADDR`, as the engine binds.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The one place with `unsafe`: the provided buffer ring's memory, shared with the
/// kernel, pushing SQEs whose buffers must outlive the operation, and taking ownership of
/// an accepted descriptor.
mod ring_mem {
    use std::alloc::{alloc_zeroed, Layout};
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicU16, Ordering};

    use io_uring::{squeue, types::BufRingEntry, Submitter};

    /// A provided buffer ring registered with an io_uring: `count` entries pointing at
    /// `count` buffers of `size` bytes, all in memory allocated once and never freed (the
    /// ring lives as long as the process).
    pub(crate) struct BufRing {
        entries: *mut BufRingEntry,
        data: *mut u8,
        count: u16,
        size: u32,
        /// Our tail: entries written so far (the kernel sees it once published).
        tail: u16,
        /// Buffers given to the kernel and not yet handed back in a completion.
        pub(crate) in_ring: u32,
    }

    impl BufRing {
        /// Allocates and registers a ring of `count` buffers (a power of two) of `size`
        /// bytes as group `bgid`, every buffer in it.
        pub(crate) fn new(
            submitter: &Submitter<'_>,
            count: u16,
            size: u32,
            bgid: u16,
        ) -> io::Result<Self> {
            if !count.is_power_of_two() || count > 32768 || size == 0 {
                return Err(io::Error::other(
                    "--buffers must be a power of two <= 32768",
                ));
            }
            let entries_layout =
                Layout::from_size_align(count as usize * std::mem::size_of::<BufRingEntry>(), 4096)
                    .map_err(io::Error::other)?;
            let data_layout = Layout::from_size_align(count as usize * size as usize, 4096)
                .map_err(io::Error::other)?;
            // SAFETY: both layouts have a non-zero size (count and size are non-zero).
            // The allocations are never freed: the kernel may use them until the ring is
            // destroyed, which happens at exit.
            let (entries, data) = unsafe {
                (
                    alloc_zeroed(entries_layout).cast::<BufRingEntry>(),
                    alloc_zeroed(data_layout),
                )
            };
            if entries.is_null() || data.is_null() {
                return Err(io::ErrorKind::OutOfMemory.into());
            }
            // SAFETY: `entries` is page-aligned, holds `count` entries and stays valid for
            // the life of the process (never freed), as registration requires.
            unsafe { submitter.register_buf_ring(entries as u64, count, bgid)? };
            let mut ring = Self {
                entries,
                data,
                count,
                size,
                tail: 0,
                in_ring: 0,
            };
            for bid in 0..count {
                ring.give_back(bid);
            }
            ring.publish();
            Ok(ring)
        }

        /// The first `len` bytes of buffer `bid`, which a completion just handed to us.
        pub(crate) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
            assert!(bid < self.count && len <= self.size as usize);
            // SAFETY: buffer `bid` lies inside `data` (checked above) and belongs to us
            // from its completion until `give_back(bid)`: the kernel writes a buffer only
            // between taking it from the ring and completing with it. The caller gives it
            // back only after it is done with this slice (the borrow of `self` ends first).
            unsafe {
                std::slice::from_raw_parts(self.data.add(bid as usize * self.size as usize), len)
            }
        }

        /// Where buffer `bid` starts (for iovecs; only the kernel reads through it).
        pub(crate) fn addr(&self, bid: u16) -> *const u8 {
            self.data
                .wrapping_add(bid as usize * self.size as usize)
                .cast_const()
        }

        /// Puts buffer `bid` back in the ring (seen by the kernel at `publish`).
        pub(crate) fn give_back(&mut self, bid: u16) {
            let slot = (self.tail & (self.count - 1)) as usize;
            // SAFETY: `slot < count`, so the entry is inside the ring's allocation; the
            // kernel only reads entries between its head and the published tail, and this
            // one is past the published tail. The tail field (in entry 0's `resv`) is not
            // written here.
            unsafe {
                let entry = &mut *self.entries.add(slot);
                entry.set_addr(self.data.add(bid as usize * self.size as usize) as u64);
                entry.set_len(self.size);
                entry.set_bid(bid);
            }
            self.tail = self.tail.wrapping_add(1);
            self.in_ring += 1;
        }

        /// Makes the entries written since the last call visible to the kernel.
        pub(crate) fn publish(&self) {
            // SAFETY: the tail is a u16 inside the ring's first entry, aligned for it, and
            // read by the kernel concurrently: an atomic store with release ordering makes
            // the entries written before it visible first.
            unsafe {
                let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
                (*tail).store(self.tail, Ordering::Release);
            }
        }
    }

    /// Owns the descriptor a successful accept completion returned.
    pub(crate) fn adopt(fd: i32) -> OwnedFd {
        assert!(fd >= 0);
        // SAFETY: an accept completion's result is a new descriptor nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Pushes `sqe`, submitting first when the queue is full.
    ///
    /// The caller guarantees that whatever `sqe` points to (a `Send`'s bytes) stays in
    /// place and unchanged until its completion; the server only sends from a connection's
    /// `flight` buffer, which it neither touches nor frees until the send completes.
    pub(crate) fn push(ring: &mut io_uring::IoUring, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: see above: the entry's buffers outlive the operation.
            if unsafe { ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }
}

mod pbuf {
    use super::*;
    use crate::ring_mem::{adopt, push, BufRing};

    const BGID: u16 = 0;
    const ACCEPT: u64 = u64::MAX;
    const RECV: u64 = 0;
    const SEND: u64 = 1;
    const NONE: u32 = u32::MAX;
    const NO_BID: u16 = u16::MAX;
    /// Most ring buffers one send takes (one `writev`).
    const MAX_IOV: usize = 64;

    /// Flags of a connection.
    const RECV_ARMED: u8 = 1;
    const SENDING: u8 = 2;
    const CLOSING: u8 = 4;
    const STARVED: u8 = 8;
    const QUEUED: u8 = 16;
    /// The send in flight is of held ring buffers (else of the `flight` copy).
    const RING_SEND: u8 = 32;

    /// A connection: 24 bytes, no heap while idle.
    ///
    /// Received bytes are echoed from the ring buffers they arrived in: the connection
    /// holds those buffers (`head`..`tail`, linked through `Server::next`) until they are
    /// sent, at most `--max-held` of them; past that, or while a copy is pending, bytes are
    /// copied to `out` (an output pool index) and their buffer goes back to the ring at
    /// once, so a slow reader cannot drain the ring. `flight` is what the send in flight
    /// uses: an iovec array (ring send) or the copy being sent, both pool indexes.
    struct Conn {
        /// `None` once closed (the slot is free).
        fd: Option<OwnedFd>,
        head: u16,
        tail: u16,
        held: u16,
        out: u32,
        flight: u32,
        /// Bytes already sent of the head buffer (ring send) or of the copy in flight.
        sent: u32,
        flags: u8,
    }

    const _: () = assert!(std::mem::size_of::<Conn>() == 24);

    fn raw(conn: &Conn) -> RawFd {
        conn.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    fn user_data(slot: u32, op: u64) -> u64 {
        (slot as u64) << 8 | op
    }

    struct Server {
        // Field order: the ring is dropped (closed) before anything it points into.
        ring: IoUring,
        bufs: BufRing,
        /// Per ring buffer held by a connection: the next one it holds, and its length.
        next: Vec<u16>,
        len: Vec<u32>,
        max_held: u16,
        conns: Vec<Conn>,
        free_slots: Vec<u32>,
        /// Copies to send; `free_out` lists the unused ones.
        pool: Vec<Vec<u8>>,
        free_out: Vec<u32>,
        /// iovec arrays of ring sends in flight; `free_iov` lists the unused ones.
        iov_pool: Vec<Vec<libc::iovec>>,
        free_iov: Vec<u32>,
        /// Connections with output to start sending at the end of the turn.
        queued: Vec<u32>,
        /// Connections whose receive ended on an empty ring, oldest first.
        starved: Vec<u32>,
        /// Scratch: the starved connections re-armed this turn.
        rearm: Vec<u32>,
        listener: RawFd,
    }

    pub(crate) fn serve(args: &Args) -> io::Result<()> {
        let listener = listen(args.addr)?;
        let mut builder = IoUring::builder();
        builder
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(args.ring_entries * 4);
        let ring = builder.build(args.ring_entries)?;
        let bufs = BufRing::new(&ring.submitter(), args.buffers, args.buffer_size, BGID)?;
        let mut server = Server {
            ring,
            bufs,
            next: vec![NO_BID; args.buffers as usize],
            len: vec![0; args.buffers as usize],
            max_held: args.max_held,
            conns: Vec::new(),
            free_slots: Vec::new(),
            pool: Vec::new(),
            free_out: Vec::new(),
            iov_pool: Vec::new(),
            free_iov: Vec::new(),
            queued: Vec::new(),
            starved: Vec::new(),
            rearm: Vec::new(),
            listener: listener.as_raw_fd(),
        };
        server.arm_accept()?;
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            // One io_uring_enter per turn: submits everything the last turn queued.
            match server.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
            cqes.clear();
            cqes.extend(
                server
                    .ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for &(data, result, flags) in &cqes {
                if data == ACCEPT {
                    server.accepted(result, flags)?;
                } else if data & 0xFF == RECV {
                    server.received((data >> 8) as u32, result, flags)?;
                } else {
                    server.sent((data >> 8) as u32, result)?;
                }
            }
            server.bufs.publish();
            server.end_turn()?;
        }
    }

    fn take<T>(pool: &mut Vec<Vec<T>>, free: &mut Vec<u32>) -> u32 {
        free.pop().unwrap_or_else(|| {
            pool.push(Vec::new());
            (pool.len() - 1) as u32
        })
    }

    impl Server {
        fn arm_accept(&mut self) -> io::Result<()> {
            let sqe = opcode::AcceptMulti::new(types::Fd(self.listener))
                .build()
                .user_data(ACCEPT);
            push(&mut self.ring, &sqe)
        }

        fn arm_recv(&mut self, slot: u32) -> io::Result<()> {
            let conn = &mut self.conns[slot as usize];
            conn.flags |= RECV_ARMED;
            let sqe = opcode::RecvMulti::new(types::Fd(raw(conn)), BGID)
                .build()
                .user_data(user_data(slot, RECV));
            push(&mut self.ring, &sqe)
        }

        fn accepted(&mut self, result: i32, flags: u32) -> io::Result<()> {
            if !cqueue::more(flags) {
                self.arm_accept()?;
            }
            if result < 0 {
                eprintln!("accept: {}", io::Error::from_raw_os_error(-result));
                return Ok(());
            }
            let fd = adopt(result);
            // Best effort, as the engine does: a failure only costs latency.
            let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
            let conn = Conn {
                fd: Some(fd),
                head: NO_BID,
                tail: NO_BID,
                held: 0,
                out: NONE,
                flight: NONE,
                sent: 0,
                flags: 0,
            };
            let slot = match self.free_slots.pop() {
                Some(slot) => {
                    self.conns[slot as usize] = conn;
                    slot
                }
                None => {
                    self.conns.push(conn);
                    (self.conns.len() - 1) as u32
                }
            };
            self.arm_recv(slot)
        }

        fn received(&mut self, slot: u32, result: i32, flags: u32) -> io::Result<()> {
            let more = cqueue::more(flags);
            if !more {
                self.conns[slot as usize].flags &= !RECV_ARMED;
            }
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.in_ring -= 1;
                if result > 0 {
                    self.echo(slot, bid, result as u32);
                } else {
                    self.bufs.give_back(bid);
                }
            }
            let conn = &mut self.conns[slot as usize];
            if result == -libc::ENOBUFS {
                // The ring ran dry and the multishot receive ended; the unread bytes stay
                // in the socket. Re-armed once buffers are back (`end_turn`).
                if conn.flags & (CLOSING | STARVED) == 0 {
                    conn.flags |= STARVED;
                    self.starved.push(slot);
                }
            } else if result <= 0 {
                self.close(slot);
            } else if !more && conn.flags & CLOSING == 0 {
                // The kernel ended the multishot receive without an error: arm it again.
                self.arm_recv(slot)?;
            }
            Ok(())
        }

        /// Queues `len` bytes of ring buffer `bid` to go back out: the buffer itself if
        /// the connection may hold one more, else a copy (and the buffer goes back).
        fn echo(&mut self, slot: u32, bid: u16, len: u32) {
            let conn = &mut self.conns[slot as usize];
            if conn.flags & CLOSING != 0 {
                self.bufs.give_back(bid);
                return;
            }
            // Held buffers are always older than the copy: none is held while a copy waits
            // or is in flight. While some connection starves (the ring ran dry), nothing is
            // held: every buffer goes back this turn, before the starved receives are
            // re-armed, so a busy connection cannot keep the ring to itself.
            let copying = conn.out != NONE
                || conn.flags & (SENDING | RING_SEND) == SENDING
                || !self.starved.is_empty();
            if !copying && conn.held < self.max_held {
                self.next[bid as usize] = NO_BID;
                self.len[bid as usize] = len;
                if conn.head == NO_BID {
                    conn.head = bid;
                } else {
                    self.next[conn.tail as usize] = bid;
                }
                conn.tail = bid;
                conn.held += 1;
            } else {
                if conn.out == NONE {
                    conn.out = take(&mut self.pool, &mut self.free_out);
                }
                self.pool[conn.out as usize].extend_from_slice(self.bufs.bytes(bid, len as usize));
                self.bufs.give_back(bid);
            }
            if conn.flags & (SENDING | QUEUED) == 0 {
                conn.flags |= QUEUED;
                self.queued.push(slot);
            }
        }

        /// Starts a send if none is in flight: the held ring buffers first (one `Send`,
        /// or a `Writev` of up to 64), then the copy.
        fn start_send(&mut self, slot: u32) -> io::Result<()> {
            let conn = &mut self.conns[slot as usize];
            if conn.flags & SENDING != 0 {
                return Ok(());
            }
            let fd = types::Fd(raw(conn));
            let sqe = if conn.head != NO_BID {
                conn.flags |= SENDING | RING_SEND;
                let first = self.bufs.addr(conn.head).wrapping_add(conn.sent as usize);
                let first_len = self.len[conn.head as usize] - conn.sent;
                if self.next[conn.head as usize] == NO_BID {
                    opcode::Send::new(fd, first, first_len)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                } else {
                    conn.flight = take(&mut self.iov_pool, &mut self.free_iov);
                    let iov = &mut self.iov_pool[conn.flight as usize];
                    iov.clear();
                    iov.push(libc::iovec {
                        iov_base: first as *mut _,
                        iov_len: first_len as usize,
                    });
                    let mut bid = self.next[conn.head as usize];
                    while bid != NO_BID && iov.len() < MAX_IOV {
                        iov.push(libc::iovec {
                            iov_base: self.bufs.addr(bid) as *mut _,
                            iov_len: self.len[bid as usize] as usize,
                        });
                        bid = self.next[bid as usize];
                    }
                    opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32).build()
                }
            } else if conn.out != NONE {
                conn.flags |= SENDING;
                conn.flight = std::mem::replace(&mut conn.out, NONE);
                conn.sent = 0;
                let flight = &self.pool[conn.flight as usize];
                opcode::Send::new(fd, flight.as_ptr(), flight.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            } else {
                return Ok(());
            };
            push(&mut self.ring, &sqe.user_data(user_data(slot, SEND)))
        }

        fn sent(&mut self, slot: u32, result: i32) -> io::Result<()> {
            let conn = &mut self.conns[slot as usize];
            let ring_send = conn.flags & RING_SEND != 0;
            conn.flags &= !(SENDING | RING_SEND);
            if ring_send {
                if conn.flight != NONE {
                    self.free_iov
                        .push(std::mem::replace(&mut conn.flight, NONE));
                }
                // Every buffer sent in full goes back to the ring.
                let mut done = result.max(0) as u32;
                while done > 0 {
                    let bid = conn.head;
                    let rest = self.len[bid as usize] - conn.sent;
                    if done < rest {
                        conn.sent += done;
                        break;
                    }
                    done -= rest;
                    conn.sent = 0;
                    conn.head = self.next[bid as usize];
                    conn.held -= 1;
                    self.bufs.give_back(bid);
                }
                if conn.head == NO_BID {
                    conn.tail = NO_BID;
                }
            } else if result >= 0 {
                conn.sent += result as u32;
                if (conn.sent as usize) < self.pool[conn.flight as usize].len() {
                    // The rest of the copy: put it back in front of anything newer.
                    let flight = std::mem::replace(&mut conn.flight, NONE);
                    let sent = conn.sent as usize;
                    let rest = self.pool[flight as usize].split_off(sent);
                    if conn.out != NONE {
                        let newer = std::mem::take(&mut self.pool[conn.out as usize]);
                        self.pool[flight as usize] = rest;
                        self.pool[flight as usize].extend_from_slice(&newer);
                        self.pool[conn.out as usize] = newer;
                        let out = conn.out;
                        conn.out = flight;
                        self.recycle(out);
                    } else {
                        self.pool[flight as usize] = rest;
                        conn.out = flight;
                    }
                } else {
                    let done = std::mem::replace(&mut conn.flight, NONE);
                    self.recycle(done);
                }
                self.conns[slot as usize].sent = 0;
            }
            if result < 0 || self.conns[slot as usize].flags & CLOSING != 0 {
                self.close(slot);
                return Ok(());
            }
            self.start_send(slot)
        }

        fn recycle(&mut self, out: u32) {
            let buf = &mut self.pool[out as usize];
            buf.clear();
            if buf.capacity() > 64 * 1024 {
                buf.shrink_to(64 * 1024);
            }
            self.free_out.push(out);
        }

        /// Starts closing: the receive is ended (`shutdown`), and the socket is closed,
        /// its buffers given back and the slot freed once no operation on it is left.
        fn close(&mut self, slot: u32) {
            let conn = &mut self.conns[slot as usize];
            if conn.flags & CLOSING == 0 {
                conn.flags |= CLOSING;
                if conn.flags & RECV_ARMED != 0 {
                    // Ends the multishot receive (closing alone would not: the ring holds
                    // a reference to the socket).
                    if let Some(fd) = &conn.fd {
                        let _ = socket2::SockRef::from(fd).shutdown(std::net::Shutdown::Both);
                    }
                }
            }
            if conn.flags & (RECV_ARMED | SENDING | QUEUED | STARVED) != 0 {
                return;
            }
            // No operation uses the descriptor or the buffers any more.
            conn.fd = None;
            let mut bid = std::mem::replace(&mut conn.head, NO_BID);
            conn.tail = NO_BID;
            conn.held = 0;
            conn.sent = 0;
            let (out, flight) = (conn.out, conn.flight);
            conn.out = NONE;
            conn.flight = NONE;
            while bid != NO_BID {
                self.bufs.give_back(bid);
                bid = self.next[bid as usize];
            }
            for i in [out, flight] {
                if i != NONE {
                    self.recycle(i);
                }
            }
            self.free_slots.push(slot);
        }

        /// The end of a loop turn: starved receives re-armed if buffers are back, and
        /// every connection with new output starts a send.
        fn end_turn(&mut self) -> io::Result<()> {
            if self.bufs.in_ring > 0 && !self.starved.is_empty() {
                // First come, first re-armed, no more than there are buffers: one that
                // starves again queues behind those still waiting, so the ring goes round.
                let mut starved = std::mem::take(&mut self.rearm);
                let n = (self.bufs.in_ring as usize).min(self.starved.len());
                starved.extend(self.starved.drain(..n));
                for &slot in &starved {
                    let conn = &mut self.conns[slot as usize];
                    conn.flags &= !STARVED;
                    if conn.flags & CLOSING != 0 {
                        self.close(slot);
                    } else {
                        self.arm_recv(slot)?;
                    }
                }
                starved.clear();
                self.rearm = starved;
            }
            let mut queued = std::mem::take(&mut self.queued);
            for &slot in &queued {
                let conn = &mut self.conns[slot as usize];
                conn.flags &= !QUEUED;
                if conn.flags & CLOSING != 0 {
                    self.close(slot);
                } else {
                    self.start_send(slot)?;
                }
            }
            queued.clear();
            self.queued = queued;
            Ok(())
        }
    }
}

mod monoio_echo {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    use monoio::net::{TcpListener, TcpStream};
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

    use super::*;

    /// The engine's first and smallest read (`MIN_READ`) and its largest (`MAX_READ`).
    const MIN_READ: usize = 512;
    const MAX_READ: usize = 64 * 1024;

    pub(crate) fn serve(args: &Args) -> io::Result<()> {
        let listener = listen(args.addr)?;
        match args.driver.as_str() {
            "epoll" | "legacy" => RuntimeBuilder::<LegacyDriver>::new()
                .with_entries(args.ring_entries)
                .build()?
                .block_on(accept_loop(listener)),
            _ => {
                // The engine's ring: SINGLE_ISSUER and DEFER_TASKRUN (engine/src/rt/driver.rs).
                let mut uring = IoUring::builder();
                uring.setup_single_issuer().setup_defer_taskrun();
                RuntimeBuilder::<IoUringDriver>::new()
                    .with_entries(args.ring_entries)
                    .uring_builder(uring)
                    .build()?
                    .block_on(accept_loop(listener))
            }
        }
    }

    async fn accept_loop(listener: std::net::TcpListener) -> io::Result<()> {
        // The epoll driver needs a non-blocking listener (a blocking accept would stall the
        // thread); io_uring does not mind.
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            monoio::spawn(echo(stream));
        }
    }

    /// Reads into an owned buffer sized as the engine's reader sizes it, writes it back.
    async fn echo(mut stream: TcpStream) {
        let mut size = MIN_READ;
        let mut buf = Vec::with_capacity(size);
        loop {
            let offered = buf.capacity();
            let (result, returned) = stream.read(buf).await;
            buf = returned;
            let read = match result {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let (result, returned) = stream.write_all(buf).await;
            buf = returned;
            if result.is_err() {
                return;
            }
            buf.clear();
            if read == offered {
                size = (size * 2).min(MAX_READ);
            } else if read < size / 4 {
                size = (size / 2).max(MIN_READ);
            }
            if buf.capacity() < size {
                buf.reserve(size);
            } else if buf.capacity() > 2 * size {
                buf = Vec::with_capacity(size);
            }
        }
    }
}

//! The read side of a link, shared by server peers and clients: read into the connection's
//! receive buffer, let the [`Connection`](crate::proto::Connection) take messages out of
//! it, and hand each data message to the endpoint's dispatch.
//!
//! The buffer grows with the bytes that actually arrive, never with a length a frame
//! header merely declares: a peer that announces a 16 MiB frame and sends 14 bytes costs a
//! read's worth of memory (and the body timeout ends it).

use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::link::Link;
use crate::proto::received::Received;
use crate::rt::io::{is_canceled, read_more, read_more_cancelable, read_ready, ReadCanceller};
use crate::rt::net::{ReadHalf, SplitRead};
use crate::rt::{first, First};

/// Smallest read a connection asks the kernel for, and the buffer a new or idle
/// connection holds under io_uring, where a pending read pins its buffer. Under epoll an
/// idle connection holds none (see [`read_loop`]).
pub(crate) const MIN_READ: usize = 512;
/// Reads in a row that completed without waiting after which the read loop lets the shard's
/// other connections run (see [`crate::rt::let_others_run`]): 8 full reads are 512 KiB.
/// Reads that wait (io_uring's always do) never count.
const EAGER_READS_PER_TURN: u32 = 8;
/// Under io_uring, reads that each arrive within [`BUSY_GAP`] of the one before, in a row,
/// after which the reader keeps a read in the kernel while it waits (see [`read_loop`]).
const BUSY_STREAK: u8 = 3;
/// The longest gap between two reads of a busy connection: 100 ms keeps a client sending
/// 10 messages a second or more (a game's input, a stream) on the cheaper reads.
const BUSY_GAP: Duration = Duration::from_millis(100);
/// Largest read size the adaptation grows to. Per-read costs dominate small reads (an
/// io_uring completion each), so a busy connection reads in big chunks.
const MAX_READ: usize = 64 * 1024;

/// Small reads in a row (each under a quarter of the read size) after which the read size
/// starts to halve. One is not enough: a burst larger than the buffer arrives as a full
/// read and a small tail, and shrinking on the tail made the next burst split again (an
/// extra `recv` per burst on small echo).
const SHRINK_AFTER: u8 = 4;

/// Adapts a connection's read size to its traffic: doubles while reads fill the buffer,
/// halves while they use little of it ([`SHRINK_AFTER`] small reads in a row, then on
/// each), and gives a large buffer back once it is drained.
struct ReadSizer {
    size: usize,
    /// Reads in a row that used under a quarter of the read size (saturating).
    small_reads: u8,
}

impl ReadSizer {
    /// Makes room in `buf` for the next read towards `wanted` bytes in total (the frame at
    /// its front). The room offered is at most what the buffer already holds (or one
    /// largest read): a large frame is reserved by doubling as it arrives, so memory
    /// follows the bytes received, not the length a header declares.
    fn prepare(&self, buf: &mut BytesMut, wanted: usize) {
        if buf.is_empty() && buf.capacity() > 2 * self.size {
            *buf = BytesMut::with_capacity(self.size);
        }
        let need = wanted
            .saturating_sub(buf.len())
            .min(buf.len().max(MAX_READ))
            .max(self.size);
        if buf.capacity() - buf.len() < need {
            buf.reserve(need);
        }
    }

    /// Learns from a read of `read` bytes into `offered` bytes of room.
    fn observe(&mut self, read: usize, offered: usize) {
        if read == offered {
            self.size = (self.size * 2).min(MAX_READ);
            self.small_reads = 0;
        } else if read < self.size / 4 {
            self.small_reads = self.small_reads.saturating_add(1);
            if self.small_reads >= SHRINK_AFTER {
                self.size = (self.size / 2).max(MIN_READ);
            }
        } else {
            self.small_reads = 0;
        }
    }

    /// A sizer starting at the smallest read.
    fn new() -> Self {
        Self {
            size: MIN_READ,
            small_reads: 0,
        }
    }
}

/// Why an HTTP head (upgrade request or response) could not be read.
pub(crate) enum HeadError<E> {
    /// The bytes are not an acceptable head.
    Invalid(E),
    /// The socket failed or closed first (`UnexpectedEof`).
    Io(io::Error),
}

/// Reads until `parse` recognises a complete head at the start of `buf`, and removes the
/// head's bytes; whatever followed it (early frames) stays in `buf`.
pub(crate) async fn read_head<R, T, E>(
    reader: &mut R,
    buf: &mut BytesMut,
    mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<T, HeadError<E>>
where
    R: ReadHalf,
{
    loop {
        if let Some((head, consumed)) = parse(buf).map_err(HeadError::Invalid)? {
            let _ = buf.split_to(consumed);
            return Ok(head);
        }
        buf.reserve(MIN_READ);
        let (result, returned) = read_more(reader, std::mem::take(buf)).await;
        *buf = returned;
        match result {
            Ok(0) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(error) => return Err(HeadError::Io(error)),
        }
    }
}

/// Why a [`read_loop`] returned.
pub(crate) enum Stopped<B> {
    /// The connection no longer receives; why is its [`end`](crate::proto::Connection::end).
    Ended,
    /// `on_message` broke with this value; the bytes read past the message come with it
    /// (an in-band session resume moves them, with the socket, to another connection).
    Paused(B, BytesMut),
    /// The idle sweep asked the reader to park ([`Link::sweep_idle`]): it was waiting for
    /// the socket with an empty buffer, so it leaves nothing behind, no bytes and no read
    /// in the kernel.
    Parked,
}

/// Reads and dispatches until the connection stops receiving, `on_message` breaks, or the
/// idle sweep parks the reader (see [`Stopped`]). `buf` may already hold bytes that
/// followed the handshake.
///
/// While nothing waits in the buffer the loop waits for the socket to be readable without
/// holding a buffer, so an idle connection holds none and can be parked whole. Under epoll
/// that is free: a read that would wait holds nothing (it is tried first). Under io_uring
/// a submitted read pins its buffer in the kernel and cannot be taken back without losing
/// what it may have read, so a quiet connection waits for readiness and then reads what
/// arrived with a non-blocking `recv` ([`read_ready`]), one system call more per message;
/// a busy one ([`BUSY_STREAK`] reads in a row, each within [`BUSY_GAP`] of the last) keeps
/// a read in the kernel instead, the cheapest way to receive. When a busy connection that
/// fell silent is asked to park, that read is cancelled ([`read_more_cancelable`]): it
/// parks if the cancel won, and handles the bytes if the read completed first. A frame
/// that arrived in part is read on with the executor's own reads.
///
/// Returns an `async move` block rather than being an `async fn`, so the arguments live in
/// the future's state once instead of twice: this state is most of what a connection in
/// use costs.
#[allow(clippy::manual_async_fn)] // deliberate, see above
pub(crate) fn read_loop<'a, R: SplitRead, B>(
    reader: &'a mut R,
    mut buf: BytesMut,
    link: &'a Rc<Link>,
    mut on_message: impl FnMut(Received<'_>) -> ControlFlow<B> + 'a,
) -> impl Future<Output = Stopped<B>> + 'a {
    async move {
        let mut sizer = ReadSizer::new();
        let mut now = Instant::now();
        let mut eager_reads = 0u32;
        let readiness = crate::rt::readiness();
        // Reads in a row that each came within `BUSY_GAP` of the one before.
        let mut busy = 0u8;
        // Takes back a busy connection's pending read (io_uring), created on first use.
        let mut canceller: Option<ReadCanceller> = None;
        loop {
            loop {
                let Some(message) = link.conn.borrow_mut().poll_received(now, &mut buf) else {
                    break;
                };
                if let ControlFlow::Break(value) = on_message(message) {
                    return Stopped::Paused(value, buf);
                }
            }
            link.changed();
            if !link.conn.borrow().is_receiving() {
                return Stopped::Ended;
            }
            if eager_reads == EAGER_READS_PER_TURN {
                eager_reads = 0;
                crate::rt::let_others_run().await;
            }
            let wanted = link.conn.borrow().wanted().max(buf.len() + 1);
            let mut waited = false;
            let mut offered;
            let (result, returned) = if buf.is_empty() && (readiness || busy < BUSY_STREAK) {
                // Epoll tries the read first (it costs nothing pending); io_uring waits
                // for readiness first (a read it submitted could not be taken back).
                let mut ready = readiness;
                loop {
                    if ready {
                        sizer.prepare(&mut buf, wanted);
                        offered = buf.capacity();
                        if let Some(done) = read_ready(reader, std::mem::take(&mut buf)).await {
                            break done;
                        }
                    }
                    // Nothing to read: wait holding no buffer.
                    buf = BytesMut::new();
                    waited = true;
                    ready = true;
                    match first(reader.readable(), link.reader_released()).await {
                        First::A(Ok(())) => {}
                        First::A(Err(error)) => {
                            offered = 0;
                            break (Err(error), BytesMut::new());
                        }
                        First::B(true) => return Stopped::Parked,
                        First::B(false) => return Stopped::Ended,
                    }
                }
            } else if buf.is_empty() {
                // A busy connection under io_uring: its read stays in the kernel while it
                // waits. Asked to park, the reader cancels it and parks unless the read
                // completed first (then what it read is handled, and the connection is
                // asked to park again once it has been silent long enough).
                sizer.prepare(&mut buf, wanted);
                offered = buf.capacity();
                waited = true;
                let canceller = canceller.get_or_insert_with(ReadCanceller::default);
                // Not boxed, though it makes every reader's state ~300 bytes larger: a box
                // per read cost 2% of the server's CPU on small echo (perf/ab), and a
                // parked connection holds no reader at all.
                let mut read = std::pin::pin!(read_more_cancelable(reader, buf, canceller));
                match first(read.as_mut(), link.reader_released()).await {
                    First::A(done) => done,
                    First::B(false) => return Stopped::Ended,
                    First::B(true) => {
                        canceller.cancel();
                        // The connection may still end meanwhile (if the cancel were
                        // lost, the read would wait for the peer): dropping the read is
                        // safe, the executor keeps its buffer until the kernel is done.
                        let First::A(done) = first(read, link.reading_stopped()).await else {
                            return Stopped::Ended;
                        };
                        if is_canceled(&done.0) {
                            return Stopped::Parked;
                        }
                        done
                    }
                }
            } else {
                sizer.prepare(&mut buf, wanted);
                offered = buf.capacity() - buf.len();
                let mut race =
                    std::pin::pin!(first(read_more(reader, buf), link.reading_stopped()));
                let outcome = std::future::poll_fn(|cx| {
                    let poll = race.as_mut().poll(cx);
                    waited |= poll.is_pending();
                    poll
                })
                .await;
                let First::A(done) = outcome else {
                    return Stopped::Ended;
                };
                done
            };
            eager_reads = if waited { 0 } else { eager_reads + 1 };
            buf = returned;
            let last = now;
            now = Instant::now();
            busy = if now - last < BUSY_GAP {
                busy.saturating_add(1)
            } else {
                0
            };
            match result {
                Ok(0) => link.conn.borrow_mut().eof(),
                Ok(n) => {
                    sizer.observe(n, offered);
                    link.conn.borrow_mut().received(now);
                }
                Err(error) => link.conn.borrow_mut().io_error(&error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read loop's state is most of what a connection in use holds besides its
    /// buffers (a parked connection holds no reader at all): 400 bytes when this test was
    /// written, 632 before its futures stopped holding copies of their arguments, 448
    /// after, 752 since a busy connection's read can be cancelled to park it (monoio's
    /// cancelable read; boxing it cost 2% of the server's CPU on small echo).
    #[test]
    fn read_loop_state_stays_small() {
        crate::rt::Driver::Epoll
            .block_on(64, async {
                use crate::rt::net::{Splitable, TcpListener, TcpStream};
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let stream = TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .unwrap();
                let (mut reader, _writer) = stream.into_split();
                let link = Link::detached(crate::proto::Wire::Tcp);
                let future = read_loop(&mut reader, BytesMut::new(), &link, |_| {
                    ControlFlow::<()>::Continue(())
                });
                let size = std::mem::size_of_val(&future);
                assert!(size <= 768, "read loop state grew to {size} bytes");
            })
            .unwrap();
    }

    #[test]
    fn read_size_grows_under_load_and_gives_memory_back_when_idle() {
        let mut sizer = ReadSizer::new();
        let mut buf = BytesMut::new();
        sizer.prepare(&mut buf, 1);
        assert_eq!(buf.capacity(), MIN_READ);
        for _ in 0..10 {
            sizer.observe(sizer.size, sizer.size);
        }
        assert_eq!(sizer.size, MAX_READ);
        sizer.prepare(&mut buf, 1);
        assert!(buf.capacity() >= MAX_READ);
        for _ in 0..10 {
            sizer.observe(10, sizer.size);
        }
        assert_eq!(sizer.size, MIN_READ);
        sizer.prepare(&mut buf, 1);
        assert_eq!(
            buf.capacity(),
            MIN_READ,
            "the big buffer is replaced once drained"
        );
    }

    /// Bursts of 16 small frames (1 120 bytes): once the read size has grown to hold one,
    /// each burst is one read. (Shrinking on the small tail of a split burst used to
    /// split every burst in two.)
    #[test]
    fn a_steady_burst_is_read_whole_once_the_size_has_grown() {
        let mut sizer = ReadSizer::new();
        let reads_per_burst = |sizer: &mut ReadSizer| {
            let (mut left, mut reads) = (1120, 0);
            while left > 0 {
                let offered = sizer.size;
                let n = left.min(offered);
                sizer.observe(n, offered);
                left -= n;
                reads += 1;
            }
            reads
        };
        for _ in 0..4 {
            reads_per_burst(&mut sizer);
        }
        for _ in 0..100 {
            assert_eq!(
                reads_per_burst(&mut sizer),
                1,
                "at read size {}",
                sizer.size
            );
        }
    }

    /// A header declaring a 16 MiB frame reserves a read's worth, not 16 MiB; the buffer
    /// then doubles as the frame's bytes actually arrive.
    #[test]
    fn receive_memory_follows_the_bytes_received_not_the_declared_length() {
        let sizer = ReadSizer::new();
        let mut buf = BytesMut::from(&[0x82u8, 127, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4][..]);
        let declared = 14 + (16 << 20);
        sizer.prepare(&mut buf, declared);
        assert!(
            buf.capacity() <= 2 * MAX_READ,
            "a 14-byte header reserved {} bytes",
            buf.capacity()
        );
        let mut reserved = vec![buf.capacity()];
        while buf.len() < declared {
            let room = buf.capacity() - buf.len();
            buf.resize(buf.len() + room.min(declared - buf.len()), 0);
            sizer.prepare(&mut buf, declared);
            assert!(
                buf.capacity() <= 2 * buf.len() + 2 * MAX_READ,
                "at {} held",
                buf.len()
            );
            reserved.push(buf.capacity());
        }
        assert!(reserved.len() < 16, "grows geometrically: {reserved:?}");
    }
}

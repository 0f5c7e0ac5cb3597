//! Reads and writes in the executor's owned-buffer style: a buffer is handed to the kernel
//! and comes back with the result (completion I/O needs that; epoll works the same way).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use monoio::buf::SliceMut;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::BufResult;

use super::net::{ReadHalf, SplitRead, WriteHalf};
use crate::proto::batch::WriteBatch;

/// Reads into the spare capacity of `buf`, after the bytes it already holds (monoio's
/// `read` on a plain `BytesMut` would write from its start); the buffer comes back with
/// the result.
///
/// Returns the executor's read future itself: wrapping it in an `async` block would store
/// the read operation twice (captured, then awaited), and this future lives in every idle
/// connection's task.
pub(crate) fn read_more<R: ReadHalf>(
    reader: &mut R,
    buf: BytesMut,
) -> impl Future<Output = (io::Result<usize>, BytesMut)> + '_ {
    ReadMore {
        read: reader.read(spare(buf)),
    }
}

/// `buf`'s spare capacity, after the bytes it holds, as the slice a read fills.
fn spare(buf: BytesMut) -> SliceMut<BytesMut> {
    let (len, capacity) = (buf.len(), buf.capacity());
    SliceMut::new(buf, len, capacity)
}

/// A [`read_more`] that can be taken back without losing what it read: once `canceller`
/// has cancelled it, it completes with an error that [`is_canceled`] recognises if it
/// read nothing, or else as it would have anyway (the bytes the kernel had already read
/// into the buffer, an end of stream, another error). Under io_uring that is an
/// `AsyncCancel` for the pending receive: whichever the kernel completes first wins, and
/// either way the completion comes back with the buffer.
pub(crate) fn read_more_cancelable<'a, R: SplitRead>(
    reader: &'a mut R,
    buf: BytesMut,
    canceller: &ReadCanceller,
) -> impl Future<Output = (io::Result<usize>, BytesMut)> + 'a {
    ReadMore {
        read: reader.cancelable_read(spare(buf), canceller.0.handle()),
    }
}

/// Cancels the reads started with it ([`read_more_cancelable`]).
#[derive(Default)]
pub(crate) struct ReadCanceller(monoio::io::Canceller);

impl ReadCanceller {
    /// Asks the kernel to cancel every read started with this canceller; reads started
    /// afterwards are not affected.
    pub(crate) fn cancel(&mut self) {
        self.0 = std::mem::take(&mut self.0).cancel();
    }
}

/// Whether a read's result says it was cancelled before it read anything: `ECANCELED`,
/// or `EINTR` for a receive the kernel had handed to one of its io_uring workers (a read
/// that was interrupted read nothing; a partial read reports its count).
pub(crate) fn is_canceled(result: &io::Result<usize>) -> bool {
    matches!(result, Err(error)
        if error.raw_os_error() == Some(libc::ECANCELED)
            || error.kind() == io::ErrorKind::Interrupted)
}

pin_project_lite::pin_project! {
    /// The executor's read of a slice, giving back the whole buffer.
    struct ReadMore<F> {
        #[pin]
        read: F,
    }
}

impl<F> Future for ReadMore<F>
where
    F: Future<Output = BufResult<usize, SliceMut<BytesMut>>>,
{
    type Output = (io::Result<usize>, BytesMut);
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .read
            .poll(cx)
            .map(|(result, slice)| (result, slice.into_inner()))
    }
}

/// Under epoll ([`super::readiness`]): reads into `buf` if the socket has bytes now, else
/// returns `None` at once, having dropped the read and `buf` with it. A read that would wait
/// holds nothing in the kernel under epoll, so dropping it loses nothing, and the caller can
/// wait for readability ([`super::net::SplitRead::readable`]) without a buffer. Not for
/// io_uring, where the read is already in the kernel's hands and dropping it cancels it.
pub(crate) fn read_now<R: ReadHalf>(
    reader: &mut R,
    buf: BytesMut,
) -> impl Future<Output = Option<(io::Result<usize>, BytesMut)>> + '_ {
    debug_assert!(super::readiness(), "read_now is for epoll only");
    NowOrNever {
        future: read_more(reader, buf),
    }
}

/// Reads into `buf`'s spare capacity if the socket has bytes now, else returns `None` at
/// once (`buf` dropped), leaving nothing pending in the kernel: what a reader does when
/// the socket may be readable, before it waits for that again. Under epoll this is the
/// executor's own read polled once ([`read_now`], which keeps the executor's readiness
/// state right); under io_uring, where a submitted read stays in the kernel's hands
/// until it completes, a plain non-blocking `recv`.
pub(crate) async fn read_ready<R: SplitRead>(
    reader: &mut R,
    mut buf: BytesMut,
) -> Option<(io::Result<usize>, BytesMut)> {
    if super::readiness() {
        return read_now(reader, buf).await;
    }
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is `buf`'s unused capacity, valid for writes of its length; `recv`
    // writes at most that many bytes and reports how many.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::recv(
            reader.raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if let Ok(n) = usize::try_from(n) {
        // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_len(buf.len() + n)
        };
        return Some((Ok(n), buf));
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
        _ => Some((Err(error), buf)),
    }
}

pin_project_lite::pin_project! {
    /// A future polled once: its output if it had one, else `None` (and it is dropped).
    struct NowOrNever<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for NowOrNever<F> {
    type Output = Option<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.project().future.poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    }
}

/// Writes a batch: `send` for one buffer, `writev` for several. The batch comes back with
/// the result.
pub(crate) async fn write_batch<W: WriteHalf>(
    writer: &mut W,
    batch: WriteBatch,
) -> (io::Result<usize>, WriteBatch) {
    let prepared = Prepared::new(batch);
    let (result, prepared) = if prepared.0.len() == 1 {
        writer.write(prepared).await
    } else {
        writer.writev(prepared).await
    };
    (result, prepared.0)
}

/// A batch whose iovec array was just rebuilt: only this type is handed to the kernel, and
/// the batch cannot change while wrapped, so no stale iovec can reach a write.
struct Prepared(WriteBatch);

impl Prepared {
    fn new(mut batch: WriteBatch) -> Self {
        batch.prepare();
        Self(batch)
    }
}

/// Writes all of `data` (a handshake's answer).
pub(crate) async fn write_all<W: WriteHalf>(writer: &mut W, data: Vec<u8>) -> io::Result<()> {
    writer.write_all(data).await.0.map(|_| ())
}

/// Shuts the write side down (the peer reads end of stream).
pub(crate) async fn shutdown<W: WriteHalf>(writer: &mut W) {
    let _ = AsyncWriteRent::shutdown(writer).await;
}

// SAFETY: as for `IoVecBuf` below: the first iovec points into a `Bytes` owned
// by `frames` or into `tail`'s heap buffer, neither of which is touched until the runtime
// returns the batch. With no prepared iovec it describes an empty buffer.
#[allow(unsafe_code)]
unsafe impl monoio::buf::IoBuf for Prepared {
    fn read_ptr(&self) -> *const u8 {
        self.0
            .iovecs()
            .first()
            .map_or(std::ptr::NonNull::dangling().as_ptr(), |v| {
                v.iov_base as *const u8
            })
    }

    fn bytes_init(&self) -> usize {
        self.0.iovecs().first().map_or(0, |v| v.iov_len)
    }
}

// SAFETY: `iovecs` was rebuilt by `prepare` from `frames` and `tail` when the batch was
// wrapped (`Prepared::new`), and the wrapped batch cannot be changed, each entry points into a `Bytes` owned by `frames` or
// into `tail`'s heap buffer, and none of them is touched (so nothing moves or is freed)
// until the runtime returns the batch. Moving the `WriteBatch` itself does not move the
// heap memory the entries point to. The kernel only reads through these pointers (send,
// writev).
#[allow(unsafe_code)]
unsafe impl monoio::buf::IoVecBuf for Prepared {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.0.iovecs().as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.0.iovecs().len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A batch of one buffer goes out with `send`, through `IoBuf`: it must describe the
    /// unwritten rest of that buffer, whether a shared frame or the tail.
    #[test]
    fn a_single_buffer_batch_describes_its_unwritten_bytes() {
        use monoio::buf::IoBuf;
        let unwritten = |batch: WriteBatch| {
            let prepared = Prepared::new(batch);
            // SAFETY: `read_ptr` and `bytes_init` describe memory the batch owns.
            #[allow(unsafe_code)]
            let bytes = unsafe {
                std::slice::from_raw_parts(prepared.read_ptr(), prepared.bytes_init()).to_vec()
            };
            (bytes, prepared.0)
        };
        let (bytes, mut batch) = unwritten(WriteBatch::new());
        assert_eq!(bytes, b"", "an empty batch describes nothing");

        batch.push(Bytes::from_static(b"frame"));
        batch.consume(2);
        assert_eq!(batch.len(), 1);
        let (bytes, mut batch) = unwritten(batch);
        assert_eq!(bytes, b"ame");
        batch.consume(3);

        let mut tail = b"small frames".to_vec();
        batch.swap_tail(&mut tail);
        batch.consume(6);
        assert_eq!(batch.len(), 1);
        let (bytes, _) = unwritten(batch);
        assert_eq!(bytes, b"frames");
    }

    /// A cancelable read taken back: with nothing to read it ends cancelled; with bytes
    /// that arrived before the cancel it ends with them, so cancelling never loses what
    /// was read. io_uring only (under epoll no read waits in the kernel); skipped where
    /// io_uring is unavailable.
    #[test]
    fn a_cancelled_read_ends_cancelled_or_with_what_it_read() {
        use std::io::Write;
        use std::time::Duration;

        use crate::rt::net::{Splitable, TcpStream};

        /// Polls `future` once (a read is then queued for the kernel): whether it waits.
        async fn submitted<F: Future>(mut future: Pin<&mut F>) -> bool {
            std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_pending())).await
        }

        let outcome = crate::rt::Driver::Uring.block_on(64, async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut peer, _) = listener.accept().unwrap();
            let (mut reader, _writer) = stream.into_split();
            let mut canceller = ReadCanceller::default();

            // Nothing to read: the read ends cancelled.
            {
                let buf = BytesMut::with_capacity(64);
                let mut read = std::pin::pin!(read_more_cancelable(&mut reader, buf, &canceller));
                assert!(submitted(read.as_mut()).await, "the read waits");
                crate::rt::sleep(Duration::from_millis(10)).await;
                canceller.cancel();
                let (result, _) = read.await;
                assert!(is_canceled(&result), "{result:?}");
            }

            // Bytes arrive, the receive completes, then the cancel: the bytes come back.
            let buf = BytesMut::with_capacity(64);
            let mut read = std::pin::pin!(read_more_cancelable(&mut reader, buf, &canceller));
            assert!(submitted(read.as_mut()).await, "the read waits");
            peer.write_all(b"kept").unwrap();
            crate::rt::sleep(Duration::from_millis(20)).await;
            canceller.cancel();
            let (result, buf) = read.await;
            assert_eq!(result.unwrap(), 4);
            assert_eq!(&buf[..], b"kept");
        });
        if let Err(error) = outcome {
            eprintln!("io_uring unavailable, skipped: {error}");
        }
    }
}

//! A batch of outgoing frames handed to one write, the engine's only `unsafe` code:
//! monoio's `IoVecBuf` and `IoBuf` are unsafe traits because the kernel reads the iovec
//! array and the memory it points to while the runtime owns the batch.
//!
//! A batch of one buffer (the common case: small frames share the outbox's contiguous
//! buffer) goes out with a plain `send` rather than `writev`, which spares the kernel
//! importing an iovec array (`copy_iovec_from_user`, `vfs_writev`, `fdget_pos`).

use bytes::{Buf, Bytes};

/// A written contiguous buffer larger than this is freed rather than reused, so one burst
/// does not pin its memory for the connection's lifetime.
const MAX_KEPT_TAIL: usize = 64 * 1024;

/// Frames to write with one `send` or `writev`, and the iovec array describing them:
/// shared frames first, then the outbox's contiguous small frames (`tail`).
pub(crate) struct WriteBatch {
    frames: Vec<Bytes>,
    tail: Vec<u8>,
    /// Bytes of `tail` already written.
    tail_written: usize,
    iovecs: Vec<libc::iovec>,
}

impl WriteBatch {
    pub(crate) fn new() -> Self {
        Self {
            frames: Vec::new(),
            tail: Vec::new(),
            tail_written: 0,
            iovecs: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.tail_written == self.tail.len()
    }

    /// Separate buffers in the batch.
    pub(crate) fn len(&self) -> usize {
        self.frames.len() + usize::from(self.tail_written < self.tail.len())
    }

    pub(crate) fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.frames.push(frame);
        }
    }

    /// Takes `tail` (written after the frames) and leaves the batch's previous, written
    /// buffer in its place, emptied, for the caller to fill again.
    pub(crate) fn swap_tail(&mut self, tail: &mut Vec<u8>) {
        debug_assert_eq!(
            self.tail_written,
            self.tail.len(),
            "the old tail is written"
        );
        self.tail.clear();
        if self.tail.capacity() > MAX_KEPT_TAIL {
            self.tail = Vec::new();
        }
        self.tail_written = 0;
        std::mem::swap(&mut self.tail, tail);
    }

    /// Rebuilds the iovec array from the frames; call before handing the batch to a write.
    pub(crate) fn prepare(&mut self) {
        self.iovecs.clear();
        self.iovecs.extend(self.frames.iter().map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        }));
        let tail = &self.tail[self.tail_written..];
        if !tail.is_empty() {
            self.iovecs.push(libc::iovec {
                iov_base: tail.as_ptr() as *mut libc::c_void,
                iov_len: tail.len(),
            });
        }
    }

    /// Drops the first `written` bytes: whole frames, then the front of a partial one,
    /// then the front of the tail.
    pub(crate) fn consume(&mut self, mut written: usize) {
        let mut done = 0;
        for frame in &mut self.frames {
            if written >= frame.len() {
                written -= frame.len();
                done += 1;
            } else {
                frame.advance(written);
                written = 0;
                break;
            }
        }
        self.frames.drain(..done);
        self.tail_written = (self.tail_written + written).min(self.tail.len());
    }

    /// The bytes the prepared iovecs describe, in order (tests).
    #[cfg(test)]
    pub(crate) fn iovec_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.frames.iter().flat_map(|f| f.iter().copied()).collect();
        out.extend_from_slice(&self.tail[self.tail_written..]);
        out
    }
}

// SAFETY: as for `IoVecBuf` below: the first prepared iovec points into a `Bytes` owned
// by `frames` or into `tail`'s heap buffer, neither of which is touched until the runtime
// returns the batch. With no prepared iovec it describes an empty buffer.
#[allow(unsafe_code)]
unsafe impl monoio::buf::IoBuf for WriteBatch {
    fn read_ptr(&self) -> *const u8 {
        self.iovecs
            .first()
            .map_or(std::ptr::NonNull::dangling().as_ptr(), |v| {
                v.iov_base as *const u8
            })
    }

    fn bytes_init(&self) -> usize {
        self.iovecs.first().map_or(0, |v| v.iov_len)
    }
}

// SAFETY: `iovecs` is rebuilt by `prepare` from `frames` and `tail` right before the
// batch is given to the runtime, each entry points into a `Bytes` owned by `frames` or
// into `tail`'s heap buffer, and none of them is touched (so nothing moves or is freed)
// until the runtime returns the batch. Moving the `WriteBatch` itself does not move the
// heap memory the entries point to. The kernel only reads through these pointers (send,
// writev).
#[allow(unsafe_code)]
unsafe impl monoio::buf::IoVecBuf for WriteBatch {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iovecs.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.iovecs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_drops_whole_frames_then_advances_a_partial_one() {
        let mut batch = WriteBatch::new();
        batch.push(Bytes::from_static(b"abc"));
        batch.push(Bytes::new());
        batch.push(Bytes::from_static(b"defg"));
        assert_eq!(batch.len(), 2, "empty frames are skipped");
        batch.consume(5);
        batch.prepare();
        assert_eq!(batch.frames, [Bytes::from_static(b"fg")]);
        assert_eq!(batch.iovecs.len(), 1);
        assert_eq!(batch.iovecs[0].iov_len, 2);
        batch.consume(2);
        assert!(batch.is_empty());
    }

    /// A batch of one buffer goes out with `send`, through `IoBuf`: it must describe the
    /// unwritten rest of that buffer, whether a shared frame or the tail.
    #[test]
    fn a_single_buffer_batch_describes_its_unwritten_bytes() {
        use monoio::buf::IoBuf;
        let unwritten = |batch: &WriteBatch| {
            // SAFETY: `read_ptr` and `bytes_init` describe memory the batch owns.
            #[allow(unsafe_code)]
            unsafe {
                std::slice::from_raw_parts(batch.read_ptr(), batch.bytes_init()).to_vec()
            }
        };
        let mut batch = WriteBatch::new();
        batch.prepare();
        assert_eq!(unwritten(&batch), b"", "an empty batch describes nothing");

        batch.push(Bytes::from_static(b"frame"));
        batch.consume(2);
        batch.prepare();
        assert_eq!(batch.len(), 1);
        assert_eq!(unwritten(&batch), b"ame");
        batch.consume(3);

        let mut tail = b"small frames".to_vec();
        batch.swap_tail(&mut tail);
        batch.consume(6);
        batch.prepare();
        assert_eq!(batch.len(), 1);
        assert_eq!(unwritten(&batch), b"frames");
    }
}

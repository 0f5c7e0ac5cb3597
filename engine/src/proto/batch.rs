//! A batch of outgoing frames handed to one write, with the iovec array that describes it
//! to the kernel. Handing it to the kernel is the runtime seam's job (the private module `rt`, whose
//! `IoBuf`/`IoVecBuf` implementations are the engine's only `unsafe` code).
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
#[derive(Default)]
pub struct WriteBatch {
    frames: Vec<Bytes>,
    tail: Vec<u8>,
    /// Bytes of `tail` already written.
    tail_written: usize,
    iovecs: Vec<libc::iovec>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("buffers", &self.len())
            .finish_non_exhaustive()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            frames: Vec::new(),
            tail: Vec::new(),
            tail_written: 0,
            iovecs: Vec::new(),
        }
    }

    /// Whether every byte was written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.tail_written == self.tail.len()
    }

    /// Separate buffers in the batch.
    pub fn len(&self) -> usize {
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

    /// The iovec array [`WriteBatch::prepare`] built.
    pub(crate) fn iovecs(&self) -> &[libc::iovec] {
        &self.iovecs
    }

    /// Drops the first `written` bytes: whole frames, then the front of a partial one,
    /// then the front of the tail.
    pub fn consume(&mut self, mut written: usize) {
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

    /// The unwritten bytes, buffer by buffer, in order: what a driver without iovecs
    /// writes (and what the in-memory test harness delivers).
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        let tail = &self.tail[self.tail_written..];
        self.frames
            .iter()
            .map(|f| &f[..])
            .chain((!tail.is_empty()).then_some(tail))
    }

    /// The unwritten bytes in one buffer (tests).
    #[cfg(test)]
    pub(crate) fn iovec_bytes(&self) -> Vec<u8> {
        self.chunks().collect::<Vec<_>>().concat()
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
}

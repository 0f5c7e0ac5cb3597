//! A batch of outgoing frames handed to one vectored write (`writev`), the engine's only
//! `unsafe` code: monoio's `IoVecBuf` is an unsafe trait because the kernel reads the
//! iovec array and the memory it points to while the runtime owns the batch.

use bytes::{Buf, Bytes};

/// Frames to write with one `writev`, and the iovec array describing them.
pub(crate) struct WriteBatch {
    frames: Vec<Bytes>,
    iovecs: Vec<libc::iovec>,
}

impl WriteBatch {
    pub(crate) fn new() -> Self {
        Self {
            frames: Vec::new(),
            iovecs: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.frames.push(frame);
        }
    }

    /// Rebuilds the iovec array from the frames; call before handing the batch to a write.
    pub(crate) fn prepare(&mut self) {
        self.iovecs.clear();
        self.iovecs.extend(self.frames.iter().map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        }));
    }

    /// Drops the first `written` bytes: whole frames, then the front of a partial one.
    pub(crate) fn consume(&mut self, mut written: usize) {
        let mut done = 0;
        for frame in &mut self.frames {
            if written >= frame.len() {
                written -= frame.len();
                done += 1;
            } else {
                frame.advance(written);
                break;
            }
        }
        self.frames.drain(..done);
    }
}

// SAFETY: `iovecs` is rebuilt by `prepare` from `frames` right before the batch is given
// to the runtime, each entry points into a `Bytes` owned by `frames`, and neither vector
// is touched (so nothing moves or is freed) until the runtime returns the batch. `Bytes`
// memory is immutable and heap-allocated, so moving the `WriteBatch` itself does not move
// the bytes. The kernel only reads through these pointers (writev).
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
}

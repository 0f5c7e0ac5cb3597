//! A connection's queued output, in send order: frames of [`ZERO_COPY_MIN`] bytes and
//! more stay in their own buffers (one iovec each, never copied), smaller ones are copied
//! into one contiguous buffer.
//!
//! Keeping a small frame in its own buffer costs more than copying it: its own iovec and
//! the kernel's per-segment work in the `writev`, its drop after the write, and, for a
//! shared frame (a broadcast), an atomic reference-count increment and decrement. The
//! writer swaps the contiguous buffer out whole and hands back the one it has written, so
//! a busy connection reuses two buffers without allocating.

use std::collections::VecDeque;

use bytes::Bytes;

use super::batch::WriteBatch;
use super::outgoing::ZERO_COPY_MIN;

/// Frames waiting for the connection's writer.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Queued before `tail`, oldest first.
    frames: VecDeque<Bytes>,
    /// Small frames queued after the last of `frames`, copied back to back.
    tail: Vec<u8>,
}

impl Outbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.tail.is_empty()
    }

    /// Queues `frame` after everything queued so far.
    pub(crate) fn push(&mut self, frame: Bytes) {
        if frame.len() < ZERO_COPY_MIN {
            self.tail.extend_from_slice(&frame);
        } else {
            self.push_separate(frame);
        }
    }

    /// Queues a frame other connections share (a broadcast): a small one is copied, so its
    /// reference count is not touched; a large one is shared.
    pub(crate) fn push_shared(&mut self, frame: &Bytes) {
        if frame.len() < ZERO_COPY_MIN {
            self.tail.extend_from_slice(frame);
        } else {
            self.push_separate(frame.clone());
        }
    }

    /// Queues `frame` in its own buffer whatever its size: for the header of a frame whose
    /// large body follows, copying would only end the contiguous buffer at once (the body
    /// must come next) and cost an allocation.
    pub(crate) fn push_separate(&mut self, frame: Bytes) {
        if !self.tail.is_empty() {
            // Order is kept: the small frames before this one leave first.
            self.frames
                .push_back(Bytes::from(std::mem::take(&mut self.tail)));
        }
        self.frames.push_back(frame);
    }

    /// Appends one small frame in place, written by `write` (after everything queued so
    /// far); a panicking `write` leaves nothing behind ([`append_whole`]).
    pub(crate) fn append(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        append_whole(&mut self.tail, write);
    }

    /// Moves the oldest queued output into `batch` (whose contiguous part must be written), at most `max_frames`
    /// separate buffers (the contiguous small frames count as one); returns the bytes moved.
    pub(crate) fn take_into(&mut self, batch: &mut WriteBatch, max_frames: usize) -> usize {
        let mut taken = 0;
        while batch.len() < max_frames {
            let Some(frame) = self.frames.pop_front() else {
                break;
            };
            taken += frame.len();
            batch.push(frame);
        }
        if self.frames.is_empty() && !self.tail.is_empty() && batch.len() < max_frames {
            taken += self.tail.len();
            batch.swap_tail(&mut self.tail);
        }
        taken
    }

    /// Frees the buffers of a connection that has gone idle (its writer parks).
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            *self = Self::default();
        }
    }
}

/// Appends what `write` writes to `buf`. If `write` panics (a user's encoder), what it
/// wrote is taken back, so a buffer of back-to-back frames never holds half a frame.
pub(crate) fn append_whole(buf: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    /// Truncates the buffer back to `len` unless disarmed.
    struct Rollback<'a> {
        buf: &'a mut Vec<u8>,
        len: usize,
        armed: bool,
    }
    impl Drop for Rollback<'_> {
        fn drop(&mut self) {
            if self.armed {
                self.buf.truncate(self.len);
            }
        }
    }
    let len = buf.len();
    let mut guard = Rollback {
        buf,
        len,
        armed: true,
    };
    write(guard.buf);
    guard.armed = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(batch: &mut WriteBatch) -> Vec<u8> {
        batch.prepare();
        let bytes = batch.iovec_bytes();
        batch.consume(bytes.len());
        assert!(batch.is_empty());
        bytes
    }

    #[test]
    fn small_frames_share_one_buffer_and_order_is_kept() {
        let mut outbox = Outbox::default();
        let big = Bytes::from(vec![b'B'; ZERO_COPY_MIN]);
        outbox.push(Bytes::from_static(b"one"));
        outbox.push(Bytes::from_static(b"two"));
        outbox.push(big.clone());
        outbox.push(Bytes::from_static(b"three"));
        let mut batch = WriteBatch::new();
        assert_eq!(outbox.take_into(&mut batch, 256), 11 + ZERO_COPY_MIN);
        assert_eq!(batch.len(), 3, "one, two | big | three");
        assert!(outbox.is_empty());
        let mut expected = b"onetwo".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"three");
        assert_eq!(written(&mut batch), expected);
    }

    #[test]
    fn the_writer_hands_its_written_buffer_back_for_reuse() {
        let mut outbox = Outbox::default();
        let mut batch = WriteBatch::new();
        outbox.push(Bytes::from(vec![1u8; 100]));
        let first = outbox.tail.as_ptr();
        outbox.take_into(&mut batch, 256);
        written(&mut batch);
        outbox.push(Bytes::from(vec![2u8; 100]));
        outbox.take_into(&mut batch, 256);
        written(&mut batch);
        outbox.push(Bytes::from(vec![3u8; 10]));
        assert_eq!(
            outbox.tail.as_ptr(),
            first,
            "the first batch's buffer came back to the outbox"
        );
    }

    #[test]
    fn a_partial_write_resumes_inside_the_small_frames() {
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from(vec![b'x'; ZERO_COPY_MIN + 1]));
        outbox.push(Bytes::from_static(b"abcdef"));
        let mut batch = WriteBatch::new();
        outbox.take_into(&mut batch, 256);
        batch.prepare();
        batch.consume(ZERO_COPY_MIN + 3);
        outbox.push(Bytes::from_static(b"later"));
        assert_eq!(written(&mut batch), b"cdef");
        outbox.take_into(&mut batch, 256);
        assert_eq!(written(&mut batch), b"later");
    }

    #[test]
    fn a_frame_whose_encoder_panics_is_taken_back() {
        let mut outbox = Outbox::default();
        outbox.append(|out| out.extend_from_slice(b"whole"));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            outbox.append(|out| {
                out.extend_from_slice(b"half");
                panic!("encoder failed");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(outbox.tail, b"whole");
    }

    #[test]
    fn an_idle_outbox_gives_its_memory_back() {
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from_static(b"hello"));
        let mut batch = WriteBatch::new();
        outbox.take_into(&mut batch, 256);
        written(&mut batch);
        outbox.release();
        assert_eq!(outbox.tail.capacity(), 0);
    }
}

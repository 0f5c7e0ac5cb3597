//! Where a replay buffer keeps its frames, compactly and without an allocation per
//! message: small frames are copied back to back into a few chunks of memory (their wire
//! bytes plus four bytes of length each), large ones stay in the shared buffers they were
//! sent from.
//!
//! A session's frames are short-lived (acknowledged every few dozen messages) and mostly
//! small, so giving each its own buffer cost an allocation, a reference count and a free
//! per message, and about 300 bytes of memory for a 64-byte message. Copying a small frame
//! once more is cheaper than all of that, as it is for the connection's outbox
//! ([`ZERO_COPY_MIN`](crate::proto::outgoing::ZERO_COPY_MIN) is the same threshold for the same reason).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::proto::outbox::append_whole;
use crate::proto::FrameParts;

/// One kept frame, as a replay reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kept<'a> {
    /// A small frame, copied into the log.
    Copied(&'a [u8]),
    /// A large frame, in the buffers it was sent from.
    Shared(&'a FrameParts),
}

impl Kept<'_> {
    /// The frame as buffers of its own (a copy of a small frame).
    pub(crate) fn to_parts(self) -> FrameParts {
        match self {
            Kept::Copied(frame) => FrameParts::whole(Bytes::copy_from_slice(frame)),
            Kept::Shared(parts) => parts.clone(),
        }
    }
}

/// Size of a chunk of copied frames once a session is busy. A frame never spans chunks;
/// the last chunk grows to this size by doubling, so a session that sent little holds
/// little.
const CHUNK: usize = 4096;

/// In `lens`: the frame is the next of `shared`.
const SHARED: u32 = u32::MAX;

/// Frames in send order.
#[derive(Debug, Default)]
pub(crate) struct FrameLog {
    /// Per frame, oldest first: its length when copied into `chunks`, or [`SHARED`].
    lens: VecDeque<u32>,
    /// The copied frames, back to back, oldest first.
    chunks: VecDeque<Vec<u8>>,
    /// Where the oldest copied frame starts in `chunks[0]`.
    start: usize,
    /// An emptied chunk kept for the next one while frames flow.
    spare: Option<Vec<u8>>,
    /// The large frames, oldest first.
    shared: VecDeque<FrameParts>,
}

impl FrameLog {
    /// Frames kept.
    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Appends a small frame (about [`ZERO_COPY_MIN`](crate::proto::outgoing::ZERO_COPY_MIN) bytes at most) of `frame_len` bytes,
    /// written by `write`. A panicking `write` leaves nothing behind.
    #[inline]
    pub(crate) fn push_with(&mut self, frame_len: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let fits = self
            .chunks
            .back()
            .is_some_and(|chunk| chunk.len() + frame_len <= CHUNK);
        if !fits {
            let chunk = match self.spare.take() {
                Some(spare) => spare,
                // The first chunk starts small and grows; later ones are whole.
                None if self.chunks.is_empty() => Vec::with_capacity(frame_len.next_power_of_two()),
                None => Vec::with_capacity(CHUNK),
            };
            if self.chunks.is_empty() {
                self.start = 0;
            }
            self.chunks.push_back(chunk);
        }
        let chunk = self.chunks.back_mut().expect("a chunk was made above");
        let at = chunk.len();
        append_whole(chunk, write);
        let written = chunk.len() - at;
        debug_assert_eq!(written, frame_len);
        self.lens.push_back(written as u32);
    }

    /// The newest frame.
    pub(crate) fn newest(&self) -> Kept<'_> {
        match *self.lens.back().expect("a frame was kept") {
            SHARED => Kept::Shared(self.shared.back().expect("a shared frame per marker")),
            _ => Kept::Copied(self.newest_copied()),
        }
    }

    /// The newest frame, which must be a copied one.
    #[inline]
    pub(crate) fn newest_copied(&self) -> &[u8] {
        let len = *self.lens.back().expect("a frame was kept") as usize;
        debug_assert_ne!(len as u32, SHARED);
        let chunk = self.chunks.back().expect("a copied frame has a chunk");
        &chunk[chunk.len() - len..]
    }

    /// Appends a large frame, sharing its buffers.
    pub(crate) fn push_shared(&mut self, frame: FrameParts) {
        self.lens.push_back(SHARED);
        self.shared.push_back(frame);
    }

    /// Forgets the `n` oldest frames (at most all) and returns their size.
    pub(crate) fn drop_oldest(&mut self, n: usize) -> usize {
        let n = n.min(self.lens.len());
        let (mut copied, mut shared) = (0, 0);
        for len in self.lens.drain(..n) {
            if len == SHARED {
                shared += 1;
            } else {
                copied += len as usize;
            }
        }
        let shared_bytes: usize = self.shared.drain(..shared).map(|f| f.len()).sum();
        self.consume_copied(copied);
        copied + shared_bytes
    }

    /// Moves the start of the copied frames `bytes` further (whole frames: a frame never
    /// spans chunks, so this ends on a frame's end), freeing or keeping emptied chunks.
    fn consume_copied(&mut self, mut bytes: usize) {
        while bytes > 0 {
            let left = self.chunks[0].len() - self.start;
            if bytes < left {
                self.start += bytes;
                return;
            }
            bytes -= left;
            let mut chunk = self.chunks.pop_front().expect("copied frames have a chunk");
            self.start = 0;
            if self.chunks.is_empty() || self.lens.is_empty() {
                // The last chunk (or nothing is left at all): it stays for the next
                // frames; the spare goes, and so does any empty chunk a panicking
                // encoder left behind.
                chunk.clear();
                self.spare = None;
                self.chunks.clear();
                self.chunks.push_back(chunk);
                return;
            }
            if chunk.capacity() == CHUNK && self.spare.is_none() {
                chunk.clear();
                self.spare = Some(chunk);
            }
        }
    }

    /// Every frame kept, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Kept<'_>> {
        let mut chunks = self.chunks.iter();
        let mut chunk: &[u8] = chunks.next().map_or(&[], |c| &c[self.start..]);
        let mut shared = self.shared.iter();
        self.lens.iter().map(move |&len| {
            if len == SHARED {
                return Kept::Shared(shared.next().expect("a shared frame per marker"));
            }
            if chunk.is_empty() {
                chunk = chunks.next().expect("a copied frame has a chunk");
            }
            let (frame, rest) = chunk.split_at(len as usize);
            chunk = rest;
            Kept::Copied(frame)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::outgoing::ZERO_COPY_MIN;

    fn small(log: &mut FrameLog, byte: u8, len: usize) {
        log.push_with(len, |out| out.extend(std::iter::repeat_n(byte, len)));
        assert_eq!(log.newest_copied(), vec![byte; len]);
    }

    fn contents(log: &FrameLog) -> Vec<(u8, usize, bool)> {
        log.iter()
            .map(|kept| match kept {
                Kept::Copied(frame) => (frame[0], frame.len(), false),
                Kept::Shared(parts) => (parts.head()[0], parts.len(), true),
            })
            .collect()
    }

    #[test]
    fn small_and_large_frames_come_back_in_order_across_chunks() {
        let mut log = FrameLog::default();
        let mut expected = Vec::new();
        for n in 0..40u8 {
            if n % 10 == 9 {
                let frame = Bytes::from(vec![n; ZERO_COPY_MIN + 5]);
                log.push_shared(FrameParts::whole(frame));
                expected.push((n, ZERO_COPY_MIN + 5, true));
            } else {
                let len = 100 + usize::from(n) * 20;
                small(&mut log, n, len);
                expected.push((n, len, false));
            }
        }
        assert!(log.chunks.len() > 3, "frames spread over several chunks");
        assert_eq!(contents(&log), expected);
        for (n, (_, len, _)) in expected.iter().enumerate().take(25) {
            assert_eq!(log.drop_oldest(1), *len, "frame {n}");
        }
        assert_eq!(contents(&log), expected[25..]);
        small(&mut log, 99, 7);
        assert_eq!(contents(&log).last(), Some(&(99, 7, false)));
        assert_eq!(
            log.drop_oldest(usize::MAX),
            7 + expected[25..].iter().map(|e| e.1).sum::<usize>()
        );
        assert_eq!(log.len(), 0);
        assert_eq!(log.chunks.len(), 1, "the last chunk is kept for reuse");
        assert!(log.spare.is_none());
    }

    #[test]
    fn steady_traffic_reuses_its_chunks() {
        let mut log = FrameLog::default();
        for _ in 0..200 {
            small(&mut log, 1, 70);
        }
        let chunks: Vec<*const u8> = log.chunks.iter().map(|c| c.as_ptr()).collect();
        for round in 0..50u8 {
            for _ in 0..32 {
                small(&mut log, round, 70);
            }
            assert_eq!(log.drop_oldest(32), 32 * 70);
        }
        let mut now: Vec<*const u8> = log.chunks.iter().map(|c| c.as_ptr()).collect();
        now.extend(log.spare.as_ref().map(|c| c.as_ptr()));
        assert!(
            now.iter().filter(|p| !chunks.contains(p)).count() <= 1,
            "at most one chunk was allocated while traffic flowed"
        );
    }

    #[test]
    fn a_panicking_encoder_keeps_nothing() {
        let mut log = FrameLog::default();
        small(&mut log, 1, 10);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            log.push_with(10, |out| {
                out.extend_from_slice(b"half");
                panic!("encoder failed");
            });
        }));
        assert!(panicked.is_err());
        assert_eq!(contents(&log), [(1, 10, false)]);
        small(&mut log, 2, 10);
        assert_eq!(contents(&log), [(1, 10, false), (2, 10, false)]);
    }
}

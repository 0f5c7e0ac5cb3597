//! A session's replay buffer: the data messages one side sent, by number, kept until the
//! other side acknowledges them, so a resumed session can send again exactly those the
//! peer never processed.
//!
//! Bounded by messages and bytes. The server drops the oldest when over a bound (a later
//! resume that needs one of them fails with a gap, never silently); the engine's client
//! refuses a new message instead (the caller sees the error).

use bytes::Bytes;

use super::frame_log::{FrameLog, Kept};
use crate::proto::outgoing::ZERO_COPY_MIN;
use crate::proto::FrameParts;

/// Why the messages after a given number cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// Some of them were dropped to stay within the bounds (the spec's `resumeGap`).
    Gap,
    /// The number is beyond what was ever sent: not this session's peer, or a broken one.
    Unknown,
}

/// The frames sent and not yet acknowledged, numbered from 1 on the session.
#[derive(Debug)]
pub(crate) struct Replay {
    frames: FrameLog,
    /// Number of the oldest frame kept; `last + 1` when empty.
    first: u64,
    /// Number of the last frame recorded (0 before the first).
    last: u64,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Replay {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            frames: FrameLog::default(),
            first: 1,
            last: 0,
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Number of the last frame recorded (the session's outbound sequence).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Frames kept.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Bytes kept.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records the next frame, a small one written in place by `write`, and returns it, to
    /// be queued on the connection from here.
    pub(crate) fn push_with(
        &mut self,
        frame_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        self.frames.push_with(frame_len, write);
        self.recorded(frame_len);
        self.frames.newest_copied()
    }

    /// Records the next frame, keeping a large one's buffers and copying a small one, and
    /// returns its number.
    pub(crate) fn push(&mut self, frame: &FrameParts) -> u64 {
        match frame.body() {
            None => {
                self.push_whole(frame.head());
            }
            Some(_) => {
                self.frames.push_shared(frame.clone());
                self.recorded(frame.len());
            }
        }
        self.last
    }

    /// Records the next frame, given whole (a broadcast's), and returns it as kept: a small
    /// one copied, a large one sharing `frame`'s buffer.
    pub(crate) fn push_whole(&mut self, frame: &Bytes) -> Kept<'_> {
        if frame.len() < ZERO_COPY_MIN {
            return Kept::Copied(self.push_with(frame.len(), |out| out.extend_from_slice(frame)));
        }
        self.frames.push_shared(FrameParts::whole(frame.clone()));
        self.recorded(frame.len());
        self.frames.newest()
    }

    /// A frame of `len` bytes was recorded: numbered, and the oldest dropped while over a
    /// bound (the newest is always kept).
    #[inline]
    fn recorded(&mut self, len: usize) {
        self.bytes += len;
        self.last += 1;
        while self.frames.len() > 1
            && (self.frames.len() > self.max_messages || self.bytes > self.max_bytes)
        {
            self.drop_oldest(1);
        }
    }

    /// The peer processed every frame up to `seq`: forget them. A number beyond the last
    /// frame is capped to it.
    pub(crate) fn ack(&mut self, seq: u64) {
        let through = seq.min(self.last);
        if through >= self.first {
            self.drop_oldest((through - self.first + 1) as usize);
        }
    }

    /// The frames numbered after `seq`, oldest first, once the peer processed up to `seq`.
    pub(crate) fn after(&self, seq: u64) -> Result<impl Iterator<Item = Kept<'_>>, ReplayError> {
        if seq > self.last {
            return Err(ReplayError::Unknown);
        }
        if seq + 1 < self.first {
            return Err(ReplayError::Gap);
        }
        Ok(self.frames.iter().skip((seq + 1 - self.first) as usize))
    }

    /// Every frame kept, oldest first, as buffers of their own; the buffer is left empty
    /// and numbering starts again from 1.
    pub(crate) fn take_all(&mut self) -> Vec<FrameParts> {
        let frames = self.frames.iter().map(Kept::to_parts).collect();
        *self = Self::new(self.max_messages, self.max_bytes);
        frames
    }

    fn drop_oldest(&mut self, n: usize) {
        let n = n.min(self.frames.len());
        self.bytes -= self.frames.drop_oldest(n);
        self.first += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> FrameParts {
        FrameParts::whole(Bytes::from(vec![n; len]))
    }

    fn after(replay: &Replay, seq: u64) -> Result<Vec<u8>, ReplayError> {
        replay
            .after(seq)
            .map(|frames| frames.map(|f| f.to_parts().head()[0]).collect())
    }

    #[test]
    fn numbers_from_one_and_replays_what_was_not_acknowledged() {
        let mut replay = Replay::new(100, 1 << 20);
        assert_eq!(after(&replay, 0), Ok(vec![]));
        for n in 1..=5 {
            assert_eq!(replay.push(&frame(n, 10)), u64::from(n));
        }
        assert_eq!(after(&replay, 0), Ok(vec![1, 2, 3, 4, 5]));
        assert_eq!(after(&replay, 3), Ok(vec![4, 5]));
        assert_eq!(after(&replay, 5), Ok(vec![]));
        assert_eq!(after(&replay, 6), Err(ReplayError::Unknown));
        replay.ack(2);
        assert_eq!((replay.len(), replay.bytes()), (3, 30));
        assert_eq!(after(&replay, 2), Ok(vec![3, 4, 5]));
        assert_eq!(after(&replay, 1), Err(ReplayError::Gap));
        replay.ack(99);
        assert_eq!((replay.len(), replay.bytes(), replay.last()), (0, 0, 5));
        assert_eq!(after(&replay, 5), Ok(vec![]));
        assert_eq!(after(&replay, 4), Err(ReplayError::Gap));
        assert_eq!(replay.push(&frame(6, 1)), 6);
        assert_eq!(after(&replay, 5), Ok(vec![6]));
    }

    #[test]
    fn bounds_drop_the_oldest_and_a_resume_past_them_is_a_gap() {
        let mut replay = Replay::new(3, 1 << 20);
        for n in 1..=5 {
            replay.push(&frame(n, 1));
        }
        assert_eq!(after(&replay, 2), Ok(vec![3, 4, 5]));
        assert_eq!(after(&replay, 1), Err(ReplayError::Gap));

        let mut replay = Replay::new(100, 25);
        for n in 1..=3 {
            replay.push(&frame(n, 10));
        }
        assert_eq!((replay.len(), replay.bytes()), (2, 20));
        assert_eq!(after(&replay, 1), Ok(vec![2, 3]));
        let big = replay.push(&frame(9, 100));
        assert_eq!((big, replay.len()), (4, 1), "the newest is always kept");
        assert_eq!(after(&replay, 3), Ok(vec![9]));
    }
}

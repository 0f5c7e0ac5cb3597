//! A session's replay buffer: the data messages one side sent, by number, kept until the
//! other side acknowledges them, so a resumed session can send again exactly those the
//! peer never processed.
//!
//! Bounded by messages and bytes. The server drops the oldest when over a bound (a later
//! resume that needs one of them fails with a gap, never silently); the engine's client
//! refuses a new message instead (the caller sees the error).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::proto::FrameParts;

/// Something a replay buffer keeps: a sent frame, weighed by its bytes.
pub(crate) trait Weighed: Clone {
    fn weight(&self) -> usize;
}

impl Weighed for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weighed for FrameParts {
    fn weight(&self) -> usize {
        self.head().len() + self.body().map_or(0, Bytes::len)
    }
}

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
pub(crate) struct Replay<T> {
    frames: VecDeque<T>,
    /// Number of `frames[0]`; `last + 1` when empty.
    first: u64,
    /// Number of the last frame recorded (0 before the first).
    last: u64,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl<T: Weighed> Replay<T> {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            first: 1,
            last: 0,
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Number of the last frame recorded (the session's outbound sequence).
    #[cfg(test)]
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

    /// Records the next frame and returns its number; the oldest are dropped while over a
    /// bound (the newest is always kept).
    pub(crate) fn push(&mut self, frame: T) -> u64 {
        self.bytes += frame.weight();
        self.frames.push_back(frame);
        self.last += 1;
        while self.frames.len() > 1
            && (self.frames.len() > self.max_messages || self.bytes > self.max_bytes)
        {
            self.drop_front();
        }
        self.last
    }

    /// The peer processed every frame up to `seq`: forget them. A number beyond the last
    /// frame is capped to it.
    pub(crate) fn ack(&mut self, seq: u64) {
        while self.first <= seq.min(self.last) && !self.frames.is_empty() {
            self.drop_front();
        }
    }

    /// The frames numbered after `seq`, oldest first, once the peer processed up to `seq`.
    pub(crate) fn after(&self, seq: u64) -> Result<impl Iterator<Item = &T>, ReplayError> {
        if seq > self.last {
            return Err(ReplayError::Unknown);
        }
        if seq + 1 < self.first {
            return Err(ReplayError::Gap);
        }
        Ok(self.frames.iter().skip((seq + 1 - self.first) as usize))
    }

    /// Every frame kept, oldest first.
    pub(crate) fn into_frames(self) -> VecDeque<T> {
        self.frames
    }

    fn drop_front(&mut self) {
        if let Some(frame) = self.frames.pop_front() {
            self.bytes -= frame.weight();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    fn after(replay: &Replay<Bytes>, seq: u64) -> Result<Vec<u8>, ReplayError> {
        replay
            .after(seq)
            .map(|frames| frames.map(|f| f[0]).collect())
    }

    #[test]
    fn numbers_from_one_and_replays_what_was_not_acknowledged() {
        let mut replay = Replay::new(100, 1 << 20);
        assert_eq!(after(&replay, 0), Ok(vec![]));
        for n in 1..=5 {
            assert_eq!(replay.push(frame(n, 10)), u64::from(n));
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
        assert_eq!(replay.push(frame(6, 1)), 6);
        assert_eq!(after(&replay, 5), Ok(vec![6]));
    }

    #[test]
    fn bounds_drop_the_oldest_and_a_resume_past_them_is_a_gap() {
        let mut replay = Replay::new(3, 1 << 20);
        for n in 1..=5 {
            replay.push(frame(n, 1));
        }
        assert_eq!(after(&replay, 2), Ok(vec![3, 4, 5]));
        assert_eq!(after(&replay, 1), Err(ReplayError::Gap));

        let mut replay = Replay::new(100, 25);
        for n in 1..=3 {
            replay.push(frame(n, 10));
        }
        assert_eq!((replay.len(), replay.bytes()), (2, 20));
        assert_eq!(after(&replay, 1), Ok(vec![2, 3]));
        let big = replay.push(frame(9, 100));
        assert_eq!((big, replay.len()), (4, 1), "the newest is always kept");
        assert_eq!(after(&replay, 3), Ok(vec![9]));
    }
}

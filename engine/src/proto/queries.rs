//! One connection's pending queries: each waits for the response that comes back with its
//! transaction id *and* the expected response type (spec 11.A1: the reference matches by
//! id alone, so a peer's unrelated message with a colliding id completes the wrong query),
//! and fails with a clear [`QueryError`] at its deadline or when the connection ends, so
//! none can be left unsettled. Plain bookkeeping: the connection feeds it the time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use packme::DecodeError;
use rustc_hash::FxHashMap;

/// Why a query produced no response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// No response within the query timeout.
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    /// The connection closed before the response arrived.
    #[error("connection closed before the response arrived")]
    Disconnected,
    /// The query could not be sent: the connection is not open.
    #[error("not connected")]
    NotConnected,
    /// The connection already has the maximum number of pending queries.
    #[error("too many pending queries (limit {0})")]
    TooManyPending(usize),
    /// A query with the same transaction id is already pending.
    #[error("transaction id {0} is already pending")]
    DuplicateTransaction(u32),
    /// The response arrived but does not decode.
    #[error("response does not decode: {0}")]
    Decode(#[from] DecodeError),
}

/// Where a query's outcome goes: the frame of its response, or why there is none.
pub(crate) type Reply = oneshot::Sender<Result<Bytes, QueryError>>;

struct Pending {
    expected_id: u32,
    reply: Reply,
}

/// One connection's pending queries and their deadlines.
pub(crate) struct PendingQueries {
    by_tid: FxHashMap<u32, Pending>,
    /// (deadline, transaction id) in deadline order: one timeout for the connection makes
    /// deadlines monotonic. Entries answered early are skipped when they come due.
    deadlines: VecDeque<(Instant, u32)>,
    max: usize,
}

impl PendingQueries {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            by_tid: FxHashMap::default(),
            deadlines: VecDeque::new(),
            max,
        }
    }

    /// Registers a query; on failure the reply has already been failed.
    pub(crate) fn insert(
        &mut self,
        tid: u32,
        expected_id: u32,
        reply: Reply,
        deadline: Instant,
    ) -> bool {
        let error = if self.by_tid.contains_key(&tid) {
            Some(QueryError::DuplicateTransaction(tid))
        } else if self.by_tid.len() >= self.max {
            Some(QueryError::TooManyPending(self.max))
        } else {
            None
        };
        if let Some(error) = error {
            let _ = reply.send(Err(error));
            return false;
        }
        self.by_tid.insert(tid, Pending { expected_id, reply });
        self.deadlines.push_back((deadline, tid));
        if self.deadlines.len() > 2 * self.by_tid.len() + 64 {
            let by_tid = &self.by_tid;
            self.deadlines.retain(|(_, tid)| by_tid.contains_key(tid));
        }
        true
    }

    /// Whether any query is waiting for its answer.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_tid.is_empty()
    }

    /// Whether a query waits for `tid` with response type `id`.
    pub(crate) fn expects(&self, tid: u32, id: u32) -> bool {
        self.by_tid.get(&tid).is_some_and(|p| p.expected_id == id)
    }

    /// The earliest deadline (possibly of a query already answered: waking early is
    /// harmless).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(deadline, _)| deadline)
    }

    /// Completes the query waiting for `tid` if it expects message `id`; `false` if there
    /// is none (the message then goes to listeners).
    pub(crate) fn complete(&mut self, tid: u32, id: u32, frame: &Bytes) -> bool {
        if self.by_tid.is_empty() {
            return false;
        }
        match self.by_tid.get(&tid) {
            Some(p) if p.expected_id == id => {}
            _ => return false,
        }
        let pending = self.by_tid.remove(&tid).expect("checked above");
        let _ = pending.reply.send(Ok(frame.clone()));
        if self.by_tid.is_empty() {
            self.deadlines.clear();
        }
        true
    }

    /// Fails every query whose deadline is at or before `now`, and returns the next
    /// deadline still ahead, if any.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Option<Instant> {
        while let Some(&(deadline, tid)) = self.deadlines.front() {
            if deadline > now {
                return Some(deadline);
            }
            self.deadlines.pop_front();
            if let Some(pending) = self.by_tid.remove(&tid) {
                let _ = pending.reply.send(Err(QueryError::Timeout(timeout)));
            }
        }
        None
    }

    /// Fails every pending query with `error`.
    pub(crate) fn fail_all(&mut self, error: QueryError) {
        for (_, pending) in self.by_tid.drain() {
            let _ = pending.reply.send(Err(error.clone()));
        }
        self.deadlines.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_tid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_must_match_transaction_and_type() {
        let mut pending = PendingQueries::new(8);
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        assert!(pending.insert(7, 100, tx, now + Duration::from_secs(1)));
        let frame = Bytes::from_static(b"frame");
        assert!(
            !pending.complete(7, 999, &frame),
            "same id, other type: not an answer"
        );
        assert!(!pending.complete(8, 100, &frame), "other id: not an answer");
        assert!(pending.complete(7, 100, &frame));
        assert_eq!(rx.try_recv().unwrap(), Ok(frame));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn expiry_fails_only_due_queries_and_reports_the_next_deadline() {
        let mut pending = PendingQueries::new(8);
        let start = Instant::now();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        pending.insert(1, 5, tx1, start + Duration::from_millis(10));
        pending.insert(2, 5, tx2, start + Duration::from_millis(20));
        let next = pending.expire(start + Duration::from_millis(15), Duration::from_millis(10));
        assert_eq!(next, Some(start + Duration::from_millis(20)));
        assert_eq!(
            rx1.recv().unwrap(),
            Err(QueryError::Timeout(Duration::from_millis(10)))
        );
        pending.fail_all(QueryError::Disconnected);
        assert_eq!(rx2.recv().unwrap(), Err(QueryError::Disconnected));
    }

    #[test]
    fn limits_and_duplicates_fail_at_once() {
        let mut pending = PendingQueries::new(1);
        let deadline = Instant::now() + Duration::from_secs(1);
        let (tx, _rx) = oneshot::channel();
        assert!(pending.insert(1, 5, tx, deadline));
        let (tx, rx) = oneshot::channel();
        assert!(!pending.insert(1, 5, tx, deadline));
        assert_eq!(rx.recv().unwrap(), Err(QueryError::DuplicateTransaction(1)));
        let (tx, rx) = oneshot::channel();
        assert!(!pending.insert(2, 5, tx, deadline));
        assert_eq!(rx.recv().unwrap(), Err(QueryError::TooManyPending(1)));
    }
}

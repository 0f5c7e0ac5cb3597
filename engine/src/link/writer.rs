//! The write side of a link: a task that takes what the connection has to send, one batch
//! at a time, and writes it (`send` for one buffer, `writev` for several).
//!
//! No task runs until the first frame is queued, so a connection that only listens never
//! pays for a writer, and an idle connection's writer parks (ends, keeping its write half
//! in the link) until the next frame. An aborted connection stops its writer even in the
//! middle of a write, so a peer that never reads cannot hold the socket.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use super::{Link, Parked, WriterState};
use crate::proto::batch::WriteBatch;
use crate::proto::End;
use crate::rt::io::{shutdown, write_batch};
use crate::rt::net::WriteHalf;
use crate::rt::{first, First};

/// A parked writer's write half, kept in its link while no writer task runs: restarted by
/// the next frame, or given back whole (an in-band session resume moves the socket to
/// another connection).
struct Half<W>(W);

impl<W: WriteHalf + 'static> Parked for Half<W> {
    fn start(self: Box<Self>, link: Rc<Link>) {
        start(self.0, link);
    }

    fn into_write_half(self: Box<Self>) -> Result<Box<dyn Any>, Box<dyn Parked>> {
        Ok(Box::new(self.0))
    }

    fn is_whole(&self) -> bool {
        false
    }
}

/// What the writer does next.
enum Next {
    Write,
    Park,
    Flushed,
    Stop,
}

/// Gives `link` its write half; the writer starts with the first frame.
pub(crate) fn attach<W: WriteHalf + 'static>(writer: W, link: &Link) {
    link.parked.set(Some(Box::new(Half(writer))));
}

fn start<W: WriteHalf + 'static>(writer: W, link: Rc<Link>) {
    drop(crate::rt::spawn(write_loop(writer, link)));
}

/// Writes everything the connection has to send until it finishes (then shuts the write
/// side down) or aborts (then drops it). Parks when the idle sweep asks.
async fn write_loop<W: WriteHalf + 'static>(mut writer: W, link: Rc<Link>) {
    let mut batch = WriteBatch::new();
    loop {
        let next = poll_fn(|cx| {
            let conn = link.conn.borrow();
            if conn.is_aborted() {
                return Poll::Ready(Next::Stop);
            }
            if conn.has_transmit() {
                return Poll::Ready(Next::Write);
            }
            if !conn.is_receiving() {
                return Poll::Ready(Next::Flushed);
            }
            if link.park_requested(super::PARK_WRITER) {
                return Poll::Ready(Next::Park);
            }
            link.writer.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        match next {
            Next::Write => hold(&link).await,
            Next::Flushed => {
                shutdown(&mut writer).await;
                break;
            }
            Next::Stop => break,
            Next::Park => {
                link.conn.borrow_mut().release();
                attach(writer, &link);
                return;
            }
        }
        let now = Instant::now();
        link.conn.borrow_mut().poll_transmit(now, &mut batch);
        link.reschedule();
        link.writer_state.set(WriterState::Writing);
        while !batch.is_empty() {
            let written = first(write_batch(&mut writer, batch), link.aborted()).await;
            let First::A((result, returned)) = written else {
                // Aborted mid-write: the batch goes with the write.
                link.writer_state.set(WriterState::Waiting);
                link.writer_finished();
                return;
            };
            batch = returned;
            match result {
                Ok(n) if n > 0 => {
                    batch.consume(n);
                    // The clock is read only for a partial write (see `transmitted`).
                    let drained = batch.is_empty();
                    let at = if drained { now } else { Instant::now() };
                    link.conn.borrow_mut().transmitted(at, drained);
                }
                Ok(_) => {
                    link.abort(End::Eof);
                    break;
                }
                Err(error) => {
                    link.conn.borrow_mut().io_error(&error);
                    link.changed();
                    break;
                }
            }
        }
        link.writer_state.set(WriterState::Waiting);
    }
    link.writer_finished();
}

/// Waits out the link's flush delay, letting frames gather; ends early once the queue
/// holds enough to write at once (see `FLUSH_NOW_BYTES`) or the connection stops being
/// open (a close goes out at once).
async fn hold(link: &Link) {
    let delay = link.flush_delay();
    if delay.is_zero() {
        return;
    }
    let flush_now = link.flush_now_bytes();
    let mut sleep = std::pin::pin!(crate::rt::sleep(delay));
    link.writer_state.set(WriterState::Holding);
    poll_fn(|cx| {
        let conn = link.conn.borrow();
        if !conn.is_open() || conn.queued_bytes() >= flush_now || sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(());
        }
        // Woken by the timer, by a queue grown to `flush_now`, or by the connection
        // closing (`Link::changed`). A pong waits with the data (at most the delay).
        link.writer.set(Some(cx.waker().clone()));
        Poll::Pending
    })
    .await;
    link.writer_state.set(WriterState::Waiting);
}

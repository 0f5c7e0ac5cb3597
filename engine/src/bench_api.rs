//! Entry points for the criterion benches into crate-private hot paths (listener
//! dispatch). Not part of the public API: hidden from the docs, no stability promise.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use packme::{ByteString, Registry};

use crate::link::{Link, LinkLimits};
use crate::listeners::{dispatch, handler, Context, Listen, ListenerCell, Received, Reply};
use crate::proto::Wire;

/// A connection's dispatch path without sockets: a link, a registry and the
/// endpoint-wide listener table.
pub struct DispatchBench<C> {
    link: Rc<Link>,
    registry: Registry,
    listeners: ListenerCell<C>,
    next_id: u64,
}

impl<C: Context + 'static> DispatchBench<C> {
    /// An empty table on a server-side link.
    pub fn new(registry: Registry) -> Self {
        let limits = LinkLimits {
            max_queued_bytes: 1 << 20,
            max_pending_queries: 16,
            query_timeout: Duration::from_secs(1),
            close_timeout: Duration::from_secs(1),
        };
        Self {
            link: Link::new(1, Wire::WsServer, limits),
            registry,
            listeners: ListenerCell::default(),
            next_id: 0,
        }
    }

    /// Adds a listener, as `Server::listen` does.
    pub fn listen<T, R, F>(&mut self, f: F)
    where
        T: Listen,
        R: Reply,
        F: Fn(T, &C) -> R + Send + Sync + 'static,
    {
        self.next_id += 1;
        let (id, h) = (self.next_id, handler::<T, C, R, F>(f));
        T::register(&mut self.registry);
        self.listeners
            .apply(move |table| table.add(T::key(), id, h));
    }

    /// Dispatches a binary message (raw bytes or a PackMe frame).
    pub fn binary(&self, frame: Bytes, ctx: &C) {
        dispatch(
            Received::Binary(frame),
            &self.link,
            &self.registry,
            None,
            &self.listeners,
            ctx,
        );
    }

    /// Dispatches a text message.
    pub fn text(&self, text: ByteString, ctx: &C) {
        dispatch(
            Received::Text(text),
            &self.link,
            &self.registry,
            None,
            &self.listeners,
            ctx,
        );
    }
}

//! ConnectMe's listener verbs (`listen`, `cancel`, `register`, and the engine's
//! `listen_ref` and `listen_view`), written once for everything that receives messages: a
//! [`Server`](crate::Server) (every connection), one [`Peer`](crate::Peer) (that
//! connection, before the server-wide listeners), and a [`Client`](crate::Client).
//!
//! Each of them only says where a handler goes ([`sealed::Host`]); how a typed handler
//! becomes a stored one, which PackMe types it needs registered, and how it is cancelled
//! is here alone.

use bytes::Bytes;
use packme::{HasView, Packet, Registry, RegistryError};

use super::handler::{handler, ref_handler, view_handler};
use super::{registry_of, Key, Listen, ListenerId, Reply};
use crate::proto::received::BinaryRef;

/// The listener verbs of a [`Server`](crate::Server), a [`Peer`](crate::Peer) and a
/// [`Client`](crate::Client). Bring it into scope (`use connectme::Listeners;`, or
/// `use connectme::prelude::*;`) to call them.
///
/// Where a listener takes effect: on a running server, a server-wide listener is in effect
/// on every shard when the call returns (called from a handler, right after that handler
/// returns); a peer's own listener from its next message; a client's survives reconnects.
pub trait Listeners: sealed::Host {
    /// Adds a listener for messages of type `T` (`String`, `ByteString`, `Bytes`,
    /// `Vec<u8>` or `Packet<M>`), called with the message and the connection it came on.
    /// The handler's return value is sent back on that connection when it is a packet
    /// (see [`Reply`]). A `Packet<M>` listener registers `M`.
    fn listen<T, R, F>(&self, f: F) -> ListenerId<T>
    where
        T: Listen,
        R: Reply,
        F: Fn(T, &Self::Context) -> R + Send + Sync + 'static,
    {
        let handler = handler::<T, Self::Context, R, F>(f);
        ListenerId::new(self.add_handler(T::key(), registry_of::<T>(), handler))
    }

    /// Adds a listener for binary messages that are lent for the call ([`BinaryRef`]).
    /// While every binary listener borrows (these, and `Vec<u8>` ones), a message under
    /// 1 KiB is read where it arrived in the receive buffer: no allocation and no reference
    /// count, which is most of what a small echo costs in user space. Cancel it as a
    /// `Bytes` listener.
    fn listen_ref<R, F>(&self, f: F) -> ListenerId<Bytes>
    where
        R: Reply,
        F: Fn(BinaryRef<'_>, &Self::Context) -> R + Send + Sync + 'static,
    {
        ListenerId::new(self.add_handler(Key::Binary, Registry::new(), ref_handler(f)))
    }

    /// Adds a listener for PackMe message `M` that reads it as its generated view
    /// (`M::View`, e.g. `GetUserRequestRef<'_>`): strings borrow the received frame for the
    /// call, with no reference count each. Answer a request with `request.answer(..)`.
    /// Registers `M`; cancel it as a `Packet<M>` listener.
    fn listen_view<M, R, F>(&self, f: F) -> ListenerId<Packet<M>>
    where
        M: HasView + Send + Sync + 'static,
        R: Reply,
        F: for<'a> Fn(Packet<M::View<'a>>, &Self::Context) -> R + Send + Sync + 'static,
    {
        let handler = view_handler::<M, Self::Context, R, F>(f);
        let registry = registry_of::<Packet<M>>();
        ListenerId::new(self.add_handler(Key::Message(M::ID), registry, handler))
    }

    /// Removes a listener, with the same timing as adding one.
    fn cancel<T: Listen>(&self, listener: ListenerId<T>) {
        self.remove_handler(T::key(), listener.id);
    }

    /// Adds PackMe message types (a generated `registry()`): binary messages starting with
    /// a registered id are decoded as PackMe. A peer's registrations are the server's.
    /// Fails, changing nothing, if an id is already taken by another type.
    fn register(&self, registry: &Registry) -> Result<(), RegistryError> {
        self.add_registry(registry)
    }
}

impl<H: sealed::Host> Listeners for H {}

pub(crate) mod sealed {
    use packme::{Registry, RegistryError};

    use crate::listeners::handler::Handler;
    use crate::listeners::{Context, Key};

    /// Where the handlers of a server, a peer or a client go. Sealed: only the engine's
    /// types receive messages.
    #[allow(unreachable_pub)] // reachable as the supertrait of `Listeners`, not nameable
    pub trait Host {
        /// What handlers are called with: the connection a message came on.
        type Context: Context + 'static;

        /// Stores `handler` under `key` with the PackMe types it decodes; returns its id.
        #[doc(hidden)]
        fn add_handler(&self, key: Key, registry: Registry, handler: Handler<Self::Context>)
            -> u64;

        /// Removes the handler with `id` under `key`.
        #[doc(hidden)]
        fn remove_handler(&self, key: Key, id: u64);

        /// Adds PackMe message types.
        #[doc(hidden)]
        fn add_registry(&self, registry: &Registry) -> Result<(), RegistryError>;
    }
}

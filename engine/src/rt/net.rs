//! Sockets as the executor provides them: listeners, streams and their halves.

pub(crate) use monoio::io::Splitable;
pub(crate) use monoio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The read half of a split stream.
pub(crate) trait ReadHalf: monoio::io::AsyncReadRent {}
impl<T: monoio::io::AsyncReadRent> ReadHalf for T {}

/// The write half of a split stream.
pub(crate) trait WriteHalf: monoio::io::AsyncWriteRent {}
impl<T: monoio::io::AsyncWriteRent> WriteHalf for T {}

/// The read half of a split socket, which can also wait for the socket to be readable
/// without a buffer (see [`super::io::readable`]), and whose reads can be taken back
/// ([`super::io::read_more_cancelable`]).
pub(crate) trait SplitRead: ReadHalf + monoio::io::CancelableAsyncReadRent {
    /// Waits until the driver has seen the socket readable (epoll's readiness, no
    /// syscall; it may be a false positive, which the next read then waits out).
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + '_;
    /// The socket's descriptor (for a read that bypasses the executor, see
    /// [`super::io::read_ready`]).
    fn raw_fd(&self) -> std::os::fd::RawFd;
}

impl SplitRead for monoio::io::OwnedReadHalf<TcpStream> {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + '_ {
        // SAFETY: the stream lives in the `Rc` shared by the two halves for as long as this
        // half does, and is never moved out while both exist. `readable` only reads the
        // descriptor (to register the readiness wait); the write half takes `&mut` only
        // for the moment it clones the descriptor into a write operation, as monoio's own
        // halves do with each other.
        #[allow(unsafe_code)]
        let stream = unsafe { &*self.0.get() };
        stream.readable(true)
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        // SAFETY: as for `readable`.
        #[allow(unsafe_code)]
        let stream = unsafe { &*self.0.get() };
        std::os::fd::AsRawFd::as_raw_fd(stream)
    }
}

impl SplitRead for monoio::io::OwnedReadHalf<UnixStream> {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + '_ {
        // SAFETY: as for the TCP half above.
        #[allow(unsafe_code)]
        let stream = unsafe { &*self.0.get() };
        stream.readable(true)
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        // SAFETY: as for `readable`.
        #[allow(unsafe_code)]
        let stream = unsafe { &*self.0.get() };
        std::os::fd::AsRawFd::as_raw_fd(stream)
    }
}

/// A stream the engine serves or connects: split into halves owned by the reader and the
/// writer.
pub(crate) trait Stream:
    Splitable<OwnedRead = Self::Read, OwnedWrite = Self::Write>
{
    /// The read half.
    type Read: SplitRead + 'static;
    /// The write half.
    type Write: WriteHalf + 'static;
}

impl<T> Stream for T
where
    T: Splitable,
    T::OwnedRead: SplitRead + 'static,
    T::OwnedWrite: WriteHalf + 'static,
{
    type Read = T::OwnedRead;
    type Write = T::OwnedWrite;
}

/// Turns on TCP keepalive with the connection's keepalive timing: probes start after
/// `interval` of silence and a peer that answers none is gone at `timeout`. This is how a
/// vanished peer is found on ConnectMe TCP, which has no ping of its own (WebSocket
/// connections ping instead).
pub(crate) fn set_tcp_keepalive(stream: &TcpStream, keepalive: Option<crate::proto::Keepalive>) {
    const PROBES: u32 = 4;
    if let Some(keepalive) = keepalive {
        let every = (keepalive.timeout.saturating_sub(keepalive.interval) / PROBES)
            .max(std::time::Duration::from_secs(1));
        let _ = stream.set_tcp_keepalive(Some(keepalive.interval), Some(every), Some(PROBES));
    }
}

/// A stream that can be handed to another shard's thread as its file descriptor (a
/// session's resume lands on the shard that holds the session). Taking the descriptor
/// out deregisters it from this thread's driver.
pub(crate) trait Transferable: Stream + std::os::fd::AsRawFd + Sized {
    /// The descriptor, no longer known to this thread's driver.
    fn into_owned_fd(self) -> std::os::fd::OwnedFd;
    /// The descriptor, out of this thread's driver, from a stream the executor may still
    /// hold for a moment: io_uring holds it for a cancelled readiness wait until the
    /// cancellation completes, so there the descriptor is copied and the stream dropped
    /// (closed, not shut down; `into_owned_fd` requires that nothing else holds it).
    /// Under epoll nothing holds it, and the stream must leave the driver's set, so the
    /// descriptor is taken out.
    fn detach(self) -> std::io::Result<std::os::fd::OwnedFd> {
        if super::readiness() {
            return Ok(self.into_owned_fd());
        }
        let raw = std::os::fd::AsRawFd::as_raw_fd(&self);
        // SAFETY: the descriptor is open for as long as `self` lives, which is until the
        // copy is made.
        #[allow(unsafe_code)]
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        fd.try_clone_to_owned()
    }
    /// The stream again, registered with the calling thread's driver.
    fn from_owned_fd(fd: std::os::fd::OwnedFd) -> std::io::Result<Self>;
    /// The stream again from its two halves, without shutting its write side down (as
    /// dropping the write half would); `None` if they are halves of different streams.
    fn reunite(read: Self::Read, write: Self::Write) -> Option<Self>;
}

/// Takes a stream's descriptor out of it (and out of the thread's driver).
fn owned_fd(stream: impl std::os::fd::IntoRawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `into_raw_fd` gives up the stream's ownership of the descriptor, which is
    // open; the `OwnedFd` becomes its only owner.
    #[allow(unsafe_code)]
    unsafe {
        std::os::fd::OwnedFd::from_raw_fd(stream.into_raw_fd())
    }
}

impl Transferable for TcpStream {
    fn into_owned_fd(self) -> std::os::fd::OwnedFd {
        owned_fd(self)
    }

    fn reunite(read: Self::Read, write: Self::Write) -> Option<Self> {
        read.reunite(write).ok()
    }

    fn from_owned_fd(fd: std::os::fd::OwnedFd) -> std::io::Result<Self> {
        Self::from_std(std::net::TcpStream::from(fd))
    }
}

impl Transferable for UnixStream {
    fn into_owned_fd(self) -> std::os::fd::OwnedFd {
        owned_fd(self)
    }

    fn reunite(read: Self::Read, write: Self::Write) -> Option<Self> {
        read.reunite(write).ok()
    }

    fn from_owned_fd(fd: std::os::fd::OwnedFd) -> std::io::Result<Self> {
        Self::from_std(std::os::unix::net::UnixStream::from(fd))
    }
}

/// An accepted stream: read and written whole during the opening, then split, or handed
/// to another shard.
pub(crate) trait Accepted: Stream + Transferable + ReadHalf + WriteHalf + 'static {}
impl<T: Stream + Transferable + ReadHalf + WriteHalf + 'static> Accepted for T {}

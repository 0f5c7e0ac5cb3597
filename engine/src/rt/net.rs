//! Sockets as the executor provides them: listeners, streams and their halves.

pub(crate) use monoio::io::Splitable;
pub(crate) use monoio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The read half of a split stream.
pub(crate) trait ReadHalf: monoio::io::AsyncReadRent {}
impl<T: monoio::io::AsyncReadRent> ReadHalf for T {}

/// The write half of a split stream.
pub(crate) trait WriteHalf: monoio::io::AsyncWriteRent {}
impl<T: monoio::io::AsyncWriteRent> WriteHalf for T {}

/// A stream the engine serves or connects: split into halves owned by the reader and the
/// writer.
pub(crate) trait Stream:
    Splitable<OwnedRead = Self::Read, OwnedWrite = Self::Write>
{
    /// The read half.
    type Read: ReadHalf + 'static;
    /// The write half.
    type Write: WriteHalf + 'static;
}

impl<T> Stream for T
where
    T: Splitable,
    T::OwnedRead: ReadHalf + 'static,
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

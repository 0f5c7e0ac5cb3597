//! The read side of a connection, shared by server peers and clients: read into the
//! connection's buffer, cut messages with its decoder, answer pings, follow the close
//! handshake, and hand data messages to the endpoint's dispatch.

use std::io;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::buf::SliceMut;
use monoio::io::AsyncReadRent;

use crate::link::Link;
use crate::listeners::Received;
use crate::proto::{Decoder, Incoming, ProtocolError};

/// Smallest read a connection asks the kernel for. Small, because an idle connection
/// keeps its buffer; large messages reserve their whole frame at once.
pub(crate) const READ_CHUNK: usize = 4096;

/// Why a connection stopped reading.
pub(crate) enum Ended {
    /// The peer closed the socket.
    Eof,
    /// A socket error.
    Io(io::Error),
    /// The peer broke the protocol; a close with the matching code was sent.
    Protocol(ProtocolError),
    /// The peer sent a close frame (its code, if any).
    Closed(Option<u16>),
    /// This side stopped the connection (shutdown, close timeout, write failure).
    Stopped,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eof => f.write_str("peer closed the socket"),
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Closed(Some(code)) => write!(f, "peer closed with {code}"),
            Self::Closed(None) => f.write_str("peer closed without a code"),
            Self::Stopped => f.write_str("stopped by this side"),
        }
    }
}

/// Reads into the spare capacity of `buf`, after the bytes it already holds (monoio's
/// `read` on a plain `BytesMut` would write from its start).
pub(crate) async fn read_more<R: AsyncReadRent>(
    reader: &mut R,
    buf: BytesMut,
) -> (io::Result<usize>, BytesMut) {
    let (len, capacity) = (buf.len(), buf.capacity());
    let (result, slice) = reader.read(SliceMut::new(buf, len, capacity)).await;
    (result, slice.into_inner())
}

/// Reads and dispatches until the connection ends. `buf` may already hold bytes that
/// followed the handshake.
pub(crate) async fn read_loop<R: AsyncReadRent>(
    reader: &mut R,
    mut buf: BytesMut,
    mut decoder: Decoder,
    link: &Rc<Link>,
    mut on_message: impl FnMut(Received),
) -> Ended {
    loop {
        loop {
            match decoder.next(&mut buf) {
                Ok(Some(Incoming::Text(text))) => on_message(Received::Text(text)),
                Ok(Some(Incoming::Binary(data))) => on_message(Received::Binary(data)),
                Ok(Some(Incoming::Ping(payload))) => link.pong(&payload),
                Ok(Some(Incoming::Pong(_))) => {}
                Ok(Some(Incoming::Close(close))) => {
                    let code = close.map(|(code, _)| code);
                    link.peer_closed(code);
                    return Ended::Closed(code);
                }
                Ok(None) => break,
                Err(error) => {
                    link.fail(error.close_code(), &error.to_string());
                    return Ended::Protocol(error);
                }
            }
        }
        let wanted = decoder.wanted().max(buf.len() + 1);
        if buf.capacity() - buf.len() < READ_CHUNK / 4 || buf.capacity() < wanted {
            buf.reserve((wanted - buf.len()).max(READ_CHUNK));
        }
        let read = monoio::select! {
            result = read_more(reader, buf) => Some(result),
            _ = link.stopped() => None,
        };
        let Some((result, returned)) = read else {
            return Ended::Stopped;
        };
        buf = returned;
        match result {
            Ok(0) => return Ended::Eof,
            Ok(_) => {}
            Err(error) => return Ended::Io(error),
        }
    }
}

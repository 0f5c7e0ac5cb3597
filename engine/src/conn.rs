//! The read side of a connection, shared by server peers and clients: read into the
//! connection's buffer, cut messages with its decoder, answer pings, follow the close
//! handshake, and hand data messages to the endpoint's dispatch.

use std::future::Future;
use std::io;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::buf::SliceMut;
use monoio::io::AsyncReadRent;
use monoio::BufResult;
use packme::{BytesAtFront, TextAtFront};

use crate::link::Link;
use crate::listeners::Received;
use crate::proto::{Decoder, Incoming, Next, ProtocolError};

/// Smallest read a connection asks the kernel for, and the buffer a new or idle
/// connection holds: with completion I/O a pending read pins its buffer.
pub(crate) const MIN_READ: usize = 512;
/// Largest read size the adaptation grows to. Per-read costs dominate small reads (an
/// io_uring completion each), so a busy connection reads in big chunks.
const MAX_READ: usize = 64 * 1024;

/// Adapts a connection's read size to its traffic: doubles while reads fill the buffer,
/// halves while they use little of it, and gives a large buffer back once it is drained.
struct ReadSizer {
    size: usize,
}

impl ReadSizer {
    /// Makes room in `buf` for the next read, which must reach `wanted` bytes in total.
    fn prepare(&self, buf: &mut BytesMut, wanted: usize) {
        if buf.is_empty() && buf.capacity() > 2 * self.size {
            *buf = BytesMut::with_capacity(self.size);
        }
        let need = wanted.saturating_sub(buf.len()).max(self.size);
        if buf.capacity() - buf.len() < need {
            buf.reserve(need);
        }
    }

    /// Learns from a read of `read` bytes into `offered` bytes of room.
    fn observe(&mut self, read: usize, offered: usize) {
        if read == offered {
            self.size = (self.size * 2).min(MAX_READ);
        } else if read < self.size / 4 {
            self.size = (self.size / 2).max(MIN_READ);
        }
    }
}

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
/// `read` on a plain `BytesMut` would write from its start); `into_inner` on the returned
/// slice gives the buffer back.
///
/// Returns monoio's read future itself: wrapping it in an `async` block would store the
/// read operation twice (captured, then awaited), and this future lives in every idle
/// connection's task.
pub(crate) fn read_more<R: AsyncReadRent>(
    reader: &mut R,
    buf: BytesMut,
) -> impl Future<Output = BufResult<usize, SliceMut<BytesMut>>> + '_ {
    let (len, capacity) = (buf.len(), buf.capacity());
    reader.read(SliceMut::new(buf, len, capacity))
}

/// Why an HTTP head (upgrade request or response) could not be read.
pub(crate) enum HeadError<E> {
    /// The bytes are not an acceptable head.
    Invalid(E),
    /// The socket failed or closed first (`UnexpectedEof`).
    Io(io::Error),
}

/// Reads until `parse` recognises a complete head at the start of `buf`, and removes the
/// head's bytes; whatever followed it (early frames) stays in `buf`.
pub(crate) async fn read_head<R, T, E>(
    reader: &mut R,
    buf: &mut BytesMut,
    mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<T, HeadError<E>>
where
    R: AsyncReadRent,
{
    loop {
        if let Some((head, consumed)) = parse(buf).map_err(HeadError::Invalid)? {
            let _ = buf.split_to(consumed);
            return Ok(head);
        }
        buf.reserve(MIN_READ);
        let (result, returned) = read_more(reader, std::mem::take(buf)).await;
        *buf = returned.into_inner();
        match result {
            Ok(0) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(error) => return Err(HeadError::Io(error)),
        }
    }
}

/// Reads and dispatches until the connection ends. `buf` may already hold bytes that
/// followed the handshake.
///
/// Returns an `async move` block rather than being an `async fn`, so the arguments live in
/// the future's state once instead of twice: this state is most of what an idle
/// connection costs.
#[allow(clippy::manual_async_fn)] // deliberate, see above
pub(crate) fn read_loop<'a, R: AsyncReadRent>(
    reader: &'a mut R,
    mut buf: BytesMut,
    mut decoder: Decoder,
    link: &'a Rc<Link>,
    mut on_message: impl FnMut(Received<'_>) + 'a,
) -> impl Future<Output = Ended> + 'a {
    async move {
        let mut sizer = ReadSizer { size: MIN_READ };
        loop {
            loop {
                let taken = match decoder.next(&mut buf) {
                    Ok(Some(Next::Binary(len))) => {
                        on_message(Received::InPlace(BytesAtFront::new(&mut buf, len)));
                        continue;
                    }
                    Ok(Some(Next::Text(len))) => match TextAtFront::new(&mut buf, len) {
                        Ok(text) => {
                            on_message(Received::TextInPlace(text));
                            continue;
                        }
                        Err(_) => {
                            let error = ProtocolError::InvalidUtf8;
                            link.fail(error.close_code(), &error.to_string());
                            return Ended::Protocol(error);
                        }
                    },
                    Ok(Some(Next::Taken(taken))) => taken,
                    Ok(None) => break,
                    Err(error) => {
                        link.fail(error.close_code(), &error.to_string());
                        return Ended::Protocol(error);
                    }
                };
                match taken {
                    Incoming::Text(text) => on_message(Received::Text(text)),
                    Incoming::Binary(data) => on_message(Received::Binary(data)),
                    Incoming::Ping(payload) => link.pong(&payload),
                    Incoming::Pong(_) => {}
                    Incoming::Close(close) => {
                        let code = close.map(|(code, _)| code);
                        link.peer_closed(code);
                        return Ended::Closed(code);
                    }
                }
            }
            let wanted = decoder.wanted().max(buf.len() + 1);
            sizer.prepare(&mut buf, wanted);
            let offered = buf.capacity() - buf.len();
            let read = monoio::select! {
                result = read_more(reader, buf) => Some(result),
                _ = link.stopped() => None,
            };
            let Some((result, returned)) = read else {
                return Ended::Stopped;
            };
            buf = returned.into_inner();
            match result {
                Ok(0) => return Ended::Eof,
                Ok(n) => sizer.observe(n, offered),
                Err(error) => return Ended::Io(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read loop's state is most of an idle connection's memory (the perf `idle`
    /// scenario's target is 4 KiB per connection, kernel buffers aside): 400 bytes when
    /// this test was written, 632 before its futures stopped holding copies of their
    /// arguments.
    #[test]
    fn read_loop_state_stays_small() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = monoio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut reader, _writer) = monoio::io::Splitable::into_split(stream);
            let link = Link::new(1, crate::proto::Wire::Tcp, crate::bench_api::bench_limits());
            let decoder = Decoder::Tcp(crate::proto::tcp::TcpDeframer::new(1 << 20));
            let future = read_loop(&mut reader, BytesMut::new(), decoder, &link, |_| {});
            let size = std::mem::size_of_val(&future);
            assert!(size <= 448, "read loop state grew to {size} bytes");
        });
    }

    #[test]
    fn read_size_grows_under_load_and_gives_memory_back_when_idle() {
        let mut sizer = ReadSizer { size: MIN_READ };
        let mut buf = BytesMut::new();
        sizer.prepare(&mut buf, 1);
        assert_eq!(buf.capacity(), MIN_READ);
        for _ in 0..10 {
            sizer.observe(sizer.size, sizer.size);
        }
        assert_eq!(sizer.size, MAX_READ);
        sizer.prepare(&mut buf, 1);
        assert!(buf.capacity() >= MAX_READ);
        for _ in 0..10 {
            sizer.observe(10, sizer.size);
        }
        assert_eq!(sizer.size, MIN_READ);
        sizer.prepare(&mut buf, 1);
        assert_eq!(
            buf.capacity(),
            MIN_READ,
            "the big buffer is replaced once drained"
        );
        // A frame announced larger than the read size is reserved whole.
        sizer.prepare(&mut buf, 100_000);
        assert!(buf.capacity() >= 100_000);
    }
}

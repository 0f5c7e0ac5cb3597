//! Shared by the integration tests: the seed's messages written out by hand (the engine
//! crate has no build-time code generation of its own), servers on loopback port 0 with
//! two shards, and waiting helpers that bound every test in time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use connectme::{Client, ClientBuilder, Server, ServerBuilder};
use packme::bytes::BufMut;
use packme::{
    ByteString, Decode, DecodeError, DecodeRef, Encode, HasView, Message, MessageRef, Reader,
    Request,
};

/// Bound for anything a test waits for.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GetUserRequest {
    pub(crate) id: ByteString,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GetUserResponse {
    pub(crate) first_name: ByteString,
    pub(crate) last_name: ByteString,
    pub(crate) age: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntroductionMessage {
    pub(crate) name: ByteString,
    pub(crate) age: u8,
}

impl Encode for GetUserRequest {
    fn encoded_len(&self) -> usize {
        self.id.encoded_len()
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.id.encode(buf)
    }
}
impl Decode for GetUserRequest {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: Decode::decode(r)?,
        })
    }
}
impl Message for GetUserRequest {
    const ID: u32 = 0x096527D2;
    const NAME: &'static str = "GetUserRequest";
}
impl Request for GetUserRequest {
    type Response = GetUserResponse;
}

/// The view of [`GetUserRequest`], as the generator would write it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GetUserRequestRef<'a> {
    pub(crate) id: &'a str,
}
impl<'a> DecodeRef<'a> for GetUserRequestRef<'a> {
    const MIN_LEN: usize = 4;
    fn decode_ref(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: DecodeRef::decode_ref(r)?,
        })
    }
}
impl<'a> MessageRef<'a> for GetUserRequestRef<'a> {
    type Owned = GetUserRequest;
}
impl HasView for GetUserRequest {
    type View<'a> = GetUserRequestRef<'a>;
}

impl Encode for GetUserResponse {
    fn encoded_len(&self) -> usize {
        self.first_name.encoded_len() + self.last_name.encoded_len() + 1
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.first_name.encode(buf);
        self.last_name.encode(buf);
        self.age.encode(buf);
    }
}
impl Decode for GetUserResponse {
    const MIN_LEN: usize = 9;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            first_name: Decode::decode(r)?,
            last_name: Decode::decode(r)?,
            age: Decode::decode(r)?,
        })
    }
}
impl Message for GetUserResponse {
    const ID: u32 = 0x0CF24EDF;
    const NAME: &'static str = "GetUserResponse";
}

impl Encode for IntroductionMessage {
    fn encoded_len(&self) -> usize {
        self.name.encoded_len() + 1
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.name.encode(buf);
        self.age.encode(buf);
    }
}
impl Decode for IntroductionMessage {
    const MIN_LEN: usize = 5;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: Decode::decode(r)?,
            age: Decode::decode(r)?,
        })
    }
}
impl Message for IntroductionMessage {
    const ID: u32 = 0x168406D0;
    const NAME: &'static str = "IntroductionMessage";
}

pub(crate) fn alyx() -> GetUserResponse {
    GetUserResponse {
        first_name: "Alyx".into(),
        last_name: "Vance".into(),
        age: 19,
    }
}

/// A two-shard server on 127.0.0.1:0 with short timeouts.
pub(crate) fn server() -> ServerBuilder<()> {
    Server::builder()
        .shards(2)
        .pin_cores(false)
        .close_timeout(Duration::from_millis(500))
}

pub(crate) fn ws_url<S: Send + Sync + 'static>(server: &Server<S>) -> String {
    format!("ws://{}/", server.local_addr().expect("bound"))
}

/// Builds a client for `url`, lets `setup` add listeners, and connects.
pub(crate) fn connect(url: &str, setup: impl FnOnce(&Client)) -> Client {
    connect_with(Client::builder(url), setup)
}

/// Builds the client, lets `setup` add listeners, and connects.
pub(crate) fn connect_with(builder: ClientBuilder, setup: impl FnOnce(&Client)) -> Client {
    let client = builder.build().expect("client");
    setup(&client);
    client.connect_blocking().expect("connect");
    client
}

/// The next item, or a panic naming `what` after [`WAIT`].
pub(crate) fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `condition` until it holds, or panics naming `what`.
pub(crate) fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A hand-driven WebSocket client over a blocking socket, for sending what a real client
/// never would.
pub(crate) struct RawWs {
    pub(crate) stream: TcpStream,
}

impl RawWs {
    pub(crate) fn connect(addr: std::net::SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let head = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{head}"
        );
        Self { stream }
    }

    /// Sends one frame, masked with a fixed key unless `masked` is false.
    pub(crate) fn send_frame(&mut self, first_byte: u8, payload: &[u8], masked: bool) {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut frame = vec![first_byte];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).unwrap();
    }

    /// Reads one unmasked server frame: (first byte, payload).
    pub(crate) fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).expect("frame header");
        assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                self.stream.read_exact(&mut ext).unwrap();
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                self.stream.read_exact(&mut ext).unwrap();
                u64::from_be_bytes(ext) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload).unwrap();
        (head[0], payload)
    }

    /// Reads the server's close frame and returns its code; then expects end of stream.
    pub(crate) fn expect_close(&mut self) -> u16 {
        let (first, payload) = self.read_frame();
        assert_eq!(first, 0x88, "expected a close frame");
        let code = u16::from_be_bytes([payload[0], payload[1]]);
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing after the close frame");
        code
    }
}

/// Reads an HTTP response head.
pub(crate) fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            // A blocking read may be interrupted (io_uring's task work on this thread, left
            // by the driver probe of `Server::start`, shows up as a pending signal).
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

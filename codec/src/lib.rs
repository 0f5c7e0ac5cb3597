//! PackMe for Rust: the binary codec of the ConnectMe engine.
//!
//! PackMe is a schema-driven binary format described by JSON *manifests*. This crate is
//! wire-compatible with the Dart (`packme` 2.0.3) and JavaScript (`packme-js` 2.0.0)
//! libraries: the same manifests give the same message ids and the same bytes.
//!
//! The crate has three layers:
//!
//! * the **runtime** (always built): the [`Encode`] / [`Decode`] traits, the [`Message`]
//!   and [`Request`] traits implemented by generated types, [`Packet`] (a message with its
//!   transaction id), frame helpers ([`encode_frame`], [`decode_frame`], [`FrameHeader`])
//!   and the [`Registry`] of message ids an engine dispatches on. Decoding borrows string
//!   payloads from the received [`bytes::Bytes`] frame instead of copying them, either as
//!   shared [`ByteString`]s (owned types) or as `&str` (the generated borrowed views,
//!   [`DecodeRef`], [`decode_frame_ref`]).
//! * **JSON conversions** (feature `json`): [`json::ToJson`] / [`json::FromJson`] with the
//!   conventions of the golden vectors, for logging, fixtures and tools.
//! * the **compiler** (feature `compiler`): manifests to a [`schema::Schema`], a
//!   schema-driven codec working on JSON values, the Rust code generator and the
//!   [`build`] entry for build scripts. The `packme` binary (feature `cli`) wraps them.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use packme::{Decode, Encode, Message, Reader};
//!
//! // What the code generator emits for `"echo": [{"text": "string"}]` in `text.json`
//! // (abridged: generated code also implements `Decode` and the JSON traits).
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct EchoMessage { pub text: packme::ByteString }
//! impl Encode for EchoMessage {
//!     fn encoded_len(&self) -> usize { self.text.encoded_len() }
//!     fn encode<B: bytes::BufMut>(&self, buf: &mut B) { self.text.encode(buf) }
//! }
//! impl Decode for EchoMessage {
//!     const MIN_LEN: usize = 4;
//!     fn decode(r: &mut Reader<'_>) -> Result<Self, packme::DecodeError> {
//!         Ok(Self { text: Decode::decode(r)? })
//!     }
//! }
//! impl Message for EchoMessage { const ID: u32 = 0x2ba5c4bb; const NAME: &'static str = "EchoMessage"; }
//!
//! let mut buf = BytesMut::new();
//! packme::encode_frame(&EchoMessage { text: "Hi".into() }, 41, &mut buf);
//! assert_eq!(&buf[..], &[0x2b, 0xa5, 0xc4, 0xbb, 0, 0, 0, 41, 0, 0, 0, 2, b'H', b'i']);
//! let packet = packme::decode_frame::<EchoMessage>(buf.freeze())?;
//! assert_eq!((packet.transaction_id, &*packet.text), (41, "Hi"));
//! # Ok::<(), packme::DecodeError>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
// The docs above link into the `json` and `compiler` modules, which exist only with those
// features; docs.rs and the workspace build the docs with them.
#![cfg_attr(not(feature = "compiler"), allow(rustdoc::broken_intra_doc_links))]

mod at_front;
mod borrowed;
mod codec;
mod error;
mod frame;
mod hash;
mod reader;
mod registry;
mod timestamp;
mod utf8;

#[cfg(feature = "json")]
pub mod json;

#[cfg(feature = "compiler")]
pub mod build;
#[cfg(feature = "compiler")]
pub mod codegen;
#[cfg(feature = "compiler")]
pub mod dynamic;
#[cfg(feature = "compiler")]
pub mod names;
#[cfg(feature = "compiler")]
pub mod schema;

pub use bytes;
pub use bytestring::ByteString;

pub use at_front::BytesAtFront;
pub use borrowed::{decode_frame_ref, DecodeRef, HasView, MessageRef};
pub use codec::{option_len, Decode, Encode, Inherited, Message, Request};
pub use error::DecodeError;
pub use frame::{
    decode_frame, encode_frame, frame_len, next_transaction_id, FrameHeader, Packet, HEADER_LEN,
};
pub use hash::hash;
pub use reader::{Reader, DEFAULT_MAX_DEPTH, MAX_EMPTY_ELEMENTS};
pub use registry::{AnyPacket, MessageInfo, Registry, RegistryError};
pub use timestamp::Timestamp;
pub use utf8::{utf8_string, TextAtFront, Utf8Error};

/// Includes the Rust code that [`build::Config`] generated into `OUT_DIR`.
///
/// Use it inside a module of its own: `mod proto { packme::include_generated!("packme"); }`.
#[macro_export]
macro_rules! include_generated {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
    };
}

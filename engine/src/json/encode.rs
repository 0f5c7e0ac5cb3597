//! Outbound envelopes written straight into the frame's buffer: the keys in a fixed order,
//! strings escaped by serde_json's writer, the payload either a `Serialize` value or JSON
//! text already at hand (a relayed `p`, a broadcast encoded once), and no
//! `serde_json::Value` in between.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::codes::ErrorCode;
use super::envelope::{has_special, EnvelopeConfig, EnvelopeError, EnvelopeErrorKind};

/// The event of an error answer.
pub(crate) const SYS_ERROR: &str = "sys.error";

/// Milliseconds since the epoch now: the `t` of an outbound message is its serialisation
/// time, as in the reference.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why an envelope was not written. The buffer is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The payload did not serialise to a JSON object (`p` must be one).
    #[error("the payload is not a JSON object")]
    PayloadNotObject,
    /// The payload's `Serialize` failed (e.g. a map with non-string keys).
    #[error("the payload could not be serialised")]
    Serialize(#[source] serde_json::Error),
}

/// Everything of an outbound envelope but its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head<'a> {
    event: &'a str,
    version: &'a str,
    correlation: Option<&'a str>,
    seq: Option<u64>,
    timestamp_ms: u64,
}

impl<'a> Head<'a> {
    /// `e`, `v` and `t`; no `c`, no `s`.
    pub(crate) fn new(event: &'a str, version: &'a str, timestamp_ms: u64) -> Self {
        Head {
            event,
            version,
            correlation: None,
            seq: None,
            timestamp_ms,
        }
    }

    /// Sets `c` (replies and errors echo the request's).
    pub(crate) fn correlation(mut self, correlation: Option<&'a str>) -> Self {
        self.correlation = correlation;
        self
    }

    /// Sets `s`, the session sequence of a sequenced message (sessions-resume.md).
    pub(crate) fn seq(mut self, seq: Option<u64>) -> Self {
        self.seq = seq;
        self
    }

    /// Appends `{"v":…,"e":…,"p":<payload>,"c":…,"t":…,"s":…}` to `out`, the payload
    /// serialised in place.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        payload: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        self.open(out);
        let payload_start = out.len();
        if let Err(error) = payload.serialize(&mut serde_json::Serializer::new(&mut *out)) {
            out.truncate(start);
            return Err(EncodeError::Serialize(error));
        }
        if out.get(payload_start) != Some(&b'{') {
            out.truncate(start);
            return Err(EncodeError::PayloadNotObject);
        }
        self.close(out);
        Ok(())
    }

    /// Appends the envelope around `payload`, JSON text that must be one object (checked by
    /// its first and last bytes only: it comes from our own encoder or a validated `p`).
    pub(crate) fn encode_raw(&self, payload: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let payload = payload.trim_matches([' ', '\t', '\n', '\r']);
        if !(payload.starts_with('{') && payload.ends_with('}')) {
            return Err(EncodeError::PayloadNotObject);
        }
        self.open(out);
        out.extend_from_slice(payload.as_bytes());
        self.close(out);
        Ok(())
    }

    fn open(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"v\":");
        write_str(out, self.version);
        out.extend_from_slice(b",\"e\":");
        write_str(out, self.event);
        out.extend_from_slice(b",\"p\":");
    }

    fn close(&self, out: &mut Vec<u8>) {
        if let Some(c) = self.correlation {
            out.extend_from_slice(b",\"c\":");
            write_str(out, c);
        }
        out.extend_from_slice(b",\"t\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.timestamp_ms).as_bytes());
        if let Some(s) = self.seq {
            out.extend_from_slice(b",\"s\":");
            out.extend_from_slice(itoa::Buffer::new().format(s).as_bytes());
        }
        out.push(b'}');
    }
}

/// A JSON string: copied as it is when nothing in it needs an escape (the usual event,
/// version and correlation id), else escaped by serde_json's writer.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a `str` into a `Vec` cannot fail.
    let _ = s.serialize(&mut serde_json::Serializer::new(out));
}

/// Whether serde_json would escape anything in `bytes`: a quote, a backslash or a control
/// character.
fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        if has_special(u64::from_le_bytes(word)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

/// The payload of a `sys.error`: `{code, message, details?}`, plus the top-level
/// `retryAfterMs` the reference's rate limiter sends (§9, §19).
///
/// Messages are fixed texts or ones the application chose ([`SysError::message`]); the
/// constructors the engine uses take no error value, so an internal error's text cannot
/// reach a client (the reference sent `Internal server error: <exception>`, §18 C5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SysError<'a> {
    code: ErrorCode,
    message: Cow<'a, str>,
    details: Option<Cow<'a, str>>,
    retry_after_ms: Option<u64>,
}

impl<'a> SysError<'a> {
    /// `code` with its fixed message and no details.
    pub(crate) fn new(code: ErrorCode) -> Self {
        SysError {
            code,
            message: Cow::Borrowed(code.default_message()),
            details: None,
            retry_after_ms: None,
        }
    }

    /// 1500 with `{"errorId": id}` in details: the id is logged with the real cause, the
    /// client gets only the id.
    pub(crate) fn internal(error_id: u64) -> Self {
        let mut details = String::from("{\"errorId\":\"");
        details.push_str(&format!("{error_id:016x}"));
        details.push_str("\"}");
        SysError::new(ErrorCode::InternalError).details_raw(details)
    }

    /// 1010 with `retryAfterMs` at the top level and in details.
    pub(crate) fn rate_limited(retry_after_ms: u64) -> Self {
        let mut error = SysError::new(ErrorCode::RateLimitExceeded)
            .details_raw(format!("{{\"retryAfterMs\":{retry_after_ms}}}"));
        error.retry_after_ms = Some(retry_after_ms);
        error
    }

    /// The answer to a refused envelope: 1001 with `details.reason`, or 1002 with
    /// `details.version` (`null` when `v` was not a string), `supported` and `minimum`.
    pub(crate) fn from_envelope(error: &EnvelopeError, config: &EnvelopeConfig) -> Self {
        let kind = error.kind();
        let mut details = Vec::with_capacity(64);
        match kind {
            EnvelopeErrorKind::UnsupportedVersion(version) => {
                details.extend_from_slice(b"{\"version\":");
                match version {
                    Some(v) => write_str(&mut details, v),
                    None => details.extend_from_slice(b"null"),
                }
                details.extend_from_slice(b",\"supported\":[");
                for (i, v) in config.supported().enumerate() {
                    if i > 0 {
                        details.push(b',');
                    }
                    write_str(&mut details, v);
                }
                details.push(b']');
                if let Some(min) = config.minimum_version() {
                    details.extend_from_slice(b",\"minimum\":");
                    write_str(&mut details, min);
                }
                details.push(b'}');
            }
            _ => {
                details.extend_from_slice(b"{\"reason\":");
                write_str(&mut details, kind.reason());
                details.push(b'}');
            }
        }
        // Only `str`s were written into it.
        let details = String::from_utf8(details).unwrap_or_default();
        SysError {
            code: kind.code(),
            message: Cow::Owned(kind.to_string()),
            details: Some(Cow::Owned(details)),
            retry_after_ms: None,
        }
    }

    /// Replaces the message (an application's own `ctx.error` text).
    pub(crate) fn message(mut self, message: impl Into<Cow<'a, str>>) -> Self {
        self.message = message.into();
        self
    }

    /// Sets `details` to JSON text that is one object (e.g. from [`details_json`]).
    pub(crate) fn details_raw(mut self, details: impl Into<Cow<'a, str>>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// Appends the whole `sys.error` envelope (`head`'s event is replaced by `sys.error`).
    pub(crate) fn encode(&self, head: Head<'_>, out: &mut Vec<u8>) {
        let head = Head {
            event: SYS_ERROR,
            ..head
        };
        head.open(out);
        out.extend_from_slice(b"{\"code\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.code.as_u16()).as_bytes());
        out.extend_from_slice(b",\"message\":");
        write_str(out, &self.message);
        if let Some(details) = &self.details {
            out.extend_from_slice(b",\"details\":");
            out.extend_from_slice(details.as_bytes());
        }
        if let Some(ms) = self.retry_after_ms {
            out.extend_from_slice(b",\"retryAfterMs\":");
            out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        }
        out.push(b'}');
        head.close(out);
    }
}

/// Most characters of a client's own text (an event name, a version) a `sys.error`
/// repeats: enough to recognise it, never a way to make the server send back what a peer
/// sent many times over.
pub(crate) const ECHO_MAX_CHARS: usize = 64;

/// `text` as a `sys.error` may repeat it: at most [`ECHO_MAX_CHARS`] characters, then `…`.
pub(crate) fn clipped(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_MAX_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// Serialises `details` for [`SysError::details_raw`]; `None` when it is not an object.
pub(crate) fn details_json<T: Serialize + ?Sized>(details: &T) -> Option<String> {
    let text = serde_json::to_string(details).ok()?;
    text.starts_with('{').then_some(text)
}

impl EnvelopeError {
    /// The complete `sys.error` answering this refusal: the message's `c` when it was read,
    /// its `v` when supported (else the current version), `s` as the session layer assigns.
    pub(crate) fn encode_answer(
        &self,
        config: &EnvelopeConfig,
        seq: Option<u64>,
        timestamp_ms: u64,
        out: &mut Vec<u8>,
    ) {
        let version = self.version().unwrap_or(config.current());
        let head = Head::new(SYS_ERROR, version, timestamp_ms)
            .correlation(self.correlation())
            .seq(seq);
        SysError::from_envelope(self, config).encode(head, out);
    }
}

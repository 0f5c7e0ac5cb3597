//! The inbound envelope (websocket-core-features.md §3): one pass over a text frame that
//! borrows from it, then the reference's validation order, with every failure a typed
//! [`EnvelopeError`] instead of a silent drop or a crash.
//!
//! The pass is a serde visitor over the top-level object, generic over the JSON library
//! ([`JsonBackend`]) so the bench runs the same code on each. Every known key is read
//! leniently (any JSON type is accepted and classified), so a wrong type becomes a
//! validation error with the right code, and `c` is kept as soon as it is read: a message
//! that fails later, even on a syntax error after `c`, still gets its `sys.error` with `c`.
//! `p` is not parsed into a tree: the library's raw value captures its text, which the
//! handler later decodes into its own type.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::codes::ErrorCode;
use super::encode::clipped;

/// The versions a server accepts in `v` (§3, step 3), configurable where the reference's
/// minimum was not (§17 row 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeConfig {
    current: Box<str>,
    supported: Vec<Box<str>>,
    minimum: Option<Box<str>>,
    /// Whether `current` passes the minimum: a message without `v` is checked too.
    current_accepted: bool,
}

impl Default for EnvelopeConfig {
    /// Version `"1.0"`, the only supported one, no minimum: the reference's defaults.
    fn default() -> Self {
        EnvelopeConfig::new("1.0")
    }
}

impl EnvelopeConfig {
    /// `current` is what an inbound message without `v` is taken to be and what messages
    /// the server starts carry; it is always supported.
    pub fn new(current: impl Into<Box<str>>) -> Self {
        let current = current.into();
        EnvelopeConfig {
            supported: vec![current.clone()],
            current,
            minimum: None,
            current_accepted: true,
        }
    }

    /// Accepts `version` too (exact string match, as the reference).
    pub fn support(mut self, version: impl Into<Box<str>>) -> Self {
        let version = version.into();
        if !self.supported.contains(&version) {
            self.supported.push(version);
        }
        self
    }

    /// Refuses supported versions below `minimum`, compared as dotted integers (a version
    /// that is not dotted integers fails the test). A minimum above the current version
    /// refuses every message without `v` (as the reference: the default is checked too).
    pub fn minimum(mut self, minimum: impl Into<Box<str>>) -> Self {
        self.minimum = Some(minimum.into());
        self.current_accepted = self.accepts(&self.current);
        self
    }

    /// The current version.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The supported versions, the current one first.
    pub fn supported(&self) -> impl Iterator<Item = &str> {
        self.supported.iter().map(|v| &**v)
    }

    /// The minimum version, if set.
    pub fn minimum_version(&self) -> Option<&str> {
        self.minimum.as_deref()
    }

    /// Whether an inbound `v` passes: in the set, and not below the minimum.
    pub fn accepts(&self, version: &str) -> bool {
        self.supported.iter().any(|v| &**v == version)
            && match &self.minimum {
                None => true,
                Some(min) => matches!(
                    compare_versions(version, min),
                    Some(Ordering::Greater | Ordering::Equal)
                ),
            }
    }
}

/// Compares dotted-integer versions as the reference does: segment by segment, and when one
/// is a prefix of the other the longer ranks higher (`"1" < "1.0"`). `None` when either is
/// not dotted integers.
pub(crate) fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Some(Ordering::Equal),
            (Some(x), None) => return x.parse::<u64>().ok().map(|_| Ordering::Greater),
            (None, Some(y)) => return y.parse::<u64>().ok().map(|_| Ordering::Less),
            (Some(x), Some(y)) => {
                let order = x.parse::<u64>().ok()?.cmp(&y.parse::<u64>().ok()?);
                if order != Ordering::Equal {
                    // The rest must still be well formed.
                    return (a.chain(b).all(|s| s.parse::<u64>().is_ok())).then_some(order);
                }
            }
        }
    }
}

/// A valid inbound message, borrowing from the frame's text (and, for a defaulted `v`, from
/// the config). Strings with escapes are the only ones copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    event: Cow<'a, str>,
    version: Cow<'a, str>,
    payload: Cow<'a, str>,
    correlation: Option<Cow<'a, str>>,
    timestamp: Option<i64>,
}

impl<'a> Envelope<'a> {
    /// `e`: non-empty.
    pub(crate) fn event(&self) -> &str {
        &self.event
    }

    /// `v`, or the current version when the message had none (or `null`).
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// `p` as its JSON text, always an object: `{}` when the message had none.
    pub(crate) fn payload(&self) -> &str {
        &self.payload
    }

    /// `c`, to echo on replies and errors.
    pub(crate) fn correlation(&self) -> Option<&str> {
        self.correlation.as_deref()
    }

    /// `t`, milliseconds since the epoch as the client said; parsed, not trusted.
    #[cfg(any(test, feature = "bench-api"))]
    pub(crate) fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Whether `e` was borrowed from the frame (no escape in it), so routing it allocated
    /// nothing.
    #[cfg(any(test, feature = "bench-api"))]
    pub(crate) fn event_is_borrowed(&self) -> bool {
        matches!(self.event, Cow::Borrowed(_))
    }
}

/// Why an envelope was refused. Each maps to a `sys.error` code ([`EnvelopeErrorKind::code`]);
/// the `Display` texts are the fixed messages sent, never a parser's own text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeErrorKind {
    /// Not JSON, or not one complete JSON value (trailing data, nesting past the library's
    /// limit of 128, a number out of range).
    #[error("Invalid JSON format")]
    InvalidJson,
    /// JSON, but the top-level value is not an object.
    #[error("Invalid JSON format: the message must be an object")]
    NotAnObject,
    /// A key given twice (the reference's decoder kept the last; ambiguous, so refused).
    #[error("Invalid JSON format: duplicate key")]
    DuplicateKey,
    /// No `e`.
    #[error("Missing required field: event (e)")]
    MissingEvent,
    /// `e` is not a non-empty string (`null` included).
    #[error("Invalid event: must be a non-empty string")]
    InvalidEvent,
    /// `v` is a string that is not supported or is below the minimum (`Some`), or is not a
    /// string (`None`): the reference crashed there (§3, §18 B).
    #[error("Unsupported protocol version: {}", .0.as_deref().unwrap_or("v must be a string"))]
    UnsupportedVersion(Option<Box<str>>),
    /// `p` is present and not an object (`null`, an array or a scalar).
    #[error("Invalid payload: must be an object")]
    InvalidPayload,
    /// `c` is present, not `null` and not a string.
    #[error("Invalid correlation id: must be a string")]
    InvalidCorrelation,
    /// `t` is present, not `null` and not an integer that fits i64 (a float is not one).
    #[error("Invalid timestamp: must be an integer")]
    InvalidTimestamp,
}

impl EnvelopeErrorKind {
    /// The `sys.error` code: 1002 for a version, 1001 for everything else.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            EnvelopeErrorKind::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::InvalidProtocol,
        }
    }

    /// A stable machine-readable name, sent as `details.reason` with 1001.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            EnvelopeErrorKind::InvalidJson => "invalid_json",
            EnvelopeErrorKind::NotAnObject => "not_an_object",
            EnvelopeErrorKind::DuplicateKey => "duplicate_key",
            EnvelopeErrorKind::MissingEvent => "missing_event",
            EnvelopeErrorKind::InvalidEvent => "invalid_event",
            EnvelopeErrorKind::UnsupportedVersion(_) => "unsupported_version",
            EnvelopeErrorKind::InvalidPayload => "invalid_payload",
            EnvelopeErrorKind::InvalidCorrelation => "invalid_correlation",
            EnvelopeErrorKind::InvalidTimestamp => "invalid_timestamp",
        }
    }
}

/// A refused envelope: what was wrong, and what the `sys.error` answering it echoes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub(crate) struct EnvelopeError {
    kind: EnvelopeErrorKind,
    correlation: Option<Box<str>>,
    version: Option<Box<str>>,
    system_event: Option<Box<str>>,
}

impl EnvelopeError {
    /// What was wrong.
    pub(crate) fn kind(&self) -> &EnvelopeErrorKind {
        &self.kind
    }

    /// The `sys.error` code.
    #[cfg(any(test, feature = "bench-api"))]
    pub(crate) fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// The message's `c`, when it was a string and was read before the failure (also on a
    /// syntax error later in the text); `None` when `c` itself was the problem or was given
    /// twice.
    pub(crate) fn correlation(&self) -> Option<&str> {
        self.correlation.as_deref()
    }

    /// The message's `v` when it was read and is supported, to echo on the answer; `None`
    /// means the answer carries the current version.
    pub(crate) fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The message's `e` when it was read and is a `sys.*` event: a session's own requests
    /// (`sys.ack`, `sys.reconnect.request`) are answered outside its sequence even when
    /// their envelope is refused.
    pub(crate) fn system_event(&self) -> Option<&str> {
        self.system_event.as_deref()
    }
}

/// A JSON library the envelope pass runs on.
pub(crate) trait JsonBackend {
    /// The library's type that captures a value's text unparsed (and borrowed).
    type Raw<'a>: Deserialize<'a>;

    /// The captured text.
    fn raw_text<'r>(raw: &'r Self::Raw<'_>) -> &'r str;

    /// Runs `seed` over the whole of `text` and checks nothing follows; `false` on any
    /// error (whose text is dropped: it never reaches a client).
    fn run<'a>(text: &'a str, seed: ScanSeed<'_, 'a, Self>) -> bool
    where
        Self: Sized;
}

/// serde_json, with its `RawValue` for `p`.
#[cfg(any(test, feature = "bench-api"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct SerdeJson;

#[cfg(any(test, feature = "bench-api"))]
impl JsonBackend for SerdeJson {
    type Raw<'a> = &'a serde_json::value::RawValue;

    fn raw_text<'r>(raw: &'r Self::Raw<'_>) -> &'r str {
        raw.get()
    }

    fn run<'a>(text: &'a str, seed: ScanSeed<'_, 'a, Self>) -> bool {
        let mut de = serde_json::Deserializer::from_str(text);
        seed.deserialize(&mut de).and_then(|()| de.end()).is_ok()
    }
}

/// sonic-rs (SIMD), with its `LazyValue` for `p`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SonicRs;

impl JsonBackend for SonicRs {
    type Raw<'a> = sonic_rs::LazyValue<'a>;

    fn raw_text<'r>(raw: &'r Self::Raw<'_>) -> &'r str {
        raw.as_raw_str()
    }

    /// sonic-rs skips the values it is not asked to decode (a container under an unknown
    /// key or under a key of the wrong type) without checking their escapes, where
    /// serde_json checks them and stops at the first bad one (found by the
    /// `json_envelope` fuzz target). The parse stops there too: it runs on the text up to
    /// that point, which then ends inside a string, so the two libraries agree on the
    /// outcome and on the `c` read before it.
    fn run<'a>(text: &'a str, seed: ScanSeed<'_, 'a, Self>) -> bool {
        let suspect = text.bytes().any(|b| b == b'\\' || b < 0x20);
        let end = suspect
            .then(|| first_unsound(text.as_bytes(), None))
            .flatten()
            .unwrap_or(text.len());
        let mut de = sonic_rs::Deserializer::from_str(&text[..end]);
        seed.deserialize(&mut de).and_then(|()| de.end()).is_ok()
    }
}

/// Parses and validates one text frame: the plain shape every client sends in one pass
/// without a JSON library ([`scan_plain`]), anything else with the engine's JSON library
/// (sonic-rs; the module docs of `json` give the measurement), which decides every text the
/// plain pass is unsure of, so the outcome is the library's on every text.
pub(crate) fn parse<'a>(
    text: &'a str,
    config: &'a EnvelopeConfig,
) -> Result<Envelope<'a>, EnvelopeError> {
    match scan_plain(text) {
        Some(scan) => validate(scan, true, config),
        None => parse_with::<SonicRs>(text, config),
    }
}

/// [`parse`] on a given JSON library.
pub(crate) fn parse_with<'a, B: JsonBackend>(
    text: &'a str,
    config: &'a EnvelopeConfig,
) -> Result<Envelope<'a>, EnvelopeError> {
    let mut scan = Scan::default();
    let complete = B::run(
        text,
        ScanSeed {
            scan: &mut scan,
            text,
            backend: PhantomData,
        },
    );
    validate(scan, complete, config)
}

fn validate<'a>(
    scan: Scan<'a>,
    complete: bool,
    config: &'a EnvelopeConfig,
) -> Result<Envelope<'a>, EnvelopeError> {
    let Scan {
        object,
        duplicate,
        duplicate_c,
        e,
        v,
        c,
        t,
        p,
    } = scan;
    // Built only on the error path: the `c` to echo is the one read, unless it was the
    // problem or was given twice.
    let fail = |kind, version: Option<&str>| EnvelopeError {
        kind,
        correlation: match (&c, duplicate_c) {
            (Slot::Str(c), false) => Some(Box::from(&**c)),
            _ => None,
        },
        version: version.map(Box::from),
        system_event: match &e {
            Slot::Str(e) if e.starts_with("sys.") => Some(Box::from(&**e)),
            _ => None,
        },
    };
    // 1. JSON, and an object.
    if !complete {
        return Err(fail(EnvelopeErrorKind::InvalidJson, None));
    }
    if !object {
        return Err(fail(EnvelopeErrorKind::NotAnObject, None));
    }
    if duplicate {
        return Err(fail(EnvelopeErrorKind::DuplicateKey, None));
    }
    // 2. `e`.
    let event = match &e {
        Slot::Absent => return Err(fail(EnvelopeErrorKind::MissingEvent, None)),
        // A clone of the borrowed text (an owned one, unescaped, is rare).
        Slot::Str(e) if !e.is_empty() => e.clone(),
        _ => return Err(fail(EnvelopeErrorKind::InvalidEvent, None)),
    };
    // 3. `v`.
    let version = match v {
        Slot::Absent | Slot::Null if config.current_accepted => Cow::Borrowed(config.current()),
        Slot::Absent | Slot::Null => {
            let kind = EnvelopeErrorKind::UnsupportedVersion(Some(Box::from(config.current())));
            return Err(fail(kind, None));
        }
        Slot::Str(v) if config.accepts(&v) => v,
        Slot::Str(v) => {
            let kind = EnvelopeErrorKind::UnsupportedVersion(Some(Box::from(&*clipped(&v))));
            return Err(fail(kind, None));
        }
        Slot::Other => return Err(fail(EnvelopeErrorKind::UnsupportedVersion(None), None)),
    };
    // 4. `p`.
    let payload = match p {
        Payload::Absent => Cow::Borrowed("{}"),
        Payload::Object(p) => p,
        Payload::Other => return Err(fail(EnvelopeErrorKind::InvalidPayload, Some(&version))),
    };
    // 5. `t`, then `c` (last, as it moves out of the slot `fail` reads).
    let timestamp = match t {
        Timestamp::Absent | Timestamp::Null => None,
        Timestamp::Int(t) => Some(t),
        Timestamp::Other => return Err(fail(EnvelopeErrorKind::InvalidTimestamp, Some(&version))),
    };
    let correlation = match c {
        Slot::Absent | Slot::Null => None,
        Slot::Str(c) => Some(c),
        Slot::Other => {
            return Err(EnvelopeError {
                kind: EnvelopeErrorKind::InvalidCorrelation,
                correlation: None,
                version: Some(Box::from(&*version)),
                system_event: event.starts_with("sys.").then(|| Box::from(&*event)),
            })
        }
    };
    Ok(Envelope {
        event,
        version,
        payload,
        correlation,
        timestamp,
    })
}

/// What the pass collected, filled as the keys arrive.
#[derive(Debug, Default)]
pub(crate) struct Scan<'a> {
    object: bool,
    duplicate: bool,
    duplicate_c: bool,
    e: Slot<'a>,
    v: Slot<'a>,
    c: Slot<'a>,
    t: Timestamp,
    p: Payload<'a>,
}

/// A string-typed key read leniently.
#[derive(Debug, Default)]
enum Slot<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Other,
}

#[derive(Debug, Default)]
enum Timestamp {
    #[default]
    Absent,
    Null,
    Int(i64),
    Other,
}

#[derive(Debug, Default)]
enum Payload<'a> {
    #[default]
    Absent,
    Object(Cow<'a, str>),
    Other,
}

/// The seed a [`JsonBackend`] runs over the text: a visitor of the top-level value.
#[derive(Debug)]
pub(crate) struct ScanSeed<'s, 'a, B> {
    scan: &'s mut Scan<'a>,
    text: &'a str,
    backend: PhantomData<B>,
}

impl<'a, B: JsonBackend> DeserializeSeed<'a> for ScanSeed<'_, 'a, B> {
    type Value = ();

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a, B: JsonBackend> Visitor<'a> for ScanSeed<'_, 'a, B> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<(), M::Error> {
        let scan = self.scan;
        scan.object = true;
        while let Some(key) = map.next_key::<Key>()? {
            let seen = match key {
                Key::E => put(&mut scan.e, map.next_value()?),
                Key::V => put(&mut scan.v, map.next_value()?),
                Key::C => {
                    let seen = put(&mut scan.c, map.next_value()?);
                    scan.duplicate_c |= seen;
                    seen
                }
                Key::T => put(&mut scan.t, map.next_value()?),
                Key::P => {
                    let raw: B::Raw<'a> = map.next_value()?;
                    let raw = B::raw_text(&raw);
                    if !payload_is_sound(raw.as_bytes()) {
                        return Err(de::Error::custom("invalid JSON in p"));
                    }
                    put(&mut scan.p, classify_payload(self.text, raw))
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    false
                }
            };
            scan.duplicate |= seen;
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'a>>(self, mut seq: S) -> Result<(), S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Stores a key's value; `true` when the key was already there (the first value is kept).
fn put<T: Default + IsAbsent>(slot: &mut T, value: T) -> bool {
    if slot.is_absent() {
        *slot = value;
        false
    } else {
        true
    }
}

trait IsAbsent {
    fn is_absent(&self) -> bool;
}

impl IsAbsent for Slot<'_> {
    fn is_absent(&self) -> bool {
        matches!(self, Slot::Absent)
    }
}

impl IsAbsent for Timestamp {
    fn is_absent(&self) -> bool {
        matches!(self, Timestamp::Absent)
    }
}

impl IsAbsent for Payload<'_> {
    fn is_absent(&self) -> bool {
        matches!(self, Payload::Absent)
    }
}

/// Deepest nesting of `p` itself: with the envelope around it, 128 levels in all.
const MAX_PAYLOAD_DEPTH: usize = 127;

/// Whether `p`'s raw text, which the libraries skip without decoding, is sound JSON
/// text as far as skipping cannot tell: every escape valid (sonic-rs's skip does not
/// check a `\u`'s four hex digits; found by the `json_envelope` fuzz target), no control
/// character inside a string, and nested at most [`MAX_PAYLOAD_DEPTH`] deep (neither
/// library counts depth while skipping, and a handler decoding a deeper `p` would fail
/// or recurse that deep). The structure itself was checked by the library.
fn payload_is_sound(raw: &[u8]) -> bool {
    first_unsound(raw, Some(MAX_PAYLOAD_DEPTH)).is_none()
}

/// Where JSON text first has an invalid escape or a control character inside a string,
/// or (with `max_depth`) nests deeper than that; `None` if nowhere. Only strings and
/// brackets are looked at: the library checks the rest.
fn first_unsound(raw: &[u8], max_depth: Option<usize>) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if in_string {
            match byte {
                b'"' => in_string = false,
                b'\\' => match raw.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 1,
                    Some(b'u') => {
                        let digits = raw.get(i + 2..i + 6);
                        if !digits.is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit)) {
                            return Some(i);
                        }
                        i += 5;
                    }
                    _ => return Some(i),
                },
                0x00..=0x1f => return Some(i),
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if max_depth.is_some_and(|max| depth > max) {
                        return Some(i);
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Classifies `p` by its first byte and keeps its text, borrowed from the frame when the
/// library handed back a slice of it (both do for objects).
fn classify_payload<'a>(text: &'a str, raw: &str) -> Payload<'a> {
    let raw = raw.trim_start_matches([' ', '\t', '\n', '\r']);
    if !raw.starts_with('{') {
        return Payload::Other;
    }
    Payload::Object(match subslice(text, raw) {
        Some(borrowed) => Cow::Borrowed(borrowed),
        None => Cow::Owned(raw.to_owned()),
    })
}

/// `inner` as a slice of `outer` with `outer`'s lifetime, when it lies inside it. Address
/// arithmetic only: no unsafe.
fn subslice<'a>(outer: &'a str, inner: &str) -> Option<&'a str> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    outer.get(start..end)
}

/// A top-level key, recognised without allocating.
enum Key {
    E,
    P,
    C,
    T,
    V,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "e" => Key::E,
                    "p" => Key::P,
                    "c" => Key::C,
                    "t" => Key::T,
                    "v" => Key::V,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Drains a nested array or object so a wrong type is classified rather than refused.
fn drain_seq<'de, S: SeqAccess<'de>>(mut seq: S) -> Result<(), S::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, M: MapAccess<'de>>(mut map: M) -> Result<(), M::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Slot<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SlotVisitor;
        impl<'de> Visitor<'de> for SlotVisitor {
            type Value = Slot<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Slot::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Slot::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Slot::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Slot::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Slot::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Slot::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Slot::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Slot::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Slot::Other)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
                drain_seq(seq).map(|()| Slot::Other)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                drain_map(map).map(|()| Slot::Other)
            }
        }
        deserializer.deserialize_any(SlotVisitor)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Timestamp::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Timestamp::Other, Timestamp::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Timestamp::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Timestamp::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Timestamp::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Timestamp::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Timestamp::Other)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
                drain_seq(seq).map(|()| Timestamp::Other)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                drain_map(map).map(|()| Timestamp::Other)
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// The envelope's one pass over the bytes for the shape clients send: an object whose keys
/// and `e`/`v`/`c` strings have no escape, `v`/`c`/`t` possibly `null`, `t` an integer of
/// at most 18 digits, `p` an object, unknown keys of any value, nesting within
/// [`MAX_PAYLOAD_DEPTH`]. Every value is checked to be JSON as strictly as serde_json does
/// (string escapes and control characters, number and literal syntax), `p` to the
/// standard of [`payload_is_sound`]. `None` for anything else, malformed or merely unusual
/// (an escape in a key, a duplicate key, a float `t`, a BOM): the library's pass then
/// decides, so this pass only ever accepts what that one accepts, with the same result.
///
/// It exists because the library's pass (a serde visitor, a skip of `p`, then a second
/// look at `p`'s strings) cost more than the rest of a small echo's JSON work
/// (perf/README.md, "JSON echo, session 11").
pub(super) fn scan_plain(text: &str) -> Option<Scan<'_>> {
    let b = text.as_bytes();
    let mut scan = Scan {
        object: true,
        ..Scan::default()
    };
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        i += 1;
    } else {
        loop {
            if *b.get(i)? != b'"' {
                return None;
            }
            let (end, escaped) = skip_string(b, i)?;
            if escaped {
                return None;
            }
            let key = &b[i + 1..end - 1];
            i = skip_ws(b, end);
            if *b.get(i)? != b':' {
                return None;
            }
            i = skip_ws(b, i + 1);
            let absent = match key {
                b"e" => plain_slot(text, &mut i, &mut scan.e)?,
                b"v" => plain_slot(text, &mut i, &mut scan.v)?,
                b"c" => plain_slot(text, &mut i, &mut scan.c)?,
                b"t" => {
                    let absent = scan.t.is_absent();
                    let (end, t) = plain_timestamp(b, i)?;
                    scan.t = t;
                    i = end;
                    absent
                }
                b"p" => {
                    if *b.get(i)? != b'{' {
                        return None;
                    }
                    let absent = scan.p.is_absent();
                    let end = skip_value(b, i, MAX_PAYLOAD_DEPTH)?;
                    scan.p = Payload::Object(Cow::Borrowed(&text[i..end]));
                    i = end;
                    absent
                }
                _ => {
                    i = skip_value(b, i, MAX_PAYLOAD_DEPTH)?;
                    true
                }
            };
            if !absent {
                // A duplicate: the library's pass says which answer.
                return None;
            }
            i = skip_ws(b, i);
            match *b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(scan)
}

/// A plain string (no escape) or `null` at `*i` into `slot`; whether the slot was empty.
fn plain_slot<'a>(text: &'a str, i: &mut usize, slot: &mut Slot<'a>) -> Option<bool> {
    let b = text.as_bytes();
    let absent = slot.is_absent();
    match *b.get(*i)? {
        b'"' => {
            let (end, escaped) = skip_string(b, *i)?;
            if escaped {
                return None;
            }
            *slot = Slot::Str(Cow::Borrowed(&text[*i + 1..end - 1]));
            *i = end;
        }
        b'n' if b[*i..].starts_with(b"null") => {
            *slot = Slot::Null;
            *i += 4;
        }
        _ => return None,
    }
    Some(absent)
}

/// `t` as `null` or an integer of at most 18 digits (so it fits i64), ending where a number
/// ends; anything else (`-0`, a fraction, an exponent, more digits) is left to the library.
fn plain_timestamp(b: &[u8], start: usize) -> Option<(usize, Timestamp)> {
    if b[start..].starts_with(b"null") {
        return Some((start + 4, Timestamp::Null));
    }
    let negative = b.get(start) == Some(&b'-');
    let digits_start = start + usize::from(negative);
    let mut i = digits_start;
    let mut value: i64 = 0;
    while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        if i - digits_start == 18 {
            return None;
        }
        value = value * 10 + i64::from(d - b'0');
        i += 1;
    }
    let digits = i - digits_start;
    let leading_zero = b.get(digits_start) == Some(&b'0');
    if digits == 0
        || (leading_zero && (digits > 1 || negative))
        || matches!(b.get(i), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    Some((i, Timestamp::Int(if negative { -value } else { value })))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Skips the string opening at `b[start] == b'"'`: the index past its closing quote, and
/// whether it had an escape. `None` on a control character or an invalid escape (or no
/// end).
fn skip_string(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        // Eight bytes at a time while none of them is a quote, a backslash or a control
        // character.
        while let Some(chunk) = b.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            if has_special(word) {
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                    _ => return None,
                }
            }
            0x00..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// Whether any byte of `word` is `"`, `\` or below 0x20 (the classic zero-byte test; it
/// may also flag a byte right after a flagged one, which only ends the fast loop early).
pub(super) fn has_special(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    (zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | below_space)
        != 0
}

/// Skips the JSON value starting at `b[start]` (no whitespace before it), checked as
/// strictly as serde_json skips one, nested at most `max_depth` deep: the index past it.
/// No recursion: one bit per open container (1 for an object).
fn skip_value(b: &[u8], start: usize, max_depth: usize) -> Option<usize> {
    debug_assert!(max_depth < 128);
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    let mut i = start;
    loop {
        // A value at `i`.
        match *b.get(i)? {
            open @ (b'{' | b'[') => {
                depth += 1;
                if depth > max_depth {
                    return None;
                }
                let object = open == b'{';
                objects = (objects << 1) | u128::from(object);
                i = skip_ws(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if *b.get(i)? == close {
                    i += 1;
                    depth -= 1;
                    objects >>= 1;
                } else {
                    if object {
                        i = skip_key(b, i)?;
                    }
                    continue;
                }
            }
            b'"' => i = skip_string(b, i)?.0,
            b't' if b[i..].starts_with(b"true") => i += 4,
            b'f' if b[i..].starts_with(b"false") => i += 5,
            b'n' if b[i..].starts_with(b"null") => i += 4,
            b'-' | b'0'..=b'9' => i = skip_number(b, i)?,
            _ => return None,
        }
        // After a value: close containers until one goes on.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = skip_ws(b, i);
            let object = objects & 1 == 1;
            match *b.get(i)? {
                b',' => {
                    i = skip_ws(b, i + 1);
                    if object {
                        i = skip_key(b, i)?;
                    }
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            i += 1;
            depth -= 1;
            objects >>= 1;
        }
    }
}

/// Skips `"key"`, whitespace and the colon at `b[i]`, and the whitespace after it.
fn skip_key(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let i = skip_ws(b, skip_string(b, i)?.0);
    if *b.get(i)? != b':' {
        return None;
    }
    Some(skip_ws(b, i + 1))
}

/// Skips a number with JSON's syntax (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`);
/// its range is not checked, as neither library checks it when skipping.
fn skip_number(b: &[u8], start: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        let from = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = start + usize::from(b[start] == b'-');
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

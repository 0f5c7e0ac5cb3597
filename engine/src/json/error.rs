//! How a handler or middleware fails: [`HandlerError`], either an answer the application
//! chose (`sys.error` with its code, message and details) or an internal failure, which the
//! client sees only as 1500 with an error id while the cause goes to the log (the
//! reference sent the exception's text, websocket-core-features.md §18 C5).
//!
//! Any `std::error::Error` converts into it, so `?` works in handlers; it does not itself
//! implement `Error` (that is what makes the blanket conversion possible, as with anyhow).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use super::codes::ErrorCode;
use super::context::{Conn, PeerClosed, Request, SendError};
use super::encode::{details_json, now_ms, EncodeError, SysError};

/// Why a handler or middleware did not succeed.
pub struct HandlerError(Repr);

enum Repr {
    /// Answered as `sys.error {code, message, details?}`.
    Answer {
        code: u16,
        message: Cow<'static, str>,
        details: Option<Box<RawValue>>,
        /// The top-level `retryAfterMs` of a 1010 (§9, §19).
        retry_after_ms: Option<u64>,
    },
    /// Logged with an id; answered as 1500 carrying only the id.
    Internal(Box<dyn std::error::Error + 'static>),
}

impl HandlerError {
    /// An answer with an application's own `code` and `message`.
    pub fn new(code: u16, message: impl Into<Cow<'static, str>>) -> Self {
        HandlerError(Repr::Answer {
            code,
            message: message.into(),
            details: None,
            retry_after_ms: None,
        })
    }

    /// An answer with one of the protocol's codes and its fixed message.
    pub fn code(code: ErrorCode) -> Self {
        HandlerError::new(code.as_u16(), code.default_message())
    }

    /// 1009 for one field: "Validation failed for field: `field`", with
    /// `details.errors = [{field, reason}]` (an empty `field` is the payload itself).
    pub fn validation(field: &str, reason: &str) -> Self {
        #[derive(Serialize)]
        struct FieldError<'a> {
            field: &'a str,
            reason: &'a str,
        }
        #[derive(Serialize)]
        struct Details<'a> {
            errors: [FieldError<'a>; 1],
        }
        let message = if field.is_empty() {
            Cow::Borrowed(ErrorCode::ValidationFailed.default_message())
        } else {
            Cow::Owned(format!("Validation failed for field: {field}"))
        };
        HandlerError::new(ErrorCode::ValidationFailed.as_u16(), message).with_details(&Details {
            errors: [FieldError { field, reason }],
        })
    }

    /// 1010 with `retryAfterMs` at the top level and in `details`, as the reference's rate
    /// limiter sends it (what a rate-limiting middleware answers).
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        #[derive(Serialize)]
        struct Details {
            #[serde(rename = "retryAfterMs")]
            retry_after_ms: u64,
        }
        let mut error = HandlerError::code(ErrorCode::RateLimitExceeded)
            .with_details(&Details { retry_after_ms });
        if let Repr::Answer {
            retry_after_ms: top,
            ..
        } = &mut error.0
        {
            *top = Some(retry_after_ms);
        }
        error
    }

    /// An internal failure: logged with an id, never shown to the client.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + 'static>>) -> Self {
        HandlerError(Repr::Internal(error.into()))
    }

    /// Sets `details` (ignored unless it serialises to a JSON object).
    pub fn with_details<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        if let Repr::Answer { details, .. } = &mut self.0 {
            *details = details_json(value).and_then(|text| RawValue::from_string(text).ok());
        }
        self
    }

    /// The code sent: the answer's, or 1500 for an internal failure.
    pub fn wire_code(&self) -> u16 {
        match &self.0 {
            Repr::Answer { code, .. } => *code,
            Repr::Internal(_) => ErrorCode::InternalError.as_u16(),
        }
    }

    /// Writes the `sys.error` answering `request`, for an answer; `Err` for an internal one.
    pub(super) fn encode_app(
        &self,
        request: &Request,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        #[derive(Serialize)]
        struct Body<'a> {
            code: u16,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a RawValue>,
            #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
            retry_after_ms: Option<u64>,
        }
        match &self.0 {
            Repr::Answer {
                code,
                message,
                details,
                retry_after_ms,
            } => request.head(super::SYS_ERROR, now_ms()).encode(
                &Body {
                    code: *code,
                    message,
                    details: details.as_deref(),
                    retry_after_ms: *retry_after_ms,
                },
                out,
            ),
            Repr::Internal(_) => Err(EncodeError::PayloadNotObject),
        }
    }

    /// Sends the `sys.error` for this failure in answer to `request`; an internal one is
    /// logged first with the id the client gets.
    pub(super) fn answer(self, conn: &Conn, request: &Request) {
        match &self.0 {
            Repr::Answer { .. } => {
                let mut out = Vec::with_capacity(128);
                if self.encode_app(request, &mut out).is_ok() {
                    let _ = conn.send_frame(out);
                }
            }
            Repr::Internal(error) if connection_gone(conn, &**error) => {
                tracing::debug!(
                    connection = conn.peer.connection_id(),
                    event = request.event(),
                    "JSON handler ended: the connection is closed",
                );
            }
            Repr::Internal(error) => {
                let id = new_error_id();
                tracing::error!(
                    error_id = %format_args!("{id:016x}"),
                    connection = conn.peer.connection_id(),
                    event = request.event(),
                    error = %error,
                    "JSON handler failed",
                );
                conn.send_sys_error(request, &SysError::internal(id));
            }
        }
    }
}

/// Whether `error` only says the connection went away (a send failed because it closed):
/// nothing to answer, and nothing worth an error in the log.
fn connection_gone(conn: &Conn, error: &(dyn std::error::Error + 'static)) -> bool {
    conn.is_closed()
        || error.is::<PeerClosed>()
        || matches!(error.downcast_ref::<SendError>(), Some(SendError::Closed))
}

/// A fresh id for an internal failure: random, so ids from different shards and restarts
/// do not collide in the logs.
pub(super) fn new_error_id() -> u64 {
    fastrand::u64(..)
}

impl<E: std::error::Error + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::internal(error)
    }
}

impl From<ErrorCode> for HandlerError {
    fn from(code: ErrorCode) -> Self {
        HandlerError::code(code)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Answer {
                code,
                message,
                details,
                ..
            } => f
                .debug_struct("HandlerError")
                .field("code", code)
                .field("message", message)
                .field("details", &details.as_deref().map(RawValue::get))
                .finish(),
            Repr::Internal(error) => f
                .debug_tuple("HandlerError::Internal")
                .field(error)
                .finish(),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Answer { code, message, .. } => write!(f, "{code}: {message}"),
            Repr::Internal(error) => write!(f, "internal: {error}"),
        }
    }
}

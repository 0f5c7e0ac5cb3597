//! The numbers the JSON protocol puts on the wire: the `code` of a `sys.error` payload
//! (websocket-core-features.md §16.1, plus `resumeGap` from sessions-resume.md) and the
//! WebSocket close codes of §16.2. They live apart from the envelope so that the router,
//! the session layer and the client name one list instead of repeating literals.

/// The `code` of a `sys.error` payload.
///
/// The numbers overlap RFC 6455's close codes (1000–1015) with other meanings; they are kept
/// because the Dart `WsClient` and the applications written for the reference match on them
/// (§18 D6 names the overlap as a weakness of the reference, not something to change on the
/// wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1000 `unknown`.
    Unknown,
    /// 1001 `invalidProtocol`: the envelope is malformed (§3).
    InvalidProtocol,
    /// 1002 `unsupportedVersion`: `v` is not in the supported set or below the minimum.
    UnsupportedVersion,
    /// 1003 `authRequired`: a handler that requires auth and an anonymous session.
    AuthRequired,
    /// 1004 `authFailed`: bad credentials; also a wrong resume secret (sessions-resume.md).
    AuthFailed,
    /// 1005 `tokenExpired`.
    TokenExpired,
    /// 1006 `sessionNotFound`: a resume naming an unknown or expired session.
    SessionNotFound,
    /// 1007 `sessionDuplicate`: a connection resuming its own current session.
    SessionDuplicate,
    /// 1008 `handlerNotFound`: no handler for the event.
    HandlerNotFound,
    /// 1009 `validationFailed`: the payload does not fit the handler.
    ValidationFailed,
    /// 1010 `rateLimitExceeded`: carries `retryAfterMs`.
    RateLimitExceeded,
    /// 1011 `roomNotFound`.
    RoomNotFound,
    /// 1012 `forbidden`.
    Forbidden,
    /// 1013 `resumeGap`: a resume needs messages the replay buffer no longer has
    /// (sessions-resume.md).
    ResumeGap,
    /// 1500 `internalError`: the server failed; the payload never carries the cause.
    InternalError,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::Unknown,
        ErrorCode::InvalidProtocol,
        ErrorCode::UnsupportedVersion,
        ErrorCode::AuthRequired,
        ErrorCode::AuthFailed,
        ErrorCode::TokenExpired,
        ErrorCode::SessionNotFound,
        ErrorCode::SessionDuplicate,
        ErrorCode::HandlerNotFound,
        ErrorCode::ValidationFailed,
        ErrorCode::RateLimitExceeded,
        ErrorCode::RoomNotFound,
        ErrorCode::Forbidden,
        ErrorCode::ResumeGap,
        ErrorCode::InternalError,
    ];

    /// The number on the wire.
    pub const fn as_u16(self) -> u16 {
        match self {
            ErrorCode::Unknown => 1000,
            ErrorCode::InvalidProtocol => 1001,
            ErrorCode::UnsupportedVersion => 1002,
            ErrorCode::AuthRequired => 1003,
            ErrorCode::AuthFailed => 1004,
            ErrorCode::TokenExpired => 1005,
            ErrorCode::SessionNotFound => 1006,
            ErrorCode::SessionDuplicate => 1007,
            ErrorCode::HandlerNotFound => 1008,
            ErrorCode::ValidationFailed => 1009,
            ErrorCode::RateLimitExceeded => 1010,
            ErrorCode::RoomNotFound => 1011,
            ErrorCode::Forbidden => 1012,
            ErrorCode::ResumeGap => 1013,
            ErrorCode::InternalError => 1500,
        }
    }

    /// The code for a number, if it is one of ours.
    pub fn from_u16(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u16() == code)
    }

    /// The reference's constant name (`WsErrorCodes`), for logs and documentation.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Unknown => "unknown",
            ErrorCode::InvalidProtocol => "invalidProtocol",
            ErrorCode::UnsupportedVersion => "unsupportedVersion",
            ErrorCode::AuthRequired => "authRequired",
            ErrorCode::AuthFailed => "authFailed",
            ErrorCode::TokenExpired => "tokenExpired",
            ErrorCode::SessionNotFound => "sessionNotFound",
            ErrorCode::SessionDuplicate => "sessionDuplicate",
            ErrorCode::HandlerNotFound => "handlerNotFound",
            ErrorCode::ValidationFailed => "validationFailed",
            ErrorCode::RateLimitExceeded => "rateLimitExceeded",
            ErrorCode::RoomNotFound => "roomNotFound",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ResumeGap => "resumeGap",
            ErrorCode::InternalError => "internalError",
        }
    }

    /// The fixed `message` sent when nothing more specific is given. Fixed strings only:
    /// no error's `Display` text ever reaches a client (§18 C5).
    pub const fn default_message(self) -> &'static str {
        match self {
            ErrorCode::Unknown => "Unknown error",
            ErrorCode::InvalidProtocol => "Invalid protocol",
            ErrorCode::UnsupportedVersion => "Unsupported protocol version",
            ErrorCode::AuthRequired => "Authentication required",
            ErrorCode::AuthFailed => "Authentication failed",
            ErrorCode::TokenExpired => "Token expired",
            ErrorCode::SessionNotFound => "Session not found",
            ErrorCode::SessionDuplicate => "Session already active on this connection",
            ErrorCode::HandlerNotFound => "Handler not found",
            ErrorCode::ValidationFailed => "Validation failed",
            ErrorCode::RateLimitExceeded => "Rate limit exceeded",
            ErrorCode::RoomNotFound => "Room not found",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::ResumeGap => "Resume gap: messages since lastSeq are no longer buffered",
            ErrorCode::InternalError => "Internal server error",
        }
    }
}

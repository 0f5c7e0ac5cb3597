//! Why a peer's bytes were refused, and the close code that tells the peer.

/// A violation of the wire protocol (WebSocket or ConnectMe TCP framing) by the peer.
/// Each maps to the close code RFC 6455 section 7.4.1 prescribes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// RSV1..3 set while no extension was negotiated.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// Opcodes 0x3-0x7 and 0xB-0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A close, ping or pong without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload of {0} bytes (at most 125)")]
    ControlTooLong(u64),
    /// The most significant bit of a 64-bit length is set.
    #[error("64-bit payload length with the top bit set")]
    LengthTopBit,
    /// A client frame without a mask (section 5.1).
    #[error("unmasked frame from a client")]
    Unmasked,
    /// A server frame with a mask (section 5.1).
    #[error("masked frame from a server")]
    Masked,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A text message or close reason that is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close frame with a 1-byte payload.
    #[error("close frame payload of 1 byte")]
    CloseTooShort,
    /// A close code that must not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A frame larger than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Declared length.
        len: u64,
        /// Configured limit.
        max: usize,
    },
    /// A message (all fragments together) larger than the configured limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Length so far.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// A ConnectMe TCP frame whose total length is below the 8 bytes of its own prefix.
    #[error("TCP frame length {0} is shorter than its 8-byte prefix")]
    LengthBelowPrefix(u64),
}

impl ProtocolError {
    /// The close code to send before dropping the connection.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8 => close_code::INVALID_DATA,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => close_code::TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// Close codes (RFC 6455 section 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_DATA: u16 = 1007;
    /// A policy was violated (used for a slow consumer or a failed check).
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// An unexpected condition on the server.
    pub const INTERNAL: u16 = 1011;
    /// Try again later (the session could not be resumed: its replay had a gap).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The session was resumed on another connection (websocket_core's 4003).
    pub const REPLACED: u16 = 4003;
    /// No sign of life within the JSON protocol's heartbeat timeout (websocket_core's 4004).
    pub const INACTIVITY_TIMEOUT: u16 = 4004;
    /// The session expired (websocket_core's 4005).
    pub const SESSION_EXPIRED: u16 = 4005;

    /// Whether `code` may appear in a close frame on the wire (section 7.4).
    pub fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

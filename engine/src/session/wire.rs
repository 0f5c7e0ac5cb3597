//! The session extension's control messages and how they look on the wire.
//!
//! A connection that negotiated the extension (`x-connectme-session` in the WebSocket
//! upgrade, or a hello as the first frame on ConnectMe TCP) carries these in session
//! frames (opcode 0x3, or a TCP length prefix with its top bit set), beside its data
//! messages, which stay exactly as ConnectMe sends them. Data messages are numbered by
//! position, never on the wire: the n-th data message a side sends on a session is its
//! number n, on whatever connection it travels. Each control message is one tag byte and
//! big-endian fields; an id and a secret are 16 bytes each; a text is a `u16` length and
//! UTF-8.

use std::fmt;

/// A session's public id: 128 random bits, written as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

/// A session's resume secret: 128 random bits known only to its client.
#[derive(Clone, Copy)]
pub(crate) struct Secret(pub [u8; 16]);

impl SessionId {
    pub(crate) fn random() -> Self {
        Self(random_bytes())
    }

    /// Parses 32 hex digits. Either case is read (the server writes lower case): the id
    /// is bytes, so `AB..` and `ab..` name the same session, and a resume still needs the
    /// session's secret.
    pub fn parse(hex: &str) -> Option<Self> {
        parse_hex(hex).map(Self)
    }
}

impl Secret {
    pub(crate) fn random() -> Self {
        Self(random_bytes())
    }

    pub(crate) fn parse(hex: &str) -> Option<Self> {
        parse_hex(hex).map(Self)
    }

    /// Compares in time independent of where the first difference is.
    pub(crate) fn matches(&self, other: &Secret) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    pub(crate) fn to_hex(self) -> String {
        to_hex(&self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // The OS generator; without it no secret can be trusted, so there is no fallback.
    getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
    bytes
}

fn to_hex(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(hex: &str) -> Option<[u8; 16]> {
    let hex = hex.as_bytes();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// A request to resume a session: what the client kept of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resume {
    pub id: SessionId,
    pub secret: Secret,
    /// The number of the last data message the client processed (0 if none).
    pub last_seq: u64,
}

/// The extension's token in `Sec-WebSocket-Extensions`.
pub(crate) const EXTENSION: &str = "x-connectme-session";

impl Resume {
    /// The extension offer for the WebSocket upgrade, carrying this resume request.
    pub(crate) fn extension_offer(resume: Option<&Resume>) -> String {
        match resume {
            None => EXTENSION.to_owned(),
            Some(r) => format!(
                "{EXTENSION}; resume={}.{}.{}",
                r.id,
                r.secret.to_hex(),
                r.last_seq
            ),
        }
    }

    /// The session offer in a `Sec-WebSocket-Extensions` header value: `None` if the
    /// extension is not offered, `Some(None)` for a new session, `Some(Some(..))` to
    /// resume. A malformed resume parameter is treated as no resume (the client gets a
    /// new session, and is told the resume failed).
    pub(crate) fn from_extension_offer(header: &str) -> Option<Result<Option<Resume>, ()>> {
        header.split(',').find_map(|offer| {
            let mut parts = offer.split(';').map(str::trim);
            if !parts.next()?.eq_ignore_ascii_case(EXTENSION) {
                return None;
            }
            let resume = parts.find_map(|p| p.strip_prefix("resume="));
            Some(match resume {
                None => Ok(None),
                Some(value) => Self::parse_triple(value.trim_matches('"'))
                    .map(Some)
                    .ok_or(()),
            })
        })
    }

    fn parse_triple(value: &str) -> Option<Resume> {
        let mut parts = value.split('.');
        let id = SessionId::parse(parts.next()?)?;
        let secret = Secret::parse(parts.next()?)?;
        let last_seq = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Resume {
            id,
            secret,
            last_seq,
        })
    }
}

/// One control message.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Client to server, the first frame on ConnectMe TCP (a WebSocket client sends it in
    /// the upgrade instead): a new session, or a resume.
    Hello(Option<Resume>),
    /// Either way: the sender processed every data message up to `seq`; the receiver may
    /// forget them.
    Ack { seq: u64 },
    /// Server to client, first on a connection that did not resume: the new session.
    /// `refused` is the error code of a resume that failed (1004, 1006, 1013).
    Created {
        id: SessionId,
        secret: Secret,
        user: Option<String>,
        refused: Option<u16>,
    },
    /// Server to client, first on a connection that resumed. `replayed` data messages
    /// follow, numbered from `last_seq + 1`; the server processed `received` of the
    /// client's data messages, so the client sends again those after it.
    Restored {
        last_seq: u64,
        replayed: u64,
        received: u64,
    },
    /// Server to client: a message was refused by the session's rate limit.
    RateLimited { retry_after_ms: u32 },
}

const HELLO: u8 = 1;
const ACK: u8 = 2;
const CREATED: u8 = 3;
const RESTORED: u8 = 4;
const RATE_LIMITED: u8 = 5;

impl Control {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Self::Hello(resume) => {
                out.push(HELLO);
                if let Some(r) = resume {
                    out.extend_from_slice(&r.id.0);
                    out.extend_from_slice(&r.secret.0);
                    out.extend_from_slice(&r.last_seq.to_be_bytes());
                }
            }
            Self::Ack { seq } => {
                out.push(ACK);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Self::Created {
                id,
                secret,
                user,
                refused,
            } => {
                out.push(CREATED);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&secret.0);
                out.extend_from_slice(&refused.unwrap_or(0).to_be_bytes());
                if let Some(user) = user {
                    let user = &user.as_bytes()[..user.len().min(u16::MAX as usize)];
                    out.extend_from_slice(&(user.len() as u16).to_be_bytes());
                    out.extend_from_slice(user);
                }
            }
            Self::Restored {
                last_seq,
                replayed,
                received,
            } => {
                out.push(RESTORED);
                for n in [last_seq, replayed, received] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
            Self::RateLimited { retry_after_ms } => {
                out.push(RATE_LIMITED);
                out.extend_from_slice(&retry_after_ms.to_be_bytes());
            }
        }
        out
    }

    /// Decodes one control message; `None` for anything malformed (the peer broke the
    /// extension's protocol).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, mut rest) = bytes.split_first()?;
        let control = match tag {
            HELLO if rest.is_empty() => Self::Hello(None),
            HELLO => Self::Hello(Some(Resume {
                id: SessionId(take(&mut rest)?),
                secret: Secret(take(&mut rest)?),
                last_seq: u64::from_be_bytes(take(&mut rest)?),
            })),
            ACK => Self::Ack {
                seq: u64::from_be_bytes(take(&mut rest)?),
            },
            CREATED => {
                let id = SessionId(take(&mut rest)?);
                let secret = Secret(take(&mut rest)?);
                let refused = u16::from_be_bytes(take(&mut rest)?);
                let user = if rest.is_empty() {
                    None
                } else {
                    let len = u16::from_be_bytes(take(&mut rest)?) as usize;
                    let (text, tail) = (rest.get(..len)?, &rest[len..]);
                    rest = tail;
                    Some(std::str::from_utf8(text).ok()?.to_owned())
                };
                Self::Created {
                    id,
                    secret,
                    user,
                    refused: (refused != 0).then_some(refused),
                }
            }
            RESTORED => Self::Restored {
                last_seq: u64::from_be_bytes(take(&mut rest)?),
                replayed: u64::from_be_bytes(take(&mut rest)?),
                received: u64::from_be_bytes(take(&mut rest)?),
            },
            RATE_LIMITED => Self::RateLimited {
                retry_after_ms: u32::from_be_bytes(take(&mut rest)?),
            },
            _ => return None,
        };
        rest.is_empty().then_some(control)
    }
}

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resume() -> Resume {
        Resume {
            id: SessionId([0xab; 16]),
            secret: Secret([0x01; 16]),
            last_seq: 42,
        }
    }

    #[test]
    fn every_message_round_trips_and_truncations_are_refused() {
        let messages = [
            Control::Hello(None),
            Control::Hello(Some(resume())),
            Control::Ack { seq: u64::MAX },
            Control::Created {
                id: SessionId([7; 16]),
                secret: Secret([9; 16]),
                user: Some("ünïcode".into()),
                refused: Some(1013),
            },
            Control::Created {
                id: SessionId([7; 16]),
                secret: Secret([9; 16]),
                user: None,
                refused: None,
            },
            Control::Restored {
                last_seq: 1,
                replayed: 2,
                received: 3,
            },
            Control::RateLimited {
                retry_after_ms: 1500,
            },
        ];
        for message in messages {
            let bytes = message.encode();
            let back = Control::decode(&bytes).expect("decodes");
            assert_eq!(back.encode(), bytes, "{message:?}");
            for end in 1..bytes.len() {
                // A hello with no resume is a prefix of one with it: both are valid.
                if bytes[0] == HELLO && end == 1 {
                    continue;
                }
                // A created message without its user is valid too.
                if bytes[0] == CREATED && end == 35 {
                    continue;
                }
                assert!(
                    Control::decode(&bytes[..end]).is_none(),
                    "{message:?} cut at {end}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Control::decode(&longer).is_none(), "trailing bytes");
        }
        assert!(Control::decode(&[]).is_none());
        assert!(Control::decode(&[99]).is_none());
    }

    #[test]
    fn exact_bytes_of_an_ack_and_a_restore() {
        assert_eq!(
            Control::Ack { seq: 0x0102 }.encode(),
            [2, 0, 0, 0, 0, 0, 0, 1, 2]
        );
        let restored = Control::Restored {
            last_seq: 5,
            replayed: 3,
            received: 9,
        }
        .encode();
        assert_eq!(restored[0], 4);
        assert_eq!(restored.len(), 25);
        assert_eq!(restored[24], 9);
    }

    #[test]
    fn the_upgrade_offer_carries_a_resume() {
        let offer = Resume::extension_offer(Some(&resume()));
        assert_eq!(
            offer,
            format!(
                "x-connectme-session; resume={}.{}.42",
                "ab".repeat(16),
                "01".repeat(16)
            )
        );
        let parsed = Resume::from_extension_offer(&format!("permessage-deflate, {offer}"))
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(parsed.id, resume().id);
        assert!(parsed.secret.matches(&resume().secret));
        assert_eq!(parsed.last_seq, 42);
        assert!(matches!(
            Resume::from_extension_offer("X-ConnectMe-Session"),
            Some(Ok(None))
        ));
        assert!(Resume::from_extension_offer("permessage-deflate").is_none());
        assert!(matches!(
            Resume::from_extension_offer("x-connectme-session; resume=zz.01.3"),
            Some(Err(()))
        ));
    }

    #[test]
    fn secrets_compare_whole() {
        let a = Secret([1; 16]);
        let mut b = [1; 16];
        assert!(a.matches(&Secret(b)));
        b[15] = 2;
        assert!(!a.matches(&Secret(b)));
        assert_eq!(
            SessionId::parse(&SessionId([0xfe; 16]).to_string()),
            Some(SessionId([0xfe; 16]))
        );
        assert_eq!(SessionId::parse("fe"), None);
    }
}

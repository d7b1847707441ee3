//! The connection handshake, as pure data.
//!
//! On connect both peers send a [`Hello`], read the other's, decide with
//! [`check`], then send a one-byte verdict and read the other's
//! ([`conclude`]). Because each side checks both directions and reports its
//! verdict, a mismatch fails the connect on both sides, each with an error
//! naming both types. The byte layout is in `docs/wire-format.md`.
//!
//! ```
//! use ipc_core::handshake::{check, conclude, Hello, Schema, VERDICT_ACCEPT};
//! let a = Hello::new(&Schema::bytes(), 10, 1000, 4096);
//! let b = Hello::new(&Schema::bytes(), 20, 1000, 1 << 20);
//! let decoded = Hello::decode(&b.encode()).unwrap();
//! let peer = conclude(check(&a, &decoded), VERDICT_ACCEPT).unwrap();
//! assert_eq!(peer.pid, 20);
//! assert_eq!(peer.max_message_size, 4096); // the smaller of the two
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::error::{Direction, Error, Result};

/// The first four bytes of every hello.
pub const MAGIC: [u8; 4] = *b"IPCX";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Longest type name carried in a hello, in bytes.
pub const MAX_TYPE_NAME: usize = 256;
/// Size of the fixed part of a hello.
pub const HELLO_FIXED_LEN: usize = 44;
/// Largest possible encoded hello.
pub const MAX_HELLO_LEN: usize = HELLO_FIXED_LEN + 2 * MAX_TYPE_NAME;

/// Verdict byte: the connection is accepted.
pub const VERDICT_ACCEPT: u8 = 0;
/// Verdict byte: protocol versions differ.
pub const VERDICT_VERSION: u8 = 1;
/// Verdict byte: message types differ.
pub const VERDICT_SCHEMA: u8 = 2;
/// Verdict byte: the peer's uid is not allowed.
pub const VERDICT_PERMISSION: u8 = 3;
/// Verdict byte: the hello was malformed.
pub const VERDICT_MALFORMED: u8 = 4;

/// A message type as the handshake names it: a name and a structural
/// fingerprint. Fingerprint 0 means "raw bytes, any type".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeTag {
    /// The type's wire name.
    pub name: Cow<'static, str>,
    /// Its structural fingerprint; 0 accepts anything.
    pub fingerprint: u64,
}

impl TypeTag {
    /// Raw bytes: matches every type.
    pub const BYTES: TypeTag = TypeTag {
        name: Cow::Borrowed("bytes"),
        fingerprint: 0,
    };

    /// A named type with a fingerprint.
    pub fn new(name: impl Into<Cow<'static, str>>, fingerprint: u64) -> TypeTag {
        TypeTag {
            name: name.into(),
            fingerprint,
        }
    }

    fn matches(&self, other: &TypeTag) -> bool {
        self.fingerprint == 0 || other.fingerprint == 0 || self.fingerprint == other.fingerprint
    }
}

impl fmt::Display for TypeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fingerprint == 0 {
            write!(f, "`{}` (any)", self.name)
        } else {
            write!(
                f,
                "`{}` (fingerprint {:#018x})",
                self.name, self.fingerprint
            )
        }
    }
}

/// What a channel sends and receives, announced in the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema {
    /// The type this side sends.
    pub send: TypeTag,
    /// The type this side receives.
    pub recv: TypeTag,
    version: u16,
}

impl Schema {
    /// Raw bytes both ways.
    pub fn bytes() -> Schema {
        Schema::new(TypeTag::BYTES, TypeTag::BYTES)
    }

    /// A schema sending `send` and receiving `recv`.
    pub fn new(send: TypeTag, recv: TypeTag) -> Schema {
        Schema {
            send,
            recv,
            version: PROTOCOL_VERSION,
        }
    }

    /// Announces another protocol version. Only for testing how peers of
    /// different versions refuse each other.
    #[doc(hidden)]
    pub fn with_protocol_version(mut self, version: u16) -> Schema {
        self.version = version;
        self
    }

    /// The protocol version announced.
    pub fn protocol_version(&self) -> u16 {
        self.version
    }
}

impl Default for Schema {
    fn default() -> Schema {
        Schema::bytes()
    }
}

/// One side's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// Process id of the sender.
    pub pid: u32,
    /// User id of the sender (as claimed; transports verify it where the
    /// kernel can).
    pub uid: u32,
    /// Largest message the sender accepts.
    pub max_message_size: u64,
    /// What the sender sends.
    pub send: TypeTag,
    /// What the sender receives.
    pub recv: TypeTag,
}

impl Hello {
    /// A hello for `schema` from process `pid` of user `uid`.
    pub fn new(schema: &Schema, pid: u32, uid: u32, max_message_size: usize) -> Hello {
        Hello {
            version: schema.version,
            pid,
            uid,
            max_message_size: max_message_size as u64,
            send: schema.send.clone(),
            recv: schema.recv.clone(),
        }
    }

    /// Encodes the hello, little-endian, as `docs/wire-format.md` lays out.
    /// Type names longer than [`MAX_TYPE_NAME`] are cut at a character boundary.
    pub fn encode(&self) -> Vec<u8> {
        let send = truncated(&self.send.name);
        let recv = truncated(&self.recv.name);
        let mut b = Vec::with_capacity(HELLO_FIXED_LEN + send.len() + recv.len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.pid.to_le_bytes());
        b.extend_from_slice(&self.uid.to_le_bytes());
        b.extend_from_slice(&self.max_message_size.to_le_bytes());
        b.extend_from_slice(&self.send.fingerprint.to_le_bytes());
        b.extend_from_slice(&self.recv.fingerprint.to_le_bytes());
        b.extend_from_slice(&(send.len() as u16).to_le_bytes());
        b.extend_from_slice(&(recv.len() as u16).to_le_bytes());
        b.extend_from_slice(send.as_bytes());
        b.extend_from_slice(recv.as_bytes());
        b
    }

    /// Decodes and validates a peer's hello.
    ///
    /// # Errors
    /// [`Error::VersionMismatch`] when the magic is right but the version is
    /// not ours (checked before anything else, so any future layout is
    /// refused cleanly); [`Error::Protocol`] for anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<Hello> {
        if bytes.len() < 6 || bytes[..4] != MAGIC {
            return Err(Error::protocol(
                "the peer's hello does not start with \"IPCX\": it is not an ipcx peer",
            ));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch {
                local: PROTOCOL_VERSION,
                remote: version,
            });
        }
        if bytes.len() < HELLO_FIXED_LEN {
            return Err(Error::protocol(format!(
                "the peer's hello is {} bytes, shorter than the fixed {HELLO_FIXED_LEN}",
                bytes.len()
            )));
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let send_len = usize::from(u16_at(40));
        let recv_len = usize::from(u16_at(42));
        if send_len > MAX_TYPE_NAME || recv_len > MAX_TYPE_NAME {
            return Err(Error::protocol(
                "the peer's hello has a type name over 256 bytes",
            ));
        }
        if bytes.len() != HELLO_FIXED_LEN + send_len + recv_len {
            return Err(Error::protocol(format!(
                "the peer's hello is {} bytes but its header says {}",
                bytes.len(),
                HELLO_FIXED_LEN + send_len + recv_len
            )));
        }
        let name = |from: usize, len: usize| -> Result<Cow<'static, str>> {
            std::str::from_utf8(&bytes[from..from + len])
                .map(|s| Cow::Owned(s.to_string()))
                .map_err(|_| Error::protocol("the peer's hello has a type name that is not UTF-8"))
        };
        Ok(Hello {
            version,
            pid: u32_at(8),
            uid: u32_at(12),
            max_message_size: u64_at(16),
            send: TypeTag {
                fingerprint: u64_at(24),
                name: name(HELLO_FIXED_LEN, send_len)?,
            },
            recv: TypeTag {
                fingerprint: u64_at(32),
                name: name(HELLO_FIXED_LEN + send_len, recv_len)?,
            },
        })
    }
}

fn truncated(s: &str) -> &str {
    if s.len() <= MAX_TYPE_NAME {
        return s;
    }
    let mut end = MAX_TYPE_NAME;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What a connection learned about its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's user id (kernel-verified on `unix:`; as claimed elsewhere).
    pub uid: u32,
    /// The connection's largest message: the smaller of both peers' limits.
    pub max_message_size: usize,
    /// What the peer sends.
    pub send: TypeTag,
    /// What the peer receives.
    pub recv: TypeTag,
}

/// This side's decision on a decoded peer hello: checks the version and
/// both directions' types.
///
/// # Errors
/// [`Error::VersionMismatch`] or [`Error::SchemaMismatch`].
pub fn check(local: &Hello, remote: &Hello) -> Result<PeerInfo> {
    if local.version != remote.version {
        return Err(Error::VersionMismatch {
            local: local.version,
            remote: remote.version,
        });
    }
    if !local.send.matches(&remote.recv) {
        return Err(Error::SchemaMismatch {
            direction: Direction::LocalToPeer,
            local: local.send.clone(),
            remote: remote.recv.clone(),
        });
    }
    if !local.recv.matches(&remote.send) {
        return Err(Error::SchemaMismatch {
            direction: Direction::PeerToLocal,
            local: local.recv.clone(),
            remote: remote.send.clone(),
        });
    }
    let max = local.max_message_size.min(remote.max_message_size);
    Ok(PeerInfo {
        pid: remote.pid,
        uid: remote.uid,
        max_message_size: usize::try_from(max).unwrap_or(usize::MAX),
        send: remote.send.clone(),
        recv: remote.recv.clone(),
    })
}

/// The verdict byte to send for this side's decision.
pub fn verdict_of(decision: &Result<PeerInfo>) -> u8 {
    match decision {
        Ok(_) => VERDICT_ACCEPT,
        Err(Error::VersionMismatch { .. }) => VERDICT_VERSION,
        Err(Error::SchemaMismatch { .. }) => VERDICT_SCHEMA,
        Err(Error::PermissionDenied(_)) => VERDICT_PERMISSION,
        Err(_) => VERDICT_MALFORMED,
    }
}

/// Combines this side's decision with the verdict byte the peer sent.
///
/// # Errors
/// This side's own error if it refused; otherwise an error describing the
/// peer's refusal.
pub fn conclude(decision: Result<PeerInfo>, peer_verdict: u8) -> Result<PeerInfo> {
    let info = decision?;
    match peer_verdict {
        VERDICT_ACCEPT => Ok(info),
        VERDICT_VERSION => Err(Error::protocol(
            "the peer refused our protocol version although it announced the same one",
        )),
        VERDICT_SCHEMA => Err(Error::SchemaMismatch {
            direction: Direction::LocalToPeer,
            local: TypeTag::new("(as announced)", 0),
            remote: info.recv,
        }),
        VERDICT_PERMISSION => Err(Error::PermissionDenied(format!(
            "the peer (pid {}) does not allow this process's uid; add it to the peer's allow_uid",
            info.pid
        ))),
        VERDICT_MALFORMED => Err(Error::protocol("the peer found our hello malformed")),
        other => Err(Error::protocol(format!(
            "the peer sent unknown verdict {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(send: (&'static str, u64), recv: (&'static str, u64)) -> Hello {
        Hello::new(
            &Schema::new(TypeTag::new(send.0, send.1), TypeTag::new(recv.0, recv.1)),
            1,
            2,
            1000,
        )
    }

    #[test]
    fn round_trip() {
        let h = hello(("Order", 7), ("Ack", 9));
        let bytes = h.encode();
        assert_eq!(bytes.len(), HELLO_FIXED_LEN + 5 + 3);
        assert_eq!(Hello::decode(&bytes).unwrap(), h);
    }

    #[test]
    fn matching_and_any() {
        let a = hello(("Order", 7), ("Ack", 9));
        let b = hello(("Ack", 9), ("Order", 7));
        assert!(check(&a, &b).is_ok());
        assert!(check(&b, &a).is_ok());
        let raw = Hello::new(&Schema::bytes(), 3, 4, 10);
        let info = check(&a, &raw).unwrap();
        assert_eq!(info.max_message_size, 10);
    }

    #[test]
    fn mismatch_names_both_types_on_both_sides() {
        let a = hello(("Order", 7), ("Ack", 9));
        let b = hello(("Ack", 9), ("Quote", 8));
        for (x, y) in [(&a, &b), (&b, &a)] {
            let e = check(x, y).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("Order") && text.contains("Quote"), "{text}");
            assert!(matches!(e, Error::SchemaMismatch { .. }));
        }
    }

    #[test]
    fn version_checked_before_layout() {
        let mut bytes = hello(("A", 1), ("B", 2)).encode();
        bytes[4] = 9;
        bytes.truncate(10);
        match Hello::decode(&bytes) {
            Err(Error::VersionMismatch {
                local: 1,
                remote: 9,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_hellos_are_protocol_errors() {
        let good = hello(("A", 1), ("B", 2)).encode();
        let mut cases: Vec<Vec<u8>> = vec![vec![], b"HTTP/1.1 200".to_vec(), good[..20].to_vec()];
        let mut longer = good.clone();
        longer.push(0);
        cases.push(longer);
        let mut bad_len = good.clone();
        bad_len[40] = 0xff;
        bad_len[41] = 0xff;
        cases.push(bad_len);
        let mut bad_utf8 = good.clone();
        bad_utf8[HELLO_FIXED_LEN] = 0xff;
        cases.push(bad_utf8);
        for c in cases {
            assert!(
                matches!(Hello::decode(&c), Err(Error::Protocol(_))),
                "{c:?}"
            );
        }
    }

    #[test]
    fn long_names_are_cut() {
        let long: String = "é".repeat(200);
        let h = Hello::new(&Schema::new(TypeTag::new(long, 1), TypeTag::BYTES), 1, 1, 1);
        let d = Hello::decode(&h.encode()).unwrap();
        assert!(d.send.name.len() <= MAX_TYPE_NAME);
    }

    #[test]
    fn verdicts() {
        let a = hello(("A", 1), ("B", 2));
        let b = hello(("B", 2), ("A", 1));
        assert_eq!(verdict_of(&check(&a, &b)), VERDICT_ACCEPT);
        assert!(conclude(check(&a, &b), VERDICT_ACCEPT).is_ok());
        assert!(matches!(
            conclude(check(&a, &b), VERDICT_PERMISSION),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            conclude(check(&a, &b), 77),
            Err(Error::Protocol(_))
        ));
        let refused = check(&a, &a);
        assert_eq!(verdict_of(&refused), VERDICT_SCHEMA);
    }
}

//! The 16-byte header every standalone-queue message starts with: it says
//! the message came from ipcx and which type it holds, so a consumer never
//! decodes another type's bytes (layout: `docs/wire-format.md`,
//! "Standalone queues").
//!
//! ```text
//! offset size
//!  0     4    magic "IPCQ"
//!  4     1    version, 1
//!  5     1    encoding: 0 raw bytes, 1 postcard, 2 zero-copy
//!  6     2    reserved, 0
//!  8     8    schema fingerprint of the payload's type, little-endian
//!             (0: raw bytes, no type)
//! 16     …    payload
//! ```

use ipc_core::Encoding;

/// Bytes of the header before every payload.
pub const HEADER_LEN: usize = 16;
/// The header's first four bytes.
pub const MAGIC: [u8; 4] = *b"IPCQ";
/// The header version this build writes and reads.
pub const VERSION: u8 = 1;

/// What a header says about its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The payload's encoding; `None` for raw bytes.
    pub encoding: Option<Encoding>,
    /// The payload type's schema fingerprint; 0 for raw bytes.
    pub fingerprint: u64,
}

/// Why a message's header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHeader {
    /// Shorter than a header.
    Short(usize),
    /// Not ipcx's magic: sent by something else.
    Magic,
    /// Another header version (a newer ipcx).
    Version(u8),
    /// An encoding byte this build does not know.
    Encoding(u8),
}

impl Header {
    /// The header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = match self.encoding {
            None => 0,
            Some(e) => e.id() as u8,
        };
        h[8..].copy_from_slice(&self.fingerprint.to_le_bytes());
        h
    }

    /// Reads the header at the start of `msg`.
    ///
    /// # Errors
    /// [`BadHeader`] for anything that is not a version-1 ipcx header.
    pub fn decode(msg: &[u8]) -> Result<Header, BadHeader> {
        let h: &[u8; HEADER_LEN] = msg
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(BadHeader::Short(msg.len()))?;
        if h[..4] != MAGIC {
            return Err(BadHeader::Magic);
        }
        if h[4] != VERSION {
            return Err(BadHeader::Version(h[4]));
        }
        let encoding = match h[5] {
            0 => None,
            1 => Some(Encoding::Postcard),
            2 => Some(Encoding::ZeroCopy),
            e => return Err(BadHeader::Encoding(e)),
        };
        let mut fp = [0; 8];
        fp.copy_from_slice(&h[8..]);
        Ok(Header {
            encoding,
            fingerprint: u64::from_le_bytes(fp),
        })
    }
}

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadHeader::Short(n) => write!(
                f,
                "a message of {n} bytes, shorter than the {HEADER_LEN}-byte ipcx queue header (not sent by an ipcx producer)"
            ),
            BadHeader::Magic => f.write_str(
                "a message without the ipcx queue header (magic \"IPCQ\"): not sent by an ipcx producer",
            ),
            BadHeader::Version(v) => write!(
                f,
                "a message with queue header version {v}, this ipcx reads version {VERSION}: run the same ipcx version on producers and consumers"
            ),
            BadHeader::Encoding(e) => write!(f, "a message with unknown encoding byte {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let h = Header {
            encoding: Some(Encoding::Postcard),
            fingerprint: 0x0123_4567_89ab_cdef,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[..6], b"IPCQ\x01\x01");
        assert_eq!(bytes[8], 0xef);
        assert_eq!(Header::decode(&bytes), Ok(h));
        assert_eq!(Header::decode(&bytes[..3]), Err(BadHeader::Short(3)));
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(Header::decode(&bad), Err(BadHeader::Magic));
        bad = bytes;
        bad[4] = 2;
        assert_eq!(Header::decode(&bad), Err(BadHeader::Version(2)));
        bad = bytes;
        bad[5] = 9;
        assert_eq!(Header::decode(&bad), Err(BadHeader::Encoding(9)));
        let raw = Header {
            encoding: None,
            fingerprint: 0,
        };
        assert_eq!(Header::decode(&raw.encode()), Ok(raw));
    }
}

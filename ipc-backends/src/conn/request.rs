//! The connect request of the kernel-object rendezvous (`fifo:`, `mq:`,
//! `sysv-mq:`): 16 bytes, so one write of it is atomic on a FIFO.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic: `IPCF` (fifo), `IPCQ` (mq), `IPCS` (sysv-mq) |
//! | 4..6 | version, `u16` little-endian, 1 |
//! | 6..8 | reserved, zero when sent, ignored when read |
//! | 8..12 | the client's pid, `u32` little-endian |
//! | 12..16 | the client's connection number, `u32` little-endian |
//!
//! The pid and number name the per-connection objects the client made.

use ipc_core::{Error, Result};

/// Size of a connect request.
pub(crate) const LEN: usize = 16;
/// The request version.
const VERSION: u16 = 1;

/// A client's connect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    /// The client's pid.
    pub pid: u32,
    /// The client's connection number (unique within its process).
    pub n: u32,
}

impl Request {
    /// The request's bytes under `magic`.
    pub(crate) fn encode(self, magic: [u8; 4]) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..4].copy_from_slice(&magic);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.pid.to_le_bytes());
        out[12..16].copy_from_slice(&self.n.to_le_bytes());
        out
    }

    /// Reads a request sent under `magic`.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a wrong length, magic or version.
    pub(crate) fn decode(bytes: &[u8], magic: [u8; 4]) -> Result<Request> {
        let Ok(b) = <&[u8; LEN]>::try_from(bytes) else {
            return Err(Error::protocol(format!(
                "a connect request of {} bytes (a request has {LEN})",
                bytes.len()
            )));
        };
        if b[..4] != magic {
            return Err(Error::protocol("a connect request with the wrong magic"));
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(Error::protocol(format!(
                "a connect request of version {version} (this side speaks {VERSION})"
            )));
        }
        Ok(Request {
            pid: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            n: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r = Request { pid: 4242, n: 7 };
        let bytes = r.encode(*b"IPCQ");
        assert_eq!(&bytes[..6], b"IPCQ\x01\x00");
        assert_eq!(Request::decode(&bytes, *b"IPCQ").unwrap(), r);
        assert!(Request::decode(&bytes, *b"IPCF").is_err());
        assert!(Request::decode(&bytes[..15], *b"IPCQ").is_err());
        let mut v2 = bytes;
        v2[4] = 2;
        assert!(Request::decode(&v2, *b"IPCQ").is_err());
    }
}

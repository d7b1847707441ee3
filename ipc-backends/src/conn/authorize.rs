//! The one peer-credential policy of every transport.
//!
//! A peer of uid `u` may connect when:
//! 1. the endpoint has an `allow_uid` list: `u` is in it (the list wins);
//! 2. otherwise `u` is this process's own uid, or
//! 3. the rendezvous object has permission bits and `mode=` deliberately
//!    opened them to group or others (the kernel has then already checked
//!    that `u` may open it).
//!
//! An abstract Unix socket has no permission bits, so rule 3 never applies
//! to it. The uid is always one the kernel vouches for (`SO_PEERCRED`, or
//! the owner of an object the peer created); TCP peers have none, and
//! `allow_uid` is refused on `tcp://` endpoints.

use ipc_core::{Endpoint, Error, Result};

use crate::sys::process;

/// Whether the rendezvous object has permission bits the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// A file or kernel object created with `mode=`.
    Permissions,
    /// An abstract Unix socket: anyone can connect.
    Unprotected,
}

/// Applies the policy to a peer of kernel-verified `uid` (and `pid`, for
/// the message).
///
/// # Errors
/// [`Error::PermissionDenied`] naming the uid and what would admit it.
pub(crate) fn authorize(endpoint: &Endpoint, object: Object, pid: u32, uid: u32) -> Result<()> {
    let o = endpoint.options();
    let allowed = if o.allow_uid.is_empty() {
        uid == process::uid() || (object == Object::Permissions && o.mode & 0o066 != 0)
    } else {
        o.allow_uid.contains(&uid)
    };
    if allowed {
        return Ok(());
    }
    let widen = if object == Object::Permissions {
        " or open the object to it with mode="
    } else {
        ""
    };
    Err(Error::PermissionDenied(format!(
        "{endpoint}: peer pid {pid} runs as uid {uid}, which may not connect; add it to allow_uid (?allow_uid={uid}){widen}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn the_rule() {
        let me = process::uid();
        let other = me.wrapping_add(1);
        let plain = ep("mq:/x");
        assert!(authorize(&plain, Object::Permissions, 1, me).is_ok());
        assert!(authorize(&plain, Object::Permissions, 1, other).is_err());
        let open = ep("mq:/x?mode=0666");
        assert!(authorize(&open, Object::Permissions, 1, other).is_ok());
        assert!(authorize(&open, Object::Unprotected, 1, other).is_err());
        let list = ep(&format!("mq:/x?mode=0666&allow_uid={other}"));
        assert!(authorize(&list, Object::Permissions, 1, other).is_ok());
        let e = authorize(&list, Object::Permissions, 9, me).unwrap_err();
        assert!(e.to_string().contains("pid 9") && e.to_string().contains("allow_uid"));
    }
}

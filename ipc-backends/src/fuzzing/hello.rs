//! The hello: [`Hello::decode`], then [`check`] and [`conclude`] on what it
//! accepted.

use ipc_core::Error;
use ipc_core::handshake::{
    Hello, MAX_TYPE_NAME, PROTOCOL_VERSION, Schema, TypeTag, VERDICT_ACCEPT, VERDICT_MALFORMED,
    check, conclude, verdict_of,
};

/// Decodes `data` as a peer's hello. What decodes must re-encode to the
/// same bytes (but the two reserved ones), and every decision on it must
/// be a verdict the peer can read, whatever verdict the peer sends back.
pub fn hello(data: &[u8]) {
    let remote = match Hello::decode(data) {
        Ok(h) => h,
        Err(e) => {
            assert!(
                matches!(e, Error::Protocol(_) | Error::VersionMismatch { .. }),
                "{e:?}"
            );
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(remote.version, PROTOCOL_VERSION);
    assert!(remote.send.name.len() <= MAX_TYPE_NAME);
    assert!(remote.recv.name.len() <= MAX_TYPE_NAME);
    let encoded = remote.encode();
    assert_eq!(encoded.len(), data.len());
    assert_eq!(encoded[..6], data[..6]);
    assert_eq!(encoded[8..], data[8..]);
    assert_eq!(Hello::decode(&encoded).ok().as_ref(), Some(&remote));

    let mirrored = Schema::new(remote.recv.clone(), remote.send.clone());
    let typed = Schema::new(TypeTag::new("Order", 7), TypeTag::new("Ack", 9));
    let locals = [
        Hello::new(&Schema::bytes(), 1, 1000, 4096),
        Hello::new(&typed, 2, 0, usize::MAX),
        Hello::new(&mirrored, 3, 0, 1 << 20),
    ];
    let last = data.last().copied().unwrap_or(0);
    for (i, local) in locals.iter().enumerate() {
        let decision = check(local, &remote);
        let verdict = verdict_of(&decision);
        match &decision {
            Ok(info) => {
                assert_eq!(verdict, VERDICT_ACCEPT);
                assert_eq!((info.pid, info.uid), (remote.pid, remote.uid));
                let agreed = local.max_message_size.min(remote.max_message_size);
                assert_eq!(info.max_message_size as u64, agreed);
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::SchemaMismatch { .. }),
                    "a decoded hello of our version can only differ in types: {e:?}"
                );
                assert!(verdict != VERDICT_ACCEPT && verdict < VERDICT_MALFORMED);
                assert!(!e.to_string().is_empty());
            }
        }
        // The mirror of the peer's own schema always matches it.
        assert!(i != 2 || decision.is_ok());
        for peer_verdict in [0, 1, 2, 3, 4, 5, 255, last] {
            match conclude(check(local, &remote), peer_verdict) {
                Ok(_) => assert!(decision.is_ok() && peer_verdict == VERDICT_ACCEPT),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}

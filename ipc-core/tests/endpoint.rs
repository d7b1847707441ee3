//! Endpoints built from parts print back as themselves.

use ipc_core::{Endpoint, Options, Scheme};

/// Found by the `endpoint` fuzz target: `Endpoint::new` accepted an
/// address with a '?', whose printed form then parsed as other options
/// (`fifo:/tmp/a?mode=0777`) or not at all.
#[test]
fn an_address_with_a_question_mark_is_refused() {
    for scheme in Scheme::ALL {
        for address in ["/tmp/a?mode=0777", "/x?y", "h?:1", "?"] {
            let r = Endpoint::new(scheme, address, Options::default());
            let e = r.expect_err(&format!("{scheme} {address:?}"));
            assert!(e.to_string().contains('?'), "{e}");
        }
    }
    let e = Endpoint::new(Scheme::Fifo, "/tmp/a", Options::default()).unwrap();
    assert_eq!(e.to_string().parse::<Endpoint>(), Ok(e));
}

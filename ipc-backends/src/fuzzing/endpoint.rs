//! Endpoint strings, as read from configuration and the environment.

use ipc_core::{Endpoint, Options, Scheme};

/// Parses each line of `data` (when UTF-8) as an endpoint, and builds an
/// endpoint with the line as its address: one input can hold many, which
/// keeps the committed corpus small.
///
/// Parsing never panics and an error names the input. Whatever parses,
/// and whatever [`Endpoint::new`] accepts, prints a canonical form that
/// parses back to the same endpoint and prints the same again.
pub fn endpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split('\n') {
        parsed(line);
        // One scheme per line, picked by its length, keeps runs fast.
        let scheme = Scheme::ALL[line.len() % Scheme::ALL.len()];
        if let Ok(e) = Endpoint::new(scheme, line, Options::default()) {
            round_trip(&format!("{scheme} address {line:?}"), &e);
        }
    }
}

fn parsed(s: &str) {
    match s.parse::<Endpoint>() {
        Ok(e) => {
            round_trip(&format!("{s:?}"), &e);
            let rebuilt = Endpoint::new(e.scheme(), e.address(), e.options().clone());
            assert_eq!(rebuilt, Ok(e), "{s:?}: Endpoint::new refuses its own parts");
        }
        Err(err) => {
            assert_eq!(err.input, s);
            assert!(!err.to_string().is_empty());
        }
    }
}

#[track_caller]
fn round_trip(what: &str, e: &Endpoint) {
    let text = e.to_string();
    let again: Endpoint = text
        .parse()
        .unwrap_or_else(|err| panic!("{what}: its canonical form {text:?} does not parse: {err}"));
    assert_eq!(
        &again, e,
        "{what}: printed as {text:?}, parses back different"
    );
    assert_eq!(again.to_string(), text);
}

//! Parsing an endpoint string: scheme, address, then options.

use std::str::FromStr;

use super::address::resolve_and_validate;
use super::options::{OptionKey, allowed_options, example_option, set_option, validate_options};
use super::scheme::{ALLOWED_SCHEMES, suggest_scheme};
use super::{Endpoint, EndpointError, Options, Scheme, err};

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Endpoint, EndpointError> {
        refuse_control_chars(input)?;
        let (head, query) = match input.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (input, None),
        };
        let Some((scheme_str, rest)) = head.split_once(':') else {
            return Err(err(
                input,
                "missing scheme (the part before ':')",
                ALLOWED_SCHEMES,
                Scheme::Unix.example(),
            ));
        };
        let Some(scheme) = Scheme::from_name(scheme_str) else {
            return Err(err(
                input,
                format!("unknown scheme {scheme_str:?}"),
                ALLOWED_SCHEMES,
                suggest_scheme(scheme_str),
            ));
        };
        let address = if matches!(scheme, Scheme::Tcp | Scheme::Nats) {
            rest.strip_prefix("//").ok_or_else(|| {
                let form = if scheme == Scheme::Tcp {
                    "tcp://HOST:PORT"
                } else {
                    "nats://HOST:PORT/NAME"
                };
                err(
                    input,
                    format!("{scheme} endpoints are written {form}"),
                    form,
                    scheme.example(),
                )
            })?
        } else {
            rest
        };
        let address = resolve_and_validate(input, scheme, address)?;
        let mut options = Options::default();
        let mut seen = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(err(
                    input,
                    format!("option {pair:?} has no value"),
                    "KEY=VALUE pairs joined by &",
                    format!("{}?max_message_size=65536", scheme.example()),
                ));
            };
            let Some(k) = OptionKey::from_name(key) else {
                return Err(err(
                    input,
                    format!("unknown option {key:?}"),
                    allowed_options(scheme),
                    format!("{}?max_message_size=65536", scheme.example()),
                ));
            };
            if seen.contains(&k) {
                return Err(err(
                    input,
                    format!("option {key} is given twice"),
                    "each option at most once",
                    format!("{}?{}", scheme.example(), example_option(scheme, k)),
                ));
            }
            seen.push(k);
            set_option(input, scheme, &mut options, k, value)?;
        }
        let mode_given = seen.contains(&OptionKey::Mode);
        validate_options(input, scheme, &address, &options, mode_given)?;
        Ok(Endpoint {
            scheme,
            address,
            options,
        })
    }
}

/// Refuses an endpoint with a control character (U+0000 to U+001F, U+007F:
/// newline, tab, NUL, …) anywhere in it, naming the part it is in. Such a
/// character is never meant: a trailing newline from a file or a shell would
/// otherwise become part of a socket's file name.
pub(super) fn refuse_control_chars(input: &str) -> Result<(), EndpointError> {
    let Some((at, c)) = input.char_indices().find(|(_, c)| c.is_ascii_control()) else {
        return Ok(());
    };
    let head_len = input.find('?').unwrap_or(input.len());
    let (part, value) = if at < head_len {
        let head = &input[..head_len];
        match head.split_once(':') {
            Some((_, address)) if at >= head.len() - address.len() => (
                "the address".to_string(),
                address.strip_prefix("//").unwrap_or(address),
            ),
            _ => (
                "the scheme".to_string(),
                head.split(':').next().unwrap_or(head),
            ),
        }
    } else {
        let query = &input[head_len + 1..];
        let (key, value, in_key) = option_at(query, at - (head_len + 1));
        if in_key {
            ("the option name".to_string(), key)
        } else {
            (format!("option {key}"), value)
        }
    };
    let cleaned: String = input.chars().filter(|c| !c.is_ascii_control()).collect();
    let example = match cleaned.parse::<Endpoint>() {
        Ok(e) => e.to_string(),
        Err(e) => e.example,
    };
    Err(err(
        input,
        format!(
            "{part} {value:?} contains the control character {c:?} (U+{:04X})",
            u32::from(c)
        ),
        "printable characters only: no newline, tab, NUL or other control character (U+0000 to U+001F, U+007F)",
        example,
    ))
}

/// The `KEY=VALUE` pair of `query` that byte `offset` falls in: its key, its
/// value, and whether `offset` is in the key.
fn option_at(query: &str, offset: usize) -> (&str, &str, bool) {
    let mut start = 0;
    for pair in query.split('&') {
        if offset < start + pair.len() {
            return match pair.split_once('=') {
                Some((key, value)) => (key, value, offset < start + key.len()),
                None => (pair, "", true),
            };
        }
        start += pair.len() + 1;
    }
    (query, "", true)
}

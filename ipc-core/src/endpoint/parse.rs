//! Parsing an endpoint string: scheme, address, then options.

use std::str::FromStr;

use super::address::validate_address;
use super::options::{OptionKey, allowed_options, example_option, set_option, validate_options};
use super::scheme::{ALLOWED_SCHEMES, suggest_scheme};
use super::{Endpoint, EndpointError, Options, Scheme, err};

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Endpoint, EndpointError> {
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
        let address = if scheme == Scheme::Tcp {
            rest.strip_prefix("//").ok_or_else(|| {
                err(
                    input,
                    "tcp endpoints are written tcp://HOST:PORT",
                    "tcp://HOST:PORT",
                    Scheme::Tcp.example(),
                )
            })?
        } else {
            rest
        };
        validate_address(input, scheme, address)?;
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
        validate_options(input, scheme, &options)?;
        Ok(Endpoint {
            scheme,
            address: address.to_string(),
            options,
        })
    }
}

//! The address part of an endpoint, checked per scheme.

use super::{EndpointError, MAX_POSIX_NAME, MAX_UNIX_PATH, Scheme, err};

pub(super) fn validate_address(
    input: &str,
    scheme: Scheme,
    address: &str,
) -> Result<(), EndpointError> {
    let bad = |problem: String, allowed: &str| Err(err(input, problem, allowed, scheme.example()));
    match scheme {
        Scheme::Pipe => {
            if !address.is_empty() {
                return bad(
                    format!("pipe: takes no address, found {address:?}"),
                    "pipe: (the pipes are created by ipcx::spawn)",
                );
            }
        }
        Scheme::Mq | Scheme::Shm => {
            let Some(name) = address.strip_prefix('/') else {
                return bad(
                    format!("{scheme} names start with '/', found {address:?}"),
                    "/NAME with no further '/'",
                );
            };
            if name.is_empty() || name.contains('/') {
                return bad(
                    format!(
                        "{scheme} names are '/' and then a name without '/', found {address:?}"
                    ),
                    "/NAME with no further '/'",
                );
            }
            if name.len() > MAX_POSIX_NAME {
                return bad(
                    format!(
                        "{scheme} name is {} bytes, the limit is {MAX_POSIX_NAME} (NAME_MAX 255 less room for per-connection suffixes)",
                        name.len()
                    ),
                    "/NAME of at most 200 bytes",
                );
            }
            check_name_chars(input, scheme, name)?;
        }
        Scheme::Fifo | Scheme::SysvMq | Scheme::SysvShm => {
            if address.is_empty() || address.ends_with('/') {
                return bad(
                    format!("{scheme} needs a file path (not a directory), found {address:?}"),
                    "an absolute or relative file path",
                );
            }
            if address.contains('\0') {
                return bad("path contains a NUL byte".into(), "a path without NUL");
            }
            if scheme == Scheme::Fifo && address.len() > 4000 {
                return bad("path longer than PATH_MAX".into(), "a shorter path");
            }
        }
        Scheme::Unix => {
            if let Some(name) = address.strip_prefix('@') {
                if name.is_empty() {
                    return bad(
                        "abstract socket name is empty".into(),
                        "unix:@NAME with a non-empty NAME",
                    );
                }
                if name.len() > MAX_UNIX_PATH - 1 {
                    return bad(
                        format!(
                            "abstract name is {} bytes, the limit is {} (sun_path)",
                            name.len(),
                            MAX_UNIX_PATH - 1
                        ),
                        "a shorter name",
                    );
                }
            } else {
                if address.is_empty() {
                    return bad(
                        "unix: needs a socket path or @name".into(),
                        "unix:PATH or unix:@NAME",
                    );
                }
                if address.len() > MAX_UNIX_PATH {
                    return bad(
                        format!(
                            "socket path is {} bytes, the kernel limit is {MAX_UNIX_PATH} (sun_path is 108 bytes with its NUL)",
                            address.len()
                        ),
                        "a path of at most 107 bytes, e.g. under /run or /tmp",
                    );
                }
                if address.contains('\0') {
                    return bad("path contains a NUL byte".into(), "a path without NUL");
                }
            }
        }
        Scheme::Tcp => {
            let (host, port) = split_host_port(address).ok_or_else(|| {
                err(
                    input,
                    format!("expected HOST:PORT after tcp://, found {address:?}"),
                    "tcp://HOST:PORT with HOST a name, an IPv4 address or [IPv6]",
                    Scheme::Tcp.example(),
                )
            })?;
            if host.is_empty() {
                return bad("tcp host is empty".into(), "a host name or address");
            }
            if port.parse::<u16>().is_err() {
                return bad(
                    format!("tcp port {port:?} is not a number from 0 to 65535"),
                    "a port from 0 to 65535 (0 = any free port, for listeners)",
                );
            }
        }
    }
    Ok(())
}

pub(super) fn check_name_chars(
    input: &str,
    scheme: Scheme,
    name: &str,
) -> Result<(), EndpointError> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(err(
            input,
            format!("character {c:?} is not allowed in a {scheme} name"),
            "letters, digits, '-', '_' and '.'",
            scheme.example(),
        ));
    }
    Ok(())
}

/// Splits `host:port` and `[v6]:port`.
pub(super) fn split_host_port(address: &str) -> Option<(&str, &str)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = address.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

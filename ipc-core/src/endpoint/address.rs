//! The address part of an endpoint: relative file paths made absolute,
//! then checked per scheme.

use super::{EndpointError, MAX_POSIX_NAME, MAX_UNIX_PATH, Scheme, err};

/// The address as the endpoint keeps it: checked, and for the schemes that
/// take a file path, absolute (see "Paths" in the module docs).
pub(super) fn resolve_and_validate(
    input: &str,
    scheme: Scheme,
    address: &str,
) -> Result<String, EndpointError> {
    validate_address(input, scheme, address)?;
    let resolved = resolve_path(input, scheme, address)?;
    if resolved != address {
        validate_address(input, scheme, &resolved).map_err(|e| EndpointError {
            problem: format!(
                "{} ({address:?} resolved against the current directory is {resolved:?})",
                e.problem
            ),
            ..e
        })?;
    }
    Ok(resolved)
}

/// Whether `address` is a file path for `scheme` (not a POSIX name, an
/// abstract socket name or a host).
fn is_file_path(scheme: Scheme, address: &str) -> bool {
    match scheme {
        Scheme::Fifo | Scheme::SysvMq | Scheme::SysvShm | Scheme::SysvSem => true,
        Scheme::Unix => !address.starts_with('@'),
        Scheme::Pipe | Scheme::Mq | Scheme::Shm | Scheme::Sem | Scheme::Tcp | Scheme::Nats => false,
    }
}

/// Whether a path names a directory by its spelling alone: it ends with
/// `/`, or its last component is `.` or `..`.
fn names_directory(path: &str) -> bool {
    path.ends_with('/') || matches!(path.rsplit('/').next(), Some("." | ".."))
}

/// Makes a relative file path absolute against the current directory, with
/// its `.` and `..` components removed lexically (the file system is not
/// consulted). Other addresses, absolute paths, and paths
/// [`validate_address`] refuses are returned as they are.
fn resolve_path(input: &str, scheme: Scheme, address: &str) -> Result<String, EndpointError> {
    if !is_file_path(scheme, address)
        || address.is_empty()
        || address.starts_with('/')
        || names_directory(address)
    {
        return Ok(address.to_string());
    }
    let unresolvable = |why: String| {
        err(
            input,
            format!("the relative path {address:?} cannot be made absolute: {why}"),
            "an absolute path, or a relative one from a readable, UTF-8 current directory",
            scheme.example(),
        )
    };
    let cwd = std::env::current_dir()
        .map_err(|e| unresolvable(format!("the current directory is unknown ({e})")))?;
    let Some(cwd) = cwd.to_str() else {
        return Err(unresolvable(format!(
            "the current directory {cwd:?} is not valid UTF-8"
        )));
    };
    Ok(join_lexically(cwd, address))
}

/// `base` (absolute) joined with `relative`, without `.`, `..` or empty
/// components. `..` drops the component before it, as `cd ..` in a shell
/// does, and stops at `/`.
pub(super) fn join_lexically(base: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(relative.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

pub(super) fn validate_address(
    input: &str,
    scheme: Scheme,
    address: &str,
) -> Result<(), EndpointError> {
    let bad = |problem: String, allowed: &str| Err(err(input, problem, allowed, scheme.example()));
    // '?' starts the options: an address holding one would not print back
    // as itself (only `Endpoint::new` can be handed one).
    if address.contains('?') {
        return bad(
            format!("'?' starts the options and cannot be part of an address, found {address:?}"),
            "an address without '?'",
        );
    }
    match scheme {
        Scheme::Pipe => {
            if !address.is_empty() {
                return bad(
                    format!("pipe: takes no address, found {address:?}"),
                    "pipe: (the pipes are created by ipcx::spawn)",
                );
            }
        }
        Scheme::Mq | Scheme::Shm | Scheme::Sem => {
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
        Scheme::Fifo | Scheme::SysvMq | Scheme::SysvShm | Scheme::SysvSem => {
            if address.is_empty() || names_directory(address) {
                return bad(
                    format!("{scheme} needs a file path (not a directory), found {address:?}"),
                    "a file path (a relative one is resolved against the current directory)",
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
                if names_directory(address) {
                    return bad(
                        format!(
                            "unix: needs a socket file path (not a directory), found {address:?}"
                        ),
                        "unix:PATH naming a file (a relative one is resolved against the current directory) or unix:@NAME",
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
        Scheme::Nats => validate_nats(input, address)?,
    }
    Ok(())
}

/// `HOST:PORT/NAME`, or `HOST:PORT,HOST:PORT,…/NAME` for several servers
/// of one cluster (a client connects to one and fails over to the
/// others). NAME becomes subject tokens (`ipcx.NAME.…`), so it holds no
/// wildcard, no space and no empty token.
fn validate_nats(input: &str, address: &str) -> Result<(), EndpointError> {
    let example = Scheme::Nats.example();
    let allowed = "nats://HOST:PORT/NAME or nats://HOST:PORT,HOST:PORT/NAME (several servers of one cluster): HOST a name, an IPv4 address or [IPv6]; NAME letters, digits, '-', '_', and '.' between them";
    let Some((servers, name)) = address.split_once('/') else {
        return Err(err(
            input,
            format!("expected HOST:PORT/NAME after nats://, found {address:?} (no /NAME)"),
            allowed,
            example,
        ));
    };
    for server in servers.split(',') {
        let Some((host, port)) = split_host_port(server) else {
            return Err(err(
                input,
                if server.is_empty() {
                    format!("an empty server in {servers:?} (a ',' at an end or twice)")
                } else {
                    format!("expected HOST:PORT before /{name}, found {server:?}")
                },
                allowed,
                "nats://10.0.0.1:4222,10.0.0.2:4222/orders",
            ));
        };
        if host.is_empty() {
            return Err(err(input, "nats host is empty", allowed, example));
        }
        if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(err(
                input,
                format!("nats port {port:?} is not a number from 1 to 65535"),
                "the NATS server's client port, 4222 by default",
                example,
            ));
        }
    }
    let server = servers;
    if name.is_empty() || name.len() > MAX_POSIX_NAME {
        return Err(err(
            input,
            format!(
                "the name after {server}/ is {} bytes, allowed 1 to {MAX_POSIX_NAME}",
                name.len()
            ),
            allowed,
            example,
        ));
    }
    check_name_chars(input, Scheme::Nats, name)?;
    if name.split('.').any(str::is_empty) {
        return Err(err(
            input,
            format!("the name {name:?} has an empty subject token ('.' at an end or twice)"),
            allowed,
            example,
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_lexically_removes_dot_and_dot_dot() {
        assert_eq!(join_lexically("/home/u", "x.sock"), "/home/u/x.sock");
        assert_eq!(join_lexically("/home/u", "./a//b/./x"), "/home/u/a/b/x");
        assert_eq!(join_lexically("/home/u", "../v/x"), "/home/v/x");
        assert_eq!(join_lexically("/home/u", "a/../../../../x"), "/x");
        assert_eq!(join_lexically("/", "x"), "/x");
    }

    #[test]
    fn directory_spellings_are_recognised() {
        for p in ["a/", ".", "..", "a/.", "a/..", "/"] {
            assert!(names_directory(p), "{p}");
        }
        for p in ["a", "a.sock", "..a", "a/.b", "/tmp/x"] {
            assert!(!names_directory(p), "{p}");
        }
    }
}

//! Endpoints: the one configuration value that names a transport.
//!
//! ```text
//! pipe:                              anonymous pipe pair handed to a spawned child
//! fifo:/tmp/orders                   named FIFOs under that path prefix
//! mq:/orders                         POSIX message queues
//! sysv-mq:/var/run/orders            System V message queues (key from ftok(path))
//! shm:/orders                        POSIX shm + process-shared POSIX semaphores
//! sysv-shm:/var/run/orders           System V shm + System V semaphore set
//! unix:/run/orders.sock              Unix stream socket (unix:@name = abstract)
//! tcp://127.0.0.1:7000               TCP, for peers on other machines
//! ```
//!
//! Options ride as query parameters named like the fields of [`Options`]:
//! `shm:/orders?capacity=1048576&max_message_size=65536&wait=spin`. An option
//! that does not apply to a scheme is refused, so a typo never goes unnoticed.
//!
//! An [`Endpoint`] parses from that string ([`str::parse`]), prints back its
//! canonical form ([`Display`](fmt::Display)), and (de)serializes with serde
//! either as the string or as a table:
//!
//! ```
//! # use ipc_core::Endpoint;
//! #[derive(serde::Deserialize)]
//! struct Config { orders: Endpoint, audit: Endpoint }
//! let cfg: Config = toml::from_str(r#"
//!     orders = "shm:/orders?capacity=1048576"
//!     audit = { transport = "unix", name = "/run/audit.sock", mode = "0660" }
//! "#).unwrap();
//! assert_eq!(cfg.orders.to_string(), "shm:/orders?capacity=1048576");
//! assert_eq!(cfg.audit.to_string(), "unix:/run/audit.sock?mode=0660");
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default largest message, in bytes: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Largest `max_message_size` any transport accepts: 1 GiB.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 1 << 30;
/// Default permission bits of created kernel objects.
pub const DEFAULT_MODE: u32 = 0o600;
/// Default bound on connecting and on the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default spin time of `wait=adaptive`, in microseconds.
pub const DEFAULT_SPIN_US: u32 = 20;
/// Smallest `capacity` of a shared-memory ring, in bytes.
pub const MIN_SHM_CAPACITY: usize = 4096;
/// Longest name accepted for `mq:` and `shm:`, leaving room for the
/// per-connection suffixes under the kernel's NAME_MAX of 255.
pub const MAX_POSIX_NAME: usize = 200;
/// Longest Unix socket path: `sun_path` holds 108 bytes including the NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// The mechanism an endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `pipe:` — anonymous pipes to a spawned child.
    Pipe,
    /// `fifo:` — named FIFOs.
    Fifo,
    /// `mq:` — POSIX message queues.
    Mq,
    /// `sysv-mq:` — System V message queues.
    SysvMq,
    /// `shm:` — POSIX shared memory with process-shared POSIX semaphores.
    Shm,
    /// `sysv-shm:` — System V shared memory with a System V semaphore set.
    SysvShm,
    /// `unix:` — Unix domain stream socket (path or abstract).
    Unix,
    /// `tcp://` — TCP.
    Tcp,
}

impl Scheme {
    /// Every scheme, in the order of the endpoint table.
    pub const ALL: [Scheme; 8] = [
        Scheme::Pipe,
        Scheme::Fifo,
        Scheme::Mq,
        Scheme::SysvMq,
        Scheme::Shm,
        Scheme::SysvShm,
        Scheme::Unix,
        Scheme::Tcp,
    ];

    /// The scheme as written in an endpoint string (`"sysv-mq"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Pipe => "pipe",
            Scheme::Fifo => "fifo",
            Scheme::Mq => "mq",
            Scheme::SysvMq => "sysv-mq",
            Scheme::Shm => "shm",
            Scheme::SysvShm => "sysv-shm",
            Scheme::Unix => "unix",
            Scheme::Tcp => "tcp",
        }
    }

    fn from_name(s: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A valid example endpoint of this scheme, used in error messages.
    pub fn example(self) -> &'static str {
        match self {
            Scheme::Pipe => "pipe:",
            Scheme::Fifo => "fifo:/tmp/orders",
            Scheme::Mq => "mq:/orders",
            Scheme::SysvMq => "sysv-mq:/var/run/orders",
            Scheme::Shm => "shm:/orders",
            Scheme::SysvShm => "sysv-shm:/var/run/orders",
            Scheme::Unix => "unix:/run/orders.sock",
            Scheme::Tcp => "tcp://127.0.0.1:7000",
        }
    }

    fn allows(self, key: OptionKey) -> bool {
        use OptionKey::*;
        match key {
            MaxMessageSize | ConnectTimeout => true,
            Mode | AllowUid => !matches!(self, Scheme::Pipe | Scheme::Tcp),
            Capacity => matches!(
                self,
                Scheme::Mq | Scheme::SysvMq | Scheme::Shm | Scheme::SysvShm
            ),
            Wait | SpinUs => matches!(self, Scheme::Shm | Scheme::SysvShm),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a shared-memory reader waits for data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Wait {
    /// Sleep in the kernel at once (lowest CPU, highest latency).
    Block,
    /// Spin on the ring and never sleep (lowest latency, one busy core).
    Spin,
    /// Spin for `spin_us`, then sleep.
    #[default]
    Adaptive,
}

impl Wait {
    fn as_str(self) -> &'static str {
        match self {
            Wait::Block => "block",
            Wait::Spin => "spin",
            Wait::Adaptive => "adaptive",
        }
    }
}

/// The options an endpoint carries. Fields left at `None` take the
/// transport's default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Options {
    /// Largest message in bytes, 0 to 1 GiB (default 1 MiB). Both peers use
    /// the smaller of their two values.
    pub max_message_size: usize,
    /// Permission bits of created kernel objects (default `0600`).
    pub mode: u32,
    /// Peers allowed to connect, by uid; empty means anyone the permission
    /// bits let in.
    pub allow_uid: Vec<u32>,
    /// Bound on connecting and on the handshake (default 5 s).
    pub connect_timeout: Duration,
    /// How much a direction holds before `send` blocks. Queues (`mq:`,
    /// `sysv-mq:`): kernel messages per queue. Shared memory (`shm:`,
    /// `sysv-shm:`): bytes of ring per direction, at least 4096, rounded up
    /// to a power of two.
    pub capacity: Option<usize>,
    /// Wait strategy of shared-memory readers and writers.
    pub wait: Option<Wait>,
    /// Spin time of `wait=adaptive`, in microseconds.
    pub spin_us: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            mode: DEFAULT_MODE,
            allow_uid: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            capacity: None,
            wait: None,
            spin_us: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptionKey {
    MaxMessageSize,
    Mode,
    AllowUid,
    ConnectTimeout,
    Capacity,
    Wait,
    SpinUs,
}

impl OptionKey {
    const ALL: [OptionKey; 7] = [
        OptionKey::MaxMessageSize,
        OptionKey::Mode,
        OptionKey::AllowUid,
        OptionKey::ConnectTimeout,
        OptionKey::Capacity,
        OptionKey::Wait,
        OptionKey::SpinUs,
    ];

    fn name(self) -> &'static str {
        match self {
            OptionKey::MaxMessageSize => "max_message_size",
            OptionKey::Mode => "mode",
            OptionKey::AllowUid => "allow_uid",
            OptionKey::ConnectTimeout => "connect_timeout",
            OptionKey::Capacity => "capacity",
            OptionKey::Wait => "wait",
            OptionKey::SpinUs => "spin_us",
        }
    }

    fn from_name(s: &str) -> Option<OptionKey> {
        OptionKey::ALL.into_iter().find(|k| k.name() == s)
    }

    fn expected(self) -> &'static str {
        match self {
            OptionKey::MaxMessageSize => "a byte count from 0 to 1073741824 (1 GiB)",
            OptionKey::Mode => "octal permission bits such as 0600 or 0660",
            OptionKey::AllowUid => "a comma-separated list of numeric uids such as 1000,1001",
            OptionKey::ConnectTimeout => "a duration such as 250ms, 5s or 1m (a bare number is ms)",
            OptionKey::Capacity => {
                "a count of at least 1 (messages for queues; ring bytes, at least 4096, for shared memory)"
            }
            OptionKey::Wait => "one of block, spin, adaptive",
            OptionKey::SpinUs => "microseconds, 0 to 1000000",
        }
    }
}

/// A parsed endpoint: scheme, address and options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    address: String,
    options: Options,
}

/// Where a `unix:` endpoint lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixAddress<'a> {
    /// A socket file at this path.
    Path(&'a str),
    /// A name in the Linux abstract namespace (`unix:@name`), without the `@`.
    Abstract(&'a str),
}

impl Endpoint {
    /// Builds an endpoint from its parts, validating them as [`str::parse`] does.
    ///
    /// # Errors
    /// [`EndpointError`] when the address or an option is invalid for the scheme.
    pub fn new(
        scheme: Scheme,
        address: impl Into<String>,
        options: Options,
    ) -> Result<Endpoint, EndpointError> {
        let ep = Endpoint {
            scheme,
            address: address.into(),
            options,
        };
        let input = ep.to_string();
        validate_address(&input, scheme, &ep.address)?;
        validate_options(&input, scheme, &ep.options)?;
        Ok(ep)
    }

    /// Reads an endpoint from the environment variable `var`, if it is set.
    ///
    /// This is how a deployment overrides the configured transport without a
    /// rebuild (`IPCX_ENDPOINT=mq:/orders ./service`).
    ///
    /// # Errors
    /// [`EndpointError`] when the variable is set but is not a valid endpoint
    /// (or not valid UTF-8).
    pub fn from_env(var: &str) -> Result<Option<Endpoint>, EndpointError> {
        match std::env::var(var) {
            Ok(s) => s
                .parse()
                .map(Some)
                .map_err(|e: EndpointError| EndpointError {
                    problem: format!("in environment variable {var}: {}", e.problem),
                    ..e
                }),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => Err(EndpointError {
                input: v.to_string_lossy().into_owned(),
                problem: format!("environment variable {var} is not valid UTF-8"),
                allowed: ALLOWED_SCHEMES.to_string(),
                example: Scheme::Unix.example().to_string(),
            }),
        }
    }

    /// The endpoint from `var` if set, else `default`.
    ///
    /// # Errors
    /// As [`Endpoint::from_env`].
    pub fn from_env_or(var: &str, default: &Endpoint) -> Result<Endpoint, EndpointError> {
        Ok(Endpoint::from_env(var)?.unwrap_or_else(|| default.clone()))
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The address: a path, a POSIX name, `host:port`, or empty for `pipe:`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The options, to adjust before listening or connecting.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// A copy with another address (used for a TCP listener bound to port 0).
    pub fn with_address(&self, address: impl Into<String>) -> Endpoint {
        Endpoint {
            address: address.into(),
            ..self.clone()
        }
    }

    /// The address of a `unix:` endpoint, or `None` for other schemes.
    pub fn unix_address(&self) -> Option<UnixAddress<'_>> {
        if self.scheme != Scheme::Unix {
            return None;
        }
        Some(match self.address.strip_prefix('@') {
            Some(name) => UnixAddress::Abstract(name),
            None => UnixAddress::Path(&self.address),
        })
    }

    /// The wait strategy, with the default applied.
    pub fn wait(&self) -> Wait {
        self.options.wait.unwrap_or_default()
    }

    /// The spin time of `wait=adaptive`, with the default applied.
    pub fn spin(&self) -> Duration {
        Duration::from_micros(u64::from(self.options.spin_us.unwrap_or(DEFAULT_SPIN_US)))
    }

    /// Whether `uid` may connect under `allow_uid`.
    pub fn allows_uid(&self, uid: u32) -> bool {
        self.options.allow_uid.is_empty() || self.options.allow_uid.contains(&uid)
    }
}

const ALLOWED_SCHEMES: &str = "pipe:, fifo:PATH, mq:/NAME, sysv-mq:PATH, shm:/NAME, sysv-shm:PATH, unix:PATH, unix:@NAME, tcp://HOST:PORT";

/// An endpoint string that does not parse, with what is wrong, what is
/// allowed, and a corrected example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {input:?}: {problem}; allowed: {allowed}; example: {example}")]
pub struct EndpointError {
    /// The text that was parsed.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
    /// What would be accepted in that place.
    pub allowed: String,
    /// A corrected example.
    pub example: String,
}

fn err(
    input: &str,
    problem: impl Into<String>,
    allowed: impl Into<String>,
    example: impl Into<String>,
) -> EndpointError {
    EndpointError {
        input: input.to_string(),
        problem: problem.into(),
        allowed: allowed.into(),
        example: example.into(),
    }
}

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

fn suggest_scheme(s: &str) -> String {
    let lower = s.to_ascii_lowercase().replace('_', "-");
    let guess = match lower.as_str() {
        "ipc" | "uds" | "unix-socket" | "socket" => Scheme::Unix,
        "posix-mq" | "mqueue" | "queue" => Scheme::Mq,
        "sysvmq" | "msg" | "msgq" => Scheme::SysvMq,
        "shmem" | "memory" | "posix-shm" => Scheme::Shm,
        "sysvshm" => Scheme::SysvShm,
        "fifo-pipe" | "named-pipe" => Scheme::Fifo,
        "tcp4" | "tcp6" | "http" => Scheme::Tcp,
        other => Scheme::from_name(other).unwrap_or(Scheme::Unix),
    };
    guess.example().to_string()
}

fn allowed_options(scheme: Scheme) -> String {
    let names: Vec<&str> = OptionKey::ALL
        .into_iter()
        .filter(|k| scheme.allows(*k))
        .map(OptionKey::name)
        .collect();
    format!("options of {scheme}: {}", names.join(", "))
}

fn validate_address(input: &str, scheme: Scheme, address: &str) -> Result<(), EndpointError> {
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

fn check_name_chars(input: &str, scheme: Scheme, name: &str) -> Result<(), EndpointError> {
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
fn split_host_port(address: &str) -> Option<(&str, &str)> {
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

fn set_option(
    input: &str,
    scheme: Scheme,
    o: &mut Options,
    key: OptionKey,
    value: &str,
) -> Result<(), EndpointError> {
    if !scheme.allows(key) {
        return Err(err(
            input,
            format!("option {} does not apply to {scheme}:", key.name()),
            allowed_options(scheme),
            scheme.example(),
        ));
    }
    let bad = || {
        err(
            input,
            format!("{}={value:?} is not valid", key.name()),
            format!("{}: {}", key.name(), key.expected()),
            format!("{}?{}", scheme.example(), example_option(scheme, key)),
        )
    };
    match key {
        OptionKey::MaxMessageSize => o.max_message_size = value.parse().map_err(|_| bad())?,
        OptionKey::Mode => o.mode = u32::from_str_radix(value, 8).map_err(|_| bad())?,
        OptionKey::AllowUid => {
            o.allow_uid = value
                .split(',')
                .map(|u| u.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
        }
        OptionKey::ConnectTimeout => o.connect_timeout = parse_duration(value).ok_or_else(bad)?,
        OptionKey::Capacity => o.capacity = Some(value.parse().map_err(|_| bad())?),
        OptionKey::Wait => {
            o.wait = Some(match value {
                "block" => Wait::Block,
                "spin" => Wait::Spin,
                "adaptive" => Wait::Adaptive,
                _ => return Err(bad()),
            });
        }
        OptionKey::SpinUs => o.spin_us = Some(value.parse().map_err(|_| bad())?),
    }
    Ok(())
}

fn example_option(scheme: Scheme, key: OptionKey) -> &'static str {
    match key {
        OptionKey::Capacity if matches!(scheme, Scheme::Shm | Scheme::SysvShm) => {
            "capacity=1048576"
        }
        OptionKey::MaxMessageSize => "max_message_size=65536",
        OptionKey::Mode => "mode=0660",
        OptionKey::AllowUid => "allow_uid=1000",
        OptionKey::ConnectTimeout => "connect_timeout=2s",
        OptionKey::Capacity => "capacity=8",
        OptionKey::Wait => "wait=spin",
        OptionKey::SpinUs => "spin_us=20",
    }
}

fn validate_options(input: &str, scheme: Scheme, o: &Options) -> Result<(), EndpointError> {
    let d = Options::default();
    let check = |key: OptionKey, set: bool| -> Result<(), EndpointError> {
        if set && !scheme.allows(key) {
            return Err(err(
                input,
                format!("option {} does not apply to {scheme}:", key.name()),
                allowed_options(scheme),
                scheme.example(),
            ));
        }
        Ok(())
    };
    check(OptionKey::Mode, o.mode != d.mode)?;
    check(OptionKey::AllowUid, !o.allow_uid.is_empty())?;
    check(OptionKey::Capacity, o.capacity.is_some())?;
    check(OptionKey::Wait, o.wait.is_some())?;
    check(OptionKey::SpinUs, o.spin_us.is_some())?;
    let out_of_range = |key: OptionKey, value: String| {
        Err(err(
            input,
            format!("{}={value} is out of range", key.name()),
            format!("{}: {}", key.name(), key.expected()),
            format!("{}?{}", scheme.example(), example_option(scheme, key)),
        ))
    };
    if o.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
        return out_of_range(OptionKey::MaxMessageSize, o.max_message_size.to_string());
    }
    if o.mode > 0o777 {
        return out_of_range(OptionKey::Mode, format!("{:04o}", o.mode));
    }
    if o.capacity == Some(0) {
        return out_of_range(OptionKey::Capacity, "0".into());
    }
    if matches!(scheme, Scheme::Shm | Scheme::SysvShm)
        && o.capacity.is_some_and(|c| c < MIN_SHM_CAPACITY)
    {
        return Err(err(
            input,
            format!(
                "capacity={} is below {MIN_SHM_CAPACITY}: for {scheme}: capacity is the ring's size in bytes per direction, not a message count",
                o.capacity.unwrap_or(0)
            ),
            format!("capacity: bytes, at least {MIN_SHM_CAPACITY} (rounded up to a power of two)"),
            format!("{}?capacity=1048576", scheme.example()),
        ));
    }
    if o.spin_us.is_some_and(|s| s > 1_000_000) {
        return out_of_range(OptionKey::SpinUs, o.spin_us.unwrap_or(0).to_string());
    }
    if o.connect_timeout.is_zero() {
        return out_of_range(OptionKey::ConnectTimeout, "0".into());
    }
    if scheme == Scheme::Unix && o.mode != d.mode && input.contains(":@") {
        return Err(err(
            input,
            "mode does not apply to abstract sockets (they have no file); restrict peers with allow_uid",
            "unix:@NAME?allow_uid=UID",
            "unix:@orders?allow_uid=1000",
        ));
    }
    Ok(())
}

/// Parses `250ms`, `5s`, `2m`, `1h`, `100us`, or a bare number of milliseconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Tcp => write!(f, "tcp://{}", self.address)?,
            s => write!(f, "{s}:{}", self.address)?,
        }
        let o = &self.options;
        let d = Options::default();
        let mut sep = '?';
        let mut opt = |f: &mut fmt::Formatter<'_>, k: &str, v: String| {
            let r = write!(f, "{sep}{k}={v}");
            sep = '&';
            r
        };
        if let Some(c) = o.capacity {
            opt(f, "capacity", c.to_string())?;
        }
        if o.max_message_size != d.max_message_size {
            opt(f, "max_message_size", o.max_message_size.to_string())?;
        }
        if o.mode != d.mode {
            opt(f, "mode", format!("{:04o}", o.mode))?;
        }
        if !o.allow_uid.is_empty() {
            let uids: Vec<String> = o.allow_uid.iter().map(u32::to_string).collect();
            opt(f, "allow_uid", uids.join(","))?;
        }
        if o.connect_timeout != d.connect_timeout {
            opt(f, "connect_timeout", format_duration(o.connect_timeout))?;
        }
        if let Some(w) = o.wait {
            opt(f, "wait", w.as_str().to_string())?;
        }
        if let Some(s) = o.spin_us {
            opt(f, "spin_us", s.to_string())?;
        }
        Ok(())
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Endpoint, D::Error> {
        deserializer.deserialize_any(EndpointVisitor)
    }
}

struct EndpointVisitor;

impl<'de> Visitor<'de> for EndpointVisitor {
    type Value = Endpoint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an endpoint string such as \"shm:/orders\" or a table with transport and name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Endpoint, A::Error> {
        let t = TableForm::deserialize(de::value::MapAccessDeserializer::new(map))?;
        t.into_endpoint().map_err(de::Error::custom)
    }
}

/// A scalar that may be written as a number or a string in a config file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(u64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(n) => n.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableForm {
    transport: String,
    #[serde(default)]
    name: String,
    max_message_size: Option<Scalar>,
    mode: Option<Scalar>,
    allow_uid: Option<UidList>,
    connect_timeout: Option<Scalar>,
    capacity: Option<Scalar>,
    wait: Option<String>,
    spin_us: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UidList {
    One(u32),
    Many(Vec<u32>),
    Text(String),
}

impl TableForm {
    /// Rebuilds the string form and parses it, so both forms share one
    /// validator and one set of error messages.
    fn into_endpoint(self) -> Result<Endpoint, EndpointError> {
        let mut s = if self.transport == "tcp" {
            format!("tcp://{}", self.name)
        } else {
            format!("{}:{}", self.transport, self.name)
        };
        let mut q = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={v}"));
            }
        };
        push("max_message_size", self.max_message_size.map(|v| v.text()));
        // A TOML/JSON number is decimal: 600 means 0600 only as a string.
        push(
            "mode",
            self.mode.map(|v| match v {
                Scalar::Int(n) => format!("{n:o}"),
                Scalar::Str(s) => s,
            }),
        );
        push(
            "allow_uid",
            self.allow_uid.map(|u| match u {
                UidList::One(n) => n.to_string(),
                UidList::Many(v) => v.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                UidList::Text(s) => s,
            }),
        );
        push("connect_timeout", self.connect_timeout.map(|v| v.text()));
        push("capacity", self.capacity.map(|v| v.text()));
        push("wait", self.wait);
        push("spin_us", self.spin_us.map(|v| v.text()));
        if !q.is_empty() {
            s.push('?');
            s.push_str(&q.join("&"));
        }
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Endpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> EndpointError {
        match s.parse::<Endpoint>() {
            Ok(e) => panic!("{s} parsed as {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_scheme_round_trips() {
        for s in [
            "pipe:",
            "fifo:/tmp/orders",
            "mq:/orders",
            "sysv-mq:/var/run/orders",
            "shm:/orders",
            "sysv-shm:/var/run/orders",
            "unix:/run/orders.sock",
            "unix:@orders",
            "tcp://127.0.0.1:7000",
            "tcp://[::1]:7000",
            "tcp://localhost:0",
            "shm:/orders?capacity=262144&max_message_size=65536&wait=spin",
            "mq:/orders?capacity=10&mode=0660",
            "unix:/run/a.sock?mode=0660&allow_uid=1000,1001&connect_timeout=250ms",
            "shm:/o?wait=adaptive&spin_us=50",
        ] {
            let e = ok(s);
            assert_eq!(e.to_string(), s, "canonical form of {s}");
            assert_eq!(ok(&e.to_string()), e);
        }
    }

    #[test]
    fn option_order_is_canonicalised() {
        let e = ok("shm:/orders?wait=spin&capacity=8192");
        assert_eq!(e.to_string(), "shm:/orders?capacity=8192&wait=spin");
        assert_eq!(e.options().capacity, Some(8192));
        assert_eq!(e.wait(), Wait::Spin);
    }

    #[test]
    fn defaults_are_applied() {
        let e = ok("unix:/tmp/x.sock");
        assert_eq!(e.options().max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(e.options().mode, 0o600);
        assert_eq!(e.options().connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert!(e.allows_uid(12345));
        assert_eq!(e.unix_address(), Some(UnixAddress::Path("/tmp/x.sock")));
        assert_eq!(
            ok("unix:@abc").unix_address(),
            Some(UnixAddress::Abstract("abc"))
        );
        assert_eq!(ok("shm:/x").wait(), Wait::Adaptive);
    }

    #[test]
    fn durations() {
        let t = |s: &str| {
            ok(&format!("tcp://h:1?connect_timeout={s}"))
                .options()
                .connect_timeout
        };
        assert_eq!(t("250"), Duration::from_millis(250));
        assert_eq!(t("250ms"), Duration::from_millis(250));
        assert_eq!(t("3s"), Duration::from_secs(3));
        assert_eq!(t("2m"), Duration::from_secs(120));
        assert_eq!(t("1500us"), Duration::from_micros(1500));
    }

    #[test]
    fn unknown_scheme_names_allowed_and_suggests() {
        let e = bad("uds:/tmp/x");
        assert!(e.problem.contains("unknown scheme \"uds\""), "{e}");
        assert!(e.allowed.contains("unix:PATH"), "{e}");
        assert_eq!(e.example, "unix:/run/orders.sock");
        let e = bad("posix_mq:/x");
        assert_eq!(e.example, "mq:/orders");
    }

    #[test]
    fn bad_inputs_name_the_offending_part() {
        let cases: &[(&str, &str)] = &[
            ("", "missing scheme"),
            ("/tmp/x", "missing scheme"),
            ("mq:orders", "start with '/'"),
            ("mq:/a/b", "without '/'"),
            ("mq:/", "without '/'"),
            ("shm:/a b", "not allowed"),
            ("pipe:/x", "takes no address"),
            ("tcp:127.0.0.1:1", "tcp://HOST:PORT"),
            ("tcp://127.0.0.1", "HOST:PORT"),
            ("tcp://127.0.0.1:99999", "0 to 65535"),
            ("tcp://:80", "host is empty"),
            ("unix:", "needs a socket path"),
            ("unix:@", "empty"),
            ("fifo:", "file path"),
            ("shm:/x?capacity=0", "capacity=0 is out of range"),
            ("shm:/x?capacity=256", "not a message count"),
            ("sysv-shm:/tmp/x?capacity=4095", "not a message count"),
            ("shm:/x?capacity=lots", "capacity=\"lots\""),
            ("shm:/x?wait=sleepy", "wait=\"sleepy\""),
            ("shm:/x?colour=red", "unknown option \"colour\""),
            ("shm:/x?capacity", "has no value"),
            ("shm:/x?capacity=1&capacity=2", "given twice"),
            ("tcp://h:1?mode=0660", "does not apply to tcp"),
            ("unix:/x?capacity=3", "does not apply to unix"),
            ("mq:/x?wait=spin", "does not apply to mq"),
            ("unix:/x?mode=0999", "mode=\"0999\""),
            ("unix:/x?mode=1777", "out of range"),
            ("unix:@x?mode=0660", "abstract"),
            ("unix:/x?max_message_size=2147483648", "out of range"),
            ("unix:/x?connect_timeout=5 parsecs", "not valid"),
            ("unix:/x?connect_timeout=0", "out of range"),
            ("unix:/x?allow_uid=root", "allow_uid"),
        ];
        for (input, needle) in cases {
            let e = bad(input);
            let text = e.to_string();
            assert!(text.contains(needle), "{input}: {text}");
            assert!(!e.allowed.is_empty() && !e.example.is_empty(), "{input}");
            assert!(
                e.example.parse::<Endpoint>().is_ok(),
                "{input}: example {} must parse",
                e.example
            );
        }
    }

    #[test]
    fn unix_path_limit_names_the_kernel_limit() {
        let long = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH));
        let e = bad(&long);
        assert!(e.problem.contains("107"), "{e}");
        let ok_len = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH - 1));
        ok(&ok_len);
        let long = format!("mq:/{}", "a".repeat(MAX_POSIX_NAME + 1));
        assert!(bad(&long).problem.contains("NAME_MAX"));
    }

    #[test]
    fn serde_string_and_table_forms() {
        #[derive(Deserialize, Serialize)]
        struct Cfg {
            a: Endpoint,
            b: Endpoint,
            c: Endpoint,
        }
        let cfg: Cfg = toml::from_str(
            r#"
            a = "mq:/orders?capacity=10"
            b = { transport = "shm", name = "/orders", capacity = 65536, wait = "spin" }
            c = { transport = "tcp", name = "127.0.0.1:7000", connect_timeout = "2s" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.a.to_string(), "mq:/orders?capacity=10");
        assert_eq!(cfg.b.to_string(), "shm:/orders?capacity=65536&wait=spin");
        assert_eq!(cfg.c.to_string(), "tcp://127.0.0.1:7000?connect_timeout=2s");
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            json,
            r#"{"a":"mq:/orders?capacity=10","b":"shm:/orders?capacity=65536&wait=spin","c":"tcp://127.0.0.1:7000?connect_timeout=2s"}"#
        );
        let back: Cfg = serde_json::from_str(&json).unwrap();
        assert_eq!(back.b, cfg.b);
        let j: Endpoint = serde_json::from_str(
            r#"{"transport":"unix","name":"/x.sock","mode":"0660","allow_uid":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(j.to_string(), "unix:/x.sock?mode=0660&allow_uid=1,2");
    }

    #[test]
    fn serde_errors_are_the_parser_errors() {
        let e = toml::from_str::<toml::Table>("a = 1").map(|_| ()); // sanity: toml works
        assert!(e.is_ok());
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Cfg {
            a: Endpoint,
        }
        let e = toml::from_str::<Cfg>(r#"a = "mq:orders""#).unwrap_err();
        assert!(e.to_string().contains("start with '/'"), "{e}");
        let e = toml::from_str::<Cfg>(r#"a = { transport = "mq", name = "/x", colour = 1 }"#)
            .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = toml::from_str::<Cfg>(r#"a = { transport = "shm", name = "/x", wait = "lazy" }"#)
            .unwrap_err();
        assert!(e.to_string().contains("block, spin, adaptive"), "{e}");
    }

    #[test]
    fn from_env_overrides() {
        let var = format!("IPCX_TEST_ENDPOINT_{}", std::process::id());
        let default = ok("unix:/tmp/default.sock");
        assert_eq!(Endpoint::from_env(&var).unwrap(), None);
        assert_eq!(Endpoint::from_env_or(&var, &default).unwrap(), default);
        // SAFETY: no other thread of this test binary reads this uniquely named variable.
        unsafe { std::env::set_var(&var, "mq:/override") };
        assert_eq!(
            Endpoint::from_env_or(&var, &default).unwrap(),
            ok("mq:/override")
        );
        // SAFETY: as above.
        unsafe { std::env::set_var(&var, "mq:override") };
        let e = Endpoint::from_env(&var).unwrap_err();
        assert!(e.problem.contains(&var), "{e}");
        // SAFETY: as above.
        unsafe { std::env::remove_var(&var) };
    }

    #[test]
    fn new_validates() {
        assert!(Endpoint::new(Scheme::Mq, "/ok", Options::default()).is_ok());
        assert!(Endpoint::new(Scheme::Mq, "nope", Options::default()).is_err());
        let o = Options {
            wait: Some(Wait::Spin),
            ..Options::default()
        };
        assert!(Endpoint::new(Scheme::Unix, "/x.sock", o).is_err());
    }
}

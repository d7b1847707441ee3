//! Endpoints: the one configuration value that names a transport.
//!
//! ```text
//! pipe:                              anonymous pipe pair handed to a spawned child
//! fifo:/tmp/orders                   named FIFOs under that path prefix
//! mq:/orders                         POSIX message queues
//! sysv-mq:/var/run/orders            System V message queues (key from ftok(path))
//! shm:/orders                        POSIX shm + futex wake-ups
//! sysv-shm:/var/run/orders           System V shm + futex wake-ups
//! unix:/run/orders.sock              Unix stream socket (unix:@name = abstract)
//! tcp://127.0.0.1:7000               TCP, for peers on other machines
//! nats://127.0.0.1:4222/orders       through a NATS server (feature `nats`)
//! ```
//!
//! `mq:` and `sysv-mq:` also name standalone queues (`ipcx::queue`): a
//! config says so with `?pattern=queue` (`mq:/jobs?pattern=queue`), which
//! `listen`/`connect` refuse; see [`Pattern`].
//!
//! Options ride as query parameters named like the fields of [`Options`]:
//! `shm:/orders?capacity=1048576&max_message_size=65536&wait=spin`. An option
//! that does not apply to a scheme is refused, so a typo never goes unnoticed.
//!
//! An [`Endpoint`] parses from that string ([`str::parse`]), prints back its
//! canonical form ([`Display`](std::fmt::Display)), and (de)serializes with serde
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
//!
//! # What is refused
//!
//! Every refusal is an [`EndpointError`] naming the part or option, the
//! value, what is allowed there and a corrected example that parses. Besides
//! unknown schemes and options and malformed addresses, that includes:
//!
//! - control characters (newline, tab, NUL, U+0000 to U+001F, U+007F)
//!   anywhere, so a stray newline never becomes part of a file name;
//! - values beyond a limit rather than silently capping them:
//!   `max_message_size` 1 to 1 GiB, a shared-memory `capacity` 4096 bytes
//!   to 1 GiB;
//! - a duration without its unit (`connect_timeout=5`: write `5s` or
//!   `5ms`), for every duration option; only a bare `0` needs none;
//! - `mode=` on an abstract socket (`unix:@name`), which has no file and so
//!   no permission bits (restrict peers with `allow_uid=`).
//!
//! # Paths
//!
//! The file paths of `unix:`, `fifo:`, `sysv-mq:` and `sysv-shm:` are
//! absolute once parsed. A relative path is resolved against the current
//! directory ([`std::env::current_dir`]) when the endpoint is parsed or
//! built with [`Endpoint::new`], and its `.` and `..` components are removed
//! lexically, without consulting the file system (as `cd ..` in a shell:
//! `..` after a symbolic link goes back to the link's directory). An
//! absolute path is kept as written. So the canonical string names one file
//! whichever directory it is read from later (the object registry and
//! `ipcx clean` record it), and `parse(display(e)) == e` still holds.
//!
//! ```
//! # use ipc_core::Endpoint;
//! let e: Endpoint = "unix:run/../orders.sock".parse().unwrap();
//! let cwd = std::env::current_dir().unwrap();
//! assert_eq!(e.address(), cwd.join("orders.sock").to_str().unwrap());
//! assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);
//! ```

mod address;
mod display;
mod options;
mod parse;
mod pattern;
mod scheme;
mod serde;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use options::{Options, Wait};
pub use pattern::Pattern;
pub use scheme::Scheme;

use address::resolve_and_validate;
use options::validate_options;
use parse::refuse_control_chars;
use scheme::ALLOWED_SCHEMES;

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
/// Largest `capacity` of a shared-memory ring, in bytes: 1 GiB. Larger
/// values are refused, not capped.
pub const MAX_SHM_CAPACITY: usize = 1 << 30;
/// Longest name accepted for `mq:` and `shm:`, leaving room for the
/// per-connection suffixes under the kernel's NAME_MAX of 255.
pub const MAX_POSIX_NAME: usize = 200;
/// Default interval of `nats://` heartbeats (`heartbeat=`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Shortest `heartbeat=`.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// Longest `heartbeat=`.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);
/// Longest Unix socket path: `sun_path` holds 108 bytes including the NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// A parsed endpoint: scheme, address and options.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ipc_core::{Endpoint, Scheme};
///
/// let e: Endpoint = "mq:/orders?capacity=8&connect_timeout=2s".parse().unwrap();
/// assert_eq!(e.scheme(), Scheme::Mq);
/// assert_eq!(e.address(), "/orders");
/// assert_eq!(e.options().capacity, Some(8));
/// assert_eq!(e.options().connect_timeout, Duration::from_secs(2));
/// // Display is canonical and parses back to the same endpoint.
/// assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);
///
/// // A mistake names the part, what is allowed and a corrected example.
/// let err = "mq:/orders?capacity=lots".parse::<Endpoint>().unwrap_err();
/// assert!(err.to_string().contains("capacity"));
/// ```
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
    /// Builds an endpoint from its parts, validating them as [`str::parse`]
    /// does; a relative file path is made absolute as there (see "Paths" in
    /// the [module docs](self)).
    ///
    /// # Errors
    /// [`EndpointError`] when the address or an option is invalid for the scheme.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipc_core::endpoint::{Endpoint, Options, Scheme};
    /// let o = Options { capacity: Some(16), ..Options::default() };
    /// let e = Endpoint::new(Scheme::Mq, "/orders", o).unwrap();
    /// assert_eq!(e.to_string(), "mq:/orders?capacity=16");
    /// assert!(Endpoint::new(Scheme::Mq, "orders", Options::default()).is_err());
    /// ```
    pub fn new(
        scheme: Scheme,
        address: impl Into<String>,
        options: Options,
    ) -> Result<Endpoint, EndpointError> {
        let mut ep = Endpoint {
            scheme,
            address: address.into(),
            options,
        };
        let input = ep.to_string();
        refuse_control_chars(&input)?;
        ep.address = resolve_and_validate(&input, scheme, &ep.address)?;
        let mode_given = ep.options.mode != DEFAULT_MODE;
        validate_options(&input, scheme, &ep.address, &ep.options, mode_given)?;
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

    /// How long connecting retries while no listener is there
    /// (`wait_for_listener=`); zero, the default, means connect does not
    /// wait and fails at once with `NoListener`.
    pub fn wait_for_listener(&self) -> Duration {
        self.options.wait_for_listener
    }

    /// The `nats://` heartbeat interval, with the default (1 s) applied.
    pub fn heartbeat(&self) -> Duration {
        self.options.heartbeat.unwrap_or(DEFAULT_HEARTBEAT)
    }

    /// The pattern: a connection (default) or a standalone queue
    /// (`?pattern=queue`).
    pub fn pattern(&self) -> Pattern {
        self.options.pattern
    }

    /// Whether `uid` may connect under `allow_uid`.
    pub fn allows_uid(&self, uid: u32) -> bool {
        self.options.allow_uid.is_empty() || self.options.allow_uid.contains(&uid)
    }
}

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

pub(super) fn err(
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

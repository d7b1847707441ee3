//! The options an endpoint carries: their names, defaults, parsing and
//! range checks.

use std::time::Duration;

use super::pattern::Pattern;
use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MODE, EndpointError, MAX_HEARTBEAT,
    MAX_MESSAGE_SIZE_LIMIT, MAX_SHM_CAPACITY, MIN_HEARTBEAT, MIN_SHM_CAPACITY, Scheme, err,
};

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
    pub(super) fn as_str(self) -> &'static str {
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
    /// Largest message in bytes, 1 to 1 GiB (default 1 MiB). Both peers use
    /// the smaller of their two values.
    pub max_message_size: usize,
    /// Permission bits of created kernel objects (default `0600`).
    pub mode: u32,
    /// Peers allowed to connect, by uid; empty means anyone the permission
    /// bits let in.
    pub allow_uid: Vec<u32>,
    /// Bound on connecting and on the handshake (default 5 s).
    pub connect_timeout: Duration,
    /// Connect retries while no listener is there, until this much time has
    /// passed; then `NoListener`. The default, zero, does not wait: connect
    /// fails at once when nobody listens. Every scheme but `pipe:` takes it
    /// (`wait_for_listener=10s`).
    pub wait_for_listener: Duration,
    /// How much a direction holds before `send` blocks. Queues (`mq:`,
    /// `sysv-mq:`): kernel messages per queue. Shared memory (`shm:`,
    /// `sysv-shm:`): bytes of ring per direction, 4096 to 1 GiB, rounded up
    /// to a power of two.
    pub capacity: Option<usize>,
    /// Wait strategy of shared-memory readers and writers.
    pub wait: Option<Wait>,
    /// Spin time of `wait=adaptive`, in microseconds.
    pub spin_us: Option<u32>,
    /// `nats://` only: how often each side of a connection tells the other
    /// it lives (default 1 s). A peer silent for three intervals is gone:
    /// operations return `Disconnected` within 3 × `heartbeat` of its
    /// death (`docs/nats.md`).
    pub heartbeat: Option<Duration>,
    /// Connection (default) or standalone queue (`pattern=queue`, on `mq:`,
    /// `sysv-mq:` and `nats://`).
    pub pattern: Pattern,
    /// `nats://` queues: copies of the JetStream stream kept by a cluster,
    /// 1 to 5 (default 1). Fixed when the stream is created.
    pub replicas: Option<u32>,
    /// `nats://` queues: how long a received message may stay
    /// unacknowledged before the server redelivers it to another
    /// consumer, 100 ms to 12 h (default 30 s).
    pub ack_wait: Option<Duration>,
    /// `nats://` queues: most bytes the stream holds before a send blocks
    /// (default: no limit but the server's).
    pub max_bytes: Option<u64>,
    /// `nats://`: a NATS credentials file (`.creds`: a user JWT and its
    /// nkey seed), for servers in operator (decentralized JWT) mode.
    pub creds: Option<String>,
    /// `nats://`: a file holding a user's nkey seed (`SU…`), for servers
    /// that list users by nkey public key.
    pub nkey: Option<String>,
    /// `nats://`: the user to authenticate as, with `password_file=`.
    pub user: Option<String>,
    /// `nats://`: a file holding the password of `user=` (its first line).
    pub password_file: Option<String>,
    /// `nats://`: `tls=required` refuses a server that does not speak TLS.
    pub tls: bool,
    /// `nats://`: a PEM file of CA certificates to check the server's with.
    pub tls_ca: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            mode: DEFAULT_MODE,
            allow_uid: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wait_for_listener: Duration::ZERO,
            capacity: None,
            wait: None,
            spin_us: None,
            heartbeat: None,
            pattern: Pattern::Connection,
            replicas: None,
            ack_wait: None,
            max_bytes: None,
            creds: None,
            nkey: None,
            user: None,
            password_file: None,
            tls: false,
            tls_ca: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OptionKey {
    MaxMessageSize,
    Mode,
    AllowUid,
    ConnectTimeout,
    WaitForListener,
    Capacity,
    Wait,
    SpinUs,
    Pattern,
    Heartbeat,
    Replicas,
    AckWait,
    MaxBytes,
    Creds,
    Nkey,
    User,
    PasswordFile,
    Tls,
    TlsCa,
}

impl OptionKey {
    const ALL: [OptionKey; 19] = [
        OptionKey::MaxMessageSize,
        OptionKey::Mode,
        OptionKey::AllowUid,
        OptionKey::ConnectTimeout,
        OptionKey::WaitForListener,
        OptionKey::Capacity,
        OptionKey::Wait,
        OptionKey::SpinUs,
        OptionKey::Pattern,
        OptionKey::Heartbeat,
        OptionKey::Replicas,
        OptionKey::AckWait,
        OptionKey::MaxBytes,
        OptionKey::Creds,
        OptionKey::Nkey,
        OptionKey::User,
        OptionKey::PasswordFile,
        OptionKey::Tls,
        OptionKey::TlsCa,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            OptionKey::MaxMessageSize => "max_message_size",
            OptionKey::Mode => "mode",
            OptionKey::AllowUid => "allow_uid",
            OptionKey::ConnectTimeout => "connect_timeout",
            OptionKey::WaitForListener => "wait_for_listener",
            OptionKey::Capacity => "capacity",
            OptionKey::Wait => "wait",
            OptionKey::SpinUs => "spin_us",
            OptionKey::Pattern => "pattern",
            OptionKey::Heartbeat => "heartbeat",
            OptionKey::Replicas => "replicas",
            OptionKey::AckWait => "ack_wait",
            OptionKey::MaxBytes => "max_bytes",
            OptionKey::Creds => "creds",
            OptionKey::Nkey => "nkey",
            OptionKey::User => "user",
            OptionKey::PasswordFile => "password_file",
            OptionKey::Tls => "tls",
            OptionKey::TlsCa => "tls_ca",
        }
    }

    pub(super) fn from_name(s: &str) -> Option<OptionKey> {
        OptionKey::ALL.into_iter().find(|k| k.name() == s)
    }

    pub(super) fn expected(self) -> &'static str {
        match self {
            OptionKey::MaxMessageSize => "a byte count from 1 to 1073741824 (1 GiB)",
            OptionKey::Mode => "octal permission bits such as 0600 or 0660",
            OptionKey::AllowUid => "a comma-separated list of numeric uids such as 1000,1001",
            OptionKey::ConnectTimeout => {
                "a duration with its unit (us, ms, s, m or h) such as 500ms, 5s or 1m, above 0"
            }
            OptionKey::WaitForListener => {
                "a duration with its unit (us, ms, s, m or h) such as 500ms, 5s or 1m; 0, the default, does not wait"
            }
            OptionKey::Capacity => {
                "a count of at least 1 (messages for queues; ring bytes, 4096 to 1073741824 (1 GiB), for shared memory)"
            }
            OptionKey::Wait => "one of block, spin, adaptive",
            OptionKey::SpinUs => "microseconds, 0 to 1000000",
            OptionKey::Heartbeat => {
                "a duration with its unit such as 250ms or 1s, from 10ms to 1h (the peer is declared gone after three silent intervals)"
            }
            OptionKey::Pattern => {
                "connection (the default) or queue (a standalone queue, ipcx::queue)"
            }
            OptionKey::Replicas => {
                "copies of the queue's stream, 1 to 5 (at most the cluster's size)"
            }
            OptionKey::AckWait => {
                "a duration with its unit such as 500ms or 30s, from 100ms to 12h"
            }
            OptionKey::MaxBytes => "a byte count of at least 1",
            OptionKey::Creds | OptionKey::Nkey | OptionKey::PasswordFile | OptionKey::TlsCa => {
                "a file path without '&', '?' or '#'"
            }
            OptionKey::User => "a user name of letters, digits, '-', '_' and '.'",
            OptionKey::Tls => "required (refuse a server without TLS) or none (the default)",
        }
    }
}

pub(super) fn allowed_options(scheme: Scheme) -> String {
    let names: Vec<&str> = OptionKey::ALL
        .into_iter()
        .filter(|k| scheme.allows(*k))
        .map(OptionKey::name)
        .collect();
    format!("options of {scheme}: {}", names.join(", "))
}

pub(super) fn set_option(
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
        OptionKey::ConnectTimeout | OptionKey::WaitForListener | OptionKey::Heartbeat => {
            let d = match parse_duration(value) {
                Ok(d) => d,
                Err(DurationError::NoUnit(n)) => {
                    return Err(err(
                        input,
                        format!(
                            "{}={value} has no unit: write {n}s for seconds or {n}ms for milliseconds",
                            key.name()
                        ),
                        format!("{}: {}", key.name(), key.expected()),
                        format!("{}?{}={n}s", scheme.example(), key.name()),
                    ));
                }
                Err(DurationError::Invalid) => return Err(bad()),
            };
            match key {
                OptionKey::ConnectTimeout => o.connect_timeout = d,
                OptionKey::Heartbeat => o.heartbeat = Some(d),
                _ => o.wait_for_listener = d,
            }
        }
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
        OptionKey::Pattern => o.pattern = Pattern::from_name(value).ok_or_else(bad)?,
        OptionKey::Replicas => o.replicas = Some(value.parse().map_err(|_| bad())?),
        OptionKey::AckWait => match parse_duration(value) {
            Ok(d) => o.ack_wait = Some(d),
            Err(DurationError::NoUnit(n)) => {
                return Err(err(
                    input,
                    format!(
                        "ack_wait={value} has no unit: write {n}s for seconds or {n}ms for milliseconds"
                    ),
                    format!("ack_wait: {}", key.expected()),
                    format!("{}?pattern=queue&ack_wait={n}s", scheme.example()),
                ));
            }
            Err(DurationError::Invalid) => return Err(bad()),
        },
        OptionKey::MaxBytes => o.max_bytes = Some(value.parse().map_err(|_| bad())?),
        OptionKey::Creds | OptionKey::Nkey | OptionKey::PasswordFile | OptionKey::TlsCa => {
            if value.is_empty() || value.contains('#') {
                return Err(bad());
            }
            let v = Some(value.to_string());
            match key {
                OptionKey::Creds => o.creds = v,
                OptionKey::Nkey => o.nkey = v,
                OptionKey::PasswordFile => o.password_file = v,
                _ => o.tls_ca = v,
            }
        }
        OptionKey::User => {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad());
            }
            o.user = Some(value.to_string());
        }
        OptionKey::Tls => {
            o.tls = match value {
                "required" => true,
                "none" => false,
                _ => return Err(bad()),
            }
        }
    }
    Ok(())
}

pub(super) fn example_option(scheme: Scheme, key: OptionKey) -> &'static str {
    match key {
        OptionKey::Capacity if matches!(scheme, Scheme::Shm | Scheme::SysvShm) => {
            "capacity=1048576"
        }
        OptionKey::Capacity if scheme == Scheme::Nats => "pattern=queue&capacity=1000",
        OptionKey::MaxMessageSize => "max_message_size=65536",
        OptionKey::Mode => "mode=0660",
        OptionKey::AllowUid => "allow_uid=1000",
        OptionKey::ConnectTimeout => "connect_timeout=2s",
        OptionKey::WaitForListener => "wait_for_listener=5s",
        OptionKey::Capacity => "capacity=8",
        OptionKey::Wait => "wait=spin",
        OptionKey::SpinUs => "spin_us=20",
        OptionKey::Pattern => "pattern=queue",
        OptionKey::Heartbeat => "heartbeat=1s",
        OptionKey::Replicas => "pattern=queue&replicas=3",
        OptionKey::AckWait => "pattern=queue&ack_wait=30s",
        OptionKey::MaxBytes => "pattern=queue&max_bytes=1073741824",
        OptionKey::Creds => "creds=/etc/nats/app.creds",
        OptionKey::Nkey => "nkey=/etc/nats/app.nk",
        OptionKey::User => "user=app&password_file=/etc/nats/app.password",
        OptionKey::PasswordFile => "user=app&password_file=/etc/nats/app.password",
        OptionKey::Tls => "tls=required",
        OptionKey::TlsCa => "tls=required&tls_ca=/etc/nats/ca.pem",
    }
}

/// Checks the options as a whole: each applies to `scheme` (and to
/// `address`: abstract sockets take no `mode`) and is within its range.
/// `mode_given` says whether `mode` was written, even at its default.
pub(super) fn validate_options(
    input: &str,
    scheme: Scheme,
    address: &str,
    o: &Options,
    mode_given: bool,
) -> Result<(), EndpointError> {
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
    check(
        OptionKey::MaxMessageSize,
        o.max_message_size != d.max_message_size,
    )?;
    check(
        OptionKey::ConnectTimeout,
        o.connect_timeout != d.connect_timeout,
    )?;
    check(OptionKey::AllowUid, !o.allow_uid.is_empty())?;
    check(OptionKey::WaitForListener, !o.wait_for_listener.is_zero())?;
    check(OptionKey::Capacity, o.capacity.is_some())?;
    check(OptionKey::Wait, o.wait.is_some())?;
    check(OptionKey::SpinUs, o.spin_us.is_some())?;
    check(OptionKey::Pattern, o.pattern != d.pattern)?;
    check(OptionKey::Heartbeat, o.heartbeat.is_some())?;
    check(OptionKey::Replicas, o.replicas.is_some())?;
    check(OptionKey::AckWait, o.ack_wait.is_some())?;
    check(OptionKey::MaxBytes, o.max_bytes.is_some())?;
    check(OptionKey::Creds, o.creds.is_some())?;
    check(OptionKey::Nkey, o.nkey.is_some())?;
    check(OptionKey::User, o.user.is_some())?;
    check(OptionKey::PasswordFile, o.password_file.is_some())?;
    check(OptionKey::Tls, o.tls)?;
    check(OptionKey::TlsCa, o.tls_ca.is_some())?;
    validate_nats_options(input, scheme, o)?;
    if o.pattern == Pattern::Queue {
        // A standalone queue has no peer to connect to or vet: only what
        // shapes the kernel object applies.
        let connection_only = [
            (OptionKey::AllowUid, !o.allow_uid.is_empty()),
            (
                OptionKey::ConnectTimeout,
                // A nats:// queue still connects to its server.
                scheme != Scheme::Nats && o.connect_timeout != d.connect_timeout,
            ),
            (OptionKey::WaitForListener, !o.wait_for_listener.is_zero()),
            (OptionKey::Heartbeat, o.heartbeat.is_some()),
        ];
        if let Some((key, _)) = connection_only.into_iter().find(|(_, set)| *set) {
            return Err(err(
                input,
                format!(
                    "option {} does not apply to a standalone queue ({scheme}:...?pattern=queue): it has no peer to connect to",
                    key.name()
                ),
                if scheme == Scheme::Nats {
                    "options of a nats:// queue: pattern, max_message_size, capacity, max_bytes, replicas, ack_wait, connect_timeout, creds, nkey, user, password_file, tls, tls_ca"
                } else {
                    "options of a standalone queue: pattern, max_message_size, mode, capacity"
                },
                if scheme == Scheme::Nats {
                    format!("{}?pattern=queue&ack_wait=30s", scheme.example())
                } else {
                    format!("{}?pattern=queue&mode=0660", scheme.example())
                },
            ));
        }
    }
    let out_of_range = |key: OptionKey, value: String| {
        Err(err(
            input,
            format!("{}={value} is out of range", key.name()),
            format!("{}: {}", key.name(), key.expected()),
            format!("{}?{}", scheme.example(), example_option(scheme, key)),
        ))
    };
    if o.max_message_size == 0 || o.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
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
    if matches!(scheme, Scheme::Shm | Scheme::SysvShm)
        && o.capacity.is_some_and(|c| c > MAX_SHM_CAPACITY)
    {
        return Err(err(
            input,
            format!(
                "capacity={} is above the limit of {MAX_SHM_CAPACITY} bytes (1 GiB) for {scheme} rings",
                o.capacity.unwrap_or(0)
            ),
            format!(
                "capacity: bytes, {MIN_SHM_CAPACITY} to {MAX_SHM_CAPACITY} (rounded up to a power of two)"
            ),
            format!("{}?capacity=1048576", scheme.example()),
        ));
    }
    if o.spin_us.is_some_and(|s| s > 1_000_000) {
        return out_of_range(OptionKey::SpinUs, o.spin_us.unwrap_or(0).to_string());
    }
    if let Some(h) = o.heartbeat
        && !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&h)
    {
        return out_of_range(OptionKey::Heartbeat, format_duration(h));
    }
    if o.connect_timeout.is_zero() {
        return out_of_range(OptionKey::ConnectTimeout, "0".into());
    }
    if scheme == Scheme::Unix && address.starts_with('@') && (mode_given || o.mode != d.mode) {
        return Err(err(
            input,
            format!(
                "mode={:04o} does not apply to abstract sockets: unix:{address} has no file, so no permission bits; restrict peers with allow_uid",
                o.mode
            ),
            "options of unix:@NAME: max_message_size, allow_uid, connect_timeout, wait_for_listener",
            format!("unix:{address}?allow_uid=1000"),
        ));
    }
    Ok(())
}

/// Longest `ack_wait=`.
const MAX_ACK_WAIT: Duration = Duration::from_secs(12 * 3600);
/// Shortest `ack_wait=`.
const MIN_ACK_WAIT: Duration = Duration::from_millis(100);
/// Most `replicas=` (JetStream's own limit).
const MAX_REPLICAS: u32 = 5;

/// The `nats://` options as a whole: the JetStream ones name a queue's
/// stream and apply to `pattern=queue` only; credentials come one way.
fn validate_nats_options(input: &str, scheme: Scheme, o: &Options) -> Result<(), EndpointError> {
    if scheme != Scheme::Nats {
        return Ok(());
    }
    let example = scheme.example();
    if o.pattern != Pattern::Queue {
        let queue_only = [
            (OptionKey::Capacity, o.capacity.is_some()),
            (OptionKey::Replicas, o.replicas.is_some()),
            (OptionKey::AckWait, o.ack_wait.is_some()),
            (OptionKey::MaxBytes, o.max_bytes.is_some()),
        ];
        if let Some((key, _)) = queue_only.into_iter().find(|(_, set)| *set) {
            return Err(err(
                input,
                format!(
                    "option {} applies to nats:// queues only (a JetStream stream), not to a connection",
                    key.name()
                ),
                "add pattern=queue to open the name as a standalone queue",
                {
                    let opt = example_option(scheme, key);
                    let opt = opt.strip_prefix("pattern=queue&").unwrap_or(opt);
                    format!("{example}?pattern=queue&{opt}")
                },
            ));
        }
    }
    let range = |key: OptionKey, value: String| {
        Err(err(
            input,
            format!("{}={value} is out of range", key.name()),
            format!("{}: {}", key.name(), key.expected()),
            format!("{example}?{}", example_option(scheme, key)),
        ))
    };
    if let Some(r) = o.replicas
        && !(1..=MAX_REPLICAS).contains(&r)
    {
        return range(OptionKey::Replicas, r.to_string());
    }
    if let Some(w) = o.ack_wait
        && !(MIN_ACK_WAIT..=MAX_ACK_WAIT).contains(&w)
    {
        return range(OptionKey::AckWait, format_duration(w));
    }
    if o.max_bytes == Some(0) {
        return range(OptionKey::MaxBytes, "0".into());
    }
    let creds_example = format!("{example}?{}", example_option(scheme, OptionKey::User));
    let ways = [
        ("creds=", o.creds.is_some()),
        ("nkey=", o.nkey.is_some()),
        (
            "user=/password_file=",
            o.user.is_some() || o.password_file.is_some(),
        ),
    ];
    let given: Vec<&str> = ways.iter().filter(|(_, g)| *g).map(|(w, _)| *w).collect();
    if given.len() > 1 {
        return Err(err(
            input,
            format!(
                "{} all name credentials: give one of them",
                given.join(" and ")
            ),
            "creds=FILE, or nkey=SEEDFILE, or user=NAME with password_file=FILE",
            creds_example,
        ));
    }
    if o.user.is_some() != o.password_file.is_some() {
        return Err(err(
            input,
            "user= and password_file= go together",
            "user=NAME with password_file=FILE (the password is read from the file, never written in the endpoint)",
            creds_example,
        ));
    }
    if o.tls_ca.is_some() && !o.tls {
        return Err(err(
            input,
            "tls_ca= checks a TLS server's certificate: it needs tls=required",
            "tls=required, optionally with tls_ca=FILE",
            format!("{example}?{}", example_option(scheme, OptionKey::TlsCa)),
        ));
    }
    Ok(())
}

/// Why a duration option's value does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DurationError {
    /// A number without its unit (other than 0): `5` could be 5 s or 5 ms.
    NoUnit(u64),
    /// Not a number followed by a known unit.
    Invalid,
}

/// Parses `100us`, `250ms`, `5s`, `2m`, `1h`, or a bare `0`. Any other
/// number needs its unit, so `connect_timeout=5` is never read as 5 ms when
/// 5 s was meant.
pub(super) fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| DurationError::Invalid)?;
    let overflow = DurationError::Invalid;
    Ok(match unit {
        "" if n == 0 => Duration::ZERO,
        "" => return Err(DurationError::NoUnit(n)),
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or(overflow)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or(overflow)?),
        _ => return Err(DurationError::Invalid),
    })
}

pub(super) fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

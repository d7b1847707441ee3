//! The options an endpoint carries: their names, defaults, parsing and
//! range checks.

use std::time::Duration;

use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MODE, EndpointError,
    MAX_MESSAGE_SIZE_LIMIT, MIN_SHM_CAPACITY, Scheme, err,
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
pub(super) enum OptionKey {
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

    pub(super) fn name(self) -> &'static str {
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

    pub(super) fn from_name(s: &str) -> Option<OptionKey> {
        OptionKey::ALL.into_iter().find(|k| k.name() == s)
    }

    pub(super) fn expected(self) -> &'static str {
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

pub(super) fn example_option(scheme: Scheme, key: OptionKey) -> &'static str {
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

pub(super) fn validate_options(
    input: &str,
    scheme: Scheme,
    o: &Options,
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
pub(super) fn parse_duration(s: &str) -> Option<Duration> {
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

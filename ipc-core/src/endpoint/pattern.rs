//! Which pattern an endpoint names: a connection (the default) or a
//! standalone queue (`?pattern=queue`, on `mq:` and `sysv-mq:`).

use super::Scheme;

/// What an endpoint's kernel object is used as.
///
/// `mq:` and `sysv-mq:` name either the rendezvous of a connection-oriented
/// transport (`ipcx::listen`/`connect`, the default) or a standalone queue
/// that outlives its producers and consumers (`ipcx::queue`), written
/// `mq:/jobs?pattern=queue`. `ipcx::listen`/`connect` refuse a queue
/// endpoint, so a config that says "queue" is never opened as a
/// connection by mistake; `ipcx::queue` accepts both spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Pattern {
    /// A connection between two live peers (`listen`/`connect`).
    #[default]
    Connection,
    /// A standalone queue: many producers, competing consumers, persists
    /// until removed.
    Queue,
}

impl Pattern {
    /// The option value as written (`"queue"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Connection => "connection",
            Pattern::Queue => "queue",
        }
    }

    pub(super) fn from_name(s: &str) -> Option<Pattern> {
        match s {
            "connection" => Some(Pattern::Connection),
            "queue" => Some(Pattern::Queue),
            _ => None,
        }
    }

    /// Whether `scheme` can be opened with this pattern.
    pub fn applies_to(self, scheme: Scheme) -> bool {
        match self {
            Pattern::Connection => true,
            Pattern::Queue => matches!(scheme, Scheme::Mq | Scheme::SysvMq),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

//! The schemes an endpoint can name, and which options each takes.

use std::fmt;

use super::options::OptionKey;

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
    /// `shm:` — POSIX shared memory with futex wake-ups.
    Shm,
    /// `sysv-shm:` — System V shared memory with futex wake-ups.
    SysvShm,
    /// `unix:` — Unix domain stream socket (path or abstract).
    Unix,
    /// `tcp://` — TCP.
    Tcp,
    /// `nats://HOST:PORT/NAME` — a NATS server between machines
    /// (`docs/nats.md`; the `nats` feature of ipcx).
    Nats,
    /// `sem:` — a POSIX named semaphore (`ipcx::sync`), not a channel.
    Sem,
    /// `sysv-sem:` — a System V semaphore set, key from `ftok(path)`
    /// (`ipcx::sync`), not a channel.
    SysvSem,
}

impl Scheme {
    /// Every scheme, in the order of the endpoint table.
    pub const ALL: [Scheme; 11] = [
        Scheme::Pipe,
        Scheme::Fifo,
        Scheme::Mq,
        Scheme::SysvMq,
        Scheme::Shm,
        Scheme::SysvShm,
        Scheme::Unix,
        Scheme::Tcp,
        Scheme::Nats,
        Scheme::Sem,
        Scheme::SysvSem,
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
            Scheme::Nats => "nats",
            Scheme::Sem => "sem",
            Scheme::SysvSem => "sysv-sem",
        }
    }

    pub(super) fn from_name(s: &str) -> Option<Scheme> {
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
            Scheme::Nats => "nats://127.0.0.1:4222/orders",
            Scheme::Sem => "sem:/orders",
            Scheme::SysvSem => "sysv-sem:/var/run/orders",
        }
    }

    /// Whether the scheme names a channel transport (`listen`/`connect`).
    /// `sem:` and `sysv-sem:` name semaphores, opened with `ipcx::sync`.
    pub fn is_channel(self) -> bool {
        !matches!(self, Scheme::Sem | Scheme::SysvSem)
    }

    pub(super) fn allows(self, key: OptionKey) -> bool {
        use OptionKey::*;
        if !self.is_channel() {
            // A semaphore has permission bits and nothing else; its initial
            // value is given in code, to `create`.
            return key == Mode;
        }
        match key {
            MaxMessageSize | ConnectTimeout => true,
            Heartbeat | Replicas | AckWait | MaxBytes | Creds | Nkey | User | PasswordFile
            | Tls | TlsCa => self == Scheme::Nats,
            Mode | AllowUid => !matches!(self, Scheme::Pipe | Scheme::Tcp | Scheme::Nats),
            WaitForListener => self != Scheme::Pipe,
            Capacity => matches!(
                self,
                Scheme::Mq | Scheme::SysvMq | Scheme::Shm | Scheme::SysvShm | Scheme::Nats
            ),
            Wait | SpinUs => matches!(self, Scheme::Shm | Scheme::SysvShm),
            Pattern => matches!(self, Scheme::Mq | Scheme::SysvMq | Scheme::Nats),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) const ALLOWED_SCHEMES: &str = "pipe:, fifo:PATH, mq:/NAME, sysv-mq:PATH, shm:/NAME, sysv-shm:PATH, unix:PATH, unix:@NAME, tcp://HOST:PORT, nats://HOST:PORT/NAME, sem:/NAME, sysv-sem:PATH";

pub(super) fn suggest_scheme(s: &str) -> String {
    let lower = s.to_ascii_lowercase().replace('_', "-");
    let guess = match lower.as_str() {
        "ipc" | "uds" | "unix-socket" | "socket" => Scheme::Unix,
        "posix-mq" | "mqueue" | "queue" => Scheme::Mq,
        "sysvmq" | "msg" | "msgq" => Scheme::SysvMq,
        "shmem" | "memory" | "posix-shm" => Scheme::Shm,
        "sysvshm" => Scheme::SysvShm,
        "semaphore" | "posix-sem" => Scheme::Sem,
        "sysvsem" | "semaphores" => Scheme::SysvSem,
        "fifo-pipe" | "named-pipe" => Scheme::Fifo,
        "tcp4" | "tcp6" | "http" => Scheme::Tcp,
        "nats-server" | "jetstream" | "broker" => Scheme::Nats,
        other => Scheme::from_name(other).unwrap_or(Scheme::Unix),
    };
    guess.example().to_string()
}

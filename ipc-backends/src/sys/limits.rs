//! Kernel limits as `/proc` publishes them: one number per file
//! (`/proc/sys/fs/mqueue/msg_max`), or several on one line
//! (`/proc/sys/kernel/sem`). Every reader of a `/proc` limit goes through
//! here: the queue transports, their sizing errors and `ipcx doctor`
//! (through [`limits`], re-exported at the crate root).

use super::{mqueue, sysv_msg};

/// The kernel limits the transports depend on, as read now. `None` where
/// the source could not be read. See `ipcx doctor` for what each allows.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `/proc/sys/fs/mqueue/msg_max`: messages per POSIX queue.
    pub mq_msg_max: Option<u64>,
    /// `/proc/sys/fs/mqueue/msgsize_max`: bytes per POSIX queue message.
    pub mq_msgsize_max: Option<u64>,
    /// `/proc/sys/fs/mqueue/queues_max`: POSIX queues system-wide.
    pub mq_queues_max: Option<u64>,
    /// `RLIMIT_MSGQUEUE` (`ulimit -q`): bytes of POSIX queues per user.
    pub rlimit_msgqueue: Option<u64>,
    /// The hard `RLIMIT_MSGQUEUE`, to which ipcx raises the soft one.
    pub rlimit_msgqueue_hard: Option<u64>,
    /// Whether an mqueue filesystem is mounted (`/proc/mounts`).
    pub mqueue_mounted: bool,
    /// `/proc/sys/kernel/msgmax`: bytes per System V message.
    pub msgmax: Option<u64>,
    /// `/proc/sys/kernel/msgmnb`: bytes per System V queue.
    pub msgmnb: Option<u64>,
    /// `/proc/sys/kernel/msgmni`: System V queues system-wide.
    pub msgmni: Option<u64>,
    /// `/proc/sys/kernel/shmmax`: bytes per System V segment.
    pub shmmax: Option<u64>,
    /// `/proc/sys/kernel/shmall`: pages of System V segments in all.
    pub shmall: Option<u64>,
    /// `/proc/sys/kernel/shmmni`: System V segments system-wide.
    pub shmmni: Option<u64>,
    /// `/proc/sys/kernel/sem`: SEMMSL, SEMMNS, SEMOPM, SEMMNI, in order.
    pub sem: [Option<u64>; 4],
    /// The page size in bytes.
    pub page_size: u64,
    /// Size and free bytes of the filesystem at `/dev/shm`, if mounted.
    pub dev_shm: Option<(u64, u64)>,
    /// `PIPE_BUF`: the largest atomic pipe write.
    pub pipe_buf: u64,
    /// `/proc/sys/fs/pipe-max-size`: the largest pipe buffer, bytes.
    pub pipe_max_size: Option<u64>,
    /// `/proc/sys/net/core/somaxconn`: the longest accept queue.
    pub somaxconn: Option<u64>,
}

/// Reads the kernel limits every transport depends on.
pub fn limits() -> Limits {
    let sem = proc_limits("/proc/sys/kernel/sem");
    Limits {
        mq_msg_max: proc_limit(mqueue::MSG_MAX_PATH),
        mq_msgsize_max: proc_limit(mqueue::MSGSIZE_MAX_PATH),
        mq_queues_max: proc_limit(mqueue::QUEUES_MAX_PATH),
        rlimit_msgqueue: mqueue::rlimit_msgqueue(),
        rlimit_msgqueue_hard: mqueue::rlimit_msgqueue_hard(),
        mqueue_mounted: std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("mqueue"))
        }),
        msgmax: proc_limit(sysv_msg::MSGMAX_PATH),
        msgmnb: proc_limit(sysv_msg::MSGMNB_PATH),
        msgmni: proc_limit(sysv_msg::MSGMNI_PATH),
        shmmax: proc_limit("/proc/sys/kernel/shmmax"),
        shmall: proc_limit("/proc/sys/kernel/shmall"),
        shmmni: proc_limit("/proc/sys/kernel/shmmni"),
        sem: [0, 1, 2, 3].map(|i| sem.get(i).copied()),
        page_size: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as u64),
        dev_shm: nix::sys::statvfs::statvfs("/dev/shm").ok().map(|s| {
            let f = s.fragment_size();
            (s.blocks() * f, s.blocks_available() * f)
        }),
        pipe_buf: super::pipe::PIPE_BUF as u64,
        pipe_max_size: proc_limit("/proc/sys/fs/pipe-max-size"),
        somaxconn: proc_limit("/proc/sys/net/core/somaxconn"),
    }
}

/// The first number in the `/proc` file at `path`, or `None` when the file
/// is missing or does not start with a number.
pub fn proc_limit(path: &str) -> Option<u64> {
    proc_limits(path).first().copied()
}

/// The numbers in the `/proc` file at `path`, in order, up to the first
/// word that is not one; empty when the file cannot be read.
pub fn proc_limits(path: &str) -> Vec<u64> {
    std::fs::read_to_string(path)
        .map(|s| s.split_whitespace().map_while(|w| w.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers() {
        let path = std::env::temp_dir().join(format!("ipcx-limits-{}", std::process::id()));
        std::fs::write(&path, "32000\t1024000000\t500\t32000\n").unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(proc_limit(p), Some(32000));
        assert_eq!(proc_limits(p), [32000, 1_024_000_000, 500, 32000]);
        std::fs::write(&path, "unlimited\n").unwrap();
        assert_eq!(proc_limit(p), None);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(proc_limit(p), None);
        assert!(proc_limits(p).is_empty());
    }
}

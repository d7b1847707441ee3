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
    /// `SEMVMX`: the largest value of a System V semaphore (32767, a
    /// kernel constant).
    pub semvmx: u64,
    /// `SEM_VALUE_MAX`: the largest value of a POSIX semaphore
    /// (2147483647).
    pub sem_value_max: u64,
    /// System V semaphore sets and semaphores in use now
    /// (`/proc/sysvipc/sem`), against SEMMNI and SEMMNS.
    pub sem_in_use: Option<(u64, u64)>,
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
        semvmx: SEMVMX,
        sem_value_max: SEM_VALUE_MAX,
        sem_in_use: sysv_sem_in_use(),
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

/// `SEMVMX`: the largest value a System V semaphore holds (a constant of
/// the kernel, `include/uapi/linux/sem.h`; `semctl(SETVAL)` and `semop`
/// refuse more with `ERANGE`).
pub const SEMVMX: u64 = 32767;

/// `SEM_VALUE_MAX`: the largest value a POSIX semaphore holds (`INT_MAX`
/// on Linux; `sem_open` refuses more with `EINVAL`).
pub const SEM_VALUE_MAX: u64 = i32::MAX as u64;

/// Where the kernel lists System V semaphore sets.
pub const SYSVIPC_SEM: &str = "/proc/sysvipc/sem";

/// Where the kernel lists System V segments.
pub const SYSVIPC_SHM: &str = "/proc/sysvipc/shm";

/// The limits on System V semaphores, in `/proc/sys/kernel/sem` order:
/// SEMMSL (per set), SEMMNS (in all), SEMOPM (per `semop`), SEMMNI (sets).
pub fn sem_limits() -> [Option<u64>; 4] {
    let v = proc_limits("/proc/sys/kernel/sem");
    [0, 1, 2, 3].map(|i| v.get(i).copied())
}

/// System V semaphore sets and semaphores in use now, from
/// `/proc/sysvipc/sem` (the `nsems` column); `None` when unreadable.
pub fn sysv_sem_in_use() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(SYSVIPC_SEM).ok()?;
    Some(sum_column(&text, "nsems"))
}

/// System V segments and their bytes in use now, from
/// `/proc/sysvipc/shm` (the `size` column); `None` when unreadable.
pub fn sysv_shm_in_use() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(SYSVIPC_SHM).ok()?;
    Some(sum_column(&text, "size"))
}

/// Rows and the sum of the column named `name` of a `/proc/sysvipc` table
/// (a header line of column names, then one row per object).
fn sum_column(text: &str, name: &str) -> (u64, u64) {
    let mut lines = text.lines();
    let Some(col) = lines
        .next()
        .and_then(|h| h.split_whitespace().position(|c| c == name))
    else {
        return (0, 0);
    };
    lines
        .filter_map(|l| l.split_whitespace().nth(col)?.parse::<u64>().ok())
        .fold((0, 0), |(n, sum), v| (n + 1, sum + v))
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

    #[test]
    fn sums_a_sysvipc_column() {
        let table = "       key      semid perms      nsems   uid\n\
                     0 32768 600 1 0\n\
                     1234 32769 600 3 0\n";
        assert_eq!(sum_column(table, "nsems"), (2, 4));
        assert_eq!(sum_column(table, "size"), (0, 0));
        assert_eq!(sum_column("key semid\n", "semid"), (0, 0));
    }
}

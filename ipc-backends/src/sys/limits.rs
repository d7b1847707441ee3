//! Kernel limits as `/proc` publishes them: one number per file
//! (`/proc/sys/fs/mqueue/msg_max`), or several on one line
//! (`/proc/sys/kernel/sem`). Every reader of a `/proc` limit goes through
//! here: the queue transports, their sizing errors and `ipcx doctor`.

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

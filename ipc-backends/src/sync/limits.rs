//! Kernel limits checked before a semaphore or a System V segment is
//! created, so that a refusal names the limit, its value and how to raise
//! it ([`Error::Limit`]) instead of leaving an errno to decode:
//!
//! - `sem:`: the initial value against `SEM_VALUE_MAX`;
//! - `sysv-sem:`: the initial value against `SEMVMX` (a kernel constant),
//!   one semaphore against `SEMMSL`, the semaphores and sets in use against
//!   `SEMMNS` and `SEMMNI` (`/proc/sys/kernel/sem`);
//! - `sysv-shm:` regions and mutexes: the segment's size against `shmmax`,
//!   its pages plus those in use against `shmall`, the segments in use
//!   against `shmmni`.
//!
//! The checks read the limits and the use made of them at the moment of
//! the call; a process creating objects at the same time can still make
//! the kernel refuse, and that errno is mapped to the same limits' names.
//! Each check is a pure function of what was read, tested directly.

use ipc_core::{Endpoint, Error, Result};

use crate::sys::limits::{self, SEM_VALUE_MAX, SEMVMX};

/// The System V semaphore limits and their use, as read now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SemUse {
    /// SEMMSL, SEMMNS, SEMOPM, SEMMNI (`/proc/sys/kernel/sem`).
    pub limits: [Option<u64>; 4],
    /// Sets and semaphores in use (`/proc/sysvipc/sem`).
    pub in_use: Option<(u64, u64)>,
}

impl SemUse {
    pub(crate) fn now() -> SemUse {
        SemUse {
            limits: limits::sem_limits(),
            in_use: limits::sysv_sem_in_use(),
        }
    }

    /// `sysctl -w kernel.sem=…` with field `i` raised to `to`.
    fn raise(&self, i: usize, to: u64) -> String {
        let mut f = self
            .limits
            .map(|v| v.map_or("?".to_string(), |v| v.to_string()));
        f[i] = to.to_string();
        format!("sysctl -w kernel.sem=\"{}\" (as root)", f.join(" "))
    }
}

/// The System V segment limits and their use, as read now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ShmUse {
    /// `kernel.shmmax`: bytes per segment.
    pub shmmax: Option<u64>,
    /// `kernel.shmall`: pages of all segments.
    pub shmall: Option<u64>,
    /// `kernel.shmmni`: segments.
    pub shmmni: Option<u64>,
    /// Segments and their bytes in use (`/proc/sysvipc/shm`).
    pub in_use: Option<(u64, u64)>,
    /// The page size.
    pub page: u64,
}

impl ShmUse {
    pub(crate) fn now() -> ShmUse {
        ShmUse {
            shmmax: limits::proc_limit("/proc/sys/kernel/shmmax"),
            shmall: limits::proc_limit("/proc/sys/kernel/shmall"),
            shmmni: limits::proc_limit("/proc/sys/kernel/shmmni"),
            in_use: limits::sysv_shm_in_use(),
            page: limits::limits().page_size.max(1),
        }
    }
}

fn limit(
    endpoint: &Endpoint,
    option: &'static str,
    value: u64,
    limit: u64,
    source: &str,
    fix: String,
) -> Error {
    Error::Limit {
        endpoint: endpoint.to_string(),
        option,
        value,
        limit,
        source_of_limit: source.to_string(),
        fix,
    }
}

/// A `sem:` semaphore's initial value against `SEM_VALUE_MAX`.
pub(crate) fn posix_semaphore(endpoint: &Endpoint, initial: u32) -> Result<()> {
    if u64::from(initial) > SEM_VALUE_MAX {
        return Err(limit(
            endpoint,
            "initial",
            initial.into(),
            SEM_VALUE_MAX,
            "SEM_VALUE_MAX, the largest value of a POSIX semaphore",
            format!("start with at most {SEM_VALUE_MAX} units"),
        ));
    }
    Ok(())
}

/// A `sysv-sem:` set of one semaphore with `initial` units against
/// `SEMVMX`, `SEMMSL`, `SEMMNS` and `SEMMNI`.
pub(crate) fn sysv_semaphore(endpoint: &Endpoint, initial: u32, u: &SemUse) -> Result<()> {
    if u64::from(initial) > SEMVMX {
        return Err(limit(
            endpoint,
            "initial",
            initial.into(),
            SEMVMX,
            "SEMVMX, the largest value of a System V semaphore: a kernel constant",
            format!(
                "it cannot be raised: start with at most {SEMVMX} units, or use a sem: endpoint (up to {SEM_VALUE_MAX})"
            ),
        ));
    }
    let [semmsl, semmns, _, semmni] = u.limits;
    if let Some(msl) = semmsl.filter(|&m| m < 1) {
        return Err(limit(
            endpoint,
            "semaphores_per_set",
            1,
            msl,
            "SEMMSL, field 1 of /proc/sys/kernel/sem",
            format!("raise SEMMSL: {}", u.raise(0, 250)),
        ));
    }
    if let Some((sets, sems)) = u.in_use {
        if let Some(mns) = semmns.filter(|&m| sems + 1 > m) {
            return Err(limit(
                endpoint,
                "semaphores",
                sems + 1,
                mns,
                "SEMMNS, field 2 of /proc/sys/kernel/sem: semaphores system-wide",
                format!(
                    "remove unused sets (ipcx ls, ipcs -s) or raise SEMMNS: {}",
                    u.raise(1, (mns * 2).max(sems + 1))
                ),
            ));
        }
        if let Some(mni) = semmni.filter(|&m| sets + 1 > m) {
            return Err(limit(
                endpoint,
                "semaphore_sets",
                sets + 1,
                mni,
                "SEMMNI, field 4 of /proc/sys/kernel/sem: semaphore sets system-wide",
                format!(
                    "remove unused sets (ipcx ls, ipcs -s) or raise SEMMNI: {}",
                    u.raise(3, (mni * 2).max(sets + 1))
                ),
            ));
        }
    }
    Ok(())
}

/// A `sysv-shm:` segment of `len` bytes against `shmmax`, `shmall` and
/// `shmmni`.
pub(crate) fn sysv_segment(endpoint: &Endpoint, len: u64, u: &ShmUse) -> Result<()> {
    if let Some(max) = u.shmmax.filter(|&m| len > m) {
        return Err(limit(
            endpoint,
            "segment_size",
            len,
            max,
            "kernel.shmmax, /proc/sys/kernel/shmmax: bytes per System V segment",
            format!(
                "use a smaller type, a shm: endpoint (bounded by /dev/shm only), or raise it: sysctl -w kernel.shmmax={len} (as root)"
            ),
        ));
    }
    if let Some((segments, bytes)) = u.in_use {
        let pages = |b: u64| b.div_ceil(u.page);
        let want = pages(bytes).saturating_add(pages(len));
        if let Some(all) = u.shmall.filter(|&m| want > m) {
            return Err(limit(
                endpoint,
                "segment_pages",
                want,
                all,
                "kernel.shmall, /proc/sys/kernel/shmall: pages of all System V segments",
                format!(
                    "remove unused segments (ipcx ls, ipcs -m) or raise it: sysctl -w kernel.shmall={} (as root)",
                    want.max(all.saturating_mul(2))
                ),
            ));
        }
        if let Some(mni) = u.shmmni.filter(|&m| segments + 1 > m) {
            return Err(limit(
                endpoint,
                "segments",
                segments + 1,
                mni,
                "kernel.shmmni, /proc/sys/kernel/shmmni: System V segments system-wide",
                format!(
                    "remove unused segments (ipcx ls, ipcs -m) or raise it: sysctl -w kernel.shmmni={} (as root)",
                    (mni * 2).max(segments + 1)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn limit_of(r: Result<()>) -> (&'static str, u64, u64, String) {
        match r {
            Err(Error::Limit {
                option,
                value,
                limit,
                source_of_limit,
                fix,
                ..
            }) => (option, value, limit, format!("{source_of_limit}; {fix}")),
            other => panic!("expected Error::Limit, got {other:?}"),
        }
    }

    #[test]
    fn initial_values_against_semvmx_and_sem_value_max() {
        let e = ep("sysv-sem:/tmp/limits-test");
        let u = SemUse::default();
        assert!(sysv_semaphore(&e, 32767, &u).is_ok());
        let (option, value, max, text) = limit_of(sysv_semaphore(&e, 32768, &u));
        assert_eq!((option, value, max), ("initial", 32768, 32767));
        assert!(
            text.contains("SEMVMX") && text.contains("cannot be raised"),
            "{text}"
        );
        let p = ep("sem:/limits-test");
        assert!(posix_semaphore(&p, i32::MAX as u32).is_ok());
        let (option, _, max, text) = limit_of(posix_semaphore(&p, u32::MAX));
        assert_eq!((option, max), ("initial", SEM_VALUE_MAX));
        assert!(text.contains("SEM_VALUE_MAX"), "{text}");
    }

    #[test]
    fn semaphores_in_use_against_semmns_semmni_semmsl() {
        let e = ep("sysv-sem:/tmp/limits-test");
        let full = SemUse {
            limits: [Some(250), Some(10), Some(32), Some(128)],
            in_use: Some((4, 10)),
        };
        let (option, value, max, text) = limit_of(sysv_semaphore(&e, 1, &full));
        assert_eq!((option, value, max), ("semaphores", 11, 10));
        assert!(
            text.contains("SEMMNS") && text.contains("sysctl -w kernel.sem=\"250 20 32 128\""),
            "{text}"
        );
        let sets = SemUse {
            limits: [Some(250), Some(32000), Some(32), Some(4)],
            in_use: Some((4, 10)),
        };
        let (option, value, max, text) = limit_of(sysv_semaphore(&e, 1, &sets));
        assert_eq!((option, value, max), ("semaphore_sets", 5, 4));
        assert!(
            text.contains("SEMMNI") && text.contains("kernel.sem"),
            "{text}"
        );
        let no_msl = SemUse {
            limits: [Some(0), Some(32000), Some(32), Some(128)],
            in_use: None,
        };
        let (option, _, _, text) = limit_of(sysv_semaphore(&e, 1, &no_msl));
        assert_eq!(option, "semaphores_per_set");
        assert!(text.contains("SEMMSL"), "{text}");
        let room = SemUse {
            in_use: Some((3, 9)),
            ..full
        };
        assert!(sysv_semaphore(&e, 1, &room).is_ok());
    }

    #[test]
    fn segments_against_shmmax_shmall_shmmni() {
        let e = ep("sysv-shm:/tmp/limits-test");
        let u = ShmUse {
            shmmax: Some(1 << 20),
            shmall: Some(1000),
            shmmni: Some(8),
            in_use: Some((2, 4096 * 10)),
            page: 4096,
        };
        assert!(sysv_segment(&e, 1 << 20, &u).is_ok());
        let (option, value, max, text) = limit_of(sysv_segment(&e, (1 << 20) + 1, &u));
        assert_eq!(
            (option, value, max),
            ("segment_size", (1 << 20) + 1, 1 << 20)
        );
        assert!(
            text.contains("shmmax") && text.contains("sysctl -w kernel.shmmax=1048577"),
            "{text}"
        );
        let pages = ShmUse {
            shmmax: None,
            shmall: Some(12),
            ..u
        };
        let (option, value, max, text) = limit_of(sysv_segment(&e, 3 * 4096, &pages));
        assert_eq!((option, value, max), ("segment_pages", 13, 12));
        assert!(text.contains("kernel.shmall"), "{text}");
        let count = ShmUse {
            shmmni: Some(2),
            ..u
        };
        let (option, value, max, text) = limit_of(sysv_segment(&e, 4096, &count));
        assert_eq!((option, value, max), ("segments", 3, 2));
        assert!(text.contains("kernel.shmmni"), "{text}");
    }

    #[test]
    fn this_machine_allows_a_small_set_and_segment() {
        // What the checks read from /proc here: a real machine has room for
        // one semaphore and one small segment.
        let s = SemUse::now();
        assert!(s.limits.iter().all(Option::is_some), "{s:?}");
        sysv_semaphore(&ep("sysv-sem:/tmp/limits-test"), 1, &s).unwrap();
        let m = ShmUse::now();
        assert!(m.shmmax.is_some() && m.in_use.is_some(), "{m:?}");
        sysv_segment(&ep("sysv-shm:/tmp/limits-test"), 4096, &m).unwrap();
    }
}

//! Raw System V message queues: the server makes two private queues
//! (`msgget(2)` with `IPC_PRIVATE`) and announces their ids; both sides
//! then `msgsnd(2)` and `msgrcv(2)` fixed-size messages. The server removes
//! both queues (`IPC_RMID`) when done.
//!
//! A kernel message is at most `/proc/sys/kernel/msgmax` bytes (8 KiB by
//! default), and a queue holds `msgmnb` bytes (16 KiB), so a larger
//! benchmark message goes as a run of chunks of `min(size, msgmax)` bytes.
//! ipcx fragments into 4160-byte units by default.

use crate::bench::measure::Link;

/// How the comparison is made (table footnote).
pub const NOTE: &str = super::mq::NOTE;

const LONG: usize = std::mem::size_of::<libc::c_long>();

struct Queues {
    send: i32,
    recv: i32,
    unit: usize,
    /// A `struct msgbuf`: `mtype` then `unit` bytes, `c_long`-aligned.
    buf: Vec<libc::c_long>,
    remove: bool,
}

impl Queues {
    fn new(send: i32, recv: i32, unit: usize, remove: bool) -> Queues {
        let mut buf = vec![0; 1 + unit.div_ceil(LONG)];
        buf[0] = 1;
        Queues {
            send,
            recv,
            unit,
            buf,
            remove,
        }
    }

    fn text(&mut self) -> &mut [u8] {
        let unit = self.unit;
        // SAFETY: `buf` holds `1 + ceil(unit / LONG)` longs, so the `unit`
        // bytes after the first are inside it; any u8 is valid; the slice
        // borrows `self` mutably, so nothing else aliases them.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().add(1).cast::<u8>(), unit) }
    }
}

impl Link for Queues {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        for part in msg.chunks(self.unit) {
            self.text()[..part.len()].copy_from_slice(part);
            loop {
                // SAFETY: `buf` is a msgbuf (mtype = 1, then at least
                // `part.len()` text bytes) that lives across the call;
                // msgsnd only reads it.
                let r = unsafe { libc::msgsnd(self.send, self.buf.as_ptr().cast(), part.len(), 0) };
                if r == 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(format!("msgsnd: {e}"));
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String> {
        buf.clear();
        while buf.len() < size {
            // SAFETY: `self.buf` has room for an mtype and `unit` text
            // bytes, the most msgrcv writes when asked for `unit`.
            let n =
                unsafe { libc::msgrcv(self.recv, self.buf.as_mut_ptr().cast(), self.unit, 0, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(format!("msgrcv: {e}"));
            }
            let n = n as usize;
            buf.extend_from_slice(&self.text()[..n]);
        }
        Ok(())
    }
}

/// Messages waiting in queue `id` (0 once it is gone).
fn waiting(id: i32) -> u64 {
    // SAFETY: msqid_ds is plain data, valid when zeroed.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one msqid_ds into `ds`, which is ours and
    // lives across the call.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        0
    } else {
        ds.msg_qnum as u64
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        if self.remove {
            // Removing a queue discards what it holds: give the client up
            // to a second to read the last acknowledgement first.
            for _ in 0..1000 {
                if waiting(self.send) == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            for id in [self.send, self.recv] {
                // SAFETY: IPC_RMID takes no buffer (null is allowed); a
                // stale id only yields EINVAL/EIDRM.
                unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            }
        }
    }
}

fn create() -> Result<i32, String> {
    // SAFETY: msgget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        Err(format!("msgget: {}", std::io::Error::last_os_error()))
    } else {
        Ok(id)
    }
}

fn unit_for(size: usize) -> usize {
    let msgmax = std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192usize);
    size.clamp(1, msgmax)
}

pub fn server(_endpoint: &str, size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let up = create()?;
    let down = match create() {
        Ok(d) => d,
        Err(e) => {
            drop(Queues::new(up, up, 1, true));
            return Err(e);
        }
    };
    let unit = unit_for(size);
    let q = Queues::new(down, up, unit, true);
    ready(&format!("{up} {down} {unit}"));
    Ok(Box::new(q))
}

pub fn client(address: &str) -> Result<Box<dyn Link>, String> {
    let mut it = address.split(' ').map(|s| s.parse::<usize>().ok());
    let (Some(Some(up)), Some(Some(down)), Some(Some(unit))) = (it.next(), it.next(), it.next())
    else {
        return Err(format!("bad raw sysv-mq address {address:?}"));
    };
    // The client removes both queues when done too (whoever is last
    // finds them gone, which is fine).
    Ok(Box::new(Queues::new(up as i32, down as i32, unit, true)))
}

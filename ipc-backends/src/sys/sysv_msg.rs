//! System V message queues ([sysvipc(7)]): keys, create/remove, status,
//! and sends and receives that block or not.
//!
//! These queues are not descriptors and cannot be polled; a blocked
//! `msgrcv`/`msgsnd` wakes with `EIDRM` when the queue is removed, which
//! is how a waiting side is told its peer died.
//!
//! [sysvipc(7)]: https://man7.org/linux/man-pages/man7/sysvipc.7.html

use std::io;

use nix::errno::Errno;

/// Where the kernel's largest message size lives.
pub const MSGMAX_PATH: &str = "/proc/sys/kernel/msgmax";
/// Where the kernel's default (and, unprivileged, largest) queue byte size lives.
pub const MSGMNB_PATH: &str = "/proc/sys/kernel/msgmnb";

/// The message type ipcx uses on every queue (`mtype` must be positive).
pub const MTYPE: libc::c_long = 1;

const HEADER: usize = std::mem::size_of::<libc::c_long>();

/// The System V key of `path` ([ftok(3)]), which must exist.
///
/// # Errors
/// The OS error of `ftok` (`ENOENT` when the path is missing).
///
/// [ftok(3)]: https://man7.org/linux/man-pages/man3/ftok.3.html
pub fn key_of(path: &str, project: u8) -> io::Result<libc::key_t> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let k = unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(project)) };
    if k == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(k)
}

/// Creates a queue: under `key` exclusively, or private when `key` is `None`.
///
/// # Errors
/// The OS error of [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
/// (`EEXIST` when the key is taken).
pub fn create(key: Option<libc::key_t>, mode: u32) -> io::Result<i32> {
    let (k, flags) = match key {
        Some(k) => (k, libc::IPC_CREAT | libc::IPC_EXCL),
        None => (libc::IPC_PRIVATE, libc::IPC_CREAT),
    };
    // SAFETY: msgget takes integers only.
    let id = unsafe { libc::msgget(k, flags | (mode & 0o777) as libc::c_int) };
    if id == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// The id of the existing queue under `key`.
///
/// # Errors
/// The OS error of `msgget(2)` (`ENOENT` when there is none).
pub fn lookup(key: libc::key_t) -> io::Result<i32> {
    // SAFETY: msgget takes integers only.
    let id = unsafe { libc::msgget(key, 0) };
    if id == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// A queue's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Messages queued.
    pub messages: usize,
    /// Bytes queued.
    pub bytes: usize,
    /// Capacity in bytes (`msg_qbytes`).
    pub capacity: usize,
    /// The creator's uid.
    pub creator_uid: u32,
    /// The owner's uid.
    pub owner_uid: u32,
}

/// The state of queue `id` (`IPC_STAT`).
///
/// # Errors
/// The OS error of [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
/// (`EINVAL`/`EIDRM` when it was removed).
pub fn status(id: i32) -> io::Result<Status> {
    // SAFETY: msqid_ds is a plain C struct for which all-zero is valid.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one msqid_ds through the pointer, which points
    // at a live local of that type.
    let r = unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(Status {
        messages: ds.msg_qnum as usize,
        bytes: ds.__msg_cbytes as usize,
        capacity: ds.msg_qbytes as usize,
        creator_uid: ds.msg_perm.cuid,
        owner_uid: ds.msg_perm.uid,
    })
}

/// Removes queue `id`, waking every blocked caller with `EIDRM`. Removing
/// a queue that is already gone is not an error.
///
/// # Errors
/// Other OS errors of `msgctl(IPC_RMID)` (`EPERM`).
pub fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so null is fine.
    let r = unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) {
            return Err(e);
        }
    }
    Ok(())
}

/// Outcome of a send or receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Done; for a receive, the message length.
    Done(usize),
    /// `nowait` was set and the queue was full (send) or empty (receive).
    WouldBlock,
    /// The queue was removed.
    Removed,
}

/// A reusable message buffer: the `long mtype` header followed by the text,
/// aligned for `long`.
#[derive(Debug, Default)]
pub struct MsgBuf(Vec<libc::c_long>);

impl MsgBuf {
    /// A buffer for texts of up to `text` bytes.
    pub fn with_text_capacity(text: usize) -> MsgBuf {
        let mut b = MsgBuf(Vec::new());
        b.reserve_text(text);
        b
    }

    fn reserve_text(&mut self, text: usize) {
        let longs = 1 + text.div_ceil(HEADER);
        if self.0.len() < longs {
            self.0.resize(longs, 0);
        }
    }

    fn text_capacity(&self) -> usize {
        (self.0.len() - 1) * HEADER
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len() * HEADER;
        // SAFETY: the Vec's storage is `len` initialised bytes (longs are
        // plain integers), u8 has alignment 1, and the slice borrows self
        // mutably so nothing else aliases it.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }

    /// The text part, for the caller to fill before [`send`] or read after
    /// [`receive`].
    pub fn text_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[HEADER..]
    }
}

/// Sends `parts` concatenated as one message on queue `id`.
///
/// # Errors
/// OS errors other than full (with `nowait`) and removed.
pub fn send(id: i32, buf: &mut MsgBuf, parts: &[&[u8]], nowait: bool) -> io::Result<Op> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.reserve_text(len);
    buf.0[0] = MTYPE;
    let mut at = 0;
    let text = buf.text_mut();
    for p in parts {
        text[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
    loop {
        // SAFETY: the buffer starts with a long mtype followed by at least
        // `len` text bytes (reserved above), valid for reads during the call.
        let r = unsafe { libc::msgsnd(id, buf.0.as_ptr().cast(), len, flags) };
        if r == 0 {
            return Ok(Op::Done(len));
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN => return Ok(Op::WouldBlock),
            Errno::EIDRM | Errno::EINVAL => return Ok(Op::Removed),
            e => return Err(e.into()),
        }
    }
}

/// Receives one message from queue `id` into `buf`, whose text capacity
/// is at least `max` bytes; longer messages fail with `E2BIG`.
///
/// # Errors
/// OS errors other than empty (with `nowait`) and removed.
pub fn receive(id: i32, buf: &mut MsgBuf, max: usize, nowait: bool) -> io::Result<Op> {
    buf.reserve_text(max);
    let cap = buf.text_capacity().min(max);
    let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
    loop {
        // SAFETY: the buffer holds a long followed by at least `cap` text
        // bytes, valid for writes; msgrcv writes at most that many.
        let r = unsafe { libc::msgrcv(id, buf.0.as_mut_ptr().cast(), cap, 0, flags) };
        if r >= 0 {
            return Ok(Op::Done(r as usize));
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::ENOMSG | Errno::EAGAIN => return Ok(Op::WouldBlock),
            Errno::EIDRM | Errno::EINVAL => return Ok(Op::Removed),
            e => return Err(e.into()),
        }
    }
}

/// Sets queue `id`'s capacity in bytes (`msg_qbytes`, `IPC_SET`).
///
/// # Errors
/// The OS error of `msgctl(2)` (`EPERM` above `msgmnb` without privilege).
pub fn set_capacity(id: i32, bytes: usize) -> io::Result<()> {
    // SAFETY: msqid_ds is a plain C struct for which all-zero is valid.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one msqid_ds through the pointer to a live local.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } == -1 {
        return Err(io::Error::last_os_error());
    }
    ds.msg_qbytes = bytes as libc::msglen_t;
    // SAFETY: IPC_SET reads one msqid_ds through the pointer to a live local.
    if unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

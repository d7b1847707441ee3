//! System V message queues ([sysvipc(7)]): keys, a queue handle that
//! removes what it owns when dropped, status, and sends and receives that
//! block or not.
//!
//! These queues are not descriptors and cannot be polled; a blocked
//! `msgrcv`/`msgsnd` wakes with `EIDRM` when the queue is removed, which
//! is how a waiting side is told its peer died, and how a waiting listener
//! is told to stop.
//!
//! [sysvipc(7)]: https://man7.org/linux/man-pages/man7/sysvipc.7.html

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

/// Where the kernel's largest message size lives.
pub const MSGMAX_PATH: &str = "/proc/sys/kernel/msgmax";
/// Where the kernel's default (and, unprivileged, largest) queue byte size lives.
pub const MSGMNB_PATH: &str = "/proc/sys/kernel/msgmnb";
/// Where the kernel's limit on the number of queues (system-wide) lives.
pub const MSGMNI_PATH: &str = "/proc/sys/kernel/msgmni";

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
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from(Errno::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let k = unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(project)) };
    Ok(Errno::result(k)?)
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
    /// The process that sent the last message (`msg_lspid`), 0 if none did.
    pub last_sender: u32,
    /// The process that received the last message (`msg_lrpid`), 0 if none did.
    pub last_receiver: u32,
    /// Permission bits.
    pub mode: u32,
    /// When the last message was sent (`msg_stime`, seconds since the epoch; 0: never).
    pub last_send: i64,
    /// When the last message was received (`msg_rtime`; 0: never).
    pub last_receive: i64,
    /// When the queue was created or last changed (`msg_ctime`).
    pub changed: i64,
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

/// A System V message queue: its id and whether this handle removes it.
///
/// Deliberately not `Clone`. A handle that owns its queue (one it created)
/// removes it when dropped; one that does not (a queue found by key, or
/// named by a peer or a record) leaves it, unless told to [`remove`]
/// it. Removal happens at most once per handle.
///
/// [`remove`]: MsgQueue::remove
#[derive(Debug)]
pub struct MsgQueue {
    id: i32,
    owned: AtomicBool,
    removed: AtomicBool,
}

impl MsgQueue {
    fn new(id: i32, owned: bool) -> MsgQueue {
        MsgQueue {
            id,
            owned: AtomicBool::new(owned),
            removed: AtomicBool::new(false),
        }
    }

    /// Creates a queue with the `mode` bits, owned by the handle: under
    /// `key` exclusively, or private when `key` is `None`.
    ///
    /// # Errors
    /// The OS error of [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html)
    /// (`EEXIST` when the key is taken).
    pub fn create(key: Option<libc::key_t>, mode: u32) -> io::Result<MsgQueue> {
        let (k, flags) = match key {
            Some(k) => (k, libc::IPC_CREAT | libc::IPC_EXCL),
            None => (libc::IPC_PRIVATE, libc::IPC_CREAT),
        };
        // SAFETY: msgget takes integers only.
        let id = unsafe { libc::msgget(k, flags | (mode & 0o777) as libc::c_int) };
        Ok(MsgQueue::new(Errno::result(id)?, true))
    }

    /// The existing queue under `key`, not owned.
    ///
    /// # Errors
    /// The OS error of `msgget(2)` (`ENOENT` when there is none).
    pub fn open(key: libc::key_t) -> io::Result<MsgQueue> {
        // SAFETY: msgget takes integers only.
        let id = unsafe { libc::msgget(key, 0) };
        Ok(MsgQueue::new(Errno::result(id)?, false))
    }

    /// The queue `id` (from a peer or a record), not owned. Whether it
    /// exists shows at its first use.
    pub fn from_id(id: i32) -> MsgQueue {
        MsgQueue::new(id, false)
    }

    /// The kernel's id of the queue.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Whether dropping the handle removes the queue.
    pub fn is_owned(&self) -> bool {
        self.owned.load(Ordering::Relaxed)
    }

    /// Makes dropping the handle remove the queue (`true`) or leave it.
    pub fn set_owned(&self, owned: bool) {
        self.owned.store(owned, Ordering::Relaxed);
    }

    /// Whether this handle removed the queue.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Removes the queue now (`IPC_RMID`), waking every blocked caller with
    /// `EIDRM`; later calls do nothing. A queue that is already gone is not
    /// an error.
    ///
    /// # Errors
    /// Other OS errors of [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)
    /// (`EPERM`).
    pub fn remove(&self) -> io::Result<()> {
        if self.removed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: IPC_RMID ignores the buffer argument, so null is fine.
        let r = unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        match Errno::result(r) {
            Ok(_) | Err(Errno::EINVAL | Errno::EIDRM) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn stat(&self) -> io::Result<libc::msqid_ds> {
        // SAFETY: msqid_ds is a plain C struct for which all-zero is valid.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT writes one msqid_ds through the pointer, which
        // points at a live local of that type.
        Errno::result(unsafe { libc::msgctl(self.id, libc::IPC_STAT, &mut ds) })?;
        Ok(ds)
    }

    /// The queue's state (`IPC_STAT`).
    ///
    /// # Errors
    /// The OS error of `msgctl(2)` (`EINVAL`/`EIDRM` when it was removed).
    pub fn status(&self) -> io::Result<Status> {
        let ds = self.stat()?;
        Ok(Status {
            messages: ds.msg_qnum as usize,
            bytes: ds.__msg_cbytes as usize,
            capacity: ds.msg_qbytes as usize,
            creator_uid: ds.msg_perm.cuid,
            owner_uid: ds.msg_perm.uid,
            last_sender: u32::try_from(ds.msg_lspid).unwrap_or(0),
            last_receiver: u32::try_from(ds.msg_lrpid).unwrap_or(0),
            mode: u32::from(ds.msg_perm.mode) & 0o777,
            last_send: ds.msg_stime,
            last_receive: ds.msg_rtime,
            changed: ds.msg_ctime,
        })
    }

    /// Sets the queue's capacity in bytes (`msg_qbytes`, `IPC_SET`).
    ///
    /// # Errors
    /// The OS error of `msgctl(2)` (`EPERM` above `msgmnb` without privilege).
    pub fn set_capacity(&self, bytes: usize) -> io::Result<()> {
        let mut ds = self.stat()?;
        ds.msg_qbytes = bytes as libc::msglen_t;
        // SAFETY: IPC_SET reads one msqid_ds through the pointer to a live local.
        Errno::result(unsafe { libc::msgctl(self.id, libc::IPC_SET, &mut ds) })?;
        Ok(())
    }

    /// Sends `parts` concatenated as one message.
    ///
    /// # Errors
    /// OS errors other than full (with `nowait`) and removed.
    pub fn send(&self, buf: &mut MsgBuf, parts: &[&[u8]], nowait: bool) -> io::Result<Op> {
        self.send_typed(buf, MTYPE, parts, nowait)
    }

    /// Sends `parts` concatenated as one message of type `mtype` (> 0).
    ///
    /// # Errors
    /// OS errors other than full (with `nowait`) and removed (`EINVAL` for
    /// an `mtype` below 1 shows as removed, so callers check it first).
    pub fn send_typed(
        &self,
        buf: &mut MsgBuf,
        mtype: libc::c_long,
        parts: &[&[u8]],
        nowait: bool,
    ) -> io::Result<Op> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        buf.reserve_text(len);
        buf.0[0] = mtype;
        let mut at = 0;
        let text = buf.text_mut();
        for p in parts {
            text[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
        loop {
            // SAFETY: the buffer starts with a long mtype followed by at
            // least `len` text bytes (reserved above), valid for reads
            // during the call.
            let r = unsafe { libc::msgsnd(self.id, buf.0.as_ptr().cast(), len, flags) };
            match Errno::result(r) {
                Ok(_) => return Ok(Op::Done(len)),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(Op::WouldBlock),
                Err(Errno::EIDRM | Errno::EINVAL) => return Ok(Op::Removed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message into `buf`, whose text capacity becomes at
    /// least `max` bytes; a longer message fails with `E2BIG` and stays
    /// queued.
    ///
    /// # Errors
    /// OS errors other than empty (with `nowait`) and removed.
    pub fn receive(&self, buf: &mut MsgBuf, max: usize, nowait: bool) -> io::Result<Op> {
        let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
        self.receive_with(buf, max, flags)
    }

    /// Waits for one message and receives it into `buf`, cut to `max`
    /// bytes if longer (`MSG_NOERROR`): for a queue anyone may write to,
    /// where an overlong message must not block the queue.
    ///
    /// # Errors
    /// OS errors other than removed.
    pub fn receive_cut(&self, buf: &mut MsgBuf, max: usize) -> io::Result<Op> {
        self.receive_with(buf, max, libc::MSG_NOERROR)
    }

    /// Receives one message chosen by `msgtyp` as [msgrcv(2)] does
    /// (negative: the lowest type at most `-msgtyp`, oldest first) into
    /// `buf`, whose text capacity becomes at least `max`; its type is then
    /// [`MsgBuf::mtype`]. A longer message fails with `E2BIG` and stays
    /// queued.
    ///
    /// # Errors
    /// OS errors other than empty (with `nowait`) and removed.
    ///
    /// [msgrcv(2)]: https://man7.org/linux/man-pages/man2/msgrcv.2.html
    pub fn receive_typed(
        &self,
        buf: &mut MsgBuf,
        max: usize,
        msgtyp: libc::c_long,
        nowait: bool,
    ) -> io::Result<Op> {
        let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
        self.receive_from(buf, max, msgtyp, flags)
    }

    fn receive_with(&self, buf: &mut MsgBuf, max: usize, flags: libc::c_int) -> io::Result<Op> {
        self.receive_from(buf, max, 0, flags)
    }

    fn receive_from(
        &self,
        buf: &mut MsgBuf,
        max: usize,
        msgtyp: libc::c_long,
        flags: libc::c_int,
    ) -> io::Result<Op> {
        buf.reserve_text(max);
        let cap = buf.text_capacity().min(max);
        loop {
            // SAFETY: the buffer holds a long followed by at least `cap`
            // text bytes, valid for writes; msgrcv writes at most that many.
            let r = unsafe { libc::msgrcv(self.id, buf.0.as_mut_ptr().cast(), cap, msgtyp, flags) };
            match Errno::result(r) {
                Ok(n) => return Ok(Op::Done(n as usize)),
                Err(Errno::EINTR) => {}
                Err(Errno::ENOMSG | Errno::EAGAIN) => return Ok(Op::WouldBlock),
                Err(Errno::EIDRM | Errno::EINVAL) => return Ok(Op::Removed),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for MsgQueue {
    fn drop(&mut self) {
        if self.is_owned() {
            let _ = self.remove();
        }
    }
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

    /// The type of the message last received into the buffer.
    pub fn mtype(&self) -> libc::c_long {
        self.0.first().copied().unwrap_or(0)
    }

    /// The text part, for the caller to fill before a send or read after a
    /// receive.
    pub fn text_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[HEADER..]
    }
}

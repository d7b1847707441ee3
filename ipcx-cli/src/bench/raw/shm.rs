//! Raw shared memory: one single-producer/single-consumer byte ring per
//! direction in a shared mapping, records of an 8-byte length and the
//! payload padded to 8 bytes, written directly against libc.
//!
//! - `shm`: the mapping is a POSIX object (`shm_open(3)` + `mmap(2)`);
//!   `sysv-shm`: a System V segment (`shmget(2)` + `shmat(2)`). Both
//!   unlink/remove the object as soon as the client has mapped it.
//! - Waiting: *spin* polls the peer's index and nothing else; *block*
//!   publishes "sleeping" on the ring, re-checks, and sleeps in
//!   `futex(2)` `FUTEX_WAIT`; the other side calls `FUTEX_WAKE` only when
//!   that flag is set. The futex is used for both mappings, as ipcx does.
//! - No validation of what the peer writes: the baseline trusts its peer,
//!   which is part of what the ratio measures.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crate::bench::measure::Link;

/// The table's footnote for the shared-memory rows.
pub const NOTE: &str = "shm, sysv-shm: raw = an SPSC byte ring per direction in a shared mapping (shm_open+mmap for shm, shmget+shmat for sysv-shm), 4 MiB like ipcx's capacity here; (spin) rows poll against a polling ring, (block) rows against a futex-woken ring, as ipcx's; (loan) = ipcx's loan/recv_in_place against the polling ring; spin and loan rows run with --pin cross only, since two spinners on one core only measure the scheduler's time slice";

/// Bytes of payload per ring.
const RING: usize = 4 << 20;
/// A wait longer than this means the peer is gone.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// One side's index and wake-up word, alone on its cache lines.
#[repr(C, align(128))]
struct Line {
    pos: AtomicU64,
    sleeping: AtomicU32,
    seq: AtomicU32,
    closed: AtomicU32,
}

/// One direction. The head line is the producer's index and the
/// consumer's futex (data), the tail line the consumer's index and the
/// producer's futex (space).
#[repr(C)]
struct Ring {
    head: Line,
    tail: Line,
    data: [u8; RING],
}

/// The mapping: ring 0 carries client to server, ring 1 server to client.
const MAPPING: usize = 2 * std::mem::size_of::<Ring>();

/// How a side waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Spin,
    Block,
}

/// Which kind of shared memory holds the rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Posix,
    Sysv,
}

/// A shared mapping of [`MAPPING`] bytes; unmapped (or detached) on drop.
struct Mapping {
    base: *mut u8,
    kind: Kind,
}

impl Mapping {
    /// A new object, mapped; its address for the client; and the guard
    /// that removes the object if the client never does.
    fn create(kind: Kind, tag: &str) -> Result<(Mapping, String, Object), String> {
        match kind {
            Kind::Posix => {
                let name = format!("/{}", super::unique(tag));
                let c = std::ffi::CString::new(name.clone()).map_err(|e| e.to_string())?;
                // SAFETY: `c` is a NUL-terminated name that outlives the call.
                let fd = unsafe {
                    libc::shm_open(
                        c.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                if fd < 0 {
                    return Err(format!("shm_open {name}: {}", errno()));
                }
                // SAFETY: `fd` was just opened by this function and is
                // owned by nothing else.
                let fd =
                    unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let obj = Object::Posix(c);
                let m = map_fd(&fd, true)?;
                Ok((m, format!("posix {name}"), obj))
            }
            Kind::Sysv => {
                // SAFETY: plain system call with integer arguments.
                let id =
                    unsafe { libc::shmget(libc::IPC_PRIVATE, MAPPING, libc::IPC_CREAT | 0o600) };
                if id < 0 {
                    return Err(format!("shmget {MAPPING} bytes: {}", errno()));
                }
                let obj = Object::Sysv(id);
                let m = attach(id)?;
                Ok((m, format!("sysv {id}"), obj))
            }
        }
    }

    fn open(kind: Kind, name: &str) -> Result<Mapping, String> {
        match kind {
            Kind::Posix => {
                let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
                // SAFETY: `c` is a NUL-terminated name that outlives the call.
                let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
                if fd < 0 {
                    return Err(format!("shm_open {name}: {}", errno()));
                }
                // SAFETY: `fd` was just opened and is owned by nothing else.
                let fd =
                    unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let m = map_fd(&fd, false);
                // Both sides have it mapped (or this side failed): the name
                // can go.
                // SAFETY: `c` is a NUL-terminated name.
                unsafe { libc::shm_unlink(c.as_ptr()) };
                m
            }
            Kind::Sysv => {
                let id: i32 = name
                    .parse()
                    .map_err(|_| format!("bad segment id {name:?}"))?;
                let m = attach(id)?;
                // Both attached: mark for removal after the last detach.
                // SAFETY: IPC_RMID takes no buffer; `id` names our segment.
                unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
                Ok(m)
            }
        }
    }

    fn ring(&self, i: usize) -> &Ring {
        debug_assert!(i < 2);
        // Zeroed memory (a new object or segment) is a valid `Ring`: atomics
        // and bytes, the bytes touched only through raw pointers.
        // SAFETY: the page-aligned mapping holds two `Ring`s and lives as
        // long as `self`.
        unsafe { &*(self.base as *const Ring).add(i) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.kind {
            // SAFETY: `base` is a live mapping of MAPPING bytes made by
            // `map_fd`; no reference into it outlives `self`.
            Kind::Posix => unsafe {
                libc::munmap(self.base.cast(), MAPPING);
            },
            // SAFETY: `base` is the address `shmat` returned; no reference
            // into it outlives `self`.
            Kind::Sysv => unsafe {
                libc::shmdt(self.base.cast());
            },
        }
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn map_fd(fd: &std::os::fd::OwnedFd, create: bool) -> Result<Mapping, String> {
    use std::os::fd::AsRawFd;
    if create {
        // SAFETY: `fd` is an open shared-memory object.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), MAPPING as libc::off_t) } < 0 {
            return Err(format!("ftruncate {MAPPING}: {}", errno()));
        }
    }
    // SAFETY: a fresh shared mapping of an object of MAPPING bytes; no
    // address hint, so it overlaps nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MAPPING,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap {MAPPING}: {}", errno()));
    }
    Ok(Mapping {
        base: p.cast(),
        kind: Kind::Posix,
    })
}

fn attach(id: i32) -> Result<Mapping, String> {
    // SAFETY: no address hint, so the kernel picks free address space.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        return Err(format!("shmat {id}: {}", errno()));
    }
    Ok(Mapping {
        base: p.cast(),
        kind: Kind::Sysv,
    })
}

fn futex_wait(w: &AtomicU32, v: u32) {
    let t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // SAFETY: `w` is a live, aligned 32-bit word in a shared mapping (so no
    // FUTEX_PRIVATE_FLAG); `t` outlives the call. Spurious returns are
    // handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            libc::FUTEX_WAIT,
            v,
            &t as *const libc::timespec,
        );
    }
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: `w` is a live, aligned word; FUTEX_WAKE only uses its address.
    unsafe {
        libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Waits until `ready()` on `line` (the futex this side sleeps on).
fn wait(line: &Line, how: Wait, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if ready() {
            return Ok(());
        }
        if line.closed.load(Ordering::Acquire) != 0 {
            // The peer may have published its last message (a stop
            // message, then its exit) between the look above and this one.
            if ready() {
                return Ok(());
            }
            return Err("raw shm: peer closed".into());
        }
        if how == Wait::Spin {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 && start.elapsed() > PEER_TIMEOUT {
                return Err("raw shm: peer silent for 10 s".into());
            }
            continue;
        }
        // Publish "sleeping", then re-check: either the peer's publish
        // sees the flag, or this re-check sees its index (SeqCst fences on
        // both sides).
        let s = line.seq.load(Ordering::Acquire);
        line.sleeping.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if ready() {
            line.sleeping.store(0, Ordering::Relaxed);
            return Ok(());
        }
        futex_wait(&line.seq, s);
        line.sleeping.store(0, Ordering::Relaxed);
        if start.elapsed() > PEER_TIMEOUT {
            return Err("raw shm: peer silent for 10 s".into());
        }
    }
}

/// Stores `value` in `line` and wakes its sleeper, if any.
fn publish(line: &Line, value: u64, how: Wait) {
    line.pos.store(value, Ordering::Release);
    if how == Wait::Block {
        fence(Ordering::SeqCst);
        if line.sleeping.load(Ordering::Relaxed) != 0 {
            line.seq.fetch_add(1, Ordering::Release);
            futex_wake(&line.seq);
        }
    }
}

impl Ring {
    fn copy_in(&self, pos: u64, src: &[u8]) {
        let off = pos as usize % RING;
        let first = src.len().min(RING - off);
        let base = self.data.as_ptr() as *mut u8;
        // SAFETY: `off + first <= RING` and `src.len() - first <= RING`: both
        // ranges lie in `data`, unread until published; `src` is private
        // memory, so the copies cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(off), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), base, src.len() - first);
        }
    }

    fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        let off = pos as usize % RING;
        let first = dst.len().min(RING - off);
        // SAFETY: both ranges lie in `data` (as in `copy_in`) and were
        // published by the producer, which does not rewrite them until the
        // consumer's tail passes them; `dst` is private memory.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.as_ptr().add(off), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data.as_ptr(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }
}

/// One side of a raw shared-memory connection.
struct RawShm {
    map: Mapping,
    tx: usize,
    rx: usize,
    /// Next write position in the ring `tx`.
    head: u64,
    /// Next read position in the ring `rx`.
    tail: u64,
    /// The consumer's tail of ring `tx` as last read: the shared index is
    /// read again only when this view shows too little room.
    peer_tail: u64,
    /// The producer's head of ring `rx` as last read: read again only once
    /// everything up to it is consumed.
    peer_head: u64,
    how: Wait,
}

impl Link for RawShm {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        let ring = self.map.ring(self.tx);
        let need = 8 + msg.len().div_ceil(8) as u64 * 8;
        if need > RING as u64 {
            return Err(format!("raw shm: {} bytes exceed the ring", msg.len()));
        }
        let head = self.head;
        if RING as u64 - (head - self.peer_tail) < need {
            let peer_tail = &mut self.peer_tail;
            wait(&ring.tail, self.how, || {
                *peer_tail = ring.tail.pos.load(Ordering::Acquire);
                RING as u64 - (head - *peer_tail) >= need
            })?;
        }
        ring.copy_in(head, &(msg.len() as u64).to_le_bytes());
        ring.copy_in(head + 8, msg);
        self.head = head + need;
        publish(&ring.head, self.head, self.how);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        let ring = self.map.ring(self.rx);
        let tail = self.tail;
        if self.peer_head == tail {
            let peer_head = &mut self.peer_head;
            wait(&ring.head, self.how, || {
                *peer_head = ring.head.pos.load(Ordering::Acquire);
                *peer_head != tail
            })?;
        }
        let mut h = [0u8; 8];
        ring.copy_out(tail, &mut h);
        let len = u64::from_le_bytes(h) as usize;
        if len > RING - 8 {
            return Err(format!("raw shm: record length {len}"));
        }
        buf.resize(len, 0);
        ring.copy_out(tail + 8, buf);
        self.tail = tail + 8 + len.div_ceil(8) as u64 * 8;
        publish(&ring.tail, self.tail, self.how);
        Ok(())
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // Tell a peer waiting for data or for room that none will come.
        for line in [&self.map.ring(self.tx).head, &self.map.ring(self.rx).tail] {
            line.closed.store(1, Ordering::Release);
            line.seq.fetch_add(1, Ordering::Release);
            futex_wake(&line.seq);
        }
    }
}

fn server(kind: Kind, how: Wait, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let (map, name, object) = Mapping::create(kind, "shm")?;
    let wait = match how {
        Wait::Spin => "spin",
        Wait::Block => "block",
    };
    ready(&format!("{name} {wait}"));
    Ok(Box::new(ServerSide {
        link: RawShm {
            map,
            tx: 1,
            rx: 0,
            head: 0,
            tail: 0,
            peer_tail: 0,
            peer_head: 0,
            how,
        },
        _object: object,
    }))
}

/// Removes the server's object on drop, in case the client never did
/// (normally it already has: ENOENT or EINVAL, ignored).
enum Object {
    Posix(std::ffi::CString),
    Sysv(i32),
}

impl Drop for Object {
    fn drop(&mut self) {
        match self {
            // SAFETY: `c` is a NUL-terminated name.
            Object::Posix(c) => unsafe {
                libc::shm_unlink(c.as_ptr());
            },
            // SAFETY: IPC_RMID takes no buffer; at worst `id` is already
            // removed and the call fails harmlessly.
            Object::Sysv(id) => unsafe {
                libc::shmctl(*id, libc::IPC_RMID, std::ptr::null_mut());
            },
        }
    }
}

/// The server's link and the name it may have to remove.
struct ServerSide {
    link: RawShm,
    _object: Object,
}

impl Link for ServerSide {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.link.send(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String> {
        self.link.recv(buf, size)
    }
}

/// `shm` server, polling.
pub fn posix_spin_server(_: &str, _: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    server(Kind::Posix, Wait::Spin, ready)
}

/// `shm` server, futex wake-ups.
pub fn posix_block_server(
    _: &str,
    _: usize,
    ready: &dyn Fn(&str),
) -> Result<Box<dyn Link>, String> {
    server(Kind::Posix, Wait::Block, ready)
}

/// `sysv-shm` server, polling.
pub fn sysv_spin_server(_: &str, _: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    server(Kind::Sysv, Wait::Spin, ready)
}

/// `sysv-shm` server, futex wake-ups.
pub fn sysv_block_server(_: &str, _: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    server(Kind::Sysv, Wait::Block, ready)
}

/// The client of any of the servers above: `posix|sysv NAME spin|block`.
pub fn client(address: &str) -> Result<Box<dyn Link>, String> {
    let mut it = address.split(' ');
    let (kind, name, how) = match (it.next(), it.next(), it.next()) {
        (Some("posix"), Some(n), Some(w)) => (Kind::Posix, n, w),
        (Some("sysv"), Some(n), Some(w)) => (Kind::Sysv, n, w),
        _ => return Err(format!("bad raw shm address {address:?}")),
    };
    let how = if how == "spin" {
        Wait::Spin
    } else {
        Wait::Block
    };
    Ok(Box::new(RawShm {
        map: Mapping::open(kind, name)?,
        tx: 0,
        rx: 1,
        head: 0,
        tail: 0,
        peer_tail: 0,
        peer_head: 0,
        how,
    }))
}

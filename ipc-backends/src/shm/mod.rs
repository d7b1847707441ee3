//! Shared-memory transports: `shm:` (POSIX shared memory, futex wake-ups)
//! and `sysv-shm:` (System V shared memory and semaphore set).
//!
//! Per connection one segment holds a header and one ring per direction
//! ([`segment`], [`ring`]). Clients meet the listener on an abstract Unix
//! socket ([`rendezvous`]) for the handshake and the hand-over of the
//! segment; every message then moves through shared memory.
//!
//! - No system call on the fast path: a side only sleeps after publishing
//!   that it may sleep and re-checking the ring, and the other side only
//!   wakes it when that flag is set (`docs/shm-architecture.md` argues why
//!   no wake-up is lost).
//! - `wait=spin|block|adaptive` and `spin_us` choose how a side waits;
//!   `capacity` is the ring size in bytes per direction (rounded up to a
//!   power of two, at least 4096; default: room for one message of
//!   `max_message_size`, between 1 MiB and 4 MiB). The listener's value is
//!   used. A loan holds at most half a ring.
//! - The peer is untrusted: see [`ring`] for what is read from it and how
//!   it is validated.
//! - Zero-copy: [`ShmSender::loan`] and [`ShmReceiver::recv_in_place`].

pub mod posix;
pub mod rendezvous;
pub mod ring;
pub mod segment;
pub mod sysv;

use std::ops::{Deref, DerefMut, Range};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use ipc_core::handshake::{self, Hello, MAX_HELLO_LEN};
use ipc_core::{
    Channel, Deadline, Endpoint, Error, Listener, PeerInfo, Receiver, Result, Schema, Scheme,
    Sender, Transport, Wait,
};

use crate::sys::process;
use crate::sys::scm::{self, Received};
use crate::sys::shm::Mapping;
use crate::sys::socket::{self as sock, ListenError, UnixName};
use crate::sys::{fd, futex, sysv_shm};
use ring::{Consumer, Next, Producer, RingMem, Violation};
use segment::Layout;

/// Looks at the ring before a spinning wait first reads the clock.
const PRE_SPIN: u32 = 64;
/// How often a waiting side checks that its peer still lives.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(10);
/// Smallest and largest default ring.
const DEFAULT_RING_MIN: u64 = 1 << 20;
const DEFAULT_RING_MAX: u64 = 4 << 20;
/// Segment-hand-over byte: the segment follows; the client answers with
/// [`ACK_MAPPED`] once it has mapped it.
const SEGMENT_FOLLOWS: u8 = 1;
const ACK_MAPPED: u8 = 1;

/// `shm:` — POSIX shared memory with futex wake-ups.
#[derive(Debug, Clone, Copy)]
pub struct Shm;

/// `sysv-shm:` — System V shared memory with a System V semaphore set.
#[derive(Debug, Clone, Copy)]
pub struct SysvShm;

impl Transport for Shm {
    type Listener = ShmListener;
    type Channel = ShmChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<ShmListener> {
        ShmListener::bind(Scheme::Shm, endpoint, schema)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
        connect(Scheme::Shm, endpoint, schema)
    }
}

impl Transport for SysvShm {
    type Listener = ShmListener;
    type Channel = ShmChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<ShmListener> {
        ShmListener::bind(Scheme::SysvShm, endpoint, schema)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
        connect(Scheme::SysvShm, endpoint, schema)
    }
}

fn check_scheme(want: Scheme, endpoint: &Endpoint) -> Result<()> {
    if endpoint.scheme() != want {
        return Err(Error::Unsupported {
            scheme: endpoint.scheme(),
            reason: format!(
                "the {want}: transport was asked to open {endpoint}; use {}",
                want.example()
            ),
        });
    }
    Ok(())
}

/// The ring size for an endpoint's options.
fn ring_capacity(endpoint: &Endpoint) -> u64 {
    let o = endpoint.options();
    match o.capacity {
        Some(c) => (c as u64)
            .clamp(segment::MIN_RING, segment::MAX_RING)
            .next_power_of_two(),
        None => ring::record_size(o.max_message_size as u64)
            .next_power_of_two()
            .clamp(DEFAULT_RING_MIN, DEFAULT_RING_MAX),
    }
}

/// How a side sleeps and wakes the other.
#[derive(Debug)]
enum Signal {
    /// Futex on the ring's sequence words.
    Futex,
    /// A System V semaphore set: `2 * ring` for data, `2 * ring + 1` for
    /// space.
    Semaphores(i32),
}

/// What a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Data,
    Space,
}

/// What both halves of a connection share.
#[derive(Debug)]
struct Shared {
    map: Mapping,
    signal: Signal,
    /// The rendezvous connection: hangs up when the peer process is gone.
    socket: OwnedFd,
    endpoint: String,
    peer_pid: u32,
    peer_start: Option<u64>,
}

impl Shared {
    fn control(&self, ring: usize) -> &ring::Control {
        // SAFETY: the mapping is live while `self` is and was validated to
        // hold at least HEADER_SIZE bytes; mmap/shmat addresses are
        // page-aligned.
        unsafe { segment::control(self.map.ptr(), ring) }
    }

    fn ring_mem(&self, layout: &Layout, ring: usize) -> RingMem {
        RingMem {
            control: self.control(ring),
            // SAFETY: ring_offset + capacity <= segment_size <= map.len(),
            // checked by validate_header (client) or by construction
            // (listener).
            data: unsafe { self.map.ptr().add(layout.ring_offset(ring) as usize) },
            capacity: layout.ring_capacity,
        }
    }

    /// The addresses of the mapped segment.
    fn mapped_range(&self) -> Range<usize> {
        let start = self.map.ptr() as usize;
        start..start + self.map.len()
    }

    /// Whether the peer process is gone.
    fn peer_gone(&self) -> bool {
        rendezvous::hung_up(self.socket.as_fd()) || !process::alive(self.peer_pid, self.peer_start)
    }

    fn words(&self, ring: usize, event: Event) -> (&AtomicU32, &AtomicU32, u16) {
        let c = self.control(ring);
        let num = (2 * ring) as u16;
        match event {
            Event::Data => (&c.data_sleeping, &c.data_seq, num),
            Event::Space => (&c.space_sleeping, &c.space_seq, num + 1),
        }
    }

    fn wake(&self, ring: usize, event: Event) {
        let (_, seq, num) = self.words(ring, event);
        seq.fetch_add(1, Ordering::Release);
        match self.signal {
            Signal::Futex => futex::wake_all(seq),
            // A failure means the set is gone, i.e. so is the peer: the
            // next wait notices.
            Signal::Semaphores(id) => drop(sysv_shm::sem_post(id, num)),
        }
    }

    /// Sleeps until woken, the slice ends or a signal; `Err(Disconnected)`
    /// when the semaphore set was removed.
    fn sleep(&self, seq: &AtomicU32, expected: u32, num: u16, slice: Duration) -> Result<()> {
        match self.signal {
            Signal::Futex => futex::wait(seq, expected, slice),
            Signal::Semaphores(id) => {
                sysv_shm::sem_wait(id, num, slice).map_err(|e| match e.raw_os_error() {
                    Some(libc::EIDRM | libc::EINVAL) => Error::Disconnected,
                    _ => Error::io(format!("{}: semtimedop({id})", self.endpoint), e),
                })
            }
        }
    }

    /// Waits until `ready` holds, honouring `deadline` and the wait
    /// strategy, and noticing a dead peer.
    ///
    /// # Errors
    /// The deadline's error, [`Error::Disconnected`] when the peer died
    /// (after a last check of `ready`), or what `ready` returns.
    fn wait_for(
        &self,
        ring: usize,
        event: Event,
        how: WaitCfg,
        deadline: Deadline,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        if ready()? {
            return Ok(());
        }
        if deadline == Deadline::Now {
            return Err(Error::WouldBlock);
        }
        if how.wait != Wait::Block {
            // A spinning peer usually answers within a few hundred ns:
            // look a few times before paying for the clock.
            for _ in 0..PRE_SPIN {
                std::hint::spin_loop();
                if ready()? {
                    return Ok(());
                }
            }
        }
        let start = Instant::now();
        let mut next_check = start + LIVENESS_INTERVAL;
        let spin_until = match how.wait {
            Wait::Spin => None,
            Wait::Adaptive => Some(start + how.spin),
            Wait::Block => Some(start),
        };
        let gone = |now: Instant, next_check: &mut Instant| {
            if now >= *next_check {
                *next_check = now + LIVENESS_INTERVAL;
                return self.peer_gone();
            }
            false
        };
        let mut spins = 0u32;
        loop {
            if spin_until.is_some_and(|t| Instant::now() >= t) {
                break;
            }
            std::hint::spin_loop();
            if ready()? {
                return Ok(());
            }
            spins = spins.wrapping_add(1);
            if spins % 128 == 0 {
                let now = Instant::now();
                if deadline.expired() {
                    return Err(deadline.elapsed_error());
                }
                if gone(now, &mut next_check) {
                    return if ready()? {
                        Ok(())
                    } else {
                        Err(Error::Disconnected)
                    };
                }
            }
        }
        let (sleeping, seq, num) = self.words(ring, event);
        loop {
            let expected = seq.load(Ordering::Acquire);
            sleeping.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if ready()? {
                sleeping.store(0, Ordering::Relaxed);
                return Ok(());
            }
            let slice = match deadline.remaining() {
                Some(Duration::ZERO) => {
                    sleeping.store(0, Ordering::Relaxed);
                    return Err(deadline.elapsed_error());
                }
                Some(left) => left.min(LIVENESS_INTERVAL),
                None => LIVENESS_INTERVAL,
            };
            let slept = self.sleep(seq, expected, num, slice);
            sleeping.store(0, Ordering::Relaxed);
            if ready()? {
                return Ok(());
            }
            if slept.is_err() || gone(Instant::now(), &mut next_check) {
                return if ready()? {
                    Ok(())
                } else {
                    Err(Error::Disconnected)
                };
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Signal::Semaphores(id) = self.signal {
            // SAFETY: the mapping is live until the end of this drop.
            let refs = unsafe { segment::refs(self.map.ptr()) };
            if refs.fetch_sub(1, Ordering::AcqRel) == 1 || self.peer_gone() {
                sysv::remove_semaphores(id);
            }
        }
    }
}

/// A side's wait strategy.
#[derive(Debug, Clone, Copy)]
struct WaitCfg {
    wait: Wait,
    spin: Duration,
}

impl WaitCfg {
    fn of(endpoint: &Endpoint) -> WaitCfg {
        WaitCfg {
            wait: endpoint.wait(),
            spin: endpoint.spin(),
        }
    }
}

fn protocol(endpoint: &str, ring: usize, v: Violation) -> Error {
    Error::protocol(format!(
        "{endpoint}: ring {ring}: {v}; the peer corrupted the segment"
    ))
}

/// The sending half of a shared-memory connection.
#[derive(Debug)]
pub struct ShmSender {
    shared: Arc<Shared>,
    ring: Producer,
    index: usize,
    max: usize,
    how: WaitCfg,
}

impl ShmSender {
    fn closed(&self) -> bool {
        self.ring.control().consumer_closed.load(Ordering::Acquire) != 0
    }

    fn free(&mut self) -> Result<u64> {
        let (endpoint, index) = (&self.shared.endpoint, self.index);
        self.ring.free().map_err(|v| protocol(endpoint, index, v))
    }

    /// Bytes free, reading the consumer's tail only when the cached view
    /// has fewer than `need`.
    fn free_for(&mut self, need: u64) -> Result<u64> {
        let (endpoint, index) = (&self.shared.endpoint, self.index);
        self.ring
            .free_for(need)
            .map_err(|v| protocol(endpoint, index, v))
    }

    /// Waits for `need` free bytes (or a closed consumer).
    fn wait_space(&mut self, need: u64, deadline: Deadline) -> Result<()> {
        let (shared, ring, index) = (&self.shared, &mut self.ring, self.index);
        let endpoint = &shared.endpoint;
        shared.wait_for(index, Event::Space, self.how, deadline, || {
            if ring.control().consumer_closed.load(Ordering::Acquire) != 0 {
                return Ok(true);
            }
            Ok(ring.free().map_err(|v| protocol(endpoint, index, v))? >= need)
        })?;
        if self.closed() {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    fn publish(&mut self) {
        if self.ring.publish() {
            self.shared.wake(self.index, Event::Data);
        }
    }

    /// The addresses of the mapped segment (for tests that check a loan
    /// lies inside it).
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Range<usize> {
        self.shared.mapped_range()
    }

    fn check_size(&self, len: usize) -> Result<()> {
        if len > self.max {
            return Err(Error::MessageTooLarge {
                size: len,
                max: self.max,
            });
        }
        Ok(())
    }

    /// A writable slice of `len` bytes inside the ring, sent by
    /// [`Loan::send`]; dropping the loan sends nothing. Waits for room.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above `max_message_size` or above what the
    /// ring always holds in one piece (`capacity / 2 - 8`);
    /// [`Error::Disconnected`].
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::Never)
    }

    /// As [`loan`](Self::loan), waiting at most until `deadline`.
    ///
    /// # Errors
    /// As [`loan`](Self::loan); the deadline's error when no room came.
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        self.check_size(len)?;
        let record = ring::record_size(len as u64);
        // Up to half a ring, a contiguous place always comes free once the
        // consumer catches up (a pad is then shorter than the record).
        let half = self.ring.capacity() / 2;
        if record > half {
            return Err(Error::MessageTooLarge {
                size: len,
                max: (half - ring::RECORD_HEADER) as usize,
            });
        }
        if self.closed() {
            return Err(Error::Disconnected);
        }
        let (shared, ring, index) = (&self.shared, &mut self.ring, self.index);
        let endpoint = &shared.endpoint;
        let mut reserved = None;
        shared.wait_for(index, Event::Space, self.how, deadline, || {
            if ring.control().consumer_closed.load(Ordering::Acquire) != 0 {
                return Ok(true);
            }
            // The cached tail first; the shared one only when that is short.
            reserved = ring.reserve_contiguous(record, ring.free_cached());
            if reserved.is_none() {
                let free = ring.free().map_err(|v| protocol(endpoint, index, v))?;
                reserved = ring.reserve_contiguous(record, free);
            }
            Ok(reserved.is_some())
        })?;
        match reserved {
            Some(r) if !self.closed() => Ok(Loan {
                tx: self,
                reserved: r,
                len,
            }),
            _ => Err(Error::Disconnected),
        }
    }
}

impl Sender for ShmSender {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.check_size(msg.len())?;
        if self.closed() {
            return Err(Error::Disconnected);
        }
        let len = msg.len() as u64;
        let record = ring::record_size(len);
        let header = ((u64::from(ring::KIND_MESSAGE) << 32) | len).to_le_bytes();
        let pad = [0u8; 8];
        let pad = &pad[..(record - ring::RECORD_HEADER - len) as usize];
        let cap = self.ring.capacity();
        // Fits: wait for the whole record, write it, publish once. Larger
        // than the ring: wait for half a ring, then stream; from the first
        // byte on the message is committed and only the peer's death
        // stops it.
        let first = if record <= cap { record } else { cap / 2 };
        let mut free = self.free_for(first)?;
        if free < first {
            self.wait_space(first, deadline)?;
            free = self.free()?;
        }
        if record <= free && self.ring.push_contiguous(msg) {
            self.publish();
            return Ok(());
        }
        for part in [&header[..], msg, pad] {
            let mut done = 0;
            while done < part.len() {
                if free == 0 {
                    self.publish();
                    self.wait_space(1, Deadline::Never)?;
                    free = self.free()?;
                    continue;
                }
                let n = self.ring.push(&part[done..], free);
                done += n;
                free -= n as u64;
            }
        }
        self.publish();
        Ok(())
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl Drop for ShmSender {
    fn drop(&mut self) {
        self.ring
            .control()
            .producer_closed
            .store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.shared.wake(self.index, Event::Data);
    }
}

/// A message being written in place; see [`ShmSender::loan`].
#[derive(Debug)]
pub struct Loan<'a> {
    tx: &'a mut ShmSender,
    reserved: ring::Reserved,
    len: usize,
}

impl Loan<'_> {
    /// Publishes the message.
    pub fn send(self) {
        self.tx
            .ring
            .commit_reserved(&self.reserved, self.len as u64);
        self.tx.publish();
    }

    /// Publishes the message (same as [`send`](Self::send)).
    pub fn commit(self) {
        self.send();
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `payload` points at `len` reserved bytes inside the ring
        // (reserve_contiguous), which no one else writes until we publish;
        // the mapping lives as long as `tx`, which we borrow.
        unsafe { std::slice::from_raw_parts(self.reserved.payload, self.len) }
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only Rust
        // reference to those bytes.
        unsafe { std::slice::from_raw_parts_mut(self.reserved.payload, self.len) }
    }
}

/// The receiving half of a shared-memory connection.
#[derive(Debug)]
pub struct ShmReceiver {
    shared: Arc<Shared>,
    ring: Consumer,
    index: usize,
    how: WaitCfg,
    scratch: Vec<u8>,
}

impl ShmReceiver {
    /// Waits for at least one published byte; `Ok(0)` never: returns the
    /// bytes available, or [`Error::Disconnected`] once the producer closed
    /// and everything was read.
    fn wait_data(&mut self, deadline: Deadline) -> Result<u64> {
        let cached = self.ring.available_cached();
        if cached > 0 {
            return Ok(cached);
        }
        let (shared, ring, index) = (&self.shared, &mut self.ring, self.index);
        let endpoint = &shared.endpoint;
        let mut avail = 0;
        shared.wait_for(index, Event::Data, self.how, deadline, || {
            // Closed before head: the producer publishes its last bytes
            // before it closes, so a head read after seeing it closed has
            // them all.
            let closed = ring.control().producer_closed.load(Ordering::Acquire) != 0;
            avail = ring.available().map_err(|v| protocol(endpoint, index, v))?;
            Ok(avail > 0 || closed)
        })?;
        match avail {
            0 => Err(Error::Disconnected),
            n => Ok(n),
        }
    }

    /// The addresses of the mapped segment (for tests that check a
    /// message is read in place).
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Range<usize> {
        self.shared.mapped_range()
    }

    fn release(&mut self) {
        if self.ring.release() {
            self.shared.wake(self.index, Event::Space);
        }
    }

    /// The next message header, skipping padding: its length and the bytes
    /// available.
    fn next_message(&mut self, deadline: Deadline) -> Result<(u64, u64)> {
        loop {
            let avail = self.wait_data(deadline)?;
            match self.ring.next(avail) {
                Ok(Next::Message(len)) => return Ok((len, avail)),
                Ok(Next::Pad(skip)) => {
                    self.ring.skip(skip);
                    self.release();
                }
                Ok(Next::Empty) => {}
                Err(v) => return Err(protocol(&self.shared.endpoint, self.index, v)),
            }
        }
    }

    /// Reads the body of a message of `len` bytes whose header is at the
    /// tail into `buf`; waits for streamed chunks without a deadline (the
    /// sender is committed), stopping only if the peer dies.
    fn read_body(&mut self, len: u64, mut avail: u64, buf: &mut Vec<u8>) -> Result<()> {
        // Every byte is overwritten below: zero only what the buffer grows.
        buf.truncate(len as usize);
        buf.resize(len as usize, 0);
        if let Some(payload) = self.ring.contiguous(len, avail) {
            // SAFETY: `contiguous` checked the record is published and lies
            // unwrapped in the data area, so `len` bytes at `payload` are
            // readable; `buf` holds `len` bytes in a distinct allocation.
            unsafe { std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), len as usize) };
            self.ring.skip(ring::record_size(len));
            self.release();
            return Ok(());
        }
        self.ring.skip(ring::RECORD_HEADER);
        avail -= ring::RECORD_HEADER;
        let mut pad = [0u8; 8];
        let pad_len = (ring::record_size(len) - ring::RECORD_HEADER - len) as usize;
        for part in [&mut buf[..], &mut pad[..pad_len]] {
            let mut done = 0;
            while done < part.len() {
                if avail == 0 {
                    self.release();
                    avail = self.wait_data(Deadline::Never)?;
                    continue;
                }
                let n = self.ring.pull(&mut part[done..], avail);
                done += n;
                avail -= n as u64;
            }
        }
        self.release();
        Ok(())
    }

    /// The next message, read in place inside the segment when it lies
    /// there in one piece (always, for messages sent with a loan), copied
    /// otherwise. The space is released when the guard drops.
    ///
    /// The bytes are shared memory: a misbehaving peer could change them
    /// while the guard lives. Validate what you decode from them.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>> {
        self.recv_in_place_until(Deadline::Never)
    }

    /// As [`recv_in_place`](Self::recv_in_place), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<InPlace<'_>> {
        let (len, avail) = self.next_message(deadline)?;
        if let Some(ptr) = self.ring.contiguous(len, avail) {
            return Ok(InPlace {
                ptr,
                len: len as usize,
                release: Some(ring::record_size(len)),
                rx: self,
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.read_body(len, avail, &mut scratch);
        self.scratch = scratch;
        r?;
        Ok(InPlace {
            ptr: self.scratch.as_ptr(),
            len: self.scratch.len(),
            release: None,
            rx: self,
        })
    }
}

impl Receiver for ShmReceiver {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let (len, avail) = self.next_message(deadline)?;
        self.read_body(len, avail, buf)
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        self.ring
            .control()
            .consumer_closed
            .store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.shared.wake(self.index, Event::Space);
    }
}

/// A received message; see [`ShmReceiver::recv_in_place`].
#[derive(Debug)]
pub struct InPlace<'a> {
    rx: &'a mut ShmReceiver,
    ptr: *const u8,
    len: usize,
    /// Record bytes to release on drop when the message is in the ring.
    release: Option<u64>,
}

impl InPlace<'_> {
    /// Whether the bytes are read in place in shared memory (not copied).
    pub fn is_in_place(&self) -> bool {
        self.release.is_some()
    }
}

impl Deref for InPlace<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is `len` published ring bytes (released only on
        // drop) or `rx.scratch`, untouched while this guard borrows `rx`;
        // the mapping lives as long as `rx`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for InPlace<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.release {
            self.rx.ring.skip(n);
            self.rx.release();
        }
    }
}

/// A connected shared-memory channel.
#[derive(Debug)]
pub struct ShmChannel {
    sender: ShmSender,
    receiver: ShmReceiver,
    peer: PeerInfo,
}

impl ShmChannel {
    /// The addresses of the mapped segment (for tests that check a message
    /// is written or read in place).
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Range<usize> {
        self.sender.mapped_range()
    }

    /// See [`ShmSender::loan`].
    ///
    /// # Errors
    /// As [`ShmSender::loan`].
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.sender.loan(len)
    }

    /// See [`ShmSender::loan_until`].
    ///
    /// # Errors
    /// As [`ShmSender::loan_until`].
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        self.sender.loan_until(len, deadline)
    }

    /// See [`ShmReceiver::recv_in_place`].
    ///
    /// # Errors
    /// As [`ShmReceiver::recv_in_place`].
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>> {
        self.receiver.recv_in_place()
    }

    /// See [`ShmReceiver::recv_in_place_until`].
    ///
    /// # Errors
    /// As [`ShmReceiver::recv_in_place_until`].
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<InPlace<'_>> {
        self.receiver.recv_in_place_until(deadline)
    }
}

impl Sender for ShmChannel {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.sender.send_until(msg, deadline)
    }

    fn max_message_size(&self) -> usize {
        self.sender.max
    }
}

impl Receiver for ShmChannel {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.receiver.recv_until(buf, deadline)
    }
}

impl Channel for ShmChannel {
    type Sender = ShmSender;
    type Receiver = ShmReceiver;

    fn split(self) -> (ShmSender, ShmReceiver) {
        (self.sender, self.receiver)
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

/// Builds a channel over a mapped, validated segment. `side` 0 is the
/// listener (sends on ring 0), 1 the client.
#[allow(clippy::too_many_arguments)]
fn channel(
    map: Mapping,
    layout: Layout,
    signal: Signal,
    socket: OwnedFd,
    endpoint: &Endpoint,
    side: usize,
    peer: PeerInfo,
    peer_start: Option<u64>,
) -> ShmChannel {
    let shared = Arc::new(Shared {
        map,
        signal,
        socket,
        endpoint: endpoint.to_string(),
        peer_pid: peer.pid,
        peer_start,
    });
    let (tx, rx) = (side, 1 - side);
    let max = peer.max_message_size;
    // What the peer announced before the segment carried messages, read
    // once. A peer that claims to spin and then sleeps only delays its own
    // wake-ups (to the end of its 10 ms slice).
    let consumer_spins = shared.control(tx).consumer_spins.load(Ordering::Acquire) != 0;
    let producer_spins = shared.control(rx).producer_spins.load(Ordering::Acquire) != 0;
    // SAFETY: the rings lie in `shared.map` (layout checked against its
    // size), which the Arc keeps alive as long as they are; this side alone
    // produces into ring `tx` and consumes from ring `rx`.
    let (producer, consumer) = unsafe {
        (
            Producer::new(shared.ring_mem(&layout, tx), consumer_spins),
            Consumer::new(shared.ring_mem(&layout, rx), max as u64, producer_spins),
        )
    };
    let how = WaitCfg::of(endpoint);
    ShmChannel {
        sender: ShmSender {
            shared: shared.clone(),
            ring: producer,
            index: tx,
            max,
            how,
        },
        receiver: ShmReceiver {
            shared,
            ring: consumer,
            index: rx,
            how,
            scratch: Vec::new(),
        },
        peer,
    }
}

/// Whether a peer of `uid` may connect to `endpoint`.
fn uid_allowed(endpoint: &Endpoint, uid: u32) -> bool {
    let o = endpoint.options();
    if !o.allow_uid.is_empty() {
        return o.allow_uid.contains(&uid);
    }
    uid == process::uid() || o.mode & 0o066 != 0
}

/// Hello exchange and verdicts over the rendezvous socket.
fn handshake(
    endpoint: &Endpoint,
    schema: &Schema,
    sock: &OwnedFd,
    peer_uid: u32,
    deadline: Deadline,
) -> Result<PeerInfo> {
    let what = endpoint.to_string();
    let s = sock.as_fd();
    let local = Hello::new(
        schema,
        process::pid(),
        process::uid(),
        endpoint.options().max_message_size,
    );
    let ours = local.encode();
    let mut framed = (ours.len() as u16).to_le_bytes().to_vec();
    framed.extend_from_slice(&ours);
    rendezvous::write_all(s, &framed, deadline, &what)?;
    let mut len = [0u8; 2];
    rendezvous::read_exact(s, &mut len, deadline, &what)?;
    let len = usize::from(u16::from_le_bytes(len));
    if len > MAX_HELLO_LEN {
        return Err(Error::protocol(format!(
            "{endpoint}: the peer announced a {len}-byte hello, above {MAX_HELLO_LEN}"
        )));
    }
    let mut theirs = vec![0u8; len];
    rendezvous::read_exact(s, &mut theirs, deadline, &what)?;
    let decision = Hello::decode(&theirs).and_then(|remote| {
        if !uid_allowed(endpoint, peer_uid) {
            return Err(Error::PermissionDenied(format!(
                "{endpoint}: uid {peer_uid} may not connect; add it to allow_uid or widen mode"
            )));
        }
        handshake::check(&local, &remote).map(|mut p| {
            p.uid = peer_uid;
            p
        })
    });
    rendezvous::write_all(s, &[handshake::verdict_of(&decision)], deadline, &what)?;
    let mut verdict = [0u8; 1];
    rendezvous::read_exact(s, &mut verdict, deadline, &what)?;
    handshake::conclude(decision, verdict[0])
}

fn timed_out(endpoint: &Endpoint, e: Error, step: &str) -> Error {
    match e {
        Error::Timeout => Error::io(
            format!(
                "{endpoint}: {step} took longer than connect_timeout {:?}; raise connect_timeout or check the peer",
                endpoint.options().connect_timeout
            ),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ),
        e => e,
    }
}

/// Listens for shared-memory clients on an endpoint.
#[derive(Debug)]
pub struct ShmListener {
    scheme: Scheme,
    endpoint: Endpoint,
    schema: Schema,
    socket: OwnedFd,
}

impl ShmListener {
    fn bind(scheme: Scheme, endpoint: &Endpoint, schema: &Schema) -> Result<ShmListener> {
        check_scheme(scheme, endpoint)?;
        if scheme == Scheme::SysvShm {
            sysv::remove_orphans();
        }
        let name = rendezvous::socket_name(endpoint);
        let socket = sock::unix_listen(UnixName::Abstract(&name), endpoint.options().mode).map_err(|e| match e {
            ListenError::InUse => Error::io(
                format!("{endpoint}: bind(@{name}): another process already listens on this endpoint; pick another name or stop it"),
                std::io::Error::from(std::io::ErrorKind::AddrInUse),
            ),
            ListenError::NotASocket => Error::io(
                format!("{endpoint}: bind(@{name})"),
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ),
            ListenError::Os(call, e) => Error::io(format!("{endpoint}: {call}(@{name})"), e),
        })?;
        Ok(ShmListener {
            scheme,
            endpoint: endpoint.clone(),
            schema: schema.clone(),
            socket,
        })
    }

    fn serve(&self, conn: OwnedFd) -> Result<ShmChannel> {
        let ep = &self.endpoint;
        let deadline = Deadline::after(ep.options().connect_timeout);
        let (peer_pid, peer_uid) = sock::peer_credentials(conn.as_fd())
            .map_err(|e| Error::io(format!("{ep}: getsockopt(SO_PEERCRED)"), e))?;
        let peer = handshake(ep, &self.schema, &conn, peer_uid, deadline)
            .map_err(|e| timed_out(ep, e, "the handshake"))?;
        let peer = PeerInfo {
            pid: peer_pid,
            ..peer
        };
        let peer_start = process::start_time(peer_pid);
        let layout = Layout {
            ring_capacity: ring_capacity(ep),
            max_message_size: peer.max_message_size as u64,
            listener_pid: process::pid(),
            client_pid: peer_pid,
            listener_start: process::start_time(process::pid()).unwrap_or(0),
            client_start: peer_start.unwrap_or(0),
        };
        let size = layout.segment_size() as usize;
        let what = ep.to_string();
        let s = conn.as_fd();
        let (map, signal, mut created) = match self.scheme {
            Scheme::SysvShm => {
                let (created, map) = sysv::create(ep, size)?;
                write_header(&map, &layout);
                announce_wait(&map, 0, ep.wait());
                let (shmid, semid) = (created.shmid.unwrap_or(-1), created.semid.unwrap_or(-1));
                let mut msg = vec![SEGMENT_FOLLOWS];
                msg.extend_from_slice(&shmid.to_le_bytes());
                msg.extend_from_slice(&semid.to_le_bytes());
                rendezvous::write_all(s, &msg, deadline, &what)?;
                (map, Signal::Semaphores(semid), Some(created))
            }
            _ => {
                let (fd, map) = posix::create(ep, size)?;
                write_header(&map, &layout);
                announce_wait(&map, 0, ep.wait());
                loop {
                    match scm::send_fd(s, SEGMENT_FOLLOWS, fd.as_fd()) {
                        Ok(true) => break,
                        Ok(false) => {
                            if !fd::wait(s, fd::Interest::Write, deadline)? {
                                return Err(timed_out(
                                    ep,
                                    Error::Timeout,
                                    "handing over the segment",
                                ));
                            }
                        }
                        Err(e) => return Err(Error::io(format!("{ep}: sendmsg(SCM_RIGHTS)"), e)),
                    }
                }
                (map, Signal::Futex, None)
            }
        };
        let mut ack = [0u8; 1];
        rendezvous::read_exact(s, &mut ack, deadline, &what)
            .map_err(|e| timed_out(ep, e, "waiting for the client to map the segment"))?;
        if ack[0] != ACK_MAPPED {
            return Err(Error::protocol(format!(
                "{ep}: the client (pid {peer_pid}) could not map the segment"
            )));
        }
        if let Some(c) = created.as_mut() {
            // Both attached: the segment now lives exactly as long as the
            // mappings. The semaphore set passes to the connection.
            c.remove_segment();
            c.semid = None;
        }
        Ok(channel(map, layout, signal, conn, ep, 0, peer, peer_start))
    }
}

/// Announces in the segment, before it carries messages, whether side
/// `side` never sleeps (`wait=spin`): as consumer of ring `1 - side` and
/// producer of ring `side`. The peer reads it once, after the rendezvous
/// socket ordered this write before its read, and then skips the wake-up
/// check (and its fence) on every publish.
fn announce_wait(map: &Mapping, side: usize, wait: Wait) {
    let spins = u32::from(wait == Wait::Spin);
    // SAFETY: the mapping holds at least HEADER_SIZE bytes (created so, or
    // validated against the object's size) and stays mapped for the call.
    let (tx, rx) = unsafe {
        (
            segment::control(map.ptr(), side),
            segment::control(map.ptr(), 1 - side),
        )
    };
    tx.producer_spins.store(spins, Ordering::Release);
    rx.consumer_spins.store(spins, Ordering::Release);
}

fn write_header(map: &Mapping, layout: &Layout) {
    let fields = layout.encode();
    // SAFETY: the mapping was just created with segment_size >= HEADER_SIZE
    // bytes, no one else has it yet, and the source is a local array.
    unsafe { std::ptr::copy_nonoverlapping(fields.as_ptr(), map.ptr(), fields.len()) };
}

fn read_header(map: &Mapping) -> [u8; segment::FIELDS_LEN] {
    let mut fields = [0u8; segment::FIELDS_LEN];
    // SAFETY: the mapping holds at least HEADER_SIZE bytes (checked_size);
    // the header is read once, into a local.
    unsafe { std::ptr::copy_nonoverlapping(map.ptr(), fields.as_mut_ptr(), fields.len()) };
    fields
}

impl Listener for ShmListener {
    type Channel = ShmChannel;

    fn accept_until(&mut self, deadline: Deadline) -> Result<ShmChannel> {
        loop {
            let conn = sock::accept(self.socket.as_fd())
                .map_err(|e| Error::io(format!("{}: accept", self.endpoint), e))?;
            if let Some(conn) = conn {
                return self.serve(conn);
            }
            if !fd::wait(self.socket.as_fd(), fd::Interest::Read, deadline)? {
                return Err(deadline.elapsed_error());
            }
        }
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

fn connect(scheme: Scheme, ep: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
    check_scheme(scheme, ep)?;
    let deadline = Deadline::after(ep.options().connect_timeout);
    let name = rendezvous::socket_name(ep);
    let conn = sock::unix_connect(UnixName::Abstract(&name)).map_err(|e| {
        Error::io(
            format!(
                "{ep}: connect(@{name}): no listener on this endpoint; start one with listen first"
            ),
            e,
        )
    })?;
    let (listener_pid, listener_uid) = sock::peer_credentials(conn.as_fd())
        .map_err(|e| Error::io(format!("{ep}: getsockopt(SO_PEERCRED)"), e))?;
    let peer = handshake(ep, schema, &conn, listener_uid, deadline)
        .map_err(|e| timed_out(ep, e, "the handshake"))?;
    let peer = PeerInfo {
        pid: listener_pid,
        ..peer
    };
    let what = ep.to_string();
    let s = conn.as_fd();
    let attached = match scheme {
        Scheme::SysvShm => {
            let mut msg = [0u8; 9];
            rendezvous::read_exact(s, &mut msg, deadline, &what)
                .map_err(|e| timed_out(ep, e, "receiving the segment"))?;
            if msg[0] != SEGMENT_FOLLOWS {
                return Err(Error::protocol(format!(
                    "{ep}: unexpected hand-over byte {}",
                    msg[0]
                )));
            }
            let shmid = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
            let semid = i32::from_le_bytes([msg[5], msg[6], msg[7], msg[8]]);
            sysv::open(ep, shmid, semid, listener_uid).map(|m| (m, Signal::Semaphores(semid)))
        }
        _ => {
            let fd = loop {
                match scm::recv_fd(s)
                    .map_err(|e| Error::io(format!("{ep}: recvmsg(SCM_RIGHTS)"), e))?
                {
                    Received::Byte(SEGMENT_FOLLOWS, Some(fd)) => break fd,
                    Received::Byte(b, _) => {
                        return Err(Error::protocol(format!(
                            "{ep}: the listener sent hand-over byte {b} without a segment"
                        )));
                    }
                    Received::Closed => return Err(Error::Disconnected),
                    Received::WouldBlock => {
                        if !fd::wait(s, fd::Interest::Read, deadline)? {
                            return Err(timed_out(ep, Error::Timeout, "receiving the segment"));
                        }
                    }
                }
            };
            posix::open(ep, &fd, listener_uid).map(|m| (m, Signal::Futex))
        }
    };
    let checked = attached.and_then(|(map, signal)| {
        let layout = segment::validate_header(&read_header(&map), map.len() as u64, peer.max_message_size as u64)
            .map_err(|e| Error::protocol(format!("{ep}: {e}")))?;
        if layout.listener_pid != listener_pid || layout.client_pid != process::pid() {
            return Err(Error::protocol(format!(
                "{ep}: the segment names pids {} and {}, the connection is between {listener_pid} and {}",
                layout.listener_pid,
                layout.client_pid,
                process::pid()
            )));
        }
        announce_wait(&map, 1, ep.wait());
        Ok((map, signal, layout))
    });
    let ack = if checked.is_ok() { ACK_MAPPED } else { 0 };
    rendezvous::write_all(s, &[ack], deadline, &what)?;
    let (map, signal, layout) = checked?;
    let start = Some(layout.listener_start).filter(|&t| t != 0);
    Ok(channel(map, layout, signal, conn, ep, 1, peer, start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// Two channels over one anonymous mapping in this process, without a
    /// rendezvous: side 0 and side 1, plus the segment base for corrupting.
    fn pair(cap: u64, max: usize, wait: &str) -> (ShmChannel, ShmChannel, *mut u8) {
        let layout = Layout {
            ring_capacity: cap,
            max_message_size: max as u64,
            listener_pid: process::pid(),
            client_pid: process::pid(),
            listener_start: 0,
            client_start: 0,
        };
        let size = layout.segment_size() as usize;
        let ep: Endpoint = format!("shm:/unit{}?wait={wait}", process::pid())
            .parse()
            .unwrap();
        let (fd, m0) = posix::create(&ep, size).unwrap();
        write_header(&m0, &layout);
        announce_wait(&m0, 0, ep.wait());
        announce_wait(&m0, 1, ep.wait());
        let m1 = crate::sys::shm::map(fd.as_fd(), size).unwrap();
        let base = m1.ptr();
        let (a, b) = UnixStream::pair().unwrap();
        let peer = PeerInfo {
            pid: process::pid(),
            uid: process::uid(),
            max_message_size: max,
            send: ipc_core::TypeTag::BYTES,
            recv: ipc_core::TypeTag::BYTES,
        };
        let c0 = channel(
            m0,
            layout,
            Signal::Futex,
            a.into(),
            &ep,
            0,
            peer.clone(),
            None,
        );
        let c1 = channel(m1, layout, Signal::Futex, b.into(), &ep, 1, peer, None);
        (c0, c1, base)
    }

    #[test]
    fn messages_of_every_size_including_streamed() {
        for wait in ["block", "spin", "adaptive"] {
            let (mut a, mut b, _) = pair(4096, 100_000, wait);
            let t = std::thread::spawn(move || {
                for _ in 0..40 {
                    let m = b.recv().unwrap();
                    b.send(&m).unwrap();
                }
                b
            });
            for i in 0..40usize {
                let len = [0, 1, 7, 8, 9, 4088, 4089, 10_000, 99_999, 100_000][i % 10];
                let msg: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
                a.send(&msg).unwrap();
                assert_eq!(a.recv().unwrap(), msg, "len {len} wait {wait}");
            }
            let _b = t.join().unwrap();
        }
    }

    #[test]
    fn limits_deadlines_and_close() {
        let (mut a, mut b, _) = pair(4096, 5000, "adaptive");
        assert!(matches!(
            a.send(&[0; 5001]),
            Err(Error::MessageTooLarge {
                size: 5001,
                max: 5000
            })
        ));
        assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
        assert!(matches!(
            b.recv_timeout(Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
        let mut sent = 0;
        loop {
            match a.try_send(&[7; 100]) {
                Ok(()) => sent += 1,
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(matches!(
            a.send_timeout(&[7; 100], Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
        for _ in 0..sent {
            assert_eq!(b.recv().unwrap(), vec![7; 100]);
        }
        assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
        a.send(b"last").unwrap();
        drop(a);
        assert_eq!(b.recv().unwrap(), b"last");
        assert!(matches!(b.recv(), Err(Error::Disconnected)));
        assert!(matches!(b.send(b"x"), Err(Error::Disconnected)));
    }

    #[test]
    fn loan_and_in_place() {
        let (mut a, mut b, _) = pair(4096, 5000, "block");
        assert!(matches!(
            a.loan(2041),
            Err(Error::MessageTooLarge { max: 2040, .. })
        ));
        for i in 0..100usize {
            let len = [0, 1, 100, 1000, 2040][i % 5];
            let mut l = a.loan(len).unwrap();
            l.fill(i as u8);
            l.send();
            let g = b.recv_in_place().unwrap();
            assert!(g.is_in_place());
            assert_eq!(&*g, &vec![i as u8; len][..]);
        }
        // A wrapped message is copied, still whole.
        a.send(&[1; 3000]).unwrap();
        drop(b.recv_in_place().unwrap());
        a.send(&[2; 3000]).unwrap();
        let g = b.recv_in_place().unwrap();
        assert_eq!(&*g, &[2; 3000][..]);
        drop(g);
        // A dropped loan sends nothing.
        let _ = a.loan(10).unwrap();
        assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
    }

    fn poke(base: *mut u8, offset: usize, value: u64) {
        // SAFETY: tests poke inside the header page of a live mapping of
        // at least HEADER_SIZE bytes; offsets are 8-aligned.
        unsafe { std::ptr::write_volatile(base.add(offset).cast::<u64>(), value) }
    }

    #[test]
    fn corrupted_segments_are_protocol_errors() {
        let ring0_head = segment::CONTROL_OFFSET[0];
        let ring1_tail = segment::CONTROL_OFFSET[1] + 128;
        let data0 = segment::HEADER_SIZE;
        let msg = |len: u64| (u64::from(ring::KIND_MESSAGE) << 32) | len;
        type Case = (&'static str, Vec<(usize, u64)>);
        let cases: Vec<Case> = vec![
            ("head past the ring", vec![(ring0_head, 4097)]),
            ("head far away", vec![(ring0_head, u64::MAX)]),
            ("torn header", vec![(ring0_head, 3)]),
            ("unknown kind", vec![(data0, 9 << 32), (ring0_head, 8)]),
            ("too long", vec![(data0, msg(5001)), (ring0_head, 8)]),
            ("pad at start", vec![(data0, 2 << 32), (ring0_head, 8)]),
        ];
        for (what, pokes) in cases {
            let (_a, mut b, base) = pair(4096, 5000, "block");
            for (o, v) in pokes {
                poke(base, o, v);
            }
            match b.recv_timeout(Duration::from_secs(5)) {
                Err(Error::Protocol(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        // Head moving backwards after a message.
        let (mut a, mut b, base) = pair(4096, 5000, "block");
        a.send(b"12345678").unwrap();
        b.recv().unwrap();
        poke(base, ring0_head, 0);
        assert!(matches!(b.try_recv(), Err(Error::Protocol(_))));
        // A tail past our head, seen by the sender of ring 1 once its
        // cached view of the tail runs out of room and it reads the tail.
        let (_a, mut b, base) = pair(4096, 5000, "block");
        poke(base, ring1_tail, 1 << 40);
        let mut outcome = Ok(());
        for _ in 0..=4096 / 16 {
            outcome = b.try_send(b"x");
            if outcome.is_err() {
                break;
            }
        }
        assert!(matches!(outcome, Err(Error::Protocol(_))), "{outcome:?}");
        // A message body the peer claims is streaming but whose producer
        // dies: the survivor's blocking recv ends.
        let (a, mut b, base) = pair(4096, 100_000, "block");
        poke(base, data0, msg(50_000));
        poke(base, ring0_head, 4096);
        drop(a);
        assert!(matches!(b.recv(), Err(Error::Disconnected)));
    }

    /// Every interleaving of one producer step sequence and one sleeping
    /// consumer, over sequentially consistent memory: the consumer never
    /// sleeps with data published and no wake-up pending.
    #[test]
    fn wake_protocol_loses_no_wakeup() {
        // Producer: P1 head=1; P2 read sleeping; P3 if sleeping { seq+=1; wake }.
        // Consumer: C1 s=seq; C2 sleeping=1; C3 read head, if 1 { done };
        //           C4 futex_wait(seq, s): sleeps iff seq == s and no wake after.
        fn run(order: &[u8]) -> bool {
            let (mut head, mut sleeping, mut seq) = (0, 0, 0);
            let (mut saw_sleep, mut s, mut done) = (false, 0, false);
            let (mut p, mut c) = (0, 0);
            let mut woken = false;
            let mut asleep = false;
            for &who in order {
                if who == 0 {
                    p += 1;
                    match p {
                        1 => head = 1,
                        2 => saw_sleep = sleeping == 1,
                        3 if saw_sleep => {
                            seq += 1;
                            woken |= asleep;
                        }
                        _ => {}
                    }
                } else {
                    c += 1;
                    match c {
                        1 => s = seq,
                        2 => sleeping = 1,
                        3 => done = head == 1,
                        4 if !done => asleep = seq == s,
                        _ => {}
                    }
                }
            }
            // Lost: consumer asleep, never woken, data published.
            !(asleep && !woken && head == 1)
        }
        fn all(prefix: &mut Vec<u8>, p: usize, c: usize, bad: &mut usize) {
            if p == 3 && c == 4 {
                if !run(prefix) {
                    *bad += 1;
                }
                return;
            }
            if p < 3 {
                prefix.push(0);
                all(prefix, p + 1, c, bad);
                prefix.pop();
            }
            if c < 4 {
                prefix.push(1);
                all(prefix, p, c + 1, bad);
                prefix.pop();
            }
        }
        let mut bad = 0;
        all(&mut Vec::new(), 0, 0, &mut bad);
        assert_eq!(bad, 0);
    }

    /// Every reachable state of a producer publishing two messages and a
    /// consumer receiving them with the real wait loop (cached head first,
    /// then W1-W5), over sequentially consistent memory, with and without
    /// the consumer's connect-time announcement that it never sleeps (the
    /// producer then skips P2-P3). No state leaves the consumer blocked
    /// with data unread. A producer that skips the check although the
    /// consumer may sleep must be caught, which shows the model can see a
    /// lost wake-up.
    #[test]
    fn wake_protocol_with_spin_announcement_loses_no_wakeup() {
        use std::collections::HashSet;
        const MSGS: u8 = 2;
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        struct St {
            head: u8,
            sleeping: bool,
            seq: u8,
            /// Producer: next step (0 P1, 1 P2, 2 P3) and message number.
            p_pc: u8,
            p_msg: u8,
            p_saw: bool,
            /// Consumer: next step (0 check cache/poll, 1 W1, 2 W2, 3 W4,
            /// 4 asleep in W5), its snapshot of seq, messages consumed and
            /// its cached head.
            c_pc: u8,
            c_s: u8,
            tail: u8,
            cached: u8,
        }
        /// (consumer may sleep, producer checks the flag): the successors.
        fn next(st: St, consumer_sleeps: bool, producer_checks: bool) -> Vec<St> {
            let mut out = Vec::new();
            if st.p_msg < MSGS {
                let mut n = st;
                match st.p_pc {
                    0 => {
                        n.head += 1;
                        n.p_pc = if producer_checks { 1 } else { 0 };
                        if !producer_checks {
                            n.p_msg += 1;
                        }
                    }
                    1 => {
                        n.p_saw = st.sleeping;
                        n.p_pc = 2;
                    }
                    _ => {
                        if st.p_saw {
                            n.seq += 1;
                        }
                        n.p_pc = 0;
                        n.p_msg += 1;
                    }
                }
                out.push(n);
            }
            if st.tail < MSGS {
                let mut n = st;
                match st.c_pc {
                    0 if st.cached > st.tail => n.tail += 1,
                    0 => {
                        // ready(): reload the shared head.
                        n.cached = st.head;
                        if st.head == st.tail && consumer_sleeps {
                            n.c_pc = 1;
                        }
                    }
                    1 => {
                        n.c_s = st.seq;
                        n.c_pc = 2;
                    }
                    2 => {
                        n.sleeping = true;
                        n.c_pc = 3;
                    }
                    3 => {
                        n.cached = st.head;
                        if st.head > st.tail {
                            n.sleeping = false;
                            n.c_pc = 0;
                        } else {
                            n.c_pc = 4;
                        }
                    }
                    // FUTEX_WAIT returns once seq differs from the snapshot.
                    _ if st.seq != st.c_s => {
                        n.sleeping = false;
                        n.c_pc = 0;
                    }
                    _ => {}
                }
                if n != st {
                    out.push(n);
                }
            }
            out
        }
        /// Reachable states where nothing can move and a message is unread.
        fn lost(consumer_sleeps: bool, producer_checks: bool) -> usize {
            let start = St {
                head: 0,
                sleeping: false,
                seq: 0,
                p_pc: 0,
                p_msg: 0,
                p_saw: false,
                c_pc: 0,
                c_s: 0,
                tail: 0,
                cached: 0,
            };
            let mut seen = HashSet::from([start]);
            let mut todo = vec![start];
            let mut stuck = 0;
            while let Some(st) = todo.pop() {
                let succ = next(st, consumer_sleeps, producer_checks);
                if succ.is_empty() && st.tail < MSGS {
                    stuck += 1;
                }
                for n in succ {
                    if seen.insert(n) {
                        todo.push(n);
                    }
                }
            }
            stuck
        }
        // wait=block|adaptive: the consumer may sleep, the producer checks.
        assert_eq!(lost(true, true), 0);
        // wait=spin announced: the consumer never sleeps, no check.
        assert_eq!(lost(false, false), 0);
        // Skipping the check for a consumer that may sleep loses wake-ups.
        assert!(lost(true, false) > 0);
    }
}

//! Steps 3 and 4 of the rendezvous (`docs/wire-format.md`): the listener
//! creates the connection's segment, writes its header and hands it over
//! (a descriptor for `shm:`, the id for `sysv-shm:`); the client maps it,
//! validates the header once and acknowledges.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use ipc_core::{Deadline, Endpoint, Error, PeerInfo, Result, Scheme, Wait};

use super::channel::{Mapped, Side};
use super::rendezvous::{read_exact, write_all};
use super::segment::{self, Layout};
use super::shared::Doorbells;
use super::{posix, ring, sysv};
use crate::conn::fail;
use crate::sys::Context;
use crate::sys::event::{self, Event};
use crate::sys::fd::{self, Interest};
use crate::sys::process;
use crate::sys::scm::{self, Received, ReceivedMany};
use crate::sys::shm::Mapping;

/// Smallest and largest default ring.
const DEFAULT_RING_MIN: u64 = 1 << 20;
const DEFAULT_RING_MAX: u64 = 4 << 20;
/// Step 3's first byte on `shm:`: the segment's descriptor is attached.
/// On `sysv-shm:`, the first byte of the hand-over of ipcx before it woke
/// through futexes ([`SYSV_SEGMENT_FOLLOWS`]): a segment id and a
/// semaphore set id, which this side refuses.
const SEGMENT_FOLLOWS: u8 = 1;
/// Step 3's first byte on `sysv-shm:`: the segment id follows, and both
/// sides wake each other through the futex words in it. An older client,
/// which expects [`SEGMENT_FOLLOWS`] and a semaphore set, refuses it.
const SYSV_SEGMENT_FOLLOWS: u8 = 3;
/// Bytes of step 3 on `sysv-shm:`: the first byte, the `i32` segment id
/// and four zero bytes, as long as the older hand-over (whose last four
/// bytes were a semaphore set id), so an older client reads all of it and
/// refuses the first byte at once rather than waiting out its timeout.
const SYSV_HANDOVER_LEN: usize = 9;
/// Step 4: the client mapped and validated the segment.
const ACK_MAPPED: u8 = 1;
/// Step 5: the sender's two doorbells (eventfds) are attached.
const DOORBELLS: u8 = 2;

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

/// The listener's side: creates the segment for the client `peer` (whose
/// process started at `peer_start`), hands it over on `sock` and waits for
/// the client's acknowledgement, all by `deadline`.
///
/// # Errors
/// [`Error::Io`] when the segment cannot be created, what the socket
/// reports ([`Error::ConnectTimeout`] at the deadline), [`Error::Protocol`]
/// when the client could not map it, or (`sysv-shm:`) hung up before
/// acknowledging it: it died, gave up, or runs an older ipcx.
pub(super) fn offer(
    scheme: Scheme,
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    peer: &PeerInfo,
    peer_start: Option<u64>,
    deadline: Deadline,
) -> Result<Mapped> {
    let layout = Layout {
        ring_capacity: ring_capacity(ep),
        max_message_size: peer.max_message_size as u64,
        listener_pid: process::pid(),
        client_pid: peer.pid,
        listener_start: process::start_time(process::pid()).unwrap_or(0),
        client_start: peer_start.unwrap_or(0),
    };
    let step = "handing over the segment";
    let (map, pending) = match scheme {
        Scheme::SysvShm => offer_sysv(ep, sock, &layout, deadline),
        _ => offer_posix(ep, sock, &layout, deadline),
    }
    .map_err(|e| fail::in_step(ep, step, e))?;
    let mut ack = [0u8; 1];
    read_exact(sock, &mut ack, deadline, &ep.to_string()).map_err(|e| match e {
        // An older client reads the hand-over, refuses its first byte and
        // hangs up without a word.
        Error::Disconnected if scheme == Scheme::SysvShm => Error::protocol(format!(
            "{ep}: the client (pid {}) hung up instead of acknowledging the segment: it died, gave up (its connect timeout ran out), or runs an ipcx older than this one's sysv-shm: hand-over (futex wake-ups, no semaphore set); run the same ipcx version on both sides",
            peer.pid
        )),
        e => fail::in_step(ep, "waiting for the client to map the segment", e),
    })?;
    if ack[0] != ACK_MAPPED {
        return Err(Error::protocol(format!(
            "{ep}: the client (pid {}) could not map the segment",
            peer.pid
        )));
    }
    let doorbells = exchange_doorbells(ep, sock, deadline)?;
    if let Some(created) = pending {
        // Both attached: the segment now lives exactly as long as the
        // mappings.
        created.attached();
    }
    Ok(Mapped {
        map,
        layout,
        doorbells,
    })
}

/// Step 5, on both sides once the segment is mapped: sends this side's
/// doorbells (an eventfd its receiver waits on for data, one its sender
/// waits on for space) and receives the peer's, which this side rings when
/// the peer announces an async wait (`docs/shm-architecture.md`). Nothing
/// is read from the socket after this, so it becomes readable only when
/// the peer is gone.
///
/// # Errors
/// What the socket reports ([`Error::ConnectTimeout`] at the deadline),
/// [`Error::Protocol`] when the peer sends something else than two
/// non-blocking eventfds.
fn exchange_doorbells(
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    deadline: Deadline,
) -> Result<Doorbells> {
    let step = "exchanging doorbells";
    let inner = || -> Result<Doorbells> {
        let event = || Event::new().map_err(|e| Error::io(format!("{ep}: eventfd"), e));
        let (data, space) = (event()?, event()?);
        loop {
            match scm::send_fds(sock, DOORBELLS, &[data.as_fd(), space.as_fd()]) {
                Ok(true) => break,
                Ok(false) => {
                    if !fd::wait(sock, Interest::Write, deadline).context(|| "poll".into())? {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) => return Err(Error::io(format!("{ep}: sendmsg(SCM_RIGHTS)"), e)),
            }
        }
        let fds = loop {
            match scm::recv_fds(sock)
                .map_err(|e| Error::io(format!("{ep}: recvmsg(SCM_RIGHTS)"), e))?
            {
                ReceivedMany::Byte(DOORBELLS, fds) if fds.len() == 2 => break fds,
                ReceivedMany::Byte(b, fds) => {
                    return Err(Error::protocol(format!(
                        "{ep}: the peer sent byte {b} with {} descriptors for its doorbells",
                        fds.len()
                    )));
                }
                ReceivedMany::Closed => return Err(Error::Disconnected),
                ReceivedMany::WouldBlock => {
                    if !fd::wait(sock, Interest::Read, deadline).context(|| "poll".into())? {
                        return Err(Error::Timeout);
                    }
                }
            }
        };
        for fd in &fds {
            let ok = event::is_nonblocking_eventfd(fd.as_fd())
                .map_err(|e| Error::io(format!("{ep}: checking a doorbell"), e))?;
            if !ok {
                return Err(Error::protocol(format!(
                    "{ep}: the peer's doorbell is not a non-blocking eventfd"
                )));
            }
        }
        let [peer_data, peer_space]: [OwnedFd; 2] = fds.try_into().map_err(|_| {
            Error::protocol(format!("{ep}: the peer sent the wrong number of doorbells"))
        })?;
        Ok(Doorbells {
            data,
            space,
            peer_data,
            peer_space,
        })
    };
    inner().map_err(|e| fail::in_step(ep, step, e))
}

/// A System V segment, sent as its id. Until the client acknowledged it,
/// the segment stays [`sysv::Created`] (removed if anything fails).
fn offer_sysv(
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    layout: &Layout,
    deadline: Deadline,
) -> Result<(Mapping, Option<sysv::Created>)> {
    let (created, map) = sysv::create(ep, layout.segment_size() as usize)?;
    write_header(&map, layout);
    announce_wait(&map, Side::Listener, ep.wait());
    write_all(
        sock,
        &sysv_handover(created.id()),
        deadline,
        &ep.to_string(),
    )?;
    Ok((map, Some(created)))
}

/// A POSIX segment, sent as a descriptor.
fn offer_posix(
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    layout: &Layout,
    deadline: Deadline,
) -> Result<(Mapping, Option<sysv::Created>)> {
    let (fd, map) = posix::create(ep, layout.segment_size() as usize)?;
    write_header(&map, layout);
    announce_wait(&map, Side::Listener, ep.wait());
    loop {
        match scm::send_fd(sock, SEGMENT_FOLLOWS, fd.as_fd()) {
            Ok(true) => return Ok((map, None)),
            Ok(false) => {
                if !fd::wait(sock, Interest::Write, deadline).context(|| "poll".into())? {
                    return Err(Error::Timeout);
                }
            }
            Err(e) => return Err(Error::io(format!("{ep}: sendmsg(SCM_RIGHTS)"), e)),
        }
    }
}

/// The client's side: receives the segment from the listener `peer` (pid
/// and uid from the kernel) on `sock`, maps and validates it, and
/// acknowledges, all by `deadline`.
///
/// # Errors
/// What the socket reports ([`Error::ConnectTimeout`] at the deadline),
/// [`Error::PermissionDenied`] for a segment the listener's user does not
/// own, [`Error::Protocol`] for a bad hand-over or header.
pub(super) fn take(
    scheme: Scheme,
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    peer: &PeerInfo,
    deadline: Deadline,
) -> Result<Mapped> {
    let step = "receiving the segment";
    let attached = match scheme {
        Scheme::SysvShm => take_sysv(ep, sock, peer.uid, deadline),
        _ => take_posix(ep, sock, peer.uid, deadline),
    }
    .map_err(|e| fail::in_step(ep, step, e))?;
    let checked = attached.and_then(|map| {
        let layout = check_header(ep, &map, peer)?;
        announce_wait(&map, Side::Client, ep.wait());
        Ok((map, layout))
    });
    let ack = if checked.is_ok() { ACK_MAPPED } else { 0 };
    write_all(sock, &[ack], deadline, &ep.to_string())
        .map_err(|e| fail::in_step(ep, "acknowledging the segment", e))?;
    let (map, layout) = checked?;
    let doorbells = exchange_doorbells(ep, sock, deadline)?;
    Ok(Mapped {
        map,
        layout,
        doorbells,
    })
}

/// Step 3 on `sysv-shm:` for the segment `shmid`: the version byte, the
/// id, and four bytes the reader ignores (where an older ipcx put its
/// semaphore set's id, so both forms are as long).
fn sysv_handover(shmid: i32) -> [u8; SYSV_HANDOVER_LEN] {
    let mut msg = [0u8; SYSV_HANDOVER_LEN];
    msg[0] = SYSV_SEGMENT_FOLLOWS;
    msg[1..5].copy_from_slice(&shmid.to_le_bytes());
    msg
}

/// Reads step 3 on `sysv-shm:`: the segment id, or why the hand-over is
/// refused (a listener of an older ipcx, which hands over a semaphore set
/// too, or a byte of no version).
fn parse_sysv_handover(ep: &Endpoint, msg: &[u8; SYSV_HANDOVER_LEN]) -> Result<i32> {
    match msg[0] {
        SYSV_SEGMENT_FOLLOWS => Ok(i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]])),
        SEGMENT_FOLLOWS => Err(Error::protocol(format!(
            "{ep}: the listener runs an older ipcx, whose sysv-shm: hands over a System V semaphore set for wake-ups; this one wakes through futexes in the segment: run the same ipcx version on both sides"
        ))),
        b => Err(Error::protocol(format!(
            "{ep}: unexpected hand-over byte {b} (expected {SYSV_SEGMENT_FOLLOWS}); run the same ipcx version on both sides"
        ))),
    }
}

/// The id of a System V segment; the outer error ends the exchange, the
/// inner one is acknowledged as a failure to map.
fn take_sysv(
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    listener_uid: u32,
    deadline: Deadline,
) -> Result<Result<Mapping>> {
    let mut msg = [0u8; SYSV_HANDOVER_LEN];
    read_exact(sock, &mut msg, deadline, &ep.to_string())?;
    let shmid = parse_sysv_handover(ep, &msg)?;
    Ok(sysv::open(ep, shmid, listener_uid))
}

/// A POSIX segment's descriptor; errors as for [`take_sysv`].
fn take_posix(
    ep: &Endpoint,
    sock: BorrowedFd<'_>,
    listener_uid: u32,
    deadline: Deadline,
) -> Result<Result<Mapping>> {
    let fd = loop {
        match scm::recv_fd(sock).map_err(|e| Error::io(format!("{ep}: recvmsg(SCM_RIGHTS)"), e))? {
            Received::Byte(SEGMENT_FOLLOWS, Some(fd)) => break fd,
            Received::Byte(b, _) => {
                return Err(Error::protocol(format!(
                    "{ep}: the listener sent hand-over byte {b} without a segment"
                )));
            }
            Received::Closed => return Err(Error::Disconnected),
            Received::WouldBlock => {
                if !fd::wait(sock, Interest::Read, deadline).context(|| "poll".into())? {
                    return Err(Error::Timeout);
                }
            }
        }
    };
    Ok(posix::open(ep, &fd, listener_uid))
}

/// Reads the header of `map` once and checks it against the connection
/// with the listener `peer`.
fn check_header(ep: &Endpoint, map: &Mapping, peer: &PeerInfo) -> Result<Layout> {
    let max = peer.max_message_size as u64;
    let layout = segment::validate_header(&read_header(map), map.len() as u64, max)
        .map_err(|e| refused(ep, peer, e))?;
    if layout.listener_pid != peer.pid || layout.client_pid != process::pid() {
        return Err(refused(
            ep,
            peer,
            format!(
                "the segment names pids {} and {}, the connection is between {} and {}",
                layout.listener_pid,
                layout.client_pid,
                peer.pid,
                process::pid()
            ),
        ));
    }
    Ok(layout)
}

/// A segment header the listener got wrong: logged, and a protocol error.
fn refused(ep: &Endpoint, peer: &PeerInfo, why: String) -> Error {
    tracing::warn!(endpoint = %ep, peer.pid, peer.uid, why, "refused the listener's segment");
    Error::protocol(format!("{ep}: {why}"))
}

/// Announces in the segment, before it carries messages, whether `side`
/// never sleeps (`wait=spin`): as producer of its ring and consumer of the
/// other. The peer reads it once, after the rendezvous
/// socket ordered this write before its read, and then skips the wake-up
/// check (and its fence) on every publish.
pub(super) fn announce_wait(map: &Mapping, side: Side, wait: Wait) {
    let spins = u32::from(wait == Wait::Spin);
    let side = side.ring();
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

/// Writes the header of a segment no one else has yet.
pub(super) fn write_header(map: &Mapping, layout: &Layout) {
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;

    /// What an older listener sent in step 3 of `sysv-shm:`: byte 1, the
    /// segment id and a semaphore set id.
    fn older_handover(shmid: i32, semid: i32) -> Vec<u8> {
        let mut msg = vec![SEGMENT_FOLLOWS];
        msg.extend_from_slice(&shmid.to_le_bytes());
        msg.extend_from_slice(&semid.to_le_bytes());
        msg
    }

    /// A client reading an older listener's hand-over (a semaphore set
    /// beside the segment) refuses it with an error that says to run the
    /// same version, before touching either id.
    #[test]
    fn older_listeners_handover_is_refused() {
        let ep: Endpoint = "sysv-shm:/tmp/handover-test".parse().unwrap();
        let (mut listener, client) = UnixStream::pair().unwrap();
        client.set_nonblocking(true).unwrap();
        listener.write_all(&older_handover(7, 8)).unwrap();
        let deadline = Deadline::after(Duration::from_secs(30));
        match take_sysv(&ep, client.as_fd(), process::uid(), deadline) {
            Err(Error::Protocol(m)) => {
                assert!(m.contains("older ipcx"), "{m}");
                assert!(m.contains("run the same ipcx version"), "{m}");
            }
            other => panic!("an older hand-over was not refused: {other:?}"),
        }
    }

    /// An older client reads nine bytes in step 3 and refuses any first
    /// byte but 1: this side's hand-over is exactly that long (so it is
    /// not left waiting for more) and starts with another byte. A client
    /// of this version reads it back.
    #[test]
    fn handover_is_refused_by_older_clients_and_read_by_this_one() {
        let ep: Endpoint = "sysv-shm:/tmp/handover-test".parse().unwrap();
        let msg = sysv_handover(0x1234_5678);
        assert_eq!(msg.len(), older_handover(0, 0).len());
        assert_ne!(msg[0], SEGMENT_FOLLOWS);
        assert_eq!(parse_sysv_handover(&ep, &msg).unwrap(), 0x1234_5678);
        let mut odd = msg;
        odd[0] = 9;
        assert!(matches!(
            parse_sysv_handover(&ep, &odd),
            Err(Error::Protocol(m)) if m.contains("unexpected hand-over byte 9")
        ));
    }
}

//! An event counter (`eventfd(2)`) that one thread signals and another
//! waits on beside other descriptors.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

/// A pollable flag: readable once [`Event::notify`] was called.
#[derive(Debug)]
pub struct Event(EventFd);

impl Event {
    /// A new, unsignalled event.
    ///
    /// # Errors
    /// The error of `eventfd(2)`.
    pub fn new() -> std::io::Result<Event> {
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map(Event)
            .map_err(Into::into)
    }

    /// Signals the event; it stays readable.
    pub fn notify(&self) {
        // EAGAIN only when the counter would overflow: it is signalled then.
        let _ = self.0.write(1);
    }
}

impl AsFd for Event {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Adds one to the count of the eventfd `fd` (a peer's doorbell), never
/// waiting: a full counter (`EAGAIN`) is already signalled, and any other
/// failure leaves the waiter to its own checks.
pub fn ring(fd: BorrowedFd<'_>) {
    let _ = nix::unistd::write(fd, &1u64.to_ne_bytes());
}

/// Whether `fd` is a non-blocking eventfd: what a doorbell received from a
/// peer must be before this process writes to it (a write to a blocking
/// descriptor could stall the sender).
///
/// # Errors
/// The error of `readlink(2)` or `fcntl(2)`.
pub fn is_nonblocking_eventfd(fd: BorrowedFd<'_>) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if link.as_os_str() != "anon_inode:[eventfd]" {
        return Ok(false);
    }
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    Ok(nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK))
}

/// Resets the count of the eventfd `fd` (non-blocking); what it read is
/// of no interest, only that the next wait starts afresh.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    let _ = nix::unistd::read(fd, &mut buf);
}

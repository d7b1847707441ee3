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

/// Resets the count of the eventfd `fd` (non-blocking); what it read is
/// of no interest, only that the next wait starts afresh.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    let _ = nix::unistd::read(fd, &mut buf);
}

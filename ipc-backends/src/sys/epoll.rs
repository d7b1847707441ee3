//! An epoll set ([epoll(7)]): one thread waits on many descriptors at
//! once, each registered with a token that names it.
//!
//! [epoll(7)]: https://man7.org/linux/man-pages/man7/epoll.7.html

use std::io;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// An epoll set of descriptors watched for readability.
#[derive(Debug)]
pub struct Set(Epoll);

impl Set {
    /// A new, empty set (close-on-exec).
    ///
    /// # Errors
    /// The error of `epoll_create1(2)`.
    pub fn new() -> io::Result<Set> {
        Ok(Set(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?))
    }

    /// Watches `fd` for readability, reported with `token`.
    ///
    /// # Errors
    /// The error of `epoll_ctl(EPOLL_CTL_ADD)`.
    pub fn add(&self, fd: impl AsFd, token: u64) -> io::Result<()> {
        Ok(self
            .0
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))?)
    }

    /// Stops watching `fd`.
    ///
    /// # Errors
    /// The error of `epoll_ctl(EPOLL_CTL_DEL)`.
    pub fn remove(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(self.0.delete(fd)?)
    }

    /// Waits without a timeout until at least one descriptor is ready and
    /// appends the tokens of the ready ones to `tokens`.
    ///
    /// # Errors
    /// The error of `epoll_wait(2)`, other than `EINTR`.
    pub fn wait(&self, tokens: &mut Vec<u64>) -> io::Result<()> {
        let mut events = [EpollEvent::empty(); 32];
        loop {
            match self.0.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => {
                    tokens.extend(events[..n].iter().map(EpollEvent::data));
                    return Ok(());
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::event::Event;

    #[test]
    fn reports_the_ready_token() {
        let set = Set::new().unwrap();
        let (a, b) = (Event::new().unwrap(), Event::new().unwrap());
        set.add(&a, 1).unwrap();
        set.add(&b, 2).unwrap();
        b.notify();
        let mut tokens = Vec::new();
        set.wait(&mut tokens).unwrap();
        assert_eq!(tokens, [2]);
        set.remove(&b).unwrap();
        a.notify();
        tokens.clear();
        set.wait(&mut tokens).unwrap();
        assert_eq!(tokens, [1]);
    }
}

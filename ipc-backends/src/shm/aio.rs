//! What the async layer waits on for a shared-memory half.
//!
//! A ring has no descriptor: today an async half is served by a bridge
//! thread (`crate::aio::bridge`).

use crate::aio::{Pollable, Source};
use crate::conn::link::Link;

use super::{ShmReceiver, ShmSender};

impl Pollable for ShmSender {
    fn source(&self) -> Option<Source<'_>> {
        None
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl Pollable for ShmReceiver {
    fn source(&self) -> Option<Source<'_>> {
        None
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

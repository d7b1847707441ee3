//! Queue reassembly: a [`FragmentReceiver`] over an in-memory queue that
//! yields the fuzzer's units.

use std::collections::VecDeque;
use std::time::Duration;

use ipc_core::handshake::{Hello, Schema};
use ipc_core::{Deadline, Error, Receiver, Result};

use super::{Input, capacity_bound};
use crate::conn::handshake::Limit;
use crate::fragment::{Taken, UnitSink, UnitSource};

/// Unit length byte that stands for "the queue is empty for now".
const EMPTY: u8 = 0xff;
/// Unit length byte that stands for "the queue was removed".
const REMOVED: u8 = 0xfe;

/// Input: a flags byte (bit 0: the peer was gone before the channel was
/// made; bit 1: run the queue handshake first; bits 2-3: how to receive),
/// this side's `max_message_size` as a `u16`, then units, each a length
/// byte and that many bytes (or `EMPTY`, `REMOVED`). After the last
/// unit the queue stays empty and the peer has exited.
///
/// The receiver must deliver messages within the limit with buffers
/// within it, end with `Disconnected` (and stay there) once the queue is
/// done, and never loop without consuming a unit.
pub fn fragment(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let max = usize::from(input.u16());
    let mut units = VecDeque::new();
    while let Some(len) = input.next() {
        units.push_back(match len {
            EMPTY => Unit::Empty,
            REMOVED => Unit::Removed,
            n => Unit::Data(input.take(usize::from(n)).to_vec()),
        });
    }
    let count = units.len();
    let (mut tx, mut rx) = crate::fragment::halves(
        Discard,
        Queue {
            units,
            last: Vec::new(),
        },
        crate::fragment::MIN_UNIT,
    );
    rx.dead = flags & 1 != 0;
    let style = (flags >> 2) & 3;
    let max = if flags & 2 == 0 {
        rx.set_max(max);
        max
    } else {
        let local = Hello::new(&Schema::bytes(), 1, 1, max);
        let deadline = match style {
            0 => Deadline::Never,
            _ => Deadline::Now,
        };
        match super::handshake(&mut tx, &mut rx, &local, deadline, |_| Ok(())) {
            Ok(info) => {
                assert!(info.max_message_size <= max);
                info.max_message_size
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    };
    let mut buf = Vec::new();
    for call in 0.. {
        assert!(call <= count + 1, "a receive consumed no unit");
        let r = match (style, call % 3) {
            (0, _) | (3, 0) => rx.recv_into(&mut buf),
            (1, _) | (3, 1) => rx.try_recv().map(|m| buf = m),
            _ => rx.recv_timeout(Duration::from_secs(10)).map(|m| buf = m),
        };
        match r {
            Ok(()) => {
                assert!(buf.len() <= max);
                assert!(
                    buf.capacity() <= capacity_bound(max, flags & 2 != 0),
                    "{}",
                    buf.capacity()
                );
            }
            Err(Error::Disconnected) => break,
            Err(Error::Protocol(_) | Error::WouldBlock | Error::Timeout) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

#[derive(Debug)]
enum Unit {
    Data(Vec<u8>),
    Empty,
    Removed,
}

/// A queue holding the fuzzer's units, whose peer exits after the last.
#[derive(Debug)]
struct Queue {
    units: VecDeque<Unit>,
    last: Vec<u8>,
}

impl UnitSource for Queue {
    fn take(&mut self, _block: bool) -> Result<Taken> {
        Ok(match self.units.pop_front() {
            Some(Unit::Data(d)) => {
                self.last = d;
                Taken::Unit(self.last.len())
            }
            Some(Unit::Empty) | None => Taken::Empty,
            Some(Unit::Removed) => Taken::Removed,
        })
    }

    fn unit(&mut self, len: usize) -> &[u8] {
        &self.last[..len]
    }

    fn peer_exited(&self) -> Result<bool> {
        Ok(self.units.is_empty())
    }

    fn wait(&mut self, deadline: Deadline) -> Result<()> {
        // Nothing arrives while waiting: an unbounded wait just looks again.
        match deadline {
            Deadline::Never => Ok(()),
            d => Err(d.elapsed_error()),
        }
    }
}

/// Where this side's handshake units go.
#[derive(Debug)]
struct Discard;

impl UnitSink for Discard {
    fn put(&mut self, _head: &[u8], _data: &[u8], _deadline: Deadline) -> Result<()> {
        Ok(())
    }
}

//! The typed layer over a transport written with `ipc-core` alone: an
//! in-memory channel that lends with the copying loans. No backend, no I/O.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ipc_core::loan::{CopyInPlace, CopyLoan};
use ipc_core::typed::{TypedChannel, schema};
use ipc_core::{
    Channel, Deadline, Duplex, Error, InPlaceReceiver, IpcMessage, LoanSender, PeerInfo, Receiver,
    Result, Sender,
};
use serde::{Deserialize, Serialize};

type Queue = Arc<Mutex<VecDeque<Vec<u8>>>>;

/// One direction of an in-memory connection.
struct Memory {
    queue: Queue,
    max: usize,
}

impl Sender for Memory {
    fn send_until(&mut self, msg: &[u8], _deadline: Deadline) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge {
                size: msg.len(),
                max: self.max,
            });
        }
        self.queue.lock().expect("queue").push_back(msg.to_vec());
        Ok(())
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl Receiver for Memory {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let msg = self.queue.lock().expect("queue").pop_front();
        let msg = msg.ok_or_else(|| deadline.elapsed_error())?;
        buf.clear();
        buf.extend_from_slice(&msg);
        Ok(())
    }
}

impl LoanSender for Memory {
    type Loan<'a> = CopyLoan<'a, Memory>;

    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<CopyLoan<'_, Memory>> {
        CopyLoan::new(self, len, deadline)
    }
}

impl InPlaceReceiver for Memory {
    type InPlace<'a> = CopyInPlace;

    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<CopyInPlace> {
        CopyInPlace::recv(self, deadline)
    }
}

type MemoryChannel = Duplex<Memory, Memory>;

/// Two connected ends, as a handshake announcing `Out`/`In` would leave them.
fn pair<Out: IpcMessage, In: IpcMessage>() -> (MemoryChannel, MemoryChannel) {
    let (ab, ba) = (Queue::default(), Queue::default());
    let s = schema::<Out, In>();
    let end = |tx: &Queue, rx: &Queue, send, recv| Duplex {
        sender: Memory {
            queue: Arc::clone(tx),
            max: 1024,
        },
        receiver: Memory {
            queue: Arc::clone(rx),
            max: 1024,
        },
        peer: PeerInfo {
            pid: 1,
            uid: 0,
            max_message_size: 1024,
            send,
            recv,
        },
    };
    (
        end(&ab, &ba, s.recv.clone(), s.send.clone()),
        end(&ba, &ab, s.send, s.recv),
    )
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
#[ipc(name = "test.Order")]
struct Order {
    id: u64,
    item: String,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
#[ipc(name = "test.Ack")]
struct Ack {
    id: u64,
}

/// Plain data with invalid bit patterns (`bool`).
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "test.Tick")]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    live: bool,
    _pad: [u8; 7],
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        price: seq as f64 * 0.25,
        live: seq % 2 == 0,
        _pad: [0; 7],
    }
}

/// A generic server, as a library depending on `ipc-core` alone writes it.
fn acknowledge<C: Channel>(channel: &mut TypedChannel<Ack, Order, C>) -> Result<Order> {
    let order = channel.recv()?;
    channel.send(&Ack { id: order.id })?;
    Ok(order)
}

#[test]
fn typed_messages_cross_any_channel() {
    let (client, server) = pair::<Order, Ack>();
    let mut client = TypedChannel::<Order, Ack, _>::new(client);
    let mut server = TypedChannel::<Ack, Order, _>::new(server);
    assert_eq!(server.peer().send, Order::type_tag());

    let order = Order {
        id: 7,
        item: "tea".into(),
    };
    client.send(&order).expect("send");
    assert_eq!(acknowledge(&mut server).expect("serve"), order);
    assert_eq!(client.recv().expect("recv"), Ack { id: 7 });
    assert!(matches!(client.try_recv(), Err(Error::WouldBlock)));

    let (mut tx, mut rx) = client.split();
    tx.send(&order).expect("send half");
    acknowledge(&mut server).expect("serve");
    assert_eq!(rx.recv().expect("recv half"), Ack { id: 7 });
    assert_eq!(tx.max_message_size(), 1024);
}

#[test]
fn loans_and_samples_copy_once_elsewhere() {
    let (a, b) = pair::<Tick, Tick>();
    let mut a = TypedChannel::<Tick, Tick, _>::new(a);
    let (mut tx, mut rx) = TypedChannel::<Tick, Tick, _>::new(b).split();
    for seq in 0..10 {
        let mut loan = a.loan().expect("loan");
        assert!(!loan.is_in_place());
        loan.write(tick(seq));
        loan.send().expect("send");
        let sample = rx.recv_sample().expect("sample");
        assert!(!sample.is_in_place());
        assert_eq!(*sample, tick(seq));

        let mut loan = tx.loan().expect("loan");
        loan.write(tick(seq + 100));
        loan.commit().expect("commit");
        assert_eq!(a.recv_sample().expect("sample").seq, seq + 100);
    }
    // A dropped loan sends nothing.
    drop(a.loan().expect("loan"));
    assert!(matches!(
        rx.recv_sample_until(Deadline::Now),
        Err(Error::WouldBlock)
    ));
}

#[test]
fn bad_samples_are_decode_errors_and_the_next_is_intact() {
    let (a, b) = pair::<Tick, Tick>();
    let mut raw = a;
    let mut typed = TypedChannel::<Tick, Tick, _>::new(b);

    raw.send(&[1, 2, 3]).expect("send");
    let mut invalid = tick(1).wire_bytes().expect("zero-copy").to_vec();
    invalid[16] = 2; // `live`
    raw.send(&invalid).expect("send");
    raw.send(tick(3).wire_bytes().expect("zero-copy"))
        .expect("send");

    for what in ["length", "bit pattern"] {
        match typed.recv_sample() {
            Err(Error::Decode { type_name, .. }) => assert_eq!(type_name, "test.Tick", "{what}"),
            Ok(s) => panic!("a bad {what} was accepted as {:?}", *s),
            Err(e) => panic!("a bad {what}: {e}"),
        }
    }
    assert_eq!(*typed.recv_sample().expect("next"), tick(3));
    assert!(matches!(
        typed.get_mut().loan(2000),
        Err(Error::MessageTooLarge {
            size: 2000,
            max: 1024
        })
    ));
}

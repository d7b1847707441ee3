//! The run-time choice of transport: enums over every backend, chosen by
//! an [`Endpoint`]'s scheme. Dispatch is a `match` per call (static, no
//! `Box<dyn>`), as crossbeam-channel does over its flavors.
//!
//! Adding a backend is one line in [`with_backends!`].

use ipc_core::{
    Channel, Deadline, Endpoint, Error, Listener, PeerInfo, Receiver, Result, Schema, Scheme,
    Sender, Transport,
};

/// Calls `$m!` with the list of built backends: `Variant => Type, Scheme;`.
macro_rules! with_backends {
    ($m:ident) => {
        $m! {
            Unix => crate::unix::Unix, Scheme::Unix;
            Tcp => crate::tcp::Tcp, Scheme::Tcp;
            Pipe => crate::pipe::Pipe, Scheme::Pipe;
            Fifo => crate::fifo::Fifo, Scheme::Fifo;
            Mq => crate::mq::Mq, Scheme::Mq;
            SysvMq => crate::sysv_mq::SysvMq, Scheme::SysvMq;
            Shm => crate::shm::Shm, Scheme::Shm;
            SysvShm => crate::shm::SysvShm, Scheme::SysvShm;
        }
    };
}

macro_rules! define_any {
    ($($variant:ident => $t:ty, $scheme:path;)*) => {
        /// A connected channel of any transport.
        #[derive(Debug)]
        pub enum AnyChannel {
            $(
                #[doc = concat!("A `", stringify!($variant), "` channel.")]
                $variant(<$t as Transport>::Channel),
            )*
        }

        /// The sending half of an [`AnyChannel`].
        #[derive(Debug)]
        pub enum AnySender {
            $(
                #[doc = concat!("A `", stringify!($variant), "` sender.")]
                $variant(<<$t as Transport>::Channel as Channel>::Sender),
            )*
        }

        /// The receiving half of an [`AnyChannel`].
        #[derive(Debug)]
        pub enum AnyReceiver {
            $(
                #[doc = concat!("A `", stringify!($variant), "` receiver.")]
                $variant(<<$t as Transport>::Channel as Channel>::Receiver),
            )*
        }

        /// A listener of any transport.
        #[derive(Debug)]
        pub enum AnyListener {
            $(
                #[doc = concat!("A `", stringify!($variant), "` listener.")]
                $variant(<$t as Transport>::Listener),
            )*
        }

        impl Sender for AnyChannel {
            #[inline]
            fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
                match self { $(AnyChannel::$variant(c) => c.send_until(msg, deadline),)* }
            }
            fn max_message_size(&self) -> usize {
                match self { $(AnyChannel::$variant(c) => c.max_message_size(),)* }
            }
        }

        impl Receiver for AnyChannel {
            #[inline]
            fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
                match self { $(AnyChannel::$variant(c) => c.recv_until(buf, deadline),)* }
            }
        }

        impl Channel for AnyChannel {
            type Sender = AnySender;
            type Receiver = AnyReceiver;
            fn split(self) -> (AnySender, AnyReceiver) {
                match self {
                    $(AnyChannel::$variant(c) => {
                        let (s, r) = c.split();
                        (AnySender::$variant(s), AnyReceiver::$variant(r))
                    })*
                }
            }
            fn peer(&self) -> &PeerInfo {
                match self { $(AnyChannel::$variant(c) => c.peer(),)* }
            }
        }

        impl Sender for AnySender {
            #[inline]
            fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
                match self { $(AnySender::$variant(c) => c.send_until(msg, deadline),)* }
            }
            fn max_message_size(&self) -> usize {
                match self { $(AnySender::$variant(c) => c.max_message_size(),)* }
            }
        }

        impl Receiver for AnyReceiver {
            #[inline]
            fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
                match self { $(AnyReceiver::$variant(c) => c.recv_until(buf, deadline),)* }
            }
        }

        impl Listener for AnyListener {
            type Channel = AnyChannel;
            fn accept_until(&mut self, deadline: Deadline) -> Result<AnyChannel> {
                match self {
                    $(AnyListener::$variant(l) => l.accept_until(deadline).map(AnyChannel::$variant),)*
                }
            }
            fn endpoint(&self) -> &Endpoint {
                match self { $(AnyListener::$variant(l) => l.endpoint(),)* }
            }
        }

        /// Listens on `endpoint` with the transport its scheme names.
        ///
        /// # Errors
        /// [`Error::Unsupported`] for a scheme this build lacks; otherwise
        /// the transport's errors.
        pub fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<AnyListener> {
            match endpoint.scheme() {
                $($scheme => <$t as Transport>::listen(endpoint, schema).map(AnyListener::$variant),)*
                #[allow(unreachable_patterns)]
                other => Err(unsupported(other)),
            }
        }

        /// Connects to `endpoint` with the transport its scheme names.
        ///
        /// # Errors
        /// [`Error::Unsupported`] for a scheme this build lacks; otherwise
        /// the transport's errors.
        pub fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<AnyChannel> {
            match endpoint.scheme() {
                $($scheme => <$t as Transport>::connect(endpoint, schema).map(AnyChannel::$variant),)*
                #[allow(unreachable_patterns)]
                other => Err(unsupported(other)),
            }
        }

        /// The schemes this build supports.
        pub const SUPPORTED: &[Scheme] = &[$($scheme),*];
    };
}

with_backends!(define_any);

fn unsupported(scheme: Scheme) -> Error {
    let have: Vec<&str> = SUPPORTED.iter().map(|s| s.as_str()).collect();
    Error::Unsupported {
        scheme,
        reason: format!(
            "this version of ipcx does not implement the {scheme} transport yet; available: {}",
            have.join(", ")
        ),
    }
}

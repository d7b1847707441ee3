//! `ipc-channel`: an `IpcOneShotServer` bootstraps a pair of
//! `IpcSender<Vec<u8>>`/`IpcReceiver<Vec<u8>>` channels (Unix sockets on
//! Linux) between the two processes; each message is a `Vec<u8>`, as its
//! typed API carries it.

use ::ipc_channel::ipc::{self, IpcOneShotServer, IpcReceiver, IpcSender};

use crate::bench::measure::Link;

/// The table's footnote for this row.
pub const NOTE: &str = "ipc-channel: IpcSender<Vec<u8>>/IpcReceiver<Vec<u8>> (serialized messages over Unix sockets on Linux), bootstrapped by an IpcOneShotServer; raw = the unix row's raw baseline, fixed-size write/read on a Unix stream socket";

/// What the client hands the server: the server's sender and receiver.
type Boot = (IpcSender<Vec<u8>>, IpcReceiver<Vec<u8>>);

struct Channel {
    tx: IpcSender<Vec<u8>>,
    rx: IpcReceiver<Vec<u8>>,
}

impl Link for Channel {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx
            .send(msg.to_vec())
            .map_err(|e| format!("ipc-channel send: {e:?}"))
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        *buf = self
            .rx
            .recv()
            .map_err(|e| format!("ipc-channel recv: {e:?}"))?;
        Ok(())
    }
}

/// Creates the one-shot server, announces its name, accepts the client's
/// channel ends.
pub fn server(_: &str, _size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let (boot, name) =
        IpcOneShotServer::<Boot>::new().map_err(|e| format!("ipc-channel one-shot server: {e}"))?;
    ready(&name);
    let (_, (tx, rx)) = boot
        .accept()
        .map_err(|e| format!("ipc-channel accept: {e:?}"))?;
    Ok(Box::new(Channel { tx, rx }))
}

/// Creates both channels and sends the server its ends.
pub fn client(name: &str) -> Result<Box<dyn Link>, String> {
    let boot: IpcSender<Boot> = IpcSender::connect(name.to_string())
        .map_err(|e| format!("ipc-channel connect {name}: {e}"))?;
    let (to_server, server_rx) =
        ipc::channel::<Vec<u8>>().map_err(|e| format!("ipc-channel channel: {e}"))?;
    let (server_tx, from_server) =
        ipc::channel::<Vec<u8>>().map_err(|e| format!("ipc-channel channel: {e}"))?;
    boot.send((server_tx, server_rx))
        .map_err(|e| format!("ipc-channel bootstrap: {e:?}"))?;
    Ok(Box::new(Channel {
        tx: to_server,
        rx: from_server,
    }))
}

//! Clients that are not ipcx peers: they reach a listener's rendezvous at
//! the kernel level, with libc, and then say nothing or say garbage. The
//! formats they fake are the transports' wire formats (the module docs of
//! `ipc-backends/src/{fifo,mq,sysv_mq}.rs` and `shm/rendezvous.rs`), written
//! out here so the test does not lean on ipcx to build them.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;

use ipcx::{Endpoint, Scheme};

/// Connection request numbers these clients put in FIFO and queue names,
/// far from those of ipcx's own clients in this process.
const FIRST_N: u32 = 0xB000_0000;

/// A length prefix no frame may have.
const HUGE_FRAME: [u8; 4] = [0xFF; 4];

/// Bytes that decode as nothing.
const GARBAGE: [u8; 16] = [0xFF; 16];

/// Everything the bad clients of one endpoint hold and created: the
/// connections stay open until drop, and the FIFOs and queues they
/// created are removed then (also when the test fails).
#[derive(Default)]
pub struct BadClients {
    /// Descriptors held open: sockets, FIFO ends.
    held: Vec<OwnedFd>,
    /// FIFOs and queue names (POSIX) to remove.
    fifos: Vec<String>,
    mq_names: Vec<String>,
    /// System V queue ids to remove.
    msqids: Vec<i32>,
    /// What each client did, for failure messages.
    pub described: Vec<String>,
}

impl Drop for BadClients {
    fn drop(&mut self) {
        self.held.clear();
        for p in &self.fifos {
            let _ = std::fs::remove_file(p);
        }
        for n in &self.mq_names {
            if let Ok(c) = CString::new(n.as_str()) {
                // SAFETY: `c` is a NUL-terminated string alive for the call.
                unsafe { libc::mq_unlink(c.as_ptr()) };
            }
        }
        for &id in &self.msqids {
            // SAFETY: IPC_RMID takes no buffer; a queue already removed
            // only makes the call fail.
            unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// Opens `endpoint`'s rendezvous with three silent clients and with
/// malformed ones, as suits its transport, and keeps them all open.
/// `endpoint` is the listener's (for `tcp:` with the real port).
///
/// # Panics
/// When a kernel call fails: the listener is not where it should be.
#[track_caller]
pub fn open(endpoint: &Endpoint) -> BadClients {
    let mut c = BadClients::default();
    let addr = endpoint.address();
    match endpoint.scheme() {
        Scheme::Unix => {
            let connect = || match endpoint.unix_address() {
                Some(ipcx::core::endpoint::UnixAddress::Abstract(n)) => abstract_connect(n),
                _ => UnixStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}")),
            };
            stream_clients(&mut c, connect, "stream");
        }
        Scheme::Tcp => {
            let connect = || {
                std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
            };
            stream_clients(&mut c, connect, "stream");
        }
        Scheme::Shm | Scheme::SysvShm => {
            let name = shm_socket_name(endpoint);
            stream_clients(&mut c, || abstract_connect(&name), "shm");
        }
        Scheme::Fifo => fifo_clients(&mut c, addr),
        Scheme::Mq => mq_clients(&mut c, addr),
        Scheme::SysvMq => sysv_mq_clients(&mut c, addr),
        #[cfg(feature = "nats")]
        Scheme::Nats => nats_clients(&mut c, addr),
        other => panic!("no bad clients for {other}"),
    }
    c
}

/// A connected stream socket of either family, held as a descriptor.
struct UnixOrTcp(OwnedFd);

impl From<UnixStream> for UnixOrTcp {
    fn from(s: UnixStream) -> Self {
        UnixOrTcp(s.into())
    }
}

impl From<std::net::TcpStream> for UnixOrTcp {
    fn from(s: std::net::TcpStream) -> Self {
        UnixOrTcp(s.into())
    }
}

impl UnixOrTcp {
    fn write_all(&self, bytes: &[u8]) {
        let fd = self.0.try_clone().expect("dup");
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes).expect("write to the listener");
    }
}

#[track_caller]
fn abstract_connect(name: &str) -> UnixStream {
    use std::os::linux::net::SocketAddrExt;
    let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .unwrap_or_else(|e| panic!("@{name}: {e}"));
    UnixStream::connect_addr(&a).unwrap_or_else(|e| panic!("connect @{name}: {e}"))
}

/// Sockets: three that connect and say nothing; one whose first frame
/// announces a length no frame may have; one whose hello is garbage.
/// `shm` rendezvous frame hellos with a 2-byte length, streams with 4.
fn stream_clients<S: Into<UnixOrTcp>>(c: &mut BadClients, connect: impl Fn() -> S, kind: &str) {
    for i in 0..3 {
        c.held.push(connect().into().0);
        c.described.push(format!("silent client {i}"));
    }
    let (huge, garbage_hello): (&[u8], Vec<u8>) = if kind == "shm" {
        (&HUGE_FRAME[..2], [&[16u8, 0][..], &GARBAGE].concat())
    } else {
        (&HUGE_FRAME, [&16u32.to_le_bytes()[..], &GARBAGE].concat())
    };
    let s = connect().into();
    s.write_all(huge);
    c.held.push(s.0);
    c.described.push("a hello length of 0xFF…".into());
    let s = connect().into();
    s.write_all(&garbage_hello);
    c.held.push(s.0);
    c.described.push("a 16-byte garbage hello".into());
}

#[track_caller]
fn mkfifo(path: &str) {
    let c = CString::new(path).expect("path");
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        panic!("mkfifo {path}: {}", std::io::Error::last_os_error());
    }
}

#[track_caller]
fn open_nonblocking(path: &str, write: bool) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"))
}

/// A 16-byte connection request: magic, version 1, two reserved bytes,
/// then two 32-bit fields (pid and number, or two queue ids).
fn request(magic: &[u8; 4], a: u32, b: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..4].copy_from_slice(magic);
    r[4..6].copy_from_slice(&1u16.to_le_bytes());
    r[8..12].copy_from_slice(&a.to_le_bytes());
    r[12..16].copy_from_slice(&b.to_le_bytes());
    r
}

/// FIFOs: one writer that writes nothing; three well-formed requests
/// whose client then stays silent (two hold their `down` FIFO open for
/// reading as a real client does, one never opens its FIFOs); 16 bytes
/// of garbage.
fn fifo_clients(c: &mut BadClients, path: &str) {
    let pid = std::process::id();
    let rendezvous = open_nonblocking(path, true);
    c.held.push(open_nonblocking(path, true).into());
    c.described.push("a writer that writes nothing".into());
    for i in 0..3 {
        fifo_request(c, &rendezvous, path, pid, FIRST_N + i, i < 2);
        c.described.push(format!("silent requester {i}"));
    }
    (&rendezvous).write_all(&GARBAGE).expect("write garbage");
    c.described.push("a 16-byte garbage request".into());
    c.held.push(rendezvous.into());
}

/// A well-formed FIFO connection request from process `pid` (one that has
/// exited), its FIFOs made and its `down` held open for reading as a real
/// client holds it, and no hello ever: the listener's handshake for it can
/// only learn that the requester is gone.
#[track_caller]
pub fn fifo_request_from(path: &str, pid: u32) -> BadClients {
    let mut c = BadClients::default();
    let rendezvous = open_nonblocking(path, true);
    fifo_request(&mut c, &rendezvous, path, pid, FIRST_N + 100, true);
    c.described
        .push(format!("a request from process {pid}, gone"));
    c
}

/// Makes the FIFO pair of request `n` of process `pid` beside `path`
/// (holding `down` open for reading when `hold_down`, as a real client
/// does) and writes the request into `rendezvous`.
#[track_caller]
fn fifo_request(
    c: &mut BadClients,
    rendezvous: &std::fs::File,
    path: &str,
    pid: u32,
    n: u32,
    hold_down: bool,
) {
    let (up, down) = (
        format!("{path}.{pid}.{n}.up"),
        format!("{path}.{pid}.{n}.down"),
    );
    for p in [&up, &down] {
        mkfifo(p);
        c.fifos.push(p.clone());
    }
    if hold_down {
        c.held.push(open_nonblocking(&down, false).into());
    }
    (&*rendezvous)
        .write_all(&request(b"IPCF", pid, n))
        .expect("write a request");
}

/// POSIX queues: three well-formed requests naming queues this test
/// created and never uses, and a garbage request.
fn mq_clients(c: &mut BadClients, address: &str) {
    let rendezvous = format!("/ipcx.{}", address.trim_start_matches('/'));
    let pid = std::process::id();
    let mut requests = Vec::new();
    for i in 0..3 {
        let n = FIRST_N + i;
        for dir in ["up", "down"] {
            let name = format!("{rendezvous}.{pid}.{n}.{dir}");
            mq_create(&name);
            c.mq_names.push(name);
        }
        requests.push(request(b"IPCQ", pid, n));
        c.described.push(format!("silent requester {i}"));
    }
    requests.push(GARBAGE);
    c.described.push("a 16-byte garbage request".into());
    let name = CString::new(rendezvous.as_str()).expect("name");
    // SAFETY: `name` is NUL-terminated and alive; without O_CREAT no more
    // arguments are read.
    let q = unsafe { libc::mq_open(name.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK) };
    assert!(
        q != -1,
        "mq_open {rendezvous}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a descriptor mq_open just returned, owned by nobody else
    // (on Linux a queue descriptor is a file descriptor, closed by close).
    let q = unsafe { OwnedFd::from_raw_fd(q) };
    for r in &requests {
        // SAFETY: `r` is 16 readable bytes; `q` is an open queue descriptor.
        let sent = unsafe { libc::mq_send(q.as_raw_fd(), r.as_ptr().cast(), r.len(), 0) };
        assert!(
            sent == 0,
            "mq_send {rendezvous}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Creates a POSIX queue of one message of 4160 bytes (ipcx's unit), and
/// closes it: it lives on under its name.
#[track_caller]
fn mq_create(name: &str) {
    let c = CString::new(name).expect("name");
    // SAFETY: mq_attr is a plain C struct for which all-zero is valid.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_maxmsg = 1;
    attr.mq_msgsize = 4160;
    // SAFETY: `c` is NUL-terminated and alive; with O_CREAT mq_open reads
    // a mode_t and a pointer to a live mq_attr, both given.
    let q = unsafe {
        libc::mq_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600 as libc::mode_t,
            &attr as *const libc::mq_attr,
        )
    };
    assert!(
        q != -1,
        "mq_open {name}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a descriptor mq_open just returned; closing it ends our use.
    unsafe { libc::mq_close(q) };
}

#[repr(C)]
struct Msg {
    mtype: libc::c_long,
    text: [u8; 16],
}

/// System V queues: three well-formed requests naming private queues
/// this test created and never uses, and a garbage request.
fn sysv_mq_clients(c: &mut BadClients, path: &str) {
    let p = CString::new(path).expect("path");
    // SAFETY: `p` is a NUL-terminated string alive for the call.
    let key = unsafe { libc::ftok(p.as_ptr(), libc::c_int::from(b'x')) };
    assert!(
        key != -1,
        "ftok {path}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: msgget takes integers only.
    let rendezvous = unsafe { libc::msgget(key, 0) };
    assert!(
        rendezvous != -1,
        "msgget {path}: {}",
        std::io::Error::last_os_error()
    );
    let mut requests = Vec::new();
    for i in 0..3 {
        let mut ids = [0i32; 2];
        for id in &mut ids {
            // SAFETY: msgget takes integers only.
            *id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
            assert!(*id != -1, "msgget: {}", std::io::Error::last_os_error());
            c.msqids.push(*id);
        }
        requests.push(request(b"IPCS", ids[0] as u32, ids[1] as u32));
        c.described.push(format!("silent requester {i}"));
    }
    requests.push(GARBAGE);
    c.described.push("a 16-byte garbage request".into());
    for r in requests {
        let m = Msg { mtype: 1, text: r };
        // SAFETY: `m` is a live msgbuf (type, then 16 bytes of text).
        let sent = unsafe {
            libc::msgsnd(
                rendezvous,
                (&m as *const Msg).cast(),
                m.text.len(),
                libc::IPC_NOWAIT,
            )
        };
        assert!(
            sent == 0,
            "msgsnd {path}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The abstract socket a `shm:`/`sysv-shm:` listener binds: `ipcx.shm.NAME`,
/// `ipcx.sysv-shm.ABSOLUTE_PATH` (short names only; the rule for long
/// ones is in `shm/rendezvous.rs`).
fn shm_socket_name(endpoint: &Endpoint) -> String {
    let address = match endpoint.scheme() {
        Scheme::SysvShm => std::path::absolute(endpoint.address())
            .expect("absolute path")
            .to_string_lossy()
            .into_owned(),
        _ => endpoint.address().trim_start_matches('/').to_string(),
    };
    let name = format!("ipcx.{}.{address}", endpoint.scheme());
    assert!(name.len() <= 100, "{name}: too long for this helper");
    name
}

/// Over NATS (`docs/wire-format.md`): a client that sends a valid connect
/// request and then nothing, one whose request carries no valid id, one
/// with no reply subject, and one that sends a garbage hello.
#[cfg(feature = "nats")]
fn nats_clients(c: &mut BadClients, addr: &str) {
    use super::nats::{RawClient, connect_payload, raw_id};
    let (server, name) = addr.split_once('/').expect("HOST:PORT/NAME");
    let connect = format!("ipcx.{name}.connect");

    let mut silent = RawClient::connect(server);
    let id = raw_id(1);
    silent.sub(&format!("ipcx.{name}.c.{id}.down"), 1);
    silent.sub("_INBOX.bad.silent", 2);
    silent.publish(&connect, Some("_INBOX.bad.silent"), &connect_payload(&id));
    c.held.push(silent.into_fd());
    c.described
        .push("nats: connect request, then silence".into());

    let mut bad_id = RawClient::connect(server);
    bad_id.publish(&connect, Some("_INBOX.bad.id"), b"not an id!");
    bad_id.publish(&connect, None, &connect_payload(&raw_id(2)));
    c.held.push(bad_id.into_fd());
    c.described
        .push("nats: requests with a bad id and without a reply subject".into());

    let mut garbage = RawClient::connect(server);
    let id = raw_id(3);
    garbage.sub("_INBOX.bad.garbage", 1);
    garbage.publish(&connect, Some("_INBOX.bad.garbage"), &connect_payload(&id));
    let reply = garbage.next_message();
    assert_eq!(reply, b"ok", "the listener's reply to a connect request");
    let mut hello = vec![1u8];
    hello.extend_from_slice(&GARBAGE);
    garbage.publish(&format!("ipcx.{name}.c.{id}.up"), None, &hello);
    c.held.push(garbage.into_fd());
    c.described.push("nats: a garbage hello".into());
}

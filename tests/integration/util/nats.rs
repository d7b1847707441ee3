//! `nats-server` processes for the `nats://` tests: each [`NatsServer`] is
//! a server of its own on a free loopback port, killed (and its JetStream
//! directory removed) on drop. The tests never use a server they did not
//! start, so nothing has to be running beforehand; they need only the
//! binary (Debian: `apt-get install nats-server`, which `.ci/run` does).
//! When it is missing, a test fails with that instruction: it is never
//! skipped.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A `nats-server` process on a loopback port.
pub struct NatsServer {
    child: Child,
    port: u16,
    store: Option<PathBuf>,
    /// The arguments beyond address, port and store, for [`NatsServer::restart`].
    extra: Vec<String>,
}

/// The server binary: `$NATS_SERVER`, else `nats-server` on the `PATH`,
/// else Debian's `/usr/sbin/nats-server`.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        let p = PathBuf::from("/usr/sbin/nats-server");
        p.is_file().then_some(p)
    });
    found.unwrap_or_else(|| {
        panic!(
            "the nats:// tests need the nats-server binary, which was not found on the PATH or at /usr/sbin/nats-server. \
             Install it (Debian/Ubuntu: `sudo apt-get install -y nats-server`; or `bash .ci/run`, which installs it), \
             or name it with NATS_SERVER=/path/to/nats-server. The tests start their own servers on loopback ports."
        )
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

impl NatsServer {
    /// A core NATS server (no JetStream).
    pub fn start() -> NatsServer {
        NatsServer::start_with(false, &[])
    }

    /// A server with JetStream, its store in a fresh directory.
    pub fn start_jetstream() -> NatsServer {
        NatsServer::start_with(true, &[])
    }

    /// `n` servers clustered on loopback (each with routes to all the
    /// others), core NATS only.
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
        NatsServer::cluster(n, false)
    }

    /// `n` JetStream servers clustered on loopback, each with a store of
    /// its own. The cluster takes a moment to elect its JetStream leader
    /// after this returns: clients retry what fails meanwhile.
    pub fn start_jetstream_cluster(n: usize) -> Vec<NatsServer> {
        NatsServer::cluster(n, true)
    }

    fn cluster(n: usize, jetstream: bool) -> Vec<NatsServer> {
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let name = super::unique(if jetstream { "jscluster" } else { "cluster" });
        (0..n)
            .map(|i| {
                let routes: Vec<String> = cluster_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                    .collect();
                let mut args = vec![
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{}", cluster_ports[i]),
                    "--routes".to_string(),
                    routes.join(","),
                    "--cluster_name".to_string(),
                    name.clone(),
                ];
                if jetstream {
                    // JetStream's meta group tells its members by name.
                    args.extend(["--server_name".to_string(), format!("{name}n{i}")]);
                }
                NatsServer::start_with(jetstream, &args)
            })
            .collect()
    }

    /// A core NATS server that speaks only TLS, with the certificate and
    /// key of `certs` in its configuration file's `tls` block.
    pub fn start_tls(certs: &TestCerts) -> NatsServer {
        let conf = certs.dir.join("server.conf");
        std::fs::write(
            &conf,
            format!(
                "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
                certs.dir.join("server.pem").display(),
                certs.dir.join("server.key").display()
            ),
        )
        .expect("write the server configuration");
        NatsServer::start_with(false, &["-c".to_string(), conf.display().to_string()])
    }

    /// A server (with JetStream when `jetstream`) with the configuration
    /// file `dir/server.conf`, written here with `conf` (authorization,
    /// operator mode, …). `dir` is the caller's to remove.
    pub fn start_with_config(dir: &std::path::Path, conf: &str, jetstream: bool) -> NatsServer {
        let path = dir.join("server.conf");
        std::fs::write(&path, conf).expect("write the server configuration");
        NatsServer::start_with(jetstream, &["-c".to_string(), path.display().to_string()])
    }

    /// A JetStream server that admits only `user` with `password`.
    pub fn start_with_user(user: &str, password: &str) -> NatsServer {
        NatsServer::start_with(
            true,
            &[
                "--user".to_string(),
                user.to_string(),
                "--pass".to_string(),
                password.to_string(),
            ],
        )
    }

    /// Stops the server — gracefully (SIGTERM: it writes its state out)
    /// or not (SIGKILL) — and starts it again on the same port with the
    /// same store directory and arguments.
    pub fn restart(&mut self, graceful: bool) {
        if graceful {
            // SAFETY: kill takes plain values; the pid is our live child's.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
        } else {
            self.kill();
        }
        let mut last = String::new();
        for _ in 0..50 {
            let mut cmd = NatsServer::command(self.port, self.store.as_deref(), &self.extra);
            self.child = cmd.spawn().expect("restart nats-server");
            match self.wait_ready() {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not restart: {last}");
    }

    fn command(port: u16, store: Option<&std::path::Path>, extra: &[String]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(d) = store {
            cmd.arg("-js").arg("-sd").arg(d);
        }
        cmd.args(extra);
        // SAFETY: prctl is async-signal-safe and touches only this
        // child: it is killed if the thread that started it dies, so
        // a test process that is killed leaves no server behind.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    fn start_with(jetstream: bool, extra: &[String]) -> NatsServer {
        let bin = binary();
        let mut last = String::new();
        // The port was free a moment ago; another process may take it
        // before the server binds it, so try a few.
        for _ in 0..5 {
            let port = free_port();
            let store = jetstream.then(|| {
                let d = std::env::temp_dir().join(super::unique("natsjs"));
                std::fs::create_dir_all(&d).expect("create the JetStream store directory");
                d
            });
            let mut cmd = Command::new(&bin);
            cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if let Some(d) = &store {
                cmd.arg("-js").arg("-sd").arg(d);
            }
            cmd.args(extra);
            // SAFETY: prctl is async-signal-safe and touches only this
            // child: it is killed if the thread that started it dies, so
            // a test process that is killed leaves no server behind.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut server = NatsServer {
                child,
                port,
                store,
                extra: extra.to_vec(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("nats-server did not start: {last}");
    }

    /// Waits until the server sends its INFO line to a client.
    fn wait_ready(&mut self) -> Result<(), String> {
        let until = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(e) = self.child.stderr.take() {
                    for line in BufReader::new(e).lines().map_while(Result::ok).take(20) {
                        err.push_str(&line);
                        err.push('\n');
                    }
                }
                return Err(format!("it exited ({status}): {err}"));
            }
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    // Its log goes nowhere from now on (a full pipe would
                    // stall it).
                    if let Some(e) = self.child.stderr.take() {
                        std::thread::spawn(move || {
                            let mut sink = std::io::sink();
                            let _ = std::io::copy(&mut BufReader::new(e), &mut sink);
                        });
                    }
                    return Ok(());
                }
            }
            if Instant::now() > until {
                return Err(format!(
                    "port {} not ready within {START_LIMIT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `nats://127.0.0.1:PORT/NAME` with a unique NAME from `tag`.
    pub fn endpoint(&self, tag: &str) -> String {
        format!("nats://{}/{}", self.address(), super::unique(tag))
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(d) = self.store.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The address of the server this test process shares among its
/// `nats://` cases (which use names of their own), started on first use
/// by a thread that lives as long as the process: the server dies with the
/// process, however it ends.
pub fn shared() -> &'static str {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nats-server".into())
            .spawn(move || {
                let server = std::panic::catch_unwind(NatsServer::start);
                match server {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.address()));
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(p) => {
                        let why = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        let _ = tx.send(Err(why));
                    }
                }
            })
            .expect("spawn the nats-server thread");
        match rx.recv().expect("the nats-server thread") {
            Ok(a) => a,
            Err(why) => panic!("{why}"),
        }
    })
}

/// An endpoint on the shared server with a unique name and `options`. In a
/// re-executed peer (which takes its endpoint from the environment) no
/// server is started.
pub fn endpoint(tag: &str, options: &str) -> String {
    let sep = if options.is_empty() { "" } else { "?" };
    if super::is_peer() {
        return format!("nats://127.0.0.1:4222/peer{sep}{options}");
    }
    format!("nats://{}/{}{sep}{options}", shared(), super::unique(tag))
}

/// A NATS client written here, on the server's text protocol, for clients
/// that are not ipcx peers (silent, malformed, or breaking the frame
/// rules on purpose).
pub struct RawClient {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects to `address` (`HOST:PORT`) and says CONNECT.
    pub fn connect(address: &str) -> RawClient {
        use std::io::Write;
        let stream =
            TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut info = String::new();
        reader.read_line(&mut info).expect("INFO");
        assert!(info.starts_with("INFO"), "the server said {info:?}");
        let mut c = RawClient { stream, reader };
        c.stream
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\n")
            .expect("CONNECT");
        c
    }

    /// Subscribes to `subject` with subscription id `sid`.
    pub fn sub(&mut self, subject: &str, sid: u32) {
        use std::io::Write;
        write!(self.stream, "SUB {subject} {sid}\r\n").expect("SUB");
    }

    /// Publishes `payload` on `subject`, with a reply subject if given.
    pub fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        use std::io::Write;
        let head = match reply {
            Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()),
            None => format!("PUB {subject} {}\r\n", payload.len()),
        };
        let mut m = head.into_bytes();
        m.extend_from_slice(payload);
        m.extend_from_slice(b"\r\n");
        self.stream.write_all(&m).expect("PUB");
    }

    /// The payload of the next message delivered to this client (PINGs are
    /// answered on the way).
    pub fn next_message(&mut self) -> Vec<u8> {
        use std::io::{Read, Write};
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("read from the server");
            assert!(n > 0, "the server closed the connection");
            let line = line.trim_end();
            if line == "PING" {
                self.stream.write_all(b"PONG\r\n").expect("PONG");
                continue;
            }
            if let Some(rest) = line.strip_prefix("MSG ") {
                let len: usize = rest
                    .rsplit(' ')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or_else(|| panic!("MSG line {line:?}"));
                let mut body = vec![0; len + 2];
                self.reader.read_exact(&mut body).expect("MSG body");
                body.truncate(len);
                return body;
            }
            if line.starts_with("HMSG") {
                // A status (no responders): report it as empty.
                let len: usize = line
                    .rsplit(' ')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len + 2];
                self.reader.read_exact(&mut body).expect("HMSG body");
                return Vec::new();
            }
            // +OK, PONG, INFO updates: nothing to do.
        }
    }

    /// The connection, to hold it open.
    pub fn into_fd(self) -> std::os::fd::OwnedFd {
        std::os::fd::OwnedFd::from(self.stream)
    }
}

/// A connection id as ipcx clients draw them (22 letters and digits).
pub fn raw_id(n: u32) -> String {
    format!(
        "BAD{:019}",
        u64::from(n) + u64::from(std::process::id()) * 1000
    )
}

/// The version of the `nats://` protocol ipcx speaks
/// (`docs/wire-format.md`): the first byte of a connect request.
pub const PROTOCOL_VERSION: u8 = 1;

/// The payload of a connect request for connection `id`: the version
/// byte, then the id.
pub fn connect_payload(id: &str) -> Vec<u8> {
    let mut v = vec![PROTOCOL_VERSION];
    v.extend_from_slice(id.as_bytes());
    v
}

/// A CA and a server certificate it signed (for `127.0.0.1`), made with
/// `openssl` in a fresh directory, removed on drop.
pub struct TestCerts {
    /// `ca.pem`, `server.pem`, `server.key` and the server's configuration.
    pub dir: PathBuf,
}

impl TestCerts {
    /// Generates the CA and the server certificate.
    pub fn generate() -> TestCerts {
        let dir = std::env::temp_dir().join(super::unique("natstls"));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let certs = TestCerts { dir };
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&certs.dir)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| {
                    panic!("the TLS tests need openssl (apt-get install openssl): {e}")
                });
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            &[
                &["req", "-x509", "-nodes", "-days", "2"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-subj",
                    "/CN=ipcx test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-nodes"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            certs.dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .expect("write the extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]);
        certs
    }

    /// The CA's certificate (PEM).
    pub fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

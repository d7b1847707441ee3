//! `ipcx doctor`: the kernel limits each transport depends on, what they
//! allow, and what to change.

/// The kernel message size the queue transports use by default.
const QUEUE_UNIT: u64 = ipcx::backends::fragment::DEFAULT_UNIT as u64;

/// Bytes a `nats://` DATA frame adds to a message (kind and sequence
/// number, `docs/wire-format.md`); the transport's own constant exists
/// only in builds with the `nats` feature.
const NATS_FRAME_HEADER: u64 = 9;

/// Options of `ipcx doctor`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  ipcx doctor\n  ipcx doctor --nats 127.0.0.1:4222")]
pub struct Args {
    /// Also check a NATS server (HOST:PORT, or a nats:// endpoint): that
    /// it is reachable, its version and max_payload, whether JetStream is
    /// enabled on the server and for the account (its account
    /// information); with an endpoint that names credentials (creds=,
    /// nkey=, user=), that the server accepts them. Fails when it cannot be
    /// reached or refuses them.
    #[arg(long, value_name = "HOST:PORT")]
    pub nats: Option<String>,
}

fn show(v: Option<u64>) -> String {
    v.map_or("unreadable".into(), |v| v.to_string())
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 40 {
        "unlimited".into()
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

fn supported(scheme: &str) -> &'static str {
    if ipcx::backends::any::SUPPORTED
        .iter()
        .any(|s| s.as_str() == scheme)
    {
        ""
    } else {
        " (not in this build)"
    }
}

/// Runs `ipcx doctor`.
///
/// # Errors
/// None: unreadable limits are reported as such.
pub fn main(args: Args) -> Result<(), String> {
    let mut o = String::new();
    let line = |o: &mut String, k: &str, v: String, src: &str| {
        o.push_str(&format!("  {k:<22} {v:<24} {src}\n"));
    };

    let l = ipcx::backends::limits();
    let (msg_max, msgsize_max, queues_max) = (l.mq_msg_max, l.mq_msgsize_max, l.mq_queues_max);
    let (rl_mq, mq_mounted) = (l.rlimit_msgqueue, l.mqueue_mounted);
    let (msgmax, msgmnb, msgmni) = (l.msgmax, l.msgmnb, l.msgmni);
    let (shmmax, shmall, shmmni, sem) = (l.shmmax, l.shmall, l.shmmni, l.sem);
    let (page, devshm) = (l.page_size, l.dev_shm);
    let (pipe_buf, pipe_max, somaxconn) = (l.pipe_buf, l.pipe_max_size, l.somaxconn);

    o.push_str("Kernel limits\n");
    line(
        &mut o,
        "mq msg_max",
        show(msg_max),
        "/proc/sys/fs/mqueue/msg_max",
    );
    line(
        &mut o,
        "mq msgsize_max",
        show(msgsize_max),
        "/proc/sys/fs/mqueue/msgsize_max",
    );
    line(
        &mut o,
        "mq queues_max",
        show(queues_max),
        "/proc/sys/fs/mqueue/queues_max",
    );
    line(
        &mut o,
        "RLIMIT_MSGQUEUE",
        rl_mq.map_or("unreadable".into(), |v| format!("{v} ({})", mib(v))),
        "ulimit -q (bytes per user)",
    );
    line(
        &mut o,
        "/dev/mqueue mounted",
        (if mq_mounted { "yes" } else { "no" }).into(),
        "/proc/mounts",
    );
    line(&mut o, "msgmax", show(msgmax), "/proc/sys/kernel/msgmax");
    line(&mut o, "msgmnb", show(msgmnb), "/proc/sys/kernel/msgmnb");
    line(&mut o, "msgmni", show(msgmni), "/proc/sys/kernel/msgmni");
    line(&mut o, "shmmax", show(shmmax), "/proc/sys/kernel/shmmax");
    line(
        &mut o,
        "shmall",
        shmall.map_or("unreadable".into(), |v| format!("{v} pages")),
        "/proc/sys/kernel/shmall",
    );
    line(&mut o, "shmmni", show(shmmni), "/proc/sys/kernel/shmmni");
    let in_use = l.sem_in_use;
    for (i, name) in ["SEMMSL", "SEMMNS", "SEMOPM", "SEMMNI"].iter().enumerate() {
        // How much of the system-wide limits is taken now.
        let used = match (i, in_use) {
            (1, Some((_, sems))) => format!(" ({sems} in use)"),
            (3, Some((sets, _))) => format!(" ({sets} in use)"),
            _ => String::new(),
        };
        line(
            &mut o,
            name,
            format!("{}{used}", show(sem[i])),
            "/proc/sys/kernel/sem (sysctl -w kernel.sem=\"SEMMSL SEMMNS SEMOPM SEMMNI\")",
        );
    }
    line(
        &mut o,
        "SEMVMX",
        l.semvmx.to_string(),
        "kernel constant (largest sysv-sem: value; cannot be raised)",
    );
    line(
        &mut o,
        "SEM_VALUE_MAX",
        l.sem_value_max.to_string(),
        "largest sem: value",
    );
    line(
        &mut o,
        "/dev/shm size, free",
        devshm.map_or("not mounted".into(), |(t, f)| {
            format!("{}, {}", mib(t), mib(f))
        }),
        "statvfs(/dev/shm)",
    );
    line(
        &mut o,
        "PIPE_BUF",
        pipe_buf.to_string(),
        "atomic pipe write, bytes",
    );
    line(
        &mut o,
        "pipe-max-size",
        show(pipe_max),
        "/proc/sys/fs/pipe-max-size",
    );
    line(
        &mut o,
        "somaxconn",
        show(somaxconn),
        "/proc/sys/net/core/somaxconn",
    );

    o.push_str("\nWhat they allow\n");
    o.push_str(&format!(
        "  pipe, fifo{}: any message size (framed); writes up to PIPE_BUF={} are atomic, so many clients' connection requests never interleave; a pipe buffers up to pipe-max-size={} bytes.\n",
        supported("fifo"),
        pipe_buf,
        show(pipe_max)
    ));
    if let (Some(mm), Some(sm)) = (msg_max, msgsize_max) {
        let unit = sm.min(QUEUE_UNIT);
        let per_conn = ipcx::backends::mq::default_connection_bytes();
        // ipcx raises the soft limit to the hard one before its first queue.
        let budget = match (rl_mq, l.rlimit_msgqueue_hard) {
            (Some(s), Some(h)) => Some(s.max(h)),
            (s, _) => s,
        };
        let conns = budget.map_or(0, |r| r / per_conn.max(1));
        let small = ipcx::backends::mq::connection_bytes(
            1024 + ipcx::backends::fragment::FIRST_HEADER,
            3.min(mm as usize),
        );
        let small_conns = budget.map_or(0, |r| r / small.max(1));
        o.push_str(&format!(
            "  mq{}: kernel messages of {unit} B (bigger messages are fragmented), queues of up to {mm} messages (capacity=). A connection costs {per_conn} B of RLIMIT_MSGQUEUE ({} B per user, soft raised to hard): {conns} connections fit per user ({small_conns} with capacity=3&max_message_size=1024), and {} queues system-wide (two per connection; root is exempt). To change: ulimit -q or msgqueue in /etc/security/limits.conf; sysctl fs.mqueue.msg_max / fs.mqueue.msgsize_max / fs.mqueue.queues_max.{}\n",
            supported("mq"),
            budget.map_or("?".into(), |b| b.to_string()),
            show(queues_max),
            if mq_mounted { "" } else { " /dev/mqueue is not mounted: queues still work, but `ipcx ls`/`clean` cannot see them (mount -t mqueue none /dev/mqueue)." }
        ));
    }
    if let (Some(max), Some(mnb), Some(mni)) = (msgmax, msgmnb, msgmni) {
        o.push_str(&format!(
            "  sysv-mq{}: kernel messages of {} B, {mnb} B per queue (capacity= up to {} messages), {mni} queues system-wide = about {} connections. To change: sysctl kernel.msgmax / kernel.msgmnb / kernel.msgmni.\n",
            supported("sysv-mq"),
            max.min(QUEUE_UNIT),
            mnb / max.clamp(1, QUEUE_UNIT),
            mni.saturating_sub(1) / 2
        ));
    }
    o.push_str(&format!(
        "  shm{}: each connection's segment lives in /dev/shm ({}). To change: mount -o remount,size=N /dev/shm.\n",
        supported("shm"),
        devshm.map_or("not mounted".into(), |(_, f)| format!("{} free", mib(f)))
    ));
    o.push_str(&format!(
        "  sysv-shm{}: segments up to shmmax={} B, {} MiB in all (shmall × {page} B pages), shmmni={} segments, one per connection (and nothing else: no semaphore set). To change: sysctl kernel.shmmax / kernel.shmall / kernel.shmmni.\n",
        supported("sysv-shm"),
        show(shmmax),
        shmall.map_or("?".into(), |a| (a.saturating_mul(page) >> 20).to_string()),
        show(shmmni),
    ));
    o.push_str(&format!(
        "  unix, tcp{}: up to somaxconn={} connections wait for accept; raise with sysctl net.core.somaxconn.\n",
        supported("unix"),
        show(somaxconn)
    ));
    print!("{o}");
    match args.nats {
        Some(server) => nats(&server),
        None => Ok(()),
    }
}

/// Asks the server for this (unauthenticated) account's JetStream
/// information (`$JS.API.INFO`) on NATS's text protocol, after its INFO
/// was read: `enabled (N streams, ...)`, or why not.
fn jetstream_account(
    stream: &std::net::TcpStream,
    reader: &mut std::io::BufReader<std::net::TcpStream>,
) -> Result<String, String> {
    use std::io::{BufRead, Read, Write};
    let mut w = stream;
    w.write_all(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"name\":\"ipcx doctor\"}\r\n\
          SUB _INBOX.ipcxdoctor 1\r\nPUB $JS.API.INFO _INBOX.ipcxdoctor 0\r\n\r\n",
    )
    .map_err(|e| format!("sending the request failed ({e})"))?;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("no answer ({e})")),
        }
        let line = line.trim_end();
        if line == "PING" {
            let _ = w.write_all(b"PONG\r\n");
            continue;
        }
        if let Some(e) = line.strip_prefix("-ERR") {
            return Err(format!("the server refused the request:{e}"));
        }
        let headers = line.starts_with("HMSG ");
        if !(headers || line.starts_with("MSG ")) {
            continue;
        }
        let len: usize = line
            .rsplit(' ')
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| format!("unreadable reply {line:?}"))?;
        let mut body = vec![0; len + 2];
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading the reply failed ({e})"))?;
        body.truncate(len);
        if headers {
            // A status without a body: 503 is "no responders".
            let text = String::from_utf8_lossy(&body);
            return Err(if text.contains(" 503") {
                "no JetStream responder for this account".into()
            } else {
                format!("status {}", text.lines().next().unwrap_or("").trim())
            });
        }
        let info: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("unreadable account information ({e})"))?;
        if let Some(e) = info.get("error") {
            return Err(e
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or("an error")
                .to_string());
        }
        let n = |k: &str| info.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        return Ok(format!(
            "enabled ({} streams, {} consumers, {} B stored)",
            n("streams"),
            n("consumers"),
            n("storage")
        ));
    }
}

/// Reads a NATS server's INFO (the first line it sends a client) and
/// reports what `nats://` depends on.
fn nats(target: &str) -> Result<(), String> {
    use std::io::BufRead;
    let rest = target.strip_prefix("nats://").unwrap_or(target);
    let server = rest.split(['/', '?']).next().unwrap_or(rest);
    let fail = |why: String| {
        Err(format!(
            "NATS server {server}: {why}; start one (nats-server -a 127.0.0.1 -p 4222, or apt-get install nats-server) or check the address"
        ))
    };
    let addrs: Vec<std::net::SocketAddr> = match std::net::ToSocketAddrs::to_socket_addrs(server) {
        Ok(a) => a.collect(),
        Err(e) => return fail(format!("cannot resolve it ({e})")),
    };
    let timeout = std::time::Duration::from_secs(3);
    let Some(stream) = addrs
        .iter()
        .find_map(|a| std::net::TcpStream::connect_timeout(a, timeout).ok())
    else {
        return fail("not reachable".into());
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let mut line = String::new();
    let mut reader = match stream.try_clone() {
        Ok(s) => std::io::BufReader::new(s),
        Err(e) => return fail(format!("cannot read from it ({e})")),
    };
    if let Err(e) = reader.read_line(&mut line) {
        return fail(format!("no INFO line ({e})"));
    }
    let Some(json) = line.strip_prefix("INFO ") else {
        return fail(format!("not a NATS server (it said {:?})", line.trim_end()));
    };
    let info: serde_json::Value = serde_json::from_str(json.trim_end())
        .map_err(|e| format!("NATS server {server}: unreadable INFO ({e})"))?;
    let field = |k: &str| info.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let max_payload = field("max_payload").as_u64().unwrap_or(0);
    let jetstream = field("jetstream").as_bool().unwrap_or(false);
    let mut o = String::from("\nNATS server\n");
    let mut line = |k: &str, v: String, note: &str| {
        o.push_str(&format!("  {k:<22} {v:<24} {note}\n"));
    };
    line("address", server.to_string(), "reachable");
    line(
        "version",
        field("version").as_str().unwrap_or("?").to_string(),
        "",
    );
    line(
        "max_payload",
        max_payload.to_string(),
        &format!(
            "nats:// max_message_size up to {} (the frame header takes {} B)",
            max_payload.saturating_sub(NATS_FRAME_HEADER),
            NATS_FRAME_HEADER
        ),
    );
    line(
        "jetstream",
        if jetstream { "enabled" } else { "not enabled" }.to_string(),
        if jetstream {
            ""
        } else {
            "durable queues need it: start the server with -js -sd DIR"
        },
    );
    let auth = field("auth_required").as_bool().unwrap_or(false);
    let (account, note) = if !jetstream {
        ("not enabled".to_string(), String::new())
    } else if auth {
        (
            "not checked".to_string(),
            "the server requires authentication".to_string(),
        )
    } else {
        match jetstream_account(&stream, &mut reader) {
            Ok(a) => (a, String::new()),
            Err(why) => ("not available".to_string(), why),
        }
    };
    line("jetstream_account", account, &note);
    line(
        "auth_required",
        field("auth_required")
            .as_bool()
            .unwrap_or(false)
            .to_string(),
        "",
    );
    line(
        "tls_required",
        field("tls_required").as_bool().unwrap_or(false).to_string(),
        "",
    );
    let checked = credentials(target);
    match &checked {
        Some(Ok(what)) => line("credentials", "accepted".into(), what),
        Some(Err(_)) => line("credentials", "not accepted".into(), "why: below"),
        None => {}
    }
    o.push_str(&format!(
        "  nats{}: channels and rpc through this server.\n",
        supported("nats")
    ));
    print!("{o}");
    match checked {
        Some(Err(why)) => Err(why),
        _ => Ok(()),
    }
}

/// When `target` is a `nats://` endpoint that names credentials (`creds=`,
/// `nkey=`, `user=`), connects with them as a client would: `Ok` with
/// the option when the server admits them, `Err` with why not; `None`
/// when it names none.
fn credentials(target: &str) -> Option<Result<String, String>> {
    if !target.starts_with("nats://") {
        return None;
    }
    let ep: ipcx::Endpoint = match target.parse() {
        Ok(e) => e,
        Err(e) => return Some(Err(format!("{e}"))),
    };
    let o = ep.options();
    let what = match (&o.creds, &o.nkey, &o.user) {
        (Some(f), _, _) => format!("creds={f}"),
        (_, Some(f), _) => format!("nkey={f}"),
        (_, _, Some(u)) => format!("user={u}"),
        _ => return None,
    };
    #[cfg(feature = "nats")]
    let verdict = ipcx::backends::nats::check_server(&ep)
        .map(|()| what)
        .map_err(|e| e.to_string());
    #[cfg(not(feature = "nats"))]
    let verdict = Err(format!(
        "{what} cannot be checked: this ipcx is built without the nats feature"
    ));
    Some(verdict)
}

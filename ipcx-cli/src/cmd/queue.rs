//! `ipcx queue`: create, list, inspect, purge and remove standalone queues
//! (`mq:/NAME?pattern=queue`, `sysv-mq:PATH?pattern=queue`, and with the
//! `nats` feature `nats://HOST:PORT/NAME?pattern=queue`), which outlive
//! the processes that use them and which `ipcx clean` never touches.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ipcx::Endpoint;
use ipcx::queue::{self, ByteProducer, Open};

use super::objects::human_age;

/// Where the library keeps the type records of standalone queues.
const RECORD_DIR: &str = "/dev/shm";
/// The prefix of a record's file name.
const RECORD_PREFIX: &str = "ipcx-queue.";

/// Options of `ipcx queue`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx queue create 'mq:/jobs?pattern=queue&capacity=10&max_message_size=4096'\n  ipcx queue send mq:/jobs?pattern=queue hello\n  ipcx queue stat mq:/jobs?pattern=queue\n  ipcx queue ls\n  ipcx queue ls --nats 127.0.0.1:4222\n  ipcx queue stat 'nats://127.0.0.1:4222/jobs?pattern=queue'\n  ipcx queue purge sysv-mq:/var/run/jobs?pattern=queue\n  ipcx queue rm mq:/jobs?pattern=queue"
)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
}

/// The `ipcx queue` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Sub {
    /// Create a queue (of raw bytes) with the endpoint's capacity=,
    /// max_message_size= and mode=; fails if it exists.
    Create {
        /// `mq:/NAME?pattern=queue` or `sysv-mq:PATH?pattern=queue`.
        #[arg(value_parser = super::endpoint)]
        endpoint: Endpoint,
    },
    /// List the standalone queues found on this machine, or with --nats
    /// the queues (JetStream streams) on a NATS server.
    Ls {
        /// List the ipcx queues on this NATS server instead: HOST:PORT, or
        /// a nats:// endpoint whose options (user=, password_file=, tls=,
        /// tls_ca=) are used and whose name is not.
        #[arg(long, value_name = "SERVER")]
        nats: Option<String>,
    },
    /// Print a queue's depth, bytes, message size, capacity, recorded
    /// type and last activity.
    Stat {
        /// The queue's endpoint.
        #[arg(value_parser = super::endpoint)]
        endpoint: Endpoint,
    },
    /// Send messages to an existing queue: MSG, or one per stdin line.
    Send {
        /// The queue's endpoint.
        #[arg(value_parser = super::endpoint)]
        endpoint: Endpoint,
        /// The message; without it (or with `-`), one per line of stdin.
        msg: Option<String>,
        /// Priority, 0 (lowest, the default) to 32767.
        #[arg(long, default_value_t = 0)]
        priority: u32,
    },
    /// Drop every message queued now; prints how many.
    Purge {
        /// The queue's endpoint.
        #[arg(value_parser = super::endpoint)]
        endpoint: Endpoint,
    },
    /// Remove a queue and its type record.
    Rm {
        /// The queue's endpoint.
        #[arg(value_parser = super::endpoint)]
        endpoint: Endpoint,
    },
}

/// Runs `ipcx queue`.
///
/// # Errors
/// The library's error, naming the queue.
pub fn main(args: Args) -> Result<(), String> {
    match args.command {
        Sub::Create { endpoint } => {
            let p = ByteProducer::create(&endpoint).map_err(|e| e.to_string())?;
            println!(
                "created {endpoint} (messages up to {} bytes)",
                p.max_message_size()
            );
            Ok(())
        }
        Sub::Ls { nats: Some(server) } => list_nats(&server),
        Sub::Ls { nats: None } => {
            let found = list();
            if found.is_empty() {
                eprintln!("ipcx queue ls: no standalone queues with a type record on this machine");
                return Ok(());
            }
            print!("{}", table(&found));
            Ok(())
        }
        Sub::Stat { endpoint } => stat(&endpoint),
        Sub::Send {
            endpoint,
            msg,
            priority,
        } => send(&endpoint, msg, priority),
        Sub::Purge { endpoint } => {
            let n = queue::purge(&endpoint).map_err(|e| e.to_string())?;
            println!("purged {n} message{} from {endpoint}", plural(n));
            Ok(())
        }
        Sub::Rm { endpoint } => {
            if queue::remove(&endpoint).map_err(|e| e.to_string())? {
                println!("removed {endpoint}");
                Ok(())
            } else if endpoint.scheme() == ipcx::Scheme::Nats {
                Err(format!(
                    "{endpoint}: no such queue on the server (no JetStream stream {}); ipcx queue ls --nats SERVER lists its queues",
                    stream_name(&endpoint)
                ))
            } else {
                Err(format!("{endpoint}: no such queue"))
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn send(endpoint: &Endpoint, msg: Option<String>, priority: u32) -> Result<(), String> {
    let tag = queue::stat(endpoint)
        .map_err(|e| e.to_string())?
        .recorded
        .unwrap_or(ipcx::TypeTag::BYTES);
    if tag.fingerprint != 0 {
        return Err(format!(
            "{endpoint} holds messages of type {}; ipcx queue send writes raw bytes only",
            tag.name
        ));
    }
    let mut p =
        ByteProducer::open_with(endpoint, Open::Existing, tag, None).map_err(|e| e.to_string())?;
    let mut one = |m: &[u8]| p.send_with_priority(m, priority).map_err(|e| e.to_string());
    match msg.as_deref() {
        Some(m) if m != "-" => one(m.as_bytes()),
        _ => {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| format!("reading stdin: {e}"))?;
                one(line.as_bytes())?;
            }
            Ok(())
        }
    }
}

fn opt(v: Option<usize>) -> String {
    v.map_or("-".into(), |n| n.to_string())
}

fn stat(endpoint: &Endpoint) -> Result<(), String> {
    let info = queue::stat(endpoint).map_err(|e| e.to_string())?;
    let s = &info.status;
    let kernel = kernel_view(endpoint);
    println!("queue            {endpoint}");
    println!("messages         {}", s.messages);
    println!(
        "bytes            {}",
        opt(s.bytes.or(kernel.as_ref().and_then(|k| k.bytes)))
    );
    println!(
        "max message      {} bytes ({} with the {}-byte header)",
        s.message_size.saturating_sub(queue::HEADER_LEN),
        s.message_size,
        queue::HEADER_LEN
    );
    println!(
        "capacity         {} messages, {} bytes",
        opt(s.capacity_messages),
        opt(s.capacity_bytes)
    );
    println!(
        "type             {}",
        info.recorded
            .as_ref()
            .map_or("(no record)".to_string(), |t| {
                format!("{} ({:#018x})", t.name, t.fingerprint)
            })
    );
    if let Some(js) = &s.jetstream {
        // A JetStream stream: the server's view, no kernel object.
        println!(
            "stream           {} ({} replica{})",
            js.stream,
            js.replicas,
            plural(js.replicas)
        );
        println!("leader           {}", js.leader.as_deref().unwrap_or("-"));
        println!("unacknowledged   {}", opt(js.ack_pending));
        println!("redelivered      {}", opt(js.redelivered));
        println!(
            "ack_wait         {}",
            js.ack_wait.map_or("-".into(), |d| format!("{d:?}"))
        );
        println!(
            "producers        {} (ipcx handles that answered now; other NATS publishers cannot be known)",
            opt(info.producers)
        );
        println!(
            "consumers        {} (ipcx handles that answered now)",
            opt(info.consumers)
        );
        println!("last stored      {}", ago(js.last_stored));
        return Ok(());
    }
    println!("mode             {:04o}", s.mode & 0o7777);
    println!("owner uid        {}", s.owner_uid);
    let pid = |p: Option<u32>| p.filter(|&p| p != 0).map_or("-".into(), |p| p.to_string());
    let count = |n: Option<usize>| n.map_or("?".into(), |n| n.to_string());
    println!(
        "producers        {} (handles open now, through ipcx)",
        count(info.producers)
    );
    println!(
        "consumers        {} (handles open now, through ipcx)",
        count(info.consumers)
    );
    println!("last sender      {}", pid(s.last_sender));
    println!("last receiver    {}", pid(s.last_receiver));
    match &kernel {
        Some(k) if endpoint.scheme() == ipcx::Scheme::Mq => {
            println!("last activity    {} (send or receive)", ago(k.changed));
        }
        Some(k) => {
            println!("last send        {}", ago(k.last_send));
            println!("last receive     {}", ago(k.last_receive));
            println!("last change      {}", ago(k.changed));
        }
        None => println!("last activity    ?"),
    }
    Ok(())
}

fn ago(t: Option<SystemTime>) -> String {
    match t {
        None => "never".into(),
        Some(t) => format!(
            "{} ago",
            human_age(Some(
                SystemTime::now().duration_since(t).unwrap_or_default()
            ))
        ),
    }
}

/// Activity times as the kernel keeps them.
#[derive(Debug, Clone, Default)]
struct KernelView {
    bytes: Option<usize>,
    last_send: Option<SystemTime>,
    last_receive: Option<SystemTime>,
    changed: Option<SystemTime>,
}

fn kernel_view(endpoint: &Endpoint) -> Option<KernelView> {
    match endpoint.scheme() {
        ipcx::Scheme::Mq => {
            // mqueuefs stamps the inode on every send and receive.
            let path = Path::new("/dev/mqueue").join(endpoint.address().trim_start_matches('/'));
            let t = std::fs::metadata(path).ok()?.modified().ok();
            Some(KernelView {
                last_send: None,
                last_receive: None,
                changed: t,
                bytes: None,
            })
        }
        _ => {
            let key = sysv_key(endpoint.address())?;
            sysv_rows()
                .into_iter()
                .find(|r| r.key == key)
                .map(|r| r.view)
        }
    }
}

fn sysv_key(path: &str) -> Option<i32> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let k = unsafe { libc::ftok(c.as_ptr(), i32::from(b'q')) };
    (k != -1).then_some(k)
}

struct SysvRow {
    key: i32,
    msqid: i64,
    messages: usize,
    view: KernelView,
}

/// `/proc/sysvipc/msg`: key msqid perms cbytes qnum lspid lrpid uid gid
/// cuid cgid stime rtime ctime.
fn sysv_rows() -> Vec<SysvRow> {
    let Ok(text) = std::fs::read_to_string("/proc/sysvipc/msg") else {
        return Vec::new();
    };
    let time = |s: &str| -> Option<SystemTime> {
        let secs: u64 = s.parse().ok()?;
        (secs != 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 14 {
                return None;
            }
            Some(SysvRow {
                key: f[0].parse().ok()?,
                msqid: f[1].parse().ok()?,
                messages: f[4].parse().ok()?,
                view: KernelView {
                    bytes: f[3].parse().ok(),
                    last_send: time(f[11]),
                    last_receive: time(f[12]),
                    changed: time(f[13]),
                },
            })
        })
        .collect()
}

/// One standalone queue found by `ipcx queue ls`.
#[derive(Debug, Clone)]
pub struct Found {
    /// `mq` or `sysv-mq`.
    pub kind: &'static str,
    /// The POSIX name, or the System V key and id.
    pub name: String,
    /// The recorded type.
    pub type_name: String,
    /// Messages queued, when known.
    pub messages: Option<usize>,
    /// The endpoint to name it by, when it can be told.
    pub endpoint: Option<String>,
    /// Time since its last activity.
    pub idle: Option<Duration>,
}

/// A record file's line starting with `key `.
fn record_field(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "ipcx-queue 1" {
        return None;
    }
    lines
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .map(str::to_string)
}

/// Every standalone queue with a type record: POSIX queues under
/// `/dev/mqueue` (not `ipcx.*`, which are connection objects) and System V
/// queues whose key has a record.
pub fn list() -> Vec<Found> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(RECORD_DIR) else {
        return out;
    };
    let sysv = sysv_rows();
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(RECORD_PREFIX) && !n.contains(".tmp."))
        .collect();
    names.sort();
    for n in names {
        let rest = &n[RECORD_PREFIX.len()..];
        let record = Path::new(RECORD_DIR).join(&n);
        let type_name = record_field(&record, "type").unwrap_or_else(|| "?".into());
        if let Some(id) = rest.strip_prefix("mq.") {
            if id.starts_with("ipcx.") {
                continue;
            }
            let path = Path::new("/dev/mqueue").join(id);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // a record of a queue removed by hand
            };
            let idle = meta
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            let ep: Endpoint = match format!("mq:/{id}?pattern=queue").parse() {
                Ok(e) => e,
                Err(_) => continue,
            };
            let messages = queue::stat(&ep).ok().map(|i| i.status.messages);
            out.push(Found {
                kind: "mq",
                name: format!("/{id}"),
                type_name,
                messages,
                endpoint: Some(ep.to_string()),
                idle,
            });
        } else if let Some(id) = rest.strip_prefix("sysv-mq.") {
            let Ok(key) = u32::from_str_radix(id, 16) else {
                continue;
            };
            // The record names the msqid it describes: a queue made again
            // under the same key by someone else is not the recorded one.
            let object = record_field(&record, "object");
            let Some(row) = sysv
                .iter()
                .find(|r| r.key as u32 == key && object.as_deref() == Some(&*r.msqid.to_string()))
            else {
                continue;
            };
            let idle = [row.view.last_send, row.view.last_receive, row.view.changed]
                .into_iter()
                .flatten()
                .max()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            // The kernel keeps the key, not the file it came from: the
            // creator recorded its endpoint; believed while that file
            // still gives this key.
            let endpoint = record_field(&record, "endpoint").filter(|ep| {
                ep.strip_prefix("sysv-mq:")
                    .map(|rest| rest.split('?').next().unwrap_or(rest))
                    .and_then(sysv_key)
                    .is_some_and(|k| k as u32 == key)
            });
            out.push(Found {
                kind: "sysv-mq",
                name: format!("key {key:#010x} id {}", row.msqid),
                type_name,
                messages: Some(row.messages),
                endpoint,
                idle,
            });
        }
    }
    out
}

/// The queues as a table.
pub fn table(found: &[Found]) -> String {
    let mut out = format!(
        "{:<8} {:<40} {:<24} {:>8} {:>6}  {}\n",
        "KIND", "QUEUE", "TYPE", "MESSAGES", "IDLE", "ENDPOINT"
    );
    for f in found {
        out.push_str(&format!(
            "{:<8} {:<40} {:<24} {:>8} {:>6}  {}\n",
            f.kind,
            f.name,
            f.type_name,
            opt(f.messages),
            human_age(f.idle),
            f.endpoint.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// The stream name of a `nats://` queue (as the library names it).
fn stream_name(endpoint: &Endpoint) -> String {
    let name = endpoint.address().split_once('/').map_or("", |(_, n)| n);
    let mut s = String::from("ipcxq_");
    for c in name.chars() {
        match c {
            '_' => s.push_str("__"),
            '.' => s.push_str("_-"),
            c => s.push(c),
        }
    }
    s
}

/// A `nats://` endpoint on `server` (HOST:PORT[,HOST:PORT], or a
/// `nats://` endpoint whose options are kept and whose name is not used).
fn server_endpoint(server: &str) -> Result<Endpoint, String> {
    let rest = server.strip_prefix("nats://").unwrap_or(server);
    let (servers, query) = match rest.split_once('?') {
        Some((s, q)) => (s, Some(q)),
        None => (rest, None),
    };
    let servers = servers.split('/').next().unwrap_or(servers);
    let text = match query {
        Some(q) => format!("nats://{servers}/ipcx-ls?{q}"),
        None => format!("nats://{servers}/ipcx-ls"),
    };
    text.parse().map_err(|e| {
        format!("--nats {server}: {e} (give HOST:PORT, or nats://HOST:PORT with options)")
    })
}

#[cfg(feature = "nats")]
fn list_nats(server: &str) -> Result<(), String> {
    let endpoint = server_endpoint(server)?;
    let servers = endpoint.address().split('/').next().unwrap_or("");
    let listing = queue::list_broker(&endpoint).map_err(|e| match e {
        ipcx::Error::NoListener { reason, .. } => format!(
            "NATS server {servers}: {reason}; start one (nats-server -js -a 127.0.0.1 -p 4222) or check the address"
        ),
        e => e.to_string(),
    })?;
    if listing.queues.is_empty() {
        eprintln!("ipcx queue ls: no ipcx queues on the NATS server {servers}");
    } else {
        print!("{}", nats_table(&listing.queues));
    }
    if !listing.other_streams.is_empty() {
        println!(
            "other JetStream streams (not ipcx queues, not shown): {}",
            listing.other_streams.join(", ")
        );
    }
    Ok(())
}

#[cfg(not(feature = "nats"))]
fn list_nats(server: &str) -> Result<(), String> {
    server_endpoint(server)?;
    Err(
        "ipcx queue ls --nats: this ipcx was built without NATS; build it with --features nats"
            .into(),
    )
}

/// The queues of a NATS server as a table.
#[cfg(feature = "nats")]
fn nats_table(queues: &[(Endpoint, queue::QueueInfo)]) -> String {
    let mut out = format!(
        "{:<8} {:<32} {:<24} {:>8} {:>10} {:>9} {:>9} {:>6}  {}\n",
        "KIND",
        "QUEUE",
        "TYPE",
        "MESSAGES",
        "BYTES",
        "PRODUCERS",
        "CONSUMERS",
        "STORED",
        "ENDPOINT"
    );
    for (endpoint, info) in queues {
        let name = endpoint.address().split_once('/').map_or("", |(_, n)| n);
        let idle = info
            .status
            .jetstream
            .as_ref()
            .and_then(|js| js.last_stored)
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        out.push_str(&format!(
            "{:<8} {:<32} {:<24} {:>8} {:>10} {:>9} {:>9} {:>6}  {}\n",
            "nats",
            name,
            info.recorded
                .as_ref()
                .map_or("?".into(), |t| t.name.to_string()),
            info.status.messages,
            opt(info.status.bytes),
            opt(info.producers),
            opt(info.consumers),
            human_age(idle),
            endpoint,
        ));
    }
    out
}

//! The kernel objects ipcx created on this machine, as `ls` shows them and
//! `clean` removes them: the registry's records, plus every `ipcx.*` name
//! under `/dev/mqueue` and `/dev/shm`.
//!
//! An owner is known for registry records (pid and start time) and for
//! per-connection queue names, which carry the creating pid
//! (`ipcx.NAME.PID.N.up`); there pid reuse can only make a dead owner look
//! alive, never the reverse, so `clean` errs on the side of keeping.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ipcx::Endpoint;
use ipcx::backends::registry::{self, Record};
use ipcx::backends::sys::{process, sysv_msg};

/// Where an object was found, which decides how it is removed.
#[derive(Debug, Clone)]
pub enum Source {
    /// A registry record.
    Registry(Record),
    /// A POSIX queue name with no record.
    MqName,
    /// A POSIX shared-memory name with no record.
    ShmName,
}

/// One object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The transport's scheme (`mq`, `sysv-mq`, `unix`, …).
    pub transport: String,
    /// The object: a path, a POSIX name, or a System V id.
    pub name: String,
    /// The endpoint it serves, when known.
    pub endpoint: Option<String>,
    /// The creating process, when known.
    pub pid: Option<u32>,
    /// Whether that process still runs, when known.
    pub alive: Option<bool>,
    /// Its size or contents, human-readable.
    pub size: String,
    /// Time since it (or its record) was created or last changed.
    pub age: Option<Duration>,
    /// Where it was found.
    pub source: Source,
}

impl Object {
    /// Whether its owner is known to be dead.
    pub fn orphaned(&self) -> bool {
        self.alive == Some(false)
    }
}

fn age_of(path: &Path) -> Option<Duration> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(m).ok()
}

/// `QSIZE:12 …` of `/dev/mqueue/NAME`: bytes queued.
fn mq_size(name: &str) -> String {
    std::fs::read_to_string(format!("/dev/mqueue/{}", name.trim_start_matches('/')))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .find_map(|kv| kv.strip_prefix("QSIZE:").map(|v| format!("{v} B queued")))
        })
        .unwrap_or_else(|| "-".into())
}

/// The pid in a per-connection name `ipcx.NAME.PID.N.up|down`.
fn pid_in_name(name: &str) -> Option<u32> {
    let parts: Vec<&str> = name.rsplitn(4, '.').collect();
    match parts[..] {
        [dir, n, pid, _] if (dir == "up" || dir == "down") && n.parse::<u32>().is_ok() => {
            pid.parse().ok()
        }
        _ => None,
    }
}

/// What a record names, read back from its endpoint: the socket path, the
/// queue name, or the System V id.
pub fn object_of(r: &Record) -> String {
    let ep: Option<Endpoint> = r.endpoint.parse().ok();
    match (r.kind.as_str(), ep) {
        ("socket", Some(ep)) => ep.address().to_string(),
        ("mq", Some(ep)) => ipcx::backends::mq::rendezvous_name(&ep),
        _ => r.id.clone(),
    }
}

fn from_record(r: Record) -> Object {
    let name = object_of(&r);
    let transport = r
        .endpoint
        .split_once(':')
        .map_or(r.kind.clone(), |(s, _)| s.to_string());
    let size = match r.kind.as_str() {
        "sysv-msq" => {
            r.id.parse()
                .ok()
                .and_then(|id| sysv_msg::MsgQueue::from_id(id).status().ok())
                .map_or_else(
                    || "gone".into(),
                    |s| format!("{} msgs, {} B queued", s.messages, s.bytes),
                )
        }
        "mq" => mq_size(&name),
        _ => std::fs::symlink_metadata(&name).map_or_else(|_| "gone".into(), |_| "-".into()),
    };
    Object {
        transport,
        age: age_of(&r.path()),
        endpoint: Some(r.endpoint.clone()),
        pid: Some(r.pid),
        alive: Some(r.owner_alive()),
        size,
        name,
        source: Source::Registry(r),
    }
}

fn names_in(dir: &str, known: &[String], source: Source, transport: &str) -> Vec<Object> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if !file.starts_with("ipcx.") {
            continue;
        }
        let name = format!("/{file}");
        if known.contains(&name) {
            continue;
        }
        let pid = pid_in_name(&file);
        let size = match source {
            Source::MqName => mq_size(&name),
            _ => e
                .metadata()
                .map_or_else(|_| "-".into(), |m| format!("{} B", m.len())),
        };
        out.push(Object {
            transport: transport.into(),
            endpoint: None,
            pid,
            alive: pid.map(|p| process::alive(p, None)),
            size,
            age: age_of(&e.path()),
            name,
            source: source.clone(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every object found, registry records first.
pub fn all() -> Vec<Object> {
    let mut out: Vec<Object> = registry::list().into_iter().map(from_record).collect();
    let known: Vec<String> = out.iter().map(|o| o.name.clone()).collect();
    out.extend(names_in("/dev/mqueue", &known, Source::MqName, "mq"));
    out.extend(names_in("/dev/shm", &known, Source::ShmName, "shm"));
    out
}

/// `3s`, `5m`, `2h`, `4d`.
pub fn human_age(d: Option<Duration>) -> String {
    let Some(d) = d else { return "-".into() };
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pid_in_connection_names() {
        assert_eq!(super::pid_in_name("ipcx.orders.123.4.up"), Some(123));
        assert_eq!(super::pid_in_name("ipcx.a.b.77.0.down"), Some(77));
        assert_eq!(super::pid_in_name("ipcx.orders"), None);
    }
}

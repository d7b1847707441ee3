//! The JSON report of `ipcx bench --json`: every figure, and the machine it
//! was measured on.

use serde_json::{Value, json};

use super::measure::{Kind, Outcome};
use super::{Args, Row, raw, stats};

/// The machine's description: kernel, CPU model, cores, when.
pub fn machine() -> Value {
    let (kernel, arch, host) = match nix::sys::utsname::uname() {
        Ok(u) => (
            format!(
                "{} {} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.version().to_string_lossy()
            ),
            u.machine().to_string_lossy().into_owned(),
            u.nodename().to_string_lossy().into_owned(),
        ),
        Err(_) => Default::default(),
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "kernel": kernel,
        "arch": arch,
        "hostname": host,
        "cpu_model": cpu,
        "cores": cores,
        "unix_time": now,
        "date_utc": utc_date(now),
    })
}

/// `YYYY-MM-DD` of a Unix time (proleptic Gregorian, UTC).
pub fn utc_date(secs: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn outcome(kind: Kind, o: &Outcome, size: usize) -> Value {
    match kind {
        Kind::Latency => json!({
            "p50_ns": o.p50_ns,
            "p99_ns": o.p99_ns,
            "p999_ns": o.p999_ns,
            "samples": o.samples,
        }),
        Kind::Throughput => json!({
            "msgs_per_s": o.msgs_per_s,
            "bytes_per_s": o.msgs_per_s * size as f64,
            "gb_per_s": o.msgs_per_s * size as f64 / 1e9,
            "samples": o.samples,
        }),
    }
}

/// One row: the median figures, the ratio (median of the repetitions'
/// ratios) with its range, and every repetition's own figures.
fn result(r: &Row) -> Value {
    let spread = r.spread();
    json!({
        "transport": r.transport,
        "size": r.size,
        "pin": r.pin.name(),
        "kind": r.kind.name(),
        "ipcx": outcome(r.kind, &r.ipcx, r.size),
        "raw": outcome(r.kind, &r.raw, r.size),
        "ratio": spread.median,
        "ratio_spread": spread.json(),
        "unstable": spread.unstable(),
        "repetitions": r.reps.iter().map(|x| json!({
            "ipcx": outcome(r.kind, &x.ipcx, r.size),
            "raw": outcome(r.kind, &x.raw, r.size),
            "ratio": x.ratio(r.kind),
        })).collect::<Vec<_>>(),
    })
}

/// The whole report, pretty-printed.
pub fn json(args: &Args, rows: &[Row]) -> String {
    let results: Vec<Value> = rows.iter().map(result).collect();
    let notes: Vec<&str> = raw::all_targets()
        .filter(|d| rows.iter().any(|r| r.transport == d.label))
        .filter_map(|d| d.note)
        .collect();
    let mut notes = notes;
    notes.dedup();
    let v = json!({
        "ipcx_version": env!("CARGO_PKG_VERSION"),
        "machine": machine(),
        "profile": if args.full { "full" } else { "quick" },
        "repeat": args.repeat,
        "budget_ms_per_repetition": super::budget_ms(args),
        "unstable_beyond": stats::UNSTABLE,
        "sizes": args.sizes(),
        "pins": args.pin.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "ratio": "round-trip: ipcx p50 / raw p50; throughput: ipcx msgs/s / raw msgs/s; per repetition, then the median over the repetitions (ipcx and raw figures: medians of each figure)",
        "notes": notes,
        "results": results,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

//! Raw named FIFOs: two FIFOs made with `mkfifo(3)` next to the endpoint's
//! path, opened in a fixed order (client→server first, so neither side
//! deadlocks), unlinked once both are open; then `write(2)` and `read(2)`
//! of whole messages.

use std::fs::OpenOptions;

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;

use super::stream::Halves;
use crate::bench::measure::Link;

fn paths(base: &str) -> (String, String) {
    (format!("{base}.up"), format!("{base}.down"))
}

pub fn server(endpoint: &str, _size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    Ok(Box::new(open_server(endpoint, ready)?))
}

pub fn client(base: &str) -> Result<Box<dyn Link>, String> {
    Ok(Box::new(open_client(base)?))
}

/// Makes the FIFO pair beside the endpoint's path, announces it, opens
/// this side's ends once the client opens its own, and unlinks both.
pub(super) fn open_server(endpoint: &str, ready: &dyn Fn(&str)) -> Result<Halves, String> {
    let base = format!("{}.raw", endpoint.trim_start_matches("fifo:"));
    let (up, down) = paths(&base);
    for p in [&up, &down] {
        mkfifo(p.as_str(), Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| format!("mkfifo {p}: {e}"))?;
    }
    ready(&base);
    let opened = (|| -> Result<Halves, String> {
        let r = OpenOptions::new()
            .read(true)
            .open(&up)
            .map_err(|e| format!("open {up}: {e}"))?;
        let w = OpenOptions::new()
            .write(true)
            .open(&down)
            .map_err(|e| format!("open {down}: {e}"))?;
        Ok(Halves { r, w })
    })();
    let _ = std::fs::remove_file(&up);
    let _ = std::fs::remove_file(&down);
    opened
}

/// The client's ends of the FIFO pair the server announced as `base`.
pub(super) fn open_client(base: &str) -> Result<Halves, String> {
    let (up, down) = paths(base);
    let w = OpenOptions::new()
        .write(true)
        .open(&up)
        .map_err(|e| format!("open {up}: {e}"))?;
    let r = OpenOptions::new()
        .read(true)
        .open(&down)
        .map_err(|e| format!("open {down}: {e}"))?;
    Ok(Halves { r, w })
}

//! The operator's subcommands, one module each: `send`, `recv`, `serve`
//! (netcat for every transport), `ls`, `clean` (the objects ipcx left in
//! the kernel) and `doctor` (the kernel limits each transport depends on).

pub mod clean;
pub mod doctor;
pub mod hex;
pub mod ls;
pub mod objects;
pub mod queue;
pub mod recv;
pub mod rm;
pub mod send;
pub mod serve;
pub mod sync_objects;

use std::io::Write;

use ipcx::Endpoint;

/// Parses an endpoint argument, with the grammar's own error message.
///
/// # Errors
/// The parse error, naming the problem.
pub fn endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse()
        .map_err(|e: ipcx::EndpointError| format!("endpoint {s:?}: {e}"))
}

/// Prints one received message on its own line: as text, or as hex.
///
/// # Errors
/// When standard output is closed.
pub fn print_message(out: &mut dyn Write, msg: &[u8], as_hex: bool) -> Result<(), String> {
    let r = if as_hex {
        writeln!(out, "{}", hex::encode(msg))
    } else {
        out.write_all(msg).and_then(|()| {
            if msg.last() == Some(&b'\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
    };
    r.and_then(|()| out.flush())
        .map_err(|e| format!("writing to standard output: {e}"))
}

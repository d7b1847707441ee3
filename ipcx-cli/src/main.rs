//! `ipcx`: benchmarks and operator tools for ipcx transports.

use clap::{Parser, Subcommand};
use ipcx_cli::cmd;

/// Benchmarks and operator tools for ipcx transports.
#[derive(Parser)]
#[command(
    name = "ipcx",
    version,
    about,
    after_help = "Examples:\n  ipcx bench --sizes 64 --pin same\n  ipcx recv unix:/tmp/x.sock --count 1 &  ipcx send unix:/tmp/x.sock hello\n  ipcx ls\n  ipcx clean --dry-run\n  ipcx doctor"
)]
struct Cli {
    /// Log connections, handshake verdicts and disconnects to standard
    /// error (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure every transport beside a raw-libc baseline of its mechanism.
    Bench(ipcx_cli::bench::Args),
    /// Connect to an endpoint, send messages, print replies.
    Send(cmd::send::Args),
    /// Listen on an endpoint and print the messages that arrive.
    Recv(cmd::recv::Args),
    /// Listen on an endpoint and serve many clients (echo).
    Serve(cmd::serve::Args),
    /// List the kernel objects ipcx created on this machine.
    Ls(cmd::ls::Args),
    /// Remove the objects whose owners are dead, and only those.
    Clean(cmd::clean::Args),
    /// Remove a region, mutex or semaphore by its endpoint.
    Rm(cmd::rm::Args),
    /// Read the kernel limits each transport depends on and advise.
    Doctor(cmd::doctor::Args),
    /// Create, list, inspect, purge and remove standalone queues.
    Queue(cmd::queue::Args),
}

fn main() {
    let cli = Cli::parse();
    log(cli.verbose);
    let result = match cli.command {
        Command::Bench(args) => ipcx_cli::bench::main(args),
        Command::Send(args) => cmd::send::main(args),
        Command::Recv(args) => cmd::recv::main(args),
        Command::Serve(args) => cmd::serve::main(args),
        Command::Ls(args) => cmd::ls::main(args),
        Command::Clean(args) => cmd::clean::main(args),
        Command::Doctor(args) => cmd::doctor::main(args),
        Command::Queue(args) => cmd::queue::main(args),
        Command::Rm(args) => cmd::rm::main(args),
    };
    if let Err(e) = result {
        eprintln!("ipcx: {e}");
        std::process::exit(1);
    }
}

/// Installs the log subscriber: `RUST_LOG` if set, else the level `-v` asks
/// for (warnings by default).
fn log(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

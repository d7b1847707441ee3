//! `ipcx`: benchmarks and operator tools for ipcx transports.

use clap::{Parser, Subcommand};

/// Benchmarks and operator tools for ipcx transports.
#[derive(Parser)]
#[command(name = "ipcx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure every transport beside a raw-libc baseline of its mechanism.
    Bench(ipcx_cli::bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => ipcx_cli::bench::main(args),
    };
    if let Err(e) = result {
        eprintln!("ipcx: {e}");
        std::process::exit(1);
    }
}

//! `cargo bench -p ipcx-cli`: the same measurements as `ipcx bench`, run
//! from cargo. Arguments after `--` are those of `ipcx bench`
//! (`cargo bench -p ipcx-cli -- --sizes 64 --transports unix`).

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ipcx_cli::bench::Args,
    /// Passed by cargo bench; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    // The benchmark re-executes its binary for the two peers.
    if std::env::var_os(ipcx_cli::bench::PEER_VAR).is_some() {
        if let Err(e) = ipcx_cli::bench::measure::peer_main() {
            eprintln!("bench peer: {e}");
            std::process::exit(1);
        }
        return;
    }
    let cli = Cli::parse();
    if let Err(e) = ipcx_cli::bench::main(cli.args) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

//! `mynah`: one binary for both planes. A thin layer over the library crates: parse the command
//! line, build the configuration, start, print where everything is, stop on Ctrl-C.

mod bench;
mod bench_gateway;
mod campaign_cmd;
mod cli;
mod gateway_cmd;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: the request paths allocate small objects at a high rate; it is markedly faster than
/// the system allocator there (measured with `mynah bench`). Built with `no_thp`: mimalloc would
/// otherwise ask for transparent huge pages, and its purging of freed memory then makes the kernel
/// zero fresh 2 MiB pages over and over (15 % of all CPU time in `mynah bench-gateway`; see
/// `docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = cli.init_logging() {
        eprintln!("mynah: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mynah: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mynah: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `mynah`: one binary for both planes. A thin layer over the library crates: parse the command
//! line, build the configuration, start, print where everything is, stop on Ctrl-C.

mod bench;
mod bench_campaign;
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

unsafe extern "C" {
    /// mimalloc's own: frees what the calling thread's heap holds but no longer uses, and
    /// (`force`) purges it back to the system at once.
    fn mi_collect(force: bool);
}

/// How often at most a worker thread gives memory back, when it goes idle.
const GIVE_BACK_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs when a runtime worker has nothing to do: at most once per [`GIVE_BACK_EVERY`] per thread,
/// it asks mimalloc to return the memory its heap freed. mimalloc purges freed pages only as the
/// thread goes on allocating, so a thread that falls idle after a burst would otherwise keep
/// them resident; this is the moment it has time to spare, and under steady load it costs one
/// clock read per park.
fn give_back_memory() {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let due = LAST.with(|last| match last.get() {
        Some(t) if now.duration_since(t) < GIVE_BACK_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time;
        // the symbol comes from the mimalloc library the global allocator links.
        unsafe { mi_collect(true) };
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = cli.init_logging() {
        eprintln!("mynah: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(give_back_memory)
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

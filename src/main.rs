//! The `tenantd` binary: everything lives in the library; this only hands over to the CLI.

/// mimalloc instead of glibc's malloc: measured with callgrind, allocation and free were 16% of
/// the instructions of a record create (glibc's `_int_free` alone 6%), with arena locking on
/// top; see docs/benchmarks.md for the side-by-side numbers. Built with `no_thp`: with
/// transparent huge pages its arenas took the server from 77 to 166 MiB RSS with 256 tenants
/// open; without, 83 MiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tenantd::cli::main()
}

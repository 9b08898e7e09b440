#![forbid(unsafe_code)]

// glibc malloc showed up as ~10% of hookd's CPU under load: requests,
// Redis frames and deliveries allocate and free across worker threads,
// which mimalloc's per-thread free lists handle with far less work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookd::cli::main()
}

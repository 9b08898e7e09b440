#![forbid(unsafe_code)]

// glibc malloc was ~10% of hookd's CPU under load: requests, Redis frames
// and deliveries are allocated on one worker thread and freed on another.
// jemalloc does the same work in ~10% fewer instructions per event
// (callgrind, `benches/load.sh --instructions`) and, unlike mimalloc, kept
// RSS where glibc had it (23 vs 54 MiB under the end-to-end load).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hookd::cli::main()
}

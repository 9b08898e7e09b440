//! End-to-end load measurement on this machine: private Redis servers, a
//! baseline server, the release `hookd`, a local sink and a signed-webhook
//! driver, all in one run so the figures are ratios against the same-run
//! baseline. `benches/load.sh` builds the release binary and runs it;
//! under `cargo test --all-targets` it only checks that it starts and that
//! a phase that accepted nothing is reported as such.
//!
//! Phases (`load/phases.rs`, `load/routes.rs`), in order: the ingest
//! comparison (baseline, hookd's ingest ceiling with one and with two
//! destinations, in alternating rounds, each from empty servers), Redis
//! memory per queued event with one and two destinations, latency at half
//! the ceiling, ingest while delivering, the end-to-end rate search and
//! hold, a system-call census, the same search and a hold with two
//! destinations receiving every event, then one and two destinations taking
//! turns at the same deliveries/s (their machine CPU per delivery), the
//! event log's cost (`load/log.rs`: end to end with and without it, taking
//! turns at 80% of the hold's rate, then each searching for its capacity,
//! Redis memory per retained event, listing latency with 100k retained),
//! the spool (`load/spool.rs`: ingest while Redis hangs, then the drain),
//! and an optional memory soak.
//! `--instructions` counts instructions per event under callgrind instead
//! (`load/instructions.rs`).
//!
//! Knobs (environment): LOAD_SECONDS (10), LOAD_CONNECTIONS (64),
//! LOAD_DRIVER (auto | wrk | builtin), E2E_SECONDS (60), E2E_RATE (0 =
//! search for the highest rate delivery keeps up with, else hold this
//! rate), E2E_IN_FLIGHT (64: hookd's worker.concurrency and the e2e
//! destination's max_in_flight), E2E_CONNECTIONS (64), E2E_TRACE (set:
//! print every backlog sample, and each step's verdict with its reasons
//! and its CPU µs per event by process), SOAK_SECONDS (0 = skip the soak).
//! LOAD_PHASES (unset = all; any of `e2e`, `log`, `log_cost`, `spool`,
//! comma-separated: only those phases, without the baseline; `e2e` is the
//! end-to-end search and hold with one destination, then with two, starting
//! the search at E2E_RATE or PARTIAL_E2E_START; `log_cost` is end to end
//! with and without the event log taking turns, searching from there).
//! hookd inherits the environment, so TOKIO_WORKER_THREADS sizes its
//! runtime (and the baseline's) as it would in production.

#[path = "../tests/it/support.rs"]
mod support;

#[path = "load/cpu.rs"]
mod cpu;
#[path = "load/driver.rs"]
mod driver;
#[path = "load/e2e.rs"]
mod e2e;
#[path = "load/instructions.rs"]
mod instructions;
#[path = "load/log.rs"]
mod log;
#[path = "load/phases.rs"]
mod phases;
#[path = "load/report.rs"]
mod report;
#[path = "load/routes.rs"]
mod routes;
#[path = "load/servers.rs"]
mod servers;
#[path = "load/spool.rs"]
mod spool;
#[path = "load/turns.rs"]
mod turns;

use std::time::Duration;

// The same allocator as the hookd binary, so the baseline (and the
// instruction counts) compare like with like.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SECRET: &str = "load-test-secret-for-hookd";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's knobs, read once from the environment.
pub struct Knobs {
    seconds: Duration,
    connections: usize,
    e2e_seconds: Duration,
    /// Hold this rate instead of searching.
    e2e_rate: Option<f64>,
    /// hookd's `worker.concurrency` and the e2e destination's `max_in_flight`.
    e2e_in_flight: u64,
    /// Connections the end-to-end driver offers its fixed rate over.
    e2e_connections: usize,
    soak_seconds: u64,
}

impl Knobs {
    fn from_env() -> Self {
        Self {
            seconds: Duration::from_secs(env_u64("LOAD_SECONDS", 10)),
            connections: env_u64("LOAD_CONNECTIONS", 64) as usize,
            e2e_seconds: Duration::from_secs(env_u64("E2E_SECONDS", 60)),
            e2e_rate: Some(env_u64("E2E_RATE", 0) as f64).filter(|r| *r > 0.0),
            e2e_in_flight: env_u64("E2E_IN_FLIGHT", 64),
            e2e_connections: env_u64("E2E_CONNECTIONS", 64) as usize,
            soak_seconds: env_u64("SOAK_SECONDS", 0),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-baseline") {
        let redis_url = args[i + 1].clone();
        let port: u16 = args[i + 2].parse().unwrap();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(servers::baseline::serve(redis_url, port));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // Under `cargo test --all-targets`: check the reporting, not the
        // machine.
        driver::check_failure_reporting();
        turns::check_bracket();
        println!("load: run with `cargo bench --bench load` (or benches/load.sh) to measure");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.iter().any(|a| a == "--instructions") {
        runtime.block_on(instructions::run());
    } else {
        match std::env::var("LOAD_PHASES") {
            Ok(phases) if !phases.is_empty() => {
                runtime.block_on(run_some(Knobs::from_env(), &phases))
            }
            _ => runtime.block_on(run(Knobs::from_env())),
        }
    }
}

fn print_setup(knobs: &Knobs) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!("machine: {:.0} cores, {cpu}", cpu::cores());
    println!(
        "load: {} keep-alive connections, {} B signed bodies, {}s per phase",
        knobs.connections,
        driver::BODY_BYTES,
        knobs.seconds.as_secs()
    );
    if let Ok(threads) = std::env::var("TOKIO_WORKER_THREADS") {
        println!("hookd and baseline runtimes: TOKIO_WORKER_THREADS={threads}");
    }
}

/// Where the end-to-end search starts without an ingest ceiling to start
/// from (`LOAD_PHASES=e2e`), events/s.
const PARTIAL_E2E_START: f64 = 25_000.0;

/// Only the named phases (`LOAD_PHASES=e2e,log,spool`): end to end with one
/// and two destinations, the event log's memory and listing latency, and
/// the spool, none of which needs the baseline.
async fn run_some(knobs: Knobs, phases: &str) {
    print_setup(&knobs);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    let wanted = |name: &str| phases.split(',').any(|p| p.trim() == name);
    if wanted("e2e") {
        let servers::Stack {
            hookd,
            delivered,
            redis,
        } = &servers::Stack::start(knobs.e2e_in_flight);
        let target = e2e::Target::e2e(hookd, redis, delivered, knobs.e2e_connections);
        let search = phases::e2e_search(&knobs, &target, PARTIAL_E2E_START).await;
        let hold = phases::e2e_hold(&target, search.rate, knobs.e2e_seconds).await;
        let two = e2e::Target::fanout(hookd, redis, delivered, knobs.e2e_connections);
        let fanout = routes::fanout(&knobs, &target, &two, &hold).await;
        report::partial_e2e_rows(&knobs, &search, &hold);
        routes::fanout_rows(&fanout, &hold);
    }
    if wanted("log") {
        let servers::Stack { hookd, redis, .. } = &servers::Stack::start(knobs.e2e_in_flight);
        let memory = log::memory(&knobs, hookd, redis).await;
        let listing = log::listing(&knobs, hookd, redis).await;
        log::partial_rows(&memory, &listing);
    }
    if wanted("log_cost") {
        let servers::Stack {
            hookd,
            delivered,
            redis,
        } = &servers::Stack::start(knobs.e2e_in_flight);
        let start = knobs.e2e_rate.unwrap_or(PARTIAL_E2E_START);
        let rate = (turns::TURN_SHARE * start).round();
        let compare = log::compare(&knobs, hookd, redis, delivered, rate, start).await;
        log::compare_rows(&compare);
    }
    if wanted("spool") {
        let run = spool::measure(&knobs).await;
        spool::rows(&run);
        let (goal, measured, _) = spool::drain_goal(&run);
        println!("| {goal} | {measured} |");
    }
}

async fn run(knobs: Knobs) {
    print_setup(&knobs);
    // The baseline and hookd, each on its own Redis, both up for the whole
    // ingest comparison so their rounds can alternate: this VM's speed
    // drifts by tens of percent within minutes, and alternating keeps that
    // drift out of the ratio.
    let baseline = phases::Baseline::start();
    let servers::Stack {
        hookd,
        delivered,
        redis,
    } = &servers::Stack::start(knobs.e2e_in_flight);

    let ingest = phases::ingest_rounds(&knobs, &baseline, redis, hookd).await;
    drop(baseline);
    let memory = routes::memory(&knobs, hookd, redis).await;
    let half = phases::half_rate(&knobs, hookd, ingest.max_rate() / 2.0).await;
    let mixed = phases::mixed(&knobs, hookd).await;
    let e2e = e2e::Target::e2e(hookd, redis, delivered, knobs.e2e_connections);
    let search = phases::e2e_search(&knobs, &e2e, ingest.max_rate() * 0.6).await;
    let hold = phases::e2e_hold(&e2e, search.rate, knobs.e2e_seconds).await;
    let census = phases::census(&e2e, hold.e2e.offered).await;
    let two = e2e::Target::fanout(hookd, redis, delivered, knobs.e2e_connections);
    let fanout = routes::fanout(&knobs, &e2e, &two, &hold).await;
    let log_rate = (turns::TURN_SHARE * hold.deliveries_per_second()).round();
    let log_compare =
        log::compare(&knobs, hookd, redis, delivered, log_rate, hold.e2e.run.rate).await;
    let log_memory = log::memory(&knobs, hookd, redis).await;
    let listing = log::listing(&knobs, hookd, redis).await;
    let spool = spool::measure(&knobs).await;
    let soak = phases::soak(&knobs, hookd, hold.e2e.offered).await;

    report::Report {
        knobs: &knobs,
        ingest: &ingest,
        half: &half,
        mixed: &mixed,
        search: &search,
        hold: &hold,
        census: &census,
        fanout: &fanout,
        memory: &memory,
        log_memory: &log_memory,
        listing: &listing,
        log_compare: &log_compare,
        spool: &spool,
        soak: &soak,
    }
    .print();
}

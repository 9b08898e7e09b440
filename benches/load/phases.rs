//! The phases of a run, one function each, in the order `run` calls them.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hookd::queue::SourceKeys;

use crate::Knobs;
use crate::cpu::CpuTicks;
use crate::driver::{
    PAUSE_MS, Pacing, Summary, closed_loop, drive, median, pace, use_wrk, wrk_in_background,
};
use crate::e2e::{self, E2e};
use crate::servers::{self, Hookd, baseline};
use crate::support::{TestRedis, free_port, rss_kib};
use crate::turns::Side;

/// Alternating baseline/hookd rounds in the ingest comparison.
pub const ROUNDS: usize = 3;
/// Steps of the end-to-end rate search, how long each lasts, and how far
/// a step moves until the search has a rate that kept up and one that
/// fell behind (it bisects between them from then on).
pub const E2E_SEARCH_STEPS: usize = 5;
pub const E2E_SEARCH_STRIDE: f64 = 0.15;
pub const E2E_STEP_SECONDS: u64 = 15;
/// The step after the hold that counts hookd's system calls.
pub const E2E_CENSUS_SECONDS: u64 = 10;

/// The bare baseline server, on its own Redis.
pub struct Baseline {
    pub redis: TestRedis,
    pub process: Child,
    pub addr: SocketAddr,
}

impl Baseline {
    pub fn start() -> Self {
        let redis = TestRedis::start();
        let port = free_port();
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args(["--serve-baseline", &redis.url(), &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(process.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
        }
        Self {
            redis,
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The ingest comparison: baseline and hookd's ingest ceiling in
/// alternating rounds.
pub struct Ingest {
    pub bases: Vec<Summary>,
    pub maxes: Vec<Summary>,
    /// The same source with two destinations.
    pub fanouts: Vec<Summary>,
    /// CPU of every round, to say where a closed-loop event's CPU goes.
    pub base_cpu: CpuTicks,
    pub max_cpu: CpuTicks,
    /// hookd's Redis: (round trips, commands incl. inside Lua).
    pub calls: (u64, u64),
}

impl Ingest {
    /// Median of the rounds' hookd/baseline ratios.
    pub fn ratio(&self) -> f64 {
        median(self.ratios())
    }

    pub fn ratios(&self) -> Vec<f64> {
        Self::ratios_of(&self.bases, &self.maxes)
    }

    /// Median of the rounds' hookd-with-two-destinations/baseline ratios.
    pub fn fanout_ratio(&self) -> f64 {
        median(Self::ratios_of(&self.bases, &self.fanouts))
    }

    fn ratios_of(bases: &[Summary], runs: &[Summary]) -> Vec<f64> {
        bases
            .iter()
            .zip(runs)
            .map(|(b, m)| m.rate / b.rate)
            .collect()
    }

    pub fn fanout_rate(&self) -> f64 {
        median(self.fanouts.iter().map(|m| m.rate).collect())
    }

    pub fn base_rate(&self) -> f64 {
        median(self.bases.iter().map(|b| b.rate).collect())
    }

    pub fn max_rate(&self) -> f64 {
        median(self.maxes.iter().map(|m| m.rate).collect())
    }

    /// A round that accepted (almost) nothing, and why.
    pub fn failed_round(&self) -> Option<String> {
        self.bases
            .iter()
            .map(|r| ("baseline", r))
            .chain(self.maxes.iter().map(|r| ("hookd", r)))
            .chain(self.fanouts.iter().map(|r| ("hookd, 2 destinations", r)))
            .find_map(|(who, r)| r.accepted_nothing().map(|why| format!("{who}: {why}")))
    }
}

/// Every round, and the phases after the last, start from empty servers
/// (warm-up included).
fn forget_ingested(baseline: &Baseline, redis: &TestRedis) {
    servers::forget_ingested(&baseline.redis, &baseline::keys());
    servers::forget_ingested(redis, &SourceKeys::new("hookd", "ingest"));
    servers::forget_ingested(redis, &SourceKeys::new("hookd", "ingest2"));
}

pub async fn ingest_rounds(
    knobs: &Knobs,
    baseline: &Baseline,
    redis: &TestRedis,
    hookd: &Hookd,
) -> Ingest {
    let warm = Duration::from_secs(2);
    let c = knobs.connections;
    closed_loop(baseline.addr, "/", c, warm, "warm_b").await;
    closed_loop(hookd.public, "/webhooks/ingest", c, warm, "warm_h").await;
    closed_loop(hookd.public, "/webhooks/ingest2", c, warm, "warm_f").await;
    let mut ingest = Ingest {
        bases: Vec::new(),
        maxes: Vec::new(),
        fanouts: Vec::new(),
        base_cpu: CpuTicks::default(),
        max_cpu: CpuTicks::default(),
        calls: (0, 0),
    };
    let (base_pid, base_redis) = (baseline.process.id(), baseline.redis.pid());
    let (hookd_pid, hookd_redis) = (hookd.child.id(), redis.pid());
    for round in 0..ROUNDS {
        // Each round runs all three, in an order that rotates from round
        // to round, so no side always runs right after a given other; and
        // each starts right after both Redis servers forgot the last run's
        // events, so whatever that leaves Redis doing weighs on all alike.
        for run in rotated(round) {
            forget_ingested(baseline, redis);
            match run {
                RoundRun::Baseline => {
                    let cpu = CpuTicks::now(base_pid, base_redis);
                    let run = closed_loop(
                        baseline.addr,
                        "/",
                        c,
                        knobs.seconds,
                        &format!("base{round}"),
                    )
                    .await;
                    ingest.bases.push(run);
                    ingest
                        .base_cpu
                        .add(CpuTicks::now(base_pid, base_redis).since(cpu));
                }
                RoundRun::OneDestination => {
                    let calls_before = servers::calls(redis);
                    let cpu = CpuTicks::now(hookd_pid, hookd_redis);
                    let run = hookd_round(hookd, "ingest", c, knobs, &format!("max{round}")).await;
                    ingest.maxes.push(run);
                    ingest
                        .max_cpu
                        .add(CpuTicks::now(hookd_pid, hookd_redis).since(cpu));
                    let calls_after = servers::calls(redis);
                    ingest.calls.0 += calls_after.0 - calls_before.0;
                    ingest.calls.1 += calls_after.1 - calls_before.1;
                }
                RoundRun::TwoDestinations => {
                    let run = hookd_round(hookd, "ingest2", c, knobs, &format!("fan{round}")).await;
                    ingest.fanouts.push(run);
                }
            }
        }
    }
    forget_ingested(baseline, redis);
    ingest
}

/// The three runs of an ingest round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundRun {
    Baseline,
    OneDestination,
    TwoDestinations,
}

/// The order of round `round`'s runs: the three rotate.
fn rotated(round: usize) -> [RoundRun; 3] {
    let mut order = [
        RoundRun::Baseline,
        RoundRun::OneDestination,
        RoundRun::TwoDestinations,
    ];
    let len = order.len();
    order.rotate_left(round % len);
    order
}

/// One closed-loop ingest run against one of hookd's sources, with the
/// answers it got by outcome.
async fn hookd_round(
    hookd: &Hookd,
    source: &str,
    connections: usize,
    knobs: &Knobs,
    name: &str,
) -> Summary {
    let outcomes = hookd.ingest_outcomes(source);
    let path = servers::webhook_path(source);
    let mut run = closed_loop(hookd.public, path, connections, knobs.seconds, name).await;
    run.outcomes = hookd.ingest_outcomes_since(source, &outcomes);
    run
}

/// Latency at about half the ceiling: paced wrk (cheap, so the figure is
/// hookd's), and the in-repo driver in open loop (counts from each
/// request's scheduled send time, so a stall anywhere shows).
pub struct HalfRate {
    pub paced: Option<Summary>,
    pub open: Summary,
}

pub async fn half_rate(knobs: &Knobs, hookd: &Hookd, rate: f64) -> HalfRate {
    let path = "/webhooks/ingest";
    let paced = if use_wrk() {
        let connections = pace(hookd.public, path, rate, "half").await;
        Some(
            wrk_in_background(
                hookd.public,
                path,
                connections,
                knobs.seconds,
                "half_paced".into(),
                Pacing::PauseMs(PAUSE_MS),
            )
            .await,
        )
    } else {
        None
    };
    let open = drive(
        hookd.public,
        path,
        knobs.connections,
        knobs.seconds,
        Some(rate),
        "half",
    )
    .await
    .summary();
    HalfRate { paced, open }
}

/// hookd ingest while delivering everything (the e2e source), closed loop.
pub async fn mixed(knobs: &Knobs, hookd: &Hookd) -> Summary {
    let run = closed_loop(
        hookd.public,
        "/webhooks/e2e",
        knobs.connections,
        knobs.seconds,
        "mixed",
    )
    .await;
    // Let the backlog drain before the end-to-end phases.
    hookd.drain(Duration::from_secs(120)).await;
    run
}

/// The highest offered rate the whole pipeline keeps up with: short
/// steps, 15% up or down until one kept up and one fell behind, then
/// halving the gap between the best that kept up and the lowest that fell
/// behind.
pub struct Search {
    /// Each step's rate and whether it kept up ('' when a rate was given).
    pub steps: String,
    pub rate: f64,
}

pub async fn e2e_search(knobs: &Knobs, target: &e2e::Target<'_>, start_rate: f64) -> Search {
    if let Some(rate) = knobs.e2e_rate.map(|r| r / target.copies as f64) {
        return Search {
            steps: String::new(),
            rate,
        };
    }
    let mut search = Side::searching(*target, start_rate, E2E_SEARCH_STRIDE);
    for step in 0..E2E_SEARCH_STEPS {
        let prefix = format!("{}_search{step}", target.source);
        search
            .step(&prefix, Duration::from_secs(E2E_STEP_SECONDS))
            .await;
        target.hookd.drain(Duration::from_secs(120)).await;
    }
    Search {
        steps: search.describe(),
        rate: search.capacity().unwrap_or(search.next_rate()).round(),
    }
}

/// The end-to-end hold at the chosen rate, and what it left undelivered.
pub struct Hold {
    pub e2e: E2e,
    /// Deliveries owed for accepted events but never made, after up to a
    /// minute of draining.
    pub lost: u64,
    /// hookd's Redis: (round trips, commands incl. inside Lua).
    pub calls: (u64, u64),
    /// The offered rate of a hold that fell behind before this one, if
    /// this one is its retry.
    pub retried_from: Option<f64>,
}

impl Hold {
    /// What the sink received per second of the hold.
    pub fn deliveries_per_second(&self) -> f64 {
        self.e2e.delivered as f64 / self.e2e.run.seconds().max(1.0)
    }

    /// The events/s offered, and the retry if there was one, for a row's
    /// label.
    pub fn offered(&self) -> String {
        match self.retried_from {
            None => format!("{:.0} events/s offered", self.e2e.offered),
            Some(first) => format!(
                "{:.0} events/s offered (a first hold at {first:.0}/s fell behind)",
                self.e2e.offered
            ),
        }
    }
}

/// A hold that falls behind at the rate a short search step kept up with
/// is held once more, this share below what it accepted: the VM's speed
/// drifts, and 15 s that kept up do not promise a minute that does.
const HOLD_RETRY_SHARE: f64 = 0.95;

pub async fn e2e_hold(target: &e2e::Target<'_>, rate: f64, seconds: Duration) -> Hold {
    let e2e::Target {
        hookd,
        redis,
        delivered,
        source,
        ..
    } = *target;
    let before = delivered.load(Ordering::Relaxed);
    let mut owed = 0;
    let mut rate = rate;
    let mut retried_from = None;
    loop {
        let calls_before = servers::calls(redis);
        let outcomes = hookd.ingest_outcomes(source);
        // A retry's events need ids of their own: a repeated id would be a
        // duplicate, accepted but never delivered.
        let prefix = match retried_from {
            None => source.to_owned(),
            Some(_) => format!("{source}_retry"),
        };
        let mut e2e = e2e::step(target, rate, seconds, &prefix, false).await;
        e2e.run.outcomes = hookd.ingest_outcomes_since(source, &outcomes);
        owed += e2e.owed();
        if !e2e.kept_up() && retried_from.is_none() && e2e.run.accepted_nothing().is_none() {
            retried_from = Some(rate);
            rate = (HOLD_RETRY_SHARE * e2e.run.rate.min(rate)).round();
            hookd.drain(Duration::from_secs(120)).await;
            continue;
        }
        let lost = e2e::undelivered(delivered, before, owed).await;
        let calls_after = servers::calls(redis);
        return Hold {
            e2e,
            lost,
            calls: (
                calls_after.0 - calls_before.0,
                calls_after.1 - calls_before.1,
            ),
            retried_from,
        };
    }
}

/// Where hookd's kernel time goes: system calls per event at the same
/// rate, in a short step of its own (tracepoints add about a microsecond
/// to every call).
pub async fn census(target: &e2e::Target<'_>, rate: f64) -> E2e {
    target.hookd.drain(Duration::from_secs(120)).await;
    e2e::step(
        target,
        rate,
        Duration::from_secs(E2E_CENSUS_SECONDS),
        "e2e_census",
        true,
    )
    .await
}

/// hookd's memory over a long run at the end-to-end rate.
pub struct Soak {
    pub seconds: u64,
    pub rate: f64,
    pub accepted: u64,
    /// RSS at the start, then after each minute (the last may be shorter).
    pub start_mib: u64,
    pub minutes_mib: Vec<u64>,
}

pub async fn soak(knobs: &Knobs, hookd: &Hookd, rate: f64) -> Option<Soak> {
    let seconds = knobs.soak_seconds;
    if seconds == 0 {
        return None;
    }
    let pid = hookd.child.id();
    let start_mib = rss_kib(pid) / 1024;
    let samples = tokio::task::spawn_blocking(move || {
        let mut samples = Vec::new();
        let start = Instant::now();
        let soak = Duration::from_secs(seconds);
        while let Some(left) = soak.checked_sub(start.elapsed()).filter(|l| !l.is_zero()) {
            std::thread::sleep(Duration::from_secs(60).min(left));
            samples.push(rss_kib(pid) / 1024);
        }
        samples
    });
    let run = drive(
        hookd.public,
        "/webhooks/e2e",
        knobs.connections,
        Duration::from_secs(seconds),
        Some(rate),
        "soak",
    )
    .await;
    Some(Soak {
        seconds,
        rate,
        accepted: run.accepted,
        start_mib,
        minutes_mib: samples.await.unwrap(),
    })
}

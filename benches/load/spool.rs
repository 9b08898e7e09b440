//! The spool: ingest while Redis hangs (every event fsynced to the spool
//! before its 202, one fsync per batch), then the drain into Redis once it
//! answers again. A hookd of its own on a Redis of its own, so the other
//! phases' figures are not touched. (Ingest with the spool on and empty is
//! the ingest rounds' hookd: the bench's hookd always has it on.)

use std::time::{Duration, Instant};

use crate::Knobs;
use crate::driver::{Summary, closed_loop};
use crate::servers::{self, Hookd, http_get};
use crate::support::TestRedis;

pub struct SpoolRun {
    pub spooled: Summary,
    /// Answers `spooled` counted by hookd during the phase.
    pub spooled_answers: u64,
    /// Events the spool held when Redis came back.
    pub held: u64,
    /// From the first drained event to an empty spool.
    pub drain: Duration,
    /// From Redis answering again to the first drained event (health
    /// check and the drainer's look).
    pub drain_start: Duration,
    /// Events of the source that reached Redis (entries its stream took,
    /// whether still there, delivered or trimmed since).
    pub in_redis: u64,
    /// Every event hookd answered `spooled` for, counted once the spool
    /// had drained: requests still in flight when the driver stopped are
    /// spooled after `held` was read, so `held` alone can fall short.
    pub spooled_in_all: u64,
}

impl SpoolRun {
    pub fn drain_rate(&self) -> f64 {
        self.held as f64 / self.drain.as_secs_f64().max(1e-3)
    }
}

fn spool_events(hookd: &Hookd) -> Option<u64> {
    let (_, body) = http_get(hookd.admin, "/health")?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["spool"]["events"].as_u64()
}

/// XINFO STREAM's `entries-added`: every entry the stream took, trimmed
/// or not (0 when the stream does not exist).
fn stream_entries_added(redis: &TestRedis, stream: &str) -> u64 {
    let info = redis.cli(&["XINFO", "STREAM", stream]);
    let mut lines = info.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line == "entries-added" {
            return lines.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    0
}

fn redis_down(hookd: &Hookd) -> bool {
    http_get(hookd.admin, "/health")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .is_some_and(|json| json["redis"] == "down")
}

pub async fn measure(knobs: &Knobs) -> SpoolRun {
    let servers::Stack { hookd, redis, .. } = &servers::Stack::start(knobs.e2e_in_flight);
    // Hung, not refusing: the harder case (every call must time out).
    redis.freeze();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_down(hookd) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = hookd.ingest_outcomes("ingest");
    let spooled = closed_loop(
        hookd.public,
        servers::webhook_path("ingest"),
        knobs.connections,
        knobs.seconds,
        "spooled",
    )
    .await;
    let spooled_since_hung = || {
        hookd
            .ingest_outcomes_since("ingest", &before)
            .get("spooled")
            .copied()
            .unwrap_or(0)
    };
    let spooled_answers = spooled_since_hung();
    let held = spool_events(hookd).unwrap_or(0);
    redis.thaw();
    let thawed = Instant::now();
    let mut first = None;
    let deadline = thawed + Duration::from_secs(180);
    loop {
        let left = spool_events(hookd).unwrap_or(held);
        if first.is_none() && left < held {
            first = Some(Instant::now());
        }
        if left == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    let first = first.unwrap_or(done);
    // Every entry the stream ever took: the log trims delivered ones and
    // deliveries go on meanwhile, so its length plus the deliveries would
    // count an event delivered but not yet trimmed twice.
    let in_redis = stream_entries_added(redis, "hookd:{ingest}:stream");
    let spooled_in_all = spooled_since_hung();
    SpoolRun {
        spooled_in_all,
        spooled,
        spooled_answers,
        held,
        drain: done - first,
        drain_start: first - thawed,
        in_redis,
    }
}

fn row(measure: &str, value: impl std::fmt::Display) {
    println!("| {measure} | {value} |");
}

pub fn rows(run: &SpoolRun) {
    row(
        "spool: accepted/s with Redis hung (SIGSTOP), every event fsynced before its 202, closed loop",
        run.spooled.accepted_nothing().unwrap_or_else(|| {
            format!(
                "{:.0} (p50 {:.2} ms, p99 {:.2} ms; {} answered spooled)",
                run.spooled.rate, run.spooled.p50_ms, run.spooled.p99_ms, run.spooled_answers
            )
        }),
    );
    row(
        "spool: drain into Redis once it answers: events, events/s (start after Redis answered); entries the stream took",
        format!(
            "{}, {:.0}/s ({:.2} s); {}",
            run.held,
            run.drain_rate(),
            run.drain_start.as_secs_f64(),
            run.in_redis
        ),
    );
}

pub fn goals(ingest: &crate::phases::Ingest, run: &SpoolRun) {
    const SPOOLED: f64 = 10_000.0;
    const EMPTY: f64 = 0.90;
    let met = |ok: bool| if ok { "yes" } else { "no" };
    println!(
        "| spooled ingest ≥ {SPOOLED:.0} signed 1 KiB events/s with fsync | {:.0}/s | {} |",
        run.spooled.rate,
        met(run.spooled.rate >= SPOOLED && run.spooled.accepted_nothing().is_none())
    );
    match ingest.failed_round() {
        Some(why) => println!(
            "| ingest with the spool on and empty ≥ {:.0}% of the baseline | {why} | no |",
            100.0 * EMPTY
        ),
        None => println!(
            "| ingest with the spool on and empty (the bench's hookd) ≥ {:.0}% of the same-run baseline | {:.0}% | {} |",
            100.0 * EMPTY,
            100.0 * ingest.ratio(),
            met(ingest.ratio() >= EMPTY)
        ),
    }
    let (goal, measured, ok) = drain_goal(run);
    println!("| {goal} | {measured} | {} |", met(ok));
}

/// The drain's goal, what this run measured, and whether it is met.
pub fn drain_goal(run: &SpoolRun) -> (String, String, bool) {
    const DRAIN: f64 = 20_000.0;
    (
        format!("drain ≥ {DRAIN:.0} events/s, nothing lost"),
        format!(
            "{:.0}/s, {} of {} spooled events in Redis",
            run.drain_rate(),
            run.in_redis,
            run.spooled_in_all
        ),
        run.drain_rate() >= DRAIN && run.spooled_in_all > 0 && run.in_redis >= run.spooled_in_all,
    )
}

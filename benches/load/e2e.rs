//! End to end: ingest + delivery to the sink + acknowledgement, offered
//! at a fixed rate (open loop), with the backlog, RSS and CPU sampled.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cpu::{CpuTicks, cores};
use crate::driver::{Pacing, Summary, drive, use_wrk, wrk_in_background};
use crate::servers::{Hookd, backlog, webhook_path};
use crate::support::{TestRedis, rss_kib};

/// One end-to-end phase at a fixed offered rate.
pub struct E2e {
    /// Events/s the driver's schedule offered.
    pub offered: f64,
    pub run: Summary,
    /// Deliveries the sink counted during the phase.
    pub delivered: u64,
    /// Deliveries each event makes (its source's destinations).
    pub copies: u64,
    /// The e2e source's backlog, sampled every second.
    pub backlog: Vec<u64>,
    pub peak_rss_kib: u64,
    /// CPU used during the phase, by process and by the whole machine.
    pub cpu: CpuTicks,
    /// hookd's system calls during the phase, by name, when counted (empty
    /// without perf).
    pub syscalls: Vec<(String, u64)>,
    /// Events hookd answered `spooled` during the phase: with the spool on,
    /// ingest that waits too long for Redis goes to disk instead.
    pub spooled: u64,
}

impl E2e {
    /// The pipeline kept pace with the offered rate: ingest accepted at
    /// least 95% of the schedule (the driver catches up when answers come
    /// late, so a shortfall means ingest itself was saturated), at most 2%
    /// of what was accepted is still waiting at the end, and the backlog
    /// did not drift upwards: its mean over the last third is at most half
    /// a second of traffic above its mean over the first third. (Near the
    /// machine's limit delivery can run at 99.5% of ingest, well inside
    /// the 2%, while the backlog grows by a few hundred events every
    /// second.)
    pub fn kept_up(&self) -> bool {
        let [(early, _), (late, _)] = self.backlog_thirds();
        self.run.accepted > 0
            && self.run.rate >= 0.95 * self.offered
            && self.delivered as f64 >= 0.98 * self.owed() as f64
            && late as f64 <= early as f64 + 0.5 * (self.copies as f64 * self.run.rate)
    }

    /// Deliveries the accepted events owe: one per destination.
    pub fn owed(&self) -> u64 {
        self.copies * self.run.accepted
    }

    /// CPU µs per event of everything on the machine but hookd.
    pub fn others_per_event(&self) -> f64 {
        let per = |ticks| CpuTicks::per_event(ticks, self.run.accepted);
        (per(self.cpu.machine_busy) - per(self.cpu.server)).max(1.0)
    }

    /// The rate the machine could reach if hookd used no CPU at all.
    pub fn ceiling(&self) -> f64 {
        cores() * 1e6 / self.others_per_event()
    }

    /// Mean and largest backlog in the first and in the last third of the
    /// samples: near the machine's limit the backlog swings by thousands
    /// within seconds, and the means show a trend the maxima hide.
    pub fn backlog_thirds(&self) -> [(u64, u64); 2] {
        let third = (self.backlog.len() / 3).max(1).min(self.backlog.len());
        let mean_max = |s: &[u64]| {
            let mean = s.iter().sum::<u64>() / (s.len() as u64).max(1);
            (mean, s.iter().copied().max().unwrap_or(0))
        };
        [
            mean_max(&self.backlog[..third]),
            mean_max(&self.backlog[self.backlog.len() - third..]),
        ]
    }
}

/// Offers `rate` signed events/s to the e2e source for `duration`, open
/// loop: wrk on a fixed schedule when available (it costs the shared CPUs
/// less), else the in-repo driver.
/// What an end-to-end step drives and watches.
pub struct Target<'a> {
    pub hookd: &'a Hookd,
    pub redis: &'a TestRedis,
    /// Deliveries the sink has counted.
    pub delivered: &'a AtomicU64,
    /// Connections the driver offers its rate over.
    pub connections: usize,
    /// The source driven, and how many destinations it delivers each
    /// event to.
    pub source: &'static str,
    pub copies: u64,
}

impl<'a> Target<'a> {
    /// The one-destination `e2e` source.
    pub fn e2e(
        hookd: &'a Hookd,
        redis: &'a TestRedis,
        delivered: &'a AtomicU64,
        connections: usize,
    ) -> Self {
        Self {
            hookd,
            redis,
            delivered,
            connections,
            source: "e2e",
            copies: 1,
        }
    }

    /// The two-destination `fanout` source.
    pub fn fanout(
        hookd: &'a Hookd,
        redis: &'a TestRedis,
        delivered: &'a AtomicU64,
        connections: usize,
    ) -> Self {
        Self {
            source: "fanout",
            copies: 2,
            ..Self::e2e(hookd, redis, delivered, connections)
        }
    }
}

pub async fn step(
    target: &Target<'_>,
    rate: f64,
    duration: Duration,
    prefix: &str,
    count_syscalls: bool,
) -> E2e {
    let Target {
        hookd,
        redis,
        delivered,
        connections,
        source,
        copies,
    } = *target;
    let path = webhook_path(source);
    // Open loop still waits for each answer per connection, so the
    // offered rate needs connections > rate × latency.
    let before = delivered.load(Ordering::Relaxed);
    let pid = hookd.child.id();
    let redis_pid = redis.pid();
    let admin = hookd.admin;
    let cpu_before = CpuTicks::now(pid, redis_pid);
    let outcomes_before = hookd.ingest_outcomes(source);
    // Tracepoints cost each system call about a microsecond, so calls are
    // counted in a step of their own, not in one whose CPU is reported.
    let census = tokio::task::spawn_blocking(move || {
        if count_syscalls {
            syscall_census(pid, duration)
        } else {
            Vec::new()
        }
    });
    // E2E_TRACE=1 prints every sample, to see how the backlog moves.
    let trace = std::env::var_os("E2E_TRACE").is_some();
    let sampler = tokio::task::spawn_blocking(move || {
        let mut peak = 0;
        let mut samples = Vec::new();
        let start = Instant::now();
        while start.elapsed() < duration {
            peak = peak.max(rss_kib(pid));
            let waiting = backlog(admin, source);
            if trace {
                eprintln!(
                    "e2e {:>4} ms: backlog {waiting}",
                    start.elapsed().as_millis()
                );
            }
            samples.push(waiting);
            std::thread::sleep(Duration::from_secs(1));
        }
        (peak, samples)
    });
    let run = if use_wrk() {
        wrk_in_background(
            hookd.public,
            path,
            connections,
            duration,
            prefix.to_owned(),
            Pacing::Rate(rate),
        )
        .await
    } else {
        drive(
            hookd.public,
            path,
            connections,
            duration,
            Some(rate),
            prefix,
        )
        .await
        .summary()
    };
    let (peak_rss_kib, backlog) = sampler.await.unwrap();
    E2e {
        offered: rate,
        run,
        delivered: delivered.load(Ordering::Relaxed) - before,
        copies,
        backlog,
        peak_rss_kib,
        cpu: CpuTicks::now(pid, redis_pid).since(cpu_before),
        syscalls: census.await.unwrap(),
        spooled: hookd
            .ingest_outcomes_since(source, &outcomes_before)
            .get("spooled")
            .copied()
            .unwrap_or(0),
    }
}

/// The system calls hookd's kernel time goes to, counted by perf's
/// tracepoints over `duration`: the kernel share of hookd's CPU is mostly
/// per-call loopback work, so calls per event is the lever. Empty when perf
/// or its tracepoints are not available here.
fn syscall_census(pid: u32, duration: Duration) -> Vec<(String, u64)> {
    const CALLS: [&str; 9] = [
        "read",
        "write",
        "writev",
        "recvfrom",
        "sendto",
        "epoll_wait",
        "futex",
        "sched_yield",
        "accept4",
    ];
    let mut events = vec!["raw_syscalls:sys_enter".to_owned()];
    events.extend(CALLS.iter().map(|c| format!("syscalls:sys_enter_{c}")));
    let output = Command::new("perf")
        .args([
            "stat",
            "-x",
            ",",
            "-e",
            &events.join(","),
            "-p",
            &pid.to_string(),
        ])
        .args(["--", "sleep", &duration.as_secs_f64().to_string()])
        .stdout(Stdio::null())
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    // perf stat -x, writes "count,unit,event,..." lines to stderr.
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let count = fields.next()?.parse().ok()?;
            let event = fields.nth(1)?;
            let name = event
                .strip_prefix("syscalls:sys_enter_")
                .or(event.strip_prefix("raw_syscalls:sys_enter").map(|_| "all"))?;
            Some((name.to_owned(), count))
        })
        .collect()
}

/// Waits up to a minute for the sink to count `owed` deliveries beyond
/// `before`, and returns how many it did not.
pub async fn undelivered(delivered: &AtomicU64, before: u64, owed: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) - before < owed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    owed.saturating_sub(delivered.load(Ordering::Relaxed) - before)
}

/// What a capacity search knows: the highest rate a step kept up with and
/// the lowest offered rate a step fell behind at. The next step bisects
/// between them once both are known, and moves by `stride` until then; a
/// fixed stride alone leaves the capacity anywhere within one stride
/// above the best rate found.
#[derive(Debug, Clone, Copy)]
pub struct Bracket {
    /// Highest accepted/s of a step that kept up.
    pub kept: Option<f64>,
    /// Lowest offered rate of a step that fell behind.
    pub fell: Option<f64>,
    /// The share a step moves by before both ends are known.
    pub stride: f64,
}

impl Bracket {
    pub fn new(stride: f64) -> Self {
        Self {
            kept: None,
            fell: None,
            stride,
        }
    }

    /// Takes in a step offered at `offered`.
    pub fn record(&mut self, offered: f64, step: &E2e) {
        self.take(offered, step.run.rate, step.kept_up());
    }

    /// Takes in a step offered at `offered` that accepted `accepted`/s.
    fn take(&mut self, offered: f64, accepted: f64, kept_up: bool) {
        if kept_up {
            self.kept = Some(self.kept.map_or(accepted, |k| k.max(accepted)));
        } else {
            self.fell = Some(self.fell.map_or(offered, |f| f.min(offered)));
        }
    }

    /// The rate of the step after one offered at `last`. Noise can leave a
    /// kept-up rate above a fallen one; the newer step then decides which
    /// way to move, and by less than a stride.
    pub fn next(&self, last: f64, last_kept_up: bool) -> f64 {
        let next = match (self.kept, self.fell) {
            (Some(kept), Some(fell)) if kept < fell => (kept + fell) / 2.0,
            (Some(_), Some(_)) if last_kept_up => last * (1.0 + self.stride / 2.0),
            (Some(_), Some(_)) => last * (1.0 - self.stride / 2.0),
            (Some(kept), None) => kept * (1.0 + self.stride),
            (None, Some(fell)) => fell * (1.0 - self.stride),
            (None, None) => last,
        };
        next.round()
    }
}

/// Under `cargo test`: the search moves by its stride until it has both
/// ends, then bisects, and follows the newer step when noise crossed them.
pub fn check_bracket() {
    let mut b = Bracket::new(0.1);
    assert_eq!(b.next(1000.0, true), 1000.0);
    b.take(1000.0, 1000.0, true);
    assert_eq!(b.next(1000.0, true), 1100.0);
    b.take(1100.0, 1090.0, false);
    assert_eq!(b.next(1100.0, false), 1050.0);
    b.take(1050.0, 1050.0, true);
    assert_eq!(b.next(1050.0, true), 1075.0);
    b.take(1075.0, 1075.0, true);
    b.take(1050.0, 1040.0, false);
    assert_eq!(b.kept, Some(1075.0));
    assert_eq!(b.fell, Some(1050.0));
    assert_eq!(b.next(1050.0, false), 998.0);
    let mut down = Bracket::new(0.1);
    down.take(1000.0, 900.0, false);
    assert_eq!(down.next(1000.0, false), 900.0);
}

/// One end-to-end target's capacity search, as one side of
/// [`Capacities`].
pub struct CapacitySide<'a> {
    pub target: &'a Target<'a>,
    pub bracket: Bracket,
    pub steps: Vec<(f64, E2e)>,
    rate: f64,
}

impl<'a> CapacitySide<'a> {
    pub fn new(target: &'a Target<'a>, start_rate: f64, stride: f64) -> Self {
        Self {
            target,
            bracket: Bracket::new(stride),
            steps: Vec::new(),
            rate: start_rate.round(),
        }
    }

    /// Events/s of the best step that kept up (None if none did).
    pub fn capacity(&self) -> Option<f64> {
        self.bracket.kept
    }

    /// Deliveries/s at that capacity.
    pub fn deliveries(&self) -> Option<f64> {
        self.capacity().map(|c| c * self.target.copies as f64)
    }

    /// "rate kept up|fell behind" for each step, in order.
    pub fn describe(&self) -> String {
        self.steps
            .iter()
            .map(|(offered, step)| match step.run.accepted_nothing() {
                Some(why) => format!("{offered:.0}/s offered: {why}"),
                None => format!(
                    "{:.0}/s {}",
                    step.run.rate,
                    if step.kept_up() {
                        "kept up"
                    } else {
                        "fell behind"
                    }
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Two targets each search for their own capacity, taking turns step by
/// step (each after a drain): this VM's speed drifts by tens of percent
/// within minutes, so two capacities measured minutes apart do not
/// compare, and two costs measured below capacity understate whichever
/// side batches less there.
pub struct Capacities<'a> {
    pub first: CapacitySide<'a>,
    pub second: CapacitySide<'a>,
    /// Deliveries owed for what both accepted but never made, after up to
    /// a minute of draining at the end.
    pub lost: u64,
}

impl<'a> Capacities<'a> {
    /// `name` keeps the steps' event ids apart from every other phase's.
    pub async fn run(
        name: &str,
        mut first: CapacitySide<'a>,
        mut second: CapacitySide<'a>,
        rounds: usize,
        seconds: Duration,
    ) -> Self {
        let hookd = first.target.hookd;
        let delivered = first.target.delivered;
        let before = delivered.load(Ordering::Relaxed);
        let mut owed = 0;
        for round in 0..rounds {
            for side in [&mut first, &mut second] {
                hookd.drain(Duration::from_secs(120)).await;
                let prefix = format!("{name}_{}{round}", side.target.source);
                let offered = side.rate;
                let result = step(side.target, offered, seconds, &prefix, false).await;
                side.bracket.record(offered, &result);
                side.rate = side.bracket.next(offered, result.kept_up());
                owed += result.owed();
                side.steps.push((offered, result));
            }
        }
        let lost = undelivered(delivered, before, owed).await;
        Self {
            first,
            second,
            lost,
        }
    }

    /// The second's deliveries/s at capacity as a multiple of the
    /// first's (None unless both kept up at some rate).
    pub fn ratio(&self) -> Option<f64> {
        Some(self.second.deliveries()? / self.first.deliveries()?)
    }
}

/// Turns run at this share of the rate a hold kept up with: at the edge,
/// noise decides which side falls behind, and a side that fell behind
/// leaves no CPU per event to compare.
pub const TURN_SHARE: f64 = 0.8;

/// Steps at two targets of one hookd that take turns, each after a drain:
/// this VM's speed drifts by tens of percent within minutes, and taking
/// turns keeps that drift out of a comparison between them.
pub struct Alternation {
    pub first: Vec<E2e>,
    pub second: Vec<E2e>,
    /// Deliveries owed for what both accepted but never made, after up to
    /// a minute of draining at the end.
    pub lost: u64,
}

/// One side of an [`Alternation`]: what is driven, at what rate.
#[derive(Clone, Copy)]
pub struct Turn<'a> {
    pub target: &'a Target<'a>,
    pub rate: f64,
}

impl Alternation {
    /// `name` keeps the steps' event ids apart from every other phase's:
    /// a repeated id would be a duplicate, accepted but never delivered.
    pub async fn run(
        name: &str,
        first: Turn<'_>,
        second: Turn<'_>,
        rounds: usize,
        seconds: Duration,
    ) -> Self {
        let hookd = first.target.hookd;
        let delivered = first.target.delivered;
        let before = delivered.load(Ordering::Relaxed);
        let mut result = Self {
            first: Vec::new(),
            second: Vec::new(),
            lost: 0,
        };
        for round in 0..rounds {
            for (turn, steps) in [(first, &mut result.first), (second, &mut result.second)] {
                hookd.drain(Duration::from_secs(120)).await;
                let prefix = format!("{name}_{}{round}", turn.target.source);
                steps.push(step(turn.target, turn.rate, seconds, &prefix, false).await);
            }
        }
        let owed = result
            .first
            .iter()
            .chain(&result.second)
            .map(E2e::owed)
            .sum();
        result.lost = undelivered(delivered, before, owed).await;
        result
    }

    /// The whole machine's CPU per delivery owed, first / second.
    pub fn machine_per_delivery(&self) -> (f64, f64) {
        let per = |steps: &[E2e]| {
            let busy: u64 = steps.iter().map(|s| s.cpu.machine_busy).sum();
            let deliveries: u64 = steps.iter().map(E2e::owed).sum();
            CpuTicks::per_event(busy, deliveries)
        };
        (per(&self.first), per(&self.second))
    }

    /// Capacity in deliveries/s of the second as a multiple of the
    /// first's: on a CPU-bound machine it scales with 1 ÷ machine CPU per
    /// delivery.
    pub fn capacity_ratio(&self) -> f64 {
        let (first, second) = self.machine_per_delivery();
        first / second.max(f64::MIN_POSITIVE)
    }

    /// Every step kept up.
    pub fn kept_up(&self) -> bool {
        self.first.iter().chain(&self.second).all(E2e::kept_up)
    }
}

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

    /// CPU µs per event: hookd (of which kernel) / Redis / the bench
    /// process / everything else (the whole machine).
    pub fn cpu_split(&self) -> String {
        let cpu = self.cpu;
        let per = |ticks| CpuTicks::per_event(ticks, self.run.accepted);
        let rest = cpu
            .machine_busy
            .saturating_sub(cpu.server + cpu.redis + cpu.bench);
        format!(
            "{:.1} ({:.1}) / {:.1} / {:.1} / {:.1} ({:.1})",
            per(cpu.server),
            per(cpu.server_kernel),
            per(cpu.redis),
            per(cpu.bench),
            per(rest),
            per(cpu.machine_busy),
        )
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

/// What an end-to-end step drives and watches.
#[derive(Clone, Copy)]
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

/// Offers `rate` signed events/s to the target's source for `duration`,
/// open loop: wrk on a fixed schedule when available (it costs the shared
/// CPUs less), else the in-repo driver.
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
    let e2e = E2e {
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
    };
    if trace {
        let [(early, _), (late, _)] = e2e.backlog_thirds();
        eprintln!(
            "e2e step {prefix}: offered {rate:.0}/s, accepted {:.0}/s, delivered {} of {} owed, backlog mean {early} -> {late}: {}",
            e2e.run.rate,
            e2e.delivered,
            e2e.owed(),
            if e2e.kept_up() {
                "kept up"
            } else {
                "fell behind"
            }
        );
        eprintln!(
            "e2e step {prefix}: CPU µs per event, hookd (kernel) / Redis / bench / rest (machine): {}",
            e2e.cpu_split()
        );
    }
    e2e
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

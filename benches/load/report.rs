//! The run's two tables: every measure, then the goals beside what this
//! run measured. A phase that accepted (almost) nothing says so, with its
//! answers, in place of the figures computed from it.

use crate::Knobs;
use crate::cpu::{CpuTicks, TICKS_PER_SECOND, cores};
use crate::driver::{Summary, accepted, median_run, use_wrk};
use crate::e2e::E2e;
use crate::log::{self, Compare, Listing};
use crate::phases::{
    E2E_CENSUS_SECONDS, E2E_STEP_SECONDS, HalfRate, Hold, Ingest, ROUNDS, Search, Soak,
};
use crate::routes::{self, Fanout, Memory};
use crate::spool::{self, SpoolRun};

/// The end-to-end rate the goals name, events/s.
pub const E2E_GOAL: u64 = 25_000;

pub struct Report<'a> {
    pub knobs: &'a Knobs,
    pub ingest: &'a Ingest,
    pub half: &'a HalfRate,
    pub mixed: &'a Summary,
    pub search: &'a Search,
    pub hold: &'a Hold,
    pub census: &'a E2e,
    pub fanout: &'a Fanout<'a>,
    pub memory: &'a Memory,
    pub log_memory: &'a log::Memory,
    pub listing: &'a Listing,
    pub log_compare: &'a Compare<'a>,
    pub spool: &'a SpoolRun,
    pub soak: &'a Option<Soak>,
}

fn row(measure: &str, value: impl std::fmt::Display) {
    println!("| {measure} | {value} |");
}

/// Per-event figures over a phase, or why there are none.
fn per_event(run: &Summary, figures: impl FnOnce() -> String) -> String {
    run.accepted_nothing().unwrap_or_else(figures)
}

impl Report<'_> {
    pub fn print(&self) {
        println!();
        println!("| measure | value |");
        println!("|---|---|");
        self.ingest_rows();
        self.e2e_rows();
        routes::rows(self.fanout, self.memory, self.hold);
        log::rows(self.log_memory, self.listing, self.log_compare);
        spool::rows(self.spool);
        self.memory_rows();
        self.answer_rows();
        self.goals();
    }

    fn ingest_rows(&self) {
        let ingest = self.ingest;
        // A round whose events went to the spool measured the spool, not
        // ingest into Redis: say so next to its rate.
        let rates = |runs: &[Summary]| {
            runs.iter()
                .map(|run| match run.outcomes.get("spooled") {
                    Some(spooled) => format!("{} ({spooled} answered spooled)", run.rate_or_why()),
                    None => run.rate_or_why(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        row(
            &format!(
                "baseline (bare hyper + same Lua round trip) accepted/s, median of {ROUNDS} rounds"
            ),
            format!(
                "{:.0} ({}; {})",
                ingest.base_rate(),
                rates(&ingest.bases),
                median_run(&ingest.bases).latency()
            ),
        );
        row(
            &format!(
                "hookd accepted/s, ingest only (deliveries held back), median of {ROUNDS} rounds"
            ),
            format!(
                "{:.0} ({}; {})",
                ingest.max_rate(),
                rates(&ingest.maxes),
                median_run(&ingest.maxes).latency()
            ),
        );
        row(
            &format!(
                "hookd accepted/s, a source of 2 destinations (deliveries held back), median of {ROUNDS} rounds"
            ),
            format!(
                "{:.0} ({}; {})",
                ingest.fanout_rate(),
                rates(&ingest.fanouts),
                median_run(&ingest.fanouts).latency()
            ),
        );
        row(
            "hookd / baseline, median of the rounds' ratios",
            match ingest.failed_round() {
                Some(why) => format!("no ratio: a round failed ({why})"),
                None => format!(
                    "{:.0}% ({})",
                    100.0 * ingest.ratio(),
                    ingest
                        .ratios()
                        .iter()
                        .map(|r| format!("{:.0}%", 100.0 * r))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        );
        // Where a closed-loop event's CPU goes, over all rounds. How busy
        // the machine was shows whether the closed loop's connections kept
        // it saturated or the rate was latency-bound.
        let window =
            cores() * (ROUNDS as f64 * self.knobs.seconds.as_secs_f64()) * TICKS_PER_SECOND;
        let split = |cpu: &CpuTicks, runs: &[Summary]| {
            let per = |ticks| CpuTicks::per_event(ticks, accepted(runs));
            format!(
                "{:.1} ({:.1}) / {:.1} / {:.1} ({:.1}, {:.0}% busy)",
                per(cpu.server),
                per(cpu.server_kernel),
                per(cpu.redis),
                per(cpu.machine_busy.saturating_sub(cpu.server + cpu.redis)),
                per(cpu.machine_busy),
                100.0 * cpu.machine_busy as f64 / window,
            )
        };
        let rest = if use_wrk() {
            "wrk, kernel and the rest"
        } else {
            "driver, kernel and the rest"
        };
        row(
            &format!(
                "ingest rounds: CPU µs per event: server (of which kernel) / its Redis / {rest} (whole machine, how busy)"
            ),
            match ingest.failed_round() {
                Some(why) => format!("none: {why}"),
                None => format!(
                    "baseline {}; hookd {}",
                    split(&ingest.base_cpu, &ingest.bases),
                    split(&ingest.max_cpu, &ingest.maxes)
                ),
            },
        );
        if let Some(paced) = &self.half.paced {
            row(
                &format!("hookd at about half that rate: {:.0}/s", paced.rate),
                per_event(paced, || paced.latency()),
            );
        }
        let open = &self.half.open;
        row(
            &format!("hookd at half that rate: {:.0}/s, open loop", open.rate),
            per_event(open, || open.latency()),
        );
        let events = accepted(&ingest.maxes).max(1) as f64;
        row(
            "Redis round trips per accepted event, ingest (commands incl. inside Lua)",
            match ingest.failed_round() {
                Some(why) => format!("none: {why}"),
                None => format!(
                    "{:.2} ({:.2})",
                    ingest.calls.0 as f64 / events,
                    ingest.calls.1 as f64 / events
                ),
            },
        );
        row(
            "hookd accepted/s while delivering everything, closed loop",
            per_event(self.mixed, || {
                format!("{:.0} ({})", self.mixed.rate, self.mixed.latency())
            }),
        );
    }

    fn e2e_rows(&self) {
        let knobs = self.knobs;
        if !self.search.steps.is_empty() {
            row(
                &format!(
                    "end to end, search for the highest rate delivery keeps up with ({E2E_STEP_SECONDS}s steps)"
                ),
                &self.search.steps,
            );
        }
        let e2e = &self.hold.e2e;
        let run = &e2e.run;
        row(
            &format!(
                "end to end for {}s at {} ({}, {} connections, {} deliveries in flight): accepted/s",
                knobs.e2e_seconds.as_secs(),
                self.hold.offered(),
                run.driver,
                knobs.e2e_connections,
                knobs.e2e_in_flight
            ),
            per_event(run, || {
                format!(
                    "{:.0} ({:.0}% of the baseline's ingest ceiling)",
                    run.rate,
                    100.0 * run.rate / self.ingest.base_rate()
                )
            }),
        );
        if run.accepted_nothing().is_some() {
            return;
        }
        row(
            "end to end: delivered/s during the window",
            format!(
                "{:.0}",
                e2e.delivered as f64 / knobs.e2e_seconds.as_secs_f64()
            ),
        );
        let [(early_mean, early_max), (late_mean, late_max)] = e2e.backlog_thirds();
        row(
            "end to end: backlog mean (max) first third → last third; last sample",
            format!(
                "{early_mean} ({early_max}) → {late_mean} ({late_max}); {}",
                e2e.backlog.last().copied().unwrap_or(0)
            ),
        );
        row(
            "end to end: lost (accepted − delivered after drain); answered spooled (Redis too slow to answer)",
            format!("{}; {}", self.hold.lost, e2e.spooled),
        );
        let events = run.accepted.max(1) as f64;
        row(
            "Redis round trips per event, ingest + delivery + ack (commands incl. inside Lua)",
            format!(
                "{:.2} ({:.2})",
                self.hold.calls.0 as f64 / events,
                self.hold.calls.1 as f64 / events
            ),
        );
        cpu_rows(knobs, e2e);
        let census = self.census;
        if !census.syscalls.is_empty() && census.run.accepted_nothing().is_none() {
            let events = census.run.accepted.max(1) as f64;
            let calls: Vec<String> = census
                .syscalls
                .iter()
                .filter(|(_, count)| *count > 0)
                .map(|(name, count)| format!("{name} {:.2}", *count as f64 / events))
                .collect();
            row(
                &format!(
                    "end to end: hookd system calls per event ({E2E_CENSUS_SECONDS}s more at {:.0}/s, perf tracepoints)",
                    census.run.rate
                ),
                calls.join(", "),
            );
        }
    }

    fn memory_rows(&self) {
        row(
            "hookd peak RSS under end-to-end load",
            format!("{:.1} MiB", self.hold.e2e.peak_rss_kib as f64 / 1024.0),
        );
        if let Some(soak) = self.soak {
            let series: Vec<String> = soak.minutes_mib.iter().map(|m| m.to_string()).collect();
            row(
                &format!(
                    "soak {}s at {:.0}/s: RSS MiB at start, then every minute",
                    soak.seconds, soak.rate
                ),
                format!(
                    "{} → {} (accepted {})",
                    soak.start_mib,
                    series.join(", "),
                    soak.accepted
                ),
            );
        }
    }

    fn runs(&self) -> Vec<&Summary> {
        let ingest = self.ingest;
        ingest
            .bases
            .iter()
            .chain(&ingest.maxes)
            .chain(&ingest.fanouts)
            .chain(&self.half.paced)
            .chain([
                &self.half.open,
                self.mixed,
                &self.hold.e2e.run,
                &self.census.run,
                &self.fanout.hold.e2e.run,
            ])
            .collect()
    }

    fn answer_rows(&self) {
        let runs = self.runs();
        row(
            "non-202 answers / connection errors (all phases)",
            format!(
                "{} / {}",
                runs.iter().map(|r| r.other).sum::<u64>(),
                runs.iter().map(|r| r.errors).sum::<u64>()
            ),
        );
    }

    /// The goals next to this run's figures, met or not.
    fn goals(&self) {
        const INGEST_RATIO: f64 = 0.8;
        const INGEST_RATE: f64 = 40_000.0;
        const P99_MS: f64 = 5.0;
        const E2E_SECONDS: u64 = 60;
        const RSS_MIB: f64 = 64.0;
        const SOAK_SECONDS: u64 = 600;
        // Growth from the soak's first minute to its last that still
        // counts as flat (allocator caches settle in the first minutes).
        const SOAK_GROWTH_MIB: u64 = 4;
        let met = |ok: bool| if ok { "yes" } else { "no" };
        let ingest = self.ingest;
        println!();
        println!("| goal | measured in this run | met |");
        println!("|---|---|---|");
        if let Some(why) = ingest.failed_round() {
            println!("| ingest goals | not measured: {why} | no |");
        } else {
            let busy = |cpu: &CpuTicks, runs: &[Summary]| {
                CpuTicks::per_event(cpu.machine_busy, accepted(runs))
            };
            println!(
                "| ingest ≥ {:.0}% of the same-run baseline | {:.0}% | {} |",
                100.0 * INGEST_RATIO,
                100.0 * ingest.ratio(),
                met(ingest.ratio() >= INGEST_RATIO)
            );
            println!(
                "| ≥ {INGEST_RATE:.0} signed 1 KiB webhooks/s accepted | {:.0}/s (the bare baseline: {:.0}/s; {INGEST_RATE:.0}/s on {:.0} cores leaves {:.1} µs of CPU per event for everything, the baseline's rounds used {:.1} and hookd's {:.1}) | {} |",
                ingest.max_rate(),
                ingest.base_rate(),
                cores(),
                cores() * 1e6 / INGEST_RATE,
                busy(&ingest.base_cpu, &ingest.bases),
                busy(&ingest.max_cpu, &ingest.maxes),
                met(ingest.max_rate() >= INGEST_RATE)
            );
            let events = accepted(&ingest.maxes).max(1) as f64;
            let trips = ingest.calls.0 as f64 / events;
            println!(
                "| one Redis round trip per ingested event (at most) | {trips:.2} | {} |",
                met(trips <= 1.0)
            );
        }
        let half = self.half.paced.as_ref().unwrap_or(&self.half.open);
        match half.accepted_nothing() {
            Some(why) => println!("| p99 ≤ {P99_MS:.0} ms at half that rate | {why} | no |"),
            None => println!(
                "| p99 ≤ {P99_MS:.0} ms at half that rate | {:.2} ms at {:.0}/s ({}) | {} |",
                half.p99_ms,
                half.rate,
                half.driver,
                met(half.p99_ms <= P99_MS)
            ),
        }
        let e2e = &self.hold.e2e;
        let seconds = self.knobs.e2e_seconds.as_secs();
        match e2e.run.accepted_nothing() {
            Some(why) => println!("| end to end ≥ {E2E_GOAL}/s for {E2E_SECONDS}s | {why} | no |"),
            None => {
                // The open-loop driver starts its schedule with the first
                // request, so a full-rate hold accepts a fraction of a
                // percent less.
                let kept_up = e2e.kept_up();
                let ok = e2e.run.rate >= 0.99 * E2E_GOAL as f64
                    && seconds >= E2E_SECONDS
                    && kept_up
                    && self.hold.lost == 0;
                println!(
                    "| end to end ≥ {E2E_GOAL}/s for {E2E_SECONDS}s, backlog not growing, 0 lost | {:.0}/s for {seconds}s, {}, {} lost (this machine's ceiling with a hookd that cost nothing: {:.0}/s) | {} |",
                    e2e.run.rate,
                    if kept_up { "kept up" } else { "fell behind" },
                    self.hold.lost,
                    e2e.ceiling(),
                    met(ok)
                );
            }
        }
        let rss = e2e.peak_rss_kib as f64 / 1024.0;
        println!(
            "| hookd RSS ≤ {RSS_MIB:.0} MiB under that load | {rss:.1} MiB | {} |",
            met(rss <= RSS_MIB)
        );
        match self.soak {
            Some(Soak {
                seconds,
                start_mib,
                minutes_mib,
                ..
            }) if !minutes_mib.is_empty() => {
                let first = minutes_mib[0];
                let last = minutes_mib[minutes_mib.len() - 1];
                println!(
                    "| RSS flat over a {}-minute soak (last minute ≤ first + {SOAK_GROWTH_MIB} MiB) | {start_mib} → {first} … {last} MiB over {seconds}s | {} |",
                    SOAK_SECONDS / 60,
                    if *seconds >= SOAK_SECONDS {
                        met(last <= first + SOAK_GROWTH_MIB)
                    } else {
                        "too short"
                    }
                );
            }
            _ => println!(
                "| RSS flat over a {}-minute soak | not run (SOAK_SECONDS={SOAK_SECONDS}) | - |",
                SOAK_SECONDS / 60
            ),
        }
        let commands = self.hold.calls.1 as f64 / e2e.run.accepted.max(1) as f64;
        println!("| Redis commands per event, end to end (stated) | {commands:.2} | - |");
        routes::goals(
            ingest,
            self.fanout,
            self.memory,
            self.hold,
            self.log_compare,
        );
        log::goals(ingest, self.log_memory, self.listing, self.log_compare);
        spool::goals(ingest, self.spool);
    }
}

/// Where the shared CPUs went during an end-to-end phase, per event: the
/// share that is not hookd's bounds what any hookd could reach on this
/// machine.
pub fn cpu_rows(knobs: &Knobs, e2e: &E2e) {
    let run = &e2e.run;
    let cpu = e2e.cpu;
    let (bench, rest_label) = if use_wrk() {
        ("sink", "wrk, kernel and the rest")
    } else {
        ("sink + driver", "kernel and the rest")
    };
    let cores = cores();
    let window = cores * knobs.e2e_seconds.as_secs_f64() * TICKS_PER_SECOND;
    row(
        &format!(
            "end to end: CPU µs per event: hookd (of which kernel) / Redis / {bench} / {rest_label} (whole machine)"
        ),
        e2e.cpu_split(),
    );
    row(
        "end to end: machine busy, hookd's share of it, VM steal",
        format!(
            "{:.0}%, {:.0}%, {:.1}%",
            100.0 * cpu.machine_busy as f64 / window,
            100.0 * cpu.server as f64 / cpu.machine_busy.max(1) as f64,
            100.0 * cpu.machine_steal as f64 / window,
        ),
    );
    row(
        &format!(
            "end to end: ceiling on this machine if hookd used no CPU at all ({cores:.0} cores ÷ everything else's µs per event)"
        ),
        format!("{:.0}/s", e2e.ceiling()),
    );
    let others = e2e.others_per_event();
    let budget = (cores * 1e6 - E2E_GOAL as f64 * others) / E2E_GOAL as f64;
    row(
        &format!(
            "end to end: hookd's CPU budget per event at {E2E_GOAL}/s, if everything else costs what it did here"
        ),
        format!(
            "{} (used {:.1} µs)",
            if budget > 0.0 {
                format!("{budget:.1} µs")
            } else {
                "none: everything else alone would need more than the machine".to_owned()
            },
            CpuTicks::per_event(cpu.server, run.accepted),
        ),
    );
}

/// The end-to-end rows of a run without the baseline (`LOAD_PHASES=e2e`).
pub fn partial_e2e_rows(knobs: &Knobs, search: &Search, hold: &Hold) {
    if !search.steps.is_empty() {
        row(
            &format!("end to end, rate search ({E2E_STEP_SECONDS}s steps)"),
            &search.steps,
        );
    }
    let e2e = &hold.e2e;
    let run = &e2e.run;
    row(
        &format!(
            "end to end for {}s at {} ({} connections, {} deliveries in flight): accepted/s; delivered/s; kept up; lost; answered spooled",
            knobs.e2e_seconds.as_secs(),
            hold.offered(),
            knobs.e2e_connections,
            knobs.e2e_in_flight
        ),
        per_event(run, || {
            format!(
                "{:.0}; {:.0}; {}; {}; {}",
                run.rate,
                e2e.delivered as f64 / knobs.e2e_seconds.as_secs_f64(),
                if e2e.kept_up() { "yes" } else { "no" },
                hold.lost,
                e2e.spooled
            )
        }),
    );
    if run.accepted_nothing().is_none() {
        row(
            "Redis round trips per event, ingest + delivery + ack (commands incl. inside Lua)",
            format!(
                "{:.2} ({:.2})",
                hold.calls.0 as f64 / run.accepted.max(1) as f64,
                hold.calls.1 as f64 / run.accepted.max(1) as f64
            ),
        );
        cpu_rows(knobs, e2e);
    }
}

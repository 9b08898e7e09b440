//! What routes cost: Redis memory per queued event with one and with two
//! destinations, and end to end with two destinations receiving every
//! event. (Ingest with two destinations runs in the ingest rounds, beside
//! the baseline.)

use std::time::Duration;

use hookd::queue::SourceKeys;

use crate::Knobs;
use crate::cpu::CpuTicks;
use crate::driver::closed_loop;
use crate::e2e::Target;
use crate::phases::{self, Hold, Search};
use crate::servers::{self, Hookd, used_memory};
use crate::support::TestRedis;
use crate::turns::{Side, Turns};

/// How long each memory measurement ingests for.
const MEMORY_SECONDS: u64 = 3;
/// The fan-out hold (the one-destination hold has its own knob).
const FANOUT_HOLD_SECONDS: u64 = 30;
/// Each step of the turns in which one destination and two each search
/// for their capacity, and how many steps each side takes.
const TURN_SECONDS: u64 = 20;
const TURN_ROUNDS: usize = 4;
/// How far a turn's rate moves until its side has a rate that kept up and
/// one that fell behind; the holds already put each side near its edge.
const TURN_STRIDE: f64 = 0.08;

/// Redis memory per event queued (accepted, not yet delivered), bytes.
pub struct Memory {
    pub one: f64,
    pub two: f64,
    pub events: (u64, u64),
}

impl Memory {
    pub fn ratio(&self) -> f64 {
        self.two / self.one
    }
}

/// Ingests into `ingest` (one destination) and `ingest2` (two), each from
/// an empty Redis, deliveries held back: used_memory grown ÷ accepted.
pub async fn memory(knobs: &Knobs, hookd: &Hookd, redis: &TestRedis) -> Memory {
    let mut per_event = Vec::new();
    let mut events = Vec::new();
    for source in ["ingest", "ingest2"] {
        let keys = SourceKeys::new("hookd", source);
        servers::forget_ingested(redis, &keys);
        let before = used_memory(redis);
        let run = closed_loop(
            hookd.public,
            servers::webhook_path(source),
            knobs.connections,
            Duration::from_secs(MEMORY_SECONDS),
            &format!("memory_{source}"),
        )
        .await;
        let grown = used_memory(redis).saturating_sub(before);
        per_event.push(grown as f64 / run.accepted.max(1) as f64);
        events.push(run.accepted);
        servers::forget_ingested(redis, &keys);
    }
    Memory {
        one: per_event[0],
        two: per_event[1],
        events: (events[0], events[1]),
    }
}

/// End to end with two destinations: the rate search from where one
/// destination's search ended (each event is now two deliveries), then a
/// hold; then one destination and two take turns, each searching for its
/// own capacity from its hold's rate, which compares their deliveries/s
/// without the drift between the holds, minutes apart.
pub struct Fanout<'a> {
    pub search: Search,
    pub hold: Hold,
    /// First one destination, then two.
    pub turns: Turns<'a>,
}

pub async fn fanout<'a>(
    knobs: &Knobs,
    one: &'a Target<'a>,
    two: &'a Target<'a>,
    one_destination: &Hold,
) -> Fanout<'a> {
    two.hookd.drain(Duration::from_secs(120)).await;
    let search = phases::e2e_search(knobs, two, one_destination.e2e.run.rate * 0.6).await;
    let hold = phases::e2e_hold(two, search.rate, Duration::from_secs(FANOUT_HOLD_SECONDS)).await;
    let turns = Turns::run(
        "fanout_turns",
        Side::searching(*one, one_destination.e2e.run.rate, TURN_STRIDE),
        Side::searching(*two, hold.e2e.run.rate, TURN_STRIDE),
        TURN_ROUNDS,
        Duration::from_secs(TURN_SECONDS),
    )
    .await;
    Fanout {
        search,
        hold,
        turns,
    }
}

fn row(measure: &str, value: impl std::fmt::Display) {
    println!("| {measure} | {value} |");
}

/// The measures table's rows.
pub fn rows(fanout: &Fanout, memory: &Memory, one: &Hold) {
    fanout_rows(fanout, one);
    memory_row(memory);
}

/// The fan-out phase's rows, beside one destination's hold.
pub fn fanout_rows(fanout: &Fanout, one: &Hold) {
    if !fanout.search.steps.is_empty() {
        row(
            "end to end, 2 destinations: rate search (events/s offered; each is 2 deliveries)",
            &fanout.search.steps,
        );
    }
    let e2e = &fanout.hold.e2e;
    let [(early, _), (late, _)] = e2e.backlog_thirds();
    row(
        &format!(
            "end to end, 2 destinations, {FANOUT_HOLD_SECONDS}s at {}: deliveries/s (1 destination: {:.0}); backlog mean first → last third; lost",
            fanout.hold.offered(),
            one.deliveries_per_second()
        ),
        e2e.run.accepted_nothing().unwrap_or_else(|| {
            format!(
                "{:.0}; {early} → {late}; {}",
                fanout.hold.deliveries_per_second(),
                fanout.hold.lost
            )
        }),
    );
    if e2e.run.accepted_nothing().is_none() && one.e2e.run.accepted_nothing().is_none() {
        per_delivery_row(fanout, one);
    }
    row(
        &format!(
            "1 and 2 destinations taking turns, each searching for its capacity ({TURN_SECONDS}s steps, events/s): 1 destination; 2 destinations; lost"
        ),
        fanout.turns.describe(),
    );
}

/// Machine CPU, hookd CPU and Redis commands per delivery, with one
/// destination and with two: what a second destination costs per
/// delivery beside what the first did.
fn per_delivery_row(fanout: &Fanout, one: &Hold) {
    let per = |hold: &Hold| {
        let deliveries = hold.e2e.owed().max(1);
        (
            CpuTicks::per_event(hold.e2e.cpu.machine_busy, deliveries),
            CpuTicks::per_event(hold.e2e.cpu.server, deliveries),
            hold.calls.0 as f64 / deliveries as f64,
            hold.calls.1 as f64 / deliveries as f64,
        )
    };
    let (machine_1, hookd_1, trips_1, commands_1) = per(one);
    let (machine_2, hookd_2, trips_2, commands_2) = per(&fanout.hold);
    row(
        "per delivery, 1 destination / 2 destinations: machine CPU µs, hookd CPU µs, Redis round trips (commands)",
        format!(
            "{machine_1:.1} / {machine_2:.1}, {hookd_1:.1} / {hookd_2:.1}, {trips_1:.2} ({commands_1:.2}) / {trips_2:.2} ({commands_2:.2})"
        ),
    );
}

fn memory_row(memory: &Memory) {
    row(
        "Redis memory per queued 1 KiB event: 1 destination / 2 destinations (events)",
        format!(
            "{:.0} B / {:.0} B ({} / {})",
            memory.one, memory.two, memory.events.0, memory.events.1
        ),
    );
}

/// The goals table's rows for routes.
pub fn goals(
    ingest: &phases::Ingest,
    fanout: &Fanout,
    memory: &Memory,
    one: &Hold,
    log: &crate::log::Compare,
) {
    const FANOUT_INGEST: f64 = 0.90;
    const ONE_E2E: f64 = 0.55;
    const FANOUT_DELIVERIES: f64 = 1.25;
    const MEMORY: f64 = 1.15;
    let met = |ok: bool| if ok { "yes" } else { "no" };
    match ingest.failed_round() {
        Some(why) => println!(
            "| ingest, 2 destinations ≥ {:.0}% of the baseline | {why} | no |",
            100.0 * FANOUT_INGEST
        ),
        None => println!(
            "| ingest, 2 destinations ≥ {:.0}% of the same-run baseline | {:.0}% ({:.0}/s) | {} |",
            100.0 * FANOUT_INGEST,
            100.0 * ingest.fanout_ratio(),
            ingest.fanout_rate(),
            met(ingest.fanout_ratio() >= FANOUT_INGEST)
        ),
    }
    let e2e_share = one.e2e.run.rate / ingest.base_rate();
    // The same source without the event log, as a share of the same
    // ceiling: what routes cost apart from keeping history.
    let without_log = match log.searched() {
        (Some(rate), _) => format!(
            "; without the event log, searching in turns with it: {:.0}% ({rate:.0}/s)",
            100.0 * rate / ingest.base_rate()
        ),
        _ => String::new(),
    };
    println!(
        "| end to end, 1 destination ≥ {:.0}% of the baseline's ingest ceiling | {:.0}% ({:.0}/s, {}, {} lost){without_log} | {} |",
        100.0 * ONE_E2E,
        100.0 * e2e_share,
        one.e2e.run.rate,
        if one.e2e.kept_up() {
            "kept up"
        } else {
            "fell behind"
        },
        one.lost,
        met(e2e_share >= ONE_E2E && one.e2e.kept_up() && one.lost == 0)
    );
    let one_deliveries = one.deliveries_per_second();
    let direct = fanout.hold.deliveries_per_second() / one_deliveries.max(1.0);
    let turns = &fanout.turns;
    let lost = turns.lost + fanout.hold.lost;
    let (ratio, at_capacity) = match (
        turns.first.capacity_deliveries(),
        turns.second.capacity_deliveries(),
    ) {
        (Some(one), Some(two)) => {
            let ratio = two / one;
            (
                ratio,
                format!("{ratio:.2} × ({two:.0} vs {one:.0} deliveries/s)"),
            )
        }
        _ => (0.0, "a side never kept up".to_owned()),
    };
    println!(
        "| 2 destinations: deliveries/s ≥ {FANOUT_DELIVERIES:.2} × 1 destination's, backlog flat, 0 lost (each at its capacity, taking turns) | {at_capacity}, {lost} lost; the holds minutes apart: {direct:.2} × ({:.0} vs {one_deliveries:.0}/s), {} | {} |",
        fanout.hold.deliveries_per_second(),
        if fanout.hold.e2e.kept_up() {
            "kept up"
        } else {
            "fell behind"
        },
        met(ratio >= FANOUT_DELIVERIES && lost == 0)
    );
    println!(
        "| Redis memory per queued event, 2 destinations ≤ {MEMORY:.2} × 1 | {:.2} × ({:.0} B vs {:.0} B) | {} |",
        memory.ratio(),
        memory.two,
        memory.one,
        met(memory.ratio() <= MEMORY)
    );
}

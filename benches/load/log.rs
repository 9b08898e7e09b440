//! What the event log costs: Redis memory per retained event (delivered,
//! with its attempt record), `GET /admin/events` latency with 100k
//! events retained, and end to end with the log against the same source
//! without it (`max_events = 0`), at one rate and each at its capacity.
//! Ingest with the log on is the ingest rounds' hookd figure: every bench
//! source keeps the default history.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hookd::queue::SourceKeys;

use crate::Knobs;
use crate::driver::closed_loop;
use crate::e2e::Target;
use crate::servers::{self, Hookd, http_get, used_memory};
use crate::support::TestRedis;
use crate::turns::{Side, Turns};

/// The retaining source's log holds at least this many events for the
/// listing measurement.
const RETAINED: u64 = 100_000;
/// Listing requests per query shape.
const REQUESTS_PER_QUERY: usize = 40;
/// Each end-to-end comparison step.
const COMPARE_SECONDS: u64 = 20;
/// Alternating rounds of the comparison (VM speed drifts within minutes).
const COMPARE_ROUNDS: usize = 2;
/// Each side's steps when the two search for their capacity in turns, and
/// how far a step's rate moves until it has one that kept up and one that
/// fell behind (the start is near the edge already: the hold's rate).
const CAPACITY_ROUNDS: usize = 3;
const CAPACITY_STRIDE: f64 = 0.06;
/// Where the search without the log starts, above the hold's rate with it.
const UNLOGGED_HEADROOM: f64 = 1.08;

pub struct Memory {
    /// Redis bytes per retained, delivered event.
    pub per_event: f64,
    pub events: u64,
}

/// Ingests into `logged` from an empty stream, waits until everything is
/// delivered (so each event carries its attempt record), then
/// used_memory grown ÷ events in the log.
pub async fn memory(knobs: &Knobs, hookd: &Hookd, redis: &TestRedis) -> Memory {
    let keys = SourceKeys::new("hookd", "logged");
    servers::forget_ingested(redis, &keys);
    redis.cli(&["DEL", &keys.destination("default").attempts]);
    let before = used_memory(redis);
    let run = closed_loop(
        hookd.public,
        servers::webhook_path("logged"),
        knobs.connections,
        Duration::from_secs(3),
        "log_memory",
    )
    .await;
    settle(hookd).await;
    let events = stream_len(redis, &keys);
    let grown = used_memory(redis).saturating_sub(before);
    let _ = run;
    Memory {
        per_event: grown as f64 / events.max(1) as f64,
        events,
    }
}

/// Waits until `logged` has nothing undelivered (up to two minutes).
async fn settle(hookd: &Hookd) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while servers::backlog(hookd.admin, "logged") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stream_len(redis: &TestRedis, keys: &SourceKeys) -> u64 {
    redis
        .cli(&["XLEN", &keys.stream])
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `GET /admin/events` latencies by query shape, with the log holding
/// `retained` events.
pub struct Listing {
    pub retained: u64,
    /// (query, p50 ms, p99 ms)
    pub queries: Vec<(&'static str, f64, f64)>,
}

impl Listing {
    pub fn worst_p99(&self) -> f64 {
        self.queries.iter().map(|q| q.2).fold(0.0, f64::max)
    }
}

/// Fills `logged` up to [`RETAINED`] delivered events, then times the
/// listing queries an operator makes, one request at a time.
pub async fn listing(knobs: &Knobs, hookd: &Hookd, redis: &TestRedis) -> Listing {
    let keys = SourceKeys::new("hookd", "logged");
    let deadline = Instant::now() + Duration::from_secs(180);
    while stream_len(redis, &keys) < RETAINED && Instant::now() < deadline {
        closed_loop(
            hookd.public,
            servers::webhook_path("logged"),
            knobs.connections,
            Duration::from_secs(3),
            "log_fill",
        )
        .await;
    }
    settle(hookd).await;
    let retained = stream_len(redis, &keys);
    // A provider id from the middle of the log, for the id search: the
    // first entry past the midpoint in time between the oldest and the
    // newest. (Reading half the log through Lua instead would leave Redis's
    // Lua heap with hundreds of MB of garbage, which the scripts timed next
    // would pay to collect.)
    let middle = redis.cli(&[
        "EVAL",
        "local function ms(e) return tonumber(string.match(e[1][1], '^(%d+)')) end \
         local a = ms(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)) \
         local b = ms(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)) \
         local e = redis.call('XRANGE', KEYS[1], string.format('%d', math.floor((a + b) / 2)), '+', 'COUNT', 1) \
         local f = e[1][2] for i = 1, #f, 2 do if f[i] == 'id' then return f[i + 1] end end",
        "1",
        &keys.stream,
    ]);
    let id_query = format!("/admin/events?id={}", middle.trim());
    let shapes: [(&'static str, String); 5] = [
        ("newest page", "/admin/events?limit=50".to_owned()),
        (
            "one source, delivered",
            "/admin/events?source=logged&status=delivered&limit=50".to_owned(),
        ),
        ("provider id", id_query),
        (
            "a status nothing has (walks the bounded scan)",
            "/admin/events?source=logged&status=dead&limit=50".to_owned(),
        ),
        ("a page 200 deep", String::new()),
    ];
    let mut queries = Vec::new();
    for (name, path) in shapes {
        let path = if path.is_empty() {
            deep_page(hookd, 200).unwrap_or_else(|| "/admin/events?limit=50".to_owned())
        } else {
            path
        };
        let mut ms = Vec::with_capacity(REQUESTS_PER_QUERY);
        for _ in 0..REQUESTS_PER_QUERY {
            let started = Instant::now();
            let ok = http_get(hookd.admin, &path).is_some_and(|(s, _)| s == 200);
            if ok {
                ms.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        queries.push((name, at(0.5), at(0.99)));
    }
    Listing { retained, queries }
}

/// The path of the page `depth` pages down the unfiltered listing.
fn deep_page(hookd: &Hookd, depth: usize) -> Option<String> {
    let mut path = "/admin/events?source=logged&limit=50".to_owned();
    for _ in 0..depth {
        let (_, body) = http_get(hookd.admin, &path)?;
        let page: serde_json::Value = serde_json::from_str(&body).ok()?;
        let cursor = page["next_cursor"].as_str()?;
        path = format!("/admin/events?source=logged&limit=50&cursor={cursor}");
    }
    Some(path)
}

/// End to end without and with the log, taking turns: at one rate with
/// CPU to spare, then each searching for its capacity.
pub struct Compare<'a> {
    pub rate: f64,
    /// First without the log, then with it.
    pub turns: Turns<'a>,
    /// The same two, each searching for the highest rate it keeps up with:
    /// what the log costs a saturated machine, where the CPU per event at
    /// one rate with headroom says less.
    pub capacity: Turns<'a>,
}

impl Compare<'_> {
    /// The whole machine's CPU per event, with / without the log.
    pub fn per_event(&self) -> (f64, f64) {
        (
            self.turns.second.machine_per_delivery(),
            self.turns.first.machine_per_delivery(),
        )
    }

    /// Capacity with the log as a share of capacity without it.
    pub fn capacity_ratio(&self) -> f64 {
        self.turns.cost_ratio()
    }

    /// Events/s kept up without the log, and with it, searching in turns.
    pub fn searched(&self) -> (Option<f64>, Option<f64>) {
        (
            self.capacity.first.capacity(),
            self.capacity.second.capacity(),
        )
    }

    pub fn kept_up(&self) -> bool {
        self.turns.kept_up()
    }
}

pub async fn compare<'a>(
    knobs: &Knobs,
    hookd: &'a Hookd,
    redis: &'a TestRedis,
    delivered: &'a AtomicU64,
    rate: f64,
    capacity_start: f64,
) -> Compare<'a> {
    let logged = Target::e2e(hookd, redis, delivered, knobs.e2e_connections);
    let unlogged = Target {
        source: "e2e_nolog",
        ..Target::e2e(hookd, redis, delivered, knobs.e2e_connections)
    };
    let turns = Turns::run(
        "log_turns",
        Side::fixed(unlogged, rate),
        Side::fixed(logged, rate),
        COMPARE_ROUNDS,
        Duration::from_secs(COMPARE_SECONDS),
    )
    .await;
    let capacity = Turns::run(
        "log_capacity",
        Side::searching(
            unlogged,
            capacity_start * UNLOGGED_HEADROOM,
            CAPACITY_STRIDE,
        ),
        Side::searching(logged, capacity_start, CAPACITY_STRIDE),
        CAPACITY_ROUNDS,
        Duration::from_secs(COMPARE_SECONDS),
    )
    .await;
    Compare {
        rate,
        turns,
        capacity,
    }
}

fn row(measure: &str, value: impl std::fmt::Display) {
    println!("| {measure} | {value} |");
}

/// The measures table's rows.
pub fn rows(memory: &Memory, listing: &Listing, compare: &Compare) {
    partial_rows(memory, listing);
    compare_rows(compare);
}

/// The rows of end to end with and without the log.
pub fn compare_rows(compare: &Compare) {
    let (with, without) = compare.per_event();
    row(
        &format!(
            "end to end at {:.0}/s, {COMPARE_ROUNDS}×{COMPARE_SECONDS}s alternating: machine CPU per event with / without the log; kept up",
            compare.rate
        ),
        format!(
            "{with:.1} / {without:.1} µs; {}",
            if compare.kept_up() { "yes" } else { "no" }
        ),
    );
    row(
        &format!(
            "end to end without and with the log taking turns, each searching for its capacity ({COMPARE_SECONDS}s steps, events/s): without; with; lost"
        ),
        compare.capacity.describe(),
    );
}

/// Memory and listing rows alone (a partial run).
pub fn partial_rows(memory: &Memory, listing: &Listing) {
    row(
        "Redis memory per retained 1 KiB event, delivered, with its attempt record (events)",
        format!("{:.0} B ({})", memory.per_event, memory.events),
    );
    for (query, p50, p99) in &listing.queries {
        row(
            &format!(
                "GET /admin/events, {} retained, {query}: p50 / p99",
                listing.retained
            ),
            format!("{p50:.1} / {p99:.1} ms"),
        );
    }
}

/// The goals table's rows for the event log.
pub fn goals(
    ingest: &crate::phases::Ingest,
    memory: &Memory,
    listing: &Listing,
    compare: &Compare,
) {
    const INGEST: f64 = 0.90;
    const E2E: f64 = 0.95;
    const MEMORY_BYTES: f64 = 2000.0;
    const LISTING_P99_MS: f64 = 50.0;
    let met = |ok: bool| if ok { "yes" } else { "no" };
    match ingest.failed_round() {
        Some(why) => println!(
            "| ingest with the event log ≥ {:.0}% of the baseline | {why} | no |",
            100.0 * INGEST
        ),
        None => println!(
            "| ingest with the event log (every bench source keeps history) ≥ {:.0}% of the same-run baseline | {:.0}% | {} |",
            100.0 * INGEST,
            100.0 * ingest.ratio(),
            met(ingest.ratio() >= INGEST)
        ),
    }
    let searched = match compare.searched() {
        (Some(without), Some(with)) => format!(
            "{:.0}% ({with:.0} vs {without:.0}/s)",
            100.0 * with / without
        ),
        _ => "a side never kept up".to_owned(),
    };
    println!(
        "| end to end with the log ≥ {:.0}% of without (capacity from machine CPU per event at the same rate, both kept up) | {:.0}%; searching for capacity in turns: {searched} | {} |",
        100.0 * E2E,
        100.0 * compare.capacity_ratio(),
        met(compare.capacity_ratio() >= E2E && compare.kept_up())
    );
    println!(
        "| retained 1 KiB event ≤ {MEMORY_BYTES:.0} B of Redis memory with its attempt record | {:.0} B | {} |",
        memory.per_event,
        met(memory.per_event <= MEMORY_BYTES)
    );
    println!(
        "| GET /admin/events p99 ≤ {LISTING_P99_MS:.0} ms with {} retained (worst query) | {:.1} ms | {} |",
        listing.retained,
        listing.worst_p99(),
        met(listing.worst_p99() <= LISTING_P99_MS && listing.retained >= RETAINED)
    );
}

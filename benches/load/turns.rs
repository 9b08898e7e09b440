//! Two end-to-end targets of one hookd taking turns, step by step, each
//! after a drain: this VM's speed drifts by tens of percent within
//! minutes, so two figures measured minutes apart do not compare. A side
//! either runs every step at one rate (to compare costs at equal work) or
//! searches for its own capacity (to compare capacities: costs measured
//! below capacity understate whichever side batches less there).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cpu::CpuTicks;
use crate::e2e::{E2e, Target, step, undelivered};

/// Fixed-rate turns run at this share of the rate a hold kept up with: at
/// the edge, noise decides which side falls behind, and a side that fell
/// behind leaves no CPU per event to compare.
pub const TURN_SHARE: f64 = 0.8;

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

/// One side of [`Turns`]: what it drives, the rate of its next step, and
/// its steps so far.
pub struct Side<'a> {
    pub target: Target<'a>,
    /// Each step's offered rate and what it measured, in order.
    pub steps: Vec<(f64, E2e)>,
    rate: f64,
    /// Searching for capacity; None runs every step at the same rate.
    search: Option<Bracket>,
}

impl<'a> Side<'a> {
    /// Every step at `rate`.
    pub fn fixed(target: Target<'a>, rate: f64) -> Self {
        Self {
            target,
            steps: Vec::new(),
            rate: rate.round(),
            search: None,
        }
    }

    /// A capacity search from `start`, moving by `stride` until bracketed.
    pub fn searching(target: Target<'a>, start: f64, stride: f64) -> Self {
        Self {
            search: Some(Bracket::new(stride)),
            ..Self::fixed(target, start)
        }
    }

    /// One step at the side's next rate; a search then picks the rate
    /// after it. `prefix` names the step's event ids.
    pub async fn step(&mut self, prefix: &str, seconds: Duration) {
        let offered = self.rate;
        let result = step(&self.target, offered, seconds, prefix, false).await;
        if let Some(bracket) = &mut self.search {
            bracket.record(offered, &result);
            self.rate = bracket.next(offered, result.kept_up());
        }
        self.steps.push((offered, result));
    }

    /// The rate the next step would offer.
    pub fn next_rate(&self) -> f64 {
        self.rate
    }

    fn results(&self) -> impl Iterator<Item = &E2e> {
        self.steps.iter().map(|(_, e2e)| e2e)
    }

    /// Events/s of the best step that kept up (None if none did).
    pub fn capacity(&self) -> Option<f64> {
        self.results()
            .filter(|s| s.kept_up())
            .map(|s| s.run.rate)
            .reduce(f64::max)
    }

    /// Deliveries/s at that capacity.
    pub fn capacity_deliveries(&self) -> Option<f64> {
        Some(self.capacity()? * self.target.copies as f64)
    }

    /// The whole machine's CPU per delivery owed, over every step.
    pub fn machine_per_delivery(&self) -> f64 {
        let busy: u64 = self.results().map(|s| s.cpu.machine_busy).sum();
        let deliveries: u64 = self.results().map(E2e::owed).sum();
        CpuTicks::per_event(busy, deliveries)
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

/// Two sides that took turns, and what they left undelivered.
pub struct Turns<'a> {
    pub first: Side<'a>,
    pub second: Side<'a>,
    /// Deliveries owed for what both accepted but never made, after up to
    /// a minute of draining at the end.
    pub lost: u64,
}

impl<'a> Turns<'a> {
    /// `name` keeps the steps' event ids apart from every other phase's:
    /// a repeated id would be a duplicate, accepted but never delivered.
    pub async fn run(
        name: &str,
        mut first: Side<'a>,
        mut second: Side<'a>,
        rounds: usize,
        seconds: Duration,
    ) -> Self {
        let hookd = first.target.hookd;
        let delivered = first.target.delivered;
        let before = delivered.load(Ordering::Relaxed);
        for round in 0..rounds {
            for side in [&mut first, &mut second] {
                hookd.drain(Duration::from_secs(120)).await;
                let prefix = format!("{name}_{}{round}", side.target.source);
                side.step(&prefix, seconds).await;
            }
        }
        let owed = first.results().chain(second.results()).map(E2e::owed).sum();
        let lost = undelivered(delivered, before, owed).await;
        Self {
            first,
            second,
            lost,
        }
    }

    /// At equal work, the second's capacity as a multiple of the first's:
    /// on a CPU-bound machine capacity scales with 1 ÷ machine CPU per
    /// delivery.
    pub fn cost_ratio(&self) -> f64 {
        self.first.machine_per_delivery()
            / self.second.machine_per_delivery().max(f64::MIN_POSITIVE)
    }

    /// "first side's steps; second side's steps; lost", for a row.
    pub fn describe(&self) -> String {
        format!(
            "{}; {}; {}",
            self.first.describe(),
            self.second.describe(),
            self.lost
        )
    }

    /// Every step kept up.
    pub fn kept_up(&self) -> bool {
        self.first
            .results()
            .chain(self.second.results())
            .all(E2e::kept_up)
    }
}

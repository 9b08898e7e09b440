//! A destination's reader: it takes from its consumer group only what it
//! can start at once (as many entries as it holds worker and destination
//! slots for, paced by the rate limit), due retries first, claims what dead
//! consumers left behind, skips what its filter does not want, and starts
//! an attempt per entry. While the destination is paused or its breaker
//! is open it reads nothing; once the cooldown is over it asks for the one
//! probe every instance shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Shared;
use super::attempt::Job;
use super::rate::RateLimiter;
use super::route::Route;
use super::slots::Grant;
use crate::clock::unix_ms;
use crate::filter::Verdict;
use crate::queue::{
    Claimed, DeadLetter, DeadReason, Envelope, Gate, QueueError, READ_BLOCK, history_line,
};
use crate::telemetry::DeliveryOutcome;

/// Most entries one read or claim asks for; bounds a burst's memory.
const MAX_BATCH: usize = 128;
/// How long a caught-up reader waits with all its slots for the next batch
/// before it counts as idle: it spans the gap between ingest round trips
/// under steady traffic, and slots held when traffic stops are back at once.
const CAUGHT_UP_BLOCK: Duration = Duration::from_millis(5);
/// Retries other instances scheduled are looked for at least this often.
const RETRY_POLL: Duration = Duration::from_secs(1);

/// How the last read of new entries went, which decides how the next one
/// waits. Entries land in batches (one per ingest round trip); a reader
/// that has caught up waits briefly for the next batch with all its slots
/// instead of polling, so it takes a batch per read rather than an entry
/// or an empty answer per read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Nothing came for a while: block up to READ_BLOCK holding a single
    /// slot, so an idle destination does not sit on worker slots others
    /// could use.
    Idle,
    /// The last read got fewer entries than it had slots for: block up to
    /// CAUGHT_UP_BLOCK with every slot; the read returns as soon as the
    /// next batch lands.
    CaughtUp,
    /// The last read filled its slots: more is waiting, read at once.
    Backlog,
}

impl Flow {
    fn after(got: usize, asked: usize) -> Self {
        match got {
            0 => Flow::Idle,
            n if n < asked => Flow::CaughtUp,
            _ => Flow::Backlog,
        }
    }

    fn block(self) -> Option<Duration> {
        match self {
            Flow::Idle => Some(READ_BLOCK),
            Flow::CaughtUp => Some(CAUGHT_UP_BLOCK),
            Flow::Backlog => None,
        }
    }
}

/// Reads one destination's group.
pub struct Reader {
    shared: Arc<Shared>,
    route: Arc<Route>,
    token: CancellationToken,
}

/// What one round of the loop reads.
enum Source {
    Claim,
    DueRetries,
    New { block: Option<Duration> },
}

impl Reader {
    pub fn new(shared: Arc<Shared>, route: Arc<Route>, token: CancellationToken) -> Self {
        Self {
            shared,
            route,
            token,
        }
    }

    pub async fn run(self) {
        let source = &self.route.source;
        let destination = &self.route.destination;
        let config = &self.shared.worker;
        let queue = &self.shared.queue;
        let mut blocking = queue.dedicated_client();
        let mut rate = RateLimiter::new(destination.config.rate_per_sec, queue, &destination.keys);
        let mut status = self.route.status.subscribe();
        // Nothing goes out before the destination's pause and breaker are
        // known: a paused destination stays paused across a restart.
        tokio::select! {
            _ = self.token.cancelled() => return,
            _ = status.wait_for(|_| self.route.state_read()) => {}
        }
        let mut groups_ready = false;
        let mut flow = Flow::Idle;
        let mut claim_cursor = String::from("0-0");
        // Claim right away: a previous process may have died holding
        // entries; and look for retries that are due.
        let mut next_claim = Instant::now();
        let mut next_retry_ms = unix_ms();
        while !self.token.is_cancelled() {
            if !groups_ready {
                // A Redis that is away holds this call until its timeout;
                // shutdown does not wait for it.
                let setup = tokio::select! {
                    _ = self.token.cancelled() => break,
                    setup = self.setup() => setup,
                };
                match setup {
                    Ok(()) => groups_ready = true,
                    Err(e) => {
                        debug!(source = %source.name, destination = %destination.name, error = %e, "cannot create the consumer groups yet");
                        self.pause(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let now = unix_ms();
            let gate = status.borrow_and_update().gate(now);
            let probe = match gate {
                Gate::Open => false,
                Gate::Shut { until_ms } => {
                    let wait = until_ms.map_or(Duration::from_secs(3600), |until| {
                        Duration::from_millis(until.saturating_sub(now))
                    });
                    tokio::select! {
                        _ = self.token.cancelled() => break,
                        _ = status.changed() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                Gate::Probe => {
                    let lease = destination.config.timeout + Duration::from_secs(1);
                    match queue.try_probe(&destination.keys, lease).await {
                        Ok(true) => {
                            info!(source = %source.name, destination = %destination.name, "breaker cooldown over: probing with one event");
                            true
                        }
                        _ => {
                            // Someone else probes; their outcome arrives
                            // through the state.
                            tokio::select! {
                                _ = self.token.cancelled() => break,
                                _ = status.changed() => {}
                                _ = tokio::time::sleep(super::watch::POLL * 2) => {}
                            }
                            continue;
                        }
                    }
                }
            };
            let Some(mut grant) = self.acquire_batch().await else {
                break;
            };
            if let Some(due) = self.route.take_earliest_retry() {
                next_retry_ms = next_retry_ms.min(due);
            }
            let now = unix_ms();
            let read = if probe {
                if next_retry_ms <= now {
                    Source::DueRetries
                } else {
                    Source::New { block: None }
                }
            } else if Instant::now() >= next_claim {
                Source::Claim
            } else if next_retry_ms <= now {
                Source::DueRetries
            } else {
                let until_retry = Duration::from_millis(next_retry_ms - now);
                Source::New {
                    block: flow.block().map(|block| block.min(until_retry)),
                }
            };
            if probe || (flow == Flow::Idle && matches!(read, Source::New { .. })) {
                grant.truncate(1);
            }
            let Some(allowed) = rate.acquire(grant.len(), &self.token).await else {
                break;
            };
            grant.truncate(allowed);
            let blocking_read = matches!(read, Source::New { .. });
            let step = async {
                match read {
                    Source::Claim => {
                        let claimed = self.claim(&mut claim_cursor, grant.len()).await;
                        if claimed.is_ok() && claim_cursor == "0-0" {
                            next_claim = Instant::now() + config.claim_interval;
                        }
                        claimed
                    }
                    Source::DueRetries => queue
                        .take_due(
                            &source.keys,
                            &destination.keys,
                            &self.shared.consumer,
                            grant.len(),
                        )
                        .await
                        .map(|due| {
                            let poll = unix_ms() + RETRY_POLL.as_millis() as u64;
                            next_retry_ms = due
                                .next_due
                                .map_or(poll, |d| (unix_ms() + d.as_millis() as u64).min(poll));
                            due.entries
                        }),
                    Source::New { block } => queue
                        .read(
                            blocking.client(),
                            &source.keys,
                            &destination.keys,
                            &self.shared.consumer,
                            grant.len(),
                            block,
                        )
                        .await
                        .inspect(|entries| flow = Flow::after(entries.len(), grant.len())),
                }
            };
            // A healthy Redis answers within one blocking read; one that is
            // away would hold the call until its timeout, and shutdown
            // does not wait for that (what it handed out stays pending and
            // is claimed later).
            let batch = tokio::select! {
                batch = step => batch,
                _ = async {
                    self.token.cancelled().await;
                    tokio::time::sleep(READ_BLOCK + Duration::from_millis(500)).await;
                } => break,
            };
            let entries = match batch {
                Ok(entries) => entries,
                Err(e) => {
                    if e.is_no_group() {
                        warn!(source = %source.name, destination = %destination.name, "consumer group missing (redis restarted empty?): recreating");
                        groups_ready = false;
                    } else {
                        debug!(source = %source.name, destination = %destination.name, error = %e, "reading the stream failed");
                        if blocking_read && e.is_timeout() {
                            blocking.restart();
                        }
                        self.pause(Duration::from_millis(500)).await;
                    }
                    rate.refund(grant.len()).await;
                    continue;
                }
            };
            rate.refund(grant.len().saturating_sub(entries.len())).await;
            if probe && entries.is_empty() {
                // Nothing waits: the probe's lease runs out and the next
                // event is the probe.
                debug!(source = %source.name, destination = %destination.name, "no event to probe with");
            }
            let mut deferred = Vec::new();
            for envelope in entries {
                if !self.wanted(&envelope) {
                    continue;
                }
                // The destination may have been paused, or its breaker
                // opened, while the read was under way.
                if !probe && status.borrow().gate(unix_ms()) != Gate::Open {
                    deferred.push(envelope.entry_id);
                    continue;
                }
                // Reads never return more entries than they were given
                // slots for, so this runs out only after the last entry.
                let Some(permits) = grant.take_one() else {
                    break;
                };
                let job = Job {
                    shared: self.shared.clone(),
                    route: self.route.clone(),
                    probe,
                };
                // Boxed: the task cell then holds a pointer, not the
                // 2 KiB future, which tokio would otherwise copy on every
                // move into the task and again when the task finishes.
                self.shared
                    .deliveries
                    .spawn(Box::pin(job.run(envelope, permits)));
            }
            if !deferred.is_empty() {
                debug!(source = %source.name, destination = %destination.name, entries = deferred.len(), "gate shut during the read: entries wait as due retries");
                if let Err(e) = queue.defer(&destination.keys, &deferred).await {
                    // Still pending for the group: claimed after claim_idle.
                    debug!(source = %source.name, destination = %destination.name, error = %e, "cannot defer entries");
                }
                next_retry_ms = unix_ms();
            }
        }
        debug!(source = %source.name, destination = %destination.name, "reader stopped");
    }

    /// Creates the groups every destination of the source needs (and
    /// migrates the single-destination layout; see `setup.lua`).
    async fn setup(&self) -> Result<(), QueueError> {
        let source = &self.route.source;
        let names: Vec<&str> = source.destination_names().collect();
        let setup = self
            .shared
            .queue
            .setup(&source.keys, &names, source.heir())
            .await?;
        if setup.migrated > 0 {
            info!(source = %source.name, heir = source.heir(), retries = setup.migrated, "single-destination layout migrated");
        }
        Ok(())
    }

    /// Whether the entry is for this destination and passes its filter; if
    /// not, it is acknowledged as skipped (a filtered-out one is counted).
    fn wanted(&self, envelope: &Envelope) -> bool {
        let destination = &self.route.destination;
        if !envelope.is_for(&destination.name) {
            self.route.skip(&envelope.entry_id);
            return false;
        }
        // An operator's replay to this destination is not filtered again.
        if envelope.to.is_none()
            && destination
                .filter
                .check(&envelope.event_type, &envelope.body)
                == Verdict::FilteredOut
        {
            self.route.skip(&envelope.entry_id);
            destination.metrics.delivery(DeliveryOutcome::Filtered);
            return false;
        }
        true
    }

    async fn pause(&self, duration: Duration) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            _ = tokio::time::sleep(duration) => {}
        }
    }

    /// Waits for at least one free slot (destination, then worker), then
    /// takes whatever more is free right now, up to MAX_BATCH. None on
    /// shutdown.
    async fn acquire_batch(&self) -> Option<Grant> {
        let destination = &self.route.in_flight;
        let workers = &self.shared.workers.slots;
        let mut grant = Grant {
            destination: tokio::select! {
                _ = self.token.cancelled() => return None,
                p = destination.clone().acquire_owned() => p.ok()?,
            },
            worker: tokio::select! {
                _ = self.token.cancelled() => return None,
                p = workers.clone().acquire_owned() => p.ok()?,
            },
        };
        let more = (MAX_BATCH - 1)
            .min(destination.available_permits())
            .min(workers.available_permits());
        if more > 0 {
            // Other readers take worker slots concurrently; if they got
            // there first, this read makes do with what it has.
            if let Ok(d) = destination.clone().try_acquire_many_owned(more as u32)
                && let Ok(w) = workers.clone().try_acquire_many_owned(more as u32)
            {
                grant.destination.merge(d);
                grant.worker.merge(w);
            }
        }
        Some(grant)
    }

    /// One XAUTOCLAIM step. Entries handed out more than
    /// `worker.max_deliveries` times are crash-looping and go to the DLQ.
    async fn claim(&self, cursor: &mut String, count: usize) -> Result<Vec<Envelope>, QueueError> {
        let source = &self.route.source;
        let destination = &self.route.destination;
        let config = &self.shared.worker;
        let queue = &self.shared.queue;
        let page = queue
            .claim(
                &source.keys,
                &destination.keys,
                &self.shared.consumer,
                config.claim_idle,
                cursor,
                count,
            )
            .await?;
        *cursor = page.next_cursor;
        if page.deleted > 0 {
            debug!(source = %source.name, destination = %destination.name, deleted = page.deleted, "pending ids of deleted entries dropped");
        }
        let mut ready = Vec::with_capacity(page.claimed.len());
        for Claimed {
            envelope,
            deliveries,
        } in page.claimed
        {
            source.metrics.claimed.increment(1);
            if deliveries > config.max_deliveries {
                warn!(
                    source = %source.name,
                    destination = %destination.name,
                    event_id = %envelope.event_id,
                    deliveries,
                    "entry keeps crashing its consumers: dead-lettering"
                );
                const WHY: &str = "handed out more than worker.max_deliveries times";
                let history = history_line(envelope.attempts + 1, unix_ms(), None, WHY, None);
                queue
                    .dead_letter(
                        &source.keys,
                        &destination.keys,
                        &DeadLetter {
                            entry_id: &envelope.entry_id,
                            reason: DeadReason::MaxDeliveries,
                            status: None,
                            error: WHY,
                            history: &history,
                            counted: false,
                        },
                        &self.route.recording(),
                    )
                    .await?;
                destination.metrics.delivery(DeliveryOutcome::Dead);
                continue;
            }
            info!(source = %source.name, destination = %destination.name, event_id = %envelope.event_id, deliveries, "claimed an abandoned entry");
            ready.push(envelope);
        }
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_waits_for_the_next_batch_once_caught_up() {
        assert_eq!(Flow::after(0, 64), Flow::Idle);
        assert_eq!(Flow::after(3, 64), Flow::CaughtUp);
        assert_eq!(Flow::after(64, 64), Flow::Backlog);
        assert_eq!(Flow::Idle.block(), Some(READ_BLOCK));
        assert_eq!(Flow::CaughtUp.block(), Some(CAUGHT_UP_BLOCK));
        assert_eq!(Flow::Backlog.block(), None);
    }
}

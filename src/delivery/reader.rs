//! A source's reader: it takes from the stream only what it can start at
//! once (as many entries as it holds worker and destination slots for,
//! paced by the rate limit), claims what dead consumers left behind, and
//! starts an attempt per entry.

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
use crate::queue::{Claimed, DeadLetter, DeadReason, Envelope, QueueError, history_line};
use crate::telemetry::DeliveryOutcome;

/// Most entries one read or claim asks for; bounds a burst's memory.
const MAX_BATCH: usize = 128;

/// Reads one source's stream for its route.
pub struct Reader {
    shared: Arc<Shared>,
    route: Arc<Route>,
    token: CancellationToken,
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
        let keys = &self.route.source.keys;
        let config = &self.shared.worker;
        let queue = &self.shared.queue;
        let blocking = queue.dedicated_client().await;
        let mut rate = RateLimiter::new(self.route.source.destination.rate_per_sec);
        let mut group_ready = false;
        // While the stream is idle the reader blocks holding a single slot,
        // so idle sources do not sit on worker slots others could use; once
        // entries flow it reads in batches without blocking.
        let mut idle = true;
        let mut claim_cursor = String::from("0-0");
        // Claim right away: a previous process may have died holding entries.
        let mut next_claim = Instant::now();
        while !self.token.is_cancelled() {
            if !group_ready {
                match queue.ensure_group(keys).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        debug!(source = %keys.source, error = %e, "cannot create consumer group yet");
                        self.pause(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let Some(mut grant) = self.acquire_batch().await else {
                break;
            };
            let claiming = Instant::now() >= next_claim;
            if idle && !claiming {
                grant.truncate(1);
            }
            let Some(allowed) = rate.acquire(grant.len(), &self.token).await else {
                break;
            };
            grant.truncate(allowed);
            let batch = if claiming {
                let claimed = self.claim(&mut claim_cursor, grant.len()).await;
                if claimed.is_ok() && claim_cursor == "0-0" {
                    next_claim = Instant::now() + config.claim_interval;
                }
                claimed
            } else {
                queue
                    .read(&blocking, keys, &self.shared.consumer, grant.len(), idle)
                    .await
                    .inspect(|entries| idle = entries.is_empty())
            };
            let entries = match batch {
                Ok(entries) => entries,
                Err(e) => {
                    if e.is_no_group() {
                        warn!(source = %keys.source, "consumer group missing (redis restarted empty?): recreating");
                        group_ready = false;
                    } else {
                        debug!(source = %keys.source, error = %e, "reading the stream failed");
                        self.pause(Duration::from_millis(500)).await;
                    }
                    rate.refund(grant.len());
                    continue;
                }
            };
            rate.refund(grant.len().saturating_sub(entries.len()));
            for envelope in entries {
                // Reads never return more entries than they were given
                // slots for, so this runs out only after the last entry.
                let Some(permits) = grant.take_one() else {
                    break;
                };
                let job = Job {
                    shared: self.shared.clone(),
                    route: self.route.clone(),
                };
                // Boxed: the task cell then holds a pointer, not the
                // 2 KiB future, which tokio would otherwise copy on every
                // move into the task and again when the task finishes.
                self.shared
                    .deliveries
                    .spawn(Box::pin(job.run(envelope, permits)));
            }
        }
        debug!(source = %keys.source, "reader stopped");
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
            // Other sources' readers take worker slots concurrently; if they
            // got there first, this read makes do with what it has.
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
        let keys = &self.route.source.keys;
        let config = &self.shared.worker;
        let queue = &self.shared.queue;
        let page = queue
            .claim(
                keys,
                &self.shared.consumer,
                config.claim_idle,
                cursor,
                count,
            )
            .await?;
        *cursor = page.next_cursor;
        if page.deleted > 0 {
            debug!(source = %keys.source, deleted = page.deleted, "pending ids of deleted entries dropped");
        }
        let mut ready = Vec::with_capacity(page.claimed.len());
        for Claimed {
            envelope,
            deliveries,
        } in page.claimed
        {
            self.route.source.metrics.claimed.increment(1);
            if deliveries > config.max_deliveries {
                warn!(
                    source = %keys.source,
                    event_id = %envelope.event_id,
                    deliveries,
                    "entry keeps crashing its consumers: dead-lettering"
                );
                const WHY: &str = "handed out more than worker.max_deliveries times";
                let history = history_line(envelope.attempts + 1, unix_ms(), None, WHY);
                queue
                    .dead_letter(
                        keys,
                        &DeadLetter {
                            entry_id: &envelope.entry_id,
                            reason: DeadReason::MaxDeliveries,
                            status: None,
                            error: WHY,
                            history: &history,
                        },
                    )
                    .await?;
                self.route.source.metrics.delivery(DeliveryOutcome::Dead);
                continue;
            }
            info!(source = %keys.source, event_id = %envelope.event_id, deliveries, "claimed an abandoned entry");
            ready.push(envelope);
        }
        Ok(ready)
    }
}

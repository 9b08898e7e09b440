//! Once a second: is Redis there (readiness, `hookd_redis_up`), and the
//! queue gauges.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::overview;
use crate::queue::{LEGACY_GROUP, Queue};
use crate::source::{Source, Sources};
use crate::status::Status;
use crate::telemetry;
use crate::workers::Workers;

/// How long one source's gauges may take to read before the tick moves on.
const GAUGE_READ_LIMIT: Duration = Duration::from_millis(500);

pub struct Monitor {
    pub queue: Queue,
    pub status: Arc<Status>,
    pub sources: Arc<Sources>,
    pub workers: Workers,
    pub metrics: PrometheusHandle,
}

impl Monitor {
    pub async fn run(self, token: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Histogram samples pile up in the recorder until drained;
            // without this, memory grows with every event when nobody
            // scrapes /metrics.
            self.metrics.run_upkeep();
            let up = self.queue.ping().await;
            let was = self.status.set_redis_up(up);
            if up != was {
                if up {
                    info!("redis is reachable");
                    for warning in self.queue.durability_warnings().await {
                        warn!("{warning}");
                    }
                } else {
                    warn!("redis is unreachable: ingest answers 503 until it returns");
                }
            }
            metrics::gauge!(telemetry::REDIS_UP).set(if up { 1.0 } else { 0.0 });
            metrics::gauge!(telemetry::WORKERS_BUSY).set(self.workers.busy() as f64);
            if !up {
                continue;
            }
            if !was {
                self.tidy_groups().await;
            }
            for source in self.sources.iter() {
                // Bounded: Redis dying between the ping and here must not
                // hold up the next ping (readiness depends on it).
                let view =
                    tokio::time::timeout(GAUGE_READ_LIMIT, overview::source(&self.queue, source));
                if let Ok(Ok(view)) = view.await {
                    source.metrics.dlq_size.set(view.dlq as f64);
                    for (destination, d) in source.destinations.iter().zip(&view.destinations) {
                        let metrics = &destination.metrics;
                        metrics.backlog.set(d.backlog.unwrap_or(0) as f64);
                        metrics.pending.set(d.pending as f64);
                        metrics.retry_scheduled.set(d.retrying as f64);
                        metrics.state(d.status.state());
                    }
                }
            }
        }
    }

    /// Whenever Redis comes (back): consumer groups of destinations no
    /// longer configured go if they hold nothing; one that still holds
    /// events is kept (its events stay in the stream) with a warning
    /// until `hookd destinations forget`.
    async fn tidy_groups(&self) {
        for source in self.sources.iter() {
            let Ok(view) = overview::source(&self.queue, source).await else {
                continue;
            };
            for orphan in &view.orphans {
                if orphan.name == LEGACY_GROUP {
                    // Migrated by the readers' setup.
                    continue;
                }
                if orphan.holds_events() {
                    warn!(
                        source = %source.name,
                        destination = %orphan.name,
                        backlog = ?orphan.backlog,
                        pending = orphan.pending,
                        "a destination no longer configured has undelivered events; they stay in redis \
                         (holding the stream's entries) until `hookd destinations forget {} {}`",
                        source.name,
                        orphan.name
                    );
                    continue;
                }
                let keys = source.keys.destination(&orphan.name);
                if let Ok(true) = self.queue.forget(&source.keys, &keys).await {
                    info!(source = %source.name, destination = %orphan.name, "removed the idle consumer group of a destination no longer configured");
                    sweep(&self.queue, source).await;
                }
            }
        }
    }
}

/// Removes the stream entries every group is done with, in bounded steps.
pub async fn sweep(queue: &Queue, source: &Source) {
    let mut after: Option<String> = None;
    loop {
        match queue.sweep(&source.keys, after.as_deref(), 1000).await {
            Ok(step) if step.examined > 0 => after = step.last,
            _ => return,
        }
    }
}

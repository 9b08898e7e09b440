//! Once a second: is Redis there (readiness, `hookd_redis_up`), and the
//! queue gauges.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::queue::Queue;
use crate::source::Sources;
use crate::status::Status;
use crate::telemetry;
use crate::workers::Workers;

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
            for source in self.sources.iter() {
                if let Ok(stats) = self.queue.stats(&source.keys).await {
                    source.metrics.backlog.set(stats.backlog as f64);
                    source.metrics.pending.set(stats.pending as f64);
                    source.metrics.retry_scheduled.set(stats.retrying as f64);
                    source.metrics.dlq_size.set(stats.dlq as f64);
                }
            }
        }
    }
}

//! Health probes: `/health/live`, `/health/ready` and the `/health`
//! summary a load balancer or an operator reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;

use crate::queue::{Queue, SourceStats};
use crate::response::{HttpResponse, json};
use crate::source::Sources;
use crate::status::Status;
use crate::workers::Workers;

/// Everything the health endpoints read.
#[derive(Clone)]
pub struct HealthHandle {
    pub status: Arc<Status>,
    pub queue: Queue,
    pub sources: Arc<Sources>,
    pub workers: Workers,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    redis: &'static str,
    draining: bool,
    workers: WorkersView,
    sources: BTreeMap<String, Option<SourceStats>>,
}

#[derive(Serialize)]
struct WorkersView {
    busy: usize,
    max: usize,
}

impl HealthHandle {
    pub fn live(&self) -> HttpResponse {
        json(StatusCode::OK, &serde_json::json!({"status": "live"}))
    }

    pub fn ready(&self) -> HttpResponse {
        if self.status.ready() {
            return json(StatusCode::OK, &serde_json::json!({"status": "ready"}));
        }
        let reason = if self.status.draining() {
            "draining"
        } else {
            "redis unreachable"
        };
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready", "reason": reason}),
        )
    }

    pub async fn summary(&self) -> HttpResponse {
        let redis_up = self.status.redis_up();
        let mut sources = BTreeMap::new();
        for source in self.sources.iter() {
            let stats = if redis_up {
                self.queue.stats(&source.keys).await.ok()
            } else {
                None
            };
            sources.insert(source.name.clone(), stats);
        }
        let ready = self.status.ready();
        let body = Health {
            status: if self.status.draining() {
                "draining"
            } else if ready {
                "ok"
            } else {
                "degraded"
            },
            redis: if redis_up { "up" } else { "down" },
            draining: self.status.draining(),
            workers: WorkersView {
                busy: self.workers.busy(),
                max: self.workers.max(),
            },
            sources,
        };
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json(status, &body)
    }
}

//! Health probes: `/health/live`, `/health/ready` and the `/health`
//! summary a load balancer or an operator reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;

use crate::overview::{self, SourceOverview};
use crate::queue::Queue;
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
    sources: BTreeMap<String, Option<SourceHealth>>,
}

/// A source's depths, and each destination's with its state.
#[derive(Serialize)]
struct SourceHealth {
    backlog: Option<u64>,
    pending: u64,
    retrying: u64,
    dlq: u64,
    destinations: BTreeMap<String, DestinationHealth>,
}

#[derive(Serialize)]
struct DestinationHealth {
    state: &'static str,
    in_flight: u64,
    backlog: Option<u64>,
    pending: u64,
    retrying: u64,
    dlq: u64,
    last_success_ms: Option<u64>,
    last_failure_ms: Option<u64>,
}

impl From<SourceOverview> for SourceHealth {
    fn from(view: SourceOverview) -> Self {
        Self {
            backlog: view.backlog,
            pending: view.pending,
            retrying: view.retrying,
            dlq: view.dlq,
            destinations: view
                .destinations
                .into_iter()
                .map(|d| {
                    (
                        d.name,
                        DestinationHealth {
                            state: d.state,
                            in_flight: d.in_flight,
                            backlog: d.backlog,
                            pending: d.pending,
                            retrying: d.retrying,
                            dlq: d.dlq,
                            last_success_ms: d.last_success_ms,
                            last_failure_ms: d.last_failure_ms,
                        },
                    )
                })
                .collect(),
        }
    }
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
                overview::source(&self.queue, source)
                    .await
                    .ok()
                    .map(SourceHealth::from)
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

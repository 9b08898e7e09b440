//! Health probes: `/health/live`, `/health/ready` and the `/health`
//! summary a load balancer or an operator reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

use crate::overview::{self, SourceOverview};
use crate::queue::{Queue, Unusable};
use crate::response::{HttpResponse, json};
use crate::source::Sources;
use crate::spool::{Spool, SpoolStats};
use crate::status::Status;
use crate::workers::Workers;

/// Everything the health endpoints read.
#[derive(Clone)]
pub struct HealthHandle {
    pub status: Arc<Status>,
    pub queue: Queue,
    pub sources: Arc<Sources>,
    pub workers: Workers,
    /// With the spool on: hookd can accept while it has room.
    pub spool: Option<Spool>,
}

/// How long `/health` waits for the sources' figures: Redis dying just
/// before a probe must not hold the answer for a command timeout; a
/// source not read in time shows `null`, as while Redis is down.
const SOURCE_READ_LIMIT: Duration = Duration::from_millis(500);

/// Room the spool must have for readiness to hold while Redis is down.
const SPOOL_ROOM_FOR_READY: u64 = 1 << 20;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    redis: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    spool: Option<SpoolStats>,
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

    /// Whether hookd can take events: Redis answers, or it is known away
    /// and the spool has room; and it is not draining. Before the first
    /// health check neither holds, so a load balancer sends nothing until
    /// hookd knows where events go.
    fn can_accept(&self) -> bool {
        !self.status.draining()
            && (self.status.redis_up()
                || (self.status.redis_known_down()
                    && self
                        .spool
                        .as_ref()
                        .is_some_and(|s| s.has_room(SPOOL_ROOM_FOR_READY))))
    }

    pub fn ready(&self) -> HttpResponse {
        if self.can_accept() {
            return json(StatusCode::OK, &serde_json::json!({"status": "ready"}));
        }
        let refused = matches!(self.status.redis_error(), Some(Unusable::Refused(_)));
        let reason = match (self.status.draining(), refused, self.spool.is_some()) {
            (true, _, _) => "draining",
            (false, true, true) => "redis refuses hookd's commands and the spool is full",
            (false, true, false) => "redis refuses hookd's commands",
            (false, false, true) => "redis unreachable and the spool is full",
            (false, false, false) => "redis unreachable",
        };
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready", "reason": reason}),
        )
    }

    pub async fn summary(&self) -> HttpResponse {
        let deadline = tokio::time::Instant::now() + SOURCE_READ_LIMIT;
        let mut sources = BTreeMap::new();
        for source in self.sources.iter() {
            let stats = if self.status.redis_up() {
                tokio::time::timeout_at(deadline, overview::source(&self.queue, source))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(SourceHealth::from)
            } else {
                None
            };
            sources.insert(source.name.clone(), stats);
        }
        let redis_up = self.status.redis_up();
        let ready = self.can_accept();
        let spool = self.spool.as_ref().map(Spool::stats);
        let body = Health {
            status: if !ready {
                "unavailable"
            } else if redis_up && spool.is_none_or(|s| s.events == 0) {
                "ok"
            } else {
                "degraded"
            },
            redis: if redis_up { "up" } else { "down" },
            spool,
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

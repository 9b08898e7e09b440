//! What operators see of each source and destination, read from Redis in
//! one round trip per source (depths) plus one for the shared state: the
//! admin API, the dashboard, `/health`, the gauges and `hookd destinations
//! list` all show this same view.

use serde::Serialize;

use crate::queue::{DestinationStatus, OrphanGroup, Queue, QueueError};
use crate::source::Source;

#[derive(Debug, Clone, Serialize)]
pub struct SourceOverview {
    pub name: String,
    /// The largest of its destinations' backlogs: what `ingest.max_backlog`
    /// is held against.
    pub backlog: Option<u64>,
    /// Summed over its destinations.
    pub pending: u64,
    pub retrying: u64,
    /// Dead-lettered events of every destination.
    pub dlq: u64,
    /// The oldest event some destination has not finished.
    pub oldest_pending_age_ms: Option<u64>,
    pub destinations: Vec<DestinationOverview>,
    /// Consumer groups of destinations no longer configured.
    #[serde(skip)]
    pub orphans: Vec<OrphanGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationOverview {
    pub name: String,
    pub url: String,
    /// healthy, failing, open, half_open, paused or unknown.
    pub state: &'static str,
    /// Being delivered now, by any instance.
    pub in_flight: u64,
    pub max_in_flight: usize,
    /// Not yet handed out (None: Redis cannot tell).
    pub backlog: Option<u64>,
    /// Handed out and not finished: in flight or waiting for a retry.
    pub pending: u64,
    pub retrying: u64,
    pub dlq: u64,
    pub oldest_pending_age_ms: Option<u64>,
    pub last_success_ms: Option<u64>,
    pub last_failure_ms: Option<u64>,
    pub last_failure_status: Option<u16>,
    #[serde(skip)]
    pub status: DestinationStatus,
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

/// One source's overview.
pub async fn source(queue: &Queue, source: &Source) -> Result<SourceOverview, QueueError> {
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let depths = queue.depths(&source.keys, &keys).await?;
    let states = queue.states(&keys).await?;
    let destinations: Vec<DestinationOverview> = source
        .destinations
        .iter()
        .zip(depths.destinations)
        .zip(states)
        .map(|((destination, depth), status)| DestinationOverview {
            name: destination.name.clone(),
            url: destination.config.url.to_string(),
            state: status.state().as_str(),
            in_flight: depth.pending.saturating_sub(depth.retrying),
            max_in_flight: destination.config.max_in_flight,
            backlog: depth.backlog,
            pending: depth.pending,
            retrying: depth.retrying,
            dlq: depth.dlq,
            oldest_pending_age_ms: depth.oldest_age_ms,
            last_success_ms: nonzero(status.last_success_ms),
            last_failure_ms: nonzero(status.last_failure_ms),
            last_failure_status: status.last_failure_status,
            status,
        })
        .collect();
    Ok(SourceOverview {
        name: source.name.clone(),
        backlog: destinations
            .iter()
            .map(|d| d.backlog)
            .try_fold(0, |max, b| b.map(|b| max.max(b))),
        pending: destinations.iter().map(|d| d.pending).sum(),
        retrying: destinations.iter().map(|d| d.retrying).sum(),
        dlq: depths.dlq,
        oldest_pending_age_ms: destinations
            .iter()
            .filter_map(|d| d.oldest_pending_age_ms)
            .max(),
        destinations,
        orphans: depths.orphans,
    })
}

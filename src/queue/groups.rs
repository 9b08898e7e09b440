//! The consumer groups as operators see and tend them: the queue depths
//! of each destination, and groups no destination names any more
//! (forgotten on request).

use std::time::Duration;

use fred::interfaces::{ClientLike, StreamsInterface};
use fred::types::Value;
use fred::types::scan::ScanType;
use futures_util::StreamExt;

use super::keys::{stream_source, streams_pattern};
use super::reply::{redis, reply, value_string, value_u64};
use super::stream::id_ms;
use super::{DestinationKeys, Queue, QueueError, SourceKeys};

/// The queue depths of one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DestinationDepth {
    pub name: String,
    /// Not yet handed to any consumer (None: Redis cannot tell).
    pub backlog: Option<u64>,
    /// Handed out and not finished: in flight or waiting for a retry.
    pub pending: u64,
    /// Waiting for a retry.
    pub retrying: u64,
    /// Dead-lettered for this destination.
    pub dlq: u64,
    /// Age of the oldest event it has not finished.
    pub oldest_age_ms: Option<u64>,
}

/// A consumer group no configured destination names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanGroup {
    pub name: String,
    pub backlog: Option<u64>,
    pub pending: u64,
    /// How long ago its most recent reader read or claimed (None: it has
    /// no readers). During a rolling configuration change another
    /// instance may still read (or already read) a destination this one's
    /// configuration does not name.
    pub last_read_ago: Option<Duration>,
}

impl OrphanGroup {
    /// Whether it still has events to deliver.
    pub fn holds_events(&self) -> bool {
        self.pending > 0 || self.backlog != Some(0)
    }

    /// Whether some instance read it within `within`: a live reader reads
    /// at least once per blocking read, and waits for worker slots no
    /// longer than a delivery's timeout, which `worker.claim_idle` exceeds.
    pub fn read_within(&self, within: Duration) -> bool {
        self.last_read_ago.is_some_and(|ago| ago < within)
    }
}

/// What became of a consumer group asked to be forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgot {
    Forgotten,
    NoGroup,
    /// Kept: it holds events, was read lately, or is paused or held by its
    /// breaker.
    InUse,
}

/// The queue depths of a source.
#[derive(Debug, Clone, Default)]
pub struct SourceDepths {
    pub dlq: u64,
    /// In the order asked for.
    pub destinations: Vec<DestinationDepth>,
    pub orphans: Vec<OrphanGroup>,
}

impl Queue {
    /// The queue depths of a source and of `destinations` (with their
    /// keys), and the groups no destination names.
    pub async fn depths(
        &self,
        keys: &SourceKeys,
        destinations: &[&DestinationKeys],
    ) -> Result<SourceDepths, QueueError> {
        const OP: &str = "stats";
        let mut script_keys = vec![
            keys.stream.as_str(),
            keys.dlq.as_str(),
            keys.dlq_counts.as_str(),
        ];
        script_keys.extend(destinations.iter().map(|d| d.retry.as_str()));
        let result = self
            .eval(
                OP,
                &self.scripts.stats,
                script_keys,
                || {
                    destinations
                        .iter()
                        .map(|d| Value::from(d.group.as_str()))
                        .collect()
                },
                None,
            )
            .await?;
        let Value::Array(parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        let mut parts = parts.into_iter();
        let dlq = parts.next().as_ref().and_then(value_u64).unwrap_or(0);
        let now = crate::clock::unix_ms();
        // The script answers -1 for what Redis cannot tell.
        let non_negative = |v: &Value| match v {
            Value::Integer(n) if *n >= 0 => Some(*n as u64),
            _ => None,
        };
        let mut depths = SourceDepths {
            dlq,
            ..SourceDepths::default()
        };
        for row in parts {
            let Value::Array(row) = row else {
                return Err(reply(OP, "row shape"));
            };
            let name = row.first().and_then(value_string).unwrap_or_default();
            let n = |i: usize| row.get(i).and_then(value_u64).unwrap_or(0);
            match row.len() {
                6 => depths.destinations.push(DestinationDepth {
                    backlog: row.get(1).and_then(non_negative),
                    pending: n(2),
                    retrying: n(3),
                    dlq: n(4),
                    oldest_age_ms: row
                        .get(5)
                        .and_then(value_string)
                        .and_then(|id| id_ms(&id))
                        .map(|ms| now.saturating_sub(ms)),
                    name,
                }),
                4 => depths.orphans.push(OrphanGroup {
                    backlog: row.get(1).and_then(non_negative),
                    pending: n(2),
                    last_read_ago: row.get(3).and_then(non_negative).map(Duration::from_millis),
                    name,
                }),
                _ => return Err(reply(OP, "row arity")),
            }
        }
        Ok(depths)
    }

    /// Forgets a destination no longer configured: its group and keys.
    /// Returns whether its group existed.
    pub async fn forget(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
    ) -> Result<bool, QueueError> {
        let forgot = self.forget_step(keys, destination, None).await?;
        Ok(forgot == Forgot::Forgotten)
    }

    /// Forgets a destination this instance's configuration does not name,
    /// but only if nobody uses it (atomically, in `forget.lua`): it holds
    /// nothing, none of its readers read within `within`, and it is
    /// neither paused nor held by its breaker. During a rolling
    /// configuration change other instances may still, or already, deliver
    /// to it.
    pub async fn forget_unused(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        within: Duration,
    ) -> Result<Forgot, QueueError> {
        self.forget_step(keys, destination, Some(within)).await
    }

    async fn forget_step(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        unused_within: Option<Duration>,
    ) -> Result<Forgot, QueueError> {
        const OP: &str = "forget";
        let result = self
            .eval(
                OP,
                &self.scripts.forget,
                vec![
                    &keys.stream,
                    &destination.retry,
                    &destination.attempts,
                    &destination.state,
                    &destination.rate,
                ],
                || {
                    let mut args = vec![destination.group.as_str().into()];
                    if let Some(within) = unused_within {
                        args.push((within.as_millis() as i64).into());
                    }
                    args
                },
                None,
            )
            .await?;
        let Value::Array(parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        match parts.first().and_then(value_u64) {
            Some(0) => Ok(Forgot::NoGroup),
            Some(1) => Ok(Forgot::Forgotten),
            Some(2) => Ok(Forgot::InUse),
            _ => Err(reply(OP, "unexpected verdict")),
        }
    }

    /// The names of every source with a stream under `prefix`, configured
    /// or not, sorted: a SCAN of the whole keyspace (every primary of a
    /// cluster), so it is for once at startup, not for a hot path.
    pub async fn stream_sources(&self, prefix: &str) -> Result<Vec<String>, QueueError> {
        let client = self.pool.next();
        let pattern = streams_pattern(prefix);
        let mut keys = if client.is_clustered() {
            client
                .scan_cluster_buffered(pattern, Some(1000), Some(ScanType::Stream))
                .boxed()
        } else {
            client
                .scan_buffered(pattern, Some(1000), Some(ScanType::Stream))
                .boxed()
        };
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(redis("scan"))?;
            if let Some(name) = key.as_str().and_then(|k| stream_source(prefix, k)) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Removes this process' consumer from `destination`'s group if it
    /// holds nothing, so restarts do not accumulate dead consumers.
    pub async fn remove_idle_consumer(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        consumer: &str,
    ) {
        let client = self.pool.next();
        let group = destination.group.as_str();
        let pending: Result<Value, _> = client
            .xpending(keys.stream.as_str(), group, ("-", "+", 1, consumer))
            .await;
        if let Ok(Value::Array(items)) = pending
            && items.is_empty()
        {
            let _: Result<Value, _> = client
                .xgroup_delconsumer(keys.stream.as_str(), group, consumer)
                .await;
        }
    }
}

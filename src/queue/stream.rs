//! The moves along the delivery path: read, claim, acknowledge, retry,
//! promote, dead-letter, and the queue depths operators watch.

use std::time::Duration;

use fred::interfaces::{ClientLike, StreamsInterface};
use fred::prelude::Client;
use fred::types::{ClusterHash, CustomCommand, Resp3Frame, Value};

use super::entry::{DeadReason, Envelope, RawEntry, decode};
use super::reply::{frame_error, frame_kind, redis, reply, value_string, value_u64};
use super::{GROUP, Queue, QueueError, READ_BLOCK, SourceKeys};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Not yet handed to any consumer.
    pub backlog: u64,
    /// Handed to a consumer, not yet acknowledged.
    pub pending: u64,
    /// Waiting in the delayed set for a retry.
    pub retrying: u64,
    /// Dead-lettered.
    pub dlq: u64,
    /// Age of the oldest undelivered entry in the stream (read or not).
    pub oldest_age_ms: Option<u64>,
}

/// An entry taken over from another consumer.
#[derive(Debug)]
pub struct Claimed {
    pub envelope: Envelope,
    /// How often the entry has been handed out, this time included.
    pub deliveries: u64,
}

/// One XAUTOCLAIM step.
#[derive(Debug)]
pub struct ClaimPage {
    /// Where the next step continues; "0-0" once the scan wrapped.
    pub next_cursor: String,
    pub claimed: Vec<Claimed>,
    /// Pending ids whose entries were deleted (Redis drops them itself).
    pub deleted: u64,
}

/// Why and how an entry goes to the DLQ.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub entry_id: &'a str,
    pub reason: DeadReason,
    /// The last attempt's HTTP status, if it got one.
    pub status: Option<u16>,
    pub error: &'a str,
    /// The history line of the attempt (or crash loop) that ends it.
    pub history: &'a str,
}

/// What one promote step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    pub moved: u64,
    /// How long until the next retry is due; None when none waits.
    pub next_due: Option<Duration>,
}

impl Queue {
    /// Creates the consumer group (and the stream) if missing. Starts at
    /// id 0 so events accepted before the group existed are delivered too.
    pub async fn ensure_group(&self, keys: &SourceKeys) -> Result<(), QueueError> {
        match self
            .pool
            .next()
            .xgroup_create::<Value, _, _, _>(keys.stream.as_str(), GROUP, "0", true)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(redis("xgroup create")(e)),
        }
    }

    /// New entries for this consumer, at most `count`; with `block`, waits
    /// up to [`READ_BLOCK`] for one. `client` must be a
    /// [`Self::dedicated_client`].
    pub async fn read(
        &self,
        client: &Client,
        keys: &SourceKeys,
        consumer: &str,
        count: usize,
        block: bool,
    ) -> Result<Vec<Envelope>, QueueError> {
        const OP: &str = "xreadgroup";
        let mut args: Vec<Value> = Vec::with_capacity(10);
        args.extend([
            Value::from_static_str("GROUP"),
            Value::from_static_str(GROUP),
            consumer.into(),
            Value::from_static_str("COUNT"),
            Value::Integer(count as i64),
        ]);
        if block {
            args.push(Value::from_static_str("BLOCK"));
            args.push(Value::Integer(READ_BLOCK.as_millis() as i64));
        }
        args.push(Value::from_static_str("STREAMS"));
        let key_at = args.len();
        args.push(keys.stream.as_str().into());
        args.push(Value::from_static_str(">"));
        // Raw reply: the entries are taken apart straight from the frame.
        // Blocking as fred's own XREADGROUP marks it, so it is never
        // pipelined behind other commands.
        let command = CustomCommand::new_static("XREADGROUP", ClusterHash::Offset(key_at), block);
        let frame = client.custom_raw(command, args).await.map_err(redis(OP))?;
        if let Some(e) = frame_error(OP, &frame) {
            return Err(e);
        }
        let lists: Vec<Resp3Frame> = match frame {
            // BLOCK timed out (or nothing new).
            Resp3Frame::Null => return Ok(Vec::new()),
            // RESP2: [[stream, [entry...]]]
            Resp3Frame::Array { data, .. } => data
                .into_iter()
                .filter_map(|s| match s {
                    Resp3Frame::Array { mut data, .. } if data.len() == 2 => {
                        Some(data.swap_remove(1))
                    }
                    _ => None,
                })
                .collect(),
            // RESP3: {stream: [entry...]}
            Resp3Frame::Map { data, .. } => data.into_values().collect(),
            other => return Err(reply(OP, frame_kind(&other))),
        };
        let mut out = Vec::with_capacity(count);
        for list in lists {
            if let Resp3Frame::Array { data, .. } = list {
                for entry in data {
                    out.push(decode(OP, RawEntry::Frame(entry))?);
                }
            }
        }
        Ok(out)
    }

    /// One XAUTOCLAIM step with delivery counts (`claim.lua`): entries
    /// other consumers left pending longer than `min_idle`.
    pub async fn claim(
        &self,
        keys: &SourceKeys,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<ClaimPage, QueueError> {
        const OP: &str = "claim";
        let result = self
            .eval(
                OP,
                &self.scripts.claim,
                vec![&keys.stream],
                || {
                    vec![
                        GROUP.into(),
                        consumer.into(),
                        Value::Integer(min_idle.as_millis() as i64),
                        cursor.into(),
                        Value::Integer(count as i64),
                    ]
                },
                None,
            )
            .await?;
        let parts = match result {
            Value::Array(parts) if parts.len() == 3 => parts,
            other => return Err(reply(OP, format!("{other:?}"))),
        };
        let mut parts = parts.into_iter();
        let next_cursor = parts
            .next()
            .as_ref()
            .and_then(value_string)
            .ok_or_else(|| reply(OP, "cursor"))?;
        let entries = match parts.next() {
            Some(Value::Array(entries)) => entries,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(reply(OP, format!("entries {:?}", other.kind()))),
        };
        let deleted = parts.next().as_ref().and_then(value_u64).unwrap_or(0);
        let mut claimed = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(mut triple) = entry else {
                return Err(reply(OP, "entry shape"));
            };
            if triple.len() != 3 {
                return Err(reply(OP, "entry arity"));
            }
            let deliveries = value_u64(&triple[2]).unwrap_or(1);
            triple.truncate(2);
            claimed.push(Claimed {
                envelope: decode(OP, RawEntry::Value(Value::Array(triple)))?,
                deliveries,
            });
        }
        Ok(ClaimPage {
            next_cursor,
            claimed,
            deleted,
        })
    }

    /// Acknowledges delivered entries and removes them from the stream.
    pub async fn ack(&self, keys: &SourceKeys, entry_ids: &[&str]) -> Result<u64, QueueError> {
        let result = self
            .eval(
                "ack",
                &self.scripts.ack,
                vec![&keys.stream],
                || {
                    let mut args = Vec::with_capacity(entry_ids.len() + 1);
                    args.push(GROUP.into());
                    args.extend(entry_ids.iter().map(|id| Value::from(*id)));
                    args
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0))
    }

    /// Moves an entry to the delayed set, due after `delay`, its attempt
    /// counted and `history` appended. Returns false if the entry was
    /// already gone (another consumer finished it).
    pub async fn schedule_retry(
        &self,
        keys: &SourceKeys,
        entry_id: &str,
        delay: Duration,
        history: &str,
    ) -> Result<bool, QueueError> {
        let result = self
            .eval(
                "retry",
                &self.scripts.retry,
                vec![&keys.stream, &keys.delayed],
                || {
                    vec![
                        GROUP.into(),
                        entry_id.into(),
                        Value::Integer(delay.as_millis().min(i64::MAX as u128) as i64),
                        history.into(),
                    ]
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0) > 0)
    }

    /// Moves an entry to the DLQ. Returns false if it was already gone.
    pub async fn dead_letter(
        &self,
        keys: &SourceKeys,
        dead: &DeadLetter<'_>,
    ) -> Result<bool, QueueError> {
        let status = dead.status.map(|s| s.to_string()).unwrap_or_default();
        let result = self
            .eval(
                "dead-letter",
                &self.scripts.dead,
                vec![&keys.stream, &keys.dlq],
                || {
                    vec![
                        GROUP.into(),
                        dead.entry_id.into(),
                        dead.reason.as_str().into(),
                        status.as_str().into(),
                        dead.error.into(),
                        dead.history.into(),
                        if dead.reason.ends_an_attempt() {
                            "1"
                        } else {
                            "0"
                        }
                        .into(),
                    ]
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0) > 0)
    }

    /// Moves due retries back to the stream, at most `limit`.
    pub async fn promote(&self, keys: &SourceKeys, limit: usize) -> Result<Promoted, QueueError> {
        const OP: &str = "promote";
        let result = self
            .eval(
                OP,
                &self.scripts.promote,
                vec![&keys.stream, &keys.delayed],
                || vec![Value::Integer(limit as i64)],
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 2 => Ok(Promoted {
                moved: value_u64(&parts[0]).unwrap_or(0),
                next_due: match &parts[1] {
                    Value::Integer(ms) if *ms >= 0 => Some(Duration::from_millis(*ms as u64)),
                    _ => None,
                },
            }),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    pub async fn stats(&self, keys: &SourceKeys) -> Result<SourceStats, QueueError> {
        const OP: &str = "stats";
        let result = self
            .eval(
                OP,
                &self.scripts.stats,
                vec![&keys.stream, &keys.delayed, &keys.dlq],
                || vec![GROUP.into()],
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 5 => {
                let n = |i: usize| value_u64(&parts[i]).unwrap_or(0);
                let (length, pending) = (n(0), n(1));
                let oldest_ms = value_string(&parts[4])
                    .and_then(|id| id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()));
                Ok(SourceStats {
                    backlog: length.saturating_sub(pending),
                    pending,
                    retrying: n(2),
                    dlq: n(3),
                    oldest_age_ms: oldest_ms.map(|ms| crate::clock::unix_ms().saturating_sub(ms)),
                })
            }
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Removes this process' consumer from the group if it holds nothing, so
    /// restarts do not accumulate dead consumers.
    pub async fn remove_idle_consumer(&self, keys: &SourceKeys, consumer: &str) {
        let client = self.pool.next();
        let pending: Result<Value, _> = client
            .xpending(keys.stream.as_str(), GROUP, ("-", "+", 1, consumer))
            .await;
        if let Ok(Value::Array(items)) = pending
            && items.is_empty()
        {
            let _: Result<Value, _> = client
                .xgroup_delconsumer(keys.stream.as_str(), GROUP, consumer)
                .await;
        }
    }
}

//! The moves along the delivery path, per destination: read, take due
//! retries, claim, acknowledge, retry, dead-letter; the groups' setup.

use std::time::Duration;

use fred::interfaces::ClientLike;
use fred::prelude::Client;
use fred::types::{ClusterHash, CustomCommand, Resp3Frame, Value};

use super::counters::{LATENCY_BUCKETS, Recording, bucket_field, latency_bucket, ttl_arg};
use super::entry::{DeadReason, Envelope, RawEntry, decode};
use super::reply::{frame_error, frame_kind, redis, reply, value_string, value_u64};
use super::{DestinationKeys, LEGACY_GROUP, Queue, QueueError, SourceKeys};

/// What a destination is done with an entry as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// The destination answered 2xx.
    Delivered,
    /// Not for this destination: its filter did not match, or a replay
    /// addressed to another destination.
    Skipped,
}

/// An entry a destination is done with, to acknowledge.
#[derive(Debug, Clone)]
pub struct Ack {
    pub kind: AckKind,
    pub entry_id: String,
    /// The successful attempt's history line (empty when skipped).
    pub line: String,
    /// Accepted → delivered, for the minute's histogram.
    pub latency_ms: u64,
}

/// A failed attempt to record.
#[derive(Debug)]
pub struct FailedAttempt<'a> {
    pub entry_id: &'a str,
    /// The backoff before the next attempt.
    pub delay: Duration,
    /// The attempt's history line.
    pub history: &'a str,
    pub status: Option<u16>,
    pub max_attempts: u32,
    /// The breaker's `failures` (0 = off), cooldown and its ceiling.
    pub breaker_failures: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// The attempt was the breaker's probe: not counted.
    pub probe: bool,
}

/// What recording a failed attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Due again at this unix ms; the breaker is open until
    /// `breaker_open_until_ms` (this failure may have opened it).
    Scheduled {
        due_ms: u64,
        breaker_open_until_ms: Option<u64>,
    },
    /// That was the last attempt: dead-letter it.
    Exhausted { attempts: u32 },
    /// Another consumer settled the entry meanwhile.
    Gone,
}

/// Why and how an entry goes to the DLQ for a destination.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub entry_id: &'a str,
    pub reason: DeadReason,
    /// The last attempt's HTTP status, if it got one.
    pub status: Option<u16>,
    pub error: &'a str,
    /// The history line of the step that ends it; empty when the retry
    /// script has recorded it already (attempts exhausted).
    pub history: &'a str,
    /// This step is an attempt of its own to count.
    pub counted: bool,
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

/// Retries that were due, now this consumer's.
#[derive(Debug)]
pub struct Due {
    pub entries: Vec<Envelope>,
    /// How long until the next retry is due; None when none waits.
    pub next_due: Option<Duration>,
}

/// What `setup.lua` did.
#[derive(Debug, Default)]
pub struct Setup {
    /// Retries of the single-destination layout appended again for the heir.
    pub migrated: u64,
    /// Consumer groups created.
    pub created: Vec<String>,
}

/// The millisecond part of a stream id.
pub fn id_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn attempts_of(value: &Value) -> u32 {
    value_u64(value).unwrap_or(0) as u32
}

impl Queue {
    /// Creates every destination's consumer group that is missing (a new
    /// one starts with new events) and migrates the single-destination
    /// layout of the stream if it finds it (`setup.lua`).
    pub async fn setup(
        &self,
        keys: &SourceKeys,
        destinations: &[&str],
        heir: &str,
    ) -> Result<Setup, QueueError> {
        const OP: &str = "setup";
        let result = self
            .eval(
                OP,
                &self.scripts.setup,
                vec![
                    &keys.stream,
                    &keys.legacy_delayed,
                    &keys.dlq,
                    &keys.dlq_counts,
                    &keys.heir,
                    &keys.ids,
                ],
                || {
                    let mut args: Vec<Value> = vec![LEGACY_GROUP.into(), heir.into()];
                    args.extend(destinations.iter().map(|d| Value::from(*d)));
                    args
                },
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 2 => Ok(Setup {
                migrated: value_u64(&parts[0]).unwrap_or(0),
                created: match &parts[1] {
                    Value::Array(names) => names.iter().filter_map(value_string).collect(),
                    _ => Vec::new(),
                },
            }),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// New entries for this consumer of `destination`, at most `count`;
    /// with `block`, waits up to that long for one. `client` must be a
    /// [`Self::dedicated_client`].
    pub async fn read(
        &self,
        client: &Client,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Envelope>, QueueError> {
        const OP: &str = "xreadgroup";
        let mut args: Vec<Value> = Vec::with_capacity(10);
        args.extend([
            Value::from_static_str("GROUP"),
            destination.group.as_str().into(),
            consumer.into(),
            Value::from_static_str("COUNT"),
            Value::Integer(count as i64),
        ]);
        if let Some(block) = block {
            args.push(Value::from_static_str("BLOCK"));
            args.push(Value::Integer(block.as_millis().max(1) as i64));
        }
        args.push(Value::from_static_str("STREAMS"));
        args.push(keys.stream.as_str().into());
        args.push(Value::from_static_str(">"));
        // Raw reply: the entries are taken apart straight from the frame.
        // Blocking as fred's own XREADGROUP marks it, so it is never
        // pipelined behind other commands. fred routes a custom command
        // by an explicit slot only: with any other `ClusterHash` it hashes
        // the first argument ("GROUP"), and on a cluster every read would
        // take a MOVED and a routing-table refresh.
        let slot = ClusterHash::Custom(fred::util::redis_keyslot(keys.stream.as_bytes()));
        let command = CustomCommand::new_static("XREADGROUP", slot, block.is_some());
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

    /// Parks entries this consumer was handed but may not start (the gate
    /// shut during the read) as due retries of `destination`, no attempt
    /// counted (`defer.lua`).
    pub async fn defer(
        &self,
        destination: &DestinationKeys,
        entry_ids: &[String],
    ) -> Result<(), QueueError> {
        self.eval(
            "defer",
            &self.scripts.defer,
            vec![&destination.retry],
            || {
                entry_ids
                    .iter()
                    .map(|id| Value::from(id.as_str()))
                    .collect()
            },
            None,
        )
        .await
        .map(drop)
    }

    /// Retries of `destination` that are due, at most `count`, made this
    /// consumer's (`take.lua`).
    pub async fn take_due(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        consumer: &str,
        count: usize,
    ) -> Result<Due, QueueError> {
        const OP: &str = "take";
        let result = self
            .eval(
                OP,
                &self.scripts.take,
                vec![&keys.stream, &destination.retry, &destination.attempts],
                || {
                    vec![
                        destination.group.as_str().into(),
                        consumer.into(),
                        Value::Integer(count as i64),
                    ]
                },
                None,
            )
            .await?;
        let Value::Array(mut parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        if parts.len() != 2 {
            return Err(reply(OP, "expected two items"));
        }
        let next_due = match &parts[1] {
            Value::Integer(ms) if *ms >= 0 => Some(Duration::from_millis(*ms as u64)),
            _ => None,
        };
        let rows = match parts.swap_remove(0) {
            Value::Array(rows) => rows,
            _ => Vec::new(),
        };
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let Value::Array(mut triple) = row else {
                return Err(reply(OP, "entry shape"));
            };
            if triple.len() != 3 {
                return Err(reply(OP, "entry arity"));
            }
            let attempts = attempts_of(&triple[2]);
            triple.truncate(2);
            let mut envelope: Envelope = decode(OP, RawEntry::Value(Value::Array(triple)))?;
            envelope.attempts = attempts;
            entries.push(envelope);
        }
        Ok(Due { entries, next_due })
    }

    /// One XAUTOCLAIM step for `destination` with delivery counts
    /// (`claim.lua`): entries other consumers left pending longer than
    /// `min_idle`, except those waiting for a retry.
    pub async fn claim(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
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
                vec![&keys.stream, &destination.retry, &destination.attempts],
                || {
                    vec![
                        destination.group.as_str().into(),
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
            let Value::Array(mut row) = entry else {
                return Err(reply(OP, "entry shape"));
            };
            if row.len() != 4 {
                return Err(reply(OP, "entry arity"));
            }
            let deliveries = value_u64(&row[2]).unwrap_or(1);
            let attempts = attempts_of(&row[3]);
            row.truncate(2);
            let mut envelope: Envelope = decode(OP, RawEntry::Value(Value::Array(row)))?;
            envelope.attempts = attempts;
            claimed.push(Claimed {
                envelope,
                deliveries,
            });
        }
        Ok(ClaimPage {
            next_cursor,
            claimed,
            deleted,
        })
    }

    /// Acknowledges what `destination` is done with (`ack.lua`): with the
    /// log on, a delivered entry keeps its attempt record; with it off, an
    /// entry every destination is done with leaves the stream.
    pub async fn ack(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        acks: &[Ack],
        recording: &Recording,
    ) -> Result<u64, QueueError> {
        let mut histogram = [0u64; LATENCY_BUCKETS];
        for ack in acks.iter().filter(|a| a.kind == AckKind::Delivered) {
            histogram[latency_bucket(ack.latency_ms)] += 1;
        }
        let touched = histogram.iter().filter(|n| **n > 0).count();
        let result = self
            .eval(
                "ack",
                &self.scripts.ack,
                vec![
                    &keys.stream,
                    &destination.attempts,
                    &destination.state,
                    &recording.counters,
                ],
                || {
                    let mut args = Vec::with_capacity(4 + 2 * touched + 3 * acks.len());
                    args.push(destination.group.as_str().into());
                    args.push(recording.keep_flag());
                    args.push(ttl_arg());
                    args.push(Value::Integer(touched as i64));
                    for (bucket, n) in histogram.iter().enumerate().filter(|(_, n)| **n > 0) {
                        args.push(Value::from_static_str(bucket_field(bucket)));
                        args.push(Value::Integer(*n as i64));
                    }
                    for ack in acks {
                        args.push(Value::from_static_str(match ack.kind {
                            AckKind::Delivered => "d",
                            AckKind::Skipped => "f",
                        }));
                        args.push(Value::from(ack.entry_id.as_str()));
                        args.push(Value::from(ack.line.as_str()));
                    }
                    args
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0))
    }

    /// Records a failed attempt for `destination` (`retry.lua`): counted,
    /// kept in its history, and due again unless it was the last.
    pub async fn schedule_retry(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        failed: &FailedAttempt<'_>,
        recording: &Recording,
    ) -> Result<RetryOutcome, QueueError> {
        const OP: &str = "retry";
        let status = failed.status.map(|s| s.to_string()).unwrap_or_default();
        let ms = |d: Duration| Value::Integer(d.as_millis().min(i64::MAX as u128) as i64);
        let result = self
            .eval(
                OP,
                &self.scripts.retry,
                vec![
                    &keys.stream,
                    &destination.retry,
                    &destination.attempts,
                    &destination.state,
                    &recording.counters,
                ],
                || {
                    vec![
                        destination.group.as_str().into(),
                        failed.entry_id.into(),
                        ms(failed.delay),
                        failed.history.into(),
                        status.as_str().into(),
                        Value::Integer(i64::from(failed.max_attempts)),
                        Value::Integer(i64::from(failed.breaker_failures)),
                        ms(failed.cooldown),
                        ms(failed.max_cooldown),
                        if failed.probe { "1" } else { "0" }.into(),
                        ttl_arg(),
                    ]
                },
                None,
            )
            .await?;
        let Value::Array(parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        match (
            parts.first().and_then(value_string).as_deref(),
            parts.get(1),
        ) {
            (Some("retry"), Some(due)) => Ok(RetryOutcome::Scheduled {
                due_ms: value_u64(due).unwrap_or(0),
                breaker_open_until_ms: parts.get(2).and_then(value_u64).filter(|ms| *ms > 0),
            }),
            (Some("dead"), Some(made)) => Ok(RetryOutcome::Exhausted {
                attempts: attempts_of(made),
            }),
            (Some("gone"), _) => Ok(RetryOutcome::Gone),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Moves an entry to the DLQ for `destination`. Returns false if it
    /// was already gone.
    pub async fn dead_letter(
        &self,
        keys: &SourceKeys,
        destination: &DestinationKeys,
        dead: &DeadLetter<'_>,
        recording: &Recording,
    ) -> Result<bool, QueueError> {
        let status = dead.status.map(|s| s.to_string()).unwrap_or_default();
        let flag = |on: bool| Value::from_static_str(if on { "1" } else { "0" });
        let result = self
            .eval(
                "dead-letter",
                &self.scripts.dead,
                vec![
                    &keys.stream,
                    &keys.dlq,
                    &destination.retry,
                    &destination.attempts,
                    &destination.state,
                    &keys.dlq_counts,
                    &recording.counters,
                ],
                || {
                    vec![
                        destination.group.as_str().into(),
                        dead.entry_id.into(),
                        dead.reason.as_str().into(),
                        status.as_str().into(),
                        dead.error.into(),
                        dead.history.into(),
                        flag(dead.counted),
                        // A rejection is an answer: the destination is up.
                        flag(dead.reason == DeadReason::Rejected),
                        recording.keep_flag(),
                        ttl_arg(),
                    ]
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0) > 0)
    }
}

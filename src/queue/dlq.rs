//! The dead-letter queue's moves: a filtered walk that leaves bodies in
//! Redis, one entry, replay back to the stream, delete.

use fred::interfaces::StreamsInterface;
use fred::types::Value;

use super::entry::{RawEntry, StoredEntry, decode};
use super::reply::{redis, reply, value_string, value_u64};
use super::{Queue, QueueError, SourceKeys};

/// The listing fields of a DLQ entry that matched a scan's filter.
#[derive(Debug, Clone, Default)]
pub struct DlqMatch {
    pub dlq_id: String,
    pub event_id: String,
    pub event_type: String,
    pub reason: String,
    pub status: Option<u16>,
    pub error: String,
    pub attempts: u32,
    pub received_ms: u64,
    pub dead_at_ms: u64,
    pub body_bytes: usize,
    /// The destination it died for.
    pub destination: String,
}

/// What a DLQ walk keeps (empty = any).
#[derive(Debug, Clone, Copy, Default)]
pub struct DlqScanFilter<'a> {
    pub event_type: &'a str,
    pub reason: &'a str,
    pub destination: &'a str,
}

/// A DLQ entry that matched a bulk operation's filter.
#[derive(Debug, Clone)]
pub struct DlqRef {
    pub dlq_id: String,
    /// The destination it died for.
    pub destination: String,
}

/// One step of a filtered DLQ walk (`dlq_scan.lua`).
#[derive(Debug)]
pub struct DlqScanStep<M> {
    /// Entries looked at.
    pub examined: usize,
    /// The oldest entry looked at, where the next step continues below.
    pub last: Option<String>,
    pub matches: Vec<M>,
    /// Entries may remain below `last`.
    pub more: bool,
}

/// What a scan step returns for each match, which `dlq_scan.lua` is asked
/// for by name (ARGV[7]): the name and the parser of its reply travel
/// together.
trait ScanShape: Sized {
    const SHAPE: &'static str;
    fn parse(fields: &[Value]) -> Option<Self>;
}

impl ScanShape for DlqMatch {
    const SHAPE: &'static str = "rows";

    fn parse(fields: &[Value]) -> Option<Self> {
        let text = |v: &Value| value_string(v).unwrap_or_default();
        let number = |v: &Value| value_u64(v).unwrap_or(0);
        match fields {
            [
                dlq_id,
                event_id,
                event_type,
                reason,
                status,
                error,
                attempts,
                received,
                dead_at,
                body_bytes,
                destination,
            ] => Some(Self {
                dlq_id: text(dlq_id),
                event_id: text(event_id),
                event_type: text(event_type),
                reason: text(reason),
                status: text(status).parse().ok(),
                error: text(error),
                attempts: number(attempts) as u32,
                received_ms: number(received),
                dead_at_ms: number(dead_at),
                body_bytes: number(body_bytes) as usize,
                destination: text(destination),
            }),
            _ => None,
        }
    }
}

impl ScanShape for DlqRef {
    const SHAPE: &'static str = "refs";

    fn parse(fields: &[Value]) -> Option<Self> {
        match fields {
            [dlq_id, destination] => Some(Self {
                dlq_id: value_string(dlq_id)?,
                destination: value_string(destination).unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

impl Queue {
    /// Replays a DLQ entry into the stream with attempts reset. Returns the
    /// new entry id, or None if the DLQ entry no longer exists.
    pub async fn replay(
        &self,
        keys: &SourceKeys,
        dlq_id: &str,
    ) -> Result<Option<String>, QueueError> {
        Ok(self.replay_many(keys, &[dlq_id]).await?.pop().flatten())
    }

    /// [`Self::replay`] for several entries in one script call.
    pub async fn replay_many(
        &self,
        keys: &SourceKeys,
        dlq_ids: &[&str],
    ) -> Result<Vec<Option<String>>, QueueError> {
        const OP: &str = "replay";
        if dlq_ids.is_empty() {
            return Ok(Vec::new());
        }
        let result = self
            .eval(
                OP,
                &self.scripts.replay,
                vec![
                    &keys.stream,
                    &keys.dlq,
                    &keys.dlq_counts,
                    &keys.heir,
                    &keys.ids,
                ],
                || dlq_ids.iter().map(|id| Value::from(*id)).collect(),
                None,
            )
            .await?;
        match result {
            Value::Array(items) if items.len() == dlq_ids.len() => Ok(items
                .iter()
                .map(|item| match item {
                    Value::Null | Value::Boolean(false) => None,
                    other => value_string(other),
                })
                .collect()),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Examines up to `count` DLQ entries, newest first, from `from`
    /// (inclusive; None = the newest), and returns those matching `filter`.
    pub async fn dlq_scan(
        &self,
        keys: &SourceKeys,
        from: Option<&str>,
        count: usize,
        most_matches: usize,
        filter: &DlqScanFilter<'_>,
    ) -> Result<DlqScanStep<DlqMatch>, QueueError> {
        self.dlq_scan_step(keys, from, count, most_matches, filter)
            .await
    }

    /// [`Self::dlq_scan`] returning only what a bulk operation acts on:
    /// each match's id and destination.
    pub async fn dlq_scan_refs(
        &self,
        keys: &SourceKeys,
        from: Option<&str>,
        count: usize,
        filter: &DlqScanFilter<'_>,
    ) -> Result<DlqScanStep<DlqRef>, QueueError> {
        self.dlq_scan_step(keys, from, count, count, filter).await
    }

    async fn dlq_scan_step<M: ScanShape>(
        &self,
        keys: &SourceKeys,
        from: Option<&str>,
        count: usize,
        most_matches: usize,
        filter: &DlqScanFilter<'_>,
    ) -> Result<DlqScanStep<M>, QueueError> {
        const OP: &str = "dlq scan";
        let result = self
            .eval(
                OP,
                &self.scripts.dlq_scan,
                vec![&keys.dlq, &keys.heir],
                || {
                    vec![
                        from.unwrap_or("+").into(),
                        Value::Integer(count as i64),
                        filter.event_type.into(),
                        filter.reason.into(),
                        filter.destination.into(),
                        Value::Integer(most_matches as i64),
                        M::SHAPE.into(),
                    ]
                },
                None,
            )
            .await?;
        let Value::Array(parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        let [examined, last, matches, more] =
            <[Value; 4]>::try_from(parts).map_err(|_| reply(OP, "expected four items"))?;
        let matches = match matches {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let matches = matches
            .iter()
            .map(|item| match item {
                Value::Array(fields) => M::parse(fields).ok_or_else(|| reply(OP, "match shape")),
                _ => Err(reply(OP, "match shape")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DlqScanStep {
            examined: value_u64(&examined).unwrap_or(0) as usize,
            last: value_string(&last).filter(|id| !id.is_empty()),
            matches,
            more: value_u64(&more) == Some(1),
        })
    }

    /// One DLQ entry by id with all its fields, or None.
    pub async fn dlq_get(
        &self,
        keys: &SourceKeys,
        dlq_id: &str,
    ) -> Result<Option<StoredEntry>, QueueError> {
        const OP: &str = "xrange";
        let value: Value = self
            .pool
            .next()
            .xrange(keys.dlq.as_str(), dlq_id, dlq_id, Some(1))
            .await
            .map_err(redis(OP))?;
        let Value::Array(entries) = value else {
            return Ok(None);
        };
        match entries.into_iter().next() {
            None => Ok(None),
            Some(entry) => decode(OP, RawEntry::Value(entry)).map(Some),
        }
    }

    /// The destination that inherited the single-destination layout's DLQ
    /// entries, if the stream was migrated.
    pub async fn heir(&self, keys: &SourceKeys) -> Result<Option<String>, QueueError> {
        use fred::interfaces::KeysInterface;
        self.pool
            .next()
            .get::<Option<String>, _>(keys.heir.as_str())
            .await
            .map_err(redis("get"))
    }

    /// Deletes a DLQ entry; false if it was not there.
    pub async fn dlq_delete(&self, keys: &SourceKeys, dlq_id: &str) -> Result<bool, QueueError> {
        let unknown = DlqRef {
            dlq_id: dlq_id.to_owned(),
            destination: String::new(),
        };
        Ok(self.dlq_delete_many(keys, &[unknown]).await? > 0)
    }

    /// Deletes DLQ entries in one script call, keeping each destination's
    /// count; how many were there. A ref with an empty destination has it
    /// read from the entry.
    pub async fn dlq_delete_many(
        &self,
        keys: &SourceKeys,
        refs: &[DlqRef],
    ) -> Result<usize, QueueError> {
        if refs.is_empty() {
            return Ok(0);
        }
        let result = self
            .eval(
                "dlq delete",
                &self.scripts.dlq_delete,
                vec![&keys.dlq, &keys.dlq_counts, &keys.heir],
                || {
                    refs.iter()
                        .flat_map(|r| [r.dlq_id.as_str().into(), r.destination.as_str().into()])
                        .collect()
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0) as usize)
    }
}

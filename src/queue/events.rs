//! The event log in Redis: each source's stream keeps finished events for
//! as long as its `history` says (`trim.lua` removes the rest, never an
//! unfinished one), each destination's attempt records say how each event
//! went, and `events.lua` walks it with every destination's status.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use fred::types::Value;

use super::reply::{reply, value_bytes, value_string, value_u64};
use super::{DestinationKeys, Queue, QueueError, SourceKeys};

/// What an event is for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Queued,
    InFlight,
    Delivered,
    Retrying,
    Dead,
    Filtered,
    Paused,
}

impl EventStatus {
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::InFlight,
        Self::Delivered,
        Self::Retrying,
        Self::Dead,
        Self::Filtered,
        Self::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InFlight => "in_flight",
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Filtered => "filtered",
            Self::Paused => "paused",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "status must be one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// What one step of a walk looks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventScanFilter<'a> {
    pub event_type: &'a str,
    pub status: Option<EventStatus>,
    pub destination: &'a str,
}

/// One destination's view of a logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDestination {
    pub name: String,
    pub status: EventStatus,
    /// Attempts made (the probe's too).
    pub attempts: u32,
    /// Every attempt's history line, when the detail was asked for.
    pub history: String,
}

/// A logged event a walk matched.
#[derive(Debug, Clone, Default)]
pub struct EventMatch {
    pub entry_id: String,
    pub event_id: String,
    pub event_type: String,
    pub received_ms: u64,
    pub body_bytes: usize,
    /// The one destination a replay copy is for.
    pub to: Option<String>,
    /// The entry a replay copy was made from.
    pub of: Option<String>,
    pub destinations: Vec<LoggedDestination>,
    /// With the detail only.
    pub content_type: String,
    pub headers: Bytes,
    pub body: Bytes,
}

/// One step of a walk.
#[derive(Debug, Clone, Default)]
pub struct EventScanStep {
    pub examined: usize,
    /// The oldest entry looked at, where the next step continues below.
    pub last: Option<String>,
    /// Entries may remain below `last`.
    pub more: bool,
    pub matches: Vec<EventMatch>,
}

/// One step of the retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimStep {
    pub deleted: u64,
    /// The step stopped at its budget: call again.
    pub more: bool,
    /// Redis was near maxmemory: the step kept no finished event.
    pub shed: bool,
}

fn ms(d: Duration) -> Value {
    Value::Integer(d.as_millis().min(i64::MAX as u128) as i64)
}

fn parse_match(op: &'static str, item: Value) -> Result<EventMatch, QueueError> {
    let Value::Array(f) = item else {
        return Err(reply(op, "match shape"));
    };
    if f.len() != 8 && f.len() != 11 {
        return Err(reply(op, "match arity"));
    }
    let text = |v: &Value| value_string(v).unwrap_or_default();
    let optional = |v: &Value| Some(text(v)).filter(|s| !s.is_empty());
    let mut destinations = Vec::new();
    if let Value::Array(rows) = &f[7] {
        for row in rows {
            let Value::Array(row) = row else {
                return Err(reply(op, "destination shape"));
            };
            let status = row
                .get(1)
                .and_then(value_string)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| reply(op, "destination status"))?;
            destinations.push(LoggedDestination {
                name: row.first().map(text).unwrap_or_default(),
                status,
                attempts: row.get(2).and_then(value_u64).unwrap_or(0) as u32,
                history: row.get(3).map(text).unwrap_or_default(),
            });
        }
    }
    let mut event = EventMatch {
        entry_id: text(&f[0]),
        event_id: text(&f[1]),
        event_type: text(&f[2]),
        received_ms: value_u64(&f[3]).unwrap_or(0),
        body_bytes: value_u64(&f[4]).unwrap_or(0) as usize,
        to: optional(&f[5]),
        of: optional(&f[6]),
        destinations,
        ..EventMatch::default()
    };
    if f.len() == 11 {
        event.content_type = text(&f[8]);
        event.headers = value_bytes(&f[9]).unwrap_or_default();
        event.body = value_bytes(&f[10]).unwrap_or_default();
    }
    Ok(event)
}

/// Share of `maxmemory` (percent) from which the event log keeps no
/// finished event: near the limit Redis would refuse ingest, and new
/// events matter more than the log of delivered ones.
pub const SHED_AT_PERCENT: i64 = 90;

impl Queue {
    /// One bounded step of the event log's retention (`trim.lua`).
    pub async fn trim(
        &self,
        keys: &SourceKeys,
        destinations: &[&DestinationKeys],
        max_events: u64,
        max_age: Duration,
        budget: usize,
    ) -> Result<TrimStep, QueueError> {
        const OP: &str = "trim";
        let mut script_keys = vec![keys.stream.as_str(), keys.ids.as_str()];
        script_keys.extend(destinations.iter().map(|d| d.attempts.as_str()));
        let result = self
            .eval(
                OP,
                &self.scripts.trim,
                script_keys,
                || {
                    vec![
                        Value::Integer(max_events.min(i64::MAX as u64) as i64),
                        ms(max_age),
                        Value::Integer(budget as i64),
                        Value::Integer(SHED_AT_PERCENT),
                    ]
                },
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 3 => Ok(TrimStep {
                deleted: value_u64(&parts[0]).unwrap_or(0),
                more: value_u64(&parts[1]) == Some(1),
                shed: value_u64(&parts[2]) == Some(1),
            }),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// One step of a newest-first walk through the log between `upper`
    /// and `lower` (inclusive stream ids, or `+` / `-`): at most `count`
    /// entries examined, at most `most` matches, with each destination's
    /// status (and, with `detail`, the event itself and every attempt).
    #[allow(clippy::too_many_arguments)]
    pub async fn events_scan(
        &self,
        keys: &SourceKeys,
        destinations: &[&DestinationKeys],
        upper: &str,
        lower: &str,
        count: usize,
        most: usize,
        filter: &EventScanFilter<'_>,
        detail: bool,
    ) -> Result<EventScanStep, QueueError> {
        const OP: &str = "events";
        let mut script_keys = vec![keys.stream.as_str()];
        for d in destinations {
            script_keys.extend([d.retry.as_str(), d.attempts.as_str(), d.state.as_str()]);
        }
        let result = self
            .eval(
                OP,
                &self.scripts.events,
                script_keys,
                || {
                    let mut args = vec![
                        upper.into(),
                        lower.into(),
                        Value::Integer(count as i64),
                        Value::Integer(most as i64),
                        filter.event_type.into(),
                        filter.status.map_or("", EventStatus::as_str).into(),
                        filter.destination.into(),
                        Value::from_static_str(if detail { "1" } else { "0" }),
                    ];
                    args.extend(destinations.iter().map(|d| Value::from(d.group.as_str())));
                    args
                },
                None,
            )
            .await?;
        let Value::Array(parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        let [examined, last, more, matches] =
            <[Value; 4]>::try_from(parts).map_err(|_| reply(OP, "expected four items"))?;
        let matches = match matches {
            Value::Array(items) => items
                .into_iter()
                .map(|item| parse_match(OP, item))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        Ok(EventScanStep {
            examined: value_u64(&examined).unwrap_or(0) as usize,
            last: value_string(&last).filter(|id| !id.is_empty()),
            more: value_u64(&more) == Some(1),
            matches,
        })
    }

    /// Copies logged events back into the stream, for `destination` alone
    /// or (None) every destination whose filter wants them. Returns, per
    /// id, the copy's entry id, or None if the entry left the log.
    pub async fn replay_events(
        &self,
        keys: &SourceKeys,
        destination: Option<&str>,
        entry_ids: &[&str],
    ) -> Result<Vec<Option<String>>, QueueError> {
        const OP: &str = "replay events";
        if entry_ids.is_empty() {
            return Ok(Vec::new());
        }
        let result = self
            .eval(
                OP,
                &self.scripts.replay_events,
                vec![&keys.stream, &keys.ids],
                || {
                    let mut args = vec![Value::from(destination.unwrap_or(""))];
                    args.extend(entry_ids.iter().map(|id| Value::from(*id)));
                    args
                },
                None,
            )
            .await?;
        match result {
            Value::Array(items) => Ok(items.iter().map(value_string).collect()),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// The entry an event id was first stored as, from its dedup marker.
    pub async fn first_entry_of(
        &self,
        keys: &SourceKeys,
        event_id: &str,
    ) -> Result<Option<String>, QueueError> {
        use fred::interfaces::KeysInterface;
        self.pool
            .next()
            .get::<Option<String>, _>(keys.seen(event_id))
            .await
            .map_err(super::reply::redis("get"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in EventStatus::ALL {
            assert_eq!(status.as_str().parse::<EventStatus>(), Ok(status));
        }
        assert!("lost".parse::<EventStatus>().is_err());
    }
}

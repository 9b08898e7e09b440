//! The Redis key layout of a source and of its destinations.
//!
//! Every key of a source shares the hash tag `{<source>}`, so Redis Cluster
//! keeps a source in one slot and every script touches a single slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:{<source>}:stream` | stream, one consumer group per destination | one copy of each event, until every destination is done with it |
//! | `{prefix}:{<source>}:ids` | list | the stream's entry ids in stream order (while the source keeps an event log), so trimming finds the oldest without reading the events |
//! | `{prefix}:{<source>}:d:<destination>:retry` | zset, score = due ms | entries waiting for a retry (still pending for the group) |
//! | `{prefix}:{<source>}:d:<destination>:attempts` | hash, entry id → attempts + history | failed attempts of entries not yet finished |
//! | `{prefix}:{<source>}:d:<destination>:state` | hash | breaker, pause, last success and failure, shared by every instance |
//! | `{prefix}:{<source>}:d:<destination>:rate` | hash + TTL | `rate_per_sec`'s token bucket, shared by every instance (`rate.lua`) |
//! | `{prefix}:{<source>}:dlq` | stream | dead-lettered events, each naming its destination |
//! | `{prefix}:{<source>}:dlq:counts` | hash, destination → n | dead-lettered events per destination |
//! | `{prefix}:{<source>}:seen:<event id>` | string + TTL | dedup marker → first entry id |
//! | `{prefix}:{<source>}:stats:<minute>` | hash + TTL | that minute's counters (`counters.rs`) |
//!
//! `{prefix}:probe` is never written: the health check's script names it,
//! so Redis checks that hookd's user may use keys under the prefix.
//!
//! The single-destination layout read the stream with one group,
//! [`LEGACY_GROUP`], and parked retries in `{prefix}:{<source>}:delayed`;
//! `setup.lua` migrates both.

/// The consumer group of the single-destination layout.
pub const LEGACY_GROUP: &str = "hookd";

/// The key the health check's script names (and never touches).
pub fn probe_key(prefix: &str) -> String {
    format!("{prefix}:probe")
}

/// The Redis keys of one source, built once at startup.
#[derive(Debug, Clone)]
pub struct SourceKeys {
    pub source: String,
    pub stream: String,
    /// Every id appended to `stream` since the list exists, oldest first
    /// (ids deleted from the middle of the stream stay until trimming
    /// passes them): the ids of the oldest entries, without the events,
    /// which Redis would otherwise have to hand over to be read.
    pub ids: String,
    pub dlq: String,
    pub dlq_counts: String,
    /// The single-destination layout's retry set (migrated, then gone).
    pub legacy_delayed: String,
    /// Which destination inherited the single-destination layout's DLQ
    /// entries (they name none).
    pub heir: String,
    prefix: String,
    seen_prefix: String,
}

/// The Redis keys of one destination of a source.
#[derive(Debug, Clone)]
pub struct DestinationKeys {
    /// The consumer group: the destination's name.
    pub group: String,
    pub retry: String,
    pub attempts: String,
    pub state: String,
    /// The shared token bucket of `rate_per_sec`.
    pub rate: String,
}

impl SourceKeys {
    pub fn new(prefix: &str, source: &str) -> Self {
        let base = format!("{prefix}:{{{source}}}");
        Self {
            source: source.to_owned(),
            stream: format!("{base}:stream"),
            ids: format!("{base}:ids"),
            dlq: format!("{base}:dlq"),
            dlq_counts: format!("{base}:dlq:counts"),
            legacy_delayed: format!("{base}:delayed"),
            heir: format!("{base}:heir"),
            seen_prefix: format!("{base}:seen:"),
            prefix: base,
        }
    }

    /// The dedup marker of one event id.
    pub fn seen(&self, event_id: &str) -> String {
        let mut key = String::with_capacity(self.seen_prefix.len() + event_id.len());
        key.push_str(&self.seen_prefix);
        key.push_str(event_id);
        key
    }

    /// The counters of one minute (unix ms / 60000).
    pub fn counters(&self, minute: u64) -> String {
        format!("{}:stats:{minute}", self.prefix)
    }

    /// The keys of one of this source's destinations.
    pub fn destination(&self, name: &str) -> DestinationKeys {
        let base = format!("{}:d:{name}", self.prefix);
        DestinationKeys {
            group: name.to_owned(),
            retry: format!("{base}:retry"),
            attempts: format!("{base}:attempts"),
            state: format!("{base}:state"),
            rate: format!("{base}:rate"),
        }
    }
}

/// The SCAN pattern of every source's stream under `prefix`, configured
/// or not (glob characters in the prefix match only themselves).
pub fn streams_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 12);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":{*}:stream");
    pattern
}

/// The source whose stream `key` is, if it is a stream key under `prefix`.
pub fn stream_source<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(prefix)?
        .strip_prefix(":{")?
        .strip_suffix("}:stream")
        .filter(|name| !name.is_empty() && !name.contains(['{', '}']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_name_their_source() {
        assert_eq!(streams_pattern("hookd"), "hookd:{*}:stream");
        assert_eq!(streams_pattern("a*b[1]?"), "a\\*b\\[1\\]\\?:{*}:stream");
        let keys = SourceKeys::new("hookd", "stripe");
        assert_eq!(stream_source("hookd", &keys.stream), Some("stripe"));
        assert_eq!(stream_source("hookd", "hookd:{stripe}:dlq"), None);
        assert_eq!(stream_source("hookd", "other:{stripe}:stream"), None);
        assert_eq!(stream_source("hookd", "hookd:{}:stream"), None);
        assert_eq!(stream_source("hookd", "hookd:{a}:d:{b}:stream"), None);
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = SourceKeys::new("hookd", "stripe");
        assert_eq!(keys.stream, "hookd:{stripe}:stream");
        assert_eq!(keys.ids, "hookd:{stripe}:ids");
        assert_eq!(keys.dlq, "hookd:{stripe}:dlq");
        assert_eq!(keys.dlq_counts, "hookd:{stripe}:dlq:counts");
        assert_eq!(keys.legacy_delayed, "hookd:{stripe}:delayed");
        assert_eq!(keys.seen("evt_1"), "hookd:{stripe}:seen:evt_1");
        assert_eq!(keys.counters(29_000_000), "hookd:{stripe}:stats:29000000");
        let billing = keys.destination("billing");
        assert_eq!(billing.group, "billing");
        assert_eq!(billing.retry, "hookd:{stripe}:d:billing:retry");
        assert_eq!(billing.attempts, "hookd:{stripe}:d:billing:attempts");
        assert_eq!(billing.state, "hookd:{stripe}:d:billing:state");
        assert_eq!(billing.rate, "hookd:{stripe}:d:billing:rate");
    }
}

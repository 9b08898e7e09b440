//! The Redis key layout of a source, and the consumer group's name.
//!
//! Every key of a source shares the hash tag `{<source>}`, so Redis Cluster
//! keeps a source in one slot and every script touches a single slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:{<source>}:stream` | stream, group [`GROUP`] | undelivered events (unread and in flight) |
//! | `{prefix}:{<source>}:delayed` | zset, score = due ms | events waiting for a retry |
//! | `{prefix}:{<source>}:dlq` | stream | dead-lettered events |
//! | `{prefix}:{<source>}:seen:<event id>` | string + TTL | dedup marker → first entry id |

/// Consumer group every hookd process joins; entries are load-balanced
/// across its consumers and XAUTOCLAIM moves them between consumers.
pub const GROUP: &str = "hookd";

/// The Redis keys of one source, built once at startup.
#[derive(Debug, Clone)]
pub struct SourceKeys {
    pub source: String,
    pub stream: String,
    pub delayed: String,
    pub dlq: String,
    seen_prefix: String,
}

impl SourceKeys {
    pub fn new(prefix: &str, source: &str) -> Self {
        let base = format!("{prefix}:{{{source}}}");
        Self {
            source: source.to_owned(),
            stream: format!("{base}:stream"),
            delayed: format!("{base}:delayed"),
            dlq: format!("{base}:dlq"),
            seen_prefix: format!("{base}:seen:"),
        }
    }

    /// The dedup marker of one event id.
    pub fn seen(&self, event_id: &str) -> String {
        let mut key = String::with_capacity(self.seen_prefix.len() + event_id.len());
        key.push_str(&self.seen_prefix);
        key.push_str(event_id);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = SourceKeys::new("hookd", "stripe");
        assert_eq!(keys.stream, "hookd:{stripe}:stream");
        assert_eq!(keys.delayed, "hookd:{stripe}:delayed");
        assert_eq!(keys.dlq, "hookd:{stripe}:dlq");
        assert_eq!(keys.seen("evt_1"), "hookd:{stripe}:seen:evt_1");
    }
}

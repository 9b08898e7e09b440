//! The Lua scripts, one per state move, each atomic. Their text lives next
//! to this file; Redis caches them by SHA-1 and [`super::Queue`] reloads
//! one transparently after a restart or `SCRIPT FLUSH`.
//!
//! Scripts that free or move memory carry `flags=allow-oom`: at `maxmemory`
//! Redis still runs them, so a full Redis drains instead of redelivering.
//! Ingest does not: a full Redis refuses new events (503).

use fred::types::scripts::Script;

pub struct Scripts {
    /// Dedup + XADD for a batch of events (group commit).
    pub ingest: Script,
    /// XACK + XDEL of delivered entries (allow-oom).
    pub ack: Script,
    /// Stream → delayed set, attempt counted (allow-oom).
    pub retry: Script,
    /// Delayed set → stream once due (allow-oom).
    pub promote: Script,
    /// Stream → DLQ with why (allow-oom).
    pub dead: Script,
    /// XAUTOCLAIM with delivery counts (allow-oom).
    pub claim: Script,
    /// Queue depths for health and gauges (no writes).
    pub stats: Script,
    /// DLQ → stream with attempts reset.
    pub replay: Script,
    /// A filtered step through a DLQ (no writes).
    pub dlq_scan: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            ingest: Script::from_lua(include_str!("ingest.lua")),
            ack: Script::from_lua(include_str!("ack.lua")),
            retry: Script::from_lua(include_str!("retry.lua")),
            promote: Script::from_lua(include_str!("promote.lua")),
            dead: Script::from_lua(include_str!("dead.lua")),
            claim: Script::from_lua(include_str!("claim.lua")),
            stats: Script::from_lua(include_str!("stats.lua")),
            replay: Script::from_lua(include_str!("replay.lua")),
            dlq_scan: Script::from_lua(include_str!("dlq_scan.lua")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::queue::field;

    #[test]
    fn ingest_script_writes_the_entry_fields() {
        // ingest.lua names the fields itself (they are not sent per event).
        let script = include_str!("ingest.lua");
        for name in [
            field::ID,
            field::TYPE,
            field::CONTENT_TYPE,
            field::HEADERS,
            field::BODY,
            field::RECEIVED,
            field::ATTEMPTS,
        ] {
            assert!(script.contains(&format!("'{name}', ")), "{name}");
        }
    }

    #[test]
    fn scripts_that_free_memory_run_at_maxmemory() {
        for (name, text) in [
            ("ack", include_str!("ack.lua")),
            ("retry", include_str!("retry.lua")),
            ("promote", include_str!("promote.lua")),
            ("dead", include_str!("dead.lua")),
            ("claim", include_str!("claim.lua")),
        ] {
            assert!(text.starts_with("#!lua flags=allow-oom\n"), "{name}");
        }
        assert!(include_str!("ingest.lua").starts_with("#!lua\n"));
    }
}

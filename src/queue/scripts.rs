//! The Lua scripts, one per state move, each atomic. Their text lives next
//! to this file; Redis caches them by SHA-1 and [`super::Queue`] reloads
//! one transparently after a restart or `SCRIPT FLUSH`. Scripts that need
//! the helpers of `lib.lua` get it written after their first line (the
//! shebang that carries their flags).
//!
//! Scripts that free or move memory carry `flags=allow-oom`: at `maxmemory`
//! Redis still runs them, so a full Redis drains instead of redelivering.
//! Ingest does not: a full Redis refuses new events (503).

use fred::types::scripts::Script;

const LIB: &str = include_str!("lib.lua");

/// `text` with `lib.lua` after its shebang line.
fn with_lib(text: &str) -> Script {
    let (shebang, body) = text.split_once('\n').unwrap_or((text, ""));
    Script::from_lua(format!("{shebang}\n{LIB}\n{body}"))
}

pub struct Scripts {
    /// Per-minute counters, read for the charts.
    pub counters: Script,
    /// The event log's retention: finished entries outside `history` go.
    pub trim: Script,
    /// One step of a filtered walk through the event log, with each
    /// destination's status of every entry.
    pub events: Script,
    /// Copies of logged events back into the stream, for one destination
    /// or all.
    pub replay_events: Script,
    /// Dedup + XADD for a batch of events (group commit).
    pub ingest: Script,
    /// Every destination's group; the single-destination layout migrated.
    pub setup: Script,
    /// What a destination is done with: XACK, and XDEL once every
    /// destination is (allow-oom).
    pub ack: Script,
    /// A failed attempt counted and scheduled; feeds the breaker (allow-oom).
    pub retry: Script,
    /// Entries read while the gate shut, parked as due retries.
    pub defer: Script,
    /// Due retries handed to a consumer (allow-oom).
    pub take: Script,
    /// A destination's copy to the DLQ, with why (allow-oom).
    pub dead: Script,
    /// XAUTOCLAIM with delivery counts, sparing waiting retries (allow-oom).
    pub claim: Script,
    /// Queue depths for health and gauges (no writes).
    pub stats: Script,
    /// Breaker and pause state of a source's destinations (no writes).
    pub state: Script,
    /// One probe at a time for an open breaker.
    pub probe: Script,
    /// DLQ → stream, to the entry's destination alone.
    pub replay: Script,
    /// DLQ entries deleted, counts kept (allow-oom).
    pub dlq_delete: Script,
    /// A filtered step through a DLQ (no writes).
    pub dlq_scan: Script,
    /// A removed destination's group and keys gone (allow-oom).
    pub forget: Script,
    pub rate: Script,
    /// The health check's: Redis's permission checks, and whether it is a
    /// replica.
    pub health: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            ingest: with_lib(include_str!("ingest.lua")),
            setup: with_lib(include_str!("setup.lua")),
            ack: with_lib(include_str!("ack.lua")),
            retry: with_lib(include_str!("retry.lua")),
            take: with_lib(include_str!("take.lua")),
            defer: with_lib(include_str!("defer.lua")),
            dead: with_lib(include_str!("dead.lua")),
            claim: with_lib(include_str!("claim.lua")),
            stats: with_lib(include_str!("stats.lua")),
            state: Script::from_lua(include_str!("state.lua")),
            probe: with_lib(include_str!("probe.lua")),
            replay: with_lib(include_str!("replay.lua")),
            dlq_delete: with_lib(include_str!("dlq_delete.lua")),
            counters: Script::from_lua(include_str!("counters.lua")),
            trim: with_lib(include_str!("trim.lua")),
            events: with_lib(include_str!("events.lua")),
            replay_events: with_lib(include_str!("replay_events.lua")),
            dlq_scan: with_lib(include_str!("dlq_scan.lua")),
            forget: with_lib(include_str!("forget.lua")),
            rate: Script::from_lua(include_str!("rate.lua")),
            health: Script::from_lua(include_str!("health.lua")),
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
        ] {
            assert!(script.contains(&format!("'{name}', ")), "{name}");
        }
    }

    #[test]
    fn scripts_that_free_memory_run_at_maxmemory() {
        for (name, text) in [
            ("ack", include_str!("ack.lua")),
            ("retry", include_str!("retry.lua")),
            ("take", include_str!("take.lua")),
            ("dead", include_str!("dead.lua")),
            ("claim", include_str!("claim.lua")),
            ("dlq_delete", include_str!("dlq_delete.lua")),
            ("forget", include_str!("forget.lua")),
            ("trim", include_str!("trim.lua")),
            ("rate", include_str!("rate.lua")),
        ] {
            assert!(text.starts_with("#!lua flags=allow-oom\n"), "{name}");
        }
        assert!(include_str!("ingest.lua").starts_with("#!lua\n"));
        // The health check runs wherever Redis answers at all.
        assert!(include_str!("health.lua").starts_with("#!lua flags=no-writes,allow-stale\n"));
    }

    /// The commands a script runs, as `NAME` or `NAME SUBCOMMAND` for
    /// the container commands.
    fn commands_in(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for opener in ["redis.call('", "redis.pcall('", "pcall(redis.call, '"] {
            for (at, _) in text.match_indices(opener) {
                let rest = &text[at + opener.len()..];
                let words: Vec<&str> = rest
                    .split(['\'', ',', ' ', ')'])
                    .filter(|w| !w.is_empty())
                    .take(2)
                    .collect();
                let name = words[0].to_owned();
                found.push(match name.as_str() {
                    "XGROUP" | "XINFO" => format!("{name} {}", words[1]),
                    _ => name,
                });
            }
        }
        found
    }

    #[test]
    fn the_health_check_asks_for_every_command_a_script_runs() {
        let health = include_str!("health.lua");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/queue");
        let mut scripts = 0;
        for file in std::fs::read_dir(dir).expect("src/queue") {
            let path = file.expect("entry").path();
            if path.extension().is_none_or(|e| e != "lua") {
                continue;
            }
            scripts += 1;
            let text = std::fs::read_to_string(&path).expect("script");
            for command in commands_in(&text) {
                let asked = match command.split_once(' ') {
                    Some((name, sub)) => format!("{{'{name}', '{sub}'"),
                    None => format!("{{'{command}'"),
                };
                assert!(health.contains(&asked), "{}: {command}", path.display());
            }
        }
        assert!(scripts > 20, "{scripts}");
        // What hookd sends outside scripts.
        for asked in ["{'XREADGROUP'", "{'SCAN'", "{'SCRIPT', 'LOAD'", "{'INFO'"] {
            assert!(health.contains(asked), "{asked}");
        }
    }

    #[test]
    fn the_library_goes_after_the_shebang() {
        let script = super::with_lib("#!lua flags=allow-oom\nreturn 1");
        let text = script.lua().expect("script text");
        assert!(
            text.starts_with("#!lua flags=allow-oom\n-- Helpers shared by"),
            "{text}"
        );
        assert!(text.ends_with("return 1"));
    }
}

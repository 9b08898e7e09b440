//! `hookd destinations ...`: every destination's state and depths, and
//! pause, resume and forget, straight on Redis (the daemons obey within a
//! second).

use std::path::PathBuf;

use anyhow::bail;

use super::table::{Align, Table};
use super::{DestinationsCommand, print_json};
use crate::clock::elapsed_text;
use crate::config::WorkerConfig;
use crate::overview;
use crate::queue::Queue;
use crate::source::Sources;

pub fn run(config_path: Option<PathBuf>, command: DestinationsCommand) -> anyhow::Result<()> {
    super::on_redis(config_path, |queue, sources, worker| async move {
        execute(&queue, &sources, &worker, command).await
    })
}

fn dash(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// How long ago `at_ms` was, in the largest unit that fits ("-": never).
fn ago(at_ms: Option<u64>, now_ms: u64) -> String {
    at_ms.map_or_else(
        || "-".into(),
        |at_ms| format!("{} ago", elapsed_text(now_ms.saturating_sub(at_ms))),
    )
}

/// The last failure's age, with its HTTP status when it had one.
fn last_failure(d: &overview::DestinationOverview, now_ms: u64) -> String {
    match (d.last_failure_ms, d.last_failure_status) {
        (Some(_), Some(status)) => format!("{} ({status})", ago(d.last_failure_ms, now_ms)),
        _ => ago(d.last_failure_ms, now_ms),
    }
}

async fn execute(
    queue: &Queue,
    sources: &Sources,
    worker: &WorkerConfig,
    command: DestinationsCommand,
) -> anyhow::Result<()> {
    match command {
        DestinationsCommand::List { json } => {
            let mut views = Vec::new();
            for source in sources.iter() {
                views.push(overview::source(queue, source).await?);
            }
            if json {
                return print_json(&views);
            }
            let mut table = Table::new(&[
                ("SOURCE", Align::Left),
                ("DESTINATION", Align::Left),
                ("STATE", Align::Left),
                ("IN FLIGHT", Align::Right),
                ("BACKLOG", Align::Right),
                ("PENDING", Align::Right),
                ("RETRYING", Align::Right),
                ("DLQ", Align::Right),
                ("LAST SUCCESS", Align::Left),
                ("LAST FAILURE", Align::Left),
                ("URL", Align::Left),
            ]);
            let now_ms = crate::clock::unix_ms();
            for view in &views {
                for d in &view.destinations {
                    table.row(vec![
                        view.name.to_string(),
                        d.name.to_string(),
                        d.state.to_string(),
                        d.in_flight.to_string(),
                        dash(d.backlog),
                        d.pending.to_string(),
                        d.retrying.to_string(),
                        d.dlq.to_string(),
                        ago(d.last_success_ms, now_ms),
                        last_failure(d, now_ms),
                        d.url.to_string(),
                    ]);
                }
                for orphan in &view.orphans {
                    table.row(vec![
                        view.name.to_string(),
                        orphan.name.to_string(),
                        "removed".into(),
                        "-".into(),
                        dash(orphan.backlog),
                        orphan.pending.to_string(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        format!(
                            "(not configured: `hookd destinations forget {} {}`)",
                            view.name, orphan.name
                        ),
                    ]);
                }
            }
            print!("{}", table.render());
            Ok(())
        }
        DestinationsCommand::Pause {
            source,
            destination,
            json,
        } => set_paused(queue, sources, &source, &destination, true, json).await,
        DestinationsCommand::Resume {
            source,
            destination,
            json,
        } => set_paused(queue, sources, &source, &destination, false, json).await,
        DestinationsCommand::Forget {
            source,
            destination,
            force,
            json,
        } => {
            let Some(found) = sources.get(&source) else {
                bail!("no source named {source:?} in the configuration");
            };
            if found.destination(&destination).is_some() {
                bail!(
                    "destination {destination:?} of {source} is still configured; remove it from the configuration first"
                );
            }
            if !force {
                let view = overview::source(queue, found).await?;
                let read = view
                    .orphans
                    .iter()
                    .find(|group| group.name == destination)
                    .filter(|group| group.read_within(worker.claim_idle))
                    .and_then(|group| group.last_read_ago);
                if let Some(ago) = read {
                    bail!(
                        "destination {destination:?} of {source} was read {} ago, within worker.claim_idle: \
                         an instance whose configuration still names it would lose the events ingested \
                         until it recreates the group; forget it once no instance names it, or pass --force",
                        elapsed_text(ago.as_millis() as u64)
                    );
                }
            }
            let keys = found.keys.destination(&destination);
            let existed = queue.forget(&found.keys, &keys).await?;
            crate::monitor::trim(queue, found).await;
            if json {
                return print_json(
                    &serde_json::json!({"source": source, "destination": destination, "forgotten": existed}),
                );
            }
            if existed {
                println!("forgot destination {destination} of {source}");
            } else {
                println!("{source} has no consumer group {destination:?}; nothing to forget");
            }
            Ok(())
        }
    }
}

async fn set_paused(
    queue: &Queue,
    sources: &Sources,
    source: &str,
    destination: &str,
    paused: bool,
    json: bool,
) -> anyhow::Result<()> {
    let Some(found) = sources.get(source) else {
        bail!("no source named {source:?} in the configuration");
    };
    let Some(target) = found.destination(destination) else {
        bail!("source {source} has no destination named {destination:?}");
    };
    queue.set_paused(&target.keys, paused).await?;
    let states = queue.states(&[&target.keys]).await?;
    let state = states.first().map_or("unknown", |s| s.state().as_str());
    if json {
        return print_json(
            &serde_json::json!({"source": source, "destination": destination, "state": state}),
        );
    }
    println!(
        "{} {destination} of {source}: {state}",
        if paused { "paused" } else { "resumed" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_unit_that_fits() {
        let now = 1_000_000_000;
        assert_eq!(ago(None, now), "-");
        assert_eq!(ago(Some(now - 4_200), now), "4 s ago");
        assert_eq!(ago(Some(now - 125_000), now), "2 min ago");
        assert_eq!(ago(Some(now - 7_300_000), now), "2 h ago");
        assert_eq!(ago(Some(now - 3 * 86_400_000), now), "3 d ago");
        // A clock behind another instance's is not "in the future".
        assert_eq!(ago(Some(now + 500), now), "0 ms ago");
    }
}

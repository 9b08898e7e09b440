//! `hookd destinations ...`: every destination's state and depths, and
//! pause, resume and forget, straight on Redis (the daemons obey within a
//! second).

use std::path::PathBuf;

use anyhow::bail;

use super::{DestinationsCommand, print_json};
use crate::overview;
use crate::queue::Queue;
use crate::source::Sources;

pub fn run(config_path: Option<PathBuf>, command: DestinationsCommand) -> anyhow::Result<()> {
    super::on_redis(config_path, |queue, sources| async move {
        execute(&queue, &sources, command).await
    })
}

fn dash(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

async fn execute(
    queue: &Queue,
    sources: &Sources,
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
            println!(
                "{:<14} {:<16} {:<10} {:>9} {:>9} {:>9} {:>9} {:>7}  URL",
                "SOURCE",
                "DESTINATION",
                "STATE",
                "IN FLIGHT",
                "BACKLOG",
                "PENDING",
                "RETRYING",
                "DLQ"
            );
            for view in &views {
                for d in &view.destinations {
                    println!(
                        "{:<14} {:<16} {:<10} {:>9} {:>9} {:>9} {:>9} {:>7}  {}",
                        view.name,
                        d.name,
                        d.state,
                        d.in_flight,
                        dash(d.backlog),
                        d.pending,
                        d.retrying,
                        d.dlq,
                        d.url
                    );
                }
                for orphan in &view.orphans {
                    println!(
                        "{:<14} {:<16} {:<10} {:>9} {:>9} {:>9}  (not configured: `hookd destinations forget {} {}`)",
                        view.name,
                        orphan.name,
                        "removed",
                        "-",
                        dash(orphan.backlog),
                        orphan.pending,
                        view.name,
                        orphan.name
                    );
                }
            }
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

//! `hookd destinations ...`: every destination's state and depths, and
//! pause, resume and forget, straight on Redis (the daemons obey within a
//! second).

use std::path::PathBuf;

use anyhow::bail;

use super::table::{Align, Table};
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
            let mut table = Table::new(&[
                ("SOURCE", Align::Left),
                ("DESTINATION", Align::Left),
                ("STATE", Align::Left),
                ("IN FLIGHT", Align::Right),
                ("BACKLOG", Align::Right),
                ("PENDING", Align::Right),
                ("RETRYING", Align::Right),
                ("DLQ", Align::Right),
                ("URL", Align::Left),
            ]);
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

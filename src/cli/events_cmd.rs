//! `hookd events ...`: the event log's operations of the admin API,
//! straight on Redis, as tables for people and `--json` for scripts.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::table::{Align, Table};
use super::{EventFilter, EventsCommand, ms_to_text, print_json};
use crate::clock::parse_time;
use crate::events::{self, Filter};
use crate::listing::Cursor;
use crate::queue::Queue;
use crate::source::{Source, Sources};

pub fn run(config_path: Option<PathBuf>, command: EventsCommand) -> anyhow::Result<()> {
    super::on_redis(config_path, |queue, sources, _| async move {
        execute(&queue, &sources, command).await
    })
}

fn filter(f: EventFilter, sources: &Sources) -> anyhow::Result<Filter> {
    if let Some(source) = &f.source
        && sources.get(source).is_none()
    {
        bail!("no source named {source:?} in the configuration");
    }
    if let Some(destination) = &f.destination
        && !sources.has_destination(f.source.as_deref(), destination)
    {
        bail!("no destination named {destination:?} in the configuration");
    }
    let time = |t: Option<String>, flag: &str| {
        t.map(|t| parse_time(&t))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    Ok(Filter {
        since_ms: time(f.since, "since")?,
        until_ms: time(f.until, "until")?,
        source: f.source,
        destination: f.destination,
        event_type: f.event_type,
        status: f.status,
        id: f.id,
    })
}

/// The source an entry id belongs to: the one named, or the only one.
fn source_of<'a>(sources: &'a Sources, source: &Option<String>) -> anyhow::Result<&'a Source> {
    match source {
        Some(name) => sources
            .get(name)
            .map(|s| s.as_ref())
            .with_context(|| format!("no source named {name:?} in the configuration")),
        None => {
            let mut all = sources.iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Ok(only.as_ref()),
                _ => bail!("several sources are configured: name one with --source"),
            }
        }
    }
}

fn check_id(id: &str) -> anyhow::Result<()> {
    if !crate::dlq::valid_id(id) {
        bail!("{id:?} is not an entry id (like 1700000000000-0)");
    }
    Ok(())
}

async fn execute(queue: &Queue, sources: &Sources, command: EventsCommand) -> anyhow::Result<()> {
    let all = sources.all();
    match command {
        EventsCommand::List {
            filter: f,
            limit,
            cursor,
            json,
        } => {
            let filter = filter(f, sources)?;
            let cursor = match cursor {
                Some(c) => {
                    Some(Cursor::parse(&c).context("--cursor is not a cursor printed by list")?)
                }
                None => None,
            };
            let page = events::list(queue, &all, &filter, cursor.as_ref(), limit).await?;
            if json {
                return print_json(&page);
            }
            let mut table = Table::new(&[
                ("SOURCE", Align::Left),
                ("ENTRY ID", Align::Left),
                ("EVENT ID", Align::Left),
                ("TYPE", Align::Left),
                ("DESTINATIONS", Align::Left),
                ("RECEIVED", Align::Left),
            ]);
            for item in &page.items {
                let destinations: Vec<String> = item
                    .destinations
                    .iter()
                    .map(|(name, d)| format!("{name}:{}", d.status))
                    .collect();
                table.row(vec![
                    item.source.to_string(),
                    item.entry_id.to_string(),
                    item.id.to_string(),
                    item.event_type.to_string(),
                    destinations.join(" "),
                    ms_to_text(item.received_ms),
                ]);
            }
            print!("{}", table.render());
            match page.next_cursor {
                Some(next) => println!("more: --cursor {next}"),
                None => println!("({} shown)", page.items.len()),
            }
            Ok(())
        }
        EventsCommand::Show {
            entry_id,
            source,
            json,
        } => {
            check_id(&entry_id)?;
            let source = source_of(sources, &source)?;
            let Some(detail) = events::detail(queue, source, &entry_id).await? else {
                bail!("no event {entry_id} in the log of {}", source.name);
            };
            if json {
                return print_json(&detail);
            }
            let item = &detail.item;
            println!("entry:      {}", item.entry_id);
            println!("source:     {}", item.source);
            println!("event id:   {}", item.id);
            println!("type:       {}", item.event_type);
            println!("received:   {}", ms_to_text(item.received_ms));
            if let Some(of) = &item.replay_of {
                println!("replay of:  {of}");
            }
            for (name, d) in &detail.destinations {
                println!("destination {name}: {}", d.status);
                for a in &d.attempts {
                    println!(
                        "  attempt {} at {}: {} {}{}",
                        a.attempt,
                        ms_to_text(a.at_ms),
                        a.status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        a.error,
                        a.duration_ms
                            .map(|d| format!(" ({d} ms)"))
                            .unwrap_or_default()
                    );
                }
            }
            println!("headers:");
            for (name, value) in &detail.shown.headers {
                println!("  {name}: {value}");
            }
            match (&detail.shown.body, &detail.shown.body_base64) {
                (Some(text), _) => println!("body:\n{text}"),
                (None, Some(b64)) => println!("body (base64):\n{b64}"),
                _ => {}
            }
            Ok(())
        }
        EventsCommand::Replay {
            entry_id,
            all: every,
            filter: f,
            dry_run,
            json,
        } => {
            let destination = f.destination.clone();
            match (entry_id, every) {
                (Some(entry_id), _) => {
                    check_id(&entry_id)?;
                    let source = source_of(sources, &f.source)?;
                    if let Some(d) = &destination
                        && source.destination(d).is_none()
                    {
                        bail!("source {} has no destination named {d:?}", source.name);
                    }
                    let Some(copy) =
                        events::replay(queue, source, &entry_id, destination.as_deref()).await?
                    else {
                        bail!("no event {entry_id} in the log of {}", source.name);
                    };
                    if json {
                        return print_json(
                            &serde_json::json!({"replayed": true, "entry_id": entry_id, "copy": copy}),
                        );
                    }
                    println!(
                        "replayed {entry_id} to {} as {copy}",
                        destination.as_deref().unwrap_or("every destination")
                    );
                    Ok(())
                }
                (None, true) => {
                    let filter = filter(f, sources)?;
                    let result = events::bulk_replay(queue, &all, &filter, dry_run).await?;
                    if json {
                        return print_json(&result);
                    }
                    if dry_run {
                        println!(
                            "{} event(s) match; nothing replayed (dry run)",
                            result.matched
                        );
                    } else {
                        println!(
                            "{} event(s) matched, {} replayed",
                            result.matched, result.replayed
                        );
                    }
                    Ok(())
                }
                (None, false) => bail!("give an entry id, or --all with filters"),
            }
        }
    }
}

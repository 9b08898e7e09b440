//! `hookd dlq ...`: the DLQ operations of the admin API, straight on Redis,
//! as tables for people and `--json` for scripts.

use anyhow::{Context, bail};
use std::path::PathBuf;

use super::table::{Align, Table};
use super::{DlqCommand, DlqFilter, ms_to_text, print_json};
use crate::dlq::{self, BulkOp, Cursor, DlqItem, Filter, Targets};
use crate::queue::{Queue, SourceKeys};

pub fn run(config_path: Option<PathBuf>, command: DlqCommand) -> anyhow::Result<()> {
    super::on_redis(config_path, |queue, sources, _| async move {
        let targets = Targets::new(sources.iter().map(|source| {
            let names = source.destination_names().map(str::to_owned).collect();
            (source.keys.clone(), names)
        }));
        let keys: Vec<SourceKeys> = targets.keys().cloned().collect();
        execute(&queue, &targets, &keys, command).await
    })
}

fn filter(f: DlqFilter, keys: &[SourceKeys]) -> anyhow::Result<Filter> {
    if let Some(source) = &f.source
        && !keys.iter().any(|k| &k.source == source)
    {
        bail!("no source named {source:?} in the configuration");
    }
    Ok(Filter {
        source: f.source,
        destination: f.destination,
        event_type: f.event_type,
        reason: f.reason,
    })
}

fn selected<'a>(
    keys: &'a [SourceKeys],
    source: &Option<String>,
) -> anyhow::Result<Vec<&'a SourceKeys>> {
    match source {
        None => Ok(keys.iter().collect()),
        Some(name) => match keys.iter().find(|k| &k.source == name) {
            Some(k) => Ok(vec![k]),
            None => bail!("no source named {name:?} in the configuration"),
        },
    }
}

fn check_id(id: &str) -> anyhow::Result<()> {
    if !dlq::valid_id(id) {
        bail!("{id:?} is not a DLQ entry id (like 1700000000000-0)");
    }
    Ok(())
}

async fn find(
    queue: &Queue,
    keys: &[SourceKeys],
    id: &str,
    source: &Option<String>,
) -> anyhow::Result<DlqItem> {
    check_id(id)?;
    match dlq::find(queue, selected(keys, source)?, id).await? {
        Some(item) => Ok(item),
        None => bail!("no dead-lettered event with id {id}"),
    }
}

async fn execute(
    queue: &Queue,
    targets: &Targets,
    keys: &[SourceKeys],
    command: DlqCommand,
) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            filter: f,
            limit,
            cursor,
            json,
        } => {
            let filter = filter(f, keys)?;
            let cursor = match cursor {
                Some(c) => {
                    Some(Cursor::parse(&c).context("--cursor is not a cursor printed by list")?)
                }
                None => None,
            };
            let page = dlq::list(queue, keys, &filter, cursor.as_ref(), limit).await?;
            if json {
                return print_json(&page);
            }
            let mut table = Table::new(&[
                ("ID", Align::Left),
                ("SOURCE", Align::Left),
                ("DESTINATION", Align::Left),
                ("EVENT ID", Align::Left),
                ("TYPE", Align::Left),
                ("REASON", Align::Left),
                ("STATUS", Align::Right),
                ("ATTEMPTS", Align::Right),
                ("DEAD SINCE", Align::Left),
            ]);
            for item in &page.items {
                table.row(vec![
                    item.id.to_string(),
                    item.source.to_string(),
                    item.destination.to_string(),
                    item.event_id.to_string(),
                    item.event_type.to_string(),
                    item.reason.to_string(),
                    item.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    item.attempts.to_string(),
                    ms_to_text(item.dead_at_ms),
                ]);
            }
            print!("{}", table.render());
            match page.next_cursor {
                Some(next) => println!("more: --cursor {next}"),
                None => println!("({} shown)", page.items.len()),
            }
            Ok(())
        }
        DlqCommand::Show { id, source, json } => {
            let item = find(queue, keys, &id, &source).await?;
            let detail = item.detail();
            if json {
                return print_json(&detail);
            }
            println!("id:         {}", item.id);
            println!("source:     {}", item.source);
            println!("destination: {}", item.destination);
            println!("event id:   {}", item.event_id);
            println!("type:       {}", item.event_type);
            println!("reason:     {}", item.reason);
            println!(
                "status:     {}",
                item.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            println!("error:      {}", item.error);
            println!("attempts:   {}", item.attempts);
            println!("received:   {}", ms_to_text(item.received_ms));
            println!("dead since: {}", ms_to_text(item.dead_at_ms));
            println!("\nheaders:");
            for (name, value) in &detail.shown.headers {
                println!("  {name}: {value}");
            }
            println!("\nattempts:");
            for a in detail.history {
                println!(
                    "  #{} {} {} {}",
                    a.attempt,
                    ms_to_text(a.at_ms),
                    a.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    a.error
                );
            }
            println!("\nbody ({} bytes):", item.body_bytes);
            match (&detail.shown.body, &detail.shown.body_base64) {
                (Some(text), _) => println!("{text}"),
                (None, Some(b64)) => println!("(binary, base64) {b64}"),
                _ => {}
            }
            Ok(())
        }
        DlqCommand::Replay {
            id,
            all,
            filter: f,
            dry_run,
            json,
        } => {
            if let Some(id) = id {
                let item = find(queue, keys, &id, &f.source).await?;
                let source_keys = selected(keys, &Some(item.source.clone()))?[0];
                if !targets.delivers_to(&item.source, &item.destination) {
                    bail!(
                        "{id} died for destination {:?}, which is no longer configured for {}",
                        item.destination,
                        item.source
                    );
                }
                if dry_run {
                    println!("would replay {} ({})", item.id, item.event_id);
                    return Ok(());
                }
                let Some(entry) = queue.replay(source_keys, &item.id).await? else {
                    bail!(
                        "{id} left the dead-letter queue meanwhile (replayed or deleted by someone else)"
                    );
                };
                if json {
                    return print_json(
                        &serde_json::json!({"replayed": true, "source": item.source, "id": item.id, "entry_id": entry}),
                    );
                }
                println!(
                    "replayed {} ({}) to {} as {entry}",
                    item.id, item.event_id, item.source
                );
                return Ok(());
            }
            if !all {
                bail!("give a DLQ entry id, or --all (with --source/--event/--reason filters)");
            }
            let filter = filter(f, keys)?;
            report(
                dlq::bulk(queue, targets, &filter, BulkOp::Replay, dry_run).await?,
                BulkOp::Replay,
                dry_run,
                json,
            )
        }
        DlqCommand::Delete { id, source, json } => {
            let item = find(queue, keys, &id, &source).await?;
            let source_keys = selected(keys, &Some(item.source.clone()))?[0];
            let deleted = queue.dlq_delete(source_keys, &item.id).await?;
            if json {
                return print_json(
                    &serde_json::json!({"deleted": deleted, "source": item.source, "id": item.id}),
                );
            }
            println!(
                "deleted {} ({}) from {}",
                item.id, item.event_id, item.source
            );
            Ok(())
        }
        DlqCommand::Purge {
            filter: f,
            dry_run,
            json,
        } => {
            let filter = filter(f, keys)?;
            report(
                dlq::bulk(queue, targets, &filter, BulkOp::Purge, dry_run).await?,
                BulkOp::Purge,
                dry_run,
                json,
            )
        }
    }
}

fn report(result: dlq::BulkResult, op: BulkOp, dry_run: bool, json: bool) -> anyhow::Result<()> {
    if json {
        let mut body = serde_json::json!({"matched": result.matched, "dry_run": dry_run});
        body[op.verb()] = serde_json::json!(result.done);
        return print_json(&body);
    }
    if dry_run {
        println!(
            "{} event(s) match; nothing changed (dry run)",
            result.matched
        );
    } else {
        println!(
            "{} of {} matching event(s) {}",
            result.done,
            result.matched,
            op.verb()
        );
    }
    Ok(())
}

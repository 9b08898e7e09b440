//! `hookd spool drain`: moves a spool's events into Redis without a
//! daemon, e.g. the spool of an instance that is gone for good (its
//! volume mounted elsewhere).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{SpoolCommand, load};
use crate::config::SpoolConfig;
use crate::queue::IngestSettings;
use crate::source::Source;
use crate::spool::{Drainer, Spool};
use crate::status::Status;

pub fn run(config_path: Option<PathBuf>, command: SpoolCommand) -> anyhow::Result<()> {
    let SpoolCommand::Drain { dir } = command;
    let (config, _) = load(config_path)?;
    let dir = dir.unwrap_or_else(|| config.spool.dir.clone());
    if dir.as_os_str().is_empty() {
        bail!("no spool directory: pass --dir or set spool.dir");
    }
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut sources = Vec::new();
    for (index, source) in config.sources.iter().enumerate() {
        sources.push(Source::build(source, index, &config.redis.key_prefix)?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let queue = super::reach_redis(&config.redis).await?;
        let tasks = TaskTracker::new();
        let spool = Spool::open(
            &SpoolConfig {
                dir: dir.clone(),
                max_bytes: config.spool.max_bytes,
            },
            &tasks,
        )?;
        let before = spool.stats();
        let ingest_settings = IngestSettings {
            writers: 1,
            dedup_ttl: config.ingest.dedup_ttl,
            max_backlog: config.ingest.max_backlog,
            timeout: crate::queue::INGEST_TIMEOUT,
        };
        let ingest: HashMap<_, _> =
            crate::start_ingestors(&queue, &sources, ingest_settings, &tasks)
                .into_iter()
                .map(|(name, ingestor)| (name, ingestor.direct()))
                .collect();
        let status = Arc::new(Status::default());
        status.set_redis_up(true);
        let drainer = Drainer {
            spool: spool.clone(),
            ingest: Arc::new(ingest),
            status,
        };
        let result = drainer.drain(&CancellationToken::new()).await;
        let after = spool.stats();
        spool.stop().await;
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        queue.quit().await;
        let drained = match result {
            Ok(drained) => drained,
            Err(e) => bail!(
                "drained {} of {} events, then: {e}",
                before.events.saturating_sub(after.events),
                before.events
            ),
        };
        println!(
            "{}: {} events into redis ({} queued, {} duplicates dropped); {} left",
            dir.display(),
            drained.queued + drained.duplicates,
            drained.queued,
            drained.duplicates,
            after.events
        );
        if drained.unknown_source > 0 {
            println!(
                "{} events name a source not in this configuration: kept in {}",
                drained.unknown_source,
                dir.join("quarantine").display()
            );
        }
        if after.events > 0 {
            bail!("{} events are still in the spool", after.events);
        }
        Ok(())
    })
}

//! Moves spooled events into Redis, oldest segment first, in order,
//! through the ingest script: duplicates (an event whose ingest call did
//! run before its connection failed, a provider's retry during the
//! outage) are dropped there. A segment is deleted only after Redis
//! confirmed every event in it; a crash before that drains it again,
//! and the dedup markers drop what already went in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Spool, SpoolError, SpooledEvent, record, segments};
use crate::queue::{DirectIngest, IngestOutcome};
use crate::status::Status;

/// Records one step stores (per source a script call per 128 of them).
const STEP_RECORDS: usize = 1024;
/// How often the drainer looks whether Redis is back, when no event
/// arrives to wake it.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Why a drain stopped before the spool was empty.
#[derive(Debug, thiserror::Error)]
pub enum DrainStop {
    #[error("redis did not take the events: {0}")]
    Redis(#[from] crate::queue::QueueError),
    #[error("a source's backlog is over ingest.max_backlog")]
    BacklogFull,
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("stopped")]
    Cancelled,
}

/// What a drain did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Drained {
    pub queued: u64,
    pub duplicates: u64,
    /// Records naming a source no longer configured (kept in quarantine).
    pub unknown_source: u64,
}

pub struct Drainer {
    pub spool: Spool,
    /// Per source name, how its events are stored.
    pub ingest: Arc<HashMap<String, DirectIngest>>,
    pub status: Arc<Status>,
}

impl Drainer {
    /// Drains whenever Redis is up and the spool is not empty, then hands
    /// ingest back to Redis, until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let mut look = tokio::time::interval(LOOK_EVERY);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopped_for: Option<String> = None;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.spool.inner.arrived.notified() => {}
                _ = look.tick() => {}
            }
            if (self.spool.is_empty() && !self.spool.is_diverting()) || !self.status.redis_up() {
                continue;
            }
            match self.drain_and_hand_back(&token).await {
                Ok(drained) => {
                    stopped_for = None;
                    if drained.queued + drained.duplicates > 0 {
                        info!(
                            queued = drained.queued,
                            duplicates = drained.duplicates,
                            "spool drained into redis"
                        );
                    }
                }
                Err(DrainStop::Cancelled) => return,
                Err(why) => {
                    // Said once per cause, not every half second.
                    let text = why.to_string();
                    if stopped_for.as_ref() != Some(&text) {
                        warn!(error = %text, events = self.spool.stats().events, "spool drain paused; it resumes by itself");
                        stopped_for = Some(text);
                    }
                }
            }
        }
    }

    /// Drains the spool, then holds the events that only follow it, drains
    /// what was written meanwhile and hands ingest back to Redis. If new
    /// events had to be spooled, the spool keeps them and the next round
    /// tries again.
    async fn drain_and_hand_back(&self, token: &CancellationToken) -> Result<Drained, DrainStop> {
        let mut drained = self.drain(token).await?;
        if !self.spool.begin_handover().await {
            return Ok(drained);
        }
        let tail = self.drain(token).await;
        // Always, or the held events would wait for ever.
        let handed_back = self.spool.finish_handover().await;
        let tail = tail?;
        drained.queued += tail.queued;
        drained.duplicates += tail.duplicates;
        drained.unknown_source += tail.unknown_source;
        if handed_back {
            info!("spool empty: new events go to redis again");
        } else {
            // Woken again at once: what is left is drained next round.
            self.spool.inner.arrived.notify_one();
        }
        Ok(drained)
    }

    /// Drains every sealed segment (sealing the one being written), until
    /// the spool is empty or something stops it.
    pub async fn drain(&self, token: &CancellationToken) -> Result<Drained, DrainStop> {
        let mut drained = Drained::default();
        while let Some((seq, confirmed)) = self.spool.oldest_sealed().await {
            if token.is_cancelled() {
                return Err(DrainStop::Cancelled);
            }
            self.drain_segment(seq, confirmed, &mut drained, token)
                .await?;
            self.spool.remove(seq)?;
        }
        Ok(drained)
    }

    async fn drain_segment(
        &self,
        seq: u64,
        confirmed: usize,
        drained: &mut Drained,
        token: &CancellationToken,
    ) -> Result<(), DrainStop> {
        let path = segments::segment_path(self.spool.dir(), seq);
        let bytes = Bytes::from(
            tokio::fs::read(&path)
                .await
                .map_err(|source| SpoolError::Io {
                    what: format!("reading {}", path.display()),
                    source,
                })?,
        );
        let scan = record::scan(&bytes);
        if !scan.damaged.is_empty() || scan.tail.is_some() {
            // Written and fsynced by this process: damage here is the
            // disk's. Reported; the intact records still go.
            error!(segment = %path.display(), "spool segment damaged since it was written; its intact records are drained, the rest stays in the file until restart quarantines it");
        }
        let start = confirmed.min(scan.records.len());
        let records = &scan.records[start..];
        for (n, step) in records.chunks(STEP_RECORDS).enumerate() {
            if token.is_cancelled() {
                return Err(DrainStop::Cancelled);
            }
            let mut by_source: HashMap<String, Vec<SpooledEvent>> = HashMap::new();
            for range in step {
                let Some(event) = record::decode(&bytes, range.clone()) else {
                    error!(segment = %path.display(), offset = range.start, "spool record could not be decoded: kept in quarantine");
                    self.keep_aside(seq, &bytes, range.clone(), "undecodable");
                    continue;
                };
                if !self.ingest.contains_key(event.source.as_str()) {
                    drained.unknown_source += 1;
                    error!(source = %event.source, event_id = %event.event_id, segment = %path.display(),
                        "spooled event of a source no longer configured: kept in quarantine");
                    self.keep_aside(seq, &bytes, range.clone(), "unknown-source");
                    continue;
                }
                by_source
                    .entry(event.source.clone())
                    .or_default()
                    .push(event);
            }
            // Each source's events in order, one script call per 128.
            for (source, spooled) in &by_source {
                let Some(ingest) = self.ingest.get(source) else {
                    continue;
                };
                let events: Vec<_> = spooled.iter().map(SpooledEvent::as_new).collect();
                for answer in ingest.store_in_order(&events).await {
                    match answer? {
                        IngestOutcome::Queued { .. } => drained.queued += 1,
                        IngestOutcome::Duplicate { .. } => drained.duplicates += 1,
                        IngestOutcome::BacklogFull { .. } => return Err(DrainStop::BacklogFull),
                    }
                }
            }
            let step_bytes = step.iter().map(|r| (r.end - r.start) as u64).sum();
            let next_oldest = scan
                .records
                .get(start + n * STEP_RECORDS + step.len())
                .and_then(|r| record::decode(&bytes, r.clone()))
                .map_or(0, |e| e.received_ms);
            self.spool.confirm(seq, step.len(), step_bytes, next_oldest);
        }
        Ok(())
    }

    /// A record that cannot go to Redis (its source is gone) is copied to
    /// quarantine, so dropping the segment afterwards loses nothing
    /// silently.
    fn keep_aside(&self, seq: u64, bytes: &[u8], range: std::ops::Range<usize>, why: &str) {
        let dir = self.spool.dir().join(segments::QUARANTINE);
        let path = dir.join(format!("{seq:020}-{}.{why}", range.start));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, &bytes[range]))
            .and_then(|()| std::fs::File::open(&path)?.sync_all());
        if let Err(e) = written {
            error!(file = %path.display(), error = %e, "could not keep a spooled record aside");
        }
    }
}

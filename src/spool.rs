//! The spool: a local, durable buffer for accepted events while Redis
//! cannot take them.
//!
//! Requests hand their encoded record to one appender thread, which
//! writes every record waiting at that moment to the current segment and
//! fsyncs once for all of them (group commit, as ingest does with Redis)
//! before any of them is answered 202. The drainer (`spool/drain`) moves
//! segments into Redis in order through the ingest script and deletes a
//! segment only once Redis confirmed every event in it. Recovery at open
//! cuts a torn tail and quarantines damaged records (`spool/segments`).
//!
//! While the spool holds events, new ones of every source follow them
//! into it, so each source's events reach Redis in the order they came.
//! Under steady traffic the spool would then never be empty: the drainer
//! hands ingest back to Redis by holding the events that only follow the
//! others for one last step, draining what is left, and sending the held
//! ones straight to Redis (see [`Spool::begin_handover`]).

mod appender;
mod drain;
mod record;
mod segments;

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use appender::{Appender, Command, Pending};
pub use drain::{DrainStop, Drained, Drainer};
pub use record::SpooledEvent;

use crate::config::SpoolConfig;
use crate::queue::NewEvent;
use crate::telemetry;

/// A segment is sealed (and a new one started) past this size, so the
/// drainer can delete drained events in steps and never reads more than
/// this at once.
const SEGMENT_BYTES: u64 = 16 << 20;
/// Records one fsync covers at most.
const MAX_BATCH: usize = 1024;
/// Requests waiting for the appender.
const WAITING_CAPACITY: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {what} failed: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("spool directory {} is in use by another hookd process", dir.display())]
    Locked { dir: PathBuf },
    #[error("spool is full (spool.max_bytes)")]
    Full,
    #[error("spool is stopped")]
    Stopped,
}

impl SpoolError {
    /// The same error for another waiter (an I/O error is not Clone),
    /// with its kind and words.
    fn copy(&self) -> Self {
        match self {
            Self::Io { what, source } => Self::Io {
                what: what.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::Locked { dir } => Self::Locked { dir: dir.clone() },
            Self::Full => Self::Full,
            Self::Stopped => Self::Stopped,
        }
    }
}

/// What the spool holds, for `/health`, metrics and the ingest path.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SpoolStats {
    pub events: u64,
    pub bytes: u64,
    /// Age of the oldest spooled event (0 when empty).
    pub oldest_age_ms: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    events: u64,
    bytes: u64,
    /// Received time of the oldest event not yet confirmed by Redis.
    oldest_ms: u64,
    /// No longer appended to: the drainer may take it.
    sealed: bool,
    /// Records at its start Redis already confirmed (this process).
    confirmed: usize,
}

/// Why an event goes to the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divert {
    /// Redis is unreachable or did not take the event: it must be spooled.
    RedisAway,
    /// Redis is up, but the spool still holds events that came first: it
    /// follows them, unless the spool has meanwhile handed back to Redis.
    KeepOrder,
}

/// What became of an event handed to [`Spool::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Durable in the spool.
    Spooled,
    /// Not written: it only followed earlier events, and those are all in
    /// Redis now. It goes to Redis itself.
    ToRedis,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    segments: Mutex<VecDeque<Segment>>,
    events: AtomicU64,
    bytes: AtomicU64,
    /// New events follow the spooled ones into the spool (see the module
    /// doc); set before any spooled event is answered.
    diverting: AtomicBool,
    commands: mpsc::Sender<Command>,
    /// Wakes the drainer when events arrive.
    arrived: Notify,
    _lock: File,
}

impl Inner {
    /// Bytes the spool may still write: what `spool.max_bytes` leaves, and
    /// no more than its disk has free less DISK_MARGIN. A full disk then
    /// refuses events as a full spool does (and readiness says so), rather
    /// than failing each write.
    fn room(&self) -> u64 {
        let quota = self
            .max_bytes
            .saturating_sub(self.bytes.load(Ordering::Relaxed));
        quota.min(segments::disk_free(&self.dir).saturating_sub(DISK_MARGIN))
    }
}

/// Free disk space the spool leaves alone: the file system's own
/// bookkeeping (a new segment's inode and directory entry, the extents of
/// a grown file) must not be what fails.
const DISK_MARGIN: u64 = 256 * 1024;

/// A handle on the spool; clones share it.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl Spool {
    /// What `open` would refuse about the directory, checked without
    /// taking it (for `check-config`, which may run beside the daemon).
    pub fn check(config: &SpoolConfig) -> Result<(), SpoolError> {
        segments::check(&config.dir)
    }

    /// A warning when the spool's disk has less free space than
    /// `spool.max_bytes` allows the spool to take: it will be full sooner
    /// than configured (said at startup and by `check-config`).
    pub fn short_of_disk(config: &SpoolConfig) -> Option<String> {
        let free = segments::disk_free(&config.dir);
        (free < config.max_bytes).then(|| {
            format!(
                "the spool's disk has {free} bytes free, less than spool.max_bytes ({}): the spool will be full sooner",
                config.max_bytes
            )
        })
    }

    /// Locks the directory, recovers its segments and starts the appender
    /// thread on `tasks`.
    pub fn open(config: &SpoolConfig, tasks: &TaskTracker) -> Result<Self, SpoolError> {
        let dir = config.dir.clone();
        let lock = segments::lock(&dir)?;
        let (recovered, repairs) = segments::recover(&dir)?;
        for (path, bytes) in &repairs.torn {
            warn!(segment = %path.display(), bytes, "spool: torn tail cut at the last intact record (a write the crash interrupted, never answered)");
        }
        for path in &repairs.quarantined {
            error!(file = %path.display(), "spool: damaged record moved to quarantine; the events in it are not delivered, inspect the file");
        }
        let next_seq = recovered.last().map_or(1, |s| s.seq + 1);
        let events = recovered.iter().map(|s| s.events).sum();
        let bytes = recovered.iter().map(|s| s.bytes).sum();
        let queue = recovered
            .into_iter()
            .map(|s| Segment {
                seq: s.seq,
                events: s.events,
                bytes: s.bytes,
                oldest_ms: s.oldest_ms,
                sealed: true,
                confirmed: 0,
            })
            .collect();
        let (tx, rx) = mpsc::channel(WAITING_CAPACITY);
        let inner = Arc::new(Inner {
            dir,
            max_bytes: config.max_bytes,
            segments: Mutex::new(queue),
            events: AtomicU64::new(events),
            bytes: AtomicU64::new(bytes),
            diverting: AtomicBool::new(events > 0),
            commands: tx,
            arrived: Notify::new(),
            _lock: lock,
        });
        let spool = Self { inner };
        spool.inner.publish();
        let appender = Appender::new(spool.inner.clone(), rx, next_seq);
        tasks.spawn_blocking(move || appender.run());
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Writes an event of `source` durably: resolves once its record is
    /// fsynced, or, for an event that only kept order, once the spool
    /// found that it has handed back to Redis (`Appended::ToRedis`).
    pub async fn append(
        &self,
        source: &str,
        event: &NewEvent<'_>,
        why: Divert,
    ) -> Result<Appended, SpoolError> {
        let record = record::encode(source, event);
        let (done, answered) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Append(Pending {
                record,
                received_ms: event.received_ms,
                why,
                done,
            }))
            .await
            .map_err(|_| SpoolError::Stopped)?;
        answered.await.map_err(|_| SpoolError::Stopped)?
    }

    /// True when no event waits in the spool.
    pub fn is_empty(&self) -> bool {
        self.inner.events.load(Ordering::Acquire) == 0
    }

    /// Whether new events must follow spooled ones into the spool.
    pub fn is_diverting(&self) -> bool {
        self.inner.diverting.load(Ordering::Acquire)
    }

    /// The first half of handing ingest back to Redis: from the moment this
    /// returns, events that only keep order wait instead of being written,
    /// so what the spool holds can only shrink. The drainer drains it, then
    /// calls [`Spool::finish_handover`], always, whatever the drain did.
    pub async fn begin_handover(&self) -> bool {
        let (held, wait) = oneshot::channel();
        self.inner.commands.send(Command::Hold(held)).await.is_ok() && wait.await.is_ok()
    }

    /// Hands ingest back to Redis if every spooled event is confirmed
    /// there and none had to be spooled meanwhile; the waiting events then
    /// go to Redis themselves. Otherwise they are written as usual.
    /// Returns whether it handed back.
    pub async fn finish_handover(&self) -> bool {
        let (released, wait) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Release(released))
            .await
            .is_err()
        {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    /// Whether another event of about `bytes` would fit.
    pub fn has_room(&self, bytes: u64) -> bool {
        bytes <= self.inner.room()
    }

    pub fn stats(&self) -> SpoolStats {
        let oldest = self
            .inner
            .segments
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|s| s.events > 0).map(|s| s.oldest_ms));
        SpoolStats {
            events: self.inner.events.load(Ordering::Relaxed),
            bytes: self.inner.bytes.load(Ordering::Relaxed),
            oldest_age_ms: oldest.map_or(0, |ms| crate::clock::unix_ms().saturating_sub(ms)),
        }
    }

    /// Ends the appender once what is queued is written (shutdown, after
    /// the last request).
    pub async fn stop(&self) {
        let _ = self.inner.commands.send(Command::Stop).await;
    }

    /// The oldest segment the drainer may take, sealing the one being
    /// written if it is the oldest: (seq, records already confirmed).
    async fn oldest_sealed(&self) -> Option<(u64, usize)> {
        let unsealed = {
            let segments = self.inner.segments.lock().ok()?;
            let first = segments.front()?;
            if first.sealed {
                return Some((first.seq, first.confirmed));
            }
            first.seq
        };
        let (sealed, wait) = oneshot::channel();
        self.inner.commands.send(Command::Seal(sealed)).await.ok()?;
        wait.await.ok()?;
        let segments = self.inner.segments.lock().ok()?;
        segments
            .front()
            .filter(|s| s.sealed && s.seq == unsealed)
            .map(|s| (s.seq, s.confirmed))
    }

    /// Redis confirmed `records` more of segment `seq`; the next one was
    /// received at `next_oldest_ms`.
    fn confirm(&self, seq: u64, records: usize, bytes: u64, next_oldest_ms: u64) {
        if let Ok(mut segments) = self.inner.segments.lock()
            && let Some(segment) = segments.iter_mut().find(|s| s.seq == seq)
        {
            segment.confirmed += records;
            segment.events = segment.events.saturating_sub(records as u64);
            segment.bytes = segment.bytes.saturating_sub(bytes);
            segment.oldest_ms = next_oldest_ms;
        }
        self.inner
            .events
            .fetch_sub(records as u64, Ordering::AcqRel);
        self.inner.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.inner.publish();
    }

    /// Every event of segment `seq` is in Redis: the file goes.
    fn remove(&self, seq: u64) -> Result<(), SpoolError> {
        let path = segments::segment_path(&self.inner.dir, seq);
        std::fs::remove_file(&path).map_err(|source| SpoolError::Io {
            what: format!("removing {}", path.display()),
            source,
        })?;
        segments::sync_dir(&self.inner.dir)?;
        if let Ok(mut segments) = self.inner.segments.lock() {
            segments.retain(|s| s.seq != seq);
        }
        self.inner.publish();
        Ok(())
    }
}

impl Inner {
    /// The spool's gauges, after every change.
    fn publish(&self) {
        metrics::gauge!(telemetry::SPOOL_EVENTS).set(self.events.load(Ordering::Relaxed) as f64);
        metrics::gauge!(telemetry::SPOOL_BYTES).set(self.bytes.load(Ordering::Relaxed) as f64);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn event(id: &str) -> NewEvent<'_> {
        NewEvent {
            event_id: id,
            event_type: "push",
            content_type: None,
            headers: Bytes::new(),
            body: Bytes::from_static(b"{}"),
            received_ms: 1,
        }
    }

    /// Tests end with `stop()`: the runtime waits for the appender thread.
    fn open(dir: &Path) -> (Spool, TaskTracker) {
        let tasks = TaskTracker::new();
        let config = SpoolConfig {
            dir: dir.to_owned(),
            max_bytes: 1 << 20,
        };
        (Spool::open(&config, &tasks).unwrap(), tasks)
    }

    /// What the drainer does once Redis confirmed everything spooled.
    async fn confirm_everything(spool: &Spool) {
        while let Some((seq, confirmed)) = spool.oldest_sealed().await {
            let left = spool.stats();
            let records = spool.inner.events.load(Ordering::Acquire) as usize;
            spool.confirm(seq, records - confirmed.min(records), left.bytes, 0);
            spool.remove(seq).unwrap();
        }
        assert!(spool.is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_spool_hands_back_to_redis_once_everything_is_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _tasks) = open(dir.path());
        assert!(!spool.is_diverting());
        // Redis is up and nothing is spooled: following is not needed.
        let ahead = spool.append("s", &event("a"), Divert::KeepOrder).await;
        assert_eq!(ahead.unwrap(), Appended::ToRedis);
        assert!(spool.is_empty());
        let spooled = spool.append("s", &event("b"), Divert::RedisAway).await;
        assert_eq!(spooled.unwrap(), Appended::Spooled);
        assert!(spool.is_diverting());
        // While events wait, the next ones follow them.
        let follows = spool.append("s", &event("c"), Divert::KeepOrder).await;
        assert_eq!(follows.unwrap(), Appended::Spooled);
        // A handover while events are unconfirmed does not hand back.
        assert!(spool.begin_handover().await);
        assert!(!spool.finish_handover().await);
        assert!(spool.is_diverting());

        confirm_everything(&spool).await;
        assert!(spool.begin_handover().await);
        assert!(spool.finish_handover().await);
        assert!(!spool.is_diverting());
        let direct = spool.append("s", &event("d"), Divert::KeepOrder).await;
        assert_eq!(direct.unwrap(), Appended::ToRedis);
        assert!(spool.is_empty());
        spool.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_event_spooled_during_the_handover_keeps_the_spool_in_front() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _tasks) = open(dir.path());
        let spooled = spool.append("s", &event("a"), Divert::RedisAway).await;
        assert_eq!(spooled.unwrap(), Appended::Spooled);
        confirm_everything(&spool).await;
        assert!(spool.begin_handover().await);
        // Redis failed a request meanwhile: that event must be spooled.
        let forced = spool.append("s", &event("b"), Divert::RedisAway).await;
        assert_eq!(forced.unwrap(), Appended::Spooled);
        confirm_everything(&spool).await;
        assert!(!spool.finish_handover().await);
        assert!(spool.is_diverting());
        let follows = spool.append("s", &event("c"), Divert::KeepOrder).await;
        assert_eq!(follows.unwrap(), Appended::Spooled);
        spool.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_spool_reopened_with_events_is_in_front_of_redis() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, tasks) = open(dir.path());
            let spooled = spool.append("s", &event("a"), Divert::RedisAway).await;
            assert_eq!(spooled.unwrap(), Appended::Spooled);
            spool.stop().await;
            tasks.close();
            tasks.wait().await;
        }
        let (spool, _tasks) = open(dir.path());
        assert!(spool.is_diverting());
        let follows = spool.append("s", &event("b"), Divert::KeepOrder).await;
        assert_eq!(follows.unwrap(), Appended::Spooled);
        spool.stop().await;
    }
}
